/* Status names and messages (from the one list in mora.h) and the thread-local error sentence. */
#include "error.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Long enough for a headline plus a useful part of a compiler log. */
#define MORA_ERROR_CAPACITY 16384

static _Thread_local char last_error[MORA_ERROR_CAPACITY];

const char *mora_status_string(mora_status s) {
    switch (s) {
#define MORA_STATUS_MESSAGE_(name, value, message) \
    case name:                                      \
        return message;
        MORA_STATUS_LIST(MORA_STATUS_MESSAGE_)
#undef MORA_STATUS_MESSAGE_
    }
    return "unknown status";
}

const char *mora_status_name(mora_status s) {
    switch (s) {
#define MORA_STATUS_NAME_(name, value, message) \
    case name:                                   \
        return #name;
        MORA_STATUS_LIST(MORA_STATUS_NAME_)
#undef MORA_STATUS_NAME_
    }
    return "MORA_E_UNKNOWN_STATUS";
}

const char *mora_last_error(void) { return last_error; }

mora_status mora_fail(mora_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

void mora_error_append(const char *text) {
    size_t used = strlen(last_error);
    if (used + 1 < sizeof last_error) snprintf(last_error + used, sizeof last_error - used, "%s", text);
}

void mora_error_clear(void) { last_error[0] = '\0'; }

/* ---- log callback ---- */
static mora_log_fn log_fn = NULL;
static void *log_user = NULL;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char warned_topics[64][48];
static int warned_count = 0;

void mora_set_log_callback(mora_log_fn fn, void *user) {
    pthread_mutex_lock(&log_lock);
    log_fn = fn;
    log_user = user;
    pthread_mutex_unlock(&log_lock);
}

static void log_message(mora_log_level level, const char *fmt, va_list ap) {
    char message[1024];
    vsnprintf(message, sizeof message, fmt, ap);
    pthread_mutex_lock(&log_lock);
    mora_log_fn fn = log_fn;
    void *user = log_user;
    pthread_mutex_unlock(&log_lock);
    if (fn) fn(level, message, user);
}

void mora_log(mora_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_message(level, fmt, ap);
    va_end(ap);
}

void mora_warn_once(const char *topic, const char *fmt, ...) {
    int seen = 0;
    pthread_mutex_lock(&log_lock);
    for (int i = 0; i < warned_count && !seen; ++i) seen = strcmp(warned_topics[i], topic) == 0;
    if (!seen && warned_count < 64) snprintf(warned_topics[warned_count++], sizeof warned_topics[0], "%s", topic);
    pthread_mutex_unlock(&log_lock);
    if (seen) return;
    va_list ap;
    va_start(ap, fmt);
    log_message(MORA_LOG_WARNING, fmt, ap);
    va_end(ap);
}
