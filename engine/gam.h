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
  int dtype;            /* GAM_FLOAT32 | GAM_INT64 | GAM_UINT8 */
  int device;           /* GAM_CPU | GAM_CUDA */
  int ndim;             /* 0 .. GAM_MAX_DIMS; 0 is a scalar */
  int64_t shape[8];
  int64_t numel;
  int64_t offset;       /* first element, in elements, within storage */
  gam_storage *storage;
  int requires_grad;    /* leaf asking for .grad, or result of such */
  struct gam_tensor *grad;  /* accumulated gradient (leaves), may be NULL */
  gam_node *grad_fn;    /* the op that made this tensor, NULL for leaves */
} gam_tensor;

typedef struct gam_memory_stats {
  int64_t live_tensors;     /* tensor headers alive */
  int64_t live_bytes;       /* bytes of storage alive (all devices) */
  int64_t peak_bytes;
  int64_t cached_bytes;     /* held by the caching allocator, free for reuse */
  int64_t device_live_bytes;
  int64_t device_cached_bytes;
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
int gam_copy_to_host(const gam_tensor *t, void *dst, size_t bytes);   /* contiguous element dump */
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
int gam_set_grad_enabled(int enabled);     /* returns the previous mode */
int gam_is_grad_enabled(void);
int gam_set_requires_grad(gam_tensor *t, int flag);
int gam_backward(gam_tensor *t, gam_tensor *grad);  /* grad may be NULL for scalars */
int gam_get_grad(gam_tensor **out, gam_tensor *t);  /* *out = NULL when none */
int gam_set_grad(gam_tensor *t, gam_tensor *grad);  /* grad may be NULL to clear */
int gam_detach(gam_tensor **out, gam_tensor *t);
const char *gam_grad_fn_name(const gam_tensor *t);

/* ---- views and copies (views share storage) ----------------------------- */
int gam_reshape(gam_tensor **out, gam_tensor *t, int ndim, const int64_t *shape); /* one -1 allowed */
int gam_flatten(gam_tensor **out, gam_tensor *t, int start_dim, int end_dim);
int gam_narrow(gam_tensor **out, gam_tensor *t, int64_t start, int64_t length);   /* along dim 0 */
int gam_select(gam_tensor **out, gam_tensor *t, int64_t index);                   /* along dim 0 */
int gam_clone(gam_tensor **out, gam_tensor *t);
int gam_copy_(gam_tensor *dst, gam_tensor *src);     /* in place, same numel, no autograd */
int gam_fill_(gam_tensor *t, double value);           /* in place, no autograd */
int gam_transpose(gam_tensor **out, gam_tensor *t);   /* 2-D */
int gam_cat(gam_tensor **out, gam_tensor **ts, int n, int dim);
int gam_allclose(const gam_tensor *a, const gam_tensor *b, double rtol, double atol, int *result);

/* ---- elementwise (binary ops broadcast like PyTorch) -------------------- */
int gam_add(gam_tensor **out, gam_tensor *a, gam_tensor *b);
int gam_sub(gam_tensor **out, gam_tensor *a, gam_tensor *b);
int gam_mul(gam_tensor **out, gam_tensor *a, gam_tensor *b);
int gam_div(gam_tensor **out, gam_tensor *a, gam_tensor *b);
int gam_add_scalar(gam_tensor **out, gam_tensor *a, double s);
int gam_mul_scalar(gam_tensor **out, gam_tensor *a, double s);
int gam_rsub_scalar(gam_tensor **out, gam_tensor *a, double s);    /* s - a */
int gam_rdiv_scalar(gam_tensor **out, gam_tensor *a, double s);    /* s / a */
int gam_pow_scalar(gam_tensor **out, gam_tensor *a, double p);     /* a ^ p */
int gam_neg(gam_tensor **out, gam_tensor *a);
int gam_exp(gam_tensor **out, gam_tensor *a);
int gam_log(gam_tensor **out, gam_tensor *a);
int gam_sqrt(gam_tensor **out, gam_tensor *a);
int gam_abs(gam_tensor **out, gam_tensor *a);
int gam_relu(gam_tensor **out, gam_tensor *a);
int gam_add_(gam_tensor *a, gam_tensor *b, double alpha);  /* a += alpha*b, same numel, no autograd */

/* ---- reductions ---------------------------------------------------------- */
int gam_sum(gam_tensor **out, gam_tensor *a);                        /* all -> scalar */
int gam_mean(gam_tensor **out, gam_tensor *a);
int gam_sum_dim(gam_tensor **out, gam_tensor *a, int dim, int keepdim);
int gam_mean_dim(gam_tensor **out, gam_tensor *a, int dim, int keepdim);
int gam_max_dim(gam_tensor **values, gam_tensor **indices, gam_tensor *a, int dim, int keepdim);
int gam_max(gam_tensor **out, gam_tensor *a);                        /* all -> scalar */
int gam_argmax(gam_tensor **out, gam_tensor *a, int dim, int keepdim);

/* ---- linear algebra ------------------------------------------------------ */
int gam_matmul(gam_tensor **out, gam_tensor *a, gam_tensor *b);      /* [m,k]x[k,n] */
int gam_linear(gam_tensor **out, gam_tensor *x, gam_tensor *w, gam_tensor *b); /* x[n,in] w[out,in] b[out]|NULL */

/* ---- softmax and losses -------------------------------------------------- */
int gam_softmax(gam_tensor **out, gam_tensor *a, int dim);
int gam_log_softmax(gam_tensor **out, gam_tensor *a, int dim);
int gam_gather(gam_tensor **out, gam_tensor *a, int dim, gam_tensor *index);
int gam_cross_entropy(gam_tensor **out, gam_tensor *logits, gam_tensor *target);          /* per sample [n] */
int gam_smooth_cross_entropy(gam_tensor **out, gam_tensor *logits, gam_tensor *target, double smoothing); /* per sample [n] */

/* ---- flat parameter arena (arena.c) ---------------------------------------- */
/* Moves params into one buffer *flat and their grads into *flat_grad (both 1-D,
 * new references); each param (and its .grad) becomes a view of its slice. */
int gam_flatten_params(gam_tensor **params, int n, gam_tensor **flat, gam_tensor **flat_grad);
int gam_same_storage(const gam_tensor *a, const gam_tensor *b);

/* ---- layers: conv, batch norm, pooling, dropout (ops_conv.c, ops_norm.c, ops_pool.c) */
/* (section owned by the layers work) */

/* ---- optimiser kernels on flat vectors (optim.c) ----------------------------- */
/* (section owned by the optimiser work) */

/* ---- data: readers, augmentation, loader (data.c) ----------------------------- */
/* (section owned by the data work) */

/* ---- checkpoints (checkpoint.c) ------------------------------------------------ */
/* (section owned by the checkpoint work) */
/* GAM_FFI_END */

#endif
