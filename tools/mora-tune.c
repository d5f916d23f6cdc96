/* mora-tune — tune every kernel kind of one MoRA layer shape on this machine's device and keep the
 * winners in the kernels cache, where every later mora_plan_create finds them.
 *
 *   mora-tune --dims 4096 --rank 256                  (d_in = d_out = 4096, r̂ = 1448, op share)
 *   mora-tune --dims 4096 --dims-out 11008 --rank 8 --dtype bf16 --budget 120
 *
 * Shows progress on stderr while it works (one updating line on a terminal, plain lines otherwise),
 * then prints a table per kind on stdout: default time, tuned time, speedup, chosen parameters,
 * rejected and failed candidates. A second run with the same arguments answers from the cache. */
#define _GNU_SOURCE
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "clock.h"
/* internal headers: the tuner and the kernels cache have no public API yet (mora.h offers only
 * mora_plan_autotune, without progress, budgets per kind or the report this tool prints) */
#include "context.h"
#include "programs.h"
#include "tuner.h"

static const char *const prog = "mora-tune";

static void usage(FILE *out) {
    fprintf(out,
            "Usage: mora-tune --dims N (--rank R | --rhat R) [options]\n"
            "Tunes the fwd, bwd_dx, bwd_dm and merge kernels of one layer shape on this device: every\n"
            "candidate is checked against the float64 reference before it is timed, and the winners are\n"
            "stored in the kernels cache, where libmora's plans find them.\n\n"
            "Shape (--dims and --rank or --rhat are required):\n%s\n"
            "Tuning:\n"
            "  --tokens N            tokens to time with (default: 8192 on a GPU, 256 on a CPU device)\n"
            "  --kinds LIST          comma-separated subset of fwd,bwd_dx,bwd_dm,merge (default all)\n"
            "  --budget SECONDS      wall time for the whole run (default 60, at most 86400)\n"
            "  --max-candidates N    candidates per kind at most (default 48)\n"
            "  --seed N              seed of the random sampling (default 1)\n"
            "  --max-spread X        a winner whose timings stay spread wider than X (interquartile range\n"
            "                        over median) after a second, longer measurement is not stored: the\n"
            "                        defaults are kept (default 0.25; a loaded machine ranks by noise)\n"
            "  --compile-threads N   candidates compiled in parallel (default: the number of CPU cores; 1 on Oclgrind)\n"
            "  --force               tune again even when the cache has the answer\n"
            "  --retune-noisy        tune again the kinds whose record was measured while other processes\n"
            "                        kept more than %.0f%% of the cores busy, if the machine is quieter now\n"
            "  --backend NAME        auto, opencl, cuda, hip or cpu (default auto: cuda, hip, opencl on a\n"
            "                        device other than the host's CPU, then cpu; on cpu the tuned\n"
            "                        parameters are the host kernels' rows per tile and threads)\n"
            "  --device N            device index within the backend (default 0)\n"
            "  --cache-dir DIR       kernels cache location (default: $MORA_CACHE_DIR, $XDG_CACHE_HOME/mora,\n"
            "                        ~/.cache/mora; MORA_CACHE_DIR=off disables it)\n\n"
            "Output:\n"
            "  --json                print the results as JSON instead of a table\n"
            "  --quiet               no progress\n"
            "  -h, --help            this text\n\n"
            "Exit status: 0 success, 1 tuning failed (no backend, no valid candidate), 2 usage error.\n",
            cli_shape_help, 100.0 * MORA_TUNE_LOADED);
}

typedef struct progress_state {
    int terminal, quiet;
    double start;
} progress_state;


static void on_progress(const mora_tune_progress *p, void *user) {
    progress_state *st = user;
    if (st->quiet) return;
    const char *kind = mora_kind_name(p->kind);
    char params[160] = "";
    if (p->spec) cli_format_params(p->spec, params, sizeof params);
    const double t = mora_clock_seconds() - st->start;
    switch (p->event) {
    case MORA_TUNE_CACHED:
        fprintf(stderr, "%s[%6.1fs] %-6s answered from the cache: %.4g ms (%s)\n", st->terminal ? "\r\033[K" : "", t,
                kind, p->ms, params);
        break;
    case MORA_TUNE_START:
        fprintf(stderr, "%s[%6.1fs] %-6s tuning: %d candidates planned\n", st->terminal ? "\r\033[K" : "", t, kind, p->total);
        break;
    case MORA_TUNE_TIMED:
    case MORA_TUNE_REJECTED:
    case MORA_TUNE_FAILED: {
        char best[32] = "none yet";
        if (p->best_ms >= 0) snprintf(best, sizeof best, "%.4g ms", p->best_ms);
        char what[96];
        if (p->event == MORA_TUNE_TIMED) snprintf(what, sizeof what, "%.4g ms", p->ms);
        else snprintf(what, sizeof what, "%s", p->event == MORA_TUNE_REJECTED ? "REJECTED (wrong result)" : "FAILED");
        if (st->terminal)
            fprintf(stderr, "\r\033[K[%6.1fs] %-6s candidate %d of %d: %s, best %s", t, kind, p->index + 1, p->total, what, best);
        else
            fprintf(stderr, "[%6.1fs] %-6s candidate %d of %d: %s, best %s (%s)\n", t, kind, p->index + 1, p->total, what,
                    best, params);
        if (p->event != MORA_TUNE_TIMED && p->message && !st->terminal) fprintf(stderr, "          %s\n", p->message);
        break;
    }
    case MORA_TUNE_DONE:
        fprintf(stderr, "%s[%6.1fs] %-6s done: %d candidates, best %.4g ms (%s)\n", st->terminal ? "\r\033[K" : "", t, kind,
                p->index, p->ms, params);
        break;
    }
    fflush(stderr);
}

static void on_log(mora_log_level level, const char *message, void *user) {
    (void)user;
    fprintf(stderr, "%s: %s: %s\n", prog, level == MORA_LOG_WARNING ? "warning" : "note", message);
}

static unsigned parse_kinds(const char *list) {
    unsigned mask = 0;
    char copy[256];
    snprintf(copy, sizeof copy, "%s", list);
    for (char *save = NULL, *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        mora_kind kind;
        if (mora_kind_from_string(item, &kind) != MORA_OK) cli_usage_error(prog, "--kinds: %s", mora_last_error());
        mask |= 1u << kind;
    }
    if (!mask) cli_usage_error(prog, "--kinds=%s: names no kind", list);
    return mask;
}

static const char *source_name(const mora_tune_result *r) {
    return r->from_cache ? "cache" : r->noisy ? "noisy" : r->retuned ? "retune" : "tuned";
}

static void print_table(const mora_context *ctx, const mora_shape *s, mora_dtype dtype, int64_t tokens,
                        const mora_tune_result *results, const mora_cache *cache, double seconds) {
    printf("\nmora-tune: %lld → %lld, r̂ = %lld, op %s, %s, %lld tokens, on %s \"%s\" (%.1f s)\n", (long long)s->d_in,
           (long long)s->d_out, (long long)s->rhat, mora_op_name(s->op), mora_dtype_name(dtype), (long long)tokens,
           mora_context_backend(ctx), mora_context_device_name(ctx), seconds);
    printf("kernels cache: %s\n\n", cache && mora_cache_enabled(cache) ? mora_cache_dir(cache) : "disabled");
    printf("%-7s %12s %12s %8s %6s %9s %7s %5s  %-6s  %s\n", "kind", "default ms", "tuned ms", "speedup", "tried",
           "rejected", "failed", "load", "source", "parameters");
    for (int k = 0; k < MORA_KIND_COUNT; ++k) {
        const mora_tune_result *r = &results[k];
        if (!r->requested) continue;
        char params[200], def[24] = "-", speed[16] = "-";
        cli_format_params(&r->best, params, sizeof params);
        if (r->default_ms >= 0) snprintf(def, sizeof def, "%.4g", r->default_ms);
        if (r->default_ms > 0 && r->best_ms > 0) snprintf(speed, sizeof speed, "%.2fx", r->default_ms / r->best_ms);
        char load[16] = "-";
        if (isfinite(r->load)) snprintf(load, sizeof load, "%.0f%%", 100.0 * r->load);
        printf("%-7s %12s %12.4g %8s %6d %9d %7d %5s  %-6s  %s\n", mora_kind_name((mora_kind)k), def, r->best_ms, speed,
               r->candidates, r->rejected, r->failed, load, source_name(r), params);
    }
    printf("(load: the share of the cores other processes kept busy while the kind was measured)\n");
    for (int k = 0; k < MORA_KIND_COUNT; ++k) {
        const mora_tune_result *r = &results[k];
        if (r->requested && r->loaded && !r->noisy && !r->kept_loaded)
            printf("  %s: measured under load (%.0f%% of the cores busy elsewhere): the record says so; run "
                   "`mora-tune --retune-noisy` with the same shape on a quieter machine\n",
                   mora_kind_name((mora_kind)k), 100.0 * r->load);
        if (r->kept_loaded)
            printf("  %s: its record was measured under load (%.0f%%), and the machine is no quieter now: kept\n",
                   mora_kind_name((mora_kind)k), 100.0 * r->load);
    }
    for (int k = 0; k < MORA_KIND_COUNT; ++k)
        if (results[k].requested && !results[k].from_cache && (results[k].rejected || results[k].failed))
            printf("  %s: last rejection or failure: %s\n", mora_kind_name((mora_kind)k), results[k].last_failure);
    for (int k = 0; k < MORA_KIND_COUNT; ++k)
        if (results[k].noisy)
            printf("  %s: the measurements stayed too noisy to rank (spread %.0f%%): the defaults are kept and nothing "
                   "was stored; run again on a quieter machine\n",
                   mora_kind_name((mora_kind)k), 100.0 * results[k].best_spread);
}

/* A JSON string literal (device names come from drivers: quotes and control characters escaped). */
static void json_string(const char *text) {
    putchar('"');
    for (const unsigned char *c = (const unsigned char *)text; *c; ++c) {
        if (*c == '"' || *c == '\\') printf("\\%c", *c);
        else if (*c < 0x20) printf("\\u%04x", *c);
        else putchar(*c);
    }
    putchar('"');
}

static void print_json(const mora_context *ctx, const mora_shape *s, mora_dtype dtype, int64_t tokens,
                       const mora_tune_result *results, double seconds) {
    char when[32];
    const time_t now = time(NULL);
    struct tm utc;
    gmtime_r(&now, &utc);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
    printf("{\n  \"backend\": ");
    json_string(mora_context_backend(ctx));
    printf(",\n  \"device\": ");
    json_string(mora_context_device_name(ctx));
    printf(",\n  \"vendor\": ");
    json_string(ctx->info.vendor);
    printf(",\n  \"arch\": ");
    json_string(ctx->info.arch);
    printf(",\n  \"library\": ");
    json_string(mora_version());
    printf(",\n  \"tuned_at\": \"%s\",\n  \"d_in\": %lld,\n  \"d_out\": %lld,\n  \"rhat\": %lld,\n"
           "  \"op\": \"%s\",\n  \"dtype\": \"%s\",\n  \"tokens\": %lld,\n  \"seconds\": %.3f,\n  \"kinds\": [",
           when, (long long)s->d_in, (long long)s->d_out, (long long)s->rhat, mora_op_name(s->op), mora_dtype_name(dtype),
           (long long)tokens, seconds);
    int first = 1;
    for (int k = 0; k < MORA_KIND_COUNT; ++k) {
        const mora_tune_result *r = &results[k];
        if (!r->requested) continue;
        const mora_kind_decl *d = mora_spec_decl(&r->best);
        char load[24] = "null";
        if (isfinite(r->load)) snprintf(load, sizeof load, "%.4g", r->load);
        printf("%s\n    {\"kind\": \"%s\", \"source\": \"%s\", \"default_ms\": %.6g, \"tuned_ms\": %.6g, \"spread\": %.4g, "
               "\"load\": %s, \"loaded\": %s, \"candidates\": %d, \"rejected\": %d, \"failed\": %d, \"space\": %d, "
               "\"params\": {",
               first ? "" : ",", d->name, source_name(r), r->default_ms, r->best_ms, r->best_spread, load,
               r->loaded ? "true" : "false", r->candidates, r->rejected, r->failed, r->space_size);
        for (int i = 0; i < d->param_count; ++i) printf("%s\"%s\": %d", i ? ", " : "", d->params[i].name, r->best.params[i]);
        printf("}}");
        first = 0;
    }
    printf("\n  ]\n}\n");
}

int main(int argc, char **argv) {
    cli_shape_options shape_options = {0};
    mora_tune_options options = {0};
    const char *backend = "auto", *cache_dir = NULL;
    int device = 0, json = 0, quiet = 0;
    enum { OPT_FORCE = 256, OPT_JSON, OPT_QUIET, OPT_RETUNE_NOISY };
    static const struct option long_options[] = {
        {"dims", required_argument, 0, 0},   {"dims-out", required_argument, 0, 0},
        {"rank", required_argument, 0, 0},   {"rhat", required_argument, 0, 0},
        {"op", required_argument, 0, 0},     {"dtype", required_argument, 0, 0},
        {"tokens", required_argument, 0, 0}, {"kinds", required_argument, 0, 0},
        {"budget", required_argument, 0, 0}, {"max-candidates", required_argument, 0, 0},
        {"seed", required_argument, 0, 0},   {"backend", required_argument, 0, 0},
        {"device", required_argument, 0, 0}, {"cache-dir", required_argument, 0, 0},
        {"max-spread", required_argument, 0, 0}, {"compile-threads", required_argument, 0, 0},
        {"force", no_argument, 0, OPT_FORCE}, {"json", no_argument, 0, OPT_JSON},
        {"retune-noisy", no_argument, 0, OPT_RETUNE_NOISY},
        {"quiet", no_argument, 0, OPT_QUIET}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    opterr = 0;
    for (;;) {
        int index = 0;
        const int c = getopt_long(argc, argv, "h", long_options, &index);
        if (c == -1) break;
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == '?') cli_usage_error(prog, "unknown or incomplete option '%s'", argv[optind - 1]);
        if (c == OPT_FORCE) options.force = 1;
        else if (c == OPT_JSON) json = 1;
        else if (c == OPT_RETUNE_NOISY) options.retune_noisy = 1;
        else if (c == OPT_QUIET) quiet = 1;
        else {
            const char *name = long_options[index].name;
            if (cli_shape_option(prog, &shape_options, name, optarg)) continue;
            if (strcmp(name, "tokens") == 0) options.tokens = cli_parse_int(prog, "--tokens", optarg, 1, CLI_MAX_TOKENS);
            else if (strcmp(name, "kinds") == 0) options.kinds = parse_kinds(optarg);
            else if (strcmp(name, "budget") == 0) options.budget_seconds = cli_parse_number(prog, "--budget", optarg, 0.001,
                                                                                           MORA_TUNE_MAX_BUDGET_SECONDS);
            else if (strcmp(name, "max-candidates") == 0)
                options.max_candidates = (int)cli_parse_int(prog, "--max-candidates", optarg, 1, 100000);
            else if (strcmp(name, "seed") == 0) options.seed = (uint64_t)cli_parse_int(prog, "--seed", optarg, 0, INT64_MAX);
            else if (strcmp(name, "backend") == 0) backend = optarg;
            else if (strcmp(name, "device") == 0) device = (int)cli_parse_int(prog, "--device", optarg, 0, 1023);
            else if (strcmp(name, "cache-dir") == 0) cache_dir = optarg;
            else if (strcmp(name, "max-spread") == 0)
                options.max_spread = cli_parse_number(prog, "--max-spread", optarg, 0.001, 1e6);
            else if (strcmp(name, "compile-threads") == 0)
                options.compile_threads = (int)cli_parse_int(prog, "--compile-threads", optarg, 1, 1024);
        }
    }
    if (optind < argc) cli_usage_error(prog, "unexpected argument '%s'", argv[optind]);
    const char *backends[] = {"auto", "opencl", "cuda", "hip", "cpu"};
    int known = 0;
    for (size_t i = 0; i < 5; ++i) known |= strcmp(backend, backends[i]) == 0;
    if (!known) cli_usage_error(prog, "--backend=%s: expected auto, opencl, cuda, hip or cpu", backend);
    mora_shape shape;
    mora_dtype dtype;
    cli_shape_resolve(prog, &shape_options, &shape, &dtype);

    mora_set_log_callback(on_log, NULL);
    mora_context *ctx = NULL;
    if (mora_context_create(backend, device, &ctx) != MORA_OK) {
        fprintf(stderr, "%s: %s\n", prog, mora_last_error());
        return 1;
    }
    mora_cache *cache = NULL;
    if (cache_dir) {
        if (mora_cache_open(cache_dir, &cache) != MORA_OK) {
            fprintf(stderr, "%s: --cache-dir=%s: %s\n", prog, cache_dir, mora_last_error());
            mora_context_destroy(ctx);
            return 1;
        }
        options.cache = cache;
    } else {
        cache = mora_context_cache(ctx);
    }
    const int64_t tokens = options.tokens ? options.tokens : mora_default_tune_tokens(ctx);
    progress_state ps = {isatty(STDERR_FILENO), quiet || json, mora_clock_seconds()};
    options.progress = on_progress;
    options.progress_user = &ps;
    if (!ps.quiet)
        fprintf(stderr, "%s: tuning d_in=%lld d_out=%lld r̂=%lld op=%s dtype=%s with %lld tokens on %s \"%s\", budget %.0f s\n",
                prog, (long long)shape.d_in, (long long)shape.d_out, (long long)shape.rhat, mora_op_name(shape.op),
                mora_dtype_name(dtype), (long long)tokens, mora_context_backend(ctx), mora_context_device_name(ctx),
                options.budget_seconds > 0 ? options.budget_seconds : 60.0);

    mora_tune_result results[MORA_KIND_COUNT];
    const mora_status st = mora_tune(ctx, &shape, dtype, &options, results);
    const double seconds = mora_clock_seconds() - ps.start;
    if (st != MORA_OK) {
        fprintf(stderr, "%s: tuning failed: %s\n", prog, mora_last_error());
    } else {
        int all_cached = 1;
        for (int k = 0; k < MORA_KIND_COUNT; ++k) all_cached &= !results[k].requested || results[k].from_cache;
        if (json) print_json(ctx, &shape, dtype, tokens, results, seconds);
        else {
            print_table(ctx, &shape, dtype, tokens, results, cache, seconds);
            if (all_cached) printf("\nEvery kind was answered from the kernels cache (use --force to tune again).\n");
        }
    }
    if (cache_dir) mora_cache_close(cache);
    mora_context_destroy(ctx);
    return st == MORA_OK ? 0 : 1;
}
