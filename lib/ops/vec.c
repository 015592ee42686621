/* vec.c — flat-buffer vector ops of the CPU backend (parameters, gradients, tangents and
 * moments each live in one flat buffer, so zeroing or an update is one call).
 * Reductions accumulate in double, one contiguous share per thread, the partial sums
 * added in thread order: the same thread count gives the same bits. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "cpu_ops.h"
#include "cpu_util.h"

void vec_zero(real *x /*[n]*/, size_t n) {
    #pragma omp parallel for if (n > 16 * OPS_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = 0;
}

void vec_copy(real *dst /*[n]*/, const real *src /*[n]*/, size_t n) {
    if (dst != src) memcpy(dst, src, n * sizeof(real));
}

void vec_scale(real *x /*[n]*/, double a, size_t n) {
    real ar = (real)a;
    #pragma omp parallel for if (n > OPS_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) x[i] *= ar;
}

void vec_axpy(real *y /*[n]*/, double a, const real *x /*[n]*/, size_t n) {
    real ar = (real)a;
    #pragma omp parallel for if (n > OPS_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) y[i] += ar * x[i];
}

/* Σ a[i]·b[i] (b == NULL: Σ a[i]²) in double, deterministic for a given thread count. */
static double dot_partitioned(const real *a, const real *b, size_t n) {
    double partial[256];
    int P = n > OPS_PAR_MIN ? omp_get_max_threads() : 1;
    if (P > 256) P = 256;
    #pragma omp parallel num_threads(P) if (P > 1)
    {
        int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        size_t lo, hi;
        ops_thread_range(n, tid, nt, &lo, &hi);
        double s = 0;
        if (b) for (size_t i = lo; i < hi; i++) s += (double)a[i] * (double)b[i];
        else   for (size_t i = lo; i < hi; i++) s += (double)a[i] * (double)a[i];
        partial[tid] = s;
        #pragma omp barrier
        #pragma omp single
        for (int t = 1; t < nt; t++) partial[0] += partial[t];
    }
    return partial[0];
}

double vec_dot(const real *a /*[n]*/, const real *b /*[n]*/, size_t n) {
    return dot_partitioned(a, b, n);
}

double vec_sumsq(const real *x /*[n]*/, size_t n) { return dot_partitioned(x, NULL, n); }

int vec_all_finite(const real *x /*[n]*/, size_t n) {
    int ok = 1;
    #pragma omp parallel for if (n > OPS_PAR_MIN) schedule(static) reduction(&& : ok)
    for (size_t i = 0; i < n; i++) ok = ok && isfinite(x[i]);
    return ok;
}
