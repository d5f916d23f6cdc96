/* test_backend_absent — on a machine without an NVIDIA or AMD GPU (or without their drivers),
 * mora_context_create("cuda") and ("hip") fail cleanly: MORA_E_NO_BACKEND with a sentence naming the
 * backend and the reason, the output untouched, the same answer when asked again, and "auto" still
 * opens another backend. A backend whose GPU is present is reported and not checked; when both are
 * present the test exits 77 (the ops suites cover them). */
#include "check.h"
#include "context.h"

/* Returns 1 when the backend opened (a GPU is present), 0 after checking that it failed cleanly. */
static int check_absent(const char *backend) {
    mora_context *const untouched = (mora_context *)&check_count_;
    mora_context *ctx = untouched;
    const mora_status st = mora_context_create(backend, 0, &ctx);
    if (st == MORA_OK) {
        printf("%s: present (%s); not checked\n", backend, mora_context_device_name(ctx));
        mora_context_destroy(ctx);
        return 1;
    }
    char why[1024];
    snprintf(why, sizeof why, "%s", mora_last_error());
    printf("%s: %s: %s\n", backend, mora_status_name(st), why);
    CHECK_EQ_INT(st, MORA_E_NO_BACKEND);
    CHECK(ctx == untouched);
    CHECK(strlen(why) > 20);
    CHECK(strstr(why, backend) != NULL);
    /* Asked again (the driver is probed once per process): the same answer. */
    CHECK_STATUS(mora_context_create(backend, 0, &ctx), MORA_E_NO_BACKEND);
    CHECK_STR(mora_last_error(), why);
    CHECK_STATUS(mora_context_create(backend, 3, &ctx), MORA_E_NO_BACKEND);
    CHECK(ctx == untouched);
    CHECK_STATUS(mora_context_create(backend, -1, &ctx), MORA_E_ARG);
    return 0;
}

int main(void) {
    const int cuda_present = check_absent("cuda");
    const int hip_present = check_absent("hip");
    if (cuda_present && hip_present) SKIP("both a CUDA and a HIP device are present: nothing is absent");
    mora_context *ctx = NULL;
    REQUIRE_OK(mora_context_create("auto", 0, &ctx));
    const char *chosen = mora_context_backend(ctx);
    printf("auto: %s (%s)\n", chosen, mora_context_device_name(ctx));
    if (!cuda_present) CHECK(strcmp(chosen, "cuda") != 0);
    if (!hip_present) CHECK(strcmp(chosen, "hip") != 0);
    /* an OpenCL device that is the host's CPU (PoCL) loses to the cpu backend */
    CHECK(!(strcmp(chosen, "opencl") == 0 && ctx->info.is_cpu));
    mora_context_destroy(ctx);
    return check_report();
}
