/* Internal: what a mora_context holds — the backend, its device, and the programs compiled in it —
 * for the layers above (codegen's launcher, the kernels cache, the tuner, plans), and the wrappers
 * through which those layers call the backend table (never the table itself).
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

/* The first word of a live context (mora.h, "Handles"); cleared when the context is closed. */
#define MORA_CONTEXT_MAGIC 0x4d4f5243u /* "MORC" */

struct mora_context {
    uint32_t magic;       /* MORA_CONTEXT_MAGIC until the context is closed */
    int refs;             /* the caller's hold (until mora_context_destroy) + every plan and adapter of it */
    int handle_released;  /* mora_context_destroy was called (a second call does nothing) */
    const mora_backend_i *be;
    void *be_ctx;
    mora_device_info info;
    pthread_mutex_t lock;         /* programs, cache */
    mora_program_entry *programs; /* the registry */
    /* the kernels cache, opened on first use by the layer that owns it (kernels-cache/programs.c)
     * under `lock`, and closed by the api layer before mora_context_close: the runtime never calls
     * up into it */
    void *cache;
    int cache_opened;
    /* counters, updated with __atomic builtins (the header is also read by C++: no _Atomic types) */
    long compiles;                /* program_build calls that succeeded */
    long binary_loads;            /* program_from_binary calls that succeeded */
    long live_programs;           /* built or loaded, not yet released */
};

/* Opens a context on `backend` ("auto" tries cuda, hip, opencl on a device that is not the host's
 * CPU, then cpu), device `device`, or around the application's objects (native, may be NULL); and
 * closes one (its programs and backend; the cache must be closed by its owner first). The public
 * mora_context_create* / _destroy (api/context.c) are these plus the layers above. */
mora_status mora_context_open(const char *backend, int device, const mora_native_objects *native, mora_context **ctx);
void mora_context_close(mora_context *ctx);

/* The check of a public call's context argument: MORA_E_NULL, or MORA_E_ARG for a handle that is not
 * (or no longer) a live context. */
#define MORA_CHECK_CONTEXT(ctx) MORA_CHECK_HANDLE(ctx, "ctx", MORA_CONTEXT_MAGIC, "mora_context")

/* Lifetimes: the count of holders (the caller's handle, plans, adapters). mora_context_hold adds one;
 * mora_context_drop removes one and returns 1 when it was the last (the caller then closes the
 * context: the api layer closes its cache first, then mora_context_close). */
void mora_context_hold(mora_context *ctx);
int mora_context_drop(mora_context *ctx);

/* ---- the backend table, for the layers above ----
 * These keep the error sentence of a failure (the public mora_buffer_* clear it first, and check
 * their arguments): internal code calls these, never ctx->be directly. A member the backend lacks
 * is MORA_E_UNSUPPORTED naming it. */
mora_status mora_context_buffer_alloc(mora_context *ctx, size_t bytes, void **buf);
void mora_context_buffer_free(mora_context *ctx, void *buf); /* NULL: nothing */
mora_status mora_context_buffer_write(mora_context *ctx, void *buf, size_t offset, const void *src, size_t bytes);
mora_status mora_context_buffer_read(mora_context *ctx, const void *buf, size_t offset, void *dst, size_t bytes);
mora_status mora_context_buffer_zero(mora_context *ctx, void *buf, size_t bytes);
/* 1 when the backend can copy between its buffers on the stream (mora_context_buffer_copy) */
int mora_context_has_copy(const mora_context *ctx);
mora_status mora_context_buffer_copy(mora_context *ctx, const void *src, size_t src_offset, void *dst,
                                     size_t dst_offset, size_t bytes);
/* The bytes from buf to the end of its allocation; SIZE_MAX when the backend cannot tell. */
mora_status mora_context_buffer_size(const mora_context *ctx, const void *buf, size_t *bytes);
/* The allocation a buffer is part of and its byte offset there (root NULL: buffers are addresses). */
mora_status mora_context_buffer_origin(const mora_context *ctx, const void *buf, const void **root, uint64_t *offset);
mora_status mora_context_synchronize(mora_context *ctx);
mora_status mora_context_kernel_create(mora_context *ctx, void *program, const char *entry, void **kernel);
void mora_context_kernel_free(mora_context *ctx, void *kernel); /* NULL: nothing */
mora_status mora_context_launch(mora_context *ctx, void *kernel, const size_t groups[3], const size_t local[3],
                                const mora_kernel_arg *args, int arg_count);
/* 1 when the backend times with device events (else callers time with the wall clock) */
int mora_context_has_events(const mora_context *ctx);
mora_status mora_context_event_record(mora_context *ctx, void **event);
mora_status mora_context_event_elapsed_ms(mora_context *ctx, void *start, void *end, double *ms);
void mora_context_event_free(mora_context *ctx, void *event);
/* 1 when programs can be stored and loaded as binaries (the kernels cache keeps them) */
int mora_context_keeps_binaries(const mora_context *ctx);
mora_status mora_context_program_binary(mora_context *ctx, void *program, void **data, size_t *size);

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

/* What a context has done so far (tests; the stats of mora-tune). */
typedef struct mora_context_stats {
    long compiles, binary_loads, live_programs;
} mora_context_stats;
mora_context_stats mora_context_get_stats(mora_context *ctx);

#endif
