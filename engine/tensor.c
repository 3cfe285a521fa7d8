/* tensor.c — tensor headers, storage, creation, conversion, views and copies.
 * Storage lives on the cpu or the cuda device; every function here has a
 * device branch (copies through the runtime, fills and conversions through
 * kernels/copy.cu), and the two devices meet only in gam_to_device and
 * gam_copy_. */
#include "internal.h"
#include "cuda_backend.h"
#include <math.h>

/* ---- storage and headers -------------------------------------------------- */
static gam_storage *storage_new(int device, size_t bytes) {
  if (device != GAM_CPU && device != GAM_CUDA) {
    gam__err("tensor: unknown device %d", device);
    return NULL;
  }
  gam_storage *s = calloc(1, sizeof *s);
  if (!s) { gam__err("out of memory allocating a storage header"); return NULL; }
  s->data = device == GAM_CPU ? gam__host_alloc(bytes) : gam__device_alloc(bytes);
  if (!s->data) { free(s); return NULL; }
  s->refcount = 1;
  s->device = device;
  s->bytes = bytes;
  return s;
}

void gam__storage_release(gam_storage *s) {
  if (!s || --s->refcount > 0) return;
  if (s->device == GAM_CUDA) gam__device_free(s->data, s->bytes);
  else gam__host_free(s->data, s->bytes);
  free(s);
}

static size_t nbytes(const gam_tensor *t) { return (size_t)t->numel * gam__dtype_size(t->dtype); }

/* device-to-device copy of a whole tensor's elements (same dtype and numel) */
static int d2d(gam_tensor *dst, const gam_tensor *src, const char *op) {
  if (!nbytes(src)) return 0;
  return gam_cuda__memcpy(gam__data(dst), gam__data(src), nbytes(src), GAM_COPY_D2D, op);
}

static int check_shape(const char *op, int ndim, const int64_t *shape) {
  GAM_CHECK(ndim >= 0 && ndim <= GAM_MAX_DIMS, "%s: a tensor has 0 to %d dims, got %d", op,
            GAM_MAX_DIMS, ndim);
  GAM_CHECK(ndim == 0 || shape, "%s: shape is missing", op);
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) {
    GAM_CHECK(shape[d] >= 0, "%s: size %lld of dim %d is negative", op, (long long)shape[d], d + 1);
    GAM_CHECK(shape[d] == 0 || n <= ((int64_t)1 << 40) / shape[d],
              "%s: shape is absurdly large (more than 2^40 elements)", op);
    n *= shape[d];
  }
  return 0;
}

static gam_tensor *header_new(int dtype, int device, int ndim, const int64_t *shape) {
  gam_tensor *t = calloc(1, sizeof *t);
  if (!t) { gam__err("out of memory allocating a tensor header"); return NULL; }
  t->refcount = 1;
  t->dtype = dtype;
  t->device = device;
  t->ndim = ndim;
  for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
  t->numel = gam__numel(ndim, shape);
  gam__count_tensor(1);
  return t;
}

gam_tensor *gam__new(int dtype, int device, int ndim, const int64_t *shape) {
  if (check_shape("tensor", ndim, shape) != 0) return NULL;
  if (gam__dtype_size(dtype) == 0) { gam__err("tensor: unknown dtype %d", dtype); return NULL; }
  gam_tensor *t = header_new(dtype, device, ndim, shape);
  if (!t) return NULL;
  t->storage = storage_new(device, (size_t)t->numel * gam__dtype_size(dtype));
  if (!t->storage) {
    if (device == GAM_CUDA && strncmp(gam_last_error(), "out of memory", 13) == 0) {
      char msg[1024], b[160]; /* name the request: what tensor was asked for */
      snprintf(msg, sizeof msg, "%s", gam_last_error());
      gam__err("%s, for a %s tensor of shape %s", msg, gam__dtype_name(dtype), gam__shape_str(t, b));
    }
    free(t);
    gam__count_tensor(-1);
    return NULL;
  }
  return t;
}

gam_tensor *gam__new_like(const gam_tensor *t) {
  return gam__new(t->dtype, t->device, t->ndim, t->shape);
}

gam_tensor *gam__new_zeros_like(const gam_tensor *t) {
  gam_tensor *z = gam__new_like(t);
  if (!z) return NULL;
  if (z->device == GAM_CPU) {
    memset(gam__data(z), 0, nbytes(z));
  } else if (nbytes(z) && gam_cuda__memset(gam__data(z), 0, nbytes(z), "zeros") != 0) {
    gam_release(z);
    return NULL;
  }
  return z;
}

gam_tensor *gam__alias(gam_tensor *t, int ndim, const int64_t *shape, int64_t offset) {
  gam_tensor *v = header_new(t->dtype, t->device, ndim, shape);
  if (!v) return NULL;
  v->storage = t->storage;
  v->storage->refcount++;
  v->offset = t->offset + offset;
  return v;
}

void gam_retain(gam_tensor *t) {
  if (t) t->refcount++;
}

/* Freeing a tensor frees its graph node, which releases the node's inputs,
 * which may free their nodes in turn: done recursively, a chain of a million
 * ops would need a million stack frames. So the outermost gam_release drains
 * a queue of the tensors whose count reached zero meanwhile. */
static _Thread_local struct { gam_tensor **v; size_t n, cap; int draining; } dead;

static void free_tensor(gam_tensor *t) {
  gam__storage_release(t->storage);
  t->storage = NULL;
  gam_release(t->grad);
  gam__node_release(t->grad_fn);
  gam__count_tensor(-1);
  free(t);
}

static int queue_dead(gam_tensor *t) {
  if (dead.n == dead.cap) {
    size_t cap = dead.cap ? dead.cap * 2 : 256;
    gam_tensor **v = realloc(dead.v, cap * sizeof *v);
    if (!v) return 0;
    dead.v = v;
    dead.cap = cap;
  }
  dead.v[dead.n++] = t;
  return 1;
}

void gam_release(gam_tensor *t) {
  if (!t || --t->refcount > 0) return;
  if (dead.draining) {
    if (!queue_dead(t)) free_tensor(t); /* out of memory: recurse instead */
    return;
  }
  dead.draining = 1;
  free_tensor(t);
  while (dead.n) free_tensor(dead.v[--dead.n]);
  dead.draining = 0;
}

int gam__fail(int n, ...) {
  va_list ap;
  va_start(ap, n);
  for (int k = 0; k < n; k++) gam_release(va_arg(ap, gam_tensor *));
  va_end(ap);
  return -1;
}

/* ---- creation ------------------------------------------------------------- */
int gam_empty(gam_tensor **out, int dtype, int device, int ndim, const int64_t *shape) {
  if (device == GAM_CUDA) GAM_TRY(gam__cuda_require("empty"));
  *out = gam__new(dtype, device, ndim, shape);
  return *out ? 0 : -1;
}

int gam_zeros(gam_tensor **out, int dtype, int device, int ndim, const int64_t *shape) {
  return gam_full(out, dtype, device, ndim, shape, 0.0);
}

int gam_full(gam_tensor **out, int dtype, int device, int ndim, const int64_t *shape,
             double value) {
  GAM_TRY(gam_empty(out, dtype, device, ndim, shape));
  if (gam_fill_(*out, value) != 0) {
    gam_release(*out);
    *out = NULL;
    return -1;
  }
  return 0;
}

int gam_from_data(gam_tensor **out, int dtype, int ndim, const int64_t *shape, const void *data) {
  GAM_TRY(gam_empty(out, dtype, GAM_CPU, ndim, shape));
  if ((*out)->numel) {
    GAM_CHECK(data, "tensor: data pointer is NULL");
    memcpy(gam__data(*out), data, (size_t)(*out)->numel * gam__dtype_size(dtype));
  }
  return 0;
}

int gam_arange(gam_tensor **out, int dtype, double start, double stop, double step) {
  GAM_CHECK(step != 0 && isfinite(step) && isfinite(start) && isfinite(stop),
            "arange: step must be non-zero and the bounds finite");
  double n = ceil((stop - start) / step);
  if (n < 0) n = 0;
  GAM_CHECK(n < 1e12, "arange: %g elements is absurdly many", n);
  int64_t shape[1] = {(int64_t)n};
  GAM_TRY(gam_empty(out, dtype, GAM_CPU, 1, shape));
  for (int64_t i = 0; i < shape[0]; i++) {
    double v = start + (double)i * step;
    if (dtype == GAM_FLOAT32) gam__f32(*out)[i] = (float)v;
    else if (dtype == GAM_INT64) gam__i64(*out)[i] = (int64_t)v;
    else ((uint8_t *)gam__data(*out))[i] = (uint8_t)v;
  }
  return 0;
}

int gam_copy_to_host(const gam_tensor *t, void *dst, size_t bytes) {
  GAM_TRY(gam__check_dev(t, "copy_to_host", "tensor"));
  size_t need = nbytes(t);
  GAM_CHECK(bytes >= need, "copy_to_host: buffer of %zu bytes is smaller than %zu", bytes, need);
  if (!need) return 0;
  if (t->device == GAM_CUDA) return gam_cuda__memcpy(dst, gam__data(t), need, GAM_COPY_D2H, "copy_to_host");
  memcpy(dst, gam__data(t), need);
  return 0;
}

/* a copy of t on the other device (same dtype and shape), no autograd */
static int transfer(gam_tensor **out, gam_tensor *t, int device, const char *op) {
  gam_tensor *r = gam__new(t->dtype, device, t->ndim, t->shape);
  if (!r) return -1;
  if (nbytes(t) && gam_cuda__memcpy(gam__data(r), gam__data(t), nbytes(t),
                                    device == GAM_CUDA ? GAM_COPY_H2D : GAM_COPY_D2H, op) != 0)
    return gam__fail(1, r);
  *out = r;
  return 0;
}

/* the gradient goes back to the input's device */
static int to_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *gx = NULL;
  GAM_TRY(transfer(&gx, g, n->inputs[0]->device, "to backward"));
  int rc = gam__accumulate(n, 0, gx);
  gam_release(gx);
  return rc;
}

int gam_to_device(gam_tensor **out, gam_tensor *t, int device) {
  GAM_TRY(gam__check_dev(t, "to", "tensor"));
  GAM_CHECK(device == GAM_CPU || device == GAM_CUDA, "to: unknown device %d", device);
  if (device == t->device) {
    gam_retain(t);
    *out = t;
    return 0;
  }
  if (device == GAM_CUDA) GAM_TRY(gam__cuda_require("to"));
  gam_tensor *r = NULL;
  GAM_TRY(transfer(&r, t, device, "to"));
  if (gam__grad_needed(1, &t) && !gam__record(r, "to", to_backward, 1, &t)) return gam__fail(1, r);
  *out = r;
  return 0;
}

static double load_elem(const gam_tensor *t, int64_t i) {
  switch (t->dtype) {
    case GAM_FLOAT32: return gam__f32(t)[i];
    case GAM_INT64: return (double)gam__i64(t)[i];
    default: return ((const uint8_t *)gam__data(t))[i];
  }
}

int gam_to_dtype(gam_tensor **out, gam_tensor *t, int dtype) {
  GAM_TRY(gam__check_dev(t, "to_dtype", "tensor"));
  GAM_CHECK(gam__dtype_size(dtype), "to_dtype: unknown dtype %d", dtype);
  if (t->dtype == dtype) { gam_retain(t); *out = t; return 0; }
  gam_tensor *r = gam__new(dtype, t->device, t->ndim, t->shape);
  if (!r) return -1;
  int64_t n = t->numel;
  if (t->device == GAM_CUDA) {
    if (gam_cuda_convert(gam__data(r), dtype, gam__data(t), t->dtype, n) != 0) return gam__fail(1, r);
    *out = r;
    return 0;
  }
  if (dtype == GAM_FLOAT32) {
    float *o = gam__f32(r);
    for (int64_t i = 0; i < n; i++) o[i] = (float)load_elem(t, i);
  } else if (dtype == GAM_INT64) {
    int64_t *o = gam__i64(r);
    for (int64_t i = 0; i < n; i++) o[i] = (int64_t)load_elem(t, i);
  } else {
    uint8_t *o = gam__data(r);
    for (int64_t i = 0; i < n; i++) o[i] = (uint8_t)(int64_t)load_elem(t, i);
  }
  *out = r;
  return 0;
}

int gam_item(const gam_tensor *t, double *value) {
  GAM_TRY(gam__check_dev(t, "item", "tensor"));
  GAM_CHECK(t->numel == 1, "item: tensor has %lld elements, expected exactly one",
            (long long)t->numel);
  if (t->device == GAM_CUDA) { /* the element to the host (waits for the device) */
    union { float f; int64_t i; uint8_t u; } v = {.i = 0};
    GAM_TRY(gam_cuda__memcpy(&v, gam__data(t), nbytes(t), GAM_COPY_D2H, "item"));
    *value = t->dtype == GAM_FLOAT32 ? v.f : t->dtype == GAM_INT64 ? (double)v.i : v.u;
    return 0;
  }
  *value = load_elem(t, 0);
  return 0;
}

/* ---- views: reshape, flatten, narrow, select (share storage) ------------- */
static int view_backward(gam_node *n, gam_tensor *g) {
  /* reshape-like views: gradient is g reshaped to the input's shape */
  gam_tensor *x = n->inputs[0];
  gam_tensor *gx = gam__alias(g, x->ndim, x->shape, 0);
  if (!gx) return -1;
  int rc = gam__accumulate(n, 0, gx);
  gam_release(gx);
  return rc;
}

static int make_view(gam_tensor **out, gam_tensor *t, int ndim, const int64_t *shape,
                     int64_t offset, const char *name, gam_backward_fn bw) {
  gam_tensor *v = gam__alias(t, ndim, shape, offset);
  if (!v) return -1;
  if (gam__grad_needed(1, &t)) {
    gam_node *n = gam__record(v, name, bw, 1, &t);
    if (!n) return gam__fail(1, v);
    n->i[0] = offset;
  }
  *out = v;
  return 0;
}

int gam_reshape(gam_tensor **out, gam_tensor *t, int ndim, const int64_t *shape) {
  GAM_TRY(gam__check_dev(t, "reshape", "tensor"));
  GAM_CHECK(ndim >= 0 && ndim <= GAM_MAX_DIMS, "reshape: a tensor has 0 to %d dims, got %d",
            GAM_MAX_DIMS, ndim);
  GAM_CHECK(ndim == 0 || shape, "reshape: shape is missing");
  int64_t s[GAM_MAX_DIMS], known = 1;
  int infer = -1;
  for (int d = 0; d < ndim; d++) {
    s[d] = shape[d];
    if (s[d] == -1) {
      GAM_CHECK(infer < 0, "reshape: only one size may be -1");
      infer = d;
    } else {
      GAM_CHECK(s[d] >= 0, "reshape: size %lld of dim %d is invalid", (long long)s[d], d + 1);
      GAM_CHECK(s[d] == 0 || known <= ((int64_t)1 << 40) / s[d], "reshape: shape is absurdly large");
      known *= s[d];
    }
  }
  char b1[160];
  if (infer >= 0) {
    GAM_CHECK(known > 0 && t->numel % known == 0,
              "reshape: cannot infer the -1 size: %lld elements of %s do not divide by %lld",
              (long long)t->numel, gam__shape_str(t, b1), (long long)known);
    s[infer] = t->numel / known;
    known *= s[infer];
  }
  GAM_CHECK(known == t->numel, "reshape: cannot view %s (%lld elements) as %lld elements",
            gam__shape_str(t, b1), (long long)t->numel, (long long)known);
  return make_view(out, t, ndim, s, 0, "reshape", view_backward);
}

int gam_flatten(gam_tensor **out, gam_tensor *t, int start_dim, int end_dim) {
  GAM_TRY(gam__check_dev(t, "flatten", "tensor"));
  if (t->ndim == 0) return gam_reshape(out, t, 1, (int64_t[]){1});
  int s0, s1;
  GAM_TRY(gam__dim("flatten", start_dim, t->ndim, &s0));
  GAM_TRY(gam__dim("flatten", end_dim, t->ndim, &s1));
  GAM_CHECK(s0 <= s1, "flatten: start dim %d is after end dim %d", s0 + 1, s1 + 1);
  int64_t shape[GAM_MAX_DIMS];
  int nd = 0;
  for (int d = 0; d < s0; d++) shape[nd++] = t->shape[d];
  int64_t m = 1;
  for (int d = s0; d <= s1; d++) m *= t->shape[d];
  shape[nd++] = m;
  for (int d = s1 + 1; d < t->ndim; d++) shape[nd++] = t->shape[d];
  return gam_reshape(out, t, nd, shape);
}

static int narrow_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *x = n->inputs[0];
  gam_tensor *gx = gam__new_zeros_like(x);
  if (!gx) return -1;
  size_t bytes = (size_t)g->numel * sizeof(float);
  if (x->device == GAM_CUDA) {
    if (bytes && gam_cuda__memcpy(gam__f32(gx) + n->i[0], gam__f32(g), bytes, GAM_COPY_D2D,
                                  "narrow backward") != 0)
      return gam__fail(1, gx);
  } else {
    memcpy(gam__f32(gx) + n->i[0], gam__f32(g), bytes);
  }
  int rc = gam__accumulate(n, 0, gx);
  gam_release(gx);
  return rc;
}

int gam_narrow(gam_tensor **out, gam_tensor *t, int64_t start, int64_t length) {
  GAM_TRY(gam__check_dev(t, "narrow", "tensor"));
  GAM_CHECK(t->ndim >= 1, "narrow: cannot slice a scalar");
  GAM_CHECK(start >= 0 && length >= 0 && start + length <= t->shape[0],
            "narrow: rows %lld..%lld are outside dim 1 of size %lld", (long long)start + 1,
            (long long)(start + length), (long long)t->shape[0]);
  int64_t shape[GAM_MAX_DIMS];
  memcpy(shape, t->shape, sizeof shape);
  shape[0] = length;
  int64_t row = t->shape[0] ? t->numel / t->shape[0] : 0;
  return make_view(out, t, t->ndim, shape, start * row, "narrow", narrow_backward);
}

int gam_select(gam_tensor **out, gam_tensor *t, int64_t index) {
  GAM_TRY(gam__check_dev(t, "select", "tensor"));
  GAM_CHECK(t->ndim >= 1, "select: cannot index a scalar");
  GAM_CHECK(index >= 0 && index < t->shape[0], "select: index %lld is outside dim 1 of size %lld",
            (long long)index + 1, (long long)t->shape[0]);
  int64_t row = t->numel / t->shape[0];
  return make_view(out, t, t->ndim - 1, t->shape + 1, index * row, "select", narrow_backward);
}

/* ---- copies --------------------------------------------------------------- */
static int clone_backward(gam_node *n, gam_tensor *g) { return gam__accumulate(n, 0, g); }

int gam_clone(gam_tensor **out, gam_tensor *t) {
  GAM_TRY(gam__check_dev(t, "clone", "tensor"));
  gam_tensor *r = gam__new_like(t);
  if (!r) return -1;
  if (t->device == GAM_CUDA) {
    if (d2d(r, t, "clone") != 0) return gam__fail(1, r);
  } else {
    memcpy(gam__data(r), gam__data(t), nbytes(t));
  }
  if (gam__grad_needed(1, &t) && !gam__record(r, "clone", clone_backward, 1, &t))
    return gam__fail(1, r);
  *out = r;
  return 0;
}

/* gam_copy_ across devices or on the device: convert on the source's device
 * (when the dtypes differ), then one copy. Overlapping regions of one storage
 * go through a temporary, as memmove would. */
static int copy_device(gam_tensor *dst, gam_tensor *src) {
  gam_tensor *c;
  GAM_TRY(gam_to_dtype(&c, src, dst->dtype));
  size_t bytes = nbytes(dst);
  int rc = 0;
  if (bytes == 0 || gam__data(dst) == gam__data(c)) {
    rc = 0;
  } else if (dst->device != c->device) {
    rc = gam_cuda__memcpy(gam__data(dst), gam__data(c), bytes,
                          dst->device == GAM_CUDA ? GAM_COPY_H2D : GAM_COPY_D2H, "copy");
  } else {
    char *d = gam__data(dst), *s = gam__data(c);
    int overlap = dst->storage == c->storage && d < s + bytes && s < d + bytes;
    gam_tensor *tmp = NULL;
    if (overlap) {
      tmp = gam__new_like(c);
      if (!tmp || d2d(tmp, c, "copy") != 0) rc = -1;
      else s = gam__data(tmp);
    }
    if (!rc) rc = gam_cuda__memcpy(d, s, bytes, GAM_COPY_D2D, "copy");
    gam_release(tmp);
  }
  gam_release(c);
  return rc;
}

int gam_copy_(gam_tensor *dst, gam_tensor *src) {
  GAM_TRY(gam__check_dev(dst, "copy", "destination"));
  GAM_TRY(gam__check_dev(src, "copy", "source"));
  char b1[160], b2[160];
  GAM_CHECK(dst->numel == src->numel, "copy: destination %s and source %s differ in size",
            gam__shape_str(dst, b1), gam__shape_str(src, b2));
  if (dst->device == GAM_CUDA || src->device == GAM_CUDA) return copy_device(dst, src);
  if (dst->dtype == src->dtype) {
    if (gam__data(dst) != gam__data(src))
      memmove(gam__data(dst), gam__data(src), (size_t)src->numel * gam__dtype_size(src->dtype));
    return 0;
  }
  gam_tensor *c;
  GAM_TRY(gam_to_dtype(&c, src, dst->dtype));
  memcpy(gam__data(dst), gam__data(c), (size_t)c->numel * gam__dtype_size(c->dtype));
  gam_release(c);
  return 0;
}

int gam_fill_(gam_tensor *t, double value) {
  GAM_TRY(gam__check_dev(t, "fill", "tensor"));
  int64_t n = t->numel;
  if (t->device == GAM_CUDA) {
    if (t->dtype == GAM_INT64)
      GAM_CHECK(isfinite(value) && fabs(value) < 9.2e18, "fill: %g cannot be stored in an int64 tensor",
                value);
    if (t->dtype == GAM_UINT8)
      GAM_CHECK(value >= 0 && value <= 255, "fill: %g cannot be stored in a uint8 tensor", value);
    return gam_cuda_fill(gam__data(t), t->dtype, n, value);
  }
  if (t->dtype == GAM_FLOAT32) {
    float *p = gam__f32(t), v = (float)value;
#pragma omp parallel for if (n > GAM_PAR_MIN)
    for (int64_t i = 0; i < n; i++) p[i] = v;
  } else if (t->dtype == GAM_INT64) {
    GAM_CHECK(isfinite(value) && fabs(value) < 9.2e18, "fill: %g cannot be stored in an int64 tensor",
              value);
    int64_t *p = gam__i64(t), v = (int64_t)value;
    for (int64_t i = 0; i < n; i++) p[i] = v;
  } else {
    GAM_CHECK(value >= 0 && value <= 255, "fill: %g cannot be stored in a uint8 tensor", value);
    memset(gam__data(t), (int)value, (size_t)n);
  }
  return 0;
}

/* ---- transpose (2-D) ------------------------------------------------------ */
static void transpose_f32(const float *x, float *y, int64_t r, int64_t c) {
  /* x[r,c] -> y[c,r], in 32x32 tiles */
#pragma omp parallel for collapse(2) if (r * c > GAM_PAR_MIN)
  for (int64_t i0 = 0; i0 < r; i0 += 32)
    for (int64_t j0 = 0; j0 < c; j0 += 32)
      for (int64_t i = i0; i < i0 + 32 && i < r; i++)
        for (int64_t j = j0; j < j0 + 32 && j < c; j++) y[j * r + i] = x[i * c + j];
}

static int transpose_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *gx;
  GAM_TRY(gam_transpose(&gx, g));
  int rc = gam__accumulate(n, 0, gx);
  gam_release(gx);
  return rc;
}

int gam_transpose(gam_tensor **out, gam_tensor *t) {
  GAM_TRY(gam__check_float_dev(t, "transpose", "tensor"));
  char b[160];
  GAM_CHECK(t->ndim == 2, "transpose: expected a 2-D tensor, got %s", gam__shape_str(t, b));
  int64_t shape[2] = {t->shape[1], t->shape[0]};
  gam_tensor *r = gam__new(t->dtype, t->device, 2, shape);
  if (!r) return -1;
  if (t->device == GAM_CUDA) {
    if (gam_cuda_transpose(gam__f32(t), gam__f32(r), t->shape[0], t->shape[1]) != 0)
      return gam__fail(1, r);
  } else {
    transpose_f32(gam__f32(t), gam__f32(r), t->shape[0], t->shape[1]);
  }
  if (gam__grad_needed(1, &t) && !gam__record(r, "transpose", transpose_backward, 1, &t))
    return gam__fail(1, r);
  *out = r;
  return 0;
}

/* ---- cat ------------------------------------------------------------------
 * View each input as [outer, size_d * inner]; the output row is the inputs'
 * rows side by side. Backward slices the gradient the same way. */
static int cat_backward(gam_node *n, gam_tensor *g) {
  int d = (int)n->i[0];
  int64_t outer = 1;
  for (int e = 0; e < d; e++) outer *= g->shape[e];
  int64_t grow = outer ? g->numel / outer : 0, col = 0;
  for (int k = 0; k < n->ninputs; k++) {
    gam_tensor *x = n->inputs[k];
    int64_t xrow = outer ? x->numel / outer : 0;
    if (gam__input_needs_grad(n, k)) {
      gam_tensor *gx = gam__new_like(x);
      if (!gx) return -1;
      if (g->device == GAM_CUDA) {
        if (xrow && outer &&
            gam_cuda__memcpy2d(gam__f32(gx), (size_t)xrow * 4, gam__f32(g) + col, (size_t)grow * 4,
                               (size_t)xrow * 4, (size_t)outer, "cat backward") != 0)
          return gam__fail(1, gx);
      } else {
        for (int64_t o = 0; o < outer; o++)
          memcpy(gam__f32(gx) + o * xrow, gam__f32(g) + o * grow + col, (size_t)xrow * 4);
      }
      int rc = gam__accumulate(n, k, gx);
      gam_release(gx);
      GAM_TRY(rc);
    }
    col += xrow;
  }
  return 0;
}

int gam_cat(gam_tensor **out, gam_tensor **ts, int n, int dim) {
  GAM_CHECK(ts && n >= 1, "cat: expected at least one tensor");
  GAM_TRY(gam__check_dev(ts[0], "cat", "tensor 1"));
  gam_tensor *t0 = ts[0];
  int d;
  GAM_TRY(gam__dim("cat", dim, t0->ndim, &d));
  int64_t shape[GAM_MAX_DIMS];
  memcpy(shape, t0->shape, sizeof shape);
  shape[d] = 0;
  char b1[160], b2[160];
  for (int k = 0; k < n; k++) {
    gam_tensor *x = ts[k];
    char arg[32];
    snprintf(arg, sizeof arg, "tensor %d", k + 1);
    GAM_TRY(gam__check_dev(x, "cat", arg));
    GAM_CHECK(x->device == t0->device, "cat: tensor %d is on %s, tensor 1 on %s", k + 1,
              gam__device_name(x->device), gam__device_name(t0->device));
    GAM_CHECK(x->dtype == t0->dtype, "cat: tensor %d is %s, tensor 1 is %s", k + 1,
              gam__dtype_name(x->dtype), gam__dtype_name(t0->dtype));
    GAM_CHECK(x->ndim == t0->ndim, "cat: tensor %d has shape %s, tensor 1 has %s", k + 1,
              gam__shape_str(x, b1), gam__shape_str(t0, b2));
    for (int e = 0; e < x->ndim; e++)
      GAM_CHECK(e == d || x->shape[e] == t0->shape[e],
                "cat: tensor %d has shape %s, tensor 1 has %s (only dim %d may differ)", k + 1,
                gam__shape_str(x, b1), gam__shape_str(t0, b2), d + 1);
    shape[d] += x->shape[d];
  }
  gam_tensor *r = gam__new(t0->dtype, t0->device, t0->ndim, shape);
  if (!r) return -1;
  int64_t outer = 1;
  for (int e = 0; e < d; e++) outer *= shape[e];
  size_t es = gam__dtype_size(t0->dtype);
  int64_t rrow = outer ? r->numel / outer : 0, col = 0;
  for (int k = 0; k < n; k++) {
    int64_t xrow = outer ? ts[k]->numel / outer : 0;
    if (r->device == GAM_CUDA) {
      if (xrow && gam_cuda__memcpy2d((char *)gam__data(r) + (size_t)col * es, (size_t)rrow * es,
                                     gam__data(ts[k]), (size_t)xrow * es, (size_t)xrow * es,
                                     (size_t)outer, "cat") != 0)
        return gam__fail(1, r);
    } else {
      for (int64_t o = 0; o < outer; o++)
        memcpy((char *)gam__data(r) + (size_t)(o * rrow + col) * es,
               (char *)gam__data(ts[k]) + (size_t)(o * xrow) * es, (size_t)xrow * es);
    }
    col += xrow;
  }
  if (gam__grad_needed(n, ts)) {
    gam_node *nd = gam__record(r, "cat", cat_backward, n, ts);
    if (!nd) return gam__fail(1, r);
    nd->i[0] = d;
  }
  *out = r;
  return 0;
}

int gam_allclose(const gam_tensor *a, const gam_tensor *b, double rtol, double atol, int *result) {
  GAM_TRY(gam__check_dev(a, "allclose", "first tensor"));
  GAM_TRY(gam__check_dev(b, "allclose", "second tensor"));
  GAM_TRY(gam__same_device("allclose", a, b));
  *result = 0;
  if (!gam__same_shape(a, b)) return 0;
  if (a->device == GAM_CUDA) { /* compare host copies */
    gam_tensor *ha = NULL, *hb = NULL;
    GAM_TRY(transfer(&ha, (gam_tensor *)a, GAM_CPU, "allclose"));
    if (transfer(&hb, (gam_tensor *)b, GAM_CPU, "allclose") != 0) return gam__fail(1, ha);
    int rc = gam_allclose(ha, hb, rtol, atol, result);
    gam_release(ha);
    gam_release(hb);
    return rc;
  }
  for (int64_t i = 0; i < a->numel; i++) {
    double x = load_elem(a, i), y = load_elem(b, i);
    if (!(fabs(x - y) <= atol + rtol * fabs(y))) return 0;
  }
  *result = 1;
  return 0;
}
