/* test_daycount.c: day-count conventions (common/daycount.c, R6.3). Names and
 * single denominators are also in test_interest.c; these are whole ranges. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "civil.h"
#include "daycount.h"

static int32_t
D(int y, int m, int d)
{
	int32_t day = 0;

	assert_int_equal(civil_from_ymd(y, m, d, &day), 0);
	return day;
}

/* Sum over the days after `due` up to and including `paid` of
 * DAYCOUNT_LCM / denominator: the year fraction in units of 1/DAYCOUNT_LCM. */
static int64_t
year_units(enum daycount dc, int32_t due, int32_t paid)
{
	int64_t sum = 0;

	for (int32_t d = due + 1; d <= paid; d++) {
		int den = daycount_denominator(dc, d);

		assert_true(den > 0);
		assert_int_equal(DAYCOUNT_LCM % den, 0);
		sum += DAYCOUNT_LCM / den;
	}
	return sum;
}

static void
test_whole_years(void **state)
{
	(void)state;
	/* a calendar year is exactly one year under actual/actual, leap or not */
	for (int y = 1999; y <= 2030; y++)
		assert_int_equal(year_units(DAYCOUNT_ACT_ACT, D(y - 1, 12, 31), D(y, 12, 31)),
		                 DAYCOUNT_LCM);
	assert_int_equal(year_units(DAYCOUNT_ACT_ACT, D(2099, 12, 31), D(2100, 12, 31)),
	                 DAYCOUNT_LCM);
	/* 1900 and 2100 are not leap years, 2000 is */
	assert_int_equal(daycount_denominator(DAYCOUNT_ACT_ACT, D(1900, 6, 1)), 365);
	assert_int_equal(daycount_denominator(DAYCOUNT_ACT_ACT, D(2000, 6, 1)), 366);
	assert_int_equal(daycount_denominator(DAYCOUNT_ACT_ACT, D(2100, 6, 1)), 365);
	/* 2028 has 366 days: more than a year under actual/365 and actual/360 */
	assert_int_equal(year_units(DAYCOUNT_ACT_365, D(2027, 12, 31), D(2028, 12, 31)),
	                 (int64_t)DAYCOUNT_LCM / 365 * 366);
	assert_int_equal(year_units(DAYCOUNT_ACT_360, D(2027, 12, 31), D(2028, 12, 31)),
	                 (int64_t)DAYCOUNT_LCM / 360 * 366);
}

static void
test_worked_examples(void **state)
{
	(void)state;
	/* R6.3: due 1 Aug, paid 15 Sep = 45 days, in any year */
	assert_int_equal(year_units(DAYCOUNT_ACT_365, D(2023, 8, 1), D(2023, 9, 15)),
	                 (int64_t)DAYCOUNT_LCM / 365 * 45);
	assert_int_equal(year_units(DAYCOUNT_ACT_ACT, D(2024, 8, 1), D(2024, 9, 15)),
	                 (int64_t)DAYCOUNT_LCM / 366 * 45);
	assert_int_equal(year_units(DAYCOUNT_ACT_360, D(2023, 8, 1), D(2023, 9, 15)),
	                 (int64_t)DAYCOUNT_LCM / 360 * 45);
	/* due 16 Dec 2027, paid 30 Jan 2028: 15 days of 2027 and 30 of 2028 */
	assert_int_equal(year_units(DAYCOUNT_ACT_ACT, D(2027, 12, 16), D(2028, 1, 30)),
	                 (int64_t)DAYCOUNT_LCM / 365 * 15 + (int64_t)DAYCOUNT_LCM / 366 * 30);
	assert_int_equal(year_units(DAYCOUNT_ACT_365, D(2027, 12, 16), D(2028, 1, 30)),
	                 (int64_t)DAYCOUNT_LCM / 365 * 45);
	/* across 29 Feb 2028: 28 Feb .. 1 Mar is 2 days, each 1/366 */
	assert_int_equal(year_units(DAYCOUNT_ACT_ACT, D(2028, 2, 28), D(2028, 3, 1)),
	                 (int64_t)DAYCOUNT_LCM / 366 * 2);
	/* paid on the due date: no day */
	assert_int_equal(year_units(DAYCOUNT_ACT_365, D(2028, 2, 29), D(2028, 2, 29)), 0);
	/* not a convention */
	assert_int_equal(daycount_denominator((enum daycount)3, D(2028, 2, 29)), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_whole_years),
	    cmocka_unit_test(test_worked_examples),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
