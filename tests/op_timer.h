/* op_timer.h — time per op for the benchmarks: op_timer_backend(base) returns a copy of
 * a Backend table whose every op calls base's op between two base->synchronize() calls
 * and adds the wall time to a row named after the op; op_timer_print() prints the rows,
 * largest first, with the time outside ops. On the CPU synchronize is a no-op; on a GPU
 * the two synchronizations make each row the op's own device time (plus a launch), at
 * the price of the overlap a real run has. Header-only, like bench.h; one process-wide
 * table (a benchmark's, never the library's). */
#ifndef DR_OP_TIMER_H
#define DR_OP_TIMER_H

#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "progress.h"

enum { OP_TIMER_MAX = 64 };
static const Backend *op_timer_base;
static const char *op_timer_name[OP_TIMER_MAX];
static double op_timer_sec[OP_TIMER_MAX];
static long op_timer_calls[OP_TIMER_MAX];
static int op_timer_n;

static inline int op_timer_slot(const char *name) {
    for (int i = 0; i < op_timer_n; i++) if (op_timer_name[i] == name) return i;
    CHECK(op_timer_n < OP_TIMER_MAX, "op_timer: too many ops");
    op_timer_name[op_timer_n] = name;
    return op_timer_n++;
}

#define OP_TIMER_BEGIN(fn)                                                                 \
    static int slot = -1;                                                                  \
    if (slot < 0) slot = op_timer_slot(#fn);                                               \
    op_timer_base->synchronize();                                                          \
    double t0 = dr_now();
#define OP_TIMER_END                                                                       \
    op_timer_base->synchronize();                                                          \
    op_timer_sec[slot] += dr_now() - t0;                                                   \
    op_timer_calls[slot]++;
#define OP_TIMER_WRAP(fn, params, args)                                                    \
    static void op_timer_##fn params { OP_TIMER_BEGIN(fn) op_timer_base->fn args; OP_TIMER_END }
#define OP_TIMER_WRAP_RET(type, fn, params, args)                                          \
    static type op_timer_##fn params {                                                     \
        OP_TIMER_BEGIN(fn) type r = op_timer_base->fn args; OP_TIMER_END return r; }

OP_TIMER_WRAP(vec_zero, (real *x, size_t n), (x, n))
OP_TIMER_WRAP(vec_copy, (real *d, const real *s, size_t n), (d, s, n))
OP_TIMER_WRAP(vec_scale, (real *x, double a, size_t n), (x, a, n))
OP_TIMER_WRAP(vec_axpy, (real *y, double a, const real *x, size_t n), (y, a, x, n))
OP_TIMER_WRAP_RET(double, vec_dot, (const real *a, const real *b, size_t n), (a, b, n))
OP_TIMER_WRAP_RET(double, vec_sumsq, (const real *x, size_t n), (x, n))
OP_TIMER_WRAP_RET(int, vec_all_finite, (const real *x, size_t n), (x, n))
OP_TIMER_WRAP(adamw_forward, (real *th, real *m, real *v, const real *g, double s, size_t n, const AdamWHyper *h), (th, m, v, g, s, n, h))
OP_TIMER_WRAP(adamw_backward, (real *dth, real *dm, real *dv, real *dg, const real *m, const real *v, const real *g, double s, size_t n, const AdamWHyper *h), (dth, dm, dv, dg, m, v, g, s, n, h))
OP_TIMER_WRAP(sgd_forward, (real *th, real *buf, const real *g, double s, size_t n, const SGDHyper *h), (th, buf, g, s, n, h))
OP_TIMER_WRAP(sgd_backward, (real *dth, real *dbuf, real *dg, size_t n, const SGDHyper *h), (dth, dbuf, dg, n, h))
OP_TIMER_WRAP(embedding_forward, (real *o, const int32_t *t, const real *a, const real *b, int B, int T, int C), (o, t, a, b, B, T, C))
OP_TIMER_WRAP(embedding_backward, (real *da, real *db, const real *d, const int32_t *t, int B, int T, int C), (da, db, d, t, B, T, C))
OP_TIMER_WRAP(embedding_forward_tangent, (real *o, const int32_t *t, const real *a, const real *b, int B, int T, int C), (o, t, a, b, B, T, C))
OP_TIMER_WRAP(embedding_backward_tangent, (real *da, real *db, const real *d, const int32_t *t, int B, int T, int C), (da, db, d, t, B, T, C))
OP_TIMER_WRAP(matmul_forward, (real *o, const real *i, const real *w, const real *b, int N, int C, int OC, int l, int ld), (o, i, w, b, N, C, OC, l, ld))
OP_TIMER_WRAP(matmul_backward, (real *di, real *dw, real *db, const real *d, const real *i, const real *w, int N, int C, int OC, int l, int ld), (di, dw, db, d, i, w, N, C, OC, l, ld))
OP_TIMER_WRAP(matmul_forward_tangent, (real *o, const real *i, const real *ti, const real *w, const real *tw, const real *tb, int N, int C, int OC, int l, int ld), (o, i, ti, w, tw, tb, N, C, OC, l, ld))
OP_TIMER_WRAP(matmul_backward_tangent, (real *dti, real *dtw, real *dtb, const real *d, const real *dt, const real *i, const real *ti, const real *w, const real *tw, int N, int C, int OC, int l, int ld), (dti, dtw, dtb, d, dt, i, ti, w, tw, N, C, OC, l, ld))
OP_TIMER_WRAP(layernorm_forward, (real *o, real *m, real *r, const real *i, const real *w, const real *b, int N, int C), (o, m, r, i, w, b, N, C))
OP_TIMER_WRAP(layernorm_backward, (real *di, real *dw, real *db, const real *d, const real *i, const real *w, const real *m, const real *r, int N, int C), (di, dw, db, d, i, w, m, r, N, C))
OP_TIMER_WRAP(layernorm_forward_tangent, (real *o, const real *i, const real *ti, const real *w, const real *tw, const real *tb, const real *m, const real *r, int N, int C), (o, i, ti, w, tw, tb, m, r, N, C))
OP_TIMER_WRAP(layernorm_backward_tangent, (real *dti, real *dtw, real *dtb, const real *d, const real *dt, const real *i, const real *ti, const real *w, const real *tw, const real *m, const real *r, int N, int C), (dti, dtw, dtb, d, dt, i, ti, w, tw, m, r, N, C))
OP_TIMER_WRAP(attention_forward, (real *o, real *a, const real *q, const int32_t *v, int c, int B, int T, int C, int NH), (o, a, q, v, c, B, T, C, NH))
OP_TIMER_WRAP(attention_backward, (real *dq, const real *d, const real *q, const real *a, const int32_t *v, int c, int B, int T, int C, int NH), (dq, d, q, a, v, c, B, T, C, NH))
OP_TIMER_WRAP(attention_forward_tangent, (real *o, real *ta, const real *q, const real *tq, const real *a, const int32_t *v, int c, int B, int T, int C, int NH), (o, ta, q, tq, a, v, c, B, T, C, NH))
OP_TIMER_WRAP(attention_backward_tangent, (real *dtq, const real *d, const real *dt, const real *q, const real *tq, const real *a, const real *ta, const int32_t *v, int c, int B, int T, int C, int NH), (dtq, d, dt, q, tq, a, ta, v, c, B, T, C, NH))
OP_TIMER_WRAP(gelu_forward, (real *o, const real *i, size_t n), (o, i, n))
OP_TIMER_WRAP(gelu_backward, (real *di, const real *i, const real *d, size_t n), (di, i, d, n))
OP_TIMER_WRAP(gelu_forward_tangent, (real *o, const real *i, const real *ti, size_t n), (o, i, ti, n))
OP_TIMER_WRAP(gelu_backward_tangent, (real *dti, const real *i, const real *ti, const real *d, const real *dt, size_t n), (dti, i, ti, d, dt, n))
OP_TIMER_WRAP(residual_forward, (real *o, const real *a, const real *b, size_t n), (o, a, b, n))
OP_TIMER_WRAP(residual_backward, (real *da, real *db, const real *d, size_t n), (da, db, d, n))
OP_TIMER_WRAP(residual_forward_tangent, (real *o, const real *a, const real *b, size_t n), (o, a, b, n))
OP_TIMER_WRAP(residual_backward_tangent, (real *da, real *db, const real *d, size_t n), (da, db, d, n))
OP_TIMER_WRAP(crossentropy_forward, (real *l, real *p, const real *lg, const int32_t *t, const int32_t *nv, int B, int T, int V, int ld), (l, p, lg, t, nv, B, T, V, ld))
OP_TIMER_WRAP(crossentropy_backward, (real *dl, const real *p, const int32_t *t, const int32_t *nv, const real *d, int B, int T, int V, int ld), (dl, p, t, nv, d, B, T, V, ld))
OP_TIMER_WRAP(crossentropy_backward_in_place, (real *x, real *l, int fl, const int32_t *t, const int32_t *nv, const real *d, int B, int T, int V, int ld), (x, l, fl, t, nv, d, B, T, V, ld))
OP_TIMER_WRAP(crossentropy_forward_tangent, (real *tl, const real *p, const real *tlg, const int32_t *t, const int32_t *nv, int B, int T, int V, int ld), (tl, p, tlg, t, nv, B, T, V, ld))
OP_TIMER_WRAP(crossentropy_backward_tangent, (real *dtl, const real *p, const real *tlg, const int32_t *t, const int32_t *nv, const real *d, const real *dt, int B, int T, int V, int ld), (dtl, p, tlg, t, nv, d, dt, B, T, V, ld))
OP_TIMER_WRAP(crossentropy_backward_tangent_in_place, (real *x, const real *p, const int32_t *t, const int32_t *nv, const real *d, const real *dt, int B, int T, int V, int ld), (x, p, t, nv, d, dt, B, T, V, ld))
OP_TIMER_WRAP(meanpool_forward, (real *o, const real *i, const int32_t *v, int B, int T, int C), (o, i, v, B, T, C))
OP_TIMER_WRAP(meanpool_backward, (real *di, const real *d, const int32_t *v, int B, int T, int C), (di, d, v, B, T, C))
OP_TIMER_WRAP(weights_forward, (real *w, const real *z, const WeightNormConfig *c, int B), (w, z, c, B))
OP_TIMER_WRAP(weights_backward, (real *dz, const real *dw, const real *z, const WeightNormConfig *c, int B), (dz, dw, z, c, B))
OP_TIMER_WRAP(to_device, (void *d, const void *s, size_t n), (d, s, n))
OP_TIMER_WRAP(to_host, (void *d, const void *s, size_t n), (d, s, n))

/* A copy of *base whose ops are timed (memory management and synchronize are not). */
static inline Backend op_timer_backend(const Backend *base) {
    op_timer_base = base;
    Backend b = *base;
#define OP_TIMER_USE(fn) b.fn = op_timer_##fn
    OP_TIMER_USE(vec_zero); OP_TIMER_USE(vec_copy); OP_TIMER_USE(vec_scale); OP_TIMER_USE(vec_axpy);
    OP_TIMER_USE(vec_dot); OP_TIMER_USE(vec_sumsq); OP_TIMER_USE(vec_all_finite);
    OP_TIMER_USE(adamw_forward); OP_TIMER_USE(adamw_backward); OP_TIMER_USE(sgd_forward); OP_TIMER_USE(sgd_backward);
    OP_TIMER_USE(embedding_forward); OP_TIMER_USE(embedding_backward);
    OP_TIMER_USE(embedding_forward_tangent); OP_TIMER_USE(embedding_backward_tangent);
    OP_TIMER_USE(matmul_forward); OP_TIMER_USE(matmul_backward);
    OP_TIMER_USE(matmul_forward_tangent); OP_TIMER_USE(matmul_backward_tangent);
    OP_TIMER_USE(layernorm_forward); OP_TIMER_USE(layernorm_backward);
    OP_TIMER_USE(layernorm_forward_tangent); OP_TIMER_USE(layernorm_backward_tangent);
    OP_TIMER_USE(attention_forward); OP_TIMER_USE(attention_backward);
    OP_TIMER_USE(attention_forward_tangent); OP_TIMER_USE(attention_backward_tangent);
    OP_TIMER_USE(gelu_forward); OP_TIMER_USE(gelu_backward);
    OP_TIMER_USE(gelu_forward_tangent); OP_TIMER_USE(gelu_backward_tangent);
    OP_TIMER_USE(residual_forward); OP_TIMER_USE(residual_backward);
    OP_TIMER_USE(residual_forward_tangent); OP_TIMER_USE(residual_backward_tangent);
    OP_TIMER_USE(crossentropy_forward); OP_TIMER_USE(crossentropy_backward);
    OP_TIMER_USE(crossentropy_backward_in_place);
    OP_TIMER_USE(crossentropy_forward_tangent); OP_TIMER_USE(crossentropy_backward_tangent);
    OP_TIMER_USE(crossentropy_backward_tangent_in_place);
    OP_TIMER_USE(meanpool_forward); OP_TIMER_USE(meanpool_backward);
    OP_TIMER_USE(weights_forward); OP_TIMER_USE(weights_backward);
    OP_TIMER_USE(to_device); OP_TIMER_USE(to_host);
#undef OP_TIMER_USE
    return b;
}

/* Seconds recorded so far by the ops whose names start with prefix (before op_timer_print
 * clears them). */
static inline double op_timer_seconds(const char *prefix) {
    double s = 0;
    for (int i = 0; i < op_timer_n; i++)
        if (strncmp(op_timer_name[i], prefix, strlen(prefix)) == 0) s += op_timer_sec[i];
    return s;
}

/* Prints the rows (ms per rep, calls per rep, share of total) largest first, then the
 * time outside ops, and clears the table. total: the measured seconds of reps runs. */
static inline void op_timer_print(const char *title, double total, int reps) {
    printf("  per-op time of one %s (ms, summed over layers; each op between two "
           "synchronizations):\n", title);
    int order[OP_TIMER_MAX];
    for (int i = 0; i < op_timer_n; i++) order[i] = i;
    for (int i = 0; i < op_timer_n; i++)
        for (int j = i + 1; j < op_timer_n; j++)
            if (op_timer_sec[order[j]] > op_timer_sec[order[i]]) {
                int t = order[i]; order[i] = order[j]; order[j] = t;
            }
    double acc = 0;
    for (int k = 0; k < op_timer_n; k++) {
        int i = order[k];
        acc += op_timer_sec[i];
        if (op_timer_sec[i] / reps < 1e-4) continue;
        printf("    %-32s %8.1f ms  %5.1f%%  (%ld calls)\n", op_timer_name[i],
               1e3 * op_timer_sec[i] / reps, total > 0 ? 100 * op_timer_sec[i] / total : 0.0,
               op_timer_calls[i] / reps);
    }
    printf("    %-32s %8.1f ms  %5.1f%%\n", "(outside ops)", 1e3 * (total - acc) / reps,
           total > 0 ? 100 * (1 - acc / total) : 0.0);
    memset(op_timer_sec, 0, sizeof op_timer_sec);
    memset(op_timer_calls, 0, sizeof op_timer_calls);
}

#endif
