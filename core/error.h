/* Internal: setting the thread-local error sentence that mora_last_error() returns.
 *
 * Every failing library call goes through mora_fail(), so the status and its sentence always
 * travel together:  return mora_fail(MORA_E_SIZE, "d_in=%lld: must be >= 1", (long long)d_in);
 */
#ifndef MORA_CORE_ERROR_H
#define MORA_CORE_ERROR_H

#include "mora.h"

#if defined(__GNUC__)
#define MORA_PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define MORA_PRINTF_LIKE(fmt, args)
#endif

/* Records the sentence (printf format) for this thread and returns `status`. */
mora_status mora_fail(mora_status status, const char *fmt, ...) MORA_PRINTF_LIKE(2, 3);
/* Appends text to the current sentence (e.g. a compiler log after a headline). */
void mora_error_append(const char *text);
/* Empties the sentence; called at the start of public entry points that may fail. */
void mora_error_clear(void);

/* Sends a message to the caller's log callback (mora_set_log_callback); never prints. */
void mora_log(mora_log_level level, const char *fmt, ...) MORA_PRINTF_LIKE(2, 3);
/* Like mora_log(MORA_LOG_WARNING, …) but only the first time for a given `topic` in this process
 * (e.g. "cache-unwritable"); up to 64 distinct topics are remembered. */
void mora_warn_once(const char *topic, const char *fmt, ...) MORA_PRINTF_LIKE(2, 3);

/* Checks a required pointer argument: `MORA_CHECK_PTR(x);` returns MORA_E_NULL naming it. */
#define MORA_CHECK_PTR(p)                                                               \
    do {                                                                                \
        if ((p) == NULL) return mora_fail(MORA_E_NULL, "%s=NULL: must not be NULL", #p); \
    } while (0)

/* Checks a handle argument called `name` (mora.h, "Handles"): not NULL, and its first member
 * `magic` holds the live value of its type — a destroyed handle (whose word was cleared or reused)
 * or another kind of object is MORA_E_ARG: `MORA_CHECK_HANDLE(p, "plan", MORA_PLAN_MAGIC, "mora_plan");` */
#define MORA_CHECK_HANDLE(p, name, live, type)                                                                \
    do {                                                                                                      \
        if ((p) == NULL) return mora_fail(MORA_E_NULL, "%s=NULL: must not be NULL", name);                    \
        if ((p)->magic != (live))                                                                             \
            return mora_fail(MORA_E_ARG, "%s=%p: not a live %s (destroyed already, or another kind of object)", \
                             name, (const void *)(p), type);                                                  \
    } while (0)

/* Propagates a failing status: `MORA_TRY(call());` */
#define MORA_TRY(expr)                         \
    do {                                       \
        mora_status mora_try_s_ = (expr);      \
        if (mora_try_s_ != MORA_OK) return mora_try_s_; \
    } while (0)

#endif
