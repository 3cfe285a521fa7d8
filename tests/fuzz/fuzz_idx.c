/* fuzz_idx.c — the IDX reader (plain, or gzip when the input starts with 1f 8b)
 * and the IDX pair reader: the first byte splits the input into an images part
 * and a labels part. Any outcome but a clean return or a clean error is a bug. */
#include "fuzz_util.h"
#include "gam.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  gam_tensor *t = NULL, *lb = NULL;
  if (gam_read_idx(&t, fuzz_file(0, data, n)) == 0) gam_release(t);
  if (n >= 1) {
    size_t cut = 1 + (size_t)data[0] * (n - 1) / 256; /* images = data[1..cut), labels = the rest */
    const char *im = fuzz_file(1, data + 1, cut - 1), *lab = fuzz_file(2, data + cut, n - cut);
    if (gam_read_idx_dataset(&t, &lb, im, lab, 10) == 0) {
      gam_release(t);
      gam_release(lb);
    }
  }
  return 0;
}
