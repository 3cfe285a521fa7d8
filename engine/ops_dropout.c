/* ops_dropout.c — inverted dropout, drawn from the engine's seeded generator.
 *
 *   mask[i] = (u_i >= p) / (1 - p),  u_i uniform in [0, 1) drawn in element order
 *   y = x * mask,  gx = g * mask
 * The same seed gives the same mask on every run and thread count. When not
 * training, or p = 0, the op is the identity and returns x itself.
 *
 * The mask comes from the backend's dropout_mask: the cpu draws u_i from the
 * engine's generator in element order; the cuda device draws one 64-bit key
 * from it and makes the mask on the device with Philox4x32-10 (counter-based:
 * no host work, no copy). A seed thus gives the same mask on every run of a
 * device, but the two devices' masks differ (same distribution). The
 * products run as the backend's elementwise kernels. */
#include "backend.h"
#include <math.h>

/* o = a * b over n elements: the backend's binary op on one flat dim */
static int times(float *o, const float *a, const float *b, int64_t n, int device) {
  if (n == 0) return 0;
  int64_t shape[1] = {n}, one[1] = {1};
  return gam__backend(device)->binary(GAM_BIN_MUL, a, b, o, 1, shape, one, one, n);
}

static int dropout_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *mask = n->saved[0];
  gam_tensor *gx = gam__new_like(g);
  if (!gx) return -1;
  if (times(gam__f32(gx), gam__f32(g), gam__f32(mask), g->numel, g->device) != 0) return gam__fail(1, gx);
  int rc = gam__accumulate(n, 0, gx);
  gam_release(gx);
  return rc;
}

/* the cpu's mask: u_i from the engine's generator in element order */
int gam_cpu_dropout_mask(float *mask, int64_t n, double p) {
  float keep = (float)(1.0 / (1.0 - p));
  for (int64_t i = 0; i < n; i++) mask[i] = gam__rng_uniform() >= p ? keep : 0.f;
  return 0;
}

int gam_dropout(gam_tensor **out, gam_tensor *x, double p, int training) {
  GAM_TRY(gam__check_float_dev(x, "dropout", "input"));
  GAM_CHECK(p >= 0 && p < 1, "dropout: probability p must be in [0, 1), got %g", p);
  if (!training || p == 0) {
    gam_retain(x);
    *out = x;
    return 0;
  }
  gam_tensor *mask = gam__new_like(x), *y = gam__new_like(x);
  if (!mask || !y) return gam__fail(2, mask, y);
  int64_t count = x->numel;
  if (gam__be(x)->dropout_mask(gam__f32(mask), count, p) != 0) return gam__fail(2, mask, y);
  if (times(gam__f32(y), gam__f32(x), gam__f32(mask), count, x->device) != 0) return gam__fail(2, mask, y);
  if (gam__grad_needed(1, &x)) {
    gam_node *n = gam__record(y, "dropout", dropout_backward, 1, &x);
    if (!n || gam__save(n, 0, mask) != 0) return gam__fail(2, mask, y);
  }
  gam_release(mask);
  *out = y;
  return 0;
}
