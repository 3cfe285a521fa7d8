// common.cuh — what every kernels/*.cu file shares: the engine's enums, the
// stream, launch checks and the grid-stride loop.
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "gam.h"
}
#include "cuda_backend.h"

namespace gamk {

constexpr int kThreads = 256; // threads per block of the elementwise kernels

// The stream everything runs on (kernels/runtime.cu). Launch wrappers are only
// reached through a cuda tensor, which exists only once the runtime is ready.
cudaStream_t stream();

// Blocks for n elements of a grid-stride loop: enough to fill the device, at
// most 65535 (the loop covers the rest).
inline unsigned blocks_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  return (unsigned)(b < 1 ? 1 : b > 65535 ? 65535 : b);
}

// After a launch: a bad launch configuration or an earlier asynchronous fault
// becomes an engine error naming the op.
inline int launched(const char *op) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return gam__err("%s: cuda kernel failed: %s", op, cudaGetErrorString(e));
  return 0;
}

// Index type choice (the usual two-kernel split): kernels templated on I run
// with I = int32_t when every index they form, and the grid loop's step past
// the last one, stays below 2^31; int64_t only beyond. 32-bit division and
// modulo are several times cheaper than 64-bit ones on the device.
constexpr int64_t kMaxGridStep = (int64_t)65535 * 1024; // blocks_for's cap x the largest block
inline bool fits32(int64_t n) { return n >= 0 && n <= (int64_t)INT32_MAX - kMaxGridStep; }

// Reductions over a group of G threads that share one line: G = 32 (one
// warp, shuffles only) or G = kThreads (the whole block; sh holds kThreads/32
// values and every thread of the block must call). Fixed order: the warp's
// butterfly, then the warps' results in warp order, so the result is the
// same bits on every run and in every thread of the group.
template <int G>
__device__ __forceinline__ double group_sum(double v, double *sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (G == 32) return v;
  __syncthreads(); // the previous call's readers of sh are done
  if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = v;
  __syncthreads();
  double t = 0;
  for (int w = 0; w < G / 32; w++) t += sh[w];
  return t;
}
// the largest of the group's v, NaN ignored (as the cpu's `v > m ? v : m`)
template <int G>
__device__ __forceinline__ float group_max(float v, float *sh) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (G == 32) return v;
  __syncthreads();
  if (threadIdx.x % 32 == 0) sh[threadIdx.x / 32] = v;
  __syncthreads();
  float t = sh[0];
  for (int w = 1; w < G / 32; w++) t = fmaxf(t, sh[w]);
  return t;
}

} // namespace gamk

// for (int64_t i = ...; i < n; ...) over the whole grid, in 64-bit indices
#define GAM_GRID_LOOP(i, n)                                                 \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
       i += (int64_t)blockDim.x * gridDim.x)

// the same loop in index type I (int32_t only where gamk::fits32(n) holds)
#define GAM_GRID_LOOP_T(I, i, n) \
  for (I i = (I)(blockIdx.x * blockDim.x + threadIdx.x); i < (I)(n); i += (I)(blockDim.x * gridDim.x))
