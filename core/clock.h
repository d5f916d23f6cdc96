/* Internal: the project's one wall clock for timing (monotonic), in seconds and milliseconds.
 * Header-only. */
#ifndef MORA_CORE_CLOCK_H
#define MORA_CORE_CLOCK_H

#include <time.h>

static inline double mora_clock_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static inline double mora_clock_ms(void) { return mora_clock_seconds() * 1e3; }

#endif
