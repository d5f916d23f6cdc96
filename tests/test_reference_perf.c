/* A functional bound on the float64 reference's cost. Every operator's forward + backward must finish
 * under 5 s at
 *   - d_in = d_out = 4096, r̂ = 256, n = 64 (a LLaMA q/k/v/o layer), and
 *   - d_in = d_out = 65536, n = 16, r̂ = 256 (32 for reshape/rope, whose cost grows with B·r̂²).
 * The work is O(n·(blocks·r̂² + d_in + d_out)): well under a second for both. An accidental
 * O(n·d_in·d_out) (e.g. going through the dense ΔW) costs ~1e9 multiply-adds in the first and ~7e10 in
 * the second, which the bound catches. Times are printed; results must be finite and not all zero. */
#define _POSIX_C_SOURCE 199309L
#include <time.h>

#include "check.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int all_finite_nonzero(const double *v, int64_t n) {
    int nonzero = 0;
    for (int64_t i = 0; i < n; ++i) {
        if (!isfinite(v[i])) return 0;
        nonzero |= v[i] != 0.0;
    }
    return nonzero;
}

static void run(int64_t d, int64_t n, int64_t rhat_blocks, int64_t rhat_other, uint64_t seed) {
    const int64_t rmax = rhat_blocks > rhat_other ? rhat_blocks : rhat_other;
    double *M = malloc(sizeof(double) * (size_t)(rmax * rmax)), *x = malloc(sizeof(double) * (size_t)(n * d)),
           *dy = malloc(sizeof(double) * (size_t)(n * d)), *y = malloc(sizeof(double) * (size_t)(n * d)),
           *dx = malloc(sizeof(double) * (size_t)(n * d)), *dM = malloc(sizeof(double) * (size_t)(rmax * rmax));
    if (!M || !x || !dy || !y || !dx || !dM) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    check_rng rng = {seed};
    check_fill(&rng, M, rmax * rmax);
    check_fill(&rng, x, n * d);
    check_fill(&rng, dy, n * d);
    for (int op = 0; op < MORA_OP_COUNT; ++op) {
        const int blocked = op == MORA_OP_RESHAPE || op == MORA_OP_ROPE;
        const mora_shape s = {d, d, blocked ? rhat_blocks : rhat_other, (mora_op)op};
        REQUIRE_OK(mora_shape_check(&s));
        memset(y, 0, sizeof(double) * (size_t)(n * d));
        memset(dx, 0, sizeof(double) * (size_t)(n * d));
        memset(dM, 0, sizeof(double) * (size_t)(s.rhat * s.rhat));
        const double t0 = now_s();
        CHECK_STATUS(mora_ref_forward(&s, M, x, y, n, 1.0), MORA_OK);
        const double t1 = now_s();
        CHECK_STATUS(mora_ref_backward(&s, M, x, dy, dx, dM, n), MORA_OK);
        const double t2 = now_s();
        printf("%-16s d=%lld rhat=%lld n=%lld: forward %.3f s, backward %.3f s\n", mora_op_name(s.op),
               (long long)d, (long long)s.rhat, (long long)n, t1 - t0, t2 - t1);
        const int before = check_failures_;
        CHECK(t2 - t0 < 5.0);
        CHECK(all_finite_nonzero(y, n * d));
        CHECK(all_finite_nonzero(dx, n * d));
        CHECK(all_finite_nonzero(dM, s.rhat * s.rhat));
        if (check_failures_ > before)
            fprintf(stderr, "  op=%s d=%lld rhat=%lld n=%lld\n", mora_op_name(s.op), (long long)d, (long long)s.rhat,
                    (long long)n);
    }
    free(M), free(x), free(dy), free(y), free(dx), free(dM);
}

int main(void) {
    run(4096, 64, 256, 256, 2024);
    run(65536, 16, 32, 256, 2025);
    return check_report();
}
