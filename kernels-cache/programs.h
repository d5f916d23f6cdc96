/* Internal: compiled programs through the kernels cache. A context's cache is opened once, on
 * first use, at the default location (cache.h); programs are found in the context's registry,
 * else loaded from the cache's binary of their source, else compiled (and their binary stored). */
#ifndef MORA_KERNELS_CACHE_PROGRAMS_H
#define MORA_KERNELS_CACHE_PROGRAMS_H

#include "cache.h"
#include "context.h"
#include "launch.h"

/* The context's kernels cache (default location), opened on the first call; NULL only if it could
 * not be allocated. A disabled cache is still returned: its loads miss and its stores do nothing.
 * Thread-safe. */
mora_cache *mora_context_cache(mora_context *ctx);
/* Closes the context's cache (the api layer does, before it closes the context). */
void mora_context_cache_close(mora_context *ctx);

/* The registered program of `source`: from the registry, else the cache's binary, else compiled
 * (then its binary is stored). Thread-safe; the program lives as long as the context. */
mora_status mora_program_obtain(mora_context *ctx, const char *source, void **program);

/* Stores the binary of an already built `program` of `source` in `cache` (the tuner's winners, so
 * the next process loads instead of compiling). A cache that cannot be written is no error. */
void mora_program_store_binary(mora_context *ctx, mora_cache *cache, const char *source, void *program);

/* Checks spec against the device's limits, generates its source, obtains its program (above) and
 * makes k's launch handles (replacing what k held only on success): how a plan, the optimizer and
 * the tuner's runner get a kind ready. */
mora_status mora_kind_prepare(mora_context *ctx, const mora_kernel_spec *spec, mora_kind_kernels *k);

#endif
