/* bench_cuda.c — make bench-cuda: what the CUDA backend does on this machine's GPU.
 * Prints numbers, never pass/fail (DESIGN §8).
 *
 *   1. cuBLAS GEMM rate, n³ (n = 8192): fp32, tf32, bf16 through the backend's path (the
 *      inputs rounded on the fly) and bf16 on inputs already bf16 ("bf16-pure"): the rate
 *      MFU is measured against (tests/cuda/bench_gemm.cu).
 *   2. Training throughput of a plain step (LM forward + zeroed gradient + backward +
 *      clip + AdamW, median of --reps after a warm-up) for the benchmark config
 *      (configs/bench.yaml: LM 4 layers d256 8 heads ctx 256, batch 16, vocab 8192) and
 *      the seed's reference LM (configs/gpu.yaml: 12 layers d512 8 heads ctx 1024, batch
 *      64, vocab 50257), in fp32 and bf16: tokens/s, model TFLOP/s with 6·N + 6·L·d·ctx
 *      FLOPs per token (tests/bench/bench_lm.c's count: N = every parameter, tied wte
 *      included), MFU = model FLOP/s ÷ the bf16-pure GEMM rate, peak device memory.
 *      The reference config recomputes its blocks and chunks its head (lm.checkpointing,
 *      lm.head_chunk), which the meta-step needs and a plain training step may not: its
 *      bf16 step is also measured without recomputation, and then with the whole head too,
 *      where the plan fits (the model FLOPs are the same; the recomputed forward is not
 *      counted, so recomputation lowers the MFU).
 *   3. One meta-step of one member at the reference config with T = 16 (c = round(√16)
 *      = 4, AdamW with clip, the exact hypergradient): its time, its ratio to T plain
 *      steps of the same batch, where the time goes, peak device memory.
 *
 * Memory: every configuration is first costed (--plan prints the table without a GPU):
 * the bytes the library allocates are COUNTED, by calling lm_acts_new, rater_acts_new,
 * meta_work_new and optim_state_init on a Backend whose alloc only adds sizes up (those
 * functions only allocate; attention's state at the size the CUDA backend asks for, flash
 * mode's included); the CUDA backend's scratch (attention's [B,NH,T,T] dS and dṠ on the
 * usual path, the bf16 operand copies) is added by formula. A measurement whose total exceeds the
 * GPU's memory (less a 2 GiB reserve for the CUDA context and cuBLAS) runs at the largest
 * batch that fits, and says so. The count follows lm.checkpointing / rater.checkpointing
 * (activation recomputation) and lm.head_chunk (logits for a few examples at a time) as
 * the config sets them; --plan adds estimates for whichever a config leaves off
 * (docs/cuda.md has the formulas).
 *
 * Each measurement runs in a fresh child process (this program again with --child), so
 * its peak memory is its own and running out of device memory ends only that one.
 * Peak memory: the backend's accounting (every be->alloc block + scratch, high-water
 * mark, backend_cuda_memory) and cudaMemGetInfo's used bytes (the whole device).
 * Without a GPU: one line saying so, exit 1.
 *
 *   build/float/cuda/bench_cuda [--plan] [--quick] [--profile] [--skip-train] [--skip-meta]
 *                               [--gemm-shapes] [--checkpoint-every N] [--reps N] [--gemm-n N] [--T N]
 *                               [--precision fp32|bf16|both] [--bench-config F] [--ref-config F]
 * --quick: tiny shapes (a smoke test of this program, e.g. on the CPU emulator).
 * --skip-meta: GEMM rates and training only; --skip-train: GEMM rates and the meta-step.
 * --gemm-shapes: also each GEMM shape of a reference training step alone, on bf16 inputs,
 *   with an fp32 C (as now) and a bf16 C (as bf16 activations would), the head also with
 *   the vocabulary padded to a multiple of 64 (bench_gemm.cu). --profile: per op, then
 *   inside the matrix products by part and by shape (backend_cuda_profile).
 * --checkpoint-every N: the meta-step's c (default round(√T)).
 * --profile: after each training measurement, two more steps with every op timed between
 *   two synchronizations (tests/op_timer.h), printed largest first; after the meta-step,
 *   one more meta-step so timed (its time and ratio are the untimed one's).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "bench.h"
#include "check.h"
#include "config.h"
#include "cuda/backend_cuda.h"
#include "lm.h"
#include "op_timer.h"
#include "meta.h"
#include "optim.h"
#include "progress.h"
#include "rater.h"

#ifdef DR_DOUBLE
#error "bench_cuda measures the float CUDA backend"
#endif

double bench_gemm_tflops(const char *mode, int n, int reps);   /* bench_gemm.cu */
void bench_gemm_shapes(int BT, int C, int F, int V, int R, int reps);

#define GiB 1073741824.0
#define RESERVE_BYTES ((size_t)2 << 30)      /* CUDA context, cuBLAS workspace, fragmentation */
#define BF16_CHUNK_BYTES ((size_t)512 << 20) /* gemm.cu's default operand-copy limit */
#define LOGIT_CHUNK_ROWS 4096                /* rows of a logits chunk in the recompute plan */

static int quick;   /* --quick: tiny shapes */
static int profile; /* --profile: time per op of training steps */
static int skip_meta; /* --skip-meta: no meta-step measurement */
static int skip_train; /* --skip-train: no training measurement */
static int gemm_shapes; /* --gemm-shapes: the reference LM's GEMM shapes, fp32 vs bf16 C */
static int opt_c;     /* --checkpoint-every N for the meta-step (0: round(√T)) */
static int meta_c(int T) { return opt_c > 0 && opt_c <= T ? opt_c : meta_default_checkpoint_every(T); }

/* ---- configurations ------------------------------------------------------------------ */

typedef struct {
    const char *name;   /* "bench", "reference" */
    MetaSpec s;         /* LM, rater, optimizer, batch, seq_len */
    int val_batches;
} Setup;

static void setup_load(Setup *u, const char *name, const char *path, int default_vocab) {
    Config cfg;
    if (config_load(&cfg, path, 0, NULL) != 0) dr_die("%s", dr_lasterr());
    int vocab = cfg.lm.vocab_size > 0 ? cfg.lm.vocab_size : default_vocab;
    if (meta_spec_from_config(&u->s, &cfg, vocab) != 0) dr_die("%s: %s", path, dr_lasterr());
    u->s.mode = META_FULL;
    u->name = name;
    u->val_batches = cfg.meta.val_batches;
    if (quick) {   /* the same code paths on shapes an emulator runs in seconds; the LM's
                    * hs 16 and T 17 let its bf16 runs take flash attention (DR_CUDA_ATT_FLASH=1),
                    * the rater's hs 8 the usual path */
        u->s.lm = (LMConfig){ .n_layer = 1, .d_model = 32, .n_head = 2, .d_ff = 64, .vocab = 37,
                              .ctx = 17, .init_std = 0.02, .checkpointing = u->s.lm.checkpointing,
                              .head_chunk = u->s.lm.head_chunk ? 1 : 0 };
        u->s.rater = (LMConfig){ .n_layer = 1, .d_model = 16, .n_head = 2, .d_ff = 64, .vocab = 37,
                                 .ctx = 8, .init_std = 0.02 };
        u->s.batch = 2;
        u->s.seq_len = 17;
        u->s.seq_len_rater = 8;
        u->val_batches = 1;
    }
}

static double flop_per_token(const LMConfig *c) {
    return 6.0 * (double)lm_num_params(c) + 6.0 * c->n_layer * c->d_model * (double)c->ctx;
}

/* ---- memory plan: what the library allocates, counted ----------------------------------- */

static size_t counted;
static void *count_page;   /* one PROT_NONE page: any touch of "counted" memory faults */

static void *count_alloc(size_t bytes) {
    counted += (bytes + 255) / 256 * 256 + (bytes == 0) * 256;   /* cu_alloc's rounding */
    return count_page;
}
static void count_free(void *p) { (void)p; }

static const Backend *counting_backend(void) {
    static Backend b;
    if (!count_page) {
        count_page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(count_page != MAP_FAILED, "mmap failed");
        b = backend_cpu;
        b.alloc = count_alloc;
        b.free = count_free;
        /* attention's att / tatt as the CUDA backend sizes them (flash mode: no T×T) */
        b.attention_state_floats = backend_cuda.attention_state_floats;
        b.logits_row_multiple = backend_cuda.logits_row_multiple;   /* rows of 50304 */
    }
    return &b;
}

/* The CUDA backend's size-dependent choices (attention_state_floats, flash or not) follow
 * its GEMM mode and its flash switch: a plan sets the mode to its own precision while it
 * asks (plan_precision(bf16) returns the mode to put back), and takes the switch from the
 * environment (DR_CUDA_ATT_FLASH), as a run would. */
static const char *plan_precision(int bf16) {
    const char *was = backend_cuda_gemm_precision();
    CHECK(backend_cuda_set_gemm_precision(bf16 ? "bf16" : "fp32") == 0, "GEMM mode");
    return was;
}
static void plan_precision_restore(const char *was) {
    CHECK(backend_cuda_set_gemm_precision(was) == 0, "GEMM mode %s", was);
}

typedef struct {
    double lm_acts, rater_acts, states, params, scratch;   /* bytes on the GPU */
    double total;
    double host;        /* meta.host_checkpoints: the checkpoints, in host memory */
} Plan;

static size_t att_elems(const LMConfig *c, int B, int T) {
    return (size_t)B * c->n_head * T * T;
}

/* Attention of this shape takes the flash path under the GEMM mode set now (the backend
 * then keeps less than [B,NH,T,T] of state: attention.cu's rule, asked of the backend) */
static int att_flash(const LMConfig *c, int B, int T) {
    return backend_cuda.attention_state_floats(B, T, c->d_model, c->n_head) < att_elems(c, B, T);
}

/* The CUDA backend's scratch at its high-water mark (call under plan_precision): cu_scratch
 * grows by 25%. [B,NH,T,T] slots on the usual path only: ATT_A (dS, or the rater's dS) and,
 * with tangents, ATT_B (dṠ); flash attention needs none (its D and Ḋ rows go in the row
 * slot: 2·B·NH·T). bf16: two operand copies, each at most the chunk limit or the largest
 * operand (attention's batched copies on the usual path only), and, for a vocabulary V ≥
 * 1024 not a multiple of 64, the head's padded fp32 output (gemm.cu's GEMM_OUT slot): the
 * rows of one logits buffer (head_chunk examples or the batch) × V rounded up to 64, at
 * most twice the chunk limit. Small slots (pointer arrays, row statistics, partial sums,
 * ones, token index) are counted as the [B·T] rows they hold. */
static double scratch_bytes(const MetaSpec *s, int B, int tangents, int with_rater, int bf16) {
    const int T = s->seq_len, TR = s->seq_len_rater;
    const int lm_flash = att_flash(&s->lm, B, T);
    const size_t att_lm = lm_flash ? 0 : att_elems(&s->lm, B, T);
    const size_t att_rater = with_rater && !att_flash(&s->rater, B, TR) ? att_elems(&s->rater, B, TR) : 0;
    const size_t slot_a = att_lm > att_rater ? att_lm : att_rater, slot_b = tangents ? att_lm : 0;
    double bytes = 1.25 * 4.0 * ((double)slot_a + (double)slot_b);
    if (bf16) {
        const size_t BT = (size_t)B * T;
        size_t op = BT * (size_t)s->lm.vocab;                        /* the logit gradient */
        if (BT * (size_t)s->lm.d_ff > op) op = BT * (size_t)s->lm.d_ff;
        if (slot_a > op) op = slot_a;
        double copy = 2.0 * (double)op;
        if (copy > (double)BF16_CHUNK_BYTES) copy = (double)BF16_CHUNK_BYTES;
        bytes += 2 * 1.25 * copy;
        const int V = s->lm.vocab;
        if (V >= 1024 && V % 8 != 0) {   /* gemm.cu's padded output for the head */
            const int E = s->lm.head_chunk > 0 && s->lm.head_chunk < B ? s->lm.head_chunk : B;
            double out = 4.0 * (double)E * T * (double)((V + 63) / 64 * 64);
            if (out > 2.0 * (double)BF16_CHUNK_BYTES) out = 2.0 * (double)BF16_CHUNK_BYTES;
            bytes += 1.25 * out;
        }
    }
    bytes += 1.25 * 4.0 * (double)B * T * 8;   /* row statistics, partial sums, ones, index */
    if (lm_flash && tangents) bytes += 1.25 * 4.0 * 2.0 * B * s->lm.n_head * (double)T;   /* D, Ḋ */
    return bytes;
}

/* A plain training step: θ, gradient, AdamW m and v; LM activations without tangents. */
static Plan plan_train(const MetaSpec *s, int B, int bf16) {
    const Backend *cb = counting_backend();
    Plan p = { 0 };
    const char *was = plan_precision(bf16);
    counted = 0;
    LMActs *a = lm_acts_new(cb, &s->lm, B, s->seq_len, 0);
    lm_acts_free(cb, a);
    p.lm_acts = (double)counted;
    p.params = 4.0 * 4.0 * (double)lm_num_params(&s->lm);
    p.scratch = scratch_bytes(s, B, 0, 0, bf16);
    p.total = p.lm_acts + p.params + p.scratch;
    plan_precision_restore(was);
    return p;
}

/* One member's meta-step (mode full): the member's θ, m, v; φ and dφ; meta_work_new
 * (LM activations with tangents, rater activations, checkpoints, segment states,
 * reverse buffers). */
static Plan plan_meta(const MetaSpec *s0, int B, int T, int bf16) {
    MetaSpec s = *s0;
    s.batch = B;
    s.T = s.backprop_steps = T;
    s.checkpoint_every = meta_c(T);
    const Backend *cb = counting_backend();
    Plan p = { 0 };
    const char *was = plan_precision(bf16);
    counted = 0;
    LMActs *a = lm_acts_new(cb, &s.lm, B, s.seq_len, 1);
    lm_acts_free(cb, a);
    p.lm_acts = (double)counted;
    counted = 0;
    RaterActs *r = rater_acts_new(cb, &s.rater, B, s.seq_len_rater);
    rater_acts_free(cb, r);
    p.rater_acts = (double)counted;
    counted = 0;
    MetaWork *w = meta_work_new(cb, &s);
    p.host = (double)meta_work_host_bytes(w);
    meta_work_free(w);
    p.states = (double)counted - p.lm_acts - p.rater_acts;
    p.params = 4.0 * (3.0 * (double)lm_num_params(&s.lm) + 2.0 * (double)rater_num_params(&s.rater));
    p.scratch = scratch_bytes(&s, B, 1, 1, bf16);
    p.total = p.lm_acts + p.rater_acts + p.states + p.params + p.scratch;
    plan_precision_restore(was);
    return p;
}

/* Activation recomputation where the config leaves it off (lm.checkpointing). Per trunk
 * (the LM's, with its tangent copy when tangents; the rater's), only each layer's input
 * [B,T,C] is kept and one layer's buffers are recomputed at a time:
 *   saved = (L − 1)·layer − L·B·T·C·4 bytes per copy, layer = (8·B·T·C + 2·B·T·F +
 *           B·NH·T² + 4·B·T)·4 (the LN statistics only in the primal copy; B·NH·T² is
 *           attention's state on the usual path: the callers cost fp32 meta-steps only).
 * chunk_logits: the [B·T, V] logits, their tangent and both cotangents live only for
 * LOGIT_CHUNK_ROWS rows at a time. */
static double trunk_layer_bytes(const LMConfig *c, int B, int T, int stats) {
    const double BT = (double)B * T;
    return 4.0 * (8 * BT * c->d_model + 2 * BT * c->d_ff + (double)att_elems(c, B, T) + (stats ? 4 * BT : 0));
}
static double recompute_saving(const LMConfig *c, int B, int T, int stats) {
    return (c->n_layer - 1) * trunk_layer_bytes(c, B, T, stats) - 4.0 * c->n_layer * (double)B * T * c->d_model;
}
static Plan plan_recompute(Plan p, const MetaSpec *s, int B, int tangents, int with_rater,
                           int chunk_logits) {
    const int T = s->seq_len;
    double save = s->lm.checkpointing ? 0   /* already in the count */
                  : recompute_saving(&s->lm, B, T, 1) + (tangents ? recompute_saving(&s->lm, B, T, 0) : 0);
    if (chunk_logits && !s->lm.head_chunk) {   /* else already in the count */
        const double rows = (double)B * T, keep = rows < LOGIT_CHUNK_ROWS ? rows : LOGIT_CHUNK_ROWS;
        save += (tangents ? 4 : 2) * 4.0 * (rows - keep) * s->lm.vocab;
    }
    p.lm_acts -= save;
    if (with_rater && !s->rater.checkpointing) p.rater_acts -= recompute_saving(&s->rater, B, s->seq_len_rater, 1);
    p.total = p.lm_acts + p.rater_acts + p.states + p.params + p.scratch;
    return p;
}

/* "12.3 GiB", or "45.6 MiB" below 1 GiB (b: one of 4 rotating buffers) */
static const char *human(double bytes) {
    static char b[4][32];
    static int k;
    k = (k + 1) % 4;
    if (bytes >= GiB) snprintf(b[k], sizeof b[k], "%.1f GiB", bytes / GiB);
    else snprintf(b[k], sizeof b[k], "%.1f MiB", bytes / 1048576.0);
    return b[k];
}

static void print_plan(const char *title, const Plan *p, double budget) {
    printf("  %-58s %10s", title, human(p->total));
    printf("  (LM acts %s, rater acts %s,", human(p->lm_acts), human(p->rater_acts));
    printf(" states %s, params %s,", human(p->states), human(p->params));
    printf(" scratch %s)", human(p->scratch));
    if (p->host > 0) printf(" + %s of checkpoints in host memory", human(p->host));
    printf("%s\n", budget > 0 ? (p->total <= budget ? "  fits" : "  DOES NOT FIT") : "");
}

/* Largest B ≤ want whose plan fits budget (0 if not even B = 1). */
static int fit_batch(const Setup *u, int want, double budget, int meta, int T, int bf16) {
    for (int B = want; B >= 1; B = B > 8 ? B - B / 8 : B - 1) {
        Plan p = meta ? plan_meta(&u->s, B, T, bf16) : plan_train(&u->s, B, bf16);
        if (p.total <= budget) return B;
    }
    return 0;
}

/* The memory switches of an LM config, for a label: "", ", recomputed", ", head in 4s", ... */
static const char *memory_switches(const LMConfig *c) {
    static char b[64];
    snprintf(b, sizeof b, "%s", c->checkpointing ? ", recomputed" : "");
    if (c->head_chunk > 0)
        snprintf(b + strlen(b), sizeof b - strlen(b), ", head in %ds", c->head_chunk);
    return b;
}

static void run_plan(const Setup *bench, const Setup *ref, int T, double budget) {
    printf("memory plan: bytes the library allocates (counted) + CUDA backend scratch (formula);\n"
           "  the CUDA context and cuBLAS workspace (~0.5-1 GiB) are not included%s\n",
           budget > 0 ? "; 'fits' = within the GPU's memory less 2 GiB" : "");
    const Setup *us[2] = { bench, ref };
    char t[160];
    for (int i = 0; i < 2; i++) {
        const MetaSpec *s = &us[i]->s;
        for (int bf16 = 0; bf16 <= 1; bf16++) {
            snprintf(t, sizeof t, "%s: plain training step, B %d, %s%s", us[i]->name, s->batch,
                     bf16 ? "bf16" : "fp32", memory_switches(&s->lm));
            Plan p = plan_train(s, s->batch, bf16);
            print_plan(t, &p, budget);
        }
    }
    /* the variants of the reference's bf16 training step that the benchmark also measures */
    for (int variant = 1; variant <= 2; variant++) {
        MetaSpec v = ref->s;
        v.lm.checkpointing = 0;
        if (variant == 2) v.lm.head_chunk = 0;
        if ((variant == 1 && !ref->s.lm.checkpointing) || (variant == 2 && !ref->s.lm.head_chunk))
            continue;
        snprintf(t, sizeof t, "  the same in bf16%s", variant == 1 ? ", no recomputation"
                                                                   : ", no recomputation, whole head");
        Plan p = plan_train(&v, v.batch, 1);
        print_plan(t, &p, budget);
    }
    const MetaSpec *s = &ref->s;
    const int B = s->batch;
    Plan m = plan_meta(s, B, T, 0);
    snprintf(t, sizeof t, "reference meta-step T %d (c %d), B %d, fp32%s%s", T, meta_c(T), B,
             s->lm.checkpointing ? ", recompute" : "", s->lm.head_chunk ? ", head chunks" : "");
    print_plan(t, &m, budget);
    {   /* the same in bf16: with DR_CUDA_ATT_FLASH=1, flash attention's state and scratch */
        Plan mb = plan_meta(s, B, T, 1);
        const char *was = plan_precision(1);
        const int fl = att_flash(&s->lm, B, s->seq_len);
        plan_precision_restore(was);
        snprintf(t, sizeof t, "  the same in bf16%s", fl ? ", flash attention" : "");
        print_plan(t, &mb, budget);
    }
    if (!s->lm.checkpointing || !s->rater.checkpointing) {
        Plan r1 = plan_recompute(m, s, B, 1, 1, 0);
        print_plan("  with layer recomputation (LM, its tangents, rater)", &r1, budget);
    }
    if (!s->lm.head_chunk) {
        Plan r2 = plan_recompute(m, s, B, 1, 1, 1);
        snprintf(t, sizeof t, "  ... and logits in chunks of %d rows", LOGIT_CHUNK_ROWS);
        print_plan(t, &r2, budget);
    }
    const int Tbig = 1500;
    Plan big = plan_meta(s, B, Tbig, 0);
    snprintf(t, sizeof t, "reference meta-step T %d (c %d), B %d, fp32", Tbig,
             meta_default_checkpoint_every(Tbig), B);
    print_plan(t, &big, budget);
    if (!s->lm.head_chunk || !s->lm.checkpointing) {
        Plan big2 = plan_recompute(big, s, B, 1, 1, 1);
        print_plan("  ... with recomputation and chunked logits", &big2, budget);
    }
    printf("  |theta| = %zu (%.2f GiB as fp32); rater |phi| = %zu; one B·NH·T² attention buffer "
           "%.2f GiB; one [B·T, V] logits buffer %.2f GiB\n", lm_num_params(&s->lm),
           4.0 * lm_num_params(&s->lm) / GiB, rater_num_params(&s->rater),
           4.0 * att_elems(&s->lm, B, s->seq_len) / GiB, 4.0 * B * s->seq_len * (double)s->lm.vocab / GiB);
}

/* ---- children: one measurement each -------------------------------------------------------- */

static const Backend *gpu;

static void child_gpu(const char *precision) {
    char why[512];
    gpu = backend_cuda_get(why, sizeof why);
    if (!gpu) dr_die("%s", why);
    if (backend_cuda_set_gemm_precision(precision) != 0) dr_die("unknown precision %s", precision);
}


static void print_memory(const char *indent) {
    BackendCudaMemory m;
    backend_cuda_memory(&m);
    printf("%speak device memory: %s held by the backend (blocks + scratch);", indent, human(m.peak));
    printf(" %s in use on the device (cudaMemGetInfo, incl. context and cuBLAS)", human(m.device_used));
    printf(" of %s\n", human(m.device_total));
    printf("@peak_bytes %.6g\n", (double)m.peak);
}

static void child_gemm(int n, int reps) {
    child_gpu("fp32");
    const char *modes[4] = { "fp32", "tf32", "bf16", "bf16-pure" };
    const char *what[4] = { "fp32 (cublasSgemm, no TF32)", "tf32 (fp32 storage, TF32 tensor cores)",
                            "bf16 via the backend's path (fp32 in, bf16 copies, fp32 out)",
                            "bf16-pure (bf16 in, fp32 accumulate and out): MFU's denominator" };
    printf("GEMM %d^3 (cuBLAS, median of %d):\n", n, reps);
    for (int i = 0; i < 4; i++) {
        double tf = bench_gemm_tflops(modes[i], n, reps);
        printf("  %-66s %8.1f TFLOP/s\n", what[i], tf);
        printf("@%s %.6g\n", modes[i], tf);
    }
}

/* Plain training steps as dr-train runs them (lm_forward_backward, then clip and AdamW):
 * median of reps after 2 warm-ups. Then as many steps with the forward and the backward as
 * two calls (lm_forward, lm_backward: the head's logits of every chunk but the last
 * computed twice, five passes over them instead of three), which the line reports apart.
 * Prints; returns seconds/step (the first kind). with_profile: then two more steps of the
 * first kind with every op timed (--profile). */
static double train_steps(const Setup *u, int B, int reps, double peak_tflops, const char *label,
                          int with_profile) {
    const MetaSpec *s = &u->s;
    const LMConfig *c = &s->lm;
    const int T = s->seq_len;
    const size_t n = lm_num_params(c);
    real *theta = gpu->alloc(n * sizeof(real)), *g = gpu->alloc(n * sizeof(real));
    lm_init_params(gpu, c, theta, 1);
    OptimState st;
    optim_state_init(&st, gpu, s->inner.kind, n);
    LMActs *acts = lm_acts_new(gpu, c, B, T, 0);
    DataBatch b;
    bench_batch_new(&b, B, T, 1, c->vocab);
    real *dl = xmalloc((size_t)B * sizeof(real));
    for (int i = 0; i < B; i++) dl[i] = (real)1 / (real)B;
    double t_step[2][64], t_fwd[64], t_bwd[64], t_opt[2][64];
    if (reps > 64) reps = 64;
    for (int two = 0; two < 2; two++)
        for (int r = quick ? -1 : -2; r < reps; r++) {   /* r < 0: warm-up (cuBLAS heuristics, scratch) */
            gpu->synchronize();
            double t0 = dr_now(), t1 = t0;
            gpu->vec_zero(g, n);
            if (two) {
                lm_forward(gpu, c, theta, acts, b.inputs, b.targets, b.n_valid, B, T, NULL);
                gpu->synchronize();
                t1 = dr_now();
                lm_backward(gpu, c, theta, acts, dl, g);
            } else {
                lm_forward_backward(gpu, c, theta, acts, b.inputs, b.targets, b.n_valid, B, T, dl,
                                    NULL, g);
            }
            gpu->synchronize();
            double t2 = dr_now();
            optim_step(gpu, &st, theta, g, &s->inner, lr_at(&s->inner, st.step), NULL);
            gpu->synchronize();
            double t3 = dr_now();
            if (r < 0) continue;
            t_opt[two][r] = t3 - t2;
            t_step[two][r] = t3 - t0;
            if (two) { t_fwd[r] = t1 - t0; t_bwd[r] = t2 - t1; }
        }
    double step = bench_median(t_step[0], reps), tokens = (double)B * T;
    double tflops = tokens * flop_per_token(c) / step / 1e12;
    printf("  %s: %.1f ms/step (clip+AdamW %.1f)  %.0f tokens/s  %.1f TFLOP/s", label, 1e3 * step,
           1e3 * bench_median(t_opt[0], reps), tokens / step, tflops);
    if (peak_tflops > 0) printf("  MFU %.1f%%", 100 * tflops / peak_tflops);
    printf("\n    the forward and the backward as two calls: %.1f ms/step (fwd %.1f, bwd %.1f, "
           "clip+AdamW %.1f)\n", 1e3 * bench_median(t_step[1], reps), 1e3 * bench_median(t_fwd, reps),
           1e3 * bench_median(t_bwd, reps), 1e3 * bench_median(t_opt[1], reps));
    printf("@step_two_calls_s %.6g\n", bench_median(t_step[1], reps));
    if (with_profile) {   /* two more steps with every op between two synchronizations */
        Backend timed = op_timer_backend(gpu);
        double total = 0;
        for (int r = 0; r < 2; r++) {
            if (r == 1) backend_cuda_profile(1);   /* and the parts of its GEMMs, in the second */
            gpu->synchronize();
            double t0 = dr_now();
            timed.vec_zero(g, n);
            lm_forward_backward(&timed, c, theta, acts, b.inputs, b.targets, b.n_valid, B, T, dl,
                                NULL, g);
            optim_step(&timed, &st, theta, g, &s->inner, lr_at(&s->inner, st.step), NULL);
            gpu->synchronize();
            total += dr_now() - t0;
        }
        op_timer_print("training step", total, 2);
        backend_cuda_profile_print(stdout, "the second profiled step", 1);
        backend_cuda_profile(0);
    }
    free(dl);
    bench_batch_free(&b);
    lm_acts_free(gpu, acts);
    optim_state_free(&st, gpu);
    gpu->free(theta);
    gpu->free(g);
    return step;
}

static void child_train(const Setup *u, const char *precision, int B, int reps, double peak) {
    child_gpu(precision);
    const LMConfig *c = &u->s.lm;
    char label[160];
    snprintf(label, sizeof label, "%-9s %2d layers d%d ctx %d V %d, B %d, %s%s", u->name,
             c->n_layer, c->d_model, u->s.seq_len, c->vocab, B, precision, memory_switches(c));
    double step = train_steps(u, B, reps, peak, label, profile);
    printf("@step_s %.6g\n@tokens_per_s %.6g\n", step, (double)B * u->s.seq_len / step);
    print_memory("    ");
}

static void child_meta(const Setup *u, const char *precision, int B, int T, int reps, double peak) {
    child_gpu(precision);
    MetaSpec s = u->s;
    s.batch = B;
    s.T = s.backprop_steps = T;
    s.checkpoint_every = meta_c(T);
    Setup us = *u;
    us.s = s;
    char label[160];
    snprintf(label, sizeof label, "plain step at the meta-step's batch (B %d, %s)", B, precision);
    double plain = train_steps(&us, B, reps, peak, label, 0);   /* profiled in the training children */

    /* one meta-step of one member, from a fresh member */
    BenchFixed f;
    bench_fixed_new(&f, &s, T, u->val_batches);
    const size_t n = lm_num_params(&s.lm), n_phi = rater_num_params(&s.rater);
    real *theta = gpu->alloc(n * sizeof(real)), *phi = gpu->alloc(n_phi * sizeof(real));
    real *dphi = gpu->alloc(n_phi * sizeof(real));
    lm_init_params(gpu, &s.lm, theta, 1);
    rater_init_params(gpu, &s.rater, phi, 2);
    OptimState st;
    optim_state_init(&st, gpu, s.inner.kind, n);
    backend_cuda_memory_reset_peak();
    MetaWork *w = meta_work_new(gpu, &s);
    MetaBatches data = { .train = bench_fixed_train, .val = bench_fixed_val, .n_val = f.n_val, .ctx = &f };
    MetaStats ms;
    meta_stats_clear(&ms);
    gpu->synchronize();
    double t0 = dr_now();
    CHECK(meta_member_step(w, theta, &st, phi, &data, 1, dphi, &ms) == 0, "%s", dr_lasterr());
    gpu->synchronize();
    double sec = dr_now() - t0;
    printf("  meta-step T %d (c %d, %s, clip %g), B %d, %s: %.2f s = %.2f x T plain steps\n", T,
           s.checkpoint_every, s.inner.kind == OPTIM_ADAMW ? "AdamW" : "SGD", s.inner.clip, B,
           precision, sec, sec / (T * plain));
    printf("    unroll %.2f s (%.2f plain steps each), L_val + gradient %.2f s, recompute %.2f s, "
           "optimizer reverse + forward-over-reverse %.2f s (%.2f plain steps each), rater "
           "backward %.2f s\n", ms.sec_unroll, ms.sec_unroll / (T * plain), ms.sec_val,
           ms.sec_recompute, ms.sec_reverse, ms.sec_reverse / (T * plain), ms.sec_rater);
    printf("    L_val %.4f, meta-step buffers %s on the GPU", ms.l_val,
           human((double)(meta_work_bytes(w) - meta_work_host_bytes(w))));
    if (meta_work_host_bytes(w)) printf(" + %s in host memory", human((double)meta_work_host_bytes(w)));
    printf(" (meta_work_bytes)\n");
    printf("@meta_s %.6g\n@ratio %.6g\n", sec, sec / (T * plain));
    print_memory("    ");
    if (profile) {   /* one more meta-step, every op between two synchronizations */
        meta_work_free(w);
        Backend timed = op_timer_backend(gpu);
        w = meta_work_new(&timed, &s);
        meta_stats_clear(&ms);
        backend_cuda_profile(1);
        gpu->synchronize();
        t0 = dr_now();
        CHECK(meta_member_step(w, theta, &st, phi, &data, 1, dphi, &ms) == 0, "%s", dr_lasterr());
        gpu->synchronize();
        op_timer_print("meta-step", dr_now() - t0, 1);
        backend_cuda_profile_print(stdout, "the profiled meta-step", 1);
        backend_cuda_profile(0);
    }
    meta_work_free(w);
    optim_state_free(&st, gpu);
    gpu->free(theta); gpu->free(phi); gpu->free(dphi);
    bench_fixed_free(&f);
}

/* ---- the parent: runs each measurement as a child, reads its "@key value" lines ----------- */

typedef struct { char key[32]; double value; } Result;
static Result results[16];
static int n_results;

static double result(const char *key) {
    for (int i = 0; i < n_results; i++)
        if (!strcmp(results[i].key, key)) return results[i].value;
    return 0;
}

/* Runs self with args; echoes its stdout except "@key value" lines, which land in
 * results[]. Returns the exit status (stderr passes through). */
static int run_child(char **args) {
    fflush(stdout);
    int fd[2];
    CHECK(pipe(fd) == 0, "pipe failed");
    pid_t pid = fork();
    CHECK(pid >= 0, "fork failed");
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 1);
        close(fd[1]);
        execv("/proc/self/exe", args);
        _exit(127);
    }
    close(fd[1]);
    n_results = 0;
    FILE *in = fdopen(fd[0], "r");
    char line[1024];
    while (fgets(line, sizeof line, in)) {
        if (line[0] == '@') {
            if (n_results < 16 && sscanf(line + 1, "%31s %lf", results[n_results].key,
                                         &results[n_results].value) == 2)
                n_results++;
        } else {
            fputs(line, stdout);
            fflush(stdout);
        }
    }
    fclose(in);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid failed");
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (rc) printf("  (that measurement failed: exit %d; its message is above)\n", rc);
    return rc;
}

typedef struct {
    const char *bench_cfg, *ref_cfg;
    int reps, gemm_n, T;
    int want_fp32, want_bf16;
} Opts;

/* argv for a child: self --child WHAT [--quick] --bench-config F --ref-config F then extra */
static int child_args(char **a, char buf[][64], const Opts *o, const char *what) {
    int k = 0;
    a[k++] = (char *)"bench_cuda";
    a[k++] = (char *)"--child";
    a[k++] = (char *)what;
    if (quick) a[k++] = (char *)"--quick";
    if (profile) a[k++] = (char *)"--profile";
    if (opt_c > 0) {
        static char cbuf[32];
        snprintf(cbuf, sizeof cbuf, "%d", opt_c);
        a[k++] = (char *)"--checkpoint-every";
        a[k++] = cbuf;
    }
    a[k++] = (char *)"--bench-config";
    a[k++] = (char *)o->bench_cfg;
    a[k++] = (char *)"--ref-config";
    a[k++] = (char *)o->ref_cfg;
    snprintf(buf[0], 64, "%d", o->reps);
    a[k++] = (char *)"--reps";
    a[k++] = buf[0];
    return k;
}

/* One training measurement of setup u (a config's LM, or a variant of it: variant 1 without
 * recomputation, 2 with the whole head too), at the largest batch that fits. */
static void measure_train(const Setup *u, int variant, int bf16, double budget, char **args,
                          char buf[][64], const Opts *o) {
    const char *prec = bf16 ? "bf16" : "fp32";
    int B = fit_batch(u, u->s.batch, budget, 0, 0, bf16);
    if (B == 0) {
        printf("  %s, %s%s: does not fit even at B = 1 (plan: %s)\n", u->name, prec,
               memory_switches(&u->s.lm), human(plan_train(&u->s, 1, bf16).total));
        return;
    }
    if (B < u->s.batch)
        printf("  %s, %s%s: B %d needs %.1f GiB by the plan, more than %.1f GiB: measured at B %d\n",
               u->name, prec, memory_switches(&u->s.lm), u->s.batch,
               plan_train(&u->s, u->s.batch, bf16).total / GiB, budget / GiB, B);
    int k = child_args(args, buf, o, "train");
    snprintf(buf[3], 64, "%d", B);
    const char *extra[] = { "--setup", u->name, "--precision", prec, "--B", buf[3], "--peak", buf[2] };
    for (int e = 0; e < 8; e++) args[k++] = (char *)extra[e];
    if (variant >= 1) args[k++] = (char *)"--no-recompute";
    if (variant >= 2) args[k++] = (char *)"--whole-head";
    args[k] = NULL;
    if (run_child(args) == 0)
        printf("    plan for this batch: %s; measured peak %s (backend)\n",
               human(plan_train(&u->s, B, bf16).total), human(result("peak_bytes")));
}

int main(int argc, char **argv) {
    dr_set_progname("bench_cuda");
    setvbuf(stdout, NULL, _IOLBF, 0);
    Opts o = { .bench_cfg = "configs/bench.yaml", .ref_cfg = "configs/gpu.yaml", .reps = 5,
               .gemm_n = 8192, .T = 16, .want_fp32 = 1, .want_bf16 = 1 };
    int plan_only = 0;
    const char *child = NULL, *precision = "fp32", *setup = "bench";
    int child_B = 0, no_recompute = 0, whole_head = 0;
    double peak = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--plan")) plan_only = 1;
        else if (!strcmp(a, "--quick")) quick = 1;
        else if (!strcmp(a, "--profile")) profile = 1;
        else if (!strcmp(a, "--reps") && more) o.reps = atoi(argv[++i]);
        else if (!strcmp(a, "--gemm-n") && more) o.gemm_n = atoi(argv[++i]);
        else if (!strcmp(a, "--T") && more) o.T = atoi(argv[++i]);
        else if (!strcmp(a, "--bench-config") && more) o.bench_cfg = argv[++i];
        else if (!strcmp(a, "--ref-config") && more) o.ref_cfg = argv[++i];
        else if (!strcmp(a, "--precision") && more) {
            const char *p = argv[++i];
            o.want_fp32 = !strcmp(p, "fp32") || !strcmp(p, "both");
            o.want_bf16 = !strcmp(p, "bf16") || !strcmp(p, "both");
            if (!o.want_fp32 && !o.want_bf16) dr_die("--precision %s: expected fp32, bf16 or both", p);
            precision = p;
        }
        else if (!strcmp(a, "--child") && more) child = argv[++i];
        else if (!strcmp(a, "--setup") && more) setup = argv[++i];
        else if (!strcmp(a, "--B") && more) child_B = atoi(argv[++i]);
        else if (!strcmp(a, "--peak") && more) peak = atof(argv[++i]);
        else if (!strcmp(a, "--skip-meta")) skip_meta = 1;
        else if (!strcmp(a, "--skip-train")) skip_train = 1;
        else if (!strcmp(a, "--gemm-shapes")) gemm_shapes = 1;
        else if (!strcmp(a, "--checkpoint-every") && more) opt_c = atoi(argv[++i]);
        else if (!strcmp(a, "--no-recompute")) no_recompute = 1;   /* children: a variant */
        else if (!strcmp(a, "--whole-head")) whole_head = 1;
        else dr_die("usage: bench_cuda [--plan] [--quick] [--profile] [--skip-meta] [--skip-train] [--gemm-shapes] [--checkpoint-every N] [--reps N] [--gemm-n N] [--T N] "
                    "[--precision fp32|bf16|both] [--bench-config F] [--ref-config F]");
    }
    if (o.reps < 1 || o.reps > 64) o.reps = 5;
    if (o.T < 1) o.T = 16;
    if (quick && o.gemm_n == 8192) o.gemm_n = 64;
    if (quick && o.T == 16) o.T = 2;
    if (quick && o.reps == 5) o.reps = 1;

    Setup bench, ref;
    setup_load(&bench, "bench", o.bench_cfg, 8192);
    setup_load(&ref, "reference", o.ref_cfg, 50257);

    if (child) {
        if (child_B <= 0) child_B = !strcmp(setup, "reference") ? ref.s.batch : bench.s.batch;
        Setup *u = !strcmp(setup, "reference") ? &ref : &bench;
        if (no_recompute) u->s.lm.checkpointing = 0;
        if (whole_head) u->s.lm.head_chunk = 0;
        if (!strcmp(child, "gemm")) child_gemm(o.gemm_n, o.reps);
        else if (!strcmp(child, "train")) child_train(u, precision, child_B, o.reps, peak);
        else if (!strcmp(child, "meta")) child_meta(u, precision, child_B, o.T, o.reps < 3 ? o.reps : 3, peak);
        else if (!strcmp(child, "shapes")) {
            const MetaSpec *r = &ref.s;
            const int BT = r->batch * r->seq_len;
            child_gpu("fp32");
            bench_gemm_shapes(BT, r->lm.d_model, r->lm.d_ff, r->lm.vocab,
                              r->lm.head_chunk > 0 ? r->lm.head_chunk * r->seq_len : BT, o.reps);
        }
        else dr_die("unknown child %s", child);
        return 0;
    }

    char why[512];
    BackendCudaDevice dev;
    int have_gpu = backend_cuda_device(&dev, why, sizeof why) == 0;
    double budget = have_gpu ? (double)(dev.total_bytes > RESERVE_BYTES ? dev.total_bytes - RESERVE_BYTES : 0) : 0;
    if (plan_only) {
        if (have_gpu) printf("GPU: %s, %.1f GiB\n", dev.name, dev.total_bytes / GiB);
        run_plan(&bench, &ref, o.T, budget);
        return 0;
    }
    if (!have_gpu) {
        fprintf(stderr, "bench_cuda: no usable CUDA GPU (%s): make bench-cuda needs an NVIDIA GPU "
                "and its driver; without one, 'build/float/cuda/bench_cuda --plan' prints the "
                "memory estimates\n", why);
        return 1;
    }
    printf("bench_cuda: %s (sm_%d%d, %d SMs, %.1f GiB%s), CUDA backend, float; %d timed steps "
           "per measurement after warm-up\n", dev.name, dev.major, dev.minor, dev.sm_count,
           dev.total_bytes / GiB, dev.count > 1 ? ", device 0 of several" : "", o.reps);
    const char *flash = getenv("DR_CUDA_ATT_FLASH"), *blocks = getenv("DR_CUDA_ATT_BLOCKS");
    printf("attention: flash %s (DR_CUDA_ATT_FLASH=1: bf16 runs, where eligible), causal blocks %s "
           "(DR_CUDA_ATT_BLOCKS=1)\n", flash && !strcmp(flash, "1") ? "on" : "off",
           blocks && !strcmp(blocks, "1") ? "on" : "off");
    const char *bh_ptrs = getenv("DR_CUDA_BH_POINTERS");
    printf("attention's score products (bf16): %s\n", bh_ptrs && !strcmp(bh_ptrs, "1")
           ? "pointer arrays, as before the strided calls (DR_CUDA_BH_POINTERS=1)"
           : "strided batched calls (DR_CUDA_BH_POINTERS=1: pointer arrays)");
    const char *no_ksum = getenv("DR_CUDA_NO_KSUM");
    printf("tangent products (bf16): %s\n", no_ksum && !strcmp(no_ksum, "1")
           ? "two products each, as before the fusion (DR_CUDA_NO_KSUM=1)"
           : "each pair fused over the concatenated K (DR_CUDA_NO_KSUM=1: apart)");
    const char *no_bias_k = getenv("DR_CUDA_NO_BIAS_K");
    printf("linear biases (bf16): %s\n", no_bias_k && !strcmp(no_bias_k, "1")
           ? "filled into the output before the product, as before (DR_CUDA_NO_BIAS_K=1)"
           : "carried by the product over two more contraction terms (DR_CUDA_NO_BIAS_K=1: filled)");
    const char *no_copy_vec4 = getenv("DR_CUDA_NO_COPY_VEC4");
    printf("padded bf16 copies: %s\n", no_copy_vec4 && !strcmp(no_copy_vec4, "1")
           ? "a value a thread, as before (DR_CUDA_NO_COPY_VEC4=1)"
           : "four columns a thread where aligned (DR_CUDA_NO_COPY_VEC4=1: a value a thread)");
    printf("logits rows: %d floats for V = 50257 (%s)\n",
           (50257 + backend_cuda.logits_row_multiple - 1) / backend_cuda.logits_row_multiple *
               backend_cuda.logits_row_multiple,
           backend_cuda.logits_row_multiple > 1
               ? "x·Eᵀ straight into them; DR_CUDA_NO_LOGITS_PAD=1: rows of V"
               : "DR_CUDA_NO_LOGITS_PAD=1: through the padded output's scratch and copy, as before");

    char *args[32], buf[4][64];
    int k = child_args(args, buf, &o, "gemm");
    snprintf(buf[1], 64, "%d", o.gemm_n);
    args[k++] = (char *)"--gemm-n";
    args[k++] = buf[1];
    args[k] = NULL;
    double bf16_peak = 0;
    if (run_child(args) == 0) bf16_peak = result("bf16-pure");
    if (gemm_shapes) {
        char *sargs[32], sbuf[4][64];
        sargs[child_args(sargs, sbuf, &o, "shapes")] = NULL;
        run_child(sargs);
    }
    snprintf(buf[2], 64, "%.6g", bf16_peak);

    if (!skip_train)
        printf("training (LM forward + backward + clip + AdamW), FLOPs per token 6·N + 6·L·d·ctx, "
               "MFU against bf16-pure %.1f TFLOP/s:\n", bf16_peak);
    const Setup *us[2] = { &bench, &ref };
    for (int i = 0; i < 2 && !skip_train; i++)
        for (int bf16 = 0; bf16 <= 1; bf16++) {
            if ((bf16 && !o.want_bf16) || (!bf16 && !o.want_fp32)) continue;
            /* variant 0: as configured; 1: without recomputation; 2: and the whole head
             * (the reference in bf16 only, and only where the config has them on) */
            for (int variant = 0; variant <= 2; variant++) {
                Setup v = *us[i];
                if (variant >= 1) v.s.lm.checkpointing = 0;
                if (variant >= 2) v.s.lm.head_chunk = 0;
                if (variant > 0 && (i == 0 || !bf16 ||
                                    (variant == 1 && !us[i]->s.lm.checkpointing) ||
                                    (variant == 2 && !us[i]->s.lm.head_chunk)))
                    continue;
                measure_train(&v, variant, bf16, budget, args, buf, &o);
            }
        }

    if (!skip_meta) printf("one meta-step of the reference config (one member, mode full, exact hypergradient):\n");
    for (int bf16 = 0; bf16 <= 1 && !skip_meta; bf16++) {
        if ((bf16 && !o.want_bf16) || (!bf16 && !o.want_fp32)) continue;
        int want = ref.s.batch, B = fit_batch(&ref, want, budget, 1, o.T, bf16);
        Plan full = plan_meta(&ref.s, want, o.T, bf16);
        if (B == 0) {
            printf("  %s: does not fit even at B = 1\n", bf16 ? "bf16" : "fp32");
            continue;
        }
        if (B < want)
            printf("  %s: B %d needs %.1f GiB by the plan (as configured), more than %.1f GiB: "
                   "measured at B %d\n", bf16 ? "bf16" : "fp32", want,
                   full.total / GiB, budget / GiB, B);
        k = child_args(args, buf, &o, "meta");
        snprintf(buf[3], 64, "%d", B);
        snprintf(buf[1], 64, "%d", o.T);
        const char *extra[] = { "--setup", "reference", "--precision", bf16 ? "bf16" : "fp32",
                                "--B", buf[3], "--peak", buf[2], "--T", buf[1] };
        for (int e = 0; e < 10; e++) args[k++] = (char *)extra[e];
        args[k] = NULL;
        if (run_child(args) == 0)
            printf("    plan for this batch: %s; measured peak %s (backend)\n",
                   human(plan_meta(&ref.s, B, o.T, bf16).total), human(result("peak_bytes")));
    }
    printf("memory of the reference meta-step at full batch, by plan (bench_cuda --plan for all):\n");
    Plan m = plan_meta(&ref.s, ref.s.batch, o.T, 0);
    print_plan("  as implemented", &m, budget);
    if (!ref.s.lm.head_chunk || !ref.s.lm.checkpointing) {
        Plan r = plan_recompute(m, &ref.s, ref.s.batch, 1, 1, 1);
        print_plan("  with recomputation and chunked logits", &r, budget);
    }
    return 0;
}
