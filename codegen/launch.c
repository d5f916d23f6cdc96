/* Launching one kind's kernels (see launch.h): every entry point's argument list is read from its
 * declared table (codegen/kernels.c) and marshalled here, once, for every kind and backend. */
#include "launch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "shape.h"

mora_status mora_kind_kernels_init(mora_context *ctx, const mora_kernel_spec *spec, void *program, mora_kind_kernels *k) {
    memset(k, 0, sizeof *k);
    const mora_kind_decl *d = mora_spec_decl(spec);
    if (!d) return mora_fail(MORA_E_UNKNOWN_KIND, "kind=%d: unknown kernel kind", (int)spec->kind);
    k->spec = *spec;
    k->program = program;
    for (int e = 0; e < d->entry_count; ++e) {
        const mora_status st = mora_context_kernel_create(ctx, program, d->entries[e].name, &k->handles[e]);
        if (st != MORA_OK) {
            mora_kind_kernels_release(ctx, k);
            return st;
        }
    }
    return MORA_OK;
}

void mora_kind_kernels_release(mora_context *ctx, mora_kind_kernels *k) {
    for (int e = 0; e < MORA_MAX_ENTRIES; ++e) mora_context_kernel_free(ctx, k->handles[e]);
    memset(k, 0, sizeof *k);
}

/* The value of one argument of a call. */
static mora_kernel_arg arg_value(mora_karg id, const mora_kind_args *a, int64_t n) {
    switch (id) {
    case MORA_KARG_X: return MORA_ARG_BUF(a->x);
    case MORA_KARG_LDX: return MORA_ARG_INT(a->ldx);
    case MORA_KARG_Y: return MORA_ARG_BUF(a->y);
    case MORA_KARG_LDY: return MORA_ARG_INT(a->ldy);
    case MORA_KARG_DY: return MORA_ARG_BUF(a->dy);
    case MORA_KARG_LDDY: return MORA_ARG_INT(a->lddy);
    case MORA_KARG_DX: return MORA_ARG_BUF(a->dx);
    case MORA_KARG_LDDX: return MORA_ARG_INT(a->lddx);
    case MORA_KARG_M: return MORA_ARG_BUF(a->M);
    case MORA_KARG_DM: return MORA_ARG_BUF(a->dM);
    case MORA_KARG_W: return MORA_ARG_BUF(a->W);
    case MORA_KARG_LDW: return MORA_ARG_INT(a->ldw);
    case MORA_KARG_ROPE_TABLE: return MORA_ARG_BUF(a->rope_table);
    case MORA_KARG_SCRATCH: return MORA_ARG_BUF(a->scratch);
    case MORA_KARG_N: return MORA_ARG_INT(n);
    case MORA_KARG_SCALE: return MORA_ARG_FLOAT(a->scale);
    case MORA_KARG_PARAMS: return MORA_ARG_BUF(a->params);
    case MORA_KARG_GRADS: return MORA_ARG_BUF(a->grads);
    case MORA_KARG_EXP_AVG: return MORA_ARG_BUF(a->exp_avg);
    case MORA_KARG_EXP_AVG_SQ: return MORA_ARG_BUF(a->exp_avg_sq);
    case MORA_KARG_PARTIAL: return MORA_ARG_BUF(a->partial);
    case MORA_KARG_PARTIAL_COUNT: return MORA_ARG_INT((n + MORA_ADAMW_CHUNK - 1) / MORA_ADAMW_CHUNK);
    case MORA_KARG_MAX_NORM: return MORA_ARG_FLOAT(a->max_norm);
    case MORA_KARG_CLIP: return MORA_ARG_BUF(a->clip);
    case MORA_KARG_DECAY: return MORA_ARG_FLOAT(a->decay);
    case MORA_KARG_ONE_MINUS_BETA1: return MORA_ARG_FLOAT(a->one_minus_beta1);
    case MORA_KARG_BETA2: return MORA_ARG_FLOAT(a->beta2);
    case MORA_KARG_ONE_MINUS_BETA2: return MORA_ARG_FLOAT(a->one_minus_beta2);
    case MORA_KARG_NEG_STEP_SIZE: return MORA_ARG_FLOAT(a->neg_step_size);
    case MORA_KARG_BIAS2_SQRT: return MORA_ARG_FLOAT(a->bias2_sqrt);
    case MORA_KARG_EPS: return MORA_ARG_FLOAT(a->eps);
    case MORA_KARG_USE_CLIP: return MORA_ARG_INT(a->max_norm > 0);
    case MORA_KARG_END: break;
    }
    return MORA_ARG_INT(0);
}

static int entry_runs(const mora_entry_decl *e, const mora_kernel_spec *spec, const mora_kind_args *a, int64_t n) {
    switch (e->runs) {
    case MORA_RUNS_ALWAYS: return 1;
    case MORA_RUNS_WITH_SCRATCH: return mora_spec_scratch_floats(spec, n) > 0;
    case MORA_RUNS_WITH_CLIP: return a->max_norm > 0;
    }
    return 1;
}

mora_status mora_kind_launch(mora_context *ctx, const mora_kind_kernels *k, const mora_kind_args *a, int64_t n) {
    const mora_kind_decl *d = mora_spec_decl(&k->spec);
    if (!d) return mora_fail(MORA_E_UNKNOWN_KIND, "kind=%d: unknown kernel kind", (int)k->spec.kind);
    for (int e = 0; e < d->entry_count; ++e) {
        const mora_entry_decl *entry = &d->entries[e];
        if (!entry_runs(entry, &k->spec, a, n)) continue;
        mora_kernel_arg args[MORA_MAX_KERNEL_ARGS];
        int count = 0;
        while (count < MORA_MAX_KERNEL_ARGS && entry->args[count] != MORA_KARG_END) {
            args[count] = arg_value(entry->args[count], a, n);
            ++count;
        }
        size_t groups[3], local[3] = {mora_spec_threads(&k->spec, e), 1, 1};
        mora_spec_groups(&k->spec, e, n, groups);
        MORA_TRY(mora_context_launch(ctx, k->handles[e], groups, local, args, count));
    }
    return MORA_OK;
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
    mora_status st = mora_context_buffer_alloc(ctx, bytes, table);
    if (st == MORA_OK) {
        st = mora_context_buffer_write(ctx, *table, 0, host, bytes);
        if (st != MORA_OK) {
            mora_context_buffer_free(ctx, *table);
            *table = NULL;
        }
    }
    free(host);
    return st;
}
