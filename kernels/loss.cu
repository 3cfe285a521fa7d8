// loss.cu — softmax and log_softmax along the middle axis of [outer, size,
// inner], their gradients, gather and its gradient, and the per-sample
// (smoothed) cross-entropy, with the formulas of ops_loss.c (max, then exp
// sums in double), so both backends agree to float rounding.
//
// Contiguous lines (inner == 1: the class dim last, the common case) get one
// warp each (lines up to kWarpLine long) or one block each (longer lines):
// the group's threads stride along the line and combine their partial sums
// in a fixed order (gamk::group_sum), so the results are deterministic.
// Strided lines (inner > 1) get one thread per line, adjacent threads on
// adjacent columns (coalesced).
#include "common.cuh"
#include <math.h>

using gamk::blocks_for;
using gamk::kThreads;

namespace {

using gamk::group_max;
using gamk::group_sum;

constexpr int64_t kWarpLine = 1024; // contiguous lines up to this long: a warp each

// ---- contiguous lines: a group of G threads per line ------------------------------
// The lines handled by this group: the loop is uniform across the group (G =
// kThreads: across the block, so the group reductions may synchronise it).
#define GROUP_LINES(r, rows)                                                           \
  for (int64_t r = (int64_t)blockIdx.x * (kThreads / G) + threadIdx.x / G; r < (rows); \
       r += (int64_t)gridDim.x * (kThreads / G))

template <int G, typename I>
__global__ void softmax_rows_kernel(const float *x, float *y, int64_t rows, int64_t size, int log_out) {
  __shared__ double sh[kThreads / 32];
  __shared__ float shf[kThreads / 32];
  const I n = (I)size, lane = (I)(threadIdx.x % G);
  GROUP_LINES(r, rows) {
    const float *xp = x + r * size;
    float *yp = y + r * size;
    float m = -INFINITY;
    for (I k = lane; k < n; k += G) m = xp[k] > m ? xp[k] : m;
    m = group_max<G>(m, shf);
    double s = 0;
    if (log_out) {
      for (I k = lane; k < n; k += G) s += expf(xp[k] - m);
      double ls = log(group_sum<G>(s, sh));
      for (I k = lane; k < n; k += G) yp[k] = (float)(((double)xp[k] - m) - ls);
    } else {
      for (I k = lane; k < n; k += G) {
        float e = expf(xp[k] - m);
        yp[k] = e;
        s += e;
      }
      float inv = (float)(1.0 / group_sum<G>(s, sh));
      for (I k = lane; k < n; k += G) yp[k] *= inv;
    }
  }
}

template <int G, typename I>
__global__ void softmax_grad_rows_kernel(const float *g, const float *y, float *gx, int64_t rows,
                                         int64_t size, int log_out) {
  __shared__ double sh[kThreads / 32];
  const I n = (I)size, lane = (I)(threadIdx.x % G);
  GROUP_LINES(r, rows) {
    const float *gp = g + r * size, *yp = y + r * size;
    float *xp = gx + r * size;
    double s = 0;
    if (log_out) {
      for (I k = lane; k < n; k += G) s += gp[k];
      float t = (float)group_sum<G>(s, sh);
      for (I k = lane; k < n; k += G) xp[k] = gp[k] - expf(yp[k]) * t;
    } else {
      for (I k = lane; k < n; k += G) s += (double)gp[k] * yp[k];
      float t = (float)group_sum<G>(s, sh);
      for (I k = lane; k < n; k += G) xp[k] = yp[k] * (gp[k] - t);
    }
  }
}

template <int G, typename I>
__global__ void ce_forward_rows_kernel(const float *logp, const int64_t *target, float *loss, int64_t rows,
                                       int64_t k, double on, double off, double ent) {
  __shared__ double sh[kThreads / 32];
  const I n = (I)k, lane = (I)(threadIdx.x % G);
  GROUP_LINES(r, rows) {
    const float *lp = logp + r * k;
    const int64_t t = target[r];
    double cross = 0;
    for (I c = lane; c < n; c += G) cross += (c == t ? on : off) * lp[c];
    cross = group_sum<G>(cross, sh);
    if (threadIdx.x % G == 0) loss[r] = (float)(ent - cross);
  }
}

// kernel<G, I> for rows lines of `size`: a warp per line up to kWarpLine, a block beyond
#define ROWS_LAUNCH(kernel, rows, size, ...)                                                   \
  do {                                                                                         \
    cudaStream_t s_ = gamk::stream();                                                          \
    if ((size) <= kWarpLine)                                                                   \
      kernel<32, int32_t><<<row_blocks(rows, 32), kThreads, 0, s_>>>(__VA_ARGS__);             \
    else if (gamk::fits32(size))                                                               \
      kernel<kThreads, int32_t><<<row_blocks(rows, kThreads), kThreads, 0, s_>>>(__VA_ARGS__); \
    else                                                                                       \
      kernel<kThreads, int64_t><<<row_blocks(rows, kThreads), kThreads, 0, s_>>>(__VA_ARGS__); \
  } while (0)

unsigned row_blocks(int64_t rows, int g) {
  int64_t per = kThreads / g, b = (rows + per - 1) / per;
  return (unsigned)(b < 1 ? 1 : b > 65535 ? 65535 : b);
}

// ---- strided lines (inner > 1): a thread per line ---------------------------------
template <typename I>
__global__ void softmax_kernel(const float *x, float *y, int64_t outer, int64_t size, int64_t inner,
                               int log_out) {
  const I in = (I)inner;
  GAM_GRID_LOOP_T(I, line, outer * inner) {
    int64_t o = line / in, i = line % in;
    const float *xp = x + o * size * inner + i;
    float *yp = y + o * size * inner + i;
    float m = -INFINITY;
    for (int64_t k = 0; k < size; k++) m = xp[k * inner] > m ? xp[k * inner] : m;
    double s = 0;
    if (log_out) {
      for (int64_t k = 0; k < size; k++) s += expf(xp[k * inner] - m);
      double ls = log(s);
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
}

// log_softmax: gx = g - softmax * sum(g); softmax: gx = y * (g - sum(g * y))
template <typename I>
__global__ void softmax_grad_kernel(const float *g, const float *y, float *gx, int64_t outer, int64_t size,
                                    int64_t inner, int log_out) {
  const I in = (I)inner;
  GAM_GRID_LOOP_T(I, line, outer * inner) {
    int64_t o = line / in, i = line % in, base = o * size * inner + i;
    double s = 0;
    if (log_out) {
      for (int64_t k = 0; k < size; k++) s += g[base + k * inner];
      for (int64_t k = 0; k < size; k++)
        gx[base + k * inner] = g[base + k * inner] - expf(y[base + k * inner]) * (float)s;
    } else {
      for (int64_t k = 0; k < size; k++) s += (double)g[base + k * inner] * y[base + k * inner];
      for (int64_t k = 0; k < size; k++)
        gx[base + k * inner] = y[base + k * inner] * (g[base + k * inner] - (float)s);
    }
  }
}

// q[at] = p[o, idx[at], i] for at = (o * osize + j) * inner + i
template <typename I>
__global__ void gather_kernel(const float *p, const int64_t *idx, float *q, int64_t outer, int64_t size,
                              int64_t osize, int64_t inner) {
  const I in = (I)inner, oline = (I)(osize * inner);
  GAM_GRID_LOOP_T(I, at, outer * osize * inner) {
    int64_t i = at % in, o = at / oline;
    q[at] = p[(o * size + idx[at]) * inner + i];
  }
}

// One thread per column (o, i) adds its j in order: columns write disjoint
// elements, so there are no races and the sums are deterministic.
template <typename I>
__global__ void gather_grad_kernel(const float *g, const int64_t *idx, float *p, int64_t outer, int64_t size,
                                   int64_t osize, int64_t inner) {
  const I in = (I)inner;
  GAM_GRID_LOOP_T(I, col, outer * inner) {
    int64_t o = col / in, i = col % in;
    for (int64_t j = 0; j < osize; j++) {
      int64_t at = (o * osize + j) * inner + i;
      p[(o * size + idx[at]) * inner + i] += g[at];
    }
  }
}

template <typename I>
__global__ void ce_backward_kernel(const float *g, const float *logp, const int64_t *target, float *gx,
                                   int64_t rows, int64_t k, float on, float off) {
  const I ki = (I)k;
  GAM_GRID_LOOP_T(I, e, rows * k) {
    I r = e / ki, c = e % ki;
    gx[e] = g[r] * (expf(logp[e]) - (c == target[r] ? on : off));
  }
}

} // namespace

extern "C" {

int gam_cuda_softmax(const float *x, float *y, int64_t outer, int64_t size, int64_t inner, int log_out) {
  if (outer * size * inner <= 0) return 0;
  if (inner == 1)
    ROWS_LAUNCH(softmax_rows_kernel, outer, size, x, y, outer, size, log_out);
  else if (gamk::fits32(outer * inner))
    softmax_kernel<int32_t>
        <<<blocks_for(outer * inner), kThreads, 0, gamk::stream()>>>(x, y, outer, size, inner, log_out);
  else
    softmax_kernel<int64_t>
        <<<blocks_for(outer * inner), kThreads, 0, gamk::stream()>>>(x, y, outer, size, inner, log_out);
  return gamk::launched(log_out ? "log_softmax" : "softmax");
}

int gam_cuda_softmax_grad(const float *g, const float *y, float *gx, int64_t outer, int64_t size,
                          int64_t inner, int log_out) {
  if (outer * size * inner <= 0) return 0;
  if (inner == 1)
    ROWS_LAUNCH(softmax_grad_rows_kernel, outer, size, g, y, gx, outer, size, log_out);
  else if (gamk::fits32(outer * inner))
    softmax_grad_kernel<int32_t>
        <<<blocks_for(outer * inner), kThreads, 0, gamk::stream()>>>(g, y, gx, outer, size, inner, log_out);
  else
    softmax_grad_kernel<int64_t>
        <<<blocks_for(outer * inner), kThreads, 0, gamk::stream()>>>(g, y, gx, outer, size, inner, log_out);
  return gamk::launched(log_out ? "log_softmax backward" : "softmax backward");
}

int gam_cuda_gather(const float *p, const int64_t *idx, float *q, int64_t outer, int64_t size, int64_t osize,
                    int64_t inner) {
  int64_t n = outer * osize * inner;
  if (n <= 0) return 0;
  if (gamk::fits32(n))
    gather_kernel<int32_t>
        <<<blocks_for(n), kThreads, 0, gamk::stream()>>>(p, idx, q, outer, size, osize, inner);
  else
    gather_kernel<int64_t>
        <<<blocks_for(n), kThreads, 0, gamk::stream()>>>(p, idx, q, outer, size, osize, inner);
  return gamk::launched("gather");
}

int gam_cuda_gather_grad(const float *g, const int64_t *idx, float *p, int64_t outer, int64_t size,
                         int64_t osize, int64_t inner) {
  if (outer * osize * inner <= 0) return 0;
  const int64_t cols = outer * inner;
  if (gamk::fits32(cols))
    gather_grad_kernel<int32_t>
        <<<blocks_for(cols), kThreads, 0, gamk::stream()>>>(g, idx, p, outer, size, osize, inner);
  else
    gather_grad_kernel<int64_t>
        <<<blocks_for(cols), kThreads, 0, gamk::stream()>>>(g, idx, p, outer, size, osize, inner);
  return gamk::launched("gather backward");
}

int gam_cuda_ce_forward(const float *logp, const int64_t *target, float *loss, int64_t rows, int64_t k,
                        double on, double off, double ent) {
  if (rows <= 0) return 0;
  ROWS_LAUNCH(ce_forward_rows_kernel, rows, k, logp, target, loss, rows, k, on, off, ent);
  return gamk::launched("cross_entropy");
}

int gam_cuda_ce_backward(const float *g, const float *logp, const int64_t *target, float *gx, int64_t rows,
                         int64_t k, float on, float off) {
  if (rows * k <= 0) return 0;
  if (gamk::fits32(rows * k))
    ce_backward_kernel<int32_t>
        <<<blocks_for(rows * k), kThreads, 0, gamk::stream()>>>(g, logp, target, gx, rows, k, on, off);
  else
    ce_backward_kernel<int64_t>
        <<<blocks_for(rows * k), kThreads, 0, gamk::stream()>>>(g, logp, target, gx, rows, k, on, off);
  return gamk::launched("cross_entropy backward");
}

} // extern "C"
