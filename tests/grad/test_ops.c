/* test_ops.c — finite-difference proof of every CPU op's faces (double build, DESIGN §4.3).
 *
 * For each op, its inputs are packed into one vector x (blocks: inp, w, b, …) and its
 * outputs into y = F(x). Along random directions ẋ (all blocks together, then each block
 * alone), with a random cotangent ȳ and a random cotangent tangent ẏ̄:
 *   backward:          ⟨backward(x, ȳ), ẋ⟩       vs  d/ds ⟨ȳ, F(x + sẋ)⟩
 *   forward tangent:   forward_tangent(x, ẋ)     vs  d/ds F(x + sẋ)                (vector)
 *   backward tangent:  backward_tangent(x, ẋ, ȳ, ẏ̄) vs d/ds backward(x + sẋ, ȳ + sẏ̄) (vector)
 * d/ds is the 4th-order central stencil (f(−2h) − 8f(−h) + 8f(h) − f(2h)) / (12h),
 * h = 1e-3 (truncation O(h⁴) ≈ 1e-12, rounding ≈ 1e-16·|f|/h ≈ 1e-13 at our O(1) scales).
 *
 * TOLERANCE RULE: relative error = |a − fd| / max(|a|, |fd|, 1e-10) ≤ 1e-6 for scalars;
 * for vectors the same with max-norms: ‖a − fd‖∞ / max(‖a‖∞, ‖fd‖∞, 1e-10) ≤ 1e-6.
 * Every comparison must also be non-vacuous: max(|a|, |fd|) > 1e-6.
 *
 * Also checked: forward values against naive reference loops; `=` semantics of forward
 * and forward_tangent (NaN-filled outputs give the same bits as zero-filled ones); `+=`
 * semantics of backward and backward_tangent (onto random contents, and twice = double),
 * and `=` for the blocks they write (from NaN, and twice, the bits of one run from zeros);
 * NULL tangents = zero tangents; padding (valid_len / n_valid) leaves exact zeros;
 * AdamW finite where v = 0; clamped sigmoid weights get exactly zero gradient.
 * NEGATIVE CONTROLS: each nonlinear face is also run with one term deliberately dropped
 * (through the NULL-means-zero interface or a wrong hyperparameter), and the check must
 * FAIL on it: a comparison that cannot fail proves nothing. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ops/cpu_ops.h"
#include "test.h"

#ifndef DR_DOUBLE
#error "test_ops is a gradient check: build it in double (make PRECISION=double grads)"
#endif

#define TOL 1e-6
#define FLOOR 1e-10
#define NONVACUOUS 1e-6
#define MAXBLK 6

/* ---- random numbers ----------------------------------------------------------------- */
static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double urand(void) { return (double)(rng_next() >> 11) * 0x1.0p-53; }
static double nrand(void) {
    double u1 = urand(), u2 = urand();
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}
static void fill_normal(double *x, size_t n, double sd) { for (size_t i = 0; i < n; i++) x[i] = sd * nrand(); }
static double *dalloc(size_t n) { return xcalloc(n ? n : 1, sizeof(double)); }
static double *dnormal(size_t n, double sd) { double *x = dalloc(n); fill_normal(x, n, sd); return x; }

/* ---- error measures ----------------------------------------------------------------- */
static double max3(double a, double b, double c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }
static double rel_scalar(double a, double fd) { return fabs(a - fd) / max3(fabs(a), fabs(fd), FLOOR); }
static double maxabs(const double *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}
static double rel_vector(const double *a, const double *fd, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fabs(a[i] - fd[i]) > d ? fabs(a[i] - fd[i]) : d;
    return d / max3(maxabs(a, n), maxabs(fd, n), FLOOR);
}
static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ---- the generic op case ------------------------------------------------------------ */
typedef struct OpCase OpCase;
struct OpCase {
    const char *op, *name;
    int n_in, n_out, n_cot;           /* the cotangent ȳ covers y[0 .. n_cot) */
    int nblk;
    const char *blk[MAXBLK];
    int off[MAXBLK + 1];              /* block i of x is [off[i], off[i+1]) */
    void (*fwd)(const OpCase *, const double *x, double *y);                       /* y = F(x) */
    void (*bwd)(const OpCase *, const double *x, const double *ybar, double *xbar); /* += */
    void (*fwd_t)(const OpCase *, const double *x, const double *xt, double *yt);   /* = */
    void (*bwd_t)(const OpCase *, const double *x, const double *xt, const double *ybar,
                  const double *ybart, double *xbart);                              /* += */
    int bwd_overwrites;               /* the optimizers: cotangents are in/out, not += */
    unsigned written_blk;             /* bit i: both backward faces write (=) block i (the
                                       * input cotangents of matmul, GELU, attention) */
    const unsigned char *frozen;      /* [n_in] or NULL: coordinates no direction moves */
    unsigned zero_blk;                /* bit i: the output does not depend on block i at all */
    double h;                         /* FD step (0: 1e-3) */
    const double *x;                  /* the point */
    void *ctx;
};
#define BLK(p, i) ((p) + c->off[i])

typedef struct { double bwd, fwd_t, bwd_t; } Errs;  /* worst relative error per face */

/* Summary per op, printed at the end (the report's table). */
static struct { const char *op; double bwd, fwd_t, bwd_t; int has_t; } summary[64];
static int n_summary;
static void summarize(const char *op, Errs e, int has_t) {
    int i;
    for (i = 0; i < n_summary && strcmp(summary[i].op, op); i++) {}
    if (i == n_summary) { summary[n_summary].op = op; n_summary++; }
    if (has_t) summary[i].has_t = 1;
    if (e.bwd > summary[i].bwd) summary[i].bwd = e.bwd;
    if (e.fwd_t > summary[i].fwd_t) summary[i].fwd_t = e.fwd_t;
    if (e.bwd_t > summary[i].bwd_t) summary[i].bwd_t = e.bwd_t;
}

static void direction(const OpCase *c, int blk, double *xt) {
    memset(xt, 0, (size_t)c->n_in * sizeof(double));
    int lo = blk < 0 ? 0 : c->off[blk], hi = blk < 0 ? c->n_in : c->off[blk + 1];
    for (int i = lo; i < hi; i++) xt[i] = (c->frozen && c->frozen[i]) ? 0 : nrand();
}

/* 4th-order central difference of s ↦ f(s) (vector of n), f evaluated by eval(s, out). */
typedef struct { const OpCase *c; const double *xt, *ybar, *ybart; double *xs, *ys, *tmp; } FdCtx;
static void eval_fwd(FdCtx *f, double s, double *out) {
    const OpCase *c = f->c;
    for (int i = 0; i < c->n_in; i++) f->xs[i] = c->x[i] + s * f->xt[i];
    c->fwd(c, f->xs, out);
}
static void eval_bwd(FdCtx *f, double s, double *out) {
    const OpCase *c = f->c;
    for (int i = 0; i < c->n_in; i++) f->xs[i] = c->x[i] + s * f->xt[i];
    for (int i = 0; i < c->n_out; i++) f->ys[i] = f->ybar[i] + s * f->ybart[i];
    memset(out, 0, (size_t)c->n_in * sizeof(double));
    c->bwd(c, f->xs, f->ys, out);
}
static void fd5(FdCtx *f, void (*eval)(FdCtx *, double, double *), size_t n, double h,
                double *out) {
    static const double s[4] = {-2, -1, 1, 2}, w[4] = {1, -8, 8, -1};
    memset(out, 0, n * sizeof(double));
    for (int k = 0; k < 4; k++) {
        eval(f, s[k] * h, f->tmp);
        for (size_t i = 0; i < n; i++) out[i] += w[k] * f->tmp[i];
    }
    for (size_t i = 0; i < n; i++) out[i] /= 12 * h;
}

/* Runs the three comparisons along every direction; checks them when `expect_pass`. */
static Errs check_case(const OpCase *c, int expect_pass) {
    Errs worst = {0, 0, 0};
    int nmax = c->n_in > c->n_out ? c->n_in : c->n_out;
    double h = c->h > 0 ? c->h : 1e-3;
    double *ybar = dalloc(c->n_out), *ybart = dalloc(c->n_out);
    for (int i = 0; i < c->n_cot; i++) { ybar[i] = nrand(); ybart[i] = nrand(); }
    double *xt = dalloc(c->n_in), *xbar = dalloc(c->n_in);
    double *fdv = dalloc(nmax), *an = dalloc(nmax);
    FdCtx f = {c, xt, ybar, ybart, dalloc(c->n_in), dalloc(c->n_out), dalloc(nmax)};
    for (int blk = -1; blk < c->nblk; blk++) {
        const char *bname = blk < 0 ? "all" : c->blk[blk];
        direction(c, blk, xt);
        if (maxabs(xt, c->n_in) == 0) continue;
        /* backward: ⟨x̄, ẋ⟩ vs d/ds ⟨ȳ, F(x + sẋ)⟩ */
        memset(xbar, 0, (size_t)c->n_in * sizeof(double));
        c->bwd(c, c->x, ybar, xbar);
        double a = dot(xbar, xt, c->n_in);
        fd5(&f, eval_fwd, c->n_out, h, fdv);
        double fd = dot(ybar, fdv, c->n_cot);
        double e = rel_scalar(a, fd), scale = fmax(fabs(a), fabs(fd));
        if (blk >= 0 && (c->zero_blk >> blk & 1)) {
            /* an input the output ignores (a padded example): exact zeros, FD noise only */
            if (expect_pass) {
                TEST_CHECK(maxabs(xbar + c->off[blk], c->off[blk + 1] - c->off[blk]) == 0 &&
                           fabs(fd) <= 1e-12, "%s [%s]: gradient must be exactly 0 (fd %.2e)",
                           c->name, bname, fd);
                if (c->fwd_t) {
                    c->fwd_t(c, c->x, xt, an);
                    TEST_CHECK(maxabs(an, c->n_out) == 0, "%s [%s]: tangent must be exactly 0",
                               c->name, bname);
                }
            }
            continue;
        }
        if (e > worst.bwd) worst.bwd = e;
        if (expect_pass) {
            TEST_CHECK(e <= TOL, "%s [%s] backward: analytic %.12g fd %.12g rel %.2e",
                       c->name, bname, a, fd, e);
            TEST_CHECK(scale > NONVACUOUS, "%s [%s] backward: vacuous (%.2e)", c->name, bname, scale);
        }
        /* forward tangent: ẏ vs d/ds F(x + sẋ) (fdv still holds it) */
        if (c->fwd_t) {
            c->fwd_t(c, c->x, xt, an);
            e = rel_vector(an, fdv, c->n_out);
            scale = fmax(maxabs(an, c->n_out), maxabs(fdv, c->n_out));
            if (e > worst.fwd_t) worst.fwd_t = e;
            if (expect_pass) {
                TEST_CHECK(e <= TOL, "%s [%s] forward_tangent: rel %.2e", c->name, bname, e);
                TEST_CHECK(scale > NONVACUOUS, "%s [%s] forward_tangent: vacuous", c->name, bname);
            }
        }
        /* backward tangent: x̄̇ vs d/ds backward(x + sẋ, ȳ + sẏ̄) */
        if (c->bwd_t) {
            memset(an, 0, (size_t)c->n_in * sizeof(double));
            c->bwd_t(c, c->x, xt, ybar, ybart, an);
            fd5(&f, eval_bwd, c->n_in, h, fdv);
            e = rel_vector(an, fdv, c->n_in);
            scale = fmax(maxabs(an, c->n_in), maxabs(fdv, c->n_in));
            if (e > worst.bwd_t) worst.bwd_t = e;
            if (expect_pass) {
                TEST_CHECK(e <= TOL, "%s [%s] backward_tangent: rel %.2e", c->name, bname, e);
                TEST_CHECK(scale > NONVACUOUS, "%s [%s] backward_tangent: vacuous", c->name, bname);
            }
        }
    }
    free(ybar); free(ybart); free(xt); free(xbar); free(fdv); free(an);
    free(f.xs); free(f.ys); free(f.tmp);
    return worst;
}

/* = and += semantics, bit for bit where the op promises it. */
static void check_semantics(const OpCase *c) {
    int nmax = c->n_in > c->n_out ? c->n_in : c->n_out;
    double *y0 = dalloc(nmax), *y1 = dalloc(nmax), *xt = dalloc(c->n_in);
    double *ybar = dalloc(c->n_out), *ybart = dalloc(c->n_out);
    for (int i = 0; i < c->n_cot; i++) { ybar[i] = nrand(); ybart[i] = nrand(); }
    direction(c, -1, xt);

    c->fwd(c, c->x, y0);
    for (int i = 0; i < c->n_out; i++) y1[i] = NAN;
    c->fwd(c, c->x, y1);
    TEST_CHECK(!memcmp(y0, y1, (size_t)c->n_out * sizeof(double)),
               "%s: forward must write (=) every output", c->name);
    if (c->fwd_t) {
        c->fwd_t(c, c->x, xt, y0);
        for (int i = 0; i < c->n_out; i++) y1[i] = NAN;
        c->fwd_t(c, c->x, xt, y1);
        TEST_CHECK(!memcmp(y0, y1, (size_t)c->n_out * sizeof(double)),
                   "%s: forward_tangent must write (=) every output", c->name);
    }
    if (c->bwd_overwrites) goto done;
    for (int face = 0; face < 2; face++) {
        if (face == 1 && !c->bwd_t) break;
        const char *fname = face ? "backward_tangent" : "backward";
        #define RUN_FACE(out) (face ? c->bwd_t(c, c->x, xt, ybar, ybart, (out)) \
                                    : c->bwd(c, c->x, ybar, (out)))
        memset(y0, 0, (size_t)c->n_in * sizeof(double));
        RUN_FACE(y0);                                   /* g */
        memset(y1, 0, (size_t)c->n_in * sizeof(double));
        RUN_FACE(y1);
        RUN_FACE(y1);                                   /* g + g, or g where written */
        double d = 0;
        size_t rewritten = 0;
        for (int blk = 0; blk < c->nblk; blk++)
            for (int i = c->off[blk]; i < c->off[blk + 1]; i++) {
                if (c->written_blk >> blk & 1) rewritten += memcmp(&y1[i], &y0[i], sizeof *y0) != 0;
                else d = fmax(d, fabs(y1[i] - 2 * y0[i]));
            }
        TEST_CHECK(d <= 1e-14 * fmax(maxabs(y0, c->n_in), 1), "%s: %s twice must double (%.2e)",
                   c->name, fname, d);
        TEST_CHECK(rewritten == 0, "%s: %s twice must give the bits of once where it writes "
                   "(%zu elements differ)", c->name, fname, rewritten);
        /* onto random contents (NaN in the blocks it writes): base + g, or g */
        double *base = dnormal(c->n_in, 1);
        for (int blk = 0; blk < c->nblk; blk++)
            if (c->written_blk >> blk & 1)
                for (int i = c->off[blk]; i < c->off[blk + 1]; i++) base[i] = NAN;
        memcpy(y1, base, (size_t)c->n_in * sizeof(double));
        RUN_FACE(y1);
        d = 0;
        rewritten = 0;
        for (int blk = 0; blk < c->nblk; blk++)
            for (int i = c->off[blk]; i < c->off[blk + 1]; i++) {
                if (c->written_blk >> blk & 1) rewritten += memcmp(&y1[i], &y0[i], sizeof *y0) != 0;
                else d = fmax(d, fabs(y1[i] - base[i] - y0[i]));
            }
        TEST_CHECK(d <= 1e-13 * fmax(maxabs(y0, c->n_in), 1), "%s: %s must accumulate (%.2e)",
                   c->name, fname, d);
        TEST_CHECK(rewritten == 0, "%s: %s must write every element of the blocks it writes "
                   "(%zu of NaN-filled elements differ from a run onto zeros)", c->name, fname,
                   rewritten);
        free(base);
        #undef RUN_FACE
    }
done:
    free(y0); free(y1); free(xt); free(ybar); free(ybart);
}

static void run_case(const OpCase *c) {
    Errs e = check_case(c, 1);
    check_semantics(c);
    summarize(c->op, e, c->fwd_t != NULL);
    char ft[16] = "-", bt[16] = "-";
    if (c->fwd_t) snprintf(ft, sizeof ft, "%.1e", e.fwd_t);
    if (c->bwd_t) snprintf(bt, sizeof bt, "%.1e", e.bwd_t);
    printf("  %-44s bwd %.1e  fwd_t %-7s  bwd_t %s\n", c->name, e.bwd, ft, bt);
}

/* A negative control: the same case with one face deliberately wrong must fail. */
static void run_negative(const OpCase *c, const char *face) {
    Errs e = check_case(c, 0);
    double got = !strcmp(face, "bwd") ? e.bwd : !strcmp(face, "fwd_t") ? e.fwd_t : e.bwd_t;
    TEST_CHECK(got > TOL, "negative control %s (%s) was NOT detected: rel %.2e", c->name, face, got);
    printf("  %-44s %s rel %.1e  (must fail: %s)\n", c->name, face, got, got > TOL ? "caught" : "MISSED");
}

static void set_blocks(OpCase *c, int nblk, const char *const *names, const int *sizes) {
    c->nblk = nblk;
    c->off[0] = 0;
    for (int i = 0; i < nblk; i++) { c->blk[i] = names[i]; c->off[i + 1] = c->off[i] + sizes[i]; }
    c->n_in = c->off[nblk];
}

/* ======================================================================================
 * matmul
 * ====================================================================================== */
typedef struct { int N, C, OC, layout, has_bias; } MatmulCtx;

static void mm_fwd(const OpCase *c, const double *x, double *y) {
    const MatmulCtx *m = c->ctx;
    matmul_forward(y, BLK(x, 0), BLK(x, 1), m->has_bias ? BLK(x, 2) : NULL, m->N, m->C, m->OC, m->layout, m->OC);
}
static void mm_bwd(const OpCase *c, const double *x, const double *ybar, double *xbar) {
    const MatmulCtx *m = c->ctx;
    matmul_backward(BLK(xbar, 0), BLK(xbar, 1), m->has_bias ? BLK(xbar, 2) : NULL, ybar,
                    BLK(x, 0), BLK(x, 1), m->N, m->C, m->OC, m->layout, m->OC);
}
static void mm_fwd_t(const OpCase *c, const double *x, const double *xt, double *yt) {
    const MatmulCtx *m = c->ctx;
    matmul_forward_tangent(yt, BLK(x, 0), BLK(xt, 0), BLK(x, 1), BLK(xt, 1),
                           m->has_bias ? BLK(xt, 2) : NULL, m->N, m->C, m->OC, m->layout, m->OC);
}
static void mm_bwd_t(const OpCase *c, const double *x, const double *xt, const double *ybar,
                     const double *ybart, double *xbt) {
    const MatmulCtx *m = c->ctx;
    matmul_backward_tangent(BLK(xbt, 0), BLK(xbt, 1), m->has_bias ? BLK(xbt, 2) : NULL, ybar, ybart,
                            BLK(x, 0), BLK(xt, 0), BLK(x, 1), BLK(xt, 1), m->N, m->C, m->OC, m->layout, m->OC);
}
static void mm_bwd_t_wrong(const OpCase *c, const double *x, const double *xt, const double *ybar,
                           const double *ybart, double *xbt) {  /* drops dout·tWᵀ and tinpᵀ·dout */
    const MatmulCtx *m = c->ctx;
    matmul_backward_tangent(BLK(xbt, 0), BLK(xbt, 1), m->has_bias ? BLK(xbt, 2) : NULL, ybar, ybart,
                            BLK(x, 0), NULL, BLK(x, 1), NULL, m->N, m->C, m->OC, m->layout, m->OC);
}

static void naive_matmul(double *out, const double *inp, const double *w, const double *b,
                         int N, int C, int OC, int layout) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0;
            for (int k = 0; k < C; k++)
                s += inp[n * C + k] * (layout == MATMUL_W_OC_C ? w[o * C + k] : w[k * OC + o]);
            out[n * OC + o] = s;
        }
}

static void test_matmul(int N, int C, int OC, int layout, int has_bias) {
    MatmulCtx m = {N, C, OC, layout, has_bias};
    static char name[96];
    OpCase cc = {.op = "matmul", .ctx = &m, .fwd = mm_fwd, .bwd = mm_bwd, .fwd_t = mm_fwd_t,
                .bwd_t = mm_bwd_t, .written_blk = 1u /* inp */};
    OpCase *c = &cc;
    snprintf(name, sizeof name, "matmul N%d C%d OC%d %s%s", N, C, OC,
             layout == MATMUL_W_OC_C ? "W[OC,C]" : "W[C,OC]", has_bias ? " +bias" : "");
    c->name = name;
    const char *names[] = {"inp", "w", "bias"};
    int sizes[] = {N * C, C * OC, OC};
    set_blocks(c, has_bias ? 3 : 2, names, sizes);
    c->n_out = c->n_cot = N * OC;
    double *x = dnormal(c->n_in, 1);
    c->x = x;
    /* forward vs naive */
    double *y = dalloc(c->n_out), *ref = dalloc(c->n_out);
    mm_fwd(c, x, y);
    naive_matmul(ref, BLK(x, 0), BLK(x, 1), has_bias ? BLK(x, 2) : NULL, N, C, OC, layout);
    TEST_CHECK(rel_vector(y, ref, c->n_out) <= 1e-13, "%s: forward vs naive %.2e", name, rel_vector(y, ref, c->n_out));
    run_case(c);
    /* NULL tangents = zero tangents */
    double *xt = dalloc(c->n_in), *t0 = dalloc(c->n_out), *t1 = dalloc(c->n_out);
    fill_normal(BLK(xt, 0), (size_t)N * C, 1);
    mm_fwd_t(c, x, xt, t0);
    matmul_forward_tangent(t1, BLK(x, 0), BLK(xt, 0), BLK(x, 1), NULL, NULL, N, C, OC, layout, OC);
    TEST_CHECK(rel_vector(t0, t1, c->n_out) <= 1e-15, "%s: NULL tW/tb must mean zero", name);
    /* NULL gradients are not wanted: the others come out the same */
    double *ybar = dnormal(c->n_out, 1), *full = dalloc(c->n_in), *part = dalloc(c->n_in);
    mm_bwd(c, x, ybar, full);
    matmul_backward(BLK(part, 0), NULL, NULL, ybar, BLK(x, 0), BLK(x, 1), N, C, OC, layout, OC);
    matmul_backward(NULL, BLK(part, 1), NULL, ybar, BLK(x, 0), BLK(x, 1), N, C, OC, layout, OC);
    if (has_bias) matmul_backward(NULL, NULL, BLK(part, 2), ybar, BLK(x, 0), BLK(x, 1), N, C, OC, layout, OC);
    TEST_CHECK(!memcmp(full, part, (size_t)c->n_in * sizeof(double)), "%s: NULL gradients must be skipped", name);
    /* the backward tangent without dtout and tW: dtinp written with zeros (its tangent is 0) */
    for (size_t i = 0; i < (size_t)N * C; i++) part[i] = NAN;
    matmul_backward_tangent(part, NULL, NULL, ybar, NULL, BLK(x, 0), BLK(xt, 0), BLK(x, 1), NULL,
                            N, C, OC, layout, OC);
    size_t nonzero = 0;
    for (size_t i = 0; i < (size_t)N * C; i++) nonzero += part[i] != 0;   /* NaN counts */
    TEST_CHECK(nonzero == 0, "%s: backward_tangent without dtout and tW must write dtinp = 0 "
               "(%zu elements not 0)", name, nonzero);
    free(ybar); free(full); free(part);
    if (N * C * OC < 2000) {
        OpCase bad = *c;
        bad.name = "matmul bwd_t without tW, tinp terms";
        bad.bwd_t = mm_bwd_t_wrong;
        run_negative(&bad, "bwd_t");
    }
    free(x); free(y); free(ref); free(xt); free(t0); free(t1);
}

/* ======================================================================================
 * layernorm
 * ====================================================================================== */
typedef struct { int N, C; double *mean, *rstd, *tmp; } LnCtx;

static void ln_fwd(const OpCase *c, const double *x, double *y) {
    const LnCtx *l = c->ctx;
    layernorm_forward(y, l->mean, l->rstd, BLK(x, 0), BLK(x, 1), BLK(x, 2), l->N, l->C);
}
static void ln_bwd(const OpCase *c, const double *x, const double *ybar, double *xbar) {
    const LnCtx *l = c->ctx;
    layernorm_forward(l->tmp, l->mean, l->rstd, BLK(x, 0), BLK(x, 1), BLK(x, 2), l->N, l->C);
    layernorm_backward(BLK(xbar, 0), BLK(xbar, 1), BLK(xbar, 2), ybar, BLK(x, 0), BLK(x, 1),
                       l->mean, l->rstd, l->N, l->C);
}
static void ln_fwd_t(const OpCase *c, const double *x, const double *xt, double *yt) {
    const LnCtx *l = c->ctx;
    layernorm_forward(l->tmp, l->mean, l->rstd, BLK(x, 0), BLK(x, 1), BLK(x, 2), l->N, l->C);
    layernorm_forward_tangent(yt, BLK(x, 0), BLK(xt, 0), BLK(x, 1), BLK(xt, 1), BLK(xt, 2),
                              l->mean, l->rstd, l->N, l->C);
}
static void ln_bwd_t(const OpCase *c, const double *x, const double *xt, const double *ybar,
                     const double *ybart, double *xbt) {
    const LnCtx *l = c->ctx;
    layernorm_forward(l->tmp, l->mean, l->rstd, BLK(x, 0), BLK(x, 1), BLK(x, 2), l->N, l->C);
    layernorm_backward_tangent(BLK(xbt, 0), BLK(xbt, 1), BLK(xbt, 2), ybar, ybart, BLK(x, 0),
                               BLK(xt, 0), BLK(x, 1), BLK(xt, 1), l->mean, l->rstd, l->N, l->C);
}
static void ln_bwd_t_wrong(const OpCase *c, const double *x, const double *xt, const double *ybar,
                           const double *ybart, double *xbt) {  /* forgets that x̂ moves with x */
    const LnCtx *l = c->ctx;
    layernorm_forward(l->tmp, l->mean, l->rstd, BLK(x, 0), BLK(x, 1), BLK(x, 2), l->N, l->C);
    layernorm_backward_tangent(BLK(xbt, 0), BLK(xbt, 1), BLK(xbt, 2), ybar, ybart, BLK(x, 0),
                               NULL, BLK(x, 1), BLK(xt, 1), l->mean, l->rstd, l->N, l->C);
}

static void test_layernorm(int N, int C) {
    LnCtx l = {N, C, dalloc(N), dalloc(N), dalloc((size_t)N * C)};
    OpCase cc = {.op = "layernorm", .name = "layernorm N10 C8", .ctx = &l, .fwd = ln_fwd,
                .bwd = ln_bwd, .fwd_t = ln_fwd_t, .bwd_t = ln_bwd_t};
    OpCase *c = &cc;
    const char *names[] = {"inp", "w", "b"};
    int sizes[] = {N * C, C, C};
    set_blocks(c, 3, names, sizes);
    c->n_out = c->n_cot = N * C;
    double *x = dnormal(c->n_in, 1);
    for (int i = 0; i < C; i++) BLK(x, 1)[i] = 1 + 0.3 * nrand();
    for (int n = 0; n < N; n++) for (int i = 0; i < C; i++) x[n * C + i] = 0.5 * n + (1 + 0.2 * n) * x[n * C + i];
    c->x = x;
    /* forward vs naive, mean and rstd included */
    double *y = dalloc(c->n_out);
    ln_fwd(c, x, y);
    double worst = 0;
    for (int n = 0; n < N; n++) {
        double mu = 0, var = 0;
        for (int i = 0; i < C; i++) mu += x[n * C + i] / C;
        for (int i = 0; i < C; i++) var += (x[n * C + i] - mu) * (x[n * C + i] - mu) / C;
        double s = 1 / sqrt(var + 1e-5);
        worst = fmax(worst, fabs(l.mean[n] - mu) + fabs(l.rstd[n] - s) / s);
        for (int i = 0; i < C; i++)
            worst = fmax(worst, fabs(y[n * C + i] - ((x[n * C + i] - mu) * s * BLK(x, 1)[i] + BLK(x, 2)[i])));
    }
    TEST_CHECK(worst <= 1e-13, "layernorm forward vs naive: %.2e", worst);
    run_case(c);
    double *ybar = dnormal(c->n_out, 1), *full = dalloc(c->n_in), *part = dalloc(c->n_in);
    ln_bwd(c, x, ybar, full);
    layernorm_backward(part, NULL, NULL, ybar, x, BLK(x, 1), l.mean, l.rstd, N, C);
    layernorm_backward(NULL, BLK(part, 1), NULL, ybar, x, BLK(x, 1), l.mean, l.rstd, N, C);
    layernorm_backward(NULL, NULL, BLK(part, 2), ybar, x, BLK(x, 1), l.mean, l.rstd, N, C);
    TEST_CHECK(!memcmp(full, part, (size_t)c->n_in * sizeof(double)), "layernorm: NULL gradients must be skipped");
    free(ybar); free(full); free(part);
    OpCase bad = *c;
    bad.name = "layernorm bwd_t without the x̂̇ terms";
    bad.bwd_t = ln_bwd_t_wrong;
    run_negative(&bad, "bwd_t");
    free(x); free(y); free(l.mean); free(l.rstd); free(l.tmp);
}

/* ======================================================================================
 * attention
 * ====================================================================================== */
typedef struct { int B, T, C, NH, causal; const int32_t *vl; double *att, *tatt, *tmp; } AttCtx;

static void at_fwd(const OpCase *c, const double *x, double *y) {
    const AttCtx *a = c->ctx;
    attention_forward(y, y + a->B * a->T * a->C, x, a->vl, a->causal, a->B, a->T, a->C, a->NH);
}
static void at_bwd(const OpCase *c, const double *x, const double *ybar, double *xbar) {
    const AttCtx *a = c->ctx;
    attention_forward(a->tmp, a->att, x, a->vl, a->causal, a->B, a->T, a->C, a->NH);
    attention_backward(xbar, ybar, x, a->att, a->vl, a->causal, a->B, a->T, a->C, a->NH);
}
static void at_fwd_t(const OpCase *c, const double *x, const double *xt, double *yt) {
    const AttCtx *a = c->ctx;
    attention_forward(a->tmp, a->att, x, a->vl, a->causal, a->B, a->T, a->C, a->NH);
    attention_forward_tangent(yt, yt + a->B * a->T * a->C, x, xt, a->att, a->vl, a->causal,
                              a->B, a->T, a->C, a->NH);
}
static void at_bwd_t_impl(const OpCase *c, const double *x, const double *xt, const double *ybar,
                          const double *ybart, double *xbt, int drop_tatt) {
    const AttCtx *a = c->ctx;
    attention_forward(a->tmp, a->att, x, a->vl, a->causal, a->B, a->T, a->C, a->NH);
    attention_forward_tangent(a->tmp, a->tatt, x, xt, a->att, a->vl, a->causal, a->B, a->T, a->C, a->NH);
    attention_backward_tangent(xbt, ybar, ybart, x, xt, a->att, drop_tatt ? NULL : a->tatt, a->vl,
                               a->causal, a->B, a->T, a->C, a->NH);
}
static void at_bwd_t(const OpCase *c, const double *x, const double *xt, const double *ybar,
                     const double *ybart, double *xbt) { at_bwd_t_impl(c, x, xt, ybar, ybart, xbt, 0); }
static void at_bwd_t_wrong(const OpCase *c, const double *x, const double *xt, const double *ybar,
                           const double *ybart, double *xbt) { at_bwd_t_impl(c, x, xt, ybar, ybart, xbt, 1); }

/* naive reference: explicit scores, mask, softmax, weighted sum */
static void naive_attention(double *out, double *att, const double *qkv, const int32_t *vl,
                            int causal, int B, int T, int C, int NH) {
    int hs = C / NH;
    double *s = dalloc(T);
    for (int b = 0; b < B; b++) {
        int L = vl ? vl[b] : T;
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                double *p = att + (((size_t)b * NH + h) * T + t) * T;
                double *o = out + ((size_t)b * T + t) * C + h * hs;
                for (int j = 0; j < T; j++) p[j] = 0;
                for (int i = 0; i < hs; i++) o[i] = 0;
                if (t >= L) continue;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++) {
                    if (j >= L || (causal && j > t)) continue;
                    double d = 0;
                    for (int i = 0; i < hs; i++)
                        d += qkv[((size_t)b * T + t) * 3 * C + h * hs + i] * qkv[((size_t)b * T + j) * 3 * C + C + h * hs + i];
                    s[j] = d / sqrt(hs);
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j < T; j++) {
                    if (j >= L || (causal && j > t)) continue;
                    p[j] = exp(s[j] - mx);
                    sum += p[j];
                }
                for (int j = 0; j < T; j++) p[j] /= sum;
                for (int j = 0; j < T; j++)
                    for (int i = 0; i < hs; i++) o[i] += p[j] * qkv[((size_t)b * T + j) * 3 * C + 2 * C + h * hs + i];
            }
    }
    free(s);
}

static void test_attention(int B, int T, int C, int NH, const int32_t *vl, int causal, const char *name) {
    int BTC = B * T * C, ATT = B * NH * T * T;
    AttCtx a = {B, T, C, NH, causal, vl, dalloc(ATT), dalloc(ATT), dalloc(BTC)};
    OpCase cc = {.op = "attention", .name = name, .ctx = &a, .fwd = at_fwd, .bwd = at_bwd,
                .fwd_t = at_fwd_t, .bwd_t = at_bwd_t, .written_blk = ~0u /* all of qkv */};
    OpCase *c = &cc;
    /* blocks: q, k, v are interleaved in qkv, so the block split is by example */
    const char *names[] = {"qkv[b=0]", "qkv[b=1]", "qkv[b=2]", "qkv[b=3]"};
    int sizes[4];
    for (int b = 0; b < B; b++) sizes[b] = T * 3 * C;
    set_blocks(c, B, names, sizes);
    c->n_out = BTC + ATT;
    c->n_cot = BTC;
    for (int b = 0; b < B; b++) if (vl && vl[b] == 0) c->zero_blk |= 1u << b;
    double *x = dnormal(c->n_in, 0.8);
    c->x = x;
    double *y = dalloc(c->n_out), *ref = dalloc(c->n_out);
    at_fwd(c, x, y);
    naive_attention(ref, ref + BTC, x, vl, causal, B, T, C, NH);
    TEST_CHECK(rel_vector(y, ref, c->n_out) <= 1e-13, "%s: forward vs naive %.2e", name, rel_vector(y, ref, c->n_out));
    run_case(c);

    /* padding: padded queries get no gradient through Q, padded keys none through K, V;
     * padded outputs are exactly 0 (checked by the naive comparison) */
    double *ybar = dnormal(BTC, 1), *xbar = dalloc(c->n_in), *xt = dnormal(c->n_in, 1);
    for (int face = 0; face < 2; face++) {   /* both write (=) dqkv: onto NaN here */
        for (int i = 0; i < c->n_in; i++) xbar[i] = NAN;
        if (face) at_bwd_t(c, x, xt, ybar, ybar, xbar);
        else      at_bwd(c, x, ybar, xbar);
        int leak = 0;
        for (int b = 0; b < B; b++)
            for (int t = vl ? vl[b] : T; t < T; t++)
                for (int i = 0; i < 3 * C; i++) leak |= xbar[((size_t)b * T + t) * 3 * C + i] != 0;
        TEST_CHECK(!leak, "%s: padded positions must receive exactly zero %s", name,
                   face ? "gradient tangent" : "gradient");
    }
    /* NULL tqkv = zero tangent; NULL tatt / dtout = zero */
    double *t0 = dalloc(c->n_out);
    for (int i = 0; i < c->n_out; i++) t0[i] = NAN;
    attention_forward_tangent(t0, t0 + BTC, x, NULL, a.att, vl, causal, B, T, C, NH);
    TEST_CHECK(maxabs(t0, c->n_out) == 0, "%s: NULL tqkv must give zero tangents", name);
    if (!vl || vl[0] > 1) {
        OpCase bad = *c;
        bad.name = "attention bwd_t without the Ṗ terms";
        bad.bwd_t = at_bwd_t_wrong;
        run_negative(&bad, "bwd_t");
    }
    free(x); free(y); free(ref); free(ybar); free(xbar); free(xt); free(t0);
    free(a.att); free(a.tatt); free(a.tmp);
}

/* ======================================================================================
 * gelu, residual
 * ====================================================================================== */
static void ge_fwd(const OpCase *c, const double *x, double *y) { gelu_forward(y, x, (size_t)c->n_in); }
static void ge_bwd(const OpCase *c, const double *x, const double *ybar, double *xbar) {
    gelu_backward(xbar, x, ybar, (size_t)c->n_in);
}
static void ge_fwd_t(const OpCase *c, const double *x, const double *xt, double *yt) {
    gelu_forward_tangent(yt, x, xt, (size_t)c->n_in);
}
static void ge_bwd_t(const OpCase *c, const double *x, const double *xt, const double *ybar,
                     const double *ybart, double *xbt) {
    gelu_backward_tangent(xbt, x, xt, ybar, ybart, (size_t)c->n_in);
}
static void ge_bwd_t_wrong(const OpCase *c, const double *x, const double *xt, const double *ybar,
                           const double *ybart, double *xbt) {  /* drops the y'' term */
    gelu_backward_tangent(xbt, x, NULL, ybar, ybart, (size_t)c->n_in);
}

static void test_gelu(void) {
    int n = 48;
    OpCase cc = {.op = "gelu", .name = "gelu n48", .fwd = ge_fwd, .bwd = ge_bwd, .fwd_t = ge_fwd_t,
                .bwd_t = ge_bwd_t, .written_blk = 1u};
    OpCase *c = &cc;
    const char *names[] = {"inp"};
    int sizes[] = {n};
    set_blocks(c, 1, names, sizes);
    c->n_out = c->n_cot = n;
    double *x = dnormal(n, 1.5);
    c->x = x;
    double *y = dalloc(n), worst = 0;
    ge_fwd(c, x, y);
    for (int i = 0; i < n; i++) {
        double v = x[i], ref = v / 2 * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
        worst = fmax(worst, fabs(y[i] - ref));
        TEST_CHECK(fabs(y[i] - v / 2 * (1 + erf(v / sqrt(2)))) <= 1e-3, "gelu(%g) far from exact GELU", v);
    }
    TEST_CHECK(worst <= 1e-15, "gelu forward vs formula: %.2e", worst);
    run_case(c);
    OpCase bad = *c;
    bad.name = "gelu bwd_t without the y'' term";
    bad.bwd_t = ge_bwd_t_wrong;
    run_negative(&bad, "bwd_t");
    free(x); free(y);
}

static void rs_fwd(const OpCase *c, const double *x, double *y) {
    residual_forward(y, BLK(x, 0), BLK(x, 1), (size_t)c->n_out);
}
static void rs_bwd(const OpCase *c, const double *x, const double *ybar, double *xbar) {
    residual_backward(BLK(xbar, 0), BLK(xbar, 1), ybar, (size_t)c->n_out);
}
static void rs_fwd_t(const OpCase *c, const double *x, const double *xt, double *yt) {
    residual_forward_tangent(yt, BLK(xt, 0), BLK(xt, 1), (size_t)c->n_out);
}
static void rs_bwd_t(const OpCase *c, const double *x, const double *xt, const double *ybar,
                     const double *ybart, double *xbt) {
    residual_backward_tangent(BLK(xbt, 0), BLK(xbt, 1), ybart, (size_t)c->n_out);
}

static void test_residual(void) {
    int n = 40;
    OpCase cc = {.op = "residual", .name = "residual n40", .fwd = rs_fwd, .bwd = rs_bwd,
                .fwd_t = rs_fwd_t, .bwd_t = rs_bwd_t};
    OpCase *c = &cc;
    const char *names[] = {"a", "b"};
    int sizes[] = {n, n};
    set_blocks(c, 2, names, sizes);
    c->n_out = c->n_cot = n;
    double *x = dnormal(2 * n, 1);
    c->x = x;
    run_case(c);
    double *t = dalloc(n);
    for (int i = 0; i < n; i++) t[i] = NAN;
    residual_forward_tangent(t, NULL, NULL, (size_t)n);
    TEST_CHECK(maxabs(t, n) == 0, "residual: NULL tangents must give zero");
    free(x); free(t);
}

/* ======================================================================================
 * embedding
 * ====================================================================================== */
typedef struct { int B, T, C; const int32_t *tokens; } EmbCtx;

static void em_fwd(const OpCase *c, const double *x, double *y) {
    const EmbCtx *e = c->ctx;
    embedding_forward(y, e->tokens, BLK(x, 0), BLK(x, 1), e->B, e->T, e->C);
}
static void em_bwd(const OpCase *c, const double *x, const double *ybar, double *xbar) {
    const EmbCtx *e = c->ctx;
    embedding_backward(BLK(xbar, 0), BLK(xbar, 1), ybar, e->tokens, e->B, e->T, e->C);
}
static void em_fwd_t(const OpCase *c, const double *x, const double *xt, double *yt) {
    const EmbCtx *e = c->ctx;
    embedding_forward_tangent(yt, e->tokens, BLK(xt, 0), BLK(xt, 1), e->B, e->T, e->C);
}
static void em_bwd_t(const OpCase *c, const double *x, const double *xt, const double *ybar,
                     const double *ybart, double *xbt) {
    const EmbCtx *e = c->ctx;
    embedding_backward_tangent(BLK(xbt, 0), BLK(xbt, 1), ybart, e->tokens, e->B, e->T, e->C);
}

static void test_embedding(void) {
    int B = 3, T = 5, C = 8, V = 11, maxT = 7;
    int32_t tokens[15] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9};  /* repeats: scatter adds */
    EmbCtx e = {B, T, C, tokens};
    OpCase cc = {.op = "embedding", .name = "embedding B3 T5 C8 V11", .ctx = &e, .fwd = em_fwd,
                .bwd = em_bwd, .fwd_t = em_fwd_t, .bwd_t = em_bwd_t};
    OpCase *c = &cc;
    const char *names[] = {"wte", "wpe"};
    int sizes[] = {V * C, maxT * C};
    set_blocks(c, 2, names, sizes);
    c->n_out = c->n_cot = B * T * C;
    double *x = dnormal(c->n_in, 1);
    c->x = x;
    double *y = dalloc(c->n_out), worst = 0;
    em_fwd(c, x, y);
    for (int bt = 0; bt < B * T; bt++)
        for (int i = 0; i < C; i++)
            worst = fmax(worst, fabs(y[bt * C + i] - (x[tokens[bt] * C + i] + BLK(x, 1)[(bt % T) * C + i])));
    TEST_CHECK(worst == 0, "embedding forward vs naive: %.2e", worst);
    run_case(c);
    free(x); free(y);
}

/* ======================================================================================
 * cross-entropy
 * ====================================================================================== */
typedef struct { int B, T, V; const int32_t *targets, *nv; double *probs, *tmp; } CeCtx;

static void ce_fwd(const OpCase *c, const double *x, double *y) {
    const CeCtx *e = c->ctx;
    crossentropy_forward(y, e->probs, x, e->targets, e->nv, e->B, e->T, e->V, e->V);
}
static void ce_bwd(const OpCase *c, const double *x, const double *ybar, double *xbar) {
    const CeCtx *e = c->ctx;
    crossentropy_forward(e->tmp, e->probs, x, e->targets, e->nv, e->B, e->T, e->V, e->V);
    crossentropy_backward(xbar, e->probs, e->targets, e->nv, ybar, e->B, e->T, e->V, e->V);
}
static void ce_fwd_t(const OpCase *c, const double *x, const double *xt, double *yt) {
    const CeCtx *e = c->ctx;
    crossentropy_forward(e->tmp, e->probs, x, e->targets, e->nv, e->B, e->T, e->V, e->V);
    crossentropy_forward_tangent(yt, e->probs, xt, e->targets, e->nv, e->B, e->T, e->V, e->V);
}
static void ce_bwd_t(const OpCase *c, const double *x, const double *xt, const double *ybar,
                     const double *ybart, double *xbt) {
    const CeCtx *e = c->ctx;
    crossentropy_forward(e->tmp, e->probs, x, e->targets, e->nv, e->B, e->T, e->V, e->V);
    crossentropy_backward_tangent(xbt, e->probs, xt, e->targets, e->nv, ybar, ybart, e->B, e->T, e->V, e->V);
}
static void ce_bwd_t_wrong(const OpCase *c, const double *x, const double *xt, const double *ybar,
                           const double *ybart, double *xbt) {  /* drops the ṗ term */
    const CeCtx *e = c->ctx;
    crossentropy_forward(e->tmp, e->probs, x, e->targets, e->nv, e->B, e->T, e->V, e->V);
    crossentropy_backward_tangent(xbt, e->probs, NULL, e->targets, e->nv, ybar, ybart, e->B, e->T, e->V, e->V);
}

static void test_crossentropy(void) {
    enum { B = 3, T = 5, V = 11 };
    const int32_t NOT_READ = 1 << 30;  /* a target past n_valid: reading it would crash */
    int32_t targets[B * T] = {1, 4, 10, 0, 7, 2, 2, 9, NOT_READ, NOT_READ,
                              NOT_READ, NOT_READ, NOT_READ, NOT_READ, NOT_READ};
    int32_t nv[B] = {5, 3, 0};
    CeCtx e = {B, T, V, targets, nv, dalloc(B * T * V), dalloc(B)};
    OpCase cc = {.op = "crossentropy", .name = "crossentropy B3 T5 V11 n_valid{5,3,0}", .ctx = &e,
                .fwd = ce_fwd, .bwd = ce_bwd, .fwd_t = ce_fwd_t, .bwd_t = ce_bwd_t};
    OpCase *c = &cc;
    const char *names[] = {"logits"};
    int sizes[] = {B * T * V};
    set_blocks(c, 1, names, sizes);
    c->n_out = c->n_cot = B;
    double *x = dnormal(c->n_in, 2);
    c->x = x;
    /* forward vs naive */
    double y[B], worst = 0;
    ce_fwd(c, x, y);
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int t = 0; t < nv[b]; t++) {
            const double *l = x + (b * T + t) * V;
            double z = 0;
            for (int v = 0; v < V; v++) z += exp(l[v]);
            s += -log(exp(l[targets[b * T + t]]) / z);
        }
        worst = fmax(worst, fabs(y[b] - (nv[b] ? s / nv[b] : 0)));
    }
    TEST_CHECK(worst <= 1e-13 && y[2] == 0, "crossentropy forward vs naive: %.2e (n_valid 0 -> %g)", worst, y[2]);
    run_case(c);
    /* probs may alias logits */
    double *inplace = dalloc(c->n_in), y2[B];
    memcpy(inplace, x, (size_t)c->n_in * sizeof(double));
    crossentropy_forward(y2, inplace, inplace, targets, nv, B, T, V, V);
    ce_fwd(c, x, y);
    TEST_CHECK(!memcmp(y, y2, sizeof y) && !memcmp(inplace, e.probs, (size_t)c->n_in * sizeof(double)),
               "crossentropy: probs aliasing logits must give the same result");
    /* rows past n_valid receive nothing */
    double *xbar = dalloc(c->n_in), *xt = dnormal(c->n_in, 1), ybar[B] = {1, 2, 3};
    ce_bwd(c, x, ybar, xbar);
    ce_bwd_t(c, x, xt, ybar, ybar, xbar);
    int leak = 0;
    for (int b = 0; b < B; b++)
        for (int t = nv[b]; t < T; t++)
            for (int v = 0; v < V; v++) leak |= xbar[(b * T + t) * V + v] != 0;
    TEST_CHECK(!leak, "crossentropy: rows past n_valid must get exactly zero gradient");
    OpCase bad = *c;
    bad.name = "crossentropy bwd_t without the ṗ term";
    bad.bwd_t = ce_bwd_t_wrong;
    run_negative(&bad, "bwd_t");
    free(x); free(inplace); free(xbar); free(xt); free(e.probs); free(e.tmp);
}

/* ======================================================================================
 * meanpool, weights (rater-only: forward and backward)
 * ====================================================================================== */
typedef struct { int B, T, C; const int32_t *vl; } PoolCtx;
static void mp_fwd(const OpCase *c, const double *x, double *y) {
    const PoolCtx *p = c->ctx;
    meanpool_forward(y, x, p->vl, p->B, p->T, p->C);
}
static void mp_bwd(const OpCase *c, const double *x, const double *ybar, double *xbar) {
    const PoolCtx *p = c->ctx;
    meanpool_backward(xbar, ybar, p->vl, p->B, p->T, p->C);
}

static void test_meanpool(void) {
    int B = 3, T = 5, C = 8;
    int32_t vl[3] = {5, 2, 0};
    PoolCtx p = {B, T, C, vl};
    OpCase cc = {.op = "meanpool", .name = "meanpool B3 T5 C8 valid{5,2,0}", .ctx = &p,
                .fwd = mp_fwd, .bwd = mp_bwd};
    OpCase *c = &cc;
    const char *names[] = {"inp"};
    int sizes[] = {B * T * C};
    set_blocks(c, 1, names, sizes);
    c->n_out = c->n_cot = B * C;
    double *x = dnormal(c->n_in, 1);
    c->x = x;
    double y[24], worst = 0;
    mp_fwd(c, x, y);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < C; i++) {
            double s = 0;
            for (int t = 0; t < vl[b]; t++) s += x[(b * T + t) * C + i];
            worst = fmax(worst, fabs(y[b * C + i] - (vl[b] ? s / vl[b] : 0)));
        }
    TEST_CHECK(worst <= 1e-15, "meanpool forward vs naive: %.2e", worst);
    run_case(c);
    double *xbar = dalloc(c->n_in), *ybar = dnormal(B * C, 1);
    mp_bwd(c, x, ybar, xbar);
    int leak = 0;
    for (int b = 0; b < B; b++)
        for (int t = vl[b]; t < T; t++)
            for (int i = 0; i < C; i++) leak |= xbar[(b * T + t) * C + i] != 0;
    TEST_CHECK(!leak, "meanpool: padded positions must get exactly zero gradient");
    free(x); free(xbar); free(ybar);
}

typedef struct { int B; WeightNormConfig cfg, cfg_bwd; } WCtx;
static void w_fwd(const OpCase *c, const double *x, double *y) {
    const WCtx *w = c->ctx;
    weights_forward(y, x, &w->cfg, w->B);
}
static void w_bwd(const OpCase *c, const double *x, const double *ybar, double *xbar) {
    const WCtx *w = c->ctx;
    weights_backward(xbar, ybar, x, &w->cfg_bwd, w->B);
}

/* Sigmoid weights near 1 (z/τ = 20, 30, 36): dw/dz = σ(x)σ(−x)/τ must keep its relative
 * precision; 1 − s taken from s cancels (relative error ~1e-3 at 30, 0 above 36.7). */
static void test_weights_saturated(void) {
    WeightNormConfig cfg = {.kind = WEIGHT_NORM_SIGMOID, .tau = 0.5, .w_min = 0, .w_max = 1, .mean_normalize = 0};
    const double xs[3] = {20, 30, 36};
    real z[3], dw[3] = {1, 1, 1}, dz[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) z[i] = (real)(xs[i] * cfg.tau);
    weights_backward(dz, dw, z, &cfg, 3);
    double worst = 0;
    for (int i = 0; i < 3; i++) {
        double x = (double)z[i] / cfg.tau, e = exp(-x);
        double exact = e / ((1 + e) * (1 + e)) / cfg.tau;   /* σ(x)σ(−x)/τ, no cancellation */
        worst = fmax(worst, fabs(dz[i] - exact) / exact);
    }
    TEST_CHECK(worst <= 1e-12, "sigmoid weights backward at z/tau = 20, 30, 36: relative error %.2e", worst);
}

static void test_weights(int kind, int mean_normalize, int with_clamped) {
    enum { B = 6 };
    WCtx w = {B, {kind, 0.7, 0.05, 0.95, mean_normalize}, {0}};
    w.cfg_bwd = w.cfg;
    static char name[96];
    snprintf(name, sizeof name, "weights %s%s%s", kind == WEIGHT_NORM_SOFTMAX ? "softmax" : "sigmoid",
             mean_normalize ? " mean-normalized" : "", with_clamped ? " (2 clamped)" : "");
    OpCase cc = {.op = "weights", .name = name, .ctx = &w, .fwd = w_fwd, .bwd = w_bwd};
    OpCase *c = &cc;
    const char *names[] = {"z"};
    int sizes[] = {B};
    set_blocks(c, 1, names, sizes);
    c->n_out = c->n_cot = B;
    double z[B];
    /* sigmoid: s = σ(z/τ) in [0.18, 0.82], well inside (w_min, w_max); clamped: far outside */
    for (int i = 0; i < B; i++) z[i] = 0.7 * (-1.5 + 3 * urand());
    if (with_clamped) { z[1] = 4.0; z[4] = -3.0; }  /* σ(5.7) > 0.95, σ(−4.3) < 0.05 */
    c->x = z;
    double y[B], raw[B], S = 0;
    w_fwd(c, z, y);
    for (int i = 0; i < B; i++) {
        if (kind == WEIGHT_NORM_SOFTMAX) raw[i] = exp(z[i] / 0.7);
        else raw[i] = fmin(fmax(1 / (1 + exp(-z[i] / 0.7)), 0.05), 0.95);
    }
    double zs = 0;
    for (int i = 0; i < B; i++) zs += raw[i];
    if (kind == WEIGHT_NORM_SOFTMAX) for (int i = 0; i < B; i++) raw[i] *= B / zs;
    for (int i = 0; i < B; i++) S += raw[i];
    double worst = 0;
    for (int i = 0; i < B; i++) worst = fmax(worst, fabs(y[i] - (mean_normalize ? raw[i] * B / S : raw[i])));
    TEST_CHECK(worst <= 1e-14, "%s: forward vs naive %.2e", name, worst);
    if (mean_normalize) TEST_CHECK(fabs(dot(y, (double[B]){1, 1, 1, 1, 1, 1}, B) - B) <= 1e-13, "%s: mean must be 1", name);
    run_case(c);
    if (with_clamped) {
        double dz[B] = {0}, dw[B] = {1, 1, 1, 1, 1, 1};
        WeightNormConfig plain = w.cfg;
        plain.mean_normalize = 0;
        weights_backward(dz, dw, z, &plain, B);
        TEST_CHECK(dz[1] == 0 && dz[4] == 0 && dz[0] != 0, "%s: clamped entries must get exactly 0 (%g %g)",
                   name, dz[1], dz[4]);
    }
    {
        OpCase bad = *c;
        static char bname[128];
        WCtx wb = w;
        bad.ctx = &wb;
        snprintf(bname, sizeof bname, "%s, backward with tau 0.71", name);
        bad.name = bname;
        wb.cfg_bwd.tau = 0.71;
        run_negative(&bad, "bwd");
        if (mean_normalize && kind == WEIGHT_NORM_SIGMOID) {
            /* (for softmax, Σw = B already: the normalization's Jacobian is the identity) */
            snprintf(bname, sizeof bname, "%s, backward without normalization", name);
            wb = w;
            wb.cfg_bwd.mean_normalize = 0;
            run_negative(&bad, "bwd");
        }
    }
}

/* ======================================================================================
 * optimizers: backward = transpose of the update's Jacobian w.r.t. (θ, state, ĝ)
 * ====================================================================================== */
typedef struct { int n; AdamWHyper h, h_bwd; double g_scale; double *dth, *dm, *dv, *dg; } AdamCtx;

static void ad_fwd(const OpCase *c, const double *x, double *y) {
    const AdamCtx *a = c->ctx;
    int n = a->n;
    memcpy(y, BLK(x, 0), n * sizeof(double));
    memcpy(y + n, BLK(x, 1), n * sizeof(double));
    memcpy(y + 2 * n, BLK(x, 2), n * sizeof(double));
    adamw_forward(y, y + n, y + 2 * n, BLK(x, 3), a->g_scale, (size_t)n, &a->h);
}
static void ad_bwd(const OpCase *c, const double *x, const double *ybar, double *xbar) {
    const AdamCtx *a = c->ctx;
    int n = a->n;
    memcpy(a->dth, ybar, n * sizeof(double));
    memcpy(a->dm, ybar + n, n * sizeof(double));
    memcpy(a->dv, ybar + 2 * n, n * sizeof(double));
    adamw_backward(a->dth, a->dm, a->dv, a->dg, BLK(x, 1), BLK(x, 2), BLK(x, 3), a->g_scale,
                   (size_t)n, &a->h_bwd);
    for (int i = 0; i < n; i++) {
        BLK(xbar, 0)[i] += a->dth[i];
        BLK(xbar, 1)[i] += a->dm[i];
        BLK(xbar, 2)[i] += a->dv[i];
        BLK(xbar, 3)[i] += a->g_scale * a->dg[i];  /* ĝ = g_scale·g */
    }
}

/* kind 0: a general step (k = 7, all v > 0); 1: the first step (k = 1, m = v = 0);
 * 2: k = 5 with v = 0 entries (g = 0 there, never-touched parameters); 3: the same data,
 * moving m at the v = 0 entries too (their huge −lr/eps term). */
static void test_adamw(int kind) {
    enum { N = 12 };
    AdamCtx a = {N, {0.05, 0.9, 0.95, 1e-8, 0.1, 7}, {0.05, 0.9, 0.95, 1e-8, 0.1, 7}, 0.7,
                 dalloc(N), dalloc(N), dalloc(N), dalloc(N)};
    static const char *names_k[] = {"adamw k=7", "adamw k=1 (m=v=0), eps 0.1", "adamw k=5 with v=0 entries",
                                    "adamw k=5, v=0 entries, moving m there", "adamw k=1 (m=v=0), eps 1e-8"};
    if (kind == 1 || kind == 4) a.h.step = 1;
    if (kind == 1) a.h.eps = 0.1;  /* makes θ's own dependence on ĝ at step 1 (∝ eps) visible */
    if (kind == 2 || kind == 3) a.h.step = 5;
    a.h_bwd = a.h;
    OpCase cc = {.op = "adamw", .name = names_k[kind], .ctx = &a, .fwd = ad_fwd, .bwd = ad_bwd,
                .bwd_overwrites = 1, .h = 1e-4};
    OpCase *c = &cc;
    const char *names[] = {"theta", "m", "v", "g"};
    int sizes[] = {N, N, N, N};
    set_blocks(c, 4, names, sizes);
    c->n_out = c->n_cot = 3 * N;
    double *x = dalloc(c->n_in);
    unsigned char frozen[4 * N] = {0};
    for (int i = 0; i < N; i++) {
        BLK(x, 0)[i] = nrand();
        BLK(x, 1)[i] = 0.3 * nrand();
        BLK(x, 2)[i] = 0.5 + urand();
        BLK(x, 3)[i] = (urand() < 0.5 ? -1 : 1) * (0.5 + 1.5 * urand());
        if (kind == 1 || kind == 4 || ((kind == 2 || kind == 3) && i % 4 == 3)) {
            /* v0 = 0 but ĝ ≠ 0: v1 = (1−β2)ĝ² > 0; |g| in [2, 4] keeps v1 well above the FD step */
            BLK(x, 2)[i] = 0;
            BLK(x, 3)[i] = (urand() < 0.5 ? -1 : 1) * (2 + 2 * urand());
            if (kind == 1 || kind == 4) BLK(x, 1)[i] = 0;
        }
        if ((kind == 2 || kind == 3) && i % 4 == 1) {  /* v = 0, g = 0, m = 0: the sqrt(v) kink */
            BLK(x, 1)[i] = BLK(x, 2)[i] = BLK(x, 3)[i] = 0;
            frozen[c->off[2] + i] = frozen[c->off[3] + i] = 1;
            if (kind == 2) frozen[c->off[1] + i] = 1;
        }
    }
    c->frozen = frozen;
    c->x = x;
    /* forward vs a naive transcription of torch.optim.AdamW */
    double y[3 * N], worst = 0;
    ad_fwd(c, x, y);
    for (int i = 0; i < N; i++) {
        const AdamWHyper *h = &a.h;
        double g = a.g_scale * BLK(x, 3)[i];
        double th = BLK(x, 0)[i] * (1 - h->lr * h->weight_decay);
        double m = h->beta1 * BLK(x, 1)[i] + (1 - h->beta1) * g;
        double v = h->beta2 * BLK(x, 2)[i] + (1 - h->beta2) * g * g;
        double mhat = m / (1 - pow(h->beta1, h->step)), vhat = v / (1 - pow(h->beta2, h->step));
        th -= h->lr * mhat / (sqrt(vhat) + h->eps);
        worst = fmax(worst, fabs(y[i] - th) + fabs(y[N + i] - m) + fabs(y[2 * N + i] - v));
    }
    TEST_CHECK(worst <= 1e-14, "%s: forward vs naive %.2e", c->name, worst);
    run_case(c);
    /* finite everywhere, and at v = 0 entries exactly the closed form with the 0·∞ term 0 */
    if (kind == 2 || kind == 3) {
        double *ybar = dnormal(3 * N, 1), *xbar = dalloc(c->n_in);
        ad_bwd(c, x, ybar, xbar);
        int finite = 1;
        for (int i = 0; i < c->n_in; i++) finite &= isfinite(xbar[i]);
        TEST_CHECK(finite, "%s: backward must be finite where v = 0", c->name);
        const AdamWHyper *h = &a.h;
        double ss = h->lr / (1 - pow(h->beta1, h->step));
        for (int i = 1; i < N; i += 4) {
            double mbar = ybar[N + i] - ss / h->eps * ybar[i];
            TEST_CHECK(xbar[i] == (1 - h->lr * h->weight_decay) * ybar[i] &&
                       fabs(BLK(xbar, 1)[i] - h->beta1 * mbar) <= 1e-15 * fabs(mbar) &&
                       BLK(xbar, 2)[i] == h->beta2 * ybar[2 * N + i] &&
                       fabs(BLK(xbar, 3)[i] - a.g_scale * (1 - h->beta1) * mbar) <= 1e-15 * fabs(mbar),
                       "%s: entry %d with v = 0 differs from the closed form", c->name, i);
        }
        free(ybar); free(xbar);
    }
    if (kind == 0) {
        OpCase bad = *c;
        AdamCtx ab = a;
        ab.h_bwd.step = a.h.step + 1;   /* wrong bias correction in the reverse */
        bad.ctx = &ab;
        bad.name = "adamw backward with the wrong step";
        run_negative(&bad, "bwd");
        ab = a;
        ab.h_bwd.eps = 1e-3;            /* wrong denominator */
        bad.name = "adamw backward with the wrong eps";
        run_negative(&bad, "bwd");
    }
    free(x); free(a.dth); free(a.dm); free(a.dv); free(a.dg);
}

typedef struct { int n; SGDHyper h, h_bwd; double g_scale; double *dth, *db, *dg; } SgdCtx;
static void sg_fwd(const OpCase *c, const double *x, double *y) {
    const SgdCtx *s = c->ctx;
    memcpy(y, BLK(x, 0), s->n * sizeof(double));
    memcpy(y + s->n, BLK(x, 1), s->n * sizeof(double));
    sgd_forward(y, y + s->n, BLK(x, 2), s->g_scale, (size_t)s->n, &s->h);
}
static void sg_bwd(const OpCase *c, const double *x, const double *ybar, double *xbar) {
    const SgdCtx *s = c->ctx;
    memcpy(s->dth, ybar, s->n * sizeof(double));
    memcpy(s->db, ybar + s->n, s->n * sizeof(double));
    sgd_backward(s->dth, s->db, s->dg, (size_t)s->n, &s->h_bwd);
    for (int i = 0; i < s->n; i++) {
        BLK(xbar, 0)[i] += s->dth[i];
        BLK(xbar, 1)[i] += s->db[i];
        BLK(xbar, 2)[i] += s->g_scale * s->dg[i];
    }
}

static void test_sgd(double momentum) {
    enum { N = 10 };
    SgdCtx s = {N, {0.1, momentum, 0.01}, {0.1, momentum, 0.01}, 0.6, dalloc(N), dalloc(N), dalloc(N)};
    s.h_bwd = s.h;
    OpCase cc = {.op = "sgd", .name = momentum ? "sgd momentum 0.9 wd 0.01" : "sgd momentum 0 wd 0.01",
                .ctx = &s, .fwd = sg_fwd, .bwd = sg_bwd, .bwd_overwrites = 1};
    OpCase *c = &cc;
    const char *names[] = {"theta", "buf", "g"};
    int sizes[] = {N, N, N};
    set_blocks(c, 3, names, sizes);
    c->n_out = c->n_cot = 2 * N;
    double *x = dnormal(c->n_in, 1);
    c->x = x;
    /* three steps against torch.optim.SGD's loop (first step: buf = d) */
    double th[N], buf[N], ref[N], rbuf[N];
    memcpy(th, x, sizeof th);
    memcpy(ref, x, sizeof ref);
    memset(buf, 0, sizeof buf);
    for (int k = 0; k < 3; k++) {
        sgd_forward(th, buf, BLK(x, 2), s.g_scale, N, &s.h);
        for (int i = 0; i < N; i++) {
            double d = s.g_scale * BLK(x, 2)[i] + 0.01 * ref[i];
            if (momentum) { rbuf[i] = k == 0 ? d : momentum * rbuf[i] + d; d = rbuf[i]; }
            ref[i] -= 0.1 * d;
        }
    }
    TEST_CHECK(rel_vector(th, ref, N) <= 1e-14, "%s: three steps vs torch's loop", c->name);
    run_case(c);
    if (momentum) {
        OpCase bad = *c;
        SgdCtx sb = s;
        sb.h_bwd.weight_decay = 0;
        bad.ctx = &sb;
        bad.name = "sgd backward ignoring weight decay";
        run_negative(&bad, "bwd");
    }
    free(x); free(s.dth); free(s.db); free(s.dg);
}

/* ======================================================================================
 * vectors, backend table
 * ====================================================================================== */
static void test_vec_and_backend(void) {
    size_t n = 100003;
    double *a = dnormal(n, 1), *b = dnormal(n, 1), *y = dalloc(n);
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) { d += a[i] * b[i]; s += a[i] * a[i]; }
    TEST_CHECK(fabs(vec_dot(a, b, n) - d) <= 1e-12 * s, "vec_dot");
    TEST_CHECK(fabs(vec_sumsq(a, n) - s) <= 1e-12 * s, "vec_sumsq");
    TEST_CHECK(vec_dot(a, b, n) == vec_dot(a, b, n), "vec_dot must be deterministic");
    vec_copy(y, a, n);
    vec_axpy(y, 2.5, b, n);
    vec_scale(y, -0.5, n);
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(y[i] - -0.5 * (a[i] + 2.5 * b[i])));
    TEST_CHECK(worst <= 1e-15, "vec_copy/axpy/scale");
    TEST_CHECK(vec_all_finite(y, n), "vec_all_finite on finite data");
    y[n - 7] = INFINITY;
    TEST_CHECK(!vec_all_finite(y, n), "vec_all_finite must see inf");
    y[n - 7] = NAN;
    TEST_CHECK(!vec_all_finite(y, n), "vec_all_finite must see NaN");
    vec_zero(y, n);
    TEST_CHECK(maxabs(y, n) == 0, "vec_zero");

    const Backend *be = backend_select("cpu");
    TEST_CHECK(be == &backend_cpu && backend_select("auto") == &backend_cpu, "backend_select cpu/auto");
    TEST_CHECK(backend_select("cuda") == NULL && strstr(dr_lasterr(), "no CUDA backend"),
               "backend_select cuda: %s", dr_lasterr());
    TEST_CHECK(backend_select("tpu") == NULL, "backend_select of an unknown device must fail");
    const void *const *fn = (const void *const *)&backend_cpu.alloc;
    const void *const *end = (const void *const *)(&backend_cpu.weights_backward + 1);
    int missing = 0;
    for (; fn < end; fn++) missing += *fn == NULL;
    TEST_CHECK(missing == 0, "backend_cpu: %d NULL function pointers", missing);
    unsigned char *p = be->alloc(1000);
    int nz = 0;
    for (int i = 0; i < 1000; i++) nz |= p[i];
    TEST_CHECK(!nz && ((uintptr_t)p % 64) == 0, "alloc must be zeroed and 64-byte aligned");
    be->free(p);
    free(a); free(b); free(y);
}

/* ---- row strides (backend.h: ldo, ldv) ------------------------------------------------ */

/* x [rows, cols] copied into rows ld apart, the pads NaN (an op that reads one shows it) */
static double *to_strided(const double *x, int rows, int cols, int ld) {
    double *s = dalloc((size_t)rows * ld);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < ld; c++) s[(size_t)r * ld + c] = c < cols ? x[(size_t)r * cols + c] : NAN;
    return s;
}

/* the strided s holds the bits of the dense d in its columns < cols, and NaN pads */
static void check_strided(const char *what, const double *d, const double *s, int rows, int cols,
                          int ld) {
    size_t differ = 0, pads = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < ld; c++) {
            const double v = s[(size_t)r * ld + c];
            if (c >= cols) pads += !isnan(v);
            else differ += memcmp(&v, &d[(size_t)r * cols + c], sizeof v) != 0;
        }
    TEST_CHECK(differ == 0 && pads == 0, "%s: %zu elements differ from the dense op's bits, "
               "%zu pads touched", what, differ, pads);
}

static void check_same(const char *what, const double *a, const double *b, size_t n) {
    TEST_CHECK(memcmp(a, b, n * sizeof *a) == 0, "%s: not the dense op's bits", what);
}

/* Every face of matmul with out-side rows ldo > OC apart, and of the cross-entropy with
 * rows ldv > V apart, gives the dense op's bits and leaves the pads alone (the CPU writes
 * none; the NaN there shows any read). */
static void test_row_strides(void) {
    char w[128];
    for (int layout = 0; layout < 2; layout++) {
        enum { N = 10, C = 8, OC = 11, LD = 16 };
        const char *lay = layout ? "W[OC,C]" : "W[C,OC]";
        double *inp = dnormal(N * C, 1), *wt = dnormal(C * OC, 1), *b = dnormal(OC, 1);
        double *tinp = dnormal(N * C, 1), *tw = dnormal(C * OC, 1), *tb = dnormal(OC, 1);
        double *dout = dnormal(N * OC, 1), *dtout = dnormal(N * OC, 1);
        double *dout_s = to_strided(dout, N, OC, LD), *dtout_s = to_strided(dtout, N, OC, LD);
        double *o = dalloc(N * OC), *os = to_strided(o, N, OC, LD);
        matmul_forward(o, inp, wt, b, N, C, OC, layout, OC);
        matmul_forward(os, inp, wt, b, N, C, OC, layout, LD);
        snprintf(w, sizeof w, "matmul_forward %s, rows %d apart", lay, LD);
        check_strided(w, o, os, N, OC, LD);
        matmul_forward_tangent(o, inp, tinp, wt, tw, tb, N, C, OC, layout, OC);
        matmul_forward_tangent(os, inp, tinp, wt, tw, tb, N, C, OC, layout, LD);
        snprintf(w, sizeof w, "matmul_forward_tangent %s, rows %d apart", lay, LD);
        check_strided(w, o, os, N, OC, LD);
        double *g[2][3];   /* dense, strided: dinp, dw, db (then their tangents) */
        for (int k = 0; k < 2; k++) {
            g[k][0] = dalloc(N * C); g[k][1] = dalloc(C * OC); g[k][2] = dalloc(OC);
            matmul_backward(g[k][0], g[k][1], g[k][2], k ? dout_s : dout, inp, wt, N, C, OC,
                            layout, k ? LD : OC);
        }
        snprintf(w, sizeof w, "matmul_backward %s, dout rows %d apart", lay, LD);
        check_same(w, g[0][0], g[1][0], N * C);
        check_same(w, g[0][1], g[1][1], C * OC);
        check_same(w, g[0][2], g[1][2], OC);
        for (int k = 0; k < 2; k++)
            matmul_backward_tangent(g[k][0], g[k][1], g[k][2], k ? dout_s : dout, k ? dtout_s : dtout,
                                    inp, tinp, wt, tw, N, C, OC, layout, k ? LD : OC);
        snprintf(w, sizeof w, "matmul_backward_tangent %s, dout, dtout rows %d apart", lay, LD);
        check_same(w, g[0][0], g[1][0], N * C);
        check_same(w, g[0][1], g[1][1], C * OC);
        check_same(w, g[0][2], g[1][2], OC);
        for (int k = 0; k < 2; k++) for (int i = 0; i < 3; i++) free(g[k][i]);
        double *fr[] = { inp, wt, b, tinp, tw, tb, dout, dtout, dout_s, dtout_s, o, os };
        for (size_t i = 0; i < sizeof fr / sizeof *fr; i++) free(fr[i]);
    }
    {
        enum { B = 2, T = 3, V = 7, LD = 12, R = B * T };
        int32_t tg[R] = { 1, 6, 0, 3, 3, 1 << 30 /* past n_valid: never read */ }, nv[B] = { 3, 2 };
        double *lg = dnormal(R * V, 2), *tl = dnormal(R * V, 1), *dl = dnormal(B, 1);
        double *dtl = dnormal(B, 1), *acc = dnormal(R * V, 1);
        double *lg_s = to_strided(lg, R, V, LD), *tl_s = to_strided(tl, R, V, LD);
        double l[2][B], *p = dalloc(R * V), *p_s = to_strided(p, R, V, LD);
        crossentropy_forward(l[0], p, lg, tg, nv, B, T, V, V);
        crossentropy_forward(l[1], p_s, lg_s, tg, nv, B, T, V, LD);
        check_strided("crossentropy_forward probs, rows 12 apart", p, p_s, R, V, LD);
        check_same("crossentropy_forward losses, rows 12 apart", l[0], l[1], B);
        crossentropy_forward(l[1], NULL, lg_s, tg, nv, B, T, V, LD);
        check_same("crossentropy_forward losses (probs NULL), rows 12 apart", l[0], l[1], B);
        crossentropy_forward_tangent(l[0], p, tl, tg, nv, B, T, V, V);
        crossentropy_forward_tangent(l[1], p_s, tl_s, tg, nv, B, T, V, LD);
        check_same("crossentropy_forward_tangent, rows 12 apart", l[0], l[1], B);
        double *d = dalloc(R * V), *d_s;
        memcpy(d, acc, R * V * sizeof *d);
        d_s = to_strided(acc, R, V, LD);
        crossentropy_backward(d, p, tg, nv, dl, B, T, V, V);
        crossentropy_backward(d_s, p_s, tg, nv, dl, B, T, V, LD);
        check_strided("crossentropy_backward, rows 12 apart", d, d_s, R, V, LD);
        for (int k = 0; k < 2; k++) {   /* backward_tangent with and without dtlosses */
            memcpy(d, acc, R * V * sizeof *d);
            free(d_s);
            d_s = to_strided(acc, R, V, LD);
            crossentropy_backward_tangent(d, p, tl, tg, nv, dl, k ? dtl : NULL, B, T, V, V);
            crossentropy_backward_tangent(d_s, p_s, tl_s, tg, nv, dl, k ? dtl : NULL, B, T, V, LD);
            check_strided("crossentropy_backward_tangent, rows 12 apart", d, d_s, R, V, LD);
        }
        for (int k = 0; k < 2; k++) {   /* in place, over the probabilities and the logits */
            const double *src = k ? lg : p;
            memcpy(d, src, R * V * sizeof *d);
            free(d_s);
            d_s = to_strided(src, R, V, LD);
            crossentropy_backward_in_place(d, NULL, k, tg, nv, dl, B, T, V, V);
            crossentropy_backward_in_place(d_s, k ? l[1] : NULL, k, tg, nv, dl, B, T, V, LD);
            snprintf(w, sizeof w, "crossentropy_backward_in_place from %s, rows 12 apart",
                     k ? "logits" : "probs");
            check_strided(w, d, d_s, R, V, LD);
            if (k) {   /* the forward's losses on the way */
                crossentropy_forward(l[0], NULL, lg, tg, nv, B, T, V, V);
                check_same("crossentropy_backward_in_place's losses, rows 12 apart", l[0], l[1], B);
            }
        }
        memcpy(d, tl, R * V * sizeof *d);
        free(d_s);
        d_s = to_strided(tl, R, V, LD);
        crossentropy_backward_tangent_in_place(d, p, tg, nv, dl, dtl, B, T, V, V);
        crossentropy_backward_tangent_in_place(d_s, p_s, tg, nv, dl, dtl, B, T, V, LD);
        check_strided("crossentropy_backward_tangent_in_place, rows 12 apart", d, d_s, R, V, LD);
        double *fr[] = { lg, tl, dl, dtl, acc, lg_s, tl_s, p, p_s, d, d_s };
        for (size_t i = 0; i < sizeof fr / sizeof *fr; i++) free(fr[i]);
    }
    printf("  row strides: matmul (ldo 16 for OC 11) and cross-entropy (ldv 12 for V 7): "
           "the dense bits, pads untouched\n");
}

int main(void) {
    printf("finite-difference checks, rel err = |a-fd|/max(|a|,|fd|,%g) <= %g, 5-point stencil h=1e-3\n",
           FLOOR, TOL);
    test_vec_and_backend();
    test_matmul(10, 8, 6, MATMUL_W_C_OC, 1);
    test_matmul(10, 8, 6, MATMUL_W_C_OC, 0);
    test_matmul(10, 8, 11, MATMUL_W_OC_C, 0);
    test_matmul(80, 64, 72, MATMUL_W_C_OC, 1);    /* large enough for the threaded GEMM split */
    test_matmul(80, 64, 72, MATMUL_W_OC_C, 0);
    test_layernorm(10, 8);
    {
        static const int32_t vl_a[3] = {5, 3, 1}, vl_b[3] = {2, 0, 5}, vl_c[3] = {150, 97, 64};
        test_attention(2, 5, 8, 2, NULL, 1, "attention causal B2 T5 C8 NH2");
        test_attention(2, 5, 8, 2, NULL, 0, "attention bidirectional B2 T5 C8 NH2");
        test_attention(3, 5, 8, 2, vl_a, 1, "attention causal valid{5,3,1}");
        test_attention(3, 5, 8, 2, vl_a, 0, "attention bidirectional valid{5,3,1}");
        test_attention(3, 5, 8, 2, vl_b, 1, "attention causal valid{2,0,5}");
        test_attention(3, 5, 8, 2, vl_b, 0, "attention bidirectional valid{2,0,5}");
        test_attention(2, 7, 12, 3, NULL, 1, "attention causal B2 T7 C12 NH3");
        /* longer than one causal row block (64): blocks of rows against growing key ranges */
        test_attention(2, 130, 8, 2, NULL, 1, "attention causal T130 (3 row blocks)");
        test_attention(3, 150, 8, 2, vl_c, 1, "attention causal T150 valid{150,97,64}");
        test_attention(3, 150, 8, 2, vl_c, 0, "attention bidirectional T150 valid{150,97,64}");
    }
    test_gelu();
    test_residual();
    test_embedding();
    test_crossentropy();
    test_row_strides();
    test_meanpool();
    test_weights(WEIGHT_NORM_SIGMOID, 0, 0);
    test_weights(WEIGHT_NORM_SIGMOID, 1, 0);
    test_weights(WEIGHT_NORM_SIGMOID, 0, 1);
    test_weights(WEIGHT_NORM_SIGMOID, 1, 1);
    test_weights(WEIGHT_NORM_SOFTMAX, 0, 0);
    test_weights(WEIGHT_NORM_SOFTMAX, 1, 0);
    test_weights_saturated();
    for (int k = 0; k < 5; k++) test_adamw(k);
    test_sgd(0.9);
    test_sgd(0);

    printf("\nmax relative error per op (bwd / fwd_t / bwd_t):\n");
    for (int i = 0; i < n_summary; i++)
        if (summary[i].has_t)
            printf("  %-14s %.1e  %.1e  %.1e\n", summary[i].op, summary[i].bwd, summary[i].fwd_t, summary[i].bwd_t);
        else
            printf("  %-14s %.1e  (no tangent faces)\n", summary[i].op, summary[i].bwd);
    return test_finish("test_ops");
}
