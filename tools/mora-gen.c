/* mora-gen — show, and optionally compile, the kernel source libmora generates for one spec.
 *
 *   mora-gen --dims 4096 --rank 8 --op rope --kind fwd --dtype bf16 --backend opencl
 *   mora-gen --dims 4096 --rank 8 --kind bwd_dm --backend cuda --arch sm_90 --check
 *
 * Prints the source to stdout (or --output FILE). With --check it compiles the source with the
 * backend's compiler — OpenCL on the first OpenCL device, CUDA through NVRTC and HIP through hiprtc
 * for a named target without any GPU — and prints the build result and resource report instead. */
#define _GNU_SOURCE
#include <getopt.h>
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
            "  --kind NAME       fwd, bwd_dx, bwd_dm or merge (default fwd)\n"
            "  --backend NAME    opencl, cuda or hip: the dialect to generate (default opencl)\n"
            "  --param NAME=V    set a tuning parameter (repeatable), e.g. --param FWD_TM=64;\n"
            "                    --list-params shows the kind's parameters and defaults\n"
            "  --list-params     print the kind's parameters, defaults and tuner values, then exit\n\n"
            "Output:\n"
            "  --check           compile the source and print the result and resource report\n"
            "  --arch TARGET     with --check for cuda/hip: sm_80, sm_90, gfx90a, gfx942 (default sm_90 / gfx90a)\n"
            "  --device N        with --check for opencl: device index (default 0)\n"
            "  -o, --output FILE write the source to FILE instead of stdout\n"
            "  -h, --help        this text\n\n"
            "Exit status: 0 success, 1 generation or compilation failed, 2 usage error.\n",
            cli_shape_help);
}

static void list_params(const mora_kind_decl *d) {
    printf("kind %s (template %s), entry points:", d->name, d->template_name);
    for (int e = 0; e < d->entry_count; ++e) printf(" %s", d->entries[e]);
    printf("\n%-14s %8s  %-22s %s\n", "parameter", "default", "tuner values", "meaning");
    for (int i = 0; i < d->param_count; ++i) {
        char values[64] = "";
        for (int v = 0; v < d->params[i].value_count; ++v) {
            char one[16];
            snprintf(one, sizeof one, v ? ",%d" : "%d", d->params[i].values[v]);
            strncat(values, one, sizeof values - strlen(values) - 1);
        }
        printf("%-14s %8d  %-22s %s\n", d->params[i].name, d->params[i].default_value, values, d->params[i].comment);
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
    const mora_kind_decl *d = mora_kind_decl_get(spec->kind);
    printf("compiled for OpenCL device \"%s\" (%s)\n", ctx->info.name, ctx->info.compiler_version);
    printf("%-22s %10s %12s\n", "entry", "work-items", "local bytes");
    for (int e = 0; e < d->entry_count; ++e)
        printf("%-22s %10zu %12zu\n", d->entries[e], mora_spec_threads(spec, e), mora_spec_local_bytes(spec, e));
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
    int param_count = 0, check = 0, list = 0, device = 0;
    enum { OPT_CHECK = 256, OPT_LIST };
    static const struct option options[] = {
        {"dims", required_argument, 0, 0},     {"dims-out", required_argument, 0, 0},
        {"rank", required_argument, 0, 0},     {"rhat", required_argument, 0, 0},
        {"op", required_argument, 0, 0},       {"dtype", required_argument, 0, 0},
        {"kind", required_argument, 0, 0},     {"backend", required_argument, 0, 0},
        {"param", required_argument, 0, 0},    {"arch", required_argument, 0, 0},
        {"device", required_argument, 0, 0},   {"output", required_argument, 0, 'o'},
        {"check", no_argument, 0, OPT_CHECK},  {"list-params", no_argument, 0, OPT_LIST},
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

    mora_kind kind;
    if (mora_kind_from_string(kind_name, &kind) != MORA_OK) cli_usage_error(prog, "--kind: %s", mora_last_error());
    if (list) {
        list_params(mora_kind_decl_get(kind));
        return 0;
    }
    mora_dialect dialect;
    if (mora_dialect_from_string(backend, &dialect) != MORA_OK)
        cli_usage_error(prog, "--backend=%s: expected opencl, cuda or hip", backend);
    if (arch && dialect == MORA_DIALECT_OPENCL) cli_usage_error(prog, "--arch: only for --backend cuda or hip");
    mora_shape shape;
    mora_dtype dtype;
    cli_shape_resolve(prog, &shape_options, &shape, &dtype);

    mora_kernel_spec spec = mora_spec_default(&shape, dtype, kind, dialect);
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
