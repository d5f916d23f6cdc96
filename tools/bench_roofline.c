/* mora-bench's roofline (see bench.h): the device's copy bandwidth and arithmetic peak, measured in
 * the same run as the kernels — a device-to-device copy and a generated copy kernel for the
 * bandwidth; the host BLAS's large SGEMM (CPU devices) and a generated FMA-chain kernel for the
 * peak — each the larger of its two. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "context.h"
#include "error.h"
#include "programs.h"

/* A trivial kernel in the neutral dialect, assembled with the backend's dialect layer. */
static mora_status trivial_program(mora_context *ctx, const char *body, void **program) {
    static const char *const dialects[MORA_DIALECT_COUNT] = {"dialect_opencl.kern", "dialect_cuda.kern", "dialect_hip.kern",
                                                             NULL};
    const char *dialect = dialects[ctx->be->dialect] ? mora_template_text(dialects[ctx->be->dialect]) : NULL;
    if (!dialect) return mora_fail(MORA_E_UNSUPPORTED, "no generated kernels on backend %s", ctx->be->name);
    static const char prelude[] = "#define DTYPE_F32 0\n#define DTYPE_F16 1\n#define DTYPE_BF16 2\n#define ACT_DTYPE 0\n";
    const size_t length = strlen(prelude) + strlen(dialect) + strlen(body) + 2;
    char *source = malloc(length);
    if (!source) return mora_fail(MORA_E_NO_MEMORY, "out of memory");
    snprintf(source, length, "%s%s\n%s", prelude, dialect, body);
    const mora_status st = mora_program_obtain(ctx, source, program);
    free(source);
    return st;
}

/* A launch handle of `entry` in the trivial kernel `body` (released with mora_context_kernel_free). */
static mora_status trivial_kernel(mora_context *ctx, const char *body, const char *entry, void **kernel) {
    void *program = NULL;
    MORA_TRY(trivial_program(ctx, body, &program));
    return mora_context_kernel_create(ctx, program, entry, kernel);
}

#define TRIVIAL_LS 256
static const char copy_kernel[] =
    "KERNEL void mora_bench_copy(GLOBAL const float *src, GLOBAL float *dst, const i64 count) {\n"
    "    const i64 e = (i64)GROUP_ID(0) * 256 + LID0;\n"
    "    if (e < count) dst[e] = src[e];\n"
    "}\n";
/* 8 independent multiply-add chains per work-item; a, b and iters are run-time values, so nothing
 * folds. On a GPU the work-items are the SIMD lanes; PoCL, however, vectorizes across work-items only
 * when the kernel body has no inner loop, so on OpenCL a second version computes float8 vectors
 * explicitly (16 FLOPs x 8 lanes per iteration), and the roofline takes the faster. */
static const char fma_kernel[] =
    "KERNEL void mora_bench_fma(GLOBAL float *out, const float a, const float b, const i64 iters) {\n"
    "    const i64 e = (i64)GROUP_ID(0) * 256 + LID0;\n"
    "    float v0 = (float)LID0 * 1e-6f, v1 = v0 + 0.1f, v2 = v0 + 0.2f, v3 = v0 + 0.3f;\n"
    "    float v4 = v0 + 0.4f, v5 = v0 + 0.5f, v6 = v0 + 0.6f, v7 = v0 + 0.7f;\n"
    "    for (i64 i = 0; i < iters; ++i) {\n"
    "        v0 = v0 * a + b; v1 = v1 * a + b; v2 = v2 * a + b; v3 = v3 * a + b;\n"
    "        v4 = v4 * a + b; v5 = v5 * a + b; v6 = v6 * a + b; v7 = v7 * a + b;\n"
    "    }\n"
    "    out[e] = ((v0 + v1) + (v2 + v3)) + ((v4 + v5) + (v6 + v7));\n"
    "}\n";
static const char fma_vector_kernel[] = /* OpenCL C only */
    "KERNEL void mora_bench_fma(GLOBAL float *out, const float a, const float b, const i64 iters) {\n"
    "    const i64 e = (i64)GROUP_ID(0) * 256 + LID0;\n"
    "    float8 v0 = (float8)((float)LID0 * 1e-6f), v1 = v0 + 0.1f, v2 = v0 + 0.2f, v3 = v0 + 0.3f;\n"
    "    float8 v4 = v0 + 0.4f, v5 = v0 + 0.5f, v6 = v0 + 0.6f, v7 = v0 + 0.7f;\n"
    "    for (i64 i = 0; i < iters; ++i) {\n"
    "        v0 = v0 * a + b; v1 = v1 * a + b; v2 = v2 * a + b; v3 = v3 * a + b;\n"
    "        v4 = v4 * a + b; v5 = v5 * a + b; v6 = v6 * a + b; v7 = v7 * a + b;\n"
    "    }\n"
    "    const float8 t = ((v0 + v1) + (v2 + v3)) + ((v4 + v5) + (v6 + v7));\n"
    "    out[e] = ((t.s0 + t.s1) + (t.s2 + t.s3)) + ((t.s4 + t.s5) + (t.s6 + t.s7));\n"
    "}\n";

mora_status bench_launch_fn(void *user) {
    bench_launch *c = user;
    return mora_context_launch(c->ctx, c->kernel, c->groups, c->local, c->args, c->arg_count);
}

typedef struct copy_call {
    mora_context *ctx;
    void *src, *dst;
    size_t bytes;
} copy_call;

static mora_status copy_fn(void *user) {
    copy_call *c = user;
    return mora_context_buffer_copy(c->ctx, c->src, 0, c->dst, 0, c->bytes);
}

static void roof_note(bench_roofline *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void roof_note(bench_roofline *r, const char *fmt, ...) {
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (r->notes[0]) strncat(r->notes, "; ", sizeof r->notes - strlen(r->notes) - 1);
    strncat(r->notes, line, sizeof r->notes - strlen(r->notes) - 1);
}

/* GFLOP/s of an FMA-chain kernel (flops_per_iter per work-item and loop iteration); < 0 on failure. */
static double measure_fma(mora_context *ctx, double budget_ms, int min_reps, const char *body, double flops_per_iter,
                          bench_roofline *r) {
    void *out = NULL;
    const size_t items = (size_t)(ctx->info.compute_units > 0 ? ctx->info.compute_units : 1) * 2048;
    bench_launch call = {.ctx = ctx, .arg_count = 4};
    call.groups[0] = items / TRIVIAL_LS, call.groups[1] = call.groups[2] = 1;
    call.local[0] = TRIVIAL_LS, call.local[1] = call.local[2] = 1;
    int64_t iters = 64;
    double ms = 0.0, gflops = -1.0;
    mora_status st = (ctx->info.max_work_group && ctx->info.max_work_group < TRIVIAL_LS)
                         ? mora_fail(MORA_E_UNSUPPORTED, "the device takes fewer than %d work-items per group", TRIVIAL_LS)
                         : mora_context_buffer_alloc(ctx, items * 4, &out);
    if (st == MORA_OK) st = trivial_kernel(ctx, body, "mora_bench_fma", &call.kernel);
    call.args[0] = MORA_ARG_BUF(out), call.args[1] = MORA_ARG_FLOAT(0.999999f), call.args[2] = MORA_ARG_FLOAT(1e-7f);
    /* grow the loop until one launch takes a measurable time (~20 ms) */
    while (st == MORA_OK) {
        call.args[3] = MORA_ARG_INT(iters);
        bench_measure once;
        st = bench_time(ctx, 1, bench_launch_fn, &call, 0.0, 1, &once); /* a warm-up and one timed launch */
        ms = once.ms;
        if (st != MORA_OK || ms > 20.0 || iters >= ((int64_t)1 << 24)) break;
        iters *= ms > 0.5 ? (int64_t)(20.0 / ms) + 1 : 32;
    }
    bench_measure m;
    memset(&m, 0, sizeof m);
    if (st == MORA_OK) st = bench_time(ctx, 1, bench_launch_fn, &call, budget_ms, min_reps, &m);
    if (st == MORA_OK) gflops = (double)items * (double)iters * flops_per_iter / (m.ms * 1e6);
    else roof_note(r, "FMA kernel: %s", mora_last_error());
    mora_context_buffer_free(ctx, out);
    mora_context_kernel_free(ctx, call.kernel);
    return gflops;
}

void bench_measure_roofline(mora_context *ctx, double budget_ms, int min_reps, bench_roofline *r) {
    memset(r, 0, sizeof *r);
    r->copy_gbs = r->copy_kernel_gbs = r->bandwidth_gbs = r->blas_gflops = r->fma_gflops = r->peak_gflops = -1.0;
    r->fma_scalar_gflops = -1.0;
    r->bandwidth_source = r->peak_source = "n/a";
    const int generated = ctx->be->dialect != MORA_DIALECT_HOST;
    /* bandwidth: a copy far larger than any cache */
    size_t bytes = ctx->info.is_cpu ? (size_t)128 << 20 : (size_t)1 << 30;
    if (ctx->info.global_mem_bytes && bytes > ctx->info.global_mem_bytes / 8) bytes = (size_t)(ctx->info.global_mem_bytes / 8);
    bytes &= ~(size_t)(4 * TRIVIAL_LS - 1);
    r->copy_bytes = bytes;
    void *src = NULL, *dst = NULL;
    mora_status st = mora_context_buffer_alloc(ctx, bytes, &src);
    if (st == MORA_OK) st = mora_context_buffer_alloc(ctx, bytes, &dst);
    if (st == MORA_OK) st = mora_context_buffer_zero(ctx, src, bytes); /* first touch outside the timing */
    if (st == MORA_OK) st = mora_context_buffer_zero(ctx, dst, bytes);
    if (st == MORA_OK) st = mora_context_synchronize(ctx);
    if (st != MORA_OK) roof_note(r, "copy buffers of %zu MiB: %s", bytes >> 20, mora_last_error());
    bench_measure m;
    if (st == MORA_OK && mora_context_has_copy(ctx)) {
        bench_progress("roofline: device-to-device copy of %zu MiB", bytes >> 20);
        copy_call call = {ctx, src, dst, bytes};
        memset(&m, 0, sizeof m);
        if (bench_time(ctx, 1, copy_fn, &call, budget_ms, min_reps, &m) == MORA_OK)
            r->copy_gbs = 2.0 * (double)bytes / (m.ms * 1e6);
        else
            roof_note(r, "buffer copy: %s", mora_last_error());
    } else if (st == MORA_OK) {
        roof_note(r, "the %s backend has no buffer_copy", ctx->be->name);
    }
    if (st == MORA_OK && generated) {
        bench_progress("roofline: copy kernel over %zu MiB", bytes >> 20);
        bench_launch call = {.ctx = ctx, .arg_count = 3};
        call.groups[0] = bytes / 4 / TRIVIAL_LS, call.groups[1] = call.groups[2] = 1;
        call.local[0] = TRIVIAL_LS, call.local[1] = call.local[2] = 1;
        call.args[0] = MORA_ARG_BUF(src), call.args[1] = MORA_ARG_BUF(dst), call.args[2] = MORA_ARG_INT((int64_t)(bytes / 4));
        memset(&m, 0, sizeof m);
        if (ctx->info.max_work_group && ctx->info.max_work_group < TRIVIAL_LS)
            roof_note(r, "copy kernel: the device takes %zu work-items per group, fewer than %d", ctx->info.max_work_group,
                      TRIVIAL_LS);
        else if (trivial_kernel(ctx, copy_kernel, "mora_bench_copy", &call.kernel) == MORA_OK &&
                 bench_time(ctx, 1, bench_launch_fn, &call, budget_ms, min_reps, &m) == MORA_OK)
            r->copy_kernel_gbs = 2.0 * (double)bytes / (m.ms * 1e6);
        else
            roof_note(r, "copy kernel: %s", mora_last_error());
        mora_context_kernel_free(ctx, call.kernel);
    }
    mora_context_buffer_free(ctx, src);
    mora_context_buffer_free(ctx, dst);
    if (r->copy_gbs > 0 || r->copy_kernel_gbs > 0) {
        const int kernel = r->copy_kernel_gbs > r->copy_gbs;
        r->bandwidth_gbs = kernel ? r->copy_kernel_gbs : r->copy_gbs;
        r->bandwidth_source = kernel ? "copy kernel" : "buffer copy";
    }

    /* arithmetic peak: the vendor BLAS's large SGEMM on a CPU device, and an FMA-chain kernel */
    r->gemm_size = 2048;
    if (ctx->info.is_cpu && bench_host_blas_available()) {
        bench_progress("roofline: OpenBLAS SGEMM %d x %d x %d", r->gemm_size, r->gemm_size, r->gemm_size);
        r->blas_gflops = bench_host_sgemm_gflops(r->gemm_size, budget_ms);
    } else if (ctx->info.is_cpu) {
        roof_note(r, "built without OpenBLAS: no BLAS peak");
    } else {
        roof_note(r, "no vendor BLAS path for the %s backend in mora-bench: peak from the FMA kernel", ctx->be->name);
    }
    if (generated) {
        bench_progress("roofline: FMA-chain kernel");
        r->fma_scalar_gflops = measure_fma(ctx, budget_ms, min_reps, fma_kernel, 16.0, r);
        r->fma_gflops = r->fma_scalar_gflops;
        if (ctx->be->dialect == MORA_DIALECT_OPENCL) {
            bench_progress("roofline: FMA-chain kernel on float8 vectors");
            const double vector = measure_fma(ctx, budget_ms, min_reps, fma_vector_kernel, 128.0, r);
            if (vector > r->fma_gflops) r->fma_gflops = vector;
        }
    }
    if (r->blas_gflops > 0 || r->fma_gflops > 0) {
        const int fma = r->fma_gflops > r->blas_gflops;
        r->peak_gflops = fma ? r->fma_gflops : r->blas_gflops;
        r->peak_source = fma ? "FMA kernel" : "OpenBLAS SGEMM";
    }
}

