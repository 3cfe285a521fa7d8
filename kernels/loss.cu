// loss.cu — softmax and log_softmax along the middle axis of [outer, size,
// inner], their gradients, gather and its gradient, and the per-sample
// (smoothed) cross-entropy. One thread per line, the formulas of ops_loss.c
// (max, then exp sums in double), so both backends agree to float rounding.
#include "common.cuh"
#include <math.h>

using gamk::blocks_for;
using gamk::kThreads;

namespace {

__global__ void softmax_kernel(const float *x, float *y, int64_t outer, int64_t size, int64_t inner,
                               int log_out) {
  GAM_GRID_LOOP(line, outer * inner) {
    int64_t o = line / inner, i = line % inner;
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
__global__ void softmax_grad_kernel(const float *g, const float *y, float *gx, int64_t outer,
                                    int64_t size, int64_t inner, int log_out) {
  GAM_GRID_LOOP(line, outer * inner) {
    int64_t o = line / inner, i = line % inner, base = o * size * inner + i;
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
__global__ void gather_kernel(const float *p, const int64_t *idx, float *q, int64_t outer,
                              int64_t size, int64_t osize, int64_t inner) {
  GAM_GRID_LOOP(at, outer * osize * inner) {
    int64_t i = at % inner, o = at / (osize * inner);
    q[at] = p[(o * size + idx[at]) * inner + i];
  }
}

// One thread per column (o, i) adds its j in order: columns write disjoint
// elements, so there are no races and the sums are deterministic.
__global__ void gather_grad_kernel(const float *g, const int64_t *idx, float *p, int64_t outer,
                                   int64_t size, int64_t osize, int64_t inner) {
  GAM_GRID_LOOP(col, outer * inner) {
    int64_t o = col / inner, i = col % inner;
    for (int64_t j = 0; j < osize; j++) {
      int64_t at = (o * osize + j) * inner + i;
      p[(o * size + idx[at]) * inner + i] += g[at];
    }
  }
}

__global__ void ce_forward_kernel(const float *logp, const int64_t *target, float *loss, int64_t rows,
                                  int64_t k, double on, double off, double ent) {
  GAM_GRID_LOOP(r, rows) {
    int64_t t = target[r];
    double cross = 0;
    for (int64_t c = 0; c < k; c++) cross += (c == t ? on : off) * logp[r * k + c];
    loss[r] = (float)(ent - cross);
  }
}

__global__ void ce_backward_kernel(const float *g, const float *logp, const int64_t *target,
                                   float *gx, int64_t rows, int64_t k, float on, float off) {
  GAM_GRID_LOOP(e, rows * k) {
    int64_t r = e / k, c = e % k;
    gx[e] = g[r] * (expf(logp[e]) - (c == target[r] ? on : off));
  }
}

}  // namespace

extern "C" {

int gam_cuda_softmax(const float *x, float *y, int64_t outer, int64_t size, int64_t inner, int log_out) {
  if (outer * size * inner <= 0) return 0;
  softmax_kernel<<<blocks_for(outer * inner), kThreads, 0, gamk::stream()>>>(x, y, outer, size, inner, log_out);
  return gamk::launched(log_out ? "log_softmax" : "softmax");
}

int gam_cuda_softmax_grad(const float *g, const float *y, float *gx, int64_t outer, int64_t size,
                          int64_t inner, int log_out) {
  if (outer * size * inner <= 0) return 0;
  softmax_grad_kernel<<<blocks_for(outer * inner), kThreads, 0, gamk::stream()>>>(g, y, gx, outer, size, inner, log_out);
  return gamk::launched(log_out ? "log_softmax backward" : "softmax backward");
}

int gam_cuda_gather(const float *p, const int64_t *idx, float *q, int64_t outer, int64_t size,
                    int64_t osize, int64_t inner) {
  int64_t n = outer * osize * inner;
  if (n <= 0) return 0;
  gather_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(p, idx, q, outer, size, osize, inner);
  return gamk::launched("gather");
}

int gam_cuda_gather_grad(const float *g, const int64_t *idx, float *p, int64_t outer, int64_t size,
                         int64_t osize, int64_t inner) {
  if (outer * osize * inner <= 0) return 0;
  gather_grad_kernel<<<blocks_for(outer * inner), kThreads, 0, gamk::stream()>>>(g, idx, p, outer, size, osize, inner);
  return gamk::launched("gather backward");
}

int gam_cuda_ce_forward(const float *logp, const int64_t *target, float *loss, int64_t rows, int64_t k,
                        double on, double off, double ent) {
  if (rows <= 0) return 0;
  ce_forward_kernel<<<blocks_for(rows), kThreads, 0, gamk::stream()>>>(logp, target, loss, rows, k, on, off, ent);
  return gamk::launched("cross_entropy");
}

int gam_cuda_ce_backward(const float *g, const float *logp, const int64_t *target, float *gx,
                         int64_t rows, int64_t k, float on, float off) {
  if (rows * k <= 0) return 0;
  ce_backward_kernel<<<blocks_for(rows * k), kThreads, 0, gamk::stream()>>>(g, logp, target, gx, rows, k, on, off);
  return gamk::launched("cross_entropy backward");
}

}  // extern "C"
