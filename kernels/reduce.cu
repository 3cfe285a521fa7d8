// reduce.cu — sums and argmax over the middle axis of x viewed as
// [outer, size, inner], and the scatters of their gradients.
//
// Sums accumulate in double in two stages, deterministically (a fixed
// partition and a fixed order, so the same input gives the same bits):
//   inner == 1 (contiguous lines): stage 1 gives each (line, chunk) a block
//     that sums its chunk of the line; with one chunk per line it writes the
//     result, otherwise stage 2 adds each line's chunk partials in order.
//     Lines of at most 64 elements are summed by one thread each instead.
//   inner > 1 (strided lines, adjacent i adjacent in memory): one thread per
//     column (o, i) walks its chunk of k (coalesced across threads); chunks
//     split k only when there are too few columns to fill the device.
// argmax uses the same two layouts (strided lines too few to fill the device
// get a block each, like contiguous ones), with (value, index) pairs combined
// so that the result is the first maximal element, or the first NaN.
#include "common.cuh"
#include <math.h>

using gamk::blocks_for;
using gamk::kThreads;

namespace {

constexpr int kBlock = 256;             // threads of a line-reduction block (a power of two)
constexpr int64_t kSmallLine = 64;      // lines up to this long: one thread per line
constexpr int64_t kManyColumns = 16384; // strided lines: a thread each from this many on

// The block's threads each hold v; returns the sum (valid in every thread).
// The leading barrier keeps a previous call's readers of buf[0] safe.
__device__ double block_sum(double v, double *buf) {
  __syncthreads();
  buf[threadIdx.x] = v;
  __syncthreads();
  for (int w = kBlock / 2; w > 0; w >>= 1) {
    if ((int)threadIdx.x < w) buf[threadIdx.x] += buf[threadIdx.x + w];
    __syncthreads();
  }
  return buf[0];
}

// ---- sums ----------------------------------------------------------------------
__global__ void sum_short_lines_kernel(const float *p, float *q, int64_t lines, int64_t size, double scale) {
  GAM_GRID_LOOP(l, lines) {
    const float *row = p + l * size;
    double s = 0;
    for (int64_t k = 0; k < size; k++) s += row[k];
    q[l] = (float)(s * scale);
  }
}

// grid (x: lines, strided; y: chunks); chunk c covers k in [c*clen, (c+1)*clen)
__global__ void sum_lines_kernel(const float *p, float *q, double *partial, int64_t lines, int64_t size,
                                 int64_t clen, double scale) {
  __shared__ double buf[kBlock];
  int64_t chunks = gridDim.y, c = blockIdx.y;
  int64_t k0 = c * clen, k1 = k0 + clen < size ? k0 + clen : size;
  for (int64_t l = blockIdx.x; l < lines; l += gridDim.x) { // uniform across the block
    const float *row = p + l * size;
    double s = 0;
    for (int64_t k = k0 + threadIdx.x; k < k1; k += kBlock) s += row[k];
    s = block_sum(s, buf);
    if (threadIdx.x == 0) {
      if (chunks == 1)
        q[l] = (float)(s * scale);
      else
        partial[l * chunks + c] = s;
    }
  }
}

__global__ void sum_line_partials_kernel(const double *partial, float *q, int64_t lines, int64_t chunks,
                                         double scale) {
  GAM_GRID_LOOP(l, lines) {
    double s = 0;
    for (int64_t c = 0; c < chunks; c++) s += partial[l * chunks + c];
    q[l] = (float)(s * scale);
  }
}

// grid (x: columns, grid-stride; y: chunks of k)
template <typename I>
__global__ void sum_columns_kernel(const float *p, float *q, double *partial, int64_t outer, int64_t size,
                                   int64_t inner, int64_t clen, double scale) {
  int64_t chunks = gridDim.y, c = blockIdx.y, cols = outer * inner;
  int64_t k0 = c * clen, k1 = k0 + clen < size ? k0 + clen : size;
  const I in = (I)inner;
  GAM_GRID_LOOP_T(I, col, cols) {
    int64_t o = col / in, i = col % in;
    const float *base = p + o * size * inner + i;
    double s = 0;
    for (int64_t k = k0; k < k1; k++) s += base[k * inner];
    if (chunks == 1)
      q[col] = (float)(s * scale);
    else
      partial[c * cols + col] = s;
  }
}

__global__ void sum_column_partials_kernel(const double *partial, float *q, int64_t cols, int64_t chunks,
                                           double scale) {
  GAM_GRID_LOOP(col, cols) {
    double s = 0;
    for (int64_t c = 0; c < chunks; c++) s += partial[c * cols + col];
    q[col] = (float)(s * scale);
  }
}

__global__ void zero_kernel(float *q, int64_t n) { GAM_GRID_LOOP(i, n) q[i] = 0.f; }

// ---- argmax --------------------------------------------------------------------
// Does (v, i) replace the best so far (bv, bi)? An index < 0 is "none". NaN
// beats numbers; otherwise the larger value; ties go to the smaller index.
__device__ __forceinline__ bool replaces(float v, int64_t i, float bv, int64_t bi) {
  if (i < 0) return false;
  if (bi < 0) return true;
  bool vn = v != v, bn = bv != bv;
  if (vn != bn) return vn;
  if (!vn && v != bv) return v > bv;
  return i < bi;
}

// line l = (o, i) is p[o, :, i]: contiguous when inner == 1, else strided by
// inner (few long strided lines: a block each instead of a thread each)
__global__ void argmax_lines_kernel(const float *p, float *values, int64_t *idx, float *pv, int64_t *pi,
                                    int64_t lines, int64_t size, int64_t inner, int64_t clen) {
  __shared__ float sv[kBlock];
  __shared__ int64_t si[kBlock];
  int64_t chunks = gridDim.y, c = blockIdx.y;
  int64_t k0 = c * clen, k1 = k0 + clen < size ? k0 + clen : size;
  for (int64_t l = blockIdx.x; l < lines; l += gridDim.x) { // uniform across the block
    const float *row = p + (l / inner) * size * inner + l % inner;
    float bv = 0.f;
    int64_t bi = -1;
    for (int64_t k = k0 + threadIdx.x; k < k1; k += kBlock)
      if (replaces(row[k * inner], k, bv, bi)) bv = row[k * inner], bi = k;
    __syncthreads(); // readers of the previous line's result are done
    sv[threadIdx.x] = bv;
    si[threadIdx.x] = bi;
    __syncthreads();
    for (int w = kBlock / 2; w > 0; w >>= 1) {
      int t = threadIdx.x;
      if (t < w && replaces(sv[t + w], si[t + w], sv[t], si[t])) sv[t] = sv[t + w], si[t] = si[t + w];
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      if (chunks == 1) {
        if (values) values[l] = sv[0];
        idx[l] = si[0];
      } else {
        pv[l * chunks + c] = sv[0];
        pi[l * chunks + c] = si[0];
      }
    }
  }
}

__global__ void argmax_partials_kernel(const float *pv, const int64_t *pi, float *values, int64_t *idx,
                                       int64_t lines, int64_t chunks) {
  GAM_GRID_LOOP(l, lines) {
    float bv = 0.f;
    int64_t bi = -1;
    for (int64_t c = 0; c < chunks; c++)
      if (replaces(pv[l * chunks + c], pi[l * chunks + c], bv, bi))
        bv = pv[l * chunks + c], bi = pi[l * chunks + c];
    if (values) values[l] = bv;
    idx[l] = bi;
  }
}

// one thread per column (o, i), k in order: the CPU loop exactly
template <typename I>
__global__ void argmax_columns_kernel(const float *p, float *values, int64_t *idx, int64_t outer,
                                      int64_t size, int64_t inner) {
  const I in = (I)inner;
  GAM_GRID_LOOP_T(I, col, outer * inner) {
    int64_t o = col / in, i = col % in;
    const float *base = p + o * size * inner + i;
    float bv = base[0];
    int64_t bi = 0;
    for (int64_t k = 1; k < size; k++)
      if (replaces(base[k * inner], k, bv, bi)) bv = base[k * inner], bi = k;
    if (values) values[col] = bv;
    idx[col] = bi;
  }
}

// ---- gradients -----------------------------------------------------------------
template <typename I>
__global__ void spread_lines_kernel(const float *g, float *p, int64_t outer, int64_t size, int64_t inner,
                                    float scale) {
  const I line = (I)(size * inner), in = (I)inner;
  GAM_GRID_LOOP_T(I, e, outer * size * inner) {
    I o = e / line, i = e % in;
    p[e] = g[o * inner + i] * scale;
  }
}

__global__ void fill_scaled_kernel(float *p, int64_t n, const float *src, float scale) {
  GAM_GRID_LOOP(i, n) p[i] = src[0] * scale;
}

template <typename I>
__global__ void scatter_lines_kernel(const float *g, const int64_t *idx, float *p, int64_t outer,
                                     int64_t size, int64_t inner) {
  const I in = (I)inner;
  GAM_GRID_LOOP_T(I, col, outer * inner) {
    int64_t o = col / in, i = col % in;
    p[(o * size + idx[col]) * inner + i] = g[col];
  }
}

// Chunks for lines of contiguous elements: enough blocks to fill the device
// when there are few lines, at most 2048 partials in all.
int64_t line_chunks(int64_t lines, int64_t size) {
  if (lines >= 512) return 1;
  int64_t chunks = (size + 4095) / 4096, cap = 2048 / lines;
  if (cap < 1) cap = 1;
  return chunks < cap ? chunks : cap;
}

unsigned line_blocks(int64_t lines) { return (unsigned)(lines < 65535 ? lines : 65535); }

} // namespace

extern "C" {

int gam_cuda_sum_lines(const float *p, float *q, int64_t outer, int64_t size, int64_t inner, double scale) {
  int64_t cols = outer * inner;
  if (cols <= 0) return 0;
  cudaStream_t s = gamk::stream();
  if (size <= 0) {
    zero_kernel<<<blocks_for(cols), kThreads, 0, s>>>(q, cols);
    return gamk::launched("sum");
  }
  if (inner == 1 && size <= kSmallLine) {
    sum_short_lines_kernel<<<blocks_for(outer), kThreads, 0, s>>>(p, q, outer, size, scale);
    return gamk::launched("sum");
  }
  int64_t chunks, clen;
  if (inner == 1) {
    chunks = line_chunks(outer, size);
  } else { // columns: split k only while there are fewer than 2^17 threads
    chunks = (size + 63) / 64;
    int64_t cap = cols >= 131072 ? 1 : 131072 / cols;
    if (chunks > cap) chunks = cap;
    if (chunks > 1024) chunks = 1024;
  }
  if (chunks < 1) chunks = 1;
  clen = (size + chunks - 1) / chunks;
  double *partial = NULL;
  size_t pbytes = (size_t)(chunks * cols) * sizeof(double);
  if (chunks > 1 && !(partial = (double *)gam__device_alloc(pbytes))) return -1;
  if (inner == 1) {
    dim3 grid(line_blocks(outer), (unsigned)chunks);
    sum_lines_kernel<<<grid, kBlock, 0, s>>>(p, q, partial, outer, size, clen, scale);
    if (chunks > 1)
      sum_line_partials_kernel<<<blocks_for(outer), kThreads, 0, s>>>(partial, q, outer, chunks, scale);
  } else {
    dim3 grid(blocks_for(cols), (unsigned)chunks);
    if (gamk::fits32(cols))
      sum_columns_kernel<int32_t><<<grid, kThreads, 0, s>>>(p, q, partial, outer, size, inner, clen, scale);
    else
      sum_columns_kernel<int64_t><<<grid, kThreads, 0, s>>>(p, q, partial, outer, size, inner, clen, scale);
    if (chunks > 1)
      sum_column_partials_kernel<<<blocks_for(cols), kThreads, 0, s>>>(partial, q, cols, chunks, scale);
  }
  int rc = gamk::launched("sum");
  gam__device_free(partial, pbytes); // stream-ordered: reused only after these kernels
  return rc;
}

int gam_cuda_spread_lines(const float *g, float *p, int64_t outer, int64_t size, int64_t inner, float scale) {
  int64_t n = outer * size * inner;
  if (n <= 0) return 0;
  if (gamk::fits32(n))
    spread_lines_kernel<int32_t>
        <<<blocks_for(n), kThreads, 0, gamk::stream()>>>(g, p, outer, size, inner, scale);
  else
    spread_lines_kernel<int64_t>
        <<<blocks_for(n), kThreads, 0, gamk::stream()>>>(g, p, outer, size, inner, scale);
  return gamk::launched("sum backward");
}

int gam_cuda_fill_scaled(float *p, int64_t n, const float *src, float scale) {
  if (n <= 0) return 0;
  fill_scaled_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(p, n, src, scale);
  return gamk::launched("sum backward");
}

int gam_cuda_argmax_lines(const float *p, float *values, int64_t *idx, int64_t outer, int64_t size,
                          int64_t inner) {
  if (outer * inner <= 0) return 0;
  if (size <= 0) return gam__err("max: the reduced dim is empty");
  cudaStream_t s = gamk::stream();
  // one thread per line: short lines, or strided lines numerous enough to fill the device
  const int64_t lines = outer * inner;
  if (size <= kSmallLine || (inner > 1 && lines >= kManyColumns)) {
    if (gamk::fits32(outer * inner))
      argmax_columns_kernel<int32_t>
          <<<blocks_for(outer * inner), kThreads, 0, s>>>(p, values, idx, outer, size, inner);
    else
      argmax_columns_kernel<int64_t>
          <<<blocks_for(outer * inner), kThreads, 0, s>>>(p, values, idx, outer, size, inner);
    return gamk::launched("max");
  }
  int64_t chunks = line_chunks(lines, size), clen = (size + chunks - 1) / chunks;
  float *pv = NULL;
  int64_t *pi = NULL;
  size_t nv = (size_t)(chunks * lines) * sizeof(float), ni = (size_t)(chunks * lines) * sizeof(int64_t);
  if (chunks > 1) {
    pv = (float *)gam__device_alloc(nv);
    pi = pv ? (int64_t *)gam__device_alloc(ni) : NULL;
    if (!pi) {
      gam__device_free(pv, nv);
      return -1;
    }
  }
  dim3 grid(line_blocks(lines), (unsigned)chunks);
  argmax_lines_kernel<<<grid, kBlock, 0, s>>>(p, values, idx, pv, pi, lines, size, inner, clen);
  if (chunks > 1)
    argmax_partials_kernel<<<blocks_for(lines), kThreads, 0, s>>>(pv, pi, values, idx, lines, chunks);
  int rc = gamk::launched("max");
  gam__device_free(pv, nv);
  gam__device_free(pi, ni);
  return rc;
}

int gam_cuda_scatter_lines(const float *g, const int64_t *idx, float *p, int64_t outer, int64_t size,
                           int64_t inner) {
  if (outer * inner <= 0) return 0;
  cudaStream_t s = gamk::stream();
  if (gamk::fits32(outer * inner))
    scatter_lines_kernel<int32_t>
        <<<blocks_for(outer * inner), kThreads, 0, s>>>(g, idx, p, outer, size, inner);
  else
    scatter_lines_kernel<int64_t>
        <<<blocks_for(outer * inner), kThreads, 0, s>>>(g, idx, p, outer, size, inner);
  return gamk::launched("max backward");
}

} // extern "C"
