/* context.cu — the CUDA backend's state: device check, the cuBLAS handle, the GEMM
 * precision mode, device and host scratch, the memory faces of the Backend (alloc,
 * free, to_device, to_host, synchronize) and the accounting of device memory (live,
 * scratch, peak: backend_cuda_memory). Must never allocate per op in a hot path except
 * by growing scratch (which happens once per new maximal shape). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unordered_map>

#include "cuda/cuda_common.cuh"
#include "cuda/cuda_ops.cuh"

static cublasHandle_t g_blas;
static int g_blas_ready;

cublasHandle_t cu_blas(void) {
    if (!g_blas_ready) {
        cublasCheck(cublasCreate(&g_blas));
        /* Stream 0, host scalars, no atomics (deterministic), no TF32 unless asked. */
        cublasCheck(cublasSetStream(g_blas, 0));
        cublasCheck(cublasSetPointerMode(g_blas, CUBLAS_POINTER_MODE_HOST));
        cublasCheck(cublasSetAtomicsMode(g_blas, CUBLAS_ATOMICS_NOT_ALLOWED));
        cublasCheck(cublasSetMathMode(g_blas, CUBLAS_DEFAULT_MATH));
        g_blas_ready = 1;
    }
    return g_blas;
}

/* ---- GEMM precision ------------------------------------------------------------------ */

static int g_gemm_mode = -1;   /* enum cu_gemm_mode; -1: not read from the environment yet */
static const char *const gemm_mode_names[] = { "fp32", "tf32", "bf16" };

static int gemm_mode_parse(const char *name) {
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, gemm_mode_names[i])) return i;
    return -1;
}

int cu_gemm_mode(void) {
    if (g_gemm_mode < 0) {
        const char *env = getenv("DR_CUDA_GEMM");
        int m = env && *env ? gemm_mode_parse(env) : CU_GEMM_FP32;
        if (m < 0) {
            fprintf(stderr, "DR_CUDA_GEMM=%s: unknown (expected fp32, tf32 or bf16); using fp32\n",
                    env);
            m = CU_GEMM_FP32;
        }
        g_gemm_mode = m;
    }
    return g_gemm_mode;
}

extern "C" int backend_cuda_set_gemm_precision(const char *name) {
    int m = gemm_mode_parse(name);
    if (m < 0) return -1;
    g_gemm_mode = m;
    return 0;
}

extern "C" const char *backend_cuda_gemm_precision(void) { return gemm_mode_names[cu_gemm_mode()]; }

/* An on/off switch read from the environment variable `name` ("1": on) at its first use,
 * until set (*sw: -1 not yet read, 0 off, 1 on) */
static int env_switch(int *sw, const char *name) {
    if (*sw < 0) {
        const char *env = getenv(name);
        *sw = env && !strcmp(env, "1");
    }
    return *sw;
}

/* Causal attention's products in blocks of query rows (attention.cu) only when
 * DR_CUDA_ATT_BLOCKS=1 or backend_cuda_set_att_blocks(1); by default the full T×T
 * products. The same results either way. Blocks measured slower on an H200 (2026-11-27):
 * 504.9 vs 495.4 ms per reference bf16 step, attention_forward 90.3 vs 81.9 ms (each block
 * copies K and V to bf16 again); kept as an option. */
static int g_att_blocks = -1;

int cu_att_blocks(void) { return env_switch(&g_att_blocks, "DR_CUDA_ATT_BLOCKS"); }

extern "C" void backend_cuda_set_att_blocks(int on) { g_att_blocks = on < 0 ? -1 : on != 0; }

/* The flash attention path (attention_flash.cu) only when DR_CUDA_ATT_FLASH=1 or
 * backend_cuda_set_att_flash(1), and then only where eligible (bf16 GEMM mode, hs a
 * multiple of 16 up to 64, T > hs). Measured slower than the stored path on an H200
 * (2026-11-27: the reference bf16 step 389.5 vs 329.3 ms, attention forward 50.7 vs
 * 40.5 ms, backward 134.4 vs 86.3 ms), so off by default; it saves 25 GiB there. */
static int g_att_flash = -1;

int cu_att_flash(void) { return env_switch(&g_att_flash, "DR_CUDA_ATT_FLASH"); }

extern "C" void backend_cuda_set_att_flash(int on) { g_att_flash = on < 0 ? -1 : on != 0; }

/* The tangents' paired products as one over the concatenated K (gemm.cu's ksum forms,
 * the fifth session) unless DR_CUDA_NO_KSUM=1 or backend_cuda_set_ksum(0): the switch
 * lets one GPU call measure both (bench_cuda) */
static int g_no_ksum = -1;

int cu_ksum(void) { return !env_switch(&g_no_ksum, "DR_CUDA_NO_KSUM"); }

extern "C" void backend_cuda_set_ksum(int on) { g_no_ksum = on < 0 ? -1 : on == 0; }

/* A linear layer's bias carried by its product in bf16 mode (gemm.cu's cu_gemm_bias, the
 * eighth session) unless DR_CUDA_NO_BIAS_K=1 or backend_cuda_set_bias_k(0): bench_cuda
 * measures both */
static int g_no_bias_k = -1;

int cu_bias_k(void) { return !env_switch(&g_no_bias_k, "DR_CUDA_NO_BIAS_K"); }

extern "C" void backend_cuda_set_bias_k(int on) { g_no_bias_k = on < 0 ? -1 : on == 0; }

/* The bf16 operand copies with padding, side by side (cu_gemm_ksum) or from strided rows
 * four columns a thread (gemm.cu's to_bf16_by4_k, the tenth session) unless
 * DR_CUDA_NO_COPY_VEC4=1 or backend_cuda_set_copy_vec4(0): the same bits either way;
 * bench_cuda can measure both */
static int g_no_copy_vec4 = -1;

int cu_copy_vec4(void) { return !env_switch(&g_no_copy_vec4, "DR_CUDA_NO_COPY_VEC4"); }

extern "C" void backend_cuda_set_copy_vec4(int on) { g_no_copy_vec4 = on < 0 ? -1 : on == 0; }

/* Attention's bf16 batched products whose A and C matrices lie one stride apart (the
 * score products) use cuBLAS's strided batched call, unless DR_CUDA_BH_POINTERS=1 or
 * backend_cuda_set_bh_pointers(1) keeps every batched product on pointer arrays, as
 * before the fifth session (to measure the difference) */
static int g_bh_pointers = -1;

int cu_bh_pointers(void) { return env_switch(&g_bh_pointers, "DR_CUDA_BH_POINTERS"); }

extern "C" void backend_cuda_set_bh_pointers(int on) { g_bh_pointers = on < 0 ? -1 : on != 0; }

/* ---- the GEMM profile (backend_cuda_profile) ------------------------------------------ */

static int g_prof_on;
static double g_prof_sec[CU_PROF_N], g_prof_flops[CU_PROF_N];
static long g_prof_calls[CU_PROF_N];

double cu_prof_begin(void) {
    if (!g_prof_on) return 0;
    cudaCheck(cudaDeviceSynchronize());
    return dr_now();
}

/* the part since t0, once the device is done, added to its category: its seconds */
static double prof_add(int category, double t0, double flops) {
    cudaCheck(cudaDeviceSynchronize());
    const double t = dr_now() - t0;
    g_prof_sec[category] += t;
    g_prof_flops[category] += flops;
    g_prof_calls[category]++;
    return t;
}

void cu_prof_end(int category, double t0, double flops) {
    if (g_prof_on) prof_add(category, t0, flops);
}

/* the products by shape: up to PROF_SHAPES distinct ones; calls of further shapes are
 * only counted (g_prof_unlisted) */
#define PROF_SHAPES 48
typedef struct { int category, ta, tb, M, N, K, count; long calls; double sec; } ProfShape;
static ProfShape g_prof_shape[PROF_SHAPES];
static int g_prof_n_shapes;
static long g_prof_unlisted;

void cu_prof_end_gemm(int category, double t0, int ta, int tb, int M, int N, int K, int count) {
    if (!g_prof_on) return;
    const double t = prof_add(category, t0, 2.0 * M * N * K * (double)count);
    int i = 0;
    while (i < g_prof_n_shapes &&
           !(g_prof_shape[i].category == category && g_prof_shape[i].ta == ta &&
             g_prof_shape[i].tb == tb && g_prof_shape[i].M == M && g_prof_shape[i].N == N &&
             g_prof_shape[i].K == K && g_prof_shape[i].count == count))
        i++;
    if (i == g_prof_n_shapes) {
        if (g_prof_n_shapes == PROF_SHAPES) { g_prof_unlisted++; return; }
        ProfShape z = { category, ta, tb, M, N, K, count, 0, 0 };
        g_prof_shape[g_prof_n_shapes++] = z;
    }
    g_prof_shape[i].calls++;
    g_prof_shape[i].sec += t;
}

extern "C" void backend_cuda_profile(int on) {
    g_prof_on = on != 0;
    for (int i = 0; i < CU_PROF_N; i++) g_prof_sec[i] = g_prof_flops[i] = 0, g_prof_calls[i] = 0;
    memset(g_prof_shape, 0, sizeof g_prof_shape);
    g_prof_n_shapes = 0;
    g_prof_unlisted = 0;
}

extern "C" void backend_cuda_profile_print(FILE *f, const char *what, int steps) {
    static const char *const names[CU_PROF_N] = {
        "bf16 operand copies", "GEMMs (cuBLAS)", "bf16 padded-output copy-back",
        "batched bf16 copies", "batched GEMMs (cuBLAS)", "bias fills, column sums, K = 0" };
    if (steps < 1) steps = 1;
    fprintf(f, "  inside the matrix products of %s (ms per step, each part between two "
            "synchronizations):\n", what);
    for (int i = 0; i < CU_PROF_N; i++) {
        if (!g_prof_calls[i]) continue;
        fprintf(f, "    %-30s %8.1f ms  (%ld calls)", names[i], 1e3 * g_prof_sec[i] / steps,
                g_prof_calls[i] / steps);
        if (g_prof_flops[i] > 0 && g_prof_sec[i] > 0)
            fprintf(f, "  %.1f TFLOP/s", g_prof_flops[i] / g_prof_sec[i] / 1e12);
        fprintf(f, "\n");
    }
    /* the products by shape, the slowest in total first (row-major C[M,N] = op(A)·op(B)) */
    int order[PROF_SHAPES], n = 0;
    for (int i = 0; i < g_prof_n_shapes; i++) order[n++] = i;
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && g_prof_shape[order[b]].sec > g_prof_shape[order[b - 1]].sec; b--) {
            int t = order[b]; order[b] = order[b - 1]; order[b - 1] = t;
        }
    if (n) fprintf(f, "    by shape (row-major C[M,N] = op(A)·op(B), N/T the transposes, x the "
                   "batch; the 12 that took longest of %d shapes):\n", n);
    if (g_prof_unlisted)
        fprintf(f, "      (%ld calls of more than %d shapes not listed)\n", g_prof_unlisted / steps,
                PROF_SHAPES);
    for (int j = 0; j < n && j < 12; j++) {
        const ProfShape *p = &g_prof_shape[order[j]];
        const double fl = 2.0 * p->M * p->N * p->K * (double)p->count * p->calls;
        char batch[32] = "";
        if (p->category == CU_PROF_BH_GEMM) snprintf(batch, sizeof batch, " x %d", p->count);
        fprintf(f, "      %s%s M %6d N %6d K %6d%-9s %8.2f ms  (%ld calls)  %6.1f TFLOP/s\n",
                p->ta ? "T" : "N", p->tb ? "T" : "N", p->M, p->N, p->K, batch,
                1e3 * p->sec / steps, p->calls / steps, p->sec > 0 ? fl / p->sec / 1e12 : 0.0);
    }
}

/* Largest bf16 copy of one GEMM operand (gemm.cu chunks bigger products). */
static size_t g_bf16_chunk_bytes = (size_t)512 << 20;

size_t cu_bf16_chunk_bytes(void) { return g_bf16_chunk_bytes; }

extern "C" void backend_cuda_set_bf16_chunk_bytes(size_t bytes) {
    g_bf16_chunk_bytes = bytes ? bytes : (size_t)512 << 20;
}

/* ---- device check -------------------------------------------------------------------- */

extern "C" int backend_cuda_device(BackendCudaDevice *d, char *why, size_t n) {
    memset(d, 0, sizeof *d);
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count < 1) {
        if (why && n)
            snprintf(why, n, "no CUDA device: %s",
                     e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports 0 devices");
        cudaGetLastError();
        return -1;
    }
    cudaDeviceProp p;
    e = cudaGetDeviceProperties(&p, 0);
    if (e != cudaSuccess) {
        if (why && n) snprintf(why, n, "CUDA device 0 unreadable: %s", cudaGetErrorString(e));
        cudaGetLastError();
        return -1;
    }
    snprintf(d->name, sizeof d->name, "%s", p.name);
    d->major = p.major;
    d->minor = p.minor;
    d->sm_count = p.multiProcessorCount;
    d->total_bytes = p.totalGlobalMem;
    d->count = count;
    if (why && n) why[0] = 0;
    return 0;
}

extern "C" const Backend *backend_cuda_get(char *why, size_t n) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count < 1) {
        if (why && n)
            snprintf(why, n, "no CUDA device: %s",
                     e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports 0 devices");
        cudaGetLastError();   /* clear the error so later runtime calls start clean */
        return NULL;
    }
    e = cudaFree(0);   /* creates the context on the current device (0 by default) */
    if (e != cudaSuccess) {
        if (why && n) snprintf(why, n, "CUDA device unusable: %s", cudaGetErrorString(e));
        cudaGetLastError();
        return NULL;
    }
    cu_blas();
    cu_gemm_mode();
    if (why && n) why[0] = 0;
    return &backend_cuda;
}

/* ---- accounting: bytes held by be->alloc blocks and by scratch, and their peak ---------- */

static std::unordered_map<void *, size_t> g_block_bytes;   /* live be->alloc blocks */
static size_t g_live, g_scratch, g_peak;

static void account(size_t add_live, size_t sub_live, size_t add_scr, size_t sub_scr) {
    g_live = g_live + add_live - sub_live;
    g_scratch = g_scratch + add_scr - sub_scr;
    if (g_live + g_scratch > g_peak) g_peak = g_live + g_scratch;
}

extern "C" void backend_cuda_memory(BackendCudaMemory *m) {
    memset(m, 0, sizeof *m);
    m->live = g_live;
    m->scratch = g_scratch;
    m->peak = g_peak;
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
        m->device_total = total_b;
        m->device_used = total_b - free_b;
    } else {
        cudaGetLastError();
    }
}

extern "C" void backend_cuda_memory_reset_peak(void) { g_peak = g_live + g_scratch; }

/* ---- scratch ------------------------------------------------------------------------- */

static void *g_scr[CU_SCR_COUNT];
static size_t g_scr_cap[CU_SCR_COUNT];

/* A failed cudaMalloc: what was asked, what this process holds, the card's size, and
 * the settings that need less (the tools' configs; docs/cuda.md, "Memory") */
static void out_of_memory(const char *file, int line, const char *what, size_t bytes, cudaError_t e) {
    size_t free_b = 0, total_b = 0;
    cudaGetLastError();   /* the failed allocation's error, not sticky: clear it */
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) total_b = 0;
    dr_fail_at(file, line, "out of device memory (%s%zu bytes, with %.2f GiB already held of the "
               "GPU's %.1f GiB): %s; lm.checkpointing: true, a smaller lm.head_chunk or "
               "data.batch_size need less (docs/cuda.md, \"Memory\")", what, bytes,
               (double)(g_live + g_scratch) / (1 << 30), (double)total_b / (1 << 30),
               cudaGetErrorString(e));
}

void *cu_scratch(int slot, size_t bytes) {
    if (slot < 0 || slot >= CU_SCR_COUNT) dr_fail_at(__FILE__, __LINE__, "bad scratch slot %d", slot);
    if (bytes > g_scr_cap[slot] || !g_scr[slot]) {
        size_t cap = bytes + bytes / 4 + 256;
        if (g_scr[slot]) {
            cudaCheck(cudaDeviceSynchronize());   /* queued ops may still read it */
            cudaCheck(cudaFree(g_scr[slot]));
            account(0, 0, 0, g_scr_cap[slot]);
            g_scr_cap[slot] = 0;
        }
        g_scr[slot] = NULL;
        cudaError_t e = cudaMalloc(&g_scr[slot], cap);
        if (e != cudaSuccess) out_of_memory(__FILE__, __LINE__, "scratch of ", cap, e);
        g_scr_cap[slot] = cap;
        account(0, 0, cap, 0);
    }
    return g_scr[slot];
}

static void *g_hscr[CU_HSCR_N];
static size_t g_hscr_cap[CU_HSCR_N];

void *cu_host_scratch(int slot, size_t bytes) {
    if (slot < 0 || slot >= CU_HSCR_N) dr_fail_at(__FILE__, __LINE__, "bad host scratch slot %d", slot);
    if (bytes > g_hscr_cap[slot] || !g_hscr[slot]) {
        size_t cap = bytes + bytes / 4 + 256;
        free(g_hscr[slot]);
        g_hscr[slot] = malloc(cap);
        if (!g_hscr[slot]) dr_fail_at(__FILE__, __LINE__, "out of memory (%zu bytes)", cap);
        g_hscr_cap[slot] = cap;
    }
    return g_hscr[slot];
}

/* ---- the memory faces of the Backend --------------------------------------------------- */

void *cu_alloc(size_t bytes) {
    size_t rounded = (bytes + 255) / 256 * 256;
    if (rounded == 0) rounded = 256;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, rounded);
    if (e != cudaSuccess) out_of_memory(__FILE__, __LINE__, "", bytes, e);
    cudaCheck(cudaMemset(p, 0, rounded));
    g_block_bytes[p] = rounded;
    account(rounded, 0, 0, 0);
    return p;
}

size_t cu_block_bytes(const void *p) {
    auto it = g_block_bytes.find(const_cast<void *>(p));
    return it == g_block_bytes.end() ? 0 : it->second;
}

void cu_free(void *p) {
    if (!p) return;
    auto it = g_block_bytes.find(p);
    if (it == g_block_bytes.end())
        dr_fail_at(__FILE__, __LINE__, "free of a pointer the CUDA backend did not allocate");
    account(0, it->second, 0, 0);
    g_block_bytes.erase(it);
    cudaCheck(cudaFree(p));
}

void cu_to_device(void *dst, const void *src_host, size_t bytes) {
    if (bytes) cudaCheck(cudaMemcpy(dst, src_host, bytes, cudaMemcpyHostToDevice));
}

void cu_to_host(void *dst_host, const void *src, size_t bytes) {
    if (bytes) cudaCheck(cudaMemcpy(dst_host, src, bytes, cudaMemcpyDeviceToHost));
}

/* Waits for every queued op and reports an asynchronous kernel fault here. */
void cu_synchronize(void) { cudaCheck(cudaDeviceSynchronize()); }

double cu_mem_available(void) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return (double)free_b;
}

extern "C" void backend_cuda_release(void) {
    cudaCheck(cudaDeviceSynchronize());
    for (int slot = 0; slot < CU_SCR_COUNT; slot++)
        if (g_scr[slot]) {
            cudaCheck(cudaFree(g_scr[slot]));
            account(0, 0, 0, g_scr_cap[slot]);
            g_scr[slot] = NULL;
            g_scr_cap[slot] = 0;
        }
    if (g_blas_ready) {
        cublasCheck(cublasDestroy(g_blas));
        g_blas_ready = 0;
    }
}
