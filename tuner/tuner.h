/* Internal: the autotuner, one for every backend. For one shape, dtype and device it searches each
 * kernel kind's parameter space (declared in codegen/kernels.c: the generated kernels' tiles on a
 * GPU or OpenCL device, the host kernels' tile and threads on the cpu backend), verifies every
 * candidate against the float64 reference on scratch buffers before timing it, times the survivors
 * (device events where the backend has them, else the wall clock), and keeps the winners in the
 * kernels cache.
 *
 *   space.c    the candidates: every valid combination of the kind's value lists, pruned by
 *              constraints and the device's limits (work-items, local memory); neighbours for the
 *              local search
 *   verify.c   the correctness gate: seeded inputs rounded to the dtype, outputs started at known
 *              values and scratch poisoned with NaN, compared with the reference at the dtype's tolerance
 *   measure.c  timing: warm-up, repetitions within a time budget, median and relative spread
 *   tuner.c    strategies (exhaustive, seeded random sampling + local search), the parallel compile
 *              pool, winner selection with a noise band, cache records */
#ifndef MORA_TUNER_TUNER_H
#define MORA_TUNER_TUNER_H

#include <stdint.h>

#include "backend.h"
#include "cache.h"
#include "kernels.h"
#include "runner.h"
#include "context.h"

/* ---- search space ---- */

/* Every valid parameter combination of base's kind, in declared order (the first parameter's value
 * list varies slowest), the default combination first. *specs is malloc'd. */
mora_status mora_space_enumerate(const mora_kernel_spec *base, const mora_device_info *device, mora_kernel_spec **specs,
                                 int *count);
/* The valid specs that differ from `center` in one parameter by one step of its value list. */
int mora_space_neighbours(const mora_kernel_spec *center, const mora_device_info *device, mora_kernel_spec *out,
                          int capacity);
/* 1 if two specs have the same parameters. */
int mora_spec_same_params(const mora_kernel_spec *a, const mora_kernel_spec *b);

/* ---- winner selection ---- */

/* Index of the winner among `count` candidates given in declared order; medians[i] < 0 marks a
 * candidate that was not timed (rejected or failed). A later candidate replaces the current best
 * only if it is faster by more than the noise band max(min_band, spread of either), so candidates
 * within the noise tie and the earlier-declared one wins. -1 if none was timed. */
int mora_pick_winner(const double *medians, const double *spreads, int count, double min_band);

/* ---- verification ---- */

typedef struct mora_verifier mora_verifier;
/* Prepares seeded inputs for `kind` on the tuning runner `r` with n tokens (merge: n ignored) and
 * computes the float64 reference once. */
mora_status mora_verifier_create(mora_runner *r, mora_kind kind, int64_t n, uint64_t seed, mora_verifier **v);
/* Runs the runner's current parameters for the kind on the verifier's buffers and compares with the
 * reference: MORA_OK, or MORA_E_VERIFY with the error in mora_last_error(). *rel_error gets the
 * relative error (NaN when the output had NaN). */
mora_status mora_verifier_check(mora_verifier *v, double *rel_error);
void mora_verifier_destroy(mora_verifier *v);
/* The tolerance of a dtype (relative error): f32 1e-5, f16 3e-3, bf16 1e-2. */
double mora_dtype_tolerance(mora_dtype dtype);

/* ---- timing ---- */

typedef struct mora_timing {
    double median_ms;
    double spread;   /* (p75 − p25) / median */
    int repetitions;
} mora_timing;
/* A call to time; rep is the repetition (0, 1, ...; -1 for the warm-up). */
typedef mora_status (*mora_timed_fn)(void *user, int rep);
/* Times fn: one warm-up, then repetitions until at least min_reps and budget_ms of measured time
 * (at most 100; only 2 when the warm-up alone exceeded the budget). events: fn enqueues work on the
 * context's stream and device events bracket it; 0: wall clock between two synchronizations. */
mora_status mora_time_calls(mora_context *ctx, int events, mora_timed_fn fn, void *user, double budget_ms, int min_reps,
                            mora_timing *timing);
/* Times the runner's current parameters for `kind` with n tokens: one warm-up, then repetitions
 * until at least min_reps and budget_ms of device time (at most 100). Repetition i uses buffer set
 * b[i % sets], so with enough sets the inputs are not still in the device's L2 cache from the last
 * repetition. Device events where the backend has them, else wall clock around a synchronize. */
mora_status mora_measure_kind(mora_runner *r, mora_kind kind, const mora_kind_buffers *b, int sets, int64_t n,
                              double budget_ms, int min_reps, mora_timing *timing);

/* The machine's load from other processes over an interval: the share of all cores' time they were
 * busy (every core's busy time in /proc/stat less this process's own CPU time, so the tuner's and
 * the cpu backend's threads do not count), in [0, 1]; NaN where unknown (no /proc/stat). Counted
 * in clock ticks (10 ms a core), so an interval of a second or more reads it to a few %. */
typedef struct mora_load_probe {
    unsigned long long busy, total;
    double own_seconds;
    int ok;
} mora_load_probe;
void mora_load_probe_start(mora_load_probe *p);
double mora_load_probe_read(const mora_load_probe *p);

/* ---- the tuner ---- */

/* One event of a tuning run, for progress display. */
typedef enum mora_tune_event {
    MORA_TUNE_START,    /* a kind starts: total = candidates planned */
    MORA_TUNE_TIMED,    /* candidate verified and timed: ms */
    MORA_TUNE_REJECTED, /* candidate failed verification: message */
    MORA_TUNE_FAILED,   /* candidate failed to compile or launch: message */
    MORA_TUNE_DONE,     /* the kind is done: best_ms */
    MORA_TUNE_CACHED    /* the kind was answered from the cache */
} mora_tune_event;

typedef struct mora_tune_progress {
    mora_tune_event event;
    mora_kind kind;
    int index, total;             /* candidate k of N */
    const mora_kernel_spec *spec; /* the candidate */
    double ms, best_ms;           /* its time, the best so far (-1 when none) */
    const char *message;          /* why it was rejected or failed */
} mora_tune_progress;

typedef void (*mora_tune_progress_fn)(const mora_tune_progress *p, void *user);
/* Test hook: replaces device timing of a candidate (index = declared position in the space). */
typedef mora_status (*mora_tune_measure_fn)(const mora_kernel_spec *spec, int index, mora_timing *timing, void *user);
/* Test hook: replaces the load probe (the load from other processes, [0, 1], over the measurements
 * of a kind, or now when `now` is 1: the check of --retune-noisy). */
typedef double (*mora_tune_load_fn)(int now, void *user);
/* Test hook: may rewrite a candidate's source before it is compiled (e.g. plant a wrong kernel). */
typedef void (*mora_tune_source_fn)(const mora_kernel_spec *spec, char **source, void *user);

typedef struct mora_tune_options {
    int64_t tokens;         /* tokens to time with; 0: 8192 on a GPU, 256 on a CPU device (cpu backend, PoCL) */
    double budget_seconds;  /* the whole run, all kinds; 0: 60 */
    int max_candidates;     /* per kind; 0: 48 */
    uint64_t seed;          /* random sampling; 0: 1 */
    int force;              /* tune even when the cache has a record */
    unsigned kinds;         /* bit (1 << kind) per kind to tune; 0: all */
    int compile_threads;    /* 0: the number of CPU cores (1 on Oclgrind, whose compiler is not thread-safe) */
    double max_spread;      /* a winner whose relative spread stays above this after a second measurement
                               is not kept (the defaults are, and no record is stored); 0: 0.25 */
    int retune_noisy;       /* re-tune a kind whose record was measured under load (its "load" above
                               MORA_TUNE_LOADED) when the machine is quieter now than then */
    mora_cache *cache;      /* NULL: the context's cache (default location) */
    mora_tune_progress_fn progress;
    void *progress_user;
    mora_tune_measure_fn measure; /* test hook, NULL normally */
    void *measure_user;
    mora_tune_source_fn source_hook; /* test hook, NULL normally */
    void *source_user;
    mora_tune_load_fn load_hook; /* test hook, NULL normally */
    void *load_user;
} mora_tune_options;

/* Measurements taken while other processes kept more than this share of the cores busy were taken
 * under load: the record is kept (the best known) and says so, and --retune-noisy tunes it again on
 * a quieter machine. */
#define MORA_TUNE_LOADED 0.25

typedef struct mora_tune_result {
    int requested;            /* the kind was asked for */
    int from_cache;           /* answered by a cache record */
    mora_kernel_spec best;    /* the winner (the default when nothing beat it) */
    double best_ms, best_spread, default_ms; /* -1 when unknown */
    int candidates, rejected, failed;
    int strategy_exhaustive;  /* 1: whole space; 0: sampling + local search */
    int noisy;                /* the winner stayed too noisy to rank: the default kept, no record stored */
    double load;              /* other processes' share of the cores while it was measured (NaN unknown);
                                 from the record when answered by the cache */
    int loaded;               /* load > MORA_TUNE_LOADED */
    int retuned;              /* a record measured under load was tuned again (retune_noisy) */
    int kept_loaded;          /* retune_noisy, but the machine is no quieter now: the record kept */
    int confirmed;            /* confirmation rounds the winner took (measured again beside the runner-up) */
    int space_size;
    double seconds;           /* wall time spent on the kind */
    char last_failure[256];   /* the last compile/launch failure or rejection, for the report */
} mora_tune_result;

/* Tunes the requested kinds of (shape, dtype) on ctx's device and stores each winner in the cache.
 * The caller's buffers are never touched: everything runs on buffers the tuner allocates. */
mora_status mora_tune(mora_context *ctx, const mora_shape *s, mora_dtype dtype, const mora_tune_options *options,
                      mora_tune_result results[MORA_KIND_COUNT]);

/* The cache key of a tuning record (see cache.h); tokens are bucketed to the next power of two. */
void mora_tuning_key(const mora_context *ctx, mora_kind kind, const mora_shape *s, mora_dtype dtype, int64_t tokens,
                     char *key, size_t size);
/* Applies a cache record's parameters to spec (same kind; every name must be a parameter of it). */
mora_status mora_spec_apply_record(mora_kernel_spec *spec, const mora_tuning_record *record);
/* Default token count for timing on ctx's device. */
int64_t mora_default_tune_tokens(const mora_context *ctx);

#endif
