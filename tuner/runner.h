/* Internal: a runner — one shape and dtype on a context with its own M, rope table and scratch, whose
 * kernel parameters can be swapped — for the tuner, its verifier and timing, and mora-bench. Plans
 * (api/) do not use it: they launch through codegen/launch.h on the caller's buffers. */
#ifndef MORA_TUNER_RUNNER_H
#define MORA_TUNER_RUNNER_H

#include "kernels.h"
#include "launch.h"

typedef struct mora_runner mora_runner;

/* A runner with the default parameters for every kind (no cache, database or tuning) and M = 0. */
mora_status mora_runner_create(mora_context *ctx, const mora_shape *s, mora_dtype dtype, mora_runner **r);
void mora_runner_destroy(mora_runner *r);
/* M from host memory (r̂ x r̂ float32), and back. */
mora_status mora_runner_set_weight(mora_runner *r, const float *M);
mora_status mora_runner_get_weight(const mora_runner *r, float *M);
/* The spec the runner launches for `kind` (merge: for W of the runner's dtype). */
mora_kernel_spec mora_runner_spec(const mora_runner *r, mora_kind kind);
/* Uses `spec`'s parameters for its kind from now on (shape and dtype must match the runner's; for
 * merge the dtype is ignored). The program is obtained on next use. */
mora_status mora_runner_set_spec(mora_runner *r, const mora_kernel_spec *spec);
/* Uses `spec`'s parameters and an already built `program` for its kind (merge: for W of
 * spec->dtype); the caller keeps owning the program and calls mora_runner_drop before freeing it. */
mora_status mora_runner_use_program(mora_runner *r, const mora_kernel_spec *spec, void *program);
/* Forgets the kind's program and launch handles (merge: every W dtype's). */
void mora_runner_drop(mora_runner *r, mora_kind kind);

/* The buffers one kernel kind reads and writes (device handles of the runner's context), rows
 * contiguous. */
typedef struct mora_kind_buffers {
    const void *x;      /* fwd, bwd_dm: n x d_in */
    void *y;            /* fwd: n x d_out, accumulated */
    const void *dy;     /* bwd_dm, bwd_dx: n x d_out */
    void *dx;           /* bwd_dx: n x d_in, accumulated */
    void *dm;           /* bwd_dm: r̂ x r̂ float32, accumulated */
    void *w;            /* merge: d_out x d_in of w_dtype, accumulated */
    mora_dtype w_dtype; /* merge */
    float scale;        /* fwd, bwd: scale; merge: s */
} mora_kind_buffers;

/* Obtains the kind's program (W of w_dtype for merge; through the kernels cache unless one was
 * given with use_program) and sizes the scratch for n tokens, so that compiling and allocating
 * happen before anything is timed or verified. */
mora_status mora_runner_prepare(mora_runner *r, mora_kind kind, mora_dtype w_dtype, int64_t n);
/* Prepares (if needed) and launches the kind with the runner's current parameters (no argument
 * checks: buffers are large enough for n tokens). */
mora_status mora_runner_run(mora_runner *r, mora_kind kind, const mora_kind_buffers *b, int64_t n);
/* The runner's context, and its float32 scratch and size (NULL before first use). */
mora_context *mora_runner_context(const mora_runner *r);
void *mora_runner_scratch(const mora_runner *r, size_t *bytes);

#endif
