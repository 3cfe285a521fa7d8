// linalg.cu — row-major sgemm through cuBLAS.
//
// cuBLAS is column-major. A row-major matrix X[r,c] read column-major is
// X^T, so row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T:
// cublasSgemm with the operands swapped and m, n exchanged. The handle runs in
// CUBLAS_DEFAULT_MATH (runtime.cu): full float32, no TF32.
#include "common.cuh"
#include <cublas_v2.h>
#include <limits.h>

extern "C" int gam_cuda_gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, const float *b,
                             float *c, float beta) {
  if (m <= 0 || n <= 0) return 0;
  if (k <= 0) // C = beta C: nothing to add
    return beta == 0.f ? gam_cuda__memset(c, 0, (size_t)(m * n) * sizeof(float), "matmul") : 0;
  if (m > INT_MAX || n > INT_MAX || k > INT_MAX)
    return gam__err("matmul: [%lld,%lld]x[%lld,%lld] exceeds cuBLAS's 32-bit sizes", (long long)m,
                    (long long)k, (long long)k, (long long)n);
  void *h;
  if (gam_cuda__cublas(&h) != 0) return -1;
  const float alpha = 1.f;
  // A stored [m,k] (ld k) or, with ta, [k,m] (ld m); B stored [k,n] (ld n) or, with tb, [n,k] (ld k)
  cublasStatus_t st =
      cublasSgemm((cublasHandle_t)h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n,
                  (int)m, (int)k, &alpha, b, tb ? (int)k : (int)n, a, ta ? (int)m : (int)k, &beta, c, (int)n);
  if (st != CUBLAS_STATUS_SUCCESS)
    return gam__err("matmul: cuBLAS sgemm failed: %s", cublasGetStatusString(st));
  return gamk::launched("matmul");
}
