/* test_lm.c — finite-difference checks of the whole LM (double build, -DDR_DOUBLE):
 *   1. lm_backward's gradient of L = Σ c_i ℓ_i along a random direction supported on
 *      each tensor in turn, against the 5-point central difference of L;
 *   2. lm_forward_over_reverse along u (u random over all parameters, then u supported
 *      on each tensor in turn):
 *      - H·u: ⟨v, H u⟩ against the 5-point difference of ⟨v, ∇L(θ + h u)⟩ (∇L from
 *        lm_backward), with v random over all parameters and, for u over all, v
 *        supported on each tensor in turn;
 *      - d_i = ⟨∇ℓ_i, u⟩ against the 5-point difference of ℓ_i;
 *      - its losses and gradient equal lm_forward's / lm_backward's, and without the
 *        gradient (grads NULL) it gives the same H·u and d_i;
 *   3. padding inputs (t ≥ n_valid) change neither the losses nor the gradient;
 *   4. activation checkpointing (lm.checkpointing, 3 layers) gives the same bits for the
 *      losses, the gradient, H·u and d_i, in less activation memory;
 *   5. the head in chunks of examples (lm.head_chunk 1 and 2 of B = 3) gives the unchunked
 *      losses, d_i, gradient and H·u (to 1e-13: the wte sums are added in another order);
 *   6. the activation tape (lm_backward_record + lm_forward_over_reverse_replay) gives
 *      the bits of lm_backward and lm_forward_over_reverse;
 *   0. first of all, the losses equal those of a naive, loop-by-loop GPT-2 written in this
 *      file from Hugging Face's modeling_gpt2 (q|k|v split, head h on channels
 *      [h·hs, (h+1)·hs), scale 1/sqrt(hs), gelu_new, LN eps 1e-5, tied head): the
 *      derivative checks prove self-consistency, this one that the function is GPT-2's.
 * Micro model: 2 layers, d 8, 2 heads, d_ff 32, vocab 13, ctx 8; batch B 3, T 6 with
 * n_valid {6, 3, 1}, run inside activations allocated for 4×8 (the trimmed-batch path).
 * Parameters are the DESIGN init plus noise of std 0.3 so that every nonlinearity is
 * exercised (biases ≠ 0, LN weights ≠ 1, attention far from uniform).
 *
 * Tolerance rule: rel(a, b) = |a − b| / max(|a|, |b|) ≤ 1e-6 for every compared number
 * (test_rel_err). The 5-point stencil (f(−2h) − 8f(−h) + 8f(h) − f(2h))/(12h) has
 * truncation error O(h⁴) and rounding error ~ε|f|/h. Directions are not normalized
 * (entries ~ N(0,1)), and h = 3e-4 balances the two: measured worst cases are about 3e-9
 * (h = 1e-3 gives 3e-7, h = 3e-3 fails with 3e-5: the h⁴ law, so the stencil and not the
 * code limits the agreement). 1e-6 leaves two to three orders of margin yet catches any
 * missing or wrong term (a wrong term is an O(1) relative error of its tensor's number).
 * Numbers compared are never structurally zero (each direction is random over a whole
 * tensor), so every check can fail.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "lm.h"
#include "test.h"

#define TOL 1e-6
#ifndef H
#define H 3e-4
#endif

static const Backend *be = &backend_cpu;
static LMConfig cfg = { .n_layer = 2, .d_model = 8, .n_head = 2, .d_ff = 32, .vocab = 13,
                        .ctx = 8, .init_std = 0.02 };
enum { B = 3, T = 6 };
static int32_t inputs[B * T], targets[B * T], n_valid[B] = { 6, 3, 1 };
static real c[B] = { 0.7, -0.4, 1.3 };   /* L = Σ c_i ℓ_i: signs and sizes differ */
static size_t NP;
static LMActs *acts;
static real *grad_tmp;                   /* scratch gradient buffer */

/* a random direction: normal over tensor `k` only (k < 0: over every tensor) */
static void direction(real *d, const ParamInfo *tab, int k, uint64_t seed) {
    be->vec_zero(d, NP);
    for (size_t j = 0; j < NP; j++) {
        int inside = 1;
        if (k >= 0) inside = j >= tab[k].offset && j < tab[k].offset + tab[k].numel;
        if (inside) d[j] = (real)dr_normal(seed, j);
    }
}

/* ℓ at θ + s·dir (losses out) and, if g != NULL, g = ∇θ Σ c_i ℓ_i there */
static void eval_at(const real *theta, const real *dir, double s, real *losses, real *g) {
    real *p = be->alloc(NP * sizeof(real));
    be->vec_copy(p, theta, NP);
    be->vec_axpy(p, s, dir, NP);
    lm_forward(be, &cfg, p, acts, inputs, targets, n_valid, B, T, losses);
    if (g) {
        be->vec_zero(g, NP);
        lm_backward(be, &cfg, p, acts, c, g);
    }
    be->free(p);
}

static double weighted_loss(const real *losses) {
    double L = 0;
    for (int i = 0; i < B; i++) L += c[i] * losses[i];
    return L;
}

static double stencil(double fm2, double fm1, double fp1, double fp2) {
    return (fm2 - 8 * fm1 + 8 * fp1 - fp2) / (12 * H);
}


/* ---- naive GPT-2 (Hugging Face modeling_gpt2, eval mode), one example at a time ---- */
static void ref_layernorm(double *y, const double *x, const real *w, const real *b, int C) {
    double mu = 0, var = 0;
    for (int c = 0; c < C; c++) mu += x[c];
    mu /= C;
    for (int c = 0; c < C; c++) var += (x[c] - mu) * (x[c] - mu);
    var /= C;
    for (int c = 0; c < C; c++) y[c] = (x[c] - mu) / sqrt(var + 1e-5) * w[c] + b[c];
}
/* y[OC] = x[IC] @ W[IC,OC] + b */
static void ref_linear(double *y, const double *x, const real *W, const real *b, int IC, int OC) {
    for (int o = 0; o < OC; o++) {
        double s = b ? b[o] : 0;
        for (int i = 0; i < IC; i++) s += x[i] * W[(size_t)i * OC + o];
        y[o] = s;
    }
}
static double ref_gelu_new(double x) {
    return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}
static double ref_loss(const real *theta, const int32_t *in, const int32_t *tg, int n) {
    LMParams P;
    lm_point_params(&P, (real *)theta, &cfg);
    const int C = cfg.d_model, F = cfg.d_ff, NH = cfg.n_head, hs = C / NH, V = cfg.vocab;
    double x[T][64], h[T][64], qkv[T][3 * 64], y[T][64], f[256], o[64];
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) x[t][c] = P.wte[(size_t)in[t] * C + c] + P.wpe[(size_t)t * C + c];
    for (int l = 0; l < cfg.n_layer; l++) {
        for (int t = 0; t < T; t++) {
            ref_layernorm(h[t], x[t], P.ln1_w[l], P.ln1_b[l], C);
            ref_linear(qkv[t], h[t], P.qkv_w[l], P.qkv_b[l], C, 3 * C);
        }
        for (int t = 0; t < T; t++)
            for (int hd = 0; hd < NH; hd++) {
                double sc[T], mx = -1e300, z = 0;
                for (int j = 0; j <= t; j++) {
                    double d = 0;
                    for (int e = 0; e < hs; e++) d += qkv[t][hd * hs + e] * qkv[j][C + hd * hs + e];
                    sc[j] = d / sqrt((double)hs);
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int j = 0; j <= t; j++) z += (sc[j] = exp(sc[j] - mx));
                for (int e = 0; e < hs; e++) {
                    double acc = 0;
                    for (int j = 0; j <= t; j++) acc += sc[j] / z * qkv[j][2 * C + hd * hs + e];
                    y[t][hd * hs + e] = acc;
                }
            }
        for (int t = 0; t < T; t++) {
            ref_linear(o, y[t], P.attn_proj_w[l], P.attn_proj_b[l], C, C);
            for (int c = 0; c < C; c++) x[t][c] += o[c];
            ref_layernorm(h[t], x[t], P.ln2_w[l], P.ln2_b[l], C);
            ref_linear(f, h[t], P.fc_w[l], P.fc_b[l], C, F);
            for (int k = 0; k < F; k++) f[k] = ref_gelu_new(f[k]);
            ref_linear(o, f, P.fc_proj_w[l], P.fc_proj_b[l], F, C);
            for (int c = 0; c < C; c++) x[t][c] += o[c];
        }
    }
    double loss = 0;
    for (int t = 0; t < n; t++) {
        ref_layernorm(h[t], x[t], P.lnf_w, P.lnf_b, C);
        double logit[64], mx = -1e300, z = 0;
        for (int v = 0; v < V; v++) {
            logit[v] = 0;
            for (int c = 0; c < C; c++) logit[v] += h[t][c] * P.wte[(size_t)v * C + c];
            if (logit[v] > mx) mx = logit[v];
        }
        for (int v = 0; v < V; v++) z += exp(logit[v] - mx);
        loss += -(logit[tg[t]] - mx - log(z));
    }
    return n ? loss / n : 0;
}

static double max_grad_err, max_hvp_err, max_dir_err;

int main(void) {
    CHECK(lm_config_check(&cfg) == 0, "%s", dr_lasterr());
    NP = lm_num_params(&cfg);
    int NT = lm_num_tensors(&cfg);
    ParamInfo *tab = xmalloc((size_t)NT * sizeof *tab);
    lm_param_table(&cfg, tab);

    /* batch: random tokens; padding inputs are id 0, padding targets garbage (ignored) */
    uint64_t s = 7;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int i = b * T + t;
            inputs[i] = t < n_valid[b] ? (int32_t)((s = s * 6364136223846793005ULL + 1) >> 33) % cfg.vocab : 0;
            targets[i] = t < n_valid[b] ? (int32_t)((s = s * 6364136223846793005ULL + 1) >> 33) % cfg.vocab : -1;
        }

    real *theta = be->alloc(NP * sizeof(real)), *noise = be->alloc(NP * sizeof(real));
    lm_init_params(be, &cfg, theta, 1234);
    direction(noise, tab, -1, 99);
    be->vec_axpy(theta, 0.3, noise, NP);

    acts = lm_acts_new(be, &cfg, B + 1, T + 2, 1);
    grad_tmp = be->alloc(NP * sizeof(real));
    real *g0 = be->alloc(NP * sizeof(real)), *dir = be->alloc(NP * sizeof(real));
    real *v = be->alloc(NP * sizeof(real)), *hvp = be->alloc(NP * sizeof(real));
    real *g_for = be->alloc(NP * sizeof(real)), *fd_hu = be->alloc(NP * sizeof(real));
    real *g4[4];
    for (int k = 0; k < 4; k++) g4[k] = be->alloc(NP * sizeof(real));
    real losses0[B], losses4[4][B], losses_for[B], dloss_dir[B];
    const double steps[4] = { -2 * H, -H, H, 2 * H };

    /* ---- 0. the function is GPT-2's ------------------------------------------------ */
    eval_at(theta, noise, 0, losses0, g0);
    for (int b = 0; b < B; b++) {
        double want = ref_loss(theta, inputs + b * T, targets + b * T, n_valid[b]);
        double e = test_rel_err(losses0[b], want);
        TEST_CHECK(e <= 1e-12, "loss %d: lm_forward %.15g, naive GPT-2 %.15g, rel %.2e", b,
                   (double)losses0[b], want, e);
    }

    /* ---- 1. gradient vs finite differences, one tensor at a time ---------------- */
    for (int k = 0; k < NT; k++) {
        direction(dir, tab, k, 1000 + k);
        double f[4];
        for (int q = 0; q < 4; q++) { eval_at(theta, dir, steps[q], losses4[q], NULL); f[q] = weighted_loss(losses4[q]); }
        double fd = stencil(f[0], f[1], f[2], f[3]), an = be->vec_dot(g0, dir, NP);
        double e = test_rel_err(an, fd);
        if (e > max_grad_err) max_grad_err = e;
        TEST_CHECK(e <= TOL, "grad %s: analytic %.12e, FD %.12e, rel %.2e", tab[k].name, an, fd, e);
    }

    /* ---- 2. forward-over-reverse: u over all, then u on each tensor -------------- */
    direction(v, tab, -1, 5);
    for (int k = -1; k < NT; k++) {
        direction(dir, tab, k, 2000 + k);
        be->vec_zero(hvp, NP);
        be->vec_zero(g_for, NP);
        lm_forward_over_reverse(be, &cfg, theta, dir, acts, inputs, targets, n_valid, B, T, c,
                                losses_for, g_for, hvp, dloss_dir);
        const char *uname = k < 0 ? "all" : tab[k].name;

        /* its losses and gradient are lm_forward's and lm_backward's */
        double worst = 0;
        for (int i = 0; i < B; i++) { double e = test_rel_err(losses_for[i], losses0[i]); if (e > worst) worst = e; }
        TEST_CHECK(worst <= 1e-13, "FoR(u %s) losses differ from lm_forward's: rel %.2e", uname, worst);
        be->vec_copy(grad_tmp, g_for, NP);
        be->vec_axpy(grad_tmp, -1, g0, NP);
        double gdiff = sqrt(be->vec_sumsq(grad_tmp, NP)), gnorm = sqrt(be->vec_sumsq(g0, NP));
        TEST_CHECK(gdiff <= 1e-13 * gnorm, "FoR(u %s) gradient differs from lm_backward's: |Δ|/|g| = %.2e",
                   uname, gdiff / gnorm);

        /* FD of ℓ_i and of ∇L along u */
        for (int q = 0; q < 4; q++) eval_at(theta, dir, steps[q], losses4[q], g4[q]);
        for (int i = 0; i < B; i++) {
            double fd = stencil(losses4[0][i], losses4[1][i], losses4[2][i], losses4[3][i]);
            double e = test_rel_err(dloss_dir[i], fd);
            if (e > max_dir_err) max_dir_err = e;
            TEST_CHECK(e <= TOL, "d_%d along u %s: FoR %.12e, FD %.12e, rel %.2e", i, uname,
                       dloss_dir[i], fd, e);
        }
        be->vec_zero(fd_hu, NP);
        be->vec_axpy(fd_hu, 1.0 / (12 * H), g4[0], NP);
        be->vec_axpy(fd_hu, -8.0 / (12 * H), g4[1], NP);
        be->vec_axpy(fd_hu, 8.0 / (12 * H), g4[2], NP);
        be->vec_axpy(fd_hu, -1.0 / (12 * H), g4[3], NP);
        double an = be->vec_dot(v, hvp, NP), fd = be->vec_dot(v, fd_hu, NP);
        double e = test_rel_err(an, fd);
        if (e > max_hvp_err) max_hvp_err = e;
        TEST_CHECK(e <= TOL, "<v, H u> with u %s: FoR %.12e, FD %.12e, rel %.2e", uname, an, fd, e);
        if (k < 0) {   /* without the gradient (grads NULL): the same H·u and d_i, bit for bit */
            real dd[B];
            be->vec_zero(grad_tmp, NP);
            lm_forward_over_reverse(be, &cfg, theta, dir, acts, inputs, targets, n_valid, B, T, c,
                                    NULL, NULL, grad_tmp, dd);
            TEST_CHECK(memcmp(grad_tmp, hvp, NP * sizeof(real)) == 0 && memcmp(dd, dloss_dir, sizeof dd) == 0,
                       "FoR without grads gives a different H·u or d_i");
        }
        if (k < 0)   /* every output tensor of H·u on its own */
            for (int j = 0; j < NT; j++) {
                direction(grad_tmp, tab, j, 3000 + j);
                an = be->vec_dot(grad_tmp, hvp, NP);
                fd = be->vec_dot(grad_tmp, fd_hu, NP);
                e = test_rel_err(an, fd);
                if (e > max_hvp_err) max_hvp_err = e;
                TEST_CHECK(e <= TOL, "<v_%s, H u>: FoR %.12e, FD %.12e, rel %.2e", tab[j].name, an,
                           fd, e);
            }
    }

    /* ---- 3. padding inputs are invisible --------------------------------------- */
    int32_t saved[B * T];
    memcpy(saved, inputs, sizeof saved);
    for (int b = 0; b < B; b++)
        for (int t = n_valid[b]; t < T; t++) inputs[b * T + t] = (b + 5 * t) % cfg.vocab;
    real losses_pad[B];
    eval_at(theta, noise, 0, losses_pad, grad_tmp);
    int same = memcmp(losses_pad, losses0, sizeof losses0) == 0;
    TEST_CHECK(same, "padding input tokens changed the losses");
    be->vec_axpy(grad_tmp, -1, g0, NP);
    TEST_CHECK(be->vec_sumsq(grad_tmp, NP) == 0, "padding input tokens changed the gradient");
    memcpy(inputs, saved, sizeof saved);

    /* ---- 4. activation checkpointing (lm.checkpointing) changes no bit ---------- */
    {
        LMConfig c3 = cfg;
        c3.n_layer = 3;   /* layers 0 and 1 are rebuilt in the backward, layer 2 is not */
        LMConfig c3k = c3;
        c3k.checkpointing = 1;
        size_t n3 = lm_num_params(&c3);
        real *th = be->alloc(n3 * sizeof(real)), *u = be->alloc(n3 * sizeof(real));
        real *out[2][3];   /* [off/on][gradient, FoR gradient, H·u] */
        real ls[2][2][B], dd[2][B];
        size_t bytes[2];
        lm_init_params(be, &c3, th, 4321);
        for (size_t j = 0; j < n3; j++) {
            th[j] += (real)(0.3 * dr_normal(77, j));
            u[j] = (real)dr_normal(78, j);
        }
        for (int on = 0; on < 2; on++) {
            const LMConfig *cc = on ? &c3k : &c3;
            LMActs *a3 = lm_acts_new(be, cc, B, T, 1);
            bytes[on] = lm_acts_bytes(a3);
            for (int q = 0; q < 3; q++) {
                out[on][q] = be->alloc(n3 * sizeof(real));
                be->vec_zero(out[on][q], n3);
            }
            lm_forward(be, cc, th, a3, inputs, targets, n_valid, B, T, ls[on][0]);
            lm_backward(be, cc, th, a3, c, out[on][0]);
            lm_forward_over_reverse(be, cc, th, u, a3, inputs, targets, n_valid, B, T, c,
                                    ls[on][1], out[on][1], out[on][2], dd[on]);
            lm_acts_free(be, a3);
        }
        int same = memcmp(ls[0], ls[1], sizeof ls[0]) == 0 && memcmp(dd[0], dd[1], sizeof dd[0]) == 0;
        for (int q = 0; q < 3; q++) same &= memcmp(out[0][q], out[1][q], n3 * sizeof(real)) == 0;
        TEST_CHECK(same, "lm.checkpointing changed a loss, the gradient, H·u or d_i");
        TEST_CHECK(bytes[1] < bytes[0], "lm.checkpointing did not reduce the activations (%zu vs %zu bytes)",
                   bytes[1], bytes[0]);
        printf("activation checkpointing, 3 layers: losses, gradient, H·u, d_i %s; "
               "activations %zu -> %zu bytes\n", same ? "bit-identical" : "DIFFERENT", bytes[0], bytes[1]);
        for (int on = 0; on < 2; on++)
            for (int q = 0; q < 3; q++) be->free(out[on][q]);
        be->free(th);
        be->free(u);
    }

    /* ---- 5. the head in chunks of examples (lm.head_chunk) ------------------------ */
    for (int E = 1; E <= 2; E++) {
        LMConfig ch = cfg;
        ch.head_chunk = E;   /* B = 3: chunks {0},{1},{2} or {0,1},{2} */
        LMActs *ac = lm_acts_new(be, &ch, B + 1, T + 2, 1);
        real lc[B], lf[B], dc[B];
        real *gc = be->alloc(NP * sizeof(real)), *gf = be->alloc(NP * sizeof(real));
        real *hc = be->alloc(NP * sizeof(real)), *hf = be->alloc(NP * sizeof(real));
        direction(dir, tab, -1, 2000 - 1);
        be->vec_zero(gc, NP); be->vec_zero(gf, NP); be->vec_zero(hc, NP); be->vec_zero(hf, NP);
        lm_forward(be, &ch, theta, ac, inputs, targets, n_valid, B, T, lc);
        lm_backward(be, &ch, theta, ac, c, gc);          /* recomputes all but the last chunk */
        lm_forward_over_reverse(be, &ch, theta, dir, ac, inputs, targets, n_valid, B, T, c,
                                NULL, gf, hc, dc);
        lm_forward_over_reverse(be, &cfg, theta, dir, acts, inputs, targets, n_valid, B, T, c,
                                lf, NULL, hf, dloss_dir);   /* unchunked reference */
        double worst = 0;
        for (int i = 0; i < B; i++) {
            double e1 = test_rel_err(lc[i], losses0[i]), e2 = test_rel_err(dc[i], dloss_dir[i]);
            if (e1 > worst) worst = e1;
            if (e2 > worst) worst = e2;
        }
        be->vec_axpy(gc, -1, g0, NP);
        be->vec_axpy(gf, -1, g0, NP);
        be->vec_axpy(hc, -1, hf, NP);
        double gn = sqrt(be->vec_sumsq(g0, NP)), hn = sqrt(be->vec_sumsq(hf, NP));
        double eg = sqrt(be->vec_sumsq(gc, NP)) / gn, ef = sqrt(be->vec_sumsq(gf, NP)) / gn;
        double eh = sqrt(be->vec_sumsq(hc, NP)) / hn;
        TEST_CHECK(worst <= 1e-13 && eg <= 1e-13 && ef <= 1e-13 && eh <= 1e-13,
                   "head_chunk %d: differs from the unchunked head (losses/d_i %.1e, gradient %.1e / "
                   "FoR %.1e, H·u %.1e)", E, worst, eg, ef, eh);
        printf("head in chunks of %d example(s): losses, d_i, gradient (lm_backward and FoR), H·u "
               "within %.1e of the unchunked head\n", E, fmax(fmax(worst, eg), fmax(ef, eh)));
        be->free(gc); be->free(gf); be->free(hc); be->free(hf);
        lm_acts_free(be, ac);
    }

    /* ---- 6. the activation tape: record + replay = the full pass, bit for bit --------
     * Two passes (different θ, batch shape, dlosses) recorded into two tapes, another
     * forward in between, replays in either order and twice: H·u and d_i must have the
     * bits of lm_forward_over_reverse's, and the recorded backward's gradient those of
     * lm_backward's. 3 layers, inside activations allocated for a larger batch. */
    {
        LMConfig c3 = cfg;
        c3.n_layer = 3;
        const int T2 = T - 1;
        size_t n3 = lm_num_params(&c3);
        int32_t in2[B * (T - 1)], tg2[B * (T - 1)], nv2[B] = { 5, 2, 4 };
        for (int i = 0; i < B * T2; i++) {
            in2[i] = (int32_t)(((inputs[i] < 0 ? 0 : inputs[i]) * 3 + 1) % 13);
            tg2[i] = (int32_t)(((targets[i] < 0 ? 0 : targets[i]) * 5 + 2) % 13);
        }
        real c2[B] = { -0.9, 0.25, 0.6 };
        real *th[2], *u = be->alloc(n3 * sizeof(real)), *gr[2], *gref = be->alloc(n3 * sizeof(real));
        real *h_rep = be->alloc(n3 * sizeof(real)), *h_ref = be->alloc(n3 * sizeof(real));
        for (int q = 0; q < 2; q++) {
            th[q] = be->alloc(n3 * sizeof(real));
            gr[q] = be->alloc(n3 * sizeof(real));
            lm_init_params(be, &c3, th[q], 4321 + q);
            for (size_t j = 0; j < n3; j++) th[q][j] += (real)(0.3 * dr_normal(77 + q, j));
            be->vec_zero(gr[q], n3);
        }
        for (size_t j = 0; j < n3; j++) u[j] = (real)dr_normal(79, j);
        LMActs *a6 = lm_acts_new(be, &c3, B + 1, T + 2, 1);
        LMTape *tape[2] = { lm_tape_new(be, &c3, B + 1, T + 2), lm_tape_new(be, &c3, B + 1, T + 2) };
        const int32_t *bin[2] = { inputs, in2 }, *btg[2] = { targets, tg2 }, *bnv[2] = { n_valid, nv2 };
        const int bT[2] = { T, T2 };
        const real *bc[2] = { c, c2 };
        for (int q = 0; q < 2; q++) {
            lm_forward(be, &c3, th[q], a6, bin[q], btg[q], bnv[q], B, bT[q], NULL);
            lm_backward_record(be, &c3, th[q], a6, bc[q], gr[q], tape[q]);
        }
        lm_forward(be, &c3, th[1], a6, inputs, targets, n_valid, B, T, NULL);   /* acts busy */
        int same_g = 1, same_h = 1, same_d = 1;
        const int order[3] = { 1, 0, 1 };
        for (int r = 0; r < 3; r++) {
            const int q = order[r];
            real d_rep[B], d_ref[B];
            be->vec_zero(h_rep, n3);
            be->vec_zero(h_ref, n3);
            lm_forward_over_reverse_replay(be, &c3, th[q], u, a6, tape[q], bc[q],
                                           r == 2 ? NULL : h_rep, d_rep);
            lm_forward_over_reverse(be, &c3, th[q], u, a6, bin[q], btg[q], bnv[q], B, bT[q], bc[q],
                                    NULL, NULL, h_ref, d_ref);
            if (r < 2) same_h &= memcmp(h_rep, h_ref, n3 * sizeof(real)) == 0 && be->vec_sumsq(h_ref, n3) > 0;
            same_d &= memcmp(d_rep, d_ref, sizeof d_rep) == 0;
        }
        for (int q = 0; q < 2; q++) {
            be->vec_zero(gref, n3);
            lm_forward(be, &c3, th[q], a6, bin[q], btg[q], bnv[q], B, bT[q], NULL);
            lm_backward(be, &c3, th[q], a6, bc[q], gref);
            same_g &= memcmp(gref, gr[q], n3 * sizeof(real)) == 0;
        }
        TEST_CHECK(same_g, "lm_backward_record's gradient differs from lm_backward's");
        TEST_CHECK(same_h, "tape replay's H·u differs from lm_forward_over_reverse's");
        TEST_CHECK(same_d, "tape replay's d_i differ from lm_forward_over_reverse's");
        printf("activation tape, 3 layers, 2 tapes: recorded gradient, replayed H·u and d_i %s "
               "(tape %zu bytes, activations %zu)\n", same_g && same_h && same_d ? "bit-identical" : "DIFFERENT",
               lm_tape_bytes(tape[0]), lm_acts_bytes(a6));
        for (int q = 0; q < 2; q++) {
            lm_tape_free(be, tape[q]);
            be->free(th[q]);
            be->free(gr[q]);
        }
        lm_acts_free(be, a6);
        be->free(u); be->free(gref); be->free(h_rep); be->free(h_ref);
    }

    /* ---- logits rows padded (a backend's logits_row_multiple, 64 on CUDA): the bits of
     * rows V long, in every pass, with the head whole or in chunks, recomputing or not,
     * and through a tape ---- */
    {
        Backend padded = backend_cpu;
        padded.logits_row_multiple = 64;   /* V = 13: rows of 64 */
        const Backend *bes[2] = { &backend_cpu, &padded };
        int same = 1;
        for (int k = 0; k < 3; k++) {
            LMConfig cc = cfg;
            cc.head_chunk = k == 1 ? 1 : 0;
            cc.checkpointing = k == 2;
            real l[2][B], lf[2][B], d[2][B], *g[2], *gf[2], *h[2], *hr[2];
            for (int q = 0; q < 2; q++) {
                const Backend *b = bes[q];
                g[q] = b->alloc(NP * sizeof(real));
                gf[q] = b->alloc(NP * sizeof(real));
                h[q] = b->alloc(NP * sizeof(real));
                hr[q] = b->alloc(NP * sizeof(real));
                LMActs *a = lm_acts_new(b, &cc, B, T, 1);
                lm_forward(b, &cc, theta, a, inputs, targets, n_valid, B, T, l[q]);
                lm_backward(b, &cc, theta, a, c, g[q]);
                lm_forward_over_reverse(b, &cc, theta, noise, a, inputs, targets, n_valid, B, T, c,
                                        lf[q], gf[q], h[q], d[q]);
                if (lm_tape_supported(&cc)) {   /* recorded and replayed */
                    LMTape *tp = lm_tape_new(b, &cc, B, T);
                    lm_forward(b, &cc, theta, a, inputs, targets, n_valid, B, T, NULL);
                    lm_backward_record(b, &cc, theta, a, c, grad_tmp, tp);
                    lm_forward_over_reverse_replay(b, &cc, theta, noise, a, tp, c, hr[q], NULL);
                    lm_tape_free(b, tp);
                }
                lm_acts_free(b, a);
            }
            same &= memcmp(l[0], l[1], sizeof l[0]) == 0 && memcmp(lf[0], lf[1], sizeof lf[0]) == 0 &&
                    memcmp(d[0], d[1], sizeof d[0]) == 0 &&
                    memcmp(g[0], g[1], NP * sizeof(real)) == 0 &&
                    memcmp(gf[0], gf[1], NP * sizeof(real)) == 0 &&
                    memcmp(h[0], h[1], NP * sizeof(real)) == 0 &&
                    memcmp(hr[0], hr[1], NP * sizeof(real)) == 0 &&
                    be->vec_sumsq(h[0], NP) > 0;
            for (int q = 0; q < 2; q++) {
                be->free(g[q]); be->free(gf[q]); be->free(h[q]); be->free(hr[q]);
            }
        }
        TEST_CHECK(same, "logits rows of 64: losses, gradients, H·u or d_i differ from rows of V");
        printf("logits rows padded to 64 (V = 13): losses, gradient, H·u, d_i, tape replay %s "
               "(head whole, in chunks, recomputing)\n", same ? "bit-identical" : "DIFFERENT");
    }

    /* ---- lm_forward_backward: the bits of lm_forward + lm_backward (losses, and the
     * gradient added to one that is not zero), with the head whole, in chunks of 1 and 2,
     * recomputing the trunk, and with logits rows of 64; and another lm_backward after
     * either (which recomputes the head, and with lm.checkpointing block L − 1's
     * internals) adds the gradient's bits once more ---- */
    {
        Backend padded = backend_cpu;
        padded.logits_row_multiple = 64;
        int same = 1;
        for (int k = 0; k < 5; k++) {
            const Backend *b = k == 4 ? &padded : &backend_cpu;
            LMConfig cc = cfg;
            cc.head_chunk = k == 1 ? 1 : k == 2 ? 2 : 0;
            cc.checkpointing = k == 3;
            real l[2][B], *g[2], *again[2], *fresh = b->alloc(NP * sizeof(real));
            LMActs *a = lm_acts_new(b, &cc, B + 1, T + 1, 0);
            for (int q = 1; q >= 0; q--) {   /* the one pass first: nothing of the two calls' left */
                g[q] = b->alloc(NP * sizeof(real));
                again[q] = b->alloc(NP * sizeof(real));
                b->vec_copy(g[q], noise, NP);   /* accumulated into */
                for (int i = 0; i < B; i++) l[q][i] = -1;
                if (q == 0) {
                    lm_forward(b, &cc, theta, a, inputs, targets, n_valid, B, T, l[0]);
                    lm_backward(b, &cc, theta, a, c, g[0]);
                } else {
                    lm_forward_backward(b, &cc, theta, a, inputs, targets, n_valid, B, T, c, l[1],
                                        g[1]);
                }
                lm_backward(b, &cc, theta, a, c, again[q]);
            }
            lm_forward(b, &cc, theta, a, inputs, targets, n_valid, B, T, NULL);
            lm_backward(b, &cc, theta, a, c, fresh);   /* into zeros, as again[q] */
            same &= memcmp(l[0], l[1], sizeof l[0]) == 0 &&
                    memcmp(g[0], g[1], NP * sizeof(real)) == 0 &&
                    memcmp(again[0], fresh, NP * sizeof(real)) == 0 &&
                    memcmp(again[1], fresh, NP * sizeof(real)) == 0;
            if (k == 0) lm_forward_backward(b, &cc, theta, a, inputs, targets, n_valid, B, T, c,
                                            NULL, again[0]);   /* losses NULL */
            for (int q = 0; q < 2; q++) {
                b->free(g[q]);
                b->free(again[q]);
            }
            b->free(fresh);
            lm_acts_free(b, a);
        }
        TEST_CHECK(same, "lm_forward_backward: losses or gradient differ from lm_forward + "
                   "lm_backward's, or a second lm_backward after it or them gives another "
                   "gradient");
        printf("lm_forward_backward: losses and gradient %s to lm_forward + lm_backward's, and "
               "a second lm_backward's to the first's (head whole, chunks of 1 and 2, "
               "recomputing, rows of 64)\n",
               same ? "bit-identical" : "NOT IDENTICAL");
    }

    /* ---- lm.checkpointing: auto: the bytes counted without allocating, and the rule ---- */
    {
        int exact = 1;
        for (int k = 0; k < 8; k++) {
            LMConfig cc = cfg;
            cc.checkpointing = k & 1;
            cc.head_chunk = k & 2 ? 1 : 0;
            const int tangents = (k & 4) != 0;
            LMActs *a = lm_acts_new(be, &cc, B + 1, T + 2, tangents);
            const size_t counted = lm_acts_bytes_needed(be, &cc, B + 1, T + 2, tangents);
            if (counted != lm_acts_bytes(a)) {
                exact = 0;
                printf("lm_acts_bytes_needed: %zu, allocated %zu (checkpointing %d, head_chunk %d, "
                       "tangents %d)\n", counted, lm_acts_bytes(a), cc.checkpointing, cc.head_chunk, tangents);
            }
            lm_acts_free(be, a);
        }
        TEST_CHECK(exact, "lm_acts_bytes_needed differs from what lm_acts_new allocates");
        LMConfig whole = cfg;
        whole.checkpointing = 0;
        const double need0 = (double)lm_acts_bytes_needed(be, &whole, B, T, 0);
        Backend fake = backend_cpu;
        double need, avail;
        fake.mem_available = NULL;   /* unknown: recompute */
        LMConfig ca = cfg;
        ca.checkpointing = -1;
        TEST_CHECK(lm_resolve_checkpointing(&fake, &ca, B, T, 0, &need, &avail) == 1 && ca.checkpointing == 1,
                   "auto with no memory figure: recompute");
        fake.mem_available = backend_cpu.mem_available;   /* a real machine: this small LM fits */
        ca.checkpointing = -1;
        TEST_CHECK(lm_resolve_checkpointing(&fake, &ca, B, T, 1000, &need, &avail) == 0 && ca.checkpointing == 0 &&
                   need == need0 + 1000 && avail > need, "auto on this machine: no recomputation (%g of %g bytes)",
                   need, avail);
        ca.checkpointing = -1;   /* other bytes beyond what the machine has: recompute */
        TEST_CHECK(lm_resolve_checkpointing(&fake, &ca, B, T, 2 * avail, &need, &avail) == 1 && ca.checkpointing == 1,
                   "auto when it would not fit: recompute");
        for (int v = 0; v < 2; v++) {   /* set values stay */
            ca.checkpointing = v;
            TEST_CHECK(lm_resolve_checkpointing(&fake, &ca, B, T, 2 * avail, &need, &avail) == v &&
                       ca.checkpointing == v && need == 0, "lm.checkpointing %d changed by the resolver", v);
        }
        printf("lm.checkpointing auto: counted bytes %s the allocation in 8 configurations; "
               "%.0f bytes without recomputation here\n", exact ? "equal" : "DIFFER FROM", need0);
    }

    printf("max relative errors: gradient %.2e, H·u %.2e, d_i %.2e (tolerance %.0e)\n",
           max_grad_err, max_hvp_err, max_dir_err, TOL);
    for (int k = 0; k < 4; k++) be->free(g4[k]);
    real *bufs[] = { theta, noise, grad_tmp, g0, dir, v, hvp, g_for, fd_hu };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) be->free(bufs[i]);
    lm_acts_free(be, acts);
    free(tab);
    return test_finish("test_lm");
}
