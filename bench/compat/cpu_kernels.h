/* Compatibility shim for tools/mora-bench.c only (its include path puts bench/compat first): maps the
 * cpu kernels' previous interface (shape and dtype per call, no plan, no workspace, backward without
 * scale) onto the plan interface of runtime/cpu_kernels.h. Each call makes a plan and a workspace and
 * frees them, so mora-bench's cpu timings include that set-up (tens of µs; it also uses the default
 * tile and thread count). Delete this file once mora-bench calls the plan interface itself. */
#ifndef MORA_BENCH_COMPAT_CPU_KERNELS_H
#define MORA_BENCH_COMPAT_CPU_KERNELS_H

#include <stdlib.h>

#include "../../runtime/cpu_kernels.h"
#include "error.h"

static inline mora_status mora_cpu_compat_call_(const mora_shape *s, mora_dtype dtype, int kind, const float *M,
                                               const void *x, const void *dy, void *out, float *dM, int64_t n,
                                               float scale) {
    MORA_CHECK_PTR(s);
    if (n < 0) return mora_fail(MORA_E_SIZE, "n=%lld: must be >= 0", (long long)n);
    mora_cpu_plan *p;
    MORA_TRY(mora_cpu_plan_create(s, dtype, NULL, &p));
    mora_status st = MORA_OK;
    if (kind == 2) {
        st = mora_cpu_merge(p, M, out, s->d_in, dtype, scale);
    } else if (n > 0) {
        void *ws = malloc(mora_cpu_workspace_bytes(p, n));
        if (!ws) {
            mora_cpu_plan_destroy(p);
            return mora_fail(MORA_E_NO_MEMORY, "cpu workspace: out of host memory");
        }
        if (kind == 0)
            st = mora_cpu_forward(p, M, x, s->d_in, out, s->d_out, n, scale, ws);
        else
            st = mora_cpu_backward(p, M, x, s->d_in, dy, s->d_out, out, s->d_in, dM, n, 1.0f, ws);
        free(ws);
    }
    mora_cpu_plan_destroy(p);
    return st;
}
static inline mora_status mora_cpu_forward_v0_(const mora_shape *s, mora_dtype dtype, const float *M, const void *x,
                                               void *y, int64_t n, float scale) {
    return mora_cpu_compat_call_(s, dtype, 0, M, x, NULL, y, NULL, n, scale);
}
static inline mora_status mora_cpu_backward_v0_(const mora_shape *s, mora_dtype dtype, const float *M, const void *x,
                                                const void *dy, void *dx, float *dM, int64_t n) {
    return mora_cpu_compat_call_(s, dtype, 1, M, x, dy, dx, dM, n, 1.0f);
}
static inline mora_status mora_cpu_merge_v0_(const mora_shape *s, const float *M, void *W, mora_dtype w_dtype,
                                             float sign) {
    return mora_cpu_compat_call_(s, w_dtype, 2, M, NULL, NULL, W, NULL, 0, sign);
}
#define mora_cpu_forward mora_cpu_forward_v0_
#define mora_cpu_backward mora_cpu_backward_v0_
#define mora_cpu_merge mora_cpu_merge_v0_

#endif
