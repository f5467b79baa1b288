/* backends/vulkan/vk_ops_rows.c — ops over rows: one workgroup per row
 * (shaders/rows.comp, select.comp): RMS_NORM, SOFTMAX, ARGMAX, small TOP_K;
 * TOP_K over long rows in passes of (row, chunk) workgroups
 * (shaders/top_k_chunk.comp, device scratch between passes); and
 * GATHER (shaders/gather.comp, one thread per picked value, exact; an id
 * outside the row raises an error word reported at the next read, as
 * GET_ROWS does). */
#include <stdio.h>
#include <string.h>

#include "backends/vulkan/vk_internal.h"

static sx_status row_op(sx_device *dev, sx_tensor *node, const char *base) {
    vk_device *d = vk_dev(dev);
    const sx_tensor *x = node->src[0], *w = node->src[1];
    const int sh = sx_vk_shader_pick(d, "%s", base);
    if (sh < 0) return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: no shader %s", base);
    sx_pc_rows pc = {0};
    vk_arg args[3];
    int n = 0;
    uint32_t nb[4];
    pc.ne0 = (uint32_t)x->ne[0], pc.ne1 = (uint32_t)x->ne[1], pc.ne2 = (uint32_t)x->ne[2], pc.ne3 = (uint32_t)x->ne[3];
    if (!sx_vk_strides(x, 4, nb)) return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: %s: strides", node->name);
    pc.x_nb0 = nb[0], pc.x_nb1 = nb[1], pc.x_nb2 = nb[2], pc.x_nb3 = nb[3];
    SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, x, 4, false, &args[n++], &pc.x_off));
    if (node->op == SX_OP_RMS_NORM) {
        SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, w, 4, false, &args[n++], &pc.w_off));
        pc.eps = node->params.norm.eps;
    }
    if (!sx_vk_strides(node, 4, nb)) return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: %s: strides", node->name);
    pc.d_nb0 = nb[0], pc.d_nb1 = nb[1], pc.d_nb2 = nb[2], pc.d_nb3 = nb[3];
    SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, node, 4, true, &args[n++], &pc.d_off));
    return sx_vk_dispatch(d, sh, args, n, &pc, sizeof pc, (uint32_t)sx_tensor_nrows(x), 1);
}

sx_status sx_vk_op_RMS_NORM(sx_device *dev, sx_tensor *node) { return row_op(dev, node, "rms_norm"); }
sx_status sx_vk_op_SOFTMAX(sx_device *dev, sx_tensor *node) { return row_op(dev, node, "softmax"); }

static sx_status select_op(sx_device *dev, sx_tensor *node, const char *name, uint32_t k) {
    vk_device *d = vk_dev(dev);
    const sx_tensor *x = node->src[0];
    const int sh = sx_vk_shader_find(name);
    sx_pc_select pc = {0};
    vk_arg args[2];
    pc.ne0 = (uint32_t)x->ne[0];
    pc.rows = (uint32_t)x->ne[1];
    pc.x_nb0 = (uint32_t)(x->nb[0] / 4);
    pc.x_nb1 = (uint32_t)(x->nb[1] / 4);
    pc.d_nb1 = (uint32_t)(node->nb[1] / 4);
    pc.k = k;
    SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, x, 4, false, &args[0], &pc.x_off));
    SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, node, 4, true, &args[1], &pc.d_off));
    return sx_vk_dispatch(d, sh, args, 2, &pc, sizeof pc, pc.rows, 1);
}

sx_status sx_vk_op_ARGMAX(sx_device *dev, sx_tensor *node) { return select_op(dev, node, "argmax", 1); }
/* TOP_K. select.comp (one workgroup per row, k rounds over the row) where
 * that is cheap: k == 1 or k * ne0 <= TOPK_ROUNDS_MAX. Otherwise passes of
 * top_k_chunk.comp: pass 1 reduces every (row, chunk of SX_TOPK_CHUNK) of x
 * to its top k (value, index) pairs in scratch, each later pass reduces the
 * previous pass's pairs the same way, and the pass with one chunk per row
 * writes the indices. Exact: each of a row's top k is in its chunk's top k,
 * and every pass orders by the same (value desc, index asc). Scratch: two
 * ping-pong regions per row (pass 1's output, pass 2's); rows go in batches
 * so one batch's pairs stay within TOPK_SCRATCH_MAX and the binding limit. */
#define TOPK_ROUNDS_MAX 4096u
#define TOPK_SCRATCH_MAX ((size_t)64 << 20)

static uint32_t topk_chunks(uint32_t n) { return (n + SX_TOPK_CHUNK - 1) / SX_TOPK_CHUNK; }

/* pairs per row of the two scratch regions (0: not needed) */
static void topk_plan(uint32_t ne0, uint32_t k, size_t *pairs_a, size_t *pairs_b) {
    const uint32_t n1 = topk_chunks(ne0), n2 = n1 > 1 ? topk_chunks(n1 * k) : 1;
    *pairs_a = n1 > 1 ? (size_t)n1 * k : 0;
    *pairs_b = n2 > 1 ? (size_t)n2 * k : 0;
}

static size_t topk_scratch_cap(const vk_device *d) { return (size_t)d->max_range < TOPK_SCRATCH_MAX ? (size_t)d->max_range : TOPK_SCRATCH_MAX; }

/* bytes of x spanned by entries [e0, e1) of one row */
static size_t topk_span(const sx_tensor *x, uint32_t e0, uint32_t e1) { return (size_t)(e1 - e0 - 1) * x->nb[0] + 4; }

bool sx_vk_top_k_fits(const vk_device *d, const sx_tensor *node) {
    const sx_tensor *x = node->src[0];
    const int k = node->params.top_k.k;
    if (k < 1 || k > 256 || x->ne[0] > UINT32_MAX / 2 || x->nb[0] % 4 || x->nb[1] % 4) return false;
    const uint32_t ne0 = (uint32_t)x->ne[0];
    size_t pa, pb;
    topk_plan(ne0, (uint32_t)k, &pa, &pb);
    if ((pa + pb) * 8 > topk_scratch_cap(d)) return false;
    /* x larger than a binding: windows of whole chunks of one row */
    return sx_vk_fits(d, x) || topk_span(x, 0, ne0 < SX_TOPK_CHUNK ? ne0 : SX_TOPK_CHUNK) + d->align <= d->max_range;
}

static sx_status top_k_passes(vk_device *d, sx_tensor *node) {
    const sx_tensor *x = node->src[0];
    const int sh = sx_vk_shader_find("top_k_chunk");
    if (sh < 0) return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: no top_k_chunk shader");
    sx_pc_topk pc = {0};
    const uint32_t ne0 = (uint32_t)x->ne[0], rows = (uint32_t)x->ne[1], k = (uint32_t)node->params.top_k.k;
    const bool whole = sx_vk_fits(d, x); /* else x is bound in windows of whole chunks of a row */
    pc.k = k;
    pc.x_nb0 = (uint32_t)(x->nb[0] / 4);
    pc.x_nb1 = (uint32_t)(x->nb[1] / 4);
    pc.d_nb1 = (uint32_t)(node->nb[1] / 4);
    vk_arg xa = {0}, da, sa, args[3];
    uint32_t x_elem = 0;
    if (whole) SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, x, 4, false, &xa, &x_elem));
    SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, node, 4, true, &da, &pc.d_off));
    const uint32_t n1 = topk_chunks(ne0);
    if (n1 == 1 && whole) { /* one pass straight to d; binding 1 unused */
        pc.ne0 = ne0, pc.nrows = rows, pc.nch = pc.ncd = 1, pc.from_x = 1, pc.final = 1, pc.x_off = x_elem;
        args[0] = xa, args[1] = xa, args[2] = da;
        return sx_vk_dispatch(d, sh, args, 3, &pc, sizeof pc, rows, 1);
    }
    size_t pa, pb;
    topk_plan(ne0, k, &pa, &pb);
    const size_t row_bytes = (pa + pb) * 8, cap = topk_scratch_cap(d);
    if (row_bytes > cap)
        return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: top_k over %u entries needs %zu bytes of scratch per row (limit %zu)", ne0, row_bytes, cap);
    uint32_t per = rows;
    if (row_bytes && (uint32_t)(cap / row_bytes) < rows) per = (uint32_t)(cap / row_bytes);
    SX_RETURN_IF_ERROR(sx_vk_scratch_get(d, (size_t)per * row_bytes, true, &sa));
    const uint32_t region_b = (uint32_t)((size_t)per * pa); /* in pairs */
    /* chunks per x window */
    const size_t lim = (size_t)(d->max_range - d->align), per_chunk = (size_t)SX_TOPK_CHUNK * x->nb[0];
    const uint32_t cpw = whole ? n1 : lim / per_chunk > 0 ? (uint32_t)(lim / per_chunk) : 1;
    for (uint32_t row0 = 0; row0 < rows; row0 += per) {
        const uint32_t nrows = rows - row0 < per ? rows - row0 : per;
        /* pass 1 from x: whole, or one dispatch per (row, window of chunks) */
        pc.ne0 = ne0, pc.nch = n1, pc.from_x = 1, pc.final = n1 == 1, pc.in_off = 0, pc.out_off = 0;
        for (uint32_t r = 0; r < (whole ? 1u : nrows); r++)
            for (uint32_t c0 = 0; c0 < n1; c0 += cpw) {
                pc.c0 = c0;
                pc.ncd = n1 - c0 < cpw ? n1 - c0 : cpw;
                pc.row0 = row0 + r, pc.srow = r, pc.nrows = whole ? nrows : 1;
                if (whole) {
                    pc.x_off = x_elem + pc.row0 * pc.x_nb1;
                    args[0] = xa;
                } else {
                    const uint32_t e0 = c0 * SX_TOPK_CHUNK, e1 = (c0 + pc.ncd) * SX_TOPK_CHUNK < ne0 ? (c0 + pc.ncd) * SX_TOPK_CHUNK : ne0;
                    const size_t begin = sx_tensor_buffer_offset(x) + (size_t)pc.row0 * x->nb[1] + (size_t)e0 * x->nb[0];
                    SX_RETURN_IF_ERROR(sx_vk_arg_window(d, x, begin, topk_span(x, e0, e1), 4, false, &args[0], &pc.x_off));
                }
                args[1] = sa, args[2] = da;
                if (pc.final) {
                    args[1] = args[0]; /* unused */
                } else { /* the pairs this dispatch writes: no barrier between the windows */
                    const VkDeviceSize first = whole ? 0 : ((VkDeviceSize)r * n1 + c0) * k * 8;
                    args[1].hz_begin = first;
                    args[1].hz_end = first + (VkDeviceSize)pc.nrows * pc.ncd * k * 8;
                }
                args[2].write = pc.final;
                SX_RETURN_IF_ERROR(sx_vk_dispatch(d, sh, args, 3, &pc, sizeof pc, pc.nrows * pc.ncd, 1));
            }
        /* later passes over the pairs, ping-pong between the two regions */
        pc.row0 = row0, pc.srow = 0, pc.nrows = nrows, pc.c0 = 0, pc.x_off = 0;
        while (!pc.final) {
            pc.ne0 = pc.nch * k;
            pc.nch = pc.ncd = topk_chunks(pc.ne0);
            pc.from_x = 0;
            pc.in_off = pc.out_off;
            pc.out_off = pc.out_off == 0 ? region_b : 0;
            pc.final = pc.nch == 1;
            args[0] = sa, args[1] = sa, args[2] = da;
            args[0].write = false;
            args[1].write = !pc.final; /* the last pass only reads the pairs */
            args[2].write = pc.final;  /* earlier ones leave d alone */
            SX_RETURN_IF_ERROR(sx_vk_dispatch(d, sh, args, 3, &pc, sizeof pc, pc.nrows * pc.nch, 1));
        }
    }
    return SX_OK;
}

sx_status sx_vk_op_TOP_K(sx_device *dev, sx_tensor *node) {
    const uint32_t k = (uint32_t)node->params.top_k.k;
    const bool small = k == 1 || (uint64_t)k * (uint64_t)node->src[0]->ne[0] <= TOPK_ROUNDS_MAX;
    if (small && sx_vk_fits(vk_dev(dev), node->src[0])) return select_op(dev, node, "top_k", k);
    return top_k_passes(vk_dev(dev), node);
}

/* one thread per output (shaders/gather.comp); bad ids raise an error word */
sx_status sx_vk_op_GATHER(sx_device *dev, sx_tensor *node) {
    vk_device *d = vk_dev(dev);
    const sx_tensor *x = node->src[0], *ids = node->src[1];
    const int sh = sx_vk_shader_find("gather");
    if (sh < 0) return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: no gather shader");
    sx_pc_gather pc = {0};
    vk_arg args[4];
    uint32_t xnb[4], inb[4], dnb[4];
    if (!sx_vk_strides(x, 4, xnb) || !sx_vk_strides(ids, 4, inb) || !sx_vk_strides(node, 4, dnb))
        return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: %s: strides", node->name);
    pc.K = (uint32_t)x->ne[0];
    pc.k = (uint32_t)ids->ne[0];
    pc.n = (uint32_t)(ids->ne[0] * ids->ne[1]);
    pc.x_nb0 = xnb[0], pc.x_nb1 = xnb[1];
    pc.ids_nb0 = inb[0], pc.ids_nb1 = inb[1];
    pc.d_nb1 = dnb[1];
    SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, x, 4, false, &args[0], &pc.x_off));
    SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, ids, 4, false, &args[1], &pc.ids_off));
    SX_RETURN_IF_ERROR(sx_vk_arg_tensor(d, node, 4, true, &args[2], &pc.d_off));
    SX_RETURN_IF_ERROR(sx_vk_arg_error(d, &args[3]));
    const uint32_t wg = (uint32_t)sx_vk_shaders[sh].wg;
    return sx_vk_dispatch(d, sh, args, 4, &pc, sizeof pc, (pc.n + wg - 1) / wg, 1);
}
