/* mora-bench's vendor GEMM on NVIDIA GPUs: cuBLAS (libcublas) and the CUDA runtime (libcudart), both
 * dlopen()ed, so mora-bench builds and runs without them. It runs the reshaped GEMM of a kernel kind
 * — the same multiply-adds libmora's kernel does — with cublasGemmStridedBatchedEx:
 *
 *   fwd     H (R x r̂) = C (R x r̂) · Mᵀ        R = n·blocks (token, block) rows
 *   bwd_dx  U (R x r̂) = G (R x r̂) · M
 *   bwd_dm  dM (r̂ x r̂) = Gᵀ (r̂ x R) · C (R x r̂)
 *
 * Activations are in the layer's dtype, M and the output in the same dtype, accumulation in float32
 * (CUBLAS_COMPUTE_32F). cuBLAS is column-major; a row-major R x r̂ matrix is its r̂ x R transpose, so
 * every product is issued transposed. The buffers are the libmora context's own device allocations
 * (the primary context, which the CUDA runtime shares). Each call ends with cudaDeviceSynchronize:
 * cuBLAS runs on the runtime's default stream, which the context's events do not see. */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "context.h"
#include "error.h"
#include "shape.h"

/* ABI values from cuBLAS's and CUDA's headers (library_types.h, cublas_api.h), stable across releases. */
enum { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 };
enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum { CUBLAS_COMPUTE_32F = 68, CUBLAS_GEMM_DEFAULT = -1 };

typedef int (*cublas_create_fn)(void **handle);
typedef int (*cublas_destroy_fn)(void *handle);
typedef int (*cublas_gemm_fn)(void *handle, int transa, int transb, int m, int n, int k, const void *alpha,
                              const void *A, int a_type, int lda, long long stride_a, const void *B, int b_type, int ldb,
                              long long stride_b, const void *beta, void *C, int c_type, int ldc, long long stride_c,
                              int batch, int compute, int algo);
typedef int (*cudart_sync_fn)(void);

static struct {
    int tried, ok;
    char why[256];
    void *cublas, *cudart, *handle;
    cublas_create_fn create;
    cublas_destroy_fn destroy;
    cublas_gemm_fn gemm;
    cudart_sync_fn sync;
} lib;

static void *open_first(const char *const *names, size_t count) {
    for (size_t i = 0; i < count; ++i) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (h) return h;
    }
    return NULL;
}

int bench_cublas_available(mora_context *ctx, const char **why) {
    if (strcmp(ctx->be->name, "cuda") != 0) {
        *why = "n/a: cuBLAS runs on the cuda backend only";
        return 0;
    }
    if (!lib.tried) {
        lib.tried = 1;
        static const char *const blas[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"};
        static const char *const rt[] = {"libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0", "libcudart.so"};
        lib.cublas = open_first(blas, 4);
        lib.cudart = open_first(rt, 4);
        if (!lib.cublas || !lib.cudart) {
            snprintf(lib.why, sizeof lib.why, "n/a: %s could not be loaded", lib.cublas ? "libcudart" : "libcublas");
        } else {
            lib.create = (cublas_create_fn)dlsym(lib.cublas, "cublasCreate_v2");
            lib.destroy = (cublas_destroy_fn)dlsym(lib.cublas, "cublasDestroy_v2");
            lib.gemm = (cublas_gemm_fn)dlsym(lib.cublas, "cublasGemmStridedBatchedEx");
            lib.sync = (cudart_sync_fn)dlsym(lib.cudart, "cudaDeviceSynchronize");
            if (!lib.create || !lib.destroy || !lib.gemm || !lib.sync)
                snprintf(lib.why, sizeof lib.why, "n/a: libcublas lacks cublasGemmStridedBatchedEx");
            else if (lib.create(&lib.handle) != 0)
                snprintf(lib.why, sizeof lib.why, "n/a: cublasCreate failed");
            else
                lib.ok = 1;
        }
    }
    *why = lib.why;
    return lib.ok;
}

/* One GEMM of a kind, then a device synchronize. */
typedef struct cublas_call {
    mora_kind kind;
    int rows, rhat, type;
    const void *a, *m;
    void *out;
} cublas_call;

static mora_status cublas_run(void *user) {
    const cublas_call *c = user;
    const float one = 1.0f, zero = 0.0f;
    int status;
    if (c->kind == MORA_KIND_BWD_DM) /* dM^T (col-major r̂ x r̂) = C^T-as-stored · G: k = R */
        status = lib.gemm(lib.handle, CUBLAS_OP_N, CUBLAS_OP_T, c->rhat, c->rhat, c->rows, &one, c->a, c->type, c->rhat, 0,
                          c->m, c->type, c->rhat, 0, &zero, c->out, c->type, c->rhat, 0, 1, CUBLAS_COMPUTE_32F,
                          CUBLAS_GEMM_DEFAULT);
    else /* H^T (r̂ x R) = M-as-stored^(T for fwd) · C^T-as-stored */
        status = lib.gemm(lib.handle, c->kind == MORA_KIND_FWD ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, c->rhat, c->rows,
                          c->rhat, &one, c->m, c->type, c->rhat, 0, c->a, c->type, c->rhat, 0, &zero, c->out, c->type,
                          c->rhat, 0, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (status != 0) return mora_fail(MORA_E_LAUNCH, "cublasGemmStridedBatchedEx returned %d", status);
    const int sync = lib.sync();
    return sync == 0 ? MORA_OK : mora_fail(MORA_E_DEVICE, "cudaDeviceSynchronize returned %d", sync);
}

mora_status bench_cublas_measure(mora_context *ctx, const mora_shape *s, mora_dtype dtype, mora_kind kind, int64_t n,
                                 bench_time_fn time_fn, double budget_ms, int min_reps, bench_measure *m) {
    const char *why;
    if (!bench_cublas_available(ctx, &why)) return mora_fail(MORA_E_UNSUPPORTED, "%s", why);
    const int64_t rows = n * mora_shape_geometry(s).blocks_read; /* the useful multiply-adds, as libmora's */
    if (rows > 2147483647 || s->rhat > 2147483647) return mora_fail(MORA_E_SIZE, "cuBLAS: %lld rows exceed int", (long long)rows);
    const size_t es = mora_dtype_size(dtype);
    const size_t a_bytes = (size_t)rows * (size_t)s->rhat * es, m_bytes = (size_t)(s->rhat * s->rhat) * es;
    const size_t out_bytes = kind == MORA_KIND_BWD_DM ? m_bytes : a_bytes;
    cublas_call call = {kind, (int)rows, (int)s->rhat, dtype == MORA_F32 ? CUDA_R_32F : dtype == MORA_F16 ? CUDA_R_16F : CUDA_R_16BF,
                        NULL, NULL, NULL};
    void *a = NULL, *mm = NULL, *out = NULL;
    mora_status st = mora_buffer_alloc(ctx, a_bytes, &a);
    if (st == MORA_OK) st = mora_buffer_alloc(ctx, kind == MORA_KIND_BWD_DM ? a_bytes : m_bytes, &mm);
    if (st == MORA_OK) st = mora_buffer_alloc(ctx, out_bytes, &out);
    /* non-zero operands (a GPU's matrix units run faster on zeros than on real numbers): bytes 0x3C..0x3E
     * make finite, moderate values in every dtype (about 1.0–1.5 in f16, 0.01 in bf16 and f32) */
    const size_t chunk = (size_t)1 << 20;
    unsigned char *pattern = malloc(chunk);
    if (st == MORA_OK && !pattern) st = mora_fail(MORA_E_NO_MEMORY, "cuBLAS baseline: out of host memory");
    for (size_t i = 0; pattern && i < chunk; ++i) pattern[i] = (unsigned char)(0x3C + (i * 37) % 3);
    void *const operands[2] = {a, mm};
    const size_t sizes[2] = {a_bytes, kind == MORA_KIND_BWD_DM ? a_bytes : m_bytes};
    for (int k = 0; k < 2 && st == MORA_OK; ++k)
        for (size_t off = 0; st == MORA_OK && off < sizes[k]; off += chunk)
            st = mora_buffer_write(ctx, operands[k], off, pattern, sizes[k] - off < chunk ? sizes[k] - off : chunk);
    free(pattern);
    if (st == MORA_OK) st = mora_synchronize(ctx);
    if (st == MORA_OK) {
        call.a = a, call.m = mm, call.out = out;
        st = time_fn(ctx, 0, cublas_run, &call, budget_ms, min_reps, m);
        if (st == MORA_OK) snprintf(m->note, sizeof m->note, "cuBLAS GemmStridedBatchedEx, wall clock incl. a device sync");
    }
    if (a) mora_buffer_free(ctx, a);
    if (mm) mora_buffer_free(ctx, mm);
    if (out) mora_buffer_free(ctx, out);
    return st;
}
