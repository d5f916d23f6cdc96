/* Adapters (mora.h): named layers, four float32 arenas, shared plans, ReMoRA. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <stdlib.h>
#include <string.h>

#include "adapter_internal.h"
#include "error.h"
#include "lifetime.h"
#include "options.h"
#include "plan_internal.h"
#include "shape.h"

/* The first layout of mora_adapter_options (the only one so far). */
#define ADAPTER_OPTIONS_OLDEST sizeof(mora_adapter_options)

static int64_t align_up(int64_t v) { return (v + MORA_ARENA_ALIGN - 1) / MORA_ARENA_ALIGN * MORA_ARENA_ALIGN; }

mora_status mora_adapter_plan_for(mora_adapter *a, const mora_shape *s, mora_dtype dtype, mora_dtype w_dtype,
                                  mora_plan **out) {
    for (int i = 0; i < a->plan_count; ++i) {
        const struct plan_key *k = &a->plan_keys[i];
        if (mora_shape_same(&k->shape, s) && k->dtype == dtype && k->w_dtype == w_dtype) {
            *out = a->plans[i];
            return MORA_OK;
        }
    }
    mora_plan **grown = realloc(a->plans, (size_t)(a->plan_count + 1) * sizeof *grown);
    if (grown) a->plans = grown;
    struct plan_key *keys = grown ? realloc(a->plan_keys, (size_t)(a->plan_count + 1) * sizeof *keys) : NULL;
    if (!keys) return mora_fail(MORA_E_NO_MEMORY, "adapter: out of host memory");
    a->plan_keys = keys;
    mora_plan_options options = MORA_PLAN_OPTIONS_INIT;
    options.merge_dtypes = 1u << w_dtype;
    MORA_TRY(mora_plan_make(a->ctx, s, dtype, a->max_tokens, &options, &a->plans[a->plan_count]));
    a->plan_keys[a->plan_count] = (struct plan_key){*s, dtype, w_dtype};
    *out = a->plans[a->plan_count++];
    return MORA_OK;
}

mora_status mora_adapter_zero_arena(mora_adapter *a, mora_arena which) {
    return mora_context_buffer_zero(a->ctx, a->arenas[which], (size_t)a->total * sizeof(float));
}

void mora_adapter_destroy(mora_adapter *a) {
    if (!a || a->magic != MORA_ADAPTER_MAGIC) return; /* NULL, destroyed already, or not an adapter */
    a->magic = 0;
    for (int i = 0; i < a->count; ++i) {
        mora_buffer_view_free(a->ctx, a->layers[i].M);
        mora_buffer_view_free(a->ctx, a->layers[i].dM);
        free(a->layers[i].name);
    }
    for (int i = 0; i < a->plan_count; ++i) mora_plan_destroy(a->plans[i]);
    mora_adapter_optimizer_release(a);
    for (int k = 0; k < 4; ++k)
        mora_context_buffer_free(a->ctx, a->arenas[k]);
    mora_context *ctx = a->ctx;
    free(a->layers), free(a->plans), free(a->plan_keys), free(a);
    mora_context_release(ctx);
}

/* r̂ and the rank a layer description gives (the rank of the nearest parameter count for an r̂). */
static mora_status describe_shape(const mora_adapter_layer_desc *d, int i, mora_shape *s, int64_t *rank) {
    if (d->lora_rank > 0) {
        *rank = d->lora_rank;
        return mora_shape_make(s, d->d_in, d->d_out, d->lora_rank, d->op);
    }
    if (d->lora_rank < 0 || d->rhat <= 0)
        return mora_fail(MORA_E_SIZE, "layers[%d] (\"%s\"): lora_rank=%lld, rhat=%lld: give a rank >= 1, or rank 0 and r̂ >= 1",
                         i, d->name, (long long)d->lora_rank, (long long)d->rhat);
    *s = (mora_shape){d->d_in, d->d_out, d->rhat, d->op};
    MORA_TRY(mora_shape_check(s));
    const int64_t sum = d->d_in + d->d_out;
    *rank = (d->rhat * d->rhat + sum / 2) / sum;
    if (*rank < 1) *rank = 1;
    return MORA_OK;
}

mora_status mora_adapter_create(mora_context *ctx, const mora_adapter_layer_desc *layers, int count, int64_t max_tokens,
                                const mora_adapter_options *options, mora_adapter **out) {
    mora_error_clear();
    MORA_CHECK_CONTEXT(ctx);
    MORA_CHECK_PTR(layers);
    MORA_CHECK_PTR(out);
    if (count < 1) return mora_fail(MORA_E_SIZE, "count=%d: an adapter needs at least one layer", count);
    mora_adapter_options o = MORA_ADAPTER_OPTIONS_INIT;
    MORA_TRY(mora_options_take(&o, sizeof o, options, ADAPTER_OPTIONS_OLDEST, "options", "mora_adapter_options"));
    const int types = o.remora_types ? o.remora_types : 4;
    if (types != 2 && types != 4) return mora_fail(MORA_E_ARG, "options->remora_types=%d: must be 2 or 4", types);
    mora_adapter *a = calloc(1, sizeof *a);
    if (!a) return mora_fail(MORA_E_NO_MEMORY, "adapter: out of host memory");
    a->magic = MORA_ADAPTER_MAGIC;
    a->ctx = ctx;
    mora_context_retain(ctx);
    a->max_tokens = max_tokens;
    a->remora_types = types;
    a->layers = calloc((size_t)count, sizeof *a->layers);
    mora_status st = a->layers ? MORA_OK : mora_fail(MORA_E_NO_MEMORY, "adapter: out of host memory");
    for (int i = 0; i < count && st == MORA_OK; ++i) {
        const mora_adapter_layer_desc *d = &layers[i];
        adapter_layer *l = &a->layers[i];
        if (!d->name || !*d->name) {
            st = mora_fail(MORA_E_NULL, "layers[%d].name: must be a non-empty string", i);
            break;
        }
        for (int j = 0; j < i && st == MORA_OK; ++j)
            if (strcmp(layers[j].name, d->name) == 0)
                st = mora_fail(MORA_E_ARG, "layers[%d].name=\"%s\": the same as layers[%d]'s", i, d->name, j);
        if (st == MORA_OK && (mora_dtype_size(d->dtype) == 0 || mora_dtype_size(d->w_dtype) == 0))
            st = mora_fail(MORA_E_UNKNOWN_DTYPE, "layers[%d] (\"%s\"): dtype=%d, w_dtype=%d: expected 0, 1 or 2", i,
                           d->name, (int)d->dtype, (int)d->w_dtype);
        if (st == MORA_OK) st = describe_shape(d, i, &l->shape, &l->lora_rank);
        if (st != MORA_OK) break;
        l->dtype = d->dtype;
        l->w_dtype = d->w_dtype;
        l->offset = a->total;
        a->total = align_up(a->total + l->shape.rhat * l->shape.rhat);
        a->count = i + 1;
        if (!(l->name = strdup(d->name))) st = mora_fail(MORA_E_NO_MEMORY, "adapter: out of host memory");
    }
    for (int k = 0; k < 4 && st == MORA_OK; ++k) {
        st = mora_context_buffer_alloc(ctx, (size_t)a->total * sizeof(float), &a->arenas[k]);
        if (st == MORA_OK) st = mora_adapter_zero_arena(a, (mora_arena)k);
    }
    for (int i = 0; i < a->count && st == MORA_OK; ++i) {
        adapter_layer *l = &a->layers[i];
        const size_t bytes = (size_t)(l->shape.rhat * l->shape.rhat) * sizeof(float), at = (size_t)l->offset * sizeof(float);
        st = mora_buffer_view(ctx, a->arenas[MORA_ARENA_PARAMS], at, bytes, &l->M);
        if (st == MORA_OK) st = mora_buffer_view(ctx, a->arenas[MORA_ARENA_GRADS], at, bytes, &l->dM);
        if (st == MORA_OK) st = mora_adapter_plan_for(a, &l->shape, l->dtype, l->w_dtype, &l->plan);
    }
    if (st == MORA_OK) st = mora_context_synchronize(ctx);
    if (st != MORA_OK) {
        mora_adapter_destroy(a);
        return st;
    }
    mora_error_clear();
    *out = a;
    return MORA_OK;
}

static int live(const mora_adapter *a) { return a && a->magic == MORA_ADAPTER_MAGIC; }

int mora_adapter_layer_count(const mora_adapter *a) { return live(a) ? a->count : 0; }

mora_status mora_adapter_find(const mora_adapter *a, const char *name, int *index) {
    mora_error_clear();
    MORA_CHECK_ADAPTER(a);
    MORA_CHECK_PTR(name);
    MORA_CHECK_PTR(index);
    for (int i = 0; i < a->count; ++i)
        if (strcmp(a->layers[i].name, name) == 0) {
            *index = i;
            return MORA_OK;
        }
    return mora_fail(MORA_E_NOT_FOUND, "name=\"%s\": no layer of the adapter has it", name);
}

static mora_status check_index(const mora_adapter *a, int index) {
    MORA_CHECK_ADAPTER(a);
    if (index < 0 || index >= a->count)
        return mora_fail(MORA_E_ARG, "index=%d: the adapter has layers 0..%d", index, a->count - 1);
    return MORA_OK;
}

mora_status mora_adapter_layer(const mora_adapter *a, int index, mora_adapter_layer_info *info) {
    mora_error_clear();
    MORA_TRY(check_index(a, index));
    MORA_CHECK_PTR(info);
    const adapter_layer *l = &a->layers[index];
    *info = (mora_adapter_layer_info){l->name, l->shape, l->dtype, l->w_dtype, l->lora_rank, l->offset};
    return MORA_OK;
}

mora_status mora_adapter_arena(const mora_adapter *a, mora_arena which, void **buffer, int64_t *count) {
    mora_error_clear();
    MORA_CHECK_ADAPTER(a);
    MORA_CHECK_PTR(buffer);
    MORA_CHECK_PTR(count);
    if ((int)which < 0 || (int)which > MORA_ARENA_EXP_AVG_SQ)
        return mora_fail(MORA_E_ARG, "which=%d: expected MORA_ARENA_PARAMS, _GRADS, _EXP_AVG or _EXP_AVG_SQ", (int)which);
    *buffer = a->arenas[which];
    *count = a->total;
    return MORA_OK;
}

mora_status mora_adapter_forward(mora_adapter *a, int index, const void *x, int64_t ldx, void *y, int64_t ldy, int64_t n,
                                 float scale) {
    MORA_TRY(check_index(a, index));
    const adapter_layer *l = &a->layers[index];
    return mora_forward(l->plan, l->M, x, ldx, y, ldy, n, scale);
}

mora_status mora_adapter_backward(mora_adapter *a, int index, const void *x, int64_t ldx, const void *dy, int64_t lddy,
                                  void *dx, int64_t lddx, int64_t n, float scale) {
    MORA_TRY(check_index(a, index));
    const adapter_layer *l = &a->layers[index];
    return mora_backward(l->plan, l->M, x, ldx, dy, lddy, dx, lddx, l->dM, n, scale);
}

mora_status mora_adapter_zero_grad(mora_adapter *a) {
    mora_error_clear();
    MORA_CHECK_ADAPTER(a);
    return mora_adapter_zero_arena(a, MORA_ARENA_GRADS);
}

int64_t mora_adapter_steps(const mora_adapter *a) { return live(a) ? a->steps : 0; }

/* The next sharing type of ReMoRA's cycle (reference ids: 1 share, 2 group, 3 group-tile,
 * 4 share-interleave); other types keep theirs. */
static mora_op next_type(mora_op op, int types) {
    if (types == 2) return op == MORA_OP_SHARE ? MORA_OP_GROUP : op == MORA_OP_GROUP ? MORA_OP_SHARE : op;
    if (op >= MORA_OP_SHARE && op <= MORA_OP_SHARE_INTERLEAVE) return op == MORA_OP_SHARE_INTERLEAVE ? MORA_OP_SHARE : op + 1;
    return op;
}

mora_status mora_adapter_remora(mora_adapter *a, void *const *W, const int64_t *ld) {
    mora_error_clear();
    MORA_CHECK_ADAPTER(a);
    MORA_CHECK_PTR(W);
    MORA_CHECK_PTR(ld);
    /* the new types and their plans first: a failure there changes nothing */
    mora_shape *next = calloc((size_t)a->count, sizeof *next);
    mora_plan **plans = calloc((size_t)a->count, sizeof *plans);
    mora_status st = next && plans ? MORA_OK : mora_fail(MORA_E_NO_MEMORY, "adapter: out of host memory");
    for (int i = 0; i < a->count && st == MORA_OK; ++i) {
        const adapter_layer *l = &a->layers[i];
        next[i] = l->shape;
        for (int tries = 0; tries < 4; ++tries) { /* pass over a type the shape cannot take */
            next[i].op = next_type(next[i].op, a->remora_types);
            if (next[i].op == l->shape.op || mora_shape_check(&next[i]) == MORA_OK) break;
        }
        if (mora_shape_check(&next[i]) != MORA_OK) next[i].op = l->shape.op;
        st = mora_adapter_plan_for(a, &next[i], l->dtype, l->w_dtype, &plans[i]);
        if (st == MORA_OK && !W[i]) st = mora_fail(MORA_E_NULL, "W[%d]=NULL (layer \"%s\"): must not be NULL", i, l->name);
    }
    /* W0 += ΔW with the current types (each call checks its W) */
    for (int i = 0; i < a->count && st == MORA_OK; ++i) {
        const adapter_layer *l = &a->layers[i];
        st = mora_merge(l->plan, l->M, W[i], ld[i], l->w_dtype, 1.0f);
    }
    if (st == MORA_OK) {
        for (int k = 0; k < 4 && st == MORA_OK; ++k)
            if (k != MORA_ARENA_GRADS) st = mora_adapter_zero_arena(a, (mora_arena)k);
        a->steps = 0;
        a->clipped = 0;
        for (int i = 0; i < a->count; ++i) a->layers[i].shape = next[i], a->layers[i].plan = plans[i];
    }
    free(next), free(plans);
    return st;
}
