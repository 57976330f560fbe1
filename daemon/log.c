/* log.c: stderr logging with sd-daemon priority prefixes ("<3>" ...). */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum log_level log_min = LOG_LEVEL_INFO;

/* journald priorities: 3 err, 4 warning, 6 info, 7 debug. */
static const int log_prio[] = {7, 6, 4, 3};
static const char *const log_names[] = {"debug", "info", "warning", "error"};

void
log_set_level(enum log_level level)
{
	log_min = level;
}

bool
log_enabled(enum log_level level)
{
	return level >= log_min;
}

int
log_level_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcmp(name, log_names[i]) == 0)
			return (int)i;
	return -1;
}

static void
log_vwrite(enum log_level level, const char *rid, const char *suffix, const char *fmt, va_list ap)
{
	char msg[2048];

	if (level < log_min)
		return;
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (rid != NULL)
		fprintf(stderr, "<%d>[req %s] %s%s%s\n", log_prio[level], rid, msg,
		        suffix ? ": " : "", suffix ? suffix : "");
	else
		fprintf(stderr, "<%d>%s%s%s\n", log_prio[level], msg, suffix ? ": " : "",
		        suffix ? suffix : "");
}

#define LOG_BODY(level, suffix)                                                                    \
	do {                                                                                       \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		log_vwrite(level, NULL, suffix, fmt, ap);                                          \
		va_end(ap);                                                                        \
	} while (0)

void
log_debug(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_DEBUG, NULL);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_INFO, NULL);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_WARNING, NULL);
}

void
log_warn(const char *fmt, ...)
{
	const char *err = strerror(errno);

	LOG_BODY(LOG_LEVEL_WARNING, err);
}

void
log_errorx(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_ERROR, NULL);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_LEVEL_ERROR, NULL);
	exit(1);
}

void
fatal(const char *fmt, ...)
{
	const char *err = strerror(errno);

	LOG_BODY(LOG_LEVEL_ERROR, err);
	exit(1);
}

void
log_req(enum log_level level, const char *rid, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(level, rid, NULL, fmt, ap);
	va_end(ap);
}
