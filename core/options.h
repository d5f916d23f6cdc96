/* Internal: reading the caller's options structs, which begin with their own size (mora.h,
 * "Options structs begin with their own size"). */
#ifndef MORA_CORE_OPTIONS_H
#define MORA_CORE_OPTIONS_H

#include <string.h>

#include "error.h"

/* Copies the caller's `given` struct (its first member: size_t struct_size) over *out, which holds the
 * defaults in this library's layout of `current` bytes. Sizes from `oldest` (the first layout) to
 * `current` are the layouts this library knows: it takes the caller's first struct_size bytes and
 * leaves the members after them at their defaults. Any other size is MORA_E_ARG naming the argument
 * `name` (of struct `type`), the size and the expected one, and *out is unchanged. given == NULL: the defaults. */
static inline mora_status mora_options_take(void *out, size_t current, const void *given, size_t oldest,
                                            const char *name, const char *type) {
    if (!given) return MORA_OK;
    size_t size;
    memcpy(&size, given, sizeof size);
    if (size < oldest || size > current)
        return mora_fail(MORA_E_ARG,
                         "%s->struct_size=%zu: must be sizeof(%s) = %zu%s (set it, or start from the _INIT macro; a "
                         "size above it comes from a newer mora.h than this library)",
                         name, size, type, current, oldest < current ? " or an older layout's size" : "");
    memcpy(out, given, size);
    return MORA_OK;
}

#endif
