// mora-micro — Google Benchmark micro-benchmarks of libmora's fixed costs:
//   BM_Codegen            source generation per spec (kind x shape), and of the naive kernel
//   BM_CompileOpenCL      clBuildProgram on the OpenCL device (PoCL without a GPU): "cold" gives every
//                         iteration a distinct source so no compiler cache answers, "warm" repeats one
//   BM_CompileFirstLaunchOpenCL  build + first launch + wait (PoCL generates code at the first launch)
//   BM_CompileOffline     NVRTC to CUBIN (sm_90) and hiprtc to a code object (gfx90a) through
//                         runtime/offline_compile.h: needs no GPU, skipped without the compiler;
//                         hiprtc only with MORA_MICRO_HIPRTC=1 (it cannot share a process with PoCL)
//   BM_CacheRecordLoad    a kernels-cache hit: loading one tuning record from the on-disk cache
//   BM_SelectParams       what mora_plan_create does per kind: cache lookup, then the shipped database
//   BM_LaunchTinyForward  one forward of a tiny plan (n = 1) plus a synchronize: launch overhead
// Not part of the test run. Build with -DMORA_BUILD_BENCH=ON; run ./build-bench/mora-micro.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <unistd.h>

extern "C" {
#include "cache.h"
#include "context.h"
#include "kernels.h"
#include "plan_internal.h"
#include "runner.h"
#include "mora.h"
#include "offline_compile.h"
#include "tuner.h"
}

namespace {

struct ShapeCase {
    const char *name;
    int64_t d_in, d_out, rank;
    mora_op op;
};

// LLaMA-2-7B's q/k/v/o at r = 8 (rope) and r = 256 (share), and gate/up at r = 8 (rope)
const ShapeCase kShapes[] = {
    {"4096x4096_r8_rope", 4096, 4096, 8, MORA_OP_ROPE},
    {"4096x4096_r256_share", 4096, 4096, 256, MORA_OP_SHARE},
    {"4096x11008_r8_rope", 4096, 11008, 8, MORA_OP_ROPE},
};

mora_shape MakeShape(const ShapeCase &c) {
    mora_shape s;
    if (mora_shape_make(&s, c.d_in, c.d_out, c.rank, c.op) != MORA_OK) std::abort();
    return s;
}

std::string SpecSource(const mora_kernel_spec &spec) {
    char *text = nullptr;
    if (mora_codegen(&spec, &text) != MORA_OK) return std::string();
    std::string source(text);
    std::free(text);
    return source;
}

// ---- code generation ----

void BM_Codegen(benchmark::State &state) {
    const ShapeCase &c = kShapes[state.range(0)];
    const auto kind = static_cast<mora_kind>(state.range(1));
    const mora_shape s = MakeShape(c);
    const mora_kernel_spec spec = mora_spec_default(&s, MORA_F32, kind, MORA_DIALECT_OPENCL);
    size_t bytes = 0;
    for (auto _ : state) {
        char *text = nullptr;
        if (mora_codegen(&spec, &text) != MORA_OK) {
            state.SkipWithError(mora_last_error());
            break;
        }
        bytes = std::strlen(text);
        benchmark::DoNotOptimize(text);
        std::free(text);
    }
    state.SetLabel(std::string(c.name) + " " + mora_kind_name(kind) + " (" + std::to_string(bytes) + " bytes)");
}
BENCHMARK(BM_Codegen)->ArgsProduct({{0, 1, 2}, {0, 1, 2, 3}})->Unit(benchmark::kMicrosecond);

void BM_CodegenNaive(benchmark::State &state) {
    const mora_shape s = MakeShape(kShapes[0]);
    const mora_kernel_spec spec = mora_spec_default(&s, MORA_F32, MORA_KIND_FWD, MORA_DIALECT_CUDA);
    for (auto _ : state) {
        char *text = nullptr;
        if (mora_codegen_naive(&spec, &text) != MORA_OK) {
            state.SkipWithError(mora_last_error());
            break;
        }
        benchmark::DoNotOptimize(text);
        std::free(text);
    }
}
BENCHMARK(BM_CodegenNaive)->Unit(benchmark::kMicrosecond);

// ---- compilation ----

// An empty kernel with a name of its own, appended to a source to make it new to every compiler cache.
std::string UniqueKernel(unsigned tag, unsigned serial) {
    return "\nKERNEL void mora_micro_unique_" + std::to_string(tag) + "_" + std::to_string(serial) +
           "(GLOBAL float *p) { if (p) p[0] = 0.0f; }\n";
}

// hiprtc (through AMD's comgr) and PoCL each carry their own LLVM, and LLVM aborts when both register
// their options in one process; MORA_MICRO_HIPRTC=1 runs the hiprtc benchmarks and skips OpenCL.
bool HiprtcRun() {
    const char *v = std::getenv("MORA_MICRO_HIPRTC");
    return v && std::strcmp(v, "1") == 0;
}

mora_context *OpenclContext() {
    static mora_context *ctx = nullptr;
    static bool tried = false;
    if (!tried && !HiprtcRun()) {
        tried = true;
        if (mora_context_create("opencl", 0, &ctx) != MORA_OK) ctx = nullptr;
    }
    return ctx;
}

void BM_CompileOpenCL(benchmark::State &state) {
    mora_context *ctx = OpenclContext();
    if (!ctx) {
        state.SkipWithError(HiprtcRun() ? "skipped under MORA_MICRO_HIPRTC=1" : "no OpenCL platform");
        return;
    }
    const auto kind = static_cast<mora_kind>(state.range(0));
    const bool cold = state.range(1) != 0;
    const mora_shape s = MakeShape(kShapes[0]);
    const std::string base = SpecSource(mora_spec_default(&s, MORA_F32, kind, MORA_DIALECT_OPENCL));
    static unsigned serial = 0;
    const unsigned tag = static_cast<unsigned>(getpid());
    for (auto _ : state) {
        // a distinct (empty) extra kernel defeats the OpenCL implementation's own program cache (PoCL
        // keys it on the compiled module, so a distinct comment alone would still hit)
        const std::string source = cold ? base + UniqueKernel(tag, serial++) : base;
        void *program = nullptr;
        if (mora_context_build(ctx, source.c_str(), &program) != MORA_OK) {
            state.SkipWithError(mora_last_error());
            break;
        }
        mora_context_release_program(ctx, program);
    }
    state.SetLabel(std::string(mora_kind_name(kind)) + (cold ? " cold" : " warm (implementation's cache)") +
                   " clBuildProgram on " + mora_context_device_name(ctx));
}
BENCHMARK(BM_CompileOpenCL)->ArgsProduct({{0, 1, 2, 3}, {1, 0}})->Unit(benchmark::kMillisecond)->MinTime(2.0);

// PoCL finishes code generation at the first launch (per work-group size), so clBuildProgram alone
// understates what a new kernel costs: this one builds a distinct source, launches it once (n = 1)
// and waits — the time to a kernel's first result.
void BM_CompileFirstLaunchOpenCL(benchmark::State &state) {
    mora_context *ctx = OpenclContext();
    if (!ctx) {
        state.SkipWithError(HiprtcRun() ? "skipped under MORA_MICRO_HIPRTC=1" : "no OpenCL platform");
        return;
    }
    const mora_shape s = MakeShape(kShapes[0]);
    const mora_kernel_spec spec = mora_spec_default(&s, MORA_F32, MORA_KIND_FWD, MORA_DIALECT_OPENCL);
    const std::string base = SpecSource(spec);
    mora_runner *layer = nullptr;
    void *x = nullptr, *y = nullptr;
    mora_status st = mora_runner_create(ctx, &s, MORA_F32, &layer);
    if (st == MORA_OK) st = mora_buffer_alloc(ctx, (size_t)s.d_in * sizeof(float), &x);
    if (st == MORA_OK) st = mora_buffer_alloc(ctx, (size_t)s.d_out * sizeof(float), &y);
    if (st != MORA_OK) state.SkipWithError(mora_last_error());
    static unsigned serial = 0;
    const unsigned tag = static_cast<unsigned>(getpid());
    void *previous = nullptr;
    for (auto _ : state) {
        if (st != MORA_OK) break;
        const std::string source = base + UniqueKernel(tag, serial++);
        void *program = nullptr;
        mora_kind_buffers b;
        std::memset(&b, 0, sizeof b);
        b.x = x, b.y = y, b.scale = 1.0f;
        st = mora_context_build(ctx, source.c_str(), &program);
        if (st == MORA_OK) st = mora_runner_use_program(layer, &spec, program);
        if (st == MORA_OK) st = mora_runner_run(layer, MORA_KIND_FWD, &b, 1);
        if (st == MORA_OK) st = mora_synchronize(ctx);
        mora_runner_drop(layer, MORA_KIND_FWD); // its handles point into the program freed next
        mora_context_release_program(ctx, previous);
        previous = program;
        if (st != MORA_OK) state.SkipWithError(mora_last_error());
    }
    if (layer) mora_runner_destroy(layer); // programs are the caller's here: freed below
    mora_context_release_program(ctx, previous);
    if (x) mora_buffer_free(ctx, x);
    if (y) mora_buffer_free(ctx, y);
    state.SetLabel(std::string("fwd: build + first launch (n = 1) on ") + mora_context_device_name(ctx));
}
BENCHMARK(BM_CompileFirstLaunchOpenCL)->Unit(benchmark::kMillisecond)->MinTime(2.0);

void BM_CompileOffline(benchmark::State &state) {
    const auto dialect = static_cast<mora_dialect>(state.range(0));
    const auto kind = static_cast<mora_kind>(state.range(1));
    const char *arch = dialect == MORA_DIALECT_CUDA ? "sm_90" : "gfx90a";
    if ((dialect == MORA_DIALECT_HIP) != HiprtcRun()) {
        state.SkipWithError(dialect == MORA_DIALECT_HIP
                                ? "hiprtc and PoCL both embed LLVM and cannot share a process: run with MORA_MICRO_HIPRTC=1"
                                : "skipped under MORA_MICRO_HIPRTC=1 (run without it for NVRTC)");
        return;
    }
    const mora_shape s = MakeShape(kShapes[0]);
    const std::string source = SpecSource(mora_spec_default(&s, MORA_F32, kind, dialect));
    for (auto _ : state) {
        mora_compile_report report;
        const mora_status st = mora_compile_offline(dialect, arch, source.c_str(), &report);
        if (st != MORA_OK) {
            state.SkipWithError(mora_last_error());
            break;
        }
        benchmark::DoNotOptimize(report.binary_bytes);
        mora_compile_report_free(&report);
    }
    state.SetLabel(std::string(mora_dialect_name(dialect)) + " " + arch + " " + mora_kind_name(kind));
}
BENCHMARK(BM_CompileOffline)
    ->ArgsProduct({{MORA_DIALECT_CUDA, MORA_DIALECT_HIP}, {0, 1, 2, 3}})
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);

// ---- the kernels cache ----

// A private folder for the cache benchmarks, removed at exit.
struct TempFolder {
    std::string path;
    TempFolder() {
        char pattern[] = "/tmp/mora-micro-XXXXXX";
        const char *made = mkdtemp(pattern);
        if (made) path = made;
    }
    ~TempFolder() {
        if (!path.empty()) std::system(("rm -rf '" + path + "'").c_str());
    }
};

std::string TempDir() {
    static TempFolder folder;
    return folder.path.empty() ? "/tmp" : folder.path;
}

void BM_CacheRecordLoad(benchmark::State &state) {
    mora_cache *cache = nullptr;
    if (mora_cache_open((TempDir() + "/cache").c_str(), &cache) != MORA_OK) {
        state.SkipWithError(mora_last_error());
        return;
    }
    mora_tuning_record record;
    std::memset(&record, 0, sizeof record);
    std::snprintf(record.kind, sizeof record.kind, "fwd");
    const char *names[] = {"FWD_TM", "FWD_TN", "FWD_TK", "FWD_WM", "FWD_WN"};
    const int values[] = {64, 32, 16, 4, 2};
    record.param_count = 5;
    for (int i = 0; i < 5; ++i) {
        std::snprintf(record.param_names[i], sizeof record.param_names[i], "%s", names[i]);
        record.param_values[i] = values[i];
    }
    record.time_ms = 1.5, record.default_ms = 2.0, record.tokens = 256;
    const char *key = "v1|backend=opencl|device=micro|kind=fwd|op=rope|d_in=4096|d_out=4096|rhat=256|dtype=f32|tokens<=256";
    if (mora_cache_record_store(cache, key, &record) != MORA_OK) {
        state.SkipWithError(mora_last_error());
        mora_cache_close(cache);
        return;
    }
    for (auto _ : state) {
        mora_tuning_record loaded;
        if (mora_cache_record_load(cache, key, &loaded) != MORA_OK) {
            state.SkipWithError(mora_last_error());
            break;
        }
        benchmark::DoNotOptimize(loaded.param_values[0]);
    }
    mora_cache_close(cache);
}
BENCHMARK(BM_CacheRecordLoad)->Unit(benchmark::kMicrosecond);

void BM_SelectParams(benchmark::State &state) {
    mora_context *ctx = OpenclContext();
    mora_context *cpu = nullptr;
    if (!ctx) {
        if (mora_context_create("cpu", 0, &cpu) != MORA_OK) {
            state.SkipWithError(mora_last_error());
            return;
        }
        ctx = cpu;
    }
    const mora_shape s = MakeShape(kShapes[0]);
    const char *source = "";
    for (auto _ : state) {
        mora_kernel_spec spec = mora_spec_default(&s, MORA_F32, MORA_KIND_FWD, MORA_DIALECT_OPENCL);
        source = mora_select_params(ctx, &spec, 256);
        benchmark::DoNotOptimize(spec.params[0]);
    }
    state.SetLabel(std::string("answered by: ") + source);
    if (cpu) mora_context_destroy(cpu);
}
BENCHMARK(BM_SelectParams)->Unit(benchmark::kMicrosecond);

// ---- launch overhead ----

void BM_LaunchTinyForward(benchmark::State &state) {
    const char *backend = state.range(0) == 0 ? "opencl" : "cpu";
    if (state.range(0) == 0 && HiprtcRun()) {
        state.SkipWithError("skipped under MORA_MICRO_HIPRTC=1");
        return;
    }
    mora_context *ctx = nullptr;
    if (mora_context_create(backend, 0, &ctx) != MORA_OK) {
        state.SkipWithError(mora_last_error());
        return;
    }
    mora_shape s = {64, 64, 8, MORA_OP_ROPE};
    mora_plan *layer = nullptr;
    void *x = nullptr, *y = nullptr, *M = nullptr;
    std::vector<float> host(64, 0.5f);
    mora_status st = mora_plan_create(ctx, &s, MORA_F32, 1, nullptr, &layer);
    if (st == MORA_OK) st = mora_buffer_alloc(ctx, 64 * sizeof(float), &M);
    if (st == MORA_OK) st = mora_buffer_write(ctx, M, 0, host.data(), 64 * sizeof(float));
    if (st == MORA_OK) st = mora_buffer_alloc(ctx, 64 * sizeof(float), &x);
    if (st == MORA_OK) st = mora_buffer_alloc(ctx, 64 * sizeof(float), &y);
    if (st == MORA_OK) st = mora_buffer_write(ctx, x, 0, host.data(), 64 * sizeof(float));
    if (st == MORA_OK) st = mora_buffer_write(ctx, y, 0, host.data(), 64 * sizeof(float));
    if (st == MORA_OK) st = mora_forward(layer, M, x, 64, y, 64, 1, 1.0f);
    if (st == MORA_OK) st = mora_synchronize(ctx);
    if (st != MORA_OK) state.SkipWithError(mora_last_error());
    for (auto _ : state) {
        if (st != MORA_OK) break;
        if (mora_forward(layer, M, x, 64, y, 64, 1, 1.0f) != MORA_OK || mora_synchronize(ctx) != MORA_OK) {
            state.SkipWithError(mora_last_error());
            break;
        }
    }
    state.SetLabel(std::string(backend) + ": forward of 64 -> 64, r^ = 8, n = 1, plus synchronize");
    if (x) mora_buffer_free(ctx, x);
    if (y) mora_buffer_free(ctx, y);
    if (M) mora_buffer_free(ctx, M);
    mora_plan_destroy(layer);
    mora_context_destroy(ctx);
}
BENCHMARK(BM_LaunchTinyForward)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

} // namespace

BENCHMARK_MAIN();
