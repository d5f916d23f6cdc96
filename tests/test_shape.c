/* Shapes: r̂ from a LoRA rank, operator and dtype names, and every rejection of mora_shape_make,
 * mora_shape_check, the name parsers and the reference entry points (status, error sentence, and
 * that the rejected call left its outputs alone). */
#include "check.h"

/* A call must fail with `want` and mora_last_error() must contain `needle` (the argument and its
 * value, e.g. "d_in=0"). */
#define CHECK_FAILS(call, want, needle)                                                           \
    do {                                                                                          \
        CHECK_STATUS(call, want);                                                                 \
        ++check_count_;                                                                           \
        if (strstr(mora_last_error(), (needle)) == NULL)                                          \
            CHECK_FAIL_("%s: last error \"%s\" does not mention \"%s\"", #call, mora_last_error(), \
                        (needle));                                                                \
    } while (0)

static const mora_shape sentinel_shape = {111, 222, 333, MORA_OP_GROUP_TILE};

static int same_shape(const mora_shape *a, const mora_shape *b) {
    return a->d_in == b->d_in && a->d_out == b->d_out && a->rhat == b->rhat && a->op == b->op;
}

/* mora_shape_make must fail with `want`, name `needle`, and leave *s as it was. */
static void expect_make_fails(int64_t d_in, int64_t d_out, int64_t rank, mora_op op, mora_status want,
                              const char *needle) {
    mora_shape s = sentinel_shape;
    const int before = check_failures_;
    CHECK_FAILS(mora_shape_make(&s, d_in, d_out, rank, op), want, needle);
    CHECK(same_shape(&s, &sentinel_shape));
    if (check_failures_ > before)
        fprintf(stderr, "  in mora_shape_make(d_in=%lld, d_out=%lld, lora_rank=%lld, op=%d)\n", (long long)d_in,
                (long long)d_out, (long long)rank, (int)op);
}

static void expect_check_fails(int64_t d_in, int64_t d_out, int64_t rhat, mora_op op, mora_status want,
                               const char *needle) {
    const mora_shape s = {d_in, d_out, rhat, op};
    const int before = check_failures_;
    CHECK_FAILS(mora_shape_check(&s), want, needle);
    CHECK_EQ_INT(mora_shape_blocks(&s), -1);
    if (check_failures_ > before)
        fprintf(stderr, "  in mora_shape_check(d_in=%lld, d_out=%lld, rhat=%lld, op=%d)\n", (long long)d_in,
                (long long)d_out, (long long)rhat, (int)op);
}

static void expect_check_ok(int64_t d_in, int64_t d_out, int64_t rhat, mora_op op) {
    const mora_shape s = {d_in, d_out, rhat, op};
    const int before = check_failures_;
    CHECK_STATUS(mora_shape_check(&s), MORA_OK);
    if (check_failures_ > before)
        fprintf(stderr, "  in mora_shape_check(d_in=%lld, d_out=%lld, rhat=%lld, op=%d)\n", (long long)d_in,
                (long long)d_out, (long long)rhat, (int)op);
}

static void test_rhat_table(void) {
    /* r̂ = floor(sqrt((d_in + d_out)·r) + 0.5)
     *   4096+4096=8192;  8192·8   = 65536,  sqrt = 256 exactly              -> 256
     *   8192·256 = 2097152, sqrt = 1448.15 (1448² = 2096704, 1449² = 2099601) -> 1448
     *   4096+11008=15104; 15104·8 = 120832, sqrt = 347.61 (347² = 120409, 348² = 121104) -> 348 */
    CHECK_EQ_INT(mora_rhat_from_rank(4096, 4096, 8), 256);
    CHECK_EQ_INT(mora_rhat_from_rank(4096, 4096, 256), 1448);
    CHECK_EQ_INT(mora_rhat_from_rank(4096, 11008, 8), 348);
    CHECK_EQ_INT(mora_rhat_from_rank(11008, 4096, 8), 348);
    /* 4096 -> 1024 (LLaMA-3 k/v), r = 16: 5120·16 = 81920, sqrt = 286.2 -> 286 */
    CHECK_EQ_INT(mora_rhat_from_rank(4096, 1024, 16), 286);

    const struct {
        int64_t d_in, d_out, rank, rhat;
        mora_op op;
    } made[] = {
        {4096, 4096, 8, 256, MORA_OP_SHARE},
        {4096, 4096, 8, 256, MORA_OP_ROPE},
        {4096, 4096, 256, 1448, MORA_OP_RESHAPE},
        {4096, 4096, 256, 1448, MORA_OP_ROPE},
        {4096, 11008, 8, 348, MORA_OP_GROUP},
        {4096, 11008, 8, 348, MORA_OP_ROPE},
        /* 8192·4 = 32768, sqrt = 181.02 (181² = 32761, 182² = 33124): the formula gives the odd 181.
         * share keeps it; rope needs an even r̂ and takes 181 − 1 = 180. */
        {4096, 4096, 4, 181, MORA_OP_SHARE},
        {4096, 4096, 4, 180, MORA_OP_ROPE},
        /* (4 + 5)·1 = 9 -> 3 (odd): share 3, rope 2 */
        {4, 5, 1, 3, MORA_OP_SHARE},
        {4, 5, 1, 2, MORA_OP_ROPE},
    };
    for (size_t i = 0; i < sizeof made / sizeof made[0]; ++i) {
        mora_shape s = sentinel_shape;
        const int before = check_failures_;
        CHECK_STATUS(mora_shape_make(&s, made[i].d_in, made[i].d_out, made[i].rank, made[i].op), MORA_OK);
        CHECK_EQ_INT(s.d_in, made[i].d_in);
        CHECK_EQ_INT(s.d_out, made[i].d_out);
        CHECK_EQ_INT(s.rhat, made[i].rhat);
        CHECK_EQ_INT(s.op, made[i].op);
        CHECK_STATUS(mora_shape_check(&s), MORA_OK);
        if (check_failures_ > before) fprintf(stderr, "  in table row %zu\n", i);
    }
    CHECK_EQ_INT(mora_rhat_from_rank(4096, 4096, 4), 181); /* the raw formula stays odd */

    /* Rounding at the .5 boundary: sqrt(k² + k) < k + 0.5 < sqrt(k² + k + 1) since (k + 0.5)² = k² + k + 0.25.
     *   k = 2: v = 6 -> 2, v = 7 -> 3. */
    CHECK_EQ_INT(mora_rhat_from_rank(3, 3, 1), 2);
    CHECK_EQ_INT(mora_rhat_from_rank(3, 4, 1), 3);
    CHECK_EQ_INT(mora_rhat_from_rank(1, 1, 1), 1); /* sqrt(2) = 1.41 -> 1 */
    /* Near 2^63 a double cannot resolve the boundary: k = 3037000499, v = k² + k = 9223372033963249500
     * (< INT64_MAX). sqrt(v) = k + 0.49999999992 rounds in double to k + 0.5, so a naive floor gives
     * k + 1; the exact answer is k. v + 1 is past the boundary: k + 1. */
    const int64_t k = 3037000499;
    const int64_t v = k * k + k;
    CHECK_EQ_INT(mora_rhat_from_rank(v - 1, 1, 1), k);
    CHECK_EQ_INT(mora_rhat_from_rank(v, 1, 1), k + 1);
    CHECK_EQ_INT(mora_rhat_from_rank(1, v - 1, 1), k);
}

static void test_names(void) {
    static const char *const names[MORA_OP_COUNT] = {"truncate", "share",   "group", "group-tile",
                                                     "share-interleave", "reshape", "rope"};
    /* The enum values are the reference implementation's type ids. */
    CHECK_EQ_INT(MORA_OP_TRUNCATE, 0);
    CHECK_EQ_INT(MORA_OP_SHARE, 1);
    CHECK_EQ_INT(MORA_OP_GROUP, 2);
    CHECK_EQ_INT(MORA_OP_GROUP_TILE, 3);
    CHECK_EQ_INT(MORA_OP_SHARE_INTERLEAVE, 4);
    CHECK_EQ_INT(MORA_OP_RESHAPE, 5);
    CHECK_EQ_INT(MORA_OP_ROPE, 6);
    CHECK_EQ_INT(MORA_OP_COUNT, 7);
    for (int i = 0; i < MORA_OP_COUNT; ++i) {
        mora_op op = (mora_op)99;
        CHECK_STATUS(mora_op_from_string(names[i], &op), MORA_OK);
        CHECK_EQ_INT(op, i);
        CHECK_STR(mora_op_name((mora_op)i), names[i]);
        op = (mora_op)99;
        CHECK_STATUS(mora_op_from_string(mora_op_name((mora_op)i), &op), MORA_OK);
        CHECK_EQ_INT(op, i);
        const char id[2] = {(char)('0' + i), '\0'};
        op = (mora_op)99;
        CHECK_STATUS(mora_op_from_string(id, &op), MORA_OK);
        CHECK_EQ_INT(op, i);
    }
    CHECK_STR(mora_op_name((mora_op)7), "unknown");
    CHECK_STR(mora_op_name((mora_op)-1), "unknown");

    static const char *const bad_ops[] = {"rope2", "7", "", "-1", "8", "Rope ", "group_tile", "share-"};
    for (size_t i = 0; i < sizeof bad_ops / sizeof bad_ops[0]; ++i) {
        mora_op op = MORA_OP_GROUP;
        char needle[64];
        snprintf(needle, sizeof needle, "\"%s\"", bad_ops[i]);
        CHECK_FAILS(mora_op_from_string(bad_ops[i], &op), MORA_E_UNKNOWN_OP, needle);
        CHECK_EQ_INT(op, MORA_OP_GROUP); /* untouched */
    }
    mora_op op = MORA_OP_GROUP;
    CHECK_FAILS(mora_op_from_string(NULL, &op), MORA_E_NULL, "name=NULL");
    CHECK_EQ_INT(op, MORA_OP_GROUP);
    CHECK_FAILS(mora_op_from_string("rope", NULL), MORA_E_NULL, "op=NULL");

    static const struct {
        const char *name;
        mora_dtype dtype;
    } dtypes[] = {{"f32", MORA_F32},     {"f16", MORA_F16},     {"bf16", MORA_BF16},
                  {"float32", MORA_F32}, {"float16", MORA_F16}, {"bfloat16", MORA_BF16}};
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; ++i) {
        mora_dtype d = (mora_dtype)99;
        CHECK_STATUS(mora_dtype_from_string(dtypes[i].name, &d), MORA_OK);
        CHECK_EQ_INT(d, dtypes[i].dtype);
    }
    CHECK_STR(mora_dtype_name(MORA_F32), "f32");
    CHECK_STR(mora_dtype_name(MORA_F16), "f16");
    CHECK_STR(mora_dtype_name(MORA_BF16), "bf16");
    CHECK_STR(mora_dtype_name((mora_dtype)3), "unknown");
    CHECK_EQ_INT(mora_dtype_size(MORA_F32), 4);
    CHECK_EQ_INT(mora_dtype_size(MORA_F16), 2);
    CHECK_EQ_INT(mora_dtype_size(MORA_BF16), 2);
    CHECK_EQ_INT(mora_dtype_size((mora_dtype)3), 0);
    for (int i = 0; i < MORA_DTYPE_COUNT; ++i) {
        mora_dtype d = (mora_dtype)99;
        CHECK_STATUS(mora_dtype_from_string(mora_dtype_name((mora_dtype)i), &d), MORA_OK);
        CHECK_EQ_INT(d, i);
    }
    static const char *const bad_dtypes[] = {"fp32", "", "f64", "F32", "bf16 "};
    for (size_t i = 0; i < sizeof bad_dtypes / sizeof bad_dtypes[0]; ++i) {
        mora_dtype d = MORA_BF16;
        char needle[64];
        snprintf(needle, sizeof needle, "\"%s\"", bad_dtypes[i]);
        CHECK_FAILS(mora_dtype_from_string(bad_dtypes[i], &d), MORA_E_UNKNOWN_DTYPE, needle);
        CHECK_EQ_INT(d, MORA_BF16);
    }
    mora_dtype d = MORA_BF16;
    CHECK_FAILS(mora_dtype_from_string(NULL, &d), MORA_E_NULL, "name=NULL");
    CHECK_FAILS(mora_dtype_from_string("f32", NULL), MORA_E_NULL, "dtype=NULL");
}

static void test_size_rejections(void) {
    /* Zero and negative sizes: E_SIZE naming the argument and its value. */
    expect_make_fails(0, 16, 4, MORA_OP_SHARE, MORA_E_SIZE, "d_in=0");
    expect_make_fails(-5, 16, 4, MORA_OP_SHARE, MORA_E_SIZE, "d_in=-5");
    expect_make_fails(16, 0, 4, MORA_OP_SHARE, MORA_E_SIZE, "d_out=0");
    expect_make_fails(16, -1, 4, MORA_OP_RESHAPE, MORA_E_SIZE, "d_out=-1");
    expect_make_fails(16, 16, 0, MORA_OP_SHARE, MORA_E_SIZE, "lora_rank=0");
    expect_make_fails(16, 16, -8, MORA_OP_ROPE, MORA_E_SIZE, "lora_rank=-8");
    CHECK_EQ_INT(mora_rhat_from_rank(0, 16, 4), -1);
    CHECK(strstr(mora_last_error(), "d_in=0") != NULL);
    CHECK_EQ_INT(mora_rhat_from_rank(16, -2, 4), -1);
    CHECK(strstr(mora_last_error(), "d_out=-2") != NULL);
    CHECK_EQ_INT(mora_rhat_from_rank(16, 16, 0), -1);
    CHECK(strstr(mora_last_error(), "lora_rank=0") != NULL);

    expect_check_fails(0, 16, 4, MORA_OP_SHARE, MORA_E_SIZE, "d_in=0");
    expect_check_fails(-3, 16, 4, MORA_OP_SHARE, MORA_E_SIZE, "d_in=-3");
    expect_check_fails(16, 0, 4, MORA_OP_RESHAPE, MORA_E_SIZE, "d_out=0");
    expect_check_fails(16, -7, 4, MORA_OP_RESHAPE, MORA_E_SIZE, "d_out=-7");
    expect_check_fails(16, 16, 0, MORA_OP_SHARE, MORA_E_SIZE, "rhat=0");
    expect_check_fails(16, 16, -4, MORA_OP_ROPE, MORA_E_SIZE, "rhat=-4");
}

static void test_constraint_rejections(void) {
    /* truncate: r̂ <= min(d_in, d_out) */
    expect_check_fails(4, 8, 5, MORA_OP_TRUNCATE, MORA_E_CONSTRAINT, "rhat=5");
    expect_check_fails(8, 4, 5, MORA_OP_TRUNCATE, MORA_E_CONSTRAINT, "rhat=5");
    expect_check_ok(5, 5, 5, MORA_OP_TRUNCATE);
    /* group: r̂ <= d_in and r̂ <= d_out */
    expect_check_fails(4, 8, 6, MORA_OP_GROUP, MORA_E_CONSTRAINT, "rhat=6");
    expect_check_fails(8, 4, 6, MORA_OP_GROUP, MORA_E_CONSTRAINT, "rhat=6");
    expect_check_ok(6, 6, 6, MORA_OP_GROUP);
    /* group-tile: r̂ <= d_in only */
    expect_check_fails(3, 100, 4, MORA_OP_GROUP_TILE, MORA_E_CONSTRAINT, "rhat=4");
    expect_check_ok(100, 3, 4, MORA_OP_GROUP_TILE);
    /* share-interleave: r̂ <= d_out only */
    expect_check_fails(100, 3, 4, MORA_OP_SHARE_INTERLEAVE, MORA_E_CONSTRAINT, "rhat=4");
    expect_check_ok(3, 100, 4, MORA_OP_SHARE_INTERLEAVE);
    /* share, reshape, rope: no size constraint */
    expect_check_ok(3, 2, 8, MORA_OP_SHARE);
    expect_check_ok(3, 2, 8, MORA_OP_RESHAPE);
    expect_check_ok(3, 2, 8, MORA_OP_ROPE);
    expect_check_ok(1, 1, 1, MORA_OP_SHARE);
    /* The same through mora_shape_make: (1 + 100)·8 = 808, sqrt = 28.4 -> r̂ = 28 > d_in = 1. */
    expect_make_fails(1, 100, 8, MORA_OP_TRUNCATE, MORA_E_CONSTRAINT, "rhat=28");
    expect_make_fails(1, 100, 8, MORA_OP_GROUP, MORA_E_CONSTRAINT, "rhat=28");
    expect_make_fails(1, 100, 8, MORA_OP_GROUP_TILE, MORA_E_CONSTRAINT, "rhat=28");
    expect_make_fails(100, 1, 8, MORA_OP_SHARE_INTERLEAVE, MORA_E_CONSTRAINT, "rhat=28");
    mora_shape s;
    CHECK_STATUS(mora_shape_make(&s, 1, 100, 8, MORA_OP_SHARE_INTERLEAVE), MORA_OK);
    CHECK_STATUS(mora_shape_make(&s, 100, 1, 8, MORA_OP_GROUP_TILE), MORA_OK);

    /* rope: odd r̂ given directly */
    expect_check_fails(16, 16, 3, MORA_OP_ROPE, MORA_E_ODD_RHAT, "rhat=3");
    expect_check_fails(16, 16, 1, MORA_OP_ROPE, MORA_E_ODD_RHAT, "rhat=1");
    expect_check_ok(16, 16, 3, MORA_OP_RESHAPE);
    /* rope through mora_shape_make when the formula gives 1: (1 + 1)·1 = 2 -> 1, and 1 − 1 = 0 is no size */
    expect_make_fails(1, 1, 1, MORA_OP_ROPE, MORA_E_ODD_RHAT, "rhat=1");

    /* Unknown op ids in shapes */
    expect_check_fails(16, 16, 4, (mora_op)7, MORA_E_UNKNOWN_OP, "op=7");
    expect_check_fails(16, 16, 4, (mora_op)-1, MORA_E_UNKNOWN_OP, "op=-1");
    expect_make_fails(16, 16, 4, (mora_op)7, MORA_E_UNKNOWN_OP, "op=7");
}

static void test_overflow_rejections(void) {
    const int64_t half = INT64_MAX / 2;
    /* d_in·d_out overflows */
    expect_check_fails(half, half, 2, MORA_OP_SHARE, MORA_E_OVERFLOW, "d_out * d_in");
    /* fits in 64 bits but not as float64 bytes: 2^31 · 2^30 = 2^61 elements > INT64_MAX / 8 */
    expect_check_fails((int64_t)1 << 31, (int64_t)1 << 30, 2, MORA_OP_SHARE, MORA_E_OVERFLOW, "d_out * d_in");
    /* r̂·r̂ overflows (share has no r̂ constraint) */
    expect_check_fails(4, 4, half, MORA_OP_SHARE, MORA_E_OVERFLOW, "rhat * rhat");
    /* d_in + r̂ past the limit: d_in = 2^60 − 1, d_out = 1, r̂ = 2 */
    expect_check_fails(INT64_MAX / 8, 1, 2, MORA_OP_RESHAPE, MORA_E_OVERFLOW, "d_in + rhat");

    /* (d_in + d_out)·r overflows: (2^40 + 2^40)·2^30 = 2^71 */
    const int64_t p40 = (int64_t)1 << 40;
    expect_make_fails(p40, p40, (int64_t)1 << 30, MORA_OP_SHARE, MORA_E_OVERFLOW, "lora_rank");
    CHECK_EQ_INT(mora_rhat_from_rank(p40, p40, (int64_t)1 << 30), -1);
    /* d_in + d_out itself overflows */
    expect_make_fails(INT64_MAX, INT64_MAX, 1, MORA_OP_SHARE, MORA_E_OVERFLOW, "d_in + d_out");
    CHECK_EQ_INT(mora_rhat_from_rank(INT64_MAX, 1, 1), -1);
    /* r̂ is fine, the layer is not: 2^40·2^40 elements */
    expect_make_fails(p40, p40, 1, MORA_OP_SHARE, MORA_E_OVERFLOW, "d_out * d_in");
    expect_make_fails(half, half, 1, MORA_OP_SHARE, MORA_E_OVERFLOW, "d_out * d_in");
}

static void test_null_and_blocks(void) {
    CHECK_FAILS(mora_shape_make(NULL, 16, 16, 4, MORA_OP_SHARE), MORA_E_NULL, "s=NULL");
    CHECK_FAILS(mora_shape_check(NULL), MORA_E_NULL, "s=NULL");
    CHECK_EQ_INT(mora_shape_blocks(NULL), -1);

    /* blocks: ceil(d_in / r̂) for reshape and rope, 1 for the others */
    const mora_shape reshape = {5, 3, 2, MORA_OP_RESHAPE}, rope = {9, 3, 4, MORA_OP_ROPE},
                     rope_small = {3, 3, 4, MORA_OP_ROPE}, share = {5, 3, 2, MORA_OP_SHARE},
                     group = {5, 3, 2, MORA_OP_GROUP}, exact = {8, 8, 4, MORA_OP_RESHAPE};
    CHECK_EQ_INT(mora_shape_blocks(&reshape), 3);
    CHECK_EQ_INT(mora_shape_blocks(&rope), 3);
    CHECK_EQ_INT(mora_shape_blocks(&rope_small), 1);
    CHECK_EQ_INT(mora_shape_blocks(&share), 1);
    CHECK_EQ_INT(mora_shape_blocks(&group), 1);
    CHECK_EQ_INT(mora_shape_blocks(&exact), 2);
}

/* The reference entry points reject the same shapes and leave every output as it was. */
static void test_reference_rejections(void) {
    enum { N = 2, D = 8, R = 4 };
    const double sentinel = -12345.5;
    double M[R * R], x[N * D], dy[N * D], y[N * D], dx[N * D], dM[R * R], dW[D * D];
    check_rng rng = {42};
    check_fill(&rng, M, R * R);
    check_fill(&rng, x, N * D);
    check_fill(&rng, dy, N * D);
#define FILL_SENTINEL()                                                   \
    do {                                                                  \
        for (int i_ = 0; i_ < N * D; ++i_) y[i_] = dx[i_] = sentinel;      \
        for (int i_ = 0; i_ < R * R; ++i_) dM[i_] = sentinel;              \
        for (int i_ = 0; i_ < D * D; ++i_) dW[i_] = sentinel;              \
    } while (0)
#define CHECK_UNTOUCHED()                                                 \
    do {                                                                  \
        int ok_ = 1;                                                      \
        for (int i_ = 0; i_ < N * D; ++i_) ok_ &= y[i_] == sentinel && dx[i_] == sentinel; \
        for (int i_ = 0; i_ < R * R; ++i_) ok_ &= dM[i_] == sentinel;     \
        for (int i_ = 0; i_ < D * D; ++i_) ok_ &= dW[i_] == sentinel;     \
        CHECK(ok_);                                                       \
    } while (0)

    static const struct {
        mora_shape s;
        mora_status want;
        const char *needle;
    } bad[] = {
        {{0, D, R, MORA_OP_SHARE}, MORA_E_SIZE, "d_in=0"},
        {{D, -1, R, MORA_OP_SHARE}, MORA_E_SIZE, "d_out=-1"},
        {{D, D, 0, MORA_OP_RESHAPE}, MORA_E_SIZE, "rhat=0"},
        {{D, D, 3, MORA_OP_ROPE}, MORA_E_ODD_RHAT, "rhat=3"},
        {{3, D, R, MORA_OP_GROUP}, MORA_E_CONSTRAINT, "rhat=4"},
        {{D, 3, R, MORA_OP_TRUNCATE}, MORA_E_CONSTRAINT, "rhat=4"},
        {{D, D, R, (mora_op)7}, MORA_E_UNKNOWN_OP, "op=7"},
        {{INT64_MAX / 2, INT64_MAX / 2, R, MORA_OP_SHARE}, MORA_E_OVERFLOW, "d_out * d_in"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        const int before = check_failures_;
        FILL_SENTINEL();
        CHECK_FAILS(mora_ref_forward(&bad[i].s, M, x, y, N, 1.0), bad[i].want, bad[i].needle);
        CHECK_FAILS(mora_ref_backward(&bad[i].s, M, x, dy, dx, dM, N), bad[i].want, bad[i].needle);
        CHECK_FAILS(mora_ref_delta_weight(&bad[i].s, M, dW), bad[i].want, bad[i].needle);
        /* n = 0 does not excuse a bad shape */
        CHECK_FAILS(mora_ref_forward(&bad[i].s, M, NULL, NULL, 0, 1.0), bad[i].want, bad[i].needle);
        CHECK_UNTOUCHED();
        if (check_failures_ > before) fprintf(stderr, "  in bad reference shape %zu\n", i);
    }

    const mora_shape s = {D, D, R, MORA_OP_ROPE};
    FILL_SENTINEL();
    /* NULL shape and pointers */
    CHECK_FAILS(mora_ref_forward(NULL, M, x, y, N, 1.0), MORA_E_NULL, "s=NULL");
    CHECK_FAILS(mora_ref_forward(&s, NULL, x, y, N, 1.0), MORA_E_NULL, "M=NULL");
    CHECK_FAILS(mora_ref_forward(&s, M, NULL, y, N, 1.0), MORA_E_NULL, "x=NULL");
    CHECK_FAILS(mora_ref_forward(&s, M, x, NULL, N, 1.0), MORA_E_NULL, "y=NULL");
    CHECK_FAILS(mora_ref_backward(NULL, M, x, dy, dx, dM, N), MORA_E_NULL, "s=NULL");
    CHECK_FAILS(mora_ref_backward(&s, NULL, x, dy, dx, dM, N), MORA_E_NULL, "M=NULL");
    CHECK_FAILS(mora_ref_backward(&s, M, x, NULL, dx, dM, N), MORA_E_NULL, "dy=NULL");
    CHECK_FAILS(mora_ref_backward(&s, M, NULL, dy, dx, dM, N), MORA_E_NULL, "x=NULL"); /* dM needs x */
    CHECK_FAILS(mora_ref_delta_weight(NULL, M, dW), MORA_E_NULL, "s=NULL");
    CHECK_FAILS(mora_ref_delta_weight(&s, NULL, dW), MORA_E_NULL, "M=NULL");
    CHECK_FAILS(mora_ref_delta_weight(&s, M, NULL), MORA_E_NULL, "dW=NULL");
    /* n < 0 */
    CHECK_FAILS(mora_ref_forward(&s, M, x, y, -1, 1.0), MORA_E_SIZE, "n=-1");
    CHECK_FAILS(mora_ref_backward(&s, M, x, dy, dx, dM, -3), MORA_E_SIZE, "n=-3");
    /* n·d_in past the element limit */
    CHECK_FAILS(mora_ref_forward(&s, M, x, y, INT64_MAX / 4, 1.0), MORA_E_OVERFLOW, "n * d_in");
    CHECK_FAILS(mora_ref_backward(&s, M, x, dy, dx, dM, INT64_MAX / 4), MORA_E_OVERFLOW, "n * d_in");
    CHECK_UNTOUCHED();

    /* n = 0 is a no-op that succeeds, with NULL activations allowed */
    CHECK_STATUS(mora_ref_forward(&s, M, NULL, NULL, 0, 1.0), MORA_OK);
    CHECK_STATUS(mora_ref_backward(&s, M, NULL, NULL, NULL, NULL, 0), MORA_OK);
    CHECK_STATUS(mora_ref_backward(&s, M, NULL, NULL, dx, dM, 0), MORA_OK);
    CHECK_STATUS(mora_ref_forward(&s, M, x, y, 0, 1.0), MORA_OK);
    CHECK_UNTOUCHED();
    /* dx only: x is not needed */
    CHECK_STATUS(mora_ref_backward(&s, M, NULL, dy, dx, NULL, N), MORA_OK);
    int changed = 0;
    for (int i = 0; i < N * D; ++i) changed |= dx[i] != sentinel;
    CHECK(changed);
#undef FILL_SENTINEL
#undef CHECK_UNTOUCHED
}

int main(void) {
    test_rhat_table();
    test_names();
    test_size_rejections();
    test_constraint_rejections();
    test_overflow_rejections();
    test_null_and_blocks();
    test_reference_rejections();
    return check_report();
}
