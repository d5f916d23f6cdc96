/* Test assertions that print the expression, both values, file and line, and are never compiled
 * out (unlike assert()). A failed CHECK marks the test failed and goes on, so one run shows every
 * failure; REQUIRE stops the test. Each test program ends with `return check_report();`, which also
 * fails a test that ran no check at all.
 *
 *   CHECK_EQ_INT(got, want);          integers
 *   CHECK_NEAR(got, want, tol);       |got - want| <= tol (NaN fails)
 *   CHECK_REL(got, ref, n, tol);      ‖got − ref‖₂ / ‖ref‖₂ <= tol over n doubles (NaN fails)
 *   CHECK_STATUS(call, MORA_E_SIZE);  status of a libmora call, printing mora_last_error()
 *   SKIP("no OpenCL platform: %s", why);  exit 77 (ctest: skipped) with the reason
 */
#ifndef MORA_TESTS_CHECK_H
#define MORA_TESTS_CHECK_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mora.h"
#include "random.h"

static int check_failures_ = 0;
static int check_count_ = 0;

/* 0 when every check passed; 1 when one failed, and also when none ran: a suite that checked
 * nothing (a loop over an empty list, an early return) proves nothing, so it must not pass. */
static inline int check_report(void) {
    if (check_count_ == 0) {
        printf("no checks ran: FAILED (a suite must check something)\n");
        return 1;
    }
    if (check_failures_ == 0) {
        printf("%d checks passed\n", check_count_);
        return 0;
    }
    printf("%d of %d checks FAILED\n", check_failures_, check_count_);
    return 1;
}

#define CHECK_FAIL_(...)                                              \
    do {                                                              \
        ++check_failures_;                                            \
        fprintf(stderr, "%s:%d: FAILED: ", __FILE__, __LINE__);       \
        fprintf(stderr, __VA_ARGS__);                                 \
        fputc('\n', stderr);                                          \
    } while (0)

#define CHECK(cond)                                                   \
    do {                                                              \
        ++check_count_;                                               \
        if (!(cond)) CHECK_FAIL_("CHECK(%s)", #cond);                 \
    } while (0)

#define CHECK_EQ_INT(got, want)                                                                  \
    do {                                                                                         \
        ++check_count_;                                                                          \
        const long long got_ = (long long)(got), want_ = (long long)(want);                      \
        if (got_ != want_) CHECK_FAIL_("%s == %s: got %lld, want %lld", #got, #want, got_, want_); \
    } while (0)

#define CHECK_STR(got, want)                                                                    \
    do {                                                                                        \
        ++check_count_;                                                                         \
        const char *got_ = (got), *want_ = (want);                                              \
        if (got_ == NULL || strcmp(got_, want_) != 0)                                           \
            CHECK_FAIL_("%s == \"%s\": got \"%s\"", #got, want_, got_ ? got_ : "(null)");       \
    } while (0)

#define CHECK_NEAR(got, want, tol)                                                               \
    do {                                                                                         \
        ++check_count_;                                                                          \
        const double got_ = (double)(got), want_ = (double)(want), tol_ = (double)(tol);         \
        if (!(fabs(got_ - want_) <= tol_))                                                       \
            CHECK_FAIL_("%s ~ %s: got %.17g, want %.17g (tol %.3g)", #got, #want, got_, want_, tol_); \
    } while (0)

#define CHECK_STATUS(call, want)                                                                \
    do {                                                                                        \
        ++check_count_;                                                                         \
        const mora_status got_ = (call);                                                        \
        if (got_ != (want))                                                                     \
            CHECK_FAIL_("%s: got %s, want %s (last error: %s)", #call, mora_status_name(got_),  \
                        mora_status_name(want), mora_last_error());                             \
    } while (0)

#define REQUIRE_OK(call)                                                                        \
    do {                                                                                        \
        const mora_status got_ = (call);                                                        \
        if (got_ != MORA_OK) {                                                                  \
            ++check_failures_;                                                                  \
            fprintf(stderr, "%s:%d: FAILED: %s: %s (%s)\n", __FILE__, __LINE__, #call,          \
                    mora_status_name(got_), mora_last_error());                                 \
            exit(check_report());                                                               \
        }                                                                                       \
    } while (0)

/* Relative error ‖got − ref‖₂ / ‖ref‖₂ (absolute ‖got‖ when ref is all zero); NaN stays NaN. */
static inline double check_rel_error(const double *got, const double *ref, int64_t n) {
    double diff = 0.0, norm = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        const double d = got[i] - ref[i];
        diff += d * d;
        norm += ref[i] * ref[i];
    }
    if (isnan(diff)) return NAN;
    return norm > 0.0 ? sqrt(diff / norm) : sqrt(diff);
}

#define CHECK_REL(got, ref, n, tol)                                                             \
    do {                                                                                        \
        ++check_count_;                                                                         \
        const double err_ = check_rel_error((got), (ref), (n));                                 \
        if (!(err_ <= (tol)))                                                                   \
            CHECK_FAIL_("rel_error(%s, %s) = %.3g > %.3g", #got, #ref, err_, (double)(tol));    \
    } while (0)

#define SKIP(...)                                                     \
    do {                                                              \
        printf("SKIP: ");                                             \
        printf(__VA_ARGS__);                                          \
        printf("\n");                                                 \
        exit(77);                                                     \
    } while (0)

/* The project's seeded generator (core/random.h: splitmix64) so every test input is reproducible
 * from its seed. */
typedef struct check_rng { uint64_t state; } check_rng;
static inline uint64_t check_rng_next(check_rng *r) { return mora_random_next(&r->state); }
/* Uniform in [-1, 1). */
static inline double check_rng_uniform(check_rng *r) { return mora_random_signed(&r->state); }
/* Uniform integer in [lo, hi]. */
static inline int64_t check_rng_int(check_rng *r, int64_t lo, int64_t hi) {
    return lo + (int64_t)(check_rng_next(r) % (uint64_t)(hi - lo + 1));
}
static inline void check_fill(check_rng *r, double *v, int64_t n) {
    for (int64_t i = 0; i < n; ++i) v[i] = check_rng_uniform(r);
}

#endif
