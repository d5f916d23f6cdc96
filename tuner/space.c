/* The search space of a kernel kind: the product of its parameters' value lists (declared in
 * codegen/kernels.c), kept only where the kind's constraints hold and the work-group fits the device
 * (work-items, local memory), and pruned of tiles far larger than the problem. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "shape.h"
#include "tuner.h"

static int64_t pow2_at_least(int64_t v) {
    int64_t p = 1;
    while (p < v) p *= 2;
    return p;
}

int mora_spec_same_params(const mora_kernel_spec *a, const mora_kernel_spec *b) {
    return memcmp(a->params, b->params, sizeof a->params) == 0;
}

/* Whether a device whose architecture is `arch` ("sm_90", "gfx90a"; "" when unknown) has the
 * tensor / matrix cores the MMA variant of `dtype` uses: mma.sync m16n8k16 from sm_80; MFMA
 * 16x16x16f16 on CDNA (gfx908 and up), its bf16_1k form from gfx90a. Unknown: assumed yes (a
 * candidate that does not compile is rejected by the tuner anyway). */
static int has_matrix_cores(mora_dialect dialect, const char *arch, mora_dtype dtype) {
    if (!arch || !arch[0]) return 1;
    if (dialect == MORA_DIALECT_CUDA) {
        if (strncmp(arch, "sm_", 3) != 0) return 1;
        return atoi(arch + 3) >= 80;
    }
    if (dialect == MORA_DIALECT_HIP) {
        if (strncmp(arch, "gfx9", 4) != 0) return 0; /* RDNA (gfx10+), older GCN: no MFMA */
        if (strncmp(arch, "gfx90a", 6) == 0 || strncmp(arch, "gfx94", 5) == 0 || strncmp(arch, "gfx95", 5) == 0)
            return 1;
        return strncmp(arch, "gfx908", 6) == 0 && dtype == MORA_F16;
    }
    return 0;
}

int mora_space_valid(const mora_kernel_spec *spec, const mora_device_info *device) {
    if (mora_spec_check(spec, device->max_work_group, device->local_mem_bytes) != MORA_OK) return 0;
    const mora_kind_decl *d = mora_kind_decl_get(spec->kind);
    const int *p = spec->params;
    const int64_t rhat_tile = pow2_at_least(spec->shape.rhat) < 8 ? 8 : pow2_at_least(spec->shape.rhat);
    if (d->is_gemm) {
        /* columns are r̂ wide for every GEMM kind (and rows too for bwd_dm): larger tiles only idle */
        if (p[MORA_GEMM_TN] > rhat_tile) return 0;
        if (spec->kind == MORA_KIND_BWD_DM && p[MORA_GEMM_TM] > rhat_tile) return 0;
        if (mora_spec_threads(spec, 0) < 4) return 0;
        /* the MMA variant (its dialect and dtype are checked by mora_spec_check): only where the device
         * has the instructions, and with at most 64 accumulators per lane (4·WM·WN) */
        if (mora_spec_mma(spec)) {
            if (!has_matrix_cores(spec->dialect, device->arch, spec->dtype)) return 0;
            if (4 * p[MORA_GEMM_WM] * p[MORA_GEMM_WN] > 64) return 0;
        }
    }
    /* the reduction's work-group size is unused without a split: keep only its default */
    if (spec->kind == MORA_KIND_BWD_DM && p[5] == 1 && p[6] != d->params[6].default_value) return 0;
    return 1;
}

mora_status mora_space_enumerate(const mora_kernel_spec *base, const mora_device_info *device, mora_kernel_spec **specs,
                                 int *count) {
    const mora_kind_decl *d = mora_kind_decl_get(base->kind);
    if (!d) return mora_fail(MORA_E_UNKNOWN_KIND, "kind=%d: unknown kernel kind", (int)base->kind);
    int64_t total = 1;
    for (int i = 0; i < d->param_count; ++i) total *= d->params[i].value_count;
    mora_kernel_spec *out = malloc((size_t)(total + 1) * sizeof *out);
    if (!out) return mora_fail(MORA_E_NO_MEMORY, "search space of %s: out of memory for %lld candidates", d->name, (long long)total);

    int n = 0;
    mora_kernel_spec spec = mora_spec_default(&base->shape, base->dtype, base->kind, base->dialect);
    const mora_kernel_spec defaults = spec;
    if (mora_space_valid(&defaults, device)) out[n++] = defaults;
    int digit[MORA_MAX_PARAMS] = {0};
    for (int64_t k = 0; k < total; ++k) {
        for (int i = 0; i < d->param_count; ++i) spec.params[i] = d->params[i].values[digit[i]];
        if (!mora_spec_same_params(&spec, &defaults) && mora_space_valid(&spec, device)) out[n++] = spec;
        for (int i = d->param_count - 1; i >= 0; --i) { /* mixed-radix increment: the last parameter varies fastest */
            if (++digit[i] < d->params[i].value_count) break;
            digit[i] = 0;
        }
    }
    if (n == 0) {
        free(out);
        return mora_fail(MORA_E_PARAM, "search space of %s: no parameter combination fits the device (%zu work-items, %zu bytes of local memory)",
                         d->name, device->max_work_group, device->local_mem_bytes);
    }
    *specs = out;
    *count = n;
    return MORA_OK;
}

int mora_space_neighbours(const mora_kernel_spec *center, const mora_device_info *device, mora_kernel_spec *out,
                          int capacity) {
    const mora_kind_decl *d = mora_kind_decl_get(center->kind);
    int n = 0;
    for (int i = 0; i < d->param_count; ++i) {
        int at = -1;
        for (int v = 0; v < d->params[i].value_count; ++v)
            if (d->params[i].values[v] == center->params[i]) at = v;
        if (at < 0) continue;
        for (int step = -1; step <= 1; step += 2) {
            const int v = at + step;
            if (v < 0 || v >= d->params[i].value_count || n == capacity) continue;
            mora_kernel_spec next = *center;
            next.params[i] = d->params[i].values[v];
            if (mora_space_valid(&next, device)) out[n++] = next;
        }
    }
    return n;
}

int mora_pick_winner(const double *medians, const double *spreads, int count, double min_band) {
    int best = -1;
    for (int i = 0; i < count; ++i) {
        if (medians[i] < 0) continue;
        if (best < 0) {
            best = i;
            continue;
        }
        double band = min_band;
        if (spreads[best] > band) band = spreads[best];
        if (spreads[i] > band) band = spreads[i];
        if (medians[i] < medians[best] * (1.0 - band)) best = i;
    }
    return best;
}
