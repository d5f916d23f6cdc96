/* mora-bench's outputs: the terminal table, JSON, CSV, the Markdown report and the gnuplot plot,
 * plus the numbers derived from a measurement (GFLOP/s, GB/s, % of roofline, ratios). */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

static const char *const variant_names[BENCH_VARIANT_COUNT] = {"tuned", "default", "naive", "passes", "gemm"};
static const char *const variant_descriptions[BENCH_VARIANT_COUNT] = {
    "libmora, with the parameters a plan picks (kernels cache, then the shipped database, then the defaults)",
    "libmora with the declared default parameters (untuned)",
    "naive generated kernel (templates/naive.kern): one work-item per output element, no tiling, no local memory",
    "vendor BLAS on the reshaped GEMM plus separate passes for compression, rotation and decompression "
    "(float32 host arrays; what a user writes without libmora)",
    "the vendor BLAS's bare GEMM of the same multiply-adds (no compression or decompression): the practical ceiling",
};

const char *bench_variant_name(bench_variant v) {
    return (int)v >= 0 && v < BENCH_VARIANT_COUNT ? variant_names[v] : "unknown";
}
const char *bench_variant_description(bench_variant v) {
    return (int)v >= 0 && v < BENCH_VARIANT_COUNT ? variant_descriptions[v] : "";
}

double bench_gflops(const bench_kind_result *k, bench_variant v) {
    return k->m[v].ok && k->m[v].ms > 0 ? k->flops / (k->m[v].ms * 1e6) : -1.0;
}
double bench_gbs(const bench_kind_result *k, bench_variant v) {
    return k->m[v].ok && k->m[v].ms > 0 ? k->bytes / (k->m[v].ms * 1e6) : -1.0;
}
double bench_roofline_ms(const bench_run *run, const bench_kind_result *k) {
    double ms = -1.0;
    if (run->roof.peak_gflops > 0) ms = k->flops / (run->roof.peak_gflops * 1e6);
    if (run->roof.bandwidth_gbs > 0) {
        const double mem = k->bytes / (run->roof.bandwidth_gbs * 1e6);
        if (mem > ms) ms = mem;
    }
    return ms;
}
double bench_roofline_pct(const bench_run *run, const bench_kind_result *k, bench_variant v) {
    const double floor_ms = bench_roofline_ms(run, k);
    return k->m[v].ok && k->m[v].ms > 0 && floor_ms > 0 ? 100.0 * floor_ms / k->m[v].ms : -1.0;
}
double bench_ratio(const bench_kind_result *k, bench_variant v) {
    const bench_measure *t = &k->m[BENCH_TUNED], *b = &k->m[v];
    return t->ok && b->ok && t->ms > 0 && b->ms > 0 ? b->ms / t->ms : -1.0;
}

/* what bounds the kind on this device: "compute" or "memory" */
static const char *bound_of(const bench_run *run, const bench_kind_result *k) {
    if (run->roof.peak_gflops <= 0 || run->roof.bandwidth_gbs <= 0) return "?";
    return k->flops / run->roof.peak_gflops >= k->bytes / run->roof.bandwidth_gbs ? "compute" : "memory";
}

static void fmt_num(char *out, size_t size, const char *fmt, double v) {
    if (v < 0 || !isfinite(v)) snprintf(out, size, "-");
    else snprintf(out, size, fmt, v);
}

/* ---- terminal table ---- */

static void print_roofline(FILE *f, const bench_run *run, const char *bullet) {
    const bench_roofline *r = &run->roof;
    char a[32], b[32];
    fmt_num(a, sizeof a, "%.1f", r->copy_gbs);
    fmt_num(b, sizeof b, "%.1f", r->copy_kernel_gbs);
    fprintf(f, "%sbandwidth %.1f GB/s (%s; buffer copy %s, copy kernel %s GB/s, over %zu MiB, bytes read + written)\n",
            bullet, r->bandwidth_gbs, r->bandwidth_source, a, b, r->copy_bytes >> 20);
    char c[32];
    fmt_num(a, sizeof a, "%.1f", r->blas_gflops);
    fmt_num(b, sizeof b, "%.1f", r->fma_gflops);
    fmt_num(c, sizeof c, "%.1f", r->fma_scalar_gflops);
    fprintf(f, "%speak %.1f GFLOP/s (%s; BLAS SGEMM %d³ %s, FMA kernel %s, of which scalar %s GFLOP/s)\n", bullet,
            r->peak_gflops, r->peak_source, r->gemm_size, a, b, c);
    if (r->notes[0]) fprintf(f, "%snotes: %s\n", bullet, r->notes);
}

void bench_print_table(const bench_run *run) {
    printf("\nmora-bench: %s \"%s\" (%d compute units), %.1f s\n", run->backend, run->device, run->compute_units,
           run->seconds);
    print_roofline(stdout, run, "  ");
    printf("  tuned speedup = the row's time / the tuned time (> 1: libmora is faster); check = relative error\n"
           "  against the float64 reference; %% roof = min-time / time, min-time = max(FLOPs/peak, bytes/bandwidth)\n");
    for (int i = 0; i < run->shape_count; ++i) {
        const bench_shape_result *s = &run->shapes[i];
        printf("\n%s, %s, %lld tokens\n", s->label, mora_dtype_name(s->dtype), (long long)s->tokens);
        printf("%-7s %-8s %10s %6s %9s %8s %7s %8s %8s  %s\n", "kind", "variant", "ms", "±%", "GFLOP/s", "GB/s", "% roof",
               "speedup", "check", "note");
        for (int k = 0; k < MORA_KIND_COUNT; ++k) {
            const bench_kind_result *kr = &s->kinds[k];
            if (!kr->requested) continue;
            for (int v = 0; v < BENCH_VARIANT_COUNT; ++v) {
                const bench_measure *m = &kr->m[v];
                if (!m->ok && strcmp(m->note, "not requested") == 0) continue;
                char ms[24], sp[16], gf[16], gb[16], roof[16], ratio[16], check[16];
                fmt_num(ms, sizeof ms, "%.4g", m->ok ? m->ms : -1.0);
                fmt_num(sp, sizeof sp, "%.1f", m->ok ? 100.0 * m->spread : -1.0);
                fmt_num(gf, sizeof gf, "%.1f", bench_gflops(kr, (bench_variant)v));
                fmt_num(gb, sizeof gb, "%.1f", bench_gbs(kr, (bench_variant)v));
                fmt_num(roof, sizeof roof, "%.1f%%", bench_roofline_pct(run, kr, (bench_variant)v));
                fmt_num(ratio, sizeof ratio, "%.2fx", v == BENCH_TUNED ? -1.0 : bench_ratio(kr, (bench_variant)v));
                fmt_num(check, sizeof check, "%.1e", m->rel_error);
                char note[260];
                if (v == BENCH_TUNED && strcmp(kr->param_source, "-") == 0)
                    snprintf(note, sizeof note, "%s%s", kr->params, m->note[0] ? " — " : "");
                else if (v == BENCH_TUNED)
                    snprintf(note, sizeof note, "%s: %s%s", kr->param_source, kr->params, m->note[0] ? " — " : "");
                else
                    note[0] = '\0';
                strncat(note, m->note, sizeof note - strlen(note) - 1);
                printf("%-7s %-8s %10s %6s %9s %8s %7s %8s %8s  %s\n", v == 0 ? mora_kind_name((mora_kind)k) : "",
                       variant_names[v], ms, sp, gf, gb, roof, ratio, check, note);
            }
        }
    }
    fflush(stdout);
}

/* ---- JSON ---- */

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; ++c) {
        if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
        else if (*c == '\n') fputs("\\n", f);
        else if (*c < 0x20) fprintf(f, "\\u%04x", *c);
        else fputc(*c, f);
    }
    fputc('"', f);
}

static void json_number(FILE *f, double v) {
    if (v < 0 || !isfinite(v)) fputs("null", f);
    else fprintf(f, "%.6g", v);
}

static int close_file(FILE *f, const char *path) {
    const int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        fprintf(stderr, "mora-bench: writing %s failed\n", path);
        return 1;
    }
    return 0;
}

static FILE *open_output(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) perror(path);
    return f;
}

int bench_write_json(const bench_run *run, const char *path) {
    FILE *f = open_output(path);
    if (!f) return 1;
    const bench_roofline *r = &run->roof;
    fprintf(f, "{\n  \"tool\": \"mora-bench\",\n  \"library_version\": \"%s\",\n  \"command\": ", MORA_VERSION_STRING);
    json_string(f, run->command_line);
    fprintf(f, ",\n  \"date\": \"%s\",\n  \"commit\": ", run->date);
    json_string(f, run->commit);
    fprintf(f, ",\n  \"machine\": {\"uname\": ");
    json_string(f, run->uname);
    fprintf(f, ", \"cpu\": ");
    json_string(f, run->cpu_model);
    fprintf(f, ", \"cores\": %d},\n  \"backend\": \"%s\",\n  \"device\": {\"name\": ", run->cpu_cores, run->backend);
    json_string(f, run->device);
    fprintf(f, ", \"vendor\": ");
    json_string(f, run->device_vendor);
    fprintf(f, ", \"driver\": ");
    json_string(f, run->device_driver);
    fprintf(f, ", \"compute_units\": %d, \"is_cpu\": %s},\n  \"blas\": ", run->compute_units, run->device_is_cpu ? "true" : "false");
    if (run->blas_name) json_string(f, run->blas_name);
    else fputs("null", f);
    fprintf(f, ",\n  \"settings\": {\"budget_ms\": %.6g, \"min_reps\": %d, \"verify_tokens\": %lld},\n", run->budget_ms,
            run->min_reps, (long long)run->verify_tokens);
    fprintf(f, "  \"roofline\": {\"bandwidth_gbs\": ");
    json_number(f, r->bandwidth_gbs);
    fprintf(f, ", \"bandwidth_source\": \"%s\", \"copy_gbs\": ", r->bandwidth_source);
    json_number(f, r->copy_gbs);
    fprintf(f, ", \"copy_kernel_gbs\": ");
    json_number(f, r->copy_kernel_gbs);
    fprintf(f, ", \"copy_bytes\": %zu, \"peak_gflops\": ", r->copy_bytes);
    json_number(f, r->peak_gflops);
    fprintf(f, ", \"peak_source\": \"%s\", \"blas_sgemm_gflops\": ", r->peak_source);
    json_number(f, r->blas_gflops);
    fprintf(f, ", \"sgemm_size\": %d, \"fma_kernel_gflops\": ", r->gemm_size);
    json_number(f, r->fma_gflops);
    fprintf(f, ", \"fma_scalar_kernel_gflops\": ");
    json_number(f, r->fma_scalar_gflops);
    fprintf(f, ", \"notes\": ");
    json_string(f, r->notes);
    fprintf(f, "},\n  \"seconds\": %.3f,\n  \"shapes\": [", run->seconds);
    for (int i = 0; i < run->shape_count; ++i) {
        const bench_shape_result *s = &run->shapes[i];
        fprintf(f, "%s\n    {\"label\": ", i ? "," : "");
        json_string(f, s->label);
        fprintf(f, ", \"d_in\": %lld, \"d_out\": %lld, \"rhat\": %lld, \"op\": \"%s\", \"dtype\": \"%s\", \"tokens\": %lld,\n"
                   "     \"kinds\": [",
                (long long)s->shape.d_in, (long long)s->shape.d_out, (long long)s->shape.rhat, mora_op_name(s->shape.op),
                mora_dtype_name(s->dtype), (long long)s->tokens);
        int first = 1;
        for (int k = 0; k < MORA_KIND_COUNT; ++k) {
            const bench_kind_result *kr = &s->kinds[k];
            if (!kr->requested) continue;
            fprintf(f, "%s\n       {\"kind\": \"%s\", \"flops\": %.6g, \"bytes\": %.6g, \"bound\": \"%s\", \"min_ms\": ",
                    first ? "" : ",", mora_kind_name(kr->kind), kr->flops, kr->bytes, bound_of(run, kr));
            first = 0;
            json_number(f, bench_roofline_ms(run, kr));
            fprintf(f, ", \"param_source\": ");
            json_string(f, kr->param_source);
            fprintf(f, ", \"params\": ");
            json_string(f, kr->params);
            fprintf(f, ",\n        \"results\": {");
            for (int v = 0; v < BENCH_VARIANT_COUNT; ++v) {
                const bench_measure *m = &kr->m[v];
                fprintf(f, "%s\n          \"%s\": {\"ok\": %s, \"ms\": ", v ? "," : "", variant_names[v], m->ok ? "true" : "false");
                json_number(f, m->ok ? m->ms : -1.0);
                fprintf(f, ", \"spread\": ");
                json_number(f, m->ok ? m->spread : -1.0);
                fprintf(f, ", \"reps\": %d, \"gflops\": ", m->ok ? m->reps : 0);
                json_number(f, bench_gflops(kr, (bench_variant)v));
                fprintf(f, ", \"gbs\": ");
                json_number(f, bench_gbs(kr, (bench_variant)v));
                fprintf(f, ", \"roofline_pct\": ");
                json_number(f, bench_roofline_pct(run, kr, (bench_variant)v));
                fprintf(f, ", \"rel_error\": ");
                json_number(f, m->rel_error);
                fprintf(f, ", \"note\": ");
                json_string(f, m->note);
                fputc('}', f);
            }
            /* baseline time / tuned time: > 1 means libmora is faster */
            fprintf(f, "},\n        \"ratios\": {");
            for (int v = 1; v < BENCH_VARIANT_COUNT; ++v) {
                fprintf(f, "%s\"%s\": ", v > 1 ? ", " : "", variant_names[v]);
                json_number(f, bench_ratio(kr, (bench_variant)v));
            }
            fprintf(f, "}}");
        }
        fprintf(f, "\n     ]}");
    }
    fprintf(f, "\n  ]\n}\n");
    return close_file(f, path);
}

/* ---- CSV ---- */

static void csv_field(FILE *f, const char *s) {
    if (strpbrk(s, ",\"\n") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const char *c = s; *c; ++c) {
        if (*c == '"') fputc('"', f);
        fputc(*c, f);
    }
    fputc('"', f);
}

static void csv_number(FILE *f, double v) {
    if (v >= 0 && isfinite(v)) fprintf(f, "%.6g", v);
}

int bench_write_csv(const bench_run *run, const char *path) {
    FILE *f = open_output(path);
    if (!f) return 1;
    fprintf(f, "backend,device,shape,d_in,d_out,rhat,op,dtype,tokens,kind,variant,median_ms,spread,reps,gflops,gbs,"
               "roofline_pct,tuned_speedup,rel_error,param_source,note\n");
    for (int i = 0; i < run->shape_count; ++i) {
        const bench_shape_result *s = &run->shapes[i];
        for (int k = 0; k < MORA_KIND_COUNT; ++k) {
            const bench_kind_result *kr = &s->kinds[k];
            if (!kr->requested) continue;
            for (int v = 0; v < BENCH_VARIANT_COUNT; ++v) {
                const bench_measure *m = &kr->m[v];
                csv_field(f, run->backend);
                fputc(',', f);
                csv_field(f, run->device);
                fputc(',', f);
                csv_field(f, s->label);
                fprintf(f, ",%lld,%lld,%lld,%s,%s,%lld,%s,%s,", (long long)s->shape.d_in, (long long)s->shape.d_out,
                        (long long)s->shape.rhat, mora_op_name(s->shape.op), mora_dtype_name(s->dtype), (long long)s->tokens,
                        mora_kind_name(kr->kind), variant_names[v]);
                csv_number(f, m->ok ? m->ms : -1.0);
                fputc(',', f);
                csv_number(f, m->ok ? m->spread : -1.0);
                fprintf(f, ",%d,", m->ok ? m->reps : 0);
                csv_number(f, bench_gflops(kr, (bench_variant)v));
                fputc(',', f);
                csv_number(f, bench_gbs(kr, (bench_variant)v));
                fputc(',', f);
                csv_number(f, bench_roofline_pct(run, kr, (bench_variant)v));
                fputc(',', f);
                csv_number(f, v == BENCH_TUNED ? (m->ok ? 1.0 : -1.0) : bench_ratio(kr, (bench_variant)v));
                fputc(',', f);
                csv_number(f, m->rel_error);
                fputc(',', f);
                csv_field(f, v == BENCH_TUNED ? kr->param_source : "");
                fputc(',', f);
                csv_field(f, m->note);
                fputc('\n', f);
            }
        }
    }
    return close_file(f, path);
}

/* ---- plot ---- */

static int find_in_path(const char *name, char *out, size_t size) {
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    for (char *save = NULL, *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        snprintf(out, size, "%s/%s", dir, name);
        if (access(out, X_OK) == 0) return 1;
    }
    return 0;
}

static void plot_label(const bench_shape_result *s, const bench_kind_result *kr, char *out, size_t size) {
    snprintf(out, size, "%lld-%lld/%lld %s %s", (long long)s->shape.d_in, (long long)s->shape.d_out, (long long)s->shape.rhat,
             mora_op_name(s->shape.op), mora_kind_name(kr->kind));
}

int bench_write_plot(const bench_run *run, const char *path) {
    char gnuplot[1024];
    if (!find_in_path("gnuplot", gnuplot, sizeof gnuplot)) {
        fprintf(stderr, "mora-bench: gnuplot was not found in PATH (Debian: apt-get install gnuplot-nox); "
                        "skipping the plot %s\n", path);
        return 2;
    }
    /* the script, with the data inline; pngcairo, or libgd's png where cairo is missing */
    for (int attempt = 0; attempt < 2; ++attempt) {
        char command[1200];
        snprintf(command, sizeof command, "'%s' 1>&2", gnuplot); /* its messages join our stderr */
        FILE *p = popen(command, "w");
        if (!p) {
            perror("mora-bench: gnuplot");
            return 1;
        }
        int clusters = 0;
        for (int i = 0; i < run->shape_count; ++i)
            for (int k = 0; k < MORA_KIND_COUNT; ++k) clusters += run->shapes[i].kinds[k].requested;
        int width = 600 + 90 * clusters;
        width = width < 1000 ? 1000 : width > 3200 ? 3200 : width;
        fprintf(p, "set terminal %s size %d,720 noenhanced font \",10\"\n", attempt == 0 ? "pngcairo" : "png", width);
        fprintf(p, "set output '%s'\n", path);
        fprintf(p, "set title \"mora-bench: %% of the measured roofline (higher is better) — %s \\\"%s\\\", %lld tokens\"\n",
                run->backend, run->device, run->shape_count ? (long long)run->shapes[0].tokens : 0LL);
        fprintf(p, "set ylabel \"%% of roofline: max(FLOPs/peak, bytes/bandwidth) / time\"\n"
                   "set logscale y\nset yrange [*:150]\nset grid ytics\nset key outside right top\n"
                   "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.85 border -1\n"
                   "set boxwidth 0.9\nset xtics rotate by -35 left\nset datafile missing '-'\nset bmargin 9\n");
        fprintf(p, "$data << EOD\n");
        for (int i = 0; i < run->shape_count; ++i)
            for (int k = 0; k < MORA_KIND_COUNT; ++k) {
                const bench_kind_result *kr = &run->shapes[i].kinds[k];
                if (!kr->requested) continue;
                char label[128];
                plot_label(&run->shapes[i], kr, label, sizeof label);
                fprintf(p, "\"%s\"", label);
                for (int v = 0; v < BENCH_VARIANT_COUNT; ++v) {
                    const double pct = bench_roofline_pct(run, kr, (bench_variant)v);
                    if (pct > 0) fprintf(p, " %.6g", pct);
                    else fprintf(p, " -");
                }
                fputc('\n', p);
            }
        fprintf(p, "EOD\n");
        /* a variant with no point at all (n/a on this backend) gets no bar colour */
        int has_points[BENCH_VARIANT_COUNT] = {0};
        for (int i = 0; i < run->shape_count; ++i)
            for (int k = 0; k < MORA_KIND_COUNT; ++k)
                for (int v = 0; v < BENCH_VARIANT_COUNT; ++v)
                    if (run->shapes[i].kinds[k].requested && bench_roofline_pct(run, &run->shapes[i].kinds[k], (bench_variant)v) > 0)
                        has_points[v] = 1;
        fprintf(p, "plot $data using 2:xtic(1) title 'tuned'");
        for (int v = 1; v < BENCH_VARIANT_COUNT; ++v)
            if (has_points[v]) fprintf(p, ", '' using %d title '%s'", v + 2, variant_names[v]);
        fprintf(p, "\n");
        const int rc = pclose(p);
        struct stat sb;
        if (rc == 0 && stat(path, &sb) == 0 && sb.st_size > 0) return 0;
    }
    fprintf(stderr, "mora-bench: gnuplot could not write the plot %s\n", path);
    return 1;
}

/* ---- Markdown ---- */

static void md_escape(FILE *f, const char *s) {
    for (const char *c = s; *c; ++c) {
        if (*c == '|') fputs("\\|", f);
        else fputc(*c, f);
    }
}

/* The plot's path as the Markdown file sees it: the bare name when both are in one folder. */
static const char *relative_to(const char *md, const char *plot) {
    const char *md_slash = strrchr(md, '/'), *plot_slash = strrchr(plot, '/');
    const size_t md_dir = md_slash ? (size_t)(md_slash - md) : 0, plot_dir = plot_slash ? (size_t)(plot_slash - plot) : 0;
    if (md_dir == plot_dir && strncmp(md, plot, md_dir) == 0) return plot_slash ? plot_slash + 1 : plot;
    return plot;
}

/* The report's targets: on a CPU device the fused forward within 2× of the BLAS GEMM time and
 * faster than the separate passes; on a GPU within 1.3× of the bandwidth floor. */
static void md_targets(FILE *f, const bench_run *run) {
    fprintf(f, "\n## Targets\n\n");
    if (run->device_is_cpu)
        fprintf(f, "On a CPU device the fused forward should take at most 2× the time of the BLAS's GEMM of the same "
                   "multiply-adds, and beat the BLAS + separate passes baseline.\n\n"
                   "| shape | tokens | tuned ms | GEMM ms | tuned / GEMM | ≤ 2×? | passes ms | passes / tuned | faster? |\n"
                   "|---|---:|---:|---:|---:|:-:|---:|---:|:-:|\n");
    else
        fprintf(f, "On a GPU the fused forward should take at most 1.3× its bandwidth floor (bytes / measured "
                   "bandwidth) and beat the vendor BLAS + separate passes baseline.\n\n"
                   "| shape | tokens | tuned ms | floor ms | tuned / floor | ≤ 1.3×? | passes ms | passes / tuned | faster? |\n"
                   "|---|---:|---:|---:|---:|:-:|---:|---:|:-:|\n");
    for (int i = 0; i < run->shape_count; ++i) {
        const bench_shape_result *s = &run->shapes[i];
        const bench_kind_result *kr = &s->kinds[MORA_KIND_FWD];
        if (!kr->requested) continue;
        const bench_measure *t = &kr->m[BENCH_TUNED], *g = &kr->m[BENCH_GEMM], *p = &kr->m[BENCH_PASSES];
        double ref_ms = -1.0, limit = 2.0;
        if (run->device_is_cpu) ref_ms = g->ok ? g->ms : -1.0;
        else if (run->roof.bandwidth_gbs > 0) ref_ms = kr->bytes / (run->roof.bandwidth_gbs * 1e6), limit = 1.3;
        char a[24], b[24], c[24], d[24], e[24];
        fmt_num(a, sizeof a, "%.4g", t->ok ? t->ms : -1.0);
        fmt_num(b, sizeof b, "%.4g", ref_ms);
        const double over = t->ok && ref_ms > 0 ? t->ms / ref_ms : -1.0;
        fmt_num(c, sizeof c, "%.2f×", over);
        fmt_num(d, sizeof d, "%.4g", p->ok ? p->ms : -1.0);
        const double speed = bench_ratio(kr, BENCH_PASSES);
        fmt_num(e, sizeof e, "%.2f×", speed);
        fprintf(f, "| ");
        md_escape(f, s->label);
        fprintf(f, " %s | %lld | %s | %s | %s | %s | %s | %s | %s |\n", mora_dtype_name(s->dtype), (long long)s->tokens, a, b,
                c, over < 0 ? "n/a" : over <= limit ? "**met**" : "missed", d, e,
                speed < 0 ? "n/a" : speed > 1.0 ? "**yes**" : "no");
    }
}

int bench_write_markdown(const bench_run *run, const char *path, const char *plot_path) {
    FILE *f = open_output(path);
    if (!f) return 1;
    fprintf(f, "# mora-bench report\n\n");
    fprintf(f, "| | |\n|---|---|\n");
    fprintf(f, "| date (UTC) | %s |\n| commit | `%s` |\n| machine | `", run->date, run->commit);
    md_escape(f, run->uname);
    fprintf(f, "` |\n| CPU | ");
    md_escape(f, run->cpu_model);
    fprintf(f, " (%d cores online) |\n| backend | %s |\n| device | ", run->cpu_cores, run->backend);
    md_escape(f, run->device);
    fprintf(f, " — ");
    md_escape(f, run->device_vendor);
    fprintf(f, ", driver ");
    md_escape(f, run->device_driver);
    fprintf(f, ", %d compute units%s |\n", run->compute_units, run->device_is_cpu ? ", a CPU device" : "");
    fprintf(f, "| vendor BLAS | %s |\n", run->blas_name ? run->blas_name : "none (built without OpenBLAS)");
    fprintf(f, "| measurement | median of ≥ %d repetitions and ≥ %.0f ms after one warm-up (slow baselines: 2); "
               "device events where the backend has them |\n",
            run->min_reps, run->budget_ms);
    fprintf(f, "| verification | every variant but the bare GEMM against the float64 reference on %lld tokens before "
               "timing |\n| run time | %.1f s |\n\n",
            (long long)run->verify_tokens, run->seconds);
    fprintf(f, "Command:\n\n```sh\n%s\n```\n", run->command_line);

    fprintf(f, "\n## Roofline (measured in this run)\n\n");
    print_roofline(f, run, "- ");
    fprintf(f, "\nEvery kernel is reported against min-time = max(FLOPs / peak, bytes / bandwidth); "
               "%% of roofline = min-time / measured time. FLOPs are 2 × the multiply-adds of the product "
               "(2·n·blocks·r̂² for fwd, bwd_dx, bwd_dm; 2 per ΔW entry for merge); bytes count each input read once, "
               "each output written once, and the accumulated outputs (y, dx, dM, W) read and written, M and rope's "
               "cos/sin table included.\n");

    fprintf(f, "\n## Variants\n\n");
    for (int v = 0; v < BENCH_VARIANT_COUNT; ++v) fprintf(f, "- **%s**: %s\n", variant_names[v], variant_descriptions[v]);
    fprintf(f, "\n*speedup* = the variant's time / the tuned time: above 1, libmora's tuned kernel is faster.\n");

    fprintf(f, "\n## Results\n");
    for (int i = 0; i < run->shape_count; ++i) {
        const bench_shape_result *s = &run->shapes[i];
        fprintf(f, "\n### ");
        md_escape(f, s->label);
        fprintf(f, ", %s, %lld tokens\n\n", mora_dtype_name(s->dtype), (long long)s->tokens);
        fprintf(f, "| kind | variant | ms | ± | GFLOP/s | GB/s | %% of roofline | speedup | rel. error | note |\n"
                   "|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for (int k = 0; k < MORA_KIND_COUNT; ++k) {
            const bench_kind_result *kr = &s->kinds[k];
            if (!kr->requested) continue;
            for (int v = 0; v < BENCH_VARIANT_COUNT; ++v) {
                const bench_measure *m = &kr->m[v];
                if (!m->ok && strcmp(m->note, "not requested") == 0) continue;
                char ms[24], sp[16], gf[16], gb[16], roof[16], ratio[16], check[16];
                fmt_num(ms, sizeof ms, "%.4g", m->ok ? m->ms : -1.0);
                fmt_num(sp, sizeof sp, "%.1f%%", m->ok ? 100.0 * m->spread : -1.0);
                fmt_num(gf, sizeof gf, "%.1f", bench_gflops(kr, (bench_variant)v));
                fmt_num(gb, sizeof gb, "%.1f", bench_gbs(kr, (bench_variant)v));
                fmt_num(roof, sizeof roof, "%.1f%%", bench_roofline_pct(run, kr, (bench_variant)v));
                fmt_num(ratio, sizeof ratio, "%.2f×", v == BENCH_TUNED ? -1.0 : bench_ratio(kr, (bench_variant)v));
                fmt_num(check, sizeof check, "%.1e", m->rel_error);
                fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | ", v == 0 ? mora_kind_name(kr->kind) : "",
                        variant_names[v], ms, sp, gf, gb, roof, ratio, check);
                if (v == BENCH_TUNED) {
                    if (strcmp(kr->param_source, "-") == 0) fprintf(f, "%s-bound; %s", bound_of(run, kr), kr->params);
                    else fprintf(f, "%s-bound; parameters from %s: %s", bound_of(run, kr), kr->param_source, kr->params);
                    if (m->note[0]) fprintf(f, "; ");
                }
                md_escape(f, m->note);
                fprintf(f, " |\n");
            }
        }
    }
    md_targets(f, run);
    if (plot_path) fprintf(f, "\n## Plot\n\n![%% of roofline per kernel and baseline](%s)\n", relative_to(path, plot_path));
    return close_file(f, path);
}
