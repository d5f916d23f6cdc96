/* test_opencl_interop — a context made around the application's own OpenCL objects (mora.h:
 * mora_context_create_opencl): the test makes its cl_context, in-order queue and cl_mem buffers on
 * PoCL, fills them with its own writes on its queue, runs forward, backward and merge through
 * libmora on them, reads the results back with its own reads, and compares with the float64
 * reference. Also: an out-of-order queue, a queue of another cl_context and a device outside the
 * cl_context are refused with a sentence; set_stream(NULL) returns to libmora's own queue.
 * Exits 77 without an OpenCL platform. */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include "check.h"

#define REQUIRE_CL(call)                                                                             \
    do {                                                                                             \
        const cl_int e_ = (call);                                                                    \
        if (e_ != CL_SUCCESS) {                                                                      \
            fprintf(stderr, "%s:%d: %s failed with OpenCL error %d\n", __FILE__, __LINE__, #call, e_); \
            exit(1);                                                                                 \
        }                                                                                            \
    } while (0)

static cl_mem upload(cl_context context, cl_command_queue queue, const float *host, size_t count) {
    cl_int err = CL_SUCCESS;
    cl_mem mem = clCreateBuffer(context, CL_MEM_READ_WRITE, count * sizeof *host, NULL, &err);
    REQUIRE_CL(err);
    REQUIRE_CL(clEnqueueWriteBuffer(queue, mem, CL_FALSE, 0, count * sizeof *host, host, 0, NULL, NULL));
    return mem;
}

static void download_compare(cl_command_queue queue, cl_mem mem, const double *want, int64_t count, const char *what) {
    float *out = malloc((size_t)count * sizeof *out);
    double *got = malloc((size_t)count * sizeof *got);
    REQUIRE_CL(clEnqueueReadBuffer(queue, mem, CL_TRUE, 0, (size_t)count * sizeof *out, out, 0, NULL, NULL));
    for (int64_t i = 0; i < count; ++i) got[i] = out[i];
    const double err = check_rel_error(got, want, count);
    ++check_count_;
    if (!(err <= 1e-5)) CHECK_FAIL_("%s: relative error %.3g against the float64 reference", what, err);
    free(out), free(got);
}

int main(void) {
    cl_platform_id platform;
    cl_uint platforms = 0;
    if (clGetPlatformIDs(1, &platform, &platforms) != CL_SUCCESS || platforms == 0) SKIP("no OpenCL platform here");
    cl_device_id device;
    if (clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL) != CL_SUCCESS) SKIP("no OpenCL device here");
    cl_int err = CL_SUCCESS;
    cl_context context = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    REQUIRE_CL(err);
    cl_command_queue queue = clCreateCommandQueue(context, device, 0, &err);
    REQUIRE_CL(err);

    /* refusals: a queue of another cl_context, an out-of-order queue, NULL objects */
    mora_context *ctx = NULL;
    cl_context other = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    REQUIRE_CL(err);
    cl_command_queue other_queue = clCreateCommandQueue(other, device, 0, &err);
    REQUIRE_CL(err);
    CHECK_STATUS(mora_context_create_opencl(context, device, other_queue, &ctx), MORA_E_ARG);
    CHECK(strstr(mora_last_error(), "another cl_context") != NULL);
    CHECK(ctx == NULL);
    CHECK_STATUS(mora_context_create_opencl(NULL, device, queue, &ctx), MORA_E_NULL);
    CHECK_STATUS(mora_context_create_opencl(context, NULL, queue, &ctx), MORA_E_NULL);
    cl_command_queue unordered = clCreateCommandQueue(context, device, CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, &err);
    if (err == CL_SUCCESS) {
        CHECK_STATUS(mora_context_create_opencl(context, device, unordered, &ctx), MORA_E_ARG);
        CHECK(strstr(mora_last_error(), "out-of-order") != NULL);
    } else {
        printf("the device makes no out-of-order queue (error %d): that refusal is not checked here\n", (int)err);
    }

    REQUIRE_OK(mora_context_create_opencl(context, device, queue, &ctx));
    CHECK_STR(mora_context_backend(ctx), "opencl");
    if (unordered) CHECK_STATUS(mora_context_set_stream(ctx, unordered), MORA_E_ARG);

    /* data: the application's buffers, written on its queue */
    const mora_shape s = {50, 37, 8, MORA_OP_ROPE};
    const int64_t n = 9, nx = n * s.d_in, ny = n * s.d_out, nm = s.rhat * s.rhat, nw = s.d_out * s.d_in;
    check_rng rng = {2024};
    float *x = malloc((size_t)nx * 4), *dy = malloc((size_t)ny * 4), *M = malloc((size_t)nm * 4);
    float *zeros = calloc((size_t)nw, 4);
    double *xd = calloc((size_t)nx, 8), *dyd = calloc((size_t)ny, 8), *Md = calloc((size_t)nm, 8);
    double *ry = calloc((size_t)ny, 8), *rdx = calloc((size_t)nx, 8), *rdm = calloc((size_t)nm, 8), *rw = calloc((size_t)nw, 8);
    for (int64_t i = 0; i < nx; ++i) x[i] = (float)check_rng_uniform(&rng), xd[i] = x[i];
    for (int64_t i = 0; i < ny; ++i) dy[i] = (float)check_rng_uniform(&rng), dyd[i] = dy[i];
    for (int64_t i = 0; i < nm; ++i) M[i] = (float)check_rng_uniform(&rng), Md[i] = M[i];
    REQUIRE_OK(mora_ref_forward(&s, Md, xd, ry, n, 1.0));
    REQUIRE_OK(mora_ref_backward(&s, Md, xd, dyd, rdx, rdm, n));
    REQUIRE_OK(mora_ref_delta_weight(&s, Md, rw));
    cl_mem bx = upload(context, queue, x, (size_t)nx), bdy = upload(context, queue, dy, (size_t)ny),
           bM = upload(context, queue, M, (size_t)nm), by = upload(context, queue, zeros, (size_t)ny),
           bdx = upload(context, queue, zeros, (size_t)nx), bdM = upload(context, queue, zeros, (size_t)nm),
           bW = upload(context, queue, zeros, (size_t)nw);

    /* libmora's calls on the application's queue: ordered after its writes, before its reads */
    mora_plan *p = NULL;
    REQUIRE_OK(mora_plan_create(ctx, &s, MORA_F32, n, NULL, &p));
    REQUIRE_OK(mora_forward(p, bM, bx, s.d_in, by, s.d_out, n, 1.0f));
    REQUIRE_OK(mora_backward(p, bM, bx, s.d_in, bdy, s.d_out, bdx, s.d_in, bdM, n, 1.0f));
    REQUIRE_OK(mora_merge(p, bM, bW, s.d_in, MORA_F32, 1.0f));
    download_compare(queue, by, ry, ny, "fwd y");
    download_compare(queue, bdx, rdx, nx, "bwd dx");
    download_compare(queue, bdM, rdm, nm, "bwd dM");
    download_compare(queue, bW, rw, nw, "merge W");

    /* back to libmora's own queue: the same buffers still work (same cl_context) */
    REQUIRE_OK(mora_context_set_stream(ctx, NULL));
    REQUIRE_OK(mora_forward(p, bM, bx, s.d_in, by, s.d_out, n, -1.0f)); /* undoes the forward */
    REQUIRE_OK(mora_synchronize(ctx));
    double *zero_d = calloc((size_t)ny, 8);
    float *back = malloc((size_t)ny * 4);
    REQUIRE_CL(clEnqueueReadBuffer(queue, by, CL_TRUE, 0, (size_t)ny * 4, back, 0, NULL, NULL));
    double worst = 0.0;
    for (int64_t i = 0; i < ny; ++i) worst = fabs(back[i]) > worst ? fabs(back[i]) : worst;
    CHECK(worst < 1e-5);

    mora_plan_destroy(p);
    mora_context_destroy(ctx);
    cl_mem mems[] = {bx, bdy, bM, by, bdx, bdM, bW};
    for (int i = 0; i < 7; ++i) clReleaseMemObject(mems[i]);
    if (unordered) clReleaseCommandQueue(unordered);
    clReleaseCommandQueue(other_queue);
    clReleaseContext(other);
    clReleaseCommandQueue(queue);
    clReleaseContext(context);
    free(x), free(dy), free(M), free(zeros), free(xd), free(dyd), free(Md), free(ry), free(rdx), free(rdm), free(rw),
        free(zero_d), free(back);
    return check_report();
}
