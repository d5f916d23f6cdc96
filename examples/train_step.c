/* train_step — one MoRA layer trained with plain SGD through libmora's public API: allocate, plan,
 * forward, backward, read dM, update M. The layer learns a random target adapter M* from its
 * outputs (the loss is 0.5·‖y − y*‖², a least-squares problem in M), so the loss must fall.
 *
 *   build/examples/train_step [backend]      backend: auto (default), cpu, opencl, cuda, hip
 *
 * Exit status 0 when the loss fell by 100x, 1 otherwise, 2 on a usage error, 77 when the backend
 * is absent. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mora.h>

#define CHECK(call)                                                                        \
    do {                                                                                   \
        const mora_status s_ = (call);                                                     \
        if (s_ != MORA_OK) {                                                               \
            fprintf(stderr, "train_step: %s failed: %s\n", #call, mora_last_error());      \
            exit(s_ == MORA_E_NO_BACKEND ? 77 : 1);                                        \
        }                                                                                  \
    } while (0)

static float uniform(unsigned *state) { /* a small LCG: the example needs no quality, only repeatability */
    *state = *state * 1664525u + 1013904223u;
    return (float)((*state >> 8) & 0xFFFFFF) / 16777216.0f - 0.5f;
}

int main(int argc, char **argv) {
    const char *backend = argc > 1 ? argv[1] : "auto";
    if (argc > 2 || strcmp(backend, "--help") == 0 || strcmp(backend, "-h") == 0) {
        const int help = argc == 2;
        fprintf(help ? stdout : stderr, "usage: train_step [auto|cpu|opencl|cuda|hip]\n");
        return help ? 0 : 2;
    }
    /* the layer: 96 -> 80 features, the parameter budget of LoRA rank 4, rope */
    mora_shape shape;
    CHECK(mora_shape_make(&shape, 96, 80, 4, MORA_OP_ROPE));
    const int64_t n = 64, r2 = shape.rhat * shape.rhat;
    mora_context *ctx;
    CHECK(mora_context_create(backend, 0, &ctx));
    printf("backend %s (%s), d_in=%lld d_out=%lld rhat=%lld\n", mora_context_backend(ctx),
           mora_context_device_name(ctx), (long long)shape.d_in, (long long)shape.d_out, (long long)shape.rhat);

    /* 1. allocate: activations, the target, and the trainable M with its gradient (all ours) */
    float *x = malloc(sizeof(float) * (size_t)(n * shape.d_in)), *target = calloc((size_t)(n * shape.d_out), sizeof(float));
    float *y = malloc(sizeof(float) * (size_t)(n * shape.d_out)), *M = calloc((size_t)r2, sizeof(float));
    float *dM = malloc(sizeof(float) * (size_t)r2), *M_star = malloc(sizeof(float) * (size_t)r2);
    unsigned seed = 7;
    for (int64_t i = 0; i < n * shape.d_in; ++i) x[i] = uniform(&seed);
    for (int64_t i = 0; i < r2; ++i) M_star[i] = uniform(&seed) / (float)shape.rhat;
    void *d_x, *d_y, *d_M, *d_dM;
    CHECK(mora_buffer_alloc(ctx, sizeof(float) * (size_t)(n * shape.d_in), &d_x));
    CHECK(mora_buffer_alloc(ctx, sizeof(float) * (size_t)(n * shape.d_out), &d_y));
    CHECK(mora_buffer_alloc(ctx, sizeof(float) * (size_t)r2, &d_M));
    CHECK(mora_buffer_alloc(ctx, sizeof(float) * (size_t)r2, &d_dM));
    CHECK(mora_buffer_write(ctx, d_x, 0, x, sizeof(float) * (size_t)(n * shape.d_in)));

    /* 2. plan: parameters chosen and every kernel compiled now, not in the loop */
    mora_plan *plan;
    CHECK(mora_plan_create(ctx, &shape, MORA_F32, n, NULL, &plan));

    /* the target outputs y* = f_{M*}(x), made with the same plan */
    CHECK(mora_buffer_write(ctx, d_M, 0, M_star, sizeof(float) * (size_t)r2));
    CHECK(mora_buffer_write(ctx, d_y, 0, target, sizeof(float) * (size_t)(n * shape.d_out)));
    CHECK(mora_forward(plan, d_M, d_x, shape.d_in, d_y, shape.d_out, n, 1.0f));
    CHECK(mora_buffer_read(ctx, d_y, 0, target, sizeof(float) * (size_t)(n * shape.d_out)));

    const float lr = 0.5f / (float)n;
    double first_loss = -1, loss = 0;
    for (int step = 0; step < 60; ++step) {
        /* 3. forward: y = 0 + f_M(x) (a real layer adds into its base output W0·x) */
        CHECK(mora_buffer_write(ctx, d_M, 0, M, sizeof(float) * (size_t)r2));
        memset(y, 0, sizeof(float) * (size_t)(n * shape.d_out));
        CHECK(mora_buffer_write(ctx, d_y, 0, y, sizeof(float) * (size_t)(n * shape.d_out)));
        CHECK(mora_forward(plan, d_M, d_x, shape.d_in, d_y, shape.d_out, n, 1.0f));
        CHECK(mora_buffer_read(ctx, d_y, 0, y, sizeof(float) * (size_t)(n * shape.d_out)));
        /* the loss and its gradient dy = y − y*, written over y */
        loss = 0;
        for (int64_t i = 0; i < n * shape.d_out; ++i) {
            y[i] -= target[i];
            loss += 0.5 * (double)y[i] * y[i];
        }
        if (first_loss < 0) first_loss = loss;
        /* 4. backward: dM = Σ g ⊗ c (dx not needed: NULL) */
        CHECK(mora_buffer_write(ctx, d_y, 0, y, sizeof(float) * (size_t)(n * shape.d_out)));
        memset(dM, 0, sizeof(float) * (size_t)r2);
        CHECK(mora_buffer_write(ctx, d_dM, 0, dM, sizeof(float) * (size_t)r2));
        CHECK(mora_backward(plan, d_M, d_x, shape.d_in, d_y, shape.d_out, NULL, 0, d_dM, n, 1.0f));
        /* 5. read dM and update M (SGD) */
        CHECK(mora_buffer_read(ctx, d_dM, 0, dM, sizeof(float) * (size_t)r2));
        for (int64_t i = 0; i < r2; ++i) M[i] -= lr * dM[i];
        if (step % 10 == 0) printf("step %2d  loss %.6g\n", step, loss);
    }
    printf("loss %.6g -> %.6g\n", first_loss, loss);

    mora_plan_destroy(plan);
    void *buffers[] = {d_x, d_y, d_M, d_dM};
    for (int i = 0; i < 4; ++i) CHECK(mora_buffer_free(ctx, buffers[i]));
    mora_context_destroy(ctx);
    free(x), free(target), free(y), free(M), free(dM), free(M_star);
    return loss < first_loss / 100 ? 0 : 1;
}
