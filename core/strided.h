/* Internal: whether two strided byte ranges share a byte — the alias check of the hot calls (mora.h:
 * an output must not overlap another argument). A matrix argument is `rows` rows of `row_bytes`
 * bytes whose starts are `stride_bytes` apart, from `start`, in one allocation. */
#ifndef MORA_CORE_STRIDED_H
#define MORA_CORE_STRIDED_H

#include <stdint.h>

typedef struct mora_strided {
    uint64_t start;        /* byte offset of row 0 in its allocation (an address for address buffers) */
    uint64_t rows;         /* >= 1 */
    uint64_t row_bytes;    /* >= 1 */
    uint64_t stride_bytes; /* >= row_bytes when rows > 1 */
} mora_strided;

/* 1 when some byte belongs to both. Exact when both have the same stride, or one is a single row no
 * wider than the other's stride (rows of two matrices that interleave without touching, as column
 * blocks of one wider matrix do, are apart); otherwise it compares the whole spans, which may call
 * apart ranges overlapping (never the reverse). */
int mora_strided_overlap(const mora_strided *a, const mora_strided *b);

#endif
