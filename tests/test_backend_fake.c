/* test_backend_fake — the CUDA and HIP backends' plumbing, on machines without those GPUs, against
 * fake runtimes (fake_cuda_driver.c, fake_hip_runtime.c) whose device memory is host memory and
 * whose launches are only recorded. The generated kernels are really compiled (NVRTC / hiprtc) and
 * their binaries loaded by the fake.
 *
 *   test_backend_fake cuda|hip            MORA_CUDA_LIBRARY / MORA_HIP_LIBRARY name the fake
 *   test_backend_fake cuda-nodevice|hip-nodevice   (with FAKE_*_INIT_RESULT=100 set)
 *
 * Checks: device description, buffer round trips, bounds from buffer_size, zeroing, stream
 * adoption, events, a plan's forward / backward / merge launches (entry, grid, block and every
 * argument value as the kernel would see it), that the hot calls compile, load, allocate, free and
 * synchronise nothing (so they can be captured in a CUDA graph), that a second plan of the same
 * shape compiles nothing, that the caller's current context / device is left as it was, and that everything is released (the fake counts contexts, allocations, modules,
 * streams, events and calls made without the context current). Exits 77 without the fake or without
 * the compiler. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, setenv */
#include <dlfcn.h>
#include <stdlib.h>

#include "check.h"
#include "context.h"
#include "fake_gpu.h"
#include "plan_internal.h"
#include "offline_compile.h"

static int is_cuda;
static fake_gpu_stats *fake;
static int (*fake_hip_set_device)(int);
static int (*fake_hip_get_device)(int *);
static void *(*fake_foreign_stream)(void);
static void *(*fake_foreign_allocation)(size_t bytes);
static void *fake_library;

static int64_t arg_i64(int i) {
    int64_t v;
    memcpy(&v, fake->last_args[i], sizeof v);
    return v;
}

static float arg_f32(int i) {
    float v;
    memcpy(&v, fake->last_args[i], sizeof v);
    return v;
}

static uintptr_t arg_ptr(int i) {
    uint64_t v;
    memcpy(&v, fake->last_args[i], sizeof v);
    return (uintptr_t)v;
}

/* The last launch was entry `entry` of `spec` for n tokens (grid and block), with `arg_count`
 * arguments (their values are checked by the caller). */
static void check_launch(const mora_kernel_spec *spec, int entry, int64_t n, int arg_count) {
    const mora_kind_decl *decl = mora_spec_decl(spec);
    CHECK_STR(fake->last_entry, decl->entries[entry].name);
    size_t groups[3];
    mora_spec_groups(spec, entry, n, groups);
    for (int d = 0; d < 3; ++d) CHECK_EQ_INT(fake->last_dims[d], groups[d]);
    CHECK_EQ_INT(fake->last_dims[3], mora_spec_threads(spec, entry));
    CHECK_EQ_INT(fake->last_dims[4], 1);
    CHECK_EQ_INT(fake->last_dims[5], 1);
    CHECK_EQ_INT(fake->last_arg_count, arg_count);
}

static void check_no_backend(const char *backend, const char *why_part) {
    mora_context *ctx = NULL;
    CHECK_STATUS(mora_context_create(backend, 0, &ctx), MORA_E_NO_BACKEND);
    printf("%s: %s\n", backend, mora_last_error());
    CHECK(strstr(mora_last_error(), why_part) != NULL);
    CHECK(ctx == NULL);
}

static void run(const char *backend) {
    mora_context *ctx = NULL;
    REQUIRE_OK(mora_context_create(backend, 0, &ctx));
    const mora_device_info *info = &ctx->info;
    printf("%s: %s, %s, %s, %s, %d units, %zu bytes local, %zu work-items\n", backend, info->name, info->arch,
           info->driver_version, info->compiler_version, info->compute_units, info->local_mem_bytes,
           info->max_work_group);
    CHECK_STR(mora_context_backend(ctx), backend);
    CHECK_STR(info->arch, is_cuda ? "sm_90" : "gfx90a");
    CHECK_EQ_INT(info->compute_units, is_cuda ? 132 : 110);
    CHECK_EQ_INT(info->max_work_group, 1024);
    CHECK(strstr(info->compiler_version, is_cuda ? "NVRTC" : "hiprtc") != NULL);
    if (is_cuda) CHECK(strstr(info->compiler_version, "target sm_90") != NULL);
    CHECK_STATUS(mora_context_create(backend, 5, &(mora_context *){NULL}), MORA_E_NO_BACKEND);

    /* HIP: the caller has another device current; every call must switch to ours and back. */
    if (!is_cuda) REQUIRE_OK(fake_hip_set_device(1) == 0 ? MORA_OK : MORA_E_DEVICE);

    /* buffers: round trip, bounds, zeroing, freeing */
    enum { COUNT = 1000 };
    float host[COUNT], back[COUNT];
    for (int i = 0; i < COUNT; ++i) host[i] = (float)i * 0.5f - 7.0f;
    void *buf = NULL;
    REQUIRE_OK(mora_buffer_alloc(ctx, sizeof host, &buf));
    REQUIRE_OK(mora_buffer_write(ctx, buf, 0, host, sizeof host));
    REQUIRE_OK(mora_buffer_read(ctx, buf, 0, back, sizeof back));
    CHECK(memcmp(host, back, sizeof host) == 0);
    REQUIRE_OK(mora_buffer_read(ctx, buf, 40, back, 80));
    CHECK(memcmp(host + 10, back, 80) == 0);
    CHECK_STATUS(mora_buffer_write(ctx, buf, sizeof host - 8, host, 16), MORA_E_ARG);
    CHECK_STATUS(mora_buffer_read(ctx, buf, 1, back, sizeof host), MORA_E_ARG);
    size_t size = 0;
    REQUIRE_OK(ctx->be->buffer_size(ctx->be_ctx, (char *)buf + 100, &size));
    CHECK_EQ_INT(size, sizeof host - 100);
    CHECK_STATUS(ctx->be->buffer_size(ctx->be_ctx, host, &size), MORA_E_ARG);
    REQUIRE_OK(ctx->be->buffer_zero(ctx->be_ctx, buf, 400));
    REQUIRE_OK(mora_buffer_read(ctx, buf, 0, back, sizeof back));
    CHECK(back[0] == 0.0f && back[99] == 0.0f && back[100] == host[100]);
    REQUIRE_OK(mora_synchronize(ctx));
    REQUIRE_OK(mora_buffer_free(ctx, buf));
    CHECK_STATUS(mora_buffer_free(ctx, host), MORA_E_DEVICE); /* not the runtime's memory */
    CHECK_EQ_INT(fake->bad_pointers, 1);

    /* events */
    void *e0 = NULL, *e1 = NULL;
    double ms = 0.0;
    REQUIRE_OK(ctx->be->event_record(ctx->be_ctx, &e0));
    REQUIRE_OK(ctx->be->event_record(ctx->be_ctx, &e1));
    REQUIRE_OK(ctx->be->event_elapsed_ms(ctx->be_ctx, e0, e1, &ms));
    CHECK_NEAR(ms, 0.25, 1e-9);
    ctx->be->event_free(ctx->be_ctx, e0);
    ctx->be->event_free(ctx->be_ctx, e1);

    /* a plan's kernels: compiled for real, loaded and launched by the fake */
    const mora_shape s = {96, 80, 16, MORA_OP_ROPE};
    const int64_t n = 5, ldx = 100, ldy = 81, ldw = 97;
    float M[16 * 16];
    for (int i = 0; i < 16 * 16; ++i) M[i] = (float)(i % 17) - 8.0f;
    void *x = NULL, *y = NULL, *dy = NULL, *dx = NULL, *w = NULL, *Mdev = NULL, *dM = NULL;
    REQUIRE_OK(mora_buffer_alloc(ctx, (size_t)(n * ldx) * 2, &x));
    REQUIRE_OK(mora_buffer_alloc(ctx, (size_t)(n * ldy) * 2, &y));
    REQUIRE_OK(mora_buffer_alloc(ctx, (size_t)(n * ldy) * 2, &dy));
    REQUIRE_OK(mora_buffer_alloc(ctx, (size_t)(n * ldx) * 2, &dx));
    REQUIRE_OK(mora_buffer_alloc(ctx, (size_t)(s.d_out * ldw) * 4, &w));
    REQUIRE_OK(mora_buffer_alloc(ctx, sizeof M, &Mdev));
    REQUIRE_OK(mora_buffer_alloc(ctx, sizeof M, &dM));
    REQUIRE_OK(mora_buffer_write(ctx, Mdev, 0, M, sizeof M));
    const mora_plan_options options = {.struct_size = sizeof options, .merge_dtypes = 1u << MORA_F32};
    const mora_context_stats before_plan = mora_context_get_stats(ctx);
    mora_plan *p = NULL;
    REQUIRE_OK(mora_plan_create(ctx, &s, MORA_BF16, n, &options, &p));
    const mora_context_stats after_plan = mora_context_get_stats(ctx);
    CHECK_EQ_INT(after_plan.compiles - before_plan.compiles, 4); /* fwd, bwd_dx, bwd_dm, merge: all at creation */

    /* an adopted stream carries the launches; back to the context's own with NULL */
    void *adopted = &check_count_; /* the fake CUDA driver takes any other handle for the primary context's */
    if (is_cuda) {
        CHECK_STATUS(mora_context_set_stream(ctx, fake_foreign_stream()), MORA_E_ARG);
        REQUIRE_OK(mora_context_set_stream(ctx, adopted));
    }

    /* the hot calls: no compile, no module load, no allocation or free, no synchronisation */
    const fake_gpu_stats hot_before = *fake;
    const int launches_before = fake->launches;
    REQUIRE_OK(mora_forward(p, Mdev, x, ldx, y, ldy, n, 0.5f));
    CHECK_EQ_INT(fake->launches, launches_before + 1);
    mora_kernel_spec spec = mora_plan_spec(p, MORA_KIND_FWD);
    /* mora_fwd(x, ldx, y, ldy, M, cs, n, scale) */
    const uintptr_t cs_dev = arg_ptr(5);
    CHECK(cs_dev != 0);
    check_launch(&spec, 0, n, 8);
    CHECK(arg_ptr(0) == (uintptr_t)x && arg_i64(1) == ldx && arg_ptr(2) == (uintptr_t)y && arg_i64(3) == ldy);
    CHECK(arg_ptr(4) == (uintptr_t)Mdev && arg_i64(6) == n && arg_f32(7) == 0.5f);
    if (is_cuda) {
        CHECK(fake->last_stream == adopted);
        REQUIRE_OK(mora_context_set_stream(ctx, NULL));
    }

    REQUIRE_OK(mora_backward(p, Mdev, x, ldx, dy, ldy, dx, ldx, dM, n, 2.0f));
    CHECK_EQ_INT(fake->launches, launches_before + 4); /* bwd_dm (split 1: one entry), dx gemm + gather */
    /* the last launch is bwd_dx's gather: mora_bwd_dx_gather(u, cs, dx, lddx, n, scale) */
    spec = mora_plan_spec(p, MORA_KIND_BWD_DX);
    check_launch(&spec, 1, n, 6);
    CHECK(arg_ptr(0) != 0 && arg_ptr(1) == cs_dev && arg_ptr(2) == (uintptr_t)dx && arg_i64(3) == ldx);
    CHECK(arg_i64(4) == n && arg_f32(5) == 2.0f);
    if (is_cuda) CHECK(fake->last_stream != adopted);

    REQUIRE_OK(mora_merge(p, Mdev, w, ldw, MORA_F32, -1.5f));
    /* mora_merge(W, ldw, M, cs, s) */
    spec = mora_plan_spec(p, MORA_KIND_MERGE);
    spec.dtype = MORA_F32;
    check_launch(&spec, 0, 1, 5);
    CHECK(arg_ptr(0) == (uintptr_t)w && arg_i64(1) == ldw && arg_ptr(2) == (uintptr_t)Mdev && arg_ptr(3) == cs_dev);
    CHECK(arg_f32(4) == -1.5f);
    CHECK_EQ_INT(fake->allocation_calls, hot_before.allocation_calls);
    CHECK_EQ_INT(fake->free_calls, hot_before.free_calls);
    CHECK_EQ_INT(fake->synchronizations, hot_before.synchronizations);
    CHECK_EQ_INT(fake->module_loads, hot_before.module_loads);
    const mora_context_stats after_hot = mora_context_get_stats(ctx);
    CHECK_EQ_INT(after_hot.compiles, after_plan.compiles);
    CHECK_EQ_INT(after_hot.binary_loads, after_plan.binary_loads);
    CHECK(fake->elf_modules >= 4); /* fwd, bwd_dm, bwd_dx, merge: binaries, not PTX */

    /* a buffer of another context (CUDA) / device (HIP) is refused, and nothing is launched */
    void *foreign = fake_foreign_allocation((size_t)(n * ldy) * 2);
    REQUIRE_OK(foreign ? MORA_OK : MORA_E_NO_MEMORY);
    const int launches_then = fake->launches;
    CHECK_STATUS(mora_forward(p, Mdev, x, ldx, foreign, ldy, n, 0.5f), MORA_E_ARG);
    CHECK(strstr(mora_last_error(), is_cuda ? "another CUDA context" : "HIP device 1") != NULL);
    CHECK_STATUS(mora_backward(p, Mdev, x, ldx, dy, ldy, dx, ldx, foreign, n, 1.0f), MORA_E_ARG);
    CHECK_EQ_INT(fake->launches, launches_then);
    /* aliasing is told on device addresses too: y == x */
    CHECK_STATUS(mora_forward(p, Mdev, x, ldx, x, ldx, n, 0.5f), MORA_E_ALIAS);

    /* a second plan of the same shape shares the programs: nothing compiled or loaded */
    mora_plan *q = NULL;
    REQUIRE_OK(mora_plan_create(ctx, &s, MORA_BF16, n, &options, &q));
    CHECK_EQ_INT(mora_context_get_stats(ctx).compiles, after_plan.compiles);
    CHECK_EQ_INT(fake->module_loads, hot_before.module_loads);
    mora_plan_destroy(q);

    /* too many work-items for the device: refused before anything is launched */
    spec = mora_plan_spec(p, MORA_KIND_FWD);
    CHECK_STATUS(mora_spec_set_param(&spec, "FWD_TM", 64), MORA_OK);
    CHECK_STATUS(mora_spec_set_param(&spec, "FWD_WM", 1), MORA_OK);
    CHECK_STATUS(mora_spec_set_param(&spec, "FWD_WN", 1), MORA_OK);
    CHECK_STATUS(mora_plan_use_spec(p, &spec), MORA_E_PARAM); /* 64 x 32 work-items > the fake's 1024 */
    mora_plan_destroy(p);

    /* binaries in the kernels cache: a second context (as a second process would) loads the plan's
     * four programs and compiles nothing */
    {
        char dir[] = "/tmp/mora-test-fake-XXXXXX";
        REQUIRE_OK(mkdtemp(dir) ? MORA_OK : MORA_E_IO);
        setenv("MORA_CACHE_DIR", dir, 1);
        const mora_shape t = {64, 40, 8, MORA_OP_SHARE};
        for (int round = 0; round < 2; ++round) {
            mora_context *c = NULL;
            REQUIRE_OK(mora_context_create(backend, 0, &c));
            mora_plan *plan = NULL;
            REQUIRE_OK(mora_plan_create(c, &t, MORA_F16, 3, NULL, &plan));
            const mora_context_stats stats = mora_context_get_stats(c);
            CHECK_EQ_INT(stats.compiles, round == 0 ? 4 : 0);
            CHECK_EQ_INT(stats.binary_loads, round == 0 ? 0 : 4);
            mora_plan_destroy(plan);
            mora_context_destroy(c);
        }
        setenv("MORA_CACHE_DIR", "off", 1);
        char command[128];
        snprintf(command, sizeof command, "rm -rf '%s'", dir);
        CHECK_EQ_INT(system(command), 0);
    }

    /* a context around the application's own objects: its CUcontext (CUDA), its device and stream */
    if (is_cuda) {
        /* the driver's calls as the fake defines them (CUresult: 0 is success; CUdevice: an int) */
        int (*retain)(void **, int) = (int (*)(void **, int))dlsym(fake_library, "cuDevicePrimaryCtxRetain");
        int (*release)(int) = (int (*)(int))dlsym(fake_library, "cuDevicePrimaryCtxRelease_v2"); /* cuda.h's name */
        void *app = NULL;
        REQUIRE_OK(retain && release && retain(&app, 0) == 0 ? MORA_OK : MORA_E_DEVICE);
        const int retained = fake->contexts_retained;
        mora_context *c = NULL;
        REQUIRE_OK(mora_context_create_cuda(app, 0, adopted, &c));
        CHECK_EQ_INT(fake->contexts_retained, retained); /* the application's context is not retained */
        mora_plan *plan = NULL;
        REQUIRE_OK(mora_plan_create(c, &s, MORA_BF16, n, &options, &plan));
        REQUIRE_OK(mora_forward(plan, Mdev, x, ldx, y, ldy, n, 1.0f)); /* buffers of the same CUDA context */
        CHECK(fake->last_stream == adopted);
        mora_plan_destroy(plan);
        mora_context_destroy(c);
        release(0);
    } else {
        mora_context *c = NULL;
        REQUIRE_OK(mora_context_create_hip(0, NULL, &c));
        CHECK_STR(mora_context_backend(c), "hip");
        mora_context_destroy(c);
    }

    void *buffers[] = {x, y, dy, dx, w, Mdev, dM};
    for (int i = 0; i < 7; ++i) REQUIRE_OK(mora_buffer_free(ctx, buffers[i]));
    if (!is_cuda) {
        int current = -1;
        fake_hip_get_device(&current);
        CHECK_EQ_INT(current, 1); /* the caller's device is current again */
        fake_hip_set_device(0);
    }
    mora_context_destroy(ctx);

    printf("fake: %d launches, %d modules (%d ELF), %d synchronisations, deepest context stack %d\n", fake->launches,
           fake->live_modules, fake->elf_modules, fake->synchronizations, fake->max_depth);
    CHECK_EQ_INT(fake->calls_without_context, 0);
    CHECK_EQ_INT(fake->unbalanced_pops, 0);
    CHECK_EQ_INT(fake->depth, 0);
    CHECK_EQ_INT(fake->bad_pointers, 1);
    CHECK_EQ_INT(fake->live_allocations, 0);
    CHECK_EQ_INT(fake->live_modules, 0);
    CHECK_EQ_INT(fake->live_streams, 0);
    CHECK_EQ_INT(fake->live_events, 0);
    CHECK_EQ_INT(fake->contexts_retained, 0);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_backend_fake cuda|hip|cuda-nodevice|hip-nodevice\n");
        return 2;
    }
    is_cuda = strncmp(argv[1], "cuda", 4) == 0;
    const char *backend = is_cuda ? "cuda" : "hip";
    const char *variable = is_cuda ? "MORA_CUDA_LIBRARY" : "MORA_HIP_LIBRARY";
    const char *path = getenv(variable);
    if (!path || !*path) SKIP("%s is not set to a fake runtime", variable);
    mora_compile_report probe;
    const mora_status st = mora_compile_offline(is_cuda ? MORA_DIALECT_CUDA : MORA_DIALECT_HIP, is_cuda ? "sm_90" : "gfx90a",
                                                "extern \"C\" __global__ void mora_probe() {}\n", &probe);
    if (st == MORA_E_NO_BACKEND) SKIP("%s", mora_last_error());
    REQUIRE_OK(st);
    mora_compile_report_free(&probe);
    void *library = fake_library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!library) SKIP("%s=%s: %s", variable, path, dlerror());
    fake_gpu_stats *(*state)(void) = (fake_gpu_stats * (*)(void)) dlsym(library, "fake_gpu_state");
    if (!state) SKIP("%s is not a fake runtime (no fake_gpu_state)", path);
    fake = state();
    fake_foreign_stream = (void *(*)(void))dlsym(library, "fake_gpu_foreign_stream");
    if (!fake_foreign_stream) SKIP("%s is not a fake runtime (no fake_gpu_foreign_stream)", path);
    fake_foreign_allocation = (void *(*)(size_t))dlsym(library, "fake_gpu_foreign_allocation");
    if (!fake_foreign_allocation) SKIP("%s is not a fake runtime (no fake_gpu_foreign_allocation)", path);
    fake_hip_set_device = (int (*)(int))dlsym(library, "hipSetDevice");
    fake_hip_get_device = (int (*)(int *))dlsym(library, "hipGetDevice");
    if (strstr(argv[1], "nodevice"))
        check_no_backend(backend, is_cuda ? "CUDA_ERROR_NO_DEVICE" : "hipErrorNoDevice");
    else
        run(backend);
    return check_report();
}
