// conv.cu — 2-D convolution (NCHW, float32, groups 1) through cuDNN's
// convolution API: forward, backward-data, backward-filter, and the bias.
//
// Plans. Every shape (gam_conv_geom) gets, once, its descriptors and, per
// pass on first use, an algorithm (see "the algorithm choice" below:
// deterministic by default, the fastest under gam.cudnn.benchmark): the
// first candidate that cuDNN accepts with a workspace of at most
// kWorkspaceLimit is remembered. The workspace itself is the runtime's cached
// buffer (gam_cuda__workspace). Batches whose tensors exceed cuDNN's int
// sizes run in chunks of images (chunk_images).
//
// Math: the convolution descriptor is set to CUDNN_FMA_MATH, which restricts
// cuDNN to kernels using float32 fused multiply-adds: no TF32 tensor cores,
// so results match the cpu backend to float32 rounding (relative error of
// order 1e-6; FFT and Winograd algorithms, allowed only with deterministic
// off, a little more). Backward-data never uses the FFT algorithms with a stride
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
constexpr size_t kWorkspaceLimit = (size_t)1 << 30; // 1 GiB

struct Plan {
  gam_conv_geom g; // the key (zeroed, then filled field by field)
  cudnnTensorDescriptor_t x, y, b;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
  // per pass: candidates in order, how many, the one chosen (-1: none yet)
  int fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT], nfwd, fwd_at;
  int bwd_data[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT], nbwd_data, bwd_data_at;
  int bwd_filter[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT], nbwd_filter, bwd_filter_at;
  uint64_t last_use;
  unsigned mode; // gam__cudnn_flags' version the choices above were made under
};

Plan *plans[kPlans];
uint64_t plan_clock;
pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;

#define CUDNN_TRY(call, what)                                                         \
  do {                                                                                \
    cudnnStatus_t st_ = (call);                                                       \
    if (st_ != CUDNN_STATUS_SUCCESS)                                                  \
      return gam__err("conv2d: cuDNN failed %s: %s", what, cudnnGetErrorString(st_)); \
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
  k.n = g->n;
  k.c = g->c;
  k.h = g->h;
  k.w = g->w;
  k.o = g->o;
  k.kh = g->kh;
  k.kw = g->kw;
  k.oh = g->oh;
  k.ow = g->ow;
  k.sh = g->sh;
  k.sw = g->sw;
  k.ph = g->ph;
  k.pw = g->pw;
  k.dh = g->dh;
  k.dw = g->dw;
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
                                       (int)g.h, (int)g.w),
            "describing the input");
  CUDNN_TRY(cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, (int)g.o, (int)g.c,
                                       (int)g.kh, (int)g.kw),
            "describing the weight");
  CUDNN_TRY(cudnnSetConvolution2dDescriptor(p->conv, g.ph, g.pw, g.sh, g.sw, g.dh, g.dw,
                                            CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
            "describing the convolution");
  CUDNN_TRY(cudnnSetConvolutionMathType(p->conv, CUDNN_FMA_MATH), "setting FMA math");
  int on, oc, oh, ow;
  CUDNN_TRY(cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &on, &oc, &oh, &ow),
            "sizing the output");
  if (on != g.n || oc != g.o || oh != g.oh || ow != g.ow)
    return gam__err("conv2d: cuDNN sizes the output [%d,%d,%d,%d], expected [%lld,%lld,%lld,%lld]", on, oc,
                    oh, ow, (long long)g.n, (long long)g.o, (long long)g.oh, (long long)g.ow);
  CUDNN_TRY(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, on, oc, oh, ow),
            "describing the output");
  CUDNN_TRY(cudnnSetTensor4dDescriptor(p->b, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, oc, 1, 1),
            "describing the bias");
  p->fwd_at = p->bwd_data_at = p->bwd_filter_at = -1;
  p->nfwd = p->nbwd_data = p->nbwd_filter = -1; // candidates not asked for yet
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

// ---- the algorithm choice -------------------------------------------------------
// Explicit, as torch.backends.cudnn (gam.cudnn in Lua, gam_cudnn_set in C):
//   deterministic (default on): only algorithms whose results are the same
//     bits on every run (no atomics), and no FFT or Winograd variant (their
//     rounding comes close to the 1e-4 agreement with the cpu backend);
//     off: every algorithm cuDNN accepts.
//   benchmark (default off): on a shape's first use, cudnnFind* times the
//     allowed algorithms on the real tensors and the fastest is kept; off: the
//     heuristics' ranking (Get*_v7), the first allowed one that runs.
// Changing a flag forgets the choices made so far (gam__cudnn_flags' version).
enum Pass { kFwd, kBwdData, kBwdFilter };

// Non-deterministic algorithms per pass (cuDNN's documentation; the
// heuristics' determinism field is checked as well where it is reported).
bool nondeterministic(Pass pass, int a) {
  if (pass == kBwdData) return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0;
  if (pass == kBwdFilter)
    return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
  return false;
}

bool fft_or_winograd(Pass pass, int a) {
  switch (pass) {
    case kFwd:
      return a == CUDNN_CONVOLUTION_FWD_ALGO_FFT || a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
             a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
    case kBwdData:
      return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING ||
             a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD ||
             a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
    default:
      return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT ||
             a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING ||
             a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
  }
}

// May pass `pass` of plan p use algorithm a under the current flags?
bool allowed(Pass pass, const Plan *p, int a, bool det) {
  if (pass == kBwdData && (p->g.sh > 1 || p->g.sw > 1) &&
      (a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING))
    return false; // wrong results with strides (PyTorch blocklists them too)
  if (pass == kBwdFilter && a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD) return false; // not implemented
  return !det || (!nondeterministic(pass, a) && !fft_or_winograd(pass, a));
}

// Candidates from a ranking (heuristics or timings), in its order: each
// allowed algorithm once; then, unless `ranked_only`, every other allowed
// algorithm of the `count` as a last resort (cuDNN says at run time which it
// accepts).
template <typename Perf>
int order(Pass pass, const Plan *p, const Perf *perf, int got, int count, int *out, bool det,
          bool ranked_only) {
  int n = 0;
  auto add = [&](int a) {
    for (int j = 0; j < n; j++)
      if (out[j] == a) return;
    if (n < count) out[n++] = a;
  };
  for (int i = 0; i < got; i++) {
    int a = (int)perf[i].algo;
    if (perf[i].status != CUDNN_STATUS_SUCCESS || !allowed(pass, p, a, det)) continue;
    if (det && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
    add(a);
  }
  if (!ranked_only)
    for (int a = 0; a < count; a++)
      if (allowed(pass, p, a, det)) add(a);
  return n;
}

// A workspace for cudnnFind*: the largest any allowed algorithm asks for (up
// to kWorkspaceLimit); 0 bytes when even that cannot be had (Find then times
// only the algorithms that need none).
template <typename Size>
void find_workspace(Pass pass, const Plan *p, int count, bool det, Size size, void **ws, size_t *bytes) {
  size_t most = 0;
  for (int a = 0; a < count; a++) {
    size_t b = 0;
    if (allowed(pass, p, a, det) && size(a, &b) == CUDNN_STATUS_SUCCESS && b <= kWorkspaceLimit && b > most)
      most = b;
  }
  *ws = NULL;
  *bytes = 0;
  if (most && gam_cuda__workspace(ws, most, "conv2d") == 0) *bytes = most;
}

int candidates_fwd(cudnnHandle_t h, Plan *p, const float *x, const float *w, float *y) {
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int got = 0, benchmark, det;
  gam__cudnn_flags(&benchmark, &det, NULL);
  const int count = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
  if (benchmark) {
    void *ws;
    size_t bytes;
    find_workspace(
        kFwd, p, count, det,
        [&](int a, size_t *b) {
          return cudnnGetConvolutionForwardWorkspaceSize(h, p->x, p->w, p->conv, p->y,
                                                         (cudnnConvolutionFwdAlgo_t)a, b);
        },
        &ws, &bytes);
    CUDNN_TRY(cudnnFindConvolutionForwardAlgorithmEx(h, p->x, x, p->w, w, p->conv, p->y, y, count, &got, perf,
                                                     ws, bytes),
              "timing forward algorithms");
    p->nfwd = order(kFwd, p, perf, got, count, p->fwd, det, true);
    if (p->nfwd > 0) return 0;
  }
  CUDNN_TRY(cudnnGetConvolutionForwardAlgorithm_v7(h, p->x, p->w, p->conv, p->y, count, &got, perf),
            "ranking forward algorithms");
  p->nfwd = order(kFwd, p, perf, got, count, p->fwd, det, false);
  return 0;
}

int candidates_bwd_data(cudnnHandle_t h, Plan *p, const float *dy, const float *w, float *dx) {
  cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  int got = 0, benchmark, det;
  gam__cudnn_flags(&benchmark, &det, NULL);
  const int count = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
  if (benchmark) {
    void *ws;
    size_t bytes;
    find_workspace(
        kBwdData, p, count, det,
        [&](int a, size_t *b) {
          return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p->w, p->y, p->conv, p->x,
                                                              (cudnnConvolutionBwdDataAlgo_t)a, b);
        },
        &ws, &bytes);
    CUDNN_TRY(cudnnFindConvolutionBackwardDataAlgorithmEx(h, p->w, w, p->y, dy, p->conv, p->x, dx, count,
                                                          &got, perf, ws, bytes),
              "timing backward-data algorithms");
    p->nbwd_data = order(kBwdData, p, perf, got, count, p->bwd_data, det, true);
    if (p->nbwd_data > 0) return 0;
  }
  CUDNN_TRY(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p->w, p->y, p->conv, p->x, count, &got, perf),
            "ranking backward-data algorithms");
  p->nbwd_data = order(kBwdData, p, perf, got, count, p->bwd_data, det, false);
  return 0;
}

// (benchmark: Find writes dw, so it writes a scratch copy: the batch chunks
// of a large input accumulate into the real dw)
int candidates_bwd_filter(cudnnHandle_t h, Plan *p, const float *x, const float *dy) {
  cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  int got = 0, benchmark, det;
  gam__cudnn_flags(&benchmark, &det, NULL);
  const int count = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  if (benchmark) {
    const size_t wbytes = (size_t)(p->g.o * p->g.c * p->g.kh * p->g.kw) * sizeof(float);
    float *scratch = (float *)gam__device_alloc(wbytes);
    if (!scratch) return -1;
    void *ws;
    size_t bytes;
    find_workspace(
        kBwdFilter, p, count, det,
        [&](int a, size_t *b) {
          return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p->x, p->y, p->conv, p->w,
                                                                (cudnnConvolutionBwdFilterAlgo_t)a, b);
        },
        &ws, &bytes);
    cudnnStatus_t st = cudnnFindConvolutionBackwardFilterAlgorithmEx(h, p->x, x, p->y, dy, p->conv, p->w,
                                                                     scratch, count, &got, perf, ws, bytes);
    gam__device_free(scratch, wbytes);
    if (st != CUDNN_STATUS_SUCCESS)
      return gam__err("conv2d: cuDNN failed timing backward-filter algorithms: %s", cudnnGetErrorString(st));
    p->nbwd_filter = order(kBwdFilter, p, perf, got, count, p->bwd_filter, det, true);
    if (p->nbwd_filter > 0) return 0;
  }
  CUDNN_TRY(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p->x, p->y, p->conv, p->w, count, &got, perf),
            "ranking backward-filter algorithms");
  p->nbwd_filter = order(kBwdFilter, p, perf, got, count, p->bwd_filter, det, false);
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
    if (st != CUDNN_STATUS_SUCCESS) {
      last = st;
      continue;
    }
    if (bytes > kWorkspaceLimit) {
      last = CUDNN_STATUS_NOT_SUPPORTED;
      continue;
    }
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

// handle + plan (locked by the caller); choices made under other flags are forgotten
int prepare(const gam_conv_geom *g, cudnnHandle_t *h, Plan **p) {
  void *hv;
  if (gam_cuda__cudnn(&hv, "conv2d") != 0) return -1;
  *h = (cudnnHandle_t)hv;
  *p = plan_get(g);
  if (!*p) return -1;
  unsigned mode;
  gam__cudnn_flags(NULL, NULL, &mode);
  if ((*p)->mode != mode) {
    (*p)->mode = mode;
    (*p)->fwd_at = (*p)->bwd_data_at = (*p)->bwd_filter_at = -1;
    (*p)->nfwd = (*p)->nbwd_data = (*p)->nbwd_filter = -1;
  }
  return 0;
}

// Large inputs: cuDNN's legacy API describes tensors with int sizes, so a
// batch whose input or output holds more than INT_MAX elements runs in
// chunks of images (as PyTorch splits it), each chunk a plan of its own.
int64_t chunk_images(const gam_conv_geom *g) {
  int64_t per = g->c * g->h * g->w, out = g->o * g->oh * g->ow;
  if (out > per) per = out;
  int64_t most = per > 0 ? (int64_t)INT_MAX / per : g->n;
  return most < 1 ? 1 : most;
}

// g with n images (the chunk's geometry)
gam_conv_geom with_batch(const gam_conv_geom *g, int64_t n) {
  gam_conv_geom c = *g;
  c.n = n;
  return c;
}

const float kOne = 1.f, kZero = 0.f;

} // namespace

extern "C" {

int gam_cuda_conv2d_forward(const gam_conv_geom *g, const float *x, const float *w, const float *b,
                            float *y) {
  const int64_t step = chunk_images(g), xs = g->c * g->h * g->w, ys = g->o * g->oh * g->ow;
  pthread_mutex_lock(&plan_lock);
  int rc = 0;
  for (int64_t n0 = 0; rc == 0 && n0 < g->n; n0 += step) {
    const gam_conv_geom gc = with_batch(g, g->n - n0 < step ? g->n - n0 : step);
    const float *xc = x + n0 * xs;
    float *yc = y + n0 * ys;
    cudnnHandle_t h = NULL;
    Plan *p = NULL;
    rc = prepare(&gc, &h, &p);
    if (rc == 0 && p->nfwd < 0) rc = candidates_fwd(h, p, xc, w, yc);
    if (rc == 0)
      rc = run_pass(
          "forward", p->fwd, p->nfwd, &p->fwd_at,
          [&](int a, size_t *bytes) {
            return cudnnGetConvolutionForwardWorkspaceSize(h, p->x, p->w, p->conv, p->y,
                                                           (cudnnConvolutionFwdAlgo_t)a, bytes);
          },
          [&](int a, void *ws, size_t bytes) {
            return cudnnConvolutionForward(h, &kOne, p->x, xc, p->w, w, p->conv, (cudnnConvolutionFwdAlgo_t)a,
                                           ws, bytes, &kZero, p->y, yc);
          });
    if (rc == 0 && b) {
      cudnnStatus_t st = cudnnAddTensor(h, &kOne, p->b, b, &kOne, p->y, yc);
      if (st != CUDNN_STATUS_SUCCESS)
        rc = gam__err("conv2d: cuDNN failed adding the bias: %s", cudnnGetErrorString(st));
    }
  }
  pthread_mutex_unlock(&plan_lock);
  return rc;
}

int gam_cuda_conv2d_backward_data(const gam_conv_geom *g, const float *dy, const float *w, float *dx) {
  const int64_t step = chunk_images(g), xs = g->c * g->h * g->w, ys = g->o * g->oh * g->ow;
  pthread_mutex_lock(&plan_lock);
  int rc = 0;
  for (int64_t n0 = 0; rc == 0 && n0 < g->n; n0 += step) {
    const gam_conv_geom gc = with_batch(g, g->n - n0 < step ? g->n - n0 : step);
    const float *dyc = dy + n0 * ys;
    float *dxc = dx + n0 * xs;
    cudnnHandle_t h = NULL;
    Plan *p = NULL;
    rc = prepare(&gc, &h, &p);
    if (rc == 0 && p->nbwd_data < 0) rc = candidates_bwd_data(h, p, dyc, w, dxc);
    if (rc == 0)
      rc = run_pass(
          "backward-data", p->bwd_data, p->nbwd_data, &p->bwd_data_at,
          [&](int a, size_t *bytes) {
            return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p->w, p->y, p->conv, p->x,
                                                                (cudnnConvolutionBwdDataAlgo_t)a, bytes);
          },
          [&](int a, void *ws, size_t bytes) {
            return cudnnConvolutionBackwardData(h, &kOne, p->w, w, p->y, dyc, p->conv,
                                                (cudnnConvolutionBwdDataAlgo_t)a, ws, bytes, &kZero, p->x,
                                                dxc);
          });
  }
  pthread_mutex_unlock(&plan_lock);
  return rc;
}

// dw and db sum over the images: the first chunk writes them (beta 0), later
// chunks add to them (beta 1), in chunk order
int gam_cuda_conv2d_backward_filter(const gam_conv_geom *g, const float *x, const float *dy, float *dw,
                                    float *db) {
  const int64_t step = chunk_images(g), xs = g->c * g->h * g->w, ys = g->o * g->oh * g->ow;
  pthread_mutex_lock(&plan_lock);
  int rc = 0;
  for (int64_t n0 = 0; rc == 0 && n0 < g->n; n0 += step) {
    const gam_conv_geom gc = with_batch(g, g->n - n0 < step ? g->n - n0 : step);
    const float *xc = x + n0 * xs, *dyc = dy + n0 * ys;
    const float *beta = n0 == 0 ? &kZero : &kOne;
    cudnnHandle_t h = NULL;
    Plan *p = NULL;
    rc = prepare(&gc, &h, &p);
    if (rc == 0 && dw && p->nbwd_filter < 0) rc = candidates_bwd_filter(h, p, xc, dyc);
    if (rc == 0 && dw)
      rc = run_pass(
          "backward-filter", p->bwd_filter, p->nbwd_filter, &p->bwd_filter_at,
          [&](int a, size_t *bytes) {
            return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p->x, p->y, p->conv, p->w,
                                                                  (cudnnConvolutionBwdFilterAlgo_t)a, bytes);
          },
          [&](int a, void *ws, size_t bytes) {
            return cudnnConvolutionBackwardFilter(h, &kOne, p->x, xc, p->y, dyc, p->conv,
                                                  (cudnnConvolutionBwdFilterAlgo_t)a, ws, bytes, beta, p->w,
                                                  dw);
          });
    if (rc == 0 && db) {
      cudnnStatus_t st = cudnnConvolutionBackwardBias(h, &kOne, p->y, dyc, beta, p->b, db);
      if (st != CUDNN_STATUS_SUCCESS)
        rc = gam__err("conv2d: cuDNN failed on the bias gradient: %s", cudnnGetErrorString(st));
    }
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

} // extern "C"
