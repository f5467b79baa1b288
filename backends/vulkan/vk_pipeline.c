/* backends/vulkan/vk_pipeline.c — layouts and lazily built pipelines.
 *
 * Every shader binds n storage buffers at set 0, bindings 0..n-1, and takes
 * one push-constant block (<= 128 bytes, checked in shaders/common/params.h).
 * So there is one descriptor-set layout and one pipeline layout per binding
 * count, and one pipeline per shader variant, created on first use and kept
 * for the device's lifetime (through a VkPipelineCache). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "backends/vulkan/vk_internal.h"

int sx_vk_shader_find(const char *name) {
    for (int i = 0; i < SX_VK_N_SHADERS; i++)
        if (!strcmp(sx_vk_shaders[i].name, name)) return i;
    return -1;
}

int sx_vk_shader_pick(const vk_device *d, const char *fmt, ...) {
    char name[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (!d->subgroup_arith) { /* "matvec1_q4_0" -> "matvec1_nosg_q4_0", "rms_norm" -> "rms_norm_nosg" */
        char alt[112];
        const char *us = strchr(name, '_');
        const int with_suffix = sx_vk_shader_find(strcat(strcpy(alt, name), "_nosg"));
        if (with_suffix >= 0) return with_suffix;
        if (us) {
            snprintf(alt, sizeof alt, "%.*s_nosg%s", (int)(us - name), name, us);
            const int mid = sx_vk_shader_find(alt);
            if (mid >= 0) return mid;
        }
    }
    return sx_vk_shader_find(name);
}

sx_status sx_vk_pipeline_init(vk_device *d) {
    VkDescriptorSetLayoutBinding b[SX_VK_MAX_BINDINGS];
    for (int i = 0; i < SX_VK_MAX_BINDINGS; i++)
        b[i] = (VkDescriptorSetLayoutBinding){
            .binding = (uint32_t)i, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    const VkPushConstantRange pcr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = 128};
    for (int n = 1; n <= SX_VK_MAX_BINDINGS; n++) {
        const VkDescriptorSetLayoutCreateInfo ci = {
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO, .bindingCount = (uint32_t)n, .pBindings = b};
        VkResult r = sx_vk.vkCreateDescriptorSetLayout(d->dev, &ci, NULL, &d->dsl[n]);
        if (r != VK_SUCCESS) return VK_FAIL(r, "vkCreateDescriptorSetLayout failed");
        const VkPipelineLayoutCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                                .setLayoutCount = 1,
                                                .pSetLayouts = &d->dsl[n],
                                                .pushConstantRangeCount = 1,
                                                .pPushConstantRanges = &pcr};
        r = sx_vk.vkCreatePipelineLayout(d->dev, &pci, NULL, &d->layout[n]);
        if (r != VK_SUCCESS) return VK_FAIL(r, "vkCreatePipelineLayout failed");
    }
    const VkPipelineCacheCreateInfo cci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
    VkResult r = sx_vk.vkCreatePipelineCache(d->dev, &cci, NULL, &d->pcache);
    if (r != VK_SUCCESS) return VK_FAIL(r, "vkCreatePipelineCache failed");
    return SX_OK;
}

void sx_vk_pipeline_destroy(vk_device *d) {
    for (int i = 0; i < SX_VK_N_SHADERS; i++)
        if (d->pipelines[i]) sx_vk.vkDestroyPipeline(d->dev, d->pipelines[i], NULL);
    for (int n = 1; n <= SX_VK_MAX_BINDINGS; n++) {
        if (d->layout[n]) sx_vk.vkDestroyPipelineLayout(d->dev, d->layout[n], NULL);
        if (d->dsl[n]) sx_vk.vkDestroyDescriptorSetLayout(d->dev, d->dsl[n], NULL);
    }
    if (d->pcache) sx_vk.vkDestroyPipelineCache(d->dev, d->pcache, NULL);
}

sx_status sx_vk_pipeline_get(vk_device *d, int shader, VkPipeline *out) {
    if (shader < 0 || shader >= SX_VK_N_SHADERS) return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: no shader variant for this op");
    if (d->pipelines[shader]) {
        *out = d->pipelines[shader];
        return SX_OK;
    }
    const sx_vk_shader_spv *s = &sx_vk_shaders[shader];
    if (s->n_bindings < 1 || s->n_bindings > SX_VK_MAX_BINDINGS) return sx_set_error(SX_ERR_BACKEND, "vulkan: shader %s: bad binding count", s->name);
    const VkShaderModuleCreateInfo mci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = s->size, .pCode = s->code};
    VkShaderModule mod;
    VkResult r = sx_vk.vkCreateShaderModule(d->dev, &mci, NULL, &mod);
    if (r != VK_SUCCESS) return VK_FAIL(r, "vkCreateShaderModule(%s) failed", s->name);
    /* one subgroup size for every pipeline (vk_device.c: reductions must not change order between pipelines) */
    const VkPipelineShaderStageRequiredSubgroupSizeCreateInfoEXT rss = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO_EXT, .requiredSubgroupSize = d->subgroup_size};
    const VkComputePipelineCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .pNext = d->pin_subgroup ? &rss : NULL,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = mod,
                  .pName = "main"},
        .layout = d->layout[s->n_bindings],
    };
    r = sx_vk.vkCreateComputePipelines(d->dev, d->pcache, 1, &ci, NULL, &d->pipelines[shader]);
    sx_vk.vkDestroyShaderModule(d->dev, mod, NULL);
    if (r != VK_SUCCESS) {
        d->pipelines[shader] = VK_NULL_HANDLE;
        return VK_FAIL(r, "creating the compute pipeline %s failed", s->name);
    }
    SX_LOGD("vulkan: pipeline %s created", s->name);
    *out = d->pipelines[shader];
    return SX_OK;
}
