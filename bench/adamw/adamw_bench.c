/* mora-adamw-bench — the optimizer step over the arena of a LLaMA-2-7B adapter (r = 8 on all seven
 * projections of 32 blocks: 224 layers, about 20 M floats) is one memory-bound pass: it reads M, dM,
 * m and v and writes M, m and v (28 bytes per element). This times mora_adapter_step and reports its
 * bandwidth against the device's copy bandwidth (a buffer copy of the same size, 8 bytes per element).
 *
 *   build/mora-adamw-bench [--backend auto] [--blocks 32] [--reps 20] [--clip]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mora.h>

#include "context.h" /* internal: the backend's buffer copy, the bandwidth reference */
#include "tuner.h"   /* internal: mora_time_calls, the project's timing loop */

#define TRY(call)                                                                              \
    do {                                                                                       \
        const mora_status s_ = (call);                                                         \
        if (s_ != MORA_OK) {                                                                   \
            fprintf(stderr, "mora-adamw-bench: %s failed: %s\n", #call, mora_last_error());    \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

typedef struct timed {
    mora_context *ctx;
    mora_adapter *adapter;
    const mora_adamw *hp;
    void *src, *dst;
    size_t bytes;
} timed;

static mora_status one_step(void *user, int rep) {
    (void)rep;
    const timed *t = user;
    return mora_adapter_step(t->adapter, t->hp);
}

static mora_status one_copy(void *user, int rep) {
    (void)rep;
    const timed *t = user;
    return mora_context_buffer_copy(t->ctx, t->src, 0, t->dst, 0, t->bytes);
}

int main(int argc, char **argv) {
    const char *backend = "auto";
    int blocks = 32, reps = 20, clip = 0;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) backend = argv[++i];
        else if (strcmp(argv[i], "--blocks") == 0 && i + 1 < argc) blocks = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--clip") == 0) clip = 1;
        else {
            const int help = strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
            fprintf(help ? stdout : stderr,
                    "usage: mora-adamw-bench [--backend NAME] [--blocks N] [--reps N] [--clip]\n"
                    "Times AdamW (mora_adapter_step) over a LLaMA-2-7B r = 8 adapter's arena (N blocks of 7\n"
                    "projections; 32 blocks: 224 layers, 20 M floats) against a buffer copy of the same size.\n");
            return help ? 0 : 2;
        }
    }
    if (blocks < 1 || blocks > 80 || reps < 3 || reps > 1000) {
        fprintf(stderr, "mora-adamw-bench: --blocks 1..80, --reps 3..1000\n");
        return 2;
    }
    /* LLaMA-2-7B's projections per block: q k v o 4096→4096, gate up 4096→11008, down 11008→4096 */
    static const struct {
        const char *name;
        int64_t d_in, d_out;
    } projections[7] = {{"self_attn.q_proj", 4096, 4096}, {"self_attn.k_proj", 4096, 4096}, {"self_attn.v_proj", 4096, 4096},
                        {"self_attn.o_proj", 4096, 4096}, {"mlp.gate_proj", 4096, 11008}, {"mlp.up_proj", 4096, 11008},
                        {"mlp.down_proj", 11008, 4096}};
    const int count = 7 * blocks;
    mora_adapter_layer_desc *layers = calloc((size_t)count, sizeof *layers);
    char (*names)[64] = calloc((size_t)count, 64);
    for (int b = 0; b < blocks; ++b)
        for (int p = 0; p < 7; ++p) {
            const int i = 7 * b + p;
            snprintf(names[i], 64, "model.layers.%d.%s", b, projections[p].name);
            layers[i] = (mora_adapter_layer_desc){names[i], projections[p].d_in, projections[p].d_out, 8, 0, MORA_OP_ROPE,
                                                  MORA_BF16, MORA_BF16};
        }
    mora_context *ctx;
    TRY(mora_context_create(backend, 0, &ctx));
    fprintf(stderr, "mora-adamw-bench: %s (%s): %d layers, preparing the adapter (plans compile)\n",
            mora_context_backend(ctx), mora_context_device_name(ctx), count);
    mora_adapter *a;
    TRY(mora_adapter_create(ctx, layers, count, 1, NULL, &a));
    void *grads;
    int64_t elements;
    TRY(mora_adapter_arena(a, MORA_ARENA_GRADS, &grads, &elements));
    float *host = malloc((size_t)elements * sizeof *host);
    for (int64_t i = 0; i < elements; ++i) host[i] = (float)((i % 97) - 48) * 1e-3f;
    TRY(mora_buffer_write(ctx, grads, 0, host, (size_t)elements * sizeof *host));
    mora_adamw hp = mora_adamw_defaults();
    hp.max_grad_norm = clip ? 1.0f : 0.0f;

    void *copy = NULL;
    TRY(mora_buffer_alloc(ctx, (size_t)elements * sizeof(float), &copy));
    if (!mora_context_has_copy(ctx)) {
        fprintf(stderr, "mora-adamw-bench: the %s backend has no buffer copy to compare with\n", mora_context_backend(ctx));
        return 1;
    }
    /* the project's timing loop (tuner/measure.c: warm-up, repetitions, median), wall clock around a
     * synchronize; step and copy alternate over three rounds and the best median of each is kept */
    timed t = {ctx, a, &hp, grads, copy, (size_t)elements * sizeof(float)};
    double step = -1, copied = -1;
    for (int round = 0; round < 3; ++round) {
        mora_timing m;
        TRY(mora_time_calls(ctx, 0, one_step, &t, 50.0 * reps, reps, &m));
        if (step < 0 || m.median_ms < step) step = m.median_ms;
        TRY(mora_time_calls(ctx, 0, one_copy, &t, 50.0 * reps, reps, &m));
        if (copied < 0 || m.median_ms < copied) copied = m.median_ms;
    }
    const double step_gbs = 28.0 * (double)elements / (step * 1e6), copy_gbs = 8.0 * (double)elements / (copied * 1e6);
    printf("| backend | device | layers | arena floats | step (median) | step GB/s | copy GB/s | step / copy |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    printf("| %s | %s | %d | %lld | %.2f ms | %.1f | %.1f | %.0f %% |\n", mora_context_backend(ctx), mora_context_device_name(ctx),
           count, (long long)elements, step, step_gbs, copy_gbs, 100.0 * step_gbs / copy_gbs);
    printf("(AdamW%s: 28 bytes per element — read M, dM, m, v; write M, m, v; copy: 8 bytes per element; "
           "at least %d repetitions per median, step and copy alternating over 3 rounds, best median kept)\n",
           clip ? " with clipping" : "", reps);
    TRY(mora_buffer_free(ctx, copy));
    mora_adapter_destroy(a);
    mora_context_destroy(ctx);
    free(host), free(layers), free(names);
    return 0;
}
