/* Internal: what the plans layer tells the tools and tests beyond mora.h, and the parameter policy
 * it applies (api/select.c). */
#ifndef MORA_API_PLAN_INTERNAL_H
#define MORA_API_PLAN_INTERNAL_H

#include "context.h"
#include "kernels.h"

/* Fills spec's parameters from the kernels cache's record for `tokens`' bucket (else the nearest
 * bucket that has one), else the shipped database, else leaves the defaults; returns "cache",
 * "database" or "default". The one selector, for every backend. */
const char *mora_select_params(mora_context *ctx, mora_kernel_spec *spec, int64_t tokens);

/* mora_plan_create for the layers above, on a context that may be held only by its objects (an
 * adapter making a plan after the caller released its context handle). */
mora_status mora_plan_make(mora_context *ctx, const mora_shape *s, mora_dtype dtype, int64_t max_tokens,
                           const mora_plan_options *options, mora_plan **plan);

/* The spec a plan launches for `kind` (merge: for W of the plan's activation dtype), and where its
 * parameters came from: "cache", "database", "default", "tuned", "given", or "-" (a kind the plan
 * did not prepare). */
mora_kernel_spec mora_plan_spec(const mora_plan *plan, mora_kind kind);
const char *mora_plan_param_source(const mora_plan *plan, mora_kind kind);
/* Tests: prepares `spec`'s parameters for its kind instead of the chosen ones (shape, dtype and
 * dialect must be the plan's; merge: for every prepared W dtype). */
mora_status mora_plan_use_spec(mora_plan *plan, const mora_kernel_spec *spec);

#endif
