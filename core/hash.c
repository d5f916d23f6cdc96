/* FNV-1a, 64 bits (see hash.h). */
#include "hash.h"

uint64_t mora_hash64(const void *data, size_t length, uint64_t seed) {
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < length; ++i) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
