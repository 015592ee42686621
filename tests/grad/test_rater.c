/* test_rater.c — finite-difference check of the rater (double build, -DDR_DOUBLE):
 * rater_backward's gradient of Z = Σ c_i z_i along a random direction supported on each
 * tensor in turn, against the 5-point central difference
 * (Z(−2h) − 8Z(−h) + 8Z(h) − Z(2h))/(12h); and the padding contract: tokens at
 * positions ≥ valid_len change nothing (logits or gradient), while a valid token does
 * change the logit (the mask is not masking everything).
 * Micro rater: 2 layers, d 8, 2 heads, d_ff 32, vocab 13, ctx 8; B 3, T 6 with
 * valid_len {6, 4, 2}, run in activations allocated for 4×8. Parameters are the init
 * plus noise of std 0.3 (so the head's output is O(1) and every op is exercised).
 *
 * Tolerance rule: rel(a, b) = |a − b| / max(|a|, |b|) ≤ 1e-6 per compared number. The
 * stencil's truncation error (h⁴) dominates here: measured worst 2e-6 at h = 1e-3, 2e-8 at
 * 3e-4, 2.5e-10 at h = 1e-4 (used), so a wrong or missing term, an O(1) relative error of
 * its tensor's number, always fails while the stencil never does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "rater.h"
#include "test.h"

#define TOL 1e-6
#define H 1e-4

static const Backend *be = &backend_cpu;
static RaterConfig cfg = { .n_layer = 2, .d_model = 8, .n_head = 2, .d_ff = 32, .vocab = 13,
                           .ctx = 8, .init_std = 0.02 };
enum { B = 3, T = 6 };
static int32_t tokens[B * T], valid_len[B] = { 6, 4, 2 };
static real c[B] = { 0.9, -1.1, 0.6 };
static size_t NP;
static RaterActs *acts;

static void direction(real *d, const ParamInfo *tab, int k, uint64_t seed) {
    be->vec_zero(d, NP);
    for (size_t j = 0; j < NP; j++)
        if (k < 0 || (j >= tab[k].offset && j < tab[k].offset + tab[k].numel))
            d[j] = (real)dr_normal(seed, j);
}

/* Z = Σ c_i z_i at θ + s·dir; z out */
static double Z_at(const real *phi, const real *dir, double s, real *z) {
    real *p = be->alloc(NP * sizeof(real));
    be->vec_copy(p, phi, NP);
    be->vec_axpy(p, s, dir, NP);
    rater_forward(be, &cfg, p, acts, tokens, valid_len, B, T, z);
    be->free(p);
    double Z = 0;
    for (int i = 0; i < B; i++) Z += c[i] * z[i];
    return Z;
}

int main(void) {
    CHECK(lm_config_check(&cfg) == 0, "%s", dr_lasterr());
    NP = rater_num_params(&cfg);
    int NT = rater_num_tensors(&cfg);
    ParamInfo *tab = xmalloc((size_t)NT * sizeof *tab);
    rater_param_table(&cfg, tab);
    uint64_t s = 11;
    for (int i = 0; i < B * T; i++)
        tokens[i] = (int32_t)((s = s * 6364136223846793005ULL + 1) >> 33) % cfg.vocab;

    real *phi = be->alloc(NP * sizeof(real)), *noise = be->alloc(NP * sizeof(real));
    real *g = be->alloc(NP * sizeof(real)), *g2 = be->alloc(NP * sizeof(real));
    real *dir = be->alloc(NP * sizeof(real));
    rater_init_params(be, &cfg, phi, 77);
    direction(noise, tab, -1, 8);
    be->vec_axpy(phi, 0.3, noise, NP);
    acts = rater_acts_new(be, &cfg, B + 1, T + 2);

    real z0[B], z[B];
    Z_at(phi, noise, 0, z0);
    rater_backward(be, &cfg, phi, acts, c, g);

    double max_err = 0;
    const double steps[4] = { -2 * H, -H, H, 2 * H };
    for (int k = 0; k < NT; k++) {
        direction(dir, tab, k, 500 + k);
        double f[4];
        for (int q = 0; q < 4; q++) f[q] = Z_at(phi, dir, steps[q], z);
        double fd = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * H), an = be->vec_dot(g, dir, NP);
        double e = test_rel_err(an, fd);
        if (e > max_err) max_err = e;
        TEST_CHECK(e <= TOL, "rater grad %s: analytic %.12e, FD %.12e, rel %.2e", tab[k].name, an,
                   fd, e);
    }

    /* padding: tokens at t ≥ valid_len are invisible to z and to the gradient */
    int32_t saved[B * T];
    memcpy(saved, tokens, sizeof saved);
    for (int b = 0; b < B; b++)
        for (int t = valid_len[b]; t < T; t++) tokens[b * T + t] = (tokens[b * T + t] + 5) % cfg.vocab;
    Z_at(phi, noise, 0, z);
    TEST_CHECK(memcmp(z, z0, sizeof z) == 0, "padding tokens changed the rater's logits");
    be->vec_zero(g2, NP);
    rater_backward(be, &cfg, phi, acts, c, g2);
    be->vec_axpy(g2, -1, g, NP);
    TEST_CHECK(be->vec_sumsq(g2, NP) == 0, "padding tokens changed the rater's gradient");
    /* … while the last valid token of example 1 does matter */
    tokens[1 * T + valid_len[1] - 1] = (tokens[1 * T + valid_len[1] - 1] + 1) % cfg.vocab;
    Z_at(phi, noise, 0, z);
    TEST_CHECK(z[1] != z0[1] && z[0] == z0[0] && z[2] == z0[2],
               "changing a valid token of example 1: z %.17g → %.17g", (double)z0[1], (double)z[1]);
    memcpy(tokens, saved, sizeof saved);

    /* rater.checkpointing (block activations rebuilt in the backward): the same bits */
    {
        RaterConfig ck = cfg;
        ck.checkpointing = 1;
        RaterActs *ak = rater_acts_new(be, &ck, B + 1, T + 2);
        real zk[B];
        rater_forward(be, &ck, phi, ak, tokens, valid_len, B, T, zk);
        be->vec_zero(g2, NP);
        rater_backward(be, &ck, phi, ak, c, g2);
        TEST_CHECK(memcmp(zk, z0, sizeof zk) == 0 && memcmp(g2, g, NP * sizeof(real)) == 0,
                   "rater.checkpointing changed the logits or the gradient");
        /* a second backward after the one forward: the shared internals hold block 0's now,
         * and block 1's must be rebuilt for it (LMTensors.block_held) */
        be->vec_zero(g2, NP);
        rater_backward(be, &ck, phi, ak, c, g2);
        TEST_CHECK(memcmp(g2, g, NP * sizeof(real)) == 0,
                   "rater.checkpointing: a second rater_backward gave another gradient");
        rater_acts_free(be, ak);
    }

    printf("max relative error: rater gradient %.2e (tolerance %.0e)\n", max_err, TOL);
    real *bufs[] = { phi, noise, g, g2, dir };
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) be->free(bufs[i]);
    rater_acts_free(be, acts);
    free(tab);
    return test_finish("test_rater");
}
