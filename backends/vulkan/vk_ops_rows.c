/* backends/vulkan/vk_ops_rows.c — ops over rows: one workgroup per row
 * (shaders/rows.comp, select.comp): RMS_NORM, SOFTMAX, ARGMAX, TOP_K; and
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
sx_status sx_vk_op_TOP_K(sx_device *dev, sx_tensor *node) { return select_op(dev, node, "top_k", (uint32_t)node->params.top_k.k); }

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
