// copy.cu — fills, dtype conversions, transpose, row broadcast and the index
// range check, on the device.
#include "common.cuh"

using gamk::blocks_for;
using gamk::kThreads;

namespace {

template <typename T>
__global__ void fill_kernel(T *p, int64_t n, T v) {
  GAM_GRID_LOOP(i, n) p[i] = v;
}

// The CPU backend's conversion rules (tensor.c): through double, to int64 by
// truncation, to uint8 through int64 (wrapping).
template <typename D>
__device__ D from_double(double v);
template <>
__device__ float from_double<float>(double v) {
  return (float)v;
}
template <>
__device__ int64_t from_double<int64_t>(double v) {
  return (int64_t)v;
}
template <>
__device__ uint8_t from_double<uint8_t>(double v) {
  return (uint8_t)(int64_t)v;
}

template <typename S, typename D>
__global__ void convert_kernel(D *dst, const S *src, int64_t n) {
  GAM_GRID_LOOP(i, n) dst[i] = from_double<D>((double)src[i]);
}

template <typename S, typename D>
int convert(void *dst, const void *src, int64_t n) {
  convert_kernel<S, D><<<blocks_for(n), kThreads, 0, gamk::stream()>>>((D *)dst, (const S *)src, n);
  return gamk::launched("to_dtype");
}

template <typename S>
int convert_from(void *dst, int dst_dtype, const void *src, int64_t n) {
  switch (dst_dtype) {
    case GAM_FLOAT32:
      return convert<S, float>(dst, src, n);
    case GAM_INT64:
      return convert<S, int64_t>(dst, src, n);
    case GAM_UINT8:
      return convert<S, uint8_t>(dst, src, n);
    default:
      return gam__err("to_dtype: unknown dtype %d", dst_dtype);
  }
}

// y[c,r] = x[r,c]; output index o = c * rows + r (in index type I: 32-bit
// when rows * cols fits, gamk::fits32)
template <typename I>
__global__ void transpose_kernel(const float *x, float *y, int64_t rows, int64_t cols) {
  const I ri = (I)rows, ci = (I)cols;
  GAM_GRID_LOOP_T(I, o, rows * cols) {
    I c = o / ri, r = o % ri;
    y[o] = x[r * ci + c];
  }
}

template <typename I>
__global__ void repeat_rows_kernel(float *out, const float *row, int64_t rows, int64_t cols) {
  const I ci = (I)cols;
  GAM_GRID_LOOP_T(I, o, rows * cols) out[o] = row[o % ci];
}

__global__ void out_of_range_kernel(const int64_t *idx, int64_t n, int64_t lo, int64_t hi,
                                    unsigned long long *first) {
  GAM_GRID_LOOP(i, n) {
    int64_t v = idx[i];
    if (v < lo || v >= hi) atomicMin(first, (unsigned long long)i);
  }
}

// One block scans idx in chunks of kThreads, in order, and stops at the
// first chunk holding an index outside [lo, hi): its first such index is
// recorded in s (deterministic, no atomics; n is a batch of targets).
__global__ void flag_out_of_range_kernel(const int64_t *idx, int64_t n, int64_t lo, int64_t hi, double *s,
                                         int code) {
  __shared__ int64_t first;
  for (int64_t base = 0; base < n; base += kThreads) {
    if (threadIdx.x == 0) first = n;
    __syncthreads();
    int64_t i = base + threadIdx.x;
    if (i < n && (idx[i] < lo || idx[i] >= hi))
      atomicMin((unsigned long long *)&first, (unsigned long long)i);
    __syncthreads();
    if (first < n) {
      if (threadIdx.x == 0 && s[GAM_OPT_FLAG] == 0) {
        s[GAM_OPT_FLAG] = code;
        s[GAM_OPT_BAD] = (double)idx[first];
        s[GAM_OPT_POS] = (double)first;
        s[GAM_OPT_HI] = (double)hi;
      }
      return; // (uniform: every thread read the same first)
    }
    __syncthreads(); // first is reset only after every thread has read it
  }
}

} // namespace

extern "C" {

int gam_cuda_fill(void *p, int dtype, int64_t n, double value) {
  if (n <= 0) return 0;
  cudaStream_t s = gamk::stream();
  switch (dtype) {
    case GAM_FLOAT32:
      fill_kernel<float><<<blocks_for(n), kThreads, 0, s>>>((float *)p, n, (float)value);
      break;
    case GAM_INT64:
      fill_kernel<int64_t><<<blocks_for(n), kThreads, 0, s>>>((int64_t *)p, n, (int64_t)value);
      break;
    case GAM_UINT8:
      fill_kernel<uint8_t><<<blocks_for(n), kThreads, 0, s>>>((uint8_t *)p, n, (uint8_t)(int)value);
      break;
    default:
      return gam__err("fill: unknown dtype %d", dtype);
  }
  return gamk::launched("fill");
}

int gam_cuda_convert(void *dst, int dst_dtype, const void *src, int src_dtype, int64_t n) {
  if (n <= 0) return 0;
  switch (src_dtype) {
    case GAM_FLOAT32:
      return convert_from<float>(dst, dst_dtype, src, n);
    case GAM_INT64:
      return convert_from<int64_t>(dst, dst_dtype, src, n);
    case GAM_UINT8:
      return convert_from<uint8_t>(dst, dst_dtype, src, n);
    default:
      return gam__err("to_dtype: unknown dtype %d", src_dtype);
  }
}

int gam_cuda_transpose(const float *x, float *y, int64_t rows, int64_t cols) {
  if (rows * cols <= 0) return 0;
  if (gamk::fits32(rows * cols))
    transpose_kernel<int32_t><<<blocks_for(rows * cols), kThreads, 0, gamk::stream()>>>(x, y, rows, cols);
  else
    transpose_kernel<int64_t><<<blocks_for(rows * cols), kThreads, 0, gamk::stream()>>>(x, y, rows, cols);
  return gamk::launched("transpose");
}

int gam_cuda_repeat_rows(float *out, const float *row, int64_t rows, int64_t cols) {
  if (rows * cols <= 0) return 0;
  if (gamk::fits32(rows * cols))
    repeat_rows_kernel<int32_t>
        <<<blocks_for(rows * cols), kThreads, 0, gamk::stream()>>>(out, row, rows, cols);
  else
    repeat_rows_kernel<int64_t>
        <<<blocks_for(rows * cols), kThreads, 0, gamk::stream()>>>(out, row, rows, cols);
  return gamk::launched("linear");
}

int gam_cuda_find_out_of_range(const int64_t *idx, int64_t n, int64_t lo, int64_t hi, int64_t *pos,
                               int64_t *value, const char *op) {
  *pos = -1;
  *value = 0;
  if (n <= 0) return 0;
  unsigned long long *first = (unsigned long long *)gam__device_alloc(sizeof *first);
  if (!first) return -1;
  unsigned long long host = 0;
  int rc = gam_cuda__memset(first, 0xff, sizeof *first, op); // ~0: none found
  if (rc == 0) {
    out_of_range_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(idx, n, lo, hi, first);
    rc = gamk::launched(op);
  }
  if (rc == 0) rc = gam_cuda__memcpy(&host, first, sizeof host, GAM_COPY_D2H, op);
  gam__device_free(first, sizeof *first);
  if (rc != 0) return -1;
  if (host != ~0ULL) {
    *pos = (int64_t)host;
    if (gam_cuda__memcpy(value, idx + host, sizeof *value, GAM_COPY_D2H, op) != 0) return -1;
  }
  return 0;
}

int gam_cuda_flag_out_of_range(const int64_t *idx, int64_t n, int64_t lo, int64_t hi, double *s, int code) {
  if (n <= 0) return 0;
  flag_out_of_range_kernel<<<1, kThreads, 0, gamk::stream()>>>(idx, n, lo, hi, s, code);
  return gamk::launched("cross_entropy");
}

} // extern "C"
