/* context.cu — the CUDA backend's state: device check, the cuBLAS handle, the GEMM
 * precision mode, device and host scratch, and the memory faces of the Backend (alloc,
 * free, to_device, to_host, synchronize). Must never allocate per op in a hot path
 * except by growing scratch (which happens once per new maximal shape). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- device check -------------------------------------------------------------------- */

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

/* ---- scratch ------------------------------------------------------------------------- */

static void *g_scr[CU_SCR_COUNT];
static size_t g_scr_cap[CU_SCR_COUNT];

void *cu_scratch(int slot, size_t bytes) {
    if (slot < 0 || slot >= CU_SCR_COUNT) dr_fail_at(__FILE__, __LINE__, "bad scratch slot %d", slot);
    if (bytes > g_scr_cap[slot] || !g_scr[slot]) {
        size_t cap = bytes + bytes / 4 + 256;
        if (g_scr[slot]) {
            cudaCheck(cudaDeviceSynchronize());   /* queued ops may still read it */
            cudaCheck(cudaFree(g_scr[slot]));
        }
        g_scr[slot] = NULL;
        cudaError_t e = cudaMalloc(&g_scr[slot], cap);
        if (e != cudaSuccess)
            dr_fail_at(__FILE__, __LINE__, "out of device memory (scratch of %zu bytes): %s", cap,
                       cudaGetErrorString(e));
        g_scr_cap[slot] = cap;
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
    if (e != cudaSuccess)
        dr_fail_at(__FILE__, __LINE__, "out of device memory (%zu bytes): %s", bytes,
                   cudaGetErrorString(e));
    cudaCheck(cudaMemset(p, 0, rounded));
    return p;
}

void cu_free(void *p) {
    if (p) cudaCheck(cudaFree(p));
}

void cu_to_device(void *dst, const void *src_host, size_t bytes) {
    if (bytes) cudaCheck(cudaMemcpy(dst, src_host, bytes, cudaMemcpyHostToDevice));
}

void cu_to_host(void *dst_host, const void *src, size_t bytes) {
    if (bytes) cudaCheck(cudaMemcpy(dst_host, src, bytes, cudaMemcpyDeviceToHost));
}

/* Waits for every queued op and reports an asynchronous kernel fault here. */
void cu_synchronize(void) { cudaCheck(cudaDeviceSynchronize()); }
