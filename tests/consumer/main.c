/* A program a user of the installed libmora writes: it includes <mora.h> only, links the library
 * (through find_package(mora) or pkg-config), checks that the header and the loaded library agree on
 * the version, and runs one forward on the cpu backend against the float64 reference. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <mora.h>

int main(void) {
    if (strcmp(mora_version(), MORA_VERSION_STRING) != 0) {
        fprintf(stderr, "consumer: header %s, library %s\n", MORA_VERSION_STRING, mora_version());
        return 1;
    }
    mora_shape s;
    mora_context *ctx = NULL;
    mora_plan *plan = NULL;
    if (mora_shape_make(&s, 24, 20, 2, MORA_OP_SHARE) != MORA_OK || mora_context_create("cpu", 0, &ctx) != MORA_OK ||
        mora_plan_create(ctx, &s, MORA_F32, 2, NULL, &plan) != MORA_OK) {
        fprintf(stderr, "consumer: %s\n", mora_last_error());
        return 1;
    }
    float M[64 * 64], x[2 * 24], y[2 * 20] = {0};
    double Md[64 * 64], xd[2 * 24], want[2 * 20] = {0};
    for (int i = 0; i < s.rhat * s.rhat; ++i) M[i] = (float)((i * 7) % 11) / 11.0f - 0.5f, Md[i] = M[i];
    for (int i = 0; i < 2 * 24; ++i) x[i] = (float)((i * 5) % 13) / 13.0f - 0.5f, xd[i] = x[i];
    if (mora_forward(plan, M, x, 24, y, 20, 2, 1.0f) != MORA_OK || mora_ref_forward(&s, Md, xd, want, 2, 1.0) != MORA_OK) {
        fprintf(stderr, "consumer: %s\n", mora_last_error());
        return 1;
    }
    double diff = 0, norm = 0;
    for (int i = 0; i < 2 * 20; ++i) diff += (y[i] - want[i]) * (y[i] - want[i]), norm += want[i] * want[i];
    mora_plan_destroy(plan);
    mora_context_destroy(ctx);
    if (!(sqrt(diff / norm) < 1e-5)) {
        fprintf(stderr, "consumer: forward disagrees with the reference (relative error %g)\n", sqrt(diff / norm));
        return 1;
    }
    printf("consumer: libmora %s (%d), r̂ = %lld, forward agrees with the reference\n", mora_version(),
           mora_version_number(), (long long)s.rhat);
    return 0;
}
