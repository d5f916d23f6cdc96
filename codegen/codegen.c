/* The specialiser: spec -> source text. It concatenates the dialect layer, the spec's compile-time
 * constants and parameters, common.kern and the kind's template, expanding `//@include NAME` lines.
 * Templates are embedded at build time (generated mora_templates.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kernels.h"
#include "mora_templates.h"
#include "shape.h"

const char *mora_template_text(const char *name) {
    for (int i = 0; i < MORA_TEMPLATE_COUNT; ++i)
        if (strcmp(mora_templates[i].name, name) == 0) return mora_templates[i].text;
    return NULL;
}

/* A growing string; `failed` sticks after the first allocation failure. */
typedef struct text_buffer {
    char *data;
    size_t length, capacity;
    int failed;
} text_buffer;

static void append_bytes(text_buffer *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->length + n + 1 > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 4096;
        while (b->length + n + 1 > capacity) capacity *= 2;
        char *grown = realloc(b->data, capacity);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, s, n);
    b->length += n;
    b->data[b->length] = '\0';
}

static void append_format(text_buffer *b, const char *fmt, ...) MORA_PRINTF_LIKE(2, 3);
static void append_format(text_buffer *b, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0) append_bytes(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* Appends a template, replacing each line `//@include NAME` by the named template's text. */
static mora_status append_template(text_buffer *b, const char *name, int depth) {
    const char *text = mora_template_text(name);
    if (!text) return mora_fail(MORA_E_ARG, "template \"%s\": not embedded in this build", name);
    if (depth > 4) return mora_fail(MORA_E_ARG, "template \"%s\": //@include nested too deeply", name);
    static const char directive[] = "//@include ";
    const char *line = text;
    while (*line) {
        const char *end = strchr(line, '\n');
        const size_t length = end ? (size_t)(end - line + 1) : strlen(line);
        if (strncmp(line, directive, sizeof directive - 1) == 0) {
            char included[128];
            size_t k = 0;
            for (const char *c = line + sizeof directive - 1; c < line + length && k + 1 < sizeof included; ++c)
                if (*c != '\n' && *c != '\r' && *c != ' ') included[k++] = *c;
            included[k] = '\0';
            MORA_TRY(append_template(b, included, depth + 1));
        } else {
            append_bytes(b, line, length);
        }
        line += length;
    }
    return MORA_OK;
}

static const char *const dialect_templates[MORA_DIALECT_COUNT] = {"dialect_opencl.kern", "dialect_cuda.kern",
                                                                    "dialect_hip.kern", "dialect_host.kern"};

static mora_status codegen_adamw(const mora_kernel_spec *spec, char **source);

mora_status mora_codegen(const mora_kernel_spec *spec, char **source) {
    MORA_CHECK_PTR(spec);
    const mora_kind_decl *kind = mora_spec_decl(spec);
    if (!kind) return mora_fail(MORA_E_UNKNOWN_KIND, "kind=%d dialect=%d: unknown kernel kind", (int)spec->kind, (int)spec->dialect);
    if (spec->kind == MORA_KIND_ADAMW) return codegen_adamw(spec, source);
    return mora_codegen_template(spec, kind->template_name, source);
}

/* The largest work-group of the spec's entry points (MORA_MAX_THREADS of the generated source). */
static size_t largest_work_group(const mora_kernel_spec *spec) {
    const mora_kind_decl *kind = mora_spec_decl(spec);
    size_t largest = 0;
    for (int e = 0; kind && e < kind->entry_count; ++e) {
        const size_t threads = mora_spec_threads(spec, e);
        if (threads > largest) largest = threads;
    }
    return largest;
}

mora_status mora_codegen_template(const mora_kernel_spec *spec, const char *template_name, char **source) {
    MORA_CHECK_PTR(spec);
    return mora_codegen_template_bounded(spec, template_name, largest_work_group(spec), source);
}

mora_status mora_codegen_template_bounded(const mora_kernel_spec *spec, const char *template_name, size_t max_threads,
                                          char **source) {
    MORA_CHECK_PTR(spec);
    MORA_CHECK_PTR(source);
    MORA_TRY(mora_shape_check(&spec->shape));
    if ((int)spec->dialect < 0 || (int)spec->dialect >= MORA_DIALECT_COUNT)
        return mora_fail(MORA_E_ARG, "dialect=%d: unknown; expected 0 (opencl), 1 (cuda), 2 (hip) or 3 (host)",
                         (int)spec->dialect);
    const mora_kind_decl *kind = mora_spec_decl(spec);
    if (!kind) return mora_fail(MORA_E_UNKNOWN_KIND, "kind=%d: unknown kernel kind", (int)spec->kind);
    /* the host dialect has no templates: its source is the constants below */
    if (spec->dialect == MORA_DIALECT_HOST) template_name = NULL;
    else MORA_CHECK_PTR(template_name);
    if (mora_dtype_size(spec->dtype) == 0)
        return mora_fail(MORA_E_UNKNOWN_DTYPE, "dtype=%d: unknown data type", (int)spec->dtype);
    MORA_TRY(mora_spec_check(spec, 0, 0));

    const mora_shape *s = &spec->shape;
    const mora_geometry geo = mora_shape_geometry(s);
    text_buffer b = {0};
    append_format(&b, "// libmora generated kernel — kind=%s op=%s d_in=%lld d_out=%lld rhat=%lld dtype=%s dialect=%s\n",
                  kind->name, mora_op_name(s->op), (long long)s->d_in, (long long)s->d_out, (long long)s->rhat,
                  mora_dtype_name(spec->dtype), mora_dialect_name(spec->dialect));
    append_format(&b, "#define DTYPE_F32 %d\n#define DTYPE_F16 %d\n#define DTYPE_BF16 %d\n#define ACT_DTYPE %d\n",
                  MORA_F32, MORA_F16, MORA_BF16, (int)spec->dtype);
    /* the largest work-group any entry point is launched with: dialect_hip.kern makes it the kernels'
     * __launch_bounds__ (without one, clang caps a kernel at the registers of 1024 work-items) */
    if (max_threads > 0) append_format(&b, "#define MORA_MAX_THREADS %zu\n", max_threads);
    mora_status st = append_template(&b, dialect_templates[spec->dialect], 0);
    append_format(&b, "\n// shape (compile-time constants)\n");
    append_format(&b, "#define D_IN %lld\n#define D_OUT %lld\n#define RHAT %lld\n#define RHALF %lld\n",
                  (long long)s->d_in, (long long)s->d_out, (long long)s->rhat, (long long)geo.half);
    append_format(&b, "#define PAD %lld\n#define NBLK %lld\n#define NBLK_READ %lld\n#define COMP %d\n#define DECOMP %d\n",
                  (long long)geo.padded, (long long)geo.blocks, (long long)geo.blocks_read, (int)mora_op_comp_family(s->op),
                  (int)mora_op_decomp_family(s->op));
    append_format(&b, "#define MORA_OP %d\n", (int)s->op);
    append_format(&b, "// tuning parameters of kind %s\n", kind->name);
    for (int i = 0; i < kind->param_count; ++i)
        append_format(&b, "#define %s %d\n", kind->params[i].name, spec->params[i]);
    append_bytes(&b, "\n", 1);
    if (st == MORA_OK && template_name) st = append_template(&b, "common.kern", 0);
    if (st == MORA_OK && template_name) st = append_template(&b, template_name, 0);
    if (st == MORA_OK && b.failed) st = mora_fail(MORA_E_NO_MEMORY, "code generation: out of memory");
    if (st != MORA_OK) {
        free(b.data);
        return st;
    }
    *source = b.data;
    return MORA_OK;
}

/* The optimizer's source: not shape-specific (the arena's length is an argument). */
static mora_status codegen_adamw(const mora_kernel_spec *spec, char **source) {
    const mora_dialect dialect = spec->dialect;
    if ((int)dialect < 0 || (int)dialect >= MORA_DIALECT_COUNT)
        return mora_fail(MORA_E_ARG, "dialect=%d: unknown; expected 0 (opencl), 1 (cuda), 2 (hip) or 3 (host)", (int)dialect);
    text_buffer b = {0};
    append_format(&b, "// libmora generated kernel — AdamW over an arena, dialect=%s\n", mora_dialect_name(dialect));
    /* the dialect layer wants an activation dtype; the optimizer works on float32 only */
    append_format(&b, "#define DTYPE_F32 %d\n#define DTYPE_F16 %d\n#define DTYPE_BF16 %d\n#define ACT_DTYPE %d\n",
                  MORA_F32, MORA_F16, MORA_BF16, MORA_F32);
    append_format(&b, "#define MORA_MAX_THREADS %d\n#define ADAMW_LS %d\n#define ADAMW_CHUNK %d\n", MORA_ADAMW_LS,
                  MORA_ADAMW_LS, MORA_ADAMW_CHUNK);
    mora_status st = append_template(&b, dialect_templates[dialect], 0);
    append_bytes(&b, "\n", 1);
    const char *template_name = mora_spec_decl(spec)->template_name;
    if (st == MORA_OK && template_name) st = append_template(&b, template_name, 0);
    if (st == MORA_OK && b.failed) st = mora_fail(MORA_E_NO_MEMORY, "code generation: out of memory");
    if (st != MORA_OK) {
        free(b.data);
        return st;
    }
    *source = b.data;
    return MORA_OK;
}
