// conv.cu — 2-D convolution (NCHW, float32, groups 1) through cuDNN's
// convolution API: forward, backward-data, backward-filter, and the bias.
//
// Plans. Every shape (gam_conv_geom) gets, once, its descriptors and, per
// pass on first use, an algorithm: cuDNN's heuristics (Get*_v7) rank the
// algorithms; we keep them in that order, deterministic ones first (the same
// inputs then give the same bits), the unranked ones last, and run the first
// one that cuDNN accepts with a workspace of at most kWorkspaceLimit; that
// choice is remembered. The workspace itself is the runtime's cached buffer
// (gam_cuda__workspace).
//
// Math: the convolution descriptor is set to CUDNN_FMA_MATH, which restricts
// cuDNN to kernels using float32 fused multiply-adds: no TF32 tensor cores,
// so results match the cpu backend to float32 rounding (relative error of
// order 1e-6; FFT and Winograd algorithms, when the heuristics pick them, a
// little more). Backward-data never uses the FFT algorithms with a stride
// above 1 (PyTorch blocklists them there too).
//
// Plans live in a table of kPlans entries; when it is full the least
// recently used plan is destroyed (descriptors are host objects: work already
// queued does not need them).
#include "common.cuh"
#include <cudnn.h>
#include <limits.h>
#include <new>
#include <pthread.h>
#include <string.h>

namespace {

constexpr int kPlans = 1024;
constexpr size_t kWorkspaceLimit = (size_t)1 << 30;  // 1 GiB

struct Plan {
  gam_conv_geom g;  // the key (zeroed, then filled field by field)
  cudnnTensorDescriptor_t x, y, b;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
  // per pass: candidates in order, how many, the one chosen (-1: none yet)
  int fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT], nfwd, fwd_at;
  int bwd_data[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT], nbwd_data, bwd_data_at;
  int bwd_filter[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT], nbwd_filter, bwd_filter_at;
  uint64_t last_use;
};

Plan *plans[kPlans];
uint64_t plan_clock;
pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;

#define CUDNN_TRY(call, what)                                                                   \
  do {                                                                                          \
    cudnnStatus_t st_ = (call);                                                                 \
    if (st_ != CUDNN_STATUS_SUCCESS)                                                            \
      return gam__err("conv2d: cuDNN failed %s: %s", what, cudnnGetErrorString(st_));          \
  } while (0)

void plan_destroy(Plan *p) {
  if (!p) return;
  if (p->x) cudnnDestroyTensorDescriptor(p->x);
  if (p->y) cudnnDestroyTensorDescriptor(p->y);
  if (p->b) cudnnDestroyTensorDescriptor(p->b);
  if (p->w) cudnnDestroyFilterDescriptor(p->w);
  if (p->conv) cudnnDestroyConvolutionDescriptor(p->conv);
  delete p;
}

bool fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

// the key: g copied field by field into zeroed memory, so memcmp compares values only
gam_conv_geom key_of(const gam_conv_geom *g) {
  gam_conv_geom k;
  memset(&k, 0, sizeof k);
  k.n = g->n; k.c = g->c; k.h = g->h; k.w = g->w; k.o = g->o; k.kh = g->kh; k.kw = g->kw;
  k.oh = g->oh; k.ow = g->ow; k.sh = g->sh; k.sw = g->sw; k.ph = g->ph; k.pw = g->pw;
  k.dh = g->dh; k.dw = g->dw;
  return k;
}

int plan_init(Plan *p) {
  const gam_conv_geom &g = p->g;
  // the legacy API takes int dims and int strides (c h w and o oh ow elements per image)
  if (!fits_int(g.n) || !fits_int(g.c * g.h * g.w) || !fits_int(g.o * g.oh * g.ow) ||
      !fits_int(g.o * g.c * g.kh * g.kw))
    return gam__err("conv2d: shape [%lld,%lld,%lld,%lld] with %lld filters exceeds cuDNN's 32-bit sizes",
                    (long long)g.n, (long long)g.c, (long long)g.h, (long long)g.w, (long long)g.o);
  CUDNN_TRY(cudnnCreateTensorDescriptor(&p->x), "creating a descriptor");
  CUDNN_TRY(cudnnCreateTensorDescriptor(&p->y), "creating a descriptor");
  CUDNN_TRY(cudnnCreateTensorDescriptor(&p->b), "creating a descriptor");
  CUDNN_TRY(cudnnCreateFilterDescriptor(&p->w), "creating a descriptor");
  CUDNN_TRY(cudnnCreateConvolutionDescriptor(&p->conv), "creating a descriptor");
  CUDNN_TRY(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, (int)g.n, (int)g.c,
                                       (int)g.h, (int)g.w), "describing the input");
  CUDNN_TRY(cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, (int)g.o, (int)g.c,
                                       (int)g.kh, (int)g.kw), "describing the weight");
  CUDNN_TRY(cudnnSetConvolution2dDescriptor(p->conv, g.ph, g.pw, g.sh, g.sw, g.dh, g.dw,
                                            CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
            "describing the convolution");
  CUDNN_TRY(cudnnSetConvolutionMathType(p->conv, CUDNN_FMA_MATH), "setting FMA math");
  int on, oc, oh, ow;
  CUDNN_TRY(cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &on, &oc, &oh, &ow),
            "sizing the output");
  if (on != g.n || oc != g.o || oh != g.oh || ow != g.ow)
    return gam__err("conv2d: cuDNN sizes the output [%d,%d,%d,%d], expected [%lld,%lld,%lld,%lld]", on,
                    oc, oh, ow, (long long)g.n, (long long)g.o, (long long)g.oh, (long long)g.ow);
  CUDNN_TRY(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, on, oc, oh, ow),
            "describing the output");
  CUDNN_TRY(cudnnSetTensor4dDescriptor(p->b, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, oc, 1, 1),
            "describing the bias");
  p->fwd_at = p->bwd_data_at = p->bwd_filter_at = -1;
  p->nfwd = p->nbwd_data = p->nbwd_filter = -1;  // candidates not asked for yet
  return 0;
}

// The plan of g (made on first use); NULL + error. Caller holds plan_lock.
Plan *plan_get(const gam_conv_geom *g) {
  gam_conv_geom key = key_of(g);
  int slot = -1;
  for (int k = 0; k < kPlans; k++) {
    Plan *p = plans[k];
    if (p && memcmp(&p->g, &key, sizeof key) == 0) {
      p->last_use = ++plan_clock;
      return p;
    }
    if (slot < 0 || (plans[slot] && (!p || p->last_use < plans[slot]->last_use))) slot = k;
  }
  Plan *p = new (std::nothrow) Plan();
  if (!p) {
    gam__err("conv2d: out of memory caching a convolution plan");
    return NULL;
  }
  p->g = key;
  if (plan_init(p) != 0) {
    plan_destroy(p);
    return NULL;
  }
  plan_destroy(plans[slot]);
  plans[slot] = p;
  p->last_use = ++plan_clock;
  return p;
}

// Candidate order from the heuristics' ranking: each algorithm once,
// deterministic ones first, skipping those `skip` rejects; then, as a last
// resort, every other algorithm of the `count` (cuDNN says at run time which
// of those it accepts).
template <typename Perf, typename Skip>
int order(const Perf *perf, int got, int count, int *out, Skip skip) {
  int n = 0;
  auto add = [&](int a) {
    for (int j = 0; j < n; j++)
      if (out[j] == a) return;
    if (n < count) out[n++] = a;
  };
  for (int pass = 0; pass < 2; pass++) {
    for (int i = 0; i < got; i++) {
      if (perf[i].status != CUDNN_STATUS_SUCCESS || skip((int)perf[i].algo)) continue;
      bool det = perf[i].determinism == CUDNN_DETERMINISTIC;
      if (det == (pass == 0)) add((int)perf[i].algo);
    }
  }
  for (int a = 0; a < count; a++)
    if (!skip(a)) add(a);
  return n;
}

int candidates_fwd(cudnnHandle_t h, Plan *p) {
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int got = 0;
  CUDNN_TRY(cudnnGetConvolutionForwardAlgorithm_v7(h, p->x, p->w, p->conv, p->y,
                                                   CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf),
            "ranking forward algorithms");
  p->nfwd = order(perf, got, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, p->fwd, [](int) { return false; });
  return 0;
}

int candidates_bwd_data(cudnnHandle_t h, Plan *p) {
  cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  int got = 0;
  CUDNN_TRY(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p->w, p->y, p->conv, p->x,
                                                        CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got,
                                                        perf),
            "ranking backward-data algorithms");
  bool strided = p->g.sh > 1 || p->g.sw > 1;
  p->nbwd_data = order(perf, got, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, p->bwd_data, [strided](int a) {
    return strided && (a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING);
  });
  return 0;
}

int candidates_bwd_filter(cudnnHandle_t h, Plan *p) {
  cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  int got = 0;
  CUDNN_TRY(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p->x, p->y, p->conv, p->w,
                                                          CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                                                          &got, perf),
            "ranking backward-filter algorithms");
  // (ALGO_WINOGRAD is "not implemented" for backward-filter)
  p->nbwd_filter = order(perf, got, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, p->bwd_filter,
                         [](int a) { return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD; });
  return 0;
}

// Runs pass `what` with the chosen algorithm, or chooses one: the candidates
// in order until cuDNN accepts one. size(algo, &bytes) and run(algo, ws, bytes)
// return cuDNN statuses.
template <typename Size, typename Run>
int run_pass(const char *what, const int *cand, int ncand, int *at, Size size, Run run) {
  cudnnStatus_t last = CUDNN_STATUS_NOT_SUPPORTED;
  int from = *at >= 0 ? *at : 0, to = *at >= 0 ? *at + 1 : ncand;
  for (int i = from; i < to; i++) {
    size_t bytes = 0;
    cudnnStatus_t st = size(cand[i], &bytes);
    if (st != CUDNN_STATUS_SUCCESS) { last = st; continue; }
    if (bytes > kWorkspaceLimit) { last = CUDNN_STATUS_NOT_SUPPORTED; continue; }
    void *ws = NULL;
    if (bytes && gam_cuda__workspace(&ws, bytes, "conv2d") != 0) {
      if (*at >= 0) return -1;
      last = CUDNN_STATUS_ALLOC_FAILED;
      continue;
    }
    st = run(cand[i], ws, bytes);
    if (st == CUDNN_STATUS_SUCCESS) {
      *at = i;
      return gamk::launched("conv2d");
    }
    last = st;
  }
  return gam__err("conv2d: cuDNN has no usable %s algorithm for this shape (last status: %s)", what,
                  cudnnGetErrorString(last));
}

// handle + plan (locked by the caller)
int prepare(const gam_conv_geom *g, cudnnHandle_t *h, Plan **p) {
  void *hv;
  if (gam_cuda__cudnn(&hv, "conv2d") != 0) return -1;
  *h = (cudnnHandle_t)hv;
  *p = plan_get(g);
  return *p ? 0 : -1;
}

const float kOne = 1.f, kZero = 0.f;

}  // namespace

extern "C" {

int gam_cuda_conv2d_forward(const gam_conv_geom *g, const float *x, const float *w, const float *b,
                            float *y) {
  pthread_mutex_lock(&plan_lock);
  cudnnHandle_t h = NULL;
  Plan *p = NULL;
  int rc = prepare(g, &h, &p);
  if (rc == 0 && p->nfwd < 0) rc = candidates_fwd(h, p);
  if (rc == 0)
    rc = run_pass(
        "forward", p->fwd, p->nfwd, &p->fwd_at,
        [&](int a, size_t *bytes) {
          return cudnnGetConvolutionForwardWorkspaceSize(h, p->x, p->w, p->conv, p->y,
                                                         (cudnnConvolutionFwdAlgo_t)a, bytes);
        },
        [&](int a, void *ws, size_t bytes) {
          return cudnnConvolutionForward(h, &kOne, p->x, x, p->w, w, p->conv,
                                         (cudnnConvolutionFwdAlgo_t)a, ws, bytes, &kZero, p->y, y);
        });
  if (rc == 0 && b) {
    cudnnStatus_t st = cudnnAddTensor(h, &kOne, p->b, b, &kOne, p->y, y);
    if (st != CUDNN_STATUS_SUCCESS) rc = gam__err("conv2d: cuDNN failed adding the bias: %s", cudnnGetErrorString(st));
  }
  pthread_mutex_unlock(&plan_lock);
  return rc;
}

int gam_cuda_conv2d_backward_data(const gam_conv_geom *g, const float *dy, const float *w, float *dx) {
  pthread_mutex_lock(&plan_lock);
  cudnnHandle_t h = NULL;
  Plan *p = NULL;
  int rc = prepare(g, &h, &p);
  if (rc == 0 && p->nbwd_data < 0) rc = candidates_bwd_data(h, p);
  if (rc == 0)
    rc = run_pass(
        "backward-data", p->bwd_data, p->nbwd_data, &p->bwd_data_at,
        [&](int a, size_t *bytes) {
          return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p->w, p->y, p->conv, p->x,
                                                              (cudnnConvolutionBwdDataAlgo_t)a, bytes);
        },
        [&](int a, void *ws, size_t bytes) {
          return cudnnConvolutionBackwardData(h, &kOne, p->w, w, p->y, dy, p->conv,
                                              (cudnnConvolutionBwdDataAlgo_t)a, ws, bytes, &kZero,
                                              p->x, dx);
        });
  pthread_mutex_unlock(&plan_lock);
  return rc;
}

int gam_cuda_conv2d_backward_filter(const gam_conv_geom *g, const float *x, const float *dy, float *dw,
                                    float *db) {
  pthread_mutex_lock(&plan_lock);
  cudnnHandle_t h = NULL;
  Plan *p = NULL;
  int rc = prepare(g, &h, &p);
  if (rc == 0 && dw && p->nbwd_filter < 0) rc = candidates_bwd_filter(h, p);
  if (rc == 0 && dw)
    rc = run_pass(
        "backward-filter", p->bwd_filter, p->nbwd_filter, &p->bwd_filter_at,
        [&](int a, size_t *bytes) {
          return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p->x, p->y, p->conv, p->w,
                                                                (cudnnConvolutionBwdFilterAlgo_t)a, bytes);
        },
        [&](int a, void *ws, size_t bytes) {
          return cudnnConvolutionBackwardFilter(h, &kOne, p->x, x, p->y, dy, p->conv,
                                                (cudnnConvolutionBwdFilterAlgo_t)a, ws, bytes, &kZero,
                                                p->w, dw);
        });
  if (rc == 0 && db) {
    cudnnStatus_t st = cudnnConvolutionBackwardBias(h, &kOne, p->y, dy, &kZero, p->b, db);
    if (st != CUDNN_STATUS_SUCCESS)
      rc = gam__err("conv2d: cuDNN failed on the bias gradient: %s", cudnnGetErrorString(st));
  }
  pthread_mutex_unlock(&plan_lock);
  return rc;
}

int gam_cuda_conv2d_plans(int *count) {
  pthread_mutex_lock(&plan_lock);
  int n = 0;
  for (int k = 0; k < kPlans; k++) n += plans[k] != NULL;
  pthread_mutex_unlock(&plan_lock);
  *count = n;
  return 0;
}

}  // extern "C"
