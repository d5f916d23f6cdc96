/* Internal: layer access for tests and the tuner — replacing a kind's kernel parameters and
 * launching one kernel kind on given buffers. */
#ifndef MORA_RUNTIME_LAYER_H
#define MORA_RUNTIME_LAYER_H

#include "kernels.h"

/* A layer with the default parameters for every kind: no cache, database or tuning (the tuner's own). */
mora_status mora_layer_create_plain(mora_context *ctx, const mora_shape *s, mora_dtype dtype, mora_layer **l);
/* Where the layer's parameters for a kind came from: "cache", "database", "default" or "tuned". */
const char *mora_layer_param_source(const mora_layer *l, mora_kind kind);
/* The spec the layer launches for `kind` (merge: for W of the layer's dtype). */
mora_kernel_spec mora_layer_spec(const mora_layer *l, mora_kind kind);
/* Uses `spec`'s parameters for its kind from now on (shape and dtype must match the layer's; for
 * merge the dtype is ignored). The program is built on next use. */
mora_status mora_layer_set_spec(mora_layer *l, const mora_kernel_spec *spec);

/* The buffers one kernel kind reads and writes (device handles of the layer's context). */
typedef struct mora_kind_buffers {
    const void *x;      /* fwd, bwd_dm: n x d_in */
    void *y;            /* fwd: n x d_out, accumulated */
    const void *dy;     /* bwd_dm, bwd_dx: n x d_out */
    void *dx;           /* bwd_dx: n x d_in, accumulated */
    void *dm;           /* bwd_dm: r̂ x r̂ float32, accumulated (NULL: the layer's own dM) */
    void *w;            /* merge: d_out x d_in of w_dtype, accumulated */
    mora_dtype w_dtype; /* merge */
    float scale;        /* fwd: scale; merge: s */
} mora_kind_buffers;

/* Launches the kernels of one kind with the layer's current parameters (no argument checks: the
 * caller passes buffers large enough for n tokens). Backends that compile nothing: unsupported. */
mora_status mora_layer_run_kind(mora_layer *l, mora_kind kind, const mora_kind_buffers *b, int64_t n);
/* Uses `spec`'s parameters and an already built `program` of the context for its kind (merge: for W
 * of spec->dtype). The tuner compiles candidates in parallel and hands them over this way. */
mora_status mora_layer_use_program(mora_layer *l, const mora_kernel_spec *spec, void *program);
/* Builds the kind's program (W of w_dtype for merge) and sizes the scratch for n tokens, so that
 * compilation and allocation happen before anything is timed or verified. */
mora_status mora_layer_prepare(mora_layer *l, mora_kind kind, mora_dtype w_dtype, int64_t n);
/* The context a layer was created in. */
mora_context *mora_layer_context(const mora_layer *l);
/* The layer's float32 scratch (bwd_dx's U, bwd_dm's partial sums) and its size; NULL before first use. */
void *mora_layer_scratch(const mora_layer *l, size_t *bytes);

#endif
