/* The CUDA backend: the driver API (libcuda.so.1) and NVRTC, both dlopen()ed, so a build with this
 * backend runs on machines without an NVIDIA driver: opening then fails with MORA_E_NO_BACKEND and
 * the reason. The driver is loaded and initialised once per process and stays loaded.
 *
 * Buffers, programs, kernels, launches, streams and events are the module-driver core's
 * (backend_module.c); this file loads the driver, opens a device and gives the core its table of the
 * driver's calls. A context uses the device's primary context (the one the CUDA runtime, and so
 * PyTorch, uses too), or a CUcontext the application gives, and pushes it around every call, so the
 * caller's current context is left as it was. Buffers are CUdeviceptr stored in a void *. Programs
 * are compiled by NVRTC for the device's own target (its compute capability, capped at the newest
 * NVRTC knows: a CUBIN when NVRTC has the device's major architecture, else PTX that the driver
 * compiles) and loaded with cuModuleLoadData. */
#include <cuda.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_module.h"
#include "error.h"
#include "rtc.h"

/* Every driver entry point we use. */
#define CU_FUNCTIONS(X)                                                                                       \
    X(cuInit) X(cuDriverGetVersion) X(cuGetErrorName) X(cuGetErrorString) X(cuDeviceGetCount) X(cuDeviceGet)  \
    X(cuDeviceGetAttribute) X(cuDeviceGetName) X(cuDeviceTotalMem) X(cuDevicePrimaryCtxRetain)                \
    X(cuDevicePrimaryCtxRelease) X(cuCtxPushCurrent) X(cuCtxPopCurrent) X(cuMemAlloc) X(cuMemFree)            \
    X(cuMemcpyHtoDAsync) X(cuMemcpyDtoHAsync) X(cuMemcpyDtoDAsync) X(cuMemsetD8Async) X(cuMemGetAddressRange) X(cuModuleLoadData)  \
    X(cuModuleUnload) X(cuModuleGetFunction) X(cuLaunchKernel) X(cuStreamCreate) X(cuStreamDestroy)           \
    X(cuStreamSynchronize) X(cuStreamGetCtx) X(cuEventCreate) X(cuEventRecord) X(cuEventSynchronize)          \
    X(cuEventElapsedTime) X(cuEventDestroy) X(cuCtxGetDevice) X(cuCtxGetCurrent) X(cuPointerGetAttribute)

/* cuda.h names a newer ABI version of some entry points (cuEventElapsedTime -> _v2, CUDA 12.8+);
 * a driver older than the headers lacks it, and where the older symbol has the same signature it
 * is used instead. */
static void *cu_resolve(void *library, const char *symbol) {
    void *f = dlsym(library, symbol);
    if (!f && strcmp(symbol, "cuEventElapsedTime_v2") == 0) f = dlsym(library, "cuEventElapsedTime");
    return f;
}

typedef struct cu_api {
    void *library; /* NULL: the driver is unusable, see lib.why */
    mora_library_info lib;
    int driver_version; /* cuDriverGetVersion: 12040 for CUDA 12.4 */
    CU_FUNCTIONS(MORA_LIBRARY_ENTRY)
} cu_api;

static cu_api cu;

static const char *cu_error_name(CUresult r) {
    const char *name = NULL;
    if (!cu.cuGetErrorName || cu.cuGetErrorName(r, &name) != CUDA_SUCCESS || !name) return "unknown CUresult";
    return name;
}

static const char *cu_error_text(CUresult r) {
    const char *text = NULL;
    if (!cu.cuGetErrorString || cu.cuGetErrorString(r, &text) != CUDA_SUCCESS || !text) return "no description";
    return text;
}

static pthread_once_t cu_once = PTHREAD_ONCE_INIT;

#define CU_API_RESOLVE(f) \
    MORA_LIBRARY_RESOLVE(cu, f, cu_resolve, "cuda: the NVIDIA driver %s lacks %s (the driver is too old)")

static void cu_load(void) {
    static const char *const names[] = {"libcuda.so.1", "libcuda.so"};
    void *library = mora_library_load(&cu.lib, "MORA_CUDA_LIBRARY", names, 2, NULL, 0,
                                      "cuda: the NVIDIA driver library (libcuda.so.1) could not be loaded: %s (no "
                                      "NVIDIA driver is installed on this machine)");
    if (!library) return;
    CU_FUNCTIONS(CU_API_RESOLVE)
    const CUresult r = cu.cuInit(0);
    if (r != CUDA_SUCCESS) {
        snprintf(cu.lib.why, sizeof cu.lib.why, "cuda: cuInit failed: %s (%s)%s", cu_error_name(r), cu_error_text(r),
                 r == CUDA_ERROR_NO_DEVICE ? ": the driver found no CUDA device" : "");
        return; /* stays loaded: a library that initialised partly is not unloaded */
    }
    cu.cuDriverGetVersion(&cu.driver_version);
    cu.library = library;
}

typedef struct cuda_ctx {
    mora_module_ctx core;
    CUdevice device;
    CUcontext context; /* the device's primary context, retained, or the application's own */
    int primary;       /* 1: context is the retained primary context (released at destroy) */
    int cc;            /* compute capability x 10 */
} cuda_ctx;

/* Buffers are CUdeviceptr stored in a void *. */
_Static_assert(sizeof(CUdeviceptr) == sizeof(void *), "a CUdeviceptr must fit a void *");

static const cuda_ctx *cuda_of(const mora_module_ctx *c) { return (const cuda_ctx *)c; }

static CUdeviceptr devptr(const void *buf) { return (CUdeviceptr)(uintptr_t)buf; }

static mora_status cu_error(CUresult r, const char *what) {
    const mora_status st = mora_fail(r == CUDA_ERROR_OUT_OF_MEMORY ? MORA_E_NO_MEMORY : MORA_E_DEVICE,
                                     "cuda: %s failed: %s (%s)", what, cu_error_name(r), cu_error_text(r));
    if (r == CUDA_ERROR_UNSUPPORTED_PTX_VERSION)
        mora_error_append("; the driver is older than NVRTC: update the driver or point MORA_NVRTC_LIBRARY at the "
                          "NVRTC of the driver's CUDA version");
    return st;
}

static mora_status cu_check(CUresult r, const char *what) { return r == CUDA_SUCCESS ? MORA_OK : cu_error(r, what); }

/* ---- the driver's calls, as the core makes them (backend_module.h) ---- */

/* The context is pushed around every call, so the caller's current context is left as it was. */
static mora_status cu_make_current(const mora_module_ctx *c, int *saved) {
    *saved = 0;
    return cu_check(cu.cuCtxPushCurrent(cuda_of(c)->context), "cuCtxPushCurrent");
}

static void cu_restore(const mora_module_ctx *c, int saved) {
    (void)c, (void)saved;
    CUcontext popped = NULL;
    cu.cuCtxPopCurrent(&popped);
}

static mora_status cu_alloc(void **buf, size_t bytes) {
    CUdeviceptr ptr = 0;
    MORA_TRY(cu_check(cu.cuMemAlloc(&ptr, bytes), "cuMemAlloc"));
    *buf = (void *)(uintptr_t)ptr;
    return MORA_OK;
}

static mora_status cu_free(void *buf) { return cu_check(cu.cuMemFree(devptr(buf)), "cuMemFree"); }

static mora_status cu_write(void *dst, const void *src, size_t bytes, void *stream) {
    return cu_check(cu.cuMemcpyHtoDAsync(devptr(dst), src, bytes, stream), "cuMemcpyHtoDAsync");
}

static mora_status cu_read(void *dst, const void *src, size_t bytes, void *stream) {
    return cu_check(cu.cuMemcpyDtoHAsync(dst, devptr(src), bytes, stream), "cuMemcpyDtoHAsync");
}

static mora_status cu_copy(void *dst, const void *src, size_t bytes, void *stream) {
    return cu_check(cu.cuMemcpyDtoDAsync(devptr(dst), devptr(src), bytes, stream), "cuMemcpyDtoDAsync");
}

static mora_status cu_zero(void *buf, size_t bytes, void *stream) {
    return cu_check(cu.cuMemsetD8Async(devptr(buf), 0, bytes, stream), "cuMemsetD8Async");
}

static mora_status cu_address_range(uintptr_t *base, size_t *size, const void *ptr) {
    CUdeviceptr start = 0;
    const CUresult r = cu.cuMemGetAddressRange(&start, size, devptr(ptr));
    if (r == CUDA_ERROR_NOT_FOUND || r == CUDA_ERROR_INVALID_VALUE)
        return mora_fail(MORA_E_ARG, "buffer %p: not a device allocation of this CUDA context (%s)", ptr,
                         cu_error_name(r));
    MORA_TRY(cu_check(r, "cuMemGetAddressRange"));
    *base = (uintptr_t)start;
    /* The allocation's context against the current one (the core made this context current): with
     * unified addressing another context's memory has an address range too. Stream-ordered pool
     * memory (cuMemAllocAsync) belongs to no context: accepted. */
    CUcontext owner = NULL, current = NULL;
    if (cu.cuPointerGetAttribute(&owner, CU_POINTER_ATTRIBUTE_CONTEXT, devptr(ptr)) == CUDA_SUCCESS && owner &&
        cu.cuCtxGetCurrent(&current) == CUDA_SUCCESS && current && owner != current)
        return mora_fail(MORA_E_ARG, "buffer %p: belongs to another CUDA context (%p) than this context's (%p)", ptr,
                         (void *)owner, (void *)current);
    return MORA_OK;
}

MORA_MODULE_MIRRORED_CALLS(cu, cu, CUmodule, CUfunction)

static mora_status cu_launch(void *function, const unsigned grid[3], const unsigned block[3], void *stream,
                             void **params) {
    const CUresult r = cu.cuLaunchKernel(function, grid[0], grid[1], grid[2], block[0], block[1], block[2], 0, stream,
                                         params, NULL);
    return cu_check(r, "cuLaunchKernel");
}

static mora_status cu_stream_create(void **stream) {
    CUstream made = NULL;
    const CUresult r = cu.cuStreamCreate(&made, CU_STREAM_DEFAULT);
    *stream = made;
    return cu_check(r, "cuStreamCreate");
}

static mora_status cu_event_create(void **event) {
    CUevent made = NULL;
    const CUresult r = cu.cuEventCreate(&made, CU_EVENT_DEFAULT);
    *event = made;
    return cu_check(r, "cuEventCreate");
}

/* ---- what the core does not do ---- */

static mora_status cuda_device_info(void *vctx, mora_device_info *info) {
    const cuda_ctx *c = vctx;
    memset(info, 0, sizeof *info);
    if (cu.cuDeviceGetName(info->name, (int)sizeof info->name, c->device) != CUDA_SUCCESS)
        snprintf(info->name, sizeof info->name, "CUDA device %d", c->core.ordinal);
    info->name[sizeof info->name - 1] = '\0';
    snprintf(info->vendor, sizeof info->vendor, "NVIDIA Corporation");
    snprintf(info->arch, sizeof info->arch, "sm_%d", c->cc);
    snprintf(info->driver_version, sizeof info->driver_version, "CUDA driver %d.%d", cu.driver_version / 1000,
             cu.driver_version % 1000 / 10);
    snprintf(info->compiler_version, sizeof info->compiler_version, "%.64s (target %.32s)", c->core.compiler,
             c->core.target);
    int value = 0;
    if (cu.cuDeviceGetAttribute(&value, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, c->device) == CUDA_SUCCESS)
        info->compute_units = value;
    if (cu.cuDeviceGetAttribute(&value, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK, c->device) == CUDA_SUCCESS)
        info->local_mem_bytes = (size_t)value;
    if (cu.cuDeviceGetAttribute(&value, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, c->device) == CUDA_SUCCESS)
        info->max_work_group = (size_t)value;
    size_t total = 0;
    if (cu.cuDeviceTotalMem(&total, c->device) == CUDA_SUCCESS) info->global_mem_bytes = (uint64_t)total;
    return MORA_OK;
}

/* A stream of this context's CUDA context, or one of the driver's special streams. */
static mora_status cuda_check_stream(const mora_module_ctx *core, void *native) {
    const CUstream stream = native;
    if (stream == CU_STREAM_LEGACY || stream == CU_STREAM_PER_THREAD) return MORA_OK;
    CUcontext owner = NULL;
    const CUresult r = cu.cuStreamGetCtx(stream, &owner);
    if (r != CUDA_SUCCESS)
        return mora_fail(MORA_E_ARG, "native_stream=%p: not a CUstream (cuStreamGetCtx: %s)", native, cu_error_name(r));
    if (owner != cuda_of(core)->context)
        return mora_fail(MORA_E_ARG, "native_stream=%p: belongs to another CUDA context than this mora_context's (device %d)",
                         native, core->ordinal);
    return MORA_OK;
}

static void cuda_close(mora_module_ctx *core) {
    const cuda_ctx *c = cuda_of(core);
    if (c->primary) cu.cuDevicePrimaryCtxRelease(c->device);
}

static const mora_module_driver cuda_driver = {
    .backend = MORA_MODULE_BACKEND("cuda", MORA_DIALECT_CUDA, cuda_device_info),
    .binary_kind = "CUBIN",
    .compile = mora_nvrtc_compile,
    .check_stream = cuda_check_stream,
    .close = cuda_close,
    MORA_MODULE_DRIVER_CALLS(cu),
};

/* NVRTC's target for a device of compute capability cc (x 10): the device's own when NVRTC has it;
 * else the newest of the same major architecture below it (a CUBIN runs on later minor versions);
 * else PTX for the newest target below the device, which the driver compiles. */
static mora_status choose_target(cuda_ctx *c) {
    char *target = c->core.target, *compiler = c->core.compiler;
    int archs[64], count = 0;
    MORA_TRY(mora_nvrtc_describe(compiler, sizeof c->core.compiler, archs, &count, 64));
    int exact = 0, same_major = 0, below = 0;
    for (int i = 0; i < count; ++i) {
        if (archs[i] == c->cc) exact = archs[i];
        if (archs[i] / 10 == c->cc / 10 && archs[i] <= c->cc && archs[i] > same_major) same_major = archs[i];
        if (archs[i] <= c->cc && archs[i] > below) below = archs[i];
    }
    if (exact || same_major)
        snprintf(target, sizeof c->core.target, "sm_%d", exact ? exact : same_major);
    else if (below)
        snprintf(target, sizeof c->core.target, "compute_%d", below);
    else
        return mora_fail(MORA_E_NO_BACKEND, "cuda: device %d is sm_%d, older than %s's oldest target sm_%d",
                         c->core.ordinal, c->cc, compiler, count ? archs[0] : 0);
    return MORA_OK;
}

mora_status mora_backend_cuda_open(int device, const mora_native_objects *native, const mora_backend_i **iface,
                                   void **ctx) {
    pthread_once(&cu_once, cu_load);
    if (!cu.library) return mora_fail(MORA_E_NO_BACKEND, "%s", cu.lib.why);
    if (native && native->context) { /* the application's CUcontext: its device is the one to use */
        CUresult r = cu.cuCtxPushCurrent((CUcontext)native->context);
        CUdevice owner = 0;
        if (r == CUDA_SUCCESS) {
            r = cu.cuCtxGetDevice(&owner);
            CUcontext popped = NULL;
            cu.cuCtxPopCurrent(&popped);
        }
        if (r != CUDA_SUCCESS)
            return mora_fail(MORA_E_ARG, "CUcontext=%p: not usable (%s)", native->context, cu_error_name(r));
        device = (int)owner; /* CUdevice handles are the ordinals */
    } else if (device < 0) {
        return mora_fail(MORA_E_ARG, "device=%d: must be >= 0", device);
    }
    int count = 0;
    CUresult r = cu.cuDeviceGetCount(&count);
    if (r != CUDA_SUCCESS) return mora_fail(MORA_E_NO_BACKEND, "cuda: cuDeviceGetCount failed: %s", cu_error_name(r));
    if (device >= count)
        return mora_fail(MORA_E_NO_BACKEND, "device=%d: the CUDA driver sees %d device(s)", device, count);
    cuda_ctx *c = calloc(1, sizeof *c);
    if (!c) return mora_fail(MORA_E_NO_MEMORY, "cuda: out of host memory");
    c->core.driver = &cuda_driver;
    c->core.ordinal = device;
    snprintf(c->core.driver_version, sizeof c->core.driver_version, "CUDA %d.%d", cu.driver_version / 1000,
             cu.driver_version % 1000 / 10);
    mora_status st = MORA_OK;
    int major = 0, minor = 0;
    if ((r = cu.cuDeviceGet(&c->device, device)) != CUDA_SUCCESS ||
        (r = cu.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, c->device)) != CUDA_SUCCESS ||
        (r = cu.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, c->device)) != CUDA_SUCCESS)
        st = mora_fail(MORA_E_NO_BACKEND, "cuda: device %d could not be queried: %s (%s)", device, cu_error_name(r),
                       cu_error_text(r));
    c->cc = major * 10 + minor;
    if (st == MORA_OK) st = choose_target(c); /* NVRTC missing: no backend, so "auto" moves on */
    if (st == MORA_OK && native && native->context) {
        c->context = (CUcontext)native->context;
    } else if (st == MORA_OK && (r = cu.cuDevicePrimaryCtxRetain(&c->context, c->device)) == CUDA_SUCCESS) {
        c->primary = 1;
    } else if (st == MORA_OK) {
        c->context = NULL;
        st = mora_fail(MORA_E_NO_BACKEND, "cuda: device %d: cuDevicePrimaryCtxRetain failed: %s (%s)", device,
                       cu_error_name(r), cu_error_text(r));
    }
    if (st != MORA_OK) {
        mora_module_destroy(c);
        return st;
    }
    return mora_module_start(&c->core, native ? native->queue : NULL, iface, ctx);
}
