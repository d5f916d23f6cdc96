/* Status names and messages (from the one list in mora.h) and the thread-local error sentence. */
#include "error.h"

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
