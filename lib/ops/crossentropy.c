/* crossentropy.c — softmax cross-entropy, one loss per example: the mean over its valid
 * target positions t < n_valid[b] (targets beyond are never read; n_valid[b] = 0 gives
 * loss 0 and no gradient). With p = softmax(logits) per row and n = n_valid[b]:
 *   loss_b   = (1/n) Σ_t −log p[t, y_t]
 *   backward:          dlogits[t] += (dl_b/n)(p − onehot(y_t))
 *   tangent:           l̇_b = (1/n) Σ_t (Σ_v p·ṫl − ṫl[y_t])
 *   backward in place: x[t] = (dl_b/n)(p − onehot(y_t)) over x = p or x = the logits
 *                      (from the logits it can give loss_b too: forward and backward in
 *                      one pass over the rows)
 *   tangent of backward: dtlogits[t] += (dl_b/n)·ṗ + (dl̇_b/n)(p − onehot),
 *                        ṗ = p ⊙ (ṫl − Σ_v p·ṫl); in place: written over ṫl
 * Rows run in parallel; per-example sums are taken over per-row values in row order.
 * Every [B,T,V] argument has rows ldv ≥ V apart (the LM's logits: backend.h); the
 * columns past V are neither read nor written. */
#include <stdlib.h>

#include "check.h"
#include "cpu_ops.h"
#include "cpu_util.h"

static inline int n_targets(const int32_t *n_valid, int b, int T) {
    return ops_valid(n_valid, b, T);
}

/* row bt of x for an op that writes over it, or NULL after zeroing it (t ≥ n_valid[b]) */
static real *valid_row_or_zero(real *x, int bt, const int32_t *n_valid, int T, int V,
                               int ldv) {
    real *d = x + (size_t)bt * ldv;
    if (bt % T < n_targets(n_valid, bt / T, T)) return d;
    for (int v = 0; v < V; v++) d[v] = 0;
    return NULL;
}

/* losses[b] = (1/n_b) Σ_{t<n_b} row[b*T+t] */
static void mean_per_example(real *losses, const real *row, const int32_t *n_valid,
                             int B, int T) {
    for (int b = 0; b < B; b++) {
        int n = n_targets(n_valid, b, T);
        real s = 0;
        for (int t = 0; t < n; t++) s += row[(size_t)b * T + t];
        losses[b] = n > 0 ? s / n : 0;
    }
}

/* Σ_v exp(l[v] − mx) in ops_row_sum's lane order, the sum ops_row_exp returns, bit for
 * bit, without writing the exponentials anywhere */
static real row_exp_sum(const real *l, real mx, int V) {
    real acc[OPS_LANES] = {0};
    int i = 0;
    for (; i + OPS_LANES <= V; i += OPS_LANES)
        for (int k = 0; k < OPS_LANES; k++) acc[k] += ops_exp(l[i + k] - mx);
    real s = 0;
    for (int k = 0; k < OPS_LANES; k++) s += acc[k];
    for (; i < V; i++) s += ops_exp(l[i] - mx);
    return s;
}

/* p = softmax(l) over one row (p may be l), as every face here takes it; returns the
 * exp-sum, *mx the row's maximum */
static real softmax_row(real *p, const real *l, int V, real *mx) {
    *mx = ops_row_max(l, V);
    real sum = ops_row_exp(p, l, *mx, V);
    real inv = 1 / sum;
    for (int v = 0; v < V; v++) p[v] *= inv;
    return sum;
}

void crossentropy_forward(real *losses /*[B]*/,
                          real *probs /*[B,T,V], may alias logits, or NULL*/,
                          const real *logits /*[B,T,V]*/, const int32_t *targets /*[B,T]*/,
                          const int32_t *n_valid /*[B] or NULL*/, int B, int T, int V, int ldv) {
    CHECK(ldv >= V, "crossentropy_forward: row stride %d < V %d", ldv, V);
    real *row_loss = xmalloc((size_t)B * T * sizeof(real));
    #pragma omp parallel for if ((size_t)B * T * V > OPS_PAR_MIN) schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, t = bt % T;
        const real *l = logits + (size_t)bt * ldv;
        int valid = t < n_targets(n_valid, b, T);
        real l_target = valid ? l[targets[bt]] : 0;  /* read before p overwrites l */
        real mx, sum;
        if (probs) {
            sum = softmax_row(probs + (size_t)bt * ldv, l, V, &mx);
        } else {
            mx = ops_row_max(l, V);
            sum = row_exp_sum(l, mx, V);
        }
        row_loss[bt] = valid ? mx + LOG(sum) - l_target : 0;
    }
    mean_per_example(losses, row_loss, n_valid, B, T);
    free(row_loss);
}

void crossentropy_backward(real *dlogits /*[B,T,V]*/, const real *probs /*[B,T,V]*/,
                           const int32_t *targets /*[B,T]*/, const int32_t *n_valid /*[B] or NULL*/,
                           const real *dlosses /*[B]*/, int B, int T, int V, int ldv) {
    CHECK(ldv >= V, "crossentropy_backward: row stride %d < V %d", ldv, V);
    #pragma omp parallel for if ((size_t)B * T * V > OPS_PAR_MIN) schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, t = bt % T, n = n_targets(n_valid, b, T);
        if (t >= n) continue;
        const real *p = probs + (size_t)bt * ldv;
        real *d = dlogits + (size_t)bt * ldv;
        real c = dlosses[b] / n;
        for (int v = 0; v < V; v++) d[v] += c * p[v];
        d[targets[bt]] -= c;
    }
}

void crossentropy_backward_in_place(real *x /*[B,T,V]: probs or logits in, dlogits out*/,
                                    real *losses /*[B] or NULL; with from_logits only*/,
                                    int from_logits, const int32_t *targets /*[B,T]*/,
                                    const int32_t *n_valid /*[B] or NULL*/,
                                    const real *dlosses /*[B]*/, int B, int T, int V, int ldv) {
    CHECK(ldv >= V, "crossentropy_backward_in_place: row stride %d < V %d", ldv, V);
    CHECK(!losses || from_logits, "crossentropy_backward_in_place: the losses need the logits");
    real *row_loss = losses ? xcalloc((size_t)B * T, sizeof(real)) : NULL;
    #pragma omp parallel for if ((size_t)B * T * V > OPS_PAR_MIN) schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, n = n_targets(n_valid, b, T);
        real *d = valid_row_or_zero(x, bt, n_valid, T, V, ldv);
        if (!d) continue;
        if (from_logits) {
            real mx, l_target = d[targets[bt]];   /* read before the softmax overwrites it */
            real sum = softmax_row(d, d, V, &mx);
            if (row_loss) row_loss[bt] = mx + LOG(sum) - l_target;   /* the forward's */
        }
        real c = dlosses[b] / n, zero = 0;
        for (int v = 0; v < V; v++) d[v] = zero + c * d[v];   /* crossentropy_backward on zeros */
        d[targets[bt]] -= c;
    }
    if (losses) mean_per_example(losses, row_loss, n_valid, B, T);
    free(row_loss);
}

void crossentropy_forward_tangent(real *tlosses /*[B]*/, const real *probs /*[B,T,V]*/,
                                  const real *tlogits /*[B,T,V] or NULL*/,
                                  const int32_t *targets /*[B,T]*/,
                                  const int32_t *n_valid /*[B] or NULL*/,
                                  int B, int T, int V, int ldv) {
    CHECK(ldv >= V, "crossentropy_forward_tangent: row stride %d < V %d", ldv, V);
    if (!tlogits) {
        for (int b = 0; b < B; b++) tlosses[b] = 0;
        return;
    }
    real *row_t = xmalloc((size_t)B * T * sizeof(real));
    #pragma omp parallel for if ((size_t)B * T * V > OPS_PAR_MIN) schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, t = bt % T;
        if (t >= n_targets(n_valid, b, T)) { row_t[bt] = 0; continue; }
        const real *p = probs + (size_t)bt * ldv, *lt = tlogits + (size_t)bt * ldv;
        row_t[bt] = ops_row_dot(p, lt, V) - lt[targets[bt]];
    }
    mean_per_example(tlosses, row_t, n_valid, B, T);
    free(row_t);
}

void crossentropy_backward_tangent(real *dtlogits /*[B,T,V]*/, const real *probs /*[B,T,V]*/,
                                   const real *tlogits /*[B,T,V] or NULL*/,
                                   const int32_t *targets /*[B,T]*/,
                                   const int32_t *n_valid /*[B] or NULL*/,
                                   const real *dlosses /*[B]*/, const real *dtlosses /*[B] or NULL*/,
                                   int B, int T, int V, int ldv) {
    CHECK(ldv >= V, "crossentropy_backward_tangent: row stride %d < V %d", ldv, V);
    #pragma omp parallel for if ((size_t)B * T * V > OPS_PAR_MIN) schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, t = bt % T, n = n_targets(n_valid, b, T);
        if (t >= n) continue;
        const real *p = probs + (size_t)bt * ldv;
        const real *lt = tlogits ? tlogits + (size_t)bt * ldv : NULL;
        real *d = dtlogits + (size_t)bt * ldv;
        real c = dlosses[b] / n, ct = dtlosses ? dtlosses[b] / n : 0;
        if (lt) {
            real dot = ops_row_dot(p, lt, V);
            for (int v = 0; v < V; v++) d[v] += c * p[v] * (lt[v] - dot) + ct * p[v];
        } else {
            for (int v = 0; v < V; v++) d[v] += ct * p[v];
        }
        d[targets[bt]] -= ct;
    }
}

void crossentropy_backward_tangent_in_place(real *x /*[B,T,V]: tlogits in, dtlogits out*/,
                                            const real *probs /*[B,T,V]*/,
                                            const int32_t *targets /*[B,T]*/,
                                            const int32_t *n_valid /*[B] or NULL*/,
                                            const real *dlosses /*[B]*/,
                                            const real *dtlosses /*[B] or NULL*/,
                                            int B, int T, int V, int ldv) {
    CHECK(ldv >= V, "crossentropy_backward_tangent_in_place: row stride %d < V %d", ldv, V);
    #pragma omp parallel for if ((size_t)B * T * V > OPS_PAR_MIN) schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, n = n_targets(n_valid, b, T);
        real *d = valid_row_or_zero(x, bt, n_valid, T, V, ldv);
        if (!d) continue;
        const real *p = probs + (size_t)bt * ldv;
        real c = dlosses[b] / n, ct = dtlosses ? dtlosses[b] / n : 0, zero = 0;
        real dot = ops_row_dot(p, d, V);
        for (int v = 0; v < V; v++)   /* crossentropy_backward_tangent on zeros */
            d[v] = zero + (c * p[v] * (d[v] - dot) + ct * p[v]);
        d[targets[bt]] -= ct;
    }
}
