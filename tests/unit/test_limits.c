/* test_limits.c: authorization rule (R3.6, R4.3) with exact amounts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "limit_rules.h"

#define EUR(x) ((int64_t)(x)*1000000)

static void
test_active_within_both(void **state)
{
	struct limits_state s = {LIMITS_ACTIVE, true,      EUR(1000), EUR(400),
	                         true,          EUR(5000), EUR(4500)};
	struct limits_answer a;

	(void)state;
	limits_authorize(&s, EUR(100), &a);
	assert_true(a.allowed);
	assert_null(a.reason);
	assert_int_equal(a.monthly_remaining, EUR(600));
	assert_int_equal(a.total_remaining, EUR(500));
}

static void
test_exact_fit_allowed_one_micro_over_refused(void **state)
{
	struct limits_state s = {LIMITS_ACTIVE, true, EUR(1000), EUR(999), false, 0, 0};
	struct limits_answer a;

	(void)state;
	limits_authorize(&s, EUR(1), &a);
	assert_true(a.allowed);
	limits_authorize(&s, EUR(1) + 1, &a);
	assert_false(a.allowed);
	assert_string_equal(a.reason, "monthly_limit");
	assert_false(a.has_total);
}

static void
test_total_limit(void **state)
{
	struct limits_state s = {LIMITS_ACTIVE, false, 0, 0, true, EUR(100), EUR(99) + 995000};
	struct limits_answer a;

	(void)state;
	limits_authorize(&s, 5000, &a); /* 0.005 fits exactly */
	assert_true(a.allowed);
	assert_int_equal(a.total_remaining, 5000);
	limits_authorize(&s, 5001, &a);
	assert_false(a.allowed);
	assert_string_equal(a.reason, "total_limit");
}

static void
test_status_wins(void **state)
{
	struct limits_state s = {LIMITS_SUSPENDED, true, EUR(10), 0, true, EUR(10), 0};
	struct limits_answer a;

	(void)state;
	limits_authorize(&s, 1, &a);
	assert_false(a.allowed);
	assert_string_equal(a.reason, "suspended");
	s.status = LIMITS_TERMINATED;
	limits_authorize(&s, 1, &a);
	assert_string_equal(a.reason, "terminated");
}

static void
test_over_limit_and_credit(void **state)
{
	/* usage over the limit: remaining 0, never negative */
	struct limits_state s = {LIMITS_ACTIVE, true, EUR(10), EUR(12), true, EUR(10), -EUR(5)};
	struct limits_answer a;

	(void)state;
	limits_authorize(&s, 1, &a);
	assert_false(a.allowed);
	assert_int_equal(a.monthly_remaining, 0);
	/* credit (negative exposure) adds headroom */
	assert_int_equal(a.total_remaining, EUR(15));
	assert_int_equal(limits_remaining(INT64_MAX, -1), INT64_MAX);
	assert_int_equal(limits_remaining(INT64_MIN, 1), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_active_within_both),
	    cmocka_unit_test(test_exact_fit_allowed_one_micro_over_refused),
	    cmocka_unit_test(test_total_limit),
	    cmocka_unit_test(test_status_wins),
	    cmocka_unit_test(test_over_limit_and_credit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
