/* The float64 reference on tiny cases worked out by hand, one or more per operator.
 *
 * Common inputs: M = [[1, 2], [3, 4]] (row a = output a, so (M v)[0] = v0 + 2 v1, (M v)[1] = 3 v0 + 4 v1),
 * x = [1, 2, 3, 4, 5] (d_in = 5, r̂ = 2, so B = ceil(5/2) = 3 and x_pad = [1, 2, 3, 4, 5, 1]: the sixth
 * padded position wraps around to x[0]), dy = [1, 10, 100, ...] so that every entry of g shows which
 * outputs were folded into it.
 *
 * Also: accumulation (+=) and scale, the optional dx/dM outputs, and rope with one block == reshape.
 */
#include "check.h"

static const double M22[4] = {1, 2, 3, 4};
static const double X5[5] = {1, 2, 3, 4, 5};

static void expect_vec(const char *what, const double *got, const double *want, int64_t n, double tol) {
    for (int64_t i = 0; i < n; ++i) {
        const int before = check_failures_;
        CHECK_NEAR(got[i], want[i], tol);
        if (check_failures_ > before) fprintf(stderr, "  in %s[%lld]\n", what, (long long)i);
    }
}

/* Runs forward, backward and ΔW of one token from zeroed outputs and compares with the hand values.
 * Any of y_want, dx_want, dM_want, dW_want may be NULL to skip it. */
static void run_case(const char *name, mora_shape s, const double *M, const double *x, const double *y_want,
                     const double *dy, const double *dx_want, const double *dM_want, const double *dW_want) {
    enum { CAP = 128 };
    double y[CAP] = {0}, dx[CAP] = {0}, dM[CAP] = {0}, dW[CAP] = {0};
    char what[96];
    REQUIRE_OK(mora_shape_check(&s));
    if (s.d_out > CAP || s.d_in > CAP || s.rhat * s.rhat > CAP || s.d_in * s.d_out > CAP) {
        CHECK_FAIL_("%s: case too large for the test's buffers", name);
        return;
    }
    if (y_want) {
        REQUIRE_OK(mora_ref_forward(&s, M, x, y, 1, 1.0));
        snprintf(what, sizeof what, "%s: y", name);
        expect_vec(what, y, y_want, s.d_out, 1e-12);
    }
    if (dy && (dx_want || dM_want)) {
        REQUIRE_OK(mora_ref_backward(&s, M, x, dy, dx, dM, 1));
        if (dx_want) {
            snprintf(what, sizeof what, "%s: dx", name);
            expect_vec(what, dx, dx_want, s.d_in, 1e-10);
        }
        if (dM_want) {
            snprintf(what, sizeof what, "%s: dM", name);
            expect_vec(what, dM, dM_want, s.rhat * s.rhat, 1e-10);
        }
    }
    if (dW_want) {
        for (int i = 0; i < CAP; ++i) dW[i] = 777.0; /* ΔW overwrites: no stale entry may survive */
        REQUIRE_OK(mora_ref_delta_weight(&s, M, dW));
        snprintf(what, sizeof what, "%s: dW", name);
        expect_vec(what, dW, dW_want, s.d_out * s.d_in, 1e-12);
    }
}

static void test_truncate(void) {
    /* d_in = 5, d_out = 3, r̂ = 2.
     * c = x[0:2] = [1, 2];  h = M c = [1 + 4, 3 + 8] = [5, 11];  y = [5, 11, 0] (y[2] gets nothing).
     * dy = [1, 10, 100]: g = [1, 10] (dy[2] is dropped).
     * dM = g ⊗ c = [[1·1, 1·2], [10·1, 10·2]] = [[1, 2], [10, 20]].
     * Mᵀ g = [1·1 + 3·10, 2·1 + 4·10] = [31, 42];  dx = [31, 42, 0, 0, 0].
     * ΔW: row j < 2 is M's row j on the first two columns, row 2 is zero. */
    const mora_shape s = {5, 3, 2, MORA_OP_TRUNCATE};
    const double y[] = {5, 11, 0}, dy[] = {1, 10, 100}, dx[] = {31, 42, 0, 0, 0}, dM[] = {1, 2, 10, 20};
    const double dW[] = {1, 2, 0, 0, 0, /**/ 3, 4, 0, 0, 0, /**/ 0, 0, 0, 0, 0};
    run_case("truncate 5->3", s, M22, X5, y, dy, dx, dM, dW);
}

static void test_share(void) {
    /* d_in = 5, d_out = 3, r̂ = 2, x_pad = [1, 2, 3, 4, 5, 1].
     * c[0] = x_pad[0] + x_pad[2] + x_pad[4] = 1 + 3 + 5 = 9
     * c[1] = x_pad[1] + x_pad[3] + x_pad[5] = 2 + 4 + 1 = 7    (x_pad[5] is the wrapped x[0])
     * h = [9 + 14, 27 + 28] = [23, 55];  y[j] = h[j mod 2] = [23, 55, 23].
     * dy = [1, 10, 100]: g = [1 + 100, 10] = [101, 10].
     * dM = [[101·9, 101·7], [10·9, 10·7]] = [[909, 707], [90, 70]].
     * u = Mᵀ g = [101 + 30, 202 + 40] = [131, 242]; padded position p adds u[p mod 2] into dx[p mod 5]:
     *   dx[0] = u0 (p=0) + u1 (p=5) = 373, dx[1] = 242, dx[2] = 131, dx[3] = 242, dx[4] = 131.
     * ΔW row a (a = j mod 2) = [M[a][0] + M[a][1], M[a][1], M[a][0], M[a][1], M[a][0]]:
     *   row 0 = [3, 2, 1, 2, 1], row 1 = [7, 4, 3, 4, 3], row 2 = row 0.  (check: row 0 · x = 23) */
    const mora_shape s = {5, 3, 2, MORA_OP_SHARE};
    const double y[] = {23, 55, 23}, dy[] = {1, 10, 100}, dx[] = {373, 242, 131, 242, 131},
                 dM[] = {909, 707, 90, 70};
    const double dW[] = {3, 2, 1, 2, 1, /**/ 7, 4, 3, 4, 3, /**/ 3, 2, 1, 2, 1};
    run_case("share 5->3", s, M22, X5, y, dy, dx, dM, dW);

    /* share with d_in < r̂: d_in = 3, r̂ = 4, d_out = 6, M = I4, x = [1, 2, 3].
     * B = 1, x_pad = [1, 2, 3, 1] (one wrapped entry);  c = x_pad;  h = c;  y[j] = h[j mod 4] = [1, 2, 3, 1, 1, 2]. */
    const double I4[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    const mora_shape s2 = {3, 6, 4, MORA_OP_SHARE};
    const double x2[] = {1, 2, 3}, y2[] = {1, 2, 3, 1, 1, 2};
    run_case("share 3->6 r4", s2, I4, x2, y2, NULL, NULL, NULL, NULL);
}

static void test_group(void) {
    /* d_in = 5 into r̂ = 2 runs: 5 mod 2 = 1 run of length 3, then one of 2: {0,1,2}, {3,4}.
     * c = [1 + 2 + 3, 4 + 5] = [6, 9];  h = [6 + 18, 18 + 36] = [24, 54].
     * d_out = 3 into 2 runs: {0,1}, {2};  y = [24, 24, 54].
     * dy = [1, 10, 100]: g = [1 + 10, 100] = [11, 100].
     * dM = [[66, 99], [600, 900]].  Mᵀ g = [11 + 300, 22 + 400] = [311, 422];  dx = [311, 311, 311, 422, 422].
     * ΔW rows 0, 1 = [1, 1, 1, 2, 2]; row 2 = [3, 3, 3, 4, 4]. */
    const mora_shape s = {5, 3, 2, MORA_OP_GROUP};
    const double y[] = {24, 24, 54}, dy[] = {1, 10, 100}, dx[] = {311, 311, 311, 422, 422},
                 dM[] = {66, 99, 600, 900};
    const double dW[] = {1, 1, 1, 2, 2, /**/ 1, 1, 1, 2, 2, /**/ 3, 3, 3, 4, 4};
    run_case("group 5->3", s, M22, X5, y, dy, dx, dM, dW);

    /* 7 into 3 runs: 7 mod 3 = 1 run of 3, then 2 runs of 2: {0,1,2}, {3,4}, {5,6};
     * M = I3, x = [1..7]: c = [6, 9, 13];  d_out = 4 into 3 runs: {0,1}, {2}, {3} -> y = [6, 6, 9, 13]. */
    const double I3[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    const mora_shape s2 = {7, 4, 3, MORA_OP_GROUP};
    const double x2[] = {1, 2, 3, 4, 5, 6, 7}, y2[] = {6, 6, 9, 13};
    run_case("group 7->4 r3", s2, I3, x2, y2, NULL, NULL, NULL, NULL);
}

static void test_group_tile(void) {
    /* Compression as group (c = [6, 9], h = [24, 54]), decompression as share: y[j] = h[j mod 2] = [24, 54, 24].
     * dy = [1, 10, 100]: g = [1 + 100, 10] = [101, 10].
     * dM = [[101·6, 101·9], [10·6, 10·9]] = [[606, 909], [60, 90]].
     * Mᵀ g = [101 + 30, 202 + 40] = [131, 242];  dx = [131, 131, 131, 242, 242].
     * ΔW rows 0 and 2 = [1, 1, 1, 2, 2], row 1 = [3, 3, 3, 4, 4]. */
    const mora_shape s = {5, 3, 2, MORA_OP_GROUP_TILE};
    const double y[] = {24, 54, 24}, dy[] = {1, 10, 100}, dx[] = {131, 131, 131, 242, 242},
                 dM[] = {606, 909, 60, 90};
    const double dW[] = {1, 1, 1, 2, 2, /**/ 3, 3, 3, 4, 4, /**/ 1, 1, 1, 2, 2};
    run_case("group-tile 5->3", s, M22, X5, y, dy, dx, dM, dW);
}

static void test_share_interleave(void) {
    /* Compression as share (c = [9, 7], h = [23, 55]), decompression as group ({0,1}, {2}): y = [23, 23, 55].
     * dy = [1, 10, 100]: g = [11, 100].  dM = [[99, 77], [900, 700]].
     * Mᵀ g = [11 + 300, 22 + 400] = [311, 422]; padded p adds u[p mod 2] into dx[p mod 5]:
     *   dx = [311 + 422, 422, 311, 422, 311] = [733, 422, 311, 422, 311].
     * ΔW rows 0, 1 = share's row for M row 0 = [3, 2, 1, 2, 1]; row 2 = [7, 4, 3, 4, 3]. */
    const mora_shape s = {5, 3, 2, MORA_OP_SHARE_INTERLEAVE};
    const double y[] = {23, 23, 55}, dy[] = {1, 10, 100}, dx[] = {733, 422, 311, 422, 311},
                 dM[] = {99, 77, 900, 700};
    const double dW[] = {3, 2, 1, 2, 1, /**/ 3, 2, 1, 2, 1, /**/ 7, 4, 3, 4, 3};
    run_case("share-interleave 5->3", s, M22, X5, y, dy, dx, dM, dW);
}

static void test_reshape(void) {
    /* d_in = 5, d_out = 7, r̂ = 2: B = 3 blocks of x_pad = [1, 2, 3, 4, 5, 1]:
     *   c_0 = [1, 2], c_1 = [3, 4], c_2 = [5, 1] (wrapped)
     *   h_0 = [1 + 4, 3 + 8] = [5, 11], h_1 = [3 + 8, 9 + 16] = [11, 25], h_2 = [5 + 2, 15 + 4] = [7, 19]
     * h_flat = [5, 11, 11, 25, 7, 19] (length B·r̂ = 6 < d_out = 7, so it tiles): y = [5, 11, 11, 25, 7, 19, 5].
     * dy = [1, 2, 3, 4, 5, 6, 7]: g_flat[k] = Σ dy[j] over j ≡ k (mod 6) = [1 + 7, 2, 3, 4, 5, 6]:
     *   g_0 = [8, 2], g_1 = [3, 4], g_2 = [5, 6].
     * dM = Σ_t g_t ⊗ c_t:
     *   [0][0] = 8·1 + 3·3 + 5·5 = 42, [0][1] = 8·2 + 3·4 + 5·1 = 33,
     *   [1][0] = 2·1 + 4·3 + 6·5 = 44, [1][1] = 2·2 + 4·4 + 6·1 = 26.
     * u_t = Mᵀ g_t (Mᵀ = [[1, 3], [2, 4]]): u_0 = [14, 24], u_1 = [15, 22], u_2 = [23, 34];
     *   padded positions 0..5 carry [14, 24, 15, 22, 23, 34]; position 5 is x[0] again:
     *   dx = [14 + 34, 24, 15, 22, 23] = [48, 24, 15, 22, 23].
     * ΔW row j reads h_t[a] with t·2 + a = j mod 6:
     *   rows 0, 1: M on columns 0, 1;  rows 2, 3: M on columns 2, 3;
     *   rows 4, 5: M[a][0] on column 4 and M[a][1] on column 0 (the wrap);  row 6 = row 0. */
    const mora_shape s = {5, 7, 2, MORA_OP_RESHAPE};
    const double y[] = {5, 11, 11, 25, 7, 19, 5}, dy[] = {1, 2, 3, 4, 5, 6, 7}, dx[] = {48, 24, 15, 22, 23},
                 dM[] = {42, 33, 44, 26};
    const double dW[] = {
        1, 2, 0, 0, 0, /**/ 3, 4, 0, 0, 0, /**/ 0, 0, 1, 2, 0, /**/ 0, 0, 3, 4, 0,
        2, 0, 0, 0, 1, /**/ 4, 0, 0, 0, 3, /**/ 1, 2, 0, 0, 0,
    };
    run_case("reshape 5->7", s, M22, X5, y, dy, dx, dM, dW);

    /* d_out < B·r̂: the same layer with d_out = 4 keeps h_0, h_1 and drops block 2 entirely.
     * y = [5, 11, 11, 25];  dy = [1, 2, 3, 4]: g_0 = [1, 2], g_1 = [3, 4], g_2 = 0.
     * dM = [[1·1 + 3·3, 1·2 + 3·4], [2·1 + 4·3, 2·2 + 4·4]] = [[10, 14], [14, 20]].
     * u_0 = [1 + 6, 2 + 8] = [7, 10], u_1 = [3 + 12, 6 + 16] = [15, 22]; dx = [7, 10, 15, 22, 0]. */
    const mora_shape s2 = {5, 4, 2, MORA_OP_RESHAPE};
    const double y2[] = {5, 11, 11, 25}, dy2[] = {1, 2, 3, 4}, dx2[] = {7, 10, 15, 22, 0}, dM2[] = {10, 14, 14, 20};
    run_case("reshape 5->4", s2, M22, X5, y2, dy2, dx2, dM2, NULL);
}

static void test_rope(void) {
    const double c1 = cos(1.0), s1 = sin(1.0);
    /* d_in = 3, d_out = 4, r̂ = 2: h = 1, θ_{t,0} = t / 10000^0 = t; B = 2, x_pad = [1, 2, 3, 1].
     * Block 0 (θ = 0): c_0 = [1, 2];  h_0 = M c_0 = [5, 11].
     * Block 1 (θ = 1): v = [3, 1] (x[2], then the wrapped x[0]):
     *   c_1[0] = v0 cos1 − v1 sin1 = 3 cos1 − sin1,  c_1[1] = v1 cos1 + v0 sin1 = cos1 + 3 sin1
     *   h_1[0] = c_1[0] + 2 c_1[1] = 5 cos1 + 5 sin1,  h_1[1] = 3 c_1[0] + 4 c_1[1] = 13 cos1 + 9 sin1
     * y = [5, 11, 5 cos1 + 5 sin1, 13 cos1 + 9 sin1].
     * dy = [1, 10, 100, 1000]: g_0 = [1, 10], g_1 = [100, 1000].
     * dM = g_0 ⊗ c_0 + g_1 ⊗ c_1:
     *   [[1 + 100(3 cos1 − sin1), 2 + 100(cos1 + 3 sin1)], [10 + 1000(3 cos1 − sin1), 20 + 1000(cos1 + 3 sin1)]]
     * u_0 = Mᵀ g_0 = [31, 42] -> dx[0], dx[1].  u_1 = Mᵀ g_1 = [100 + 3000, 200 + 4000] = [3100, 4200];
     *   R_1ᵀ u_1 = [3100 cos1 + 4200 sin1, −3100 sin1 + 4200 cos1] goes to padded positions 2, 3 = x[2], x[0]:
     *   dx = [31 + 4200 cos1 − 3100 sin1, 42, 3100 cos1 + 4200 sin1].
     * ΔW row 2 (h_1[0] = c_1[0] + 2 c_1[1] with c_1[0] = x2 cos1 − x0 sin1, c_1[1] = x0 cos1 + x2 sin1):
     *   [2 cos1 − sin1, 0, cos1 + 2 sin1];  row 3: [4 cos1 − 3 sin1, 0, 3 cos1 + 4 sin1]; rows 0, 1 = M | 0. */
    const mora_shape s = {3, 4, 2, MORA_OP_ROPE};
    const double x[] = {1, 2, 3}, dy[] = {1, 10, 100, 1000};
    const double y[] = {5, 11, 5 * c1 + 5 * s1, 13 * c1 + 9 * s1};
    const double dM[] = {1 + 100 * (3 * c1 - s1), 2 + 100 * (c1 + 3 * s1), 10 + 1000 * (3 * c1 - s1),
                         20 + 1000 * (c1 + 3 * s1)};
    const double dx[] = {31 + 4200 * c1 - 3100 * s1, 42, 3100 * c1 + 4200 * s1};
    const double dW[] = {1, 2, 0, /**/ 3, 4, 0, /**/ 2 * c1 - s1, 0, c1 + 2 * s1, /**/ 4 * c1 - 3 * s1, 0, 3 * c1 + 4 * s1};
    run_case("rope 3->4 r2", s, M22, x, y, dy, dx, dM, dW);

    /* The rotate-half layout and the per-pair angle: d_in = 6, d_out = 8, r̂ = 4, M = I (so y = c_flat).
     * h = 2; θ_{1,0} = 1 / 10000^0 = 1, θ_{1,1} = 1 / 10000^(2/4) = 1/100.
     * x = [1..6], B = 2, x_pad = [1, 2, 3, 4, 5, 6, 1, 2]; block 0 = [1, 2, 3, 4] unrotated;
     * block 1 v = [5, 6, 1, 2]; pairs (0, 2) at θ = 1 and (1, 3) at θ = 0.01:
     *   c[0] = 5 cos1 − 1 sin1,       c[2] = 1 cos1 + 5 sin1
     *   c[1] = 6 cos.01 − 2 sin.01,   c[3] = 2 cos.01 + 6 sin.01 */
    const double I4[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    const double c2 = cos(0.01), s2 = sin(0.01);
    const mora_shape s4 = {6, 8, 4, MORA_OP_ROPE};
    const double x4[] = {1, 2, 3, 4, 5, 6};
    const double y4[] = {1, 2, 3, 4, 5 * c1 - s1, 6 * c2 - 2 * s2, c1 + 5 * s1, 2 * c2 + 6 * s2};
    /* dy = e_4 + e_7 (reads c_1[0] and c_1[3]): g_1 = [1, 0, 0, 1], u = g (M = I);
     * R_1ᵀ u: entry j < h gets u[j] cos + u[j+h] sin, entry j+h gets u[j+h] cos − u[j] sin:
     *   [cos1, sin.01, −sin1, cos.01] onto padded 4, 5, 6, 7 = x[4], x[5], x[0], x[1]:
     *   dx = [−sin1, cos.01, 0, 0, cos1, sin.01].
     * dM = g_1 ⊗ c_1 (g_0 = 0): rows 0 and 3 are c_1, rows 1 and 2 are zero. */
    const double dy4[] = {0, 0, 0, 0, 1, 0, 0, 1};
    const double dx4[] = {-s1, c2, 0, 0, c1, s2};
    const double cb[] = {5 * c1 - s1, 6 * c2 - 2 * s2, c1 + 5 * s1, 2 * c2 + 6 * s2};
    double dM4[16] = {0};
    for (int b = 0; b < 4; ++b) dM4[0 * 4 + b] = dM4[3 * 4 + b] = cb[b];
    run_case("rope 6->8 r4", s4, I4, x4, y4, dy4, dx4, dM4, NULL);
}

/* y, dx and dM accumulate; scale multiplies the forward; dx / dM may be skipped. */
static void test_accumulate_and_scale(void) {
    /* share 5->3 from above: f(x) = [23, 55, 23]; y0 = [1, 2, 3], scale = −0.5 -> [1 − 11.5, 2 − 27.5, 3 − 11.5] */
    const mora_shape s = {5, 3, 2, MORA_OP_SHARE};
    double y[3] = {1, 2, 3};
    REQUIRE_OK(mora_ref_forward(&s, M22, X5, y, 1, -0.5));
    const double y_want[] = {-10.5, -25.5, -8.5};
    expect_vec("share scale -0.5", y, y_want, 3, 1e-12);

    /* Two tokens = the sum of the single-token results: token 1 = 2·x gives twice everything. */
    double x2[10], dy2[6] = {1, 10, 100, 2, 20, 200}, yy[6] = {0}, dx[10], dM[4];
    for (int i = 0; i < 5; ++i) x2[i] = X5[i], x2[5 + i] = 2 * X5[i];
    REQUIRE_OK(mora_ref_forward(&s, M22, x2, yy, 2, 1.0));
    const double yy_want[] = {23, 55, 23, 46, 110, 46};
    expect_vec("share two tokens", yy, yy_want, 6, 1e-12);
    /* dM = 1·[[909, 707], [90, 70]] (token 0) + 4·that (token 1: 2·x and 2·dy) = 5·; plus the initial 1s.
     * dx token 0 = [373, 242, 131, 242, 131], token 1 = 2· that (2·dy); plus the initial 1s. */
    for (int i = 0; i < 10; ++i) dx[i] = 1;
    for (int i = 0; i < 4; ++i) dM[i] = 1;
    REQUIRE_OK(mora_ref_backward(&s, M22, x2, dy2, dx, dM, 2));
    const double dM_want[] = {1 + 5 * 909, 1 + 5 * 707, 1 + 5 * 90, 1 + 5 * 70};
    const double dx_want[] = {374, 243, 132, 243, 132, 747, 485, 263, 485, 263};
    expect_vec("share dM accumulate", dM, dM_want, 4, 1e-9);
    expect_vec("share dx accumulate", dx, dx_want, 10, 1e-9);

    /* dx only and dM only give the same as both together */
    double dx_only[10] = {0}, dM_only[4] = {0};
    REQUIRE_OK(mora_ref_backward(&s, M22, x2, dy2, dx_only, NULL, 2));
    REQUIRE_OK(mora_ref_backward(&s, M22, x2, dy2, NULL, dM_only, 2));
    for (int i = 0; i < 10; ++i) dx_only[i] += 1;
    for (int i = 0; i < 4; ++i) dM_only[i] += 1;
    expect_vec("share dx only", dx_only, dx_want, 10, 1e-9);
    expect_vec("share dM only", dM_only, dM_want, 4, 1e-9);

    /* M = 0 (the initial state) gives ΔW = 0 and y unchanged */
    const double Z[4] = {0};
    double dW[15], y3[3] = {4, 5, 6};
    for (int i = 0; i < 15; ++i) dW[i] = 9;
    for (int op = 0; op < MORA_OP_COUNT; ++op) {
        const mora_shape so = {5, 3, 2, (mora_op)op};
        REQUIRE_OK(mora_ref_delta_weight(&so, Z, dW));
        REQUIRE_OK(mora_ref_forward(&so, Z, X5, y3, 1, 1.0));
        int zero = 1;
        for (int i = 0; i < 15; ++i) zero &= dW[i] == 0.0;
        CHECK(zero);
        CHECK(y3[0] == 4 && y3[1] == 5 && y3[2] == 6);
    }
}

/* Rope with one block (d_in <= r̂) is not rotated at all: identical to reshape. */
static void test_rope_one_block_is_reshape(void) {
    check_rng rng = {7};
    for (int trial = 0; trial < 20; ++trial) {
        const int64_t rhat = 2 * check_rng_int(&rng, 1, 6), d_in = check_rng_int(&rng, 1, rhat),
                      d_out = check_rng_int(&rng, 1, 3 * rhat), n = 3;
        const mora_shape rope = {d_in, d_out, rhat, MORA_OP_ROPE}, reshape = {d_in, d_out, rhat, MORA_OP_RESHAPE};
        double M[144], x[3 * 12], dy[3 * 36], y1[3 * 36] = {0}, y2[3 * 36] = {0}, dx1[36] = {0}, dx2[36] = {0},
                                                  dM1[144] = {0}, dM2[144] = {0};
        check_fill(&rng, M, rhat * rhat);
        check_fill(&rng, x, n * d_in);
        check_fill(&rng, dy, n * d_out);
        REQUIRE_OK(mora_ref_forward(&rope, M, x, y1, n, 1.0));
        REQUIRE_OK(mora_ref_forward(&reshape, M, x, y2, n, 1.0));
        REQUIRE_OK(mora_ref_backward(&rope, M, x, dy, dx1, dM1, n));
        REQUIRE_OK(mora_ref_backward(&reshape, M, x, dy, dx2, dM2, n));
        const int before = check_failures_;
        CHECK_REL(y1, y2, n * d_out, 1e-15);
        CHECK_REL(dx1, dx2, n * d_in, 1e-15);
        CHECK_REL(dM1, dM2, rhat * rhat, 1e-15);
        if (check_failures_ > before)
            fprintf(stderr, "  trial %d: d_in=%lld d_out=%lld rhat=%lld\n", trial, (long long)d_in,
                    (long long)d_out, (long long)rhat);
    }
    /* ...and with two blocks it differs (block 1 is rotated by θ = 1 on its first pair). */
    const mora_shape rope = {3, 4, 2, MORA_OP_ROPE}, reshape = {3, 4, 2, MORA_OP_RESHAPE};
    const double x[] = {1, 2, 3};
    double y1[4] = {0}, y2[4] = {0};
    REQUIRE_OK(mora_ref_forward(&rope, M22, x, y1, 1, 1.0));
    REQUIRE_OK(mora_ref_forward(&reshape, M22, x, y2, 1, 1.0));
    CHECK(fabs(y1[2] - y2[2]) > 0.1);
}

int main(void) {
    test_truncate();
    test_share();
    test_group();
    test_group_tile();
    test_share_interleave();
    test_reshape();
    test_rope();
    test_accumulate_and_scale();
    test_rope_one_block_is_reshape();
    return check_report();
}
