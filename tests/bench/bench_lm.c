/* bench_lm.c — throughput of the LM on the CPU backend, against the machine's SGEMM.
 * Benchmark config: LM 4 layers, d 256, 8 heads, d_ff 1024, ctx 256, batch 16, vocab 8192.
 * Times (median of several runs after a warm-up):
 *   - a full training step: lm_forward + zeroing the gradient + lm_backward + AdamW
 *     (optim_step with clipping);
 *   - one forward-over-reverse pass (lm_forward_over_reverse: ℓ, g, H·u, d_i);
 *   - cblas_sgemm 2048³ through OpenBLAS on the same number of threads.
 * FLOPs of a training step per token: 6·N + 6·L·d·ctx with N = ALL parameters (wte
 * included: as the tied output head it costs 2·V·d per token like any weight; wpe, a
 * lookup, is 1% of N), the formula the issue gives. Threads: OMP_NUM_THREADS.
 * Then one more run of each through a timed copy of the backend table gives the time
 * per op. Usage: bench_lm [reps]. Prints numbers and ratios; never pass/fail (DESIGN §8). Targets, on 2 cores: training
 * ≥ 50% of SGEMM throughput; forward-over-reverse ≤ 2.5× a training step.
 */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>

#include "backend.h"
#include "bench.h"
#include "check.h"
#include "lm.h"
#include "optim.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* GFLOP/s of cblas_sgemm M=N=K=n on `threads` OpenBLAS threads (median of reps) */
static double sgemm_gflops(int n, int threads, int reps) {
    float *A = malloc((size_t)n * n * sizeof(float)), *Bm = malloc((size_t)n * n * sizeof(float));
    float *Cm = malloc((size_t)n * n * sizeof(float));
    CHECK(A && Bm && Cm, "out of memory");
    for (size_t i = 0; i < (size_t)n * n; i++) { A[i] = (float)(i % 7) * 0.1f; Bm[i] = (float)(i % 5) * 0.1f; Cm[i] = 0; }
    openblas_set_num_threads(threads);
    double t[16];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, A, n, Bm, n, 0, Cm, n);
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, A, n, Bm, n, 0, Cm, n);
        t[r] = now() - t0;
    }
    openblas_set_num_threads(1);   /* the CPU backend runs BLAS single-threaded inside OpenMP */
    free(A); free(Bm); free(Cm);
    return 2.0 * n * n * (double)n / bench_median(t, reps) / 1e9;
}


/* ---- per-op time: a copy of the backend table whose ops add their wall time to a row ---- */
enum { MAXOPS = 64 };
static const char *op_name[MAXOPS];
static double op_time[MAXOPS];
static int n_ops;
static int op_slot(const char *name) {
    for (int i = 0; i < n_ops; i++) if (op_name[i] == name) return i;
    CHECK(n_ops < MAXOPS, "too many ops");
    op_name[n_ops] = name;
    return n_ops++;
}
#define WRAP(fn, params, args)                                                         \
    static void timed_##fn params {                                                    \
        static int slot = -1;                                                          \
        if (slot < 0) slot = op_slot(#fn);                                             \
        double t0 = now();                                                             \
        backend_cpu.fn args;                                                           \
        op_time[slot] += now() - t0;                                                   \
    }
WRAP(vec_zero, (real *x, size_t n), (x, n))
WRAP(adamw_forward, (real *th, real *m, real *v, const real *g, double s, size_t n, const AdamWHyper *h), (th, m, v, g, s, n, h))
WRAP(embedding_forward, (real *o, const int32_t *t, const real *a, const real *b, int B, int T, int C), (o, t, a, b, B, T, C))
WRAP(embedding_backward, (real *da, real *db, const real *d, const int32_t *t, int B, int T, int C), (da, db, d, t, B, T, C))
WRAP(embedding_forward_tangent, (real *o, const int32_t *t, const real *a, const real *b, int B, int T, int C), (o, t, a, b, B, T, C))
WRAP(embedding_backward_tangent, (real *da, real *db, const real *d, const int32_t *t, int B, int T, int C), (da, db, d, t, B, T, C))
WRAP(matmul_forward, (real *o, const real *i, const real *w, const real *b, int N, int C, int OC, int l), (o, i, w, b, N, C, OC, l))
WRAP(matmul_backward, (real *di, real *dw, real *db, const real *d, const real *i, const real *w, int N, int C, int OC, int l), (di, dw, db, d, i, w, N, C, OC, l))
WRAP(matmul_forward_tangent, (real *o, const real *i, const real *ti, const real *w, const real *tw, const real *tb, int N, int C, int OC, int l), (o, i, ti, w, tw, tb, N, C, OC, l))
WRAP(matmul_backward_tangent, (real *dti, real *dtw, real *dtb, const real *d, const real *dt, const real *i, const real *ti, const real *w, const real *tw, int N, int C, int OC, int l), (dti, dtw, dtb, d, dt, i, ti, w, tw, N, C, OC, l))
WRAP(layernorm_forward, (real *o, real *m, real *r, const real *i, const real *w, const real *b, int N, int C), (o, m, r, i, w, b, N, C))
WRAP(layernorm_backward, (real *di, real *dw, real *db, const real *d, const real *i, const real *w, const real *m, const real *r, int N, int C), (di, dw, db, d, i, w, m, r, N, C))
WRAP(layernorm_forward_tangent, (real *o, const real *i, const real *ti, const real *w, const real *tw, const real *tb, const real *m, const real *r, int N, int C), (o, i, ti, w, tw, tb, m, r, N, C))
WRAP(layernorm_backward_tangent, (real *dti, real *dtw, real *dtb, const real *d, const real *dt, const real *i, const real *ti, const real *w, const real *tw, const real *m, const real *r, int N, int C), (dti, dtw, dtb, d, dt, i, ti, w, tw, m, r, N, C))
WRAP(attention_forward, (real *o, real *a, const real *q, const int32_t *v, int c, int B, int T, int C, int NH), (o, a, q, v, c, B, T, C, NH))
WRAP(attention_backward, (real *dq, const real *d, const real *q, const real *a, const int32_t *v, int c, int B, int T, int C, int NH), (dq, d, q, a, v, c, B, T, C, NH))
WRAP(attention_forward_tangent, (real *o, real *ta, const real *q, const real *tq, const real *a, const int32_t *v, int c, int B, int T, int C, int NH), (o, ta, q, tq, a, v, c, B, T, C, NH))
WRAP(attention_backward_tangent, (real *dtq, const real *d, const real *dt, const real *q, const real *tq, const real *a, const real *ta, const int32_t *v, int c, int B, int T, int C, int NH), (dtq, d, dt, q, tq, a, ta, v, c, B, T, C, NH))
WRAP(gelu_forward, (real *o, const real *i, size_t n), (o, i, n))
WRAP(gelu_backward, (real *di, const real *i, const real *d, size_t n), (di, i, d, n))
WRAP(gelu_forward_tangent, (real *o, const real *i, const real *ti, size_t n), (o, i, ti, n))
WRAP(gelu_backward_tangent, (real *dti, const real *i, const real *ti, const real *d, const real *dt, size_t n), (dti, i, ti, d, dt, n))
WRAP(residual_forward, (real *o, const real *a, const real *b, size_t n), (o, a, b, n))
WRAP(residual_forward_tangent, (real *o, const real *a, const real *b, size_t n), (o, a, b, n))
WRAP(crossentropy_forward, (real *l, real *p, const real *lg, const int32_t *t, const int32_t *nv, int B, int T, int V), (l, p, lg, t, nv, B, T, V))
WRAP(crossentropy_backward, (real *dl, const real *p, const int32_t *t, const int32_t *nv, const real *d, int B, int T, int V), (dl, p, t, nv, d, B, T, V))
WRAP(crossentropy_forward_tangent, (real *tl, const real *p, const real *tlg, const int32_t *t, const int32_t *nv, int B, int T, int V), (tl, p, tlg, t, nv, B, T, V))
WRAP(crossentropy_backward_tangent, (real *dtl, const real *p, const real *tlg, const int32_t *t, const int32_t *nv, const real *d, const real *dt, int B, int T, int V), (dtl, p, tlg, t, nv, d, dt, B, T, V))
#undef WRAP

static Backend timed_backend(void) {
    Backend b = backend_cpu;
#define USE(fn) b.fn = timed_##fn
    USE(vec_zero); USE(adamw_forward);
    USE(embedding_forward); USE(embedding_backward); USE(embedding_forward_tangent); USE(embedding_backward_tangent);
    USE(matmul_forward); USE(matmul_backward); USE(matmul_forward_tangent); USE(matmul_backward_tangent);
    USE(layernorm_forward); USE(layernorm_backward); USE(layernorm_forward_tangent); USE(layernorm_backward_tangent);
    USE(attention_forward); USE(attention_backward); USE(attention_forward_tangent); USE(attention_backward_tangent);
    USE(gelu_forward); USE(gelu_backward); USE(gelu_forward_tangent); USE(gelu_backward_tangent);
    USE(residual_forward); USE(residual_forward_tangent);
    USE(crossentropy_forward); USE(crossentropy_backward); USE(crossentropy_forward_tangent);
    USE(crossentropy_backward_tangent);
#undef USE
    return b;
}

static void print_ops(const char *title, double total, int reps) {
    printf("  per-op time of one %s (ms, summed over layers; one run, so noisier than above):\n", title);
    int order[MAXOPS];
    for (int i = 0; i < n_ops; i++) order[i] = i;
    for (int i = 0; i < n_ops; i++)
        for (int j = i + 1; j < n_ops; j++)
            if (op_time[order[j]] > op_time[order[i]]) { int t = order[i]; order[i] = order[j]; order[j] = t; }
    double acc = 0;
    for (int k = 0; k < n_ops; k++) {
        int i = order[k];
        if (op_time[i] / reps < 1e-4) continue;
        acc += op_time[i];
        printf("    %-32s %8.1f ms  %5.1f%%\n", op_name[i], 1e3 * op_time[i] / reps, 100 * op_time[i] / reps / total);
    }
    printf("    %-32s %8.1f ms  %5.1f%%\n", "(outside ops)", 1e3 * (total - acc / reps), 100 * (1 - acc / reps / total));
    memset(op_time, 0, sizeof op_time);
}

/* Other processes make every number here meaningless: say so when the machine is busy. */
static void print_load(int threads) {
    FILE *f = fopen("/proc/loadavg", "r");
    double l1 = 0;
    if (!f) return;
    if (fscanf(f, "%lf", &l1) == 1)
        printf("load average %.2f%s\n", l1, l1 > 1.5 * threads ? "  (busy machine: timings are unreliable)" : "");
    fclose(f);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 3;   /* timed runs after one warm-up */
    if (reps < 1 || reps > 16) reps = 3;
    const Backend *be = &backend_cpu;
    LMConfig cfg = { .n_layer = 4, .d_model = 256, .n_head = 8, .d_ff = 1024, .vocab = 8192,
                     .ctx = 256, .init_std = 0.02 };
    const int B = 16, T = cfg.ctx, threads = omp_get_max_threads();
    const size_t NP = lm_num_params(&cfg);
    const double tokens = (double)B * T;
    const double flop_per_token = 6.0 * NP + 6.0 * cfg.n_layer * cfg.d_model * cfg.ctx;
    printf("bench_lm: L=%d d=%d heads=%d d_ff=%d ctx=%d B=%d V=%d, N=%.2fM params, %s, %d threads\n",
           cfg.n_layer, cfg.d_model, cfg.n_head, cfg.d_ff, cfg.ctx, B, cfg.vocab, NP / 1e6, REAL_NAME,
           threads);

    int32_t *inputs = xmalloc((size_t)B * T * sizeof(int32_t)), *targets = xmalloc((size_t)B * T * sizeof(int32_t));
    int32_t n_valid[16];
    uint64_t s = 1;
    for (int i = 0; i < B * T; i++) {
        inputs[i] = (int32_t)((s = s * 6364136223846793005ULL + 1442695040888963407ULL) >> 33) % cfg.vocab;
        targets[i] = (int32_t)((s = s * 6364136223846793005ULL + 1442695040888963407ULL) >> 33) % cfg.vocab;
    }
    for (int b = 0; b < B; b++) n_valid[b] = T;
    real dlosses[16], losses[16], dloss_dir[16];
    for (int b = 0; b < B; b++) dlosses[b] = (real)(1.0 / B);

    real *params = be->alloc(NP * sizeof(real)), *grads = be->alloc(NP * sizeof(real));
    real *u = be->alloc(NP * sizeof(real)), *hvp = be->alloc(NP * sizeof(real));
    lm_init_params(be, &cfg, params, 1);
    lm_init_params(be, &cfg, u, 2);
    LMActs *acts = lm_acts_new(be, &cfg, B, T, 1);
    printf("activations: %.0f MiB (with tangents)\n", lm_acts_bytes(acts) / 1048576.0);
    print_load(threads);
    OptimState st;
    optim_state_init(&st, be, OPTIM_ADAMW, NP);
    OptimHyper h = { .kind = OPTIM_ADAMW, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8,
                     .weight_decay = 0.1, .clip = 1.0, .schedule = LR_CONSTANT };

    double t_fwd[16], t_bwd[16], t_opt[16], t_step[16], t_for[16];
    for (int r = -1; r < reps; r++) {   /* r = -1: warm-up */
        double t0 = now();
        lm_forward(be, &cfg, params, acts, inputs, targets, n_valid, B, T, losses);
        double t1 = now();
        be->vec_zero(grads, NP);
        lm_backward(be, &cfg, params, acts, dlosses, grads);
        double t2 = now();
        optim_step(be, &st, params, grads, &h, h.lr, NULL);
        double t3 = now();
        if (r >= 0) { t_fwd[r] = t1 - t0; t_bwd[r] = t2 - t1; t_opt[r] = t3 - t2; t_step[r] = t3 - t0; }
    }
    for (int r = -1; r < reps; r++) {
        double t0 = now();
        be->vec_zero(grads, NP);
        be->vec_zero(hvp, NP);
        lm_forward_over_reverse(be, &cfg, params, u, acts, inputs, targets, n_valid, B, T, dlosses,
                                losses, grads, hvp, dloss_dir);
        if (r >= 0) t_for[r] = now() - t0;
    }
    double step = bench_median(t_step, reps), fwd = bench_median(t_fwd, reps), bwd = bench_median(t_bwd, reps);
    double opt = bench_median(t_opt, reps), fr = bench_median(t_for, reps);
    double gflops = tokens * flop_per_token / step / 1e9;
    double sg = sgemm_gflops(2048, threads, reps);

    printf("FLOPs per token (6·N + 6·L·d·ctx, N = all %zu params incl. tied wte): %.1f MFLOP\n", NP,
           flop_per_token / 1e6);
    printf("train step (fwd+bwd+AdamW): %8.1f ms  (fwd %.1f, bwd %.1f, AdamW %.1f)  %8.0f tokens/s  %6.1f GFLOP/s\n",
           step * 1e3, fwd * 1e3, bwd * 1e3, opt * 1e3, tokens / step, gflops);
    printf("forward-over-reverse:       %8.1f ms  %8.0f tokens/s  ratio to a train step %.2f (target <= 2.5)\n",
           fr * 1e3, tokens / fr, fr / step);
    printf("SGEMM 2048^3 (OpenBLAS, %d threads): %6.1f GFLOP/s; training at %.0f%% of it (target >= 50%%)\n",
           threads, sg, 100 * gflops / sg);
    printf("GEMM work of forward-over-reverse / training step = 9/3 = 3.0 (per weight: forward 1 +\n"
           "  tangent 2, backward 2 + its tangent 4): the ratio above sits near 3 when GEMMs dominate\n");
    print_load(threads);

    /* where the time goes: the same passes through a timed copy of the backend */
    Backend tb = timed_backend();
    double t0 = now();
    lm_forward(&tb, &cfg, params, acts, inputs, targets, n_valid, B, T, losses);
    tb.vec_zero(grads, NP);
    lm_backward(&tb, &cfg, params, acts, dlosses, grads);
    optim_step(&tb, &st, params, grads, &h, h.lr, NULL);
    print_ops("training step", now() - t0, 1);
    t0 = now();
    lm_forward_over_reverse(&tb, &cfg, params, u, acts, inputs, targets, n_valid, B, T, dlosses,
                            losses, grads, hvp, dloss_dir);
    print_ops("forward-over-reverse", now() - t0, 1);

    optim_state_free(&st, be);
    lm_acts_free(be, acts);
    be->free(params); be->free(grads); be->free(u); be->free(hvp);
    free(inputs); free(targets);
    return 0;
}
