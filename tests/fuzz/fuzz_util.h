/* fuzz_util.h — shared by the libFuzzer targets: the input as a file.
 * The readers take paths, so each input is written to an in-memory file
 * (memfd) and read back through /proc/self/fd/N, a path of its own. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* the path of memory file `slot` (0..3) now holding n bytes of data */
static const char *fuzz_file(int slot, const uint8_t *data, size_t n) {
  static int fds[4] = {-1, -1, -1, -1};
  static char paths[4][64];
  if (fds[slot] < 0) {
    fds[slot] = memfd_create("fuzz", MFD_CLOEXEC);
    if (fds[slot] < 0) {
      perror("memfd_create");
      abort();
    }
    snprintf(paths[slot], sizeof paths[slot], "/proc/self/fd/%d", fds[slot]);
  }
  if (ftruncate(fds[slot], 0) != 0) abort();
  size_t at = 0;
  while (at < n) {
    ssize_t w = pwrite(fds[slot], data + at, n - at, (off_t)at);
    if (w <= 0) abort();
    at += (size_t)w;
  }
  return paths[slot];
}
