/* libmora-cpu-shim.so: the cpu plan interface (runtime/cpu_kernels.h, internal to libmora) exported
 * for bench/cpu/torch_ref.py --via plan, so that the Python bench can choose libmora's worker count,
 * tile, GEMM provider and form (runtime/cpu_gemm.h; a layer takes the tuned or default ones). Bench
 * only; not installed. */
#include <stdlib.h>

#include "cpu_kernels.h"

#define SHIM_API __attribute__((visibility("default")))

typedef struct shim {
    mora_cpu_plan *plan;
    int64_t d_in, d_out;
    void *ws;
} shim;

SHIM_API shim *shim_create(const mora_shape *s, int tile, int threads, int gemm, int fold, int64_t n);
SHIM_API void shim_destroy(shim *h);
SHIM_API int shim_forward(shim *h, const float *M, const float *x, float *y, int64_t n, float scale);
SHIM_API int shim_backward(shim *h, const float *M, const float *x, const float *dy, float *dx, float *dM, int64_t n);

shim *shim_create(const mora_shape *s, int tile, int threads, int gemm, int fold, int64_t n) {
    shim *h = calloc(1, sizeof *h);
    const mora_cpu_params prm = {tile, threads, gemm, fold};
    if (!h || mora_cpu_plan_create(s, MORA_F32, &prm, &h->plan) != MORA_OK) {
        free(h);
        return NULL;
    }
    h->d_in = s->d_in;
    h->d_out = s->d_out;
    h->ws = malloc(mora_cpu_workspace_bytes(h->plan, n));
    if (!h->ws) {
        shim_destroy(h);
        return NULL;
    }
    return h;
}

void shim_destroy(shim *h) {
    if (!h) return;
    mora_cpu_plan_destroy(h->plan);
    free(h->ws);
    free(h);
}

/* Contiguous tensors: the row strides are d_in and d_out. */
int shim_forward(shim *h, const float *M, const float *x, float *y, int64_t n, float scale) {
    return mora_cpu_forward(h->plan, M, x, h->d_in, y, h->d_out, n, scale, h->ws);
}

int shim_backward(shim *h, const float *M, const float *x, const float *dy, float *dx, float *dM, int64_t n) {
    return mora_cpu_backward(h->plan, M, x, h->d_in, dy, h->d_out, dx, h->d_in, dM, n, 1.0f, h->ws);
}
