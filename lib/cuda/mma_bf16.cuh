/* mma_bf16.cuh — the tensor-core instruction under the flash attention kernels,
 * mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (D = A·B + D: A 16 × 16 and B 16 × 8
 * in bf16, D 16 × 8 in fp32, one warp), with the register layouts of the PTX ISA ("Matrix
 * Fragments for mma.m16n8k16 with floating point type"). For lane l, g = l / 4, q = l % 4:
 *   a[4]  A at (row, k) = (g, 2q), (g + 8, 2q), (g, 2q + 8), (g + 8, 2q + 8), each register
 *         holding that element (low half) and the one at k + 1 (high half);
 *   b[2]  B at (k, n) = (2q, g), (2q + 8, g), with k + 1 in the high half;
 *   d[4]  D at (g, 2q), (g, 2q + 1), (g + 8, 2q), (g + 8, 2q + 1).
 * Unlike wmma's opaque fragments, these layouts are fixed: a softmax can work on the
 * accumulator in registers, and an accumulator tile (two 16 × 8 tiles side by side) is,
 * packed to bf16, the A operand of the next product. The CPU emulator (tests/cuda/emu)
 * runs the same layouts (emu_mma_m16n8k16_bf16). */
#ifndef DR_CUDA_MMA_BF16_CUH
#define DR_CUDA_MMA_BF16_CUH

#include <cuda_bf16.h>
#include <stdint.h>
#include <string.h>

/* two floats as a register of two bf16 (round to nearest even), lo in the low half */
static __device__ __forceinline__ uint32_t mma_pack_bf16(float lo, float hi) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &h, sizeof u);
    return u;
}

/* the two bf16 at p and p + 1 (4-byte aligned) as one register */
static __device__ __forceinline__ uint32_t mma_load_pair(const __nv_bfloat16 *p) {
    uint32_t u;
    memcpy(&u, p, sizeof u);
    return u;
}

/* d += a·b (the layouts above); bf16 mma needs sm_80 or newer, so an older build traps */
static __device__ __forceinline__ void mma_m16n8k16_bf16(float d[4], const uint32_t a[4],
                                                         const uint32_t b[2]) {
#if defined(CUDA_EMULATOR)
    emu_mma_m16n8k16_bf16(d, a, b);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    (void)d; (void)a; (void)b;
    __trap();
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

#endif
