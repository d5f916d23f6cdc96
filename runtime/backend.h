/* Internal: the backend interface. A backend is a struct of function pointers plus a context
 * pointer (the model is ggml's ggml_backend_i). One file per backend implements it:
 * backend_cpu.c, backend_opencl.c, backend_cuda.c, backend_hip.c.
 *
 * Every backend compiles and launches programs through the same members: the GPU backends' sources
 * are OpenCL C, CUDA C++ or HIP C++; the cpu backend's are in the host dialect, whose "program" is
 * the constants of a spec (shape, dtype, parameters as #define lines) and whose entry points are its
 * built-in kernels (runtime/cpu_kernels.h) run on host pointers. Members marked (optional) may be
 * NULL. Backends know nothing of code generation: they compile and launch whatever source they are
 * given. Layers above call them through the wrappers of context.h, never through the table. */
#ifndef MORA_RUNTIME_BACKEND_H
#define MORA_RUNTIME_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "mora.h"

#define MORA_BACKEND_INTERFACE_VERSION 3

/* The source language a backend compiles: codegen emits one dialect per backend. */
typedef enum mora_dialect {
    MORA_DIALECT_OPENCL = 0,
    MORA_DIALECT_CUDA = 1,
    MORA_DIALECT_HIP = 2,
    MORA_DIALECT_HOST = 3 /* the cpu backend: a spec's constants configuring its built-in kernels */
} mora_dialect;
#define MORA_DIALECT_COUNT 4

typedef struct mora_device_info {
    char name[256];             /* "NVIDIA H200", "pthread-skylake-avx512" */
    char vendor[128];           /* "NVIDIA Corporation", "The pocl project" */
    char arch[64];              /* "sm_90", "gfx942", OpenCL device version for OpenCL */
    char driver_version[128];   /* driver / runtime version string */
    char compiler_version[128]; /* NVRTC / hiprtc / OpenCL C version */
    int compute_units;          /* SMs, CUs, or OpenCL compute units */
    size_t local_mem_bytes;     /* shared / local memory per work-group */
    size_t max_work_group;      /* work-items per work-group */
    uint64_t global_mem_bytes;  /* device memory */
    int is_cpu;                 /* 1 when the device is the host's CPU (cpu backend, PoCL): picks smaller defaults */
    unsigned libraries;         /* bit (1 << provider) per library GEMM the device's kernels can call (the cpu
                                   backend: runtime/cpu_gemm.h); the tuner times only those */
} mora_device_info;

/* A kernel argument: a device buffer (the backend's native handle), a 64-bit integer or a float. */
typedef enum mora_arg_kind { MORA_ARG_BUFFER = 0, MORA_ARG_I64 = 1, MORA_ARG_F32 = 2 } mora_arg_kind;
typedef struct mora_kernel_arg {
    mora_arg_kind kind;
    union {
        const void *buffer;
        int64_t i64;
        float f32;
    } value;
} mora_kernel_arg;

#define MORA_ARG_BUF(b) ((mora_kernel_arg){MORA_ARG_BUFFER, {.buffer = (b)}})
#define MORA_ARG_INT(v) ((mora_kernel_arg){MORA_ARG_I64, {.i64 = (v)}})
#define MORA_ARG_FLOAT(v) ((mora_kernel_arg){MORA_ARG_F32, {.f32 = (v)}})

typedef struct mora_backend_i {
    /* MORA_BACKEND_INTERFACE_VERSION the backend was written against */
    int version;
    /* "cpu", "opencl", "cuda", "hip" */
    const char *name;
    /* the dialect of the sources it compiles */
    mora_dialect dialect;

    /* release the backend context and everything it still holds */
    void (*destroy)(void *ctx);
    /* describe the device the context was opened on */
    mora_status (*device_info)(void *ctx, mora_device_info *info);

    /* device buffers: allocate (contents undefined), free, copy from / to host memory */
    mora_status (*buffer_alloc)(void *ctx, size_t bytes, void **buf);
    mora_status (*buffer_free)(void *ctx, void *buf);
    mora_status (*buffer_write)(void *ctx, void *buf, size_t offset, const void *src, size_t bytes);
    mora_status (*buffer_read)(void *ctx, const void *buf, size_t offset, void *dst, size_t bytes);
    /* (optional) size in bytes of a buffer, used to reject calls that would overrun a caller's buffer;
     * MORA_E_ARG for a buffer the backend can tell belongs to another context */
    mora_status (*buffer_size)(void *ctx, const void *buf, size_t *bytes);
    /* (optional) where a buffer lies, for the alias checks: the allocation it is part of (*root; OpenCL:
     * a sub-buffer's parent, else the buffer) and its byte offset there. NULL: buffers are addresses
     * (root NULL, the offset the address itself) */
    mora_status (*buffer_origin)(void *ctx, const void *buf, const void **root, uint64_t *offset);
    /* set `bytes` bytes of a buffer to zero */
    mora_status (*buffer_zero)(void *ctx, void *buf, size_t bytes);
    /* (optional) a handle of bytes [offset, offset + bytes) of a buffer that works wherever a buffer
     * does (OpenCL: a sub-buffer, offset a multiple of the device's base address alignment); NULL:
     * buffers are addresses, and buf + offset is the view */
    mora_status (*buffer_view)(void *ctx, void *buf, size_t offset, size_t bytes, void **view);
    /* (optional, with buffer_view) release a view (the buffer stays) */
    void (*view_free)(void *ctx, void *view);

    /* compile a source; on failure MORA_E_COMPILE with the compiler log in mora_last_error() */
    mora_status (*program_build)(void *ctx, const char *source, void **program);
    /* release a compiled program */
    void (*program_free)(void *ctx, void *program);
    /* (optional) the device binary of a built program (malloc'd), for the kernels cache */
    mora_status (*program_binary)(void *ctx, void *program, void **data, size_t *size);
    /* (optional) a program from a binary that program_binary gave on the same device and driver */
    mora_status (*program_from_binary)(void *ctx, const void *data, size_t size, void **program);
    /* a launchable handle of entry point `entry` of a program. Every caller gets its own handle: an
     * OpenCL kernel object carries its arguments, so two owners launching one handle at once would
     * race between setting arguments and enqueueing. The program must outlive the handle. */
    mora_status (*kernel_create)(void *ctx, void *program, const char *entry, void **kernel);
    /* release a handle */
    void (*kernel_free)(void *ctx, void *kernel);
    /* enqueue a kernel on the context's stream/queue: groups[d] work-groups of local[d] work-items in
     * each dimension d, with the arguments of the entry's declared list (codegen/kernels.c). Never
     * allocates device memory, compiles or synchronises. One handle must not be launched from two
     * threads at once. (The cpu backend runs the kernel on the calling thread and its workers
     * before returning.) */
    mora_status (*launch)(void *ctx, void *kernel, const size_t groups[3], const size_t local[3],
                          const mora_kernel_arg *args, int arg_count);

    /* wait until everything enqueued has finished */
    mora_status (*synchronize)(void *ctx);
    /* adopt the caller's native stream/queue (NULL: back to the context's own; a backend without
     * streams accepts only NULL) */
    mora_status (*set_stream)(void *ctx, void *native_stream);

    /* (optional) timing: record an event on the stream now; milliseconds between two recorded events
     * (waits for the later one); release an event */
    mora_status (*event_record)(void *ctx, void **event);
    mora_status (*event_elapsed_ms)(void *ctx, void *start, void *end, double *ms);
    void (*event_free)(void *ctx, void *event);

    /* (optional) enqueue a copy of `bytes` bytes from src + src_offset to dst + dst_offset, both device
     * buffers of this context (regions must not overlap); ordered on the stream like a launch */
    mora_status (*buffer_copy)(void *ctx, const void *src, size_t src_offset, void *dst, size_t dst_offset,
                               size_t bytes);
} mora_backend_i;

/* The application's own device objects a context is made around (NULL members: the backend's own). */
typedef struct mora_native_objects {
    void *context; /* cl_context / CUcontext (NULL: the device's primary context) */
    void *device;  /* cl_device_id (OpenCL; must belong to context) */
    void *queue;   /* cl_command_queue / CUstream / hipStream_t adopted at once (NULL: the context's own) */
} mora_native_objects;

/* Opens device `device` of a backend, or (native != NULL) wraps the application's objects, which
 * the caller keeps alive for the context's lifetime. On failure (no driver, no device) returns
 * MORA_E_NO_BACKEND with the reason in mora_last_error(); nothing is left open. */
typedef mora_status (*mora_backend_open_fn)(int device, const mora_native_objects *native, const mora_backend_i **iface,
                                            void **ctx);

mora_status mora_backend_cpu_open(int device, const mora_native_objects *native, const mora_backend_i **iface, void **ctx);
mora_status mora_backend_opencl_open(int device, const mora_native_objects *native, const mora_backend_i **iface,
                                     void **ctx);
mora_status mora_backend_cuda_open(int device, const mora_native_objects *native, const mora_backend_i **iface,
                                   void **ctx);
mora_status mora_backend_hip_open(int device, const mora_native_objects *native, const mora_backend_i **iface,
                                  void **ctx);

#endif
