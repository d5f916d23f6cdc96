/* mora_spec_check and the resource formulas it uses (codegen/kernels.c) for ANY parameter values
 * (issue 10, item 1): no overflow, no division by zero, no wrapped-around resource count that a
 * device limit would accept. Values come from cache records, the db and the command line.
 *   - the reproducers: FWD_MMA=1 with FWD_WM=2^28 on cuda (16·WM wrapped to 0: SIGFPE), the same
 *     through frag_n·WN on hip;
 *   - saturation: TM=TN=TK=INT_MAX gives SIZE_MAX bytes of local memory (not a wrapped small number);
 *   - 200000 seeded random specs of every kind, dialect and dtype with values from the edges of int
 *     (run it under -fsanitize=undefined to see any overflow: scripts/sanitize.sh does). */
#include <limits.h>
#include <stdint.h>

#include "check.h"
#include "kernels.h"

static mora_kernel_spec spec_of(mora_kind kind, mora_dialect dialect, mora_dtype dtype) {
    mora_shape s;
    if (mora_shape_make(&s, 256, 256, 8, MORA_OP_SHARE) != MORA_OK) exit(2);
    return mora_spec_default(&s, dtype, kind, dialect);
}

static void test_reproducers(void) {
    /* cuda: 16·WM = 2^32 wrapped to 0 in int and TM % 0 raised SIGFPE */
    mora_kernel_spec spec = spec_of(MORA_KIND_FWD, MORA_DIALECT_CUDA, MORA_F16);
    REQUIRE_OK(mora_spec_set_param(&spec, "FWD_MMA", 1));
    REQUIRE_OK(mora_spec_set_param(&spec, "FWD_WM", 268435456));
    CHECK_STATUS(mora_spec_check(&spec, 0, 0), MORA_E_PARAM);
    CHECK_STATUS(mora_spec_check(&spec, 1024, 49152), MORA_E_PARAM);
    CHECK(strstr(mora_last_error(), "FWD_TM") != NULL);
    /* hip: frag_n·WN = 16·2^28 */
    spec = spec_of(MORA_KIND_BWD_DX, MORA_DIALECT_HIP, MORA_BF16);
    REQUIRE_OK(mora_spec_set_param(&spec, "DX_MMA", 1));
    REQUIRE_OK(mora_spec_set_param(&spec, "DX_WN", 268435456));
    CHECK_STATUS(mora_spec_check(&spec, 0, 0), MORA_E_PARAM);
    /* every WM / WN up to INT_MAX on both dialects */
    for (int dialect = MORA_DIALECT_CUDA; dialect <= MORA_DIALECT_HIP; ++dialect)
        for (int shift = 24; shift <= 31; ++shift) {
            const int v = shift == 31 ? INT_MAX : 1 << shift;
            spec = spec_of(MORA_KIND_BWD_DM, (mora_dialect)dialect, MORA_F16);
            *mora_spec_param_slot(&spec, "DM_MMA") = 1;
            *mora_spec_param_slot(&spec, "DM_WM") = v;
            CHECK_STATUS(mora_spec_check(&spec, 0, 0), MORA_E_PARAM);
            *mora_spec_param_slot(&spec, "DM_WM") = 1;
            *mora_spec_param_slot(&spec, "DM_WN") = v;
            CHECK_STATUS(mora_spec_check(&spec, 0, 0), MORA_E_PARAM);
        }
}

static void test_saturation(void) {
    mora_kernel_spec spec = spec_of(MORA_KIND_FWD, MORA_DIALECT_OPENCL, MORA_F32);
    *mora_spec_param_slot(&spec, "FWD_TM") = *mora_spec_param_slot(&spec, "FWD_TN") = *mora_spec_param_slot(&spec, "FWD_TK") = INT_MAX;
    *mora_spec_param_slot(&spec, "FWD_WM") = *mora_spec_param_slot(&spec, "FWD_WN") = 1;
    /* (2^32 - 2)·(2^31 - 1)·4 wraps around 2^64 in size_t: it must saturate instead */
    CHECK(mora_spec_local_bytes(&spec, 0) == SIZE_MAX);
    CHECK(mora_spec_threads(&spec, 0) == (size_t)INT_MAX * (size_t)INT_MAX);
    CHECK_STATUS(mora_spec_check(&spec, 0, 65536), MORA_E_PARAM);
    CHECK_STATUS(mora_spec_check(&spec, 1024, 0), MORA_E_PARAM);
    CHECK_STATUS(mora_spec_check(&spec, 0, 0), MORA_OK); /* no device limits: consistent, if absurd */
    /* a value whose wrapped product would look small: TK = 2^30 + 1, TM + TN = 2^32 - 2 */
    *mora_spec_param_slot(&spec, "FWD_TK") = (1 << 30) + 1;
    CHECK(mora_spec_local_bytes(&spec, 0) == SIZE_MAX);
    CHECK_STATUS(mora_spec_check(&spec, 0, SIZE_MAX - 1), MORA_E_PARAM);
    /* negative values: rejected with a sentence, and the formulas count them as 0, never as huge */
    spec = spec_of(MORA_KIND_MERGE, MORA_DIALECT_OPENCL, MORA_F32);
    *mora_spec_param_slot(&spec, "MERGE_LS") = INT_MIN;
    CHECK_STATUS(mora_spec_check(&spec, 0, 0), MORA_E_PARAM);
    CHECK(mora_spec_threads(&spec, 0) == 0);
    spec = spec_of(MORA_KIND_FWD, MORA_DIALECT_CUDA, MORA_F16);
    *mora_spec_param_slot(&spec, "FWD_TM") = -16;
    *mora_spec_param_slot(&spec, "FWD_WM") = -1;
    CHECK_STATUS(mora_spec_check(&spec, 0, 0), MORA_E_PARAM);
    CHECK(mora_spec_threads(&spec, 0) == 0 && mora_spec_local_bytes(&spec, 0) < 4096);
}

/* Random specs whose values come from the edges of int: every call returns a status, and an
 * accepted spec's resource counts are within the limits it was checked against. */
static void test_random(void) {
    static const int edges[] = {INT_MIN, -1, 0, 1, 2, 3, 7, 8, 16, 32, 48, 64, 128, 256, 1 << 27, 1 << 28,
                                (1 << 30) + 1, INT_MAX - 1, INT_MAX};
    const int edge_count = (int)(sizeof edges / sizeof edges[0]);
    check_rng rng = {20261201};
    int accepted = 0, rejected = 0, wrong = 0;
    for (int iter = 0; iter < 200000; ++iter) {
        const mora_kind kind = (mora_kind)check_rng_int(&rng, 0, MORA_KIND_COUNT - 1);
        const mora_dialect dialect = (mora_dialect)check_rng_int(&rng, 0, MORA_DIALECT_COUNT - 1);
        const mora_dtype dtype = (mora_dtype)check_rng_int(&rng, 0, 2);
        mora_kernel_spec spec = spec_of(kind, dialect, dtype);
        const mora_kind_decl *d = mora_kind_decl_get(kind, dialect);
        for (int i = 0; i < d->param_count; ++i) {
            const int64_t r = check_rng_int(&rng, 0, 3);
            if (r == 0) spec.params[i] = edges[check_rng_int(&rng, 0, edge_count - 1)];
            else if (r == 1) spec.params[i] = (int)check_rng_int(&rng, 0, 300);
            else if (r == 2) spec.params[i] = d->params[i].values[check_rng_int(&rng, 0, d->params[i].value_count - 1)];
        }
        const size_t max_threads = check_rng_int(&rng, 0, 1) ? 1024 : 0, max_local = check_rng_int(&rng, 0, 1) ? 65536 : 0;
        const mora_status s = mora_spec_check(&spec, max_threads, max_local);
        if (s == MORA_OK) {
            ++accepted;
            for (int e = 0; e < d->entry_count; ++e) {
                if (max_threads && mora_spec_threads(&spec, e) > max_threads) ++wrong;
                if (max_local && mora_spec_local_bytes(&spec, e) > max_local) ++wrong;
                if (mora_spec_threads(&spec, e) == 0) ++wrong;
            }
        } else if (s == MORA_E_PARAM) {
            ++rejected;
        } else {
            ++wrong;
        }
    }
    printf("random specs: %d accepted, %d rejected\n", accepted, rejected);
    CHECK_EQ_INT(wrong, 0);
    CHECK(accepted > 1000 && rejected > 1000);
}

int main(void) {
    test_reproducers();
    test_saturation();
    test_random();
    return check_report();
}
