/* The public contexts (mora.h): a runtime context (runtime/context.h) plus what the layers above it
 * keep per context, the kernels cache. The cache is opened on first use by its own layer
 * (kernels-cache/programs.c) and closed here, before the runtime closes the context: no layer
 * calls up into a higher one. A context lives while the caller's handle or any plan or adapter of
 * it does (lifetime.h). */
#include "error.h"
#include "lifetime.h"
#include "programs.h"

static mora_status create(const char *backend, int device, const mora_native_objects *native, mora_context **ctx) {
    mora_error_clear();
    return mora_context_open(backend, device, native, ctx);
}

mora_status mora_context_create(const char *backend, int device, mora_context **ctx) {
    return create(backend, device, NULL, ctx);
}

mora_status mora_context_create_opencl(void *cl_context, void *cl_device, void *cl_queue, mora_context **ctx) {
    const mora_native_objects native = {cl_context, cl_device, cl_queue};
    return create("opencl", 0, &native, ctx);
}

mora_status mora_context_create_cuda(void *cu_context, int device, void *cu_stream, mora_context **ctx) {
    const mora_native_objects native = {cu_context, NULL, cu_stream};
    return create("cuda", device, &native, ctx);
}

mora_status mora_context_create_hip(int device, void *hip_stream, mora_context **ctx) {
    const mora_native_objects native = {NULL, NULL, hip_stream};
    return create("hip", device, &native, ctx);
}

void mora_context_retain(mora_context *ctx) { mora_context_hold(ctx); }

void mora_context_release(mora_context *ctx) {
    if (!mora_context_drop(ctx)) return;
    mora_context_cache_close(ctx);
    mora_context_close(ctx);
}

void mora_context_destroy(mora_context *ctx) {
    if (!ctx || ctx->magic != MORA_CONTEXT_MAGIC) return; /* NULL, closed already, or not a context */
    if (__atomic_exchange_n(&ctx->handle_released, 1, __ATOMIC_ACQ_REL)) return; /* the caller's hold is gone */
    mora_context_release(ctx);
}
