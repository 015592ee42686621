/* backend_cpu.c — the CPU backend table (OpenBLAS GEMMs + OpenMP loops, lib/ops/). CPU
 * memory is host memory: alloc is a zeroed block, the copies are memcpy, synchronize does
 * nothing. The device choice is lib/backend_select.c.
 *
 * The bytes the backend holds are counted, and an allocation that would take them past
 * the machine's RAM + swap is refused with one message: Linux grants such blocks lazily,
 * so without the count an absurd config (a batch of a million examples) would end in the
 * kernel's OOM killer while the zeroing touches them, with no message at all. */
#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>

#include "check.h"
#include "cpu_ops.h"
#include "cpu_util.h"

static atomic_size_t cpu_held;   /* bytes of live backend blocks (malloc_usable_size) */

/* Blocks from this size on come from calloc, which takes fresh zero pages from the kernel
 * (16-byte aligned) without touching them, so a refused config fails before it has
 * written gigabytes; smaller ones are 64-byte aligned and zeroed here. */
enum { CPU_LAZY_BYTES = 1 << 20 };

static size_t machine_bytes(void) {
    struct sysinfo si;
    if (sysinfo(&si) != 0) return SIZE_MAX;
    return ((size_t)si.totalram + (size_t)si.totalswap) * si.mem_unit;
}

static void *cpu_alloc(size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded == 0) rounded = 64;
    const size_t limit = machine_bytes(), held = atomic_load(&cpu_held);
    CHECK(rounded <= limit && held <= limit - rounded,
          "out of memory: %.2f GB more would make %.2f GB of model and activation buffers, "
          "more than this machine's %.2f GB (RAM + swap): lower data.batch_size, "
          "data.seq_len or the model's size", rounded / 1e9, (held + (double)rounded) / 1e9,
          limit / 1e9);
    void *p = NULL;
    if (rounded >= CPU_LAZY_BYTES) {   /* fresh pages from the kernel: zero, untouched */
        p = calloc(1, rounded);
        CHECK(p, "out of memory (%zu bytes)", bytes);
    } else {
        CHECK(posix_memalign(&p, 64, rounded) == 0, "out of memory (%zu bytes)", bytes);
        memset(p, 0, rounded);
    }
    atomic_fetch_add(&cpu_held, malloc_usable_size(p));
    return p;
}
static void cpu_free(void *p) {
    if (p) atomic_fetch_sub(&cpu_held, malloc_usable_size(p));
    free(p);
}
static void cpu_to_device(void *dst, const void *src_host, size_t bytes) {
    if (bytes) memcpy(dst, src_host, bytes);
}
static void cpu_to_host(void *dst_host, const void *src, size_t bytes) {
    if (bytes) memcpy(dst_host, src, bytes);
}
static void cpu_synchronize(void) {}

const Backend backend_cpu = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .to_device = cpu_to_device,
    .to_host = cpu_to_host,
    .synchronize = cpu_synchronize,

    .vec_zero = vec_zero,
    .vec_copy = vec_copy,
    .vec_scale = vec_scale,
    .vec_axpy = vec_axpy,
    .vec_dot = vec_dot,
    .vec_sumsq = vec_sumsq,
    .vec_all_finite = vec_all_finite,

    .adamw_forward = adamw_forward,
    .adamw_backward = adamw_backward,
    .sgd_forward = sgd_forward,
    .sgd_backward = sgd_backward,

    .embedding_forward = embedding_forward,
    .embedding_backward = embedding_backward,
    .embedding_forward_tangent = embedding_forward_tangent,
    .embedding_backward_tangent = embedding_backward_tangent,

    .matmul_forward = matmul_forward,
    .matmul_backward = matmul_backward,
    .matmul_forward_tangent = matmul_forward_tangent,
    .matmul_backward_tangent = matmul_backward_tangent,

    .layernorm_forward = layernorm_forward,
    .layernorm_backward = layernorm_backward,
    .layernorm_forward_tangent = layernorm_forward_tangent,
    .layernorm_backward_tangent = layernorm_backward_tangent,

    .attention_forward = attention_forward,
    .attention_backward = attention_backward,
    .attention_forward_tangent = attention_forward_tangent,
    .attention_backward_tangent = attention_backward_tangent,

    .gelu_forward = gelu_forward,
    .gelu_backward = gelu_backward,
    .gelu_forward_tangent = gelu_forward_tangent,
    .gelu_backward_tangent = gelu_backward_tangent,

    .residual_forward = residual_forward,
    .residual_backward = residual_backward,
    .residual_forward_tangent = residual_forward_tangent,
    .residual_backward_tangent = residual_backward_tangent,

    .crossentropy_forward = crossentropy_forward,
    .crossentropy_backward = crossentropy_backward,
    .crossentropy_forward_tangent = crossentropy_forward_tangent,
    .crossentropy_backward_tangent = crossentropy_backward_tangent,

    .meanpool_forward = meanpool_forward,
    .meanpool_backward = meanpool_backward,
    .weights_forward = weights_forward,
    .weights_backward = weights_backward,
};
