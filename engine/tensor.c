/* tensor.c — tensor headers, storage, creation, transfers and views.
 * Storage lives on any device; its memory and the copies between devices go
 * through the device's backend table (backend.h), and the two devices meet
 * only in gam_to_device and gam_copy_ (tensor_copy.c). */
#include "backend.h"
#include <math.h>

/* ---- storage and headers -------------------------------------------------- */
static gam_storage *storage_new(int device, size_t bytes) {
  if (!gam__device_valid(device)) {
    gam__err("tensor: unknown device %d", device);
    return NULL;
  }
  gam_storage *s = calloc(1, sizeof *s);
  if (!s) {
    gam__err("out of memory allocating a storage header");
    return NULL;
  }
  s->data = gam__backend(device)->alloc(bytes);
  if (!s->data) {
    free(s);
    return NULL;
  }
  s->refcount = 1;
  s->device = device;
  s->bytes = bytes;
  return s;
}

void gam__storage_release(gam_storage *s) {
  if (!s || --s->refcount > 0) return;
  gam__backend(s->device)->free(s->data, s->bytes);
  free(s);
}

static size_t nbytes(const gam_tensor *t) { return (size_t)t->numel * gam__dtype_size(t->dtype); }

static int check_shape(const char *op, int ndim, const int64_t *shape) {
  GAM_CHECK(ndim >= 0 && ndim <= GAM_MAX_DIMS, "%s: a tensor has 0 to %d dims, got %d", op, GAM_MAX_DIMS,
            ndim);
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
  if (!t) {
    gam__err("out of memory allocating a tensor header");
    return NULL;
  }
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
  if (gam__dtype_size(dtype) == 0) {
    gam__err("tensor: unknown dtype %d", dtype);
    return NULL;
  }
  gam_tensor *t = header_new(dtype, device, ndim, shape);
  if (!t) return NULL;
  t->storage = storage_new(device, (size_t)t->numel * gam__dtype_size(dtype));
  if (!t->storage) {
    if (!gam__backend(device)->host && strncmp(gam_last_error(), "out of memory", 13) == 0) {
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

gam_tensor *gam__new_like(const gam_tensor *t) { return gam__new(t->dtype, t->device, t->ndim, t->shape); }

gam_tensor *gam__new_zeros_like(const gam_tensor *t) {
  gam_tensor *z = gam__new_like(t);
  if (!z) return NULL;
  if (nbytes(z) && gam__be(z)->memset(gam__data(z), 0, nbytes(z), "zeros") != 0) {
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
static _Thread_local struct {
  gam_tensor **v;
  size_t n, cap;
  int draining;
} dead;

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
  if (gam__device_valid(device)) GAM_TRY(gam__backend(device)->require("empty"));
  *out = gam__new(dtype, device, ndim, shape);
  return *out ? 0 : -1;
}

int gam_zeros(gam_tensor **out, int dtype, int device, int ndim, const int64_t *shape) {
  return gam_full(out, dtype, device, ndim, shape, 0.0);
}

int gam_full(gam_tensor **out, int dtype, int device, int ndim, const int64_t *shape, double value) {
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
    if (dtype == GAM_FLOAT32)
      gam__f32(*out)[i] = (float)v;
    else if (dtype == GAM_INT64)
      gam__i64(*out)[i] = (int64_t)v;
    else
      ((uint8_t *)gam__data(*out))[i] = (uint8_t)v;
  }
  return 0;
}

int gam_copy_to_host(const gam_tensor *t, void *dst, size_t bytes) {
  GAM_TRY(gam__check_dev(t, "copy_to_host", "tensor"));
  size_t need = nbytes(t);
  GAM_CHECK(bytes >= need, "copy_to_host: buffer of %zu bytes is smaller than %zu", bytes, need);
  if (!need) return 0;
  return gam__be(t)->to_host(dst, gam__data(t), need, "copy_to_host");
}

int gam__cross_copy(void *dst, int dst_device, const void *src, int src_device, size_t bytes,
                    const char *op) {
  if (!bytes) return 0;
  const gam_backend *to = gam__backend(dst_device), *from = gam__backend(src_device);
  if (to->host) return from->to_host(dst, src, bytes, op);
  if (from->host) return to->upload(dst, src, bytes, op);
  /* two devices, neither the host: through a host buffer */
  void *h = gam__host_alloc(bytes);
  if (!h) return -1;
  int rc = from->to_host(h, src, bytes, op);
  if (rc == 0) rc = to->from_host(dst, h, bytes, op);
  gam__host_free(h, bytes);
  return rc;
}

/* a copy of t on the other device (same dtype and shape), no autograd */
static int transfer(gam_tensor **out, gam_tensor *t, int device, const char *op) {
  gam_tensor *r = gam__new(t->dtype, device, t->ndim, t->shape);
  if (!r) return -1;
  if (gam__cross_copy(gam__data(r), device, gam__data(t), t->device, nbytes(t), op) != 0)
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
  GAM_CHECK(gam__device_valid(device), "to: unknown device %d", device);
  if (device == t->device) {
    gam_retain(t);
    *out = t;
    return 0;
  }
  GAM_TRY(gam__backend(device)->require("to"));
  gam_tensor *r = NULL;
  GAM_TRY(transfer(&r, t, device, "to"));
  if (gam__grad_needed(1, &t) && !gam__record(r, "to", to_backward, 1, &t)) return gam__fail(1, r);
  *out = r;
  return 0;
}

static double load_elem(const gam_tensor *t, int64_t i) {
  switch (t->dtype) {
    case GAM_FLOAT32:
      return gam__f32(t)[i];
    case GAM_INT64:
      return (double)gam__i64(t)[i];
    default:
      return ((const uint8_t *)gam__data(t))[i];
  }
}

int gam_item(const gam_tensor *t, double *value) {
  GAM_TRY(gam__check_dev(t, "item", "tensor"));
  GAM_CHECK(t->numel == 1, "item: tensor has %lld elements, expected exactly one", (long long)t->numel);
  /* the element to the host (waits for a device) */
  union {
    float f;
    int64_t i;
    uint8_t u;
  } v = {.i = 0};
  GAM_TRY(gam__be(t)->to_host(&v, gam__data(t), nbytes(t), "item"));
  *value = t->dtype == GAM_FLOAT32 ? v.f : t->dtype == GAM_INT64 ? (double)v.i : v.u;
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

static int narrow_backward(gam_node *n, gam_tensor *g);
/* narrow and select: where the view starts in its input (elements) */
typedef struct narrow_ctx {
  int64_t offset;
} narrow_ctx;

static int make_view(gam_tensor **out, gam_tensor *t, int ndim, const int64_t *shape, int64_t offset,
                     const char *name, gam_backward_fn bw) {
  gam_tensor *v = gam__alias(t, ndim, shape, offset);
  if (!v) return -1;
  if (gam__grad_needed(1, &t)) {
    gam_node *n = gam__record(v, name, bw, 1, &t);
    if (!n) return gam__fail(1, v);
    if (bw == narrow_backward) {
      narrow_ctx *c = gam__node_ctx(n, sizeof *c);
      if (!c) return gam__fail(1, v);
      c->offset = offset;
    }
  }
  *out = v;
  return 0;
}

int gam_reshape(gam_tensor **out, gam_tensor *t, int ndim, const int64_t *shape) {
  GAM_TRY(gam__check_dev(t, "reshape", "tensor"));
  GAM_CHECK(ndim >= 0 && ndim <= GAM_MAX_DIMS, "reshape: a tensor has 0 to %d dims, got %d", GAM_MAX_DIMS,
            ndim);
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
  int64_t offset = ((const narrow_ctx *)n->ctx)->offset;
  if (gam__be(x)->copy(gam__f32(gx) + offset, gam__f32(g), bytes, "narrow backward") != 0)
    return gam__fail(1, gx);
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

int gam_allclose(const gam_tensor *a, const gam_tensor *b, double rtol, double atol, int *result) {
  GAM_TRY(gam__check_dev(a, "allclose", "first tensor"));
  GAM_TRY(gam__check_dev(b, "allclose", "second tensor"));
  GAM_TRY(gam__same_device("allclose", a, b));
  *result = 0;
  if (!gam__same_shape(a, b)) return 0;
  if (!gam__be(a)->host) { /* compare host copies */
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
