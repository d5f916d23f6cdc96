/* Internal: what an adapter holds, shared by its files — adapter.c (layers, arenas, plans, ReMoRA),
 * optimizer.c (AdamW over the arenas), checkpoint.c (the PEFT files). */
#ifndef MORA_TRAIN_ADAPTER_INTERNAL_H
#define MORA_TRAIN_ADAPTER_INTERNAL_H

#include "context.h"
#include "launch.h"
#include "mora.h"

typedef struct adapter_layer {
    char *name;
    mora_shape shape; /* op: the current one */
    mora_dtype dtype, w_dtype;
    int64_t lora_rank;
    int64_t offset;   /* elements into every arena */
    mora_plan *plan;  /* shared with the layers of the same shape, op and dtypes (owned by plans[]) */
    void *M, *dM;     /* views of the layer's slice of the parameter and gradient arenas */
} adapter_layer;

/* The first word of a live adapter (mora.h, "Handles"); cleared by mora_adapter_destroy. */
#define MORA_ADAPTER_MAGIC 0x4d4f5241u /* "MORA" */
/* Checks a public call's adapter argument. */
#define MORA_CHECK_ADAPTER(a) MORA_CHECK_HANDLE(a, "adapter", MORA_ADAPTER_MAGIC, "mora_adapter")

struct mora_adapter {
    uint32_t magic;
    mora_context *ctx; /* held (api/lifetime.h) from creation to destruction */
    adapter_layer *layers;
    int count;
    mora_plan **plans; /* distinct plans, made on demand */
    struct plan_key {
        mora_shape shape;
        mora_dtype dtype, w_dtype;
    } *plan_keys;      /* what each plan was made for */
    int plan_count;
    int64_t max_tokens;
    int remora_types;
    void *arenas[4]; /* mora_arena order */
    int64_t total;   /* elements of each arena (padding included) */
    int64_t steps;
    /* the optimizer: the AdamW kind's kernels (made at the first step), the partial sums of the
     * gradient norm and the [norm, coefficient] pair */
    mora_kind_kernels adamw;
    void *partial, *clip;
    int64_t partial_count;
    int clipped; /* the last step clipped: clip holds its norm */
};

/* The plan for a layer's shape, dtype and W dtype: an existing one, else made now. */
mora_status mora_adapter_plan_for(mora_adapter *a, const mora_shape *s, mora_dtype dtype, mora_dtype w_dtype,
                                  mora_plan **plan);
/* Releases the optimizer's device objects. */
void mora_adapter_optimizer_release(mora_adapter *a);
/* Zeroes an arena (enqueued). */
mora_status mora_adapter_zero_arena(mora_adapter *a, mora_arena which);

#endif
