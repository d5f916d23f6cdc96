/* The HIP backend: the HIP runtime (libamdhip64.so) and hiprtc, both dlopen()ed, so a build with
 * this backend runs on machines without ROCm or without an AMD GPU: opening then fails with
 * MORA_E_NO_BACKEND and the reason. The runtime is loaded and initialised once per process and
 * stays loaded.
 *
 * HIP keeps a current device per thread: every call makes the context's device current and then
 * restores the caller's. Buffers are hipDeviceptr_t (device pointers) stored in a void *. Programs
 * are compiled by hiprtc for the device's full target id (gcnArchName, e.g. gfx90a:sramecc+:xnack-)
 * and loaded with hipModuleLoadData. */
#if !defined(__HIP_PLATFORM_AMD__) && !defined(__HIP_PLATFORM_NVIDIA__)
#define __HIP_PLATFORM_AMD__ 1
#endif
#include <hip/hip_runtime_api.h>

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "error.h"
#include "rtc.h"

/* The symbol a name resolves to after the HIP headers' #defines (ROCm 6 renames some). */
#define HIP_SYMBOL_(f) #f
#define HIP_SYMBOL(f) HIP_SYMBOL_(f)

/* Every runtime entry point we use. */
#define HIP_FUNCTIONS(X)                                                                                      \
    X(hipInit) X(hipGetDeviceCount) X(hipGetDeviceProperties) X(hipGetDevice) X(hipSetDevice)                 \
    X(hipDriverGetVersion) X(hipRuntimeGetVersion) X(hipGetErrorName) X(hipGetErrorString) X(hipMalloc)        \
    X(hipFree) X(hipMemcpyHtoDAsync) X(hipMemcpyDtoHAsync) X(hipMemcpyDtoDAsync) X(hipMemsetD8Async) X(hipMemGetAddressRange)        \
    X(hipModuleLoadData) X(hipModuleUnload) X(hipModuleGetFunction) X(hipModuleLaunchKernel) X(hipStreamCreate) \
    X(hipStreamDestroy) X(hipStreamSynchronize) X(hipStreamQuery) X(hipEventCreate) X(hipEventRecord)          \
    X(hipEventSynchronize) X(hipEventElapsedTime) X(hipEventDestroy)

typedef struct hip_api {
    void *library; /* NULL: the runtime is unusable, see why */
    char why[768];
    char path[512];
    int runtime_version; /* 50221153 for 5.2.21153 */
    int driver_version;
    int device_count;
#define HIP_API_MEMBER(f) __typeof__(&f) f;
    HIP_FUNCTIONS(HIP_API_MEMBER)
#undef HIP_API_MEMBER
} hip_api;

static hip_api hip;
static pthread_once_t hip_once = PTHREAD_ONCE_INIT;

static const char *hip_error_name(hipError_t e) {
    const char *name = hip.hipGetErrorName ? hip.hipGetErrorName(e) : NULL;
    return name ? name : "unknown hipError_t";
}

static const char *hip_error_text(hipError_t e) {
    const char *text = hip.hipGetErrorString ? hip.hipGetErrorString(e) : NULL;
    if (text && strcmp(text, hip_error_name(e)) == 0) return "no further description"; /* ROCm 5 repeats the name */
    return text ? text : "no description";
}

static void hip_load(void) {
    static const char *const names[] = {"libamdhip64.so.7", "libamdhip64.so.6", "libamdhip64.so.5", "libamdhip64.so"};
    char rocm_lib[512] = "";
    const char *rocm_path = getenv("ROCM_PATH");
    if (rocm_path && *rocm_path) snprintf(rocm_lib, sizeof rocm_lib, "%s/lib", rocm_path);
    const char *const dirs[] = {rocm_lib, "/opt/rocm/lib"};
    char why[512];
    void *library = mora_library_open("MORA_HIP_LIBRARY", names, 4, dirs, 2, hip.path, sizeof hip.path, why, sizeof why);
    if (!library) {
        snprintf(hip.why, sizeof hip.why,
                 "hip: the HIP runtime (libamdhip64.so) could not be loaded: %s (ROCm is not installed; Debian: "
                 "apt-get install libamdhip64-5, or set MORA_HIP_LIBRARY)",
                 why);
        return;
    }
#define HIP_API_RESOLVE(f)                                                                                     \
    hip.f = (__typeof__(&f))dlsym(library, HIP_SYMBOL(f));                                                     \
    if (!hip.f) {                                                                                              \
        snprintf(hip.why, sizeof hip.why, "hip: the HIP runtime %s lacks %s (built against ROCm %d.%d headers)",  \
                 hip.path, HIP_SYMBOL(f), HIP_VERSION_MAJOR, HIP_VERSION_MINOR);                               \
        dlclose(library);                                                                                      \
        return;                                                                                                \
    }
    HIP_FUNCTIONS(HIP_API_RESOLVE)
#undef HIP_API_RESOLVE
    hip.hipRuntimeGetVersion(&hip.runtime_version);
    hip.hipDriverGetVersion(&hip.driver_version);
    const hipError_t init = hip.hipInit(0);
    hipError_t e = hip.hipGetDeviceCount(&hip.device_count);
    if (init != hipSuccess || e != hipSuccess || hip.device_count <= 0) {
        const hipError_t shown = init != hipSuccess ? init : e;
        snprintf(hip.why, sizeof hip.why,
                 "hip: no usable AMD GPU: %s returned %s (%s) (HIP runtime %d.%d.%d at %s; is an AMD GPU present and "
                 "/dev/kfd accessible?)",
                 init != hipSuccess ? "hipInit" : "hipGetDeviceCount", hip_error_name(shown), hip_error_text(shown),
                 hip.runtime_version / 10000000, hip.runtime_version / 100000 % 100, hip.runtime_version % 100000,
                 hip.path);
        return; /* stays loaded: a runtime that initialised partly is not unloaded */
    }
    hip.library = library;
}

typedef struct hip_ctx {
    int device;
    hipStream_t own_stream;
    hipStream_t stream;   /* own_stream, or the caller's adopted stream */
    char name[256];
    char target[256];     /* full target id for hiprtc: "gfx90a:sramecc+:xnack-" */
    char arch[64];        /* "gfx90a" */
    char compiler[96];
    int compute_units;
    size_t shared_per_block;
    size_t max_threads;
    uint64_t global_bytes;
} hip_ctx;

/* A loaded module and its code object, kept for the kernels cache. */
typedef struct hip_program {
    hipModule_t module;
    void *image;
    size_t image_size;
} hip_program;

/* A function of a module and its entry name for error messages. */
typedef struct hip_kernel {
    hipFunction_t function;
    char name[64];
} hip_kernel;

static mora_status hip_error(hipError_t e, const char *what) {
    return mora_fail(e == hipErrorOutOfMemory ? MORA_E_NO_MEMORY : MORA_E_DEVICE, "hip: %s failed: %s (%s)", what,
                     hip_error_name(e), hip_error_text(e));
}

/* Makes the context's device current for one call; leave() restores the caller's. */
static mora_status enter(const hip_ctx *c, int *previous) {
    *previous = -1;
    if (hip.hipGetDevice(previous) != hipSuccess) *previous = -1;
    if (*previous == c->device) return MORA_OK;
    const hipError_t e = hip.hipSetDevice(c->device);
    return e == hipSuccess ? MORA_OK : hip_error(e, "hipSetDevice");
}

static void leave(const hip_ctx *c, int previous) {
    if (previous >= 0 && previous != c->device) hip.hipSetDevice(previous);
}

static void hip_destroy(void *vctx) {
    hip_ctx *c = vctx;
    if (!c) return;
    int previous;
    if (c->own_stream && enter(c, &previous) == MORA_OK) {
        hip.hipStreamSynchronize(c->own_stream);
        hip.hipStreamDestroy(c->own_stream);
        leave(c, previous);
    }
    free(c);
}

static mora_status hip_device_info(void *vctx, mora_device_info *info) {
    hip_ctx *c = vctx;
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", c->name);
    snprintf(info->vendor, sizeof info->vendor, "Advanced Micro Devices, Inc.");
    snprintf(info->arch, sizeof info->arch, "%s", c->arch);
    snprintf(info->driver_version, sizeof info->driver_version, "HIP runtime %d.%d.%d (driver %d)",
             hip.runtime_version / 10000000, hip.runtime_version / 100000 % 100, hip.runtime_version % 100000,
             hip.driver_version);
    snprintf(info->compiler_version, sizeof info->compiler_version, "%s", c->compiler);
    info->compute_units = c->compute_units;
    info->local_mem_bytes = c->shared_per_block;
    info->max_work_group = c->max_threads;
    info->global_mem_bytes = c->global_bytes;
    return MORA_OK;
}

static mora_status hip_buffer_alloc(void *vctx, size_t bytes, void **buf) {
    hip_ctx *c = vctx;
    int previous;
    MORA_TRY(enter(c, &previous));
    void *ptr = NULL;
    const hipError_t e = hip.hipMalloc(&ptr, bytes ? bytes : 1);
    leave(c, previous);
    if (e != hipSuccess) {
        const mora_status st = hip_error(e, "hipMalloc");
        char detail[64];
        snprintf(detail, sizeof detail, " (bytes=%zu)", bytes);
        mora_error_append(detail);
        return st;
    }
    *buf = ptr;
    return MORA_OK;
}

static mora_status hip_buffer_free(void *vctx, void *buf) {
    hip_ctx *c = vctx;
    int previous;
    MORA_TRY(enter(c, &previous));
    const hipError_t e = hip.hipFree(buf);
    leave(c, previous);
    return e == hipSuccess ? MORA_OK : hip_error(e, "hipFree");
}

static mora_status hip_buffer_write(void *vctx, void *buf, size_t offset, const void *src, size_t bytes) {
    hip_ctx *c = vctx;
    if (bytes == 0) return MORA_OK;
    int previous;
    MORA_TRY(enter(c, &previous));
    /* The runtime's prototype takes a non-const source it never writes. */
    hipError_t e = hip.hipMemcpyHtoDAsync((char *)buf + offset, (void *)(uintptr_t)src, bytes, c->stream);
    const char *what = "hipMemcpyHtoDAsync";
    if (e == hipSuccess) e = hip.hipStreamSynchronize(c->stream), what = "hipStreamSynchronize after a write";
    leave(c, previous);
    return e == hipSuccess ? MORA_OK : hip_error(e, what);
}

static mora_status hip_buffer_read(void *vctx, const void *buf, size_t offset, void *dst, size_t bytes) {
    hip_ctx *c = vctx;
    if (bytes == 0) return MORA_OK;
    int previous;
    MORA_TRY(enter(c, &previous));
    hipError_t e = hip.hipMemcpyDtoHAsync(dst, (char *)(uintptr_t)buf + offset, bytes, c->stream);
    const char *what = "hipMemcpyDtoHAsync";
    if (e == hipSuccess) e = hip.hipStreamSynchronize(c->stream), what = "hipStreamSynchronize after a read";
    leave(c, previous);
    return e == hipSuccess ? MORA_OK : hip_error(e, what);
}

static mora_status hip_buffer_size(void *vctx, const void *buf, size_t *bytes) {
    hip_ctx *c = vctx;
    int previous;
    MORA_TRY(enter(c, &previous));
    hipDeviceptr_t base = NULL;
    size_t size = 0;
    const hipError_t e = hip.hipMemGetAddressRange(&base, &size, (hipDeviceptr_t)(uintptr_t)buf);
    leave(c, previous);
    if (e == hipErrorNotFound || e == hipErrorInvalidValue || e == hipErrorInvalidDevicePointer)
        return mora_fail(MORA_E_ARG, "buffer %p: not a device allocation of the HIP runtime (%s)", buf, hip_error_name(e));
    if (e != hipSuccess) return hip_error(e, "hipMemGetAddressRange");
    *bytes = size - (size_t)((uintptr_t)buf - (uintptr_t)base); /* a pointer into an allocation has the rest */
    return MORA_OK;
}

static mora_status hip_buffer_zero(void *vctx, void *buf, size_t bytes) {
    hip_ctx *c = vctx;
    if (bytes == 0) return MORA_OK;
    int previous;
    MORA_TRY(enter(c, &previous));
    const hipError_t e = hip.hipMemsetD8Async(buf, 0, bytes, c->stream);
    leave(c, previous);
    return e == hipSuccess ? MORA_OK : hip_error(e, "hipMemsetD8Async");
}

static mora_status hip_buffer_copy(void *vctx, const void *src, size_t src_offset, void *dst, size_t dst_offset,
                                   size_t bytes) {
    hip_ctx *c = vctx;
    if (bytes == 0) return MORA_OK;
    int previous;
    MORA_TRY(enter(c, &previous));
    const hipError_t e = hip.hipMemcpyDtoDAsync((char *)dst + dst_offset, (char *)(uintptr_t)src + src_offset, bytes, c->stream);
    leave(c, previous);
    return e == hipSuccess ? MORA_OK : hip_error(e, "hipMemcpyDtoDAsync");
}

/* Loads a code object into a new program that keeps a copy of it. */
static mora_status load_code_object(hip_ctx *c, const void *image, size_t size, void **program) {
    hip_program *p = calloc(1, sizeof *p);
    if (!p || !(p->image = malloc(size ? size : 1))) {
        free(p);
        return mora_fail(MORA_E_NO_MEMORY, "hip: out of host memory");
    }
    memcpy(p->image, image, size);
    p->image_size = size;
    int previous;
    mora_status st = enter(c, &previous);
    if (st == MORA_OK) {
        const hipError_t e = hip.hipModuleLoadData(&p->module, p->image);
        leave(c, previous);
        if (e != hipSuccess)
            st = mora_fail(MORA_E_COMPILE, "hip: hipModuleLoadData failed for the code %s compiled for %s: %s (%s)",
                           c->compiler, c->target, hip_error_name(e), hip_error_text(e));
    }
    if (st != MORA_OK) {
        free(p->image), free(p);
        return st;
    }
    *program = p;
    return MORA_OK;
}

static mora_status hip_program_build(void *vctx, const char *source, void **program) {
    hip_ctx *c = vctx;
    mora_rtc_output out;
    MORA_TRY(mora_hiprtc_compile(source, c->target, NULL, 0, &out));
    const mora_status st = load_code_object(c, out.binary, out.binary_bytes, program);
    mora_rtc_output_free(&out);
    return st;
}

static mora_status hip_program_binary(void *vctx, void *program, void **data, size_t *size) {
    (void)vctx;
    const hip_program *p = program;
    if (!(*data = malloc(p->image_size ? p->image_size : 1))) return mora_fail(MORA_E_NO_MEMORY, "hip: out of host memory");
    memcpy(*data, p->image, p->image_size);
    *size = p->image_size;
    return MORA_OK;
}

static mora_status hip_program_from_binary(void *vctx, const void *data, size_t size, void **program) {
    if (size == 0) return mora_fail(MORA_E_COMPILE, "hip: empty binary");
    return load_code_object(vctx, data, size, program);
}

static void hip_program_free(void *vctx, void *program) {
    hip_ctx *c = vctx;
    hip_program *p = program;
    if (!p) return;
    int previous;
    if (enter(c, &previous) == MORA_OK) {
        hip.hipModuleUnload(p->module);
        leave(c, previous);
    }
    free(p->image);
    free(p);
}

static mora_status hip_kernel_create(void *vctx, void *program, const char *entry, void **kernel) {
    hip_ctx *c = vctx;
    const hip_program *p = program;
    if (strlen(entry) >= sizeof((hip_kernel *)0)->name)
        return mora_fail(MORA_E_ARG, "hip: entry \"%s\": name too long", entry);
    hip_kernel *k = calloc(1, sizeof *k);
    if (!k) return mora_fail(MORA_E_NO_MEMORY, "hip: out of host memory");
    int previous;
    mora_status st = enter(c, &previous);
    if (st == MORA_OK) {
        const hipError_t e = hip.hipModuleGetFunction(&k->function, p->module, entry);
        leave(c, previous);
        if (e != hipSuccess) {
            st = hip_error(e, "hipModuleGetFunction");
            mora_error_append(" for entry ");
            mora_error_append(entry);
        }
    }
    if (st != MORA_OK) {
        free(k);
        return st;
    }
    strcpy(k->name, entry);
    *kernel = k;
    return MORA_OK;
}

static void hip_kernel_free(void *vctx, void *kernel) {
    (void)vctx;
    free(kernel);
}

#define HIP_MAX_ARGS 16

static mora_status hip_launch(void *vctx, void *kernel, const size_t groups[3], const size_t local[3],
                              const mora_kernel_arg *args, int arg_count) {
    hip_ctx *c = vctx;
    const hip_kernel *k = kernel;
    const char *entry = k->name;
    if (arg_count < 0 || arg_count > HIP_MAX_ARGS)
        return mora_fail(MORA_E_ARG, "arg_count=%d: must be 0..%d", arg_count, HIP_MAX_ARGS);
    for (int d = 0; d < 3; ++d)
        if (groups[d] == 0 || local[d] == 0 || groups[d] > UINT_MAX || local[d] > UINT_MAX)
            return mora_fail(MORA_E_LAUNCH, "hip: %s: grid %zux%zux%zu of blocks %zux%zux%zu: dimension %d out of range",
                             entry, groups[0], groups[1], groups[2], local[0], local[1], local[2], d);
    const hipFunction_t function = k->function;
    /* hipModuleLaunchKernel reads each argument through a pointer to a value of the parameter's type. */
    union {
        void *ptr;
        long long i64;
        float f32;
    } values[HIP_MAX_ARGS];
    void *params[HIP_MAX_ARGS + 1];
    for (int i = 0; i < arg_count; ++i) {
        switch (args[i].kind) {
        case MORA_ARG_BUFFER:
            values[i].ptr = (void *)(uintptr_t)args[i].value.buffer;
            params[i] = &values[i].ptr;
            break;
        case MORA_ARG_I64:
            values[i].i64 = (long long)args[i].value.i64;
            params[i] = &values[i].i64;
            break;
        case MORA_ARG_F32:
            values[i].f32 = args[i].value.f32;
            params[i] = &values[i].f32;
            break;
        default:
            return mora_fail(MORA_E_ARG, "hip: %s: argument %d has unknown kind %d", entry, i, (int)args[i].kind);
        }
    }
    params[arg_count] = NULL;
    int previous;
    MORA_TRY(enter(c, &previous));
    const hipError_t e = hip.hipModuleLaunchKernel(function, (unsigned)groups[0], (unsigned)groups[1],
                                                   (unsigned)groups[2], (unsigned)local[0], (unsigned)local[1],
                                                   (unsigned)local[2], 0, c->stream, params, NULL);
    leave(c, previous);
    if (e != hipSuccess)
        return mora_fail(MORA_E_LAUNCH,
                         "hip: hipModuleLaunchKernel(%s, grid %zux%zux%zu, block %zux%zux%zu) failed: %s (%s)", entry,
                         groups[0], groups[1], groups[2], local[0], local[1], local[2], hip_error_name(e),
                         hip_error_text(e));
    return MORA_OK;
}

static mora_status hip_synchronize(void *vctx) {
    hip_ctx *c = vctx;
    int previous;
    MORA_TRY(enter(c, &previous));
    const hipError_t e = hip.hipStreamSynchronize(c->stream);
    leave(c, previous);
    return e == hipSuccess ? MORA_OK : hip_error(e, "hipStreamSynchronize");
}

static mora_status hip_set_stream(void *vctx, void *native) {
    hip_ctx *c = vctx;
    if (native) {
        int previous;
        MORA_TRY(enter(c, &previous));
        const hipError_t e = hip.hipStreamQuery((hipStream_t)native);
        leave(c, previous);
        if (e != hipSuccess && e != hipErrorNotReady)
            return mora_fail(MORA_E_ARG, "native_stream=%p: not a hipStream_t (hipStreamQuery: %s)", native,
                             hip_error_name(e));
    }
    c->stream = native ? (hipStream_t)native : c->own_stream;
    return MORA_OK;
}

static mora_status hip_event_record(void *vctx, void **event) {
    hip_ctx *c = vctx;
    int previous;
    MORA_TRY(enter(c, &previous));
    hipEvent_t ev = NULL;
    hipError_t e = hip.hipEventCreate(&ev);
    const char *what = "hipEventCreate";
    if (e == hipSuccess) {
        e = hip.hipEventRecord(ev, c->stream), what = "hipEventRecord";
        if (e != hipSuccess) hip.hipEventDestroy(ev);
    }
    leave(c, previous);
    if (e != hipSuccess) return hip_error(e, what);
    *event = ev;
    return MORA_OK;
}

static mora_status hip_event_elapsed_ms(void *vctx, void *start, void *end, double *ms) {
    hip_ctx *c = vctx;
    int previous;
    MORA_TRY(enter(c, &previous));
    float elapsed = 0.0f;
    hipError_t e = hip.hipEventSynchronize((hipEvent_t)end);
    const char *what = "hipEventSynchronize";
    if (e == hipSuccess)
        e = hip.hipEventElapsedTime(&elapsed, (hipEvent_t)start, (hipEvent_t)end), what = "hipEventElapsedTime";
    leave(c, previous);
    if (e != hipSuccess) return hip_error(e, what);
    *ms = (double)elapsed;
    return MORA_OK;
}

static void hip_event_free(void *vctx, void *event) {
    hip_ctx *c = vctx;
    int previous;
    if (!event || enter(c, &previous) != MORA_OK) return;
    hip.hipEventDestroy((hipEvent_t)event);
    leave(c, previous);
}

static const mora_backend_i hip_backend = {
    .version = MORA_BACKEND_INTERFACE_VERSION,
    .name = "hip",
    .dialect = MORA_DIALECT_HIP,
    .destroy = hip_destroy,
    .device_info = hip_device_info,
    .buffer_alloc = hip_buffer_alloc,
    .buffer_free = hip_buffer_free,
    .buffer_write = hip_buffer_write,
    .buffer_read = hip_buffer_read,
    .buffer_size = hip_buffer_size,
    .buffer_zero = hip_buffer_zero,
    .buffer_copy = hip_buffer_copy,
    .program_build = hip_program_build,
    .program_free = hip_program_free,
    .program_binary = hip_program_binary,
    .program_from_binary = hip_program_from_binary,
    .kernel_create = hip_kernel_create,
    .kernel_free = hip_kernel_free,
    .launch = hip_launch,
    .synchronize = hip_synchronize,
    .set_stream = hip_set_stream,
    .event_record = hip_event_record,
    .event_elapsed_ms = hip_event_elapsed_ms,
    .event_free = hip_event_free,
};

/* Device properties, read into room to spare: the structure grew between ROCm releases. */
static mora_status read_properties(hip_ctx *c) {
    union {
        hipDeviceProp_t props;
        unsigned char room[16384];
    } u;
    memset(&u, 0, sizeof u);
    const hipError_t e = hip.hipGetDeviceProperties(&u.props, c->device);
    if (e != hipSuccess)
        return mora_fail(MORA_E_NO_BACKEND, "hip: device %d: hipGetDeviceProperties failed: %s (%s)", c->device,
                         hip_error_name(e), hip_error_text(e));
    const hipDeviceProp_t *p = &u.props;
    snprintf(c->name, sizeof c->name, "%.*s", (int)sizeof p->name, p->name);
    snprintf(c->target, sizeof c->target, "%.*s", (int)sizeof p->gcnArchName, p->gcnArchName);
    snprintf(c->arch, sizeof c->arch, "%.*s", (int)strcspn(c->target, ":"), c->target);
    if (strncmp(c->arch, "gfx", 3) != 0)
        return mora_fail(MORA_E_NO_BACKEND, "hip: device %d (%s) reports no gfx target (gcnArchName=\"%s\")", c->device,
                         c->name, c->target);
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
    if (!hip.library) return mora_fail(MORA_E_NO_BACKEND, "%s", hip.why);
    if (device >= hip.device_count)
        return mora_fail(MORA_E_NO_BACKEND, "device=%d: the HIP runtime sees %d device(s)", device, hip.device_count);
    hip_ctx *c = calloc(1, sizeof *c);
    if (!c) return mora_fail(MORA_E_NO_MEMORY, "hip: out of host memory");
    c->device = device;
    mora_status st = read_properties(c);
    /* hiprtc missing: no backend, so "auto" moves on */
    if (st == MORA_OK) st = mora_hiprtc_describe(c->compiler, sizeof c->compiler);
    int previous;
    if (st == MORA_OK && (st = enter(c, &previous)) == MORA_OK) {
        const hipError_t e = hip.hipStreamCreate(&c->own_stream);
        leave(c, previous);
        if (e != hipSuccess) {
            c->own_stream = NULL;
            st = mora_fail(MORA_E_NO_BACKEND, "hip: device %d: hipStreamCreate failed: %s (%s)", device,
                           hip_error_name(e), hip_error_text(e));
        }
    }
    if (st != MORA_OK) {
        hip_destroy(c);
        return st;
    }
    c->stream = c->own_stream;
    if (native && native->queue && (st = hip_set_stream(c, native->queue)) != MORA_OK) {
        hip_destroy(c);
        return st;
    }
    *iface = &hip_backend;
    *ctx = c;
    return MORA_OK;
}
