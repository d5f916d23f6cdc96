/* Layers: M, dM and the rope table on the device, and the generated kernels of the layer's shape,
 * launched on the caller's buffers. On a backend that compiles nothing (cpu) the float32 cpu kernels
 * run instead, on host pointers. Programs are built on first use of each kind. */
#include "layer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "cpu_kernels.h"
#include "error.h"
#include "shape.h"
#include "tuner.h"

struct mora_layer {
    mora_context *ctx;
    mora_shape shape;
    mora_geometry geo;
    mora_dtype dtype;
    void *M;          /* r̂ x r̂ float32 */
    void *dM;         /* r̂ x r̂ float32, accumulated by backward */
    void *rope_table; /* blocks x r̂/2 x (cos, sin) float32, rope only */
    int params[MORA_KIND_COUNT][MORA_MAX_PARAMS];
    void *programs[MORA_KIND_COUNT];            /* fwd, bwd_dx, bwd_dm (merge: merge_programs) */
    void *merge_programs[MORA_DTYPE_COUNT];     /* merge, one per W dtype */
    void *scratch;    /* float32 scratch of bwd_dx / bwd_dm */
    size_t scratch_bytes;
    const char *param_source[MORA_KIND_COUNT]; /* "cache", "database", "default" or "tuned" */
    mora_cpu_plan *cpu_plan; /* cpu backend: the tile pipeline's plan (default tile and threads) */
    void *cpu_ws;            /* its workspace, grown to the largest n seen */
    size_t cpu_ws_bytes;
};

/* The cpu plan's workspace for n tokens (grown on demand; layers are not shared between threads). */
static mora_status cpu_workspace(mora_layer *l, int64_t n, void **ws) {
    const size_t bytes = mora_cpu_workspace_bytes(l->cpu_plan, n);
    if (bytes > l->cpu_ws_bytes) {
        void *grown = realloc(l->cpu_ws, bytes);
        if (!grown) return mora_fail(MORA_E_NO_MEMORY, "cpu workspace: out of host memory for %zu bytes", bytes);
        l->cpu_ws = grown;
        l->cpu_ws_bytes = bytes;
    }
    *ws = l->cpu_ws;
    return MORA_OK;
}

/* Generated kernels index rows with int: every extent inside one row or M must fit. */
#define KERNEL_INDEX_LIMIT ((int64_t)1 << 31)

static int compiles(const mora_layer *l) { return l->ctx->be->program_build != NULL; }

mora_kernel_spec mora_layer_spec(const mora_layer *l, mora_kind kind) {
    const int dialect = l->ctx->be->dialect;
    mora_kernel_spec spec = mora_spec_default(&l->shape, l->dtype, kind, dialect < 0 ? MORA_DIALECT_OPENCL : dialect);
    memcpy(spec.params, l->params[kind], sizeof spec.params);
    return spec;
}

mora_status mora_layer_set_spec(mora_layer *l, const mora_kernel_spec *spec) {
    MORA_CHECK_PTR(l);
    MORA_CHECK_PTR(spec);
    if (memcmp(&spec->shape, &l->shape, sizeof l->shape) != 0)
        return mora_fail(MORA_E_ARG, "spec: its shape differs from the layer's");
    if (spec->kind != MORA_KIND_MERGE && spec->dtype != l->dtype)
        return mora_fail(MORA_E_ARG, "spec: dtype %s differs from the layer's %s", mora_dtype_name(spec->dtype),
                         mora_dtype_name(l->dtype));
    /* device limits only matter where generated code runs */
    const int device = compiles(l);
    MORA_TRY(mora_spec_check(spec, device ? l->ctx->info.max_work_group : 0, device ? l->ctx->info.local_mem_bytes : 0));
    memcpy(l->params[spec->kind], spec->params, sizeof spec->params);
    l->programs[spec->kind] = NULL;
    if (spec->kind == MORA_KIND_MERGE) memset(l->merge_programs, 0, sizeof l->merge_programs);
    return MORA_OK;
}

static mora_status check_shape_for_kernels(const mora_shape *s) {
    const struct {
        const char *name;
        int64_t value;
    } extents[] = {{"d_in", s->d_in}, {"d_out", s->d_out}, {"d_in + rhat", s->d_in + s->rhat}, {"rhat * rhat", s->rhat * s->rhat}};
    for (size_t i = 0; i < sizeof extents / sizeof *extents; ++i)
        if (extents[i].value >= KERNEL_INDEX_LIMIT)
            return mora_fail(MORA_E_SIZE, "%s=%lld: the kernels need it below 2^31", extents[i].name,
                             (long long)extents[i].value);
    return MORA_OK;
}

static mora_status upload_rope_table(mora_layer *l) {
    const int64_t count = l->geo.blocks * l->geo.half * 2;
    float *table = malloc((size_t)count * sizeof *table);
    if (!table) return mora_fail(MORA_E_NO_MEMORY, "rope table: out of host memory for %lld floats", (long long)count);
    for (int64_t t = 0; t < l->geo.blocks; ++t)
        for (int64_t i = 0; i < l->geo.half; ++i) {
            const double angle = mora_rope_angle(l->shape.rhat, t, i);
            table[2 * (t * l->geo.half + i)] = (float)cos(angle);
            table[2 * (t * l->geo.half + i) + 1] = (float)sin(angle);
        }
    mora_status st = l->ctx->be->buffer_alloc(l->ctx->be_ctx, (size_t)count * sizeof *table, &l->rope_table);
    if (st == MORA_OK) st = l->ctx->be->buffer_write(l->ctx->be_ctx, l->rope_table, 0, table, (size_t)count * sizeof *table);
    free(table);
    return st;
}

mora_status mora_layer_create_plain(mora_context *ctx, const mora_shape *s, mora_dtype dtype, mora_layer **out) {
    MORA_CHECK_PTR(ctx);
    MORA_CHECK_PTR(s);
    MORA_CHECK_PTR(out);
    MORA_TRY(mora_shape_check(s));
    if (mora_dtype_size(dtype) == 0)
        return mora_fail(MORA_E_UNKNOWN_DTYPE, "dtype=%d: unknown; expected 0 (f32), 1 (f16) or 2 (bf16)", (int)dtype);
    MORA_TRY(check_shape_for_kernels(s));

    mora_layer *l = calloc(1, sizeof *l);
    if (!l) return mora_fail(MORA_E_NO_MEMORY, "layer: out of host memory");
    l->ctx = ctx;
    l->shape = *s;
    l->geo = mora_shape_geometry(s);
    l->dtype = dtype;
    for (int k = 0; k < MORA_KIND_COUNT; ++k) {
        const mora_kernel_spec spec = mora_spec_default(s, dtype, (mora_kind)k, MORA_DIALECT_OPENCL);
        memcpy(l->params[k], spec.params, sizeof spec.params);
        l->param_source[k] = "default";
    }
    const size_t m_bytes = (size_t)(s->rhat * s->rhat) * sizeof(float);
    const mora_backend_i *be = ctx->be;
    mora_status st = be->buffer_alloc(ctx->be_ctx, m_bytes, &l->M);
    if (st == MORA_OK) st = be->buffer_zero(ctx->be_ctx, l->M, m_bytes);
    if (st == MORA_OK) st = be->buffer_alloc(ctx->be_ctx, m_bytes, &l->dM);
    if (st == MORA_OK) st = be->buffer_zero(ctx->be_ctx, l->dM, m_bytes);
    if (st == MORA_OK && s->op == MORA_OP_ROPE && compiles(l)) st = upload_rope_table(l);
    if (st == MORA_OK && !compiles(l)) st = mora_cpu_plan_create(s, dtype, NULL, &l->cpu_plan);
    if (st == MORA_OK) st = be->synchronize(ctx->be_ctx);
    if (st != MORA_OK) {
        mora_layer_destroy(l);
        return st;
    }
    *out = l;
    return MORA_OK;
}

/* Applies tuning results to the layer. */
static void use_results(mora_layer *l, const mora_tune_result *results) {
    for (int k = 0; k < MORA_KIND_COUNT; ++k)
        if (results[k].requested && mora_layer_set_spec(l, &results[k].best) == MORA_OK)
            l->param_source[k] = results[k].from_cache ? "cache" : "tuned";
}

mora_status mora_layer_autotune(mora_layer *l, int64_t tokens, double budget_seconds) {
    MORA_CHECK_PTR(l);
    if (tokens < 0) return mora_fail(MORA_E_SIZE, "tokens=%lld: must be >= 0 (0: the device's default)", (long long)tokens);
    if (!(budget_seconds >= 0)) return mora_fail(MORA_E_ARG, "budget_seconds=%g: must be >= 0 (0: 60 s)", budget_seconds);
    if (!compiles(l)) return MORA_OK; /* the cpu backend has nothing to tune */
    mora_tune_options options = {0};
    options.tokens = tokens;
    options.budget_seconds = budget_seconds;
    mora_tune_result results[MORA_KIND_COUNT];
    MORA_TRY(mora_tune(l->ctx, &l->shape, l->dtype, &options, results));
    use_results(l, results);
    return MORA_OK;
}

const char *mora_layer_param_source(const mora_layer *l, mora_kind kind) { return l->param_source[kind]; }

mora_status mora_layer_create(mora_context *ctx, const mora_shape *s, mora_dtype dtype, mora_layer **out) {
    MORA_CHECK_PTR(out);
    mora_layer *l = NULL;
    MORA_TRY(mora_layer_create_plain(ctx, s, dtype, &l));
    if (!compiles(l)) {
        *out = l;
        return MORA_OK;
    }
    /* parameters: cache record → shipped database → defaults; tuning only when asked */
    unsigned untuned = 0;
    for (int k = 0; k < MORA_KIND_COUNT; ++k) {
        mora_kernel_spec spec = mora_layer_spec(l, (mora_kind)k);
        l->param_source[k] = mora_select_params(ctx, &spec);
        if (mora_layer_set_spec(l, &spec) != MORA_OK) l->param_source[k] = "default";
        if (strcmp(l->param_source[k], "cache") != 0) untuned |= 1u << k;
    }
    const char *autotune = getenv("MORA_AUTOTUNE");
    if (untuned && autotune && strcmp(autotune, "1") == 0) {
        mora_tune_options options = {0};
        options.kinds = untuned;
        mora_tune_result results[MORA_KIND_COUNT];
        const mora_status st = mora_tune(ctx, s, dtype, &options, results);
        if (st != MORA_OK) {
            mora_layer_destroy(l);
            return st;
        }
        use_results(l, results);
    }
    *out = l;
    return MORA_OK;
}

void mora_layer_destroy(mora_layer *l) {
    if (!l) return;
    const mora_backend_i *be = l->ctx->be;
    void *buffers[] = {l->M, l->dM, l->rope_table, l->scratch};
    for (size_t i = 0; i < sizeof buffers / sizeof *buffers; ++i)
        if (buffers[i]) be->buffer_free(l->ctx->be_ctx, buffers[i]);
    mora_cpu_plan_destroy(l->cpu_plan);
    free(l->cpu_ws);
    free(l); /* programs belong to the context's cache */
}

mora_status mora_layer_set_weight(mora_layer *l, const float *M) {
    MORA_CHECK_PTR(l);
    MORA_CHECK_PTR(M);
    const size_t bytes = (size_t)(l->shape.rhat * l->shape.rhat) * sizeof(float);
    return l->ctx->be->buffer_write(l->ctx->be_ctx, l->M, 0, M, bytes);
}

mora_status mora_layer_get_weight(const mora_layer *l, float *M) {
    MORA_CHECK_PTR(l);
    MORA_CHECK_PTR(M);
    const size_t bytes = (size_t)(l->shape.rhat * l->shape.rhat) * sizeof(float);
    return l->ctx->be->buffer_read(l->ctx->be_ctx, l->M, 0, M, bytes);
}

mora_status mora_layer_get_grad(const mora_layer *l, float *dM) {
    MORA_CHECK_PTR(l);
    MORA_CHECK_PTR(dM);
    const size_t bytes = (size_t)(l->shape.rhat * l->shape.rhat) * sizeof(float);
    return l->ctx->be->buffer_read(l->ctx->be_ctx, l->dM, 0, dM, bytes);
}

mora_status mora_layer_zero_grad(mora_layer *l) {
    MORA_CHECK_PTR(l);
    const size_t bytes = (size_t)(l->shape.rhat * l->shape.rhat) * sizeof(float);
    return l->ctx->be->buffer_zero(l->ctx->be_ctx, l->dM, bytes);
}

/* Rejects a caller's buffer that is NULL or (where the backend can tell) smaller than the call needs. */
static mora_status check_buffer(const mora_layer *l, const char *name, const void *buf, int64_t rows, int64_t width,
                                mora_dtype dtype) {
    if (!buf) return mora_fail(MORA_E_NULL, "%s=NULL: must not be NULL", name);
    int64_t elems;
    if (__builtin_mul_overflow(rows, width, &elems) || elems > INT64_MAX / 8)
        return mora_fail(MORA_E_OVERFLOW, "%s: %lld x %lld elements overflow", name, (long long)rows, (long long)width);
    const size_t need = (size_t)elems * mora_dtype_size(dtype);
    if (!l->ctx->be->buffer_size) return MORA_OK;
    size_t have = 0;
    MORA_TRY(l->ctx->be->buffer_size(l->ctx->be_ctx, buf, &have));
    if (have < need)
        return mora_fail(MORA_E_ARG, "%s: buffer of %zu bytes is smaller than the %zu this call needs (%lld x %lld %s)",
                         name, have, need, (long long)rows, (long long)width, mora_dtype_name(dtype));
    return MORA_OK;
}

static mora_status check_n(int64_t n) {
    if (n < 0) return mora_fail(MORA_E_SIZE, "n=%lld: must be >= 0", (long long)n);
    if (n >= KERNEL_INDEX_LIMIT) return mora_fail(MORA_E_SIZE, "n=%lld: must be below 2^31", (long long)n);
    return MORA_OK;
}

/* The program for `kind` (W of w_dtype for merge), generated and built on first use. */
static mora_status layer_program(mora_layer *l, mora_kind kind, mora_dtype w_dtype, mora_kernel_spec *spec,
                                 void **program) {
    *spec = mora_layer_spec(l, kind);
    void **slot = &l->programs[kind];
    if (kind == MORA_KIND_MERGE) {
        spec->dtype = w_dtype;
        slot = &l->merge_programs[w_dtype];
    }
    if (*slot) {
        *program = *slot;
        return MORA_OK;
    }
    MORA_TRY(mora_spec_check(spec, l->ctx->info.max_work_group, l->ctx->info.local_mem_bytes));
    char *source = NULL;
    MORA_TRY(mora_codegen(spec, &source));
    const mora_status st = mora_context_program(l->ctx, source, slot);
    free(source);
    if (st == MORA_OK) *program = *slot;
    return st;
}

static mora_status launch(mora_layer *l, void *program, const mora_kernel_spec *spec, int entry, int64_t n,
                          const mora_kernel_arg *args, int count) {
    size_t groups[3], local[3] = {mora_spec_threads(spec, entry), 1, 1};
    mora_spec_groups(spec, entry, n, groups);
    return l->ctx->be->launch(l->ctx->be_ctx, program, mora_kind_decl_get(spec->kind)->entries[entry], groups, local,
                              args, count);
}

static mora_status ensure_scratch(mora_layer *l, size_t floats) {
    const size_t bytes = floats * sizeof(float);
    if (bytes <= l->scratch_bytes) return MORA_OK;
    const mora_backend_i *be = l->ctx->be;
    if (l->scratch) {
        MORA_TRY(be->synchronize(l->ctx->be_ctx)); /* earlier launches may still read it */
        be->buffer_free(l->ctx->be_ctx, l->scratch);
        l->scratch = NULL;
        l->scratch_bytes = 0;
    }
    MORA_TRY(be->buffer_alloc(l->ctx->be_ctx, bytes, &l->scratch));
    l->scratch_bytes = bytes;
    return MORA_OK;
}

/* ---- one kernel kind at a time (the public calls and the tuner use these) ---- */

mora_status mora_layer_run_kind(mora_layer *l, mora_kind kind, const mora_kind_buffers *b, int64_t n) {
    if (!compiles(l)) return mora_fail(MORA_E_UNSUPPORTED, "backend \"%s\": runs no generated kernels", l->ctx->be->name);
    mora_kernel_spec spec;
    void *program;
    MORA_TRY(layer_program(l, kind, b->w_dtype, &spec, &program));
    switch (kind) {
    case MORA_KIND_FWD: {
        const mora_kernel_arg args[] = {MORA_ARG_BUF(b->x), MORA_ARG_BUF(b->y), MORA_ARG_BUF(l->M),
                                        MORA_ARG_BUF(l->rope_table), MORA_ARG_INT(n), MORA_ARG_FLOAT(b->scale)};
        return launch(l, program, &spec, 0, n, args, 6);
    }
    case MORA_KIND_BWD_DM: {
        /* dM (+ the ordered reduction of its slices) */
        MORA_TRY(ensure_scratch(l, mora_spec_scratch_floats(&spec, n)));
        void *dm = b->dm ? b->dm : l->dM;
        const mora_kernel_arg args[] = {MORA_ARG_BUF(b->x),  MORA_ARG_BUF(b->dy),        MORA_ARG_BUF(l->rope_table),
                                        MORA_ARG_BUF(dm),    MORA_ARG_BUF(l->scratch),   MORA_ARG_INT(n)};
        MORA_TRY(launch(l, program, &spec, 0, n, args, 6));
        if (mora_spec_scratch_floats(&spec, n) == 0) return MORA_OK;
        const mora_kernel_arg reduce_args[] = {MORA_ARG_BUF(l->scratch), MORA_ARG_BUF(dm)};
        return launch(l, program, &spec, 1, n, reduce_args, 2);
    }
    case MORA_KIND_BWD_DX: {
        /* U = decomp^T(dy)·M into the scratch, then the comp^T gather (same in-order queue) */
        MORA_TRY(ensure_scratch(l, mora_spec_scratch_floats(&spec, n)));
        const mora_kernel_arg gemm_args[] = {MORA_ARG_BUF(b->dy), MORA_ARG_BUF(l->M), MORA_ARG_BUF(l->scratch),
                                             MORA_ARG_INT(n)};
        MORA_TRY(launch(l, program, &spec, 0, n, gemm_args, 4));
        const mora_kernel_arg gather_args[] = {MORA_ARG_BUF(l->scratch), MORA_ARG_BUF(l->rope_table),
                                               MORA_ARG_BUF(b->dx), MORA_ARG_INT(n)};
        return launch(l, program, &spec, 1, n, gather_args, 4);
    }
    case MORA_KIND_MERGE: {
        const mora_kernel_arg args[] = {MORA_ARG_BUF(b->w), MORA_ARG_BUF(l->M), MORA_ARG_BUF(l->rope_table),
                                        MORA_ARG_FLOAT(b->scale)};
        return launch(l, program, &spec, 0, 1, args, 4);
    }
    }
    return mora_fail(MORA_E_UNKNOWN_KIND, "kind=%d: unknown kernel kind", (int)kind);
}

mora_status mora_layer_use_program(mora_layer *l, const mora_kernel_spec *spec, void *program) {
    MORA_TRY(mora_layer_set_spec(l, spec));
    if (spec->kind == MORA_KIND_MERGE) l->merge_programs[spec->dtype] = program;
    else l->programs[spec->kind] = program;
    return MORA_OK;
}

mora_status mora_layer_prepare(mora_layer *l, mora_kind kind, mora_dtype w_dtype, int64_t n) {
    if (!compiles(l)) return mora_fail(MORA_E_UNSUPPORTED, "backend \"%s\": runs no generated kernels", l->ctx->be->name);
    mora_kernel_spec spec;
    void *program;
    MORA_TRY(layer_program(l, kind, w_dtype, &spec, &program));
    return ensure_scratch(l, mora_spec_scratch_floats(&spec, n));
}

mora_context *mora_layer_context(const mora_layer *l) { return l->ctx; }

void *mora_layer_scratch(const mora_layer *l, size_t *bytes) {
    *bytes = l->scratch_bytes;
    return l->scratch;
}

/* ---- the public calls ---- */

mora_status mora_forward(mora_layer *l, const void *x, void *y, int64_t n, float scale) {
    MORA_CHECK_PTR(l);
    MORA_TRY(check_n(n));
    if (n == 0) return MORA_OK;
    MORA_TRY(check_buffer(l, "x", x, n, l->shape.d_in, l->dtype));
    MORA_TRY(check_buffer(l, "y", y, n, l->shape.d_out, l->dtype));
    if (!compiles(l)) {
        void *ws;
        MORA_TRY(cpu_workspace(l, n, &ws));
        return mora_cpu_forward(l->cpu_plan, l->M, x, l->shape.d_in, y, l->shape.d_out, n, scale, ws);
    }
    const mora_kind_buffers b = {.x = x, .y = y, .scale = scale};
    return mora_layer_run_kind(l, MORA_KIND_FWD, &b, n);
}

mora_status mora_backward(mora_layer *l, const void *x, const void *dy, void *dx, int64_t n) {
    MORA_CHECK_PTR(l);
    MORA_TRY(check_n(n));
    if (n == 0) return MORA_OK;
    MORA_TRY(check_buffer(l, "x", x, n, l->shape.d_in, l->dtype));
    MORA_TRY(check_buffer(l, "dy", dy, n, l->shape.d_out, l->dtype));
    if (dx) MORA_TRY(check_buffer(l, "dx", dx, n, l->shape.d_in, l->dtype));
    if (!compiles(l)) {
        void *ws;
        MORA_TRY(cpu_workspace(l, n, &ws));
        return mora_cpu_backward(l->cpu_plan, l->M, x, l->shape.d_in, dy, l->shape.d_out, dx, l->shape.d_in, l->dM, n,
                                 1.0f, ws);
    }
    /* build both programs before launching anything, so a compile error changes nothing */
    mora_kernel_spec spec;
    void *program;
    MORA_TRY(layer_program(l, MORA_KIND_BWD_DM, l->dtype, &spec, &program));
    if (dx) MORA_TRY(layer_program(l, MORA_KIND_BWD_DX, l->dtype, &spec, &program));
    const mora_kind_buffers b = {.x = x, .dy = dy, .dx = dx};
    MORA_TRY(mora_layer_run_kind(l, MORA_KIND_BWD_DM, &b, n));
    return dx ? mora_layer_run_kind(l, MORA_KIND_BWD_DX, &b, n) : MORA_OK;
}

mora_status mora_merge(mora_layer *l, void *W, mora_dtype w_dtype, float s) {
    MORA_CHECK_PTR(l);
    if (mora_dtype_size(w_dtype) == 0)
        return mora_fail(MORA_E_UNKNOWN_DTYPE, "w_dtype=%d: unknown; expected 0 (f32), 1 (f16) or 2 (bf16)",
                         (int)w_dtype);
    MORA_TRY(check_buffer(l, "W", W, l->shape.d_out, l->shape.d_in, w_dtype));
    if (!compiles(l)) return mora_cpu_merge(l->cpu_plan, l->M, W, l->shape.d_in, w_dtype, s);
    const mora_kind_buffers b = {.w = W, .w_dtype = w_dtype, .scale = s};
    return mora_layer_run_kind(l, MORA_KIND_MERGE, &b, 1);
}
