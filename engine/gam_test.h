/* gam_test.h — libgam entry points that only tests call.
 *
 * The sharpness-aware passes of gam.h with host-side scalars: the reductions
 * return their result as doubles (waiting for the device), the coefficients
 * are passed as numbers. The package itself
 * uses the _s forms of gam.h (scalars in a block on the vectors' device); the
 * tests compare the two, bit for bit. libgam exports these like any other
 * entry point; tests/gam_test.lua hands the region between GAM_TEST_FFI_BEGIN
 * and GAM_TEST_FFI_END to ffi.cdef, so it holds plain declarations only. */
#ifndef GAM_TEST_H
#define GAM_TEST_H
#include "gam.h"

/* GAM_TEST_FFI_BEGIN */
int gam_opt_norm(double *norm, const gam_tensor *g, const gam_tensor *w); /* ‖g⊙|w|‖, w may be NULL */
int gam_opt_ascend(gam_tensor *theta, gam_tensor *theta_save, const gam_tensor *g, gam_tensor *g_save,
                   double scale, int adaptive);                          /* saves may be NULL */
int gam_opt_dot3(double *out, const gam_tensor *a, const gam_tensor *b); /* ‖a‖², ⟨a,b⟩, ‖b‖² */
int gam_opt_decompose(gam_tensor *h, const gam_tensor *v, double weight,
                      double c); /* h -= weight (v − c h) */
int gam_gam_pass1(double *norm, gam_tensor *hplus, const gam_tensor *g, const gam_tensor *g0,
                  const gam_tensor *theta0, double alpha, int adaptive);
int gam_gam_ascend_h0(gam_tensor *theta, const gam_tensor *theta0, const gam_tensor *g, const gam_tensor *g0,
                      double scale, int adaptive);
int gam_gam_pass2(double *norm, gam_tensor *g0_hminus, const gam_tensor *g, const gam_tensor *theta,
                  double c0, double c1, int adaptive);
int gam_gam_pass3(double *out, gam_tensor *g, const gam_tensor *hplus, const gam_tensor *hminus, double c);
/* GAM_TEST_FFI_END */

#endif
