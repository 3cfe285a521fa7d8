// random.cu — dropout masks drawn on the device from a counter-based
// generator: Philox4x32-10 (engine/philox.h, shared with the host).
//
// A mask is a pure function of (seed, element index): the key is the 64-bit
// seed (one draw of the engine's generator per dropout call, made by the
// front half's table entry), the counter the index of a group of four
// elements, and each of the group's four 32-bit outputs decides one element:
//   u_i = (r_i >> 8) 2^-24 in [0, 1),  mask[i] = u_i >= p ? 1/(1-p) : 0
// so a seed gives the same mask on every run, launch shape and device, and
// no state is kept on the device. (The cpu draws its masks from the host
// generator in element order instead: the two devices' masks differ, and
// their distributions are what the tests compare.)
#include "common.cuh"
#include "philox.h"

using gamk::blocks_for;
using gamk::kThreads;

namespace {

// one thread per group q of four elements [4q, 4q + 4)
__global__ void dropout_mask_kernel(float *mask, int64_t n, float p, float keep, uint32_t k0, uint32_t k1) {
  const uint32_t key[2] = {k0, k1};
  GAM_GRID_LOOP(q, (n + 3) / 4) {
    const uint32_t ctr[4] = {(uint32_t)q, (uint32_t)((uint64_t)q >> 32), 0u, 0u};
    uint32_t r[4];
    gam_philox(ctr, key, r);
    for (int j = 0; j < 4; j++) {
      int64_t i = 4 * q + j;
      if (i < n) mask[i] = (float)(r[j] >> 8) * (1.f / 16777216.f) >= p ? keep : 0.f;
    }
  }
}

} // namespace

extern "C" {

int gam_cuda_dropout_mask(float *mask, int64_t n, double p, uint64_t seed) {
  if (n <= 0) return 0;
  const float keep = (float)(1.0 / (1.0 - p));
  const int64_t groups = (n + 3) / 4;
  dropout_mask_kernel<<<blocks_for(groups), kThreads, 0, gamk::stream()>>>(
      mask, n, (float)p, keep, (uint32_t)seed, (uint32_t)(seed >> 32));
  return gamk::launched("dropout");
}

} // extern "C"
