/* set_rows.comp — SET_ROWS: dst row ids[j] = src col j (KV cache append).
 * f32 / f16 (DST_F32 / DST_F16): one thread per source element; f16 is
 * written through a 16-bit alias with the exact round-to-nearest-even of
 * ir/dtype.c.
 * q8_0 (DST_Q8_0, a quantized KV cache): 32 threads per block of 32
 * elements, WG / 32 blocks per workgroup; the block max |x| by a tree in
 * shared memory, then d and id as sx_dtype_quantize_row computes them
 * (common/quantize.glsl: IEEE divisions, so the bytes equal the CPU's).
 * Blocks are 34 bytes, so only 2-byte aligned: the row is written through a
 * 16-bit alias, d_off / d_nb1 in halves, each even lane storing its code
 * and its neighbour's, lane 0 the fp16 scale. The host requires K % 32 == 0.
 * q4_0 (DST_Q4_0): the same shape; the block's value of largest magnitude
 * (the first such) by a tree of indices, d = that / -8, id = 1 / d in
 * integers (q4_0_scale), a scale that rounds to zero in f16 giving the zero
 * block as ir/dtype.c does; blocks of 18 bytes, 9 halves: lanes 0..7 write
 * code bytes 2l and 2l + 1 (elements 2l, 2l + 16, 2l + 1, 2l + 17).
 * A slot out of [0, R) is skipped and raises SX_KERR_SET_ROWS_ID in the
 * error word (binding 3), which the host reports.
 * Tested by tests/test_ops.c (SET_ROWS f32/f16/q8_0/q4_0, q4_0's edge rows
 * and KV moves; slots out of range: check_bad_ids) and the model tests. */
#version 450
#extension GL_GOOGLE_include_directive : require
#define SX_PC_SET_ROWS
#include "common/params.h"
#include "common/types.glsl"
#if defined(DST_F16) || defined(DST_Q8_0) || defined(DST_Q4_0)
#extension GL_EXT_shader_16bit_storage : require
#endif

layout(local_size_x = WG) in;
#if defined(DST_F16) || defined(DST_Q8_0) || defined(DST_Q4_0)
layout(binding = 0, std430) writeonly buffer D { uint16_t d[]; };
#else
layout(binding = 0, std430) writeonly buffer D { float d[]; };
#endif
layout(binding = 1, std430) readonly buffer S { float s[]; };
layout(binding = 2, std430) readonly buffer I { int ids[]; };
#define ERR_BINDING 3
#include "common/errors.glsl"

#if defined(DST_Q8_0)
#include "common/quantize.glsl"

shared float xs[WG];
shared float amx[WG];

void main() {
    const uint tid = gl_LocalInvocationIndex, lane = tid & 31u;
    const uint nb = pc.K / 32u; /* blocks per row */
    const uint blk = group_linear() * (WG / 32u) + tid / 32u;
    const uint b = blk % nb, j = blk / nb; /* block b of source column j */
    const bool live = j < pc.n;
    const uint k = b * 32u + lane;
    const float x = live ? s[pc.s_off + k * pc.s_nb0 + j * pc.s_nb1] : 0.0;
    xs[tid] = x;
    amx[tid] = abs(x);
    barrier();
    for (uint h = 16u; h > 0u; h >>= 1) { /* max is exact in any order */
        if (lane < h) amx[tid] = max(amx[tid], amx[tid + h]);
        barrier();
    }
    if (!live) return;
    const int id = ids[pc.ids_off + j];
    if (id < 0 || uint(id) >= pc.R) {
        if (k == 0u) raise_error(SX_KERR_SET_ROWS_ID);
        return;
    }
    const vec2 did = q8_0_scale(amx[tid - lane]);
    const uint o = pc.d_off + uint(id) * pc.d_nb1 + b * 17u; /* halves: d, then qs[0..31] */
    if (lane == 0u) d[o] = uint16_t(f32_to_f16(did.x));
    if ((lane & 1u) == 0u) d[o + 1u + lane / 2u] = uint16_t(q8_0_code(x, did.y) | (q8_0_code(xs[tid + 1u], did.y) << 8));
}
#elif defined(DST_Q4_0)
#include "common/quantize.glsl"

shared float xs[WG];
shared uint ix[WG]; /* the index in the block of the largest |x| of a subtree */

void main() {
    const uint tid = gl_LocalInvocationIndex, lane = tid & 31u;
    const uint nb = pc.K / 32u; /* blocks per row */
    const uint blk = group_linear() * (WG / 32u) + tid / 32u;
    const uint b = blk % nb, j = blk / nb; /* block b of source column j */
    const bool live = j < pc.n;
    const uint k = b * 32u + lane, base = tid - lane;
    xs[tid] = live ? s[pc.s_off + k * pc.s_nb0 + j * pc.s_nb1] : 0.0;
    ix[tid] = lane;
    barrier();
    for (uint h = 16u; h > 0u; h >>= 1) { /* the largest |x|, the lower index on ties: the CPU's first */
        if (lane < h) {
            const uint a = ix[tid], c = ix[tid + h];
            const float fa = abs(xs[base + a]), fc = abs(xs[base + c]);
            if (fc > fa || (fc == fa && c < a)) ix[tid] = c;
        }
        barrier();
    }
    if (!live) return;
    const int id = ids[pc.ids_off + j];
    if (id < 0 || uint(id) >= pc.R) {
        if (k == 0u) raise_error(SX_KERR_SET_ROWS_ID);
        return;
    }
    if (lane >= 8u) return;
    const float mx = xs[base + ix[base]];
    const vec2 did = q4_0_scale(mx);
    const uint dh = f32_to_f16(did.x);
    const uint o = pc.d_off + uint(id) * pc.d_nb1 + b * 9u; /* halves: d, then qs[0..15] */
    if (lane == 0u) d[o] = uint16_t((dh & 0x7fffu) != 0u ? dh : 0x8000u);
    const uint e = base + 2u * lane; /* code bytes 2 lane, 2 lane + 1 */
    const uint c0 = q4_0_code(xs[e], did.y) | (q4_0_code(xs[e + 16u], did.y) << 4);
    const uint c1 = q4_0_code(xs[e + 1u], did.y) | (q4_0_code(xs[e + 17u], did.y) << 4);
    d[o + 1u + lane] = uint16_t(c0 | (c1 << 8));
}
#else
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
#endif
