/* mora-gen — show, and optionally compile, the kernel source libmora generates for one spec; list
 * the tuning parameters and constraints of a kind (the tables of codegen/kernels.c).
 *
 *   mora-gen --dims 4096 --rank 8 --op rope --kind fwd --dtype bf16 --backend opencl
 *   mora-gen --dims 4096 --rank 8 --kind bwd_dm --backend cuda --arch sm_90 --check
 *   mora-gen --kind fwd --backend cpu --list-params
 *   mora-gen --list-params --markdown          (every kind of both families: docs/kernels.md's table)
 *
 * Prints the source to stdout (or --output FILE). With --check it compiles the source with the
 * backend's compiler — OpenCL on the first OpenCL device, CUDA through NVRTC and HIP through hiprtc
 * for a named target without any GPU — and prints the build result and resource report instead. */
#define _GNU_SOURCE
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
/* internal headers: code generation and offline compilation are not part of mora.h */
#include "context.h"
#include "kernels.h"
#include "offline_compile.h"

static const char *const prog = "mora-gen";

static void usage(FILE *out) {
    fprintf(out,
            "Usage: mora-gen --dims N (--rank R | --rhat R) [options]\n"
            "Prints the kernel source libmora generates for one layer shape and kernel kind.\n\n"
            "Shape (--dims and --rank or --rhat are required):\n%s\n"
            "Kernel:\n"
            "  --kind NAME       fwd, bwd_dx, bwd_dm, merge or adamw (default fwd)\n"
            "  --backend NAME    opencl, cuda, hip or cpu: the dialect to generate (default opencl;\n"
            "                    cpu: the host dialect, the constants that configure the cpu backend's kernels)\n"
            "  --param NAME=V    set a tuning parameter (repeatable), e.g. --param FWD_TM=64;\n"
            "                    --list-params shows the kind's parameters and defaults\n"
            "  --list-params     print the kind's parameters (range, default, tuner values, meaning) and\n"
            "                    constraints, then exit (no shape needed)\n"
            "  --markdown        with --list-params: every kind of both dialect families as Markdown tables\n\n"
            "Output:\n"
            "  --check           compile the source and print the result and resource report\n"
            "  --arch TARGET     with --check for cuda/hip: sm_80, sm_90, gfx90a, gfx942 (default sm_90 / gfx90a)\n"
            "  --device N        with --check for opencl: device index (default 0)\n"
            "  -o, --output FILE write the source to FILE instead of stdout\n"
            "  -h, --help        this text\n\n"
            "Exit status: 0 success, 1 generation or compilation failed, 2 usage error.\n",
            cli_shape_help);
}

static void format_values(const mora_param_decl *p, char *out, size_t size) {
    out[0] = '\0';
    for (int v = 0; v < p->value_count; ++v) {
        char one[16];
        snprintf(one, sizeof one, v ? ", %d" : "%d", p->values[v]);
        strncat(out, one, size - strlen(out) - 1);
    }
}

static void format_range(const mora_param_decl *p, char *out, size_t size) {
    if (p->max == INT_MAX) snprintf(out, size, ">= %d", p->min);
    else snprintf(out, size, "%d .. %d", p->min, p->max);
}

static void list_params(const mora_kind_decl *d, mora_dialect dialect) {
    printf("kind %s on %s (%s), entry points:", d->name, mora_dialect_name(dialect),
           d->template_name ? d->template_name : "the cpu backend's own kernels");
    for (int e = 0; e < d->entry_count; ++e) printf(" %s", d->entries[e].name);
    printf("\n%-18s %-10s %8s  %-26s %s\n", "parameter", "range", "default", "tuner values", "meaning");
    for (int i = 0; i < d->param_count; ++i) {
        char values[96], range[32];
        format_values(&d->params[i], values, sizeof values);
        format_range(&d->params[i], range, sizeof range);
        printf("%-18s %-10s %8d  %-26s %s\n", d->params[i].name, range, d->params[i].default_value, values,
               d->params[i].meaning);
    }
    if (d->param_count == 0) printf("(no tuning parameters)\n");
    for (int c = 0; c < d->constraint_count; ++c) {
        char text[160];
        const int search = mora_constraint_describe(d, &d->constraints[c], text, sizeof text);
        printf("%s %s\n", search ? "search space:" : "constraint:  ", text);
    }
}

/* Every kind of both families as Markdown: what docs/kernels.md holds (a test compares them). */
static void list_markdown(void) {
    static const struct {
        mora_dialect dialect;
        const char *title;
    } families[] = {{MORA_DIALECT_OPENCL, "Generated kernels (opencl, cuda, hip)"},
                    {MORA_DIALECT_HOST, "Host kernels (the cpu backend)"}};
    for (size_t f = 0; f < sizeof families / sizeof *families; ++f) {
        printf("### %s\n\n| kind | parameter | range | default | tuner values | meaning |\n|---|---|---|---|---|---|\n",
               families[f].title);
        for (int k = 0; k < MORA_KIND_ALL_COUNT; ++k) {
            const mora_kind_decl *d = mora_kind_decl_get((mora_kind)k, families[f].dialect);
            for (int i = 0; i < d->param_count; ++i) {
                char values[96], range[32];
                format_values(&d->params[i], values, sizeof values);
                format_range(&d->params[i], range, sizeof range);
                printf("| %s | `%s` | %s | %d | %s | %s |\n", d->name, d->params[i].name, range, d->params[i].default_value,
                       values, d->params[i].meaning);
            }
        }
        printf("\n| kind | constraint | checked by |\n|---|---|---|\n");
        for (int k = 0; k < MORA_KIND_ALL_COUNT; ++k) {
            const mora_kind_decl *d = mora_kind_decl_get((mora_kind)k, families[f].dialect);
            for (int c = 0; c < d->constraint_count; ++c) {
                char text[160];
                const int search = mora_constraint_describe(d, &d->constraints[c], text, sizeof text);
                printf("| %s | %s | %s |\n", d->name, text, search ? "the tuner's search space" : "every spec check");
            }
        }
        printf("\n");
    }
}

static int check_opencl(const mora_kernel_spec *spec, const char *source, int device) {
    mora_context *ctx = NULL;
    if (mora_context_create("opencl", device, &ctx) != MORA_OK) {
        fprintf(stderr, "%s: --check: %s\n", prog, mora_last_error());
        return 1;
    }
    void *program = NULL;
    const mora_status st = mora_context_build(ctx, source, &program);
    if (st != MORA_OK) {
        fprintf(stderr, "%s: compilation failed on %s: %s\n", prog, mora_context_device_name(ctx), mora_last_error());
        mora_context_destroy(ctx);
        return 1;
    }
    const mora_kind_decl *d = mora_spec_decl(spec);
    printf("compiled for OpenCL device \"%s\" (%s)\n", ctx->info.name, ctx->info.compiler_version);
    printf("%-22s %10s %12s\n", "entry", "work-items", "local bytes");
    for (int e = 0; e < d->entry_count; ++e)
        printf("%-22s %10zu %12zu\n", d->entries[e].name, mora_spec_threads(spec, e), mora_spec_local_bytes(spec, e));
    mora_context_release_program(ctx, program);
    mora_context_destroy(ctx);
    return 0;
}

static int check_offline(const mora_kernel_spec *spec, const char *source, const char *arch) {
    mora_compile_report report;
    if (mora_compile_offline(spec->dialect, arch, source, &report) != MORA_OK) {
        fprintf(stderr, "%s: compilation for %s failed: %s\n", prog, arch, mora_last_error());
        return 1;
    }
    printf("compiled for %s with %s: %zu bytes of code\n", report.target, report.compiler, report.binary_bytes);
    printf("%-22s %10s %12s %12s %10s %10s\n", "entry", "registers", "spill stores", "spill loads", "shared", "stack");
    for (int e = 0; e < report.entry_count; ++e)
        printf("%-22s %10d %12d %12d %10d %10d\n", report.entries[e].name, report.entries[e].registers,
               report.entries[e].spill_store_bytes, report.entries[e].spill_load_bytes, report.entries[e].shared_bytes,
               report.entries[e].stack_bytes);
    if (report.log && *report.log) printf("\ncompiler log:\n%s\n", report.log);
    mora_compile_report_free(&report);
    return 0;
}

int main(int argc, char **argv) {
    cli_shape_options shape_options = {0};
    const char *kind_name = "fwd", *backend = "opencl", *arch = NULL, *output = NULL;
    const char *params[64];
    int param_count = 0, check = 0, list = 0, markdown = 0, device = 0;
    enum { OPT_CHECK = 256, OPT_LIST, OPT_MARKDOWN };
    static const struct option options[] = {
        {"dims", required_argument, 0, 0},     {"dims-out", required_argument, 0, 0},
        {"rank", required_argument, 0, 0},     {"rhat", required_argument, 0, 0},
        {"op", required_argument, 0, 0},       {"dtype", required_argument, 0, 0},
        {"kind", required_argument, 0, 0},     {"backend", required_argument, 0, 0},
        {"param", required_argument, 0, 0},    {"arch", required_argument, 0, 0},
        {"device", required_argument, 0, 0},   {"output", required_argument, 0, 'o'},
        {"check", no_argument, 0, OPT_CHECK},  {"list-params", no_argument, 0, OPT_LIST},
        {"markdown", no_argument, 0, OPT_MARKDOWN},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0},
    };
    opterr = 0;
    for (;;) {
        int index = 0;
        const int c = getopt_long(argc, argv, "ho:", options, &index);
        if (c == -1) break;
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == '?') cli_usage_error(prog, "unknown or incomplete option '%s'", argv[optind - 1]);
        if (c == 'o') output = optarg;
        else if (c == OPT_CHECK) check = 1;
        else if (c == OPT_LIST) list = 1;
        else if (c == OPT_MARKDOWN) markdown = 1;
        else {
            const char *name = options[index].name;
            if (cli_shape_option(prog, &shape_options, name, optarg)) continue;
            if (strcmp(name, "kind") == 0) kind_name = optarg;
            else if (strcmp(name, "backend") == 0) backend = optarg;
            else if (strcmp(name, "arch") == 0) arch = optarg;
            else if (strcmp(name, "device") == 0) device = (int)cli_parse_int(prog, "--device", optarg, 0, 1023);
            else if (strcmp(name, "param") == 0) {
                if (param_count == 64) cli_usage_error(prog, "--param: at most 64");
                params[param_count++] = optarg;
            }
        }
    }
    if (optind < argc) cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);

    if (markdown && !list) cli_usage_error(prog, "--markdown: only with --list-params");
    if (markdown) {
        list_markdown();
        return 0;
    }
    mora_kind kind;
    if (mora_kind_from_string_any(kind_name, &kind) != MORA_OK) cli_usage_error(prog, "--kind: %s", mora_last_error());
    mora_dialect dialect;
    if (mora_dialect_of_backend(backend, &dialect) != MORA_OK)
        cli_usage_error(prog, "--backend=%s: expected opencl, cuda, hip or cpu", backend);
    if (list) {
        list_params(mora_kind_decl_get(kind, dialect), dialect);
        return 0;
    }
    if (arch && dialect != MORA_DIALECT_CUDA && dialect != MORA_DIALECT_HIP)
        cli_usage_error(prog, "--arch: only for --backend cuda or hip");
    if (check && dialect == MORA_DIALECT_HOST)
        cli_usage_error(prog, "--check: the cpu backend compiles nothing (its source configures built-in kernels)");
    mora_shape shape;
    mora_dtype dtype = MORA_F32;
    if (kind != MORA_KIND_ADAMW) cli_shape_resolve(prog, &shape_options, &shape, &dtype);

    mora_kernel_spec spec = kind == MORA_KIND_ADAMW ? mora_spec_adamw(dialect) : mora_spec_default(&shape, dtype, kind, dialect);
    for (int i = 0; i < param_count; ++i) {
        const char *eq = strchr(params[i], '=');
        if (!eq || eq == params[i]) cli_usage_error(prog, "--param %s: expected NAME=VALUE", params[i]);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(eq - params[i]), params[i]);
        const int64_t value = cli_parse_int(prog, "--param", eq + 1, 0, 1 << 20); /* no tile is larger; mora_spec_check says which are valid */
        if (mora_spec_set_param(&spec, name, (int)value) != MORA_OK) cli_usage_error(prog, "%s", mora_last_error());
    }
    if (mora_spec_check(&spec, 0, 0) != MORA_OK) cli_usage_error(prog, "%s", mora_last_error());

    char *source = NULL;
    if (mora_codegen(&spec, &source) != MORA_OK) {
        fprintf(stderr, "%s: %s\n", prog, mora_last_error());
        return 1;
    }
    int status = 0;
    if (check) {
        if (dialect == MORA_DIALECT_OPENCL) status = check_opencl(&spec, source, device);
        else status = check_offline(&spec, source, arch ? arch : dialect == MORA_DIALECT_CUDA ? "sm_90" : "gfx90a");
    }
    if (!check || output) {
        FILE *out = output ? fopen(output, "w") : stdout;
        if (!out) {
            fprintf(stderr, "%s: --output=%s: cannot open for writing\n", prog, output);
            free(source);
            return 1;
        }
        fputs(source, out);
        if (output) fclose(out);
    }
    free(source);
    return status;
}
