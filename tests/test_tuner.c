/* test_tuner — the autotuner, one for every backend.
 *   test_tuner opencl   on the OpenCL backend (exits 77 without it): winner selection and its tie
 *                       rule, the strategies with an injected timer (exhaustive, seeded sampling,
 *                       reproducibility), the correctness gate rejecting planted wrong kernels and
 *                       classifying a compile failure, the cache round trip (a second run answers
 *                       from the cache, --force tunes again), and plans picking up the tuned
 *                       parameters;
 *   test_tuner cpu      the same tuner on the cpu backend: the host kernels' tile and threads tuned
 *                       per kind, stored, answered from the cache, taken by plans; a record outside
 *                       the kind's table refused on load; budgets (refused above the maximum, kept
 *                       as wall time), noise (a planted lucky measurement does not win, records
 *                       say the load they were measured under, --retune-noisy) and the load probe.
 * Runs in a private cache directory. */
#define _DEFAULT_SOURCE
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "context.h"
#include "cpu_gemm.h"
#include "plan_internal.h"
#include "programs.h"
#include "tuner.h"

static void check_pick_winner(void) {
    const double none[] = {-1, -1};
    const double zero[] = {0, 0};
    CHECK_EQ_INT(mora_pick_winner(none, zero, 2, 0.02), -1);
    /* 1% faster is inside the 2% noise band: the earlier-declared candidate keeps the win */
    const double tie[] = {10.0, 9.9, 9.85};
    const double quiet[] = {0.0, 0.0, 0.0};
    CHECK_EQ_INT(mora_pick_winner(tie, quiet, 3, 0.02), 0);
    /* 20% faster wins */
    const double clear[] = {10.0, 8.0, 9.0};
    CHECK_EQ_INT(mora_pick_winner(clear, quiet, 3, 0.02), 1);
    /* a noisy candidate needs to be faster by its own spread */
    const double noisy_spread[] = {0.0, 0.3};
    const double noisy[] = {10.0, 8.0};
    CHECK_EQ_INT(mora_pick_winner(noisy, noisy_spread, 2, 0.02), 0);
    /* untimed candidates (rejected, failed) never win */
    const double holes[] = {-1, 5.0, -1, 4.0};
    const double flat[] = {0, 0, 0, 0};
    CHECK_EQ_INT(mora_pick_winner(holes, flat, 4, 0.02), 3);
}

/* The search space holds MMA = 1 candidates only where they are valid: CUDA / HIP, f16 / bf16, a
 * device with the instructions, whole fragments per tile. No backend needed. */
static int count_mma(mora_kind kind, mora_dtype dtype, mora_dialect dialect, const char *arch) {
    mora_device_info device;
    memset(&device, 0, sizeof device);
    snprintf(device.arch, sizeof device.arch, "%s", arch);
    device.max_work_group = 1024;
    device.local_mem_bytes = 48 * 1024;
    const mora_shape s = {4096, 4096, 256, MORA_OP_SHARE};
    const mora_kernel_spec base = mora_spec_default(&s, dtype, kind, dialect);
    mora_kernel_spec *specs = NULL;
    int count = 0, mma = 0;
    REQUIRE_OK(mora_space_enumerate(&base, &device, &specs, &count));
    for (int i = 0; i < count; ++i) {
        if (!mora_spec_mma(&specs[i])) continue;
        ++mma;
        CHECK_STATUS(mora_spec_check(&specs[i], device.max_work_group, device.local_mem_bytes), MORA_OK);
        CHECK(mora_spec_role(&specs[i], "TK", 0) % 16 == 0);
        CHECK(mora_spec_role(&specs[i], "TM", 0) % (16 * mora_spec_role(&specs[i], "WM", 1)) == 0);
    }
    free(specs);
    return mma;
}

static void check_space_mma(void) {
    for (int k = 0; k < 3; ++k) {
        const mora_kind kind = (mora_kind)k;
        CHECK(count_mma(kind, MORA_F16, MORA_DIALECT_CUDA, "sm_90") > 0);
        CHECK(count_mma(kind, MORA_BF16, MORA_DIALECT_CUDA, "sm_80") > 0);
        CHECK(count_mma(kind, MORA_BF16, MORA_DIALECT_HIP, "gfx90a:sramecc+:xnack-") > 0);
        CHECK(count_mma(kind, MORA_F16, MORA_DIALECT_HIP, "gfx908") > 0);
        CHECK_EQ_INT(count_mma(kind, MORA_BF16, MORA_DIALECT_HIP, "gfx908"), 0); /* no bf16_1k */
        CHECK_EQ_INT(count_mma(kind, MORA_F16, MORA_DIALECT_HIP, "gfx1030"), 0);
        CHECK_EQ_INT(count_mma(kind, MORA_F16, MORA_DIALECT_CUDA, "sm_75"), 0);
        CHECK_EQ_INT(count_mma(kind, MORA_F32, MORA_DIALECT_CUDA, "sm_90"), 0);
        CHECK_EQ_INT(count_mma(kind, MORA_F16, MORA_DIALECT_OPENCL, ""), 0);
    }
}

/* Injected timer: a deterministic function of the parameters, with a tie between two candidates. */
typedef struct fake_timer {
    int calls;
    int first_index; /* declared index of the first timed candidate */
} fake_timer;

static mora_status fake_measure(const mora_kernel_spec *spec, int index, mora_timing *t, void *user) {
    fake_timer *ft = user;
    if (ft->calls++ == 0) ft->first_index = index;
    double ms = 1.0;
    const mora_kind_decl *d = mora_spec_decl(spec);
    for (int i = 0; i < d->param_count; ++i) ms += 0.001 * mora_spec_get_param(spec, d->params[i].name);
    if (spec->kind == MORA_KIND_MERGE) {
        const int ls = mora_spec_get_param(spec, "MERGE_LS");
        ms = ls == 64 || ls == 256 ? 0.5 : 1.0; /* a tie */
    }
    t->median_ms = ms;
    t->spread = 0.0;
    t->repetitions = 5;
    return MORA_OK;
}

/* A timer on a loaded machine: every measurement spreads by 50 %, and the "fastest" candidate is
 * whichever the noise favoured. */
static mora_status noisy_measure(const mora_kernel_spec *spec, int index, mora_timing *t, void *user) {
    (void)spec, (void)user;
    t->median_ms = 1.0 / (1.0 + index);
    t->spread = 0.5;
    t->repetitions = 3;
    return MORA_OK;
}

/* Planted bugs: candidates with FWD_TK=4 scale wrongly, FWD_TK=8 skip a column, FWD_TK=32 do not compile. */
static void plant_bugs(const mora_kernel_spec *spec, char **source, void *user) {
    (void)user;
    if (spec->kind != MORA_KIND_FWD) return;
    const int tk = mora_spec_get_param(spec, "FWD_TK");
    const char *from = NULL, *to = NULL;
    if (tk == 4) from = "scale * gemm_acc[i][j]", to = "scale * 1.01f * gemm_acc[i][j]";
    if (tk == 8) from = "if (a < RHAT) decomp_add", to = "if (a < RHAT - 1) decomp_add";
    if (tk == 32) from = "KERNEL void mora_fwd", to = "KERNEL void mora_fwd this_does_not_compile";
    if (!from) return;
    char *at = strstr(*source, from);
    if (!at) return;
    const size_t head = (size_t)(at - *source), from_len = strlen(from), to_len = strlen(to);
    char *changed = malloc(strlen(*source) - from_len + to_len + 1);
    memcpy(changed, *source, head);
    memcpy(changed + head, to, to_len);
    strcpy(changed + head + to_len, at + from_len);
    free(*source);
    *source = changed;
}

/* The cpu backend: the same tuner over the host kernels' parameters (tile rows, threads per kind). */
static void check_cpu(void) {
    mora_context *cpu = NULL;
    REQUIRE_OK(mora_context_create("cpu", 0, &cpu));
    const mora_shape c = {96, 80, 16, MORA_OP_ROPE};
    mora_tune_options co = {0};
    co.tokens = 64;
    co.max_spread = 1e9; /* tiny calls on a shared machine: ranked whatever their noise (the noise rule: test_tuner opencl) */
    co.budget_seconds = 6;
    mora_tune_result r[MORA_KIND_COUNT];
    REQUIRE_OK(mora_tune(cpu, &c, MORA_F32, &co, r));
    for (int k = 0; k < MORA_KIND_COUNT; ++k) {
        const mora_tune_result *t = &r[k];
        char params[128] = "";
        const mora_kind_decl *d = mora_spec_decl(&t->best);
        for (int i = 0; i < d->param_count; ++i)
            snprintf(params + strlen(params), sizeof params - strlen(params), " %s=%d", d->params[i].name, t->best.params[i]);
        printf("cpu %s: %d candidates, default %.3g ms, best %.3g ms (%s)\n", d->name, t->candidates, t->default_ms,
               t->best_ms, params);
        CHECK(t->requested && !t->from_cache && t->rejected == 0 && t->failed == 0 && t->best_ms > 0);
        CHECK(t->best.dialect == MORA_DIALECT_HOST);
        if (k == MORA_KIND_MERGE) { /* the host merge has no parameters: its default is the space */
            CHECK_EQ_INT(t->candidates, 1);
            continue;
        }
        CHECK(t->candidates >= 2 && t->best_ms <= t->default_ms * 1.5);
        CHECK(mora_spec_role(&t->best, "TILE_ROWS", 0) >= 1 && mora_spec_role(&t->best, "THREADS", -1) >= 0);
    }
    mora_tune_result again[MORA_KIND_COUNT];
    REQUIRE_OK(mora_tune(cpu, &c, MORA_F32, &co, again));
    for (int k = 0; k < MORA_KIND_COUNT; ++k)
        CHECK(again[k].from_cache && mora_spec_same_params(&again[k].best, &r[k].best));
    mora_plan *cp = NULL;
    REQUIRE_OK(mora_plan_create(cpu, &c, MORA_F32, 64, NULL, &cp));
    for (int k = 0; k < MORA_KIND_COUNT; ++k) {
        CHECK_STR(mora_plan_param_source(cp, (mora_kind)k), "cache");
        const mora_kernel_spec taken = mora_plan_spec(cp, (mora_kind)k);
        CHECK(mora_spec_same_params(&taken, &r[k].best));
    }
    mora_plan_destroy(cp);
    /* a record outside the kind's declared range is refused on load: the plan takes the defaults */
    char key[1024];
    mora_tuning_key(cpu, MORA_KIND_FWD, &c, MORA_F32, 64, key, sizeof key);
    mora_tuning_record bad = {0};
    snprintf(bad.kind, sizeof bad.kind, "fwd");
    bad.param_count = 1;
    snprintf(bad.param_names[0], sizeof bad.param_names[0], "FWD_THREADS");
    bad.param_values[0] = 1000;
    mora_cache *cc = mora_context_cache(cpu);
    REQUIRE_OK(mora_cache_record_store(cc, key, &bad));
    mora_tuning_record got;
    CHECK_STATUS(mora_cache_record_load(cc, key, &got), MORA_E_NOT_FOUND);
    REQUIRE_OK(mora_plan_create(cpu, &c, MORA_F32, 64, NULL, &cp));
    CHECK_STR(mora_plan_param_source(cp, MORA_KIND_FWD), "default");
    CHECK_STR(mora_plan_param_source(cp, MORA_KIND_BWD_DX), "cache");
    mora_plan_destroy(cp);
    mora_context_destroy(cpu);
}

/* A timer where candidate 2 is the fastest (0.8 ms) and candidate 1 is caught once at a lucky
 * moment: 0.5 ms with a spread of 20 % (inside the noise rule's 25 %), 2 ms every time after. */
typedef struct lucky_timer {
    int lucky_calls;
    double sleep_ms; /* each measurement takes this long (the budget test) */
} lucky_timer;

static mora_status lucky_measure(const mora_kernel_spec *spec, int index, mora_timing *t, void *user) {
    (void)spec;
    lucky_timer *lt = user;
    if (lt->sleep_ms > 0) {
        const struct timespec pause = {0, (long)(lt->sleep_ms * 1e6)};
        nanosleep(&pause, NULL);
    }
    t->median_ms = index == 2 ? 0.8 : 1.0 + 0.01 * index;
    t->spread = 0.02;
    if (index == 1) {
        const int first = lt->lucky_calls++ == 0;
        t->median_ms = first ? 0.5 : 2.0;
        t->spread = first ? 0.2 : 0.02;
    }
    t->repetitions = 5;
    return MORA_OK;
}

typedef struct planted_load {
    double measured, now; /* what the probe reads over the measurements, and now */
} planted_load;

static double planted_load_read(int now, void *user) {
    const planted_load *pl = user;
    return now ? pl->now : pl->measured;
}

static void *spin(void *arg) {
    const double until = *(const double *)arg;
    volatile double x = 0;
    struct timespec ts;
    for (;;) {
        for (int i = 0; i < 100000; ++i) x += 1e-9;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if ((double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec >= until) return NULL;
    }
}

static double monotonic_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The load probe counts other processes and not this one's threads: a child spinning on one core
 * is seen (at least half a core's share: another test may take the rest); this process spinning on
 * every core (up to 8) is not (it would read ~100 %). */
static void check_load_probe(void) {
    const long cores = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
    mora_load_probe p;
    mora_load_probe_start(&p);
    fflush(NULL);
    const pid_t child = fork();
    if (child == 0) {
        const double until = monotonic_seconds() + 0.8;
        spin((void *)&until);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    const double with_child = mora_load_probe_read(&p);
    const int threads = cores < 8 ? (int)cores : 8;
    pthread_t spinners[8];
    const double until = monotonic_seconds() + 0.8;
    mora_load_probe_start(&p);
    for (int i = 0; i < threads; ++i) pthread_create(&spinners[i], NULL, spin, (void *)&until);
    for (int i = 0; i < threads; ++i) pthread_join(spinners[i], NULL);
    const double own = mora_load_probe_read(&p);
    printf("load probe: a spinning child %.2f, this process spinning on %d threads %.2f (%ld cores)\n", with_child,
           threads, own, cores);
    if (isnan(with_child)) return; /* no /proc/stat: unknown, as documented */
    CHECK(with_child >= 0.5 / (double)cores && with_child <= 1.0);
    CHECK(own >= 0.0 && own < 0.75);
}

/* Budgets, noise and load on the cpu tuner (issue 22, items 6 and 8). */
static void check_budget_and_noise(void) {
    mora_context *cpu = NULL;
    REQUIRE_OK(mora_context_create("cpu", 0, &cpu));
    const mora_shape c = {96, 80, 16, MORA_OP_ROPE};
    mora_tune_result r[MORA_KIND_COUNT];
    mora_cache *cache = mora_context_cache(cpu);

    /* a budget above the maximum, or not a number, is refused by every call that takes one */
    mora_tune_options bad = {0};
    bad.budget_seconds = 1e300;
    CHECK_STATUS(mora_tune(cpu, &c, MORA_F32, &bad, r), MORA_E_ARG);
    CHECK(strstr(mora_last_error(), "86400") != NULL);
    bad.budget_seconds = NAN;
    CHECK_STATUS(mora_tune(cpu, &c, MORA_F32, &bad, r), MORA_E_ARG);
    mora_plan *plan = NULL;
    REQUIRE_OK(mora_plan_create(cpu, &c, MORA_F32, 64, NULL, &plan));
    CHECK_STATUS(mora_plan_autotune(plan, 0, 1e300), MORA_E_ARG);
    CHECK_STATUS(mora_plan_autotune(plan, 0, MORA_TUNE_MAX_BUDGET_SECONDS * 2), MORA_E_ARG);
    mora_plan_destroy(plan);
    mora_plan_options po = MORA_PLAN_OPTIONS_INIT;
    po.autotune = 1;
    po.tune_budget_seconds = 1e300;
    CHECK_STATUS(mora_plan_create(cpu, &c, MORA_F32, 64, &po, &plan), MORA_E_ARG);

    /* the budget is wall time: measurements of 40 ms each, a 0.4 s budget for a space far larger */
    lucky_timer slow = {1, 40.0}; /* lucky_calls = 1: no lucky moment */
    mora_tune_options o = {0};
    o.tokens = 64;
    o.kinds = 1u << MORA_KIND_FWD;
    o.force = 1;
    o.max_candidates = 1000;
    o.budget_seconds = 0.4;
    o.measure = lucky_measure;
    o.measure_user = &slow;
    const double t0 = monotonic_seconds();
    REQUIRE_OK(mora_tune(cpu, &c, MORA_F32, &o, r));
    const double took = monotonic_seconds() - t0;
    printf("budget 0.4 s: %.2f s, %d of %d candidates\n", took, r[MORA_KIND_FWD].candidates, r[MORA_KIND_FWD].space_size);
    CHECK(r[MORA_KIND_FWD].space_size * 0.04 > 1.0); /* the whole space would take longer */
    CHECK(took < 0.4 + 0.3); /* past the budget: one candidate and the confirmation's reserve at most */
    CHECK(r[MORA_KIND_FWD].candidates < r[MORA_KIND_FWD].space_size);

    /* a lucky measurement inside the noise rule does not win: the confirmation measures it again
     * beside the runner-up, and the truly fastest is kept */
    lucky_timer lucky = {0, 0.0};
    planted_load quiet = {0.05, 0.05};
    o.budget_seconds = 20;
    o.max_candidates = 1000; /* the whole space, 1 (lucky) and 2 (fastest) among it */
    o.measure_user = &lucky;
    o.load_hook = planted_load_read;
    o.load_user = &quiet;
    REQUIRE_OK(mora_tune(cpu, &c, MORA_F32, &o, r));
    const mora_kernel_spec fwd_space_1 = r[MORA_KIND_FWD].best;
    CHECK(r[MORA_KIND_FWD].confirmed >= 1);
    CHECK(r[MORA_KIND_FWD].best_ms > 0.79 && r[MORA_KIND_FWD].best_ms < 0.81);
    CHECK(!r[MORA_KIND_FWD].loaded && fabs(r[MORA_KIND_FWD].load - 0.05) < 1e-12);
    mora_kernel_spec *space = NULL;
    int size = 0;
    mora_kernel_spec def = mora_spec_default(&c, MORA_F32, MORA_KIND_FWD, MORA_DIALECT_HOST);
    REQUIRE_OK(mora_space_enumerate(&def, &cpu->info, &space, &size));
    CHECK(size >= 3 && mora_spec_same_params(&fwd_space_1, &space[2]));
    free(space);

    /* a record measured under load says so; --retune-noisy keeps it while the machine is as loaded,
     * and tunes it again once it is quieter */
    char key[1024];
    mora_tuning_key(cpu, MORA_KIND_FWD, &c, MORA_F32, 64, key, sizeof key);
    planted_load loaded = {0.6, 0.6};
    lucky.lucky_calls = 1;
    o.load_user = &loaded;
    REQUIRE_OK(mora_tune(cpu, &c, MORA_F32, &o, r));
    CHECK(r[MORA_KIND_FWD].loaded && !r[MORA_KIND_FWD].noisy);
    mora_tuning_record rec;
    REQUIRE_OK(mora_cache_record_load(cache, key, &rec));
    CHECK(rec.load == 0.6);
    o.force = 0;
    o.retune_noisy = 1;
    loaded.now = 0.55; /* not quieter by 0.1 */
    REQUIRE_OK(mora_tune(cpu, &c, MORA_F32, &o, r));
    CHECK(r[MORA_KIND_FWD].from_cache && r[MORA_KIND_FWD].kept_loaded && r[MORA_KIND_FWD].loaded);
    loaded.now = 0.1, loaded.measured = 0.08; /* quieter: tuned again */
    REQUIRE_OK(mora_tune(cpu, &c, MORA_F32, &o, r));
    CHECK(!r[MORA_KIND_FWD].from_cache && r[MORA_KIND_FWD].retuned && !r[MORA_KIND_FWD].loaded);
    REQUIRE_OK(mora_cache_record_load(cache, key, &rec));
    CHECK(rec.load == 0.08);
    REQUIRE_OK(mora_tune(cpu, &c, MORA_F32, &o, r)); /* a quiet record is answered from the cache */
    CHECK(r[MORA_KIND_FWD].from_cache && !r[MORA_KIND_FWD].retuned);
    o.retune_noisy = 0;
    loaded.measured = 0.9, o.force = 1;
    REQUIRE_OK(mora_tune(cpu, &c, MORA_F32, &o, r));
    o.force = 0, loaded.now = 0.0;
    REQUIRE_OK(mora_tune(cpu, &c, MORA_F32, &o, r)); /* without --retune-noisy a loaded record is used */
    CHECK(r[MORA_KIND_FWD].from_cache && !r[MORA_KIND_FWD].retuned && r[MORA_KIND_FWD].loaded);
    mora_context_destroy(cpu);
}

/* A planted GEMM provider that is wrong and the fastest there is: it computes nothing. */
static void no_gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *A, int lda, const float *B,
                    int ldb, float beta, float *C, int ldc) {
    (void)trans_a, (void)trans_b, (void)m, (void)n, (void)k, (void)alpha, (void)A, (void)lda, (void)B, (void)ldb;
    (void)beta, (void)C, (void)ldc;
}

/* The correctness gate over GEMM providers: every candidate on the planted provider (BLIS's slot,
 * installed or not) is rejected, and none wins, though each would be timed fastest. */
static void check_cpu_planted_provider(void) {
    mora_gemm_replace_for_tests(MORA_GEMM_BLIS, no_gemm);
    mora_context *cpu = NULL;
    REQUIRE_OK(mora_context_create("cpu", 0, &cpu));
    const int blis = 1 + MORA_GEMM_BLIS; /* the <P>_GEMM value naming it */
    const mora_op ops[] = {MORA_OP_ROPE, MORA_OP_SHARE}; /* the folded form and the pipeline */
    for (int o = 0; o < 2; ++o) {
        const mora_op op = ops[o];
        const mora_shape c = {72, 61, 12, op};
        mora_tune_options co = {0};
        co.tokens = 40;
        co.max_spread = 1e9;
        co.max_candidates = 1000; /* the whole space: the planted candidates are all tried */
        co.budget_seconds = 60;
        co.force = 1;
        co.kinds = (1u << MORA_KIND_FWD) | (1u << MORA_KIND_BWD_DX) | (1u << MORA_KIND_BWD_DM);
        mora_tune_result r[MORA_KIND_COUNT];
        REQUIRE_OK(mora_tune(cpu, &c, MORA_F32, &co, r));
        for (int k = 0; k < MORA_KIND_MERGE; ++k) {
            printf("cpu %s %s, planted provider: %d candidates, %d rejected, best GEMM=%d\n", mora_op_name(op),
                   mora_kind_name((mora_kind)k), r[k].candidates, r[k].rejected, mora_spec_role(&r[k].best, "GEMM", -1));
            CHECK(r[k].strategy_exhaustive && r[k].rejected >= 1 && r[k].failed == 0);
            CHECK(mora_spec_role(&r[k].best, "GEMM", -1) != blis);
        }
    }
    mora_context_destroy(cpu);
    mora_gemm_replace_for_tests(MORA_GEMM_BLIS, NULL);
}

int main(int argc, char **argv) {
    const char *backend = argc > 1 ? argv[1] : "opencl";
    check_pick_winner();
    check_space_mma();
    char dir[] = "/tmp/mora-test-tuner-XXXXXX";
    if (!mkdtemp(dir)) SKIP("mkdtemp failed");
    setenv("MORA_CACHE_DIR", dir, 1);
    if (strcmp(backend, "cpu") == 0) {
        check_cpu_planted_provider();
        check_cpu();
        check_budget_and_noise();
        check_load_probe();
        char command[256];
        snprintf(command, sizeof command, "rm -rf '%s'", dir);
        CHECK_EQ_INT(system(command), 0);
        return check_report();
    }
    mora_context *ctx = NULL;
    const mora_status st = mora_context_create("opencl", 0, &ctx);
    if (st == MORA_E_NO_BACKEND) SKIP("OpenCL is not available here: %s", mora_last_error());
    REQUIRE_OK(st);
    mora_cache *cache = mora_context_cache(ctx);
    CHECK(cache != NULL && mora_cache_enabled(cache));

    const mora_shape s = {40, 27, 8, MORA_OP_ROPE};
    mora_tune_result results[MORA_KIND_COUNT];

    /* exhaustive: merge's space (5 work-group sizes) is below the candidate limit; the tie between
     * 64 and 256 goes to the one declared first */
    fake_timer ft = {0, -1};
    mora_tune_options o = {0};
    o.max_spread = 1e9; /* PoCL's timings of these tiny kernels on a loaded machine: rank them anyway */
    o.kinds = 1u << MORA_KIND_MERGE;
    o.measure = fake_measure;
    o.measure_user = &ft;
    o.budget_seconds = 60;
    REQUIRE_OK(mora_tune(ctx, &s, MORA_F32, &o, results));
    CHECK(results[MORA_KIND_MERGE].strategy_exhaustive);
    CHECK_EQ_INT(results[MORA_KIND_MERGE].candidates, 5);
    CHECK_EQ_INT(mora_spec_get_param(&results[MORA_KIND_MERGE].best, "MERGE_LS"), 64);
    CHECK_EQ_INT(ft.first_index, 0); /* the default is measured first */
    CHECK(!results[MORA_KIND_FWD].requested);

    /* sampling + local search: the same seed gives the same winner; the injected timer's argmin
     * over what was tried is chosen */
    o.kinds = 1u << MORA_KIND_FWD;
    o.max_candidates = 10;
    o.seed = 42;
    o.force = 1;
    REQUIRE_OK(mora_tune(ctx, &s, MORA_F32, &o, results));
    const mora_kernel_spec first = results[MORA_KIND_FWD].best;
    CHECK(!results[MORA_KIND_FWD].strategy_exhaustive);
    CHECK(results[MORA_KIND_FWD].space_size > 10);
    CHECK(results[MORA_KIND_FWD].candidates <= 10);
    REQUIRE_OK(mora_tune(ctx, &s, MORA_F32, &o, results));
    CHECK(mora_spec_same_params(&first, &results[MORA_KIND_FWD].best));

    /* the correctness gate: planted wrong kernels are rejected, a broken one fails to compile, the
     * run goes on and picks a correct candidate */
    o.measure = NULL;
    o.source_hook = plant_bugs;
    o.max_candidates = 60;
    o.budget_seconds = 120;
    REQUIRE_OK(mora_tune(ctx, &s, MORA_F32, &o, results));
    const mora_tune_result *fwd = &results[MORA_KIND_FWD];
    printf("gate: %d candidates, %d rejected, %d failed; last: %s\n", fwd->candidates, fwd->rejected, fwd->failed,
           fwd->last_failure);
    CHECK(fwd->rejected >= 2);
    CHECK(fwd->failed >= 1);
    const int tk = mora_spec_get_param(&fwd->best, "FWD_TK");
    CHECK(tk != 4 && tk != 8 && tk != 32);
    CHECK(fwd->best_ms > 0);
    const mora_kernel_spec gated = fwd->best; /* results[] is overwritten by the next run */

    /* the cache: the next run answers from it, --force tunes again */
    o.source_hook = NULL;
    o.force = 0;
    o.measure = fake_measure;
    o.kinds = (1u << MORA_KIND_FWD) | (1u << MORA_KIND_MERGE);
    REQUIRE_OK(mora_tune(ctx, &s, MORA_F32, &o, results));
    CHECK(results[MORA_KIND_FWD].from_cache);
    CHECK(results[MORA_KIND_MERGE].from_cache);
    CHECK(mora_spec_same_params(&results[MORA_KIND_FWD].best, &gated));

    /* plans take the cached parameters; kinds never tuned keep the defaults or the database's */
    mora_plan *l = NULL;
    REQUIRE_OK(mora_plan_create(ctx, &s, MORA_F32, 256, NULL, &l));
    CHECK_STR(mora_plan_param_source(l, MORA_KIND_FWD), "cache");
    CHECK_STR(mora_plan_param_source(l, MORA_KIND_MERGE), "cache");
    CHECK(strcmp(mora_plan_param_source(l, MORA_KIND_BWD_DX), "cache") != 0);
    const mora_kernel_spec used = mora_plan_spec(l, MORA_KIND_FWD);
    CHECK(mora_spec_same_params(&used, &results[MORA_KIND_FWD].best));
    mora_plan_destroy(l);

    /* bounded memory: after tuning, the live programs are the winners' (in a fresh context) */
    {
        mora_context *fresh = NULL;
        REQUIRE_OK(mora_context_create("opencl", 0, &fresh));
        o.force = 1;
        o.max_candidates = 12;
        o.kinds = (1u << MORA_KIND_FWD) | (1u << MORA_KIND_MERGE);
        REQUIRE_OK(mora_tune(fresh, &s, MORA_F32, &o, results));
        const mora_context_stats stats = mora_context_get_stats(fresh);
        printf("tuning: %ld compiles, %ld programs live after\n", stats.compiles, stats.live_programs);
        CHECK(stats.compiles > 2);
        CHECK_EQ_INT(stats.live_programs, 2);
        /* the winners were registered: a plan for fwd and merge compiles nothing more */
        const mora_plan_options fm = {.struct_size = sizeof fm, .calls = MORA_PLAN_FORWARD | MORA_PLAN_MERGE};
        REQUIRE_OK(mora_plan_create(fresh, &s, MORA_F32, 256, &fm, &l));
        CHECK_EQ_INT(mora_context_get_stats(fresh).compiles, stats.compiles);
        mora_plan_destroy(l);
        mora_context_destroy(fresh);
        /* ... and their binaries were stored: another context (as another process) loads, not compiles */
        REQUIRE_OK(mora_context_create("opencl", 0, &fresh));
        REQUIRE_OK(mora_plan_create(fresh, &s, MORA_F32, 256, &fm, &l));
        const mora_context_stats second = mora_context_get_stats(fresh);
        CHECK_EQ_INT(second.compiles, 0);
        CHECK_EQ_INT(second.binary_loads, 2);
        mora_plan_destroy(l);
        mora_context_destroy(fresh);
        o.force = 0;
    }

    /* a plan takes the record of its max_tokens' bucket, else the nearest bucket that has one */
    {
        const mora_shape t = {48, 33, 8, MORA_OP_SHARE};
        const int tms[2] = {16, 64};
        const int64_t buckets[2] = {256, 1024};
        for (int i = 0; i < 2; ++i) {
            mora_kernel_spec spec = mora_spec_default(&t, MORA_F32, MORA_KIND_FWD, MORA_DIALECT_OPENCL);
            REQUIRE_OK(mora_spec_set_param(&spec, "FWD_TM", tms[i]));
            REQUIRE_OK(mora_spec_set_param(&spec, "FWD_TN", 8)); /* no wider than r̂'s tile (space rules) */
            const mora_kind_decl *d = mora_spec_decl(&spec);
            mora_tuning_record rec = {0};
            snprintf(rec.kind, sizeof rec.kind, "fwd");
            rec.param_count = d->param_count;
            for (int k = 0; k < d->param_count; ++k) {
                snprintf(rec.param_names[k], sizeof rec.param_names[k], "%s", d->params[k].name);
                rec.param_values[k] = spec.params[k];
            }
            char key[1024];
            mora_tuning_key(ctx, MORA_KIND_FWD, &t, MORA_F32, buckets[i], key, sizeof key);
            REQUIRE_OK(mora_cache_record_store(cache, key, &rec));
        }
        const mora_plan_options f = {.struct_size = sizeof f, .calls = MORA_PLAN_FORWARD};
        const struct {
            int64_t max_tokens;
            int want_tm;
        } picks[] = {{200, 16}, {256, 16}, {1000, 64}, {600, 64}, {5000, 64}, {3, 16}};
        for (size_t i = 0; i < sizeof picks / sizeof *picks; ++i) {
            REQUIRE_OK(mora_plan_create(ctx, &t, MORA_F32, picks[i].max_tokens, &f, &l));
            const mora_kernel_spec chosen = mora_plan_spec(l, MORA_KIND_FWD);
            CHECK_EQ_INT(mora_spec_get_param(&chosen, "FWD_TM"), picks[i].want_tm);
            CHECK_STR(mora_plan_param_source(l, MORA_KIND_FWD), "cache");
            mora_plan_destroy(l);
        }
    }

    /* compiled binaries are kept in the cache; a damaged one is a miss and is rebuilt (fresh
     * contexts: a context keeps the programs it built in memory) */
    {
        char path[512];
        snprintf(path, sizeof path, "%s/binaries", dir);
        const mora_plan_options f = {.struct_size = sizeof f, .calls = MORA_PLAN_FORWARD};
        char command[1024];
        snprintf(command, sizeof command, "rm -rf '%s'", path);
        CHECK_EQ_INT(system(command), 0); /* only this test's binary from here on */
        mora_context *ctx1 = NULL;
        REQUIRE_OK(mora_context_create("opencl", 0, &ctx1));
        REQUIRE_OK(mora_plan_create(ctx1, &s, MORA_F32, 1, &f, &l));
        mora_plan_destroy(l);
        mora_context_destroy(ctx1);
        snprintf(command, sizeof command, "test -n \"$(ls '%s')\"", path);
        CHECK_EQ_INT(system(command), 0); /* at least one binary */
        snprintf(command, sizeof command, "for f in '%s'/*.bin; do head -c 40 \"$f\" > \"$f.cut\" && mv \"$f.cut\" \"$f\"; done", path);
        CHECK_EQ_INT(system(command), 0); /* damage every binary */
        mora_context *ctx2 = NULL;
        REQUIRE_OK(mora_context_create("opencl", 0, &ctx2));
        mora_plan *l2 = NULL;
        void *x2 = NULL, *y2 = NULL, *M2 = NULL;
        float hx[40] = {0}, hy[27] = {0}, hM[64];
        for (int i = 0; i < 40; ++i) hx[i] = (float)(i % 5) - 2.0f;
        for (int i = 0; i < 64; ++i) hM[i] = (float)(i % 3) - 1.0f;
        REQUIRE_OK(mora_plan_create(ctx2, &s, MORA_F32, 1, &f, &l2)); /* rebuilt from source */
        CHECK_EQ_INT(mora_context_get_stats(ctx2).compiles, 1);
        REQUIRE_OK(mora_buffer_alloc(ctx2, sizeof hx, &x2));
        REQUIRE_OK(mora_buffer_alloc(ctx2, sizeof hy, &y2));
        REQUIRE_OK(mora_buffer_alloc(ctx2, sizeof hM, &M2));
        REQUIRE_OK(mora_buffer_write(ctx2, x2, 0, hx, sizeof hx));
        REQUIRE_OK(mora_buffer_write(ctx2, y2, 0, hy, sizeof hy));
        REQUIRE_OK(mora_buffer_write(ctx2, M2, 0, hM, sizeof hM));
        CHECK_STATUS(mora_forward(l2, M2, x2, 40, y2, 27, 1, 1.0f), MORA_OK);
        float out[27];
        REQUIRE_OK(mora_buffer_read(ctx2, y2, 0, out, sizeof out));
        double want[27] = {0}, xd[40], Md[64];
        for (int i = 0; i < 40; ++i) xd[i] = hx[i];
        for (int i = 0; i < 64; ++i) Md[i] = hM[i];
        REQUIRE_OK(mora_ref_forward(&s, Md, xd, want, 1, 1.0));
        double got[27];
        for (int i = 0; i < 27; ++i) got[i] = out[i];
        CHECK_REL(got, want, 27, 1e-5);
        snprintf(command, sizeof command, "for f in '%s'/*.bin; do [ $(stat -c %%s \"$f\") -gt 40 ] || exit 1; done", path);
        CHECK_EQ_INT(system(command), 0); /* stored again, whole */
        mora_buffer_free(ctx2, x2), mora_buffer_free(ctx2, y2), mora_buffer_free(ctx2, M2);
        mora_plan_destroy(l2);
        mora_context_destroy(ctx2);
    }

    /* winners in noise: too noisy to rank (re-measured, still noisy): the default is kept and no
     * record is stored, so the next run tunes again */
    {
        mora_tune_options n = {0}; /* the default noise threshold */
        n.kinds = 1u << MORA_KIND_MERGE;
        n.measure = noisy_measure;
        n.force = 1;
        REQUIRE_OK(mora_tune(ctx, &s, MORA_F32, &n, results));
        const mora_kernel_spec def = mora_spec_default(&s, MORA_F32, MORA_KIND_MERGE, MORA_DIALECT_OPENCL);
        CHECK(results[MORA_KIND_MERGE].noisy);
        CHECK(mora_spec_same_params(&results[MORA_KIND_MERGE].best, &def));
        char key[1024];
        mora_tuning_key(ctx, MORA_KIND_MERGE, &s, MORA_F32, mora_default_tune_tokens(ctx), key, sizeof key);
        mora_tuning_record none;
        REQUIRE_OK(mora_cache_record_remove(cache, key)); /* the earlier runs' record */
        REQUIRE_OK(mora_tune(ctx, &s, MORA_F32, &n, results));
        CHECK(results[MORA_KIND_MERGE].noisy);
        CHECK_STATUS(mora_cache_record_load(cache, key, &none), MORA_E_NOT_FOUND);
    }

    /* bad options */
    o.tokens = -5;
    CHECK_STATUS(mora_tune(ctx, &s, MORA_F32, &o, results), MORA_E_SIZE);

    mora_context_destroy(ctx);
    char command[256];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(command), 0);
    return check_report();
}
