/* test_backoff.c: exponential backoff with bounded jitter (common/backoff.c,
 * R8.2), with exact values: the random numbers are given or come from a
 * seeded backoff_rand. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "backoff.h"

/* the webhook's: 1 s, doubled, 0.5 s .. max_backoff_seconds (default 1 h) */
static const struct backoff WEBHOOK = {1000, 500, 3600000};

static void
test_ceiling_doubles_up_to_the_maximum(void **state)
{
	(void)state;
	assert_int_equal(backoff_ceiling_ms(&WEBHOOK, 0), 1000);
	assert_int_equal(backoff_ceiling_ms(&WEBHOOK, 1), 2000);
	assert_int_equal(backoff_ceiling_ms(&WEBHOOK, 2), 4000);
	assert_int_equal(backoff_ceiling_ms(&WEBHOOK, 11), 2048000);
	assert_int_equal(backoff_ceiling_ms(&WEBHOOK, 12), 3600000); /* 4096000 capped */
	assert_int_equal(backoff_ceiling_ms(&WEBHOOK, 999), 3600000);
	assert_int_equal(backoff_ceiling_ms(&WEBHOOK, INT_MAX), 3600000);
	assert_int_equal(backoff_ceiling_ms(&WEBHOOK, -1), 1000);
	/* a maximum below the base */
	const struct backoff low = {1000, 0, 700};
	assert_int_equal(backoff_ceiling_ms(&low, 0), 700);
}

static void
test_ceiling_never_overflows(void **state)
{
	const struct backoff huge = {INT64_MAX / 2 + 1, 0, INT64_MAX};
	const struct backoff odd = {3, 0, INT64_MAX};

	(void)state;
	assert_int_equal(backoff_ceiling_ms(&huge, 0), INT64_MAX / 2 + 1);
	assert_int_equal(backoff_ceiling_ms(&huge, 1), INT64_MAX);
	assert_int_equal(backoff_ceiling_ms(&huge, INT_MAX), INT64_MAX);
	assert_int_equal(backoff_ceiling_ms(&odd, 61), INT64_C(3) << 61);
	assert_int_equal(backoff_ceiling_ms(&odd, 62), INT64_MAX);
	assert_int_equal(backoff_ceiling_ms(&odd, 1000), INT64_MAX);
}

static void
test_delay_is_equal_jitter(void **state)
{
	(void)state;
	/* ceiling 8 s: [4000, 8000], rnd % 4001 */
	assert_int_equal(backoff_delay_ms(&WEBHOOK, 3, 0), 4000);
	assert_int_equal(backoff_delay_ms(&WEBHOOK, 3, 4000), 8000);
	assert_int_equal(backoff_delay_ms(&WEBHOOK, 3, 4001), 4000);
	assert_int_equal(backoff_delay_ms(&WEBHOOK, 3, 1234), 5234);
	assert_int_equal(backoff_delay_ms(&WEBHOOK, 3, UINT64_MAX), 4000 + 2498);
	/* the first failure: [500, 1000] */
	assert_int_equal(backoff_delay_ms(&WEBHOOK, 0, 0), 500);
	assert_int_equal(backoff_delay_ms(&WEBHOOK, 0, 500), 1000);
	assert_int_equal(backoff_delay_ms(&WEBHOOK, 0, UINT64_MAX), 500 + 48);
	/* at the maximum: [1800 s, 3600 s], never above it */
	assert_int_equal(backoff_delay_ms(&WEBHOOK, 40, 0), 1800000);
	assert_int_equal(backoff_delay_ms(&WEBHOOK, 40, 1800000), 3600000);
}

static void
test_delay_within_minimum_and_maximum(void **state)
{
	const struct backoff floor = {1000, 800, 3600000};
	const struct backoff tight = {1000, 2000, 1500}; /* max wins */
	const struct backoff one = {1, 0, 10};

	(void)state;
	assert_int_equal(backoff_delay_ms(&floor, 0, 0), 800);
	assert_int_equal(backoff_delay_ms(&floor, 0, 299), 800);
	assert_int_equal(backoff_delay_ms(&floor, 0, 300), 800);
	assert_int_equal(backoff_delay_ms(&floor, 0, 301), 801);
	assert_int_equal(backoff_delay_ms(&tight, 0, 0), 1500);
	assert_int_equal(backoff_delay_ms(&tight, 5, UINT64_MAX), 1500);
	/* ceiling 1 ms: [0, 1] */
	assert_int_equal(backoff_delay_ms(&one, 0, 0), 0);
	assert_int_equal(backoff_delay_ms(&one, 0, 1), 1);
	/* max_backoff_seconds = 1 (the integration tests): [500, 1000] throughout */
	const struct backoff second = {1000, 500, 1000};
	for (int f = 0; f < 40; f++) {
		assert_int_equal(backoff_delay_ms(&second, f, 0), 500);
		assert_int_equal(backoff_delay_ms(&second, f, 500), 1000);
	}
}

static void
test_rand_is_splitmix64(void **state)
{
	uint64_t s = 0;

	(void)state;
	assert_true(backoff_rand(&s) == UINT64_C(0xe220a8397b1dcdaf));
	assert_true(backoff_rand(&s) == UINT64_C(0x6e789e6aa1b965f4));
	assert_true(backoff_rand(&s) == UINT64_C(0x06c45d188009454f));
	/* so, at 8 s: */
	s = 0;
	assert_int_equal(backoff_delay_ms(&WEBHOOK, 3, backoff_rand(&s)), 7552);
	assert_int_equal(backoff_delay_ms(&WEBHOOK, 3, backoff_rand(&s)), 6359);
	assert_int_equal(backoff_delay_ms(&WEBHOOK, 3, backoff_rand(&s)), 4398);
}

/* 1000 deliveries that failed together: their retries spread over the
 * range instead of coming back in the same millisecond, at every step, and
 * each stays within [ceiling / 2, ceiling]. */
static void
test_failures_together_retry_apart(void **state)
{
	static unsigned char seen[3600001];
	uint64_t s = 42;

	(void)state;
	for (int f = 0; f < 16; f++) {
		int64_t c = backoff_ceiling_ms(&WEBHOOK, f), lo = c, hi = 0, sum = 0;
		int distinct = 0;

		memset(seen, 0, sizeof seen);
		for (int i = 0; i < 1000; i++) {
			int64_t d = backoff_delay_ms(&WEBHOOK, f, backoff_rand(&s));
			assert_true(d >= c / 2 && d <= c);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
			sum += d;
			if (!seen[d]) {
				seen[d] = 1;
				distinct++;
			}
		}
		/* 1000 draws from c/2 + 1 values (501 .. 1,800,001): in lock-step
		 * they would be 1 */
		assert_true(distinct >= (c / 2 + 1 < 1000 ? c / 2 + 1 : 1000) / 2);
		/* they reach both ends' neighbourhoods (within 1 % of the range) */
		assert_true(lo - c / 2 <= c / 200 + 1 && c - hi <= c / 200 + 1);
		/* mean 3/4 of the ceiling, within 3 % of it */
		assert_true(sum / 1000 >= c * 72 / 100 && sum / 1000 <= c * 78 / 100);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ceiling_doubles_up_to_the_maximum),
	    cmocka_unit_test(test_ceiling_never_overflows),
	    cmocka_unit_test(test_delay_is_equal_jitter),
	    cmocka_unit_test(test_delay_within_minimum_and_maximum),
	    cmocka_unit_test(test_rand_is_splitmix64),
	    cmocka_unit_test(test_failures_together_retry_apart),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
