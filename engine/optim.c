/* optim.c — fused optimiser kernels over flat float32 vectors.
 *
 * Every vector here has n elements: theta (the parameter arena), g (its
 * gradient) and the optimisers' own buffers of the same size. Each function is
 * one pass over the vectors it names; reductions accumulate in double and come
 * back to the host as doubles (norms, dot products). The Lua optimisers in
 * lua/gam/optim/ chain these passes:
 *
 *   SAM   norm(g) ; ascend(θ, save θ) ; [pass 1] ; norm(g) ; base step from the saved θ
 *   GSAM  norm(g) ; ascend(θ, save θ, save g) ; [pass 1] ; dot3(gs, g) ;
 *         decompose(gs, g) ; base step from the saved θ
 *   GAM   norm(g0) ; ascend(θ, save θ0, save g0)                           [pass 1]
 *         gam_pass1: h+ = α g1, ‖(g1−g0)⊙|θ0|‖ ; gam_ascend_h0: θ = θ0 + s (g1−g0)
 *                                                                         [pass 2]
 *         gam_pass2: h− = c0 g0 + (1−β) g2 (in g0's buffer), ‖g2⊙|θ2|‖ ; ascend(θ)
 *                                                                         [pass 3]
 *         gam_pass3: g = h+ + (1−α) g3 with ‖h+‖², ⟨h+,h−⟩, ‖h−‖² ;
 *         decompose(g, h−) ; base step from the saved θ0
 *
 * "adaptive" (ASAM) multiplies each perturbation by θ² elementwise and measures
 * norms as ‖g⊙|θ|‖, θ being the weights at the point the perturbation starts from.
 * The base steps follow PyTorch's SGD, Adam and AdamW exactly; their optional
 * src vector is the point the step starts from (the saved θ), so restoring the
 * weights and updating them is one pass.
 *
 * Every function also runs on cuda vectors (all of one call on one device),
 * through the kernels of kernels/optim.cu. The functions returning doubles
 * then wait for the device; the _s forms at the end keep their scalars in a
 * block on the vectors' device instead (gam.h), which is how the Lua
 * optimisers chain them on both devices. */
#include "internal.h"
#include "cuda_backend.h"
#include <math.h>
#if defined(__SSE__)
#include <immintrin.h>
#endif

/* an OpenMP-parallel vector loop over i in [0, n), and one summing into the double s */
#define PAR_LOOP _Pragma("omp parallel for simd if (n > GAM_PAR_MIN)") for (int64_t i = 0; i < n; i++)
#define PAR_SUM_S _Pragma("omp parallel for simd reduction(+ : s) if (n > GAM_PAR_MIN)") \
  for (int64_t i = 0; i < n; i++)

/* The device of the call: set by the first vector checked (n < 0), every
 * later vector of the call must be on it. */
static _Thread_local int call_device;

/* A flat float32 vector of n elements (n < 0: take its size, and its device
 * becomes the call's). */
static int vec(const gam_tensor *t, const char *op, const char *arg, int64_t n) {
  GAM_TRY(gam__check_float_dev(t, op, arg));
  if (n < 0) call_device = t->device;
  GAM_CHECK(t->device == call_device, "%s: %s is on %s, the other vectors on %s", op, arg,
            gam__device_name(t->device), gam__device_name(call_device));
  char b[160];
  GAM_CHECK(n < 0 || t->numel == n, "%s: %s has %lld elements %s, expected %lld", op, arg,
            (long long)t->numel, gam__shape_str(t, b), (long long)n);
  return 0;
}

static int opt_vec(const gam_tensor *t, const char *op, const char *arg, int64_t n) {
  return t ? vec(t, op, arg, n) : 0;
}

static float *fp(const gam_tensor *t) { return t ? gam__f32(t) : NULL; }

/* ---- scalars of the old forms on the device ------------------------------------
 * The functions returning doubles run the device kernels into a temporary
 * scalars block and copy the results back (a wait). */
typedef struct dev_scalars { double *p; } dev_scalars;

static int dev_scalars_new(dev_scalars *d) {
  d->p = gam__device_alloc(GAM_OPT_NSCALARS * sizeof(double));
  if (!d->p) return -1;
  if (gam_cuda__memset(d->p, 0, GAM_OPT_NSCALARS * sizeof(double), "optimiser") == 0) return 0;
  gam__device_free(d->p, GAM_OPT_NSCALARS * sizeof(double));
  return -1;
}

/* out[0..k) = the block's first k values; frees the block */
static int dev_scalars_take(dev_scalars *d, int rc, double *out, int k, const char *op) {
  if (rc == 0) rc = gam_cuda__memcpy(out, d->p, (size_t)k * sizeof(double), GAM_COPY_D2H, op);
  gam__device_free(d->p, GAM_OPT_NSCALARS * sizeof(double));
  return rc;
}

static gam_coef coef_value(double v) {
  gam_coef c = {GAM_COEF_VALUE, v, NULL};
  return c;
}

/* ---- the arena as one vector ------------------------------------------------ */
int gam_opt_span(gam_tensor **out, gam_tensor **ts, int n) {
  GAM_CHECK(out, "opt_span: no output given");
  *out = NULL;
  GAM_CHECK(ts && n >= 1, "opt_span: no tensors given");
  int64_t total = 0;
  for (int k = 0; k < n; k++) {
    gam_tensor *t = ts[k];
    if (!t || !t->storage || t->dtype != GAM_FLOAT32 || t->storage != ts[0]->storage) return 0;
    if (t->offset != ts[0]->offset + total) return 0;
    total += t->numel;
  }
  gam_tensor *v = gam__alias(ts[0], 1, &total, 0);
  if (!v) return -1;
  *out = v;
  return 0;
}

/* dst = src: the copy the fused passes are measured against (same threading). */
int gam_opt_copy(gam_tensor *dst, const gam_tensor *src) {
  GAM_TRY(vec(dst, "opt_copy", "destination", -1));
  int64_t n = dst->numel;
  GAM_TRY(vec(src, "opt_copy", "source", n));
  if (dst->device == GAM_CUDA)
    return gam_cuda__memcpy(gam__f32(dst), gam__f32(src), (size_t)n * sizeof(float), GAM_COPY_D2D,
                            "opt_copy");
  float *d = gam__f32(dst);
  const float *s = gam__f32(src);
  PAR_LOOP d[i] = s[i];
  return 0;
}

/* ---- base optimisers (PyTorch's update rules) ---------------------------------
 * SGD, per element, p0 = src (or param):
 *   d = g + wd p0
 *   momentum: buf = first ? d : momentum buf + (1 − dampening) d
 *             d = nesterov ? d + momentum buf : buf
 *   param = p0 − lr d                                                          */
int gam_sgd_step(gam_tensor *param, const gam_tensor *grad, gam_tensor *momentum_buf,
                 const gam_tensor *src, double lr, double momentum, double dampening,
                 double weight_decay, int nesterov, int first) {
  GAM_TRY(vec(param, "sgd", "parameter", -1));
  int64_t n = param->numel;
  GAM_TRY(vec(grad, "sgd", "gradient", n));
  GAM_TRY(opt_vec(src, "sgd", "start point", n));
  GAM_CHECK(momentum == 0 || momentum_buf, "sgd: momentum %g needs a momentum buffer", momentum);
  GAM_TRY(opt_vec(momentum_buf, "sgd", "momentum buffer", n));
  if (param->device == GAM_CUDA)
    return gam_cuda_sgd_step(gam__f32(param), gam__f32(grad), fp(momentum_buf), fp(src), n, lr,
                             momentum, dampening, weight_decay, nesterov, first, NULL);
  float *p = gam__f32(param), *buf = momentum_buf ? gam__f32(momentum_buf) : NULL;
  const float *g = gam__f32(grad), *p0 = src ? gam__f32(src) : p;
  const float flr = (float)lr, mom = (float)momentum, damp1 = (float)(1.0 - dampening),
              wd = (float)weight_decay;
  if (momentum == 0) {
    PAR_LOOP p[i] = p0[i] - flr * (g[i] + wd * p0[i]);
  } else if (first && nesterov) {
    PAR_LOOP {
      float d = g[i] + wd * p0[i];
      buf[i] = d;
      p[i] = p0[i] - flr * (d + mom * d);
    }
  } else if (first) {
    PAR_LOOP {
      float d = g[i] + wd * p0[i];
      buf[i] = d;
      p[i] = p0[i] - flr * d;
    }
  } else if (nesterov) {
    PAR_LOOP {
      float d = g[i] + wd * p0[i];
      float b = mom * buf[i] + damp1 * d;
      buf[i] = b;
      p[i] = p0[i] - flr * (d + mom * b);
    }
  } else {
    PAR_LOOP {
      float d = g[i] + wd * p0[i];
      float b = mom * buf[i] + damp1 * d;
      buf[i] = b;
      p[i] = p0[i] - flr * b;
    }
  }
  return 0;
}

/* x = √x over a block. sqrtf may set errno, which keeps compilers from
 * vectorising it in a loop; the vector square roots are used where built for. */
enum { ADAM_BLOCK = 1024 };
static void sqrt_block(float *x, int len) {
  int j = 0;
#if defined(__AVX512F__)
  for (; j + 16 <= len; j += 16) _mm512_storeu_ps(x + j, _mm512_sqrt_ps(_mm512_loadu_ps(x + j)));
#endif
#if defined(__AVX__)
  for (; j + 8 <= len; j += 8) _mm256_storeu_ps(x + j, _mm256_sqrt_ps(_mm256_loadu_ps(x + j)));
#elif defined(__SSE__)
  for (; j + 4 <= len; j += 4) _mm_storeu_ps(x + j, _mm_sqrt_ps(_mm_loadu_ps(x + j)));
#endif
  for (; j < len; j++) x[j] = sqrtf(x[j]);
}

/* Adam / AdamW, per element, p0 = src (or param), t = step (counted from 1):
 *   AdamW: p0 = p0 (1 − lr wd)        Adam: g = g + wd p0
 *   m = β1 m + (1 − β1) g ;  v = β2 v + (1 − β2) g²
 *   param = p0 − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps)                  */
int gam_adam_step(gam_tensor *param, const gam_tensor *grad, gam_tensor *exp_avg,
                  gam_tensor *exp_avg_sq, const gam_tensor *src, double lr, double beta1,
                  double beta2, double eps, double weight_decay, int decoupled, int64_t step) {
  const char *op = decoupled ? "adamw" : "adam";
  GAM_TRY(vec(param, op, "parameter", -1));
  int64_t n = param->numel;
  GAM_TRY(vec(grad, op, "gradient", n));
  GAM_TRY(vec(exp_avg, op, "exp_avg", n));
  GAM_TRY(vec(exp_avg_sq, op, "exp_avg_sq", n));
  GAM_TRY(opt_vec(src, op, "start point", n));
  GAM_CHECK(step >= 1, "%s: step must count from 1, got %lld", op, (long long)step);
  if (param->device == GAM_CUDA)
    return gam_cuda_adam_step(gam__f32(param), gam__f32(grad), gam__f32(exp_avg),
                              gam__f32(exp_avg_sq), fp(src), n, lr, beta1, beta2, eps, weight_decay,
                              decoupled, step, NULL);
  float *p = gam__f32(param), *m = gam__f32(exp_avg), *v = gam__f32(exp_avg_sq);
  const float *g = gam__f32(grad), *p0 = src ? gam__f32(src) : p;
  const double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
  const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2), b1 = (float)beta1,
              b2 = (float)beta2, fe = (float)eps;
  const float decay = decoupled ? (float)(1.0 - lr * weight_decay) : 1.f;
  const float wd = decoupled ? 0.f : (float)weight_decay;
  const float c1 = (float)(1.0 - beta1), c2 = (float)(1.0 - beta2);
  /* blocks of ADAM_BLOCK: moments, then √v (sqrt_block), then the update;
   * each inner loop vectorises */
  const int64_t nblocks = (n + ADAM_BLOCK - 1) / ADAM_BLOCK;
#pragma omp parallel for if (n > GAM_PAR_MIN)
  for (int64_t blk = 0; blk < nblocks; blk++) {
    float root[ADAM_BLOCK];
    const int64_t lo = blk * ADAM_BLOCK;
    const int len = (int)(n - lo < ADAM_BLOCK ? n - lo : ADAM_BLOCK);
    for (int j = 0; j < len; j++) {
      const int64_t i = lo + j;
      float w = p0[i] * decay;
      float d = g[i] + wd * w;
      float mi = b1 * m[i] + c1 * d;
      float vi = b2 * v[i] + c2 * d * d;
      m[i] = mi;
      v[i] = vi;
      root[j] = vi;
    }
    sqrt_block(root, len);
    for (int j = 0; j < len; j++) {
      const int64_t i = lo + j;
      p[i] = p0[i] * decay - step_size * m[i] / (root[j] / bc2_sqrt + fe);
    }
  }
  return 0;
}

/* ---- sharpness-aware phases ------------------------------------------------------ */

/* *norm = ‖g ⊙ |w|‖ (w NULL: ‖g‖), accumulated in double. */
int gam_opt_norm(double *norm, const gam_tensor *g, const gam_tensor *w) {
  GAM_CHECK(norm, "opt_norm: no output given");
  GAM_TRY(vec(g, "opt_norm", "gradient", -1));
  int64_t n = g->numel;
  GAM_TRY(opt_vec(w, "opt_norm", "weights", n));
  if (g->device == GAM_CUDA) {
    dev_scalars d;
    GAM_TRY(dev_scalars_new(&d));
    return dev_scalars_take(&d, gam_cuda_opt_norm(d.p, gam__f32(g), fp(w), n, 0), norm, 1, "opt_norm");
  }
  const float *pg = gam__f32(g);
  double s = 0;
  if (w) {
    const float *pw = gam__f32(w);
#pragma omp parallel for simd reduction(+ : s) if (n > GAM_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
      double x = (double)pg[i] * fabsf(pw[i]);
      s += x * x;
    }
  } else {
#pragma omp parallel for simd reduction(+ : s) if (n > GAM_PAR_MIN)
    for (int64_t i = 0; i < n; i++) s += (double)pg[i] * pg[i];
  }
  *norm = sqrt(s);
  return 0;
}

/* theta_save = θ (optional); g_save = g (optional);
 * θ += scale · g · (adaptive ? θ² : 1). */
int gam_opt_ascend(gam_tensor *theta, gam_tensor *theta_save, const gam_tensor *g,
                   gam_tensor *g_save, double scale, int adaptive) {
  GAM_TRY(vec(theta, "opt_ascend", "parameters", -1));
  int64_t n = theta->numel;
  GAM_TRY(vec(g, "opt_ascend", "gradient", n));
  GAM_TRY(opt_vec(theta_save, "opt_ascend", "parameter copy", n));
  GAM_TRY(opt_vec(g_save, "opt_ascend", "gradient copy", n));
  GAM_CHECK(theta_save || !g_save, "opt_ascend: a gradient copy needs a parameter copy too");
  if (theta->device == GAM_CUDA)
    return gam_cuda_opt_ascend(gam__f32(theta), fp(theta_save), gam__f32(g), fp(g_save), n,
                               coef_value(scale), adaptive);
  float *p = gam__f32(theta), *ps = theta_save ? gam__f32(theta_save) : NULL,
        *gs = g_save ? gam__f32(g_save) : NULL;
  const float *pg = gam__f32(g);
  const float s = (float)scale;
  /* one loop per case, so that no branch stays inside a vector loop */
#define ASCEND(SAVE, STEP)                                  \
  PAR_LOOP {                                                \
    float w = p[i], gi = pg[i];                             \
    SAVE;                                                   \
    p[i] = w + (STEP);                                      \
  }
  if (gs) {
    if (adaptive) ASCEND((ps[i] = w, gs[i] = gi), gi * s * w * w)
    else ASCEND((ps[i] = w, gs[i] = gi), gi * s)
  } else if (ps) {
    if (adaptive) ASCEND(ps[i] = w, gi * s * w * w)
    else ASCEND(ps[i] = w, gi * s)
  } else {
    if (adaptive) ASCEND((void)0, gi * s * w * w)
    else ASCEND((void)0, gi * s)
  }
#undef ASCEND
  return 0;
}

/* out = {‖a‖², ⟨a,b⟩, ‖b‖²}, accumulated in double. */
int gam_opt_dot3(double *out, const gam_tensor *a, const gam_tensor *b) {
  GAM_CHECK(out, "opt_dot3: no output given");
  GAM_TRY(vec(a, "opt_dot3", "first vector", -1));
  int64_t n = a->numel;
  GAM_TRY(vec(b, "opt_dot3", "second vector", n));
  if (a->device == GAM_CUDA) {
    dev_scalars d;
    GAM_TRY(dev_scalars_new(&d));
    return dev_scalars_take(&d, gam_cuda_opt_dot3(d.p, gam__f32(a), gam__f32(b), n, 0, 0), out, 3,
                            "opt_dot3");
  }
  const float *pa = gam__f32(a), *pb = gam__f32(b);
  double aa = 0, ab = 0, bb = 0;
#pragma omp parallel for simd reduction(+ : aa, ab, bb) if (n > GAM_PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    double x = pa[i], y = pb[i];
    aa += x * x;
    ab += x * y;
    bb += y * y;
  }
  out[0] = aa;
  out[1] = ab;
  out[2] = bb;
  return 0;
}

/* h = h − weight · (v − c h): the gradient decomposition of GSAM (h = SAM's
 * gradient, v = the plain gradient) and of GAM (h = h+, v = h−), with
 * c = cos ‖v‖ / (‖h‖ + ξ). */
int gam_opt_decompose(gam_tensor *h, const gam_tensor *v, double weight, double c) {
  GAM_TRY(vec(h, "opt_decompose", "direction", -1));
  int64_t n = h->numel;
  GAM_TRY(vec(v, "opt_decompose", "vertical source", n));
  if (h->device == GAM_CUDA)
    return gam_cuda_opt_decompose(gam__f32(h), gam__f32(v), n, weight, coef_value(c));
  float *ph = gam__f32(h);
  const float *pv = gam__f32(v);
  const float w = (float)weight, fc = (float)c;
  PAR_LOOP ph[i] -= w * (pv[i] - fc * ph[i]);
  return 0;
}

/* GAM after pass 1 (g = g1): hplus = α g1 and
 * *norm = ‖(g1 − g0) ⊙ |θ0|‖ (not adaptive: ‖g1 − g0‖). */
int gam_gam_pass1(double *norm, gam_tensor *hplus, const gam_tensor *g, const gam_tensor *g0,
                  const gam_tensor *theta0, double alpha, int adaptive) {
  GAM_CHECK(norm, "gam_pass1: no output given");
  GAM_TRY(vec(g, "gam_pass1", "gradient", -1));
  int64_t n = g->numel;
  GAM_TRY(vec(hplus, "gam_pass1", "h+ buffer", n));
  GAM_TRY(vec(g0, "gam_pass1", "g0 buffer", n));
  GAM_TRY(vec(theta0, "gam_pass1", "parameter copy", n));
  if (g->device == GAM_CUDA) {
    dev_scalars d;
    GAM_TRY(dev_scalars_new(&d));
    return dev_scalars_take(&d, gam_cuda_gam_pass1(d.p, gam__f32(hplus), gam__f32(g), gam__f32(g0),
                                                   gam__f32(theta0), n, alpha, adaptive, 0),
                            norm, 1, "gam_pass1");
  }
  float *hp = gam__f32(hplus);
  const float *pg = gam__f32(g), *pg0 = gam__f32(g0), *w = gam__f32(theta0);
  const float a = (float)alpha;
  double s = 0;
  if (adaptive) {
    PAR_SUM_S {
      float gi = pg[i];
      hp[i] = a * gi;
      double h0 = (double)(gi - pg0[i]) * fabsf(w[i]);
      s += h0 * h0;
    }
  } else {
    PAR_SUM_S {
      float gi = pg[i];
      hp[i] = a * gi;
      double h0 = gi - pg0[i];
      s += h0 * h0;
    }
  }
  *norm = sqrt(s);
  return 0;
}

/* GAM's second perturbation, from the restored θ0:
 * θ = θ0 + scale · (g1 − g0) · (adaptive ? θ0² : 1). */
int gam_gam_ascend_h0(gam_tensor *theta, const gam_tensor *theta0, const gam_tensor *g,
                      const gam_tensor *g0, double scale, int adaptive) {
  GAM_TRY(vec(theta, "gam_ascend_h0", "parameters", -1));
  int64_t n = theta->numel;
  GAM_TRY(vec(theta0, "gam_ascend_h0", "parameter copy", n));
  GAM_TRY(vec(g, "gam_ascend_h0", "gradient", n));
  GAM_TRY(vec(g0, "gam_ascend_h0", "g0 buffer", n));
  if (theta->device == GAM_CUDA)
    return gam_cuda_gam_ascend_h0(gam__f32(theta), gam__f32(theta0), gam__f32(g), gam__f32(g0), n,
                                  coef_value(scale), adaptive);
  float *p = gam__f32(theta);
  const float *w = gam__f32(theta0), *pg = gam__f32(g), *pg0 = gam__f32(g0);
  const float s = (float)scale;
  if (adaptive) {
    PAR_LOOP {
      float wi = w[i];
      p[i] = wi + (pg[i] - pg0[i]) * s * wi * wi;
    }
  } else {
    PAR_LOOP p[i] = w[i] + (pg[i] - pg0[i]) * s;
  }
  return 0;
}

/* GAM after pass 2 (g = g2): the g0 buffer becomes h− = c0 g0 + c1 g2
 * (reference: c0 = 1, paper: c0 = β; c1 = 1 − β), and
 * *norm = ‖g2 ⊙ |θ2|‖ (not adaptive: ‖g2‖), θ2 being the current weights. */
int gam_gam_pass2(double *norm, gam_tensor *g0_hminus, const gam_tensor *g,
                  const gam_tensor *theta, double c0, double c1, int adaptive) {
  GAM_CHECK(norm, "gam_pass2: no output given");
  GAM_TRY(vec(g, "gam_pass2", "gradient", -1));
  int64_t n = g->numel;
  GAM_TRY(vec(g0_hminus, "gam_pass2", "g0 buffer", n));
  GAM_TRY(vec(theta, "gam_pass2", "parameters", n));
  if (g->device == GAM_CUDA) {
    dev_scalars d;
    GAM_TRY(dev_scalars_new(&d));
    return dev_scalars_take(&d, gam_cuda_gam_pass2(d.p, gam__f32(g0_hminus), gam__f32(g),
                                                   gam__f32(theta), n, c0, c1, adaptive, 0),
                            norm, 1, "gam_pass2");
  }
  float *hm = gam__f32(g0_hminus);
  const float *pg = gam__f32(g), *w = gam__f32(theta);
  const float a = (float)c0, b = (float)c1;
  double s = 0;
  if (adaptive) {
    PAR_SUM_S {
      float gi = pg[i];
      hm[i] = a * hm[i] + b * gi;
      double x = (double)gi * fabsf(w[i]);
      s += x * x;
    }
  } else {
    PAR_SUM_S {
      float gi = pg[i];
      hm[i] = a * hm[i] + b * gi;
      s += (double)gi * gi;
    }
  }
  *norm = sqrt(s);
  return 0;
}

/* GAM after pass 3 (g = g3): g = h+ = hplus + c g3 (c = 1 − α), and
 * out = {‖h+‖², ⟨h+,h−⟩, ‖h−‖²}. */
int gam_gam_pass3(double *out, gam_tensor *g, const gam_tensor *hplus, const gam_tensor *hminus,
                  double c) {
  GAM_CHECK(out, "gam_pass3: no output given");
  GAM_TRY(vec(g, "gam_pass3", "gradient", -1));
  int64_t n = g->numel;
  GAM_TRY(vec(hplus, "gam_pass3", "h+ buffer", n));
  GAM_TRY(vec(hminus, "gam_pass3", "h- buffer", n));
  if (g->device == GAM_CUDA) {
    dev_scalars d;
    GAM_TRY(dev_scalars_new(&d));
    return dev_scalars_take(&d, gam_cuda_gam_pass3(d.p, gam__f32(g), gam__f32(hplus),
                                                   gam__f32(hminus), n, c, 0, 0),
                            out, 3, "gam_pass3");
  }
  float *pg = gam__f32(g);
  const float *hp = gam__f32(hplus), *hm = gam__f32(hminus);
  const float fc = (float)c;
  double aa = 0, ab = 0, bb = 0;
#pragma omp parallel for simd reduction(+ : aa, ab, bb) if (n > GAM_PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    float h = hp[i] + fc * pg[i];
    pg[i] = h;
    double x = h, y = hm[i];
    aa += x * x;
    ab += x * y;
    bb += y * y;
  }
  out[0] = aa;
  out[1] = ab;
  out[2] = bb;
  return 0;
}

/* ---- the step's scalars on the vectors' device (the _s forms, gam.h) -------------
 * On the cpu each _s form is the function above with its coefficient taken
 * from the block, computed exactly as the Lua optimisers computed it on the
 * host before (same operations, same order, no contraction), so results are
 * bit for bit those of the host-scalar forms. On cuda the coefficient is
 * computed on the device by the kernel that uses it. */
static const double XI = 1e-12;

/* the block s: GAM_OPT_NSCALARS doubles (int64 storage), on the call's device */
static int scalars(const gam_tensor *s, const char *op, int any_device) {
  GAM_TRY(gam__check_dev(s, op, "scalars block"));
  GAM_CHECK(s->dtype == GAM_INT64 && s->numel == GAM_OPT_NSCALARS,
            "%s: the scalars block must come from gam_opt_scalars (int64 [%d])", op, GAM_OPT_NSCALARS);
  GAM_CHECK(any_device || s->device == call_device, "%s: the scalars block is on %s, the vectors on %s",
            op, gam__device_name(s->device), gam__device_name(call_device));
  return 0;
}

static double *slots(const gam_tensor *s) { return (double *)gam__data(s); }

/* a non-finite v with a code, and no failure recorded yet: record it (cpu) */
static void check_host(double *sc, double v, int code) {
  if (code != 0 && sc[GAM_OPT_FLAG] == 0 && !isfinite(v)) {
    sc[GAM_OPT_FLAG] = code;
    sc[GAM_OPT_BAD] = v;
  }
}

static gam_coef coef_radius(double rho, const gam_tensor *s) {
  gam_coef c = {GAM_COEF_RADIUS, rho, slots(s)};
  return c;
}

/* c = s1 / (√s0 √s2 + ξ) · √s2 / (√s0 + ξ); the product is stored before the
 * addition so that the compiler cannot fuse them (the host never did) */
static double decompose_coef(const double *sc) {
  double nh = sqrt(sc[0]), nv = sqrt(sc[2]);
  volatile double prod = nh * nv;
  double cosine = sc[1] / (prod + XI);
  return cosine * nv / (nh + XI);
}

int gam_opt_scalars(gam_tensor **out, int device) {
  GAM_CHECK(out, "opt_scalars: no output given");
  int64_t n = GAM_OPT_NSCALARS;
  GAM_CHECK(device == GAM_CPU || device == GAM_CUDA, "opt_scalars: unknown device %d", device);
  return gam_zeros(out, GAM_INT64, device, 1, &n);
}

int gam_opt_read(const gam_tensor *s, double *out) {
  GAM_CHECK(out, "opt_read: no output given");
  GAM_TRY(scalars(s, "opt_read", 1));
  size_t bytes = GAM_OPT_NSCALARS * sizeof(double);
  if (s->device == GAM_CUDA) return gam_cuda__memcpy(out, slots(s), bytes, GAM_COPY_D2H, "opt_read");
  memcpy(out, slots(s), bytes);
  return 0;
}

int gam_opt_clear(gam_tensor *s) {
  GAM_TRY(scalars(s, "opt_clear", 1));
  size_t bytes = GAM_OPT_NSCALARS * sizeof(double);
  if (s->device == GAM_CUDA) return gam_cuda__memset(slots(s), 0, bytes, "opt_clear");
  memset(slots(s), 0, bytes);
  return 0;
}

int gam_opt_check_loss(gam_tensor *s, const gam_tensor *loss, int code, int keep) {
  GAM_TRY(gam__check_float_dev(loss, "opt_check_loss", "loss"));
  char b[160];
  GAM_CHECK(loss->numel == 1, "opt_check_loss: loss must be a scalar, got %s", gam__shape_str(loss, b));
  call_device = loss->device;
  GAM_TRY(scalars(s, "opt_check_loss", 0));
  if (s->device == GAM_CUDA) return gam_cuda_opt_check_loss(slots(s), gam__f32(loss), code, keep);
  double v = gam__f32(loss)[0];
  if (keep) slots(s)[GAM_OPT_LOSS] = v;
  check_host(slots(s), v, code);
  return 0;
}

int gam_opt_norm_s(gam_tensor *s, const gam_tensor *g, const gam_tensor *w, int code) {
  GAM_TRY(vec(g, "opt_norm", "gradient", -1));
  GAM_TRY(opt_vec(w, "opt_norm", "weights", g->numel));
  GAM_TRY(scalars(s, "opt_norm", 0));
  if (g->device == GAM_CUDA) return gam_cuda_opt_norm(slots(s), gam__f32(g), fp(w), g->numel, code);
  double v;
  GAM_TRY(gam_opt_norm(&v, g, w));
  slots(s)[0] = v;
  check_host(slots(s), v, code);
  return 0;
}

int gam_opt_ascend_s(gam_tensor *theta, gam_tensor *theta_save, const gam_tensor *g,
                     gam_tensor *g_save, double rho, const gam_tensor *s, int adaptive) {
  GAM_TRY(vec(theta, "opt_ascend", "parameters", -1));
  GAM_TRY(scalars(s, "opt_ascend", 0));
  if (theta->device == GAM_CUDA) {
    int64_t n = theta->numel;
    GAM_TRY(vec(g, "opt_ascend", "gradient", n));
    GAM_TRY(opt_vec(theta_save, "opt_ascend", "parameter copy", n));
    GAM_TRY(opt_vec(g_save, "opt_ascend", "gradient copy", n));
    GAM_CHECK(theta_save || !g_save, "opt_ascend: a gradient copy needs a parameter copy too");
    return gam_cuda_opt_ascend(gam__f32(theta), fp(theta_save), gam__f32(g), fp(g_save), n,
                               coef_radius(rho, s), adaptive);
  }
  return gam_opt_ascend(theta, theta_save, g, g_save, rho / (slots(s)[0] + XI), adaptive);
}

int gam_opt_dot3_s(gam_tensor *s, const gam_tensor *a, const gam_tensor *b, int code0, int code2) {
  GAM_TRY(vec(a, "opt_dot3", "first vector", -1));
  GAM_TRY(vec(b, "opt_dot3", "second vector", a->numel));
  GAM_TRY(scalars(s, "opt_dot3", 0));
  double *sc = slots(s);
  if (a->device == GAM_CUDA) return gam_cuda_opt_dot3(sc, gam__f32(a), gam__f32(b), a->numel, code0, code2);
  GAM_TRY(gam_opt_dot3(sc, a, b));
  check_host(sc, sqrt(sc[0]), code0);
  check_host(sc, sqrt(sc[2]), code2);
  return 0;
}

int gam_opt_decompose_s(gam_tensor *h, const gam_tensor *v, double weight, const gam_tensor *s) {
  GAM_TRY(vec(h, "opt_decompose", "direction", -1));
  GAM_TRY(vec(v, "opt_decompose", "vertical source", h->numel));
  GAM_TRY(scalars(s, "opt_decompose", 0));
  if (h->device == GAM_CUDA) {
    gam_coef c = {GAM_COEF_DECOMPOSE, 0, slots(s)};
    return gam_cuda_opt_decompose(gam__f32(h), gam__f32(v), h->numel, weight, c);
  }
  return gam_opt_decompose(h, v, weight, decompose_coef(slots(s)));
}

int gam_gam_pass1_s(gam_tensor *s, gam_tensor *hplus, const gam_tensor *g, const gam_tensor *g0,
                    const gam_tensor *theta0, double alpha, int adaptive, int code) {
  GAM_TRY(vec(g, "gam_pass1", "gradient", -1));
  int64_t n = g->numel;
  GAM_TRY(vec(hplus, "gam_pass1", "h+ buffer", n));
  GAM_TRY(vec(g0, "gam_pass1", "g0 buffer", n));
  GAM_TRY(vec(theta0, "gam_pass1", "parameter copy", n));
  GAM_TRY(scalars(s, "gam_pass1", 0));
  double *sc = slots(s);
  if (g->device == GAM_CUDA)
    return gam_cuda_gam_pass1(sc, gam__f32(hplus), gam__f32(g), gam__f32(g0), gam__f32(theta0), n,
                              alpha, adaptive, code);
  GAM_TRY(gam_gam_pass1(&sc[0], hplus, g, g0, theta0, alpha, adaptive));
  check_host(sc, sc[0], code);
  return 0;
}

int gam_gam_ascend_h0_s(gam_tensor *theta, const gam_tensor *theta0, const gam_tensor *g,
                        const gam_tensor *g0, double rho, const gam_tensor *s, int adaptive) {
  GAM_TRY(vec(theta, "gam_ascend_h0", "parameters", -1));
  GAM_TRY(scalars(s, "gam_ascend_h0", 0));
  if (theta->device == GAM_CUDA) {
    int64_t n = theta->numel;
    GAM_TRY(vec(theta0, "gam_ascend_h0", "parameter copy", n));
    GAM_TRY(vec(g, "gam_ascend_h0", "gradient", n));
    GAM_TRY(vec(g0, "gam_ascend_h0", "g0 buffer", n));
    return gam_cuda_gam_ascend_h0(gam__f32(theta), gam__f32(theta0), gam__f32(g), gam__f32(g0), n,
                                  coef_radius(rho, s), adaptive);
  }
  return gam_gam_ascend_h0(theta, theta0, g, g0, rho / (slots(s)[0] + XI), adaptive);
}

int gam_gam_pass2_s(gam_tensor *s, gam_tensor *g0_hminus, const gam_tensor *g,
                    const gam_tensor *theta, double c0, double c1, int adaptive, int code) {
  GAM_TRY(vec(g, "gam_pass2", "gradient", -1));
  int64_t n = g->numel;
  GAM_TRY(vec(g0_hminus, "gam_pass2", "g0 buffer", n));
  GAM_TRY(vec(theta, "gam_pass2", "parameters", n));
  GAM_TRY(scalars(s, "gam_pass2", 0));
  double *sc = slots(s);
  if (g->device == GAM_CUDA)
    return gam_cuda_gam_pass2(sc, gam__f32(g0_hminus), gam__f32(g), gam__f32(theta), n, c0, c1,
                              adaptive, code);
  GAM_TRY(gam_gam_pass2(&sc[0], g0_hminus, g, theta, c0, c1, adaptive));
  check_host(sc, sc[0], code);
  return 0;
}

int gam_gam_pass3_s(gam_tensor *s, gam_tensor *g, const gam_tensor *hplus, const gam_tensor *hminus,
                    double c, int code0, int code2) {
  GAM_TRY(vec(g, "gam_pass3", "gradient", -1));
  int64_t n = g->numel;
  GAM_TRY(vec(hplus, "gam_pass3", "h+ buffer", n));
  GAM_TRY(vec(hminus, "gam_pass3", "h- buffer", n));
  GAM_TRY(scalars(s, "gam_pass3", 0));
  double *sc = slots(s);
  if (g->device == GAM_CUDA)
    return gam_cuda_gam_pass3(sc, gam__f32(g), gam__f32(hplus), gam__f32(hminus), n, c, code0, code2);
  GAM_TRY(gam_gam_pass3(sc, g, hplus, hminus, c));
  check_host(sc, sqrt(sc[0]), code0);
  check_host(sc, sqrt(sc[2]), code2);
  return 0;
}

/* the guard's flag is set (cpu): param = src, nothing else */
static int guarded_host(gam_tensor *param, const gam_tensor *src, const gam_tensor *guard, int *done) {
  *done = guard && slots(guard)[GAM_OPT_FLAG] != 0;
  return *done && src ? gam_opt_copy(param, src) : 0;
}

int gam_sgd_step_s(gam_tensor *param, const gam_tensor *grad, gam_tensor *momentum_buf,
                   const gam_tensor *src, double lr, double momentum, double dampening,
                   double weight_decay, int nesterov, int first, const gam_tensor *guard) {
  GAM_TRY(vec(param, "sgd", "parameter", -1));
  if (guard) GAM_TRY(scalars(guard, "sgd", 0));
  if (param->device == GAM_CUDA) {
    int64_t n = param->numel;
    GAM_TRY(vec(grad, "sgd", "gradient", n));
    GAM_TRY(opt_vec(src, "sgd", "start point", n));
    GAM_CHECK(momentum == 0 || momentum_buf, "sgd: momentum %g needs a momentum buffer", momentum);
    GAM_TRY(opt_vec(momentum_buf, "sgd", "momentum buffer", n));
    return gam_cuda_sgd_step(gam__f32(param), gam__f32(grad), fp(momentum_buf), fp(src), n, lr,
                             momentum, dampening, weight_decay, nesterov, first,
                             guard ? slots(guard) : NULL);
  }
  int done;
  GAM_TRY(guarded_host(param, src, guard, &done));
  if (done) return 0;
  return gam_sgd_step(param, grad, momentum_buf, src, lr, momentum, dampening, weight_decay,
                      nesterov, first);
}

int gam_adam_step_s(gam_tensor *param, const gam_tensor *grad, gam_tensor *exp_avg,
                    gam_tensor *exp_avg_sq, const gam_tensor *src, double lr, double beta1,
                    double beta2, double eps, double weight_decay, int decoupled, int64_t step,
                    const gam_tensor *guard) {
  const char *op = decoupled ? "adamw" : "adam";
  GAM_TRY(vec(param, op, "parameter", -1));
  if (guard) GAM_TRY(scalars(guard, op, 0));
  if (param->device == GAM_CUDA) {
    int64_t n = param->numel;
    GAM_TRY(vec(grad, op, "gradient", n));
    GAM_TRY(vec(exp_avg, op, "exp_avg", n));
    GAM_TRY(vec(exp_avg_sq, op, "exp_avg_sq", n));
    GAM_TRY(opt_vec(src, op, "start point", n));
    GAM_CHECK(step >= 1, "%s: step must count from 1, got %lld", op, (long long)step);
    return gam_cuda_adam_step(gam__f32(param), gam__f32(grad), gam__f32(exp_avg),
                              gam__f32(exp_avg_sq), fp(src), n, lr, beta1, beta2, eps, weight_decay,
                              decoupled, step, guard ? slots(guard) : NULL);
  }
  int done;
  GAM_TRY(guarded_host(param, src, guard, &done));
  if (done) return 0;
  return gam_adam_step(param, grad, exp_avg, exp_avg_sq, src, lr, beta1, beta2, eps, weight_decay,
                       decoupled, step);
}
