/* libFuzzer target: mora_shape_make and mora_shape_check (runtime/shape.c) with arbitrary 64-bit
 * sizes and operator ids, and the sizes derived from a checked shape.
 * Invariants: a status, never a crash or UB; a shape mora_shape_make accepts passes
 * mora_shape_check; a checked shape's geometry is consistent (B·r̂ >= d_in, blocks_read <= blocks). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700 /* nftw, in fuzz_common.h */

#include "fuzz_common.h"
#include "shape.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    mora_set_log_callback(fuzz_quiet_log, NULL);
    return 0;
}

/* Mostly small and edge values, sometimes any 64-bit value. */
static int64_t size_value(fuzz_input *in) {
    static const int64_t edges[] = {0, 1, 2, 3, 4, 8, 64, 4096, 11008, -1, INT32_MAX, (int64_t)1 << 31,
                                    (int64_t)1 << 32, (int64_t)3037000499, (int64_t)3037000500, INT64_MAX,
                                    INT64_MIN, INT64_MAX / 2 + 1, (int64_t)1 << 62};
    const uint8_t how = fuzz_u8(in);
    if (how < 64) return how;
    if (how < 128) return (int64_t)fuzz_u64(in, 2);
    if (how < 192) return edges[how % (sizeof edges / sizeof edges[0])];
    return fuzz_i64(in);
}

static void check_geometry(const mora_shape *s) {
    const mora_geometry g = mora_shape_geometry(s);
    FUZZ_ASSERT(g.wrap_blocks >= 1 && g.padded >= s->d_in && g.padded / g.wrap_blocks == s->rhat);
    FUZZ_ASSERT(g.blocks >= 1 && g.blocks_read >= 1 && g.blocks_read <= g.blocks);
    FUZZ_ASSERT(mora_shape_blocks(s) == g.blocks);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_input in = {data, size, 0};
    const int64_t d_in = size_value(&in), d_out = size_value(&in), rank = size_value(&in), rhat = size_value(&in);
    const int op = (int)(int8_t)fuzz_u8(&in); /* mostly 0..6, and some outside the enum */
    const mora_op o = (mora_op)(op >= -2 && op < 10 ? op : op % 8);
    mora_shape s;
    memset(&s, 0, sizeof s);
    const mora_status made = mora_shape_make(&s, d_in, d_out, rank, o);
    if (made == MORA_OK) {
        FUZZ_ASSERT(mora_shape_check(&s) == MORA_OK);
        FUZZ_ASSERT(s.d_in == d_in && s.d_out == d_out && s.rhat >= 1);
        check_geometry(&s);
    }
    (void)mora_rhat_from_rank(d_in, d_out, rank);
    /* a shape given with r̂ directly */
    const mora_shape direct = {d_in, d_out, rhat, o};
    if (mora_shape_check(&direct) == MORA_OK) check_geometry(&direct);
    return 0;
}
