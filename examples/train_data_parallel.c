/* train_data_parallel — data-parallel MoRA training on libmora's adapter: every process runs the
 * forward and backward of its share of the batch, ONE all-reduce of the whole gradient arena per
 * step joins them, and every process takes the same AdamW step. libmora owns no communicator: the
 * trainer hands the arena to the engine it already uses.
 *
 *   mpirun -np 2 build/examples/train-data-parallel [--steps N] [--out FILE]
 *   build/examples/train-data-parallel --single [...]     one process, the union of the batches
 *   build/examples/train-data-parallel --compare A B      relative difference of two --out files
 *
 * Built with MPI (MPI_Allreduce of the arena; on the cpu backend the arena is host memory, on a GPU
 * backend it is copied through the host here — a CUDA-aware MPI could take the device pointer), and
 * with -DMORA_EXAMPLE_NCCL as train-data-parallel-nccl: ncclAllReduce on the device arena, on the
 * CUDA stream the context adopted (MPI only bootstraps NCCL's id). The task: each layer learns a
 * fixed random target adapter from (x, y*) pairs; loss = ½‖y − y*‖² summed over the global batch,
 * so the summed gradients of the shares are the gradient of the whole batch. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mora.h>
#ifdef MORA_EXAMPLE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#endif

#define TRY(call)                                                                               \
    do {                                                                                        \
        const mora_status s_ = (call);                                                          \
        if (s_ != MORA_OK) {                                                                    \
            fprintf(stderr, "train-data-parallel: %s failed: %s\n", #call, mora_last_error());  \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                       \
        }                                                                                       \
    } while (0)

enum { TOKENS = 24 /* the global batch */, LAYERS = 2 };
static const mora_adapter_layer_desc layers[LAYERS] = {
    {"model.layers.0.self_attn.q_proj", 48, 48, 2, 0, MORA_OP_ROPE, MORA_F32, MORA_F32},
    {"model.layers.0.mlp.up_proj", 48, 80, 2, 0, MORA_OP_SHARE, MORA_F32, MORA_F32},
};

static float uniform(unsigned *state) {
    *state = *state * 1664525u + 1013904223u;
    return (float)((*state >> 8) & 0xFFFFFF) / 16777216.0f - 0.5f;
}

/* |a − b| / |b| of two raw float files: the check of the MPI run against the single process */
static int compare(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    if (!fa || !fb) {
        fprintf(stderr, "train-data-parallel: cannot open %s or %s\n", a, b);
        return 2;
    }
    double diff = 0, norm = 0;
    float x, y;
    long count = 0;
    while (fread(&x, 4, 1, fa) == 1 && fread(&y, 4, 1, fb) == 1) diff += ((double)x - y) * ((double)x - y), norm += (double)y * y, ++count;
    const int same_length = fread(&x, 4, 1, fa) == 0 && fread(&y, 4, 1, fb) == 0;
    fclose(fa), fclose(fb);
    const double rel = norm > 0 ? sqrt(diff / norm) : sqrt(diff);
    printf("%ld parameters, relative difference %.3g\n", count, rel);
    return same_length && count > 0 && rel < 1e-5 ? 0 : 1;
}

int main(int argc, char **argv) {
    int steps = 20, single = 0;
    const char *out = NULL, *backend = "cpu";
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--compare") == 0 && i + 2 < argc) return compare(argv[i + 1], argv[i + 2]);
        if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out = argv[++i];
        else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) backend = argv[++i];
        else if (strcmp(argv[i], "--single") == 0) single = 1;
        else {
            const int help = strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
            fprintf(help ? stdout : stderr,
                    "usage: [mpirun -np P] train-data-parallel [--steps N] [--out FILE] [--backend NAME] [--single]\n"
                    "       train-data-parallel --compare A B\n");
            return help ? 0 : 2;
        }
    }
    MPI_Init(&argc, &argv);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (single && size != 1) {
        if (rank == 0) fprintf(stderr, "train-data-parallel: --single runs one process\n");
        MPI_Finalize();
        return 2;
    }
    if (TOKENS % size) {
        if (rank == 0) fprintf(stderr, "train-data-parallel: %d tokens do not split over %d processes\n", TOKENS, size);
        MPI_Finalize();
        return 2;
    }
    const int share = TOKENS / size, first = rank * share; /* this process's tokens of the global batch */

    mora_context *ctx;
#ifdef MORA_EXAMPLE_NCCL
    int devices = 0;
    cudaGetDeviceCount(&devices);
    cudaSetDevice(devices ? rank % devices : 0);
    cudaStream_t stream;
    cudaStreamCreate(&stream);
    (void)backend; /* the NCCL build runs on CUDA */
    TRY(mora_context_create_cuda(NULL, devices ? rank % devices : 0, stream, &ctx)); /* the plans run on `stream` */
    ncclUniqueId id;
    if (rank == 0) ncclGetUniqueId(&id);
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    ncclComm_t comm;
    ncclCommInitRank(&comm, size, id, rank);
#else
    TRY(mora_context_create(backend, 0, &ctx));
#endif
    mora_adapter *adapter;
    TRY(mora_adapter_create(ctx, layers, LAYERS, share, NULL, &adapter));
    void *grads;
    int64_t count;
    TRY(mora_adapter_arena(adapter, MORA_ARENA_GRADS, &grads, &count));
    float *host_grads = malloc((size_t)count * sizeof *host_grads);

    /* the target adapters and this process's buffers */
    float *x = malloc(sizeof(float) * TOKENS * 80), *y = malloc(sizeof(float) * TOKENS * 80), *target = malloc(sizeof(float) * TOKENS * 80);
    void *d_x, *d_y, *d_target_M;
    TRY(mora_buffer_alloc(ctx, sizeof(float) * TOKENS * 80, &d_x));
    TRY(mora_buffer_alloc(ctx, sizeof(float) * TOKENS * 80, &d_y));
    mora_adapter_layer_info info[LAYERS];
    for (int l = 0; l < LAYERS; ++l) TRY(mora_adapter_layer(adapter, l, &info[l]));
    mora_plan *target_plans[LAYERS];
    float *target_M = malloc(sizeof(float) * 64 * 64);
    TRY(mora_buffer_alloc(ctx, sizeof(float) * 64 * 64, &d_target_M));

    mora_adamw hp = MORA_ADAMW_DEFAULTS;
    hp.lr = 0.02f;
    hp.weight_decay = 0.0f;
    for (int step = 0; step < steps; ++step) {
        TRY(mora_adapter_zero_grad(adapter));
        double loss = 0;
        for (int l = 0; l < LAYERS; ++l) {
            const mora_shape *s = &info[l].shape;
            /* the global batch of this step, the same in every process; this process takes its rows */
            unsigned seed = 1000u * (unsigned)step + 17u * (unsigned)l + 1u;
            for (int64_t i = 0; i < TOKENS * s->d_in; ++i) x[i] = uniform(&seed);
            unsigned target_seed = 99u + (unsigned)l;
            for (int64_t i = 0; i < s->rhat * s->rhat; ++i) target_M[i] = uniform(&target_seed) / (float)s->rhat;
            if (step == 0) TRY(mora_plan_create(ctx, s, MORA_F32, TOKENS, NULL, &target_plans[l]));
            TRY(mora_buffer_write(ctx, d_target_M, 0, target_M, sizeof(float) * (size_t)(s->rhat * s->rhat)));
            TRY(mora_buffer_write(ctx, d_x, 0, x + first * s->d_in, sizeof(float) * (size_t)(share * s->d_in)));
            memset(y, 0, sizeof(float) * (size_t)(share * s->d_out));
            TRY(mora_buffer_write(ctx, d_y, 0, y, sizeof(float) * (size_t)(share * s->d_out)));
            TRY(mora_forward(target_plans[l], d_target_M, d_x, s->d_in, d_y, s->d_out, share, 1.0f)); /* y* */
            TRY(mora_buffer_read(ctx, d_y, 0, target, sizeof(float) * (size_t)(share * s->d_out)));
            TRY(mora_buffer_write(ctx, d_y, 0, y, sizeof(float) * (size_t)(share * s->d_out)));
            TRY(mora_adapter_forward(adapter, l, d_x, s->d_in, d_y, s->d_out, share, 1.0f));
            TRY(mora_buffer_read(ctx, d_y, 0, y, sizeof(float) * (size_t)(share * s->d_out)));
            for (int64_t i = 0; i < share * s->d_out; ++i) {
                y[i] -= target[i]; /* dy = y − y* */
                loss += 0.5 * (double)y[i] * y[i];
            }
            TRY(mora_buffer_write(ctx, d_y, 0, y, sizeof(float) * (size_t)(share * s->d_out)));
            TRY(mora_adapter_backward(adapter, l, d_x, s->d_in, d_y, s->d_out, NULL, 0, share, 1.0f));
        }
        /* the one all-reduce of the step: the whole model's gradients */
#ifdef MORA_EXAMPLE_NCCL
        ncclAllReduce(grads, grads, (size_t)count, ncclFloat, ncclSum, comm, stream);
#else
        if (strcmp(mora_context_backend(ctx), "cpu") == 0) {
            MPI_Allreduce(MPI_IN_PLACE, grads, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        } else {
            TRY(mora_buffer_read(ctx, grads, 0, host_grads, (size_t)count * sizeof *host_grads));
            MPI_Allreduce(MPI_IN_PLACE, host_grads, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            TRY(mora_buffer_write(ctx, grads, 0, host_grads, (size_t)count * sizeof *host_grads));
        }
#endif
        TRY(mora_adapter_step(adapter, &hp));
        MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        if (rank == 0 && (step % 5 == 0 || step == steps - 1)) printf("step %3d  loss %.6g\n", step, loss);
    }
    if (rank == 0 && out) {
        void *params;
        TRY(mora_adapter_arena(adapter, MORA_ARENA_PARAMS, &params, &count));
        float *host = malloc((size_t)count * sizeof *host);
        TRY(mora_buffer_read(ctx, params, 0, host, (size_t)count * sizeof *host));
        FILE *f = fopen(out, "wb");
        if (!f || fwrite(host, sizeof *host, (size_t)count, f) != (size_t)count) MPI_Abort(MPI_COMM_WORLD, 1);
        fclose(f);
        free(host);
        printf("%d process(es): parameters written to %s\n", size, out);
    }
    for (int l = 0; l < LAYERS; ++l) mora_plan_destroy(target_plans[l]);
    void *buffers[] = {d_x, d_y, d_target_M};
    for (int i = 0; i < 3; ++i) TRY(mora_buffer_free(ctx, buffers[i]));
    mora_adapter_destroy(adapter);
    mora_context_destroy(ctx);
#ifdef MORA_EXAMPLE_NCCL
    ncclCommDestroy(comm);
    cudaStreamDestroy(stream);
#endif
    free(x), free(y), free(target), free(target_M), free(host_grads);
    MPI_Finalize();
    return 0;
}
