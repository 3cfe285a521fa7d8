/* tensor_copy.c — copies, conversions, fills, transpose and cat: the front
 * halves (checks, shapes, autograd), the device work through the backend
 * table (backend.h), and the cpu kernels of the table's copy entries. */
#include "backend.h"
#include <math.h>

static size_t nbytes(const gam_tensor *t) { return (size_t)t->numel * gam__dtype_size(t->dtype); }

/* ---- conversion ------------------------------------------------------------- */
static double load(const void *p, int dtype, int64_t i) {
  switch (dtype) {
    case GAM_FLOAT32:
      return ((const float *)p)[i];
    case GAM_INT64:
      return (double)((const int64_t *)p)[i];
    default:
      return ((const uint8_t *)p)[i];
  }
}

/* dst[i] = (dst type) src[i], through double */
int gam_cpu_convert(void *dst, int dst_dtype, const void *src, int src_dtype, int64_t n) {
  if (dst_dtype == GAM_FLOAT32) {
    float *o = dst;
    for (int64_t i = 0; i < n; i++) o[i] = (float)load(src, src_dtype, i);
  } else if (dst_dtype == GAM_INT64) {
    int64_t *o = dst;
    for (int64_t i = 0; i < n; i++) o[i] = (int64_t)load(src, src_dtype, i);
  } else {
    uint8_t *o = dst;
    for (int64_t i = 0; i < n; i++) o[i] = (uint8_t)(int64_t)load(src, src_dtype, i);
  }
  return 0;
}

int gam_to_dtype(gam_tensor **out, gam_tensor *t, int dtype) {
  GAM_TRY(gam__check_dev(t, "to_dtype", "tensor"));
  GAM_CHECK(gam__dtype_size(dtype), "to_dtype: unknown dtype %d", dtype);
  if (t->dtype == dtype) {
    gam_retain(t);
    *out = t;
    return 0;
  }
  gam_tensor *r = gam__new(dtype, t->device, t->ndim, t->shape);
  if (!r) return -1;
  if (gam__be(t)->convert(gam__data(r), dtype, gam__data(t), t->dtype, t->numel) != 0) return gam__fail(1, r);
  *out = r;
  return 0;
}

/* ---- copies --------------------------------------------------------------- */
static int clone_backward(gam_node *n, gam_tensor *g) { return gam__accumulate(n, 0, g); }

int gam_clone(gam_tensor **out, gam_tensor *t) {
  GAM_TRY(gam__check_dev(t, "clone", "tensor"));
  gam_tensor *r = gam__new_like(t);
  if (!r) return -1;
  if (gam__be(t)->copy(gam__data(r), gam__data(t), nbytes(t), "clone") != 0) return gam__fail(1, r);
  if (gam__grad_needed(1, &t) && !gam__record(r, "clone", clone_backward, 1, &t)) return gam__fail(1, r);
  *out = r;
  return 0;
}

/* Convert on the source's device (when the dtypes differ), then one copy
 * (across devices through gam__cross_copy). Overlapping regions of one
 * storage go through a temporary, as memmove would. */
int gam_copy_(gam_tensor *dst, gam_tensor *src) {
  GAM_TRY(gam__check_dev(dst, "copy", "destination"));
  GAM_TRY(gam__check_dev(src, "copy", "source"));
  char b1[160], b2[160];
  GAM_CHECK(dst->numel == src->numel, "copy: destination %s and source %s differ in size",
            gam__shape_str(dst, b1), gam__shape_str(src, b2));
  gam_tensor *c;
  GAM_TRY(gam_to_dtype(&c, src, dst->dtype));
  size_t bytes = nbytes(dst);
  int rc = 0;
  if (bytes == 0 || (dst->device == c->device && gam__data(dst) == gam__data(c))) {
    rc = 0;
  } else if (dst->device != c->device) {
    rc = gam__cross_copy(gam__data(dst), dst->device, gam__data(c), c->device, bytes, "copy");
  } else {
    const gam_backend *be = gam__be(dst);
    char *d = gam__data(dst), *s = gam__data(c);
    int overlap = dst->storage == c->storage && d < s + bytes && s < d + bytes;
    gam_tensor *tmp = NULL;
    if (overlap) {
      tmp = gam__new_like(c);
      if (!tmp || be->copy(gam__data(tmp), s, bytes, "copy") != 0)
        rc = -1;
      else
        s = gam__data(tmp);
    }
    if (!rc) rc = be->copy(d, s, bytes, "copy");
    gam_release(tmp);
  }
  gam_release(c);
  return rc;
}

/* ---- fill ----------------------------------------------------------------- */
int gam_cpu_fill(void *p, int dtype, int64_t n, double value) {
  if (dtype == GAM_FLOAT32) {
    float *q = p, v = (float)value;
#pragma omp parallel for if (n > GAM_PAR_MIN)
    for (int64_t i = 0; i < n; i++) q[i] = v;
  } else if (dtype == GAM_INT64) {
    int64_t *q = p, v = (int64_t)value;
    for (int64_t i = 0; i < n; i++) q[i] = v;
  } else {
    memset(p, (int)value, (size_t)n);
  }
  return 0;
}

int gam_fill_(gam_tensor *t, double value) {
  GAM_TRY(gam__check_dev(t, "fill", "tensor"));
  if (t->dtype == GAM_INT64)
    GAM_CHECK(isfinite(value) && fabs(value) < 9.2e18, "fill: %g cannot be stored in an int64 tensor", value);
  if (t->dtype == GAM_UINT8)
    GAM_CHECK(value >= 0 && value <= 255, "fill: %g cannot be stored in a uint8 tensor", value);
  return gam__be(t)->fill(gam__data(t), t->dtype, t->numel, value);
}

/* ---- transpose (2-D) ------------------------------------------------------ */
/* y[c,r] = x[r,c], in 32x32 tiles */
int gam_cpu_transpose(const float *x, float *y, int64_t r, int64_t c) {
#pragma omp parallel for collapse(2) if (r * c > GAM_PAR_MIN)
  for (int64_t i0 = 0; i0 < r; i0 += 32)
    for (int64_t j0 = 0; j0 < c; j0 += 32)
      for (int64_t i = i0; i < i0 + 32 && i < r; i++)
        for (int64_t j = j0; j < j0 + 32 && j < c; j++) y[j * r + i] = x[i * c + j];
  return 0;
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
  if (gam__be(t)->transpose(gam__f32(t), gam__f32(r), t->shape[0], t->shape[1]) != 0) return gam__fail(1, r);
  if (gam__grad_needed(1, &t) && !gam__record(r, "transpose", transpose_backward, 1, &t))
    return gam__fail(1, r);
  *out = r;
  return 0;
}

/* ---- cat ------------------------------------------------------------------
 * View each input as [outer, size_d * inner]; the output row is the inputs'
 * rows side by side (one strided copy per input). Backward slices the
 * gradient the same way. */
typedef struct cat_ctx {
  int dim;
} cat_ctx; /* the dim joined along */

static int cat_backward(gam_node *n, gam_tensor *g) {
  int d = ((const cat_ctx *)n->ctx)->dim;
  int64_t outer = 1;
  for (int e = 0; e < d; e++) outer *= g->shape[e];
  int64_t grow = outer ? g->numel / outer : 0, col = 0;
  for (int k = 0; k < n->ninputs; k++) {
    gam_tensor *x = n->inputs[k];
    int64_t xrow = outer ? x->numel / outer : 0;
    if (gam__input_needs_grad(n, k)) {
      gam_tensor *gx = gam__new_like(x);
      if (!gx) return -1;
      if (xrow && outer &&
          gam__be(g)->copy2d(gam__f32(gx), (size_t)xrow * 4, gam__f32(g) + col, (size_t)grow * 4,
                             (size_t)xrow * 4, (size_t)outer, "cat backward") != 0)
        return gam__fail(1, gx);
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
    GAM_CHECK(x->dtype == t0->dtype, "cat: tensor %d is %s, tensor 1 is %s", k + 1, gam__dtype_name(x->dtype),
              gam__dtype_name(t0->dtype));
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
    if (xrow &&
        gam__be(r)->copy2d((char *)gam__data(r) + (size_t)col * es, (size_t)rrow * es, gam__data(ts[k]),
                           (size_t)xrow * es, (size_t)xrow * es, (size_t)outer, "cat") != 0)
      return gam__fail(1, r);
    col += xrow;
  }
  if (gam__grad_needed(n, ts)) {
    gam_node *nd = gam__record(r, "cat", cat_backward, n, ts);
    cat_ctx *c = nd ? gam__node_ctx(nd, sizeof *c) : NULL;
    if (!c) return gam__fail(1, r);
    c->dim = d;
  }
  *out = r;
  return 0;
}
