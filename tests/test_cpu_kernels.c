/* The cpu backend's kernels (runtime/cpu_kernels.h) against the float64 reference, for every operator
 * and activation dtype, on seeded random and fixed shapes, with tile sizes and thread counts 1/2/3 and
 * the defaults, both forms (the packed pipeline; rope and reshape as plain GEMMs per block) and every
 * GEMM provider installed here (OpenBLAS always; oneDNN, BLIS where present); plus row strides with
 * guarded gaps, workspace bounds, NaN propagation, bit-exact determinism, four threads sharing one
 * plan, and dM's error at n = 4096 against n = 256.
 *
 * What is compared. y, dx, dM and W accumulate, so each output starts at known random values and
 * the test compares the CHANGE (after − before, exact in double) with the reference's result on
 * the same inputs: ‖change − ref‖ / ‖ref‖. The starting values are scaled to the RMS of the
 * reference result, so a kernel that overwrote instead of adding, or added twice, fails by O(1).
 * The reference backward has no scale: it is given scale·dy instead (exact in double).
 * NaN never passes: the relative error of a NaN is NaN and !(NaN <= tol).
 * Tolerances: activations f32 1e-5, bf16 1e-2, f16 3e-3; dM is float32 whatever the activation
 * dtype (inputs are exactly the dtype values the reference sees) so it is held to 1e-5.
 *
 * Guards. Every matrix is allocated with a row stride ld > width and GUARD extra elements after the
 * last row. Inputs carry NaN in the gaps (a kernel that reads one poisons its output and fails the
 * error check) and must come back bit-identical; outputs carry a sentinel in the gaps that must stay.
 * The workspace is passed misaligned, exactly as large as mora_cpu_workspace_bytes says, followed by
 * guard bytes that must stay.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <time.h>

#include "check.h"
#include "cpu_gemm.h"
#include "cpu_kernels.h"
#include "halfconv.h"
#include "shape.h"

#define GUARD 37
#define WS_GUARD 256

static const mora_dtype dtypes[MORA_DTYPE_COUNT] = {MORA_F32, MORA_F16, MORA_BF16};

static double tolerance(mora_dtype dt) {
    switch (dt) {
    case MORA_F16: return 3e-3;
    case MORA_BF16: return 1e-2;
    default: return 1e-5;
    }
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "test: out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

static double rms(const double *v, int64_t count) {
    double sum = 0.0;
    for (int64_t i = 0; i < count; ++i) sum += v[i] * v[i];
    const double r = count > 0 ? sqrt(sum / (double)count) : 0.0;
    return r > 0.0 && isfinite(r) ? r : 1.0;
}

/* ---- strided, guarded matrices ---- */
typedef struct mat {
    mora_dtype dt;
    int64_t rows, cols, ld, total; /* total = rows·ld + GUARD elements */
    size_t es;
    unsigned char *buf, *orig; /* orig: the bytes as filled (gaps and guard included) */
    double *val;               /* rows x cols, the exact values stored in the matrix */
} mat;

/* Fills the matrix with amplitude·uniform (rounded to dt); gaps and guard with NaN (input) or the
 * sentinel 1234.5 (output). */
static mat mat_make(check_rng *rng, mora_dtype dt, int64_t rows, int64_t cols, int64_t ld, double amplitude,
                    int input) {
    mat m = {dt, rows, cols, ld, rows * ld + GUARD, mora_dtype_size(dt), NULL, NULL, NULL};
    m.buf = xmalloc((size_t)m.total * m.es);
    m.orig = xmalloc((size_t)m.total * m.es);
    m.val = xmalloc((size_t)(rows * cols) * sizeof *m.val);
    for (int64_t i = 0; i < m.total; ++i) mora_store_act(dt, m.buf, i, input ? NAN : 1234.5f);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
            mora_store_act(dt, m.buf, r * ld + c, (float)(amplitude * check_rng_uniform(rng)));
            m.val[r * cols + c] = mora_load_act(dt, m.buf, r * ld + c);
        }
    memcpy(m.orig, m.buf, (size_t)m.total * m.es);
    return m;
}

static void mat_free(mat *m) {
    free(m->buf), free(m->orig), free(m->val);
    m->buf = m->orig = NULL, m->val = NULL;
}

/* Back to the bytes as filled. */
static void mat_reset(mat *m) { memcpy(m->buf, m->orig, (size_t)m->total * m->es); }

/* Elements outside the rows x cols window that differ from the fill (gaps and guard). */
static int64_t mat_stray(const mat *m) {
    int64_t stray = 0;
    for (int64_t i = 0; i < m->total; ++i) {
        const int64_t r = i / m->ld, c = i % m->ld;
        if (r < m->rows && c < m->cols) continue;
        stray += memcmp(m->buf + (size_t)i * m->es, m->orig + (size_t)i * m->es, m->es) != 0;
    }
    return stray;
}

/* change[r][c] = now − as filled, over the window */
static void mat_change(const mat *m, double *change) {
    for (int64_t r = 0; r < m->rows; ++r)
        for (int64_t c = 0; c < m->cols; ++c)
            change[r * m->cols + c] = (double)mora_load_act(m->dt, m->buf, r * m->ld + c) - m->val[r * m->cols + c];
}

static int mat_unchanged(const mat *m) { return memcmp(m->buf, m->orig, (size_t)m->total * m->es) == 0; }

/* ---- a workspace with guard bytes after it, passed misaligned ---- */
typedef struct wspace {
    unsigned char *mem;
    void *ptr;
    size_t bytes;
} wspace;

static wspace ws_make(const mora_cpu_plan *p, int64_t n) {
    wspace w;
    w.bytes = mora_cpu_workspace_bytes(p, n);
    w.mem = xmalloc(w.bytes + 4 + WS_GUARD);
    w.ptr = w.mem + 4;
    memset(w.mem, 0xEE, w.bytes + 4 + WS_GUARD);
    return w;
}
static int ws_intact(const wspace *w) {
    for (size_t i = 0; i < WS_GUARD; ++i)
        if (w->mem[4 + w->bytes + i] != 0xEE) return 0;
    return w->mem[0] == 0xEE && w->mem[3] == 0xEE;
}

typedef struct case_info {
    uint64_t seed;
    mora_shape s;
    mora_dtype dt;
    int64_t n;
    mora_cpu_params prm;
} case_info;

static double worst_err[MORA_DTYPE_COUNT];

#define CASE_FMT "seed=%llu op=%s d_in=%lld d_out=%lld rhat=%lld n=%lld dtype=%s tile=%d threads=%d"
#define CASE_ARGS(ci)                                                                                         \
    (unsigned long long)(ci)->seed, mora_op_name((ci)->s.op), (long long)(ci)->s.d_in, (long long)(ci)->s.d_out, \
        (long long)(ci)->s.rhat, (long long)(ci)->n, mora_dtype_name((ci)->dt), (ci)->prm.tile_tokens, (ci)->prm.threads

static void check_err(const case_info *ci, const char *what, double err, double tol) {
    ++check_count_;
    if (err > worst_err[ci->dt] || isnan(err)) worst_err[ci->dt] = err;
    if (!(err <= tol)) CHECK_FAIL_(CASE_FMT ": %s rel_error=%.3g > %.3g", CASE_ARGS(ci), what, err, tol);
}

static void check_true(const case_info *ci, const char *what, int ok) {
    ++check_count_;
    if (!ok) CHECK_FAIL_(CASE_FMT ": %s", CASE_ARGS(ci), what);
}

/* Does ΔW structurally have entry (j, p)? Written from the operators' definitions, not from the kernel. */
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

/* One shape, one dtype, one (tile, threads): forward, backward (both, dx alone, dM alone), the
 * determinism of each, and merge. */
static void run_case(const case_info *ci) {
    const mora_shape *s = &ci->s;
    const mora_dtype dt = ci->dt;
    const int64_t n = ci->n, d_in = s->d_in, d_out = s->d_out, rhat = s->rhat, rr = rhat * rhat;
    check_rng rng = {ci->seed};
    const double tol = tolerance(dt);
    const float scales[3] = {1.0f, -0.5f, 1.75f};
    const float scale = scales[ci->seed % 3];
    const int64_t gx = check_rng_int(&rng, 0, 3), gy = check_rng_int(&rng, 0, 3); /* row gaps */

    mora_cpu_plan *p = NULL;
    REQUIRE_OK(mora_cpu_plan_create(s, dt, &ci->prm, &p));
    /* a workspace sized for more tokens than this call also works (calls with fewer tokens fit) */
    wspace ws = ws_make(p, n + (int64_t)(ci->seed % 2) * 5);

    float *Mf = xmalloc((size_t)rr * sizeof *Mf);
    double *Md = xmalloc((size_t)rr * sizeof *Md);
    for (int64_t i = 0; i < rr; ++i) Md[i] = Mf[i] = (float)check_rng_uniform(&rng);

    mat x = mat_make(&rng, dt, n, d_in, d_in + gx, 1.0, 1);
    mat dy = mat_make(&rng, dt, n, d_out, d_out + gy, 1.0, 1);
    double *dys = xmalloc((size_t)(n * d_out) * sizeof *dys); /* scale·dy for the reference */
    for (int64_t i = 0; i < n * d_out; ++i) dys[i] = (double)scale * dy.val[i];
    double *ref_y = calloc((size_t)(n * d_out), sizeof *ref_y), *ref_dx = calloc((size_t)(n * d_in), sizeof *ref_dx);
    double *ref_dM = calloc((size_t)rr, sizeof *ref_dM);
    double *chg = xmalloc((size_t)(n * (d_in > d_out ? d_in : d_out) + rr) * sizeof *chg);
    if (!ref_y || !ref_dx || !ref_dM) exit(2);
    REQUIRE_OK(mora_ref_forward(s, Md, x.val, ref_y, n, scale));
    REQUIRE_OK(mora_ref_backward(s, Md, x.val, dys, ref_dx, ref_dM, n));

    /* ---- forward, twice from the same start: bit-identical ---- */
    mat y = mat_make(&rng, dt, n, d_out, d_out + gx + 1, rms(ref_y, n * d_out), 0);
    REQUIRE_OK(mora_cpu_forward(p, Mf, x.buf, x.ld, y.buf, y.ld, n, scale, ws.ptr));
    mat_change(&y, chg);
    check_err(ci, "forward y", check_rel_error(chg, ref_y, n * d_out), tol);
    check_true(ci, "forward wrote into y's gaps or past its end", mat_stray(&y) == 0);
    check_true(ci, "forward changed x", mat_unchanged(&x));
    unsigned char *first = xmalloc((size_t)y.total * y.es);
    memcpy(first, y.buf, (size_t)y.total * y.es);
    mat_reset(&y);
    REQUIRE_OK(mora_cpu_forward(p, Mf, x.buf, x.ld, y.buf, y.ld, n, scale, ws.ptr));
    check_true(ci, "forward not deterministic", memcmp(first, y.buf, (size_t)y.total * y.es) == 0);
    free(first);

    /* ---- backward: both outputs, then each alone (same bits), then twice (same bits) ---- */
    mat dx = mat_make(&rng, dt, n, d_in, d_in + gy + 2, rms(ref_dx, n * d_in), 0);
    const double dM_amp = rms(ref_dM, rr);
    float *dM = xmalloc((size_t)(rr + GUARD) * sizeof *dM), *dM_first = xmalloc((size_t)(rr + GUARD) * sizeof *dM);
    double *dM0 = xmalloc((size_t)rr * sizeof *dM0);
    for (int64_t i = 0; i < rr + GUARD; ++i) dM[i] = i < rr ? (float)(dM_amp * check_rng_uniform(&rng)) : 4321.0f;
    for (int64_t i = 0; i < rr; ++i) dM0[i] = dM[i];
    float *dM_start = xmalloc((size_t)(rr + GUARD) * sizeof *dM);
    memcpy(dM_start, dM, (size_t)(rr + GUARD) * sizeof *dM);

    REQUIRE_OK(mora_cpu_backward(p, Mf, x.buf, x.ld, dy.buf, dy.ld, dx.buf, dx.ld, dM, n, scale, ws.ptr));
    mat_change(&dx, chg);
    check_err(ci, "backward dx", check_rel_error(chg, ref_dx, n * d_in), tol);
    for (int64_t i = 0; i < rr; ++i) chg[i] = (double)dM[i] - dM0[i];
    check_err(ci, "backward dM", check_rel_error(chg, ref_dM, rr), 1e-5);
    check_true(ci, "backward wrote into dx's gaps or past its end", mat_stray(&dx) == 0);
    int dM_guard = 1;
    for (int64_t i = rr; i < rr + GUARD; ++i) dM_guard &= dM[i] == 4321.0f;
    check_true(ci, "backward wrote past dM", dM_guard);
    check_true(ci, "backward changed x or dy", mat_unchanged(&x) && mat_unchanged(&dy));
    unsigned char *dx_first = xmalloc((size_t)dx.total * dx.es);
    memcpy(dx_first, dx.buf, (size_t)dx.total * dx.es);
    memcpy(dM_first, dM, (size_t)(rr + GUARD) * sizeof *dM);

    mat_reset(&dx); /* dx alone */
    REQUIRE_OK(mora_cpu_backward(p, Mf, x.buf, x.ld, dy.buf, dy.ld, dx.buf, dx.ld, NULL, n, scale, ws.ptr));
    check_true(ci, "backward dx without dM differs", memcmp(dx_first, dx.buf, (size_t)dx.total * dx.es) == 0);
    memcpy(dM, dM_start, (size_t)(rr + GUARD) * sizeof *dM); /* dM alone */
    REQUIRE_OK(mora_cpu_backward(p, Mf, x.buf, x.ld, dy.buf, dy.ld, NULL, dx.ld, dM, n, scale, ws.ptr));
    check_true(ci, "backward dM without dx differs", memcmp(dM_first, dM, (size_t)(rr + GUARD) * sizeof *dM) == 0);
    mat_reset(&dx); /* both again */
    memcpy(dM, dM_start, (size_t)(rr + GUARD) * sizeof *dM);
    REQUIRE_OK(mora_cpu_backward(p, Mf, x.buf, x.ld, dy.buf, dy.ld, dx.buf, dx.ld, dM, n, scale, ws.ptr));
    check_true(ci, "backward not deterministic",
               memcmp(dx_first, dx.buf, (size_t)dx.total * dx.es) == 0 &&
                   memcmp(dM_first, dM, (size_t)(rr + GUARD) * sizeof *dM) == 0);
    REQUIRE_OK(mora_cpu_backward(p, Mf, NULL, 0, dy.buf, dy.ld, NULL, 0, NULL, n, scale, ws.ptr)); /* no-op */
    check_true(ci, "a call wrote past its workspace (or before it)", ws_intact(&ws));
    free(dx_first);

    /* ---- merge (W of the same dtype, row stride > d_in), sign alternating ---- */
    const float sign = (ci->seed & 1) ? -1.0f : 1.0f;
    double *ref_dW = xmalloc((size_t)(d_out * d_in) * sizeof *ref_dW);
    REQUIRE_OK(mora_ref_delta_weight(s, Md, ref_dW));
    mat W = mat_make(&rng, dt, d_out, d_in, d_in + gy, rms(ref_dW, d_out * d_in), 0);
    REQUIRE_OK(mora_cpu_merge(p, Mf, W.buf, W.ld, dt, sign));
    int64_t touched = 0, stray = 0, ref_outside = 0;
    double *got_c = xmalloc((size_t)(d_out * d_in) * sizeof *got_c), *ref_c = xmalloc((size_t)(d_out * d_in) * sizeof *ref_c);
    for (int64_t j = 0; j < d_out; ++j)
        for (int64_t q = 0; q < d_in; ++q) {
            const int64_t i = j * W.ld + q;
            if (delta_has(s, j, q)) {
                got_c[touched] = (double)mora_load_act(dt, W.buf, i) - W.val[j * d_in + q];
                ref_c[touched] = (double)sign * ref_dW[j * d_in + q];
                ++touched;
            } else {
                stray += memcmp(W.buf + (size_t)i * W.es, W.orig + (size_t)i * W.es, W.es) != 0;
                ref_outside += ref_dW[j * d_in + q] != 0.0;
            }
        }
    check_err(ci, "merge W", check_rel_error(got_c, ref_c, touched), tol);
    check_true(ci, "merge wrote entries outside ΔW's structure", stray == 0);
    check_true(ci, "merge wrote into W's gaps or past its end", mat_stray(&W) == 0);
    check_true(ci, "reference ΔW has entries outside the structural mask", ref_outside == 0);

    mat_free(&x), mat_free(&dy), mat_free(&y), mat_free(&dx), mat_free(&W);
    free(Mf), free(Md), free(dys), free(ref_y), free(ref_dx), free(ref_dM), free(chg), free(dM), free(dM_first);
    free(dM0), free(dM_start), free(ref_dW), free(got_c), free(ref_c), free(ws.mem);
    mora_cpu_plan_destroy(p);
}

/* A random valid shape of `op`; kind 0: d_in < r̂, 1: d_out < r̂, 2: d_out > B·r̂, 3: r̂ not dividing
 * d_in nor d_out, else free. Falls back to any valid shape when the op forbids the kind. */
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

/* The providers installed here, in turn: a case uses provider k mod (available ones). */
static int next_provider(int k) {
    int available[MORA_GEMM_PROVIDER_COUNT], count = 0;
    for (int p = 0; p < MORA_GEMM_PROVIDER_COUNT; ++p)
        if (mora_gemm_available((mora_gemm_provider)p)) available[count++] = p;
    return 1 + available[k % count]; /* mora_cpu_params.gemm: 1 + the provider (0: the default one) */
}

static void test_accuracy(void) {
    static const int64_t ns[5] = {1, 3, 7, 20, 129};
    static const int tiles[4] = {0, 1, 2, 5};
    int cases = 0;
    for (int op = 0; op < MORA_OP_COUNT; ++op) {
        for (int di = 0; di < MORA_DTYPE_COUNT; ++di) {
            for (int k = 0; k < 30; ++k) {
                case_info ci;
                ci.seed = 0x5eed0000ull + (uint64_t)op * 10000u + (uint64_t)di * 1000u + (uint64_t)k;
                check_rng rng = {ci.seed * 0x9E3779B97F4A7C15ull};
                ci.s = random_shape(&rng, (mora_op)op, k % 6);
                ci.dt = dtypes[di];
                ci.n = ns[k % 5];
                ci.prm.tile_tokens = tiles[k % 4];
                ci.prm.threads = 1 + k % 3;
                ci.prm.fold = (k / 3) % 2;
                ci.prm.gemm = next_provider(k);
                run_case(&ci);
                ++cases;
            }
            /* fixed edges: the smallest shapes, and larger ones whose n spans several tiles and workers */
            const int64_t fixed[][6] = {{1, 1, 1, 1, 0, 1},         {1, 80, 2, 3, 1, 3},        {80, 1, 2, 3, 2, 2},
                                        {37, 37, 37, 3, 0, 3},       {700, 900, 30, 70, 0, 2},   {1000, 257, 64, 301, 7, 3},
                                        {257, 1000, 48, 300, 0, 0},  {300, 200, 24, 200, 16, 2}, {513, 200, 100, 45, 4, 3}};
            for (size_t f = 0; f < sizeof fixed / sizeof fixed[0]; ++f) {
                case_info ci;
                ci.seed = 0xf1ed0000ull + (uint64_t)op * 1000u + (uint64_t)di * 100u + f;
                ci.s = (mora_shape){fixed[f][0], fixed[f][1], fixed[f][2], (mora_op)op};
                if (ci.s.op == MORA_OP_ROPE && ci.s.rhat % 2) ci.s.rhat = ci.s.rhat == 1 ? 2 : ci.s.rhat - 1;
                if (mora_shape_check(&ci.s) != MORA_OK) continue;
                ci.dt = dtypes[di];
                ci.n = fixed[f][3];
                ci.prm.tile_tokens = (int)fixed[f][4];
                ci.prm.threads = (int)fixed[f][5];
                for (int fold = 0; fold <= 1; ++fold) {
                    ci.prm.fold = fold;
                    ci.prm.gemm = next_provider((int)f + fold);
                    run_case(&ci);
                    ++cases;
                }
                continue;
                ++cases;
            }
        }
    }
    printf("accuracy: %d cases (op x dtype x shape x tile/threads)\n", cases);
    for (int di = 0; di < MORA_DTYPE_COUNT; ++di)
        printf("  worst relative error %s: %.3g (tolerance %.0e)\n", mora_dtype_name(dtypes[di]), worst_err[di],
               tolerance(dtypes[di]));
}

/* The error check itself can fail: a result off by one part in 1e4 is rejected at f32. */
static void test_checker_fails(void) {
    double ref[4] = {1, 2, 3, 4}, got[4] = {1, 2, 3, 4.001};
    CHECK(!(check_rel_error(got, ref, 4) <= tolerance(MORA_F32)));
    got[3] = NAN;
    CHECK(!(check_rel_error(got, ref, 4) <= 1.0));
}

/* NaN in x reaches y (token row 1 only) and dM; NaN in dy reaches dx (token row 2 only). */
static void test_nan(void) {
    for (int op = 0; op < MORA_OP_COUNT; ++op)
        for (int di = 0; di < MORA_DTYPE_COUNT; ++di) {
            const mora_dtype dt = dtypes[di];
            case_info ci = {7, {23, 31, 6, (mora_op)op}, dt, 3, {1, 3, 0, op % 2}};
            check_rng rng = {ci.seed};
            mora_cpu_plan *p;
            REQUIRE_OK(mora_cpu_plan_create(&ci.s, dt, &ci.prm, &p));
            wspace ws = ws_make(p, 3);
            float M[36];
            for (int i = 0; i < 36; ++i) M[i] = (float)check_rng_uniform(&rng);
            mat x = mat_make(&rng, dt, 3, 23, 23, 1.0, 1), y = mat_make(&rng, dt, 3, 31, 31, 1.0, 0);
            mat dy = mat_make(&rng, dt, 3, 31, 31, 1.0, 1), dx = mat_make(&rng, dt, 3, 23, 23, 1.0, 0);
            mora_store_act(dt, x.buf, 23 + 0, NAN);
            float dM[36] = {0};
            REQUIRE_OK(mora_cpu_forward(p, M, x.buf, 23, y.buf, 31, 3, 1.0f, ws.ptr));
            check_true(&ci, "NaN in x[1][0] did not reach y[1][0]", isnan(mora_load_act(dt, y.buf, 31)));
            int finite_other = 1;
            for (int j = 0; j < 31; ++j)
                finite_other &= isfinite(mora_load_act(dt, y.buf, j)) && isfinite(mora_load_act(dt, y.buf, 2 * 31 + j));
            check_true(&ci, "NaN in token 1 leaked into tokens 0 or 2", finite_other);
            REQUIRE_OK(mora_cpu_backward(p, M, x.buf, 23, dy.buf, 31, NULL, 23, dM, 3, 1.0f, ws.ptr));
            check_true(&ci, "NaN in x did not reach dM[0][0]", isnan(dM[0]));
            mora_store_act(dt, dy.buf, 2 * 31 + 0, NAN);
            REQUIRE_OK(mora_cpu_backward(p, M, x.buf, 23, dy.buf, 31, dx.buf, 23, NULL, 3, 1.0f, ws.ptr));
            int nan_row2 = 0, finite_row0 = 1;
            for (int q = 0; q < 23; ++q) {
                nan_row2 |= isnan(mora_load_act(dt, dx.buf, 2 * 23 + q));
                finite_row0 &= isfinite(mora_load_act(dt, dx.buf, q));
            }
            check_true(&ci, "NaN in dy[2][0] did not reach dx[2]", nan_row2);
            check_true(&ci, "NaN in dy[2] leaked into dx[0]", finite_row0);
            mat_free(&x), mat_free(&y), mat_free(&dy), mat_free(&dx), free(ws.mem);
            mora_cpu_plan_destroy(p);
        }
}

/* Plan creation rejects what it must; n = 0 touches nothing. */
static void test_plan_errors(void) {
    mora_cpu_plan *p = (mora_cpu_plan *)0x1;
    const mora_shape odd = {6, 6, 3, MORA_OP_ROPE};
    CHECK_STATUS(mora_cpu_plan_create(&odd, MORA_F32, NULL, &p), MORA_E_ODD_RHAT);
    const mora_shape big = {2, 6, 3, MORA_OP_TRUNCATE};
    CHECK_STATUS(mora_cpu_plan_create(&big, MORA_F32, NULL, &p), MORA_E_CONSTRAINT);
    const mora_shape ok = {3, 3, 3, MORA_OP_SHARE};
    CHECK_STATUS(mora_cpu_plan_create(&ok, (mora_dtype)7, NULL, &p), MORA_E_UNKNOWN_DTYPE);
    const mora_cpu_params bad_tile = {-1, 0, 0, 0}, bad_threads = {0, -2, 0, 0}, many = {0, 100000, 0, 0},
                          bad_gemm = {0, 0, 7, 0}, default_gemm = {0, 0, 0, 1};
    CHECK_STATUS(mora_cpu_plan_create(&ok, MORA_F32, &bad_tile, &p), MORA_E_PARAM);
    CHECK_STATUS(mora_cpu_plan_create(&ok, MORA_F32, &bad_threads, &p), MORA_E_PARAM);
    CHECK_STATUS(mora_cpu_plan_create(&ok, MORA_F32, &many, &p), MORA_E_PARAM);
    CHECK_STATUS(mora_cpu_plan_create(&ok, MORA_F32, &bad_gemm, &p), MORA_E_PARAM);
    REQUIRE_OK(mora_cpu_plan_create(&ok, MORA_F32, &default_gemm, &p)); /* the default provider: always one */
    CHECK_EQ_INT(mora_cpu_plan_params(p).gemm, 1 + (int)mora_gemm_default());
    mora_cpu_plan_destroy(p);
    p = (mora_cpu_plan *)0x1;
    /* a provider that is not installed is refused with the reason, never run */
    for (int g = 0; g < MORA_GEMM_PROVIDER_COUNT; ++g) {
        if (mora_gemm_available((mora_gemm_provider)g)) continue;
        const mora_cpu_params absent = {0, 0, 1 + g, 0};
        CHECK_STATUS(mora_cpu_plan_create(&ok, MORA_F32, &absent, &p), MORA_E_UNSUPPORTED);
        CHECK(strstr(mora_last_error(), mora_gemm_name((mora_gemm_provider)g)) != NULL);
        printf("provider %s absent here: %s\n", mora_gemm_name((mora_gemm_provider)g), mora_gemm_why_absent((mora_gemm_provider)g));
    }
    CHECK_STATUS(mora_cpu_plan_create(NULL, MORA_F32, NULL, &p), MORA_E_NULL);
    CHECK(p == (mora_cpu_plan *)0x1); /* untouched on failure */
    mora_cpu_plan_destroy(NULL);
    REQUIRE_OK(mora_cpu_plan_create(&ok, MORA_F32, NULL, &p));
    float M[9] = {0};
    CHECK_STATUS(mora_cpu_forward(p, M, NULL, 3, NULL, 3, 0, 1.0f, NULL), MORA_OK);
    CHECK_STATUS(mora_cpu_backward(p, M, NULL, 3, NULL, 3, NULL, 3, NULL, 0, 1.0f, NULL), MORA_OK);
    CHECK(mora_cpu_workspace_bytes(p, 0) > 0);
    CHECK(mora_cpu_workspace_bytes(p, 1000) >= mora_cpu_workspace_bytes(p, 10));
    mora_cpu_plan_destroy(p);
}

/* dM's error against float64 does not grow with n: n = 4096 is held to at most 2x the error at
 * n = 256 (the old one-thread kernel, which summed every row into one accumulator, grew 3.8x over the
 * same 16x). Inputs are positive so that rounding errors of a running sum do not cancel. */
static double dm_error(const mora_shape *s, int threads, int fold, int64_t n) {
    const int64_t rr = s->rhat * s->rhat;
    check_rng rng = {42};
    double *xd = xmalloc((size_t)(n * s->d_in) * sizeof *xd), *dyd = xmalloc((size_t)(n * s->d_out) * sizeof *dyd);
    float *xf = xmalloc((size_t)(n * s->d_in) * sizeof *xf), *dyf = xmalloc((size_t)(n * s->d_out) * sizeof *dyf);
    double *Md = xmalloc((size_t)rr * sizeof *Md), *ref = calloc((size_t)rr, sizeof *ref), *got = xmalloc((size_t)rr * sizeof *got);
    float *Mf = xmalloc((size_t)rr * sizeof *Mf), *dM = calloc((size_t)rr, sizeof *dM);
    for (int64_t i = 0; i < n * s->d_in; ++i) xd[i] = xf[i] = (float)(0.5 + 0.5 * check_rng_uniform(&rng));
    for (int64_t i = 0; i < n * s->d_out; ++i) dyd[i] = dyf[i] = (float)(0.5 + 0.5 * check_rng_uniform(&rng));
    for (int64_t i = 0; i < rr; ++i) Md[i] = Mf[i] = (float)check_rng_uniform(&rng);
    REQUIRE_OK(mora_ref_backward(s, Md, xd, dyd, NULL, ref, n));
    const mora_cpu_params prm = {0, threads, 0, fold};
    mora_cpu_plan *p;
    REQUIRE_OK(mora_cpu_plan_create(s, MORA_F32, &prm, &p));
    void *ws = xmalloc(mora_cpu_workspace_bytes(p, n));
    REQUIRE_OK(mora_cpu_backward(p, Mf, xf, s->d_in, dyf, s->d_out, NULL, 0, dM, n, 1.0f, ws));
    for (int64_t i = 0; i < rr; ++i) got[i] = dM[i];
    const double err = check_rel_error(got, ref, rr);
    free(xd), free(dyd), free(xf), free(dyf), free(Md), free(ref), free(got), free(Mf), free(dM), free(ws);
    mora_cpu_plan_destroy(p);
    return err;
}

static void test_dm_error_growth(void) {
    const mora_shape shapes[2] = {{512, 512, 64, MORA_OP_ROPE}, {256, 256, 48, MORA_OP_SHARE}};
    for (int si = 0; si < 2; ++si)
        for (int threads = 1; threads <= 2; ++threads)
            for (int fold = 0; fold <= (shapes[si].op == MORA_OP_ROPE); ++fold) {
                const double e256 = dm_error(&shapes[si], threads, fold, 256),
                             e4096 = dm_error(&shapes[si], threads, fold, 4096);
                printf("dM error %s d=%lld rhat=%lld threads=%d%s: n=256 %.3g, n=4096 %.3g (x%.2f)\n",
                       mora_op_name(shapes[si].op), (long long)shapes[si].d_in, (long long)shapes[si].rhat, threads,
                       fold ? " folded" : "", e256, e4096, e4096 / e256);
                CHECK(e256 <= 1e-6);
                CHECK(e4096 <= 2.0 * e256);
            }
}

/* Four threads call one plan at once, each with its own workspace and outputs; each result equals
 * the same call made alone, bit for bit (run this under -DMORA_SANITIZE=thread for the data races). */
typedef struct shared_call {
    const mora_cpu_plan *p;
    const mora_shape *s;
    const float *M;
    const float *x, *dy;
    int64_t n;
    float *y, *dx, *dM;
    void *ws;
} shared_call;

static void *shared_call_main(void *arg) {
    shared_call *c = arg;
    for (int rep = 0; rep < 3; ++rep) {
        memset(c->y, 0, (size_t)(c->n * c->s->d_out) * sizeof *c->y);
        memset(c->dx, 0, (size_t)(c->n * c->s->d_in) * sizeof *c->dx);
        memset(c->dM, 0, (size_t)(c->s->rhat * c->s->rhat) * sizeof *c->dM);
        if (mora_cpu_forward(c->p, c->M, c->x, c->s->d_in, c->y, c->s->d_out, c->n, 0.5f, c->ws) != MORA_OK ||
            mora_cpu_backward(c->p, c->M, c->x, c->s->d_in, c->dy, c->s->d_out, c->dx, c->s->d_in, c->dM, c->n, 2.0f,
                              c->ws) != MORA_OK)
            return (void *)1;
    }
    return NULL;
}

static void test_shared_plan(void) {
    const mora_shape s = {300, 250, 40, MORA_OP_ROPE};
    const int64_t n = 97, rr = s.rhat * s.rhat;
    const mora_cpu_params prm = {8, 2, 0, 1};
    mora_cpu_plan *p;
    REQUIRE_OK(mora_cpu_plan_create(&s, MORA_F32, &prm, &p));
    check_rng rng = {77};
    float *x = xmalloc((size_t)(n * s.d_in) * sizeof *x), *dy = xmalloc((size_t)(n * s.d_out) * sizeof *dy);
    float *M = xmalloc((size_t)rr * sizeof *M);
    for (int64_t i = 0; i < n * s.d_in; ++i) x[i] = (float)check_rng_uniform(&rng);
    for (int64_t i = 0; i < n * s.d_out; ++i) dy[i] = (float)check_rng_uniform(&rng);
    for (int64_t i = 0; i < rr; ++i) M[i] = (float)check_rng_uniform(&rng);
    shared_call calls[5];
    for (int c = 0; c < 5; ++c) {
        calls[c] = (shared_call){p, &s, M, x, dy, n, xmalloc((size_t)(n * s.d_out) * sizeof(float)),
                                 xmalloc((size_t)(n * s.d_in) * sizeof(float)), xmalloc((size_t)rr * sizeof(float)),
                                 xmalloc(mora_cpu_workspace_bytes(p, n))};
    }
    CHECK(shared_call_main(&calls[4]) == NULL); /* alone: the expected bits */
    pthread_t th[4];
    for (int c = 0; c < 4; ++c) REQUIRE_OK(pthread_create(&th[c], NULL, shared_call_main, &calls[c]) == 0 ? MORA_OK : MORA_E_ARG);
    for (int c = 0; c < 4; ++c) {
        void *ret;
        pthread_join(th[c], &ret);
        CHECK(ret == NULL);
        CHECK(memcmp(calls[c].y, calls[4].y, (size_t)(n * s.d_out) * sizeof(float)) == 0);
        CHECK(memcmp(calls[c].dx, calls[4].dx, (size_t)(n * s.d_in) * sizeof(float)) == 0);
        CHECK(memcmp(calls[c].dM, calls[4].dM, (size_t)rr * sizeof(float)) == 0);
    }
    for (int c = 0; c < 5; ++c) free(calls[c].y), free(calls[c].dx), free(calls[c].dM), free(calls[c].ws);
    free(x), free(dy), free(M);
    mora_cpu_plan_destroy(p);
}

static double seconds(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* oneDNN's GEMM runs on the calling worker alone (cpu_gemm.c sets its OpenMP team to 1 around each
 * call) and leaves the caller's OpenMP team size as it was. */
static void test_onednn_threads(void) {
    if (!mora_gemm_available(MORA_GEMM_ONEDNN)) {
        printf("oneDNN threads: not checked (%s)\n", mora_gemm_why_absent(MORA_GEMM_ONEDNN));
        return;
    }
    void *omp = dlopen("libgomp.so.1", RTLD_NOW | RTLD_NOLOAD); /* Debian's libdnnl2 runs on GNU OpenMP */
    if (!omp) {
        printf("oneDNN threads: not checked (oneDNN was not built on libgomp.so.1)\n");
        return;
    }
    void (*set)(int) = (void (*)(int))dlsym(omp, "omp_set_num_threads");
    int (*get)(void) = (int (*)(void))dlsym(omp, "omp_get_max_threads");
    REQUIRE_OK(set && get ? MORA_OK : MORA_E_NOT_FOUND);
    const int before = get();
    set(3);
    float A[4 * 3], B[3 * 2], C[4 * 2] = {0};
    for (int i = 0; i < 12; ++i) A[i] = (float)i;
    for (int i = 0; i < 6; ++i) B[i] = (float)(i - 2);
    mora_gemm(MORA_GEMM_ONEDNN, 0, 0, 4, 2, 3, 1.0f, A, 3, B, 2, 0.0f, C, 2);
    CHECK_EQ_INT(get(), 3);
    CHECK_NEAR(C[7], 9 * -1 + 10 * 1 + 11 * 3, 1e-4); /* row 3 of A · column 1 of B = (-1, 1, 3) */
    set(before);
    dlclose(omp);
}

int main(void) {
    const double t0 = seconds();
    test_onednn_threads();
    test_checker_fails();
    test_plan_errors();
    test_accuracy();
    test_nan();
    test_dm_error_growth();
    test_shared_plan();
    printf("total %.2f s\n", seconds() - t0);
    return check_report();
}
