/* mora-adamw-bench — the optimizer step over the arena of a LLaMA-2-7B adapter (r = 8 on all seven
 * projections of 32 blocks: 224 layers, about 20 M floats) is one memory-bound pass: it reads M, dM,
 * m and v and writes M, m and v (28 bytes per element). This times mora_adapter_step and reports its
 * bandwidth against the device's copy bandwidth (a buffer copy of the same size, 8 bytes per element).
 *
 *   build/mora-adamw-bench [--backend auto] [--blocks 32] [--reps 20] [--clip]
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mora.h>

#include "context.h" /* internal: the backend's buffer copy, the bandwidth reference */

#define TRY(call)                                                                              \
    do {                                                                                       \
        const mora_status s_ = (call);                                                         \
        if (s_ != MORA_OK) {                                                                   \
            fprintf(stderr, "mora-adamw-bench: %s failed: %s\n", #call, mora_last_error());    \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
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
            fprintf(stderr, "usage: mora-adamw-bench [--backend NAME] [--blocks N] [--reps N] [--clip]\n");
            return 2;
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

    double *step_ms = malloc((size_t)reps * sizeof *step_ms), *copy_ms = malloc((size_t)reps * sizeof *copy_ms);
    void *copy = NULL;
    TRY(mora_buffer_alloc(ctx, (size_t)elements * sizeof(float), &copy));
    TRY(mora_adapter_step(a, &hp)); /* warm-up: the kernels' first launch */
    TRY(mora_synchronize(ctx));
    for (int r = 0; r < reps; ++r) { /* interleaved: a step, then a copy of the same size */
        double t0 = now_ms();
        TRY(mora_adapter_step(a, &hp));
        TRY(mora_synchronize(ctx));
        step_ms[r] = now_ms() - t0;
        t0 = now_ms();
        if (ctx->be->buffer_copy) TRY(ctx->be->buffer_copy(ctx->be_ctx, grads, 0, copy, 0, (size_t)elements * sizeof(float)));
        TRY(mora_synchronize(ctx));
        copy_ms[r] = now_ms() - t0;
    }
    qsort(step_ms, (size_t)reps, sizeof *step_ms, compare_doubles);
    qsort(copy_ms, (size_t)reps, sizeof *copy_ms, compare_doubles);
    const double step = step_ms[reps / 2], copied = copy_ms[reps / 2];
    const double step_gbs = 28.0 * (double)elements / (step * 1e6), copy_gbs = 8.0 * (double)elements / (copied * 1e6);
    printf("| backend | device | layers | arena floats | step (median) | step GB/s | copy GB/s | step / copy |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    printf("| %s | %s | %d | %lld | %.2f ms | %.1f | %.1f | %.0f %% |\n", mora_context_backend(ctx), mora_context_device_name(ctx),
           count, (long long)elements, step, step_gbs, copy_gbs, 100.0 * step_gbs / copy_gbs);
    printf("(AdamW%s: 28 bytes per element — read M, dM, m, v; write M, m, v; copy: 8 bytes per element; "
           "%d repetitions, interleaved, wall clock around a synchronize)\n", clip ? " with clipping" : "", reps);
    TRY(mora_buffer_free(ctx, copy));
    mora_adapter_destroy(a);
    mora_context_destroy(ctx);
    free(host), free(layers), free(names), free(step_ms), free(copy_ms);
    return 0;
}
