/* data.c — dataset readers (CIFAR binary batches, IDX files gzipped or not),
 * batch assembly with augmentation, and the background-thread loader.
 *
 * Datasets are uint8 images [N,C,H,W] and int64 labels [N]. Every reader
 * checks the whole file (size, header, label range, count agreement) and
 * names the file and the problem in its error: a damaged file is an error,
 * never a crash or a silently short dataset.
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
 * tensors (all tensor allocation happens on the caller's thread). */
#define _GNU_SOURCE
#include "internal.h"
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <zlib.h>

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

/* ---- whole-file reading, through zlib so gzip is handled by content ------- */
/* Reads path (gzip-compressed or plain) into a malloc'd buffer. op names the
 * caller in errors. */
static int read_all(const char *op, const char *path, uint8_t **data, size_t *size) {
  *data = NULL;
  *size = 0;
  GAM_CHECK(path && *path, "%s: file path is empty", op);
  FILE *probe = fopen(path, "rb");
  if (!probe) return gam__err("%s: cannot open %s: %s", op, path, strerror(errno));
  fclose(probe);
  gzFile f = gzopen(path, "rb");
  if (!f) return gam__err("%s: cannot open %s: %s", op, path, strerror(errno ? errno : ENOMEM));
  gzbuffer(f, 1 << 17);
  size_t cap = 1 << 20, n = 0;
  uint8_t *buf = malloc(cap);
  if (!buf) { gzclose(f); return gam__err("%s: out of memory reading %s", op, path); }
  for (;;) {
    if (n == cap) {
      size_t ncap = cap * 2;
      uint8_t *nb = realloc(buf, ncap);
      if (!nb) { free(buf); gzclose(f); return gam__err("%s: out of memory reading %s", op, path); }
      buf = nb;
      cap = ncap;
    }
    size_t want = cap - n;
    if (want > (1u << 30)) want = 1u << 30;
    int got = gzread(f, buf + n, (unsigned)want);
    if (got < 0) {
      int zerr;
      const char *msg = gzerror(f, &zerr);
      int rc = zerr == Z_ERRNO ? gam__err("%s: error reading %s: %s", op, path, strerror(errno))
                               : gam__err("%s: %s: gzip error: %s (the compressed file is corrupt)",
                                          op, path, msg);
      free(buf);
      gzclose(f);
      return rc;
    }
    if (got == 0) break;
    n += (size_t)got;
  }
  /* a gzip stream cut short reads as a short file plus Z_BUF_ERROR */
  int zerr;
  const char *msg = gzerror(f, &zerr);
  if (zerr != Z_OK && zerr != Z_STREAM_END) {
    int rc = gam__err("%s: %s: gzip error: %s (the compressed file is truncated or corrupt)", op,
                      path, msg);
    free(buf);
    gzclose(f);
    return rc;
  }
  gzclose(f);
  *data = buf;
  *size = n;
  return 0;
}

/* ---- CIFAR ------------------------------------------------------------------ */
enum { CIFAR_IMAGE = 3 * 32 * 32 };

int gam_read_cifar(gam_tensor **images, gam_tensor **labels, const char *const *paths, int npaths,
                   int classes, int coarse) {
  *images = *labels = NULL;
  GAM_CHECK(classes == 10 || classes == 100, "cifar: classes must be 10 or 100, got %d", classes);
  GAM_CHECK(paths && npaths >= 1 && npaths <= 64, "cifar: expected 1 to 64 files, got %d", npaths);
  GAM_CHECK(!coarse || classes == 100, "cifar: coarse labels exist only in CIFAR-100");
  const char *name = classes == 10 ? "CIFAR-10" : "CIFAR-100";
  const size_t label_bytes = classes == 10 ? 1 : 2;
  const size_t record = label_bytes + CIFAR_IMAGE;
  const int label_at = classes == 10 ? 0 : (coarse ? 0 : 1);
  const int nlabels = classes == 10 ? 10 : (coarse ? 20 : 100);

  uint8_t *bufs[64] = {0};
  size_t sizes[64] = {0};
  int64_t total = 0;
  int rc = 0;
  for (int k = 0; k < npaths && rc == 0; k++) {
    rc = read_all("cifar", paths[k], &bufs[k], &sizes[k]);
    if (rc) break;
    if (sizes[k] == 0) {
      rc = gam__err("cifar: %s is empty (a %s batch holds %zu-byte records)", paths[k], name, record);
    } else if (sizes[k] % record != 0) {
      rc = gam__err("cifar: %s: size %zu bytes is not a whole number of %zu-byte %s records "
                    "(%zu records and %zu bytes over): the file is truncated or not a %s batch",
                    paths[k], sizes[k], record, name, sizes[k] / record, sizes[k] % record, name);
    } else {
      int64_t n = (int64_t)(sizes[k] / record);
      for (int64_t r = 0; r < n && rc == 0; r++) {
        int v = bufs[k][(size_t)r * record + (size_t)label_at];
        if (v >= nlabels)
          rc = gam__err("cifar: %s: record %lld has %slabel %d, %s %slabels are 0..%d: the file is "
                        "corrupt or not a %s batch",
                        paths[k], (long long)r, coarse ? "coarse " : "", v, name,
                        classes == 100 ? (coarse ? "coarse " : "fine ") : "", nlabels - 1, name);
      }
      total += n;
    }
  }
  if (rc == 0) {
    int64_t ishape[4] = {total, 3, 32, 32};
    *images = gam__new(GAM_UINT8, GAM_CPU, 4, ishape);
    *labels = *images ? gam__new(GAM_INT64, GAM_CPU, 1, &total) : NULL;
    if (!*images || !*labels) rc = -1;
  }
  if (rc == 0) {
    uint8_t *img = gam__data(*images);
    int64_t *lab = gam__i64(*labels), i = 0;
    for (int k = 0; k < npaths; k++) {
      int64_t n = (int64_t)(sizes[k] / record);
      for (int64_t r = 0; r < n; r++, i++) {
        const uint8_t *rec = bufs[k] + (size_t)r * record;
        lab[i] = rec[label_at];
        memcpy(img + (size_t)i * CIFAR_IMAGE, rec + label_bytes, CIFAR_IMAGE);
      }
    }
  }
  for (int k = 0; k < npaths; k++) free(bufs[k]);
  if (rc) {
    gam_release(*images);
    gam_release(*labels);
    *images = *labels = NULL;
  }
  return rc;
}

/* ---- IDX -------------------------------------------------------------------
 * Header: 0x00 0x00, a type byte (0x08 = unsigned byte, the only one read
 * here), the number of dims d, then d big-endian uint32 sizes; the data follow. */
static int parse_idx(const char *path, const uint8_t *buf, size_t size, int *ndim, int64_t *shape,
                     size_t *data_at) {
  GAM_CHECK(size >= 4, "idx: %s is truncated: %zu bytes, shorter than an IDX header", path, size);
  uint32_t magic = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
  GAM_CHECK(buf[0] == 0 && buf[1] == 0 && buf[2] == 0x08 && buf[3] >= 1 && buf[3] <= 4,
            "idx: %s: bad magic number 0x%08x (an IDX file of unsigned bytes starts with "
            "00 00 08 and a dim count 1..4): not an IDX file, or a gzip file that lost its header",
            path, magic);
  int d = buf[3];
  size_t hdr = 4 + 4 * (size_t)d;
  GAM_CHECK(size >= hdr, "idx: %s is truncated: %zu bytes, the header of a %d-dim IDX file needs %zu",
            path, size, d, hdr);
  uint64_t count = 1;
  for (int k = 0; k < d; k++) {
    const uint8_t *p = buf + 4 + 4 * k;
    shape[k] = (int64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
    count *= (uint64_t)shape[k];
    GAM_CHECK(count < ((uint64_t)1 << 40), "idx: %s: header sizes are absurd", path);
  }
  GAM_CHECK(size - hdr >= count,
            "idx: %s is truncated: the header promises %llu data bytes, the file has %zu",
            path, (unsigned long long)count, size - hdr);
  GAM_CHECK(size - hdr == count,
            "idx: %s: %zu bytes follow the %llu data bytes the header promises: the file is corrupt",
            path, size - hdr - (size_t)count, (unsigned long long)count);
  *ndim = d;
  *data_at = hdr;
  return 0;
}

int gam_read_idx(gam_tensor **out, const char *path) {
  *out = NULL;
  uint8_t *buf;
  size_t size, at = 0;
  int ndim = 0;
  int64_t shape[4];
  GAM_TRY(read_all("idx", path, &buf, &size));
  if (parse_idx(path, buf, size, &ndim, shape, &at) != 0) { free(buf); return -1; }
  *out = gam__new(GAM_UINT8, GAM_CPU, ndim, shape);
  if (*out) memcpy(gam__data(*out), buf + at, (size_t)(*out)->numel);
  free(buf);
  return *out ? 0 : -1;
}

int gam_read_idx_dataset(gam_tensor **images, gam_tensor **labels, const char *images_path,
                         const char *labels_path, int classes) {
  *images = *labels = NULL;
  GAM_CHECK(classes >= 1 && classes <= 256, "idx dataset: classes must be in 1..256, got %d", classes);
  gam_tensor *im = NULL, *lb = NULL;
  if (gam_read_idx(&im, images_path) != 0) return -1;
  if (gam_read_idx(&lb, labels_path) != 0) return gam__fail(1, im);
  char s1[160], s2[160];
  if (im->ndim != 3) {
    gam__err("idx dataset: images file %s has shape %s, expected [N,H,W] (an idx3 file)", images_path,
             gam__shape_str(im, s1));
    return gam__fail(2, im, lb);
  }
  if (lb->ndim != 1) {
    gam__err("idx dataset: labels file %s has shape %s, expected [N] (an idx1 file)", labels_path,
             gam__shape_str(lb, s2));
    return gam__fail(2, im, lb);
  }
  if (im->shape[0] != lb->shape[0]) {
    gam__err("idx dataset: image/label count mismatch: %s holds %lld images, %s holds %lld labels",
             images_path, (long long)im->shape[0], labels_path, (long long)lb->shape[0]);
    return gam__fail(2, im, lb);
  }
  int64_t n = lb->shape[0];
  const uint8_t *lv = gam__data(lb);
  for (int64_t i = 0; i < n; i++) {
    if (lv[i] >= classes) {
      gam__err("idx dataset: %s: label %d at index %lld is out of range 0..%d", labels_path, lv[i],
               (long long)i, classes - 1);
      return gam__fail(2, im, lb);
    }
  }
  int64_t ishape[4] = {n, 1, im->shape[1], im->shape[2]};
  gam_tensor *img = gam__alias(im, 4, ishape, 0); /* same bytes, one channel dim */
  gam_tensor *lab = img ? gam__new(GAM_INT64, GAM_CPU, 1, &n) : NULL;
  if (!img || !lab) return gam__fail(4, im, lb, img, lab);
  for (int64_t i = 0; i < n; i++) gam__i64(lab)[i] = lv[i];
  gam_release(im);
  gam_release(lb);
  *images = img;
  *labels = lab;
  return 0;
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
static void augment_one(float *dst, const uint8_t *src, int64_t C, int64_t H, int64_t W,
                        const gam_augment *a, uint64_t *rng) {
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
        int64_t sj = (flip ? W - 1 - j : j) + dx;  /* flip the cropped window */
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
  GAM_CHECK(x->ndim == 4 && x->shape[0] == n && x->shape[1] == C && x->shape[2] == H &&
                x->shape[3] == W && x->device == GAM_CPU,
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
  float *x;          /* [batch, C, H, W] */
  int64_t *y;        /* [batch] */
  int64_t count;     /* samples in this batch */
  int state;
} loader_slot;

struct gam_loader {
  gam_tensor *images, *labels;  /* retained; read only by the worker */
  int64_t n, C, H, W, batch, nbatches;
  int shuffle, drop_last;
  gam_augment aug;
  uint64_t seed;
  int64_t epoch;
  int64_t *order;               /* [n] sample order of the pass */
  int nslots;
  loader_slot *slots;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  int running;                  /* a worker exists and is not joined */
  int stop;                     /* asks the worker to end the pass */
  int64_t consumed;             /* batches handed out in this pass */
  /* data-parallel share (gam_loader_shard): samples per pass on this rank */
  int64_t count;
  int rank, world, shard_drop;
};

static int live_threads;

int gam_loader_threads(void) { return __atomic_load_n(&live_threads, __ATOMIC_SEQ_CST); }

int gam_loader_new(gam_loader **out, gam_tensor *images, gam_tensor *labels, int64_t batch_size,
                   int shuffle, int drop_last, const gam_augment *aug, uint64_t seed, int prefetch) {
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
  l->n = n; l->C = C; l->H = H; l->W = W;
  l->batch = batch_size;
  l->nbatches = nb;
  l->shuffle = shuffle;
  l->drop_last = drop_last;
  l->aug = *aug;
  l->seed = seed;
  l->count = n;
  l->world = 1;
  l->nslots = prefetch;
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
    return gam__err("loader: out of memory for %d batches of %lld samples", prefetch,
                    (long long)batch_size);
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

static void *worker(void *arg) {
  gam_loader *l = arg;
  unpin_self();
  const uint8_t *img = gam__data(l->images);
  const int64_t *lab = gam__i64(l->labels);
  for (int64_t b = 0; b < l->nbatches; b++) {
    loader_slot *s = &l->slots[b % l->nslots];
    pthread_mutex_lock(&l->mu);
    while (s->state != SLOT_FREE && !l->stop) pthread_cond_wait(&l->cv, &l->mu);
    int stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    if (stop) break;
    int64_t first = b * l->batch, count = l->count - first < l->batch ? l->count - first : l->batch;
    uint64_t rng[2]; /* rank r > 0 draws its own augmentation stream */
    gam_rng_derive(rng, l->seed, (uint64_t)l->epoch, ((uint64_t)l->rank << 40) + (uint64_t)b + 1);
    assemble(s->x, s->y, img, lab, l->order + first, count, l->C, l->H, l->W, &l->aug, rng);
    pthread_mutex_lock(&l->mu);
    s->count = count;
    s->state = SLOT_READY;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
  }
  return NULL;
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
  while (s->state != SLOT_READY) pthread_cond_wait(&l->cv, &l->mu);
  pthread_mutex_unlock(&l->mu);
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
