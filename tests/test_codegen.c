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
    for (int k = 0; k < MORA_KIND_COUNT; ++k) {
        const mora_kind_decl *d = mora_kind_decl_get((mora_kind)k);
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
                        const mora_kind_decl *d = mora_kind_decl_get((mora_kind)k);
                        for (int e = 0; e < d->entry_count; ++e) CHECK(strstr(src, d->entries[e]) != NULL);
                        if (d->is_gemm) CHECK(strstr(src, "gemm_acc") != NULL);
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

int main(void) {
    check_template_defaults();
    check_generation();
    check_params();
    return check_report();
}
