/* libFuzzer target: the spec check and code generation (codegen/kernels.c, codegen/codegen.c) with
 * arbitrary parameter values, kinds, dialects and dtypes, on shapes mora_shape_make accepts.
 * Invariants: mora_spec_check gives MORA_OK or MORA_E_PARAM (never a crash: the SIGFPE of issue 10
 * was 16·WM wrapping to 0); an accepted spec's work-group size and local memory are within the
 * limits it was checked against, and its source is generated (MORA_OK, non-empty, with the
 * parameters' #defines); the naive kernel of any checked shape is generated. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700 /* nftw, in fuzz_common.h */

#include "fuzz_common.h"
#include "kernels.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    mora_set_log_callback(fuzz_quiet_log, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_input in = {data, size, 0};
    /* a modest shape (the generated text does not grow with it; the constants do) */
    static const int64_t dims[] = {1, 2, 7, 64, 100, 256, 4096, 11008, 1 << 20, (int64_t)1 << 31};
    const int64_t d_in = dims[fuzz_u8(&in) % 10], d_out = dims[fuzz_u8(&in) % 10];
    const int64_t rank = 1 + fuzz_u8(&in) % 64;
    const mora_op op = (mora_op)(fuzz_u8(&in) % MORA_OP_COUNT);
    mora_shape s;
    if (mora_shape_make(&s, d_in, d_out, rank, op) != MORA_OK) return 0;
    const mora_kind kind = (mora_kind)(fuzz_u8(&in) % MORA_KIND_COUNT);
    const mora_dialect dialect = (mora_dialect)(fuzz_u8(&in) % MORA_DIALECT_COUNT);
    const mora_dtype dtype = (mora_dtype)(fuzz_u8(&in) % MORA_DTYPE_COUNT);
    mora_kernel_spec spec = mora_spec_default(&s, dtype, kind, dialect);
    const mora_kind_decl *d = mora_spec_decl(&spec);
    for (int i = 0; i < d->param_count; ++i) {
        const uint8_t keep = fuzz_u8(&in);
        if (keep >= 64) spec.params[i] = fuzz_param_value(&in, d->params[i].values, d->params[i].value_count);
    }
    static const size_t limits[][2] = {{0, 0}, {1024, 49152}, {256, 65536}, {4096, 4194304}, {1, 1}};
    const int l = fuzz_u8(&in) % 5;
    const mora_status checked = mora_spec_check(&spec, limits[l][0], limits[l][1]);
    FUZZ_ASSERT(checked == MORA_OK || checked == MORA_E_PARAM);
    for (int e = 0; e < d->entry_count; ++e) { /* defined for any values, checked or not */
        (void)mora_spec_threads(&spec, e);
        (void)mora_spec_local_bytes(&spec, e);
    }
    if (checked != MORA_OK) return 0;
    for (int e = 0; e < d->entry_count; ++e) {
        FUZZ_ASSERT(mora_spec_threads(&spec, e) >= 1);
        if (limits[l][0]) FUZZ_ASSERT(mora_spec_threads(&spec, e) <= limits[l][0]);
        if (limits[l][1]) FUZZ_ASSERT(mora_spec_local_bytes(&spec, e) <= limits[l][1]);
    }
    char *source = NULL;
    const mora_status generated = mora_codegen(&spec, &source);
    FUZZ_ASSERT(generated == MORA_OK && source && (d->param_count == 0 || strstr(source, d->params[0].name)));
    free(source);
    if (dialect != MORA_DIALECT_HOST && fuzz_u8(&in) < 16) { /* the naive kernels are generated ones */
        source = NULL;
        FUZZ_ASSERT(mora_codegen_naive(&spec, &source) == MORA_OK && source);
        free(source);
    }
    return 0;
}
