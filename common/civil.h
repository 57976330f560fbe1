/*
 * civil.h: calendar dates and UTC timestamps without a time zone database or a clock.
 *
 * A date ("day") is an int32_t count of days since 1970-01-01 in the proleptic
 * Gregorian calendar (Howard Hinnant's days_from_civil / civil_from_days).
 * Valid dates are 0001-01-01 .. 9999-12-31 (CIVIL_DAY_MIN .. CIVIL_DAY_MAX);
 * functions that produce a date fail (return -1) rather than leave that range.
 *
 * A timestamp is an int64_t count of microseconds since 1970-01-01T00:00:00Z
 * (UTC, no leap seconds).
 */
#ifndef CREDITD_CIVIL_H
#define CREDITD_CIVIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CIVIL_YEAR_MIN 1
#define CIVIL_YEAR_MAX 9999
#define CIVIL_DAY_MIN (-719162)  /* 0001-01-01 */
#define CIVIL_DAY_MAX 2932896    /* 9999-12-31 */
#define CIVIL_DAY_NONE INT32_MIN /* "no date" sentinel, never a valid day */

#define CIVIL_DATE_LEN 11 /* "YYYY-MM-DD" + NUL */
#define CIVIL_TS_LEN 28   /* "YYYY-MM-DDTHH:MM:SS.ffffffZ" + NUL */

#define CIVIL_USEC_PER_SEC INT64_C(1000000)
#define CIVIL_USEC_PER_DAY INT64_C(86400000000)

/* Gregorian leap year (any int year). */
bool civil_is_leap(int year);
/* 28..31, or 0 when month is not 1..12. */
int civil_days_in_month(int year, int month);
/* 365 or 366. */
int civil_days_in_year(int year);

/* True when day lies in CIVIL_DAY_MIN .. CIVIL_DAY_MAX. */
bool civil_day_valid(int32_t day);
/* Validating: 0 and *day set, or -1 for a year outside 1..9999, month outside
 * 1..12 or a day of month that does not exist. */
int civil_from_ymd(int year, int month, int mday, int32_t *day);
/* Any int32_t day (also outside the valid range). */
void civil_to_ymd(int32_t day, int *year, int *month, int *mday);
/* Calendar year of day. */
int civil_year(int32_t day);

/* Strict "YYYY-MM-DD" (exactly 10 bytes of s, not NUL-terminated necessarily). */
int civil_parse_date(const char *s, size_t len, int32_t *day);
/* Writes "YYYY-MM-DD" and NUL; -1 (and "") for a day outside the valid range. */
int civil_format_date(int32_t day, char buf[CIVIL_DATE_LEN]);

/* Adds months (may be negative); a day of month that does not exist in the
 * target month is clamped to its last day (2024-01-31 + 1 = 2024-02-29). */
int civil_add_months(int32_t day, int months, int32_t *out);
/* First day of day's month / year / half-year (1 Jan or 1 Jul). */
int32_t civil_month_start(int32_t day);
int32_t civil_year_start(int32_t day);
int32_t civil_half_year_start(int32_t day);
/* 0 = Monday .. 6 = Sunday. */
int civil_weekday(int32_t day);
/*
 * The n-th working day (Monday..Friday, no holidays) after day for n > 0, before
 * day for n < 0; n == 0 gives day itself even on a weekend. A weekend start
 * counts as the working day before it when n > 0 (Saturday + 1 = Monday,
 * Friday + 1 = Monday, Saturday + 5 = next Friday) and as the working day after
 * it when n < 0 (Sunday - 1 = Friday).
 */
int civil_add_working_days(int32_t day, int n, int32_t *out);

/*
 * Strict RFC 3339 date-time: "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)".
 * 'T' may be 't' or ' ', 'Z' may be 'z' (RFC 3339 section 5.6 NOTE). frac is
 * 1..9 digits, truncated to microseconds. Year 1970..9999; leap second 60 and
 * any out-of-range field are rejected. Exactly len bytes are consumed; single
 * pass, no allocation. 0 and *usec set, or -1.
 */
int civil_parse_rfc3339(const char *s, size_t len, int64_t *usec);
/* "2026-11-27T21:57:08Z", or "2026-11-27T21:57:08.123456Z" when usec has a
 * sub-second part; always UTC. -1 (and "") outside years 1..9999. */
int civil_format_rfc3339(int64_t usec, char buf[CIVIL_TS_LEN]);

/* The local calendar day of instant usec at UTC offset offset_seconds (east
 * positive). Defined for every input (no overflow possible). */
int32_t civil_ts_to_day(int64_t usec, int32_t offset_seconds);
/* The instant of local midnight starting day at UTC offset offset_seconds;
 * -1 on overflow. */
int civil_day_to_ts(int32_t day, int32_t offset_seconds, int64_t *usec);

#endif
