/* The cpu backend: host memory, no code generation. Layers on it run the float32 kernels of
 * cpu_kernels.c; it is what `auto` falls back to when no GPU or OpenCL platform is present.
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
#include "error.h"

static void cpu_destroy(void *ctx) { (void)ctx; }

static mora_status cpu_device_info(void *ctx, mora_device_info *info) {
    (void)ctx;
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "host cpu (libmora float32 kernels)");
    snprintf(info->vendor, sizeof info->vendor, "libmora");
    snprintf(info->arch, sizeof info->arch, "host");
    snprintf(info->driver_version, sizeof info->driver_version, "%s", MORA_VERSION_STRING);
    snprintf(info->compiler_version, sizeof info->compiler_version, "none");
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    info->compute_units = cores > 0 ? (int)cores : 1;
    info->max_work_group = 1;
    info->is_cpu = 1;
    return MORA_OK;
}

/* ---- the registry of allocated blocks: sorted by address, binary search, one lock ---- */
typedef struct cpu_block {
    uintptr_t base;
    size_t size; /* bytes asked for (the allocation has at least 1) */
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

static int registry_add(void *buf, size_t bytes) {
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
        registry[at] = (cpu_block){(uintptr_t)buf, bytes};
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
 * registered block (the caller's own memory: unknown, not checked). A block of 0 bytes holds only
 * its base. */
static size_t registry_bytes_from(const void *p) {
    const uintptr_t a = (uintptr_t)p;
    size_t bytes = SIZE_MAX;
    pthread_mutex_lock(&registry_lock);
    const size_t at = registry_upper(a);
    if (at > 0) {
        const cpu_block *b = &registry[at - 1];
        if (a - b->base < b->size || a == b->base) bytes = b->size - (size_t)(a - b->base);
    }
    pthread_mutex_unlock(&registry_lock);
    return bytes;
}

/* offset + bytes within what buf has (unknown sizes pass). */
static mora_status check_range(const void *buf, size_t offset, size_t bytes, const char *what) {
    const size_t have = registry_bytes_from(buf);
    if (offset > have || bytes > have - offset)
        return mora_fail(MORA_E_ARG, "%s: offset + bytes = %zu + %zu: exceeds the buffer's %zu bytes", what, offset,
                         bytes, have);
    return MORA_OK;
}

static mora_status cpu_buffer_alloc(void *ctx, size_t bytes, void **buf) {
    (void)ctx;
    *buf = malloc(bytes ? bytes : 1);
    if (!*buf) return mora_fail(MORA_E_NO_MEMORY, "bytes=%zu: host allocation failed", bytes);
    if (!registry_add(*buf, bytes)) {
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

static mora_status cpu_buffer_size(void *ctx, const void *buf, size_t *bytes) {
    (void)ctx;
    *bytes = registry_bytes_from(buf);
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

static const mora_backend_i cpu_backend = {
    .version = MORA_BACKEND_INTERFACE_VERSION,
    .name = "cpu",
    .dialect = -1,
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
};

mora_status mora_backend_cpu_open(int device, const mora_native_objects *native, const mora_backend_i **iface,
                                  void **ctx) {
    if (native) return mora_fail(MORA_E_UNSUPPORTED, "the cpu backend has no native objects to adopt");
    if (device != 0) return mora_fail(MORA_E_NO_BACKEND, "device=%d: the cpu backend has one device, 0", device);
    *iface = &cpu_backend;
    *ctx = NULL;
    return MORA_OK;
}
