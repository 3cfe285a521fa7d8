/* random.c — one seeded generator (xoroshiro128++) for every random tensor.
 * The same seed gives the same numbers on every run and thread count: values
 * are drawn in element order on one thread. Random tensors asked for on the
 * cuda device are drawn here and copied (lua/gam/tensor.lua), so a seed gives
 * the same values on both devices. */
#include "internal.h"
#include "philox.h"
#include <math.h>

static uint64_t rng[2] = {0x9e3779b97f4a7c15ULL, 0xbf58476d1ce4e5b9ULL};

uint64_t gam__rng_next(void) { return gam__xoro_next(rng); }

/* uniform in [0, 1) with 53 random bits */
double gam__rng_uniform(void) { return (double)(gam__rng_next() >> 11) * (1.0 / 9007199254740992.0); }

uint64_t gam__rng_below(uint64_t n) { return gam__xoro_below(rng, n); }

/* Philox4x32-10 on the host (engine/philox.h; the device's dropout masks use the same function) */
void gam_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  gam_philox(ctr, key, out);
}

int gam_manual_seed(uint64_t seed) {
  uint64_t x = seed;
  rng[0] = gam__splitmix64(&x);
  rng[1] = gam__splitmix64(&x);
  return 0;
}

int gam_rng_get_state(uint64_t *s) {
  GAM_CHECK(s, "rng_state: NULL buffer");
  s[0] = rng[0];
  s[1] = rng[1];
  return 0;
}

int gam_rng_set_state(const uint64_t *s) {
  GAM_CHECK(s, "set_rng_state: NULL buffer");
  GAM_CHECK(s[0] || s[1], "set_rng_state: the all-zero state is invalid");
  rng[0] = s[0];
  rng[1] = s[1];
  return 0;
}

int gam_rand(gam_tensor **out, int ndim, const int64_t *shape, double lo, double hi) {
  GAM_CHECK(isfinite(lo) && isfinite(hi) && lo <= hi, "rand: bounds [%g, %g) are invalid", lo, hi);
  GAM_TRY(gam_empty(out, GAM_FLOAT32, GAM_CPU, ndim, shape));
  float *p = gam__f32(*out);
  for (int64_t i = 0; i < (*out)->numel; i++) p[i] = (float)(lo + (hi - lo) * gam__rng_uniform());
  return 0;
}

int gam_randn(gam_tensor **out, int ndim, const int64_t *shape, double mean, double std) {
  GAM_CHECK(isfinite(mean) && isfinite(std) && std >= 0, "randn: mean %g / std %g are invalid", mean, std);
  GAM_TRY(gam_empty(out, GAM_FLOAT32, GAM_CPU, ndim, shape));
  float *p = gam__f32(*out);
  int64_t n = (*out)->numel;
  for (int64_t i = 0; i < n; i += 2) { /* Box-Muller, both values */
    double u1 = 1.0 - gam__rng_uniform(), u2 = gam__rng_uniform();
    double r = sqrt(-2.0 * log(u1)), a = 6.283185307179586 * u2;
    p[i] = (float)(mean + std * r * cos(a));
    if (i + 1 < n) p[i + 1] = (float)(mean + std * r * sin(a));
  }
  return 0;
}

int gam_randint(gam_tensor **out, int ndim, const int64_t *shape, int64_t lo, int64_t hi) {
  GAM_CHECK(lo < hi, "randint: empty range [%lld, %lld)", (long long)lo, (long long)hi);
  GAM_TRY(gam_empty(out, GAM_INT64, GAM_CPU, ndim, shape));
  int64_t *p = gam__i64(*out);
  uint64_t span = (uint64_t)(hi - lo);
  for (int64_t i = 0; i < (*out)->numel; i++) p[i] = lo + (int64_t)gam__rng_below(span);
  return 0;
}

int gam_randperm(gam_tensor **out, int64_t n) {
  GAM_CHECK(n >= 0, "randperm: n = %lld is negative", (long long)n);
  GAM_TRY(gam_empty(out, GAM_INT64, GAM_CPU, 1, &n));
  int64_t *p = gam__i64(*out);
  for (int64_t i = 0; i < n; i++) p[i] = i;
  for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
    int64_t j = (int64_t)gam__rng_below((uint64_t)i + 1), t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return 0;
}
