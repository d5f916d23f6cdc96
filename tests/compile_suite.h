/* Shared harness of test_compile_cuda.c and test_compile_hip.c: every operator × kernel kind ×
 * dtype is generated for one dialect with default parameters and compiled offline (no GPU) for
 * named targets; the compiler's resource report must name every entry point of the kind and show
 * no spills. Every GEMM kind is also compiled for f16 and bf16 with <P>_MMA = 1 (the tensor-core /
 * matrix-core product, at the dialect's mma_tile parameters): no spills nor stack, and the tensor-core
 * instructions present (CUDA: mma.sync m16n8k16 of the dtype in the PTX; HIP: MFMA words in the
 * code object). Every source states MORA_MAX_THREADS. Prints one table row per (target, operator,
 * shape) with the registers of every entry point for f32/f16/bf16 and one for the MMA variants
 * (f16/bf16), and the compile times. */
#ifndef MORA_TESTS_COMPILE_SUITE_H
#define MORA_TESTS_COMPILE_SUITE_H

#include <pthread.h>
#include <time.h>

#include "check.h"
#include "kernels.h"
#include "offline_compile.h"

typedef struct suite_target {
    const char *arch;
    int required; /* 0: a target the installed compiler does not know is skipped with its reason */
} suite_target;

typedef struct suite_config {
    mora_dialect dialect;
    const suite_target *targets;
    int target_count;
    int registers_required; /* 1: every entry must report registers (CUDA); 0: check spills where reported */
    int mma_tile[5];        /* TM TN TK WM WN of the MMA variants compiled */
} suite_config;

/* Shapes compiled for every operator (those an operator's constraint rejects are left out). */
static const struct {
    int64_t d_in, d_out, rhat;
} suite_shapes[] = {{4096, 4096, 256}, {50, 37, 8}};
#define SUITE_SHAPE_COUNT (sizeof suite_shapes / sizeof suite_shapes[0])

static double suite_now(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Index of entry `name` in a report, or -1. */
static int suite_find_entry(const mora_compile_report *r, const char *name) {
    for (int i = 0; i < r->entry_count; ++i)
        if (strcmp(r->entries[i].name, name) == 0) return i;
    return -1;
}

/* A trivial kernel in both CUDA and HIP spelling (no headers needed). */
static const char suite_trivial_source[] = "extern \"C\" __global__ void mora_probe(float *x) { x[threadIdx.x] *= 2.0f; }\n";
static const char suite_broken_source[] =
    "extern \"C\" __global__ void mora_broken(float *x) { x[threadIdx.x] = undeclared_name * 2.0f; }\n";

/* Error paths: a compile error is MORA_E_COMPILE with the log; malformed arguments are refused. */
static void suite_error_paths(const suite_config *cfg) {
    const char *arch = cfg->targets[0].arch;
    mora_compile_report r;
    CHECK_STATUS(mora_compile_offline(cfg->dialect, arch, suite_broken_source, &r), MORA_E_COMPILE);
    const char *why = mora_last_error();
    CHECK(strstr(why, "error") != NULL);
    CHECK(strstr(why, "undeclared_name") != NULL);
    CHECK(r.log == NULL && r.entry_count == 0); /* nothing to free after a failure */
    printf("broken source -> %s: %.160s...\n", mora_status_name(MORA_E_COMPILE), why);
    CHECK_STATUS(mora_compile_offline(cfg->dialect, NULL, suite_trivial_source, &r), MORA_E_NULL);
    CHECK_STATUS(mora_compile_offline(cfg->dialect, arch, NULL, &r), MORA_E_NULL);
    CHECK_STATUS(mora_compile_offline(cfg->dialect, arch, suite_trivial_source, NULL), MORA_E_NULL);
    CHECK_STATUS(mora_compile_offline(cfg->dialect, cfg->dialect == MORA_DIALECT_CUDA ? "gfx90a" : "sm_90",
                                      suite_trivial_source, &r),
                 MORA_E_ARG);
    CHECK_STATUS(mora_compile_offline(cfg->dialect, "sm_90; rm -rf /", suite_trivial_source, &r), MORA_E_ARG);
    CHECK_STATUS(mora_compile_offline(MORA_DIALECT_OPENCL, arch, suite_trivial_source, &r), MORA_E_UNSUPPORTED);
    CHECK_STATUS(mora_compile_offline((mora_dialect)7, arch, suite_trivial_source, &r), MORA_E_ARG);
}

/* Several threads compiling at once (the tuner does): every compile succeeds and the process
 * survives (hiprtc 5.2 corrupts its heap without the library's lock). */
typedef struct suite_thread {
    const suite_config *cfg;
    int index, failures;
    char why[256];
} suite_thread;

static void *suite_thread_main(void *arg) {
    suite_thread *t = arg;
    for (int i = 0; i < 4; ++i) {
        const mora_shape shape = {50, 37, 8, (mora_op)((t->index + i) % MORA_OP_COUNT)};
        const mora_kernel_spec spec =
            mora_spec_default(&shape, (mora_dtype)(i % MORA_DTYPE_COUNT), (mora_kind)(i % MORA_KIND_COUNT), t->cfg->dialect);
        char *source = NULL;
        mora_compile_report r;
        mora_status st = mora_codegen(&spec, &source);
        if (st == MORA_OK) st = mora_compile_offline(t->cfg->dialect, t->cfg->targets[0].arch, source, &r);
        free(source);
        if (st == MORA_OK) {
            mora_compile_report_free(&r);
        } else {
            ++t->failures;
            snprintf(t->why, sizeof t->why, "%s", mora_last_error());
        }
    }
    return NULL;
}

static void suite_concurrency(const suite_config *cfg) {
    enum { THREADS = 4 };
    pthread_t threads[THREADS];
    suite_thread state[THREADS];
    const double t0 = suite_now();
    for (int i = 0; i < THREADS; ++i) {
        state[i] = (suite_thread){cfg, i, 0, ""};
        REQUIRE_OK(pthread_create(&threads[i], NULL, suite_thread_main, &state[i]) == 0 ? MORA_OK : MORA_E_ARG);
    }
    for (int i = 0; i < THREADS; ++i) {
        pthread_join(threads[i], NULL);
        CHECK_EQ_INT(state[i].failures, 0);
        if (state[i].failures) printf("thread %d: %s\n", i, state[i].why);
    }
    printf("%d threads x 4 compiles for %s: %.1f s\n", THREADS, cfg->targets[0].arch, suite_now() - t0);
}

/* Compiles one spec for `arch` and checks its report: every entry point present, registers (where
 * the dialect must report them), no spills, and for an MMA spec the tensor-core instructions. Writes
 * the registers of entry e into cells[e] ("?" when missing) and sets spilled[e]. */
static void suite_compile_spec(const suite_config *cfg, const char *arch, const mora_kernel_spec *spec, double *seconds,
                               double *slowest, char cells[MORA_MAX_ENTRIES][8], int spilled[MORA_MAX_ENTRIES]) {
    const mora_kind_decl *decl = mora_spec_decl(spec);
    const int mma = mora_spec_mma(spec);
    char what[192];
    snprintf(what, sizeof what, "%s %s %lldx%lld r%lld %s %s%s", arch, mora_op_name(spec->shape.op),
             (long long)spec->shape.d_in, (long long)spec->shape.d_out, (long long)spec->shape.rhat, decl->name,
             mora_dtype_name(spec->dtype), mma ? " MMA" : "");
    char *source = NULL;
    REQUIRE_OK(mora_codegen(spec, &source));
    /* the largest work-group is stated (HIP's __launch_bounds__: no spill at the unbounded cap) */
    char bound[64];
    size_t largest = 0;
    for (int e = 0; e < decl->entry_count; ++e)
        if (mora_spec_threads(spec, e) > largest) largest = mora_spec_threads(spec, e);
    snprintf(bound, sizeof bound, "#define MORA_MAX_THREADS %zu\n", largest);
    CHECK(strstr(source, bound) != NULL);
    mora_compile_report r;
    const double t0 = suite_now();
    const mora_status st = mora_compile_offline(cfg->dialect, arch, source, &r);
    const double dt_s = suite_now() - t0;
    free(source);
    *seconds += dt_s;
    if (dt_s > *slowest) *slowest = dt_s;
    ++check_count_;
    if (st != MORA_OK) {
        CHECK_FAIL_("%s: %s (%s)", what, mora_status_name(st), mora_last_error());
        return;
    }
    CHECK(r.binary_bytes > 0);
    CHECK(strcmp(r.target, arch) == 0);
    CHECK(r.compiler[0] != '\0');
    for (int e = 0; e < decl->entry_count; ++e) {
        const char *entry = decl->entries[e].name;
        const int i = suite_find_entry(&r, entry);
        ++check_count_;
        if (i < 0) {
            CHECK_FAIL_("%s: entry %s missing from the report; log:\n%s", what, entry, r.log ? r.log : "(none)");
            snprintf(cells[e], 8, "?");
            continue;
        }
        const int regs = r.entries[i].registers;
        snprintf(cells[e], 8, "%d", regs);
        if (cfg->registers_required) CHECK(regs > 0);
        if (regs < 0) continue; /* not reported: nothing more to check */
        ++check_count_;
        if (r.entries[i].spill_store_bytes != 0 || r.entries[i].spill_load_bytes != 0) {
            spilled[e] = 1;
            CHECK_FAIL_("%s: %s spills (%d bytes stored, %d loaded); log:\n%s", what, entry,
                        r.entries[i].spill_store_bytes, r.entries[i].spill_load_bytes, r.log ? r.log : "(none)");
        }
        /* the MMA variant keeps its fragments and accumulators in registers: no stack / scratch */
        if (mma && e == 0 && r.entries[i].stack_bytes > 0)
            CHECK_FAIL_("%s: %s uses %d bytes of stack / scratch per work-item; log:\n%s", what, entry,
                        r.entries[i].stack_bytes, r.log ? r.log : "(none)");
        if (cfg->dialect == MORA_DIALECT_CUDA) {
            char entry_line[96];
            snprintf(entry_line, sizeof entry_line, ".entry %s(", entry);
            CHECK(r.ptx != NULL && strstr(r.ptx, entry_line) != NULL);
        }
    }
    if (mma && cfg->dialect == MORA_DIALECT_CUDA) {
        const char *const instruction = spec->dtype == MORA_F16 ? "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"
                                                                : "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32";
        ++check_count_;
        if (r.ptx == NULL || strstr(r.ptx, instruction) == NULL)
            CHECK_FAIL_("%s: the PTX has no %s", what, instruction);
        CHECK(r.matrix_instructions > 0);
    } else if (mma) {
        ++check_count_;
        if (r.matrix_instructions == 0) CHECK_FAIL_("%s: no MFMA instruction in the code object", what);
        if (r.matrix_instructions < 0) printf("%s: the code object's text was not found: MFMA use not checked\n", what);
    } else {
        /* the scalar product issues no tensor-core instruction */
        CHECK(r.matrix_instructions <= 0);
    }
    mora_compile_report_free(&r);
}

/* Compiles every op × shape × kind × dtype (and the MMA variants) for one target; returns the number
 * of compiles. */
static int suite_run_target(const suite_config *cfg, const char *arch, double *seconds, double *slowest) {
    static const char *const cell_names[] = {"fwd", "dx_gemm", "dx_gather", "dm", "dm_reduce", "merge"};
    printf("\n%-8s %-17s %-17s %-4s", "target", "op", "shape", "");
    for (size_t i = 0; i < sizeof cell_names / sizeof *cell_names; ++i) printf(" %-11s", cell_names[i]);
    printf("   (registers f32/f16/bf16, MMA f16/bf16 at TM TN TK WM WN = %d %d %d %d %d; * = spills)\n",
           cfg->mma_tile[0], cfg->mma_tile[1], cfg->mma_tile[2], cfg->mma_tile[3], cfg->mma_tile[4]);
    int compiles = 0;
    for (int op = 0; op < MORA_OP_COUNT; ++op) {
        for (size_t sh = 0; sh < SUITE_SHAPE_COUNT; ++sh) {
            const mora_shape shape = {suite_shapes[sh].d_in, suite_shapes[sh].d_out, suite_shapes[sh].rhat, (mora_op)op};
            if (mora_shape_check(&shape) != MORA_OK) continue;
            char cells[6][3][8], mma_cells[6][2][8];
            int spilled[6] = {0}, mma_spilled[6] = {0};
            memset(cells, 0, sizeof cells);
            memset(mma_cells, 0, sizeof mma_cells);
            for (int kind = 0; kind < MORA_KIND_COUNT; ++kind) {
                const mora_kind_decl *decl = mora_kind_decl_get((mora_kind)kind, cfg->dialect);
                const int cell0 = kind == 0 ? 0 : kind == 1 ? 1 : kind == 2 ? 3 : 5;
                for (int dt = 0; dt < MORA_DTYPE_COUNT; ++dt) {
                    const mora_kernel_spec spec = mora_spec_default(&shape, (mora_dtype)dt, (mora_kind)kind, cfg->dialect);
                    char entry_cells[MORA_MAX_ENTRIES][8] = {{0}};
                    int entry_spilled[MORA_MAX_ENTRIES] = {0};
                    suite_compile_spec(cfg, arch, &spec, seconds, slowest, entry_cells, entry_spilled);
                    ++compiles;
                    for (int e = 0; e < decl->entry_count; ++e) {
                        memcpy(cells[cell0 + e][dt], entry_cells[e], 8);
                        spilled[cell0 + e] |= entry_spilled[e];
                    }
                    if (decl->entries[0].threads.rule != MORA_SIZE_GEMM_TILE || dt == MORA_F32) continue;
                    mora_kernel_spec mma = spec;
                    static const char *const tile_roles[5] = {"TM", "TN", "TK", "WM", "WN"};
                    for (int p = 0; p < 5; ++p) {
                        char name[32];
                        snprintf(name, sizeof name, "%s_%s", decl->prefix, tile_roles[p]);
                        REQUIRE_OK(mora_spec_set_param(&mma, name, cfg->mma_tile[p]));
                    }
                    char mma_name[32];
                    snprintf(mma_name, sizeof mma_name, "%s_MMA", decl->prefix);
                    REQUIRE_OK(mora_spec_set_param(&mma, mma_name, 1));
                    REQUIRE_OK(mora_spec_check(&mma, 0, 0));
                    memset(entry_cells, 0, sizeof entry_cells);
                    memset(entry_spilled, 0, sizeof entry_spilled);
                    suite_compile_spec(cfg, arch, &mma, seconds, slowest, entry_cells, entry_spilled);
                    ++compiles;
                    for (int e = 0; e < decl->entry_count; ++e) {
                        memcpy(mma_cells[cell0 + e][dt == MORA_F16 ? 0 : 1], entry_cells[e], 8);
                        mma_spilled[cell0 + e] |= entry_spilled[e];
                    }
                }
            }
            char shape_text[32];
            snprintf(shape_text, sizeof shape_text, "%lldx%lld r%lld", (long long)shape.d_in, (long long)shape.d_out,
                     (long long)shape.rhat);
            printf("%-8s %-17s %-17s %-4s", arch, mora_op_name(shape.op), shape_text, "");
            for (int c = 0; c < 6; ++c) {
                char cell[32];
                snprintf(cell, sizeof cell, "%.7s/%.7s/%.7s%s", cells[c][0], cells[c][1], cells[c][2], spilled[c] ? "*" : "");
                printf(" %-11s", cell);
            }
            printf("\n%-8s %-17s %-17s %-4s", arch, mora_op_name(shape.op), shape_text, "MMA");
            for (int c = 0; c < 6; ++c) {
                char cell[32];
                if (mma_cells[c][0][0] || mma_cells[c][1][0])
                    snprintf(cell, sizeof cell, "%.7s/%.7s%s", mma_cells[c][0], mma_cells[c][1], mma_spilled[c] ? "*" : "");
                else
                    snprintf(cell, sizeof cell, "-");
                printf(" %-11s", cell);
            }
            printf("\n");
        }
    }
    return compiles;
}

/* The optimizer's kernels (templates/adamw.kern) for one target: every entry point, no spills. */
static void suite_compile_adamw(const suite_config *cfg, const char *arch) {
    char *source = NULL;
    const mora_kernel_spec adamw = mora_spec_adamw(cfg->dialect);
    REQUIRE_OK(mora_codegen(&adamw, &source));
    mora_compile_report r;
    const mora_status st = mora_compile_offline(cfg->dialect, arch, source, &r);
    free(source);
    ++check_count_;
    if (st != MORA_OK) {
        CHECK_FAIL_("%s adamw: %s (%s)", arch, mora_status_name(st), mora_last_error());
        return;
    }
    const mora_kind_decl *decl = mora_spec_decl(&adamw);
    const char *entries[MORA_MAX_ENTRIES];
    for (int e = 0; e < decl->entry_count; ++e) entries[e] = decl->entries[e].name;
    for (int e = 0; e < decl->entry_count; ++e) {
        const int i = suite_find_entry(&r, entries[e]);
        ++check_count_;
        if (i < 0) {
            CHECK_FAIL_("%s adamw: entry %s missing from the report", arch, entries[e]);
            continue;
        }
        if (cfg->registers_required) CHECK(r.entries[i].registers > 0);
        CHECK(r.entries[i].spill_store_bytes == 0 && r.entries[i].spill_load_bytes == 0);
        printf("%s adamw %-22s %d registers\n", arch, entries[e], r.entries[i].registers);
    }
    mora_compile_report_free(&r);
}

/* Runs the suite; exits 77 when the dialect's compiler is absent. */
static int suite_main(const suite_config *cfg) {
    mora_compile_report probe;
    mora_status st = mora_compile_offline(cfg->dialect, cfg->targets[0].arch, suite_trivial_source, &probe);
    if (st == MORA_E_NO_BACKEND) SKIP("%s", mora_last_error());
    if (st == MORA_OK) {
        printf("compiler: %s; probe for %s: %zu bytes\n", probe.compiler, probe.target, probe.binary_bytes);
        mora_compile_report_free(&probe);
    }
    suite_error_paths(cfg);
    suite_concurrency(cfg);
    int compiled_targets = 0;
    for (int t = 0; t < cfg->target_count; ++t) {
        const suite_target *target = &cfg->targets[t];
        st = mora_compile_offline(cfg->dialect, target->arch, suite_trivial_source, &probe);
        if (st == MORA_E_UNSUPPORTED && !target->required) {
            printf("\nSKIPPED target %s: %s\n", target->arch, mora_last_error());
            continue;
        }
        ++check_count_;
        if (st != MORA_OK) {
            CHECK_FAIL_("target %s: %s (%s)", target->arch, mora_status_name(st), mora_last_error());
            continue;
        }
        mora_compile_report_free(&probe);
        double seconds = 0.0, slowest = 0.0;
        const int compiles = suite_run_target(cfg, target->arch, &seconds, &slowest);
        suite_compile_adamw(cfg, target->arch);
        printf("%s: %d compiles in %.1f s (mean %.3f s, slowest %.3f s)\n", target->arch, compiles, seconds,
               compiles ? seconds / compiles : 0.0, slowest);
        ++compiled_targets;
    }
    CHECK(compiled_targets > 0);
    return check_report();
}

#endif
