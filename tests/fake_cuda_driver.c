/* fake_cuda_driver — a stand-in for libcuda.so.1 so the CUDA backend's plumbing runs on machines
 * without an NVIDIA GPU (test_backend_fake loads it through MORA_CUDA_LIBRARY). One device, "sm_90",
 * whose memory is host memory: copies and memsets really happen, kernels do not run (a launch is
 * recorded). It checks what a real driver would refuse: memory calls without a current context,
 * unbalanced context pushes/pops, frees of unknown pointers, modules that are neither a CUBIN (ELF)
 * nor PTX. FAKE_CUDA_INIT_RESULT=N makes cuInit return N. The test reads fake_gpu_state(). */
#include <cuda.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_gpu.h"

struct CUctx_st {
    int id;
};
struct CUmod_st {
    int is_elf;
};
struct CUfunc_st {
    char name[64];
};
struct CUstream_st {
    int id;
};
struct CUevent_st {
    int recorded;
};

static struct CUctx_st primary = {1}, other_context = {2};
static struct CUstream_st foreign_stream = {99}; /* belongs to other_context */
static fake_gpu_stats stats;
static CUcontext stack[16];
static int depth;

#define FAKE_MAX_ALLOCATIONS 256
static struct {
    CUdeviceptr base;
    size_t size;
    CUcontext owner;
} allocations[FAKE_MAX_ALLOCATIONS];

fake_gpu_stats *fake_gpu_state(void) { return &stats; }
void *fake_gpu_foreign_stream(void) { return &foreign_stream; }

static CUresult need_context(void) {
    if (depth == 0 || stack[depth - 1] != &primary) {
        ++stats.calls_without_context;
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    return CUDA_SUCCESS;
}

/* The allocation holding [p, p + n), or -1. */
static int find_allocation(CUdeviceptr p, size_t n) {
    for (int i = 0; i < FAKE_MAX_ALLOCATIONS; ++i)
        if (allocations[i].base && p >= allocations[i].base && p - allocations[i].base <= allocations[i].size &&
            n <= allocations[i].size - (p - allocations[i].base))
            return i;
    return -1;
}

CUresult cuInit(unsigned int flags) {
    (void)flags;
    const char *forced = getenv("FAKE_CUDA_INIT_RESULT");
    return forced && *forced ? (CUresult)atoi(forced) : CUDA_SUCCESS;
}

CUresult cuDriverGetVersion(int *version) {
    *version = 13000;
    return CUDA_SUCCESS;
}

CUresult cuGetErrorName(CUresult error, const char **text) {
    switch (error) {
    case CUDA_SUCCESS: *text = "CUDA_SUCCESS"; break;
    case CUDA_ERROR_NO_DEVICE: *text = "CUDA_ERROR_NO_DEVICE"; break;
    case CUDA_ERROR_INVALID_CONTEXT: *text = "CUDA_ERROR_INVALID_CONTEXT"; break;
    case CUDA_ERROR_NOT_FOUND: *text = "CUDA_ERROR_NOT_FOUND"; break;
    case CUDA_ERROR_OUT_OF_MEMORY: *text = "CUDA_ERROR_OUT_OF_MEMORY"; break;
    default: *text = "CUDA_ERROR_FAKE"; break;
    }
    return CUDA_SUCCESS;
}

CUresult cuGetErrorString(CUresult error, const char **text) {
    *text = error == CUDA_ERROR_NO_DEVICE ? "no CUDA-capable device is detected" : "fake driver error";
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetCount(int *count) {
    *count = 1;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGet(CUdevice *device, int ordinal) {
    if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
    *device = 0;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetAttribute(int *value, CUdevice_attribute attribute, CUdevice device) {
    (void)device;
    switch (attribute) {
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *value = 9; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *value = 0; break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *value = 132; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK: *value = 49152; break;
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *value = 1024; break;
    default: return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char *name, int length, CUdevice device) {
    (void)device;
    snprintf(name, (size_t)length, "Fake CUDA device");
    return CUDA_SUCCESS;
}

CUresult cuDeviceTotalMem(size_t *bytes, CUdevice device) {
    (void)device;
    *bytes = (size_t)1 << 30;
    return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRetain(CUcontext *context, CUdevice device) {
    (void)device;
    ++stats.contexts_retained;
    *context = &primary;
    return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease(CUdevice device) {
    (void)device;
    --stats.contexts_retained;
    return CUDA_SUCCESS;
}

CUresult cuCtxPushCurrent(CUcontext context) {
    if (depth == 16) return CUDA_ERROR_INVALID_VALUE;
    stack[depth++] = context;
    stats.depth = depth;
    if (depth > stats.max_depth) stats.max_depth = depth;
    return CUDA_SUCCESS;
}

CUresult cuCtxPopCurrent(CUcontext *context) {
    if (depth == 0) {
        ++stats.unbalanced_pops;
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    *context = stack[--depth];
    stats.depth = depth;
    return CUDA_SUCCESS;
}

/* The current context's device: the one device. */
CUresult cuCtxGetDevice(CUdevice *device) {
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    *device = 0;
    return CUDA_SUCCESS;
}

CUresult cuMemAlloc(CUdeviceptr *ptr, size_t bytes) {
    ++stats.allocation_calls;
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    if (bytes == 0) return CUDA_ERROR_INVALID_VALUE;
    for (int i = 0; i < FAKE_MAX_ALLOCATIONS; ++i)
        if (!allocations[i].base) {
            void *p = malloc(bytes);
            if (!p) return CUDA_ERROR_OUT_OF_MEMORY;
            allocations[i].base = (CUdeviceptr)(uintptr_t)p;
            allocations[i].size = bytes;
            allocations[i].owner = stack[depth - 1];
            *ptr = allocations[i].base;
            ++stats.live_allocations;
            return CUDA_SUCCESS;
        }
    return CUDA_ERROR_OUT_OF_MEMORY;
}

CUresult cuMemFree(CUdeviceptr ptr) {
    ++stats.free_calls;
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    for (int i = 0; i < FAKE_MAX_ALLOCATIONS; ++i)
        if (allocations[i].base == ptr && ptr) {
            free((void *)(uintptr_t)ptr);
            allocations[i].base = 0;
            --stats.live_allocations;
            return CUDA_SUCCESS;
        }
    ++stats.bad_pointers;
    return CUDA_ERROR_INVALID_VALUE;
}

CUresult cuMemcpyHtoDAsync(CUdeviceptr dst, const void *src, size_t bytes, CUstream stream) {
    (void)stream;
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    if (find_allocation(dst, bytes) < 0) return ++stats.bad_pointers, CUDA_ERROR_INVALID_VALUE;
    memcpy((void *)(uintptr_t)dst, src, bytes);
    return CUDA_SUCCESS;
}

CUresult cuMemcpyDtoDAsync(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream stream) {
    (void)stream;
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    if (find_allocation(src, bytes) < 0 || find_allocation(dst, bytes) < 0) return ++stats.bad_pointers, CUDA_ERROR_INVALID_VALUE;
    memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, bytes);
    return CUDA_SUCCESS;
}

CUresult cuMemcpyDtoHAsync(void *dst, CUdeviceptr src, size_t bytes, CUstream stream) {
    (void)stream;
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    if (find_allocation(src, bytes) < 0) return ++stats.bad_pointers, CUDA_ERROR_INVALID_VALUE;
    memcpy(dst, (const void *)(uintptr_t)src, bytes);
    return CUDA_SUCCESS;
}

CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char value, size_t count, CUstream stream) {
    (void)stream;
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    if (find_allocation(dst, count) < 0) return ++stats.bad_pointers, CUDA_ERROR_INVALID_VALUE;
    memset((void *)(uintptr_t)dst, value, count);
    return CUDA_SUCCESS;
}

CUresult cuMemGetAddressRange(CUdeviceptr *base, size_t *size, CUdeviceptr ptr) {
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    const int i = find_allocation(ptr, 0);
    if (i < 0 || ptr == allocations[i].base + allocations[i].size) return CUDA_ERROR_NOT_FOUND;
    *base = allocations[i].base;
    *size = allocations[i].size;
    return CUDA_SUCCESS;
}

void *fake_gpu_foreign_allocation(size_t bytes) {
    for (int i = 0; i < FAKE_MAX_ALLOCATIONS; ++i)
        if (!allocations[i].base) {
            void *p = calloc(1, bytes ? bytes : 1);
            if (!p) return NULL;
            allocations[i].base = (CUdeviceptr)(uintptr_t)p;
            allocations[i].size = bytes;
            allocations[i].owner = &other_context;
            return p;
        }
    return NULL;
}

CUresult cuCtxGetCurrent(CUcontext *context) {
    *context = depth ? stack[depth - 1] : NULL;
    return CUDA_SUCCESS;
}

CUresult cuPointerGetAttribute(void *data, CUpointer_attribute attribute, CUdeviceptr ptr) {
    const int i = find_allocation(ptr, 0);
    if (i < 0) return CUDA_ERROR_INVALID_VALUE;
    if (attribute != CU_POINTER_ATTRIBUTE_CONTEXT) return CUDA_ERROR_NOT_SUPPORTED;
    *(CUcontext *)data = allocations[i].owner;
    return CUDA_SUCCESS;
}

CUresult cuModuleLoadData(CUmodule *module, const void *image) {
    ++stats.module_loads;
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    const int is_elf = memcmp(image, "\x7f" "ELF", 4) == 0;
    if (!is_elf && !strstr((const char *)image, ".entry")) return CUDA_ERROR_INVALID_IMAGE;
    struct CUmod_st *m = malloc(sizeof *m);
    if (!m) return CUDA_ERROR_OUT_OF_MEMORY;
    m->is_elf = is_elf;
    ++stats.live_modules;
    stats.elf_modules += is_elf;
    *module = m;
    return CUDA_SUCCESS;
}

CUresult cuModuleUnload(CUmodule module) {
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    free(module);
    --stats.live_modules;
    return CUDA_SUCCESS;
}

/* Functions live as long as the process (a real driver frees them with the module). */
CUresult cuModuleGetFunction(CUfunction *function, CUmodule module, const char *name) {
    (void)module;
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    if (strncmp(name, "mora_", 5) != 0) return CUDA_ERROR_NOT_FOUND;
    struct CUfunc_st *f = calloc(1, sizeof *f);
    if (!f) return CUDA_ERROR_OUT_OF_MEMORY;
    snprintf(f->name, sizeof f->name, "%s", name);
    *function = f;
    return CUDA_SUCCESS;
}

CUresult cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                        unsigned int by, unsigned int bz, unsigned int shared, CUstream stream, void **params,
                        void **extra) {
    (void)shared, (void)extra;
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    if (bx * by * bz > 1024) return CUDA_ERROR_INVALID_VALUE;
    ++stats.launches;
    snprintf(stats.last_entry, sizeof stats.last_entry, "%s", f->name);
    const unsigned dims[6] = {gx, gy, gz, bx, by, bz};
    memcpy(stats.last_dims, dims, sizeof dims);
    stats.last_stream = stream;
    /* The backend ends its parameter array with NULL; each value is copied as 8 raw bytes. */
    stats.last_arg_count = 0;
    for (int i = 0; params && params[i] && i < FAKE_MAX_ARGS; ++i) {
        memcpy(stats.last_args[i], params[i], 8);
        ++stats.last_arg_count;
    }
    return CUDA_SUCCESS;
}

CUresult cuStreamCreate(CUstream *stream, unsigned int flags) {
    (void)flags;
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    struct CUstream_st *s = malloc(sizeof *s);
    if (!s) return CUDA_ERROR_OUT_OF_MEMORY;
    s->id = 1;
    ++stats.live_streams;
    *stream = s;
    return CUDA_SUCCESS;
}

CUresult cuStreamDestroy(CUstream stream) {
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    if (stream == &foreign_stream) return CUDA_ERROR_INVALID_HANDLE;
    free(stream);
    --stats.live_streams;
    return CUDA_SUCCESS;
}

CUresult cuStreamSynchronize(CUstream stream) {
    (void)stream;
    ++stats.synchronizations;
    return CUDA_SUCCESS;
}

CUresult cuStreamGetCtx(CUstream stream, CUcontext *context) {
    if (!stream) return CUDA_ERROR_INVALID_HANDLE;
    *context = stream == &foreign_stream ? &other_context : &primary;
    return CUDA_SUCCESS;
}

CUresult cuEventCreate(CUevent *event, unsigned int flags) {
    (void)flags;
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    struct CUevent_st *e = calloc(1, sizeof *e);
    if (!e) return CUDA_ERROR_OUT_OF_MEMORY;
    ++stats.live_events;
    *event = e;
    return CUDA_SUCCESS;
}

CUresult cuEventRecord(CUevent event, CUstream stream) {
    (void)stream;
    CUresult r = need_context();
    if (r != CUDA_SUCCESS) return r;
    event->recorded = ++stats.events_recorded;
    return CUDA_SUCCESS;
}

CUresult cuEventSynchronize(CUevent event) { return event->recorded ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE; }

CUresult cuEventElapsedTime(float *ms, CUevent start, CUevent end) {
    if (!start->recorded || !end->recorded) return CUDA_ERROR_INVALID_HANDLE;
    *ms = 0.25f * (float)(end->recorded - start->recorded);
    return CUDA_SUCCESS;
}

CUresult cuEventDestroy(CUevent event) {
    free(event);
    --stats.live_events;
    return CUDA_SUCCESS;
}
