/* Internal: the safetensors file format (as Hugging Face's safetensors library writes it) — reading
 * from memory with every field checked, and writing a file atomically.
 *
 * Layout: u64 little-endian N; N bytes of JSON header {name: {"dtype": "F32", "shape": [..],
 * "data_offsets": [begin, end]}, "__metadata__": {string: string}}, padded with spaces to a multiple
 * of 8; then the data, offsets relative to its start, row-major, no gaps or overlaps. */
#ifndef MORA_TRAIN_SAFETENSORS_H
#define MORA_TRAIN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "mora.h"

#define MORA_ST_MAX_DIMS 8
#define MORA_ST_MAX_HEADER ((uint64_t)100 << 20) /* the safetensors library's own limit */

typedef struct mora_st_tensor {
    char *name;
    char dtype[8];  /* "F32", "F16", "BF16", ... */
    int ndim;
    int64_t shape[MORA_ST_MAX_DIMS];
    const unsigned char *data; /* into the parsed bytes */
    uint64_t bytes;
} mora_st_tensor;

typedef struct mora_st_file {
    mora_st_tensor *tensors;
    int count;
    char **meta_keys, **meta_values; /* __metadata__ */
    int meta_count;
} mora_st_file;

/* Parses a whole file's bytes (kept by the caller while the result is used). Checks: the header
 * length against the size, the JSON, each tensor's dtype (known), shape (non-negative, product
 * fits), offsets (inside the data, end - begin = the shape's bytes), no two tensors overlapping,
 * metadata values strings. MORA_E_IO with a sentence naming `what` (the file), the tensor and the
 * problem. */
mora_status mora_st_parse(const void *bytes, size_t size, const char *what, mora_st_file *out);
void mora_st_file_free(mora_st_file *f);
const mora_st_tensor *mora_st_find(const mora_st_file *f, const char *name);
const char *mora_st_meta(const mora_st_file *f, const char *key);
/* Bytes per element of a safetensors dtype name, 0 if unknown. */
size_t mora_st_dtype_size(const char *dtype);

/* A tensor to write: float32 data of the given shape. */
typedef struct mora_st_out {
    const char *name;
    int ndim;
    int64_t shape[MORA_ST_MAX_DIMS];
    const float *data;
} mora_st_out;
/* Writes `path` atomically: a temporary file in the same folder, fsync, rename. */
mora_status mora_st_write(const char *path, const mora_st_out *tensors, int count, const char *const *meta_keys,
                          const char *const *meta_values, int meta_count);

/* Reads a whole regular file (FIFOs and devices refused, at most max_bytes); *data malloc'd, with a
 * NUL after the *size bytes. */
mora_status mora_read_file(const char *path, size_t max_bytes, void **data, size_t *size);
/* Writes bytes to `path` atomically (temporary file, fsync, rename, fsync of the folder). */
mora_status mora_write_file_atomic(const char *path, const void *data, size_t size);

#endif
