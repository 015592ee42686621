/* embedding.cu — token + position embedding on the GPU: out[b,t,:] = wte[tok[b,t],:] +
 * wpe[t,:], and its faces (linear: the tangent faces are the same maps on tangents).
 *
 * The backward scatter is deterministic without atomics and bit-identical to the CPU op
 * (lib/ops/embedding.c), which adds the rows of dout into dwte[tok] in (b,t) order:
 *  - the token ids (device, [B,T]) are copied to the host and counting-sorted there,
 *    stably, into runs of equal tokens (rows of each run in increasing (b,t) order);
 *  - one thread per (run, channel) starts from dwte[tok, c] and adds the run's rows in
 *    that order, so every element sees exactly the CPU's sequence of float additions.
 * The price is one small device→host copy of the ids (4·B·T bytes) and a host sort per
 * call: it synchronizes the stream once per backward, at its end (the embedding is the
 * last op of the backward pass). dwpe[t] += Σ_b dout[b,t]: one thread per (t, c), b in
 * order (again the CPU's sequence). */
#include <string.h>

#include "cuda/cuda_ops.cuh"

static __global__ void embedding_forward_k(float *out, const int32_t *tokens, const float *wte,
                                           const float *wpe, int T, int C, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t bt = i / (size_t)C, c = i % (size_t)C;
        size_t t = bt % (size_t)T;
        float we = wte ? wte[(size_t)tokens[bt] * C + c] : 0.0f;
        float pe = wpe ? wpe[t * C + c] : 0.0f;
        out[i] = we + pe;
    }
}

void cu_embedding_forward(real *out, const int32_t *tokens, const real *wte, const real *wpe,
                          int B, int T, int C) {
    size_t n = (size_t)B * T * C;
    if (!n) return;
    embedding_forward_k<<<cu_blocks(n), CU_THREADS>>>(out, tokens, wte, wpe, T, C, n);
    cudaLaunchCheck();
}

/* tout = twte[tok] + twpe[t] (NULL tangent = 0) */
void cu_embedding_forward_tangent(real *tout, const int32_t *tokens, const real *twte,
                                  const real *twpe, int B, int T, int C) {
    size_t n = (size_t)B * T * C;
    if (!n) return;
    embedding_forward_k<<<cu_blocks(n), CU_THREADS>>>(tout, tokens, twte, twpe, T, C, n);
    cudaLaunchCheck();
}

/* dwte[run_tok[r], c] += Σ over the run's rows, in row order */
static __global__ void dwte_runs_k(float *dwte, const float *dout, const int32_t *order,
                                   const int32_t *run_begin, const int32_t *run_tok, int C) {
    int r = blockIdx.x;
    int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float *w = dwte + (size_t)run_tok[r] * C + c;
    float acc = *w;
    for (int i = run_begin[r]; i < run_begin[r + 1]; i++) acc += dout[(size_t)order[i] * C + c];
    *w = acc;
}

/* dwpe[t, c] += Σ_b dout[b, t, c], b in order */
static __global__ void dwpe_k(float *dwpe, const float *dout, int B, int T, int C) {
    size_t n = (size_t)T * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float acc = dwpe[i];
        for (int b = 0; b < B; b++) acc += dout[(size_t)b * T * C + i];
        dwpe[i] = acc;
    }
}

static void dwte_scatter(float *dwte, const float *dout, const int32_t *tokens, int BT, int C) {
    int32_t *tok = (int32_t *)cu_host_scratch(CU_HSCR_TOKENS, (size_t)BT * sizeof(int32_t));
    cudaCheck(cudaMemcpy(tok, tokens, (size_t)BT * sizeof(int32_t), cudaMemcpyDeviceToHost));
    int32_t vmax = 0;
    for (int i = 0; i < BT; i++) {
        if (tok[i] < 0) dr_fail_at(__FILE__, __LINE__, "embedding_backward: token %d at row %d", tok[i], i);
        if (tok[i] > vmax) vmax = tok[i];
    }
    /* stable counting sort: start[v] = first slot of token v */
    size_t nv = (size_t)vmax + 2;
    int32_t *start = (int32_t *)cu_host_scratch(CU_HSCR_COUNT_, nv * sizeof(int32_t));
    memset(start, 0, nv * sizeof(int32_t));
    for (int i = 0; i < BT; i++) start[tok[i] + 1]++;
    int n_runs = 0;
    for (size_t v = 1; v < nv; v++) {
        n_runs += start[v] > 0;
        start[v] += start[v - 1];
    }
    /* packed upload: order[BT] | run_begin[n_runs + 1] | run_tok[n_runs] */
    size_t words = (size_t)BT + 2 * (size_t)n_runs + 1;
    int32_t *pack = (int32_t *)cu_host_scratch(CU_HSCR_INDEX, words * sizeof(int32_t));
    int32_t *order = pack, *run_begin = pack + BT, *run_tok = run_begin + n_runs + 1;
    int r = 0;
    for (size_t v = 0; v + 1 < nv; v++)
        if (start[v + 1] > start[v]) {
            run_begin[r] = start[v];
            run_tok[r] = (int32_t)v;
            r++;
        }
    run_begin[n_runs] = BT;
    for (int i = 0; i < BT; i++) order[start[tok[i]]++] = i;   /* rows in increasing order */

    int32_t *dpack = (int32_t *)cu_scratch(CU_SCR_INDEX, words * sizeof(int32_t));
    cudaCheck(cudaMemcpy(dpack, pack, words * sizeof(int32_t), cudaMemcpyHostToDevice));
    dim3 grid((unsigned)n_runs, (unsigned)((C + 127) / 128));
    dwte_runs_k<<<grid, 128>>>(dwte, dout, dpack, dpack + BT, dpack + BT + n_runs + 1, C);
    cudaLaunchCheck();
}

void cu_embedding_backward(real *dwte, real *dwpe, const real *dout, const int32_t *tokens,
                           int B, int T, int C) {
    if (B <= 0 || T <= 0 || C <= 0) return;
    if (dwte) dwte_scatter(dwte, dout, tokens, B * T, C);
    if (dwpe) {
        dwpe_k<<<cu_blocks((size_t)T * C), CU_THREADS>>>(dwpe, dout, B, T, C);
        cudaLaunchCheck();
    }
}

/* The backward is linear in dout and independent of the weights: its tangent is the
 * backward applied to dtout. */
void cu_embedding_backward_tangent(real *dtwte, real *dtwpe, const real *dtout,
                                   const int32_t *tokens, int B, int T, int C) {
    if (dtout) cu_embedding_backward(dtwte, dtwpe, dtout, tokens, B, T, C);
}
