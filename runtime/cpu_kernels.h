/* Internal: the cpu backend's kernels, a tile pipeline around OpenBLAS's sgemm.
 *
 * Each call cuts the tokens into tiles of T and shares them among its worker threads (the caller's
 * thread is worker 0); per tile a worker packs comp(x) (or decompᵀ(dy)) into a buffer of its own
 * workspace, runs one sgemm, and writes the result back through decomp (or compᵀ), adding into y
 * (dx). Workers take tiles from a shared counter, except in a backward call with dM: there each
 * worker takes a fixed contiguous range of tiles and accumulates its own dM partial in a fixed
 * order (tile products summed by sgemm over groups of >= 2048 rows, groups added with compensated
 * summation), and the partials are reduced in worker order. So for a given plan (thread count, tile
 * size) results are bit-identical run to run, and dM's error does not grow with n.
 *
 * Threads: workers 1..k-1 are started per call and joined before the call returns; how they share
 * OpenBLAS's threads, and what each setting costs, is said once, at the top of cpu_kernels.c.
 *
 * Activations f32/f16/bf16 (core/halfconv.h); every accumulation in float32.
 * Shapes: x[n][ldx] (d_in used), y/dy[n][ld] (d_out used), dx[n][lddx]; M, dM [r̂][r̂] float32 row-major;
 * W[d_out][ldw] of w_dtype. y, dx, dM, W accumulate (+=). */
#ifndef MORA_RUNTIME_CPU_KERNELS_H
#define MORA_RUNTIME_CPU_KERNELS_H

#include "mora.h"

/* Prepared state of one (shape, dtype): wrap table, rope's cos/sin table, tile size, thread count.
 * Immutable after create: any number of threads may call with one cpu plan at once, each passing
 * its own workspace. */
typedef struct mora_cpu_plan mora_cpu_plan;
typedef struct mora_cpu_params {
    int tile_tokens; /* tokens per tile (the pipeline's) or per GEMM (the folded form's); 0: default */
    int threads;     /* worker threads per call (the caller's thread included); 0: online cores with a
                        single-threaded OpenBLAS, 1 with a multi-threaded one */
    int gemm;        /* whose sgemm: 1 + a mora_gemm_provider (runtime/cpu_gemm.h); 0: mora_gemm_default() */
    int fold;        /* 1: rope and reshape as plain GEMMs per block on strided views (the folded form:
                        no rotated copy, no gather; ignored for the other operators); 0: the pipeline */
} mora_cpu_params;
mora_status mora_cpu_plan_create(const mora_shape *s, mora_dtype dtype, const mora_cpu_params *params /* NULL: defaults */, mora_cpu_plan **out);
void mora_cpu_plan_destroy(mora_cpu_plan *p);
/* The tile and thread count a plan uses (its defaults resolved). */
mora_cpu_params mora_cpu_plan_params(const mora_cpu_plan *p);
/* The tuning parameters' limits (mora_cpu_plan_create refuses others; records are checked against them). */
#define MORA_CPU_MAX_THREADS 64
#define MORA_CPU_MAX_TILE_TOKENS 65536
/* Bytes of workspace that any call below needs for up to n tokens (forward and backward). */
size_t mora_cpu_workspace_bytes(const mora_cpu_plan *p, int64_t n);
/* The same for a plan of (s, params) without making one (a spec's scratch formula). */
size_t mora_cpu_workspace_bytes_for(const mora_shape *s, const mora_cpu_params *params, int64_t n);
/* The plan parameters of the host kernels' tuning parameters: tokens per tile = rows per GEMM / the
 * rows a token has there (the pipeline: the blocks decomp reads; the folded form: 1), at least 1
 * (rows 0: the default); threads, provider and form as given. */
mora_cpu_params mora_cpu_params_for(const mora_shape *s, int tile_rows, int threads, int gemm, int fold);
/* y[i*ldy + j] += scale·decomp(M comp(x_i)), x_i = x + i*ldx (row strides in elements, >= d_in / d_out). */
mora_status mora_cpu_forward(const mora_cpu_plan *p, const float *M, const void *x, int64_t ldx, void *y, int64_t ldy, int64_t n, float scale, void *workspace);
/* dM += scale·Σ_tokens Σ_blocks g⊗c (dM may be NULL); dx += scale·compᵀ(Mᵀg) (dx may be NULL); g = decompᵀ(dy). */
mora_status mora_cpu_backward(const mora_cpu_plan *p, const float *M, const void *x, int64_t ldx, const void *dy, int64_t lddy, void *dx, int64_t lddx, float *dM, int64_t n, float scale, void *workspace);
/* W[j*ldw + p] += s·ΔW[j][p], only the entries ΔW structurally has; W of w_dtype; ldw >= d_in. No workspace. */
mora_status mora_cpu_merge(const mora_cpu_plan *p, const float *M, void *W, int64_t ldw, mora_dtype w_dtype, float s);


/* The optimizer step over float32 arenas on the host, exactly templates/adamw.kern's rule and order
 * of operations (its comment says which); the gradient norm's sum is cut into the same chunks, so
 * host and device give the same partials. Split over the cores in whole chunks: the serial loop's
 * bits whatever the core count. */
typedef struct mora_cpu_adamw_args {
    float *p, *g, *m, *v; /* parameters, gradients, first and second moments: count elements each */
    int64_t count;
    int64_t chunk;        /* elements per partial sum of the norm */
    float *partial;       /* ceil(count / chunk) partial sums */
    float *clip;          /* [norm, coefficient] (mora_cpu_grad_norm_finish writes it) */
    float decay, one_minus_beta1, beta2, one_minus_beta2, neg_step_size, bias2_sqrt, eps;
    int use_clip;         /* g ← g·clip[1] first (written back) */
} mora_cpu_adamw_args;
/* partial[w] = Σ g² over chunk w */
void mora_cpu_grad_sq_partial(const mora_cpu_adamw_args *a);
/* clip[0] = sqrt(Σ partial), clip[1] = min(1, max_norm / (clip[0] + 1e-6)), the partials added in order */
void mora_cpu_grad_norm_finish(const float *partial, int64_t count, float max_norm, float *clip);
/* the update of every element */
void mora_cpu_adamw(const mora_cpu_adamw_args *a);

#endif
