/* backend_cuda.cu — the CUDA backend table: lib/backend.h's function pointers filled
 * with the kernels of lib/cuda/ (one .cu per op, like lib/ops/). Built as C++, so the
 * table is filled field by field (C++17 has no designated initializers) in a static
 * initializer; every field of the Backend is set, and test_cuda_ops checks none is NULL.
 * The device check and backend_cuda_get are in context.cu. */
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_ops.cuh"

static Backend make_backend_cuda(void) {
    Backend b = {};
    b.name = "cuda";
    /* logits rows of V rounded up to 64 (50304: cuBLAS writes x·Eᵀ straight into them,
     * gemm.cu); DR_CUDA_NO_LOGITS_PAD=1: rows of V, through the padded output's scratch
     * and copy as before (for bench_cuda's A/B: gpu_check.sh's bench_cuda_7) */
    const char *no_pad = getenv("DR_CUDA_NO_LOGITS_PAD");
    b.logits_row_multiple = no_pad && !strcmp(no_pad, "1") ? 1 : 64;
    b.alloc = cu_alloc;
    b.free = cu_free;
    b.to_device = cu_to_device;
    b.to_host = cu_to_host;
    b.synchronize = cu_synchronize;
    b.mem_available = cu_mem_available;

    b.vec_zero = cu_vec_zero;
    b.vec_copy = cu_vec_copy;
    b.vec_scale = cu_vec_scale;
    b.vec_axpy = cu_vec_axpy;
    b.vec_dot = cu_vec_dot;
    b.vec_sumsq = cu_vec_sumsq;
    b.vec_all_finite = cu_vec_all_finite;

    b.adamw_forward = cu_adamw_forward;
    b.adamw_backward = cu_adamw_backward;
    b.sgd_forward = cu_sgd_forward;
    b.sgd_backward = cu_sgd_backward;

    b.embedding_forward = cu_embedding_forward;
    b.embedding_backward = cu_embedding_backward;
    b.embedding_forward_tangent = cu_embedding_forward_tangent;
    b.embedding_backward_tangent = cu_embedding_backward_tangent;

    b.matmul_forward = cu_matmul_forward;
    b.matmul_backward = cu_matmul_backward;
    b.matmul_forward_tangent = cu_matmul_forward_tangent;
    b.matmul_backward_tangent = cu_matmul_backward_tangent;

    b.layernorm_forward = cu_layernorm_forward;
    b.layernorm_backward = cu_layernorm_backward;
    b.layernorm_forward_tangent = cu_layernorm_forward_tangent;
    b.layernorm_backward_tangent = cu_layernorm_backward_tangent;

    b.attention_state_floats = cu_attention_state_floats;
    b.attention_forward = cu_attention_forward;
    b.attention_backward = cu_attention_backward;
    b.attention_forward_tangent = cu_attention_forward_tangent;
    b.attention_backward_tangent = cu_attention_backward_tangent;

    b.gelu_forward = cu_gelu_forward;
    b.gelu_backward = cu_gelu_backward;
    b.gelu_forward_tangent = cu_gelu_forward_tangent;
    b.gelu_backward_tangent = cu_gelu_backward_tangent;

    b.residual_forward = cu_residual_forward;
    b.residual_backward = cu_residual_backward;
    b.residual_forward_tangent = cu_residual_forward_tangent;
    b.residual_backward_tangent = cu_residual_backward_tangent;

    b.crossentropy_forward = cu_crossentropy_forward;
    b.crossentropy_backward = cu_crossentropy_backward;
    b.crossentropy_backward_in_place = cu_crossentropy_backward_in_place;
    b.crossentropy_forward_tangent = cu_crossentropy_forward_tangent;
    b.crossentropy_backward_tangent = cu_crossentropy_backward_tangent;
    b.crossentropy_backward_tangent_in_place = cu_crossentropy_backward_tangent_in_place;

    b.meanpool_forward = cu_meanpool_forward;
    b.meanpool_backward = cu_meanpool_backward;
    b.weights_forward = cu_weights_forward;
    b.weights_backward = cu_weights_backward;
    return b;
}

extern "C" const Backend backend_cuda = make_backend_cuda();
