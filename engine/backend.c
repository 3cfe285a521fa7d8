/* backend.c — the backend tables, one per device (see backend.h). */
#include "backend.h"
#include "optim_cpu.h"

const gam_backend gam__cpu_backend = {
    .name = "cpu",
    /* fused optimiser passes */
    .opt_copy = gam_cpu_opt_copy,
    .opt_read = gam_cpu_opt_read,
    .opt_clear = gam_cpu_opt_clear,
    .opt_check_loss = gam_cpu_opt_check_loss,
    .opt_norm = gam_cpu_opt_norm,
    .opt_ascend = gam_cpu_opt_ascend,
    .opt_dot3 = gam_cpu_opt_dot3,
    .opt_decompose = gam_cpu_opt_decompose,
    .opt_gam_pass1 = gam_cpu_gam_pass1,
    .opt_gam_ascend_h0 = gam_cpu_gam_ascend_h0,
    .opt_gam_pass2 = gam_cpu_gam_pass2,
    .opt_gam_pass3 = gam_cpu_gam_pass3,
    .opt_sgd_step = gam_cpu_sgd_step,
    .opt_adam_step = gam_cpu_adam_step,
};

/* In a build without CUDA these are cuda_backend.h's stubs. */
const gam_backend gam__cuda_backend = {
    .name = "cuda",
    /* fused optimiser passes */
    .opt_copy = gam_cuda_opt_copy,
    .opt_read = gam_cuda_opt_read,
    .opt_clear = gam_cuda_opt_clear,
    .opt_check_loss = gam_cuda_opt_check_loss,
    .opt_norm = gam_cuda_opt_norm,
    .opt_ascend = gam_cuda_opt_ascend,
    .opt_dot3 = gam_cuda_opt_dot3,
    .opt_decompose = gam_cuda_opt_decompose,
    .opt_gam_pass1 = gam_cuda_gam_pass1,
    .opt_gam_ascend_h0 = gam_cuda_gam_ascend_h0,
    .opt_gam_pass2 = gam_cuda_gam_pass2,
    .opt_gam_pass3 = gam_cuda_gam_pass3,
    .opt_sgd_step = gam_cuda_sgd_step,
    .opt_adam_step = gam_cuda_adam_step,
};

const gam_backend *gam__backend(int device) {
  return device == GAM_CUDA ? &gam__cuda_backend : &gam__cpu_backend;
}
