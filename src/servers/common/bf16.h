/*
 * bf16.h - float32 <-> bfloat16, the reduced precision of the servers' weights:
 * bfloat16 keeps float32's exponent and the top 7 bits of its mantissa, so a
 * conversion is a rounding of the upper half of the bits.
 */
#ifndef GC_BF16_H
#define GC_BF16_H

#include <stdint.h>
#include <string.h>

/* float32 -> bfloat16, rounding to nearest, ties to even (a NaN stays a NaN). */
static inline uint16_t gc_bf16_from_f32(float f)
{
    uint32_t u;

    memcpy(&u, &f, sizeof(u));
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0)
        return (uint16_t)((u >> 16) | 0x0040u); /* quiet, whatever the low bits were */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* bfloat16 -> float32 (exact). */
static inline float gc_f32_from_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;

    memcpy(&f, &u, sizeof(f));
    return f;
}

#endif
