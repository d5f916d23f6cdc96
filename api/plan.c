/* Plans (mora.h): everything chosen, compiled and allocated at creation; the hot calls validate and
 * enqueue. One path for every backend: each kind the plan's calls use has its kernels (generated
 * on a GPU or OpenCL device, the host kernels on the cpu backend), its parameters from the one
 * selector, its share of the one workspace, and its launch through codegen/launch.h.
 *
 * A plan's lock serialises its own calls: they share its workspace (bwd_dx's U, bwd_dm's partial
 * sums, the host kernels' tiles) and, on OpenCL, its kernel objects, whose arguments are set and
 * enqueued as one step. Plans never share kernel objects (each makes its own handles from the
 * context's shared programs), so calls on different plans do not contend. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "launch.h"
#include "lifetime.h"
#include "options.h"
#include "plan_internal.h"
#include "programs.h"
#include "shape.h"
#include "strided.h"
#include "tuner.h"

/* Generated kernels index rows, M and the token count with int (kernels.h). */
#define KERNEL_INDEX_LIMIT MORA_KERNEL_INDEX_LIMIT
#define ALL_CALLS (MORA_PLAN_FORWARD | MORA_PLAN_BACKWARD | MORA_PLAN_MERGE)
/* The first word of a live plan (mora.h, "Handles"); cleared by mora_plan_destroy. */
#define MORA_PLAN_MAGIC 0x4d4f5250u /* "MORP" */
/* The first layout of mora_plan_options (the only one so far). */
#define PLAN_OPTIONS_OLDEST sizeof(mora_plan_options)

struct mora_plan {
    uint32_t magic;
    mora_context *ctx; /* held (lifetime.h) from creation to destruction */
    mora_shape shape;
    mora_dtype dtype;
    int64_t max_tokens;
    unsigned calls;        /* MORA_PLAN_* prepared */
    unsigned merge_dtypes; /* bit per W dtype merge was prepared for */
    pthread_mutex_t lock;  /* one call at a time on this plan (workspace, kernel objects) */
    mora_kind_kernels kernels[MORA_KIND_COUNT];        /* fwd, bwd_dx, bwd_dm (merge: merge_kernels) */
    mora_kind_kernels merge_kernels[MORA_DTYPE_COUNT]; /* one per W dtype */
    const char *param_source[MORA_KIND_COUNT];
    void *rope_table; /* where an entry point takes it (rope on the generated kernels) */
    /* workspace: the plan's own (own = 1) or the caller's */
    void *workspace;
    size_t workspace_bytes;
    int own_workspace;
};

static unsigned kinds_of_calls(unsigned calls) {
    unsigned kinds = 0;
    if (calls & MORA_PLAN_FORWARD) kinds |= 1u << MORA_KIND_FWD;
    if (calls & MORA_PLAN_BACKWARD) kinds |= 1u << MORA_KIND_BWD_DX | 1u << MORA_KIND_BWD_DM;
    if (calls & MORA_PLAN_MERGE) kinds |= 1u << MORA_KIND_MERGE;
    return kinds;
}

mora_kernel_spec mora_plan_spec(const mora_plan *plan, mora_kind kind) {
    if (kind == MORA_KIND_MERGE && plan->merge_kernels[plan->dtype].program) return plan->merge_kernels[plan->dtype].spec;
    if (kind != MORA_KIND_MERGE && plan->kernels[kind].program) return plan->kernels[kind].spec;
    return mora_spec_default(&plan->shape, plan->dtype, kind, plan->ctx->be->dialect);
}

const char *mora_plan_param_source(const mora_plan *plan, mora_kind kind) {
    return plan->param_source[kind] ? plan->param_source[kind] : "-";
}

/* ---- workspace ---- */

/* Bytes of workspace a call of n tokens of the given kinds needs with these specs (kind order): the
 * largest scratch of them (the kinds of a call run one after the other: they share one space). */
static size_t workspace_need_of_specs(const mora_kernel_spec specs[MORA_KIND_COUNT], unsigned kinds, int64_t n) {
    size_t floats = 0;
    for (int k = 0; k < MORA_KIND_COUNT; ++k) {
        if (!((kinds >> k) & 1) || k == MORA_KIND_MERGE) continue; /* merge takes no scratch */
        const size_t need = mora_spec_scratch_floats(&specs[k], n);
        if (need > floats) floats = need;
    }
    return floats > SIZE_MAX / sizeof(float) ? SIZE_MAX : floats * sizeof(float);
}

/* The same with the plan's prepared kernels. */
static size_t workspace_need_of(const mora_plan *p, unsigned kinds, int64_t n) {
    mora_kernel_spec specs[MORA_KIND_COUNT];
    for (int k = 0; k < MORA_KIND_COUNT; ++k) specs[k] = p->kernels[k].spec;
    return workspace_need_of_specs(specs, kinds, n);
}

/* Every call the plan prepared. */
static size_t workspace_need(const mora_plan *p, int64_t n) { return workspace_need_of(p, kinds_of_calls(p->calls), n); }

static void release_own_workspace(mora_plan *p) {
    if (p->own_workspace) mora_context_buffer_free(p->ctx, p->workspace);
    p->workspace = NULL;
    p->workspace_bytes = 0;
    p->own_workspace = 0;
}

static mora_status allocate_own_workspace(mora_plan *p) {
    const size_t bytes = workspace_need(p, p->max_tokens);
    void *buffer = NULL;
    if (bytes) MORA_TRY(mora_context_buffer_alloc(p->ctx, bytes, &buffer));
    release_own_workspace(p);
    p->workspace = buffer;
    p->workspace_bytes = bytes;
    p->own_workspace = 1;
    return MORA_OK;
}

/* ---- creation ---- */

/* Prepares every kind the plan needs with the given specs (kind order; merge's dtype is replaced
 * per prepared W dtype). */
static mora_status prepare_kinds(mora_plan *p, const mora_kernel_spec specs[MORA_KIND_COUNT], unsigned kinds) {
    for (int k = 0; k < MORA_KIND_COUNT; ++k) {
        if (!((kinds >> k) & 1)) continue;
        if (k != MORA_KIND_MERGE) {
            MORA_TRY(mora_kind_prepare(p->ctx, &specs[k], &p->kernels[k]));
            continue;
        }
        for (int d = 0; d < MORA_DTYPE_COUNT; ++d) {
            if (!((p->merge_dtypes >> d) & 1)) continue;
            mora_kernel_spec spec = specs[k];
            spec.dtype = (mora_dtype)d;
            MORA_TRY(mora_kind_prepare(p->ctx, &spec, &p->merge_kernels[d]));
        }
    }
    return MORA_OK;
}

/* Tunes `kinds` of the plan's shape and puts the winners into specs (and where they came from). */
static mora_status tune_kinds(mora_plan *p, unsigned kinds, int64_t tokens, double budget, int force,
                              mora_kernel_spec specs[MORA_KIND_COUNT]) {
    mora_tune_options options = {0};
    options.kinds = kinds;
    options.tokens = tokens;
    options.budget_seconds = budget;
    options.force = force;
    mora_tune_result results[MORA_KIND_COUNT];
    MORA_TRY(mora_tune(p->ctx, &p->shape, p->dtype, &options, results));
    for (int k = 0; k < MORA_KIND_COUNT; ++k)
        if (results[k].requested) {
            memcpy(specs[k].params, results[k].best.params, sizeof specs[k].params);
            p->param_source[k] = results[k].from_cache ? "cache" : "tuned";
        }
    return MORA_OK;
}

/* Tuning at creation: the option, or MORA_AUTOTUNE=1 in the environment. */
static int autotune_asked(const mora_plan_options *o) {
    const char *env = getenv("MORA_AUTOTUNE");
    return o->autotune || (env && strcmp(env, "1") == 0);
}

/* 1 when a kind the plan prepares takes the rope table. */
static int needs_rope_table(const mora_plan *p) {
    const unsigned kinds = kinds_of_calls(p->calls);
    for (int k = 0; k < MORA_KIND_COUNT; ++k)
        if (((kinds >> k) & 1) && mora_kind_takes(mora_kind_decl_get((mora_kind)k, p->ctx->be->dialect), MORA_KARG_ROPE_TABLE))
            return 1;
    return 0;
}

/* What the plan will allocate with these specs, added up before anything is allocated (a shape the
 * device cannot hold is refused at once, naming the bytes, instead of allocating until the host
 * runs out): the rope table (on the device, and staged on the host while it is written) and the
 * plan's own workspace for max_tokens. The device's memory is its global memory; the cpu backend's,
 * the host's physical memory. */
static mora_status check_fits(const mora_plan *p, const mora_kernel_spec specs[MORA_KIND_COUNT], int own_workspace) {
    const uint64_t device_bytes = p->ctx->info.global_mem_bytes;
    if (device_bytes == 0) return MORA_OK; /* the backend cannot tell */
    const uint64_t table = needs_rope_table(p) ? (uint64_t)mora_shape_blocks(&p->shape) * (uint64_t)p->shape.rhat * sizeof(float) : 0;
    const uint64_t workspace =
        own_workspace ? workspace_need_of_specs(specs, kinds_of_calls(p->calls), p->max_tokens) : 0;
    const uint64_t device_total = table + workspace, host_staging = table;
    const uint64_t total = device_total + (p->ctx->info.is_cpu ? host_staging : 0); /* one memory */
    if (workspace < SIZE_MAX && total >= device_total && total <= device_bytes) return MORA_OK;
    return mora_fail(MORA_E_NO_MEMORY,
                     "plan: would allocate %llu bytes (workspace %llu for max_tokens=%lld, rope table %llu%s), more than "
                     "the device's %llu bytes of memory (a smaller max_tokens, or options->external_workspace)",
                     (unsigned long long)total, (unsigned long long)workspace, (long long)p->max_tokens,
                     (unsigned long long)table, table ? " and its host copy while it is written" : "",
                     (unsigned long long)device_bytes);
}

/* Parameters for every kind (cache → database → defaults, tuning the untuned when asked), the check
 * that what they need fits, then the rope table and the kinds' programs and handles. */
static mora_status prepare(mora_plan *p, const mora_plan_options *o) {
    const unsigned kinds = kinds_of_calls(p->calls);
    mora_kernel_spec specs[MORA_KIND_COUNT];
    unsigned untuned = 0;
    for (int k = 0; k < MORA_KIND_COUNT; ++k) {
        specs[k] = mora_spec_default(&p->shape, p->dtype, (mora_kind)k, p->ctx->be->dialect);
        if (!((kinds >> k) & 1)) continue;
        p->param_source[k] = mora_select_params(p->ctx, &specs[k], p->max_tokens);
        if (strcmp(p->param_source[k], "cache") != 0) untuned |= 1u << k;
    }
    MORA_TRY(check_fits(p, specs, !o->external_workspace));
    if (untuned && autotune_asked(o)) {
        MORA_TRY(tune_kinds(p, untuned, p->max_tokens, o->tune_budget_seconds, 0, specs));
        MORA_TRY(check_fits(p, specs, !o->external_workspace)); /* the winners' scratch */
    }
    if (needs_rope_table(p)) MORA_TRY(mora_rope_table_create(p->ctx, &p->shape, &p->rope_table));
    return prepare_kinds(p, specs, kinds);
}

mora_status mora_plan_create(mora_context *ctx, const mora_shape *s, mora_dtype dtype, int64_t max_tokens,
                             const mora_plan_options *options, mora_plan **out) {
    mora_error_clear();
    MORA_CHECK_CONTEXT(ctx);
    return mora_plan_make(ctx, s, dtype, max_tokens, options, out);
}

mora_status mora_plan_make(mora_context *ctx, const mora_shape *s, mora_dtype dtype, int64_t max_tokens,
                           const mora_plan_options *given, mora_plan **out) {
    MORA_CHECK_PTR(ctx);
    MORA_CHECK_PTR(s);
    MORA_CHECK_PTR(out);
    MORA_TRY(mora_shape_check(s));
    if (mora_dtype_size(dtype) == 0)
        return mora_fail(MORA_E_UNKNOWN_DTYPE, "dtype=%d: unknown; expected 0 (f32), 1 (f16) or 2 (bf16)", (int)dtype);
    if (max_tokens < 1 || max_tokens >= KERNEL_INDEX_LIMIT)
        return mora_fail(MORA_E_SIZE, "max_tokens=%lld: must be in [1, 2^31)", (long long)max_tokens);
    mora_plan_options o = MORA_PLAN_OPTIONS_INIT;
    MORA_TRY(mora_options_take(&o, sizeof o, given, PLAN_OPTIONS_OLDEST, "options", "mora_plan_options"));
    const mora_plan_options *options = &o;
    const unsigned calls = options->calls ? options->calls : ALL_CALLS;
    if (calls & ~ALL_CALLS)
        return mora_fail(MORA_E_ARG, "options->calls=0x%x: only MORA_PLAN_FORWARD | BACKWARD | MERGE (0x%x) are defined",
                         calls, ALL_CALLS);
    const unsigned merge_dtypes = options->merge_dtypes ? options->merge_dtypes : 1u << dtype;
    if (merge_dtypes >> MORA_DTYPE_COUNT)
        return mora_fail(MORA_E_UNKNOWN_DTYPE, "options->merge_dtypes=0x%x: bits above (1 << %d) name no dtype",
                         merge_dtypes, MORA_DTYPE_COUNT - 1);
    if (!(options->tune_budget_seconds >= 0 && options->tune_budget_seconds <= MORA_TUNE_MAX_BUDGET_SECONDS))
        return mora_fail(MORA_E_ARG, "options->tune_budget_seconds=%g: must be in [0, %g] s (0: 60 s)",
                         options->tune_budget_seconds, MORA_TUNE_MAX_BUDGET_SECONDS);
    MORA_TRY(mora_kernel_shape_check(s, ctx->be->dialect));

    mora_plan *p = calloc(1, sizeof *p);
    if (!p) return mora_fail(MORA_E_NO_MEMORY, "plan: out of host memory");
    p->magic = MORA_PLAN_MAGIC;
    p->ctx = ctx;
    mora_context_retain(ctx);
    p->shape = *s;
    p->dtype = dtype;
    p->max_tokens = max_tokens;
    p->calls = calls;
    p->merge_dtypes = merge_dtypes;
    pthread_mutex_init(&p->lock, NULL);
    mora_status st = prepare(p, options);
    if (st == MORA_OK && !options->external_workspace) st = allocate_own_workspace(p);
    if (st == MORA_OK) st = mora_context_synchronize(ctx); /* the rope table's upload, before any hot call */
    if (st != MORA_OK) {
        mora_plan_destroy(p);
        return st;
    }
    mora_error_clear();
    *out = p;
    return MORA_OK;
}

void mora_plan_destroy(mora_plan *p) {
    if (!p || p->magic != MORA_PLAN_MAGIC) return; /* NULL, destroyed already, or not a plan */
    p->magic = 0;
    for (int k = 0; k < MORA_KIND_COUNT; ++k) mora_kind_kernels_release(p->ctx, &p->kernels[k]);
    for (int d = 0; d < MORA_DTYPE_COUNT; ++d) mora_kind_kernels_release(p->ctx, &p->merge_kernels[d]);
    mora_context_buffer_free(p->ctx, p->rope_table);
    release_own_workspace(p);
    pthread_mutex_destroy(&p->lock);
    mora_context *ctx = p->ctx;
    free(p); /* programs belong to the context's registry */
    mora_context_release(ctx);
}

mora_status mora_plan_workspace_size(const mora_plan *p, int64_t n, size_t *bytes) {
    mora_error_clear();
    MORA_CHECK_HANDLE(p, "plan", MORA_PLAN_MAGIC, "mora_plan");
    MORA_CHECK_PTR(bytes);
    if (n < 0 || n >= KERNEL_INDEX_LIMIT) return mora_fail(MORA_E_SIZE, "n=%lld: must be in [0, 2^31)", (long long)n);
    *bytes = workspace_need(p, n);
    return MORA_OK;
}

/* Checks a caller's buffer: not NULL and, where the backend can tell, at least `need` bytes. */
static mora_status check_buffer(const mora_context *ctx, const char *name, const void *buf, size_t need) {
    if (!buf) return mora_fail(MORA_E_NULL, "%s=NULL: must not be NULL", name);
    size_t have = 0;
    MORA_TRY(mora_context_buffer_size(ctx, buf, &have));
    if (have < need)
        return mora_fail(MORA_E_ARG, "%s: buffer of %zu bytes is smaller than the %zu this call needs", name, have, need);
    return MORA_OK;
}

mora_status mora_plan_set_workspace(mora_plan *p, void *workspace, size_t bytes) {
    mora_error_clear();
    MORA_CHECK_HANDLE(p, "plan", MORA_PLAN_MAGIC, "mora_plan");
    if (!workspace) return allocate_own_workspace(p);
    MORA_TRY(check_buffer(p->ctx, "workspace", workspace, bytes));
    release_own_workspace(p);
    p->workspace = workspace;
    p->workspace_bytes = bytes;
    return MORA_OK;
}

mora_status mora_plan_autotune(mora_plan *p, int64_t tokens, double budget_seconds) {
    mora_error_clear();
    MORA_CHECK_HANDLE(p, "plan", MORA_PLAN_MAGIC, "mora_plan");
    if (tokens < 0 || tokens >= KERNEL_INDEX_LIMIT)
        return mora_fail(MORA_E_SIZE, "tokens=%lld: must be in [0, 2^31) (0: max_tokens)", (long long)tokens);
    if (!(budget_seconds >= 0 && budget_seconds <= MORA_TUNE_MAX_BUDGET_SECONDS))
        return mora_fail(MORA_E_ARG, "budget_seconds=%g: must be in [0, %g] s (0: 60 s)", budget_seconds,
                         MORA_TUNE_MAX_BUDGET_SECONDS);
    const unsigned kinds = kinds_of_calls(p->calls);
    mora_kernel_spec specs[MORA_KIND_COUNT];
    for (int k = 0; k < MORA_KIND_COUNT; ++k) specs[k] = mora_plan_spec(p, (mora_kind)k);
    MORA_TRY(tune_kinds(p, kinds, tokens ? tokens : p->max_tokens, budget_seconds, 0, specs));
    MORA_TRY(prepare_kinds(p, specs, kinds));
    if (p->own_workspace) MORA_TRY(allocate_own_workspace(p)); /* new parameters may need more */
    mora_error_clear();
    return MORA_OK;
}

mora_status mora_plan_use_spec(mora_plan *p, const mora_kernel_spec *spec) {
    if (spec->dialect != p->ctx->be->dialect)
        return mora_fail(MORA_E_ARG, "spec: dialect %s differs from the plan's backend's %s", mora_dialect_name(spec->dialect),
                         mora_dialect_name(p->ctx->be->dialect));
    if (!mora_shape_same(&spec->shape, &p->shape))
        return mora_fail(MORA_E_ARG, "spec: its shape differs from the plan's");
    if (spec->kind != MORA_KIND_MERGE && spec->dtype != p->dtype)
        return mora_fail(MORA_E_ARG, "spec: dtype %s differs from the plan's %s", mora_dtype_name(spec->dtype),
                         mora_dtype_name(p->dtype));
    mora_kernel_spec specs[MORA_KIND_COUNT];
    specs[spec->kind] = *spec;
    MORA_TRY(prepare_kinds(p, specs, (1u << spec->kind) & kinds_of_calls(p->calls)));
    p->param_source[spec->kind] = "given";
    if (p->own_workspace) MORA_TRY(allocate_own_workspace(p));
    return MORA_OK;
}

/* ---- the hot calls ---- */

static mora_status check_n(int64_t n) {
    if (n < 0 || n >= KERNEL_INDEX_LIMIT) return mora_fail(MORA_E_SIZE, "n=%lld: must be in [0, 2^31)", (long long)n);
    return MORA_OK;
}

/* Checks n rows of `width` elements, `ld` apart, in buffer `buf` of dtype: ld >= width, the extent
 * fits 64 bits, and the buffer holds it where the backend can tell. */
static mora_status check_rows(const mora_plan *p, const char *name, const char *ld_name, const void *buf, int64_t ld,
                              int64_t rows, int64_t width, mora_dtype dtype) {
    if (ld < width)
        return mora_fail(MORA_E_ARG, "%s=%lld: must be >= %lld (the row width of %s)", ld_name, (long long)ld,
                         (long long)width, name);
    int64_t elements, bytes;
    if (__builtin_mul_overflow(rows - 1, ld, &elements) || __builtin_add_overflow(elements, width, &elements) ||
        __builtin_mul_overflow(elements, (int64_t)mora_dtype_size(dtype), &bytes))
        return mora_fail(MORA_E_OVERFLOW, "%s: %lld rows %lld apart overflow 64-bit sizes", name, (long long)rows,
                         (long long)ld);
    return check_buffer(p->ctx, name, buf, (size_t)bytes);
}

static mora_status check_prepared(const mora_plan *p, unsigned call, const char *name) {
    if (!(p->calls & call))
        return mora_fail(MORA_E_ARG, "plan: created without %s (mora_plan_options.calls=0x%x)", name, p->calls);
    return MORA_OK;
}

/* The workspace holds a call of n tokens of `kinds`: nothing to check when they need none; else n <=
 * max_tokens with the plan's own, and enough bytes. */
static mora_status check_workspace(const mora_plan *p, unsigned kinds, int64_t n) {
    const size_t need = workspace_need_of(p, kinds, n);
    if (need == 0) return MORA_OK;
    if (p->own_workspace && n > p->max_tokens)
        return mora_fail(MORA_E_SIZE,
                         "n=%lld: above the plan's max_tokens=%lld, for which its own workspace was sized (a plan with a "
                         "larger max_tokens, or mora_plan_set_workspace)",
                         (long long)n, (long long)p->max_tokens);
    if (need > p->workspace_bytes)
        return mora_fail(MORA_E_SIZE,
                         "n=%lld: needs %zu bytes of workspace, the plan has %zu (%s; a plan with a larger max_tokens "
                         "or mora_plan_set_workspace)",
                         (long long)n, need, p->workspace_bytes,
                         p->workspace ? (p->own_workspace ? "its own, for max_tokens" : "the caller's")
                                      : "none was given");
    return MORA_OK;
}

static mora_status check_m(const mora_plan *p, const char *name, const void *m) {
    return check_buffer(p->ctx, name, m, (size_t)(p->shape.rhat * p->shape.rhat) * sizeof(float));
}

static mora_status check_finite(const char *name, float value) {
    if (!isfinite(value)) return mora_fail(MORA_E_ARG, "%s=%g: must be finite", name, (double)value);
    return MORA_OK;
}

/* A buffer argument of a hot call as the alias check sees it: `rows` rows of `width` elements of
 * `element` bytes, `ld` elements apart (M: one row of r̂·r̂ floats). */
typedef struct call_buffer {
    const char *name;
    const void *buf; /* NULL: not passed (skipped) */
    int64_t rows, width, ld;
    size_t element;
    int output;      /* written by the call */
} call_buffer;

/* mora.h: an output must not overlap any other buffer argument (inputs may overlap each other).
 * Buffers are compared where they lie: the allocation they are part of and the byte ranges of
 * their rows there. Sizes were checked before, so the extents fit 64 bits. */
static mora_status check_aliasing(const mora_plan *p, const call_buffer *args, int count) {
    const void *roots[5];
    mora_strided ranges[5];
    for (int i = 0; i < count; ++i) {
        if (!args[i].buf) continue;
        uint64_t offset = 0;
        MORA_TRY(mora_context_buffer_origin(p->ctx, args[i].buf, &roots[i], &offset));
        ranges[i] = (mora_strided){offset, (uint64_t)args[i].rows, (uint64_t)args[i].width * args[i].element,
                                   (uint64_t)args[i].ld * args[i].element};
    }
    for (int i = 0; i < count; ++i)
        for (int j = i + 1; j < count; ++j) {
            if (!args[i].buf || !args[j].buf || !(args[i].output || args[j].output) || roots[i] != roots[j]) continue;
            if (mora_strided_overlap(&ranges[i], &ranges[j]))
                return mora_fail(MORA_E_ALIAS,
                                 "%s and %s: share memory (%s %p, %s %p); an output must not overlap another argument "
                                 "of the call",
                                 args[i].name, args[j].name, args[i].name, args[i].buf, args[j].name, args[j].buf);
        }
    return MORA_OK;
}

mora_status mora_forward(mora_plan *p, const void *M, const void *x, int64_t ldx, void *y, int64_t ldy, int64_t n,
                         float scale) {
    mora_error_clear();
    MORA_CHECK_HANDLE(p, "plan", MORA_PLAN_MAGIC, "mora_plan");
    MORA_TRY(check_prepared(p, MORA_PLAN_FORWARD, "MORA_PLAN_FORWARD"));
    MORA_TRY(check_n(n));
    if (n == 0) return MORA_OK;
    MORA_TRY(check_m(p, "M", M));
    MORA_TRY(check_rows(p, "x", "ldx", x, ldx, n, p->shape.d_in, p->dtype));
    MORA_TRY(check_rows(p, "y", "ldy", y, ldy, n, p->shape.d_out, p->dtype));
    MORA_TRY(check_workspace(p, 1u << MORA_KIND_FWD, n)); /* the host kernels pack their tiles there */
    MORA_TRY(check_finite("scale", scale));
    const int64_t rr = p->shape.rhat * p->shape.rhat;
    const size_t es = mora_dtype_size(p->dtype);
    const call_buffer buffers[] = {{"y", y, n, p->shape.d_out, ldy, es, 1},
                                   {"x", x, n, p->shape.d_in, ldx, es, 0},
                                   {"M", M, 1, rr, rr, sizeof(float), 0}};
    MORA_TRY(check_aliasing(p, buffers, 3));
    const mora_kind_args a = {.x = x, .ldx = ldx, .y = y, .ldy = ldy, .M = M, .rope_table = p->rope_table,
                              .scratch = p->workspace, .scale = scale};
    pthread_mutex_lock(&p->lock);
    const mora_status st = mora_kind_launch(p->ctx, &p->kernels[MORA_KIND_FWD], &a, n);
    pthread_mutex_unlock(&p->lock);
    return st;
}

mora_status mora_backward(mora_plan *p, const void *M, const void *x, int64_t ldx, const void *dy, int64_t lddy,
                          void *dx, int64_t lddx, void *dM, int64_t n, float scale) {
    mora_error_clear();
    MORA_CHECK_HANDLE(p, "plan", MORA_PLAN_MAGIC, "mora_plan");
    MORA_TRY(check_prepared(p, MORA_PLAN_BACKWARD, "MORA_PLAN_BACKWARD"));
    MORA_TRY(check_n(n));
    if (n == 0 || (!dx && !dM)) return MORA_OK;
    MORA_TRY(check_m(p, "M", M));
    MORA_TRY(check_rows(p, "dy", "lddy", dy, lddy, n, p->shape.d_out, p->dtype));
    if (dM) MORA_TRY(check_rows(p, "x", "ldx", x, ldx, n, p->shape.d_in, p->dtype));
    if (dM) MORA_TRY(check_m(p, "dM", dM));
    if (dx) MORA_TRY(check_rows(p, "dx", "lddx", dx, lddx, n, p->shape.d_in, p->dtype));
    MORA_TRY(check_workspace(p, 1u << MORA_KIND_BWD_DX | 1u << MORA_KIND_BWD_DM, n));
    MORA_TRY(check_finite("scale", scale));
    const int64_t rr = p->shape.rhat * p->shape.rhat;
    const size_t es = mora_dtype_size(p->dtype);
    const call_buffer buffers[] = {{"dx", dx, n, p->shape.d_in, lddx, es, 1},
                                   {"dM", dM, 1, rr, rr, sizeof(float), 1},
                                   {"dy", dy, n, p->shape.d_out, lddy, es, 0},
                                   {"x", dM ? x : NULL, n, p->shape.d_in, ldx, es, 0}, /* read only for dM */
                                   {"M", M, 1, rr, rr, sizeof(float), 0}};
    MORA_TRY(check_aliasing(p, buffers, 5));
    const mora_kind_args a = {.x = x, .ldx = ldx, .dy = dy, .lddy = lddy, .dx = dx, .lddx = lddx, .M = M, .dM = dM,
                              .rope_table = p->rope_table, .scratch = p->workspace, .scale = scale};
    pthread_mutex_lock(&p->lock);
    mora_status st = MORA_OK;
    if (dM) st = mora_kind_launch(p->ctx, &p->kernels[MORA_KIND_BWD_DM], &a, n);
    if (st == MORA_OK && dx) st = mora_kind_launch(p->ctx, &p->kernels[MORA_KIND_BWD_DX], &a, n);
    pthread_mutex_unlock(&p->lock);
    return st;
}

mora_status mora_merge(mora_plan *p, const void *M, void *W, int64_t ldw, mora_dtype w_dtype, float s) {
    mora_error_clear();
    MORA_CHECK_HANDLE(p, "plan", MORA_PLAN_MAGIC, "mora_plan");
    MORA_TRY(check_prepared(p, MORA_PLAN_MERGE, "MORA_PLAN_MERGE"));
    if (mora_dtype_size(w_dtype) == 0)
        return mora_fail(MORA_E_UNKNOWN_DTYPE, "w_dtype=%d: unknown; expected 0 (f32), 1 (f16) or 2 (bf16)", (int)w_dtype);
    if (!((p->merge_dtypes >> w_dtype) & 1))
        return mora_fail(MORA_E_ARG, "w_dtype=%s: the plan prepared merge for W dtypes 0x%x (mora_plan_options.merge_dtypes)",
                         mora_dtype_name(w_dtype), p->merge_dtypes);
    MORA_TRY(check_m(p, "M", M));
    MORA_TRY(check_rows(p, "W", "ldw", W, ldw, p->shape.d_out, p->shape.d_in, w_dtype));
    MORA_TRY(check_finite("s", s));
    const int64_t rr = p->shape.rhat * p->shape.rhat;
    const call_buffer buffers[] = {{"W", W, p->shape.d_out, p->shape.d_in, ldw, mora_dtype_size(w_dtype), 1},
                                   {"M", M, 1, rr, rr, sizeof(float), 0}};
    MORA_TRY(check_aliasing(p, buffers, 2));
    const mora_kind_args a = {.W = W, .ldw = ldw, .M = M, .rope_table = p->rope_table, .scale = s};
    pthread_mutex_lock(&p->lock);
    const mora_status st = mora_kind_launch(p->ctx, &p->merge_kernels[w_dtype], &a, 1);
    pthread_mutex_unlock(&p->lock);
    return st;
}
