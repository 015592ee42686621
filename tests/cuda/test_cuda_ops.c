/* test_cuda_ops.c — every op of the CUDA backend against the CPU op (make test-cuda).
 *
 * For every op and every face (forward, backward, forward tangent, backward tangent),
 * with the NULL variants the models use: random inputs, the same on both sides; the
 * CPU op on host buffers, the CUDA op on device copies; then, per output,
 *     rel = max_i |gpu_i − cpu_i| / max_i |cpu_i − init_i|
 * where init is the output's value before the call: 0 for outputs the op writes (=),
 * the random pre-fill for outputs it accumulates into (+=), so the error is measured
 * against what the op added, not against the pre-fill. Rules:
 *   - ops, fp32:                rel ≤ 1e-5   (float rounding, different summation order;
 *                               the float CPU ops are within ~1e-6 of double references,
 *                               tests/unit/test_ops_float.c)
 *   - GELU's derivative faces:  rel ≤ 3e-5   (the CPU float build's tanh is a rational
 *                               approximation, |error| ≤ 3e-7, which y′ and y″ multiply by
 *                               up to ~x·u′ ≈ 30; CUDA's tanhf is within 2 ulp)
 *   - whole models (LM forward-over-reverse, rater):  rel ≤ 1e-4  (chains of ~40 ops)
 *   - one whole meta-step (T = 3 inner steps + reverse pass):  rel ≤ 1e-3, the AdamW
 *     meta-gradient ≤ max(1e-3, 10 × the CPU's own change under a one-ulp θ_0); with
 *     meta.host_checkpoints the GPU's meta-step gives the same bits
 *   - the GEMM ops (matmul, attention: every face) in TF32 and in bf16 ≤ 1e-2 (inputs
 *     rounded to 10 / 8 mantissa bits, fp32 accumulation), bf16 also with the operand
 *     copies cut into blocks (backend_cuda_set_bf16_chunk_bytes), and with wide outputs
 *     (N ≥ 1024, not a multiple of 64) through the padded fp32 output, whole and in blocks
 *   - causal attention both on the full T×T products (the default) and in blocks of
 *     query rows (backend_cuda_set_att_blocks); T up to 1024 (the row kernels' register
 *     versions) and above (their multi-pass versions)
 *   - flash attention (backend_cuda_set_att_flash, bf16) ≤ 1e-2 on every face, the
 *     derivative faces given the GPU's own att (lse, O); its att layout, determinism, and
 *     the usual path where the switch is on but the shape is not eligible
 *   - outputs the op must not touch (a NULL tangent in) must stay bit-identical;
 *   - every element of a written output is written: outputs start as NaN on the GPU
 *     side, and a NaN left where the CPU has a number is reported as "not written";
 *   - the reductions are deterministic: two runs give the same bits; the embedding
 *     backward is bit-identical to the CPU's (same additions in the same order).
 * The rel value of every comparison is printed, so a run shows the margins.
 * Exit status: 0 all passed, 1 something failed, 77 no CUDA device (skipped — the
 * caller must report it as skipped, never as passed). Built by lib/cuda/cuda.mk.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "cuda/backend_cuda.h"
#include "lm.h"
#include "meta.h"
#include "optim.h"
#include "rater.h"
#include "test.h"

#ifdef DR_DOUBLE
#error "test_cuda_ops compares the float CUDA backend with the float CPU backend"
#endif

#define TOL        1e-5   /* one op, fp32 */
#define TOL_GELU   3e-5   /* GELU's y', y'': the CPU's approximate tanh, amplified */
#define TOL_MODEL  1e-4   /* a whole LM / rater pass */
#define TOL_META   1e-3   /* a whole meta-step */
#define TOL_TF32   1e-2
#define TOL_BF16   1e-2   /* the issue's bound for bf16 inputs with fp32 accumulation */
#define TOL_BF16_MODEL 5e-2   /* a whole LM pass in bf16 mode (~40 ops, errors compound) */

static const Backend *cpu = &backend_cpu;
static const Backend *gpu;

/* ---- random numbers (the same stream as tests/unit/test_ops_float.c) ------------------ */

static uint64_t rng_state = 0x853C49E6748FEA9Bull;
static uint64_t rng_u64(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double urand(void) { return (double)(rng_u64() >> 11) * 0x1.0p-53; }
static double nrand(void) {
    double u1 = urand(), u2 = urand();
    return sqrt(-2 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2);
}

/* ---- paired buffers: h on the host for the CPU op, d on the device for the CUDA op ---- */

typedef struct {
    real *h, *d;      /* NULL, NULL: the op gets NULL on both sides */
    real *init;       /* the values before the op (host), NULL = all zero */
    size_t n;
    int cols, ld;     /* ld > 0: rows of cols values ld apart (strided()), else dense */
    int pads_free;    /* with ld: the op may write the pads (matmul's forward faces) */
} Buf;

static Buf buf_alloc(size_t n) {
    Buf b = { xmalloc((n ? n : 1) * sizeof(real)), gpu->alloc(n * sizeof(real)), NULL, n, 0, 0,
              0 };
    return b;
}
static void buf_to_dev(Buf *b) { gpu->to_device(b->d, b->h, b->n * sizeof(real)); }

/* x rounded to bf16 (round to nearest even), as the bf16 GEMM copies and the flash
 * kernels round their inputs */
static double bf16_rn(real x) {
    float f = (float)x;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* an input's values rounded to bf16 on both sides, so that the bf16 products' rounding of
 * it is exact and what a check measures is the rounding of the intermediates (P, dS, Ṗ…):
 * against unrounded inputs the rounding of the scores alone decides, and some draws put
 * correct attention over the 1e-2 bound (1.25e-2 at T = 1000, bidirectional) */
static void round_to_bf16(Buf *b) {
    for (size_t i = 0; i < b->n; i++) b->h[i] = (real)bf16_rn(b->h[i]);
    buf_to_dev(b);
}

/* an input: normal(mean, sd), the same values on both sides */
static Buf in_rand(size_t n, double mean, double sd) {
    Buf b = buf_alloc(n);
    for (size_t i = 0; i < n; i++) b.h[i] = (real)(mean + sd * nrand());
    buf_to_dev(&b);
    return b;
}
/* a copy of another buffer's host values (an in/out argument, or an aliased one), its
 * row layout too */
static Buf in_copy(const Buf *src) {
    Buf b = buf_alloc(src->n);
    memcpy(b.h, src->h, src->n * sizeof(real));
    buf_to_dev(&b);
    b.cols = src->cols;
    b.ld = src->ld;
    b.pads_free = src->pads_free;
    return b;
}
/* an output the op writes: NaN on both sides (a sentinel for elements not written) */
static Buf out_nan(size_t n) {
    Buf b = buf_alloc(n);
    for (size_t i = 0; i < n; i++) b.h[i] = NAN;
    buf_to_dev(&b);
    return b;
}
/* an output the op accumulates into: a random pre-fill, remembered */
static Buf acc_rand(size_t n) {
    Buf b = in_rand(n, 0, 1);
    b.init = xmalloc((n ? n : 1) * sizeof(real));
    memcpy(b.init, b.h, n * sizeof(real));
    return b;
}
/* another accumulated output's pre-fill (its init), the same on both sides */
static Buf prefill_copy(const Buf *src) {
    Buf b = buf_alloc(src->n);
    memcpy(b.h, src->init, src->n * sizeof(real));
    buf_to_dev(&b);
    return b;
}
/* b as rows of cols values ld apart (ld > cols: the LM's logits rows, backend.h): the
 * pads (columns ≥ cols) NaN on both sides, so that an op that reads one shows it;
 * check_buf compares the columns < cols and checks that the op left the pads' bits
 * alone, unless pads_free (matmul's forward faces may write them) */
static void strided(Buf *b, int cols, int ld, int pads_free) {
    for (size_t i = 0; i < b->n; i++)
        if ((int)(i % (size_t)ld) >= cols) {
            b->h[i] = NAN;
            if (b->init) b->init[i] = NAN;
        }
    buf_to_dev(b);
    b->cols = cols;
    b->ld = ld;
    b->pads_free = pads_free;
}

/* an in/out argument overwritten by the op (=, from its own values): compare to 0 */
static Buf inout_rand(size_t n, double mean, double sd) { return in_rand(n, mean, sd); }

static void buf_free(Buf *b) {
    if (b->h) free(b->h);
    if (b->d) gpu->free(b->d);
    free(b->init);
    memset(b, 0, sizeof *b);
}

typedef struct { int32_t *h, *d; } IBuf;
static IBuf ibuf(const int32_t *vals, size_t n) {
    IBuf b = { NULL, NULL };
    if (!vals) return b;
    b.h = xmalloc((n ? n : 1) * sizeof(int32_t));
    memcpy(b.h, vals, n * sizeof(int32_t));
    b.d = gpu->alloc(n * sizeof(int32_t));
    gpu->to_device(b.d, b.h, n * sizeof(int32_t));
    return b;
}
static IBuf ibuf_rand(size_t n, int lo, int hi) {   /* uniform in [lo, hi) */
    int32_t *v = xmalloc((n ? n : 1) * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) v[i] = lo + (int32_t)(rng_u64() % (uint64_t)(hi - lo));
    IBuf b = ibuf(v, n);
    free(v);
    return b;
}
static void ibuf_free(IBuf *b) {
    free(b->h);
    if (b->d) gpu->free(b->d);
    b->h = b->d = NULL;
}

/* The comparison of the file header; returns rel. */
static double check_buf(const char *what, const Buf *b, double tol) {
    real *g = xmalloc((b->n ? b->n : 1) * sizeof(real));
    gpu->to_host(g, b->d, b->n * sizeof(real));
    size_t unwritten = 0, cpu_nan = 0, pads_changed = 0;
    double dmax = 0, norm = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (b->ld && (int)(i % (size_t)b->ld) >= b->cols) {   /* a pad: the bits it had */
            if (!b->pads_free) pads_changed += memcmp(&g[i], &b->h[i], sizeof(real)) != 0;
            continue;
        }
        double c = b->h[i], x = g[i];
        if (isnan(c)) { cpu_nan++; continue; }
        if (isnan(x)) { unwritten++; continue; }
        double inc = b->init ? c - (double)b->init[i] : c;
        norm = fmax(norm, fabs(inc));
        dmax = fmax(dmax, fabs(x - c));
    }
    double rel = norm > 0 ? dmax / norm : dmax > 0 ? INFINITY : 0;
    TEST_CHECK(cpu_nan == 0, "%s: the CPU op left %zu of %zu elements NaN", what, cpu_nan, b->n);
    TEST_CHECK(unwritten == 0, "%s: %zu of %zu elements not written (NaN sentinel left)", what,
               unwritten, b->n);
    TEST_CHECK(pads_changed == 0, "%s: %zu pad elements (columns ≥ %d of rows %d apart) changed",
               what, pads_changed, b->cols, b->ld);
    if (norm > 0)
        TEST_CHECK(rel <= tol, "%s: max|gpu - cpu| / max|cpu change| = %.2e > %.0e", what, rel, tol);
    else
        TEST_CHECK(dmax == 0, "%s: the CPU op left it unchanged, the GPU changed it by %.2e", what, dmax);
    printf("  %-66s %8.1e\n", what, rel);
    free(g);
    return rel;
}

static void check_scalar(const char *what, double c, double g, double scale, double tol) {
    double rel = scale > 0 ? fabs(g - c) / scale : fabs(g - c);
    TEST_CHECK(rel <= tol, "%s: cpu %.17g gpu %.17g (rel %.2e > %.0e)", what, c, g, rel, tol);
    printf("  %-66s %8.1e\n", what, rel);
}

/* The same values on both sides, bit for bit (after a call that must not differ). */
static void check_bits(const char *what, const real *h, const real *d, size_t n) {
    real *g = xmalloc((n ? n : 1) * sizeof(real));
    gpu->to_host(g, d, n * sizeof(real));
    size_t diff = 0;
    for (size_t i = 0; i < n; i++) diff += memcmp(&g[i], &h[i], sizeof(real)) != 0;
    TEST_CHECK(diff == 0, "%s: %zu of %zu elements differ in their bits", what, diff, n);
    printf("  %-66s %s\n", what, diff ? "DIFFERENT" : "same bits");
    free(g);
}

/* ---- the table ------------------------------------------------------------------------- */

static void test_table(void) {
    TEST_CHECK(gpu->name && !strcmp(gpu->name, "cuda"), "backend name %s", gpu->name);
    TEST_CHECK(gpu->logits_row_multiple == 64, "backend_cuda: logits_row_multiple %d",
               gpu->logits_row_multiple);
    /* every field from alloc on is a function pointer */
    const size_t start = offsetof(Backend, alloc);
    const size_t nf = (sizeof(Backend) - start) / sizeof(void (*)(void));
    void (*fields[sizeof(Backend) / sizeof(void (*)(void))])(void);
    memcpy(fields, (const char *)gpu + start, nf * sizeof fields[0]);
    int nulls = 0;
    for (size_t i = 0; i < nf; i++) nulls += fields[i] == NULL;
    TEST_CHECK(nulls == 0, "backend_cuda: %d of %zu function pointers are NULL", nulls, nf);
    printf("  backend_cuda: %zu function pointers, %d NULL; GEMM precision %s\n", nf, nulls,
           backend_cuda_gemm_precision());
}

/* ---- vectors ---------------------------------------------------------------------------- */

static void test_vec(size_t n) {
    char w[96];
    Buf x = in_rand(n, 0, 1), y = acc_rand(n);

    Buf z = in_rand(n, 0, 1);
    cpu->vec_zero(z.h, n); gpu->vec_zero(z.d, n);
    snprintf(w, sizeof w, "vec_zero n=%zu", n); check_buf(w, &z, TOL);

    Buf c = out_nan(n);
    cpu->vec_copy(c.h, x.h, n); gpu->vec_copy(c.d, x.d, n);
    snprintf(w, sizeof w, "vec_copy n=%zu", n); check_buf(w, &c, 0);

    Buf s = inout_rand(n, 0, 1);
    cpu->vec_scale(s.h, -0.37, n); gpu->vec_scale(s.d, -0.37, n);
    snprintf(w, sizeof w, "vec_scale n=%zu", n); check_buf(w, &s, TOL);

    cpu->vec_axpy(y.h, 1.3, x.h, n); gpu->vec_axpy(y.d, 1.3, x.d, n);
    snprintf(w, sizeof w, "vec_axpy n=%zu", n); check_buf(w, &y, TOL);

    /* the dot products on the same inputs: the axpy above may differ in the last bit
     * (nvcc contracts y + a·x into an fma, the CPU build in ISO C does not) */
    gpu->to_device(y.d, y.h, n * sizeof(real));
    double abs_dot = 0, sq = 0;
    for (size_t i = 0; i < n; i++) {
        abs_dot += fabs((double)x.h[i] * y.h[i]);
        sq += (double)x.h[i] * x.h[i];
    }
    snprintf(w, sizeof w, "vec_dot n=%zu (double; rel to sum|x*y|)", n);
    check_scalar(w, cpu->vec_dot(x.h, y.h, n), gpu->vec_dot(x.d, y.d, n), abs_dot, 1e-12);
    snprintf(w, sizeof w, "vec_sumsq n=%zu (double)", n);
    check_scalar(w, cpu->vec_sumsq(x.h, n), gpu->vec_sumsq(x.d, n), sq, 1e-12);
    double d1 = gpu->vec_dot(x.d, y.d, n), d2 = gpu->vec_dot(x.d, y.d, n);
    TEST_CHECK(memcmp(&d1, &d2, sizeof d1) == 0, "vec_dot n=%zu: two runs differ", n);

    TEST_CHECK(gpu->vec_all_finite(x.d, n) == 1, "vec_all_finite n=%zu: finite vector", n);
    x.h[n / 2] = INFINITY;
    buf_to_dev(&x);
    TEST_CHECK(gpu->vec_all_finite(x.d, n) == 0, "vec_all_finite n=%zu: inf missed", n);
    x.h[n / 2] = NAN;   /* replaces the inf */
    buf_to_dev(&x);
    TEST_CHECK(gpu->vec_all_finite(x.d, n) == 0, "vec_all_finite n=%zu: NaN missed", n);
    buf_free(&x); buf_free(&y); buf_free(&z); buf_free(&c); buf_free(&s);
}

/* ---- optimizers --------------------------------------------------------------------- */

static void test_adamw(size_t n, long step, double g_scale) {
    char w[96];
    AdamWHyper h = { .lr = 1e-2, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1,
                     .step = step };
    Buf g = in_rand(n, 0, 1), v0 = in_rand(n, 0, 1);
    for (size_t i = 0; i < n; i++) {
        v0.h[i] = (real)(1e-3 * fabs(v0.h[i]));
        if (i % 97 == 0) g.h[i] = v0.h[i] = 0;   /* v = 0 after the update: must stay finite */
    }
    buf_to_dev(&g); buf_to_dev(&v0);
    Buf m0 = in_rand(n, 0, 0.1);
    for (size_t i = 0; i < n; i += 97) m0.h[i] = 0;
    buf_to_dev(&m0);

    Buf th = inout_rand(n, 0, 1), m = in_copy(&m0), v = in_copy(&v0);
    cpu->adamw_forward(th.h, m.h, v.h, g.h, g_scale, n, &h);
    gpu->adamw_forward(th.d, m.d, v.d, g.d, g_scale, n, &h);
    snprintf(w, sizeof w, "adamw_forward theta (step %ld, g_scale %.2f)", step, g_scale);
    check_buf(w, &th, TOL);
    check_buf("adamw_forward m", &m, TOL);
    check_buf("adamw_forward v", &v, TOL);

    Buf dth = inout_rand(n, 0, 1), dm = inout_rand(n, 0, 1), dv = inout_rand(n, 0, 1);
    Buf dg = out_nan(n);
    cpu->adamw_backward(dth.h, dm.h, dv.h, dg.h, m0.h, v0.h, g.h, g_scale, n, &h);
    gpu->adamw_backward(dth.d, dm.d, dv.d, dg.d, m0.d, v0.d, g.d, g_scale, n, &h);
    snprintf(w, sizeof w, "adamw_backward dtheta (step %ld)", step);
    check_buf(w, &dth, TOL);
    check_buf("adamw_backward dm", &dm, TOL);
    check_buf("adamw_backward dv", &dv, TOL);
    check_buf("adamw_backward dg", &dg, TOL);

    Buf dth2 = inout_rand(n, 0, 1);
    cpu->adamw_backward(dth2.h, NULL, NULL, NULL, m0.h, v0.h, g.h, g_scale, n, &h);
    gpu->adamw_backward(dth2.d, NULL, NULL, NULL, m0.d, v0.d, g.d, g_scale, n, &h);
    check_buf("adamw_backward dtheta (dm, dv, dg NULL)", &dth2, TOL);

    Buf bufs[] = { g, v0, m0, th, m, v, dth, dm, dv, dg, dth2 };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(&bufs[i]);
}

static void test_sgd(size_t n, double momentum) {
    char w[96];
    SGDHyper h = { .lr = 0.05, .momentum = momentum, .weight_decay = 0.1 };
    Buf g = in_rand(n, 0, 1);

    Buf th = inout_rand(n, 0, 1), buf = acc_rand(n);
    cpu->sgd_forward(th.h, buf.h, g.h, 0.8, n, &h);
    gpu->sgd_forward(th.d, buf.d, g.d, 0.8, n, &h);
    snprintf(w, sizeof w, "sgd_forward theta (momentum %.1f)", momentum);
    check_buf(w, &th, TOL);
    snprintf(w, sizeof w, "sgd_forward buf (momentum %.1f)", momentum);
    check_buf(w, &buf, TOL);   /* momentum 0: untouched, bit for bit */

    Buf th2 = inout_rand(n, 0, 1);
    cpu->sgd_forward(th2.h, NULL, g.h, 0.8, n, &h);
    gpu->sgd_forward(th2.d, NULL, g.d, 0.8, n, &h);
    check_buf("sgd_forward theta (buf NULL)", &th2, TOL);

    Buf dth = inout_rand(n, 0, 1), dbuf = inout_rand(n, 0, 1), dg = out_nan(n);
    cpu->sgd_backward(dth.h, dbuf.h, dg.h, n, &h);
    gpu->sgd_backward(dth.d, dbuf.d, dg.d, n, &h);
    snprintf(w, sizeof w, "sgd_backward dtheta (momentum %.1f)", momentum);
    check_buf(w, &dth, TOL);
    check_buf("sgd_backward dbuf", &dbuf, TOL);
    check_buf("sgd_backward dg", &dg, TOL);

    Buf dth3 = inout_rand(n, 0, 1);
    cpu->sgd_backward(dth3.h, NULL, NULL, n, &h);
    gpu->sgd_backward(dth3.d, NULL, NULL, n, &h);
    check_buf("sgd_backward dtheta (dbuf, dg NULL)", &dth3, TOL);

    Buf bufs[] = { g, th, buf, th2, dth, dbuf, dg, dth3 };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(&bufs[i]);
}

/* ---- embedding ------------------------------------------------------------------------- */

static void test_embedding(int B, int T, int C, int V, int maxT) {
    char w[128];
    const size_t BTC = (size_t)B * T * C;
    IBuf tok = ibuf_rand((size_t)B * T, 0, V);
    Buf wte = in_rand((size_t)V * C, 0, 1), wpe = in_rand((size_t)maxT * C, 0, 1);

    Buf out = out_nan(BTC);
    cpu->embedding_forward(out.h, tok.h, wte.h, wpe.h, B, T, C);
    gpu->embedding_forward(out.d, tok.d, wte.d, wpe.d, B, T, C);
    snprintf(w, sizeof w, "embedding_forward B=%d T=%d C=%d V=%d", B, T, C, V);
    check_buf(w, &out, TOL);

    Buf tw = in_rand((size_t)V * C, 0, 1), tp = in_rand((size_t)maxT * C, 0, 1);
    Buf to = out_nan(BTC), to2 = out_nan(BTC), to3 = out_nan(BTC);
    cpu->embedding_forward_tangent(to.h, tok.h, tw.h, tp.h, B, T, C);
    gpu->embedding_forward_tangent(to.d, tok.d, tw.d, tp.d, B, T, C);
    check_buf("embedding_forward_tangent", &to, TOL);
    cpu->embedding_forward_tangent(to2.h, tok.h, NULL, tp.h, B, T, C);
    gpu->embedding_forward_tangent(to2.d, tok.d, NULL, tp.d, B, T, C);
    check_buf("embedding_forward_tangent (twte NULL)", &to2, TOL);
    cpu->embedding_forward_tangent(to3.h, tok.h, NULL, NULL, B, T, C);
    gpu->embedding_forward_tangent(to3.d, tok.d, NULL, NULL, B, T, C);
    check_buf("embedding_forward_tangent (both NULL: zeros)", &to3, TOL);

    Buf dout = in_rand(BTC, 0, 1), dwte = acc_rand((size_t)V * C), dwpe = acc_rand((size_t)maxT * C);
    cpu->embedding_backward(dwte.h, dwpe.h, dout.h, tok.h, B, T, C);
    gpu->embedding_backward(dwte.d, dwpe.d, dout.d, tok.d, B, T, C);
    check_buf("embedding_backward dwte", &dwte, TOL);
    check_buf("embedding_backward dwpe", &dwpe, TOL);
    check_bits("embedding_backward dwte bit-identical to the CPU", dwte.h, dwte.d, dwte.n);
    check_bits("embedding_backward dwpe bit-identical to the CPU", dwpe.h, dwpe.d, dwpe.n);

    Buf dwpe2 = acc_rand((size_t)maxT * C);
    cpu->embedding_backward(NULL, dwpe2.h, dout.h, tok.h, B, T, C);
    gpu->embedding_backward(NULL, dwpe2.d, dout.d, tok.d, B, T, C);
    check_buf("embedding_backward (dwte NULL) dwpe", &dwpe2, TOL);

    Buf dtwte = acc_rand((size_t)V * C), dtwpe = acc_rand((size_t)maxT * C);
    cpu->embedding_backward_tangent(dtwte.h, dtwpe.h, dout.h, tok.h, B, T, C);
    gpu->embedding_backward_tangent(dtwte.d, dtwpe.d, dout.d, tok.d, B, T, C);
    check_buf("embedding_backward_tangent dtwte", &dtwte, TOL);
    check_buf("embedding_backward_tangent dtwpe", &dtwpe, TOL);
    Buf dtwte2 = acc_rand((size_t)V * C);
    cpu->embedding_backward_tangent(dtwte2.h, NULL, NULL, tok.h, B, T, C);
    gpu->embedding_backward_tangent(dtwte2.d, NULL, NULL, tok.d, B, T, C);
    check_buf("embedding_backward_tangent (dtout NULL: unchanged)", &dtwte2, TOL);

    Buf bufs[] = { wte, wpe, out, tw, tp, to, to2, to3, dout, dwte, dwpe, dwpe2, dtwte, dtwpe, dtwte2 };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(&bufs[i]);
    ibuf_free(&tok);
}

/* ---- matmul ------------------------------------------------------------------------------ */

/* ldo ≥ OC: the row stride of out, dout, tout and dtout (the pads NaN: never read; the
 * forward faces may write them) */
static void test_matmul_ld(int N, int C, int OC, int ldo, int layout, double tol,
                           const char *tag) {
    char w[128];
    const char *lay = layout == MATMUL_W_OC_C ? "W[OC,C]" : "W[C,OC]";
    Buf inp = in_rand((size_t)N * C, 0, 1), wt = in_rand((size_t)C * OC, 0, 1), b = in_rand(OC, 0, 1);
    Buf tinp = in_rand((size_t)N * C, 0, 1), tw = in_rand((size_t)C * OC, 0, 1), tb = in_rand(OC, 0, 1);
    const size_t NO = (size_t)N * ldo;
    Buf dout = in_rand(NO, 0, 1), dtout = in_rand(NO, 0, 1);
    strided(&dout, OC, ldo, 0);
    strided(&dtout, OC, ldo, 0);

    Buf out = out_nan(NO), out2 = out_nan(NO);
    strided(&out, OC, ldo, 1);
    strided(&out2, OC, ldo, 1);
    cpu->matmul_forward(out.h, inp.h, wt.h, b.h, N, C, OC, layout, ldo);
    gpu->matmul_forward(out.d, inp.d, wt.d, b.d, N, C, OC, layout, ldo);
    snprintf(w, sizeof w, "%smatmul_forward %dx%dx%d%s %s", tag, N, C, OC,
             ldo > OC ? " (rows strided)" : "", lay);
    check_buf(w, &out, tol);
    cpu->matmul_forward(out2.h, inp.h, wt.h, NULL, N, C, OC, layout, ldo);
    gpu->matmul_forward(out2.d, inp.d, wt.d, NULL, N, C, OC, layout, ldo);
    snprintf(w, sizeof w, "%smatmul_forward (bias NULL)", tag);
    check_buf(w, &out2, tol);

    /* the input cotangents (dinp, dtinp) are written (backend.h): NaN-filled, so that an
     * unwritten element or one read before it is written shows; dW, dbias accumulate */
    Buf dinp = out_nan((size_t)N * C), dw = acc_rand((size_t)C * OC), db = acc_rand(OC);
    cpu->matmul_backward(dinp.h, dw.h, db.h, dout.h, inp.h, wt.h, N, C, OC, layout, ldo);
    gpu->matmul_backward(dinp.d, dw.d, db.d, dout.d, inp.d, wt.d, N, C, OC, layout, ldo);
    snprintf(w, sizeof w, "%smatmul_backward dinp", tag); check_buf(w, &dinp, tol);
    snprintf(w, sizeof w, "%smatmul_backward dw", tag); check_buf(w, &dw, tol);
    snprintf(w, sizeof w, "%smatmul_backward dbias", tag); check_buf(w, &db, tol);
    Buf dinp2 = out_nan((size_t)N * C);
    cpu->matmul_backward(dinp2.h, NULL, NULL, dout.h, inp.h, wt.h, N, C, OC, layout, ldo);
    gpu->matmul_backward(dinp2.d, NULL, NULL, dout.d, inp.d, wt.d, N, C, OC, layout, ldo);
    snprintf(w, sizeof w, "%smatmul_backward (dw, dbias NULL) dinp", tag); check_buf(w, &dinp2, tol);
    /* dinp and dw from one call (cu_gemm_pair: in bf16 one copy of dout for both products
     * where gemm.cu allows it) = from two calls, each with the other NULL, bit for bit */
    {
        Buf dinp1 = out_nan(dinp.n), dw1 = prefill_copy(&dw);
        gpu->matmul_backward(dinp1.d, NULL, NULL, dout.d, inp.d, wt.d, N, C, OC, layout, ldo);
        gpu->matmul_backward(NULL, dw1.d, NULL, dout.d, inp.d, wt.d, N, C, OC, layout, ldo);
        gpu->to_host(dinp1.h, dinp.d, dinp.n * sizeof(real));
        gpu->to_host(dw1.h, dw.d, dw.n * sizeof(real));
        snprintf(w, sizeof w, "%smatmul_backward dinp: one call = dinp alone", tag);
        check_bits(w, dinp1.h, dinp1.d, dinp1.n);
        snprintf(w, sizeof w, "%smatmul_backward dw: one call = dw alone", tag);
        check_bits(w, dw1.h, dw1.d, dw1.n);
        buf_free(&dinp1);
        buf_free(&dw1);
    }

    Buf to = out_nan(NO), to2 = out_nan(NO), to3 = out_nan(NO);
    strided(&to, OC, ldo, 1);
    strided(&to2, OC, ldo, 1);
    strided(&to3, OC, ldo, 1);
    cpu->matmul_forward_tangent(to.h, inp.h, tinp.h, wt.h, tw.h, tb.h, N, C, OC, layout, ldo);
    gpu->matmul_forward_tangent(to.d, inp.d, tinp.d, wt.d, tw.d, tb.d, N, C, OC, layout, ldo);
    snprintf(w, sizeof w, "%smatmul_forward_tangent", tag); check_buf(w, &to, tol);
    cpu->matmul_forward_tangent(to2.h, inp.h, tinp.h, wt.h, NULL, NULL, N, C, OC, layout, ldo);
    gpu->matmul_forward_tangent(to2.d, inp.d, tinp.d, wt.d, NULL, NULL, N, C, OC, layout, ldo);
    snprintf(w, sizeof w, "%smatmul_forward_tangent (tw, tbias NULL)", tag); check_buf(w, &to2, tol);
    cpu->matmul_forward_tangent(to3.h, inp.h, NULL, wt.h, NULL, NULL, N, C, OC, layout, ldo);
    gpu->matmul_forward_tangent(to3.d, inp.d, NULL, wt.d, NULL, NULL, N, C, OC, layout, ldo);
    snprintf(w, sizeof w, "%smatmul_forward_tangent (all NULL: zeros)", tag); check_buf(w, &to3, tol);
    /* without tbias the GPU's first product writes tout (beta 0): the NaN sentinel there
     * must not reach the result (the head's logits tangent: tinp and tw, no bias) */
    Buf to4 = out_nan(NO), to5 = out_nan(NO);
    strided(&to4, OC, ldo, 1);
    strided(&to5, OC, ldo, 1);
    cpu->matmul_forward_tangent(to4.h, inp.h, tinp.h, wt.h, tw.h, NULL, N, C, OC, layout, ldo);
    gpu->matmul_forward_tangent(to4.d, inp.d, tinp.d, wt.d, tw.d, NULL, N, C, OC, layout, ldo);
    snprintf(w, sizeof w, "%smatmul_forward_tangent (tbias NULL)", tag); check_buf(w, &to4, tol);
    cpu->matmul_forward_tangent(to5.h, inp.h, NULL, wt.h, tw.h, NULL, N, C, OC, layout, ldo);
    gpu->matmul_forward_tangent(to5.d, inp.d, NULL, wt.d, tw.d, NULL, N, C, OC, layout, ldo);
    snprintf(w, sizeof w, "%smatmul_forward_tangent (tinp, tbias NULL)", tag); check_buf(w, &to5, tol);

    Buf dti = out_nan((size_t)N * C), dtw = acc_rand((size_t)C * OC), dtb = acc_rand(OC);
    cpu->matmul_backward_tangent(dti.h, dtw.h, dtb.h, dout.h, dtout.h, inp.h, tinp.h, wt.h, tw.h,
                                 N, C, OC, layout, ldo);
    gpu->matmul_backward_tangent(dti.d, dtw.d, dtb.d, dout.d, dtout.d, inp.d, tinp.d, wt.d, tw.d,
                                 N, C, OC, layout, ldo);
    snprintf(w, sizeof w, "%smatmul_backward_tangent dtinp", tag); check_buf(w, &dti, tol);
    snprintf(w, sizeof w, "%smatmul_backward_tangent dtw", tag); check_buf(w, &dtw, tol);
    snprintf(w, sizeof w, "%smatmul_backward_tangent dtbias", tag); check_buf(w, &dtb, tol);
    Buf dti2 = out_nan((size_t)N * C), dtw2 = acc_rand((size_t)C * OC), dtb2 = acc_rand(OC);
    cpu->matmul_backward_tangent(dti2.h, dtw2.h, dtb2.h, dout.h, NULL, inp.h, tinp.h, wt.h, tw.h,
                                 N, C, OC, layout, ldo);
    gpu->matmul_backward_tangent(dti2.d, dtw2.d, dtb2.d, dout.d, NULL, inp.d, tinp.d, wt.d, tw.d,
                                 N, C, OC, layout, ldo);
    snprintf(w, sizeof w, "%smatmul_backward_tangent (dtout NULL) dtinp", tag); check_buf(w, &dti2, tol);
    snprintf(w, sizeof w, "%smatmul_backward_tangent (dtout NULL) dtw", tag); check_buf(w, &dtw2, tol);
    snprintf(w, sizeof w, "%smatmul_backward_tangent (dtout NULL) dtbias unchanged", tag);
    check_buf(w, &dtb2, tol);
    Buf dti3 = out_nan((size_t)N * C), dtw3 = acc_rand((size_t)C * OC);
    cpu->matmul_backward_tangent(dti3.h, dtw3.h, NULL, dout.h, dtout.h, inp.h, NULL, wt.h, NULL,
                                 N, C, OC, layout, ldo);
    gpu->matmul_backward_tangent(dti3.d, dtw3.d, NULL, dout.d, dtout.d, inp.d, NULL, wt.d, NULL,
                                 N, C, OC, layout, ldo);
    snprintf(w, sizeof w, "%smatmul_backward_tangent (tinp, tw NULL) dtinp", tag); check_buf(w, &dti3, tol);
    snprintf(w, sizeof w, "%smatmul_backward_tangent (tinp, tw NULL) dtw", tag); check_buf(w, &dtw3, tol);
    Buf dti4 = out_nan((size_t)N * C);   /* neither term of dtinp: written with zeros */
    cpu->matmul_backward_tangent(dti4.h, NULL, NULL, dout.h, NULL, inp.h, tinp.h, wt.h, NULL,
                                 N, C, OC, layout, ldo);
    gpu->matmul_backward_tangent(dti4.d, NULL, NULL, dout.d, NULL, inp.d, tinp.d, wt.d, NULL,
                                 N, C, OC, layout, ldo);
    snprintf(w, sizeof w, "%smatmul_backward_tangent (dtout, tw NULL: zeros) dtinp", tag);
    check_buf(w, &dti4, tol);
    buf_free(&dti4);

    Buf bufs[] = { inp, wt, b, tinp, tw, tb, dout, dtout, out, out2, dinp, dw, db, dinp2, to, to2,
                   to3, to4, to5, dti, dtw, dtb, dti2, dtw2, dtb2, dti3, dtw3 };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(&bufs[i]);
}

static void test_matmul(int N, int C, int OC, int layout, double tol, const char *tag) {
    test_matmul_ld(N, C, OC, OC, layout, tol, tag);
}

/* ---- layernorm ------------------------------------------------------------------------- */

static void test_layernorm(int N, int C) {
    char w[128];
    const size_t NC = (size_t)N * C;
    Buf inp = in_rand(NC, 0.5, 2), wt = in_rand(C, 1, 0.3), b = in_rand(C, 0, 0.3);
    Buf tinp = in_rand(NC, 0, 1), tw = in_rand(C, 0, 1), tb = in_rand(C, 0, 1);
    Buf dout = in_rand(NC, 0, 1), dtout = in_rand(NC, 0, 1);

    Buf out = out_nan(NC), mean = out_nan(N), rstd = out_nan(N), out2 = out_nan(NC);
    cpu->layernorm_forward(out.h, mean.h, rstd.h, inp.h, wt.h, b.h, N, C);
    gpu->layernorm_forward(out.d, mean.d, rstd.d, inp.d, wt.d, b.d, N, C);
    snprintf(w, sizeof w, "layernorm_forward N=%d C=%d out", N, C);
    check_buf(w, &out, TOL);
    check_buf("layernorm_forward mean", &mean, TOL);
    check_buf("layernorm_forward rstd", &rstd, TOL);
    cpu->layernorm_forward(out2.h, NULL, NULL, inp.h, wt.h, b.h, N, C);
    gpu->layernorm_forward(out2.d, NULL, NULL, inp.d, wt.d, b.d, N, C);
    check_buf("layernorm_forward (mean, rstd NULL)", &out2, TOL);
    buf_to_dev(&mean);   /* the derivative faces get the same statistics on both sides */
    buf_to_dev(&rstd);

    Buf dinp = acc_rand(NC), dw = acc_rand(C), db = acc_rand(C);
    cpu->layernorm_backward(dinp.h, dw.h, db.h, dout.h, inp.h, wt.h, mean.h, rstd.h, N, C);
    gpu->layernorm_backward(dinp.d, dw.d, db.d, dout.d, inp.d, wt.d, mean.d, rstd.d, N, C);
    check_buf("layernorm_backward dinp", &dinp, TOL);
    check_buf("layernorm_backward dw", &dw, TOL);
    check_buf("layernorm_backward db", &db, TOL);
    Buf dw2 = acc_rand(C);
    cpu->layernorm_backward(NULL, dw2.h, NULL, dout.h, inp.h, wt.h, mean.h, rstd.h, N, C);
    gpu->layernorm_backward(NULL, dw2.d, NULL, dout.d, inp.d, wt.d, mean.d, rstd.d, N, C);
    check_buf("layernorm_backward (dinp, db NULL) dw", &dw2, TOL);

    Buf to = out_nan(NC), to2 = out_nan(NC), to3 = out_nan(NC);
    cpu->layernorm_forward_tangent(to.h, inp.h, tinp.h, wt.h, tw.h, tb.h, mean.h, rstd.h, N, C);
    gpu->layernorm_forward_tangent(to.d, inp.d, tinp.d, wt.d, tw.d, tb.d, mean.d, rstd.d, N, C);
    check_buf("layernorm_forward_tangent", &to, TOL);
    cpu->layernorm_forward_tangent(to2.h, inp.h, NULL, wt.h, tw.h, tb.h, mean.h, rstd.h, N, C);
    gpu->layernorm_forward_tangent(to2.d, inp.d, NULL, wt.d, tw.d, tb.d, mean.d, rstd.d, N, C);
    check_buf("layernorm_forward_tangent (tinp NULL)", &to2, TOL);
    cpu->layernorm_forward_tangent(to3.h, inp.h, tinp.h, wt.h, NULL, NULL, mean.h, rstd.h, N, C);
    gpu->layernorm_forward_tangent(to3.d, inp.d, tinp.d, wt.d, NULL, NULL, mean.d, rstd.d, N, C);
    check_buf("layernorm_forward_tangent (tw, tb NULL)", &to3, TOL);

    Buf dti = acc_rand(NC), dtw = acc_rand(C), dtb = acc_rand(C);
    cpu->layernorm_backward_tangent(dti.h, dtw.h, dtb.h, dout.h, dtout.h, inp.h, tinp.h, wt.h, tw.h,
                                    mean.h, rstd.h, N, C);
    gpu->layernorm_backward_tangent(dti.d, dtw.d, dtb.d, dout.d, dtout.d, inp.d, tinp.d, wt.d, tw.d,
                                    mean.d, rstd.d, N, C);
    check_buf("layernorm_backward_tangent dtinp", &dti, TOL);
    check_buf("layernorm_backward_tangent dtw", &dtw, TOL);
    check_buf("layernorm_backward_tangent dtb", &dtb, TOL);
    Buf dti2 = acc_rand(NC), dtw2 = acc_rand(C), dtb2 = acc_rand(C);
    cpu->layernorm_backward_tangent(dti2.h, dtw2.h, dtb2.h, dout.h, NULL, inp.h, tinp.h, wt.h, tw.h,
                                    mean.h, rstd.h, N, C);
    gpu->layernorm_backward_tangent(dti2.d, dtw2.d, dtb2.d, dout.d, NULL, inp.d, tinp.d, wt.d, tw.d,
                                    mean.d, rstd.d, N, C);
    check_buf("layernorm_backward_tangent (dtout NULL) dtinp", &dti2, TOL);
    check_buf("layernorm_backward_tangent (dtout NULL) dtw", &dtw2, TOL);
    check_buf("layernorm_backward_tangent (dtout NULL) dtb unchanged", &dtb2, TOL);
    Buf dti3 = acc_rand(NC), dtw3 = acc_rand(C), dtb3 = acc_rand(C);
    cpu->layernorm_backward_tangent(dti3.h, dtw3.h, dtb3.h, dout.h, dtout.h, inp.h, NULL, wt.h, NULL,
                                    mean.h, rstd.h, N, C);
    gpu->layernorm_backward_tangent(dti3.d, dtw3.d, dtb3.d, dout.d, dtout.d, inp.d, NULL, wt.d, NULL,
                                    mean.d, rstd.d, N, C);
    check_buf("layernorm_backward_tangent (tinp, tw NULL) dtinp", &dti3, TOL);
    check_buf("layernorm_backward_tangent (tinp, tw NULL) dtw", &dtw3, TOL);
    check_buf("layernorm_backward_tangent (tinp, tw NULL) dtb", &dtb3, TOL);

    Buf bufs[] = { inp, wt, b, tinp, tw, tb, dout, dtout, out, mean, rstd, out2, dinp, dw, db, dw2,
                   to, to2, to3, dti, dtw, dtb, dti2, dtw2, dtb2, dti3, dtw3, dtb3 };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(&bufs[i]);
}

/* ---- attention ----------------------------------------------------------------------------- */

static void same_twice(const char *what, const real *d1, const real *d2, size_t n);

/* Flash mode's att or tatt (`buf`, copied to the host as g): elements from..n−1 are still
 * the NaN sentinel, so no T×T matrix was written there. */
static void check_rest_untouched(const char *tag, const char *buf, const real *g, size_t from,
                                 size_t n) {
    size_t touched = 0;
    for (size_t i = from; i < n; i++) touched += !isnan(g[i]);
    char w[200];
    snprintf(w, sizeof w, "%s flash %s: the rest untouched", tag, buf);
    TEST_CHECK(touched == 0, "%s: %zu of %zu elements written", w, touched, n - from);
    printf("  %-66s %s\n", w, touched ? "WRITTEN" : "untouched");
}

/* Flash mode's att (lib/cuda/attention.cu): lse [B,NH,T] then a copy of out [B,T,C], the
 * rest untouched (still the NaN sentinel). lse against a double reference from qkv with Q
 * and K rounded to bf16 as the kernel rounds them, so that only its fp32 arithmetic
 * remains: |gpu − ref| ≤ 1e-4 · max(1, |ref|) where the row has keys (against unrounded
 * inputs the bf16 rounding of the scores alone reached 1.05e-2 on some draws), exactly
 * −inf where it has none. */
static void check_flash_att(const char *tag, const Buf *att, const Buf *out, const Buf *qkv,
                            const int32_t *valid, int causal, int B, int T, int C, int NH) {
    const size_t nl = (size_t)B * NH * T, BTC = (size_t)B * T * C;
    real *g = xmalloc(att->n * sizeof(real)), *o = xmalloc(BTC * sizeof(real));
    gpu->to_host(g, att->d, att->n * sizeof(real));
    gpu->to_host(o, out->d, BTC * sizeof(real));
    const int hs = C / NH;
    const double scale = 1.0 / sqrt((double)hs);
    double worst = 0;
    size_t bad_inf = 0;
    for (int b = 0; b < B; b++) {
        int L = valid ? valid[b] : T;
        L = L < 0 ? 0 : L > T ? T : L;
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const int n = t < L ? (causal ? t + 1 : L) : 0;
                const real lg = g[((size_t)b * NH + h) * T + t];
                if (n == 0) { bad_inf += !(isinf(lg) && lg < 0); continue; }
                const real *q = qkv->h + ((size_t)b * T + t) * 3 * C + h * hs;
                double mx = -INFINITY, sum = 0;
                for (int pass = 0; pass < 2; pass++)
                    for (int j = 0; j < n; j++) {
                        const real *k = qkv->h + ((size_t)b * T + j) * 3 * C + C + h * hs;
                        double d = 0;
                        for (int e = 0; e < hs; e++) d += bf16_rn(q[e]) * bf16_rn(k[e]);
                        d *= scale;
                        if (pass == 0) mx = fmax(mx, d); else sum += exp(d - mx);
                    }
                const double ref = mx + log(sum);
                worst = fmax(worst, fabs(lg - ref) / fmax(1.0, fabs(ref)));
            }
    }
    char w[200];
    snprintf(w, sizeof w, "%s flash att: lse", tag);
    TEST_CHECK(bad_inf == 0, "%s: %zu rows without keys not -inf", w, bad_inf);
    const double tol_lse = 1e-4;
    TEST_CHECK(worst <= tol_lse, "%s: |gpu - ref| / max(1, |ref|) = %.2e > %.0e", w, worst, tol_lse);
    printf("  %-66s %8.1e\n", w, worst);
    snprintf(w, sizeof w, "%s flash att: O copy = out", tag);
    check_bits(w, o, att->d + nl, BTC);
    check_rest_untouched(tag, "att", g, nl + BTC, att->n);
    free(g);
    free(o);
}

/* Flash mode's tatt (lib/cuda/attention.cu): r [B,NH,T] = rowsum(P ⊙ Ṡ) then a copy of tout
 * [B,T,C], the rest untouched (still the NaN sentinel), so the forward tangent provably
 * did not write a T×T Ṗ. r against a double reference from qkv, tqkv (0 for rows without
 * keys): max|gpu − ref| / max|ref| ≤ tol. zero: a zero tangent (tqkv NULL), so r and the
 * copy must be exactly 0. */
static void check_flash_tatt(const char *tag, const Buf *tatt, const Buf *tout, const Buf *qkv,
                             const Buf *tqkv, const int32_t *valid, int causal, int B, int T,
                             int C, int NH, double tol, int zero) {
    const size_t nl = (size_t)B * NH * T, BTC = (size_t)B * T * C;
    real *g = xmalloc(tatt->n * sizeof(real)), *o = xmalloc(BTC * sizeof(real));
    gpu->to_host(g, tatt->d, tatt->n * sizeof(real));
    gpu->to_host(o, tout->d, BTC * sizeof(real));
    const int hs = C / NH, C3 = 3 * C;
    const double scale = 1.0 / sqrt((double)hs);
    double dmax = 0, norm = 0;
    double *p = xmalloc((size_t)T * sizeof(double));
    for (int b = 0; b < B && !zero; b++) {
        int L = valid ? valid[b] : T;
        L = L < 0 ? 0 : L > T ? T : L;
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const int n = t < L ? (causal ? t + 1 : L) : 0;
                const real *q = qkv->h + ((size_t)b * T + t) * C3 + h * hs;
                const real *qt = tqkv->h + ((size_t)b * T + t) * C3 + h * hs;
                double mx = -INFINITY, sum = 0, ref = 0;
                for (int j = 0; j < n; j++) {
                    const real *k = qkv->h + ((size_t)b * T + j) * C3 + C + h * hs;
                    double d = 0;
                    for (int e = 0; e < hs; e++) d += (double)q[e] * k[e];
                    p[j] = d * scale;
                    mx = fmax(mx, p[j]);
                }
                for (int j = 0; j < n; j++) sum += (p[j] = exp(p[j] - mx));
                for (int j = 0; j < n; j++) {
                    const real *k = qkv->h + ((size_t)b * T + j) * C3 + C + h * hs;
                    const real *kt = tqkv->h + ((size_t)b * T + j) * C3 + C + h * hs;
                    double sd = 0;
                    for (int e = 0; e < hs; e++) sd += (double)qt[e] * k[e] + (double)q[e] * kt[e];
                    ref += p[j] / sum * sd * scale;
                }
                const real rg = g[((size_t)b * NH + h) * T + t];
                norm = fmax(norm, fabs(ref));
                dmax = fmax(dmax, isnan(rg) ? INFINITY : fabs(rg - ref));
            }
    }
    char w[200];
    if (zero) {
        size_t nonzero = 0;
        for (size_t i = 0; i < nl + BTC; i++) nonzero += g[i] != 0;
        snprintf(w, sizeof w, "%s flash tatt: r, Ȯ copy = 0", tag);
        TEST_CHECK(nonzero == 0, "%s: %zu of %zu elements not 0", w, nonzero, nl + BTC);
        printf("  %-66s %s\n", w, nonzero ? "NOT ZERO" : "zeros");
    } else {
        const double rel = norm > 0 ? dmax / norm : dmax;
        snprintf(w, sizeof w, "%s flash tatt: r", tag);
        TEST_CHECK(rel <= tol, "%s: max|gpu - ref| / max|ref| = %.2e > %.0e", w, rel, tol);
        printf("  %-66s %8.1e\n", w, rel);
        snprintf(w, sizeof w, "%s flash tatt: Ȯ copy = tout", tag);
        check_bits(w, o, tatt->d + nl, BTC);
    }
    check_rest_untouched(tag, "tatt", g, nl + BTC, tatt->n);
    free(p);
    free(g);
    free(o);
}

/* Scratch of the CUDA backend now, and a check that it holds no [B,NH,T,T] buffer. */
static void check_no_att_scratch(const char *what, size_t att_elems) {
    BackendCudaMemory m;
    backend_cuda_memory(&m);
    const size_t one = att_elems * sizeof(real);
    TEST_CHECK(m.scratch < one, "%s: %zu bytes of scratch, a [B,NH,T,T] buffer is %zu", what,
               m.scratch, one);
    printf("  %-66s %zu < %zu bytes\n", what, m.scratch, one);
}

/* flash: the CUDA backend's flash path is expected to run (the caller has set it up and
 * knows it is eligible): the forward's att and the forward tangent's tatt are checked as
 * flash mode's layouts and the derivative faces get the GPU's own att and tatt; the
 * backward, the forward tangent and the backward tangent must give the same bits twice;
 * the tangent faces must use no [B,NH,T,T] scratch. Otherwise att is compared with the
 * CPU's P and copied over to the GPU's (tatt likewise). flash = 2: the same, but each face
 * once with every tangent given (no NULL variants, no second calls): for T = 1024, whose
 * tangent faces take the emulator about 5 s a call. */
static void test_attention_run(int B, int T, int C, int NH, int causal, const int32_t *valid,
                               double tol, const char *mode, int flash) {
    char w[160], tag[96];
    snprintf(tag, sizeof tag, "%sattention B=%d T=%d C=%d NH=%d %s%s", mode, B, T, C, NH,
             causal ? "causal" : "bidir", valid ? " masked" : "");
    const size_t BTC = (size_t)B * T * C, ATT = (size_t)B * NH * T * T;
    IBuf vl = ibuf(valid, (size_t)B);
    Buf qkv = in_rand(3 * BTC, 0, 1), tqkv = in_rand(3 * BTC, 0, 1);
    Buf dout = in_rand(BTC, 0, 1), dtout = in_rand(BTC, 0, 1);
    if (!strcmp(backend_cuda_gemm_precision(), "bf16")) {
        Buf *ins[] = { &qkv, &tqkv, &dout, &dtout };
        for (size_t i = 0; i < sizeof ins / sizeof *ins; i++) round_to_bf16(ins[i]);
    }

    Buf out = out_nan(BTC), att = out_nan(ATT);
    cpu->attention_forward(out.h, att.h, qkv.h, vl.h, causal, B, T, C, NH);
    gpu->attention_forward(out.d, att.d, qkv.d, vl.d, causal, B, T, C, NH);
    snprintf(w, sizeof w, "%s forward out", tag); check_buf(w, &out, tol);
    if (flash) {   /* the derivative faces get the GPU's own att (lse, O) */
        check_flash_att(tag, &att, &out, &qkv, valid, causal, B, T, C, NH);
    } else {
        snprintf(w, sizeof w, "%s forward att", tag); check_buf(w, &att, tol);
        buf_to_dev(&att);   /* the derivative faces get the CPU's probabilities on both sides */
    }

    Buf dqkv = out_nan(3 * BTC);   /* written (backend.h): NaN-filled */
    cpu->attention_backward(dqkv.h, dout.h, qkv.h, att.h, vl.h, causal, B, T, C, NH);
    gpu->attention_backward(dqkv.d, dout.d, qkv.d, att.d, vl.d, causal, B, T, C, NH);
    snprintf(w, sizeof w, "%s backward dqkv", tag); check_buf(w, &dqkv, tol);
    if (flash == 1) {   /* deterministic: the same call again, into NaN again */
        Buf again = out_nan(dqkv.n);
        gpu->attention_backward(again.d, dout.d, qkv.d, att.d, vl.d, causal, B, T, C, NH);
        snprintf(w, sizeof w, "%s backward dqkv twice", tag);
        same_twice(w, dqkv.d, again.d, dqkv.n);
        buf_free(&again);
    }

    /* flash: from here on no [B,NH,T,T] scratch may appear (the fused tangent kernels) */
    if (flash) backend_cuda_release();
    Buf tout = out_nan(BTC), tatt = out_nan(ATT), tout2 = out_nan(BTC), tout3 = out_nan(BTC);
    Buf tatt3 = out_nan(ATT);
    cpu->attention_forward_tangent(tout.h, tatt.h, qkv.h, tqkv.h, att.h, vl.h, causal, B, T, C, NH);
    gpu->attention_forward_tangent(tout.d, tatt.d, qkv.d, tqkv.d, att.d, vl.d, causal, B, T, C, NH);
    snprintf(w, sizeof w, "%s forward_tangent tout", tag); check_buf(w, &tout, tol);
    if (flash) {   /* tatt is flash mode's (r, Ȯ): the backward tangent gets the GPU's own */
        check_flash_tatt(tag, &tatt, &tout, &qkv, &tqkv, valid, causal, B, T, C, NH, tol, 0);
    }
    if (flash == 1) {
        Buf again = out_nan(BTC), tatt_again = out_nan(ATT);
        gpu->attention_forward_tangent(again.d, tatt_again.d, qkv.d, tqkv.d, att.d, vl.d, causal,
                                       B, T, C, NH);
        snprintf(w, sizeof w, "%s forward_tangent twice: tout", tag);
        same_twice(w, tout.d, again.d, BTC);
        snprintf(w, sizeof w, "%s forward_tangent twice: tatt", tag);
        same_twice(w, tatt.d, tatt_again.d, ATT);
        buf_free(&again);
        buf_free(&tatt_again);
    }
    if (!flash) {
        snprintf(w, sizeof w, "%s forward_tangent tatt", tag); check_buf(w, &tatt, tol);
        buf_to_dev(&tatt);
    }
    const int variants = flash != 2;   /* the NULL variants and the second calls */
    if (variants) {
        cpu->attention_forward_tangent(tout2.h, NULL, qkv.h, tqkv.h, att.h, vl.h, causal,
                                       B, T, C, NH);
        gpu->attention_forward_tangent(tout2.d, NULL, qkv.d, tqkv.d, att.d, vl.d, causal,
                                       B, T, C, NH);
        snprintf(w, sizeof w, "%s forward_tangent (tatt NULL)", tag); check_buf(w, &tout2, tol);
        cpu->attention_forward_tangent(tout3.h, tatt3.h, qkv.h, NULL, att.h, vl.h, causal,
                                       B, T, C, NH);
        gpu->attention_forward_tangent(tout3.d, tatt3.d, qkv.d, NULL, att.d, vl.d, causal,
                                       B, T, C, NH);
        snprintf(w, sizeof w, "%s forward_tangent (tqkv NULL) tout", tag);
        check_buf(w, &tout3, tol);
        if (flash) {
            snprintf(w, sizeof w, "%s forward_tangent (tqkv NULL)", tag);
            check_flash_tatt(w, &tatt3, &tout3, &qkv, &tqkv, valid, causal, B, T, C, NH, tol, 1);
        } else {
            snprintf(w, sizeof w, "%s forward_tangent (tqkv NULL) tatt", tag);
            check_buf(w, &tatt3, tol);
        }
    }

    Buf d1 = out_nan(3 * BTC), d2 = out_nan(3 * BTC), d3 = out_nan(3 * BTC), d4 = out_nan(3 * BTC);
    Buf d5 = out_nan(3 * BTC);   /* written (backend.h): NaN-filled */
    cpu->attention_backward_tangent(d1.h, dout.h, dtout.h, qkv.h, tqkv.h, att.h, tatt.h, vl.h,
                                    causal, B, T, C, NH);
    gpu->attention_backward_tangent(d1.d, dout.d, dtout.d, qkv.d, tqkv.d, att.d, tatt.d, vl.d,
                                    causal, B, T, C, NH);
    snprintf(w, sizeof w, "%s backward_tangent dtqkv", tag); check_buf(w, &d1, tol);
    if (flash == 1) {   /* deterministic: the same call again, into NaN again */
        Buf again = out_nan(d1.n);
        gpu->attention_backward_tangent(again.d, dout.d, dtout.d, qkv.d, tqkv.d, att.d, tatt.d,
                                        vl.d, causal, B, T, C, NH);
        snprintf(w, sizeof w, "%s backward_tangent twice", tag);
        same_twice(w, d1.d, again.d, d1.n);
        buf_free(&again);
    }
    if (variants) {
        cpu->attention_backward_tangent(d2.h, dout.h, NULL, qkv.h, tqkv.h, att.h, tatt.h, vl.h,
                                        causal, B, T, C, NH);
        gpu->attention_backward_tangent(d2.d, dout.d, NULL, qkv.d, tqkv.d, att.d, tatt.d, vl.d,
                                        causal, B, T, C, NH);
        snprintf(w, sizeof w, "%s backward_tangent (dtout NULL)", tag); check_buf(w, &d2, tol);
        cpu->attention_backward_tangent(d3.h, dout.h, dtout.h, qkv.h, NULL, att.h, NULL, vl.h,
                                        causal, B, T, C, NH);
        gpu->attention_backward_tangent(d3.d, dout.d, dtout.d, qkv.d, NULL, att.d, NULL, vl.d,
                                        causal, B, T, C, NH);
        snprintf(w, sizeof w, "%s backward_tangent (tqkv, tatt NULL)", tag); check_buf(w, &d3, tol);
        cpu->attention_backward_tangent(d4.h, dout.h, NULL, qkv.h, NULL, att.h, NULL, vl.h, causal,
                                        B, T, C, NH);
        gpu->attention_backward_tangent(d4.d, dout.d, NULL, qkv.d, NULL, att.d, NULL, vl.d, causal,
                                        B, T, C, NH);
        snprintf(w, sizeof w, "%s backward_tangent (all tangents NULL: zeros)", tag);
        check_buf(w, &d4, tol);
    }
    if (flash) {
        snprintf(w, sizeof w, "%s tangent faces: no [B,NH,T,T] scratch", tag);
        check_no_att_scratch(w, ATT);
    }
    /* tatt NULL with tqkv given: Ṗ = 0 by the CPU's convention (flash mode: P recomputed
     * into T×T scratch, the stored path; no caller in lib/ does this) */
    if (variants) {
        cpu->attention_backward_tangent(d5.h, dout.h, dtout.h, qkv.h, tqkv.h, att.h, NULL, vl.h,
                                        causal, B, T, C, NH);
        gpu->attention_backward_tangent(d5.d, dout.d, dtout.d, qkv.d, tqkv.d, att.d, NULL, vl.d,
                                        causal, B, T, C, NH);
        snprintf(w, sizeof w, "%s backward_tangent (tatt NULL)", tag); check_buf(w, &d5, tol);
    }

    Buf bufs[] = { qkv, tqkv, dout, dtout, out, att, dqkv, tout, tatt, tout2, tout3, tatt3,
                   d1, d2, d3, d4, d5 };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(&bufs[i]);
    ibuf_free(&vl);
}

static void test_attention_tol(int B, int T, int C, int NH, int causal, const int32_t *valid,
                               double tol, const char *mode) {
    test_attention_run(B, T, C, NH, causal, valid, tol, mode, 0);
}

/* ---- GELU, residual ------------------------------------------------------------------------ */

static void test_gelu(size_t n) {
    Buf inp = in_rand(n, 0, 2), tinp = in_rand(n, 0, 1), dout = in_rand(n, 0, 1), dtout = in_rand(n, 0, 1);
    Buf out = out_nan(n), din = out_nan(n), to = out_nan(n), to2 = out_nan(n);
    Buf d1 = out_nan(n), d2 = out_nan(n), d3 = out_nan(n), d4 = out_nan(n);   /* written */
    cpu->gelu_forward(out.h, inp.h, n); gpu->gelu_forward(out.d, inp.d, n);
    check_buf("gelu_forward", &out, TOL);
    cpu->gelu_backward(din.h, inp.h, dout.h, n); gpu->gelu_backward(din.d, inp.d, dout.d, n);
    check_buf("gelu_backward", &din, TOL_GELU);
    cpu->gelu_forward_tangent(to.h, inp.h, tinp.h, n); gpu->gelu_forward_tangent(to.d, inp.d, tinp.d, n);
    check_buf("gelu_forward_tangent", &to, TOL_GELU);
    cpu->gelu_forward_tangent(to2.h, inp.h, NULL, n); gpu->gelu_forward_tangent(to2.d, inp.d, NULL, n);
    check_buf("gelu_forward_tangent (tinp NULL: zeros)", &to2, TOL);
    cpu->gelu_backward_tangent(d1.h, inp.h, tinp.h, dout.h, dtout.h, n);
    gpu->gelu_backward_tangent(d1.d, inp.d, tinp.d, dout.d, dtout.d, n);
    check_buf("gelu_backward_tangent", &d1, TOL_GELU);
    cpu->gelu_backward_tangent(d2.h, inp.h, NULL, dout.h, dtout.h, n);
    gpu->gelu_backward_tangent(d2.d, inp.d, NULL, dout.d, dtout.d, n);
    check_buf("gelu_backward_tangent (tinp NULL)", &d2, TOL_GELU);
    cpu->gelu_backward_tangent(d3.h, inp.h, tinp.h, dout.h, NULL, n);
    gpu->gelu_backward_tangent(d3.d, inp.d, tinp.d, dout.d, NULL, n);
    check_buf("gelu_backward_tangent (dtout NULL)", &d3, TOL_GELU);
    cpu->gelu_backward_tangent(d4.h, inp.h, NULL, dout.h, NULL, n);
    gpu->gelu_backward_tangent(d4.d, inp.d, NULL, dout.d, NULL, n);
    check_buf("gelu_backward_tangent (both NULL: zeros)", &d4, TOL);
    Buf bufs[] = { inp, tinp, dout, dtout, out, din, to, to2, d1, d2, d3, d4 };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(&bufs[i]);
}

static void test_residual(size_t n) {
    Buf a = in_rand(n, 0, 1), b = in_rand(n, 0, 1), dout = in_rand(n, 0, 1);
    Buf out = out_nan(n), da = acc_rand(n), db = acc_rand(n), da2 = acc_rand(n);
    Buf to = out_nan(n), to2 = out_nan(n), to3 = out_nan(n), dta = acc_rand(n), dtb = acc_rand(n);
    cpu->residual_forward(out.h, a.h, b.h, n); gpu->residual_forward(out.d, a.d, b.d, n);
    check_buf("residual_forward", &out, 0);
    cpu->residual_backward(da.h, db.h, dout.h, n); gpu->residual_backward(da.d, db.d, dout.d, n);
    check_buf("residual_backward da", &da, 0);
    check_buf("residual_backward db", &db, 0);
    cpu->residual_backward(da2.h, NULL, dout.h, n); gpu->residual_backward(da2.d, NULL, dout.d, n);
    check_buf("residual_backward (db NULL) da", &da2, 0);
    cpu->residual_forward_tangent(to.h, a.h, b.h, n); gpu->residual_forward_tangent(to.d, a.d, b.d, n);
    check_buf("residual_forward_tangent", &to, 0);
    cpu->residual_forward_tangent(to2.h, NULL, b.h, n); gpu->residual_forward_tangent(to2.d, NULL, b.d, n);
    check_buf("residual_forward_tangent (ta NULL)", &to2, 0);
    cpu->residual_forward_tangent(to3.h, NULL, NULL, n); gpu->residual_forward_tangent(to3.d, NULL, NULL, n);
    check_buf("residual_forward_tangent (both NULL: zeros)", &to3, 0);
    cpu->residual_backward_tangent(dta.h, dtb.h, NULL, n); gpu->residual_backward_tangent(dta.d, dtb.d, NULL, n);
    check_buf("residual_backward_tangent (dtout NULL: unchanged)", &dta, 0);
    cpu->residual_backward_tangent(dta.h, dtb.h, dout.h, n);
    gpu->residual_backward_tangent(dta.d, dtb.d, dout.d, n);
    check_buf("residual_backward_tangent dta", &dta, 0);
    check_buf("residual_backward_tangent dtb", &dtb, 0);
    Buf bufs[] = { a, b, dout, out, da, db, da2, to, to2, to3, dta, dtb };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(&bufs[i]);
}

/* ---- cross-entropy -------------------------------------------------------------------------- */

/* For an op that writes over its [B,T,V] input: the rows past n_valid become NaN on the
 * GPU's side, so that one the kernel leaves unwritten (not zeroed) shows, and 1 on the
 * CPU's (any value the op must overwrite). */
static void nan_past_valid(Buf *x, int B, int T, int V, const int32_t *n_valid) {
    const size_t ld = x->ld ? (size_t)x->ld : (size_t)V;
    for (int pass = 0; pass < 2; pass++) {
        for (int bt = 0; bt < B * T; bt++)
            if (bt % T >= (n_valid ? n_valid[bt / T] : T))
                for (int v = 0; v < V; v++) x->h[(size_t)bt * ld + v] = pass ? 1 : NAN;
        if (!pass) buf_to_dev(x);
    }
}

/* ldv ≥ V: the row stride of every [B,T,V] argument (the pads NaN: neither read nor
 * written) */
static void test_crossentropy_ld(int B, int T, int V, int ldv, const int32_t *n_valid) {
    char w[160], tag[112];
    snprintf(tag, sizeof tag, "crossentropy B=%d T=%d V=%d%s%s", B, T, V,
             ldv > V ? " (rows strided)" : "", n_valid ? " n_valid" : "");
    const size_t BTV = (size_t)B * T * ldv;
    IBuf nv = ibuf(n_valid, (size_t)B), tg = ibuf_rand((size_t)B * T, 0, V);
    Buf logits = in_rand(BTV, 0, 2), tl = in_rand(BTV, 0, 1);
    strided(&logits, V, ldv, 0);
    strided(&tl, V, ldv, 0);
    Buf dl = in_rand(B, 0, 1), dtl = in_rand(B, 0, 1);

    Buf loss = out_nan(B), probs = out_nan(BTV);
    strided(&probs, V, ldv, 0);
    cpu->crossentropy_forward(loss.h, probs.h, logits.h, tg.h, nv.h, B, T, V, ldv);
    gpu->crossentropy_forward(loss.d, probs.d, logits.d, tg.d, nv.d, B, T, V, ldv);
    snprintf(w, sizeof w, "%s forward losses", tag); check_buf(w, &loss, TOL);
    snprintf(w, sizeof w, "%s forward probs", tag); check_buf(w, &probs, TOL);
    Buf loss2 = out_nan(B), inplace = in_copy(&logits);
    cpu->crossentropy_forward(loss2.h, inplace.h, inplace.h, tg.h, nv.h, B, T, V, ldv);
    gpu->crossentropy_forward(loss2.d, inplace.d, inplace.d, tg.d, nv.d, B, T, V, ldv);
    snprintf(w, sizeof w, "%s forward in place: losses", tag); check_buf(w, &loss2, TOL);
    snprintf(w, sizeof w, "%s forward in place: probs", tag); check_buf(w, &inplace, TOL);
    buf_to_dev(&probs);

    Buf loss3 = out_nan(B);
    cpu->crossentropy_forward(loss3.h, NULL, logits.h, tg.h, nv.h, B, T, V, ldv);
    gpu->crossentropy_forward(loss3.d, NULL, logits.d, tg.d, nv.d, B, T, V, ldv);
    snprintf(w, sizeof w, "%s forward, losses only", tag); check_buf(w, &loss3, TOL);

    Buf dlog = acc_rand(BTV);
    strided(&dlog, V, ldv, 0);
    cpu->crossentropy_backward(dlog.h, probs.h, tg.h, nv.h, dl.h, B, T, V, ldv);
    gpu->crossentropy_backward(dlog.d, probs.d, tg.d, nv.d, dl.d, B, T, V, ldv);
    snprintf(w, sizeof w, "%s backward", tag); check_buf(w, &dlog, TOL);

    /* in place, over the probabilities, over the logits, and over the logits with the
     * losses on the way: the GPU's forward's bits */
    Buf ip[3] = { in_copy(&probs), in_copy(&logits), in_copy(&logits) }, loss4 = out_nan(B);
    for (int k = 0; k < 3; k++) {
        nan_past_valid(&ip[k], B, T, V, n_valid);
        cpu->crossentropy_backward_in_place(ip[k].h, k == 2 ? loss4.h : NULL, k > 0, tg.h, nv.h,
                                            dl.h, B, T, V, ldv);
        gpu->crossentropy_backward_in_place(ip[k].d, k == 2 ? loss4.d : NULL, k > 0, tg.d, nv.d,
                                            dl.d, B, T, V, ldv);
        snprintf(w, sizeof w, "%s backward in place, from %s", tag,
                 k == 2 ? "logits, with losses" : k ? "logits" : "probs");
        check_buf(w, &ip[k], TOL);
    }
    snprintf(w, sizeof w, "%s backward in place's losses", tag);
    check_buf(w, &loss4, TOL);
    {
        real *g = xmalloc((size_t)B * sizeof(real));
        gpu->to_host(g, loss3.d, (size_t)B * sizeof(real));
        snprintf(w, sizeof w, "%s backward in place's losses = the forward's", tag);
        check_bits(w, g, loss4.d, (size_t)B);
        free(g);
    }

    Buf tloss = out_nan(B), tloss2 = out_nan(B);
    cpu->crossentropy_forward_tangent(tloss.h, probs.h, tl.h, tg.h, nv.h, B, T, V, ldv);
    gpu->crossentropy_forward_tangent(tloss.d, probs.d, tl.d, tg.d, nv.d, B, T, V, ldv);
    snprintf(w, sizeof w, "%s forward_tangent", tag); check_buf(w, &tloss, TOL);
    cpu->crossentropy_forward_tangent(tloss2.h, probs.h, NULL, tg.h, nv.h, B, T, V, ldv);
    gpu->crossentropy_forward_tangent(tloss2.d, probs.d, NULL, tg.d, nv.d, B, T, V, ldv);
    snprintf(w, sizeof w, "%s forward_tangent (tlogits NULL: zeros)", tag); check_buf(w, &tloss2, TOL);

    Buf d1 = acc_rand(BTV), d2 = acc_rand(BTV), d3 = acc_rand(BTV);
    strided(&d1, V, ldv, 0);
    strided(&d2, V, ldv, 0);
    strided(&d3, V, ldv, 0);
    cpu->crossentropy_backward_tangent(d1.h, probs.h, tl.h, tg.h, nv.h, dl.h, dtl.h, B, T, V, ldv);
    gpu->crossentropy_backward_tangent(d1.d, probs.d, tl.d, tg.d, nv.d, dl.d, dtl.d, B, T, V, ldv);
    snprintf(w, sizeof w, "%s backward_tangent", tag); check_buf(w, &d1, TOL);
    cpu->crossentropy_backward_tangent(d2.h, probs.h, tl.h, tg.h, nv.h, dl.h, NULL, B, T, V, ldv);
    gpu->crossentropy_backward_tangent(d2.d, probs.d, tl.d, tg.d, nv.d, dl.d, NULL, B, T, V, ldv);
    snprintf(w, sizeof w, "%s backward_tangent (dtlosses NULL)", tag); check_buf(w, &d2, TOL);
    cpu->crossentropy_backward_tangent(d3.h, probs.h, NULL, tg.h, nv.h, dl.h, dtl.h, B, T, V, ldv);
    gpu->crossentropy_backward_tangent(d3.d, probs.d, NULL, tg.d, nv.d, dl.d, dtl.d, B, T, V, ldv);
    snprintf(w, sizeof w, "%s backward_tangent (tlogits NULL)", tag); check_buf(w, &d3, TOL);

    /* in place over ṫl, with and without dl̇ */
    Buf it[2] = { in_copy(&tl), in_copy(&tl) };
    for (int k = 0; k < 2; k++) {
        nan_past_valid(&it[k], B, T, V, n_valid);
        cpu->crossentropy_backward_tangent_in_place(it[k].h, probs.h, tg.h, nv.h, dl.h,
                                                    k ? dtl.h : NULL, B, T, V, ldv);
        gpu->crossentropy_backward_tangent_in_place(it[k].d, probs.d, tg.d, nv.d, dl.d,
                                                    k ? dtl.d : NULL, B, T, V, ldv);
        snprintf(w, sizeof w, "%s backward_tangent in place%s", tag, k ? "" : " (dtlosses NULL)");
        check_buf(w, &it[k], TOL);
    }

    Buf bufs[] = { logits, tl, dl, dtl, loss, probs, loss2, inplace, loss3, dlog, ip[0], ip[1],
                   ip[2], loss4, tloss, tloss2, d1, d2, d3, it[0], it[1] };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(&bufs[i]);
    ibuf_free(&nv);
    ibuf_free(&tg);
}

static void test_crossentropy(int B, int T, int V, const int32_t *n_valid) {
    test_crossentropy_ld(B, T, V, V, n_valid);
}

/* Rows the random test does not make: one of −∞ but its target (probs one-hot, loss 0;
 * the CPU op gets −1e30 there, the same result),
 * one as well but for a NaN (its probs and its example's loss NaN on both sides, also
 * where a thread's elements are a NaN and −∞s only); V odd, so rows
 * start at every 16-byte alignment; then probs / dlogits one float off the logits' /
 * probs' alignment (the kernels' element-by-element path). */
static void test_crossentropy_rows(int V) {
    const int B = 2, T = 3;
    const size_t BTV = (size_t)B * T * V;
    char w[160];
    IBuf tg = ibuf_rand((size_t)B * T, 0, V);
    Buf logits = in_rand(BTV, 0, 2), dl = in_rand(B, 0, 1);
    for (int v = 0; v < V; v++) {   /* rows (0, 1) and (1, 1); the latter with a NaN too */
        if (v != tg.h[1]) logits.h[(size_t)1 * V + v] = -INFINITY;
        if (v != tg.h[4]) logits.h[(size_t)4 * V + v] = -INFINITY;
    }
    logits.h[(size_t)4 * V + (tg.h[4] + V / 2) % V] = NAN;
    buf_to_dev(&logits);
    Buf loss = out_nan(B), probs = in_copy(&logits);                 /* in place */
    for (size_t i = 0; i < BTV; i++)   /* the CPU's exp is not meant for −∞: it gets −1e30 */
        if (probs.h[i] == -INFINITY) probs.h[i] = -1e30f;
    cpu->crossentropy_forward(loss.h, probs.h, probs.h, tg.h, NULL, B, T, V, V);
    gpu->crossentropy_forward(loss.d, probs.d, probs.d, tg.d, NULL, B, T, V, V);
    real *g = xmalloc(BTV * sizeof(real));
    gpu->to_host(g, probs.d, BTV * sizeof(real));
    size_t nan_ok = 0, nan_bad = 0;
    double dmax = 0;
    for (size_t i = 0; i < BTV; i++) {
        if (i / V == 4) { nan_ok += isnan(probs.h[i]) && isnan(g[i]); continue; }
        if (isnan(probs.h[i]) || isnan(g[i])) nan_bad++;
        else dmax = fmax(dmax, fabs(g[i] - probs.h[i]));
    }
    snprintf(w, sizeof w, "crossentropy V=%d in place, rows -inf / NaN: probs", V);
    TEST_CHECK(nan_ok == (size_t)V && nan_bad == 0 && dmax <= TOL,
               "%s: NaN row %zu of %d NaN, %zu NaN elsewhere, max|gpu - cpu| %.2e", w, nan_ok, V,
               nan_bad, dmax);
    printf("  %-66s %8.1e\n", w, dmax);
    TEST_CHECK(probs.h[(size_t)1 * V + tg.h[1]] == 1, "cpu one-hot row");
    real gl[2];
    gpu->to_host(gl, loss.d, sizeof gl);
    snprintf(w, sizeof w, "crossentropy V=%d in place, rows -inf / NaN: losses", V);
    TEST_CHECK(isnan(loss.h[1]) && isnan(gl[1]) && fabs(gl[0] - loss.h[0]) <= TOL * fabs(loss.h[0]),
               "%s: cpu %g %g gpu %g %g", w, loss.h[0], loss.h[1], gl[0], gl[1]);
    printf("  %-66s %8.1e\n", w, fabs(gl[0] - loss.h[0]) / fabs(loss.h[0]));
    free(g);

    /* no NaN from here on: the random logits, probs one float off (and dlogits one off) */
    Buf clean = in_rand(BTV, 0, 2), loss2 = out_nan(B), shifted = acc_rand(BTV + 1);
    cpu->crossentropy_forward(loss2.h, shifted.h + 1, clean.h, tg.h, NULL, B, T, V, V);
    gpu->crossentropy_forward(loss2.d, shifted.d + 1, clean.d, tg.d, NULL, B, T, V, V);
    snprintf(w, sizeof w, "crossentropy V=%d probs misaligned: losses", V); check_buf(w, &loss2, TOL);
    snprintf(w, sizeof w, "crossentropy V=%d probs misaligned: probs", V); check_buf(w, &shifted, TOL);
    Buf p = out_nan(BTV);
    memcpy(p.h, shifted.h + 1, BTV * sizeof(real));
    buf_to_dev(&p);
    Buf dlog = acc_rand(BTV + 1), d1 = acc_rand(BTV + 1), tl = in_rand(BTV, 0, 1);
    cpu->crossentropy_backward(dlog.h + 1, p.h, tg.h, NULL, dl.h, B, T, V, V);
    gpu->crossentropy_backward(dlog.d + 1, p.d, tg.d, NULL, dl.d, B, T, V, V);
    snprintf(w, sizeof w, "crossentropy V=%d dlogits misaligned: backward", V);
    check_buf(w, &dlog, TOL);
    cpu->crossentropy_backward_tangent(d1.h + 1, p.h, tl.h, tg.h, NULL, dl.h, dl.h, B, T, V, V);
    gpu->crossentropy_backward_tangent(d1.d + 1, p.d, tl.d, tg.d, NULL, dl.d, dl.d, B, T, V, V);
    snprintf(w, sizeof w, "crossentropy V=%d dtlogits misaligned: backward_tangent", V);
    check_buf(w, &d1, TOL);
    Buf it = buf_alloc(BTV + 1);   /* ṫl one float off the probabilities, in place */
    it.h[0] = 0.5f;                /* not touched by either side */
    memcpy(it.h + 1, tl.h, BTV * sizeof(real));
    buf_to_dev(&it);
    cpu->crossentropy_backward_tangent_in_place(it.h + 1, p.h, tg.h, NULL, dl.h, dl.h, B, T, V, V);
    gpu->crossentropy_backward_tangent_in_place(it.d + 1, p.d, tg.d, NULL, dl.d, dl.d, B, T, V, V);
    snprintf(w, sizeof w, "crossentropy V=%d tlogits misaligned: backward_tangent in place", V);
    check_buf(w, &it, TOL);

    Buf bufs[] = { logits, dl, loss, probs, clean, loss2, shifted, p, dlog, d1, tl, it };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(&bufs[i]);
    ibuf_free(&tg);
}

/* ---- rater-only ops ------------------------------------------------------------------------ */

static void test_meanpool(int B, int T, int C, const int32_t *valid) {
    char w[128];
    IBuf vl = ibuf(valid, (size_t)B);
    Buf inp = in_rand((size_t)B * T * C, 0, 1), dout = in_rand((size_t)B * C, 0, 1);
    Buf out = out_nan((size_t)B * C), din = acc_rand((size_t)B * T * C);
    cpu->meanpool_forward(out.h, inp.h, vl.h, B, T, C);
    gpu->meanpool_forward(out.d, inp.d, vl.d, B, T, C);
    snprintf(w, sizeof w, "meanpool_forward B=%d T=%d C=%d%s", B, T, C, valid ? " masked" : "");
    check_buf(w, &out, TOL);
    cpu->meanpool_backward(din.h, dout.h, vl.h, B, T, C);
    gpu->meanpool_backward(din.d, dout.d, vl.d, B, T, C);
    check_buf("meanpool_backward", &din, TOL);
    Buf bufs[] = { inp, dout, out, din };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(&bufs[i]);
    ibuf_free(&vl);
}

static void test_weights(int B, WeightNormConfig cfg, const char *name) {
    char w[128];
    Buf z = in_rand(B, 0, 2), dw = in_rand(B, 0, 1), wt = out_nan(B), dz = acc_rand(B);
    cpu->weights_forward(wt.h, z.h, &cfg, B);
    gpu->weights_forward(wt.d, z.d, &cfg, B);
    snprintf(w, sizeof w, "weights_forward %s", name); check_buf(w, &wt, TOL);
    cpu->weights_backward(dz.h, dw.h, z.h, &cfg, B);
    gpu->weights_backward(dz.d, dw.d, z.d, &cfg, B);
    snprintf(w, sizeof w, "weights_backward %s", name); check_buf(w, &dz, TOL);
    Buf bufs[] = { z, dw, wt, dz };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(&bufs[i]);
}

/* ---- determinism: the same call twice gives the same bits ----------------------------------- */

static void same_twice(const char *what, const real *d1, const real *d2, size_t n) {
    real *a = xmalloc(n * sizeof(real)), *b = xmalloc(n * sizeof(real));
    gpu->to_host(a, d1, n * sizeof(real));
    gpu->to_host(b, d2, n * sizeof(real));
    int same = memcmp(a, b, n * sizeof(real)) == 0;
    TEST_CHECK(same, "%s: two runs of the same call differ", what);
    printf("  %-66s %s\n", what, same ? "same bits" : "DIFFERENT");
    free(a);
    free(b);
}

static void test_determinism(void) {
    const int B = 4, T = 33, C = 64, NH = 4, V = 97, N = B * T;
    IBuf tok = ibuf_rand((size_t)N, 0, 7);   /* many repeats */
    Buf dout = in_rand((size_t)N * C, 0, 1), x = in_rand((size_t)N * C, 0, 1);
    Buf a = acc_rand((size_t)V * C), b = in_copy(&a);
    gpu->embedding_backward(a.d, NULL, dout.d, tok.d, B, T, C);
    gpu->embedding_backward(b.d, NULL, dout.d, tok.d, B, T, C);
    same_twice("embedding_backward dwte", a.d, b.d, a.n);

    Buf w = in_rand(C, 1, 0.2), mean = out_nan(N), rstd = out_nan(N), y = out_nan((size_t)N * C);
    gpu->layernorm_forward(y.d, mean.d, rstd.d, x.d, w.d, w.d, N, C);
    Buf dw1 = acc_rand(C), dw2 = in_copy(&dw1), db1 = acc_rand(C), db2 = in_copy(&db1);
    gpu->layernorm_backward(NULL, dw1.d, db1.d, dout.d, x.d, w.d, mean.d, rstd.d, N, C);
    gpu->layernorm_backward(NULL, dw2.d, db2.d, dout.d, x.d, w.d, mean.d, rstd.d, N, C);
    same_twice("layernorm_backward dw", dw1.d, dw2.d, (size_t)C);
    same_twice("layernorm_backward db", db1.d, db2.d, (size_t)C);

    Buf qkv = in_rand((size_t)N * 3 * C, 0, 1), att = out_nan((size_t)B * NH * T * T);
    Buf o = out_nan((size_t)N * C), dq1 = out_nan((size_t)N * 3 * C), dq2 = out_nan((size_t)N * 3 * C);
    gpu->attention_forward(o.d, att.d, qkv.d, NULL, 1, B, T, C, NH);
    gpu->attention_backward(dq1.d, dout.d, qkv.d, att.d, NULL, 1, B, T, C, NH);
    gpu->attention_backward(dq2.d, dout.d, qkv.d, att.d, NULL, 1, B, T, C, NH);
    same_twice("attention_backward dqkv", dq1.d, dq2.d, dq1.n);

    Buf logits = in_rand((size_t)N * V, 0, 2), p = out_nan((size_t)N * V);
    Buf l1 = out_nan(B), l2 = out_nan(B);
    IBuf tg = ibuf_rand((size_t)N, 0, V);
    gpu->crossentropy_forward(l1.d, p.d, logits.d, tg.d, NULL, B, T, V, V);
    gpu->crossentropy_forward(l2.d, p.d, logits.d, tg.d, NULL, B, T, V, V);
    same_twice("crossentropy_forward losses", l1.d, l2.d, (size_t)B);

    Buf mdb1 = acc_rand(C), mdb2 = in_copy(&mdb1);
    gpu->matmul_backward(NULL, NULL, mdb1.d, dout.d, x.d, NULL, N, C, C, MATMUL_W_C_OC, C);
    gpu->matmul_backward(NULL, NULL, mdb2.d, dout.d, x.d, NULL, N, C, C, MATMUL_W_C_OC, C);
    same_twice("matmul_backward dbias", mdb1.d, mdb2.d, (size_t)C);

    Buf bufs[] = { dout, x, a, b, w, mean, rstd, y, dw1, dw2, db1, db2, qkv, att, o, dq1, dq2,
                   logits, p, l1, l2, mdb1, mdb2 };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(&bufs[i]);
    ibuf_free(&tok);
    ibuf_free(&tg);
}

/* ---- reduced precision: tf32, bf16 (bf16 inputs, fp32 accumulation) ------------------------ */

/* In bf16 mode the product carries the bias over two contraction terms, its bf16 rounding
 * and that rounding's remainder (cu_gemm_bias): with W = 0 the output is the bias to about
 * 16 bits, where one bf16 term alone would be off by up to 2^-9 of it. */
static void test_bias_precision(const char *tag) {
    char w[96];
    backend_cuda_release();   /* fresh scratch (NaN on the emulator): nothing stale to lean on */
    const int N = 40, C = 32, OC = 72;
    Buf inp = in_rand((size_t)N * C, 0, 1), b = in_rand(OC, 0, 1);
    Buf wt = buf_alloc((size_t)C * OC);
    memset(wt.h, 0, wt.n * sizeof(real));
    buf_to_dev(&wt);
    Buf out = out_nan((size_t)N * OC);
    cpu->matmul_forward(out.h, inp.h, wt.h, b.h, N, C, OC, MATMUL_W_C_OC, OC);
    gpu->matmul_forward(out.d, inp.d, wt.d, b.d, N, C, OC, MATMUL_W_C_OC, OC);
    snprintf(w, sizeof w, "%smatmul_forward W = 0: the bias to 16 bits", tag);
    check_buf(w, &out, 2e-5);
    /* the forward tangent's one product over [tinp | inp]·[W ; tW] carries tb the same way */
    Buf tinp = in_rand((size_t)N * C, 0, 1), tout = out_nan((size_t)N * OC);
    cpu->matmul_forward_tangent(tout.h, inp.h, tinp.h, wt.h, wt.h, b.h, N, C, OC, MATMUL_W_C_OC, OC);
    gpu->matmul_forward_tangent(tout.d, inp.d, tinp.d, wt.d, wt.d, b.d, N, C, OC, MATMUL_W_C_OC, OC);
    snprintf(w, sizeof w, "%smatmul_forward_tangent W = tW = 0: tb to 16 bits", tag);
    check_buf(w, &tout, 2e-5);
    Buf bufs[] = { inp, b, wt, out, tinp, tout };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(&bufs[i]);
}

/* The padded bf16 copies four columns a thread (gemm.cu's to_bf16_by4_k: K padded,
 * the side-by-side halves of the tangents' one products, strided rows of d with ld % 4 == 0
 * and OC not, so that one group of four straddles OC) give the bits of the copies a value
 * a thread (backend_cuda_set_copy_vec4(0)), in every output of matmul's four faces. */
static void test_copy_vec4_bits(int N, int C, int OC, int ldo, int layout) {
    char w[160];
    const size_t NO = (size_t)N * ldo, NC = (size_t)N * C, CO = (size_t)C * OC;
    Buf inp = in_rand(NC, 0, 1), tinp = in_rand(NC, 0, 1), wt = in_rand(CO, 0, 1);
    Buf tw = in_rand(CO, 0, 1), bias = in_rand(OC, 0, 1), tb = in_rand(OC, 0, 1);
    Buf d = in_rand(NO, 0, 1), dt = in_rand(NO, 0, 1);
    strided(&d, OC, ldo, 0);
    strided(&dt, OC, ldo, 0);
    enum { FWD, TFWD, DINP, DW, DB, DTINP, DTW, DTB, N_OUT };
    const size_t len[N_OUT] = { NO, NO, NC, CO, (size_t)OC, NC, CO, (size_t)OC };
    const char *name[N_OUT] = { "out", "tout", "dinp", "dW", "db", "dtinp", "dtW", "dtb" };
    real *got[2][N_OUT];
    for (int vec = 1; vec >= 0; vec--) {
        backend_cuda_set_copy_vec4(vec);
        real *o[N_OUT];
        for (int k = 0; k < N_OUT; k++) o[k] = gpu->alloc(len[k] * sizeof(real));
        gpu->matmul_forward(o[FWD], inp.d, wt.d, bias.d, N, C, OC, layout, ldo);
        gpu->matmul_forward_tangent(o[TFWD], inp.d, tinp.d, wt.d, tw.d, tb.d, N, C, OC, layout, ldo);
        gpu->matmul_backward(o[DINP], o[DW], o[DB], d.d, inp.d, wt.d, N, C, OC, layout, ldo);
        gpu->matmul_backward_tangent(o[DTINP], o[DTW], o[DTB], d.d, dt.d, inp.d, tinp.d, wt.d, tw.d,
                                     N, C, OC, layout, ldo);
        for (int k = 0; k < N_OUT; k++) {
            got[vec][k] = xmalloc(len[k] * sizeof(real));
            gpu->to_host(got[vec][k], o[k], len[k] * sizeof(real));
            gpu->free(o[k]);
        }
    }
    backend_cuda_set_copy_vec4(-1);
    size_t differ = 0, total = 0;
    for (int k = 0; k < N_OUT; k++) {
        size_t dk = 0;
        for (size_t i = 0; i < len[k]; i++)
            if ((k != FWD && k != TFWD) || (int)(i % (size_t)ldo) < OC)
                dk += memcmp(&got[0][k][i], &got[1][k][i], sizeof(real)) != 0;
        TEST_CHECK(dk == 0, "matmul %dx%dx%d (rows of %d, layout %d): %s: %zu of %zu elements "
                   "differ between the copies four columns a thread and one", N, C, OC, ldo,
                   layout, name[k], dk, len[k]);
        differ += dk;
        total += len[k];
        free(got[0][k]);
        free(got[1][k]);
    }
    snprintf(w, sizeof w, "[bf16] copies by fours = by ones: matmul %dx%dx%d rows of %d, layout %d",
             N, C, OC, ldo, layout);
    printf("  %-66s %s\n", w, differ ? "DIFFERENT" : "same bits");
    Buf bufs[] = { inp, tinp, wt, tw, bias, tb, d, dt };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(&bufs[i]);
}

static void test_gemm_ops(const char *mode, double tol) {
    char tag[32];
    snprintf(tag, sizeof tag, "[%s] ", mode);
    CHECK(backend_cuda_set_gemm_precision(mode) == 0, "%s GEMM mode", mode);
    test_matmul(37, 48, 72, MATMUL_W_C_OC, tol, tag);
    test_matmul(37, 48, 101, MATMUL_W_OC_C, tol, tag);
    test_matmul(64, 32, 1, MATMUL_W_C_OC, tol, tag);
    /* N, C, OC multiples of 8: in bf16 the backward rounds d to bf16 once for dx and dW */
    test_matmul(64, 48, 72, MATMUL_W_C_OC, tol, tag);
    test_matmul(64, 48, 72, MATMUL_W_OC_C, tol, tag);
    /* an odd OC with rows a multiple of 8: in bf16 the shared copy of d is padded (the
     * head's logit gradient in head chunks) */
    test_matmul(64, 48, 101, MATMUL_W_C_OC, tol, tag);
    test_matmul(64, 48, 101, MATMUL_W_OC_C, tol, tag);
    const int32_t v3[3] = { 17, 5, 0 }, v2[2] = { 70, 33 };
    for (int causal = 0; causal <= 1; causal++) {
        test_attention_tol(3, 17, 32, 4, causal, v3, tol, tag);
        test_attention_tol(2, 70, 48, 3, causal, v2, tol, tag);
    }
    test_attention_tol(3, 17, 32, 4, 0, NULL, tol, tag);
    if (!strcmp(mode, "bf16")) {
        /* the bf16 row kernels write the products' T×T operands in bf16 themselves
         * (attention.cu, att_bf16_rows) when T is a multiple of 8 (T = 17 and 70 above
         * take the copies' path): T = 24, 120 and 1000 here (1, 4 and 32 values a lane);
         * T = 1104, past the register rows: the multi-pass forward writes bf16 P, the
         * backward takes the copies' path */
        const int32_t v24[3] = { 24, 5, 0 }, v120[2] = { 120, 33 };
        const int32_t v1000[2] = { 1000, 611 }, v1104[2] = { 1104, 1037 };
        for (int causal = 0; causal <= 1; causal++) {
            test_attention_tol(3, 24, 32, 4, causal, v24, tol, tag);
            test_attention_tol(2, 120, 48, 3, causal, v120, tol, tag);
        }
        test_attention_tol(2, 1000, 8, 2, 1, v1000, tol, tag);
        test_attention_tol(2, 1000, 8, 2, 0, v1000, tol, tag);
        test_attention_tol(2, 1104, 8, 2, 1, v1104, tol, tag);
    }
    if (!strcmp(mode, "bf16")) {
        /* the tangents' paired products apart (backend_cuda_set_ksum(0), DR_CUDA_NO_KSUM=1:
         * the benchmarks' A/B switch), on the same bf16 rows */
        char ktag[48];
        snprintf(ktag, sizeof ktag, "[%s, no ksum] ", mode);
        const int32_t v24[3] = { 24, 5, 0 }, v120[2] = { 120, 33 };
        backend_cuda_set_ksum(0);
        test_matmul(64, 48, 72, MATMUL_W_C_OC, tol, ktag);
        test_matmul(64, 48, 72, MATMUL_W_OC_C, tol, ktag);
        test_attention_tol(3, 24, 32, 4, 1, v24, tol, ktag);
        test_attention_tol(2, 120, 48, 3, 0, v120, tol, ktag);
        backend_cuda_set_ksum(-1);
        /* the score products on pointer arrays too (backend_cuda_set_bh_pointers(1),
         * DR_CUDA_BH_POINTERS=1), not the strided batched call */
        snprintf(ktag, sizeof ktag, "[%s, pointer arrays] ", mode);
        backend_cuda_set_bh_pointers(1);
        test_attention_tol(3, 24, 32, 4, 1, v24, tol, ktag);
        test_attention_tol(2, 120, 48, 3, 0, v120, tol, ktag);
        backend_cuda_set_bh_pointers(-1);
        /* the bias filled into the output before the product, not carried by it
         * (backend_cuda_set_bias_k(0), DR_CUDA_NO_BIAS_K=1) */
        snprintf(ktag, sizeof ktag, "[%s, bias filled] ", mode);
        backend_cuda_set_bias_k(0);
        test_matmul(37, 48, 72, MATMUL_W_C_OC, tol, ktag);
        test_matmul(64, 48, 72, MATMUL_W_C_OC, tol, ktag);
        backend_cuda_set_bias_k(-1);
        /* the padded copies four columns a thread against one (backend_cuda_set_copy_vec4) */
        for (int layout = 0; layout < 2; layout++) {
            const int lay = layout ? MATMUL_W_OC_C : MATMUL_W_C_OC;
            test_copy_vec4_bits(64, 48, 72, 72, lay);
            test_copy_vec4_bits(37, 45, 101, 104, lay);
            test_copy_vec4_bits(40, 64, 1100, 1152, lay);
        }
        /* carried by the product: K not a multiple of 4 (the copy without float4 loads) */
        test_matmul(37, 45, 72, MATMUL_W_C_OC, tol, tag);
        test_bias_precision(tag);
    }
    /* causal products in blocks of query rows (backend_cuda_set_att_blocks) */
    char btag[48];
    snprintf(btag, sizeof btag, "[%s, att blocks] ", mode);
    backend_cuda_set_att_blocks(1);
    test_attention_tol(3, 17, 32, 4, 1, v3, tol, btag);
    test_attention_tol(2, 70, 48, 3, 1, v2, tol, btag);
    backend_cuda_set_att_blocks(-1);
}

/* Which path gemm.cu takes for a wide output whose rows have room (the LM's logits, bf16
 * mode; the caller sets it): path 0 writes the forward's pads (0 without a bias: B's copy
 * is zero past N; through the scratch and its copy they would keep their NaN), and the
 * forward tangent's two products run as one over the concatenated K (not the bits of the
 * two apart, backend_cuda_set_ksum(0); unless !tangent_one_product: two products, each
 * over the padded N), also over the padded N (its pads 0). The values themselves:
 * test_matmul_ld. */
static void test_padded_in_place_path(int N, int C, int OC, int ldo, int tangent_one_product) {
    const size_t NO = (size_t)N * ldo;
    Buf inp = in_rand((size_t)N * C, 0, 1), wt = in_rand((size_t)C * OC, 0, 1);
    Buf tinp = in_rand((size_t)N * C, 0, 1), tw = in_rand((size_t)C * OC, 0, 1);
    Buf out = out_nan(NO), t1 = out_nan(NO), t2 = out_nan(NO);
    gpu->matmul_forward(out.d, inp.d, wt.d, NULL, N, C, OC, MATMUL_W_OC_C, ldo);
    gpu->to_host(out.h, out.d, NO * sizeof(real));
    size_t pads_not_zero = 0, differ = 0;
    for (size_t i = 0; i < NO; i++) pads_not_zero += (int)(i % ldo) >= OC && out.h[i] != 0;
    TEST_CHECK(pads_not_zero == 0, "matmul_forward %dx%dx%d, rows of %d: %zu pads not written "
               "with 0 (not the product over the padded N straight into C)", N, C, OC, ldo,
               pads_not_zero);
    gpu->matmul_forward_tangent(t1.d, inp.d, tinp.d, wt.d, tw.d, NULL, N, C, OC, MATMUL_W_OC_C,
                                ldo);
    backend_cuda_set_ksum(0);
    gpu->matmul_forward_tangent(t2.d, inp.d, tinp.d, wt.d, tw.d, NULL, N, C, OC, MATMUL_W_OC_C,
                                ldo);
    backend_cuda_set_ksum(-1);
    gpu->to_host(t1.h, t1.d, NO * sizeof(real));
    gpu->to_host(t2.h, t2.d, NO * sizeof(real));
    size_t tangent_pads_not_zero = 0;
    for (size_t i = 0; i < NO; i++) {
        differ += (int)(i % ldo) < OC && memcmp(&t1.h[i], &t2.h[i], sizeof(real)) != 0;
        tangent_pads_not_zero += (int)(i % ldo) >= OC && t1.h[i] != 0;
    }
    TEST_CHECK(tangent_pads_not_zero == 0, "matmul_forward_tangent %dx%dx%d, rows of %d: %zu pads "
               "not written with 0 (its one product not over the padded N)", N, C, OC, ldo,
               tangent_pads_not_zero);
    TEST_CHECK(differ > 0 || !tangent_one_product, "matmul_forward_tangent %dx%dx%d, rows of %d: the same bits as its two "
               "products apart (not one product over the concatenated K)", N, C, OC, ldo);
    printf("  %-66s %zu pads 0, %zu of %zu differ from ksum off\n",
           "[bf16 padded in place] the path taken", (size_t)N * (ldo - OC), differ, (size_t)N * OC);
    Buf bufs[] = { inp, wt, tinp, tw, out, t1, t2 };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) buf_free(&bufs[i]);
}

static void test_reduced_precision(void) {
    /* first, so that racecheck on this section (--only bf16) reaches padded_out_copy_k,
     * the shared-memory kernel, within its time limit (it did not in the fifth session) */
    CHECK(backend_cuda_set_gemm_precision("bf16") == 0, "bf16 GEMM mode");
    /* wide outputs N ≥ 1024, N not a multiple of 64: the padded-output path (gemm.cu;
     * B's copy padded to Np = 1152, cuBLAS writes a dense [rows, 1152] scratch, its first
     * 1100 columns go into C). In test_matmul(·, 7, 1100): the forward (tb = 1 for
     * W[OC,C], B's rows padded; tb = 0 for W[C,OC], its columns), with bias (beta = 1, C
     * holds the bias) and without (beta = 0: C starts as NaN and must not be read), the
     * forward tangent (beta = 1, two accumulations), and dW of W[C,OC] (beta = 1, ta = 1:
     * A = inp stored [N,C] with a row length 7, its copy's padded to 64). K = C = 7 is odd
     * too (padded to 64). dW of W[OC,C] (M = 1100) copies d stored [N, 1100] with rows
     * padded to 1152. */
    test_matmul(5, 7, 1100, MATMUL_W_C_OC, TOL_BF16, "[bf16 padded out] ");
    test_matmul(5, 7, 1100, MATMUL_W_OC_C, TOL_BF16, "[bf16 padded out] ");
    /* K = 12, and in dW (ta = 1, tb = 0 into the padded output) K = 300: both % 8 = 4 */
    test_matmul(300, 12, 1100, MATMUL_W_C_OC, TOL_BF16, "[bf16 padded out] ");
    /* the same outputs in rows 1152 long (the LM's logits, backend.h), which the forward
     * faces may fill: path 0 of gemm.cu, the product over 1152 columns straight into C,
     * and the forward tangent's two products as one over the concatenated K with B's copy
     * padded to 1152 (cu_gemm_ksum). dout's and dtout's pads are NaN: the backward faces
     * must not read them. */
    test_matmul_ld(5, 7, 1100, 1152, MATMUL_W_C_OC, TOL_BF16, "[bf16 padded in place] ");
    test_matmul_ld(5, 7, 1100, 1152, MATMUL_W_OC_C, TOL_BF16, "[bf16 padded in place] ");
    test_matmul_ld(300, 12, 1100, 1152, MATMUL_W_OC_C, TOL_BF16, "[bf16 padded in place] ");
    test_padded_in_place_path(300, 12, 1100, 1152, 1);
    /* at 150000 bytes B's padded copy (147456) fits and A's (1300 × 64 bf16) does not:
     * path 0 in blocks of 1152 and 148 rows; the forward tangent's concatenated copy
     * (294912 bytes) does not fit either, so its two products run apart, each in place */
    backend_cuda_set_bf16_chunk_bytes(150000);
    test_matmul_ld(1300, 7, 1100, 1152, MATMUL_W_OC_C, TOL_BF16, "[bf16 padded in place, blocked] ");
    test_padded_in_place_path(1300, 7, 1100, 1152, 0);   /* the pads of the blocked products */
    backend_cuda_set_bf16_chunk_bytes(0);
    /* the same in blocks of rows: at 160000 bytes B's padded copy (64 × 1152 bf16,
     * 147456 bytes) fits, Cp is capped at 2 × 160000 bytes = 69 rows of 1152 floats, so
     * N = 300 rows go in blocks of 64, 64, 64, 64, 44; dW of W[C,OC] (B = d [300, 1100],
     * its copy over the limit) and dinp fall back to blocks of columns and rows */
    backend_cuda_set_bf16_chunk_bytes(160000);
    test_matmul(300, 7, 1100, MATMUL_W_C_OC, TOL_BF16, "[bf16 padded out, blocked] ");
    test_matmul(300, 7, 1100, MATMUL_W_OC_C, TOL_BF16, "[bf16 padded out, blocked] ");
    backend_cuda_set_bf16_chunk_bytes(0);
    test_gemm_ops("tf32", TOL_TF32);
    test_gemm_ops("bf16", TOL_BF16);
    /* bf16 with tiny operand copies: every product runs in blocks of rows, columns or
     * examples (gemm.cu), and must give the same results within the same bound */
    backend_cuda_set_bf16_chunk_bytes(3000);
    CHECK(backend_cuda_set_gemm_precision("bf16") == 0, "bf16 GEMM mode");
    test_matmul(37, 48, 72, MATMUL_W_C_OC, TOL_BF16, "[bf16 blocked] ");
    test_matmul(37, 48, 101, MATMUL_W_OC_C, TOL_BF16, "[bf16 blocked] ");
    test_matmul(5, 7, 300, MATMUL_W_C_OC, TOL_BF16, "[bf16 blocked] ");   /* blocks of columns */
    test_matmul(5, 7, 300, MATMUL_W_OC_C, TOL_BF16, "[bf16 blocked] ");
    const int32_t v3[3] = { 17, 5, 0 };
    test_attention_tol(3, 17, 32, 4, 1, v3, TOL_BF16, "[bf16 blocked] ");
    backend_cuda_set_att_blocks(1);
    test_attention_tol(3, 17, 32, 4, 1, v3, TOL_BF16, "[bf16 blocked, att blocks] ");
    backend_cuda_set_att_blocks(-1);
    backend_cuda_set_bf16_chunk_bytes(0);
    CHECK(backend_cuda_set_gemm_precision("fp32") == 0, "fp32 GEMM mode");
    TEST_CHECK(backend_cuda_set_gemm_precision("fp16") == -1, "unknown GEMM mode accepted");
    TEST_CHECK(!strcmp(backend_cuda_gemm_precision(), "fp32"), "GEMM mode after a refused name: %s",
               backend_cuda_gemm_precision());
}

/* Flash attention (backend_cuda_set_att_flash, bf16 mode only): where eligible (hs a
 * multiple of 16 up to 64, T ≥ hs + 1) the forward and backward run as tiled tensor-core
 * kernels and att holds lse and a copy of O; every face is compared with the CPU at the
 * bf16 bound, the derivative faces given the GPU's own att. Shapes: T not a multiple of
 * the tiles (64 queries, 32 keys; 64 keys, 32 queries), padding with L = T, a short L and
 * L = 0, hs 16, 32, 48, 64, T = 1024 at hs 64. Where not eligible, the usual path must
 * still be right with the switch on. */
static int flash_eligible(int T, int C, int NH) {
    const int hs = C / NH;
    return C % NH == 0 && hs % 16 == 0 && hs <= 64 && (size_t)NH * T + (size_t)T * C <= (size_t)NH * T * T;
}

static void flash_case(int B, int T, int C, int NH, int causal, const int32_t *valid) {
    const int flash = flash_eligible(T, C, NH) ? (T >= 1024 ? 2 : 1) : 0;
    /* the Backend's size of att / tatt: lse, O (r, Ȯ) where flash, else [B,NH,T,T] */
    const size_t want = flash ? (size_t)B * NH * T + (size_t)B * T * C : (size_t)B * NH * T * T;
    const size_t got = gpu->attention_state_floats(B, T, C, NH);
    TEST_CHECK(got == want && cpu->attention_state_floats(B, T, C, NH) == (size_t)B * NH * T * T,
               "attention_state_floats B=%d T=%d C=%d NH=%d: %zu, expected %zu", B, T, C, NH, got,
               want);
    test_attention_run(B, T, C, NH, causal, valid, TOL_BF16, flash ? "[bf16 flash] " : "[bf16 flash→usual] ",
                       flash);
}

static void test_attention_flash(void) {
    CHECK(backend_cuda_set_gemm_precision("bf16") == 0, "bf16 GEMM mode");
    backend_cuda_set_att_flash(1);
    const int32_t v3[3] = { 17, 5, 0 }, v2[2] = { 100, 37 }, v257[2] = { 257, 130 };
    const int32_t v1024[1] = { 1000 };
    for (int causal = 0; causal <= 1; causal++) {
        flash_case(3, 17, 32, 2, causal, v3);       /* hs 16, T = 17 = hs + 1: just fits */
        flash_case(2, 100, 48, 3, causal, v2);      /* hs 16 */
        flash_case(2, 100, 64, 2, causal, NULL);    /* hs 32 */
        flash_case(2, 70, 96, 2, causal, NULL);     /* hs 48 */
        flash_case(2, 257, 128, 2, causal, v257);   /* hs 64, T = 257: one row past 4 tiles */
    }
    flash_case(1, 1024, 64, 1, 1, v1024);           /* hs 64, T = 1024 (causal: the emulator's time) */
    /* not eligible: the usual path with the switch on */
    flash_case(3, 17, 64, 2, 1, v3);    /* hs 32 > T − 1: lse and O would not fit in att */
    flash_case(2, 1, 32, 2, 0, NULL);   /* T = 1 */
    flash_case(3, 17, 32, 4, 1, v3);    /* hs 8 */
    flash_case(2, 70, 160, 1, 1, NULL); /* hs 160 > 64 */
    CHECK(backend_cuda_set_gemm_precision("fp32") == 0, "fp32 GEMM mode");
    test_attention_tol(3, 17, 32, 2, 1, v3, TOL, "[fp32, flash on: usual] ");   /* fp32: never flash */
    backend_cuda_set_att_flash(-1);
}

/* backend_cuda_memory: live follows alloc/free exactly (256-byte rounding), peak holds. */
static void test_memory_accounting(void) {
    BackendCudaMemory m0, m1, m2;
    backend_cuda_memory_reset_peak();
    backend_cuda_memory(&m0);
    void *p = gpu->alloc(1000), *q = gpu->alloc(4096);
    backend_cuda_memory(&m1);
    gpu->free(p);
    gpu->free(q);
    backend_cuda_memory(&m2);
    TEST_CHECK(m1.live - m0.live == 1024 + 4096, "live grew by %zu, expected %d", m1.live - m0.live,
               1024 + 4096);
    TEST_CHECK(m2.live == m0.live, "live after free %zu, before %zu", m2.live, m0.live);
    TEST_CHECK(m2.peak >= m0.live + m0.scratch + 1024 + 4096, "peak %zu missed the allocations",
               m2.peak);
    TEST_CHECK(m1.device_total > 0 && m1.device_used > 0, "cudaMemGetInfo: used %zu of %zu",
               m1.device_used, m1.device_total);
    printf("  live %zu -> %zu -> %zu bytes, scratch %zu, peak %zu, device %.2f of %.2f GiB used\n",
           m0.live, m1.live, m2.live, m2.scratch, m2.peak, m1.device_used / 1073741824.0,
           m1.device_total / 1073741824.0);
}

/* ---- whole models --------------------------------------------------------------------------- */

/* A flat buffer with the same contents on both backends. */
typedef struct { real *c, *g; size_t n; } Flat;
static Flat flat_new(size_t n) {
    Flat f = { cpu->alloc(n * sizeof(real)), gpu->alloc(n * sizeof(real)), n };
    return f;
}
static void flat_set(Flat *f, const real *host) {
    cpu->to_device(f->c, host, f->n * sizeof(real));
    gpu->to_device(f->g, host, f->n * sizeof(real));
}
static void flat_free(Flat *f) {
    cpu->free(f->c);
    gpu->free(f->g);
}
static double check_flat(const char *what, const Flat *f, double tol) {
    Buf b = { .h = f->c, .d = f->g, .n = f->n };   /* backend_cpu memory is host memory */
    return check_buf(what, &b, tol);
}
static void check_host_vec(const char *what, const real *c, const real *g, int n, double tol) {
    Buf b = buf_alloc((size_t)n);
    memcpy(b.h, c, (size_t)n * sizeof(real));
    gpu->to_device(b.d, g, (size_t)n * sizeof(real));   /* g is host memory here */
    check_buf(what, &b, tol);
    buf_free(&b);
}

/* tag "" and tol TOL_MODEL in fp32; "[bf16] " in bf16 mode (the caller sets the mode).
 * The LM 2x32 with n_head heads over T positions (ctx ≥ T), its head in chunks of
 * head_chunk examples (0: whole; chunks make lm_backward take the softmax and the
 * cotangent from the recomputed logits in one op). */
static void test_lm_run(double tol, const char *tag, int n_head, int T, int ctx, int head_chunk) {
    char w[160];
    LMConfig cfg = { .n_layer = 2, .d_model = 32, .n_head = n_head, .d_ff = 128, .vocab = 67,
                     .ctx = ctx, .init_std = 0.1, .head_chunk = head_chunk };
    enum { B = 3 };
    size_t n = lm_num_params(&cfg);
    Flat p = flat_new(n), u = flat_new(n), gc = flat_new(n), hv = flat_new(n), g2 = flat_new(n);
    lm_init_params(cpu, &cfg, p.c, 11);
    lm_init_params(gpu, &cfg, p.g, 11);
    real *host = xmalloc(n * sizeof(real));
    for (size_t i = 0; i < n; i++) host[i] = (real)(0.1 * nrand());
    flat_set(&u, host);
    int32_t *in = xmalloc((size_t)B * T * sizeof(int32_t));
    int32_t *tg = xmalloc((size_t)B * T * sizeof(int32_t)), nv[B] = { T, 7, 0 };
    for (int i = 0; i < B * T; i++) {
        in[i] = (int32_t)(rng_u64() % (uint64_t)cfg.vocab);
        tg[i] = (int32_t)(rng_u64() % (uint64_t)cfg.vocab);
    }
    real dl[B] = { 0.3f, 0.5f, 0.2f };

    LMActs *ac = lm_acts_new(cpu, &cfg, B, T, 1), *ag = lm_acts_new(gpu, &cfg, B, T, 1);
    {   /* att and tatt as the backend sizes them: 2 layers × 2 copies each; the logits
         * buffers (fwd, tan, and a tape's bwd) with rows of 128 floats: V = 67 rounded up to 64 */
        const size_t cpu_att = cpu->attention_state_floats(B, T, cfg.d_model, n_head);
        const size_t gpu_att = gpu->attention_state_floats(B, T, cfg.d_model, n_head);
        const size_t rows = (size_t)(head_chunk > 0 && head_chunk < B ? head_chunk : B) * T;
        const size_t n_logits = 2 + (lm_tape_supported(&cfg) ? 1 : 0);
        const size_t want = lm_acts_bytes(ac) - 4 * (cpu_att - gpu_att) * sizeof(real) +
                            n_logits * rows * (size_t)(128 - cfg.vocab) * sizeof(real);
        snprintf(w, sizeof w, "%sLM 2x32 activations with att of %zu floats (CPU %zu)", tag,
                 gpu_att, cpu_att);
        TEST_CHECK(lm_acts_bytes(ag) == want, "%s: %zu bytes, expected %zu", w, lm_acts_bytes(ag),
                   want);
        printf("  %-66s %zu bytes\n", w, lm_acts_bytes(ag));
    }
    real lc[B], lg[B], dc[B], dg[B];
    lm_forward(cpu, &cfg, p.c, ac, in, tg, nv, B, T, lc);
    lm_forward(gpu, &cfg, p.g, ag, in, tg, nv, B, T, lg);
    snprintf(w, sizeof w, "%sLM 2x32 lm_forward losses", tag);
    check_host_vec(w, lc, lg, B, tol);
    lm_backward(cpu, &cfg, p.c, ac, dl, g2.c);
    lm_backward(gpu, &cfg, p.g, ag, dl, g2.g);
    snprintf(w, sizeof w, "%sLM lm_backward grads", tag);
    check_flat(w, &g2, tol);
    {   /* the two in one pass: against the CPU, and the GPU's own two calls bit for bit */
        Flat g3 = flat_new(n);
        real l3c[B], l3g[B];
        cpu->vec_zero(ac->fwd.losses, B);   /* the two calls' losses must not pass for its own */
        gpu->vec_zero(ag->fwd.losses, B);
        lm_forward_backward(cpu, &cfg, p.c, ac, in, tg, nv, B, T, dl, l3c, g3.c);
        lm_forward_backward(gpu, &cfg, p.g, ag, in, tg, nv, B, T, dl, l3g, g3.g);
        snprintf(w, sizeof w, "%sLM lm_forward_backward losses", tag);
        check_host_vec(w, l3c, l3g, B, tol);
        snprintf(w, sizeof w, "%sLM lm_forward_backward grads", tag);
        check_flat(w, &g3, tol);
        snprintf(w, sizeof w, "%sLM lm_forward_backward losses = lm_forward's", tag);
        TEST_CHECK(!memcmp(l3g, lg, sizeof lg), "%s: other bits", w);
        printf("  %-66s %s\n", w, memcmp(l3g, lg, sizeof lg) ? "DIFFERENT" : "same bits");
        real *h = xmalloc(n * sizeof(real));
        gpu->to_host(h, g2.g, n * sizeof(real));
        snprintf(w, sizeof w, "%sLM lm_forward_backward grads = lm_backward's", tag);
        check_bits(w, h, g3.g, n);
        free(h);
        flat_free(&g3);
    }

    /* u = noise + the gradient's direction at the noise's norm: a random u alone makes each
     * ⟨∇l_i, u⟩ a sum of terms of both signs that cancel to a small fraction of them, so
     * that in bf16 a draw could put it 0.147 off (bound 5e-2) while every term was right */
    {
        real *g = xmalloc(n * sizeof(real));
        memcpy(g, g2.c, n * sizeof(real));
        double gg = 0, uu = 0;
        for (size_t i = 0; i < n; i++) gg += (double)g[i] * g[i], uu += (double)host[i] * host[i];
        const double a = gg > 0 ? sqrt(uu / gg) : 0;
        for (size_t i = 0; i < n; i++) host[i] = (real)(host[i] + a * g[i]);
        flat_set(&u, host);
        free(g);
    }
    lm_forward_over_reverse(cpu, &cfg, p.c, u.c, ac, in, tg, nv, B, T, dl, lc, gc.c, hv.c, dc);
    lm_forward_over_reverse(gpu, &cfg, p.g, u.g, ag, in, tg, nv, B, T, dl, lg, gc.g, hv.g, dg);
    snprintf(w, sizeof w, "%sLM forward_over_reverse losses", tag);
    check_host_vec(w, lc, lg, B, tol);
    snprintf(w, sizeof w, "%sLM forward_over_reverse <grad l_i, u>", tag);
    check_host_vec(w, dc, dg, B, tol);
    snprintf(w, sizeof w, "%sLM forward_over_reverse grads", tag);
    check_flat(w, &gc, tol);
    snprintf(w, sizeof w, "%sLM forward_over_reverse H u", tag);
    check_flat(w, &hv, tol);

    lm_acts_free(cpu, ac);
    lm_acts_free(gpu, ag);
    Flat fl[] = { p, u, gc, hv, g2 };
    for (size_t i = 0; i < sizeof fl / sizeof *fl; i++) flat_free(&fl[i]);
    free(host);
    free(in);
    free(tg);
}
static void test_lm_tol(double tol, const char *tag) { test_lm_run(tol, tag, 4, 12, 16, 0); }

static void test_lm(void) {
    test_lm_tol(TOL_MODEL, "");
    test_lm_run(TOL_MODEL, "[head chunks of 1] ", 4, 12, 16, 1);
}

static void test_rater(void) {
    RaterConfig cfg = { .n_layer = 2, .d_model = 32, .n_head = 4, .d_ff = 128, .vocab = 67,
                        .ctx = 10, .init_std = 0.1 };
    enum { B = 4, T = 10 };
    size_t n = rater_num_params(&cfg);
    Flat phi = flat_new(n), dphi = flat_new(n);
    rater_init_params(cpu, &cfg, phi.c, 5);
    rater_init_params(gpu, &cfg, phi.g, 5);
    int32_t tok[B * T], vl[B] = { T, 3, 1, 7 };
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)(rng_u64() % (uint64_t)cfg.vocab);
    RaterActs *ac = rater_acts_new(cpu, &cfg, B, T), *ag = rater_acts_new(gpu, &cfg, B, T);
    real zc[B], zg[B], dz[B] = { 0.7f, -0.2f, 0.4f, 1.1f };
    rater_forward(cpu, &cfg, phi.c, ac, tok, vl, B, T, zc);
    rater_forward(gpu, &cfg, phi.g, ag, tok, vl, B, T, zg);
    check_host_vec("rater 2x32 rater_forward z", zc, zg, B, TOL_MODEL);
    rater_backward(cpu, &cfg, phi.c, ac, dz, dphi.c);
    rater_backward(gpu, &cfg, phi.g, ag, dz, dphi.g);
    check_flat("rater rater_backward dphi", &dphi, TOL_MODEL);
    rater_acts_free(cpu, ac);
    rater_acts_free(gpu, ag);
    flat_free(&phi);
    flat_free(&dphi);
}

/* ---- one whole meta-step ---------------------------------------------------------------- */

enum { MB = 3, MT = 5, MTR = 6, MV = 11, MSTEPS = 3, MVAL = 2 };
typedef struct { DataBatch train[MSTEPS], val[MVAL]; } Mem;
static const DataBatch *mem_train(void *ctx, int t) { return &((Mem *)ctx)->train[t]; }
static const DataBatch *mem_val(void *ctx, int j) { return &((Mem *)ctx)->val[j]; }

/* B examples of random tokens, varied lengths (tests/grad/test_meta.c's make_batch) */
static void make_batch(DataBatch *b) {
    memset(b, 0, sizeof *b);
    b->B = b->capacity = MB;
    b->T = MT;
    b->T_rater = MTR;
    b->inputs = xcalloc(MB * MT, sizeof(int32_t));
    b->targets = xcalloc(MB * MT, sizeof(int32_t));
    b->n_valid = xcalloc(MB, sizeof(int32_t));
    b->rater_tokens = xcalloc(MB * MTR, sizeof(int32_t));
    b->rater_valid = xcalloc(MB, sizeof(int32_t));
    for (int i = 0; i < MB; i++) {
        int len = MT + 1 - (int)(rng_u64() % 3);
        int32_t win[MT + 1];
        for (int t = 0; t < len; t++) win[t] = (int32_t)(rng_u64() % MV);
        b->n_valid[i] = len - 1;
        for (int t = 0; t < MT; t++) {
            b->inputs[i * MT + t] = t < len - 1 ? win[t] : 0;
            b->targets[i * MT + t] = t < len - 1 ? win[t + 1] : 0;
        }
        b->rater_valid[i] = len < MTR ? len : MTR;
        for (int t = 0; t < MTR; t++) b->rater_tokens[i * MTR + t] = t < len ? win[t] : 0;
    }
}
static void free_batch(DataBatch *b) {
    free(b->inputs); free(b->targets); free(b->n_valid); free(b->rater_tokens); free(b->rater_valid);
}

/* max|dphi' − dphi| / max|dphi| on the CPU, where dphi' is the meta-gradient of the same
 * meta-step from theta_0 with every element moved by one float ulp (random sign): how much
 * rounding at the scale of float moves the CPU's own result */
static double meta_rounding_sensitivity(const MetaSpec *s, size_t n, size_t n_phi,
                                        const MetaBatches *data, const real *phi,
                                        const real *dphi) {
    real *theta = cpu->alloc(n * sizeof(real)), *dphi2 = cpu->alloc(n_phi * sizeof(real));
    lm_init_params(cpu, &s->lm, theta, 42);
    for (size_t i = 0; i < n; i++)
        theta[i] = nextafterf(theta[i], urand() < 0.5 ? -INFINITY : INFINITY);
    OptimState st;
    optim_state_init(&st, cpu, s->inner.kind, n);
    MetaWork *wk = meta_work_new(cpu, s);
    CHECK(meta_member_step(wk, theta, &st, phi, data, 777, dphi2, NULL) == 0, "%s", dr_lasterr());
    double dmax = 0, ref = 0;
    for (size_t i = 0; i < n_phi; i++) {
        dmax = fmax(dmax, fabs((double)dphi2[i] - dphi[i]));
        ref = fmax(ref, fabs((double)dphi[i]));
    }
    meta_work_free(wk);
    optim_state_free(&st, cpu);
    cpu->free(theta);
    cpu->free(dphi2);
    return ref > 0 ? dmax / ref : 0;
}

static void test_meta_step(int optimizer, int norm) {
    MetaSpec s;
    memset(&s, 0, sizeof s);
    const int C = 16;
    s.lm = (LMConfig){ .n_layer = 2, .d_model = C, .n_head = 2, .d_ff = 4 * C, .vocab = MV,
                       .ctx = MT, .init_std = 0.3 };
    s.rater = (LMConfig){ .n_layer = 1, .d_model = C, .n_head = 2, .d_ff = 4 * C, .vocab = MV,
                          .ctx = MTR, .init_std = 0.3 };
    s.inner = (OptimHyper){ .kind = optimizer, .lr = optimizer == OPTIM_ADAMW ? 0.02 : 0.3,
                            .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .momentum = 0.9,
                            .weight_decay = 0.1, .clip = 1e-3 /* always active */,
                            .schedule = LR_COSINE, .warmup_steps = 1, .total_steps = 12,
                            .min_lr_frac = 0.1 };
    s.weights = (WeightNormConfig){ .kind = norm, .tau = norm == WEIGHT_NORM_SOFTMAX ? 0.7 : 1.3,
                                    .w_min = 0.01, .w_max = 0.99, .mean_normalize = 1 };
    s.T = MSTEPS;
    s.checkpoint_every = 2;   /* the first segment is recomputed in the reverse pass */
    s.backprop_steps = MSTEPS;
    s.hvp = 1;
    s.mode = META_FULL;
    s.entropy_penalty = 0.01;
    s.batch = MB;
    s.seq_len = MT;
    s.seq_len_rater = MTR;

    Mem mem;
    for (int t = 0; t < MSTEPS; t++) make_batch(&mem.train[t]);
    for (int j = 0; j < MVAL; j++) make_batch(&mem.val[j]);
    MetaBatches data = { .train = mem_train, .val = mem_val, .n_val = MVAL, .ctx = &mem };

    size_t n = lm_num_params(&s.lm), n_phi = rater_num_params(&s.rater);
    Flat theta = flat_new(n), phi = flat_new(n_phi), dphi = flat_new(n_phi);
    lm_init_params(cpu, &s.lm, theta.c, 42);
    lm_init_params(gpu, &s.lm, theta.g, 42);
    rater_init_params(cpu, &s.rater, phi.c, 43);
    rater_init_params(gpu, &s.rater, phi.g, 43);
    OptimState oc, og;
    optim_state_init(&oc, cpu, optimizer, n);
    optim_state_init(&og, gpu, optimizer, n);
    MetaWork *wc = meta_work_new(cpu, &s), *wg = meta_work_new(gpu, &s);
    MetaStats sc, sg;
    meta_stats_clear(&sc);
    meta_stats_clear(&sg);
    CHECK(meta_member_step(wc, theta.c, &oc, phi.c, &data, 777, dphi.c, &sc) == 0, "%s", dr_lasterr());
    CHECK(meta_member_step(wg, theta.g, &og, phi.g, &data, 777, dphi.g, &sg) == 0, "%s", dr_lasterr());

    char w[128];
    const char *tag = optimizer == OPTIM_ADAMW ? "AdamW" : "SGD";
    snprintf(w, sizeof w, "meta-step (%s, clip on, T=3, c=2) L_val", tag);
    check_scalar(w, sc.l_val, sg.l_val, fabs(sc.l_val), TOL_META);
    snprintf(w, sizeof w, "meta-step (%s) objective", tag);
    check_scalar(w, sc.objective, sg.objective, fabs(sc.objective), TOL_META);
    snprintf(w, sizeof w, "meta-step (%s) theta_T", tag);
    check_flat(w, &theta, TOL_META);
    /* The meta-gradient through AdamW is ill-conditioned where v is near 0 (the update
     * m/(sqrt(v) + eps) changes fast there), so its rounding noise depends on the draw:
     * 7e-5 to 1.3e-3 between GPU and CPU float on different draws, 1.6e-4 to 9.2e-4 on the
     * emulator. The bound is TOL_META or, when larger, 10x what the CPU itself moves when
     * theta_0 is perturbed by one float ulp (its own rounding sensitivity: the GPU's
     * rounding differs in every op, not only in theta_0; measured ratios 2.5 (emulator) and
     * 3.5 (H200) on the draw that gave 1.3e-3), which must stay below 1e-2: a wrong GPU
     * computation is off by O(1), far beyond either. */
    const double noise = meta_rounding_sensitivity(&s, theta.n, n_phi, &data, phi.c, dphi.c);
    snprintf(w, sizeof w, "meta-step (%s): CPU's change under a one-ulp theta_0", tag);
    TEST_CHECK(noise < 1e-2, "%s: %.2e, too ill-conditioned a draw to compare", w, noise);
    printf("  %-66s %.1e\n", w, noise);
    snprintf(w, sizeof w, "meta-step (%s) meta-gradient dphi", tag);
    check_flat(w, &dphi, 10 * noise > TOL_META ? 10 * noise : TOL_META);

    /* the same GPU meta-step with the checkpoints in host memory: the same bits */
    MetaSpec s2 = s;
    s2.host_checkpoints = 1;
    real *theta2 = gpu->alloc(n * sizeof(real)), *dphi2 = gpu->alloc(n_phi * sizeof(real));
    lm_init_params(gpu, &s.lm, theta2, 42);
    OptimState og2;
    optim_state_init(&og2, gpu, optimizer, n);
    MetaWork *wg2 = meta_work_new(gpu, &s2);
    CHECK(meta_member_step(wg2, theta2, &og2, phi.g, &data, 777, dphi2, NULL) == 0, "%s", dr_lasterr());
    real *h = xmalloc((n > n_phi ? n : n_phi) * sizeof(real));
    gpu->to_host(h, dphi.g, n_phi * sizeof(real));
    snprintf(w, sizeof w, "meta-step (%s) host checkpoints: meta-gradient", tag);
    check_bits(w, h, dphi2, n_phi);
    gpu->to_host(h, theta.g, n * sizeof(real));
    snprintf(w, sizeof w, "meta-step (%s) host checkpoints: theta_T", tag);
    check_bits(w, h, theta2, n);
    free(h);
    meta_work_free(wg2);
    optim_state_free(&og2, gpu);
    gpu->free(theta2);
    gpu->free(dphi2);

    meta_work_free(wc);
    meta_work_free(wg);
    optim_state_free(&oc, cpu);
    optim_state_free(&og, gpu);
    flat_free(&theta); flat_free(&phi); flat_free(&dphi);
    for (int t = 0; t < MSTEPS; t++) free_batch(&mem.train[t]);
    for (int j = 0; j < MVAL; j++) free_batch(&mem.val[j]);
}

/* ---- main ------------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    dr_set_progname(argv[0]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* --only flash | bf16: the flash attention section, or the tf32 / bf16 one (the
     * padded products and attention's bf16 rows), alone (for compute-sanitizer, whose
     * racecheck would not reach them within its time limit otherwise) */
    const char *only = NULL;
    if (argc == 3 && !strcmp(argv[1], "--only") &&
        (!strcmp(argv[2], "flash") || !strcmp(argv[2], "bf16")))
        only = argv[2];
    else if (argc > 1) {
        fprintf(stderr, "usage: test_cuda_ops [--only flash|bf16]\n");
        return 2;
    }
    char why[256];
    gpu = backend_cuda_get(why, sizeof why);
    if (!gpu) {
        printf("test_cuda_ops: skipped: %s\n", why);
        return 77;
    }
    CHECK(backend_cuda_set_gemm_precision("fp32") == 0, "fp32 GEMM mode");
    printf("test_cuda_ops: CUDA ops vs CPU ops (float), rel = max|gpu-cpu| / max|cpu change|\n");
    if (only) {
        const int flash = !strcmp(only, "flash");
        printf("%s, alone (--only %s):\n", flash ? "flash attention (bf16, backend_cuda_set_att_flash)"
                                                 : "tf32 and bf16 GEMM modes", only);
        if (flash) test_attention_flash();
        else       test_reduced_precision();
        gpu->synchronize();
        backend_cuda_release();
        return test_finish(flash ? "test_cuda_ops --only flash" : "test_cuda_ops --only bf16");
    }

    test_table();
    size_t vec_sizes[] = { 1, 255, 256, 257, 300001 };
    for (size_t i = 0; i < sizeof vec_sizes / sizeof *vec_sizes; i++) test_vec(vec_sizes[i]);
    test_adamw(10007, 1, 1.0);
    test_adamw(10007, 5, 0.7);
    test_sgd(10007, 0.9);
    test_sgd(10007, 0.0);

    test_embedding(3, 11, 40, 13, 16);
    test_embedding(2, 64, 200, 1000, 64);

    test_matmul(37, 48, 72, MATMUL_W_C_OC, TOL, "");
    test_matmul(37, 48, 101, MATMUL_W_OC_C, TOL, "");
    test_matmul_ld(37, 48, 101, 131, MATMUL_W_OC_C, TOL, "");   /* rows strided */
    test_matmul_ld(37, 48, 72, 80, MATMUL_W_C_OC, TOL, "");
    test_matmul(64, 32, 1, MATMUL_W_C_OC, TOL, "");    /* the rater's head.out */
    test_matmul(5, 7, 3, MATMUL_W_C_OC, TOL, "");

    test_layernorm(37, 50);
    test_layernorm(70, 200);
    test_layernorm(3, 7);

    /* T = 17, 70, 1000: the row kernels that hold a row in registers (1, 4 and 32 values
     * per lane); T = 1100: their multi-pass versions. Causal attention both with its
     * products on the full T×T squares (the default) and in blocks of query rows. */
    const int32_t v3[3] = { 17, 5, 0 }, v2[2] = { 70, 33 };
    const int32_t v1000[2] = { 1000, 611 }, v1100[2] = { 1100, 1037 };
    for (int causal = 0; causal <= 1; causal++) {
        for (int blocks = 0; blocks <= causal; blocks++) {
            const char *tag = blocks ? "[att blocks] " : "";
            backend_cuda_set_att_blocks(blocks);
            test_attention_tol(3, 17, 32, 4, causal, NULL, TOL, tag);
            test_attention_tol(3, 17, 32, 4, causal, v3, TOL, tag);
            test_attention_tol(2, 70, 48, 3, causal, v2, TOL, tag);
            test_attention_tol(2, 1000, 8, 2, causal, v1000, TOL, tag);
            test_attention_tol(2, 1100, 8, 2, causal, v1100, TOL, tag);
        }
    }
    backend_cuda_set_att_blocks(-1);

    test_gelu(10007);   /* one element a thread */
    test_gelu(10008);   /* 4 a thread (forward, backward) */
    test_residual(10007);

    const int32_t nv3[3] = { 9, 4, 0 };
    test_crossentropy(3, 9, 300, nv3);
    test_crossentropy_ld(3, 9, 300, 320, nv3);    /* rows strided, each 16-byte aligned */
    test_crossentropy_ld(3, 9, 300, 301, nv3);    /* rows strided, aligned differently */
    test_crossentropy_ld(2, 5, 5003, 5056, NULL);
    test_crossentropy(3, 9, 300, NULL);
    test_crossentropy(2, 5, 5003, NULL);
    test_crossentropy(4, 3, 37, NULL);   /* V < the block, not a multiple of 4 */
    test_crossentropy_rows(37);
    test_crossentropy_rows(5003);

    const int32_t mv[3] = { 7, 3, 0 };
    test_meanpool(3, 7, 33, mv);
    test_meanpool(3, 7, 33, NULL);
    WeightNormConfig sig = { .kind = WEIGHT_NORM_SIGMOID, .tau = 1.3, .w_min = 0.2, .w_max = 0.9 };
    WeightNormConfig sm = { .kind = WEIGHT_NORM_SOFTMAX, .tau = 0.7, .w_min = 0, .w_max = 1 };
    test_weights(9, sig, "sigmoid, clamp active");
    sig.mean_normalize = 1;
    test_weights(9, sig, "sigmoid, mean-normalized");
    test_weights(9, sm, "softmax");
    sm.mean_normalize = 1;
    test_weights(9, sm, "softmax, mean-normalized");

    printf("determinism:\n");
    test_determinism();

    printf("reduced-precision GEMMs (matmul and attention, every face):\n");
    test_reduced_precision();

    printf("flash attention (bf16, backend_cuda_set_att_flash):\n");
    test_attention_flash();

    printf("memory accounting:\n");
    test_memory_accounting();

    printf("whole models:\n");
    test_lm();
    test_rater();
    test_meta_step(OPTIM_ADAMW, WEIGHT_NORM_SIGMOID);
    test_meta_step(OPTIM_SGD, WEIGHT_NORM_SOFTMAX);

    printf("whole LM in bf16 (every GEMM on bf16 inputs with fp32 accumulation, the rest fp32):\n");
    CHECK(backend_cuda_set_gemm_precision("bf16") == 0, "bf16 GEMM mode");
    test_lm_tol(TOL_BF16_MODEL, "[bf16] ");
    /* the same LM with hs 16 over T 20: flash attention in all four faces, att and tatt
     * allocated at flash mode's size (lse, O / r, Ȯ), not [B,NH,T,T] */
    printf("whole LM in bf16 with flash attention (backend_cuda_set_att_flash):\n");
    backend_cuda_set_att_flash(1);
    TEST_CHECK(gpu->attention_state_floats(3, 20, 32, 2) == 3 * 2 * 20 + 3 * 20 * 32,
               "flash attention state floats: %zu", gpu->attention_state_floats(3, 20, 32, 2));
    test_lm_run(TOL_BF16_MODEL, "[bf16 flash] ", 2, 20, 20, 0);
    backend_cuda_set_att_flash(-1);
    CHECK(backend_cuda_set_gemm_precision("fp32") == 0, "fp32 GEMM mode");

    gpu->synchronize();
    backend_cuda_release();   /* compute-sanitizer --leak-check sees the test's own leaks only */
    return test_finish("test_cuda_ops");
}
