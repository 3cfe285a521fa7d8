/* optim_cpu.c — the cpu entries of the fused optimiser passes (backend.h).
 *
 * One OpenMP loop per pass over flat float vectors of n elements, with the
 * signature of its cuda twin (cuda_backend.h, kernels/optim.cu); the element
 * and scalar math of every loop is engine/optim_math.h. Reductions accumulate
 * in double with OpenMP's reduction and end in the scalars block s, as the
 * kernels' second stage does. Where a pass has cases (adaptive or not, saves
 * or not, momentum or not), each case is its own loop, so that no branch
 * stays inside a vector loop: the case flags are constants there. */
#include "internal.h"
#include "optim_cpu.h"
#include <math.h>
#include <string.h>
#if defined(__SSE__)
#include <immintrin.h>
#endif

/* an OpenMP-parallel vector loop over i in [0, n), and one summing into the double s */
#define PAR_LOOP _Pragma("omp parallel for simd if (n > GAM_PAR_MIN)") for (int64_t i = 0; i < n; i++)
#define PAR_SUM_S \
  _Pragma("omp parallel for simd reduction(+ : s) if (n > GAM_PAR_MIN)") for (int64_t i = 0; i < n; i++)
#define PAR_SUM3                                                                                             \
  _Pragma("omp parallel for simd reduction(+ : aa, ab, bb) if (n > GAM_PAR_MIN)") for (int64_t i = 0; i < n; \
                                                                                       i++)

/* ---- the scalars block and copies ------------------------------------------------ */
int gam_cpu_opt_copy(float *dst, const float *src, int64_t n) {
  PAR_LOOP dst[i] = src[i];
  return 0;
}

int gam_cpu_opt_read(double *out, const double *s) {
  memcpy(out, s, GAM_OPT_NSCALARS * sizeof(double));
  return 0;
}

int gam_cpu_opt_clear(double *s) {
  memset(s, 0, GAM_OPT_NSCALARS * sizeof(double));
  return 0;
}

int gam_cpu_opt_check_loss(double *s, const float *loss, int code, int keep) {
  gam_opt_loss(s, loss[0], code, keep);
  return 0;
}

/* ---- sharpness-aware passes -------------------------------------------------------- */
/* s[NORM] = ‖g ⊙ |w|‖ (w NULL: ‖g‖) */
int gam_cpu_opt_norm(double *sc, const float *g, const float *w, int64_t n, int code) {
  double s = 0;
  if (w) {
    PAR_SUM_S s += gam_opt_sq_scaled(g[i], w[i]);
  } else {
    PAR_SUM_S s += gam_opt_sq(g[i]);
  }
  gam_opt_finish_norm(sc, s, code);
  return 0;
}

/* theta_save = θ (optional); g_save = g (optional); θ += scale g (adaptive: · θ²) */
int gam_cpu_opt_ascend(float *p, float *ps, const float *pg, float *gs, int64_t n, gam_coef scale,
                       int adaptive) {
  const float s = (float)gam_coef_value(scale);
#define ASCEND(SAVE, AD)                    \
  PAR_LOOP {                                \
    float w = p[i], gi = pg[i];             \
    SAVE;                                   \
    p[i] = gam_opt_ascend_el(w, gi, s, AD); \
  }
  if (gs) {
    if (adaptive)
      ASCEND((ps[i] = w, gs[i] = gi), 1)
    else
      ASCEND((ps[i] = w, gs[i] = gi), 0)
  } else if (ps) {
    if (adaptive)
      ASCEND(ps[i] = w, 1)
    else
      ASCEND(ps[i] = w, 0)
  } else {
    if (adaptive)
      ASCEND((void)0, 1)
    else
      ASCEND((void)0, 0)
  }
#undef ASCEND
  return 0;
}

/* s[AA, AB, BB] = {‖a‖², ⟨a,b⟩, ‖b‖²} */
int gam_cpu_opt_dot3(double *sc, const float *a, const float *b, int64_t n, int code0, int code2) {
  double aa = 0, ab = 0, bb = 0;
  PAR_SUM3 {
    gam_opt_dot3_t t = gam_opt_dot3_term(a[i], b[i]);
    aa += t.aa;
    ab += t.ab;
    bb += t.bb;
  }
  gam_opt_finish_dot3(sc, aa, ab, bb, code0, code2);
  return 0;
}

/* h −= weight (v − c h) */
int gam_cpu_opt_decompose(float *h, const float *v, int64_t n, double weight, gam_coef c) {
  const float w = (float)weight, fc = (float)gam_coef_value(c);
  PAR_LOOP h[i] = gam_opt_decompose_el(h[i], v[i], w, fc);
  return 0;
}

/* GAM pass 1: h+ = α g1 ; s[NORM] = ‖(g1 − g0) ⊙ |θ0|‖ (not adaptive: ‖g1 − g0‖) */
int gam_cpu_gam_pass1(double *sc, float *hp, const float *g, const float *g0, const float *w, int64_t n,
                      double alpha, int adaptive, int code) {
  const float a = (float)alpha;
  double s = 0;
  if (adaptive) {
    PAR_SUM_S {
      float gi = g[i];
      hp[i] = gam_pass1_el(gi, a);
      s += gam_pass1_term(gi, g0[i], w[i], 1);
    }
  } else {
    PAR_SUM_S {
      float gi = g[i];
      hp[i] = gam_pass1_el(gi, a);
      s += gam_pass1_term(gi, g0[i], 0.f, 0);
    }
  }
  gam_opt_finish_norm(sc, s, code);
  return 0;
}

/* GAM's second perturbation: θ = θ0 + scale (g1 − g0) (adaptive: · θ0²) */
int gam_cpu_gam_ascend_h0(float *p, const float *w, const float *g, const float *g0, int64_t n,
                          gam_coef scale, int adaptive) {
  const float s = (float)gam_coef_value(scale);
  if (adaptive) {
    PAR_LOOP p[i] = gam_ascend_h0_el(w[i], g[i], g0[i], s, 1);
  } else {
    PAR_LOOP p[i] = gam_ascend_h0_el(w[i], g[i], g0[i], s, 0);
  }
  return 0;
}

/* GAM pass 2: h− = c0 h− + c1 g2 (in g0's buffer) ; s[NORM] = ‖g2 ⊙ |θ2|‖ (not adaptive: ‖g2‖) */
int gam_cpu_gam_pass2(double *sc, float *hm, const float *g, const float *w, int64_t n, double c0, double c1,
                      int adaptive, int code) {
  const float a = (float)c0, b = (float)c1;
  double s = 0;
  if (adaptive) {
    PAR_SUM_S {
      float gi = g[i];
      hm[i] = gam_pass2_el(hm[i], gi, a, b);
      s += gam_opt_sq_scaled(gi, w[i]);
    }
  } else {
    PAR_SUM_S {
      float gi = g[i];
      hm[i] = gam_pass2_el(hm[i], gi, a, b);
      s += gam_opt_sq(gi);
    }
  }
  gam_opt_finish_norm(sc, s, code);
  return 0;
}

/* GAM pass 3: g = h+ = hplus + c g3 ; s[AA, AB, BB] = {‖h+‖², ⟨h+,h−⟩, ‖h−‖²} */
int gam_cpu_gam_pass3(double *sc, float *g, const float *hp, const float *hm, int64_t n, double c, int code0,
                      int code2) {
  const float fc = (float)c;
  double aa = 0, ab = 0, bb = 0;
  PAR_SUM3 {
    float h = gam_pass3_el(hp[i], g[i], fc);
    g[i] = h;
    gam_opt_dot3_t t = gam_opt_dot3_term(h, hm[i]);
    aa += t.aa;
    ab += t.ab;
    bb += t.bb;
  }
  gam_opt_finish_dot3(sc, aa, ab, bb, code0, code2);
  return 0;
}

/* ---- base steps ---------------------------------------------------------------------- */
/* the guard's flag is set: param = src (when given), nothing else; 1 when so */
static int guarded(float *p, const float *src, int64_t n, const double *guard) {
  if (!gam_opt_guarded(guard)) return 0;
  if (src) gam_cpu_opt_copy(p, src, n);
  return 1;
}

int gam_cpu_sgd_step(float *p, const float *g, float *buf, const float *src, int64_t n, double lr,
                     double momentum, double dampening, double weight_decay, int nesterov, int first,
                     const double *guard) {
  if (guarded(p, src, n, guard)) return 0;
  const float *p0 = src ? src : p;
  const gam_sgd_scalars a = gam_sgd_scalars_of(lr, momentum, dampening, weight_decay);
  if (!buf) {
    PAR_LOOP p[i] = gam_sgd_el(p0[i], g[i], NULL, a, 0, 0, 0);
  } else if (first && nesterov) {
    PAR_LOOP p[i] = gam_sgd_el(p0[i], g[i], &buf[i], a, 1, 1, 1);
  } else if (first) {
    PAR_LOOP p[i] = gam_sgd_el(p0[i], g[i], &buf[i], a, 1, 1, 0);
  } else if (nesterov) {
    PAR_LOOP p[i] = gam_sgd_el(p0[i], g[i], &buf[i], a, 1, 0, 1);
  } else {
    PAR_LOOP p[i] = gam_sgd_el(p0[i], g[i], &buf[i], a, 1, 0, 0);
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

int gam_cpu_adam_step(float *p, const float *g, float *m, float *v, const float *src, int64_t n, double lr,
                      double beta1, double beta2, double eps, double weight_decay, int decoupled,
                      int64_t step, const double *guard) {
  if (guarded(p, src, n, guard)) return 0;
  const float *p0 = src ? src : p;
  const gam_adam_scalars a = gam_adam_scalars_of(lr, beta1, beta2, eps, weight_decay, decoupled, step);
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
      root[j] = gam_adam_moments(p0[i], g[i], &m[i], &v[i], a);
    }
    sqrt_block(root, len);
    for (int j = 0; j < len; j++) {
      const int64_t i = lo + j;
      p[i] = gam_adam_update(p0[i], m[i], root[j], a);
    }
  }
  return 0;
}
