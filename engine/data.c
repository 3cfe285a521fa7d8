/* data.c — batch assembly with augmentation, and the background-thread loader
 * (the dataset readers are in data_read.c).
 *
 * Datasets are uint8 images [N,C,H,W] and int64 labels [N]; every dimension
 * is at least 1 (checked when a dataset is used).
 *
 * Augmentation of one image (C channels, H x W), as the GAM seed's torchvision
 * pipeline: random crop with zero padding p (the image is placed in an
 * (H+2p) x (W+2p) zero canvas and an H x W window at offset (dy, dx), both in
 * [0, 2p], is cut out), random horizontal flip, v/255, normalisation
 * (v - mean[c]) / std[c], then cutout (a square set to 0 after normalisation,
 * as the usual Cutout transform applied to the normalised tensor).
 *
 * The loader owns its own generators, so the global one (gam_manual_seed) is
 * untouched: the order of epoch e comes from (seed, e), the augmentation of
 * batch k of epoch e from (seed, e, k). A worker thread fills a ring of
 * `prefetch` slots in batch order; the caller copies a ready slot into new
 * tensors (all tensor allocation happens on the caller's thread). The worker
 * never raises a signal on its own account: a failure is recorded and becomes
 * an error of the caller's next gam_loader_next, the thread joined. */
#define _GNU_SOURCE
#include "internal.h"
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

/* ---- the loader's generator: xoroshiro128++ on a caller-owned state ------- */
/* The steps are the gam__xoro_* helpers of internal.h; the state is the
 * loader's own, never the global generator's. */
void gam_rng_derive(uint64_t *st, uint64_t seed, uint64_t a, uint64_t b) {
  uint64_t x = seed;
  uint64_t h = gam__splitmix64(&x);
  x = h ^ (a * 0xd1b54a32d192ed03ULL);
  h = gam__splitmix64(&x);
  x = h ^ (b * 0x8cb92ba72f3d8dd7ULL);
  st[0] = gam__splitmix64(&x);
  st[1] = gam__splitmix64(&x);
  if (!st[0] && !st[1]) st[1] = 1;
}

/* ---- augmentation ------------------------------------------------------------- */
static int check_dataset(const char *op, const gam_tensor *images, const gam_tensor *labels) {
  GAM_TRY(gam__check(images, op, "images"));
  GAM_TRY(gam__check(labels, op, "labels"));
  char s[160];
  GAM_CHECK(images->dtype == GAM_UINT8 && images->ndim == 4 && images->device == GAM_CPU,
            "%s: images must be a uint8 [N,C,H,W] tensor on the cpu, got %s %s on %s", op,
            gam__dtype_name(images->dtype), gam__shape_str(images, s), gam__device_name(images->device));
  GAM_CHECK(images->shape[1] >= 1 && images->shape[1] <= 4,
            "%s: images have %lld channels, at most 4 are supported", op, (long long)images->shape[1]);
  GAM_CHECK(images->shape[2] >= 1 && images->shape[3] >= 1,
            "%s: images are %lldx%lld pixels; every dimension must be at least 1", op,
            (long long)images->shape[2], (long long)images->shape[3]);
  GAM_CHECK(labels->dtype == GAM_INT64 && labels->ndim == 1 && labels->device == GAM_CPU,
            "%s: labels must be an int64 [N] tensor on the cpu, got %s %s", op,
            gam__dtype_name(labels->dtype), gam__shape_str(labels, s));
  GAM_CHECK(labels->shape[0] == images->shape[0], "%s: %lld images but %lld labels", op,
            (long long)images->shape[0], (long long)labels->shape[0]);
  return 0;
}

static int check_augment(const char *op, const gam_augment *a, int64_t C, int64_t H, int64_t W) {
  GAM_CHECK(a, "%s: augmentation options are NULL", op);
  GAM_CHECK(a->pad >= 0 && a->pad <= H && a->pad <= W,
            "%s: crop padding %d must be in 0..%lld (the image is %lldx%lld)", op, a->pad,
            (long long)(H < W ? H : W), (long long)H, (long long)W);
  GAM_CHECK(a->cutout >= 0 && a->cutout <= 2 * (H > W ? H : W), "%s: cutout size %d is invalid", op,
            a->cutout);
  if (a->normalize)
    for (int c = 0; c < C; c++)
      GAM_CHECK(a->std[c] > 0 && a->std[c] == a->std[c] && a->mean[c] == a->mean[c],
                "%s: normalisation of channel %d needs std > 0 (got mean %g, std %g)", op, c + 1,
                (double)a->mean[c], (double)a->std[c]);
  return 0;
}

/* Draws and writes one augmented image. src uint8 [C,H,W] -> dst float [C,H,W]. */
static void augment_one(float *dst, const uint8_t *src, int64_t C, int64_t H, int64_t W, const gam_augment *a,
                        uint64_t *rng) {
  int64_t dy = 0, dx = 0;
  if (a->pad > 0) { /* window origin inside the padded canvas, minus the padding */
    dy = (int64_t)gam__xoro_below(rng, 2 * (uint64_t)a->pad + 1) - a->pad;
    dx = (int64_t)gam__xoro_below(rng, 2 * (uint64_t)a->pad + 1) - a->pad;
  }
  int flip = a->flip ? (int)(gam__xoro_next(rng) >> 63) : 0;
  for (int64_t c = 0; c < C; c++) {
    float scale = 1.0f / 255.0f, shift = 0.0f;
    if (a->normalize) { /* (v/255 - m)/s = v * (1/(255 s)) - m/s */
      scale = 1.0f / (255.0f * a->std[c]);
      shift = -a->mean[c] / a->std[c];
    }
    const uint8_t *sp = src + c * H * W;
    float *dp = dst + c * H * W;
    for (int64_t i = 0; i < H; i++) {
      int64_t si = i + dy;
      float *row = dp + i * W;
      if (si < 0 || si >= H) { /* a row of the zero padding */
        for (int64_t j = 0; j < W; j++) row[j] = shift;
        continue;
      }
      const uint8_t *srow = sp + si * W;
      for (int64_t j = 0; j < W; j++) {
        int64_t sj = (flip ? W - 1 - j : j) + dx; /* flip the cropped window */
        row[j] = (sj < 0 || sj >= W) ? shift : (float)srow[sj] * scale + shift;
      }
    }
  }
  if (a->cutout > 0) {
    int64_t cy = (int64_t)gam__xoro_below(rng, (uint64_t)H), cx = (int64_t)gam__xoro_below(rng, (uint64_t)W);
    int64_t y0 = cy - a->cutout / 2, x0 = cx - a->cutout / 2;
    int64_t y1 = y0 + a->cutout, x1 = x0 + a->cutout;
    if (y0 < 0) y0 = 0;
    if (x0 < 0) x0 = 0;
    if (y1 > H) y1 = H;
    if (x1 > W) x1 = W;
    for (int64_t c = 0; c < C; c++)
      for (int64_t i = y0; i < y1; i++)
        for (int64_t j = x0; j < x1; j++) dst[c * H * W + i * W + j] = 0.0f;
  }
}

/* The work of one batch, shared by gam_augment_batch and the loader thread. */
static void assemble(float *x, int64_t *y, const uint8_t *img, const int64_t *lab, const int64_t *idx,
                     int64_t n, int64_t C, int64_t H, int64_t W, const gam_augment *a, uint64_t *rng) {
  const int64_t per = C * H * W;
  for (int64_t b = 0; b < n; b++) {
    augment_one(x + b * per, img + idx[b] * per, C, H, W, a, rng);
    y[b] = lab[idx[b]];
  }
}

int gam_augment_batch(gam_tensor *x, gam_tensor *y, const gam_tensor *images, const gam_tensor *labels,
                      const int64_t *idx, int64_t n, const gam_augment *aug, uint64_t *rng) {
  GAM_TRY(check_dataset("augment", images, labels));
  GAM_TRY(gam__check_float(x, "augment", "output x"));
  GAM_TRY(gam__check(y, "augment", "output y"));
  GAM_CHECK(rng && (rng[0] || rng[1]), "augment: generator state is NULL or all zero");
  const int64_t C = images->shape[1], H = images->shape[2], W = images->shape[3], N = images->shape[0];
  GAM_TRY(check_augment("augment", aug, C, H, W));
  char s[160];
  GAM_CHECK(x->ndim == 4 && x->shape[0] == n && x->shape[1] == C && x->shape[2] == H && x->shape[3] == W &&
                x->device == GAM_CPU,
            "augment: output x is %s, expected [%lld,%lld,%lld,%lld] on the cpu", gam__shape_str(x, s),
            (long long)n, (long long)C, (long long)H, (long long)W);
  GAM_CHECK(y->dtype == GAM_INT64 && y->ndim == 1 && y->shape[0] == n && y->device == GAM_CPU,
            "augment: output y must be int64 [%lld] on the cpu", (long long)n);
  GAM_CHECK(n == 0 || idx, "augment: index list is NULL");
  for (int64_t b = 0; b < n; b++)
    GAM_CHECK(idx[b] >= 0 && idx[b] < N, "augment: index %lld (0-based) is out of range for %lld images",
              (long long)idx[b], (long long)N);
  assemble(gam__f32(x), gam__i64(y), gam__data(images), gam__i64(labels), idx, n, C, H, W, aug, rng);
  return 0;
}

/* ---- the loader --------------------------------------------------------------- */
enum { SLOT_FREE = 0, SLOT_READY = 1 };

typedef struct loader_slot {
  float *x;      /* [batch, C, H, W] */
  int64_t *y;    /* [batch] */
  int64_t count; /* samples in this batch */
  int state;
} loader_slot;

struct gam_loader {
  gam_tensor *images, *labels; /* retained; read only by the worker */
  int64_t n, C, H, W, batch, nbatches;
  int shuffle, drop_last;
  gam_augment aug;
  uint64_t seed;
  int64_t epoch;
  int64_t *order; /* [n] sample order of the pass */
  int nslots;
  loader_slot *slots;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  int running;       /* a worker exists and is not joined */
  int stop;          /* asks the worker to end the pass */
  int64_t consumed;  /* batches handed out in this pass */
  int failed;        /* the worker stopped on an error (message in err) */
  int64_t failed_at; /* the batch it failed at */
  char err[1024];
  int64_t fail_at; /* tests: the worker fails at this batch (-1: never) */
  /* data-parallel share (gam_loader_shard): samples per pass on this rank */
  int64_t count;
  int rank, world, shard_drop;
};

static int live_threads;

int gam_loader_threads(void) { return __atomic_load_n(&live_threads, __ATOMIC_SEQ_CST); }

int gam_loader_new(gam_loader **out, gam_tensor *images, gam_tensor *labels, int64_t batch_size, int shuffle,
                   int drop_last, const gam_augment *aug, uint64_t seed, int prefetch) {
  *out = NULL;
  GAM_TRY(check_dataset("loader", images, labels));
  const int64_t n = images->shape[0], C = images->shape[1], H = images->shape[2], W = images->shape[3];
  GAM_TRY(check_augment("loader", aug, C, H, W));
  GAM_CHECK(batch_size >= 1, "loader: batch_size must be at least 1, got %lld", (long long)batch_size);
  GAM_CHECK(prefetch >= 1 && prefetch <= 16, "loader: prefetch must be in 1..16, got %d", prefetch);
  GAM_CHECK(n >= 1, "loader: the dataset is empty");
  if (batch_size > n && !drop_last) batch_size = n;
  int64_t nb = drop_last ? n / batch_size : (n + batch_size - 1) / batch_size;
  GAM_CHECK(nb >= 1, "loader: drop_last with batch_size %lld leaves no batch of a %lld-sample dataset",
            (long long)batch_size, (long long)n);
  gam_loader *l = calloc(1, sizeof *l);
  if (!l) return gam__err("loader: out of memory");
  l->images = images;
  l->labels = labels;
  gam_retain(images);
  gam_retain(labels);
  l->n = n;
  l->C = C;
  l->H = H;
  l->W = W;
  l->batch = batch_size;
  l->nbatches = nb;
  l->shuffle = shuffle;
  l->drop_last = drop_last;
  l->aug = *aug;
  l->seed = seed;
  l->count = n;
  l->world = 1;
  l->nslots = prefetch;
  l->fail_at = -1;
  l->order = malloc((size_t)n * sizeof *l->order);
  l->slots = calloc((size_t)prefetch, sizeof *l->slots);
  int ok = l->order && l->slots;
  for (int s = 0; ok && s < prefetch; s++) {
    l->slots[s].x = malloc((size_t)(batch_size * C * H * W) * sizeof(float));
    l->slots[s].y = malloc((size_t)batch_size * sizeof(int64_t));
    ok = l->slots[s].x && l->slots[s].y;
  }
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  if (!ok) {
    gam_loader_free(l);
    return gam__err("loader: out of memory for %d batches of %lld samples", prefetch, (long long)batch_size);
  }
  *out = l;
  return 0;
}

int64_t gam_loader_num_batches(const gam_loader *l) { return l ? l->nbatches : 0; }

/* Data-parallel sharding, PyTorch's DistributedSampler: every rank draws the
 * same order of (seed, epoch); with drop_remainder the order is cut to the
 * largest multiple of world, otherwise padded to the next one by repeating
 * its start; rank r takes positions r, r + world, ... Each rank then batches
 * its share (the loader's drop_last applies to it). */
int gam_loader_shard(gam_loader *l, int rank, int world, int drop_remainder) {
  GAM_CHECK(l, "loader: NULL loader");
  GAM_CHECK(world >= 1, "loader: world_size must be at least 1, got %d", world);
  GAM_CHECK(rank >= 0 && rank < world, "loader: rank %d is not in 0..%d", rank, world - 1);
  GAM_TRY(gam_loader_stop(l));
  int64_t count = drop_remainder ? l->n / world : (l->n + world - 1) / world;
  GAM_CHECK(count >= 1, "loader: %lld samples leave nothing for each of %d ranks", (long long)l->n, world);
  int64_t nb = l->drop_last ? count / l->batch : (count + l->batch - 1) / l->batch;
  GAM_CHECK(nb >= 1, "loader: drop_last with batch_size %lld leaves no batch of a %lld-sample share",
            (long long)l->batch, (long long)count);
  l->rank = rank;
  l->world = world;
  l->shard_drop = drop_remainder;
  l->count = count;
  l->nbatches = nb;
  return 0;
}

/* The worker may run on any core: it inherits the affinity of the thread that
 * made it, which OpenMP may have pinned to one core (OMP_PROC_BIND). */
static void unpin_self(void) {
  cpu_set_t all;
  CPU_ZERO(&all);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  for (long c = 0; c < n && c < CPU_SETSIZE; c++) CPU_SET((int)c, &all);
  pthread_setaffinity_np(pthread_self(), sizeof all, &all);
}

/* One batch of the worker: checks what it is about to read, then assembles.
 * Returns -1 with the message set (gam__err is per thread) on a failure. */
static int work_batch(gam_loader *l, loader_slot *s, int64_t b, int64_t count) {
  GAM_CHECK(b != l->fail_at, "loader: injected failure at batch %lld (a test)", (long long)b + 1);
  GAM_CHECK(l->C >= 1 && l->H >= 1 && l->W >= 1, "loader: images of %lldx%lldx%lld are empty",
            (long long)l->C, (long long)l->H, (long long)l->W);
  const int64_t *idx = l->order + b * l->batch;
  for (int64_t i = 0; i < count; i++)
    GAM_CHECK(idx[i] >= 0 && idx[i] < l->n, "loader: sample index %lld out of range for %lld images",
              (long long)idx[i], (long long)l->n);
  uint64_t rng[2];
  /* rank r > 0 draws its own augmentation stream */
  gam_rng_derive(rng, l->seed, (uint64_t)l->epoch, ((uint64_t)l->rank << 40) + (uint64_t)b + 1);
  assemble(s->x, s->y, gam__data(l->images), gam__i64(l->labels), idx, count, l->C, l->H, l->W, &l->aug, rng);
  return 0;
}

/* The worker never raises a signal on its own account: a failure is recorded
 * (failed, err) and the thread ends; the caller turns it into an error at the
 * next batch and joins the thread. */
static void *worker(void *arg) {
  gam_loader *l = arg;
  unpin_self();
  for (int64_t b = 0; b < l->nbatches; b++) {
    loader_slot *s = &l->slots[b % l->nslots];
    pthread_mutex_lock(&l->mu);
    while (s->state != SLOT_FREE && !l->stop) pthread_cond_wait(&l->cv, &l->mu);
    int stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    if (stop) break;
    int64_t first = b * l->batch, count = l->count - first < l->batch ? l->count - first : l->batch;
    int rc = work_batch(l, s, b, count);
    pthread_mutex_lock(&l->mu);
    if (rc != 0) {
      l->failed = 1;
      l->failed_at = b;
      snprintf(l->err, sizeof l->err, "%s", gam_last_error());
    } else {
      s->count = count;
      s->state = SLOT_READY;
    }
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    if (rc != 0) break;
  }
  return NULL;
}

/* tests: makes the worker fail at batch `batch` (0-based) of every pass; -1 turns it off */
int gam_loader_fail_at(gam_loader *l, int64_t batch) {
  GAM_CHECK(l, "loader: NULL loader");
  l->fail_at = batch;
  return 0;
}

int gam_loader_stop(gam_loader *l) {
  GAM_CHECK(l, "loader: NULL loader");
  if (!l->running) return 0;
  pthread_mutex_lock(&l->mu);
  l->stop = 1;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  pthread_join(l->thread, NULL);
  __atomic_sub_fetch(&live_threads, 1, __ATOMIC_SEQ_CST);
  l->running = 0;
  l->stop = 0;
  l->failed = 0;
  for (int s = 0; s < l->nslots; s++) l->slots[s].state = SLOT_FREE;
  return 0;
}

int gam_loader_start(gam_loader *l, int64_t epoch) {
  GAM_CHECK(l, "loader: NULL loader");
  GAM_CHECK(epoch >= 0, "loader: epoch must be >= 0, got %lld", (long long)epoch);
  GAM_TRY(gam_loader_stop(l));
  l->epoch = epoch;
  l->consumed = 0;
  for (int64_t i = 0; i < l->n; i++) l->order[i] = i;
  if (l->shuffle) { /* Fisher-Yates with the generator of (seed, epoch) */
    uint64_t rng[2];
    gam_rng_derive(rng, l->seed, (uint64_t)epoch, 0);
    for (int64_t i = l->n - 1; i > 0; i--) {
      int64_t j = (int64_t)gam__xoro_below(rng, (uint64_t)i + 1), t = l->order[i];
      l->order[i] = l->order[j];
      l->order[j] = t;
    }
  }
  if (l->world > 1) { /* this rank's strided share of the (padded) order */
    int64_t *share = malloc((size_t)l->count * sizeof *share);
    if (!share) return gam__err("loader: out of memory");
    for (int64_t i = 0; i < l->count; i++) share[i] = l->order[(l->rank + i * l->world) % l->n];
    memcpy(l->order, share, (size_t)l->count * sizeof *share);
    free(share);
  }
  int rc = pthread_create(&l->thread, NULL, worker, l);
  GAM_CHECK(rc == 0, "loader: cannot start the worker thread: %s", strerror(rc));
  __atomic_add_fetch(&live_threads, 1, __ATOMIC_SEQ_CST);
  l->running = 1;
  return 0;
}

int gam_loader_next(gam_loader *l, gam_tensor **x, gam_tensor **y) {
  *x = *y = NULL;
  GAM_CHECK(l, "loader: NULL loader");
  if (l->consumed >= l->nbatches || !l->running) { /* the pass is over */
    GAM_TRY(gam_loader_stop(l));
    return 0;
  }
  loader_slot *s = &l->slots[l->consumed % l->nslots];
  pthread_mutex_lock(&l->mu);
  while (s->state != SLOT_READY && !l->failed) pthread_cond_wait(&l->cv, &l->mu);
  int failed = s->state != SLOT_READY;
  pthread_mutex_unlock(&l->mu);
  if (failed) { /* the worker ended on an error before this batch: join it, report */
    char msg[1024];
    int64_t at = l->failed_at;
    snprintf(msg, sizeof msg, "%s", l->err);
    gam_loader_stop(l);
    return gam__err("loader: the worker thread failed at batch %lld of epoch %lld: %s", (long long)at + 1,
                    (long long)l->epoch, msg);
  }
  int64_t count = s->count;
  int64_t xs[4] = {count, l->C, l->H, l->W};
  gam_tensor *bx = gam__new(GAM_FLOAT32, GAM_CPU, 4, xs);
  gam_tensor *by = bx ? gam__new(GAM_INT64, GAM_CPU, 1, &count) : NULL;
  if (!bx || !by) return gam__fail(2, bx, by);
  memcpy(gam__f32(bx), s->x, (size_t)bx->numel * sizeof(float));
  memcpy(gam__i64(by), s->y, (size_t)count * sizeof(int64_t));
  pthread_mutex_lock(&l->mu);
  s->state = SLOT_FREE;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  l->consumed++;
  *x = bx;
  *y = by;
  return 0;
}

void gam_loader_free(gam_loader *l) {
  if (!l) return;
  gam_loader_stop(l);
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cv);
  if (l->slots)
    for (int s = 0; s < l->nslots; s++) {
      free(l->slots[s].x);
      free(l->slots[s].y);
    }
  free(l->slots);
  free(l->order);
  gam_release(l->images);
  gam_release(l->labels);
  free(l);
}
