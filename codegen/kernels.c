/* Kernel kinds and their tuning parameters — the one place where parameters are declared — plus
 * spec checks and launch geometry. Defaults here must equal the #ifndef defaults in templates/
 * (tests/test_codegen.c checks it). */
#include "kernels.h"

#include <stdint.h>
#include <string.h>

#include "error.h"
#include "shape.h"

/* Value lists the tuner searches; shared by the GEMM kinds. */
#define TILE_VALUES {8, 16, 32, 64, 128}, 5
#define STEP_VALUES {4, 8, 16, 32}, 4
#define PER_ITEM_VALUES {1, 2, 4, 8}, 4
#define GROUP_SIZE_VALUES {32, 64, 128, 256, 512}, 5

#define GEMM_PARAMS(P, what)                                                                   \
    {P "_TM", 32, TILE_VALUES, "rows of " what " per work-group tile"},                        \
    {P "_TN", 32, TILE_VALUES, "columns of " what " per work-group tile"},                     \
    {P "_TK", 16, STEP_VALUES, "reduction slice staged in local memory per step"},             \
    {P "_WM", 4, PER_ITEM_VALUES, "rows per work-item (MMA: 16-row fragments per warp/wavefront)"},                                       \
    {P "_WN", 2, PER_ITEM_VALUES, "columns per work-item (MMA: 8/16-column fragments per warp/wavefront)"}

/* Last parameter of every GEMM kind (appended so that the indexes of the others stay put). */
#define MMA_PARAM(P)                                                                           \
    {P "_MMA", 0, {0, 1}, 2,                                                                   \
     "1: tensor-core/matrix-core product (CUDA mma.sync m16n8k16, HIP MFMA 16x16x16), f16/bf16 only"}

static const mora_kind_decl kind_decls[MORA_KIND_COUNT] = {
    [MORA_KIND_FWD] = {"fwd", "fwd.kern", 1, {"mora_fwd"}, 1, {GEMM_PARAMS("FWD", "H (token·block x r̂)"), MMA_PARAM("FWD")}, 6},
    [MORA_KIND_BWD_DX] = {"bwd_dx",
                          "bwd_dx.kern",
                          1,
                          {"mora_bwd_dx_gemm", "mora_bwd_dx_gather"},
                          2,
                          {GEMM_PARAMS("DX", "U (token·block x r̂)"),
                           {"DX_GATHER_LS", 128, GROUP_SIZE_VALUES, "work-items per work-group of the gather"},
                           MMA_PARAM("DX")},
                          7},
    [MORA_KIND_BWD_DM] = {"bwd_dm",
                          "bwd_dm.kern",
                          1,
                          {"mora_bwd_dm", "mora_bwd_dm_reduce"},
                          2,
                          {GEMM_PARAMS("DM", "dM (r̂ x r̂)"),
                           {"DM_SPLIT", 1, {1, 2, 4, 8, 16, 32}, 6, "slices of the token reduction"},
                           {"DM_REDUCE_LS", 128, GROUP_SIZE_VALUES, "work-items per work-group of the reduction"},
                           MMA_PARAM("DM")},
                          8},
    [MORA_KIND_MERGE] = {"merge",
                         "merge.kern",
                         0,
                         {"mora_merge"},
                         1,
                         {{"MERGE_LS", 128, GROUP_SIZE_VALUES, "work-items per work-group"}},
                         1},
};

const mora_kind_decl *mora_kind_decl_get(mora_kind kind) {
    if ((int)kind < 0 || (int)kind >= MORA_KIND_COUNT) return NULL;
    return &kind_decls[kind];
}

const char *mora_kind_name(mora_kind kind) {
    const mora_kind_decl *d = mora_kind_decl_get(kind);
    return d ? d->name : "unknown";
}

mora_status mora_kind_from_string(const char *name, mora_kind *kind) {
    MORA_CHECK_PTR(name);
    MORA_CHECK_PTR(kind);
    for (int k = 0; k < MORA_KIND_COUNT; ++k)
        if (strcmp(name, kind_decls[k].name) == 0) {
            *kind = (mora_kind)k;
            return MORA_OK;
        }
    return mora_fail(MORA_E_UNKNOWN_KIND, "kind=\"%s\": unknown kernel kind; expected fwd, bwd_dx, bwd_dm or merge",
                     name);
}

static const char *const dialect_names[MORA_DIALECT_COUNT] = {"opencl", "cuda", "hip"};

const char *mora_dialect_name(mora_dialect dialect) {
    if ((int)dialect < 0 || (int)dialect >= MORA_DIALECT_COUNT) return "unknown";
    return dialect_names[dialect];
}

mora_status mora_dialect_from_string(const char *name, mora_dialect *dialect) {
    MORA_CHECK_PTR(name);
    MORA_CHECK_PTR(dialect);
    for (int d = 0; d < MORA_DIALECT_COUNT; ++d)
        if (strcmp(name, dialect_names[d]) == 0) {
            *dialect = (mora_dialect)d;
            return MORA_OK;
        }
    return mora_fail(MORA_E_ARG, "dialect=\"%s\": unknown; expected opencl, cuda or hip", name);
}

mora_kernel_spec mora_spec_default(const mora_shape *s, mora_dtype dtype, mora_kind kind, mora_dialect dialect) {
    mora_kernel_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.shape = *s;
    spec.dtype = dtype;
    spec.kind = kind;
    spec.dialect = dialect;
    const mora_kind_decl *d = mora_kind_decl_get(kind);
    for (int i = 0; d && i < d->param_count; ++i) spec.params[i] = d->params[i].default_value;
    return spec;
}

/* The smallest value a parameter takes: 0 for a switch whose value list holds 0 (<P>_MMA), else 1. */
static int param_minimum(const mora_param_decl *p) {
    for (int v = 0; v < p->value_count; ++v)
        if (p->values[v] == 0) return 0;
    return 1;
}

int mora_kind_mma_index(mora_kind kind) {
    switch (kind) {
    case MORA_KIND_FWD: return 5;
    case MORA_KIND_BWD_DX: return 6;
    case MORA_KIND_BWD_DM: return 7;
    default: return -1;
    }
}

int mora_spec_mma(const mora_kernel_spec *spec) {
    const int i = mora_kind_mma_index(spec->kind);
    return i < 0 ? 0 : spec->params[i];
}

int mora_mma_lanes(mora_dialect dialect) {
    return dialect == MORA_DIALECT_CUDA ? 32 : dialect == MORA_DIALECT_HIP ? 64 : 0;
}

int mora_mma_frag_n(mora_dialect dialect) {
    return dialect == MORA_DIALECT_CUDA ? 8 : dialect == MORA_DIALECT_HIP ? 16 : 0;
}

static int param_index(const mora_kernel_spec *spec, const char *name) {
    const mora_kind_decl *d = mora_kind_decl_get(spec->kind);
    for (int i = 0; d && i < d->param_count; ++i)
        if (strcmp(d->params[i].name, name) == 0) return i;
    return -1;
}

mora_status mora_spec_set_param(mora_kernel_spec *spec, const char *name, int value) {
    MORA_CHECK_PTR(spec);
    MORA_CHECK_PTR(name);
    const int i = param_index(spec, name);
    if (i < 0) {
        const mora_kind_decl *d = mora_kind_decl_get(spec->kind);
        char known[256] = "";
        for (int k = 0; d && k < d->param_count; ++k) {
            strncat(known, k ? ", " : "", sizeof known - strlen(known) - 1);
            strncat(known, d->params[k].name, sizeof known - strlen(known) - 1);
        }
        return mora_fail(MORA_E_PARAM, "param %s: not a parameter of kind %s (it has: %s)", name,
                         mora_kind_name(spec->kind), known);
    }
    const int minimum = param_minimum(&mora_kind_decl_get(spec->kind)->params[i]);
    if (value < minimum) return mora_fail(MORA_E_PARAM, "param %s=%d: must be >= %d", name, value, minimum);
    spec->params[i] = value;
    return MORA_OK;
}

int mora_spec_get_param(const mora_kernel_spec *spec, const char *name) {
    const int i = param_index(spec, name);
    return i < 0 ? -1 : spec->params[i];
}

/* The arithmetic below takes parameter values straight from files (cache records, the db) and the
 * command line, so it must be defined for ANY int: products are formed in 64 bits from values
 * already known to be positive, and a result that does not fit saturates at SIZE_MAX (which no
 * device limit admits) instead of wrapping around to a small, acceptable-looking number. */
static size_t mul_sat(size_t a, size_t b) {
    size_t r;
    return __builtin_mul_overflow(a, b, &r) ? SIZE_MAX : r;
}

/* A parameter as a count: negative values (rejected by mora_spec_check) count as 0. */
static size_t count_of(int v) { return v < 0 ? 0 : (size_t)v; }

/* Work-items of a GEMM tile: (TM/WM)·(TN/WN) for the scalar product; with MMA, one warp / wavefront
 * per (16·WM) x (frag_n·WN) sub-tile. 0 when a per-work-item size is not positive. */
static size_t gemm_threads(const mora_kernel_spec *spec) {
    const int *p = spec->params;
    if (p[MORA_GEMM_WM] < 1 || p[MORA_GEMM_WN] < 1 || p[MORA_GEMM_TM] < 0 || p[MORA_GEMM_TN] < 0) return 0;
    const int64_t tm = p[MORA_GEMM_TM], tn = p[MORA_GEMM_TN], wm = p[MORA_GEMM_WM], wn = p[MORA_GEMM_WN];
    if (mora_spec_mma(spec) == 1 && mora_mma_lanes(spec->dialect) > 0) {
        const int64_t frag_m = 16 * wm, frag_n = (int64_t)mora_mma_frag_n(spec->dialect) * wn; /* < 2^36 */
        return mul_sat(mul_sat((size_t)mora_mma_lanes(spec->dialect), (size_t)(tm / frag_m)), (size_t)(tn / frag_n));
    }
    return mul_sat((size_t)(tm / wm), (size_t)(tn / wn));
}

size_t mora_spec_threads(const mora_kernel_spec *spec, int entry) {
    const int *p = spec->params;
    switch (spec->kind) {
    case MORA_KIND_FWD: return gemm_threads(spec);
    case MORA_KIND_BWD_DX: return entry == 0 ? gemm_threads(spec) : count_of(p[5]);
    case MORA_KIND_BWD_DM: return entry == 0 ? gemm_threads(spec) : count_of(p[6]);
    case MORA_KIND_MERGE: return count_of(p[0]);
    }
    return 0;
}

size_t mora_spec_local_bytes(const mora_kernel_spec *spec, int entry) {
    const mora_kind_decl *d = mora_kind_decl_get(spec->kind);
    if (!d || !d->is_gemm || entry != 0) return 0;
    const int *p = spec->params;
    /* (TM + TN)·TK floats; the sum of two ints cannot overflow 64 bits, the products saturate */
    const size_t rows = count_of(p[MORA_GEMM_TM]) + count_of(p[MORA_GEMM_TN]);
    return mul_sat(mul_sat(rows, count_of(p[MORA_GEMM_TK])), sizeof(float));
}

mora_status mora_spec_check(const mora_kernel_spec *spec, size_t max_threads, size_t max_local_bytes) {
    MORA_CHECK_PTR(spec);
    const mora_kind_decl *d = mora_kind_decl_get(spec->kind);
    if (!d) return mora_fail(MORA_E_UNKNOWN_KIND, "kind=%d: unknown kernel kind", (int)spec->kind);
    /* first every parameter >= its minimum (1, or 0 for <P>_MMA): every divisor below is then >= 1 */
    for (int i = 0; i < d->param_count; ++i)
        if (spec->params[i] < param_minimum(&d->params[i]))
            return mora_fail(MORA_E_PARAM, "param %s=%d: must be >= %d", d->params[i].name, spec->params[i],
                             param_minimum(&d->params[i]));
    if (d->is_gemm) {
        const int *p = spec->params;
        const int mi = mora_kind_mma_index(spec->kind);
        const char *mma = d->params[mi].name;
        if (p[mi] > 1) return mora_fail(MORA_E_PARAM, "param %s=%d: must be 0 or 1", mma, p[mi]);
        if (p[mi] == 1) {
            if (spec->dialect != MORA_DIALECT_CUDA && spec->dialect != MORA_DIALECT_HIP)
                return mora_fail(MORA_E_PARAM,
                                 "param %s=1: the tensor-core product needs the cuda or hip dialect, not %s; "
                                 "use %s=0 (the scalar product)",
                                 mma, mora_dialect_name(spec->dialect), mma);
            if (spec->dtype != MORA_F16 && spec->dtype != MORA_BF16)
                return mora_fail(MORA_E_PARAM,
                                 "param %s=1: the tensor-core product is for dtype f16 or bf16, not %s; use %s=0 "
                                 "(the scalar product)",
                                 mma, mora_dtype_name(spec->dtype), mma);
            if (p[MORA_GEMM_TK] % 16 != 0)
                return mora_fail(MORA_E_PARAM, "param %s=%d: must be a multiple of 16 with %s=1",
                                 d->params[MORA_GEMM_TK].name, p[MORA_GEMM_TK], mma);
            /* 64-bit: 16·WM and frag_n·WN overflow an int for WM, WN >= 2^27 (a division by zero
             * once they wrapped to 0); here both are >= 16 and < 2^36 */
            const int64_t frag_m = 16 * (int64_t)p[MORA_GEMM_WM],
                          frag_n = (int64_t)mora_mma_frag_n(spec->dialect) * (int64_t)p[MORA_GEMM_WN];
            if (p[MORA_GEMM_TM] % frag_m != 0)
                return mora_fail(MORA_E_PARAM, "param %s=%d: must be a multiple of 16·%s = %lld with %s=1",
                                 d->params[MORA_GEMM_TM].name, p[MORA_GEMM_TM], d->params[MORA_GEMM_WM].name,
                                 (long long)frag_m, mma);
            if (p[MORA_GEMM_TN] % frag_n != 0)
                return mora_fail(MORA_E_PARAM, "param %s=%d: must be a multiple of %d·%s = %lld with %s=1 on %s",
                                 d->params[MORA_GEMM_TN].name, p[MORA_GEMM_TN], mora_mma_frag_n(spec->dialect),
                                 d->params[MORA_GEMM_WN].name, (long long)frag_n, mma, mora_dialect_name(spec->dialect));
        }
        if (p[MORA_GEMM_TM] % p[MORA_GEMM_WM] != 0)
            return mora_fail(MORA_E_PARAM, "param %s=%d: must divide %s=%d", d->params[MORA_GEMM_WM].name,
                             p[MORA_GEMM_WM], d->params[MORA_GEMM_TM].name, p[MORA_GEMM_TM]);
        if (p[MORA_GEMM_TN] % p[MORA_GEMM_WN] != 0)
            return mora_fail(MORA_E_PARAM, "param %s=%d: must divide %s=%d", d->params[MORA_GEMM_WN].name,
                             p[MORA_GEMM_WN], d->params[MORA_GEMM_TN].name, p[MORA_GEMM_TN]);
    }
    for (int e = 0; e < d->entry_count; ++e) {
        const size_t threads = mora_spec_threads(spec, e), limit = max_threads;
        if (max_threads && threads > limit)
            return mora_fail(MORA_E_PARAM, "%s: %zu work-items per work-group: exceeds the device's %zu",
                             d->entries[e], threads, limit);
        const size_t local = mora_spec_local_bytes(spec, e);
        if (max_local_bytes && local > max_local_bytes)
            return mora_fail(MORA_E_PARAM, "%s: %zu bytes of local memory: exceeds the device's %zu", d->entries[e],
                             local, max_local_bytes);
    }
    return MORA_OK;
}

static size_t ceil_div(int64_t a, int64_t b) { return (size_t)((a + b - 1) / b); }

void mora_spec_groups(const mora_kernel_spec *spec, int entry, int64_t n, size_t groups[3]) {
    const mora_shape *s = &spec->shape;
    const mora_geometry geo = mora_shape_geometry(s);
    const int *p = spec->params;
    groups[0] = groups[1] = groups[2] = 1;
    switch (spec->kind) {
    case MORA_KIND_FWD:
        groups[0] = ceil_div(n * geo.blocks_read, p[MORA_GEMM_TM]);
        groups[1] = ceil_div(s->rhat, p[MORA_GEMM_TN]);
        break;
    case MORA_KIND_BWD_DX:
        if (entry == 0) {
            groups[0] = ceil_div(n * geo.blocks_read, p[MORA_GEMM_TM]);
            groups[1] = ceil_div(s->rhat, p[MORA_GEMM_TN]);
        } else {
            groups[0] = ceil_div(n * s->d_in, p[5]);
        }
        break;
    case MORA_KIND_BWD_DM:
        if (entry == 0) {
            groups[0] = ceil_div(s->rhat, p[MORA_GEMM_TM]);
            groups[1] = ceil_div(s->rhat, p[MORA_GEMM_TN]);
            groups[2] = (size_t)p[5];
        } else {
            groups[0] = ceil_div(s->rhat * s->rhat, p[6]);
        }
        break;
    case MORA_KIND_MERGE: {
        const mora_comp_family comp = mora_op_comp_family(s->op);
        int64_t window = s->d_in;
        if (comp == MORA_COMP_RESHAPE || comp == MORA_COMP_ROPE) window = s->rhat < s->d_in ? s->rhat : s->d_in;
        if (comp == MORA_COMP_TRUNC) window = s->rhat;
        groups[0] = ceil_div(s->d_out * window, p[0]);
        break;
    }
    }
}

size_t mora_spec_scratch_floats(const mora_kernel_spec *spec, int64_t n) {
    const mora_geometry geo = mora_shape_geometry(&spec->shape);
    switch (spec->kind) {
    case MORA_KIND_BWD_DX: return (size_t)(n * geo.blocks_read * spec->shape.rhat);
    case MORA_KIND_BWD_DM:
        return spec->params[5] > 1 ? (size_t)spec->params[5] * (size_t)(spec->shape.rhat * spec->shape.rhat) : 0;
    default: return 0;
    }
}

mora_status mora_kernel_shape_check(const mora_shape *s) {
    const struct {
        const char *name;
        int64_t value;
    } extents[] = {{"d_in", s->d_in}, {"d_out", s->d_out}, {"d_in + rhat", s->d_in + s->rhat},
                   {"d_out + rhat", s->d_out + s->rhat}, {"rhat * rhat", s->rhat * s->rhat}};
    for (size_t i = 0; i < sizeof extents / sizeof *extents; ++i)
        if (extents[i].value >= MORA_KERNEL_INDEX_LIMIT)
            return mora_fail(MORA_E_SIZE, "%s=%lld: the generated kernels need it below 2^31", extents[i].name,
                             (long long)extents[i].value);
    return MORA_OK;
}
