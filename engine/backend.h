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
 * its gam_cuda_<name>, add one field below, and fill it in both tables
 * (tests/cuda_build_spec.lua checks that both tables fill every field).
 *
 * Checks: since every op reaches its device only through these tables, the
 * ops check their tensors with gam__check_dev / gam__check_float_dev (any
 * device); plain gam__check stays for host-only code that reads elements
 * itself (the data loader) and refuses tensors off the host. An entry a
 * device does not provide is NULL and is tested with GAM_BE_NEED (below),
 * which fails with "<op>: <op> has no <device> implementation". */
#ifndef GAM_BACKEND_H
#define GAM_BACKEND_H
#include "internal.h"
#include "cuda_backend.h"

typedef struct gam_backend {
  const char *name; /* "cpu" | "cuda" */

  /* 1 when the device's pointers are host memory: the front half may then
   * read and write the elements itself (dropout's mask, allclose) */
  int host;

  /* ---- memory and copies (core.c, tensor.c, tensor_copy.c) -------------- */
  /* 0 when the device can be used (initialising it on first use), or -1 with
   * "<op>: no CUDA device is available ..." */
  int (*require)(const char *op);
  /* the device's caching allocator: NULL + error on failure (core.c) */
  void *(*alloc)(size_t bytes);
  void (*free)(void *p, size_t bytes);
  /* gives the device's cached blocks back (gam_empty_cache) */
  void (*empty_cache)(void);
  /* bytes within the device; the regions must not overlap */
  int (*copy)(void *dst, const void *src, size_t bytes, const char *op);
  /* height rows of width bytes within the device, row pitches in bytes */
  int (*copy2d)(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                const char *op);
  int (*memset)(void *p, int byte, size_t bytes, const char *op);
  /* between the device and host memory (to_host waits for the device) */
  int (*to_host)(void *dst, const void *src, size_t bytes, const char *op);
  int (*from_host)(void *dst, const void *src, size_t bytes, const char *op);
  /* from_host for host→device transfers (gam__cross_copy: tensor:to, the
   * loader's batches): cuda stages src in page-locked memory and queues the
   * copy without waiting (cuda_backend.h: gam_cuda__upload); cpu: a copy */
  int (*upload)(void *dst, const void *src, size_t bytes, const char *op);
  int (*fill)(void *p, int dtype, int64_t n, double value);
  int (*convert)(void *dst, int dst_dtype, const void *src, int src_dtype, int64_t n);
  int (*transpose)(const float *x, float *y, int64_t rows, int64_t cols);
  int (*repeat_rows)(float *out, const float *row, int64_t rows, int64_t cols);
  int (*find_out_of_range)(const int64_t *idx, int64_t n, int64_t lo, int64_t hi, int64_t *pos,
                           int64_t *value, const char *op);
  /* the same check without a wait: the first idx[i] outside [lo, hi) is
   * recorded in the scalars block s (flag = code when still 0, bad = value,
   * s[GAM_OPT_POS] = i, s[GAM_OPT_HI] = hi; gam_opt_watch_targets) */
  int (*flag_out_of_range)(const int64_t *idx, int64_t n, int64_t lo, int64_t hi, double *s, int code);

  /* ---- elementwise, reductions, losses, linear algebra (ops_*.c) -------- */
  int (*binary)(int op, const float *a, const float *b, float *o, int ndim, const int64_t *shape,
                const int64_t *sa, const int64_t *sb, int64_t n);
  int (*unary)(int op, const float *x, float *y, int64_t n, float s);
  int (*unary_grad)(int op, const float *g, const float *x, const float *y, float *gx, int64_t n, float s);
  int (*axpy)(float *a, const float *b, float alpha, int64_t n);
  int (*sum_lines)(const float *p, float *q, int64_t outer, int64_t size, int64_t inner, double scale);
  int (*spread_lines)(const float *g, float *p, int64_t outer, int64_t size, int64_t inner, float scale);
  int (*fill_scaled)(float *p, int64_t n, const float *src, float scale);
  int (*argmax_lines)(const float *p, float *values, int64_t *idx, int64_t outer, int64_t size,
                      int64_t inner);
  int (*scatter_lines)(const float *g, const int64_t *idx, float *p, int64_t outer, int64_t size,
                       int64_t inner);
  /* r [shape] = g [gshape] summed over the dims broadcast from shape to gshape
   * (size 1 in shape, or leading dims shape lacks); autograd's reduce_to_shape */
  int (*sum_to_shape)(const float *g, int gndim, const int64_t *gshape, float *r, int ndim,
                      const int64_t *shape);
  /* b[c] = sum_r g[r,c], b zeroed by the caller (linear's bias gradient) */
  int (*sum_rows)(const float *g, float *b, int64_t rows, int64_t cols);
  int (*softmax)(const float *x, float *y, int64_t outer, int64_t size, int64_t inner, int log_out);
  int (*softmax_grad)(const float *g, const float *y, float *gx, int64_t outer, int64_t size, int64_t inner,
                      int log_out);
  int (*gather)(const float *p, const int64_t *idx, float *q, int64_t outer, int64_t size, int64_t osize,
                int64_t inner);
  int (*gather_grad)(const float *g, const int64_t *idx, float *p, int64_t outer, int64_t size, int64_t osize,
                     int64_t inner);
  int (*ce_forward)(const float *logp, const int64_t *target, float *loss, int64_t rows, int64_t k, double on,
                    double off, double ent);
  int (*ce_backward)(const float *g, const float *logp, const int64_t *target, float *gx, int64_t rows,
                     int64_t k, float on, float off);
  int (*gemm)(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, const float *b, float *c,
              float beta);

  /* ---- layers: convolution, batch norm, pooling, dropout (ops_*.c) ------ */
  int (*conv2d_forward)(const gam_conv_geom *g, const float *x, const float *w, const float *b, float *y);
  int (*conv2d_backward_data)(const gam_conv_geom *g, const float *dy, const float *w, float *dx);
  int (*conv2d_backward_filter)(const gam_conv_geom *g, const float *x, const float *dy, float *dw,
                                float *db);
  int (*bn_train_forward)(const float *x, float *y, int64_t n, int64_t c, int64_t inner, const float *weight,
                          const float *bias, float *rm, float *rv, double momentum, double eps, float *stats);
  int (*bn_train_backward)(const float *x, const float *dy, float *dx, int64_t n, int64_t c, int64_t inner,
                           const float *weight, float *dw, float *db, double eps, const float *stats);
  int (*bn_eval_forward)(const float *x, float *y, int64_t n, int64_t c, int64_t inner, const float *weight,
                         const float *bias, const float *rm, const float *rv, double eps, float *stats);
  int (*bn_eval_backward)(const float *x, const float *dy, float *dx, int64_t n, int64_t c, int64_t inner,
                          const float *weight, float *dw, float *db, const float *stats);
  int (*max_pool_forward)(const gam_pool_geom *g, const float *x, float *y, int64_t *idx);
  int (*max_pool_backward)(const gam_pool_geom *g, const float *dy, const int64_t *idx, float *dx);
  int (*avg_pool_forward)(const gam_pool_geom *g, const float *x, float *y, int count_include_pad);
  int (*avg_pool_backward)(const gam_pool_geom *g, const float *dy, float *dx, int count_include_pad);
  int (*adaptive_avg_pool_forward)(const gam_pool_geom *g, const float *x, float *y);
  int (*adaptive_avg_pool_backward)(const gam_pool_geom *g, const float *dy, float *dx);
  /* mask[i] = 1/(1-p) with probability 1-p, else 0, drawn from the engine's
   * generator: the cpu in element order (gam__rng_uniform() >= p), the cuda
   * device from one 64-bit draw (a Philox key, kernels/random.cu) */
  int (*dropout_mask)(float *mask, int64_t n, double p);

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
  int (*opt_ascend)(float *theta, float *theta_save, const float *g, float *g_save, int64_t n, gam_coef scale,
                    int adaptive);
  int (*opt_dot3)(double *s, const float *a, const float *b, int64_t n, int code0, int code2);
  int (*opt_decompose)(float *h, const float *v, int64_t n, double weight, gam_coef c);
  int (*opt_gam_pass1)(double *s, float *hplus, const float *g, const float *g0, const float *theta0,
                       int64_t n, double alpha, int adaptive, int code);
  int (*opt_gam_ascend_h0)(float *theta, const float *theta0, const float *g, const float *g0, int64_t n,
                           gam_coef scale, int adaptive);
  int (*opt_gam_pass2)(double *s, float *hminus, const float *g, const float *theta, int64_t n, double c0,
                       double c1, int adaptive, int code);
  int (*opt_gam_pass3)(double *s, float *g, const float *hplus, const float *hminus, int64_t n, double c,
                       int code0, int code2);
  int (*opt_sgd_step)(float *param, const float *grad, float *buf, const float *src, int64_t n, double lr,
                      double momentum, double dampening, double weight_decay, int nesterov, int first,
                      const double *guard);
  int (*opt_adam_step)(float *param, const float *grad, float *m, float *v, const float *src, int64_t n,
                       double lr, double beta1, double beta2, double eps, double weight_decay, int decoupled,
                       int64_t step, const double *guard);

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

/* Every field above is filled in both tables. A field left NULL (an entry a
 * later device or feature does not provide yet) means "no implementation on
 * this device": check it with GAM_BE_NEED before calling, which fails with
 * "<op>: <op> has no <device> implementation". */
#define GAM_BE_NEED(be, entry, op) \
  GAM_CHECK((be)->entry != NULL, "%s: %s has no %s implementation", op, op, (be)->name)

/* ---- the cpu kernels, beside their ops (same signatures as gam_cuda_*) ---- */
/* core.c, tensor.c, tensor_copy.c */
int gam_cpu_require(const char *op);
void gam_cpu_empty_cache(void);
int gam_cpu_copy(void *dst, const void *src, size_t bytes, const char *op);
int gam_cpu_copy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                   const char *op);
int gam_cpu_memset(void *p, int byte, size_t bytes, const char *op);
int gam_cpu_fill(void *p, int dtype, int64_t n, double value);
int gam_cpu_convert(void *dst, int dst_dtype, const void *src, int src_dtype, int64_t n);
int gam_cpu_transpose(const float *x, float *y, int64_t rows, int64_t cols);
int gam_cpu_repeat_rows(float *out, const float *row, int64_t rows, int64_t cols);
int gam_cpu_find_out_of_range(const int64_t *idx, int64_t n, int64_t lo, int64_t hi, int64_t *pos,
                              int64_t *value, const char *op);
int gam_cpu_flag_out_of_range(const int64_t *idx, int64_t n, int64_t lo, int64_t hi, double *s, int code);
/* bytes from src on one device to dst on another (either may be the host);
 * 0 bytes copy nothing (tensor.c) */
int gam__cross_copy(void *dst, int dst_device, const void *src, int src_device, size_t bytes, const char *op);
/* the device's caching allocator's cache, given back (core.c) */
void gam__device_empty_cache(void);
/* ops_elementwise.c */
int gam_cpu_binary(int op, const float *a, const float *b, float *o, int ndim, const int64_t *shape,
                   const int64_t *sa, const int64_t *sb, int64_t n);
int gam_cpu_unary(int op, const float *x, float *y, int64_t n, float s);
int gam_cpu_unary_grad(int op, const float *g, const float *x, const float *y, float *gx, int64_t n, float s);
int gam_cpu_axpy(float *a, const float *b, float alpha, int64_t n);
/* ops_reduce.c, autograd.c */
int gam_cpu_sum_lines(const float *p, float *q, int64_t outer, int64_t size, int64_t inner, double scale);
int gam_cpu_spread_lines(const float *g, float *p, int64_t outer, int64_t size, int64_t inner, float scale);
int gam_cpu_fill_scaled(float *p, int64_t n, const float *src, float scale);
int gam_cpu_argmax_lines(const float *p, float *values, int64_t *idx, int64_t outer, int64_t size,
                         int64_t inner);
int gam_cpu_scatter_lines(const float *g, const int64_t *idx, float *p, int64_t outer, int64_t size,
                          int64_t inner);
int gam_cpu_sum_to_shape(const float *g, int gndim, const int64_t *gshape, float *r, int ndim,
                         const int64_t *shape);
/* ops_loss.c */
int gam_cpu_softmax(const float *x, float *y, int64_t outer, int64_t size, int64_t inner, int log_out);
int gam_cpu_softmax_grad(const float *g, const float *y, float *gx, int64_t outer, int64_t size,
                         int64_t inner, int log_out);
int gam_cpu_gather(const float *p, const int64_t *idx, float *q, int64_t outer, int64_t size, int64_t osize,
                   int64_t inner);
int gam_cpu_gather_grad(const float *g, const int64_t *idx, float *p, int64_t outer, int64_t size,
                        int64_t osize, int64_t inner);
int gam_cpu_ce_forward(const float *logp, const int64_t *target, float *loss, int64_t rows, int64_t k,
                       double on, double off, double ent);
int gam_cpu_ce_backward(const float *g, const float *logp, const int64_t *target, float *gx, int64_t rows,
                        int64_t k, float on, float off);
/* ops_linalg.c */
int gam_cpu_gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, const float *b, float *c,
                 float beta);
int gam_cpu_sum_rows(const float *g, float *b, int64_t rows, int64_t cols);
/* ops_conv.c */
int gam_cpu_conv2d_forward(const gam_conv_geom *g, const float *x, const float *w, const float *b, float *y);
int gam_cpu_conv2d_backward_data(const gam_conv_geom *g, const float *dy, const float *w, float *dx);
int gam_cpu_conv2d_backward_filter(const gam_conv_geom *g, const float *x, const float *dy, float *dw,
                                   float *db);
/* ops_norm.c */
int gam_cpu_bn_train_forward(const float *x, float *y, int64_t n, int64_t c, int64_t inner,
                             const float *weight, const float *bias, float *rm, float *rv, double momentum,
                             double eps, float *stats);
int gam_cpu_bn_train_backward(const float *x, const float *dy, float *dx, int64_t n, int64_t c, int64_t inner,
                              const float *weight, float *dw, float *db, double eps, const float *stats);
int gam_cpu_bn_eval_forward(const float *x, float *y, int64_t n, int64_t c, int64_t inner,
                            const float *weight, const float *bias, const float *rm, const float *rv,
                            double eps, float *stats);
int gam_cpu_bn_eval_backward(const float *x, const float *dy, float *dx, int64_t n, int64_t c, int64_t inner,
                             const float *weight, float *dw, float *db, const float *stats);
/* ops_pool.c */
int gam_cpu_max_pool_forward(const gam_pool_geom *g, const float *x, float *y, int64_t *idx);
int gam_cpu_max_pool_backward(const gam_pool_geom *g, const float *dy, const int64_t *idx, float *dx);
int gam_cpu_avg_pool_forward(const gam_pool_geom *g, const float *x, float *y, int count_include_pad);
int gam_cpu_avg_pool_backward(const gam_pool_geom *g, const float *dy, float *dx, int count_include_pad);
int gam_cpu_adaptive_avg_pool_forward(const gam_pool_geom *g, const float *x, float *y);
int gam_cpu_adaptive_avg_pool_backward(const gam_pool_geom *g, const float *dy, float *dx);
/* ops_dropout.c */
int gam_cpu_dropout_mask(float *mask, int64_t n, double p);

#endif
