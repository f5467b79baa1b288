/* get_rows.comp — GET_ROWS: out[:, i] = dequant(table row ids[i]).
 * One workgroup per output row; threads stride over the row 4 elements at a
 * time (dq4 from common/quant.glsl, one variant per table dtype). A table
 * larger than one storage binding is processed in row windows: rows whose id
 * falls outside [row_lo, row_hi) are left to another dispatch. An id outside
 * the table, [0, n_rows), leaves its row unwritten and raises
 * SX_KERR_GET_ROWS_ID in the error word (binding 3), which the host reports.
 * Tested by tests/test_ops.c (GET_ROWS, every weight dtype; ids out of
 * range: check_bad_ids). */
#version 450
#extension GL_GOOGLE_include_directive : require
#define SX_PC_GET_ROWS
#include "common/params.h"

layout(local_size_x = WG) in;
layout(binding = 0, std430) readonly buffer Tab { uint tab[]; };
layout(binding = 1, std430) readonly buffer Ids { int ids[]; };
layout(binding = 2, std430) writeonly buffer Dst { float dst[]; };
#define ERR_BINDING 3
#include "common/errors.glsl"

#define WBUF tab
#include "common/quant.glsl"

void main() {
    const uint i = group_linear();
    if (i >= pc.n_ids) return;
    const int id = ids[pc.ids_off + i];
    if (id < 0 || uint(id) >= pc.n_rows) {
        if (gl_LocalInvocationIndex == 0u) raise_error(SX_KERR_GET_ROWS_ID);
        return;
    }
    if (id < int(pc.row_lo) || id >= int(pc.row_hi)) return;
    const uint rb = pc.t_off + uint(id - int(pc.row_lo)) * pc.t_nb1;
    const uint ob = pc.d_off + i * pc.d_nb1;
    for (uint k = gl_LocalInvocationIndex * 4u; k < pc.K; k += WG * 4u) {
        const vec4 v = dq4k(rb, k, pc.K);
        for (uint j = 0u; j < 4u; j++)
            if (k + j < pc.K) dst[ob + k + j] = v[j];
    }
}
