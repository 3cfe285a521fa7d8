/* arena.c — the flat parameter arena.
 *
 * gam_flatten_params moves a model's parameters into one contiguous buffer and
 * their gradients into another: afterwards params[i] is a view of
 * flat[o_i : o_i + numel_i] and params[i]->grad a view of the same slice of
 * flat_grad. The parameter tensors stay the same objects (every holder sees
 * the move), so optimisers can work on two flat vectors in one fused pass. */
#include "internal.h"

int gam_flatten_params(gam_tensor **params, int n, gam_tensor **flat, gam_tensor **flat_grad) {
  GAM_CHECK(params && n >= 1, "flatten_params: no parameters given");
  int64_t total = 0;
  for (int k = 0; k < n; k++) {
    char arg[32];
    snprintf(arg, sizeof arg, "parameter %d", k + 1);
    GAM_TRY(gam__check_float(params[k], "flatten_params", arg));
    GAM_CHECK(!params[k]->grad_fn, "flatten_params: parameter %d is not a leaf (made by %s)", k + 1,
              params[k]->grad_fn->name);
    GAM_CHECK(params[k]->device == params[0]->device,
              "flatten_params: parameter %d is on %s, parameter 1 on %s", k + 1,
              gam__device_name(params[k]->device), gam__device_name(params[0]->device));
    for (int j = 0; j < k; j++)
      GAM_CHECK(params[j] != params[k], "flatten_params: parameter %d is parameter %d again", k + 1, j + 1);
    total += params[k]->numel;
  }
  gam_tensor *f = gam__new(GAM_FLOAT32, params[0]->device, 1, &total);
  gam_tensor *g = gam__new(GAM_FLOAT32, params[0]->device, 1, &total);
  if (!f || !g) return gam__fail(2, f, g);
  memset(gam__data(g), 0, (size_t)total * sizeof(float));
  int64_t off = 0;
  for (int k = 0; k < n; k++) {
    gam_tensor *p = params[k];
    gam_tensor *gv = gam__alias(g, p->ndim, p->shape, off);
    if (!gv) return gam__fail(2, f, g);
    memcpy(gam__f32(f) + off, gam__f32(p), (size_t)p->numel * sizeof(float));
    if (p->grad) memcpy(gam__f32(gv), gam__f32(p->grad), (size_t)p->numel * sizeof(float));
    /* rebind p onto the arena */
    gam_storage *old = p->storage;
    p->storage = f->storage;
    p->storage->refcount++;
    p->offset = off;
    if (--old->refcount == 0) {
      gam__host_free(old->data, old->bytes);
      free(old);
    }
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
