/* Shared by the backend test programs: device buffers with guard zones, dtype rounding, and the
 * comparison of a device result with the float64 reference.
 *
 * Outputs of libmora accumulate (y += …, dx += …, W += …), so they cannot start as NaN: they start
 * as small known random values v0, and the check is  ‖out − (v0 + ref)‖ / ‖v0 + ref‖ <= tol  plus an
 * element-wise "skipped write" check (an element whose reference change is large must have changed).
 * Every device buffer carries a guard zone of NaN bit patterns after its end; a kernel that writes
 * past the end changes them and fails. */
#ifndef MORA_TESTS_BACKEND_HARNESS_H
#define MORA_TESTS_BACKEND_HARNESS_H

#include "check.h"
#include "halfconv.h"

#define HARNESS_GUARD_ELEMS 64

/* The project's tolerances (docs/tuning.md): relative error for f32 1e-5, bf16 1e-2, f16 3e-3. */
static inline double harness_tolerance(mora_dtype dtype) {
    return dtype == MORA_F32 ? 1e-5 : dtype == MORA_F16 ? 3e-3 : 1e-2;
}

/* Fills `count` elements with seeded values in [-scale, scale] rounded to dtype; returns them as doubles too. */
static inline void harness_random(check_rng *rng, mora_dtype dtype, void *host, double *exact, int64_t count,
                                  double scale) {
    for (int64_t i = 0; i < count; ++i) {
        mora_store_act(dtype, host, i, (float)(scale * check_rng_uniform(rng)));
        exact[i] = mora_load_act(dtype, host, i);
    }
}

/* A device buffer of `count` elements plus a guard zone. */
typedef struct harness_buffer {
    void *device;
    int64_t count;
    mora_dtype dtype;
} harness_buffer;

static inline void harness_guard_pattern(mora_dtype dtype, unsigned char *guard) {
    const size_t es = mora_dtype_size(dtype);
    for (int i = 0; i < HARNESS_GUARD_ELEMS; ++i) {
        if (es == 4) {
            const uint32_t nan = 0x7FA5A5A5u; /* a signalling-NaN pattern no kernel produces */
            memcpy(guard + 4 * i, &nan, 4);
        } else {
            const uint16_t nan = 0x7E5Au;
            memcpy(guard + 2 * i, &nan, 2);
        }
    }
}

static inline void harness_upload(mora_context *ctx, harness_buffer *b, mora_dtype dtype, const void *host,
                                  int64_t count) {
    const size_t es = mora_dtype_size(dtype);
    unsigned char guard[HARNESS_GUARD_ELEMS * 4];
    harness_guard_pattern(dtype, guard);
    b->count = count;
    b->dtype = dtype;
    REQUIRE_OK(mora_buffer_alloc(ctx, (size_t)(count + HARNESS_GUARD_ELEMS) * es, &b->device));
    REQUIRE_OK(mora_buffer_write(ctx, b->device, 0, host, (size_t)count * es));
    REQUIRE_OK(mora_buffer_write(ctx, b->device, (size_t)count * es, guard, HARNESS_GUARD_ELEMS * es));
}

/* Downloads the contents as doubles; returns 0 if the guard zone was changed (and reports it). */
static inline int harness_download(mora_context *ctx, const harness_buffer *b, double *out, const char *what) {
    const size_t es = mora_dtype_size(b->dtype);
    unsigned char *raw = malloc((size_t)(b->count + HARNESS_GUARD_ELEMS) * es);
    unsigned char guard[HARNESS_GUARD_ELEMS * 4];
    harness_guard_pattern(b->dtype, guard);
    REQUIRE_OK(mora_buffer_read(ctx, b->device, 0, raw, (size_t)(b->count + HARNESS_GUARD_ELEMS) * es));
    for (int64_t i = 0; i < b->count; ++i) out[i] = mora_load_act(b->dtype, raw, i);
    const int intact = memcmp(raw + (size_t)b->count * es, guard, HARNESS_GUARD_ELEMS * es) == 0;
    ++check_count_;
    if (!intact) CHECK_FAIL_("%s: the kernel wrote past the end of the buffer (guard zone changed)", what);
    free(raw);
    return intact;
}

static inline void harness_free(mora_context *ctx, harness_buffer *b) {
    REQUIRE_OK(mora_buffer_free(ctx, b->device));
    b->device = NULL;
}

/* Compares got with v0 + delta (both doubles): relative error within tol, no NaN, and no element
 * whose expected change is large left exactly at its start value. Returns the relative error. */
static inline double harness_compare(const double *got, const double *v0, const double *delta, int64_t count,
                                     double tol, const char *what, const char *context) {
    double *expected = malloc((size_t)count * sizeof *expected);
    double max_delta = 0.0;
    for (int64_t i = 0; i < count; ++i) {
        expected[i] = v0[i] + delta[i];
        if (fabs(delta[i]) > max_delta) max_delta = fabs(delta[i]);
    }
    const double err = check_rel_error(got, expected, count);
    ++check_count_;
    if (!(err <= tol)) CHECK_FAIL_("%s: relative error %.3g > %.3g (%s)", what, err, tol, context);
    int64_t skipped = 0, first = -1;
    for (int64_t i = 0; i < count; ++i)
        if (fabs(delta[i]) > 0.05 * max_delta && fabs(delta[i]) > 1e-3 && got[i] == v0[i]) {
            if (first < 0) first = i;
            ++skipped;
        }
    ++check_count_;
    if (skipped)
        CHECK_FAIL_("%s: %lld element(s) never written, first at %lld (expected %.6g, still %.6g) (%s)", what,
                    (long long)skipped, (long long)first, expected[first], got[first], context);
    free(expected);
    return err;
}

#endif
