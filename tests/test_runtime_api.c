/* test_runtime_api — the runtime API's contracts on one backend (argv[1], default opencl): bad input
 * is rejected with a sentence and changes nothing, n = 0 is a no-op, weights round-trip, a caller's
 * buffer too small for a call is refused, and (where code is compiled) a broken kernel source gives
 * MORA_E_COMPILE with the compiler's log. Exits 77 when the backend is absent. */
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
}

int main(int argc, char **argv) {
    const char *backend = argc > 1 ? argv[1] : "opencl";
    check_context_errors();
    mora_context *ctx = NULL;
    const mora_status st = mora_context_create(backend, 0, &ctx);
    if (st == MORA_E_NO_BACKEND) SKIP("backend %s is not available here: %s", backend, mora_last_error());
    REQUIRE_OK(st);
    CHECK_STR(mora_context_backend(ctx), backend);

    /* layer creation rejects what the shape check rejects, and unknown dtypes */
    mora_layer *l = (mora_layer *)0x1;
    const mora_shape bad = {10, 10, 12, MORA_OP_GROUP};
    CHECK_STATUS(mora_layer_create(ctx, &bad, MORA_F32, &l), MORA_E_CONSTRAINT);
    CHECK(l == (mora_layer *)0x1);
    const mora_shape s = {50, 37, 8, MORA_OP_ROPE};
    CHECK_STATUS(mora_layer_create(ctx, &s, (mora_dtype)7, &l), MORA_E_UNKNOWN_DTYPE);
    CHECK_STATUS(mora_layer_create(NULL, &s, MORA_F32, &l), MORA_E_NULL);
    REQUIRE_OK(mora_layer_create(ctx, &s, MORA_F32, &l));

    /* M starts at zero; set/get round-trips; the gradient starts at zero */
    float M[64], back[64], grad[64];
    REQUIRE_OK(mora_layer_get_weight(l, back));
    int zero = 1;
    for (int i = 0; i < 64; ++i) zero &= back[i] == 0.0f;
    CHECK(zero);
    for (int i = 0; i < 64; ++i) M[i] = (float)i * 0.25f - 3.0f;
    REQUIRE_OK(mora_layer_set_weight(l, M));
    REQUIRE_OK(mora_layer_get_weight(l, back));
    CHECK(memcmp(M, back, sizeof M) == 0);
    REQUIRE_OK(mora_layer_get_grad(l, grad));
    zero = 1;
    for (int i = 0; i < 64; ++i) zero &= grad[i] == 0.0f;
    CHECK(zero);
    CHECK_STATUS(mora_layer_set_weight(l, NULL), MORA_E_NULL);

    /* buffers of 3 tokens */
    const int64_t n = 3;
    float hx[3 * 50], hy[3 * 37], before[3 * 37 + 1], after[3 * 37 + 1];
    for (int i = 0; i < 3 * 50; ++i) hx[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < 3 * 37; ++i) hy[i] = 1.0f;
    void *x = NULL, *y = NULL;
    REQUIRE_OK(mora_buffer_alloc(ctx, sizeof hx, &x));
    REQUIRE_OK(mora_buffer_alloc(ctx, sizeof hy, &y));
    REQUIRE_OK(mora_buffer_write(ctx, x, 0, hx, sizeof hx));
    REQUIRE_OK(mora_buffer_write(ctx, y, 0, hy, sizeof hy));
    REQUIRE_OK(mora_buffer_read(ctx, y, 0, before, sizeof hy));

    /* bad calls change nothing */
    CHECK_STATUS(mora_forward(l, x, y, -1, 1.0f), MORA_E_SIZE);
    CHECK(strstr(mora_last_error(), "n=-1") != NULL);
    CHECK_STATUS(mora_forward(l, NULL, y, n, 1.0f), MORA_E_NULL);
    CHECK(strstr(mora_last_error(), "x=NULL") != NULL);
    CHECK_STATUS(mora_forward(NULL, x, y, n, 1.0f), MORA_E_NULL);
    CHECK_STATUS(mora_backward(l, x, NULL, NULL, n), MORA_E_NULL);
    CHECK_STATUS(mora_merge(l, y, (mora_dtype)9, 1.0f), MORA_E_UNKNOWN_DTYPE);
    CHECK_STATUS(mora_forward(l, x, y, 0, 1.0f), MORA_OK); /* n = 0: no-op */
    CHECK_STATUS(mora_backward(l, x, y, NULL, 0), MORA_OK);
    if (strcmp(backend, "cpu") != 0) {
        /* the backend knows buffer sizes: 4 tokens do not fit buffers of 3 */
        CHECK_STATUS(mora_forward(l, x, y, n + 1, 1.0f), MORA_E_ARG);
        CHECK(strstr(mora_last_error(), "smaller than") != NULL);
        CHECK_STATUS(mora_merge(l, y, MORA_F32, 1.0f), MORA_E_ARG); /* W needs 37 x 50 floats */
        CHECK_STATUS(mora_buffer_write(ctx, y, 8, hy, sizeof hy), MORA_E_ARG);
        CHECK_STATUS(mora_buffer_read(ctx, y, sizeof hy, after, 4), MORA_E_ARG);
    }
    REQUIRE_OK(mora_synchronize(ctx));
    REQUIRE_OK(mora_buffer_read(ctx, y, 0, after, sizeof hy));
    CHECK(memcmp(before, after, sizeof hy) == 0);

    /* a real call changes y */
    REQUIRE_OK(mora_forward(l, x, y, n, 1.0f));
    REQUIRE_OK(mora_buffer_read(ctx, y, 0, after, sizeof hy));
    CHECK(memcmp(before, after, sizeof hy) != 0);

    /* a deliberately broken kernel yields MORA_E_COMPILE and the compiler's log */
    if (ctx->be->program_build) {
        void *program = NULL;
        CHECK_STATUS(mora_context_program(ctx, "__kernel void broken(__global float *p) { p[0] = undeclared_name; }",
                                          &program),
                     MORA_E_COMPILE);
        CHECK(strstr(mora_last_error(), "undeclared_name") != NULL);
        CHECK(strstr(mora_last_error(), "error") != NULL);
        CHECK(program == NULL);
        CHECK_STATUS(mora_context_set_stream(ctx, NULL), MORA_OK); /* back to the context's own queue */
    } else {
        CHECK_STATUS(mora_context_set_stream(ctx, NULL), MORA_E_UNSUPPORTED);
    }

    REQUIRE_OK(mora_buffer_free(ctx, x));
    REQUIRE_OK(mora_buffer_free(ctx, y));
    mora_layer_destroy(l);
    mora_context_destroy(ctx);
    return check_report();
}
