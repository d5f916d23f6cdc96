/* Internal: the cpu backend's kernels, plain C in float32 (activations stored as f32/f16/bf16,
 * every accumulation in float32). They implement the same operations as the generated GPU kernels,
 * in the same gather form (each output computed from the inputs it reads), written independently of
 * the float64 reference so that tests comparing the two can fail.
 *
 * Shapes are already checked by the caller (mora_shape_check); pointers are host pointers:
 *   x[n][d_in], y[n][d_out], dy[n][d_out], dx[n][d_in] of `dtype`; M, dM [r̂][r̂] float32;
 *   W [d_out][d_in] of `w_dtype`. y, dx, dM, W accumulate (+=). */
#ifndef MORA_RUNTIME_CPU_KERNELS_H
#define MORA_RUNTIME_CPU_KERNELS_H

#include "mora.h"

/* Prepared state of one (shape, dtype): wrap table, rope's cos/sin table, tile size, thread count.
 * Immutable after create: any number of threads may call with one cpu plan at once, each passing
 * its own workspace. */
typedef struct mora_cpu_plan mora_cpu_plan;
typedef struct mora_cpu_params {
    int tile_tokens; /* tokens per tile of the pipeline; 0: default */
    int threads;     /* worker threads per call (the caller's thread included); 0: online cores */
} mora_cpu_params;
mora_status mora_cpu_plan_create(const mora_shape *s, mora_dtype dtype, const mora_cpu_params *params /* NULL: defaults */,
                                 mora_cpu_plan **out);
void mora_cpu_plan_destroy(mora_cpu_plan *p);
/* Bytes of workspace that any call below needs for up to n tokens (forward and backward). */
size_t mora_cpu_workspace_bytes(const mora_cpu_plan *p, int64_t n);
/* y[i*ldy + j] += scale·decomp(M comp(x_i)), x_i = x + i*ldx (row strides in elements, >= d_in / d_out). */
mora_status mora_cpu_forward(const mora_cpu_plan *p, const float *M, const void *x, int64_t ldx, void *y, int64_t ldy,
                             int64_t n, float scale, void *workspace);
/* dM += scale·Σ_tokens Σ_blocks g⊗c (dM may be NULL); dx += scale·comp^T(M^T g) (dx may be NULL); g = decomp^T(dy). */
mora_status mora_cpu_backward(const mora_cpu_plan *p, const float *M, const void *x, int64_t ldx, const void *dy,
                              int64_t lddy, void *dx, int64_t lddx, float *dM, int64_t n, float scale, void *workspace);
/* W[j*ldw + p] += s·ΔW[j][p], only the entries ΔW structurally has; W of w_dtype; ldw >= d_in. No workspace. */
mora_status mora_cpu_merge(const mora_cpu_plan *p, const float *M, void *W, int64_t ldw, mora_dtype w_dtype, float s);

#endif
