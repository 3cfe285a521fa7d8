/* gam.h — the only public header of libgam, the gamlua engine.
 *
 * Everything between GAM_FFI_BEGIN and GAM_FFI_END is also handed, verbatim,
 * to LuaJIT's ffi.cdef (the build embeds it into libgam as gam_cdef()), so
 * that region holds plain C declarations only: no macros, no #include.
 *
 * Conventions
 *   - Every entry point returns int: 0 on success, -1 on error; the message is
 *     then in gam_last_error() ("add: shapes [2,3] and [4] do not broadcast").
 *   - Functions that make a tensor write it to *out as a new reference, which
 *     the caller owns and gives back with gam_release().
 *   - Dims are 0-based here (negative counts from the end); Lua is 1-based.
 *   - Tensors are contiguous row-major: element i of t lives at
 *     storage->data + (t->offset + i) * element size.
 */
#ifndef GAM_H
#define GAM_H
#include <stdint.h>
#include <stddef.h>

/* GAM_FFI_BEGIN */
enum { GAM_FLOAT32 = 0, GAM_INT64 = 1, GAM_UINT8 = 2 };
enum { GAM_CPU = 0, GAM_CUDA = 1 };
enum { GAM_MAX_DIMS = 8 };

typedef struct gam_storage {
  int refcount;
  int device;
  size_t bytes;
  void *data;
} gam_storage;

typedef struct gam_node gam_node;

typedef struct gam_tensor {
  int refcount;
  int dtype;  /* GAM_FLOAT32 | GAM_INT64 | GAM_UINT8 */
  int device; /* GAM_CPU | GAM_CUDA */
  int ndim;   /* 0 .. GAM_MAX_DIMS; 0 is a scalar */
  int64_t shape[8];
  int64_t numel;
  int64_t offset; /* first element, in elements, within storage */
  gam_storage *storage;
  int requires_grad;       /* leaf asking for .grad, or result of such */
  struct gam_tensor *grad; /* accumulated gradient (leaves), may be NULL */
  gam_node *grad_fn;       /* the op that made this tensor, NULL for leaves */
} gam_tensor;

typedef struct gam_memory_stats {
  int64_t live_tensors; /* tensor headers alive */
  int64_t live_bytes;   /* bytes of storage alive (all devices) */
  int64_t peak_bytes;
  int64_t cached_bytes; /* held by the caching allocator, free for reuse */
  int64_t device_live_bytes;
  int64_t device_cached_bytes;
  int64_t device_workspace_bytes; /* the kept cuDNN workspace (within device_live_bytes) */
} gam_memory_stats;

/* ---- errors, version, threads ------------------------------------------ */
const char *gam_last_error(void);
const char *gam_version(void);
int gam_set_num_threads(int n);
int gam_get_num_threads(void);

/* ---- memory ------------------------------------------------------------- */
void gam_memory(gam_memory_stats *stats);
int gam_empty_cache(void);

/* ---- lifetime ----------------------------------------------------------- */
void gam_retain(gam_tensor *t);
void gam_release(gam_tensor *t);

/* ---- creation ----------------------------------------------------------- */
int gam_empty(gam_tensor **out, int dtype, int device, int ndim, const int64_t *shape);
int gam_zeros(gam_tensor **out, int dtype, int device, int ndim, const int64_t *shape);
int gam_full(gam_tensor **out, int dtype, int device, int ndim, const int64_t *shape, double value);
int gam_from_data(gam_tensor **out, int dtype, int ndim, const int64_t *shape, const void *data);
int gam_arange(gam_tensor **out, int dtype, double start, double stop, double step);
int gam_copy_to_host(const gam_tensor *t, void *dst, size_t bytes); /* contiguous element dump */
int gam_to_device(gam_tensor **out, gam_tensor *t, int device);
int gam_to_dtype(gam_tensor **out, gam_tensor *t, int dtype);
int gam_item(const gam_tensor *t, double *value);

/* ---- random (one global generator; same seed, same numbers) ------------- */
int gam_manual_seed(uint64_t seed);
int gam_rng_get_state(uint64_t *state2);
int gam_rng_set_state(const uint64_t *state2);
int gam_rand(gam_tensor **out, int ndim, const int64_t *shape, double lo, double hi);
int gam_randn(gam_tensor **out, int ndim, const int64_t *shape, double mean, double std);
int gam_randint(gam_tensor **out, int ndim, const int64_t *shape, int64_t lo, int64_t hi);
int gam_randperm(gam_tensor **out, int64_t n);

/* ---- autograd ----------------------------------------------------------- */
int gam_set_grad_enabled(int enabled); /* returns the previous mode */
int gam_is_grad_enabled(void);
int gam_set_requires_grad(gam_tensor *t, int flag);
int gam_backward(gam_tensor *t, gam_tensor *grad); /* grad may be NULL for scalars */
int gam_get_grad(gam_tensor **out, gam_tensor *t); /* *out = NULL when none */
int gam_set_grad(gam_tensor *t, gam_tensor *grad); /* grad may be NULL to clear */
int gam_detach(gam_tensor **out, gam_tensor *t);
const char *gam_grad_fn_name(const gam_tensor *t);

/* ---- views and copies (views share storage) ----------------------------- */
int gam_reshape(gam_tensor **out, gam_tensor *t, int ndim, const int64_t *shape); /* one -1 allowed */
int gam_flatten(gam_tensor **out, gam_tensor *t, int start_dim, int end_dim);
int gam_narrow(gam_tensor **out, gam_tensor *t, int64_t start, int64_t length); /* along dim 0 */
int gam_select(gam_tensor **out, gam_tensor *t, int64_t index);                 /* along dim 0 */
int gam_clone(gam_tensor **out, gam_tensor *t);
int gam_copy_(gam_tensor *dst, gam_tensor *src);    /* in place, same numel, no autograd */
int gam_fill_(gam_tensor *t, double value);         /* in place, no autograd */
int gam_transpose(gam_tensor **out, gam_tensor *t); /* 2-D */
int gam_cat(gam_tensor **out, gam_tensor **ts, int n, int dim);
int gam_allclose(const gam_tensor *a, const gam_tensor *b, double rtol, double atol, int *result);

/* ---- elementwise (binary ops broadcast like PyTorch) -------------------- */
int gam_add(gam_tensor **out, gam_tensor *a, gam_tensor *b);
int gam_sub(gam_tensor **out, gam_tensor *a, gam_tensor *b);
int gam_mul(gam_tensor **out, gam_tensor *a, gam_tensor *b);
int gam_div(gam_tensor **out, gam_tensor *a, gam_tensor *b);
int gam_add_scalar(gam_tensor **out, gam_tensor *a, double s);
int gam_mul_scalar(gam_tensor **out, gam_tensor *a, double s);
int gam_rsub_scalar(gam_tensor **out, gam_tensor *a, double s); /* s - a */
int gam_rdiv_scalar(gam_tensor **out, gam_tensor *a, double s); /* s / a */
int gam_pow_scalar(gam_tensor **out, gam_tensor *a, double p);  /* a ^ p */
int gam_neg(gam_tensor **out, gam_tensor *a);
int gam_exp(gam_tensor **out, gam_tensor *a);
int gam_log(gam_tensor **out, gam_tensor *a);
int gam_sqrt(gam_tensor **out, gam_tensor *a);
int gam_abs(gam_tensor **out, gam_tensor *a);
int gam_relu(gam_tensor **out, gam_tensor *a);
int gam_add_(gam_tensor *a, gam_tensor *b, double alpha); /* a += alpha*b, same numel, no autograd */

/* ---- reductions ---------------------------------------------------------- */
int gam_sum(gam_tensor **out, gam_tensor *a); /* all -> scalar */
int gam_mean(gam_tensor **out, gam_tensor *a);
int gam_sum_dim(gam_tensor **out, gam_tensor *a, int dim, int keepdim);
int gam_mean_dim(gam_tensor **out, gam_tensor *a, int dim, int keepdim);
int gam_max_dim(gam_tensor **values, gam_tensor **indices, gam_tensor *a, int dim, int keepdim);
int gam_max(gam_tensor **out, gam_tensor *a); /* all -> scalar */
int gam_argmax(gam_tensor **out, gam_tensor *a, int dim, int keepdim);

/* ---- linear algebra ------------------------------------------------------ */
int gam_matmul(gam_tensor **out, gam_tensor *a, gam_tensor *b); /* [m,k]x[k,n] */
int gam_linear(gam_tensor **out, gam_tensor *x, gam_tensor *w,
               gam_tensor *b); /* x[n,in] w[out,in] b[out]|NULL */

/* ---- softmax and losses -------------------------------------------------- */
int gam_softmax(gam_tensor **out, gam_tensor *a, int dim);
int gam_log_softmax(gam_tensor **out, gam_tensor *a, int dim);
int gam_gather(gam_tensor **out, gam_tensor *a, int dim, gam_tensor *index);
int gam_cross_entropy(gam_tensor **out, gam_tensor *logits, gam_tensor *target); /* per sample [n] */
int gam_smooth_cross_entropy(gam_tensor **out, gam_tensor *logits, gam_tensor *target,
                             double smoothing); /* per sample [n] */

/* ---- flat parameter arena (arena.c) ---------------------------------------- */
/* Moves params into one buffer *flat and their grads into *flat_grad (both 1-D,
 * new references); each param (and its .grad) becomes a view of its slice. */
int gam_flatten_params(gam_tensor **params, int n, gam_tensor **flat, gam_tensor **flat_grad);
int gam_same_storage(const gam_tensor *a, const gam_tensor *b);

/* ---- layers: conv, batch norm, pooling, dropout (ops_conv.c, ops_norm.c, ops_pool.c) */
/* (section owned by the layers work) */
/* All NCHW float32. Pairs are (height, width). Outputs are new references. */
/* y = conv2d(x[N,C,H,W], w[O,C,KH,KW], b[O] or NULL) -> [N,O,OH,OW], groups = 1 */
int gam_conv2d(gam_tensor **out, gam_tensor *x, gam_tensor *w, gam_tensor *b, int stride_h, int stride_w,
               int pad_h, int pad_w, int dil_h, int dil_w);
/* 0: direct kernels (default, PyTorch's choice); 1: Winograd for 3x3 stride-1 convs (faster, ~1e-5 rel. error) */
int gam_conv2d_set_algorithm(int algorithm);
int gam_conv2d_get_algorithm(void);
/* The cache of oneDNN primitives per convolution shape (default 512 shapes,
 * least recently used evicted). Setting the capacity empties the cache. */
int gam_conv2d_set_cache_capacity(int capacity);
int gam_conv2d_cache_size(void);
/* Batch norm over (N, H, W) per channel; x may also be [N,C]. running_mean/var
 * (both or neither) are updated in place when training: (1-m) r + m stat, with
 * the unbiased batch variance; momentum 0 leaves them untouched. weight/bias may
 * be NULL (no affine). Evaluation uses the running statistics. */
int gam_batch_norm(gam_tensor **out, gam_tensor *x, gam_tensor *running_mean, gam_tensor *running_var,
                   gam_tensor *weight, gam_tensor *bias, int training, double momentum, double eps);
int gam_max_pool2d(gam_tensor **out, gam_tensor *x, int kh, int kw, int sh, int sw, int ph, int pw,
                   int ceil_mode);
int gam_avg_pool2d(gam_tensor **out, gam_tensor *x, int kh, int kw, int sh, int sw, int ph, int pw,
                   int ceil_mode, int count_include_pad);
int gam_adaptive_avg_pool2d(gam_tensor **out, gam_tensor *x, int oh, int ow);
/* training: zero each element with probability p (engine RNG), scale the rest
 * by 1/(1-p); otherwise (or p = 0) *out is x itself (a new reference). */
int gam_dropout(gam_tensor **out, gam_tensor *x, double p, int training);

/* ---- optimiser kernels on flat vectors (optim.c) ----------------------------- */
/* (section owned by the optimiser work) */
/* Fused passes over flat float32 vectors of one size (the parameter arena, its
 * gradient, optimiser buffers); reductions accumulate in double. "src" is the
 * point a base step starts from (NULL: the parameter itself), so restoring the
 * weights and updating them is one pass. adaptive (ASAM) scales perturbations
 * by θ² and measures norms as ‖g⊙|θ|‖. */
/* *out = a 1-D view over ts[0..n) when they are consecutive slices of one storage
 * in order (the flat arena); *out = NULL (and 0 returned) when they are not. */
int gam_opt_span(gam_tensor **out, gam_tensor **ts, int n);
int gam_opt_copy(gam_tensor *dst, const gam_tensor *src); /* dst = src, one pass */
/* The base steps without a guard (gam_*_step_s with guard NULL). */
int gam_sgd_step(gam_tensor *param, const gam_tensor *grad, gam_tensor *momentum_buf, const gam_tensor *src,
                 double lr, double momentum, double dampening, double weight_decay, int nesterov, int first);
int gam_adam_step(gam_tensor *param, const gam_tensor *grad, gam_tensor *exp_avg, gam_tensor *exp_avg_sq,
                  const gam_tensor *src, double lr, double beta1, double beta2, double eps,
                  double weight_decay, int decoupled, int64_t step);
/* The sharpness-aware passes with host-side scalars (a norm returned as a
 * double, a coefficient passed as one) are for tests only: engine/gam_test.h. */

/* ---- data: readers, augmentation, loader (data.c) ----------------------------- */
/* (section owned by the data work) */
/* Datasets are uint8 images [N,C,H,W] and int64 labels [N]. Readers check every
 * file completely (size, header, label range) and name the file in errors. */
/* CIFAR binary batches, concatenated in the order given. classes 10: records of
 * 1 label byte + 3072 image bytes; classes 100: coarse byte, fine byte, 3072
 * bytes (fine labels, or coarse ones when coarse = 1). -> [N,3,32,32], [N] */
int gam_read_cifar(gam_tensor **images, gam_tensor **labels, const char *const *paths, int npaths,
                   int classes, int coarse);
/* One IDX file of unsigned bytes, gzip-compressed or plain: uint8, the file's dims. */
int gam_read_idx(gam_tensor **out, const char *path);
/* IDX images [N,H,W] + IDX labels [N] -> images [N,1,H,W], labels int64 [N] < classes */
int gam_read_idx_dataset(gam_tensor **images, gam_tensor **labels, const char *images_path,
                         const char *labels_path, int classes);

typedef struct gam_augment {
  int pad;       /* random crop: zero-pad by pad pixels, crop H x W at a random offset; 0 = off */
  int flip;      /* random horizontal flip with probability 1/2 */
  int cutout;    /* zero a cutout x cutout square (clipped) at a random centre; 0 = off */
  int normalize; /* x = (v/255 - mean[c]) / std[c]; otherwise x = v/255 */
  float mean[4];
  float std[4];
} gam_augment;

/* One batch: x[b] = augment(images[idx[b]]), y[b] = labels[idx[b]], b < n.
 * x float32 [n,C,H,W] and y int64 [n] are written in place. rng is a 2-word
 * xoroshiro128++ state, advanced (draws per sample: crop dy, dx, flip, cutout cy, cx). */
int gam_augment_batch(gam_tensor *x, gam_tensor *y, const gam_tensor *images, const gam_tensor *labels,
                      const int64_t *idx, int64_t n, const gam_augment *aug, uint64_t *rng);
/* 2-word generator state from (seed, a, b): the loader uses (seed, epoch, batch) */
void gam_rng_derive(uint64_t *state2, uint64_t seed, uint64_t a, uint64_t b);

/* The loader: a background thread assembles and augments batch k+1 (up to
 * prefetch batches ahead) while batch k trains. The order of epoch e is a
 * permutation drawn from (seed, e) and the augmentation of batch k from
 * (seed, e, k), so the batches do not depend on thread timing. */
typedef struct gam_loader gam_loader;
int gam_loader_new(gam_loader **out, gam_tensor *images, gam_tensor *labels, int64_t batch_size, int shuffle,
                   int drop_last, const gam_augment *aug, uint64_t seed, int prefetch);
int64_t gam_loader_num_batches(const gam_loader *l);
/* begins epoch `epoch` (stopping a pass in progress) and starts the thread */
int gam_loader_start(gam_loader *l, int64_t epoch);
/* next batch of the pass as new tensors; *x = *y = NULL when the pass is over */
int gam_loader_next(gam_loader *l, gam_tensor **x, gam_tensor **y);
/* stops the pass in progress and joins its thread (no-op when none) */
int gam_loader_stop(gam_loader *l);
void gam_loader_free(gam_loader *l);
/* Data-parallel share of rank of world (DistributedSampler: same order of
 * (seed, epoch) on every rank, padded or cut to a multiple of world, strided). */
int gam_loader_shard(gam_loader *l, int rank, int world, int drop_remainder);
/* worker threads started and not yet joined, over all loaders */
int gam_loader_threads(void);
/* Tests: the worker fails at batch `batch` (0-based) of each pass, -1 = never. */
int gam_loader_fail_at(gam_loader *l, int64_t batch);

/* ---- checkpoints (checkpoint.c) ------------------------------------------------ */
/* (section owned by the checkpoint work) */
/* zlib CRC-32 of n bytes continuing from crc (start with 0) */
uint32_t gam_crc32(uint32_t crc, const void *data, size_t n);
/* Writes the n parts to path atomically: a temporary file in the same folder,
 * fsync, rename over path, fsync of the folder. Nothing is left on failure. */
int gam_write_file_atomic(const char *path, int n, const void *const *parts, const size_t *sizes);
/* Removes the stale temporary files a killed write of path left (those no
 * living writer holds); *removed (may be NULL) counts them. */
int gam_clean_temps(const char *path, int *removed);
/* Reads a whole file into a new buffer (*data, *size), freed with gam_free_buffer. */
int gam_read_file(const char *path, void **data, size_t *size);
void gam_free_buffer(void *data);
/* ---- cuda (section owned by the cuda work) ------------------------------------- */
/* 1 when libgam was compiled with the CUDA backend. */
int gam_cuda_built(void);
/* 1 when a CUDA device can be used, 0 otherwise (quietly). The CUDA runtime is
 * first touched by this call or by the first cuda tensor, never before. */
int gam_cuda_available(void);
/* Waits until the device has finished all queued work (for timing); 0 at once
 * when the device was never used. */
int gam_cuda_synchronize(void);
/* cuDNN's convolution algorithm choice (gam.cudnn in Lua, as torch.backends.cudnn).
 * benchmark 1: a shape's first use times the allowed algorithms (cudnnFind*)
 * and keeps the fastest; 0 (the default): the heuristics' first allowed one.
 * deterministic 1 (the default): only algorithms that give the same bits on
 * every run, and no FFT or Winograd variant; 0: every algorithm. A flag of -1
 * is left as it is, other values than 0 and 1 are an error. Changing a flag
 * forgets the algorithms chosen so far. Any build stores the flags. */
int gam_cudnn_set(int benchmark, int deterministic);
void gam_cudnn_get(int *benchmark, int *deterministic);
/* The CUDA stack, for reports (make test-cuda prints it first). Versions as
 * CUDA writes them: driver and runtime 1000 major + 10 minor (the driver's is
 * the newest CUDA it supports), cuDNN's cudnnGetVersion() (e.g. 90100); the
 * name, compute capability and memory of device 0. 0 / "" where unknown (no
 * device: name "", the versions still filled). -1 with an error in a build
 * without CUDA. */
typedef struct gam_cuda_info {
  int driver, runtime, cudnn, cudnn_compiled, cc_major, cc_minor, devices;
  int64_t memory_bytes;
  char name[256];
} gam_cuda_info;
int gam_cuda_info_get(gam_cuda_info *info);
/* How many times the host has waited for the device so far (copies to the
 * host, gam_cuda_synchronize, empty_cache, a staging buffer still in use):
 * the difference over a training step counts its host waits. 0 without CUDA. */
int64_t gam_cuda_host_waits(void);
/* Philox4x32-10 on the host: out = the block of counter ctr under key (the
 * generator of the cuda dropout masks; for tests and reproducing a mask). */
void gam_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
/* Cross-entropy's target check without a wait inside an optimiser step: while
 * a scalars block s (gam_opt_scalars) is watched, a cross-entropy whose
 * targets are on s's device does not read them on the host; a target outside
 * [0, classes) records, when s's flag is still 0, flag = GAM_OPT_CODE_TARGET,
 * bad = the target, s[GAM_OPT_POS] = its sample (0-based), s[GAM_OPT_HI] =
 * the classes: reported at the step's one read. Not watched (NULL; a plain
 * forward), the check waits and fails at once. */
enum { GAM_OPT_POS = 6, GAM_OPT_HI = 7, GAM_OPT_CODE_TARGET = 1000 };
int gam_opt_watch_targets(gam_tensor *s);

/* Optimiser passes whose scalars stay on the parameters' device (optim.c; on
 * cuda: kernels/optim.cu). A step's scalars live in a block made by
 * gam_opt_scalars: GAM_OPT_NSCALARS float64 values (an int64 tensor holding
 * their bits) on the device of the vectors. A reduction writes slot 0 (a
 * norm) or slots 0-2 (‖a‖², ⟨a,b⟩, ‖b‖²); a pass that needs a coefficient
 * computes it from the block itself: "rho" passes use rho / (s[0] + ξ), the
 * decomposition c = s[1] / (√s[0] √s[2] + ξ) · √s[2] / (√s[0] + ξ) (the
 * formulas of engine/optim_math.h, where ξ is defined). A
 * check code c > 0 makes a reduction record a non-finite result: when the
 * flag slot is still 0, flag = c and bad = the value. The guarded base steps
 * (gam_*_step_s) only restore param = src when the flag is set. So a GAM or
 * SAM step on the GPU queues every pass without waiting and reads the block
 * once at its end (gam_opt_read). Their host-scalar twins (for tests) are in
 * engine/gam_test.h. */
/* the block's slots: a norm (NORM), or {‖a‖², ⟨a,b⟩, ‖b‖²} (AA, AB, BB); the
 * check's flag and bad value; pass 0's loss */
enum {
  GAM_OPT_NORM = 0,
  GAM_OPT_AA = 0,
  GAM_OPT_AB = 1,
  GAM_OPT_BB = 2,
  GAM_OPT_FLAG = 3,
  GAM_OPT_BAD = 4,
  GAM_OPT_LOSS = 5,
  GAM_OPT_NSCALARS = 8
};
int gam_opt_scalars(gam_tensor **out, int device);  /* a zeroed block */
int gam_opt_read(const gam_tensor *s, double *out); /* all slots to the host (waits) */
int gam_opt_clear(gam_tensor *s);                   /* every slot = 0 */
/* loss: a float32 scalar tensor; keep: also s[GAM_OPT_LOSS] = loss */
int gam_opt_check_loss(gam_tensor *s, const gam_tensor *loss, int code, int keep);
int gam_opt_norm_s(gam_tensor *s, const gam_tensor *g, const gam_tensor *w, int code);
int gam_opt_ascend_s(gam_tensor *theta, gam_tensor *theta_save, const gam_tensor *g, gam_tensor *g_save,
                     double rho, const gam_tensor *s, int adaptive);
int gam_opt_dot3_s(gam_tensor *s, const gam_tensor *a, const gam_tensor *b, int code0, int code2);
int gam_opt_decompose_s(gam_tensor *h, const gam_tensor *v, double weight, const gam_tensor *s);
int gam_gam_pass1_s(gam_tensor *s, gam_tensor *hplus, const gam_tensor *g, const gam_tensor *g0,
                    const gam_tensor *theta0, double alpha, int adaptive, int code);
int gam_gam_ascend_h0_s(gam_tensor *theta, const gam_tensor *theta0, const gam_tensor *g,
                        const gam_tensor *g0, double rho, const gam_tensor *s, int adaptive);
int gam_gam_pass2_s(gam_tensor *s, gam_tensor *g0_hminus, const gam_tensor *g, const gam_tensor *theta,
                    double c0, double c1, int adaptive, int code);
int gam_gam_pass3_s(gam_tensor *s, gam_tensor *g, const gam_tensor *hplus, const gam_tensor *hminus, double c,
                    int code0, int code2);
int gam_sgd_step_s(gam_tensor *param, const gam_tensor *grad, gam_tensor *momentum_buf, const gam_tensor *src,
                   double lr, double momentum, double dampening, double weight_decay, int nesterov, int first,
                   const gam_tensor *guard);
int gam_adam_step_s(gam_tensor *param, const gam_tensor *grad, gam_tensor *exp_avg, gam_tensor *exp_avg_sq,
                    const gam_tensor *src, double lr, double beta1, double beta2, double eps,
                    double weight_decay, int decoupled, int64_t step, const gam_tensor *guard);

/* Data-parallel collectives (dist.c). gam_dist_init: under an MPI launcher
 * (mpirun) initialises MPI; alone: rank 0 of size 1 and no MPI call. The
 * tensor collectives work in place on cpu (MPI) or cuda (NCCL) tensors. */
int gam_dist_init(void);
int gam_dist_initialized(void);
int gam_dist_built_with_mpi(void);
int gam_dist_rank(void);
int gam_dist_size(void);
int gam_dist_all_reduce(gam_tensor *t, int mean); /* sum, or mean (float32) */
int gam_dist_broadcast(gam_tensor *t, int root);
int gam_dist_barrier(void);
int gam_dist_min_max(const double *v, int n, double *lo, double *hi);
int gam_dist_sum_doubles(double *v, int n);
void gam_dist_abort(int code); /* ends the job; never returns */
/* *out = Σ_ranks x as a new tensor, differentiable (its backward all-reduces
 * the gradient): the cross-rank statistics of nn.SyncBatchNorm */
int gam_dist_all_reduce_sum_grad(gam_tensor **out, gam_tensor *x);
/* GAM_FFI_END */

#endif
