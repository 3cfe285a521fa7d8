/* cuda_backend.h — the engine's interface to the CUDA backend (internal).
 *
 * Two parts:
 *   1. gam_cuda__*: the runtime (kernels/runtime.cu): lazy initialisation,
 *      the one stream every kernel, copy, cuBLAS and cuDNN call runs on, the
 *      library handles, raw device memory, copies, synchronisation.
 *   2. gam_cuda_*: host-side launch wrappers of the kernels (kernels/ folder).
 *      Each returns 0, or -1 with the engine error set (naming the op).
 *
 * The ops reach the wrappers only through the cuda backend table
 * (backend.h, backend.c: gam__be(x)->entry(...)). In a build without CUDA
 * (GAM_HAVE_CUDA not defined) every function here is a static inline stub that
 * reports "the cuda device is not available in this build"; no CUDA tensor
 * can be made there, so the table's entries are never reached, but they
 * compile and the C files need no #ifdef of their own.
 *
 * Conventions for the wrappers
 *   - Pointers are device pointers (already offset to the tensor's first
 *     element); sizes are element counts. A count of 0 launches nothing.
 *   - Everything is stream-ordered on gam_cuda__stream(): a kernel may read a
 *     buffer written by the previous call without waiting, and a device block
 *     freed to the caching allocator may be handed out again at once (its
 *     next user runs after every kernel already queued). Only the copies to
 *     host memory (and gam_cuda__sync) wait.
 *   - Reductions accumulate in double and are deterministic: the same inputs
 *     give the same bits on every run.
 *   - No math mode trades accuracy: kernels are compiled without fast math,
 *     and cuBLAS runs in CUBLAS_DEFAULT_MATH (full float32, no TF32).
 *
 * Porting an op: check its tensors with gam__check_dev / gam__check_float_dev
 * (plain gam__check refuses tensors off the host, for host-only code such as
 * the data loader), require one device (gam__same_device), make outputs with
 * gam__new(..., x->device, ...), write the wrapper below in the same style and
 * its cpu twin gam_cpu_<name>, and add the entry to backend.h. Scalars that later kernels
 * consume (norms, cosines) can stay in device memory: pass device pointers
 * between wrappers and read them on the host only through a D2H copy. The
 * cuDNN handle and a cached workspace are here already. */
#ifndef GAM_CUDA_BACKEND_H
#define GAM_CUDA_BACKEND_H
#include <stddef.h>
#include <stdint.h>
#include "optim_math.h" /* gam_coef: the coefficients of the optimiser passes */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- shared with the engine (core.c) ------------------------------------- */
int gam__err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Device memory through the caching allocator (core.c); NULL + error set on
 * failure. Freed blocks are kept for reuse (see the conventions above). */
void *gam__device_alloc(size_t bytes);
void gam__device_free(void *p, size_t bytes);
/* 0 when the cuda device can be used (initialising it on first use), or -1
 * with "<op>: no CUDA device is available (...)" or, in a build without CUDA,
 * "<op>: the cuda device is not available in this build". */
int gam__cuda_require(const char *op);
/* gam_cudnn_set's flags and a version that changes with them (core.c); any
 * pointer may be NULL */
void gam__cudnn_flags(int *benchmark, int *deterministic, unsigned *version);
/* dist.c: this rank and the world size; bytes from root to every rank (MPI). */
int gam_dist_rank(void);
int gam_dist_size(void);
int gam__dist_bcast_bytes(void *p, size_t bytes, int root);

/* Operation codes of the elementwise kernels (ops_elementwise.c uses them). */
enum { GAM_BIN_ADD, GAM_BIN_SUB, GAM_BIN_MUL, GAM_BIN_DIV };
enum {
  GAM_UN_NEG,
  GAM_UN_EXP,
  GAM_UN_LOG,
  GAM_UN_SQRT,
  GAM_UN_ABS,
  GAM_UN_RELU,
  GAM_UN_POW,
  GAM_UN_ADDS,
  GAM_UN_MULS,
  GAM_UN_RSUB,
  GAM_UN_RDIV
};
/* Directions of gam_cuda__memcpy. */
enum { GAM_COPY_H2D, GAM_COPY_D2H, GAM_COPY_D2D };

#ifdef GAM_HAVE_CUDA
#define GAM_CUDA_FN(decl) decl;
#else
#define GAM_CUDA_FN(decl) \
  static inline decl { return gam__err("the cuda device is not available in this build"); }
#endif

/* ---- runtime (kernels/runtime.cu) ----------------------------------------- */
/* gam_cuda__built: 1 when libgam was compiled with the CUDA backend.
 * gam_cuda__available: 1 when a device is usable (initialising it, as
 * gam_cuda__init does), 0 when not; no error is set.
 * gam_cuda__ready: 1 once gam_cuda__init has succeeded; never touches the
 * CUDA runtime. */
#ifdef GAM_HAVE_CUDA
static inline int gam_cuda__built(void) { return 1; }
int gam_cuda__available(void);
int gam_cuda__ready(void);
#else
static inline int gam_cuda__built(void) { return 0; }
static inline int gam_cuda__available(void) { return 0; }
static inline int gam_cuda__ready(void) { return 0; }
#endif
/* Makes the CUDA backend ready on first use: finds a device (device 0 of
 * those visible), creates the stream and the cuBLAS handle. The CUDA runtime
 * is touched for the first time here, so a CPU-only run never touches it.
 * 0, or -1 with "<op>: no CUDA device is available (...)" (the outcome is
 * remembered: later calls fail the same way without probing again). */
GAM_CUDA_FN(int gam_cuda__init(const char *op))
/* Raw device memory for the caching allocator: 0, or -1 when the device is
 * out of memory (no error message set; the allocator writes one). */
GAM_CUDA_FN(int gam_cuda__malloc(void **p, size_t bytes))
GAM_CUDA_FN(int gam_cuda__free(void *p))
GAM_CUDA_FN(int gam_cuda__mem_info(size_t *free_bytes, size_t *total_bytes))
/* Copies bytes; GAM_COPY_D2H waits for the stream (the host reads the data
 * next). H2D from pageable host memory returns once the source was staged, so
 * the host buffer may be freed right after. Regions must not overlap. */
GAM_CUDA_FN(int gam_cuda__memcpy(void *dst, const void *src, size_t bytes, int kind, const char *op))
/* Page-locked host memory (cudaHostAlloc): 0, or -1 (no message set) */
GAM_CUDA_FN(int gam_cuda__pinned_alloc(void **p, size_t bytes))
GAM_CUDA_FN(int gam_cuda__pinned_free(void *p))
/* Host to device through page-locked staging buffers (a ring of a few, each
 * grown as needed, up to GAM_CUDA_STAGE_MAX bytes): src is copied into the
 * next staging buffer and a cudaMemcpyAsync from it is queued, so the call
 * returns at once (src may be freed right after) and the host goes on
 * queuing work while the device is still busy with the previous step. A
 * staging buffer is reused only once its last copy is done (an event; a wait
 * only when the device is a whole ring of uploads behind). Larger copies, or
 * when no page-locked memory can be had, go as gam_cuda__memcpy H2D. */
#define GAM_CUDA_STAGE_MAX ((size_t)64 << 20)
GAM_CUDA_FN(int gam_cuda__upload(void *dst, const void *src, size_t bytes, const char *op))
/* height rows of width bytes, device to device, with row pitches in bytes */
GAM_CUDA_FN(int gam_cuda__memcpy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                                   size_t height, const char *op))
GAM_CUDA_FN(int gam_cuda__memset(void *p, int byte, size_t bytes, const char *op))
/* Waits for the stream; reports errors of kernels that ran meanwhile. */
GAM_CUDA_FN(int gam_cuda__sync(const char *op))
/* The stream (cudaStream_t), cuBLAS handle (cublasHandle_t) and cuDNN handle
 * (cudnnHandle_t, created on first use), as void * so C files need no CUDA
 * headers. Valid after gam_cuda__init succeeded. */
GAM_CUDA_FN(int gam_cuda__stream(void **stream))
GAM_CUDA_FN(int gam_cuda__cublas(void **handle))
GAM_CUDA_FN(int gam_cuda__cudnn(void **handle, const char *op))
/* A scratch buffer of at least bytes (cuDNN workspaces), kept and grown as
 * needed; valid until the next call. Stream-ordered like everything else. It
 * comes from the caching allocator, so it counts in device_live_bytes. */
GAM_CUDA_FN(int gam_cuda__workspace(void **p, size_t bytes, const char *op))
/* Memory pressure: gam_cuda__workspace_release gives the kept workspace back
 * to the caching allocator (the allocator calls it before retrying a failed
 * cudaMalloc, and gam_empty_cache calls it; a call made while the workspace
 * itself is being grown does nothing, its old buffer being already given
 * back); the next user grows it again. gam_cuda__workspace_held: its bytes
 * (gam_memory's device_workspace_bytes). */
/* gam_cuda__staging_release gives the upload staging buffers back (waiting
 * for their copies); gam_empty_cache calls it. gam_cuda__host_waits: how many
 * times the host has waited for the device (runtime.cu's waits: copies to the
 * host, synchronize, a staging buffer still in use). */
#ifdef GAM_HAVE_CUDA
void gam_cuda__workspace_release(void);
size_t gam_cuda__workspace_held(void);
void gam_cuda__staging_release(void);
int64_t gam_cuda__host_waits(void);
#else
static inline void gam_cuda__workspace_release(void) {}
static inline size_t gam_cuda__workspace_held(void) { return 0; }
static inline void gam_cuda__staging_release(void) {}
static inline int64_t gam_cuda__host_waits(void) { return 0; }
#endif

/* gam_cuda_info_get's query (gam.h): the versions and device 0 */
struct gam_cuda_info;
GAM_CUDA_FN(int gam_cuda__info(struct gam_cuda_info *info))

/* ---- copies, fills, conversions (kernels/copy.cu) ------------------------- */
/* p[0..n) = value, for dtype GAM_FLOAT32 | GAM_INT64 | GAM_UINT8 */
GAM_CUDA_FN(int gam_cuda_fill(void *p, int dtype, int64_t n, double value))
/* dst[i] = (dst type) src[i], with the CPU backend's conversion rules */
GAM_CUDA_FN(int gam_cuda_convert(void *dst, int dst_dtype, const void *src, int src_dtype, int64_t n))
/* y[c,r] = x[r,c] */
GAM_CUDA_FN(int gam_cuda_transpose(const float *x, float *y, int64_t rows, int64_t cols))
/* out[r,c] = row[c] for r < rows */
GAM_CUDA_FN(int gam_cuda_repeat_rows(float *out, const float *row, int64_t rows, int64_t cols))
/* *pos = the first i with idx[i] outside [lo, hi), *value = idx[*pos]; *pos = -1
 * when all are inside. Waits for the stream (the answer is read on the host). */
GAM_CUDA_FN(int gam_cuda_find_out_of_range(const int64_t *idx, int64_t n, int64_t lo, int64_t hi,
                                           int64_t *pos, int64_t *value, const char *op))
/* The same without a wait: the first i found is recorded in the device
 * scalars block s (flag = code when s's flag is 0, bad = idx[i], pos = i,
 * hi = hi: gam.h's gam_opt_watch_targets); one block scans in order. */
GAM_CUDA_FN(int gam_cuda_flag_out_of_range(const int64_t *idx, int64_t n, int64_t lo, int64_t hi, double *s,
                                           int code))

/* ---- elementwise (kernels/elementwise.cu) ---------------------------------- */
/* o[i] = a[.] op b[.] over the output shape (ndim dims, n elements); sa/sb are
 * the element strides of a and b per output dim, 0 where broadcast. */
GAM_CUDA_FN(int gam_cuda_binary(int op, const float *a, const float *b, float *o, int ndim,
                                const int64_t *shape, const int64_t *sa, const int64_t *sb, int64_t n))
/* y = f(x) for a GAM_UN_* op; s is the scalar of the scalar ops and pow */
GAM_CUDA_FN(int gam_cuda_unary(int op, const float *x, float *y, int64_t n, float s))
/* gx = g * f'(x), from x and y = f(x) (y may be NULL where f' does not need it) */
GAM_CUDA_FN(int gam_cuda_unary_grad(int op, const float *g, const float *x, const float *y, float *gx,
                                    int64_t n, float s))
/* a += alpha * b */
GAM_CUDA_FN(int gam_cuda_axpy(float *a, const float *b, float alpha, int64_t n))

/* ---- reductions (kernels/reduce.cu); x viewed as [outer, size, inner] ---------- */
/* q[o,i] = scale * sum_k p[o,k,i], two-stage, accumulated in double */
GAM_CUDA_FN(int gam_cuda_sum_lines(const float *p, float *q, int64_t outer, int64_t size, int64_t inner,
                                   double scale))
/* p[o,k,i] = scale * g[o,i] (the gradient of a sum over k) */
GAM_CUDA_FN(int gam_cuda_spread_lines(const float *g, float *p, int64_t outer, int64_t size, int64_t inner,
                                      float scale))
/* p[i] = scale * src[0] for i < n (src is one device float) */
GAM_CUDA_FN(int gam_cuda_fill_scaled(float *p, int64_t n, const float *src, float scale))
/* idx[o,i] = the first k of the largest p[o,k,i] (the first NaN wins, as in
 * PyTorch); values[o,i] = that element unless values is NULL. size >= 1. */
GAM_CUDA_FN(int gam_cuda_argmax_lines(const float *p, float *values, int64_t *idx, int64_t outer,
                                      int64_t size, int64_t inner))
/* p[o, idx[o,i], i] = g[o,i]; the rest of p is left as it is (zero it first) */
GAM_CUDA_FN(int gam_cuda_scatter_lines(const float *g, const int64_t *idx, float *p, int64_t outer,
                                       int64_t size, int64_t inner))

/* ---- softmax, gather, losses (kernels/loss.cu) ------------------------------ */
/* y = softmax (log_out 0) or log_softmax (1) of x along the middle axis */
GAM_CUDA_FN(int gam_cuda_softmax(const float *x, float *y, int64_t outer, int64_t size, int64_t inner,
                                 int log_out))
/* gx from g and y (the forward's output), as ops_loss.c's softmax_backward */
GAM_CUDA_FN(int gam_cuda_softmax_grad(const float *g, const float *y, float *gx, int64_t outer, int64_t size,
                                      int64_t inner, int log_out))
/* q[o,j,i] = p[o, idx[o,j,i], i]; p is [outer, size, inner], q and idx [outer, osize, inner] */
GAM_CUDA_FN(int gam_cuda_gather(const float *p, const int64_t *idx, float *q, int64_t outer, int64_t size,
                                int64_t osize, int64_t inner))
/* p[o, idx[o,j,i], i] += g[o,j,i], in j order for every (o,i) */
GAM_CUDA_FN(int gam_cuda_gather_grad(const float *g, const int64_t *idx, float *p, int64_t outer,
                                     int64_t size, int64_t osize, int64_t inner))
/* loss[r] = ent - sum_c q_c logp[r,c], q_c = on for c = target[r], off elsewhere */
GAM_CUDA_FN(int gam_cuda_ce_forward(const float *logp, const int64_t *target, float *loss, int64_t rows,
                                    int64_t k, double on, double off, double ent))
/* gx[r,c] = g[r] * (exp(logp[r,c]) - q_c) */
GAM_CUDA_FN(int gam_cuda_ce_backward(const float *g, const float *logp, const int64_t *target, float *gx,
                                     int64_t rows, int64_t k, float on, float off))

/* ---- random (kernels/random.cu) ----------------------------------------------- */
/* mask[i] = u_i >= p ? 1/(1-p) : 0 with u_i from Philox4x32-10 keyed by seed,
 * counter i / 4, output i % 4: u_i = (r >> 8) 2^-24 (gam_philox4x32_10 of
 * gam.h is the same generator on the host) */
GAM_CUDA_FN(int gam_cuda_dropout_mask(float *mask, int64_t n, double p, uint64_t seed))

/* ---- linear algebra (kernels/linalg.cu) ------------------------------------- */
/* row-major C[m,n] = op(A) op(B) + beta C through cuBLAS sgemm (no TF32);
 * ta: A is stored [k,m]; tb: B is stored [n,k] */
GAM_CUDA_FN(int gam_cuda_gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, const float *b,
                              float *c, float beta))

/* ---- convolution through cuDNN (kernels/conv.cu) ------------------------------
 * x [n,c,h,w], w [o,c,kh,kw], y [n,o,oh,ow], b [o]; strides, padding,
 * dilation as in ops_conv.c; n >= 1. Every shape gets its cuDNN descriptors
 * and its three algorithms once (FMA math only: no TF32), chosen under
 * gam_cudnn_set's flags (deterministic by default; benchmark: timed), and
 * the workspace is the runtime's cached one. Batches over cuDNN's int sizes
 * run in chunks of images. */
typedef struct gam_conv_geom {
  int64_t n, c, h, w, o, kh, kw, oh, ow;
  int sh, sw, ph, pw, dh, dw;
  /* for the cpu backend's oneDNN plans (a plan per shape, bias and algorithm);
   * the cuda backend ignores them: bias is there when b/db is not NULL */
  int bias, winograd;
} gam_conv_geom;
/* y = conv(x, w) (+ b when b is not NULL) */
GAM_CUDA_FN(int gam_cuda_conv2d_forward(const gam_conv_geom *g, const float *x, const float *w,
                                        const float *b, float *y))
/* dx = the gradient w.r.t. x of sum(dy * conv(x, w)) */
GAM_CUDA_FN(int gam_cuda_conv2d_backward_data(const gam_conv_geom *g, const float *dy, const float *w,
                                              float *dx))
/* dw (when not NULL) and db (when not NULL) from x and dy */
GAM_CUDA_FN(int gam_cuda_conv2d_backward_filter(const gam_conv_geom *g, const float *x, const float *dy,
                                                float *dw, float *db))
/* shapes with their cuDNN plans cached (for tests) */
GAM_CUDA_FN(int gam_cuda_conv2d_plans(int *count))

/* ---- batch norm (kernels/norm.cu); x, y [n, c, inner] --------------------------
 * Training through cuDNN (spatial mode): normalises with the batch mean and
 * biased variance, writes stats[0..c) = mean and stats[c..2c) = 1/sqrt(var+eps)
 * and, when rm/rv are not NULL, moves the running statistics by
 * (1-momentum) r + momentum stat with cuDNN's unbiased variance (the caller
 * passes NULL for momentum 0: the statistics are then not touched at all).
 * weight/bias may be NULL (1 and 0). */
GAM_CUDA_FN(int gam_cuda_bn_train_forward(const float *x, float *y, int64_t n, int64_t c, int64_t inner,
                                          const float *weight, const float *bias, float *rm, float *rv,
                                          double momentum, double eps, float *stats))
/* From the forward's stats: dx, dw, db, each skipped when NULL. */
GAM_CUDA_FN(int gam_cuda_bn_train_backward(const float *x, const float *dy, float *dx, int64_t n, int64_t c,
                                           int64_t inner, const float *weight, float *dw, float *db,
                                           double eps, const float *stats))
/* Evaluation with the running statistics (plain kernels, ops_norm.c's
 * formulas in double): y = a x + s0 per channel, stats as above. */
GAM_CUDA_FN(int gam_cuda_bn_eval_forward(const float *x, float *y, int64_t n, int64_t c, int64_t inner,
                                         const float *weight, const float *bias, const float *rm,
                                         const float *rv, double eps, float *stats))
/* dx = weight invstd dy; dw = sum dy (x - mean) invstd; db = sum dy (NULL: skipped) */
GAM_CUDA_FN(int gam_cuda_bn_eval_backward(const float *x, const float *dy, float *dx, int64_t n, int64_t c,
                                          int64_t inner, const float *weight, float *dw, float *db,
                                          const float *stats))

/* ---- pooling (kernels/pool.cu): ops_pool.c's loops, one thread per output
 * (forward) or per input element (backward, gathering the windows that cover
 * it in the cpu's order), so both backends give the same bits ------------------ */
typedef struct gam_pool_geom {
  int64_t planes, h, w, oh, ow;
  int kh, kw, sh, sw, ph, pw;
} gam_pool_geom;
/* y and, when idx is not NULL, the flat in-plane index of each maximum */
GAM_CUDA_FN(int gam_cuda_max_pool_forward(const gam_pool_geom *g, const float *x, float *y, int64_t *idx))
GAM_CUDA_FN(int gam_cuda_max_pool_backward(const gam_pool_geom *g, const float *dy, const int64_t *idx,
                                           float *dx))
GAM_CUDA_FN(int gam_cuda_avg_pool_forward(const gam_pool_geom *g, const float *x, float *y,
                                          int count_include_pad))
GAM_CUDA_FN(int gam_cuda_avg_pool_backward(const gam_pool_geom *g, const float *dy, float *dx,
                                           int count_include_pad))
/* adaptive: only planes, h, w, oh, ow of g are used */
GAM_CUDA_FN(int gam_cuda_adaptive_avg_pool_forward(const gam_pool_geom *g, const float *x, float *y))
GAM_CUDA_FN(int gam_cuda_adaptive_avg_pool_backward(const gam_pool_geom *g, const float *dy, float *dx))

/* ---- fused optimiser kernels (kernels/optim.cu) ----------------------------------
 * The cuda entries of the backend table's fused optimiser passes (backend.h),
 * over flat float vectors of n elements; their cpu twins are gam_cpu_opt_*
 * (optim_cpu.c), their math is engine/optim_math.h. A step's scalars live in
 * a device block s of GAM_OPT_NSCALARS doubles (gam.h): a reduction writes
 * s[GAM_OPT_NORM] (a norm) or s[GAM_OPT_AA..BB] (‖a‖², ⟨a,b⟩, ‖b‖²) and, when
 * its check code is not 0 and s[GAM_OPT_FLAG] is still 0, records a
 * non-finite result there (flag = code, s[GAM_OPT_BAD] = the value). A later
 * pass reads its coefficient from s itself (gam_coef), so no pass waits for
 * the host. Reductions run in two fixed stages accumulated in double:
 * deterministic. */
GAM_CUDA_FN(int gam_cuda_opt_copy(float *dst, const float *src, int64_t n))
GAM_CUDA_FN(int gam_cuda_opt_read(double *out, const double *s)) /* the block to the host (waits) */
GAM_CUDA_FN(int gam_cuda_opt_clear(double *s))
GAM_CUDA_FN(int gam_cuda_opt_norm(double *s, const float *g, const float *w, int64_t n, int code))
GAM_CUDA_FN(int gam_cuda_opt_ascend(float *theta, float *theta_save, const float *g, float *g_save, int64_t n,
                                    gam_coef scale, int adaptive))
GAM_CUDA_FN(int gam_cuda_opt_dot3(double *s, const float *a, const float *b, int64_t n, int code0, int code2))
GAM_CUDA_FN(int gam_cuda_opt_decompose(float *h, const float *v, int64_t n, double weight, gam_coef c))
GAM_CUDA_FN(int gam_cuda_gam_pass1(double *s, float *hplus, const float *g, const float *g0,
                                   const float *theta0, int64_t n, double alpha, int adaptive, int code))
GAM_CUDA_FN(int gam_cuda_gam_ascend_h0(float *theta, const float *theta0, const float *g, const float *g0,
                                       int64_t n, gam_coef scale, int adaptive))
GAM_CUDA_FN(int gam_cuda_gam_pass2(double *s, float *hminus, const float *g, const float *theta, int64_t n,
                                   double c0, double c1, int adaptive, int code))
GAM_CUDA_FN(int gam_cuda_gam_pass3(double *s, float *g, const float *hplus, const float *hminus, int64_t n,
                                   double c, int code0, int code2))
/* The base steps. guard (NULL: none) is a scalars block: when its flag is set
 * the step only restores param = src (when src is not NULL) and leaves the
 * optimiser state untouched. buf is NULL without momentum. */
GAM_CUDA_FN(int gam_cuda_sgd_step(float *param, const float *grad, float *buf, const float *src, int64_t n,
                                  double lr, double momentum, double dampening, double weight_decay,
                                  int nesterov, int first, const double *guard))
GAM_CUDA_FN(int gam_cuda_adam_step(float *param, const float *grad, float *m, float *v, const float *src,
                                   int64_t n, double lr, double beta1, double beta2, double eps,
                                   double weight_decay, int decoupled, int64_t step, const double *guard))
/* loss (one device float) non-finite and no flag yet: flag = code, bad = loss;
 * keep: s[GAM_OPT_LOSS] = loss */
GAM_CUDA_FN(int gam_cuda_opt_check_loss(double *s, const float *loss, int code, int keep))

/* ---- collectives over NCCL (kernels/nccl.cu; dist.c dispatches) ------------ */
/* The backend table's all_reduce / broadcast for cuda (backend.h). The first
 * call makes the communicator: rank 0 draws the NCCL unique id and
 * gam__dist_bcast_bytes (MPI) hands it to the others. Queued on the engine's
 * stream with no host wait. A CUDA build without NCCL fails with a clear
 * error. */
GAM_CUDA_FN(int gam_cuda_all_reduce(void *data, int64_t n, int dtype, int mean))
GAM_CUDA_FN(int gam_cuda_broadcast(void *data, int64_t n, int dtype, int root))

#undef GAM_CUDA_FN

#ifdef __cplusplus
}
#endif
#endif
