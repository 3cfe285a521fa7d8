/* arena.c — the flat parameter arena.
 *
 * gam_flatten_params moves a model's parameters into one contiguous buffer and
 * their gradients into another: afterwards params[i] is a view of
 * flat[o_i : o_i + numel_i] and params[i]->grad a view of the same slice of
 * flat_grad. The parameter tensors stay the same objects (every holder sees
 * the move), so optimisers can work on two flat vectors in one fused pass. */
#include "backend.h"

/* dst[0..n) = src[0..n) on the arena's device */
static int copy_floats(int device, float *dst, const float *src, int64_t n) {
  if (n == 0) return 0;
  return gam__backend(device)->copy(dst, src, (size_t)n * sizeof(float), "flatten_params");
}

int gam_flatten_params(gam_tensor **params, int n, gam_tensor **flat, gam_tensor **flat_grad) {
  GAM_CHECK(params && n >= 1, "flatten_params: no parameters given");
  int64_t total = 0;
  for (int k = 0; k < n; k++) {
    char arg[32];
    snprintf(arg, sizeof arg, "parameter %d", k + 1);
    GAM_TRY(gam__check_float_dev(params[k], "flatten_params", arg));
    GAM_CHECK(!params[k]->grad_fn, "flatten_params: parameter %d is not a leaf (made by %s)", k + 1,
              params[k]->grad_fn->name);
    GAM_CHECK(params[k]->device == params[0]->device,
              "flatten_params: parameter %d is on %s, parameter 1 on %s", k + 1,
              gam__device_name(params[k]->device), gam__device_name(params[0]->device));
    for (int j = 0; j < k; j++)
      GAM_CHECK(params[j] != params[k], "flatten_params: parameter %d is parameter %d again", k + 1, j + 1);
    if (params[k]->grad) {
      GAM_CHECK(params[k]->grad->device == params[k]->device && params[k]->grad->numel == params[k]->numel,
                "flatten_params: the gradient of parameter %d does not match it", k + 1);
    }
    total += params[k]->numel;
  }
  int device = params[0]->device;
  gam_tensor *f = gam__new(GAM_FLOAT32, device, 1, &total);
  gam_tensor *g = f ? gam__new_zeros_like(f) : NULL;
  if (!f || !g) return gam__fail(2, f, g);
  /* copy everything first, so that a failure leaves the parameters as they were */
  int64_t off = 0;
  for (int k = 0; k < n; k++) {
    gam_tensor *p = params[k];
    if (copy_floats(device, gam__f32(f) + off, gam__f32(p), p->numel) != 0 ||
        (p->grad && copy_floats(device, gam__f32(g) + off, gam__f32(p->grad), p->numel) != 0))
      return gam__fail(2, f, g);
    off += p->numel;
  }
  off = 0;
  for (int k = 0; k < n; k++) {
    gam_tensor *p = params[k];
    gam_tensor *gv = gam__alias(g, p->ndim, p->shape, off);
    if (!gv) return gam__fail(2, f, g);
    /* rebind p onto the arena */
    gam_storage *old = p->storage;
    p->storage = f->storage;
    p->storage->refcount++;
    p->offset = off;
    gam__storage_release(old);
    gam_release(p->grad);
    p->grad = gv;
    off += p->numel;
  }
  *flat = f;
  *flat_grad = g;
  return 0;
}

int gam_same_storage(const gam_tensor *a, const gam_tensor *b) {
  return a && b && a->storage && a->storage == b->storage;
}
