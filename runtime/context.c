/* Contexts: opening a backend ("auto" tries cuda, hip, opencl, cpu in that order), buffers, the
 * per-context cache of compiled programs. */
#include "context.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

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

static mora_status open_backend(const backend_entry *b, int device, mora_context *ctx) {
    if (!b->open)
        return mora_fail(MORA_E_NO_BACKEND, "backend=\"%s\": libmora was built without it (configure with -D%s=ON)",
                         b->name, b->build_option);
    MORA_TRY(b->open(device, &ctx->be, &ctx->be_ctx));
    const mora_status st = ctx->be->device_info(ctx->be_ctx, &ctx->info);
    if (st != MORA_OK) {
        ctx->be->destroy(ctx->be_ctx);
        return st;
    }
    return MORA_OK;
}

mora_status mora_context_create(const char *backend, int device, mora_context **ctx) {
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
            st = open_backend(&backends[i], device, c);
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
            st = open_backend(found, device, c);
    }
    if (st != MORA_OK) {
        free(c);
        return st;
    }
    pthread_mutex_init(&c->programs_lock, NULL);
    *ctx = c;
    return MORA_OK;
}

void mora_context_destroy(mora_context *ctx) {
    if (!ctx) return;
    for (mora_program_entry *e = ctx->programs, *next; e; e = next) {
        next = e->next;
        if (ctx->be->program_free) ctx->be->program_free(ctx->be_ctx, e->program);
        free(e->source);
        free(e);
    }
    if (ctx->cache) mora_cache_close(ctx->cache);
    ctx->be->destroy(ctx->be_ctx);
    pthread_mutex_destroy(&ctx->programs_lock);
    free(ctx);
}

mora_cache *mora_context_cache(mora_context *ctx) {
    if (!ctx->cache_opened) {
        ctx->cache_opened = 1;
        if (mora_cache_open(NULL, &ctx->cache) != MORA_OK) ctx->cache = NULL;
    }
    return ctx->cache;
}

const char *mora_context_backend(const mora_context *ctx) { return ctx ? ctx->be->name : "none"; }

const char *mora_context_device_name(const mora_context *ctx) { return ctx ? ctx->info.name : "none"; }

mora_status mora_context_set_stream(mora_context *ctx, void *native_stream) {
    MORA_CHECK_PTR(ctx);
    if (!ctx->be->set_stream)
        return mora_fail(MORA_E_UNSUPPORTED, "backend \"%s\": has no streams to adopt", ctx->be->name);
    return ctx->be->set_stream(ctx->be_ctx, native_stream);
}

mora_status mora_buffer_alloc(mora_context *ctx, size_t bytes, void **buf) {
    MORA_CHECK_PTR(ctx);
    MORA_CHECK_PTR(buf);
    return ctx->be->buffer_alloc(ctx->be_ctx, bytes, buf);
}

mora_status mora_buffer_free(mora_context *ctx, void *buf) {
    MORA_CHECK_PTR(ctx);
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
    MORA_CHECK_PTR(ctx);
    MORA_CHECK_PTR(buf);
    MORA_CHECK_PTR(src);
    MORA_TRY(check_range(ctx, buf, offset, bytes));
    return ctx->be->buffer_write(ctx->be_ctx, buf, offset, src, bytes);
}

mora_status mora_buffer_read(mora_context *ctx, const void *buf, size_t offset, void *dst, size_t bytes) {
    MORA_CHECK_PTR(ctx);
    MORA_CHECK_PTR(buf);
    MORA_CHECK_PTR(dst);
    MORA_TRY(check_range(ctx, buf, offset, bytes));
    return ctx->be->buffer_read(ctx->be_ctx, buf, offset, dst, bytes);
}

mora_status mora_synchronize(mora_context *ctx) {
    MORA_CHECK_PTR(ctx);
    return ctx->be->synchronize(ctx->be_ctx);
}

uint64_t mora_hash64(const void *data, size_t length, uint64_t seed) {
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < length; ++i) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static mora_program_entry *find_program(mora_context *ctx, uint64_t hash, const char *source) {
    for (mora_program_entry *e = ctx->programs; e; e = e->next)
        if (e->hash == hash && strcmp(e->source, source) == 0) return e;
    return NULL;
}

/* The kernels cache's key of a program's binary: everything that changes the binary — the source
 * (two independent 64-bit hashes and its length), the backend, device, driver and compiler, and the
 * library version (which fixes the build options). */
static void binary_key(const mora_context *ctx, const char *source, size_t length, char *key, size_t size) {
    snprintf(key, size, "binary|v%d|library=%s|backend=%s|device=%s|arch=%s|driver=%s|compiler=%s|source=%016llx%016llx:%zu",
             MORA_CACHE_FORMAT_VERSION, MORA_VERSION_STRING, ctx->be->name, ctx->info.name, ctx->info.arch,
             ctx->info.driver_version, ctx->info.compiler_version, (unsigned long long)mora_hash64(source, length, 0),
             (unsigned long long)mora_hash64(source, length, 0x9E3779B97F4A7C15ull), length);
}

/* Builds a program, through the kernels cache's binaries where the backend can (use_cache). */
static mora_status build_program(mora_context *ctx, const char *source, size_t length, int use_cache, void **program) {
    mora_cache *cache = use_cache && ctx->be->program_binary && ctx->be->program_from_binary ? mora_context_cache(ctx) : NULL;
    char key[1024];
    if (cache && mora_cache_enabled(cache)) {
        binary_key(ctx, source, length, key, sizeof key);
        void *data = NULL;
        size_t size = 0;
        if (mora_cache_binary_load(cache, key, &data, &size) == MORA_OK) {
            const mora_status st = ctx->be->program_from_binary(ctx->be_ctx, data, size, program);
            free(data);
            if (st == MORA_OK) return MORA_OK;
            mora_warn_once("cache-binary-rejected", "kernels cache: the device rejected a cached binary (%s); rebuilding from source",
                           mora_last_error());
        }
    }
    MORA_TRY(ctx->be->program_build(ctx->be_ctx, source, program));
    if (cache && mora_cache_enabled(cache)) {
        void *data = NULL;
        size_t size = 0;
        if (ctx->be->program_binary(ctx->be_ctx, *program, &data, &size) == MORA_OK) {
            (void)mora_cache_binary_store(cache, key, data, size); /* a cache that cannot be written is no error */
            free(data);
        }
        mora_error_clear();
    }
    return MORA_OK;
}

mora_status mora_context_program(mora_context *ctx, const char *source, void **program) {
    return mora_context_program_ex(ctx, source, 1, program);
}

mora_status mora_context_program_ex(mora_context *ctx, const char *source, int use_cache, void **program) {
    if (!ctx->be->program_build)
        return mora_fail(MORA_E_UNSUPPORTED, "backend \"%s\": compiles no generated code", ctx->be->name);
    const size_t length = strlen(source);
    const uint64_t hash = mora_hash64(source, length, 0);
    pthread_mutex_lock(&ctx->programs_lock);
    mora_program_entry *found = find_program(ctx, hash, source);
    pthread_mutex_unlock(&ctx->programs_lock);
    if (found) {
        *program = found->program;
        return MORA_OK;
    }
    /* build outside the lock so several threads compile at once */
    mora_program_entry *e = calloc(1, sizeof *e);
    char *copy = malloc(length + 1);
    if (!e || !copy) {
        free(e), free(copy);
        return mora_fail(MORA_E_NO_MEMORY, "program cache: out of host memory");
    }
    memcpy(copy, source, length + 1);
    const mora_status st = build_program(ctx, source, length, use_cache, &e->program);
    if (st != MORA_OK) {
        free(e), free(copy);
        return st;
    }
    e->hash = hash;
    e->source = copy;
    pthread_mutex_lock(&ctx->programs_lock);
    found = find_program(ctx, hash, source); /* another thread may have built the same source meanwhile */
    if (!found) {
        e->next = ctx->programs;
        ctx->programs = e;
    }
    pthread_mutex_unlock(&ctx->programs_lock);
    if (found) {
        if (ctx->be->program_free) ctx->be->program_free(ctx->be_ctx, e->program);
        free(e->source), free(e);
        e = found;
    }
    *program = e->program;
    return MORA_OK;
}
