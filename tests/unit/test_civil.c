/* test_civil.c: dates, working days and RFC 3339 timestamps (common/civil.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "civil.h"

static int32_t
D(int y, int m, int d)
{
	int32_t day = 0;

	assert_int_equal(civil_from_ymd(y, m, d, &day), 0);
	return day;
}

static void
test_known_days(void **state)
{
	(void)state;
	assert_int_equal(D(1970, 1, 1), 0);
	assert_int_equal(D(1969, 12, 31), -1);
	assert_int_equal(D(2000, 3, 1), 11017);
	assert_int_equal(D(2024, 2, 29), 19782);
	assert_int_equal(D(2026, 11, 27), 20784);
	assert_int_equal(D(1, 1, 1), CIVIL_DAY_MIN);
	assert_int_equal(D(9999, 12, 31), CIVIL_DAY_MAX);
	assert_true(civil_day_valid(CIVIL_DAY_MIN));
	assert_false(civil_day_valid(CIVIL_DAY_MIN - 1));
	assert_false(civil_day_valid(CIVIL_DAY_MAX + 1));
	assert_false(civil_day_valid(CIVIL_DAY_NONE));
}

/* Every valid day round-trips and the next day is the next calendar day. */
static void
test_roundtrip_all_days(void **state)
{
	int y = 1, m = 1, d = 1;

	(void)state;
	for (int32_t day = CIVIL_DAY_MIN; day <= CIVIL_DAY_MAX; day++) {
		int yy, mm, dd;
		int32_t back;

		civil_to_ymd(day, &yy, &mm, &dd);
		if (yy != y || mm != m || dd != d)
			fail_msg("day %d: got %d-%d-%d, want %d-%d-%d", (int)day, yy, mm, dd, y, m,
			         d);
		assert_int_equal(civil_from_ymd(yy, mm, dd, &back), 0);
		assert_int_equal(back, day);
		if (++d > civil_days_in_month(y, m)) {
			d = 1;
			if (++m > 12) {
				m = 1;
				y++;
			}
		}
	}
	assert_int_equal(y, 10000);
}

static void
test_invalid_ymd(void **state)
{
	int32_t day = 42;

	(void)state;
	assert_int_equal(civil_from_ymd(2023, 2, 29, &day), -1);
	assert_int_equal(civil_from_ymd(1900, 2, 29, &day), -1);
	assert_int_equal(civil_from_ymd(2024, 2, 30, &day), -1);
	assert_int_equal(civil_from_ymd(2024, 4, 31, &day), -1);
	assert_int_equal(civil_from_ymd(2024, 0, 1, &day), -1);
	assert_int_equal(civil_from_ymd(2024, 13, 1, &day), -1);
	assert_int_equal(civil_from_ymd(2024, 1, 0, &day), -1);
	assert_int_equal(civil_from_ymd(2024, 1, 32, &day), -1);
	assert_int_equal(civil_from_ymd(0, 1, 1, &day), -1);
	assert_int_equal(civil_from_ymd(10000, 1, 1, &day), -1);
	assert_int_equal(day, 42);
	assert_int_equal(civil_from_ymd(2000, 2, 29, &day), 0);
	assert_int_equal(civil_from_ymd(2024, 2, 29, &day), 0);
}

static void
test_leap_and_lengths(void **state)
{
	(void)state;
	assert_false(civil_is_leap(1900));
	assert_true(civil_is_leap(2000));
	assert_true(civil_is_leap(2024));
	assert_false(civil_is_leap(2023));
	assert_false(civil_is_leap(2100));
	assert_int_equal(civil_days_in_year(2023), 365);
	assert_int_equal(civil_days_in_year(2024), 366);
	assert_int_equal(civil_days_in_month(2024, 2), 29);
	assert_int_equal(civil_days_in_month(2023, 2), 28);
	assert_int_equal(civil_days_in_month(2023, 4), 30);
	assert_int_equal(civil_days_in_month(2023, 12), 31);
	assert_int_equal(civil_days_in_month(2023, 13), 0);
	assert_int_equal(civil_year(D(2024, 12, 31)), 2024);
	assert_int_equal(civil_year(D(1969, 1, 1)), 1969);
}

/* Parse from a malloc'd copy without NUL so that ASan catches any over-read. */
static int
parse_date(const char *s, int32_t *day)
{
	size_t len = strlen(s);
	char *copy = malloc(len ? len : 1);
	int rc;

	memcpy(copy, s, len);
	rc = civil_parse_date(copy, len, day);
	free(copy);
	return rc;
}

static void
test_parse_format_date(void **state)
{
	static const char *const bad[] = {
	    "2024-2-29",  "2024-02-29 ", " 2024-02-29", "2024/02/29", "+024-02-29", "2023-02-29",
	    "0000-01-01", "2024-02-2a",  "2024-02",     "",           "20240229",   "2024-13-01",
	    "2024-00-10", "2024-01-00",  "-001-01-01",  "2024-01-1 "};
	char buf[CIVIL_DATE_LEN];
	int32_t day;

	(void)state;
	assert_int_equal(parse_date("2024-02-29", &day), 0);
	assert_int_equal(day, 19782);
	assert_int_equal(parse_date("0001-01-01", &day), 0);
	assert_int_equal(day, CIVIL_DAY_MIN);
	assert_int_equal(parse_date("9999-12-31", &day), 0);
	assert_int_equal(day, CIVIL_DAY_MAX);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse_date(bad[i], &day) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
	/* exactly len bytes are read: a longer buffer with len 10 is fine */
	assert_int_equal(civil_parse_date("2024-02-29T00:00:00Z", 10, &day), 0);
	assert_int_equal(civil_parse_date(NULL, 10, &day), -1);

	assert_int_equal(civil_format_date(0, buf), 0);
	assert_string_equal(buf, "1970-01-01");
	assert_int_equal(civil_format_date(D(2026, 11, 27), buf), 0);
	assert_string_equal(buf, "2026-11-27");
	assert_int_equal(civil_format_date(CIVIL_DAY_MIN, buf), 0);
	assert_string_equal(buf, "0001-01-01");
	assert_int_equal(civil_format_date(CIVIL_DAY_MAX, buf), 0);
	assert_string_equal(buf, "9999-12-31");
	assert_int_equal(civil_format_date(CIVIL_DAY_MAX + 1, buf), -1);
	assert_string_equal(buf, "");
	assert_int_equal(civil_format_date(CIVIL_DAY_MIN - 1, buf), -1);
}

static void
test_add_months(void **state)
{
	int32_t out;

	(void)state;
	/* clamping to the end of the month */
	assert_int_equal(civil_add_months(D(2024, 1, 31), 1, &out), 0);
	assert_int_equal(out, D(2024, 2, 29));
	assert_int_equal(civil_add_months(D(2023, 1, 31), 1, &out), 0);
	assert_int_equal(out, D(2023, 2, 28));
	assert_int_equal(civil_add_months(D(2024, 3, 31), -1, &out), 0);
	assert_int_equal(out, D(2024, 2, 29));
	assert_int_equal(civil_add_months(D(2024, 8, 31), 1, &out), 0);
	assert_int_equal(out, D(2024, 9, 30));
	/* anniversaries of 29 Feb */
	assert_int_equal(civil_add_months(D(2024, 2, 29), 12, &out), 0);
	assert_int_equal(out, D(2025, 2, 28));
	assert_int_equal(civil_add_months(D(2024, 2, 29), 48, &out), 0);
	assert_int_equal(out, D(2028, 2, 29));
	/* across years, both ways */
	assert_int_equal(civil_add_months(D(2024, 5, 15), -5, &out), 0);
	assert_int_equal(out, D(2023, 12, 15));
	assert_int_equal(civil_add_months(D(2024, 11, 15), 14, &out), 0);
	assert_int_equal(out, D(2026, 1, 15));
	assert_int_equal(civil_add_months(D(2024, 11, 15), 0, &out), 0);
	assert_int_equal(out, D(2024, 11, 15));
	/* out of range */
	assert_int_equal(civil_add_months(D(9999, 12, 1), 1, &out), -1);
	assert_int_equal(civil_add_months(D(1, 1, 15), -1, &out), -1);
	assert_int_equal(civil_add_months(0, INT32_MAX, &out), -1);
	assert_int_equal(civil_add_months(0, INT32_MIN, &out), -1);
	assert_int_equal(civil_add_months(CIVIL_DAY_MAX + 1, 1, &out), -1);
}

static void
test_starts(void **state)
{
	(void)state;
	assert_int_equal(civil_month_start(D(2024, 2, 29)), D(2024, 2, 1));
	assert_int_equal(civil_month_start(D(2024, 3, 1)), D(2024, 3, 1));
	assert_int_equal(civil_year_start(D(2024, 12, 31)), D(2024, 1, 1));
	assert_int_equal(civil_half_year_start(D(2024, 1, 1)), D(2024, 1, 1));
	assert_int_equal(civil_half_year_start(D(2024, 6, 30)), D(2024, 1, 1));
	assert_int_equal(civil_half_year_start(D(2024, 7, 1)), D(2024, 7, 1));
	assert_int_equal(civil_half_year_start(D(2024, 12, 31)), D(2024, 7, 1));
	assert_int_equal(civil_half_year_start(D(1969, 8, 15)), D(1969, 7, 1));
}

static void
test_weekday(void **state)
{
	(void)state;
	assert_int_equal(civil_weekday(0), 3);               /* 1970-01-01 Thursday */
	assert_int_equal(civil_weekday(D(1969, 12, 28)), 6); /* Sunday */
	assert_int_equal(civil_weekday(D(2024, 2, 29)), 3);  /* Thursday */
	assert_int_equal(civil_weekday(D(2026, 11, 27)), 4); /* Friday */
	assert_int_equal(civil_weekday(D(1, 1, 1)), 0);      /* Monday */
	assert_int_equal(civil_weekday(D(2024, 3, 2)), 5);   /* Saturday */
}

static int32_t
wd(int32_t day, int n)
{
	int32_t out = 0;

	assert_int_equal(civil_add_working_days(day, n, &out), 0);
	return out;
}

/* Naive reference: step one day at a time, counting Monday..Friday. */
static int32_t
wd_naive(int32_t day, int n)
{
	int step = n > 0 ? 1 : -1;

	while (n != 0) {
		day += step;
		if (civil_weekday(day) < 5)
			n -= step;
	}
	return day;
}

static void
test_working_days(void **state)
{
	int32_t out;

	(void)state;
	/* Week of Mon 2024-03-04; Fri 03-01, Sat 03-02, Sun 03-03. */
	assert_int_equal(wd(D(2024, 3, 2), 1), D(2024, 3, 4));  /* Sat + 1 = Mon */
	assert_int_equal(wd(D(2024, 3, 3), 1), D(2024, 3, 4));  /* Sun + 1 = Mon */
	assert_int_equal(wd(D(2024, 3, 1), 1), D(2024, 3, 4));  /* Fri + 1 = Mon */
	assert_int_equal(wd(D(2024, 3, 2), 5), D(2024, 3, 8));  /* Sat + 5 = Fri */
	assert_int_equal(wd(D(2024, 3, 4), 3), D(2024, 3, 7));  /* Mon + 3 = Thu */
	assert_int_equal(wd(D(2024, 3, 6), 3), D(2024, 3, 11)); /* Wed + 3 = Mon */
	assert_int_equal(wd(D(2024, 3, 1), 10), D(2024, 3, 15));
	assert_int_equal(wd(D(2024, 3, 3), -1), D(2024, 3, 1)); /* Sun - 1 = Fri */
	assert_int_equal(wd(D(2024, 3, 2), -1), D(2024, 3, 1)); /* Sat - 1 = Fri */
	assert_int_equal(wd(D(2024, 3, 4), -1), D(2024, 3, 1)); /* Mon - 1 = Fri */
	assert_int_equal(wd(D(2024, 3, 6), -5), D(2024, 2, 28));
	assert_int_equal(wd(D(2024, 3, 2), 0), D(2024, 3, 2)); /* n = 0: unchanged */
	/* agrees with day-by-day stepping for two weeks of starts and -23..23 */
	for (int32_t day = D(2024, 2, 24); day < D(2024, 3, 9); day++)
		for (int n = -23; n <= 23; n++)
			assert_int_equal(wd(day, n), wd_naive(day, n));
	assert_int_equal(civil_add_working_days(CIVIL_DAY_MAX, 1, &out), -1);
	assert_int_equal(civil_add_working_days(0, INT32_MAX, &out), -1);
	assert_int_equal(civil_add_working_days(0, INT32_MIN, &out), -1);
}

static int
parse_ts(const char *s, int64_t *usec)
{
	size_t len = strlen(s);
	char *copy = malloc(len ? len : 1);
	int rc;

	memcpy(copy, s, len);
	rc = civil_parse_rfc3339(copy, len, usec);
	free(copy);
	return rc;
}

static int64_t
ts_ok(const char *s)
{
	int64_t usec = 0;

	if (parse_ts(s, &usec) != 0)
		fail_msg("rejected \"%s\"", s);
	return usec;
}

#define SEC INT64_C(1000000)

static void
test_parse_rfc3339(void **state)
{
	/* 2026-11-27 is day 20784: 20784 * 86400 + 21 * 3600 + 57 * 60 + 8 = 1795816628 s */
	const int64_t base = INT64_C(1795816628) * SEC;
	static const char *const bad[] = {
	    "2026-11-27T21:57:08",             /* no offset */
	    "2026-11-27T21:57:60Z",            /* leap second */
	    "2026-11-27T24:00:00Z",            /* hour */
	    "2026-11-27T21:60:00Z",            /* minute */
	    "2023-02-29T00:00:00Z",            /* no such day */
	    "1969-12-31T23:59:59Z",            /* before 1970 */
	    "2026-11-27T21:57:08.Z",           /* empty fraction */
	    "2026-11-27T21:57:08.1234567890Z", /* 10 digits */
	    "2026-11-27T21:57:08+0100",        /* offset without colon */
	    "2026-11-27T21:57:08+01",          /* short offset */
	    "2026-11-27T21:57:08+24:00",       /* offset hour */
	    "2026-11-27T21:57:08+01:60",       /* offset minute */
	    "2026-11-27T21:57Z",               /* no seconds */
	    "2026-11-27T21:57:08Zjunk",        /* trailing bytes */
	    "2026-11-27T21:57:08ZZ",
	    "2026-11-27X21:57:08Z", /* separator */
	    "2026-11-27T21:57:08 Z",
	    "2026-11-27T1:57:08Z",
	    "2026-11-27t21:57:08.12a4Z",
	    "+2026-11-27T21:57:08Z",
	    "2026-11-27",
	    "",
	};

	(void)state;
	assert_int_equal(ts_ok("2026-11-27T21:57:08Z"), base);
	assert_int_equal(ts_ok("2026-11-27t21:57:08z"), base);
	assert_int_equal(ts_ok("2026-11-27 21:57:08Z"), base);
	assert_int_equal(ts_ok("2026-11-27T21:57:08.1Z"), base + 100000);
	assert_int_equal(ts_ok("2026-11-27T21:57:08.123456Z"), base + 123456);
	assert_int_equal(ts_ok("2026-11-27T21:57:08.123456789Z"), base + 123456); /* truncated */
	assert_int_equal(ts_ok("2026-11-27T21:57:08.000001Z"), base + 1);
	/* local = UTC + offset */
	assert_int_equal(ts_ok("2026-11-27T22:57:08+01:00"), base);
	assert_int_equal(ts_ok("2026-11-27T16:27:08-05:30"), base);
	assert_int_equal(ts_ok("2026-11-27T21:57:08-00:00"), base);
	assert_int_equal(ts_ok("2026-11-28T21:56:08+23:59"), base);
	assert_int_equal(ts_ok("1970-01-01T00:00:00Z"), 0);
	assert_int_equal(ts_ok("1970-01-01T00:30:00+01:00"), -1800 * SEC);
	/* 9999-12-31 is day 2932896 */
	assert_int_equal(ts_ok("9999-12-31T23:59:59.999999Z"),
	                 (INT64_C(2932896) * 86400 + 86399) * SEC + 999999);
	assert_int_equal(ts_ok("2024-02-29T12:00:00Z"), (INT64_C(19782) * 86400 + 43200) * SEC);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t v = 7;

		if (parse_ts(bad[i], &v) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_int_equal(v, 7);
	}
	/* only len bytes are read */
	int64_t v;
	assert_int_equal(civil_parse_rfc3339("2026-11-27T21:57:08Zjunk", 20, &v), 0);
	assert_int_equal(v, base);
	assert_int_equal(civil_parse_rfc3339(NULL, 20, &v), -1);
}

static void
test_format_rfc3339(void **state)
{
	char buf[CIVIL_TS_LEN];
	int64_t back;

	(void)state;
	assert_int_equal(civil_format_rfc3339(INT64_C(1795816628) * SEC, buf), 0);
	assert_string_equal(buf, "2026-11-27T21:57:08Z");
	assert_int_equal(civil_format_rfc3339(INT64_C(1795816628) * SEC + 123456, buf), 0);
	assert_string_equal(buf, "2026-11-27T21:57:08.123456Z");
	assert_int_equal(civil_format_rfc3339(INT64_C(1795816628) * SEC + 100000, buf), 0);
	assert_string_equal(buf, "2026-11-27T21:57:08.100000Z");
	assert_int_equal(civil_format_rfc3339(0, buf), 0);
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	assert_int_equal(civil_format_rfc3339(-1, buf), 0);
	assert_string_equal(buf, "1969-12-31T23:59:59.999999Z");
	assert_int_equal(civil_format_rfc3339(INT64_MAX, buf), -1);
	assert_string_equal(buf, "");
	assert_int_equal(civil_format_rfc3339(INT64_MIN, buf), -1);
	/* round trip over a spread of instants, 1970 .. 9999 */
	for (int64_t t = 0; t < INT64_C(2932897) * 86400 * SEC; t += INT64_C(987654321987)) {
		assert_int_equal(civil_format_rfc3339(t, buf), 0);
		assert_int_equal(civil_parse_rfc3339(buf, strlen(buf), &back), 0);
		assert_int_equal(back, t);
	}
}

static void
test_ts_day(void **state)
{
	int64_t t;

	(void)state;
	assert_int_equal(civil_ts_to_day(0, 0), 0);
	assert_int_equal(civil_ts_to_day(-1, 0), -1);
	assert_int_equal(civil_ts_to_day(CIVIL_USEC_PER_DAY - 1, 0), 0);
	/* 2026-11-27T23:30Z is 2026-11-28 in UTC+01:00 */
	t = ts_ok("2026-11-27T23:30:00Z");
	assert_int_equal(civil_ts_to_day(t, 0), D(2026, 11, 27));
	assert_int_equal(civil_ts_to_day(t, 3600), D(2026, 11, 28));
	/* 2026-11-28T03:00Z is 2026-11-27 in UTC-05:00 */
	t = ts_ok("2026-11-28T03:00:00Z");
	assert_int_equal(civil_ts_to_day(t, -5 * 3600), D(2026, 11, 27));
	/* extremes do not overflow */
	assert_int_equal(civil_ts_to_day(INT64_MAX, 86399), 106751991 + 1);
	assert_int_equal(civil_ts_to_day(INT64_MIN, -86399), -106751992 - 1);

	assert_int_equal(civil_day_to_ts(1, 3600, &t), 0);
	assert_int_equal(t, 86400 * SEC - 3600 * SEC);
	assert_int_equal(civil_day_to_ts(D(2026, 11, 28), 3600, &t), 0);
	assert_int_equal(t, ts_ok("2026-11-27T23:00:00Z"));
	assert_int_equal(civil_ts_to_day(t, 3600), D(2026, 11, 28));
	assert_int_equal(civil_day_to_ts(-1, 0, &t), 0);
	assert_int_equal(t, -86400 * SEC);
	assert_int_equal(civil_day_to_ts(INT32_MAX, 0, &t), -1);
	assert_int_equal(civil_day_to_ts(INT32_MIN, 0, &t), -1);
}

/* Far offsets (Pacific/Kiritimati +14, Pacific/Pago_Pago -11): the last
 * microsecond of a local month and the first of the next (R1.5), and issue
 * + terms across month, year and leap-day ends (R5.5). */
static void
test_far_offsets(void **state)
{
	int64_t t;

	(void)state;
	t = ts_ok("2027-11-30T23:59:59.999999+14:00");
	assert_int_equal(t, ts_ok("2027-11-30T09:59:59.999999Z"));
	assert_int_equal(civil_ts_to_day(t, 14 * 3600), D(2027, 11, 30));
	assert_int_equal(civil_ts_to_day(t + 1, 14 * 3600), D(2027, 12, 1));
	assert_int_equal(civil_ts_to_day(t + 1, 0), D(2027, 11, 30));
	assert_int_equal(civil_day_to_ts(D(2027, 12, 1), 14 * 3600, &t), 0);
	assert_int_equal(t, ts_ok("2027-12-01T00:00:00+14:00"));
	t = ts_ok("2026-01-31T23:59:59.999999-11:00");
	assert_int_equal(t, ts_ok("2026-02-01T10:59:59.999999Z"));
	assert_int_equal(civil_ts_to_day(t, -11 * 3600), D(2026, 1, 31));
	assert_int_equal(civil_ts_to_day(t + 1, -11 * 3600), D(2026, 2, 1));
	assert_int_equal(civil_day_to_ts(D(2026, 2, 1), -11 * 3600, &t), 0);
	assert_int_equal(t, ts_ok("2026-02-01T11:00:00Z"));
	/* the same instant, two local days 25 hours apart */
	t = ts_ok("2026-06-15T10:30:00Z");
	assert_int_equal(civil_ts_to_day(t, 14 * 3600), D(2026, 6, 16));
	assert_int_equal(civil_ts_to_day(t, -11 * 3600), D(2026, 6, 14));
	/* due = issue + terms */
	assert_int_equal(D(2027, 12, 1) + 15, D(2027, 12, 16));
	assert_int_equal(D(2027, 12, 17) + 15, D(2028, 1, 1));
	assert_int_equal(D(2028, 2, 14) + 15, D(2028, 2, 29));
	assert_int_equal(D(2028, 2, 15) + 15, D(2028, 3, 1));
	assert_int_equal(D(2027, 2, 14) + 15, D(2027, 3, 1));
	assert_int_equal(D(2028, 2, 1) + 30, D(2028, 3, 2));
	assert_int_equal(D(2027, 2, 1) + 30, D(2027, 3, 3));
	/* R6.3: due 1 Aug, paid 15 Sep = 45 days; due 16 Dec 2027, paid
	 * 30 Jan 2028 = 45 days */
	assert_int_equal(D(2023, 9, 15) - D(2023, 8, 1), 45);
	assert_int_equal(D(2028, 1, 30) - D(2027, 12, 16), 45);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known_days),
	    cmocka_unit_test(test_roundtrip_all_days),
	    cmocka_unit_test(test_invalid_ymd),
	    cmocka_unit_test(test_leap_and_lengths),
	    cmocka_unit_test(test_parse_format_date),
	    cmocka_unit_test(test_add_months),
	    cmocka_unit_test(test_starts),
	    cmocka_unit_test(test_weekday),
	    cmocka_unit_test(test_working_days),
	    cmocka_unit_test(test_parse_rfc3339),
	    cmocka_unit_test(test_format_rfc3339),
	    cmocka_unit_test(test_ts_day),
	    cmocka_unit_test(test_far_offsets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
