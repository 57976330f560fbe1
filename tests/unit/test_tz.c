/* test_tz.c: local times of the billing zone (daemon/tz.c, R1.5, R5.1),
 * above all the ones a change of offset makes ambiguous or missing. Uses
 * the system's zone files (tzdata), as the daemon does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "civil.h"
#include "tz.h"

/* Seconds since the epoch of zone-local y-m-d hh:mm. */
static int64_t
local(const char *zone, int y, int m, int d, int hh, int mm)
{
	int32_t day;

	assert_int_equal(tz_init(zone), 0);
	assert_int_equal(civil_from_ymd(y, m, d, &day), 0);
	return tz_local_time(day, hh * 60 + mm) / 1000000;
}

/* Seconds since the epoch of UTC y-m-d hh:mm. */
static int64_t
utc(int y, int m, int d, int hh, int mm)
{
	int32_t day;

	assert_int_equal(civil_from_ymd(y, m, d, &day), 0);
	return (int64_t)day * 86400 + hh * 3600 + mm * 60;
}

static void
test_plain_times(void **state)
{
	(void)state;
	assert_int_equal(local("UTC", 2026, 3, 1, 2, 0), utc(2026, 3, 1, 2, 0));
	assert_int_equal(local("Europe/Berlin", 2026, 7, 1, 0, 0), utc(2026, 6, 30, 22, 0));
	assert_int_equal(local("Europe/Berlin", 2026, 12, 1, 0, 0), utc(2026, 11, 30, 23, 0));
	assert_int_equal(local("Pacific/Kiritimati", 2028, 3, 1, 0, 0), utc(2028, 2, 29, 10, 0));
}

/* Clocks put back: the first occurrence, whatever was asked before. */
static void
test_repeated_time_is_the_first(void **state)
{
	(void)state;
	/* New York, 1 Nov 2026: 01:00-01:59 EDT (-4), then again EST (-5) */
	assert_int_equal(local("America/New_York", 2026, 11, 1, 1, 30), utc(2026, 11, 1, 5, 30));
	(void)local("America/New_York", 2026, 12, 31, 1, 30); /* an EST answer before */
	assert_int_equal(local("America/New_York", 2026, 11, 1, 1, 30), utc(2026, 11, 1, 5, 30));
	/* Auckland, 5 Apr 2026: 02:00-02:59 NZDT (+13), then NZST (+12) */
	assert_int_equal(local("Pacific/Auckland", 2026, 4, 5, 2, 30), utc(2026, 4, 4, 13, 30));
	(void)local("Pacific/Auckland", 2026, 7, 1, 2, 30);
	assert_int_equal(local("Pacific/Auckland", 2026, 4, 5, 2, 30), utc(2026, 4, 4, 13, 30));
	/* Havana, 1 Nov 2026: midnight happens twice (CDT -4, then CST -5) */
	(void)local("America/Havana", 2026, 12, 31, 0, 0);
	assert_int_equal(local("America/Havana", 2026, 11, 1, 0, 0), utc(2026, 11, 1, 4, 0));
}

/* Clocks put forward: a time in the gap is read with the offset before it. */
static void
test_missing_time_after_the_gap(void **state)
{
	(void)state;
	/* New York, 8 Mar 2026: 02:00 EST becomes 03:00 EDT; 02:30 -> 03:30 EDT */
	assert_int_equal(local("America/New_York", 2026, 3, 8, 2, 30), utc(2026, 3, 8, 7, 30));
	assert_int_equal(local("America/New_York", 2026, 3, 8, 3, 0), utc(2026, 3, 8, 7, 0));
	/* Havana, 8 Mar 2026: midnight does not exist (00:00 CST -> 01:00 CDT);
	 * the day starts at 01:00 CDT = 05:00Z */
	assert_int_equal(local("America/Havana", 2026, 3, 8, 0, 0), utc(2026, 3, 8, 5, 0));
}

static void
test_zone_names(void **state)
{
	(void)state;
	assert_int_equal(tz_init("America"), -1); /* a directory */
	assert_int_equal(tz_init("Nowhere/City"), -1);
	assert_int_equal(tz_init("../etc/passwd"), -1);
	assert_int_equal(tz_init(""), -1);
	assert_int_equal(tz_init("Europe/Berlin"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_times),
	    cmocka_unit_test(test_repeated_time_is_the_first),
	    cmocka_unit_test(test_missing_time_after_the_gap),
	    cmocka_unit_test(test_zone_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
