/* The core of the CUDA and HIP backends: mora_backend_i written once over a mora_module_driver
 * (see backend_module.h). Every function makes the context current around the driver calls it
 * makes, so the caller's current context (CUDA) or device (HIP) is left as it was. */
#include "backend_module.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define MODULE_MAX_ARGS 16

/* A loaded module and the image it was loaded from, kept for the kernels cache. */
typedef struct module_program {
    void *module;
    void *image;
    size_t image_size;
} module_program;

/* A function of a module and its entry name, for sentences. */
typedef struct module_kernel {
    void *function;
    char name[64];
} module_kernel;

static mora_status enter(const mora_module_ctx *c, int *saved) { return c->driver->make_current(c, saved); }

static void leave(const mora_module_ctx *c, int saved) { c->driver->restore(c, saved); }

static const char *name_of(const mora_module_ctx *c) { return c->driver->backend.name; }

/* Adds to the current sentence what the core knows of the failed call. */
static void append(const char *fmt, ...) MORA_PRINTF_LIKE(1, 2);
static void append(const char *fmt, ...) {
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    mora_error_append(text);
}

void mora_module_destroy(void *vctx) {
    mora_module_ctx *c = vctx;
    if (!c) return;
    int saved;
    if (c->own_stream && enter(c, &saved) == MORA_OK) {
        c->driver->stream_synchronize(c->own_stream);
        c->driver->stream_destroy(c->own_stream);
        leave(c, saved);
    }
    if (c->driver->close) c->driver->close(c);
    free(c);
}

mora_status mora_module_start(mora_module_ctx *c, void *queue, const mora_backend_i **iface, void **ctx) {
    int saved;
    mora_status st = enter(c, &saved);
    if (st == MORA_OK) {
        st = c->driver->stream_create(&c->own_stream);
        leave(c, saved);
    }
    if (st != MORA_OK) {
        c->own_stream = NULL;
        append(" (opening device %d)", c->ordinal);
        mora_module_destroy(c);
        return MORA_E_NO_BACKEND;
    }
    c->stream = c->own_stream;
    if (queue && (st = mora_module_set_stream(c, queue)) != MORA_OK) {
        mora_module_destroy(c);
        return st;
    }
    *iface = &c->driver->backend;
    *ctx = c;
    return MORA_OK;
}

/* ---- buffers ---- */

mora_status mora_module_buffer_alloc(void *vctx, size_t bytes, void **buf) {
    mora_module_ctx *c = vctx;
    int saved;
    MORA_TRY(enter(c, &saved));
    void *made = NULL;
    const mora_status st = c->driver->alloc(&made, bytes ? bytes : 1);
    leave(c, saved);
    if (st != MORA_OK) {
        append(" (bytes=%zu)", bytes);
        return st;
    }
    *buf = made;
    return MORA_OK;
}

mora_status mora_module_buffer_free(void *vctx, void *buf) {
    mora_module_ctx *c = vctx;
    int saved;
    MORA_TRY(enter(c, &saved));
    const mora_status st = c->driver->free(buf);
    leave(c, saved);
    return st;
}

/* A copy between host and device memory (write or read), finished before it returns. */
static mora_status transfer(mora_module_ctx *c, mora_status (*call)(void *, const void *, size_t, void *), void *dst,
                            const void *src, size_t bytes, const char *what) {
    if (bytes == 0) return MORA_OK;
    int saved;
    MORA_TRY(enter(c, &saved));
    mora_status st = call(dst, src, bytes, c->stream);
    if (st == MORA_OK && (st = c->driver->stream_synchronize(c->stream)) != MORA_OK)
        append(" after a %s of %zu bytes", what, bytes);
    leave(c, saved);
    return st;
}

mora_status mora_module_buffer_write(void *vctx, void *buf, size_t offset, const void *src, size_t bytes) {
    mora_module_ctx *c = vctx;
    return transfer(c, c->driver->write, (char *)buf + offset, src, bytes, "write");
}

mora_status mora_module_buffer_read(void *vctx, const void *buf, size_t offset, void *dst, size_t bytes) {
    mora_module_ctx *c = vctx;
    return transfer(c, c->driver->read, dst, (const char *)buf + offset, bytes, "read");
}

mora_status mora_module_buffer_size(void *vctx, const void *buf, size_t *bytes) {
    mora_module_ctx *c = vctx;
    int saved;
    MORA_TRY(enter(c, &saved));
    uintptr_t base = 0;
    size_t size = 0;
    const mora_status st = c->driver->address_range(&base, &size, buf);
    leave(c, saved);
    if (st != MORA_OK) return st;
    *bytes = size - (size_t)((uintptr_t)buf - base); /* a pointer into an allocation has the rest of it */
    return MORA_OK;
}

mora_status mora_module_buffer_zero(void *vctx, void *buf, size_t bytes) {
    mora_module_ctx *c = vctx;
    if (bytes == 0) return MORA_OK;
    int saved;
    MORA_TRY(enter(c, &saved));
    const mora_status st = c->driver->zero(buf, bytes, c->stream);
    leave(c, saved);
    if (st != MORA_OK) append(" (bytes=%zu)", bytes);
    return st;
}

mora_status mora_module_buffer_copy(void *vctx, const void *src, size_t src_offset, void *dst, size_t dst_offset,
                                    size_t bytes) {
    mora_module_ctx *c = vctx;
    if (bytes == 0) return MORA_OK;
    int saved;
    MORA_TRY(enter(c, &saved));
    const mora_status st = c->driver->copy((char *)dst + dst_offset, (const char *)src + src_offset, bytes, c->stream);
    leave(c, saved);
    if (st != MORA_OK) append(" (bytes=%zu)", bytes);
    return st;
}

/* ---- programs ---- */

/* A program of a module loaded from a copy of `image`, which it keeps. */
static mora_status program_load(mora_module_ctx *c, const void *image, size_t size, void **program) {
    module_program *p = calloc(1, sizeof *p);
    if (!p || !(p->image = malloc(size))) {
        free(p);
        return mora_fail(MORA_E_NO_MEMORY, "%s: out of host memory for a %zu-byte program", name_of(c), size);
    }
    memcpy(p->image, image, size);
    p->image_size = size;
    int saved;
    mora_status st = enter(c, &saved);
    if (st == MORA_OK) {
        st = c->driver->module_load(&p->module, p->image);
        leave(c, saved);
    }
    if (st != MORA_OK) {
        free(p->image);
        free(p);
        return st;
    }
    *program = p;
    return MORA_OK;
}

/* The current sentence without its leading "<name>: ", to be quoted in another. */
static const char *quoted(const mora_module_ctx *c) {
    const char *sentence = mora_last_error();
    const size_t n = strlen(name_of(c));
    return strncmp(sentence, name_of(c), n) == 0 && strncmp(sentence + n, ": ", 2) == 0 ? sentence + n + 2 : sentence;
}

mora_status mora_module_program_build(void *vctx, const char *source, void **program) {
    mora_module_ctx *c = vctx;
    mora_rtc_output out;
    MORA_TRY(c->driver->compile(source, c->target, NULL, 0, &out));
    /* The binary first; the PTX (CUDA: compiled by the driver) when there is none or the driver refuses it. */
    mora_status st = out.binary ? program_load(c, out.binary, out.binary_bytes, program) : MORA_E_COMPILE;
    char tried[2048] = "";
    if (st != MORA_OK) {
        snprintf(tried, sizeof tried, "%s: %s", c->driver->binary_kind, out.binary ? quoted(c) : "none produced");
        if (out.ptx && (st = program_load(c, out.ptx, strlen(out.ptx) + 1, program)) != MORA_OK) {
            const size_t used = strlen(tried);
            snprintf(tried + used, sizeof tried - used, "; PTX: %s", quoted(c));
        }
        if (st == MORA_OK) mora_error_clear(); /* a refused binary that the PTX stood in for is no failure */
    }
    mora_rtc_output_free(&out);
    if (st != MORA_OK)
        return mora_fail(st == MORA_E_NO_MEMORY ? st : MORA_E_COMPILE,
                         "%s: the driver (%s) could not load the code %s compiled for %s: %s", name_of(c),
                         c->driver_version, c->compiler, c->target, tried);
    return MORA_OK;
}

void mora_module_program_free(void *vctx, void *program) {
    mora_module_ctx *c = vctx;
    module_program *p = program;
    if (!p) return;
    int saved;
    if (enter(c, &saved) == MORA_OK) {
        c->driver->module_unload(p->module);
        leave(c, saved);
    }
    free(p->image);
    free(p);
}

mora_status mora_module_program_binary(void *vctx, void *program, void **data, size_t *size) {
    const module_program *p = program;
    if (!(*data = malloc(p->image_size)))
        return mora_fail(MORA_E_NO_MEMORY, "%s: out of host memory for a %zu-byte binary", name_of(vctx),
                         p->image_size);
    memcpy(*data, p->image, p->image_size);
    *size = p->image_size;
    return MORA_OK;
}

/* A program from an image program_binary gave (CUDA: a CUBIN, or PTX the driver compiles). */
mora_status mora_module_program_from_binary(void *vctx, const void *data, size_t size, void **program) {
    mora_module_ctx *c = vctx;
    if (size == 0) return mora_fail(MORA_E_COMPILE, "%s: empty binary", name_of(c));
    const mora_status st = program_load(c, data, size, program);
    if (st == MORA_OK || st == MORA_E_NO_MEMORY) return st;
    append(" for a cached binary of %zu bytes", size);
    return MORA_E_COMPILE;
}

/* ---- kernels ---- */

mora_status mora_module_kernel_create(void *vctx, void *program, const char *entry, void **kernel) {
    mora_module_ctx *c = vctx;
    const module_program *p = program;
    if (strlen(entry) >= sizeof((module_kernel *)0)->name)
        return mora_fail(MORA_E_ARG, "%s: entry \"%s\": name too long", name_of(c), entry);
    module_kernel *k = calloc(1, sizeof *k);
    if (!k) return mora_fail(MORA_E_NO_MEMORY, "%s: out of host memory", name_of(c));
    int saved;
    mora_status st = enter(c, &saved);
    if (st == MORA_OK) {
        st = c->driver->module_function(&k->function, p->module, entry);
        leave(c, saved);
        if (st != MORA_OK) append(" for entry %s", entry);
    }
    if (st != MORA_OK) {
        free(k);
        return st;
    }
    strcpy(k->name, entry);
    *kernel = k;
    return MORA_OK;
}

void mora_module_kernel_free(void *vctx, void *kernel) {
    (void)vctx;
    free(kernel);
}

mora_status mora_module_launch(void *vctx, void *kernel, const size_t groups[3], const size_t local[3],
                               const mora_kernel_arg *args, int arg_count) {
    mora_module_ctx *c = vctx;
    const module_kernel *k = kernel;
    const char *entry = k->name;
    if (arg_count < 0 || arg_count > MODULE_MAX_ARGS)
        return mora_fail(MORA_E_ARG, "arg_count=%d: must be 0..%d", arg_count, MODULE_MAX_ARGS);
    unsigned grid[3], block[3];
    for (int d = 0; d < 3; ++d) {
        if (groups[d] == 0 || local[d] == 0 || groups[d] > UINT_MAX || local[d] > UINT_MAX)
            return mora_fail(MORA_E_LAUNCH, "%s: %s: grid %zux%zux%zu of blocks %zux%zux%zu: dimension %d out of range",
                             name_of(c), entry, groups[0], groups[1], groups[2], local[0], local[1], local[2], d);
        grid[d] = (unsigned)groups[d];
        block[d] = (unsigned)local[d];
    }
    /* The driver reads each argument through a pointer to a value of the parameter's type. */
    union {
        void *ptr;
        long long i64;
        float f32;
    } values[MODULE_MAX_ARGS];
    void *params[MODULE_MAX_ARGS + 1];
    for (int i = 0; i < arg_count; ++i) {
        switch (args[i].kind) {
        case MORA_ARG_BUFFER:
            values[i].ptr = (void *)(uintptr_t)args[i].value.buffer;
            params[i] = &values[i].ptr;
            break;
        case MORA_ARG_I64:
            values[i].i64 = (long long)args[i].value.i64;
            params[i] = &values[i].i64;
            break;
        case MORA_ARG_F32:
            values[i].f32 = args[i].value.f32;
            params[i] = &values[i].f32;
            break;
        default:
            return mora_fail(MORA_E_ARG, "%s: %s: argument %d has unknown kind %d", name_of(c), entry, i,
                             (int)args[i].kind);
        }
    }
    params[arg_count] = NULL;
    int saved;
    MORA_TRY(enter(c, &saved));
    const mora_status st = c->driver->launch(k->function, grid, block, c->stream, params);
    leave(c, saved);
    if (st == MORA_OK) return MORA_OK;
    append(" launching %s (grid %zux%zux%zu, block %zux%zux%zu)", entry, groups[0], groups[1], groups[2], local[0],
           local[1], local[2]);
    return MORA_E_LAUNCH;
}

/* ---- streams and events ---- */

mora_status mora_module_synchronize(void *vctx) {
    mora_module_ctx *c = vctx;
    int saved;
    MORA_TRY(enter(c, &saved));
    const mora_status st = c->driver->stream_synchronize(c->stream);
    leave(c, saved);
    return st;
}

mora_status mora_module_set_stream(void *vctx, void *native) {
    mora_module_ctx *c = vctx;
    if (native && c->driver->check_stream) MORA_TRY(c->driver->check_stream(c, native));
    c->stream = native ? native : c->own_stream;
    return MORA_OK;
}

mora_status mora_module_event_record(void *vctx, void **event) {
    mora_module_ctx *c = vctx;
    int saved;
    MORA_TRY(enter(c, &saved));
    void *ev = NULL;
    mora_status st = c->driver->event_create(&ev);
    if (st == MORA_OK && (st = c->driver->event_record(ev, c->stream)) != MORA_OK) c->driver->event_destroy(ev);
    leave(c, saved);
    if (st == MORA_OK) *event = ev;
    return st;
}

mora_status mora_module_event_elapsed_ms(void *vctx, void *start, void *end, double *ms) {
    mora_module_ctx *c = vctx;
    int saved;
    MORA_TRY(enter(c, &saved));
    float elapsed = 0.0f;
    mora_status st = c->driver->event_synchronize(end);
    if (st == MORA_OK) st = c->driver->event_elapsed(&elapsed, start, end);
    leave(c, saved);
    if (st == MORA_OK) *ms = (double)elapsed;
    return st;
}

void mora_module_event_free(void *vctx, void *event) {
    mora_module_ctx *c = vctx;
    int saved;
    if (!event || enter(c, &saved) != MORA_OK) return;
    c->driver->event_destroy(event);
    leave(c, saved);
}
