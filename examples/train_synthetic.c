/* train-synthetic — a runnable C trainer on libmora's training runtime, on synthetic data: two
 * blocks of LLaMA-like projections scaled down (q, v, up, down; d = 64, ffn 172), each a frozen
 * random base W0 with a MoRA adapter, learning the outputs of the same layers with a random target
 * adapter. Per step: forward (W0·x on the host, the adapter's part through libmora), loss
 * ½‖y − y*‖², backward into the gradient arena, optional clipping, AdamW; ReMoRA every K steps;
 * checkpoints in the PEFT layout.
 *
 *   build/examples/train-synthetic [--backend auto] [--steps 40] [--lr 0.003] [--remora-every K]
 *                                  [--clip NORM] [--save DIR] [--load DIR] [--expect-drop]
 *
 * Exit status: 0, or 1 on a failure (with --expect-drop also when the loss did not halve), 2 on a
 * usage error, 77 when the backend is absent. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mora.h>

#define TRY(call)                                                                          \
    do {                                                                                   \
        const mora_status s_ = (call);                                                     \
        if (s_ != MORA_OK) {                                                               \
            fprintf(stderr, "train-synthetic: %s failed: %s\n", #call, mora_last_error()); \
            exit(s_ == MORA_E_NO_BACKEND ? 77 : 1);                                        \
        }                                                                                  \
    } while (0)

enum { TOKENS = 32, LAYERS = 8, WIDEST = 172 };
static const mora_adapter_layer_desc layers[LAYERS] = {
    {"model.layers.0.self_attn.q_proj", 64, 64, 4, 0, MORA_OP_ROPE, MORA_F32, MORA_F32},
    {"model.layers.0.self_attn.v_proj", 64, 16, 4, 0, MORA_OP_ROPE, MORA_F32, MORA_F32},
    {"model.layers.0.mlp.up_proj", 64, 172, 4, 0, MORA_OP_SHARE, MORA_F32, MORA_F32},
    {"model.layers.0.mlp.down_proj", 172, 64, 4, 0, MORA_OP_SHARE, MORA_F32, MORA_F32},
    {"model.layers.1.self_attn.q_proj", 64, 64, 4, 0, MORA_OP_ROPE, MORA_F32, MORA_F32},
    {"model.layers.1.self_attn.v_proj", 64, 16, 4, 0, MORA_OP_ROPE, MORA_F32, MORA_F32},
    {"model.layers.1.mlp.up_proj", 64, 172, 4, 0, MORA_OP_SHARE, MORA_F32, MORA_F32},
    {"model.layers.1.mlp.down_proj", 172, 64, 4, 0, MORA_OP_SHARE, MORA_F32, MORA_F32},
};

static float uniform(unsigned *state) {
    *state = *state * 1664525u + 1013904223u;
    return (float)((*state >> 8) & 0xFFFFFF) / 16777216.0f - 0.5f;
}

/* The usage text: on stdout with status 0 for --help, on stderr with status 2 for a usage error. */
static void usage_exit(int status) {
    fprintf(status ? stderr : stdout, "usage: train-synthetic [--backend NAME] [--steps N] [--lr LR] [--remora-every K] [--clip NORM]\n"
                    "                       [--save DIR] [--load DIR] [--expect-drop]\n");
    exit(status);
}

static void usage(void) { usage_exit(2); }

int main(int argc, char **argv) {
    const char *backend = "auto", *save = NULL, *load = NULL;
    int steps = 40, remora_every = 0, expect_drop = 0;
    float lr = 0.003f, clip = 0.0f;
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        if (strcmp(a, "--expect-drop") == 0) expect_drop = 1;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) usage_exit(0);
        else if (i + 1 >= argc) usage();
        else if (strcmp(a, "--backend") == 0) backend = argv[++i];
        else if (strcmp(a, "--steps") == 0) steps = atoi(argv[++i]);
        else if (strcmp(a, "--lr") == 0) lr = strtof(argv[++i], NULL);
        else if (strcmp(a, "--remora-every") == 0) remora_every = atoi(argv[++i]);
        else if (strcmp(a, "--clip") == 0) clip = strtof(argv[++i], NULL);
        else if (strcmp(a, "--save") == 0) save = argv[++i];
        else if (strcmp(a, "--load") == 0) load = argv[++i];
        else usage();
    }
    if (steps < 1 || remora_every < 0 || !(lr > 0) || !(clip >= 0)) usage();

    mora_context *ctx;
    TRY(mora_context_create(backend, 0, &ctx));
    mora_adapter *adapter;
    TRY(mora_adapter_create(ctx, layers, LAYERS, TOKENS, NULL, &adapter));
    if (load) TRY(mora_adapter_load(adapter, load));
    void *params;
    int64_t arena_floats;
    TRY(mora_adapter_arena(adapter, MORA_ARENA_PARAMS, &params, &arena_floats));
    printf("train-synthetic: %s (%s), %d layers, an arena of %lld floats%s%s\n", mora_context_backend(ctx),
           mora_context_device_name(ctx), LAYERS, (long long)arena_floats, load ? ", resumed from " : "", load ? load : "");

    /* frozen bases W0 (host copy for W0·x, device copy for ReMoRA) and the target adapters M* */
    float *W0[LAYERS], *target_M = malloc(sizeof(float) * 64 * 64);
    void *d_W0[LAYERS], *d_target_M;
    int64_t ld[LAYERS];
    mora_plan *target_plans[LAYERS];
    mora_adapter_layer_info info[LAYERS];
    TRY(mora_buffer_alloc(ctx, sizeof(float) * 64 * 64, &d_target_M));
    for (int l = 0; l < LAYERS; ++l) {
        TRY(mora_adapter_layer(adapter, l, &info[l]));
        const mora_shape *s = &info[l].shape;
        ld[l] = s->d_in;
        W0[l] = malloc(sizeof(float) * (size_t)(s->d_out * s->d_in));
        unsigned seed = 5u + (unsigned)l;
        for (int64_t i = 0; i < s->d_out * s->d_in; ++i) W0[l][i] = uniform(&seed) / sqrtf((float)s->d_in);
        TRY(mora_buffer_alloc(ctx, sizeof(float) * (size_t)(s->d_out * s->d_in), &d_W0[l]));
        TRY(mora_buffer_write(ctx, d_W0[l], 0, W0[l], sizeof(float) * (size_t)(s->d_out * s->d_in)));
        mora_shape target_shape = *s;
        target_shape.op = layers[l].op; /* the target keeps the first type, whatever ReMoRA does to ours */
        TRY(mora_plan_create(ctx, &target_shape, MORA_F32, TOKENS, NULL, &target_plans[l]));
    }
    float *x = malloc(sizeof(float) * TOKENS * WIDEST), *y = malloc(sizeof(float) * TOKENS * WIDEST),
          *target = malloc(sizeof(float) * TOKENS * WIDEST), *base = malloc(sizeof(float) * TOKENS * WIDEST);
    void *d_x, *d_y;
    TRY(mora_buffer_alloc(ctx, sizeof(float) * TOKENS * WIDEST, &d_x));
    TRY(mora_buffer_alloc(ctx, sizeof(float) * TOKENS * WIDEST, &d_y));
    float *W0_target[LAYERS]; /* the target's base: the first W0 (ReMoRA moves ours) */
    for (int l = 0; l < LAYERS; ++l) {
        const size_t bytes = sizeof(float) * (size_t)(info[l].shape.d_out * info[l].shape.d_in);
        W0_target[l] = malloc(bytes);
        memcpy(W0_target[l], W0[l], bytes);
    }

    mora_adamw hp = mora_adamw_defaults();
    hp.lr = lr;
    hp.weight_decay = 0.0f;
    hp.max_grad_norm = clip;
    double first = -1, loss = 0;
    for (int step = 0; step < steps; ++step) {
        TRY(mora_adapter_zero_grad(adapter));
        loss = 0;
        for (int l = 0; l < LAYERS; ++l) {
            const mora_shape *s = &info[l].shape;
            unsigned seed = 7919u * (unsigned)step + 31u * (unsigned)l + 3u;
            for (int64_t i = 0; i < TOKENS * s->d_in; ++i) x[i] = uniform(&seed);
            unsigned target_seed = 101u + (unsigned)l;
            for (int64_t i = 0; i < s->rhat * s->rhat; ++i) target_M[i] = uniform(&target_seed) / (float)s->rhat;
            /* W0·x and the target's W0·x + f*(x), on the host and through the target plan */
            for (int t = 0; t < TOKENS; ++t)
                for (int64_t j = 0; j < s->d_out; ++j) {
                    float b = 0, bt = 0;
                    for (int64_t p = 0; p < s->d_in; ++p) {
                        b += W0[l][j * s->d_in + p] * x[t * s->d_in + p];
                        bt += W0_target[l][j * s->d_in + p] * x[t * s->d_in + p];
                    }
                    base[t * s->d_out + j] = b, target[t * s->d_out + j] = bt;
                }
            TRY(mora_buffer_write(ctx, d_x, 0, x, sizeof(float) * (size_t)(TOKENS * s->d_in)));
            TRY(mora_buffer_write(ctx, d_target_M, 0, target_M, sizeof(float) * (size_t)(s->rhat * s->rhat)));
            TRY(mora_buffer_write(ctx, d_y, 0, target, sizeof(float) * (size_t)(TOKENS * s->d_out)));
            TRY(mora_forward(target_plans[l], d_target_M, d_x, s->d_in, d_y, s->d_out, TOKENS, 1.0f));
            TRY(mora_buffer_read(ctx, d_y, 0, target, sizeof(float) * (size_t)(TOKENS * s->d_out)));
            /* ours: y = W0·x + f_M(x); dy = y − y* */
            TRY(mora_buffer_write(ctx, d_y, 0, base, sizeof(float) * (size_t)(TOKENS * s->d_out)));
            TRY(mora_adapter_forward(adapter, l, d_x, s->d_in, d_y, s->d_out, TOKENS, 1.0f));
            TRY(mora_buffer_read(ctx, d_y, 0, y, sizeof(float) * (size_t)(TOKENS * s->d_out)));
            for (int64_t i = 0; i < TOKENS * s->d_out; ++i) {
                y[i] -= target[i];
                loss += 0.5 * (double)y[i] * y[i];
            }
            TRY(mora_buffer_write(ctx, d_y, 0, y, sizeof(float) * (size_t)(TOKENS * s->d_out)));
            TRY(mora_adapter_backward(adapter, l, d_x, s->d_in, d_y, s->d_out, NULL, 0, TOKENS, 1.0f));
        }
        TRY(mora_adapter_step(adapter, &hp));
        if (first < 0) first = loss;
        float norm = 0;
        if (clip > 0) TRY(mora_adapter_last_grad_norm(adapter, &norm));
        printf("step %3d  loss %10.6f", step + 1, loss);
        if (clip > 0) printf("  grad norm %.4f", norm);
        if (remora_every && (step + 1) % remora_every == 0) {
            /* merge into W0, restart M and the optimizer; the learning-rate re-warmup would go here */
            TRY(mora_adapter_remora(adapter, d_W0, ld));
            for (int l = 0; l < LAYERS; ++l) {
                TRY(mora_buffer_read(ctx, d_W0[l], 0, W0[l], sizeof(float) * (size_t)(info[l].shape.d_out * info[l].shape.d_in)));
                TRY(mora_adapter_layer(adapter, l, &info[l]));
            }
            printf("  ReMoRA: merged, reset; up_proj now %s", mora_op_name(info[2].shape.op));
        }
        printf("\n");
    }
    if (save) {
        TRY(mora_adapter_save(adapter, save));
        printf("saved to %s\n", save);
    }
    printf("loss %.6f -> %.6f\n", first, loss);
    for (int l = 0; l < LAYERS; ++l) {
        mora_plan_destroy(target_plans[l]);
        TRY(mora_buffer_free(ctx, d_W0[l]));
        free(W0[l]), free(W0_target[l]);
    }
    TRY(mora_buffer_free(ctx, d_x));
    TRY(mora_buffer_free(ctx, d_y));
    TRY(mora_buffer_free(ctx, d_target_M));
    mora_adapter_destroy(adapter);
    mora_context_destroy(ctx);
    free(x), free(y), free(target), free(base), free(target_M);
    return expect_drop && !(loss < first / 2) ? 1 : 0;
}
