/* The database of tuned results shipped with the library (the .json files of kernels-cache/db/,
 * embedded at build time as mora_db_files[]): parsing, and the most specific match for a spec. The
 * format and the matching rules are in db/README.md; the interface is db.h. */
#define _POSIX_C_SOURCE 200809L

#include "db.h"

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "mora_db.h"

typedef struct db_entry {
    char *backend, *device, *arch, *vendor; /* device/arch/vendor: NULL when not named */
    mora_kind kind;
    int op;    /* mora_op, or -1 for "*" */
    int dtype; /* mora_dtype, or -1 for "*" */
    int param_count;
    char *param_names[MORA_MAX_PARAMS];
    int param_values[MORA_MAX_PARAMS];
} db_entry;

typedef struct db_table {
    db_entry *entries;
    int count, capacity;
} db_table;

static void db_entry_free(db_entry *e) {
    free(e->backend);
    free(e->device);
    free(e->arch);
    free(e->vendor);
    for (int i = 0; i < e->param_count; ++i) free(e->param_names[i]);
}

static void db_table_free(db_table *t) {
    for (int i = 0; i < t->count; ++i) db_entry_free(&t->entries[i]);
    free(t->entries);
    memset(t, 0, sizeof *t);
}

/* An optional string field: 1 and *out (strdup'd, or NULL when absent); 0 when of the wrong type. */
static int db_string(json_t *entry, const char *name, char **out) {
    json_t *v = json_object_get(entry, name);
    *out = NULL;
    if (!v) return 1;
    if (!json_is_string(v)) return 0;
    *out = strdup(json_string_value(v));
    return *out != NULL;
}

/* Parses one entry; NULL when good, else why not. */
static const char *db_entry_parse(json_t *j, db_entry *e) {
    memset(e, 0, sizeof *e);
    if (!json_is_object(j)) return "not an object";
    if (!db_string(j, "backend", &e->backend) || !e->backend) return "\"backend\" missing or not a string";
    if (!db_string(j, "device", &e->device) || !db_string(j, "arch", &e->arch) || !db_string(j, "vendor", &e->vendor))
        return "\"device\", \"arch\" or \"vendor\" is not a string";
    if (!e->device && !e->arch && !e->vendor) return "names none of \"device\", \"arch\", \"vendor\"";
    json_t *kind = json_object_get(j, "kind");
    if (!json_is_string(kind) || mora_kind_from_string(json_string_value(kind), &e->kind) != MORA_OK)
        return "\"kind\" missing or not a kernel kind";
    json_t *op = json_object_get(j, "op");
    e->op = -1;
    if (op && !(json_is_string(op) && strcmp(json_string_value(op), "*") == 0)) {
        mora_op o;
        if (!json_is_string(op) || mora_op_from_string(json_string_value(op), &o) != MORA_OK)
            return "\"op\" is not an operator name or \"*\"";
        e->op = (int)o;
    }
    json_t *dtype = json_object_get(j, "dtype");
    e->dtype = -1;
    if (dtype && !(json_is_string(dtype) && strcmp(json_string_value(dtype), "*") == 0)) {
        mora_dtype d;
        if (!json_is_string(dtype) || mora_dtype_from_string(json_string_value(dtype), &d) != MORA_OK)
            return "\"dtype\" is not a data type or \"*\"";
        e->dtype = (int)d;
    }
    json_t *params = json_object_get(j, "params");
    if (!json_is_object(params)) return "\"params\" missing or not an object";
    if (json_object_size(params) > MORA_MAX_PARAMS) return "more than MORA_MAX_PARAMS \"params\"";
    const char *name;
    json_t *value;
    json_object_foreach(params, name, value) {
        /* the kind's own range is checked at the match (mora_spec_set_param): 0 is a switch's off */
        if (!json_is_integer(value) || json_integer_value(value) < 0 || json_integer_value(value) > INT_MAX)
            return "a parameter value is not a non-negative int";
        if ((e->param_names[e->param_count] = strdup(name)) == NULL) return "out of memory";
        e->param_values[e->param_count++] = (int)json_integer_value(value);
    }
    json_t *source = json_object_get(j, "source");
    if (source && !json_is_string(source)) return "\"source\" is not a string";
    return NULL;
}

/* Appends the entries of one db text. MORA_E_ARG (with the reason in mora_last_error) when the text
 * is not a db; entries that are invalid are skipped with one "db-invalid" warning. */
static mora_status db_parse(const char *text, const char *name, db_table *t) {
    /* an empty (or blank) file is a db without entries */
    const char *p = text;
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') ++p;
    if (*p == '\0') return MORA_OK;
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return mora_fail(MORA_E_ARG, "kernels db %s: not valid JSON (line %d: %s)", name, jerr.line, jerr.text);
    mora_status s = MORA_OK;
    json_t *format = json_object_get(root, "format");
    json_t *entries = json_object_get(root, "entries");
    if (!json_is_object(root) || !json_is_integer(format) || json_integer_value(format) != 1) {
        s = mora_fail(MORA_E_ARG, "kernels db %s: \"format\" missing or not 1", name);
    } else if (!json_is_array(entries)) {
        s = mora_fail(MORA_E_ARG, "kernels db %s: \"entries\" missing or not an array", name);
    } else {
        size_t i;
        json_t *j;
        json_array_foreach(entries, i, j) {
            if (t->count == t->capacity) {
                const int capacity = t->capacity ? 2 * t->capacity : 16;
                db_entry *grown = realloc(t->entries, (size_t)capacity * sizeof *grown);
                if (!grown) {
                    s = mora_fail(MORA_E_NO_MEMORY, "kernels db %s: out of memory", name);
                    break;
                }
                t->entries = grown;
                t->capacity = capacity;
            }
            db_entry *e = &t->entries[t->count];
            const char *why = db_entry_parse(j, e);
            if (why) {
                mora_warn_once("db-invalid", "kernels db %s: entry %zu: %s; skipped", name, i, why);
                db_entry_free(e);
            } else {
                ++t->count;
            }
        }
    }
    json_decref(root);
    return s;
}

/* Most specific applicable entry → spec. Scores: device 3, arch 2, vendor 1 (×4), + 2 for an exact
 * op, + 1 for an exact dtype; the first of equal scores wins. An entry naming a parameter the kind
 * does not have (or an invalid value) is skipped with one warning. */
static mora_status db_match(const db_table *t, const char *backend, const char *device, const char *arch,
                            const char *vendor, mora_kernel_spec *spec, const char **matched) {
    int best_score = -1;
    const db_entry *best = NULL;
    mora_kernel_spec best_spec = *spec;
    for (int i = 0; i < t->count; ++i) {
        const db_entry *e = &t->entries[i];
        if (strcmp(e->backend, backend) != 0 || e->kind != spec->kind) continue;
        if (e->op >= 0 && e->op != (int)spec->shape.op) continue;
        if (e->dtype >= 0 && e->dtype != (int)spec->dtype) continue;
        if (e->device && (!device || strcmp(e->device, device) != 0)) continue;
        if (e->arch && (!arch || strcmp(e->arch, arch) != 0)) continue;
        if (e->vendor && (!vendor || strcmp(e->vendor, vendor) != 0)) continue;
        const int level = e->device ? 3 : e->arch ? 2 : 1;
        const int score = 4 * level + (e->op >= 0 ? 2 : 0) + (e->dtype >= 0 ? 1 : 0);
        if (score <= best_score) continue;
        mora_kernel_spec candidate = *spec;
        int ok = 1;
        for (int k = 0; ok && k < e->param_count; ++k)
            ok = mora_spec_set_param(&candidate, e->param_names[k], e->param_values[k]) == MORA_OK;
        if (!ok) {
            mora_warn_once("db-param", "kernels db: an entry for backend %s, kind %s: %s; entry skipped", e->backend,
                           mora_kind_name(e->kind), mora_last_error());
            continue;
        }
        best_score = score;
        best = e;
        best_spec = candidate;
    }
    if (!best)
        return mora_fail(MORA_E_NOT_FOUND, "kernels db: no entry for backend %s, device \"%s\", kind %s, op %s, dtype %s",
                         backend, device ? device : "", mora_kind_name(spec->kind), mora_op_name(spec->shape.op),
                         mora_dtype_name(spec->dtype));
    *spec = best_spec;
    if (matched) *matched = best->device ? "device" : best->arch ? "arch" : "vendor";
    return MORA_OK;
}

static db_table shipped_db;
static pthread_once_t shipped_db_once = PTHREAD_ONCE_INIT;

static void shipped_db_load(void) {
    for (int i = 0; i < MORA_DB_FILE_COUNT; ++i)
        if (db_parse(mora_db_files[i].text, mora_db_files[i].name, &shipped_db) != MORA_OK)
            mora_warn_once("db-invalid", "%s; file skipped", mora_last_error());
}

mora_status mora_db_lookup(const char *backend, const char *device, const char *arch, const char *vendor,
                           mora_kernel_spec *spec, const char **matched) {
    MORA_CHECK_PTR(backend);
    MORA_CHECK_PTR(spec);
    pthread_once(&shipped_db_once, shipped_db_load);
    return db_match(&shipped_db, backend, device, arch, vendor, spec, matched);
}

mora_status mora_db_lookup_in(const char *json, const char *backend, const char *device, const char *arch,
                              const char *vendor, mora_kernel_spec *spec, const char **matched) {
    MORA_CHECK_PTR(json);
    MORA_CHECK_PTR(backend);
    MORA_CHECK_PTR(spec);
    db_table t = {0};
    mora_status s = db_parse(json, "(text)", &t);
    if (s == MORA_OK) s = db_match(&t, backend, device, arch, vendor, spec, matched);
    db_table_free(&t);
    return s;
}
