/* The optimizer step (mora.h: mora_adapter_step): AdamW over the four arenas, on the device through
 * the generated kernels of templates/adamw.kern, or on the host (cpu backend) by the same rule in the
 * same order of operations. The gradient norm's sum is cut into the same fixed chunks on both, so
 * its result depends only on the arena's length. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adapter_internal.h"
#include "error.h"
#include "kernels.h"
#include "programs.h"

mora_adamw mora_adamw_defaults(void) {
    const mora_adamw hp = {1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f, 0.0f};
    return hp;
}

void mora_adapter_optimizer_release(mora_adapter *a) {
    for (int k = 0; k < 3; ++k)
        if (a->adamw_kernels[k]) a->ctx->be->kernel_free(a->ctx->be_ctx, a->adamw_kernels[k]);
    /* the backend's own free: mora_buffer_free would clear the error sentence of a failed prepare */
    if (a->partial) a->ctx->be->buffer_free(a->ctx->be_ctx, a->partial);
    if (a->clip) a->ctx->be->buffer_free(a->ctx->be_ctx, a->clip);
    memset(a->adamw_kernels, 0, sizeof a->adamw_kernels);
    a->partial = a->clip = NULL;
}

/* The kernels and the norm's scratch, made at the first step (a compile, like a plan's; the
 * program stays in the context's registry). */
static mora_status prepare(mora_adapter *a) {
    if (a->clip) return MORA_OK;
    mora_context *ctx = a->ctx;
    a->partial_count = (a->total + MORA_ADAMW_CHUNK - 1) / MORA_ADAMW_CHUNK;
    mora_status st = mora_buffer_alloc(ctx, (size_t)a->partial_count * sizeof(float), &a->partial);
    if (st == MORA_OK) st = mora_buffer_alloc(ctx, 2 * sizeof(float), &a->clip);
    if (st == MORA_OK && ctx->be->program_build) {
        char *source = NULL;
        void *program = NULL;
        st = mora_codegen_adamw((mora_dialect)ctx->be->dialect, &source);
        if (st == MORA_OK) st = mora_program_obtain(ctx, source, &program);
        free(source);
        const char *entries[3] = {MORA_ADAMW_PARTIAL, MORA_ADAMW_FINISH, MORA_ADAMW_STEP};
        for (int k = 0; k < 3 && st == MORA_OK; ++k) st = ctx->be->kernel_create(ctx->be_ctx, program, entries[k], &a->adamw_kernels[k]);
    }
    if (st != MORA_OK) mora_adapter_optimizer_release(a);
    return st;
}

/* The host's version, on the arenas' host memory (cpu backend), split over the cores: each worker
 * takes a contiguous range of whole chunks, first for the norm's partial sums, then (after all have
 * joined and the partials were added in chunk order) for the update. Every element's result and
 * every partial is the same whatever the worker count: the serial loop's bits. */
typedef struct host_step {
    mora_adapter *a;
    const mora_adamw *hp;
    float decay, neg_step_size, bias2_sqrt, one_minus_beta1, one_minus_beta2;
    int phase;            /* 0: the norm's partial sums; 1: the update */
    int64_t chunk_begin, chunk_end;
} host_step;

static void *host_step_range(void *arg) {
    const host_step *h = arg;
    mora_adapter *a = h->a;
    float *p = a->arenas[MORA_ARENA_PARAMS], *g = a->arenas[MORA_ARENA_GRADS], *m = a->arenas[MORA_ARENA_EXP_AVG],
          *v = a->arenas[MORA_ARENA_EXP_AVG_SQ], *partial = a->partial;
    const float *clip = a->clip;
    const int64_t count = a->total;
    for (int64_t w = h->chunk_begin; w < h->chunk_end; ++w) {
        const int64_t begin = w * MORA_ADAMW_CHUNK, end = begin + MORA_ADAMW_CHUNK < count ? begin + MORA_ADAMW_CHUNK : count;
        if (h->phase == 0) {
            float s = 0.0f;
            for (int64_t i = begin; i < end; ++i) s += g[i] * g[i];
            partial[w] = s;
            continue;
        }
        for (int64_t i = begin; i < end; ++i) {
            float grad = g[i];
            if (h->hp->max_grad_norm > 0) g[i] = grad = grad * clip[1];
            const float param = p[i] * h->decay;
            const float mi = m[i] + h->one_minus_beta1 * (grad - m[i]);
            const float vi = v[i] * h->hp->beta2 + (h->one_minus_beta2 * grad) * grad;
            m[i] = mi;
            v[i] = vi;
            p[i] = param + (h->neg_step_size * mi) / (sqrtf(vi) / h->bias2_sqrt + h->hp->eps);
        }
    }
    return NULL;
}

/* Runs one phase over every chunk on up to `workers` threads (the caller's included). */
static void host_phase(host_step *base, int phase, int workers) {
    host_step jobs[8];
    pthread_t threads[8];
    int started[8] = {0};
    const int64_t chunks = base->a->partial_count;
    for (int w = 0; w < workers; ++w) {
        jobs[w] = *base;
        jobs[w].phase = phase;
        jobs[w].chunk_begin = chunks * w / workers;
        jobs[w].chunk_end = chunks * (w + 1) / workers;
    }
    for (int w = 1; w < workers; ++w) started[w] = pthread_create(&threads[w], NULL, host_step_range, &jobs[w]) == 0;
    host_step_range(&jobs[0]);
    for (int w = 1; w < workers; ++w) {
        if (started[w]) pthread_join(threads[w], NULL);
        else host_step_range(&jobs[w]); /* no thread to be had: do its range here */
    }
}

static void step_on_host(mora_adapter *a, const mora_adamw *hp, float decay, float neg_step_size, float bias2_sqrt) {
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int workers = cores < 1 ? 1 : cores > 8 ? 8 : (int)cores;
    if (workers > a->partial_count) workers = (int)a->partial_count;
    if (workers < 1) workers = 1;
    host_step base = {a, hp, decay, neg_step_size, bias2_sqrt, (float)(1.0 - (double)hp->beta1),
                      (float)(1.0 - (double)hp->beta2), 0, 0, 0};
    if (hp->max_grad_norm > 0) {
        host_phase(&base, 0, workers);
        const float *partial = a->partial;
        float *clip = a->clip, total = 0.0f;
        for (int64_t w = 0; w < a->partial_count; ++w) total += partial[w];
        clip[0] = sqrtf(total);
        const float coef = hp->max_grad_norm / (clip[0] + 1e-6f);
        clip[1] = coef < 1.0f ? coef : 1.0f;
    }
    host_phase(&base, 1, workers);
}

mora_status mora_adapter_step(mora_adapter *a, const mora_adamw *hp) {
    mora_error_clear();
    MORA_CHECK_PTR(a);
    MORA_CHECK_PTR(hp);
    if (!(hp->lr >= 0) || !(hp->beta1 >= 0 && hp->beta1 < 1) || !(hp->beta2 >= 0 && hp->beta2 < 1) || !(hp->eps >= 0) ||
        !(hp->weight_decay >= 0) || !(hp->max_grad_norm >= 0))
        return mora_fail(MORA_E_ARG,
                         "hp: lr=%g beta1=%g beta2=%g eps=%g weight_decay=%g max_grad_norm=%g: need lr, eps, "
                         "weight_decay, max_grad_norm >= 0 and betas in [0, 1)",
                         hp->lr, hp->beta1, hp->beta2, hp->eps, hp->weight_decay, hp->max_grad_norm);
    MORA_TRY(prepare(a));
    /* torch computes these in double (Python floats) and hands them to float32 kernels */
    const int64_t t = a->steps + 1;
    const double bias1 = 1.0 - pow((double)hp->beta1, (double)t), bias2 = 1.0 - pow((double)hp->beta2, (double)t);
    const float decay = (float)(1.0 - (double)hp->lr * hp->weight_decay);
    const float neg_step_size = (float)(-(double)hp->lr / bias1), bias2_sqrt = (float)sqrt(bias2);
    const int clip = hp->max_grad_norm > 0;
    mora_context *ctx = a->ctx;
    if (!ctx->be->program_build) {
        step_on_host(a, hp, decay, neg_step_size, bias2_sqrt);
    } else {
        const size_t local[3] = {MORA_ADAMW_LS, 1, 1};
        if (clip) {
            const size_t groups[3] = {(size_t)a->partial_count, 1, 1}, one[3] = {1, 1, 1};
            const mora_kernel_arg partial_args[] = {MORA_ARG_BUF(a->arenas[MORA_ARENA_GRADS]), MORA_ARG_INT(a->total),
                                                    MORA_ARG_BUF(a->partial)};
            MORA_TRY(ctx->be->launch(ctx->be_ctx, a->adamw_kernels[0], groups, local, partial_args, 3));
            const mora_kernel_arg finish_args[] = {MORA_ARG_BUF(a->partial), MORA_ARG_INT(a->partial_count),
                                                   MORA_ARG_FLOAT(hp->max_grad_norm), MORA_ARG_BUF(a->clip)};
            MORA_TRY(ctx->be->launch(ctx->be_ctx, a->adamw_kernels[1], one, local, finish_args, 4));
        }
        const size_t groups[3] = {(size_t)((a->total + MORA_ADAMW_LS - 1) / MORA_ADAMW_LS), 1, 1};
        const mora_kernel_arg args[] = {
            MORA_ARG_BUF(a->arenas[MORA_ARENA_PARAMS]), MORA_ARG_BUF(a->arenas[MORA_ARENA_GRADS]),
            MORA_ARG_BUF(a->arenas[MORA_ARENA_EXP_AVG]), MORA_ARG_BUF(a->arenas[MORA_ARENA_EXP_AVG_SQ]),
            MORA_ARG_INT(a->total), MORA_ARG_FLOAT(decay), MORA_ARG_FLOAT((float)(1.0 - (double)hp->beta1)),
            MORA_ARG_FLOAT(hp->beta2), MORA_ARG_FLOAT((float)(1.0 - (double)hp->beta2)), MORA_ARG_FLOAT(neg_step_size), MORA_ARG_FLOAT(bias2_sqrt),
            MORA_ARG_FLOAT(hp->eps), MORA_ARG_BUF(a->clip), MORA_ARG_INT(clip)};
        MORA_TRY(ctx->be->launch(ctx->be_ctx, a->adamw_kernels[2], groups, local, args, 14));
    }
    a->steps = t;
    a->clipped = clip;
    return MORA_OK;
}

mora_status mora_adapter_last_grad_norm(mora_adapter *a, float *norm) {
    mora_error_clear();
    MORA_CHECK_PTR(a);
    MORA_CHECK_PTR(norm);
    if (!a->clipped) return mora_fail(MORA_E_NOT_FOUND, "adapter: the last step did not clip (max_grad_norm = 0) or none was taken");
    return mora_buffer_read(a->ctx, a->clip, 0, norm, sizeof *norm);
}
