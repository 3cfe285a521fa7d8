/* optim.c — fused optimiser passes over flat float32 vectors: the front halves.
 *
 * Every vector here has n elements: theta (the parameter arena), g (its
 * gradient) and the optimisers' own buffers of the same size. Each function is
 * one pass over the vectors it names. The Lua optimisers in lua/gam/optim/
 * chain these passes, keeping the step's scalars in a block on the vectors'
 * device (the _s forms, gam.h):
 *
 *   SAM   norm(g) ; ascend(θ, save θ) ; [pass 1] ; norm(g) ; base step from the saved θ
 *   GSAM  norm(g) ; ascend(θ, save θ, save g) ; [pass 1] ; dot3(gs, g) ;
 *         decompose(gs, g) ; base step from the saved θ
 *   GAM   norm(g0) ; ascend(θ, save θ0, save g0)                           [pass 1]
 *         gam_pass1: h+ = α g1, ‖(g1−g0)⊙|θ0|‖ ; gam_ascend_h0: θ = θ0 + s (g1−g0)
 *                                                                         [pass 2]
 *         gam_pass2: h− = c0 g0 + (1−β) g2 (in g0's buffer), ‖g2⊙|θ2|‖ ; ascend(θ)
 *                                                                         [pass 3]
 *         gam_pass3: g = h+ + (1−α) g3 with ‖h+‖², ⟨h+,h−⟩, ‖h−‖² ;
 *         decompose(g, h−) ; base step from the saved θ0
 *
 * "adaptive" (ASAM) multiplies each perturbation by θ² elementwise and measures
 * norms as ‖g⊙|θ|‖, θ being the weights at the point the perturbation starts from.
 * The base steps follow PyTorch's SGD, Adam and AdamW exactly; their optional
 * src vector is the point the step starts from (the saved θ), so restoring the
 * weights and updating them is one pass.
 *
 * Each function here only checks its vectors (one size, one device) and calls
 * the pass through the backend table of that device (backend.h): the cpu
 * loops are optim_cpu.c, the cuda kernels kernels/optim.cu, and the math of
 * both is optim_math.h. The host-scalar forms of engine/gam_test.h (for
 * tests) are at the end and in optim_test.c. */
#include "internal.h"
#include "backend.h"
#include "gam_test.h"

/* one call: its op, its vectors' size and device (those of the first vector) */
typedef struct call {
  const char *op;
  int64_t n;
  int device;
} call;

/* The call's first vector (a flat float32 tensor): its size and device
 * become the call's. */
static int first(call *c, const char *op, const gam_tensor *t, const char *arg) {
  c->op = op;
  GAM_TRY(gam__check_float_dev(t, op, arg));
  c->n = t->numel;
  c->device = t->device;
  return 0;
}

/* Another vector of the call: same size, same device. */
static int vec(const call *c, const gam_tensor *t, const char *arg) {
  GAM_TRY(gam__check_float_dev(t, c->op, arg));
  GAM_CHECK(t->device == c->device, "%s: %s is on %s, the other vectors on %s", c->op, arg,
            gam__device_name(t->device), gam__device_name(c->device));
  char b[160];
  GAM_CHECK(t->numel == c->n, "%s: %s has %lld elements %s, expected %lld", c->op, arg, (long long)t->numel,
            gam__shape_str(t, b), (long long)c->n);
  return 0;
}

static int opt_vec(const call *c, const gam_tensor *t, const char *arg) { return t ? vec(c, t, arg) : 0; }

static float *fp(const gam_tensor *t) { return t ? gam__f32(t) : NULL; }

/* A scalars block (GAM_OPT_NSCALARS doubles in an int64 tensor); device: the
 * call's (-1: any). */
static int block(const gam_tensor *s, const char *op, int device) {
  GAM_TRY(gam__check_dev(s, op, "scalars block"));
  GAM_CHECK(s->dtype == GAM_INT64 && s->numel == GAM_OPT_NSCALARS,
            "%s: the scalars block must come from gam_opt_scalars (int64 [%d])", op, GAM_OPT_NSCALARS);
  GAM_CHECK(device < 0 || s->device == device, "%s: the scalars block is on %s, the vectors on %s", op,
            gam__device_name(s->device), gam__device_name(device));
  return 0;
}

static double *slots(const gam_tensor *s) { return s ? (double *)gam__data(s) : NULL; }

static gam_coef value(double v) { return gam_coef_of(GAM_COEF_VALUE, v, NULL); }
static gam_coef radius(double rho, const gam_tensor *s) {
  return gam_coef_of(GAM_COEF_RADIUS, rho, slots(s));
}

/* ---- the arena as one vector ------------------------------------------------ */
int gam_opt_span(gam_tensor **out, gam_tensor **ts, int n) {
  GAM_CHECK(out, "opt_span: no output given");
  *out = NULL;
  GAM_CHECK(ts && n >= 1, "opt_span: no tensors given");
  int64_t total = 0;
  for (int k = 0; k < n; k++) {
    gam_tensor *t = ts[k];
    if (!t || !t->storage || t->dtype != GAM_FLOAT32 || t->storage != ts[0]->storage) return 0;
    if (t->offset != ts[0]->offset + total) return 0;
    total += t->numel;
  }
  gam_tensor *v = gam__alias(ts[0], 1, &total, 0);
  if (!v) return -1;
  *out = v;
  return 0;
}

/* dst = src: the copy the fused passes are measured against (same threading). */
int gam_opt_copy(gam_tensor *dst, const gam_tensor *src) {
  call c;
  GAM_TRY(first(&c, "opt_copy", dst, "destination"));
  GAM_TRY(vec(&c, src, "source"));
  return gam__be(dst)->opt_copy(gam__f32(dst), gam__f32(src), c.n);
}

/* ---- the scalars block -------------------------------------------------------- */
/* (gam_zeros refuses an unknown device) */
int gam_opt_scalars(gam_tensor **out, int device) {
  GAM_CHECK(out, "opt_scalars: no output given");
  int64_t n = GAM_OPT_NSCALARS;
  return gam_zeros(out, GAM_INT64, device, 1, &n);
}

int gam_opt_read(const gam_tensor *s, double *out) {
  GAM_CHECK(out, "opt_read: no output given");
  GAM_TRY(block(s, "opt_read", -1));
  return gam__be(s)->opt_read(out, slots(s));
}

int gam_opt_clear(gam_tensor *s) {
  GAM_TRY(block(s, "opt_clear", -1));
  return gam__be(s)->opt_clear(slots(s));
}

int gam_opt_check_loss(gam_tensor *s, const gam_tensor *loss, int code, int keep) {
  GAM_TRY(gam__check_float_dev(loss, "opt_check_loss", "loss"));
  char b[160];
  GAM_CHECK(loss->numel == 1, "opt_check_loss: loss must be a scalar, got %s", gam__shape_str(loss, b));
  GAM_TRY(block(s, "opt_check_loss", loss->device));
  return gam__be(s)->opt_check_loss(slots(s), gam__f32(loss), code, keep);
}

/* ---- sharpness-aware passes ------------------------------------------------------ */

/* s[NORM] = ‖g ⊙ |w|‖ (w NULL: ‖g‖), accumulated in double. */
int gam_opt_norm_s(gam_tensor *s, const gam_tensor *g, const gam_tensor *w, int code) {
  call c;
  GAM_TRY(first(&c, "opt_norm", g, "gradient"));
  GAM_TRY(opt_vec(&c, w, "weights"));
  GAM_TRY(block(s, c.op, c.device));
  return gam__be(g)->opt_norm(slots(s), gam__f32(g), fp(w), c.n, code);
}

/* theta_save = θ (optional); g_save = g (optional);
 * θ += scale · g · (adaptive ? θ² : 1), scale = coef (s: the block it reads, or NULL). */
static int ascend(gam_tensor *theta, gam_tensor *theta_save, const gam_tensor *g, gam_tensor *g_save,
                  gam_coef coef, const gam_tensor *s, int adaptive) {
  call c;
  GAM_TRY(first(&c, "opt_ascend", theta, "parameters"));
  if (s) GAM_TRY(block(s, c.op, c.device));
  GAM_TRY(vec(&c, g, "gradient"));
  GAM_TRY(opt_vec(&c, theta_save, "parameter copy"));
  GAM_TRY(opt_vec(&c, g_save, "gradient copy"));
  GAM_CHECK(theta_save || !g_save, "opt_ascend: a gradient copy needs a parameter copy too");
  return gam__be(theta)->opt_ascend(gam__f32(theta), fp(theta_save), gam__f32(g), fp(g_save), c.n, coef,
                                    adaptive);
}

/* the scale rho / (s[NORM] + ξ) */
int gam_opt_ascend_s(gam_tensor *theta, gam_tensor *theta_save, const gam_tensor *g, gam_tensor *g_save,
                     double rho, const gam_tensor *s, int adaptive) {
  GAM_TRY(block(s, "opt_ascend", -1));
  return ascend(theta, theta_save, g, g_save, radius(rho, s), s, adaptive);
}

/* s[AA, AB, BB] = {‖a‖², ⟨a,b⟩, ‖b‖²}, accumulated in double. */
int gam_opt_dot3_s(gam_tensor *s, const gam_tensor *a, const gam_tensor *b, int code0, int code2) {
  call c;
  GAM_TRY(first(&c, "opt_dot3", a, "first vector"));
  GAM_TRY(vec(&c, b, "second vector"));
  GAM_TRY(block(s, c.op, c.device));
  return gam__be(a)->opt_dot3(slots(s), gam__f32(a), gam__f32(b), c.n, code0, code2);
}

/* h = h − weight · (v − c h): the gradient decomposition of GSAM (h = SAM's
 * gradient, v = the plain gradient) and of GAM (h = h+, v = h−), with
 * c = cos ‖v‖ / (‖h‖ + ξ) (coef). */
static int decompose(gam_tensor *h, const gam_tensor *v, double weight, gam_coef coef, const gam_tensor *s) {
  call c;
  GAM_TRY(first(&c, "opt_decompose", h, "direction"));
  GAM_TRY(vec(&c, v, "vertical source"));
  if (s) GAM_TRY(block(s, c.op, c.device));
  return gam__be(h)->opt_decompose(gam__f32(h), gam__f32(v), c.n, weight, coef);
}

/* c from the block's {‖h‖², ⟨h,v⟩, ‖v‖²} */
int gam_opt_decompose_s(gam_tensor *h, const gam_tensor *v, double weight, const gam_tensor *s) {
  GAM_TRY(block(s, "opt_decompose", -1));
  return decompose(h, v, weight, gam_coef_of(GAM_COEF_DECOMPOSE, 0, slots(s)), s);
}

/* GAM after pass 1 (g = g1): hplus = α g1 and
 * s[NORM] = ‖(g1 − g0) ⊙ |θ0|‖ (not adaptive: ‖g1 − g0‖; theta0 may be NULL). */
int gam_gam_pass1_s(gam_tensor *s, gam_tensor *hplus, const gam_tensor *g, const gam_tensor *g0,
                    const gam_tensor *theta0, double alpha, int adaptive, int code) {
  call c;
  GAM_TRY(first(&c, "gam_pass1", g, "gradient"));
  GAM_TRY(vec(&c, hplus, "h+ buffer"));
  GAM_TRY(vec(&c, g0, "g0 buffer"));
  GAM_TRY(adaptive ? vec(&c, theta0, "parameter copy") : opt_vec(&c, theta0, "parameter copy"));
  GAM_TRY(block(s, c.op, c.device));
  return gam__be(g)->opt_gam_pass1(slots(s), gam__f32(hplus), gam__f32(g), gam__f32(g0), fp(theta0), c.n,
                                   alpha, adaptive, code);
}

/* GAM's second perturbation, from the restored θ0:
 * θ = θ0 + scale · (g1 − g0) · (adaptive ? θ0² : 1). */
static int ascend_h0(gam_tensor *theta, const gam_tensor *theta0, const gam_tensor *g, const gam_tensor *g0,
                     gam_coef coef, const gam_tensor *s, int adaptive) {
  call c;
  GAM_TRY(first(&c, "gam_ascend_h0", theta, "parameters"));
  if (s) GAM_TRY(block(s, c.op, c.device));
  GAM_TRY(vec(&c, theta0, "parameter copy"));
  GAM_TRY(vec(&c, g, "gradient"));
  GAM_TRY(vec(&c, g0, "g0 buffer"));
  return gam__be(theta)->opt_gam_ascend_h0(gam__f32(theta), gam__f32(theta0), gam__f32(g), gam__f32(g0), c.n,
                                           coef, adaptive);
}

/* the scale rho / (s[NORM] + ξ) */
int gam_gam_ascend_h0_s(gam_tensor *theta, const gam_tensor *theta0, const gam_tensor *g,
                        const gam_tensor *g0, double rho, const gam_tensor *s, int adaptive) {
  GAM_TRY(block(s, "gam_ascend_h0", -1));
  return ascend_h0(theta, theta0, g, g0, radius(rho, s), s, adaptive);
}

/* GAM after pass 2 (g = g2): the g0 buffer becomes h− = c0 g0 + c1 g2
 * (reference: c0 = 1, paper: c0 = β; c1 = 1 − β), and s[NORM] = ‖g2 ⊙ |θ2|‖
 * (not adaptive: ‖g2‖; theta may be NULL), θ2 being the current weights. */
int gam_gam_pass2_s(gam_tensor *s, gam_tensor *g0_hminus, const gam_tensor *g, const gam_tensor *theta,
                    double c0, double c1, int adaptive, int code) {
  call c;
  GAM_TRY(first(&c, "gam_pass2", g, "gradient"));
  GAM_TRY(vec(&c, g0_hminus, "g0 buffer"));
  GAM_TRY(adaptive ? vec(&c, theta, "parameters") : opt_vec(&c, theta, "parameters"));
  GAM_TRY(block(s, c.op, c.device));
  return gam__be(g)->opt_gam_pass2(slots(s), gam__f32(g0_hminus), gam__f32(g), fp(theta), c.n, c0, c1,
                                   adaptive, code);
}

/* GAM after pass 3 (g = g3): g = h+ = hplus + c g3 (c = 1 − α), and
 * s[AA, AB, BB] = {‖h+‖², ⟨h+,h−⟩, ‖h−‖²}. */
int gam_gam_pass3_s(gam_tensor *s, gam_tensor *g, const gam_tensor *hplus, const gam_tensor *hminus,
                    double cc, int code0, int code2) {
  call c;
  GAM_TRY(first(&c, "gam_pass3", g, "gradient"));
  GAM_TRY(vec(&c, hplus, "h+ buffer"));
  GAM_TRY(vec(&c, hminus, "h- buffer"));
  GAM_TRY(block(s, c.op, c.device));
  return gam__be(g)->opt_gam_pass3(slots(s), gam__f32(g), gam__f32(hplus), gam__f32(hminus), c.n, cc, code0,
                                   code2);
}

/* ---- base optimisers (PyTorch's update rules, optim_math.h) ------------------------
 * guard (NULL: none): a scalars block whose flag, when set, turns the step
 * into param = src, leaving the optimiser state alone. */
int gam_sgd_step_s(gam_tensor *param, const gam_tensor *grad, gam_tensor *momentum_buf, const gam_tensor *src,
                   double lr, double momentum, double dampening, double weight_decay, int nesterov,
                   int first_step, const gam_tensor *guard) {
  call c;
  GAM_TRY(first(&c, "sgd", param, "parameter"));
  if (guard) GAM_TRY(block(guard, c.op, c.device));
  GAM_TRY(vec(&c, grad, "gradient"));
  GAM_TRY(opt_vec(&c, src, "start point"));
  GAM_CHECK(momentum == 0 || momentum_buf, "sgd: momentum %g needs a momentum buffer", momentum);
  GAM_TRY(opt_vec(&c, momentum_buf, "momentum buffer"));
  /* momentum 0 keeps no buffer: the plain rule */
  return gam__be(param)->opt_sgd_step(gam__f32(param), gam__f32(grad),
                                      momentum == 0 ? NULL : fp(momentum_buf), fp(src), c.n, lr, momentum,
                                      dampening, weight_decay, nesterov, first_step, slots(guard));
}

int gam_adam_step_s(gam_tensor *param, const gam_tensor *grad, gam_tensor *exp_avg, gam_tensor *exp_avg_sq,
                    const gam_tensor *src, double lr, double beta1, double beta2, double eps,
                    double weight_decay, int decoupled, int64_t step, const gam_tensor *guard) {
  call c;
  GAM_TRY(first(&c, decoupled ? "adamw" : "adam", param, "parameter"));
  if (guard) GAM_TRY(block(guard, c.op, c.device));
  GAM_TRY(vec(&c, grad, "gradient"));
  GAM_TRY(vec(&c, exp_avg, "exp_avg"));
  GAM_TRY(vec(&c, exp_avg_sq, "exp_avg_sq"));
  GAM_TRY(opt_vec(&c, src, "start point"));
  GAM_CHECK(step >= 1, "%s: step must count from 1, got %lld", c.op, (long long)step);
  return gam__be(param)->opt_adam_step(gam__f32(param), gam__f32(grad), gam__f32(exp_avg),
                                       gam__f32(exp_avg_sq), fp(src), c.n, lr, beta1, beta2, eps,
                                       weight_decay, decoupled, step, slots(guard));
}

/* the base steps without a guard (gam.h) */
int gam_sgd_step(gam_tensor *param, const gam_tensor *grad, gam_tensor *momentum_buf, const gam_tensor *src,
                 double lr, double momentum, double dampening, double weight_decay, int nesterov,
                 int first_step) {
  return gam_sgd_step_s(param, grad, momentum_buf, src, lr, momentum, dampening, weight_decay, nesterov,
                        first_step, NULL);
}

int gam_adam_step(gam_tensor *param, const gam_tensor *grad, gam_tensor *exp_avg, gam_tensor *exp_avg_sq,
                  const gam_tensor *src, double lr, double beta1, double beta2, double eps,
                  double weight_decay, int decoupled, int64_t step) {
  return gam_adam_step_s(param, grad, exp_avg, exp_avg_sq, src, lr, beta1, beta2, eps, weight_decay,
                         decoupled, step, NULL);
}

/* ---- the host-scalar forms taking a coefficient (gam_test.h) ----------------------
 * The others, compositions of the _s forms above, are in optim_test.c. */
int gam_opt_ascend(gam_tensor *theta, gam_tensor *theta_save, const gam_tensor *g, gam_tensor *g_save,
                   double scale, int adaptive) {
  return ascend(theta, theta_save, g, g_save, value(scale), NULL, adaptive);
}

int gam_gam_ascend_h0(gam_tensor *theta, const gam_tensor *theta0, const gam_tensor *g, const gam_tensor *g0,
                      double scale, int adaptive) {
  return ascend_h0(theta, theta0, g, g0, value(scale), NULL, adaptive);
}

int gam_opt_decompose(gam_tensor *h, const gam_tensor *v, double weight, double c) {
  return decompose(h, v, weight, value(c), NULL);
}
