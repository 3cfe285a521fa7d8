// pool.cu — max, average and adaptive average pooling of NCHW planes.
//
// ops_pool.c's loops on the device. Forward: one thread per output, walking
// its window in the cpu's order (rows, then columns). Backward: one thread
// per input element, gathering the gradients of the windows that cover it in
// the order the cpu's scatter adds them (output rows, then columns), so the
// sums round exactly as on the cpu and no atomics are needed. (cuDNN's
// pooling has no ceil_mode and another rounding of the averages; these plain
// kernels give the cpu's bits.) Every kernel is templated on its index type:
// 32-bit indices whenever the geometry fits (fits32 below), 64-bit beyond.
#include "common.cuh"
#include <math.h>

using gamk::blocks_for;
using gamk::kThreads;

namespace {
// The geometry in index type I (int32_t when every index fits: see launch below).
template <typename I>
struct Geom {
  I planes, h, w, oh, ow;
  int kh, kw, sh, sw, ph, pw;
};

template <typename I>
Geom<I> geom(const gam_pool_geom *g) {
  return Geom<I>{(I)g->planes, (I)g->h, (I)g->w, (I)g->oh, (I)g->ow, g->kh,
                 g->kw,        g->sh,   g->sw,   g->ph,    g->pw};
}

// 32-bit indices when the planes' elements, the window arithmetic (padded
// extents, o s, and the adaptive products (o + 1) in) and the grid loop fit.
bool fits32(const gam_pool_geom *g) {
  int64_t ext = g->h + g->w + 2 * (g->ph + g->pw) + 2 * (g->kh + g->kw) + 2;
  return gamk::fits32(g->planes * g->h * g->w) && gamk::fits32(g->planes * g->oh * g->ow) &&
         gamk::fits32((g->h + 1) * (g->oh + 1)) && gamk::fits32((g->w + 1) * (g->ow + 1)) &&
         gamk::fits32((g->oh + 1) * g->sh + ext) && gamk::fits32((g->ow + 1) * g->sw + ext);
}

// kernel<int32_t> or kernel<int64_t> over n threads' worth of grid loop
#define POOL_LAUNCH(kernel, n, g, ...)                                                                \
  do {                                                                                                \
    if (fits32(g))                                                                                    \
      kernel<int32_t><<<blocks_for(n), kThreads, 0, gamk::stream()>>>(geom<int32_t>(g), __VA_ARGS__); \
    else                                                                                              \
      kernel<int64_t><<<blocks_for(n), kThreads, 0, gamk::stream()>>>(geom<int64_t>(g), __VA_ARGS__); \
  } while (0)

template <typename I>
__device__ __forceinline__ I mn(I a, I b) {
  return a < b ? a : b;
}
template <typename I>
__device__ __forceinline__ I mx(I a, I b) {
  return a > b ? a : b;
}

// Outputs along one axis whose window [o s - p, o s - p + k) covers input i:
// [*lo, *hi), clipped to [0, out).
template <typename I>
__device__ __forceinline__ void covering(I i, int k, int s, int p, I out, I *lo, I *hi) {
  I first = i + p - k + 1; // o s >= first
  *lo = first <= 0 ? 0 : (first + s - 1) / s;
  *hi = mn<I>((i + p) / s + 1, out);
}

template <typename I>
__global__ void max_pool_kernel(Geom<I> g, const float *x, float *y, int64_t *idx) {
  GAM_GRID_LOOP_T(I, o, g.planes * g.oh * g.ow) {
    I pl = o / (g.oh * g.ow), r = o % (g.oh * g.ow), oy = r / g.ow, ox = r % g.ow;
    const float *xpl = x + pl * g.h * g.w;
    I h0 = oy * g.sh - g.ph, h1 = mn<I>(h0 + g.kh, g.h);
    I w0 = ox * g.sw - g.pw, w1 = mn<I>(w0 + g.kw, g.w);
    h0 = mx<I>(h0, 0);
    w0 = mx<I>(w0, 0);
    I best_at = h0 * g.w + w0;
    float best = -INFINITY;
    bool nan = false;
    for (I ih = h0; ih < h1 && !nan; ih++)
      for (I iw = w0; iw < w1; iw++) {
        float v = xpl[ih * g.w + iw];
        if (v > best || isnan(v)) {
          best = v;
          best_at = ih * g.w + iw;
          if (isnan(v)) {
            nan = true;
            break;
          }
        }
      }
    y[o] = best;
    if (idx) idx[o] = best_at;
  }
}

template <typename I>
__global__ void max_pool_grad_kernel(Geom<I> g, const float *dy, const int64_t *idx, float *dx) {
  GAM_GRID_LOOP_T(I, e, g.planes * g.h * g.w) {
    I pl = e / (g.h * g.w), at = e % (g.h * g.w), iy = at / g.w, ix = at % g.w;
    I y0, y1, x0, x1;
    covering<I>(iy, g.kh, g.sh, g.ph, g.oh, &y0, &y1);
    covering<I>(ix, g.kw, g.sw, g.pw, g.ow, &x0, &x1);
    const I base = pl * g.oh * g.ow;
    float acc = 0.f;
    for (I oy = y0; oy < y1; oy++)
      for (I ox = x0; ox < x1; ox++) {
        I o = base + oy * g.ow + ox;
        if (idx[o] == at) acc += dy[o];
      }
    dx[e] = acc;
  }
}

// ops_pool.c's avg_window: the window of output (oy, ox) clipped to the input,
// and its divisor
template <typename I>
__device__ __forceinline__ I avg_window(const Geom<I> &g, I oy, I ox, int count_include_pad, I *h0, I *h1,
                                        I *w0, I *w1) {
  I a0 = oy * g.sh - g.ph, a1 = mn<I>(a0 + g.kh, g.h + g.ph);
  I b0 = ox * g.sw - g.pw, b1 = mn<I>(b0 + g.kw, g.w + g.pw);
  I padded = (a1 - a0) * (b1 - b0);
  *h0 = mx<I>(a0, 0);
  *h1 = mn<I>(a1, g.h);
  *w0 = mx<I>(b0, 0);
  *w1 = mn<I>(b1, g.w);
  return count_include_pad ? padded : (*h1 - *h0) * (*w1 - *w0);
}

template <typename I>
__global__ void avg_pool_kernel(Geom<I> g, const float *x, float *y, int include) {
  GAM_GRID_LOOP_T(I, o, g.planes * g.oh * g.ow) {
    I pl = o / (g.oh * g.ow), r = o % (g.oh * g.ow), oy = r / g.ow, ox = r % g.ow;
    const float *xpl = x + pl * g.h * g.w;
    I h0, h1, w0, w1;
    I div = avg_window<I>(g, oy, ox, include, &h0, &h1, &w0, &w1);
    float s = 0.f;
    for (I ih = h0; ih < h1; ih++)
      for (I iw = w0; iw < w1; iw++) s += xpl[ih * g.w + iw];
    y[o] = div ? s / (float)div : 0.f;
  }
}

template <typename I>
__global__ void avg_pool_grad_kernel(Geom<I> g, const float *dy, float *dx, int include) {
  GAM_GRID_LOOP_T(I, e, g.planes * g.h * g.w) {
    I pl = e / (g.h * g.w), at = e % (g.h * g.w), iy = at / g.w, ix = at % g.w;
    I y0, y1, x0, x1;
    covering<I>(iy, g.kh, g.sh, g.ph, g.oh, &y0, &y1);
    covering<I>(ix, g.kw, g.sw, g.pw, g.ow, &x0, &x1);
    const I base = pl * g.oh * g.ow;
    float acc = 0.f;
    for (I oy = y0; oy < y1; oy++)
      for (I ox = x0; ox < x1; ox++) {
        I h0, h1, w0, w1;
        I div = avg_window<I>(g, oy, ox, include, &h0, &h1, &w0, &w1);
        if (div == 0 || iy < h0 || iy >= h1 || ix < w0 || ix >= w1) continue;
        acc += dy[base + oy * g.ow + ox] / (float)div;
      }
    dx[e] = acc;
  }
}

// adaptive windows: output o of `out` covers [o in / out, ceil((o + 1) in / out))
template <typename I>
__device__ __forceinline__ I ada_start(I o, I in, I out) {
  return o * in / out;
}
template <typename I>
__device__ __forceinline__ I ada_end(I o, I in, I out) {
  return ((o + 1) * in + out - 1) / out;
}

template <typename I>
__global__ void adaptive_kernel(Geom<I> g, const float *x, float *y) {
  GAM_GRID_LOOP_T(I, o, g.planes * g.oh * g.ow) {
    I pl = o / (g.oh * g.ow), r = o % (g.oh * g.ow), i = r / g.ow, j = r % g.ow;
    I h0 = ada_start<I>(i, g.h, g.oh), h1 = ada_end<I>(i, g.h, g.oh);
    I w0 = ada_start<I>(j, g.w, g.ow), w1 = ada_end<I>(j, g.w, g.ow);
    const float *xpl = x + pl * g.h * g.w;
    float s = 0.f;
    for (I ih = h0; ih < h1; ih++)
      for (I iw = w0; iw < w1; iw++) s += xpl[ih * g.w + iw];
    y[o] = s / (float)((h1 - h0) * (w1 - w0));
  }
}

template <typename I>
__global__ void adaptive_grad_kernel(Geom<I> g, const float *dy, float *dx) {
  GAM_GRID_LOOP_T(I, e, g.planes * g.h * g.w) {
    I pl = e / (g.h * g.w), at = e % (g.h * g.w), iy = at / g.w, ix = at % g.w;
    // outputs whose windows can cover (iy, ix); each is checked below
    I i0 = iy * g.oh / g.h, i1 = mn<I>(((iy + 1) * g.oh + g.h - 1) / g.h, g.oh);
    I j0 = ix * g.ow / g.w, j1 = mn<I>(((ix + 1) * g.ow + g.w - 1) / g.w, g.ow);
    const I base = pl * g.oh * g.ow;
    float acc = 0.f;
    for (I i = i0; i < i1; i++) {
      I h0 = ada_start<I>(i, g.h, g.oh), h1 = ada_end<I>(i, g.h, g.oh);
      if (iy < h0 || iy >= h1) continue;
      for (I j = j0; j < j1; j++) {
        I w0 = ada_start<I>(j, g.w, g.ow), w1 = ada_end<I>(j, g.w, g.ow);
        if (ix < w0 || ix >= w1) continue;
        acc += dy[base + i * g.ow + j] / (float)((h1 - h0) * (w1 - w0));
      }
    }
    dx[e] = acc;
  }
}

} // namespace

extern "C" {

int gam_cuda_max_pool_forward(const gam_pool_geom *g, const float *x, float *y, int64_t *idx) {
  int64_t n = g->planes * g->oh * g->ow;
  if (n <= 0) return 0;
  POOL_LAUNCH(max_pool_kernel, n, g, x, y, idx);
  return gamk::launched("max_pool2d");
}

int gam_cuda_max_pool_backward(const gam_pool_geom *g, const float *dy, const int64_t *idx, float *dx) {
  int64_t n = g->planes * g->h * g->w;
  if (n <= 0) return 0;
  POOL_LAUNCH(max_pool_grad_kernel, n, g, dy, idx, dx);
  return gamk::launched("max_pool2d backward");
}

int gam_cuda_avg_pool_forward(const gam_pool_geom *g, const float *x, float *y, int count_include_pad) {
  int64_t n = g->planes * g->oh * g->ow;
  if (n <= 0) return 0;
  POOL_LAUNCH(avg_pool_kernel, n, g, x, y, count_include_pad != 0);
  return gamk::launched("avg_pool2d");
}

int gam_cuda_avg_pool_backward(const gam_pool_geom *g, const float *dy, float *dx, int count_include_pad) {
  int64_t n = g->planes * g->h * g->w;
  if (n <= 0) return 0;
  POOL_LAUNCH(avg_pool_grad_kernel, n, g, dy, dx, count_include_pad != 0);
  return gamk::launched("avg_pool2d backward");
}

int gam_cuda_adaptive_avg_pool_forward(const gam_pool_geom *g, const float *x, float *y) {
  int64_t n = g->planes * g->oh * g->ow;
  if (n <= 0) return 0;
  POOL_LAUNCH(adaptive_kernel, n, g, x, y);
  return gamk::launched("adaptive_avg_pool2d");
}

int gam_cuda_adaptive_avg_pool_backward(const gam_pool_geom *g, const float *dy, float *dx) {
  int64_t n = g->planes * g->h * g->w;
  if (n <= 0) return 0;
  POOL_LAUNCH(adaptive_grad_kernel, n, g, dy, dx);
  return gamk::launched("adaptive_avg_pool2d backward");
}

} // extern "C"
