/* The HIP backend: the HIP runtime (libamdhip64.so) and hiprtc, both dlopen()ed, so a build with
 * this backend runs on machines without ROCm or without an AMD GPU: opening then fails with
 * MORA_E_NO_BACKEND and the reason. The runtime is loaded and initialised once per process and
 * stays loaded.
 *
 * Buffers, programs, kernels, launches, streams and events are the module-driver core's
 * (backend_module.c); this file loads the runtime, opens a device and gives the core its table of
 * the runtime's calls. HIP keeps a current device per thread: every call makes the context's device
 * current and then restores the caller's. Buffers are hipDeviceptr_t (device pointers) stored in a
 * void *. Programs are compiled by hiprtc for the device's full target id (gcnArchName, e.g.
 * gfx90a:sramecc+:xnack-) and loaded with hipModuleLoadData. */
#if !defined(__HIP_PLATFORM_AMD__) && !defined(__HIP_PLATFORM_NVIDIA__)
#define __HIP_PLATFORM_AMD__ 1
#endif
#include <hip/hip_runtime_api.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_module.h"
#include "error.h"
#include "rtc.h"

/* A number of the HIP headers as text ("6"). */
#define HIP_TEXT_(n) #n
#define HIP_TEXT(n) HIP_TEXT_(n)

/* Every runtime entry point we use. */
#define HIP_FUNCTIONS(X)                                                                                      \
    X(hipInit) X(hipGetDeviceCount) X(hipGetDeviceProperties) X(hipGetDevice) X(hipSetDevice)                 \
    X(hipDriverGetVersion) X(hipRuntimeGetVersion) X(hipGetErrorName) X(hipGetErrorString) X(hipMalloc)        \
    X(hipFree) X(hipMemcpyHtoDAsync) X(hipMemcpyDtoHAsync) X(hipMemcpyDtoDAsync) X(hipMemsetD8Async) X(hipMemGetAddressRange)        \
    X(hipModuleLoadData) X(hipModuleUnload) X(hipModuleGetFunction) X(hipModuleLaunchKernel) X(hipStreamCreate) \
    X(hipStreamDestroy) X(hipStreamSynchronize) X(hipStreamQuery) X(hipEventCreate) X(hipEventRecord)          \
    X(hipEventSynchronize) X(hipEventElapsedTime) X(hipEventDestroy) X(hipPointerGetAttribute)

typedef struct hip_api {
    void *library; /* NULL: the runtime is unusable, see lib.why */
    mora_library_info lib;
    int runtime_version; /* 50221153 for 5.2.21153 */
    int driver_version;
    int device_count;
    HIP_FUNCTIONS(MORA_LIBRARY_ENTRY)
} hip_api;

static hip_api hip;

static const char *hip_error_name(hipError_t e) {
    const char *name = hip.hipGetErrorName ? hip.hipGetErrorName(e) : NULL;
    return name ? name : "unknown hipError_t";
}

static const char *hip_error_text(hipError_t e) {
    const char *text = hip.hipGetErrorString ? hip.hipGetErrorString(e) : NULL;
    if (text && strcmp(text, hip_error_name(e)) == 0) return "no further description"; /* ROCm 5 repeats the name */
    return text ? text : "no description";
}

static pthread_once_t hip_once = PTHREAD_ONCE_INIT;

/* The entry points by the names they have after the HIP headers' #defines (ROCm 6 renames some). */
#define HIP_API_RESOLVE(f)                                                                                      \
    MORA_LIBRARY_RESOLVE(hip, f, dlsym,                                                                         \
                         "hip: the HIP runtime %s lacks %s (built against ROCm " HIP_TEXT(HIP_VERSION_MAJOR) "." \
                             HIP_TEXT(HIP_VERSION_MINOR) " headers)")

static void hip_load(void) {
    static const char *const names[] = {"libamdhip64.so.7", "libamdhip64.so.6", "libamdhip64.so.5", "libamdhip64.so"};
    char rocm_lib[512] = "";
    const char *rocm_path = getenv("ROCM_PATH");
    if (rocm_path && *rocm_path) snprintf(rocm_lib, sizeof rocm_lib, "%s/lib", rocm_path);
    const char *const dirs[] = {rocm_lib, "/opt/rocm/lib"};
    void *library = mora_library_load(&hip.lib, "MORA_HIP_LIBRARY", names, 4, dirs, 2,
                                      "hip: the HIP runtime (libamdhip64.so) could not be loaded: %s (ROCm is not "
                                      "installed; Debian: apt-get install libamdhip64-5, or set MORA_HIP_LIBRARY)");
    if (!library) return;
    HIP_FUNCTIONS(HIP_API_RESOLVE)
    hip.hipRuntimeGetVersion(&hip.runtime_version);
    hip.hipDriverGetVersion(&hip.driver_version);
    const hipError_t init = hip.hipInit(0);
    hipError_t e = hip.hipGetDeviceCount(&hip.device_count);
    if (init != hipSuccess || e != hipSuccess || hip.device_count <= 0) {
        const hipError_t shown = init != hipSuccess ? init : e;
        snprintf(hip.lib.why, sizeof hip.lib.why,
                 "hip: no usable AMD GPU: %s returned %s (%s) (HIP runtime %d.%d.%d at %s; is an AMD GPU present and "
                 "/dev/kfd accessible?)",
                 init != hipSuccess ? "hipInit" : "hipGetDeviceCount", hip_error_name(shown), hip_error_text(shown),
                 hip.runtime_version / 10000000, hip.runtime_version / 100000 % 100, hip.runtime_version % 100000,
                 hip.lib.path);
        return; /* stays loaded: a runtime that initialised partly is not unloaded */
    }
    hip.library = library;
}

typedef struct hip_ctx {
    mora_module_ctx core; /* core.ordinal is the HIP device */
    char name[256];
    char arch[64];        /* "gfx90a" (core.target is the full target id: "gfx90a:sramecc+:xnack-") */
    int compute_units;
    size_t shared_per_block;
    size_t max_threads;
    uint64_t global_bytes;
} hip_ctx;

static mora_status hip_error(hipError_t e, const char *what) {
    return mora_fail(e == hipErrorOutOfMemory ? MORA_E_NO_MEMORY : MORA_E_DEVICE, "hip: %s failed: %s (%s)", what,
                     hip_error_name(e), hip_error_text(e));
}

static mora_status hip_check(hipError_t e, const char *what) { return e == hipSuccess ? MORA_OK : hip_error(e, what); }

/* ---- the runtime's calls, as the core makes them (backend_module.h) ---- */

/* HIP keeps a current device per thread: ours is made current, and the caller's is put back after. */
static mora_status hip_make_current(const mora_module_ctx *c, int *saved) {
    if (hip.hipGetDevice(saved) != hipSuccess) *saved = -1;
    return *saved == c->ordinal ? MORA_OK : hip_check(hip.hipSetDevice(c->ordinal), "hipSetDevice");
}

static void hip_restore(const mora_module_ctx *c, int saved) {
    if (saved >= 0 && saved != c->ordinal) hip.hipSetDevice(saved);
}

static mora_status hip_alloc(void **buf, size_t bytes) { return hip_check(hip.hipMalloc(buf, bytes), "hipMalloc"); }

static mora_status hip_free(void *buf) { return hip_check(hip.hipFree(buf), "hipFree"); }

/* A device address as the runtime takes it: non-const, for the calls that never write through it. */
static void *hip_ptr(const void *ptr) { return (void *)(uintptr_t)ptr; }

static mora_status hip_write(void *dst, const void *src, size_t bytes, void *stream) {
    return hip_check(hip.hipMemcpyHtoDAsync(dst, hip_ptr(src), bytes, stream), "hipMemcpyHtoDAsync");
}

static mora_status hip_read(void *dst, const void *src, size_t bytes, void *stream) {
    return hip_check(hip.hipMemcpyDtoHAsync(dst, hip_ptr(src), bytes, stream), "hipMemcpyDtoHAsync");
}

static mora_status hip_copy(void *dst, const void *src, size_t bytes, void *stream) {
    return hip_check(hip.hipMemcpyDtoDAsync(dst, hip_ptr(src), bytes, stream), "hipMemcpyDtoDAsync");
}

static mora_status hip_zero(void *buf, size_t bytes, void *stream) {
    return hip_check(hip.hipMemsetD8Async(buf, 0, bytes, stream), "hipMemsetD8Async");
}

static mora_status hip_address_range(uintptr_t *base, size_t *size, const void *ptr) {
    hipDeviceptr_t start = NULL;
    const hipError_t e = hip.hipMemGetAddressRange(&start, size, hip_ptr(ptr));
    if (e == hipErrorNotFound || e == hipErrorInvalidValue || e == hipErrorInvalidDevicePointer)
        return mora_fail(MORA_E_ARG, "buffer %p: not a device allocation of the HIP runtime (%s)", ptr, hip_error_name(e));
    MORA_TRY(hip_check(e, "hipMemGetAddressRange"));
    *base = (uintptr_t)start;
    /* HIP's context is its device: memory of another device than the current one (the core made
     * this context's device current) is another context's */
    int owner = -1, current = -1;
    if (hip.hipPointerGetAttribute(&owner, HIP_POINTER_ATTRIBUTE_DEVICE_ORDINAL, hip_ptr(ptr)) == hipSuccess &&
        owner >= 0 && hip.hipGetDevice(&current) == hipSuccess && owner != current)
        return mora_fail(MORA_E_ARG, "buffer %p: memory of HIP device %d, not of this context's device %d", ptr, owner,
                         current);
    return MORA_OK;
}

MORA_MODULE_MIRRORED_CALLS(hip, hip, hipModule_t, hipFunction_t)

static mora_status hip_launch(void *function, const unsigned grid[3], const unsigned block[3], void *stream,
                              void **params) {
    const hipError_t e = hip.hipModuleLaunchKernel(function, grid[0], grid[1], grid[2], block[0], block[1], block[2],
                                                   0, stream, params, NULL);
    return hip_check(e, "hipModuleLaunchKernel");
}

static mora_status hip_stream_create(void **stream) {
    hipStream_t made = NULL;
    const hipError_t e = hip.hipStreamCreate(&made);
    *stream = made;
    return hip_check(e, "hipStreamCreate");
}

static mora_status hip_event_create(void **event) {
    hipEvent_t made = NULL;
    const hipError_t e = hip.hipEventCreate(&made);
    *event = made;
    return hip_check(e, "hipEventCreate");
}

/* ---- what the core does not do ---- */

static mora_status hip_device_info(void *vctx, mora_device_info *info) {
    const hip_ctx *c = vctx;
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", c->name);
    snprintf(info->vendor, sizeof info->vendor, "Advanced Micro Devices, Inc.");
    snprintf(info->arch, sizeof info->arch, "%s", c->arch);
    snprintf(info->driver_version, sizeof info->driver_version, "%s (driver %d)", c->core.driver_version,
             hip.driver_version);
    snprintf(info->compiler_version, sizeof info->compiler_version, "%s", c->core.compiler);
    info->compute_units = c->compute_units;
    info->local_mem_bytes = c->shared_per_block;
    info->max_work_group = c->max_threads;
    info->global_mem_bytes = c->global_bytes;
    return MORA_OK;
}

/* A stream the runtime knows (HIP has no context objects: a device is its context). */
static mora_status hip_check_stream(const mora_module_ctx *c, void *native) {
    int saved;
    MORA_TRY(hip_make_current(c, &saved));
    const hipError_t e = hip.hipStreamQuery((hipStream_t)native);
    hip_restore(c, saved);
    if (e != hipSuccess && e != hipErrorNotReady)
        return mora_fail(MORA_E_ARG, "native_stream=%p: not a hipStream_t (hipStreamQuery: %s)", native,
                         hip_error_name(e));
    return MORA_OK;
}

static const mora_module_driver hip_driver = {
    .backend = MORA_MODULE_BACKEND("hip", MORA_DIALECT_HIP, hip_device_info),
    .binary_kind = "code object",
    .compile = mora_hiprtc_compile,
    .check_stream = hip_check_stream,
    MORA_MODULE_DRIVER_CALLS(hip),
};

/* Device properties, read into room to spare: the structure grew between ROCm releases. */
static mora_status read_properties(hip_ctx *c) {
    union {
        hipDeviceProp_t props;
        unsigned char room[16384];
    } u;
    memset(&u, 0, sizeof u);
    const int device = c->core.ordinal;
    const hipError_t e = hip.hipGetDeviceProperties(&u.props, device);
    if (e != hipSuccess)
        return mora_fail(MORA_E_NO_BACKEND, "hip: device %d: hipGetDeviceProperties failed: %s (%s)", device,
                         hip_error_name(e), hip_error_text(e));
    const hipDeviceProp_t *p = &u.props;
    char *target = c->core.target;
    snprintf(c->name, sizeof c->name, "%.*s", (int)sizeof p->name, p->name);
    snprintf(target, sizeof c->core.target, "%.*s", (int)sizeof p->gcnArchName, p->gcnArchName);
    snprintf(c->arch, sizeof c->arch, "%.*s", (int)strcspn(target, ":"), target);
    if (strncmp(c->arch, "gfx", 3) != 0)
        return mora_fail(MORA_E_NO_BACKEND, "hip: device %d (%s) reports no gfx target (gcnArchName=\"%s\")", device,
                         c->name, target);
    c->compute_units = p->multiProcessorCount;
    c->shared_per_block = p->sharedMemPerBlock;
    c->max_threads = p->maxThreadsPerBlock > 0 ? (size_t)p->maxThreadsPerBlock : 0;
    c->global_bytes = (uint64_t)p->totalGlobalMem;
    return MORA_OK;
}

/* native: HIP has no context objects to adopt (a device is its context); native->queue is a
 * hipStream_t adopted at once. */
mora_status mora_backend_hip_open(int device, const mora_native_objects *native, const mora_backend_i **iface,
                                  void **ctx) {
    if (device < 0) return mora_fail(MORA_E_ARG, "device=%d: must be >= 0", device);
    pthread_once(&hip_once, hip_load);
    if (!hip.library) return mora_fail(MORA_E_NO_BACKEND, "%s", hip.lib.why);
    if (device >= hip.device_count)
        return mora_fail(MORA_E_NO_BACKEND, "device=%d: the HIP runtime sees %d device(s)", device, hip.device_count);
    hip_ctx *c = calloc(1, sizeof *c);
    if (!c) return mora_fail(MORA_E_NO_MEMORY, "hip: out of host memory");
    c->core.driver = &hip_driver;
    c->core.ordinal = device;
    snprintf(c->core.driver_version, sizeof c->core.driver_version, "HIP runtime %d.%d.%d",
             hip.runtime_version / 10000000, hip.runtime_version / 100000 % 100, hip.runtime_version % 100000);
    mora_status st = read_properties(c);
    /* hiprtc missing: no backend, so "auto" moves on */
    if (st == MORA_OK) st = mora_hiprtc_describe(c->core.compiler, sizeof c->core.compiler);
    if (st != MORA_OK) {
        mora_module_destroy(c);
        return st;
    }
    return mora_module_start(&c->core, native ? native->queue : NULL, iface, ctx);
}
