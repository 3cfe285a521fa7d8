/* backend.h — the one place where an op's device work is chosen (internal).
 *
 * Every op of the engine has two halves:
 *   - a device-free front half (in ops_*.c, tensor.c, optim.c, ...): argument
 *     checks, output shapes, autograd recording. It never asks which device a
 *     tensor is on;
 *   - the device work, called through the backend table of the tensors'
 *     device: gam__be(x)->binary(...), gam__be(x)->conv2d_forward(...).
 *
 * There is one table per device (torch7's THNN binds one kernel table per
 * tensor type the same way): gam__cpu_backend (OpenMP loops, OpenBLAS, oneDNN;
 * the kernels live beside their op, named gam_cpu_*) and gam__cuda_backend
 * (the launch wrappers gam_cuda_* of kernels/, declared in cuda_backend.h).
 * Both tables are defined in backend.c, which is, with core.c (the device
 * type itself), the only C file of engine/ that names GAM_CUDA.
 *
 * Every entry works on raw pointers already offset to the first element
 * (device pointers for the cuda table) and element counts, returns 0, or -1
 * with the engine error set (naming the op), exactly as the gam_cuda_*
 * conventions of cuda_backend.h say. A build without CUDA still fills the
 * cuda table: its entries are the stubs of cuda_backend.h, which fail with
 * "the cuda device is not available in this build" (no cuda tensor can be
 * made there, so they are never reached).
 *
 * Adding an op: write its CPU kernel as gam_cpu_<name> with the signature of
 * its gam_cuda_<name>, add one field below, and fill it in both tables. */
#ifndef GAM_BACKEND_H
#define GAM_BACKEND_H
#include "internal.h"
#include "cuda_backend.h"

typedef struct gam_backend {
  const char *name; /* "cpu" | "cuda" */

  /* ---- memory and copies (core.c, tensor.c) ---------------------------- */

  /* ---- elementwise, reductions, losses, linear algebra (ops_*.c) -------- */

  /* ---- layers: convolution, batch norm, pooling, dropout (ops_*.c) ------ */

  /* ---- fused optimiser passes (optim.c, kernels/optim.cu) --------------- */
  /* Flat float vectors of n elements; s is a step's scalars block
   * (GAM_OPT_NSCALARS doubles, slots named in gam.h). cpu: gam_cpu_opt_*
   * (optim_cpu.c, optim_cpu.h); cuda: gam_cuda_opt_* (cuda_backend.h). Every
   * formula is in optim_math.h. */
  int (*opt_copy)(float *dst, const float *src, int64_t n);
  int (*opt_read)(double *out, const double *s); /* the block to the host (cuda: waits) */
  int (*opt_clear)(double *s);
  int (*opt_check_loss)(double *s, const float *loss, int code, int keep);
  int (*opt_norm)(double *s, const float *g, const float *w, int64_t n, int code);
  int (*opt_ascend)(float *theta, float *theta_save, const float *g, float *g_save, int64_t n,
                    gam_coef scale, int adaptive);
  int (*opt_dot3)(double *s, const float *a, const float *b, int64_t n, int code0, int code2);
  int (*opt_decompose)(float *h, const float *v, int64_t n, double weight, gam_coef c);
  int (*opt_gam_pass1)(double *s, float *hplus, const float *g, const float *g0,
                       const float *theta0, int64_t n, double alpha, int adaptive, int code);
  int (*opt_gam_ascend_h0)(float *theta, const float *theta0, const float *g, const float *g0,
                           int64_t n, gam_coef scale, int adaptive);
  int (*opt_gam_pass2)(double *s, float *hminus, const float *g, const float *theta, int64_t n,
                       double c0, double c1, int adaptive, int code);
  int (*opt_gam_pass3)(double *s, float *g, const float *hplus, const float *hminus, int64_t n,
                       double c, int code0, int code2);
  int (*opt_sgd_step)(float *param, const float *grad, float *buf, const float *src, int64_t n,
                      double lr, double momentum, double dampening, double weight_decay,
                      int nesterov, int first, const double *guard);
  int (*opt_adam_step)(float *param, const float *grad, float *m, float *v, const float *src,
                       int64_t n, double lr, double beta1, double beta2, double eps,
                       double weight_decay, int decoupled, int64_t step, const double *guard);

  /* ---- collectives (dist.c: MPI for the cpu, NCCL for cuda) ------------- */

} gam_backend;

extern const gam_backend gam__cpu_backend;
extern const gam_backend gam__cuda_backend;

/* The table of a device (GAM_CPU | GAM_CUDA); every tensor's device is one of
 * them (tensor.c refuses any other at creation). */
const gam_backend *gam__backend(int device);
static inline const gam_backend *gam__be(const gam_tensor *t) { return gam__backend(t->device); }

#endif
