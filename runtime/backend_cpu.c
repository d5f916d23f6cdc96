/* The cpu backend: host memory, no code generation. Layers on it run the float32 kernels of
 * cpu_kernels.c; it is what `auto` falls back to when no GPU or OpenCL platform is present. */
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

static mora_status cpu_buffer_alloc(void *ctx, size_t bytes, void **buf) {
    (void)ctx;
    *buf = malloc(bytes ? bytes : 1);
    if (!*buf) return mora_fail(MORA_E_NO_MEMORY, "bytes=%zu: host allocation failed", bytes);
    return MORA_OK;
}

static mora_status cpu_buffer_free(void *ctx, void *buf) {
    (void)ctx;
    free(buf);
    return MORA_OK;
}

static mora_status cpu_buffer_write(void *ctx, void *buf, size_t offset, const void *src, size_t bytes) {
    (void)ctx;
    memcpy((char *)buf + offset, src, bytes);
    return MORA_OK;
}

static mora_status cpu_buffer_read(void *ctx, const void *buf, size_t offset, void *dst, size_t bytes) {
    (void)ctx;
    memcpy(dst, (const char *)buf + offset, bytes);
    return MORA_OK;
}

static mora_status cpu_buffer_zero(void *ctx, void *buf, size_t bytes) {
    (void)ctx;
    memset(buf, 0, bytes);
    return MORA_OK;
}

static mora_status cpu_buffer_copy(void *ctx, const void *src, size_t src_offset, void *dst, size_t dst_offset,
                                   size_t bytes) {
    (void)ctx;
    memcpy((char *)dst + dst_offset, (const char *)src + src_offset, bytes);
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
