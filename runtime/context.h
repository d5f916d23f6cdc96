/* Internal: what a mora_context holds, for the layer and the tuner. */
#ifndef MORA_RUNTIME_CONTEXT_H
#define MORA_RUNTIME_CONTEXT_H

#include "backend.h"

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
};

/* The compiled program of `source` in this context: built on first request, then reused. */
mora_status mora_context_program(mora_context *ctx, const char *source, void **program);

/* FNV-1a 64-bit hash of a byte string (program cache keys). */
uint64_t mora_hash64(const void *data, size_t length, uint64_t seed);

#endif
