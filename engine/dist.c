/* dist.c — data-parallel collectives: MPI between processes, NCCL for cuda
 * tensors (kernels/nccl.cu), chosen through the backend table.
 *
 * A process started by an MPI launcher (mpirun / mpiexec / srun) finds the
 * launcher's variables in its environment (Open MPI: OMPI_COMM_WORLD_SIZE;
 * PMI/PMIx launchers: PMI_SIZE, PMIX_RANK); gam_dist_init then calls
 * MPI_Init_thread. A process started alone is rank 0 of a world of size 1
 * and makes no MPI call at all: every collective is then the identity.
 *
 * libmpi is linked directly (not dlopen'ed) when the build finds mpicc: the
 * MPI handle types differ between implementations (Open MPI: pointers,
 * MPICH: ints), so only mpi.h of the implementation used describes them, and
 * loading libmpi costs nothing until MPI_Init. A build without MPI still has
 * every function: alone it works; under a launcher gam_dist_init fails with
 * a clear error.
 *
 * Collectives are blocking and run on MPI_COMM_WORLD in the order the ranks
 * call them (every rank must make the same calls in the same order, as with
 * any MPI program). On cuda tensors they are queued on the engine's stream
 * (NCCL) without waiting for the host. */
#include "backend.h"

#ifdef GAM_HAVE_MPI
#include <mpi.h>
#endif

static int dist_state; /* 0: not initialised, 1: alone (size 1), 2: MPI */
static int dist_rank, dist_size = 1;

static int under_launcher(void) {
  static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"};
  for (size_t k = 0; k < sizeof vars / sizeof vars[0]; k++) {
    const char *v = getenv(vars[k]);
    if (v && v[0]) return 1;
  }
  return 0;
}

#ifdef GAM_HAVE_MPI
static int mpi_err(const char *op, int code) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "code %d", code);
  return gam__err("dist.%s: MPI failed: %s", op, msg);
}
#define MPI_TRY(op, call)                            \
  do {                                               \
    int rc_ = (call);                                \
    if (rc_ != MPI_SUCCESS) return mpi_err(op, rc_); \
  } while (0)

static MPI_Datatype mpi_type(int dtype) {
  return dtype == GAM_FLOAT32 ? MPI_FLOAT : dtype == GAM_INT64 ? MPI_INT64_T : MPI_UINT8_T;
}

static void finalize_at_exit(void) {
  int done = 0;
  MPI_Finalized(&done);
  if (!done) MPI_Finalize();
}
#endif

int gam_dist_init(void) {
  if (dist_state) return 0;
  if (!under_launcher()) {
    dist_state = 1;
    dist_rank = 0;
    dist_size = 1;
    return 0;
  }
  /* One GPU per rank (NCCL refuses two ranks on one GPU): rank k of a node
   * sees GPU k, unless the user chose (CUDA_VISIBLE_DEVICES). A CUDA runtime
   * that already started keeps the device it picked. */
  const char *local = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  if (!local) local = getenv("MPI_LOCALRANKID");
  if (!local) local = getenv("SLURM_LOCALID");
  if (local && !getenv("CUDA_VISIBLE_DEVICES")) setenv("CUDA_VISIBLE_DEVICES", local, 0);
#ifdef GAM_HAVE_MPI
  int inited = 0, provided = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    MPI_TRY("init", MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided));
    atexit(finalize_at_exit);
  }
  /* errors come back as codes (turned into Lua errors), not as aborts */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_TRY("init", MPI_Comm_rank(MPI_COMM_WORLD, &dist_rank));
  MPI_TRY("init", MPI_Comm_size(MPI_COMM_WORLD, &dist_size));
  dist_state = 2;
  return 0;
#else
  return gam__err(
      "dist.init: this process was started by an MPI launcher, but libgam was built "
      "without MPI (install libopenmpi-dev and rebuild: make deps && make)");
#endif
}

int gam_dist_rank(void) { return dist_rank; }
int gam_dist_size(void) { return dist_size; }
int gam_dist_initialized(void) { return dist_state != 0; }
int gam_dist_built_with_mpi(void) {
#ifdef GAM_HAVE_MPI
  return 1;
#else
  return 0;
#endif
}

static int need_init(const char *op) {
  GAM_CHECK(dist_state, "dist.%s: call dist.init() first", op);
  return 0;
}

/* ---- host-side MPI primitives (also the NCCL bootstrap, cuda_backend.h) --- */

int gam__dist_bcast_bytes(void *p, size_t bytes, int root) {
  if (dist_state != 2) return 0;
#ifdef GAM_HAVE_MPI
  MPI_TRY("broadcast", MPI_Bcast(p, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD));
#endif
  return 0;
}

/* The cpu backend's collectives: data[0..n) summed over the ranks in place
 * (mean: then divided by the size), or set to root's. Counts above INT_MAX go
 * in chunks (MPI counts are int): root < 0 sums, else broadcasts from root. */
#ifdef GAM_HAVE_MPI
static int mpi_chunks(void *data, int64_t n, int dtype, int root) {
  const int64_t chunk = 1 << 30;
  size_t es = gam__dtype_size(dtype);
  for (int64_t i = 0; i < n; i += chunk) {
    int c = (int)(n - i < chunk ? n - i : chunk);
    char *p = (char *)data + i * es;
    if (root < 0)
      MPI_TRY("all_reduce", MPI_Allreduce(MPI_IN_PLACE, p, c, mpi_type(dtype), MPI_SUM, MPI_COMM_WORLD));
    else
      MPI_TRY("broadcast", MPI_Bcast(p, c, mpi_type(dtype), root, MPI_COMM_WORLD));
  }
  return 0;
}
#endif

int gam_cpu_all_reduce(void *data, int64_t n, int dtype, int mean) {
  if (dist_state != 2 || n == 0) return 0;
#ifdef GAM_HAVE_MPI
  if (mpi_chunks(data, n, dtype, -1) != 0) return -1;
  if (mean) { /* float32 only (the front half checks) */
    float *x = data, inv = 1.0f / (float)dist_size;
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
  }
#endif
  return 0;
}

int gam_cpu_broadcast(void *data, int64_t n, int dtype, int root) {
  if (dist_state != 2 || n == 0) return 0;
#ifdef GAM_HAVE_MPI
  if (mpi_chunks(data, n, dtype, root) != 0) return -1;
#endif
  return 0;
}

/* ---- the tensor collectives (device-free front half) ---------------------- */

static int check_tensor(const gam_tensor *t, const char *op) {
  GAM_TRY(need_init(op));
  char name[64];
  snprintf(name, sizeof name, "dist.%s", op);
  GAM_TRY(gam__check_dev(t, name, "tensor"));
  return 0;
}

int gam_dist_all_reduce(gam_tensor *t, int mean) {
  GAM_TRY(check_tensor(t, "all_reduce"));
  GAM_CHECK(!mean || t->dtype == GAM_FLOAT32,
            "dist.all_reduce: 'mean' needs a float32 tensor, got %s (use 'sum')", gam__dtype_name(t->dtype));
  if (dist_size == 1) return 0;
  return gam__be(t)->all_reduce(gam__data(t), t->numel, t->dtype, mean);
}

int gam_dist_broadcast(gam_tensor *t, int root) {
  GAM_TRY(check_tensor(t, "broadcast"));
  GAM_CHECK(root >= 0 && root < dist_size, "dist.broadcast: root %d is not a rank (size %d)", root,
            dist_size);
  if (dist_size == 1) return 0;
  return gam__be(t)->broadcast(gam__data(t), t->numel, t->dtype, root);
}

int gam_dist_barrier(void) {
  GAM_TRY(need_init("barrier"));
#ifdef GAM_HAVE_MPI
  if (dist_state == 2) MPI_TRY("barrier", MPI_Barrier(MPI_COMM_WORLD));
#endif
  return 0;
}

/* v[0..n) on the host: lo[i] = min over ranks, hi[i] = max over ranks (the
 * agreement checks of parameter counts and optimiser options). */
int gam_dist_min_max(const double *v, int n, double *lo, double *hi) {
  GAM_TRY(need_init("min_max"));
  GAM_CHECK(n >= 0, "dist.min_max: negative count %d", n);
  memcpy(lo, v, (size_t)n * sizeof *v);
  memcpy(hi, v, (size_t)n * sizeof *v);
#ifdef GAM_HAVE_MPI
  if (dist_state == 2 && n > 0) {
    MPI_TRY("min_max", MPI_Allreduce(MPI_IN_PLACE, lo, n, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD));
    MPI_TRY("min_max", MPI_Allreduce(MPI_IN_PLACE, hi, n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
  }
#endif
  return 0;
}

/* v[0..n) on the host summed over the ranks (metrics: correct counts, losses). */
int gam_dist_sum_doubles(double *v, int n) {
  GAM_TRY(need_init("sum"));
#ifdef GAM_HAVE_MPI
  if (dist_state == 2 && n > 0)
    MPI_TRY("sum", MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
#endif
  return 0;
}

/* Ends every process of the job (a rank that raised: the others may wait in a
 * collective forever otherwise). Alone: exit(code). Never returns. */
void gam_dist_abort(int code) {
  fflush(stdout);
  fflush(stderr);
#ifdef GAM_HAVE_MPI
  if (dist_state == 2) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  exit(code);
}

/* ---- the differentiable all-reduce (nn.SyncBatchNorm) ---------------------
 * y = Σ_ranks x (a new tensor). Every rank's loss depends on every rank's x
 * through y, so ∂L/∂x_r = Σ_ranks ∂L_q/∂y: the backward is the same
 * all-reduce-sum of the incoming gradient. */
static int all_reduce_sum_backward(gam_node *n, gam_tensor *grad_out) {
  if (!gam__input_needs_grad(n, 0)) return 0;
  gam_tensor *g = NULL;
  GAM_TRY(gam_clone(&g, grad_out));
  if (dist_size > 1 && gam__be(g)->all_reduce(gam__data(g), g->numel, g->dtype, 0) != 0)
    return gam__fail(1, g);
  int rc = gam__accumulate(n, 0, g);
  gam_release(g);
  return rc;
}

int gam_dist_all_reduce_sum_grad(gam_tensor **out, gam_tensor *x) {
  *out = NULL;
  GAM_TRY(check_tensor(x, "all_reduce_grad"));
  GAM_CHECK(x->dtype == GAM_FLOAT32, "dist.all_reduce_grad: needs a float32 tensor, got %s",
            gam__dtype_name(x->dtype));
  gam_tensor *d = NULL, *y = NULL;
  GAM_TRY(gam_detach(&d, x));
  int rc = gam_clone(&y, d);
  gam_release(d);
  GAM_TRY(rc);
  if (dist_size > 1 && gam__be(y)->all_reduce(gam__data(y), y->numel, y->dtype, 0) != 0)
    return gam__fail(1, y);
  if (gam__grad_needed(1, &x)) {
    gam_node *node = gam__record(y, "dist.all_reduce_grad", all_reduce_sum_backward, 1, &x);
    if (!node) return gam__fail(1, y);
  }
  *out = y;
  return 0;
}
