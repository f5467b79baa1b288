/* backends/vulkan/vk_device.c — loader, instance, physical-device selection,
 * feature queries and logical devices.
 *
 * The Vulkan loader is opened with dlopen, so a machine without Vulkan gets
 * a clear error from device_count (and tests skip) instead of a binary that
 * fails to start. One instance per process, reference-counted by the open
 * devices and the enumeration calls.
 *
 * Environment:
 *   SPECEXIT_VK_DEVICE=N        open device N whatever index was asked for
 *   SPECEXIT_VK_VALIDATION=1    enable VK_LAYER_KHRONOS_validation (with
 *                               synchronization validation); any error it
 *                               reports fails the next compute/read loudly
 *   SPECEXIT_VK_NO_SUBGROUP=1   use the shared-memory reduction variants
 *   SPECEXIT_VK_MAX_BINDING=B   cap bytes per storage binding (tests the
 *                               windowed paths for tensors above the limit)
 *   SPECEXIT_VK_STAGING=1       device-local buffers + staging even on UMA
 *   SPECEXIT_VK_PROFILE=1       submit and wait after every node; log the
 *                               time per op at device close (debug only) */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/vulkan/vk_internal.h"

sx_vk_fns sx_vk;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static void *g_lib;
static VkInstance g_instance;
static VkDebugUtilsMessengerEXT g_messenger;
static int g_refs;
static volatile unsigned g_validation_errors;
static bool g_validation;

sx_status sx_vk_fail(VkResult r, const char *fmt, ...) {
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sx_set_error(r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY ? SX_ERR_OUT_OF_MEMORY : SX_ERR_BACKEND,
                        "vulkan: %s (VkResult %d)", msg, (int)r);
}

static bool env_on(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static VKAPI_ATTR VkBool32 VKAPI_CALL debug_cb(VkDebugUtilsMessageSeverityFlagBitsEXT sev, VkDebugUtilsMessageTypeFlagsEXT type,
                                               const VkDebugUtilsMessengerCallbackDataEXT *data, void *user) {
    (void)type, (void)user;
    if (sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) {
        __atomic_add_fetch(&g_validation_errors, 1, __ATOMIC_SEQ_CST);
        sx_log(SX_LOG_ERROR, "vulkan validation error: %s", data->pMessage);
    } else if (sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
        sx_log(SX_LOG_WARN, "vulkan validation warning: %s", data->pMessage);
    }
    return VK_FALSE;
}

unsigned sx_vk_validation_errors(void) { return __atomic_load_n(&g_validation_errors, __ATOMIC_SEQ_CST); }

sx_status sx_vk_check_validation(vk_device *d, const char *where) {
    const unsigned n = sx_vk_validation_errors();
    if (n == d->validation_errors_seen) return SX_OK;
    const unsigned fresh = n - d->validation_errors_seen;
    d->validation_errors_seen = n;
    return sx_set_error(SX_ERR_BACKEND, "vulkan: the validation layer reported %u error(s) during %s (see the log)", fresh, where);
}

static bool has_layer(const char *name) {
    uint32_t n = 0;
    if (sx_vk.vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0) return false;
    VkLayerProperties *p = calloc(n, sizeof *p);
    bool found = false;
    if (p && sx_vk.vkEnumerateInstanceLayerProperties(&n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++) found |= strcmp(p[i].layerName, name) == 0;
    free(p);
    return found;
}

static bool has_instance_ext(const char *layer, const char *name) {
    uint32_t n = 0;
    if (sx_vk.vkEnumerateInstanceExtensionProperties(layer, &n, NULL) != VK_SUCCESS || n == 0) return false;
    VkExtensionProperties *p = calloc(n, sizeof *p);
    bool found = false;
    if (p && sx_vk.vkEnumerateInstanceExtensionProperties(layer, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++) found |= strcmp(p[i].extensionName, name) == 0;
    free(p);
    return found;
}

static sx_status load_loader(void) {
    if (g_lib) return SX_OK;
    const char *names[] = {"libvulkan.so.1", "libvulkan.so", "libvulkan.1.dylib", "libMoltenVK.dylib"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !g_lib; i++) g_lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!g_lib) return sx_set_error(SX_ERR_NO_DEVICE, "vulkan: the Vulkan loader (libvulkan.so.1) is not installed");
    sx_vk.vkGetInstanceProcAddr = (PFN_vkGetInstanceProcAddr)dlsym(g_lib, "vkGetInstanceProcAddr");
    if (!sx_vk.vkGetInstanceProcAddr) {
        dlclose(g_lib);
        g_lib = NULL;
        return sx_set_error(SX_ERR_NO_DEVICE, "vulkan: the loader has no vkGetInstanceProcAddr");
    }
#define G(name) sx_vk.name = (PFN_##name)sx_vk.vkGetInstanceProcAddr(NULL, #name)
    G(vkCreateInstance);
    G(vkEnumerateInstanceVersion);
    G(vkEnumerateInstanceLayerProperties);
    G(vkEnumerateInstanceExtensionProperties);
#undef G
    if (!sx_vk.vkCreateInstance || !sx_vk.vkEnumerateInstanceLayerProperties || !sx_vk.vkEnumerateInstanceExtensionProperties)
        return sx_set_error(SX_ERR_NO_DEVICE, "vulkan: the loader lacks core entry points");
    return SX_OK;
}

static sx_status create_instance(void) {
    SX_RETURN_IF_ERROR(load_loader());
    uint32_t version = VK_API_VERSION_1_0;
    if (sx_vk.vkEnumerateInstanceVersion) sx_vk.vkEnumerateInstanceVersion(&version);
    if (version < VK_API_VERSION_1_2)
        return sx_set_error(SX_ERR_NO_DEVICE, "vulkan: the loader supports Vulkan %u.%u; specexit needs 1.2", VK_API_VERSION_MAJOR(version),
                            VK_API_VERSION_MINOR(version));
    g_validation = env_on("SPECEXIT_VK_VALIDATION");
    const char *layers[1], *exts[4];
    uint32_t n_layers = 0, n_exts = 0;
    VkValidationFeaturesEXT vf = {.sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT};
    static const VkValidationFeatureEnableEXT enables[] = {VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
    bool use_vf = false;
    if (g_validation) {
        const char *L = "VK_LAYER_KHRONOS_validation";
        if (!has_layer(L))
            return sx_set_error(SX_ERR_BACKEND, "vulkan: SPECEXIT_VK_VALIDATION is set but %s is not installed (vulkan-validationlayers)", L);
        layers[n_layers++] = L;
        if (has_instance_ext(NULL, VK_EXT_DEBUG_UTILS_EXTENSION_NAME) || has_instance_ext(L, VK_EXT_DEBUG_UTILS_EXTENSION_NAME))
            exts[n_exts++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
        if (has_instance_ext(L, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME)) {
            exts[n_exts++] = VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME;
            vf.enabledValidationFeatureCount = 1;
            vf.pEnabledValidationFeatures = enables;
            use_vf = true;
        }
    }
    bool portability = has_instance_ext(NULL, "VK_KHR_portability_enumeration");
    if (portability) exts[n_exts++] = "VK_KHR_portability_enumeration";
    const VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "specexit",
        .pEngineName = "specexit",
        .apiVersion = VK_API_VERSION_1_2,
    };
    const VkInstanceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pNext = use_vf ? &vf : NULL,
        .flags = portability ? 0x00000001 /* VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR */ : 0,
        .pApplicationInfo = &app,
        .enabledLayerCount = n_layers,
        .ppEnabledLayerNames = layers,
        .enabledExtensionCount = n_exts,
        .ppEnabledExtensionNames = exts,
    };
    VkResult r = sx_vk.vkCreateInstance(&ci, NULL, &g_instance);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER)
        return sx_set_error(SX_ERR_NO_DEVICE, "vulkan: no Vulkan driver (ICD) found (VkResult %d)", (int)r);
    if (r != VK_SUCCESS) return VK_FAIL(r, "vkCreateInstance failed");
#define I(name) sx_vk.name = (PFN_##name)sx_vk.vkGetInstanceProcAddr(g_instance, #name);
    SX_VK_FUNCS(I)
    I(vkCreateDebugUtilsMessengerEXT)
    I(vkDestroyDebugUtilsMessengerEXT)
#undef I
#define CHECK(name) if (!sx_vk.name) return sx_set_error(SX_ERR_BACKEND, "vulkan: entry point %s missing", #name);
    SX_VK_FUNCS(CHECK)
#undef CHECK
    if (g_validation && sx_vk.vkCreateDebugUtilsMessengerEXT) {
        const VkDebugUtilsMessengerCreateInfoEXT mi = {
            .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
            .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT,
            .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
            .pfnUserCallback = debug_cb,
        };
        r = sx_vk.vkCreateDebugUtilsMessengerEXT(g_instance, &mi, NULL, &g_messenger);
        if (r != VK_SUCCESS) return VK_FAIL(r, "vkCreateDebugUtilsMessengerEXT failed");
        SX_LOGI("vulkan: validation layer enabled%s", use_vf ? " (with synchronization validation)" : "");
    }
    return SX_OK;
}

sx_status sx_vk_instance_acquire(void) {
    pthread_mutex_lock(&g_lock);
    sx_status s = SX_OK;
    if (g_refs == 0) {
        s = create_instance();
        if (s != SX_OK && g_instance) {
            sx_vk.vkDestroyInstance(g_instance, NULL);
            g_instance = VK_NULL_HANDLE;
        }
    }
    if (s == SX_OK) g_refs++;
    pthread_mutex_unlock(&g_lock);
    return s;
}

void sx_vk_instance_release(void) {
    pthread_mutex_lock(&g_lock);
    if (g_refs > 0 && --g_refs == 0) {
        if (g_messenger) sx_vk.vkDestroyDebugUtilsMessengerEXT(g_instance, g_messenger, NULL);
        g_messenger = VK_NULL_HANDLE;
        sx_vk.vkDestroyInstance(g_instance, NULL);
        g_instance = VK_NULL_HANDLE;
    }
    pthread_mutex_unlock(&g_lock);
}

VkInstance sx_vk_instance(void) { return g_instance; }

static sx_status physical_devices(VkPhysicalDevice **out, uint32_t *out_n) {
    uint32_t n = 0;
    VkResult r = sx_vk.vkEnumeratePhysicalDevices(g_instance, &n, NULL);
    if (r != VK_SUCCESS) return VK_FAIL(r, "vkEnumeratePhysicalDevices failed");
    *out = calloc(n ? n : 1, sizeof **out);
    if (!*out) return sx_set_error(SX_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    r = sx_vk.vkEnumeratePhysicalDevices(g_instance, &n, *out);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        free(*out);
        return VK_FAIL(r, "vkEnumeratePhysicalDevices failed");
    }
    *out_n = n;
    return SX_OK;
}

sx_status sx_vk_device_count(int *out) {
    *out = 0;
    SX_RETURN_IF_ERROR(sx_vk_instance_acquire());
    VkPhysicalDevice *pd;
    uint32_t n;
    sx_status s = physical_devices(&pd, &n);
    if (s == SX_OK) {
        *out = (int)n;
        free(pd);
    }
    sx_vk_instance_release();
    return s;
}

/* ---- capabilities ---- */
typedef struct caps {
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceDriverProperties driver;
    VkPhysicalDeviceSubgroupProperties subgroup;
    VkPhysicalDeviceVulkan11Properties p11;
    VkPhysicalDeviceFeatures2 f;
    VkPhysicalDeviceVulkan11Features f11;
    VkPhysicalDeviceVulkan12Features f12;
    VkPhysicalDeviceMemoryProperties mem;
    bool has_size_control; /* VK_EXT_subgroup_size_control: sc_props / sc_feat are filled */
    VkPhysicalDeviceSubgroupSizeControlPropertiesEXT sc_props;
    VkPhysicalDeviceSubgroupSizeControlFeaturesEXT sc_feat;
} caps;

static bool has_device_ext(VkPhysicalDevice pd, const char *name) {
    uint32_t n = 0;
    bool found = false;
    sx_vk.vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL);
    VkExtensionProperties *ep = calloc(n ? n : 1, sizeof *ep);
    if (ep && sx_vk.vkEnumerateDeviceExtensionProperties(pd, NULL, &n, ep) == VK_SUCCESS)
        for (uint32_t i = 0; i < n && !found; i++) found = !strcmp(ep[i].extensionName, name);
    free(ep);
    return found;
}

static void query_caps(VkPhysicalDevice pd, caps *c) {
    memset(c, 0, sizeof *c);
    sx_vk.vkGetPhysicalDeviceProperties(pd, &c->props);
    sx_vk.vkGetPhysicalDeviceMemoryProperties(pd, &c->mem);
    if (c->props.apiVersion < VK_API_VERSION_1_2) return;
    c->driver.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES;
    c->subgroup.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES;
    c->p11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES;
    c->driver.pNext = &c->subgroup;
    c->subgroup.pNext = &c->p11;
    c->has_size_control = has_device_ext(pd, "VK_EXT_subgroup_size_control");
    if (c->has_size_control) {
        c->sc_props.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES_EXT;
        c->p11.pNext = &c->sc_props;
    }
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &c->driver};
    sx_vk.vkGetPhysicalDeviceProperties2(pd, &p2);
    c->f11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES;
    c->f12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES;
    c->f11.pNext = &c->f12;
    if (c->has_size_control) {
        c->sc_feat.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT;
        c->f12.pNext = &c->sc_feat;
    }
    c->f.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
    c->f.pNext = &c->f11;
    sx_vk.vkGetPhysicalDeviceFeatures2(pd, &c->f);
}

/* The subgroup size must be one and the same in every pipeline: a
 * reduction's order follows it, and decoding and verification (matvec1,
 * matvec8, matvec1id) must give the same bits. Fixed on some devices
 * (min == max); others (Intel, AMD wave32/64) pick it per pipeline unless
 * it is required with VK_EXT_subgroup_size_control. */
static bool caps_size_fixed(const caps *c) { return c->has_size_control && c->sc_props.minSubgroupSize == c->sc_props.maxSubgroupSize; }
static bool caps_size_pinnable(const caps *c) {
    return c->has_size_control && c->sc_feat.subgroupSizeControl && (c->sc_props.requiredSubgroupSizeStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
           c->subgroup.subgroupSize >= c->sc_props.minSubgroupSize && c->subgroup.subgroupSize <= c->sc_props.maxSubgroupSize;
}

static bool caps_subgroup_arith(const caps *c) {
    const VkSubgroupFeatureFlags need = VK_SUBGROUP_FEATURE_BASIC_BIT | VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
    return (c->subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) && (c->subgroup.supportedOperations & need) == need &&
           (caps_size_fixed(c) || caps_size_pinnable(c)) && !env_on("SPECEXIT_VK_NO_SUBGROUP");
}

static const char *type_name(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU";
    default: return "other";
    }
}

static const char *vendor_name(uint32_t id) {
    switch (id) {
    case 0x1002: return "AMD";
    case 0x10DE: return "NVIDIA";
    case 0x8086: return "Intel";
    case 0x106B: return "Apple";
    case 0x13B5: return "ARM";
    case 0x5143: return "Qualcomm";
    case 0x10005: return "Mesa";
    default: return "unknown";
    }
}

static uint64_t device_local_bytes(const VkPhysicalDeviceMemoryProperties *m) {
    uint64_t best = 0;
    for (uint32_t i = 0; i < m->memoryHeapCount; i++)
        if ((m->memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) && m->memoryHeaps[i].size > best) best = m->memoryHeaps[i].size;
    return best;
}

static void fill_info(const caps *c, sx_device_info *info) {
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%.127s", c->props.deviceName);
    snprintf(info->vendor, sizeof info->vendor, "%s", vendor_name(c->props.vendorID));
    if (c->driver.driverName[0])
        snprintf(info->driver, sizeof info->driver, "%.40s %.60s (Vulkan %u.%u.%u)", c->driver.driverName, c->driver.driverInfo,
                 VK_API_VERSION_MAJOR(c->props.apiVersion), VK_API_VERSION_MINOR(c->props.apiVersion), VK_API_VERSION_PATCH(c->props.apiVersion));
    else
        snprintf(info->driver, sizeof info->driver, "driver 0x%x (Vulkan %u.%u)", c->props.driverVersion, VK_API_VERSION_MAJOR(c->props.apiVersion),
                 VK_API_VERSION_MINOR(c->props.apiVersion));
    snprintf(info->arch, sizeof info->arch, "%s", type_name(c->props.deviceType));
    snprintf(info->features, sizeof info->features, "%s%s%s%s%ssubgroup=%u%s maxbind=%lluMiB%s",
             c->props.apiVersion < VK_API_VERSION_1_2 ? "NEEDS-VULKAN-1.2 " : "", c->f12.shaderFloat16 ? "f16 " : "",
             c->f12.shaderInt8 ? "int8 " : "", c->f11.storageBuffer16BitAccess ? "storage16 " : "", c->f12.storageBuffer8BitAccess ? "storage8 " : "",
             c->subgroup.subgroupSize,
             caps_subgroup_arith(c) ? (caps_size_pinnable(c) ? "(arith,pinned)" : "(arith)") : !caps_size_fixed(c) && !caps_size_pinnable(c) ? "(size varies)" : "",
             (unsigned long long)(c->props.limits.maxStorageBufferRange >> 20), c->f.features.shaderFloat64 ? " fp64" : "");
    info->memory_total = device_local_bytes(&c->mem);
    info->memory_free = 0;
    info->host_visible = false;
}

static sx_status pick_index(int index, VkPhysicalDevice *out, int *out_index) {
    const char *env = getenv("SPECEXIT_VK_DEVICE");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end || v < 0) return sx_set_error(SX_ERR_INVALID_ARG, "vulkan: SPECEXIT_VK_DEVICE='%s' is not a device index", env);
        index = (int)v;
    }
    VkPhysicalDevice *pd;
    uint32_t n;
    SX_RETURN_IF_ERROR(physical_devices(&pd, &n));
    if (index < 0 || (uint32_t)index >= n) {
        free(pd);
        return sx_set_error(SX_ERR_NOT_FOUND, "vulkan: device %d does not exist (%u device%s)", index, n, n == 1 ? "" : "s");
    }
    *out = pd[index];
    *out_index = index;
    free(pd);
    return SX_OK;
}

sx_status sx_vk_device_info(int index, sx_device_info *out) {
    SX_RETURN_IF_ERROR(sx_vk_instance_acquire());
    VkPhysicalDevice pd;
    int idx;
    sx_status s = pick_index(index, &pd, &idx);
    if (s == SX_OK) {
        caps c;
        query_caps(pd, &c);
        fill_info(&c, out);
    }
    sx_vk_instance_release();
    return s;
}

static uint32_t find_mem_type(const VkPhysicalDeviceMemoryProperties *m, VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid) {
    for (uint32_t i = 0; i < m->memoryTypeCount; i++) {
        const VkMemoryPropertyFlags f = m->memoryTypes[i].propertyFlags;
        if ((f & want) == want && !(f & avoid)) return i;
    }
    return UINT32_MAX;
}

static sx_status choose_memory(vk_device *d) {
    const VkPhysicalDeviceMemoryProperties *m = &d->mem_props;
    const VkMemoryPropertyFlags DL = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                                HV = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    const VkPhysicalDeviceType t = d->props.deviceType;
    const uint32_t uma_type = find_mem_type(m, DL | HV, 0);
    d->uma = uma_type != UINT32_MAX &&
             (t == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU || t == VK_PHYSICAL_DEVICE_TYPE_CPU || t == VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU) &&
             m->memoryHeaps[m->memoryTypes[uma_type].heapIndex].size >= device_local_bytes(m) && !env_on("SPECEXIT_VK_STAGING");
    d->mt_device = d->uma ? uma_type : find_mem_type(m, DL, 0);
    if (d->mt_device == UINT32_MAX) d->mt_device = find_mem_type(m, 0, 0);
    d->mt_staging = find_mem_type(m, HV | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, 0);
    if (d->mt_staging == UINT32_MAX) d->mt_staging = find_mem_type(m, HV, 0);
    d->mt_const = uma_type != UINT32_MAX ? uma_type : d->mt_staging;
    if (d->mt_device == UINT32_MAX || d->mt_staging == UINT32_MAX)
        return sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: %s has no usable memory types", d->props.deviceName);
    return SX_OK;
}

sx_status sx_vk_device_open(int index, const sx_device_options *opts, sx_device **out) {
    (void)opts;
    *out = NULL;
    SX_RETURN_IF_ERROR(sx_vk_instance_acquire());
    vk_device *d = calloc(1, sizeof *d);
    if (!d) {
        sx_vk_instance_release();
        return sx_set_error(SX_ERR_OUT_OF_MEMORY, "vulkan: out of memory");
    }
    d->frame = -1;
    d->validation_errors_seen = sx_vk_validation_errors();
    int idx = index;
    sx_status s = pick_index(index, &d->phys, &idx);
    caps c;
    if (s == SX_OK) {
        query_caps(d->phys, &c);
        if (c.props.apiVersion < VK_API_VERSION_1_2)
            s = sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: %s supports Vulkan %u.%u; specexit needs 1.2", c.props.deviceName,
                             VK_API_VERSION_MAJOR(c.props.apiVersion), VK_API_VERSION_MINOR(c.props.apiVersion));
    }
    if (s == SX_OK) {
        d->props = c.props;
        d->mem_props = c.mem;
        d->storage16 = c.f11.storageBuffer16BitAccess;
        d->storage8 = c.f12.storageBuffer8BitAccess;
        d->f16_math = c.f12.shaderFloat16;
        d->int8_math = c.f12.shaderInt8;
        d->f64 = c.f.features.shaderFloat64;
        d->subgroup_arith = caps_subgroup_arith(&c);
        d->subgroup_size = c.subgroup.subgroupSize;
        d->pin_subgroup = d->subgroup_arith && caps_size_pinnable(&c);
        d->profile = env_on("SPECEXIT_VK_PROFILE");
        d->max_range = c.props.limits.maxStorageBufferRange;
        const char *cap = getenv("SPECEXIT_VK_MAX_BINDING");
        if (cap && atoll(cap) > 0 && (VkDeviceSize)atoll(cap) < d->max_range) d->max_range = (VkDeviceSize)atoll(cap);
        d->align = c.props.limits.minStorageBufferOffsetAlignment ? c.props.limits.minStorageBufferOffsetAlignment : 4;
        if (d->align < 4) d->align = 4;
        d->max_alloc = c.p11.maxMemoryAllocationSize ? c.p11.maxMemoryAllocationSize : ((VkDeviceSize)1 << 30);
        for (int i = 0; i < 3; i++) d->max_groups[i] = c.props.limits.maxComputeWorkGroupCount[i];
        fill_info(&c, &d->base.info);
        s = choose_memory(d);
    }
    if (s == SX_OK) { /* a compute queue */
        uint32_t nq = 0;
        sx_vk.vkGetPhysicalDeviceQueueFamilyProperties(d->phys, &nq, NULL);
        VkQueueFamilyProperties qf[16];
        if (nq > 16) nq = 16;
        sx_vk.vkGetPhysicalDeviceQueueFamilyProperties(d->phys, &nq, qf);
        d->queue_family = UINT32_MAX;
        for (uint32_t i = 0; i < nq && d->queue_family == UINT32_MAX; i++)
            if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) d->queue_family = i;
        if (d->queue_family == UINT32_MAX) s = sx_set_error(SX_ERR_UNSUPPORTED, "vulkan: %s has no compute queue", c.props.deviceName);
    }
    if (s == SX_OK) { /* enable exactly what we use (or report) */
        VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
        VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, .pNext = &f12};
        VkPhysicalDeviceFeatures2 f = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11};
        f11.storageBuffer16BitAccess = d->storage16;
        f12.storageBuffer8BitAccess = d->storage8;
        f12.shaderFloat16 = d->f16_math;
        f12.shaderInt8 = d->int8_math;
        VkPhysicalDeviceSubgroupSizeControlFeaturesEXT sc = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT,
                                                             .subgroupSizeControl = VK_TRUE};
        if (d->pin_subgroup) f12.pNext = &sc;
        const float prio = 1.0f;
        const VkDeviceQueueCreateInfo qci = {
            .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = d->queue_family, .queueCount = 1, .pQueuePriorities = &prio};
        const char *exts[2];
        uint32_t n_exts = 0;
        if (d->pin_subgroup) exts[n_exts++] = "VK_EXT_subgroup_size_control";
        uint32_t ne = 0;
        sx_vk.vkEnumerateDeviceExtensionProperties(d->phys, NULL, &ne, NULL);
        VkExtensionProperties *ep = calloc(ne ? ne : 1, sizeof *ep);
        if (ep && sx_vk.vkEnumerateDeviceExtensionProperties(d->phys, NULL, &ne, ep) == VK_SUCCESS)
            for (uint32_t i = 0; i < ne; i++)
                if (!strcmp(ep[i].extensionName, "VK_KHR_portability_subset")) exts[n_exts++] = "VK_KHR_portability_subset";
        free(ep);
        const VkDeviceCreateInfo dci = {
            .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
            .pNext = &f,
            .queueCreateInfoCount = 1,
            .pQueueCreateInfos = &qci,
            .enabledExtensionCount = n_exts,
            .ppEnabledExtensionNames = exts,
        };
        VkResult r = sx_vk.vkCreateDevice(d->phys, &dci, NULL, &d->dev);
        if (r != VK_SUCCESS) s = VK_FAIL(r, "vkCreateDevice on %s failed", c.props.deviceName);
    }
    if (s == SX_OK) {
        sx_vk.vkGetDeviceQueue(d->dev, d->queue_family, 0, &d->queue);
        d->base.vt = sx_vulkan_backend();
        d->base.index = idx;
        s = sx_vk_pipeline_init(d);
    }
    if (s == SX_OK) s = sx_vk_cmd_init(d);
    if (s == SX_OK) s = sx_vk_memory_init(d);
    if (s != SX_OK) {
        sx_vk_device_close(&d->base);
        return s;
    }
    SX_LOGI("vulkan: opened %s [%s] %s, %s memory%s", d->base.info.name, d->base.info.arch, d->base.info.features,
            d->uma ? "unified (host-visible)" : "device-local + staging", d->subgroup_arith ? "" : ", shared-memory reductions");
    *out = &d->base;
    return SX_OK;
}

void sx_vk_device_close(sx_device *dev) {
    if (!dev) return;
    vk_device *d = vk_dev(dev);
    if (d->dev) {
        sx_vk.vkDeviceWaitIdle(d->dev);
        if (sx_vk_wait_all(d) == SX_OK && d->err_code) /* nobody read or synchronized after it */
            SX_LOGW("vulkan: %s closed with an unreported kernel error (code 0x%x: get_rows/set_rows ids out of range)", d->base.info.name,
                    d->err_code);
        sx_vk_profile_report(d);
        sx_vk_memory_destroy(d);
        sx_vk_cmd_destroy(d);
        sx_vk_pipeline_destroy(d);
        sx_vk.vkDestroyDevice(d->dev, NULL);
    }
    free(d);
    sx_vk_instance_release();
}
