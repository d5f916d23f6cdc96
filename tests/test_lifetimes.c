/* test_lifetimes — the ways a caller could crash libmora or get a wrong result without an error
 * (issue 22), on one backend (argv[1]: cpu or opencl): handles that outlive their context or are used
 * after destruction, buffers of another context, outputs that alias inputs, non-finite scales and
 * learning rates, plans too big for the device, options structs of the wrong size. The cases that
 * crashed before run in a child process, so a crash is a failed check, not a dead suite. Exits 77
 * when the backend is absent. */
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "context.h"
#include "strided.h"

static const char *backend = "cpu";
static int is_cpu;

static mora_context *open_context(void) {
    mora_context *ctx = NULL;
    REQUIRE_OK(mora_context_create(backend, 0, &ctx));
    return ctx;
}

static void *upload(mora_context *ctx, const float *host, size_t count) {
    void *buf = NULL;
    REQUIRE_OK(mora_buffer_alloc(ctx, count * sizeof(float), &buf));
    REQUIRE_OK(mora_buffer_write(ctx, buf, 0, host, count * sizeof(float)));
    return buf;
}

static void download(mora_context *ctx, const void *buf, float *host, size_t count) {
    REQUIRE_OK(mora_buffer_read(ctx, buf, 0, host, count * sizeof(float)));
}

static void fill(check_rng *rng, float *v, size_t count) {
    for (size_t i = 0; i < count; ++i) v[i] = (float)check_rng_uniform(rng);
}

/* Runs `scenario` in a child process; the child's own checks decide its exit status, and a crash
 * (a signal) or a failed check fails the parent's check naming the scenario. */
static void in_child(const char *name, void (*scenario)(void)) {
    fflush(stdout);
    fflush(stderr);
    const pid_t pid = fork();
    if (pid < 0) {
        CHECK_FAIL_("fork for %s failed", name);
        return;
    }
    if (pid == 0) {
        check_failures_ = check_count_ = 0; /* the child's own count, not the parent's so far */
        scenario();
        fflush(stdout);
        _exit(check_failures_ == 0 && check_count_ > 0 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ++check_count_;
    if (WIFSIGNALED(status)) CHECK_FAIL_("%s: the child died of signal %d", name, WTERMSIG(status));
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) CHECK_FAIL_("%s: the child's checks failed", name);
}

/* ---- item 1: lifetimes ---- */

/* The small shape of the lifetime cases and a forward of it checked against the reference. */
static const mora_shape small = {24, 20, 8, MORA_OP_ROPE};
enum { TOKENS = 5 };

static void check_forward_runs(mora_context *ctx_for_buffers, mora_plan *plan, const char *what) {
    check_rng rng = {11};
    float M[64], x[TOKENS * 24], y[TOKENS * 20], got[TOKENS * 20];
    fill(&rng, M, 64), fill(&rng, x, TOKENS * 24), fill(&rng, y, TOKENS * 20);
    double Md[64], xd[TOKENS * 24], yd[TOKENS * 20], gotd[TOKENS * 20];
    for (int i = 0; i < 64; ++i) Md[i] = M[i];
    for (int i = 0; i < TOKENS * 24; ++i) xd[i] = x[i];
    for (int i = 0; i < TOKENS * 20; ++i) yd[i] = y[i];
    REQUIRE_OK(mora_ref_forward(&small, Md, xd, yd, TOKENS, 0.5));
    void *bM = upload(ctx_for_buffers, M, 64), *bx = upload(ctx_for_buffers, x, TOKENS * 24),
         *by = upload(ctx_for_buffers, y, TOKENS * 20);
    CHECK_STATUS(mora_forward(plan, bM, bx, 24, by, 20, TOKENS, 0.5f), MORA_OK);
    download(ctx_for_buffers, by, got, TOKENS * 20);
    for (int i = 0; i < TOKENS * 20; ++i) gotd[i] = got[i];
    CHECK_REL(gotd, yd, TOKENS * 20, 1e-5);
    if (check_failures_) fprintf(stderr, "  (%s)\n", what);
    mora_buffer_free(ctx_for_buffers, bM), mora_buffer_free(ctx_for_buffers, bx), mora_buffer_free(ctx_for_buffers, by);
}

/* A plan outlives the caller's hold on its context: it keeps working, the context's buffers can still
 * be freed, a second destroy does nothing, and the plan's destruction closes the context, whose
 * handle is refused from then on. */
static void plan_outlives_context(void) {
    mora_context *ctx = open_context();
    mora_plan *plan = NULL;
    REQUIRE_OK(mora_plan_create(ctx, &small, MORA_F32, TOKENS, NULL, &plan));
    check_rng rng = {3};
    float M[64], x[TOKENS * 24], y[TOKENS * 20], y_ref_in[TOKENS * 20];
    fill(&rng, M, 64), fill(&rng, x, TOKENS * 24), fill(&rng, y, TOKENS * 20);
    memcpy(y_ref_in, y, sizeof y);
    void *bM = upload(ctx, M, 64), *bx = upload(ctx, x, TOKENS * 24), *by = upload(ctx, y, TOKENS * 20);
    mora_context_destroy(ctx); /* the caller lets go; the plan holds the context */
    mora_context_destroy(ctx); /* a second time: nothing (the plan's hold stays) */
    CHECK_STATUS(mora_forward(plan, bM, bx, 24, by, 20, TOKENS, 1.0f), MORA_OK);
    float got[TOKENS * 20];
    download(ctx, by, got, TOKENS * 20);
    CHECK(memcmp(got, y_ref_in, sizeof got) != 0); /* the forward ran */
    CHECK_STATUS(mora_buffer_free(ctx, bM), MORA_OK);
    CHECK_STATUS(mora_buffer_free(ctx, bx), MORA_OK);
    CHECK_STATUS(mora_buffer_free(ctx, by), MORA_OK);
    mora_plan_destroy(plan); /* the last holder: the context closes */
#if !defined(__SANITIZE_ADDRESS__) /* reading a closed context's first word is a use after free */
    CHECK_STATUS(mora_synchronize(ctx), MORA_E_ARG);
    CHECK(strstr(mora_last_error(), "not a live mora_context") != NULL);
    CHECK_STR(mora_context_backend(ctx), "none");
#endif
}

/* An adapter outlives its context's handle: forward, backward, a step, ReMoRA's new plans, save. */
static void adapter_outlives_context(void) {
    mora_context *ctx = open_context();
    const mora_adapter_layer_desc layer = {"layer", 24, 20, 2, 0, MORA_OP_SHARE, MORA_F32, MORA_F32};
    mora_adapter *a = NULL;
    REQUIRE_OK(mora_adapter_create(ctx, &layer, 1, TOKENS, NULL, &a));
    check_rng rng = {5};
    float x[TOKENS * 24], dy[TOKENS * 20], W[20 * 24];
    fill(&rng, x, TOKENS * 24), fill(&rng, dy, TOKENS * 20), fill(&rng, W, 20 * 24);
    void *bx = upload(ctx, x, TOKENS * 24), *bdy = upload(ctx, dy, TOKENS * 20), *bW = upload(ctx, W, 20 * 24);
    mora_context_destroy(ctx);
    CHECK_STATUS(mora_adapter_backward(a, 0, bx, 24, bdy, 20, NULL, 24, TOKENS, 1.0f), MORA_OK);
    const mora_adamw hp = MORA_ADAMW_DEFAULTS;
    CHECK_STATUS(mora_adapter_step(a, &hp), MORA_OK);
    CHECK_STATUS(mora_adapter_forward(a, 0, bx, 24, bdy, 20, TOKENS, 1.0f), MORA_OK);
    void *const Ws[1] = {bW};
    const int64_t ld[1] = {24};
    CHECK_STATUS(mora_adapter_remora(a, Ws, ld), MORA_OK); /* makes the group type's plan */
    mora_buffer_free(ctx, bx), mora_buffer_free(ctx, bdy), mora_buffer_free(ctx, bW);
    mora_adapter_destroy(a);
}

/* Handles of one kind passed as another, and handles used after their destruction. */
static void foreign_and_destroyed_handles(void) {
    mora_context *ctx = open_context();
    mora_plan *plan = NULL;
    REQUIRE_OK(mora_plan_create(ctx, &small, MORA_F32, TOKENS, NULL, &plan));
    const mora_adapter_layer_desc layer = {"layer", 24, 20, 2, 0, MORA_OP_SHARE, MORA_F32, MORA_F32};
    mora_adapter *a = NULL;
    REQUIRE_OK(mora_adapter_create(ctx, &layer, 1, TOKENS, NULL, &a));
    CHECK_STATUS(mora_forward((mora_plan *)a, NULL, NULL, 24, NULL, 20, 1, 1.0f), MORA_E_ARG);
    CHECK(strstr(mora_last_error(), "not a live mora_plan") != NULL);
    CHECK_STATUS(mora_adapter_zero_grad((mora_adapter *)plan), MORA_E_ARG);
    CHECK(strstr(mora_last_error(), "not a live mora_adapter") != NULL);
    CHECK_STATUS(mora_synchronize((mora_context *)plan), MORA_E_ARG);
    CHECK_STATUS(mora_plan_create((mora_context *)a, &small, MORA_F32, 1, NULL, &(mora_plan *){NULL}), MORA_E_ARG);
    mora_plan_destroy((mora_plan *)a);         /* not a plan: nothing happens */
    mora_adapter_destroy((mora_adapter *)plan); /* not an adapter: nothing happens */
    mora_context_destroy((mora_context *)plan);
    check_forward_runs(ctx, plan, "the plan after the wrong destroys");
#if defined(__SANITIZE_ADDRESS__)
    /* A destroyed handle's memory is freed: AddressSanitizer (rightly) stops at the first word read,
     * so that half of the scenario runs only in the plain build. */
    printf("note: the use-after-destroy checks run in the build without AddressSanitizer\n");
    mora_plan_destroy(plan);
    mora_adapter_destroy(a);
#else
    mora_plan_destroy(plan);
    CHECK_STATUS(mora_forward(plan, NULL, NULL, 24, NULL, 20, 1, 1.0f), MORA_E_ARG);
    mora_plan_destroy(plan); /* twice: nothing */
    mora_adapter_destroy(a);
    CHECK_STATUS(mora_adapter_zero_grad(a), MORA_E_ARG);
    mora_adapter_destroy(a);
#endif
    mora_context_destroy(ctx);
}

/* ---- item 2: buffers of another context ---- */

static void foreign_buffers(void) {
    mora_context *ctx = open_context(), *other = open_context();
    mora_plan *plan = NULL;
    REQUIRE_OK(mora_plan_create(ctx, &small, MORA_F32, TOKENS, NULL, &plan));
    check_rng rng = {17};
    float M[64], x[TOKENS * 24], y[TOKENS * 20], after[TOKENS * 20];
    fill(&rng, M, 64), fill(&rng, x, TOKENS * 24), fill(&rng, y, TOKENS * 20);
    void *bM = upload(ctx, M, 64), *bx = upload(ctx, x, TOKENS * 24), *by = upload(ctx, y, TOKENS * 20);
    void *foreign_y = upload(other, y, TOKENS * 20), *foreign_M = upload(other, M, 64);
    CHECK_STATUS(mora_forward(plan, bM, bx, 24, foreign_y, 20, TOKENS, 1.0f), MORA_E_ARG);
    CHECK(strstr(mora_last_error(), "another") != NULL);
    CHECK_STATUS(mora_forward(plan, foreign_M, bx, 24, by, 20, TOKENS, 1.0f), MORA_E_ARG);
    CHECK_STATUS(mora_buffer_read(ctx, foreign_y, 0, after, sizeof after), MORA_E_ARG);
    download(other, foreign_y, after, TOKENS * 20);
    CHECK(memcmp(after, y, sizeof y) == 0); /* untouched */
    download(ctx, by, after, TOKENS * 20);
    CHECK(memcmp(after, y, sizeof y) == 0);
    if (is_cpu) { /* the caller's own host memory is always accepted on the cpu backend */
        float *host_y = malloc(sizeof y);
        memcpy(host_y, y, sizeof y);
        CHECK_STATUS(mora_forward(plan, bM, bx, 24, host_y, 20, TOKENS, 1.0f), MORA_OK);
        free(host_y);
    }
    mora_buffer_free(other, foreign_y), mora_buffer_free(other, foreign_M);
    mora_buffer_free(ctx, bM), mora_buffer_free(ctx, bx), mora_buffer_free(ctx, by);
    mora_plan_destroy(plan);
    mora_context_destroy(other);
    mora_context_destroy(ctx);
}

/* ---- item 3: aliasing ---- */

static void aliasing(void) {
    mora_context *ctx = open_context();
    const mora_shape s = {24, 24, 8, MORA_OP_SHARE}; /* d_in = d_out: x, y, dx and dy are interchangeable */
    mora_plan *plan = NULL;
    REQUIRE_OK(mora_plan_create(ctx, &s, MORA_F32, TOKENS, NULL, &plan));
    check_rng rng = {23};
    enum { ROW = 24, N = TOKENS * ROW };
    float M[64], a[N], b[N], c[N], after[N], m_after[64], W[ROW * ROW];
    fill(&rng, M, 64), fill(&rng, a, N), fill(&rng, b, N), fill(&rng, c, N), fill(&rng, W, ROW * ROW);
    void *bM = upload(ctx, M, 64), *ba = upload(ctx, a, N), *bb = upload(ctx, b, N), *bc = upload(ctx, c, N),
         *bW = upload(ctx, W, ROW * ROW);
    struct {
        const char *what;
        mora_status got;
    } refused[] = {
        {"forward y == x", mora_forward(plan, bM, ba, ROW, ba, ROW, TOKENS, 1.0f)},
        {"forward y == M", mora_forward(plan, ba, bb, ROW, ba, ROW, 2, 1.0f)},
        {"backward dM == M", mora_backward(plan, bM, ba, ROW, bb, ROW, NULL, ROW, bM, TOKENS, 1.0f)},
        {"backward dM == x", mora_backward(plan, bM, ba, ROW, bb, ROW, NULL, ROW, ba, TOKENS, 1.0f)},
        {"backward dx == dy", mora_backward(plan, bM, ba, ROW, bb, ROW, bb, ROW, NULL, TOKENS, 1.0f)},
        {"backward dx == x (dM read x)", mora_backward(plan, bM, ba, ROW, bb, ROW, ba, ROW, bc, TOKENS, 1.0f)},
        {"backward dx == M", mora_backward(plan, ba, bb, ROW, bc, ROW, ba, ROW, NULL, 2, 1.0f)},
        {"merge W == M", mora_merge(plan, bW, bW, ROW, MORA_F32, 1.0f)},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; ++i) {
        ++check_count_;
        if (refused[i].got != MORA_E_ALIAS)
            CHECK_FAIL_("%s: got %s, want MORA_E_ALIAS", refused[i].what, mora_status_name(refused[i].got));
    }
    /* nothing changed by the refused calls */
    download(ctx, ba, after, N);
    CHECK(memcmp(after, a, sizeof a) == 0);
    download(ctx, bb, after, N);
    CHECK(memcmp(after, b, sizeof b) == 0);
    download(ctx, bM, m_after, 64);
    CHECK(memcmp(m_after, M, sizeof M) == 0);
    /* inputs may overlap: x == M, dy == x */
    CHECK_STATUS(mora_forward(plan, ba, ba, ROW, bb, ROW, 2, 1.0f), MORA_OK);
    CHECK_STATUS(mora_backward(plan, bM, ba, ROW, ba, ROW, bb, ROW, bc, TOKENS, 1.0f), MORA_OK);
    if (is_cpu) {
        /* host ranges: y one row into x overlaps; x and y as the two column blocks of one [x | y]
         * matrix (same stride, rows interleaved, no element shared) are fine and give the reference */
        float *xy = malloc(sizeof(float) * TOKENS * 2 * ROW);
        fill(&rng, xy, TOKENS * 2 * ROW);
        CHECK_STATUS(mora_forward(plan, bM, xy, ROW, xy + ROW, ROW, TOKENS - 1, 1.0f), MORA_E_ALIAS);
        CHECK_STATUS(mora_forward(plan, bM, xy, 2 * ROW, xy + ROW - 1, 2 * ROW, TOKENS, 1.0f), MORA_E_ALIAS);
        double Md[64], xd[TOKENS * ROW], yd[TOKENS * ROW], got[TOKENS * ROW];
        for (int i = 0; i < 64; ++i) Md[i] = M[i];
        for (int t = 0; t < TOKENS; ++t)
            for (int j = 0; j < ROW; ++j) xd[t * ROW + j] = xy[t * 2 * ROW + j], yd[t * ROW + j] = xy[t * 2 * ROW + ROW + j];
        REQUIRE_OK(mora_ref_forward(&s, Md, xd, yd, TOKENS, 1.0));
        CHECK_STATUS(mora_forward(plan, bM, xy, 2 * ROW, xy + ROW, 2 * ROW, TOKENS, 1.0f), MORA_OK);
        for (int t = 0; t < TOKENS; ++t)
            for (int j = 0; j < ROW; ++j) got[t * ROW + j] = xy[t * 2 * ROW + ROW + j];
        CHECK_REL(got, yd, TOKENS * ROW, 1e-5);
        free(xy);
    }
    mora_buffer_free(ctx, bM), mora_buffer_free(ctx, ba), mora_buffer_free(ctx, bb), mora_buffer_free(ctx, bc);
    mora_buffer_free(ctx, bW);
    mora_plan_destroy(plan);
    mora_context_destroy(ctx);
}

/* The overlap rule against brute force over random small strided ranges: never a miss; exact when
 * the strides are equal, or a range is one row no wider than the other's stride. */
static void overlap_brute_force(void) {
    check_rng rng = {31};
    int misses = 0, inexact = 0, cases = 0, overlapping = 0;
    for (int t = 0; t < 20000; ++t) {
        mora_strided r[2];
        const uint64_t shared_stride = (uint64_t)check_rng_int(&rng, 1, 12);
        for (int k = 0; k < 2; ++k) {
            r[k].rows = (uint64_t)check_rng_int(&rng, 1, 5);
            r[k].stride_bytes = t % 2 ? shared_stride : (uint64_t)check_rng_int(&rng, 1, 12);
            r[k].row_bytes = (uint64_t)check_rng_int(&rng, 1, (int64_t)r[k].stride_bytes);
            r[k].start = (uint64_t)check_rng_int(&rng, 0, 40);
        }
        unsigned char used[128] = {0};
        int truth = 0;
        for (int k = 0; k < 2; ++k)
            for (uint64_t i = 0; i < r[k].rows; ++i)
                for (uint64_t b = 0; b < r[k].row_bytes; ++b) {
                    const uint64_t at = r[k].start + i * r[k].stride_bytes + b;
                    if (k == 1 && used[at]) truth = 1;
                    if (k == 0) used[at] = 1;
                }
        const int said = mora_strided_overlap(&r[0], &r[1]);
        const int exact = r[0].stride_bytes == r[1].stride_bytes || (r[0].rows == 1 && r[1].rows == 1) ||
                          (r[0].rows == 1 && r[0].row_bytes <= r[1].stride_bytes) ||
                          (r[1].rows == 1 && r[1].row_bytes <= r[0].stride_bytes);
        ++cases, overlapping += truth;
        if (truth && !said) ++misses;
        if (exact && said != truth) ++inexact;
    }
    CHECK_EQ_INT(misses, 0);
    CHECK_EQ_INT(inexact, 0);
    CHECK(overlapping > cases / 10 && overlapping < cases * 9 / 10); /* both answers were exercised */
}

/* ---- item 4: non-finite scales and learning rates ---- */

static void non_finite(void) {
    mora_context *ctx = open_context();
    mora_plan *plan = NULL;
    REQUIRE_OK(mora_plan_create(ctx, &small, MORA_F32, TOKENS, NULL, &plan));
    check_rng rng = {29};
    float M[64], x[TOKENS * 24], y[TOKENS * 20], W[20 * 24], after[20 * 24];
    fill(&rng, M, 64), fill(&rng, x, TOKENS * 24), fill(&rng, y, TOKENS * 20), fill(&rng, W, 20 * 24);
    void *bM = upload(ctx, M, 64), *bx = upload(ctx, x, TOKENS * 24), *by = upload(ctx, y, TOKENS * 20),
         *bW = upload(ctx, W, 20 * 24), *bdM = upload(ctx, M, 64);
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 3; ++i) {
        CHECK_STATUS(mora_forward(plan, bM, bx, 24, by, 20, TOKENS, bad[i]), MORA_E_ARG);
        CHECK(strstr(mora_last_error(), "scale=") != NULL);
        CHECK_STATUS(mora_backward(plan, bM, bx, 24, by, 20, bx, 24, bdM, TOKENS, bad[i]), MORA_E_ARG);
        CHECK_STATUS(mora_merge(plan, bM, bW, 24, MORA_F32, bad[i]), MORA_E_ARG);
    }
    download(ctx, by, after, TOKENS * 20);
    CHECK(memcmp(after, y, sizeof y) == 0);
    download(ctx, bW, after, 20 * 24);
    CHECK(memcmp(after, W, sizeof W) == 0);

    const mora_adapter_layer_desc layer = {"layer", 24, 20, 2, 0, MORA_OP_SHARE, MORA_F32, MORA_F32};
    mora_adapter *a = NULL;
    REQUIRE_OK(mora_adapter_create(ctx, &layer, 1, TOKENS, NULL, &a));
    CHECK_STATUS(mora_adapter_forward(a, 0, bx, 24, by, 20, TOKENS, NAN), MORA_E_ARG);
    float *fields[] = {NULL, NULL, NULL, NULL};
    mora_adamw hp = MORA_ADAMW_DEFAULTS;
    fields[0] = &hp.lr, fields[1] = &hp.eps, fields[2] = &hp.weight_decay, fields[3] = &hp.max_grad_norm;
    for (int f = 0; f < 4; ++f)
        for (int i = 0; i < 3; ++i) {
            hp = (mora_adamw)MORA_ADAMW_DEFAULTS;
            *fields[f] = bad[i];
            CHECK_STATUS(mora_adapter_step(a, &hp), MORA_E_ARG);
        }
    CHECK_EQ_INT(mora_adapter_steps(a), 0);
    mora_adapter_destroy(a);
    mora_buffer_free(ctx, bM), mora_buffer_free(ctx, bx), mora_buffer_free(ctx, by), mora_buffer_free(ctx, bW);
    mora_buffer_free(ctx, bdM);
    mora_plan_destroy(plan);
    mora_context_destroy(ctx);
}

/* ---- item 5: plans the device cannot hold; one shape limit for every backend ---- */

static void too_big(void) {
    mora_context *ctx = open_context();
    mora_plan *plan = (mora_plan *)0x1;
    /* the shape: the cpu backend grew past 4.8 GB computing it; every backend refuses it now */
    const mora_shape huge_rope = {2147483647, 16, 2, MORA_OP_ROPE};
    CHECK_STATUS(mora_plan_create(ctx, &huge_rope, MORA_F32, 1, NULL, &plan), MORA_E_SIZE);
    CHECK(strstr(mora_last_error(), "below 2^31") != NULL);
    /* a plan whose workspace is more than the device holds: refused before anything is allocated */
    const uint64_t memory = ctx->info.global_mem_bytes;
    CHECK(memory > 0); /* every backend here can tell */
    ctx->info.global_mem_bytes = 1u << 20; /* a 1 MiB device */
    const mora_shape s = {4096, 4096, 256, MORA_OP_SHARE};
    CHECK_STATUS(mora_plan_create(ctx, &s, MORA_F32, 4096, NULL, &plan), MORA_E_NO_MEMORY);
    CHECK(strstr(mora_last_error(), "would allocate") != NULL && strstr(mora_last_error(), "1048576") != NULL);
    CHECK(plan == (mora_plan *)0x1);
    mora_plan_options external = MORA_PLAN_OPTIONS_INIT; /* the caller's workspace: the plan's share is small */
    external.external_workspace = 1;
    CHECK_STATUS(mora_plan_create(ctx, &s, MORA_F32, 4096, &external, &plan), MORA_OK);
    mora_plan_destroy(plan);
    ctx->info.global_mem_bytes = memory;
    mora_context_destroy(ctx);
}

/* ---- item 10: options structs carry their size ---- */

static void options_sizes(void) {
    mora_context *ctx = open_context();
    mora_plan *plan = (mora_plan *)0x1;
    mora_plan_options o = MORA_PLAN_OPTIONS_INIT;
    o.struct_size = 0; /* a zeroed struct of an older caller */
    CHECK_STATUS(mora_plan_create(ctx, &small, MORA_F32, 2, &o, &plan), MORA_E_ARG);
    CHECK(strstr(mora_last_error(), "options->struct_size=0") != NULL);
    o.struct_size = sizeof o + 8; /* a newer header than the library */
    CHECK_STATUS(mora_plan_create(ctx, &small, MORA_F32, 2, &o, &plan), MORA_E_ARG);
    CHECK(plan == (mora_plan *)0x1);
    o.struct_size = sizeof o;
    CHECK_STATUS(mora_plan_create(ctx, &small, MORA_F32, 2, &o, &plan), MORA_OK);
    mora_plan_destroy(plan);
    const mora_adapter_layer_desc layer = {"layer", 24, 20, 2, 0, MORA_OP_SHARE, MORA_F32, MORA_F32};
    mora_adapter *a = (mora_adapter *)0x1;
    mora_adapter_options ao = MORA_ADAPTER_OPTIONS_INIT;
    ao.struct_size = 4;
    CHECK_STATUS(mora_adapter_create(ctx, &layer, 1, 2, &ao, &a), MORA_E_ARG);
    CHECK(strstr(mora_last_error(), "mora_adapter_options") != NULL);
    ao.struct_size = sizeof ao;
    CHECK_STATUS(mora_adapter_create(ctx, &layer, 1, 2, &ao, &a), MORA_OK);
    mora_adamw hp = mora_adamw_defaults();
    CHECK_EQ_INT((long long)hp.struct_size, (long long)sizeof hp);
    hp.struct_size = 0;
    CHECK_STATUS(mora_adapter_step(a, &hp), MORA_E_ARG);
    CHECK(strstr(mora_last_error(), "hp->struct_size=0") != NULL);
    CHECK_EQ_INT(mora_adapter_steps(a), 0);
    mora_adapter_destroy(a);
    mora_context_destroy(ctx);
}

int main(int argc, char **argv) {
    backend = argc > 1 ? argv[1] : "cpu";
    is_cpu = strcmp(backend, "cpu") == 0;
    /* whether the backend is here, asked in a child: the parent opens no device before it forks */
    const pid_t probe = fork();
    if (probe == 0) {
        mora_context *ctx = NULL;
        const mora_status st = mora_context_create(backend, 0, &ctx);
        if (st == MORA_E_NO_BACKEND) printf("SKIP: backend %s is not available here: %s\n", backend, mora_last_error());
        mora_context_destroy(ctx);
        _exit(st == MORA_OK ? 0 : st == MORA_E_NO_BACKEND ? 77 : 1);
    }
    int status = 0;
    waitpid(probe, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) exit(77);
    REQUIRE_OK(WIFEXITED(status) && WEXITSTATUS(status) == 0 ? MORA_OK : MORA_E_NO_BACKEND);

    overlap_brute_force();
    in_child("a plan outlives its context's handle", plan_outlives_context);
    in_child("an adapter outlives its context's handle", adapter_outlives_context);
    in_child("foreign and destroyed handles", foreign_and_destroyed_handles);
    in_child("buffers of another context", foreign_buffers);
    in_child("aliased outputs", aliasing);
    in_child("non-finite scales and learning rates", non_finite);
    in_child("plans too big for the device", too_big);
    in_child("options structs of the wrong size", options_sizes);
    return check_report();
}
