/* real.h — the floating-point type of the numerical library, chosen at build time.
 * float by default (fast); double with -DDR_DOUBLE (make PRECISION=double) for
 * gradient checks and research comparisons. One source, two builds. */
#ifndef DR_REAL_H
#define DR_REAL_H

#include <math.h>

#ifdef DR_DOUBLE
typedef double real;
#define REAL_NAME "double"
#define REAL_EPS 2.220446049250313e-16
#define cblas_gemm cblas_dgemm
#define cblas_gemv cblas_dgemv
#define cblas_axpy cblas_daxpy
#define cblas_dot  cblas_ddot
#define SQRT sqrt
#define EXP exp
#define LOG log
#define TANH tanh
#define FABS fabs
#define POW pow
#else
typedef float real;
#define REAL_NAME "float"
#define REAL_EPS 1.1920929e-07f
#define cblas_gemm cblas_sgemm
#define cblas_gemv cblas_sgemv
#define cblas_axpy cblas_saxpy
#define cblas_dot  cblas_sdot
#define SQRT sqrtf
#define EXP expf
#define LOG logf
#define TANH tanhf
#define FABS fabsf
#define POW powf
#endif

#endif
