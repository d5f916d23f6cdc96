/* Internal: the core of the "module driver" backends, CUDA (the driver API) and HIP (the module API,
 * which mirrors it). Both drive a device the same way: buffers are device addresses stored in a
 * void *; a program is a module loaded from the image a runtime compiler made (kept for the kernels
 * cache); a kernel is a function of a module, launched on a stream with an array of pointers to its
 * arguments; timing is events on the stream; every call makes the context current and then restores
 * what the caller had. backend_module.c implements the whole mora_backend_i once, over a
 * mora_module_driver: the small table of what differs between the two drivers. backend_cuda.c and
 * backend_hip.c load their library, open a device (contexts, device description, the compiler's
 * target) and fill the table. */
#ifndef MORA_RUNTIME_BACKEND_MODULE_H
#define MORA_RUNTIME_BACKEND_MODULE_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "rtc.h"

typedef struct mora_module_driver mora_module_driver;

/* What the core keeps of an open context. A backend's context begins with one (the core frees the
 * whole of it). */
typedef struct mora_module_ctx {
    const mora_module_driver *driver;
    int ordinal;             /* the device's ordinal (HIP: its device) */
    void *own_stream;        /* the stream the context made */
    void *stream;            /* own_stream, or the caller's adopted one */
    char target[256];        /* what the compiler compiles for: "sm_90", "gfx90a:sramecc+:xnack-" */
    char compiler[96];       /* "NVRTC 13.0", "hiprtc 5.2.21153 (comgr 2.4)" */
    char driver_version[96]; /* "CUDA 13.0", "HIP runtime 5.2.21153": said when an image is refused */
} mora_module_ctx;

/* A module driver's table. The calls from make_current on make one driver call each and return
 * MORA_OK, or a status (MORA_E_DEVICE; MORA_E_NO_MEMORY for the driver's out-of-memory) with the
 * sentence "<name>: <call> failed: <error name> (<error text>)", to which the core adds what it knows
 * (sizes, entry, grid and block); the void ones report nothing. Device addresses, streams, events,
 * modules and functions travel as void *. */
struct mora_module_driver {
    /* the interface: MORA_MODULE_BACKEND(name, dialect, device_info) */
    mora_backend_i backend;
    /* what sentences call the compiler's binary: "CUBIN", "code object" */
    const char *binary_kind;
    /* compile a source for the context's target (mora_nvrtc_compile, mora_hiprtc_compile) */
    mora_status (*compile)(const char *source, const char *arch, const char *const *extra, int extra_count,
                           mora_rtc_output *out);
    /* (optional) refuse a caller's stream (not NULL) that the context cannot adopt: MORA_E_ARG */
    mora_status (*check_stream)(const mora_module_ctx *c, void *stream);
    /* (optional) release what the backend holds besides the core's (CUDA: the retained primary context) */
    void (*close)(mora_module_ctx *c);

    /* make the context's CUDA context or HIP device current on this thread; *saved: what restore needs */
    mora_status (*make_current)(const mora_module_ctx *c, int *saved);
    /* make current again what was current before make_current */
    void (*restore)(const mora_module_ctx *c, int saved);
    /* allocate `bytes` (>= 1) of device memory */
    mora_status (*alloc)(void **buf, size_t bytes);
    /* free an allocation */
    mora_status (*free)(void *buf);
    /* enqueue a copy from host memory to device memory */
    mora_status (*write)(void *dst, const void *src, size_t bytes, void *stream);
    /* enqueue a copy from device memory to host memory */
    mora_status (*read)(void *dst, const void *src, size_t bytes, void *stream);
    /* enqueue a copy between device addresses */
    mora_status (*copy)(void *dst, const void *src, size_t bytes, void *stream);
    /* enqueue setting `bytes` of device memory to zero */
    mora_status (*zero)(void *buf, size_t bytes, void *stream);
    /* the allocation an address lies in: MORA_E_ARG naming the address when it is none of the driver's */
    mora_status (*address_range)(uintptr_t *base, size_t *size, const void *ptr);
    /* load a module from an image (CUBIN, PTX text with its NUL, code object) */
    mora_status (*module_load)(void **module, const void *image);
    /* unload a module (nothing to report) */
    void (*module_unload)(void *module);
    /* the function of a module named `entry` */
    mora_status (*module_function)(void **function, void *module, const char *entry);
    /* enqueue a launch of grid blocks of block threads; params[i] points at argument i's value */
    mora_status (*launch)(void *function, const unsigned grid[3], const unsigned block[3], void *stream,
                          void **params);
    /* make a stream */
    mora_status (*stream_create)(void **stream);
    /* destroy a stream (nothing to report) */
    void (*stream_destroy)(void *stream);
    /* wait until everything enqueued on a stream has finished */
    mora_status (*stream_synchronize)(void *stream);
    /* make an event */
    mora_status (*event_create)(void **event);
    /* record an event on a stream */
    mora_status (*event_record)(void *event, void *stream);
    /* wait until a recorded event has happened */
    mora_status (*event_synchronize)(void *event);
    /* milliseconds between two events that have happened */
    mora_status (*event_elapsed)(float *ms, void *start, void *end);
    /* destroy an event (nothing to report) */
    void (*event_destroy)(void *event);
};

/* The driver calls of a backend whose functions are named <prefix>_<member>: cu_alloc, hip_alloc. */
#define MORA_MODULE_DRIVER_CALLS(p)                                                                                   \
    .make_current = p##_make_current, .restore = p##_restore, .alloc = p##_alloc, .free = p##_free,                   \
    .write = p##_write, .read = p##_read, .copy = p##_copy, .zero = p##_zero, .address_range = p##_address_range,     \
    .module_load = p##_module_load, .module_unload = p##_module_unload, .module_function = p##_module_function,       \
    .launch = p##_launch, .stream_create = p##_stream_create, .stream_destroy = p##_stream_destroy,                   \
    .stream_synchronize = p##_stream_synchronize, .event_create = p##_event_create,                                   \
    .event_record = p##_event_record, .event_synchronize = p##_event_synchronize,                                     \
    .event_elapsed = p##_event_elapsed, .event_destroy = p##_event_destroy

/* The driver calls that HIP names and declares as CUDA does, but for the prefix and the handle types
 * (cuModuleUnload(CUmodule) is hipModuleUnload(hipModule_t)): defines <prefix>_module_load,
 * _module_unload, _module_function, _stream_destroy, _stream_synchronize, _event_record,
 * _event_synchronize, _event_elapsed and _event_destroy over api.<prefix>ModuleLoadData ..., whose
 * results <prefix>_check(result, "<call>") turns into a status. */
#define MORA_MODULE_MIRRORED_CALLS(api, prefix, module_type, function_type)                                           \
    static mora_status prefix##_module_load(void **module, const void *image) {                                       \
        module_type loaded = NULL;                                                                                    \
        MORA_TRY(prefix##_check(api.prefix##ModuleLoadData(&loaded, image), #prefix "ModuleLoadData"));               \
        *module = loaded;                                                                                             \
        return MORA_OK;                                                                                               \
    }                                                                                                                 \
    static void prefix##_module_unload(void *module) { api.prefix##ModuleUnload(module); }                            \
    static mora_status prefix##_module_function(void **function, void *module, const char *entry) {                   \
        function_type found = NULL;                                                                                   \
        MORA_TRY(prefix##_check(api.prefix##ModuleGetFunction(&found, module, entry), #prefix "ModuleGetFunction"));  \
        *function = found;                                                                                            \
        return MORA_OK;                                                                                               \
    }                                                                                                                 \
    static void prefix##_stream_destroy(void *stream) { api.prefix##StreamDestroy(stream); }                          \
    static mora_status prefix##_stream_synchronize(void *stream) {                                                    \
        return prefix##_check(api.prefix##StreamSynchronize(stream), #prefix "StreamSynchronize");                    \
    }                                                                                                                 \
    static mora_status prefix##_event_record(void *event, void *stream) {                                             \
        return prefix##_check(api.prefix##EventRecord(event, stream), #prefix "EventRecord");                         \
    }                                                                                                                 \
    static mora_status prefix##_event_synchronize(void *event) {                                                      \
        return prefix##_check(api.prefix##EventSynchronize(event), #prefix "EventSynchronize");                       \
    }                                                                                                                 \
    static mora_status prefix##_event_elapsed(float *ms, void *start, void *end) {                                    \
        return prefix##_check(api.prefix##EventElapsedTime(ms, start, end), #prefix "EventElapsedTime");              \
    }                                                                                                                 \
    static void prefix##_event_destroy(void *event) { api.prefix##EventDestroy(event); }

/* The core's implementation of every mora_backend_i member but device_info (the backend's own):
 * mora_module_<member>, declared with the member's own type. */
#define MORA_MODULE_MEMBERS(X)                                                                                        \
    X(destroy) X(buffer_alloc) X(buffer_free) X(buffer_write) X(buffer_read) X(buffer_size) X(buffer_zero)            \
    X(buffer_copy) X(program_build) X(program_free) X(program_binary) X(program_from_binary) X(kernel_create)         \
    X(kernel_free) X(launch) X(synchronize) X(set_stream) X(event_record) X(event_elapsed_ms) X(event_free)
#define MORA_MODULE_DECLARE_(member) extern __typeof__(*((mora_backend_i *)0)->member) mora_module_##member;
MORA_MODULE_MEMBERS(MORA_MODULE_DECLARE_)
#undef MORA_MODULE_DECLARE_

/* The interface of a module driver's backend: the core's functions, the backend's device_info
 * (buffer_view and view_free stay NULL: buffers are addresses, and buf + offset is a view). */
#define MORA_MODULE_INIT_(member) .member = mora_module_##member,
#define MORA_MODULE_BACKEND(name_, dialect_, device_info_)                                                            \
    {                                                                                                                 \
        .version = MORA_BACKEND_INTERFACE_VERSION, .name = (name_), .dialect = (dialect_),                            \
        .device_info = (device_info_), MORA_MODULE_MEMBERS(MORA_MODULE_INIT_)                                         \
    }

/* Finishes opening a context whose backend has set driver, ordinal, target, compiler and
 * driver_version and made the device usable: makes the context's stream (failing: MORA_E_NO_BACKEND),
 * adopts `queue` when not NULL, and returns the interface and the context. On failure the context
 * is destroyed. */
mora_status mora_module_start(mora_module_ctx *c, void *queue, const mora_backend_i **iface, void **ctx);

#endif
