/* philox.h — Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
 * 1, 2, 3", SC 2011; Random123's constants), written once for the host
 * (engine/random.c: gam_philox4x32_10) and the device (kernels/random.cu: the
 * dropout masks): ten rounds of two 32x32->64 multiplies, the key bumped by the
 * Weyl constants between rounds. */
#ifndef GAM_PHILOX_H
#define GAM_PHILOX_H
#include <stdint.h>

#ifdef __CUDACC__
#define GAM_PHILOX_FN static inline __host__ __device__
#else
#define GAM_PHILOX_FN static inline
#endif

GAM_PHILOX_FN void gam_philox(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
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

#endif
