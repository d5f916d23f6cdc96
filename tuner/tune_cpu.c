/* Tuning the cpu path (runtime/cpu_kernels.h): its two parameters, tokens per tile and worker
 * threads, are searched exhaustively over a small grid around the defaults; each candidate runs a
 * forward and a full backward (dx and dM) on seeded data, timed with the project's loop
 * (mora_time_calls: warm-up, repetitions, median), and the fastest beyond the noise band wins, the
 * default first so that ties keep it. The cpu kernels are checked against the float64 reference by
 * test_cpu_kernels for every tile and thread count; what a record may hold is checked on load. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "context.h"
#include "cpu_kernels.h"
#include "error.h"
#include "halfconv.h"
#include "programs.h"
#include "tuner.h"

#define CPU_NOISE_FLOOR 0.03 /* candidates within 3 % (or their spread) tie */

void mora_cpu_tuning_key(const mora_context *ctx, const mora_shape *s, mora_dtype dtype, int64_t tokens, char *key,
                         size_t size) {
    int64_t bucket = 1;
    while (bucket < tokens && bucket < ((int64_t)1 << 62)) bucket *= 2;
    snprintf(key, size,
             "v%d|backend=%s|device=%s|units=%d|library=%s|kind=" MORA_CPU_RECORD_KIND "|op=%s|d_in=%lld|d_out=%lld|"
             "rhat=%lld|dtype=%s|tokens<=%lld",
             MORA_CACHE_FORMAT_VERSION, ctx->be->name, ctx->info.name, ctx->info.compute_units, MORA_VERSION_STRING,
             mora_op_name(s->op), (long long)s->d_in, (long long)s->d_out, (long long)s->rhat, mora_dtype_name(dtype),
             (long long)bucket);
}

mora_status mora_cpu_params_from_record(const mora_tuning_record *r, mora_cpu_params *params) {
    if (strcmp(r->kind, MORA_CPU_RECORD_KIND) != 0)
        return mora_fail(MORA_E_PARAM, "record of kind %s: not the cpu path's", r->kind);
    mora_cpu_params p = {0, 0};
    for (int i = 0; i < r->param_count; ++i) {
        if (strcmp(r->param_names[i], "CPU_TILE_TOKENS") == 0) p.tile_tokens = r->param_values[i];
        else if (strcmp(r->param_names[i], "CPU_THREADS") == 0) p.threads = r->param_values[i];
        else return mora_fail(MORA_E_PARAM, "record of kind cpu: %s is not one of its parameters", r->param_names[i]);
    }
    *params = p;
    return MORA_OK;
}

/* One candidate's call: a forward, then a backward with dx and dM, on the tuner's buffers. */
typedef struct cpu_call {
    const mora_cpu_plan *plan;
    const mora_shape *s;
    const float *M;
    void *x, *y, *dy, *dx, *workspace;
    float *dM;
    int64_t n;
} cpu_call;

static mora_status run_cpu_call(void *user, int rep) {
    (void)rep;
    const cpu_call *c = user;
    MORA_TRY(mora_cpu_forward(c->plan, c->M, c->x, c->s->d_in, c->y, c->s->d_out, c->n, 1.0f, c->workspace));
    return mora_cpu_backward(c->plan, c->M, c->x, c->s->d_in, c->dy, c->s->d_out, c->dx, c->s->d_in, c->dM, c->n, 1.0f,
                             c->workspace);
}

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

mora_status mora_tune_cpu(mora_context *ctx, const mora_shape *s, mora_dtype dtype, const mora_tune_options *options,
                          mora_cpu_tune_result *out) {
    MORA_CHECK_PTR(ctx);
    MORA_CHECK_PTR(s);
    MORA_CHECK_PTR(out);
    MORA_TRY(mora_shape_check(s));
    if (ctx->be->program_build)
        return mora_fail(MORA_E_UNSUPPORTED, "backend \"%s\": runs generated kernels (mora_tune tunes those)", ctx->be->name);
    const mora_tune_options defaults = {0};
    const mora_tune_options *o = options ? options : &defaults;
    if (o->tokens < 0 || o->tokens >= ((int64_t)1 << 31))
        return mora_fail(MORA_E_SIZE, "tokens=%lld: must be in [1, 2^31) (0: the device's default)", (long long)o->tokens);
    const int64_t n = o->tokens ? o->tokens : mora_default_tune_tokens(ctx);
    const double budget = o->budget_seconds > 0 ? o->budget_seconds : 60.0;
    memset(out, 0, sizeof *out);
    out->best_ms = out->default_ms = -1;
    mora_cache *cache = o->cache ? o->cache : mora_context_cache(ctx);
    char key[1024];
    mora_cpu_tuning_key(ctx, s, dtype, n, key, sizeof key);
    mora_tuning_record rec;
    if (!o->force && cache && mora_cache_record_load(cache, key, &rec) == MORA_OK &&
        mora_cpu_params_from_record(&rec, &out->best) == MORA_OK) {
        out->from_cache = 1;
        out->best_ms = rec.time_ms, out->default_ms = rec.default_ms, out->candidates = rec.candidates;
        mora_error_clear();
        return MORA_OK;
    }

    /* the grid: the default first, then tiles of ¼ … 4× the default, threads 1 … cores */
    mora_cpu_plan *probe = NULL;
    MORA_TRY(mora_cpu_plan_create(s, dtype, NULL, &probe));
    const mora_cpu_params base = mora_cpu_plan_params(probe);
    mora_cpu_plan_destroy(probe);
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    const int cores = online < 1 ? 1 : online > 8 ? 8 : (int)online;
    mora_cpu_params grid[64];
    int count = 0;
    grid[count++] = base;
    const int tiles[5] = {base.tile_tokens / 4, base.tile_tokens / 2, base.tile_tokens, base.tile_tokens * 2,
                          base.tile_tokens * 4};
    for (int t = 0; t < 5; ++t)
        for (int w = 1; w <= cores && count < 64; ++w) {
            const mora_cpu_params c = {tiles[t] < 1 ? 1 : tiles[t], w};
            int seen = 0;
            for (int i = 0; i < count; ++i) seen |= grid[i].tile_tokens == c.tile_tokens && grid[i].threads == c.threads;
            if (!seen) grid[count++] = c;
        }

    /* seeded inputs, rounded to the dtype; M of the size training produces */
    const size_t es = mora_dtype_size(dtype);
    const int64_t nx = n * s->d_in, ny = n * s->d_out, nm = s->rhat * s->rhat;
    void *x = malloc((size_t)nx * es), *y = calloc((size_t)ny, es), *dy = malloc((size_t)ny * es), *dx = calloc((size_t)nx, es);
    float *M = malloc((size_t)nm * sizeof *M), *dM = calloc((size_t)nm, sizeof *dM);
    double medians[64], spreads[64];
    mora_status st = x && y && dy && dx && M && dM ? MORA_OK : mora_fail(MORA_E_NO_MEMORY, "cpu tuning: out of host memory");
    uint64_t state = 12345;
    for (int64_t i = 0; st == MORA_OK && i < (nx > ny ? nx : ny); ++i) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        const float v = (float)((double)(state >> 11) * 0x1p-53 - 0.5);
        if (i < nx) mora_store_act(dtype, x, i, v);
        if (i < ny) mora_store_act(dtype, dy, i, v);
    }
    for (int64_t i = 0; st == MORA_OK && i < nm; ++i) M[i] = (float)(((double)(i % 17) - 8.0) / (8.0 * sqrt((double)s->rhat)));
    const double start = seconds_now();
    for (int i = 0; i < count && st == MORA_OK; ++i) {
        medians[i] = -1, spreads[i] = 0;
        if (i > 0 && seconds_now() - start > budget) break; /* the default is always measured */
        mora_cpu_plan *plan = NULL;
        if (mora_cpu_plan_create(s, dtype, &grid[i], &plan) != MORA_OK) continue; /* outside the plan's limits */
        void *workspace = malloc(mora_cpu_workspace_bytes(plan, n) + 1);
        if (!workspace) {
            mora_cpu_plan_destroy(plan);
            st = mora_fail(MORA_E_NO_MEMORY, "cpu tuning: out of host memory for a workspace");
            break;
        }
        cpu_call call = {plan, s, M, x, y, dy, dx, workspace, dM, n};
        mora_timing t;
        const double per_candidate_ms = 1e3 * budget / (count + 1) / 2;
        if (mora_time_calls(ctx, 0, run_cpu_call, &call, per_candidate_ms < 50 ? 50 : per_candidate_ms, 3, &t) == MORA_OK)
            medians[i] = t.median_ms, spreads[i] = t.spread, ++out->candidates;
        free(workspace);
        mora_cpu_plan_destroy(plan);
    }
    free(x), free(y), free(dy), free(dx), free(M), free(dM);
    MORA_TRY(st);
    const int w = mora_pick_winner(medians, spreads, count, CPU_NOISE_FLOOR);
    if (w < 0) return mora_fail(MORA_E_VERIFY, "cpu tuning: no candidate could be timed (%s)", mora_last_error());
    out->best = grid[w];
    out->best_ms = medians[w];
    out->default_ms = medians[0];
    out->seconds = seconds_now() - start;
    memset(&rec, 0, sizeof rec);
    snprintf(rec.kind, sizeof rec.kind, MORA_CPU_RECORD_KIND);
    rec.param_count = 2;
    snprintf(rec.param_names[0], sizeof rec.param_names[0], "CPU_TILE_TOKENS");
    snprintf(rec.param_names[1], sizeof rec.param_names[1], "CPU_THREADS");
    rec.param_values[0] = out->best.tile_tokens;
    rec.param_values[1] = out->best.threads;
    rec.time_ms = out->best_ms;
    rec.spread = spreads[w];
    rec.default_ms = out->default_ms;
    rec.candidates = out->candidates;
    rec.tokens = n;
    const time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    strftime(rec.tuned_at, sizeof rec.tuned_at, "%Y-%m-%dT%H:%M:%SZ", &utc);
    if (cache) (void)mora_cache_record_store(cache, key, &rec); /* a cache that cannot be written is no error */
    mora_error_clear();
    return MORA_OK;
}
