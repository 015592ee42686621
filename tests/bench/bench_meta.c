/* bench_meta.c — cost of the exact meta-gradient (DESIGN §4.2) against plain training,
 * and its memory as T grows. Prints numbers, never pass/fail.
 *
 *   1. seconds per plain training step (LM forward + backward + clip + AdamW) on the
 *      benchmark config (configs/bench.yaml: LM 4 layers d256 8 heads ctx 256, batch 16,
 *      vocab 8192; rater 2 layers d128);
 *   2. seconds per meta-step of one member with T = 16 (--T), for checkpoint_every 1 with
 *      every step's activations kept (meta.keep_activations: T), and for the default
 *      round(sqrt(T)) without and with the default activation tapes; the ratio to T
 *      plain steps, and where the time goes;
 *   3. peak memory (VmHWM of a fresh child process per measurement, so each peak is
 *      its own) and the meta-step buffers (meta_work_bytes) for T = 16, 64, 256:
 *      allocation only on the benchmark config, and a full meta-step on a small config
 *      (--small-*: LM 2 layers d128 ctx 64, batch 8) where T = 256 runs in minutes.
 * Data: random tokens in memory (no files). Threads: experiment.threads or all cores.
 *
 *   build/float/bench/bench_meta [--config configs/bench.yaml] [--T 16] [--reps 3]
 *                                [--mem-T 16,64,256] [--skip-time] [--skip-mem] [--skip-small]
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "meta.h"
#include "progress.h"
#include "bench.h"
#include "test.h"

static const Backend *be;

/* CPU seconds of the whole process: with one thread, robust to other load on the
 * machine (wall time is not); with several it also counts OpenMP spin-waiting. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- measurements ------------------------------------------------------------------ */

typedef struct {
    MetaSpec s;
    size_t n, n_phi;
    real *theta, *phi, *dphi;
    OptimState opt;
} Member;

static void member_new(Member *m, const MetaSpec *s) {
    m->s = *s;
    m->n = lm_num_params(&s->lm);
    m->n_phi = rater_num_params(&s->rater);
    m->theta = be->alloc(m->n * sizeof(real));
    m->phi = be->alloc(m->n_phi * sizeof(real));
    m->dphi = be->alloc(m->n_phi * sizeof(real));
    lm_init_params(be, &s->lm, m->theta, 1);
    rater_init_params(be, &s->rater, m->phi, 2);
    optim_state_init(&m->opt, be, s->inner.kind, m->n);
}

static void member_free(Member *m) {
    be->free(m->theta); be->free(m->phi); be->free(m->dphi);
    optim_state_free(&m->opt, be);
}

/* Seconds per plain training step: forward, backward (dlosses = 1/B), clip + update
 * (wall, the median over the steps, so a moment of other load does not move it; *cpu:
 * CPU seconds, likewise); *for_cpu (if non-NULL): CPU seconds of one
 * lm_forward_over_reverse pass on the same batch, for comparison. */
static double plain_step_seconds(const MetaSpec *s, BenchFixed *f, int steps, double *cpu, double *for_cpu) {
    Member m;
    member_new(&m, s);
    LMActs *acts = lm_acts_new(be, &s->lm, s->batch, s->seq_len, 0);
    real *g = be->alloc(m.n * sizeof(real));
    real dl[4096];
    for (int i = 0; i < s->batch; i++) dl[i] = (real)1 / (real)s->batch;
    double wall[64], cpus[64];
    CHECK(steps >= 1 && steps <= 64, "plain_step_seconds: %d steps", steps);
    for (int k = -1; k < steps; k++) {   /* k = -1: warm-up */
        double t0 = dr_now(), c0 = cpu_now();
        const DataBatch *b = bench_fixed_train(f, k < 0 ? 0 : k);
        be->vec_zero(g, m.n);
        lm_forward_backward(be, &s->lm, m.theta, acts, b->inputs, b->targets, b->n_valid, b->B,
                            b->T, dl, NULL, g);   /* as dr-train runs it */
        optim_step(be, &m.opt, m.theta, g, &s->inner, lr_at(&s->inner, m.opt.step), NULL);
        be->synchronize();
        if (k >= 0) { wall[k] = dr_now() - t0; cpus[k] = cpu_now() - c0; }
    }
    double sec = bench_median(wall, steps);
    if (cpu) *cpu = bench_median(cpus, steps);
    if (for_cpu) {
        LMActs *ta = lm_acts_new(be, &s->lm, s->batch, s->seq_len, 1);
        real *u = be->alloc(m.n * sizeof(real)), *hv = be->alloc(m.n * sizeof(real));
        real dd[4096];
        be->vec_copy(u, g, m.n);
        const DataBatch *b = bench_fixed_train(f, 0);
        double best = INFINITY;
        for (int k = 0; k < 3; k++) {
            double c1 = cpu_now();
            lm_forward_over_reverse(be, &s->lm, m.theta, u, ta, b->inputs, b->targets, b->n_valid, b->B,
                                    b->T, dl, NULL, NULL, hv, dd);
            be->synchronize();
            double c = cpu_now() - c1;
            if (k > 0 && c < best) best = c;   /* k = 0: warm-up */
        }
        *for_cpu = best;
        be->free(u);
        be->free(hv);
        lm_acts_free(be, ta);
    }
    be->free(g);
    lm_acts_free(be, acts);
    member_free(&m);
    return sec;
}

/* One member's meta-steps (mode full) on one MetaWork, as dr-meta runs them: `reps`
 * timed meta-steps after `warm_up` untimed ones (the first also pays the first touch of
 * every buffer page). sec[r], cpu[r]: wall and CPU seconds of each; st: the stats of the
 * last; bytes, tapes: the MetaWork's. between(ctx) runs after each timed meta-step (the
 * plain steps that bracket it). */
static void meta_steps(const MetaSpec *s, BenchFixed *f, int warm_up, int reps, double *sec,
                       double *cpu, MetaStats *st, size_t *bytes, int *tapes,
                       void (*between)(void *ctx, int r), void *ctx) {
    Member m;
    member_new(&m, s);
    MetaWork *w = meta_work_new(be, s);
    *bytes = meta_work_bytes(w);
    *tapes = meta_work_tapes(w);
    MetaBatches data = { .train = bench_fixed_train, .val = bench_fixed_val, .n_val = f->n_val, .ctx = f };
    for (int k = 0; k < warm_up; k++) {
        CHECK(meta_member_step(w, m.theta, &m.opt, m.phi, &data, 1, m.dphi, NULL) == 0, "%s",
              dr_lasterr());
        be->synchronize();
    }
    for (int r = 0; r < reps; r++) {
        meta_stats_clear(st);
        be->vec_zero(m.dphi, m.n_phi);
        double t0 = dr_now(), c0 = cpu_now();
        CHECK(meta_member_step(w, m.theta, &m.opt, m.phi, &data, 1, m.dphi, st) == 0, "%s", dr_lasterr());
        be->synchronize();
        sec[r] = dr_now() - t0;
        cpu[r] = cpu_now() - c0;
        if (between) between(ctx, r);
    }
    meta_work_free(w);
    member_free(&m);
}

/* Peak resident memory of this process in MB (VmHWM: the high-water mark of its own
 * address space, so a child exec'd by in_child counts nothing of its parent). */
static double peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = atof(line + 6);
    if (f) fclose(f);
    return kb / 1024.0;
}

/* Runs this program again as `--child alloc|run T` (a fresh process, so its peak is its
 * own); the child prints its line and its peak. */
static void in_child(const char *self, const char *config_path, const char *what, int T) {
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork failed");
    if (pid == 0) {
        char t[16];
        snprintf(t, sizeof t, "%d", T);
        execl(self, self, "--config", config_path, "--child", what, t, (char *)NULL);
        _exit(127);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid failed");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "benchmark child failed");
}

static MetaSpec small_spec(const MetaSpec *s) {
    MetaSpec small = *s;
    small.lm.n_layer = 2;
    small.lm.d_model = 128;
    small.lm.n_head = 4;
    small.lm.d_ff = 512;
    small.lm.ctx = small.seq_len = 64;
    small.rater.ctx = small.seq_len_rater = 64;
    small.batch = 8;
    return small;
}

/* The CPU backend hands out large blocks as untouched zero pages, resident only once a
 * run writes them; the alloc child writes each block as it gets it, so its peak resident
 * set is what a meta-step of those buffers holds. */
static void *touching_alloc(size_t bytes) {
    void *p = backend_cpu.alloc(bytes);
    memset(p, 0, bytes);
    return p;
}

/* Child bodies: allocate what a member's meta-step holds (alloc), or run one (run). */
static void child_alloc(const MetaSpec *s0, int T) {
    static Backend touching;
    touching = backend_cpu;
    touching.alloc = touching_alloc;
    be = &touching;
    MetaSpec s = *s0;
    s.T = T;
    s.backprop_steps = T;
    s.checkpoint_every = meta_default_checkpoint_every(T);
    Member m;
    member_new(&m, &s);
    MetaWork *w = meta_work_new(be, &s);
    printf("    T %4d  c %2d, %d tapes: meta-step buffers %8.1f MB", T, s.checkpoint_every,
           meta_work_tapes(w), meta_work_bytes(w) / 1e6);
    meta_work_free(w);
    member_free(&m);
}

static void child_run(const MetaSpec *s0, int T) {
    MetaSpec s = *s0;
    s.T = T;
    s.backprop_steps = T;
    s.checkpoint_every = meta_default_checkpoint_every(T);
    BenchFixed f;
    bench_fixed_new(&f, &s, 16, 2);
    MetaStats st;
    size_t bytes;
    double cpu, plain_cpu;
    int tapes;
    double sec;
    meta_steps(&s, &f, 0, 1, &sec, &cpu, &st, &bytes, &tapes, NULL, NULL);
    double plain = plain_step_seconds(&s, &f, 8, &plain_cpu, NULL);
    printf("    T %4d  c %2d, %d tapes: meta-step buffers %8.1f MB, %.2f s per meta-step = %.2f x T "
           "plain steps (CPU time: %.2f x)", T, s.checkpoint_every, tapes, bytes / 1e6, sec,
           sec / (T * plain), cpu / (T * plain_cpu));
}

/* The plain steps between timed meta-steps: plain[r] is the mean of the step time right
 * before meta-step r and right after it. */
typedef struct {
    const MetaSpec *s;
    BenchFixed *f;
    int n_plain;
    double prev, prev_cpu;
    double plain[16], plain_cpu[16];
} Bracket;
static void bracket_after(void *ctx, int r) {
    Bracket *b = ctx;
    double after_cpu, after = plain_step_seconds(b->s, b->f, b->n_plain, &after_cpu, NULL);
    b->plain[r] = 0.5 * (b->prev + after);
    b->plain_cpu[r] = 0.5 * (b->prev_cpu + after_cpu);
    b->prev = after;
    b->prev_cpu = after_cpu;
}

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        out[n++] = atoi(s);
        while (*s && *s != ',') s++;
        if (*s == ',') s++;
    }
    return n;
}

int main(int argc, char **argv) {
    dr_set_progname("bench_meta");
    const char *config_path = "configs/bench.yaml";
    int T = 16, mem_T[8] = { 16, 64, 256 }, n_mem = 3, skip_time = 0, skip_mem = 0, skip_small = 0;
    int reps = 3;
    const char *child = NULL;
    int child_T = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) config_path = argv[++i];
        else if (!strcmp(argv[i], "--T") && i + 1 < argc) T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mem-T") && i + 1 < argc) n_mem = parse_list(argv[++i], mem_T, 8);
        else if (!strcmp(argv[i], "--skip-time")) skip_time = 1;
        else if (!strcmp(argv[i], "--skip-mem")) skip_mem = 1;
        else if (!strcmp(argv[i], "--skip-small")) skip_small = 1;
        else if (!strcmp(argv[i], "--child") && i + 2 < argc) { child = argv[i + 1]; child_T = atoi(argv[i + 2]); i += 2; }
        else dr_die("usage: bench_meta [--config C] [--T N] [--reps R] [--mem-T a,b,c] [--skip-time] [--skip-mem] [--skip-small]");
    }
    if (reps < 1 || reps > 16) dr_die("bench_meta: --reps %d: 1 to 16", reps);
    be = backend_select("cpu");
    Config cfg;
    if (config_load(&cfg, access(config_path, R_OK) == 0 ? config_path : NULL, 0, NULL) != 0)
        dr_die("%s", dr_lasterr());
    if (cfg.threads > 0) omp_set_num_threads(cfg.threads);
    MetaSpec s;
    if (meta_spec_from_config(&s, &cfg, cfg.lm.vocab_size > 0 ? cfg.lm.vocab_size : 8192) != 0)
        dr_die("%s", dr_lasterr());
    s.mode = META_FULL;
    if (child) {
        if (!strcmp(child, "alloc")) child_alloc(&s, child_T);
        else child_run((MetaSpec[]){ small_spec(&s) }, child_T);
        printf(", peak RSS %.1f MB\n", peak_rss_mb());
        fflush(stdout);
        return 0;
    }
    printf("bench_meta (%s, %d threads): LM %d layers d%d %d heads ctx %d vocab %d (%.2fM params), "
           "batch %d; rater %d layers d%d (%.2fM params); %s, clip %g\n",
           REAL_NAME, omp_get_max_threads(), s.lm.n_layer, s.lm.d_model, s.lm.n_head, s.seq_len,
           s.lm.vocab, lm_num_params(&s.lm) / 1e6, s.batch, s.rater.n_layer, s.rater.d_model,
           rater_num_params(&s.rater) / 1e6, s.inner.kind == OPTIM_ADAMW ? "AdamW" : "SGD", s.inner.clip);

    if (!skip_time) {
        s.T = T;
        s.backprop_steps = T;
        BenchFixed f;
        bench_fixed_new(&f, &s, T, cfg.meta.val_batches);
        double plain_cpu, for_cpu;
        double plain = plain_step_seconds(&s, &f, T < 8 ? T : 8, &plain_cpu, &for_cpu);
        printf("  plain training step: %.3f s (CPU %.3f s); one forward-over-reverse pass: CPU %.3f s = "
               "%.2f plain steps\n", plain, plain_cpu, for_cpu, for_cpu / plain_cpu);
        /* This machine's speed drifts by 10-15% over minutes (other tenants), so each
         * meta-step is compared with plain steps timed right before and right after it. */
        /* c = 1 with every step's activations kept too (the whole tape, as autograd keeps
         * it); the default c without tapes (every reverse step recomputes its primal pass);
         * the default c with the default tapes (meta.keep_activations: auto). Each config:
         * one warm-up meta-step, then `reps` timed ones, each against the plain steps timed
         * right before and right after it (this machine's speed drifts by 10-15% over
         * minutes); the median ratio is the number, the range shows the drift. */
        const int cd = meta_default_checkpoint_every(T);
        const int cs[3] = { 1, cd, cd }, keeps[3] = { T, 0, -1 };
        Bracket br = { .s = &s, .f = &f, .n_plain = T < 8 ? T : 8, .prev = plain, .prev_cpu = plain_cpu };
        for (int i = 0; i < 3; i++) {
            s.checkpoint_every = cs[i];
            s.keep_activations = keeps[i];
            MetaStats st;
            size_t bytes;
            int tapes;
            double sec[16], cpu[16], ratio[16], ratio_cpu[16];
            meta_steps(&s, &f, 1, reps, sec, cpu, &st, &bytes, &tapes, bracket_after, &br);
            for (int r = 0; r < reps; r++) {
                ratio[r] = sec[r] / (T * br.plain[r]);
                ratio_cpu[r] = cpu[r] / (T * br.plain_cpu[r]);
            }
            double lo = ratio[0], hi = ratio[0];
            for (int r = 1; r < reps; r++) { lo = fmin(lo, ratio[r]); hi = fmax(hi, ratio[r]); }
            const double mid = bench_median(ratio, reps), mid_cpu = bench_median(ratio_cpu, reps);
            const double plain_last = br.plain[reps - 1];
            printf("  meta-step T %d, checkpoint_every %d, %d activation tapes%s: %.2f x T plain steps "
                   "(median of %d; %.2f-%.2f; CPU time: %.2f x); last %.2f s; buffers %.1f MB\n",
                   T, cs[i], tapes, keeps[i] < 0 ? " (auto)" : "", mid, reps, lo, hi, mid_cpu,
                   sec[reps - 1], bytes / 1e6);
            printf("      last: unroll %.2f s (%.2f plain steps each), L_val + gradient %.2f s, recompute %.2f s, "
                   "optimizer reverse + forward-over-reverse %.2f s (%.2f plain steps each), "
                   "rater backward %.2f s\n",
                   st.sec_unroll, st.sec_unroll / (T * plain_last), st.sec_val, st.sec_recompute,
                   st.sec_reverse, st.sec_reverse / (T * plain_last), st.sec_rater);
        }
    }
    if (!skip_mem) {
        printf("  memory, benchmark config, allocation only (peak RSS of a child holding one member, "
               "its rater and the meta-step buffers):\n");
        for (int i = 0; i < n_mem; i++) in_child("/proc/self/exe", config_path, "alloc", mem_T[i]);
    }
    if (!skip_small) {
        MetaSpec small = small_spec(&s);
        printf("  memory and time, small config (LM 2 layers d128 ctx 64 vocab %d, batch 8), one full "
               "meta-step each\n    (a fresh process's first meta-step: it includes the first touch of every buffer):\n", small.lm.vocab);
        for (int i = 0; i < n_mem; i++) in_child("/proc/self/exe", config_path, "run", mem_T[i]);
    }
    return 0;
}
