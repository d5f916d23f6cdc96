/* test_runtime_api — the plan API's contracts on one backend (argv[1], default opencl): bad input is
 * rejected with a sentence naming the argument and changes nothing (a failing backward leaves both
 * outputs as they were), n = 0 is a no-op, strides are checked, mora_last_error() is empty after
 * success, the workspace bounds a backward's n, set_stream(NULL) works, and (where code is compiled)
 * a broken kernel source gives MORA_E_COMPILE with the compiler's log. Exits 77 when the backend is
 * absent. */
#include "backend_harness.h"
#include "context.h"

static void check_context_errors(void) {
    mora_context *ctx = (mora_context *)0x1;
    CHECK_STATUS(mora_context_create("vulkan", 0, &ctx), MORA_E_ARG);
    CHECK(strstr(mora_last_error(), "backend=\"vulkan\"") != NULL);
    CHECK(ctx == (mora_context *)0x1); /* untouched */
    CHECK_STATUS(mora_context_create("cpu", -1, &ctx), MORA_E_ARG);
    CHECK(strstr(mora_last_error(), "device=-1") != NULL);
    CHECK_STATUS(mora_context_create(NULL, 0, &ctx), MORA_E_NULL);
    CHECK_STATUS(mora_context_create("cpu", 0, NULL), MORA_E_NULL);
    CHECK_STATUS(mora_context_create("cpu", 3, &ctx), MORA_E_NO_BACKEND);
    CHECK(ctx == (mora_context *)0x1);
}

/* Reads a float buffer of `count` elements. */
static void read_floats(mora_context *ctx, const void *buf, float *out, size_t count) {
    REQUIRE_OK(mora_buffer_read(ctx, buf, 0, out, count * sizeof *out));
}

int main(int argc, char **argv) {
    const char *backend = argc > 1 ? argv[1] : "opencl";
    check_context_errors();
    mora_context *ctx = NULL;
    const mora_status st = mora_context_create(backend, 0, &ctx);
    if (st == MORA_E_NO_BACKEND) SKIP("backend %s is not available here: %s", backend, mora_last_error());
    REQUIRE_OK(st);
    CHECK_STR(mora_context_backend(ctx), backend);
    CHECK_STR(mora_last_error(), ""); /* empty after a call that succeeded */
    CHECK_STATUS(mora_context_set_stream(ctx, NULL), MORA_OK); /* back to the context's own, on every backend */
    const int knows_sizes = ctx->be->buffer_size != NULL;
    void *huge = (void *)0x1;
    CHECK_STATUS(mora_buffer_alloc(ctx, SIZE_MAX, &huge), MORA_E_NO_MEMORY); /* not a device error */
    CHECK(strstr(mora_last_error(), "bytes=") != NULL);

    /* plan creation rejects what the shape check rejects, unknown dtypes, bad token counts and options */
    mora_plan *p = (mora_plan *)0x1;
    const mora_shape bad = {10, 10, 12, MORA_OP_GROUP};
    CHECK_STATUS(mora_plan_create(ctx, &bad, MORA_F32, 8, NULL, &p), MORA_E_CONSTRAINT);
    CHECK(p == (mora_plan *)0x1);
    const mora_shape s = {50, 37, 8, MORA_OP_ROPE};
    CHECK_STATUS(mora_plan_create(ctx, &s, (mora_dtype)7, 8, NULL, &p), MORA_E_UNKNOWN_DTYPE);
    CHECK_STATUS(mora_plan_create(NULL, &s, MORA_F32, 8, NULL, &p), MORA_E_NULL);
    CHECK_STATUS(mora_plan_create(ctx, &s, MORA_F32, 0, NULL, &p), MORA_E_SIZE);
    CHECK(strstr(mora_last_error(), "max_tokens=0") != NULL);
    mora_plan_options options = MORA_PLAN_OPTIONS_INIT;
    options.calls = 8;
    CHECK_STATUS(mora_plan_create(ctx, &s, MORA_F32, 8, &options, &p), MORA_E_ARG);
    CHECK(strstr(mora_last_error(), "options->calls") != NULL);
    options.calls = 0;
    options.merge_dtypes = 1u << 5;
    CHECK_STATUS(mora_plan_create(ctx, &s, MORA_F32, 8, &options, &p), MORA_E_UNKNOWN_DTYPE);
    CHECK(p == (mora_plan *)0x1);
    const int64_t max_tokens = 4;
    REQUIRE_OK(mora_plan_create(ctx, &s, MORA_F32, max_tokens, NULL, &p));
    CHECK_STR(mora_last_error(), "");

    /* caller-owned M, dM; activations of 3 tokens with row strides 53 (x) and 40 (y) */
    const int64_t n = 3, ldx = 53, ldy = 40, r2 = 64;
    float hM[64], hdM[64], hx[3 * 53], hy[3 * 40], before[3 * 40], after[3 * 40], dm_after[64];
    for (int i = 0; i < r2; ++i) hM[i] = (float)i * 0.25f - 3.0f, hdM[i] = 0.5f;
    for (int i = 0; i < 3 * 53; ++i) hx[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < 3 * 40; ++i) hy[i] = 1.0f;
    void *M = NULL, *dM = NULL, *x = NULL, *y = NULL;
    REQUIRE_OK(mora_buffer_alloc(ctx, sizeof hM, &M));
    REQUIRE_OK(mora_buffer_alloc(ctx, sizeof hdM, &dM));
    REQUIRE_OK(mora_buffer_alloc(ctx, sizeof hx, &x));
    REQUIRE_OK(mora_buffer_alloc(ctx, sizeof hy, &y));
    REQUIRE_OK(mora_buffer_write(ctx, M, 0, hM, sizeof hM));
    REQUIRE_OK(mora_buffer_write(ctx, dM, 0, hdM, sizeof hdM));
    REQUIRE_OK(mora_buffer_write(ctx, x, 0, hx, sizeof hx));
    REQUIRE_OK(mora_buffer_write(ctx, y, 0, hy, sizeof hy));
    read_floats(ctx, y, before, 3 * 40);

    /* bad calls change nothing, and say which argument */
    CHECK_STATUS(mora_forward(p, M, x, ldx, y, ldy, -1, 1.0f), MORA_E_SIZE);
    CHECK(strstr(mora_last_error(), "n=-1") != NULL);
    CHECK_STATUS(mora_forward(p, M, x, ldx, y, ldy, (int64_t)1 << 31, 1.0f), MORA_E_SIZE);
    CHECK_STATUS(mora_forward(p, M, NULL, ldx, y, ldy, n, 1.0f), MORA_E_NULL);
    CHECK(strstr(mora_last_error(), "x=NULL") != NULL);
    CHECK_STATUS(mora_forward(p, NULL, x, ldx, y, ldy, n, 1.0f), MORA_E_NULL);
    CHECK(strstr(mora_last_error(), "M=NULL") != NULL);
    CHECK_STATUS(mora_forward(NULL, M, x, ldx, y, ldy, n, 1.0f), MORA_E_NULL);
    CHECK_STATUS(mora_forward(p, M, x, 49, y, ldy, n, 1.0f), MORA_E_ARG);
    CHECK(strstr(mora_last_error(), "ldx=49") != NULL);
    CHECK_STATUS(mora_forward(p, M, x, ldx, y, 36, n, 1.0f), MORA_E_ARG);
    CHECK(strstr(mora_last_error(), "ldy=36") != NULL);
    CHECK_STATUS(mora_forward(p, M, x, INT64_MAX / 2, y, ldy, n, 1.0f), MORA_E_OVERFLOW);
    CHECK_STATUS(mora_backward(p, M, x, ldx, NULL, ldy, NULL, ldx, dM, n, 1.0f), MORA_E_NULL);
    CHECK_STATUS(mora_merge(p, M, y, 50, (mora_dtype)9, 1.0f), MORA_E_UNKNOWN_DTYPE);
    CHECK_STATUS(mora_merge(p, M, y, 50, MORA_F16, 1.0f), MORA_E_ARG); /* merge prepared for f32 W only */
    CHECK(strstr(mora_last_error(), "w_dtype=f16") != NULL);
    CHECK_STATUS(mora_forward(p, M, x, ldx, y, ldy, 0, 1.0f), MORA_OK); /* n = 0: a no-op */
    CHECK_STATUS(mora_backward(p, M, x, ldx, y, ldy, NULL, ldx, NULL, 0, 1.0f), MORA_OK);
    CHECK_STATUS(mora_backward(p, M, x, ldx, y, ldy, NULL, ldx, dM, max_tokens + 1, 1.0f),
                 knows_sizes ? MORA_E_ARG : MORA_E_SIZE); /* buffers too small, or else the workspace */
    if (knows_sizes) {
        /* the backend knows buffer sizes: 4 tokens do not fit buffers of 3 */
        CHECK_STATUS(mora_forward(p, M, x, ldx, y, ldy, n + 1, 1.0f), MORA_E_ARG);
        CHECK(strstr(mora_last_error(), "smaller than") != NULL);
        CHECK_STATUS(mora_merge(p, M, y, 50, MORA_F32, 1.0f), MORA_E_ARG); /* W needs 37 x 50 floats */
        CHECK_STATUS(mora_forward(p, y, x, ldx, y, ldy, n, 1.0f), MORA_E_ALIAS); /* y is big enough to be an M */
        CHECK(strstr(mora_last_error(), "y and M") != NULL);
        CHECK_STATUS(mora_forward(p, x, x, ldx, y, ldy, n, 1.0f), MORA_OK); /* inputs may overlap */
        REQUIRE_OK(mora_buffer_write(ctx, y, 0, hy, sizeof hy));
        CHECK_STATUS(mora_buffer_write(ctx, y, 8, hy, sizeof hy), MORA_E_ARG);
        CHECK_STATUS(mora_buffer_read(ctx, y, sizeof hy, after, 4), MORA_E_ARG);
        /* a backward whose dx is too small fails before dM is touched */
        CHECK_STATUS(mora_backward(p, M, x, ldx, y, ldy, y, ldx, dM, n, 1.0f), MORA_E_ARG);
        CHECK(strstr(mora_last_error(), "dx") != NULL);
    }
    REQUIRE_OK(mora_synchronize(ctx));
    read_floats(ctx, y, after, 3 * 40);
    CHECK(memcmp(before, after, sizeof after) == 0);
    read_floats(ctx, dM, dm_after, 64);
    CHECK(memcmp(hdM, dm_after, sizeof hdM) == 0);

    /* real calls change y and dM, and leave the gaps between strided rows alone */
    REQUIRE_OK(mora_forward(p, M, x, ldx, y, ldy, n, 1.0f));
    CHECK_STR(mora_last_error(), "");
    read_floats(ctx, y, after, 3 * 40);
    CHECK(memcmp(before, after, 37 * sizeof *after) != 0);
    int gaps = 1;
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 37; j < ldy; ++j) gaps &= after[i * ldy + j] == 1.0f;
    CHECK(gaps);
    REQUIRE_OK(mora_backward(p, M, x, ldx, y, ldy, NULL, 0, dM, n, 1.0f));
    read_floats(ctx, dM, dm_after, 64);
    CHECK(memcmp(hdM, dm_after, sizeof hdM) != 0);

    /* the workspace: its size grows with n; without one, a backward says so; the caller's works */
    size_t ws1 = 0, ws_max = 0;
    REQUIRE_OK(mora_plan_workspace_size(p, 1, &ws1));
    REQUIRE_OK(mora_plan_workspace_size(p, 1000, &ws_max));
    CHECK(ws_max >= ws1);
    CHECK_STATUS(mora_plan_workspace_size(p, -2, &ws1), MORA_E_SIZE);
    mora_plan *q = NULL;
    options = (mora_plan_options){.struct_size = sizeof options, .calls = MORA_PLAN_BACKWARD, .external_workspace = 1};
    REQUIRE_OK(mora_plan_create(ctx, &s, MORA_F32, 2, &options, &q));
    size_t need = 0;
    REQUIRE_OK(mora_plan_workspace_size(q, n, &need));
    if (need > 0) {
        CHECK_STATUS(mora_backward(q, M, x, ldx, y, ldy, NULL, 0, dM, n, 1.0f), MORA_E_SIZE);
        CHECK(strstr(mora_last_error(), "workspace") != NULL);
        void *ws = NULL;
        REQUIRE_OK(mora_buffer_alloc(ctx, need, &ws));
        REQUIRE_OK(mora_plan_set_workspace(q, ws, need));
        REQUIRE_OK(mora_backward(q, M, x, ldx, y, ldy, NULL, 0, dM, n, 1.0f));
        REQUIRE_OK(mora_plan_set_workspace(q, NULL, 0)); /* back to its own, for max_tokens = 2 */
        REQUIRE_OK(mora_synchronize(ctx));
        REQUIRE_OK(mora_buffer_free(ctx, ws));
    }
    CHECK_STATUS(mora_forward(q, M, x, ldx, y, ldy, n, 1.0f), MORA_E_ARG); /* prepared for backward only */
    CHECK(strstr(mora_last_error(), "MORA_PLAN_FORWARD") != NULL);
    mora_plan_destroy(q);
    /* a forward-only plan: on the cpu backend its forward packs tiles in the plan's workspace, so it
     * has one and bounds n by max_tokens; generated kernels take any n */
    options = (mora_plan_options){.struct_size = sizeof options, .calls = MORA_PLAN_FORWARD};
    REQUIRE_OK(mora_plan_create(ctx, &s, MORA_F32, 2, &options, &q));
    REQUIRE_OK(mora_forward(q, M, x, ldx, y, ldy, 2, 1.0f));
    const int host = ctx->be->dialect == MORA_DIALECT_HOST;
    CHECK_STATUS(mora_forward(q, M, x, ldx, y, ldy, n, 1.0f), host ? MORA_E_SIZE : MORA_OK);
    mora_plan_destroy(q);
    REQUIRE_OK(mora_synchronize(ctx));
    REQUIRE_OK(mora_buffer_write(ctx, y, 0, hy, sizeof hy)); /* y as the later checks expect it */

    /* a deliberately broken kernel yields MORA_E_COMPILE and the compiler's log; the cpu backend
     * compiles only the host dialect, and says so */
    if (host) {
        void *program = NULL;
        CHECK_STATUS(mora_context_build(ctx, "__kernel void broken(__global float *p) { p[0] = 1; }", &program),
                     MORA_E_COMPILE);
        CHECK(strstr(mora_last_error(), "host dialect") != NULL);
        CHECK(program == NULL);
    }
    if (!host) {
        void *program = NULL;
        CHECK_STATUS(mora_context_build(ctx, "__kernel void broken(__global float *p) { p[0] = undeclared_name; }",
                                        &program),
                     MORA_E_COMPILE);
        CHECK(strstr(mora_last_error(), "undeclared_name") != NULL);
        CHECK(strstr(mora_last_error(), "error") != NULL);
        CHECK(program == NULL);
    } else {
        CHECK_STATUS(mora_context_set_stream(ctx, (void *)0x10), MORA_E_UNSUPPORTED);
    }

    REQUIRE_OK(mora_synchronize(ctx));
    void *buffers[] = {M, dM, x, y};
    for (int i = 0; i < 4; ++i) REQUIRE_OK(mora_buffer_free(ctx, buffers[i]));
    mora_plan_destroy(p);
    mora_context_destroy(ctx);
    return check_report();
}
