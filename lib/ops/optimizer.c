/* optimizer.c — the inner optimizers as elementwise maps, and their reverse (DESIGN §4.2):
 * AdamW exactly as torch.optim.AdamW, SGD as torch.optim.SGD (momentum, dampening 0,
 * coupled weight decay). The *_backward functions are the transpose of the update's
 * Jacobian with respect to (θ, state, ĝ): the meta-gradient's reverse step through U.
 * Must never produce inf/NaN where v = 0: the sqrt(v) term there is taken as 0.
 *
 * AdamW, per element, with ĝ = s·g, k = step, c1 = 1−β1^k, c2 = 1−β2^k:
 *   θ1 = θ0(1 − lr·wd)
 *   m1 = m0 + (1−β1)(ĝ − m0)              (torch's lerp; = β1 m0 + (1−β1) ĝ)
 *   v1 = β2 v0 + (1−β2) ĝ²
 *   D  = sqrt(v1)/sqrt(c2) + eps
 *   θ2 = θ1 − (lr/c1)·m1/D
 * Reverse, given θ̄2, m̄1, v̄1:
 *   m̄  = m̄1 − (lr/c1)/D · θ̄2
 *   v̄  = v̄1 + (lr/c1)·m1/D² · 1/(2 sqrt(v1) sqrt(c2)) · θ̄2     (0 where v1 = 0)
 *   θ̄0 = (1 − lr·wd) θ̄2,  m̄0 = β1 m̄,  v̄0 = β2 v̄,  ḡ(ĝ) = (1−β1) m̄ + 2(1−β2) ĝ v̄. */
#include <math.h>

#include "cpu_ops.h"
#include "cpu_util.h"

void adamw_forward(real *theta /*[n]*/, real *m /*[n]*/, real *v /*[n]*/, const real *g /*[n]*/,
                   double g_scale, size_t n, const AdamWHyper *h) {
    double k = (double)h->step;
    real decay = (real)(1.0 - h->lr * h->weight_decay);
    real b1 = (real)h->beta1, b2 = (real)h->beta2, eps = (real)h->eps, s = (real)g_scale;
    real step_size = (real)(h->lr / (1.0 - pow(h->beta1, k)));
    real c2_sqrt = (real)sqrt(1.0 - pow(h->beta2, k));
    #pragma omp parallel for if (n > OPS_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        real gh = s * g[i];
        real th = theta[i] * decay;
        real mi = m[i] + (1 - b1) * (gh - m[i]);
        real vi = b2 * v[i] + (1 - b2) * gh * gh;
        real denom = SQRT(vi) / c2_sqrt + eps;
        m[i] = mi;
        v[i] = vi;
        theta[i] = th - step_size * (mi / denom);
    }
}

void adamw_backward(real *dtheta /*[n] in: θ̄ after, out: θ̄ before*/,
                    real *dm /*[n] in/out, or NULL*/, real *dv /*[n] in/out, or NULL*/,
                    real *dg /*[n] out: cotangent of ĝ, or NULL*/,
                    const real *m_old /*[n]*/, const real *v_old /*[n]*/, const real *g /*[n]*/,
                    double g_scale, size_t n, const AdamWHyper *h) {
    double k = (double)h->step;
    real decay = (real)(1.0 - h->lr * h->weight_decay);
    real b1 = (real)h->beta1, b2 = (real)h->beta2, eps = (real)h->eps, s = (real)g_scale;
    real step_size = (real)(h->lr / (1.0 - pow(h->beta1, k)));
    real c2_sqrt = (real)sqrt(1.0 - pow(h->beta2, k));
    #pragma omp parallel for if (n > OPS_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        real gh = s * g[i];
        real mi = m_old[i] + (1 - b1) * (gh - m_old[i]);
        real vi = b2 * v_old[i] + (1 - b2) * gh * gh;
        real sv = SQRT(vi);
        real denom = sv / c2_sqrt + eps;
        real dth = dtheta[i];
        real mbar = (dm ? dm[i] : 0) - step_size / denom * dth;
        real vbar = dv ? dv[i] : 0;
        if (vi > 0) vbar += step_size * mi / (denom * denom) / (2 * sv * c2_sqrt) * dth;
        dtheta[i] = decay * dth;
        if (dm) dm[i] = b1 * mbar;
        if (dv) dv[i] = b2 * vbar;
        if (dg) dg[i] = (1 - b1) * mbar + 2 * (1 - b2) * gh * vbar;
    }
}

/* torch.optim.SGD: d = ĝ + wd·θ0; buf1 = μ buf0 + d; θ1 = θ0 − lr·buf1.
 * With momentum 0 (or buf NULL) torch keeps no buffer: θ1 = θ0 − lr·d, buf untouched. */
void sgd_forward(real *theta /*[n]*/, real *buf /*[n] or NULL*/, const real *g /*[n]*/,
                 double g_scale, size_t n, const SGDHyper *h) {
    real lr = (real)h->lr, mu = (real)h->momentum, wd = (real)h->weight_decay, s = (real)g_scale;
    int use_buf = buf && h->momentum != 0;
    #pragma omp parallel for if (n > OPS_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        real d = s * g[i] + wd * theta[i];
        if (use_buf) { buf[i] = mu * buf[i] + d; d = buf[i]; }
        theta[i] -= lr * d;
    }
}

/* Reverse of sgd_forward (linear): b̄ = b̄1 − lr θ̄1; θ̄0 = θ̄1 + wd b̄; b̄0 = μ b̄; ḡ = b̄.
 * Momentum 0: θ̄0 = (1 − lr wd) θ̄1, ḡ = −lr θ̄1, b̄0 = b̄1 (the buffer is untouched). */
void sgd_backward(real *dtheta /*[n] in/out*/, real *dbuf /*[n] in/out, or NULL*/,
                  real *dg /*[n] out, or NULL*/, size_t n, const SGDHyper *h) {
    real lr = (real)h->lr, mu = (real)h->momentum, wd = (real)h->weight_decay;
    int use_buf = h->momentum != 0;
    #pragma omp parallel for if (n > OPS_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++) {
        real dth = dtheta[i];
        real bbar = (use_buf && dbuf ? dbuf[i] : 0) - lr * dth;
        dtheta[i] = dth + wd * bbar;
        if (use_buf && dbuf) dbuf[i] = mu * bbar;
        if (dg) dg[i] = bbar;
    }
}
