/* ops_conv.c — 2-D convolution, NCHW, through oneDNN.
 *
 *   y[n,o,i,j] = b[o] + sum_{c,p,q} x[n, c, i*sh - ph + p*dh, j*sw - pw + q*dw] w[o,c,p,q]
 *   x [N,C,H,W]   w [O,C,KH,KW]   b [O] or NULL   y [N,O,OH,OW]
 *   OH = (H + 2 ph - dh (KH-1) - 1) / sh + 1   (and the same for OW)
 *
 * Kernel choice, measured on the project's machine (AVX-512, one thread,
 * batch 32; forward + backward-data + backward-weights, in ms):
 *                                 oneDNN blocked   oneDNN plain   im2col+OpenBLAS
 *   3x3 64->64 on 32x32                 70.6           114.9          169.0
 *   3x3 128->128 on 16x16               65.0            88.3          112.1
 *   3x3 256->256 on 8x8                 58.6            81.2           93.5
 *   3x3 512->512 on 4x4                 57.9            92.2          103.9
 *   3x3 32->64 on 14x14 (cnn_small)      6.1             9.9           14.7
 * oneDNN's JIT kernels on the blocked layouts it prefers (nChw16c,
 * OIhw16i16o, ...), with reorders from and to our plain NCHW tensors around
 * every call, win everywhere except backward-data with very few input
 * channels (the stems: 1 or 3 channels), where the blocked kernel is 3-7x
 * slower than the plain-layout one; those use plain layouts. (Reorders cost
 * about 6% of ResNet-18's convolution time.)
 *
 * Primitives are cached per shape (conv_plan below): creating a oneDNN
 * primitive descriptor costs far more than a small convolution, and a training
 * loop repeats the same few shapes. oneDNN runs on the same OpenMP runtime as
 * the rest of the engine and uses omp_get_max_threads() threads.
 *
 * On the cuda device the same op runs through cuDNN (kernels/conv.cu: one
 * plan per shape, algorithms from cuDNN's heuristics with FMA math only, the
 * runtime's cached workspace). */
#include "backend.h"
#include <dnnl.h>
#include <pthread.h>

/* ---- oneDNN engine and stream (one each, made on first use) -------------- */
static dnnl_engine_t dnnl_eng;
static dnnl_stream_t dnnl_strm;
static pthread_once_t dnnl_once = PTHREAD_ONCE_INIT;
static dnnl_status_t dnnl_init_status = dnnl_success;

static void dnnl_init(void) {
  dnnl_init_status = dnnl_engine_create(&dnnl_eng, dnnl_cpu, 0);
  if (dnnl_init_status == dnnl_success)
    dnnl_init_status = dnnl_stream_create(&dnnl_strm, dnnl_eng, dnnl_stream_default_flags);
}

static int dnnl_ready(const char *op) {
  pthread_once(&dnnl_once, dnnl_init);
  GAM_CHECK(dnnl_init_status == dnnl_success, "%s: oneDNN could not start (status %d)", op,
            (int)dnnl_init_status);
  return 0;
}

#define DNNL_TRY(call, what)                                                                          \
  do {                                                                                                \
    dnnl_status_t st_ = (call);                                                                       \
    if (st_ != dnnl_success) return gam__err("conv2d: oneDNN failed %s (status %d)", what, (int)st_); \
  } while (0)

/* ---- one pass (forward, backward-data or backward-weights) ----------------
 * Each pass has three big tensor arguments (two read, one written) and
 * optionally the bias. Every big argument has a plain layout (ours) and the
 * layout the primitive wants; when they differ, a cached reorder converts
 * through a temporary buffer. */
enum { PASS_FWD, PASS_BWD_DATA, PASS_BWD_WEIGHTS };

typedef struct conv_arg {
  int id;                         /* DNNL_ARG_* */
  int written;                    /* 1 for the pass's output */
  dnnl_memory_desc_t plain;       /* nchw / oihw */
  const dnnl_memory_desc_t *want; /* owned by the pass's primitive descriptor */
  dnnl_memory_t mem;              /* in the wanted layout; data handle set per call */
  dnnl_primitive_t reorder;       /* plain -> want (read) or want -> plain (written); NULL when same */
  dnnl_memory_t plain_mem;        /* plain side of the reorder */
  size_t bytes;                   /* size of the wanted layout */
} conv_arg;

typedef struct conv_pass {
  dnnl_primitive_desc_t pd;
  dnnl_primitive_t prim;
  conv_arg arg[3];
  int bias_id; /* DNNL_ARG_BIAS, DNNL_ARG_DIFF_BIAS or 0 */
  dnnl_memory_t bias_mem;
} conv_pass;

typedef struct conv_shape {
  int64_t n, c, h, w, o, kh, kw, oh, ow, sh, sw, ph, pw, dh, dw, bias;
  int64_t winograd; /* 1: ask for oneDNN's Winograd kernels (see gam_conv2d_set_algorithm) */
} conv_shape;

typedef struct conv_plan {
  conv_shape s;
  int ready[3];
  conv_pass pass[3];
  uint64_t last_use;
} conv_plan;

static void pass_destroy(conv_pass *p) {
  for (int k = 0; k < 3; k++) {
    conv_arg *a = &p->arg[k];
    if (a->reorder) dnnl_primitive_destroy(a->reorder);
    if (a->plain_mem) dnnl_memory_destroy(a->plain_mem);
    if (a->mem) dnnl_memory_destroy(a->mem);
  }
  if (p->bias_mem) dnnl_memory_destroy(p->bias_mem);
  if (p->prim) dnnl_primitive_destroy(p->prim);
  if (p->pd) dnnl_primitive_desc_destroy(p->pd);
  memset(p, 0, sizeof *p);
}

static void plan_destroy(conv_plan *pl) {
  for (int k = 0; k < 3; k++) pass_destroy(&pl->pass[k]);
  free(pl);
}

/* memory, reorder for one argument once the pass's pd exists */
static int arg_setup(conv_arg *a, dnnl_primitive_desc_t pd, dnnl_query_t q) {
  a->want = dnnl_primitive_desc_query_md(pd, q, 0);
  if (!a->want) return gam__err("conv2d: oneDNN gave no layout for an argument");
  a->bytes = dnnl_memory_desc_get_size(a->want);
  DNNL_TRY(dnnl_memory_create(&a->mem, a->want, dnnl_eng, DNNL_MEMORY_NONE), "creating memory");
  if (dnnl_memory_desc_equal(a->want, &a->plain)) return 0;
  DNNL_TRY(dnnl_memory_create(&a->plain_mem, &a->plain, dnnl_eng, DNNL_MEMORY_NONE), "creating memory");
  dnnl_primitive_desc_t rpd;
  const dnnl_memory_desc_t *from = a->written ? a->want : &a->plain;
  const dnnl_memory_desc_t *to = a->written ? &a->plain : a->want;
  DNNL_TRY(dnnl_reorder_primitive_desc_create(&rpd, from, dnnl_eng, to, dnnl_eng, NULL),
           "creating a reorder");
  dnnl_status_t st = dnnl_primitive_create(&a->reorder, rpd);
  dnnl_primitive_desc_destroy(rpd);
  DNNL_TRY(st, "creating a reorder");
  return 0;
}

static void md_init(dnnl_memory_desc_t *md, int nd, const int64_t *dims, dnnl_format_tag_t tag) {
  dnnl_dims_t d;
  for (int k = 0; k < nd; k++) d[k] = dims[k];
  dnnl_memory_desc_init_by_tag(md, nd, d, dnnl_f32, tag);
}

/* Creates pass `which` of plan pl (the forward pass must exist for the others). */
static int pass_create(conv_plan *pl, int which) {
  const conv_shape *s = &pl->s;
  conv_pass *p = &pl->pass[which];
  int64_t xd[4] = {s->n, s->c, s->h, s->w}, wd[4] = {s->o, s->c, s->kh, s->kw};
  int64_t yd[4] = {s->n, s->o, s->oh, s->ow};
  dnnl_dims_t strides = {s->sh, s->sw}, dil = {s->dh - 1, s->dw - 1}, pad_l = {s->ph, s->pw};
  /* symmetric padding; oneDNN, like us, rounds the output size down */
  dnnl_dims_t pad_r = {s->ph, s->pw};
  /* few input channels: backward-data is faster on plain layouts (see top) */
  int plain = which == PASS_BWD_DATA && s->c <= 4;
  dnnl_format_tag_t any = dnnl_format_tag_any;
  dnnl_memory_desc_t x_md, w_md, y_md, b_md, x_plain, w_plain, y_plain;
  md_init(&x_plain, 4, xd, dnnl_nchw);
  md_init(&w_plain, 4, wd, dnnl_oihw);
  md_init(&y_plain, 4, yd, dnnl_nchw);
  md_init(&x_md, 4, xd, plain ? dnnl_nchw : any);
  md_init(&w_md, 4, wd, plain ? dnnl_oihw : any);
  md_init(&y_md, 4, yd, plain ? dnnl_nchw : any);
  md_init(&b_md, 1, &s->o, dnnl_x);
  const dnnl_memory_desc_t *bias = s->bias ? &b_md : NULL;
  const_dnnl_primitive_desc_t hint = which == PASS_FWD ? NULL : pl->pass[PASS_FWD].pd;
  /* Winograd when asked for and oneDNN has it for this pass, else direct */
  dnnl_status_t st = dnnl_unimplemented;
  for (int wino = s->winograd && !plain; st != dnnl_success && wino >= 0; wino--) {
    dnnl_alg_kind_t alg = wino ? dnnl_convolution_winograd : dnnl_convolution_direct;
    dnnl_convolution_desc_t cd;
    if (which == PASS_FWD)
      st = dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_training, alg, &x_md, &w_md, bias,
                                                      &y_md, strides, dil, pad_l, pad_r);
    else if (which == PASS_BWD_DATA)
      st = dnnl_dilated_convolution_backward_data_desc_init(&cd, alg, &x_md, &w_md, &y_md, strides, dil,
                                                            pad_l, pad_r);
    else
      st = dnnl_dilated_convolution_backward_weights_desc_init(&cd, alg, &x_md, &w_md, bias, &y_md, strides,
                                                               dil, pad_l, pad_r);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&p->pd, &cd, NULL, dnnl_eng, hint);
  }
  DNNL_TRY(st, "choosing a convolution kernel");
  DNNL_TRY(dnnl_primitive_create(&p->prim, p->pd), "creating a convolution primitive");
  static const struct {
    int id, written;
    dnnl_query_t q;
    int which_plain;
  } layout[3][3] = {
      /* which_plain: 0 = x, 1 = w, 2 = y */
      {{DNNL_ARG_SRC, 0, dnnl_query_src_md, 0},
       {DNNL_ARG_WEIGHTS, 0, dnnl_query_weights_md, 1},
       {DNNL_ARG_DST, 1, dnnl_query_dst_md, 2}},
      {{DNNL_ARG_DIFF_DST, 0, dnnl_query_diff_dst_md, 2},
       {DNNL_ARG_WEIGHTS, 0, dnnl_query_weights_md, 1},
       {DNNL_ARG_DIFF_SRC, 1, dnnl_query_diff_src_md, 0}},
      {{DNNL_ARG_SRC, 0, dnnl_query_src_md, 0},
       {DNNL_ARG_DIFF_DST, 0, dnnl_query_diff_dst_md, 2},
       {DNNL_ARG_DIFF_WEIGHTS, 1, dnnl_query_diff_weights_md, 1}},
  };
  const dnnl_memory_desc_t *plains[3] = {&x_plain, &w_plain, &y_plain};
  for (int k = 0; k < 3; k++) {
    conv_arg *a = &p->arg[k];
    a->id = layout[which][k].id;
    a->written = layout[which][k].written;
    a->plain = *plains[layout[which][k].which_plain];
    GAM_TRY(arg_setup(a, p->pd, layout[which][k].q));
  }
  if (s->bias && which != PASS_BWD_DATA) {
    p->bias_id = which == PASS_FWD ? DNNL_ARG_BIAS : DNNL_ARG_DIFF_BIAS;
    DNNL_TRY(dnnl_memory_create(&p->bias_mem, &b_md, dnnl_eng, DNNL_MEMORY_NONE), "creating memory");
  }
  pl->ready[which] = 1;
  return 0;
}

/* ---- algorithm: direct (default) or Winograd ----------------------------------
 * oneDNN's Winograd F(4x4, 3x3) kernels run the 3x3, stride-1 convolutions of
 * ResNet-style networks about 1.5-2x faster than the direct ones, at a small
 * cost in accuracy (relative error around 1e-5 instead of 1e-7); PyTorch's CPU
 * path does not use them. Opt-in; it applies to 3x3 kernels with stride 1,
 * dilation 1 and at least 16 input and output channels (below that the direct
 * kernels win), and falls back to direct where oneDNN has no Winograd kernel. */
static int conv_winograd;

int gam_conv2d_set_algorithm(int algorithm) {
  GAM_CHECK(algorithm == 0 || algorithm == 1, "conv2d: algorithm must be 0 (direct) or 1 (winograd), got %d",
            algorithm);
  conv_winograd = algorithm;
  return 0;
}

int gam_conv2d_get_algorithm(void) { return conv_winograd; }

static int winograd_fits(const gam_conv_geom *s) {
  return conv_winograd && s->kh == 3 && s->kw == 3 && s->sh == 1 && s->sw == 1 && s->dh == 1 && s->dw == 1 &&
         s->c >= 16 && s->o >= 16;
}

/* ---- the plan cache: least recently used goes --------------------------------
 * A plan with all three passes costs ~20 ms and ~0.4 MB (JIT code, reorders)
 * to make. ResNets use a dozen shapes per batch size, but PyramidNets widen at
 * every block (PyramidNet-272: ~270 shapes), so the default holds 512 plans;
 * a linear scan of them costs microseconds, a convolution far more. */
enum { PLAN_CACHE_MAX = 4096 };
static conv_plan *plans[PLAN_CACHE_MAX];
static int plan_capacity = 512;
static uint64_t plan_clock;
static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;

int gam_conv2d_set_cache_capacity(int capacity) {
  GAM_CHECK(capacity >= 1 && capacity <= PLAN_CACHE_MAX, "conv2d: cache capacity must be in 1..%d, got %d",
            PLAN_CACHE_MAX, capacity);
  pthread_mutex_lock(&plan_lock);
  for (int k = 0; k < PLAN_CACHE_MAX; k++) { /* start afresh */
    if (plans[k]) plan_destroy(plans[k]);
    plans[k] = NULL;
  }
  plan_capacity = capacity;
  pthread_mutex_unlock(&plan_lock);
  return 0;
}

int gam_conv2d_cache_size(void) {
  int n = 0;
  pthread_mutex_lock(&plan_lock);
  for (int k = 0; k < plan_capacity; k++) n += plans[k] != NULL;
  pthread_mutex_unlock(&plan_lock);
  return n;
}

/* The plan for s with pass `which` ready, or NULL + error. Caller holds plan_lock. */
static conv_plan *plan_get(const conv_shape *s, int which) {
  conv_plan *pl = NULL;
  int slot = -1; /* an empty slot, else the least recently used */
  for (int k = 0; k < plan_capacity; k++) {
    if (!plans[k]) {
      if (slot < 0 || plans[slot]) slot = k;
    } else if (memcmp(&plans[k]->s, s, sizeof *s) == 0) {
      pl = plans[k];
      break;
    } else if (slot < 0 || (plans[slot] && plans[k]->last_use < plans[slot]->last_use)) {
      slot = k;
    }
  }
  if (!pl) {
    pl = calloc(1, sizeof *pl);
    if (!pl) {
      gam__err("conv2d: out of memory caching a convolution plan");
      return NULL;
    }
    pl->s = *s;
    if (pass_create(pl, PASS_FWD) != 0) {
      plan_destroy(pl);
      return NULL;
    }
    if (plans[slot]) plan_destroy(plans[slot]);
    plans[slot] = pl;
  }
  pl->last_use = ++plan_clock;
  if (!pl->ready[which]) {
    if (pass_create(pl, which) != 0) {
      pass_destroy(&pl->pass[which]);
      return NULL;
    }
  }
  return pl;
}

/* Runs one pass on plain buffers: data[k] is the plain buffer of argument k,
 * bias the plain bias (or NULL). Temporaries for reordered layouts come from
 * the engine's caching allocator. */
static int pass_run(conv_pass *p, float *const data[3], float *bias) {
  void *tmp[3] = {NULL, NULL, NULL};
  int rc = 0;
  for (int k = 0; k < 3 && rc == 0; k++) {
    conv_arg *a = &p->arg[k];
    if (!a->reorder) {
      dnnl_memory_set_data_handle(a->mem, data[k]);
      continue;
    }
    tmp[k] = gam__host_alloc(a->bytes);
    if (!tmp[k]) {
      rc = -1;
      break;
    }
    dnnl_memory_set_data_handle(a->mem, tmp[k]);
    dnnl_memory_set_data_handle(a->plain_mem, data[k]);
    if (!a->written) {
      dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, a->plain_mem}, {DNNL_ARG_TO, a->mem}};
      if (dnnl_primitive_execute(a->reorder, dnnl_strm, 2, r) != dnnl_success)
        rc = gam__err("conv2d: oneDNN failed reordering an input");
    }
  }
  if (rc == 0) {
    dnnl_exec_arg_t args[4];
    int nargs = 0;
    for (int k = 0; k < 3; k++) args[nargs++] = (dnnl_exec_arg_t){p->arg[k].id, p->arg[k].mem};
    if (p->bias_id && bias) {
      dnnl_memory_set_data_handle(p->bias_mem, bias);
      args[nargs++] = (dnnl_exec_arg_t){p->bias_id, p->bias_mem};
    }
    if (dnnl_primitive_execute(p->prim, dnnl_strm, nargs, args) != dnnl_success)
      rc = gam__err("conv2d: oneDNN failed running a convolution");
  }
  conv_arg *out = &p->arg[2];
  if (rc == 0 && out->reorder) {
    dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, out->mem}, {DNNL_ARG_TO, out->plain_mem}};
    if (dnnl_primitive_execute(out->reorder, dnnl_strm, 2, r) != dnnl_success)
      rc = gam__err("conv2d: oneDNN failed reordering the output");
  }
  if (rc == 0) dnnl_stream_wait(dnnl_strm);
  for (int k = 0; k < 3; k++)
    if (tmp[k]) gam__host_free(tmp[k], p->arg[k].bytes);
  return rc;
}

static int conv_run(const conv_shape *s, int which, float *const data[3], float *bias) {
  GAM_TRY(dnnl_ready("conv2d"));
  pthread_mutex_lock(&plan_lock);
  conv_plan *pl = plan_get(s, which);
  int rc = pl ? pass_run(&pl->pass[which], data, bias) : -1;
  pthread_mutex_unlock(&plan_lock);
  return rc;
}

/* ---- the cpu backend's entries --------------------------------------------- */
static void shape_of_geom(const gam_conv_geom *g, conv_shape *s) {
  memset(s, 0, sizeof *s);
  s->n = g->n;
  s->c = g->c;
  s->h = g->h;
  s->w = g->w;
  s->o = g->o;
  s->kh = g->kh;
  s->kw = g->kw;
  s->oh = g->oh;
  s->ow = g->ow;
  s->sh = g->sh;
  s->sw = g->sw;
  s->ph = g->ph;
  s->pw = g->pw;
  s->dh = g->dh;
  s->dw = g->dw;
  s->bias = g->bias != 0;
  s->winograd = g->winograd != 0;
}

/* y = conv(x, w) (+ b), g->n >= 1 */
int gam_cpu_conv2d_forward(const gam_conv_geom *g, const float *x, const float *w, const float *b, float *y) {
  conv_shape s;
  shape_of_geom(g, &s);
  float *data[3] = {(float *)x, (float *)w, y};
  return conv_run(&s, PASS_FWD, data, (float *)b);
}

/* dx = conv_transpose(dy, w) */
int gam_cpu_conv2d_backward_data(const gam_conv_geom *g, const float *dy, const float *w, float *dx) {
  conv_shape s;
  shape_of_geom(g, &s);
  float *data[3] = {(float *)dy, (float *)w, dx};
  return conv_run(&s, PASS_BWD_DATA, data, NULL);
}

/* dw = sum_n dy[n] * x[n] (correlation), db = sum dy; oneDNN's pass computes
 * both (db when the convolution has a bias), so one not asked for (NULL) is
 * computed into a scratch block */
int gam_cpu_conv2d_backward_filter(const gam_conv_geom *g, const float *x, const float *dy, float *dw,
                                   float *db) {
  conv_shape s;
  shape_of_geom(g, &s);
  size_t wbytes = (size_t)(g->o * g->c * g->kh * g->kw) * sizeof(float);
  size_t bbytes = (size_t)g->o * sizeof(float);
  float *sw = dw ? NULL : gam__host_alloc(wbytes);
  float *sb = db || !s.bias ? NULL : gam__host_alloc(bbytes);
  int rc = -1;
  if ((dw || sw) && (db || !s.bias || sb)) {
    float *data[3] = {(float *)x, (float *)dy, dw ? dw : sw};
    rc = conv_run(&s, PASS_BWD_WEIGHTS, data, s.bias ? (db ? db : sb) : NULL);
  }
  gam__host_free(sw, wbytes);
  gam__host_free(sb, bbytes);
  return rc;
}

/* ---- autograd ---------------------------------------------------------------
 * The node's state is the convolution's geometry (conv_ctx), with the cpu
 * kernel choice of the forward: backward uses the same kernels. */
typedef struct conv_ctx {
  gam_conv_geom geo;
} conv_ctx;

static int accumulate_new(gam_node *n, int i, gam_tensor *g) {
  int rc = gam__accumulate(n, i, g);
  gam_release(g);
  return rc;
}

/* gx = conv_transpose(g, w); gw = sum_n g[n] * x[n] (correlation); gb = sum g */
static int conv2d_backward(gam_node *n, gam_tensor *g) {
  gam_tensor *x = n->inputs[0], *w = n->inputs[1], *b = n->ninputs > 2 ? n->inputs[2] : NULL;
  const gam_conv_geom *geo = &((const conv_ctx *)n->ctx)->geo;
  int need_x = gam__input_needs_grad(n, 0), need_w = gam__input_needs_grad(n, 1);
  int need_b = b && gam__input_needs_grad(n, 2);
  if (geo->n == 0) { /* empty batch: zero gradients */
    if (need_w) {
      gam_tensor *z = gam__new_zeros_like(w);
      if (!z) return -1;
      GAM_TRY(accumulate_new(n, 1, z));
    }
    if (need_b) {
      gam_tensor *z = gam__new_zeros_like(b);
      if (!z) return -1;
      GAM_TRY(accumulate_new(n, 2, z));
    }
    return 0;
  }
  const gam_backend *be = gam__be(x);
  if (need_x) {
    gam_tensor *gx = gam__new_like(x);
    if (!gx) return -1;
    if (be->conv2d_backward_data(geo, gam__f32(g), gam__f32(w), gam__f32(gx)) != 0) return gam__fail(1, gx);
    GAM_TRY(accumulate_new(n, 0, gx));
  }
  if (need_w || need_b) {
    gam_tensor *gw = need_w ? gam__new_like(w) : NULL, *gb = need_b ? gam__new_like(b) : NULL;
    if ((need_w && !gw) || (need_b && !gb)) return gam__fail(2, gw, gb);
    if (be->conv2d_backward_filter(geo, gam__f32(x), gam__f32(g), gw ? gam__f32(gw) : NULL,
                                   gb ? gam__f32(gb) : NULL) != 0)
      return gam__fail(2, gw, gb);
    int rc = 0;
    if (gw) rc = gam__accumulate(n, 1, gw);
    if (rc == 0 && gb) rc = gam__accumulate(n, 2, gb);
    gam_release(gw);
    gam_release(gb);
    GAM_TRY(rc);
  }
  return 0;
}
int gam_conv2d(gam_tensor **out, gam_tensor *x, gam_tensor *w, gam_tensor *b, int stride_h, int stride_w,
               int pad_h, int pad_w, int dil_h, int dil_w) {
  GAM_TRY(gam__check_float_dev(x, "conv2d", "input"));
  GAM_TRY(gam__check_float_dev(w, "conv2d", "weight"));
  GAM_TRY(gam__same_device("conv2d", x, w));
  char b1[160], b2[160];
  GAM_CHECK(x->ndim == 4, "conv2d: input must be 4-D [N, C, H, W], got %s", gam__shape_str(x, b1));
  GAM_CHECK(w->ndim == 4, "conv2d: weight must be 4-D [out, in, kh, kw], got %s", gam__shape_str(w, b1));
  GAM_CHECK(x->shape[1] == w->shape[1], "conv2d: input has %lld channels, weight expects %lld",
            (long long)x->shape[1], (long long)w->shape[1]);
  GAM_CHECK(w->shape[0] > 0 && w->shape[1] > 0 && w->shape[2] > 0 && w->shape[3] > 0,
            "conv2d: weight %s has an empty dimension", gam__shape_str(w, b1));
  if (b) {
    GAM_TRY(gam__check_float_dev(b, "conv2d", "bias"));
    GAM_TRY(gam__same_device("conv2d", x, b));
    GAM_CHECK(b->ndim == 1 && b->shape[0] == w->shape[0],
              "conv2d: bias %s does not match weight %s (expected [%lld])", gam__shape_str(b, b1),
              gam__shape_str(w, b2), (long long)w->shape[0]);
  }
  GAM_CHECK(stride_h >= 1 && stride_w >= 1, "conv2d: stride must be positive, got (%d, %d)", stride_h,
            stride_w);
  GAM_CHECK(pad_h >= 0 && pad_w >= 0, "conv2d: padding must be non-negative, got (%d, %d)", pad_h, pad_w);
  GAM_CHECK(dil_h >= 1 && dil_w >= 1, "conv2d: dilation must be positive, got (%d, %d)", dil_h, dil_w);
  int64_t ekh = (w->shape[2] - 1) * dil_h + 1, ekw = (w->shape[3] - 1) * dil_w + 1;
  int64_t hp = x->shape[2] + 2 * (int64_t)pad_h, wp = x->shape[3] + 2 * (int64_t)pad_w;
  GAM_CHECK(ekh <= hp && ekw <= wp,
            "conv2d: kernel %lldx%lld (dilation %dx%d) is larger than the padded input %lldx%lld",
            (long long)w->shape[2], (long long)w->shape[3], dil_h, dil_w, (long long)hp, (long long)wp);
  GAM_CHECK(x->shape[1] > 0 && x->shape[2] > 0 && x->shape[3] > 0, "conv2d: input %s has an empty dimension",
            gam__shape_str(x, b1));
  gam_conv_geom geo;
  memset(&geo, 0, sizeof geo);
  geo.n = x->shape[0];
  geo.c = x->shape[1];
  geo.h = x->shape[2];
  geo.w = x->shape[3];
  geo.o = w->shape[0];
  geo.kh = w->shape[2];
  geo.kw = w->shape[3];
  geo.oh = (hp - ekh) / stride_h + 1;
  geo.ow = (wp - ekw) / stride_w + 1;
  geo.sh = stride_h;
  geo.sw = stride_w;
  geo.ph = pad_h;
  geo.pw = pad_w;
  geo.dh = dil_h;
  geo.dw = dil_w;
  geo.bias = b != NULL;
  geo.winograd = winograd_fits(&geo); /* the cpu's kernel choice; the cuda backend ignores it */
  int64_t shape[4] = {geo.n, geo.o, geo.oh, geo.ow};
  gam_tensor *y = gam__new(GAM_FLOAT32, x->device, 4, shape);
  if (!y) return -1;
  if (geo.n > 0 &&
      gam__be(x)->conv2d_forward(&geo, gam__f32(x), gam__f32(w), b ? gam__f32(b) : NULL, gam__f32(y)) != 0)
    return gam__fail(1, y);
  gam_tensor *in[3] = {x, w, b};
  int nin = b ? 3 : 2;
  if (gam__grad_needed(nin, in)) {
    gam_node *n = gam__record(y, "conv2d", conv2d_backward, nin, in);
    conv_ctx *c = n ? gam__node_ctx(n, sizeof *c) : NULL;
    if (!c) return gam__fail(1, y);
    c->geo = geo; /* backward: same kernels as forward */
  }
  *out = y;
  return 0;
}
