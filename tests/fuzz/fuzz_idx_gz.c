/* fuzz_idx_gz.c — the IDX reader through gzip: the input is gzip-compressed
 * here, so the fuzzer works on the decompressed bytes (header, sizes, data)
 * while every read goes through the streamed gzip path; the last input byte
 * chooses a damage to the compressed file (none, cut short, trailer flipped). */
#include "fuzz_util.h"
#include "gam.h"
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  if (n < 1) return 0;
  int damage = data[n - 1] % 4;
  n--;
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 1, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
  size_t cap = deflateBound(&z, n) + 32;
  uint8_t *gz = malloc(cap);
  z.next_in = (Bytef *)data;
  z.avail_in = (uInt)n;
  z.next_out = gz;
  z.avail_out = (uInt)cap;
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
  size_t len = z.total_out;
  deflateEnd(&z);
  if (damage == 1 && len > 10) len -= 1 + len % 7;  /* cut short */
  if (damage == 2 && len > 4) gz[len - 2] ^= 0x5a;  /* ISIZE damaged */
  if (damage == 3 && len > 20) gz[len / 2] ^= 0xff; /* deflate data damaged */
  gam_tensor *t = NULL;
  if (gam_read_idx(&t, fuzz_file(0, gz, len)) == 0) gam_release(t);
  free(gz);
  return 0;
}
