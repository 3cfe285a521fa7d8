// optim.cu — the fused optimiser passes of engine/optim.c on the device.
//
// Every pass is one kernel over flat float vectors of n elements, written
// with the formulas of engine/optim_math.h (so the two backends round alike,
// up to fused multiply-adds). Passes that reduce (norms, dot products) run in
// two fixed stages accumulated in double: stage 1 gives each of at most
// kGrid blocks a grid-stride share of the vector and writes one partial per
// block (a tree in shared memory); stage 2, one block, adds the partials in a
// fixed order and writes the step's scalars block s (see gam.h: slot 0 or
// slots 0-2, the flag and the bad value). The partition depends on n only, so
// the same input gives the same bits every time.
//
// The math of every pass (its elements, the coefficients it reads from s, the
// record of a non-finite check, the guard, Adam's scalars) is
// engine/optim_math.h, compiled here __host__ __device__ and in
// engine/optim_cpu.c as plain C: these kernels only launch, stride and reduce.
#include "common.cuh"
#include "optim_math.h"

using gamk::blocks_for;
using gamk::kThreads;

namespace {

constexpr int kBlock = 256; // threads of a reduction block (a power of two)
constexpr int kGrid = 1024; // at most this many stage-1 blocks (about one wave on an H100)

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
  if (K == 1)
    gam_opt_finish_norm(s, sh[0], code0);
  else
    gam_opt_finish_dot3(s, sh[0], sh[kBlock], sh[2 * kBlock], code0, code2);
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
  gam__device_free(partial, bytes); // stream-ordered: reused only after these kernels
  return rc;
}

// ---- passes ------------------------------------------------------------------------------
// Σ (g |w|)² (w NULL: Σ g²)
__global__ void norm_kernel(const float *__restrict__ g, const float *__restrict__ w, int64_t n,
                            double *partial) {
  double v[1] = {0};
  if (w) {
    GAM_GRID_LOOP(i, n) v[0] += gam_opt_sq_scaled(g[i], w[i]);
  } else {
    GAM_GRID_LOOP(i, n) v[0] += gam_opt_sq(g[i]);
  }
  write_partial<1>(v, partial);
}

// theta_save = θ, g_save = g (each optional); θ += s g (adaptive: s g θ²)
__global__ void ascend_kernel(float *__restrict__ p, float *__restrict__ ps, const float *__restrict__ g,
                              float *__restrict__ gs, int64_t n, gam_coef scale, int adaptive) {
  const float s = (float)gam_coef_value(scale);
  GAM_GRID_LOOP(i, n) {
    float w = p[i], gi = g[i];
    if (ps) ps[i] = w;
    if (gs) gs[i] = gi;
    p[i] = gam_opt_ascend_el(w, gi, s, adaptive);
  }
}

// Σ a², Σ a b, Σ b²
__global__ void dot3_kernel(const float *__restrict__ a, const float *__restrict__ b, int64_t n,
                            double *partial) {
  double v[3] = {0, 0, 0};
  GAM_GRID_LOOP(i, n) {
    gam_opt_dot3_t t = gam_opt_dot3_term(a[i], b[i]);
    v[0] += t.aa;
    v[1] += t.ab;
    v[2] += t.bb;
  }
  write_partial<3>(v, partial);
}

// h -= weight (v − c h)
__global__ void decompose_kernel(float *__restrict__ h, const float *__restrict__ v, int64_t n, float weight,
                                 gam_coef c) {
  const float fc = (float)gam_coef_value(c);
  GAM_GRID_LOOP(i, n) h[i] = gam_opt_decompose_el(h[i], v[i], weight, fc);
}

// h+ = α g1 ; Σ ((g1 − g0) |θ0|)²  (not adaptive: Σ (g1 − g0)², w unused)
__global__ void gam_pass1_kernel(float *__restrict__ hp, const float *__restrict__ g,
                                 const float *__restrict__ g0, const float *__restrict__ w, int64_t n,
                                 float alpha, int adaptive, double *partial) {
  double v[1] = {0};
  GAM_GRID_LOOP(i, n) {
    float gi = g[i];
    hp[i] = gam_pass1_el(gi, alpha);
    v[0] += gam_pass1_term(gi, g0[i], adaptive ? w[i] : 0.f, adaptive);
  }
  write_partial<1>(v, partial);
}

// θ = θ0 + s (g1 − g0) (adaptive: times θ0²)
__global__ void gam_ascend_h0_kernel(float *__restrict__ p, const float *__restrict__ w,
                                     const float *__restrict__ g, const float *__restrict__ g0, int64_t n,
                                     gam_coef scale, int adaptive) {
  const float s = (float)gam_coef_value(scale);
  GAM_GRID_LOOP(i, n) p[i] = gam_ascend_h0_el(w[i], g[i], g0[i], s, adaptive);
}

// h− = c0 h− + c1 g2 (in g0's buffer) ; Σ (g2 |θ2|)²  (not adaptive: Σ g2², w unused)
__global__ void gam_pass2_kernel(float *__restrict__ hm, const float *__restrict__ g,
                                 const float *__restrict__ w, int64_t n, float c0, float c1, int adaptive,
                                 double *partial) {
  double v[1] = {0};
  GAM_GRID_LOOP(i, n) {
    float gi = g[i];
    hm[i] = gam_pass2_el(hm[i], gi, c0, c1);
    v[0] += adaptive ? gam_opt_sq_scaled(gi, w[i]) : gam_opt_sq(gi);
  }
  write_partial<1>(v, partial);
}

// g = h+ = hplus + c g3 ; Σ h+², Σ h+ h−, Σ h−²
__global__ void gam_pass3_kernel(float *__restrict__ g, const float *__restrict__ hp,
                                 const float *__restrict__ hm, int64_t n, float c, double *partial) {
  double v[3] = {0, 0, 0};
  GAM_GRID_LOOP(i, n) {
    float h = gam_pass3_el(hp[i], g[i], c);
    g[i] = h;
    gam_opt_dot3_t t = gam_opt_dot3_term(h, hm[i]);
    v[0] += t.aa;
    v[1] += t.ab;
    v[2] += t.bb;
  }
  write_partial<3>(v, partial);
}

// ---- base steps ------------------------------------------------------------------------------
// With the guard's flag set a step only restores param = src.
// p and src may be one vector (no __restrict__ on them); buf NULL: no momentum.
__global__ void sgd_kernel(float *p, const float *__restrict__ g, float *__restrict__ buf, const float *src,
                           int64_t n, gam_sgd_scalars a, int nesterov, int first, const double *guard) {
  if (gam_opt_guarded(guard)) {
    if (src) GAM_GRID_LOOP(i, n) p[i] = src[i];
    return;
  }
  const float *p0 = src ? src : p;
  GAM_GRID_LOOP(i, n)
  p[i] = gam_sgd_el(p0[i], g[i], buf ? &buf[i] : nullptr, a, buf != nullptr, first, nesterov);
}

__global__ void adam_kernel(float *p, const float *__restrict__ g, float *__restrict__ m,
                            float *__restrict__ v, const float *src, int64_t n, gam_adam_scalars a,
                            const double *guard) {
  if (gam_opt_guarded(guard)) {
    if (src) GAM_GRID_LOOP(i, n) p[i] = src[i];
    return;
  }
  const float *p0 = src ? src : p;
  GAM_GRID_LOOP(i, n) {
    float w0 = p0[i];
    float vi = gam_adam_moments(w0, g[i], &m[i], &v[i], a);
    p[i] = gam_adam_update(w0, m[i], sqrtf(vi), a);
  }
}

__global__ void check_loss_kernel(double *s, const float *loss, int code, int keep) {
  gam_opt_loss(s, loss[0], code, keep);
}

} // namespace

extern "C" {

int gam_cuda_opt_copy(float *dst, const float *src, int64_t n) {
  if (n <= 0) return 0;
  return gam_cuda__memcpy(dst, src, (size_t)n * sizeof(float), GAM_COPY_D2D, "opt_copy");
}

int gam_cuda_opt_read(double *out, const double *s) {
  return gam_cuda__memcpy(out, s, GAM_OPT_NSCALARS * sizeof(double), GAM_COPY_D2H, "opt_read");
}

int gam_cuda_opt_clear(double *s) {
  return gam_cuda__memset(s, 0, GAM_OPT_NSCALARS * sizeof(double), "opt_clear");
}

int gam_cuda_opt_norm(double *s, const float *g, const float *w, int64_t n, int code) {
  return reduce<1>("opt_norm", n, s, code, 0, [&](int blocks, double *partial) {
    norm_kernel<<<blocks, kBlock, 0, gamk::stream()>>>(g, w, n, partial);
  });
}

int gam_cuda_opt_ascend(float *theta, float *theta_save, const float *g, float *g_save, int64_t n,
                        gam_coef scale, int adaptive) {
  if (n <= 0) return 0;
  ascend_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(theta, theta_save, g, g_save, n, scale,
                                                                adaptive);
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
    gam_pass1_kernel<<<blocks, kBlock, 0, gamk::stream()>>>(hplus, g, g0, theta0, n, (float)alpha, adaptive,
                                                            partial);
  });
}

int gam_cuda_gam_ascend_h0(float *theta, const float *theta0, const float *g, const float *g0, int64_t n,
                           gam_coef scale, int adaptive) {
  if (n <= 0) return 0;
  gam_ascend_h0_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(theta, theta0, g, g0, n, scale,
                                                                       adaptive);
  return gamk::launched("gam_ascend_h0");
}

int gam_cuda_gam_pass2(double *s, float *hminus, const float *g, const float *theta, int64_t n, double c0,
                       double c1, int adaptive, int code) {
  return reduce<1>("gam_pass2", n, s, code, 0, [&](int blocks, double *partial) {
    gam_pass2_kernel<<<blocks, kBlock, 0, gamk::stream()>>>(hminus, g, theta, n, (float)c0, (float)c1,
                                                            adaptive, partial);
  });
}

int gam_cuda_gam_pass3(double *s, float *g, const float *hplus, const float *hminus, int64_t n, double c,
                       int code0, int code2) {
  return reduce<3>("gam_pass3", n, s, code0, code2, [&](int blocks, double *partial) {
    gam_pass3_kernel<<<blocks, kBlock, 0, gamk::stream()>>>(g, hplus, hminus, n, (float)c, partial);
  });
}

int gam_cuda_sgd_step(float *param, const float *grad, float *buf, const float *src, int64_t n, double lr,
                      double momentum, double dampening, double weight_decay, int nesterov, int first,
                      const double *guard) {
  if (n <= 0) return 0;
  const gam_sgd_scalars a = gam_sgd_scalars_of(lr, momentum, dampening, weight_decay);
  sgd_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(param, grad, buf, src, n, a, nesterov, first,
                                                             guard);
  return gamk::launched("sgd");
}

int gam_cuda_adam_step(float *param, const float *grad, float *m, float *v, const float *src, int64_t n,
                       double lr, double beta1, double beta2, double eps, double weight_decay, int decoupled,
                       int64_t step, const double *guard) {
  if (n <= 0) return 0;
  const gam_adam_scalars a = gam_adam_scalars_of(lr, beta1, beta2, eps, weight_decay, decoupled, step);
  adam_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(param, grad, m, v, src, n, a, guard);
  return gamk::launched(decoupled ? "adamw" : "adam");
}

int gam_cuda_opt_check_loss(double *s, const float *loss, int code, int keep) {
  check_loss_kernel<<<1, 1, 0, gamk::stream()>>>(s, loss, code, keep);
  return gamk::launched("opt_check_loss");
}

} // extern "C"
