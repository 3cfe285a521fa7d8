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

  /* ---- collectives (dist.c: MPI for the cpu, NCCL for cuda) ------------- */
  /* data[0..n) (dtype GAM_FLOAT32 | GAM_INT64 | GAM_UINT8) summed over the
   * ranks in place; mean (float32 only): then divided by the world size.
   * Only called when the world has more than one rank (dist.c). On cuda:
   * queued on the engine's stream, no host wait. */
  int (*all_reduce)(void *data, int64_t n, int dtype, int mean);
  /* data[0..n) = root's data[0..n) on every rank */
  int (*broadcast)(void *data, int64_t n, int dtype, int root);

} gam_backend;

/* The cpu collectives (dist.c, over MPI); the cuda ones are
 * gam_cuda_all_reduce / gam_cuda_broadcast (kernels/nccl.cu). */
int gam_cpu_all_reduce(void *data, int64_t n, int dtype, int mean);
int gam_cpu_broadcast(void *data, int64_t n, int dtype, int root);

extern const gam_backend gam__cpu_backend;
extern const gam_backend gam__cuda_backend;

/* The table of a device (GAM_CPU | GAM_CUDA); every tensor's device is one of
 * them (tensor.c refuses any other at creation). */
const gam_backend *gam__backend(int device);
static inline const gam_backend *gam__be(const gam_tensor *t) { return gam__backend(t->device); }

#endif
