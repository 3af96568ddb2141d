/*
 * kernels/half.c — scalar IEEE 754 binary16 <-> binary32 conversion, the one definition the Q4
 * block scales (quant.h, layout "Q4") and the student file's F16 scale tensors use.
 *
 * Both directions work on the bit patterns with integer operations only, so they do not depend
 * on the floating-point environment (rounding mode, flush-to-zero) and equal what F16C
 * (vcvtph2ps / vcvtps2ph with round-to-nearest-even) and AArch64 FCVT produce, for every input:
 * tests/test-krn-head.c checks all 65536 halves and the rounding boundaries against the
 * hardware instruction.
 */
#include <string.h>

#include "kernels/quant.h"

float krn_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
    if (e == 0x1f) { /* Inf, or NaN: payload kept in the top mantissa bits, made quiet */
        u = sign | 0x7f800000u | m << 13 | (m ? 0x00400000u : 0);
    } else if (e) { /* normal: rebias 15 -> 127 */
        u = sign | (e + 112) << 23 | m << 13;
    } else if (m) { /* subnormal m * 2^-24: normalise so the leading 1 lands on bit 10 */
        uint32_t s = 0;
        while (!(m & 0x400)) {
            m <<= 1;
            s++;
        }
        u = sign | (113 - s) << 23 | (m & 0x3ff) << 13;
    } else {
        u = sign;
    }
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* Shift m right by s (1 <= s <= 31), rounding to nearest, ties to even. */
static uint32_t shift_rne(uint32_t m, uint32_t s)
{
    uint32_t r = m >> s, rem = m & ((1u << s) - 1), half = 1u << (s - 1);
    return r + (rem > half || (rem == half && (r & 1)));
}

uint16_t krn_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) /* NaN: quiet, top payload bits kept */
        return (uint16_t)(sign | 0x7e00 | (a >> 13 & 0x3ff));
    if (a >= 0x47800000u) /* >= 65536 (and Inf): beyond the rounding range of 65504 */
        return (uint16_t)(sign | 0x7c00);
    if (a >= 0x38800000u) /* normal half (>= 2^-14); a carry out of the mantissa bumps the
                           * exponent, and 65520 and up round to Inf, both as IEEE says */
        return (uint16_t)(sign | shift_rne(a - (112u << 23), 13));
    if (a <= 0x33000000u) /* <= 2^-25: zero (2^-25 itself is the tie, to even = 0) */
        return sign;
    /* subnormal half: value = (mantissa | 1 << 23) * 2^(e - 150), in units of 2^-24 */
    uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
    return (uint16_t)(sign | shift_rne(m, 126 - e));
}
