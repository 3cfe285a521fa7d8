/* ops_dropout.c — inverted dropout, drawn from the engine's seeded generator.
 *
 *   mask[i] = (u_i >= p) / (1 - p),  u_i uniform in [0, 1) drawn in element order
 *   y = x * mask,  gx = g * mask
 * The same seed gives the same mask on every run and thread count. When not
 * training, or p = 0, the op is the identity and returns x itself. */
#include "internal.h"
#include <math.h>

static int dropout_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *mask = n->saved[0];
  gam_tensor *gx = gam__new_like(g);
  if (!gx) return -1;
  const float *gp = gam__f32(g), *mp = gam__f32(mask);
  float *p = gam__f32(gx);
  int64_t count = g->numel;
#pragma omp parallel for simd if (count > GAM_PAR_MIN)
  for (int64_t i = 0; i < count; i++) p[i] = gp[i] * mp[i];
  int rc = gam__accumulate(n, 0, gx);
  gam_release(gx);
  return rc;
}

int gam_dropout(gam_tensor **out, gam_tensor *x, double p, int training) {
  GAM_TRY(gam__check_float(x, "dropout", "input"));
  GAM_CHECK(p >= 0 && p < 1, "dropout: probability p must be in [0, 1), got %g", p);
  if (!training || p == 0) {
    gam_retain(x);
    *out = x;
    return 0;
  }
  gam_tensor *mask = gam__new_like(x), *y = gam__new_like(x);
  if (!mask || !y) return gam__fail(2, mask, y);
  float keep = (float)(1.0 / (1.0 - p));
  float *mp = gam__f32(mask), *yp = gam__f32(y);
  const float *xp = gam__f32(x);
  int64_t count = x->numel;
  for (int64_t i = 0; i < count; i++) mp[i] = gam__rng_uniform() >= p ? keep : 0.f;
#pragma omp parallel for simd if (count > GAM_PAR_MIN)
  for (int64_t i = 0; i < count; i++) yp[i] = xp[i] * mp[i];
  if (gam__grad_needed(1, &x)) {
    gam_node *n = gam__record(y, "dropout", dropout_backward, 1, &x);
    if (!n || gam__save(n, 0, mask) != 0) return gam__fail(2, mask, y);
  }
  gam_release(mask);
  *out = y;
  return 0;
}
