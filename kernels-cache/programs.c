/* Programs through the kernels cache (see programs.h). */
#include "programs.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "hash.h"

mora_cache *mora_context_cache(mora_context *ctx) {
    pthread_mutex_lock(&ctx->lock); /* opened exactly once, even when threads race */
    if (!ctx->cache_opened) {
        mora_cache *cache = NULL;
        ctx->cache = mora_cache_open(NULL, &cache) == MORA_OK ? cache : NULL;
        ctx->cache_opened = 1; /* set even when the open failed: it is not tried again */
    }
    mora_cache *cache = ctx->cache;
    pthread_mutex_unlock(&ctx->lock);
    return cache;
}

void mora_context_cache_close(mora_context *ctx) {
    mora_cache_close(ctx->cache);
    ctx->cache = NULL;
}

/* The kernels cache's key of a program's binary: everything that changes the binary — the source
 * (two independent 64-bit hashes and its length), the backend, device, driver and compiler, and the
 * library version (which fixes the build options). */
static void binary_key(const mora_context *ctx, const char *source, char *key, size_t size) {
    const size_t length = strlen(source);
    snprintf(key, size, "binary|v%d|library=%s|backend=%s|device=%s|arch=%s|driver=%s|compiler=%s|source=%016llx%016llx:%zu",
             MORA_CACHE_FORMAT_VERSION, MORA_VERSION_STRING, ctx->be->name, ctx->info.name, ctx->info.arch,
             ctx->info.driver_version, ctx->info.compiler_version, (unsigned long long)mora_hash64(source, length, 0),
             (unsigned long long)mora_hash64(source, length, 0x9E3779B97F4A7C15ull), length);
}

void mora_program_store_binary(mora_context *ctx, mora_cache *cache, const char *source, void *program) {
    if (!cache || !mora_cache_enabled(cache) || !mora_context_keeps_binaries(ctx)) return;
    char key[1024];
    binary_key(ctx, source, key, sizeof key);
    void *data = NULL;
    size_t size = 0;
    if (mora_context_program_binary(ctx, program, &data, &size) == MORA_OK) {
        (void)mora_cache_binary_store(cache, key, data, size); /* a cache that cannot be written is no error */
        free(data);
    }
    mora_error_clear();
}

mora_status mora_program_obtain(mora_context *ctx, const char *source, void **program) {
    *program = mora_context_find_program(ctx, source);
    if (*program) return MORA_OK;
    mora_cache *cache = mora_context_keeps_binaries(ctx) ? mora_context_cache(ctx) : NULL;
    void *built = NULL;
    if (cache && mora_cache_enabled(cache)) {
        char key[1024];
        binary_key(ctx, source, key, sizeof key);
        void *data = NULL;
        size_t size = 0;
        if (mora_cache_binary_load(cache, key, &data, &size) == MORA_OK) {
            if (mora_context_load_binary(ctx, data, size, &built) != MORA_OK) {
                built = NULL;
                mora_warn_once("cache-binary-rejected",
                               "kernels cache: the device rejected a cached binary (%s); rebuilding from source",
                               mora_last_error());
            }
            free(data);
        }
    }
    if (!built) {
        MORA_TRY(mora_context_build(ctx, source, &built)); /* compile outside any lock: threads compile at once */
        mora_program_store_binary(ctx, cache, source, built);
    }
    const mora_status st = mora_context_register_program(ctx, source, &built);
    if (st != MORA_OK) {
        mora_context_release_program(ctx, built);
        return st;
    }
    mora_error_clear();
    *program = built;
    return MORA_OK;
}

mora_status mora_kind_prepare(mora_context *ctx, const mora_kernel_spec *spec, mora_kind_kernels *k) {
    MORA_TRY(mora_spec_check(spec, ctx->info.max_work_group, ctx->info.local_mem_bytes));
    char *source = NULL;
    MORA_TRY(mora_codegen(spec, &source));
    void *program = NULL;
    const mora_status st = mora_program_obtain(ctx, source, &program);
    free(source);
    MORA_TRY(st);
    mora_kind_kernels fresh;
    MORA_TRY(mora_kind_kernels_init(ctx, spec, program, &fresh));
    mora_kind_kernels_release(ctx, k);
    *k = fresh;
    return MORA_OK;
}
