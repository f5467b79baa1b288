/* backends/vulkan/vk_ops_attention.c — the KV-cache ops (shaders/set_rows.comp,
 * attention.comp, attention_merge.comp): SET_ROWS writes new K/V rows into
 * the cache (a slot out of range raises an error word, reported at the next
 * read); ATTENTION reads views of it. Their ordering is enforced by the
 * byte-range hazard tracking of vk_command.c (the write covers the cache
 * root's bytes that the attention view reads), not by graph edges.
 * A q8_0 or q4_0 cache (llama.cpp's -ctk/-ctv q8_0 / q4_0) is written by
 * quantizing each row of 32-element blocks in the kernel with the bits of
 * ir/dtype.c, and read by dequantizing K/V elements on load; the shaders
 * address its 34- or 18-byte blocks in halves (SET_ROWS) or bytes
 * (ATTENTION), so its strides are passed in those units.
 * ATTENTION is batch-invariant (a verify row gives the bits of the same
 * token decoded alone) and split-K: with more than SX_ATTN_CHUNK keys each
 * (row, chunk of key ordinals) is a workgroup writing partials to the
 * device scratch, and a merge pass combines them; a long row batch goes in
 * several passes so the partials stay within ATTN_SCRATCH_MAX. */
#include <stdio.h>
#include <string.h>

#include "backends/vulkan/vk_internal.h"

sx_status sx_vk_op_SET_ROWS(sx_device *dev, sx_tensor *node) {
    vk_device *d = vk_dev(dev);
    const sx_tensor *src = node->src[1], *ids = node->src[2];
    const bool qb = sx_dtype_get(node->dtype)->quantized; /* q8_0 / q4_0: 17 / 9 halves a block of 32 */
    const bool f16 = node->dtype == SX_DTYPE_F16;
    char name[32];
    snprintf(name, sizeof name, "set_rows_%s", sx_dtype_name(node->dtype));
    const int sh = sx_vk_shader_find(name);
    const size_t unit = qb || f16 ? 2 : 4;
    sx_pc_set_rows pc = {0};
    vk_arg args[4];
    pc.K = (uint32_t)src->ne[0];
    pc.n = (uint32_t)src->ne[1];
    pc.R = (uint32_t)node->ne[1];
    pc.d_nb1 = (uint32_t)(node->nb[1] / unit);
    pc.s_nb0 = (uint32_t)(src->nb[0] / 4);
    pc.s_nb1 = (uint32_t)(src->nb[1] / 4);
    /* node is a view of the cache: its bytes are the cache's */
    SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, node, unit, true, &args[0], &pc.d_off));
    SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, src, 4, false, &args[1], &pc.s_off));
    SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, ids, 4, false, &args[2], &pc.ids_off));
    SX_RETURN_IF_ERROR(sx_vk_arg_error(d, &args[3])); /* slots out of [0, R) */
    const uint64_t per_group = (uint64_t)sx_vk_shaders[sh].wg / (qb ? 32 : 1); /* q8_0 / q4_0: blocks, else elements */
    const uint64_t total = (uint64_t)pc.K / (qb ? 32 : 1) * pc.n;
    return sx_vk_dispatch(d, sh, args, 4, &pc, sizeof pc, (uint32_t)((total + per_group - 1) / per_group), 1);
}

/* Partials of one pass at most this many bytes (and the binding limit). */
#define ATTN_SCRATCH_MAX ((size_t)64 << 20)

sx_status sx_vk_op_ATTENTION(sx_device *dev, sx_tensor *node) {
    vk_device *d = vk_dev(dev);
    const sx_tensor *q = node->src[0], *k = node->src[1], *v = node->src[2], *mask = node->src[3];
    const bool qb = sx_dtype_get(k->dtype)->quantized;
    /* k/v offsets and strides in elements, q8_0 / q4_0 in bytes (bound 2-aligned) */
    const size_t unit = qb ? 1 : k->dtype == SX_DTYPE_F16 ? 2 : 4, align = qb ? 2 : unit;
    const int sh = sx_vk_shader_pick(d, "attention_%s", sx_dtype_name(k->dtype));
    sx_pc_attn pc = {0};
    vk_arg args[5];
    pc.d = (uint32_t)q->ne[0];
    pc.nh = (uint32_t)q->ne[1];
    pc.T = (uint32_t)q->ne[2];
    pc.group = (uint32_t)(q->ne[1] / k->ne[1]);
    pc.n_kv = (uint32_t)k->ne[2];
    pc.n_past = (uint32_t)node->params.attn.n_past;
    pc.scale = node->params.attn.scale;
    pc.q_nb1 = (uint32_t)(q->nb[1] / 4), pc.q_nb2 = (uint32_t)(q->nb[2] / 4);
    pc.k_nb1 = (uint32_t)(k->nb[1] / unit), pc.k_nb2 = (uint32_t)(k->nb[2] / unit);
    pc.v_nb1 = (uint32_t)(v->nb[1] / unit), pc.v_nb2 = (uint32_t)(v->nb[2] / unit);
    pc.d_nb1 = (uint32_t)(node->nb[1] / 4), pc.d_nb2 = (uint32_t)(node->nb[2] / 4);
    SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, q, 4, false, &args[0], &pc.q_off));
    SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, k, align, false, &args[1], &pc.k_off));
    SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, v, align, false, &args[2], &pc.v_off));
    pc.k_off *= (uint32_t)(align / unit), pc.v_off *= (uint32_t)(align / unit);
    if (mask) {
        pc.has_mask = 1;
        pc.m_nb1 = (uint32_t)(mask->nb[1] / 4);
        SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, mask, 4, false, &args[3], &pc.m_off));
    } else {
        args[3] = args[0]; /* unused binding: any valid range */
    }
    vk_arg out;
    uint32_t out_off;
    SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, node, 4, true, &out, &out_off));
    const uint32_t rows = pc.nh * pc.T;
    pc.nch = (pc.n_kv + SX_ATTN_CHUNK - 1) / SX_ATTN_CHUNK;
    if (pc.nch <= 1) { /* one chunk: the partial kernel writes the output itself */
        pc.nch = 1, pc.nrows = rows, pc.d_off = out_off;
        args[4] = out;
        return sx_vk_dispatch(d, sh, args, 5, &pc, sizeof pc, rows, 1);
    }
    /* split-K: partials (m, l, acc[d]) of every (row, chunk) into scratch,
     * then the merge; as many rows per pass as the scratch bound allows */
    const int merge = sx_vk_shader_find("attention_merge");
    const size_t row_bytes = (size_t)pc.nch * (pc.d + 2) * 4;
    size_t cap = (size_t)d->max_range < ATTN_SCRATCH_MAX ? (size_t)d->max_range : ATTN_SCRATCH_MAX;
    if (row_bytes > cap)
        return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: attention over %u keys needs %zu bytes of partials per row (limit %zu)", pc.n_kv,
                            row_bytes, cap);
    const uint32_t per = (uint32_t)(cap / row_bytes) < rows ? (uint32_t)(cap / row_bytes) : rows;
    vk_arg margs[2];
    SX_RETURN_IF_ERROR(sx_vk_scratch_get(d, (size_t)per * row_bytes, true, &args[4]));
    margs[0] = args[4], margs[0].write = false;
    margs[1] = out;
    for (uint32_t row0 = 0; row0 < rows; row0 += per) {
        pc.row0 = row0;
        pc.nrows = rows - row0 < per ? rows - row0 : per;
        pc.d_off = 0;
        SX_RETURN_IF_ERROR(sx_vk_dispatch(d, sh, args, 5, &pc, sizeof pc, pc.nrows * pc.nch, 1));
        pc.d_off = out_off;
        SX_RETURN_IF_ERROR(sx_vk_dispatch(d, merge, margs, 2, &pc, sizeof pc, pc.nrows, 1));
    }
    return SX_OK;
}
