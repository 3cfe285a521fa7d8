/* ops_loss.c — softmax, log_softmax, gather and the per-sample losses.
 * Softmax-like ops view the input as [outer, size, inner] around their dim. */
#include "backend.h"
#include <math.h>

/* y = softmax or log_softmax of each line of x along the middle axis:
 * m = max x, s = sum exp(x - m) (in double); softmax = exp(x - m) / s,
 * log_softmax = (x - m) - log s. One exp per element. */
int gam_cpu_softmax(const float *x, float *y, int64_t outer, int64_t size, int64_t inner, int log_out) {
#pragma omp parallel for collapse(2) if (outer * size * inner > GAM_PAR_MIN)
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      const float *xp = x + o * size * inner + i;
      float *yp = y + o * size * inner + i;
      float m = -INFINITY;
      for (int64_t k = 0; k < size; k++) m = xp[k * inner] > m ? xp[k * inner] : m;
      double s = 0;
      if (log_out) {
        for (int64_t k = 0; k < size; k++) s += expf(xp[k * inner] - m);
        double ls = log(s); /* (x - m) - log s in double: m + log s would round at large m */
        for (int64_t k = 0; k < size; k++) yp[k * inner] = (float)(((double)xp[k * inner] - m) - ls);
      } else {
        for (int64_t k = 0; k < size; k++) {
          float e = expf(xp[k * inner] - m);
          yp[k * inner] = e;
          s += e;
        }
        float inv = (float)(1.0 / s);
        for (int64_t k = 0; k < size; k++) yp[k * inner] *= inv;
      }
    }
  return 0;
}

/* softmax and log_softmax (saved[0]: the output y) */
typedef struct softmax_ctx {
  int dim, log_out;
} softmax_ctx;

static int softmax_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *x = n->inputs[0], *y = n->saved[0];
  const softmax_ctx *c = n->ctx;
  int log_out = c->log_out;
  int64_t outer, size, inner;
  gam__split_at(x, c->dim, &outer, &size, &inner);
  gam_tensor *gx = gam__new_like(x);
  if (!gx) return -1;
  if (gam__be(x)->softmax_grad(gam__f32(g), gam__f32(y), gam__f32(gx), outer, size, inner, log_out) != 0)
    return gam__fail(1, gx);
  int rc = gam__accumulate(n, 0, gx);
  gam_release(gx);
  return rc;
}

/* gx from g and y (the forward's output) along the middle axis */
int gam_cpu_softmax_grad(const float *gp, const float *yp, float *p, int64_t outer, int64_t size,
                         int64_t inner, int log_out) {
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      int64_t base = o * size * inner + i;
      double s = 0;
      if (log_out) { /* gx = g - softmax * sum(g) */
        for (int64_t k = 0; k < size; k++) s += gp[base + k * inner];
        for (int64_t k = 0; k < size; k++)
          p[base + k * inner] = gp[base + k * inner] - expf(yp[base + k * inner]) * (float)s;
      } else { /* gx = y * (g - sum(g*y)) */
        for (int64_t k = 0; k < size; k++) s += (double)gp[base + k * inner] * yp[base + k * inner];
        for (int64_t k = 0; k < size; k++)
          p[base + k * inner] = yp[base + k * inner] * (gp[base + k * inner] - (float)s);
      }
    }
  return 0;
}

static int softmax_op(gam_tensor **out, gam_tensor *a, int dim, int log_out) {
  const char *name = log_out ? "log_softmax" : "softmax";
  GAM_TRY(gam__check_float_dev(a, name, "input"));
  int d;
  GAM_TRY(gam__dim(name, dim, a->ndim, &d));
  int64_t outer, size, inner;
  gam__split_at(a, d, &outer, &size, &inner);
  gam_tensor *r = gam__new_like(a);
  if (!r) return -1;
  if (gam__be(a)->softmax(gam__f32(a), gam__f32(r), outer, size, inner, log_out) != 0) return gam__fail(1, r);
  if (gam__grad_needed(1, &a)) {
    gam_node *n = gam__record(r, name, softmax_backward, 1, &a);
    softmax_ctx *c = n && gam__save(n, 0, r) == 0 ? gam__node_ctx(n, sizeof *c) : NULL;
    if (!c) return gam__fail(1, r);
    c->dim = d;
    c->log_out = log_out;
  }
  *out = r;
  return 0;
}

int gam_softmax(gam_tensor **out, gam_tensor *a, int dim) { return softmax_op(out, a, dim, 0); }
int gam_log_softmax(gam_tensor **out, gam_tensor *a, int dim) { return softmax_op(out, a, dim, 1); }

/* ---- gather: out[.., j, ..] = a[.., index[.., j, ..], ..] along dim ----- */
typedef struct gather_ctx {
  int dim;
} gather_ctx;

static int gather_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *a = n->inputs[0], *index = n->inputs[1];
  int d = ((const gather_ctx *)n->ctx)->dim;
  int64_t outer, size, inner, osize = index->shape[d];
  gam__split_at(a, d, &outer, &size, &inner);
  gam_tensor *ga = gam__new_zeros_like(a);
  if (!ga) return -1;
  if (gam__be(a)->gather_grad(gam__f32(g), gam__i64(index), gam__f32(ga), outer, size, osize, inner) != 0)
    return gam__fail(1, ga);
  int rc = gam__accumulate(n, 0, ga);
  gam_release(ga);
  return rc;
}

/* p[o, idx[o,j,i], i] += g[o,j,i], in j order */
int gam_cpu_gather_grad(const float *gp, const int64_t *ip, float *p, int64_t outer, int64_t size,
                        int64_t osize, int64_t inner) {
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < osize; j++)
      for (int64_t i = 0; i < inner; i++) {
        int64_t at = (o * osize + j) * inner + i;
        p[(o * size + ip[at]) * inner + i] += gp[at];
      }
  return 0;
}

/* q[o,j,i] = p[o, idx[o,j,i], i] */
int gam_cpu_gather(const float *p, const int64_t *ip, float *q, int64_t outer, int64_t size, int64_t osize,
                   int64_t inner) {
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < osize; j++)
      for (int64_t i = 0; i < inner; i++) {
        int64_t at = (o * osize + j) * inner + i;
        q[at] = p[(o * size + ip[at]) * inner + i];
      }
  return 0;
}

/* *pos = the first k with idx[k] outside [lo, hi), *value = idx[*pos]; -1 when none */
int gam_cpu_find_out_of_range(const int64_t *idx, int64_t n, int64_t lo, int64_t hi, int64_t *pos,
                              int64_t *value, const char *op) {
  (void)op;
  *pos = -1;
  for (int64_t k = 0; k < n; k++)
    if (!(idx[k] >= lo && idx[k] < hi)) {
      *pos = k;
      *value = idx[k];
      break;
    }
  return 0;
}

int gam_gather(gam_tensor **out, gam_tensor *a, int dim, gam_tensor *index) {
  GAM_TRY(gam__check_float_dev(a, "gather", "input"));
  GAM_TRY(gam__check_dev(index, "gather", "index"));
  GAM_CHECK(index->device == a->device, "gather: input is on %s, index on %s", gam__device_name(a->device),
            gam__device_name(index->device));
  GAM_CHECK(index->dtype == GAM_INT64, "gather: index must be int64, got %s", gam__dtype_name(index->dtype));
  int d;
  GAM_TRY(gam__dim("gather", dim, a->ndim, &d));
  char b1[160], b2[160];
  GAM_CHECK(index->ndim == a->ndim, "gather: index %s and input %s differ in dims", gam__shape_str(index, b1),
            gam__shape_str(a, b2));
  for (int k = 0; k < a->ndim; k++)
    GAM_CHECK(k == d || index->shape[k] == a->shape[k],
              "gather: index %s must match input %s except along dim %d", gam__shape_str(index, b1),
              gam__shape_str(a, b2), d + 1);
  int64_t outer, size, inner, osize = index->shape[d];
  gam__split_at(a, d, &outer, &size, &inner);
  const gam_backend *be = gam__be(a);
  const int64_t *ip = gam__i64(index);
  int64_t pos = -1, value = 0;
  GAM_TRY(be->find_out_of_range(ip, index->numel, 0, size, &pos, &value, "gather"));
  GAM_CHECK(pos < 0, "gather: index value %lld is outside [0, %lld)", (long long)value, (long long)size);
  gam_tensor *r = gam__new(GAM_FLOAT32, a->device, index->ndim, index->shape);
  if (!r) return -1;
  if (be->gather(gam__f32(a), ip, gam__f32(r), outer, size, osize, inner) != 0) return gam__fail(1, r);
  gam_tensor *in[2] = {a, index};
  if (gam__grad_needed(1, &a)) {
    gam_node *n = gam__record(r, "gather", gather_backward, 2, in);
    gather_ctx *c = n ? gam__node_ctx(n, sizeof *c) : NULL;
    if (!c) return gam__fail(1, r);
    c->dim = d;
  }
  *out = r;
  return 0;
}

/* ---- per-sample losses over logits[n,k] and 0-based targets[n] ------------
 * The target distribution q puts 1-s on the class and s/(k-1) on the others
 * (s = 0: plain cross-entropy). The loss is KL(q || softmax) summed over
 * classes, with 0 log 0 = 0; its gradient is softmax - q, as cross-entropy's. */
int gam_cpu_flag_out_of_range(const int64_t *idx, int64_t n, int64_t lo, int64_t hi, double *s, int code) {
  for (int64_t i = 0; i < n; i++) {
    if (idx[i] >= lo && idx[i] < hi) continue;
    if (s[GAM_OPT_FLAG] == 0) {
      s[GAM_OPT_FLAG] = code;
      s[GAM_OPT_BAD] = (double)idx[i];
      s[GAM_OPT_POS] = (double)i;
      s[GAM_OPT_HI] = (double)hi;
    }
    break;
  }
  return 0;
}

/* the scalars block of the optimiser step in progress (gam_opt_watch_targets) */
static gam_tensor *watched;

int gam_opt_watch_targets(gam_tensor *s) {
  if (s) {
    GAM_TRY(gam__check_dev(s, "opt_watch_targets", "scalars"));
    GAM_CHECK(s->dtype == GAM_INT64 && s->numel == GAM_OPT_NSCALARS,
              "opt_watch_targets: expected a scalars block of %d int64 slots (gam_opt_scalars)",
              (int)GAM_OPT_NSCALARS);
    gam_retain(s);
  }
  if (watched) gam_release(watched);
  watched = s;
  return 0;
}

static int check_targets(const char *name, gam_tensor *logits, gam_tensor *target) {
  GAM_TRY(gam__check_float_dev(logits, name, "logits"));
  GAM_TRY(gam__check_dev(target, name, "target"));
  GAM_CHECK(target->device == logits->device, "%s: logits are on %s, target on %s", name,
            gam__device_name(logits->device), gam__device_name(target->device));
  char b1[160], b2[160];
  GAM_CHECK(logits->ndim == 2, "%s: logits must be [n, classes], got %s", name, gam__shape_str(logits, b1));
  GAM_CHECK(target->dtype == GAM_INT64, "%s: target must be int64 class ids, got %s", name,
            gam__dtype_name(target->dtype));
  GAM_CHECK(target->ndim == 1 && target->shape[0] == logits->shape[0],
            "%s: target %s does not match logits %s (expected [%lld])", name, gam__shape_str(target, b1),
            gam__shape_str(logits, b2), (long long)logits->shape[0]);
  /* inside a watched optimiser step: recorded in its block, read at its end
   * (the cross-entropy kernels only compare targets with class ids, so a bad
   * one reads nothing out of bounds meanwhile) */
  if (watched && watched->device == target->device)
    return gam__be(target)->flag_out_of_range(gam__i64(target), target->numel, 0, logits->shape[1],
                                              (double *)gam__data(watched), GAM_OPT_CODE_TARGET);
  int64_t pos = -1, value = 0;
  GAM_TRY(gam__be(target)->find_out_of_range(gam__i64(target), target->numel, 0, logits->shape[1], &pos,
                                             &value, name));
  GAM_CHECK(pos < 0, "%s: target %lld of sample %lld is outside the classes [0, %lld)", name,
            (long long)value, (long long)pos + 1, (long long)logits->shape[1]);
  return 0;
}

/* the label smoothing s (saved[0]: log_softmax of the logits) */
typedef struct ce_ctx {
  double smoothing;
} ce_ctx;

static int ce_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *logits = n->inputs[0], *target = n->inputs[1], *logp = n->saved[0];
  int64_t rows = logits->shape[0], k = logits->shape[1];
  double s = ((const ce_ctx *)n->ctx)->smoothing;
  float on = (float)(1.0 - s), off = k > 1 ? (float)(s / (double)(k - 1)) : 0.f;
  gam_tensor *gx = gam__new_like(logits);
  if (!gx) return -1;
  if (gam__be(gx)->ce_backward(gam__f32(g), gam__f32(logp), gam__i64(target), gam__f32(gx), rows, k, on,
                               off) != 0)
    return gam__fail(1, gx);
  int rc = gam__accumulate(n, 0, gx);
  gam_release(gx);
  return rc;
}

/* gx[r,c] = g[r] * (exp(logp[r,c]) - q_c) */
int gam_cpu_ce_backward(const float *gp, const float *lp, const int64_t *tp, float *p, int64_t rows,
                        int64_t k, float on, float off) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < k; c++) p[r * k + c] = gp[r] * (expf(lp[r * k + c]) - (c == tp[r] ? on : off));
  return 0;
}

/* loss[r] = ent - sum_c q_c logp[r,c], the sum in double */
int gam_cpu_ce_forward(const float *lp, const int64_t *tp, float *loss, int64_t rows, int64_t k, double on,
                       double off, double ent) {
  for (int64_t i = 0; i < rows; i++) {
    double cross = 0;
    for (int64_t c = 0; c < k; c++) cross += (c == tp[i] ? on : off) * lp[i * k + c];
    loss[i] = (float)(ent - cross);
  }
  return 0;
}

static int cross_entropy(gam_tensor **out, gam_tensor *logits, gam_tensor *target, double s,
                         const char *name) {
  GAM_TRY(check_targets(name, logits, target));
  GAM_CHECK(s >= 0 && s < 1, "%s: smoothing must be in [0, 1), got %g", name, s);
  int64_t rows = logits->shape[0], k = logits->shape[1];
  GAM_CHECK(k >= 1 && (s == 0 || k >= 2), "%s: smoothing needs at least 2 classes", name);
  gam_tensor *logp = gam__new_like(logits);
  gam_tensor *r = gam__new(GAM_FLOAT32, logits->device, 1, &rows);
  if (!logp || !r) return gam__fail(2, logp, r);
  double on = 1.0 - s, off = k > 1 ? s / (double)(k - 1) : 0.0;
  double ent = (on > 0 ? on * log(on) : 0) + (off > 0 ? (double)(k - 1) * off * log(off) : 0);
  const gam_backend *be = gam__be(logits);
  if (be->softmax(gam__f32(logits), gam__f32(logp), rows, k, 1, 1) != 0 ||
      be->ce_forward(gam__f32(logp), gam__i64(target), gam__f32(r), rows, k, on, off, ent) != 0)
    return gam__fail(2, logp, r);
  gam_tensor *in[2] = {logits, target};
  if (gam__grad_needed(1, &logits)) {
    gam_node *n = gam__record(r, name, ce_backward, 2, in);
    ce_ctx *c = n && gam__save(n, 0, logp) == 0 ? gam__node_ctx(n, sizeof *c) : NULL;
    if (!c) return gam__fail(2, logp, r);
    c->smoothing = s;
  }
  gam_release(logp);
  *out = r;
  return 0;
}

int gam_cross_entropy(gam_tensor **out, gam_tensor *logits, gam_tensor *target) {
  return cross_entropy(out, logits, target, 0.0, "cross_entropy");
}

int gam_smooth_cross_entropy(gam_tensor **out, gam_tensor *logits, gam_tensor *target, double s) {
  return cross_entropy(out, logits, target, s, "smooth_cross_entropy");
}
