/* Internal: the on-disk kernels cache — tuning records (small JSON files, one per key) and compiled
 * binaries (content-addressed). The database of tuned results shipped with the library is db.h.
 *
 * Location, first that applies: the directory passed to mora_cache_open → $MORA_CACHE_DIR (empty or
 * "off" disables the cache) → $XDG_CACHE_HOME/mora → $HOME/.cache/mora. The directory is created on
 * the first write (mode 0700). If it cannot be created or written, the cache warns once (through
 * the log callback, mora_warn_once) and behaves as disabled; nothing fails because of it.
 *
 * Files (names are the 16-hex-digit FNV-1a hash of the key):
 *   records/<hash>.json   {"format": 3, "library": "0.3.0", "key": "<key>", "kind": "fwd",
 *                          "params": {"FWD_TM": 32, ...}, "time_ms": .., "default_ms": .., ...,
 *                          "checksum": "<16 hex digits: FNV-1a of the key and every field>"}
 *   binaries/<hash>.bin   magic "MORABIN1", u32 format version, u32 key length, key bytes,
 *                          u64 payload length, u64 FNV-1a checksum of the payload, payload
 * Every write goes to a temporary file in the same folder, is fsync()ed, then rename()d over the
 * final name, so readers see an old entry or a whole new one and two processes writing the same key
 * both finish with a valid entry. A truncated, corrupt, wrong-format-version or wrong-key entry, a
 * record whose checksum or parameters are wrong (mora_cache_record_check), or anything but a
 * regular file in an entry's place (a FIFO does not block the reader) is a miss: it is removed, with
 * one warning per entry. A temporary file names its writer's pid; the next open of its entry (load
 * or store) removes it once that pid no longer runs, and any temporary once it is 10 minutes old. */
#ifndef MORA_KERNELS_CACHE_CACHE_H
#define MORA_KERNELS_CACHE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

#define MORA_CACHE_FORMAT_VERSION 1 /* binaries; also part of the tuner's keys */
#define MORA_CACHE_RECORD_FORMAT 3  /* records; 2: with "checksum", parameters validated on load; 3: "load" */

typedef struct mora_cache mora_cache;

/* A tuning result for one key. */
typedef struct mora_tuning_record {
    char kind[16];                          /* "fwd", "bwd_dx", "bwd_dm", "merge" */
    int param_count;
    char param_names[MORA_MAX_PARAMS][32];  /* as declared in codegen/kernels.c */
    int param_values[MORA_MAX_PARAMS];
    double time_ms;      /* median time of the winner */
    double spread;       /* relative spread of the winner's samples (e.g. 0.03) */
    double default_ms;   /* median time of the default parameters */
    double load;         /* other processes' share of the cores while it was measured, [0, 1]; NaN unknown */
    int candidates;      /* candidates tried */
    int rejected;        /* wrong results (failed verification) */
    int failed;          /* compile or launch failures */
    int64_t tokens;      /* token count it was measured at */
    char tuned_at[32];   /* UTC time, ISO 8601 */
} mora_tuning_record;

/* Opens the cache at `dir`, or at the default location when dir is NULL. Never fails because the
 * directory is missing or unwritable (the cache is then disabled, with one warning); fails only
 * for out-of-memory. */
mora_status mora_cache_open(const char *dir, mora_cache **cache);
void mora_cache_close(mora_cache *cache);
/* 1 if entries are read and written, 0 when disabled ("off", or unwritable). */
int mora_cache_enabled(const mora_cache *cache);
/* The directory in use ("" when disabled). */
const char *mora_cache_dir(const mora_cache *cache);

/* Stores / loads the record of `key` (any string; the tuner builds it from backend, device, arch,
 * compute units, driver and compiler versions, library version, kind, shape, dtype, token bucket).
 * load: MORA_OK, or MORA_E_NOT_FOUND for a miss (including a disabled cache and a bad entry). */
mora_status mora_cache_record_store(mora_cache *cache, const char *key, const mora_tuning_record *record);
mora_status mora_cache_record_load(mora_cache *cache, const char *key, mora_tuning_record *record);
/* Removes the record of `key` (no error when there is none or the cache is disabled): for a caller
 * that finds a loaded record unusable where load cannot see it (the device's limits). */
mora_status mora_cache_record_remove(mora_cache *cache, const char *key);
/* Whether a record's values are ones the tuner can have produced: a kernel kind, parameters of that
 * kind's table for the key's backend (each at most once) within their declared ranges (the smallest
 * to the largest value of the lists in codegen/kernels.c), and mora_spec_check passes for the
 * dialect and dtype the key names ("backend=…", "dtype=…", as the tuner's keys do; cuda and f16
 * when it names none). The device's
 * limits are not known here: the caller checks them. MORA_OK or MORA_E_PARAM with the reason.
 * mora_cache_record_load applies it; store does not (load is the one gate). */
mora_status mora_cache_record_check(const char *key, const mora_tuning_record *record);

/* Stores / loads a compiled binary under `key` (the caller hashes source, options, target, compiler
 * and driver versions into the key). load: *data is malloc'd (the caller frees); MORA_E_NOT_FOUND
 * for a miss. */
mora_status mora_cache_binary_store(mora_cache *cache, const char *key, const void *data, size_t size);
mora_status mora_cache_binary_load(mora_cache *cache, const char *key, void **data, size_t *size);

#endif
