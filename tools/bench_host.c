/* mora-bench's host baselines: MoRA the way a user writes it without libmora — the vendor BLAS on the
 * reshaped GEMM, plus separate passes over memory for compression (padding, reshaping, sums),
 * rotation (rope) and decompression (tiling, truncation) — and the BLAS's bare GEMM of the same
 * multiply-adds, the practical ceiling on a CPU. Every array is float32 on the host; the passes are
 * plain, reasonably written C loops (what a NumPy/PyTorch user's gather, scatter-add and elementwise
 * ops do), the GEMM is OpenBLAS's cblas_sgemm with its own threads.
 *
 *   fwd     C = comp(x) [pad + reshape | sums]; C = rot(C) [rope]; H = C·Mᵀ [sgemm]; y += scale·decomp(H)
 *   bwd_dx  G = decompᵀ(dy) [scatter-add]; U = G·M [sgemm]; U = rotᵀ(U) [rope]; dx += compᵀ(U)
 *   bwd_dm  G = decompᵀ(dy); C = rot(comp(x)); dM += Gᵀ·C [sgemm]
 *   merge   D_t = M·R_t [rope: rotation pass over M's columns]; ΔW = the dense d_out x d_in matrix
 *           [block-diagonal / tiled scatter]; W += s·ΔW [saxpy over the whole matrix]
 * Built without OpenBLAS, every call answers MORA_E_UNSUPPORTED. */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "error.h"
#include "shape.h"

#ifdef MORA_BENCH_OPENBLAS
#include <cblas.h>
#endif

struct bench_host {
    mora_shape s;
    mora_geometry geo;
    mora_comp_family comp;
    mora_decomp_family decomp;
    int64_t n;      /* tokens the arrays hold */
    int64_t stride; /* compressed entries per token: blocks·r̂ */
    float *x, *dy, *M;
    float *y, *dx, *dm, *w; /* outputs, allocated on first use */
    float *C, *G, *H;       /* n·blocks x r̂ intermediates */
    float *D;               /* merge: blocks x r̂ x r̂, M·R_t (rope) */
    float *dW;              /* merge: dense ΔW, d_out x d_in */
    float *cos_t, *sin_t;   /* rope: blocks x r̂/2 */
    int64_t *src;           /* d_out: the entry of a token's h (t·r̂ + a) output j reads, -1 none */
    int64_t *run_in;        /* group compression: d_in: the run position p belongs to */
};

int bench_host_blas_available(void) {
#ifdef MORA_BENCH_OPENBLAS
    return 1;
#else
    return 0;
#endif
}

const char *bench_host_blas_name(void) {
#ifdef MORA_BENCH_OPENBLAS
    static char name[160];
    if (!name[0]) {
        const char *config = openblas_get_config();
        snprintf(name, sizeof name, "%s, %d threads", config ? config : "OpenBLAS", openblas_get_num_threads());
    }
    return name;
#else
    return NULL;
#endif
}

#ifdef MORA_BENCH_OPENBLAS
static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif

double bench_host_sgemm_gflops(int size, double budget_ms) {
#ifdef MORA_BENCH_OPENBLAS
    const size_t count = (size_t)size * (size_t)size;
    float *a = malloc(count * sizeof *a), *b = malloc(count * sizeof *b), *c = malloc(count * sizeof *c);
    double result = -1.0;
    if (a && b && c) {
        for (size_t i = 0; i < count; ++i) {
            a[i] = (float)((i * 7u) % 13u) * 0.01f;
            b[i] = (float)((i * 5u) % 11u) * 0.01f;
            c[i] = 0.0f;
        }
        double samples[64], spent = 0.0;
        int reps = 0;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, size, size, size, 1.0f, a, size, b, size, 0.0f, c, size);
        while (reps < 64 && (reps < 5 || spent < budget_ms)) {
            const double t0 = mora_clock_ms();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, size, size, size, 1.0f, a, size, b, size, 0.0f, c,
                        size);
            samples[reps] = mora_clock_ms() - t0;
            spent += samples[reps++];
        }
        qsort(samples, (size_t)reps, sizeof *samples, compare_doubles);
        /* the peak: the best quartile, so that a neighbour's burst on a shared machine does not lower it */
        const double ms = samples[reps / 4];
        result = 2.0 * (double)size * (double)size * (double)size / (ms * 1e6);
    }
    free(a), free(b), free(c);
    return result;
#else
    (void)size, (void)budget_ms;
    return -1.0;
#endif
}

static float *alloc_floats(size_t count) { return calloc(count ? count : 1, sizeof(float)); }

void bench_host_destroy(bench_host *h) {
    if (!h) return;
    float *arrays[] = {h->x, h->dy, h->M, h->y, h->dx, h->dm, h->w, h->C, h->G, h->H, h->D, h->dW, h->cos_t, h->sin_t};
    for (size_t i = 0; i < sizeof arrays / sizeof *arrays; ++i) free(arrays[i]);
    free(h->src);
    free(h->run_in);
    free(h);
}

mora_status bench_host_create(const mora_shape *s, int64_t n, bench_host **out) {
    MORA_TRY(mora_shape_check(s));
    bench_host *h = calloc(1, sizeof *h);
    if (!h) return mora_fail(MORA_E_NO_MEMORY, "host baseline: out of memory");
    h->s = *s;
    h->geo = mora_shape_geometry(s);
    h->comp = mora_op_comp_family(s->op);
    h->decomp = mora_op_decomp_family(s->op);
    h->n = n;
    h->stride = h->geo.blocks * s->rhat;
    const size_t rows = (size_t)(n * h->geo.blocks);
    h->x = alloc_floats((size_t)(n * s->d_in));
    h->dy = alloc_floats((size_t)(n * s->d_out));
    h->M = alloc_floats((size_t)(s->rhat * s->rhat));
    h->C = alloc_floats(rows * (size_t)s->rhat);
    h->G = alloc_floats(rows * (size_t)s->rhat);
    h->H = alloc_floats(rows * (size_t)s->rhat);
    h->src = malloc((size_t)s->d_out * sizeof *h->src);
    int ok = h->x && h->dy && h->M && h->C && h->G && h->H && h->src;
    if (ok && h->comp == MORA_COMP_ROPE) {
        const size_t count = (size_t)(h->geo.blocks * h->geo.half);
        h->cos_t = alloc_floats(count);
        h->sin_t = alloc_floats(count);
        ok = h->cos_t && h->sin_t;
        for (int64_t t = 0; ok && t < h->geo.blocks; ++t)
            for (int64_t i = 0; i < h->geo.half; ++i) {
                const double angle = mora_rope_angle(s->rhat, t, i);
                h->cos_t[t * h->geo.half + i] = (float)cos(angle);
                h->sin_t[t * h->geo.half + i] = (float)sin(angle);
            }
    }
    if (ok && h->comp == MORA_COMP_GROUP) {
        h->run_in = malloc((size_t)s->d_in * sizeof *h->run_in);
        ok = h->run_in != NULL;
        for (int64_t p = 0; ok && p < s->d_in; ++p) h->run_in[p] = mora_run_of(s->d_in, s->rhat, p);
    }
    for (int64_t j = 0; ok && j < s->d_out; ++j) {
        switch (h->decomp) {
        case MORA_DECOMP_TRUNC: h->src[j] = j < s->rhat ? j : -1; break;
        case MORA_DECOMP_SHARE: h->src[j] = j % s->rhat; break;
        case MORA_DECOMP_GROUP: h->src[j] = mora_run_of(s->d_out, s->rhat, j); break;
        case MORA_DECOMP_RESHAPE: h->src[j] = j % h->geo.padded; break;
        }
    }
    if (!ok) {
        bench_host_destroy(h);
        return mora_fail(MORA_E_NO_MEMORY, "host baseline for %lld tokens: out of memory", (long long)n);
    }
    *out = h;
    return MORA_OK;
}

float *bench_host_x(bench_host *h) { return h->x; }
float *bench_host_dy(bench_host *h) { return h->dy; }
float *bench_host_M(bench_host *h) { return h->M; }

size_t bench_host_out_count(const bench_host *h, mora_kind kind, int64_t n) {
    switch (kind) {
    case MORA_KIND_FWD: return (size_t)(n * h->s.d_out);
    case MORA_KIND_BWD_DX: return (size_t)(n * h->s.d_in);
    case MORA_KIND_BWD_DM: return (size_t)(h->s.rhat * h->s.rhat);
    case MORA_KIND_MERGE: return (size_t)(h->s.d_out * h->s.d_in);
    case MORA_KIND_ADAMW: break; /* not a layer's */
    }
    return 0;
}

float *bench_host_out(bench_host *h, mora_kind kind) {
    float **slot = kind == MORA_KIND_FWD ? &h->y : kind == MORA_KIND_BWD_DX ? &h->dx : kind == MORA_KIND_BWD_DM ? &h->dm : &h->w;
    if (!*slot) *slot = alloc_floats(bench_host_out_count(h, kind, h->n));
    return *slot;
}

/* ---- the passes ---- */
#ifdef MORA_BENCH_OPENBLAS

/* dst[0:len] (+)= x_pad[start : start + len] of one row (wrapped around d_in). */
static void wrapped_row(float *dst, const float *row, int64_t d_in, int64_t start, int64_t len, int add) {
    int64_t p = start % d_in;
    while (len > 0) {
        const int64_t run = d_in - p < len ? d_in - p : len;
        if (add)
            for (int64_t i = 0; i < run; ++i) dst[i] += row[p + i];
        else
            memcpy(dst, row + p, (size_t)run * sizeof *dst);
        dst += run, len -= run, p = 0;
    }
}

/* C = comp(x) without rotation: the padded input reshaped into blocks, or the sums / runs. */
static void pass_comp(const bench_host *h, int64_t n) {
    const int64_t rhat = h->s.rhat, d_in = h->s.d_in;
    for (int64_t tok = 0; tok < n; ++tok) {
        const float *xr = h->x + tok * d_in;
        float *c = h->C + tok * h->stride;
        switch (h->comp) {
        case MORA_COMP_TRUNC: memcpy(c, xr, (size_t)rhat * sizeof *c); break;
        case MORA_COMP_SHARE:
            wrapped_row(c, xr, d_in, 0, rhat, 0);
            for (int64_t q = rhat; q < h->geo.padded; q += rhat) wrapped_row(c, xr, d_in, q, rhat, 1);
            break;
        case MORA_COMP_GROUP:
            memset(c, 0, (size_t)rhat * sizeof *c);
            for (int64_t p = 0; p < d_in; ++p) c[h->run_in[p]] += xr[p];
            break;
        case MORA_COMP_RESHAPE:
        case MORA_COMP_ROPE: wrapped_row(c, xr, d_in, 0, h->geo.padded, 0); break;
        }
    }
}

/* rope: every block row v of `a` becomes R_t v (transpose: R_tᵀ v). */
static void pass_rotate(const bench_host *h, float *a, int64_t n, int transpose) {
    const int64_t half = h->geo.half, blocks = h->geo.blocks;
    const float sign = transpose ? -1.0f : 1.0f;
    for (int64_t tok = 0; tok < n; ++tok)
        for (int64_t t = 0; t < blocks; ++t) {
            float *v = a + tok * h->stride + t * h->s.rhat;
            const float *c = h->cos_t + t * half, *sn = h->sin_t + t * half;
            for (int64_t i = 0; i < half; ++i) {
                const float lo = v[i], hi = v[i + half], s = sign * sn[i];
                v[i] = lo * c[i] - hi * s;
                v[i + half] = hi * c[i] + lo * s;
            }
        }
}

/* y += scale · decomp(H): a gather with the precomputed source index. */
static void pass_decomp(const bench_host *h, int64_t n, float scale) {
    const int64_t d_out = h->s.d_out;
    for (int64_t tok = 0; tok < n; ++tok) {
        float *yr = h->y + tok * d_out;
        const float *hr = h->H + tok * h->stride;
        for (int64_t j = 0; j < d_out; ++j)
            if (h->src[j] >= 0) yr[j] += scale * hr[h->src[j]];
    }
}

/* G = decompᵀ(dy): a scatter-add with the same index. */
static void pass_decomp_t(const bench_host *h, int64_t n) {
    const int64_t d_out = h->s.d_out;
    memset(h->G, 0, (size_t)(n * h->stride) * sizeof *h->G);
    for (int64_t tok = 0; tok < n; ++tok) {
        const float *dyr = h->dy + tok * d_out;
        float *g = h->G + tok * h->stride;
        for (int64_t j = 0; j < d_out; ++j)
            if (h->src[j] >= 0) g[h->src[j]] += dyr[j];
    }
}

/* dx += compᵀ(U), U in H. */
static void pass_comp_t(const bench_host *h, int64_t n) {
    const int64_t rhat = h->s.rhat, d_in = h->s.d_in;
    for (int64_t tok = 0; tok < n; ++tok) {
        float *dxr = h->dx + tok * d_in;
        const float *u = h->H + tok * h->stride;
        switch (h->comp) {
        case MORA_COMP_TRUNC:
            for (int64_t p = 0; p < rhat; ++p) dxr[p] += u[p];
            break;
        case MORA_COMP_SHARE:
            for (int64_t q = 0, p = 0, b = 0; q < h->geo.padded; ++q) {
                dxr[p] += u[b];
                if (++p == d_in) p = 0;
                if (++b == rhat) b = 0;
            }
            break;
        case MORA_COMP_GROUP:
            for (int64_t p = 0; p < d_in; ++p) dxr[p] += u[h->run_in[p]];
            break;
        case MORA_COMP_RESHAPE:
        case MORA_COMP_ROPE:
            for (int64_t q = 0, p = 0; q < h->geo.padded; ++q) {
                dxr[p] += u[q];
                if (++p == d_in) p = 0;
            }
            break;
        }
    }
}

/* merge: D_t = M·R_t for every block (rope; columns b and b + r̂/2 of M mixed), else D = M. */
static const float *pass_merge_rotate(bench_host *h) {
    if (h->comp != MORA_COMP_ROPE) return h->M;
    const int64_t rhat = h->s.rhat, half = h->geo.half;
    for (int64_t t = 0; t < h->geo.blocks; ++t) {
        float *d = h->D + t * rhat * rhat;
        const float *c = h->cos_t + t * half, *sn = h->sin_t + t * half;
        for (int64_t a = 0; a < rhat; ++a) {
            const float *m = h->M + a * rhat;
            float *dr = d + a * rhat;
            for (int64_t i = 0; i < half; ++i) {
                dr[i] = m[i] * c[i] + m[i + half] * sn[i];
                dr[i + half] = m[i + half] * c[i] - m[i] * sn[i];
            }
        }
    }
    return h->D;
}

/* merge: the dense ΔW (every entry, structural zeros included), as a user materialises it. */
static void pass_merge_dense(bench_host *h, const float *D) {
    const int64_t rhat = h->s.rhat, d_in = h->s.d_in, d_out = h->s.d_out;
    memset(h->dW, 0, (size_t)(d_out * d_in) * sizeof *h->dW);
    const int rotated = h->comp == MORA_COMP_ROPE;
    for (int64_t j = 0; j < d_out; ++j) {
        const int64_t k = h->src[j];
        if (k < 0) continue;
        const int64_t t = k / rhat, a = k % rhat;
        const float *dr = (rotated ? D + t * rhat * rhat : D) + a * rhat;
        float *row = h->dW + j * d_in;
        switch (h->comp) {
        case MORA_COMP_TRUNC: memcpy(row, dr, (size_t)rhat * sizeof *row); break;
        case MORA_COMP_SHARE:
            for (int64_t q = 0, p = 0, b = 0; q < h->geo.padded; ++q) {
                row[p] += dr[b];
                if (++p == d_in) p = 0;
                if (++b == rhat) b = 0;
            }
            break;
        case MORA_COMP_GROUP:
            for (int64_t p = 0; p < d_in; ++p) row[p] = dr[h->run_in[p]];
            break;
        case MORA_COMP_RESHAPE:
        case MORA_COMP_ROPE:
            for (int64_t b = 0, p = (t * rhat) % d_in; b < rhat; ++b) {
                row[p] += dr[b];
                if (++p == d_in) p = 0;
            }
            break;
        }
    }
}
#endif

mora_status bench_host_passes(bench_host *h, mora_kind kind, int64_t n, float scale) {
#ifdef MORA_BENCH_OPENBLAS
    const int rhat = (int)h->s.rhat, rows = (int)(n * h->geo.blocks);
    if (!bench_host_out(h, kind)) return mora_fail(MORA_E_NO_MEMORY, "host baseline: out of memory for the output");
    switch (kind) {
    case MORA_KIND_FWD:
        pass_comp(h, n);
        if (h->comp == MORA_COMP_ROPE) pass_rotate(h, h->C, n, 0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, rhat, rhat, 1.0f, h->C, rhat, h->M, rhat, 0.0f, h->H,
                    rhat);
        pass_decomp(h, n, scale);
        return MORA_OK;
    case MORA_KIND_BWD_DX:
        pass_decomp_t(h, n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, rhat, rhat, 1.0f, h->G, rhat, h->M, rhat, 0.0f,
                    h->H, rhat);
        if (h->comp == MORA_COMP_ROPE) pass_rotate(h, h->H, n, 1);
        pass_comp_t(h, n);
        return MORA_OK;
    case MORA_KIND_BWD_DM:
        pass_decomp_t(h, n);
        pass_comp(h, n);
        if (h->comp == MORA_COMP_ROPE) pass_rotate(h, h->C, n, 0);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rhat, rhat, rows, 1.0f, h->G, rhat, h->C, rhat, 1.0f, h->dm,
                    rhat);
        return MORA_OK;
    case MORA_KIND_MERGE: {
        const int64_t count = h->s.d_out * h->s.d_in;
        if (!h->dW) h->dW = alloc_floats((size_t)count);
        if (!h->D && h->comp == MORA_COMP_ROPE) h->D = alloc_floats((size_t)(h->geo.blocks * h->s.rhat * h->s.rhat));
        if (!h->dW || (h->comp == MORA_COMP_ROPE && !h->D))
            return mora_fail(MORA_E_NO_MEMORY, "host baseline: out of memory for the dense ΔW");
        pass_merge_dense(h, pass_merge_rotate(h));
        /* W += s·ΔW; saxpy's length is an int: go in slices */
        for (int64_t at = 0; at < count; at += (int64_t)1 << 30) {
            const int64_t len = count - at < ((int64_t)1 << 30) ? count - at : ((int64_t)1 << 30);
            cblas_saxpy((int)len, scale, h->dW + at, 1, h->w + at, 1);
        }
        return MORA_OK;
    }
    case MORA_KIND_ADAMW: break;
    }
    return mora_fail(MORA_E_UNKNOWN_KIND, "kind=%d: unknown", (int)kind);
#else
    (void)h, (void)kind, (void)n, (void)scale;
    return mora_fail(MORA_E_UNSUPPORTED, "mora-bench was built without OpenBLAS");
#endif
}

mora_status bench_host_gemm(bench_host *h, mora_kind kind, int64_t n) {
#ifdef MORA_BENCH_OPENBLAS
    /* the same useful multiply-adds as libmora's kernels: only the blocks decomp reads */
    const int rhat = (int)h->s.rhat, rows = (int)(n * h->geo.blocks_read);
    if (!bench_host_out(h, kind)) return mora_fail(MORA_E_NO_MEMORY, "host baseline: out of memory for the output");
    switch (kind) {
    case MORA_KIND_FWD:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, rhat, rhat, 1.0f, h->C, rhat, h->M, rhat, 0.0f, h->H,
                    rhat);
        return MORA_OK;
    case MORA_KIND_BWD_DX:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, rhat, rhat, 1.0f, h->G, rhat, h->M, rhat, 0.0f,
                    h->H, rhat);
        return MORA_OK;
    case MORA_KIND_BWD_DM:
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rhat, rhat, rows, 1.0f, h->G, rhat, h->C, rhat, 1.0f, h->dm,
                    rhat);
        return MORA_OK;
    case MORA_KIND_MERGE: return mora_fail(MORA_E_UNSUPPORTED, "merge has no GEMM");
    case MORA_KIND_ADAMW: break;
    }
    return mora_fail(MORA_E_UNKNOWN_KIND, "kind=%d: unknown", (int)kind);
#else
    (void)h, (void)kind, (void)n;
    return mora_fail(MORA_E_UNSUPPORTED, "mora-bench was built without OpenBLAS");
#endif
}
