/* backend.c — the backend tables, one per device (see backend.h).
 *
 * The cpu table points at the gam_cpu_* kernels kept beside their ops; the
 * cuda table at the gam_cuda_* launch wrappers of kernels/ (cuda_backend.h),
 * through the few adapters below where the runtime's calls take a copy
 * direction or where the device computes a result in other steps than the
 * cpu (reduce_to_shape, linear's bias gradient: the device sums in double
 * through its line reduction, as before the tables existed). */
#include "backend.h"
#include "optim_cpu.h"

const gam_backend gam__cpu_backend = {
    .name = "cpu",
    .host = 1,
    /* memory and copies */
    .require = gam_cpu_require,
    .alloc = gam__host_alloc,
    .free = gam__host_free,
    .empty_cache = gam_cpu_empty_cache,
    .copy = gam_cpu_copy,
    .copy2d = gam_cpu_copy2d,
    .memset = gam_cpu_memset,
    .to_host = gam_cpu_copy,
    .from_host = gam_cpu_copy,
    .upload = gam_cpu_copy,
    .fill = gam_cpu_fill,
    .convert = gam_cpu_convert,
    .transpose = gam_cpu_transpose,
    .repeat_rows = gam_cpu_repeat_rows,
    .find_out_of_range = gam_cpu_find_out_of_range,
    .flag_out_of_range = gam_cpu_flag_out_of_range,
    /* elementwise, reductions, losses, linear algebra */
    .binary = gam_cpu_binary,
    .unary = gam_cpu_unary,
    .unary_grad = gam_cpu_unary_grad,
    .axpy = gam_cpu_axpy,
    .sum_lines = gam_cpu_sum_lines,
    .spread_lines = gam_cpu_spread_lines,
    .fill_scaled = gam_cpu_fill_scaled,
    .argmax_lines = gam_cpu_argmax_lines,
    .scatter_lines = gam_cpu_scatter_lines,
    .sum_to_shape = gam_cpu_sum_to_shape,
    .sum_rows = gam_cpu_sum_rows,
    .softmax = gam_cpu_softmax,
    .softmax_grad = gam_cpu_softmax_grad,
    .gather = gam_cpu_gather,
    .gather_grad = gam_cpu_gather_grad,
    .ce_forward = gam_cpu_ce_forward,
    .ce_backward = gam_cpu_ce_backward,
    .gemm = gam_cpu_gemm,
    /* layers */
    .conv2d_forward = gam_cpu_conv2d_forward,
    .conv2d_backward_data = gam_cpu_conv2d_backward_data,
    .conv2d_backward_filter = gam_cpu_conv2d_backward_filter,
    .bn_train_forward = gam_cpu_bn_train_forward,
    .bn_train_backward = gam_cpu_bn_train_backward,
    .bn_eval_forward = gam_cpu_bn_eval_forward,
    .bn_eval_backward = gam_cpu_bn_eval_backward,
    .max_pool_forward = gam_cpu_max_pool_forward,
    .max_pool_backward = gam_cpu_max_pool_backward,
    .avg_pool_forward = gam_cpu_avg_pool_forward,
    .avg_pool_backward = gam_cpu_avg_pool_backward,
    .adaptive_avg_pool_forward = gam_cpu_adaptive_avg_pool_forward,
    .adaptive_avg_pool_backward = gam_cpu_adaptive_avg_pool_backward,
    .dropout_mask = gam_cpu_dropout_mask,
    /* fused optimiser passes */
    .opt_copy = gam_cpu_opt_copy,
    .opt_read = gam_cpu_opt_read,
    .opt_clear = gam_cpu_opt_clear,
    .opt_check_loss = gam_cpu_opt_check_loss,
    .opt_norm = gam_cpu_opt_norm,
    .opt_ascend = gam_cpu_opt_ascend,
    .opt_dot3 = gam_cpu_opt_dot3,
    .opt_decompose = gam_cpu_opt_decompose,
    .opt_gam_pass1 = gam_cpu_gam_pass1,
    .opt_gam_ascend_h0 = gam_cpu_gam_ascend_h0,
    .opt_gam_pass2 = gam_cpu_gam_pass2,
    .opt_gam_pass3 = gam_cpu_gam_pass3,
    .opt_sgd_step = gam_cpu_sgd_step,
    .opt_adam_step = gam_cpu_adam_step,
    /* collectives (dist.c: MPI; kernels/nccl.cu: NCCL) */
    .all_reduce = gam_cpu_all_reduce,
    .broadcast = gam_cpu_broadcast,
};

/* ---- cuda adapters ---------------------------------------------------------- */
static int cuda_copy(void *dst, const void *src, size_t bytes, const char *op) {
  return bytes ? gam_cuda__memcpy(dst, src, bytes, GAM_COPY_D2D, op) : 0;
}

static int cuda_to_host(void *dst, const void *src, size_t bytes, const char *op) {
  return bytes ? gam_cuda__memcpy(dst, src, bytes, GAM_COPY_D2H, op) : 0;
}

static int cuda_from_host(void *dst, const void *src, size_t bytes, const char *op) {
  return bytes ? gam_cuda__memcpy(dst, src, bytes, GAM_COPY_H2D, op) : 0;
}

/* One line sum over the leading dims g has beyond shape, then one per dim
 * where shape has 1 and g more, each a [outer, size, inner] sum in double;
 * the intermediate sums live in device scratch blocks, the last goes to r. */
static int cuda_sum_to_shape(const float *g, int gndim, const int64_t *gshape, float *r, int ndim,
                             const int64_t *shape) {
  int lead = gndim - ndim, last = -1;
  int64_t cur[GAM_MAX_DIMS], size = 1, numel = 1;
  for (int d = 0; d < lead; d++) size *= gshape[d];
  for (int d = 0; d < ndim; d++) {
    cur[d] = gshape[lead + d];
    numel *= cur[d];
    if (shape[d] == 1 && cur[d] != 1) last = d;
  }
  size_t acc_bytes = (size_t)numel * sizeof(float);
  float *acc = last < 0 ? r : gam__device_alloc(acc_bytes);
  if (!acc) return -1;
  int rc = gam_cuda_sum_lines(g, acc, 1, size, numel, 1.0);
  for (int d = 0; rc == 0 && d < ndim; d++) {
    if (shape[d] != 1 || cur[d] == 1) continue;
    int64_t outer = 1, inner = 1, n = cur[d];
    for (int e = 0; e < d; e++) outer *= cur[e];
    for (int e = d + 1; e < ndim; e++) inner *= cur[e];
    cur[d] = 1;
    size_t bytes = (size_t)(outer * inner) * sizeof(float);
    float *next = d == last ? r : gam__device_alloc(bytes);
    if (!next) {
      rc = -1;
      break;
    }
    rc = gam_cuda_sum_lines(acc, next, outer, n, inner, 1.0);
    if (acc != r) gam__device_free(acc, acc_bytes);
    acc = next;
    acc_bytes = bytes;
  }
  if (acc != r) gam__device_free(acc, acc_bytes);
  return rc;
}

/* b[c] = sum_r g[r,c]: one line sum over the rows */
static int cuda_sum_rows(const float *g, float *b, int64_t rows, int64_t cols) {
  return gam_cuda_sum_lines(g, b, 1, rows, cols, 1.0);
}

/* one draw of the engine's generator keys the mask's Philox stream */
static int cuda_dropout_mask(float *mask, int64_t n, double p) {
  return n > 0 ? gam_cuda_dropout_mask(mask, n, p, gam__rng_next()) : 0;
}

/* In a build without CUDA the gam_cuda_* entries are cuda_backend.h's stubs. */
const gam_backend gam__cuda_backend = {
    .name = "cuda",
    .host = 0,
    /* memory and copies */
    .require = gam__cuda_require,
    .alloc = gam__device_alloc,
    .free = gam__device_free,
    .empty_cache = gam__device_empty_cache,
    .copy = cuda_copy,
    .copy2d = gam_cuda__memcpy2d,
    .memset = gam_cuda__memset,
    .to_host = cuda_to_host,
    .from_host = cuda_from_host,
    .upload = gam_cuda__upload,
    .fill = gam_cuda_fill,
    .convert = gam_cuda_convert,
    .transpose = gam_cuda_transpose,
    .repeat_rows = gam_cuda_repeat_rows,
    .find_out_of_range = gam_cuda_find_out_of_range,
    .flag_out_of_range = gam_cuda_flag_out_of_range,
    /* elementwise, reductions, losses, linear algebra */
    .binary = gam_cuda_binary,
    .unary = gam_cuda_unary,
    .unary_grad = gam_cuda_unary_grad,
    .axpy = gam_cuda_axpy,
    .sum_lines = gam_cuda_sum_lines,
    .spread_lines = gam_cuda_spread_lines,
    .fill_scaled = gam_cuda_fill_scaled,
    .argmax_lines = gam_cuda_argmax_lines,
    .scatter_lines = gam_cuda_scatter_lines,
    .sum_to_shape = cuda_sum_to_shape,
    .sum_rows = cuda_sum_rows,
    .softmax = gam_cuda_softmax,
    .softmax_grad = gam_cuda_softmax_grad,
    .gather = gam_cuda_gather,
    .gather_grad = gam_cuda_gather_grad,
    .ce_forward = gam_cuda_ce_forward,
    .ce_backward = gam_cuda_ce_backward,
    .gemm = gam_cuda_gemm,
    /* layers */
    .conv2d_forward = gam_cuda_conv2d_forward,
    .conv2d_backward_data = gam_cuda_conv2d_backward_data,
    .conv2d_backward_filter = gam_cuda_conv2d_backward_filter,
    .bn_train_forward = gam_cuda_bn_train_forward,
    .bn_train_backward = gam_cuda_bn_train_backward,
    .bn_eval_forward = gam_cuda_bn_eval_forward,
    .bn_eval_backward = gam_cuda_bn_eval_backward,
    .max_pool_forward = gam_cuda_max_pool_forward,
    .max_pool_backward = gam_cuda_max_pool_backward,
    .avg_pool_forward = gam_cuda_avg_pool_forward,
    .avg_pool_backward = gam_cuda_avg_pool_backward,
    .adaptive_avg_pool_forward = gam_cuda_adaptive_avg_pool_forward,
    .adaptive_avg_pool_backward = gam_cuda_adaptive_avg_pool_backward,
    .dropout_mask = cuda_dropout_mask,
    /* fused optimiser passes */
    .opt_copy = gam_cuda_opt_copy,
    .opt_read = gam_cuda_opt_read,
    .opt_clear = gam_cuda_opt_clear,
    .opt_check_loss = gam_cuda_opt_check_loss,
    .opt_norm = gam_cuda_opt_norm,
    .opt_ascend = gam_cuda_opt_ascend,
    .opt_dot3 = gam_cuda_opt_dot3,
    .opt_decompose = gam_cuda_opt_decompose,
    .opt_gam_pass1 = gam_cuda_gam_pass1,
    .opt_gam_ascend_h0 = gam_cuda_gam_ascend_h0,
    .opt_gam_pass2 = gam_cuda_gam_pass2,
    .opt_gam_pass3 = gam_cuda_gam_pass3,
    .opt_sgd_step = gam_cuda_sgd_step,
    .opt_adam_step = gam_cuda_adam_step,
    /* collectives (dist.c: MPI; kernels/nccl.cu: NCCL) */
    .all_reduce = gam_cuda_all_reduce,
    .broadcast = gam_cuda_broadcast,
};

/* GAM_CUDA here: the one place a device number picks its table (core.c's
 * gam__device_valid has already refused any other number). */
const gam_backend *gam__backend(int device) {
  return device == GAM_CUDA ? &gam__cuda_backend : &gam__cpu_backend;
}
