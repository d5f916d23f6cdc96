/* The CUDA backend: the driver API (libcuda.so.1) and NVRTC, both dlopen()ed, so a build with this
 * backend runs on machines without an NVIDIA driver: opening then fails with MORA_E_NO_BACKEND and
 * the reason. The driver is loaded and initialised once per process and stays loaded.
 *
 * A context uses the device's primary context (the one the CUDA runtime, and so PyTorch, uses too),
 * or a CUcontext the application gives, and pushes it around every call, so the caller's current
 * context is left as it was. Buffers are
 * CUdeviceptr stored in a void *. Programs are compiled by NVRTC for the device's own target (its
 * compute capability, capped at the newest NVRTC knows: a CUBIN when NVRTC has the device's major
 * architecture, else PTX that the driver compiles) and loaded with cuModuleLoadData. */
#include <cuda.h>
#include <limits.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "error.h"
#include "rtc.h"

/* The symbol a name resolves to after cuda.h's #defines (cuMemAlloc -> cuMemAlloc_v2). */
#define CU_SYMBOL_(f) #f
#define CU_SYMBOL(f) CU_SYMBOL_(f)

/* Every driver entry point we use. */
#define CU_FUNCTIONS(X)                                                                                       \
    X(cuInit) X(cuDriverGetVersion) X(cuGetErrorName) X(cuGetErrorString) X(cuDeviceGetCount) X(cuDeviceGet)  \
    X(cuDeviceGetAttribute) X(cuDeviceGetName) X(cuDeviceTotalMem) X(cuDevicePrimaryCtxRetain)                \
    X(cuDevicePrimaryCtxRelease) X(cuCtxPushCurrent) X(cuCtxPopCurrent) X(cuMemAlloc) X(cuMemFree)            \
    X(cuMemcpyHtoDAsync) X(cuMemcpyDtoHAsync) X(cuMemcpyDtoDAsync) X(cuMemsetD8Async) X(cuMemGetAddressRange) X(cuModuleLoadData)  \
    X(cuModuleUnload) X(cuModuleGetFunction) X(cuLaunchKernel) X(cuStreamCreate) X(cuStreamDestroy)           \
    X(cuStreamSynchronize) X(cuStreamGetCtx) X(cuEventCreate) X(cuEventRecord) X(cuEventSynchronize)          \
    X(cuEventElapsedTime) X(cuEventDestroy) X(cuCtxGetDevice)

typedef struct cu_api {
    void *library; /* NULL: the driver is unusable, see why */
    char why[768];
    int driver_version; /* cuDriverGetVersion: 12040 for CUDA 12.4 */
#define CU_API_MEMBER(f) __typeof__(&f) f;
    CU_FUNCTIONS(CU_API_MEMBER)
#undef CU_API_MEMBER
} cu_api;

static cu_api cu;
static pthread_once_t cu_once = PTHREAD_ONCE_INIT;

/* cuda.h names a newer ABI version of some entry points (cuEventElapsedTime -> _v2, CUDA 12.8+);
 * a driver older than the headers lacks it, and where the older symbol has the same signature it
 * is used instead. */
static void *cu_resolve(void *library, const char *symbol, const char *plain) {
    void *f = dlsym(library, symbol);
    if (!f && strcmp(symbol, "cuEventElapsedTime_v2") == 0) f = dlsym(library, plain);
    return f;
}

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

static void cu_load(void) {
    static const char *const names[] = {"libcuda.so.1", "libcuda.so"};
    char why[512];
    void *library = mora_library_open("MORA_CUDA_LIBRARY", names, 2, NULL, 0, NULL, 0, why, sizeof why);
    if (!library) {
        snprintf(cu.why, sizeof cu.why,
                 "cuda: the NVIDIA driver library (libcuda.so.1) could not be loaded: %s (no NVIDIA driver is "
                 "installed on this machine)",
                 why);
        return;
    }
#define CU_API_RESOLVE(f)                                                                                      \
    cu.f = (__typeof__(&f))cu_resolve(library, CU_SYMBOL(f), #f);                                              \
    if (!cu.f) {                                                                                               \
        snprintf(cu.why, sizeof cu.why, "cuda: the NVIDIA driver (libcuda.so.1) lacks %s (the driver is too old)", \
                 CU_SYMBOL(f));                                                                                \
        dlclose(library);                                                                                      \
        return;                                                                                                \
    }
    CU_FUNCTIONS(CU_API_RESOLVE)
#undef CU_API_RESOLVE
    const CUresult r = cu.cuInit(0);
    if (r != CUDA_SUCCESS) {
        snprintf(cu.why, sizeof cu.why, "cuda: cuInit failed: %s (%s)%s", cu_error_name(r), cu_error_text(r),
                 r == CUDA_ERROR_NO_DEVICE ? ": the driver found no CUDA device" : "");
        return; /* stays loaded: a library that initialised partly is not unloaded */
    }
    cu.cuDriverGetVersion(&cu.driver_version);
    cu.library = library;
}

typedef struct cuda_ctx {
    CUdevice device;
    int ordinal;
    CUcontext context;   /* the device's primary context, retained, or the application's own */
    int primary;         /* 1: context is the retained primary context (released at destroy) */
    CUstream own_stream;
    CUstream stream;     /* own_stream, or the caller's adopted stream */
    int cc;              /* compute capability x 10 */
    char target[32];     /* what NVRTC compiles for: "sm_90", or "compute_90" (PTX) past NVRTC's newest */
    char compiler[64];   /* "NVRTC 13.0" */
} cuda_ctx;

/* A loaded module and the image it was loaded from (CUBIN, or PTX with its NUL), kept for the
 * kernels cache. */
typedef struct cuda_program {
    CUmodule module;
    void *image;
    size_t image_size;
} cuda_program;

/* A function of a module and its entry name for error messages. */
typedef struct cuda_kernel {
    CUfunction function;
    char name[64];
} cuda_kernel;

static mora_status cu_error(CUresult r, const char *what) {
    return mora_fail(r == CUDA_ERROR_OUT_OF_MEMORY ? MORA_E_NO_MEMORY : MORA_E_DEVICE, "cuda: %s failed: %s (%s)", what,
                     cu_error_name(r), cu_error_text(r));
}

/* Makes the context current on this thread for one call; leave() restores the caller's. */
static mora_status enter(const cuda_ctx *c) {
    const CUresult r = cu.cuCtxPushCurrent(c->context);
    return r == CUDA_SUCCESS ? MORA_OK : cu_error(r, "cuCtxPushCurrent");
}

static void leave(void) {
    CUcontext popped = NULL;
    cu.cuCtxPopCurrent(&popped);
}

static CUdeviceptr devptr(const void *buf) { return (CUdeviceptr)(uintptr_t)buf; }

static void cuda_destroy(void *vctx) {
    cuda_ctx *c = vctx;
    if (!c) return;
    if (c->context) {
        if (c->own_stream && enter(c) == MORA_OK) {
            cu.cuStreamSynchronize(c->own_stream);
            cu.cuStreamDestroy(c->own_stream);
            leave();
        }
        if (c->primary) cu.cuDevicePrimaryCtxRelease(c->device);
    }
    free(c);
}

static mora_status cuda_device_info(void *vctx, mora_device_info *info) {
    cuda_ctx *c = vctx;
    memset(info, 0, sizeof *info);
    if (cu.cuDeviceGetName(info->name, (int)sizeof info->name, c->device) != CUDA_SUCCESS)
        snprintf(info->name, sizeof info->name, "CUDA device %d", c->ordinal);
    info->name[sizeof info->name - 1] = '\0';
    snprintf(info->vendor, sizeof info->vendor, "NVIDIA Corporation");
    snprintf(info->arch, sizeof info->arch, "sm_%d", c->cc);
    snprintf(info->driver_version, sizeof info->driver_version, "CUDA driver %d.%d", cu.driver_version / 1000,
             cu.driver_version % 1000 / 10);
    snprintf(info->compiler_version, sizeof info->compiler_version, "%s (target %s)", c->compiler, c->target);
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

static mora_status cuda_buffer_alloc(void *vctx, size_t bytes, void **buf) {
    cuda_ctx *c = vctx;
    MORA_TRY(enter(c));
    CUdeviceptr ptr = 0;
    const CUresult r = cu.cuMemAlloc(&ptr, bytes ? bytes : 1);
    leave();
    if (r != CUDA_SUCCESS) {
        const mora_status st = cu_error(r, "cuMemAlloc");
        char detail[64];
        snprintf(detail, sizeof detail, " (bytes=%zu)", bytes);
        mora_error_append(detail);
        return st;
    }
    *buf = (void *)(uintptr_t)ptr;
    return MORA_OK;
}

static mora_status cuda_buffer_free(void *vctx, void *buf) {
    cuda_ctx *c = vctx;
    MORA_TRY(enter(c));
    const CUresult r = cu.cuMemFree(devptr(buf));
    leave();
    return r == CUDA_SUCCESS ? MORA_OK : cu_error(r, "cuMemFree");
}

static mora_status cuda_buffer_write(void *vctx, void *buf, size_t offset, const void *src, size_t bytes) {
    cuda_ctx *c = vctx;
    if (bytes == 0) return MORA_OK;
    MORA_TRY(enter(c));
    CUresult r = cu.cuMemcpyHtoDAsync(devptr(buf) + offset, src, bytes, c->stream);
    const char *what = "cuMemcpyHtoDAsync";
    if (r == CUDA_SUCCESS) r = cu.cuStreamSynchronize(c->stream), what = "cuStreamSynchronize after a write";
    leave();
    return r == CUDA_SUCCESS ? MORA_OK : cu_error(r, what);
}

static mora_status cuda_buffer_read(void *vctx, const void *buf, size_t offset, void *dst, size_t bytes) {
    cuda_ctx *c = vctx;
    if (bytes == 0) return MORA_OK;
    MORA_TRY(enter(c));
    CUresult r = cu.cuMemcpyDtoHAsync(dst, devptr(buf) + offset, bytes, c->stream);
    const char *what = "cuMemcpyDtoHAsync";
    if (r == CUDA_SUCCESS) r = cu.cuStreamSynchronize(c->stream), what = "cuStreamSynchronize after a read";
    leave();
    return r == CUDA_SUCCESS ? MORA_OK : cu_error(r, what);
}

static mora_status cuda_buffer_size(void *vctx, const void *buf, size_t *bytes) {
    cuda_ctx *c = vctx;
    MORA_TRY(enter(c));
    CUdeviceptr base = 0;
    size_t size = 0;
    const CUresult r = cu.cuMemGetAddressRange(&base, &size, devptr(buf));
    leave();
    if (r == CUDA_ERROR_NOT_FOUND || r == CUDA_ERROR_INVALID_VALUE)
        return mora_fail(MORA_E_ARG, "buffer %p: not a device allocation of this CUDA context (%s)", buf,
                         cu_error_name(r));
    if (r != CUDA_SUCCESS) return cu_error(r, "cuMemGetAddressRange");
    *bytes = size - (size_t)(devptr(buf) - base); /* a pointer into an allocation has the rest of it */
    return MORA_OK;
}

static mora_status cuda_buffer_zero(void *vctx, void *buf, size_t bytes) {
    cuda_ctx *c = vctx;
    if (bytes == 0) return MORA_OK;
    MORA_TRY(enter(c));
    const CUresult r = cu.cuMemsetD8Async(devptr(buf), 0, bytes, c->stream);
    leave();
    return r == CUDA_SUCCESS ? MORA_OK : cu_error(r, "cuMemsetD8Async");
}

static mora_status cuda_buffer_copy(void *vctx, const void *src, size_t src_offset, void *dst, size_t dst_offset,
                                    size_t bytes) {
    cuda_ctx *c = vctx;
    if (bytes == 0) return MORA_OK;
    MORA_TRY(enter(c));
    const CUresult r = cu.cuMemcpyDtoDAsync(devptr(dst) + dst_offset, devptr(src) + src_offset, bytes, c->stream);
    leave();
    return r == CUDA_SUCCESS ? MORA_OK : cu_error(r, "cuMemcpyDtoDAsync");
}

static mora_status cuda_program_build(void *vctx, const char *source, void **program) {
    cuda_ctx *c = vctx;
    mora_rtc_output out;
    MORA_TRY(mora_nvrtc_compile(source, c->target, NULL, 0, &out));
    cuda_program *p = calloc(1, sizeof *p);
    if (!p) {
        mora_rtc_output_free(&out);
        return mora_fail(MORA_E_NO_MEMORY, "cuda: out of host memory");
    }
    mora_status st = enter(c);
    if (st == MORA_OK) {
        /* The CUBIN first; PTX (compiled by the driver) when there is none or the driver refuses it. */
        CUresult r = CUDA_ERROR_INVALID_IMAGE, r_ptx = CUDA_SUCCESS;
        const void *image = NULL;
        size_t image_size = 0;
        if (out.binary) r = cu.cuModuleLoadData(&p->module, out.binary), image = out.binary, image_size = out.binary_bytes;
        if (r != CUDA_SUCCESS && out.ptx) {
            r_ptx = cu.cuModuleLoadData(&p->module, out.ptx);
            if (r_ptx == CUDA_SUCCESS) r = CUDA_SUCCESS, image = out.ptx, image_size = strlen(out.ptx) + 1;
        }
        leave();
        if (r == CUDA_SUCCESS && (p->image = malloc(image_size)) != NULL) {
            memcpy(p->image, image, image_size);
            p->image_size = image_size;
        }
        if (r != CUDA_SUCCESS) {
            st = mora_fail(MORA_E_COMPILE,
                           "cuda: the driver (CUDA %d.%d) could not load the code %s compiled for %s: CUBIN: %s (%s); "
                           "PTX: %s (%s)",
                           cu.driver_version / 1000, cu.driver_version % 1000 / 10, c->compiler, c->target,
                           out.binary ? cu_error_name(r) : "none", out.binary ? cu_error_text(r) : "not produced",
                           cu_error_name(r_ptx), cu_error_text(r_ptx));
            if (r_ptx == CUDA_ERROR_UNSUPPORTED_PTX_VERSION)
                mora_error_append("; the driver is older than NVRTC: update the driver or point MORA_NVRTC_LIBRARY "
                                  "at the NVRTC of the driver's CUDA version");
        }
    }
    mora_rtc_output_free(&out);
    if (st != MORA_OK) {
        free(p);
        return st;
    }
    *program = p;
    return MORA_OK;
}

static void cuda_program_free(void *vctx, void *program) {
    cuda_ctx *c = vctx;
    cuda_program *p = program;
    if (!p) return;
    if (enter(c) == MORA_OK) {
        cu.cuModuleUnload(p->module);
        leave();
    }
    free(p->image);
    free(p);
}

static mora_status cuda_program_binary(void *vctx, void *program, void **data, size_t *size) {
    (void)vctx;
    const cuda_program *p = program;
    if (!p->image) return mora_fail(MORA_E_UNSUPPORTED, "cuda: the program kept no image");
    if (!(*data = malloc(p->image_size))) return mora_fail(MORA_E_NO_MEMORY, "cuda: out of host memory");
    memcpy(*data, p->image, p->image_size);
    *size = p->image_size;
    return MORA_OK;
}

/* A module from an image cuda_program_binary gave (CUBIN, or PTX the driver compiles). */
static mora_status cuda_program_from_binary(void *vctx, const void *data, size_t size, void **program) {
    cuda_ctx *c = vctx;
    if (size == 0) return mora_fail(MORA_E_COMPILE, "cuda: empty binary");
    cuda_program *p = calloc(1, sizeof *p);
    if (!p || !(p->image = malloc(size))) {
        free(p);
        return mora_fail(MORA_E_NO_MEMORY, "cuda: out of host memory");
    }
    memcpy(p->image, data, size);
    p->image_size = size;
    mora_status st = enter(c);
    if (st == MORA_OK) {
        const CUresult r = cu.cuModuleLoadData(&p->module, p->image);
        leave();
        if (r != CUDA_SUCCESS) st = mora_fail(MORA_E_COMPILE, "cuda: cuModuleLoadData of a cached binary: %s", cu_error_name(r));
    }
    if (st != MORA_OK) {
        free(p->image), free(p);
        return st;
    }
    *program = p;
    return MORA_OK;
}

static mora_status cuda_kernel_create(void *vctx, void *program, const char *entry, void **kernel) {
    cuda_ctx *c = vctx;
    const cuda_program *p = program;
    if (strlen(entry) >= sizeof((cuda_kernel *)0)->name)
        return mora_fail(MORA_E_ARG, "cuda: entry \"%s\": name too long", entry);
    cuda_kernel *k = calloc(1, sizeof *k);
    if (!k) return mora_fail(MORA_E_NO_MEMORY, "cuda: out of host memory");
    mora_status st = enter(c);
    if (st == MORA_OK) {
        const CUresult r = cu.cuModuleGetFunction(&k->function, p->module, entry);
        leave();
        if (r != CUDA_SUCCESS) {
            st = cu_error(r, "cuModuleGetFunction");
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

static void cuda_kernel_free(void *vctx, void *kernel) {
    (void)vctx;
    free(kernel);
}

#define CUDA_MAX_ARGS 16

static mora_status cuda_launch(void *vctx, void *kernel, const size_t groups[3], const size_t local[3],
                               const mora_kernel_arg *args, int arg_count) {
    cuda_ctx *c = vctx;
    const cuda_kernel *k = kernel;
    const char *entry = k->name;
    if (arg_count < 0 || arg_count > CUDA_MAX_ARGS)
        return mora_fail(MORA_E_ARG, "arg_count=%d: must be 0..%d", arg_count, CUDA_MAX_ARGS);
    for (int d = 0; d < 3; ++d)
        if (groups[d] == 0 || local[d] == 0 || groups[d] > UINT_MAX || local[d] > UINT_MAX)
            return mora_fail(MORA_E_LAUNCH, "cuda: %s: grid %zux%zux%zu of blocks %zux%zux%zu: dimension %d out of range",
                             entry, groups[0], groups[1], groups[2], local[0], local[1], local[2], d);
    const CUfunction function = k->function;
    /* cuLaunchKernel reads each argument through a pointer to a value of the parameter's type. */
    union {
        CUdeviceptr ptr;
        long long i64;
        float f32;
    } values[CUDA_MAX_ARGS];
    void *params[CUDA_MAX_ARGS + 1];
    for (int i = 0; i < arg_count; ++i) {
        switch (args[i].kind) {
        case MORA_ARG_BUFFER:
            values[i].ptr = devptr(args[i].value.buffer);
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
            return mora_fail(MORA_E_ARG, "cuda: %s: argument %d has unknown kind %d", entry, i, (int)args[i].kind);
        }
    }
    params[arg_count] = NULL;
    MORA_TRY(enter(c));
    const CUresult r = cu.cuLaunchKernel(function, (unsigned)groups[0], (unsigned)groups[1], (unsigned)groups[2],
                                         (unsigned)local[0], (unsigned)local[1], (unsigned)local[2], 0, c->stream,
                                         params, NULL);
    leave();
    if (r != CUDA_SUCCESS)
        return mora_fail(MORA_E_LAUNCH, "cuda: cuLaunchKernel(%s, grid %zux%zux%zu, block %zux%zux%zu) failed: %s (%s)",
                         entry, groups[0], groups[1], groups[2], local[0], local[1], local[2], cu_error_name(r),
                         cu_error_text(r));
    return MORA_OK;
}

static mora_status cuda_synchronize(void *vctx) {
    cuda_ctx *c = vctx;
    MORA_TRY(enter(c));
    const CUresult r = cu.cuStreamSynchronize(c->stream);
    leave();
    return r == CUDA_SUCCESS ? MORA_OK : cu_error(r, "cuStreamSynchronize");
}

static mora_status cuda_set_stream(void *vctx, void *native) {
    cuda_ctx *c = vctx;
    CUstream stream = native ? (CUstream)native : c->own_stream;
    if (native && stream != CU_STREAM_LEGACY && stream != CU_STREAM_PER_THREAD) {
        CUcontext owner = NULL;
        const CUresult r = cu.cuStreamGetCtx(stream, &owner);
        if (r != CUDA_SUCCESS)
            return mora_fail(MORA_E_ARG, "native_stream=%p: not a CUstream (cuStreamGetCtx: %s)", native, cu_error_name(r));
        if (owner != c->context)
            return mora_fail(MORA_E_ARG,
                             "native_stream=%p: belongs to another CUDA context than this mora_context's (device %d)",
                             native, c->ordinal);
    }
    c->stream = stream;
    return MORA_OK;
}

static mora_status cuda_event_record(void *vctx, void **event) {
    cuda_ctx *c = vctx;
    MORA_TRY(enter(c));
    CUevent ev = NULL;
    CUresult r = cu.cuEventCreate(&ev, CU_EVENT_DEFAULT);
    const char *what = "cuEventCreate";
    if (r == CUDA_SUCCESS) {
        r = cu.cuEventRecord(ev, c->stream), what = "cuEventRecord";
        if (r != CUDA_SUCCESS) cu.cuEventDestroy(ev);
    }
    leave();
    if (r != CUDA_SUCCESS) return cu_error(r, what);
    *event = ev;
    return MORA_OK;
}

static mora_status cuda_event_elapsed_ms(void *vctx, void *start, void *end, double *ms) {
    cuda_ctx *c = vctx;
    MORA_TRY(enter(c));
    float elapsed = 0.0f;
    CUresult r = cu.cuEventSynchronize((CUevent)end);
    const char *what = "cuEventSynchronize";
    if (r == CUDA_SUCCESS) r = cu.cuEventElapsedTime(&elapsed, (CUevent)start, (CUevent)end), what = "cuEventElapsedTime";
    leave();
    if (r != CUDA_SUCCESS) return cu_error(r, what);
    *ms = (double)elapsed;
    return MORA_OK;
}

static void cuda_event_free(void *vctx, void *event) {
    cuda_ctx *c = vctx;
    if (!event || enter(c) != MORA_OK) return;
    cu.cuEventDestroy((CUevent)event);
    leave();
}

static const mora_backend_i cuda_backend = {
    .version = MORA_BACKEND_INTERFACE_VERSION,
    .name = "cuda",
    .dialect = MORA_DIALECT_CUDA,
    .destroy = cuda_destroy,
    .device_info = cuda_device_info,
    .buffer_alloc = cuda_buffer_alloc,
    .buffer_free = cuda_buffer_free,
    .buffer_write = cuda_buffer_write,
    .buffer_read = cuda_buffer_read,
    .buffer_size = cuda_buffer_size,
    .buffer_zero = cuda_buffer_zero,
    .buffer_copy = cuda_buffer_copy,
    .program_build = cuda_program_build,
    .program_free = cuda_program_free,
    .program_binary = cuda_program_binary,
    .program_from_binary = cuda_program_from_binary,
    .kernel_create = cuda_kernel_create,
    .kernel_free = cuda_kernel_free,
    .launch = cuda_launch,
    .synchronize = cuda_synchronize,
    .set_stream = cuda_set_stream,
    .event_record = cuda_event_record,
    .event_elapsed_ms = cuda_event_elapsed_ms,
    .event_free = cuda_event_free,
};

/* NVRTC's target for a device of compute capability cc (x 10): the device's own when NVRTC has it;
 * else the newest of the same major architecture below it (a CUBIN runs on later minor versions);
 * else PTX for the newest target below the device, which the driver compiles. */
static mora_status choose_target(cuda_ctx *c) {
    int archs[64], count = 0;
    MORA_TRY(mora_nvrtc_describe(c->compiler, sizeof c->compiler, archs, &count, 64));
    int exact = 0, same_major = 0, below = 0;
    for (int i = 0; i < count; ++i) {
        if (archs[i] == c->cc) exact = archs[i];
        if (archs[i] / 10 == c->cc / 10 && archs[i] <= c->cc && archs[i] > same_major) same_major = archs[i];
        if (archs[i] <= c->cc && archs[i] > below) below = archs[i];
    }
    if (exact || same_major)
        snprintf(c->target, sizeof c->target, "sm_%d", exact ? exact : same_major);
    else if (below)
        snprintf(c->target, sizeof c->target, "compute_%d", below);
    else
        return mora_fail(MORA_E_NO_BACKEND, "cuda: device %d is sm_%d, older than %s's oldest target sm_%d", c->ordinal,
                         c->cc, c->compiler, count ? archs[0] : 0);
    return MORA_OK;
}

mora_status mora_backend_cuda_open(int device, const mora_native_objects *native, const mora_backend_i **iface,
                                   void **ctx) {
    if (device < 0) return mora_fail(MORA_E_ARG, "device=%d: must be >= 0", device);
    pthread_once(&cu_once, cu_load);
    if (!cu.library) return mora_fail(MORA_E_NO_BACKEND, "%s", cu.why);
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
    }
    int count = 0;
    CUresult r = cu.cuDeviceGetCount(&count);
    if (r != CUDA_SUCCESS) return mora_fail(MORA_E_NO_BACKEND, "cuda: cuDeviceGetCount failed: %s", cu_error_name(r));
    if (device >= count)
        return mora_fail(MORA_E_NO_BACKEND, "device=%d: the CUDA driver sees %d device(s)", device, count);
    cuda_ctx *c = calloc(1, sizeof *c);
    if (!c) return mora_fail(MORA_E_NO_MEMORY, "cuda: out of host memory");
    c->ordinal = device;
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
    if (st == MORA_OK && (st = enter(c)) == MORA_OK) {
        r = cu.cuStreamCreate(&c->own_stream, CU_STREAM_DEFAULT);
        leave();
        if (r != CUDA_SUCCESS) {
            c->own_stream = NULL;
            st = mora_fail(MORA_E_NO_BACKEND, "cuda: device %d: cuStreamCreate failed: %s (%s)", device,
                           cu_error_name(r), cu_error_text(r));
        }
    }
    if (st != MORA_OK) {
        cuda_destroy(c);
        return st;
    }
    c->stream = c->own_stream;
    if (native && native->queue && (st = cuda_set_stream(c, native->queue)) != MORA_OK) {
        cuda_destroy(c);
        return st;
    }
    *iface = &cuda_backend;
    *ctx = c;
    return MORA_OK;
}
