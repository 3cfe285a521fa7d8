// runtime.cu — the CUDA backend's runtime: lazy initialisation, the stream,
// the cuBLAS and cuDNN handles, raw device memory, copies and waits.
//
// Nothing here runs until the first cuda tensor (or gam.cuda_available()):
// a CPU-only run never touches the CUDA runtime. Initialisation picks device
// 0 of those visible (CUDA_VISIBLE_DEVICES selects another), creates one
// stream and binds cuBLAS (and later cuDNN) to it, so that every kernel, copy
// and library call of the engine is ordered on that one stream.
#include "common.cuh"
#include <cublas_v2.h>
#include <cudnn.h>
#include <pthread.h>
#include <stdio.h>

#ifndef GAM_CUDA_ARCH
#define GAM_CUDA_ARCH 90  // the Makefile passes CUDA_ARCH
#endif

namespace {

pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
int state = 0;  // 0: not tried yet, 1: ready, -1: no usable device
char failure[512];
cudaStream_t the_stream;
cublasHandle_t cublas;
cudnnHandle_t cudnn;  // created on first use
void *workspace;
size_t workspace_bytes;

// Called with lock held, once.
void setup() {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    snprintf(failure, sizeof failure,
             "no CUDA device is available, so no cuda tensor can be made (cudaGetDeviceCount: %s)",
             e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports no device");
    cudaGetLastError();  // not sticky: clear it
    __atomic_store_n(&state, -1, __ATOMIC_RELEASE);
    return;
  }
  // The kernels were compiled for one architecture (sm_GAM_CUDA_ARCH plus its
  // PTX, which later devices can run): an older device cannot run them.
  int major = 0, minor = 0;
  e = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0);
  if (e == cudaSuccess && major * 10 + minor < GAM_CUDA_ARCH) {
    snprintf(failure, sizeof failure,
             "the CUDA device has compute capability %d.%d, but libgam was built for %d.%d and "
             "later: rebuild with CUDA_ARCH=%d%d",
             major, minor, GAM_CUDA_ARCH / 10, GAM_CUDA_ARCH % 10, major, minor);
    __atomic_store_n(&state, -1, __ATOMIC_RELEASE);
    return;
  }
  if (e == cudaSuccess) e = cudaSetDevice(0);
  if (e == cudaSuccess) e = cudaStreamCreate(&the_stream);
  if (e != cudaSuccess) {
    snprintf(failure, sizeof failure,
             "no CUDA device is available, so no cuda tensor can be made (device 0: %s)",
             cudaGetErrorString(e));
    cudaGetLastError();
    __atomic_store_n(&state, -1, __ATOMIC_RELEASE);
    return;
  }
  // CUBLAS_DEFAULT_MATH computes sgemm in full float32: TF32 tensor cores are
  // used only under CUBLAS_TF32_TENSOR_OP_MATH, which the engine never sets.
  cublasStatus_t st = cublasCreate(&cublas);
  if (st == CUBLAS_STATUS_SUCCESS) st = cublasSetStream(cublas, the_stream);
  if (st == CUBLAS_STATUS_SUCCESS) st = cublasSetMathMode(cublas, CUBLAS_DEFAULT_MATH);
  if (st != CUBLAS_STATUS_SUCCESS) {
    snprintf(failure, sizeof failure, "the CUDA device could not be set up (cuBLAS: %s)",
             cublasGetStatusString(st));
    __atomic_store_n(&state, -1, __ATOMIC_RELEASE);
    return;
  }
  __atomic_store_n(&state, 1, __ATOMIC_RELEASE);
}

int ensure() {
  if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) == 0) {
    pthread_mutex_lock(&lock);
    if (state == 0) setup();
    pthread_mutex_unlock(&lock);
  }
  return __atomic_load_n(&state, __ATOMIC_ACQUIRE);
}

int failed(const char *op, const char *what, cudaError_t e) {
  return gam__err("%s: %s failed on the cuda device: %s", op, what, cudaGetErrorString(e));
}

}  // namespace

cudaStream_t gamk::stream() { return the_stream; }

extern "C" {

int gam_cuda__init(const char *op) {
  if (ensure() == 1) return 0;
  return gam__err("%s: %s", op, failure);
}

int gam_cuda__available(void) { return ensure() == 1; }

int gam_cuda__ready(void) { return __atomic_load_n(&state, __ATOMIC_ACQUIRE) == 1; }

int gam_cuda__malloc(void **p, size_t bytes) {
  cudaError_t e = cudaMalloc(p, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();  // out of memory is not sticky; keep it from later launch checks
    *p = NULL;
    return -1;
  }
  return 0;
}

int gam_cuda__free(void *p) {
  cudaError_t e = cudaFree(p);
  return e == cudaSuccess ? 0 : failed("free", "cudaFree", e);
}

int gam_cuda__mem_info(size_t *free_bytes, size_t *total_bytes) {
  cudaError_t e = cudaMemGetInfo(free_bytes, total_bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();
    *free_bytes = *total_bytes = 0;
    return -1;
  }
  return 0;
}

int gam_cuda__memcpy(void *dst, const void *src, size_t bytes, int kind, const char *op) {
  if (bytes == 0) return 0;
  cudaMemcpyKind k = kind == GAM_COPY_H2D   ? cudaMemcpyHostToDevice
                     : kind == GAM_COPY_D2H ? cudaMemcpyDeviceToHost
                                            : cudaMemcpyDeviceToDevice;
  cudaError_t e = cudaMemcpyAsync(dst, src, bytes, k, the_stream);
  if (e == cudaSuccess && kind == GAM_COPY_D2H) e = cudaStreamSynchronize(the_stream);
  return e == cudaSuccess ? 0 : failed(op, "a copy", e);
}

int gam_cuda__memcpy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                       size_t height, const char *op) {
  if (width == 0 || height == 0) return 0;
  cudaError_t e;
  if (height == 1 || (dpitch == width && spitch == width))  // contiguous: one plain copy
    e = cudaMemcpyAsync(dst, src, width * height, cudaMemcpyDeviceToDevice, the_stream);
  else
    e = cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, cudaMemcpyDeviceToDevice,
                          the_stream);
  return e == cudaSuccess ? 0 : failed(op, "a strided copy", e);
}

int gam_cuda__memset(void *p, int byte, size_t bytes, const char *op) {
  if (bytes == 0) return 0;
  cudaError_t e = cudaMemsetAsync(p, byte, bytes, the_stream);
  return e == cudaSuccess ? 0 : failed(op, "memset", e);
}

int gam_cuda__sync(const char *op) {
  cudaError_t e = cudaStreamSynchronize(the_stream);
  return e == cudaSuccess ? 0 : failed(op, "waiting for the device", e);
}

int gam_cuda__stream(void **s) {
  if (ensure() != 1) return gam__err("cuda: %s", failure);
  *s = (void *)the_stream;
  return 0;
}

int gam_cuda__cublas(void **handle) {
  if (ensure() != 1) return gam__err("cuda: %s", failure);
  *handle = (void *)cublas;
  return 0;
}

int gam_cuda__cudnn(void **handle, const char *op) {
  if (ensure() != 1) return gam__err("%s: %s", op, failure);
  pthread_mutex_lock(&lock);
  cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
  if (!cudnn) {
    cudnnHandle_t h = NULL;
    st = cudnnCreate(&h);
    if (st == CUDNN_STATUS_SUCCESS) {
      st = cudnnSetStream(h, the_stream);
      if (st == CUDNN_STATUS_SUCCESS) cudnn = h;
      else cudnnDestroy(h);
    }
  }
  pthread_mutex_unlock(&lock);
  if (st != CUDNN_STATUS_SUCCESS) return gam__err("%s: cuDNN could not be set up: %s", op, cudnnGetErrorString(st));
  *handle = (void *)cudnn;
  return 0;
}

int gam_cuda__workspace(void **p, size_t bytes, const char *op) {
  pthread_mutex_lock(&lock);
  if (bytes > workspace_bytes) {
    // stream-ordered: work queued on the old buffer finishes before any reuse
    gam__device_free(workspace, workspace_bytes);
    workspace = gam__device_alloc(bytes);
    workspace_bytes = workspace ? bytes : 0;
  }
  void *w = workspace;
  pthread_mutex_unlock(&lock);
  if (!w && bytes) return gam__err("%s: no device memory for a %zu-byte workspace", op, bytes);
  *p = w;
  return 0;
}

}  // extern "C"
