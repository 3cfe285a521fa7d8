/* backend.c — the backend tables, one per device (see backend.h). */
#include "backend.h"

const gam_backend gam__cpu_backend = {
    .name = "cpu",
};

/* In a build without CUDA these are cuda_backend.h's stubs. */
const gam_backend gam__cuda_backend = {
    .name = "cuda",
};

const gam_backend *gam__backend(int device) {
  return device == GAM_CUDA ? &gam__cuda_backend : &gam__cpu_backend;
}
