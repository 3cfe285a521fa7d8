// optim.cu — the fused optimiser passes of engine/optim.c on the device.
//
// Every pass is one kernel over flat float vectors of n elements, written
// with optim.c's formulas in the same order (so the two backends round alike,
// up to fused multiply-adds). Passes that reduce (norms, dot products) run in
// two fixed stages accumulated in double: stage 1 gives each of at most
// kGrid blocks a grid-stride share of the vector and writes one partial per
// block (a tree in shared memory); stage 2, one block, adds the partials in a
// fixed order and writes the step's scalars block s (see gam.h: slot 0 or
// slots 0-2, the flag and the bad value). The partition depends on n only, so
// the same input gives the same bits every time.
//
// Coefficients that depend on an earlier reduction (rho / (‖g‖ + ξ), the
// decomposition coefficient) are computed by every thread from s (gam_coef),
// in double with explicitly rounded operations (no contraction), exactly as
// the host computes them for the cpu: no pass waits for the host.
#include "common.cuh"
#include <math.h>

using gamk::blocks_for;
using gamk::kThreads;

namespace {

constexpr int kBlock = 256;   // threads of a reduction block (a power of two)
constexpr int kGrid = 1024;   // at most this many stage-1 blocks (about one wave on an H100)
constexpr double kXi = 1e-12; // ξ of the optimisers (lua/gam/optim/util.lua)

// ---- coefficients -------------------------------------------------------------------
__device__ __forceinline__ double coef_value(const gam_coef &c) {
  if (c.kind == GAM_COEF_RADIUS) return __ddiv_rn(c.value, __dadd_rn(c.s[0], kXi));
  if (c.kind == GAM_COEF_DECOMPOSE) {
    // cos = s1 / (‖h‖ ‖v‖ + ξ); c = cos ‖v‖ / (‖h‖ + ξ), with ‖h‖ = √s0, ‖v‖ = √s2
    double nh = __dsqrt_rn(c.s[0]), nv = __dsqrt_rn(c.s[2]);
    double cosine = __ddiv_rn(c.s[1], __dadd_rn(__dmul_rn(nh, nv), kXi));
    return __ddiv_rn(__dmul_rn(cosine, nv), __dadd_rn(nh, kXi));
  }
  return c.value;
}

// ---- reductions -----------------------------------------------------------------------
// Sums v[0..K) over the block; the result is in sh[k * kBlock] afterwards.
// sh holds K * kBlock doubles.
template <int K>
__device__ void block_sum(const double (&v)[K], double *sh) {
  const int t = threadIdx.x;
  for (int k = 0; k < K; k++) sh[k * kBlock + t] = v[k];
  __syncthreads();
  for (int w = kBlock / 2; w > 0; w >>= 1) {
    if (t < w)
      for (int k = 0; k < K; k++) sh[k * kBlock + t] += sh[k * kBlock + t + w];
    __syncthreads();
  }
}

// Stage 1 ends: the block's sums go to partial[blockIdx.x * K + k].
template <int K>
__device__ void write_partial(const double (&v)[K], double *partial) {
  __shared__ double sh[K * kBlock];
  block_sum<K>(v, sh);
  if (threadIdx.x == 0)
    for (int k = 0; k < K; k++) partial[blockIdx.x * K + k] = sh[k * kBlock];
}

// A non-finite value with a check code, and no failure recorded yet: record it.
__device__ __forceinline__ void check(double *s, double v, int code) {
  if (code != 0 && s[GAM_OPT_FLAG] == 0.0 && !isfinite(v)) {
    s[GAM_OPT_FLAG] = (double)code;
    s[GAM_OPT_BAD] = v;
  }
}

// Stage 2 (one block): adds the partials of `blocks` stage-1 blocks in order.
// K = 1: s[0] = √sum, checked with code0. K = 3: s[0..2] = the sums, with √s[0]
// checked by code0 and √s[2] by code2 (in that order).
template <int K>
__global__ void finish_kernel(const double *partial, int blocks, double *s, int code0, int code2) {
  __shared__ double sh[K * kBlock];
  double v[K];
  for (int k = 0; k < K; k++) v[k] = 0;
  for (int b = threadIdx.x; b < blocks; b += kBlock)
    for (int k = 0; k < K; k++) v[k] += partial[b * K + k];
  block_sum<K>(v, sh);
  if (threadIdx.x != 0) return;
  if (K == 1) {
    double norm = sqrt(sh[0]);
    s[0] = norm;
    check(s, norm, code0);
  } else {
    for (int k = 0; k < K; k++) s[k] = sh[k * kBlock];
    check(s, sqrt(sh[0]), code0);
    check(s, sqrt(sh[2 * kBlock]), code2);
  }
}

int stage1_blocks(int64_t n) {
  int64_t b = (n + kBlock - 1) / kBlock;
  return (int)(b < 1 ? 1 : b > kGrid ? kGrid : b);
}

// Launches stage 1 (launch(blocks, partial) queues it) and stage 2 into s.
template <int K, typename Launch>
int reduce(const char *op, int64_t n, double *s, int code0, int code2, Launch launch) {
  int blocks = stage1_blocks(n);
  size_t bytes = (size_t)blocks * K * sizeof(double);
  double *partial = (double *)gam__device_alloc(bytes);
  if (!partial) return -1;
  launch(blocks, partial);
  finish_kernel<K><<<1, kBlock, 0, gamk::stream()>>>(partial, blocks, s, code0, code2);
  int rc = gamk::launched(op);
  gam__device_free(partial, bytes);  // stream-ordered: reused only after these kernels
  return rc;
}

// ---- passes ------------------------------------------------------------------------------
// Σ (g |w|)² (w NULL: Σ g²)
__global__ void norm_kernel(const float *__restrict__ g, const float *__restrict__ w, int64_t n,
                            double *partial) {
  double v[1] = {0};
  if (w) {
    GAM_GRID_LOOP(i, n) {
      double x = (double)g[i] * fabsf(w[i]);
      v[0] += x * x;
    }
  } else {
    GAM_GRID_LOOP(i, n) v[0] += (double)g[i] * g[i];
  }
  write_partial<1>(v, partial);
}

// theta_save = θ, g_save = g (each optional); θ += s g (adaptive: s g θ²)
__global__ void ascend_kernel(float *__restrict__ p, float *__restrict__ ps, const float *__restrict__ g,
                              float *__restrict__ gs, int64_t n, gam_coef scale, int adaptive) {
  const float s = (float)coef_value(scale);
  GAM_GRID_LOOP(i, n) {
    float w = p[i], gi = g[i];
    if (ps) ps[i] = w;
    if (gs) gs[i] = gi;
    p[i] = w + (adaptive ? gi * s * w * w : gi * s);
  }
}

// Σ a², Σ a b, Σ b²
__global__ void dot3_kernel(const float *__restrict__ a, const float *__restrict__ b, int64_t n,
                            double *partial) {
  double v[3] = {0, 0, 0};
  GAM_GRID_LOOP(i, n) {
    double x = a[i], y = b[i];
    v[0] += x * x;
    v[1] += x * y;
    v[2] += y * y;
  }
  write_partial<3>(v, partial);
}

// h -= weight (v − c h)
__global__ void decompose_kernel(float *__restrict__ h, const float *__restrict__ v, int64_t n,
                                 float weight, gam_coef c) {
  const float fc = (float)coef_value(c);
  GAM_GRID_LOOP(i, n) h[i] -= weight * (v[i] - fc * h[i]);
}

// h+ = α g1 ; Σ ((g1 − g0) |θ0|)²  (not adaptive: Σ (g1 − g0)²)
__global__ void gam_pass1_kernel(float *__restrict__ hp, const float *__restrict__ g,
                                 const float *__restrict__ g0, const float *__restrict__ w,
                                 int64_t n, float alpha, int adaptive, double *partial) {
  double v[1] = {0};
  GAM_GRID_LOOP(i, n) {
    float gi = g[i];
    hp[i] = alpha * gi;
    double h0 = adaptive ? (double)(gi - g0[i]) * fabsf(w[i]) : (double)(gi - g0[i]);
    v[0] += h0 * h0;
  }
  write_partial<1>(v, partial);
}

// θ = θ0 + s (g1 − g0) (adaptive: times θ0²)
__global__ void gam_ascend_h0_kernel(float *__restrict__ p, const float *__restrict__ w,
                                     const float *__restrict__ g, const float *__restrict__ g0,
                                     int64_t n, gam_coef scale, int adaptive) {
  const float s = (float)coef_value(scale);
  GAM_GRID_LOOP(i, n) {
    float wi = w[i];
    p[i] = adaptive ? wi + (g[i] - g0[i]) * s * wi * wi : wi + (g[i] - g0[i]) * s;
  }
}

// h− = c0 h− + c1 g2 (in g0's buffer) ; Σ (g2 |θ2|)²  (not adaptive: Σ g2²)
__global__ void gam_pass2_kernel(float *__restrict__ hm, const float *__restrict__ g,
                                 const float *__restrict__ w, int64_t n, float c0, float c1,
                                 int adaptive, double *partial) {
  double v[1] = {0};
  GAM_GRID_LOOP(i, n) {
    float gi = g[i];
    hm[i] = c0 * hm[i] + c1 * gi;
    double x = adaptive ? (double)gi * fabsf(w[i]) : (double)gi;
    v[0] += x * x;
  }
  write_partial<1>(v, partial);
}

// g = h+ = hplus + c g3 ; Σ h+², Σ h+ h−, Σ h−²
__global__ void gam_pass3_kernel(float *__restrict__ g, const float *__restrict__ hp,
                                 const float *__restrict__ hm, int64_t n, float c, double *partial) {
  double v[3] = {0, 0, 0};
  GAM_GRID_LOOP(i, n) {
    float h = hp[i] + c * g[i];
    g[i] = h;
    double x = h, y = hm[i];
    v[0] += x * x;
    v[1] += x * y;
    v[2] += y * y;
  }
  write_partial<3>(v, partial);
}

// ---- base steps (optim.c's rules) ------------------------------------------------------------
// The guard's flag set: only param = src.
__device__ __forceinline__ bool guarded(const double *guard) {
  return guard != nullptr && guard[GAM_OPT_FLAG] != 0.0;
}

struct SgdArgs {
  float lr, momentum, damp1, wd;
  int nesterov, first;
};

// p and src may be one vector (no __restrict__ on them)
__global__ void sgd_kernel(float *p, const float *__restrict__ g, float *__restrict__ buf,
                           const float *src, int64_t n, SgdArgs a, const double *guard) {
  if (guarded(guard)) {
    if (src) GAM_GRID_LOOP(i, n) p[i] = src[i];
    return;
  }
  const float *p0 = src ? src : p;
  GAM_GRID_LOOP(i, n) {
    float w = p0[i];
    float d = g[i] + a.wd * w;
    if (buf) {
      float b = a.first ? d : a.momentum * buf[i] + a.damp1 * d;
      buf[i] = b;
      d = a.nesterov ? d + a.momentum * b : b;
    }
    p[i] = w - a.lr * d;
  }
}

struct AdamArgs {
  float step_size, bc2_sqrt, b1, b2, eps, decay, wd, c1, c2;
};

__global__ void adam_kernel(float *p, const float *__restrict__ g, float *__restrict__ m,
                            float *__restrict__ v, const float *src, int64_t n,
                            AdamArgs a, const double *guard) {
  if (guarded(guard)) {
    if (src) GAM_GRID_LOOP(i, n) p[i] = src[i];
    return;
  }
  const float *p0 = src ? src : p;
  GAM_GRID_LOOP(i, n) {
    float w0 = p0[i];
    float w = w0 * a.decay;
    float d = g[i] + a.wd * w;
    float mi = a.b1 * m[i] + a.c1 * d;
    float vi = a.b2 * v[i] + a.c2 * d * d;
    m[i] = mi;
    v[i] = vi;
    p[i] = w0 * a.decay - a.step_size * mi / (sqrtf(vi) / a.bc2_sqrt + a.eps);
  }
}

__global__ void check_loss_kernel(double *s, const float *loss, int code, int keep) {
  double v = loss[0];
  if (keep) s[GAM_OPT_LOSS] = v;
  check(s, v, code);
}

}  // namespace

extern "C" {

int gam_cuda_opt_norm(double *s, const float *g, const float *w, int64_t n, int code) {
  return reduce<1>("opt_norm", n, s, code, 0, [&](int blocks, double *partial) {
    norm_kernel<<<blocks, kBlock, 0, gamk::stream()>>>(g, w, n, partial);
  });
}

int gam_cuda_opt_ascend(float *theta, float *theta_save, const float *g, float *g_save, int64_t n,
                        gam_coef scale, int adaptive) {
  if (n <= 0) return 0;
  ascend_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(theta, theta_save, g, g_save, n,
                                                                scale, adaptive);
  return gamk::launched("opt_ascend");
}

int gam_cuda_opt_dot3(double *s, const float *a, const float *b, int64_t n, int code0, int code2) {
  return reduce<3>("opt_dot3", n, s, code0, code2, [&](int blocks, double *partial) {
    dot3_kernel<<<blocks, kBlock, 0, gamk::stream()>>>(a, b, n, partial);
  });
}

int gam_cuda_opt_decompose(float *h, const float *v, int64_t n, double weight, gam_coef c) {
  if (n <= 0) return 0;
  decompose_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(h, v, n, (float)weight, c);
  return gamk::launched("opt_decompose");
}

int gam_cuda_gam_pass1(double *s, float *hplus, const float *g, const float *g0, const float *theta0,
                       int64_t n, double alpha, int adaptive, int code) {
  return reduce<1>("gam_pass1", n, s, code, 0, [&](int blocks, double *partial) {
    gam_pass1_kernel<<<blocks, kBlock, 0, gamk::stream()>>>(hplus, g, g0, theta0, n, (float)alpha,
                                                            adaptive, partial);
  });
}

int gam_cuda_gam_ascend_h0(float *theta, const float *theta0, const float *g, const float *g0,
                           int64_t n, gam_coef scale, int adaptive) {
  if (n <= 0) return 0;
  gam_ascend_h0_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(theta, theta0, g, g0, n,
                                                                       scale, adaptive);
  return gamk::launched("gam_ascend_h0");
}

int gam_cuda_gam_pass2(double *s, float *hminus, const float *g, const float *theta, int64_t n,
                       double c0, double c1, int adaptive, int code) {
  return reduce<1>("gam_pass2", n, s, code, 0, [&](int blocks, double *partial) {
    gam_pass2_kernel<<<blocks, kBlock, 0, gamk::stream()>>>(hminus, g, theta, n, (float)c0,
                                                            (float)c1, adaptive, partial);
  });
}

int gam_cuda_gam_pass3(double *s, float *g, const float *hplus, const float *hminus, int64_t n,
                       double c, int code0, int code2) {
  return reduce<3>("gam_pass3", n, s, code0, code2, [&](int blocks, double *partial) {
    gam_pass3_kernel<<<blocks, kBlock, 0, gamk::stream()>>>(g, hplus, hminus, n, (float)c, partial);
  });
}

int gam_cuda_sgd_step(float *param, const float *grad, float *buf, const float *src, int64_t n,
                      double lr, double momentum, double dampening, double weight_decay,
                      int nesterov, int first, const double *guard) {
  if (n <= 0) return 0;
  SgdArgs a = {(float)lr, (float)momentum, (float)(1.0 - dampening), (float)weight_decay,
               nesterov, first};
  // momentum 0 keeps no buffer (optim.c: the plain rule)
  sgd_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(param, grad, momentum == 0 ? nullptr : buf,
                                                             src, n, a, guard);
  return gamk::launched("sgd");
}

int gam_cuda_adam_step(float *param, const float *grad, float *m, float *v, const float *src,
                       int64_t n, double lr, double beta1, double beta2, double eps,
                       double weight_decay, int decoupled, int64_t step, const double *guard) {
  if (n <= 0) return 0;
  // the host's scalars, computed as optim.c does
  const double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
  AdamArgs a;
  a.step_size = (float)(lr / bc1);
  a.bc2_sqrt = (float)sqrt(bc2);
  a.b1 = (float)beta1;
  a.b2 = (float)beta2;
  a.eps = (float)eps;
  a.decay = decoupled ? (float)(1.0 - lr * weight_decay) : 1.f;
  a.wd = decoupled ? 0.f : (float)weight_decay;
  a.c1 = (float)(1.0 - beta1);
  a.c2 = (float)(1.0 - beta2);
  adam_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(param, grad, m, v, src, n, a, guard);
  return gamk::launched(decoupled ? "adamw" : "adam");
}

int gam_cuda_opt_check_loss(double *s, const float *loss, int code, int keep) {
  check_loss_kernel<<<1, 1, 0, gamk::stream()>>>(s, loss, code, keep);
  return gamk::launched("opt_check_loss");
}

}  // extern "C"
