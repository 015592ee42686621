/* mma.h — EMULATION ONLY: the subset of CUDA's warp matrix functions (nvcuda::wmma) that
 * lib/cuda/ uses: 16×16×16 tiles, bf16 (matrix_a / matrix_b, row- or column-major) times
 * bf16 into fp32 accumulators. Never part of a real build.
 *
 * Emulation: every lane's fragment holds the WHOLE 16×16 tile (element (r, c) in
 * x[r·16 + c], an order of the emulator's own: on a GPU the element → (row, column)
 * mapping is opaque, so code must only apply uniform operations to x[], which stay correct
 * here) and every lane computes the whole product. The calls are warp-wide, as on a GPU:
 * mma_sync and store_matrix_sync are barriers of the warp's 32 lanes that check they all
 * made the same wmma calls with the same pointers, leading dimensions and layouts since
 * the last such barrier (a divergent call, or lanes at different calls, aborts). It also
 * checks what the hardware requires and would otherwise only
 * show as a fault or garbage on a GPU (CUDA C++ Programming Guide, "Warp Matrix
 * Functions", load_matrix_sync / store_matrix_sync):
 *   - mptr 256-bit (32-byte) aligned;
 *   - ldm a multiple of 8 elements for 16-bit types, 4 for float (16 bytes), and, as the
 *     PTX ISA's wmma.load / wmma.store put it (every row or column start aligned like the
 *     fragment), ldm·sizeof(element) a multiple of 32 bytes — the stricter of the two, so
 *     code that passes here satisfies both;
 * and aborts naming the call otherwise. Products accumulate in fp32 in k order (the
 * hardware's order and internal rounding differ: bf16 inputs are exact in fp32, so only
 * the accumulation's rounding does). */
#ifndef EMU_MMA_H
#define EMU_MMA_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <type_traits>

#include "cuda_bf16.h"
#include "cuda_runtime.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "the emulator has the 16x16x16 shape only");
    enum { num_elements = 256 };   /* emulator: the whole tile per lane */
    T x[256];
};

static inline float emu_wmma_float(float v) { return v; }
static inline float emu_wmma_float(__nv_bfloat16 v) { return __bfloat162float(v); }

[[noreturn]] static inline void emu_wmma_die(const char *call, const char *why, const void *p,
                                             unsigned ldm) {
    fprintf(stderr, "CUDA EMULATOR: %s(ptr %p, ldm %u): %s\n", call, p, ldm, why);
    abort();
}

/* Loads only note their arguments (pointer, ldm, layout) into a hash of the lane's own;
 * mma_sync and store_matrix_sync are warp barriers that check every lane of the warp has
 * the same hash (the same calls with the same arguments since the last check), then
 * start it again: one barrier per product instead of one per call (the emulator's time
 * goes into fiber switches). */
static inline void emu_wmma_note(uint64_t v) {
    uint64_t *w = emu_lane_word();
    *w = (*w ^ v) * 0x100000001b3ull + 0x9e3779b97f4a7c15ull;
}
static inline void emu_wmma_barrier(uint64_t v, const char *what) {
    emu_wmma_note(v);
    emu_warp_same(*emu_lane_word(), what);
    *emu_lane_word() = 0;
}

/* the hardware's requirements on a fragment's memory (see the file header); the arguments
 * go into the lane's hash (emu_wmma_note) */
template <class T>
static inline void emu_wmma_check(const char *call, const T *p, unsigned ldm, int layout = 0) {
    if ((uintptr_t)p % 32)
        emu_wmma_die(call, "the pointer is not 256-bit (32-byte) aligned", p, ldm);
    const unsigned step = sizeof(T) == 2 ? 8 : 4;
    if (ldm < 16 || ldm % step)
        emu_wmma_die(call, sizeof(T) == 2 ? "ldm must be >= 16 and a multiple of 8 for a 16-bit type"
                                          : "ldm must be >= 16 and a multiple of 4 for float",
                     p, ldm);
    if (ldm * sizeof(T) % 32)
        emu_wmma_die(call, "ldm * sizeof(element) is not a multiple of 32 bytes (each row or "
                           "column start must be 256-bit aligned, PTX ISA wmma.load/store)",
                     p, ldm);
    emu_wmma_note((uint64_t)(uintptr_t)p ^ ((uint64_t)ldm << 40) ^ ((uint64_t)layout << 62));
}

/* matrix_a [16 rows m][16 k], matrix_b [16 k][16 columns n]: logical (i, j) at x[i·16 + j] */
template <class Use, class T, class Layout>
static inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout> &a, const T *p,
                                    unsigned ldm) {
    static_assert(!std::is_same<Use, accumulator>::value,
                  "an accumulator load needs a layout_t argument");
    emu_wmma_check("load_matrix_sync", p, ldm);
    const bool row = std::is_same<Layout, row_major>::value;
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++)
            a.x[i * 16 + j] = row ? p[(size_t)i * ldm + j] : p[(size_t)j * ldm + i];
}

static inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &c, const float *p,
                                    unsigned ldm, layout_t layout) {
    emu_wmma_check("load_matrix_sync (accumulator)", p, ldm, (int)layout);
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++)
            c.x[i * 16 + j] = layout == mem_row_major ? p[(size_t)i * ldm + j] : p[(size_t)j * ldm + i];
}

static inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &c,
                                     unsigned ldm, layout_t layout) {
    emu_wmma_check("store_matrix_sync", p, ldm, (int)layout);
    emu_wmma_barrier(0x73746f7265ull, "store_matrix_sync (or the wmma calls since the warp's "
                                      "last mma_sync / store_matrix_sync)");
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++)
            (layout == mem_row_major ? p[(size_t)i * ldm + j] : p[(size_t)j * ldm + i]) = c.x[i * 16 + j];
    /* every lane has stored the whole tile (the same values), so a lane reads its own
     * stores back; the kernel still needs a __syncwarp before lanes read each other's
     * elements on a GPU (not detectable here) */
}

template <class Use, class T, class Layout>
static inline void fill_fragment(fragment<Use, 16, 16, 16, T, Layout> &f, T v) {
    for (int i = 0; i < 256; i++) f.x[i] = v;
}

/* d = a·b + c (d may be c); optimized even in the emulator's -O1 build (32 lanes each
 * compute the whole tile: most of an emulated flash kernel's time) */
template <class T, class LA, class LB>
__attribute__((optimize("O3"))) static inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d,
                            const fragment<matrix_a, 16, 16, 16, T, LA> &a,
                            const fragment<matrix_b, 16, 16, 16, T, LB> &b,
                            const fragment<accumulator, 16, 16, 16, float> &c) {
    emu_wmma_barrier(0x6d6d61ull, "mma_sync (or the wmma loads before it)");   /* warp-wide */
    /* the lanes of a warp run one after the other with the same fragments: the last
     * product is remembered (a pure function of a, b, c, compared bit for bit) */
    static struct { fragment<matrix_a, 16, 16, 16, T, LA> a; fragment<matrix_b, 16, 16, 16, T, LB> b;
                    fragment<accumulator, 16, 16, 16, float> c, d; bool valid; } last;
    if (last.valid && !memcmp(&last.a, &a, sizeof a) && !memcmp(&last.b, &b, sizeof b) &&
        !memcmp(&last.c, &c, sizeof c)) {
        d = last.d;
        return;
    }
    last.a = a;
    last.b = b;
    last.c = c;
    float fa[256], fb[256], r[256];
    for (int i = 0; i < 256; i++) fa[i] = emu_wmma_float(a.x[i]), fb[i] = emu_wmma_float(b.x[i]);
    for (int i = 0; i < 256; i++) r[i] = c.x[i];
    for (int i = 0; i < 16; i++)   /* row i of r += Σ_k a[i, k] · row k of b, k in order */
        for (int k = 0; k < 16; k++)
            for (int j = 0; j < 16; j++) r[i * 16 + j] += fa[i * 16 + k] * fb[k * 16 + j];
    for (int i = 0; i < 256; i++) d.x[i] = last.d.x[i] = r[i];
    last.valid = true;
}

}   // namespace wmma
}   // namespace nvcuda

#endif
