/* Shared command-line handling of the tools (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cli_shape_help[] =
    "  --dims N          input features d_in of the layer\n"
    "  --dims-out N      output features d_out (default: same as --dims)\n"
    "  --rank R          LoRA rank whose parameter budget MoRA gets: r̂ = round(sqrt((d_in+d_out)·R))\n"
    "  --rhat R          r̂ directly, instead of --rank\n"
    "  --op NAME         truncate, share, group, group-tile, share-interleave, reshape, rope\n"
    "                    (default: rope for rank <= 32, share above, as the method's authors advise;\n"
    "                    with --rhat, the rank of the same parameter count decides)\n"
    "  --dtype NAME      activations: f32, f16 or bf16 (default f32)\n";

void cli_usage_error(const char *prog, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun '%s --help' for the options.\n", prog);
    exit(2);
}

int64_t cli_parse_int(const char *prog, const char *option, const char *text, int64_t min, int64_t max) {
    if (!text || !*text) cli_usage_error(prog, "%s needs a value", option);
    errno = 0;
    char *end = NULL;
    const long long v = strtoll(text, &end, 10);
    if (errno == ERANGE || (errno == 0 && *end == '\0' && (v < min || v > max)))
        cli_usage_error(prog, "%s=%s: must be in [%lld, %lld]", option, text, (long long)min, (long long)max);
    if (errno != 0 || *end != '\0') cli_usage_error(prog, "%s=%s: expected a whole number", option, text);
    return (int64_t)v;
}

double cli_parse_number(const char *prog, const char *option, const char *text, double min, double max) {
    if (!text || !*text) cli_usage_error(prog, "%s needs a value", option);
    errno = 0;
    char *end = NULL;
    const double v = strtod(text, &end);
    if (errno != 0 || *end != '\0' || v != v) cli_usage_error(prog, "%s=%s: expected a number", option, text);
    if (v < min || v > max) cli_usage_error(prog, "%s=%s: must be in [%g, %g]", option, text, min, max);
    return v;
}

/* Each shape option once: a repeated one is a usage error rather than the last value silently. */
static int64_t shape_int(const char *prog, const char *option, const char *value, int64_t previous) {
    if (previous) cli_usage_error(prog, "%s=%s: given twice", option, value);
    return cli_parse_int(prog, option, value, 1, INT64_MAX);
}

int cli_shape_option(const char *prog, cli_shape_options *o, const char *option, const char *value) {
    if (strcmp(option, "dims") == 0) o->dims = shape_int(prog, "--dims", value, o->dims);
    else if (strcmp(option, "dims-out") == 0) o->dims_out = shape_int(prog, "--dims-out", value, o->dims_out);
    else if (strcmp(option, "rank") == 0) o->rank = shape_int(prog, "--rank", value, o->rank);
    else if (strcmp(option, "rhat") == 0) o->rhat = shape_int(prog, "--rhat", value, o->rhat);
    else if (strcmp(option, "op") == 0 && o->op) cli_usage_error(prog, "--op=%s: given twice", value);
    else if (strcmp(option, "op") == 0) o->op = value;
    else if (strcmp(option, "dtype") == 0 && o->dtype) cli_usage_error(prog, "--dtype=%s: given twice", value);
    else if (strcmp(option, "dtype") == 0) o->dtype = value;
    else return 0;
    return 1;
}

void cli_shape_resolve(const char *prog, const cli_shape_options *o, mora_shape *shape, mora_dtype *dtype) {
    if (o->dims == 0) cli_usage_error(prog, "--dims is required (the layer's input features)");
    if (o->rank && o->rhat) cli_usage_error(prog, "--rank=%lld and --rhat=%lld: give one of them", (long long)o->rank, (long long)o->rhat);
    if (!o->rank && !o->rhat) cli_usage_error(prog, "--rank or --rhat is required");
    const int64_t d_out = o->dims_out ? o->dims_out : o->dims;
    mora_op op;
    if (o->op) {
        if (mora_op_from_string(o->op, &op) != MORA_OK) cli_usage_error(prog, "--op: %s", mora_last_error());
    } else {
        /* with --rhat, judge by the rank of the same parameter count: r = r̂² / (d_in + d_out), in
         * double (the integers may overflow for absurd sizes, which the shape check then refuses) */
        const double rank = o->rank ? (double)o->rank : (double)o->rhat * (double)o->rhat / ((double)o->dims + (double)d_out);
        op = rank <= 32 && (o->rank || o->rhat % 2 == 0) ? MORA_OP_ROPE : MORA_OP_SHARE;
    }
    *dtype = MORA_F32;
    if (o->dtype && mora_dtype_from_string(o->dtype, dtype) != MORA_OK)
        cli_usage_error(prog, "--dtype: %s", mora_last_error());
    mora_status st;
    if (o->rank) {
        st = mora_shape_make(shape, o->dims, d_out, o->rank, op);
        if (st == MORA_OK && shape->rhat != mora_rhat_from_rank(o->dims, d_out, o->rank))
            fprintf(stderr, "%s: note: rope needs an even r̂; using %lld instead of %lld\n", prog,
                    (long long)shape->rhat, (long long)mora_rhat_from_rank(o->dims, d_out, o->rank));
    } else {
        const mora_shape given = {o->dims, d_out, o->rhat, op};
        st = mora_shape_check(&given);
        if (st == MORA_OK) *shape = given;
    }
    /* what the generated kernels take (the host kernels take more): the tools serve every backend */
    if (st == MORA_OK) st = mora_kernel_shape_check(shape, MORA_DIALECT_OPENCL);
    if (st != MORA_OK) cli_usage_error(prog, "%s", mora_last_error());
}

void cli_format_params(const mora_kernel_spec *spec, char *out, size_t size) {
    const mora_kind_decl *d = mora_spec_decl(spec);
    out[0] = '\0';
    for (int i = 0; d && i < d->param_count; ++i) {
        char one[48];
        const char *name = strchr(d->params[i].name, '_') ? strchr(d->params[i].name, '_') + 1 : d->params[i].name;
        snprintf(one, sizeof one, "%s%s=%d", i ? " " : "", name, spec->params[i]);
        strncat(out, one, size - strlen(out) - 1);
    }
}
