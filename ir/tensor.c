/* ir/tensor.c — shape and stride helpers. */
#include <stdio.h>

#include "ir/tensor.h"

int64_t sx_tensor_nelements(const sx_tensor *t) { return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; }
int64_t sx_tensor_nrows(const sx_tensor *t) { return t->ne[1] * t->ne[2] * t->ne[3]; }

size_t sx_tensor_nbytes(const sx_tensor *t) {
    const sx_dtype_info *info = sx_dtype_get(t->dtype);
    if (!info) return 0;
    for (int i = 0; i < SX_MAX_DIMS; i++)
        if (t->ne[i] <= 0) return 0;
    size_t n = (size_t)(t->ne[0] / info->block_size) * t->nb[0];
    for (int i = 1; i < SX_MAX_DIMS; i++) n += (size_t)(t->ne[i] - 1) * t->nb[i];
    return n;
}

void sx_tensor_set_contiguous_strides(sx_tensor *t) {
    const sx_dtype_info *info = sx_dtype_get(t->dtype);
    t->nb[0] = (size_t)info->type_size;
    t->nb[1] = t->nb[0] * (size_t)(t->ne[0] / info->block_size);
    for (int i = 2; i < SX_MAX_DIMS; i++) t->nb[i] = t->nb[i - 1] * (size_t)t->ne[i - 1];
}

bool sx_tensor_is_contiguous(const sx_tensor *t) {
    const sx_dtype_info *info = sx_dtype_get(t->dtype);
    size_t expect = (size_t)info->type_size;
    if (t->nb[0] != expect) return false;
    expect *= (size_t)(t->ne[0] / info->block_size);
    for (int i = 1; i < SX_MAX_DIMS; i++) {
        if (t->ne[i] != 1 && t->nb[i] != expect) return false;
        expect *= (size_t)t->ne[i];
    }
    return true;
}

size_t sx_tensor_buffer_offset(const sx_tensor *t) {
    return t->view_src ? t->view_src->offset + t->view_offs : t->offset;
}

const char *sx_tensor_describe(const sx_tensor *t, char *buf, size_t size) {
    snprintf(buf, size, "%s%s%s [%lld, %lld, %lld, %lld]", t->name[0] ? t->name : "", t->name[0] ? " " : "",
             sx_dtype_name(t->dtype), (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3]);
    return buf;
}
