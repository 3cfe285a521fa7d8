/* internal.h — helpers shared by the engine's files; not installed. */
#ifndef GAM_INTERNAL_H
#define GAM_INTERNAL_H
#include "gam.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors: gam__err sets the message and returns -1 -------------------- */
int gam__err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define GAM_TRY(x)           \
  do {                       \
    if ((x) != 0) return -1; \
  } while (0)
#define GAM_CHECK(cond, ...)                   \
  do {                                         \
    if (!(cond)) return gam__err(__VA_ARGS__); \
  } while (0)

/* ---- dtype and shape helpers ---------------------------------------------- */
size_t gam__dtype_size(int dtype);
const char *gam__dtype_name(int dtype);
const char *gam__device_name(int device);
/* 1 for a device this build knows (GAM_CPU, GAM_CUDA), whether usable or not */
int gam__device_valid(int device);
/* "[2,3,4]" into buf (at least 160 bytes) */
const char *gam__shape_str(const gam_tensor *t, char *buf);
/* NULL or freed tensors, absurd fields: error naming op and argument.
 * Every op does its device work through the backend table (backend.h), so
 * ops check with the _dev forms, which accept a tensor on any device.
 * gam__check and gam__check_float are for host-only code that reads the
 * elements itself (the data loader): they also refuse tensors off the host
 * ("augment: images is on cuda, and augment has no cuda implementation yet"). */
int gam__check(const gam_tensor *t, const char *op, const char *arg);
int gam__check_float(const gam_tensor *t, const char *op, const char *arg);
int gam__check_dev(const gam_tensor *t, const char *op, const char *arg);
int gam__check_float_dev(const gam_tensor *t, const char *op, const char *arg);
/* both on one device, or "<op>: operands are on cpu and cuda" */
int gam__same_device(const char *op, const gam_tensor *a, const gam_tensor *b);
/* validates dim against ndim (negative counts from the end); writes 0-based */
int gam__dim(const char *op, int dim, int ndim, int *out);
int gam__same_shape(const gam_tensor *a, const gam_tensor *b);
int64_t gam__numel(int ndim, const int64_t *shape);

static inline void *gam__data(const gam_tensor *t) {
  return (char *)t->storage->data + (size_t)t->offset * gam__dtype_size(t->dtype);
}
/* View t as [outer, size, inner] around dim d (reductions, softmax, gather). */
static inline void gam__split_at(const gam_tensor *t, int d, int64_t *outer, int64_t *size, int64_t *inner) {
  *outer = 1;
  *inner = 1;
  for (int k = 0; k < d; k++) *outer *= t->shape[k];
  for (int k = d + 1; k < t->ndim; k++) *inner *= t->shape[k];
  *size = t->shape[d];
}
static inline float *gam__f32(const gam_tensor *t) { return (float *)gam__data(t); }
static inline int64_t *gam__i64(const gam_tensor *t) { return (int64_t *)gam__data(t); }

/* ---- allocation (counted; CPU and device blocks come from caching allocators) */
void *gam__host_alloc(size_t bytes); /* 64-byte aligned, NULL on failure */
void gam__host_free(void *p, size_t bytes);
/* Drops one reference to a storage and frees it (on its device) at zero. */
void gam__storage_release(gam_storage *s);
void gam__count_tensor(int delta); /* live tensor header count */
/* New tensor with fresh storage (uninitialised). NULL + error set on failure. */
gam_tensor *gam__new(int dtype, int device, int ndim, const int64_t *shape);
gam_tensor *gam__new_like(const gam_tensor *t);
gam_tensor *gam__new_zeros_like(const gam_tensor *t);
/* New header over t's storage: shape given, element offset relative to t. */
gam_tensor *gam__alias(gam_tensor *t, int ndim, const int64_t *shape, int64_t offset);
/* Releases a list of tensors (NULLs skipped); always returns -1 for error paths. */
int gam__fail(int n, ...);

/* ---- autograd ------------------------------------------------------------- */
typedef int (*gam_backward_fn)(gam_node *n, gam_tensor *grad_out);
enum { GAM_NODE_SAVED = 4 };
struct gam_node {
  int refcount;
  const char *name;
  gam_backward_fn backward;
  int ninputs;
  gam_tensor **inputs;               /* owned refs, ninputs of them */
  gam_tensor *saved[GAM_NODE_SAVED]; /* owned refs to what backward needs */
  void *ctx;                         /* the op's typed state (its own struct, see
                                            gam__node_ctx), freed with ctx_free */
  void (*ctx_free)(void *);
  int64_t out_shape[GAM_MAX_DIMS];
  int out_ndim;
  /* backward bookkeeping */
  gam_tensor *grad; /* gradient w.r.t. this node's output */
  unsigned mark;
  int freed; /* saved state released after backward */
};

/* 1 when grad mode is on and some input requires grad. */
int gam__grad_needed(int n, gam_tensor *const *inputs);
/* Makes the node for out = op(inputs) and links it; NULL + error on failure
 * (out is left untouched, caller releases it). */
gam_node *gam__record(gam_tensor *out, const char *name, gam_backward_fn fn, int n,
                      gam_tensor *const *inputs);
/* Keeps t alive for backward. For the op's own output pass it: the node saves
 * an alias without grad_fn, so no reference cycle forms. */
int gam__save(gam_node *n, int slot, gam_tensor *t);
/* The node's typed backward state: bytes of zeroed memory in n->ctx, freed
 * with the node's saved state (after backward, or with the node). NULL +
 * error on failure. Each op declares its own small struct for it. */
void *gam__node_ctx(gam_node *n, size_t bytes);
int gam__input_needs_grad(const gam_node *n, int i);
/* Adds g (shape of input i) into the gradient of input i. g is borrowed. */
int gam__accumulate(gam_node *n, int i, gam_tensor *g);
/* Sums g over broadcast dims down to shape (ndim, shape). New reference. */
int gam__reduce_to_shape(gam_tensor **out, gam_tensor *g, int ndim, const int64_t *shape);
void gam__node_release(gam_node *n);

/* ---- random (random.c): the global generator ---------------------------- */
/* xoroshiro128++ steps on a caller-owned state s[2], shared by the global
 * generator (random.c) and the loader's own generators (data.c). */
static inline uint64_t gam__splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
static inline uint64_t gam__rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static inline uint64_t gam__xoro_next(uint64_t *s) {
  uint64_t s0 = s[0], s1 = s[1];
  uint64_t r = gam__rotl64(s0 + s1, 17) + s0;
  s1 ^= s0;
  s[0] = gam__rotl64(s0, 49) ^ s1 ^ (s1 << 21);
  s[1] = gam__rotl64(s1, 28);
  return r;
}
/* uniform integer in [0, n), n > 0, without modulo bias */
static inline uint64_t gam__xoro_below(uint64_t *s, uint64_t n) {
  uint64_t limit = UINT64_MAX - UINT64_MAX % n, x;
  do x = gam__xoro_next(s);
  while (x >= limit);
  return x % n;
}
uint64_t gam__rng_next(void);
double gam__rng_uniform(void);       /* [0, 1) */
uint64_t gam__rng_below(uint64_t n); /* [0, n) */

/* ---- threads -------------------------------------------------------------- */
/* true where a loop of n elements is worth an OpenMP team */
#define GAM_PAR_MIN 32768

#endif
