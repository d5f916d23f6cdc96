/* test_compile_cuda — the generated CUDA code of every operator × kernel kind × dtype compiles with
 * NVRTC for sm_80 and sm_90 (no GPU needed), on a large (4096 -> 4096, r̂ = 256) and a small odd
 * (50 -> 37, r̂ = 8) shape, with default parameters: every entry point appears in ptxas's report,
 * with registers and zero spill bytes; every GEMM kind's f16/bf16 MMA variant (mma.sync m16n8k16)
 * too, its PTX holding the mma.sync instructions. A broken source is MORA_E_COMPILE with the log. Prints the
 * register table and compile times. Exits 77 when NVRTC is absent (or the build has no CUDA). */
#include "compile_suite.h"

int main(void) {
    static const suite_target targets[] = {{"sm_80", 1}, {"sm_90", 1}};
    /* MMA variants: 4 warps of 32 lanes, each a 16 x 16 sub-tile (two m16n8k16 fragments) */
    const suite_config cfg = {MORA_DIALECT_CUDA, targets, 2, 1, {32, 32, 16, 1, 2}};
    return suite_main(&cfg);
}
