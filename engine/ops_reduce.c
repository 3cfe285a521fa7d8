/* ops_reduce.c — sum, mean, max, argmax over everything or one dim.
 * A reduction over dim d views the input as [outer, size, inner]. Sums
 * accumulate in double. */
#include "backend.h"
#include <math.h>
#include <float.h>

static void reduced_shape(const gam_tensor *t, int d, int keepdim, int *nd, int64_t *shape) {
  int n = 0;
  for (int k = 0; k < t->ndim; k++) {
    if (k != d)
      shape[n++] = t->shape[k];
    else if (keepdim)
      shape[n++] = 1;
  }
  *nd = n;
}

/* sum and mean: the dim reduced (over one dim) and the scale (1 or 1/size) */
typedef struct reduce_ctx {
  int dim;
  double scale;
} reduce_ctx;

/* ---- sum / mean over everything ----------------------------------------- */
static int sum_all_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *x = n->inputs[0];
  gam_tensor *gx = gam__new_like(x);
  if (!gx) return -1;
  /* g stays on its device: no wait for the host */
  float scale = (float)((const reduce_ctx *)n->ctx)->scale;
  if (gam__be(x)->fill_scaled(gam__f32(gx), gx->numel, gam__f32(g), scale) != 0) return gam__fail(1, gx);
  int rc = gam__accumulate(n, 0, gx);
  gam_release(gx);
  return rc;
}

/* p[i] = scale * src[0] for i < count */
int gam_cpu_fill_scaled(float *p, int64_t count, const float *src, float scale) {
  float v = src[0] * scale;
#pragma omp parallel for simd if (count > GAM_PAR_MIN)
  for (int64_t i = 0; i < count; i++) p[i] = v;
  return 0;
}

static int reduce_all(gam_tensor **out, gam_tensor *a, int mean) {
  const char *name = mean ? "mean" : "sum";
  GAM_TRY(gam__check_float_dev(a, name, "input"));
  GAM_CHECK(!mean || a->numel > 0, "mean: input is empty");
  gam_tensor *r = gam__new(GAM_FLOAT32, a->device, 0, NULL);
  if (!r) return -1;
  int64_t n = a->numel;
  double scale = mean ? 1.0 / (double)n : 1.0;
  /* one line of n elements */
  if (gam__be(a)->sum_lines(gam__f32(a), gam__f32(r), 1, n, 1, scale) != 0) return gam__fail(1, r);
  if (gam__grad_needed(1, &a)) {
    gam_node *nd = gam__record(r, name, sum_all_backward, 1, &a);
    reduce_ctx *c = nd ? gam__node_ctx(nd, sizeof *c) : NULL;
    if (!c) return gam__fail(1, r);
    c->scale = scale;
  }
  *out = r;
  return 0;
}

int gam_sum(gam_tensor **out, gam_tensor *a) { return reduce_all(out, a, 0); }
int gam_mean(gam_tensor **out, gam_tensor *a) { return reduce_all(out, a, 1); }

/* ---- sum / mean over one dim ---------------------------------------------- */
static int sum_dim_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *x = n->inputs[0];
  const reduce_ctx *c = n->ctx;
  int64_t outer, size, inner;
  gam__split_at(x, c->dim, &outer, &size, &inner);
  gam_tensor *gx = gam__new_like(x);
  if (!gx) return -1;
  if (gam__be(x)->spread_lines(gam__f32(g), gam__f32(gx), outer, size, inner, (float)c->scale) != 0)
    return gam__fail(1, gx);
  int rc = gam__accumulate(n, 0, gx);
  gam_release(gx);
  return rc;
}

/* p[o,k,i] = scale * g[o,i] */
int gam_cpu_spread_lines(const float *gp, float *p, int64_t outer, int64_t size, int64_t inner, float scale) {
#pragma omp parallel for collapse(2) if (outer * size * inner > GAM_PAR_MIN)
  for (int64_t o = 0; o < outer; o++)
    for (int64_t k = 0; k < size; k++)
      for (int64_t i = 0; i < inner; i++) p[(o * size + k) * inner + i] = gp[o * inner + i] * scale;
  return 0;
}

/* q[o,i] = scale * sum_k p[o,k,i] for p viewed as [outer, size, inner].
 * Lines along k are strided by inner, so for inner > 1 a block of up to 256
 * columns is accumulated row by row (contiguous reads) in doubles. */
int gam_cpu_sum_lines(const float *p, float *q, int64_t outer, int64_t size, int64_t inner, double scale) {
  int64_t total = outer * size * inner;
  if (inner == 1) {
    if (outer == 1) {
      double s = 0;
#pragma omp parallel for reduction(+ : s) if (size > GAM_PAR_MIN)
      for (int64_t k = 0; k < size; k++) s += p[k];
      q[0] = (float)(s * scale);
      return 0;
    }
#pragma omp parallel for if (total > GAM_PAR_MIN)
    for (int64_t o = 0; o < outer; o++) {
      double s = 0;
      for (int64_t k = 0; k < size; k++) s += p[o * size + k];
      q[o] = (float)(s * scale);
    }
    return 0;
  }
  enum { BLOCK = 256 };
  int64_t nblk = (inner + BLOCK - 1) / BLOCK;
#pragma omp parallel for collapse(2) if (total > GAM_PAR_MIN)
  for (int64_t o = 0; o < outer; o++)
    for (int64_t b = 0; b < nblk; b++) {
      double acc[BLOCK];
      int64_t i0 = b * BLOCK, m = inner - i0 < BLOCK ? inner - i0 : BLOCK;
      for (int64_t i = 0; i < m; i++) acc[i] = 0;
      for (int64_t k = 0; k < size; k++) {
        const float *row = p + (o * size + k) * inner + i0;
        for (int64_t i = 0; i < m; i++) acc[i] += row[i];
      }
      for (int64_t i = 0; i < m; i++) q[o * inner + i0 + i] = (float)(acc[i] * scale);
    }
  return 0;
}

static int reduce_dim(gam_tensor **out, gam_tensor *a, int dim, int keepdim, int mean) {
  const char *name = mean ? "mean" : "sum";
  GAM_TRY(gam__check_float_dev(a, name, "input"));
  int d;
  GAM_TRY(gam__dim(name, dim, a->ndim, &d));
  int64_t outer, size, inner, shape[GAM_MAX_DIMS];
  gam__split_at(a, d, &outer, &size, &inner);
  GAM_CHECK(!mean || size > 0, "mean: dim %d is empty", d + 1);
  int nd;
  reduced_shape(a, d, keepdim, &nd, shape);
  gam_tensor *r = gam__new(GAM_FLOAT32, a->device, nd, shape);
  if (!r) return -1;
  double scale = mean ? 1.0 / (double)size : 1.0;
  if (gam__be(a)->sum_lines(gam__f32(a), gam__f32(r), outer, size, inner, scale) != 0) return gam__fail(1, r);
  if (gam__grad_needed(1, &a)) {
    gam_node *n = gam__record(r, name, sum_dim_backward, 1, &a);
    reduce_ctx *c = n ? gam__node_ctx(n, sizeof *c) : NULL;
    if (!c) return gam__fail(1, r);
    c->dim = d;
    c->scale = scale;
  }
  *out = r;
  return 0;
}

int gam_sum_dim(gam_tensor **out, gam_tensor *a, int dim, int keepdim) {
  return reduce_dim(out, a, dim, keepdim, 0);
}
int gam_mean_dim(gam_tensor **out, gam_tensor *a, int dim, int keepdim) {
  return reduce_dim(out, a, dim, keepdim, 1);
}

/* ---- max ------------------------------------------------------------------ */
/* gradient flows to the first maximal element of each reduced line (saved[0]:
 * the indices, the node's max_ctx: the dim) */
typedef struct max_ctx {
  int dim;
} max_ctx;

static int max_dim_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *x = n->inputs[0], *idx = n->saved[0];
  int64_t outer, size, inner;
  gam__split_at(x, ((const max_ctx *)n->ctx)->dim, &outer, &size, &inner);
  gam_tensor *gx = gam__new_zeros_like(x);
  if (!gx) return -1;
  if (gam__be(x)->scatter_lines(gam__f32(g), gam__i64(idx), gam__f32(gx), outer, size, inner) != 0)
    return gam__fail(1, gx);
  int rc = gam__accumulate(n, 0, gx);
  gam_release(gx);
  return rc;
}

/* p[o, idx[o,i], i] = g[o,i] */
int gam_cpu_scatter_lines(const float *gp, const int64_t *ip, float *p, int64_t outer, int64_t size,
                          int64_t inner) {
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) p[(o * size + ip[o * inner + i]) * inner + i] = gp[o * inner + i];
  return 0;
}

static int max_lines(gam_tensor *a, int d, int keepdim, gam_tensor **values, gam_tensor **indices,
                     const char *name) {
  int64_t outer, size, inner, shape[GAM_MAX_DIMS];
  gam__split_at(a, d, &outer, &size, &inner);
  GAM_CHECK(size > 0, "%s: dim %d is empty", name, d + 1);
  int nd;
  reduced_shape(a, d, keepdim, &nd, shape);
  gam_tensor *v = values ? gam__new(GAM_FLOAT32, a->device, nd, shape) : NULL;
  gam_tensor *ix = gam__new(GAM_INT64, a->device, nd, shape);
  if ((values && !v) || !ix) return gam__fail(2, v, ix);
  if (gam__be(a)->argmax_lines(gam__f32(a), v ? gam__f32(v) : NULL, gam__i64(ix), outer, size, inner) != 0)
    return gam__fail(2, v, ix);
  if (values) *values = v;
  *indices = ix;
  return 0;
}

/* idx[o,i] = the first k of the largest p[o,k,i]; values[o,i] = it (unless NULL) */
int gam_cpu_argmax_lines(const float *p, float *values, int64_t *ip, int64_t outer, int64_t size,
                         int64_t inner) {
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      int64_t best = 0;
      float bv = p[o * size * inner + i];
      for (int64_t k = 1; k < size; k++) {
        float x = p[(o * size + k) * inner + i];
        if (x > bv || (x != x && bv == bv)) {
          bv = x;
          best = k;
        } /* NaN wins, as in PyTorch */
      }
      ip[o * inner + i] = best;
      if (values) values[o * inner + i] = bv;
    }
  return 0;
}

int gam_max_dim(gam_tensor **values, gam_tensor **indices, gam_tensor *a, int dim, int keepdim) {
  GAM_TRY(gam__check_float_dev(a, "max", "input"));
  int d;
  GAM_TRY(gam__dim("max", dim, a->ndim, &d));
  gam_tensor *v, *ix;
  GAM_TRY(max_lines(a, d, keepdim, &v, &ix, "max"));
  if (gam__grad_needed(1, &a)) {
    gam_node *n = gam__record(v, "max", max_dim_backward, 1, &a);
    max_ctx *c = n && gam__save(n, 0, ix) == 0 ? gam__node_ctx(n, sizeof *c) : NULL;
    if (!c) return gam__fail(2, v, ix);
    c->dim = d;
  }
  *values = v;
  *indices = ix;
  return 0;
}

int gam_argmax(gam_tensor **out, gam_tensor *a, int dim, int keepdim) {
  GAM_TRY(gam__check_float_dev(a, "argmax", "input"));
  int d;
  GAM_TRY(gam__dim("argmax", dim, a->ndim, &d));
  return max_lines(a, d, keepdim, NULL, out, "argmax");
}

/* the index of the maximum is an int64 tensor (on x's device) in saved[0] */
static int max_all_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *gx = gam__new_zeros_like(n->inputs[0]);
  if (!gx) return -1;
  if (gam__be(gx)->scatter_lines(gam__f32(g), gam__i64(n->saved[0]), gam__f32(gx), 1, gx->numel, 1) != 0)
    return gam__fail(1, gx);
  int rc = gam__accumulate(n, 0, gx);
  gam_release(gx);
  return rc;
}

/* max over everything: one line of argmax_lines; the index stays on the
 * device for backward */
int gam_max(gam_tensor **out, gam_tensor *a) {
  GAM_TRY(gam__check_float_dev(a, "max", "input"));
  GAM_CHECK(a->numel > 0, "max: input is empty");
  gam_tensor *r = gam__new(GAM_FLOAT32, a->device, 0, NULL);
  gam_tensor *ix = gam__new(GAM_INT64, a->device, 0, NULL);
  if (!r || !ix) return gam__fail(2, r, ix);
  if (gam__be(a)->argmax_lines(gam__f32(a), gam__f32(r), gam__i64(ix), 1, a->numel, 1) != 0)
    return gam__fail(2, r, ix);
  if (gam__grad_needed(1, &a)) {
    gam_node *n = gam__record(r, "max", max_all_backward, 1, &a);
    if (!n || gam__save(n, 0, ix) != 0) return gam__fail(2, r, ix);
  }
  gam_release(ix);
  *out = r;
  return 0;
}
