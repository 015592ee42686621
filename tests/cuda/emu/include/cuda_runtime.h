/* cuda_runtime.h — EMULATION ONLY (tests/cuda/emu/): the subset of the CUDA runtime
 * that the .cu files of lib/cuda/ use, so that the backend's real kernel sources can run
 * on the CPU under the real test (tests/cuda/test_cuda_ops.c). Kernels are plain C++
 * functions; a launch runs every thread of a block as a fiber (emu_runtime.cpp);
 * __syncthreads and warp shuffles are barriers. Device memory is host memory. Never
 * part of a real build. */
#ifndef EMU_CUDA_RUNTIME_H
#define EMU_CUDA_RUNTIME_H

#include <functional>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static /* one copy per block: blocks run one after the other */
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
extern dim3 threadIdx, blockIdx, blockDim, gridDim;
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };

typedef int cudaError_t;
enum {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorNoDevice = 100,
};
typedef void *cudaStream_t;
enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
};

cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemset(void *p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s = 0);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t s = 0);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaGetLastError(void);
cudaError_t cudaGetDeviceCount(int *count);
struct cudaDeviceProp {   /* the fields lib/cuda/ reads */
    char name[256];
    size_t totalGlobalMem;
    int major, minor, multiProcessorCount;
};
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);

/* ---- device side ---- */
void __syncthreads(void);
uint64_t emu_shfl_xor(uint64_t bits, int lane_mask);   /* a warp barrier exchange */
template <class T> static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
    (void)mask;
    static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    b = emu_shfl_xor(b, lane_mask);
    T r;
    memcpy(&r, &b, sizeof r);
    return r;
}

/* __syncwarp: a barrier of the 32 lanes of the calling warp (all must arrive; the mask is
 * not emulated: lib/cuda/ only passes the full mask) */
static inline void __syncwarp(unsigned mask = 0xffffffffu) {
    (void)mask;
    emu_shfl_xor(0, 0);
}
/* the PTX instruction mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (d += a·b, the
 * PTX ISA's register layouts; each register of a and b holds two bf16, the lower k in the
 * low half): a warp-wide call, as on a GPU (lib/cuda/mma_bf16.cuh) */
void emu_mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2]);
#define CUDA_EMULATOR 1

/* kernel<<<grid, block>>>(args) is rewritten by cu2cpp.py into
 * emu_launch(dim3(grid), dim3(block), [=] { kernel(args); }) */
void emu_launch(dim3 grid, dim3 block, const std::function<void()> &body);

#endif
