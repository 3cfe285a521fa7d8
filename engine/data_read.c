/* data_read.c — dataset readers: CIFAR binary batches and IDX files, gzipped
 * or not (zlib tells them apart by content).
 *
 * Every reader checks the whole file (size, header, label range, count
 * agreement) and names the file and the problem in its error: a damaged file
 * is an error, never a crash or a silently short dataset. Files are read as a
 * stream, never inflated ahead of need (below). */
#define _GNU_SOURCE
#include "internal.h"
#include <errno.h>
#include <sys/stat.h>
#include <zlib.h>

/* ---- streamed reading, through zlib so gzip is handled by content --------
 * Nothing is inflated ahead of need: a reader pulls exactly the bytes it
 * wants, and buffers grow with the bytes actually read (never to a size a
 * header merely claims), so a small corrupt .gz cannot make us allocate GBs. */
typedef struct input {
  const char *op, *path;
  gzFile f;
  int gzip;       /* the file starts with the gzip magic 1f 8b */
  uint64_t known; /* the decompressed size when known (plain regular file, gzip ISIZE), else 0 */
  uint64_t at;    /* bytes read so far */
} input;

static int in_open(input *in, const char *op, const char *path) {
  memset(in, 0, sizeof *in);
  in->op = op;
  in->path = path;
  GAM_CHECK(path && *path, "%s: file path is empty", op);
  FILE *probe = fopen(path, "rb");
  if (!probe) return gam__err("%s: cannot open %s: %s", op, path, strerror(errno));
  struct stat st;
  if (fstat(fileno(probe), &st) == 0 && S_ISDIR(st.st_mode)) {
    fclose(probe);
    return gam__err("%s: %s is a folder, not a file", op, path);
  }
  unsigned char m[2] = {0, 0};
  size_t got = fread(m, 1, 2, probe);
  in->gzip = got == 2 && m[0] == 0x1f && m[1] == 0x8b;
  if (S_ISREG(st.st_mode) && st.st_size > 0) {
    if (!in->gzip) {
      in->known = (uint64_t)st.st_size;
    } else if (st.st_size >= 18 && fseeko(probe, -4, SEEK_END) == 0) {
      unsigned char t[4]; /* ISIZE: the decompressed size mod 2^32, little-endian */
      if (fread(t, 1, 4, probe) == 4)
        in->known = (uint64_t)t[0] | (uint64_t)t[1] << 8 | (uint64_t)t[2] << 16 | (uint64_t)t[3] << 24;
      in->known |= (uint64_t)1 << 63; /* marks "mod 2^32" */
    }
  }
  fclose(probe);
  in->f = gzopen(path, "rb");
  if (!in->f) return gam__err("%s: cannot open %s: %s", op, path, strerror(errno ? errno : ENOMEM));
  gzbuffer(in->f, 1 << 17);
  return 0;
}

static void in_close(input *in) {
  if (in->f) gzclose(in->f);
  in->f = NULL;
}

/* Reads up to n bytes; *got says how many (fewer only at the end of the data). */
static int in_read(input *in, void *dst, size_t n, size_t *got) {
  *got = 0;
  while (*got < n) {
    size_t want = n - *got;
    if (want > (1u << 30)) want = 1u << 30;
    int r = gzread(in->f, (uint8_t *)dst + *got, (unsigned)want);
    if (r < 0) {
      int zerr;
      const char *msg = gzerror(in->f, &zerr);
      return zerr == Z_ERRNO
                 ? gam__err("%s: error reading %s: %s", in->op, in->path, strerror(errno))
                 : gam__err("%s: %s: gzip error: %s (the compressed file is corrupt)", in->op, in->path, msg);
    }
    if (r == 0) break;
    *got += (size_t)r;
  }
  in->at += *got;
  if (*got < n) { /* a gzip stream cut short reads as a short file plus Z_BUF_ERROR */
    int zerr;
    const char *msg = gzerror(in->f, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END)
      return gam__err("%s: %s: gzip error: %s (the compressed file is truncated or corrupt)", in->op,
                      in->path, msg);
  }
  return 0;
}

/* Reads at most max bytes into a malloc'd buffer (*data, *size), growing it
 * with the bytes read; *more says whether data remain after max. */
static int in_read_upto(input *in, uint64_t max, uint8_t **data, size_t *size, int *more) {
  *data = NULL;
  *size = 0;
  *more = 0;
  size_t cap = 0, n = 0;
  uint8_t *buf = NULL;
  for (;;) {
    if (n == max) break;
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : (1 << 20);
      if ((uint64_t)ncap > max) ncap = (size_t)max;
      uint8_t *nb = realloc(buf, ncap ? ncap : 1);
      if (!nb) {
        free(buf);
        return gam__err("%s: out of memory reading %s", in->op, in->path);
      }
      buf = nb;
      cap = ncap;
    }
    size_t want = cap - n, got;
    if (in_read(in, buf + n, want, &got) != 0) {
      free(buf);
      return -1;
    }
    n += got;
    if (got < want) break; /* the end of the data */
  }
  if (n == max) {
    uint8_t extra;
    size_t got;
    if (in_read(in, &extra, 1, &got) != 0) {
      free(buf);
      return -1;
    }
    *more = got > 0;
  }
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
  const uint64_t max_file = (uint64_t)1 << 28; /* the largest batch, CIFAR-100 train, is 154 MB */
  for (int k = 0; k < npaths && rc == 0; k++) {
    input in;
    int more = 0;
    rc = in_open(&in, "cifar", paths[k]);
    if (rc == 0) rc = in_read_upto(&in, max_file, &bufs[k], &sizes[k], &more);
    in_close(&in);
    if (rc) break;
    if (more) {
      rc = gam__err("cifar: %s holds more than %llu bytes, larger than any %s batch: not a %s batch",
                    paths[k], (unsigned long long)max_file, name, name);
    } else if (sizes[k] == 0) {
      rc = gam__err("cifar: %s is empty (a %s batch holds %zu-byte records)", paths[k], name, record);
    } else if (sizes[k] % record != 0) {
      rc = gam__err(
          "cifar: %s: size %zu bytes is not a whole number of %zu-byte %s records "
          "(%zu records and %zu bytes over): the file is truncated or not a %s batch",
          paths[k], sizes[k], record, name, sizes[k] / record, sizes[k] % record, name);
    } else {
      int64_t n = (int64_t)(sizes[k] / record);
      for (int64_t r = 0; r < n && rc == 0; r++) {
        int v = bufs[k][(size_t)r * record + (size_t)label_at];
        if (v >= nlabels)
          rc = gam__err(
              "cifar: %s: record %lld has %slabel %d, %s %slabels are 0..%d: the file is "
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
 * here), the number of dims d, then d big-endian uint32 sizes; the data follow.
 * The header is read first and checked against the size of the file (for a
 * gzip file, against the decompressed size its trailer records, mod 2^32);
 * then exactly the promised bytes are read, and nothing may follow them. */
int gam_read_idx(gam_tensor **out, const char *path) {
  *out = NULL;
  input in;
  if (in_open(&in, "idx", path) != 0) return -1;
  uint8_t h[4 + 4 * 4];
  size_t got;
  int rc = in_read(&in, h, 4, &got);
  if (rc == 0 && got < 4)
    rc = gam__err("idx: %s is truncated: %zu bytes, shorter than an IDX header", path, got);
  if (rc == 0 && !(h[0] == 0 && h[1] == 0 && h[2] == 0x08 && h[3] >= 1 && h[3] <= 4)) {
    uint32_t magic = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    rc = gam__err(
        "idx: %s: bad magic number 0x%08x (an IDX file of unsigned bytes starts with "
        "00 00 08 and a dim count 1..4): not an IDX file, or a gzip file that lost its header",
        path, magic);
  }
  int d = rc == 0 ? h[3] : 0;
  uint64_t hdr = 4 + 4 * (uint64_t)d;
  if (rc == 0) rc = in_read(&in, h + 4, 4 * (size_t)d, &got);
  if (rc == 0 && got < 4 * (size_t)d)
    rc = gam__err("idx: %s is truncated: %llu bytes, the header of a %d-dim IDX file needs %llu", path,
                  (unsigned long long)(4 + got), d, (unsigned long long)hdr);
  int64_t shape[4];
  uint64_t count = 1;
  for (int k = 0; rc == 0 && k < d; k++) {
    const uint8_t *p = h + 4 + 4 * k;
    shape[k] = (int64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
    if (shape[k] && count > (((uint64_t)1 << 40) - 1) / (uint64_t)shape[k])
      rc = gam__err("idx: %s: header sizes are absurd (more than 2^40 bytes of data)", path);
    else
      count *= (uint64_t)shape[k];
  }
  uint64_t total = hdr + count;
  if (rc == 0 && in.known && !in.gzip && in.known != total)
    rc = in.known < total
             ? gam__err("idx: %s is truncated: the header promises %llu data bytes, the file has %llu", path,
                        (unsigned long long)count, (unsigned long long)(in.known - hdr))
             : gam__err(
                   "idx: %s: %llu bytes follow the %llu data bytes the header promises: the file is corrupt",
                   path, (unsigned long long)(in.known - total), (unsigned long long)count);
  if (rc == 0 && in.known && in.gzip && (uint32_t)in.known != (uint32_t)total)
    rc = gam__err(
        "idx: %s: gzip error: the header promises %llu data bytes (%llu in all), but the gzip trailer "
        "records %llu bytes (mod 2^32) decompressed: the file is truncated or corrupt",
        path, (unsigned long long)count, (unsigned long long)total, (unsigned long long)(uint32_t)in.known);
  uint8_t *buf = NULL;
  size_t n = 0;
  int more = 0;
  if (rc == 0) rc = in_read_upto(&in, count, &buf, &n, &more);
  if (rc == 0 && n < count)
    rc = gam__err("idx: %s is truncated: the header promises %llu data bytes, the file has %zu", path,
                  (unsigned long long)count, n);
  if (rc == 0 && more)
    rc = gam__err("idx: %s: bytes follow the %llu data bytes the header promises: the file is corrupt", path,
                  (unsigned long long)count);
  in_close(&in);
  if (rc == 0) {
    *out = gam__new(GAM_UINT8, GAM_CPU, d, shape);
    if (!*out)
      rc = -1;
    else if (count)
      memcpy(gam__data(*out), buf, (size_t)count);
  }
  free(buf);
  return rc;
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
  if (im->shape[0] < 1 || im->shape[1] < 1 || im->shape[2] < 1) {
    gam__err(
        "idx dataset: images file %s has shape %s: a dataset needs at least one image of at least "
        "1x1 pixels (an IDX header with 0 images, rows or columns)",
        images_path, gam__shape_str(im, s1));
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
