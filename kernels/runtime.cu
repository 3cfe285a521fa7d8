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
#include <string.h>

#ifndef GAM_CUDA_ARCH
#define GAM_CUDA_ARCH 90 // the Makefile passes CUDA_ARCH
#endif

namespace {

pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
int state = 0; // 0: not tried yet, 1: ready, -1: no usable device
char failure[512];
cudaStream_t the_stream;
cublasHandle_t cublas;
cudnnHandle_t cudnn; // created on first use
// page-locked staging buffers of gam_cuda__upload: a ring, each with the
// event of its last copy
constexpr int kStages = 4;
struct Stage {
  void *p;
  size_t bytes;
  cudaEvent_t done;
  bool used; // done was recorded after the buffer's last copy
};
Stage stages[kStages];
int stage_next;
pthread_mutex_t stage_lock = PTHREAD_MUTEX_INITIALIZER;

// the cached workspace, under its own lock (growing it allocates, and the
// allocator may call gam_cuda__workspace_release on the way)
pthread_mutex_t ws_lock = PTHREAD_MUTEX_INITIALIZER;
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
    cudaGetLastError(); // not sticky: clear it
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

// Every wait of the host for the device goes through here and is counted
// (gam_cuda_host_waits: a training step should wait once, for its loss).
int64_t host_waits;
cudaError_t waited(cudaError_t e) {
  __atomic_add_fetch(&host_waits, 1, __ATOMIC_RELAXED);
  return e;
}

int failed(const char *op, const char *what, cudaError_t e) {
  return gam__err("%s: %s failed on the cuda device: %s", op, what, cudaGetErrorString(e));
}

} // namespace

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
    cudaGetLastError(); // out of memory is not sticky; keep it from later launch checks
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
  if (e == cudaSuccess && kind == GAM_COPY_D2H) e = waited(cudaStreamSynchronize(the_stream));
  return e == cudaSuccess ? 0 : failed(op, "a copy", e);
}

int gam_cuda__pinned_alloc(void **p, size_t bytes) {
  cudaError_t e = cudaHostAlloc(p, bytes, cudaHostAllocDefault);
  if (e != cudaSuccess) {
    cudaGetLastError();
    *p = NULL;
    return -1;
  }
  return 0;
}

int gam_cuda__pinned_free(void *p) {
  if (!p) return 0;
  cudaError_t e = cudaFreeHost(p);
  return e == cudaSuccess ? 0 : failed("free", "cudaFreeHost", e);
}

int gam_cuda__upload(void *dst, const void *src, size_t bytes, const char *op) {
  if (bytes == 0) return 0;
  if (bytes > GAM_CUDA_STAGE_MAX) return gam_cuda__memcpy(dst, src, bytes, GAM_COPY_H2D, op);
  pthread_mutex_lock(&stage_lock);
  Stage &s = stages[stage_next];
  stage_next = (stage_next + 1) % kStages;
  cudaError_t e = cudaSuccess;
  if (!s.done) e = cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming);
  // the buffer's previous copy must be done before it is overwritten
  if (e == cudaSuccess && s.used && cudaEventQuery(s.done) == cudaErrorNotReady) {
    cudaGetLastError(); // "not ready" is no error: keep it from later launch checks
    e = waited(cudaEventSynchronize(s.done));
  }
  if (e == cudaSuccess && s.bytes < bytes) {
    gam_cuda__pinned_free(s.p);
    size_t want = s.bytes ? s.bytes : (size_t)1 << 20;
    while (want < bytes) want *= 2;
    if (gam_cuda__pinned_alloc(&s.p, want) == 0)
      s.bytes = want;
    else
      s.p = NULL, s.bytes = 0;
  }
  if (e != cudaSuccess || !s.p) { // no staging: the plain (pageable) copy
    s.used = false;
    pthread_mutex_unlock(&stage_lock);
    cudaGetLastError();
    return gam_cuda__memcpy(dst, src, bytes, GAM_COPY_H2D, op);
  }
  memcpy(s.p, src, bytes);
  e = cudaMemcpyAsync(dst, s.p, bytes, cudaMemcpyHostToDevice, the_stream);
  if (e == cudaSuccess) e = cudaEventRecord(s.done, the_stream);
  s.used = e == cudaSuccess;
  pthread_mutex_unlock(&stage_lock);
  return e == cudaSuccess ? 0 : failed(op, "a copy to the device", e);
}

void gam_cuda__staging_release(void) {
  pthread_mutex_lock(&stage_lock);
  for (int k = 0; k < kStages; k++) {
    Stage &s = stages[k];
    if (s.used) waited(cudaEventSynchronize(s.done));
    gam_cuda__pinned_free(s.p);
    s.p = NULL;
    s.bytes = 0;
    s.used = false;
  }
  pthread_mutex_unlock(&stage_lock);
}

int gam_cuda__memcpy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                       const char *op) {
  if (width == 0 || height == 0) return 0;
  cudaError_t e;
  if (height == 1 || (dpitch == width && spitch == width)) // contiguous: one plain copy
    e = cudaMemcpyAsync(dst, src, width * height, cudaMemcpyDeviceToDevice, the_stream);
  else
    e = cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, cudaMemcpyDeviceToDevice, the_stream);
  return e == cudaSuccess ? 0 : failed(op, "a strided copy", e);
}

int gam_cuda__memset(void *p, int byte, size_t bytes, const char *op) {
  if (bytes == 0) return 0;
  cudaError_t e = cudaMemsetAsync(p, byte, bytes, the_stream);
  return e == cudaSuccess ? 0 : failed(op, "memset", e);
}

int gam_cuda__sync(const char *op) {
  cudaError_t e = waited(cudaStreamSynchronize(the_stream));
  return e == cudaSuccess ? 0 : failed(op, "waiting for the device", e);
}

int gam_cuda__info(struct gam_cuda_info *info) {
  cudaDriverGetVersion(&info->driver);
  cudaRuntimeGetVersion(&info->runtime);
  info->cudnn = (int)cudnnGetVersion();
  info->cudnn_compiled = CUDNN_VERSION;
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) n = 0;
  info->devices = n;
  cudaDeviceProp prop;
  if (n > 0 && cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
    snprintf(info->name, sizeof info->name, "%s", prop.name);
    info->cc_major = prop.major;
    info->cc_minor = prop.minor;
    info->memory_bytes = (int64_t)prop.totalGlobalMem;
  }
  cudaGetLastError(); // a missing device or driver is not an error here
  return 0;
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
      if (st == CUDNN_STATUS_SUCCESS)
        cudnn = h;
      else
        cudnnDestroy(h);
    }
  }
  pthread_mutex_unlock(&lock);
  if (st != CUDNN_STATUS_SUCCESS)
    return gam__err("%s: cuDNN could not be set up: %s", op, cudnnGetErrorString(st));
  *handle = (void *)cudnn;
  return 0;
}

int gam_cuda__workspace(void **p, size_t bytes, const char *op) {
  pthread_mutex_lock(&ws_lock);
  if (bytes > workspace_bytes) {
    // stream-ordered: work queued on the old buffer finishes before any reuse.
    // The old buffer goes back first, so that an out-of-memory retry of the
    // allocator (which empties its cache) can return it to the device.
    gam__device_free(workspace, workspace_bytes);
    workspace = NULL;
    __atomic_store_n(&workspace_bytes, (size_t)0, __ATOMIC_RELAXED);
    workspace = gam__device_alloc(bytes);
    __atomic_store_n(&workspace_bytes, workspace ? bytes : 0, __ATOMIC_RELAXED);
  }
  void *w = workspace;
  pthread_mutex_unlock(&ws_lock);
  if (!w && bytes) return gam__err("%s: no device memory for a %zu-byte workspace", op, bytes);
  *p = w;
  return 0;
}

void gam_cuda__workspace_release(void) {
  if (pthread_mutex_trylock(&ws_lock) != 0) return; // being grown (its old buffer is back already)
  gam__device_free(workspace, workspace_bytes);     // stream-ordered, as above
  workspace = NULL;
  __atomic_store_n(&workspace_bytes, (size_t)0, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&ws_lock);
}

int64_t gam_cuda__host_waits(void) { return __atomic_load_n(&host_waits, __ATOMIC_RELAXED); }

size_t gam_cuda__workspace_held(void) { return __atomic_load_n(&workspace_bytes, __ATOMIC_RELAXED); }

} // extern "C"
