/* Timing of one kernel kind: one warm-up launch, then repetitions, each bracketed by device events
 * (wall clock around a synchronize where the backend has no events), until at least min_reps and
 * the time budget are reached (100 repetitions at most). Reports the median and the relative spread
 * (interquartile range / median), which the tuner uses as the noise band. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <time.h>

#include "context.h"
#include "error.h"
#include "tuner.h"

#define MAX_REPETITIONS 100

static double wall_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One timed launch of the kind, in milliseconds. */
static mora_status time_once(mora_layer *l, mora_kind kind, const mora_kind_buffers *b, int64_t n, double *ms) {
    mora_context *ctx = mora_layer_context(l);
    const mora_backend_i *be = ctx->be;
    if (be->event_record && be->event_elapsed_ms) {
        void *start = NULL, *end = NULL;
        mora_status st = be->event_record(ctx->be_ctx, &start);
        if (st == MORA_OK) st = mora_layer_run_kind(l, kind, b, n);
        if (st == MORA_OK) st = be->event_record(ctx->be_ctx, &end);
        if (st == MORA_OK) st = be->event_elapsed_ms(ctx->be_ctx, start, end, ms);
        if (start) be->event_free(ctx->be_ctx, start);
        if (end) be->event_free(ctx->be_ctx, end);
        return st;
    }
    MORA_TRY(be->synchronize(ctx->be_ctx));
    const double t0 = wall_ms();
    MORA_TRY(mora_layer_run_kind(l, kind, b, n));
    MORA_TRY(be->synchronize(ctx->be_ctx));
    *ms = wall_ms() - t0;
    return MORA_OK;
}

mora_status mora_measure_kind(mora_layer *l, mora_kind kind, const mora_kind_buffers *b, int sets, int64_t n,
                              double budget_ms, int min_reps, mora_timing *timing) {
    double samples[MAX_REPETITIONS], warm = 0.0, spent = 0.0;
    if (sets < 1) sets = 1;
    MORA_TRY(time_once(l, kind, &b[sets - 1], n, &warm)); /* warm-up: clocks, lazy driver work */
    int count = 0;
    if (min_reps < 1) min_reps = 1;
    while (count < MAX_REPETITIONS && (count < min_reps || spent < budget_ms)) {
        MORA_TRY(time_once(l, kind, &b[count % sets], n, &samples[count]));
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
