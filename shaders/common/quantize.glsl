/* shaders/common/quantize.glsl — quantisation with the bits of ir/dtype.c.
 *
 *   float div_rn(float a, float b)   a / b rounded to nearest even
 *   vec2 q8_0_scale(float amax)      (d, id) of a q8_0 block of max |x| amax
 *   vec2 q4_0_scale(float mx)        (d, id) of a q4_0 block whose largest |x| is mx
 *
 * sx_dtype_quantize_row (ir/dtype.c) computes d = amax / 127 and
 * id = 1 / d with IEEE division. Vulkan allows 2.5 ulp for a shader's
 * division (exact on lavapipe, approximate on most GPUs), and one ulp of id
 * can move x * id across a rounding boundary, so both divisions are done
 * here in integers: restoring division of the 24-bit significands, rounded
 * to nearest even. Multiplication, roundEven and conversions are exact in
 * Vulkan, so the rest of a block needs no care. Exact for normal operands
 * and results; a result below 2^-126 (amax < 1.5e-36) falls back to the
 * driver's division: such a block stores the fp16 scale 0, so its values
 * dequantise to 0 whatever its quants. Tested by tests/test_ops.c
 * (SET_ROWS q8_0 / q4_0, compared exactly with the CPU reference). */
#ifndef SX_QUANTIZE_GLSL
#define SX_QUANTIZE_GLSL

float div_rn(float a, float b) {
    const uint ua = floatBitsToUint(a), ub = floatBitsToUint(b);
    const uint ea = ua >> 23, eb = ub >> 23; /* sign bits are 0: a, b > 0 */
    if (ea == 0u || eb == 0u || ea == 255u || eb == 255u) return a / b;
    uint r = (ua & 0x7fffffu) | 0x800000u;
    const uint mb = (ub & 0x7fffffu) | 0x800000u;
    int e = int(ea) - int(eb) + 127;
    if (r < mb) { /* quotient in [1/2, 1): take one more bit */
        r <<= 1;
        e--;
    }
    /* 25 quotient bits: 24 of the significand, then the rounding bit; r < 2 mb < 2^25 */
    uint q = 0u;
    for (uint i = 0u; i < 25u; i++) {
        q <<= 1;
        if (r >= mb) {
            r -= mb;
            q |= 1u;
        }
        r <<= 1;
    }
    uint m = q >> 1;
    if ((q & 1u) != 0u && (r != 0u || (m & 1u) != 0u)) m++;
    if (m == 0x1000000u) {
        m >>= 1;
        e++;
    }
    if (e < 1 || e > 254) return a / b;
    return uintBitsToFloat((uint(e) << 23) | (m & 0x7fffffu));
}

vec2 q8_0_scale(float amax) {
    const float d = amax > 0.0 ? div_rn(amax, 127.0) : 0.0;
    return vec2(d, d > 0.0 ? div_rn(1.0, d) : 0.0);
}

/* q = clamp(roundEven(x * id), -127, 127) as a byte (two's complement) */
uint q8_0_code(float x, float id) {
    precise const float v = x * id;
    return uint(clamp(int(roundEven(v)), -127, 127)) & 0xffu;
}

/* q4_0 (ir/dtype.c): d = mx / -8 (a power of two: the product is exact,
 * as the division); a d that rounds to zero in f16 gives id = 0 (the zero
 * block: every code 8), else id = 1 / d with the sign of d */
vec2 q4_0_scale(float mx) {
    precise const float d = mx * -0.125;
    if ((f32_to_f16(d) & 0x7fffu) == 0u) return vec2(0.0);
    const float r = div_rn(1.0, abs(d));
    return vec2(d, d < 0.0 ? -r : r);
}

/* q = clamp(roundEven(x * id) + 8, 0, 15) */
uint q4_0_code(float x, float id) {
    precise const float v = x * id;
    return uint(clamp(int(roundEven(v)) + 8, 0, 15));
}

#endif
