/* Internal: how each operator decomposes into a compression family and a decompression family,
 * and the derived sizes every implementation (reference, cpu backend, code generator) uses.
 *
 *   op                comp      decomp       blocks
 *   truncate          TRUNC     TRUNC        1
 *   share             SHARE     SHARE        1
 *   group             GROUP     GROUP        1
 *   group-tile        GROUP     SHARE        1
 *   share-interleave  SHARE     GROUP        1
 *   reshape           RESHAPE   RESHAPE      B = ceil(d_in / r̂)
 *   rope              ROPE      RESHAPE      B
 */
#ifndef MORA_CORE_SHAPE_H
#define MORA_CORE_SHAPE_H

#include "mora.h"

typedef enum mora_comp_family {
    MORA_COMP_TRUNC = 0,   /* c[i] = x[i], i < r̂ */
    MORA_COMP_SHARE = 1,   /* c[i] = Σ over padded positions q ≡ i (mod r̂) of x[q mod d_in] */
    MORA_COMP_GROUP = 2,   /* c[g] = sum of contiguous run g of x */
    MORA_COMP_RESHAPE = 3, /* c_t[i] = x[(t·r̂ + i) mod d_in] */
    MORA_COMP_ROPE = 4     /* c_t = R_t · (block t of the wrapped input) */
} mora_comp_family;

typedef enum mora_decomp_family {
    MORA_DECOMP_TRUNC = 0,  /* y[j] = h[j] for j < r̂, 0 after */
    MORA_DECOMP_SHARE = 1,  /* y[j] = h[j mod r̂] */
    MORA_DECOMP_GROUP = 2,  /* y[j] = h[run of j] */
    MORA_DECOMP_RESHAPE = 3 /* y[j] = h_flat[j mod (B·r̂)] */
} mora_decomp_family;

mora_comp_family mora_op_comp_family(mora_op op);
mora_decomp_family mora_op_decomp_family(mora_op op);

/* Sizes derived from a checked shape. */
typedef struct mora_geometry {
    int64_t wrap_blocks; /* B = ceil(d_in / r̂): blocks of the wrapped (padded) input */
    int64_t padded;      /* B·r̂: length of the wrapped input x_pad */
    int64_t blocks;      /* blocks of h per token: B for reshape/rope, else 1 */
    int64_t blocks_read; /* the blocks decomp reads: where d_out < B·r̂ (reshape/rope) the blocks from
                          * ceil(d_out / r̂) on are never read, so the kernels skip them */
    int64_t half;        /* r̂ / 2 (rope's rotation pairs j and j + half) */
} mora_geometry;

mora_geometry mora_shape_geometry(const mora_shape *s);
/* 1 if two shapes are the same (field by field: the struct has padding, so no memcmp). */
int mora_shape_same(const mora_shape *a, const mora_shape *b);

/* Contiguous runs of `[0, length)` split into `runs` parts: the first length % runs runs are one
 * longer. Used by the group operators (needs runs <= length). */
int64_t mora_run_start(int64_t length, int64_t runs, int64_t g);
int64_t mora_run_of(int64_t length, int64_t runs, int64_t position);

/* RoPE angle of block t, pair i: θ = t / 10000^(2i/r̂). */
double mora_rope_angle(int64_t rhat, int64_t t, int64_t i);

#endif
