/* The overlap of two strided byte ranges (strided.h). */
#include "strided.h"

/* First byte past the last row. */
static uint64_t span_end(const mora_strided *r) { return r->start + (r->rows - 1) * r->stride_bytes + r->row_bytes; }

static int spans_overlap(const mora_strided *a, const mora_strided *b) {
    return a->start < span_end(b) && b->start < span_end(a);
}

/* Same stride L, rows no wider than L, a starting at or before b. Let d = b.start - a.start = q·L + r
 * with 0 <= r < L: b's row j covers bytes [r, r + wb) of a's row grid line j + q, and, when
 * r + wb > L, also [0, r + wb - L) of line j + q + 1. a's row i covers [0, wa) of line i. So they
 * share a byte when some line holds both rows: line j + q with r < wa, or line j + q + 1 (its start
 * at 0 is always inside a's row) — for j in [0, nb) and the line in [0, na). */
static int same_stride_overlap(const mora_strided *a, const mora_strided *b) {
    const uint64_t L = a->stride_bytes, d = b->start - a->start, q = d / L, r = d % L;
    const uint64_t na = a->rows, wa = a->row_bytes, wb = b->row_bytes;
    /* b's rows lie on lines q .. q + nb - 1 (spilling onto q + 1 .. q + nb): one is below na exactly
     * when the first is */
    if (r < wa && q < na) return 1;
    if (r + wb > L && q + 1 < na) return 1;
    return 0;
}

int mora_strided_overlap(const mora_strided *a, const mora_strided *b) {
    if (!spans_overlap(a, b)) return 0;
    if (a->rows == 1 && b->rows == 1) return 1; /* two intervals: their spans */
    /* a single row takes the other's stride (its rows-to-come do not exist) */
    mora_strided x = *a, y = *b;
    if (x.rows == 1) x.stride_bytes = y.stride_bytes;
    if (y.rows == 1) y.stride_bytes = x.stride_bytes;
    if (x.stride_bytes == y.stride_bytes && x.row_bytes <= x.stride_bytes && y.row_bytes <= y.stride_bytes)
        return x.start <= y.start ? same_stride_overlap(&x, &y) : same_stride_overlap(&y, &x);
    return 1; /* the spans overlap: different strides are not worth an exact answer here */
}
