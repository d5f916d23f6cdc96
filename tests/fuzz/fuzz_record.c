/* libFuzzer target: the kernels cache's record loader (kernels-cache/cache.c).
 *   first byte even: the rest is the text of a record file, loaded under a tuner-style key;
 *   first byte odd:  the rest builds a record (kind, parameter names and values from the edges of
 *                    int), stored (store does not validate) and loaded back: with the right
 *                    checksum, so the value checks (mora_cache_record_check, mora_spec_check) run.
 * Invariants: a load gives MORA_OK or MORA_E_NOT_FOUND, never anything else; a loaded record
 * passes mora_cache_record_check; a built record loads back iff it passes the check, and then equal. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700

#include <math.h>
#include <sys/stat.h>

#include "cache.h"
#include "hash.h" /* mora_hash64: the record's file name */
#include "fuzz_common.h"

static mora_cache *cache;
static char record_path[1024];

static const char *const keys[] = {
    "v1|backend=cuda|device=D|arch=sm_90|kind=fwd|op=share|dtype=f16|tokens<=8192",
    "v1|backend=hip|device=D|arch=gfx942|kind=bwd_dx|op=rope|dtype=bf16|tokens<=8192",
    "v1|backend=opencl|device=D|arch=A|kind=bwd_dm|op=share|dtype=f32|tokens<=256",
    "a key of no particular form",
    "v1|backend=cpu|device=host cpu|arch=host|kind=fwd|op=rope|dtype=f32|tokens<=256",
};
#define KEY_COUNT (sizeof keys / sizeof *keys)

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    mora_set_log_callback(fuzz_quiet_log, NULL);
    if (mora_cache_open(fuzz_scratch_dir(), &cache) != MORA_OK) abort();
    mora_tuning_record r;
    memset(&r, 0, sizeof r);
    snprintf(r.kind, sizeof r.kind, "merge");
    if (mora_cache_record_store(cache, keys[0], &r) != MORA_OK) abort(); /* creates the folders */
    return 0;
}

static const char *path_of(const char *key) {
    snprintf(record_path, sizeof record_path, "%s/records/%016llx.json", fuzz_scratch_dir(),
             (unsigned long long)mora_hash64(key, strlen(key), 0));
    return record_path;
}

static int same(const mora_tuning_record *a, const mora_tuning_record *b) {
    if (strcmp(a->kind, b->kind) != 0 || a->param_count != b->param_count || a->candidates != b->candidates ||
        a->tokens != b->tokens || strcmp(a->tuned_at, b->tuned_at) != 0)
        return 0;
    for (int i = 0; i < a->param_count; ++i)
        if (strcmp(a->param_names[i], b->param_names[i]) != 0 || a->param_values[i] != b->param_values[i]) return 0;
    const double x[4] = {a->time_ms, a->spread, a->default_ms, a->load};
    const double y[4] = {b->time_ms, b->spread, b->default_ms, b->load};
    for (int i = 0; i < 4; ++i)
        if (isfinite(x[i]) ? x[i] != y[i] : !isnan(y[i])) return 0;
    return 1;
}

static void raw_file(const char *key, const uint8_t *data, size_t size) {
    FILE *f = fopen(path_of(key), "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    mora_tuning_record got;
    const mora_status s = mora_cache_record_load(cache, key, &got);
    FUZZ_ASSERT(s == MORA_OK || s == MORA_E_NOT_FOUND);
    if (s == MORA_OK) FUZZ_ASSERT(mora_cache_record_check(key, &got) == MORA_OK);
    unlink(path_of(key));
}

static void built_record(const char *key, fuzz_input *in) {
    static const char *const kinds[] = {"fwd", "bwd_dx", "bwd_dm", "merge", "", "sideways"};
    mora_tuning_record r;
    memset(&r, 0, sizeof r);
    const uint8_t kind = fuzz_u8(in);
    snprintf(r.kind, sizeof r.kind, "%s", kinds[kind % 6]);
    mora_kind k = MORA_KIND_FWD;
    if (mora_kind_from_string(r.kind, &k) != MORA_OK) k = MORA_KIND_FWD;
    /* parameters of the key's family (the cpu backend's host kernels, else the generated ones) */
    const mora_kind_decl *d = mora_kind_decl_get(k, strstr(key, "backend=cpu") ? MORA_DIALECT_HOST : MORA_DIALECT_CUDA);
    if (d->param_count == 0) d = mora_kind_decl_get(k, MORA_DIALECT_CUDA); /* the host merge has none */
    r.param_count = fuzz_u8(in) % (MORA_MAX_PARAMS + 1);
    for (int i = 0; i < r.param_count; ++i) {
        const uint8_t which = fuzz_u8(in);
        if (which < 240) {
            const mora_param_decl *p = &d->params[which % d->param_count];
            snprintf(r.param_names[i], sizeof r.param_names[i], "%s", p->name);
            r.param_values[i] = fuzz_param_value(in, p->values, p->value_count);
        } else {
            snprintf(r.param_names[i], sizeof r.param_names[i], "%s", which & 1 ? "DX_TM" : "X");
            r.param_values[i] = fuzz_int(in);
        }
    }
    const double reals[] = {0.0, 1.5, -0.0, NAN, INFINITY, 1e308, 5e-324};
    r.time_ms = reals[fuzz_u8(in) % 7];
    r.spread = reals[fuzz_u8(in) % 7];
    r.default_ms = reals[fuzz_u8(in) % 7];
    r.load = reals[fuzz_u8(in) % 7];
    r.candidates = fuzz_int(in);
    r.rejected = fuzz_int(in);
    r.failed = fuzz_int(in);
    r.tokens = fuzz_i64(in);
    snprintf(r.tuned_at, sizeof r.tuned_at, "2026-12-01T00:00:%02dZ", fuzz_u8(in) % 60);
    const mora_status stored = mora_cache_record_store(cache, key, &r);
    if (stored != MORA_OK) { /* store refuses only malformed records */
        unlink(path_of(key));
        return;
    }
    const int valid = mora_cache_record_check(key, &r) == MORA_OK;
    mora_tuning_record got;
    const mora_status s = mora_cache_record_load(cache, key, &got);
    FUZZ_ASSERT(s == MORA_OK || s == MORA_E_NOT_FOUND);
    if (s == MORA_OK) FUZZ_ASSERT(valid && same(&r, &got));
    else FUZZ_ASSERT(!valid);
    unlink(path_of(key));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const char *key = keys[(data[0] >> 1) % KEY_COUNT];
    if ((data[0] & 1) == 0) {
        raw_file(key, data + 1, size - 1);
    } else {
        fuzz_input in = {data + 1, size - 1, 0};
        built_record(key, &in);
    }
    return 0;
}
