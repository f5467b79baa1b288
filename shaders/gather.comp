/* gather.comp — GATHER: dst[j][r] = x[ids[j][r]][r] (x F32 [K, R], any
 * element strides; ids I32 [k, R]; dst F32 [k, R]). One thread per output,
 * a plain copy, so exact. An id outside [0, K) leaves its output unwritten
 * and raises SX_KERR_GATHER_ID in the error word (binding 3), which the host
 * reports, as GET_ROWS does. Tested by tests/test_ops.c (GATHER). */
#version 450
#extension GL_GOOGLE_include_directive : require
#define SX_PC_GATHER
#include "common/params.h"

layout(local_size_x = WG) in;
layout(binding = 0, std430) readonly buffer X { float xf[]; };
layout(binding = 1, std430) readonly buffer Ids { int ids[]; };
layout(binding = 2, std430) writeonly buffer Dst { float dst[]; };
#define ERR_BINDING 3
#include "common/errors.glsl"
#include "common/types.glsl"

void main() {
    const uint i = group_linear() * WG + gl_LocalInvocationIndex;
    if (i >= pc.n) return;
    const uint j = i % pc.k, r = i / pc.k;
    const int id = ids[pc.ids_off + j * pc.ids_nb0 + r * pc.ids_nb1];
    if (id < 0 || uint(id) >= pc.K) {
        raise_error(SX_KERR_GATHER_ID);
        return;
    }
    dst[pc.d_off + r * pc.d_nb1 + j] = xf[pc.x_off + uint(id) * pc.x_nb0 + r * pc.x_nb1];
}
