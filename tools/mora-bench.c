/* mora-bench — measured reports of libmora's kernels against the device's roofline and baselines.
 *
 *   mora-bench                                   (LLaMA-2-7B's shapes on the best backend here)
 *   mora-bench --dims 4096 --rank 8 --tokens 1024 --kinds fwd --md report.md --plot report.png
 *
 * For every shape and kernel kind (fwd, bwd_dx, bwd_dm, merge) it times, on one backend:
 *   tuned    libmora with the parameters a plan picks (kernels cache → shipped database → default)
 *   default  libmora with the declared default parameters (the untuned kernels)
 *   naive    templates/naive.kern: one work-item per output, no tiling (a first GPU port)
 *   passes   the vendor BLAS on the reshaped GEMM plus separate passes for compression, rotation and
 *            decompression: what a user writes without libmora (OpenBLAS on a CPU device)
 *   gemm     the vendor BLAS's bare GEMM of the same multiply-adds: the practical ceiling (CPU)
 * Each is verified against the float64 reference on a few tokens before it is timed. Times are
 * medians over repetitions (one warm-up first) with the interquartile spread; GFLOP/s and GB/s follow
 * from the work of the kind; the roofline — copy bandwidth and arithmetic peak — is measured in the
 * same run, and every kernel is reported as min-time / measured-time, where
 * min-time = max(FLOPs / peak, bytes / bandwidth).
 *
 * The table goes to stdout, progress to stderr; --json, --csv, --md and --plot write files. */
#define _GNU_SOURCE
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "clock.h"
/* internal headers: the baselines (untuned defaults, naive kernels, the roofline kernels) need
 * kernels with swapped parameters and the backend's own launches, which mora.h does not offer */
#include "context.h"
#include "error.h"
#include "halfconv.h"
#include "plan_internal.h"
#include "programs.h"
#include "random.h"
#include "runner.h"
#include "shape.h"
#include "tuner.h"

static const char *const prog = "mora-bench";

#define MAX_REPETITIONS 100
#define DEFAULT_BUDGET_MS 300.0
#define DEFAULT_MIN_REPS 5
#define DEFAULT_VERIFY_TOKENS 37 /* a prime: no tile divides it, so every boundary guard runs */

static void usage(FILE *out) {
    fprintf(out,
            "Usage: mora-bench [shape options] [options]\n"
            "Times libmora's fwd, bwd_dx, bwd_dm and merge kernels on one backend and reports them against\n"
            "the device's measured roofline and against baselines: the untuned defaults, a naive kernel,\n"
            "the vendor BLAS with separate passes, and the BLAS's bare GEMM.\n\n"
            "Shape (default: LLaMA-2-7B's 4096→4096 at r = 8 and r = 256, 4096→11008 and 11008→4096 at\n"
            "r = 8; --op and --dtype alone apply to that list):\n%s\n"
            "Measurement:\n"
            "  --tokens N            tokens per call (default: 8192 on a GPU, 256 on a CPU device)\n"
            "  --kinds LIST          comma-separated subset of fwd,bwd_dx,bwd_dm,merge (default all)\n"
            "  --baselines LIST      comma-separated subset of default,naive,passes,gemm, or none\n"
            "                        (default: all that the backend has)\n"
            "  --budget-ms MS        time spent repeating each measurement (default %.0f)\n"
            "  --min-reps N          repetitions at least (default %d; slow baselines: 2)\n"
            "  --verify-tokens N     tokens of the correctness check before timing (default %d, 0: none)\n"
            "  --rotate N            buffer sets the libmora variants cycle through, one per repetition, so a\n"
            "                        repetition does not find its inputs in the GPU's L2 cache (default: 4 on a\n"
            "                        GPU, 1 on a CPU device; at most 16)\n"
            "  --backend NAME        auto, opencl, cpu, cuda or hip (default auto: cuda, hip, opencl, cpu)\n"
            "  --device N            device index within the backend (default 0)\n\n"
            "Output (the table always goes to stdout, progress to stderr):\n"
            "  --json FILE           every number as JSON\n"
            "  --csv FILE            one row per shape, kind and variant\n"
            "  --md FILE             a Markdown report: machine, device, commit, date, command, results\n"
            "  --plot FILE.png       %% of roofline per kernel and baseline (needs gnuplot)\n"
            "  --quiet               no progress\n"
            "  -h, --help            this text\n\n"
            "Exit status: 0 success, 1 a measurement or an output failed, 2 usage error.\n",
            cli_shape_help, DEFAULT_BUDGET_MS, DEFAULT_MIN_REPS, DEFAULT_VERIFY_TOKENS);
}

typedef struct options {
    cli_shape_options shape;
    int custom_shape;
    int64_t tokens;
    unsigned kinds;
    unsigned variants;
    const char *backend;
    int device;
    double budget_ms;
    int min_reps;
    int64_t verify_tokens;
    int rotate; /* buffer sets cycled through by the libmora variants (0: 1 on a CPU device, 4 on a GPU) */
    const char *json, *csv, *md, *plot;
    int quiet;
} options;

static void on_log(mora_log_level level, const char *message, void *user) {
    (void)user;
    fprintf(stderr, "%s: %s: %s\n", prog, level == MORA_LOG_WARNING ? "warning" : "note", message);
}

typedef bench_call_fn bench_fn;

/* ---- seeded data ---- */

static uint64_t rng_state = 1;
static double next_uniform(void) { return mora_random_signed(&rng_state); }

/* count values in [-scale, scale] rounded to dtype into `host` (dtype) and, when given, `exact`. */
static void fill(mora_dtype dtype, void *host, double *exact, int64_t count, double scale) {
    for (int64_t i = 0; i < count; ++i) {
        mora_store_act(dtype, host, i, (float)(scale * next_uniform()));
        if (exact) exact[i] = mora_load_act(dtype, host, i);
    }
}

/* ---- work of a kind ---- */

void bench_kind_work(const mora_shape *s, mora_dtype dtype, mora_kind kind, int64_t n, double *flops, double *bytes) {
    const mora_geometry geo = mora_shape_geometry(s);
    const double es = (double)mora_dtype_size(dtype), rhat = (double)s->rhat, nd = (double)n;
    const int trunc_in = mora_op_comp_family(s->op) == MORA_COMP_TRUNC;
    const int trunc_out = mora_op_decomp_family(s->op) == MORA_DECOMP_TRUNC;
    /* the entries an ideal kernel touches: truncation reads / writes only the first r̂ */
    const double x_row = trunc_in ? rhat : (double)s->d_in;
    const double y_row = trunc_out ? (double)(s->rhat < s->d_out ? s->rhat : s->d_out) : (double)s->d_out;
    const double m_bytes = rhat * rhat * 4.0;
    const double cs_bytes = s->op == MORA_OP_ROPE ? (double)geo.blocks * (double)geo.half * 8.0 : 0.0;
    /* the useful multiply-adds: blocks decomp never reads (d_out < B·r̂) contribute nothing */
    const double gemm = 2.0 * nd * (double)geo.blocks_read * rhat * rhat;
    switch (kind) {
    case MORA_KIND_FWD:
        *flops = gemm;
        *bytes = nd * x_row * es + 2.0 * nd * y_row * es + m_bytes + cs_bytes;
        return;
    case MORA_KIND_BWD_DX:
        *flops = gemm;
        *bytes = nd * y_row * es + 2.0 * nd * x_row * es + m_bytes + cs_bytes;
        return;
    case MORA_KIND_BWD_DM:
        *flops = gemm;
        *bytes = nd * x_row * es + nd * y_row * es + 2.0 * m_bytes + cs_bytes;
        return;
    case MORA_KIND_MERGE: {
        const mora_comp_family comp = mora_op_comp_family(s->op);
        double window = (double)s->d_in;
        if (comp == MORA_COMP_RESHAPE || comp == MORA_COMP_ROPE) window = (double)(s->rhat < s->d_in ? s->rhat : s->d_in);
        if (comp == MORA_COMP_TRUNC) window = rhat;
        const double entries = y_row * window;
        *flops = 2.0 * entries; /* W += s·ΔW: one multiply and one add per entry ΔW has */
        *bytes = 2.0 * entries * es + m_bytes + cs_bytes;
        return;
    }
    case MORA_KIND_ADAMW: break; /* not a layer's */
    }
    *flops = *bytes = 0.0;
}

/* ---- one shape ---- */

#define BENCH_MAX_SETS 16

typedef struct shape_state {
    mora_context *ctx;
    const options *o;
    const char *label;
    int generated;  /* the backend runs generated kernels (the naive baselines need them) */
    int host_blas;  /* the host baselines apply: a CPU device and OpenBLAS */
    mora_shape s;
    mora_dtype dtype;
    int64_t n, nv;  /* tokens timed, tokens verified */
    mora_runner *runner;   /* libmora's kernels (generated, or the cpu backend's), parameters swappable */
    mora_kernel_spec tuned[MORA_KIND_COUNT];
    const char *param_source[MORA_KIND_COUNT]; /* "cache", "database" or "default" */
    float *M_host;  /* r̂ x r̂ */
    void *X, *DY, *Y, *DX, *DM, *W; /* device buffers for n tokens (host pointers on the cpu backend) */
    int sets;                       /* buffer sets the libmora variants cycle through (set 0: the above) */
    mora_kind_buffers extra[BENCH_MAX_SETS]; /* sets 1.. (device copies of set 0) */
    void *Mdev, *CS;                /* the naive kernels' M and rope table */
    void *naive_kernel[MORA_KIND_COUNT]; /* launch handles of the naive kernels */
    bench_host *host;
    /* verification inputs: nv tokens, in the dtype (host and device) and as float64 */
    void *xv_act, *dyv_act, *XV, *DYV;
    double *xv, *dyv, *Md;
} shape_state;

static void shape_state_free(shape_state *st) {
    mora_context *ctx = st->ctx;
    void *buffers[] = {st->X, st->DY, st->Y, st->DX, st->DM, st->W, st->Mdev, st->CS, st->XV, st->DYV};
    for (size_t i = 0; i < sizeof buffers / sizeof *buffers; ++i) mora_context_buffer_free(ctx, buffers[i]);
    for (int k = 1; k < st->sets; ++k) {
        const mora_kind_buffers *b = &st->extra[k];
        void *extra[] = {(void *)b->x, (void *)b->dy, b->y, b->dx, b->dm, b->w};
        for (size_t i = 0; i < sizeof extra / sizeof *extra; ++i) mora_context_buffer_free(ctx, extra[i]);
    }
    if (st->runner) mora_runner_destroy(st->runner);
    for (int k = 0; k < MORA_KIND_COUNT; ++k) mora_context_kernel_free(ctx, st->naive_kernel[k]);
    bench_host_destroy(st->host);
    free(st->M_host), free(st->xv_act), free(st->dyv_act), free(st->xv), free(st->dyv), free(st->Md);
    memset(st, 0, sizeof *st);
}

static mora_status device_upload(mora_context *ctx, void **buf, const void *host, size_t bytes) {
    MORA_TRY(mora_context_buffer_alloc(ctx, bytes ? bytes : 1, buf));
    return host ? mora_context_buffer_write(ctx, *buf, 0, host, bytes) : mora_context_buffer_zero(ctx, *buf, bytes ? bytes : 1);
}

/* the kind's accumulated output and its element type */
static size_t out_count(const mora_shape *s, mora_kind kind, int64_t n) {
    switch (kind) {
    case MORA_KIND_FWD: return (size_t)(n * s->d_out);
    case MORA_KIND_BWD_DX: return (size_t)(n * s->d_in);
    case MORA_KIND_BWD_DM: return (size_t)(s->rhat * s->rhat);
    case MORA_KIND_MERGE: return (size_t)(s->d_out * s->d_in);
    case MORA_KIND_ADAMW: break; /* not a layer's */
    }
    return 0;
}

/* Runs one variant of `kind` on device buffers (tuned, default, naive). */
typedef struct device_call {
    shape_state *st;
    bench_variant variant;
    mora_kind kind;
    const void *x, *dy;
    void *out;
    int64_t n;
    float scale;
} device_call;

static mora_status device_run(void *user) {
    device_call *c = user;
    shape_state *st = c->st;
    if (c->variant == BENCH_NAIVE) {
        bench_launch call = {.ctx = st->ctx, .kernel = st->naive_kernel[c->kind]};
        const int64_t count = (int64_t)out_count(&st->s, c->kind, c->n);
        call.groups[0] = (size_t)((count + MORA_NAIVE_LS - 1) / MORA_NAIVE_LS), call.groups[1] = call.groups[2] = 1;
        call.local[0] = MORA_NAIVE_LS, call.local[1] = call.local[2] = 1;
        mora_kernel_arg *a = call.args;
        switch (c->kind) {
        case MORA_KIND_FWD:
            call.arg_count = 6;
            a[0] = MORA_ARG_BUF(c->x), a[1] = MORA_ARG_BUF(c->out), a[2] = MORA_ARG_BUF(st->Mdev), a[3] = MORA_ARG_BUF(st->CS);
            a[4] = MORA_ARG_INT(c->n), a[5] = MORA_ARG_FLOAT(c->scale);
            break;
        case MORA_KIND_BWD_DX:
            call.arg_count = 5;
            a[0] = MORA_ARG_BUF(c->dy), a[1] = MORA_ARG_BUF(st->Mdev), a[2] = MORA_ARG_BUF(st->CS), a[3] = MORA_ARG_BUF(c->out);
            a[4] = MORA_ARG_INT(c->n);
            break;
        case MORA_KIND_BWD_DM:
            call.arg_count = 5;
            a[0] = MORA_ARG_BUF(c->x), a[1] = MORA_ARG_BUF(c->dy), a[2] = MORA_ARG_BUF(st->CS), a[3] = MORA_ARG_BUF(c->out);
            a[4] = MORA_ARG_INT(c->n);
            break;
        case MORA_KIND_MERGE:
            call.arg_count = 4;
            a[0] = MORA_ARG_BUF(c->out), a[1] = MORA_ARG_BUF(st->Mdev), a[2] = MORA_ARG_BUF(st->CS), a[3] = MORA_ARG_FLOAT(c->scale);
            break;
        case MORA_KIND_ADAMW: return mora_fail(MORA_E_UNKNOWN_KIND, "the optimizer has no naive kernel");
        }
        return bench_launch_fn(&call);
    }
    mora_kind_buffers b = {.x = c->x, .dy = c->dy, .w_dtype = st->dtype, .scale = c->scale};
    switch (c->kind) {
    case MORA_KIND_FWD: b.y = c->out; break;
    case MORA_KIND_BWD_DX: b.dx = c->out; break;
    case MORA_KIND_BWD_DM: b.dm = c->out; break;
    case MORA_KIND_MERGE: b.w = c->out; break;
    case MORA_KIND_ADAMW: return mora_fail(MORA_E_UNKNOWN_KIND, "mora-bench times a layer's kinds");
    }
    return mora_runner_run(st->runner, c->kind, &b, c->n);
}

typedef struct host_call {
    shape_state *st;
    bench_variant variant;
    mora_kind kind;
    int64_t n;
    float scale;
} host_call;

static mora_status host_run(void *user) {
    host_call *c = user;
    return c->variant == BENCH_GEMM ? bench_host_gemm(c->st->host, c->kind, c->n)
                                    : bench_host_passes(c->st->host, c->kind, c->n, c->scale);
}

/* merge's s and fwd's scale: non-trivial values; the backward at scale 1 (the naive kernels have none) */
static float kind_scale(mora_kind kind) {
    return kind == MORA_KIND_MERGE ? -0.5f : kind == MORA_KIND_FWD ? 0.75f : 1.0f;
}

/* Checks a variant against the float64 reference on nv tokens (outputs start at small seeded
 * values, so a kernel that overwrites instead of accumulating fails too). */
static mora_status verify(shape_state *st, bench_variant v, mora_kind kind, double *rel_error) {
    *rel_error = NAN;
    const mora_shape *s = &st->s;
    const int64_t nv = kind == MORA_KIND_MERGE ? 1 : st->nv;
    const size_t count = out_count(s, kind, nv);
    const int host = v == BENCH_PASSES;
    const mora_dtype out_dtype = kind == MORA_KIND_BWD_DM || host ? MORA_F32 : st->dtype;
    const size_t out_bytes = count * mora_dtype_size(out_dtype);
    double *expected = calloc(count, sizeof *expected), *delta = calloc(count, sizeof *delta);
    void *got = malloc(out_bytes), *v0 = malloc(out_bytes);
    mora_status status = MORA_OK;
    if (!expected || !delta || !got || !v0) status = mora_fail(MORA_E_NO_MEMORY, "verification: out of host memory");
    const double scale = kind_scale(kind);
    if (status == MORA_OK) switch (kind) {
        case MORA_KIND_FWD: status = mora_ref_forward(s, st->Md, st->xv, delta, nv, scale); break;
        case MORA_KIND_BWD_DX: status = mora_ref_backward(s, st->Md, st->xv, st->dyv, delta, NULL, nv); break;
        case MORA_KIND_BWD_DM: status = mora_ref_backward(s, st->Md, st->xv, st->dyv, NULL, delta, nv); break;
        case MORA_KIND_MERGE:
            status = mora_ref_delta_weight(s, st->Md, delta);
            for (size_t i = 0; i < count; ++i) delta[i] *= scale;
            break;
        case MORA_KIND_ADAMW: status = mora_fail(MORA_E_UNKNOWN_KIND, "mora-bench times a layer's kinds"); break;
        }
    if (status == MORA_OK) {
        fill(out_dtype, v0, expected, (int64_t)count, 0.01);
        for (size_t i = 0; i < count; ++i) expected[i] += delta[i];
    }
    if (status == MORA_OK && host) {
        bench_host *h = st->host;
        float *hx = bench_host_x(h), *hdy = bench_host_dy(h), *out = bench_host_out(h, kind);
        if (!out) status = mora_fail(MORA_E_NO_MEMORY, "verification: out of host memory");
        for (int64_t i = 0; status == MORA_OK && i < nv * s->d_in && kind != MORA_KIND_MERGE; ++i) hx[i] = (float)st->xv[i];
        for (int64_t i = 0; status == MORA_OK && i < nv * s->d_out && kind != MORA_KIND_MERGE; ++i) hdy[i] = (float)st->dyv[i];
        if (status == MORA_OK) memcpy(out, v0, out_bytes);
        if (status == MORA_OK) status = bench_host_passes(h, kind, nv, (float)scale);
        if (status == MORA_OK) memcpy(got, out, out_bytes);
    } else if (status == MORA_OK) {
        void *OUT = NULL;
        status = device_upload(st->ctx, &OUT, v0, out_bytes);
        device_call call = {st, v, kind, st->XV, st->DYV, OUT, nv, (float)scale};
        if (status == MORA_OK) status = device_run(&call);
        if (status == MORA_OK) status = mora_context_synchronize(st->ctx);
        if (status == MORA_OK) status = mora_context_buffer_read(st->ctx, OUT, 0, got, out_bytes);
        mora_context_buffer_free(st->ctx, OUT);
    }
    if (status == MORA_OK) {
        double diff = 0.0, norm = 0.0;
        for (size_t i = 0; i < count; ++i) {
            const double g = mora_load_act(out_dtype, got, (int64_t)i), e = expected[i];
            diff += (g - e) * (g - e);
            norm += e * e;
        }
        *rel_error = isnan(diff) ? NAN : norm > 0 ? sqrt(diff / norm) : sqrt(diff);
        const double tol = mora_dtype_tolerance(out_dtype);
        if (!(*rel_error <= tol))
            status = mora_fail(MORA_E_VERIFY, "relative error %.3g against the float64 reference exceeds %.3g (%s output)",
                               *rel_error, tol, mora_dtype_name(out_dtype));
    }
    free(expected), free(delta), free(got), free(v0);
    return status;
}

static void set_note(bench_measure *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_note(bench_measure *m, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->note, sizeof m->note, fmt, ap);
    va_end(ap);
}

/* Verifies and times one variant of one kind. */
static void measure_variant(shape_state *st, bench_kind_result *k, bench_variant v) {
    bench_measure *m = &k->m[v];
    const mora_kind kind = k->kind;
    m->rel_error = -1.0;
    mora_status status = MORA_OK;
    if (v == BENCH_DEFAULT) {
        const mora_kernel_spec def = mora_spec_default(&st->s, st->dtype, kind, st->tuned[kind].dialect);
        if (mora_spec_same_params(&def, &st->tuned[kind])) { /* nothing to compare: the plan runs the defaults */
            *m = k->m[BENCH_TUNED];
            set_note(m, "the tuned parameters are the defaults (from %s): not measured again",
                     st->param_source[kind]);
            return;
        }
        status = mora_runner_set_spec(st->runner, &def);
        if (status == MORA_OK) status = mora_runner_prepare(st->runner, kind, st->dtype, st->n);
    } else if (v == BENCH_TUNED) {
        status = mora_runner_prepare(st->runner, kind, st->dtype, st->n);
    }
    if (status == MORA_OK && st->nv > 0 && v != BENCH_GEMM) {
        double rel = NAN;
        const mora_status vs = verify(st, v, kind, &rel);
        m->rel_error = isnan(rel) ? -1.0 : rel;
        if (vs == MORA_E_VERIFY) {
            set_note(m, "WRONG RESULT: %s", mora_last_error());
            fprintf(stderr, "%s: %s: %s %s: %s\n", prog, st->label, mora_kind_name(kind), bench_variant_name(v), m->note);
        } else if (vs != MORA_OK) {
            status = vs;
        }
    }
    if (status == MORA_OK) {
        if (v == BENCH_GEMM && !st->ctx->info.is_cpu) {
            status = bench_cublas_measure(st->ctx, &st->s, st->dtype, kind, st->n, bench_time, st->o->budget_ms,
                                          st->o->min_reps, m);
        } else if (v == BENCH_PASSES || v == BENCH_GEMM) {
            host_call call = {st, v, kind, st->n, kind_scale(kind)};
            status = bench_time(st->ctx, 0, host_run, &call, st->o->budget_ms, st->o->min_reps, m);
            if (status == MORA_OK && st->dtype != MORA_F32 && !m->note[0]) set_note(m, "float32 host arrays");
        } else if (v != BENCH_NAIVE) {
            void *out = kind == MORA_KIND_FWD ? st->Y : kind == MORA_KIND_BWD_DX ? st->DX : kind == MORA_KIND_BWD_DM ? st->DM : st->W;
            mora_kind_buffers sets[BENCH_MAX_SETS];
            sets[0] = (mora_kind_buffers){.x = st->X, .dy = st->DY, .y = st->Y, .dx = st->DX, .dm = st->DM, .w = st->W};
            for (int i = 1; i < st->sets; ++i) sets[i] = st->extra[i];
            for (int i = 0; i < st->sets; ++i) { /* only the kind's own output is passed */
                mora_kind_buffers *b = &sets[i];
                if (kind != MORA_KIND_FWD) b->y = NULL;
                if (kind != MORA_KIND_BWD_DX) b->dx = NULL;
                if (kind != MORA_KIND_BWD_DM) b->dm = NULL;
                if (kind != MORA_KIND_MERGE) b->w = NULL;
                b->w_dtype = st->dtype, b->scale = kind_scale(kind);
            }
            (void)out;
            mora_timing t;
            status = mora_measure_kind(st->runner, kind, sets, st->sets, st->n, st->o->budget_ms, st->o->min_reps, &t);
            if (status == MORA_OK) m->ok = 1, m->ms = t.median_ms, m->spread = t.spread, m->reps = t.repetitions;
        } else {
            void *out = kind == MORA_KIND_FWD ? st->Y : kind == MORA_KIND_BWD_DX ? st->DX : kind == MORA_KIND_BWD_DM ? st->DM : st->W;
            device_call call = {st, v, kind, st->X, st->DY, out, st->n, kind_scale(kind)};
            status = bench_time(st->ctx, 1, device_run, &call, st->o->budget_ms, st->o->min_reps, m);
        }
    }
    if (status != MORA_OK) {
        m->ok = 0;
        set_note(m, "FAILED: %s", mora_last_error());
        fprintf(stderr, "%s: %s: %s %s: %s\n", prog, st->label, mora_kind_name(kind), bench_variant_name(v), m->note);
    }
    if (v == BENCH_DEFAULT) mora_runner_set_spec(st->runner, &st->tuned[kind]); /* back to the tuned parameters */
}

/* Why a variant does not apply here, or NULL when it does. */
static const char *variant_absent(const shape_state *st, bench_variant v, mora_kind kind) {
    switch (v) {
    case BENCH_TUNED: return NULL;
    case BENCH_DEFAULT: return NULL;
    case BENCH_NAIVE: return st->generated ? NULL : "n/a: the naive kernels are generated for opencl, cuda and hip only";
    case BENCH_PASSES:
    case BENCH_GEMM:
        if (v == BENCH_GEMM && kind == MORA_KIND_MERGE) return "n/a: merge has no GEMM";
        if (!st->ctx->info.is_cpu) {
            const char *why = "n/a: separate passes are measured on CPU devices only";
            if (v == BENCH_GEMM && bench_cublas_available(st->ctx, &why)) return NULL; /* cuBLAS's bare GEMM */
            return why;
        }
        if (!bench_host_blas_available()) return "n/a: mora-bench was built without OpenBLAS";
        return NULL;
    }
    return "n/a";
}

static mora_status shape_setup(shape_state *st) {
    mora_context *ctx = st->ctx;
    const mora_shape *s = &st->s;
    const size_t es = mora_dtype_size(st->dtype);
    const int64_t nx = st->n * s->d_in, ny = st->n * s->d_out, nm = s->rhat * s->rhat;
    const unsigned kinds = st->o->kinds;
    /* the parameters a plan for n tokens would take: cache → database → defaults */
    MORA_TRY(mora_runner_create(ctx, s, st->dtype, &st->runner));
    for (int k = 0; k < MORA_KIND_COUNT; ++k) {
        st->tuned[k] = mora_runner_spec(st->runner, (mora_kind)k);
        st->param_source[k] = mora_select_params(ctx, &st->tuned[k], st->n);
        if (mora_runner_set_spec(st->runner, &st->tuned[k]) != MORA_OK) {
            st->tuned[k] = mora_spec_default(s, st->dtype, (mora_kind)k, ctx->be->dialect);
            st->param_source[k] = "default";
        }
    }
    st->M_host = malloc((size_t)nm * sizeof *st->M_host);
    st->Md = malloc((size_t)nm * sizeof *st->Md);
    if (!st->M_host || !st->Md) return mora_fail(MORA_E_NO_MEMORY, "out of host memory");
    /* M of the scale of a trained adapter: entries ~ 1/sqrt(r̂) */
    for (int64_t i = 0; i < nm; ++i) {
        st->M_host[i] = (float)(next_uniform() / sqrt((double)s->rhat));
        st->Md[i] = st->M_host[i];
    }
    MORA_TRY(mora_runner_set_weight(st->runner, st->M_host));

    /* inputs: seeded values in the dtype; accumulated outputs start at zero */
    void *host = malloc((size_t)(nx > ny ? nx : ny) * es);
    if (!host) return mora_fail(MORA_E_NO_MEMORY, "out of host memory for %lld tokens", (long long)st->n);
    mora_status status = MORA_OK;
    const int need_x = kinds & (1u << MORA_KIND_FWD | 1u << MORA_KIND_BWD_DM | 1u << MORA_KIND_BWD_DX);
    const int need_dy = kinds & (1u << MORA_KIND_BWD_DX | 1u << MORA_KIND_BWD_DM);
    if (need_x) fill(st->dtype, host, NULL, nx, 1.0), status = device_upload(ctx, &st->X, host, (size_t)nx * es);
    if (status == MORA_OK && need_dy) fill(st->dtype, host, NULL, ny, 1.0), status = device_upload(ctx, &st->DY, host, (size_t)ny * es);
    free(host);
    if (status == MORA_OK && (kinds & 1u << MORA_KIND_FWD)) status = device_upload(ctx, &st->Y, NULL, (size_t)ny * es);
    if (status == MORA_OK && (kinds & 1u << MORA_KIND_BWD_DX)) status = device_upload(ctx, &st->DX, NULL, (size_t)nx * es);
    if (status == MORA_OK && (kinds & 1u << MORA_KIND_BWD_DM)) status = device_upload(ctx, &st->DM, NULL, (size_t)nm * 4);
    if (status == MORA_OK && (kinds & 1u << MORA_KIND_MERGE))
        status = device_upload(ctx, &st->W, NULL, (size_t)(s->d_out * s->d_in) * es);
    MORA_TRY(status);

    /* more buffer sets, copies of set 0 on the device, for timing without L2 hits across repetitions */
    st->sets = 1;
    const int want = st->o->rotate ? st->o->rotate : ctx->info.is_cpu ? 1 : 4;
    if (want > 1 && mora_context_has_copy(ctx)) {
        void *const base[6] = {st->X, st->DY, st->Y, st->DX, st->DM, st->W};
        const size_t bytes[6] = {(size_t)nx * es, (size_t)ny * es, (size_t)ny * es, (size_t)nx * es, (size_t)nm * 4,
                                 (size_t)(s->d_out * s->d_in) * es};
        for (int k = 1; k < want; ++k) {
            void *copy[6] = {0};
            for (int i = 0; i < 6 && status == MORA_OK; ++i) {
                if (!base[i]) continue;
                status = mora_context_buffer_alloc(ctx, bytes[i], &copy[i]);
                if (status == MORA_OK) status = mora_context_buffer_copy(ctx, base[i], 0, copy[i], 0, bytes[i]);
            }
            st->extra[k] = (mora_kind_buffers){.x = copy[0], .dy = copy[1], .y = copy[2], .dx = copy[3], .dm = copy[4], .w = copy[5]};
            st->sets = k + 1; /* freed with the shape even if this set failed half-way */
            MORA_TRY(status);
        }
    }

    /* the naive kernels: their own M and rope table, and the program */
    if (st->generated && (st->o->variants & 1u << BENCH_NAIVE)) {
        MORA_TRY(device_upload(ctx, &st->Mdev, st->M_host, (size_t)nm * 4));
        if (s->op == MORA_OP_ROPE) {
            const mora_geometry geo = mora_shape_geometry(s);
            const int64_t count = geo.blocks * geo.half * 2;
            float *table = malloc((size_t)count * sizeof *table);
            if (!table) return mora_fail(MORA_E_NO_MEMORY, "out of host memory");
            for (int64_t t = 0; t < geo.blocks; ++t)
                for (int64_t i = 0; i < geo.half; ++i) {
                    const double angle = mora_rope_angle(s->rhat, t, i);
                    table[2 * (t * geo.half + i)] = (float)cos(angle);
                    table[2 * (t * geo.half + i) + 1] = (float)sin(angle);
                }
            status = device_upload(ctx, &st->CS, table, (size_t)count * sizeof *table);
            free(table);
            MORA_TRY(status);
        }
        for (int k = 0; k < MORA_KIND_COUNT; ++k) {
            if (!(kinds & 1u << k)) continue;
            char *source = NULL;
            MORA_TRY(mora_codegen_naive(&st->tuned[k], &source));
            void *program = NULL;
            status = mora_program_obtain(ctx, source, &program);
            free(source);
            static const char *const entries[MORA_KIND_COUNT] = {MORA_NAIVE_FWD, MORA_NAIVE_BWD_DX, MORA_NAIVE_BWD_DM,
                                                                   MORA_NAIVE_MERGE};
            if (status == MORA_OK) status = mora_context_kernel_create(ctx, program, entries[k], &st->naive_kernel[k]);
            MORA_TRY(status);
        }
    }

    /* the host baselines: the same kind of data, float32 */
    if (st->host_blas && (st->o->variants & (1u << BENCH_PASSES | 1u << BENCH_GEMM))) {
        MORA_TRY(bench_host_create(s, st->n, &st->host));
        float *hx = bench_host_x(st->host), *hdy = bench_host_dy(st->host);
        for (int64_t i = 0; i < nx; ++i) hx[i] = (float)next_uniform();
        for (int64_t i = 0; i < ny; ++i) hdy[i] = (float)next_uniform();
        memcpy(bench_host_M(st->host), st->M_host, (size_t)nm * sizeof(float));
        /* the intermediates the bare GEMM reads are those of one pass of each kind */
        for (int k = 0; k < MORA_KIND_COUNT; ++k)
            if ((kinds & 1u << k) && k != MORA_KIND_MERGE) MORA_TRY(bench_host_passes(st->host, (mora_kind)k, st->n, 1.0f));
    }

    /* verification inputs */
    if (st->nv > 0) {
        const int64_t vx = st->nv * s->d_in, vy = st->nv * s->d_out;
        st->xv_act = malloc((size_t)vx * es), st->dyv_act = malloc((size_t)vy * es);
        st->xv = malloc((size_t)vx * sizeof *st->xv), st->dyv = malloc((size_t)vy * sizeof *st->dyv);
        if (!st->xv_act || !st->dyv_act || !st->xv || !st->dyv) return mora_fail(MORA_E_NO_MEMORY, "out of host memory");
        fill(st->dtype, st->xv_act, st->xv, vx, 1.0);
        fill(st->dtype, st->dyv_act, st->dyv, vy, 1.0);
        MORA_TRY(device_upload(ctx, &st->XV, st->xv_act, (size_t)vx * es));
        MORA_TRY(device_upload(ctx, &st->DYV, st->dyv_act, (size_t)vy * es));
    }
    return mora_context_synchronize(ctx);
}

static void run_shape(mora_context *ctx, const options *o, bench_shape_result *r, int index, int total) {
    shape_state st = {0};
    st.ctx = ctx;
    st.o = o;
    st.label = r->label;
    st.generated = ctx->be->dialect != MORA_DIALECT_HOST;
    st.host_blas = ctx->info.is_cpu && bench_host_blas_available();
    st.s = r->shape;
    st.dtype = r->dtype;
    st.n = r->tokens;
    st.nv = o->verify_tokens < st.n ? o->verify_tokens : st.n;
    bench_progress("shape %d of %d: %s, %s, %lld tokens: preparing", index + 1, total, r->label, mora_dtype_name(r->dtype),
             (long long)r->tokens);
    const mora_status status = shape_setup(&st);
    for (int k = 0; k < MORA_KIND_COUNT; ++k) {
        bench_kind_result *kr = &r->kinds[k];
        kr->kind = (mora_kind)k;
        kr->requested = (o->kinds >> k) & 1u;
        bench_kind_work(&r->shape, r->dtype, (mora_kind)k, r->tokens, &kr->flops, &kr->bytes);
        snprintf(kr->param_source, sizeof kr->param_source, "-");
        for (int v = 0; v < BENCH_VARIANT_COUNT; ++v) kr->m[v].rel_error = -1.0;
        if (!kr->requested) continue;
        if (st.runner) {
            snprintf(kr->param_source, sizeof kr->param_source, "%s", st.param_source[k]);
            cli_format_params(&st.tuned[k], kr->params, sizeof kr->params);
            if (!kr->params[0]) snprintf(kr->params, sizeof kr->params, "(no tuning parameters)");
        }
        for (int v = 0; v < BENCH_VARIANT_COUNT; ++v) {
            bench_measure *m = &kr->m[v];
            if (status != MORA_OK) {
                set_note(m, "FAILED: setting up the shape: %s", mora_last_error());
                continue;
            }
            if (v != BENCH_TUNED && !((o->variants >> v) & 1u)) {
                set_note(m, "not requested");
                continue;
            }
            const char *absent = variant_absent(&st, (bench_variant)v, (mora_kind)k);
            if (absent) {
                set_note(m, "%s", absent);
                continue;
            }
            measure_variant(&st, kr, (bench_variant)v);
            if (m->ok)
                bench_progress("  %-6s %-7s %10.4g ms ±%4.1f%% (%d reps)%s%s", mora_kind_name((mora_kind)k),
                         bench_variant_name((bench_variant)v), m->ms, 100.0 * m->spread, m->reps, m->note[0] ? "  " : "",
                         m->note);
        }
    }
    if (status != MORA_OK) fprintf(stderr, "%s: %s: %s\n", prog, r->label, mora_last_error());
    shape_state_free(&st);
}

/* ---- run metadata ---- */

static void read_cpu_model(char *out, size_t size) {
    snprintf(out, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *colon = strchr(line, ':');
        if (!colon) continue;
        colon += 1 + (colon[1] == ' ');
        snprintf(out, size, "%s", colon);
        out[strcspn(out, "\n")] = '\0';
        break;
    }
    fclose(f);
}

static void read_commit(char *out, size_t size) {
    snprintf(out, size, "unknown");
    const char *dirs[] = {".",
#ifdef MORA_BENCH_SOURCE_DIR
                          MORA_BENCH_SOURCE_DIR
#endif
    };
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; ++i) {
        char command[1200];
        snprintf(command, sizeof command, "git -C '%s' rev-parse --short=12 HEAD 2>/dev/null", dirs[i]);
        FILE *p = popen(command, "r");
        if (!p) continue;
        char line[128] = "";
        const int got = fgets(line, sizeof line, p) != NULL;
        const int rc = pclose(p);
        line[strcspn(line, "\n")] = '\0';
        if (got && rc == 0 && line[0]) {
            snprintf(out, size, "%s", line);
            return;
        }
    }
}

static char *join_command_line(int argc, char **argv) {
    size_t length = 1;
    for (int i = 0; i < argc; ++i) length += 3 + 4 * strlen(argv[i]);
    char *out = malloc(length);
    if (!out) return NULL;
    out[0] = '\0';
    for (int i = 0; i < argc; ++i) {
        if (i) strcat(out, " ");
        const int plain = argv[i][0] && strspn(argv[i], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=.,/:+@%") == strlen(argv[i]);
        if (plain) {
            strcat(out, argv[i]);
            continue;
        }
        strcat(out, "'");
        for (const char *c = argv[i]; *c; ++c) {
            if (*c == '\'') strcat(out, "'\\''");
            else strncat(out, c, 1);
        }
        strcat(out, "'");
    }
    return out;
}

/* ---- options ---- */

static unsigned parse_list(const char *option, const char *list, const char *const *names, int count) {
    if (strcmp(list, "none") == 0) return 0;
    unsigned mask = 0;
    char copy[256];
    snprintf(copy, sizeof copy, "%s", list);
    for (char *save = NULL, *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        int found = -1;
        for (int i = 0; i < count; ++i)
            if (strcmp(item, names[i]) == 0) found = i;
        if (found < 0) {
            char known[160] = "";
            for (int i = 0; i < count; ++i) {
                strcat(known, i ? "," : "");
                strcat(known, names[i]);
            }
            cli_usage_error(prog, "%s=%s: unknown item '%s' (expected a comma-separated subset of %s)", option, list, item,
                            known);
        }
        mask |= 1u << found;
    }
    if (!mask) cli_usage_error(prog, "%s=%s: names nothing", option, list);
    return mask;
}

static double parse_positive(const char *option, const char *text) {
    char *end = NULL;
    const double v = strtod(text, &end);
    if (!*text || *end || !(v > 0) || !isfinite(v)) cli_usage_error(prog, "%s=%s: expected a positive number", option, text);
    return v;
}

static void parse_options(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->backend = "auto";
    o->kinds = (1u << MORA_KIND_COUNT) - 1;
    o->variants = (1u << BENCH_VARIANT_COUNT) - 1;
    o->budget_ms = DEFAULT_BUDGET_MS;
    o->min_reps = DEFAULT_MIN_REPS;
    o->verify_tokens = DEFAULT_VERIFY_TOKENS;
    enum { OPT_QUIET = 256 };
    static const struct option long_options[] = {
        {"dims", required_argument, 0, 0},       {"dims-out", required_argument, 0, 0},
        {"rank", required_argument, 0, 0},       {"rhat", required_argument, 0, 0},
        {"op", required_argument, 0, 0},         {"dtype", required_argument, 0, 0},
        {"tokens", required_argument, 0, 0},     {"kinds", required_argument, 0, 0},
        {"baselines", required_argument, 0, 0},  {"budget-ms", required_argument, 0, 0},
        {"min-reps", required_argument, 0, 0},   {"verify-tokens", required_argument, 0, 0}, {"rotate", required_argument, 0, 0},
        {"backend", required_argument, 0, 0},    {"device", required_argument, 0, 0},
        {"json", required_argument, 0, 0},       {"csv", required_argument, 0, 0},
        {"md", required_argument, 0, 0},         {"plot", required_argument, 0, 0},
        {"quiet", no_argument, 0, OPT_QUIET},    {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    static const char *const kind_names[] = {"fwd", "bwd_dx", "bwd_dm", "merge"};
    static const char *const baseline_names[] = {"tuned", "default", "naive", "passes", "gemm"};
    opterr = 0;
    for (;;) {
        int index = 0;
        const int c = getopt_long(argc, argv, "h", long_options, &index);
        if (c == -1) break;
        if (c == 'h') {
            usage(stdout);
            exit(0);
        }
        if (c == '?') cli_usage_error(prog, "unknown or incomplete option '%s'", argv[optind - 1]);
        if (c == OPT_QUIET) {
            o->quiet = 1;
            continue;
        }
        const char *name = long_options[index].name;
        if (cli_shape_option(prog, &o->shape, name, optarg)) {
            if (strcmp(name, "op") != 0 && strcmp(name, "dtype") != 0) o->custom_shape = 1;
            continue;
        }
        if (strcmp(name, "tokens") == 0) o->tokens = cli_parse_int(prog, "--tokens", optarg, 1, CLI_MAX_TOKENS);
        else if (strcmp(name, "kinds") == 0) {
            o->kinds = parse_list("--kinds", optarg, kind_names, MORA_KIND_COUNT);
        } else if (strcmp(name, "baselines") == 0) {
            if (strcmp(optarg, "none") == 0) o->variants = 1u << BENCH_TUNED;
            else o->variants = parse_list("--baselines", optarg, baseline_names, BENCH_VARIANT_COUNT) | 1u << BENCH_TUNED;
        } else if (strcmp(name, "budget-ms") == 0) o->budget_ms = parse_positive("--budget-ms", optarg);
        else if (strcmp(name, "min-reps") == 0) o->min_reps = (int)cli_parse_int(prog, "--min-reps", optarg, 1, 100);
        else if (strcmp(name, "verify-tokens") == 0) o->verify_tokens = cli_parse_int(prog, "--verify-tokens", optarg, 0, 65536);
        else if (strcmp(name, "rotate") == 0) {
            o->rotate = (int)cli_parse_int(prog, "--rotate", optarg, 1, 16);
            if (o->rotate > BENCH_MAX_SETS) cli_usage_error(prog, "--rotate=%d: must be <= %d", o->rotate, BENCH_MAX_SETS);
        }
        else if (strcmp(name, "backend") == 0) o->backend = optarg;
        else if (strcmp(name, "device") == 0) o->device = (int)cli_parse_int(prog, "--device", optarg, 0, 1023);
        else if (strcmp(name, "json") == 0) o->json = optarg;
        else if (strcmp(name, "csv") == 0) o->csv = optarg;
        else if (strcmp(name, "md") == 0) o->md = optarg;
        else if (strcmp(name, "plot") == 0) o->plot = optarg;
    }
    if (optind < argc) cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    if (o->min_reps > MAX_REPETITIONS) cli_usage_error(prog, "--min-reps=%d: must be <= %d", o->min_reps, MAX_REPETITIONS);
    const char *backends[] = {"auto", "opencl", "cpu", "cuda", "hip"};
    int known = 0;
    for (size_t i = 0; i < sizeof backends / sizeof *backends; ++i) known |= strcmp(o->backend, backends[i]) == 0;
    if (!known) cli_usage_error(prog, "--backend=%s: expected auto, opencl, cpu, cuda or hip", o->backend);
    const char *outputs[] = {o->json, o->csv, o->md, o->plot};
    for (size_t i = 0; i < 4; ++i)
        if (outputs[i] && !outputs[i][0]) cli_usage_error(prog, "an output option needs a file name");
}

/* The shapes to measure: the one given, or LLaMA-2-7B's list. */
static int resolve_shapes(const options *o, bench_shape_result **out) {
    static const struct {
        int64_t d_in, d_out, rank;
    } llama[] = {{4096, 4096, 8}, {4096, 4096, 256}, {4096, 11008, 8}, {11008, 4096, 8}};
    const int count = o->custom_shape ? 1 : (int)(sizeof llama / sizeof *llama);
    bench_shape_result *r = calloc((size_t)count, sizeof *r);
    if (!r) {
        fprintf(stderr, "%s: out of memory\n", prog);
        exit(1);
    }
    for (int i = 0; i < count; ++i) {
        cli_shape_options so = o->shape;
        if (!o->custom_shape) so.dims = llama[i].d_in, so.dims_out = llama[i].d_out, so.rank = llama[i].rank, so.rhat = 0;
        cli_shape_resolve(prog, &so, &r[i].shape, &r[i].dtype);
        const mora_shape *s = &r[i].shape;
        if (so.rank)
            snprintf(r[i].label, sizeof r[i].label, "%lld→%lld r=%lld (r̂=%lld, %s)", (long long)s->d_in, (long long)s->d_out,
                     (long long)so.rank, (long long)s->rhat, mora_op_name(s->op));
        else
            snprintf(r[i].label, sizeof r[i].label, "%lld→%lld r̂=%lld (%s)", (long long)s->d_in, (long long)s->d_out,
                     (long long)s->rhat, mora_op_name(s->op));
    }
    *out = r;
    return count;
}

int main(int argc, char **argv) {
    options o;
    parse_options(argc, argv, &o);
    bench_progress_start(o.quiet);
    bench_run run;
    memset(&run, 0, sizeof run);
    run.shape_count = resolve_shapes(&o, &run.shapes);
    char *command_line = join_command_line(argc, argv);
    run.command_line = command_line ? command_line : argv[0];


    mora_set_log_callback(on_log, NULL);
    mora_context *ctx = NULL;
    if (mora_context_create(o.backend, o.device, &ctx) != MORA_OK) {
        fprintf(stderr, "%s: %s\n", prog, mora_last_error());
        free(run.shapes), free(command_line);
        return 1;
    }
    const time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    strftime(run.date, sizeof run.date, "%Y-%m-%dT%H:%M:%SZ", &utc);
    read_commit(run.commit, sizeof run.commit);
    struct utsname un;
    if (uname(&un) == 0) snprintf(run.uname, sizeof run.uname, "%s %s %s %s", un.sysname, un.nodename, un.release, un.machine);
    read_cpu_model(run.cpu_model, sizeof run.cpu_model);
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    run.cpu_cores = cores > 0 ? (int)cores : 1;
    snprintf(run.backend, sizeof run.backend, "%s", mora_context_backend(ctx));
    snprintf(run.device, sizeof run.device, "%s", ctx->info.name);
    snprintf(run.device_vendor, sizeof run.device_vendor, "%s", ctx->info.vendor);
    snprintf(run.device_driver, sizeof run.device_driver, "%s", ctx->info.driver_version);
    run.device_is_cpu = ctx->info.is_cpu;
    run.compute_units = ctx->info.compute_units;
    run.budget_ms = o.budget_ms;
    run.min_reps = o.min_reps;
    run.verify_tokens = o.verify_tokens;
    run.blas_name = bench_host_blas_name();
    const int64_t tokens = o.tokens ? o.tokens : mora_default_tune_tokens(ctx);
    for (int i = 0; i < run.shape_count; ++i) run.shapes[i].tokens = tokens;
    bench_progress("%s on %s \"%s\": %d shape(s), %lld tokens%s", prog, run.backend, run.device, run.shape_count,
             (long long)tokens, o.tokens ? "" : (ctx->info.is_cpu ? " (the CPU-device default)" : " (the GPU default)"));

    bench_measure_roofline(ctx, o.budget_ms, o.min_reps, &run.roof);
    bench_progress("roofline: bandwidth %.1f GB/s (%s), peak %.1f GFLOP/s (%s)", run.roof.bandwidth_gbs, run.roof.bandwidth_source,
             run.roof.peak_gflops, run.roof.peak_source);
    for (int i = 0; i < run.shape_count; ++i) run_shape(ctx, &o, &run.shapes[i], i, run.shape_count);
    run.seconds = bench_progress_seconds();
    mora_context_destroy(ctx);

    bench_print_table(&run);
    int failed = 0;
    for (int i = 0; i < run.shape_count; ++i)
        for (int k = 0; k < MORA_KIND_COUNT; ++k)
            for (int v = 0; v < BENCH_VARIANT_COUNT; ++v)
                failed |= run.shapes[i].kinds[k].requested && strncmp(run.shapes[i].kinds[k].m[v].note, "FAILED", 6) == 0;
    if (o.json && bench_write_json(&run, o.json) != 0) failed = 1;
    if (o.csv && bench_write_csv(&run, o.csv) != 0) failed = 1;
    int plotted = 0;
    if (o.plot) {
        const int rc = bench_write_plot(&run, o.plot);
        failed |= rc == 1;
        plotted = rc == 0;
    }
    if (o.md && bench_write_markdown(&run, o.md, plotted ? o.plot : NULL) != 0) failed = 1;
    free(run.shapes);
    free(command_line);
    return failed ? 1 : 0;
}
