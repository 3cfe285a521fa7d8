/* core.c — error messages, version, threads, the host caching allocator and
 * the small checks every op uses. */
#include "backend.h"
#include <omp.h>
#include <pthread.h>

#ifndef GAM_VERSION
#define GAM_VERSION "0.1.0"
#endif

/* ---- errors --------------------------------------------------------------- */
static _Thread_local char err_buf[1024];

int gam__err(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err_buf, sizeof err_buf, fmt, ap);
  va_end(ap);
  return -1;
}

const char *gam_last_error(void) { return err_buf[0] ? err_buf : "unknown error"; }
const char *gam_version(void) { return GAM_VERSION; }

/* ---- threads -------------------------------------------------------------- */
extern void openblas_set_num_threads(int);

int gam_set_num_threads(int n) {
  GAM_CHECK(n >= 1 && n <= 4096, "set_num_threads: thread count must be in 1..4096, got %d", n);
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
  return 0;
}

int gam_get_num_threads(void) { return omp_get_max_threads(); }

/* ---- memory ----------------------------------------------------------------
 * Freed host blocks of 64 KiB and more are kept, hashed by their rounded size,
 * and handed out again for a request of the same rounded size (a training
 * loop asks for the same few sizes every step); small blocks go straight to
 * libc. Every byte is counted, so tests can check that a loop returns to its
 * baseline. */
typedef struct cached_block {
  void *p;
  size_t bytes;
  struct cached_block *next;
} cached_block;
enum { CACHE_BUCKETS = 256 };
static cached_block *cache[CACHE_BUCKETS];
static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;
static gam_memory_stats stats;
static const size_t cache_min = 65536;
static const int64_t cache_limit = (int64_t)4 << 30;

static size_t round_bytes(size_t b) {
  if (b < cache_min) return (b + 63) & ~(size_t)63;
  return (b + 4095) & ~(size_t)4095;
}

static unsigned bucket_of(size_t rb) { return (unsigned)((rb >> 12) * 0x9e3779b1u >> 24) % CACHE_BUCKETS; }

/* a cached block of exactly rb bytes, or NULL; caller holds mem_lock */
static void *cache_take(size_t rb) {
  for (cached_block **pp = &cache[bucket_of(rb)]; *pp; pp = &(*pp)->next) {
    if ((*pp)->bytes == rb) {
      cached_block *c = *pp;
      void *p = c->p;
      *pp = c->next;
      free(c);
      stats.cached_bytes -= (int64_t)rb;
      return p;
    }
  }
  return NULL;
}

void *gam__host_alloc(size_t bytes) {
  size_t rb = round_bytes(bytes ? bytes : 1);
  void *p = NULL;
  if (rb >= cache_min) {
    pthread_mutex_lock(&mem_lock);
    p = cache_take(rb);
    pthread_mutex_unlock(&mem_lock);
  }
  if (!p && posix_memalign(&p, 64, rb) != 0) p = NULL;
  if (!p) { /* give the cache back and try again */
    gam_empty_cache();
    if (posix_memalign(&p, 64, rb) != 0) p = NULL;
  }
  if (!p) {
    gam__err("out of memory: could not allocate %zu bytes on the cpu", bytes);
    return NULL;
  }
  pthread_mutex_lock(&mem_lock);
  stats.live_bytes += (int64_t)rb;
  if (stats.live_bytes > stats.peak_bytes) stats.peak_bytes = stats.live_bytes;
  pthread_mutex_unlock(&mem_lock);
  return p;
}

void gam__host_free(void *p, size_t bytes) {
  if (!p) return;
  size_t rb = round_bytes(bytes ? bytes : 1);
  cached_block *c = NULL;
  if (rb >= cache_min) c = malloc(sizeof *c);
  pthread_mutex_lock(&mem_lock);
  stats.live_bytes -= (int64_t)rb;
  if (c && stats.cached_bytes + (int64_t)rb <= cache_limit) {
    unsigned h = bucket_of(rb);
    c->p = p;
    c->bytes = rb;
    c->next = cache[h];
    cache[h] = c;
    stats.cached_bytes += (int64_t)rb;
    p = NULL;
    c = NULL;
  }
  pthread_mutex_unlock(&mem_lock);
  free(c);
  free(p);
}

/* ---- device memory ---------------------------------------------------------
 * The same scheme for the cuda device, with size classes: up to 1 MiB in
 * steps of 512 bytes, above in eight steps per power of two (at most 12.5%
 * rounding), so that a training step's requests, the same every step, are
 * served from the cache without cudaMalloc/cudaFree (both synchronise the
 * device). Every block is stream-ordered (cuda_backend.h), so a freed block
 * is reusable at once. When cudaMalloc fails, the cache is given back and the
 * request tried once more before it fails with a message naming it. */
static cached_block *dcache[CACHE_BUCKETS];

static size_t device_round(size_t b) {
  if (b <= ((size_t)1 << 20)) return (b + 511) & ~(size_t)511;
  size_t step = ((size_t)1 << (63 - __builtin_clzll((unsigned long long)b))) / 8;
  return (b + step - 1) / step * step;
}

static unsigned dbucket_of(size_t rb) { return (unsigned)((rb >> 9) * 0x9e3779b1u >> 24) % CACHE_BUCKETS; }

/* a cached device block of exactly rb bytes, or NULL; caller holds mem_lock */
static void *dcache_take(size_t rb) {
  for (cached_block **pp = &dcache[dbucket_of(rb)]; *pp; pp = &(*pp)->next) {
    if ((*pp)->bytes == rb) {
      cached_block *c = *pp;
      void *p = c->p;
      *pp = c->next;
      free(c);
      stats.device_cached_bytes -= (int64_t)rb;
      return p;
    }
  }
  return NULL;
}

static void device_empty_cache(void) {
  cached_block *lists[CACHE_BUCKETS];
  pthread_mutex_lock(&mem_lock);
  memcpy(lists, dcache, sizeof lists);
  memset(dcache, 0, sizeof dcache);
  stats.device_cached_bytes = 0;
  pthread_mutex_unlock(&mem_lock);
  int any = 0;
  for (int h = 0; h < CACHE_BUCKETS; h++) any |= lists[h] != NULL;
  if (!any) return;
  /* queued kernels may still use these blocks: let them finish first (an
   * error they raise is reported by the next op that waits) */
  char saved[1024];
  snprintf(saved, sizeof saved, "%s", gam_last_error());
  if (gam_cuda__sync("empty_cache") != 0) gam__err("%s", saved);
  for (int h = 0; h < CACHE_BUCKETS; h++) {
    for (cached_block *c = lists[h], *next; c; c = next) {
      next = c->next;
      gam_cuda__free(c->p);
      free(c);
    }
  }
}

void gam__device_empty_cache(void) {
  if (!gam_cuda__ready()) return;
  gam_cuda__workspace_release(); /* into the cache, given back with it */
  gam_cuda__staging_release();
  device_empty_cache();
}

int gam_cuda_built(void) { return gam_cuda__built(); }
int gam_cuda_available(void) { return gam_cuda__available(); }
int gam_cuda_synchronize(void) { return gam_cuda__ready() ? gam_cuda__sync("synchronize") : 0; }

/* cuDNN's algorithm choice (gam.h; read by kernels/conv.cu) */
static int cudnn_benchmark = 0, cudnn_deterministic = 1;
static unsigned cudnn_version = 1;

int gam_cudnn_set(int benchmark, int deterministic) {
  GAM_CHECK(benchmark >= -1 && benchmark <= 1, "cudnn: benchmark must be true or false, got %d", benchmark);
  GAM_CHECK(deterministic >= -1 && deterministic <= 1, "cudnn: deterministic must be true or false, got %d",
            deterministic);
  pthread_mutex_lock(&mem_lock);
  int b = benchmark < 0 ? cudnn_benchmark : benchmark;
  int d = deterministic < 0 ? cudnn_deterministic : deterministic;
  if (b != cudnn_benchmark || d != cudnn_deterministic) cudnn_version++;
  cudnn_benchmark = b;
  cudnn_deterministic = d;
  pthread_mutex_unlock(&mem_lock);
  return 0;
}

void gam_cudnn_get(int *benchmark, int *deterministic) { gam__cudnn_flags(benchmark, deterministic, NULL); }

void gam__cudnn_flags(int *benchmark, int *deterministic, unsigned *version) {
  pthread_mutex_lock(&mem_lock);
  if (benchmark) *benchmark = cudnn_benchmark;
  if (deterministic) *deterministic = cudnn_deterministic;
  if (version) *version = cudnn_version;
  pthread_mutex_unlock(&mem_lock);
}

int64_t gam_cuda_host_waits(void) { return gam_cuda__host_waits(); }

int gam_cuda_info_get(gam_cuda_info *info) {
  GAM_CHECK(info != NULL, "cuda_info: no output given");
  memset(info, 0, sizeof *info);
  if (!gam_cuda__built())
    return gam__err(
        "cuda_info: the cuda device is not available in this build (libgam was compiled "
        "without CUDA)");
  return gam_cuda__info(info);
}

int gam__cuda_require(const char *op) {
  if (!gam_cuda__built())
    return gam__err(
        "%s: the cuda device is not available in this build (libgam was compiled "
        "without CUDA)",
        op);
  return gam_cuda__init(op);
}

void *gam__device_alloc(size_t bytes) {
  if (gam__cuda_require("cuda") != 0) return NULL;
  size_t rb = device_round(bytes ? bytes : 1);
  pthread_mutex_lock(&mem_lock);
  void *p = dcache_take(rb);
  pthread_mutex_unlock(&mem_lock);
  if (!p && gam_cuda__malloc(&p, rb) != 0) {
    /* memory pressure: the cuDNN workspace and the cached blocks go back */
    gam_cuda__workspace_release();
    device_empty_cache();
    if (gam_cuda__malloc(&p, rb) != 0) p = NULL;
  }
  if (!p) {
    size_t free_b = 0, total_b = 0;
    gam_cuda__mem_info(&free_b, &total_b);
    pthread_mutex_lock(&mem_lock);
    int64_t live = stats.device_live_bytes;
    pthread_mutex_unlock(&mem_lock);
    gam__err(
        "out of memory on the cuda device: cannot allocate %zu bytes (%.2f GiB); tensors "
        "hold %.2f GiB, the device has %.2f GiB free of %.2f GiB",
        bytes, (double)bytes / 1073741824.0, (double)live / 1073741824.0, (double)free_b / 1073741824.0,
        (double)total_b / 1073741824.0);
    return NULL;
  }
  pthread_mutex_lock(&mem_lock);
  stats.device_live_bytes += (int64_t)rb;
  stats.live_bytes += (int64_t)rb;
  if (stats.live_bytes > stats.peak_bytes) stats.peak_bytes = stats.live_bytes;
  pthread_mutex_unlock(&mem_lock);
  return p;
}

void gam__device_free(void *p, size_t bytes) {
  if (!p) return;
  size_t rb = device_round(bytes ? bytes : 1);
  cached_block *c = malloc(sizeof *c);
  pthread_mutex_lock(&mem_lock);
  stats.device_live_bytes -= (int64_t)rb;
  stats.live_bytes -= (int64_t)rb;
  if (c) {
    unsigned h = dbucket_of(rb);
    c->p = p;
    c->bytes = rb;
    c->next = dcache[h];
    dcache[h] = c;
    stats.device_cached_bytes += (int64_t)rb;
    p = NULL;
  }
  pthread_mutex_unlock(&mem_lock);
  if (p) gam_cuda__free(p); /* no memory for the list node: give the block back */
}

/* ---- the cpu's memory entries of the backend table ------------------------ */
int gam_cpu_require(const char *op) {
  (void)op;
  return 0;
}

int gam_cpu_copy(void *dst, const void *src, size_t bytes, const char *op) {
  (void)op;
  if (bytes) memcpy(dst, src, bytes);
  return 0;
}

int gam_cpu_copy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                   const char *op) {
  (void)op;
  for (size_t r = 0; r < height; r++) memcpy((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
  return 0;
}

int gam_cpu_memset(void *p, int byte, size_t bytes, const char *op) {
  (void)op;
  memset(p, byte, bytes);
  return 0;
}

void gam_cpu_empty_cache(void) {
  cached_block *lists[CACHE_BUCKETS];
  pthread_mutex_lock(&mem_lock);
  memcpy(lists, cache, sizeof lists);
  memset(cache, 0, sizeof cache);
  stats.cached_bytes = 0;
  pthread_mutex_unlock(&mem_lock);
  for (int h = 0; h < CACHE_BUCKETS; h++) {
    for (cached_block *c = lists[h], *next; c; c = next) {
      next = c->next;
      free(c->p);
      free(c);
    }
  }
}

int gam_empty_cache(void) {
  gam__cpu_backend.empty_cache();
  gam__cuda_backend.empty_cache();
  return 0;
}

static int64_t live_tensors;
void gam__count_tensor(int delta) { __atomic_add_fetch(&live_tensors, delta, __ATOMIC_RELAXED); }

void gam_memory(gam_memory_stats *s) {
  if (!s) return;
  pthread_mutex_lock(&mem_lock);
  *s = stats;
  pthread_mutex_unlock(&mem_lock);
  s->device_workspace_bytes = gam_cuda__ready() ? (int64_t)gam_cuda__workspace_held() : 0;
  s->live_tensors = __atomic_load_n(&live_tensors, __ATOMIC_RELAXED);
}

/* ---- dtype, shape and argument checks ------------------------------------- */
size_t gam__dtype_size(int dtype) {
  switch (dtype) {
    case GAM_FLOAT32:
      return 4;
    case GAM_INT64:
      return 8;
    case GAM_UINT8:
      return 1;
    default:
      return 0;
  }
}

const char *gam__dtype_name(int dtype) {
  switch (dtype) {
    case GAM_FLOAT32:
      return "float32";
    case GAM_INT64:
      return "int64";
    case GAM_UINT8:
      return "uint8";
    default:
      return "invalid dtype";
  }
}

/* GAM_CUDA here and below: the device type itself (its name, its validity). */
const char *gam__device_name(int device) {
  return device == GAM_CPU ? "cpu" : device == GAM_CUDA ? "cuda" : "invalid device";
}

int gam__device_valid(int device) { return device == GAM_CPU || device == GAM_CUDA; }

const char *gam__shape_str(const gam_tensor *t, char *buf) {
  int n = 0;
  buf[n++] = '[';
  for (int d = 0; d < t->ndim && n < 140; d++)
    n += snprintf(buf + n, 160 - (size_t)n, d ? ",%lld" : "%lld", (long long)t->shape[d]);
  buf[n++] = ']';
  buf[n] = 0;
  return buf;
}

int gam__check_dev(const gam_tensor *t, const char *op, const char *arg) {
  GAM_CHECK(t, "%s: %s is nil, expected a tensor", op, arg);
  GAM_CHECK(t->refcount > 0 && t->storage, "%s: %s is a released tensor", op, arg);
  return 0;
}

int gam__check_float_dev(const gam_tensor *t, const char *op, const char *arg) {
  GAM_TRY(gam__check_dev(t, op, arg));
  GAM_CHECK(t->dtype == GAM_FLOAT32, "%s: %s must be float32, got %s", op, arg, gam__dtype_name(t->dtype));
  return 0;
}

int gam__check(const gam_tensor *t, const char *op, const char *arg) {
  GAM_TRY(gam__check_dev(t, op, arg));
  GAM_CHECK(t->device == GAM_CPU, "%s: %s is on %s, and %s has no %s implementation yet", op, arg,
            gam__device_name(t->device), op, gam__device_name(t->device));
  return 0;
}

int gam__check_float(const gam_tensor *t, const char *op, const char *arg) {
  GAM_TRY(gam__check(t, op, arg));
  return gam__check_float_dev(t, op, arg);
}

int gam__same_device(const char *op, const gam_tensor *a, const gam_tensor *b) {
  GAM_CHECK(a->device == b->device, "%s: operands are on %s and %s", op, gam__device_name(a->device),
            gam__device_name(b->device));
  return 0;
}

int gam__dim(const char *op, int dim, int ndim, int *out) {
  int d = dim < 0 ? dim + ndim : dim;
  GAM_CHECK(d >= 0 && d < ndim, "%s: dim %d is out of range for a tensor with %d dims", op, dim + (dim >= 0),
            ndim);
  *out = d;
  return 0;
}

int gam__same_shape(const gam_tensor *a, const gam_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d]) return 0;
  return 1;
}

int64_t gam__numel(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) n *= shape[d];
  return n;
}
