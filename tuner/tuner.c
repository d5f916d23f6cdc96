/* The tuner's driver: for each requested kernel kind, answer from the cache or search the space —
 * exhaustively when it is small, else seeded random sampling followed by a local search around the
 * best — compiling candidates in parallel, verifying each against the reference before timing it,
 * and storing the winner. See tuner.h. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "context.h"
#include "error.h"
#include "halfconv.h"
#include "programs.h"
#include "random.h"
#include "shape.h"
#include "tuner.h"

#define DEFAULT_BUDGET_SECONDS 60.0
#define DEFAULT_MAX_CANDIDATES 48
#define VERIFY_TOKENS 37    /* a prime: no tile size divides it, so every boundary guard runs */
#define NOISE_FLOOR 0.02    /* candidates within 2% (or their measured spread) tie: the one noise rule */
#define MIN_REPETITIONS 3
/* A winner measured with a relative spread above this cannot be ranked: it is measured again with
 * twice the time, and if it stays this noisy (a loaded machine) the kind keeps its default and no
 * record is stored, so a quieter run later tunes it (its spread is in every record).
 * mora_tune_options.max_spread overrides it. */
#define NOISY_SPREAD 0.25
/* The confirmation: the winner and the runner-up are measured again with twice the time, so that a
 * winner from a moment of noise (a lucky measurement, a neighbour's burst) meets the runner-up once
 * more before it is kept; rounds repeat while the winner changes or stays noisy. Its cost, reserved
 * from each kind's budget: two candidates at twice the time per candidate. */
#define CONFIRM_ROUNDS 3
#define CONFIRM_COST 4.0
/* --retune-noisy: the machine is quieter now when the load from other processes, sampled over
 * LOAD_SAMPLE_SECONDS, is this much below the record's. */
#define QUIETER_BY 0.1
#define LOAD_SAMPLE_SECONDS 0.5

int64_t mora_default_tune_tokens(const mora_context *ctx) { return ctx->info.is_cpu ? 256 : 8192; }

/* The load from other processes now: sampled over LOAD_SAMPLE_SECONDS of sleep. */
static double load_now(void) {
    mora_load_probe p;
    mora_load_probe_start(&p);
    const struct timespec pause = {0, (long)(LOAD_SAMPLE_SECONDS * 1e9)};
    nanosleep(&pause, NULL);
    return mora_load_probe_read(&p);
}

void mora_tuning_key(const mora_context *ctx, mora_kind kind, const mora_shape *s, mora_dtype dtype, int64_t tokens,
                     char *key, size_t size) {
    int64_t bucket = 1;
    while (bucket < tokens && bucket < ((int64_t)1 << 62)) bucket *= 2; /* never overflows */
    snprintf(key, size,
             "v%d|backend=%s|device=%s|arch=%s|units=%d|driver=%s|compiler=%s|library=%s|kind=%s|op=%s|d_in=%lld|"
             "d_out=%lld|rhat=%lld|dtype=%s|tokens<=%lld",
             MORA_CACHE_FORMAT_VERSION, ctx->be->name, ctx->info.name, ctx->info.arch, ctx->info.compute_units,
             ctx->info.driver_version, ctx->info.compiler_version, MORA_VERSION_STRING, mora_kind_name(kind),
             mora_op_name(s->op), (long long)s->d_in, (long long)s->d_out, (long long)s->rhat, mora_dtype_name(dtype),
             (long long)bucket);
}

/* ---- the parallel compile pool ---- */

typedef struct compile_job {
    mora_kernel_spec spec;
    int declared; /* position in the space */
    char *source;
    void *program;
    mora_status status;
    char error[512];
} compile_job;

typedef struct compile_pool {
    mora_context *ctx;
    compile_job *jobs;
    int count;
    int next; /* guarded by lock */
    pthread_mutex_t lock;
} compile_pool;

static void *compile_worker(void *arg) {
    compile_pool *pool = arg;
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        const int i = pool->next++;
        pthread_mutex_unlock(&pool->lock);
        if (i >= pool->count) return NULL;
        compile_job *job = &pool->jobs[i];
        if (job->status != MORA_OK) continue; /* code generation already failed */
        /* candidates are not registered and keep no binary: the tuner releases all but the winner */
        job->status = mora_context_build(pool->ctx, job->source, &job->program);
        if (job->status != MORA_OK) snprintf(job->error, sizeof job->error, "%s", mora_last_error());
    }
}

/* Generates and compiles jobs[0..count) on `threads` threads. */
static void compile_all(mora_context *ctx, compile_job *jobs, int count, int threads, const mora_tune_options *o) {
    for (int i = 0; i < count; ++i) {
        jobs[i].status = mora_codegen(&jobs[i].spec, &jobs[i].source);
        if (jobs[i].status != MORA_OK) snprintf(jobs[i].error, sizeof jobs[i].error, "%s", mora_last_error());
        else if (o->source_hook) o->source_hook(&jobs[i].spec, &jobs[i].source, o->source_user);
    }
    compile_pool pool = {ctx, jobs, count, 0, PTHREAD_MUTEX_INITIALIZER};
    if (threads > count) threads = count;
    pthread_t workers[64];
    int started = 0;
    for (int t = 0; t < threads && t < 64; ++t)
        if (pthread_create(&workers[t], NULL, compile_worker, &pool) == 0) ++started;
    if (started == 0) compile_worker(&pool); /* no threads available: compile here */
    for (int t = 0; t < started; ++t) pthread_join(workers[t], NULL);
}

/* ---- one kind ---- */

/* Buffers the candidates are timed on: allocated by the tuner, filled with seeded data. */
typedef struct timing_buffers {
    mora_kind_buffers b;
    void *owned[6];
} timing_buffers;

/* What has been measured of the candidates of one kind (by declared position). */
typedef struct evaluation {
    int declared;
    double median, spread;
} evaluation;

typedef struct kind_run {
    mora_context *ctx;
    mora_runner *runner;
    mora_kind kind;
    const mora_tune_options *o;
    const timing_buffers *timing;
    mora_verifier *verifier;
    int64_t tokens;
    const mora_kernel_spec *space;
    int space_size;
    char *evaluated; /* per declared position: tried already */
    void **programs; /* per declared position: the built program, while it may still win */
    char **sources;  /* per declared position: its source, while its program is kept */
    evaluation *results;
    int result_count;
    int planned;
    double deadline;
    double per_candidate_ms;
    int threads;
    int out_of_memory; /* a host allocation failed: the search stopped */
    mora_tune_result *out;
} kind_run;

static void report(const kind_run *r, mora_tune_event event, int index, const mora_kernel_spec *spec, double ms,
                   double best_ms, const char *message) {
    if (!r->o->progress) return;
    const mora_tune_progress p = {event, r->kind, index, r->planned, spec, ms, best_ms, message};
    r->o->progress(&p, r->o->progress_user);
}

static double best_so_far(const kind_run *r) {
    double best = -1;
    for (int i = 0; i < r->result_count; ++i)
        if (r->results[i].median >= 0 && (best < 0 || r->results[i].median < best)) best = r->results[i].median;
    return best;
}

static int winner(kind_run *r);

/* Releases the programs of every evaluated candidate but the current winner: memory stays bounded
 * however many candidates run. (A later batch can still make an earlier candidate win; its program
 * is then built again at the end.) */
static void release_losers(kind_run *r) {
    const int w = winner(r);
    const int keep = w >= 0 ? r->results[w].declared : -1;
    mora_runner_drop(r->runner, r->kind); /* its handles may point into a program released here */
    for (int i = 0; i < r->space_size; ++i)
        if (i != keep && r->programs[i]) {
            mora_context_release_program(r->ctx, r->programs[i]);
            r->programs[i] = NULL;
            free(r->sources[i]);
            r->sources[i] = NULL;
        }
}

/* Compiles, verifies and times the candidates at the given declared positions. */
static void evaluate(kind_run *r, const int *positions, int count) {
    compile_job *jobs = calloc((size_t)count, sizeof *jobs);
    if (!jobs) {
        r->out_of_memory = 1;
        return;
    }
    for (int i = 0; i < count; ++i) {
        jobs[i].spec = r->space[positions[i]];
        jobs[i].declared = positions[i];
        r->evaluated[positions[i]] = 1;
    }
    compile_all(r->ctx, jobs, count, r->threads, r->o);
    for (int i = 0; i < count; ++i) {
        compile_job *job = &jobs[i];
        evaluation *e = &r->results[r->result_count++];
        *e = (evaluation){job->declared, -1, 0};
        const int index = r->out->candidates++;
        if (job->status != MORA_OK) {
            ++r->out->failed;
            snprintf(r->out->last_failure, sizeof r->out->last_failure, "compile: %.200s", job->error);
            report(r, MORA_TUNE_FAILED, index, &job->spec, -1, best_so_far(r), job->error);
            continue;
        }
        r->programs[job->declared] = job->program;
        r->sources[job->declared] = job->source;
        job->source = NULL;
        mora_status st = mora_runner_use_program(r->runner, &job->spec, job->program);
        double error = NAN;
        if (st == MORA_OK) st = mora_verifier_check(r->verifier, &error);
        if (st != MORA_OK) {
            const int wrong = st == MORA_E_VERIFY;
            wrong ? ++r->out->rejected : ++r->out->failed;
            snprintf(r->out->last_failure, sizeof r->out->last_failure, "%s: %.200s", wrong ? "rejected" : "launch",
                     mora_last_error());
            report(r, wrong ? MORA_TUNE_REJECTED : MORA_TUNE_FAILED, index, &job->spec, -1, best_so_far(r),
                   mora_last_error());
            continue;
        }
        mora_timing t = {0};
        if (r->o->measure) st = r->o->measure(&job->spec, job->declared, &t, r->o->measure_user);
        else st = mora_measure_kind(r->runner, r->kind, &r->timing->b, 1, r->tokens, r->per_candidate_ms, MIN_REPETITIONS, &t);
        if (st != MORA_OK) {
            ++r->out->failed;
            snprintf(r->out->last_failure, sizeof r->out->last_failure, "launch: %.200s", mora_last_error());
            report(r, MORA_TUNE_FAILED, index, &job->spec, -1, best_so_far(r), mora_last_error());
            continue;
        }
        e->median = t.median_ms;
        e->spread = t.spread;
        report(r, MORA_TUNE_TIMED, index, &job->spec, t.median_ms, best_so_far(r), NULL);
    }
    for (int i = 0; i < count; ++i) free(jobs[i].source); /* failed jobs' (kept ones moved to r->sources) */
    free(jobs);
    release_losers(r);
}

/* Times results[w] again with twice the time per candidate (the winner's program is the one kept; a
 * runner-up's is obtained again through the kernels cache): a figure from a moment of load becomes
 * the steadier one of the longer run. */
static void remeasure(kind_run *r, int w) {
    const int declared = r->results[w].declared;
    mora_timing t = {0};
    mora_status st = MORA_OK;
    if (r->o->measure) {
        st = r->o->measure(&r->space[declared], declared, &t, r->o->measure_user);
    } else {
        st = r->programs[declared] ? mora_runner_use_program(r->runner, &r->space[declared], r->programs[declared])
                                   : mora_runner_set_spec(r->runner, &r->space[declared]);
        if (st == MORA_OK)
            st = mora_measure_kind(r->runner, r->kind, &r->timing->b, 1, r->tokens, 2 * r->per_candidate_ms,
                                   2 * MIN_REPETITIONS, &t);
        mora_runner_drop(r->runner, r->kind);
    }
    if (st == MORA_OK) r->results[w].median = t.median_ms, r->results[w].spread = t.spread;
    mora_error_clear();
}

static int compare_declared(const void *a, const void *b) {
    return ((const evaluation *)a)->declared - ((const evaluation *)b)->declared;
}

/* The winner among the evaluated candidates, earlier-declared winning ties; -1 if none was timed. */
static int winner(kind_run *r) {
    qsort(r->results, (size_t)r->result_count, sizeof *r->results, compare_declared);
    double *medians = malloc((size_t)(r->result_count + 1) * sizeof *medians);
    double *spreads = malloc((size_t)(r->result_count + 1) * sizeof *spreads);
    int best = -1;
    if (medians && spreads) {
        for (int i = 0; i < r->result_count; ++i) medians[i] = r->results[i].median, spreads[i] = r->results[i].spread;
        best = mora_pick_winner(medians, spreads, r->result_count, NOISE_FLOOR);
    }
    free(medians), free(spreads);
    return best;
}

/* The best timed candidate other than results[w]; -1 if none. */
static int runner_up(const kind_run *r, int w) {
    int best = -1;
    for (int i = 0; i < r->result_count; ++i)
        if (i != w && r->results[i].median >= 0 && (best < 0 || r->results[i].median < r->results[best].median)) best = i;
    return best;
}

/* Confirms the winner (see CONFIRM_ROUNDS): measures it and the runner-up again, and again while
 * the winner changes or stays noisier than max_spread, as long as the kind's time lasts (the first
 * round always runs: its time was reserved). Returns the winner's index in r->results, -1 if none. */
static int confirm(kind_run *r, double max_spread, double kind_end) {
    int w = winner(r);
    for (int round = 0; w >= 0 && round < CONFIRM_ROUNDS; ++round) {
        if (round > 0 && mora_clock_seconds() >= kind_end) break;
        const int declared = r->results[w].declared, other = runner_up(r, w);
        remeasure(r, w);
        if (other >= 0) remeasure(r, other);
        ++r->out->confirmed;
        w = winner(r);
        if (w >= 0 && r->results[w].declared == declared && r->results[w].spread <= max_spread) break;
    }
    return w;
}

static int position_of(const kind_run *r, const mora_kernel_spec *spec) {
    for (int i = 0; i < r->space_size; ++i)
        if (mora_spec_same_params(&r->space[i], spec)) return i;
    return -1;
}

static void search(kind_run *r, int max_candidates, uint64_t seed) {
    const int batch = r->threads * 2 < 2 ? 2 : r->threads * 2;
    int *positions = malloc((size_t)(max_candidates + 64) * sizeof *positions);
    if (!positions) {
        r->out_of_memory = 1;
        return;
    }
    int planned = 0;
    if (r->space_size <= max_candidates) { /* small space: all of it, in declared order */
        r->out->strategy_exhaustive = 1;
        for (int i = 0; i < r->space_size; ++i) positions[planned++] = i;
    } else { /* the default, then a seeded sample of two thirds of the candidates */
        positions[planned++] = 0;
        char *picked = calloc((size_t)r->space_size, 1);
        uint64_t state = seed;
        const int sample = (2 * max_candidates) / 3;
        for (int guard = 0; picked && planned < sample && guard < 100 * max_candidates; ++guard) {
            const int i = 1 + (int)(mora_random_next(&state) % (uint64_t)(r->space_size - 1));
            if (!picked[i]) picked[i] = 1, positions[planned++] = i;
        }
        free(picked);
    }
    r->planned = r->out->strategy_exhaustive ? planned : max_candidates;
    report(r, MORA_TUNE_START, 0, NULL, -1, -1, NULL);
    /* the default first, alone (always measured); then batches while the budget lasts, each no
     * larger than the time left allows at the cost per candidate seen so far (compiles included), so
     * a loaded machine or a slow compiler does not run far past the budget */
    const double started = mora_clock_seconds();
    evaluate(r, positions, 1);
    for (int done = 1; done < planned;) {
        const double now = mora_clock_seconds(), per_candidate = (now - started) / done;
        const int affordable = per_candidate > 0 ? (int)((r->deadline - now) / per_candidate) : batch;
        const int size = planned - done < batch ? planned - done : batch;
        if (affordable < 1) break;
        evaluate(r, positions + done, size < affordable ? size : affordable);
        done += size < affordable ? size : affordable;
    }
    /* local search: the best candidate's untried neighbours, as long as they improve it */
    while (!r->out->strategy_exhaustive && r->out->candidates < max_candidates && mora_clock_seconds() < r->deadline) {
        const int w = winner(r);
        if (w < 0) break;
        mora_kernel_spec neighbours[2 * MORA_MAX_PARAMS];
        const int count = mora_space_neighbours(&r->space[r->results[w].declared], &r->ctx->info, neighbours,
                                                2 * MORA_MAX_PARAMS);
        int fresh = 0;
        for (int i = 0; i < count && r->out->candidates + fresh < max_candidates; ++i) {
            const int at = position_of(r, &neighbours[i]);
            if (at >= 0 && !r->evaluated[at]) positions[fresh++] = at;
        }
        if (fresh == 0) break;
        const int before = r->results[w].declared;
        evaluate(r, positions, fresh);
        const int after = winner(r);
        if (after < 0 || r->results[after].declared == before) break; /* no neighbour was better */
    }
    free(positions);
}

/* Record <-> result */
static void record_from_result(const mora_tune_result *res, int64_t tokens, mora_tuning_record *rec) {
    memset(rec, 0, sizeof *rec);
    const mora_kind_decl *d = mora_spec_decl(&res->best);
    snprintf(rec->kind, sizeof rec->kind, "%s", d->name);
    rec->param_count = d->param_count;
    for (int i = 0; i < d->param_count; ++i) {
        snprintf(rec->param_names[i], sizeof rec->param_names[i], "%s", d->params[i].name);
        rec->param_values[i] = res->best.params[i];
    }
    rec->time_ms = res->best_ms;
    rec->spread = res->best_spread;
    rec->default_ms = res->default_ms;
    rec->load = res->load;
    rec->candidates = res->candidates;
    rec->rejected = res->rejected;
    rec->failed = res->failed;
    rec->tokens = tokens;
    const time_t t = time(NULL);
    struct tm utc;
    gmtime_r(&t, &utc);
    strftime(rec->tuned_at, sizeof rec->tuned_at, "%Y-%m-%dT%H:%M:%SZ", &utc);
}

mora_status mora_spec_apply_record(mora_kernel_spec *spec, const mora_tuning_record *rec) {
    mora_kernel_spec next = *spec;
    if (strcmp(rec->kind, mora_kind_name(spec->kind)) != 0)
        return mora_fail(MORA_E_PARAM, "record of kind %s: expected %s", rec->kind, mora_kind_name(spec->kind));
    for (int i = 0; i < rec->param_count; ++i) MORA_TRY(mora_spec_set_param(&next, rec->param_names[i], rec->param_values[i]));
    *spec = next;
    return MORA_OK;
}

/* x, y, dy, dx for `tokens` tokens, W (only when merge is tuned: d_out x d_in can be large), dM. */
static mora_status timing_buffers_create(mora_context *ctx, const mora_shape *s, mora_dtype dtype, int64_t tokens,
                                         int with_w, timing_buffers *tb) {
    memset(tb, 0, sizeof *tb);
    const size_t es = mora_dtype_size(dtype);
    const size_t sizes[5] = {(size_t)(tokens * s->d_in), (size_t)(tokens * s->d_out), (size_t)(tokens * s->d_out),
                             (size_t)(tokens * s->d_in), with_w ? (size_t)(s->d_out * s->d_in) : 1};
    size_t largest = (size_t)(s->rhat * s->rhat) * 4;
    for (int i = 0; i < 5; ++i) largest = sizes[i] * es > largest ? sizes[i] * es : largest;
    unsigned char *host = malloc(largest);
    if (!host) return mora_fail(MORA_E_NO_MEMORY, "tuner: out of host memory for %zu bytes", largest);
    uint64_t state = 12345;
    for (int i = 0; i < 6; ++i) {
        const size_t count = i < 5 ? sizes[i] : (size_t)(s->rhat * s->rhat);
        const mora_dtype type = i < 5 ? dtype : MORA_F32;
        for (size_t k = 0; k < count; ++k)
            mora_store_act(type, host, (int64_t)k, (float)(mora_random_unit(&state) - 0.5));
        mora_status st = mora_context_buffer_alloc(ctx, count * mora_dtype_size(type), &tb->owned[i]);
        if (st == MORA_OK) st = mora_context_buffer_write(ctx, tb->owned[i], 0, host, count * mora_dtype_size(type));
        if (st != MORA_OK) {
            free(host);
            return st; /* the caller frees what was allocated */
        }
    }
    free(host);
    tb->b = (mora_kind_buffers){.x = tb->owned[0], .y = tb->owned[1], .dy = tb->owned[2], .dx = tb->owned[3],
                                .w = tb->owned[4], .dm = tb->owned[5], .w_dtype = dtype, .scale = 1.0f};
    return MORA_OK;
}

static void timing_buffers_free(mora_context *ctx, timing_buffers *tb) {
    for (int i = 0; i < 6; ++i)
        mora_context_buffer_free(ctx, tb->owned[i]);
}

/* The winner's program goes to the kernels cache (so the next process loads it instead of
 * compiling) and to the context's registry (so plans of this process use it at once); the other
 * candidates' programs are released by the caller. A winner whose program was released (a later
 * batch made it win again) is left to be compiled when a plan needs it. */
static void keep_winner(kind_run *r, int declared, mora_cache *cache) {
    void *program = r->programs[declared];
    if (!program) return;
    mora_runner_drop(r->runner, r->kind);
    r->programs[declared] = NULL;
    mora_program_store_binary(r->ctx, cache, r->sources[declared], program);
    if (mora_context_register_program(r->ctx, r->sources[declared], &program) != MORA_OK)
        mora_context_release_program(r->ctx, program);
}

mora_status mora_tune(mora_context *ctx, const mora_shape *s, mora_dtype dtype, const mora_tune_options *options,
                      mora_tune_result results[MORA_KIND_COUNT]) {
    MORA_CHECK_PTR(ctx);
    MORA_CHECK_PTR(s);
    MORA_CHECK_PTR(results);
    MORA_TRY(mora_shape_check(s));
    const mora_tune_options defaults = {0};
    const mora_tune_options *o = options ? options : &defaults;
    if (o->tokens < 0 || o->tokens >= MORA_KERNEL_INDEX_LIMIT)
        return mora_fail(MORA_E_SIZE, "tokens=%lld: must be in [1, 2^31) (0: the device's default)", (long long)o->tokens);
    if (!(o->budget_seconds >= 0 && o->budget_seconds <= MORA_TUNE_MAX_BUDGET_SECONDS))
        return mora_fail(MORA_E_ARG, "budget=%g s: must be in (0, %g] s of wall time (0: 60)", o->budget_seconds,
                         MORA_TUNE_MAX_BUDGET_SECONDS);
    if (o->max_candidates < 0 || o->max_candidates > 100000)
        return mora_fail(MORA_E_ARG, "max_candidates=%d: must be in [1, 100000] (0: 48)", o->max_candidates);
    MORA_TRY(mora_kernel_shape_check(s, ctx->be->dialect));
    const int64_t tokens = o->tokens ? o->tokens : mora_default_tune_tokens(ctx);
    const double budget = o->budget_seconds > 0 ? o->budget_seconds : DEFAULT_BUDGET_SECONDS;
    const int max_candidates = o->max_candidates ? o->max_candidates : DEFAULT_MAX_CANDIDATES;
    const unsigned kinds = o->kinds ? o->kinds : (1u << MORA_KIND_COUNT) - 1;
    mora_cache *cache = o->cache ? o->cache : mora_context_cache(ctx);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    /* Oclgrind's compiler is not thread-safe (parallel clBuildProgram crashes it: double free, segfault),
     * so on the simulator the default is one compile thread; an explicit compile_threads is obeyed. */
    const int serial_compiler = strstr(ctx->info.name, "Oclgrind") != NULL;
    const int threads = o->compile_threads > 0 ? o->compile_threads
                        : serial_compiler     ? 1
                        : cores > 0           ? (int)cores
                                              : 1;

    memset(results, 0, MORA_KIND_COUNT * sizeof *results);
    mora_runner *runner = NULL;
    MORA_TRY(mora_runner_create(ctx, s, dtype, &runner));
    /* M: seeded values of the size training produces, so timing sees realistic numbers */
    float *M = malloc((size_t)(s->rhat * s->rhat) * sizeof *M);
    uint64_t state = 777;
    for (int64_t i = 0; M && i < s->rhat * s->rhat; ++i) M[i] = (float)((mora_random_unit(&state) - 0.5) / sqrt((double)s->rhat));
    mora_status st = M ? mora_runner_set_weight(runner, M) : mora_fail(MORA_E_NO_MEMORY, "tuner: out of host memory");
    free(M);
    timing_buffers timing = {0};
    if (st == MORA_OK) st = timing_buffers_create(ctx, s, dtype, tokens, (kinds >> MORA_KIND_MERGE) & 1, &timing);
    if (st != MORA_OK) {
        timing_buffers_free(ctx, &timing);
        mora_runner_destroy(runner);
        return st;
    }

    const double start = mora_clock_seconds();
    int remaining = 0;
    for (int k = 0; k < MORA_KIND_COUNT; ++k) remaining += (kinds >> k) & 1;
    for (int k = 0; k < MORA_KIND_COUNT && st == MORA_OK; ++k) {
        if (!((kinds >> k) & 1)) continue;
        mora_tune_result *res = &results[k];
        const double kind_start = mora_clock_seconds();
        res->requested = 1;
        res->load = NAN;
        res->best = mora_spec_default(s, dtype, (mora_kind)k, ctx->be->dialect);
        res->best_ms = res->default_ms = -1;
        char key[1024];
        mora_tuning_key(ctx, (mora_kind)k, s, dtype, tokens, key, sizeof key);
        mora_tuning_record rec;
        int cached = !o->force && mora_cache_record_load(cache, key, &rec) == MORA_OK &&
                     mora_spec_apply_record(&res->best, &rec) == MORA_OK;
        if (cached && !mora_space_valid(&res->best, &ctx->info)) {
            /* valid as a record, but not on this device: not a tuner's here; removed and tuned again */
            mora_log(MORA_LOG_WARNING, "kernels cache: record for kind %s, key %s: outside this device's limits; "
                     "removed, will be re-tuned", mora_kind_name((mora_kind)k), key);
            (void)mora_cache_record_remove(cache, key);
            res->best = mora_spec_default(s, dtype, (mora_kind)k, ctx->be->dialect);
            cached = 0;
        }
        if (cached && o->retune_noisy && rec.load > MORA_TUNE_LOADED) {
            /* measured under load: tuned again if the machine is quieter now, else kept */
            const double now = o->load_hook ? o->load_hook(1, o->load_user) : load_now();
            if (now < rec.load - QUIETER_BY) {
                res->retuned = 1;
                res->best = mora_spec_default(s, dtype, (mora_kind)k, ctx->be->dialect);
                cached = 0;
            } else {
                res->kept_loaded = 1;
            }
        }
        if (cached) {
            res->from_cache = 1;
            res->load = rec.load, res->loaded = rec.load > MORA_TUNE_LOADED;
            res->best_ms = rec.time_ms, res->best_spread = rec.spread, res->default_ms = rec.default_ms;
            res->candidates = rec.candidates, res->rejected = rec.rejected, res->failed = rec.failed;
            if (o->progress) {
                const mora_tune_progress p = {MORA_TUNE_CACHED, (mora_kind)k, 0, 0, &res->best, rec.time_ms, rec.time_ms, NULL};
                o->progress(&p, o->progress_user);
            }
            --remaining;
            continue;
        }

        kind_run r = {.ctx = ctx, .runner = runner, .kind = (mora_kind)k, .o = o, .timing = &timing, .tokens = tokens,
                      .threads = threads, .out = res};
        mora_kernel_spec *space = NULL;
        st = mora_space_enumerate(&res->best, &ctx->info, &space, &r.space_size);
        if (st == MORA_OK) st = mora_verifier_create(runner, (mora_kind)k, tokens < VERIFY_TOKENS ? tokens : VERIFY_TOKENS,
                                                     0xC0FFEEu + (uint64_t)k, &r.verifier);
        if (st != MORA_OK) {
            free(space);
            break;
        }
        r.space = space;
        res->space_size = r.space_size;
        r.evaluated = calloc((size_t)r.space_size, 1);
        r.programs = calloc((size_t)r.space_size, sizeof *r.programs);
        r.sources = calloc((size_t)r.space_size, sizeof *r.sources);
        r.results = malloc((size_t)(max_candidates + 2 * MORA_MAX_PARAMS + 64) * sizeof *r.results);
        if (!r.evaluated || !r.programs || !r.sources || !r.results) {
            st = mora_fail(MORA_E_NO_MEMORY, "tuner: out of host memory for a space of %d candidates", r.space_size);
            mora_verifier_destroy(r.verifier);
            free(r.evaluated), free(r.programs), free(r.sources), free(r.results), free(space);
            break;
        }
        const double kind_budget = (budget - (mora_clock_seconds() - start)) / remaining;
        const double kind_end = mora_clock_seconds() + (kind_budget > 0 ? kind_budget : 0);
        const int expected = r.space_size < max_candidates ? r.space_size : max_candidates;
        r.per_candidate_ms = 1e3 * kind_budget / (expected + 1) / 3; /* a third of the budget for timing */
        if (r.per_candidate_ms < 20) r.per_candidate_ms = 20;
        if (r.per_candidate_ms > 500) r.per_candidate_ms = 500;
        /* the search ends early enough for one confirmation round (two candidates at twice the time) */
        r.deadline = kind_end - CONFIRM_COST * r.per_candidate_ms / 1e3;
        mora_load_probe load;
        mora_load_probe_start(&load);
        search(&r, max_candidates, o->seed ? o->seed : 1);

        if (r.out_of_memory) st = mora_fail(MORA_E_NO_MEMORY, "tuner: out of host memory while evaluating candidates");
        const double max_spread = o->max_spread > 0 ? o->max_spread : NOISY_SPREAD;
        const int w = confirm(&r, max_spread, kind_end);
        res->load = o->load_hook ? o->load_hook(0, o->load_user) : mora_load_probe_read(&load);
        res->loaded = res->load > MORA_TUNE_LOADED;
        if (w >= 0 && res->loaded)
            mora_log(MORA_LOG_WARNING, "tuning %s: other processes kept %.0f%% of the cores busy while it was measured; "
                     "its record says so (`mora-tune --retune-noisy` tunes it again on a quieter machine)",
                     mora_kind_name((mora_kind)k), 100.0 * res->load);
        if (w >= 0) {
            res->best = r.space[r.results[w].declared];
            res->best_ms = r.results[w].median;
            res->best_spread = r.results[w].spread;
            if (res->best_spread > max_spread) { /* too noisy to rank: the declared defaults, and no record */
                res->noisy = 1;
                res->best = mora_spec_default(s, dtype, (mora_kind)k, ctx->be->dialect);
                res->best_ms = -1;
                for (int i = 0; i < r.result_count; ++i)
                    if (r.results[i].declared == 0 && mora_spec_same_params(&r.space[0], &res->best))
                        res->best_ms = r.results[i].median, res->best_spread = r.results[i].spread;
            }
        }
        for (int i = 0; i < r.result_count; ++i)
            if (r.results[i].declared == 0) res->default_ms = r.results[i].median;
        res->seconds = mora_clock_seconds() - kind_start;
        if (o->progress) {
            const mora_tune_progress p = {MORA_TUNE_DONE, (mora_kind)k, res->candidates, r.planned, &res->best,
                                          res->best_ms, res->best_ms, NULL};
            o->progress(&p, o->progress_user);
        }
        if (w >= 0 && !res->noisy) {
            record_from_result(res, tokens, &rec);
            (void)mora_cache_record_store(cache, key, &rec); /* a cache that cannot be written is not an error */
            keep_winner(&r, r.results[w].declared, cache);
        } else if (w < 0 && st == MORA_OK) {
            st = mora_fail(MORA_E_VERIFY, "%s: no candidate passed verification and timing (%d rejected, %d failed; last: %s)",
                           mora_kind_name((mora_kind)k), res->rejected, res->failed, res->last_failure);
        }
        mora_runner_drop(runner, (mora_kind)k);
        for (int i = 0; i < r.space_size; ++i) {
            if (r.programs[i]) mora_context_release_program(ctx, r.programs[i]);
            free(r.sources[i]);
        }
        mora_verifier_destroy(r.verifier);
        free(r.evaluated), free(r.programs), free(r.sources), free(r.results), free(space);
        --remaining;
    }
    timing_buffers_free(ctx, &timing);
    mora_runner_destroy(runner);
    if (st == MORA_OK) mora_error_clear();
    return st;
}
