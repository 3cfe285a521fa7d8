/* optim_cpu.h — the cpu entries of the fused optimiser passes (optim_cpu.c),
 * with the signatures of their cuda twins gam_cuda_* (cuda_backend.h); both
 * fill the "fused optimiser passes" section of the backend tables (backend.c). */
#ifndef GAM_OPTIM_CPU_H
#define GAM_OPTIM_CPU_H
#include <stdint.h>
#include "optim_math.h"

int gam_cpu_opt_copy(float *dst, const float *src, int64_t n);
int gam_cpu_opt_read(double *out, const double *s);
int gam_cpu_opt_clear(double *s);
int gam_cpu_opt_check_loss(double *s, const float *loss, int code, int keep);
int gam_cpu_opt_norm(double *s, const float *g, const float *w, int64_t n, int code);
int gam_cpu_opt_ascend(float *theta, float *theta_save, const float *g, float *g_save, int64_t n,
                       gam_coef scale, int adaptive);
int gam_cpu_opt_dot3(double *s, const float *a, const float *b, int64_t n, int code0, int code2);
int gam_cpu_opt_decompose(float *h, const float *v, int64_t n, double weight, gam_coef c);
int gam_cpu_gam_pass1(double *s, float *hplus, const float *g, const float *g0, const float *theta0,
                      int64_t n, double alpha, int adaptive, int code);
int gam_cpu_gam_ascend_h0(float *theta, const float *theta0, const float *g, const float *g0, int64_t n,
                          gam_coef scale, int adaptive);
int gam_cpu_gam_pass2(double *s, float *hminus, const float *g, const float *theta, int64_t n, double c0,
                      double c1, int adaptive, int code);
int gam_cpu_gam_pass3(double *s, float *g, const float *hplus, const float *hminus, int64_t n, double c,
                      int code0, int code2);
int gam_cpu_sgd_step(float *param, const float *grad, float *buf, const float *src, int64_t n, double lr,
                     double momentum, double dampening, double weight_decay, int nesterov, int first,
                     const double *guard);
int gam_cpu_adam_step(float *param, const float *grad, float *m, float *v, const float *src, int64_t n,
                      double lr, double beta1, double beta2, double eps, double weight_decay, int decoupled,
                      int64_t step, const double *guard);

#endif
