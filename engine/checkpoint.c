/* checkpoint.c — the file primitives under gam.save / gam.load: CRC-32,
 * atomic writes and whole-file reads. The checkpoint format itself (header,
 * value encoding, checksum trailer) is defined and documented in
 * lua/gam/checkpoint.lua, which builds the byte stream.
 *
 * Atomic write: the parts go to a fresh temporary file in the destination's
 * folder (".<name>.tmp.XXXXXX"), which is fsync'ed, renamed over the
 * destination, and the folder fsync'ed; a reader sees either the old file or
 * the complete new one. On any failure the temporary file is removed.
 *
 * A process killed during a write leaves its temporary file behind. Each
 * writer holds an exclusive flock on its temporary file while it lives, so a
 * later save (or gam_clean_temps, called on resume) removes the temporary
 * files of our own naming that nobody holds: the stale ones.
 *
 * SIGXFSZ (a write past the file-size limit, ulimit -f) would kill the
 * process; a write ignores it (when its action is the default), so that the
 * write fails with EFBIG, the error names it, and the previous file stays. */
#define _GNU_SOURCE
#include "internal.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <dirent.h>
#include <signal.h>
#include <sys/file.h>
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

/* the folder and file name of path (copies in dir/base) */
static int split_path(const char *op, const char *path, char *dir, char *base) {
  GAM_CHECK(path && *path, "%s: the path is empty", op);
  GAM_CHECK(strlen(path) < PATH_MAX - 32, "%s: path %s is too long", op, path);
  char dcopy[PATH_MAX], bcopy[PATH_MAX];
  strcpy(dcopy, path);
  strcpy(bcopy, path);
  snprintf(dir, PATH_MAX, "%s", dirname(dcopy));
  snprintf(base, PATH_MAX, "%s", basename(bcopy));
  GAM_CHECK(*base && strcmp(base, "/") && strcmp(base, ".") && strcmp(base, ".."),
            "%s: %s names a folder, not a file", op, path);
  return 0;
}

/* 1 when name is ".<base>.tmp.XXXXXX" (mkstemp's six letters or digits) */
static int is_our_temp(const char *name, const char *base) {
  size_t nb = strlen(base);
  if (name[0] != '.' || strncmp(name + 1, base, nb) != 0 || strncmp(name + 1 + nb, ".tmp.", 5) != 0) return 0;
  const char *x = name + 1 + nb + 5;
  if (strlen(x) != 6) return 0;
  for (int i = 0; i < 6; i++)
    if (!((x[i] >= 'a' && x[i] <= 'z') || (x[i] >= 'A' && x[i] <= 'Z') || (x[i] >= '0' && x[i] <= '9')))
      return 0;
  return 1;
}

int gam_clean_temps(const char *path, int *removed) {
  if (removed) *removed = 0;
  char dir[PATH_MAX], base[PATH_MAX];
  GAM_TRY(split_path("save", path, dir, base));
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? 0 : gam__err("save: cannot list %s: %s", dir, strerror(errno));
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!is_our_temp(e->d_name, base)) continue;
    int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st;
    /* a live writer holds the lock; a stale file has nobody */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0) {
      if (unlinkat(dirfd(d), e->d_name, 0) == 0 && removed) (*removed)++;
    }
    close(fd);
  }
  closedir(d);
  return 0;
}

static void ignore_sigxfsz(void) {
  struct sigaction old;
  if (sigaction(SIGXFSZ, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL)
    signal(SIGXFSZ, SIG_IGN);
}

int gam_write_file_atomic(const char *path, int n, const void *const *parts, const size_t *sizes) {
  GAM_CHECK(n >= 0 && (n == 0 || (parts && sizes)), "save: no data to write to %s", path ? path : "(null)");
  char dir[PATH_MAX], base[PATH_MAX], tmp[2 * PATH_MAX + 32];
  GAM_TRY(split_path("save", path, dir, base));
  ignore_sigxfsz();
  GAM_TRY(gam_clean_temps(path, NULL));
  snprintf(tmp, sizeof tmp, "%s/.%s.tmp.XXXXXX", dir, base);
  int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0)
    return gam__err("save: cannot create a temporary file in %s for %s: %s", dir, path, strerror(errno));
  flock(fd, LOCK_EX); /* ours while we live: gam_clean_temps leaves it alone */
  const char *step = "write";
  for (int k = 0; k < n; k++) {
    if (sizes[k] && write_fully(fd, parts[k], sizes[k]) != 0) goto fail;
  }
  step = "fsync";
  if (fsync(fd) != 0) goto fail;
  if (fchmod(fd, 0644) != 0) { /* mkstemp makes 0600; a checkpoint is an ordinary file */
  }
  step = "rename";
  if (rename(tmp, path) != 0) goto fail;
  close(fd); /* the data are on disk (fsync) and in place (rename) */
  fd = -1;
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
  const char *hint = e == EFBIG    ? " (a file-size limit: see ulimit -f)"
                     : e == ENOSPC ? " (the disk is full)"
                     : e == EDQUOT ? " (the disk quota is exceeded)"
                                   : "";
  return gam__err(
      "save: cannot %s %s (via %s): %s%s; nothing was written, the previous %s (if any) is "
      "unchanged",
      step, path, tmp, strerror(e), hint, path);
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
  /* read to the end: st_size is only a first guess (0 for files of /proc) */
  size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, n = 0;
  char *buf = malloc(cap);
  if (!buf) {
    close(fd);
    return gam__err("load: out of memory reading %s (%zu bytes)", path, cap);
  }
  for (;;) {
    if (n == cap) {
      char *nb = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
      if (!nb) {
        free(buf);
        close(fd);
        return gam__err("load: out of memory reading %s (more than %zu bytes)", path, n);
      }
      buf = nb;
      cap *= 2;
    }
    size_t want = cap - n > ((size_t)1 << 30) ? ((size_t)1 << 30) : cap - n;
    ssize_t r = read(fd, buf + n, want);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      free(buf);
      close(fd);
      return gam__err("load: error reading %s: %s", path, strerror(e));
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  close(fd);
  *data = buf;
  *size = n;
  return 0;
}

void gam_free_buffer(void *data) { free(data); }
