// pool.cu — max, average and adaptive average pooling of NCHW planes.
//
// ops_pool.c's loops on the device. Forward: one thread per output, walking
// its window in the cpu's order (rows, then columns). Backward: one thread
// per input element, gathering the gradients of the windows that cover it in
// the order the cpu's scatter adds them (output rows, then columns), so the
// sums round exactly as on the cpu and no atomics are needed. (cuDNN's
// pooling has no ceil_mode and another rounding of the averages; these plain
// kernels give the cpu's bits.)
#include "common.cuh"
#include <math.h>

using gamk::blocks_for;
using gamk::kThreads;

namespace {

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

// Outputs along one axis whose window [o s - p, o s - p + k) covers input i:
// [*lo, *hi), clipped to [0, out).
__device__ __forceinline__ void covering(int64_t i, int k, int s, int p, int64_t out, int64_t *lo,
                                         int64_t *hi) {
  int64_t first = i + p - k + 1;  // o s >= first
  *lo = first <= 0 ? 0 : (first + s - 1) / s;
  *hi = min64((i + p) / s + 1, out);
}

__global__ void max_pool_kernel(gam_pool_geom g, const float *x, float *y, int64_t *idx) {
  GAM_GRID_LOOP(o, g.planes * g.oh * g.ow) {
    int64_t pl = o / (g.oh * g.ow), r = o % (g.oh * g.ow), oy = r / g.ow, ox = r % g.ow;
    const float *xpl = x + pl * g.h * g.w;
    int64_t h0 = oy * g.sh - g.ph, h1 = min64(h0 + g.kh, g.h);
    int64_t w0 = ox * g.sw - g.pw, w1 = min64(w0 + g.kw, g.w);
    h0 = max64(h0, 0);
    w0 = max64(w0, 0);
    int64_t best_at = h0 * g.w + w0;
    float best = -INFINITY;
    bool nan = false;
    for (int64_t ih = h0; ih < h1 && !nan; ih++)
      for (int64_t iw = w0; iw < w1; iw++) {
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

__global__ void max_pool_grad_kernel(gam_pool_geom g, const float *dy, const int64_t *idx, float *dx) {
  GAM_GRID_LOOP(e, g.planes * g.h * g.w) {
    int64_t pl = e / (g.h * g.w), at = e % (g.h * g.w), iy = at / g.w, ix = at % g.w;
    int64_t y0, y1, x0, x1;
    covering(iy, g.kh, g.sh, g.ph, g.oh, &y0, &y1);
    covering(ix, g.kw, g.sw, g.pw, g.ow, &x0, &x1);
    const int64_t base = pl * g.oh * g.ow;
    float acc = 0.f;
    for (int64_t oy = y0; oy < y1; oy++)
      for (int64_t ox = x0; ox < x1; ox++) {
        int64_t o = base + oy * g.ow + ox;
        if (idx[o] == at) acc += dy[o];
      }
    dx[e] = acc;
  }
}

// ops_pool.c's avg_window: the window of output (oy, ox) clipped to the input,
// and its divisor
__device__ __forceinline__ int64_t avg_window(const gam_pool_geom &g, int64_t oy, int64_t ox,
                                              int count_include_pad, int64_t *h0, int64_t *h1,
                                              int64_t *w0, int64_t *w1) {
  int64_t a0 = oy * g.sh - g.ph, a1 = min64(a0 + g.kh, g.h + g.ph);
  int64_t b0 = ox * g.sw - g.pw, b1 = min64(b0 + g.kw, g.w + g.pw);
  int64_t padded = (a1 - a0) * (b1 - b0);
  *h0 = max64(a0, 0);
  *h1 = min64(a1, g.h);
  *w0 = max64(b0, 0);
  *w1 = min64(b1, g.w);
  return count_include_pad ? padded : (*h1 - *h0) * (*w1 - *w0);
}

__global__ void avg_pool_kernel(gam_pool_geom g, const float *x, float *y, int include) {
  GAM_GRID_LOOP(o, g.planes * g.oh * g.ow) {
    int64_t pl = o / (g.oh * g.ow), r = o % (g.oh * g.ow), oy = r / g.ow, ox = r % g.ow;
    const float *xpl = x + pl * g.h * g.w;
    int64_t h0, h1, w0, w1;
    int64_t div = avg_window(g, oy, ox, include, &h0, &h1, &w0, &w1);
    float s = 0.f;
    for (int64_t ih = h0; ih < h1; ih++)
      for (int64_t iw = w0; iw < w1; iw++) s += xpl[ih * g.w + iw];
    y[o] = div ? s / (float)div : 0.f;
  }
}

__global__ void avg_pool_grad_kernel(gam_pool_geom g, const float *dy, float *dx, int include) {
  GAM_GRID_LOOP(e, g.planes * g.h * g.w) {
    int64_t pl = e / (g.h * g.w), at = e % (g.h * g.w), iy = at / g.w, ix = at % g.w;
    int64_t y0, y1, x0, x1;
    covering(iy, g.kh, g.sh, g.ph, g.oh, &y0, &y1);
    covering(ix, g.kw, g.sw, g.pw, g.ow, &x0, &x1);
    const int64_t base = pl * g.oh * g.ow;
    float acc = 0.f;
    for (int64_t oy = y0; oy < y1; oy++)
      for (int64_t ox = x0; ox < x1; ox++) {
        int64_t h0, h1, w0, w1;
        int64_t div = avg_window(g, oy, ox, include, &h0, &h1, &w0, &w1);
        if (div == 0 || iy < h0 || iy >= h1 || ix < w0 || ix >= w1) continue;
        acc += dy[base + oy * g.ow + ox] / (float)div;
      }
    dx[e] = acc;
  }
}

// adaptive windows: output o of `out` covers [o in / out, ceil((o + 1) in / out))
__device__ __forceinline__ int64_t ada_start(int64_t o, int64_t in, int64_t out) { return o * in / out; }
__device__ __forceinline__ int64_t ada_end(int64_t o, int64_t in, int64_t out) {
  return ((o + 1) * in + out - 1) / out;
}

__global__ void adaptive_kernel(gam_pool_geom g, const float *x, float *y) {
  GAM_GRID_LOOP(o, g.planes * g.oh * g.ow) {
    int64_t pl = o / (g.oh * g.ow), r = o % (g.oh * g.ow), i = r / g.ow, j = r % g.ow;
    int64_t h0 = ada_start(i, g.h, g.oh), h1 = ada_end(i, g.h, g.oh);
    int64_t w0 = ada_start(j, g.w, g.ow), w1 = ada_end(j, g.w, g.ow);
    const float *xpl = x + pl * g.h * g.w;
    float s = 0.f;
    for (int64_t ih = h0; ih < h1; ih++)
      for (int64_t iw = w0; iw < w1; iw++) s += xpl[ih * g.w + iw];
    y[o] = s / (float)((h1 - h0) * (w1 - w0));
  }
}

__global__ void adaptive_grad_kernel(gam_pool_geom g, const float *dy, float *dx) {
  GAM_GRID_LOOP(e, g.planes * g.h * g.w) {
    int64_t pl = e / (g.h * g.w), at = e % (g.h * g.w), iy = at / g.w, ix = at % g.w;
    // outputs whose windows can cover (iy, ix); each is checked below
    int64_t i0 = iy * g.oh / g.h, i1 = min64(((iy + 1) * g.oh + g.h - 1) / g.h, g.oh);
    int64_t j0 = ix * g.ow / g.w, j1 = min64(((ix + 1) * g.ow + g.w - 1) / g.w, g.ow);
    const int64_t base = pl * g.oh * g.ow;
    float acc = 0.f;
    for (int64_t i = i0; i < i1; i++) {
      int64_t h0 = ada_start(i, g.h, g.oh), h1 = ada_end(i, g.h, g.oh);
      if (iy < h0 || iy >= h1) continue;
      for (int64_t j = j0; j < j1; j++) {
        int64_t w0 = ada_start(j, g.w, g.ow), w1 = ada_end(j, g.w, g.ow);
        if (ix < w0 || ix >= w1) continue;
        acc += dy[base + i * g.ow + j] / (float)((h1 - h0) * (w1 - w0));
      }
    }
    dx[e] = acc;
  }
}

}  // namespace

extern "C" {

int gam_cuda_max_pool_forward(const gam_pool_geom *g, const float *x, float *y, int64_t *idx) {
  int64_t n = g->planes * g->oh * g->ow;
  if (n <= 0) return 0;
  max_pool_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(*g, x, y, idx);
  return gamk::launched("max_pool2d");
}

int gam_cuda_max_pool_backward(const gam_pool_geom *g, const float *dy, const int64_t *idx, float *dx) {
  int64_t n = g->planes * g->h * g->w;
  if (n <= 0) return 0;
  max_pool_grad_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(*g, dy, idx, dx);
  return gamk::launched("max_pool2d backward");
}

int gam_cuda_avg_pool_forward(const gam_pool_geom *g, const float *x, float *y, int count_include_pad) {
  int64_t n = g->planes * g->oh * g->ow;
  if (n <= 0) return 0;
  avg_pool_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(*g, x, y, count_include_pad != 0);
  return gamk::launched("avg_pool2d");
}

int gam_cuda_avg_pool_backward(const gam_pool_geom *g, const float *dy, float *dx, int count_include_pad) {
  int64_t n = g->planes * g->h * g->w;
  if (n <= 0) return 0;
  avg_pool_grad_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(*g, dy, dx, count_include_pad != 0);
  return gamk::launched("avg_pool2d backward");
}

int gam_cuda_adaptive_avg_pool_forward(const gam_pool_geom *g, const float *x, float *y) {
  int64_t n = g->planes * g->oh * g->ow;
  if (n <= 0) return 0;
  adaptive_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(*g, x, y);
  return gamk::launched("adaptive_avg_pool2d");
}

int gam_cuda_adaptive_avg_pool_backward(const gam_pool_geom *g, const float *dy, float *dx) {
  int64_t n = g->planes * g->h * g->w;
  if (n <= 0) return 0;
  adaptive_grad_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(*g, dy, dx);
  return gamk::launched("adaptive_avg_pool2d backward");
}

}  // extern "C"
