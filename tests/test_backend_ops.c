/* test_backend_ops — every operator × kernel kind × dtype of one backend against the float64
 * reference, through the public API (plans on device buffers, M and dM the test's own, rows with
 * and without stride gaps).
 *
 *   test_backend_ops BACKEND [OP]     e.g.  test_backend_ops opencl rope
 *
 * Shapes: a fixed set per operator covering every edge (non-multiples of r̂, d_in < r̂, d_out < r̂,
 * d_out > B·r̂, d_out < B·r̂, r̂ = 1 or 2, exact multiples) plus seeded random shapes; n rotates
 * through 1, 3 and 129. For each shape and dtype: forward, backward (dM and dx, and dM alone),
 * merge with W of the same dtype, the bit-exact determinism of dM, and once per operator the same
 * with non-default kernel parameters (odd tiles, a split dM reduction). MORA_TEST_FULL=1 adds a
 * larger random sweep. Exits 77 (skipped) when the backend is absent, saying why. */
#include <time.h>

#include "backend_harness.h"
#include "plan_internal.h"
#include "shape.h"

typedef struct test_case {
    mora_shape shape;
    int64_t n;
    mora_dtype dtype;
    uint64_t seed;
    int custom_params;
    int64_t pad; /* row stride = width + pad for x, y, dy, dx and W (gaps must stay untouched) */
} test_case;

static void describe(const test_case *tc, char *out, size_t size) {
    snprintf(out, size, "seed=%llu op=%s d_in=%lld d_out=%lld rhat=%lld n=%lld dtype=%s pad=%lld%s",
             (unsigned long long)tc->seed, mora_op_name(tc->shape.op), (long long)tc->shape.d_in,
             (long long)tc->shape.d_out, (long long)tc->shape.rhat, (long long)tc->n, mora_dtype_name(tc->dtype),
             (long long)tc->pad, tc->custom_params ? " params=custom" : "");
}

/* Odd tile sizes, a 3-way split of the dM reduction and small work-groups: exercises every
 * boundary guard and the ordered slice reduction. On the cpu backend: tiles of a few rows on three
 * workers, so calls cut into many tiles and every worker's share ends mid-way. */
static void use_custom_params(mora_plan *p) {
    static const struct {
        mora_kind kind;
        const char *name;
        int value;
    } custom[] = {
        {MORA_KIND_FWD, "FWD_TM", 16},  {MORA_KIND_FWD, "FWD_TN", 8},   {MORA_KIND_FWD, "FWD_TK", 4},
        {MORA_KIND_FWD, "FWD_WM", 2},   {MORA_KIND_FWD, "FWD_WN", 1},   {MORA_KIND_BWD_DX, "DX_TM", 8},
        {MORA_KIND_BWD_DX, "DX_TN", 16}, {MORA_KIND_BWD_DX, "DX_TK", 8}, {MORA_KIND_BWD_DX, "DX_WM", 1},
        {MORA_KIND_BWD_DX, "DX_WN", 4}, {MORA_KIND_BWD_DX, "DX_GATHER_LS", 64}, {MORA_KIND_BWD_DM, "DM_TM", 16},
        {MORA_KIND_BWD_DM, "DM_TN", 8}, {MORA_KIND_BWD_DM, "DM_TK", 8}, {MORA_KIND_BWD_DM, "DM_WM", 4},
        {MORA_KIND_BWD_DM, "DM_WN", 1}, {MORA_KIND_BWD_DM, "DM_SPLIT", 3}, {MORA_KIND_BWD_DM, "DM_REDUCE_LS", 32},
        {MORA_KIND_MERGE, "MERGE_LS", 32},
    }, host[] = {
        {MORA_KIND_FWD, "FWD_TILE_ROWS", 24}, {MORA_KIND_FWD, "FWD_THREADS", 3},
        {MORA_KIND_BWD_DX, "DX_TILE_ROWS", 40}, {MORA_KIND_BWD_DX, "DX_THREADS", 3},
        {MORA_KIND_BWD_DM, "DM_TILE_ROWS", 8}, {MORA_KIND_BWD_DM, "DM_THREADS", 3},
    };
    for (int kind = 0; kind < MORA_KIND_COUNT; ++kind) {
        mora_kernel_spec spec = mora_plan_spec(p, (mora_kind)kind);
        const int on_host = spec.dialect == MORA_DIALECT_HOST;
        const size_t count = on_host ? sizeof host / sizeof *host : sizeof custom / sizeof *custom;
        for (size_t i = 0; i < count; ++i) {
            const mora_kind k = on_host ? host[i].kind : custom[i].kind;
            if (k == (mora_kind)kind)
                REQUIRE_OK(mora_spec_set_param(&spec, on_host ? host[i].name : custom[i].name,
                                               on_host ? host[i].value : custom[i].value));
        }
        REQUIRE_OK(mora_plan_use_spec(p, &spec));
    }
}

#define GAP_VALUE 7.0f /* what the gaps between strided rows hold; kernels must leave it */

/* `rows` rows of `width` from a contiguous host array into a new one whose rows are `ld` apart. */
static void *spread_rows(mora_dtype dt, const void *src, int64_t rows, int64_t width, int64_t ld) {
    const size_t es = mora_dtype_size(dt);
    unsigned char *out = malloc((size_t)(rows * ld) * es + 1);
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < ld; ++j) {
            const float v = j < width ? mora_load_act(dt, src, i * width + j) : GAP_VALUE;
            mora_store_act(dt, out, i * ld + j, v);
        }
    return out;
}

/* The rows back out of a strided download (in place, to contiguous), checking the gaps. */
static void gather_rows(double *values, int64_t rows, int64_t width, int64_t ld, const char *what, const char *context) {
    int64_t changed = 0;
    for (int64_t i = 0; i < rows; ++i) {
        for (int64_t j = width; j < ld; ++j) changed += values[i * ld + j] != GAP_VALUE;
        memmove(values + i * width, values + i * ld, (size_t)width * sizeof *values);
    }
    ++check_count_;
    if (changed) CHECK_FAIL_("%s: %lld element(s) between strided rows changed (%s)", what, (long long)changed, context);
}

static void run_case(mora_context *ctx, const test_case *tc) {
    char what[256];
    describe(tc, what, sizeof what);
    const mora_shape *s = &tc->shape;
    const mora_dtype dt = tc->dtype;
    const size_t es = mora_dtype_size(dt);
    const int64_t n = tc->n, nx = n * s->d_in, ny = n * s->d_out, nm = s->rhat * s->rhat, nw = s->d_out * s->d_in;
    const int64_t ldx = s->d_in + tc->pad, ldy = s->d_out + tc->pad, ldw = s->d_in + tc->pad;
    const double tol = harness_tolerance(dt);
    check_rng rng = {tc->seed};

    /* host data, rounded to the dtype, and its exact double values */
    void *hx = malloc((size_t)nx * es), *hy = malloc((size_t)ny * es), *hdy = malloc((size_t)ny * es),
         *hdx = malloc((size_t)nx * es), *hw = malloc((size_t)nw * es);
    double *x = malloc((size_t)nx * 8), *y0 = malloc((size_t)ny * 8), *dy = malloc((size_t)ny * 8),
           *dx0 = malloc((size_t)nx * 8), *w0 = malloc((size_t)nw * 8), *Md = malloc((size_t)nm * 8);
    float *Mf = malloc((size_t)nm * 4), *zero_f = calloc((size_t)nm, 4), *dMf = malloc((size_t)nm * 4),
          *dMf2 = malloc((size_t)nm * 4);
    harness_random(&rng, dt, hx, x, nx, 1.0);
    harness_random(&rng, dt, hdy, dy, ny, 1.0);
    harness_random(&rng, dt, hy, y0, ny, 0.01); /* small start values: see backend_harness.h */
    harness_random(&rng, dt, hdx, dx0, nx, 0.01);
    harness_random(&rng, dt, hw, w0, nw, 0.01);
    for (int64_t i = 0; i < nm; ++i) {
        Mf[i] = (float)check_rng_uniform(&rng);
        Md[i] = Mf[i];
    }

    /* float64 reference; the backward's scale multiplies both of its outputs */
    double *ref_y = calloc((size_t)ny, 8), *ref_dx = calloc((size_t)nx, 8), *ref_dM = calloc((size_t)nm, 8),
           *ref_w = malloc((size_t)nw * 8), *zero_m = calloc((size_t)nm, 8);
    const float scale = 0.75f, bwd_scale = -1.25f, merge_sign = -0.5f;
    REQUIRE_OK(mora_ref_forward(s, Md, x, ref_y, n, scale));
    REQUIRE_OK(mora_ref_backward(s, Md, x, dy, ref_dx, ref_dM, n));
    for (int64_t i = 0; i < nx; ++i) ref_dx[i] *= bwd_scale;
    for (int64_t i = 0; i < nm; ++i) ref_dM[i] *= bwd_scale;
    REQUIRE_OK(mora_ref_delta_weight(s, Md, ref_w));
    for (int64_t i = 0; i < nw; ++i) ref_w[i] *= merge_sign;

    mora_plan *p = NULL;
    REQUIRE_OK(mora_plan_create(ctx, s, dt, n, NULL, &p));
    if (tc->custom_params) use_custom_params(p);

    harness_buffer bx, by, bdy, bdx, bw, bM, bdM;
    void *sx = spread_rows(dt, hx, n, s->d_in, ldx), *sy = spread_rows(dt, hy, n, s->d_out, ldy),
         *sdy = spread_rows(dt, hdy, n, s->d_out, ldy), *sdx = spread_rows(dt, hdx, n, s->d_in, ldx),
         *sw = spread_rows(dt, hw, s->d_out, s->d_in, ldw);
    harness_upload(ctx, &bx, dt, sx, n * ldx);
    harness_upload(ctx, &by, dt, sy, n * ldy);
    harness_upload(ctx, &bdy, dt, sdy, n * ldy);
    harness_upload(ctx, &bdx, dt, sdx, n * ldx);
    harness_upload(ctx, &bw, dt, sw, s->d_out * ldw);
    harness_upload(ctx, &bM, MORA_F32, Mf, nm);
    harness_upload(ctx, &bdM, MORA_F32, zero_f, nm);
    const int64_t largest = s->d_out * ldw > n * (ldx > ldy ? ldx : ldy) ? s->d_out * ldw : n * (ldx > ldy ? ldx : ldy);
    double *got = malloc((size_t)(largest > nm ? largest : nm) * 8);
    char label[320];

    /* fwd */
    REQUIRE_OK(mora_forward(p, bM.device, bx.device, ldx, by.device, ldy, n, scale));
    snprintf(label, sizeof label, "fwd y");
    if (harness_download(ctx, &by, got, label)) {
        gather_rows(got, n, s->d_out, ldy, label, what);
        harness_compare(got, y0, ref_y, ny, tol, label, what);
    }

    /* bwd: dM and dx; dM is float32 whatever the dtype, and its inputs are exact, so 1e-5 */
    REQUIRE_OK(mora_backward(p, bM.device, bx.device, ldx, bdy.device, ldy, bdx.device, ldx, bdM.device, n, bwd_scale));
    if (harness_download(ctx, &bdM, got, "bwd dM")) harness_compare(got, zero_m, ref_dM, nm, 1e-5, "bwd dM", what);
    for (int64_t i = 0; i < nm; ++i) dMf[i] = (float)got[i];
    if (harness_download(ctx, &bdx, got, "bwd dx")) {
        gather_rows(got, n, s->d_in, ldx, "bwd dx", what);
        harness_compare(got, dx0, ref_dx, nx, tol, "bwd dx", what);
    }

    /* bwd without dx into a zeroed dM: bit-exactly the same contribution */
    REQUIRE_OK(mora_buffer_write(ctx, bdM.device, 0, zero_f, (size_t)nm * 4));
    REQUIRE_OK(mora_backward(p, bM.device, bx.device, ldx, bdy.device, ldy, NULL, 0, bdM.device, n, bwd_scale));
    REQUIRE_OK(mora_buffer_read(ctx, bdM.device, 0, dMf2, (size_t)nm * 4));
    ++check_count_;
    if (memcmp(dMf, dMf2, (size_t)nm * 4) != 0) CHECK_FAIL_("bwd dM: two runs differ in their bits (%s)", what);

    /* merge: W += s·ΔW; entries ΔW does not have stay bit-identical */
    REQUIRE_OK(mora_merge(p, bM.device, bw.device, ldw, dt, merge_sign));
    if (harness_download(ctx, &bw, got, "merge W")) {
        gather_rows(got, s->d_out, s->d_in, ldw, "merge W", what);
        harness_compare(got, w0, ref_w, nw, tol, "merge W", what);
        int64_t touched = 0;
        for (int64_t i = 0; i < nw; ++i)
            if (ref_w[i] == 0.0 && got[i] != w0[i]) ++touched;
        ++check_count_;
        if (touched) CHECK_FAIL_("merge W: %lld entries outside ΔW changed (%s)", (long long)touched, what);
    }

    harness_buffer *buffers[] = {&bx, &by, &bdy, &bdx, &bw, &bM, &bdM};
    for (size_t i = 0; i < sizeof buffers / sizeof *buffers; ++i) harness_free(ctx, buffers[i]);
    mora_plan_destroy(p);
    free(sx), free(sy), free(sdy), free(sdx), free(sw);
    free(hx), free(hy), free(hdy), free(hdx), free(hw), free(x), free(y0), free(dy), free(dx0), free(w0), free(Md);
    free(Mf), free(zero_f), free(dMf), free(dMf2), free(ref_y), free(ref_dx), free(ref_dM), free(ref_w), free(zero_m),
        free(got);
}

/* The fixed edge shapes (d_in, d_out, r̂); those an operator cannot take are skipped for it. */
static const int64_t edge_shapes[][3] = {
    {50, 37, 8},  /* nothing divides: wrap padding, partial blocks and runs */
    {5, 40, 8},   /* d_in < r̂ (one wrapped block), d_out > B·r̂ */
    {20, 70, 8},  /* d_out > B·r̂ = 24: tiling */
    {40, 17, 8},  /* d_out < B·r̂ = 40: truncated tiling */
    {40, 5, 8},   /* d_out < r̂ */
    {64, 64, 16}, /* everything divides */
    {7, 9, 2},    /* tiny r̂ (even, so rope takes it) */
    {9, 11, 1},   /* r̂ = 1 */
    {130, 129, 33},
};

int main(int argc, char **argv) {
    const char *backend = argc > 1 ? argv[1] : "opencl";
    int only_op = -1;
    if (argc > 2) {
        mora_op op;
        REQUIRE_OK(mora_op_from_string(argv[2], &op));
        only_op = (int)op;
    }
    mora_context *ctx = NULL;
    const mora_status st = mora_context_create(backend, 0, &ctx);
    if (st == MORA_E_NO_BACKEND) SKIP("backend %s is not available here: %s", backend, mora_last_error());
    REQUIRE_OK(st);
    printf("backend %s, device %s\n", mora_context_backend(ctx), mora_context_device_name(ctx));
    const int full = getenv("MORA_TEST_FULL") && strcmp(getenv("MORA_TEST_FULL"), "1") == 0;
    const int random_shapes = full ? 40 : 3;
    static const int64_t token_counts[] = {1, 3, 129};
    int cases = 0;
    const clock_t start = clock();

    for (int op = 0; op < MORA_OP_COUNT; ++op) {
        if (only_op >= 0 && op != only_op) continue;
        int rotation = 0, custom_done = 0;
        const int edge_count = (int)(sizeof edge_shapes / sizeof *edge_shapes);
        check_rng shape_rng = {1000u + (uint64_t)op};
        for (int k = 0; k < edge_count + random_shapes; ++k) {
            mora_shape s = {0, 0, 0, (mora_op)op};
            if (k < edge_count) {
                s.d_in = edge_shapes[k][0], s.d_out = edge_shapes[k][1], s.rhat = edge_shapes[k][2];
            } else {
                s.d_in = check_rng_int(&shape_rng, 1, 200);
                s.d_out = check_rng_int(&shape_rng, 1, 200);
                s.rhat = check_rng_int(&shape_rng, 1, 48);
                if (s.op == MORA_OP_ROPE) s.rhat += s.rhat % 2;
            }
            if (mora_shape_check(&s) != MORA_OK) continue;
            for (int d = 0; d < MORA_DTYPE_COUNT; ++d) {
                test_case tc = {s, token_counts[rotation++ % 3], (mora_dtype)d,
                                (uint64_t)(op * 100000 + k * 10 + d), 0, (k + d) % 2 ? 3 : 0};
                /* once per operator: custom parameters on a shape where they matter */
                if (!custom_done && k == 0 && d == MORA_F32) {
                    tc.custom_params = 1;
                    tc.n = 129;
                    custom_done = 1;
                    run_case(ctx, &tc);
                    ++cases;
                    tc.custom_params = 0;
                }
                run_case(ctx, &tc);
                ++cases;
            }
        }
    }
    printf("%d cases in %.1f s of CPU time\n", cases, (double)(clock() - start) / CLOCKS_PER_SEC);
    mora_context_destroy(ctx);
    return check_report();
}
