// nccl.cu — the cuda backend's collectives: NCCL all-reduce and broadcast on
// the engine's stream.
//
// The communicator is made on the first collective on a cuda tensor (so a
// run that never puts a tensor on the GPU never touches NCCL): rank 0 draws
// the unique id, dist.c broadcasts its bytes over MPI, every rank joins with
// ncclCommInitRank. Every call is then queued on gamk::stream(): the host
// does not wait, and the next kernel reads the reduced data in stream order.
// Built only when the Makefile finds NCCL (GAM_HAVE_NCCL); otherwise the
// entry points fail with a clear error.
#include "common.cuh"
#include <stdio.h>
#include <string.h>

#ifdef GAM_HAVE_NCCL
#include <nccl.h>

namespace {

ncclComm_t comm;
int comm_ready = 0;

int nccl_err(const char *op, ncclResult_t r) {
  return gam__err("dist.%s: NCCL failed: %s", op, ncclGetErrorString(r));
}

int ensure_comm(const char *op) {
  if (comm_ready) return 0;
  if (gam_cuda__init(op) != 0) return -1;
  ncclUniqueId id;
  memset(&id, 0, sizeof id);
  if (gam_dist_rank() == 0) {
    ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess) return nccl_err(op, r);
  }
  if (gam__dist_bcast_bytes(&id, sizeof id, 0) != 0) return -1;
  ncclResult_t r = ncclCommInitRank(&comm, gam_dist_size(), id, gam_dist_rank());
  if (r != ncclSuccess) return nccl_err(op, r);
  comm_ready = 1;
  return 0;
}

ncclDataType_t nccl_type(int dtype) {
  return dtype == GAM_FLOAT32 ? ncclFloat32 : dtype == GAM_INT64 ? ncclInt64 : ncclUint8;
}

} // namespace

extern "C" int gam_cuda_all_reduce(void *data, int64_t n, int dtype, int mean) {
  if (n == 0) return 0;
  if (ensure_comm("all_reduce") != 0) return -1;
  // ncclAvg (NCCL >= 2.10) divides by the number of ranks inside the reduction
  ncclResult_t r =
      ncclAllReduce(data, data, (size_t)n, nccl_type(dtype), mean ? ncclAvg : ncclSum, comm, gamk::stream());
  return r == ncclSuccess ? 0 : nccl_err("all_reduce", r);
}

extern "C" int gam_cuda_broadcast(void *data, int64_t n, int dtype, int root) {
  if (n == 0) return 0;
  if (ensure_comm("broadcast") != 0) return -1;
  ncclResult_t r = ncclBroadcast(data, data, (size_t)n, nccl_type(dtype), root, comm, gamk::stream());
  return r == ncclSuccess ? 0 : nccl_err("broadcast", r);
}

#else // CUDA without NCCL

extern "C" int gam_cuda_all_reduce(void *, int64_t, int, int) {
  return gam__err(
      "dist.all_reduce: cuda tensors need NCCL, and libgam was built without it "
      "(NCCL was not found under CUDA_HOME; set NCCL_HOME and rebuild)");
}

extern "C" int gam_cuda_broadcast(void *, int64_t, int, int) {
  return gam__err(
      "dist.broadcast: cuda tensors need NCCL, and libgam was built without it "
      "(NCCL was not found under CUDA_HOME; set NCCL_HOME and rebuild)");
}

#endif
