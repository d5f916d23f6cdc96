/* The GEMM providers of the host kernels (see cpu_gemm.h). oneDNN and BLIS are dlopen()ed with
 * RTLD_LOCAL, so BLIS's cblas_sgemm never shadows OpenBLAS's, and a machine without them runs with
 * OpenBLAS alone. Loading happens once per process (pthread_once) and the libraries stay loaded. */
#define _GNU_SOURCE /* RTLD_LOCAL, cpuid via <cpuid.h> */
#include "cpu_gemm.h"

#include <cblas.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "error.h"

/* OpenBLAS's own queries (declared by its cblas.h on Debian, not by every cblas.h). */
char *openblas_get_corename(void);
char *openblas_get_config(void);

typedef int (*dnnl_sgemm_fn)(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                             int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
typedef struct dnnl_version_s {
    int major, minor, patch;
    const char *hash;
    unsigned cpu_runtime, gpu_runtime;
} dnnl_version_s;
typedef const dnnl_version_s *(*dnnl_version_fn)(void);
typedef int (*dnnl_isa_fn)(void);
typedef void (*omp_set_num_threads_fn)(int threads);
typedef int (*omp_get_max_threads_fn)(void);
typedef void (*cblas_sgemm_fn)(int order, int transa, int transb, int m, int n, int k, float alpha, const float *A,
                               int lda, const float *B, int ldb, float beta, float *C, int ldc);
typedef const char *(*blis_version_fn)(void);
typedef const char *(*blis_arch_string_fn)(int id);
typedef int (*blis_arch_query_fn)(void);

static struct {
    pthread_once_t once;
    dnnl_sgemm_fn dnnl_sgemm;
    /* the OpenMP runtime oneDNN was built on (Debian: libgomp), whose team size is per calling
     * thread: set to 1 around each dnnl_sgemm, so the call runs on the worker that made it */
    omp_set_num_threads_fn dnnl_omp_set;
    omp_get_max_threads_fn dnnl_omp_get;
    cblas_sgemm_fn blis_sgemm;
    char why[MORA_GEMM_PROVIDER_COUNT][192];
    char identity[512];
    mora_gemm_fn replaced[MORA_GEMM_PROVIDER_COUNT]; /* tests' planted providers */
} g = {.once = PTHREAD_ONCE_INIT};

static const char *const names[MORA_GEMM_PROVIDER_COUNT] = {"openblas", "onednn", "blis"};

/* oneDNN's ISA names (dnnl_cpu_isa_t values of 2.x). */
static const char *dnnl_isa_name(int isa) {
    switch (isa) {
    case 0x1: return "sse41";
    case 0x3: return "avx";
    case 0x7: return "avx2";
    case 0x407: return "avx2_vnni";
    case 0x27: return "avx512_core";
    case 0x67: return "avx512_core_vnni";
    case 0xe7: return "avx512_core_bf16";
    case 0x3e7: return "avx512_core_amx";
    default: return "isa unknown";
    }
}

/* The CPU's vector extensions as OpenBLAS's kernel sets name them: AVX-512 and AVX2 (0 when unknown). */
static int cpu_has(const char *what) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (strcmp(what, "avx512f") == 0) return (b >> 16) & 1;
    if (strcmp(what, "avx2") == 0) return (b >> 5) & 1;
#else
    (void)what;
#endif
    return 0;
}

/* OpenBLAS names its kernel sets after CPU models; a model it does not know falls back to an old
 * core (Debian's 0.3.21 runs Prescott's SSE3 kernels on some AVX-512 CPUs): say so once, with the
 * remedy, when the CPU has vector units the chosen core does not use. */
static void check_openblas_core(const char *core) {
    static const char *const avx512_cores[] = {"SkylakeX", "Cooperlake", "SapphireRapids", "Zen"};
    static const char *const avx2_cores[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", "Skylake"};
    int uses = 0;
    const int avx512 = cpu_has("avx512f"), avx2 = cpu_has("avx2");
    const char *const *known = avx512 ? avx512_cores : avx2_cores;
    const int count = avx512 ? 4 : 6;
    if (!avx512 && !avx2) return;
    for (int i = 0; i < count; ++i) uses |= strstr(core, known[i]) != NULL;
    if (!uses)
        mora_warn_once("openblas-core",
                       "OpenBLAS runs its %s kernels on a CPU with %s: it does not know this CPU model, and its GEMMs "
                       "run several times below the CPU's peak. libmora tunes oneDNN (libdnnl2) and BLIS (libblis4) "
                       "against it where they are installed; OPENBLAS_CORETYPE=%s makes OpenBLAS itself use them",
                       core, avx512 ? "AVX-512" : "AVX2", avx512 ? "SkylakeX" : "Haswell");
}

/* MORA_GEMM_PROVIDERS (e.g. "openblas" or "openblas,blis"): the optional providers allowed to load;
 * unset: all. The sanitizer runs use it: LeakSanitizer's tracer crashes in processes where oneDNN's
 * and BLIS's OpenMP teams run (scripts/sanitize.sh). */
static int allowed(mora_gemm_provider p, char *why, size_t size) {
    const char *list = getenv("MORA_GEMM_PROVIDERS");
    if (!list) return 1;
    const size_t len = strlen(names[p]);
    for (const char *at = strstr(list, names[p]); at; at = strstr(at + 1, names[p]))
        if ((at == list || at[-1] == ',') && (at[len] == '\0' || at[len] == ',')) return 1;
    snprintf(why, size, "left out by MORA_GEMM_PROVIDERS=%s", list);
    return 0;
}

/* The first of a provider's library names that loads, or NULL with the reason in g.why[p]. */
static void *open_provider(mora_gemm_provider p, const char *const *names_tried, int count) {
    if (!allowed(p, g.why[p], sizeof g.why[p])) return NULL;
    for (int i = 0; i < count; ++i) {
        void *h = dlopen(names_tried[i], RTLD_NOW | RTLD_LOCAL);
        if (h) return h;
        if (i == 0) snprintf(g.why[p], sizeof g.why[p], "%s", dlerror());
    }
    return NULL;
}

static void load(void) {
    char part[160];
    const char *core = openblas_get_corename();
    snprintf(g.identity, sizeof g.identity, "OpenBLAS (%s, %d threads)", core ? core : "core unknown",
             openblas_get_num_threads());
    if (core) check_openblas_core(core);

    static const char *const dnnl_names[] = {"libdnnl.so.2", "libdnnl.so.3", "libdnnl.so"};
    void *dnnl = open_provider(MORA_GEMM_ONEDNN, dnnl_names, 3);
    if (dnnl) {
        g.dnnl_sgemm = (dnnl_sgemm_fn)dlsym(dnnl, "dnnl_sgemm");
        /* a library handle's dlsym also searches its dependencies: oneDNN's OpenMP runtime */
        g.dnnl_omp_set = (omp_set_num_threads_fn)dlsym(dnnl, "omp_set_num_threads");
        g.dnnl_omp_get = (omp_get_max_threads_fn)dlsym(dnnl, "omp_get_max_threads");
        if (!g.dnnl_omp_set || !g.dnnl_omp_get) g.dnnl_omp_set = NULL, g.dnnl_omp_get = NULL;
        const dnnl_version_fn version = (dnnl_version_fn)dlsym(dnnl, "dnnl_version");
        const dnnl_isa_fn isa = (dnnl_isa_fn)dlsym(dnnl, "dnnl_get_effective_cpu_isa");
        if (!g.dnnl_sgemm || !version) {
            g.dnnl_sgemm = NULL;
            snprintf(g.why[MORA_GEMM_ONEDNN], sizeof g.why[MORA_GEMM_ONEDNN], "libdnnl has no dnnl_sgemm / dnnl_version");
        } else {
            const dnnl_version_s *v = version();
            snprintf(part, sizeof part, "; oneDNN %d.%d.%d (%s)", v->major, v->minor, v->patch,
                     isa ? dnnl_isa_name(isa()) : "isa unknown");
            strncat(g.identity, part, sizeof g.identity - strlen(g.identity) - 1);
        }
    }
    static const char *const blis_names[] = {"libblis.so.4", "libblis.so"};
    void *blis = open_provider(MORA_GEMM_BLIS, blis_names, 2);
    if (blis) {
        g.blis_sgemm = (cblas_sgemm_fn)dlsym(blis, "cblas_sgemm");
        const blis_version_fn version = (blis_version_fn)dlsym(blis, "bli_info_get_version_str");
        const blis_arch_query_fn arch = (blis_arch_query_fn)dlsym(blis, "bli_arch_query_id");
        const blis_arch_string_fn arch_name = (blis_arch_string_fn)dlsym(blis, "bli_arch_string");
        if (!g.blis_sgemm) {
            snprintf(g.why[MORA_GEMM_BLIS], sizeof g.why[MORA_GEMM_BLIS], "libblis was built without its CBLAS layer");
        } else {
            snprintf(part, sizeof part, "; BLIS %s (%s)", version ? version() : "version unknown",
                     arch && arch_name ? arch_name(arch()) : "config unknown");
            strncat(g.identity, part, sizeof g.identity - strlen(g.identity) - 1);
        }
    }
    /* what <P>_GEMM = 0 means here is part of the identity too: records tuned under another default
     * are not reused */
    snprintf(part, sizeof part, "; default %s", g.dnnl_sgemm ? "oneDNN" : "OpenBLAS");
    strncat(g.identity, part, sizeof g.identity - strlen(g.identity) - 1);
}

int mora_gemm_available(mora_gemm_provider p) {
    pthread_once(&g.once, load);
    if ((int)p >= 0 && (int)p < MORA_GEMM_PROVIDER_COUNT && g.replaced[p]) return 1;
    switch (p) {
    case MORA_GEMM_OPENBLAS: return 1;
    case MORA_GEMM_ONEDNN: return g.dnnl_sgemm != NULL;
    case MORA_GEMM_BLIS: return g.blis_sgemm != NULL;
    }
    return 0;
}

unsigned mora_gemm_available_mask(void) {
    unsigned mask = 0;
    for (int p = 0; p < MORA_GEMM_PROVIDER_COUNT; ++p)
        if (mora_gemm_available((mora_gemm_provider)p)) mask |= 1u << p;
    return mask;
}

const char *mora_gemm_name(mora_gemm_provider p) {
    return (int)p >= 0 && (int)p < MORA_GEMM_PROVIDER_COUNT ? names[p] : "unknown";
}

const char *mora_gemm_why_absent(mora_gemm_provider p) {
    if (mora_gemm_available(p) || (int)p < 0 || (int)p >= MORA_GEMM_PROVIDER_COUNT) return "";
    return g.why[p][0] ? g.why[p] : "not loaded";
}

mora_gemm_provider mora_gemm_default(void) {
    pthread_once(&g.once, load);
    return mora_gemm_available(MORA_GEMM_ONEDNN) ? MORA_GEMM_ONEDNN : MORA_GEMM_OPENBLAS;
}

const char *mora_gemm_identity(void) {
    pthread_once(&g.once, load);
    return g.identity;
}

void mora_gemm(mora_gemm_provider p, int trans_a, int trans_b, int m, int n, int k, float alpha, const float *A,
               int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (m <= 0 || n <= 0) return;
    if (g.replaced[p]) {
        g.replaced[p](trans_a, trans_b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    switch (p) {
    case MORA_GEMM_ONEDNN: {
        /* dnnl_sgemm is row-major, like the rest of libmora. One OpenMP thread: the call runs on the
         * worker that made it (libmora's workers are the parallelism, and take tiles dynamically); an
         * OpenMP team of its own would spin at its barriers against libmora's other workers, torch's
         * OpenMP threads and any other process, which made a rope forward 20x slower on a loaded
         * 2-core machine (bench/results/cpu-path-epyc-2cores.md). The caller's team size is restored. */
        const int saved = g.dnnl_omp_get ? g.dnnl_omp_get() : 1;
        if (saved != 1) g.dnnl_omp_set(1);
        g.dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
        if (saved != 1) g.dnnl_omp_set(saved);
        return;
    }
    case MORA_GEMM_BLIS:
        g.blis_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                     alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    case MORA_GEMM_OPENBLAS:
        break;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha,
                A, lda, B, ldb, beta, C, ldc);
}

void mora_gemm_replace_for_tests(mora_gemm_provider p, mora_gemm_fn gemm) {
    pthread_once(&g.once, load);
    if ((int)p >= 0 && (int)p < MORA_GEMM_PROVIDER_COUNT) g.replaced[p] = gemm;
}
