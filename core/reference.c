/* The float64 reference of every MoRA operator: forward, backward (dM and dx) and ΔW.
 *
 * It is the oracle of every test and of the tuner's correctness gate, so it is written for
 * obviousness first. The operators become two small tables built once per call:
 *
 *   taps:    (p, k, coef)  "input position p feeds compressed entry k = t·r̂ + b with weight coef";
 *            comp(x)[k] = Σ coef·x[p] over the taps of k, and comp^T is the same list read backwards.
 *            Taps are listed block by block (t ascending), so block t's taps are one slice.
 *   source:  source[j] = k   "output position j reads h_flat[k]" (or -1: y[j] gets nothing);
 *            decomp^T(dy)[k] = Σ dy[j] over the j with source[j] = k.
 *
 * Costs: forward and dx O(n · (blocks·r̂² + d_in + d_out)), dM the same, ΔW O(d_out · taps-per-block).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "shape.h"

typedef struct tap {
    int64_t p;   /* input position, < d_in */
    int64_t k;   /* compressed entry t·r̂ + b, < blocks·r̂ */
    double coef; /* weight (1, or cos/±sin of the rope rotation) */
} tap;

typedef struct op_tables {
    mora_geometry geo;
    tap *taps;
    int64_t *block_start; /* taps of block t are taps[block_start[t] .. block_start[t+1]) */
    int64_t *source;      /* d_out entries */
} op_tables;

static void tables_free(op_tables *tb) {
    free(tb->taps);
    free(tb->block_start);
    free(tb->source);
}

/* Builds the taps of the compression and the sources of the decompression (docs/operators.md). */
static mora_status tables_build(const mora_shape *s, op_tables *tb) {
    const mora_geometry geo = mora_shape_geometry(s);
    const int64_t rhat = s->rhat, d_in = s->d_in, d_out = s->d_out;
    const mora_comp_family comp = mora_op_comp_family(s->op);
    /* At most two taps per padded position (rope), or one per input position (group). */
    const int64_t capacity = 2 * (geo.padded > d_in ? geo.padded : d_in);
    memset(tb, 0, sizeof *tb);
    tb->geo = geo;
    tb->taps = malloc((size_t)capacity * sizeof *tb->taps);
    tb->block_start = calloc((size_t)geo.blocks + 1, sizeof *tb->block_start);
    tb->source = malloc((size_t)d_out * sizeof *tb->source);
    if (!tb->taps || !tb->block_start || !tb->source) {
        tables_free(tb);
        return mora_fail(MORA_E_NO_MEMORY, "reference tables for d_in=%lld, d_out=%lld, rhat=%lld: out of memory",
                         (long long)d_in, (long long)d_out, (long long)rhat);
    }

    int64_t count = 0;
    switch (comp) {
    case MORA_COMP_TRUNC: /* c = x[0:r̂] */
        for (int64_t p = 0; p < rhat; ++p) tb->taps[count++] = (tap){p, p, 1.0};
        break;
    case MORA_COMP_GROUP: /* c[g] = sum of run g of [0, d_in) */
        for (int64_t p = 0; p < d_in; ++p) tb->taps[count++] = (tap){p, mora_run_of(d_in, rhat, p), 1.0};
        break;
    case MORA_COMP_SHARE: /* c[q mod r̂] += x_pad[q] = x[q mod d_in], for every padded position q */
        for (int64_t q = 0; q < geo.padded; ++q) tb->taps[count++] = (tap){q % d_in, q % rhat, 1.0};
        break;
    case MORA_COMP_RESHAPE: /* c_t[i] = x_pad[t·r̂ + i]: entry k = q itself */
        for (int64_t q = 0; q < geo.padded; ++q) {
            if (q % rhat == 0) tb->block_start[q / rhat] = count;
            tb->taps[count++] = (tap){q % d_in, q, 1.0};
        }
        break;
    case MORA_COMP_ROPE:
        /* c_t = R_t v with v = x_pad block t:
         *   (R v)[j]   = v[j]·cos θ_j − v[j+h]·sin θ_j      j < h
         *   (R v)[j+h] = v[j+h]·cos θ_j + v[j]·sin θ_j
         * so v[i] (i < h) feeds c[i] with cos θ_i and c[i+h] with sin θ_i, and v[i] (i >= h, j = i−h)
         * feeds c[i] with cos θ_j and c[j] with −sin θ_j. */
        for (int64_t q = 0; q < geo.padded; ++q) {
            const int64_t t = q / rhat, i = q % rhat, base = t * rhat, h = geo.half;
            if (i == 0) tb->block_start[t] = count;
            const int64_t j = i < h ? i : i - h;
            const double angle = mora_rope_angle(rhat, t, j);
            const double c = cos(angle), sn = sin(angle);
            tb->taps[count++] = (tap){q % d_in, q, c};
            tb->taps[count++] = i < h ? (tap){q % d_in, base + i + h, sn} : (tap){q % d_in, base + j, -sn};
        }
        break;
    }
    tb->block_start[geo.blocks] = count; /* one block for the families that did not set starts */

    const mora_decomp_family decomp = mora_op_decomp_family(s->op);
    for (int64_t j = 0; j < d_out; ++j) {
        switch (decomp) {
        case MORA_DECOMP_TRUNC: tb->source[j] = j < rhat ? j : -1; break;
        case MORA_DECOMP_SHARE: tb->source[j] = j % rhat; break;
        case MORA_DECOMP_GROUP: tb->source[j] = mora_run_of(d_out, rhat, j); break;
        case MORA_DECOMP_RESHAPE: tb->source[j] = j % geo.padded; break;
        }
    }
    return MORA_OK;
}

/* Common argument checks; n·width products must fit so that row offsets cannot overflow. */
static mora_status check_rows(const char *name, int64_t n, int64_t width) {
    int64_t elems;
    if (__builtin_mul_overflow(n, width, &elems) || elems > INT64_MAX / 8)
        return mora_fail(MORA_E_OVERFLOW, "n * %s = %lld * %lld: exceeds %lld elements", name, (long long)n,
                         (long long)width, (long long)(INT64_MAX / 8));
    return MORA_OK;
}

static mora_status check_call(const mora_shape *s, int64_t n) {
    MORA_TRY(mora_shape_check(s));
    if (n < 0) return mora_fail(MORA_E_SIZE, "n=%lld: must be >= 0", (long long)n);
    MORA_TRY(check_rows("d_in", n, s->d_in));
    MORA_TRY(check_rows("d_out", n, s->d_out));
    return MORA_OK;
}

/* c[blocks·r̂] = comp(x_row) */
static void compress(const op_tables *tb, const double *x_row, double *c, int64_t entries) {
    memset(c, 0, (size_t)entries * sizeof *c);
    const int64_t count = tb->block_start[tb->geo.blocks];
    for (int64_t e = 0; e < count; ++e) c[tb->taps[e].k] += tb->taps[e].coef * x_row[tb->taps[e].p];
}

/* out[t·r̂ + a] = Σ_b M[a][b]·in[t·r̂ + b] (transpose = 0), or Σ_b M[b][a]·in[t·r̂ + b] (transpose = 1) */
static void apply_m(const double *M, int64_t rhat, int64_t blocks, int transpose, const double *in, double *out) {
    for (int64_t t = 0; t < blocks; ++t) {
        const double *v = in + t * rhat;
        double *o = out + t * rhat;
        if (!transpose) {
            for (int64_t a = 0; a < rhat; ++a) {
                double acc = 0.0;
                for (int64_t b = 0; b < rhat; ++b) acc += M[a * rhat + b] * v[b];
                o[a] = acc;
            }
        } else {
            memset(o, 0, (size_t)rhat * sizeof *o);
            for (int64_t b = 0; b < rhat; ++b)
                for (int64_t a = 0; a < rhat; ++a) o[a] += M[b * rhat + a] * v[b];
        }
    }
}

mora_status mora_ref_forward(const mora_shape *s, const double *M, const double *x, double *y, int64_t n,
                             double scale) {
    MORA_TRY(check_call(s, n));
    MORA_CHECK_PTR(M);
    if (n == 0) return MORA_OK;
    MORA_CHECK_PTR(x);
    MORA_CHECK_PTR(y);

    op_tables tb;
    MORA_TRY(tables_build(s, &tb));
    const int64_t entries = tb.geo.blocks * s->rhat;
    double *c = malloc((size_t)entries * sizeof *c), *h = malloc((size_t)entries * sizeof *h);
    if (!c || !h) {
        free(c), free(h), tables_free(&tb);
        return mora_fail(MORA_E_NO_MEMORY, "reference forward: out of memory for %lld entries", (long long)entries);
    }
    for (int64_t row = 0; row < n; ++row) {
        compress(&tb, x + row * s->d_in, c, entries);
        apply_m(M, s->rhat, tb.geo.blocks, 0, c, h);
        double *y_row = y + row * s->d_out;
        for (int64_t j = 0; j < s->d_out; ++j)
            if (tb.source[j] >= 0) y_row[j] += scale * h[tb.source[j]];
    }
    free(c), free(h), tables_free(&tb);
    return MORA_OK;
}

mora_status mora_ref_backward(const mora_shape *s, const double *M, const double *x, const double *dy, double *dx,
                              double *dM, int64_t n) {
    MORA_TRY(check_call(s, n));
    MORA_CHECK_PTR(M);
    if (n == 0 || (dx == NULL && dM == NULL)) return MORA_OK;
    MORA_CHECK_PTR(dy);
    if (dM != NULL) MORA_CHECK_PTR(x);

    op_tables tb;
    MORA_TRY(tables_build(s, &tb));
    const int64_t rhat = s->rhat, blocks = tb.geo.blocks, entries = blocks * rhat;
    double *g = malloc((size_t)entries * sizeof *g), *c = malloc((size_t)entries * sizeof *c),
           *u = malloc((size_t)entries * sizeof *u);
    if (!g || !c || !u) {
        free(g), free(c), free(u), tables_free(&tb);
        return mora_fail(MORA_E_NO_MEMORY, "reference backward: out of memory for %lld entries", (long long)entries);
    }
    const int64_t tap_count = tb.block_start[blocks];
    for (int64_t row = 0; row < n; ++row) {
        /* g = decomp^T(dy): every output position adds into the h entry it reads */
        const double *dy_row = dy + row * s->d_out;
        memset(g, 0, (size_t)entries * sizeof *g);
        for (int64_t j = 0; j < s->d_out; ++j)
            if (tb.source[j] >= 0) g[tb.source[j]] += dy_row[j];

        if (dM != NULL) { /* dM[a][b] += Σ_t g_t[a]·c_t[b] */
            compress(&tb, x + row * s->d_in, c, entries);
            for (int64_t t = 0; t < blocks; ++t)
                for (int64_t a = 0; a < rhat; ++a) {
                    const double ga = g[t * rhat + a];
                    if (ga == 0.0) continue;
                    for (int64_t b = 0; b < rhat; ++b) dM[a * rhat + b] += ga * c[t * rhat + b];
                }
        }
        if (dx != NULL) { /* dx += comp^T(M^T g): each tap sends its entry back to its input position */
            apply_m(M, rhat, blocks, 1, g, u);
            double *dx_row = dx + row * s->d_in;
            for (int64_t e = 0; e < tap_count; ++e) dx_row[tb.taps[e].p] += tb.taps[e].coef * u[tb.taps[e].k];
        }
    }
    free(g), free(c), free(u), tables_free(&tb);
    return MORA_OK;
}

mora_status mora_ref_delta_weight(const mora_shape *s, const double *M, double *dW) {
    MORA_TRY(mora_shape_check(s));
    MORA_CHECK_PTR(M);
    MORA_CHECK_PTR(dW);
    op_tables tb;
    MORA_TRY(tables_build(s, &tb));
    const int64_t rhat = s->rhat;
    memset(dW, 0, (size_t)(s->d_out * s->d_in) * sizeof *dW);
    /* Column p of ΔW is forward(e_p): y[j] = h[k_j] = Σ_b M[a][b]·c_t[b] with (t, a) = k_j, and
     * c_t[b] collects coef over the taps of block t that start at p. */
    for (int64_t j = 0; j < s->d_out; ++j) {
        const int64_t k = tb.source[j];
        if (k < 0) continue;
        const int64_t t = k / rhat, a = k % rhat;
        double *row = dW + j * s->d_in;
        for (int64_t e = tb.block_start[t]; e < tb.block_start[t + 1]; ++e)
            row[tb.taps[e].p] += tb.taps[e].coef * M[a * rhat + tb.taps[e].k % rhat];
    }
    tables_free(&tb);
    return MORA_OK;
}
