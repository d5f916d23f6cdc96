/* Kernel kinds: their tables — parameters, constraints, resource formulas, entry points and their
 * argument lists — and the one interpreter of those tables (spec checks, the search-space rules,
 * work-group sizes, local memory, grids, scratch). This is the one place a parameter or constraint
 * is declared (docs/kernels.md). Defaults of the generated family must equal the #ifndef defaults
 * in templates/ (tests/test_codegen.c checks it); the host family's parameters are read by the cpu
 * backend's kernels (runtime/backend_cpu.c). */
#include "kernels.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_kernels.h"
#include "error.h"
#include "shape.h"

/* ---- the tables -------------------------------------------------------------------------------- */

/* Value lists the tuner searches. */
#define TILE_VALUES {8, 16, 32, 64, 128}, 5
#define STEP_VALUES {4, 8, 16, 32}, 4
#define PER_ITEM_VALUES {1, 2, 4, 8}, 4
#define GROUP_SIZE_VALUES {32, 64, 128, 256, 512}, 5

/* Counts of a table's lists, so that no count is written by hand. */
#define ENTRIES(...) .entries = {__VA_ARGS__}, .entry_count = (int)(sizeof((mora_entry_decl[]){__VA_ARGS__}) / sizeof(mora_entry_decl))
#define PARAMS(...) .params = {__VA_ARGS__}, .param_count = (int)(sizeof((mora_param_decl[]){__VA_ARGS__}) / sizeof(mora_param_decl))
#define CONSTRAINTS(...)                                                                                               \
    .constraints = {__VA_ARGS__},                                                                                      \
    .constraint_count = (int)(sizeof((mora_constraint[]){__VA_ARGS__}) / sizeof(mora_constraint))
#define NO_PARAMS .param_count = 0
#define ARGS(...) {__VA_ARGS__, MORA_KARG_END}

/* Resource formulas. */
#define GEMM_TILE {MORA_SIZE_GEMM_TILE, NULL, 0}
#define PARAM_SIZE(role) {MORA_SIZE_PARAM, role, 0}
#define ONE {MORA_SIZE_ONE, NULL, 0}
#define NONE {MORA_SIZE_ZERO, NULL, 0}

/* The GEMM-shaped kinds of the generated family (templates/gemm_tile.kern): one tile of TM x TN per
 * work-group, TK of the reduction staged in local memory per step, WM x WN per work-item. */
#define GEMM_PARAMS(P, what)                                                                                   \
    {P "_TM", 1, INT_MAX, 32, TILE_VALUES, "rows of " what " per work-group tile"},                            \
    {P "_TN", 1, INT_MAX, 32, TILE_VALUES, "columns of " what " per work-group tile"},                         \
    {P "_TK", 1, INT_MAX, 16, STEP_VALUES, "reduction slice staged in local memory per step"},                 \
    {P "_WM", 1, INT_MAX, 4, PER_ITEM_VALUES, "rows per work-item (MMA: 16-row fragments per warp/wavefront)"}, \
    {P "_WN", 1, INT_MAX, 2, PER_ITEM_VALUES, "columns per work-item (MMA: 8/16-column fragments per warp/wavefront)"}
#define MMA_PARAM(P)                                                                                           \
    {P "_MMA", 0, 1, 0, {0, 1}, 2,                                                                             \
     "1: tensor-core/matrix-core product (CUDA mma.sync m16n8k16, HIP MFMA 16x16x16), f16/bf16 only"}
#define LS_PARAM(name, what) {name, 1, INT_MAX, 128, GROUP_SIZE_VALUES, "work-items per work-group of " what}

/* Validity first (in the order their sentences should be seen), then the tuner's pruning rules. */
#define GEMM_CONSTRAINTS                                                                                       \
    {MORA_RULE_MMA_DIALECT, "MMA", "MMA", NULL, 0}, {MORA_RULE_HALF_DTYPE, "MMA", "MMA", NULL, 0},             \
    {MORA_RULE_MULTIPLE, "MMA", "TK", NULL, 16}, {MORA_RULE_MULTIPLE, "MMA", "TM", "WM", 16},                 \
    {MORA_RULE_MULTIPLE, "MMA", "TN", "WN", 0}, {MORA_RULE_DIVIDES, NULL, "WM", "TM", 0},                     \
    {MORA_RULE_DIVIDES, NULL, "WN", "TN", 0}, {MORA_RULE_AT_MOST_RHAT, NULL, "TN", NULL, 0},                  \
    {MORA_RULE_MIN_THREADS, NULL, NULL, NULL, 4}, {MORA_RULE_MATRIX_CORES, "MMA", "MMA", NULL, 0},            \
    {MORA_RULE_ACCUMULATORS, "MMA", "WM", "WN", 64}

/* The host family (runtime/cpu_kernels.h): a tile pipeline around sgemm on worker threads. */
#define HOST_PARAMS(P)                                                                                         \
    {P "_TILE_ROWS", 1, 1 << 20, 256, {64, 128, 256, 512, 1024, 2048}, 6,                                      \
     "rows per GEMM: the pipeline's (tokens x blocks, packed, one GEMM, written back), the folded form's (tokens)"}, \
    {P "_THREADS", 0, MORA_CPU_MAX_THREADS, 0, {0, 1, 2, 4, 8, 16}, 6,                                         \
     "worker threads per call, the caller's included (0: one per core with a single-threaded OpenBLAS, 1 with a multi-threaded one)"}, \
    {P "_GEMM", 0, 3, 0, {0, 1, 2, 3}, 4,                                                                      \
     "whose sgemm: 1 OpenBLAS, 2 oneDNN, 3 BLIS (runtime/cpu_gemm.h); 0 oneDNN where installed, else OpenBLAS"}, \
    {P "_FOLD", 0, 1, 1, {1, 0}, 2,                                                                            \
     "rope, reshape: 1 plain GEMMs per block on strided views (M_t = M·R_t), 0 the packed pipeline"}
#define HOST_CONSTRAINTS                                                                                       \
    CONSTRAINTS({MORA_RULE_AT_MOST_CORES, NULL, "THREADS", NULL, 0}, {MORA_RULE_LIBRARY, NULL, "GEMM", NULL, 0},    \
                {MORA_RULE_BLOCK_OP, NULL, "FOLD", NULL, 0})

static void fwd_groups(const mora_kernel_spec *spec, int64_t n, size_t groups[3]);
static void dx_gather_groups(const mora_kernel_spec *spec, int64_t n, size_t groups[3]);
static void dm_groups(const mora_kernel_spec *spec, int64_t n, size_t groups[3]);
static void dm_reduce_groups(const mora_kernel_spec *spec, int64_t n, size_t groups[3]);
static void merge_groups(const mora_kernel_spec *spec, int64_t n, size_t groups[3]);
static void adamw_chunk_groups(const mora_kernel_spec *spec, int64_t n, size_t groups[3]);
static void adamw_element_groups(const mora_kernel_spec *spec, int64_t n, size_t groups[3]);
static void one_group(const mora_kernel_spec *spec, int64_t n, size_t groups[3]);
static size_t dx_scratch(const mora_kernel_spec *spec, int64_t n);
static size_t dm_scratch(const mora_kernel_spec *spec, int64_t n);
static size_t host_scratch(const mora_kernel_spec *spec, int64_t n);

#define ADAMW_CONSTANT {MORA_SIZE_CONSTANT, NULL, MORA_ADAMW_LS}
/* The optimizer's entry points take the same arguments in both families (templates/adamw.kern). */
#define ADAMW_ENTRIES(threads)                                                                                 \
    ENTRIES({"mora_grad_sq_partial", ARGS(MORA_KARG_GRADS, MORA_KARG_N, MORA_KARG_PARTIAL), threads, NONE,    \
             adamw_chunk_groups, MORA_RUNS_WITH_CLIP},                                                         \
            {"mora_grad_norm_finish", ARGS(MORA_KARG_PARTIAL, MORA_KARG_PARTIAL_COUNT, MORA_KARG_MAX_NORM, MORA_KARG_CLIP), \
             threads, NONE, one_group, MORA_RUNS_WITH_CLIP},                                                   \
            {"mora_adamw",                                                                                     \
             ARGS(MORA_KARG_PARAMS, MORA_KARG_GRADS, MORA_KARG_EXP_AVG, MORA_KARG_EXP_AVG_SQ, MORA_KARG_N,     \
                  MORA_KARG_DECAY, MORA_KARG_ONE_MINUS_BETA1, MORA_KARG_BETA2, MORA_KARG_ONE_MINUS_BETA2,      \
                  MORA_KARG_NEG_STEP_SIZE, MORA_KARG_BIAS2_SQRT, MORA_KARG_EPS, MORA_KARG_CLIP, MORA_KARG_USE_CLIP), \
             threads, NONE, adamw_element_groups, MORA_RUNS_ALWAYS})

/* The generated family: opencl, cuda, hip. Entry argument lists follow the templates' signatures. */
static const mora_kind_decl generated_kinds[MORA_KIND_ALL_COUNT] = {
    [MORA_KIND_FWD] = {.name = "fwd", .kind = MORA_KIND_FWD, .prefix = "FWD", .template_name = "fwd.kern",
                       ENTRIES({"mora_fwd",
                                ARGS(MORA_KARG_X, MORA_KARG_LDX, MORA_KARG_Y, MORA_KARG_LDY, MORA_KARG_M,
                                     MORA_KARG_ROPE_TABLE, MORA_KARG_N, MORA_KARG_SCALE),
                                GEMM_TILE, GEMM_TILE, fwd_groups, MORA_RUNS_ALWAYS}),
                       PARAMS(GEMM_PARAMS("FWD", "H (token·block x r̂)"), MMA_PARAM("FWD")),
                       CONSTRAINTS(GEMM_CONSTRAINTS)},
    /* U = decompᵀ(dy)·M into the scratch, then the compᵀ gather (the queue is in order) */
    [MORA_KIND_BWD_DX] = {.name = "bwd_dx", .kind = MORA_KIND_BWD_DX, .prefix = "DX", .template_name = "bwd_dx.kern",
                          ENTRIES({"mora_bwd_dx_gemm",
                                   ARGS(MORA_KARG_DY, MORA_KARG_LDDY, MORA_KARG_M, MORA_KARG_SCRATCH, MORA_KARG_N),
                                   GEMM_TILE, GEMM_TILE, fwd_groups, MORA_RUNS_ALWAYS},
                                  {"mora_bwd_dx_gather",
                                   ARGS(MORA_KARG_SCRATCH, MORA_KARG_ROPE_TABLE, MORA_KARG_DX, MORA_KARG_LDDX,
                                        MORA_KARG_N, MORA_KARG_SCALE),
                                   PARAM_SIZE("GATHER_LS"), NONE, dx_gather_groups, MORA_RUNS_ALWAYS}),
                          PARAMS(GEMM_PARAMS("DX", "U (token·block x r̂)"), LS_PARAM("DX_GATHER_LS", "the gather"),
                                 MMA_PARAM("DX")),
                          CONSTRAINTS(GEMM_CONSTRAINTS), .scratch_floats = dx_scratch},
    /* dM (+ the ordered reduction of its slices, which applies the scale then) */
    [MORA_KIND_BWD_DM] = {.name = "bwd_dm", .kind = MORA_KIND_BWD_DM, .prefix = "DM", .template_name = "bwd_dm.kern",
                          ENTRIES({"mora_bwd_dm",
                                   ARGS(MORA_KARG_X, MORA_KARG_LDX, MORA_KARG_DY, MORA_KARG_LDDY, MORA_KARG_ROPE_TABLE,
                                        MORA_KARG_DM, MORA_KARG_SCRATCH, MORA_KARG_N, MORA_KARG_SCALE),
                                   GEMM_TILE, GEMM_TILE, dm_groups, MORA_RUNS_ALWAYS},
                                  {"mora_bwd_dm_reduce", ARGS(MORA_KARG_SCRATCH, MORA_KARG_DM, MORA_KARG_SCALE),
                                   PARAM_SIZE("REDUCE_LS"), NONE, dm_reduce_groups, MORA_RUNS_WITH_SCRATCH}),
                          PARAMS(GEMM_PARAMS("DM", "dM (r̂ x r̂)"),
                                 {"DM_SPLIT", 1, INT_MAX, 1, {1, 2, 4, 8, 16, 32}, 6, "slices of the token reduction"},
                                 LS_PARAM("DM_REDUCE_LS", "the reduction"), MMA_PARAM("DM")),
                          CONSTRAINTS(GEMM_CONSTRAINTS, {MORA_RULE_AT_MOST_RHAT, NULL, "TM", NULL, 0},
                                      {MORA_RULE_DEFAULT_UNLESS, NULL, "SPLIT", "REDUCE_LS", 0}),
                          .scratch_floats = dm_scratch},
    [MORA_KIND_MERGE] = {.name = "merge", .kind = MORA_KIND_MERGE, .prefix = "MERGE", .template_name = "merge.kern",
                         ENTRIES({"mora_merge",
                                  ARGS(MORA_KARG_W, MORA_KARG_LDW, MORA_KARG_M, MORA_KARG_ROPE_TABLE, MORA_KARG_SCALE),
                                  PARAM_SIZE("LS"), NONE, merge_groups, MORA_RUNS_ALWAYS}),
                         PARAMS(LS_PARAM("MERGE_LS", "the merge"))},
    [MORA_KIND_ADAMW] = {.name = "adamw", .kind = MORA_KIND_ADAMW, .prefix = "ADAMW", .template_name = "adamw.kern",
                         ADAMW_ENTRIES(ADAMW_CONSTANT), NO_PARAMS},
};

/* The host family: the cpu backend's kernels. Each call is one launch that runs on the caller's
 * thread and its workers; the scratch holds every worker's packed tiles. */
/* A layer kind of the host family: one entry point, the tile and threads parameters, the scratch. */
#define HOST_LAYER_KIND(KIND, NAME, P, ENTRY, ...)                                                              \
    [KIND] = {.name = NAME, .kind = KIND, .prefix = P,                                                           \
              ENTRIES({ENTRY, ARGS(__VA_ARGS__), ONE, NONE, one_group, MORA_RUNS_ALWAYS}), PARAMS(HOST_PARAMS(P)), \
              HOST_CONSTRAINTS, .scratch_floats = host_scratch}
static const mora_kind_decl host_kinds[MORA_KIND_ALL_COUNT] = {
    HOST_LAYER_KIND(MORA_KIND_FWD, "fwd", "FWD", "mora_fwd", MORA_KARG_X, MORA_KARG_LDX, MORA_KARG_Y, MORA_KARG_LDY,
                    MORA_KARG_M, MORA_KARG_N, MORA_KARG_SCALE, MORA_KARG_SCRATCH),
    HOST_LAYER_KIND(MORA_KIND_BWD_DX, "bwd_dx", "DX", "mora_bwd_dx", MORA_KARG_DY, MORA_KARG_LDDY, MORA_KARG_M,
                    MORA_KARG_DX, MORA_KARG_LDDX, MORA_KARG_N, MORA_KARG_SCALE, MORA_KARG_SCRATCH),
    HOST_LAYER_KIND(MORA_KIND_BWD_DM, "bwd_dm", "DM", "mora_bwd_dm", MORA_KARG_X, MORA_KARG_LDX, MORA_KARG_DY,
                    MORA_KARG_LDDY, MORA_KARG_DM, MORA_KARG_N, MORA_KARG_SCALE, MORA_KARG_SCRATCH),
    [MORA_KIND_MERGE] = {.name = "merge", .kind = MORA_KIND_MERGE, .prefix = "MERGE",
                         ENTRIES({"mora_merge", ARGS(MORA_KARG_W, MORA_KARG_LDW, MORA_KARG_M, MORA_KARG_SCALE), ONE,
                                  NONE, one_group, MORA_RUNS_ALWAYS}),
                         NO_PARAMS},
    [MORA_KIND_ADAMW] = {.name = "adamw", .kind = MORA_KIND_ADAMW, .prefix = "ADAMW", ADAMW_ENTRIES(ONE), NO_PARAMS},
};

/* ---- names ------------------------------------------------------------------------------------- */

const mora_kind_decl *mora_kind_decl_get(mora_kind kind, mora_dialect dialect) {
    if ((int)kind < 0 || (int)kind >= MORA_KIND_ALL_COUNT || (int)dialect < 0 || (int)dialect >= MORA_DIALECT_COUNT)
        return NULL;
    return dialect == MORA_DIALECT_HOST ? &host_kinds[kind] : &generated_kinds[kind];
}

const mora_kind_decl *mora_spec_decl(const mora_kernel_spec *spec) { return mora_kind_decl_get(spec->kind, spec->dialect); }

const char *mora_kind_name(mora_kind kind) {
    const mora_kind_decl *d = mora_kind_decl_get(kind, MORA_DIALECT_OPENCL);
    return d ? d->name : "unknown";
}

static mora_status kind_from_string(const char *name, int count, mora_kind *kind) {
    MORA_CHECK_PTR(name);
    MORA_CHECK_PTR(kind);
    for (int k = 0; k < count; ++k)
        if (strcmp(name, generated_kinds[k].name) == 0) {
            *kind = (mora_kind)k;
            return MORA_OK;
        }
    return mora_fail(MORA_E_UNKNOWN_KIND, "kind=\"%s\": unknown kernel kind; expected fwd, bwd_dx, bwd_dm or merge%s",
                     name, count > MORA_KIND_COUNT ? " (or adamw)" : "");
}

mora_status mora_kind_from_string(const char *name, mora_kind *kind) { return kind_from_string(name, MORA_KIND_COUNT, kind); }

mora_status mora_kind_from_string_any(const char *name, mora_kind *kind) {
    return kind_from_string(name, MORA_KIND_ALL_COUNT, kind);
}

static const char *const dialect_names[MORA_DIALECT_COUNT] = {"opencl", "cuda", "hip", "host"};

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
    return mora_fail(MORA_E_ARG, "dialect=\"%s\": unknown; expected opencl, cuda, hip or host", name);
}

mora_status mora_dialect_of_backend(const char *backend, mora_dialect *dialect) {
    MORA_CHECK_PTR(backend);
    if (strcmp(backend, "cpu") == 0) {
        *dialect = MORA_DIALECT_HOST;
        return MORA_OK;
    }
    if (strcmp(backend, "host") != 0 && mora_dialect_from_string(backend, dialect) == MORA_OK) return MORA_OK;
    return mora_fail(MORA_E_ARG, "backend=\"%s\": unknown; expected cpu, opencl, cuda or hip", backend);
}

/* ---- parameters by name ------------------------------------------------------------------------ */

mora_kernel_spec mora_spec_default(const mora_shape *s, mora_dtype dtype, mora_kind kind, mora_dialect dialect) {
    mora_kernel_spec spec;
    memset(&spec, 0, sizeof spec);
    if (s) spec.shape = *s;
    spec.dtype = dtype;
    spec.kind = kind;
    spec.dialect = dialect;
    const mora_kind_decl *d = mora_spec_decl(&spec);
    for (int i = 0; d && i < d->param_count; ++i) spec.params[i] = d->params[i].default_value;
    return spec;
}

mora_kernel_spec mora_spec_adamw(mora_dialect dialect) {
    return mora_spec_default(NULL, MORA_F32, MORA_KIND_ADAMW, dialect);
}

int mora_kind_param_index(const mora_kind_decl *d, const char *name) {
    for (int i = 0; d && name && i < d->param_count; ++i)
        if (strcmp(d->params[i].name, name) == 0) return i;
    return -1;
}

/* Index of the parameter of role `role` ("<prefix>_<role>"), or -1. */
static int role_index(const mora_kind_decl *d, const char *role) {
    if (!d || !role) return -1;
    const size_t prefix = strlen(d->prefix);
    for (int i = 0; i < d->param_count; ++i) {
        const char *name = d->params[i].name;
        if (strncmp(name, d->prefix, prefix) == 0 && name[prefix] == '_' && strcmp(name + prefix + 1, role) == 0) return i;
    }
    return -1;
}

int mora_spec_role(const mora_kernel_spec *spec, const char *role, int absent) {
    const int i = role_index(mora_spec_decl(spec), role);
    return i < 0 ? absent : spec->params[i];
}

static const char *role_name(const mora_kind_decl *d, const char *role) {
    const int i = role_index(d, role);
    return i < 0 ? role : d->params[i].name;
}

mora_status mora_spec_set_param(mora_kernel_spec *spec, const char *name, int value) {
    MORA_CHECK_PTR(spec);
    MORA_CHECK_PTR(name);
    const mora_kind_decl *d = mora_spec_decl(spec);
    if (!d) return mora_fail(MORA_E_UNKNOWN_KIND, "kind=%d: unknown kernel kind", (int)spec->kind);
    const int i = mora_kind_param_index(d, name);
    if (i < 0) {
        char known[256] = "";
        for (int k = 0; k < d->param_count; ++k) {
            strncat(known, k ? ", " : "", sizeof known - strlen(known) - 1);
            strncat(known, d->params[k].name, sizeof known - strlen(known) - 1);
        }
        return mora_fail(MORA_E_PARAM, "param %s: not a parameter of kind %s on %s (it has: %s)", name, d->name,
                         mora_dialect_name(spec->dialect), d->param_count ? known : "none");
    }
    if (value < d->params[i].min)
        return mora_fail(MORA_E_PARAM, "param %s=%d: must be >= %d", name, value, d->params[i].min);
    spec->params[i] = value;
    return MORA_OK;
}

int mora_spec_get_param(const mora_kernel_spec *spec, const char *name) {
    const int i = mora_kind_param_index(mora_spec_decl(spec), name);
    return i < 0 ? -1 : spec->params[i];
}

int *mora_spec_param_slot(mora_kernel_spec *spec, const char *name) {
    const int i = mora_kind_param_index(mora_spec_decl(spec), name);
    return i < 0 ? NULL : &spec->params[i];
}

int mora_spec_mma(const mora_kernel_spec *spec) { return mora_spec_role(spec, "MMA", 0) == 1; }

int mora_mma_lanes(mora_dialect dialect) {
    return dialect == MORA_DIALECT_CUDA ? 32 : dialect == MORA_DIALECT_HIP ? 64 : 0;
}

int mora_mma_frag_n(mora_dialect dialect) {
    return dialect == MORA_DIALECT_CUDA ? 8 : dialect == MORA_DIALECT_HIP ? 16 : 0;
}

int mora_kind_takes(const mora_kind_decl *d, mora_karg arg) {
    for (int e = 0; d && e < d->entry_count; ++e)
        for (int a = 0; a < MORA_MAX_KERNEL_ARGS && d->entries[e].args[a] != MORA_KARG_END; ++a)
            if (d->entries[e].args[a] == arg) return 1;
    return 0;
}

/* ---- resource formulas ------------------------------------------------------------------------- */

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
static size_t gemm_tile_threads(const mora_kernel_spec *spec) {
    const int64_t tm = mora_spec_role(spec, "TM", 0), tn = mora_spec_role(spec, "TN", 0),
                  wm = mora_spec_role(spec, "WM", 0), wn = mora_spec_role(spec, "WN", 0);
    if (wm < 1 || wn < 1 || tm < 0 || tn < 0) return 0;
    if (mora_spec_mma(spec) && mora_mma_lanes(spec->dialect) > 0) {
        const int64_t frag_m = 16 * wm, frag_n = (int64_t)mora_mma_frag_n(spec->dialect) * wn; /* < 2^36 */
        return mul_sat(mul_sat((size_t)mora_mma_lanes(spec->dialect), (size_t)(tm / frag_m)), (size_t)(tn / frag_n));
    }
    return mul_sat((size_t)(tm / wm), (size_t)(tn / wn));
}

/* (TM + TN)·TK floats; the sum of two ints cannot overflow 64 bits, the products saturate */
static size_t gemm_tile_local_bytes(const mora_kernel_spec *spec) {
    const size_t rows = count_of(mora_spec_role(spec, "TM", 0)) + count_of(mora_spec_role(spec, "TN", 0));
    return mul_sat(mul_sat(rows, count_of(mora_spec_role(spec, "TK", 0))), sizeof(float));
}

static size_t size_of(const mora_size_formula *f, const mora_kernel_spec *spec, int local) {
    switch (f->rule) {
    case MORA_SIZE_ZERO: return 0;
    case MORA_SIZE_ONE: return 1;
    case MORA_SIZE_CONSTANT: return f->constant;
    case MORA_SIZE_PARAM: return count_of(mora_spec_role(spec, f->role, 0));
    case MORA_SIZE_GEMM_TILE: return local ? gemm_tile_local_bytes(spec) : gemm_tile_threads(spec);
    }
    return 0;
}

size_t mora_spec_threads(const mora_kernel_spec *spec, int entry) {
    const mora_kind_decl *d = mora_spec_decl(spec);
    if (!d || entry < 0 || entry >= d->entry_count) return 0;
    return size_of(&d->entries[entry].threads, spec, 0);
}

size_t mora_spec_local_bytes(const mora_kernel_spec *spec, int entry) {
    const mora_kind_decl *d = mora_spec_decl(spec);
    if (!d || entry < 0 || entry >= d->entry_count) return 0;
    return size_of(&d->entries[entry].local_bytes, spec, 1);
}

static size_t ceil_div(int64_t a, int64_t b) { return (size_t)((a + b - 1) / b); }

static void fwd_groups(const mora_kernel_spec *spec, int64_t n, size_t groups[3]) {
    const mora_geometry geo = mora_shape_geometry(&spec->shape);
    groups[0] = ceil_div(n * geo.blocks_read, mora_spec_role(spec, "TM", 1));
    groups[1] = ceil_div(spec->shape.rhat, mora_spec_role(spec, "TN", 1));
}

static void dx_gather_groups(const mora_kernel_spec *spec, int64_t n, size_t groups[3]) {
    groups[0] = ceil_div(n * spec->shape.d_in, mora_spec_role(spec, "GATHER_LS", 1));
}

static void dm_groups(const mora_kernel_spec *spec, int64_t n, size_t groups[3]) {
    (void)n;
    groups[0] = ceil_div(spec->shape.rhat, mora_spec_role(spec, "TM", 1));
    groups[1] = ceil_div(spec->shape.rhat, mora_spec_role(spec, "TN", 1));
    groups[2] = count_of(mora_spec_role(spec, "SPLIT", 1));
}

static void dm_reduce_groups(const mora_kernel_spec *spec, int64_t n, size_t groups[3]) {
    (void)n;
    groups[0] = ceil_div(spec->shape.rhat * spec->shape.rhat, mora_spec_role(spec, "REDUCE_LS", 1));
}

/* merge touches only the columns ΔW has: reshape/rope's first min(r̂, d_in), truncate's first r̂ */
static void merge_groups(const mora_kernel_spec *spec, int64_t n, size_t groups[3]) {
    (void)n;
    const mora_shape *s = &spec->shape;
    const mora_comp_family comp = mora_op_comp_family(s->op);
    int64_t window = s->d_in;
    if (comp == MORA_COMP_RESHAPE || comp == MORA_COMP_ROPE) window = s->rhat < s->d_in ? s->rhat : s->d_in;
    if (comp == MORA_COMP_TRUNC) window = s->rhat;
    groups[0] = ceil_div(s->d_out * window, mora_spec_role(spec, "LS", 1));
}

static void adamw_chunk_groups(const mora_kernel_spec *spec, int64_t n, size_t groups[3]) {
    (void)spec;
    groups[0] = ceil_div(n, MORA_ADAMW_CHUNK);
}

static void adamw_element_groups(const mora_kernel_spec *spec, int64_t n, size_t groups[3]) {
    (void)spec;
    groups[0] = ceil_div(n, MORA_ADAMW_LS);
}

static void one_group(const mora_kernel_spec *spec, int64_t n, size_t groups[3]) {
    (void)spec, (void)n;
    groups[0] = 1;
}

void mora_spec_groups(const mora_kernel_spec *spec, int entry, int64_t n, size_t groups[3]) {
    groups[0] = groups[1] = groups[2] = 1;
    const mora_kind_decl *d = mora_spec_decl(spec);
    if (d && entry >= 0 && entry < d->entry_count) d->entries[entry].groups(spec, n, groups);
}

static size_t dx_scratch(const mora_kernel_spec *spec, int64_t n) {
    const mora_geometry geo = mora_shape_geometry(&spec->shape);
    return (size_t)(n * geo.blocks_read * spec->shape.rhat);
}

static size_t dm_scratch(const mora_kernel_spec *spec, int64_t n) {
    (void)n;
    const int split = mora_spec_role(spec, "SPLIT", 1);
    return split > 1 ? (size_t)split * (size_t)(spec->shape.rhat * spec->shape.rhat) : 0;
}

static size_t host_scratch(const mora_kernel_spec *spec, int64_t n) {
    const mora_cpu_params p =
        mora_cpu_params_for(&spec->shape, mora_spec_role(spec, "TILE_ROWS", 0), mora_spec_role(spec, "THREADS", 0),
                            mora_spec_role(spec, "GEMM", 0), mora_spec_role(spec, "FOLD", 0));
    return (mora_cpu_workspace_bytes_for(&spec->shape, &p, n) + sizeof(float) - 1) / sizeof(float);
}

size_t mora_spec_scratch_floats(const mora_kernel_spec *spec, int64_t n) {
    const mora_kind_decl *d = mora_spec_decl(spec);
    return d && d->scratch_floats ? d->scratch_floats(spec, n) : 0;
}

/* ---- constraints ------------------------------------------------------------------------------- */

static int64_t pow2_at_least(int64_t v) {
    int64_t p = 1;
    while (p < v) p *= 2;
    return p;
}

/* Whether a device whose architecture is `arch` ("sm_90", "gfx90a"; "" when unknown) has the
 * tensor / matrix cores the MMA variant of `dtype` uses: mma.sync m16n8k16 from sm_80; MFMA
 * 16x16x16f16 on CDNA (gfx908 and up), its bf16_1k form from gfx90a. Unknown: assumed yes (a
 * candidate that does not compile is rejected by the tuner anyway). */
static int has_matrix_cores(mora_dialect dialect, const char *arch, mora_dtype dtype) {
    if (!arch || !arch[0]) return 1;
    if (dialect == MORA_DIALECT_CUDA) {
        if (strncmp(arch, "sm_", 3) != 0) return 1;
        return atoi(arch + 3) >= 80;
    }
    if (dialect == MORA_DIALECT_HIP) {
        if (strncmp(arch, "gfx9", 4) != 0) return 0; /* RDNA (gfx10+), older GCN: no MFMA */
        if (strncmp(arch, "gfx90a", 6) == 0 || strncmp(arch, "gfx94", 5) == 0 || strncmp(arch, "gfx95", 5) == 0)
            return 1;
        return strncmp(arch, "gfx908", 6) == 0 && dtype == MORA_F16;
    }
    return 0;
}

static int is_search_rule(mora_rule rule) { return rule >= MORA_RULE_AT_MOST_RHAT; }

/* Whether constraint c holds for spec (device: the search-space rules' device; NULL for validity
 * rules). On failure of a validity rule, the sentence is set. Every parameter is already within
 * its range, so every divisor below is >= 1. */
static int rule_holds(const mora_kind_decl *d, const mora_constraint *c, const mora_kernel_spec *spec,
                      const mora_device_info *device, int explain) {
    if (c->when && mora_spec_role(spec, c->when, 0) != 1) return 1;
    const int a = mora_spec_role(spec, c->a, 0), b = c->b ? mora_spec_role(spec, c->b, 1) : 1;
    const char *an = c->a ? role_name(d, c->a) : "", *bn = c->b ? role_name(d, c->b) : "";
    const char *wn = c->when ? role_name(d, c->when) : "";
    char with[96] = "";
    if (c->when) snprintf(with, sizeof with, " with %s=1", wn);
    switch (c->rule) {
    case MORA_RULE_DIVIDES:
        if (b % a == 0) return 1;
        if (explain) mora_fail(MORA_E_PARAM, "param %s=%d: must divide %s=%d", an, a, bn, b);
        return 0;
    case MORA_RULE_MULTIPLE: {
        const int64_t factor = c->factor ? c->factor : mora_mma_frag_n(spec->dialect);
        const int64_t step = factor * (int64_t)b; /* 64-bit: factor·b overflows an int for b >= 2^27 */
        if (step > 0 && a % step == 0) return 1;
        if (!explain) return 0;
        if (!c->b) mora_fail(MORA_E_PARAM, "param %s=%d: must be a multiple of %lld%s", an, a, (long long)factor, with);
        else if (c->factor) mora_fail(MORA_E_PARAM, "param %s=%d: must be a multiple of %lld·%s = %lld%s", an, a,
                                      (long long)factor, bn, (long long)step, with);
        else mora_fail(MORA_E_PARAM, "param %s=%d: must be a multiple of %lld·%s = %lld%s on %s", an, a, (long long)factor,
                       bn, (long long)step, with, mora_dialect_name(spec->dialect));
        return 0;
    }
    case MORA_RULE_MMA_DIALECT:
        if (mora_mma_lanes(spec->dialect) > 0) return 1;
        if (explain)
            mora_fail(MORA_E_PARAM,
                      "param %s=1: the tensor-core product needs the cuda or hip dialect, not %s; use %s=0 (the scalar product)",
                      an, mora_dialect_name(spec->dialect), an);
        return 0;
    case MORA_RULE_HALF_DTYPE:
        if (spec->dtype == MORA_F16 || spec->dtype == MORA_BF16) return 1;
        if (explain)
            mora_fail(MORA_E_PARAM,
                      "param %s=1: the tensor-core product is for dtype f16 or bf16, not %s; use %s=0 (the scalar product)",
                      an, mora_dtype_name(spec->dtype), an);
        return 0;
    case MORA_RULE_AT_MOST_RHAT: {
        const int64_t tile = pow2_at_least(spec->shape.rhat) < 8 ? 8 : pow2_at_least(spec->shape.rhat);
        return a <= tile;
    }
    case MORA_RULE_MIN_THREADS: return mora_spec_threads(spec, 0) >= (size_t)c->factor;
    case MORA_RULE_MATRIX_CORES: return has_matrix_cores(spec->dialect, device ? device->arch : "", spec->dtype);
    case MORA_RULE_ACCUMULATORS: return 4 * (int64_t)a * (int64_t)b <= c->factor;
    case MORA_RULE_DEFAULT_UNLESS: {
        const int i = role_index(d, c->b);
        return a > 1 || i < 0 || spec->params[i] == d->params[i].default_value;
    }
    case MORA_RULE_AT_MOST_CORES: return !device || device->compute_units < 1 || a <= device->compute_units;
    case MORA_RULE_LIBRARY: return !device || a == 0 || (a >= 1 && a <= 32 && ((device->libraries >> (a - 1)) & 1));
    case MORA_RULE_BLOCK_OP: {
        const mora_comp_family comp = mora_op_comp_family(spec->shape.op);
        const int i = role_index(d, c->a);
        return comp == MORA_COMP_RESHAPE || comp == MORA_COMP_ROPE || i < 0 || spec->params[i] == d->params[i].default_value;
    }
    }
    return 0;
}

mora_status mora_spec_check(const mora_kernel_spec *spec, size_t max_threads, size_t max_local_bytes) {
    MORA_CHECK_PTR(spec);
    const mora_kind_decl *d = mora_spec_decl(spec);
    if (!d) return mora_fail(MORA_E_UNKNOWN_KIND, "kind=%d dialect=%d: unknown kernel kind", (int)spec->kind, (int)spec->dialect);
    for (int i = 0; i < d->param_count; ++i) {
        const mora_param_decl *p = &d->params[i];
        const int v = spec->params[i];
        if (v < p->min) return mora_fail(MORA_E_PARAM, "param %s=%d: must be >= %d", p->name, v, p->min);
        if (v > p->max) {
            if (p->min == 0 && p->max == 1) return mora_fail(MORA_E_PARAM, "param %s=%d: must be 0 or 1", p->name, v);
            return mora_fail(MORA_E_PARAM, "param %s=%d: must be <= %d", p->name, v, p->max);
        }
    }
    for (int c = 0; c < d->constraint_count; ++c)
        if (!is_search_rule(d->constraints[c].rule) && !rule_holds(d, &d->constraints[c], spec, NULL, 1)) return MORA_E_PARAM;
    for (int e = 0; e < d->entry_count; ++e) {
        const size_t threads = mora_spec_threads(spec, e);
        if (max_threads && threads > max_threads)
            return mora_fail(MORA_E_PARAM, "%s: %zu work-items per work-group: exceeds the device's %zu",
                             d->entries[e].name, threads, max_threads);
        const size_t local = mora_spec_local_bytes(spec, e);
        if (max_local_bytes && local > max_local_bytes)
            return mora_fail(MORA_E_PARAM, "%s: %zu bytes of local memory: exceeds the device's %zu", d->entries[e].name,
                             local, max_local_bytes);
    }
    return MORA_OK;
}

int mora_space_valid(const mora_kernel_spec *spec, const mora_device_info *device) {
    if (mora_spec_check(spec, device->max_work_group, device->local_mem_bytes) != MORA_OK) return 0;
    const mora_kind_decl *d = mora_spec_decl(spec);
    for (int c = 0; c < d->constraint_count; ++c)
        if (is_search_rule(d->constraints[c].rule) && !rule_holds(d, &d->constraints[c], spec, device, 0)) return 0;
    return 1;
}

/* One limit for every backend, so that a shape one refuses the others refuse too: the generated
 * kernels index with int, and the host kernels pass rows, strides and r̂ to sgemm as int. */
mora_status mora_kernel_shape_check(const mora_shape *s, mora_dialect dialect) {
    const char *who = dialect == MORA_DIALECT_HOST ? "the host kernels (sgemm's int sizes)" : "the generated kernels";
    const struct {
        const char *name;
        int64_t value;
    } extents[] = {{"d_in", s->d_in}, {"d_out", s->d_out}, {"d_in + rhat", s->d_in + s->rhat},
                   {"d_out + rhat", s->d_out + s->rhat}, {"rhat * rhat", s->rhat * s->rhat}};
    for (size_t i = 0; i < sizeof extents / sizeof *extents; ++i)
        if (extents[i].value >= MORA_KERNEL_INDEX_LIMIT)
            return mora_fail(MORA_E_SIZE, "%s=%lld: %s need it below 2^31", extents[i].name,
                             (long long)extents[i].value, who);
    return MORA_OK;
}

int mora_constraint_describe(const mora_kind_decl *d, const mora_constraint *c, char *out, size_t size) {
    const char *a = c->a ? role_name(d, c->a) : "", *b = c->b ? role_name(d, c->b) : "";
    char when[64] = "";
    if (c->when) snprintf(when, sizeof when, "with %s=1: ", role_name(d, c->when));
    char factor[48];
    if (c->factor) snprintf(factor, sizeof factor, "%d", c->factor);
    else snprintf(factor, sizeof factor, "frag_n");
    const char *frag_n = c->factor ? "" : " (frag_n: 8 on cuda, 16 on hip)";
    switch (c->rule) {
    case MORA_RULE_DIVIDES: snprintf(out, size, "%s%s divides %s", when, a, b); break;
    case MORA_RULE_MULTIPLE:
        if (c->b) snprintf(out, size, "%s%s is a multiple of %s·%s%s", when, a, factor, b, frag_n);
        else snprintf(out, size, "%s%s is a multiple of %s%s", when, a, factor, frag_n);
        break;
    case MORA_RULE_MMA_DIALECT: snprintf(out, size, "%sthe dialect is cuda or hip", when); break;
    case MORA_RULE_HALF_DTYPE: snprintf(out, size, "%sthe dtype is f16 or bf16", when); break;
    case MORA_RULE_AT_MOST_RHAT: snprintf(out, size, "%s%s <= r̂ rounded up to a power of two (at least 8)", when, a); break;
    case MORA_RULE_MIN_THREADS: snprintf(out, size, "%sat least %d work-items in the first entry's work-group", when, c->factor); break;
    case MORA_RULE_MATRIX_CORES: snprintf(out, size, "%sthe device has the MMA instructions for the dtype", when); break;
    case MORA_RULE_ACCUMULATORS: snprintf(out, size, "%s4·%s·%s <= %d accumulators per lane", when, a, b, c->factor); break;
    case MORA_RULE_DEFAULT_UNLESS: snprintf(out, size, "%s%s keeps its default unless %s > 1", when, b, a); break;
    case MORA_RULE_AT_MOST_CORES: snprintf(out, size, "%s%s <= the device's cores", when, a); break;
    case MORA_RULE_LIBRARY: snprintf(out, size, "%sthe library %s names (1 + its bit in the device's libraries) is installed", when, a); break;
    case MORA_RULE_BLOCK_OP: snprintf(out, size, "%s%s keeps its default unless the operator is reshape or rope", when, a); break;
    }
    return is_search_rule(c->rule);
}
