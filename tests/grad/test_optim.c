/* test_optim.c — optim.c in double (-DDR_DOUBLE):
 *  - lr_at: linear warmup, cosine from lr down to min_lr_frac·lr at total_steps and flat
 *    after, constant schedule;
 *  - clip_factor: s = c/‖g‖ above the threshold, 1 at or below it and when c = 0;
 *  - clip_backward: ⟨dĝ, ĝ(g + h e)⟩ differentiated along e by the 5-point stencil against
 *    ⟨clip_backward(dĝ), e⟩, with the clip active and inactive (rel. error ≤ 1e-6);
 *  - optim_step: one AdamW step matches torch.optim.AdamW written out by hand on ĝ = s·g,
 *    and one SGD-momentum step likewise; step counts advance.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "check.h"
#include "lm.h"
#include "optim.h"
#include "test.h"

static const Backend *be = &backend_cpu;
enum { N = 50 };

static double clipped_dot(const real *g, const real *dir, double h, const real *w, double c) {
    real x[N];
    for (int i = 0; i < N; i++) x[i] = g[i] + (real)h * dir[i];
    double s = clip_factor(be, x, N, c, NULL), d = 0;
    for (int i = 0; i < N; i++) d += w[i] * s * x[i];
    return d;
}

int main(void) {
    /* ---- schedule ---- */
    OptimHyper h = { .kind = OPTIM_ADAMW, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8,
                     .weight_decay = 0.1, .clip = 1.0, .schedule = LR_COSINE, .warmup_steps = 10,
                     .total_steps = 110, .min_lr_frac = 0.1 };
    TEST_CHECK(fabs(lr_at(&h, 0) - 1e-4) < 1e-18, "warmup step 0: %g", lr_at(&h, 0));
    TEST_CHECK(fabs(lr_at(&h, 9) - 1e-3) < 1e-18, "warmup last step: %g", lr_at(&h, 9));
    TEST_CHECK(fabs(lr_at(&h, 10) - 1e-3) < 1e-18, "cosine start: %g", lr_at(&h, 10));
    TEST_CHECK(fabs(lr_at(&h, 60) - 0.55e-3) < 1e-15, "cosine midpoint: %g", lr_at(&h, 60));
    TEST_CHECK(fabs(lr_at(&h, 110) - 1e-4) < 1e-15 && fabs(lr_at(&h, 500) - 1e-4) < 1e-15,
               "cosine floor: %g %g", lr_at(&h, 110), lr_at(&h, 500));
    OptimHyper hc = h;
    hc.schedule = LR_CONSTANT;
    TEST_CHECK(lr_at(&hc, 50) == 1e-3 && fabs(lr_at(&hc, 4) - 5e-4) < 1e-18, "constant schedule");

    /* ---- clip ---- */
    real g[N], w[N], dir[N], dg[N];
    for (int i = 0; i < N; i++) {
        g[i] = (real)(0.5 * dr_normal(1, i));
        w[i] = (real)dr_normal(2, i);
        dir[i] = (real)dr_normal(3, i);
    }
    double norm, s = clip_factor(be, g, N, 1.0, &norm);
    TEST_CHECK(norm > 1 && fabs(s - 1.0 / norm) < 1e-15, "active clip: norm %g, s %g", norm, s);
    TEST_CHECK(clip_factor(be, g, N, 2 * norm, NULL) == 1 && clip_factor(be, g, N, norm, NULL) == 1 &&
               clip_factor(be, g, N, 0, NULL) == 1, "inactive clip must give s = 1");
    const double clips[2] = { 0.5 * norm, 2 * norm };   /* active, inactive */
    for (int k = 0; k < 2; k++) {
        clip_backward(be, dg, w, g, N, clips[k]);
        double an = 0;
        for (int i = 0; i < N; i++) an += dg[i] * dir[i];
        const double hh = 1e-4;
        double fd = (clipped_dot(g, dir, -2 * hh, w, clips[k]) - 8 * clipped_dot(g, dir, -hh, w, clips[k]) +
                     8 * clipped_dot(g, dir, hh, w, clips[k]) - clipped_dot(g, dir, 2 * hh, w, clips[k])) / (12 * hh);
        double e = test_rel_err(an, fd);
        TEST_CHECK(e <= 1e-6, "clip_backward (%s): %.12e vs FD %.12e, rel %.2e", k ? "inactive" : "active",
                   an, fd, e);
    }

    /* ---- one AdamW step against the formula, with the clip active ---- */
    real *theta = be->alloc(N * sizeof(real)), *grads = be->alloc(N * sizeof(real));
    real th0[N];
    for (int i = 0; i < N; i++) { theta[i] = th0[i] = (real)dr_normal(4, i); grads[i] = g[i]; }
    OptimState st;
    optim_state_init(&st, be, OPTIM_ADAMW, N);
    OptimStepInfo info;
    optim_step(be, &st, theta, grads, &h, 1e-3, &info);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double gh = s * g[i], m = 0.1 * gh, v = 0.05 * gh * gh;
        double want = th0[i] * (1 - 1e-3 * 0.1) - (1e-3 / 0.1) * m / (sqrt(v) / sqrt(0.05) + 1e-8);
        double e = test_rel_err(theta[i], want);
        if (e > worst) worst = e;
    }
    TEST_CHECK(worst <= 1e-12, "AdamW step differs from torch.optim.AdamW: rel %.2e", worst);
    TEST_CHECK(st.step == 1 && fabs(info.clip_scale - s) < 1e-15 && fabs(info.grad_norm - norm) < 1e-12,
               "step info: step %ld, s %g, norm %g", st.step, info.clip_scale, info.grad_norm);
    optim_state_free(&st, be);

    /* ---- one SGD-momentum step (buffer starts at 0: buf = ĝ + wd·θ) ---- */
    OptimHyper hs = { .kind = OPTIM_SGD, .lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .clip = 0 };
    for (int i = 0; i < N; i++) theta[i] = th0[i];
    optim_state_init(&st, be, OPTIM_SGD, N);
    optim_step(be, &st, theta, grads, &hs, 0.1, NULL);
    worst = 0;
    for (int i = 0; i < N; i++) {
        double want = th0[i] - 0.1 * (g[i] + 0.01 * th0[i]);
        double e = test_rel_err(theta[i], want);
        if (e > worst) worst = e;
    }
    TEST_CHECK(worst <= 1e-12 && st.v == NULL, "SGD step differs from torch.optim.SGD: rel %.2e", worst);
    optim_state_free(&st, be);
    be->free(theta);
    be->free(grads);
    return test_finish("test_optim");
}
