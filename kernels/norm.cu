// norm.cu — batch normalisation on the device, x and y viewed as [n, c, inner].
//
// Training runs through cuDNN (CUDNN_BATCHNORM_SPATIAL on an NCHW descriptor
// [n, c, inner, 1]): the batch mean and biased variance normalise; cuDNN
// saves the mean and 1/sqrt(var + eps) (our stats, [2, c]) for the backward
// pass, and moves the running statistics as
//   running = (1 - factor) running + factor batch,  factor = momentum,
// with the UNBIASED batch variance for running_var: PyTorch's semantics, the
// same as ops_norm.c. The caller passes NULL running pointers for momentum 0
// (and when there are none): cuDNN then updates a scratch pair instead, so the
// real statistics are never touched (not even (1 - 0) r + 0 s, which would
// turn -0 into +0 and let a NaN batch through) and stay bit for bit.
//
// Evaluation uses plain kernels with ops_norm.c's formulas in double:
// y = a x + s0 per channel with a = w / sqrt(rv + eps), s0 = b - rm a; its
// backward sums dy and dy (x - mean) per channel in two fixed stages
// (deterministic), accumulated in double.
#include "common.cuh"
#include <cudnn.h>
#include <limits.h>

using gamk::blocks_for;
using gamk::kThreads;

namespace {

constexpr int kBlock = 256; // threads of a per-channel reduction block (a power of two)

#define CUDNN_TRY(call, what)                                                           \
  do {                                                                                  \
    cudnnStatus_t st_ = (call);                                                         \
    if (st_ != CUDNN_STATUS_SUCCESS) {                                                  \
      rc = gam__err("batch_norm: cuDNN failed %s: %s", what, cudnnGetErrorString(st_)); \
      goto done;                                                                        \
    }                                                                                   \
  } while (0)

bool fits(int64_t n, int64_t c, int64_t inner) {
  return n >= 1 && c >= 1 && inner >= 1 && n <= INT_MAX && c * inner <= INT_MAX;
}

int too_big(int64_t n, int64_t c, int64_t inner) {
  return gam__err("batch_norm: input [%lld,%lld,%lld] exceeds cuDNN's 32-bit sizes", (long long)n,
                  (long long)c, (long long)inner);
}

// A device vector of c floats, all `value`, or NULL + error.
float *constant(int64_t c, float value) {
  float *p = (float *)gam__device_alloc((size_t)c * sizeof(float));
  if (p && gam_cuda_fill(p, GAM_FLOAT32, c, value) != 0) {
    gam__device_free(p, (size_t)c * sizeof(float));
    p = NULL;
  }
  return p;
}

// scratch of `bytes` when want is NULL (an output cuDNN writes but we do not need)
float *or_scratch(float *want, size_t bytes, float **scratch) {
  if (want) return want;
  *scratch = (float *)gam__device_alloc(bytes);
  return *scratch;
}

// ---- evaluation kernels ----------------------------------------------------------------
// per channel: stats (mean, invstd) and the affine map a, s0 (coef[c], coef[C + c])
__global__ void eval_coef_kernel(const float *w, const float *b, const float *rm, const float *rv, int64_t c,
                                 double eps, float *stats, float *coef) {
  GAM_GRID_LOOP(ch, c) {
    double mu = rm[ch], var = rv[ch];
    double invstd = 1.0 / sqrt(var + eps);
    stats[ch] = (float)mu;
    stats[c + ch] = (float)invstd;
    double scale = (w ? w[ch] : 1.0) * invstd;
    coef[ch] = (float)scale;
    coef[c + ch] = (float)((b ? b[ch] : 0.0) - mu * scale);
  }
}

// y = a[ch] x + s0[ch]  (s0 NULL: 0)
template <typename I>
__global__ void affine_kernel(const float *x, float *y, int64_t total, int64_t c, int64_t inner,
                              const float *a, const float *s0) {
  const I ci = (I)c, in = (I)inner;
  GAM_GRID_LOOP_T(I, i, total) {
    I ch = (i / in) % ci;
    y[i] = s0 ? a[ch] * x[i] + s0[ch] : a[ch] * x[i];
  }
}

// per channel a = (w or 1) invstd (the gradient's scale in evaluation)
__global__ void eval_grad_coef_kernel(const float *w, const float *stats, int64_t c, float *a) {
  GAM_GRID_LOOP(ch, c) a[ch] = (float)((w ? w[ch] : 1.0) * (double)stats[c + ch]);
}

// grid (channels, chunks): block (ch, k) sums dy and dy (x - mean) over the
// k-th chunk of the channel's m = n inner values (value j: row j / inner,
// column j % inner) into partial[(ch * chunks + k) * 2 + {0, 1}]
template <typename I>
__global__ void channel_sums_kernel(const float *x, const float *dy, const float *stats, int64_t n, int64_t c,
                                    int64_t inner, int64_t clen, double *partial) {
  __shared__ double sh[2 * kBlock];
  const int64_t ch = blockIdx.x, chunks = gridDim.y, k = blockIdx.y;
  const I m = (I)(n * inner), in = (I)inner, ci = (I)c, chi = (I)ch;
  const I j0 = (I)(k * clen), j1 = j0 + (I)clen < m ? j0 + (I)clen : m;
  const double mu = stats[ch];
  double sg = 0, sgx = 0;
  for (I j = j0 + threadIdx.x; j < j1; j += kBlock) {
    I i = ((j / in) * ci + chi) * in + j % in;
    double g = dy[i];
    sg += g;
    sgx += g * ((double)x[i] - mu);
  }
  const int t = threadIdx.x;
  sh[t] = sg;
  sh[kBlock + t] = sgx;
  __syncthreads();
  for (int w = kBlock / 2; w > 0; w >>= 1) {
    if (t < w) {
      sh[t] += sh[t + w];
      sh[kBlock + t] += sh[kBlock + t + w];
    }
    __syncthreads();
  }
  if (t == 0) {
    partial[(ch * chunks + k) * 2] = sh[0];
    partial[(ch * chunks + k) * 2 + 1] = sh[kBlock];
  }
}

// db = sum dy, dw = sum dy (x - mean) invstd, the chunks added in order
__global__ void channel_finish_kernel(const double *partial, int64_t c, int64_t chunks, const float *stats,
                                      float *dw, float *db) {
  GAM_GRID_LOOP(ch, c) {
    double sg = 0, sgx = 0;
    for (int64_t k = 0; k < chunks; k++) {
      sg += partial[(ch * chunks + k) * 2];
      sgx += partial[(ch * chunks + k) * 2 + 1];
    }
    if (db) db[ch] = (float)sg;
    if (dw) dw[ch] = (float)(sgx * (double)stats[c + ch]);
  }
}

// y = a x + s0 per channel, in 32-bit indices when the tensor allows
void affine(const float *x, float *y, int64_t total, int64_t c, int64_t inner, const float *a,
            const float *s0) {
  if (gamk::fits32(total))
    affine_kernel<int32_t><<<blocks_for(total), kThreads, 0, gamk::stream()>>>(x, y, total, c, inner, a, s0);
  else
    affine_kernel<int64_t><<<blocks_for(total), kThreads, 0, gamk::stream()>>>(x, y, total, c, inner, a, s0);
}

} // namespace

extern "C" {

int gam_cuda_bn_train_forward(const float *x, float *y, int64_t n, int64_t c, int64_t inner,
                              const float *weight, const float *bias, float *rm, float *rv, double momentum,
                              double eps, float *stats) {
  if (!fits(n, c, inner)) return too_big(n, c, inner);
  if (eps < CUDNN_BN_MIN_EPSILON)
    return gam__err("batch_norm: eps %g is below cuDNN's minimum %g", eps, (double)CUDNN_BN_MIN_EPSILON);
  void *hv;
  if (gam_cuda__cudnn(&hv, "batch_norm") != 0) return -1;
  cudnnHandle_t h = (cudnnHandle_t)hv;
  const float one = 1.f, zero = 0.f;
  const size_t cbytes = (size_t)c * sizeof(float);
  cudnnTensorDescriptor_t xd = NULL, bd = NULL;
  float *ones = NULL, *zeros = NULL, *scratch = NULL;
  int rc = 0;
  if (!weight && !(weight = ones = constant(c, 1.f))) return -1;
  if (!bias && !(bias = zeros = constant(c, 0.f))) {
    gam__device_free(ones, cbytes);
    return -1;
  }
  if (!rm) { /* statistics that must not move: cuDNN updates a scratch pair */
    if (!(scratch = constant(2 * c, 0.f))) {
      rc = -1;
      goto done;
    }
    rm = scratch;
    rv = scratch + c;
    momentum = 0;
  }
  CUDNN_TRY(cudnnCreateTensorDescriptor(&xd), "creating a descriptor");
  CUDNN_TRY(cudnnCreateTensorDescriptor(&bd), "creating a descriptor");
  CUDNN_TRY(
      cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)n, (int)c, (int)inner, 1),
      "describing the input");
  CUDNN_TRY(cudnnDeriveBNTensorDescriptor(bd, xd, CUDNN_BATCHNORM_SPATIAL), "describing the statistics");
  CUDNN_TRY(cudnnBatchNormalizationForwardTraining(h, CUDNN_BATCHNORM_SPATIAL, &one, &zero, xd, x, xd, y, bd,
                                                   weight, bias, momentum, rm, rv, eps, stats, stats + c),
            "in the forward pass");
  rc = gamk::launched("batch_norm");
done:
  if (xd) cudnnDestroyTensorDescriptor(xd);
  if (bd) cudnnDestroyTensorDescriptor(bd);
  gam__device_free(ones, cbytes); // stream-ordered: after the queued pass
  gam__device_free(zeros, cbytes);
  gam__device_free(scratch, 2 * cbytes);
  return rc;
}

int gam_cuda_bn_train_backward(const float *x, const float *dy, float *dx, int64_t n, int64_t c,
                               int64_t inner, const float *weight, float *dw, float *db, double eps,
                               const float *stats) {
  if (!fits(n, c, inner)) return too_big(n, c, inner);
  void *hv;
  if (gam_cuda__cudnn(&hv, "batch_norm backward") != 0) return -1;
  cudnnHandle_t h = (cudnnHandle_t)hv;
  const float one = 1.f, zero = 0.f;
  const size_t cbytes = (size_t)c * sizeof(float), xbytes = (size_t)(n * c * inner) * sizeof(float);
  cudnnTensorDescriptor_t xd = NULL, bd = NULL;
  float *ones = NULL, *sx = NULL, *sw = NULL, *sb = NULL;
  int rc = 0;
  // cuDNN writes dx, dw and db every time: scratch for those not wanted
  if (!weight && !(weight = ones = constant(c, 1.f))) return -1;
  float *px = or_scratch(dx, xbytes, &sx), *pw = px ? or_scratch(dw, cbytes, &sw) : NULL;
  float *pb = pw ? or_scratch(db, cbytes, &sb) : NULL;
  if (!pb) {
    rc = -1;
    goto done;
  }
  CUDNN_TRY(cudnnCreateTensorDescriptor(&xd), "creating a descriptor");
  CUDNN_TRY(cudnnCreateTensorDescriptor(&bd), "creating a descriptor");
  CUDNN_TRY(
      cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)n, (int)c, (int)inner, 1),
      "describing the input");
  CUDNN_TRY(cudnnDeriveBNTensorDescriptor(bd, xd, CUDNN_BATCHNORM_SPATIAL), "describing the statistics");
  CUDNN_TRY(cudnnBatchNormalizationBackward(h, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero, xd, x, xd,
                                            dy, xd, px, bd, weight, pw, pb, eps, stats, stats + c),
            "in the backward pass");
  rc = gamk::launched("batch_norm backward");
done:
  if (xd) cudnnDestroyTensorDescriptor(xd);
  if (bd) cudnnDestroyTensorDescriptor(bd);
  gam__device_free(ones, cbytes);
  gam__device_free(sx, xbytes);
  gam__device_free(sw, cbytes);
  gam__device_free(sb, cbytes);
  return rc;
}

int gam_cuda_bn_eval_forward(const float *x, float *y, int64_t n, int64_t c, int64_t inner,
                             const float *weight, const float *bias, const float *rm, const float *rv,
                             double eps, float *stats) {
  const size_t bytes = (size_t)(2 * c) * sizeof(float);
  float *coef = (float *)gam__device_alloc(bytes);
  if (!coef) return -1;
  cudaStream_t s = gamk::stream();
  eval_coef_kernel<<<blocks_for(c), kThreads, 0, s>>>(weight, bias, rm, rv, c, eps, stats, coef);
  int64_t total = n * c * inner;
  if (total > 0) affine(x, y, total, c, inner, coef, coef + c);
  int rc = gamk::launched("batch_norm");
  gam__device_free(coef, bytes);
  return rc;
}

int gam_cuda_bn_eval_backward(const float *x, const float *dy, float *dx, int64_t n, int64_t c, int64_t inner,
                              const float *weight, float *dw, float *db, const float *stats) {
  cudaStream_t s = gamk::stream();
  int64_t total = n * c * inner;
  if (dx) {
    const size_t bytes = (size_t)c * sizeof(float);
    float *a = (float *)gam__device_alloc(bytes);
    if (!a) return -1;
    eval_grad_coef_kernel<<<blocks_for(c), kThreads, 0, s>>>(weight, stats, c, a);
    if (total > 0) affine(dy, dx, total, c, inner, a, NULL);
    int rc = gamk::launched("batch_norm backward");
    gam__device_free(a, bytes);
    if (rc != 0) return rc;
  }
  if (!dw && !db) return 0;
  // chunks of at least 16k values, enough blocks to fill the device, at most 64 per channel
  const int64_t m = n * inner;
  int64_t chunks = (m + 16383) / 16384, cap = (2048 + c - 1) / c;
  if (chunks > cap) chunks = cap;
  if (chunks > 64) chunks = 64;
  if (chunks < 1) chunks = 1;
  const int64_t clen = (m + chunks - 1) / chunks;
  const size_t pbytes = (size_t)(c * chunks * 2) * sizeof(double);
  double *partial = (double *)gam__device_alloc(pbytes);
  if (!partial) return -1;
  dim3 grid((unsigned)c, (unsigned)chunks);
  if (gamk::fits32(n * c * inner + kBlock))
    channel_sums_kernel<int32_t><<<grid, kBlock, 0, s>>>(x, dy, stats, n, c, inner, clen, partial);
  else
    channel_sums_kernel<int64_t><<<grid, kBlock, 0, s>>>(x, dy, stats, n, c, inner, clen, partial);
  channel_finish_kernel<<<blocks_for(c), kThreads, 0, s>>>(partial, c, chunks, stats, dw, db);
  int rc = gamk::launched("batch_norm backward");
  gam__device_free(partial, pbytes);
  return rc;
}

} // extern "C"
