/* ops_linalg.c — matmul and linear through sgemm: OpenBLAS on the cpu, cuBLAS
 * (full float32, no TF32) on the cuda device. */
#include "backend.h"
#include <cblas.h>

/* C[m,n] = op(A) op(B) + beta C, row-major (OpenBLAS) */
int gam_cpu_gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, const float *b, float *c,
                 float beta) {
  if (m == 0 || n == 0) return 0;
  if (k == 0) { /* sgemm leaves C alone for k = 0 */
    if (beta == 0.f) memset(c, 0, (size_t)(m * n) * sizeof(float));
    return 0;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)m,
              (blasint)n, (blasint)k, 1.0f, a, ta ? (blasint)m : (blasint)k, b, tb ? (blasint)k : (blasint)n,
              beta, c, (blasint)n);
  return 0;
}

static int accumulate_new(gam_node *n, int i, gam_tensor *g) {
  int rc = gam__accumulate(n, i, g);
  gam_release(g);
  return rc;
}

/* ---- matmul: a[m,k] b[k,n] -> [m,n] -------------------------------------- */
static int matmul_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *a = n->inputs[0], *b = n->inputs[1];
  int64_t m = a->shape[0], k = a->shape[1], nn = b->shape[1];
  if (gam__input_needs_grad(n, 0)) { /* ga = g b^T */
    gam_tensor *ga = gam__new_like(a);
    if (!ga) return -1;
    if (gam__be(a)->gemm(0, 1, m, k, nn, gam__f32(g), gam__f32(b), gam__f32(ga), 0.f) != 0)
      return gam__fail(1, ga);
    GAM_TRY(accumulate_new(n, 0, ga));
  }
  if (gam__input_needs_grad(n, 1)) { /* gb = a^T g */
    gam_tensor *gb = gam__new_like(b);
    if (!gb) return -1;
    if (gam__be(b)->gemm(1, 0, k, nn, m, gam__f32(a), gam__f32(g), gam__f32(gb), 0.f) != 0)
      return gam__fail(1, gb);
    GAM_TRY(accumulate_new(n, 1, gb));
  }
  return 0;
}

int gam_matmul(gam_tensor **out, gam_tensor *a, gam_tensor *b) {
  GAM_TRY(gam__check_float_dev(a, "matmul", "first operand"));
  GAM_TRY(gam__check_float_dev(b, "matmul", "second operand"));
  GAM_TRY(gam__same_device("matmul", a, b));
  char b1[160], b2[160];
  GAM_CHECK(a->ndim == 2 && b->ndim == 2 && a->shape[1] == b->shape[0],
            "matmul: shapes %s and %s do not multiply (expected [m,k] and [k,n])", gam__shape_str(a, b1),
            gam__shape_str(b, b2));
  int64_t shape[2] = {a->shape[0], b->shape[1]};
  gam_tensor *r = gam__new(GAM_FLOAT32, a->device, 2, shape);
  if (!r) return -1;
  if (gam__be(a)->gemm(0, 0, shape[0], shape[1], a->shape[1], gam__f32(a), gam__f32(b), gam__f32(r), 0.f) !=
      0)
    return gam__fail(1, r);
  gam_tensor *in[2] = {a, b};
  if (gam__grad_needed(2, in) && !gam__record(r, "matmul", matmul_backward, 2, in)) return gam__fail(1, r);
  *out = r;
  return 0;
}

/* ---- linear: x[n,in] w[out,in] b[out] -> x w^T + b [n,out] ------------------ */
static int linear_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *x = n->inputs[0], *w = n->inputs[1];
  int64_t rows = x->shape[0], in = x->shape[1], outf = w->shape[0];
  if (gam__input_needs_grad(n, 0)) { /* gx = g w */
    gam_tensor *gx = gam__new_like(x);
    if (!gx) return -1;
    if (gam__be(x)->gemm(0, 0, rows, in, outf, gam__f32(g), gam__f32(w), gam__f32(gx), 0.f) != 0)
      return gam__fail(1, gx);
    GAM_TRY(accumulate_new(n, 0, gx));
  }
  if (gam__input_needs_grad(n, 1)) { /* gw = g^T x */
    gam_tensor *gw = gam__new_like(w);
    if (!gw) return -1;
    if (gam__be(w)->gemm(1, 0, outf, in, rows, gam__f32(g), gam__f32(x), gam__f32(gw), 0.f) != 0)
      return gam__fail(1, gw);
    GAM_TRY(accumulate_new(n, 1, gw));
  }
  if (n->ninputs > 2 && gam__input_needs_grad(n, 2)) { /* gb = column sums of g */
    gam_tensor *gb = gam__new_zeros_like(n->inputs[2]);
    if (!gb) return -1;
    if (gam__be(gb)->sum_rows(gam__f32(g), gam__f32(gb), rows, outf) != 0) return gam__fail(1, gb);
    GAM_TRY(accumulate_new(n, 2, gb));
  }
  return 0;
}

/* b[o] += sum_r g[r,o], row by row in float (b zeroed by the caller) */
int gam_cpu_sum_rows(const float *pg, float *pb, int64_t rows, int64_t outf) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t o = 0; o < outf; o++) pb[o] += pg[r * outf + o];
  return 0;
}

/* out[r,c] = row[c] */
int gam_cpu_repeat_rows(float *pr, const float *pb, int64_t rows, int64_t outf) {
  for (int64_t i = 0; i < rows; i++) memcpy(pr + i * outf, pb, (size_t)outf * sizeof(float));
  return 0;
}

int gam_linear(gam_tensor **out, gam_tensor *x, gam_tensor *w, gam_tensor *b) {
  GAM_TRY(gam__check_float_dev(x, "linear", "input"));
  GAM_TRY(gam__check_float_dev(w, "linear", "weight"));
  GAM_CHECK(x->device == w->device, "linear: input is on %s, weight on %s", gam__device_name(x->device),
            gam__device_name(w->device));
  char b1[160], b2[160];
  GAM_CHECK(w->ndim == 2, "linear: weight must be [out, in], got %s", gam__shape_str(w, b1));
  GAM_CHECK(x->ndim == 2 && x->shape[1] == w->shape[1],
            "linear: input %s does not match weight %s (expected input [n, %lld])", gam__shape_str(x, b1),
            gam__shape_str(w, b2), (long long)w->shape[1]);
  if (b) {
    GAM_TRY(gam__check_float_dev(b, "linear", "bias"));
    GAM_CHECK(b->device == w->device, "linear: bias is on %s, weight on %s", gam__device_name(b->device),
              gam__device_name(w->device));
    GAM_CHECK(b->ndim == 1 && b->shape[0] == w->shape[0],
              "linear: bias %s does not match weight %s (expected [%lld])", gam__shape_str(b, b1),
              gam__shape_str(w, b2), (long long)w->shape[0]);
  }
  int64_t rows = x->shape[0], outf = w->shape[0], shape[2] = {rows, outf};
  gam_tensor *r = gam__new(GAM_FLOAT32, x->device, 2, shape);
  if (!r) return -1;
  float *pr = gam__f32(r);
  const gam_backend *be = gam__be(r);
  if (b && be->repeat_rows(pr, gam__f32(b), rows, outf) != 0) return gam__fail(1, r);
  if (be->gemm(0, 1, rows, outf, x->shape[1], gam__f32(x), gam__f32(w), pr, b ? 1.f : 0.f) != 0)
    return gam__fail(1, r);
  gam_tensor *in[3] = {x, w, b};
  int nin = b ? 3 : 2;
  if (gam__grad_needed(nin, in) && !gam__record(r, "linear", linear_backward, nin, in))
    return gam__fail(1, r);
  *out = r;
  return 0;
}
