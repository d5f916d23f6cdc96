/* Internal: kernel kinds, their tuning parameters (declared here once), kernel specs, and the launch
 * geometry of every generated kernel.
 *
 * A spec = (shape, dtype, kind, dialect, parameter values). d_in, d_out, r̂ and the operator become
 * compile-time constants of the generated source; parameters become #defines. */
#ifndef MORA_CODEGEN_KERNELS_H
#define MORA_CODEGEN_KERNELS_H

#include <stddef.h>

#include "backend.h" /* mora_dialect: the language each backend compiles */
#include "mora.h"

typedef enum mora_kind {
    MORA_KIND_FWD = 0,    /* y += scale·decomp(M comp(x)) */
    MORA_KIND_BWD_DX = 1, /* dx += comp^T(M^T decomp^T(dy)) */
    MORA_KIND_BWD_DM = 2, /* dM += Σ decomp^T(dy) ⊗ comp(x) */
    MORA_KIND_MERGE = 3   /* W += s·ΔW */
} mora_kind;
#define MORA_KIND_COUNT 4


#define MORA_MAX_PARAMS 8
#define MORA_MAX_PARAM_VALUES 8
#define MORA_MAX_ENTRIES 2

/* One tuning parameter: its #define name, default, the values the tuner may try, a comment. */
typedef struct mora_param_decl {
    const char *name;
    int default_value;
    int values[MORA_MAX_PARAM_VALUES];
    int value_count;
    const char *comment;
} mora_param_decl;

/* One kernel kind: its template, entry points (launched in this order), and parameters. For the
 * GEMM-shaped kinds the first five parameters are TM, TN, TK, WM, WN of gemm_tile.kern and the last
 * is <P>_MMA (0: scalar FMA product, 1: tensor-core / matrix-core product; see mora_spec_mma). */
typedef struct mora_kind_decl {
    const char *name;          /* "fwd" */
    const char *template_name; /* "fwd.kern" */
    int is_gemm;               /* uses gemm_tile.kern (params 0..4 = TM TN TK WM WN) */
    const char *entries[MORA_MAX_ENTRIES];
    int entry_count;
    mora_param_decl params[MORA_MAX_PARAMS];
    int param_count;
} mora_kind_decl;

/* Index of the GEMM tile parameters in a GEMM kind's parameter list. */
enum { MORA_GEMM_TM = 0, MORA_GEMM_TN = 1, MORA_GEMM_TK = 2, MORA_GEMM_WM = 3, MORA_GEMM_WN = 4 };

typedef struct mora_kernel_spec {
    mora_shape shape;
    mora_dtype dtype; /* activations; W's dtype for merge */
    mora_kind kind;
    mora_dialect dialect;
    int params[MORA_MAX_PARAMS]; /* in the order of the kind's declaration */
} mora_kernel_spec;

const mora_kind_decl *mora_kind_decl_get(mora_kind kind);
const char *mora_kind_name(mora_kind kind);
mora_status mora_kind_from_string(const char *name, mora_kind *kind);
const char *mora_dialect_name(mora_dialect dialect);
mora_status mora_dialect_from_string(const char *name, mora_dialect *dialect);

/* The generated kernels index rows, M and tokens with int: every extent of a shape they run must be
 * below 2^31 (d_in, d_out, d_in + r̂, d_out + r̂, r̂²), and so must the token count. MORA_E_SIZE naming
 * the extent otherwise. The shape must pass mora_shape_check first. */
#define MORA_KERNEL_INDEX_LIMIT ((int64_t)1 << 31)
mora_status mora_kernel_shape_check(const mora_shape *s);

/* A spec with every parameter at its default. The shape must be checked already. */
mora_kernel_spec mora_spec_default(const mora_shape *s, mora_dtype dtype, mora_kind kind, mora_dialect dialect);
/* Sets parameter `name` (e.g. "FWD_TM") of the spec's kind; MORA_E_PARAM for an unknown name or a
 * value below the parameter's smallest (1, or 0 for a switch such as FWD_MMA). */
mora_status mora_spec_set_param(mora_kernel_spec *spec, const char *name, int value);
/* Value of parameter `name`, or -1 if the kind has none of that name. */
int mora_spec_get_param(const mora_kernel_spec *spec, const char *name);
/* The GEMM kind's <P>_MMA parameter: index in the parameter list (-1 for merge), and the spec's value
 * (0 for merge). With MMA = 1 a GEMM tile is computed by warps (CUDA, 32 lanes, mma.sync m16n8k16)
 * or wavefronts (HIP, 64 lanes, MFMA 16x16x16), each owning a (16·WM) x (MORA_MMA_N·WN) sub-tile,
 * MORA_MMA_N = 8 on CUDA and 16 on HIP; see templates/gemm_tile.kern. */
int mora_kind_mma_index(mora_kind kind);
int mora_spec_mma(const mora_kernel_spec *spec);
/* Lanes per warp / wavefront and the columns of one MMA fragment for a dialect (0 for OpenCL). */
int mora_mma_lanes(mora_dialect dialect);
int mora_mma_frag_n(mora_dialect dialect);
/* Checks the parameters' constraints: positive, tiles divisible by per-work-item sizes, work-group
 * size within max_threads and local memory within max_local_bytes (each 0: no device known, not
 * checked). MORA_E_PARAM with the broken constraint in mora_last_error(). */
mora_status mora_spec_check(const mora_kernel_spec *spec, size_t max_threads, size_t max_local_bytes);
/* Work-items per work-group and bytes of local memory of entry point `entry`. */
size_t mora_spec_threads(const mora_kernel_spec *spec, int entry);
size_t mora_spec_local_bytes(const mora_kernel_spec *spec, int entry);
/* Work-groups to launch for entry `entry` with n tokens (n >= 1). groups[2] may exceed 1. */
void mora_spec_groups(const mora_kernel_spec *spec, int entry, int64_t n, size_t groups[3]);
/* Float32 scratch elements the kind needs for n tokens (bwd_dx: U; bwd_dm with split: partials). */
size_t mora_spec_scratch_floats(const mora_kernel_spec *spec, int64_t n);

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
 * parameters are ignored (codegen/naive.c). */
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
/* The optimizer's kernels (templates/adamw.kern) for a dialect: entry points MORA_ADAMW_*, each
 * launched with work-groups of MORA_ADAMW_LS; mora_grad_sq_partial sums MORA_ADAMW_CHUNK elements per
 * work-group. Not shape-specific (the arena's length is an argument). */
mora_status mora_codegen_adamw(mora_dialect dialect, char **source);
#define MORA_ADAMW_LS 256
#define MORA_ADAMW_CHUNK (MORA_ADAMW_LS * 16)
#define MORA_ADAMW_PARTIAL "mora_grad_sq_partial"
#define MORA_ADAMW_FINISH "mora_grad_norm_finish"
#define MORA_ADAMW_STEP "mora_adamw"
/* Text of an embedded template by file name ("fwd.kern"), or NULL. */
const char *mora_template_text(const char *name);

#endif
