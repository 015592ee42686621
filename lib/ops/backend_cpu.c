/* backend_cpu.c — the CPU backend table (OpenBLAS GEMMs + OpenMP loops, lib/ops/). CPU
 * memory is host memory: alloc is a zeroed 64-byte-aligned block, the copies are memcpy,
 * synchronize does nothing. The device choice is lib/backend_select.c. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cpu_ops.h"
#include "cpu_util.h"

static void *cpu_alloc(size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded == 0) rounded = 64;
    void *p = NULL;
    CHECK(posix_memalign(&p, 64, rounded) == 0, "out of memory (%zu bytes)", bytes);
    memset(p, 0, rounded);
    return p;
}
static void cpu_free(void *p) { free(p); }
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
