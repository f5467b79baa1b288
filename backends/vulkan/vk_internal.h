/* backends/vulkan/vk_internal.h — private to the Vulkan backend.
 *
 * Files by concern:
 *   vk_device.c    loader (dlopen), instance, device selection, features, info
 *   vk_memory.c    buffers (device-local + staging, or host-visible on UMA),
 *                  the append-only constant cache (rope frequency tables),
 *                  the scratch buffer (split-K attention partials)
 *   vk_pipeline.c  descriptor-set/pipeline layouts, lazy pipelines by variant
 *   vk_command.c   frames (command buffer + fence + descriptor pools), hazard
 *                  tracking by buffer range, dispatch, submit, wait
 *   vk_ops_*.c     one file per op family: push constants + dispatch shape
 *   vk_backend.c   the vtable, kernel table [SX_OP_COUNT], supports_op, compute
 */
#ifndef SX_VK_INTERNAL_H
#define SX_VK_INTERNAL_H

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

#include "backends/backend.h"
#include "shaders/common/params.h"
#include "shaders/vk_shader_table.h"

/* ---- loader entry points (vk_device.c), all resolved at run time ---- */
#define SX_VK_FUNCS(X)                                                                                              \
    X(vkDestroyInstance) X(vkEnumeratePhysicalDevices) X(vkGetPhysicalDeviceProperties)                             \
    X(vkGetPhysicalDeviceProperties2) X(vkGetPhysicalDeviceFeatures2) X(vkGetPhysicalDeviceMemoryProperties)        \
    X(vkGetPhysicalDeviceQueueFamilyProperties) X(vkCreateDevice) X(vkEnumerateDeviceExtensionProperties)           \
    X(vkDestroyDevice) X(vkGetDeviceQueue) X(vkCreateBuffer) X(vkDestroyBuffer) X(vkGetBufferMemoryRequirements)    \
    X(vkAllocateMemory) X(vkFreeMemory) X(vkBindBufferMemory) X(vkMapMemory) X(vkUnmapMemory)                       \
    X(vkCreateShaderModule) X(vkDestroyShaderModule) X(vkCreatePipelineCache) X(vkDestroyPipelineCache)             \
    X(vkCreateComputePipelines) X(vkDestroyPipeline) X(vkCreatePipelineLayout) X(vkDestroyPipelineLayout)           \
    X(vkCreateDescriptorSetLayout) X(vkDestroyDescriptorSetLayout) X(vkCreateDescriptorPool)                        \
    X(vkDestroyDescriptorPool) X(vkResetDescriptorPool) X(vkAllocateDescriptorSets) X(vkUpdateDescriptorSets)       \
    X(vkCreateCommandPool) X(vkDestroyCommandPool) X(vkAllocateCommandBuffers) X(vkFreeCommandBuffers)              \
    X(vkBeginCommandBuffer) X(vkEndCommandBuffer) X(vkCmdBindPipeline) X(vkCmdBindDescriptorSets)                   \
    X(vkCmdPushConstants) X(vkCmdDispatch) X(vkCmdPipelineBarrier) X(vkCmdCopyBuffer) X(vkCreateFence)              \
    X(vkDestroyFence) X(vkWaitForFences) X(vkResetFences) X(vkQueueSubmit) X(vkDeviceWaitIdle)

typedef struct sx_vk_fns {
    PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr;
    PFN_vkCreateInstance vkCreateInstance;
    PFN_vkEnumerateInstanceVersion vkEnumerateInstanceVersion;
    PFN_vkEnumerateInstanceLayerProperties vkEnumerateInstanceLayerProperties;
    PFN_vkEnumerateInstanceExtensionProperties vkEnumerateInstanceExtensionProperties;
    PFN_vkCreateDebugUtilsMessengerEXT vkCreateDebugUtilsMessengerEXT;
    PFN_vkDestroyDebugUtilsMessengerEXT vkDestroyDebugUtilsMessengerEXT;
#define SX_VK_FN_MEMBER(name) PFN_##name name;
    SX_VK_FUNCS(SX_VK_FN_MEMBER)
#undef SX_VK_FN_MEMBER
} sx_vk_fns;

extern sx_vk_fns sx_vk; /* valid while an instance is held */

#define SX_VK_FRAMES 2       /* command buffers in flight */
#define SX_VK_MAX_BINDINGS 5 /* storage buffers per shader */
#define SX_VK_ERR_SLOTS 256  /* kernel error words per frame (reused round robin) */

typedef struct vk_buffer {
    sx_buffer base;
    VkBuffer buf;
    VkDeviceMemory mem;
    void *map;          /* persistent mapping when host-visible, else NULL */
    VkDeviceSize vk_size; /* size rounded up (bindings may round up to 4 bytes) */
    uint64_t serial;    /* unique per buffer created by this process */
    uint64_t version;   /* host writes so far (buffer_write) */
} vk_buffer;

/* One storage-buffer binding of a dispatch plus its exact byte range for
 * hazard tracking. */
typedef struct vk_arg {
    VkBuffer buf;
    VkDeviceSize off, range;        /* descriptor: aligned offset, size */
    VkDeviceSize hz_begin, hz_end;  /* bytes actually read or written */
    bool write;
} vk_arg;

typedef struct vk_range {
    VkBuffer buf;
    VkDeviceSize begin, end;
} vk_range;

typedef struct vk_frame {
    VkCommandBuffer cmd;
    VkFence fence;
    bool pending;   /* submitted, fence not yet waited */
    VkDescriptorPool *pools;
    int n_pools, cur_pool;
    uint32_t n_err;  /* error words handed out since begin (sx_vk_arg_error) */
} vk_frame;

typedef struct vk_const_entry {
    char key[64];
    vk_buffer *buf;
    VkDeviceSize off, size;
} vk_const_entry;

typedef struct vk_stats {
    uint64_t submits, barriers, dispatches, computes, nodes;
} vk_stats;

typedef struct vk_device {
    sx_device base;
    VkPhysicalDevice phys;
    VkDevice dev;
    VkQueue queue;
    uint32_t queue_family;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties mem_props;

    /* capabilities (queried, then enabled explicitly) */
    bool uma;            /* device-local memory is host visible: no staging */
    bool storage16;      /* storageBuffer16BitAccess (16-bit outputs) */
    bool storage8, f16_math, int8_math, f64;
    bool subgroup_arith; /* basic + arithmetic in compute: _sg variants */
    uint32_t subgroup_size;
    bool pin_subgroup;   /* pipelines require subgroup_size (VK_EXT_subgroup_size_control): see vk_device.c */
    VkDeviceSize max_range;   /* per storage binding (SPECEXIT_VK_MAX_BINDING lowers it) */
    VkDeviceSize align;       /* minStorageBufferOffsetAlignment */
    VkDeviceSize max_alloc;   /* maxMemoryAllocationSize */
    uint32_t max_groups[3];
    uint32_t mt_device, mt_staging, mt_const; /* memory type indices */

    /* pipelines */
    VkDescriptorSetLayout dsl[SX_VK_MAX_BINDINGS + 1];
    VkPipelineLayout layout[SX_VK_MAX_BINDINGS + 1];
    VkPipelineCache pcache;
    VkPipeline pipelines[SX_VK_N_SHADERS];

    /* commands */
    VkCommandPool cmd_pool;
    vk_frame frames[SX_VK_FRAMES];
    int frame;        /* index of the frame being recorded, or -1 */
    int next_frame;
    vk_range *hz_rd, *hz_wr; /* accessed since the last barrier */
    int n_rd, n_wr, cap_rd, cap_wr;

    /* kernel error words (common/errors.glsl): SX_VK_ERR_SLOTS per frame,
     * err_stride bytes apart (one binding each), host-visible and coherent;
     * err_code collects what waited frames raised until it is reported */
    vk_buffer *err_buf;
    VkDeviceSize err_stride;
    uint32_t err_code;

    /* transfers (device-local path) */
    vk_buffer *staging;
    VkCommandBuffer xfer_cmd;
    VkFence xfer_fence;

    /* scratch for kernels' intermediate results within a graph (split-K
     * attention partials); outgrown buffers wait in `retired` until no frame
     * can use them */
    vk_buffer *scratch;
    vk_buffer **retired;
    int n_retired;

    /* append-only small constants (host visible) */
    vk_buffer **const_bufs;
    int n_const_bufs;
    VkDeviceSize const_used; /* in the last const buffer */
    vk_const_entry *consts;
    int n_consts;

    vk_stats stats, last; /* totals; `last` = the latest compute call */
    bool profile;         /* SPECEXIT_VK_PROFILE=1: wait after each node, time per op */
    double prof_ms[SX_OP_COUNT];
    uint64_t prof_n[SX_OP_COUNT];
    unsigned validation_errors_seen;
} vk_device;

static inline vk_device *vk_dev(sx_device *d) { return (vk_device *)d; }

/* vk_backend.c */
const sx_backend_vtbl *sx_vulkan_backend(void);

/* vk_device.c */
sx_status sx_vk_instance_acquire(void);
void sx_vk_instance_release(void);
VkInstance sx_vk_instance(void);
/* validation-layer errors reported since start (0 without the layer) */
unsigned sx_vk_validation_errors(void);
sx_status sx_vk_check_validation(vk_device *d, const char *where);
sx_status sx_vk_device_count(int *out);
sx_status sx_vk_device_info(int index, sx_device_info *out);
sx_status sx_vk_device_open(int index, const sx_device_options *opts, sx_device **out);
void sx_vk_device_close(sx_device *dev);
#define VK_FAIL(r, ...) sx_vk_fail((r), __VA_ARGS__)
sx_status sx_vk_fail(VkResult r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* vk_memory.c */
sx_status sx_vk_memory_init(vk_device *d);
void sx_vk_memory_destroy(vk_device *d);
sx_status sx_vk_buffer_create(vk_device *d, size_t size, uint32_t mem_type, VkBufferUsageFlags usage, vk_buffer **out);
void sx_vk_buffer_destroy(vk_device *d, vk_buffer *b);
sx_status sx_vk_buffer_alloc(sx_device *dev, size_t size, sx_buffer **out);
void sx_vk_buffer_free(sx_buffer *buf);
sx_status sx_vk_buffer_write(sx_buffer *buf, size_t offset, const void *src, size_t n);
sx_status sx_vk_buffer_read(sx_buffer *buf, size_t offset, void *dst, size_t n);
/* Device-owned constant bytes keyed by `key` (created once, never freed
 * before the device): returns a binding of them. */
sx_status sx_vk_const_get(vk_device *d, const char *key, const void *data, size_t size, vk_arg *out);
bool sx_vk_const_find(vk_device *d, const char *key, vk_arg *out);
/* Bytes [0, size) of the device's scratch buffer (device-local, grown on
 * demand, contents undefined between uses) as a binding; its uses are
 * ordered by the hazard tracking like any tensor's. size <= max_range. */
sx_status sx_vk_scratch_get(vk_device *d, size_t size, bool write, vk_arg *out);
/* Frees outgrown scratch buffers; only when no frame is recorded or pending. */
void sx_vk_scratch_trim(vk_device *d);
sx_status sx_vk_read_bytes(vk_buffer *b, size_t offset, void *dst, size_t n);

/* vk_pipeline.c */
sx_status sx_vk_pipeline_init(vk_device *d);
void sx_vk_pipeline_destroy(vk_device *d);
/* Index of a variant in sx_vk_shaders by name, -1 when absent. */
int sx_vk_shader_find(const char *name);
/* Variant `base` ("matvec1_q4_0") or its "_nosg" twin when the device lacks
 * subgroup arithmetic; -1 when absent. */
int sx_vk_shader_pick(const vk_device *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
sx_status sx_vk_pipeline_get(vk_device *d, int shader, VkPipeline *out);

/* vk_command.c */
sx_status sx_vk_cmd_init(vk_device *d);
void sx_vk_cmd_destroy(vk_device *d);
sx_status sx_vk_begin(vk_device *d);  /* starts recording a frame */
sx_status sx_vk_submit(vk_device *d); /* ends and submits it (no wait) */
/* Waits for every submitted frame and collects the error words they raised. */
sx_status sx_vk_wait_all(vk_device *d);
/* Reports (and clears) what kernels of waited frames raised: SX_OK, or
 * SX_ERR_INVALID_ARG "vulkan: get_rows: an id was out of range (rows
 * skipped)" / "... set_rows: a slot was out of range ..." (as on CUDA) /
 * "... gather: ..." / "... mul_mat_id: ...", joined by "; " when several. */
sx_status sx_vk_kernel_errors(vk_device *d);
/* Records one dispatch: hazard barrier if needed, descriptors, push
 * constants. groups = total workgroups along x (spread over x/y when above
 * the device limit); gy2 = second grid dim (tiled shapes), usually 1. */
sx_status sx_vk_dispatch(vk_device *d, int shader, const vk_arg *args, int n_args, const void *pc, size_t pc_size, uint32_t groups,
                         uint32_t gy2);

/* Binding helpers (vk_command.c). `unit` is the element size the shader
 * indexes the binding with (4 for f32/u32 words, 2 for halves, 1 for bytes);
 * *elem gets the tensor's first element in those units. */
sx_status sx_vk_arg_tensor(vk_device *d, const sx_tensor *t, size_t unit, bool write, vk_arg *out, uint32_t *elem);
/* A fresh error word of the frame being recorded (begins one if needed), as
 * the last binding of a kernel that raises SX_KERR_* codes. Each dispatch
 * gets its own word and binding range, so these writes need no barrier
 * between dispatches; a word reused within a frame is ordered by the hazard
 * tracking like any other write. */
sx_status sx_vk_arg_error(vk_device *d, vk_arg *out);
/* A window [begin, begin + len) of t's root buffer (absolute byte offsets). */
sx_status sx_vk_arg_window(vk_device *d, const sx_tensor *t, size_t begin, size_t len, size_t unit, bool write, vk_arg *out,
                           uint32_t *elem);
/* strides of t in `unit`s; false when not representable */
bool sx_vk_strides(const sx_tensor *t, size_t unit, uint32_t nb[4]);
bool sx_vk_fits(const vk_device *d, const sx_tensor *t);

/* vk_ops_*.c: one kernel per op in ir/ops.def (NULL = unsupported) and the
 * per-op support checks beyond the table (dtype, shape, limits). */
#define SX_OP(NAME, nsrc, nopt, params) sx_status sx_vk_op_##NAME(sx_device *dev, sx_tensor *node);
#include "ir/ops.def"
#undef SX_OP
/* vk_ops_rows.c: TOP_K within its limits (k <= 256, a row's scratch) */
bool sx_vk_top_k_fits(const vk_device *d, const sx_tensor *node);
bool sx_vk_supports_node(const vk_device *d, const sx_tensor *node);
/* MUL_MAT_ID's windows hold one weight row and one row r of x / ids / dst */
bool sx_vk_mul_mat_id_fits(const vk_device *d, const sx_tensor *node);
void sx_vk_profile_report(vk_device *d);

#endif
