/* The cpu backend: host memory, and programs in the host dialect that configure the built-in
 * kernels of cpu_kernels.c; it is what `auto` falls back to when no GPU or OpenCL platform is present
 * (or the OpenCL device is the host's CPU).
 *
 * Programs. A host-dialect source (codegen emits it like any other: dialect_host.kern, then the
 * spec's constants as `#define NAME value` lines) is "compiled" by reading its integer #defines. An
 * entry point is one of the kernels below, made from them: the layer kernels read the shape (D_IN,
 * D_OUT, RHAT, MORA_OP), ACT_DTYPE and their kind's <P>_TILE_ROWS, <P>_THREADS, <P>_GEMM and <P>_FOLD, as the templates
 * of the other dialects read theirs; the optimizer's read ADAMW_CHUNK. A launch runs the kernel on
 * the calling thread (and the workers it starts) with the arguments of the entry's declared list
 * (codegen/kernels.c, host family), in that order.
 *
 * Buffer sizes. A "device buffer" here is a plain host pointer, and callers may pass their own host
 * memory (not from mora_buffer_alloc) to every call. So a buffer's size is not kept in a header in
 * front of the block (reading before a caller's pointer would be an overrun of its own) but in a
 * registry of the blocks mora_buffer_alloc made, looked up by address under a lock (calls may come
 * from several threads). buffer_size answers:
 *   - a pointer into a block of the registry: the bytes from it to the block's end, so reads,
 *     writes, zeroing, copies and the layer's size checks are bounds-checked exactly as on OpenCL;
 *   - any other pointer (the caller's own memory): SIZE_MAX, "unknown", and nothing is checked.
 * For mora.h (the sentence for the public header):
 *   "On the cpu backend, buffers from mora_buffer_alloc know their size and every call that reads or
 *    writes them is bounds-checked; the caller's own host pointers are accepted too, but their size
 *    cannot be known, so calls on them are not checked: a too-small caller buffer is the caller's
 *    overrun, as with memcpy." */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "cpu_gemm.h"
#include "cpu_kernels.h"
#include "error.h"

/* A context's identity: the owner its buffers are registered under (one byte of its own). */
static void cpu_destroy(void *ctx) { free(ctx); }

/* The CPU's model as the kernel reports it ("AMD EPYC 9R14 96-Core Processor"); "" when unknown.
 * Machines of one kind change CPU model between runs: every report and tuning key names it. */
static void cpu_model(char *out, size_t size) {
    out[0] = '\0';
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        const char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || !colon) continue;
        for (++colon; *colon == ' ' || *colon == '\t'; ++colon) {}
        snprintf(out, size, "%.*s", (int)strcspn(colon, "\n"), colon);
        break;
    }
    fclose(f);
}

static mora_status cpu_device_info(void *ctx, mora_device_info *info) {
    (void)ctx;
    memset(info, 0, sizeof *info);
    char model[160];
    cpu_model(model, sizeof model);
    snprintf(info->name, sizeof info->name, "host cpu: %s (libmora float32 kernels)", model[0] ? model : "model unknown");
    snprintf(info->vendor, sizeof info->vendor, "libmora");
    snprintf(info->arch, sizeof info->arch, "host");
    snprintf(info->driver_version, sizeof info->driver_version, "%s", MORA_VERSION_STRING);
    /* the GEMM providers the host kernels may use, with their versions and kernel sets: tuning
     * records' keys name it, so another BLAS core or library is tuned again */
    snprintf(info->compiler_version, sizeof info->compiler_version, "%s", mora_gemm_identity());
    info->libraries = mora_gemm_available_mask();
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    info->compute_units = cores > 0 ? (int)cores : 1;
    info->max_work_group = 1;
    info->is_cpu = 1;
    /* what a plan may allocate at most: the host's physical memory */
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages > 0 && page > 0) info->global_mem_bytes = (uint64_t)pages * (uint64_t)page;
    return MORA_OK;
}

/* ---- the registry of allocated blocks: sorted by address, binary search, one lock ---- */
typedef struct cpu_block {
    uintptr_t base;
    size_t size;       /* bytes asked for (the allocation has at least 1) */
    const void *owner; /* the context that allocated it */
} cpu_block;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static cpu_block *registry;
static size_t registry_count, registry_capacity;

/* Index of the first block whose base is > p (call with the lock held). */
static size_t registry_upper(uintptr_t p) {
    size_t lo = 0, hi = registry_count;
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (registry[mid].base <= p) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static int registry_add(void *buf, size_t bytes, const void *owner) {
    pthread_mutex_lock(&registry_lock);
    int ok = 1;
    if (registry_count == registry_capacity) {
        const size_t capacity = registry_capacity ? 2 * registry_capacity : 64;
        cpu_block *grown = realloc(registry, capacity * sizeof *grown);
        if (grown) {
            registry = grown;
            registry_capacity = capacity;
        } else {
            ok = 0;
        }
    }
    if (ok) {
        const size_t at = registry_upper((uintptr_t)buf);
        memmove(&registry[at + 1], &registry[at], (registry_count - at) * sizeof *registry);
        registry[at] = (cpu_block){(uintptr_t)buf, bytes, owner};
        ++registry_count;
    }
    pthread_mutex_unlock(&registry_lock);
    return ok;
}

static void registry_remove(const void *buf) {
    pthread_mutex_lock(&registry_lock);
    const size_t at = registry_upper((uintptr_t)buf);
    if (at > 0 && registry[at - 1].base == (uintptr_t)buf) {
        memmove(&registry[at - 1], &registry[at], (registry_count - at) * sizeof *registry);
        --registry_count;
    }
    pthread_mutex_unlock(&registry_lock);
}

/* Bytes from p to the end of the registered block holding it, or SIZE_MAX for a pointer in no
 * registered block (the caller's own memory: unknown, not checked); *owner (may be NULL): the
 * context that allocated the block, NULL for none. A block of 0 bytes holds only its base. */
static size_t registry_lookup(const void *p, const void **owner) {
    const uintptr_t a = (uintptr_t)p;
    size_t bytes = SIZE_MAX;
    const void *found = NULL;
    pthread_mutex_lock(&registry_lock);
    const size_t at = registry_upper(a);
    if (at > 0) {
        const cpu_block *b = &registry[at - 1];
        if (a - b->base < b->size || a == b->base) {
            bytes = b->size - (size_t)(a - b->base);
            found = b->owner;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    if (owner) *owner = found;
    return bytes;
}

static size_t registry_bytes_from(const void *p) { return registry_lookup(p, NULL); }

/* offset + bytes within what buf has (unknown sizes pass). */
static mora_status check_range(const void *buf, size_t offset, size_t bytes, const char *what) {
    const size_t have = registry_bytes_from(buf);
    if (offset > have || bytes > have - offset)
        return mora_fail(MORA_E_ARG, "%s: offset + bytes = %zu + %zu: exceeds the buffer's %zu bytes", what, offset,
                         bytes, have);
    return MORA_OK;
}

static mora_status cpu_buffer_alloc(void *ctx, size_t bytes, void **buf) {
    *buf = malloc(bytes ? bytes : 1);
    if (!*buf) return mora_fail(MORA_E_NO_MEMORY, "bytes=%zu: host allocation failed", bytes);
    if (!registry_add(*buf, bytes, ctx)) {
        free(*buf);
        *buf = NULL;
        return mora_fail(MORA_E_NO_MEMORY, "bytes=%zu: out of memory for the buffer registry", bytes);
    }
    return MORA_OK;
}

static mora_status cpu_buffer_free(void *ctx, void *buf) {
    (void)ctx;
    registry_remove(buf);
    free(buf);
    return MORA_OK;
}

/* The size of a block of this context's; a block another cpu context allocated is refused (its
 * memory would work, but a buffer passed to the wrong context is a mistake on every other backend,
 * and the code that runs here must run there). */
static mora_status cpu_buffer_size(void *ctx, const void *buf, size_t *bytes) {
    const void *owner = NULL;
    *bytes = registry_lookup(buf, &owner);
    if (owner && owner != ctx)
        return mora_fail(MORA_E_ARG, "buffer %p: allocated by another context (mora_buffer_alloc of a different mora_context)",
                         buf);
    return MORA_OK;
}

static mora_status cpu_buffer_write(void *ctx, void *buf, size_t offset, const void *src, size_t bytes) {
    (void)ctx;
    MORA_TRY(check_range(buf, offset, bytes, "buffer write"));
    if (bytes) memcpy((char *)buf + offset, src, bytes);
    return MORA_OK;
}

static mora_status cpu_buffer_read(void *ctx, const void *buf, size_t offset, void *dst, size_t bytes) {
    (void)ctx;
    MORA_TRY(check_range(buf, offset, bytes, "buffer read"));
    if (bytes) memcpy(dst, (const char *)buf + offset, bytes);
    return MORA_OK;
}

static mora_status cpu_buffer_zero(void *ctx, void *buf, size_t bytes) {
    (void)ctx;
    MORA_TRY(check_range(buf, 0, bytes, "buffer zero"));
    if (bytes) memset(buf, 0, bytes);
    return MORA_OK;
}

static mora_status cpu_buffer_copy(void *ctx, const void *src, size_t src_offset, void *dst, size_t dst_offset,
                                   size_t bytes) {
    (void)ctx;
    MORA_TRY(check_range(src, src_offset, bytes, "buffer copy (source)"));
    MORA_TRY(check_range(dst, dst_offset, bytes, "buffer copy (destination)"));
    if (bytes) memmove((char *)dst + dst_offset, (const char *)src + src_offset, bytes);
    return MORA_OK;
}

static mora_status cpu_synchronize(void *ctx) {
    (void)ctx;
    return MORA_OK;
}

/* The cpu backend runs on the caller's thread: it has no stream, and NULL (its own) is all it takes. */
static mora_status cpu_set_stream(void *ctx, void *native_stream) {
    (void)ctx;
    if (native_stream)
        return mora_fail(MORA_E_UNSUPPORTED, "native_stream=%p: the cpu backend has no streams (only NULL)", native_stream);
    return MORA_OK;
}


/* ---- programs in the host dialect ---- */

#define HOST_MAX_DEFINES 64

typedef struct host_define {
    char name[48];
    long long value;
} host_define;

typedef struct host_program {
    int count;
    host_define defines[HOST_MAX_DEFINES];
} host_program;

static const host_define *find_define(const host_program *p, const char *name) {
    for (int i = 0; i < p->count; ++i)
        if (strcmp(p->defines[i].name, name) == 0) return &p->defines[i];
    return NULL;
}

/* Reads every `#define NAME <integer>` line; other lines (comments, macros with other values) are
 * text for the reader. A source without MORA_HOST_PROGRAM is not in the host dialect. */
static mora_status cpu_program_build(void *ctx, const char *source, void **program) {
    (void)ctx;
    host_program *p = calloc(1, sizeof *p);
    if (!p) return mora_fail(MORA_E_NO_MEMORY, "cpu: out of host memory for a program");
    for (const char *line = source; line && *line;) {
        const char *end = strchr(line, '\n');
        char name[48];
        long long value;
        int used = 0;
        if (strncmp(line, "#define ", 8) == 0 && sscanf(line + 8, "%47s %lld%n", name, &value, &used) == 2 &&
            (line[8 + used] == '\n' || line[8 + used] == '\0' || line[8 + used] == ' ')) {
            host_define *d = (host_define *)find_define(p, name);
            if (!d && p->count == HOST_MAX_DEFINES) {
                free(p);
                return mora_fail(MORA_E_COMPILE, "cpu: the source defines more than %d constants", HOST_MAX_DEFINES);
            }
            if (!d) d = &p->defines[p->count++];
            snprintf(d->name, sizeof d->name, "%s", name);
            d->value = value;
        }
        line = end ? end + 1 : NULL;
    }
    if (!find_define(p, "MORA_HOST_PROGRAM")) {
        free(p);
        return mora_fail(MORA_E_COMPILE, "cpu: the source is not in the host dialect (no MORA_HOST_PROGRAM line): the cpu "
                                         "backend runs its own kernels, configured by a spec's constants");
    }
    *program = p;
    return MORA_OK;
}

static void cpu_program_free(void *ctx, void *program) {
    (void)ctx;
    free(program);
}

/* An entry point: its kernel and what it was made with. */
typedef struct host_kernel host_kernel;
typedef mora_status (*host_run_fn)(const host_kernel *k, const mora_kernel_arg *a);
struct host_kernel {
    const char *name;
    host_run_fn run;
    int arg_count;
    mora_cpu_plan *plan; /* the layer kernels */
    mora_dtype dtype;    /* ACT_DTYPE: activations, or W for merge */
    int64_t chunk;       /* the optimizer: ADAMW_CHUNK */
};

#define BUF(i) ((void *)(uintptr_t)a[i].value.buffer)
#define I64(i) (a[i].value.i64)
#define F32(i) (a[i].value.f32)

/* x, ldx, y, ldy, M, n, scale, scratch */
static mora_status run_fwd(const host_kernel *k, const mora_kernel_arg *a) {
    return mora_cpu_forward(k->plan, BUF(4), BUF(0), I64(1), BUF(2), I64(3), I64(5), F32(6), BUF(7));
}
/* dy, lddy, M, dx, lddx, n, scale, scratch */
static mora_status run_bwd_dx(const host_kernel *k, const mora_kernel_arg *a) {
    return mora_cpu_backward(k->plan, BUF(2), NULL, 0, BUF(0), I64(1), BUF(3), I64(4), NULL, I64(5), F32(6), BUF(7));
}
/* x, ldx, dy, lddy, dM, n, scale, scratch */
static mora_status run_bwd_dm(const host_kernel *k, const mora_kernel_arg *a) {
    return mora_cpu_backward(k->plan, NULL, BUF(0), I64(1), BUF(2), I64(3), NULL, 0, BUF(4), I64(5), F32(6), BUF(7));
}
/* W, ldw, M, s */
static mora_status run_merge(const host_kernel *k, const mora_kernel_arg *a) {
    return mora_cpu_merge(k->plan, BUF(2), BUF(0), I64(1), k->dtype, F32(3));
}
/* grads, count, partial */
static mora_status run_grad_sq_partial(const host_kernel *k, const mora_kernel_arg *a) {
    const mora_cpu_adamw_args args = {.g = BUF(0), .count = I64(1), .chunk = k->chunk, .partial = BUF(2)};
    mora_cpu_grad_sq_partial(&args);
    return MORA_OK;
}
/* partial, partial count, max_norm, clip */
static mora_status run_grad_norm_finish(const host_kernel *k, const mora_kernel_arg *a) {
    (void)k;
    mora_cpu_grad_norm_finish(BUF(0), I64(1), F32(2), BUF(3));
    return MORA_OK;
}
/* params, grads, m, v, count, decay, 1 − β1, β2, 1 − β2, −step size, sqrt(bias2), eps, clip, use_clip */
static mora_status run_adamw(const host_kernel *k, const mora_kernel_arg *a) {
    const mora_cpu_adamw_args args = {BUF(0),  BUF(1),  BUF(2),  BUF(3),  I64(4),  k->chunk, NULL,    BUF(12),
                                      F32(5), F32(6), F32(7), F32(8), F32(9), F32(10), F32(11), (int)I64(13)};
    mora_cpu_adamw(&args);
    return MORA_OK;
}

#undef BUF
#undef I64
#undef F32

/* The entry points, with the argument kinds of their declared lists (B buffer, I i64, F float) and
 * the prefix of their kind's parameters (NULL: the optimizer's, which take none). */
static const struct host_entry {
    const char *name;
    const char *prefix;
    const char *args;
    host_run_fn run;
} host_entries[] = {
    {"mora_fwd", "FWD", "BIBIBIFB", run_fwd},
    {"mora_bwd_dx", "DX", "BIBBIIFB", run_bwd_dx},
    {"mora_bwd_dm", "DM", "BIBIBIFB", run_bwd_dm},
    {"mora_merge", "MERGE", "BIBF", run_merge},
    {"mora_grad_sq_partial", NULL, "BIB", run_grad_sq_partial},
    {"mora_grad_norm_finish", NULL, "BIFB", run_grad_norm_finish},
    {"mora_adamw", NULL, "BBBBIFFFFFFFBI", run_adamw},
};

static mora_status need_define(const host_program *p, const char *entry, const char *name, long long *value) {
    const host_define *d = find_define(p, name);
    if (!d) return mora_fail(MORA_E_COMPILE, "cpu: entry %s needs %s, which the program does not define", entry, name);
    *value = d->value;
    return MORA_OK;
}

/* The layer kernels' plan: the shape, the dtype and the kind's tile and threads. */
static mora_status make_layer_plan(const host_program *p, const struct host_entry *e, host_kernel *k) {
    long long d_in = 0, d_out = 0, rhat = 0, op = 0, dtype = 0;
    MORA_TRY(need_define(p, e->name, "D_IN", &d_in));
    MORA_TRY(need_define(p, e->name, "D_OUT", &d_out));
    MORA_TRY(need_define(p, e->name, "RHAT", &rhat));
    MORA_TRY(need_define(p, e->name, "MORA_OP", &op));
    MORA_TRY(need_define(p, e->name, "ACT_DTYPE", &dtype));
    if (op < 0 || op >= MORA_OP_COUNT || dtype < 0 || dtype >= MORA_DTYPE_COUNT)
        return mora_fail(MORA_E_COMPILE, "cpu: entry %s: MORA_OP=%lld, ACT_DTYPE=%lld: not an operator and a dtype", e->name,
                         op, dtype);
    const mora_shape s = {d_in, d_out, rhat, (mora_op)op};
    char name[64];
    snprintf(name, sizeof name, "%s_TILE_ROWS", e->prefix);
    const host_define *rows = find_define(p, name);
    snprintf(name, sizeof name, "%s_THREADS", e->prefix);
    const host_define *threads = find_define(p, name);
    snprintf(name, sizeof name, "%s_GEMM", e->prefix);
    const host_define *gemm = find_define(p, name);
    snprintf(name, sizeof name, "%s_FOLD", e->prefix);
    const host_define *fold = find_define(p, name);
    const host_define *given[4] = {rows, threads, gemm, fold};
    for (int i = 0; i < 4; ++i)
        if (given[i] && (given[i]->value < 0 || given[i]->value > INT32_MAX))
            return mora_fail(MORA_E_COMPILE, "cpu: entry %s: %s=%lld: outside [0, 2^31)", e->name, given[i]->name,
                             given[i]->value);
    const mora_cpu_params params =
        mora_cpu_params_for(&s, rows ? (int)rows->value : 0, threads ? (int)threads->value : 0,
                            gemm ? (int)gemm->value : 0, fold ? (int)fold->value : 0);
    k->dtype = (mora_dtype)dtype;
    return mora_cpu_plan_create(&s, (mora_dtype)dtype, &params, &k->plan);
}

static mora_status cpu_kernel_create(void *ctx, void *program, const char *entry, void **kernel) {
    (void)ctx;
    const host_program *p = program;
    const struct host_entry *e = NULL;
    for (size_t i = 0; i < sizeof host_entries / sizeof *host_entries; ++i)
        if (strcmp(host_entries[i].name, entry) == 0) e = &host_entries[i];
    if (!e) return mora_fail(MORA_E_COMPILE, "cpu: entry \"%s\": not one of the cpu backend's kernels", entry);
    host_kernel *k = calloc(1, sizeof *k);
    if (!k) return mora_fail(MORA_E_NO_MEMORY, "cpu: out of host memory for a kernel");
    k->name = e->name;
    k->run = e->run;
    k->arg_count = (int)strlen(e->args);
    mora_status st = MORA_OK;
    if (e->prefix) {
        st = make_layer_plan(p, e, k);
    } else {
        long long chunk = 0;
        st = need_define(p, e->name, "ADAMW_CHUNK", &chunk);
        if (st == MORA_OK && chunk < 1) st = mora_fail(MORA_E_COMPILE, "cpu: ADAMW_CHUNK=%lld: must be >= 1", chunk);
        k->chunk = chunk;
    }
    if (st != MORA_OK) {
        free(k);
        return st;
    }
    *kernel = k;
    return MORA_OK;
}

static void cpu_kernel_free(void *ctx, void *kernel) {
    (void)ctx;
    host_kernel *k = kernel;
    if (!k) return;
    mora_cpu_plan_destroy(k->plan);
    free(k);
}

static mora_status cpu_launch(void *ctx, void *kernel, const size_t groups[3], const size_t local[3],
                              const mora_kernel_arg *args, int arg_count) {
    (void)ctx, (void)groups, (void)local;
    const host_kernel *k = kernel;
    const struct host_entry *e = NULL;
    for (size_t i = 0; i < sizeof host_entries / sizeof *host_entries; ++i)
        if (host_entries[i].run == k->run) e = &host_entries[i];
    if (arg_count != k->arg_count)
        return mora_fail(MORA_E_ARG, "cpu: %s: %d arguments, the kernel takes %d", k->name, arg_count, k->arg_count);
    static const char kinds[] = {[MORA_ARG_BUFFER] = 'B', [MORA_ARG_I64] = 'I', [MORA_ARG_F32] = 'F'};
    for (int i = 0; i < arg_count; ++i)
        if ((int)args[i].kind < 0 || (int)args[i].kind > MORA_ARG_F32 || kinds[args[i].kind] != e->args[i])
            return mora_fail(MORA_E_ARG, "cpu: %s: argument %d is of kind %d, the kernel takes '%c'", k->name, i,
                             (int)args[i].kind, e->args[i]);
    return k->run(k, args);
}

static const mora_backend_i cpu_backend = {
    .version = MORA_BACKEND_INTERFACE_VERSION,
    .name = "cpu",
    .dialect = MORA_DIALECT_HOST,
    .destroy = cpu_destroy,
    .device_info = cpu_device_info,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_free = cpu_buffer_free,
    .buffer_write = cpu_buffer_write,
    .buffer_read = cpu_buffer_read,
    .buffer_size = cpu_buffer_size,
    .buffer_zero = cpu_buffer_zero,
    .synchronize = cpu_synchronize,
    .set_stream = cpu_set_stream,
    .buffer_copy = cpu_buffer_copy,
    .program_build = cpu_program_build,
    .program_free = cpu_program_free,
    .kernel_create = cpu_kernel_create,
    .kernel_free = cpu_kernel_free,
    .launch = cpu_launch,
};

mora_status mora_backend_cpu_open(int device, const mora_native_objects *native, const mora_backend_i **iface,
                                  void **ctx) {
    if (native) return mora_fail(MORA_E_UNSUPPORTED, "the cpu backend has no native objects to adopt");
    if (device != 0) return mora_fail(MORA_E_NO_BACKEND, "device=%d: the cpu backend has one device, 0", device);
    *ctx = malloc(1); /* the identity its buffers are registered under */
    if (!*ctx) return mora_fail(MORA_E_NO_MEMORY, "cpu backend: out of host memory");
    *iface = &cpu_backend;
    return MORA_OK;
}
