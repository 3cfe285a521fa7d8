/* backend.c — the backend tables, one per device (see backend.h). */
#include "backend.h"

const gam_backend gam__cpu_backend = {
    .name = "cpu",
    .all_reduce = gam_cpu_all_reduce,
    .broadcast = gam_cpu_broadcast,
};

/* In a build without CUDA these are cuda_backend.h's stubs. */
const gam_backend gam__cuda_backend = {
    .name = "cuda",
    .all_reduce = gam_cuda_all_reduce,
    .broadcast = gam_cuda_broadcast,
};

const gam_backend *gam__backend(int device) {
  return device == GAM_CUDA ? &gam__cuda_backend : &gam__cpu_backend;
}
