/* The runtime compilers NVRTC (CUDA) and hiprtc (HIP), dlopen()ed once per process; see rtc.h. */
#if defined(MORA_HAVE_HIP) && !defined(__HIP_PLATFORM_AMD__) && !defined(__HIP_PLATFORM_NVIDIA__)
#define __HIP_PLATFORM_AMD__ 1
#endif

#include "rtc.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MORA_HAVE_CUDA
#include <nvrtc.h>
#endif
#ifdef MORA_HAVE_HIP
#include <hip/hiprtc.h>
#endif

#include "error.h"

#define MORA_MAX_EXTRA_OPTIONS 16

/* ---- library search ------------------------------------------------------------------------ */

/* Copies text into dst, cut to fit. */
static void copy_text(char *dst, size_t size, const char *text) {
    if (!dst || size == 0) return;
    size_t n = strlen(text);
    if (n >= size) n = size - 1;
    memcpy(dst, text, n);
    dst[n] = '\0';
}

static void *open_one(const char *path, char *why, size_t why_size) {
    void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char *err = dlerror();
        copy_text(why, why_size, err ? err : path);
    }
    return library;
}

void *mora_library_open(const char *env_var, const char *const *names, int name_count, const char *const *dirs,
                        int dir_count, char *found, size_t found_size, char *why, size_t why_size) {
    char override_why[512] = "";
    char path[1024];
    void *library = NULL;
    if (why && why_size) snprintf(why, why_size, "no candidate library names");
    const char *override = env_var ? getenv(env_var) : NULL;
    if (override && *override) {
        library = open_one(override, override_why, sizeof override_why);
        if (library) copy_text(path, sizeof path, override);
    }
    /* The first name's failure is the telling one ("libcuda.so.1: cannot open shared object file"). */
    char later_why[512];
    for (int i = 0; !library && i < name_count; ++i) {
        library = i == 0 ? open_one(names[i], why, why_size) : open_one(names[i], later_why, sizeof later_why);
        if (library) copy_text(path, sizeof path, names[i]);
    }
    for (int d = 0; !library && d < dir_count; ++d) {
        if (!dirs[d] || !*dirs[d]) continue;
        for (int i = 0; !library && i < name_count; ++i) {
            const int n = snprintf(path, sizeof path, "%s/%s", dirs[d], names[i]);
            if (n < 0 || (size_t)n >= sizeof path) continue;
            /* A directory candidate that is simply absent says less than the loader's own failure. */
            char dir_why[512];
            library = open_one(path, dir_why, sizeof dir_why);
        }
    }
    if (library) {
        copy_text(found, found_size, path);
        return library;
    }
    if (override_why[0] && why && why_size) {
        char rest[512];
        copy_text(rest, sizeof rest, why);
        snprintf(why, why_size, "%s=%s: %s; %s", env_var, override, override_why, rest);
    }
    return NULL;
}

void mora_rtc_output_free(mora_rtc_output *out) {
    if (!out) return;
    free(out->binary);
    free(out->ptx);
    free(out->log);
    memset(out, 0, sizeof *out);
}

#if defined(MORA_HAVE_CUDA) || defined(MORA_HAVE_HIP)
static mora_status check_extra(const char *const *extra, int extra_count) {
    if (extra_count < 0 || extra_count > MORA_MAX_EXTRA_OPTIONS)
        return mora_fail(MORA_E_ARG, "extra_count=%d: must be 0..%d", extra_count, MORA_MAX_EXTRA_OPTIONS);
    if (extra_count > 0 && !extra) return mora_fail(MORA_E_NULL, "extra=NULL with extra_count=%d", extra_count);
    for (int i = 0; i < extra_count; ++i)
        if (!extra[i]) return mora_fail(MORA_E_NULL, "extra[%d]=NULL: must not be NULL", i);
    return MORA_OK;
}

/* Joins a compiler's log to the current error sentence (after a headline). */
static void append_log(const char *log) {
    mora_error_append("; compiler log:\n");
    mora_error_append(log && *log ? log : "(empty)");
}
#endif

/* ---- NVRTC ---------------------------------------------------------------------------------- */
#ifdef MORA_HAVE_CUDA

#define NVRTC_FUNCTIONS(X)                                                                                     \
    X(nvrtcVersion) X(nvrtcGetNumSupportedArchs) X(nvrtcGetSupportedArchs) X(nvrtcGetErrorString)              \
    X(nvrtcCreateProgram) X(nvrtcDestroyProgram) X(nvrtcCompileProgram) X(nvrtcGetProgramLogSize)              \
    X(nvrtcGetProgramLog) X(nvrtcGetPTXSize) X(nvrtcGetPTX) X(nvrtcGetCUBINSize) X(nvrtcGetCUBIN)

#define NVRTC_MAX_ARCHS 64

typedef struct nvrtc_api {
    void *library;         /* NULL: not loadable, see why */
    char why[1024];
    char version[64];      /* "NVRTC 13.0" */
    char path[512];
    int archs[NVRTC_MAX_ARCHS];
    int arch_count;
#define NVRTC_MEMBER(f) __typeof__(&f) f;
    NVRTC_FUNCTIONS(NVRTC_MEMBER)
#undef NVRTC_MEMBER
} nvrtc_api;

static nvrtc_api nvrtc;
static pthread_once_t nvrtc_once = PTHREAD_ONCE_INIT;
/* NVRTC 12 and newer compile concurrently from several threads; older ones are serialised. */
static pthread_mutex_t nvrtc_lock = PTHREAD_MUTEX_INITIALIZER;
static int nvrtc_serialise;

static void nvrtc_load(void) {
    static const char *const names[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"};
    char cuda_path_lib[512] = "";
    const char *cuda_path = getenv("CUDA_PATH");
    if (cuda_path && *cuda_path) snprintf(cuda_path_lib, sizeof cuda_path_lib, "%s/lib64", cuda_path);
    const char *const dirs[] = {cuda_path_lib, "/usr/local/cuda/lib64"};
    char why[768];
    void *library = mora_library_open("MORA_NVRTC_LIBRARY", names, 4, dirs, 2, nvrtc.path, sizeof nvrtc.path, why,
                                      sizeof why);
    if (!library) {
        snprintf(nvrtc.why, sizeof nvrtc.why,
                 "cuda: NVRTC (libnvrtc.so.13, .so.12 or .so.11.2) could not be loaded: %s (install the CUDA "
                 "toolkit's NVRTC, e.g. the cuda-nvrtc-13-0 package, or set MORA_NVRTC_LIBRARY)",
                 why);
        return;
    }
#define NVRTC_RESOLVE(f)                                                                                   \
    nvrtc.f = (__typeof__(&f))dlsym(library, #f);                                                          \
    if (!nvrtc.f) {                                                                                        \
        snprintf(nvrtc.why, sizeof nvrtc.why, "cuda: %s lacks %s (NVRTC 11.2 or newer is needed)", nvrtc.path, #f); \
        dlclose(library);                                                                                  \
        return;                                                                                            \
    }
    NVRTC_FUNCTIONS(NVRTC_RESOLVE)
#undef NVRTC_RESOLVE
    int major = 0, minor = 0;
    nvrtc.nvrtcVersion(&major, &minor);
    nvrtc_serialise = major < 12;
    snprintf(nvrtc.version, sizeof nvrtc.version, "NVRTC %d.%d", major, minor);
    int count = 0;
    if (nvrtc.nvrtcGetNumSupportedArchs(&count) == NVRTC_SUCCESS && count > 0) {
        int *all = malloc((size_t)count * sizeof *all);
        if (all && nvrtc.nvrtcGetSupportedArchs(all) == NVRTC_SUCCESS) {
            for (int i = 0; i < count && nvrtc.arch_count < NVRTC_MAX_ARCHS; ++i) nvrtc.archs[nvrtc.arch_count++] = all[i];
        }
        free(all);
    }
    if (nvrtc.arch_count == 0) {
        snprintf(nvrtc.why, sizeof nvrtc.why, "cuda: %s (%s) reports no supported GPU architectures", nvrtc.path,
                 nvrtc.version);
        dlclose(library);
        return;
    }
    nvrtc.library = library;
}

static mora_status nvrtc_get(void) {
    pthread_once(&nvrtc_once, nvrtc_load);
    if (!nvrtc.library) return mora_fail(MORA_E_NO_BACKEND, "%s", nvrtc.why);
    return MORA_OK;
}

mora_status mora_nvrtc_describe(char *version, size_t version_size, int *archs, int *arch_count, int arch_capacity) {
    MORA_TRY(nvrtc_get());
    if (version && version_size) snprintf(version, version_size, "%s", nvrtc.version);
    if (arch_count) {
        int n = 0;
        for (int i = 0; i < nvrtc.arch_count && archs && n < arch_capacity; ++i) archs[n++] = nvrtc.archs[i];
        *arch_count = n;
    }
    return MORA_OK;
}

/* "sm_90", "sm_90a", "compute_100f": the compute capability x 10 and whether it is a real (sm_) target. */
static mora_status parse_cuda_arch(const char *arch, int *cc, int *real) {
    const char *digits = NULL;
    if (strncmp(arch, "sm_", 3) == 0) {
        digits = arch + 3;
        *real = 1;
    } else if (strncmp(arch, "compute_", 8) == 0) {
        digits = arch + 8;
        *real = 0;
    }
    int value = 0, n = 0;
    while (digits && digits[n] >= '0' && digits[n] <= '9' && n < 4) value = value * 10 + (digits[n++] - '0');
    const int suffix_ok = digits && (digits[n] == '\0' || ((digits[n] == 'a' || digits[n] == 'f') && digits[n + 1] == '\0'));
    if (!digits || n < 2 || !suffix_ok)
        return mora_fail(MORA_E_ARG, "arch=\"%s\": expected sm_NN or compute_NN (e.g. sm_90)", arch);
    *cc = value;
    return MORA_OK;
}

static char *nvrtc_log(nvrtcProgram program) {
    size_t size = 0;
    if (nvrtc.nvrtcGetProgramLogSize(program, &size) != NVRTC_SUCCESS) size = 0;
    char *log = malloc(size + 1);
    if (!log) return NULL;
    log[0] = '\0';
    if (size > 0 && nvrtc.nvrtcGetProgramLog(program, log) != NVRTC_SUCCESS) log[0] = '\0';
    log[size] = '\0';
    return log;
}

static mora_status nvrtc_compile_locked(const char *source, const char *arch, int real, const char *const *options,
                                        int option_count, mora_rtc_output *out);

mora_status mora_nvrtc_compile(const char *source, const char *arch, const char *const *extra, int extra_count,
                               mora_rtc_output *out) {
    MORA_CHECK_PTR(source);
    MORA_CHECK_PTR(arch);
    MORA_CHECK_PTR(out);
    memset(out, 0, sizeof *out);
    MORA_TRY(check_extra(extra, extra_count));
    MORA_TRY(nvrtc_get());
    int cc = 0, real = 0;
    MORA_TRY(parse_cuda_arch(arch, &cc, &real));
    int known = 0;
    for (int i = 0; i < nvrtc.arch_count; ++i) known |= nvrtc.archs[i] == cc;
    if (!known) {
        char list[512] = "";
        for (int i = 0; i < nvrtc.arch_count; ++i) {
            char one[16];
            snprintf(one, sizeof one, "%ssm_%d", i ? " " : "", nvrtc.archs[i]);
            strncat(list, one, sizeof list - strlen(list) - 1);
        }
        return mora_fail(MORA_E_UNSUPPORTED, "arch=\"%s\": %s cannot compile for it (its targets: %s)", arch,
                         nvrtc.version, list);
    }

    char arch_option[64];
    snprintf(arch_option, sizeof arch_option, "--gpu-architecture=%s", arch);
    const char *options[2 + MORA_MAX_EXTRA_OPTIONS];
    int option_count = 0;
    options[option_count++] = arch_option;
    options[option_count++] = "--std=c++17";
    for (int i = 0; i < extra_count; ++i) options[option_count++] = extra[i];

    if (nvrtc_serialise) pthread_mutex_lock(&nvrtc_lock);
    const mora_status st = nvrtc_compile_locked(source, arch, real, options, option_count, out);
    if (nvrtc_serialise) pthread_mutex_unlock(&nvrtc_lock);
    return st;
}

static mora_status nvrtc_compile_locked(const char *source, const char *arch, int real, const char *const *options,
                                        int option_count, mora_rtc_output *out) {
    nvrtcProgram program = NULL;
    nvrtcResult r = nvrtc.nvrtcCreateProgram(&program, source, "mora_kernel.cu", 0, NULL, NULL);
    if (r != NVRTC_SUCCESS)
        return mora_fail(r == NVRTC_ERROR_OUT_OF_MEMORY ? MORA_E_NO_MEMORY : MORA_E_COMPILE,
                         "cuda: nvrtcCreateProgram failed: %s", nvrtc.nvrtcGetErrorString(r));
    r = nvrtc.nvrtcCompileProgram(program, option_count, options);
    char *log = nvrtc_log(program);
    if (r != NVRTC_SUCCESS) {
        mora_fail(r == NVRTC_ERROR_INVALID_OPTION ? MORA_E_ARG : MORA_E_COMPILE, "cuda: %s could not compile for %s (%s)",
                  nvrtc.version, arch, nvrtc.nvrtcGetErrorString(r));
        append_log(log);
        free(log);
        nvrtc.nvrtcDestroyProgram(&program);
        return r == NVRTC_ERROR_INVALID_OPTION ? MORA_E_ARG : MORA_E_COMPILE;
    }
    mora_status st = log ? MORA_OK : mora_fail(MORA_E_NO_MEMORY, "cuda: out of host memory for the compiler log");
    out->log = log;
    size_t size = 0;
    if (st == MORA_OK && (r = nvrtc.nvrtcGetPTXSize(program, &size)) == NVRTC_SUCCESS) {
        out->ptx = malloc(size + 1);
        if (!out->ptx) st = mora_fail(MORA_E_NO_MEMORY, "cuda: out of host memory for %zu bytes of PTX", size);
        else if ((r = nvrtc.nvrtcGetPTX(program, out->ptx)) == NVRTC_SUCCESS) out->ptx[size] = '\0';
    }
    if (st == MORA_OK && r != NVRTC_SUCCESS)
        st = mora_fail(MORA_E_COMPILE, "cuda: reading the PTX failed: %s", nvrtc.nvrtcGetErrorString(r));
    if (st == MORA_OK && real) {
        size = 0;
        r = nvrtc.nvrtcGetCUBINSize(program, &size);
        if (r == NVRTC_SUCCESS && size > 0) {
            out->binary = malloc(size);
            if (!out->binary) st = mora_fail(MORA_E_NO_MEMORY, "cuda: out of host memory for a %zu-byte CUBIN", size);
            else if ((r = nvrtc.nvrtcGetCUBIN(program, (char *)out->binary)) == NVRTC_SUCCESS) out->binary_bytes = size;
        }
        if (st == MORA_OK && r != NVRTC_SUCCESS)
            st = mora_fail(MORA_E_COMPILE, "cuda: reading the CUBIN failed: %s", nvrtc.nvrtcGetErrorString(r));
    }
    nvrtc.nvrtcDestroyProgram(&program);
    if (st != MORA_OK) mora_rtc_output_free(out);
    return st;
}

#else /* !MORA_HAVE_CUDA */

mora_status mora_nvrtc_describe(char *version, size_t version_size, int *archs, int *arch_count, int arch_capacity) {
    (void)version, (void)version_size, (void)archs, (void)arch_count, (void)arch_capacity;
    return mora_fail(MORA_E_NO_BACKEND, "cuda: libmora was built without CUDA support (configure with -DMORA_WITH_CUDA=ON)");
}

mora_status mora_nvrtc_compile(const char *source, const char *arch, const char *const *extra, int extra_count,
                               mora_rtc_output *out) {
    (void)source, (void)arch, (void)extra, (void)extra_count;
    if (out) memset(out, 0, sizeof *out);
    return mora_nvrtc_describe(NULL, 0, NULL, NULL, 0);
}

#endif /* MORA_HAVE_CUDA */

/* ---- hiprtc --------------------------------------------------------------------------------- */
#ifdef MORA_HAVE_HIP

#define HIPRTC_FUNCTIONS(X)                                                                                    \
    X(hiprtcVersion) X(hiprtcGetErrorString) X(hiprtcCreateProgram) X(hiprtcDestroyProgram)                    \
    X(hiprtcCompileProgram) X(hiprtcGetProgramLogSize) X(hiprtcGetProgramLog) X(hiprtcGetCodeSize) X(hiprtcGetCode)

#define HIP_MAX_ISAS 160

/* The code object manager's entry points we use, declared here so its header is not needed. */
typedef int (*comgr_get_isa_count_fn)(size_t *count);
typedef int (*comgr_get_isa_name_fn)(size_t index, const char **name);
typedef void (*comgr_get_version_fn)(size_t *major, size_t *minor);

typedef struct hiprtc_api {
    void *library;
    char why[1024];
    char version[96]; /* "hiprtc 5.2.21153 (comgr 2.4)" */
    char path[512];
    char isas[HIP_MAX_ISAS][24]; /* "gfx90a", ... as comgr lists them; isa_count 0: unknown */
    int isa_count;
#define HIPRTC_MEMBER(f) __typeof__(&f) f;
    HIPRTC_FUNCTIONS(HIPRTC_MEMBER)
#undef HIPRTC_MEMBER
} hiprtc_api;

static hiprtc_api hiprtc;
static pthread_once_t hiprtc_once = PTHREAD_ONCE_INIT;
/* hiprtc (5.2 at least) corrupts its heap when two threads compile at once: compiles are serialised. */
static pthread_mutex_t hiprtc_lock = PTHREAD_MUTEX_INITIALIZER;

/* The ISA names comgr lists ("amdgcn-amd-amdhsa--gfx90a" -> "gfx90a"), and its version. */
static void comgr_load(const char *const *dirs, int dir_count, char *version, size_t version_size) {
    static const char *const names[] = {"libamd_comgr.so.3", "libamd_comgr.so.2", "libamd_comgr.so"};
    char why[512];
    void *library = mora_library_open("MORA_COMGR_LIBRARY", names, 3, dirs, dir_count, NULL, 0, why, sizeof why);
    version[0] = '\0';
    if (!library) return;
    const comgr_get_isa_count_fn get_count = (comgr_get_isa_count_fn)dlsym(library, "amd_comgr_get_isa_count");
    const comgr_get_isa_name_fn get_name = (comgr_get_isa_name_fn)dlsym(library, "amd_comgr_get_isa_name");
    const comgr_get_version_fn get_version = (comgr_get_version_fn)dlsym(library, "amd_comgr_get_version");
    if (get_version) {
        size_t major = 0, minor = 0;
        get_version(&major, &minor);
        snprintf(version, version_size, "comgr %zu.%zu", major, minor);
    }
    size_t count = 0;
    if (get_count && get_name && get_count(&count) == 0) {
        for (size_t i = 0; i < count && hiprtc.isa_count < HIP_MAX_ISAS; ++i) {
            const char *name = NULL;
            if (get_name(i, &name) != 0 || !name) continue;
            const char *gfx = strstr(name, "--");
            gfx = gfx ? gfx + 2 : name;
            const size_t length = strcspn(gfx, ":");
            if (length == 0 || length >= sizeof hiprtc.isas[0]) continue;
            memcpy(hiprtc.isas[hiprtc.isa_count], gfx, length);
            hiprtc.isas[hiprtc.isa_count++][length] = '\0';
        }
    }
    /* Stays loaded: hiprtc uses the same library. */
}

static void hiprtc_load(void) {
    static const char *const rtc_names[] = {"libhiprtc.so.7", "libhiprtc.so.6", "libhiprtc.so.5", "libhiprtc.so"};
    static const char *const hip_names[] = {"libamdhip64.so.7", "libamdhip64.so.6", "libamdhip64.so.5",
                                            "libamdhip64.so"};
    char rocm_lib[512] = "";
    const char *rocm_path = getenv("ROCM_PATH");
    if (rocm_path && *rocm_path) snprintf(rocm_lib, sizeof rocm_lib, "%s/lib", rocm_path);
    const char *const dirs[] = {rocm_lib, "/opt/rocm/lib"};
    char why[512] = "", why_hip[512] = "";
    /* ROCm >= 5.3 ships hiprtc as libhiprtc.so; ROCm <= 5.2 has it inside libamdhip64.so. */
    void *library = mora_library_open("MORA_HIPRTC_LIBRARY", rtc_names, 4, dirs, 2, hiprtc.path, sizeof hiprtc.path,
                                      why, sizeof why);
    if (library && !dlsym(library, "hiprtcCreateProgram")) {
        dlclose(library);
        library = NULL;
    }
    if (!library) {
        library = mora_library_open(NULL, hip_names, 4, dirs, 2, hiprtc.path, sizeof hiprtc.path, why_hip,
                                    sizeof why_hip);
        if (library && !dlsym(library, "hiprtcCreateProgram")) {
            copy_text(why_hip, sizeof why_hip, "libamdhip64.so has no hiprtc entry points");
            dlclose(library);
            library = NULL;
        }
    }
    if (!library) {
        snprintf(hiprtc.why, sizeof hiprtc.why,
                 "hip: hiprtc could not be loaded (libhiprtc.so: %s; libamdhip64.so: %s); install ROCm's hiprtc "
                 "(Debian: apt-get install libamdhip64-dev rocm-device-libs) or set MORA_HIPRTC_LIBRARY",
                 why, why_hip);
        return;
    }
#define HIPRTC_RESOLVE(f)                                                                                  \
    hiprtc.f = (__typeof__(&f))dlsym(library, #f);                                                         \
    if (!hiprtc.f) {                                                                                       \
        snprintf(hiprtc.why, sizeof hiprtc.why, "hip: %s lacks %s", hiprtc.path, #f);                      \
        dlclose(library);                                                                                  \
        return;                                                                                            \
    }
    HIPRTC_FUNCTIONS(HIPRTC_RESOLVE)
#undef HIPRTC_RESOLVE
    /* hiprtcVersion is not the ROCm version everywhere (5.2 says 9.0); the runtime's own is better. */
    char number[48];
    int (*runtime_version)(int *) = (int (*)(int *))dlsym(library, "hipRuntimeGetVersion");
    int v = 0;
    if (runtime_version && runtime_version(&v) == 0 && v > 0) {
        snprintf(number, sizeof number, "%d.%d.%d", v / 10000000, v / 100000 % 100, v % 100000);
    } else {
        int major = 0, minor = 0;
        hiprtc.hiprtcVersion(&major, &minor);
        snprintf(number, sizeof number, "%d.%d", major, minor);
    }
    char comgr_version[32];
    comgr_load(dirs, 2, comgr_version, sizeof comgr_version);
    if (comgr_version[0])
        snprintf(hiprtc.version, sizeof hiprtc.version, "hiprtc %s (%s)", number, comgr_version);
    else
        snprintf(hiprtc.version, sizeof hiprtc.version, "hiprtc %s", number);
    hiprtc.library = library;
}

static mora_status hiprtc_get(void) {
    pthread_once(&hiprtc_once, hiprtc_load);
    if (!hiprtc.library) return mora_fail(MORA_E_NO_BACKEND, "%s", hiprtc.why);
    return MORA_OK;
}

mora_status mora_hiprtc_describe(char *version, size_t version_size) {
    MORA_TRY(hiprtc_get());
    if (version && version_size) snprintf(version, version_size, "%s", hiprtc.version);
    return MORA_OK;
}

/* "gfx90a" or "gfx90a:sramecc+:xnack-": letters, digits and the target-id punctuation only. */
static mora_status check_hip_arch(const char *arch) {
    const size_t base = strcspn(arch, ":");
    int ok = strncmp(arch, "gfx", 3) == 0 && base > 3 && base < sizeof hiprtc.isas[0];
    for (size_t i = 0; ok && arch[i]; ++i) {
        const char ch = arch[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || (i >= base && (ch == ':' || ch == '+' || ch == '-'));
    }
    if (!ok) return mora_fail(MORA_E_ARG, "arch=\"%s\": expected an AMD GPU target such as gfx90a or gfx942", arch);
    if (hiprtc.isa_count == 0) return MORA_OK; /* comgr not found: let hiprtc judge */
    for (int i = 0; i < hiprtc.isa_count; ++i)
        if (strlen(hiprtc.isas[i]) == base && strncmp(hiprtc.isas[i], arch, base) == 0) return MORA_OK;
    char list[1024] = "";
    for (int i = 0; i < hiprtc.isa_count; ++i) {
        strncat(list, i ? " " : "", sizeof list - strlen(list) - 1);
        strncat(list, hiprtc.isas[i], sizeof list - strlen(list) - 1);
    }
    return mora_fail(MORA_E_UNSUPPORTED,
                     "arch=\"%s\": %s cannot compile for it: its code object manager does not list %.*s (it knows: "
                     "%s); a newer ROCm is needed",
                     arch, hiprtc.version, (int)base, arch, list);
}

static char *hiprtc_log(hiprtcProgram program) {
    size_t size = 0;
    if (hiprtc.hiprtcGetProgramLogSize(program, &size) != HIPRTC_SUCCESS) size = 0;
    char *log = malloc(size + 1);
    if (!log) return NULL;
    log[0] = '\0';
    if (size > 0 && hiprtc.hiprtcGetProgramLog(program, log) != HIPRTC_SUCCESS) log[0] = '\0';
    log[size] = '\0';
    return log;
}

static mora_status hiprtc_compile_locked(const char *source, const char *arch, const char *const *options,
                                         int option_count, mora_rtc_output *out);

mora_status mora_hiprtc_compile(const char *source, const char *arch, const char *const *extra, int extra_count,
                                mora_rtc_output *out) {
    MORA_CHECK_PTR(source);
    MORA_CHECK_PTR(arch);
    MORA_CHECK_PTR(out);
    memset(out, 0, sizeof *out);
    MORA_TRY(check_extra(extra, extra_count));
    MORA_TRY(hiprtc_get());
    MORA_TRY(check_hip_arch(arch));

    char arch_option[96];
    snprintf(arch_option, sizeof arch_option, "--offload-arch=%s", arch);
    const char *options[3 + MORA_MAX_EXTRA_OPTIONS];
    int option_count = 0;
    options[option_count++] = arch_option;
    options[option_count++] = "-O3";
    options[option_count++] = "-std=c++17";
    for (int i = 0; i < extra_count; ++i) options[option_count++] = extra[i];

    pthread_mutex_lock(&hiprtc_lock);
    const mora_status st = hiprtc_compile_locked(source, arch, options, option_count, out);
    pthread_mutex_unlock(&hiprtc_lock);
    return st;
}

static mora_status hiprtc_compile_locked(const char *source, const char *arch, const char *const *options,
                                         int option_count, mora_rtc_output *out) {
    hiprtcProgram program = NULL;
    hiprtcResult r = hiprtc.hiprtcCreateProgram(&program, source, "mora_kernel.hip", 0, NULL, NULL);
    if (r != HIPRTC_SUCCESS)
        return mora_fail(r == HIPRTC_ERROR_OUT_OF_MEMORY ? MORA_E_NO_MEMORY : MORA_E_COMPILE,
                         "hip: hiprtcCreateProgram failed: %s", hiprtc.hiprtcGetErrorString(r));
    r = hiprtc.hiprtcCompileProgram(program, option_count, (const char **)options);
    char *log = hiprtc_log(program);
    if (r != HIPRTC_SUCCESS) {
        const mora_status st = r == HIPRTC_ERROR_INVALID_OPTION ? MORA_E_ARG : MORA_E_COMPILE;
        mora_fail(st, "hip: %s could not compile for %s (%s)", hiprtc.version, arch, hiprtc.hiprtcGetErrorString(r));
        append_log(log);
        free(log);
        hiprtc.hiprtcDestroyProgram(&program);
        return st;
    }
    mora_status st = log ? MORA_OK : mora_fail(MORA_E_NO_MEMORY, "hip: out of host memory for the compiler log");
    out->log = log;
    size_t size = 0;
    if (st == MORA_OK) {
        r = hiprtc.hiprtcGetCodeSize(program, &size);
        if (r == HIPRTC_SUCCESS && size == 0) st = mora_fail(MORA_E_COMPILE, "hip: hiprtc produced no code for %s", arch);
    }
    if (st == MORA_OK && r == HIPRTC_SUCCESS) {
        out->binary = malloc(size);
        if (!out->binary) st = mora_fail(MORA_E_NO_MEMORY, "hip: out of host memory for a %zu-byte code object", size);
        else if ((r = hiprtc.hiprtcGetCode(program, (char *)out->binary)) == HIPRTC_SUCCESS) out->binary_bytes = size;
    }
    if (st == MORA_OK && r != HIPRTC_SUCCESS)
        st = mora_fail(MORA_E_COMPILE, "hip: reading the code object failed: %s", hiprtc.hiprtcGetErrorString(r));
    hiprtc.hiprtcDestroyProgram(&program);
    if (st != MORA_OK) mora_rtc_output_free(out);
    return st;
}

#else /* !MORA_HAVE_HIP */

mora_status mora_hiprtc_describe(char *version, size_t version_size) {
    (void)version, (void)version_size;
    return mora_fail(MORA_E_NO_BACKEND, "hip: libmora was built without HIP support (configure with -DMORA_WITH_HIP=ON)");
}

mora_status mora_hiprtc_compile(const char *source, const char *arch, const char *const *extra, int extra_count,
                                mora_rtc_output *out) {
    (void)source, (void)arch, (void)extra, (void)extra_count;
    if (out) memset(out, 0, sizeof *out);
    return mora_hiprtc_describe(NULL, 0);
}

#endif /* MORA_HAVE_HIP */
