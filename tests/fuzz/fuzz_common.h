/* Shared by the libFuzzer targets of tests/fuzz/ (see docs/fuzzing.md): reading typed values off
 * the fuzzer's bytes, a private scratch folder, and a log callback that keeps the library's
 * warnings off the fuzzer's output. A crash, a sanitizer report or a broken invariant (abort()
 * through FUZZ_ASSERT) is a finding. FUZZ_ASSERT rather than tests/check.h's CHECK: a fuzzer must
 * stop at the first broken invariant, with a signal, so that libFuzzer saves the input; CHECK counts
 * and goes on to a report at exit, which libFuzzer never reaches. */
#ifndef MORA_TESTS_FUZZ_COMMON_H
#define MORA_TESTS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <ftw.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "mora.h"

/* libFuzzer's entry points, which every target defines (declared here once for -Wmissing-prototypes). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test: abort() (a finding) with the expression when it breaks. */
#define FUZZ_ASSERT(cond)                                                                       \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "%s:%d: invariant broken: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, mora_last_error());                                                  \
            abort();                                                                            \
        }                                                                                       \
    } while (0)

/* Reading the input front to back; past its end every value is 0. */
typedef struct fuzz_input {
    const uint8_t *data;
    size_t size, at;
} fuzz_input;

static inline uint64_t fuzz_u64(fuzz_input *in, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= (uint64_t)(in->at < in->size ? in->data[in->at++] : 0) << (8 * i);
    return v;
}
static inline uint8_t fuzz_u8(fuzz_input *in) { return (uint8_t)fuzz_u64(in, 1); }
static inline int fuzz_int(fuzz_input *in) { return (int)(int32_t)(uint32_t)fuzz_u64(in, 4); }
static inline int64_t fuzz_i64(fuzz_input *in) { return (int64_t)fuzz_u64(in, 8); }

/* An int that is often one of the interesting ones (edges, small, powers of two). */
static inline int fuzz_param_value(fuzz_input *in, const int *declared, int declared_count) {
    static const int edges[] = {0, 1, 2, 3, 7, 8, 16, 32, 64, 128, 256, 512, -1, 1 << 27, 1 << 28,
                                (1 << 30) + 1, 2147483647, -2147483647 - 1};
    const uint8_t how = fuzz_u8(in);
    if (how < 96 && declared_count > 0) return declared[how % declared_count];
    if (how < 192) return edges[how % (sizeof edges / sizeof edges[0])];
    return fuzz_int(in);
}

/* A private folder under $TMPDIR (or /dev/shm, a RAM disk, or /tmp), made once per process and
 * removed at exit. */
static char fuzz_dir_[512];

static inline int fuzz_remove_one_(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void fuzz_remove_scratch_(void) {
    if (fuzz_dir_[0]) nftw(fuzz_dir_, fuzz_remove_one_, 16, FTW_DEPTH | FTW_PHYS);
}

static inline const char *fuzz_scratch_dir(void) {
    if (fuzz_dir_[0]) return fuzz_dir_;
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !tmp[0]) tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fuzz_dir_, sizeof fuzz_dir_, "%s/mora-fuzz-XXXXXX", tmp);
    if (!mkdtemp(fuzz_dir_)) {
        perror("mkdtemp");
        abort();
    }
    atexit(fuzz_remove_scratch_);
    return fuzz_dir_;
}

static inline void fuzz_quiet_log(mora_log_level level, const char *message, void *user) {
    (void)level;
    (void)message;
    (void)user;
}

#endif
