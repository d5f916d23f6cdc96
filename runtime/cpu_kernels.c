/* The cpu backend's kernels: MoRA forward, backward and merge in float32, in gather form.
 *
 * Every output element is computed from the inputs it reads (the form the GPU kernels use, where
 * one work item owns one output), independently of the float64 reference's tap tables:
 *
 *   compression   c_t[b]  from the x positions it reads (per family, see compress_row)
 *   M product     h_t = M c_t, per block, float accumulation over b in ascending order
 *   decompression y[j] += scale · h_{t,a} for the one (t, a) that output j reads
 *   backward      g_t = decomp^T(dy) (each (t, a) sums the dy it feeds), dM += Σ g_t ⊗ c_t,
 *                 u_t = M^T g_t, dx[p] += what position p sent into the compression (comp^T)
 *   merge         W[j][p] += sign · ΔW[j][p], entry by entry, only where ΔW has entries
 *
 * Tokens are processed in tiles so that the r̂ x r̂ matrix streams once per tile rather than once
 * per token; the tile size changes no result (each accumulation keeps its order), so outputs are
 * bit-identical for any n and any tiling. Rope's cos/sin come from a float32 table built per call:
 * angles from mora_rope_angle in double, cos and sin in double, then rounded to float.
 */
#include "cpu_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "halfconv.h"
#include "shape.h"

/* ---------------------------------------------------------------------------------------------
 * Vector helper. GCC/Clang vector extensions give SIMD code at -O2 without reassociating any sum:
 * every lane is an independent element, so results equal the scalar loop's bit for bit.
 * ------------------------------------------------------------------------------------------- */
typedef float mora_v4f __attribute__((vector_size(16)));

/* y[0:len] += alpha · x[0:len] */
static inline void axpy(float *restrict y, const float *restrict x, float alpha, int64_t len) {
    int64_t i = 0;
    const mora_v4f va = {alpha, alpha, alpha, alpha};
    for (; i + 8 <= len; i += 8) {
        mora_v4f y0, y1, x0, x1;
        memcpy(&y0, y + i, sizeof y0);
        memcpy(&y1, y + i + 4, sizeof y1);
        memcpy(&x0, x + i, sizeof x0);
        memcpy(&x1, x + i + 4, sizeof x1);
        y0 += va * x0;
        y1 += va * x1;
        memcpy(y + i, &y0, sizeof y0);
        memcpy(y + i + 4, &y1, sizeof y1);
    }
    for (; i < len; ++i) y[i] += alpha * x[i];
}

/* out[k][:] = Σ_b in[k][b] · A[b][:] for k < rows (row length r). Forward: A = M^T gives
 * out = M in; backward: A = M gives out = M^T in. The b loop is outermost so that row b of A is
 * reused by every row of the tile; each out[k][a] still sums b = 0, 1, ... in order. */
static void rows_times(const float *restrict A, const float *restrict in, float *restrict out, int64_t rows,
                       int64_t r) {
    memset(out, 0, (size_t)(rows * r) * sizeof *out);
    for (int64_t b = 0; b < r; ++b) {
        const float *a_row = A + b * r;
        for (int64_t k = 0; k < rows; ++k) axpy(out + k * r, a_row, in[k * r + b], r);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Per-call plan: sizes, the wrap table of the padded input and rope's cos/sin table.
 * ------------------------------------------------------------------------------------------- */
typedef struct plan {
    int64_t d_in, d_out, rhat, half;
    int64_t blocks;  /* h blocks per token */
    int64_t padded;  /* B·r̂, length of the wrapped input */
    int64_t entries; /* blocks·r̂: compressed entries per token */
    mora_comp_family comp;
    mora_decomp_family decomp;
    int64_t *wrap; /* wrap[q] = q mod d_in for q < padded (share, reshape, rope) */
    float *cos_t;  /* [blocks][half]: cos θ_{t,i} (rope) */
    float *sin_t;
} plan;

static void plan_free(plan *pl) {
    free(pl->wrap);
    free(pl->cos_t);
    free(pl->sin_t);
}

static mora_status no_memory(const char *what, const mora_shape *s) {
    return mora_fail(MORA_E_NO_MEMORY, "cpu %s for d_in=%lld, d_out=%lld, rhat=%lld: out of host memory", what,
                     (long long)s->d_in, (long long)s->d_out, (long long)s->rhat);
}

static mora_status plan_make(const mora_shape *s, plan *pl) {
    const mora_geometry geo = mora_shape_geometry(s);
    memset(pl, 0, sizeof *pl);
    pl->d_in = s->d_in;
    pl->d_out = s->d_out;
    pl->rhat = s->rhat;
    pl->half = geo.half;
    pl->blocks = geo.blocks;
    pl->padded = geo.padded;
    pl->entries = geo.blocks * s->rhat;
    pl->comp = mora_op_comp_family(s->op);
    pl->decomp = mora_op_decomp_family(s->op);
    if (pl->comp == MORA_COMP_SHARE || pl->comp == MORA_COMP_RESHAPE || pl->comp == MORA_COMP_ROPE) {
        pl->wrap = malloc((size_t)pl->padded * sizeof *pl->wrap);
        if (!pl->wrap) return no_memory("wrap table", s);
        for (int64_t q = 0, p = 0; q < pl->padded; ++q) {
            pl->wrap[q] = p;
            if (++p == pl->d_in) p = 0;
        }
    }
    if (pl->comp == MORA_COMP_ROPE) {
        const size_t count = (size_t)(pl->blocks * pl->half);
        pl->cos_t = malloc((count ? count : 1) * sizeof *pl->cos_t);
        pl->sin_t = malloc((count ? count : 1) * sizeof *pl->sin_t);
        if (!pl->cos_t || !pl->sin_t) {
            plan_free(pl);
            return no_memory("rope table", s);
        }
        for (int64_t t = 0; t < pl->blocks; ++t)
            for (int64_t i = 0; i < pl->half; ++i) {
                const double angle = mora_rope_angle(pl->rhat, t, i);
                pl->cos_t[t * pl->half + i] = (float)cos(angle);
                pl->sin_t[t * pl->half + i] = (float)sin(angle);
            }
    }
    return MORA_OK;
}

/* Tokens per tile: about 16K floats of compressed entries, at least one token. */
static int64_t tile_tokens(const plan *pl, int64_t n) {
    int64_t tile = 16384 / pl->entries;
    if (tile < 1) tile = 1;
    return tile < n ? tile : n;
}

static void load_row(mora_dtype dtype, const void *base, int64_t offset, int64_t len, float *out) {
    if (dtype == MORA_F32) {
        memcpy(out, (const float *)base + offset, (size_t)len * sizeof *out);
        return;
    }
    for (int64_t i = 0; i < len; ++i) out[i] = mora_load_act(dtype, base, offset + i);
}

/* ---------------------------------------------------------------------------------------------
 * Compression (gather): c[blocks·r̂] of one token from its float input row xf[d_in].
 * ------------------------------------------------------------------------------------------- */
static void compress_row(const plan *pl, const float *restrict xf, float *restrict c) {
    const int64_t rhat = pl->rhat, h = pl->half;
    switch (pl->comp) {
    case MORA_COMP_TRUNC: /* c[b] = x[b] */
        memcpy(c, xf, (size_t)rhat * sizeof *c);
        break;
    case MORA_COMP_SHARE: /* c[b] = Σ_{q = b, b + r̂, ... < B·r̂} x[q mod d_in] */
        for (int64_t b = 0; b < rhat; ++b) {
            float acc = 0.0f;
            for (int64_t q = b; q < pl->padded; q += rhat) acc += xf[pl->wrap[q]];
            c[b] = acc;
        }
        break;
    case MORA_COMP_GROUP: /* c[g] = sum of run g of [0, d_in) */
        for (int64_t g = 0; g < rhat; ++g) {
            const int64_t start = mora_run_start(pl->d_in, rhat, g), len = mora_run_length(pl->d_in, rhat, g);
            float acc = 0.0f;
            for (int64_t p = start; p < start + len; ++p) acc += xf[p];
            c[g] = acc;
        }
        break;
    case MORA_COMP_RESHAPE: /* c_t[b] = x[(t·r̂ + b) mod d_in] */
        for (int64_t q = 0; q < pl->padded; ++q) c[q] = xf[pl->wrap[q]];
        break;
    case MORA_COMP_ROPE: /* c_t = R_t v_t, v_t = wrapped block t */
        for (int64_t t = 0; t < pl->blocks; ++t) {
            const int64_t *w = pl->wrap + t * rhat;
            const float *cs = pl->cos_t + t * h, *sn = pl->sin_t + t * h;
            float *ct = c + t * rhat;
            for (int64_t i = 0; i < h; ++i) {
                const float lo = xf[w[i]], hi = xf[w[i + h]];
                ct[i] = lo * cs[i] - hi * sn[i];
                ct[i + h] = hi * cs[i] + lo * sn[i];
            }
        }
        break;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Decompression (gather): y[j] += scale · h[(t, a) read by j], one token.
 * ------------------------------------------------------------------------------------------- */
static void decompress_add_row(const plan *pl, mora_dtype dtype, void *y, int64_t off, const float *hv,
                               float scale) {
    const int64_t rhat = pl->rhat, d_out = pl->d_out;
    switch (pl->decomp) {
    case MORA_DECOMP_TRUNC: /* j < r̂ reads h[j]; the rest reads nothing and is left alone */
        for (int64_t j = 0; j < rhat && j < d_out; ++j)
            mora_store_act(dtype, y, off + j, mora_load_act(dtype, y, off + j) + scale * hv[j]);
        break;
    case MORA_DECOMP_SHARE: /* j reads h[j mod r̂] */
        for (int64_t j0 = 0; j0 < d_out; j0 += rhat)
            for (int64_t a = 0; a < rhat && j0 + a < d_out; ++a)
                mora_store_act(dtype, y, off + j0 + a, mora_load_act(dtype, y, off + j0 + a) + scale * hv[a]);
        break;
    case MORA_DECOMP_GROUP: /* j in run a of [0, d_out) reads h[a] */
        for (int64_t a = 0; a < rhat; ++a) {
            const int64_t start = mora_run_start(d_out, rhat, a), len = mora_run_length(d_out, rhat, a);
            const float v = scale * hv[a];
            for (int64_t j = start; j < start + len; ++j)
                mora_store_act(dtype, y, off + j, mora_load_act(dtype, y, off + j) + v);
        }
        break;
    case MORA_DECOMP_RESHAPE: /* j reads h_flat[j mod B·r̂] */
        for (int64_t j0 = 0; j0 < d_out; j0 += pl->padded)
            for (int64_t k = 0; k < pl->padded && j0 + k < d_out; ++k)
                mora_store_act(dtype, y, off + j0 + k, mora_load_act(dtype, y, off + j0 + k) + scale * hv[k]);
        break;
    }
}

/* g[blocks·r̂] = decomp^T(dy): entry (t, a) sums the dy of every output that reads it. */
static void decompress_transpose_row(const plan *pl, const float *restrict dyf, float *restrict g) {
    const int64_t rhat = pl->rhat, d_out = pl->d_out;
    switch (pl->decomp) {
    case MORA_DECOMP_TRUNC:
        memcpy(g, dyf, (size_t)rhat * sizeof *g);
        break;
    case MORA_DECOMP_SHARE: /* g[a] = Σ_{j = a, a + r̂, ... < d_out} dy[j] */
        for (int64_t a = 0; a < rhat; ++a) {
            float acc = 0.0f;
            for (int64_t j = a; j < d_out; j += rhat) acc += dyf[j];
            g[a] = acc;
        }
        break;
    case MORA_DECOMP_GROUP:
        for (int64_t a = 0; a < rhat; ++a) {
            const int64_t start = mora_run_start(d_out, rhat, a), len = mora_run_length(d_out, rhat, a);
            float acc = 0.0f;
            for (int64_t j = start; j < start + len; ++j) acc += dyf[j];
            g[a] = acc;
        }
        break;
    case MORA_DECOMP_RESHAPE: /* g_flat[k] = Σ_{j = k, k + B·r̂, ... < d_out} dy[j] */
        for (int64_t k = 0; k < pl->padded; ++k) {
            float acc = 0.0f;
            for (int64_t j = k; j < d_out; j += pl->padded) acc += dyf[j];
            g[k] = acc;
        }
        break;
    }
}

/* v = R_t^T u for one rope block: v[i] = u[i]cos + u[i+h]sin, v[i+h] = −u[i]sin + u[i+h]cos. */
static void rope_transpose(const float *restrict u, float *restrict v, const float *cs, const float *sn, int64_t h) {
    for (int64_t i = 0; i < h; ++i) {
        const float lo = u[i], hi = u[i + h];
        v[i] = lo * cs[i] + hi * sn[i];
        v[i + h] = hi * cs[i] - lo * sn[i];
    }
}

/* dx[p] += Σ over the (t, b) that read p of coef · u_t[b], for one token (comp^T in gather form).
 * wbuf: scratch of `padded` floats. */
static void compress_transpose_add_row(const plan *pl, mora_dtype dtype, void *dx, int64_t off,
                                       const float *restrict u, float *restrict wbuf) {
    const int64_t rhat = pl->rhat, d_in = pl->d_in;
    const float *w = NULL; /* w[q]: what padded position q sends back (share, reshape, rope) */
    switch (pl->comp) {
    case MORA_COMP_TRUNC:
        for (int64_t p = 0; p < rhat; ++p) mora_store_act(dtype, dx, off + p, mora_load_act(dtype, dx, off + p) + u[p]);
        return;
    case MORA_COMP_GROUP:
        for (int64_t g = 0; g < rhat; ++g) {
            const int64_t start = mora_run_start(d_in, rhat, g), len = mora_run_length(d_in, rhat, g);
            for (int64_t p = start; p < start + len; ++p)
                mora_store_act(dtype, dx, off + p, mora_load_act(dtype, dx, off + p) + u[g]);
        }
        return;
    case MORA_COMP_SHARE: /* padded position q fed c[q mod r̂]: it receives u[q mod r̂] */
        for (int64_t q0 = 0; q0 < pl->padded; q0 += rhat) memcpy(wbuf + q0, u, (size_t)rhat * sizeof *wbuf);
        w = wbuf;
        break;
    case MORA_COMP_RESHAPE: /* q fed c_flat[q] */
        w = u;
        break;
    case MORA_COMP_ROPE: /* q (block t) receives (R_t^T u_t)[q mod r̂] */
        for (int64_t t = 0; t < pl->blocks; ++t)
            rope_transpose(u + t * rhat, wbuf + t * rhat, pl->cos_t + t * pl->half, pl->sin_t + t * pl->half,
                           pl->half);
        w = wbuf;
        break;
    }
    /* fold the wrapped input: p receives from q = p, p + d_in, ... < B·r̂ */
    for (int64_t p = 0; p < d_in; ++p) {
        float acc = 0.0f;
        for (int64_t q = p; q < pl->padded; q += d_in) acc += w[q];
        mora_store_act(dtype, dx, off + p, mora_load_act(dtype, dx, off + p) + acc);
    }
}

static mora_status check_call(const mora_shape *s, int64_t n) {
    MORA_CHECK_PTR(s);
    MORA_TRY(mora_shape_check(s));
    if (n < 0) return mora_fail(MORA_E_SIZE, "n=%lld: must be >= 0", (long long)n);
    return MORA_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Forward
 * ------------------------------------------------------------------------------------------- */
static mora_status legacy_forward(const mora_shape *s, mora_dtype dtype, const float *M, const void *x, void *y,
                             int64_t n, float scale) {
    MORA_TRY(check_call(s, n));
    if (n == 0) return MORA_OK;
    MORA_CHECK_PTR(M);
    MORA_CHECK_PTR(x);
    MORA_CHECK_PTR(y);

    plan pl;
    MORA_TRY(plan_make(s, &pl));
    const int64_t rhat = pl.rhat, entries = pl.entries, tile = tile_tokens(&pl, n);
    float *MT = malloc((size_t)(rhat * rhat) * sizeof *MT);
    float *xf = malloc((size_t)pl.d_in * sizeof *xf);
    float *C = malloc((size_t)(tile * entries) * sizeof *C);
    float *H = malloc((size_t)(tile * entries) * sizeof *H);
    if (!MT || !xf || !C || !H) {
        free(MT), free(xf), free(C), free(H), plan_free(&pl);
        return no_memory("forward scratch", s);
    }
    for (int64_t a = 0; a < rhat; ++a) /* MT[b][a] = M[a][b] */
        for (int64_t b = 0; b < rhat; ++b) MT[b * rhat + a] = M[a * rhat + b];

    for (int64_t r0 = 0; r0 < n; r0 += tile) {
        const int64_t tn = n - r0 < tile ? n - r0 : tile;
        for (int64_t i = 0; i < tn; ++i) {
            load_row(dtype, x, (r0 + i) * pl.d_in, pl.d_in, xf);
            compress_row(&pl, xf, C + i * entries);
        }
        rows_times(MT, C, H, tn * pl.blocks, rhat); /* h_t = M c_t for every block of the tile */
        for (int64_t i = 0; i < tn; ++i) decompress_add_row(&pl, dtype, y, (r0 + i) * pl.d_out, H + i * entries, scale);
    }
    free(MT), free(xf), free(C), free(H), plan_free(&pl);
    return MORA_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Backward
 * ------------------------------------------------------------------------------------------- */
static mora_status legacy_backward(const mora_shape *s, mora_dtype dtype, const float *M, const void *x,
                              const void *dy, void *dx, float *dM, int64_t n) {
    MORA_TRY(check_call(s, n));
    if (n == 0 || (dx == NULL && dM == NULL)) return MORA_OK;
    MORA_CHECK_PTR(M);
    MORA_CHECK_PTR(dy);
    if (dM != NULL) MORA_CHECK_PTR(x);

    plan pl;
    MORA_TRY(plan_make(s, &pl));
    const int64_t rhat = pl.rhat, entries = pl.entries, tile = tile_tokens(&pl, n);
    const size_t tile_bytes = (size_t)(tile * entries) * sizeof(float);
    float *dyf = malloc((size_t)pl.d_out * sizeof *dyf);
    float *G = malloc(tile_bytes);
    float *xf = dM ? malloc((size_t)pl.d_in * sizeof *xf) : NULL;
    float *C = dM ? malloc(tile_bytes) : NULL;
    float *acc = dM ? calloc((size_t)(rhat * rhat), sizeof *acc) : NULL;
    float *U = dx ? malloc(tile_bytes) : NULL;
    float *wbuf = dx ? malloc((size_t)pl.padded * sizeof *wbuf) : NULL;
    if (!dyf || !G || (dM && (!xf || !C || !acc)) || (dx && (!U || !wbuf))) {
        free(dyf), free(G), free(xf), free(C), free(acc), free(U), free(wbuf), plan_free(&pl);
        return no_memory("backward scratch", s);
    }

    for (int64_t r0 = 0; r0 < n; r0 += tile) {
        const int64_t tn = n - r0 < tile ? n - r0 : tile, rows = tn * pl.blocks;
        for (int64_t i = 0; i < tn; ++i) {
            load_row(dtype, dy, (r0 + i) * pl.d_out, pl.d_out, dyf);
            decompress_transpose_row(&pl, dyf, G + i * entries);
        }
        if (dM) {
            for (int64_t i = 0; i < tn; ++i) {
                load_row(dtype, x, (r0 + i) * pl.d_in, pl.d_in, xf);
                compress_row(&pl, xf, C + i * entries);
            }
            /* acc[a][:] += Σ over (token, block) rows k of g_k[a] · c_k, k ascending */
            for (int64_t a = 0; a < rhat; ++a)
                for (int64_t k = 0; k < rows; ++k) axpy(acc + a * rhat, C + k * rhat, G[k * rhat + a], rhat);
        }
        if (dx) {
            rows_times(M, G, U, rows, rhat); /* u_t = M^T g_t */
            for (int64_t i = 0; i < tn; ++i)
                compress_transpose_add_row(&pl, dtype, dx, (r0 + i) * pl.d_in, U + i * entries, wbuf);
        }
    }
    if (dM)
        for (int64_t e = 0; e < rhat * rhat; ++e) dM[e] += acc[e];
    free(dyf), free(G), free(xf), free(C), free(acc), free(U), free(wbuf), plan_free(&pl);
    return MORA_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Merge: W[j][p] += sign · ΔW[j][p]. Row j of ΔW is row a of M (rope: of M·R_t) pushed through the
 * compression's transpose for the block t that j reads; only the columns that compression reads
 * are written.
 * ------------------------------------------------------------------------------------------- */
static inline void w_add(mora_dtype w_dtype, void *W, int64_t i, float v) {
    mora_store_act(w_dtype, W, i, mora_load_act(w_dtype, W, i) + v);
}

static mora_status legacy_merge(const mora_shape *s, const float *M, void *W, mora_dtype w_dtype, float sign) {
    MORA_TRY(check_call(s, 0));
    MORA_CHECK_PTR(M);
    MORA_CHECK_PTR(W);
    if ((int)w_dtype < 0 || (int)w_dtype >= MORA_DTYPE_COUNT)
        return mora_fail(MORA_E_UNKNOWN_DTYPE, "w_dtype=%d: unknown data type", (int)w_dtype);

    plan pl;
    MORA_TRY(plan_make(s, &pl));
    const int64_t rhat = pl.rhat, d_in = pl.d_in, d_out = pl.d_out;
    float *e = malloc((size_t)rhat * sizeof *e);          /* effective row: M[a] or (M R_t)[a] */
    float *tiled = malloc((size_t)pl.padded * sizeof *e); /* share: e tiled over the padded input */
    if (!e || !tiled) {
        free(e), free(tiled), plan_free(&pl);
        return no_memory("merge scratch", s);
    }

    for (int64_t j = 0; j < d_out; ++j) {
        int64_t t = 0, a;
        switch (pl.decomp) {
        case MORA_DECOMP_TRUNC: a = j < rhat ? j : -1; break;
        case MORA_DECOMP_SHARE: a = j % rhat; break;
        case MORA_DECOMP_GROUP: a = mora_run_of(d_out, rhat, j); break;
        case MORA_DECOMP_RESHAPE: {
            const int64_t k = j % pl.padded;
            t = k / rhat;
            a = k % rhat;
            break;
        }
        default: a = -1; break;
        }
        if (a < 0) continue; /* row j reads nothing: ΔW row is structurally empty */
        const int64_t row = j * d_in;
        if (pl.comp == MORA_COMP_ROPE)
            rope_transpose(M + a * rhat, e, pl.cos_t + t * pl.half, pl.sin_t + t * pl.half, pl.half);
        else
            memcpy(e, M + a * rhat, (size_t)rhat * sizeof *e);

        switch (pl.comp) {
        case MORA_COMP_TRUNC: /* columns p < r̂ */
            for (int64_t p = 0; p < rhat; ++p) w_add(w_dtype, W, row + p, sign * e[p]);
            break;
        case MORA_COMP_GROUP: /* column p in run g gets e[g] */
            for (int64_t g = 0; g < rhat; ++g) {
                const int64_t start = mora_run_start(d_in, rhat, g), len = mora_run_length(d_in, rhat, g);
                for (int64_t p = start; p < start + len; ++p) w_add(w_dtype, W, row + p, sign * e[g]);
            }
            break;
        case MORA_COMP_SHARE: /* column p gets Σ_{q = p, p + d_in, ... < B·r̂} e[q mod r̂] */
            for (int64_t q0 = 0; q0 < pl.padded; q0 += rhat) memcpy(tiled + q0, e, (size_t)rhat * sizeof *e);
            for (int64_t p = 0; p < d_in; ++p) {
                float v = 0.0f;
                for (int64_t q = p; q < pl.padded; q += d_in) v += tiled[q];
                w_add(w_dtype, W, row + p, sign * v);
            }
            break;
        case MORA_COMP_RESHAPE:
        case MORA_COMP_ROPE: { /* block-diagonal window: column (t·r̂ + b) mod d_in, b < min(r̂, d_in),
                                  gets Σ_{b' = b, b + d_in, ... < r̂} e[b'] (several only when d_in < r̂) */
            const int64_t width = rhat < d_in ? rhat : d_in;
            for (int64_t b = 0; b < width; ++b) {
                float v = 0.0f;
                for (int64_t bb = b; bb < rhat; bb += d_in) v += e[bb];
                w_add(w_dtype, W, row + pl.wrap[t * rhat + b], sign * v);
            }
            break;
        }
        }
    }
    free(e), free(tiled), plan_free(&pl);
    return MORA_OK;
}

/* ---------------------------------------------------------------------------------------------
 * The plan interface (cpu_kernels.h) over the row-contiguous kernels above, a row at a time.
 * ------------------------------------------------------------------------------------------- */
struct mora_cpu_plan {
    mora_shape shape;
    mora_dtype dtype;
};

mora_status mora_cpu_plan_create(const mora_shape *s, mora_dtype dtype, const mora_cpu_params *params, mora_cpu_plan **out) {
    (void)params;
    mora_cpu_plan *p = calloc(1, sizeof *p);
    if (!p) return no_memory("plan", s);
    p->shape = *s;
    p->dtype = dtype;
    *out = p;
    return MORA_OK;
}

void mora_cpu_plan_destroy(mora_cpu_plan *p) { free(p); }

size_t mora_cpu_workspace_bytes(const mora_cpu_plan *p, int64_t n) {
    (void)n;
    return (size_t)(p->shape.rhat * p->shape.rhat + p->shape.d_in) * sizeof(float);
}

mora_status mora_cpu_forward(const mora_cpu_plan *p, const float *M, const void *x, int64_t ldx, void *y, int64_t ldy,
                             int64_t n, float scale, void *workspace) {
    (void)workspace;
    const size_t es = mora_dtype_size(p->dtype);
    for (int64_t i = 0; i < n; ++i)
        MORA_TRY(legacy_forward(&p->shape, p->dtype, M, (const char *)x + (size_t)(i * ldx) * es,
                                (char *)y + (size_t)(i * ldy) * es, 1, scale));
    return MORA_OK;
}

mora_status mora_cpu_backward(const mora_cpu_plan *p, const float *M, const void *x, int64_t ldx, const void *dy,
                              int64_t lddy, void *dx, int64_t lddx, float *dM, int64_t n, float scale, void *workspace) {
    const mora_shape *s = &p->shape;
    const size_t es = mora_dtype_size(p->dtype);
    float *dm_sum = workspace;                   /* r̂ x r̂: Σ g ⊗ c, unscaled */
    void *dx_row = dm_sum + s->rhat * s->rhat;   /* one dx row of the dtype, unscaled */
    if (dM) memset(dm_sum, 0, (size_t)(s->rhat * s->rhat) * sizeof(float));
    for (int64_t i = 0; i < n; ++i) {
        if (dx) memset(dx_row, 0, (size_t)s->d_in * es);
        MORA_TRY(legacy_backward(s, p->dtype, M, (const char *)x + (size_t)(i * ldx) * es,
                                 (const char *)dy + (size_t)(i * lddy) * es, dx ? dx_row : NULL, dM ? dm_sum : NULL, 1));
        if (!dx) continue;
        char *row = (char *)dx + (size_t)(i * lddx) * es;
        for (int64_t q = 0; q < s->d_in; ++q)
            mora_store_act(p->dtype, row, q, mora_load_act(p->dtype, row, q) + scale * mora_load_act(p->dtype, dx_row, q));
    }
    if (dM)
        for (int64_t e = 0; e < s->rhat * s->rhat; ++e) dM[e] += scale * dm_sum[e];
    return MORA_OK;
}

mora_status mora_cpu_merge(const mora_cpu_plan *p, const float *M, void *W, int64_t ldw, mora_dtype w_dtype, float s) {
    const mora_shape *sh = &p->shape;
    if (ldw == sh->d_in) return legacy_merge(sh, M, W, w_dtype, s);
    const size_t es = mora_dtype_size(w_dtype);
    char *packed = malloc((size_t)(sh->d_out * sh->d_in) * es);
    if (!packed) return no_memory("merge", sh);
    for (int64_t j = 0; j < sh->d_out; ++j) memcpy(packed + (size_t)(j * sh->d_in) * es, (char *)W + (size_t)(j * ldw) * es, (size_t)sh->d_in * es);
    const mora_status st = legacy_merge(sh, M, packed, w_dtype, s);
    for (int64_t j = 0; st == MORA_OK && j < sh->d_out; ++j)
        memcpy((char *)W + (size_t)(j * ldw) * es, packed + (size_t)(j * sh->d_in) * es, (size_t)sh->d_in * es);
    free(packed);
    return st;
}
