/* backends/vulkan/vk_memory.c — buffers and host transfers.
 *
 * Two memory strategies, chosen per device in vk_device.c:
 *  - UMA (integrated GPUs, lavapipe): buffers live in memory that is both
 *    device-local and host-visible/coherent; write/read are memcpy on a
 *    persistent mapping (after waiting for in-flight work).
 *  - discrete: buffers are device-local; write/read go through a host-visible
 *    staging buffer and a copy command, in chunks, waiting on a fence.
 * Either way buffer_write/buffer_read first wait for submitted work, so a
 * compute never races a host access. Plus a small append-only constant
 * store (host-visible) for tables computed on the host (rope frequencies),
 * the kernel error words (host-visible; read in vk_command.c) and one
 * device-local scratch buffer that grows on demand (split-K attention
 * partials). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/vulkan/vk_internal.h"

#define STAGING_BYTES ((size_t)32 << 20)
#define CONST_CHUNK ((VkDeviceSize)64 << 10)

static VkDeviceSize round_up(VkDeviceSize v, VkDeviceSize a) { return (v + a - 1) / a * a; }

sx_status sx_vk_buffer_create(vk_device *d, size_t size, uint32_t mem_type, VkBufferUsageFlags usage, vk_buffer **out) {
    *out = NULL;
    const VkDeviceSize vk_size = round_up(size ? size : 16, 256);
    if (vk_size > d->max_alloc)
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "vulkan: a buffer of %zu bytes exceeds %s's largest allocation (%llu bytes)", size,
                            d->props.deviceName, (unsigned long long)d->max_alloc);
    vk_buffer *b = calloc(1, sizeof *b);
    if (!b) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    static uint64_t serial; /* buffers are created under the device's (single-threaded) use */
    b->base.dev = &d->base;
    b->base.size = size;
    b->vk_size = vk_size;
    b->serial = ++serial;
    const VkBufferCreateInfo bci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = vk_size, .usage = usage, .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult r = sx_vk.vkCreateBuffer(d->dev, &bci, NULL, &b->buf);
    if (r != VK_SUCCESS) {
        free(b);
        return VK_FAIL(r, "vkCreateBuffer(%llu bytes) failed", (unsigned long long)vk_size);
    }
    VkMemoryRequirements req;
    sx_vk.vkGetBufferMemoryRequirements(d->dev, b->buf, &req);
    uint32_t type = mem_type;
    if (!(req.memoryTypeBits & (1u << type))) { /* fall back to any allowed type with the same host visibility */
        const VkMemoryPropertyFlags want = d->mem_props.memoryTypes[mem_type].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT;
        type = UINT32_MAX;
        for (uint32_t i = 0; i < d->mem_props.memoryTypeCount && type == UINT32_MAX; i++)
            if ((req.memoryTypeBits & (1u << i)) && (d->mem_props.memoryTypes[i].propertyFlags & want) == want) type = i;
        if (type == UINT32_MAX) {
            sx_vk.vkDestroyBuffer(d->dev, b->buf, NULL);
            free(b);
            return sx_set_error(SX_ERR_BACKEND, "vulkan: no memory type fits a storage buffer");
        }
    }
    const VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size, .memoryTypeIndex = type};
    r = sx_vk.vkAllocateMemory(d->dev, &mai, NULL, &b->mem);
    if (r != VK_SUCCESS) {
        sx_vk.vkDestroyBuffer(d->dev, b->buf, NULL);
        free(b);
        return VK_FAIL(r, "allocating %llu bytes of device memory on %s failed", (unsigned long long)req.size, d->props.deviceName);
    }
    r = sx_vk.vkBindBufferMemory(d->dev, b->buf, b->mem, 0);
    if (r == VK_SUCCESS && (d->mem_props.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT))
        r = sx_vk.vkMapMemory(d->dev, b->mem, 0, VK_WHOLE_SIZE, 0, &b->map);
    if (r != VK_SUCCESS) {
        sx_vk_buffer_destroy(d, b);
        return VK_FAIL(r, "binding/mapping buffer memory failed");
    }
    *out = b;
    return SX_OK;
}

void sx_vk_buffer_destroy(vk_device *d, vk_buffer *b) {
    if (!b) return;
    if (b->map) sx_vk.vkUnmapMemory(d->dev, b->mem);
    if (b->buf) sx_vk.vkDestroyBuffer(d->dev, b->buf, NULL);
    if (b->mem) sx_vk.vkFreeMemory(d->dev, b->mem, NULL);
    free(b);
}

static const VkBufferUsageFlags STORAGE_USAGE =
    VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;

sx_status sx_vk_memory_init(vk_device *d) {
    /* kernel error words (vk_command.c): one binding each, so align apart */
    d->err_stride = d->align;
    SX_RETURN_IF_ERROR(sx_vk_buffer_create(d, (size_t)(SX_VK_FRAMES * SX_VK_ERR_SLOTS * d->err_stride), d->mt_const,
                                           VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, &d->err_buf));
    if (!d->err_buf->map) return sx_set_error(SX_ERR_BACKEND, "vulkan: the kernel error words are not host-visible");
    memset(d->err_buf->map, 0, (size_t)d->err_buf->vk_size);
    if (d->uma) return SX_OK;
    return sx_vk_buffer_create(d, STAGING_BYTES, d->mt_staging, VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                               &d->staging);
}

void sx_vk_memory_destroy(vk_device *d) {
    for (int i = 0; i < d->n_retired; i++) sx_vk_buffer_destroy(d, d->retired[i]); /* the device is idle */
    free(d->retired);
    d->retired = NULL;
    d->n_retired = 0;
    sx_vk_buffer_destroy(d, d->scratch);
    d->scratch = NULL;
    sx_vk_buffer_destroy(d, d->staging);
    d->staging = NULL;
    sx_vk_buffer_destroy(d, d->err_buf);
    d->err_buf = NULL;
    for (int i = 0; i < d->n_const_bufs; i++) sx_vk_buffer_destroy(d, d->const_bufs[i]);
    free(d->const_bufs);
    free(d->consts);
    d->const_bufs = NULL;
    d->consts = NULL;
    d->n_const_bufs = d->n_consts = 0;
}

sx_status sx_vk_buffer_alloc(sx_device *dev, size_t size, sx_buffer **out) {
    vk_device *d = vk_dev(dev);
    vk_buffer *b;
    SX_RETURN_IF_ERROR(sx_vk_buffer_create(d, size, d->mt_device, STORAGE_USAGE, &b));
    *out = &b->base;
    return SX_OK;
}

void sx_vk_buffer_free(sx_buffer *buf) {
    if (!buf) return;
    vk_device *d = vk_dev(buf->dev);
    if (sx_vk_wait_all(d) != SX_OK) SX_LOGW("vulkan: freeing a buffer after a failed wait: %s", sx_last_error());
    sx_vk_buffer_destroy(d, (vk_buffer *)buf);
}

/* one staging copy of n <= STAGING_BYTES bytes, device <-> staging */
static sx_status staged_copy(vk_device *d, vk_buffer *b, size_t offset, size_t n, bool to_device) {
    const VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO, .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VkResult r = sx_vk.vkBeginCommandBuffer(d->xfer_cmd, &bi);
    if (r != VK_SUCCESS) return VK_FAIL(r, "vkBeginCommandBuffer (transfer) failed");
    /* earlier compute work (other submissions) -> this copy -> later compute / host */
    const VkMemoryBarrier pre = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                                 .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                                 .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
    sx_vk.vkCmdPipelineBarrier(d->xfer_cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &pre, 0, NULL, 0, NULL);
    const VkBufferCopy region = {.srcOffset = to_device ? 0 : offset, .dstOffset = to_device ? offset : 0, .size = n};
    sx_vk.vkCmdCopyBuffer(d->xfer_cmd, to_device ? d->staging->buf : b->buf, to_device ? b->buf : d->staging->buf, 1, &region);
    const VkMemoryBarrier post = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                                  .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                                  .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_HOST_READ_BIT};
    sx_vk.vkCmdPipelineBarrier(d->xfer_cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT, 0,
                               1, &post, 0, NULL, 0, NULL);
    d->stats.barriers += 2;
    r = sx_vk.vkEndCommandBuffer(d->xfer_cmd);
    if (r != VK_SUCCESS) return VK_FAIL(r, "vkEndCommandBuffer (transfer) failed");
    const VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &d->xfer_cmd};
    r = sx_vk.vkResetFences(d->dev, 1, &d->xfer_fence);
    if (r == VK_SUCCESS) r = sx_vk.vkQueueSubmit(d->queue, 1, &si, d->xfer_fence);
    if (r != VK_SUCCESS) return VK_FAIL(r, "vkQueueSubmit (transfer) failed");
    d->stats.submits++;
    r = sx_vk.vkWaitForFences(d->dev, 1, &d->xfer_fence, VK_TRUE, UINT64_MAX);
    if (r != VK_SUCCESS) return VK_FAIL(r, "waiting for a transfer failed");
    return SX_OK;
}

static sx_status check_range(const sx_buffer *buf, size_t offset, size_t n, const char *what) {
    if (offset > buf->size || n > buf->size - offset)
        return sx_set_error(SX_ERR_INVALID_ARG, "vulkan: %s [%zu, +%zu) past buffer size %zu", what, offset, n, buf->size);
    return SX_OK;
}

sx_status sx_vk_buffer_write(sx_buffer *buf, size_t offset, const void *src, size_t n) {
    vk_buffer *b = (vk_buffer *)buf;
    vk_device *d = vk_dev(buf->dev);
    SX_RETURN_IF_ERROR(check_range(buf, offset, n, "write"));
    SX_RETURN_IF_ERROR(sx_vk_wait_all(d));
    b->version++; /* host tables derived from these bytes (rope factors) are stale now */
    if (b->map) {
        memcpy((char *)b->map + offset, src, n);
        return SX_OK;
    }
    for (size_t done = 0; done < n;) {
        const size_t c = n - done < STAGING_BYTES ? n - done : STAGING_BYTES;
        memcpy(d->staging->map, (const char *)src + done, c);
        SX_RETURN_IF_ERROR(staged_copy(d, b, offset + done, c, true));
        done += c;
    }
    return SX_OK;
}

/* The bytes, after the submitted graphs (not one being recorded) finish;
 * kernel errors stay for the next read or synchronize. */
sx_status sx_vk_read_bytes(vk_buffer *b, size_t offset, void *dst, size_t n) {
    vk_device *d = vk_dev(b->base.dev);
    SX_RETURN_IF_ERROR(check_range(&b->base, offset, n, "read"));
    SX_RETURN_IF_ERROR(sx_vk_wait_all(d));
    if (b->map) {
        memcpy(dst, (const char *)b->map + offset, n);
        return SX_OK;
    }
    for (size_t done = 0; done < n;) {
        const size_t c = n - done < STAGING_BYTES ? n - done : STAGING_BYTES;
        SX_RETURN_IF_ERROR(staged_copy(d, b, offset + done, c, false));
        memcpy((char *)dst + done, d->staging->map, c);
        done += c;
    }
    return SX_OK;
}

sx_status sx_vk_buffer_read(sx_buffer *buf, size_t offset, void *dst, size_t n) {
    vk_buffer *b = (vk_buffer *)buf;
    vk_device *d = vk_dev(buf->dev);
    SX_RETURN_IF_ERROR(check_range(buf, offset, n, "read"));
    SX_RETURN_IF_ERROR(sx_vk_wait_all(d));
    SX_RETURN_IF_ERROR(sx_vk_check_validation(d, "buffer_read"));
    if (b->map) {
        memcpy(dst, (const char *)b->map + offset, n);
    } else {
        for (size_t done = 0; done < n;) {
            const size_t c = n - done < STAGING_BYTES ? n - done : STAGING_BYTES;
            SX_RETURN_IF_ERROR(staged_copy(d, b, offset + done, c, false));
            memcpy((char *)dst + done, d->staging->map, c);
            done += c;
        }
    }
    /* the bytes are copied, but a kernel before them skipped rows: say so */
    return sx_vk_kernel_errors(d);
}

bool sx_vk_const_find(vk_device *d, const char *key, vk_arg *out) {
    for (int i = 0; i < d->n_consts; i++)
        if (!strcmp(d->consts[i].key, key)) {
            const vk_const_entry *e = &d->consts[i];
            *out = (vk_arg){e->buf->buf, e->off, e->size, e->off, e->off + e->size, false};
            return true;
        }
    return false;
}

sx_status sx_vk_const_get(vk_device *d, const char *key, const void *data, size_t size, vk_arg *out) {
    if (sx_vk_const_find(d, key, out)) return SX_OK;
    const VkDeviceSize need = round_up(size, 4);
    VkDeviceSize at = d->n_const_bufs ? round_up(d->const_used, d->align) : 0;
    if (!d->n_const_bufs || at + need > d->const_bufs[d->n_const_bufs - 1]->vk_size) {
        vk_buffer *b;
        SX_RETURN_IF_ERROR(sx_vk_buffer_create(d, need > CONST_CHUNK ? need : CONST_CHUNK, d->mt_const, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, &b));
        if (!b->map) {
            sx_vk_buffer_destroy(d, b);
            return sx_set_error(SX_ERR_BACKEND, "vulkan: constant memory is not host-visible");
        }
        vk_buffer **nb = realloc(d->const_bufs, sizeof *nb * (size_t)(d->n_const_bufs + 1));
        if (!nb) {
            sx_vk_buffer_destroy(d, b);
            return sx_set_error(SX_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
        }
        d->const_bufs = nb;
        d->const_bufs[d->n_const_bufs++] = b;
        at = 0;
    }
    vk_const_entry *ne = realloc(d->consts, sizeof *ne * (size_t)(d->n_consts + 1));
    if (!ne) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    d->consts = ne;
    vk_buffer *b = d->const_bufs[d->n_const_bufs - 1];
    memcpy((char *)b->map + at, data, size); /* fresh bytes: no in-flight reader */
    vk_const_entry *e = &d->consts[d->n_consts++];
    snprintf(e->key, sizeof e->key, "%s", key);
    e->buf = b;
    e->off = at;
    e->size = need;
    d->const_used = at + need;
    *out = (vk_arg){b->buf, at, need, at, at + need, false};
    return SX_OK;
}

void sx_vk_scratch_trim(vk_device *d) {
    for (int i = 0; i < SX_VK_FRAMES; i++)
        if (d->frames[i].pending) return;
    if (d->frame >= 0) return;
    for (int i = 0; i < d->n_retired; i++) sx_vk_buffer_destroy(d, d->retired[i]);
    free(d->retired);
    d->retired = NULL;
    d->n_retired = 0;
}

sx_status sx_vk_scratch_get(vk_device *d, size_t size, bool write, vk_arg *out) {
    if (size == 0) size = 4;
    if (size > d->max_range)
        return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: %zu bytes of scratch exceed the binding limit (%llu)", size,
                            (unsigned long long)d->max_range);
    if (!d->scratch || d->scratch->base.size < size) {
        size_t want = (size_t)1 << 20; /* grow geometrically: few reallocations */
        while (want < size) want *= 2;
        if (want > d->max_range) want = size;
        vk_buffer *b;
        SX_RETURN_IF_ERROR(sx_vk_buffer_create(d, want, d->mt_device, STORAGE_USAGE, &b));
        if (d->scratch) { /* a recorded or pending frame may still use it */
            vk_buffer **r = realloc(d->retired, sizeof *r * (size_t)(d->n_retired + 1));
            if (!r) {
                sx_vk_buffer_destroy(d, b);
                return sx_set_error(SX_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
            }
            d->retired = r;
            d->retired[d->n_retired++] = d->scratch;
        }
        d->scratch = b;
    }
    const VkDeviceSize range = (size + 3) / 4 * 4;
    *out = (vk_arg){d->scratch->buf, 0, range, 0, range, write};
    return SX_OK;
}
