/* test_ops_float.c — the CPU ops in the float build (the fast one): every op against a
 * naive reference computed in double, at shapes big enough to take the threaded paths
 * (the split GEMM, the per-(b,h) attention loop, the channel-range reductions).
 * Rule: ‖op − ref‖∞ / ‖ref‖∞ ≤ 2e-5 (float rounding through sums of ≤ a few hundred terms).
 * The tangent faces, which have no simple naive form, are checked through identities that
 * hold exactly in real arithmetic: ⟨ȳ, J ẋ⟩ = ⟨Jᵀ ȳ, ẋ⟩ (forward tangent vs backward), the
 * symmetry of the Hessian ⟨u, H v⟩ = ⟨v, H u⟩ (backward tangent), and backward_tangent
 * with ẋ = 0 equal to backward(ẏ̄). The finite-difference proofs run in double
 * (tests/grad/test_ops.c); this test shows the float build computes the same thing. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ops/cpu_ops.h"
#include "ops/cpu_util.h"
#include "test.h"

#define TOL 2e-5

static uint64_t rng_state = 0x853C49E6748FEA9Bull;
static double urand(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
}
static double nrand(void) {
    double u1 = urand(), u2 = urand();
    return sqrt(-2 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2);
}
static real *rnormal(size_t n, double sd) {
    real *x = xmalloc(n * sizeof(real));
    for (size_t i = 0; i < n; i++) x[i] = (real)(sd * nrand());
    return x;
}
static real *rzeros(size_t n) { return xcalloc(n, sizeof(real)); }
static double *dzeros(size_t n) { return xcalloc(n, sizeof(double)); }

/* ‖a − ref‖∞ / ‖ref‖∞ */
static double rel_vs(const real *a, const double *ref, size_t n) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - ref[i]));
        m = fmax(m, fabs(ref[i]));
    }
    return m > 0 ? d / m : d;
}
static double rdot(const real *a, const real *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}
static double rel2(double a, double b) { return fabs(a - b) / fmax(fmax(fabs(a), fabs(b)), 1e-30); }

#define CHECK_REL(what, err, tol) \
    do { double e_ = (err); TEST_CHECK(e_ <= (tol), "%s: rel %.2e", what, e_); \
         printf("  %-52s %.1e\n", what, e_); } while (0)

/* ---- matmul ------------------------------------------------------------------------ */
static void test_matmul(int N, int C, int OC, int layout) {
    real *inp = rnormal((size_t)N * C, 1), *w = rnormal((size_t)C * OC, 1), *b = rnormal(OC, 1);
    real *dout = rnormal((size_t)N * OC, 1), *out = rzeros((size_t)N * OC);
    double *ref = dzeros((size_t)N * (C > OC ? C : OC) + (size_t)C * OC);
#define W(k, o) (layout == MATMUL_W_OC_C ? w[(size_t)(o) * C + (k)] : w[(size_t)(k) * OC + (o)])
    matmul_forward(out, inp, w, layout == MATMUL_W_OC_C ? NULL : b, N, C, OC, layout, OC);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = layout == MATMUL_W_OC_C ? 0 : b[o];
            for (int k = 0; k < C; k++) s += (double)inp[(size_t)n * C + k] * W(k, o);
            ref[(size_t)n * OC + o] = s;
        }
    char what[96];
    snprintf(what, sizeof what, "matmul forward %dx%dx%d %s", N, C, OC, layout ? "W[OC,C]" : "W[C,OC]");
    CHECK_REL(what, rel_vs(out, ref, (size_t)N * OC), TOL);

    real *dinp = rzeros((size_t)N * C), *dw = rzeros((size_t)C * OC), *db = rzeros(OC);
    matmul_backward(dinp, dw, db, dout, inp, w, N, C, OC, layout, OC);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < C; k++) {
            double s = 0;
            for (int o = 0; o < OC; o++) s += (double)dout[(size_t)n * OC + o] * W(k, o);
            ref[(size_t)n * C + k] = s;
        }
    snprintf(what, sizeof what, "matmul backward dinp %s", layout ? "W[OC,C]" : "W[C,OC]");
    CHECK_REL(what, rel_vs(dinp, ref, (size_t)N * C), TOL);
    for (int k = 0; k < C; k++)
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += (double)inp[(size_t)n * C + k] * dout[(size_t)n * OC + o];
            ref[layout == MATMUL_W_OC_C ? (size_t)o * C + k : (size_t)k * OC + o] = s;
        }
    snprintf(what, sizeof what, "matmul backward dW %s", layout ? "W[OC,C]" : "W[C,OC]");
    CHECK_REL(what, rel_vs(dw, ref, (size_t)C * OC), TOL);
    for (int o = 0; o < OC; o++) {
        double s = 0;
        for (int n = 0; n < N; n++) s += dout[(size_t)n * OC + o];
        ref[o] = s;
    }
    CHECK_REL("matmul backward dbias", rel_vs(db, ref, OC), TOL);
#undef W

    /* tangents: adjoint identity and Hessian symmetry (matmul is bilinear in (inp, W)) */
    real *ti = rnormal((size_t)N * C, 1), *tw = rnormal((size_t)C * OC, 1), *tb = rnormal(OC, 1);
    real *tout = rzeros((size_t)N * OC);
    matmul_forward_tangent(tout, inp, ti, w, tw, tb, N, C, OC, layout, OC);
    double lhs = rdot(dout, tout, (size_t)N * OC);
    double rhs = rdot(dinp, ti, (size_t)N * C) + rdot(dw, tw, (size_t)C * OC) + rdot(db, tb, OC);
    CHECK_REL("matmul <dout, J t> = <J^T dout, t>", rel2(lhs, rhs), TOL);
    real *u1 = rnormal((size_t)N * C, 1), *u2 = rnormal((size_t)C * OC, 1);
    real *hi = rzeros((size_t)N * C), *hw = rzeros((size_t)C * OC);
    matmul_backward_tangent(hi, hw, NULL, dout, NULL, inp, ti, w, tw, N, C, OC, layout, OC);
    real *gi = rzeros((size_t)N * C), *gw = rzeros((size_t)C * OC);
    matmul_backward_tangent(gi, gw, NULL, dout, NULL, inp, u1, w, u2, N, C, OC, layout, OC);
    lhs = rdot(u1, hi, (size_t)N * C) + rdot(u2, hw, (size_t)C * OC);
    rhs = rdot(ti, gi, (size_t)N * C) + rdot(tw, gw, (size_t)C * OC);
    CHECK_REL("matmul Hessian symmetry <u, H t> = <t, H u>", rel2(lhs, rhs), TOL);

    /* determinism: the same call gives the same bits */
    real *out2 = rzeros((size_t)N * OC);
    matmul_forward(out2, inp, w, b, N, C, OC, layout, OC);
    matmul_forward(out, inp, w, b, N, C, OC, layout, OC);
    TEST_CHECK(!memcmp(out, out2, (size_t)N * OC * sizeof(real)), "matmul forward must be deterministic");
    free(inp); free(w); free(b); free(dout); free(out); free(out2); free(ref); free(dinp); free(dw);
    free(db); free(ti); free(tw); free(tb); free(tout); free(u1); free(u2); free(hi); free(hw);
    free(gi); free(gw);
}

/* ---- layernorm ----------------------------------------------------------------------- */
static void test_layernorm(int N, int C) {
    real *x = rnormal((size_t)N * C, 2), *w = rnormal(C, 1), *b = rnormal(C, 1);
    real *dy = rnormal((size_t)N * C, 1), *y = rzeros((size_t)N * C), *mean = rzeros(N), *rstd = rzeros(N);
    double *ref = dzeros((size_t)N * C), *rdw = dzeros(C), *rdb = dzeros(C);
    layernorm_forward(y, mean, rstd, x, w, b, N, C);
    real *dx = rzeros((size_t)N * C), *dw = rzeros(C), *db = rzeros(C);
    layernorm_backward(dx, dw, db, dy, x, w, mean, rstd, N, C);
    double *dxr = dzeros((size_t)N * C);
    for (int n = 0; n < N; n++) {
        const real *xr = x + (size_t)n * C;
        double mu = 0, var = 0;
        for (int c = 0; c < C; c++) mu += xr[c];
        mu /= C;
        for (int c = 0; c < C; c++) var += (xr[c] - mu) * (xr[c] - mu);
        var /= C;
        double s = 1 / sqrt(var + 1e-5), mg = 0, mxg = 0;
        for (int c = 0; c < C; c++) {
            double xh = (xr[c] - mu) * s, g = (double)dy[(size_t)n * C + c] * w[c];
            ref[(size_t)n * C + c] = xh * w[c] + b[c];
            mg += g / C;
            mxg += xh * g / C;
            rdw[c] += dy[(size_t)n * C + c] * xh;
            rdb[c] += dy[(size_t)n * C + c];
        }
        for (int c = 0; c < C; c++) {
            double xh = (xr[c] - mu) * s, g = (double)dy[(size_t)n * C + c] * w[c];
            dxr[(size_t)n * C + c] = s * (g - mg - xh * mxg);
        }
    }
    CHECK_REL("layernorm forward", rel_vs(y, ref, (size_t)N * C), TOL);
    CHECK_REL("layernorm backward dinp", rel_vs(dx, dxr, (size_t)N * C), TOL);
    CHECK_REL("layernorm backward dw", rel_vs(dw, rdw, C), TOL);
    CHECK_REL("layernorm backward db", rel_vs(db, rdb, C), TOL);

    real *tx = rnormal((size_t)N * C, 1), *tw = rnormal(C, 1), *tb = rnormal(C, 1), *ty = rzeros((size_t)N * C);
    layernorm_forward_tangent(ty, x, tx, w, tw, tb, mean, rstd, N, C);
    double lhs = rdot(dy, ty, (size_t)N * C);
    double rhs = rdot(dx, tx, (size_t)N * C) + rdot(dw, tw, C) + rdot(db, tb, C);
    CHECK_REL("layernorm <dy, J t> = <J^T dy, t>", rel2(lhs, rhs), TOL);
    real *ux = rnormal((size_t)N * C, 1), *uw = rnormal(C, 1);
    real *hx = rzeros((size_t)N * C), *hw = rzeros(C), *gx = rzeros((size_t)N * C), *gw = rzeros(C);
    layernorm_backward_tangent(hx, hw, NULL, dy, NULL, x, tx, w, tw, mean, rstd, N, C);
    layernorm_backward_tangent(gx, gw, NULL, dy, NULL, x, ux, w, uw, mean, rstd, N, C);
    lhs = rdot(ux, hx, (size_t)N * C) + rdot(uw, hw, C);
    rhs = rdot(tx, gx, (size_t)N * C) + rdot(tw, gw, C);
    CHECK_REL("layernorm Hessian symmetry", rel2(lhs, rhs), 1e-4);
    free(x); free(w); free(b); free(dy); free(y); free(mean); free(rstd); free(ref); free(rdw);
    free(rdb); free(dx); free(dw); free(db); free(dxr); free(tx); free(tw); free(tb); free(ty);
    free(ux); free(uw); free(hx); free(hw); free(gx); free(gw);
}

/* ---- attention ----------------------------------------------------------------------- */
static void naive_attention(double *out, double *dqkv, const real *qkv, const real *dout,
                            const int32_t *vl, int causal, int B, int T, int C, int NH) {
    int hs = C / NH, C3 = 3 * C;
    double *p = dzeros(T), *dp = dzeros(T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                int L = vl ? vl[b] : T;
                double *o = out + ((size_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++) o[i] = 0;
                if (t >= L) continue;
                const real *q = qkv + ((size_t)b * T + t) * C3 + h * hs;
                int n = causal ? t + 1 : L;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < n; j++) {
                    const real *k = qkv + ((size_t)b * T + j) * C3 + C + h * hs;
                    double s = 0;
                    for (int i = 0; i < hs; i++) s += (double)q[i] * k[i];
                    p[j] = s / sqrt(hs);
                    mx = fmax(mx, p[j]);
                }
                for (int j = 0; j < n; j++) { p[j] = exp(p[j] - mx); sum += p[j]; }
                for (int j = 0; j < n; j++) p[j] /= sum;
                const real *dO = dout + ((size_t)b * T + t) * C + h * hs;
                double r = 0;
                for (int j = 0; j < n; j++) {
                    const real *v = qkv + ((size_t)b * T + j) * C3 + 2 * C + h * hs;
                    double *dv = dqkv + ((size_t)b * T + j) * C3 + 2 * C + h * hs;
                    dp[j] = 0;
                    for (int i = 0; i < hs; i++) {
                        o[i] += p[j] * v[i];
                        dv[i] += p[j] * dO[i];
                        dp[j] += (double)dO[i] * v[i];
                    }
                    r += p[j] * dp[j];
                }
                double *dq = dqkv + ((size_t)b * T + t) * C3 + h * hs;
                for (int j = 0; j < n; j++) {
                    double ds = p[j] * (dp[j] - r) / sqrt(hs);
                    const real *k = qkv + ((size_t)b * T + j) * C3 + C + h * hs;
                    double *dk = dqkv + ((size_t)b * T + j) * C3 + C + h * hs;
                    for (int i = 0; i < hs; i++) { dq[i] += ds * k[i]; dk[i] += ds * q[i]; }
                }
            }
    free(p); free(dp);
}

static void test_attention(int causal) {
    int B = 4, T = 64, C = 64, NH = 4;
    int32_t vl[4] = {64, 40, 1, 17};
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = (size_t)B * NH * T * T;
    real *qkv = rnormal(nq, 1), *dout = rnormal(no, 1), *out = rzeros(no), *att = rzeros(na);
    real *dqkv = rzeros(nq);
    double *rout = dzeros(no), *rdq = dzeros(nq);
    attention_forward(out, att, qkv, vl, causal, B, T, C, NH);
    attention_backward(dqkv, dout, qkv, att, vl, causal, B, T, C, NH);
    naive_attention(rout, rdq, qkv, dout, vl, causal, B, T, C, NH);
    CHECK_REL(causal ? "attention forward (causal, padded)" : "attention forward (bidirectional, padded)",
              rel_vs(out, rout, no), TOL);
    CHECK_REL(causal ? "attention backward (causal, padded)" : "attention backward (bidirectional, padded)",
              rel_vs(dqkv, rdq, nq), TOL);

    real *t = rnormal(nq, 1), *tout = rzeros(no), *tatt = rzeros(na);
    attention_forward_tangent(tout, tatt, qkv, t, att, vl, causal, B, T, C, NH);
    CHECK_REL("attention <dout, J t> = <J^T dout, t>", rel2(rdot(dout, tout, no), rdot(dqkv, t, nq)), TOL);
    real *u = rnormal(nq, 1), *uout = rzeros(no), *uatt = rzeros(na), *ht = rzeros(nq), *hu = rzeros(nq);
    attention_forward_tangent(uout, uatt, qkv, u, att, vl, causal, B, T, C, NH);
    attention_backward_tangent(ht, dout, NULL, qkv, t, att, tatt, vl, causal, B, T, C, NH);
    attention_backward_tangent(hu, dout, NULL, qkv, u, att, uatt, vl, causal, B, T, C, NH);
    CHECK_REL("attention Hessian symmetry", rel2(rdot(u, ht, nq), rdot(t, hu, nq)), 1e-4);
    /* backward_tangent with zero parameter tangent = backward of the cotangent tangent */
    real *lin = rzeros(nq);
    attention_backward_tangent(lin, dout, dout, qkv, NULL, att, NULL, vl, causal,
                               B, T, C, NH);
    double d = 0, m = 0;
    for (size_t i = 0; i < nq; i++) { d = fmax(d, fabs(lin[i] - dqkv[i])); m = fmax(m, fabs(dqkv[i])); }
    CHECK_REL("attention backward_tangent(t=0) = backward", d / m, 1e-6);
    free(qkv); free(dout); free(out); free(att); free(dqkv); free(rout); free(rdq); free(t); free(tout);
    free(tatt); free(u); free(uout); free(uatt); free(ht); free(hu); free(lin);
}

/* ---- cross-entropy, gelu, embedding, meanpool, weights, adamw ------------------------ */
static void test_crossentropy(void) {
    int B = 4, T = 32, V = 300;
    int32_t nv[4] = {32, 20, 0, 1}, *tg = xmalloc((size_t)B * T * sizeof(int32_t));
    for (int i = 0; i < B * T; i++) tg[i] = (int32_t)(urand() * V);
    size_t n = (size_t)B * T * V;
    real *l = rnormal(n, 3), *p = rzeros(n), *loss = rzeros(B), *dl = rnormal(B, 1), *dlog = rzeros(n);
    double ref[4], *rdl = dzeros(n);
    crossentropy_forward(loss, p, l, tg, nv, B, T, V, V);
    crossentropy_backward(dlog, p, tg, nv, dl, B, T, V, V);
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int t = 0; t < nv[b]; t++) {
            const real *row = l + ((size_t)b * T + t) * V;
            double mx = -INFINITY, z = 0;
            for (int v = 0; v < V; v++) mx = fmax(mx, row[v]);
            for (int v = 0; v < V; v++) z += exp(row[v] - mx);
            s += mx + log(z) - row[tg[b * T + t]];
            for (int v = 0; v < V; v++)
                rdl[((size_t)b * T + t) * V + v] = dl[b] / nv[b] * (exp(row[v] - mx) / z - (v == tg[b * T + t]));
        }
        ref[b] = nv[b] ? s / nv[b] : 0;
    }
    CHECK_REL("crossentropy forward", rel_vs(loss, ref, B), TOL);
    CHECK_REL("crossentropy backward", rel_vs(dlog, rdl, n), TOL);
    /* the losses alone, and the backward in place (from the probabilities, and from the
     * logits): the same bits as the forward's and as the backward into zeros; rows past
     * n_valid (probabilities, logits) must come out 0 */
    real *loss0 = rzeros(B), *xp = xmalloc(n * sizeof(real)), *xl = xmalloc(n * sizeof(real));
    crossentropy_forward(loss0, NULL, l, tg, nv, B, T, V, V);
    TEST_CHECK(!memcmp(loss0, loss, B * sizeof(real)),
               "crossentropy forward without probs: other losses (%g vs %g)", loss0[0], loss[0]);
    memcpy(xp, p, n * sizeof(real));
    memcpy(xl, l, n * sizeof(real));
    crossentropy_backward_in_place(xp, NULL, 0, tg, nv, dl, B, T, V, V);
    for (int b = 0; b < B; b++) loss0[b] = -1;   /* must be written */
    crossentropy_backward_in_place(xl, loss0, 1, tg, nv, dl, B, T, V, V);
    TEST_CHECK(!memcmp(loss0, loss, B * sizeof(real)),
               "crossentropy backward in place from logits: other losses than the forward's "
               "(%g vs %g)", loss0[0], loss[0]);
    size_t bad_p = 0, bad_l = 0;
    for (size_t i = 0; i < n; i++) {
        bad_p += memcmp(&xp[i], &dlog[i], sizeof(real)) != 0;
        bad_l += memcmp(&xl[i], &dlog[i], sizeof(real)) != 0;
    }
    TEST_CHECK(bad_p == 0 && bad_l == 0,
               "crossentropy backward in place: %zu (from probs) and %zu (from logits) of %zu "
               "elements differ from the backward's", bad_p, bad_l, n);
    printf("  crossentropy backward in place: %zu and %zu of %zu elements differ\n", bad_p, bad_l, n);
    free(loss0); free(xp); free(xl);
    real *tl = rnormal(n, 1), *tloss = rzeros(B), *dtl = rnormal(B, 1);
    crossentropy_forward_tangent(tloss, p, tl, tg, nv, B, T, V, V);
    CHECK_REL("crossentropy <dl, J t> = <J^T dl, t>", rel2(rdot(dl, tloss, B), rdot(dlog, tl, n)), TOL);
    real *u = rnormal(n, 1), *ht = rzeros(n), *hu = rzeros(n);
    crossentropy_backward_tangent(ht, p, tl, tg, nv, dl, NULL, B, T, V, V);
    crossentropy_backward_tangent(hu, p, u, tg, nv, dl, NULL, B, T, V, V);
    CHECK_REL("crossentropy Hessian symmetry", rel2(rdot(u, ht, n), rdot(tl, hu, n)), 1e-4);
    {   /* the backward tangent in place over ṫl: the bits of the op into zeros, with and
         * without dl̇; rows past n_valid come out 0 */
        real *ref = rzeros(n), *x = xmalloc(n * sizeof(real));
        size_t bad[2] = { 0, 0 };
        for (int k = 0; k < 2; k++) {
            const real *dt = k ? dtl : NULL;
            memset(ref, 0, n * sizeof(real));
            crossentropy_backward_tangent(ref, p, tl, tg, nv, dl, dt, B, T, V, V);
            memcpy(x, tl, n * sizeof(real));
            crossentropy_backward_tangent_in_place(x, p, tg, nv, dl, dt, B, T, V, V);
            for (size_t i = 0; i < n; i++) bad[k] += memcmp(&x[i], &ref[i], sizeof(real)) != 0;
        }
        TEST_CHECK(bad[0] == 0 && bad[1] == 0,
                   "crossentropy backward tangent in place: %zu and %zu of %zu elements differ "
                   "from the op's (dtlosses NULL, given)", bad[0], bad[1], n);
        printf("  crossentropy backward tangent in place: %zu and %zu of %zu elements differ\n",
               bad[0], bad[1], n);
        free(ref); free(x);
    }
    free(tg); free(l); free(p); free(loss); free(dl); free(dlog); free(rdl); free(tl); free(tloss);
    free(dtl); free(u); free(ht); free(hu);
}

static void test_elementwise(void) {
    size_t n = 50000;
    real *x = rnormal(n, 2), *y = rzeros(n), *dy = rnormal(n, 1), *dx = rzeros(n);
    double *ref = dzeros(n), *rdx = dzeros(n);
    gelu_forward(y, x, n);
    gelu_backward(dx, x, dy, n);
    for (size_t i = 0; i < n; i++) {
        double v = x[i], k = sqrt(2 / M_PI), u = k * (v + 0.044715 * v * v * v), th = tanh(u);
        ref[i] = 0.5 * v * (1 + th);
        rdx[i] = dy[i] * (0.5 * (1 + th) + 0.5 * v * (1 - th * th) * k * (1 + 3 * 0.044715 * v * v));
    }
    CHECK_REL("gelu forward", rel_vs(y, ref, n), TOL);
    CHECK_REL("gelu backward", rel_vs(dx, rdx, n), TOL);
    real *t = rnormal(n, 1), *ty = rzeros(n), *u = rnormal(n, 1), *ht = rzeros(n), *hu = rzeros(n);
    gelu_forward_tangent(ty, x, t, n);
    CHECK_REL("gelu <dy, J t> = <J^T dy, t>", rel2(rdot(dy, ty, n), rdot(dx, t, n)), TOL);
    gelu_backward_tangent(ht, x, t, dy, NULL, n);
    gelu_backward_tangent(hu, x, u, dy, NULL, n);
    CHECK_REL("gelu Hessian symmetry", rel2(rdot(u, ht, n), rdot(t, hu, n)), TOL);
    residual_forward(y, x, dy, n);
    for (size_t i = 0; i < n; i++) ref[i] = (double)x[i] + dy[i];
    CHECK_REL("residual forward", rel_vs(y, ref, n), 1e-7);
    free(x); free(y); free(dy); free(dx); free(ref); free(rdx); free(t); free(ty); free(u); free(ht); free(hu);
}

static void test_embedding_meanpool(void) {
    int B = 8, T = 64, C = 96, V = 50;
    int32_t *tok = xmalloc((size_t)B * T * sizeof(int32_t)), vl[8] = {64, 3, 0, 10, 64, 1, 33, 63};
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)(urand() * V);
    real *wte = rnormal((size_t)V * C, 1), *wpe = rnormal((size_t)T * C, 1), *out = rzeros((size_t)B * T * C);
    real *dout = rnormal((size_t)B * T * C, 1), *dwte = rzeros((size_t)V * C), *dwpe = rzeros((size_t)T * C);
    double *ref = dzeros((size_t)B * T * C), *rwte = dzeros((size_t)V * C), *rwpe = dzeros((size_t)T * C);
    embedding_forward(out, tok, wte, wpe, B, T, C);
    embedding_backward(dwte, dwpe, dout, tok, B, T, C);
    for (int bt = 0; bt < B * T; bt++)
        for (int c = 0; c < C; c++) {
            ref[(size_t)bt * C + c] = (double)wte[(size_t)tok[bt] * C + c] + wpe[(size_t)(bt % T) * C + c];
            rwte[(size_t)tok[bt] * C + c] += dout[(size_t)bt * C + c];
            rwpe[(size_t)(bt % T) * C + c] += dout[(size_t)bt * C + c];
        }
    CHECK_REL("embedding forward", rel_vs(out, ref, (size_t)B * T * C), 1e-7);
    CHECK_REL("embedding backward dwte (scatter)", rel_vs(dwte, rwte, (size_t)V * C), TOL);
    CHECK_REL("embedding backward dwpe", rel_vs(dwpe, rwpe, (size_t)T * C), TOL);

    real *pool = rzeros((size_t)B * C), *dpool = rnormal((size_t)B * C, 1), *din = rzeros((size_t)B * T * C);
    meanpool_forward(pool, out, vl, B, T, C);
    meanpool_backward(din, dpool, vl, B, T, C);
    double *rp = dzeros((size_t)B * C);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < vl[b]; t++)
            for (int c = 0; c < C; c++) rp[(size_t)b * C + c] += (double)out[((size_t)b * T + t) * C + c] / vl[b];
    CHECK_REL("meanpool forward", rel_vs(pool, rp, (size_t)B * C), TOL);
    CHECK_REL("meanpool <dpool, J x> = <J^T dpool, x>",
              rel2(rdot(dpool, pool, (size_t)B * C), rdot(din, out, (size_t)B * T * C)), TOL);
    free(tok); free(wte); free(wpe); free(out); free(dout); free(dwte); free(dwpe); free(ref); free(rwte);
    free(rwpe); free(pool); free(dpool); free(din); free(rp);
}

static void test_weights_adamw(void) {
    enum { B = 16 };
    real z[B], w[B];
    for (int i = 0; i < B; i++) z[i] = (real)(2 * nrand());
    WeightNormConfig sm = {WEIGHT_NORM_SOFTMAX, 0.5, 0, 0, 0};
    weights_forward(w, z, &sm, B);
    double sum = 0, ref[B], zs = 0;
    for (int i = 0; i < B; i++) { ref[i] = exp(z[i] / 0.5); zs += ref[i]; }
    for (int i = 0; i < B; i++) { ref[i] *= B / zs; sum += w[i]; }
    CHECK_REL("weights softmax forward", rel_vs(w, ref, B), TOL);
    TEST_CHECK(fabs(sum - B) <= 1e-4, "softmax weights must sum to B (%g)", sum);

    size_t n = 20000;
    real *th = rnormal(n, 1), *m = rnormal(n, 0.01), *v = rzeros(n), *g = rnormal(n, 0.01);
    double *rth = dzeros(n), *rm = dzeros(n), *rv = dzeros(n);
    for (size_t i = 0; i < n; i++) { v[i] = (real)(1e-4 * urand()); rth[i] = th[i]; rm[i] = m[i]; rv[i] = v[i]; }
    AdamWHyper h = {1e-3, 0.9, 0.95, 1e-8, 0.1, 0};
    for (int k = 1; k <= 5; k++) {
        h.step = k;
        adamw_forward(th, m, v, g, 0.5, n, &h);
        for (size_t i = 0; i < n; i++) {
            double gi = 0.5 * g[i];
            rth[i] *= 1 - h.lr * h.weight_decay;
            rm[i] = 0.9 * rm[i] + 0.1 * gi;
            rv[i] = 0.95 * rv[i] + 0.05 * gi * gi;
            rth[i] -= h.lr / (1 - pow(0.9, k)) * rm[i] / (sqrt(rv[i]) / sqrt(1 - pow(0.95, k)) + h.eps);
        }
    }
    CHECK_REL("adamw 5 steps, theta", rel_vs(th, rth, n), TOL);
    CHECK_REL("adamw 5 steps, m", rel_vs(m, rm, n), TOL);
    CHECK_REL("adamw 5 steps, v", rel_vs(v, rv, n), TOL);
    free(th); free(m); free(v); free(g); free(rth); free(rm); free(rv);
}

/* the vectorized exp and tanh of the float build: ≤ 2 ulp, NaN propagates */
static void test_exp_tanh(void) {
    double e_exp = 0, e_tanh = 0;
    for (double x = -87; x < 88; x += 1e-3) {
        double r = exp((double)(real)x);
        e_exp = fmax(e_exp, fabs(ops_exp((real)x) - r) / r);
    }
    for (double x = -12; x < 12; x += 1e-4) e_tanh = fmax(e_tanh, fabs(ops_tanh((real)x) - tanh((double)(real)x)));
    CHECK_REL("ops_exp on [-87, 88] (relative)", e_exp, 2.5e-7);
    CHECK_REL("ops_tanh on [-12, 12] (absolute)", e_tanh, 5e-7);
    TEST_CHECK(isnan(ops_exp(NAN)) && isnan(ops_tanh(NAN)), "exp/tanh must propagate NaN");
    TEST_CHECK(ops_exp(-1000) >= 0 && ops_exp(-1000) < 1e-37 && isfinite(ops_exp(1000)), "exp clamps");
}

int main(void) {
    printf("float ops vs naive double references (" REAL_NAME " build), tolerance %.0e\n", TOL);
    test_exp_tanh();
    test_matmul(300, 96, 160, MATMUL_W_C_OC);
    test_matmul(300, 96, 257, MATMUL_W_OC_C);
    test_layernorm(300, 96);
    test_attention(1);
    test_attention(0);
    test_crossentropy();
    test_elementwise();
    test_embedding_meanpool();
    test_weights_adamw();
    return test_finish("test_ops_float");
}
