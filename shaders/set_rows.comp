/* set_rows.comp — SET_ROWS: dst row ids[j] = src col j (KV cache append).
 * One thread per source element; f16 destinations are written through a
 * 16-bit alias with the exact round-to-nearest-even of ir/dtype.c. A slot
 * out of [0, R) is skipped and raises SX_KERR_SET_ROWS_ID in the error word
 * (binding 3), which the host reports. DST_F32 / DST_F16 select the variant.
 * Tested by tests/test_ops.c (SET_ROWS f32/f16; slots out of range:
 * check_bad_ids) and the model tests. */
#version 450
#extension GL_GOOGLE_include_directive : require
#define SX_PC_SET_ROWS
#include "common/params.h"
#include "common/types.glsl"
#if defined(DST_F16)
#extension GL_EXT_shader_16bit_storage : require
#endif

layout(local_size_x = WG) in;
#if defined(DST_F16)
layout(binding = 0, std430) writeonly buffer D { uint16_t d[]; };
#else
layout(binding = 0, std430) writeonly buffer D { float d[]; };
#endif
layout(binding = 1, std430) readonly buffer S { float s[]; };
layout(binding = 2, std430) readonly buffer I { int ids[]; };
#define ERR_BINDING 3
#include "common/errors.glsl"

void main() {
    const uint i = group_linear() * WG + gl_LocalInvocationIndex;
    if (i >= pc.K * pc.n) return;
    const uint k = i % pc.K, j = i / pc.K;
    const int id = ids[pc.ids_off + j];
    if (id < 0 || uint(id) >= pc.R) {
        if (k == 0u) raise_error(SX_KERR_SET_ROWS_ID);
        return;
    }
    const float v = s[pc.s_off + k * pc.s_nb0 + j * pc.s_nb1];
#if defined(DST_F16)
    d[pc.d_off + uint(id) * pc.d_nb1 + k] = uint16_t(f32_to_f16(v));
#else
    d[pc.d_off + uint(id) * pc.d_nb1 + k] = v;
#endif
}
