/* Runners (see runner.h): the tuner's, the verifier's and mora-bench's way to launch one kind with
 * swappable parameters on buffers of their own, on any backend. */
#include "runner.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "programs.h"
#include "shape.h"

struct mora_runner {
    mora_context *ctx;
    mora_shape shape;
    mora_dtype dtype;
    void *M;          /* r̂ x r̂ float32 */
    void *rope_table; /* rope only */
    int params[MORA_KIND_COUNT][MORA_MAX_PARAMS];
    /* launch handles per kind; merge: one per W dtype (kernels[MERGE] unused) */
    mora_kind_kernels kernels[MORA_KIND_COUNT];
    mora_kind_kernels merge_kernels[MORA_DTYPE_COUNT];
    void *scratch; /* float32 scratch of bwd_dx / bwd_dm */
    size_t scratch_bytes;
};

/* A layer kind the runner runs (fwd .. merge; the optimizer is not tuned). */
static mora_status check_kind(mora_kind kind) {
    if ((int)kind < 0 || (int)kind >= MORA_KIND_COUNT)
        return mora_fail(MORA_E_UNKNOWN_KIND, "kind=%d: a runner runs the layer kinds fwd, bwd_dx, bwd_dm, merge", (int)kind);
    return MORA_OK;
}

static mora_kind_kernels *slot(mora_runner *r, mora_kind kind, mora_dtype w_dtype) {
    return kind == MORA_KIND_MERGE ? &r->merge_kernels[w_dtype] : &r->kernels[kind];
}

mora_kernel_spec mora_runner_spec(const mora_runner *r, mora_kind kind) {
    mora_kernel_spec spec = mora_spec_default(&r->shape, r->dtype, kind, r->ctx->be->dialect);
    memcpy(spec.params, r->params[kind], sizeof spec.params);
    return spec;
}

void mora_runner_drop(mora_runner *r, mora_kind kind) {
    if (kind != MORA_KIND_MERGE) {
        mora_kind_kernels_release(r->ctx, &r->kernels[kind]);
        return;
    }
    for (int d = 0; d < MORA_DTYPE_COUNT; ++d) mora_kind_kernels_release(r->ctx, &r->merge_kernels[d]);
}

mora_status mora_runner_set_spec(mora_runner *r, const mora_kernel_spec *spec) {
    MORA_TRY(check_kind(spec->kind));
    if (spec->dialect != r->ctx->be->dialect)
        return mora_fail(MORA_E_ARG, "spec: dialect %s differs from the runner's backend's %s", mora_dialect_name(spec->dialect),
                         mora_dialect_name(r->ctx->be->dialect));
    if (!mora_shape_same(&spec->shape, &r->shape))
        return mora_fail(MORA_E_ARG, "spec: its shape differs from the runner's");
    if (spec->kind != MORA_KIND_MERGE && spec->dtype != r->dtype)
        return mora_fail(MORA_E_ARG, "spec: dtype %s differs from the runner's %s", mora_dtype_name(spec->dtype),
                         mora_dtype_name(r->dtype));
    MORA_TRY(mora_spec_check(spec, r->ctx->info.max_work_group, r->ctx->info.local_mem_bytes));
    memcpy(r->params[spec->kind], spec->params, sizeof spec->params);
    mora_runner_drop(r, spec->kind);
    return MORA_OK;
}

mora_status mora_runner_create(mora_context *ctx, const mora_shape *s, mora_dtype dtype, mora_runner **out) {
    MORA_TRY(mora_shape_check(s));
    mora_runner *r = calloc(1, sizeof *r);
    if (!r) return mora_fail(MORA_E_NO_MEMORY, "runner: out of host memory");
    r->ctx = ctx;
    r->shape = *s;
    r->dtype = dtype;
    for (int k = 0; k < MORA_KIND_COUNT; ++k) {
        const mora_kernel_spec spec = mora_spec_default(s, dtype, (mora_kind)k, ctx->be->dialect);
        memcpy(r->params[k], spec.params, sizeof spec.params);
    }
    const size_t m_bytes = (size_t)(s->rhat * s->rhat) * sizeof(float);
    mora_status st = mora_context_buffer_alloc(ctx, m_bytes, &r->M);
    if (st != MORA_OK) r->M = NULL;
    if (st == MORA_OK) st = mora_context_buffer_zero(ctx, r->M, m_bytes);
    if (st == MORA_OK) st = mora_rope_table_create(ctx, s, &r->rope_table);
    if (st == MORA_OK) st = mora_context_synchronize(ctx);
    if (st != MORA_OK) {
        mora_runner_destroy(r);
        return st;
    }
    *out = r;
    return MORA_OK;
}

void mora_runner_destroy(mora_runner *r) {
    if (!r) return;
    for (int k = 0; k < MORA_KIND_COUNT; ++k) mora_runner_drop(r, (mora_kind)k);
    void *buffers[] = {r->M, r->rope_table, r->scratch};
    for (size_t i = 0; i < sizeof buffers / sizeof *buffers; ++i) mora_context_buffer_free(r->ctx, buffers[i]);
    free(r);
}

mora_status mora_runner_set_weight(mora_runner *r, const float *M) {
    return mora_context_buffer_write(r->ctx, r->M, 0, M, (size_t)(r->shape.rhat * r->shape.rhat) * sizeof(float));
}

mora_status mora_runner_get_weight(const mora_runner *r, float *M) {
    return mora_context_buffer_read(r->ctx, r->M, 0, M, (size_t)(r->shape.rhat * r->shape.rhat) * sizeof(float));
}

mora_status mora_runner_use_program(mora_runner *r, const mora_kernel_spec *spec, void *program) {
    MORA_TRY(mora_runner_set_spec(r, spec));
    return mora_kind_kernels_init(r->ctx, spec, program, slot(r, spec->kind, spec->dtype));
}

static mora_status ensure_scratch(mora_runner *r, size_t floats) {
    const size_t bytes = floats * sizeof(float);
    if (bytes <= r->scratch_bytes) return MORA_OK;
    if (r->scratch) {
        MORA_TRY(mora_context_synchronize(r->ctx)); /* earlier launches may still read it */
        mora_context_buffer_free(r->ctx, r->scratch);
        r->scratch = NULL;
        r->scratch_bytes = 0;
    }
    MORA_TRY(mora_context_buffer_alloc(r->ctx, bytes, &r->scratch));
    r->scratch_bytes = bytes;
    return MORA_OK;
}

mora_status mora_runner_prepare(mora_runner *r, mora_kind kind, mora_dtype w_dtype, int64_t n) {
    MORA_TRY(check_kind(kind));
    mora_kind_kernels *k = slot(r, kind, w_dtype);
    if (!k->program) {
        mora_kernel_spec spec = mora_runner_spec(r, kind);
        if (kind == MORA_KIND_MERGE) spec.dtype = w_dtype;
        MORA_TRY(mora_kind_prepare(r->ctx, &spec, k));
    }
    return ensure_scratch(r, mora_spec_scratch_floats(&k->spec, n));
}

mora_status mora_runner_run(mora_runner *r, mora_kind kind, const mora_kind_buffers *b, int64_t n) {
    MORA_TRY(mora_runner_prepare(r, kind, b->w_dtype, n));
    const mora_shape *s = &r->shape;
    const mora_kind_args a = {.x = b->x, .ldx = s->d_in, .y = b->y, .ldy = s->d_out, .dy = b->dy, .lddy = s->d_out,
                              .dx = b->dx, .lddx = s->d_in, .M = r->M, .dM = b->dm, .W = b->w, .ldw = s->d_in,
                              .rope_table = r->rope_table, .scratch = r->scratch, .scale = b->scale};
    return mora_kind_launch(r->ctx, slot(r, kind, b->w_dtype), &a, n);
}

mora_context *mora_runner_context(const mora_runner *r) { return r->ctx; }

void *mora_runner_scratch(const mora_runner *r, size_t *bytes) {
    *bytes = r->scratch_bytes;
    return r->scratch;
}
