/* Internal: compiling generated CUDA / HIP source for a named target without a GPU (NVRTC and
 * hiprtc need none), and reading the compiler's resource report. Used by `mora-gen --check`, the
 * CI compile suites and the tuner's pruning. Both compilers are dlopen()ed. */
#ifndef MORA_RUNTIME_OFFLINE_COMPILE_H
#define MORA_RUNTIME_OFFLINE_COMPILE_H

#include <stddef.h>

#include "backend.h" /* mora_dialect */

/* Kernels a report records (a generated source has at most two entry points). */
#define MORA_OFFLINE_MAX_ENTRIES 4

typedef struct mora_compile_report {
    char target[32];      /* "sm_90", "gfx942" */
    char compiler[128];   /* "NVRTC 13.0", "hiprtc 5.2" */
    int entry_count;      /* kernels found in the report */
    struct {
        char name[64];       /* entry point, e.g. "mora_fwd" */
        int registers;       /* per thread (-1: not reported) */
        int spill_store_bytes;
        int spill_load_bytes;
        int shared_bytes;    /* static shared / LDS per block */
        int stack_bytes;     /* per-thread stack frame (-1: not reported) */
    } entries[MORA_OFFLINE_MAX_ENTRIES];
    size_t binary_bytes;  /* size of the CUBIN / code object */
    int matrix_instructions; /* tensor-/matrix-core instructions: CUDA, mma.sync in the PTX; HIP, MFMA
                                (VOP3P-MAI v_mfma_*) words in the code object's text; -1: not examined */
    char *log;            /* full compiler log (ptxas -v output for CUDA), malloc'd; may be NULL */
    char *ptx;            /* CUDA only: the PTX, malloc'd (for checking mma.sync); NULL otherwise */
} mora_compile_report;

/* Compiles `source` for `arch` ("sm_80", "sm_90", "gfx90a", "gfx942") with the dialect's runtime
 * compiler. On success fills *report (free with mora_compile_report_free). A compile error is
 * MORA_E_COMPILE with the log in mora_last_error(); no compiler installed is MORA_E_NO_BACKEND. */
mora_status mora_compile_offline(mora_dialect dialect, const char *arch, const char *source,
                                 mora_compile_report *report);
void mora_compile_report_free(mora_compile_report *report);

#endif
