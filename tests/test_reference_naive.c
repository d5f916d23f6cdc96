/* The float64 reference against an independent, deliberately naive transcription of the operator
 * definitions (docs/operators.md), on many seeded random shapes for every operator; then the
 * properties that tie forward, backward and ΔW together:
 *
 *   forward(x) == x·ΔWᵀ,   ΔW[:, c] == forward(e_c),   <forward(x), dy> == <x, dx>,
 *   dM == central finite differences of L(M) = <forward_M(x), dy>.
 *
 * The transcription builds x_pad, the compressed vector and the output literally, one operator at a
 * time. Its backward is the transpose of the dense matrices of its own comp and decomp (built by
 * pushing unit vectors through them), so it shares nothing with the reference's tap tables.
 *
 * On a failure the seed, operator and shape are printed after the failed check.
 */
#include "check.h"

typedef struct naive {
    mora_shape s;
    int64_t B;  /* ceil(d_in / r̂) */
    int64_t P;  /* B·r̂, length of x_pad */
    int64_t nb; /* blocks of c and h: B for reshape and rope, else 1 */
    int64_t K;  /* nb·r̂ entries of c and h */
} naive;

static naive naive_make(mora_shape s) {
    naive g;
    g.s = s;
    g.B = (s.d_in + s.rhat - 1) / s.rhat;
    g.P = g.B * s.rhat;
    g.nb = (s.op == MORA_OP_RESHAPE || s.op == MORA_OP_ROPE) ? g.B : 1;
    g.K = g.nb * s.rhat;
    return g;
}

static void *xcalloc(int64_t count, size_t size) {
    void *p = calloc((size_t)(count > 0 ? count : 1), size);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* Split [0, length) into `runs` contiguous runs: the first (length mod runs) have ⌊length/runs⌋ + 1
 * elements, the rest ⌊length/runs⌋. Writes the run index of every position. */
static void naive_runs(int64_t length, int64_t runs, int64_t *run_of) {
    const int64_t base = length / runs, longer = length % runs;
    int64_t pos = 0;
    for (int64_t g = 0; g < runs; ++g) {
        const int64_t len = base + (g < longer ? 1 : 0);
        for (int64_t e = 0; e < len; ++e) run_of[pos++] = g;
    }
    if (pos != length) {
        fprintf(stderr, "naive_runs: covered %lld of %lld\n", (long long)pos, (long long)length);
        exit(2);
    }
}

/* c[K] = f_comp(x) */
static void naive_comp(const naive *g, const double *x, double *c) {
    const int64_t d_in = g->s.d_in, r = g->s.rhat;
    double *x_pad = xcalloc(g->P, sizeof *x_pad);
    for (int64_t p = 0; p < g->P; ++p) x_pad[p] = x[p % d_in]; /* wrap, never zeros */
    for (int64_t k = 0; k < g->K; ++k) c[k] = 0.0;

    switch (g->s.op) {
    case MORA_OP_TRUNCATE:
        for (int64_t i = 0; i < r; ++i) c[i] = x[i];
        break;
    case MORA_OP_SHARE:
    case MORA_OP_SHARE_INTERLEAVE:
        for (int64_t i = 0; i < r; ++i)
            for (int64_t p = 0; p < g->P; ++p)
                if (p % r == i) c[i] += x_pad[p];
        break;
    case MORA_OP_GROUP:
    case MORA_OP_GROUP_TILE: {
        int64_t *run_of = xcalloc(d_in, sizeof *run_of);
        naive_runs(d_in, r, run_of);
        for (int64_t p = 0; p < d_in; ++p) c[run_of[p]] += x[p];
        free(run_of);
        break;
    }
    case MORA_OP_RESHAPE:
        for (int64_t t = 0; t < g->B; ++t)
            for (int64_t i = 0; i < r; ++i) c[t * r + i] = x_pad[t * r + i];
        break;
    case MORA_OP_ROPE: {
        const int64_t h = r / 2;
        for (int64_t t = 0; t < g->B; ++t) {
            const double *v = x_pad + t * r;
            for (int64_t j = 0; j < h; ++j) {
                const double theta = (double)t / pow(10000.0, 2.0 * (double)j / (double)r);
                c[t * r + j] = v[j] * cos(theta) - v[j + h] * sin(theta);
                c[t * r + j + h] = v[j + h] * cos(theta) + v[j] * sin(theta);
            }
        }
        break;
    }
    }
    free(x_pad);
}

/* y[d_out] = f_decomp(h[K]) */
static void naive_decomp(const naive *g, const double *hv, double *y) {
    const int64_t d_out = g->s.d_out, r = g->s.rhat;
    switch (g->s.op) {
    case MORA_OP_TRUNCATE:
        for (int64_t j = 0; j < d_out; ++j) y[j] = j < r ? hv[j] : 0.0;
        break;
    case MORA_OP_SHARE:
    case MORA_OP_GROUP_TILE:
        for (int64_t j = 0; j < d_out; ++j) y[j] = hv[j % r];
        break;
    case MORA_OP_GROUP:
    case MORA_OP_SHARE_INTERLEAVE: {
        int64_t *run_of = xcalloc(d_out, sizeof *run_of);
        naive_runs(d_out, r, run_of);
        for (int64_t j = 0; j < d_out; ++j) y[j] = hv[run_of[j]];
        free(run_of);
        break;
    }
    case MORA_OP_RESHAPE:
    case MORA_OP_ROPE:
        for (int64_t j = 0; j < d_out; ++j) y[j] = hv[j % (g->B * r)];
        break;
    }
}

/* h_t = M c_t for every block */
static void naive_apply_m(const naive *g, const double *M, const double *c, double *hv) {
    const int64_t r = g->s.rhat;
    for (int64_t t = 0; t < g->nb; ++t)
        for (int64_t a = 0; a < r; ++a) {
            double acc = 0.0;
            for (int64_t b = 0; b < r; ++b) acc += M[a * r + b] * c[t * r + b];
            hv[t * r + a] = acc;
        }
}

/* y[n][d_out] += scale · f_decomp(M f_comp(x)) */
static void naive_forward(const naive *g, const double *M, const double *x, double *y, int64_t n, double scale) {
    double *c = xcalloc(g->K, sizeof *c), *hv = xcalloc(g->K, sizeof *hv), *out = xcalloc(g->s.d_out, sizeof *out);
    for (int64_t row = 0; row < n; ++row) {
        naive_comp(g, x + row * g->s.d_in, c);
        naive_apply_m(g, M, c, hv);
        naive_decomp(g, hv, out);
        for (int64_t j = 0; j < g->s.d_out; ++j) y[row * g->s.d_out + j] += scale * out[j];
    }
    free(c), free(hv), free(out);
}

/* Dense matrices of the transcription: C[K][d_in] (column p = comp(e_p)), D[d_out][K] (column k = decomp(e_k)). */
static void naive_dense(const naive *g, double *C, double *D) {
    const int64_t d_in = g->s.d_in, d_out = g->s.d_out, K = g->K;
    double *e = xcalloc(d_in > K ? d_in : K, sizeof *e), *col = xcalloc(d_out > K ? d_out : K, sizeof *col);
    for (int64_t p = 0; p < d_in; ++p) {
        e[p] = 1.0;
        naive_comp(g, e, col);
        for (int64_t k = 0; k < K; ++k) C[k * d_in + p] = col[k];
        e[p] = 0.0;
    }
    for (int64_t k = 0; k < K; ++k) {
        e[k] = 1.0;
        naive_decomp(g, e, col);
        for (int64_t j = 0; j < d_out; ++j) D[j * K + k] = col[j];
        e[k] = 0.0;
    }
    free(e), free(col);
}

/* ΔW = D · blockdiag(M) · C */
static void naive_delta_weight(const naive *g, const double *C, const double *D, const double *M, double *dW) {
    const int64_t d_in = g->s.d_in, d_out = g->s.d_out, K = g->K, r = g->s.rhat;
    double *MC = xcalloc(K * d_in, sizeof *MC);
    for (int64_t t = 0; t < g->nb; ++t)
        for (int64_t a = 0; a < r; ++a)
            for (int64_t p = 0; p < d_in; ++p) {
                double acc = 0.0;
                for (int64_t b = 0; b < r; ++b) acc += M[a * r + b] * C[(t * r + b) * d_in + p];
                MC[(t * r + a) * d_in + p] = acc;
            }
    for (int64_t j = 0; j < d_out; ++j)
        for (int64_t p = 0; p < d_in; ++p) {
            double acc = 0.0;
            for (int64_t k = 0; k < K; ++k) acc += D[j * K + k] * MC[k * d_in + p];
            dW[j * d_in + p] = acc;
        }
    free(MC);
}

/* Backward as the transposes of the dense maps: g = Dᵀ dy, c = C x, dM += Σ_t g_t c_tᵀ, dx += Cᵀ blockdiag(Mᵀ) g. */
static void naive_backward(const naive *g, const double *C, const double *D, const double *M, const double *x,
                           const double *dy, double *dx, double *dM, int64_t n) {
    const int64_t d_in = g->s.d_in, d_out = g->s.d_out, K = g->K, r = g->s.rhat;
    double *gv = xcalloc(K, sizeof *gv), *c = xcalloc(K, sizeof *c), *u = xcalloc(K, sizeof *u);
    for (int64_t row = 0; row < n; ++row) {
        for (int64_t k = 0; k < K; ++k) {
            double acc = 0.0, acc_c = 0.0;
            for (int64_t j = 0; j < d_out; ++j) acc += D[j * K + k] * dy[row * d_out + j];
            for (int64_t p = 0; p < d_in; ++p) acc_c += C[k * d_in + p] * x[row * d_in + p];
            gv[k] = acc;
            c[k] = acc_c;
        }
        for (int64_t t = 0; t < g->nb; ++t)
            for (int64_t a = 0; a < r; ++a)
                for (int64_t b = 0; b < r; ++b) dM[a * r + b] += gv[t * r + a] * c[t * r + b];
        for (int64_t t = 0; t < g->nb; ++t)
            for (int64_t b = 0; b < r; ++b) {
                double acc = 0.0;
                for (int64_t a = 0; a < r; ++a) acc += M[a * r + b] * gv[t * r + a];
                u[t * r + b] = acc;
            }
        for (int64_t p = 0; p < d_in; ++p) {
            double acc = 0.0;
            for (int64_t k = 0; k < K; ++k) acc += C[k * d_in + p] * u[k];
            dx[row * d_in + p] += acc;
        }
    }
    free(gv), free(c), free(u);
}

static char context[256];

static void set_context(uint64_t seed, const mora_shape *s, int64_t n) {
    snprintf(context, sizeof context, "seed=%llu op=%s d_in=%lld d_out=%lld rhat=%lld n=%lld",
             (unsigned long long)seed, mora_op_name(s->op), (long long)s->d_in, (long long)s->d_out,
             (long long)s->rhat, (long long)n);
}

static void report_context(int failures_before, const char *what) {
    if (check_failures_ > failures_before) fprintf(stderr, "  %s: %s\n", what, context);
}

/* Which shape classes each operator has been exercised on. */
enum { COV_DIN_LT_R, COV_DOUT_LT_R, COV_DOUT_GT_BR, COV_DOUT_LT_BR, COV_NONMULT, COV_MULTIPLE, COV_COUNT };
static int coverage[MORA_OP_COUNT][COV_COUNT];

static void note_coverage(const mora_shape *s) {
    const int64_t B = (s->d_in + s->rhat - 1) / s->rhat;
    int *cv = coverage[s->op];
    cv[COV_DIN_LT_R] += s->d_in < s->rhat;
    cv[COV_DOUT_LT_R] += s->d_out < s->rhat;
    cv[COV_DOUT_GT_BR] += s->d_out > B * s->rhat;
    cv[COV_DOUT_LT_BR] += s->d_out < B * s->rhat;
    cv[COV_NONMULT] += s->d_in % s->rhat != 0;
    cv[COV_MULTIPLE] += s->d_in % s->rhat == 0 && s->d_in > s->rhat;
}

/* One shape against the transcription: forward (with accumulation and scale), backward, ΔW. */
static void compare_with_transcription(uint64_t seed, mora_shape s) {
    check_rng rng = {seed};
    const naive g = naive_make(s);
    const int64_t n = check_rng_int(&rng, 1, 3), d_in = s.d_in, d_out = s.d_out, r = s.rhat;
    const double scale = (seed % 3 == 0) ? -0.75 : 1.0;
    set_context(seed, &s, n);
    note_coverage(&s);

    double *M = xcalloc(r * r, sizeof *M), *x = xcalloc(n * d_in, sizeof *x), *dy = xcalloc(n * d_out, sizeof *dy);
    double *y = xcalloc(n * d_out, sizeof *y), *y_ref = xcalloc(n * d_out, sizeof *y_ref);
    double *dx = xcalloc(n * d_in, sizeof *dx), *dx_ref = xcalloc(n * d_in, sizeof *dx_ref);
    double *dM = xcalloc(r * r, sizeof *dM), *dM_ref = xcalloc(r * r, sizeof *dM_ref);
    double *C = xcalloc(g.K * d_in, sizeof *C), *D = xcalloc(d_out * g.K, sizeof *D);
    double *dW = xcalloc(d_out * d_in, sizeof *dW), *dW_ref = xcalloc(d_out * d_in, sizeof *dW_ref);
    check_fill(&rng, M, r * r);
    check_fill(&rng, x, n * d_in);
    check_fill(&rng, dy, n * d_out);
    check_fill(&rng, y, n * d_out); /* outputs start non-zero: they must accumulate */
    check_fill(&rng, dx, n * d_in);
    check_fill(&rng, dM, r * r);
    memcpy(y_ref, y, (size_t)(n * d_out) * sizeof *y);
    memcpy(dx_ref, dx, (size_t)(n * d_in) * sizeof *dx);
    memcpy(dM_ref, dM, (size_t)(r * r) * sizeof *dM);

    const int before = check_failures_;
    naive_forward(&g, M, x, y_ref, n, scale);
    CHECK_STATUS(mora_ref_forward(&s, M, x, y, n, scale), MORA_OK);
    CHECK_REL(y, y_ref, n * d_out, 1e-13);

    naive_dense(&g, C, D);
    naive_backward(&g, C, D, M, x, dy, dx_ref, dM_ref, n);
    CHECK_STATUS(mora_ref_backward(&s, M, x, dy, dx, dM, n), MORA_OK);
    CHECK_REL(dx, dx_ref, n * d_in, 1e-13);
    CHECK_REL(dM, dM_ref, r * r, 1e-13);

    naive_delta_weight(&g, C, D, M, dW_ref);
    CHECK_STATUS(mora_ref_delta_weight(&s, M, dW), MORA_OK);
    CHECK_REL(dW, dW_ref, d_out * d_in, 1e-13);
    report_context(before, "transcription");

    free(M), free(x), free(dy), free(y), free(y_ref), free(dx), free(dx_ref), free(dM), free(dM_ref);
    free(C), free(D), free(dW), free(dW_ref);
}

/* The properties, using only the reference: x·ΔWᵀ, ΔW columns, adjoint identity, finite differences. */
static void check_properties(uint64_t seed, mora_shape s) {
    check_rng rng = {seed ^ 0xA5A5A5A5ull};
    const int64_t n = check_rng_int(&rng, 1, 4), d_in = s.d_in, d_out = s.d_out, r = s.rhat;
    set_context(seed, &s, n);

    double *M = xcalloc(r * r, sizeof *M), *x = xcalloc(n * d_in, sizeof *x), *dy = xcalloc(n * d_out, sizeof *dy);
    double *y = xcalloc(n * d_out, sizeof *y), *y_w = xcalloc(n * d_out, sizeof *y_w);
    double *dx = xcalloc(n * d_in, sizeof *dx), *dM = xcalloc(r * r, sizeof *dM);
    double *dW = xcalloc(d_out * d_in, sizeof *dW), *e = xcalloc(d_in, sizeof *e), *col = xcalloc(d_out, sizeof *col);
    check_fill(&rng, M, r * r);
    check_fill(&rng, x, n * d_in);
    check_fill(&rng, dy, n * d_out);

    const int before = check_failures_;
    CHECK_STATUS(mora_ref_forward(&s, M, x, y, n, 1.0), MORA_OK);
    CHECK_STATUS(mora_ref_delta_weight(&s, M, dW), MORA_OK);

    /* forward(x) == x·ΔWᵀ */
    for (int64_t row = 0; row < n; ++row)
        for (int64_t j = 0; j < d_out; ++j) {
            double acc = 0.0;
            for (int64_t p = 0; p < d_in; ++p) acc += x[row * d_in + p] * dW[j * d_in + p];
            y_w[row * d_out + j] = acc;
        }
    CHECK_REL(y, y_w, n * d_out, 1e-12);
    report_context(before, "forward == x·ΔWᵀ");

    /* ΔW[:, c] == forward(e_c), for a few columns (all of them when d_in is small) */
    int b2 = check_failures_;
    const int64_t step = d_in <= 16 ? 1 : d_in / 7 + 1;
    for (int64_t c = 0; c < d_in; c += step) {
        for (int64_t j = 0; j < d_out; ++j) col[j] = 0.0;
        e[c] = 1.0;
        CHECK_STATUS(mora_ref_forward(&s, M, e, col, 1, 1.0), MORA_OK);
        e[c] = 0.0;
        double err = 0.0, norm = 0.0;
        for (int64_t j = 0; j < d_out; ++j) {
            err += (col[j] - dW[j * d_in + c]) * (col[j] - dW[j * d_in + c]);
            norm += col[j] * col[j];
        }
        ++check_count_;
        if (!(err <= 1e-26 * (norm > 1.0 ? norm : 1.0)))
            CHECK_FAIL_("ΔW column %lld != forward(e_%lld): squared error %.3g", (long long)c, (long long)c, err);
    }
    report_context(b2, "ΔW columns");

    /* <forward(x), dy> == <x, dx> */
    b2 = check_failures_;
    CHECK_STATUS(mora_ref_backward(&s, M, x, dy, dx, dM, n), MORA_OK);
    double lhs = 0.0, rhs = 0.0, mag = 0.0;
    for (int64_t i = 0; i < n * d_out; ++i) lhs += y[i] * dy[i], mag += fabs(y[i] * dy[i]);
    for (int64_t i = 0; i < n * d_in; ++i) rhs += x[i] * dx[i], mag += fabs(x[i] * dx[i]);
    CHECK_NEAR(lhs, rhs, 1e-12 * (mag > 1.0 ? mag : 1.0));
    report_context(b2, "adjoint identity");

    /* dM[a][b] == (L(M + εE_ab) − L(M − εE_ab)) / 2ε with L(M) = <forward_M(x), dy> (exact up to rounding:
     * forward is linear in M). Perturbs M[0][0], M[r̂−1][r̂−1] and a few random entries. */
    b2 = check_failures_;
    const double eps = 1e-3;
    for (int trial = 0; trial < 5; ++trial) {
        const int64_t a = trial == 0 ? 0 : trial == 1 ? r - 1 : check_rng_int(&rng, 0, r - 1);
        const int64_t b = trial == 0 ? 0 : trial == 1 ? r - 1 : check_rng_int(&rng, 0, r - 1);
        double L[2];
        for (int side = 0; side < 2; ++side) {
            const double saved = M[a * r + b];
            M[a * r + b] = saved + (side == 0 ? eps : -eps);
            for (int64_t i = 0; i < n * d_out; ++i) y_w[i] = 0.0;
            CHECK_STATUS(mora_ref_forward(&s, M, x, y_w, n, 1.0), MORA_OK);
            M[a * r + b] = saved;
            L[side] = 0.0;
            for (int64_t i = 0; i < n * d_out; ++i) L[side] += y_w[i] * dy[i];
        }
        const double fd = (L[0] - L[1]) / (2.0 * eps), want = dM[a * r + b];
        ++check_count_;
        if (!(fabs(fd - want) <= 1e-7 * (fabs(want) > 1.0 ? fabs(want) : 1.0)))
            CHECK_FAIL_("dM[%lld][%lld] = %.17g but finite difference gives %.17g", (long long)a, (long long)b, want,
                        fd);
    }
    report_context(b2, "dM finite differences");

    free(M), free(x), free(dy), free(y), free(y_w), free(dx), free(dM), free(dW), free(e), free(col);
}

/* Fixed shapes that hit every class: (d_in, d_out, r̂). */
static const int64_t fixed_shapes[][3] = {
    {5, 3, 2},   {3, 5, 2},   {2, 7, 4},   {7, 2, 4},    {1, 1, 1},   {1, 9, 2},    {9, 1, 2},
    {12, 12, 4}, {13, 30, 4}, {13, 10, 4}, {6, 6, 6},    {4, 4, 8},   {17, 5, 16},  {16, 16, 16},
    {33, 100, 10}, {100, 33, 10}, {8, 24, 4}, {24, 8, 4}, {30, 7, 6},  {7, 30, 6},   {3, 3, 2},
};

/* A random shape valid for `op`, small enough for the dense transcription. */
static mora_shape random_shape(check_rng *rng, mora_op op, int64_t max_dim, int64_t max_rhat) {
    for (;;) {
        mora_shape s;
        s.op = op;
        s.d_in = check_rng_int(rng, 1, max_dim);
        s.d_out = check_rng_int(rng, 1, max_dim);
        s.rhat = op == MORA_OP_ROPE ? 2 * check_rng_int(rng, 1, max_rhat / 2) : check_rng_int(rng, 1, max_rhat);
        /* a quarter of the draws make r̂ larger than a side, where the op allows it */
        if (check_rng_int(rng, 0, 3) == 0) s.d_in = check_rng_int(rng, 1, s.rhat);
        if (check_rng_int(rng, 0, 3) == 0) s.d_out = check_rng_int(rng, 1, s.rhat);
        if (mora_shape_check(&s) == MORA_OK) return s;
    }
}

int main(void) {
    int tested[MORA_OP_COUNT] = {0};
    for (int op = 0; op < MORA_OP_COUNT; ++op) {
        for (size_t i = 0; i < sizeof fixed_shapes / sizeof fixed_shapes[0]; ++i) {
            const mora_shape s = {fixed_shapes[i][0], fixed_shapes[i][1], fixed_shapes[i][2], (mora_op)op};
            if (mora_shape_check(&s) != MORA_OK) continue;
            const uint64_t seed = 1000u * (uint64_t)op + i;
            compare_with_transcription(seed, s);
            check_properties(seed, s);
            ++tested[op];
        }
        check_rng rng = {0xC0FFEEull + (uint64_t)op};
        for (int i = 0; i < 400; ++i) {
            const mora_shape s = random_shape(&rng, (mora_op)op, 40, 16);
            compare_with_transcription(100000u * (uint64_t)(op + 1) + (uint64_t)i, s);
            ++tested[op];
        }
        /* Properties on larger shapes (no dense transcription needed). */
        for (int i = 0; i < 60; ++i) {
            const mora_shape s = random_shape(&rng, (mora_op)op, 300, 64);
            check_properties(200000u * (uint64_t)(op + 1) + (uint64_t)i, s);
        }
    }

    /* Every operator met every shape class it allows. */
    for (int op = 0; op < MORA_OP_COUNT; ++op) {
        const int before = check_failures_;
        const int in_free = op == MORA_OP_SHARE || op == MORA_OP_SHARE_INTERLEAVE || op == MORA_OP_RESHAPE ||
                            op == MORA_OP_ROPE;
        const int out_free =
            op == MORA_OP_SHARE || op == MORA_OP_GROUP_TILE || op == MORA_OP_RESHAPE || op == MORA_OP_ROPE;
        CHECK(tested[op] >= 400);
        CHECK(!in_free || coverage[op][COV_DIN_LT_R] >= 5);
        CHECK(!out_free || coverage[op][COV_DOUT_LT_R] >= 5);
        CHECK(coverage[op][COV_DOUT_GT_BR] >= 5);
        CHECK(coverage[op][COV_DOUT_LT_BR] >= 5);
        CHECK(coverage[op][COV_NONMULT] >= 5);
        CHECK(coverage[op][COV_MULTIPLE] >= 2);
        if (check_failures_ > before) fprintf(stderr, "  coverage of op=%s\n", mora_op_name((mora_op)op));
    }
    return check_report();
}
