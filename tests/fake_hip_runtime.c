/* fake_hip_runtime — a stand-in for libamdhip64.so so the HIP backend's plumbing runs on machines
 * without an AMD GPU (test_backend_fake loads it through MORA_HIP_LIBRARY; hiprtc still comes from
 * the real ROCm). One device, "gfx90a:sramecc+:xnack-", whose memory is host memory: copies and
 * memsets really happen, kernels do not run (a launch is recorded). It checks what a real runtime
 * would refuse or misplace: memory calls while another device is current, frees of unknown
 * pointers, modules that are not an ELF code object. Device 1 exists only to be made current by
 * the test (as a caller using another GPU would). FAKE_HIP_INIT_RESULT=N makes hipInit return N. */
#if !defined(__HIP_PLATFORM_AMD__) && !defined(__HIP_PLATFORM_NVIDIA__)
#define __HIP_PLATFORM_AMD__ 1
#endif
#include <hip/hip_runtime_api.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_gpu.h"

struct ihipModule_t {
    int loaded;
};
struct ihipModuleSymbol_t {
    char name[64];
};
struct ihipStream_t {
    int device;
};
struct ihipEvent_t {
    int recorded;
};

static struct ihipStream_t foreign_stream = {1}; /* a valid stream of device 1 */
static fake_gpu_stats stats;
static int current_device;

#define FAKE_MAX_ALLOCATIONS 256
static struct {
    uintptr_t base;
    size_t size;
    int device;
} allocations[FAKE_MAX_ALLOCATIONS];

fake_gpu_stats *fake_gpu_state(void) { return &stats; }
void *fake_gpu_foreign_stream(void) { return NULL; } /* HIP streams carry no context to check */

static hipError_t need_device(void) {
    if (current_device != 0) {
        ++stats.calls_without_context;
        return hipErrorInvalidDevice;
    }
    return hipSuccess;
}

static int find_allocation(const void *p, size_t n) {
    const uintptr_t a = (uintptr_t)p;
    for (int i = 0; i < FAKE_MAX_ALLOCATIONS; ++i)
        if (allocations[i].base && a >= allocations[i].base && a - allocations[i].base <= allocations[i].size &&
            n <= allocations[i].size - (a - allocations[i].base))
            return i;
    return -1;
}

hipError_t hipInit(unsigned int flags) {
    (void)flags;
    const char *forced = getenv("FAKE_HIP_INIT_RESULT");
    return forced && *forced ? (hipError_t)atoi(forced) : hipSuccess;
}

hipError_t hipGetDeviceCount(int *count) {
    const char *forced = getenv("FAKE_HIP_INIT_RESULT");
    *count = forced && *forced ? 0 : 2;
    return *count ? hipSuccess : hipErrorNoDevice;
}

hipError_t hipGetDeviceProperties(hipDeviceProp_t *props, int device) {
    if (device < 0 || device > 1) return hipErrorInvalidDevice;
    memset(props, 0, sizeof *props);
    snprintf(props->name, sizeof props->name, "Fake HIP device %d", device);
    snprintf(props->gcnArchName, sizeof props->gcnArchName, "gfx90a:sramecc+:xnack-");
    props->multiProcessorCount = 110;
    props->sharedMemPerBlock = 65536;
    props->maxThreadsPerBlock = 1024;
    props->totalGlobalMem = (size_t)64 << 30;
    return hipSuccess;
}

hipError_t hipGetDevice(int *device) {
    *device = current_device;
    return hipSuccess;
}

hipError_t hipSetDevice(int device) {
    if (device < 0 || device > 1) return hipErrorInvalidDevice;
    current_device = device;
    return hipSuccess;
}

hipError_t hipDriverGetVersion(int *version) {
    *version = 50221153;
    return hipSuccess;
}

hipError_t hipRuntimeGetVersion(int *version) {
    *version = 50221153;
    return hipSuccess;
}

const char *hipGetErrorName(hipError_t error) {
    switch (error) {
    case hipSuccess: return "hipSuccess";
    case hipErrorNoDevice: return "hipErrorNoDevice";
    case hipErrorInvalidDevice: return "hipErrorInvalidDevice";
    case hipErrorNotFound: return "hipErrorNotFound";
    default: return "hipErrorFake";
    }
}

const char *hipGetErrorString(hipError_t error) { return error == hipErrorNoDevice ? "no ROCm-capable device is detected" : "fake runtime error"; }

hipError_t hipMalloc(void **ptr, size_t bytes) {
    ++stats.allocation_calls;
    hipError_t e = need_device();
    if (e != hipSuccess) return e;
    if (bytes == 0) return hipErrorInvalidValue;
    for (int i = 0; i < FAKE_MAX_ALLOCATIONS; ++i)
        if (!allocations[i].base) {
            void *p = malloc(bytes);
            if (!p) return hipErrorOutOfMemory;
            allocations[i].base = (uintptr_t)p;
            allocations[i].size = bytes;
            allocations[i].device = current_device;
            *ptr = p;
            ++stats.live_allocations;
            return hipSuccess;
        }
    return hipErrorOutOfMemory;
}

void *fake_gpu_foreign_allocation(size_t bytes) {
    for (int i = 0; i < FAKE_MAX_ALLOCATIONS; ++i)
        if (!allocations[i].base) {
            void *p = calloc(1, bytes ? bytes : 1);
            if (!p) return NULL;
            allocations[i].base = (uintptr_t)p;
            allocations[i].size = bytes;
            allocations[i].device = 1;
            return p;
        }
    return NULL;
}

hipError_t hipPointerGetAttribute(void *data, hipPointer_attribute attribute, hipDeviceptr_t ptr) {
    const int i = find_allocation(ptr, 0);
    if (i < 0) return hipErrorInvalidValue;
    if (attribute != HIP_POINTER_ATTRIBUTE_DEVICE_ORDINAL) return hipErrorNotSupported;
    *(int *)data = allocations[i].device;
    return hipSuccess;
}

hipError_t hipFree(void *ptr) {
    ++stats.free_calls;
    hipError_t e = need_device();
    if (e != hipSuccess) return e;
    for (int i = 0; i < FAKE_MAX_ALLOCATIONS; ++i)
        if (ptr && allocations[i].base == (uintptr_t)ptr) {
            free(ptr);
            allocations[i].base = 0;
            --stats.live_allocations;
            return hipSuccess;
        }
    ++stats.bad_pointers;
    return hipErrorInvalidValue;
}

hipError_t hipMemcpyHtoDAsync(hipDeviceptr_t dst, void *src, size_t bytes, hipStream_t stream) {
    (void)stream;
    hipError_t e = need_device();
    if (e != hipSuccess) return e;
    if (find_allocation(dst, bytes) < 0) return ++stats.bad_pointers, hipErrorInvalidValue;
    memcpy(dst, src, bytes);
    return hipSuccess;
}

hipError_t hipMemcpyDtoDAsync(hipDeviceptr_t dst, hipDeviceptr_t src, size_t bytes, hipStream_t stream) {
    (void)stream;
    hipError_t e = need_device();
    if (e != hipSuccess) return e;
    if (find_allocation(src, bytes) < 0 || find_allocation(dst, bytes) < 0) return ++stats.bad_pointers, hipErrorInvalidValue;
    memmove(dst, src, bytes);
    return hipSuccess;
}

hipError_t hipMemcpyDtoHAsync(void *dst, hipDeviceptr_t src, size_t bytes, hipStream_t stream) {
    (void)stream;
    hipError_t e = need_device();
    if (e != hipSuccess) return e;
    if (find_allocation(src, bytes) < 0) return ++stats.bad_pointers, hipErrorInvalidValue;
    memcpy(dst, src, bytes);
    return hipSuccess;
}

hipError_t hipMemsetD8Async(hipDeviceptr_t dst, unsigned char value, size_t count, hipStream_t stream) {
    (void)stream;
    hipError_t e = need_device();
    if (e != hipSuccess) return e;
    if (find_allocation(dst, count) < 0) return ++stats.bad_pointers, hipErrorInvalidValue;
    memset(dst, value, count);
    return hipSuccess;
}

hipError_t hipMemGetAddressRange(hipDeviceptr_t *base, size_t *size, hipDeviceptr_t ptr) {
    hipError_t e = need_device();
    if (e != hipSuccess) return e;
    const int i = find_allocation(ptr, 0);
    if (i < 0 || (uintptr_t)ptr == allocations[i].base + allocations[i].size) return hipErrorNotFound;
    *base = (hipDeviceptr_t)allocations[i].base;
    *size = allocations[i].size;
    return hipSuccess;
}

hipError_t hipModuleLoadData(hipModule_t *module, const void *image) {
    ++stats.module_loads;
    hipError_t e = need_device();
    if (e != hipSuccess) return e;
    if (memcmp(image, "\x7f" "ELF", 4) != 0) return hipErrorInvalidImage;
    struct ihipModule_t *m = malloc(sizeof *m);
    if (!m) return hipErrorOutOfMemory;
    m->loaded = 1;
    ++stats.live_modules;
    ++stats.elf_modules;
    *module = m;
    return hipSuccess;
}

hipError_t hipModuleUnload(hipModule_t module) {
    free(module);
    --stats.live_modules;
    return hipSuccess;
}

hipError_t hipModuleGetFunction(hipFunction_t *function, hipModule_t module, const char *name) {
    (void)module;
    hipError_t e = need_device();
    if (e != hipSuccess) return e;
    if (strncmp(name, "mora_", 5) != 0) return hipErrorNotFound;
    struct ihipModuleSymbol_t *f = calloc(1, sizeof *f);
    if (!f) return hipErrorOutOfMemory;
    snprintf(f->name, sizeof f->name, "%s", name);
    *function = f;
    return hipSuccess;
}

hipError_t hipModuleLaunchKernel(hipFunction_t f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                                 unsigned int by, unsigned int bz, unsigned int shared, hipStream_t stream,
                                 void **params, void **extra) {
    (void)shared, (void)extra;
    hipError_t e = need_device();
    if (e != hipSuccess) return e;
    if (bx * by * bz > 1024) return hipErrorInvalidValue;
    ++stats.launches;
    snprintf(stats.last_entry, sizeof stats.last_entry, "%s", f->name);
    const unsigned dims[6] = {gx, gy, gz, bx, by, bz};
    memcpy(stats.last_dims, dims, sizeof dims);
    stats.last_stream = stream;
    stats.last_arg_count = 0;
    for (int i = 0; params && params[i] && i < FAKE_MAX_ARGS; ++i) {
        memcpy(stats.last_args[i], params[i], 8);
        ++stats.last_arg_count;
    }
    return hipSuccess;
}

hipError_t hipStreamCreate(hipStream_t *stream) {
    struct ihipStream_t *s = malloc(sizeof *s);
    if (!s) return hipErrorOutOfMemory;
    s->device = current_device;
    ++stats.live_streams;
    *stream = s;
    return hipSuccess;
}

hipError_t hipStreamDestroy(hipStream_t stream) {
    if (stream == &foreign_stream) return hipErrorInvalidHandle;
    free(stream);
    --stats.live_streams;
    return hipSuccess;
}

hipError_t hipStreamSynchronize(hipStream_t stream) {
    (void)stream;
    ++stats.synchronizations;
    return hipSuccess;
}

hipError_t hipStreamQuery(hipStream_t stream) { return stream ? hipSuccess : hipErrorInvalidHandle; }

hipError_t hipEventCreate(hipEvent_t *event) {
    struct ihipEvent_t *ev = calloc(1, sizeof *ev);
    if (!ev) return hipErrorOutOfMemory;
    ++stats.live_events;
    *event = ev;
    return hipSuccess;
}

hipError_t hipEventRecord(hipEvent_t event, hipStream_t stream) {
    (void)stream;
    event->recorded = ++stats.events_recorded;
    return hipSuccess;
}

hipError_t hipEventSynchronize(hipEvent_t event) { return event->recorded ? hipSuccess : hipErrorInvalidHandle; }

hipError_t hipEventElapsedTime(float *ms, hipEvent_t start, hipEvent_t stop) {
    if (!start->recorded || !stop->recorded) return hipErrorInvalidHandle;
    *ms = 0.25f * (float)(stop->recorded - start->recorded);
    return hipSuccess;
}

hipError_t hipEventDestroy(hipEvent_t event) {
    free(event);
    --stats.live_events;
    return hipSuccess;
}
