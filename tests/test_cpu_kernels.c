/* The cpu kernels (float32, gather form) against the float64 reference, for every operator and
 * activation dtype, on seeded random shapes; plus NaN propagation, bit-exact determinism and the
 * entries merge must leave alone.
 *
 * What is compared. y, dx, dM and W accumulate, so each output starts at known random values and
 * the test compares the CHANGE (after − before, exact in double) with the reference's result on
 * the same inputs: ‖change − ref‖ / ‖ref‖. The starting values are scaled to the RMS of the
 * reference result, so
 *  - a kernel that overwrote instead of adding, or added twice, fails by O(1);
 *  - the final rounding of (before + change) to the dtype stays an O(ulp) relative error of the
 *    change (comparing the full y instead would let a starting value much larger than the change
 *    hide a wrong change, and one much smaller would test nothing of the accumulation).
 * NaN never passes: the relative error of a NaN is NaN and !(NaN <= tol).
 * Tolerances: activations f32 1e-5, bf16 1e-2, f16 3e-3; dM is float32 whatever the activation
 * dtype (inputs are exactly the dtype values the reference sees) so it is held to 1e-5.
 */
#include <time.h>

#include "check.h"

#define MORA_TRY_TEST(e)                  \
    do {                                  \
        mora_status s_ = (e);             \
        if (s_ != MORA_OK) return s_;     \
    } while (0)
#include "cpu_kernels.h"
#include "halfconv.h"
#include "shape.h"

static const mora_dtype dtypes[MORA_DTYPE_COUNT] = {MORA_F32, MORA_F16, MORA_BF16};

static double tolerance(mora_dtype dt) {
    switch (dt) {
    case MORA_F16: return 3e-3;
    case MORA_BF16: return 1e-2;
    default: return 1e-5;
    }
}

/* The row-contiguous calls of 0.1 over the plan interface (the checks a plan makes, then one cpu
 * plan and workspace per call). */
static mora_status cpu_call_check(const mora_shape *s, int64_t n) {
    MORA_TRY_TEST(mora_shape_check(s));
    if (n < 0) return MORA_E_SIZE;
    return MORA_OK;
}

static mora_status cpu_forward(const mora_shape *s, mora_dtype dt, const float *M, const void *x, void *y, int64_t n,
                               float scale) {
    MORA_TRY_TEST(cpu_call_check(s, n));
    mora_cpu_plan *p = NULL;
    MORA_TRY_TEST(mora_cpu_plan_create(s, dt, NULL, &p));
    void *ws = malloc(mora_cpu_workspace_bytes(p, n) + 1);
    const mora_status st = mora_cpu_forward(p, M, x, s->d_in, y, s->d_out, n, scale, ws);
    free(ws);
    mora_cpu_plan_destroy(p);
    return st;
}

static mora_status cpu_backward(const mora_shape *s, mora_dtype dt, const float *M, const void *x, const void *dy,
                                void *dx, float *dM, int64_t n) {
    MORA_TRY_TEST(cpu_call_check(s, n));
    mora_cpu_plan *p = NULL;
    MORA_TRY_TEST(mora_cpu_plan_create(s, dt, NULL, &p));
    void *ws = malloc(mora_cpu_workspace_bytes(p, n) + 1);
    const mora_status st = mora_cpu_backward(p, M, x, s->d_in, dy, s->d_out, dx, s->d_in, dM, n, 1.0f, ws);
    free(ws);
    mora_cpu_plan_destroy(p);
    return st;
}

static mora_status cpu_merge(const mora_shape *s, const float *M, void *W, mora_dtype dt, float sign) {
    MORA_TRY_TEST(cpu_call_check(s, 0));
    mora_cpu_plan *p = NULL;
    MORA_TRY_TEST(mora_cpu_plan_create(s, dt, NULL, &p));
    const mora_status st = mora_cpu_merge(p, M, W, s->d_in, dt, sign);
    mora_cpu_plan_destroy(p);
    return st;
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "test: out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

/* Fills buf (dtype) with amplitude·uniform values rounded to the dtype and d with the exact values. */
static void fill_act(check_rng *rng, mora_dtype dt, void *buf, double *d, int64_t count, double amplitude) {
    for (int64_t i = 0; i < count; ++i) {
        mora_store_act(dt, buf, i, (float)(amplitude * check_rng_uniform(rng)));
        d[i] = mora_load_act(dt, buf, i);
    }
}

static double rms(const double *v, int64_t count) {
    double sum = 0.0;
    for (int64_t i = 0; i < count; ++i) sum += v[i] * v[i];
    const double r = count > 0 ? sqrt(sum / (double)count) : 0.0;
    return r > 0.0 && isfinite(r) ? r : 1.0;
}

/* change[i] = load(buf, i) − before[i] */
static void act_change(mora_dtype dt, const void *buf, const double *before, double *change, int64_t count) {
    for (int64_t i = 0; i < count; ++i) change[i] = (double)mora_load_act(dt, buf, i) - before[i];
}

typedef struct case_info {
    uint64_t seed;
    mora_shape s;
    mora_dtype dt;
    int64_t n;
} case_info;

/* Worst relative error seen per dtype, printed at the end (the margin under each tolerance). */
static double worst_err[MORA_DTYPE_COUNT];

static void check_err(const case_info *ci, const char *what, double err, double tol) {
    ++check_count_;
    if (err > worst_err[ci->dt] || isnan(err)) worst_err[ci->dt] = err;
    if (!(err <= tol))
        CHECK_FAIL_("seed=%llu op=%s d_in=%lld d_out=%lld rhat=%lld n=%lld dtype=%s: %s rel_error=%.3g > %.3g",
                    (unsigned long long)ci->seed, mora_op_name(ci->s.op), (long long)ci->s.d_in,
                    (long long)ci->s.d_out, (long long)ci->s.rhat, (long long)ci->n, mora_dtype_name(ci->dt), what,
                    err, tol);
}

static void check_true(const case_info *ci, const char *what, int ok) {
    ++check_count_;
    if (!ok)
        CHECK_FAIL_("seed=%llu op=%s d_in=%lld d_out=%lld rhat=%lld n=%lld dtype=%s: %s",
                    (unsigned long long)ci->seed, mora_op_name(ci->s.op), (long long)ci->s.d_in,
                    (long long)ci->s.d_out, (long long)ci->s.rhat, (long long)ci->n, mora_dtype_name(ci->dt), what);
}

/* Does ΔW structurally have entry (j, p)? Written from the operators' definitions (docs/operators.md), not from the kernel. */
static int delta_has(const mora_shape *s, int64_t j, int64_t p) {
    const mora_geometry geo = mora_shape_geometry(s);
    switch (s->op) {
    case MORA_OP_TRUNCATE: return j < s->rhat && p < s->rhat;
    case MORA_OP_RESHAPE:
    case MORA_OP_ROPE: {
        const int64_t t = (j % geo.padded) / s->rhat, width = s->rhat < s->d_in ? s->rhat : s->d_in;
        for (int64_t b = 0; b < width; ++b)
            if ((t * s->rhat + b) % s->d_in == p) return 1;
        return 0;
    }
    default: return 1;
    }
}

/* One shape, one dtype: forward, backward (also with dx or dM alone) and merge. */
static void run_case(const case_info *ci) {
    const mora_shape *s = &ci->s;
    const mora_dtype dt = ci->dt;
    const int64_t n = ci->n, d_in = s->d_in, d_out = s->d_out, rhat = s->rhat;
    const size_t es = mora_dtype_size(dt);
    check_rng rng = {ci->seed};
    const double tol = tolerance(dt);
    const float scales[3] = {1.0f, -0.5f, 1.75f};
    const float scale = scales[ci->seed % 3];

    float *Mf = xmalloc((size_t)(rhat * rhat) * sizeof *Mf);
    double *Md = xmalloc((size_t)(rhat * rhat) * sizeof *Md);
    for (int64_t i = 0; i < rhat * rhat; ++i) Md[i] = Mf[i] = (float)check_rng_uniform(&rng);

    void *x = xmalloc((size_t)(n * d_in) * es), *y = xmalloc((size_t)(n * d_out) * es);
    void *dy = xmalloc((size_t)(n * d_out) * es), *dx = xmalloc((size_t)(n * d_in) * es);
    void *dx2 = xmalloc((size_t)(n * d_in) * es);
    double *xd = xmalloc((size_t)(n * d_in) * sizeof *xd), *dyd = xmalloc((size_t)(n * d_out) * sizeof *dyd);
    double *y0 = xmalloc((size_t)(n * d_out) * sizeof *y0), *dx0 = xmalloc((size_t)(n * d_in) * sizeof *dx0);
    double *ref_y = calloc((size_t)(n * d_out), sizeof *ref_y), *ref_dx = calloc((size_t)(n * d_in), sizeof *ref_dx);
    double *ref_dM = calloc((size_t)(rhat * rhat), sizeof *ref_dM);
    double *chg = xmalloc((size_t)(n * (d_in > d_out ? d_in : d_out) + rhat * rhat) * sizeof *chg);
    float *dM = xmalloc((size_t)(rhat * rhat) * sizeof *dM), *dM2 = xmalloc((size_t)(rhat * rhat) * sizeof *dM2);
    double *dM0 = xmalloc((size_t)(rhat * rhat) * sizeof *dM0);
    if (!ref_y || !ref_dx || !ref_dM) exit(2);

    fill_act(&rng, dt, x, xd, n * d_in, 1.0);
    fill_act(&rng, dt, dy, dyd, n * d_out, 1.0);

    /* ---- forward ---- */
    REQUIRE_OK(mora_ref_forward(s, Md, xd, ref_y, n, scale));
    fill_act(&rng, dt, y, y0, n * d_out, rms(ref_y, n * d_out));
    REQUIRE_OK(cpu_forward(s, dt, Mf, x, y, n, scale));
    act_change(dt, y, y0, chg, n * d_out);
    check_err(ci, "forward y", check_rel_error(chg, ref_y, n * d_out), tol);

    /* ---- backward ---- */
    REQUIRE_OK(mora_ref_backward(s, Md, xd, dyd, ref_dx, ref_dM, n));
    fill_act(&rng, dt, dx, dx0, n * d_in, rms(ref_dx, n * d_in));
    memcpy(dx2, dx, (size_t)(n * d_in) * es);
    const double dM_amp = rms(ref_dM, rhat * rhat);
    for (int64_t i = 0; i < rhat * rhat; ++i) dM0[i] = dM2[i] = dM[i] = (float)(dM_amp * check_rng_uniform(&rng));
    REQUIRE_OK(cpu_backward(s, dt, Mf, x, dy, dx, dM, n));
    act_change(dt, dx, dx0, chg, n * d_in);
    check_err(ci, "backward dx", check_rel_error(chg, ref_dx, n * d_in), tol);
    for (int64_t i = 0; i < rhat * rhat; ++i) chg[i] = (double)dM[i] - dM0[i];
    check_err(ci, "backward dM", check_rel_error(chg, ref_dM, rhat * rhat), 1e-5);
    /* dx alone and dM alone give the same bits as both together */
    REQUIRE_OK(cpu_backward(s, dt, Mf, x, dy, dx2, NULL, n));
    check_true(ci, "backward dx without dM differs", memcmp(dx, dx2, (size_t)(n * d_in) * es) == 0);
    REQUIRE_OK(cpu_backward(s, dt, Mf, NULL, dy, NULL, NULL, n)); /* nothing to compute: a no-op */
    REQUIRE_OK(cpu_backward(s, dt, Mf, x, dy, NULL, dM2, n));
    check_true(ci, "backward dM without dx differs", memcmp(dM, dM2, (size_t)(rhat * rhat) * sizeof *dM) == 0);

    /* ---- merge (W of the same dtype), sign alternating ---- */
    const float sign = (ci->seed & 1) ? -1.0f : 1.0f;
    double *ref_dW = xmalloc((size_t)(d_out * d_in) * sizeof *ref_dW);
    double *w0 = xmalloc((size_t)(d_out * d_in) * sizeof *w0);
    void *W = xmalloc((size_t)(d_out * d_in) * es), *Wb = xmalloc((size_t)(d_out * d_in) * es);
    REQUIRE_OK(mora_ref_delta_weight(s, Md, ref_dW));
    fill_act(&rng, dt, W, w0, d_out * d_in, rms(ref_dW, d_out * d_in));
    memcpy(Wb, W, (size_t)(d_out * d_in) * es);
    REQUIRE_OK(cpu_merge(s, Mf, W, dt, sign));
    int64_t touched = 0, stray = 0, ref_outside = 0;
    double *got_c = xmalloc((size_t)(d_out * d_in) * sizeof *got_c), *ref_c = xmalloc((size_t)(d_out * d_in) * sizeof *ref_c);
    for (int64_t j = 0; j < d_out; ++j)
        for (int64_t p = 0; p < d_in; ++p) {
            const int64_t i = j * d_in + p;
            if (delta_has(s, j, p)) {
                got_c[touched] = (double)mora_load_act(dt, W, i) - w0[i];
                ref_c[touched] = (double)sign * ref_dW[i];
                ++touched;
            } else {
                if (memcmp((const char *)W + (size_t)i * es, (const char *)Wb + (size_t)i * es, es) != 0) ++stray;
                if (ref_dW[i] != 0.0) ++ref_outside;
            }
        }
    check_err(ci, "merge W", check_rel_error(got_c, ref_c, touched), tol);
    check_true(ci, "merge wrote entries outside ΔW's structure", stray == 0);
    check_true(ci, "reference ΔW has entries outside the structural mask", ref_outside == 0);

    free(Mf), free(Md), free(x), free(y), free(dy), free(dx), free(dx2), free(xd), free(dyd), free(y0), free(dx0);
    free(ref_y), free(ref_dx), free(ref_dM), free(chg), free(dM), free(dM2), free(dM0);
    free(ref_dW), free(w0), free(W), free(Wb), free(got_c), free(ref_c);
}

/* A random valid shape of `op`; kind 0: d_in < r̂, 1: d_out < r̂, 2: d_out > B·r̂, 3: r̂ not dividing
 * d_in, else free. Falls back to any valid shape when the op forbids the kind (truncate, group). */
static mora_shape random_shape(check_rng *rng, mora_op op, int kind) {
    for (int attempt = 0; attempt < 2000; ++attempt) {
        mora_shape s = {check_rng_int(rng, 1, 80), check_rng_int(rng, 1, 80), check_rng_int(rng, 1, 40), op};
        if (op == MORA_OP_ROPE && s.rhat % 2) s.rhat = s.rhat == 1 ? 2 : s.rhat - 1;
        if (mora_shape_check(&s) != MORA_OK) continue;
        const int64_t padded = (s.d_in + s.rhat - 1) / s.rhat * s.rhat;
        int ok = 1;
        if (attempt < 1500) {
            switch (kind) {
            case 0: ok = s.d_in < s.rhat; break;
            case 1: ok = s.d_out < s.rhat; break;
            case 2: ok = s.d_out > padded; break;
            case 3: ok = s.d_in % s.rhat != 0 && s.d_out % s.rhat != 0; break;
            default: break;
            }
        }
        if (ok) return s;
    }
    mora_shape s = {4, 4, 2, op};
    return s;
}

static void test_accuracy(void) {
    static const int64_t ns[3] = {1, 3, 129};
    int cases = 0;
    for (int op = 0; op < MORA_OP_COUNT; ++op) {
        for (int di = 0; di < MORA_DTYPE_COUNT; ++di) {
            for (int k = 0; k < 36; ++k) {
                case_info ci;
                ci.seed = 0x5eed0000ull + (uint64_t)op * 10000u + (uint64_t)di * 1000u + (uint64_t)k;
                check_rng rng = {ci.seed * 0x9E3779B97F4A7C15ull};
                ci.s = random_shape(&rng, (mora_op)op, k % 6);
                ci.dt = dtypes[di];
                ci.n = ns[k % 3];
                run_case(&ci);
                ++cases;
            }
            /* fixed edges: the smallest shapes, and larger ones whose n spans several token tiles */
            const int64_t fixed[][4] = {{1, 1, 1, 1},     {1, 80, 2, 3},     {80, 1, 2, 3},     {37, 37, 37, 3},
                                        {700, 900, 30, 70}, {1000, 257, 64, 300}, {257, 1000, 48, 300}};
            for (size_t f = 0; f < sizeof fixed / sizeof fixed[0]; ++f) {
                case_info ci;
                ci.seed = 0xf1ed0000ull + (uint64_t)op * 1000u + (uint64_t)di * 100u + f;
                ci.s = (mora_shape){fixed[f][0], fixed[f][1], fixed[f][2], (mora_op)op};
                if (ci.s.op == MORA_OP_ROPE && ci.s.rhat % 2) ci.s.rhat = ci.s.rhat == 1 ? 2 : ci.s.rhat - 1;
                if (mora_shape_check(&ci.s) != MORA_OK) continue;
                ci.dt = dtypes[di];
                ci.n = fixed[f][3];
                run_case(&ci);
                ++cases;
            }
        }
    }
    printf("accuracy: %d cases (op x dtype x shape)\n", cases);
    for (int di = 0; di < MORA_DTYPE_COUNT; ++di)
        printf("  worst relative error %s: %.3g (tolerance %.0e)\n", mora_dtype_name(dtypes[di]), worst_err[di],
               tolerance(dtypes[di]));
}

/* NaN in x reaches y (token row 1 only), dM; NaN in dy reaches dx; the error check rejects it. */
static void test_nan(void) {
    for (int op = 0; op < MORA_OP_COUNT; ++op)
        for (int di = 0; di < MORA_DTYPE_COUNT; ++di) {
            const mora_dtype dt = dtypes[di];
            case_info ci = {7, {23, 31, 6, (mora_op)op}, dt, 3};
            const mora_shape *s = &ci.s;
            check_rng rng = {ci.seed};
            float M[36];
            for (int i = 0; i < 36; ++i) M[i] = (float)check_rng_uniform(&rng);
            unsigned char x[3 * 23 * 4], y[3 * 31 * 4], dy[3 * 31 * 4], dx[3 * 23 * 4];
            double xd[3 * 23], yd[3 * 31], dyd[3 * 31], dxd[3 * 23];
            fill_act(&rng, dt, x, xd, 3 * 23, 1.0);
            fill_act(&rng, dt, y, yd, 3 * 31, 1.0);
            fill_act(&rng, dt, dy, dyd, 3 * 31, 1.0);
            fill_act(&rng, dt, dx, dxd, 3 * 23, 1.0);
            mora_store_act(dt, x, 23 + 0, NAN);
            float dM[36] = {0};
            REQUIRE_OK(cpu_forward(s, dt, M, x, y, 3, 1.0f));
            check_true(&ci, "NaN in x[1][0] did not reach y[1][0]", isnan(mora_load_act(dt, y, 31)));
            int finite_other = 1;
            for (int j = 0; j < 31; ++j)
                finite_other &= isfinite(mora_load_act(dt, y, j)) && isfinite(mora_load_act(dt, y, 2 * 31 + j));
            check_true(&ci, "NaN in token 1 leaked into tokens 0 or 2", finite_other);
            double got[3 * 31];
            act_change(dt, y, yd, got, 3 * 31);
            check_true(&ci, "relative error of a NaN output passes", !(check_rel_error(got, yd, 3 * 31) <= 1.0));
            REQUIRE_OK(cpu_backward(s, dt, M, x, dy, NULL, dM, 3));
            check_true(&ci, "NaN in x did not reach dM[0][0]", isnan(dM[0]));
            mora_store_act(dt, dy, 2 * 31 + 0, NAN);
            REQUIRE_OK(cpu_backward(s, dt, M, x, dy, dx, NULL, 3));
            int nan_row2 = 0, finite_row0 = 1;
            for (int p = 0; p < 23; ++p) {
                nan_row2 |= isnan(mora_load_act(dt, dx, 2 * 23 + p));
                finite_row0 &= isfinite(mora_load_act(dt, dx, p));
            }
            check_true(&ci, "NaN in dy[2][0] did not reach dx[2]", nan_row2);
            check_true(&ci, "NaN in dy[2] leaked into dx[0]", finite_row0);
        }
}

/* Two runs on identical inputs give identical bits; n = 0 and invalid shapes. */
static void test_determinism_and_edges(void) {
    for (int op = 0; op < MORA_OP_COUNT; ++op)
        for (int di = 0; di < MORA_DTYPE_COUNT; ++di) {
            const mora_dtype dt = dtypes[di];
            case_info ci = {11, {300, 200, 24, (mora_op)op}, dt, 200};
            const mora_shape *s = &ci.s;
            const int64_t n = ci.n, rhat = s->rhat, es = (int64_t)mora_dtype_size(dt);
            check_rng rng = {ci.seed};
            float *M = xmalloc((size_t)(rhat * rhat) * sizeof *M);
            for (int64_t i = 0; i < rhat * rhat; ++i) M[i] = (float)check_rng_uniform(&rng);
            const int64_t nx = n * s->d_in, ny = n * s->d_out, nw = s->d_in * s->d_out;
            void *x = xmalloc((size_t)(nx * es)), *dy = xmalloc((size_t)(ny * es));
            void *y[2], *dx[2], *W[2];
            float *dM[2];
            double *scratch = xmalloc((size_t)(nx + ny + nw) * sizeof *scratch);
            fill_act(&rng, dt, x, scratch, nx, 1.0);
            fill_act(&rng, dt, dy, scratch, ny, 1.0);
            for (int r = 0; r < 2; ++r) {
                y[r] = xmalloc((size_t)(ny * es));
                dx[r] = xmalloc((size_t)(nx * es));
                W[r] = xmalloc((size_t)(nw * es));
                dM[r] = calloc((size_t)(rhat * rhat), sizeof(float));
                check_rng same = {99};
                fill_act(&same, dt, y[r], scratch, ny, 1.0);
                fill_act(&same, dt, dx[r], scratch, nx, 1.0);
                fill_act(&same, dt, W[r], scratch, nw, 1.0);
                REQUIRE_OK(cpu_forward(s, dt, M, x, y[r], n, 0.5f));
                REQUIRE_OK(cpu_backward(s, dt, M, x, dy, dx[r], dM[r], n));
                REQUIRE_OK(cpu_merge(s, M, W[r], dt, 1.0f));
            }
            check_true(&ci, "forward not deterministic", memcmp(y[0], y[1], (size_t)(ny * es)) == 0);
            check_true(&ci, "backward dx not deterministic", memcmp(dx[0], dx[1], (size_t)(nx * es)) == 0);
            check_true(&ci, "backward dM not deterministic",
                       memcmp(dM[0], dM[1], (size_t)(rhat * rhat) * sizeof(float)) == 0);
            check_true(&ci, "merge not deterministic", memcmp(W[0], W[1], (size_t)(nw * es)) == 0);
            /* a result does not depend on how many tokens share the call: token 5 alone == token 5 of 200 */
            void *y1row = xmalloc((size_t)(s->d_out * es));
            {
                check_rng again = {99};
                void *tmp = xmalloc((size_t)(ny * es));
                fill_act(&again, dt, tmp, scratch, ny, 1.0);
                memcpy(y1row, (char *)tmp + 5 * s->d_out * es, (size_t)(s->d_out * es));
                free(tmp);
            }
            REQUIRE_OK(cpu_forward(s, dt, M, (const char *)x + 5 * s->d_in * es, y1row, 1, 0.5f));
            check_true(&ci, "forward of one token differs from the same token in a batch",
                       memcmp(y1row, (char *)y[0] + 5 * s->d_out * es, (size_t)(s->d_out * es)) == 0);
            free(y1row);
            for (int r = 0; r < 2; ++r) free(y[r]), free(dx[r]), free(W[r]), free(dM[r]);

            /* n = 0 succeeds without touching (or needing) buffers */
            CHECK_STATUS(cpu_forward(s, dt, M, NULL, NULL, 0, 1.0f), MORA_OK);
            CHECK_STATUS(cpu_backward(s, dt, M, NULL, NULL, NULL, NULL, 0), MORA_OK);
            free(M), free(x), free(dy), free(scratch);
        }
    float M[9] = {0};
    float xv[3] = {1, 2, 3}, yv[3] = {0};
    const mora_shape odd = {6, 6, 3, MORA_OP_ROPE};
    CHECK_STATUS(cpu_forward(&odd, MORA_F32, M, xv, yv, 1, 1.0f), MORA_E_ODD_RHAT);
    const mora_shape big = {2, 6, 3, MORA_OP_TRUNCATE};
    CHECK_STATUS(cpu_merge(&big, M, yv, MORA_F32, 1.0f), MORA_E_CONSTRAINT);
    const mora_shape ok = {3, 3, 3, MORA_OP_SHARE};
    CHECK_STATUS(cpu_forward(&ok, MORA_F32, M, xv, yv, -1, 1.0f), MORA_E_SIZE);
}

static double seconds(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Speed of the fallback path at a real shape (printed, not asserted: sanitizer builds are slow). */
static void test_speed(void) {
    const mora_op ops[2] = {MORA_OP_RESHAPE, MORA_OP_ROPE};
    for (int oi = 0; oi < 2; ++oi)
        for (int di = 0; di < MORA_DTYPE_COUNT; di += 2) {
            const mora_shape s = {4096, 4096, 256, ops[oi]};
            const mora_dtype dt = dtypes[di];
            const int64_t n = 64, es = (int64_t)mora_dtype_size(dt);
            float *M = xmalloc(256 * 256 * sizeof *M);
            check_rng rng = {5};
            for (int i = 0; i < 256 * 256; ++i) M[i] = (float)check_rng_uniform(&rng) * 0.01f;
            void *x = xmalloc((size_t)(n * 4096 * es)), *y = calloc((size_t)(n * 4096), (size_t)es);
            void *dx = calloc((size_t)(n * 4096), (size_t)es);
            float *dM = calloc(256 * 256, sizeof *dM);
            for (int64_t i = 0; i < n * 4096; ++i) mora_store_act(dt, x, i, (float)check_rng_uniform(&rng));
            const double t0 = seconds();
            REQUIRE_OK(cpu_forward(&s, dt, M, x, y, n, 1.0f));
            const double t1 = seconds();
            REQUIRE_OK(cpu_backward(&s, dt, M, x, x, dx, dM, n));
            const double t2 = seconds();
            printf("speed %s %s d=4096 rhat=256 n=64: forward %.1f ms, backward (dx+dM) %.1f ms\n", mora_op_name(s.op),
                   mora_dtype_name(dt), 1e3 * (t1 - t0), 1e3 * (t2 - t1));
            free(M), free(x), free(y), free(dx), free(dM);
        }
}

int main(void) {
    const double t0 = seconds();
    test_accuracy();
    test_nan();
    test_determinism_and_edges();
    test_speed();
    printf("total %.2f s\n", seconds() - t0);
    return check_report();
}
