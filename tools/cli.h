/* Shared command-line handling of the tools: the shape options every tool takes, number parsing
 * with errors that name the option, value and limit, and the usage-error exit (status 2). */
#ifndef MORA_TOOLS_CLI_H
#define MORA_TOOLS_CLI_H

#include <stdint.h>

#include <stddef.h>

#include "kernels.h"
#include "mora.h"

/* --dims N [--dims-out N] (--rank R | --rhat R) [--op NAME] [--dtype NAME] */
typedef struct cli_shape_options {
    int64_t dims;     /* d_in (0: not given) */
    int64_t dims_out; /* d_out (0: same as dims) */
    int64_t rank;     /* LoRA rank r (0: not given) */
    int64_t rhat;     /* r̂ given directly (0: not given) */
    const char *op;   /* NULL: the authors' advice for the rank */
    const char *dtype;
} cli_shape_options;

/* Prints "PROG: message" and the hint to run --help to stderr, then exits with status 2. */
void cli_usage_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* Parses a whole decimal integer in [min, max]; on failure a usage error naming the option. */
int64_t cli_parse_int(const char *prog, const char *option, const char *text, int64_t min, int64_t max);
/* Parses a decimal number (fractions allowed) in [min, max]. */
double cli_parse_number(const char *prog, const char *option, const char *text, double min, double max);
/* The largest token count the kernels take (2^31 − 1). */
#define CLI_MAX_TOKENS (MORA_KERNEL_INDEX_LIMIT - 1)
/* Handles one shape option (returns 1 if `option` was one of them). */
int cli_shape_option(const char *prog, cli_shape_options *o, const char *option, const char *value);
/* Resolves the options into a checked shape and dtype. Usage errors (missing --dims) and shapes the
 * library rejects exit 2 with the library's sentence. Prints a note to stderr when r̂ was adjusted
 * (rope needs it even). The default op is rope for r <= 32 (the authors' advice for small ranks),
 * share above. */
void cli_shape_resolve(const char *prog, const cli_shape_options *o, mora_shape *shape, mora_dtype *dtype);
/* A spec's parameters as "TM=32 TN=32 ..." (the kind prefix dropped: FWD_TM=32 → TM=32). */
void cli_format_params(const mora_kernel_spec *spec, char *out, size_t size);
/* The help text lines of the shape options. */
extern const char cli_shape_help[];

#endif
