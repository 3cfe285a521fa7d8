/* checkpoint.c — the file primitives under gam.save / gam.load: CRC-32,
 * atomic writes and whole-file reads. The checkpoint format itself (header,
 * value encoding, checksum trailer) is defined and documented in
 * lua/gam/checkpoint.lua, which builds the byte stream.
 *
 * Atomic write: the parts go to a fresh temporary file in the destination's
 * folder (".<name>.tmp.XXXXXX"), which is fsync'ed, renamed over the
 * destination, and the folder fsync'ed; a reader sees either the old file or
 * the complete new one. On any failure the temporary file is removed. */
#define _GNU_SOURCE
#include "internal.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

uint32_t gam_crc32(uint32_t crc, const void *data, size_t n) {
  const Bytef *p = data;
  uLong c = crc;
  while (n > 0) { /* zlib takes uInt lengths */
    uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
    c = crc32(c, p, k);
    p += k;
    n -= k;
  }
  return (uint32_t)c;
}

static int write_fully(int fd, const void *data, size_t n) {
  const char *p = data;
  while (n > 0) {
    ssize_t w = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int gam_write_file_atomic(const char *path, int n, const void *const *parts, const size_t *sizes) {
  GAM_CHECK(path && *path, "save: the path is empty");
  GAM_CHECK(n >= 0 && (n == 0 || (parts && sizes)), "save: no data to write to %s", path);
  GAM_CHECK(strlen(path) < PATH_MAX - 32, "save: path %s is too long", path);
  char dcopy[PATH_MAX], bcopy[PATH_MAX], tmp[PATH_MAX + 32];
  strcpy(dcopy, path);
  strcpy(bcopy, path);
  const char *dir = dirname(dcopy), *base = basename(bcopy);
  GAM_CHECK(*base && strcmp(base, "/") && strcmp(base, ".") && strcmp(base, ".."),
            "save: %s names a folder, not a file", path);
  snprintf(tmp, sizeof tmp, "%s/.%s.tmp.XXXXXX", dir, base);
  int fd = mkstemp(tmp);
  if (fd < 0)
    return gam__err("save: cannot create a temporary file in %s for %s: %s", dir, path,
                    strerror(errno));
  const char *step = "write";
  for (int k = 0; k < n; k++) {
    if (sizes[k] && write_fully(fd, parts[k], sizes[k]) != 0) goto fail;
  }
  step = "fsync";
  if (fsync(fd) != 0) goto fail;
  if (fchmod(fd, 0644) != 0) { /* mkstemp makes 0600; a checkpoint is an ordinary file */ }
  step = "close";
  if (close(fd) != 0) { fd = -1; goto fail; }
  fd = -1;
  step = "rename";
  if (rename(tmp, path) != 0) goto fail;
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return 0;
fail:;
  int e = errno;
  if (fd >= 0) close(fd);
  unlink(tmp);
  return gam__err("save: cannot %s %s (via %s): %s; nothing was written", step, path, tmp,
                  strerror(e));
}

int gam_read_file(const char *path, void **data, size_t *size) {
  *data = NULL;
  *size = 0;
  GAM_CHECK(path && *path, "load: the path is empty");
  int fd = open(path, O_RDONLY);
  if (fd < 0) return gam__err("load: cannot open %s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return gam__err("load: cannot stat %s: %s", path, strerror(e));
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return gam__err("load: %s is a folder, not a checkpoint file", path);
  }
  size_t n = (size_t)st.st_size;
  char *buf = malloc(n ? n : 1);
  if (!buf) {
    close(fd);
    return gam__err("load: out of memory reading %s (%zu bytes)", path, n);
  }
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got > ((size_t)1 << 30) ? ((size_t)1 << 30) : n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int e = r < 0 ? errno : 0;
      free(buf);
      close(fd);
      return gam__err("load: error reading %s: %s", path, e ? strerror(e) : "file shrank while reading");
    }
    got += (size_t)r;
  }
  close(fd);
  *data = buf;
  *size = n;
  return 0;
}

void gam_free_buffer(void *data) { free(data); }
