/* Internal: launching the generated kernels of one kind — the argument list and grid of every
 * entry point, in the order the kind runs them — for plans and the tuner. */
#ifndef MORA_CODEGEN_LAUNCH_H
#define MORA_CODEGEN_LAUNCH_H

#include "context.h"
#include "kernels.h"

/* A kind ready to launch: its spec, the program it was compiled into (owned by whoever built it)
 * and this owner's launch handle of every entry point. */
typedef struct mora_kind_kernels {
    mora_kernel_spec spec;
    void *program;
    void *handles[MORA_MAX_ENTRIES];
} mora_kind_kernels;

/* Creates the launch handles of spec's entry points in `program`. */
mora_status mora_kind_kernels_init(mora_context *ctx, const mora_kernel_spec *spec, void *program, mora_kind_kernels *k);
/* Releases the handles (not the program); *k is zeroed. */
void mora_kind_kernels_release(mora_context *ctx, mora_kind_kernels *k);

/* The buffers (device handles of the context) and strides (elements between rows) of one call. */
typedef struct mora_kind_args {
    const void *x;       /* fwd, bwd_dm: n rows of d_in */
    int64_t ldx;
    void *y;             /* fwd: n rows of d_out, accumulated */
    int64_t ldy;
    const void *dy;      /* bwd_dx, bwd_dm: n rows of d_out */
    int64_t lddy;
    void *dx;            /* bwd_dx: n rows of d_in, accumulated */
    int64_t lddx;
    const void *M;       /* r̂ x r̂ float32 */
    void *dM;            /* bwd_dm: r̂ x r̂ float32, accumulated */
    void *W;             /* merge: d_out rows of d_in, of the spec's dtype, accumulated */
    int64_t ldw;
    const void *rope_table; /* mora_rope_table_create's buffer (NULL unless rope) */
    void *scratch;       /* float32, at least mora_spec_scratch_floats(spec, n) elements (may be NULL when 0) */
    float scale;         /* fwd, bwd: scale; merge: s */
} mora_kind_args;

/* Enqueues the kind's entry points (no argument checks: the caller validated everything; n >= 1;
 * merge ignores n). Allocates, compiles and synchronises nothing. */
mora_status mora_kind_launch(mora_context *ctx, const mora_kind_kernels *k, const mora_kind_args *a, int64_t n);

/* Rope's cos/sin table on the device (blocks x r̂/2 x (cos, sin) float32; *table = NULL for other ops). */
mora_status mora_rope_table_create(mora_context *ctx, const mora_shape *s, void **table);

#endif
