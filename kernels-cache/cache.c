/* The on-disk kernels cache: tuning records and compiled binaries. The interface, the location and
 * the file layouts are in cache.h (the shipped database is db.c).
 *
 * What the header leaves open (it states the layouts, the atomic writes and which entries are bad):
 * - An explicit dir of "" disables the cache, like MORA_CACHE_DIR="" (an explicit "off" is a
 *   directory name). A relative XDG_CACHE_HOME is ignored (XDG base directory rules).
 * - mora_cache_open already disables the cache when the nearest existing folder of the path is not
 *   a writable directory; otherwise the folders are created (mkdir -p, 0700) and probed on the first
 *   store. A store into a disabled cache does nothing and returns MORA_OK; a write that fails in an
 *   enabled cache returns MORA_E_IO (callers treat it as non-fatal).
 * - A record written by another library version is a plain miss, neither removed nor warned about
 *   (it is not corrupt; the next store replaces it). A bad entry warns once because it is removed;
 *   one that cannot be removed (a non-empty folder in its place) is reported as staying, once per
 *   entry name, so a cache that stays broken does not flood the log.
 * - The checksum proves a record is the file the library wrote; mora_cache_record_check then proves
 *   its values are ones a tuner can produce (an older library's bug, a hand edit fail it). Store
 *   writes what it is given: the load is the one gate.
 * - Entries are opened with O_NONBLOCK and their type checked on the open descriptor, so a FIFO in
 *   an entry's place is a bad entry instead of a reader blocked forever.
 * - Temporary files are named "<folder>/.<entry>.tmp-<pid>-XXXXXX". Every open of an entry (load or
 *   store) removes that entry's temporaries whose writer is gone: a pid that no longer runs here and
 *   a file older than DEAD_WRITER_GRACE_SECONDS, or any file older than STALE_TEMP_SECONDS (a writer
 *   of another machine or pid namespace, whose pid says nothing here). The first store of a process
 *   also sweeps the folders for temporaries older than STALE_TEMP_SECONDS.
 * - Non-finite time_ms / spread / default_ms are written as JSON null and read back as NaN. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include "cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"
#include "error.h"

#define RECORD_MAX_BYTES (1u << 20) /* a record is a few hundred bytes: anything over 1 MiB is bad */
#define STALE_TEMP_SECONDS (10 * 60)  /* a temporary file this old belongs to a writer that died */
#define DEAD_WRITER_GRACE_SECONDS 2   /* a pid just seen dead may be a writer of another pid namespace */
static const char binary_magic[8] = {'M', 'O', 'R', 'A', 'B', 'I', 'N', '1'};

struct mora_cache {
    char *dir;             /* the resolved directory; NULL when disabled from the start */
    atomic_int enabled;    /* 0: "off", or found unwritable */
    atomic_int ready;      /* folders created and probed */
    pthread_mutex_t lock;  /* serialises the creation of the folders */
};

/* ---- small helpers ----------------------------------------------------------------------------- */
static char *join(const char *a, const char *b, const char *c) {
    const size_t la = strlen(a), lb = strlen(b), lc = c ? strlen(c) : 0;
    char *s = malloc(la + lb + lc + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    if (c) memcpy(s + la + lb, c, lc);
    s[la + lb + lc] = '\0';
    return s;
}

/* "<dir>/<sub>/<16 hex digits of the key's hash><ext>" */
static char *entry_path(const mora_cache *c, const char *sub, const char *key, const char *ext) {
    char name[64];
    snprintf(name, sizeof name, "/%s/%016llx%s", sub, (unsigned long long)mora_hash64(key, strlen(key), 0), ext);
    return join(c->dir, name, NULL);
}

static int write_all(int fd, const void *data, size_t size) {
    const unsigned char *p = data;
    while (size > 0) {
        const ssize_t n = write(fd, p, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        size -= (size_t)n;
    }
    return 0;
}

/* Reads exactly `size` bytes; -1 with errno, or -2 at a premature end of file. */
static int read_all(int fd, void *data, size_t size) {
    unsigned char *p = data;
    while (size > 0) {
        const ssize_t n = read(fd, p, size);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (n == 0) return -2;
        p += n;
        size -= (size_t)n;
    }
    return 0;
}

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; ++i) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

/* ---- location ---------------------------------------------------------------------------------- */
/* mkdir -p with mode 0700 for the folders it creates. 0, or -1 with errno. */
static int mkdir_p(const char *path) {
    char *p = strdup(path);
    if (!p) return -1;
    int rc = 0;
    for (char *s = p + 1;; ++s) {
        const int end = *s == '\0';
        if (*s != '/' && !end) continue;
        *s = '\0';
        if (mkdir(p, 0700) != 0) {
            const int err = errno;
            struct stat st;
            if (err != EEXIST || stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
                errno = err == EEXIST ? ENOTDIR : err;
                rc = -1;
                break;
            }
        }
        if (end) break;
        *s = '/';
        while (s[1] == '/') ++s;
    }
    const int err = errno;
    free(p);
    errno = err;
    return rc;
}

/* 0 when `dir` exists as a writable folder, or its nearest existing ancestor is one (so it can be
 * created); otherwise the errno that stops it. */
static int creatable(const char *dir) {
    char *p = strdup(dir);
    if (!p) return ENOMEM;
    int err = 0;
    for (;;) {
        struct stat st;
        if (stat(p, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) err = ENOTDIR;
            else if (access(p, W_OK | X_OK) != 0) err = errno;
            break;
        }
        if (errno != ENOENT) {
            err = errno;
            break;
        }
        char *slash = strrchr(p, '/');
        if (!slash) { /* a relative path: its first component is created in the working folder */
            if (access(".", W_OK | X_OK) != 0) err = errno;
            break;
        }
        if (slash == p) { /* the root */
            if (access("/", W_OK | X_OK) != 0) err = errno;
            break;
        }
        *slash = '\0';
    }
    free(p);
    return err;
}

static void disable(mora_cache *c, const char *dir, int err) {
    atomic_store(&c->enabled, 0);
    mora_warn_once("cache-unwritable", "kernels cache: %s: %s; running without a cache", dir, strerror(err));
}

/* Removes the temporary files of writers that died before their rename: hidden names with
 * ".tmp-" (write_atomic) or ".probe-" (ensure_ready) older than STALE_TEMP_SECONDS. Only regular
 * files, found with lstat, are removed; a file another writer renames away meanwhile is simply gone. */
static void remove_stale_temporaries(const char *folder) {
    DIR *d = opendir(folder);
    if (!d) return;
    const time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.' || (!strstr(e->d_name, ".tmp-") && strncmp(e->d_name, ".probe-", 7) != 0)) continue;
        char *path = join(folder, "/", e->d_name);
        struct stat st;
        if (path && lstat(path, &st) == 0 && S_ISREG(st.st_mode) && now - st.st_mtime > STALE_TEMP_SECONDS)
            unlink(path);
        free(path);
    }
    closedir(d);
}

/* Removes the temporaries of the entry at `path` left by writers that are gone (see the top of this
 * file): called on every open of the entry, so a writer killed between its write and its rename
 * costs the next reader of that entry one scan of the folder and no stale file. */
static void remove_dead_writers(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return;
    char *folder = strndup(path, (size_t)(slash - path));
    char *prefix = join(".", slash + 1, ".tmp-"); /* ".<entry>.tmp-" */
    DIR *d = folder && prefix ? opendir(folder) : NULL;
    if (d) {
        const size_t prefix_length = strlen(prefix);
        const time_t now = time(NULL);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strncmp(e->d_name, prefix, prefix_length) != 0) continue;
            char *end = NULL;
            const long pid = strtol(e->d_name + prefix_length, &end, 10);
            const int pid_gone = end && *end == '-' && pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
            char *temporary = join(folder, "/", e->d_name);
            struct stat st;
            if (temporary && lstat(temporary, &st) == 0 && S_ISREG(st.st_mode) &&
                (now - st.st_mtime > STALE_TEMP_SECONDS || (pid_gone && now - st.st_mtime >= DEAD_WRITER_GRACE_SECONDS)))
                unlink(temporary);
            free(temporary);
        }
        closedir(d);
    }
    free(folder);
    free(prefix);
}

/* Creates the folders and probes a write, once; 1 when the cache can be written. */
static int ensure_ready(mora_cache *c) {
    if (atomic_load(&c->ready)) return atomic_load(&c->enabled);
    pthread_mutex_lock(&c->lock);
    if (!atomic_load(&c->ready) && atomic_load(&c->enabled)) {
        int err = 0;
        char *records = join(c->dir, "/records", NULL), *binaries = join(c->dir, "/binaries", NULL);
        char *probe = join(c->dir, "/.probe-XXXXXX", NULL);
        if (!records || !binaries || !probe) err = ENOMEM;
        if (!err && (mkdir_p(c->dir) != 0 || mkdir_p(records) != 0 || mkdir_p(binaries) != 0)) err = errno;
        if (!err) {
            const int fd = mkstemp(probe);
            if (fd < 0) {
                err = errno;
            } else {
                if (write_all(fd, "probe", 5) != 0) err = errno;
                close(fd);
                unlink(probe);
            }
        }
        if (err) {
            disable(c, c->dir, err);
        } else {
            remove_stale_temporaries(c->dir);
            remove_stale_temporaries(records);
            remove_stale_temporaries(binaries);
        }
        free(records);
        free(binaries);
        free(probe);
        atomic_store(&c->ready, 1);
    }
    pthread_mutex_unlock(&c->lock);
    return atomic_load(&c->enabled);
}

mora_status mora_cache_open(const char *dir, mora_cache **cache) {
    MORA_CHECK_PTR(cache);
    mora_cache *c = calloc(1, sizeof *c);
    if (!c) return mora_fail(MORA_E_NO_MEMORY, "kernels cache: out of memory");
    pthread_mutex_init(&c->lock, NULL);
    atomic_init(&c->enabled, 0);
    atomic_init(&c->ready, 0);

    char *path = NULL;
    int resolved = 1; /* 0: deliberately disabled */
    const char *env;
    if (dir) {
        resolved = dir[0] != '\0';
        if (resolved) path = strdup(dir);
    } else if ((env = getenv("MORA_CACHE_DIR")) != NULL) {
        resolved = env[0] != '\0' && strcmp(env, "off") != 0;
        if (resolved) path = strdup(env);
    } else if ((env = getenv("XDG_CACHE_HOME")) != NULL && env[0] == '/') {
        path = join(env, "/mora", NULL);
    } else if ((env = getenv("HOME")) != NULL && env[0] != '\0') {
        path = join(env, "/.cache/mora", NULL);
    } else {
        resolved = 0;
        mora_warn_once("cache-unwritable", "kernels cache: neither HOME nor XDG_CACHE_HOME is set; running without a cache");
    }
    if (resolved && !path) {
        mora_cache_close(c);
        return mora_fail(MORA_E_NO_MEMORY, "kernels cache: out of memory");
    }
    if (path) {
        /* strip trailing slashes (but keep "/") */
        size_t n = strlen(path);
        while (n > 1 && path[n - 1] == '/') path[--n] = '\0';
        c->dir = path;
        const int err = creatable(path);
        if (err == ENOMEM) {
            mora_cache_close(c);
            return mora_fail(MORA_E_NO_MEMORY, "kernels cache: out of memory");
        }
        atomic_store(&c->enabled, 1);
        if (err) {
            disable(c, path, err);
            atomic_store(&c->ready, 1);
        }
    }
    *cache = c;
    return MORA_OK;
}

void mora_cache_close(mora_cache *cache) {
    if (!cache) return;
    pthread_mutex_destroy(&cache->lock);
    free(cache->dir);
    free(cache);
}

int mora_cache_enabled(const mora_cache *cache) { return cache && atomic_load(&cache->enabled); }

const char *mora_cache_dir(const mora_cache *cache) {
    return mora_cache_enabled(cache) && cache->dir ? cache->dir : "";
}

/* ---- writing ----------------------------------------------------------------------------------- */
/* Writes the concatenation of two buffers to `path`: temporary file in the same folder → fsync →
 * rename. MORA_E_IO (path + strerror) on any failure, with the temporary file removed. */
static mora_status write_atomic(const char *path, const void *a, size_t a_size, const void *b,
                                size_t b_size) {
    remove_dead_writers(path);
    /* "<folder>/.<name>.tmp-<pid>-XXXXXX": hidden, in the same folder (so rename() is atomic), and
     * named by its writer so that a reader can tell a dead writer's file (remove_dead_writers) */
    char *folder = strdup(path);
    char *slash = folder ? strrchr(folder, '/') : NULL;
    if (slash) *slash = '\0';
    char *tmp = slash ? join(folder, "/.", path + (slash - folder) + 1) : NULL;
    char suffix[48];
    snprintf(suffix, sizeof suffix, ".tmp-%ld-XXXXXX", (long)getpid());
    char *tmp_full = tmp ? join(tmp, suffix, NULL) : NULL;
    free(tmp);
    tmp = tmp_full;
    if (!tmp) {
        free(folder);
        return mora_fail(MORA_E_NO_MEMORY, "kernels cache: out of memory");
    }
    int fd = mkstemp(tmp);
    if (fd < 0 && errno == ENOENT && mkdir_p(folder) == 0) fd = mkstemp(tmp); /* the folder vanished: again, once */
    free(folder);
    if (fd < 0) {
        const mora_status s = mora_fail(MORA_E_IO, "kernels cache: %s: cannot create a temporary file: %s", tmp,
                                        strerror(errno));
        free(tmp);
        return s;
    }
    const char *step = NULL;
    if (write_all(fd, a, a_size) != 0 || (b_size && write_all(fd, b, b_size) != 0)) step = "write";
    else if (fsync(fd) != 0) step = "fsync";
    const int err = errno;
    if (close(fd) != 0 && !step) step = "close";
    if (!step && rename(tmp, path) != 0) step = "rename";
    if (step) {
        const int e = step[0] == 'c' || step[0] == 'r' ? errno : err;
        unlink(tmp);
        const mora_status s = mora_fail(MORA_E_IO, "kernels cache: %s: %s failed: %s", path, step, strerror(e));
        free(tmp);
        return s;
    }
    free(tmp);
    return MORA_OK;
}

/* ---- reading ----------------------------------------------------------------------------------- */
/* A bad entry: removed (unless another process has replaced it meanwhile), warned about, a miss.
 * A folder in the entry's place is removed when empty; whatever cannot be removed is reported as
 * staying (the warning says so, once per entry name), never as removed. */
static mora_status bad_entry(const char *path, const struct stat *seen, const char *why) {
    struct stat now, link;
    int removed = 0, err = 0;
    if (stat(path, &now) == 0 && now.st_ino == seen->st_ino && now.st_dev == seen->st_dev) {
        /* lstat: a symbolic link in the entry's place is itself removed, never what it points to */
        const int is_dir = lstat(path, &link) == 0 && S_ISDIR(link.st_mode);
        removed = (is_dir ? rmdir(path) : unlink(path)) == 0;
        if (!removed) err = errno;
    } else {
        removed = 1; /* already gone, or replaced by another writer's new entry */
    }
    if (removed) {
        mora_log(MORA_LOG_WARNING, "kernels cache: %s: %s; removed, will be rebuilt", path, why);
        return mora_fail(MORA_E_NOT_FOUND, "kernels cache: %s: %s; removed", path, why);
    }
    const char *name = strrchr(path, '/');
    char topic[48];
    snprintf(topic, sizeof topic, "cache-stuck:%s", name ? name + 1 : path);
    mora_warn_once(topic, "kernels cache: %s: %s; could not remove it (%s): it stays, and is a miss every time",
                   path, why, strerror(err));
    return mora_fail(MORA_E_NOT_FOUND, "kernels cache: %s: %s; could not remove it: %s", path, why, strerror(err));
}

/* Opens an entry for reading without blocking (a FIFO in its place would block open() until a
 * writer came), then makes the descriptor blocking again for the reads of a regular file. */
static int open_entry(const char *path) {
    const int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return -1;
    const int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    return fd;
}

static mora_status miss(const char *path, const char *why) {
    return mora_fail(MORA_E_NOT_FOUND, "kernels cache: %s: %s", path, why);
}

/* ---- records ----------------------------------------------------------------------------------- */
static json_t *real_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static int name_ok(const char *s, size_t capacity) {
    const char *end = memchr(s, '\0', capacity);
    return end != NULL && end != s;
}

/* A double as checksummed: exact (hexadecimal) for finite values, "null" otherwise (as written). */
static void put_real(FILE *f, const char *name, double v) {
    if (isfinite(v)) fprintf(f, "%s=%a\n", name, v);
    else fprintf(f, "%s=null\n", name);
}

/* The checksum covers the key and every field of the record in a canonical text (not the JSON
 * bytes, so that it does not depend on jansson's formatting): FNV-1a 64 of
 *   "mora-record 2\n<key>\n<kind>\n<name>=<value>\n...time_ms=<%a>\n...tuned_at=<text>\n". */
static int record_checksum(const char *key, const mora_tuning_record *r, char hex[17]) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) return -1;
    fprintf(f, "mora-record %d\n%s\n%.*s\n", MORA_CACHE_RECORD_FORMAT, key, (int)sizeof r->kind, r->kind);
    for (int i = 0; i < r->param_count && i < MORA_MAX_PARAMS; ++i)
        fprintf(f, "%.*s=%d\n", (int)sizeof r->param_names[i], r->param_names[i], r->param_values[i]);
    put_real(f, "time_ms", r->time_ms);
    put_real(f, "spread", r->spread);
    put_real(f, "default_ms", r->default_ms);
    put_real(f, "load", r->load);
    fprintf(f, "candidates=%d\nrejected=%d\nfailed=%d\ntokens=%lld\ntuned_at=%.*s\n", r->candidates, r->rejected,
            r->failed, (long long)r->tokens, (int)sizeof r->tuned_at, r->tuned_at);
    if (fclose(f) != 0 || !text) {
        free(text);
        return -1;
    }
    snprintf(hex, 17, "%016llx", (unsigned long long)mora_hash64(text, size, 0));
    free(text);
    return 0;
}

/* The value of field `name` in a key of the tuner's form "...|name=value|..." (tuner/tuner.c,
 * mora_tuning_key); 0 when the key has no such field (or it is too long). */
static int key_field(const char *key, const char *name, char *out, size_t capacity) {
    const size_t n = strlen(name);
    for (const char *p = key; (p = strstr(p, name)) != NULL; p += n) {
        if ((p != key && p[-1] != '|') || p[n] != '=') continue;
        const char *v = p + n + 1;
        const size_t len = strcspn(v, "|");
        if (len >= capacity) return 0;
        memcpy(out, v, len);
        out[len] = '\0';
        return 1;
    }
    return 0;
}

mora_status mora_cache_record_check(const char *key, const mora_tuning_record *record) {
    MORA_CHECK_PTR(key);
    MORA_CHECK_PTR(record);
    const mora_tuning_record *r = record;
    mora_kind kind;
    if (!memchr(r->kind, '\0', sizeof r->kind) || mora_kind_from_string(r->kind, &kind) != MORA_OK)
        return mora_fail(MORA_E_PARAM, "record kind \"%.*s\": not a kernel kind", (int)sizeof r->kind, r->kind);
    /* the dialect and dtype the key names (the tuner's keys do); otherwise the most permissive pair,
     * cuda and f16, so that only what no backend could run is rejected */
    mora_dialect dialect = MORA_DIALECT_CUDA;
    mora_dtype dtype = MORA_F16;
    char field[64];
    mora_dialect of_backend;
    if (key_field(key, "backend", field, sizeof field))
        dialect = mora_dialect_of_backend(field, &of_backend) == MORA_OK ? of_backend : MORA_DIALECT_OPENCL;
    mora_dtype named;
    if (key_field(key, "dtype", field, sizeof field) && mora_dtype_from_string(field, &named) == MORA_OK) dtype = named;
    mora_kernel_spec spec = mora_spec_default(NULL, dtype, kind, dialect);
    const mora_kind_decl *d = mora_spec_decl(&spec);
    if (r->param_count < 0 || r->param_count > d->param_count)
        return mora_fail(MORA_E_PARAM, "record of kind %s: %d parameters; the kind has %d on %s", d->name, r->param_count,
                         d->param_count, mora_dialect_name(dialect));
    unsigned seen = 0;
    for (int i = 0; i < r->param_count; ++i) {
        const char *name = r->param_names[i];
        if (!memchr(name, '\0', sizeof r->param_names[i]))
            return mora_fail(MORA_E_PARAM, "record of kind %s: parameter name %d is not a string", d->name, i);
        const int k = mora_kind_param_index(d, name);
        if (k < 0) return mora_fail(MORA_E_PARAM, "record of kind %s: %s is not one of its parameters", d->name, name);
        if (seen & (1u << k)) return mora_fail(MORA_E_PARAM, "record of kind %s: %s given twice", d->name, name);
        seen |= 1u << k;
        /* the declared range: the smallest to the largest of the values the tuner searches */
        int lo = d->params[k].values[0], hi = lo;
        for (int v = 1; v < d->params[k].value_count; ++v) {
            if (d->params[k].values[v] < lo) lo = d->params[k].values[v];
            if (d->params[k].values[v] > hi) hi = d->params[k].values[v];
        }
        if (r->param_values[i] < lo || r->param_values[i] > hi)
            return mora_fail(MORA_E_PARAM, "param %s=%d: outside its declared range [%d, %d]", name, r->param_values[i],
                             lo, hi);
        spec.params[k] = r->param_values[i];
    }
    return mora_spec_check(&spec, 0, 0);
}

mora_status mora_cache_record_store(mora_cache *cache, const char *key, const mora_tuning_record *record) {
    MORA_CHECK_PTR(cache);
    MORA_CHECK_PTR(key);
    MORA_CHECK_PTR(record);
    if (!name_ok(record->kind, sizeof record->kind))
        return mora_fail(MORA_E_ARG, "record->kind: must be a non-empty string of at most %zu characters",
                         sizeof record->kind - 1);
    if (record->param_count < 0 || record->param_count > MORA_MAX_PARAMS)
        return mora_fail(MORA_E_ARG, "record->param_count=%d: must be in [0, %d]", record->param_count,
                         MORA_MAX_PARAMS);
    for (int i = 0; i < record->param_count; ++i)
        if (!name_ok(record->param_names[i], sizeof record->param_names[i]))
            return mora_fail(MORA_E_ARG, "record->param_names[%d]: must be a non-empty string of at most %zu characters",
                             i, sizeof record->param_names[i] - 1);
    if (!memchr(record->tuned_at, '\0', sizeof record->tuned_at))
        return mora_fail(MORA_E_ARG, "record->tuned_at: not a string of at most %zu characters",
                         sizeof record->tuned_at - 1);
    if (!ensure_ready(cache)) return MORA_OK;
    char checksum[17];
    if (record_checksum(key, record, checksum) != 0) return mora_fail(MORA_E_NO_MEMORY, "kernels cache: out of memory");

    json_t *params = json_object();
    json_t *root = json_object();
    int bad = !params || !root;
    for (int i = 0; !bad && i < record->param_count; ++i)
        bad = json_object_set_new(params, record->param_names[i], json_integer(record->param_values[i])) != 0;
    if (!bad) {
        bad |= json_object_set_new(root, "format", json_integer(MORA_CACHE_RECORD_FORMAT));
        bad |= json_object_set_new(root, "library", json_string(MORA_VERSION_STRING));
        bad |= json_object_set_new(root, "key", json_string(key));
        bad |= json_object_set_new(root, "kind", json_string(record->kind));
        bad |= json_object_set(root, "params", params);
        bad |= json_object_set_new(root, "time_ms", real_or_null(record->time_ms));
        bad |= json_object_set_new(root, "spread", real_or_null(record->spread));
        bad |= json_object_set_new(root, "default_ms", real_or_null(record->default_ms));
        bad |= json_object_set_new(root, "load", real_or_null(record->load));
        bad |= json_object_set_new(root, "candidates", json_integer(record->candidates));
        bad |= json_object_set_new(root, "rejected", json_integer(record->rejected));
        bad |= json_object_set_new(root, "failed", json_integer(record->failed));
        bad |= json_object_set_new(root, "tokens", json_integer(record->tokens));
        bad |= json_object_set_new(root, "tuned_at", json_string(record->tuned_at));
        bad |= json_object_set_new(root, "checksum", json_string(checksum));
    }
    char *text = bad ? NULL : json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(params);
    json_decref(root);
    if (!text) /* jansson fails only for out-of-memory or strings that are not UTF-8 */
        return mora_fail(MORA_E_ARG, "kernels cache: key or record strings are not valid UTF-8 (or out of memory)");

    char *path = entry_path(cache, "records", key, ".json");
    mora_status s = MORA_E_NO_MEMORY;
    if (path) {
        const size_t n = strlen(text);
        text[n] = '\n'; /* replaces the terminator: the file ends with a newline */
        s = write_atomic(path, text, n + 1, NULL, 0);
    } else {
        mora_fail(s, "kernels cache: out of memory");
    }
    free(text);
    free(path);
    return s;
}

static int get_int(json_t *root, const char *name, json_int_t lo, json_int_t hi, json_int_t *out) {
    json_t *v = json_object_get(root, name);
    if (!json_is_integer(v)) return 0;
    const json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) return 0;
    *out = x;
    return 1;
}

static int get_real(json_t *root, const char *name, double *out) {
    json_t *v = json_object_get(root, name);
    if (json_is_null(v)) {
        *out = NAN;
        return 1;
    }
    if (!json_is_number(v)) return 0;
    *out = json_number_value(v);
    return 1;
}

static int get_string(json_t *root, const char *name, char *out, size_t capacity) {
    json_t *v = json_object_get(root, name);
    if (!json_is_string(v) || json_string_length(v) >= capacity || strlen(json_string_value(v)) != json_string_length(v))
        return 0;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 1;
}

/* Validates a parsed record; NULL when good, or why not. Sets *other_library for a record of another
 * library version. */
static const char *record_from_json(json_t *root, const char *key, mora_tuning_record *r, int *other_library) {
    static _Thread_local char why[600];
    if (!json_is_object(root)) return "not a JSON object";
    /* the library first: another version's record (of whatever format) is a plain miss */
    json_t *library = json_object_get(root, "library");
    if (!json_is_string(library)) return "\"library\" missing or not a string";
    if (strcmp(json_string_value(library), MORA_VERSION_STRING) != 0) {
        *other_library = 1;
        return "written by another library version";
    }
    json_int_t format;
    if (!get_int(root, "format", INT_MIN, INT_MAX, &format)) return "\"format\" missing or not an integer";
    if (format != MORA_CACHE_RECORD_FORMAT) {
        snprintf(why, sizeof why, "record format %lld, expected %d", (long long)format, MORA_CACHE_RECORD_FORMAT);
        return why;
    }
    json_t *k = json_object_get(root, "key");
    if (!json_is_string(k)) return "\"key\" missing or not a string";
    if (json_string_length(k) != strlen(key) || strcmp(json_string_value(k), key) != 0)
        return "the key echoed in the file is not the key looked up";
    if (!get_string(root, "kind", r->kind, sizeof r->kind)) return "\"kind\" missing, not a string or too long";
    mora_kind kind;
    if (mora_kind_from_string(r->kind, &kind) != MORA_OK)
        return "\"kind\" is not a kernel kind";
    json_t *params = json_object_get(root, "params");
    if (!json_is_object(params)) return "\"params\" missing or not an object";
    if (json_object_size(params) > MORA_MAX_PARAMS) return "more than MORA_MAX_PARAMS \"params\"";
    r->param_count = 0;
    const char *name;
    json_t *value;
    json_object_foreach(params, name, value) {
        const size_t len = strlen(name);
        if (len == 0 || len >= sizeof r->param_names[0]) return "a parameter name is empty or too long";
        if (!json_is_integer(value) || json_integer_value(value) < INT_MIN || json_integer_value(value) > INT_MAX)
            return "a parameter value is not an int";
        memcpy(r->param_names[r->param_count], name, len + 1);
        r->param_values[r->param_count] = (int)json_integer_value(value);
        ++r->param_count;
    }
    json_int_t v;
    if (!get_real(root, "time_ms", &r->time_ms)) return "\"time_ms\" missing or not a number";
    if (!get_real(root, "spread", &r->spread)) return "\"spread\" missing or not a number";
    if (!get_real(root, "default_ms", &r->default_ms)) return "\"default_ms\" missing or not a number";
    if (!get_real(root, "load", &r->load)) return "\"load\" missing or not a number";
    if (!get_int(root, "candidates", INT_MIN, INT_MAX, &v)) return "\"candidates\" missing or not an int";
    r->candidates = (int)v;
    if (!get_int(root, "rejected", INT_MIN, INT_MAX, &v)) return "\"rejected\" missing or not an int";
    r->rejected = (int)v;
    if (!get_int(root, "failed", INT_MIN, INT_MAX, &v)) return "\"failed\" missing or not an int";
    r->failed = (int)v;
    if (!get_int(root, "tokens", INT64_MIN, INT64_MAX, &v)) return "\"tokens\" missing or not an integer";
    r->tokens = (int64_t)v;
    if (!get_string(root, "tuned_at", r->tuned_at, sizeof r->tuned_at))
        return "\"tuned_at\" missing, not a string or too long";
    /* the file is the one the library wrote: the checksum over the key and every field */
    char stored[17], computed[17];
    if (!get_string(root, "checksum", stored, sizeof stored)) return "\"checksum\" missing, not a string or too long";
    if (record_checksum(key, r, computed) != 0) return "out of memory";
    if (strcmp(stored, computed) != 0) return "checksum mismatch";
    /* and its values are ones a tuner can have produced */
    if (mora_cache_record_check(key, r) != MORA_OK) {
        snprintf(why, sizeof why, "invalid parameters: %s", mora_last_error());
        return why;
    }
    return NULL;
}

mora_status mora_cache_record_load(mora_cache *cache, const char *key, mora_tuning_record *record) {
    MORA_CHECK_PTR(cache);
    MORA_CHECK_PTR(key);
    MORA_CHECK_PTR(record);
    if (!mora_cache_enabled(cache)) return mora_fail(MORA_E_NOT_FOUND, "kernels cache: disabled");
    char *path = entry_path(cache, "records", key, ".json");
    if (!path) return mora_fail(MORA_E_NO_MEMORY, "kernels cache: out of memory");
    mora_status s;
    remove_dead_writers(path);
    const int fd = open_entry(path);
    if (fd < 0) {
        s = miss(path, strerror(errno));
        free(path);
        return s;
    }
    struct stat st;
    char *text = NULL;
    if (fstat(fd, &st) != 0) {
        s = miss(path, strerror(errno));
    } else if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > RECORD_MAX_BYTES) {
        s = bad_entry(path, &st, S_ISREG(st.st_mode) ? (st.st_size <= 0 ? "empty file" : "larger than 1 MiB")
                                                    : "not a regular file");
    } else if ((text = malloc((size_t)st.st_size)) == NULL) {
        s = mora_fail(MORA_E_NO_MEMORY, "kernels cache: out of memory");
    } else {
        const int rc = read_all(fd, text, (size_t)st.st_size);
        if (rc == -1) {
            s = miss(path, strerror(errno));
        } else if (rc == -2) {
            s = bad_entry(path, &st, "shorter than its size");
        } else {
            json_error_t jerr;
            json_t *root = json_loadb(text, (size_t)st.st_size, JSON_REJECT_DUPLICATES, &jerr);
            if (!root) {
                char why[220];
                snprintf(why, sizeof why, "not valid JSON (line %d: %s)", jerr.line, jerr.text);
                s = bad_entry(path, &st, why);
            } else {
                mora_tuning_record r;
                memset(&r, 0, sizeof r);
                int other_library = 0;
                const char *why = record_from_json(root, key, &r, &other_library);
                if (!why) {
                    *record = r;
                    s = MORA_OK;
                } else if (other_library) {
                    s = miss(path, why);
                } else {
                    s = bad_entry(path, &st, why);
                }
                json_decref(root);
            }
        }
    }
    free(text);
    close(fd);
    free(path);
    return s;
}

mora_status mora_cache_record_remove(mora_cache *cache, const char *key) {
    MORA_CHECK_PTR(cache);
    MORA_CHECK_PTR(key);
    if (!mora_cache_enabled(cache)) return MORA_OK;
    char *path = entry_path(cache, "records", key, ".json");
    if (!path) return mora_fail(MORA_E_NO_MEMORY, "kernels cache: out of memory");
    mora_status s = MORA_OK;
    if (unlink(path) != 0 && errno != ENOENT)
        s = mora_fail(MORA_E_IO, "kernels cache: %s: cannot remove: %s", path, strerror(errno));
    free(path);
    return s;
}

/* ---- binaries ---------------------------------------------------------------------------------- */
/* magic[8], u32 format version, u32 key length, key, u64 payload length, u64 checksum, payload */
mora_status mora_cache_binary_store(mora_cache *cache, const char *key, const void *data, size_t size) {
    MORA_CHECK_PTR(cache);
    MORA_CHECK_PTR(key);
    if (size) MORA_CHECK_PTR(data);
    const size_t key_length = strlen(key);
    if (key_length > UINT32_MAX - 64)
        return mora_fail(MORA_E_SIZE, "key of %zu bytes: at most %u", key_length, (unsigned)(UINT32_MAX - 64));
    if (!ensure_ready(cache)) return MORA_OK;
    const size_t header_size = 8 + 4 + 4 + key_length + 8 + 8;
    unsigned char *header = malloc(header_size);
    char *path = entry_path(cache, "binaries", key, ".bin");
    if (!header || !path) {
        free(header);
        free(path);
        return mora_fail(MORA_E_NO_MEMORY, "kernels cache: out of memory");
    }
    unsigned char *p = header;
    memcpy(p, binary_magic, 8);
    put_u32(p + 8, MORA_CACHE_FORMAT_VERSION);
    put_u32(p + 12, (uint32_t)key_length);
    memcpy(p + 16, key, key_length);
    p += 16 + key_length;
    put_u64(p, (uint64_t)size);
    put_u64(p + 8, mora_hash64(data, size, 0));
    const mora_status s = write_atomic(path, header, header_size, data, size);
    free(header);
    free(path);
    return s;
}

mora_status mora_cache_binary_load(mora_cache *cache, const char *key, void **data, size_t *size) {
    MORA_CHECK_PTR(cache);
    MORA_CHECK_PTR(key);
    MORA_CHECK_PTR(data);
    MORA_CHECK_PTR(size);
    if (!mora_cache_enabled(cache)) return mora_fail(MORA_E_NOT_FOUND, "kernels cache: disabled");
    char *path = entry_path(cache, "binaries", key, ".bin");
    if (!path) return mora_fail(MORA_E_NO_MEMORY, "kernels cache: out of memory");
    mora_status s;
    remove_dead_writers(path);
    const int fd = open_entry(path);
    if (fd < 0) {
        s = miss(path, strerror(errno));
        free(path);
        return s;
    }
    const size_t key_length = strlen(key);
    struct stat st;
    unsigned char fixed[16], tail[16];
    char *echo = NULL;
    unsigned char *payload = NULL;
    int rc;
#define READ_OR_BAD(buf, n, what)                                          \
    rc = read_all(fd, (buf), (n));                                         \
    if (rc == -1) {                                                        \
        s = miss(path, strerror(errno));                                   \
        goto done;                                                         \
    }                                                                      \
    if (rc == -2) {                                                        \
        s = bad_entry(path, &st, "truncated (in the " what ")");           \
        goto done;                                                         \
    }
    if (fstat(fd, &st) != 0) {
        s = miss(path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        s = bad_entry(path, &st, "not a regular file");
        goto done;
    }
    READ_OR_BAD(fixed, 16, "header");
    if (memcmp(fixed, binary_magic, 8) != 0) {
        s = bad_entry(path, &st, "bad magic (not a MORABIN1 file)");
        goto done;
    }
    if (get_u32(fixed + 8) != MORA_CACHE_FORMAT_VERSION) {
        char why[96];
        snprintf(why, sizeof why, "format version %u, expected %d", (unsigned)get_u32(fixed + 8),
                 MORA_CACHE_FORMAT_VERSION);
        s = bad_entry(path, &st, why);
        goto done;
    }
    if (get_u32(fixed + 12) != key_length) {
        s = bad_entry(path, &st, "the key echoed in the file is not the key looked up");
        goto done;
    }
    if ((uint64_t)st.st_size < 16 + (uint64_t)key_length + 16) {
        s = bad_entry(path, &st, "truncated (in the header)");
        goto done;
    }
    if ((echo = malloc(key_length + 1)) == NULL) {
        s = mora_fail(MORA_E_NO_MEMORY, "kernels cache: out of memory");
        goto done;
    }
    READ_OR_BAD(echo, key_length, "key");
    if (memcmp(echo, key, key_length) != 0) {
        s = bad_entry(path, &st, "the key echoed in the file is not the key looked up");
        goto done;
    }
    READ_OR_BAD(tail, 16, "header");
    const uint64_t length = get_u64(tail), checksum = get_u64(tail + 8);
    const uint64_t expected = (uint64_t)st.st_size - (16 + (uint64_t)key_length + 16);
    if (length != expected) {
        char why[128];
        snprintf(why, sizeof why, "payload of %llu bytes announced, %llu present", (unsigned long long)length,
                 (unsigned long long)expected);
        s = bad_entry(path, &st, why);
        goto done;
    }
    if ((payload = malloc(length ? (size_t)length : 1)) == NULL) {
        s = mora_fail(MORA_E_NO_MEMORY, "kernels cache: %s: out of memory for %llu bytes", path,
                      (unsigned long long)length);
        goto done;
    }
    READ_OR_BAD(payload, (size_t)length, "payload");
    if (mora_hash64(payload, (size_t)length, 0) != checksum) {
        s = bad_entry(path, &st, "checksum mismatch");
        goto done;
    }
    *data = payload;
    *size = (size_t)length;
    payload = NULL;
    s = MORA_OK;
#undef READ_OR_BAD
done:
    free(payload);
    free(echo);
    close(fd);
    free(path);
    return s;
}
