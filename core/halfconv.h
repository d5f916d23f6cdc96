/* Internal: float <-> f16 / bf16 conversions on the host (round to nearest even, NaN kept NaN),
 * and loading/storing activations of any mora_dtype as float. Header-only so that the cpu backend,
 * the tests and the tuner share one definition. */
#ifndef MORA_CORE_HALFCONV_H
#define MORA_CORE_HALFCONV_H

#include <stdint.h>
#include <string.h>

#include "mora.h"

static inline uint32_t mora_float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static inline float mora_bits_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* bfloat16 = the high half of a float32; rounding to nearest even on the dropped half. */
static inline uint16_t mora_float_to_bf16(float f) {
    uint32_t u = mora_float_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x0040u); /* quiet NaN */
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static inline float mora_bf16_to_float(uint16_t h) { return mora_bits_float((uint32_t)h << 16); }

/* IEEE binary16, round to nearest even, overflow to infinity, subnormals kept. */
static inline uint16_t mora_float_to_f16(float f) {
    const uint32_t u = mora_float_bits(f);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t abs = u & 0x7FFFFFFFu;
    if (abs > 0x7F800000u) return (uint16_t)(sign | 0x7E00u);  /* NaN */
    if (abs >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u); /* rounds to >= 65520: infinity */
    if (abs < 0x38800000u) {                                   /* below 2^-14: subnormal or zero */
        if (abs < 0x33000000u) return sign;                    /* below half the smallest subnormal */
        const uint32_t mant = (abs & 0x007FFFFFu) | 0x00800000u;
        const int shift = 126 - (int)(abs >> 23); /* 14..24 */
        uint32_t half = mant >> shift;
        const uint32_t rest = mant & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
        return (uint16_t)(sign | half);
    }
    uint32_t v = abs - 0x38000000u; /* rebias exponent 127 -> 15 */
    v += 0x0FFFu + ((v >> 13) & 1u);
    return (uint16_t)(sign | (v >> 13));
}
static inline float mora_f16_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
    if (exp == 0x1F) return mora_bits_float(sign | 0x7F800000u | (mant << 13));
    if (exp == 0) { /* zero or subnormal: mant · 2^-24 */
        const float v = (float)mant * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return mora_bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

/* Element i of an activation array of `dtype`, as float. */
static inline float mora_load_act(mora_dtype dtype, const void *base, int64_t i) {
    switch (dtype) {
    case MORA_F16: return mora_f16_to_float(((const uint16_t *)base)[i]);
    case MORA_BF16: return mora_bf16_to_float(((const uint16_t *)base)[i]);
    default: return ((const float *)base)[i];
    }
}
static inline void mora_store_act(mora_dtype dtype, void *base, int64_t i, float v) {
    switch (dtype) {
    case MORA_F16: ((uint16_t *)base)[i] = mora_float_to_f16(v); break;
    case MORA_BF16: ((uint16_t *)base)[i] = mora_float_to_bf16(v); break;
    default: ((float *)base)[i] = v; break;
    }
}

#endif
