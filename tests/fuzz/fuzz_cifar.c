/* fuzz_cifar.c — the CIFAR binary batch reader. The first byte picks the
 * variant (CIFAR-10, CIFAR-100 fine or coarse) and how many copies of the
 * file are read as one dataset (1..3); the rest is the file. */
#include "fuzz_util.h"
#include "gam.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  if (n < 1) return 0;
  int mode = data[0] % 3, copies = 1 + (data[0] / 3) % 3;
  const char *p = fuzz_file(0, data + 1, n - 1);
  const char *paths[3] = {p, p, p};
  gam_tensor *im = NULL, *lb = NULL;
  if (gam_read_cifar(&im, &lb, paths, copies, mode == 0 ? 10 : 100, mode == 2) == 0) {
    gam_release(im);
    gam_release(lb);
  }
  return 0;
}
