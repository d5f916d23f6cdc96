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

/* y += scale · decomp(M · comp(x)) */
mora_status mora_cpu_forward(const mora_shape *s, mora_dtype dtype, const float *M, const void *x, void *y,
                             int64_t n, float scale);
/* dM += Σ_tokens Σ_blocks g ⊗ c (dM may be NULL); dx += comp^T(M^T g) (dx may be NULL); g = decomp^T(dy) */
mora_status mora_cpu_backward(const mora_shape *s, mora_dtype dtype, const float *M, const void *x,
                              const void *dy, void *dx, float *dM, int64_t n);
/* W += s · ΔW, writing only the entries ΔW structurally has */
mora_status mora_cpu_merge(const mora_shape *s, const float *M, void *W, mora_dtype w_dtype, float sign);

#endif
