/* Internal: kernel kinds, their tuning parameters, constraints, resource formulas and entry points —
 * declared once, as data, in one table per kind and dialect family (codegen/kernels.c) — and kernel
 * specs, addressed by parameter name everywhere.
 *
 * A spec = (shape, dtype, kind, dialect, parameter values). d_in, d_out, r̂ and the operator become
 * compile-time constants of the generated source; parameters become #defines. Two dialect families
 * share the kinds: the generated kernels (opencl, cuda, hip: the .kern files of templates/) and the host dialect
 * (the cpu backend's built-in kernels, runtime/cpu_kernels.h, configured by the same constants). A
 * kind has one table per family; everything else (spec checks, the tuner's space, cache records,
 * the database, mora-gen, the docs) reads those tables. docs/kernels.md says where a new parameter,
 * constraint, kind or backend goes. */
#ifndef MORA_CODEGEN_KERNELS_H
#define MORA_CODEGEN_KERNELS_H

#include <stddef.h>

#include "backend.h" /* mora_dialect, mora_device_info */
#include "mora.h"

typedef enum mora_kind {
    MORA_KIND_FWD = 0,    /* y += scale·decomp(M comp(x)) */
    MORA_KIND_BWD_DX = 1, /* dx += comp^T(M^T decomp^T(dy)) */
    MORA_KIND_BWD_DM = 2, /* dM += Σ decomp^T(dy) ⊗ comp(x) */
    MORA_KIND_MERGE = 3,  /* W += s·ΔW */
    MORA_KIND_ADAMW = 4   /* the optimizer step over an arena (not shape-specific, not tuned) */
} mora_kind;
#define MORA_KIND_COUNT 4     /* a layer's kinds, tuned per shape: fwd, bwd_dx, bwd_dm, merge */
#define MORA_KIND_ALL_COUNT 5 /* and the optimizer's */

#define MORA_MAX_PARAMS 8
#define MORA_MAX_PARAM_VALUES 8
#define MORA_MAX_ENTRIES 3
#define MORA_MAX_CONSTRAINTS 16
#define MORA_MAX_KERNEL_ARGS 16

/* One tuning parameter. */
typedef struct mora_param_decl {
    const char *name;                  /* the #define, and its name in records, the db and mora-gen
                                          --param: "<kind prefix>_<role>", e.g. "FWD_TM" */
    int min, max;                      /* the values mora_spec_check accepts */
    int default_value;
    int values[MORA_MAX_PARAM_VALUES]; /* what the tuner searches (all within [min, max]) */
    int value_count;
    const char *meaning;               /* one line, for mora-gen --list-params and docs/kernels.md */
} mora_param_decl;

/* A rule over parameters, named by role (the part after the kind's prefix: "TM" for FWD_TM). The
 * vocabulary is closed, like CLBlast's constraint helpers, so one function checks them and one
 * sentence describes each (kernels.c). */
typedef enum mora_rule {
    /* validity: mora_spec_check */
    MORA_RULE_DIVIDES,          /* a divides b */
    MORA_RULE_MULTIPLE,         /* a is a multiple of factor·b (factor·1 without b); factor 0: the
                                   dialect's MMA fragment columns (8 on cuda, 16 on hip) */
    MORA_RULE_MMA_DIALECT,      /* the dialect has a tensor-core / matrix-core product (cuda, hip) */
    MORA_RULE_HALF_DTYPE,       /* the dtype is f16 or bf16 */
    /* the tuner's search space only: mora_space_valid (a spec may break them and still run) */
    MORA_RULE_AT_MOST_RHAT,     /* a <= r̂ rounded up to a power of two (at least 8): larger tiles idle */
    MORA_RULE_MIN_THREADS,      /* entry 0's work-group has at least factor work-items */
    MORA_RULE_MATRIX_CORES,     /* the device has the MMA instructions for the dtype */
    MORA_RULE_ACCUMULATORS,     /* 4·a·b accumulators per lane at most factor */
    MORA_RULE_DEFAULT_UNLESS,   /* b keeps its default unless a > 1 (b is unused otherwise) */
    MORA_RULE_AT_MOST_CORES,    /* a <= the device's compute units */
    MORA_RULE_LIBRARY,          /* a = 0 (the default provider), or 1 + a bit of mora_device_info.libraries that is set */
    MORA_RULE_BLOCK_OP          /* a keeps its default unless the operator is reshape or rope (blocks of x) */
} mora_rule;

typedef struct mora_constraint {
    mora_rule rule;
    const char *when; /* NULL, or the role of a switch: the rule applies only when it is 1 ("MMA") */
    const char *a, *b; /* roles the rule reads (b may be NULL) */
    int factor;
} mora_constraint;

/* The values a kernel's argument list is made of (codegen/launch.h fills them for a call). */
typedef enum mora_karg {
    MORA_KARG_END = 0, /* ends a list */
    MORA_KARG_X, MORA_KARG_LDX, MORA_KARG_Y, MORA_KARG_LDY, MORA_KARG_DY, MORA_KARG_LDDY, MORA_KARG_DX,
    MORA_KARG_LDDX, MORA_KARG_M, MORA_KARG_DM, MORA_KARG_W, MORA_KARG_LDW, MORA_KARG_ROPE_TABLE,
    MORA_KARG_SCRATCH, MORA_KARG_N, MORA_KARG_SCALE,
    /* the optimizer's */
    MORA_KARG_PARAMS, MORA_KARG_GRADS, MORA_KARG_EXP_AVG, MORA_KARG_EXP_AVG_SQ, MORA_KARG_PARTIAL,
    MORA_KARG_PARTIAL_COUNT, MORA_KARG_MAX_NORM, MORA_KARG_CLIP, MORA_KARG_DECAY, MORA_KARG_ONE_MINUS_BETA1,
    MORA_KARG_BETA2, MORA_KARG_ONE_MINUS_BETA2, MORA_KARG_NEG_STEP_SIZE, MORA_KARG_BIAS2_SQRT, MORA_KARG_EPS,
    MORA_KARG_USE_CLIP
} mora_karg;

/* A resource count of an entry point, as data. */
typedef enum mora_size_rule {
    MORA_SIZE_ZERO = 0,  /* none (local memory) */
    MORA_SIZE_ONE,       /* 1 (the host dialect: one call is one "work-group") */
    MORA_SIZE_CONSTANT,  /* `constant` */
    MORA_SIZE_PARAM,     /* the value of parameter `role` */
    MORA_SIZE_GEMM_TILE  /* work-items: (TM/WM)·(TN/WN), or with MMA = 1 lanes·(TM/16WM)·(TN/frag_n·WN);
                            local memory: (TM + TN)·TK floats */
} mora_size_rule;
typedef struct mora_size_formula {
    mora_size_rule rule;
    const char *role;
    size_t constant;
} mora_size_formula;

/* When a call launches an entry point. */
typedef enum mora_entry_runs {
    MORA_RUNS_ALWAYS = 0,
    MORA_RUNS_WITH_SCRATCH, /* only when the kind needs scratch for the call (bwd_dm's split reduction) */
    MORA_RUNS_WITH_CLIP     /* only when the call clips (the optimizer's gradient norm) */
} mora_entry_runs;

struct mora_kernel_spec;
typedef struct mora_entry_decl {
    const char *name;                        /* the kernel's name in the source */
    mora_karg args[MORA_MAX_KERNEL_ARGS];    /* its parameter list, in the source's order (MORA_KARG_END ends it) */
    mora_size_formula threads;               /* work-items per work-group */
    mora_size_formula local_bytes;           /* bytes of local memory per work-group */
    /* work-groups to launch for n tokens (the optimizer: n = arena elements); groups[2] may exceed 1 */
    void (*groups)(const struct mora_kernel_spec *spec, int64_t n, size_t groups[3]);
    mora_entry_runs runs;
} mora_entry_decl;

/* One kernel kind of one dialect family. */
typedef struct mora_kind_decl {
    const char *name;          /* "fwd" */
    mora_kind kind;
    const char *prefix;        /* its parameters are "<prefix>_<role>" */
    const char *template_name; /* "fwd.kern"; NULL in the host dialect (the cpu backend's own kernels) */
    mora_entry_decl entries[MORA_MAX_ENTRIES]; /* launched in this order */
    int entry_count;
    mora_param_decl params[MORA_MAX_PARAMS];
    int param_count;
    mora_constraint constraints[MORA_MAX_CONSTRAINTS]; /* checked in this order */
    int constraint_count;
    /* (optional) float32 scratch the kind needs for n tokens (bwd_dx's U, bwd_dm's partials, the
     * host kernels' packed tiles); NULL: none */
    size_t (*scratch_floats)(const struct mora_kernel_spec *spec, int64_t n);
} mora_kind_decl;

typedef struct mora_kernel_spec {
    mora_shape shape;            /* unused by the optimizer's kind */
    mora_dtype dtype;            /* activations; W's dtype for merge; f32 for the optimizer */
    mora_kind kind;
    mora_dialect dialect;
    int params[MORA_MAX_PARAMS]; /* storage in the order of the kind's table: read and write them by
                                    name (mora_spec_get_param / mora_spec_set_param / mora_spec_role) */
} mora_kernel_spec;

/* The table of `kind` in `dialect`'s family; NULL for an unknown kind or dialect. */
const mora_kind_decl *mora_kind_decl_get(mora_kind kind, mora_dialect dialect);
/* The table of a spec's kind and dialect. */
const mora_kind_decl *mora_spec_decl(const mora_kernel_spec *spec);
const char *mora_kind_name(mora_kind kind);
/* A layer kind by name: "fwd", "bwd_dx", "bwd_dm", "merge". */
mora_status mora_kind_from_string(const char *name, mora_kind *kind);
/* The same, or "adamw" (the optimizer's kind). */
mora_status mora_kind_from_string_any(const char *name, mora_kind *kind);
const char *mora_dialect_name(mora_dialect dialect);
/* "opencl", "cuda", "hip", "host". */
mora_status mora_dialect_from_string(const char *name, mora_dialect *dialect);
/* The dialect of a backend name ("cpu" → host); MORA_E_ARG for an unknown one. */
mora_status mora_dialect_of_backend(const char *backend, mora_dialect *dialect);

/* The generated kernels index rows, M and tokens with int: every extent of a shape they run must be
 * below 2^31 (d_in, d_out, d_in + r̂, d_out + r̂, r̂²), and so must the token count. The host kernels
 * pass r̂ to sgemm as an int. MORA_E_SIZE naming the extent otherwise. The shape must pass
 * mora_shape_check first. */
#define MORA_KERNEL_INDEX_LIMIT ((int64_t)1 << 31)
mora_status mora_kernel_shape_check(const mora_shape *s, mora_dialect dialect);

/* A spec with every parameter at its default. The shape must be checked already. */
mora_kernel_spec mora_spec_default(const mora_shape *s, mora_dtype dtype, mora_kind kind, mora_dialect dialect);
/* Sets parameter `name` (e.g. "FWD_TM") of the spec's kind; MORA_E_PARAM for an unknown name or a
 * value outside the parameter's [min, max]. */
mora_status mora_spec_set_param(mora_kernel_spec *spec, const char *name, int value);
/* Value of parameter `name`, or -1 if the kind has none of that name. */
int mora_spec_get_param(const mora_kernel_spec *spec, const char *name);
/* The value slot of parameter `name` (NULL if none): written without any check (tests, fuzzers). */
int *mora_spec_param_slot(mora_kernel_spec *spec, const char *name);
/* Value of the parameter whose role is `role` ("TM" → "<prefix>_TM"), or `absent` if the kind has none. */
int mora_spec_role(const mora_kernel_spec *spec, const char *role, int absent);
/* Index of a parameter in its kind's table by name (-1 if none). */
int mora_kind_param_index(const mora_kind_decl *d, const char *name);
/* 1 when the spec uses the tensor-core / matrix-core product (its MMA switch is 1). With it a GEMM
 * tile is computed by warps (CUDA, 32 lanes, mma.sync m16n8k16) or wavefronts (HIP, 64 lanes,
 * MFMA 16x16x16), each owning a (16·WM) x (MORA_MMA_N·WN) sub-tile, MORA_MMA_N = 8 on CUDA and 16
 * on HIP; see templates/gemm_tile.kern. */
int mora_spec_mma(const mora_kernel_spec *spec);
/* Lanes per warp / wavefront and the columns of one MMA fragment for a dialect (0 elsewhere). */
int mora_mma_lanes(mora_dialect dialect);
int mora_mma_frag_n(mora_dialect dialect);
/* Checks the parameters: each within its [min, max], the kind's constraints in declared order, and
 * every entry's work-group size within max_threads and local memory within max_local_bytes (each 0:
 * no device known, not checked). MORA_E_PARAM with the broken rule in mora_last_error(). */
mora_status mora_spec_check(const mora_kernel_spec *spec, size_t max_threads, size_t max_local_bytes);
/* mora_spec_check against the device's limits, and the tuner's search-space rules for it. */
int mora_space_valid(const mora_kernel_spec *spec, const mora_device_info *device);
/* Work-items per work-group and bytes of local memory of entry point `entry`. */
size_t mora_spec_threads(const mora_kernel_spec *spec, int entry);
size_t mora_spec_local_bytes(const mora_kernel_spec *spec, int entry);
/* Work-groups to launch for entry `entry` with n tokens (n >= 1). groups[2] may exceed 1. */
void mora_spec_groups(const mora_kernel_spec *spec, int entry, int64_t n, size_t groups[3]);
/* Float32 scratch elements the kind needs for n tokens (0: none). */
size_t mora_spec_scratch_floats(const mora_kernel_spec *spec, int64_t n);
/* A constraint in words ("with FWD_MMA=1: FWD_TK is a multiple of 16"), for mora-gen and the docs;
 * returns 1 for a search-space rule (the tuner's pruning), 0 for a validity rule. */
int mora_constraint_describe(const mora_kind_decl *d, const mora_constraint *c, char *out, size_t size);
/* 1 when an entry point of the kind takes `arg` (a plan makes the rope table only where one does). */
int mora_kind_takes(const mora_kind_decl *d, mora_karg arg);

/* The generated source text of a spec (malloc'd, the caller frees). */
mora_status mora_codegen(const mora_kernel_spec *spec, char **source);
/* The same assembly (dialect, shape constants, the spec kind's parameters, common.kern) followed by
 * another template instead of the kind's own, e.g. "naive.kern" (malloc'd, the caller frees). */
mora_status mora_codegen_template(const mora_kernel_spec *spec, const char *template_name, char **source);
/* The same with MORA_MAX_THREADS (the largest work-group the source's entry points are launched
 * with; HIP's __launch_bounds__) given by the caller instead of taken from the spec's kind; 0: none. */
mora_status mora_codegen_template_bounded(const mora_kernel_spec *spec, const char *template_name, size_t max_threads,
                                          char **source);
/* The naive baseline kernel of the spec's kind, shape and dtype (templates/naive.kern): one work-item
 * per output element, no tiling, no local memory; one entry point, MORA_NAIVE_* below. The spec's
 * parameters are ignored (codegen/naive.c). Generated dialects only. */
mora_status mora_codegen_naive(const mora_kernel_spec *spec, char **source);
/* naive.kern's entry points; each runs ceil(count / MORA_NAIVE_LS) work-groups of MORA_NAIVE_LS:
 *   fwd     (x, y, M, cs, i64 n, float scale)   count n·d_out
 *   bwd_dx  (dy, M, cs, dx, i64 n)              count n·d_in
 *   bwd_dm  (x, dy, cs, dM, i64 n)              count r̂·r̂
 *   merge   (W, M, cs, float s)                 count d_out·d_in */
#define MORA_NAIVE_LS 128
#define MORA_NAIVE_FWD "mora_naive_fwd"
#define MORA_NAIVE_BWD_DX "mora_naive_bwd_dx"
#define MORA_NAIVE_BWD_DM "mora_naive_bwd_dm"
#define MORA_NAIVE_MERGE "mora_naive_merge"
/* The optimizer's spec for a dialect (kind MORA_KIND_ADAMW; its source: mora_codegen). Its entry
 * points run work-groups of MORA_ADAMW_LS; mora_grad_sq_partial sums MORA_ADAMW_CHUNK elements per
 * work-group, on every dialect (the host kernels cut the norm's sum the same way). */
mora_kernel_spec mora_spec_adamw(mora_dialect dialect);
#define MORA_ADAMW_LS 256
#define MORA_ADAMW_CHUNK (MORA_ADAMW_LS * 16)
/* Text of an embedded template by file name ("fwd.kern"), or NULL. */
const char *mora_template_text(const char *name);

#endif
