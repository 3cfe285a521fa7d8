/* train_tiny.c — trains a small MLP through libgam's C API only, as a program
 * built against an installed gamlua does it (tests/install_spec.lua):
 *
 *   cc train_tiny.c $(pkg-config --cflags --libs gam) -o train_tiny && ./train_tiny
 *
 * Data: 256 points x[256,4] of a fixed pseudo-random sequence, labelled by the
 * largest of 3 fixed linear scores (separable). Model: linear 4->16, relu,
 * linear 16->3; mean cross-entropy; SGD (lr 0.2, momentum 0.9) over the flat
 * parameter arena, 200 full-batch steps. Prints the first and last loss and the
 * accuracy; exits 0 when the loss fell below a quarter and accuracy >= 0.9. */
#include <gam.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(call)                                                            \
  do {                                                                         \
    if ((call) != 0) {                                                         \
      fprintf(stderr, "train_tiny: %s failed: %s\n", #call, gam_last_error()); \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

enum { N = 256, IN = 4, HIDDEN = 16, CLASSES = 3, STEPS = 200 };

static double next_uniform(uint64_t *s) { /* in [-1, 1) */
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(*s >> 11) / (double)(1ULL << 53) * 2.0 - 1.0;
}

/* logits[N,CLASSES] = linear(relu(linear(x, w1, b1)), w2, b2) */
static gam_tensor *forward(gam_tensor *x, gam_tensor *w1, gam_tensor *b1, gam_tensor *w2, gam_tensor *b2) {
  gam_tensor *h, *a, *logits;
  CHECK(gam_linear(&h, x, w1, b1));
  CHECK(gam_relu(&a, h));
  CHECK(gam_linear(&logits, a, w2, b2));
  gam_release(h);
  gam_release(a);
  return logits;
}

int main(void) {
  static float xs[N * IN];
  static int64_t ys[N];
  static const float score[CLASSES][IN] = {{1, -1, 0.5f, 0}, {-0.5f, 1, 1, -1}, {0, 0.5f, -1, 1}};
  uint64_t s = 42;
  for (int i = 0; i < N; i++) {
    for (int k = 0; k < IN; k++) xs[i * IN + k] = (float)next_uniform(&s);
    int best = 0;
    float best_v = -1e30f;
    for (int c = 0; c < CLASSES; c++) {
      float v = 0;
      for (int k = 0; k < IN; k++) v += score[c][k] * xs[i * IN + k];
      if (v > best_v) best_v = v, best = c;
    }
    ys[i] = best;
  }
  printf("libgam %s\n", gam_version());
  gam_tensor *x, *y;
  CHECK(gam_from_data(&x, GAM_FLOAT32, 2, (int64_t[]){N, IN}, xs));
  CHECK(gam_from_data(&y, GAM_INT64, 1, (int64_t[]){N}, ys));

  CHECK(gam_manual_seed(0));
  gam_tensor *p[4];
  CHECK(gam_randn(&p[0], 2, (int64_t[]){HIDDEN, IN}, 0, 0.5));
  CHECK(gam_zeros(&p[1], GAM_FLOAT32, GAM_CPU, 1, (int64_t[]){HIDDEN}));
  CHECK(gam_randn(&p[2], 2, (int64_t[]){CLASSES, HIDDEN}, 0, 0.25));
  CHECK(gam_zeros(&p[3], GAM_FLOAT32, GAM_CPU, 1, (int64_t[]){CLASSES}));
  for (int k = 0; k < 4; k++) CHECK(gam_set_requires_grad(p[k], 1));
  gam_tensor *flat, *flat_grad, *momentum;
  CHECK(gam_flatten_params(p, 4, &flat, &flat_grad));
  CHECK(gam_zeros(&momentum, GAM_FLOAT32, GAM_CPU, 1, flat->shape));

  double first = 0, last = 0;
  for (int step = 0; step < STEPS; step++) {
    CHECK(gam_fill_(flat_grad, 0));
    gam_tensor *logits = forward(x, p[0], p[1], p[2], p[3]), *per, *loss;
    CHECK(gam_cross_entropy(&per, logits, y));
    CHECK(gam_mean(&loss, per));
    CHECK(gam_backward(loss, NULL));
    CHECK(gam_item(loss, &last));
    if (step == 0) first = last;
    CHECK(gam_sgd_step(flat, flat_grad, momentum, NULL, 0.2, 0.9, 0, 0, 0, step == 0));
    gam_release(loss);
    gam_release(per);
    gam_release(logits);
  }

  gam_set_grad_enabled(0);
  gam_tensor *logits = forward(x, p[0], p[1], p[2], p[3]), *pred;
  CHECK(gam_argmax(&pred, logits, 1, 0));
  static int64_t got[N];
  CHECK(gam_copy_to_host(pred, got, sizeof got));
  int correct = 0;
  for (int i = 0; i < N; i++) correct += got[i] == ys[i];
  double acc = (double)correct / N;
  printf("loss %.4f -> %.4f, accuracy %.3f\n", first, last, acc);

  /* a bad call returns -1 and says why in gam_last_error */
  gam_tensor *bad;
  if (gam_matmul(&bad, x, x) == 0 || !gam_last_error()[0]) {
    fprintf(stderr, "train_tiny: expected an error from matmul [256,4] x [256,4]\n");
    return 1;
  }
  printf("error: %s\n", gam_last_error());

  gam_release(pred);
  gam_release(logits);
  for (int k = 0; k < 4; k++) gam_release(p[k]);
  gam_release(flat);
  gam_release(flat_grad);
  gam_release(momentum);
  gam_release(x);
  gam_release(y);
  return last < first / 4 && acc >= 0.9 ? 0 : 2;
}
