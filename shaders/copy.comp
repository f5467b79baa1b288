/* copy.comp — COPY: x (f32/f16/bf16, any strides) -> dtype of d.
 * One thread per element. Sources are read as words (no 16-bit storage
 * needed); 16-bit destinations are written through a uint16_t alias
 * (GL_EXT_shader_16bit_storage), rounding to nearest even exactly like
 * ir/dtype.c. SRC_* and DST_* select the variant.
 * Tested by tests/test_ops.c (COPY, 3 x 3 dtypes x 3 view kinds). */
#version 450
#extension GL_GOOGLE_include_directive : require
#define SX_PC_ELTWISE
#include "common/params.h"
#include "common/types.glsl"
#if !defined(DST_F32)
#extension GL_EXT_shader_16bit_storage : require
#endif

layout(local_size_x = WG) in;
layout(binding = 0, std430) readonly buffer A { uint a[]; };
#if defined(DST_F32)
layout(binding = 1, std430) writeonly buffer D { float d[]; };
#else
layout(binding = 1, std430) writeonly buffer D { uint16_t d[]; };
#endif

void main() {
    const uint i = pc.base + group_linear() * WG + gl_LocalInvocationIndex;
    if (i >= pc.n) return;
    const uint c0 = i % pc.ne0;
    uint t = i / pc.ne0;
    const uint c1 = t % pc.ne1;
    t /= pc.ne1;
    const uint c2 = t % pc.ne2, c3 = t / pc.ne2;
    const uint si = pc.a_off + c0 * pc.a_nb0 + c1 * pc.a_nb1 + c2 * pc.a_nb2 + c3 * pc.a_nb3;
    const uint di = pc.d_off + c0 * pc.d_nb0 + c1 * pc.d_nb1 + c2 * pc.d_nb2 + c3 * pc.d_nb3;
#if defined(SRC_F32)
    const float v = uintBitsToFloat(a[si]);
#elif defined(SRC_F16)
    const float v = f16_to_f32(RD_HALF(a, si));
#else
    const float v = bf16_to_f32(RD_HALF(a, si));
#endif
#if defined(DST_F32)
    d[di] = v;
#elif defined(DST_F16)
    d[di] = uint16_t(f32_to_f16(v));
#else
    d[di] = uint16_t(f32_to_bf16(v));
#endif
}
