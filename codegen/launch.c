/* Launching one kind's generated kernels (see launch.h): the argument list of every entry point is
 * written here once, in the order of the templates' parameter lists. */
#include "launch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "shape.h"

mora_status mora_kind_kernels_init(mora_context *ctx, const mora_kernel_spec *spec, void *program, mora_kind_kernels *k) {
    memset(k, 0, sizeof *k);
    if (!ctx->be->kernel_create)
        return mora_fail(MORA_E_UNSUPPORTED, "backend \"%s\": launches no generated kernels", ctx->be->name);
    k->spec = *spec;
    k->program = program;
    const mora_kind_decl *d = mora_kind_decl_get(spec->kind);
    for (int e = 0; e < d->entry_count; ++e) {
        const mora_status st = ctx->be->kernel_create(ctx->be_ctx, program, d->entries[e], &k->handles[e]);
        if (st != MORA_OK) {
            mora_kind_kernels_release(ctx, k);
            return st;
        }
    }
    return MORA_OK;
}

void mora_kind_kernels_release(mora_context *ctx, mora_kind_kernels *k) {
    for (int e = 0; e < MORA_MAX_ENTRIES; ++e)
        if (k->handles[e]) ctx->be->kernel_free(ctx->be_ctx, k->handles[e]);
    memset(k, 0, sizeof *k);
}

static mora_status launch(mora_context *ctx, const mora_kind_kernels *k, int entry, int64_t n,
                          const mora_kernel_arg *args, int count) {
    size_t groups[3], local[3] = {mora_spec_threads(&k->spec, entry), 1, 1};
    mora_spec_groups(&k->spec, entry, n, groups);
    return ctx->be->launch(ctx->be_ctx, k->handles[entry], groups, local, args, count);
}

mora_status mora_kind_launch(mora_context *ctx, const mora_kind_kernels *k, const mora_kind_args *a, int64_t n) {
    switch (k->spec.kind) {
    case MORA_KIND_FWD: {
        const mora_kernel_arg args[] = {MORA_ARG_BUF(a->x), MORA_ARG_INT(a->ldx), MORA_ARG_BUF(a->y),
                                        MORA_ARG_INT(a->ldy), MORA_ARG_BUF(a->M), MORA_ARG_BUF(a->rope_table),
                                        MORA_ARG_INT(n), MORA_ARG_FLOAT(a->scale)};
        return launch(ctx, k, 0, n, args, 8);
    }
    case MORA_KIND_BWD_DM: {
        /* dM (+ the ordered reduction of its slices, which applies the scale then) */
        const mora_kernel_arg args[] = {MORA_ARG_BUF(a->x),          MORA_ARG_INT(a->ldx),   MORA_ARG_BUF(a->dy),
                                        MORA_ARG_INT(a->lddy),       MORA_ARG_BUF(a->rope_table), MORA_ARG_BUF(a->dM),
                                        MORA_ARG_BUF(a->scratch),    MORA_ARG_INT(n),        MORA_ARG_FLOAT(a->scale)};
        MORA_TRY(launch(ctx, k, 0, n, args, 9));
        if (mora_spec_scratch_floats(&k->spec, n) == 0) return MORA_OK;
        const mora_kernel_arg reduce_args[] = {MORA_ARG_BUF(a->scratch), MORA_ARG_BUF(a->dM), MORA_ARG_FLOAT(a->scale)};
        return launch(ctx, k, 1, n, reduce_args, 3);
    }
    case MORA_KIND_BWD_DX: {
        /* U = decomp^T(dy)·M into the scratch, then the comp^T gather (the queue is in order) */
        const mora_kernel_arg gemm_args[] = {MORA_ARG_BUF(a->dy), MORA_ARG_INT(a->lddy), MORA_ARG_BUF(a->M),
                                             MORA_ARG_BUF(a->scratch), MORA_ARG_INT(n)};
        MORA_TRY(launch(ctx, k, 0, n, gemm_args, 5));
        const mora_kernel_arg gather_args[] = {MORA_ARG_BUF(a->scratch), MORA_ARG_BUF(a->rope_table), MORA_ARG_BUF(a->dx),
                                               MORA_ARG_INT(a->lddx),    MORA_ARG_INT(n),             MORA_ARG_FLOAT(a->scale)};
        return launch(ctx, k, 1, n, gather_args, 6);
    }
    case MORA_KIND_MERGE: {
        const mora_kernel_arg args[] = {MORA_ARG_BUF(a->W), MORA_ARG_INT(a->ldw), MORA_ARG_BUF(a->M),
                                        MORA_ARG_BUF(a->rope_table), MORA_ARG_FLOAT(a->scale)};
        return launch(ctx, k, 0, 1, args, 5);
    }
    }
    return mora_fail(MORA_E_UNKNOWN_KIND, "kind=%d: unknown kernel kind", (int)k->spec.kind);
}

mora_status mora_rope_table_create(mora_context *ctx, const mora_shape *s, void **table) {
    *table = NULL;
    if (s->op != MORA_OP_ROPE) return MORA_OK;
    const mora_geometry geo = mora_shape_geometry(s);
    const int64_t count = geo.blocks * geo.half * 2;
    float *host = malloc((size_t)count * sizeof *host);
    if (!host) return mora_fail(MORA_E_NO_MEMORY, "rope table: out of host memory for %lld floats", (long long)count);
    for (int64_t t = 0; t < geo.blocks; ++t)
        for (int64_t i = 0; i < geo.half; ++i) {
            const double angle = mora_rope_angle(s->rhat, t, i);
            host[2 * (t * geo.half + i)] = (float)cos(angle);
            host[2 * (t * geo.half + i) + 1] = (float)sin(angle);
        }
    const size_t bytes = (size_t)count * sizeof *host;
    mora_status st = ctx->be->buffer_alloc(ctx->be_ctx, bytes, table);
    if (st == MORA_OK) {
        st = ctx->be->buffer_write(ctx->be_ctx, *table, 0, host, bytes);
        if (st != MORA_OK) {
            ctx->be->buffer_free(ctx->be_ctx, *table);
            *table = NULL;
        }
    }
    free(host);
    return st;
}
