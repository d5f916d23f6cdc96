/* Internal: the GEMM providers of the host kernels — OpenBLAS (linked), oneDNN and BLIS (each
 * dlopen()ed on first use, optional) — behind one row-major sgemm, so the tuner can time them side
 * by side as parameter values of the host kinds and keep the fastest correct one.
 *
 * Threads: OpenBLAS and oneDNN (Debian's builds: OpenBLAS's pthreads, oneDNN's OpenMP) spread one
 * call over the cores themselves; BLIS runs one call on the calling thread (libmora never changes a
 * provider's process-wide settings), so it pays with the host kernels' own workers (<P>_THREADS).
 *
 * Identity: mora_gemm_identity() names every available provider, its version and the kernel set it
 * chose ("OpenBLAS 0.3.21 (Cooperlake); oneDNN 2.6.3 (avx512_core_bf16)"): the cpu backend puts it in
 * its device description, which every tuning record's key names, so a changed environment (another
 * BLAS core, a new library) is tuned again instead of reusing a stale record.
 *
 * MORA_GEMM_PROVIDERS=openblas[,onednn][,blis] keeps the providers it does not name from loading
 * (unset: all that are installed); a left-out provider is absent, with that reason. */
#ifndef MORA_RUNTIME_CPU_GEMM_H
#define MORA_RUNTIME_CPU_GEMM_H

#include "mora.h"

typedef enum mora_gemm_provider {
    MORA_GEMM_OPENBLAS = 0, /* cblas_sgemm of the OpenBLAS libmora links (always there) */
    MORA_GEMM_ONEDNN = 1,   /* dnnl_sgemm of libdnnl.so.2 (Debian: libdnnl2) */
    MORA_GEMM_BLIS = 2      /* cblas_sgemm of libblis.so.4 (Debian: libblis4) */
} mora_gemm_provider;
#define MORA_GEMM_PROVIDER_COUNT 3

/* 1 when the provider can run here (loaded once, thread-safe). */
int mora_gemm_available(mora_gemm_provider p);
/* Bit (1 << p) per available provider. */
unsigned mora_gemm_available_mask(void);
/* "openblas", "onednn", "blis". */
const char *mora_gemm_name(mora_gemm_provider p);
/* Why a provider is not available ("" when it is). */
const char *mora_gemm_why_absent(mora_gemm_provider p);
/* The provider a host kernel uses unless told otherwise (<P>_GEMM = 0, which the tuner declares first,
 * so near-ties go to it): oneDNN where it is installed, else OpenBLAS. Measured in a torch process
 * (bench/results/cpu-path-epyc-2cores.md): right after a torch op, whose OpenMP worker still spins on
 * another core, oneDNN's rope forward took 15 ms and OpenBLAS's, split statically over its threads,
 * 27 ms (11.4 ms each alone); oneDNN also does not run an old kernel set on a CPU model it does not
 * know, as OpenBLAS can (the log says so once). */
mora_gemm_provider mora_gemm_default(void);
/* Every available provider with its version and kernel set, for the device description. */
const char *mora_gemm_identity(void);

/* C[m][n] = alpha·op(A)·op(B) + beta·C, all row-major float32 (op: transposed when trans_*).
 * The provider must be available (the host kernels check when they are made). */
void mora_gemm(mora_gemm_provider p, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *A,
               int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* For tests of the tuner's correctness gate only: routes provider p's calls to gemm, which then
 * counts as installed (NULL: back to the library, or absent). Takes effect for contexts created
 * after the call; never while host kernels run. */
typedef void (*mora_gemm_fn)(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *A, int lda,
                             const float *B, int ldb, float beta, float *C, int ldc);
void mora_gemm_replace_for_tests(mora_gemm_provider p, mora_gemm_fn gemm);

#endif
