/* The kernels cache (kernels-cache/cache.h): records and binaries round trips, bad entries (truncated,
 * corrupt, wrong key / format / library / checksum, parameters no tuner can produce, a FIFO or a
 * folder in an entry's place) are misses that are removed and warned about once each, stale
 * temporary files of killed writers are removed, an unwritable or disabled cache, the location
 * fallbacks, two processes writing one key while a third reads it, a record the device cannot run
 * removed by the parameter selection, and the db lookup's matching rules. Everything happens in a
 * fresh temporary folder. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700 /* nftw */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <signal.h>

#include "cache.h"
#include "db.h"
#include "check.h"
#include "hash.h" /* the file names are the key's hash */
#include "plan_internal.h" /* mora_select_params */
#include "programs.h"       /* mora_context_cache */
#include "tuner.h"   /* mora_tuning_key */

/* ---- the log callback: warnings counted by what they say ---------------------------------------- */
static int warn_unwritable, warn_corrupt, warn_stuck, warn_retune, warn_db, warn_other;
static char first_corrupt[1024], last_warning[1024];

static void on_log(mora_log_level level, const char *message, void *user) {
    (void)user;
    if (getenv("MORA_TEST_VERBOSE")) printf("log: %s\n", message);
    if (level != MORA_LOG_WARNING) return;
    snprintf(last_warning, sizeof last_warning, "%s", message);
    if (strstr(message, "running without a cache")) {
        ++warn_unwritable;
    } else if (strstr(message, "removed, will be rebuilt")) {
        if (warn_corrupt++ == 0) snprintf(first_corrupt, sizeof first_corrupt, "%s", message);
    } else if (strstr(message, "could not remove it")) {
        ++warn_stuck;
    } else if (strstr(message, "removed, will be re-tuned")) {
        ++warn_retune;
    } else if (strstr(message, "kernels db")) {
        ++warn_db;
    } else {
        ++warn_other;
        fprintf(stderr, "unexpected warning: %s\n", message);
    }
}

/* ---- files ------------------------------------------------------------------------------------- */
static char root[PATH_MAX];

static const char *path_in(const char *fmt, const char *a) {
    static char buf[4][PATH_MAX + 512];
    static int next = 0;
    char *p = buf[next++ % 4];
    char rel[256];
    snprintf(rel, sizeof rel, fmt, a);
    snprintf(p, sizeof buf[0], "%s/%s", root, rel);
    return p;
}

static const char *entry_file(const char *dir, const char *sub, const char *key, const char *ext) {
    static char buf[4][PATH_MAX];
    static int next = 0;
    char *p = buf[next++ % 4];
    snprintf(p, PATH_MAX, "%s/%s/%016llx%s", dir, sub, (unsigned long long)mora_hash64(key, strlen(key), 0), ext);
    return p;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc((size_t)n + 1);
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
    }
    fclose(f);
    if (data) data[n] = 0;
    *size = (size_t)n;
    return data;
}

static void write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(2);
    }
    if (size) fwrite(data, 1, size, f);
    fclose(f);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    if (flag == FTW_DP) chmod(path, 0700);
    return remove(path);
}

static void rm_rf(const char *path) {
    chmod(path, 0700);
    nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Names in a folder that are not "<16 hex>.<ext>" (temporary files left behind), and the count of all. */
static int count_entries(const char *folder, int *strays) {
    DIR *d = opendir(folder);
    int n = 0;
    *strays = 0;
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        ++n;
        if (e->d_name[0] == '.' || strlen(e->d_name) < 17 || e->d_name[16] != '.') ++*strays;
    }
    closedir(d);
    return n;
}

/* ---- sample entries ---------------------------------------------------------------------------- */
static mora_tuning_record sample_record(int writer, int iteration) {
    mora_tuning_record r;
    memset(&r, 0, sizeof r);
    const mora_kind_decl *d = mora_kind_decl_get(MORA_KIND_BWD_DM, MORA_DIALECT_CUDA); /* the key names no backend */
    snprintf(r.kind, sizeof r.kind, "%s", d->name);
    r.param_count = d->param_count;
    for (int i = 0; i < d->param_count; ++i) {
        snprintf(r.param_names[i], sizeof r.param_names[i], "%s", d->params[i].name);
        r.param_values[i] = d->params[i].values[(writer + iteration + i) % d->params[i].value_count];
    }
    r.param_values[mora_kind_param_index(d, "DM_MMA")] = 0; /* MMA=1 needs TK % 16 == 0: not always so here */
    r.time_ms = 0.1 + 0.2 + iteration * 1e-3 + writer; /* not exactly representable in few digits */
    r.spread = 1.0 / 3.0;
    r.default_ms = 12345.678901234567 + iteration;
    r.load = 0.1 * writer + 1e-3 * iteration;
    r.candidates = iteration;
    r.rejected = 3 * writer;
    r.failed = writer;
    r.tokens = ((int64_t)1 << 40) + writer * 1000 + iteration;
    snprintf(r.tuned_at, sizeof r.tuned_at, "2025-01-%02dT10:%02d:00Z", 1 + writer, iteration % 60);
    return r;
}

static int records_equal(const mora_tuning_record *a, const mora_tuning_record *b) {
    if (strcmp(a->kind, b->kind) != 0 || a->param_count != b->param_count) return 0;
    for (int i = 0; i < a->param_count; ++i)
        if (strcmp(a->param_names[i], b->param_names[i]) != 0 || a->param_values[i] != b->param_values[i]) return 0;
    const int same_default = (isnan(a->default_ms) && isnan(b->default_ms)) || a->default_ms == b->default_ms;
    const int same_load = (isnan(a->load) && isnan(b->load)) || a->load == b->load;
    return a->time_ms == b->time_ms && a->spread == b->spread && same_default && same_load && a->candidates == b->candidates &&
           a->rejected == b->rejected && a->failed == b->failed && a->tokens == b->tokens &&
           strcmp(a->tuned_at, b->tuned_at) == 0;
}

/* Payload of writer w, iteration i: 8 bytes (w, i) then pseudo-random bytes; 8 B .. 64 KiB. */
static unsigned char *sample_payload(int writer, int iteration, size_t *size) {
    *size = 8 + (size_t)((writer * 7919 + iteration * 104729) % 65536);
    unsigned char *p = malloc(*size);
    for (int b = 0; b < 4; ++b) {
        p[b] = (unsigned char)(writer >> (8 * b));
        p[4 + b] = (unsigned char)(iteration >> (8 * b));
    }
    check_rng rng = {(uint64_t)writer * 1000003u + (uint64_t)iteration};
    for (size_t k = 8; k < *size; ++k) p[k] = (unsigned char)check_rng_next(&rng);
    return p;
}

/* ---- tests ------------------------------------------------------------------------------------- */
static void test_record_round_trip(void) {
    const char *dir = path_in("records-rt/%s", "cache");
    mora_cache *c = NULL;
    REQUIRE_OK(mora_cache_open(dir, &c));
    CHECK_EQ_INT(mora_cache_enabled(c), 1);
    CHECK_STR(mora_cache_dir(c), dir);
    CHECK(!exists(dir)); /* created lazily */
    mora_tuning_record r, got;
    CHECK_STATUS(mora_cache_record_load(c, "k1", &got), MORA_E_NOT_FOUND);

    r = sample_record(1, 7);
    REQUIRE_OK(mora_cache_record_store(c, "k1", &r));
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
    memset(&got, 0x55, sizeof got);
    REQUIRE_OK(mora_cache_record_load(c, "k1", &got));
    CHECK(records_equal(&r, &got));
    for (int i = 0; i < r.param_count; ++i) CHECK_STR(got.param_names[i], r.param_names[i]); /* declared order */
    CHECK_EQ_INT(got.tokens, ((int64_t)1 << 40) + 1007);
    CHECK(got.time_ms == r.time_ms && got.spread == 1.0 / 3.0);

    /* the file: the fields of cache.h, the key echoed, this library's version */
    size_t n;
    char *text = (char *)read_file(entry_file(dir, "records", "k1", ".json"), &n);
    CHECK(text != NULL);
    if (text) {
        const char *want[] = {"\"format\": 3", "\"load\": ", "\"checksum\": \"", "\"library\": \"" MORA_VERSION_STRING "\"", "\"key\": \"k1\"",
                              "\"kind\": \"bwd_dm\"", "\"params\": {", "\"time_ms\"", "\"spread\"", "\"default_ms\"",
                              "\"candidates\": 7", "\"rejected\": 3", "\"failed\": 1", "\"tokens\": 1099511628783",
                              "\"tuned_at\": \"2025-01-02T10:07:00Z\""};
        for (size_t i = 0; i < sizeof want / sizeof want[0]; ++i) {
            ++check_count_;
            if (!strstr(text, want[i])) CHECK_FAIL_("record file lacks %s:\n%s", want[i], text);
        }
        CHECK(strstr(text, "\"DM_TM\"") < strstr(text, "\"DM_TK\"")); /* declared, not sorted, order */
        free(text);
    }

    /* overwrite; NaN and a zero-parameter record; keys with odd characters */
    r = sample_record(2, 9);
    r.default_ms = NAN;
    REQUIRE_OK(mora_cache_record_store(c, "k1", &r));
    REQUIRE_OK(mora_cache_record_load(c, "k1", &got));
    CHECK(records_equal(&r, &got) && isnan(got.default_ms));
    mora_tuning_record empty;
    memset(&empty, 0, sizeof empty);
    snprintf(empty.kind, sizeof empty.kind, "merge");
    const char *odd_key = "opencl|pthread \"cpu\"|\\n\t|1.2|fwd|d=4096|n<=2048|ünïcode";
    REQUIRE_OK(mora_cache_record_store(c, odd_key, &empty));
    REQUIRE_OK(mora_cache_record_load(c, odd_key, &got));
    CHECK(records_equal(&empty, &got));
    CHECK_STATUS(mora_cache_record_load(c, "k2", &got), MORA_E_NOT_FOUND);

    /* arguments */
    r.param_count = MORA_MAX_PARAMS + 1;
    CHECK_STATUS(mora_cache_record_store(c, "k1", &r), MORA_E_ARG);
    r.param_count = 1;
    memset(r.kind, 'x', sizeof r.kind);
    CHECK_STATUS(mora_cache_record_store(c, "k1", &r), MORA_E_ARG);
    CHECK_STATUS(mora_cache_record_store(c, NULL, &r), MORA_E_NULL);
    CHECK_STATUS(mora_cache_record_load(c, "k1", NULL), MORA_E_NULL);
    mora_cache_close(c);
}

static void test_binary_round_trip(void) {
    const char *dir = path_in("binaries-rt/%s", "cache/"); /* a trailing slash is dropped */
    mora_cache *c = NULL;
    REQUIRE_OK(mora_cache_open(dir, &c));
    CHECK_STR(mora_cache_dir(c), path_in("binaries-rt/%s", "cache"));
    const size_t sizes[] = {0, 1, 1000, (size_t)1 << 20};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; ++t) {
        char key[64];
        snprintf(key, sizeof key, "binary of %zu bytes", sizes[t]);
        unsigned char *data = malloc(sizes[t] + 1);
        check_rng rng = {t + 1};
        for (size_t k = 0; k < sizes[t]; ++k) data[k] = (unsigned char)check_rng_next(&rng);
        REQUIRE_OK(mora_cache_binary_store(c, key, sizes[t] ? data : NULL, sizes[t]));
        void *got = NULL;
        size_t got_size = 12345;
        REQUIRE_OK(mora_cache_binary_load(c, key, &got, &got_size));
        CHECK_EQ_INT(got_size, sizes[t]);
        CHECK(got != NULL && memcmp(got, data, sizes[t]) == 0);
        free(got);

        /* the byte layout of cache.h, little-endian */
        size_t n;
        unsigned char *file = read_file(entry_file(mora_cache_dir(c), "binaries", key, ".bin"), &n);
        const size_t kl = strlen(key);
        CHECK(file != NULL && n == 8 + 4 + 4 + kl + 8 + 8 + sizes[t]);
        if (file && n == 8 + 4 + 4 + kl + 8 + 8 + sizes[t]) {
            uint64_t length = 0, sum = 0;
            for (int b = 7; b >= 0; --b) {
                length = length << 8 | file[16 + kl + b];
                sum = sum << 8 | file[24 + kl + b];
            }
            CHECK(memcmp(file, "MORABIN1", 8) == 0);
            CHECK(file[8] == MORA_CACHE_FORMAT_VERSION && file[9] == 0 && file[10] == 0 && file[11] == 0);
            CHECK(file[12] == kl && file[13] == 0 && file[14] == 0 && file[15] == 0);
            CHECK(memcmp(file + 16, key, kl) == 0);
            CHECK_EQ_INT(length, sizes[t]);
            CHECK(sum == mora_hash64(data, sizes[t], 0));
            CHECK(memcmp(file + 32 + kl, data, sizes[t]) == 0);
        }
        free(file);
        free(data);
    }
    void *got = NULL;
    size_t got_size = 0;
    CHECK_STATUS(mora_cache_binary_load(c, "never stored", &got, &got_size), MORA_E_NOT_FOUND);
    CHECK_STATUS(mora_cache_binary_store(c, "k", NULL, 5), MORA_E_NULL);
    mora_cache_close(c);
}

/* Writes `bytes` over the entry file, loads: a miss, and the file is gone. */
static void expect_bad_binary(mora_cache *c, const char *key, const void *bytes, size_t n, const char *what) {
    const char *path = entry_file(mora_cache_dir(c), "binaries", key, ".bin");
    write_file(path, bytes, n);
    void *got = NULL;
    size_t size = 0;
    const int warned_before = warn_corrupt;
    const mora_status s = mora_cache_binary_load(c, key, &got, &size);
    ++check_count_;
    if (warn_corrupt != warned_before + 1)
        CHECK_FAIL_("bad binary (%s): %d warnings, want 1 (each bad entry warns)", what, warn_corrupt - warned_before);
    ++check_count_;
    if (s != MORA_E_NOT_FOUND) CHECK_FAIL_("bad binary (%s): got %s, want MORA_E_NOT_FOUND", what, mora_status_name(s));
    ++check_count_;
    if (exists(path)) CHECK_FAIL_("bad binary (%s): %s was not removed", what, path);
    if (s == MORA_OK) free(got);
}

static void expect_bad_record(mora_cache *c, const char *key, const char *text, size_t n, const char *what,
                              int removed) {
    const char *path = entry_file(mora_cache_dir(c), "records", key, ".json");
    write_file(path, text, n);
    mora_tuning_record got;
    const int warned_before = warn_corrupt;
    const mora_status s = mora_cache_record_load(c, key, &got);
    ++check_count_;
    if (warn_corrupt != warned_before + removed)
        CHECK_FAIL_("bad record (%s): %d warnings, want %d", what, warn_corrupt - warned_before, removed);
    ++check_count_;
    if (s != MORA_E_NOT_FOUND) CHECK_FAIL_("bad record (%s): got %s, want MORA_E_NOT_FOUND", what, mora_status_name(s));
    ++check_count_;
    if (exists(path) == removed)
        CHECK_FAIL_("bad record (%s): %s was%s removed", what, path, removed ? " not" : "");
}

static void test_bad_entries(void) {
    const char *dir = path_in("bad/%s", "cache");
    mora_cache *c = NULL;
    REQUIRE_OK(mora_cache_open(dir, &c));
    CHECK_EQ_INT(warn_corrupt, 0);

    /* binaries: truncated at every part of the layout, flipped bits, wrong magic/version/key */
    const char *key = "key-A";
    const size_t kl = strlen(key);
    unsigned char payload[1000];
    for (int i = 0; i < 1000; ++i) payload[i] = (unsigned char)(i * 7);
    REQUIRE_OK(mora_cache_binary_store(c, key, payload, sizeof payload));
    size_t n;
    unsigned char *good = read_file(entry_file(dir, "binaries", key, ".bin"), &n);
    REQUIRE_OK(good ? MORA_OK : MORA_E_IO);
    const size_t cuts[] = {0, 3, 8, 12, 16, 16 + kl - 1, 16 + kl, 16 + kl + 4, 16 + kl + 8, 16 + kl + 12,
                           16 + kl + 16, 16 + kl + 16 + 500, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; ++i) {
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu of %zu bytes", cuts[i], n);
        expect_bad_binary(c, key, good, cuts[i], what);
    }
    CHECK_EQ_INT(warn_corrupt, (int)(sizeof cuts / sizeof cuts[0])); /* one warning per bad entry */
    ++check_count_;
    if (!strstr(first_corrupt, entry_file(dir, "binaries", key, ".bin")) || !strstr(first_corrupt, "truncated"))
        CHECK_FAIL_("the warning names the file and why: \"%s\"", first_corrupt);

    unsigned char *bad = malloc(n + 1);
    memcpy(bad, good, n);
    bad[n] = 0;
    expect_bad_binary(c, key, bad, n + 1, "one byte too many");
    memcpy(bad, good, n);
    bad[n - 10] ^= 1;
    expect_bad_binary(c, key, bad, n, "payload bit flipped");
    memcpy(bad, good, n);
    bad[16 + kl + 8] ^= 1;
    expect_bad_binary(c, key, bad, n, "checksum bit flipped");
    memcpy(bad, good, n);
    bad[16 + kl] ^= 1;
    expect_bad_binary(c, key, bad, n, "length bit flipped");
    memcpy(bad, good, n);
    bad[0] = 'X';
    expect_bad_binary(c, key, bad, n, "magic");
    memcpy(bad, good, n);
    bad[8] = MORA_CACHE_FORMAT_VERSION + 1;
    expect_bad_binary(c, key, bad, n, "format version");
    expect_bad_binary(c, "key-B", good, n, "key echo of the same length");
    expect_bad_binary(c, "key-BB", good, n, "key echo of another length");
    free(bad);
    free(good);
    /* after a miss the entry is rebuilt */
    REQUIRE_OK(mora_cache_binary_store(c, key, payload, sizeof payload));
    void *got = NULL;
    size_t got_size = 0;
    REQUIRE_OK(mora_cache_binary_load(c, key, &got, &got_size));
    CHECK(got_size == sizeof payload && memcmp(got, payload, sizeof payload) == 0);
    free(got);

    /* records: truncated, not JSON, wrong key / format / types */
    const mora_tuning_record r = sample_record(1, 2);
    REQUIRE_OK(mora_cache_record_store(c, key, &r));
    char *text = (char *)read_file(entry_file(dir, "records", key, ".json"), &n);
    REQUIRE_OK(text ? MORA_OK : MORA_E_IO);
    const size_t last_brace = (size_t)(strrchr(text, '}') - text);
    const size_t rcuts[] = {0, 1, 10, n / 3, n / 2, last_brace - 1, last_brace};
    for (size_t i = 0; i < sizeof rcuts / sizeof rcuts[0]; ++i) {
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu of %zu bytes", rcuts[i], n);
        expect_bad_record(c, key, text, rcuts[i], what, 1);
    }
    const char *not_json = "{not json at all";
    expect_bad_record(c, key, not_json, strlen(not_json), "not JSON", 1);
    expect_bad_record(c, key, "[]", 2, "not an object", 1);
    expect_bad_record(c, "key-B", text, n, "key echo", 1);

    char edited[8192];
    struct {
        const char *from, *to, *what;
        int removed;
    } edits[] = {
        {"\"format\": 3", "\"format\": 4", "format version", 1},
        {"\"format\": 3", "\"format\": 2", "format 2 (no load)", 1},
        {"\"format\": 3", "\"format\": \"3\"", "format type", 1},
        {"\"load\": ", "\"load_\": ", "load missing", 1},
        {"\"load\": ", "\"load\": 0.5, \"x\": ", "a load edited: checksum mismatch", 1},
        {"\"candidates\": 2", "\"candidates\": 3", "a value edited: checksum mismatch", 1},
        {"\"checksum\": \"", "\"checksum\": \"0", "checksum too long", 1},
        {"\"checksum\"", "\"checksum_\"", "checksum missing", 1},
        {"\"library\": \"" MORA_VERSION_STRING "\"", "\"library\": \"0.0.1\"", "library version", 0},
        {"\"kind\": \"bwd_dm\"", "\"kind\": \"sideways\"", "unknown kind", 1},
        {"\"time_ms\": ", "\"time_ms\": \"fast\", \"x\": ", "time_ms type", 1},
        {"\"candidates\": 2", "\"candidates\": 2.5", "candidates type", 1},
        {"\"candidates\": 2", "\"candidates\": 99999999999", "candidates range", 1},
        {"\"tuned_at\": \"", "\"tuned_at\": \"0123456789012345678901234567890123456789", "tuned_at length", 1},
        {"\"params\": {", "\"params\": {\"P1\": 1, \"P2\": 2, ", "more than MORA_MAX_PARAMS params", 1},
        {"\"params\": {", "\"params\": {\"P1\": \"big\", ", "param type", 1},
        {"\"tokens\"", "\"tokens_\"", "missing tokens", 1},
        {"\"key\": ", "\"key\": 3, \"k\": ", "key type", 1},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; ++i) {
        const char *at = strstr(text, edits[i].from);
        ++check_count_;
        if (!at) {
            CHECK_FAIL_("record file lacks %s", edits[i].from);
            continue;
        }
        snprintf(edited, sizeof edited, "%.*s%s%s", (int)(at - text), text, edits[i].to, at + strlen(edits[i].from));
        expect_bad_record(c, key, edited, strlen(edited), edits[i].what, edits[i].removed);
    }
    free(text);
    /* an empty directory where the file should be: a miss, really removed, one warning */
    mora_tuning_record got_r;
    const char *as_dir = entry_file(dir, "records", "a folder", ".json");
    int warned = warn_corrupt;
    mkdir(as_dir, 0700);
    CHECK_STATUS(mora_cache_record_load(c, "a folder", &got_r), MORA_E_NOT_FOUND);
    CHECK(!exists(as_dir));
    CHECK_EQ_INT(warn_corrupt - warned, 1);
    const char *bin_dir = entry_file(dir, "binaries", "a folder", ".bin");
    mkdir(bin_dir, 0700);
    void *data = NULL;
    size_t size = 0;
    CHECK_STATUS(mora_cache_binary_load(c, "a folder", &data, &size), MORA_E_NOT_FOUND);
    CHECK(!exists(bin_dir));
    /* a folder with something in it is not the cache's to delete: it stays, and the warning says
     * so (once for that entry) instead of claiming it was removed */
    warned = warn_corrupt;
    mkdir(as_dir, 0700);
    write_file(path_in("bad/cache/records/%s/keep", strrchr(as_dir, '/') + 1), "x", 1);
    for (int round = 0; round < 3; ++round)
        CHECK_STATUS(mora_cache_record_load(c, "a folder", &got_r), MORA_E_NOT_FOUND);
    CHECK(exists(as_dir));
    CHECK_EQ_INT(warn_corrupt - warned, 0);
    CHECK_EQ_INT(warn_stuck, 1);
    ++check_count_;
    if (!strstr(last_warning, "could not remove it") || !strstr(last_warning, as_dir))
        CHECK_FAIL_("the warning says the folder stays: \"%s\"", last_warning);
    rm_rf(as_dir);

    REQUIRE_OK(mora_cache_record_store(c, key, &r));
    REQUIRE_OK(mora_cache_record_load(c, key, &got_r));
    CHECK(records_equal(&r, &got_r));

    /* several corrupt binaries: one warning each */
    warned = warn_corrupt;
    for (int k = 0; k < 4; ++k) {
        char name[32];
        snprintf(name, sizeof name, "corrupt %d", k);
        REQUIRE_OK(mora_cache_binary_store(c, name, payload, sizeof payload));
        const char *path = entry_file(dir, "binaries", name, ".bin");
        unsigned char *file = read_file(path, &n);
        file[n - 1 - (size_t)k] ^= 0x40;
        write_file(path, file, n);
        free(file);
    }
    for (int k = 0; k < 4; ++k) {
        char name[32];
        snprintf(name, sizeof name, "corrupt %d", k);
        CHECK_STATUS(mora_cache_binary_load(c, name, &data, &size), MORA_E_NOT_FOUND);
    }
    CHECK_EQ_INT(warn_corrupt - warned, 4);
    int strays = 0;
    count_entries(path_in("bad/%s", "cache/records"), &strays);
    CHECK_EQ_INT(strays, 0);
    count_entries(path_in("bad/%s", "cache/binaries"), &strays);
    CHECK_EQ_INT(strays, 0);
    mora_cache_close(c);
}

/* Records with a good checksum (written by store, which does not validate) but values no tuner can
 * produce are misses on load: removed, warned, so the kind is tuned again. The reproducers of
 * issue 10: DX_TM=7, MERGE_LS=1048576, FWD_MMA=1 with FWD_WM=2^28 (a SIGFPE in the spec check). */
typedef struct forged {
    const char *key, *kind;
    const char *names[4];
    int values[4];
    int valid;
} forged;

#define CUDA_KEY(kind, dtype) "v1|backend=cuda|device=D|arch=sm_90|kind=" kind "|op=share|dtype=" dtype "|tokens<=8192"
#define HIP_KEY(kind, dtype) "v1|backend=hip|device=D|arch=gfx942|kind=" kind "|op=share|dtype=" dtype "|tokens<=8192"
#define OPENCL_KEY(kind, dtype) "v1|backend=opencl|device=D|arch=A|kind=" kind "|op=share|dtype=" dtype "|tokens<=256"

static void test_invalid_records(void) {
    const char *dir = path_in("invalid/%s", "cache");
    mora_cache *c = NULL;
    REQUIRE_OK(mora_cache_open(dir, &c));
    const forged cases[] = {
        {OPENCL_KEY("bwd_dx", "f32"), "bwd_dx", {"DX_TM"}, {7}, 0},
        {OPENCL_KEY("merge", "f32"), "merge", {"MERGE_LS"}, {1048576}, 0},
        {"any key", "merge", {"MERGE_LS"}, {0}, 0},
        {CUDA_KEY("fwd", "f16"), "fwd", {"FWD_MMA", "FWD_WM"}, {1, 268435456}, 0},
        {HIP_KEY("fwd", "f16"), "fwd", {"FWD_MMA", "FWD_WN"}, {1, 268435456}, 0},
        {CUDA_KEY("fwd", "f16"), "fwd", {"FWD_NOT_A_PARAM"}, {8}, 0},
        {CUDA_KEY("fwd", "f16"), "fwd", {"DX_TM"}, {32}, 0},                     /* another kind's */
        {CUDA_KEY("fwd", "f16"), "fwd", {"FWD_MMA", "FWD_TK"}, {1, 4}, 0},        /* in range, TK % 16 */
        {CUDA_KEY("fwd", "f16"), "fwd", {"FWD_MMA", "FWD_TN", "FWD_WN", "FWD_WM"}, {1, 8, 1, 1}, 1},
        {HIP_KEY("fwd", "f16"), "fwd", {"FWD_MMA", "FWD_TN", "FWD_WN", "FWD_WM"}, {1, 8, 1, 1}, 0}, /* HIP: 16·WN */
        {OPENCL_KEY("fwd", "f16"), "fwd", {"FWD_MMA"}, {1}, 0},                  /* no MMA on OpenCL */
        {CUDA_KEY("fwd", "f32"), "fwd", {"FWD_MMA"}, {1}, 0},                    /* nor for f32 */
        {"any key", "fwd", {"FWD_MMA", "FWD_TN", "FWD_WN", "FWD_WM"}, {1, 8, 1, 1}, 1},      /* cuda, f16 by default */
        {OPENCL_KEY("bwd_dm", "bf16"), "bwd_dm", {"DM_TM", "DM_SPLIT", "DM_REDUCE_LS"}, {128, 32, 512}, 1},
        {"any key", "sideways", {"FWD_TM"}, {32}, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        const forged *f = &cases[i];
        mora_tuning_record r;
        memset(&r, 0, sizeof r);
        snprintf(r.kind, sizeof r.kind, "%s", f->kind);
        for (int k = 0; k < 4 && f->names[k]; ++k) {
            snprintf(r.param_names[k], sizeof r.param_names[k], "%s", f->names[k]);
            r.param_values[k] = f->values[k];
            r.param_count = k + 1;
        }
        r.time_ms = r.default_ms = 1.0;
        snprintf(r.tuned_at, sizeof r.tuned_at, "2026-12-01T00:00:00Z");
        CHECK_STATUS(mora_cache_record_check(f->key, &r), f->valid ? MORA_OK : MORA_E_PARAM);
        REQUIRE_OK(mora_cache_record_store(c, f->key, &r)); /* store writes what it is given */
        const char *path = entry_file(dir, "records", f->key, ".json");
        const int warned = warn_corrupt;
        mora_tuning_record got;
        const mora_status s = mora_cache_record_load(c, f->key, &got);
        ++check_count_;
        if (s != (f->valid ? MORA_OK : MORA_E_NOT_FOUND) || exists(path) != f->valid ||
            warn_corrupt - warned != !f->valid)
            CHECK_FAIL_("record %zu (%s %s=%d under \"%s\"): load %s, file %s, %d warnings; want %s",
                        i, f->kind, f->names[0], f->values[0], f->key, mora_status_name(s),
                        exists(path) ? "kept" : "removed", warn_corrupt - warned, f->valid ? "a hit" : "a removed miss");
        if (!f->valid && !strstr(last_warning, "invalid parameters") && !strstr(last_warning, "not a kernel kind")) {
            ++check_count_;
            CHECK_FAIL_("record %zu: the warning gives the reason: \"%s\"", i, last_warning);
        }
    }
    mora_cache_close(c);
}

/* A FIFO in an entry's place: open(O_RDONLY) used to block until a writer came, forever. */
static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "FAILED: a load blocked on a FIFO in the cache (killed after 20 s)\n";
    if (write(2, msg, sizeof msg - 1)) _exit(1);
    _exit(1);
}

static void test_fifo(void) {
    const char *dir = path_in("fifo/%s", "cache");
    mora_cache *c = NULL;
    REQUIRE_OK(mora_cache_open(dir, &c));
    const mora_tuning_record r = sample_record(1, 1);
    REQUIRE_OK(mora_cache_record_store(c, "fifo", &r)); /* creates the folders */
    const char *record = entry_file(dir, "records", "fifo", ".json");
    const char *binary = entry_file(dir, "binaries", "fifo", ".bin");
    unlink(record);
    REQUIRE_OK(mkfifo(record, 0600) == 0 && mkfifo(binary, 0600) == 0 ? MORA_OK : MORA_E_IO);
    signal(SIGALRM, on_alarm);
    alarm(20);
    const int warned = warn_corrupt;
    mora_tuning_record got;
    CHECK_STATUS(mora_cache_record_load(c, "fifo", &got), MORA_E_NOT_FOUND);
    void *data = NULL;
    size_t size = 0;
    CHECK_STATUS(mora_cache_binary_load(c, "fifo", &data, &size), MORA_E_NOT_FOUND);
    alarm(0);
    CHECK(!exists(record) && !exists(binary));
    CHECK_EQ_INT(warn_corrupt - warned, 2);
    REQUIRE_OK(mora_cache_record_store(c, "fifo", &r));
    CHECK_STATUS(mora_cache_record_load(c, "fifo", &got), MORA_OK);
    mora_cache_close(c);
}

/* Temporary files of writers killed before their rename are removed by the next process's first
 * store once they are old; fresh ones (a live writer's) and other names stay. */
static void make_aged(const char *path, int is_dir, time_t age) {
    if (is_dir) mkdir(path, 0700);
    else write_file(path, "partial", 7);
    const struct timespec times[2] = {{time(NULL) - age, 0}, {time(NULL) - age, 0}};
    utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW);
}

static void test_stale_temporaries(void) {
    char dir[PATH_MAX + 512]; /* path_in's buffers rotate: keep a copy */
    snprintf(dir, sizeof dir, "%s", path_in("stale/%s", "cache"));
    mora_cache *c = NULL;
    REQUIRE_OK(mora_cache_open(dir, &c));
    const mora_tuning_record r = sample_record(1, 3);
    REQUIRE_OK(mora_cache_record_store(c, "k", &r));
    mora_cache_close(c);
    const struct {
        const char *name;
        int is_dir;
        time_t age;
        int removed;
    } files[] = {
        {"stale/cache/records/.0123456789abcdef.json.tmp-AbCdEf", 0, 3600, 1},
        {"stale/cache/binaries/.0123456789abcdef.bin.tmp-AbCdEf", 0, 86400, 1},
        {"stale/cache/.probe-AbCdEf", 0, 3600, 1},
        {"stale/cache/records/.0123456789abcdef.json.tmp-fresh1", 0, 5, 0},     /* a live writer's */
        {"stale/cache/records/.not-a-temporary", 0, 3600, 0},
        {"stale/cache/records/.0123456789abcdef.json.tmp-folder", 1, 3600, 0}, /* not a regular file */
    };
    const size_t count = sizeof files / sizeof files[0];
    for (size_t i = 0; i < count; ++i) make_aged(path_in("%s", files[i].name), files[i].is_dir, files[i].age);
    REQUIRE_OK(mora_cache_open(dir, &c));
    mora_tuning_record got;
    REQUIRE_OK(mora_cache_record_load(c, "k", &got)); /* loads leave them alone */
    CHECK(exists(path_in("%s", files[0].name)));
    REQUIRE_OK(mora_cache_binary_store(c, "k", "abc", 3)); /* the first store cleans */
    for (size_t i = 0; i < count; ++i) {
        ++check_count_;
        if (exists(path_in("%s", files[i].name)) == files[i].removed)
            CHECK_FAIL_("%s: %s", files[i].name, files[i].removed ? "stale, not removed" : "removed, should stay");
    }
    mora_cache_close(c);
}

/* The temporaries of `entry` (a file name in `folder`): how many, and the first one's name. */
static int temporaries_of(const char *folder, const char *entry, char *first, size_t capacity) {
    char prefix[128];
    snprintf(prefix, sizeof prefix, ".%s.tmp-", entry);
    DIR *d = opendir(folder);
    int count = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && count++ == 0) snprintf(first, capacity, "%s", e->d_name);
    if (d) closedir(d);
    return count;
}

/* A writer killed between its write and its rename (issue 22, item 7): the child's file-size limit
 * makes the kernel kill it (SIGXFSZ) in the middle of writing a binary, leaving its temporary. The
 * next open of that entry, in another process, removes it: its pid no longer runs. A live writer's
 * temporary of the entry (this process's pid) and a dead writer's of another entry stay. */
static void test_dead_writers(void) {
    char dir[PATH_MAX + 512];
    snprintf(dir, sizeof dir, "%s", path_in("dead/%s", "cache"));
    mora_cache *c = NULL;
    REQUIRE_OK(mora_cache_open(dir, &c));
    const mora_tuning_record r = sample_record(1, 3);
    REQUIRE_OK(mora_cache_record_store(c, "other", &r)); /* the folders exist */
    static unsigned char payload[256 * 1024];
    memset(payload, 0x5a, sizeof payload);
    fflush(NULL);
    const pid_t child = fork();
    if (child == 0) {
        const struct rlimit small = {64 * 1024, 64 * 1024};
        setrlimit(RLIMIT_FSIZE, &small);
        mora_cache_binary_store(c, "killed", payload, sizeof payload); /* killed inside its write */
        _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGXFSZ);
    char binaries[PATH_MAX + 600], records[PATH_MAX + 600], name[256] = "", killed[64], other[64];
    snprintf(binaries, sizeof binaries, "%s/binaries", dir);
    snprintf(records, sizeof records, "%s/records", dir);
    snprintf(killed, sizeof killed, "%016llx.bin", (unsigned long long)mora_hash64("killed", 6, 0));
    snprintf(other, sizeof other, "%016llx.json", (unsigned long long)mora_hash64("other", 5, 0));
    CHECK_EQ_INT(temporaries_of(binaries, killed, name, sizeof name), 1); /* what the kill left */
    char expected[96];
    snprintf(expected, sizeof expected, ".%s.tmp-%ld-", killed, (long)child);
    CHECK(strncmp(name, expected, strlen(expected)) == 0); /* named by its writer */
    /* a few seconds old (a pid just seen dead is given DEAD_WRITER_GRACE_SECONDS), far from the
     * 10 minutes after which any temporary is removed */
    char path[PATH_MAX + 900];
    snprintf(path, sizeof path, "%s/%s", binaries, name);
    make_aged(path, 0, 5);
    char live[PATH_MAX + 900], dead_other[PATH_MAX + 900];
    snprintf(live, sizeof live, "%s/.%s.tmp-%ld-AbCdEf", binaries, killed, (long)getpid());
    make_aged(live, 0, 5);
    snprintf(dead_other, sizeof dead_other, "%s/.%s.tmp-%ld-AbCdEf", records, other, (long)child);
    make_aged(dead_other, 0, 5);
    mora_cache_close(c);

    REQUIRE_OK(mora_cache_open(dir, &c)); /* the next process */
    void *data = NULL;
    size_t size = 0;
    CHECK_STATUS(mora_cache_binary_load(c, "killed", &data, &size), MORA_E_NOT_FOUND);
    CHECK(!exists(path));  /* the dead writer's: removed on this open */
    CHECK(exists(live));   /* a live writer's: stays */
    CHECK(exists(dead_other)); /* another entry's: left to that entry's next open */
    mora_tuning_record got;
    REQUIRE_OK(mora_cache_record_load(c, "other", &got));
    CHECK(!exists(dead_other));
    REQUIRE_OK(mora_cache_binary_store(c, "killed", payload, 1000)); /* a store opens the entry too */
    CHECK(exists(live));
    REQUIRE_OK(mora_cache_binary_load(c, "killed", &data, &size));
    CHECK(size == 1000);
    free(data);
    unlink(live);
    mora_cache_close(c);
}

/* The parameter selection of a plan (api/select.c): a record that passes the cache's checks but
 * not this device's limits is removed with a warning (re-tuned later), not skipped silently forever.
 * On the cpu backend: a record of 16 worker threads (a value the tuner searches) on a machine with
 * fewer cores; with 16 or more, the same record is this device's and is used. */
static void test_select_removes_unusable(void) {
    const char *dir = path_in("select/%s", "cache");
    setenv("MORA_CACHE_DIR", dir, 1);
    mora_context *ctx = NULL;
    REQUIRE_OK(mora_context_create("cpu", 0, &ctx));
    mora_shape shape;
    REQUIRE_OK(mora_shape_make(&shape, 256, 256, 8, MORA_OP_SHARE));
    mora_kernel_spec spec = mora_spec_default(&shape, MORA_F32, MORA_KIND_FWD, MORA_DIALECT_HOST);
    const int too_many = ctx->info.compute_units < 16;
    char key[1024];
    mora_tuning_key(ctx, MORA_KIND_FWD, &shape, MORA_F32, mora_default_tune_tokens(ctx), key, sizeof key);
    mora_tuning_record r;
    memset(&r, 0, sizeof r);
    snprintf(r.kind, sizeof r.kind, "fwd");
    snprintf(r.param_names[0], sizeof r.param_names[0], "FWD_THREADS");
    r.param_values[0] = 16;
    r.param_count = 1;
    snprintf(r.tuned_at, sizeof r.tuned_at, "2026-12-01T00:00:00Z");
    mora_cache *cache = mora_context_cache(ctx);
    REQUIRE_OK(cache ? MORA_OK : MORA_E_IO);
    REQUIRE_OK(mora_cache_record_store(cache, key, &r));
    mora_tuning_record got;
    REQUIRE_OK(mora_cache_record_load(cache, key, &got)); /* valid as far as the cache can tell */
    const int warned = warn_retune;
    const char *from = mora_select_params(ctx, &spec, mora_default_tune_tokens(ctx));
    if (too_many) {
        CHECK(strcmp(from, "cache") != 0);
        CHECK_EQ_INT(warn_retune - warned, 1);
        CHECK_STATUS(mora_cache_record_load(cache, key, &got), MORA_E_NOT_FOUND);
        CHECK(!exists(entry_file(dir, "records", key, ".json")));
    } else {
        CHECK_STR(from, "cache");
        CHECK_EQ_INT(mora_spec_get_param(&spec, "FWD_THREADS"), 16);
        CHECK_EQ_INT(warn_retune - warned, 0);
    }
    /* a generated kernel's parameter in a cpu record: not a record the cache takes at all */
    snprintf(r.param_names[0], sizeof r.param_names[0], "FWD_TM");
    r.param_values[0] = 64;
    REQUIRE_OK(mora_cache_record_store(cache, key, &r));
    CHECK_STATUS(mora_cache_record_load(cache, key, &got), MORA_E_NOT_FOUND);
    mora_context_destroy(ctx);
    unsetenv("MORA_CACHE_DIR");
}

static void test_unwritable(void) {
    /* A read-only folder stops writes, except for root: then a path under a regular file, which can
     * never be created, plays the unwritable folder. */
    const char *ro = path_in("%s", "readonly");
    mkdir(ro, 0700);
    chmod(ro, 0500);
    const char *probe = path_in("%s", "readonly/probe");
    const int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0600);
    const char *dir;
    if (fd >= 0) { /* root */
        close(fd);
        unlink(probe);
        write_file(path_in("%s", "afile"), "x", 1);
        dir = path_in("%s", "afile/cache");
    } else {
        dir = path_in("%s", "readonly/cache");
    }
    CHECK_EQ_INT(warn_unwritable, 0);
    /* found at the first store: the folder could be created when opened, but a file took its place */
    mkdir(path_in("%s", "lazy"), 0700);
    mora_cache *lazy = NULL;
    REQUIRE_OK(mora_cache_open(path_in("%s", "lazy/cache"), &lazy));
    CHECK_EQ_INT(mora_cache_enabled(lazy), 1);
    write_file(path_in("%s", "lazy/cache"), "x", 1);
    CHECK_STATUS(mora_cache_binary_store(lazy, "k", "abc", 3), MORA_OK);
    CHECK_EQ_INT(mora_cache_enabled(lazy), 0);
    CHECK_STR(mora_cache_dir(lazy), "");
    CHECK_EQ_INT(warn_unwritable, 1);
    mora_cache_close(lazy);
    for (int round = 0; round < 2; ++round) {
        mora_cache *c = NULL;
        REQUIRE_OK(mora_cache_open(dir, &c));
        const mora_tuning_record r = sample_record(0, 0);
        mora_tuning_record got;
        CHECK_STATUS(mora_cache_record_store(c, "k", &r), MORA_OK); /* nothing fails because of it */
        CHECK_STATUS(mora_cache_binary_store(c, "k", "abc", 3), MORA_OK);
        CHECK_EQ_INT(mora_cache_enabled(c), 0);
        CHECK_STR(mora_cache_dir(c), "");
        CHECK_STATUS(mora_cache_record_load(c, "k", &got), MORA_E_NOT_FOUND);
        void *data = NULL;
        size_t size = 0;
        CHECK_STATUS(mora_cache_binary_load(c, "k", &data, &size), MORA_E_NOT_FOUND);
        mora_cache_close(c);
    }
    CHECK_EQ_INT(warn_unwritable, 1);
    CHECK(!exists(dir));
    chmod(ro, 0700);
}

static void test_disabled_and_locations(void) {
    const int unwritable_before = warn_unwritable;
    const char *values[] = {"off", ""};
    for (int v = 0; v < 2; ++v) {
        setenv("MORA_CACHE_DIR", values[v], 1);
        setenv("XDG_CACHE_HOME", path_in("%s", "xdg-unused"), 1);
        mora_cache *c = NULL;
        REQUIRE_OK(mora_cache_open(NULL, &c));
        CHECK_EQ_INT(mora_cache_enabled(c), 0);
        CHECK_STR(mora_cache_dir(c), "");
        const mora_tuning_record r = sample_record(0, 0);
        mora_tuning_record got;
        CHECK_STATUS(mora_cache_record_store(c, "k", &r), MORA_OK);
        CHECK_STATUS(mora_cache_record_load(c, "k", &got), MORA_E_NOT_FOUND);
        CHECK_STATUS(mora_cache_binary_store(c, "k", "abc", 3), MORA_OK);
        mora_cache_close(c);
    }
    CHECK(!exists(path_in("%s", "xdg-unused")));
    /* an explicit "" also disables; an explicit dir beats the environment */
    mora_cache *c = NULL;
    REQUIRE_OK(mora_cache_open("", &c));
    CHECK_EQ_INT(mora_cache_enabled(c), 0);
    mora_cache_close(c);
    REQUIRE_OK(mora_cache_open(path_in("%s", "explicit"), &c));
    CHECK_STR(mora_cache_dir(c), path_in("%s", "explicit"));
    mora_cache_close(c);

    /* MORA_CACHE_DIR beats XDG_CACHE_HOME */
    setenv("MORA_CACHE_DIR", path_in("%s", "from-env"), 1);
    REQUIRE_OK(mora_cache_open(NULL, &c));
    CHECK_STR(mora_cache_dir(c), path_in("%s", "from-env"));
    mora_cache_close(c);

    /* XDG_CACHE_HOME/mora, created with mkdir -p and 0700 on the first store */
    unsetenv("MORA_CACHE_DIR");
    setenv("XDG_CACHE_HOME", path_in("%s", "xdg/deeper"), 1);
    REQUIRE_OK(mora_cache_open(NULL, &c));
    CHECK_STR(mora_cache_dir(c), path_in("%s", "xdg/deeper/mora"));
    CHECK_EQ_INT(mora_cache_enabled(c), 1);
    const mora_tuning_record r = sample_record(0, 1);
    mora_tuning_record got;
    REQUIRE_OK(mora_cache_record_store(c, "k", &r));
    REQUIRE_OK(mora_cache_record_load(c, "k", &got));
    CHECK(records_equal(&r, &got));
    struct stat st;
    CHECK(stat(path_in("%s", "xdg/deeper/mora"), &st) == 0 && (st.st_mode & 0777) == 0700);
    CHECK(exists(entry_file(path_in("%s", "xdg/deeper/mora"), "records", "k", ".json")));
    mora_cache_close(c);

    /* HOME/.cache/mora: when XDG_CACHE_HOME is unset, empty or relative */
    const char *xdg_values[] = {NULL, "", "relative/cache"};
    setenv("HOME", path_in("%s", "home"), 1);
    for (int v = 0; v < 3; ++v) {
        if (xdg_values[v]) setenv("XDG_CACHE_HOME", xdg_values[v], 1);
        else unsetenv("XDG_CACHE_HOME");
        REQUIRE_OK(mora_cache_open(NULL, &c));
        CHECK_STR(mora_cache_dir(c), path_in("%s", "home/.cache/mora"));
        mora_cache_close(c);
    }
    REQUIRE_OK(mora_cache_open(NULL, &c));
    REQUIRE_OK(mora_cache_binary_store(c, "k", "abc", 3));
    CHECK(stat(path_in("%s", "home/.cache/mora/binaries"), &st) == 0 && (st.st_mode & 0777) == 0700);
    mora_cache_close(c);
    CHECK_EQ_INT(warn_unwritable, unwritable_before);
}

/* Two processes store one key 200 times each (different records and payloads) while this one loads
 * it: every load is a miss before the first write, then always a whole entry of one writer. */
enum { WRITERS = 2, ITERATIONS = 200 };

static int writer(const char *dir, int w, int start_fd) {
    char go;
    if (read(start_fd, &go, 1) != 1) return 3;
    mora_cache *c = NULL;
    if (mora_cache_open(dir, &c) != MORA_OK) return 4;
    int failures = 0;
    for (int i = 0; i < ITERATIONS; ++i) {
        const mora_tuning_record r = sample_record(w, i);
        size_t size;
        unsigned char *p = sample_payload(w, i, &size);
        failures += mora_cache_record_store(c, "shared key", &r) != MORA_OK;
        failures += mora_cache_binary_store(c, "shared key", p, size) != MORA_OK;
        free(p);
    }
    mora_cache_close(c);
    return failures ? 5 : 0;
}

static int valid_binary(const void *data, size_t size) {
    if (size < 8) return 0;
    const unsigned char *p = data;
    const int w = p[0] | p[1] << 8 | p[2] << 16 | p[3] << 24, i = p[4] | p[5] << 8 | p[6] << 16 | p[7] << 24;
    if (w < 1 || w > WRITERS || i < 0 || i >= ITERATIONS) return 0;
    size_t want_size;
    unsigned char *want = sample_payload(w, i, &want_size);
    const int ok = want_size == size && memcmp(want, data, size) == 0;
    free(want);
    return ok;
}

static int valid_record(const mora_tuning_record *r) {
    const int w = r->failed, i = r->candidates;
    if (w < 1 || w > WRITERS || i < 0 || i >= ITERATIONS) return 0;
    const mora_tuning_record want = sample_record(w, i);
    return records_equal(&want, r);
}

static void test_concurrent_writers(void) {
    const char *dir = path_in("%s", "concurrent");
    int pipes[2];
    REQUIRE_OK(pipe(pipes) == 0 ? MORA_OK : MORA_E_IO);
    pid_t pids[WRITERS];
    fflush(stdout);
    fflush(stderr);
    for (int w = 0; w < WRITERS; ++w) {
        pids[w] = fork();
        if (pids[w] == 0) {
            close(pipes[1]);
            _exit(writer(dir, w + 1, pipes[0]));
        }
        REQUIRE_OK(pids[w] > 0 ? MORA_OK : MORA_E_IO);
    }
    close(pipes[0]);
    mora_cache *c = NULL;
    REQUIRE_OK(mora_cache_open(dir, &c));
    if (write(pipes[1], "gg", WRITERS) != WRITERS) CHECK_FAIL_("cannot start the writers");
    close(pipes[1]);

    int running = WRITERS, status[WRITERS] = {0};
    int loads = 0, hits = 0, bad = 0, late_misses = 0, seen_record = 0, seen_binary = 0;
    while (running > 0) {
        mora_tuning_record r;
        const mora_status rs = mora_cache_record_load(c, "shared key", &r);
        if (rs == MORA_OK) {
            seen_record = 1;
            ++hits;
            if (!valid_record(&r)) ++bad;
        } else if (rs != MORA_E_NOT_FOUND || seen_record) {
            ++late_misses;
            if (late_misses == 1) fprintf(stderr, "record load after a hit: %s: %s\n", mora_status_name(rs), mora_last_error());
        }
        void *data = NULL;
        size_t size = 0;
        const mora_status bs = mora_cache_binary_load(c, "shared key", &data, &size);
        if (bs == MORA_OK) {
            seen_binary = 1;
            ++hits;
            if (!valid_binary(data, size)) ++bad;
            free(data);
        } else if (bs != MORA_E_NOT_FOUND || seen_binary) {
            ++late_misses;
            if (late_misses == 1) fprintf(stderr, "binary load after a hit: %s: %s\n", mora_status_name(bs), mora_last_error());
        }
        loads += 2;
        for (int w = 0; w < WRITERS; ++w)
            if (pids[w] > 0 && waitpid(pids[w], &status[w], WNOHANG) == pids[w]) {
                pids[w] = 0;
                --running;
            }
    }
    printf("concurrent: %d loads while 2 writers stored %d entries each; %d hits\n", loads, 2 * ITERATIONS, hits);
    for (int w = 0; w < WRITERS; ++w) CHECK(WIFEXITED(status[w]) && WEXITSTATUS(status[w]) == 0);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(late_misses, 0);
    CHECK(hits > 0);

    mora_tuning_record r;
    REQUIRE_OK(mora_cache_record_load(c, "shared key", &r));
    CHECK(valid_record(&r) && r.candidates == ITERATIONS - 1);
    void *data = NULL;
    size_t size = 0;
    REQUIRE_OK(mora_cache_binary_load(c, "shared key", &data, &size));
    CHECK(valid_binary(data, size) && ((const unsigned char *)data)[4] == ITERATIONS - 1);
    free(data);
    int strays = 0;
    CHECK_EQ_INT(count_entries(path_in("%s", "concurrent/records"), &strays), 1);
    CHECK_EQ_INT(strays, 0);
    CHECK_EQ_INT(count_entries(path_in("%s", "concurrent/binaries"), &strays), 1);
    CHECK_EQ_INT(strays, 0);
    CHECK_EQ_INT(count_entries(dir, &strays), 2); /* records/, binaries/ and no probe file */
    CHECK_EQ_INT(warn_corrupt, 0);
    mora_cache_close(c);
}

/* ---- the db ------------------------------------------------------------------------------------ */
static const char *db_text =
    "{\"format\": 1, \"entries\": [\n"
    " {\"backend\": \"opencl\", \"vendor\": \"V\", \"kind\": \"fwd\", \"op\": \"*\", \"dtype\": \"*\","
    "  \"params\": {\"FWD_TM\": 16}, \"source\": \"vendor-wide\"},\n"
    " {\"backend\": \"opencl\", \"arch\": \"A\", \"kind\": \"fwd\", \"params\": {\"FWD_TM\": 64}},\n"
    " {\"backend\": \"opencl\", \"device\": \"D\", \"kind\": \"fwd\", \"op\": \"*\", \"dtype\": \"*\","
    "  \"params\": {\"FWD_TM\": 128, \"FWD_WN\": 4}},\n"
    " {\"backend\": \"opencl\", \"device\": \"D\", \"kind\": \"fwd\", \"op\": \"rope\", \"dtype\": \"bf16\","
    "  \"params\": {\"FWD_TN\": 16}},\n"
    " {\"backend\": \"opencl\", \"device\": \"D\", \"kind\": \"fwd\", \"op\": \"*\", \"dtype\": \"f16\","
    "  \"params\": {\"FWD_TN\": 8}},\n"
    " {\"backend\": \"opencl\", \"device\": \"D\", \"kind\": \"fwd\", \"op\": \"rope\", \"dtype\": \"*\","
    "  \"params\": {\"FWD_TN\": 64}},\n"
    " {\"backend\": \"opencl\", \"device\": \"D2\", \"kind\": \"fwd\", \"params\": {\"FWD_TM\": 8}},\n"
    " {\"backend\": \"opencl\", \"device\": \"D2\", \"kind\": \"fwd\", \"params\": {\"FWD_TM\": 128}},\n"
    " {\"backend\": \"opencl\", \"device\": \"D3\", \"kind\": \"fwd\", \"params\": {\"NOT_A_PARAM\": 8}},\n"
    " {\"backend\": \"opencl\", \"device\": \"D4\", \"arch\": \"A9\", \"kind\": \"fwd\", \"params\": {\"FWD_TM\": 8}},\n"
    " {\"backend\": \"opencl\", \"kind\": \"fwd\", \"params\": {\"FWD_TM\": 8}},\n"
    " {\"backend\": \"opencl\", \"device\": \"D\", \"kind\": \"fwd\", \"op\": \"sideways\", \"params\": {}},\n"
    " {\"backend\": \"cuda\", \"device\": \"D\", \"kind\": \"fwd\", \"params\": {\"FWD_TM\": 8}},\n"
    " {\"backend\": \"opencl\", \"device\": \"D\", \"kind\": \"merge\", \"params\": {\"MERGE_LS\": 256}}\n"
    "]}\n";

static mora_kernel_spec make_spec(mora_op op, mora_dtype dtype, mora_kind kind) {
    mora_shape s;
    if (mora_shape_make(&s, 256, 512, 8, op) != MORA_OK) exit(2);
    return mora_spec_default(&s, dtype, kind, MORA_DIALECT_OPENCL);
}

/* Looks up; checks the status, the level matched and the parameter values (want[k] < 0: default). */
static void expect_db(const char *backend, const char *device, const char *arch, const char *vendor, mora_op op,
                      mora_dtype dtype, mora_kind kind, const char *want_level, const int *want, int line) {
    mora_kernel_spec spec = make_spec(op, dtype, kind);
    const mora_kernel_spec before = spec;
    const char *matched = "unset";
    const mora_status s = mora_db_lookup_in(db_text, backend, device, arch, vendor, &spec, &matched);
    ++check_count_;
    if (!want_level) {
        if (s != MORA_E_NOT_FOUND || memcmp(&spec, &before, sizeof spec) != 0) {
            fprintf(stderr, "line %d: ", line);
            CHECK_FAIL_("want NOT_FOUND, spec untouched; got %s", mora_status_name(s));
        }
        return;
    }
    if (s != MORA_OK || strcmp(matched, want_level) != 0) {
        fprintf(stderr, "line %d: ", line);
        CHECK_FAIL_("want a match by %s; got %s, matched %s (%s)", want_level, mora_status_name(s), matched,
                    mora_last_error());
        return;
    }
    const mora_kind_decl *d = mora_spec_decl(&spec);
    for (int k = 0; k < d->param_count; ++k) {
        const int w = want[k] <= 0 ? d->params[k].default_value : want[k]; /* <= 0: the default */
        ++check_count_;
        if (spec.params[k] != w) {
            fprintf(stderr, "line %d: ", line);
            CHECK_FAIL_("%s = %d, want %d", d->params[k].name, spec.params[k], w);
        }
    }
}

static void test_db(void) {
    const int def[MORA_MAX_PARAMS] = {-1, -1, -1, -1, -1, -1, -1, -1};
    /* sized for every parameter a kind may have: the entries not written are 0, i.e. the default */
    const int tm16[MORA_MAX_PARAMS] = {16, -1, -1, -1, -1}, tm64[MORA_MAX_PARAMS] = {64, -1, -1, -1, -1},
              tm128[MORA_MAX_PARAMS] = {128, -1, -1, -1, 4};
    const int tn16[MORA_MAX_PARAMS] = {-1, 16, -1, -1, -1}, tn64[MORA_MAX_PARAMS] = {-1, 64, -1, -1, -1},
              tn8[MORA_MAX_PARAMS] = {-1, 8, -1, -1, -1};
    const int tm8[MORA_MAX_PARAMS] = {8, -1, -1, -1, -1}, ls256[MORA_MAX_PARAMS] = {256};
    const mora_op T = MORA_OP_TRUNCATE, R = MORA_OP_ROPE;
    const mora_kind F = MORA_KIND_FWD;
    /* device → arch → vendor → nothing */
    expect_db("opencl", "D", "A", "V", T, MORA_F32, F, "device", tm128, __LINE__);
    expect_db("opencl", "X", "A", "V", T, MORA_F32, F, "arch", tm64, __LINE__);
    expect_db("opencl", "X", "Y", "V", T, MORA_F32, F, "vendor", tm16, __LINE__);
    expect_db("opencl", NULL, NULL, "V", T, MORA_F32, F, "vendor", tm16, __LINE__);
    expect_db("opencl", "X", "Y", "W", T, MORA_F32, F, NULL, def, __LINE__);
    expect_db("opencl", NULL, NULL, NULL, T, MORA_F32, F, NULL, def, __LINE__);
    /* exact op / dtype beat "*" within a level; only the named params change */
    expect_db("opencl", "D", "A", "V", R, MORA_BF16, F, "device", tn16, __LINE__);
    expect_db("opencl", "D", "A", "V", R, MORA_F32, F, "device", tn64, __LINE__);
    expect_db("opencl", "D", "A", "V", R, MORA_F16, F, "device", tn64, __LINE__); /* op beats dtype */
    expect_db("opencl", "D", "A", "V", T, MORA_F16, F, "device", tn8, __LINE__);
    /* among equals, the first in file order */
    expect_db("opencl", "D2", "Y", "W", T, MORA_F32, F, "device", tm8, __LINE__);
    /* an entry naming an unknown parameter is skipped (warned once): the next level applies */
    const int db_before = warn_db;
    expect_db("opencl", "D3", "A", "V", T, MORA_F32, F, "arch", tm64, __LINE__);
    expect_db("opencl", "D3", "Y", "W", T, MORA_F32, F, NULL, def, __LINE__);
    /* a device entry that also names an arch needs both */
    expect_db("opencl", "D4", "A", "W", T, MORA_F32, F, "arch", tm64, __LINE__);
    expect_db("opencl", "D4", "A9", "W", T, MORA_F32, F, "device", tm8, __LINE__);
    /* backend and kind must match */
    expect_db("cuda", "D", "A", "V", T, MORA_F32, F, "device", tm8, __LINE__);
    expect_db("hip", "D", "A", "V", T, MORA_F32, F, NULL, def, __LINE__);
    expect_db("opencl", "D", "A", "V", T, MORA_F32, MORA_KIND_MERGE, "device", ls256, __LINE__);
    expect_db("opencl", "D", "A", "V", T, MORA_F32, MORA_KIND_BWD_DX, NULL, def, __LINE__);
    /* invalid entries (no device/arch/vendor, an unknown op) were skipped with one warning, the
     * unknown parameter with another */
    CHECK_EQ_INT(warn_db - db_before, 1);
    CHECK_EQ_INT(warn_db, 2);

    /* matched may be NULL; not a db; empty dbs */
    mora_kernel_spec spec = make_spec(T, MORA_F32, F);
    CHECK_STATUS(mora_db_lookup_in(db_text, "opencl", "D", NULL, NULL, &spec, NULL), MORA_OK);
    CHECK_EQ_INT(mora_spec_get_param(&spec, "FWD_TM"), 128);
    spec = make_spec(T, MORA_F32, F);
    CHECK_STATUS(mora_db_lookup_in("{\"format\": 1, \"entries\": []}", "opencl", "D", "A", "V", &spec, NULL),
                 MORA_E_NOT_FOUND);
    CHECK_STATUS(mora_db_lookup_in("", "opencl", "D", "A", "V", &spec, NULL), MORA_E_NOT_FOUND);
    CHECK_STATUS(mora_db_lookup_in("  \n", "opencl", "D", "A", "V", &spec, NULL), MORA_E_NOT_FOUND);
    CHECK_STATUS(mora_db_lookup_in("{\"entries\": [", "opencl", "D", "A", "V", &spec, NULL), MORA_E_ARG);
    CHECK_STATUS(mora_db_lookup_in("{\"format\": 2, \"entries\": []}", "opencl", "D", "A", "V", &spec, NULL), MORA_E_ARG);
    CHECK_STATUS(mora_db_lookup_in("{\"format\": 1}", "opencl", "D", "A", "V", &spec, NULL), MORA_E_ARG);
    CHECK_STATUS(mora_db_lookup_in(db_text, "opencl", "D", "A", "V", NULL, NULL), MORA_E_NULL);

    /* the shipped (embedded) db: an unknown vendor matches nothing, whatever the db holds */
    spec = make_spec(T, MORA_F32, F);
    const mora_kernel_spec before = spec;
    const char *matched = "unset";
    CHECK_STATUS(mora_db_lookup("opencl", "no such device", "no arch", "no such vendor", &spec, &matched),
                 MORA_E_NOT_FOUND);
    CHECK(memcmp(&spec, &before, sizeof spec) == 0);
    CHECK_STR(matched, "unset");
    CHECK_EQ_INT(warn_db, 2); /* the shipped db is valid */
}

int main(void) {
    mora_set_log_callback(on_log, NULL);
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/mora-test-cache-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        fprintf(stderr, "mkdtemp %s: %s\n", root, strerror(errno));
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    test_record_round_trip();
    test_binary_round_trip();
    test_concurrent_writers();
    test_bad_entries();
    test_invalid_records();
    test_fifo();
    test_stale_temporaries();
    test_dead_writers();
    test_select_removes_unusable();
    test_unwritable();
    test_disabled_and_locations();
    test_db();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK_EQ_INT(warn_other, 0);
    printf("cache tests in %s: %.2f s\n", root, (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    rm_rf(root);
    CHECK(!exists(root));
    return check_report();
}
