/* mora-cpu-bench: the cpu tile pipeline (runtime/cpu_kernels.h) against OpenBLAS's bare sgemm of the
 * same multiply-adds, and the machine's FMA peak. Not a test: it checks nothing but prints times.
 *
 *   build:  cmake -S . -B build && cmake --build build --target mora-cpu-bench
 *   run:    build/mora-cpu-bench --op rope --dims 4096 --rank 8 --tokens 1024 --threads 2
 *           build/mora-cpu-bench --op share --dims 4096 --rank 256 --tokens 1024 --sweep   (tile x threads)
 *           build/mora-cpu-bench --peak                                                     (FMA peak)
 *
 * What is timed (median of --reps after one warm-up, or the fastest with --stat min; f32, inputs in [-1, 1)):
 *   fwd       mora_cpu_forward                 n·b·r̂² multiply-adds (b = blocks decomp reads)
 *   bwd       mora_cpu_backward (dx and dM)    2·n·b·r̂²
 *   fwd+bwd   both, one after the other
 *   gemm      cblas_sgemm on already-packed data: fwd's one [n·b x r̂]·[r̂ x r̂]; bwd's two (G·M, Gᵀ·C)
 * OpenBLAS threads: the pipeline's workers each call sgemm, so the pipeline runs with OpenBLAS at
 * --ob-threads (default 1: each worker's sgemm on its own core); the bare gemm runs with OpenBLAS at
 * --threads (the same cores, OpenBLAS's own threading). The bench (the user here) sets both with
 * openblas_set_num_threads; the library never does.
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "cpu_kernels.h"
#include "mora.h"
#include "random.h"
#include "shape.h"

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "mora-cpu-bench: out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

static uint64_t rng_state = 12345;
static float frand(void) { return (float)mora_random_signed(&rng_state); }
static float *random_floats(int64_t count) {
    float *v = xmalloc((size_t)count * sizeof *v);
    for (int64_t i = 0; i < count; ++i) v[i] = frand();
    return v;
}

/* ---- FMA peak: 12 independent FMA chains per thread (explicit FMA instructions: -std=c17 does not
 * contract a*b+c) ---- */
#include <immintrin.h>
#define PEAK_ITERS 50000000L

__attribute__((target("avx512f"))) static void *fma512(void *arg) {
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    __m512 a[12];
    for (int k = 0; k < 12; ++k) a[k] = _mm512_set1_ps((float)k);
    for (long it = 0; it < PEAK_ITERS / 4; ++it)
        {
            a[0] = _mm512_fmadd_ps(a[0], m, c);
            a[1] = _mm512_fmadd_ps(a[1], m, c);
            a[2] = _mm512_fmadd_ps(a[2], m, c);
            a[3] = _mm512_fmadd_ps(a[3], m, c);
            a[4] = _mm512_fmadd_ps(a[4], m, c);
            a[5] = _mm512_fmadd_ps(a[5], m, c);
            a[6] = _mm512_fmadd_ps(a[6], m, c);
            a[7] = _mm512_fmadd_ps(a[7], m, c);
            a[8] = _mm512_fmadd_ps(a[8], m, c);
            a[9] = _mm512_fmadd_ps(a[9], m, c);
            a[10] = _mm512_fmadd_ps(a[10], m, c);
            a[11] = _mm512_fmadd_ps(a[11], m, c);
        }
    float s = 0;
    for (int k = 0; k < 12; ++k) s += _mm512_reduce_add_ps(a[k]);
    *(float *)arg = s;
    return NULL;
}
__attribute__((target("avx2,fma"))) static void *fma256(void *arg) {
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    __m256 a[12];
    for (int k = 0; k < 12; ++k) a[k] = _mm256_set1_ps((float)k);
    for (long it = 0; it < PEAK_ITERS / 4; ++it)
        {
            a[0] = _mm256_fmadd_ps(a[0], m, c);
            a[1] = _mm256_fmadd_ps(a[1], m, c);
            a[2] = _mm256_fmadd_ps(a[2], m, c);
            a[3] = _mm256_fmadd_ps(a[3], m, c);
            a[4] = _mm256_fmadd_ps(a[4], m, c);
            a[5] = _mm256_fmadd_ps(a[5], m, c);
            a[6] = _mm256_fmadd_ps(a[6], m, c);
            a[7] = _mm256_fmadd_ps(a[7], m, c);
            a[8] = _mm256_fmadd_ps(a[8], m, c);
            a[9] = _mm256_fmadd_ps(a[9], m, c);
            a[10] = _mm256_fmadd_ps(a[10], m, c);
            a[11] = _mm256_fmadd_ps(a[11], m, c);
        }
    float s = 0, lanes[8];
    for (int k = 0; k < 12; ++k) {
        _mm256_storeu_ps(lanes, a[k]);
        s += lanes[0];
    }
    *(float *)arg = s;
    return NULL;
}

static double peak(void *(*fn)(void *), int lanes, int threads) {
    pthread_t th[64];
    float sink[64];
    const double t0 = mora_clock_seconds();
    for (int t = 0; t < threads; ++t) pthread_create(&th[t], NULL, fn, &sink[t]);
    for (int t = 0; t < threads; ++t) pthread_join(th[t], NULL);
    const double dt = mora_clock_seconds() - t0;
    return 2.0 * lanes * 12.0 * (double)(PEAK_ITERS / 4) * threads / dt * 1e-9;
}

static void run_peak(int threads) {
    printf("FMA peak (12 independent chains per thread, %d threads):\n", threads);
    for (int rep = 0; rep < 3; ++rep) { /* the first often runs before the clocks ramp up */
        printf("  avx512 (zmm): %.1f GFLOP/s   avx2 (ymm): %.1f GFLOP/s   1 thread avx512: %.1f\n", peak(fma512, 16, threads),
               peak(fma256, 8, threads), peak(fma512, 16, 1));
    }
    const int sz = 2048;
    float *A = random_floats((int64_t)sz * sz), *B = random_floats((int64_t)sz * sz), *C = random_floats((int64_t)sz * sz);
    openblas_set_num_threads(threads);
    printf("OpenBLAS %s, core %s, %d threads: sgemm %d^3 ", openblas_get_config(), openblas_get_corename(), threads, sz);
    double best = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
        const double t0 = mora_clock_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, sz, sz, sz, 1.0f, A, sz, B, sz, 0.0f, C, sz);
        const double dt = mora_clock_seconds() - t0;
        if (dt < best) best = dt;
    }
    printf("best %.2f ms = %.1f GFLOP/s\n", best * 1e3, 2.0 * sz * sz * (double)sz / best * 1e-9);
    free(A), free(B), free(C);
}

/* ---- the pipeline against the bare gemm ---- */
typedef struct config {
    mora_shape s;
    int64_t n;
    int threads, tile, ob_threads, reps;
} config;

typedef struct timing {
    double fwd, bwd, fwdbwd, gemm_fwd, gemm_bwd;
} timing;

static int use_min = 0; /* --stat min: the fastest repetition (a machine shared with other jobs) */
static double median(double *v, int count) {
    qsort(v, (size_t)count, sizeof *v, cmp_double);
    if (use_min) return v[0];
    return count % 2 ? v[count / 2] : 0.5 * (v[count / 2 - 1] + v[count / 2]);
}

static timing measure(const config *cf) {
    const mora_shape *s = &cf->s;
    const mora_geometry geo = mora_shape_geometry(s);
    const int64_t n = cf->n, rhat = s->rhat, rows = n * geo.blocks_read, rr = rhat * rhat;
    const mora_cpu_params prm = {cf->tile, cf->threads, 0, 0};
    mora_cpu_plan *p;
    if (mora_cpu_plan_create(s, MORA_F32, &prm, &p) != MORA_OK) {
        fprintf(stderr, "mora-cpu-bench: %s\n", mora_last_error());
        exit(1);
    }
    float *M = random_floats(rr), *x = random_floats(n * s->d_in), *dy = random_floats(n * s->d_out);
    float *y = calloc((size_t)(n * s->d_out), sizeof *y), *dx = calloc((size_t)(n * s->d_in), sizeof *dx);
    float *dM = calloc((size_t)rr, sizeof *dM);
    void *ws = xmalloc(mora_cpu_workspace_bytes(p, n));
    float *C = random_floats(rows * rhat), *G = random_floats(rows * rhat), *H = xmalloc((size_t)(rows * rhat) * sizeof *H);
    for (int64_t i = 0; i < rr; ++i) M[i] *= 0.01f;

    const int reps = cf->reps;
    double *t[5];
    for (int k = 0; k < 5; ++k) t[k] = xmalloc((size_t)reps * sizeof(double));
    for (int rep = -1; rep < reps; ++rep) { /* rep -1: warm-up; the kinds interleave within each rep */
        openblas_set_num_threads(cf->ob_threads);
        double t0 = mora_clock_seconds();
        mora_cpu_forward(p, M, x, s->d_in, y, s->d_out, n, 1.0f, ws);
        double t1 = mora_clock_seconds();
        mora_cpu_backward(p, M, x, s->d_in, dy, s->d_out, dx, s->d_in, dM, n, 1.0f, ws);
        double t2 = mora_clock_seconds();
        mora_cpu_forward(p, M, x, s->d_in, y, s->d_out, n, 1.0f, ws);
        mora_cpu_backward(p, M, x, s->d_in, dy, s->d_out, dx, s->d_in, dM, n, 1.0f, ws);
        double t3 = mora_clock_seconds();
        openblas_set_num_threads(cf->threads);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)rhat, (int)rhat, 1.0f, C, (int)rhat, M,
                    (int)rhat, 0.0f, H, (int)rhat);
        double t4 = mora_clock_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)rhat, (int)rhat, 1.0f, G, (int)rhat, M,
                    (int)rhat, 0.0f, H, (int)rhat);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)rhat, (int)rhat, (int)rows, 1.0f, G, (int)rhat, C,
                    (int)rhat, 0.0f, dM, (int)rhat);
        double t5 = mora_clock_seconds();
        if (rep < 0) continue;
        t[0][rep] = t1 - t0, t[1][rep] = t2 - t1, t[2][rep] = t3 - t2, t[3][rep] = t4 - t3, t[4][rep] = t5 - t4;
    }
    timing r = {median(t[0], reps), median(t[1], reps), median(t[2], reps), median(t[3], reps), median(t[4], reps)};
    for (int k = 0; k < 5; ++k) free(t[k]);
    free(M), free(x), free(dy), free(y), free(dx), free(dM), free(ws), free(C), free(G), free(H);
    mora_cpu_plan_destroy(p);
    return r;
}

static void print_header(void) {
    printf("| op | d_in→d_out | r̂ | n | threads | tile | OB thr | fwd ms | bwd ms | fwd+bwd ms | gemm fwd ms | gemm bwd ms | "
           "fwd/gemm | bwd/gemm | fwd GFLOP/s |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
}

static void print_row(const config *cf, const timing *r) {
    const mora_geometry geo = mora_shape_geometry(&cf->s);
    const double flops = 2.0 * (double)cf->n * (double)geo.blocks_read * (double)(cf->s.rhat * cf->s.rhat);
    printf("| %s | %lld→%lld | %lld | %lld | %d | %s%d | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.1f |\n",
           mora_op_name(cf->s.op), (long long)cf->s.d_in, (long long)cf->s.d_out, (long long)cf->s.rhat,
           (long long)cf->n, cf->threads, cf->tile ? "" : "default ", cf->tile, cf->ob_threads, r->fwd * 1e3, r->bwd * 1e3,
           r->fwdbwd * 1e3, r->gemm_fwd * 1e3, r->gemm_bwd * 1e3, r->fwd / r->gemm_fwd, r->bwd / r->gemm_bwd,
           flops / r->fwd * 1e-9);
    fflush(stdout);
}

static void usage(void) {
    printf("usage: mora-cpu-bench [--op NAME] [--dims D] [--dims-out D] [--rank R | --rhat R] [--tokens N]\n"
           "                      [--threads K] [--tile T] [--ob-threads K] [--reps K] [--stat median|min]\n"
           "                      [--sweep] [--peak]\n"
           "defaults: --op rope --dims 4096 --rank 8 --tokens 1024 --threads 2 --tile 0 (default) --ob-threads 1 --reps 7\n");
}

int main(int argc, char **argv) {
    config cf = {{4096, 4096, 0, MORA_OP_ROPE}, 1024, 2, 0, 1, 7};
    int64_t rank = 8, rhat = 0;
    int sweep = 0, do_peak = 0;
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--sweep")) sweep = 1;
        else if (!strcmp(a, "--peak")) do_peak = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(), 0;
        else if (!v) return usage(), 2;
        else {
            ++i;
            if (!strcmp(a, "--op")) {
                if (mora_op_from_string(v, &cf.s.op) != MORA_OK) return usage(), 2;
            } else if (!strcmp(a, "--dims")) cf.s.d_in = cf.s.d_out = atoll(v);
            else if (!strcmp(a, "--dims-out")) cf.s.d_out = atoll(v);
            else if (!strcmp(a, "--rank")) rank = atoll(v);
            else if (!strcmp(a, "--rhat")) rhat = atoll(v);
            else if (!strcmp(a, "--tokens")) cf.n = atoll(v);
            else if (!strcmp(a, "--threads")) cf.threads = atoi(v);
            else if (!strcmp(a, "--tile")) cf.tile = atoi(v);
            else if (!strcmp(a, "--ob-threads")) cf.ob_threads = atoi(v);
            else if (!strcmp(a, "--reps")) cf.reps = atoi(v);
            else if (!strcmp(a, "--stat")) use_min = !strcmp(v, "min");
            else return usage(), 2;
        }
    }
    if (do_peak) {
        run_peak(cf.threads);
        return 0;
    }
    if (rhat > 0) {
        cf.s.rhat = rhat;
        if (mora_shape_check(&cf.s) != MORA_OK) return fprintf(stderr, "%s\n", mora_last_error()), 2;
    } else if (mora_shape_make(&cf.s, cf.s.d_in, cf.s.d_out, rank, cf.s.op) != MORA_OK) {
        return fprintf(stderr, "%s\n", mora_last_error()), 2;
    }
    if (cf.reps < 1 || cf.n < 1 || cf.threads < 1) return usage(), 2;
    print_header();
    if (!sweep) {
        const timing r = measure(&cf);
        print_row(&cf, &r);
        return 0;
    }
    const int tiles[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
    const int threads[] = {1, 2};
    const mora_geometry geo = mora_shape_geometry(&cf.s);
    for (size_t ti = 0; ti < sizeof threads / sizeof *threads; ++ti)
        for (size_t k = 0; k < sizeof tiles / sizeof *tiles; ++k) {
            const int64_t rows = tiles[k] * geo.blocks_read;
            if (rows < 32 || rows > 2048) continue; /* tiles outside 32..2048 GEMM rows are not worth timing */
            config c = cf;
            c.threads = threads[ti];
            c.tile = tiles[k];
            const timing r = measure(&c);
            print_row(&c, &r);
        }
    return 0;
}
