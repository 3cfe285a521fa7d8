// random.cu — dropout masks drawn on the device from a counter-based
// generator: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC 2011), written out below.
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

using gamk::blocks_for;
using gamk::kThreads;

namespace {

// The Philox4x32 round function and key schedule (Random123's constants);
// engine/random.c has the same function on the host (gam_philox4x32_10).
__device__ __forceinline__ void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
  for (int r = 0; r < 10; r++) {
    if (r > 0) k0 += W0, k1 += W1;
    uint64_t p0 = (uint64_t)M0 * c0, p1 = (uint64_t)M1 * c2;
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
  }
  out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

// one thread per group q of four elements [4q, 4q + 4)
__global__ void dropout_mask_kernel(float *mask, int64_t n, float p, float keep, uint32_t k0, uint32_t k1) {
  const uint32_t key[2] = {k0, k1};
  GAM_GRID_LOOP(q, (n + 3) / 4) {
    const uint32_t ctr[4] = {(uint32_t)q, (uint32_t)((uint64_t)q >> 32), 0u, 0u};
    uint32_t r[4];
    philox4x32_10(ctr, key, r);
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
