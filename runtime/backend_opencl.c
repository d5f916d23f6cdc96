/* The OpenCL backend. The ICD loader (libOpenCL.so.1) is dlopen()ed once per process and stays
 * loaded (unloading it strands the platforms' own allocations), so a build with this backend runs
 * on machines without OpenCL: opening then fails with MORA_E_NO_BACKEND and the reason.
 * Buffers are cl_mem; programs are built from generated OpenCL C 1.2 source; the context's own
 * queue has profiling enabled so events can time kernels. A context may instead wrap the
 * application's cl_context, device and queue. Queues must be in-order: the two-kernel kinds
 * (gemm → gather, partial sums → reduce) rely on it. */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "error.h"

/* Every entry point we use, resolved from the loader. */
#define CL_FUNCTIONS(X)                                                                              \
    X(clGetPlatformIDs) X(clGetPlatformInfo) X(clGetDeviceIDs) X(clGetDeviceInfo) X(clCreateContext)   \
    X(clReleaseContext) X(clCreateCommandQueue) X(clReleaseCommandQueue) X(clCreateBuffer)             \
    X(clReleaseMemObject) X(clGetMemObjectInfo) X(clEnqueueWriteBuffer) X(clEnqueueReadBuffer)         \
    X(clEnqueueFillBuffer) X(clCreateProgramWithSource) X(clBuildProgram) X(clGetProgramBuildInfo)     \
    X(clReleaseProgram) X(clCreateKernel) X(clReleaseKernel) X(clSetKernelArg) X(clEnqueueNDRangeKernel) \
    X(clFinish) X(clEnqueueMarkerWithWaitList) X(clWaitForEvents) X(clGetEventProfilingInfo)           \
    X(clReleaseEvent) X(clRetainCommandQueue) X(clGetCommandQueueInfo) X(clGetProgramInfo)           \
    X(clEnqueueCopyBuffer) X(clCreateProgramWithBinary) X(clRetainContext) X(clGetContextInfo) X(clCreateSubBuffer)

typedef struct cl_api {
    void *library;
#define CL_API_MEMBER(f) __typeof__(&f) f;
    CL_FUNCTIONS(CL_API_MEMBER)
#undef CL_API_MEMBER
} cl_api;

/* The loader, resolved once per process (cl_once); cl_why says why when it could not be. */
static cl_api cl_loaded;
static pthread_once_t cl_once = PTHREAD_ONCE_INIT;
static char cl_why[512];

typedef struct opencl_ctx {
    cl_api cl; /* a copy of cl_loaded */
    cl_device_id device;
    cl_context context;
    cl_command_queue own_queue;
    cl_command_queue queue; /* own_queue, or the caller's adopted queue */
} opencl_ctx;

/* A built program. */
typedef struct opencl_program {
    cl_program program;
} opencl_program;

/* A kernel object of one owner, and its entry name for error messages. */
typedef struct opencl_kernel {
    cl_kernel kernel;
    char name[64];
} opencl_kernel;

static mora_status cl_error(cl_int err, const char *what) {
    return mora_fail(err == CL_OUT_OF_HOST_MEMORY || err == CL_MEM_OBJECT_ALLOCATION_FAILURE ||
                             err == CL_OUT_OF_RESOURCES
                         ? MORA_E_NO_MEMORY
                         : MORA_E_DEVICE,
                     "opencl: %s failed with error %d", what, (int)err);
}

static mora_status api_load_now(cl_api *api) {
    const char *override = getenv("MORA_OPENCL_LIBRARY");
    const char *candidates[] = {override, "libOpenCL.so.1", "libOpenCL.so"};
    const char *last = "";
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates && !api->library; ++i) {
        if (!candidates[i] || !*candidates[i]) continue;
        api->library = dlopen(candidates[i], RTLD_NOW | RTLD_LOCAL);
        if (!api->library) last = dlerror();
    }
    if (!api->library)
        return mora_fail(MORA_E_NO_BACKEND,
                         "opencl: the OpenCL ICD loader (libOpenCL.so.1) could not be loaded: %s "
                         "(Debian: apt-get install ocl-icd-libopencl1 pocl-opencl-icd)",
                         last ? last : "not found");
#define CL_API_RESOLVE(f)                                                                        \
    api->f = (__typeof__(&f))dlsym(api->library, #f);                                            \
    if (!api->f) {                                                                               \
        dlclose(api->library);                                                                   \
        api->library = NULL;                                                                     \
        return mora_fail(MORA_E_NO_BACKEND, "opencl: the loader lacks %s (OpenCL 1.2 needed)", #f); \
    }
    CL_FUNCTIONS(CL_API_RESOLVE)
#undef CL_API_RESOLVE
    return MORA_OK;
}

static void api_load_once(void) {
    if (api_load_now(&cl_loaded) != MORA_OK) snprintf(cl_why, sizeof cl_why, "%s", mora_last_error());
}

static mora_status api_load(cl_api *api) {
    pthread_once(&cl_once, api_load_once);
    if (!cl_loaded.library) return mora_fail(MORA_E_NO_BACKEND, "%s", cl_why);
    *api = cl_loaded;
    return MORA_OK;
}

static void opencl_destroy(void *vctx) {
    opencl_ctx *c = vctx;
    if (!c) return;
    if (c->own_queue) c->cl.clReleaseCommandQueue(c->own_queue);
    if (c->queue && c->queue != c->own_queue) c->cl.clReleaseCommandQueue(c->queue);
    if (c->context) c->cl.clReleaseContext(c->context); /* ours, or our retain of the caller's */
    free(c);
}

static void device_string(opencl_ctx *c, cl_device_info what, char *out, size_t size) {
    out[0] = '\0';
    if (c->cl.clGetDeviceInfo(c->device, what, size, out, NULL) != CL_SUCCESS) out[0] = '\0';
    out[size - 1] = '\0';
}

static mora_status opencl_device_info(void *vctx, mora_device_info *info) {
    opencl_ctx *c = vctx;
    memset(info, 0, sizeof *info);
    device_string(c, CL_DEVICE_NAME, info->name, sizeof info->name);
    device_string(c, CL_DEVICE_VENDOR, info->vendor, sizeof info->vendor);
    device_string(c, CL_DEVICE_VERSION, info->arch, sizeof info->arch);
    device_string(c, CL_DRIVER_VERSION, info->driver_version, sizeof info->driver_version);
    device_string(c, CL_DEVICE_OPENCL_C_VERSION, info->compiler_version, sizeof info->compiler_version);
    cl_uint units = 0;
    cl_ulong local = 0, global = 0;
    size_t group = 0;
    c->cl.clGetDeviceInfo(c->device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof units, &units, NULL);
    c->cl.clGetDeviceInfo(c->device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local, &local, NULL);
    c->cl.clGetDeviceInfo(c->device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof global, &global, NULL);
    c->cl.clGetDeviceInfo(c->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof group, &group, NULL);
    info->compute_units = (int)units;
    info->local_mem_bytes = (size_t)local;
    info->global_mem_bytes = (uint64_t)global;
    info->max_work_group = group;
    cl_device_type type = 0;
    c->cl.clGetDeviceInfo(c->device, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    info->is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
    return MORA_OK;
}

static mora_status opencl_buffer_alloc(void *vctx, size_t bytes, void **buf) {
    opencl_ctx *c = vctx;
    cl_ulong largest = 0; /* one allocation's limit: beyond it clCreateBuffer says "invalid size", which is no memory */
    if (c->cl.clGetDeviceInfo(c->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof largest, &largest, NULL) == CL_SUCCESS &&
        largest > 0 && (cl_ulong)bytes > largest)
        return mora_fail(MORA_E_NO_MEMORY, "bytes=%zu: more than the device's largest allocation, %llu bytes", bytes,
                         (unsigned long long)largest);
    cl_int err = CL_SUCCESS;
    cl_mem mem = c->cl.clCreateBuffer(c->context, CL_MEM_READ_WRITE, bytes ? bytes : 1, NULL, &err);
    if (err != CL_SUCCESS || !mem) {
        mora_status st = cl_error(err, "clCreateBuffer");
        char detail[96];
        snprintf(detail, sizeof detail, " (bytes=%zu)", bytes);
        mora_error_append(detail);
        return st;
    }
    *buf = mem;
    return MORA_OK;
}

static mora_status opencl_buffer_free(void *vctx, void *buf) {
    opencl_ctx *c = vctx;
    const cl_int err = c->cl.clReleaseMemObject((cl_mem)buf);
    return err == CL_SUCCESS ? MORA_OK : cl_error(err, "clReleaseMemObject");
}

static mora_status opencl_buffer_write(void *vctx, void *buf, size_t offset, const void *src, size_t bytes) {
    opencl_ctx *c = vctx;
    if (bytes == 0) return MORA_OK;
    const cl_int err = c->cl.clEnqueueWriteBuffer(c->queue, (cl_mem)buf, CL_TRUE, offset, bytes, src, 0, NULL, NULL);
    return err == CL_SUCCESS ? MORA_OK : cl_error(err, "clEnqueueWriteBuffer");
}

static mora_status opencl_buffer_read(void *vctx, const void *buf, size_t offset, void *dst, size_t bytes) {
    opencl_ctx *c = vctx;
    if (bytes == 0) return MORA_OK;
    const cl_int err = c->cl.clEnqueueReadBuffer(c->queue, (cl_mem)buf, CL_TRUE, offset, bytes, dst, 0, NULL, NULL);
    return err == CL_SUCCESS ? MORA_OK : cl_error(err, "clEnqueueReadBuffer");
}

/* A cl_mem's property; CL_INVALID_MEM_OBJECT is the caller's argument, not the device's failure. */
static mora_status mem_info(const opencl_ctx *c, const void *buf, cl_mem_info what, size_t size, void *value,
                            const char *call) {
    const cl_int err = c->cl.clGetMemObjectInfo((cl_mem)buf, what, size, value, NULL);
    if (err == CL_INVALID_MEM_OBJECT) return mora_fail(MORA_E_ARG, "buffer %p: not a cl_mem of this platform", buf);
    return err == CL_SUCCESS ? MORA_OK : cl_error(err, call);
}

/* The size, after the check that the buffer is of this context's cl_context: a kernel launched
 * with another context's buffer is undefined in OpenCL (PoCL runs it on the other buffer). */
static mora_status opencl_buffer_size(void *vctx, const void *buf, size_t *bytes) {
    opencl_ctx *c = vctx;
    cl_context owner = NULL;
    MORA_TRY(mem_info(c, buf, CL_MEM_CONTEXT, sizeof owner, &owner, "clGetMemObjectInfo(CL_MEM_CONTEXT)"));
    if (owner != c->context)
        return mora_fail(MORA_E_ARG, "buffer %p: belongs to another cl_context (%p) than this context's (%p)", buf,
                         (void *)owner, (void *)c->context);
    return mem_info(c, buf, CL_MEM_SIZE, sizeof *bytes, bytes, "clGetMemObjectInfo(CL_MEM_SIZE)");
}

/* A sub-buffer lies in its parent at CL_MEM_OFFSET; a buffer is its own root. */
static mora_status opencl_buffer_origin(void *vctx, const void *buf, const void **root, uint64_t *offset) {
    opencl_ctx *c = vctx;
    cl_mem parent = NULL;
    size_t at = 0;
    MORA_TRY(mem_info(c, buf, CL_MEM_ASSOCIATED_MEMOBJECT, sizeof parent, &parent,
                      "clGetMemObjectInfo(CL_MEM_ASSOCIATED_MEMOBJECT)"));
    if (parent) MORA_TRY(mem_info(c, buf, CL_MEM_OFFSET, sizeof at, &at, "clGetMemObjectInfo(CL_MEM_OFFSET)"));
    *root = parent ? (const void *)parent : buf;
    *offset = (uint64_t)at;
    return MORA_OK;
}

static mora_status opencl_buffer_zero(void *vctx, void *buf, size_t bytes) {
    opencl_ctx *c = vctx;
    if (bytes == 0) return MORA_OK;
    const cl_uchar zero = 0;
    const cl_int err = c->cl.clEnqueueFillBuffer(c->queue, (cl_mem)buf, &zero, 1, 0, bytes, 0, NULL, NULL);
    return err == CL_SUCCESS ? MORA_OK : cl_error(err, "clEnqueueFillBuffer");
}

static mora_status opencl_buffer_view(void *vctx, void *buf, size_t offset, size_t bytes, void **view) {
    opencl_ctx *c = vctx;
    const cl_buffer_region region = {offset, bytes};
    cl_int err = CL_SUCCESS;
    cl_mem sub = c->cl.clCreateSubBuffer((cl_mem)buf, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &region, &err);
    if (err == CL_MISALIGNED_SUB_BUFFER_OFFSET)
        return mora_fail(MORA_E_ARG, "opencl: a view at byte %zu is not aligned to the device's base address alignment",
                         offset);
    if (err != CL_SUCCESS) return cl_error(err, "clCreateSubBuffer");
    *view = sub;
    return MORA_OK;
}

static void opencl_view_free(void *vctx, void *view) {
    opencl_ctx *c = vctx;
    if (view) c->cl.clReleaseMemObject((cl_mem)view);
}

static mora_status build_program(opencl_ctx *c, cl_program prog);
static mora_status wrap_program(opencl_ctx *c, cl_program prog, void **program);

static mora_status opencl_buffer_copy(void *vctx, const void *src, size_t src_offset, void *dst, size_t dst_offset,
                                      size_t bytes) {
    opencl_ctx *c = vctx;
    if (bytes == 0) return MORA_OK;
    const cl_int err =
        c->cl.clEnqueueCopyBuffer(c->queue, (cl_mem)src, (cl_mem)dst, src_offset, dst_offset, bytes, 0, NULL, NULL);
    return err == CL_SUCCESS ? MORA_OK : cl_error(err, "clEnqueueCopyBuffer");
}

static mora_status opencl_program_build(void *vctx, const char *source, void **program) {
    opencl_ctx *c = vctx;
    cl_int err = CL_SUCCESS;
    cl_program prog = c->cl.clCreateProgramWithSource(c->context, 1, &source, NULL, &err);
    if (err != CL_SUCCESS) return cl_error(err, "clCreateProgramWithSource");
    const mora_status st = build_program(c, prog);
    if (st != MORA_OK) {
        c->cl.clReleaseProgram(prog);
        return st;
    }
    return wrap_program(c, prog, program);
}

/* The build options every program gets (part of the binary cache key through the source hash's
 * companion: they never change without a library version change). */
#define OPENCL_BUILD_OPTIONS "-cl-std=CL1.2"

/* Builds prog for the device; on failure MORA_E_COMPILE with the build log. */
static mora_status build_program(opencl_ctx *c, cl_program prog) {
    const cl_int err = c->cl.clBuildProgram(prog, 1, &c->device, OPENCL_BUILD_OPTIONS, NULL, NULL);
    if (err == CL_SUCCESS) return MORA_OK;
    size_t log_size = 0;
    c->cl.clGetProgramBuildInfo(prog, c->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &log_size);
    char *log = malloc(log_size + 1);
    if (log) {
        log[0] = '\0';
        c->cl.clGetProgramBuildInfo(prog, c->device, CL_PROGRAM_BUILD_LOG, log_size, log, NULL);
        log[log_size] = '\0';
    }
    mora_fail(MORA_E_COMPILE, "opencl: clBuildProgram failed with error %d; build log:\n", (int)err);
    mora_error_append(log ? log : "(no log)");
    free(log);
    return MORA_E_COMPILE;
}

static mora_status wrap_program(opencl_ctx *c, cl_program prog, void **program) {
    opencl_program *p = calloc(1, sizeof *p);
    if (!p) {
        c->cl.clReleaseProgram(prog);
        return mora_fail(MORA_E_NO_MEMORY, "opencl: out of host memory");
    }
    p->program = prog;
    *program = p;
    return MORA_OK;
}

static mora_status opencl_program_binary(void *vctx, void *program, void **data, size_t *size) {
    opencl_ctx *c = vctx;
    const opencl_program *p = program;
    size_t bytes = 0;
    cl_int err = c->cl.clGetProgramInfo(p->program, CL_PROGRAM_BINARY_SIZES, sizeof bytes, &bytes, NULL);
    if (err != CL_SUCCESS || bytes == 0) return mora_fail(MORA_E_UNSUPPORTED, "opencl: the program has no binary (error %d)", (int)err);
    unsigned char *binary = malloc(bytes);
    if (!binary) return mora_fail(MORA_E_NO_MEMORY, "opencl: out of host memory for a %zu-byte binary", bytes);
    err = c->cl.clGetProgramInfo(p->program, CL_PROGRAM_BINARIES, sizeof binary, &binary, NULL);
    if (err != CL_SUCCESS) {
        free(binary);
        return cl_error(err, "clGetProgramInfo(CL_PROGRAM_BINARIES)");
    }
    *data = binary;
    *size = bytes;
    return MORA_OK;
}

static mora_status opencl_program_from_binary(void *vctx, const void *data, size_t size, void **program) {
    opencl_ctx *c = vctx;
    const unsigned char *binary = data;
    cl_int status = CL_SUCCESS, err = CL_SUCCESS;
    cl_program prog = c->cl.clCreateProgramWithBinary(c->context, 1, &c->device, &size, &binary, &status, &err);
    if (err != CL_SUCCESS || status != CL_SUCCESS)
        return mora_fail(MORA_E_COMPILE, "opencl: clCreateProgramWithBinary failed (error %d, binary status %d)", (int)err,
                         (int)status);
    const mora_status st = build_program(c, prog);
    if (st != MORA_OK) {
        c->cl.clReleaseProgram(prog);
        return st;
    }
    return wrap_program(c, prog, program);
}

static void opencl_program_free(void *vctx, void *program) {
    opencl_ctx *c = vctx;
    opencl_program *p = program;
    if (!p) return;
    c->cl.clReleaseProgram(p->program);
    free(p);
}

static mora_status opencl_kernel_create(void *vctx, void *program, const char *entry, void **kernel) {
    opencl_ctx *c = vctx;
    const opencl_program *p = program;
    if (strlen(entry) >= sizeof((opencl_kernel *)0)->name)
        return mora_fail(MORA_E_ARG, "opencl: entry \"%s\": name too long", entry);
    opencl_kernel *k = calloc(1, sizeof *k);
    if (!k) return mora_fail(MORA_E_NO_MEMORY, "opencl: out of host memory");
    cl_int err = CL_SUCCESS;
    k->kernel = c->cl.clCreateKernel(p->program, entry, &err);
    if (err != CL_SUCCESS) {
        free(k);
        mora_status st = cl_error(err, "clCreateKernel");
        mora_error_append(" for entry ");
        mora_error_append(entry);
        return st;
    }
    strcpy(k->name, entry);
    *kernel = k;
    return MORA_OK;
}

static void opencl_kernel_free(void *vctx, void *kernel) {
    opencl_ctx *c = vctx;
    opencl_kernel *k = kernel;
    if (!k) return;
    c->cl.clReleaseKernel(k->kernel);
    free(k);
}

static mora_status opencl_launch(void *vctx, void *handle, const size_t groups[3], const size_t local[3],
                                 const mora_kernel_arg *args, int arg_count) {
    opencl_ctx *c = vctx;
    const opencl_kernel *k = handle;
    const cl_kernel kernel = k->kernel;
    const char *entry = k->name;
    for (int i = 0; i < arg_count; ++i) {
        cl_int err = CL_SUCCESS;
        switch (args[i].kind) {
        case MORA_ARG_BUFFER: {
            const cl_mem mem = (cl_mem)args[i].value.buffer; /* NULL passes a NULL buffer */
            err = c->cl.clSetKernelArg(kernel, (cl_uint)i, sizeof mem, &mem);
            break;
        }
        case MORA_ARG_I64: {
            const cl_long v = (cl_long)args[i].value.i64;
            err = c->cl.clSetKernelArg(kernel, (cl_uint)i, sizeof v, &v);
            break;
        }
        case MORA_ARG_F32: {
            const cl_float v = args[i].value.f32;
            err = c->cl.clSetKernelArg(kernel, (cl_uint)i, sizeof v, &v);
            break;
        }
        }
        if (err != CL_SUCCESS)
            return mora_fail(MORA_E_LAUNCH, "opencl: clSetKernelArg(%s, arg %d) failed with error %d", entry, i,
                             (int)err);
    }
    const size_t global[3] = {groups[0] * local[0], groups[1] * local[1], groups[2] * local[2]};
    const cl_int err = c->cl.clEnqueueNDRangeKernel(c->queue, kernel, 3, NULL, global, local, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return mora_fail(MORA_E_LAUNCH,
                         "opencl: clEnqueueNDRangeKernel(%s, groups %zux%zux%zu of %zux%zux%zu) failed with error %d",
                         entry, groups[0], groups[1], groups[2], local[0], local[1], local[2], (int)err);
    return MORA_OK;
}

static mora_status opencl_synchronize(void *vctx) {
    opencl_ctx *c = vctx;
    const cl_int err = c->cl.clFinish(c->queue);
    return err == CL_SUCCESS ? MORA_OK : cl_error(err, "clFinish");
}

static mora_status opencl_set_stream(void *vctx, void *native) {
    opencl_ctx *c = vctx;
    cl_command_queue adopted = native ? (cl_command_queue)native : c->own_queue;
    if (native) {
        cl_context queue_context = NULL;
        const cl_int err = c->cl.clGetCommandQueueInfo(adopted, CL_QUEUE_CONTEXT, sizeof queue_context, &queue_context, NULL);
        if (err != CL_SUCCESS) return mora_fail(MORA_E_ARG, "native_stream=%p: not a cl_command_queue", native);
        if (queue_context != c->context)
            return mora_fail(MORA_E_ARG, "native_stream=%p: belongs to another cl_context than this mora_context's",
                             native);
        cl_command_queue_properties properties = 0;
        c->cl.clGetCommandQueueInfo(adopted, CL_QUEUE_PROPERTIES, sizeof properties, &properties, NULL);
        if (properties & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE)
            return mora_fail(MORA_E_ARG,
                             "native_stream=%p: an out-of-order cl_command_queue; libmora's two-kernel calls need an "
                             "in-order queue",
                             native);
        c->cl.clRetainCommandQueue(adopted);
    }
    if (c->queue != c->own_queue) c->cl.clReleaseCommandQueue(c->queue);
    c->queue = adopted;
    return MORA_OK;
}

static mora_status opencl_event_record(void *vctx, void **event) {
    opencl_ctx *c = vctx;
    cl_event ev = NULL;
    const cl_int err = c->cl.clEnqueueMarkerWithWaitList(c->queue, 0, NULL, &ev);
    if (err != CL_SUCCESS) return cl_error(err, "clEnqueueMarkerWithWaitList");
    *event = ev;
    return MORA_OK;
}

static mora_status opencl_event_elapsed_ms(void *vctx, void *start, void *end, double *ms) {
    opencl_ctx *c = vctx;
    cl_event events[2] = {(cl_event)start, (cl_event)end};
    cl_int err = c->cl.clWaitForEvents(2, events);
    if (err != CL_SUCCESS) return cl_error(err, "clWaitForEvents");
    cl_ulong t0 = 0, t1 = 0;
    err = c->cl.clGetEventProfilingInfo(events[0], CL_PROFILING_COMMAND_END, sizeof t0, &t0, NULL);
    if (err == CL_SUCCESS) err = c->cl.clGetEventProfilingInfo(events[1], CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
    if (err != CL_SUCCESS) return cl_error(err, "clGetEventProfilingInfo");
    *ms = (double)(t1 - t0) * 1e-6;
    return MORA_OK;
}

static void opencl_event_free(void *vctx, void *event) {
    opencl_ctx *c = vctx;
    if (event) c->cl.clReleaseEvent((cl_event)event);
}

static const mora_backend_i opencl_backend = {
    .version = MORA_BACKEND_INTERFACE_VERSION,
    .name = "opencl",
    .dialect = MORA_DIALECT_OPENCL,
    .destroy = opencl_destroy,
    .device_info = opencl_device_info,
    .buffer_alloc = opencl_buffer_alloc,
    .buffer_free = opencl_buffer_free,
    .buffer_write = opencl_buffer_write,
    .buffer_read = opencl_buffer_read,
    .buffer_size = opencl_buffer_size,
    .buffer_origin = opencl_buffer_origin,
    .buffer_zero = opencl_buffer_zero,
    .buffer_view = opencl_buffer_view,
    .view_free = opencl_view_free,
    .program_build = opencl_program_build,
    .program_free = opencl_program_free,
    .program_binary = opencl_program_binary,
    .program_from_binary = opencl_program_from_binary,
    .kernel_create = opencl_kernel_create,
    .kernel_free = opencl_kernel_free,
    .launch = opencl_launch,
    .synchronize = opencl_synchronize,
    .set_stream = opencl_set_stream,
    .event_record = opencl_event_record,
    .event_elapsed_ms = opencl_event_elapsed_ms,
    .event_free = opencl_event_free,
    .buffer_copy = opencl_buffer_copy,
};

/* Devices of every platform, in platform order, flattened: `device` indexes this list. */
static mora_status pick_device(opencl_ctx *c, int device) {
    cl_uint platform_count = 0;
    cl_int err = c->cl.clGetPlatformIDs(0, NULL, &platform_count);
    if (err != CL_SUCCESS || platform_count == 0)
        return mora_fail(MORA_E_NO_BACKEND,
                         "opencl: no OpenCL platform is installed (clGetPlatformIDs: error %d, %u platforms; "
                         "Debian: apt-get install pocl-opencl-icd)",
                         (int)err, platform_count);
    cl_platform_id platforms[16];
    if (platform_count > 16) platform_count = 16;
    c->cl.clGetPlatformIDs(platform_count, platforms, NULL);
    int seen = 0;
    for (cl_uint p = 0; p < platform_count; ++p) {
        cl_uint count = 0;
        if (c->cl.clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 0, NULL, &count) != CL_SUCCESS) continue;
        if (device < seen + (int)count) {
            cl_device_id ids[64];
            if (count > 64) count = 64;
            c->cl.clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, count, ids, NULL);
            c->device = ids[device - seen];
            return MORA_OK;
        }
        seen += (int)count;
    }
    return mora_fail(MORA_E_NO_BACKEND, "device=%d: the OpenCL platforms have %d device(s)", device, seen);
}

/* Wraps the application's cl_context and device (retained, released at destroy). */
static mora_status adopt_native(opencl_ctx *c, const mora_native_objects *native) {
    if (!native->context) return mora_fail(MORA_E_NULL, "cl_context=NULL: must not be NULL");
    if (!native->device) return mora_fail(MORA_E_NULL, "cl_device_id=NULL: must not be NULL");
    cl_device_id devices[64];
    size_t bytes = 0;
    const cl_int err = c->cl.clGetContextInfo((cl_context)native->context, CL_CONTEXT_DEVICES, sizeof devices, devices, &bytes);
    if (err != CL_SUCCESS)
        return mora_fail(MORA_E_ARG, "cl_context=%p: not a cl_context (clGetContextInfo: error %d)", native->context, (int)err);
    int found = 0;
    for (size_t i = 0; i < bytes / sizeof *devices; ++i) found |= devices[i] == (cl_device_id)native->device;
    if (!found) return mora_fail(MORA_E_ARG, "cl_device_id=%p: not a device of cl_context %p", native->device, native->context);
    c->device = (cl_device_id)native->device;
    c->context = (cl_context)native->context;
    c->cl.clRetainContext(c->context);
    return MORA_OK;
}

mora_status mora_backend_opencl_open(int device, const mora_native_objects *native, const mora_backend_i **iface,
                                     void **ctx) {
    if (device < 0) return mora_fail(MORA_E_ARG, "device=%d: must be >= 0", device);
    opencl_ctx *c = calloc(1, sizeof *c);
    if (!c) return mora_fail(MORA_E_NO_MEMORY, "opencl: out of host memory");
    mora_status st = api_load(&c->cl);
    cl_int err = CL_SUCCESS;
    if (st == MORA_OK && native) {
        st = adopt_native(c, native);
    } else if (st == MORA_OK) {
        st = pick_device(c, device);
        if (st == MORA_OK) {
            c->context = c->cl.clCreateContext(NULL, 1, &c->device, NULL, NULL, &err);
            if (err != CL_SUCCESS) st = mora_fail(MORA_E_NO_BACKEND, "opencl: clCreateContext failed with error %d", (int)err);
        }
    }
    if (st == MORA_OK) {
        c->own_queue = c->cl.clCreateCommandQueue(c->context, c->device, CL_QUEUE_PROFILING_ENABLE, &err);
        if (err != CL_SUCCESS)
            st = mora_fail(MORA_E_NO_BACKEND, "opencl: clCreateCommandQueue failed with error %d", (int)err);
        c->queue = c->own_queue;
    }
    if (st == MORA_OK && native && native->queue) st = opencl_set_stream(c, native->queue);
    if (st != MORA_OK) {
        opencl_destroy(c);
        return st;
    }
    *iface = &opencl_backend;
    *ctx = c;
    return MORA_OK;
}
