/* libFuzzer target: the parser and matcher of the shipped database (kernels-cache/db.c through
 * mora_db_lookup_in; the format is kernels-cache/db/README.md). The input is the db text; it is
 * looked up once, for a kind, device, op and dtype chosen by the input's length (so the text stays
 * pure db text and every combination is reached; one parse per input keeps the fuzzer fast).
 * Invariants: MORA_OK, MORA_E_NOT_FOUND or MORA_E_ARG; a match sets only declared parameters, each
 * >= its minimum (the db's own rule: positive, or 0 for <P>_MMA), and "matched" is a level name. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700 /* nftw, in fuzz_common.h */

#include "cache.h"
#include "db.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    mora_set_log_callback(fuzz_quiet_log, NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0'; /* the db is a C string (embedded text) */
    static const char *const devices[][4] = {
        {"opencl", "D", "A", "V"}, {"cuda", "NVIDIA H200", "sm_90", "NVIDIA"}, {"hip", NULL, NULL, NULL}};
    mora_shape s;
    const int k = (int)(size % MORA_KIND_COUNT), d = (int)(size / MORA_KIND_COUNT % 3);
    const mora_op op = (mora_op)(size / (3 * MORA_KIND_COUNT) % MORA_OP_COUNT);
    if (mora_shape_make(&s, 256, 512, 8, op) != MORA_OK) abort();
    mora_kernel_spec spec = mora_spec_default(&s, (mora_dtype)(size / 7 % MORA_DTYPE_COUNT), (mora_kind)k,
                                              MORA_DIALECT_OPENCL);
    const mora_kernel_spec before = spec;
    const char *matched = NULL;
    const mora_status st =
        mora_db_lookup_in(text, devices[d][0], devices[d][1], devices[d][2], devices[d][3], &spec, &matched);
    FUZZ_ASSERT(st == MORA_OK || st == MORA_E_NOT_FOUND || st == MORA_E_ARG);
    if (st != MORA_OK) {
        FUZZ_ASSERT(memcmp(&spec, &before, sizeof spec) == 0);
    } else {
        FUZZ_ASSERT(matched && (!strcmp(matched, "device") || !strcmp(matched, "arch") || !strcmp(matched, "vendor")));
        const mora_kind_decl *decl = mora_spec_decl(&spec);
        for (int p = 0; p < MORA_MAX_PARAMS; ++p)
            FUZZ_ASSERT(p < decl->param_count ? spec.params[p] >= 0 : spec.params[p] == before.params[p]);
    }
    free(text);
    return 0;
}
