/* Contexts: opening a backend ("auto" tries cuda, hip, opencl, cpu in that order) or wrapping the
 * application's own device objects, buffers, streams, the registry of compiled programs, and the
 * wrappers through which the layers above call the backend table. */
#include "context.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hash.h"

typedef struct backend_entry {
    const char *name;
    mora_backend_open_fn open; /* NULL: not compiled into this build */
    const char *build_option;
} backend_entry;

static const backend_entry backends[] = {
#ifdef MORA_HAVE_CUDA
    {"cuda", mora_backend_cuda_open, "MORA_WITH_CUDA"},
#else
    {"cuda", NULL, "MORA_WITH_CUDA"},
#endif
#ifdef MORA_HAVE_HIP
    {"hip", mora_backend_hip_open, "MORA_WITH_HIP"},
#else
    {"hip", NULL, "MORA_WITH_HIP"},
#endif
#ifdef MORA_HAVE_OPENCL
    {"opencl", mora_backend_opencl_open, "MORA_WITH_OPENCL"},
#else
    {"opencl", NULL, "MORA_WITH_OPENCL"},
#endif
    {"cpu", mora_backend_cpu_open, NULL},
};
#define BACKEND_COUNT (sizeof backends / sizeof *backends)

static mora_status open_backend(const backend_entry *b, int device, const mora_native_objects *native,
                                mora_context *ctx) {
    if (!b->open)
        return mora_fail(MORA_E_NO_BACKEND, "backend=\"%s\": libmora was built without it (configure with -D%s=ON)",
                         b->name, b->build_option);
    MORA_TRY(b->open(device, native, &ctx->be, &ctx->be_ctx));
    const mora_status st = ctx->be->device_info(ctx->be_ctx, &ctx->info);
    if (st != MORA_OK) {
        ctx->be->destroy(ctx->be_ctx);
        return st;
    }
    return MORA_OK;
}

mora_status mora_context_open(const char *backend, int device, const mora_native_objects *native, mora_context **ctx) {
    MORA_CHECK_PTR(backend);
    MORA_CHECK_PTR(ctx);
    if (device < 0) return mora_fail(MORA_E_ARG, "device=%d: must be >= 0", device);
    mora_context *c = calloc(1, sizeof *c);
    if (!c) return mora_fail(MORA_E_NO_MEMORY, "context: out of host memory");

    mora_status st = MORA_E_NO_BACKEND;
    if (strcmp(backend, "auto") == 0) {
        /* First backend that opens wins; the reasons the others gave are kept for the error. */
        char reasons[1024] = "";
        for (size_t i = 0; i < BACKEND_COUNT && st != MORA_OK; ++i) {
            st = open_backend(&backends[i], device, NULL, c);
            /* An OpenCL device that is the host's CPU (PoCL) loses to the cpu backend, whose tile
             * pipeline over OpenBLAS is several times faster there (bench/results/
             * cpu-fast-epyc-2cores.md against opencl-pocl-epyc-2cores.md); "opencl" still opens it. */
            if (st == MORA_OK && strcmp(backends[i].name, "opencl") == 0 && c->info.is_cpu) {
                c->be->destroy(c->be_ctx);
                st = mora_fail(MORA_E_NO_BACKEND, "opencl: device \"%s\" is the host's CPU: the cpu backend is faster there",
                               c->info.name);
            }
            if (st != MORA_OK) {
                strncat(reasons, "; ", sizeof reasons - strlen(reasons) - 1);
                strncat(reasons, mora_last_error(), sizeof reasons - strlen(reasons) - 1);
            }
        }
        if (st != MORA_OK) mora_fail(MORA_E_NO_BACKEND, "backend=\"auto\": no backend could be opened%s", reasons);
    } else {
        const backend_entry *found = NULL;
        for (size_t i = 0; i < BACKEND_COUNT; ++i)
            if (strcmp(backend, backends[i].name) == 0) found = &backends[i];
        if (!found)
            st = mora_fail(MORA_E_ARG, "backend=\"%s\": unknown; expected auto, cpu, opencl, cuda or hip", backend);
        else
            st = open_backend(found, device, native, c);
    }
    if (st != MORA_OK) {
        free(c);
        return st;
    }
    pthread_mutex_init(&c->lock, NULL);
    c->magic = MORA_CONTEXT_MAGIC;
    c->refs = 1; /* the caller's handle */
    *ctx = c;
    return MORA_OK;
}

void mora_context_hold(mora_context *ctx) { __atomic_add_fetch(&ctx->refs, 1, __ATOMIC_RELAXED); }

int mora_context_drop(mora_context *ctx) { return __atomic_sub_fetch(&ctx->refs, 1, __ATOMIC_ACQ_REL) == 0; }

void mora_context_close(mora_context *ctx) {
    if (!ctx) return;
    for (mora_program_entry *e = ctx->programs, *next; e; e = next) {
        next = e->next;
        mora_context_release_program(ctx, e->program);
        free(e->source);
        free(e);
    }
    ctx->be->destroy(ctx->be_ctx);
    pthread_mutex_destroy(&ctx->lock);
    ctx->magic = 0;
    free(ctx);
}

static int live(const mora_context *ctx) { return ctx && ctx->magic == MORA_CONTEXT_MAGIC; }

const char *mora_context_backend(const mora_context *ctx) { return live(ctx) ? ctx->be->name : "none"; }

const char *mora_context_device_name(const mora_context *ctx) { return live(ctx) ? ctx->info.name : "none"; }

mora_status mora_context_set_stream(mora_context *ctx, void *native_stream) {
    mora_error_clear();
    MORA_CHECK_CONTEXT(ctx);
    return ctx->be->set_stream(ctx->be_ctx, native_stream);
}

mora_status mora_buffer_alloc(mora_context *ctx, size_t bytes, void **buf) {
    mora_error_clear();
    MORA_CHECK_CONTEXT(ctx);
    MORA_CHECK_PTR(buf);
    return mora_context_buffer_alloc(ctx, bytes, buf);
}

mora_status mora_buffer_free(mora_context *ctx, void *buf) {
    mora_error_clear();
    MORA_CHECK_CONTEXT(ctx);
    if (!buf) return MORA_OK;
    return ctx->be->buffer_free(ctx->be_ctx, buf);
}

/* Rejects a copy that would run past the end of a buffer whose size the backend can tell. */
static mora_status check_range(mora_context *ctx, const void *buf, size_t offset, size_t bytes) {
    if (offset + bytes < offset)
        return mora_fail(MORA_E_OVERFLOW, "offset + bytes = %zu + %zu: overflows", offset, bytes);
    if (!ctx->be->buffer_size) return MORA_OK;
    size_t size = 0;
    MORA_TRY(ctx->be->buffer_size(ctx->be_ctx, buf, &size));
    if (offset + bytes > size)
        return mora_fail(MORA_E_ARG, "offset + bytes = %zu + %zu: exceeds the buffer's %zu bytes", offset, bytes, size);
    return MORA_OK;
}

mora_status mora_buffer_write(mora_context *ctx, void *buf, size_t offset, const void *src, size_t bytes) {
    mora_error_clear();
    MORA_CHECK_CONTEXT(ctx);
    MORA_CHECK_PTR(buf);
    MORA_CHECK_PTR(src);
    MORA_TRY(check_range(ctx, buf, offset, bytes));
    return ctx->be->buffer_write(ctx->be_ctx, buf, offset, src, bytes);
}

mora_status mora_buffer_read(mora_context *ctx, const void *buf, size_t offset, void *dst, size_t bytes) {
    mora_error_clear();
    MORA_CHECK_CONTEXT(ctx);
    MORA_CHECK_PTR(buf);
    MORA_CHECK_PTR(dst);
    MORA_TRY(check_range(ctx, buf, offset, bytes));
    return ctx->be->buffer_read(ctx->be_ctx, buf, offset, dst, bytes);
}

mora_status mora_synchronize(mora_context *ctx) {
    mora_error_clear();
    MORA_CHECK_CONTEXT(ctx);
    return ctx->be->synchronize(ctx->be_ctx);
}

mora_status mora_buffer_view(mora_context *ctx, void *buf, size_t offset, size_t bytes, void **view) {
    MORA_TRY(check_range(ctx, buf, offset, bytes));
    if (ctx->be->buffer_view) return ctx->be->buffer_view(ctx->be_ctx, buf, offset, bytes, view);
    *view = (char *)buf + offset;
    return MORA_OK;
}

void mora_buffer_view_free(mora_context *ctx, void *view) {
    if (view && ctx->be->view_free) ctx->be->view_free(ctx->be_ctx, view);
}

/* ---- the backend table, for the layers above ---- */

static mora_status lacks(const mora_context *ctx, const char *member) {
    return mora_fail(MORA_E_UNSUPPORTED, "backend \"%s\": has no %s", ctx->be->name, member);
}

mora_status mora_context_buffer_alloc(mora_context *ctx, size_t bytes, void **buf) {
    return ctx->be->buffer_alloc(ctx->be_ctx, bytes, buf);
}

void mora_context_buffer_free(mora_context *ctx, void *buf) {
    if (buf) (void)ctx->be->buffer_free(ctx->be_ctx, buf);
}

mora_status mora_context_buffer_write(mora_context *ctx, void *buf, size_t offset, const void *src, size_t bytes) {
    return ctx->be->buffer_write(ctx->be_ctx, buf, offset, src, bytes);
}

mora_status mora_context_buffer_read(mora_context *ctx, const void *buf, size_t offset, void *dst, size_t bytes) {
    return ctx->be->buffer_read(ctx->be_ctx, buf, offset, dst, bytes);
}

mora_status mora_context_buffer_zero(mora_context *ctx, void *buf, size_t bytes) {
    return ctx->be->buffer_zero(ctx->be_ctx, buf, bytes);
}

int mora_context_has_copy(const mora_context *ctx) { return ctx->be->buffer_copy != NULL; }

mora_status mora_context_buffer_copy(mora_context *ctx, const void *src, size_t src_offset, void *dst,
                                     size_t dst_offset, size_t bytes) {
    if (!ctx->be->buffer_copy) return lacks(ctx, "buffer_copy");
    return ctx->be->buffer_copy(ctx->be_ctx, src, src_offset, dst, dst_offset, bytes);
}

mora_status mora_context_buffer_size(const mora_context *ctx, const void *buf, size_t *bytes) {
    *bytes = SIZE_MAX;
    return ctx->be->buffer_size ? ctx->be->buffer_size(ctx->be_ctx, buf, bytes) : MORA_OK;
}

mora_status mora_context_buffer_origin(const mora_context *ctx, const void *buf, const void **root, uint64_t *offset) {
    if (ctx->be->buffer_origin) return ctx->be->buffer_origin(ctx->be_ctx, buf, root, offset);
    *root = NULL;
    *offset = (uint64_t)(uintptr_t)buf;
    return MORA_OK;
}

mora_status mora_context_synchronize(mora_context *ctx) { return ctx->be->synchronize(ctx->be_ctx); }

mora_status mora_context_kernel_create(mora_context *ctx, void *program, const char *entry, void **kernel) {
    return ctx->be->kernel_create(ctx->be_ctx, program, entry, kernel);
}

void mora_context_kernel_free(mora_context *ctx, void *kernel) {
    if (kernel) ctx->be->kernel_free(ctx->be_ctx, kernel);
}

mora_status mora_context_launch(mora_context *ctx, void *kernel, const size_t groups[3], const size_t local[3],
                                const mora_kernel_arg *args, int arg_count) {
    return ctx->be->launch(ctx->be_ctx, kernel, groups, local, args, arg_count);
}

int mora_context_has_events(const mora_context *ctx) {
    return ctx->be->event_record && ctx->be->event_elapsed_ms && ctx->be->event_free;
}

mora_status mora_context_event_record(mora_context *ctx, void **event) {
    if (!mora_context_has_events(ctx)) return lacks(ctx, "events");
    return ctx->be->event_record(ctx->be_ctx, event);
}

mora_status mora_context_event_elapsed_ms(mora_context *ctx, void *start, void *end, double *ms) {
    if (!mora_context_has_events(ctx)) return lacks(ctx, "events");
    return ctx->be->event_elapsed_ms(ctx->be_ctx, start, end, ms);
}

void mora_context_event_free(mora_context *ctx, void *event) {
    if (event && ctx->be->event_free) ctx->be->event_free(ctx->be_ctx, event);
}

int mora_context_keeps_binaries(const mora_context *ctx) {
    return ctx->be->program_binary != NULL && ctx->be->program_from_binary != NULL;
}

mora_status mora_context_program_binary(mora_context *ctx, void *program, void **data, size_t *size) {
    if (!ctx->be->program_binary) return lacks(ctx, "program binaries");
    return ctx->be->program_binary(ctx->be_ctx, program, data, size);
}

/* ---- programs ---- */

mora_status mora_context_build(mora_context *ctx, const char *source, void **program) {
    MORA_TRY(ctx->be->program_build(ctx->be_ctx, source, program));
    __atomic_fetch_add(&ctx->compiles, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&ctx->live_programs, 1, __ATOMIC_RELAXED);
    return MORA_OK;
}

mora_status mora_context_load_binary(mora_context *ctx, const void *data, size_t size, void **program) {
    if (!ctx->be->program_from_binary)
        return mora_fail(MORA_E_UNSUPPORTED, "backend \"%s\": loads no binaries", ctx->be->name);
    MORA_TRY(ctx->be->program_from_binary(ctx->be_ctx, data, size, program));
    __atomic_fetch_add(&ctx->binary_loads, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&ctx->live_programs, 1, __ATOMIC_RELAXED);
    return MORA_OK;
}

void mora_context_release_program(mora_context *ctx, void *program) {
    if (!program) return;
    ctx->be->program_free(ctx->be_ctx, program);
    __atomic_fetch_sub(&ctx->live_programs, 1, __ATOMIC_RELAXED);
}

static mora_program_entry *find_program(mora_context *ctx, uint64_t hash, const char *source) {
    for (mora_program_entry *e = ctx->programs; e; e = e->next)
        if (e->hash == hash && strcmp(e->source, source) == 0) return e;
    return NULL;
}

void *mora_context_find_program(mora_context *ctx, const char *source) {
    const uint64_t hash = mora_hash64(source, strlen(source), 0);
    pthread_mutex_lock(&ctx->lock);
    const mora_program_entry *e = find_program(ctx, hash, source);
    void *program = e ? e->program : NULL;
    pthread_mutex_unlock(&ctx->lock);
    return program;
}

mora_status mora_context_register_program(mora_context *ctx, const char *source, void **program) {
    const size_t length = strlen(source);
    mora_program_entry *e = calloc(1, sizeof *e);
    char *copy = malloc(length + 1);
    if (!e || !copy) {
        free(e), free(copy);
        return mora_fail(MORA_E_NO_MEMORY, "program registry: out of host memory");
    }
    memcpy(copy, source, length + 1);
    e->hash = mora_hash64(source, length, 0);
    e->source = copy;
    e->program = *program;
    pthread_mutex_lock(&ctx->lock);
    const mora_program_entry *found = find_program(ctx, e->hash, source); /* built meanwhile by another thread */
    if (!found) {
        e->next = ctx->programs;
        ctx->programs = e;
    }
    void *registered = found ? found->program : e->program;
    pthread_mutex_unlock(&ctx->lock);
    if (found) {
        mora_context_release_program(ctx, *program);
        free(e->source), free(e);
    }
    *program = registered;
    return MORA_OK;
}

mora_context_stats mora_context_get_stats(mora_context *ctx) {
    const mora_context_stats stats = {__atomic_load_n(&ctx->compiles, __ATOMIC_RELAXED),
                                      __atomic_load_n(&ctx->binary_loads, __ATOMIC_RELAXED),
                                      __atomic_load_n(&ctx->live_programs, __ATOMIC_RELAXED)};
    return stats;
}
