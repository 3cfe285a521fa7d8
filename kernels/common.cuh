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

constexpr int kThreads = 256;  // threads per block of the elementwise kernels

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

}  // namespace gamk

// for (int64_t i = ...; i < n; ...) over the whole grid, in 64-bit indices
#define GAM_GRID_LOOP(i, n)                                                     \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
       i += (int64_t)blockDim.x * gridDim.x)
