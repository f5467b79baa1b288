/* core/weights.c — binding GGUF tensors to weight tensors (every name, shape
 * and type checked) and placing them on a device (zero copy on the CPU). */
#include <stdio.h>
#include <string.h>

#include "core/weights.h"

/* Finds a tensor, checks its shape (ne1 = 0: 1-D) and dtype class. */
static sx_status bind(sx_weight_loader *L, const char *name, int64_t ne0, int64_t ne1, int64_t ne2, bool optional, bool must_be_f32,
                      sx_tensor **out);

sx_status sx_weights_bind(sx_weight_loader *L, const char *name, int64_t ne0, int64_t ne1, bool optional, bool must_be_f32, sx_tensor **out) {
    return bind(L, name, ne0, ne1, 1, optional, must_be_f32, out);
}

sx_status sx_weights_bind3(sx_weight_loader *L, const char *name, int64_t ne0, int64_t ne1, int64_t ne2, sx_tensor **out) {
    return bind(L, name, ne0, ne1, ne2, false, false, out);
}

static sx_status bind(sx_weight_loader *L, const char *name, int64_t ne0, int64_t ne1, int64_t ne2, bool optional, bool must_be_f32,
                      sx_tensor **out) {
    *out = NULL;
    const sx_gguf *g = L->g;
    const int64_t i = sx_gguf_find_tensor(g, name);
    if (i < 0) {
        if (optional) return SX_OK;
        return sx_set_error(SX_ERR_FORMAT, "%s: missing tensor '%s' required by %s", L->path, name, L->arch);
    }
    sx_gguf_tensor_info ti;
    SX_RETURN_IF_ERROR(sx_gguf_tensor(g, i, &ti));
    if (ti.dtype == SX_DTYPE_COUNT)
        return sx_set_error(SX_ERR_UNSUPPORTED, "%s: tensor '%s' has unsupported type %d (%s); supported: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 iq4_nl q2_k q3_k q4_k q5_k q6_k iq4_xs",
                            L->path, name, ti.ggml_type, sx_gguf_ggml_type_name(ti.ggml_type));
    const int64_t want1 = ne1 ? ne1 : 1;
    if (ti.ne[0] != ne0 || ti.ne[1] != want1 || ti.ne[2] != ne2 || ti.ne[3] != 1) {
        if (ne2 > 1)
            return sx_set_error(SX_ERR_FORMAT, "%s: tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld, %lld]", L->path, name,
                                (long long)ti.ne[0], (long long)ti.ne[1], (long long)ti.ne[2], (long long)ti.ne[3], (long long)ne0, (long long)want1,
                                (long long)ne2);
        return sx_set_error(SX_ERR_FORMAT, "%s: tensor '%s' has shape [%lld, %lld, %lld, %lld], expected [%lld, %lld]", L->path, name,
                            (long long)ti.ne[0], (long long)ti.ne[1], (long long)ti.ne[2], (long long)ti.ne[3], (long long)ne0, (long long)want1);
    }
    if (must_be_f32 && ti.dtype != SX_DTYPE_F32)
        return sx_set_error(SX_ERR_UNSUPPORTED, "%s: tensor '%s' is %s; norms and biases must be f32", L->path, name, sx_dtype_name(ti.dtype));
    if (ti.dtype == SX_DTYPE_I32) return sx_set_error(SX_ERR_FORMAT, "%s: tensor '%s' is i32, not a weight", L->path, name);
    if (L->n_tensors >= L->cap) return sx_set_error(SX_ERR_FORMAT, "%s: too many tensors", L->path);
    sx_tensor *t = &L->tensors[L->n_tensors++];
    memset(t, 0, sizeof *t);
    t->dtype = ti.dtype;
    for (int d = 0; d < SX_MAX_DIMS; d++) t->ne[d] = ti.ne[d];
    sx_tensor_set_contiguous_strides(t);
    if (sx_tensor_nbytes(t) != ti.size)
        return sx_set_error(SX_ERR_FORMAT, "%s: tensor '%s' size %zu does not match its shape", L->path, name, ti.size);
    t->role = SX_ROLE_WEIGHT;
    t->offset = (size_t)(ti.offset - L->data_offset);
    t->device = -1;
    t->index = -1;
    t->live_from = -1;
    snprintf(t->name, sizeof t->name, "%.47s", name);
    *out = t;
    return SX_OK;
}

sx_status sx_weights_place(sx_weight_loader *L, sx_device *dev, sx_buffer **out_buf) {
    const size_t size = sx_gguf_size(L->g) - (size_t)L->data_offset;
    void *base = (char *)sx_gguf_data(L->g) + L->data_offset;
    sx_buffer *buf = NULL;
    *out_buf = NULL;
    if (dev->info.host_visible && dev->vt->buffer_wrap_host) {
        /* zero copy: kernels read the file mapping; weights are never written */
        SX_RETURN_IF_ERROR(dev->vt->buffer_wrap_host(dev, base, size, &buf));
    } else {
        SX_RETURN_IF_ERROR(sx_buffer_alloc(dev, size, &buf));
        const size_t chunk = 64u << 20;
        for (size_t off = 0; off < size; off += chunk) {
            const size_t n = size - off < chunk ? size - off : chunk;
            sx_status s = dev->vt->buffer_write(buf, off, (const char *)base + off, n);
            if (s != SX_OK) {
                sx_buffer_free(buf);
                return s;
            }
            SX_LOGI("uploading weights to %s: %zu/%zu MiB", dev->info.name, (off + n) >> 20, size >> 20);
        }
    }
    for (int i = 0; i < L->n_tensors; i++) L->tensors[i].buffer = buf;
    *out_buf = buf;
    return SX_OK;
}

sx_status sx_weights_place_some(sx_weight_loader *L, sx_device *dev, sx_buffer **out_buf, size_t *out_bytes) {
    *out_buf = NULL;
    *out_bytes = 0;
    size_t total = 0;
    int n = 0;
    for (int i = 0; i < L->n_tensors; i++)
        if (L->tensor_dev[i] == dev) total += (sx_tensor_nbytes(&L->tensors[i]) + 255) & ~(size_t)255, n++;
    if (n == 0) return SX_OK;
    sx_buffer *buf = NULL;
    if (dev->info.host_visible && dev->vt->buffer_wrap_host) {
        const size_t size = sx_gguf_size(L->g) - (size_t)L->data_offset;
        SX_RETURN_IF_ERROR(dev->vt->buffer_wrap_host(dev, (char *)sx_gguf_data(L->g) + L->data_offset, size, &buf));
        for (int i = 0; i < L->n_tensors; i++)
            if (L->tensor_dev[i] == dev) L->tensors[i].buffer = buf, *out_bytes += sx_tensor_nbytes(&L->tensors[i]);
        *out_buf = buf;
        return SX_OK;
    }
    SX_RETURN_IF_ERROR(sx_buffer_alloc(dev, total, &buf));
    size_t at = 0, next_log = 0;
    for (int i = 0; i < L->n_tensors; i++) {
        sx_tensor *t = &L->tensors[i];
        if (L->tensor_dev[i] != dev) continue;
        const size_t bytes = sx_tensor_nbytes(t);
        const sx_status s = dev->vt->buffer_write(buf, at, (const char *)sx_gguf_data(L->g) + L->data_offset + t->offset, bytes);
        if (s != SX_OK) {
            sx_buffer_free(buf);
            return s;
        }
        t->buffer = buf;
        t->offset = at;
        at += (bytes + 255) & ~(size_t)255;
        *out_bytes += bytes;
        if (at >= next_log || at == total) {
            SX_LOGI("uploading weights to %s: %zu/%zu MiB", dev->info.name, at >> 20, total >> 20);
            next_log = at + (64u << 20);
        }
    }
    *out_buf = buf;
    return SX_OK;
}
