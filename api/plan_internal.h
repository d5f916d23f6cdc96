/* Internal: what the plans layer tells the tools and tests beyond mora.h, and the parameter policy
 * it applies (api/select.c). */
#ifndef MORA_API_PLAN_INTERNAL_H
#define MORA_API_PLAN_INTERNAL_H

#include "context.h"
#include "cpu_kernels.h"
#include "kernels.h"

/* Fills spec's parameters from the kernels cache's record for `tokens`' bucket (else the nearest
 * bucket that has one), else the shipped database, else leaves the defaults; returns "cache",
 * "database" or "default". */
const char *mora_select_params(mora_context *ctx, mora_kernel_spec *spec, int64_t tokens);

/* The cpu path's tile and threads from the cache's record for the bucket of `tokens` (else the
 * nearest bucket's), or zeros (the defaults); returns "cache" or "default". */
const char *mora_select_cpu_params(mora_context *ctx, const mora_shape *s, mora_dtype dtype, int64_t tokens,
                                   mora_cpu_params *params);

/* The spec a plan launches for `kind` (merge: for W of the plan's activation dtype), and where its
 * parameters came from: "cache", "database", "default", "tuned", or "-" (cpu backend, or a kind
 * the plan did not prepare). */
mora_kernel_spec mora_plan_spec(const mora_plan *plan, mora_kind kind);
const char *mora_plan_param_source(const mora_plan *plan, mora_kind kind);
/* Tests: prepares `spec`'s parameters for its kind instead of the chosen ones (shape and dtype must
 * be the plan's; merge: for every prepared W dtype). MORA_E_UNSUPPORTED on the cpu backend. */
mora_status mora_plan_use_spec(mora_plan *plan, const mora_kernel_spec *spec);
/* The cpu path's parameters of a plan on the cpu backend (MORA_E_UNSUPPORTED elsewhere). */
mora_status mora_plan_cpu_params(const mora_plan *plan, mora_cpu_params *params);
/* The plan's context. */
mora_context *mora_plan_context(const mora_plan *plan);

#endif
