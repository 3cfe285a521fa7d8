// elementwise.cu — binary ops with broadcasting, unary and scalar ops and
// their gradients, axpy. The formulas are those of ops_elementwise.c, written
// the same way, so the two backends round alike (up to the last bit of exp,
// log and pow, and fused multiply-adds).
#include "common.cuh"

using gamk::blocks_for;
using gamk::kThreads;

namespace {

// Output shape and the element strides of a and b per dim (0 where broadcast),
// outermost first, after merging dims that are contiguous in both; in index
// type I (int32_t when the output's count and both inputs' furthest offsets fit).
template <typename I>
struct Bcast {
  int ndim;
  I shape[GAM_MAX_DIMS];
  I sa[GAM_MAX_DIMS];
  I sb[GAM_MAX_DIMS];
};

template <int OP>
__device__ __forceinline__ float binary_op(float x, float y) {
  if (OP == GAM_BIN_ADD) return x + y;
  if (OP == GAM_BIN_SUB) return x - y;
  if (OP == GAM_BIN_MUL) return x * y;
  return x / y;
}

template <int OP>
__global__ void binary_same_kernel(const float *a, const float *b, float *o, int64_t n) {
  GAM_GRID_LOOP(i, n) o[i] = binary_op<OP>(a[i], b[i]);
}

template <int OP, typename I>
__global__ void binary_bcast_kernel(const float *a, const float *b, float *o, int64_t n, Bcast<I> bc) {
  GAM_GRID_LOOP_T(I, i, n) {
    I rem = i, oa = 0, ob = 0;
    for (int d = bc.ndim - 1; d >= 0; d--) {
      I k = rem % bc.shape[d];
      rem /= bc.shape[d];
      oa += k * bc.sa[d];
      ob += k * bc.sb[d];
    }
    o[i] = binary_op<OP>(a[oa], b[ob]);
  }
}

template <typename I>
Bcast<I> narrow(const Bcast<int64_t> &w) {
  Bcast<I> bc;
  bc.ndim = w.ndim;
  for (int k = 0; k < GAM_MAX_DIMS; k++)
    bc.shape[k] = (I)w.shape[k], bc.sa[k] = (I)w.sa[k], bc.sb[k] = (I)w.sb[k];
  return bc;
}

template <int OP>
int binary_launch(const float *a, const float *b, float *o, int64_t n, const Bcast<int64_t> &bc) {
  cudaStream_t s = gamk::stream();
  if (bc.ndim == 1 && bc.sa[0] == 1 && bc.sb[0] == 1) {
    binary_same_kernel<OP><<<blocks_for(n), kThreads, 0, s>>>(a, b, o, n);
    return 0;
  }
  // the furthest element each input reaches (strides are >= 0)
  int64_t far_a = 0, far_b = 0;
  for (int d = 0; d < bc.ndim; d++)
    far_a += (bc.shape[d] - 1) * bc.sa[d], far_b += (bc.shape[d] - 1) * bc.sb[d];
  if (gamk::fits32(n) && gamk::fits32(far_a + 1) && gamk::fits32(far_b + 1))
    binary_bcast_kernel<OP, int32_t><<<blocks_for(n), kThreads, 0, s>>>(a, b, o, n, narrow<int32_t>(bc));
  else
    binary_bcast_kernel<OP, int64_t><<<blocks_for(n), kThreads, 0, s>>>(a, b, o, n, bc);
  return 0;
}

__device__ __forceinline__ float unary_op(int op, float v, float s) {
  switch (op) {
    case GAM_UN_NEG:
      return -v;
    case GAM_UN_EXP:
      return expf(v);
    case GAM_UN_LOG:
      return logf(v);
    case GAM_UN_SQRT:
      return sqrtf(v);
    case GAM_UN_ABS:
      return fabsf(v);
    case GAM_UN_RELU:
      return v > 0.f ? v : 0.f;
    case GAM_UN_POW:
      return s == 2.f ? v * v : powf(v, s);
    case GAM_UN_ADDS:
      return v + s;
    case GAM_UN_MULS:
      return v * s;
    case GAM_UN_RSUB:
      return s - v;
    default:
      return s / v; // GAM_UN_RDIV
  }
}

// g * dy/dx from x and y = f(x)
__device__ __forceinline__ float unary_grad_op(int op, float g, float x, float y, float s) {
  switch (op) {
    case GAM_UN_NEG:
      return -g;
    case GAM_UN_EXP:
      return g * y;
    case GAM_UN_LOG:
      return g / x;
    case GAM_UN_SQRT:
      return g * 0.5f / y;
    case GAM_UN_ABS:
      return x > 0.f ? g : x < 0.f ? -g : 0.f;
    case GAM_UN_RELU:
      return y > 0.f ? g : 0.f;
    case GAM_UN_POW:
      return g * s * powf(x, s - 1.f);
    case GAM_UN_ADDS:
      return g;
    case GAM_UN_MULS:
      return g * s;
    case GAM_UN_RSUB:
      return -g;
    default:
      return -g * y / x; // d(s/x) = -s/x^2 = -y/x
  }
}

__global__ void unary_kernel(int op, const float *x, float *y, int64_t n, float s) {
  GAM_GRID_LOOP(i, n) y[i] = unary_op(op, x[i], s);
}

__global__ void unary_grad_kernel(int op, const float *g, const float *x, const float *y, float *gx,
                                  int64_t n, float s) {
  GAM_GRID_LOOP(i, n) gx[i] = unary_grad_op(op, g[i], x[i], y ? y[i] : 0.f, s);
}

__global__ void axpy_kernel(float *a, const float *b, float alpha, int64_t n) {
  GAM_GRID_LOOP(i, n) a[i] += alpha * b[i];
}

} // namespace

extern "C" {

int gam_cuda_binary(int op, const float *a, const float *b, float *o, int ndim, const int64_t *shape,
                    const int64_t *sa, const int64_t *sb, int64_t n) {
  if (n <= 0) return 0;
  if (ndim < 0 || ndim > GAM_MAX_DIMS) return gam__err("binary op: %d dims", ndim);
  // Merge dims, innermost first: size-1 dims index nothing; dim d folds into
  // the merged dim inside it when its strides continue that dim's in a and b
  // (zero strides continue zero strides).
  int64_t sh[GAM_MAX_DIMS], xa[GAM_MAX_DIMS], xb[GAM_MAX_DIMS];
  int m = 0;
  for (int d = ndim - 1; d >= 0; d--) {
    if (shape[d] == 1) continue;
    if (m > 0 && sa[d] == xa[m - 1] * sh[m - 1] && sb[d] == xb[m - 1] * sh[m - 1]) {
      sh[m - 1] *= shape[d];
      continue;
    }
    sh[m] = shape[d];
    xa[m] = sa[d];
    xb[m] = sb[d];
    m++;
  }
  Bcast<int64_t> bc;
  bc.ndim = m;
  for (int k = 0; k < m; k++) { // outermost first
    bc.shape[k] = sh[m - 1 - k];
    bc.sa[k] = xa[m - 1 - k];
    bc.sb[k] = xb[m - 1 - k];
  }
  for (int k = m; k < GAM_MAX_DIMS; k++) bc.shape[k] = 1, bc.sa[k] = 0, bc.sb[k] = 0;
  static const char *names[] = {"add", "sub", "mul", "div"};
  switch (op) {
    case GAM_BIN_ADD:
      binary_launch<GAM_BIN_ADD>(a, b, o, n, bc);
      break;
    case GAM_BIN_SUB:
      binary_launch<GAM_BIN_SUB>(a, b, o, n, bc);
      break;
    case GAM_BIN_MUL:
      binary_launch<GAM_BIN_MUL>(a, b, o, n, bc);
      break;
    case GAM_BIN_DIV:
      binary_launch<GAM_BIN_DIV>(a, b, o, n, bc);
      break;
    default:
      return gam__err("binary op: unknown op %d", op);
  }
  return gamk::launched(names[op]);
}

int gam_cuda_unary(int op, const float *x, float *y, int64_t n, float s) {
  if (n <= 0) return 0;
  unary_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(op, x, y, n, s);
  return gamk::launched("unary op");
}

int gam_cuda_unary_grad(int op, const float *g, const float *x, const float *y, float *gx, int64_t n,
                        float s) {
  if (n <= 0) return 0;
  unary_grad_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(op, g, x, y, gx, n, s);
  return gamk::launched("unary op backward");
}

int gam_cuda_axpy(float *a, const float *b, float alpha, int64_t n) {
  if (n <= 0) return 0;
  axpy_kernel<<<blocks_for(n), kThreads, 0, gamk::stream()>>>(a, b, alpha, n);
  return gamk::launched("add_");
}

} // extern "C"
