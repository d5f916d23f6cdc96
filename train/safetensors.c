/* safetensors reading and writing (see safetensors.h). The header's JSON goes through jansson. */
#define _POSIX_C_SOURCE 200809L
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"

size_t mora_st_dtype_size(const char *dtype) {
    static const struct {
        const char *name;
        size_t size;
    } known[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
                 {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"U16", 2}, {"U32", 4}, {"U64", 8}};
    for (size_t i = 0; i < sizeof known / sizeof *known; ++i)
        if (strcmp(dtype, known[i].name) == 0) return known[i].size;
    return 0;
}

void mora_st_file_free(mora_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->count; ++i) free(f->tensors[i].name);
    for (int i = 0; i < f->meta_count; ++i) free(f->meta_keys[i]), free(f->meta_values[i]);
    free(f->tensors), free(f->meta_keys), free(f->meta_values);
    memset(f, 0, sizeof *f);
}

static int compare_begin(const void *a, const void *b) {
    const mora_st_tensor *x = a, *y = b;
    return (x->data > y->data) - (x->data < y->data);
}

mora_status mora_st_parse(const void *bytes, size_t size, const char *what, mora_st_file *out) {
    memset(out, 0, sizeof *out);
    const unsigned char *p = bytes;
    if (size < 8) return mora_fail(MORA_E_IO, "%s: %zu bytes: too short for a safetensors header length", what, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = n << 8 | p[i];
    if (n > MORA_ST_MAX_HEADER || n > size - 8)
        return mora_fail(MORA_E_IO, "%s: header length %llu exceeds the file's %zu bytes (or the 100 MiB limit)", what,
                         (unsigned long long)n, size);
    const unsigned char *data = p + 8 + n;
    const uint64_t data_size = size - 8 - n;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)p + 8, (size_t)n, 0, &jerr);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return mora_fail(MORA_E_IO, "%s: the header is not a JSON object (%s)", what, root ? "another JSON value" : jerr.text);
    }
    mora_status st = MORA_OK;
    const size_t entries = json_object_size(root);
    out->tensors = calloc(entries ? entries : 1, sizeof *out->tensors);
    if (!out->tensors) st = mora_fail(MORA_E_NO_MEMORY, "%s: out of host memory", what);
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (st != MORA_OK) break;
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(value)) {
                st = mora_fail(MORA_E_IO, "%s: __metadata__ is not an object", what);
                break;
            }
            const size_t m = json_object_size(value);
            out->meta_keys = calloc(m ? m : 1, sizeof(char *));
            out->meta_values = calloc(m ? m : 1, sizeof(char *));
            if (!out->meta_keys || !out->meta_values) {
                st = mora_fail(MORA_E_NO_MEMORY, "%s: out of host memory", what);
                break;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(value, mk, mv) {
                if (!json_is_string(mv)) {
                    st = mora_fail(MORA_E_IO, "%s: __metadata__[\"%.100s\"] is not a string", what, mk);
                    break;
                }
                out->meta_keys[out->meta_count] = strdup(mk);
                out->meta_values[out->meta_count] = strdup(json_string_value(mv));
                if (!out->meta_keys[out->meta_count] || !out->meta_values[out->meta_count]) {
                    st = mora_fail(MORA_E_NO_MEMORY, "%s: out of host memory", what);
                    ++out->meta_count;
                    break;
                }
                ++out->meta_count;
            }
            continue;
        }
        mora_st_tensor *t = &out->tensors[out->count];
        const json_t *dtype = json_object_get(value, "dtype"), *shape = json_object_get(value, "shape"),
                     *offsets = json_object_get(value, "data_offsets");
        if (!json_is_object(value) || !json_is_string(dtype) || !json_is_array(shape) || !json_is_array(offsets) ||
            json_array_size(offsets) != 2) {
            st = mora_fail(MORA_E_IO, "%s: tensor \"%.200s\": needs \"dtype\" (string), \"shape\" (array) and "
                           "\"data_offsets\" ([begin, end])", what, key);
            break;
        }
        if (!(t->name = strdup(key))) {
            st = mora_fail(MORA_E_NO_MEMORY, "%s: out of host memory", what);
            break;
        }
        ++out->count;
        const size_t es = mora_st_dtype_size(json_string_value(dtype));
        if (es == 0 || strlen(json_string_value(dtype)) >= sizeof t->dtype) {
            st = mora_fail(MORA_E_IO, "%s: tensor \"%.200s\": unknown dtype \"%.20s\"", what, key, json_string_value(dtype));
            break;
        }
        strcpy(t->dtype, json_string_value(dtype));
        t->ndim = (int)json_array_size(shape);
        if (t->ndim > MORA_ST_MAX_DIMS) {
            st = mora_fail(MORA_E_IO, "%s: tensor \"%.200s\": %d dimensions, at most %d", what, key, t->ndim, MORA_ST_MAX_DIMS);
            break;
        }
        uint64_t elements = 1;
        for (int d = 0; d < t->ndim && st == MORA_OK; ++d) {
            const json_t *dim = json_array_get(shape, (size_t)d);
            if (!json_is_integer(dim) || json_integer_value(dim) < 0 ||
                __builtin_mul_overflow(elements, (uint64_t)json_integer_value(dim), &elements))
                st = mora_fail(MORA_E_IO, "%s: tensor \"%.200s\": shape dimension %d is not a size", what, key, d);
            else
                t->shape[d] = (int64_t)json_integer_value(dim);
        }
        if (st != MORA_OK) break;
        const json_t *b = json_array_get(offsets, 0), *e = json_array_get(offsets, 1);
        uint64_t need = 0;
        if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
            json_integer_value(e) < json_integer_value(b) || (uint64_t)json_integer_value(e) > data_size) {
            st = mora_fail(MORA_E_IO, "%s: tensor \"%.200s\": data_offsets outside the %llu bytes of data", what, key,
                           (unsigned long long)data_size);
            break;
        }
        t->data = data + json_integer_value(b);
        t->bytes = (uint64_t)(json_integer_value(e) - json_integer_value(b));
        if (__builtin_mul_overflow(elements, (uint64_t)es, &need) || need != t->bytes) {
            st = mora_fail(MORA_E_IO, "%s: tensor \"%.200s\": %llu bytes for a shape of %llu elements of %s", what, key,
                           (unsigned long long)t->bytes, (unsigned long long)elements, t->dtype);
            break;
        }
    }
    json_decref(root);
    if (st == MORA_OK && out->count > 1) { /* no two tensors may share bytes */
        mora_st_tensor *sorted = malloc((size_t)out->count * sizeof *sorted);
        if (!sorted) st = mora_fail(MORA_E_NO_MEMORY, "%s: out of host memory", what);
        else {
            memcpy(sorted, out->tensors, (size_t)out->count * sizeof *sorted);
            qsort(sorted, (size_t)out->count, sizeof *sorted, compare_begin);
            for (int i = 1; i < out->count && st == MORA_OK; ++i)
                if (sorted[i].data < sorted[i - 1].data + sorted[i - 1].bytes)
                    st = mora_fail(MORA_E_IO, "%s: tensors \"%.100s\" and \"%.100s\" overlap", what, sorted[i - 1].name,
                                   sorted[i].name);
            free(sorted);
        }
    }
    if (st != MORA_OK) mora_st_file_free(out);
    return st;
}

const mora_st_tensor *mora_st_find(const mora_st_file *f, const char *name) {
    for (int i = 0; i < f->count; ++i)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *mora_st_meta(const mora_st_file *f, const char *key) {
    for (int i = 0; i < f->meta_count; ++i)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

mora_status mora_read_file(const char *path, size_t max_bytes, void **data, size_t *size) {
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* a FIFO must not block us */
    if (fd < 0) return mora_fail(errno == ENOENT ? MORA_E_NOT_FOUND : MORA_E_IO, "%s: cannot be opened: %s", path, strerror(errno));
    struct stat info;
    if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
        close(fd);
        return mora_fail(MORA_E_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)info.st_size > max_bytes) {
        close(fd);
        return mora_fail(MORA_E_IO, "%s: %lld bytes, more than the %zu allowed", path, (long long)info.st_size, max_bytes);
    }
    const size_t length = (size_t)info.st_size;
    unsigned char *buffer = malloc(length + 1); /* NUL-terminated too, so a text file is a string */
    if (!buffer) {
        close(fd);
        return mora_fail(MORA_E_NO_MEMORY, "%s: out of host memory for %zu bytes", path, length);
    }
    size_t done = 0;
    while (done < length) {
        const ssize_t got = read(fd, buffer + done, length - done);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            free(buffer);
            close(fd);
            return mora_fail(MORA_E_IO, "%s: read failed after %zu of %zu bytes", path, done, length);
        }
        done += (size_t)got;
    }
    close(fd);
    buffer[length] = '\0';
    *data = buffer;
    *size = length;
    return MORA_OK;
}

mora_status mora_write_file_atomic(const char *path, const void *data, size_t size) {
    const size_t length = strlen(path);
    char *temp = malloc(length + 32);
    char *folder = strdup(path);
    if (!temp || !folder) {
        free(temp), free(folder);
        return mora_fail(MORA_E_NO_MEMORY, "%s: out of host memory", path);
    }
    snprintf(temp, length + 32, "%s.tmp.%ld", path, (long)getpid());
    mora_status st = MORA_OK;
    const int fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) st = mora_fail(MORA_E_IO, "%s: cannot be created: %s", temp, strerror(errno));
    size_t done = 0;
    while (st == MORA_OK && done < size) {
        const ssize_t wrote = write(fd, (const char *)data + done, size - done);
        if (wrote < 0 && errno == EINTR) continue;
        if (wrote <= 0) st = mora_fail(MORA_E_IO, "%s: write failed: %s", temp, strerror(errno));
        else done += (size_t)wrote;
    }
    if (st == MORA_OK && fsync(fd) != 0) st = mora_fail(MORA_E_IO, "%s: fsync failed: %s", temp, strerror(errno));
    if (fd >= 0) close(fd);
    if (st == MORA_OK && rename(temp, path) != 0) st = mora_fail(MORA_E_IO, "%s: rename failed: %s", path, strerror(errno));
    if (st != MORA_OK) unlink(temp);
    if (st == MORA_OK) { /* the rename itself is durable once the folder is synced */
        const int dir = open(dirname(folder), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir >= 0) fsync(dir), close(dir);
    }
    free(temp), free(folder);
    return st;
}

mora_status mora_st_write(const char *path, const mora_st_out *tensors, int count, const char *const *meta_keys,
                          const char *const *meta_values, int meta_count) {
    json_t *root = json_object();
    uint64_t offset = 0;
    int bad = !root;
    for (int i = 0; i < count && !bad; ++i) {
        uint64_t elements = 1;
        json_t *shape = json_array();
        for (int d = 0; d < tensors[i].ndim; ++d) {
            elements *= (uint64_t)tensors[i].shape[d];
            bad |= json_array_append_new(shape, json_integer(tensors[i].shape[d]));
        }
        json_t *entry = json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape, "data_offsets",
                                  (json_int_t)offset, (json_int_t)(offset + elements * 4));
        bad |= !entry || json_object_set_new(root, tensors[i].name, entry);
        offset += elements * 4;
    }
    if (meta_count > 0 && !bad) {
        json_t *meta = json_object();
        for (int i = 0; i < meta_count && meta; ++i) bad |= json_object_set_new(meta, meta_keys[i], json_string(meta_values[i]));
        bad |= !meta || json_object_set_new(root, "__metadata__", meta);
    }
    char *header = bad ? NULL : json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!header) return mora_fail(MORA_E_NO_MEMORY, "%s: the safetensors header could not be made", path);
    const size_t header_length = strlen(header), padded = (header_length + 7) / 8 * 8;
    const size_t total = 8 + padded + (size_t)offset;
    unsigned char *file = malloc(total);
    if (!file) {
        free(header);
        return mora_fail(MORA_E_NO_MEMORY, "%s: out of host memory for %zu bytes", path, total);
    }
    for (int i = 0; i < 8; ++i) file[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(file + 8, header, header_length);
    memset(file + 8 + header_length, ' ', padded - header_length);
    free(header);
    unsigned char *at = file + 8 + padded;
    for (int i = 0; i < count; ++i) { /* float32 little-endian: the host's layout on every target we build for */
        uint64_t elements = 1;
        for (int d = 0; d < tensors[i].ndim; ++d) elements *= (uint64_t)tensors[i].shape[d];
        memcpy(at, tensors[i].data, (size_t)elements * 4);
        at += elements * 4;
    }
    const mora_status st = mora_write_file_atomic(path, file, total);
    free(file);
    return st;
}
