/* shaders/common/types.glsl — raw access and number formats.
 *
 * Every tensor is bound as an array of 32-bit words (plus typed aliases where
 * a shader wants them), so reading f16, bf16 and quantised blocks needs no
 * 8/16-bit storage feature: bytes and halves are extracted from words.
 * Writing 16-bit results uses GL_EXT_shader_16bit_storage (checked by the
 * host: without storageBuffer16BitAccess those ops are not offered).
 * Conversions to f16/bf16 round to nearest even exactly like ir/dtype.c, so
 * GPU and CPU caches hold identical bits. */
#ifndef SX_TYPES_GLSL
#define SX_TYPES_GLSL

/* byte / half-word / unaligned word at byte offset `o` of uint array `buf` */
#define RD_U8(buf, o) ((buf[(o) >> 2] >> (((o) & 3u) * 8u)) & 0xffu)
#define RD_U16(buf, o) ((buf[(o) >> 2] >> (((o) & 2u) * 8u)) & 0xffffu)
#define RD_U32(buf, o) (((o) & 3u) == 0u ? buf[(o) >> 2] \
    : ((buf[(o) >> 2] >> (((o) & 3u) * 8u)) | (buf[((o) >> 2) + 1u] << (32u - ((o) & 3u) * 8u))))

/* element h (in halves) of a uint array holding 16-bit values */
#define RD_HALF(buf, h) ((buf[(h) >> 1] >> (((h) & 1u) * 16u)) & 0xffffu)

float f16_to_f32(uint h) { return unpackHalf2x16(h).x; }
float bf16_to_f32(uint h) { return uintBitsToFloat(h << 16); }

/* sx_fp32_to_fp16: round to nearest even, overflow to inf, nan kept quiet */
uint f32_to_f16(float f) {
    const uint u = floatBitsToUint(f);
    const uint sign = (u >> 16) & 0x8000u;
    const uint a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) return sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u);
    if (a >= 0x477ff000u) return sign | 0x7c00u;
    if (a < 0x38800000u) return sign | uint(roundEven(uintBitsToFloat(a) * 16777216.0));
    const uint mant = a & 0x7fffffu;
    uint h = (((a >> 23) - 112u) << 10) | (mant >> 13);
    const uint rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u) != 0u)) h++;
    return sign | h;
}

/* sx_fp32_to_bf16 */
uint f32_to_bf16(float f) {
    uint u = floatBitsToUint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u;
    u += 0x7fffu + ((u >> 16) & 1u);
    return u >> 16;
}

/* the four bytes of a word as floats (unsigned / signed) */
vec4 bytes_u(uint w) { return vec4(w & 0xffu, (w >> 8) & 0xffu, (w >> 16) & 0xffu, w >> 24); }
vec4 bytes_s(uint w) {
    const int i = int(w);
    return vec4(bitfieldExtract(i, 0, 8), bitfieldExtract(i, 8, 8), bitfieldExtract(i, 16, 8), bitfieldExtract(i, 24, 8));
}

/* Linear workgroup index of a dispatch spread over x and y (x <= 65535). */
uint group_linear() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }

#endif
