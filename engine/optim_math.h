/* optim_math.h — the math of the fused optimiser passes, written once.
 *
 * Every scalar and per-element formula of the passes lives here: ξ, the
 * coefficients a pass reads from the step's scalars block (radius,
 * decomposition), the record of a non-finite check, the guard of the base
 * steps, one element of every loop, and SGD's and Adam/AdamW's per-step
 * scalars and per-element updates. Two places include it:
 *   - engine/optim_cpu.c, whose OpenMP loops call these as plain static
 *     inline C (the loops keep their pragmas and reductions; only the element
 *     math comes from here);
 *   - kernels/optim.cu, whose kernels call the same functions compiled
 *     __host__ __device__ (the launchers stay there, apart from the math, as
 *     llm.c keeps adamw_update apart from its launcher).
 * So a change to a formula is made once and both backends round alike (up to
 * the fused multiply-adds each compiler may form in float expressions).
 *
 * Types are part of the math: vectors are float, reductions accumulate in
 * double, and each expression converts exactly where written. The scalars
 * block s holds GAM_OPT_NSCALARS doubles; its slots are named in gam.h. */
#ifndef GAM_OPTIM_MATH_H
#define GAM_OPTIM_MATH_H
#include <math.h>
#include <stdint.h>
#include "gam.h"

#ifdef __CUDACC__
#define GAM_HD static inline __host__ __device__
#else
#define GAM_HD static inline
#endif

/* ξ: keeps every normalisation finite, as in the reference code (the Lua
 * side's one copy is gam.optim.util.XI). */
#define GAM_OPT_XI 1e-12

/* a · b rounded to double, never fused with a following addition */
GAM_HD double gam_opt_dmul_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  volatile double prod = a * b; /* stored, so the compiler cannot contract it */
  return prod;
#endif
}

/* ---- coefficients read from the scalars block ------------------------------ */
/* A pass's coefficient: a value given by the caller, or computed from the
 * block by the pass itself, so that no pass waits for the host. */
typedef struct gam_coef {
  int kind;        /* GAM_COEF_* */
  double value;    /* VALUE: the coefficient; RADIUS: the radius rho */
  const double *s; /* the scalars block (RADIUS, DECOMPOSE) */
} gam_coef;
enum {
  GAM_COEF_VALUE,    /* value */
  GAM_COEF_RADIUS,   /* value / (s[NORM] + ξ) */
  GAM_COEF_DECOMPOSE /* s[AB] / (√s[AA] √s[BB] + ξ) · √s[BB] / (√s[AA] + ξ) */
};

GAM_HD gam_coef gam_coef_of(int kind, double value, const double *s) {
  gam_coef c = {kind, value, s};
  return c;
}

/* the radius of a perturbation: rho / (‖g‖ + ξ) */
GAM_HD double gam_opt_radius(double rho, const double *s) { return rho / (s[GAM_OPT_NORM] + GAM_OPT_XI); }

/* the decomposition coefficient from {‖h‖², ⟨h,v⟩, ‖v‖²}:
 * cos = ⟨h,v⟩ / (‖h‖ ‖v‖ + ξ); c = cos ‖v‖ / (‖h‖ + ξ) */
GAM_HD double gam_opt_decompose_coef(const double *s) {
  double nh = sqrt(s[GAM_OPT_AA]), nv = sqrt(s[GAM_OPT_BB]);
  double cosine = s[GAM_OPT_AB] / (gam_opt_dmul_rn(nh, nv) + GAM_OPT_XI);
  return cosine * nv / (nh + GAM_OPT_XI);
}

GAM_HD double gam_coef_value(gam_coef c) {
  if (c.kind == GAM_COEF_RADIUS) return gam_opt_radius(c.value, c.s);
  if (c.kind == GAM_COEF_DECOMPOSE) return gam_opt_decompose_coef(c.s);
  return c.value;
}

/* ---- the block's checks ------------------------------------------------------ */
/* a non-finite v with a check code, and no failure recorded yet: record it */
GAM_HD void gam_opt_record(double *s, double v, int code) {
  if (code != 0 && s[GAM_OPT_FLAG] == 0 && !isfinite(v)) {
    s[GAM_OPT_FLAG] = (double)code;
    s[GAM_OPT_BAD] = v;
  }
}

/* a reduction's end: s[NORM] = √sum, checked with code */
GAM_HD void gam_opt_finish_norm(double *s, double sum, int code) {
  double norm = sqrt(sum);
  s[GAM_OPT_NORM] = norm;
  gam_opt_record(s, norm, code);
}

/* s[AA, AB, BB] = the sums; √s[AA] checked with code0, then √s[BB] with code2 */
GAM_HD void gam_opt_finish_dot3(double *s, double aa, double ab, double bb, int code0, int code2) {
  s[GAM_OPT_AA] = aa;
  s[GAM_OPT_AB] = ab;
  s[GAM_OPT_BB] = bb;
  gam_opt_record(s, sqrt(aa), code0);
  gam_opt_record(s, sqrt(bb), code2);
}

/* a pass's loss: kept in s[LOSS] (keep) and checked with code */
GAM_HD void gam_opt_loss(double *s, double v, int code, int keep) {
  if (keep) s[GAM_OPT_LOSS] = v;
  gam_opt_record(s, v, code);
}

/* the guard of a base step (NULL: none): its flag is set, so the step only
 * restores param = src */
GAM_HD int gam_opt_guarded(const double *guard) { return guard != 0 && guard[GAM_OPT_FLAG] != 0; }

/* ---- elements of the sharpness-aware passes ---------------------------------- */
/* (g |w|)² (adaptive norms), in double */
GAM_HD double gam_opt_sq_scaled(float g, float w) {
  double x = (double)g * fabsf(w);
  return x * x;
}
/* g², in double */
GAM_HD double gam_opt_sq(float g) { return (double)g * g; }

/* {x², x y, y²} of one element, in double (dot3, GAM pass 3) */
typedef struct gam_opt_dot3_t {
  double aa, ab, bb;
} gam_opt_dot3_t;
GAM_HD gam_opt_dot3_t gam_opt_dot3_term(float a, float b) {
  double x = a, y = b;
  gam_opt_dot3_t t = {x * x, x * y, y * y};
  return t;
}

/* ascend: θ + s g (adaptive: + s g θ²), w the weight it starts from */
GAM_HD float gam_opt_ascend_el(float w, float g, float s, int adaptive) {
  return adaptive ? w + g * s * w * w : w + g * s;
}

/* decompose: h − weight (v − c h) */
GAM_HD float gam_opt_decompose_el(float h, float v, float weight, float c) {
  return h - weight * (v - c * h);
}

/* GAM pass 1: h+ = α g1 */
GAM_HD float gam_pass1_el(float g, float alpha) { return alpha * g; }

/* GAM pass 1: the term of ‖(g1 − g0) ⊙ |θ0|‖² (not adaptive: ‖g1 − g0‖²) */
GAM_HD double gam_pass1_term(float g, float g0, float w, int adaptive) {
  double h0 = adaptive ? (double)(g - g0) * fabsf(w) : (double)(g - g0);
  return h0 * h0;
}

/* GAM's second perturbation: θ0 + s (g1 − g0) (adaptive: · θ0²) */
GAM_HD float gam_ascend_h0_el(float w, float g, float g0, float s, int adaptive) {
  return adaptive ? w + (g - g0) * s * w * w : w + (g - g0) * s;
}

/* GAM pass 2: h− = c0 g0 + c1 g2 */
GAM_HD float gam_pass2_el(float hm, float g, float c0, float c1) { return c0 * hm + c1 * g; }

/* GAM pass 3: h+ = hplus + c g3 */
GAM_HD float gam_pass3_el(float hp, float g, float c) { return hp + c * g; }

/* ---- SGD (PyTorch's rule) -------------------------------------------------------
 * p0 = the start point (src, or the parameter itself):
 *   d = g + wd p0
 *   momentum: buf = first ? d : momentum buf + (1 − dampening) d
 *             d = nesterov ? d + momentum buf : buf
 *   param = p0 − lr d                                                            */
typedef struct gam_sgd_scalars {
  float lr, momentum, damp1, wd;
} gam_sgd_scalars;

GAM_HD gam_sgd_scalars gam_sgd_scalars_of(double lr, double momentum, double dampening, double weight_decay) {
  gam_sgd_scalars a = {(float)lr, (float)momentum, (float)(1.0 - dampening), (float)weight_decay};
  return a;
}

/* one element: the new parameter; with a buffer (has_buf), *buf is updated */
GAM_HD float gam_sgd_el(float p0, float g, float *buf, gam_sgd_scalars a, int has_buf, int first,
                        int nesterov) {
  float d = g + a.wd * p0;
  if (has_buf) {
    float b = first ? d : a.momentum * *buf + a.damp1 * d;
    *buf = b;
    d = nesterov ? d + a.momentum * b : b;
  }
  return p0 - a.lr * d;
}

/* ---- Adam / AdamW (PyTorch's rules) ---------------------------------------------
 * p0 = the start point, t = step (counted from 1):
 *   AdamW: p0 = p0 (1 − lr wd)        Adam: g = g + wd p0
 *   m = β1 m + (1 − β1) g ;  v = β2 v + (1 − β2) g²
 *   param = p0 − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps)                    */
typedef struct gam_adam_scalars {
  float step_size, bc2_sqrt, b1, b2, eps, decay, wd, c1, c2;
} gam_adam_scalars;

/* the step's scalars and bias corrections, computed in double on the host */
GAM_HD gam_adam_scalars gam_adam_scalars_of(double lr, double beta1, double beta2, double eps,
                                            double weight_decay, int decoupled, int64_t step) {
  const double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
  gam_adam_scalars a;
  a.step_size = (float)(lr / bc1);
  a.bc2_sqrt = (float)sqrt(bc2);
  a.b1 = (float)beta1;
  a.b2 = (float)beta2;
  a.eps = (float)eps;
  a.decay = decoupled ? (float)(1.0 - lr * weight_decay) : 1.f;
  a.wd = decoupled ? 0.f : (float)weight_decay;
  a.c1 = (float)(1.0 - beta1);
  a.c2 = (float)(1.0 - beta2);
  return a;
}

/* one element's moments: m and v updated; returns v (whose root the update takes) */
GAM_HD float gam_adam_moments(float p0, float g, float *m, float *v, gam_adam_scalars a) {
  float w = p0 * a.decay;
  float d = g + a.wd * w;
  float mi = a.b1 * *m + a.c1 * d;
  float vi = a.b2 * *v + a.c2 * d * d;
  *m = mi;
  *v = vi;
  return vi;
}

/* one element's update from its new m and √v */
GAM_HD float gam_adam_update(float p0, float m, float root, gam_adam_scalars a) {
  return p0 * a.decay - a.step_size * m / (root / a.bc2_sqrt + a.eps);
}

#endif
