/* Internal: the project's one seeded generator, splitmix64 (Steele, Lea, Flood 2014): every test
 * input, tuner input and benchmark input is reproducible from its seed. Header-only. */
#ifndef MORA_CORE_RANDOM_H
#define MORA_CORE_RANDOM_H

#include <stdint.h>

/* The next 64 random bits; the state advances. */
static inline uint64_t mora_random_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1), 53 bits. */
static inline double mora_random_unit(uint64_t *state) { return (double)(mora_random_next(state) >> 11) * 0x1p-53; }

/* Uniform in [-1, 1). */
static inline double mora_random_signed(uint64_t *state) { return 2.0 * mora_random_unit(state) - 1.0; }

#endif
