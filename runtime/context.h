/* Internal: what a mora_context holds, for the layer and the tuner. */
#ifndef MORA_RUNTIME_CONTEXT_H
#define MORA_RUNTIME_CONTEXT_H

#include <pthread.h>

#include "backend.h"
#include "cache.h"

/* A built program, found again by the hash and text of its source (compiled once per context). */
typedef struct mora_program_entry {
    uint64_t hash;
    char *source;
    void *program;
    struct mora_program_entry *next;
} mora_program_entry;

struct mora_context {
    const mora_backend_i *be;
    void *be_ctx;
    mora_device_info info;
    mora_program_entry *programs;
    pthread_mutex_t programs_lock; /* programs may be built from several threads (the tuner's compile pool) */
    mora_cache *cache;             /* the kernels cache at its default location, opened on first use */
    int cache_opened;
};

/* The context's kernels cache (default location, see cache.h); NULL only if it could not be
 * allocated. A disabled cache is still returned: its loads miss and its stores do nothing. */
mora_cache *mora_context_cache(mora_context *ctx);

/* The compiled program of `source` in this context: built on first request — from the kernels
 * cache's binary when the backend can load one, else from source (then the binary is stored) — and
 * reused after.
 * Thread-safe: the tuner builds candidates on several threads at once. */
mora_status mora_context_program(mora_context *ctx, const char *source, void **program);
/* The same; use_cache = 0 keeps the binary out of the kernels cache (the tuner's candidates). */
mora_status mora_context_program_ex(mora_context *ctx, const char *source, int use_cache, void **program);

/* FNV-1a 64-bit hash of a byte string (program cache keys). */
uint64_t mora_hash64(const void *data, size_t length, uint64_t seed);

#endif
