/* test_threads — the threading contract of mora.h on one backend (argv[1]: cpu or opencl; argv[2]:
 * iterations): six threads on one context, four of them calling the same plan, one a second plan of
 * the same shape, one a plan of another shape, each iteration's forward (y), backward (dx, dM) and merge (W)
 * checked against the float64 reference. A ThreadSanitizer build runs this test too (scripts/tsan.sh).
 * Exits 77 when the backend is absent. */
#include <pthread.h>

#include "backend_harness.h"

#define THREADS 6
#define REPEAT 8 /* calls of each kind per iteration (outputs accumulate REPEAT x the reference) */

typedef struct job {
    mora_context *ctx;
    mora_plan *plan;
    mora_shape shape;
    int iterations;
    uint64_t seed;
    int bad;             /* iterations whose outputs disagreed with the reference */
    mora_status failure; /* the first failing call's status (MORA_OK: none) */
    char message[512];
} job;

#define TRY(call)                                                                               \
    do {                                                                                        \
        const mora_status s_ = (call);                                                          \
        if (s_ != MORA_OK) {                                                                    \
            j->failure = s_;                                                                    \
            snprintf(j->message, sizeof j->message, "%s: %s", #call, mora_last_error());        \
            goto done;                                                                          \
        }                                                                                       \
    } while (0)

static void *run_job(void *arg) {
    job *j = arg;
    const mora_shape *s = &j->shape;
    const int64_t n = 7, nx = n * s->d_in, ny = n * s->d_out, nm = s->rhat * s->rhat, nw = s->d_out * s->d_in;
    check_rng rng = {j->seed};
    float *x = malloc((size_t)nx * 4), *dy = malloc((size_t)ny * 4), *M = malloc((size_t)nm * 4);
    float *out = malloc((size_t)(nw > nx + ny ? nw : nx + ny) * 4), *zeros = calloc((size_t)(nw > nx ? nw : nx), 4);
    double *xd = calloc((size_t)nx, 8), *dyd = calloc((size_t)ny, 8), *Md = calloc((size_t)nm, 8);
    double *ry = calloc((size_t)ny, 8), *rdx = calloc((size_t)nx, 8), *rdm = calloc((size_t)nm, 8), *rw = malloc((size_t)nw * 8);
    double *got = malloc((size_t)(nw > nx ? (nw > ny ? nw : ny) : (nx > ny ? nx : ny)) * 8);
    void *bx = NULL, *by = NULL, *bdy = NULL, *bdx = NULL, *bM = NULL, *bdM = NULL, *bW = NULL;
    for (int64_t i = 0; i < nx; ++i) x[i] = (float)check_rng_uniform(&rng), xd[i] = x[i];
    for (int64_t i = 0; i < ny; ++i) dy[i] = (float)check_rng_uniform(&rng), dyd[i] = dy[i];
    for (int64_t i = 0; i < nm; ++i) M[i] = (float)check_rng_uniform(&rng), Md[i] = M[i];
    mora_ref_forward(s, Md, xd, ry, n, 1.0);
    mora_ref_backward(s, Md, xd, dyd, rdx, rdm, n);
    mora_ref_delta_weight(s, Md, rw);
    for (int64_t i = 0; i < ny; ++i) ry[i] *= REPEAT;
    for (int64_t i = 0; i < nx; ++i) rdx[i] *= REPEAT;
    for (int64_t i = 0; i < nm; ++i) rdm[i] *= REPEAT;
    for (int64_t i = 0; i < nw; ++i) rw[i] *= REPEAT;
    TRY(mora_buffer_alloc(j->ctx, (size_t)nx * 4, &bx));
    TRY(mora_buffer_alloc(j->ctx, (size_t)ny * 4, &by));
    TRY(mora_buffer_alloc(j->ctx, (size_t)ny * 4, &bdy));
    TRY(mora_buffer_alloc(j->ctx, (size_t)nx * 4, &bdx));
    TRY(mora_buffer_alloc(j->ctx, (size_t)nm * 4, &bM));
    TRY(mora_buffer_alloc(j->ctx, (size_t)nm * 4, &bdM));
    TRY(mora_buffer_alloc(j->ctx, (size_t)nw * 4, &bW));
    TRY(mora_buffer_write(j->ctx, bx, 0, x, (size_t)nx * 4));
    TRY(mora_buffer_write(j->ctx, bdy, 0, dy, (size_t)ny * 4));
    TRY(mora_buffer_write(j->ctx, bM, 0, M, (size_t)nm * 4));
    for (int it = 0; it < j->iterations; ++it) {
        TRY(mora_buffer_write(j->ctx, by, 0, zeros, (size_t)ny * 4));
        TRY(mora_buffer_write(j->ctx, bdx, 0, zeros, (size_t)nx * 4));
        TRY(mora_buffer_write(j->ctx, bdM, 0, zeros, (size_t)nm * 4));
        TRY(mora_buffer_write(j->ctx, bW, 0, zeros, (size_t)nw * 4));
        /* several launches back to back, so calls of the threads interleave densely on the queue */
        for (int r = 0; r < REPEAT; ++r) {
            TRY(mora_forward(j->plan, bM, bx, s->d_in, by, s->d_out, n, 1.0f));
            TRY(mora_backward(j->plan, bM, bx, s->d_in, bdy, s->d_out, bdx, s->d_in, bdM, n, 1.0f));
            TRY(mora_merge(j->plan, bM, bW, s->d_in, MORA_F32, 1.0f));
        }
        const struct {
            void *buffer;
            const double *ref;
            int64_t count;
        } outputs[] = {{by, ry, ny}, {bdx, rdx, nx}, {bdM, rdm, nm}, {bW, rw, nw}};
        int wrong = 0;
        for (int o = 0; o < 4; ++o) {
            TRY(mora_buffer_read(j->ctx, outputs[o].buffer, 0, out, (size_t)outputs[o].count * 4));
            for (int64_t i = 0; i < outputs[o].count; ++i) got[i] = out[i];
            wrong |= !(check_rel_error(got, outputs[o].ref, outputs[o].count) <= 1e-5);
        }
        j->bad += wrong;
    }
done:;
    void *buffers[] = {bx, by, bdy, bdx, bM, bdM, bW};
    for (int i = 0; i < 7; ++i)
        if (buffers[i]) mora_buffer_free(j->ctx, buffers[i]);
    free(x), free(dy), free(M), free(out), free(zeros), free(xd), free(dyd), free(Md), free(ry), free(rdx), free(rdm),
        free(rw), free(got);
    return NULL;
}

int main(int argc, char **argv) {
    const char *backend = argc > 1 ? argv[1] : "opencl";
    const int iterations = argc > 2 ? atoi(argv[2]) : 100;
    mora_context *ctx = NULL;
    const mora_status st = mora_context_create(backend, 0, &ctx);
    if (st == MORA_E_NO_BACKEND) SKIP("backend %s is not available here: %s", backend, mora_last_error());
    REQUIRE_OK(st);
    const mora_shape a = {50, 37, 8, MORA_OP_ROPE}, b = {64, 48, 16, MORA_OP_SHARE};
    mora_plan *shared = NULL, *same_shape = NULL, *other_shape = NULL;
    REQUIRE_OK(mora_plan_create(ctx, &a, MORA_F32, 7, NULL, &shared));
    REQUIRE_OK(mora_plan_create(ctx, &a, MORA_F32, 7, NULL, &same_shape));
    REQUIRE_OK(mora_plan_create(ctx, &b, MORA_F32, 7, NULL, &other_shape));
    job jobs[THREADS] = {
        {ctx, shared, a, iterations, 11, 0, MORA_OK, ""},     {ctx, shared, a, iterations, 12, 0, MORA_OK, ""},
        {ctx, shared, a, iterations, 13, 0, MORA_OK, ""},     {ctx, shared, a, iterations, 14, 0, MORA_OK, ""},
        {ctx, same_shape, a, iterations, 15, 0, MORA_OK, ""}, {ctx, other_shape, b, iterations, 16, 0, MORA_OK, ""},
    };
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; ++t) REQUIRE_OK(pthread_create(&threads[t], NULL, run_job, &jobs[t]) == 0 ? MORA_OK : MORA_E_ARG);
    for (int t = 0; t < THREADS; ++t) pthread_join(threads[t], NULL);
    for (int t = 0; t < THREADS; ++t) {
        if (jobs[t].failure != MORA_OK) fprintf(stderr, "thread %d: %s\n", t, jobs[t].message);
        CHECK_EQ_INT(jobs[t].failure, MORA_OK);
        CHECK_EQ_INT(jobs[t].bad, 0);
    }
    printf("%s: %d threads x %d iterations, every one checked against the float64 reference\n", backend, THREADS,
           iterations);
    mora_plan_destroy(shared);
    mora_plan_destroy(same_shape);
    mora_plan_destroy(other_shape);
    mora_context_destroy(ctx);
    return check_report();
}
