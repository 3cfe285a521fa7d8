/* ops_elementwise.c — binary ops with broadcasting, unary and scalar ops.
 *
 * Broadcasting follows PyTorch: shapes align on their trailing dims; a dim of
 * size 1 (or a missing leading dim) stretches. Backward sums the gradient
 * back over the stretched dims. */
#include "backend.h"
#include <math.h>

enum { OP_ADD = GAM_BIN_ADD, OP_SUB = GAM_BIN_SUB, OP_MUL = GAM_BIN_MUL, OP_DIV = GAM_BIN_DIV };
static const char *binary_names[] = {"add", "sub", "mul", "div"};

static inline float apply(int op, float x, float y) {
  switch (op) {
    case OP_ADD:
      return x + y;
    case OP_SUB:
      return x - y;
    case OP_MUL:
      return x * y;
    default:
      return x / y;
  }
}

/* out[i] = a[i*sa] op b[i*sb] for i < n; sa, sb are 0 or 1 */
static void run(int op, const float *a, int64_t sa, const float *b, int64_t sb, float *o, int64_t n) {
  if (sa && sb) {
    switch (op) {
      case OP_ADD:
        for (int64_t i = 0; i < n; i++) o[i] = a[i] + b[i];
        break;
      case OP_SUB:
        for (int64_t i = 0; i < n; i++) o[i] = a[i] - b[i];
        break;
      case OP_MUL:
        for (int64_t i = 0; i < n; i++) o[i] = a[i] * b[i];
        break;
      default:
        for (int64_t i = 0; i < n; i++) o[i] = a[i] / b[i];
    }
  } else if (sa) {
    float y = b[0];
    for (int64_t i = 0; i < n; i++) o[i] = apply(op, a[i], y);
  } else if (sb) {
    float x = a[0];
    for (int64_t i = 0; i < n; i++) o[i] = apply(op, x, b[i]);
  } else {
    float v = apply(op, a[0], b[0]);
    for (int64_t i = 0; i < n; i++) o[i] = v;
  }
}

static int broadcast_shape(const char *op, const gam_tensor *a, const gam_tensor *b, int *ndim,
                           int64_t *shape) {
  int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
  char b1[160], b2[160];
  for (int d = 0; d < nd; d++) {
    int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
    int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
    GAM_CHECK(sa == sb || sa == 1 || sb == 1, "%s: shapes %s and %s do not broadcast (dim %d: %lld vs %lld)",
              op, gam__shape_str(a, b1), gam__shape_str(b, b2), d + 1, (long long)sa, (long long)sb);
    shape[d] = sa == 1 ? sb : sa;
  }
  *ndim = nd;
  return 0;
}

/* Forward of a binary op into a fresh tensor, no autograd. */
static int binary_forward(gam_tensor **out, int op, gam_tensor *a, gam_tensor *b) {
  const char *name = binary_names[op];
  GAM_TRY(gam__check_float_dev(a, name, "first operand"));
  GAM_TRY(gam__check_float_dev(b, name, "second operand"));
  GAM_TRY(gam__same_device(name, a, b));
  int nd = 0;
  int64_t shape[GAM_MAX_DIMS];
  GAM_TRY(broadcast_shape(name, a, b, &nd, shape));
  gam_tensor *r = gam__new(GAM_FLOAT32, a->device, nd, shape);
  if (!r) return -1;
  int64_t n = r->numel;
  if (n == 0) {
    *out = r;
    return 0;
  }
  /* strides of a and b per output dim (0 where broadcast) */
  int64_t sa[GAM_MAX_DIMS], sb[GAM_MAX_DIMS], ka = 1, kb = 1;
  for (int d = nd - 1; d >= 0; d--) {
    int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
    int64_t za = da >= 0 ? a->shape[da] : 1, zb = db >= 0 ? b->shape[db] : 1;
    sa[d] = za == 1 ? 0 : ka;
    sb[d] = zb == 1 ? 0 : kb;
    ka *= za;
    kb *= zb;
  }
  if (gam__be(r)->binary(op, gam__f32(a), gam__f32(b), gam__f32(r), nd, shape, sa, sb, n) != 0)
    return gam__fail(1, r);
  *out = r;
  return 0;
}

/* o[i] = a[.] op b[.] over the output shape (ndim dims, n >= 1 elements);
 * sa/sb: the element strides of a and b per output dim, 0 where broadcast */
int gam_cpu_binary(int op, const float *pa, const float *pb, float *po, int nd, const int64_t *shape,
                   const int64_t *sa, const int64_t *sb, int64_t n) {
  int full_a = 1, full_b = 1; /* not broadcast in any dim: a->numel == n */
  for (int d = 0; d < nd; d++) {
    full_a &= sa[d] != 0 || shape[d] == 1;
    full_b &= sb[d] != 0 || shape[d] == 1;
  }
  if (full_a && full_b) {
#pragma omp parallel for if (n > GAM_PAR_MIN)
    for (int64_t c = 0; c < n; c += 4096) run(op, pa + c, 1, pb + c, 1, po + c, n - c < 4096 ? n - c : 4096);
    return 0;
  }
  /* merge trailing dims that are contiguous (or broadcast) in both into one run */
  int inner_from = nd - 1;
  int64_t inner = nd ? shape[nd - 1] : 1;
  int64_t isa = nd ? sa[nd - 1] : 0, isb = nd ? sb[nd - 1] : 0;
  while (inner_from > 0) {
    int d = inner_from - 1;
    int ok_a = (isa == 0 && sa[d] == 0) || (isa == 1 && sa[d] == inner);
    int ok_b = (isb == 0 && sb[d] == 0) || (isb == 1 && sb[d] == inner);
    if (!ok_a || !ok_b) break;
    inner *= shape[d];
    inner_from = d;
  }
  int64_t rows = n / inner;
#pragma omp parallel for if (n > GAM_PAR_MIN)
  for (int64_t r0 = 0; r0 < rows; r0++) {
    int64_t rem = r0, oa = 0, ob = 0;
    for (int d = inner_from - 1; d >= 0; d--) {
      int64_t i = rem % shape[d];
      rem /= shape[d];
      oa += i * sa[d];
      ob += i * sb[d];
    }
    run(op, pa + oa, isa, pb + ob, isb, po + r0 * inner, inner);
  }
  return 0;
}

static int accumulate_reduced(gam_node *n, int i, gam_tensor *g) {
  gam_tensor *x = n->inputs[i], *r;
  GAM_TRY(gam__reduce_to_shape(&r, g, x->ndim, x->shape));
  int rc = gam__accumulate(n, i, r);
  gam_release(r);
  return rc;
}

typedef struct binary_ctx {
  int op;
} binary_ctx; /* OP_* */

static int binary_backward(gam_node *n, gam_tensor *g) {
  int op = ((const binary_ctx *)n->ctx)->op;
  gam_tensor *a = n->inputs[0], *b = n->inputs[1], *t = NULL, *u = NULL;
  int rc = 0;
  if (gam__input_needs_grad(n, 0)) {
    if (op == OP_ADD || op == OP_SUB)
      rc = accumulate_reduced(n, 0, g);
    else {
      rc = binary_forward(&t, op == OP_MUL ? OP_MUL : OP_DIV, g, b); /* g*b or g/b */
      if (!rc) rc = accumulate_reduced(n, 0, t);
      gam_release(t);
      t = NULL;
    }
    GAM_TRY(rc);
  }
  if (gam__input_needs_grad(n, 1)) {
    if (op == OP_ADD)
      rc = accumulate_reduced(n, 1, g);
    else if (op == OP_SUB) {
      rc = gam_neg(&t, g);
      if (!rc) rc = accumulate_reduced(n, 1, t);
    } else if (op == OP_MUL) {
      rc = binary_forward(&t, OP_MUL, g, a);
      if (!rc) rc = accumulate_reduced(n, 1, t);
    } else { /* d(a/b)/db = -a/b^2 = -(a/b)/b */
      rc = binary_forward(&t, OP_DIV, a, b);
      if (!rc) rc = binary_forward(&u, OP_DIV, t, b);
      gam_release(t);
      t = NULL;
      if (!rc) rc = binary_forward(&t, OP_MUL, g, u);
      if (!rc) rc = gam__be(t)->unary(GAM_UN_NEG, gam__f32(t), gam__f32(t), t->numel, 0.f);
      if (!rc) rc = accumulate_reduced(n, 1, t);
      gam_release(u);
    }
    gam_release(t);
  }
  return rc;
}

static int binary(gam_tensor **out, int op, gam_tensor *a, gam_tensor *b) {
  gam_tensor *r;
  GAM_TRY(binary_forward(&r, op, a, b));
  gam_tensor *in[2] = {a, b};
  if (gam__grad_needed(2, in)) {
    gam_node *n = gam__record(r, binary_names[op], binary_backward, 2, in);
    binary_ctx *c = n ? gam__node_ctx(n, sizeof *c) : NULL;
    if (!c) return gam__fail(1, r);
    c->op = op;
  }
  *out = r;
  return 0;
}

int gam_add(gam_tensor **out, gam_tensor *a, gam_tensor *b) { return binary(out, OP_ADD, a, b); }
int gam_sub(gam_tensor **out, gam_tensor *a, gam_tensor *b) { return binary(out, OP_SUB, a, b); }
int gam_mul(gam_tensor **out, gam_tensor *a, gam_tensor *b) { return binary(out, OP_MUL, a, b); }
int gam_div(gam_tensor **out, gam_tensor *a, gam_tensor *b) { return binary(out, OP_DIV, a, b); }

int gam_add_(gam_tensor *a, gam_tensor *b, double alpha) {
  GAM_TRY(gam__check_float_dev(a, "add_", "destination"));
  GAM_TRY(gam__check_float_dev(b, "add_", "source"));
  GAM_TRY(gam__same_device("add_", a, b));
  char b1[160], b2[160];
  GAM_CHECK(a->numel == b->numel, "add_: destination %s and source %s differ in size", gam__shape_str(a, b1),
            gam__shape_str(b, b2));
  return gam__be(a)->axpy(gam__f32(a), gam__f32(b), (float)alpha, a->numel);
}

/* a += s b */
int gam_cpu_axpy(float *pa, const float *pb, float s, int64_t n) {
#pragma omp parallel for simd if (n > GAM_PAR_MIN)
  for (int64_t i = 0; i < n; i++) pa[i] += s * pb[i];
  return 0;
}

/* ---- unary and scalar ops -------------------------------------------------- */
enum {
  U_NEG = GAM_UN_NEG,
  U_EXP = GAM_UN_EXP,
  U_LOG = GAM_UN_LOG,
  U_SQRT = GAM_UN_SQRT,
  U_ABS = GAM_UN_ABS,
  U_RELU = GAM_UN_RELU,
  U_POW = GAM_UN_POW,
  U_ADDS = GAM_UN_ADDS,
  U_MULS = GAM_UN_MULS,
  U_RSUB = GAM_UN_RSUB,
  U_RDIV = GAM_UN_RDIV
};
static const char *unary_names[] = {"neg", "exp", "log", "sqrt", "abs", "relu",
                                    "pow", "add", "mul", "rsub", "rdiv"};

int gam_cpu_unary(int op, const float *x, float *y, int64_t n, float s) {
#define LOOP(expr)                                                                        \
  _Pragma("omp parallel for simd if (n > GAM_PAR_MIN)") for (int64_t i = 0; i < n; i++) { \
    float v = x[i];                                                                       \
    y[i] = (expr);                                                                        \
  }
  switch (op) {
    case U_NEG:
      LOOP(-v) break;
    case U_EXP:
      LOOP(expf(v)) break;
    case U_LOG:
      LOOP(logf(v)) break;
    case U_SQRT:
      LOOP(sqrtf(v)) break;
    case U_ABS:
      LOOP(fabsf(v)) break;
    case U_RELU:
      LOOP(v > 0.f ? v : 0.f) break;
    case U_POW:
      if (s == 2.f) {
        LOOP(v * v)
      } else {
        LOOP(powf(v, s))
      }
      break;
    case U_ADDS:
      LOOP(v + s) break;
    case U_MULS:
      LOOP(v * s) break;
    case U_RSUB:
      LOOP(s - v) break;
    default:
      LOOP(s / v) break;
  }
#undef LOOP
  return 0;
}

/* a gradient passed where the sign says so; both values are read first, so the
 * loops vectorise (a conditional read of g would be a mispredicted branch) */
static inline float pass_if_positive(float gv, float yv) { return yv > 0.f ? gv : 0.f; }
static inline float pass_signed(float gv, float xv) { return xv > 0.f ? gv : xv < 0.f ? -gv : 0.f; }

/* gx = g * dy/dx, from x, y = f(x) and the scalar */
int gam_cpu_unary_grad(int op, const float *g, const float *x, const float *y, float *gx, int64_t n,
                       float s) {
#define LOOP(expr) \
  _Pragma("omp parallel for simd if (n > GAM_PAR_MIN)") for (int64_t i = 0; i < n; i++) { gx[i] = (expr); }
  switch (op) {
    case U_NEG:
      LOOP(-g[i]) break;
    case U_EXP:
      LOOP(g[i] * y[i]) break;
    case U_LOG:
      LOOP(g[i] / x[i]) break;
    case U_SQRT:
      LOOP(g[i] * 0.5f / y[i]) break;
    case U_ABS:
      LOOP(pass_signed(g[i], x[i])) break;
    case U_RELU:
      LOOP(pass_if_positive(g[i], y[i])) break;
    case U_POW:
      LOOP(g[i] * s * powf(x[i], s - 1.f)) break;
    case U_ADDS:
      LOOP(g[i]) break;
    case U_MULS:
      LOOP(g[i] * s) break;
    case U_RSUB:
      LOOP(-g[i]) break;
    default:
      LOOP(-g[i] * y[i] / x[i]) break; /* d(s/x) = -s/x^2 = -y/x */
  }
#undef LOOP
  return 0;
}

/* the op (U_*) and its scalar (pow's exponent, the scalar ops' operand) */
typedef struct unary_ctx {
  int op;
  double s;
} unary_ctx;

static int unary_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *x = n->inputs[0], *y = n->saved[0];
  const unary_ctx *c = n->ctx;
  gam_tensor *gx = gam__new_like(x);
  if (!gx) return -1;
  if (gam__be(x)->unary_grad(c->op, gam__f32(g), gam__f32(x), y ? gam__f32(y) : NULL, gam__f32(gx), x->numel,
                             (float)c->s) != 0)
    return gam__fail(1, gx);
  int rc = gam__accumulate(n, 0, gx);
  gam_release(gx);
  return rc;
}

static int unary(gam_tensor **out, int op, gam_tensor *x, double s) {
  GAM_TRY(gam__check_float_dev(x, unary_names[op], "input"));
  GAM_CHECK(isfinite(s) || op == U_ADDS || op == U_MULS || op == U_RSUB || op == U_RDIV,
            "%s: exponent %g is not finite", unary_names[op], s);
  gam_tensor *y = gam__new_like(x);
  if (!y) return -1;
  if (gam__be(x)->unary(op, gam__f32(x), gam__f32(y), x->numel, (float)s) != 0) return gam__fail(1, y);
  if (gam__grad_needed(1, &x)) {
    gam_node *n = gam__record(y, unary_names[op], unary_backward, 1, &x);
    unary_ctx *c = n ? gam__node_ctx(n, sizeof *c) : NULL;
    if (!c) return gam__fail(1, y);
    c->op = op;
    c->s = s;
    int needs_y = op == U_EXP || op == U_SQRT || op == U_RELU || op == U_RDIV;
    if (needs_y && gam__save(n, 0, y) != 0) return gam__fail(1, y);
  }
  *out = y;
  return 0;
}

int gam_neg(gam_tensor **out, gam_tensor *a) { return unary(out, U_NEG, a, 0); }
int gam_exp(gam_tensor **out, gam_tensor *a) { return unary(out, U_EXP, a, 0); }
int gam_log(gam_tensor **out, gam_tensor *a) { return unary(out, U_LOG, a, 0); }
int gam_sqrt(gam_tensor **out, gam_tensor *a) { return unary(out, U_SQRT, a, 0); }
int gam_abs(gam_tensor **out, gam_tensor *a) { return unary(out, U_ABS, a, 0); }
int gam_relu(gam_tensor **out, gam_tensor *a) { return unary(out, U_RELU, a, 0); }
int gam_pow_scalar(gam_tensor **out, gam_tensor *a, double p) { return unary(out, U_POW, a, p); }
int gam_add_scalar(gam_tensor **out, gam_tensor *a, double s) { return unary(out, U_ADDS, a, s); }
int gam_mul_scalar(gam_tensor **out, gam_tensor *a, double s) { return unary(out, U_MULS, a, s); }
int gam_rsub_scalar(gam_tensor **out, gam_tensor *a, double s) { return unary(out, U_RSUB, a, s); }
int gam_rdiv_scalar(gam_tensor **out, gam_tensor *a, double s) { return unary(out, U_RDIV, a, s); }
