/* log.h: logging to stderr with journald priority prefixes (R9.4).
 * Request-scoped variants carry the request id. Never log secrets. */
#ifndef CREDITD_LOG_H
#define CREDITD_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARNING, LOG_LEVEL_ERROR };

void log_set_level(enum log_level level);
/* Whether messages of this level are written (to skip formatting work). */
bool log_enabled(enum log_level level);
int log_level_from_name(const char *name); /* -1 when unknown */

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...)
    __attribute__((format(printf, 1, 2))); /* adds strerror(errno) */
void log_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Request-scoped: prefix "[req <id>] ". rid may be NULL. */
void log_req(enum log_level level, const char *rid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
