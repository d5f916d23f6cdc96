/* The runtime compilers NVRTC (CUDA) and hiprtc (HIP), dlopen()ed once per process; see rtc.h. One
 * compile sequence (rtc_compile) serves both, over an rtc_compiler: the small table of what differs
 * between them (their calls, names, options and outputs). Also the library search of the loaders. */
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

void *mora_library_load(mora_library_info *info, const char *env_var, const char *const *names, int name_count,
                        const char *const *dirs, int dir_count, const char *missing) {
    char reason[768];
    void *library = mora_library_open(env_var, names, name_count, dirs, dir_count, info->path, sizeof info->path,
                                      reason, sizeof reason);
    if (!library) snprintf(info->why, sizeof info->why, missing, reason);
    return library;
}

void mora_rtc_output_free(mora_rtc_output *out) {
    if (!out) return;
    free(out->binary);
    free(out->ptx);
    free(out->log);
    memset(out, 0, sizeof *out);
}

#if defined(MORA_HAVE_CUDA) || defined(MORA_HAVE_HIP)
/* ---- the compile sequence, written once for NVRTC and hiprtc ------------------------------- */

#define RTC_MAX_OPTIONS 3

/* One output of a compile, read after it: its size, then its bytes. */
typedef struct rtc_part {
    const char *what;                         /* "PTX", "CUBIN", "code object": in sentences */
    int (*size)(void *program, size_t *size); /* its size in bytes */
    int (*get)(void *program, char *data);    /* copies it out */
    int text;                                 /* 1: text, into mora_rtc_output.ptx with a NUL; 0: bytes, into .binary */
    int required;                             /* 1: an empty one is a failure; 0: empty means there is none */
} rtc_part;

/* What differs between NVRTC and hiprtc in a compile (RTC_COMPILER fills one). The calls return the
 * compiler's result, 0 for success (NVRTC_SUCCESS, HIPRTC_SUCCESS). */
typedef struct rtc_compiler {
    const char *name;                      /* "cuda", "hip": how sentences begin */
    const char *file;                      /* the source's name in the compiler's log: "mora_kernel.cu" */
    const char *arch_option;               /* the option that names the target, up to the target: "--offload-arch=" */
    const char *options[RTC_MAX_OPTIONS];  /* the options after it, before the caller's (NULL: no more) */
    mora_status (*load)(void);             /* loads the compiler once: MORA_E_NO_BACKEND saying why not */
    mora_status (*check_arch)(const char *arch, int *part_count); /* refuses a target; *part_count: parts to read */
    const rtc_part *parts;                 /* what a compile gives, in the order they are read */
    const char *version;                   /* the loaded compiler's version: "NVRTC 13.0" */
    pthread_mutex_t *lock;                 /* held around a compile when *serialise */
    const int *serialise;                  /* 1: two threads must not compile at once */
    const char *create_call;               /* "nvrtcCreateProgram": in sentences */
    int out_of_memory;                     /* the compiler's result for out of memory */
    int invalid_option;                    /* the compiler's result for an option it does not take */
    const char *(*error)(int r);           /* the text of a result */
    int (*create)(void **program, const char *source, const char *file); /* a program of one source */
    int (*compile)(void *program, int count, const char **options);     /* compiles it */
    int (*log_size)(void *program, size_t *size);                       /* the size of its log, NUL included */
    int (*log)(void *program, char *log);                               /* copies the log out */
    void (*destroy)(void *program);                                    /* releases the program */
} rtc_compiler;

/* Defines the calls of the compiler whose API is named by `prefix` (nvrtc, hiprtc: the two declare the
 * same calls under their prefix, with prefix##Program and prefix##Result) and whose entry points are
 * members of the static struct `prefix`: prefix##_error, _create, _compile, _log_size, _log, _destroy. */
#define RTC_CALLS(prefix)                                                                                             \
    static const char *prefix##_error(int r) { return prefix.prefix##GetErrorString((prefix##Result)r); }             \
    static int prefix##_create(void **program, const char *source, const char *file) {                                \
        prefix##Program made = NULL;                                                                                  \
        const int r = (int)prefix.prefix##CreateProgram(&made, source, file, 0, NULL, NULL);                          \
        *program = made;                                                                                              \
        return r;                                                                                                     \
    }                                                                                                                 \
    static int prefix##_compile(void *program, int count, const char **options) {                                     \
        return (int)prefix.prefix##CompileProgram(program, count, options);                                           \
    }                                                                                                                 \
    static int prefix##_log_size(void *program, size_t *size) {                                                       \
        return (int)prefix.prefix##GetProgramLogSize(program, size);                                                  \
    }                                                                                                                 \
    static int prefix##_log(void *program, char *log) { return (int)prefix.prefix##GetProgramLog(program, log); }     \
    static void prefix##_destroy(void *program) {                                                                     \
        prefix##Program p = program;                                                                                  \
        prefix.prefix##DestroyProgram(&p);                                                                            \
    }

/* Defines prefix##_<part>_size and prefix##_<part> over prefix.prefix##Get<part>Size and prefix.prefix##Get<part>. */
#define RTC_PART_CALLS(prefix, part)                                                                                  \
    static int prefix##_##part##_size(void *program, size_t *size) {                                                  \
        return (int)prefix.prefix##Get##part##Size(program, size);                                                    \
    }                                                                                                                 \
    static int prefix##_##part(void *program, char *data) { return (int)prefix.prefix##Get##part(program, data); }

/* The rtc_compiler of the compiler named by `prefix`, whose state is the static struct `prefix`
 * (version, lock, serialise), whose results are named PREFIX##_ERROR_..., whose calls RTC_CALLS
 * and RTC_PART_CALLS define and whose own functions are prefix##_get (the loader), prefix##_check_arch
 * and prefix##_parts; sentences begin with name_, the source is called file_, the target goes after
 * arch_option_ and the options after it are the rest. */
#define RTC_COMPILER(prefix, PREFIX, name_, file_, arch_option_, ...)                                                 \
    {                                                                                                                 \
        .name = name_, .file = file_, .arch_option = arch_option_, .options = {__VA_ARGS__},                          \
        .load = prefix##_get, .check_arch = prefix##_check_arch, .parts = prefix##_parts,                             \
        .version = prefix.version, .lock = &prefix.lock, .serialise = &prefix.serialise,                              \
        .create_call = #prefix "CreateProgram", .out_of_memory = PREFIX##_ERROR_OUT_OF_MEMORY,                        \
        .invalid_option = PREFIX##_ERROR_INVALID_OPTION, .error = prefix##_error, .create = prefix##_create,          \
        .compile = prefix##_compile, .log_size = prefix##_log_size, .log = prefix##_log,                              \
        .destroy = prefix##_destroy                                                                                   \
    }

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

/* The compiler's log of a program ("" when it said nothing), or NULL when out of host memory. */
static char *read_log(const rtc_compiler *rc, void *program) {
    size_t size = 0;
    if (rc->log_size(program, &size) != 0) size = 0;
    char *log = malloc(size + 1);
    if (!log) return NULL;
    log[0] = '\0';
    if (size > 0 && rc->log(program, log) != 0) log[0] = '\0';
    log[size] = '\0';
    return log;
}

/* Reads one part of a compiled program into out. */
static mora_status read_part(const rtc_compiler *rc, void *program, const rtc_part *part, const char *arch,
                             mora_rtc_output *out) {
    size_t size = 0;
    int r = part->size(program, &size);
    if (r == 0 && size == 0 && part->required)
        return mora_fail(MORA_E_COMPILE, "%s: %s produced no %s for %s", rc->name, rc->version, part->what, arch);
    if (r == 0 && (size > 0 || part->text)) {
        char *data = malloc(size + (part->text ? 1 : 0));
        if (!data)
            return mora_fail(MORA_E_NO_MEMORY, "%s: out of host memory for %zu bytes of %s", rc->name, size, part->what);
        r = part->get(program, data);
        if (part->text) {
            data[size] = '\0';
            out->ptx = data;
        } else {
            out->binary = (unsigned char *)data;
            out->binary_bytes = r == 0 ? size : 0;
        }
    }
    if (r != 0) return mora_fail(MORA_E_COMPILE, "%s: reading the %s failed: %s", rc->name, part->what, rc->error(r));
    return MORA_OK;
}

/* Creates a program, compiles it, reads its log and parts and destroys it (rtc_compile holds the
 * compiler's lock around it when it has to). */
static mora_status run_compiler(const rtc_compiler *rc, const char *source, const char *arch, const char **options,
                                int option_count, int part_count, mora_rtc_output *out) {
    void *program = NULL;
    int r = rc->create(&program, source, rc->file);
    if (r != 0)
        return mora_fail(r == rc->out_of_memory ? MORA_E_NO_MEMORY : MORA_E_COMPILE, "%s: %s failed: %s", rc->name,
                         rc->create_call, rc->error(r));
    r = rc->compile(program, option_count, options);
    char *log = read_log(rc, program);
    mora_status st = MORA_OK;
    if (r != 0) {
        st = mora_fail(r == rc->invalid_option ? MORA_E_ARG : MORA_E_COMPILE, "%s: %s could not compile for %s (%s)",
                       rc->name, rc->version, arch, rc->error(r));
        append_log(log);
        free(log);
    } else if (!log) {
        st = mora_fail(MORA_E_NO_MEMORY, "%s: out of host memory for the compiler log", rc->name);
    } else {
        out->log = log;
        for (int i = 0; st == MORA_OK && i < part_count; ++i) st = read_part(rc, program, &rc->parts[i], arch, out);
    }
    rc->destroy(program);
    if (st != MORA_OK) mora_rtc_output_free(out);
    return st;
}

/* mora_nvrtc_compile and mora_hiprtc_compile: the arguments, the compiler, the target, the options. */
static mora_status rtc_compile(const rtc_compiler *rc, const char *source, const char *arch, const char *const *extra,
                               int extra_count, mora_rtc_output *out) {
    MORA_CHECK_PTR(source);
    MORA_CHECK_PTR(arch);
    MORA_CHECK_PTR(out);
    memset(out, 0, sizeof *out);
    MORA_TRY(check_extra(extra, extra_count));
    MORA_TRY(rc->load());
    int part_count = 0;
    MORA_TRY(rc->check_arch(arch, &part_count));

    char arch_option[128];
    snprintf(arch_option, sizeof arch_option, "%s%s", rc->arch_option, arch);
    const char *options[1 + RTC_MAX_OPTIONS + MORA_MAX_EXTRA_OPTIONS];
    int option_count = 0;
    options[option_count++] = arch_option;
    for (int i = 0; i < RTC_MAX_OPTIONS && rc->options[i]; ++i) options[option_count++] = rc->options[i];
    for (int i = 0; i < extra_count; ++i) options[option_count++] = extra[i];

    const int serialise = *rc->serialise;
    if (serialise) pthread_mutex_lock(rc->lock);
    const mora_status st = run_compiler(rc, source, arch, options, option_count, part_count, out);
    if (serialise) pthread_mutex_unlock(rc->lock);
    return st;
}
#endif

/* ---- NVRTC ---------------------------------------------------------------------------------- */
#ifdef MORA_HAVE_CUDA

#define NVRTC_FUNCTIONS(X)                                                                                            \
    X(nvrtcVersion) X(nvrtcGetNumSupportedArchs) X(nvrtcGetSupportedArchs) X(nvrtcGetErrorString)                     \
    X(nvrtcCreateProgram) X(nvrtcDestroyProgram) X(nvrtcCompileProgram) X(nvrtcGetProgramLogSize)                     \
    X(nvrtcGetProgramLog) X(nvrtcGetPTXSize) X(nvrtcGetPTX) X(nvrtcGetCUBINSize) X(nvrtcGetCUBIN)

#define NVRTC_MAX_ARCHS 64

typedef struct nvrtc_api {
    void *library;         /* NULL: not loadable, see lib.why */
    mora_library_info lib;
    char version[64];      /* "NVRTC 13.0" */
    int archs[NVRTC_MAX_ARCHS];
    int arch_count;
    int serialise;         /* NVRTC 12 and newer compile concurrently from several threads; older ones under lock */
    pthread_mutex_t lock;
    NVRTC_FUNCTIONS(MORA_LIBRARY_ENTRY)
} nvrtc_api;

static nvrtc_api nvrtc = {.lock = PTHREAD_MUTEX_INITIALIZER};
static pthread_once_t nvrtc_once = PTHREAD_ONCE_INIT;

static void nvrtc_load(void) {
    static const char *const names[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"};
    char cuda_path_lib[512] = "";
    const char *cuda_path = getenv("CUDA_PATH");
    if (cuda_path && *cuda_path) snprintf(cuda_path_lib, sizeof cuda_path_lib, "%s/lib64", cuda_path);
    const char *const dirs[] = {cuda_path_lib, "/usr/local/cuda/lib64"};
    void *library = mora_library_load(&nvrtc.lib, "MORA_NVRTC_LIBRARY", names, 4, dirs, 2,
                                      "cuda: NVRTC (libnvrtc.so.13, .so.12 or .so.11.2) could not be loaded: %s "
                                      "(install the CUDA toolkit's NVRTC, e.g. the cuda-nvrtc-13-0 package, or set "
                                      "MORA_NVRTC_LIBRARY)");
    if (!library) return;
#define NVRTC_RESOLVE(f) MORA_LIBRARY_RESOLVE(nvrtc, f, dlsym, "cuda: %s lacks %s (NVRTC 11.2 or newer is needed)")
    NVRTC_FUNCTIONS(NVRTC_RESOLVE)
#undef NVRTC_RESOLVE
    int major = 0, minor = 0;
    nvrtc.nvrtcVersion(&major, &minor);
    nvrtc.serialise = major < 12;
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
        snprintf(nvrtc.lib.why, sizeof nvrtc.lib.why, "cuda: %s (%s) reports no supported GPU architectures",
                 nvrtc.lib.path, nvrtc.version);
        dlclose(library);
        return;
    }
    nvrtc.library = library;
}

static mora_status nvrtc_get(void) {
    pthread_once(&nvrtc_once, nvrtc_load);
    if (!nvrtc.library) return mora_fail(MORA_E_NO_BACKEND, "%s", nvrtc.lib.why);
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

/* A target of this NVRTC's: the PTX is read, and for a real (sm_) target the CUBIN too. */
static mora_status nvrtc_check_arch(const char *arch, int *part_count) {
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
    *part_count = real ? 2 : 1;
    return MORA_OK;
}

RTC_CALLS(nvrtc)
RTC_PART_CALLS(nvrtc, PTX)
RTC_PART_CALLS(nvrtc, CUBIN)

static const rtc_part nvrtc_parts[] = {
    {.what = "PTX", .size = nvrtc_PTX_size, .get = nvrtc_PTX, .text = 1},
    {.what = "CUBIN", .size = nvrtc_CUBIN_size, .get = nvrtc_CUBIN}, /* none for a compute_ target */
};

static const rtc_compiler nvrtc_compiler =
    RTC_COMPILER(nvrtc, NVRTC, "cuda", "mora_kernel.cu", "--gpu-architecture=", "--std=c++17");

mora_status mora_nvrtc_compile(const char *source, const char *arch, const char *const *extra, int extra_count,
                               mora_rtc_output *out) {
    return rtc_compile(&nvrtc_compiler, source, arch, extra, extra_count, out);
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

#define HIPRTC_FUNCTIONS(X)                                                                                           \
    X(hiprtcVersion) X(hiprtcGetErrorString) X(hiprtcCreateProgram) X(hiprtcDestroyProgram)                           \
    X(hiprtcCompileProgram) X(hiprtcGetProgramLogSize) X(hiprtcGetProgramLog) X(hiprtcGetCodeSize) X(hiprtcGetCode)

#define HIP_MAX_ISAS 160

/* The code object manager's entry points we use, declared here so its header is not needed. */
typedef int (*comgr_get_isa_count_fn)(size_t *count);
typedef int (*comgr_get_isa_name_fn)(size_t index, const char **name);
typedef void (*comgr_get_version_fn)(size_t *major, size_t *minor);

typedef struct hiprtc_api {
    void *library;          /* NULL: not loadable, see lib.why */
    mora_library_info lib;
    char version[96]; /* "hiprtc 5.2.21153 (comgr 2.4)" */
    char isas[HIP_MAX_ISAS][24]; /* "gfx90a", ... as comgr lists them; isa_count 0: unknown */
    int isa_count;
    int serialise; /* hiprtc (5.2 at least) corrupts its heap when two threads compile at once: always 1 */
    pthread_mutex_t lock;
    HIPRTC_FUNCTIONS(MORA_LIBRARY_ENTRY)
} hiprtc_api;

static hiprtc_api hiprtc = {.serialise = 1, .lock = PTHREAD_MUTEX_INITIALIZER};
static pthread_once_t hiprtc_once = PTHREAD_ONCE_INIT;

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
    void *library = mora_library_open("MORA_HIPRTC_LIBRARY", rtc_names, 4, dirs, 2, hiprtc.lib.path,
                                      sizeof hiprtc.lib.path, why, sizeof why);
    if (library && !dlsym(library, "hiprtcCreateProgram")) {
        dlclose(library);
        library = NULL;
    }
    if (!library) {
        library = mora_library_open(NULL, hip_names, 4, dirs, 2, hiprtc.lib.path, sizeof hiprtc.lib.path, why_hip,
                                    sizeof why_hip);
        if (library && !dlsym(library, "hiprtcCreateProgram")) {
            copy_text(why_hip, sizeof why_hip, "libamdhip64.so has no hiprtc entry points");
            dlclose(library);
            library = NULL;
        }
    }
    if (!library) {
        snprintf(hiprtc.lib.why, sizeof hiprtc.lib.why,
                 "hip: hiprtc could not be loaded (libhiprtc.so: %s; libamdhip64.so: %s); install ROCm's hiprtc "
                 "(Debian: apt-get install libamdhip64-dev rocm-device-libs) or set MORA_HIPRTC_LIBRARY",
                 why, why_hip);
        return;
    }
#define HIPRTC_RESOLVE(f) MORA_LIBRARY_RESOLVE(hiprtc, f, dlsym, "hip: %s lacks %s")
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
    if (!hiprtc.library) return mora_fail(MORA_E_NO_BACKEND, "%s", hiprtc.lib.why);
    return MORA_OK;
}

mora_status mora_hiprtc_describe(char *version, size_t version_size) {
    MORA_TRY(hiprtc_get());
    if (version && version_size) snprintf(version, version_size, "%s", hiprtc.version);
    return MORA_OK;
}

/* "gfx90a" or "gfx90a:sramecc+:xnack-": letters, digits and the target-id punctuation only, of a
 * target comgr lists (when comgr was found). The code object is the one part read. */
static mora_status hiprtc_check_arch(const char *arch, int *part_count) {
    *part_count = 1;
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

RTC_CALLS(hiprtc)
RTC_PART_CALLS(hiprtc, Code)

static const rtc_part hiprtc_parts[] = {
    {.what = "code object", .size = hiprtc_Code_size, .get = hiprtc_Code, .required = 1},
};

static const rtc_compiler hiprtc_compiler =
    RTC_COMPILER(hiprtc, HIPRTC, "hip", "mora_kernel.hip", "--offload-arch=", "-O3", "-std=c++17");

mora_status mora_hiprtc_compile(const char *source, const char *arch, const char *const *extra, int extra_count,
                                mora_rtc_output *out) {
    return rtc_compile(&hiprtc_compiler, source, arch, extra, extra_count, out);
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
