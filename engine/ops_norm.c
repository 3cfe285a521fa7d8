/* ops_norm.c — batch normalisation over (N, spatial) for each channel.
 *
 *   x [N,C,*] (2 to 4 dims; * is H,W or L or nothing), m = N * prod(*) values per channel
 *   training:   mu = mean(x_c), var = mean((x_c - mu)^2)        (biased, to normalise)
 *               running_mean = (1 - momentum) running_mean + momentum mu
 *               running_var  = (1 - momentum) running_var  + momentum var m/(m-1)  (unbiased)
 *   evaluation: mu = running_mean, var = running_var
 *   y = (x - mu) / sqrt(var + eps) * weight + bias
 *
 * Backward, with xhat = (x - mu) invstd and g the output gradient:
 *   gbias = sum g,  gweight = sum g xhat
 *   training:   gx = weight invstd (g - sum(g)/m - xhat sum(g xhat)/m)
 *   evaluation: gx = weight invstd g
 *
 * Plain OpenMP loops over channels: on NCHW data a channel is N contiguous
 * runs, so each thread streams its own channels; sums are taken in double.
 * (PyTorch's CPU path does the same for NCHW; oneDNN's batch norm wants a
 * blocked layout, which would cost a reorder each way.)
 *
 * On the cuda device (kernels/norm.cu) training runs through cuDNN, which
 * moves the running statistics the same way (unbiased variance; with
 * momentum 0 it is not handed them at all, so they stay bit for bit), and
 * evaluation through plain kernels with the formulas above. */
#include "backend.h"
#include <math.h>

typedef struct bn_dims {
  int64_t n, c, inner;
} bn_dims;

static bn_dims dims_of(const gam_tensor *x) {
  bn_dims d = {x->shape[0], x->shape[1], 1};
  for (int k = 2; k < x->ndim; k++) d.inner *= x->shape[k];
  return d;
}

/* sum and sum of squared deviations from mu of channel c */
static double channel_sum(const float *x, bn_dims d, int64_t c) {
  double s = 0;
  for (int64_t i = 0; i < d.n; i++) {
    const float *p = x + (i * d.c + c) * d.inner;
#pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < d.inner; k++) s += p[k];
  }
  return s;
}

static double channel_sqdev(const float *x, bn_dims d, int64_t c, double mu) {
  double s = 0;
  for (int64_t i = 0; i < d.n; i++) {
    const float *p = x + (i * d.c + c) * d.inner;
#pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < d.inner; k++) {
      double v = p[k] - mu;
      s += v * v;
    }
  }
  return s;
}

/* the cpu gradients gxp, gwp, gbp (each skipped when NULL) from the forward's stats */
static void bn_backward_cpu(const float *xp, const float *gp, const float *wp, const float *stats,
                            int training, bn_dims d, float *gxp, float *gwp, float *gbp) {
  double m = (double)(d.n * d.inner);
#pragma omp parallel for schedule(static) if (d.n * d.c * d.inner > GAM_PAR_MIN)
  for (int64_t c = 0; c < d.c; c++) {
    double mu = stats[c], invstd = stats[d.c + c];
    double sg = 0, sgx = 0; /* sum g, sum g (x - mu) */
    for (int64_t i = 0; i < d.n; i++) {
      const float *xr = xp + (i * d.c + c) * d.inner, *gr = gp + (i * d.c + c) * d.inner;
#pragma omp simd reduction(+ : sg, sgx)
      for (int64_t k = 0; k < d.inner; k++) {
        sg += gr[k];
        sgx += gr[k] * (xr[k] - mu);
      }
    }
    if (gbp) gbp[c] = (float)sg;
    if (gwp) gwp[c] = (float)(sgx * invstd);
    if (!gxp) continue;
    double scale = (wp ? wp[c] : 1.0) * invstd;
    /* training: gx = scale (g - sg/m - (x - mu) invstd^2 sgx/m) = a g + b x + c0 */
    float a = (float)scale, bx = 0.f, c0 = 0.f;
    if (training) {
      double k2 = invstd * invstd * sgx / m;
      bx = (float)(-scale * k2);
      c0 = (float)(scale * (mu * k2 - sg / m));
    }
    for (int64_t i = 0; i < d.n; i++) {
      const float *xr = xp + (i * d.c + c) * d.inner, *gr = gp + (i * d.c + c) * d.inner;
      float *o = gxp + (i * d.c + c) * d.inner;
#pragma omp simd
      for (int64_t k = 0; k < d.inner; k++) o[k] = a * gr[k] + bx * xr[k] + c0;
    }
  }
}

int gam_cpu_bn_train_backward(const float *x, const float *dy, float *dx, int64_t n, int64_t c, int64_t inner,
                              const float *weight, float *dw, float *db, double eps, const float *stats) {
  (void)eps; /* the stats hold invstd already */
  bn_backward_cpu(x, dy, weight, stats, 1, (bn_dims){n, c, inner}, dx, dw, db);
  return 0;
}

int gam_cpu_bn_eval_backward(const float *x, const float *dy, float *dx, int64_t n, int64_t c, int64_t inner,
                             const float *weight, float *dw, float *db, const float *stats) {
  bn_backward_cpu(x, dy, weight, stats, 0, (bn_dims){n, c, inner}, dx, dw, db);
  return 0;
}

/* the mode of the forward and its eps (saved[0]: stats [2, C]: mean, invstd) */
typedef struct bn_ctx {
  int training;
  double eps;
} bn_ctx;

static int bn_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *x = n->inputs[0], *w = n->inputs[1], *b = n->inputs[2];
  const float *stats = gam__f32(n->saved[0]); /* [2, C]: mean, invstd */
  const bn_ctx *ctx = n->ctx;
  int training = ctx->training;
  bn_dims d = dims_of(x);
  int need_x = gam__input_needs_grad(n, 0), need_w = gam__input_needs_grad(n, 1);
  int need_b = gam__input_needs_grad(n, 2);
  gam_tensor *gx = need_x ? gam__new_like(x) : NULL;
  gam_tensor *gw = need_w ? gam__new_like(w) : NULL, *gb = need_b ? gam__new_like(b) : NULL;
  if ((need_x && !gx) || (need_w && !gw) || (need_b && !gb)) return gam__fail(3, gx, gw, gb);
  const gam_backend *be = gam__be(x);
  float *px = gx ? gam__f32(gx) : NULL, *pw = gw ? gam__f32(gw) : NULL, *pb = gb ? gam__f32(gb) : NULL;
  const float *wp = w ? gam__f32(w) : NULL;
  int rc = training
               ? be->bn_train_backward(gam__f32(x), gam__f32(g), px, d.n, d.c, d.inner, wp, pw, pb, ctx->eps,
                                       stats)
               : be->bn_eval_backward(gam__f32(x), gam__f32(g), px, d.n, d.c, d.inner, wp, pw, pb, stats);
  if (rc != 0) return gam__fail(3, gx, gw, gb);
  if (gx) rc = gam__accumulate(n, 0, gx);
  if (rc == 0 && gw) rc = gam__accumulate(n, 1, gw);
  if (rc == 0 && gb) rc = gam__accumulate(n, 2, gb);
  gam_release(gx);
  gam_release(gw);
  gam_release(gb);
  return rc;
}

/* the cpu forward: y and stats sp [2, C] (mean, invstd); running statistics
 * moved when training with momentum != 0 (and rm given) */
static void bn_forward_cpu(const float *xp, bn_dims d, float *rm, float *rv, const float *wp, const float *bp,
                           int training, double momentum, double eps, float *yp, float *sp) {
  int64_t m = d.n * d.inner;
  int update = training && rm && momentum != 0;
#pragma omp parallel for schedule(static) if (d.n * d.c * d.inner > GAM_PAR_MIN)
  for (int64_t c = 0; c < d.c; c++) {
    double mu, var;
    if (training) {
      mu = channel_sum(xp, d, c) / (double)m;
      double ss = channel_sqdev(xp, d, c, mu);
      var = ss / (double)m;
      if (update) {
        rm[c] = (float)((1.0 - momentum) * rm[c] + momentum * mu);
        rv[c] = (float)((1.0 - momentum) * rv[c] + momentum * ss / (double)(m - 1));
      }
    } else {
      mu = rm[c];
      var = rv[c];
    }
    double invstd = 1.0 / sqrt(var + eps);
    sp[c] = (float)mu;
    sp[d.c + c] = (float)invstd;
    double scale = (wp ? wp[c] : 1.0) * invstd;
    float a = (float)scale, s0 = (float)((bp ? bp[c] : 0.0) - mu * scale);
    for (int64_t i = 0; i < d.n; i++) {
      const float *xr = xp + (i * d.c + c) * d.inner;
      float *o = yp + (i * d.c + c) * d.inner;
#pragma omp simd
      for (int64_t k = 0; k < d.inner; k++) o[k] = a * xr[k] + s0;
    }
  }
}

int gam_cpu_bn_train_forward(const float *x, float *y, int64_t n, int64_t c, int64_t inner,
                             const float *weight, const float *bias, float *rm, float *rv, double momentum,
                             double eps, float *stats) {
  bn_forward_cpu(x, (bn_dims){n, c, inner}, rm, rv, weight, bias, 1, momentum, eps, y, stats);
  return 0;
}

/* evaluation reads the running statistics and never writes them */
int gam_cpu_bn_eval_forward(const float *x, float *y, int64_t n, int64_t c, int64_t inner,
                            const float *weight, const float *bias, const float *rm, const float *rv,
                            double eps, float *stats) {
  bn_forward_cpu(x, (bn_dims){n, c, inner}, (float *)rm, (float *)rv, weight, bias, 0, 0.0, eps, y, stats);
  return 0;
}

static int check_vec(const gam_tensor *x, const gam_tensor *v, const char *what, int64_t c) {
  GAM_TRY(gam__check_float_dev(v, "batch_norm", what));
  GAM_CHECK(v->device == x->device, "batch_norm: %s is on %s, the input on %s", what,
            gam__device_name(v->device), gam__device_name(x->device));
  char b1[160];
  GAM_CHECK(v->ndim == 1 && v->shape[0] == c,
            "batch_norm: %s %s does not match the input's %lld channels (expected [%lld])", what,
            gam__shape_str(v, b1), (long long)c, (long long)c);
  return 0;
}

int gam_batch_norm(gam_tensor **out, gam_tensor *x, gam_tensor *running_mean, gam_tensor *running_var,
                   gam_tensor *weight, gam_tensor *bias, int training, double momentum, double eps) {
  GAM_TRY(gam__check_float_dev(x, "batch_norm", "input"));
  char b1[160];
  GAM_CHECK(x->ndim >= 2 && x->ndim <= 4,
            "batch_norm: input must be [N, C, H, W] (or [N, C] / [N, C, L]), got %s", gam__shape_str(x, b1));
  bn_dims d = dims_of(x);
  GAM_CHECK(d.c > 0, "batch_norm: input %s has no channels", gam__shape_str(x, b1));
  GAM_CHECK((running_mean == NULL) == (running_var == NULL),
            "batch_norm: give both running_mean and running_var, or neither");
  if (running_mean) {
    GAM_TRY(check_vec(x, running_mean, "running_mean", d.c));
    GAM_TRY(check_vec(x, running_var, "running_var", d.c));
  }
  if (weight) GAM_TRY(check_vec(x, weight, "weight", d.c));
  if (bias) GAM_TRY(check_vec(x, bias, "bias", d.c));
  GAM_CHECK(isfinite(momentum) && momentum >= 0 && momentum <= 1,
            "batch_norm: momentum must be in [0, 1], got %g", momentum);
  GAM_CHECK(isfinite(eps) && eps >= 0, "batch_norm: eps must be a non-negative number, got %g", eps);
  GAM_CHECK(training || running_mean, "batch_norm: evaluation mode needs running_mean and running_var");
  int64_t m = d.n * d.inner;
  GAM_CHECK(!training || m > 1,
            "batch_norm: expected more than 1 value per channel when training, got input %s",
            gam__shape_str(x, b1));
  int64_t sshape[2] = {2, d.c};
  gam_tensor *y = gam__new_like(x), *stats = gam__new(GAM_FLOAT32, x->device, 2, sshape);
  if (!y || !stats) return gam__fail(2, y, stats);
  const gam_backend *be = gam__be(x);
  const float *wp = weight ? gam__f32(weight) : NULL, *bp = bias ? gam__f32(bias) : NULL;
  int rc;
  if (training) { /* running statistics only when they move (momentum 0: not handed over) */
    int update = running_mean && momentum != 0;
    rc = be->bn_train_forward(gam__f32(x), gam__f32(y), d.n, d.c, d.inner, wp, bp,
                              update ? gam__f32(running_mean) : NULL, update ? gam__f32(running_var) : NULL,
                              momentum, eps, gam__f32(stats));
  } else {
    rc = be->bn_eval_forward(gam__f32(x), gam__f32(y), d.n, d.c, d.inner, wp, bp, gam__f32(running_mean),
                             gam__f32(running_var), eps, gam__f32(stats));
  }
  if (rc != 0) return gam__fail(2, y, stats);
  gam_tensor *in[3] = {x, weight, bias};
  if (gam__grad_needed(3, in)) {
    gam_node *n = gam__record(y, "batch_norm", bn_backward, 3, in);
    bn_ctx *c = n && gam__save(n, 0, stats) == 0 ? gam__node_ctx(n, sizeof *c) : NULL;
    if (!c) return gam__fail(2, y, stats);
    c->training = training;
    c->eps = eps;
  }
  gam_release(stats);
  *out = y;
  return 0;
}
