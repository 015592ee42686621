/* backend_cpu.c — the CPU backend table (OpenBLAS GEMMs + OpenMP loops, lib/ops/). CPU
 * memory is host memory: alloc is a zeroed block, the copies are memcpy, synchronize does
 * nothing. The device choice is lib/backend_select.c.
 *
 * The bytes the backend holds are counted, and an allocation that would take them past
 * the machine's RAM + swap is refused with one message: Linux grants such blocks lazily,
 * so without the count an absurd config (a batch of a million examples) would end in the
 * kernel's OOM killer while the zeroing touches them, with no message at all. */
#include <stdatomic.h>
#include <stdnoreturn.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "cpu_ops.h"
#include "cpu_util.h"

static atomic_size_t cpu_held;   /* bytes of live backend blocks */

/* Every block has a 64-byte header right before it: where its memory came from. Blocks of
 * CPU_LAZY_BYTES and more are their own anonymous mapping, 2 MiB aligned and advised
 * MADV_HUGEPAGE: the kernel's zero pages, untouched until used (so a refused config fails
 * before it has written gigabytes), and in huge pages where the kernel has them, because
 * the model streams through gigabytes of activations per step: with 4 KiB pages, cycling
 * through 16 activation tapes (meta.keep_activations) made the LM's forward 1.7x and its
 * backward 1.25x slower than with one set of buffers; with huge pages they run at the
 * one-set speed (docs/meta.md §6). Smaller blocks are 64-byte aligned and
 * zeroed here. */
enum { CPU_LAZY_BYTES = 1 << 20, CPU_HUGE_PAGE = 2 << 20, CPU_HEADER = 64 };
#define CPU_BLOCK_MAGIC 0x6b636f6c62756370ull   /* "cpublock" */
typedef struct {
    uint64_t magic;
    void *base;          /* what to free: the mapping, or the posix_memalign block */
    size_t map_bytes;    /* > 0: base is a mapping of this many bytes */
    size_t bytes;        /* counted in cpu_held */
} BlockHeader;
_Static_assert(sizeof(BlockHeader) <= CPU_HEADER, "block header too large");

static size_t machine_bytes(void) {   /* SIZE_MAX when unknown: no limit */
    const double m = dr_machine_bytes();
    return m > 0 && m < (double)SIZE_MAX ? (size_t)m : SIZE_MAX;
}

/* An allocation refused, or failed: sized by the config (the batch, the sequence length,
 * the model), so a user's condition, told as one line without a source location. */
#define CPU_OOM_ADVICE "lower data.batch_size, data.seq_len or the model's size"
static noreturn void cpu_out_of_memory(size_t rounded, size_t held, size_t limit, int refused) {
    if (refused)
        dr_die("out of memory: %zu bytes (%.2f GB) more would make %.2f GB of model and "
               "activation buffers, more than this machine's %.2f GB (RAM + swap): " CPU_OOM_ADVICE,
               rounded, rounded / 1e9, (held + (double)rounded) / 1e9, limit / 1e9);
    dr_die("out of memory: the system refused %zu bytes (%.2f GB) more of model and activation "
           "buffers (%.2f GB held already): " CPU_OOM_ADVICE, rounded, rounded / 1e9, held / 1e9);
}

static void *cpu_alloc(size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded == 0) rounded = 64;
    const size_t limit = machine_bytes(), held = atomic_load(&cpu_held);
    if (bytes > SIZE_MAX - 64 || rounded > limit || held > limit - rounded)
        cpu_out_of_memory(bytes > SIZE_MAX - 64 ? bytes : rounded, held, limit, 1);
    BlockHeader h = { .magic = CPU_BLOCK_MAGIC, .bytes = rounded };
    char *p;
    if (rounded >= CPU_LAZY_BYTES) {   /* a mapping: [slack | header | block | round-up] */
        const size_t span = (rounded + CPU_HUGE_PAGE - 1) / CPU_HUGE_PAGE * CPU_HUGE_PAGE;
        h.map_bytes = span + CPU_HUGE_PAGE;
        h.base = mmap(NULL, h.map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (h.base == MAP_FAILED) cpu_out_of_memory(rounded, held, limit, 0);
        uintptr_t start = (uintptr_t)h.base + CPU_HEADER;
        p = (char *)((start + CPU_HUGE_PAGE - 1) / CPU_HUGE_PAGE * CPU_HUGE_PAGE);
#ifdef MADV_HUGEPAGE
        madvise(p, span, MADV_HUGEPAGE);   /* advice: without THP it changes nothing */
#endif
    } else {
        void *q = NULL;
        if (posix_memalign(&q, 64, rounded + CPU_HEADER) != 0) cpu_out_of_memory(rounded, held, limit, 0);
        h.base = q;
        p = (char *)q + CPU_HEADER;
        memset(p, 0, rounded);
    }
    memcpy(p - CPU_HEADER, &h, sizeof h);
    atomic_fetch_add(&cpu_held, rounded);
    return p;
}
static void cpu_free(void *p) {
    if (!p) return;
    BlockHeader h;
    memcpy(&h, (char *)p - CPU_HEADER, sizeof h);
    CHECK(h.magic == CPU_BLOCK_MAGIC, "cpu backend: freeing a block it did not allocate");
    atomic_fetch_sub(&cpu_held, h.bytes);
    if (h.map_bytes) munmap(h.base, h.map_bytes);
    else free(h.base);
}
static void cpu_to_device(void *dst, const void *src_host, size_t bytes) {
    if (bytes) memcpy(dst, src_host, bytes);
}
static void cpu_to_host(void *dst_host, const void *src, size_t bytes) {
    if (bytes) memcpy(dst_host, src, bytes);
}
static void cpu_synchronize(void) {}

/* MemAvailable of /proc/meminfo (free memory plus what the kernel can reclaim), else the
 * machine's RAM; 0 if unknown. */
static double cpu_mem_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb = 0;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
        fclose(f);
        if (kb > 0) return (double)kb * 1024.0;
    }
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? (double)pages * (double)page : 0;
}

const Backend backend_cpu = {
    .name = "cpu",
    .logits_row_multiple = 1,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .to_device = cpu_to_device,
    .to_host = cpu_to_host,
    .synchronize = cpu_synchronize,
    .mem_available = cpu_mem_available,

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

    .attention_state_floats = attention_state_floats,
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
    .crossentropy_backward_in_place = crossentropy_backward_in_place,
    .crossentropy_forward_tangent = crossentropy_forward_tangent,
    .crossentropy_backward_tangent = crossentropy_backward_tangent,
    .crossentropy_backward_tangent_in_place = crossentropy_backward_tangent_in_place,

    .meanpool_forward = meanpool_forward,
    .meanpool_backward = meanpool_backward,
    .weights_forward = weights_forward,
    .weights_backward = weights_backward,
};
