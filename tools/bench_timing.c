/* mora-bench's timing loop and progress lines, shared by its files (bench.h). */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>

#include "bench.h"
#include "clock.h"
#include "error.h"
#include "tuner.h"

static double start_seconds;
static int quiet;

void bench_progress_start(int be_quiet) {
    quiet = be_quiet;
    start_seconds = mora_clock_seconds();
}

double bench_progress_seconds(void) { return mora_clock_seconds() - start_seconds; }

void bench_progress(const char *fmt, ...) {
    if (quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%7.1fs] ", mora_clock_seconds() - start_seconds);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

/* A bench_call_fn seen through the tuner's timing loop (mora_time_calls). */
typedef struct timed_call {
    bench_call_fn fn;
    void *user;
} timed_call;

static mora_status run_timed_call(void *user, int rep) {
    (void)rep;
    const timed_call *c = user;
    return c->fn(c->user);
}

/* Warm-up, then repetitions until min_reps and budget_ms are both reached (100 at most); a call
 * slower than the whole budget is repeated twice only. Median and (p75 − p25) / median. */
mora_status bench_time(mora_context *ctx, int events, bench_call_fn fn, void *user, double budget_ms, int min_reps,
                       bench_measure *m) {
    timed_call call = {fn, user};
    mora_timing t;
    MORA_TRY(mora_time_calls(ctx, events, run_timed_call, &call, budget_ms, min_reps, &t));
    m->ms = t.median_ms;
    m->spread = t.spread;
    m->reps = t.repetitions;
    m->ok = 1;
    return MORA_OK;
}
