/* optim_test.c — the host-scalar forms of the optimiser passes (engine/gam_test.h).
 *
 * For tests only: each is the _s form of gam.h run into a temporary scalars
 * block on the vectors' device, whose first slots are copied back (on cuda a
 * wait). The forms that take a coefficient as a number are in optim.c. */
#include "internal.h"
#include "gam_test.h"
#include <string.h>

static int temp_block(gam_tensor **s, const gam_tensor *t, const char *op, const char *arg) {
  GAM_TRY(gam__check_float_dev(t, op, arg));
  return gam_opt_scalars(s, t->device);
}

static int take(gam_tensor *s, int rc, double *out, int k) {
  double h[GAM_OPT_NSCALARS];
  if (rc == 0) rc = gam_opt_read(s, h);
  if (rc == 0) memcpy(out, h, (size_t)k * sizeof(double));
  gam_release(s);
  return rc;
}

int gam_opt_norm(double *norm, const gam_tensor *g, const gam_tensor *w) {
  GAM_CHECK(norm, "opt_norm: no output given");
  gam_tensor *s;
  GAM_TRY(temp_block(&s, g, "opt_norm", "gradient"));
  return take(s, gam_opt_norm_s(s, g, w, 0), norm, 1);
}

int gam_opt_dot3(double *out, const gam_tensor *a, const gam_tensor *b) {
  GAM_CHECK(out, "opt_dot3: no output given");
  gam_tensor *s;
  GAM_TRY(temp_block(&s, a, "opt_dot3", "first vector"));
  return take(s, gam_opt_dot3_s(s, a, b, 0, 0), out, 3);
}

int gam_gam_pass1(double *norm, gam_tensor *hplus, const gam_tensor *g, const gam_tensor *g0,
                  const gam_tensor *theta0, double alpha, int adaptive) {
  GAM_CHECK(norm, "gam_pass1: no output given");
  gam_tensor *s;
  GAM_TRY(temp_block(&s, g, "gam_pass1", "gradient"));
  return take(s, gam_gam_pass1_s(s, hplus, g, g0, theta0, alpha, adaptive, 0), norm, 1);
}

int gam_gam_pass2(double *norm, gam_tensor *g0_hminus, const gam_tensor *g, const gam_tensor *theta,
                  double c0, double c1, int adaptive) {
  GAM_CHECK(norm, "gam_pass2: no output given");
  gam_tensor *s;
  GAM_TRY(temp_block(&s, g, "gam_pass2", "gradient"));
  return take(s, gam_gam_pass2_s(s, g0_hminus, g, theta, c0, c1, adaptive, 0), norm, 1);
}

int gam_gam_pass3(double *out, gam_tensor *g, const gam_tensor *hplus, const gam_tensor *hminus, double c) {
  GAM_CHECK(out, "gam_pass3: no output given");
  gam_tensor *s;
  GAM_TRY(temp_block(&s, g, "gam_pass3", "gradient"));
  return take(s, gam_gam_pass3_s(s, g, hplus, hminus, c, 0, 0), out, 3);
}
