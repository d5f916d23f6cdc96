/* The cpu backend's buffers know their size (issue 10, item 6): reads, writes, the layer's calls
 * and the backend's zero / copy are bounds-checked for buffers from mora_buffer_alloc, exactly as
 * on OpenCL, while the caller's own host pointers (which the cpu backend also takes) are not read
 * before or after (their size is unknown: not checked). The registry of blocks is used from several
 * threads at once. Without the registry, mora_buffer_write(ctx, buf16, 8, src, 16) returned MORA_OK
 * (heap-buffer-overflow under ASan). */
#include <pthread.h>

#include "backend.h"
#include "check.h"
#include "context.h"

static void test_public_calls(mora_context *ctx) {
    void *buf = NULL;
    REQUIRE_OK(mora_buffer_alloc(ctx, 16, &buf));
    unsigned char src[64], dst[64];
    for (int i = 0; i < 64; ++i) src[i] = (unsigned char)i;
    CHECK_STATUS(mora_buffer_write(ctx, buf, 8, src, 16), MORA_E_ARG);
    CHECK_STATUS(mora_buffer_read(ctx, buf, 0, dst, 64), MORA_E_ARG);
    CHECK_STATUS(mora_buffer_read(ctx, buf, 17, dst, 0), MORA_E_ARG);
    CHECK_STATUS(mora_buffer_write(ctx, buf, SIZE_MAX, src, 2), MORA_E_OVERFLOW);
    CHECK_STATUS(mora_buffer_write(ctx, buf, 0, src, 16), MORA_OK);
    CHECK_STATUS(mora_buffer_write(ctx, buf, 8, src, 8), MORA_OK);
    CHECK_STATUS(mora_buffer_read(ctx, buf, 16, dst, 0), MORA_OK);
    memset(dst, 0, sizeof dst);
    CHECK_STATUS(mora_buffer_read(ctx, buf, 0, dst, 16), MORA_OK);
    CHECK(memcmp(dst, src, 8) == 0 && memcmp(dst + 8, src, 8) == 0);
    /* a pointer into the block has the rest of it */
    CHECK_STATUS(mora_buffer_write(ctx, (char *)buf + 8, 0, src, 16), MORA_E_ARG);
    CHECK_STATUS(mora_buffer_write(ctx, (char *)buf + 8, 0, src, 8), MORA_OK);
    REQUIRE_OK(mora_buffer_free(ctx, buf));

    /* 0-byte buffers: nothing fits but nothing */
    REQUIRE_OK(mora_buffer_alloc(ctx, 0, &buf));
    CHECK_STATUS(mora_buffer_write(ctx, buf, 0, src, 1), MORA_E_ARG);
    CHECK_STATUS(mora_buffer_write(ctx, buf, 0, src, 0), MORA_OK);
    REQUIRE_OK(mora_buffer_free(ctx, buf));

    /* the caller's own host memory: accepted, unchecked, and never read outside what the call names */
    unsigned char *own = malloc(32);
    CHECK_STATUS(mora_buffer_write(ctx, own, 0, src, 32), MORA_OK);
    CHECK_STATUS(mora_buffer_read(ctx, own, 16, dst, 16), MORA_OK);
    CHECK(memcmp(dst, src + 16, 16) == 0);
    free(own);
}

static void test_backend_calls(mora_context *ctx) {
    const mora_backend_i *be = ctx->be;
    CHECK(be->buffer_size != NULL);
    void *a = NULL, *b = NULL;
    REQUIRE_OK(mora_buffer_alloc(ctx, 16, &a));
    REQUIRE_OK(mora_buffer_alloc(ctx, 64, &b));
    size_t size = 0;
    CHECK_STATUS(be->buffer_size(ctx->be_ctx, a, &size), MORA_OK);
    CHECK_EQ_INT(size, 16);
    CHECK_STATUS(be->buffer_size(ctx->be_ctx, (char *)b + 60, &size), MORA_OK);
    CHECK_EQ_INT(size, 4);
    int local = 0;
    CHECK_STATUS(be->buffer_size(ctx->be_ctx, &local, &size), MORA_OK);
    CHECK(size == SIZE_MAX); /* unknown */
    CHECK_STATUS(be->buffer_zero(ctx->be_ctx, a, 17), MORA_E_ARG);
    CHECK_STATUS(be->buffer_zero(ctx->be_ctx, a, 16), MORA_OK);
    CHECK_STATUS(be->buffer_copy(ctx->be_ctx, b, 0, a, 0, 32), MORA_E_ARG);
    CHECK_STATUS(be->buffer_copy(ctx->be_ctx, b, 56, a, 0, 16), MORA_E_ARG);
    CHECK_STATUS(be->buffer_copy(ctx->be_ctx, b, 48, a, 0, 16), MORA_OK);
    CHECK_STATUS(be->buffer_write(ctx->be_ctx, a, 1, &local, 16), MORA_E_ARG);
    CHECK_STATUS(be->buffer_read(ctx->be_ctx, a, 8, &local, 9), MORA_E_ARG);
    REQUIRE_OK(mora_buffer_free(ctx, a));
    REQUIRE_OK(mora_buffer_free(ctx, b));
}

/* A plan's calls check the buffers' sizes through buffer_size (api/plan.c). */
static void test_plan_calls(mora_context *ctx) {
    mora_shape s;
    REQUIRE_OK(mora_shape_make(&s, 64, 64, 8, MORA_OP_SHARE));
    mora_plan *p = NULL;
    const int64_t n = 4;
    REQUIRE_OK(mora_plan_create(ctx, &s, MORA_F32, n + 1, NULL, &p));
    void *x = NULL, *y = NULL, *small = NULL, *M = NULL;
    REQUIRE_OK(mora_buffer_alloc(ctx, (size_t)(n * s.d_in) * 4, &x));
    REQUIRE_OK(mora_buffer_alloc(ctx, (size_t)(n * s.d_out) * 4, &y));
    REQUIRE_OK(mora_buffer_alloc(ctx, (size_t)(s.rhat * s.rhat) * 4, &M));
    REQUIRE_OK(mora_buffer_alloc(ctx, 16, &small));
    float *zeros = calloc((size_t)(n * 64 > s.rhat * s.rhat ? n * 64 : s.rhat * s.rhat), sizeof(float));
    REQUIRE_OK(mora_buffer_write(ctx, x, 0, zeros, (size_t)(n * s.d_in) * 4));
    REQUIRE_OK(mora_buffer_write(ctx, y, 0, zeros, (size_t)(n * s.d_out) * 4));
    REQUIRE_OK(mora_buffer_write(ctx, M, 0, zeros, (size_t)(s.rhat * s.rhat) * 4));
    CHECK_STATUS(mora_forward(p, M, x, s.d_in, y, s.d_out, n, 1.0f), MORA_OK);
    CHECK_STATUS(mora_forward(p, M, small, s.d_in, y, s.d_out, n, 1.0f), MORA_E_ARG);
    CHECK_STATUS(mora_forward(p, M, x, s.d_in, small, s.d_out, n, 1.0f), MORA_E_ARG);
    CHECK_STATUS(mora_forward(p, small, x, s.d_in, y, s.d_out, n, 1.0f), MORA_E_ARG); /* M too small */
    CHECK_STATUS(mora_forward(p, M, x, s.d_in, y, s.d_out, n + 1, 1.0f), MORA_E_ARG);
    CHECK_STATUS(mora_backward(p, M, x, s.d_in, y, s.d_out, small, s.d_in, NULL, n, 1.0f), MORA_E_ARG);
    CHECK_STATUS(mora_merge(p, M, small, s.d_in, MORA_F32, 1.0f), MORA_E_ARG);
    /* the caller's own host buffers still work (unchecked) */
    float *own_x = calloc((size_t)(n * 64), sizeof(float)), *own_y = calloc((size_t)(n * 64), sizeof(float));
    CHECK_STATUS(mora_forward(p, zeros, own_x, s.d_in, own_y, s.d_out, n, 1.0f), MORA_OK);
    free(own_x);
    free(own_y);
    free(zeros);
    void *buffers[] = {x, y, small, M};
    for (int i = 0; i < 4; ++i) mora_buffer_free(ctx, buffers[i]);
    mora_plan_destroy(p);
}

/* Four threads allocate, check and free at once: the registry stays consistent. */
typedef struct worker_arg {
    mora_context *ctx;
    int seed, wrong;
} worker_arg;

static void *worker(void *p) {
    worker_arg *w = p;
    check_rng rng = {(uint64_t)w->seed};
    void *bufs[32] = {0};
    size_t sizes[32] = {0};
    for (int iter = 0; iter < 4000; ++iter) {
        const int k = (int)check_rng_int(&rng, 0, 31);
        if (bufs[k]) {
            size_t size = 0;
            if (w->ctx->be->buffer_size(w->ctx->be_ctx, bufs[k], &size) != MORA_OK || size != sizes[k]) ++w->wrong;
            unsigned char byte = 1;
            if (mora_buffer_write(w->ctx, bufs[k], sizes[k], &byte, 1) != MORA_E_ARG) ++w->wrong;
            mora_buffer_free(w->ctx, bufs[k]);
            bufs[k] = NULL;
        } else {
            sizes[k] = (size_t)check_rng_int(&rng, 0, 4096);
            if (mora_buffer_alloc(w->ctx, sizes[k], &bufs[k]) != MORA_OK) ++w->wrong;
        }
    }
    for (int k = 0; k < 32; ++k)
        if (bufs[k]) mora_buffer_free(w->ctx, bufs[k]);
    return NULL;
}

static void test_threads(mora_context *ctx) {
    pthread_t threads[4];
    worker_arg args[4];
    for (int t = 0; t < 4; ++t) {
        args[t] = (worker_arg){ctx, t + 1, 0};
        REQUIRE_OK(pthread_create(&threads[t], NULL, worker, &args[t]) == 0 ? MORA_OK : MORA_E_ARG);
    }
    for (int t = 0; t < 4; ++t) {
        pthread_join(threads[t], NULL);
        CHECK_EQ_INT(args[t].wrong, 0);
    }
}

int main(void) {
    mora_context *ctx = NULL;
    REQUIRE_OK(mora_context_create("cpu", 0, &ctx));
    test_public_calls(ctx);
    test_backend_calls(ctx);
    test_plan_calls(ctx);
    test_threads(ctx);
    mora_context_destroy(ctx);
    return check_report();
}
