/* backends/vulkan/vk_command.c — recording, hazards, submission.
 *
 * A compute call records all of its nodes into one command buffer of a
 * frame and submits it once, without waiting; buffer_read / synchronize wait
 * on the fences. SX_VK_FRAMES frames rotate so the host can record the next
 * graph while the previous one runs.
 *
 * Hazards are tracked by byte range, not by graph edges: the KV cache is
 * written by SET_ROWS and read through views by ATTENTION, and the memory
 * planner reuses arena bytes between unrelated tensors. Each dispatch lists
 * the ranges it reads and writes; a barrier is recorded only when one of them
 * overlaps a range written (read-after-write, write-after-write) or read
 * (write-after-read) since the last barrier. The sets persist across
 * submissions (barriers order work of earlier submissions on the queue too).
 * Descriptor sets come from per-frame pools, reset when the frame is reused.
 *
 * Kernel errors: GET_ROWS / SET_ROWS / GATHER / MUL_MAT_ID skip an id out
 * of range and OR a code into an error word (shaders/common/errors.glsl;
 * codes SX_KERR_* in common/params.h). Each such dispatch binds
 * its own word, one of SX_VK_ERR_SLOTS per frame in a host-visible buffer,
 * so the words add no barrier and no submit. After a frame's fence wait
 * (which every read and synchronize already does) the host reads the words
 * that frame handed out, clears them, and keeps the codes in err_code until
 * buffer_read / synchronize report them (sx_vk_kernel_errors). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/vulkan/vk_internal.h"

#define POOL_SETS 512

static sx_status new_pool(vk_device *d, vk_frame *f) {
    const VkDescriptorPoolSize ps = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .descriptorCount = POOL_SETS * SX_VK_MAX_BINDINGS};
    const VkDescriptorPoolCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = POOL_SETS, .poolSizeCount = 1, .pPoolSizes = &ps};
    VkDescriptorPool *np = realloc(f->pools, sizeof *np * (size_t)(f->n_pools + 1));
    if (!np) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    f->pools = np;
    VkResult r = sx_vk.vkCreateDescriptorPool(d->dev, &ci, NULL, &f->pools[f->n_pools]);
    if (r != VK_SUCCESS) return VK_FAIL(r, "vkCreateDescriptorPool failed");
    f->n_pools++;
    return SX_OK;
}

sx_status sx_vk_cmd_init(vk_device *d) {
    const VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                         .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                         .queueFamilyIndex = d->queue_family};
    VkResult r = sx_vk.vkCreateCommandPool(d->dev, &pci, NULL, &d->cmd_pool);
    if (r != VK_SUCCESS) return VK_FAIL(r, "vkCreateCommandPool failed");
    VkCommandBuffer cbs[SX_VK_FRAMES + 1];
    const VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                            .commandPool = d->cmd_pool,
                                            .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                            .commandBufferCount = SX_VK_FRAMES + 1};
    r = sx_vk.vkAllocateCommandBuffers(d->dev, &ai, cbs);
    if (r != VK_SUCCESS) return VK_FAIL(r, "vkAllocateCommandBuffers failed");
    const VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    for (int i = 0; i < SX_VK_FRAMES; i++) {
        d->frames[i].cmd = cbs[i];
        r = sx_vk.vkCreateFence(d->dev, &fci, NULL, &d->frames[i].fence);
        if (r != VK_SUCCESS) return VK_FAIL(r, "vkCreateFence failed");
        SX_RETURN_IF_ERROR(new_pool(d, &d->frames[i]));
    }
    d->xfer_cmd = cbs[SX_VK_FRAMES];
    r = sx_vk.vkCreateFence(d->dev, &fci, NULL, &d->xfer_fence);
    if (r != VK_SUCCESS) return VK_FAIL(r, "vkCreateFence failed");
    return SX_OK;
}

void sx_vk_cmd_destroy(vk_device *d) {
    for (int i = 0; i < SX_VK_FRAMES; i++) {
        vk_frame *f = &d->frames[i];
        for (int p = 0; p < f->n_pools; p++) sx_vk.vkDestroyDescriptorPool(d->dev, f->pools[p], NULL);
        free(f->pools);
        if (f->fence) sx_vk.vkDestroyFence(d->dev, f->fence, NULL);
    }
    if (d->xfer_fence) sx_vk.vkDestroyFence(d->dev, d->xfer_fence, NULL);
    if (d->cmd_pool) sx_vk.vkDestroyCommandPool(d->dev, d->cmd_pool, NULL);
    free(d->hz_rd);
    free(d->hz_wr);
}

static volatile uint32_t *err_word(vk_device *d, int frame, uint32_t slot) {
    return (volatile uint32_t *)((char *)d->err_buf->map + ((VkDeviceSize)frame * SX_VK_ERR_SLOTS + slot) * d->err_stride);
}

/* After the fence: the submit's final barrier made the kernels' writes
 * visible to the host; the cleared words reach the device with the next
 * submit (host writes to coherent memory before vkQueueSubmit). */
static void collect_errors(vk_device *d, vk_frame *f) {
    const int fi = (int)(f - d->frames);
    const uint32_t n = f->n_err < SX_VK_ERR_SLOTS ? f->n_err : SX_VK_ERR_SLOTS;
    for (uint32_t i = 0; i < n; i++) {
        volatile uint32_t *w = err_word(d, fi, i);
        if (*w) d->err_code |= *w, *w = 0;
    }
    f->n_err = 0;
}

static sx_status wait_frame(vk_device *d, vk_frame *f) {
    if (!f->pending) return SX_OK;
    VkResult r = sx_vk.vkWaitForFences(d->dev, 1, &f->fence, VK_TRUE, UINT64_MAX);
    if (r != VK_SUCCESS) return VK_FAIL(r, "waiting for a submitted graph failed%s", r == VK_ERROR_DEVICE_LOST ? " (device lost)" : "");
    f->pending = false;
    collect_errors(d, f);
    return SX_OK;
}

sx_status sx_vk_kernel_errors(vk_device *d) {
    static const struct {
        uint32_t code;
        const char *what;
    } msgs[] = {{SX_KERR_GET_ROWS_ID, "get_rows: an id was out of range (rows skipped)"},
                {SX_KERR_SET_ROWS_ID, "set_rows: a slot was out of range (rows skipped)"},
                {SX_KERR_GATHER_ID, "gather: an id was out of range (values skipped)"},
                {SX_KERR_MUL_MAT_ID_ID, "mul_mat_id: an expert id was out of range (columns skipped)"}};
    const uint32_t code = d->err_code;
    d->err_code = 0;
    if (!code) return SX_OK;
    uint32_t known = 0;
    char text[320] = "";
    size_t len = 0;
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        known |= msgs[i].code;
        if (code & msgs[i].code) len += (size_t)snprintf(text + len, sizeof text - len, "%s%s", len ? "; " : "", msgs[i].what);
    }
    if (code & ~known) return sx_set_error(SX_ERR_BACKEND, "vulkan: kernel error code 0x%x", code);
    return sx_set_error(SX_ERR_INVALID_ARG, "vulkan: %s", text);
}

sx_status sx_vk_arg_error(vk_device *d, vk_arg *out) {
    SX_RETURN_IF_ERROR(sx_vk_begin(d));
    vk_frame *f = &d->frames[d->frame];
    const VkDeviceSize off = ((VkDeviceSize)d->frame * SX_VK_ERR_SLOTS + f->n_err % SX_VK_ERR_SLOTS) * d->err_stride;
    f->n_err++;
    *out = (vk_arg){d->err_buf->buf, off, 4, off, off + 4, true};
    return SX_OK;
}

sx_status sx_vk_wait_all(vk_device *d) {
    for (int i = 0; i < SX_VK_FRAMES; i++) SX_RETURN_IF_ERROR(wait_frame(d, &d->frames[i]));
    sx_vk_scratch_trim(d); /* outgrown scratch: no frame uses it now */
    return SX_OK;
}

sx_status sx_vk_begin(vk_device *d) {
    if (d->frame >= 0) return SX_OK;
    vk_frame *f = &d->frames[d->next_frame];
    SX_RETURN_IF_ERROR(wait_frame(d, f));
    for (int p = 0; p < f->n_pools; p++) {
        VkResult r = sx_vk.vkResetDescriptorPool(d->dev, f->pools[p], 0);
        if (r != VK_SUCCESS) return VK_FAIL(r, "vkResetDescriptorPool failed");
    }
    f->cur_pool = 0;
    f->n_err = 0;
    const VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO, .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VkResult r = sx_vk.vkBeginCommandBuffer(f->cmd, &bi);
    if (r != VK_SUCCESS) return VK_FAIL(r, "vkBeginCommandBuffer failed");
    d->frame = d->next_frame;
    d->next_frame = (d->next_frame + 1) % SX_VK_FRAMES;
    return SX_OK;
}

static void barrier(vk_device *d, VkCommandBuffer cmd, VkPipelineStageFlags dst_stage, VkAccessFlags dst_access) {
    const VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT, .dstAccessMask = dst_access};
    sx_vk.vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, dst_stage, 0, 1, &mb, 0, NULL, 0, NULL);
    d->stats.barriers++;
}

sx_status sx_vk_submit(vk_device *d) {
    if (d->frame < 0) return SX_OK;
    vk_frame *f = &d->frames[d->frame];
    d->frame = -1;
    /* make this submission's writes visible to host reads after the fence */
    barrier(d, f->cmd, VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
    VkResult r = sx_vk.vkEndCommandBuffer(f->cmd);
    if (r != VK_SUCCESS) return VK_FAIL(r, "vkEndCommandBuffer failed");
    const VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &f->cmd};
    r = sx_vk.vkResetFences(d->dev, 1, &f->fence);
    if (r == VK_SUCCESS) r = sx_vk.vkQueueSubmit(d->queue, 1, &si, f->fence);
    if (r != VK_SUCCESS) return VK_FAIL(r, "vkQueueSubmit failed");
    f->pending = true;
    d->stats.submits++;
    return SX_OK;
}

/* ---- hazards ---- */
static bool overlaps(const vk_range *set, int n, const vk_arg *a) {
    for (int i = 0; i < n; i++)
        if (set[i].buf == a->buf && set[i].begin < a->hz_end && a->hz_begin < set[i].end) return true;
    return false;
}

static sx_status push_range(vk_range **set, int *n, int *cap, const vk_arg *a) {
    for (int i = 0; i < *n; i++) { /* merge with an identical or touching range of the same buffer */
        vk_range *r = &(*set)[i];
        if (r->buf == a->buf && r->begin <= a->hz_end && a->hz_begin <= r->end) {
            if (a->hz_begin < r->begin) r->begin = a->hz_begin;
            if (a->hz_end > r->end) r->end = a->hz_end;
            return SX_OK;
        }
    }
    if (*n == *cap) {
        const int nc = *cap ? 2 * *cap : 64;
        vk_range *p = realloc(*set, sizeof *p * (size_t)nc);
        if (!p) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
        *set = p;
        *cap = nc;
    }
    (*set)[(*n)++] = (vk_range){a->buf, a->hz_begin, a->hz_end};
    return SX_OK;
}

static VkDescriptorSet alloc_set(vk_device *d, vk_frame *f, int n_bindings, sx_status *st) {
    for (;;) {
        if (f->cur_pool == f->n_pools && (*st = new_pool(d, f)) != SX_OK) return VK_NULL_HANDLE;
        const VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                                .descriptorPool = f->pools[f->cur_pool],
                                                .descriptorSetCount = 1,
                                                .pSetLayouts = &d->dsl[n_bindings]};
        VkDescriptorSet set;
        VkResult r = sx_vk.vkAllocateDescriptorSets(d->dev, &ai, &set);
        if (r == VK_SUCCESS) return set;
        if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL) {
            *st = VK_FAIL(r, "vkAllocateDescriptorSets failed");
            return VK_NULL_HANDLE;
        }
        f->cur_pool++;
    }
}

sx_status sx_vk_dispatch(vk_device *d, int shader, const vk_arg *args, int n_args, const void *pc, size_t pc_size, uint32_t groups,
                         uint32_t gy2) {
    if (groups == 0 || gy2 == 0) return SX_OK;
    VkPipeline pipe;
    SX_RETURN_IF_ERROR(sx_vk_pipeline_get(d, shader, &pipe));
    if (sx_vk_shaders[shader].n_bindings != n_args)
        return sx_set_error(SX_ERR_BACKEND, "vulkan: %s takes %d bindings, %d given", sx_vk_shaders[shader].name, sx_vk_shaders[shader].n_bindings,
                            n_args);
    SX_RETURN_IF_ERROR(sx_vk_begin(d));
    vk_frame *f = &d->frames[d->frame];

    bool hazard = false;
    for (int i = 0; i < n_args && !hazard; i++)
        hazard = overlaps(d->hz_wr, d->n_wr, &args[i]) || (args[i].write && overlaps(d->hz_rd, d->n_rd, &args[i]));
    if (hazard) {
        barrier(d, f->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
        d->n_rd = d->n_wr = 0;
    }
    for (int i = 0; i < n_args; i++)
        SX_RETURN_IF_ERROR(args[i].write ? push_range(&d->hz_wr, &d->n_wr, &d->cap_wr, &args[i]) : push_range(&d->hz_rd, &d->n_rd, &d->cap_rd, &args[i]));

    sx_status st = SX_OK;
    VkDescriptorSet set = alloc_set(d, f, n_args, &st);
    if (!set) return st;
    VkDescriptorBufferInfo bi[SX_VK_MAX_BINDINGS];
    VkWriteDescriptorSet w[SX_VK_MAX_BINDINGS];
    for (int i = 0; i < n_args; i++) {
        bi[i] = (VkDescriptorBufferInfo){args[i].buf, args[i].off, args[i].range};
        w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                      .dstSet = set,
                                      .dstBinding = (uint32_t)i,
                                      .descriptorCount = 1,
                                      .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                      .pBufferInfo = &bi[i]};
    }
    sx_vk.vkUpdateDescriptorSets(d->dev, (uint32_t)n_args, w, 0, NULL);
    sx_vk.vkCmdBindPipeline(f->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipe);
    sx_vk.vkCmdBindDescriptorSets(f->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, d->layout[n_args], 0, 1, &set, 0, NULL);
    sx_vk.vkCmdPushConstants(f->cmd, d->layout[n_args], VK_SHADER_STAGE_COMPUTE_BIT, 0, (uint32_t)pc_size, pc);
    uint32_t gx = groups, gy = gy2;
    if (gy2 == 1 && groups > d->max_groups[0]) { /* spread a long 1-D grid over y; shaders use group_linear() */
        gx = d->max_groups[0] < 65535 ? d->max_groups[0] : 65535;
        gy = (groups + gx - 1) / gx;
    }
    if (gx > d->max_groups[0] || gy > d->max_groups[1])
        return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: %s needs a %ux%u grid (limits %ux%u)", sx_vk_shaders[shader].name, gx, gy, d->max_groups[0],
                            d->max_groups[1]);
    sx_vk.vkCmdDispatch(f->cmd, gx, gy, 1);
    d->stats.dispatches++;
    return SX_OK;
}

/* ---- bindings ---- */
bool sx_vk_strides(const sx_tensor *t, size_t unit, uint32_t nb[4]) {
    for (int i = 0; i < 4; i++) {
        if (t->nb[i] % unit || t->nb[i] / unit > UINT32_MAX) return false;
        nb[i] = (uint32_t)(t->nb[i] / unit);
    }
    return true;
}

bool sx_vk_fits(const vk_device *d, const sx_tensor *t) { return sx_tensor_nbytes(t) + d->align <= d->max_range; }

sx_status sx_vk_arg_window(vk_device *d, const sx_tensor *t, size_t begin, size_t len, size_t unit, bool write, vk_arg *out, uint32_t *elem) {
    const sx_tensor *root = t->view_src ? t->view_src : t;
    if (!root->buffer || root->buffer->dev != &d->base)
        return sx_set_error(SX_ERR_INVALID_ARG, "vulkan: tensor %s is not in a buffer of this device", t->name);
    const vk_buffer *b = (const vk_buffer *)root->buffer;
    if (len == 0) len = 1;
    const VkDeviceSize aligned = begin / d->align * d->align;
    const VkDeviceSize rem = begin - aligned;
    VkDeviceSize range = (rem + len + 3) / 4 * 4;
    if (aligned + range > b->vk_size) range = b->vk_size - aligned;
    if (begin + len > b->base.size + (b->vk_size - b->base.size))
        return sx_set_error(SX_ERR_INVALID_ARG, "vulkan: tensor %s [%zu, +%zu) lies outside its buffer", t->name, begin, len);
    if (range > d->max_range)
        return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: tensor %s needs a %llu-byte binding (device limit %llu)", t->name,
                            (unsigned long long)range, (unsigned long long)d->max_range);
    if (rem % unit) return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: tensor %s is not aligned to %zu bytes", t->name, unit);
    *out = (vk_arg){b->buf, aligned, range, begin, begin + len, write};
    if (elem) *elem = (uint32_t)(rem / unit);
    return SX_OK;
}

sx_status sx_vk_arg_tensor(vk_device *d, const sx_tensor *t, size_t unit, bool write, vk_arg *out, uint32_t *elem) {
    return sx_vk_arg_window(d, t, sx_tensor_buffer_offset(t), sx_tensor_nbytes(t), unit, write, out, elem);
}
