/* Internal: the one hash of the library — FNV-1a, 64 bits — for program registry keys, kernels-cache
 * file names and binary checksums. */
#ifndef MORA_CORE_HASH_H
#define MORA_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a 64-bit hash of a byte string; `seed` is XORed into the offset basis (two seeds give two
 * independent hashes of the same text). */
uint64_t mora_hash64(const void *data, size_t length, uint64_t seed);

#endif
