/* weights.c — example weights from rater logits (DESIGN §3), and their backward.
 *   sigmoid:  w_i = clamp(σ(z_i/τ), w_min, w_max);  dz_i = dw_i·s(1−s)/τ where
 *             w_min < s < w_max, and exactly 0 where the clamp is active (1 − s taken
 *             as σ(−z_i/τ): no cancellation where s is near 1).
 *   softmax:  w = B·softmax(z/τ);  dz_j = (1/τ)·w_j·(dw_j − Σ_i p_i dw_i),  p = w/B.
 *   mean_normalize: w ← w / mean(w) = B w / S, S = Σ w; its reverse is
 *             dw_j = (B/S)·dw'_j − (B/S²)·Σ_i dw'_i w_i.
 * Rater-only, first order. Batches are small: serial. */
#include <math.h>

#include "cpu_ops.h"
#include "cpu_util.h"

static double sigmoid(double x) {
    if (x >= 0) return 1 / (1 + exp(-x));
    double e = exp(x);
    return e / (1 + e);
}

/* w before mean normalization, in double */
static void raw_weights(double *w, const real *z, const WeightNormConfig *cfg, int B) {
    if (cfg->kind == WEIGHT_NORM_SOFTMAX) {
        double mx = -INFINITY, sum = 0;
        for (int i = 0; i < B; i++) mx = z[i] / cfg->tau > mx ? z[i] / cfg->tau : mx;
        for (int i = 0; i < B; i++) { w[i] = exp(z[i] / cfg->tau - mx); sum += w[i]; }
        for (int i = 0; i < B; i++) w[i] *= B / sum;
    } else {
        for (int i = 0; i < B; i++) {
            double s = sigmoid(z[i] / cfg->tau);
            w[i] = s < cfg->w_min ? cfg->w_min : s > cfg->w_max ? cfg->w_max : s;
        }
    }
}

static double sum_of(const double *w, int B) {
    double s = 0;
    for (int i = 0; i < B; i++) s += w[i];
    return s;
}

void weights_forward(real *w /*[B]*/, const real *z /*[B]*/, const WeightNormConfig *cfg, int B) {
    double raw[B > 0 ? B : 1];
    raw_weights(raw, z, cfg, B);
    double S = sum_of(raw, B);
    double k = cfg->mean_normalize && S > 0 ? B / S : 1;
    for (int i = 0; i < B; i++) w[i] = (real)(raw[i] * k);
}

void weights_backward(real *dz /*[B]*/, const real *dw /*[B]*/, const real *z /*[B]*/,
                      const WeightNormConfig *cfg, int B) {
    if (B <= 0) return;
    double raw[B], draw[B];
    raw_weights(raw, z, cfg, B);
    double S = sum_of(raw, B);
    if (cfg->mean_normalize && S > 0) {
        double dot = 0;
        for (int i = 0; i < B; i++) dot += (double)dw[i] * raw[i];
        for (int i = 0; i < B; i++) draw[i] = B / S * dw[i] - B / (S * S) * dot;
    } else {
        for (int i = 0; i < B; i++) draw[i] = dw[i];
    }
    if (cfg->kind == WEIGHT_NORM_SOFTMAX) {
        double pdw = 0;
        for (int i = 0; i < B; i++) pdw += raw[i] / B * draw[i];
        for (int i = 0; i < B; i++) dz[i] += (real)(raw[i] * (draw[i] - pdw) / cfg->tau);
    } else {
        for (int i = 0; i < B; i++) {
            double s = sigmoid(z[i] / cfg->tau);
            if (s > cfg->w_min && s < cfg->w_max)
                dz[i] += (real)(draw[i] * s * sigmoid(-z[i] / cfg->tau) / cfg->tau);
        }
    }
}
