/* Internal: launching the kernels of one kind on any backend — each entry point's argument list,
 * grid and work-group come from its declared table (codegen/kernels.c) and are marshalled here, in
 * one place — for plans, the optimizer, the tuner and mora-bench. (A kind's program is obtained
 * through the kernels cache: mora_kind_prepare, kernels-cache/programs.h.) */
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

/* The values of one call (device handles of the context; strides in elements between rows). Each
 * entry point takes the ones its declared list names. */
typedef struct mora_kind_args {
    /* a layer's kinds */
    const void *x;          /* fwd, bwd_dm: n rows of d_in */
    int64_t ldx;
    void *y;                /* fwd: n rows of d_out, accumulated */
    int64_t ldy;
    const void *dy;         /* bwd_dx, bwd_dm: n rows of d_out */
    int64_t lddy;
    void *dx;               /* bwd_dx: n rows of d_in, accumulated */
    int64_t lddx;
    const void *M;          /* r̂ x r̂ float32 */
    void *dM;               /* bwd_dm: r̂ x r̂ float32, accumulated */
    void *W;                /* merge: d_out rows of d_in, of the spec's dtype, accumulated */
    int64_t ldw;
    const void *rope_table; /* mora_rope_table_create's buffer (NULL unless rope) */
    void *scratch;          /* float32, at least mora_spec_scratch_floats(spec, n) elements (may be NULL when 0) */
    float scale;            /* fwd, bwd: scale; merge: s */
    /* the optimizer's (n = the arena's elements) */
    void *params, *grads, *exp_avg, *exp_avg_sq; /* the arenas */
    void *partial;          /* ceil(n / MORA_ADAMW_CHUNK) floats: the norm's partial sums */
    void *clip;             /* 2 floats: [norm, coefficient] */
    float max_norm;         /* > 0: clip (the norm's entry points run) */
    float decay, one_minus_beta1, beta2, one_minus_beta2, neg_step_size, bias2_sqrt, eps;
} mora_kind_args;

/* Enqueues the kind's entry points that run for this call (no argument checks: the caller validated
 * everything; n >= 1; merge ignores n). Allocates, compiles and synchronises nothing. */
mora_status mora_kind_launch(mora_context *ctx, const mora_kind_kernels *k, const mora_kind_args *a, int64_t n);

/* Rope's cos/sin table on the device (blocks x r̂/2 x (cos, sin) float32; *table = NULL for other ops). */
mora_status mora_rope_table_create(mora_context *ctx, const mora_shape *s, void **table);

#endif
