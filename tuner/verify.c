/* The correctness gate of the tuner: a candidate runs on scratch buffers filled with seeded data
 * (rounded to the dtype, so the float64 reference sees the same numbers) and is compared with the
 * reference at the dtype's tolerance before it may be timed.
 *
 * The kernels accumulate (y += …), so outputs cannot start as NaN: they start as small known values
 * v0 and the result must equal v0 + reference, element-wise nothing left unwritten. The runner's
 * float32 scratch (bwd_dx's U, bwd_dm's partial sums), which kernels must fully write before they
 * read it, is poisoned with NaN before every check. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "error.h"
#include "halfconv.h"
#include "random.h"
#include "tuner.h"

struct mora_verifier {
    mora_runner *runner;
    mora_context *ctx;
    mora_kind kind;
    mora_dtype dtype;   /* of the output: activations, W (same as activations here), or f32 for dM */
    int64_t n;
    int64_t out_count;  /* elements of the output */
    void *x, *dy, *out; /* device buffers */
    void *out0_host;    /* start values of the output, in its dtype */
    double *expected;   /* v0 + reference, float64 */
    double *delta;      /* the reference change alone */
};

double mora_dtype_tolerance(mora_dtype dtype) { return dtype == MORA_F32 ? 1e-5 : dtype == MORA_F16 ? 3e-3 : 1e-2; }

/* count seeded values in [-scale, scale] rounded to dtype, into host (dtype) and exact (double) */
static void fill(uint64_t *state, mora_dtype dtype, void *host, double *exact, int64_t count, double scale) {
    for (int64_t i = 0; i < count; ++i) {
        mora_store_act(dtype, host, i, (float)(scale * mora_random_signed(state)));
        exact[i] = mora_load_act(dtype, host, i);
    }
}

void mora_verifier_destroy(mora_verifier *v) {
    if (!v) return;
    void *buffers[] = {v->x, v->dy, v->out};
    for (size_t i = 0; i < 3; ++i) mora_context_buffer_free(v->ctx, buffers[i]);
    free(v->out0_host), free(v->expected), free(v->delta);
    free(v);
}

static mora_status upload(mora_context *ctx, void **buf, const void *host, size_t bytes) {
    MORA_TRY(mora_context_buffer_alloc(ctx, bytes ? bytes : 1, buf));
    return bytes ? mora_context_buffer_write(ctx, *buf, 0, host, bytes) : MORA_OK;
}

mora_status mora_verifier_create(mora_runner *l, mora_kind kind, int64_t n, uint64_t seed, mora_verifier **out) {
    const mora_kernel_spec spec = mora_runner_spec(l, kind);
    const mora_shape *s = &spec.shape;
    mora_verifier *v = calloc(1, sizeof *v);
    if (!v) return mora_fail(MORA_E_NO_MEMORY, "verifier: out of host memory");
    v->runner = l;
    v->ctx = mora_runner_context(l);
    v->kind = kind;
    v->n = n;
    const mora_dtype act = spec.dtype;
    v->dtype = kind == MORA_KIND_BWD_DM ? MORA_F32 : act;
    const int64_t nx = n * s->d_in, ny = n * s->d_out, nm = s->rhat * s->rhat;
    v->out_count = kind == MORA_KIND_FWD ? ny : kind == MORA_KIND_BWD_DX ? nx : kind == MORA_KIND_BWD_DM ? nm : s->d_out * s->d_in;
    const size_t act_size = mora_dtype_size(act), out_size = mora_dtype_size(v->dtype);

    uint64_t state = seed;
    double *x = malloc((size_t)nx * sizeof *x), *dy = malloc((size_t)ny * sizeof *dy), *M = malloc((size_t)nm * sizeof *M),
           *v0 = malloc((size_t)v->out_count * sizeof *v0);
    void *x_host = malloc((size_t)nx * act_size), *dy_host = malloc((size_t)ny * act_size);
    float *M_host = malloc((size_t)nm * sizeof *M_host);
    v->out0_host = malloc((size_t)v->out_count * out_size);
    v->expected = malloc((size_t)v->out_count * sizeof *v->expected);
    v->delta = calloc((size_t)v->out_count, sizeof *v->delta);
    mora_status st = MORA_OK;
    if (!x || !dy || !M || !v0 || !x_host || !dy_host || !M_host || !v->out0_host || !v->expected || !v->delta)
        st = mora_fail(MORA_E_NO_MEMORY, "verifier of %s: out of host memory", mora_kind_name(kind));
    if (st == MORA_OK) {
        fill(&state, act, x_host, x, nx, 1.0);
        fill(&state, act, dy_host, dy, ny, 1.0);
        fill(&state, v->dtype, v->out0_host, v0, v->out_count, 0.01);
        st = mora_runner_get_weight(l, M_host);
        for (int64_t i = 0; st == MORA_OK && i < nm; ++i) M[i] = M_host[i];
    }
    /* the reference change of the output; merge's s and the scale of fwd and bwd are fixed,
     * non-trivial values (the reference's backward has no scale: its change is scaled here) */
    if (st == MORA_OK) switch (kind) {
        case MORA_KIND_FWD: st = mora_ref_forward(s, M, x, v->delta, n, 0.75); break;
        case MORA_KIND_BWD_DX: st = mora_ref_backward(s, M, x, dy, v->delta, NULL, n); break;
        case MORA_KIND_BWD_DM: st = mora_ref_backward(s, M, x, dy, NULL, v->delta, n); break;
        case MORA_KIND_MERGE: st = mora_ref_delta_weight(s, M, v->delta); break;
        case MORA_KIND_ADAMW: st = mora_fail(MORA_E_UNKNOWN_KIND, "verifier: the optimizer is not tuned"); break;
        }
    const double factor = kind == MORA_KIND_MERGE ? -0.5 : kind == MORA_KIND_FWD ? 1.0 : 0.75;
    for (int64_t i = 0; st == MORA_OK && i < v->out_count; ++i) v->delta[i] *= factor;
    for (int64_t i = 0; st == MORA_OK && i < v->out_count; ++i) v->expected[i] = v0[i] + v->delta[i];
    if (st == MORA_OK) st = upload(v->ctx, &v->x, x_host, (size_t)nx * act_size);
    if (st == MORA_OK) st = upload(v->ctx, &v->dy, dy_host, (size_t)ny * act_size);
    if (st == MORA_OK) st = mora_context_buffer_alloc(v->ctx, (size_t)v->out_count * out_size, &v->out);
    free(x), free(dy), free(M), free(v0), free(x_host), free(dy_host), free(M_host);
    if (st != MORA_OK) {
        mora_verifier_destroy(v);
        return st;
    }
    *out = v;
    return MORA_OK;
}

/* Fills the runner's scratch with NaN, so a kernel that reads scratch it never wrote fails. */
static mora_status poison_scratch(mora_verifier *v) {
    size_t bytes = 0;
    void *scratch = mora_runner_scratch(v->runner, &bytes);
    if (!scratch || bytes == 0) return MORA_OK;
    float *nan_fill = malloc(bytes);
    if (!nan_fill) return mora_fail(MORA_E_NO_MEMORY, "verifier: out of host memory for %zu bytes", bytes);
    for (size_t i = 0; i < bytes / sizeof *nan_fill; ++i) nan_fill[i] = NAN;
    const mora_status st = mora_context_buffer_write(v->ctx, scratch, 0, nan_fill, bytes);
    free(nan_fill);
    return st;
}

mora_status mora_verifier_check(mora_verifier *v, double *rel_error) {
    *rel_error = NAN;
    const size_t out_bytes = (size_t)v->out_count * mora_dtype_size(v->dtype);
    MORA_TRY(mora_runner_prepare(v->runner, v->kind, v->dtype, v->n));
    MORA_TRY(poison_scratch(v));
    MORA_TRY(mora_context_buffer_write(v->ctx, v->out, 0, v->out0_host, out_bytes));
    mora_kind_buffers b = {.x = v->x, .dy = v->dy, .w_dtype = v->dtype, .scale = 0.75f};
    switch (v->kind) {
    case MORA_KIND_FWD: b.y = v->out; break;
    case MORA_KIND_BWD_DX: b.dx = v->out; break;
    case MORA_KIND_BWD_DM: b.dm = v->out; break;
    case MORA_KIND_MERGE: b.w = v->out, b.scale = -0.5f; break;
    case MORA_KIND_ADAMW: return mora_fail(MORA_E_UNKNOWN_KIND, "verifier: the optimizer is not tuned");
    }
    MORA_TRY(mora_runner_run(v->runner, v->kind, &b, v->n));
    void *got = malloc(out_bytes ? out_bytes : 1);
    if (!got) return mora_fail(MORA_E_NO_MEMORY, "verifier: out of host memory");
    mora_status st = mora_context_buffer_read(v->ctx, v->out, 0, got, out_bytes);
    if (st != MORA_OK) {
        free(got);
        return st;
    }
    /* relative error over the whole output, and elements whose change is large but did not happen */
    double diff = 0.0, norm = 0.0, max_delta = 0.0;
    for (int64_t i = 0; i < v->out_count; ++i) max_delta = fabs(v->delta[i]) > max_delta ? fabs(v->delta[i]) : max_delta;
    int64_t unwritten = 0;
    for (int64_t i = 0; i < v->out_count; ++i) {
        const double g = mora_load_act(v->dtype, got, i), e = v->expected[i];
        diff += (g - e) * (g - e);
        norm += e * e;
        if (fabs(v->delta[i]) > 0.05 * max_delta && fabs(v->delta[i]) > 1e-3 && g == mora_load_act(v->dtype, v->out0_host, i))
            ++unwritten;
    }
    free(got);
    *rel_error = isnan(diff) ? NAN : norm > 0 ? sqrt(diff / norm) : sqrt(diff);
    const double tol = v->kind == MORA_KIND_BWD_DM ? 1e-5 : mora_dtype_tolerance(v->dtype);
    if (!(*rel_error <= tol))
        return mora_fail(MORA_E_VERIFY, "%s: relative error %.3g against the float64 reference exceeds %.3g (%s)",
                         mora_kind_name(v->kind), *rel_error, tol, mora_dtype_name(v->dtype));
    if (unwritten)
        return mora_fail(MORA_E_VERIFY, "%s: %lld output element(s) were never written", mora_kind_name(v->kind),
                         (long long)unwritten);
    return MORA_OK;
}
