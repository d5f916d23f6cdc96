/* mora-bench internals shared by its source files:
 *   mora-bench.c     options, the measurement plan, the device runs, verification
 *   bench_timing.c   the timing loop and progress lines
 *   bench_roofline.c the roofline: copy bandwidth and arithmetic peak, measured in the same run
 *   bench_host.c     the host baselines: OpenBLAS on the reshaped GEMM plus separate plain-C passes
 *                    for compression, rotation and decompression, and OpenBLAS's bare GEMM
 *   bench_report.c   the outputs: terminal table, JSON, CSV, Markdown, gnuplot plot */
#ifndef MORA_TOOLS_BENCH_H
#define MORA_TOOLS_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"
#include "mora.h"

/* ---- what is measured ---- */

/* The variants measured for every kernel kind; the first is libmora itself, the rest are baselines. */
typedef enum bench_variant {
    BENCH_TUNED = 0,   /* libmora with the parameters mora_layer_create picks (cache → database → default) */
    BENCH_DEFAULT = 1, /* libmora with the declared default parameters (untuned) */
    BENCH_NAIVE = 2,   /* templates/naive.kern: one work-item per output, no tiling */
    BENCH_PASSES = 3,  /* vendor BLAS on the reshaped GEMM + separate passes (what a user writes without libmora) */
    BENCH_GEMM = 4     /* the vendor BLAS's bare GEMM of the same multiply-adds: the practical ceiling */
} bench_variant;
#define BENCH_VARIANT_COUNT 5

const char *bench_variant_name(bench_variant v);        /* "tuned", "default", "naive", "passes", "gemm" */
const char *bench_variant_description(bench_variant v); /* one line for reports */

typedef struct bench_measure {
    int ok;            /* measured; otherwise `note` says why not (n/a, failed) */
    double ms;         /* median */
    double spread;     /* (p75 − p25) / median */
    int reps;
    double rel_error;  /* against the float64 reference (verification run); < 0: not verified */
    char note[200];    /* "n/a: ...", "FAILED: ...", or a remark ("f32 host arrays") */
} bench_measure;

typedef struct bench_kind_result {
    mora_kind kind;
    int requested;
    double flops;  /* multiply-adds · 2 of the kind (see bench_kind_work) */
    double bytes;  /* each input read once, each output written once, accumulated outputs read + written */
    char param_source[16]; /* where the tuned parameters came from: "cache", "database", "default", "-" */
    char params[200];      /* the tuned parameters, "TM=32 TN=32 ..." */
    bench_measure m[BENCH_VARIANT_COUNT];
} bench_kind_result;

typedef struct bench_shape_result {
    mora_shape shape;
    mora_dtype dtype;
    int64_t tokens;
    char label[96]; /* "4096→4096 r=8 (r̂=256, rope)" */
    bench_kind_result kinds[MORA_KIND_COUNT];
} bench_shape_result;

typedef struct bench_roofline {
    double copy_gbs;        /* buffer_copy (device-to-device), bytes read + written per second; < 0: n/a */
    double copy_kernel_gbs; /* a generated one-element-per-work-item copy kernel; < 0: n/a */
    double bandwidth_gbs;   /* the larger of the two: the roofline's bandwidth; < 0: n/a */
    const char *bandwidth_source;
    double blas_gflops;     /* the vendor BLAS's large SGEMM; < 0: n/a */
    double fma_gflops;      /* a generated FMA-chain kernel, the faster of scalar and (OpenCL) float8; < 0: n/a */
    double fma_scalar_gflops; /* the scalar FMA-chain kernel alone (PoCL: one SIMD lane per work-item) */
    double peak_gflops;     /* the larger of the two: the roofline's arithmetic peak; < 0: n/a */
    const char *peak_source;
    char notes[512];        /* why a measurement is n/a */
    size_t copy_bytes;      /* size of the copied buffer */
    int gemm_size;          /* side of the square SGEMM */
} bench_roofline;

typedef struct bench_run {
    const char *command_line;
    char date[40];          /* UTC, ISO 8601 */
    char commit[64];
    char uname[320];
    char cpu_model[160];
    int cpu_cores;
    char backend[16];
    char device[256];
    char device_vendor[128];
    char device_driver[128];
    int device_is_cpu;
    int compute_units;
    double budget_ms;
    int min_reps;
    int64_t verify_tokens;
    const char *blas_name;  /* "OpenBLAS 0.3.21 ..." or NULL when built without it */
    bench_roofline roof;
    bench_shape_result *shapes;
    int shape_count;
    double seconds;
} bench_run;

/* FLOPs and bytes of one kernel kind (see bench_kind_result). */
void bench_kind_work(const mora_shape *s, mora_dtype dtype, mora_kind kind, int64_t n, double *flops, double *bytes);
/* Derived numbers of one measurement; each < 0 when unknown. */
double bench_gflops(const bench_kind_result *k, bench_variant v);
double bench_gbs(const bench_kind_result *k, bench_variant v);
/* max(flops / peak, bytes / bandwidth) in ms (< 0 when neither is known), and min / measured in %. */
double bench_roofline_ms(const bench_run *run, const bench_kind_result *k);
double bench_roofline_pct(const bench_run *run, const bench_kind_result *k, bench_variant v);
/* baseline time / tuned time (> 1: libmora is faster); < 0 when either is missing. */
double bench_ratio(const bench_kind_result *k, bench_variant v);

/* ---- timing and progress (bench_timing.c) ---- */

/* A timing loop (warm-up, repetitions, median): events = 0 times by wall clock. */
typedef mora_status (*bench_call_fn)(void *user);
mora_status bench_time(mora_context *ctx, int events, bench_call_fn fn, void *user, double budget_ms, int min_reps,
                       bench_measure *m);
/* Progress lines on stderr, timed from this call (none when quiet); seconds since it. */
void bench_progress_start(int quiet);
double bench_progress_seconds(void);
void bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- the roofline (bench_roofline.c) ---- */

/* One launch of a kernel handle, as a bench_call_fn (bench_launch_fn). */
typedef struct bench_launch {
    mora_context *ctx;
    void *kernel;
    size_t groups[3], local[3];
    mora_kernel_arg args[8];
    int arg_count;
} bench_launch;
mora_status bench_launch_fn(void *user);
/* Measures the roofline of ctx's device into *r (each figure < 0 with a note when n/a). */
void bench_measure_roofline(mora_context *ctx, double budget_ms, int min_reps, bench_roofline *r);

/* ---- host baselines (bench_host.c) ---- */

/* 1 if mora-bench was built with a host BLAS (OpenBLAS). */
int bench_host_blas_available(void);
/* "OpenBLAS 0.3.21 ..." or NULL. */
const char *bench_host_blas_name(void);
/* Median GFLOP/s of a size x size x size SGEMM on the host (< 0 without BLAS). */
double bench_host_sgemm_gflops(int size, double budget_ms);

/* Host (float32) arrays for n tokens and everything the separate passes need; the inputs are
 * the caller's (x: n x d_in, dy: n x d_out, M: r̂ x r̂), the outputs accumulate like the kernels'. */
typedef struct bench_host bench_host;
mora_status bench_host_create(const mora_shape *s, int64_t n, bench_host **h);
void bench_host_destroy(bench_host *h);
/* The arrays (owned by h): inputs the caller fills, outputs that accumulate. */
float *bench_host_x(bench_host *h);
float *bench_host_dy(bench_host *h);
float *bench_host_M(bench_host *h);
float *bench_host_out(bench_host *h, mora_kind kind); /* y, dx, dM or W */
size_t bench_host_out_count(const bench_host *h, mora_kind kind, int64_t n);
/* Separate passes + BLAS GEMM for `kind` on the first n tokens (n <= the size it was created for);
 * scale: fwd's scale, merge's s. Reads the inputs above and accumulates into bench_host_out. */
mora_status bench_host_passes(bench_host *h, mora_kind kind, int64_t n, float scale);
/* The bare GEMM of `kind` (its multiply-adds, on the passes' intermediate arrays); merge has none. */
mora_status bench_host_gemm(bench_host *h, mora_kind kind, int64_t n);

/* ---- the vendor GEMM on NVIDIA GPUs (bench_cublas.c) ---- */

typedef mora_status (*bench_time_fn)(mora_context *ctx, int events, bench_call_fn fn, void *user, double budget_ms,
                                     int min_reps, bench_measure *m);
/* 1 if cuBLAS can run on ctx (the cuda backend, libcublas and libcudart loadable); else *why says why. */
int bench_cublas_available(mora_context *ctx, const char **why);
/* Times the reshaped GEMM of `kind` (not merge) through cublasGemmStridedBatchedEx into *m. */
mora_status bench_cublas_measure(mora_context *ctx, const mora_shape *s, mora_dtype dtype, mora_kind kind, int64_t n,
                                 bench_time_fn time_fn, double budget_ms, int min_reps, bench_measure *m);

/* ---- reports (bench_report.c) ---- */

void bench_print_table(const bench_run *run);
int bench_write_json(const bench_run *run, const char *path);
int bench_write_csv(const bench_run *run, const char *path);
int bench_write_markdown(const bench_run *run, const char *path, const char *plot_path);
/* 0 written, 1 failed, 2 gnuplot missing (skipped, message printed). */
int bench_write_plot(const bench_run *run, const char *path);

#endif
