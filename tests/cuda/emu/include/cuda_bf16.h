/* cuda_bf16.h — EMULATION ONLY: bf16 storage and round-to-nearest-even conversion. */
#ifndef EMU_CUDA_BF16_H
#define EMU_CUDA_BF16_H
#include <stdint.h>
#include <string.h>
#include <math.h>

struct __nv_bfloat16 { uint16_t bits; };

static inline __nv_bfloat16 __float2bfloat16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    __nv_bfloat16 h;
    if (isnan(f)) { h.bits = 0x7fc0; return h; }
    u += 0x7fffu + ((u >> 16) & 1u);   /* round to nearest, ties to even */
    h.bits = (uint16_t)(u >> 16);
    return h;
}
static inline float __bfloat162float(__nv_bfloat16 h) {
    uint32_t u = (uint32_t)h.bits << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
struct __nv_bfloat162 { __nv_bfloat16 x, y; };
static inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
    __nv_bfloat162 h;
    h.x = __float2bfloat16(a);
    h.y = __float2bfloat16(b);
    return h;
}
#endif
