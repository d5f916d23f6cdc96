/* Internal: what a mora_context holds — the backend, its device, and the programs compiled in it —
 * for the layers above (codegen's launcher, the kernels cache, the tuner, plans).
 *
 * Programs come two ways. The tuner builds candidates with mora_context_build and releases every one
 * it does not keep (mora_context_release_program). Plans share programs through the registry: one
 * program per source text per context, kept until the context is destroyed. Counters of compiles,
 * binary loads and live programs let tests prove what a call compiled. */
#ifndef MORA_RUNTIME_CONTEXT_H
#define MORA_RUNTIME_CONTEXT_H

#include <pthread.h>

#include "backend.h"

/* A registered program, found again by the hash and text of its source. */
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
    pthread_mutex_t lock;         /* programs, attachment */
    mora_program_entry *programs; /* the registry */
    void *attachment;             /* owned by the layer above (the kernels cache), made once */
    void (*attachment_free)(void *attachment);
    /* counters, updated with __atomic builtins (the header is also read by C++: no _Atomic types) */
    long compiles;                /* program_build calls that succeeded */
    long binary_loads;            /* program_from_binary calls that succeeded */
    long live_programs;           /* built or loaded, not yet released */
};

/* A handle of bytes [offset, offset + bytes) of `buf` usable as a buffer (see backend.h), and its
 * release (nothing to release where buffers are addresses). */
mora_status mora_buffer_view(mora_context *ctx, void *buf, size_t offset, size_t bytes, void **view);
void mora_buffer_view_free(mora_context *ctx, void *view);

/* Compiles `source` (not registered): the caller releases it with mora_context_release_program. */
mora_status mora_context_build(mora_context *ctx, const char *source, void **program);
/* A program from a binary the backend gave before (not registered). */
mora_status mora_context_load_binary(mora_context *ctx, const void *data, size_t size, void **program);
void mora_context_release_program(mora_context *ctx, void *program);

/* The registered program of `source`, or NULL. */
void *mora_context_find_program(mora_context *ctx, const char *source);
/* Registers `*program` for `source`. If another thread registered the same source first, releases
 * `*program` and hands back the registered one instead. MORA_E_NO_MEMORY leaves *program unowned
 * (the caller releases it). */
mora_status mora_context_register_program(mora_context *ctx, const char *source, void **program);

/* The context's attachment, made by `make` on the first call (under the context's lock, so it is
 * made exactly once even when threads race), freed by `free_fn` when the context is destroyed. */
void *mora_context_attachment(mora_context *ctx, void *(*make)(void *user), void *user, void (*free_fn)(void *));

/* What a context has done so far (tests; the stats of mora-tune). */
typedef struct mora_context_stats {
    long compiles, binary_loads, live_programs;
} mora_context_stats;
mora_context_stats mora_context_get_stats(mora_context *ctx);

#endif
