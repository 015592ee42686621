/* emu_runtime.cpp — EMULATION ONLY: runs the CUDA backend's real sources (the .cu files
 * of lib/cuda/, rewritten by cu2cpp.py) on the CPU, so tests/cuda/test_cuda_ops.c can
 * check the kernels' logic on a machine without a GPU. It is a logic check, never a GPU
 * test: it proves nothing about the real compiler, hardware, cuBLAS or performance
 * (docs/cuda.md).
 *
 *  - A launch runs the blocks one at a time, in a random order; inside a block every
 *    thread is a fiber (emu_fiber.h). Fibers run until they reach __syncthreads or a warp
 *    shuffle, in a random order each round, then the barrier is released. So a missing
 *    barrier can show as a wrong result. Shuffles need all 32 lanes of the warp (a lane
 *    that exited, or a divergent barrier, is reported as an error, as it is undefined
 *    on a GPU).
 *  - Launch configurations are checked against CUDA's limits (grid ≥ 1, ≤ 65535 in y/z,
 *    ≤ 1024 threads); a bad one sets the error cudaGetLastError returns.
 *  - Device memory is host memory from cudaMalloc, filled with 0xFF bytes (NaN floats)
 *    so that reading scratch before writing it shows; the device has 16 GiB, and an
 *    allocation beyond what is left fails as on a GPU; copies check that their device
 *    side lies inside a live allocation and their host side does not.
 *  - cuBLAS calls run on OpenBLAS with cuBLAS's column-major semantics, after cuBLAS's
 *    argument checks, and every matrix they touch is checked to lie inside one device
 *    allocation. TF32 and bf16 round the inputs as the hardware does.
 * EMU_SEED (environment) changes the scheduling order; EMU_NO_DEVICE=1 reports no
 * device (to test the skip path). */
#include <cblas.h>
#include <map>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <vector>

#include "cublas_v2.h"
#include "cuda_bf16.h"
#include "cuda_runtime.h"
#include "emu_fiber.h"

dim3 threadIdx, blockIdx, blockDim, gridDim;

[[noreturn]] __attribute__((format(printf, 1, 2))) static void emu_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "CUDA EMULATOR: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* ---- randomness for the schedule ------------------------------------------------------ */

static uint64_t rng_state;
static uint64_t rng_next(void) {
    if (!rng_state) {
        const char *s = getenv("EMU_SEED");
        rng_state = 0x9E3779B97F4A7C15ull ^ (s ? strtoull(s, NULL, 10) : 1);
    }
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
template <class T> static void shuffle(std::vector<T> &v) {
    for (size_t i = v.size(); i > 1; i--) std::swap(v[i - 1], v[rng_next() % i]);
}

/* ---- device memory ---------------------------------------------------------------- */

static std::map<uintptr_t, size_t> allocs;   /* start → bytes */
static size_t alloc_total;                    /* Σ bytes of allocs */
static cudaError_t last_error = cudaSuccess;
static const size_t EMU_DEVICE_BYTES = (size_t)16 << 30;   /* the memory the emulator reports */

static bool in_device(const void *p, size_t bytes) {
    uintptr_t a = (uintptr_t)p;
    auto it = allocs.upper_bound(a);
    if (it == allocs.begin()) return false;
    --it;
    return a >= it->first && a + bytes <= it->first + it->second;
}

cudaError_t cudaMalloc(void **p, size_t bytes) {
    void *q = NULL;
    /* a device of EMU_DEVICE_BYTES: more than is left fails, as on a GPU */
    if (bytes > EMU_DEVICE_BYTES - alloc_total) return cudaErrorMemoryAllocation;
    if (posix_memalign(&q, 256, bytes ? bytes : 1)) return cudaErrorMemoryAllocation;
    memset(q, 0xFF, bytes);   /* uninitialized device memory reads as NaN */
    allocs[(uintptr_t)q] = bytes;
    alloc_total += bytes;
    *p = q;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    auto it = allocs.find((uintptr_t)p);
    if (it == allocs.end()) emu_die("cudaFree of a pointer cudaMalloc did not return");
    alloc_total -= it->second;
    allocs.erase(it);
    free(p);
    return cudaSuccess;
}

cudaError_t cudaMemset(void *p, int value, size_t bytes) {
    if (bytes && !in_device(p, bytes)) emu_die("cudaMemset outside device memory (%zu bytes)", bytes);
    memset(p, value, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t) {
    return cudaMemset(p, value, bytes);
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    if (!bytes) return cudaSuccess;
    bool dd = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool sd = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (dd != in_device(dst, bytes) || sd != in_device(src, bytes)) {
        fprintf(stderr, "CUDA EMULATOR: cudaMemcpy of %zu bytes, kind %d: the %s is %sdevice memory\n",
                bytes, (int)kind, dd != in_device(dst, bytes) ? "destination" : "source",
                (dd != in_device(dst, bytes) ? dd : sd) ? "not " : "");
        abort();
    }
    memmove(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t) {
    return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaGetLastError(void) {
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
cudaError_t cudaGetDeviceCount(int *count) {
    const char *no = getenv("EMU_NO_DEVICE");
    if (no && *no == '1') { *count = 0; return cudaErrorNoDevice; }
    *count = 1;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || device < 0 || device >= count)
        return cudaErrorNoDevice;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "CUDA EMULATOR (CPU, not a GPU)");
    p->totalGlobalMem = EMU_DEVICE_BYTES;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 1;
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    *total_bytes = EMU_DEVICE_BYTES;
    *free_bytes = alloc_total < EMU_DEVICE_BYTES ? EMU_DEVICE_BYTES - alloc_total : 0;
    return cudaSuccess;
}
const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected (emulator, EMU_NO_DEVICE=1)";
    default: return "unknown error";
    }
}
const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    default: return "cudaError";
    }
}

/* ---- kernels: blocks of fibers ---------------------------------------------------------- */

enum { RUN = 0, AT_SYNC = 1, AT_WARP = 2, DONE = 3 };
struct Fiber {
    emu_ctx ctx;
    int state;
    dim3 tid;
};
/* 64 KiB: the kernels' frames are under 1 KiB (g++ -fstack-usage); 512 KiB stacks, each
 * its own mmap, cost a tool run 25% more time in TLB misses. Below each stack one
 * PROT_NONE guard page: a kernel whose frame outgrows its stack (emulated wmma fragments
 * hold whole tiles) stops with SIGSEGV instead of writing over the next fiber's stack. */
static const size_t STACK_BYTES = 64 * 1024, GUARD_BYTES = 4096;
static std::vector<Fiber> fibers;
static std::vector<char *> stacks;   /* each GUARD_BYTES above the start of its mapping */
static struct StacksFree {   /* fiber stacks live for the process; unmapped at exit */
    ~StacksFree() {
        for (char *p : stacks) munmap(p - GUARD_BYTES, GUARD_BYTES + STACK_BYTES);
        stacks.clear();
    }
} stacks_free;

static char *stack_new(void) {
    void *m = mmap(NULL, GUARD_BYTES + STACK_BYTES, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) emu_die("out of memory for a fiber stack");
    if (mprotect(m, GUARD_BYTES, PROT_NONE) != 0) emu_die("mprotect of a stack guard failed");
    return (char *)m + GUARD_BYTES;
}
static std::vector<uint64_t> warp_slot;   /* [warp][lane] shuffle values */
static emu_ctx scheduler;
static int current = -1;
static const std::function<void()> *current_body;

static void fiber_main(int i) {
    (*current_body)();
    fibers[i].state = DONE;   /* returns to the scheduler (the link) */
}

static void wait_at(int state) {
    if (current < 0) emu_die("a barrier or a shuffle outside a kernel");
    fibers[current].state = state;
    emu_ctx_swap(&fibers[current].ctx, &scheduler);
}

void __syncthreads(void) { wait_at(AT_SYNC); }

uint64_t emu_shfl_xor(uint64_t bits, int lane_mask) {
    int i = current, lane = i % 32, warp = i / 32;
    int partner = lane ^ lane_mask;
    if (lane_mask < 0 || partner >= 32) emu_die("shuffle xor %d: no such lane", lane_mask);
    if (warp * 32 + 32 > (int)fibers.size())
        emu_die("shuffle in a partial warp (block of %zu threads)", fibers.size());
    warp_slot[(size_t)warp * 32 + lane] = bits;
    wait_at(AT_WARP);   /* every lane has stored */
    uint64_t r = warp_slot[(size_t)warp * 32 + partner];
    wait_at(AT_WARP);   /* every lane has read: the slots may be reused */
    return r;
}

/* mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, d += a·b, with the PTX ISA's
 * fragment layouts ("Matrix Fragments for mma.m16n8k16 with floating point type"): for
 * lane l, g = l / 4 and q = l % 4; a's four 32-bit registers hold A (16 × 16, row-major)
 * at rows g, g + 8, g, g + 8 and columns (k) 2q, 2q, 2q + 8, 2q + 8 (and the next column,
 * in the high half); b's two hold B (16 × 8) at rows (k) 2q and 2q + 8 (and the next row,
 * high half), column g; d holds D at (g, 2q), (g, 2q + 1), (g + 8, 2q), (g + 8, 2q + 1).
 * Every lane stores its registers, a warp barrier, every lane computes its four outputs
 * from the whole warp's (fp32, in k order after d's own value), a second barrier. */
static std::vector<uint32_t> mma_slot;   /* [warp·32 + lane][6]: a[4], b[2] */

static float bf16_lo(uint32_t u) { return __bfloat162float(__nv_bfloat16{ (uint16_t)(u & 0xffffu) }); }
static float bf16_hi(uint32_t u) { return __bfloat162float(__nv_bfloat16{ (uint16_t)(u >> 16) }); }

void emu_mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    int i = current, lane = i % 32, warp = i / 32;
    if (i < 0) emu_die("mma.sync outside a kernel");
    if (warp * 32 + 32 > (int)fibers.size())
        emu_die("mma.sync in a partial warp (block of %zu threads)", fibers.size());
    uint32_t *mine = mma_slot.data() + (size_t)i * 6;
    for (int r = 0; r < 4; r++) mine[r] = a[r];
    mine[4] = b[0];
    mine[5] = b[1];
    wait_at(AT_WARP);   /* every lane has stored */
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; l++) {
        const uint32_t *x = mma_slot.data() + (size_t)(warp * 32 + l) * 6;
        const int g = l / 4, q = l % 4;
        for (int r = 0; r < 4; r++) {
            const int row = g + 8 * (r % 2), col = 2 * q + 8 * (r / 2);
            A[row][col] = bf16_lo(x[r]);
            A[row][col + 1] = bf16_hi(x[r]);
        }
        for (int r = 0; r < 2; r++) {
            B[2 * q + 8 * r][g] = bf16_lo(x[4 + r]);
            B[2 * q + 8 * r + 1][g] = bf16_hi(x[4 + r]);
        }
    }
    const int g = lane / 4, q = lane % 4;
    for (int r = 0; r < 4; r++) {
        const int row = g + 8 * (r / 2), col = 2 * q + r % 2;
        float acc = d[r];
        for (int k = 0; k < 16; k++) acc += A[row][k] * B[k][col];
        d[r] = acc;
    }
    wait_at(AT_WARP);   /* every lane has read: the slots may be reused */
}

static void run_block(int nthreads) {
    fibers.assign(nthreads, Fiber());
    while ((int)stacks.size() < nthreads) stacks.push_back(stack_new());
    warp_slot.assign(((size_t)nthreads + 31) / 32 * 32, 0);
    mma_slot.assign(warp_slot.size() * 6, 0);
    for (int i = 0; i < nthreads; i++) {
        Fiber &f = fibers[i];
        f.state = RUN;
        f.tid = dim3(i % blockDim.x, (i / blockDim.x) % blockDim.y, i / (blockDim.x * blockDim.y));
        emu_ctx_start(&f.ctx, stacks[i], STACK_BYTES, &scheduler, fiber_main, i);
    }
    std::vector<int> order(nthreads);
    for (int i = 0; i < nthreads; i++) order[i] = i;
    for (;;) {
        shuffle(order);
        for (int i : order) {
            if (fibers[i].state != RUN) continue;
            current = i;
            threadIdx = fibers[i].tid;
            emu_ctx_swap(&scheduler, &fibers[i].ctx);
        }
        current = -1;
        int done = 0, at_sync = 0;
        for (auto &f : fibers) done += f.state == DONE, at_sync += f.state == AT_SYNC;
        if (done == nthreads) return;
        bool released = false;
        for (int w = 0; w * 32 < nthreads; w++) {   /* warps whose lanes all reached a shuffle */
            int at = 0, gone = 0, n = nthreads - w * 32 < 32 ? nthreads - w * 32 : 32;
            for (int l = 0; l < n; l++) {
                at += fibers[w * 32 + l].state == AT_WARP;
                gone += fibers[w * 32 + l].state == DONE;
            }
            if (at == n) {
                for (int l = 0; l < n; l++) fibers[w * 32 + l].state = RUN;
                released = true;
            } else if (at > 0 && gone > 0) {
                emu_die("warp %d: a shuffle while %d lanes of the warp have exited", w, gone);
            }
        }
        if (!released && at_sync == nthreads - done) {   /* __syncthreads: exited threads count as arrived */
            for (auto &f : fibers)
                if (f.state == AT_SYNC) f.state = RUN;
            released = true;
        }
        if (!released)
            emu_die("deadlock: %d threads wait at __syncthreads, others at a warp shuffle (%d done)",
                    at_sync, done);
    }
}

static bool config_ok(dim3 g, dim3 b) {
    unsigned long threads = (unsigned long)b.x * b.y * b.z;
    return g.x >= 1 && g.y >= 1 && g.z >= 1 && g.x <= 2147483647u && g.y <= 65535 && g.z <= 65535 &&
           b.x >= 1 && b.y >= 1 && b.z >= 1 && b.x <= 1024 && b.y <= 1024 && b.z <= 64 &&
           threads <= 1024;
}

void emu_launch(dim3 grid, dim3 block, const std::function<void()> &body) {
    if (current >= 0 || current_body) emu_die("a launch inside a kernel");
    if (!config_ok(grid, block)) {
        fprintf(stderr, "CUDA EMULATOR: invalid launch configuration grid (%u,%u,%u) block (%u,%u,%u)\n",
                grid.x, grid.y, grid.z, block.x, block.y, block.z);
        last_error = cudaErrorInvalidConfiguration;
        return;
    }
    gridDim = grid;
    blockDim = block;
    current_body = &body;
    size_t nblocks = (size_t)grid.x * grid.y * grid.z;
    std::vector<size_t> order(nblocks);
    for (size_t i = 0; i < nblocks; i++) order[i] = i;
    shuffle(order);
    for (size_t k : order) {
        blockIdx = dim3((unsigned)(k % grid.x), (unsigned)((k / grid.x) % grid.y),
                        (unsigned)(k / ((size_t)grid.x * grid.y)));
        run_block((int)(block.x * block.y * block.z));
    }
    current_body = NULL;
}

/* ---- cuBLAS on OpenBLAS ------------------------------------------------------------------ */

struct emu_cublas { int math; };

cublasStatus_t cublasCreate(cublasHandle_t *h) { *h = new emu_cublas{0}; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasDestroy(cublasHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetPointerMode(cublasHandle_t, cublasPointerMode_t m) {
    return m == CUBLAS_POINTER_MODE_HOST ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasSetAtomicsMode(cublasHandle_t, cublasAtomicsMode_t) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) { h->math = m; return CUBLAS_STATUS_SUCCESS; }
const char *cublasGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_?";
    }
}

/* A column-major rows×cols matrix with leading dimension ld, element size es: ld valid
 * and the whole extent inside one device allocation. */
static bool mat_ok(const char *fn, const char *what, const void *p, int rows, int cols, int ld,
                   size_t es) {
    if (ld < (rows > 1 ? rows : 1)) {
        fprintf(stderr, "CUDA EMULATOR: %s: %s: leading dimension %d < rows %d\n", fn, what, ld, rows);
        return false;
    }
    if (rows <= 0 || cols <= 0) return true;
    size_t extent = ((size_t)(cols - 1) * ld + rows) * es;
    if (!in_device(p, extent)) {
        fprintf(stderr, "CUDA EMULATOR: %s: %s (%dx%d, ld %d) is not inside one device allocation\n",
                fn, what, rows, cols, ld);
        return false;
    }
    return true;
}

static bool gemm_args_ok(const char *fn, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                         int k, const void *A, int lda, const void *B, int ldb, const void *C,
                         int ldc, size_t esA, size_t esB, size_t esC = 4) {
    if (m < 0 || n < 0 || k < 0) return false;
    int ra = ta == CUBLAS_OP_N ? m : k, ca = ta == CUBLAS_OP_N ? k : m;
    int rb = tb == CUBLAS_OP_N ? k : n, cb = tb == CUBLAS_OP_N ? n : k;
    return mat_ok(fn, "A", A, ra, ca, lda, esA) && mat_ok(fn, "B", B, rb, cb, ldb, esB) &&
           mat_ok(fn, "C", C, m, n, ldc, esC);
}

static CBLAS_TRANSPOSE tr(cublasOperation_t t) { return t == CUBLAS_OP_N ? CblasNoTrans : CblasTrans; }

cublasStatus_t cublasSgemm(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                           int k, const float *alpha, const float *A, int lda, const float *B,
                           int ldb, const float *beta, float *C, int ldc) {
    if (!gemm_args_ok("cublasSgemm", ta, tb, m, n, k, A, lda, B, ldb, C, ldc, 4, 4))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    cblas_sgemm(CblasColMajor, tr(ta), tr(tb), m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemmBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                  int m, int n, int k, const float *alpha,
                                  const float *const Aarray[], int lda,
                                  const float *const Barray[], int ldb, const float *beta,
                                  float *const Carray[], int ldc, int count) {
    if (count < 0) return CUBLAS_STATUS_INVALID_VALUE;
    size_t pb = (size_t)count * sizeof(void *);
    if (count && (!in_device(Aarray, pb) || !in_device(Barray, pb) || !in_device(Carray, pb))) {
        fprintf(stderr, "CUDA EMULATOR: cublasSgemmBatched: pointer arrays not in device memory\n");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    for (int i = 0; i < count; i++) {
        cublasStatus_t s = cublasSgemm(h, ta, tb, m, n, k, alpha, Aarray[i], lda, Barray[i], ldb,
                                       beta, Carray[i], ldc);
        if (s != CUBLAS_STATUS_SUCCESS) return s;
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* a float copy of a stored rows×cols matrix (column-major, ld), rounded as the type says */
static std::vector<float> widen(const void *p, cudaDataType type, int rows, int cols, int ld, bool tf32) {
    std::vector<float> out((size_t)(cols > 0 ? cols : 1) * ld);
    for (int c = 0; c < cols; c++)
        for (int r = 0; r < rows; r++) {
            size_t i = (size_t)c * ld + r;
            float v;
            if (type == CUDA_R_16BF) {
                v = __bfloat162float(((const __nv_bfloat16 *)p)[i]);
            } else {
                v = ((const float *)p)[i];
                if (tf32) {   /* keep 10 mantissa bits, round to nearest even */
                    uint32_t u;
                    memcpy(&u, &v, 4);
                    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0xfffu + ((u >> 13) & 1u)) & ~0x1fffu;
                    memcpy(&v, &u, 4);
                }
            }
            out[i] = v;
        }
    return out;
}

cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const void *alpha, const void *A, cudaDataType Atype,
                            int lda, const void *B, cudaDataType Btype, int ldb, const void *beta,
                            void *C, cudaDataType Ctype, int ldc, cublasComputeType_t compute,
                            cublasGemmAlgo_t) {
    bool bf16 = Atype == CUDA_R_16BF && Btype == CUDA_R_16BF && compute == CUBLAS_COMPUTE_32F;
    bool f32 = Atype == CUDA_R_32F && Btype == CUDA_R_32F &&
               (compute == CUBLAS_COMPUTE_32F || compute == CUBLAS_COMPUTE_32F_FAST_TF32);
    /* C in fp32, or in bf16 for bf16 inputs (the result rounded once, as the hardware's
     * epilogue does) */
    bool c16 = bf16 && Ctype == CUDA_R_16BF;
    if ((Ctype != CUDA_R_32F && !c16) || !(bf16 || f32)) return CUBLAS_STATUS_NOT_SUPPORTED;
    size_t es = bf16 ? 2 : 4;
    if (!gemm_args_ok("cublasGemmEx", ta, tb, m, n, k, A, lda, B, ldb, C, ldc, es, es, c16 ? 2 : 4))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    bool tf32 = compute == CUBLAS_COMPUTE_32F_FAST_TF32;
    int ra = ta == CUBLAS_OP_N ? m : k, ca = ta == CUBLAS_OP_N ? k : m;
    int rb = tb == CUBLAS_OP_N ? k : n, cb = tb == CUBLAS_OP_N ? n : k;
    std::vector<float> a = widen(A, Atype, ra, ca, lda, tf32), b = widen(B, Btype, rb, cb, ldb, tf32);
    if (!c16) {
        cblas_sgemm(CblasColMajor, tr(ta), tr(tb), m, n, k, *(const float *)alpha, a.data(), lda,
                    b.data(), ldb, *(const float *)beta, (float *)C, ldc);
        return CUBLAS_STATUS_SUCCESS;
    }
    std::vector<float> c = widen(C, CUDA_R_16BF, m, n, ldc, false);
    cblas_sgemm(CblasColMajor, tr(ta), tr(tb), m, n, k, *(const float *)alpha, a.data(), lda,
                b.data(), ldb, *(const float *)beta, c.data(), ldc);
    __nv_bfloat16 *Ch = (__nv_bfloat16 *)C;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) Ch[(size_t)j * ldc + i] = __float2bfloat16(c[(size_t)j * ldc + i]);
    return CUBLAS_STATUS_SUCCESS;
}

/* A batched call's pointers live in device memory, where cuBLAS does not look: it picks
 * its kernels' vector width for a 16-bit operand from the leading dimension, and a
 * pointer less aligned than that width faults on the GPU (an H100 ran a 4-byte-vector
 * kernel on bf16 matrices 2 bytes off, with ld 34: misaligned address). The emulator
 * holds each 16-bit operand to the width its ld allows, 2·gcd(ld, 8) bytes. */
static bool batched_aligned(const void *p, cudaDataType type, int ld, const char *what, int i) {
    if (type != CUDA_R_16BF) return true;
    int g = 1;
    while (g < 8 && ld % (2 * g) == 0) g *= 2;
    const size_t width = 2 * (size_t)g;
    if ((uintptr_t)p % width == 0) return true;
    fprintf(stderr, "CUDA EMULATOR: cublasGemmBatchedEx: %s of matrix %d is %zu-byte aligned, "
            "but its leading dimension %d lets cuBLAS read it %zu bytes at a time (a GPU faults: "
            "misaligned address)\n", what, i, (size_t)((uintptr_t)p & (0 - (uintptr_t)p)), ld, width);
    return false;
}

cublasStatus_t cublasGemmBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                   int m, int n, int k, const void *alpha,
                                   const void *const Aarray[], cudaDataType Atype, int lda,
                                   const void *const Barray[], cudaDataType Btype, int ldb,
                                   const void *beta, void *const Carray[], cudaDataType Ctype,
                                   int ldc, int count, cublasComputeType_t compute,
                                   cublasGemmAlgo_t algo) {
    if (count < 0) return CUBLAS_STATUS_INVALID_VALUE;
    size_t pb = (size_t)count * sizeof(void *);
    if (count && (!in_device(Aarray, pb) || !in_device(Barray, pb) || !in_device(Carray, pb))) {
        fprintf(stderr, "CUDA EMULATOR: cublasGemmBatchedEx: pointer arrays not in device memory\n");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    for (int i = 0; i < count; i++) {
        if (!batched_aligned(Aarray[i], Atype, lda, "A", i) ||
            !batched_aligned(Barray[i], Btype, ldb, "B", i))
            return CUBLAS_STATUS_INVALID_VALUE;
        cublasStatus_t s = cublasGemmEx(h, ta, tb, m, n, k, alpha, Aarray[i], Atype, lda, Barray[i],
                                        Btype, ldb, beta, Carray[i], Ctype, ldc, compute, algo);
        if (s != CUBLAS_STATUS_SUCCESS) return s;
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* matrix i of A at A + i·strideA elements, of B and C likewise: cublasGemmEx on each
 * (cuBLAS sees these pointers, so no alignment model is needed) */
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta,
                                          cublasOperation_t tb, int m, int n, int k,
                                          const void *alpha, const void *A, cudaDataType Atype,
                                          int lda, long long strideA, const void *B,
                                          cudaDataType Btype, int ldb, long long strideB,
                                          const void *beta, void *C, cudaDataType Ctype, int ldc,
                                          long long strideC, int count,
                                          cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    if (count < 0) return CUBLAS_STATUS_INVALID_VALUE;
    const size_t ea = Atype == CUDA_R_16BF ? 2 : 4, eb = Btype == CUDA_R_16BF ? 2 : 4;
    const size_t ec = Ctype == CUDA_R_16BF ? 2 : 4;
    for (int i = 0; i < count; i++) {
        cublasStatus_t s = cublasGemmEx(h, ta, tb, m, n, k, alpha,
                                        (const char *)A + (size_t)i * strideA * ea, Atype, lda,
                                        (const char *)B + (size_t)i * strideB * eb, Btype, ldb,
                                        beta, (char *)C + (size_t)i * strideC * ec, Ctype, ldc,
                                        compute, algo);
        if (s != CUBLAS_STATUS_SUCCESS) return s;
    }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemv(cublasHandle_t, cublasOperation_t t, int m, int n, const float *alpha,
                           const float *A, int lda, const float *x, int incx, const float *beta,
                           float *y, int incy) {
    if (m < 0 || n < 0 || incx != 1 || incy != 1) return CUBLAS_STATUS_INVALID_VALUE;
    if (!mat_ok("cublasSgemv", "A", A, m, n, lda, 4)) return CUBLAS_STATUS_INVALID_VALUE;
    int lx = t == CUBLAS_OP_N ? n : m, ly = t == CUBLAS_OP_N ? m : n;
    if ((lx && !in_device(x, (size_t)lx * 4)) || (ly && !in_device(y, (size_t)ly * 4))) {
        fprintf(stderr, "CUDA EMULATOR: cublasSgemv: x or y not in device memory\n");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    cblas_sgemv(CblasColMajor, tr(t), m, n, *alpha, A, lda, x, incx, *beta, y, incy);
    return CUBLAS_STATUS_SUCCESS;
}
