/* test_compile_hip — the generated HIP code of every operator × kernel kind × dtype compiles with
 * hiprtc for gfx90a and gfx942 (no GPU needed), on a large (4096 -> 4096, r̂ = 256) and a small odd
 * (50 -> 37, r̂ = 8) shape, with default parameters: every entry point appears in the code object's
 * metadata, without spilled registers (every source states its launch bound, MORA_MAX_THREADS, so
 * no spill is excused); every GEMM kind's f16/bf16 MMA variant too, with MFMA instructions in the
 * code object. gfx90a is required; a target the installed ROCm does not know (gfx942 needs
 * ROCm >= 5.7) is reported as skipped with the compiler's reason. A broken source is MORA_E_COMPILE
 * with the log. Exits 77 when hiprtc is absent (or the build has no HIP). */
#include "compile_suite.h"

int main(void) {
    static const suite_target targets[] = {{"gfx90a", 1}, {"gfx942", 0}};
    /* MMA variants: 2 wavefronts of 64 lanes, each a 32 x 16 sub-tile (two 16x16x16 MFMA fragments) */
    const suite_config cfg = {MORA_DIALECT_HIP, targets, 2, 0, {32, 32, 16, 2, 1}};
    return suite_main(&cfg);
}
