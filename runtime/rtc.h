/* Internal: the runtime compilers of the CUDA and HIP backends, NVRTC and hiprtc. Each is
 * dlopen()ed once per process and stays loaded (unloading vendor runtimes is a known source of
 * crashes at exit); backend_cuda.c, backend_hip.c and offline_compile.c share them. Also the
 * library search those backends use for their drivers. All functions are thread-safe.
 *
 * Built without MORA_HAVE_CUDA / MORA_HAVE_HIP, the matching functions return MORA_E_NO_BACKEND
 * naming the build option. */
#ifndef MORA_RUNTIME_RTC_H
#define MORA_RUNTIME_RTC_H

#include <stddef.h>

#include "mora.h"

/* dlopen()s the first library that loads: the file named by environment variable env_var (when
 * set and not empty), then each name through the loader's search path, then each name under each
 * directory (NULL or empty directories are skipped). Returns the handle, or NULL with the reason
 * (the last dlerror()) in why. `found` (may be NULL) receives the name that loaded. */
void *mora_library_open(const char *env_var, const char *const *names, int name_count, const char *const *dirs,
                        int dir_count, char *found, size_t found_size, char *why, size_t why_size);

/* What a compile produced. Free with mora_rtc_output_free. */
typedef struct mora_rtc_output {
    unsigned char *binary; /* CUBIN or AMDGPU code object; NULL for a PTX-only (compute_NN) compile */
    size_t binary_bytes;
    char *ptx; /* CUDA: the PTX text; NULL for HIP */
    char *log; /* the compiler's log ("" when it said nothing) */
} mora_rtc_output;
void mora_rtc_output_free(mora_rtc_output *out);

/* Loads NVRTC (once) and describes it: version "NVRTC 13.0" and the targets it compiles for, as
 * compute capability x 10 (75, 80, 86, ..., ascending; at most arch_capacity of them).
 * MORA_E_NO_BACKEND with the reason when NVRTC cannot be loaded. Any output may be NULL. */
mora_status mora_nvrtc_describe(char *version, size_t version_size, int *archs, int *arch_count, int arch_capacity);

/* Compiles CUDA C++ for `arch`: "sm_90" gives a CUBIN and the PTX, "compute_90" the PTX only.
 * Options: --gpu-architecture=arch --std=c++17, then the `extra` ones. MORA_E_UNSUPPORTED for a
 * target this NVRTC lacks (the sentence lists the ones it has), MORA_E_ARG for a malformed arch,
 * MORA_E_COMPILE with the compiler log in mora_last_error(). */
mora_status mora_nvrtc_compile(const char *source, const char *arch, const char *const *extra, int extra_count,
                               mora_rtc_output *out);

/* Loads hiprtc (once) and describes it, e.g. "hiprtc 5.2.21153 (comgr 2.4)". */
mora_status mora_hiprtc_describe(char *version, size_t version_size);

/* Compiles HIP C++ for `arch` ("gfx90a", or a full target id "gfx90a:sramecc+:xnack-") with
 * --offload-arch=arch -O3 -std=c++17 and the `extra` options. A target the installed code object
 * manager (comgr) does not list is refused before hiprtc is called (older hiprtc aborts the process
 * on one): MORA_E_UNSUPPORTED naming the versions and the known targets. Compile errors are
 * MORA_E_COMPILE with the log in mora_last_error(). */
mora_status mora_hiprtc_compile(const char *source, const char *arch, const char *const *extra, int extra_count,
                                mora_rtc_output *out);

#endif
