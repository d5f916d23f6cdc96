/* Timing: one warm-up call, then repetitions, each bracketed by device events (wall clock around a
 * synchronize where the backend has no events), until at least min_reps and the time budget are
 * reached (100 repetitions at most). Reports the median and the relative spread (interquartile
 * range / median), which the tuner uses as the noise band. Used by the tuner and by mora-bench.
 * Also the machine's load from other processes over an interval (/proc/stat less this process's
 * own CPU time), which the tuner records beside the spread. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "context.h"
#include "error.h"
#include "tuner.h"

#define MAX_REPETITIONS 100

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One timed call, in milliseconds: device events around it when `events` (work enqueued on the
 * context's stream), else wall clock between two synchronizations. */
static mora_status time_once(mora_context *ctx, int events, mora_timed_fn fn, void *user, int rep, double *ms) {
    if (events && mora_context_has_events(ctx)) {
        void *start = NULL, *end = NULL;
        mora_status st = mora_context_event_record(ctx, &start);
        if (st == MORA_OK) st = fn(user, rep);
        if (st == MORA_OK) st = mora_context_event_record(ctx, &end);
        if (st == MORA_OK) st = mora_context_event_elapsed_ms(ctx, start, end, ms);
        mora_context_event_free(ctx, start);
        mora_context_event_free(ctx, end);
        return st;
    }
    MORA_TRY(mora_context_synchronize(ctx));
    const double t0 = mora_clock_ms();
    MORA_TRY(fn(user, rep));
    MORA_TRY(mora_context_synchronize(ctx));
    *ms = mora_clock_ms() - t0;
    return MORA_OK;
}

mora_status mora_time_calls(mora_context *ctx, int events, mora_timed_fn fn, void *user, double budget_ms, int min_reps,
                            mora_timing *timing) {
    double samples[MAX_REPETITIONS], warm = 0.0, spent = 0.0;
    MORA_TRY(time_once(ctx, events, fn, user, -1, &warm)); /* warm-up: clocks, caches, lazy driver work */
    if (min_reps < 1) min_reps = 1;
    if (warm > budget_ms && min_reps > 2) min_reps = 2; /* one call is longer than the whole budget */
    int count = 0;
    while (count < MAX_REPETITIONS && (count < min_reps || spent < budget_ms)) {
        MORA_TRY(time_once(ctx, events, fn, user, count, &samples[count]));
        spent += samples[count++];
    }
    qsort(samples, (size_t)count, sizeof *samples, compare_doubles);
    const double median = count % 2 ? samples[count / 2] : 0.5 * (samples[count / 2 - 1] + samples[count / 2]);
    const double q1 = samples[count / 4], q3 = samples[(3 * count) / 4 < count ? (3 * count) / 4 : count - 1];
    timing->median_ms = median;
    timing->spread = median > 0 ? (q3 - q1) / median : 0.0;
    timing->repetitions = count;
    return MORA_OK;
}

/* A kind's launch on buffer set rep % sets (the warm-up uses the last set). */
typedef struct kind_call {
    mora_runner *runner;
    mora_kind kind;
    const mora_kind_buffers *sets;
    int set_count;
    int64_t n;
} kind_call;

static mora_status run_kind_call(void *user, int rep) {
    const kind_call *c = user;
    const int set = rep < 0 ? c->set_count - 1 : rep % c->set_count;
    return mora_runner_run(c->runner, c->kind, &c->sets[set], c->n);
}

mora_status mora_measure_kind(mora_runner *l, mora_kind kind, const mora_kind_buffers *b, int sets, int64_t n,
                              double budget_ms, int min_reps, mora_timing *timing) {
    kind_call call = {l, kind, b, sets < 1 ? 1 : sets, n};
    return mora_time_calls(mora_runner_context(l), 1, run_kind_call, &call, budget_ms, min_reps, timing);
}

/* ---- the machine's load from other processes ---- */

/* /proc/stat's first line: every core's busy and total ticks since boot; 0 when unreadable. */
static int read_cpu_ticks(unsigned long long *busy, unsigned long long *total) {
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return 0;
    unsigned long long v[8] = {0}; /* user nice system idle iowait irq softirq steal (guest is in user) */
    const int got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                           &v[6], &v[7]);
    fclose(f);
    if (got < 4) return 0;
    *busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    *total = *busy + v[3] + v[4];
    return 1;
}

static double own_cpu_seconds(void) {
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u) != 0) return NAN;
    return (double)u.ru_utime.tv_sec + 1e-6 * (double)u.ru_utime.tv_usec + (double)u.ru_stime.tv_sec +
           1e-6 * (double)u.ru_stime.tv_usec;
}

void mora_load_probe_start(mora_load_probe *p) {
    p->ok = read_cpu_ticks(&p->busy, &p->total);
    p->own_seconds = own_cpu_seconds();
    if (!isfinite(p->own_seconds)) p->ok = 0;
}

double mora_load_probe_read(const mora_load_probe *p) {
    mora_load_probe now;
    mora_load_probe_start(&now);
    const long hz = sysconf(_SC_CLK_TCK);
    if (!p->ok || !now.ok || hz <= 0 || now.total <= p->total) return NAN;
    const double busy = (double)(now.busy - p->busy), total = (double)(now.total - p->total);
    const double own = (now.own_seconds - p->own_seconds) * (double)hz; /* this process's threads, in ticks */
    const double other = (busy - own) / total;
    return other < 0 ? 0 : other > 1 ? 1 : other;
}
