/* autograd.c — the recorded graph and backward().
 *
 * Each differentiable op, when grad mode is on and an input requires grad,
 * links its output to a gam_node holding the inputs and whatever backward
 * needs. backward() orders the nodes reachable from the root (depth first,
 * children before parents), then walks them from the root down, handing each
 * node the gradient of its output; leaves accumulate into .grad. After a
 * backward the nodes drop their saved tensors, so intermediates are freed as
 * soon as the tensors that name them are. */
#include "backend.h"

static _Thread_local int grad_enabled = 1;

int gam_set_grad_enabled(int enabled) {
  int prev = grad_enabled;
  grad_enabled = enabled != 0;
  return prev;
}

int gam_is_grad_enabled(void) { return grad_enabled; }

int gam__grad_needed(int n, gam_tensor *const *inputs) {
  if (!grad_enabled) return 0;
  for (int k = 0; k < n; k++)
    if (inputs[k] && inputs[k]->requires_grad) return 1;
  return 0;
}

gam_node *gam__record(gam_tensor *out, const char *name, gam_backward_fn fn, int n,
                      gam_tensor *const *inputs) {
  gam_node *node = calloc(1, sizeof *node);
  gam_tensor **in = calloc((size_t)(n ? n : 1), sizeof *in);
  if (!node || !in) {
    free(node);
    free(in);
    gam__err("%s: out of memory recording the autograd graph", name);
    return NULL;
  }
  node->refcount = 1;
  node->name = name;
  node->backward = fn;
  node->ninputs = n;
  node->inputs = in;
  for (int k = 0; k < n; k++) {
    in[k] = inputs[k];
    gam_retain(in[k]);
  }
  node->out_ndim = out->ndim;
  memcpy(node->out_shape, out->shape, sizeof node->out_shape);
  gam__node_release(out->grad_fn);
  out->grad_fn = node;
  out->requires_grad = 1;
  return node;
}

int gam__save(gam_node *n, int slot, gam_tensor *t) {
  if (slot < 0 || slot >= GAM_NODE_SAVED) return gam__err("%s: bad saved slot", n->name);
  gam_tensor *keep = t;
  if (t->grad_fn == n) { /* the op's own output: save an alias, not the tensor */
    keep = gam__alias(t, t->ndim, t->shape, 0);
    if (!keep) return -1;
  } else {
    gam_retain(t);
  }
  gam_release(n->saved[slot]);
  n->saved[slot] = keep;
  return 0;
}

void *gam__node_ctx(gam_node *n, size_t bytes) {
  void *c = calloc(1, bytes);
  if (!c) {
    gam__err("%s: out of memory recording the autograd graph", n->name);
    return NULL;
  }
  if (n->ctx_free && n->ctx) n->ctx_free(n->ctx);
  n->ctx = c;
  n->ctx_free = free;
  return c;
}

static void node_free_state(gam_node *n) {
  for (int k = 0; k < GAM_NODE_SAVED; k++) {
    gam_release(n->saved[k]);
    n->saved[k] = NULL;
  }
  if (n->ctx_free && n->ctx) n->ctx_free(n->ctx);
  n->ctx = NULL;
  gam_release(n->grad);
  n->grad = NULL;
}

void gam__node_release(gam_node *n) {
  if (!n || --n->refcount > 0) return;
  node_free_state(n);
  for (int k = 0; k < n->ninputs; k++) gam_release(n->inputs[k]);
  free(n->inputs);
  free(n);
}

int gam__input_needs_grad(const gam_node *n, int i) {
  return i < n->ninputs && n->inputs[i] && n->inputs[i]->requires_grad;
}

/* dst += src elementwise (same numel, float32, same device) */
static int add_into(gam_tensor *dst, const gam_tensor *src) {
  return gam__be(dst)->axpy(gam__f32(dst), gam__f32(src), 1.0f, dst->numel);
}

/* dst = src (same numel, float32, same device) */
static int copy_into(gam_tensor *dst, const gam_tensor *src) {
  return gam__be(dst)->copy(gam__f32(dst), gam__f32(src), (size_t)dst->numel * 4, "backward");
}

int gam__accumulate(gam_node *n, int i, gam_tensor *g) {
  gam_tensor *x = n->inputs[i];
  char b1[160], b2[160];
  if (g->numel != x->numel)
    return gam__err("%s backward: gradient %s does not match input %s", n->name, gam__shape_str(g, b1),
                    gam__shape_str(x, b2));
  if (g->device != x->device)
    return gam__err("%s backward: gradient on %s for an input on %s", n->name, gam__device_name(g->device),
                    gam__device_name(x->device));
  if (x->grad_fn) { /* interior: sum into the producing node's gradient */
    gam_node *p = x->grad_fn;
    if (!p->grad) {
      gam_retain(g);
      p->grad = g;
    } else if (p->grad->refcount > 1 || p->grad->storage->refcount > 1) { /* shared: copy on write */
      gam_tensor *sum = gam__new_like(p->grad);
      if (!sum) return -1;
      if (copy_into(sum, p->grad) != 0 || add_into(sum, g) != 0) return gam__fail(1, sum);
      gam_release(p->grad);
      p->grad = sum;
    } else {
      GAM_TRY(add_into(p->grad, g));
    }
    return 0;
  }
  if (!x->grad) { /* leaf: first gradient is an owned copy with x's shape */
    gam_tensor *c = gam__new(GAM_FLOAT32, x->device, x->ndim, x->shape);
    if (!c) return -1;
    if (copy_into(c, g) != 0) return gam__fail(1, c);
    x->grad = c;
  } else {
    GAM_TRY(add_into(x->grad, g));
  }
  return 0;
}

/* ---- backward ------------------------------------------------------------- */
static unsigned visit_mark;

typedef struct {
  gam_node **v;
  int64_t n, cap;
} node_list;

static int push(node_list *l, gam_node *n) {
  if (l->n == l->cap) {
    int64_t cap = l->cap ? l->cap * 2 : 64;
    gam_node **v = realloc(l->v, (size_t)cap * sizeof *v);
    if (!v) return gam__err("backward: out of memory ordering the graph");
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = n;
  return 0;
}

/* Post-order of the nodes reachable from root, iteratively: order ends with
 * root, and every node comes after all the nodes that consume its output. */
static int topo_order(gam_node *root, node_list *order) {
  node_list stack = {0};
  node_list child_at = {0}; /* parallel stack: next input index to visit, stored as pointer-int */
  unsigned mark = ++visit_mark;
  int rc = push(&stack, root);
  if (!rc) rc = push(&child_at, (gam_node *)(intptr_t)0);
  root->mark = mark;
  while (!rc && stack.n) {
    gam_node *n = stack.v[stack.n - 1];
    intptr_t k = (intptr_t)child_at.v[child_at.n - 1];
    if (k < n->ninputs) {
      child_at.v[child_at.n - 1] = (gam_node *)(k + 1);
      gam_tensor *x = n->inputs[k];
      if (x && x->grad_fn && x->grad_fn->mark != mark) {
        x->grad_fn->mark = mark;
        rc = push(&stack, x->grad_fn);
        if (!rc) rc = push(&child_at, (gam_node *)(intptr_t)0);
      }
    } else {
      stack.n--;
      child_at.n--;
      rc = push(order, n);
    }
  }
  free(stack.v);
  free(child_at.v);
  return rc;
}

int gam_backward(gam_tensor *t, gam_tensor *grad) {
  GAM_TRY(gam__check_dev(t, "backward", "tensor"));
  GAM_CHECK(t->requires_grad, "backward: tensor does not require grad (no input asked for one)");
  GAM_CHECK(t->dtype == GAM_FLOAT32, "backward: tensor must be float32, got %s", gam__dtype_name(t->dtype));
  gam_tensor *seed;
  char b1[160], b2[160];
  if (grad) {
    GAM_TRY(gam__check_float_dev(grad, "backward", "gradient"));
    GAM_CHECK(gam__same_shape(grad, t), "backward: gradient %s does not match tensor %s",
              gam__shape_str(grad, b1), gam__shape_str(t, b2));
    GAM_CHECK(grad->device == t->device, "backward: gradient is on %s, tensor on %s",
              gam__device_name(grad->device), gam__device_name(t->device));
    gam_retain(grad);
    seed = grad;
  } else {
    GAM_CHECK(t->numel == 1, "backward: tensor %s is not a scalar; pass the gradient of the output",
              gam__shape_str(t, b1));
    seed = gam__new(GAM_FLOAT32, t->device, t->ndim, t->shape);
    if (!seed) return -1;
    if (gam_fill_(seed, 1.0) != 0) return gam__fail(1, seed);
  }
  if (!t->grad_fn) { /* a leaf */
    gam_node fake = {.name = "backward", .ninputs = 1, .inputs = &t};
    int rc = gam__accumulate(&fake, 0, seed);
    gam_release(seed);
    return rc;
  }
  gam_node *root = t->grad_fn;
  if (root->freed) {
    gam_release(seed);
    return gam__err(
        "backward: the graph of this tensor was already used by a backward; "
        "run the forward again");
  }
  node_list order = {0};
  if (topo_order(root, &order) != 0) {
    gam_release(seed);
    return -1;
  }
  gam_release(root->grad);
  root->grad = seed;
  int prev = gam_set_grad_enabled(0);
  int rc = 0;
  for (int64_t k = order.n - 1; k >= 0 && rc == 0; k--) {
    gam_node *n = order.v[k];
    if (n->freed) {
      rc = gam__err("backward: part of the graph (%s) was already used by a backward", n->name);
    } else if (n->grad) {
      gam_tensor *g = n->grad;
      n->grad = NULL;
      rc = n->backward(n, g);
      gam_release(g);
    }
  }
  for (int64_t k = 0; k < order.n; k++) { /* free what backward needed */
    node_free_state(order.v[k]);
    order.v[k]->freed = 1;
  }
  gam_set_grad_enabled(prev);
  free(order.v);
  return rc;
}

int gam_set_requires_grad(gam_tensor *t, int flag) {
  GAM_TRY(gam__check_dev(t, "requires_grad", "tensor"));
  GAM_CHECK(!t->grad_fn, "requires_grad: only leaf tensors can change it (this one comes from %s)",
            t->grad_fn->name);
  GAM_CHECK(!flag || t->dtype == GAM_FLOAT32,
            "requires_grad: only float32 tensors can require "
            "grad, this one is %s",
            gam__dtype_name(t->dtype));
  t->requires_grad = flag != 0;
  return 0;
}

int gam_get_grad(gam_tensor **out, gam_tensor *t) {
  GAM_TRY(gam__check_dev(t, "grad", "tensor"));
  gam_retain(t->grad);
  *out = t->grad;
  return 0;
}

int gam_set_grad(gam_tensor *t, gam_tensor *grad) {
  GAM_TRY(gam__check_dev(t, "grad", "tensor"));
  if (grad) {
    GAM_TRY(gam__check_float_dev(grad, "grad", "gradient"));
    char b1[160], b2[160];
    GAM_CHECK(gam__same_shape(grad, t), "grad: gradient %s does not match tensor %s",
              gam__shape_str(grad, b1), gam__shape_str(t, b2));
    GAM_CHECK(grad->device == t->device, "grad: gradient is on %s, tensor on %s",
              gam__device_name(grad->device), gam__device_name(t->device));
    gam_retain(grad);
  }
  gam_release(t->grad);
  t->grad = grad;
  return 0;
}

int gam_detach(gam_tensor **out, gam_tensor *t) {
  GAM_TRY(gam__check_dev(t, "detach", "tensor"));
  *out = gam__alias(t, t->ndim, t->shape, 0);
  return *out ? 0 : -1;
}

const char *gam_grad_fn_name(const gam_tensor *t) { return t && t->grad_fn ? t->grad_fn->name : NULL; }

/* Sum g over the dims in which shape was broadcast (size 1 or missing). */
int gam__reduce_to_shape(gam_tensor **out, gam_tensor *g, int ndim, const int64_t *shape) {
  if (g->ndim == ndim && memcmp(g->shape, shape, (size_t)ndim * sizeof *shape) == 0) {
    gam_retain(g);
    *out = g;
    return 0;
  }
  gam_tensor *r = gam__new(GAM_FLOAT32, g->device, ndim, shape);
  if (!r) return -1;
  if (gam__be(g)->sum_to_shape(gam__f32(g), g->ndim, g->shape, gam__f32(r), ndim, shape) != 0)
    return gam__fail(1, r);
  *out = r;
  return 0;
}

/* r [shape] = g [gshape] summed over broadcast dims, in g's element order */
int gam_cpu_sum_to_shape(const float *gp, int gndim, const int64_t *gshape, float *rp, int ndim,
                         const int64_t *shape) {
  int64_t gnumel = gam__numel(gndim, gshape);
  memset(rp, 0, (size_t)gam__numel(ndim, shape) * 4);
  /* map every index of g onto r: r's dims align with g's trailing dims */
  int lead = gndim - ndim;
  int64_t rstride[GAM_MAX_DIMS]; /* stride in r for each dim of g, 0 if broadcast */
  int64_t s = 1;
  for (int d = gndim - 1; d >= 0; d--) {
    int rd = d - lead;
    if (rd < 0 || shape[rd] == 1)
      rstride[d] = 0;
    else
      rstride[d] = s;
    if (rd >= 0) s *= shape[rd];
  }
  int64_t idx[GAM_MAX_DIMS] = {0}, roff = 0;
  for (int64_t i = 0; i < gnumel; i++) {
    rp[roff] += gp[i];
    for (int d = gndim - 1; d >= 0; d--) {
      roff += rstride[d];
      if (++idx[d] < gshape[d]) break;
      roff -= rstride[d] * gshape[d];
      idx[d] = 0;
    }
  }
  return 0;
}
