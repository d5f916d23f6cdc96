/* test_codegen — the code generator: template defaults agree with the declared parameters, every
 * op × kind × dtype × dialect generates complete source, bad parameters are rejected. No backend. */
#include "check.h"
#include "kernels.h"

/* The default a template gives NAME:  #ifndef NAME / #define NAME <value>  (-1 if absent). */
static int template_default(const char *text, const char *name) {
    char pattern[128];
    snprintf(pattern, sizeof pattern, "#ifndef %s\n#define %s ", name, name);
    const char *at = strstr(text, pattern);
    return at ? atoi(at + strlen(pattern)) : -1;
}

static void check_template_defaults(void) {
    for (int k = 0; k < MORA_KIND_ALL_COUNT; ++k) {
        const mora_kind_decl *d = mora_kind_decl_get((mora_kind)k, MORA_DIALECT_OPENCL);
        const char *text = mora_template_text(d->template_name);
        CHECK(text != NULL);
        if (!text) continue;
        for (int i = 0; i < d->param_count; ++i) {
            const int in_template = template_default(text, d->params[i].name);
            if (in_template != d->params[i].default_value)
                fprintf(stderr, "kind %s: %s default %d in codegen/kernels.c, %d in templates/%s\n", d->name,
                        d->params[i].name, d->params[i].default_value, in_template, d->template_name);
            CHECK_EQ_INT(in_template, d->params[i].default_value);
            /* the default must be one of the values the tuner may pick */
            int listed = 0;
            for (int v = 0; v < d->params[i].value_count; ++v) listed |= d->params[i].values[v] == d->params[i].default_value;
            CHECK(listed);
        }
    }
    /* every table of both families: defaults and tuner values within the declared range, names
     * "<prefix>_<role>", every constraint's roles declared */
    for (int dia = 0; dia < MORA_DIALECT_COUNT; ++dia)
        for (int k = 0; k < MORA_KIND_ALL_COUNT; ++k) {
            const mora_kind_decl *d = mora_kind_decl_get((mora_kind)k, (mora_dialect)dia);
            CHECK(d != NULL && d->entry_count >= 1);
            if (!d) continue;
            for (int i = 0; i < d->param_count; ++i) {
                const mora_param_decl *p = &d->params[i];
                CHECK(p->min <= p->default_value && p->default_value <= p->max);
                for (int v = 0; v < p->value_count; ++v) CHECK(p->min <= p->values[v] && p->values[v] <= p->max);
                CHECK(strncmp(p->name, d->prefix, strlen(d->prefix)) == 0 && p->name[strlen(d->prefix)] == '_');
                CHECK(p->meaning && *p->meaning);
            }
            const mora_kernel_spec spec = mora_spec_default(NULL, MORA_F16, (mora_kind)k, (mora_dialect)dia);
            for (int c = 0; c < d->constraint_count; ++c) {
                const mora_constraint *r = &d->constraints[c];
                const char *roles[3] = {r->when, r->a, r->b};
                for (int j = 0; j < 3; ++j) CHECK(!roles[j] || mora_spec_role(&spec, roles[j], -7) != -7);
            }
        }
}

static void check_generation(void) {
    const int64_t shapes[][3] = {{4096, 4096, 256}, {50, 37, 8}, {5, 40, 8}};
    for (int op = 0; op < MORA_OP_COUNT; ++op)
        for (size_t sh = 0; sh < sizeof shapes / sizeof *shapes; ++sh) {
            mora_shape s = {shapes[sh][0], shapes[sh][1], shapes[sh][2], (mora_op)op};
            if (mora_shape_check(&s) != MORA_OK) continue;
            for (int k = 0; k < MORA_KIND_COUNT; ++k)
                for (int dt = 0; dt < MORA_DTYPE_COUNT; ++dt)
                    for (int dia = 0; dia < MORA_DIALECT_COUNT; ++dia) {
                        const mora_kind_decl *d = mora_kind_decl_get((mora_kind)k, (mora_dialect)dia);
                        const mora_kernel_spec spec = mora_spec_default(&s, (mora_dtype)dt, (mora_kind)k, (mora_dialect)dia);
                        char *src = NULL;
                        CHECK_STATUS(mora_codegen(&spec, &src), MORA_OK);
                        if (!src) continue;
                        char expect[64];
                        snprintf(expect, sizeof expect, "#define D_IN %lld\n", (long long)s.d_in);
                        CHECK(strstr(src, expect) != NULL);
                        snprintf(expect, sizeof expect, "#define RHAT %lld\n", (long long)s.rhat);
                        CHECK(strstr(src, expect) != NULL);
                        CHECK(strstr(src, "\n//@include") == NULL); /* every include line was expanded */
                        if (dia == MORA_DIALECT_HOST) { /* the constants only: the cpu backend's own kernels */
                            CHECK(strstr(src, "#define MORA_HOST_PROGRAM 1\n") != NULL);
                            for (int i = 0; i < d->param_count; ++i) CHECK(strstr(src, d->params[i].name) != NULL);
                            CHECK(strstr(src, "KERNEL") == NULL);
                            free(src);
                            continue;
                        }
                        for (int e = 0; e < d->entry_count; ++e) CHECK(strstr(src, d->entries[e].name) != NULL);
                        if (d->entries[0].threads.rule == MORA_SIZE_GEMM_TILE) CHECK(strstr(src, "gemm_acc") != NULL);
                        free(src);
                    }
        }
}

static void check_params(void) {
    mora_shape s = {64, 64, 16, MORA_OP_RESHAPE};
    mora_kernel_spec spec = mora_spec_default(&s, MORA_F32, MORA_KIND_FWD, MORA_DIALECT_OPENCL);
    CHECK_STATUS(mora_spec_set_param(&spec, "FWD_TM", 64), MORA_OK);
    CHECK_EQ_INT(mora_spec_get_param(&spec, "FWD_TM"), 64);
    CHECK_STATUS(mora_spec_set_param(&spec, "DM_SPLIT", 2), MORA_E_PARAM); /* another kind's */
    CHECK(strstr(mora_last_error(), "DM_SPLIT") != NULL && strstr(mora_last_error(), "FWD_TM") != NULL);
    CHECK_STATUS(mora_spec_set_param(&spec, "FWD_TK", 0), MORA_E_PARAM);
    CHECK(strstr(mora_last_error(), "FWD_TK=0") != NULL);
    CHECK_STATUS(mora_spec_set_param(&spec, "FWD_WM", 3), MORA_OK);
    CHECK_STATUS(mora_spec_check(&spec, 0, 0), MORA_E_PARAM); /* 3 does not divide 64 */
    CHECK(strstr(mora_last_error(), "FWD_WM=3") != NULL);
    char *src = NULL;
    CHECK_STATUS(mora_codegen(&spec, &src), MORA_E_PARAM);
    CHECK(src == NULL);
    /* work-group and local memory limits */
    spec = mora_spec_default(&s, MORA_F32, MORA_KIND_FWD, MORA_DIALECT_OPENCL);
    CHECK_EQ_INT(mora_spec_threads(&spec, 0), (32 / 4) * (32 / 2));
    CHECK_EQ_INT(mora_spec_local_bytes(&spec, 0), (32 + 32) * 16 * 4);
    CHECK_STATUS(mora_spec_check(&spec, 64, 0), MORA_E_PARAM);
    CHECK(strstr(mora_last_error(), "128 work-items") != NULL);
    CHECK_STATUS(mora_spec_check(&spec, 0, 1024), MORA_E_PARAM);
    /* launch geometry covers every row and column */
    size_t groups[3];
    mora_spec_groups(&spec, 0, 129, groups);
    CHECK_EQ_INT(groups[0], (129 * 4 + 31) / 32); /* reshape 64 / 16: 4 blocks, so 516 rows */
    CHECK_EQ_INT(groups[1], 1);                  /* 16 columns in one 32-wide tile */
    CHECK_EQ_INT(groups[2], 1);
    mora_kind kind;
    CHECK_STATUS(mora_kind_from_string("bwd_dm", &kind), MORA_OK);
    CHECK_EQ_INT(kind, MORA_KIND_BWD_DM);
    CHECK_STATUS(mora_kind_from_string("backward", &kind), MORA_E_UNKNOWN_KIND);
}

/* <P>_MMA: the tensor-core variant is refused for OpenCL and for f32 with a sentence naming the
 * parameter, needs tiles of whole fragments, and sets the work-group to warps / wavefronts. */
static void check_mma(void) {
    const mora_shape s = {4096, 4096, 256, MORA_OP_SHARE};
    static const char *const names[] = {"FWD_MMA", "DX_MMA", "DM_MMA"};
    for (int k = 0; k < 3; ++k) {
        const mora_kind kind = (mora_kind)k;
        /* the switch, declared by name with the range [0, 1] */
        const mora_kind_decl *decl = mora_kind_decl_get(kind, MORA_DIALECT_CUDA);
        const int mma = mora_kind_param_index(decl, names[k]);
        CHECK(mma >= 0 && decl->params[mma].min == 0 && decl->params[mma].max == 1);
        /* OpenCL: refused, whatever the dtype */
        mora_kernel_spec spec = mora_spec_default(&s, MORA_F16, kind, MORA_DIALECT_OPENCL);
        CHECK_EQ_INT(mora_spec_mma(&spec), 0);
        CHECK_STATUS(mora_spec_set_param(&spec, names[k], 1), MORA_OK);
        CHECK_STATUS(mora_spec_check(&spec, 0, 0), MORA_E_PARAM);
        CHECK(strstr(mora_last_error(), names[k]) != NULL && strstr(mora_last_error(), "opencl") != NULL);
        char *src = NULL;
        CHECK_STATUS(mora_codegen(&spec, &src), MORA_E_PARAM);
        CHECK(src == NULL);
        /* f32: refused on CUDA and HIP */
        for (int dia = MORA_DIALECT_CUDA; dia <= MORA_DIALECT_HIP; ++dia) {
            spec = mora_spec_default(&s, MORA_F32, kind, (mora_dialect)dia);
            CHECK_STATUS(mora_spec_set_param(&spec, names[k], 1), MORA_OK);
            CHECK_STATUS(mora_spec_set_param(&spec, names[k], -1), MORA_E_PARAM);
            CHECK_STATUS(mora_spec_check(&spec, 0, 0), MORA_E_PARAM);
            CHECK(strstr(mora_last_error(), names[k]) != NULL && strstr(mora_last_error(), "f32") != NULL);
        }
        /* 0 is a valid value of the switch, 2 is not */
        spec = mora_spec_default(&s, MORA_BF16, kind, MORA_DIALECT_CUDA);
        CHECK_STATUS(mora_spec_set_param(&spec, names[k], 0), MORA_OK);
        CHECK_STATUS(mora_spec_check(&spec, 0, 0), MORA_OK);
        CHECK_STATUS(mora_spec_set_param(&spec, names[k], 2), MORA_OK);
        CHECK_STATUS(mora_spec_check(&spec, 0, 0), MORA_E_PARAM);
        CHECK(strstr(mora_last_error(), "0 or 1") != NULL);
        /* the defaults (TM 32, WM 4) are not whole fragments: 16·WM = 64 rows */
        CHECK_STATUS(mora_spec_set_param(&spec, names[k], 1), MORA_OK);
        CHECK_STATUS(mora_spec_check(&spec, 0, 0), MORA_E_PARAM);
        CHECK(strstr(mora_last_error(), "_TM=32") != NULL);
        char role[16];
        snprintf(role, sizeof role, "%.*s_WM", (int)(strchr(names[k], '_') - names[k]), names[k]);
        *mora_spec_param_slot(&spec, role) = 1;
        snprintf(role, sizeof role, "%.*s_TK", (int)(strchr(names[k], '_') - names[k]), names[k]);
        *mora_spec_param_slot(&spec, role) = 8;
        CHECK_STATUS(mora_spec_check(&spec, 0, 0), MORA_E_PARAM);
        CHECK(strstr(mora_last_error(), "_TK=8") != NULL);
        *mora_spec_param_slot(&spec, role) = 32;
        CHECK_STATUS(mora_spec_check(&spec, 0, 0), MORA_OK);
        /* CUDA: warps of 32 over (16·WM) x (8·WN) sub-tiles: 32 · (32/16) · (32/16) */
        CHECK_EQ_INT(mora_spec_threads(&spec, 0), 32 * 2 * 2);
        CHECK_STATUS(mora_codegen(&spec, &src), MORA_OK);
        CHECK(src && strstr(src, "#define MORA_MAX_THREADS 128\n") != NULL);
        free(src);
        /* HIP: wavefronts of 64 over (16·WM) x (16·WN) sub-tiles; WN 4 needs TN a multiple of 64 */
        spec.dialect = MORA_DIALECT_HIP;
        CHECK_EQ_INT(mora_spec_threads(&spec, 0), 64 * 2 * 1);
        snprintf(role, sizeof role, "%.*s_WN", (int)(strchr(names[k], '_') - names[k]), names[k]);
        *mora_spec_param_slot(&spec, role) = 4;
        CHECK_STATUS(mora_spec_check(&spec, 0, 0), MORA_E_PARAM);
        CHECK(strstr(mora_last_error(), "_TN=32") != NULL);
        snprintf(role, sizeof role, "%.*s_TN", (int)(strchr(names[k], '_') - names[k]), names[k]);
        *mora_spec_param_slot(&spec, role) = 64;
        CHECK_STATUS(mora_spec_check(&spec, 0, 0), MORA_OK);
        CHECK_EQ_INT(mora_spec_threads(&spec, 0), 64 * 2 * 1);
        CHECK_EQ_INT(mora_spec_local_bytes(&spec, 0), (32 + 64) * 32 * 4);
    }
    /* every source states its largest work-group; the naive kernel its own */
    const mora_kernel_spec dx = mora_spec_default(&s, MORA_F32, MORA_KIND_BWD_DX, MORA_DIALECT_HIP);
    mora_kernel_spec wide = dx;
    CHECK_STATUS(mora_spec_set_param(&wide, "DX_GATHER_LS", 512), MORA_OK);
    char *src = NULL;
    CHECK_STATUS(mora_codegen(&wide, &src), MORA_OK);
    CHECK(src && strstr(src, "#define MORA_MAX_THREADS 512\n") != NULL);
    free(src);
    src = NULL;
    CHECK_STATUS(mora_codegen_naive(&wide, &src), MORA_OK);
    char naive_bound[64];
    snprintf(naive_bound, sizeof naive_bound, "#define MORA_MAX_THREADS %d\n", MORA_NAIVE_LS);
    CHECK(src && strstr(src, naive_bound) != NULL);
    free(src);
}

int main(void) {
    check_template_defaults();
    check_generation();
    check_params();
    check_mma();
    return check_report();
}
