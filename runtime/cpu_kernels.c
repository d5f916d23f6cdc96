/* The cpu backend's kernels: MoRA forward, backward and merge as a tile pipeline around sgemm.
 *
 *   forward   per tile of T tokens: C[T·b][r̂] = comp(x) packed (sums, wrap padding and rope's
 *             rotation done while packing), H = scale · C·Mᵀ (one sgemm), y += decomp(H) on write-back
 *   backward  G[T·b][r̂] = decompᵀ(dy) packed; dM: P += Gᵀ·C (one sgemm per tile, beta 0 on a
 *             group's first tile) over groups of >= CPU_DM_GROUP_ROWS rows, each group's P added into
 *             the worker's sum with compensated (Kahan) summation; dx: U = scale · G·M (one sgemm),
 *             dx += compᵀ(U) (rope's Rᵀ per block, then the wrapped positions folded back)
 *   merge     W[j][p] += s · ΔW[j][p] entry by entry, only where ΔW has entries (no sgemm: ΔW is
 *             M tiled, rotated or folded, so merge is a memory pass)
 *
 * b is the number of blocks a token's h has that decomp reads (geometry.blocks_read): blocks that
 * decomp never reads are neither computed in forward nor contribute in backward (their g is 0).
 *
 * Workers. Tokens are cut into tiles of T; the workers (caller = worker 0, the others
 * pthread_create'd per call and joined) take tiles from a shared atomic counter, except when the
 * call accumulates dM: then each worker takes a fixed contiguous range of tiles, so that its dM
 * partial sums the same rows in the same order every time. Every worker owns one slice of the
 * workspace. Each worker
 * writes only its own token rows of y / dx, and its own dM partial; the caller reduces the partials
 * in worker order after the join. A worker that could not be started runs on the caller's thread
 * after the others: same ranges, same partials, same bits.
 *
 * OpenBLAS and threads. Every worker calls cblas_sgemm. OpenBLAS 0.3.21 (Debian 12) has no per-call
 * or thread-local thread count (openblas_set_num_threads is process-wide, and changing it would
 * change the caller's own BLAS calls behind their back), so the plan leaves it alone. With a
 * single-threaded OpenBLAS (OPENBLAS_NUM_THREADS=1, or the caller's openblas_set_num_threads(1))
 * each worker's sgemm runs on that worker's core: the intended configuration, the one the results
 * in bench/results/cpu-fast-*.md recommend. With a multi-threaded OpenBLAS each worker's sgemm fans
 * out onto OpenBLAS's threads too (OpenBLAS serialises concurrent multi-threaded level-3 calls on
 * an internal lock), so the cores are oversubscribed while packing overlaps GEMMs. Results agree
 * either way within rounding (a threaded OpenBLAS GEMM is split over rows and columns, not over k);
 * tests/CMakeLists.txt runs the tests in both settings. ThreadSanitizer: clean with a
 * single-threaded OpenBLAS; a multi-threaded one hands results between its own threads through
 * spin-waited flags that TSan cannot see, which tests/tsan-openblas.supp suppresses.
 *
 * Precision: every accumulation is float32; rope's cos/sin come from double and are rounded to float
 * once, in the plan.
 */
#include "cpu_kernels.h"

#include <cblas.h> /* openblas_get_num_threads */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu_gemm.h"
#include "cpu_pool.h"
#include "error.h"
#include "halfconv.h"
#include "shape.h"

/* Default rows per tile (tokens × blocks read): the packed tile and its product together stay in L2
 * for r̂ up to ~512 and the sgemm has enough rows to amortise packing M; measured in
 * bench/results/cpu-fast-epyc-2cores.md. */
#define CPU_TILE_ROWS 256
/* Default tokens per GEMM of the folded form (rope / reshape as plain GEMMs per block): each block's
 * product is a (tokens x r̂) · (r̂ x r̂) GEMM, large enough to run near the provider's peak. */
#define CPU_FOLD_TILE_TOKENS 256
#define CPU_MAX_THREADS MORA_CPU_MAX_THREADS
/* A worker gets at least this many tokens (fewer tokens: fewer workers) so tiny calls do not pay
 * for starting threads: a token at d = 4096, r̂ = 256 is ~2 MFLOP, ~20 µs on one core, against some
 * tens of µs to create and join a thread. */
#define CPU_MIN_TOKENS_PER_WORKER 4
#define CPU_ALIGN 64
/* dM: tile products are summed by sgemm (beta 1) into one partial for at least this many rows, then
 * the partial joins the worker's compensated sum. The rounding error of a partial is bounded by this
 * (plus one tile), not by n; the compensated add costs 3·r̂² memory traffic per group, which for
 * large r̂ would dominate if done every tile. */
#define CPU_DM_GROUP_ROWS 2048

struct mora_cpu_plan {
    mora_shape shape;
    mora_dtype dtype;
    int64_t d_in, d_out, rhat, half;
    int64_t wrap_blocks; /* B = ceil(d_in / r̂) */
    int64_t padded;      /* B·r̂ */
    int64_t blocks;      /* blocks per token the sgemms use: those decomp reads */
    int64_t entries;     /* blocks·r̂: packed floats per token */
    int64_t rowlen;      /* max(d_in, d_out, padded): a scratch row */
    mora_comp_family comp;
    mora_decomp_family decomp;
    int64_t tile;  /* tokens per tile */
    int threads;   /* workers per call */
    mora_gemm_provider gemm; /* whose sgemm */
    int folded;    /* rope / reshape as plain GEMMs per block on strided views (else the packed pipeline) */
    int64_t *run_in;  /* group comp: run starts of [0, d_in), r̂ + 1 entries */
    int64_t *run_out; /* group decomp: run starts of [0, d_out), r̂ + 1 entries */
    float *cos_t, *sin_t; /* rope: [B][r̂/2] */
};

/* ---------------------------------------------------------------------------------------------
 * Plan
 * ------------------------------------------------------------------------------------------- */
mora_cpu_params mora_cpu_plan_params(const mora_cpu_plan *p) {
    const mora_cpu_params params = {(int)p->tile, p->threads, 1 + (int)p->gemm, p->folded};
    return params;
}

void mora_cpu_plan_destroy(mora_cpu_plan *p) {
    if (!p) return;
    free(p->run_in);
    free(p->run_out);
    free(p->cos_t);
    free(p->sin_t);
    free(p);
}

static int64_t *run_table(int64_t length, int64_t runs) {
    int64_t *t = malloc((size_t)(runs + 1) * sizeof *t);
    if (!t) return NULL;
    for (int64_t g = 0; g <= runs; ++g) t[g] = g < runs ? mora_run_start(length, runs, g) : length;
    return t;
}

/* The tile and thread count a plan of (s, params) uses: 0 means the default. */
/* 1 when the folded form applies: asked for, and an operator whose blocks are plain slices. */
static int folds(const mora_shape *s, const mora_cpu_params *params) {
    const mora_comp_family comp = mora_op_comp_family(s->op);
    return params->fold && (comp == MORA_COMP_RESHAPE || comp == MORA_COMP_ROPE);
}

static mora_cpu_params resolve_params(const mora_shape *s, const mora_cpu_params *params) {
    mora_cpu_params r = *params;
    r.fold = folds(s, params);
    if (r.tile_tokens <= 0) {
        r.tile_tokens = r.fold ? CPU_FOLD_TILE_TOKENS : (int)(CPU_TILE_ROWS / mora_shape_geometry(s).blocks_read);
        if (r.tile_tokens < 1) r.tile_tokens = 1;
    }
    if (r.threads <= 0) {
        /* one worker per core, each GEMM on its worker's core (oneDNN and BLIS calls run on one thread,
         * cpu_gemm.c); with a multi-threaded OpenBLAS as the provider (its default) one worker, whose
         * sgemm OpenBLAS spreads over the cores itself: the default never oversubscribes, whatever
         * the process set (bench/results/cpu-fast-epyc-2cores.md) */
        const long cores = sysconf(_SC_NPROCESSORS_ONLN);
        const mora_gemm_provider provider = r.gemm ? (mora_gemm_provider)(r.gemm - 1) : mora_gemm_default();
        const int threaded_blas = provider == MORA_GEMM_OPENBLAS && openblas_get_num_threads() > 1;
        r.threads = threaded_blas ? 1 : cores < 1 ? 1 : cores > CPU_MAX_THREADS ? CPU_MAX_THREADS : (int)cores;
    }
    return r;
}

mora_cpu_params mora_cpu_params_for(const mora_shape *s, int tile_rows, int threads, int gemm, int fold) {
    const int64_t blocks = mora_shape_geometry(s).blocks_read;
    mora_cpu_params p = {0, threads < 0 ? 0 : threads, gemm, fold};
    /* the pipeline's GEMM has a row per (token, block); the folded form's, a row per token */
    const int64_t per_token = folds(s, &p) ? 1 : blocks;
    if (tile_rows > 0) p.tile_tokens = (int)(tile_rows / per_token > 0 ? tile_rows / per_token : 1);
    return p;
}

mora_status mora_cpu_plan_create(const mora_shape *s, mora_dtype dtype, const mora_cpu_params *params,
                                 mora_cpu_plan **out) {
    MORA_CHECK_PTR(s);
    MORA_CHECK_PTR(out);
    MORA_TRY(mora_shape_check(s));
    if (mora_dtype_size(dtype) == 0)
        return mora_fail(MORA_E_UNKNOWN_DTYPE, "dtype=%d: unknown; expected 0 (f32), 1 (f16) or 2 (bf16)", (int)dtype);
    const mora_cpu_params none = {0, 0, 0, 0};
    if (!params) params = &none;
    if (params->tile_tokens < 0)
        return mora_fail(MORA_E_PARAM, "tile_tokens=%d: must be >= 0 (0: default)", params->tile_tokens);
    if (params->threads < 0 || params->threads > CPU_MAX_THREADS)
        return mora_fail(MORA_E_PARAM, "threads=%d: must be in [0, %d] (0: online cores)", params->threads,
                         CPU_MAX_THREADS);
    if (params->gemm < 0 || params->gemm > MORA_GEMM_PROVIDER_COUNT)
        return mora_fail(MORA_E_PARAM, "gemm=%d: must be in [0, %d] (auto, openblas, onednn, blis)", params->gemm,
                         MORA_GEMM_PROVIDER_COUNT);
    const mora_gemm_provider provider = params->gemm ? (mora_gemm_provider)(params->gemm - 1) : mora_gemm_default();
    if (!mora_gemm_available(provider))
        return mora_fail(MORA_E_UNSUPPORTED, "gemm=%s: not available here (%s)", mora_gemm_name(provider),
                         mora_gemm_why_absent(provider));
    if (s->rhat > INT32_MAX)
        return mora_fail(MORA_E_SIZE, "rhat=%lld: sgemm takes int sizes, must be <= %d", (long long)s->rhat, INT32_MAX);

    mora_cpu_plan *p = calloc(1, sizeof *p);
    if (!p) return mora_fail(MORA_E_NO_MEMORY, "cpu plan: out of host memory");
    const mora_geometry geo = mora_shape_geometry(s);
    p->shape = *s;
    p->dtype = dtype;
    p->d_in = s->d_in;
    p->d_out = s->d_out;
    p->rhat = s->rhat;
    p->half = geo.half;
    p->wrap_blocks = geo.wrap_blocks;
    p->padded = geo.padded;
    p->blocks = geo.blocks_read;
    p->entries = p->blocks * s->rhat;
    p->rowlen = s->d_in > s->d_out ? s->d_in : s->d_out;
    if (p->padded > p->rowlen) p->rowlen = p->padded;
    p->comp = mora_op_comp_family(s->op);
    p->decomp = mora_op_decomp_family(s->op);

    if ((int64_t)params->tile_tokens * p->blocks > INT32_MAX) {
        mora_cpu_plan_destroy(p);
        return mora_fail(MORA_E_PARAM, "tile_tokens=%d: times %lld blocks, more sgemm rows than an int holds",
                         params->tile_tokens, (long long)geo.blocks_read);
    }
    const mora_cpu_params resolved = resolve_params(s, params);
    p->tile = resolved.tile_tokens;
    p->threads = resolved.threads;
    p->gemm = provider;
    p->folded = resolved.fold;

    int ok = 1;
    if (p->comp == MORA_COMP_GROUP) ok &= (p->run_in = run_table(p->d_in, p->rhat)) != NULL;
    if (p->decomp == MORA_DECOMP_GROUP) ok &= (p->run_out = run_table(p->d_out, p->rhat)) != NULL;
    if (ok && p->comp == MORA_COMP_ROPE) {
        const size_t count = (size_t)(p->wrap_blocks * p->half);
        p->cos_t = malloc((count ? count : 1) * sizeof *p->cos_t);
        p->sin_t = malloc((count ? count : 1) * sizeof *p->sin_t);
        ok = p->cos_t && p->sin_t;
        for (int64_t t = 0; ok && t < p->wrap_blocks; ++t)
            for (int64_t i = 0; i < p->half; ++i) {
                const double angle = mora_rope_angle(p->rhat, t, i);
                p->cos_t[t * p->half + i] = (float)cos(angle);
                p->sin_t[t * p->half + i] = (float)sin(angle);
            }
    }
    if (!ok) {
        mora_cpu_plan_destroy(p);
        return mora_fail(MORA_E_NO_MEMORY, "cpu plan for d_in=%lld, d_out=%lld, rhat=%lld: out of host memory",
                         (long long)s->d_in, (long long)s->d_out, (long long)s->rhat);
    }
    *out = p;
    return MORA_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Workspace layout. A call on n tokens uses `workers` slices of `slice` bytes, each holding:
 *   A, B     tile buffers, tile·entries floats each (packed comp(x) / decompᵀ(dy), sgemm products)
 *   r0, r1   scratch rows, rowlen floats each (a converted activation row, the padded row)
 *   P, S, K  r̂ x r̂ floats each: a tile's dM product, the worker's partial sum, its compensation
 * A call with fewer tokens never needs more (workers and tile only shrink with n).
 * ------------------------------------------------------------------------------------------- */
typedef struct layout {
    int workers;
    int64_t tile;
    size_t tile_bytes, row_bytes, mat_bytes, slice;
} layout;

/* What the layout depends on: the pipeline packs `entries` = blocks·r̂ floats per token and keeps 3
 * r̂ x r̂ matrices; the folded form packs one block (r̂ floats per token) and keeps a 4th, M_t. */
typedef struct layout_sizes {
    int64_t threads, tile, entries, rowlen, rhat, mats;
} layout_sizes;

static size_t round_up(size_t v) { return (v + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN; }

static layout layout_of(const layout_sizes *z, int64_t n) {
    layout L;
    if (n < 1) n = 1;
    int64_t w = z->threads;
    const int64_t by_size = (n + CPU_MIN_TOKENS_PER_WORKER - 1) / CPU_MIN_TOKENS_PER_WORKER;
    if (w > by_size) w = by_size;
    if (w < 1) w = 1;
    int64_t tile = z->tile, share = (n + w - 1) / w;
    if (tile > share) tile = share;
    L.workers = (int)w;
    L.tile = tile;
    L.tile_bytes = round_up((size_t)(tile * z->entries) * sizeof(float));
    L.row_bytes = round_up((size_t)z->rowlen * sizeof(float));
    L.mat_bytes = round_up((size_t)(z->rhat * z->rhat) * sizeof(float));
    L.slice = 2 * L.tile_bytes + 2 * L.row_bytes + (size_t)z->mats * L.mat_bytes;
    return L;
}

static layout make_layout(const mora_cpu_plan *p, int64_t n) {
    const layout_sizes z = {p->threads, p->tile, p->folded ? p->rhat : p->entries, p->rowlen, p->rhat, p->folded ? 4 : 3};
    return layout_of(&z, n);
}

static size_t workspace_bytes(const layout *L) {
    return (size_t)L->workers * L->slice + CPU_ALIGN; /* + CPU_ALIGN: the caller's pointer may be unaligned */
}

size_t mora_cpu_workspace_bytes(const mora_cpu_plan *p, int64_t n) {
    const layout L = make_layout(p, n);
    return workspace_bytes(&L);
}

size_t mora_cpu_workspace_bytes_for(const mora_shape *s, const mora_cpu_params *params, int64_t n) {
    const mora_cpu_params r = resolve_params(s, params);
    const mora_geometry geo = mora_shape_geometry(s);
    int64_t rowlen = s->d_in > s->d_out ? s->d_in : s->d_out;
    if (geo.padded > rowlen) rowlen = geo.padded;
    const layout_sizes z = {r.threads, r.tile_tokens, r.fold ? s->rhat : geo.blocks_read * s->rhat, rowlen, s->rhat,
                            r.fold ? 4 : 3};
    const layout L = layout_of(&z, n);
    return workspace_bytes(&L);
}

typedef struct slice {
    float *A, *B, *r0, *r1, *P, *S, *K, *Mt; /* Mt: the folded form's M_t (absent in the pipeline's slice) */
} slice;

static slice slice_at(const layout *L, void *workspace, int w) {
    uintptr_t base = ((uintptr_t)workspace + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN;
    char *c = (char *)base + (size_t)w * L->slice;
    slice sl;
    sl.A = (float *)c, c += L->tile_bytes;
    sl.B = (float *)c, c += L->tile_bytes;
    sl.r0 = (float *)c, c += L->row_bytes;
    sl.r1 = (float *)c, c += L->row_bytes;
    sl.P = (float *)c, c += L->mat_bytes;
    sl.S = (float *)c, c += L->mat_bytes;
    sl.K = (float *)c, c += L->mat_bytes;
    sl.Mt = (float *)c; /* within the slice only in the folded form's layout */
    return sl;
}

/* ---------------------------------------------------------------------------------------------
 * Rows: loading activations as float, storing them back.
 * ------------------------------------------------------------------------------------------- */
static size_t act_size(mora_dtype dt) { return dt == MORA_F32 ? 4 : 2; }

/* Row i of an activation matrix as floats: the row itself for f32, else converted into buf. */
static const float *load_row(mora_dtype dt, const void *base, int64_t ld, int64_t i, int64_t len, float *buf) {
    const char *row = (const char *)base + (size_t)(i * ld) * act_size(dt);
    if (dt == MORA_F32) return (const float *)row;
    for (int64_t k = 0; k < len; ++k) buf[k] = mora_load_act(dt, row, k);
    return buf;
}

/* A writable float view of row i: the row itself for f32; else buf loaded with it (store_row writes
 * it back). */
static float *open_row(mora_dtype dt, void *base, int64_t ld, int64_t i, int64_t len, float *buf) {
    char *row = (char *)base + (size_t)(i * ld) * act_size(dt);
    if (dt == MORA_F32) return (float *)row;
    for (int64_t k = 0; k < len; ++k) buf[k] = mora_load_act(dt, row, k);
    return buf;
}

static void store_row(mora_dtype dt, void *base, int64_t ld, int64_t i, int64_t len, const float *buf) {
    if (dt == MORA_F32) return;
    char *row = (char *)base + (size_t)(i * ld) * act_size(dt);
    for (int64_t k = 0; k < len; ++k) mora_store_act(dt, row, k, buf[k]);
}

/* out[0:len] = x_pad[0:len] (the input repeated, wrapping around); returns x itself when len <= d_in. */
static const float *padded_row(const float *restrict x, int64_t d_in, int64_t len, float *restrict out) {
    if (len <= d_in) return x;
    for (int64_t q0 = 0; q0 < len; q0 += d_in) memcpy(out + q0, x, (size_t)(len - q0 < d_in ? len - q0 : d_in) * sizeof *out);
    return out;
}

/* y[0:len] += x[0:len] */
static inline void add_to(float *restrict y, const float *restrict x, int64_t len) {
    for (int64_t i = 0; i < len; ++i) y[i] += x[i];
}

/* ---------------------------------------------------------------------------------------------
 * Packing: comp(x) and decompᵀ(dy) of one token, `entries` floats.
 * ------------------------------------------------------------------------------------------- */
static void pack_comp(const mora_cpu_plan *p, const float *restrict x, float *restrict c, float *restrict pad) {
    const int64_t rhat = p->rhat, h = p->half;
    switch (p->comp) {
    case MORA_COMP_TRUNC: /* c = x[0:r̂] */
        memcpy(c, x, (size_t)rhat * sizeof *c);
        break;
    case MORA_COMP_GROUP: /* c[g] = sum of run g */
        for (int64_t g = 0; g < rhat; ++g) {
            float acc = 0.0f;
            for (int64_t q = p->run_in[g]; q < p->run_in[g + 1]; ++q) acc += x[q];
            c[g] = acc;
        }
        break;
    case MORA_COMP_SHARE: { /* c[b] = Σ_t x_pad[t·r̂ + b], t ascending */
        const float *v = padded_row(x, p->d_in, p->padded, pad);
        memcpy(c, v, (size_t)rhat * sizeof *c);
        for (int64_t t = 1; t < p->wrap_blocks; ++t) add_to(c, v + t * rhat, rhat);
        break;
    }
    case MORA_COMP_RESHAPE: /* c_t = block t of x_pad, t < blocks */
        if (p->entries <= p->d_in)
            memcpy(c, x, (size_t)p->entries * sizeof *c);
        else
            padded_row(x, p->d_in, p->entries, c);
        break;
    case MORA_COMP_ROPE: { /* c_t = R_t · block t of x_pad */
        const float *v = padded_row(x, p->d_in, p->entries, pad);
        for (int64_t t = 0; t < p->blocks; ++t) {
            const float *restrict lo = v + t * rhat, *restrict hi = lo + h;
            const float *restrict cs = p->cos_t + t * h, *restrict sn = p->sin_t + t * h;
            float *restrict ct = c + t * rhat;
            for (int64_t i = 0; i < h; ++i) {
                ct[i] = lo[i] * cs[i] - hi[i] * sn[i];
                ct[i + h] = hi[i] * cs[i] + lo[i] * sn[i];
            }
        }
        break;
    }
    }
}

static void pack_decomp_t(const mora_cpu_plan *p, const float *restrict dy, float *restrict g) {
    const int64_t rhat = p->rhat, d_out = p->d_out;
    switch (p->decomp) {
    case MORA_DECOMP_TRUNC: /* g = dy[0:r̂] */
        memcpy(g, dy, (size_t)rhat * sizeof *g);
        break;
    case MORA_DECOMP_GROUP: /* g[a] = sum of run a of dy */
        for (int64_t a = 0; a < rhat; ++a) {
            float acc = 0.0f;
            for (int64_t j = p->run_out[a]; j < p->run_out[a + 1]; ++j) acc += dy[j];
            g[a] = acc;
        }
        break;
    case MORA_DECOMP_SHARE:     /* g[a] = Σ_{j ≡ a mod r̂} dy[j] */
    case MORA_DECOMP_RESHAPE: { /* g_flat[k] = Σ_{j ≡ k mod B·r̂} dy[j], k < blocks·r̂ */
        const int64_t period = p->decomp == MORA_DECOMP_SHARE ? rhat : p->padded, len = p->entries;
        const int64_t first = d_out < len ? d_out : len;
        memcpy(g, dy, (size_t)first * sizeof *g);
        if (first < len) memset(g + first, 0, (size_t)(len - first) * sizeof *g);
        for (int64_t j0 = period; j0 < d_out; j0 += period) add_to(g, dy + j0, d_out - j0 < period ? d_out - j0 : period);
        break;
    }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Write-back: y += decomp(h) and dx += compᵀ(u) of one token.
 * ------------------------------------------------------------------------------------------- */
static void add_decomp(const mora_cpu_plan *p, const float *restrict hv, float *restrict y) {
    const int64_t rhat = p->rhat, d_out = p->d_out;
    switch (p->decomp) {
    case MORA_DECOMP_TRUNC: /* y[j] += h[j], j < r̂; the rest reads nothing */
        add_to(y, hv, rhat);
        break;
    case MORA_DECOMP_GROUP: /* y[j] += h[run of j] */
        for (int64_t a = 0; a < rhat; ++a) {
            const float v = hv[a];
            for (int64_t j = p->run_out[a]; j < p->run_out[a + 1]; ++j) y[j] += v;
        }
        break;
    case MORA_DECOMP_SHARE:   /* y[j] += h[j mod r̂] */
    case MORA_DECOMP_RESHAPE: { /* y[j] += h_flat[j mod B·r̂] */
        const int64_t period = p->decomp == MORA_DECOMP_SHARE ? rhat : p->padded;
        for (int64_t j0 = 0; j0 < d_out; j0 += period) add_to(y + j0, hv, d_out - j0 < period ? d_out - j0 : period);
        break;
    }
    }
}

/* dx[p] += Σ_{q ≡ p mod d_in, q < len} w[q]; w is scratch (folded in place). */
static void fold_add(float *restrict w, int64_t len, int64_t d_in, float *restrict dx) {
    const int64_t first = len < d_in ? len : d_in;
    for (int64_t q0 = d_in; q0 < len; q0 += d_in) add_to(w, w + q0, len - q0 < d_in ? len - q0 : d_in);
    add_to(dx, w, first);
}

/* u: blocks·r̂ floats of Mᵀg (scratch, modified); wbuf: rowlen floats of scratch. */
static void add_comp_t(const mora_cpu_plan *p, float *restrict u, float *restrict dx, float *restrict wbuf) {
    const int64_t rhat = p->rhat, h = p->half;
    switch (p->comp) {
    case MORA_COMP_TRUNC: /* dx[p] += u[p], p < r̂ */
        add_to(dx, u, rhat);
        break;
    case MORA_COMP_GROUP: /* dx[p] += u[run of p] */
        for (int64_t g = 0; g < rhat; ++g) {
            const float v = u[g];
            for (int64_t q = p->run_in[g]; q < p->run_in[g + 1]; ++q) dx[q] += v;
        }
        break;
    case MORA_COMP_SHARE: /* padded position q fed c[q mod r̂]: w = u tiled B times, folded */
        for (int64_t t = 0; t < p->wrap_blocks; ++t) memcpy(wbuf + t * rhat, u, (size_t)rhat * sizeof *wbuf);
        fold_add(wbuf, p->padded, p->d_in, dx);
        break;
    case MORA_COMP_RESHAPE: /* q fed c_flat[q] (q < blocks·r̂; later blocks have g = 0) */
        fold_add(u, p->entries, p->d_in, dx);
        break;
    case MORA_COMP_ROPE: /* q in block t receives (R_tᵀ u_t)[q mod r̂] */
        for (int64_t t = 0; t < p->blocks; ++t) {
            const float *restrict lo = u + t * rhat, *restrict hi = lo + h;
            const float *restrict cs = p->cos_t + t * h, *restrict sn = p->sin_t + t * h;
            float *restrict v = wbuf + t * rhat;
            for (int64_t i = 0; i < h; ++i) {
                v[i] = lo[i] * cs[i] + hi[i] * sn[i];
                v[i + h] = hi[i] * cs[i] - lo[i] * sn[i];
            }
        }
        fold_add(wbuf, p->entries, p->d_in, dx);
        break;
    }
}

/* S + K (Kahan): S += P with the running compensation K (S − K is the sum so far). */
static void kahan_add(float *restrict S, float *restrict K, const float *restrict P, int64_t len) {
    for (int64_t e = 0; e < len; ++e) {
        const float y = P[e] - K[e];
        const float t = S[e] + y;
        K[e] = (t - S[e]) - y;
        S[e] = t;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Workers
 * ------------------------------------------------------------------------------------------- */
typedef struct job {
    const mora_cpu_plan *p;
    const layout *L;
    void *workspace;
    const float *M;
    const void *x;
    int64_t ldx;
    const void *dy;
    int64_t lddy;
    void *out; /* y (forward) or dx (backward) */
    int64_t ldo;
    int want_dm; /* backward: accumulate dM into this worker's S/K */
    float scale;
    int backward;
    int w;          /* worker index */
    int64_t t0, t1; /* static split: tokens [t0, t1) */
    atomic_llong *next; /* dynamic split (not NULL): the next tile index to take, shared by the workers */
    int64_t n;          /* dynamic split: the tokens of the call */
} job;

/* The next tile of a worker: from its own range (static), or the next one nobody has taken
 * (dynamic). Tiles are the same token ranges [k·T, (k+1)·T) either way, and a tile's result does not
 * depend on which worker computes it, so y and dx are the same bits for any schedule; dM's partials
 * are per worker, so a call that accumulates dM always splits statically. */
static int next_tile(const job *jb, int64_t *cursor, int64_t *r0, int64_t *tn) {
    const int64_t T = jb->L->tile;
    if (jb->next) {
        *r0 = (int64_t)atomic_fetch_add_explicit(jb->next, 1, memory_order_relaxed) * T;
        if (*r0 >= jb->n) return 0;
        *tn = jb->n - *r0 < T ? jb->n - *r0 : T;
        return 1;
    }
    if (*cursor >= jb->t1) return 0;
    *r0 = *cursor;
    *tn = jb->t1 - *r0 < T ? jb->t1 - *r0 : T;
    *cursor += *tn;
    return 1;
}

static void forward_range(const job *jb) {
    const mora_cpu_plan *p = jb->p;
    const slice sl = slice_at(jb->L, jb->workspace, jb->w);
    const int64_t E = p->entries, rhat = p->rhat;
    const mora_dtype dt = p->dtype;
    for (int64_t cursor = jb->t0, r0, tn; next_tile(jb, &cursor, &r0, &tn);) {
        for (int64_t i = 0; i < tn; ++i)
            pack_comp(p, load_row(dt, jb->x, jb->ldx, r0 + i, p->d_in, sl.r0), sl.A + i * E, sl.r1);
        /* H[rows][r̂] = scale · C · Mᵀ: h = M c for every (token, block) row */
        mora_gemm(p->gemm, 0, 1, (int)(tn * p->blocks), (int)rhat, (int)rhat, jb->scale, sl.A, (int)rhat, jb->M, (int)rhat,
                  0.0f, sl.B, (int)rhat);
        for (int64_t i = 0; i < tn; ++i) {
            float *y = open_row(dt, jb->out, jb->ldo, r0 + i, p->d_out, sl.r0);
            add_decomp(p, sl.B + i * E, y);
            store_row(dt, jb->out, jb->ldo, r0 + i, p->d_out, y);
        }
    }
}

static void backward_range(const job *jb) {
    const mora_cpu_plan *p = jb->p;
    const slice sl = slice_at(jb->L, jb->workspace, jb->w);
    const int64_t E = p->entries, rhat = p->rhat;
    const mora_dtype dt = p->dtype;
    if (jb->want_dm) {
        memset(sl.S, 0, (size_t)(rhat * rhat) * sizeof *sl.S);
        memset(sl.K, 0, (size_t)(rhat * rhat) * sizeof *sl.K);
    }
    int64_t group_rows = 0; /* rows summed into P since it last joined S */
    for (int64_t cursor = jb->t0, r0, tn; next_tile(jb, &cursor, &r0, &tn);) {
        const int64_t rows = tn * p->blocks;
        float *G = sl.B, *C = sl.A;
        for (int64_t i = 0; i < tn; ++i) pack_decomp_t(p, load_row(dt, jb->dy, jb->lddy, r0 + i, p->d_out, sl.r0), G + i * E);
        if (jb->want_dm) {
            for (int64_t i = 0; i < tn; ++i)
                pack_comp(p, load_row(dt, jb->x, jb->ldx, r0 + i, p->d_in, sl.r0), C + i * E, sl.r1);
            /* P[a][b] (+)= Σ_rows g[a]·c[b] of this tile; a full group joins S, compensated */
            mora_gemm(p->gemm, 1, 0, (int)rhat, (int)rhat, (int)rows, 1.0f, G, (int)rhat, C, (int)rhat,
                      group_rows ? 1.0f : 0.0f, sl.P, (int)rhat);
            group_rows += rows;
            if (group_rows >= CPU_DM_GROUP_ROWS || r0 + tn >= jb->t1) {
                kahan_add(sl.S, sl.K, sl.P, rhat * rhat);
                group_rows = 0;
            }
        }
        if (jb->out) {
            float *U = C; /* C is free again */
            /* U[rows][r̂] = scale · G · M: u = Mᵀ g per row */
            mora_gemm(p->gemm, 0, 0, (int)rows, (int)rhat, (int)rhat, jb->scale, G, (int)rhat, jb->M, (int)rhat, 0.0f, U,
                      (int)rhat);
            for (int64_t i = 0; i < tn; ++i) {
                float *dx = open_row(dt, jb->out, jb->ldo, r0 + i, p->d_in, sl.r0);
                add_comp_t(p, U + i * E, dx, sl.r1);
                store_row(dt, jb->out, jb->ldo, r0 + i, p->d_in, dx);
            }
        }
    }
}


/* ---------------------------------------------------------------------------------------------
 * The folded form (rope, reshape): with M_t = M·R_t (M itself for reshape) every block is a plain
 * GEMM on a strided slice of the activations (docs/operators.md):
 *   forward   y_t += scale · x_t · M_tᵀ          bwd dx   dx_t += scale · g_t · M_t
 *   bwd dM    dM  += scale · Σ_t (g_tᵀ · x_t) · R_tᵀ
 * where x_t is block t of x_pad and g_t block t of decompᵀ(dy). For f32 rows a block that is a slice
 * of the caller's rows is used in place and the GEMM adds into y / dx itself (beta 1): no packing,
 * no rotated copy, no gather. The wrapped last input block, output blocks past d_out, tiled outputs
 * (d_out > B·r̂) and f16/bf16 rows go through the slice's buffers (packed, converted, scattered).
 * `tile` tokens per GEMM. The forward and a backward without dM split dynamically (a worker takes the
 * next token tile and runs all its blocks); a backward with dM statically (each worker block by block
 * over its own range of tokens), dM's per-block products summed in groups and rotated into the
 * worker's compensated sum.
 * ------------------------------------------------------------------------------------------- */

/* M_t = M·R_t: (M R_t)[a][j] = M[a][j]·cos + M[a][j+h]·sin, (M R_t)[a][j+h] = M[a][j+h]·cos − M[a][j]·sin. */
static const float *block_matrix(const mora_cpu_plan *p, const float *M, int64_t t, float *Mt) {
    if (p->comp != MORA_COMP_ROPE || t == 0) return M; /* reshape, and rope's block 0 (θ = 0) */
    const int64_t rhat = p->rhat, h = p->half;
    const float *restrict cs = p->cos_t + t * h, *restrict sn = p->sin_t + t * h;
    for (int64_t a = 0; a < rhat; ++a) {
        const float *restrict m = M + a * rhat;
        float *restrict o = Mt + a * rhat;
        for (int64_t j = 0; j < h; ++j) {
            o[j] = m[j] * cs[j] + m[j + h] * sn[j];
            o[j + h] = m[j + h] * cs[j] - m[j] * sn[j];
        }
    }
    return Mt;
}

/* P = P·R_tᵀ, row by row: each row rotated as rope rotates a vector (rope only). */
static void rotate_rows(const mora_cpu_plan *p, int64_t t, float *P) {
    if (p->comp != MORA_COMP_ROPE || t == 0) return;
    const int64_t rhat = p->rhat, h = p->half;
    const float *restrict cs = p->cos_t + t * h, *restrict sn = p->sin_t + t * h;
    for (int64_t a = 0; a < rhat; ++a) {
        float *restrict r = P + a * rhat;
        for (int64_t j = 0; j < h; ++j) {
            const float lo = r[j], hi = r[j + h];
            r[j] = lo * cs[j] - hi * sn[j];
            r[j + h] = hi * cs[j] + lo * sn[j];
        }
    }
}

/* Rows [r0, r0 + tn) of block t of x_pad as float32, *ld apart: the caller's f32 rows themselves when
 * the block lies inside d_in; else packed into buf (converted, wrapped around d_in), ld = r̂. */
static const float *block_in(const mora_cpu_plan *p, const void *x, int64_t ldx, int64_t r0, int64_t tn, int64_t t,
                             float *buf, float *row, int64_t *ld) {
    const int64_t rhat = p->rhat, first = t * rhat;
    if (p->dtype == MORA_F32 && first + rhat <= p->d_in) {
        *ld = ldx;
        return (const float *)x + (size_t)(r0 * ldx + first);
    }
    *ld = rhat;
    for (int64_t i = 0; i < tn; ++i) {
        const float *xr = load_row(p->dtype, x, ldx, r0 + i, p->d_in, row);
        float *dst = buf + i * rhat;
        for (int64_t c = 0; c < rhat;) { /* runs of consecutive positions (first + c) mod d_in */
            const int64_t q = (first + c) % p->d_in;
            const int64_t len = p->d_in - q < rhat - c ? p->d_in - q : rhat - c;
            memcpy(dst + c, xr + q, (size_t)len * sizeof *dst);
            c += len;
        }
    }
    return buf;
}

/* Rows of g_t, block t of decompᵀ(dy): g_t[c] = Σ over j < d_out with j ≡ t·r̂ + c (mod B·r̂) of dy[j]
 * (zero where no output reads it). The caller's f32 rows themselves when the block is one slice of
 * dy (inside d_out, no tiling); else packed into buf, ld = r̂. */
static const float *block_g(const mora_cpu_plan *p, const void *dy, int64_t lddy, int64_t r0, int64_t tn, int64_t t,
                            float *buf, float *row, int64_t *ld) {
    const int64_t rhat = p->rhat, first = t * rhat, period = p->padded, d_out = p->d_out;
    if (p->dtype == MORA_F32 && first + rhat <= d_out && d_out <= period) {
        *ld = lddy;
        return (const float *)dy + (size_t)(r0 * lddy + first);
    }
    *ld = rhat;
    for (int64_t i = 0; i < tn; ++i) {
        const float *dr = load_row(p->dtype, dy, lddy, r0 + i, d_out, row);
        float *g = buf + i * rhat;
        memset(g, 0, (size_t)rhat * sizeof *g);
        for (int64_t j0 = first; j0 < d_out; j0 += period) add_to(g, dr + j0, d_out - j0 < rhat ? d_out - j0 : rhat);
    }
    return buf;
}

/* y[j] += h[c] for every output j ≡ t·r̂ + c (mod B·r̂), j < d_out; h: tn rows of r̂. */
static void scatter_y(const mora_cpu_plan *p, void *y, int64_t ldy, int64_t r0, int64_t tn, int64_t t, const float *h) {
    const int64_t rhat = p->rhat, first = t * rhat, period = p->padded, d_out = p->d_out;
    const size_t es = act_size(p->dtype);
    for (int64_t i = 0; i < tn; ++i) {
        char *row = (char *)y + (size_t)((r0 + i) * ldy) * es;
        const float *hr = h + i * rhat;
        for (int64_t j0 = first; j0 < d_out; j0 += period) {
            const int64_t len = d_out - j0 < rhat ? d_out - j0 : rhat;
            if (p->dtype == MORA_F32) {
                add_to((float *)row + j0, hr, len);
                continue;
            }
            for (int64_t c = 0; c < len; ++c) mora_store_act(p->dtype, row, j0 + c, mora_load_act(p->dtype, row, j0 + c) + hr[c]);
        }
    }
}

/* dx[(t·r̂ + c) mod d_in] += u[c]; u: tn rows of r̂. */
static void scatter_dx(const mora_cpu_plan *p, void *dx, int64_t lddx, int64_t r0, int64_t tn, int64_t t, const float *u) {
    const int64_t rhat = p->rhat, first = t * rhat, d_in = p->d_in;
    const size_t es = act_size(p->dtype);
    for (int64_t i = 0; i < tn; ++i) {
        char *row = (char *)dx + (size_t)((r0 + i) * lddx) * es;
        const float *ur = u + i * rhat;
        for (int64_t c = 0; c < rhat;) {
            const int64_t q = (first + c) % d_in;
            const int64_t len = d_in - q < rhat - c ? d_in - q : rhat - c;
            if (p->dtype == MORA_F32) {
                add_to((float *)row + q, ur + c, len);
            } else {
                for (int64_t k = 0; k < len; ++k)
                    mora_store_act(p->dtype, row, q + k, mora_load_act(p->dtype, row, q + k) + ur[c + k]);
            }
            c += len;
        }
    }
}

/* y's rows [r0, r0 + tn) of block t: y_t += scale · x_t · M_tᵀ. */
static void folded_forward_tile(const job *jb, const slice *sl, int64_t t, const float *Mt, int64_t r0, int64_t tn) {
    const mora_cpu_plan *p = jb->p;
    const int64_t rhat = p->rhat, first = t * rhat;
    int64_t lda;
    const float *A = block_in(p, jb->x, jb->ldx, r0, tn, t, sl->A, sl->r0, &lda);
    if (p->dtype == MORA_F32 && first + rhat <= p->d_out && p->d_out <= p->padded) {
        mora_gemm(p->gemm, 0, 1, (int)tn, (int)rhat, (int)rhat, jb->scale, A, (int)lda, Mt, (int)rhat, 1.0f,
                  (float *)jb->out + (size_t)(r0 * jb->ldo + first), (int)jb->ldo);
    } else {
        mora_gemm(p->gemm, 0, 1, (int)tn, (int)rhat, (int)rhat, jb->scale, A, (int)lda, Mt, (int)rhat, 0.0f, sl->B,
                  (int)rhat);
        scatter_y(p, jb->out, jb->ldo, r0, tn, t, sl->B);
    }
}

/* dx's rows [r0, r0 + tn) of block t: dx_t += scale · g_t · M_t, G the tile's g_t rows (ldg apart). */
static void folded_dx_tile(const job *jb, const slice *sl, int64_t t, const float *Mt, int64_t r0, int64_t tn,
                           const float *G, int64_t ldg) {
    const mora_cpu_plan *p = jb->p;
    const int64_t rhat = p->rhat, first = t * rhat;
    if (p->dtype == MORA_F32 && first + rhat <= p->d_in) {
        mora_gemm(p->gemm, 0, 0, (int)tn, (int)rhat, (int)rhat, jb->scale, G, (int)ldg, Mt, (int)rhat, 1.0f,
                  (float *)jb->out + (size_t)(r0 * jb->ldo + first), (int)jb->ldo);
    } else {
        mora_gemm(p->gemm, 0, 0, (int)tn, (int)rhat, (int)rhat, jb->scale, G, (int)ldg, Mt, (int)rhat, 0.0f, sl->A,
                  (int)rhat);
        scatter_dx(p, jb->out, jb->ldo, r0, tn, t, sl->A);
    }
}

/* The dynamic split of the folded form (forward, and a backward without dM): a worker takes the next
 * token tile nobody has taken and runs every block of it in order, making each M_t again (r̂² work
 * against the tile GEMM's T·r̂², under 1 % at T = 256). A tile owns its rows of y / dx, so the wrapped
 * block's adds into dx's first positions happen in the same order whoever runs the tile: the same
 * bits for any schedule, and a worker whose core is taken by another process's thread (torch's
 * OpenMP workers spin after each op) simply takes fewer tiles. */
static void folded_dynamic(const job *jb) {
    const mora_cpu_plan *p = jb->p;
    const slice sl = slice_at(jb->L, jb->workspace, jb->w);
    for (int64_t cursor = 0, r0, tn; next_tile(jb, &cursor, &r0, &tn);)
        for (int64_t t = 0; t < p->blocks; ++t) {
            const float *Mt = block_matrix(p, jb->M, t, sl.Mt);
            if (!jb->backward) {
                folded_forward_tile(jb, &sl, t, Mt, r0, tn);
                continue;
            }
            int64_t ldg;
            const float *G = block_g(p, jb->dy, jb->lddy, r0, tn, t, sl.B, sl.r0, &ldg);
            folded_dx_tile(jb, &sl, t, Mt, r0, tn, G, ldg);
        }
}

/* The static split of the folded form, for a backward with dM (whose per-worker partial sums must not
 * depend on the schedule): block by block over the worker's own range of tokens, each tile's g_t
 * feeding both dM's product and dx's. */
static void folded_range(const job *jb) {
    const mora_cpu_plan *p = jb->p;
    const slice sl = slice_at(jb->L, jb->workspace, jb->w);
    const int64_t rhat = p->rhat, T = jb->L->tile;
    if (jb->want_dm) {
        memset(sl.S, 0, (size_t)(rhat * rhat) * sizeof *sl.S);
        memset(sl.K, 0, (size_t)(rhat * rhat) * sizeof *sl.K);
    }
    for (int64_t t = 0; t < p->blocks; ++t) {
        /* M_t for dx; dM needs only the rotation of its products */
        const float *Mt = jb->out ? block_matrix(p, jb->M, t, sl.Mt) : NULL;
        int64_t group_rows = 0; /* rows summed into P since it last joined S */
        for (int64_t r0 = jb->t0; r0 < jb->t1; r0 += T) {
            const int64_t tn = jb->t1 - r0 < T ? jb->t1 - r0 : T;
            int64_t ldg;
            const float *G = block_g(p, jb->dy, jb->lddy, r0, tn, t, sl.B, sl.r0, &ldg);
            if (jb->want_dm) {
                int64_t ldx;
                const float *X = block_in(p, jb->x, jb->ldx, r0, tn, t, sl.A, sl.r1, &ldx);
                mora_gemm(p->gemm, 1, 0, (int)rhat, (int)rhat, (int)tn, 1.0f, G, (int)ldg, X, (int)ldx,
                          group_rows ? 1.0f : 0.0f, sl.P, (int)rhat);
                group_rows += tn;
                if (group_rows >= CPU_DM_GROUP_ROWS || r0 + tn >= jb->t1) {
                    rotate_rows(p, t, sl.P);
                    kahan_add(sl.S, sl.K, sl.P, rhat * rhat);
                    group_rows = 0;
                }
            }
            if (jb->out) folded_dx_tile(jb, &sl, t, Mt, r0, tn, G, ldg);
        }
    }
}

static void worker_main(void *arg, int w) {
    const job *jb = (const job *)arg + w;
    if (jb->p->folded && jb->next)
        folded_dynamic(jb);
    else if (jb->p->folded)
        folded_range(jb);
    else if (jb->backward)
        backward_range(jb);
    else
        forward_range(jb);
}

/* Runs jobs[0..L->workers) (ranges filled in here): workers 1.. on new threads, 0 on the caller's.
 * dynamic: the workers take tiles from a shared counter, so a worker whose core is busy with
 * something else takes fewer (only for calls whose results do not depend on the schedule). */
static void run_workers(job *jobs, const layout *L, int64_t n, int dynamic) {
    const int W = L->workers;
    atomic_llong next_tile_index;
    atomic_init(&next_tile_index, 0);
    /* split the tiles evenly: worker w gets tiles [w·tiles/W, (w+1)·tiles/W) */
    const int64_t tiles = (n + L->tile - 1) / L->tile;
    for (int w = 0; w < W; ++w) {
        jobs[w].w = w;
        jobs[w].t0 = (tiles * w / W) * L->tile;
        jobs[w].t1 = (tiles * (w + 1) / W) * L->tile;
        if (jobs[w].t1 > n) jobs[w].t1 = n;
        if (jobs[w].t0 > n) jobs[w].t0 = n;
        jobs[w].next = dynamic ? &next_tile_index : NULL;
        jobs[w].n = n;
    }
    mora_cpu_pool_run(W, worker_main, jobs);
}

/* ---------------------------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------------------------- */
mora_status mora_cpu_forward(const mora_cpu_plan *p, const float *M, const void *x, int64_t ldx, void *y, int64_t ldy,
                             int64_t n, float scale, void *workspace) {
    if (n <= 0) return MORA_OK;
    const layout L = make_layout(p, n);
    job jobs[CPU_MAX_THREADS];
    for (int w = 0; w < L.workers; ++w)
        jobs[w] = (job){.p = p, .L = &L, .workspace = workspace, .M = M, .x = x, .ldx = ldx, .out = y, .ldo = ldy,
                        .scale = scale};
    run_workers(jobs, &L, n, 1); /* a tile owns its rows of y: any schedule gives the same bits */
    return MORA_OK;
}

mora_status mora_cpu_backward(const mora_cpu_plan *p, const float *M, const void *x, int64_t ldx, const void *dy,
                              int64_t lddy, void *dx, int64_t lddx, float *dM, int64_t n, float scale,
                              void *workspace) {
    if (n <= 0 || (dx == NULL && dM == NULL)) return MORA_OK;
    const layout L = make_layout(p, n);
    job jobs[CPU_MAX_THREADS];
    for (int w = 0; w < L.workers; ++w)
        jobs[w] = (job){.p = p, .L = &L, .workspace = workspace, .M = M, .x = x, .ldx = ldx, .dy = dy, .lddy = lddy,
                        .out = dx, .ldo = lddx, .want_dm = dM != NULL, .scale = scale, .backward = 1};
    run_workers(jobs, &L, n, dM == NULL);
    if (dM) {
        /* reduce the workers' partials in worker order: dM += scale · Σ_w (S_w − K_w) */
        const int64_t count = p->rhat * p->rhat;
        const slice s0 = slice_at(&L, workspace, 0);
        float *restrict total = s0.P; /* tile scratch of worker 0, free now */
        for (int64_t e = 0; e < count; ++e) total[e] = s0.S[e] - s0.K[e];
        for (int w = 1; w < L.workers; ++w) {
            const slice sw = slice_at(&L, workspace, w);
            for (int64_t e = 0; e < count; ++e) total[e] += sw.S[e] - sw.K[e];
        }
        for (int64_t e = 0; e < count; ++e) dM[e] += scale * total[e];
    }
    return MORA_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Merge: W[j][p] += s · ΔW[j][p]. Row j of ΔW is the row e = M[a] (rope: (M·R_t)[a]) of the (t, a)
 * that output j reads, pushed through compᵀ; only the columns the compression reads are written.
 * ------------------------------------------------------------------------------------------- */
/* e[b] of row a, block t: M[a][b], or for rope (M R_t)[a][b]. */
static inline float eff(const mora_cpu_plan *p, const float *Ma, int64_t t, int64_t b) {
    if (p->comp != MORA_COMP_ROPE) return Ma[b];
    const int64_t h = p->half, i = b < h ? b : b - h;
    const float cs = p->cos_t[t * h + i], sn = p->sin_t[t * h + i];
    return b < h ? Ma[i] * cs + Ma[i + h] * sn : Ma[i + h] * cs - Ma[i] * sn;
}

static inline void w_add(mora_dtype w_dtype, void *row, int64_t i, float v) {
    mora_store_act(w_dtype, row, i, mora_load_act(w_dtype, row, i) + v);
}

mora_status mora_cpu_merge(const mora_cpu_plan *p, const float *M, void *W, int64_t ldw, mora_dtype w_dtype, float s) {
    const int64_t rhat = p->rhat, d_in = p->d_in, d_out = p->d_out;
    const size_t es = act_size(w_dtype);
    for (int64_t j = 0; j < d_out; ++j) {
        int64_t t = 0, a;
        switch (p->decomp) {
        case MORA_DECOMP_TRUNC: a = j < rhat ? j : -1; break;
        case MORA_DECOMP_SHARE: a = j % rhat; break;
        case MORA_DECOMP_GROUP: a = mora_run_of(d_out, rhat, j); break;
        case MORA_DECOMP_RESHAPE: {
            const int64_t k = j % p->padded;
            t = k / rhat;
            a = k % rhat;
            break;
        }
        default: a = -1; break;
        }
        if (a < 0) continue; /* row j reads nothing: its ΔW row is structurally empty */
        void *row = (char *)W + (size_t)(j * ldw) * es;
        const float *Ma = M + a * rhat;
        switch (p->comp) {
        case MORA_COMP_TRUNC: /* columns q < r̂ */
            for (int64_t q = 0; q < rhat; ++q) w_add(w_dtype, row, q, s * Ma[q]);
            break;
        case MORA_COMP_GROUP: /* column q in run g gets e[g] */
            for (int64_t g = 0; g < rhat; ++g)
                for (int64_t q = p->run_in[g]; q < p->run_in[g + 1]; ++q) w_add(w_dtype, row, q, s * Ma[g]);
            break;
        case MORA_COMP_SHARE: /* column q gets Σ_{q' = q, q + d_in, ... < B·r̂} e[q' mod r̂] */
            for (int64_t q = 0; q < d_in; ++q) {
                float v = 0.0f;
                for (int64_t qq = q; qq < p->padded; qq += d_in) v += Ma[qq % rhat];
                w_add(w_dtype, row, q, s * v);
            }
            break;
        case MORA_COMP_RESHAPE:
        case MORA_COMP_ROPE: { /* block-diagonal window: column (t·r̂ + b) mod d_in, b < min(r̂, d_in),
                                  gets Σ_{b' = b, b + d_in, ... < r̂} e[b'] (several only when d_in < r̂) */
            const int64_t width = rhat < d_in ? rhat : d_in;
            for (int64_t b = 0; b < width; ++b) {
                float v = 0.0f;
                for (int64_t bb = b; bb < rhat; bb += d_in) v += eff(p, Ma, t, bb);
                w_add(w_dtype, row, (t * rhat + b) % d_in, s * v);
            }
            break;
        }
        }
    }
    return MORA_OK;
}

/* ---------------------------------------------------------------------------------------------
 * AdamW over an arena (templates/adamw.kern's rule, in the same order of operations), split over
 * the cores: each worker takes a contiguous range of whole chunks. Every element's result and every
 * partial is the same whatever the worker count: the serial loop's bits.
 * ------------------------------------------------------------------------------------------- */
typedef struct adamw_job {
    const mora_cpu_adamw_args *a;
    int phase; /* 0: the norm's partial sums; 1: the update */
    int64_t chunk_begin, chunk_end;
} adamw_job;

static void adamw_range(void *arg, int w) {
    const adamw_job *j = (const adamw_job *)arg + w;
    const mora_cpu_adamw_args *a = j->a;
    for (int64_t chunk = j->chunk_begin; chunk < j->chunk_end; ++chunk) {
        const int64_t begin = chunk * a->chunk, end = begin + a->chunk < a->count ? begin + a->chunk : a->count;
        if (j->phase == 0) {
            float s = 0.0f;
            for (int64_t i = begin; i < end; ++i) s += a->g[i] * a->g[i];
            a->partial[chunk] = s;
            continue;
        }
        for (int64_t i = begin; i < end; ++i) {
            float grad = a->g[i];
            if (a->use_clip) a->g[i] = grad = grad * a->clip[1];
            const float param = a->p[i] * a->decay;
            const float mi = a->m[i] + a->one_minus_beta1 * (grad - a->m[i]);
            const float vi = a->v[i] * a->beta2 + (a->one_minus_beta2 * grad) * grad;
            a->m[i] = mi;
            a->v[i] = vi;
            a->p[i] = param + (a->neg_step_size * mi) / (sqrtf(vi) / a->bias2_sqrt + a->eps);
        }
    }
}

/* Runs one phase over every chunk on up to 8 workers (the caller's thread included). */
static void adamw_phase(const mora_cpu_adamw_args *a, int phase) {
    enum { MAX_WORKERS = 8 };
    const int64_t chunks = (a->count + a->chunk - 1) / a->chunk;
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int workers = cores < 1 ? 1 : cores > MAX_WORKERS ? MAX_WORKERS : (int)cores;
    if (workers > chunks) workers = (int)chunks;
    if (workers < 1) workers = 1;
    adamw_job jobs[MAX_WORKERS];
    for (int w = 0; w < workers; ++w)
        jobs[w] = (adamw_job){a, phase, chunks * w / workers, chunks * (w + 1) / workers};
    mora_cpu_pool_run(workers, adamw_range, jobs);
}

void mora_cpu_grad_sq_partial(const mora_cpu_adamw_args *a) {
    if (a->count > 0) adamw_phase(a, 0);
}

void mora_cpu_grad_norm_finish(const float *partial, int64_t count, float max_norm, float *clip) {
    float total = 0.0f;
    for (int64_t w = 0; w < count; ++w) total += partial[w];
    clip[0] = sqrtf(total);
    const float coef = max_norm / (clip[0] + 1e-6f);
    clip[1] = coef < 1.0f ? coef : 1.0f;
}

void mora_cpu_adamw(const mora_cpu_adamw_args *a) {
    if (a->count > 0) adamw_phase(a, 1);
}
