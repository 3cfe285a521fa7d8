/* ops_pool.c — max, average and adaptive average pooling over NCHW planes.
 *
 *   x [N,C,H,W] -> y [N,C,OH,OW]; each of the N*C planes is pooled on its own.
 *   OH = floor_or_ceil((H + 2 ph - KH) / sh) + 1, and with ceil_mode the last
 *   window must start inside the input or its left padding (PyTorch's rule).
 *   Max pooling: padding counts as -inf; the gradient goes to the first maximum
 *   of each window (NaN counts as a maximum, so it propagates).
 *   Average pooling: divisor = window size clipped to the padded input
 *   (count_include_pad) or to the input (not), exactly as PyTorch.
 *   Adaptive average pooling: window o covers [floor(o I/O), ceil((o+1) I/O)).
 *
 * Plain OpenMP loops over planes (the cpu backend's gam_cpu_*_pool_*); pooling
 * is a small part of every network here, and these loops need no layout
 * change. On the cuda device the same loops run as kernels (kernels/pool.cu),
 * with the same bits as here. */
#include "backend.h"
#include <math.h>

typedef gam_pool_geom pool_geom;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static int64_t pool_out(int64_t in, int k, int s, int p, int ceil_mode) {
  int64_t num = in + 2 * (int64_t)p - k + (ceil_mode ? s - 1 : 0);
  if (num < 0) return 0;
  int64_t o = num / s + 1;
  if (ceil_mode && (o - 1) * s >= in + p) o--;
  return o;
}

static int pool_geometry(const char *op, const gam_tensor *x, int kh, int kw, int sh, int sw, int ph, int pw,
                         int ceil_mode, pool_geom *g) {
  GAM_TRY(gam__check_float_dev(x, op, "input"));
  char b1[160];
  GAM_CHECK(x->ndim == 4, "%s: input must be 4-D [N, C, H, W], got %s", op, gam__shape_str(x, b1));
  GAM_CHECK(kh >= 1 && kw >= 1, "%s: kernel size must be positive, got (%d, %d)", op, kh, kw);
  GAM_CHECK(sh >= 1 && sw >= 1, "%s: stride must be positive, got (%d, %d)", op, sh, sw);
  GAM_CHECK(ph >= 0 && pw >= 0, "%s: padding must be non-negative, got (%d, %d)", op, ph, pw);
  GAM_CHECK(ph <= kh / 2 && pw <= kw / 2,
            "%s: padding (%d, %d) must be at most half the kernel size (%d, %d)", op, ph, pw, kh, kw);
  GAM_CHECK(x->shape[2] > 0 && x->shape[3] > 0, "%s: input %s has an empty spatial dimension", op,
            gam__shape_str(x, b1));
  g->planes = x->shape[0] * x->shape[1];
  g->h = x->shape[2];
  g->w = x->shape[3];
  g->kh = kh;
  g->kw = kw;
  g->sh = sh;
  g->sw = sw;
  g->ph = ph;
  g->pw = pw;
  g->oh = pool_out(g->h, kh, sh, ph, ceil_mode);
  g->ow = pool_out(g->w, kw, sw, pw, ceil_mode);
  GAM_CHECK(g->oh >= 1 && g->ow >= 1, "%s: kernel %dx%d is larger than the padded input %lldx%lld", op, kh,
            kw, (long long)(g->h + 2 * ph), (long long)(g->w + 2 * pw));
  return 0;
}

static gam_tensor *pool_output(const gam_tensor *x, int dtype, int64_t oh, int64_t ow) {
  int64_t shape[4] = {x->shape[0], x->shape[1], oh, ow};
  return gam__new(dtype, x->device, 4, shape);
}

/* max and average pooling: the forward's geometry (and the divisor rule) */
typedef struct pool_ctx {
  pool_geom geo;
  int count_include_pad;
} pool_ctx;

static int accumulate_new(gam_node *n, int i, gam_tensor *g) {
  int rc = gam__accumulate(n, i, g);
  gam_release(g);
  return rc;
}

/* ---- max pooling ---------------------------------------------------------------- */
/* the 2x2, stride 2 windows of max_pool_2x2 below: they tile the plane without
 * overlap, so each input element gets its window's gradient or 0, written once
 * (0 + g, as the general loop's sum into zeros gives: -0 becomes +0) */
static int is_2x2(const gam_pool_geom *g) {
  return g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0 &&
         2 * g->oh <= g->h && 2 * g->ow <= g->w;
}

static void max_pool_2x2_backward(const gam_pool_geom *g, const float *gp, const int64_t *ip, float *p) {
  int64_t h = g->h, w = g->w, oh = g->oh, ow = g->ow, plane = h * w;
#pragma omp parallel for schedule(static) if (g->planes * plane > GAM_PAR_MIN)
  for (int64_t pl = 0; pl < g->planes; pl++) {
    float *xpl = p + pl * plane;
    for (int64_t r = 0; r < oh; r++) {
      float *r0 = xpl + 2 * r * w, *r1 = r0 + w;
      const float *gr = gp + (pl * oh + r) * ow;
      const int64_t *ir = ip + (pl * oh + r) * ow;
      for (int64_t c = 0; c < ow; c++) {
        int64_t k = ir[c] - (2 * r * w + 2 * c); /* 0, 1, w or w + 1 */
        float v = 0.f + gr[c];
        r0[2 * c] = k == 0 ? v : 0.f;
        r0[2 * c + 1] = k == 1 ? v : 0.f;
        r1[2 * c] = k == w ? v : 0.f;
        r1[2 * c + 1] = k == w + 1 ? v : 0.f;
      }
      for (int64_t c = 2 * ow; c < w; c++) r0[c] = r1[c] = 0.f; /* an odd last column */
    }
    for (int64_t i = 2 * oh * w; i < plane; i++) xpl[i] = 0.f; /* an odd last row */
  }
}

/* dx (every element written: zeroed, then each output's gradient added at its maximum) */
int gam_cpu_max_pool_backward(const gam_pool_geom *g, const float *gp, const int64_t *ip, float *p) {
  if (is_2x2(g)) {
    max_pool_2x2_backward(g, gp, ip, p);
    return 0;
  }
  int64_t plane = g->h * g->w, oplane = g->oh * g->ow, planes = g->planes;
  memset(p, 0, (size_t)(planes * plane) * sizeof(float));
#pragma omp parallel for schedule(static) if (planes * plane > GAM_PAR_MIN)
  for (int64_t pl = 0; pl < planes; pl++)
    for (int64_t o = 0; o < oplane; o++) p[pl * plane + ip[pl * oplane + o]] += gp[pl * oplane + o];
  return 0;
}

static int max_pool_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *x = n->inputs[0], *idx = n->saved[0];
  const pool_geom *geo = &((const pool_ctx *)n->ctx)->geo;
  gam_tensor *gx = gam__new_like(x); /* every element is written */
  if (!gx) return -1;
  if (gam__be(x)->max_pool_backward(geo, gam__f32(g), gam__i64(idx), gam__f32(gx)) != 0)
    return gam__fail(1, gx);
  return accumulate_new(n, 0, gx);
}

/* one step of a window's scan: v (at iv) replaces the best so far when it is
 * larger or NaN, unless the best is NaN already (the first NaN wins). Written
 * without branches: the comparisons of random activations mispredict. */
static inline void max_step(float v, int64_t iv, float *best, int64_t *at) {
  int take = (v > *best || v != v) && *best == *best;
  *best = take ? v : *best;
  *at = take ? iv : *at;
}

/* 2x2 windows, stride 2, no padding, every window inside the plane (is_2x2: the
 * networks' usual pooling): the same scan order and result as the loop below */
static void max_pool_2x2(const gam_pool_geom *g, const float *xp, float *yp, int64_t *ip) {
  int64_t w = g->w, oh = g->oh, ow = g->ow, plane = g->h * w;
#pragma omp parallel for schedule(static) if (g->planes * plane > GAM_PAR_MIN)
  for (int64_t pl = 0; pl < g->planes; pl++)
    for (int64_t r = 0; r < oh; r++) {
      const float *r0 = xp + pl * plane + 2 * r * w, *r1 = r0 + w;
      float *y = yp + (pl * oh + r) * ow;
      int64_t *ix = ip ? ip + (pl * oh + r) * ow : NULL;
      for (int64_t c = 0; c < ow; c++) {
        int64_t i0 = 2 * r * w + 2 * c;
        float best = r0[2 * c];
        int64_t at = i0;
        max_step(r0[2 * c + 1], i0 + 1, &best, &at);
        max_step(r1[2 * c], i0 + w, &best, &at);
        max_step(r1[2 * c + 1], i0 + w + 1, &best, &at);
        y[c] = best;
        if (ix) ix[c] = at;
      }
    }
}

/* y and, when ip is not NULL, the flat in-plane index of each maximum */
int gam_cpu_max_pool_forward(const gam_pool_geom *gg, const float *xp, float *yp, int64_t *ip) {
  const gam_pool_geom g = *gg;
  if (is_2x2(&g)) {
    max_pool_2x2(&g, xp, yp, ip);
    return 0;
  }
#pragma omp parallel for schedule(static) if (g.planes * g.h * g.w > GAM_PAR_MIN)
  for (int64_t pl = 0; pl < g.planes; pl++) {
    const float *xpl = xp + pl * g.h * g.w;
    for (int64_t oh = 0; oh < g.oh; oh++) {
      int64_t h0 = oh * g.sh - g.ph, h1 = min64(h0 + g.kh, g.h);
      h0 = max64(h0, 0);
      for (int64_t ow = 0; ow < g.ow; ow++) {
        int64_t w0 = ow * g.sw - g.pw, w1 = min64(w0 + g.kw, g.w);
        w0 = max64(w0, 0);
        int64_t best_at = h0 * g.w + w0;
        float best = -INFINITY;
        for (int64_t ih = h0; ih < h1; ih++)
          for (int64_t iw = w0; iw < w1; iw++) {
            float v = xpl[ih * g.w + iw];
            if (v > best || isnan(v)) {
              best = v;
              best_at = ih * g.w + iw;
              if (isnan(v)) goto done;
            }
          }
      done:;
        int64_t o = (pl * g.oh + oh) * g.ow + ow;
        yp[o] = best;
        if (ip) ip[o] = best_at;
      }
    }
  }
  return 0;
}

int gam_max_pool2d(gam_tensor **out, gam_tensor *x, int kh, int kw, int sh, int sw, int ph, int pw,
                   int ceil_mode) {
  pool_geom g;
  GAM_TRY(pool_geometry("max_pool2d", x, kh, kw, sh, sw, ph, pw, ceil_mode, &g));
  int need = gam__grad_needed(1, &x);
  gam_tensor *y = pool_output(x, GAM_FLOAT32, g.oh, g.ow);
  gam_tensor *idx = need ? pool_output(x, GAM_INT64, g.oh, g.ow) : NULL;
  if (!y || (need && !idx)) return gam__fail(2, y, idx);
  if (gam__be(x)->max_pool_forward(&g, gam__f32(x), gam__f32(y), idx ? gam__i64(idx) : NULL) != 0)
    return gam__fail(2, y, idx);
  if (need) {
    gam_node *n = gam__record(y, "max_pool2d", max_pool_backward, 1, &x);
    pool_ctx *c = n && gam__save(n, 0, idx) == 0 ? gam__node_ctx(n, sizeof *c) : NULL;
    if (!c) return gam__fail(2, y, idx);
    c->geo = g;
  }
  gam_release(idx);
  *out = y;
  return 0;
}

/* ---- average pooling ---------------------------------------------------------------- */
/* window of output (oh, ow): rows [*h0, *h1), cols [*w0, *w1) of the input; returns the divisor */
static int64_t avg_window(const pool_geom *g, int64_t oh, int64_t ow, int count_include_pad, int64_t *h0,
                          int64_t *h1, int64_t *w0, int64_t *w1) {
  int64_t a0 = oh * g->sh - g->ph, a1 = min64(a0 + g->kh, g->h + g->ph);
  int64_t b0 = ow * g->sw - g->pw, b1 = min64(b0 + g->kw, g->w + g->pw);
  int64_t padded = (a1 - a0) * (b1 - b0);
  *h0 = max64(a0, 0);
  *h1 = min64(a1, g->h);
  *w0 = max64(b0, 0);
  *w1 = min64(b1, g->w);
  return count_include_pad ? padded : (*h1 - *h0) * (*w1 - *w0);
}

/* dx (every element written: zeroed, then each output's share added over its window) */
int gam_cpu_avg_pool_backward(const gam_pool_geom *gg, const float *gp, float *p, int include) {
  const gam_pool_geom geo = *gg;
  memset(p, 0, (size_t)(geo.planes * geo.h * geo.w) * sizeof(float));
#pragma omp parallel for schedule(static) if (geo.planes * geo.h * geo.w > GAM_PAR_MIN)
  for (int64_t pl = 0; pl < geo.planes; pl++) {
    float *xpl = p + pl * geo.h * geo.w;
    for (int64_t oh = 0; oh < geo.oh; oh++)
      for (int64_t ow = 0; ow < geo.ow; ow++) {
        int64_t h0, h1, w0, w1;
        int64_t div = avg_window(&geo, oh, ow, include, &h0, &h1, &w0, &w1);
        if (div == 0) continue;
        float v = gp[(pl * geo.oh + oh) * geo.ow + ow] / (float)div;
        for (int64_t ih = h0; ih < h1; ih++)
          for (int64_t iw = w0; iw < w1; iw++) xpl[ih * geo.w + iw] += v;
      }
  }
  return 0;
}

static int avg_pool_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *x = n->inputs[0];
  const pool_ctx *c = n->ctx;
  gam_tensor *gx = gam__new_like(x); /* every element is written */
  if (!gx) return -1;
  if (gam__be(x)->avg_pool_backward(&c->geo, gam__f32(g), gam__f32(gx), c->count_include_pad) != 0)
    return gam__fail(1, gx);
  return accumulate_new(n, 0, gx);
}

int gam_cpu_avg_pool_forward(const gam_pool_geom *gg, const float *xp, float *yp, int count_include_pad) {
  const gam_pool_geom g = *gg;
#pragma omp parallel for schedule(static) if (g.planes * g.h * g.w > GAM_PAR_MIN)
  for (int64_t pl = 0; pl < g.planes; pl++) {
    const float *xpl = xp + pl * g.h * g.w;
    for (int64_t oh = 0; oh < g.oh; oh++)
      for (int64_t ow = 0; ow < g.ow; ow++) {
        int64_t h0, h1, w0, w1;
        int64_t div = avg_window(&g, oh, ow, count_include_pad, &h0, &h1, &w0, &w1);
        float s = 0.f;
        for (int64_t ih = h0; ih < h1; ih++)
          for (int64_t iw = w0; iw < w1; iw++) s += xpl[ih * g.w + iw];
        yp[(pl * g.oh + oh) * g.ow + ow] = div ? s / (float)div : 0.f;
      }
  }
  return 0;
}

int gam_avg_pool2d(gam_tensor **out, gam_tensor *x, int kh, int kw, int sh, int sw, int ph, int pw,
                   int ceil_mode, int count_include_pad) {
  pool_geom g;
  GAM_TRY(pool_geometry("avg_pool2d", x, kh, kw, sh, sw, ph, pw, ceil_mode, &g));
  gam_tensor *y = pool_output(x, GAM_FLOAT32, g.oh, g.ow);
  if (!y) return -1;
  if (gam__be(x)->avg_pool_forward(&g, gam__f32(x), gam__f32(y), count_include_pad) != 0)
    return gam__fail(1, y);
  if (gam__grad_needed(1, &x)) {
    gam_node *n = gam__record(y, "avg_pool2d", avg_pool_backward, 1, &x);
    pool_ctx *c = n ? gam__node_ctx(n, sizeof *c) : NULL;
    if (!c) return gam__fail(1, y);
    c->geo = g;
    c->count_include_pad = count_include_pad != 0;
  }
  *out = y;
  return 0;
}

/* ---- adaptive average pooling ----------------------------------------------------- */
static int64_t ada_start(int64_t o, int64_t in, int64_t out) { return o * in / out; }
static int64_t ada_end(int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; }

/* adaptive: only planes, h, w, oh, ow of g are used */
int gam_cpu_adaptive_avg_pool_backward(const gam_pool_geom *g, const float *gp, float *p) {
  int64_t planes = g->planes, h = g->h, w = g->w, oh = g->oh, ow = g->ow;
  memset(p, 0, (size_t)(planes * h * w) * sizeof(float));
#pragma omp parallel for schedule(static) if (planes * h * w > GAM_PAR_MIN)
  for (int64_t pl = 0; pl < planes; pl++)
    for (int64_t i = 0; i < oh; i++) {
      int64_t h0 = ada_start(i, h, oh), h1 = ada_end(i, h, oh);
      for (int64_t j = 0; j < ow; j++) {
        int64_t w0 = ada_start(j, w, ow), w1 = ada_end(j, w, ow);
        float v = gp[(pl * oh + i) * ow + j] / (float)((h1 - h0) * (w1 - w0));
        for (int64_t ih = h0; ih < h1; ih++)
          for (int64_t iw = w0; iw < w1; iw++) p[(pl * h + ih) * w + iw] += v;
      }
    }
  return 0;
}

static int adaptive_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *x = n->inputs[0];
  gam_pool_geom geo = {
      x->shape[0] * x->shape[1], x->shape[2], x->shape[3], g->shape[2], g->shape[3], 0, 0, 0, 0, 0, 0};
  gam_tensor *gx = gam__new_like(x); /* every element is written */
  if (!gx) return -1;
  if (gam__be(x)->adaptive_avg_pool_backward(&geo, gam__f32(g), gam__f32(gx)) != 0) return gam__fail(1, gx);
  return accumulate_new(n, 0, gx);
}

int gam_cpu_adaptive_avg_pool_forward(const gam_pool_geom *g, const float *xp, float *yp) {
  int64_t planes = g->planes, h = g->h, w = g->w, oh = g->oh, ow = g->ow;
#pragma omp parallel for schedule(static) if (planes * h * w > GAM_PAR_MIN)
  for (int64_t pl = 0; pl < planes; pl++)
    for (int64_t i = 0; i < oh; i++) {
      int64_t h0 = ada_start(i, h, oh), h1 = ada_end(i, h, oh);
      for (int64_t j = 0; j < ow; j++) {
        int64_t w0 = ada_start(j, w, ow), w1 = ada_end(j, w, ow);
        float s = 0.f;
        for (int64_t ih = h0; ih < h1; ih++)
          for (int64_t iw = w0; iw < w1; iw++) s += xp[(pl * h + ih) * w + iw];
        yp[(pl * oh + i) * ow + j] = s / (float)((h1 - h0) * (w1 - w0));
      }
    }
  return 0;
}

int gam_adaptive_avg_pool2d(gam_tensor **out, gam_tensor *x, int oh, int ow) {
  GAM_TRY(gam__check_float_dev(x, "adaptive_avg_pool2d", "input"));
  char b1[160];
  GAM_CHECK(x->ndim == 4, "adaptive_avg_pool2d: input must be 4-D [N, C, H, W], got %s",
            gam__shape_str(x, b1));
  GAM_CHECK(oh >= 1 && ow >= 1, "adaptive_avg_pool2d: output size must be positive, got (%d, %d)", oh, ow);
  GAM_CHECK(x->shape[2] > 0 && x->shape[3] > 0,
            "adaptive_avg_pool2d: input %s has an empty spatial dimension", gam__shape_str(x, b1));
  int64_t planes = x->shape[0] * x->shape[1], h = x->shape[2], w = x->shape[3];
  gam_tensor *y = pool_output(x, GAM_FLOAT32, oh, ow);
  if (!y) return -1;
  gam_pool_geom geo = {planes, h, w, oh, ow, 0, 0, 0, 0, 0, 0};
  if (gam__be(x)->adaptive_avg_pool_forward(&geo, gam__f32(x), gam__f32(y)) != 0) return gam__fail(1, y);
  if (gam__grad_needed(1, &x) && !gam__record(y, "adaptive_avg_pool2d", adaptive_backward, 1, &x))
    return gam__fail(1, y);
  *out = y;
  return 0;
}
