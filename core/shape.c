/* Operator names, r̂ from a LoRA rank, shape validation and the derived geometry. */
#include "shape.h"

#include <math.h>
#include <string.h>

#include "error.h"

static const char *const op_names[MORA_OP_COUNT] = {
    "truncate", "share", "group", "group-tile", "share-interleave", "reshape", "rope",
};

const char *mora_op_name(mora_op op) {
    if ((int)op < 0 || (int)op >= MORA_OP_COUNT) return "unknown";
    return op_names[op];
}

mora_status mora_op_from_string(const char *name, mora_op *op) {
    MORA_CHECK_PTR(name);
    MORA_CHECK_PTR(op);
    for (int i = 0; i < MORA_OP_COUNT; ++i) {
        char id[2] = {(char)('0' + i), '\0'};
        if (strcmp(name, op_names[i]) == 0 || strcmp(name, id) == 0) {
            *op = (mora_op)i;
            return MORA_OK;
        }
    }
    return mora_fail(MORA_E_UNKNOWN_OP,
                     "op=\"%s\": unknown operator; expected one of truncate, share, group, group-tile, "
                     "share-interleave, reshape, rope (or 0..6)",
                     name);
}

static const char *const dtype_names[MORA_DTYPE_COUNT] = {"f32", "f16", "bf16"};
static const char *const dtype_long_names[MORA_DTYPE_COUNT] = {"float32", "float16", "bfloat16"};

const char *mora_dtype_name(mora_dtype dtype) {
    if ((int)dtype < 0 || (int)dtype >= MORA_DTYPE_COUNT) return "unknown";
    return dtype_names[dtype];
}

size_t mora_dtype_size(mora_dtype dtype) {
    switch (dtype) {
    case MORA_F32: return 4;
    case MORA_F16: return 2;
    case MORA_BF16: return 2;
    }
    return 0;
}

mora_status mora_dtype_from_string(const char *name, mora_dtype *dtype) {
    MORA_CHECK_PTR(name);
    MORA_CHECK_PTR(dtype);
    for (int i = 0; i < MORA_DTYPE_COUNT; ++i) {
        if (strcmp(name, dtype_names[i]) == 0 || strcmp(name, dtype_long_names[i]) == 0) {
            *dtype = (mora_dtype)i;
            return MORA_OK;
        }
    }
    return mora_fail(MORA_E_UNKNOWN_DTYPE, "dtype=\"%s\": unknown data type; expected f32, f16 or bf16", name);
}

int64_t mora_rhat_from_rank(int64_t d_in, int64_t d_out, int64_t lora_rank) {
    if (d_in < 1) return (void)mora_fail(MORA_E_SIZE, "d_in=%lld: must be >= 1", (long long)d_in), -1;
    if (d_out < 1) return (void)mora_fail(MORA_E_SIZE, "d_out=%lld: must be >= 1", (long long)d_out), -1;
    if (lora_rank < 1)
        return (void)mora_fail(MORA_E_SIZE, "lora_rank=%lld: must be >= 1", (long long)lora_rank), -1;
    int64_t sum, v;
    if (__builtin_add_overflow(d_in, d_out, &sum) || __builtin_mul_overflow(sum, lora_rank, &v))
        return (void)mora_fail(MORA_E_OVERFLOW,
                               "(d_in + d_out) * lora_rank = (%lld + %lld) * %lld: overflows 64 bits",
                               (long long)d_in, (long long)d_out, (long long)lora_rank),
               -1;
    /* k = floor(sqrt(v) + 0.5)  <=>  (2k - 1)^2 <= 4v < (2k + 1)^2; fix the double's rounding. */
    int64_t k = (int64_t)floor(sqrt((double)v) + 0.5);
    const unsigned __int128 four_v = (unsigned __int128)v * 4u;
    while (k > 0 && (unsigned __int128)(2 * k - 1) * (unsigned __int128)(2 * k - 1) > four_v) --k;
    while ((unsigned __int128)(2 * k + 1) * (unsigned __int128)(2 * k + 1) <= four_v) ++k;
    return k;
}

mora_status mora_shape_make(mora_shape *s, int64_t d_in, int64_t d_out, int64_t lora_rank, mora_op op) {
    MORA_CHECK_PTR(s);
    if ((int)op < 0 || (int)op >= MORA_OP_COUNT)
        return mora_fail(MORA_E_UNKNOWN_OP, "op=%d: unknown operator; expected 0..6", (int)op);
    const int64_t rhat = mora_rhat_from_rank(d_in, d_out, lora_rank);
    if (rhat < 0) return d_in < 1 || d_out < 1 || lora_rank < 1 ? MORA_E_SIZE : MORA_E_OVERFLOW;
    mora_shape made = {d_in, d_out, rhat, op};
    if (op == MORA_OP_ROPE && rhat % 2 != 0) {
        if (rhat < 3)
            return mora_fail(MORA_E_ODD_RHAT,
                             "rhat=%lld (from d_in=%lld, d_out=%lld, lora_rank=%lld): rope needs an even "
                             "r̂ >= 2",
                             (long long)rhat, (long long)d_in, (long long)d_out, (long long)lora_rank);
        made.rhat = rhat - 1;
    }
    MORA_TRY(mora_shape_check(&made));
    *s = made;
    return MORA_OK;
}

mora_status mora_shape_check(const mora_shape *s) {
    MORA_CHECK_PTR(s);
    if (s->d_in < 1) return mora_fail(MORA_E_SIZE, "d_in=%lld: must be >= 1", (long long)s->d_in);
    if (s->d_out < 1) return mora_fail(MORA_E_SIZE, "d_out=%lld: must be >= 1", (long long)s->d_out);
    if (s->rhat < 1) return mora_fail(MORA_E_SIZE, "rhat=%lld: must be >= 1", (long long)s->rhat);
    if ((int)s->op < 0 || (int)s->op >= MORA_OP_COUNT)
        return mora_fail(MORA_E_UNKNOWN_OP, "op=%d: unknown operator; expected 0..6", (int)s->op);

    /* Byte counts of ΔW (d_out x d_in), M (r̂ x r̂) and x_pad (B·r̂ <= d_in + r̂) in float64 must fit. */
    const int64_t limit = INT64_MAX / 8;
    int64_t product;
    if (__builtin_mul_overflow(s->d_out, s->d_in, &product) || product > limit)
        return mora_fail(MORA_E_OVERFLOW, "d_out * d_in = %lld * %lld: exceeds %lld elements",
                         (long long)s->d_out, (long long)s->d_in, (long long)limit);
    if (__builtin_mul_overflow(s->rhat, s->rhat, &product) || product > limit)
        return mora_fail(MORA_E_OVERFLOW, "rhat * rhat = %lld * %lld: exceeds %lld elements", (long long)s->rhat,
                         (long long)s->rhat, (long long)limit);
    if (__builtin_add_overflow(s->d_in, s->rhat, &product) || product > limit)
        return mora_fail(MORA_E_OVERFLOW, "d_in + rhat = %lld + %lld: exceeds %lld elements", (long long)s->d_in,
                         (long long)s->rhat, (long long)limit);

    const char *name = mora_op_name(s->op);
    if (s->op == MORA_OP_ROPE && s->rhat % 2 != 0)
        return mora_fail(MORA_E_ODD_RHAT, "rhat=%lld: rope needs an even r̂", (long long)s->rhat);
    const int needs_in = s->op == MORA_OP_TRUNCATE || s->op == MORA_OP_GROUP || s->op == MORA_OP_GROUP_TILE;
    const int needs_out =
        s->op == MORA_OP_TRUNCATE || s->op == MORA_OP_GROUP || s->op == MORA_OP_SHARE_INTERLEAVE;
    if (needs_in && s->rhat > s->d_in)
        return mora_fail(MORA_E_CONSTRAINT, "rhat=%lld: %s needs r̂ <= d_in = %lld", (long long)s->rhat, name,
                         (long long)s->d_in);
    if (needs_out && s->rhat > s->d_out)
        return mora_fail(MORA_E_CONSTRAINT, "rhat=%lld: %s needs r̂ <= d_out = %lld", (long long)s->rhat, name,
                         (long long)s->d_out);
    return MORA_OK;
}

mora_comp_family mora_op_comp_family(mora_op op) {
    switch (op) {
    case MORA_OP_TRUNCATE: return MORA_COMP_TRUNC;
    case MORA_OP_SHARE:
    case MORA_OP_SHARE_INTERLEAVE: return MORA_COMP_SHARE;
    case MORA_OP_GROUP:
    case MORA_OP_GROUP_TILE: return MORA_COMP_GROUP;
    case MORA_OP_RESHAPE: return MORA_COMP_RESHAPE;
    case MORA_OP_ROPE: return MORA_COMP_ROPE;
    }
    return MORA_COMP_TRUNC;
}

mora_decomp_family mora_op_decomp_family(mora_op op) {
    switch (op) {
    case MORA_OP_TRUNCATE: return MORA_DECOMP_TRUNC;
    case MORA_OP_SHARE:
    case MORA_OP_GROUP_TILE: return MORA_DECOMP_SHARE;
    case MORA_OP_GROUP:
    case MORA_OP_SHARE_INTERLEAVE: return MORA_DECOMP_GROUP;
    case MORA_OP_RESHAPE:
    case MORA_OP_ROPE: return MORA_DECOMP_RESHAPE;
    }
    return MORA_DECOMP_TRUNC;
}

mora_geometry mora_shape_geometry(const mora_shape *s) {
    mora_geometry g;
    g.wrap_blocks = (s->d_in + s->rhat - 1) / s->rhat;
    g.padded = g.wrap_blocks * s->rhat;
    g.blocks = (s->op == MORA_OP_RESHAPE || s->op == MORA_OP_ROPE) ? g.wrap_blocks : 1;
    g.half = s->rhat / 2;
    const int64_t read = (s->d_out + s->rhat - 1) / s->rhat;
    g.blocks_read = g.blocks > 1 && read < g.blocks ? read : g.blocks;
    return g;
}

int64_t mora_shape_blocks(const mora_shape *s) {
    if (mora_shape_check(s) != MORA_OK) return -1;
    return mora_shape_geometry(s).blocks;
}

int64_t mora_run_start(int64_t length, int64_t runs, int64_t g) {
    const int64_t q = length / runs, r = length % runs;
    return g * q + (g < r ? g : r);
}

int64_t mora_run_of(int64_t length, int64_t runs, int64_t position) {
    const int64_t q = length / runs, r = length % runs;
    const int64_t long_part = r * (q + 1); /* positions covered by the longer runs */
    return position < long_part ? position / (q + 1) : r + (position - long_part) / q;
}

double mora_rope_angle(int64_t rhat, int64_t t, int64_t i) {
    return (double)t / pow(10000.0, (double)(2 * i) / (double)rhat);
}

int mora_shape_same(const mora_shape *a, const mora_shape *b) {
    return a->d_in == b->d_in && a->d_out == b->d_out && a->rhat == b->rhat && a->op == b->op;
}
