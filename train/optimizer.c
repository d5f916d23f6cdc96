/* The optimizer step (mora.h: mora_adapter_step): AdamW over the four arenas through the optimizer's
 * kind (templates/adamw.kern on a device, the host kernels of runtime/cpu_kernels.h on the cpu
 * backend: the same rule in the same order of operations), launched like every other kind. The
 * gradient norm's sum is cut into the same fixed chunks everywhere, so its result depends only on
 * the arena's length. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "adapter_internal.h"
#include "error.h"
#include "kernels.h"
#include "options.h"
#include "programs.h"

/* The first layout of mora_adamw (the only one so far). */
#define ADAMW_OLDEST sizeof(mora_adamw)

mora_adamw mora_adamw_defaults(void) {
    const mora_adamw hp = MORA_ADAMW_DEFAULTS;
    return hp;
}

void mora_adapter_optimizer_release(mora_adapter *a) {
    mora_kind_kernels_release(a->ctx, &a->adamw);
    mora_context_buffer_free(a->ctx, a->partial);
    mora_context_buffer_free(a->ctx, a->clip);
    a->partial = a->clip = NULL;
}

/* The kernels and the norm's scratch, made at the first step (a compile, like a plan's; the
 * program stays in the context's registry). */
static mora_status prepare(mora_adapter *a) {
    if (a->clip) return MORA_OK;
    mora_context *ctx = a->ctx;
    a->partial_count = (a->total + MORA_ADAMW_CHUNK - 1) / MORA_ADAMW_CHUNK;
    mora_status st = mora_context_buffer_alloc(ctx, (size_t)a->partial_count * sizeof(float), &a->partial);
    if (st != MORA_OK) a->partial = NULL;
    if (st == MORA_OK && (st = mora_context_buffer_alloc(ctx, 2 * sizeof(float), &a->clip)) != MORA_OK) a->clip = NULL;
    const mora_kernel_spec spec = mora_spec_adamw(ctx->be->dialect);
    if (st == MORA_OK) st = mora_kind_prepare(ctx, &spec, &a->adamw);
    if (st != MORA_OK) mora_adapter_optimizer_release(a);
    return st;
}

mora_status mora_adapter_step(mora_adapter *a, const mora_adamw *given) {
    mora_error_clear();
    MORA_CHECK_ADAPTER(a);
    MORA_CHECK_PTR(given);
    mora_adamw taken = MORA_ADAMW_DEFAULTS;
    MORA_TRY(mora_options_take(&taken, sizeof taken, given, ADAMW_OLDEST, "hp", "mora_adamw"));
    const mora_adamw *hp = &taken;
    if (!(hp->lr >= 0 && isfinite(hp->lr)) || !(hp->beta1 >= 0 && hp->beta1 < 1) || !(hp->beta2 >= 0 && hp->beta2 < 1) ||
        !(hp->eps >= 0 && isfinite(hp->eps)) || !(hp->weight_decay >= 0 && isfinite(hp->weight_decay)) ||
        !(hp->max_grad_norm >= 0 && isfinite(hp->max_grad_norm)))
        return mora_fail(MORA_E_ARG,
                         "hp: lr=%g beta1=%g beta2=%g eps=%g weight_decay=%g max_grad_norm=%g: need lr, eps, "
                         "weight_decay, max_grad_norm finite and >= 0 and betas in [0, 1)",
                         hp->lr, hp->beta1, hp->beta2, hp->eps, hp->weight_decay, hp->max_grad_norm);
    MORA_TRY(prepare(a));
    /* torch computes these in double (Python floats) and hands them to float32 kernels */
    const int64_t t = a->steps + 1;
    const double bias1 = 1.0 - pow((double)hp->beta1, (double)t), bias2 = 1.0 - pow((double)hp->beta2, (double)t);
    const float decay = (float)(1.0 - (double)hp->lr * hp->weight_decay);
    const float neg_step_size = (float)(-(double)hp->lr / bias1), bias2_sqrt = (float)sqrt(bias2);
    const int clip = hp->max_grad_norm > 0;
    const mora_kind_args args = {.params = a->arenas[MORA_ARENA_PARAMS], .grads = a->arenas[MORA_ARENA_GRADS],
                                 .exp_avg = a->arenas[MORA_ARENA_EXP_AVG], .exp_avg_sq = a->arenas[MORA_ARENA_EXP_AVG_SQ],
                                 .partial = a->partial, .clip = a->clip, .max_norm = clip ? hp->max_grad_norm : 0.0f,
                                 .decay = decay, .one_minus_beta1 = (float)(1.0 - (double)hp->beta1), .beta2 = hp->beta2,
                                 .one_minus_beta2 = (float)(1.0 - (double)hp->beta2), .neg_step_size = neg_step_size,
                                 .bias2_sqrt = bias2_sqrt, .eps = hp->eps};
    MORA_TRY(mora_kind_launch(a->ctx, &a->adamw, &args, a->total));
    a->steps = t;
    a->clipped = clip;
    return MORA_OK;
}

mora_status mora_adapter_last_grad_norm(mora_adapter *a, float *norm) {
    mora_error_clear();
    MORA_CHECK_ADAPTER(a);
    MORA_CHECK_PTR(norm);
    if (!a->clipped) return mora_fail(MORA_E_NOT_FOUND, "adapter: the last step did not clip (max_grad_norm = 0) or none was taken");
    return mora_context_buffer_read(a->ctx, a->clip, 0, norm, sizeof *norm);
}
