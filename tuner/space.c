/* The search space of a kernel kind: the product of its parameters' value lists, kept where
 * mora_space_valid holds (the kind's constraints, the device's limits and the search-space rules,
 * all declared in codegen/kernels.c); neighbours for the local search; the winner's selection. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "shape.h"
#include "tuner.h"

int mora_spec_same_params(const mora_kernel_spec *a, const mora_kernel_spec *b) {
    return memcmp(a->params, b->params, sizeof a->params) == 0;
}

mora_status mora_space_enumerate(const mora_kernel_spec *base, const mora_device_info *device, mora_kernel_spec **specs,
                                 int *count) {
    const mora_kind_decl *d = mora_spec_decl(base);
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
    const mora_kind_decl *d = mora_spec_decl(center);
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
