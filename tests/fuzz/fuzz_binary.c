/* libFuzzer target: the kernels cache's binary loader (kernels-cache/cache.c).
 *   first byte even: the rest is the content of a binary entry file, loaded under a fixed key;
 *   first byte odd:  the rest is a payload, stored and loaded back (a round trip), then the file is
 *                    cut or has one byte flipped at a position taken from the input, and loaded.
 * Invariants: a load gives MORA_OK or MORA_E_NOT_FOUND; a raw file loads only if it is exactly
 * header + key + length + FNV-1a checksum + payload; a round trip gives the payload back; a cut or
 * flipped file never loads as anything but the original payload (a flip that hits nothing the
 * checksum covers cannot exist: every byte is checked). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700

#include <sys/stat.h>

#include "cache.h"
#include "hash.h" /* mora_hash64: file names and checksums */
#include "fuzz_common.h"

static mora_cache *cache;
static const char *const key = "v1|backend=opencl|program=fuzz";
static char bin_path[1024];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    mora_set_log_callback(fuzz_quiet_log, NULL);
    if (mora_cache_open(fuzz_scratch_dir(), &cache) != MORA_OK) abort();
    if (mora_cache_binary_store(cache, key, "x", 1) != MORA_OK) abort(); /* creates the folders */
    snprintf(bin_path, sizeof bin_path, "%s/binaries/%016llx.bin", fuzz_scratch_dir(),
             (unsigned long long)mora_hash64(key, strlen(key), 0));
    return 0;
}

static void write_file(const uint8_t *data, size_t size) {
    FILE *f = fopen(bin_path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
}

static unsigned char *read_file(size_t *size) {
    FILE *f = fopen(bin_path, "rb");
    if (!f) abort();
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(*size + 1);
    if (!p || fread(p, 1, *size, f) != *size) abort();
    fclose(f);
    return p;
}

/* Loads; checks the invariants; 1 when it loaded (then *got, *got_size are set; the caller frees). */
static int load(void **got, size_t *got_size) {
    *got = NULL;
    *got_size = 0;
    const mora_status s = mora_cache_binary_load(cache, key, got, got_size);
    FUZZ_ASSERT(s == MORA_OK || s == MORA_E_NOT_FOUND);
    return s == MORA_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    void *got;
    size_t got_size;
    if ((data[0] & 1) == 0) {
        write_file(data + 1, size - 1);
        if (load(&got, &got_size)) {
            const size_t kl = strlen(key);
            FUZZ_ASSERT(size - 1 == 32 + kl + got_size);
            FUZZ_ASSERT(memcmp(data + 1 + 32 + kl, got, got_size) == 0);
            free(got);
        }
    } else {
        const size_t payload = size < 3 ? 0 : size - 3;
        FUZZ_ASSERT(mora_cache_binary_store(cache, key, data + 3, payload) == MORA_OK);
        FUZZ_ASSERT(load(&got, &got_size) && got_size == payload && memcmp(got, data + 3, payload) == 0);
        free(got);
        /* damage it: cut at, or flip one bit of, the byte at a position taken from the input */
        FUZZ_ASSERT(mora_cache_binary_store(cache, key, data + 3, payload) == MORA_OK);
        size_t n;
        unsigned char *file = read_file(&n);
        const size_t at = size >= 3 ? (size_t)(data[1] | data[2] << 8) % n : 0;
        if (data[0] & 2) write_file(file, at);
        else {
            file[at] ^= (unsigned char)(1u << (data[0] >> 5));
            write_file(file, n);
        }
        FUZZ_ASSERT(!load(&got, &got_size));
        free(file);
    }
    unlink(bin_path);
    return 0;
}
