/* Internal: the runtime compilers of the CUDA and HIP backends, NVRTC and hiprtc. Each is
 * dlopen()ed once per process and stays loaded (unloading vendor runtimes is a known source of
 * crashes at exit); backend_cuda.c, backend_hip.c and offline_compile.c share them. Also the
 * library search and loading those backends use for their drivers (mora_library_open, _load,
 * MORA_LIBRARY_ENTRY, MORA_LIBRARY_RESOLVE). All functions are thread-safe.
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

/* What a loader keeps of its library: the file that loaded, or why none is usable. */
typedef struct mora_library_info {
    char path[512];
    char why[1024];
} mora_library_info;

/* mora_library_open for a loader: the file that loads goes to info->path; on failure returns NULL
 * with info->why set to `missing`, a printf format whose one %s is the reason ("cuda: ... could not
 * be loaded: %s (...)"). */
void *mora_library_load(mora_library_info *info, const char *env_var, const char *const *names, int name_count,
                        const char *const *dirs, int dir_count, const char *missing);

/* A member of a loader's table for entry point f: a pointer of f's own type (from the vendor's header). */
#define MORA_LIBRARY_ENTRY(f) __typeof__(&f) f;

/* In a loader whose open library is `library` (needs <dlfcn.h>, <stdio.h>): sets api.f to its entry
 * point f, found by find(library, name) under the name f has after the headers' #defines (cuMemAlloc
 * is cuMemAlloc_v2). A missing one is said in api.lib.why (api.lib: the loader's mora_library_info)
 * with the printf format `lacks` (its %s: the library's path, then the name); the library is closed
 * and the loader returns. */
#define MORA_LIBRARY_RESOLVE(api, f, find, lacks) MORA_LIBRARY_RESOLVE_(api, f, find, lacks)
#define MORA_LIBRARY_RESOLVE_(api, f, find, lacks)                                                                    \
    if (!(api.f = (__typeof__(&f))find(library, #f))) {                                                               \
        snprintf(api.lib.why, sizeof api.lib.why, lacks, api.lib.path, #f);                                           \
        dlclose(library);                                                                                             \
        return;                                                                                                       \
    }

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
