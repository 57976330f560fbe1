/* test_rate.c: unit tests of common/rate (SPEC R1.4). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <inttypes.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "money.h"
#include "rate.h"

#define SENTINEL INT32_C(0x5eed5eed)

static void
check_rate_line(const char *s, int want_err, int32_t want, int line)
{
	int32_t v = SENTINEL;
	int err = rate_parse(s, strlen(s), &v);

	if (err != want_err)
		fail_msg("line %d: rate_parse(\"%s\") = %d (%s), want %d (%s)", line, s, err,
		         rate_strerror(err), want_err, rate_strerror(want_err));
	if (err == 0 && v != want)
		fail_msg("line %d: rate_parse(\"%s\") -> %" PRId32 ", want %" PRId32, line, s, v,
		         want);
	if (err != 0 && v != SENTINEL)
		fail_msg("line %d: rate_parse(\"%s\") wrote *out on error", line, s);
}

#define RATE_OK(s, want) check_rate_line((s), 0, (want), __LINE__)
#define RATE_ERR(s, err) check_rate_line((s), (err), 0, __LINE__)

static void
test_rate_parse(void **state)
{
	(void)state;
	RATE_OK("12", 120000);
	RATE_OK("8.25", 82500);
	RATE_OK("13.1250", 131250);
	RATE_OK("13.125", 131250);
	RATE_OK("-0.88", -8800);
	RATE_OK("0", 0);
	RATE_OK("-0", 0);
	RATE_OK("0.0001", 1);
	RATE_OK("-0.0001", -1);
	RATE_OK("100", 1000000);
	RATE_OK("4.5", 45000);
	RATE_OK("012", 120000);
	RATE_OK("214748.3647", INT32_MAX);
	RATE_OK("-214748.3648", INT32_MIN);
}

static void
test_rate_reject(void **state)
{
	(void)state;
	RATE_ERR("0.00001", MONEY_ERR_DECIMALS);
	RATE_ERR("13.12500", MONEY_ERR_DECIMALS);
	RATE_ERR("1.123456", MONEY_ERR_DECIMALS);
	RATE_ERR("1e2", MONEY_ERR_SYNTAX);
	RATE_ERR("1E2", MONEY_ERR_SYNTAX);
	RATE_ERR("+12", MONEY_ERR_SYNTAX);
	RATE_ERR(" 12", MONEY_ERR_SYNTAX);
	RATE_ERR("12 ", MONEY_ERR_SYNTAX);
	RATE_ERR("12%", MONEY_ERR_SYNTAX);
	RATE_ERR("8,25", MONEY_ERR_SYNTAX);
	RATE_ERR(".5", MONEY_ERR_SYNTAX);
	RATE_ERR("5.", MONEY_ERR_SYNTAX);
	RATE_ERR("-", MONEY_ERR_SYNTAX);
	RATE_ERR("1.2.3", MONEY_ERR_SYNTAX);
	RATE_ERR("", MONEY_ERR_EMPTY);
	/* int32 range in 0.0001 % units. */
	RATE_ERR("214748.3648", MONEY_ERR_OVERFLOW);
	RATE_ERR("-214748.3649", MONEY_ERR_OVERFLOW);
	RATE_ERR("214749", MONEY_ERR_OVERFLOW);
	RATE_ERR("429496.7296", MONEY_ERR_OVERFLOW); /* 2^32 units: wraps a naive int32 */
	RATE_ERR("922337203685477.5808", MONEY_ERR_OVERFLOW);
	RATE_ERR("99999999999999999999999999", MONEY_ERR_OVERFLOW);
}

static void
test_rate_length(void **state)
{
	int32_t v = SENTINEL;

	(void)state;
	assert_int_equal(rate_parse("8.25%", 4, &v), 0);
	assert_int_equal(v, 82500);
	assert_int_equal(rate_parse("8\0", 2, &v), MONEY_ERR_SYNTAX);
}

static void
check_fmt_line(int32_t r, const char *want, int line)
{
	char buf[RATE_FMT_LEN];
	char *p = rate_format(r, buf);

	if (p != buf)
		fail_msg("line %d: rate_format did not return buf", line);
	if (strcmp(buf, want) != 0)
		fail_msg("line %d: rate_format(%" PRId32 ") = \"%s\", want \"%s\"", line, r, buf,
		         want);
}

#define FMT(r, want) check_fmt_line((r), (want), __LINE__)

static void
test_rate_format(void **state)
{
	(void)state;
	FMT(120000, "12");
	FMT(82500, "8.25");
	FMT(131250, "13.125");
	FMT(-8800, "-0.88");
	FMT(0, "0");
	FMT(1, "0.0001");
	FMT(-1, "-0.0001");
	FMT(10000, "1");
	FMT(45000, "4.5");
	FMT(INT32_MAX, "214748.3647");
	FMT(INT32_MIN, "-214748.3648");
}

static void
test_rate_roundtrip(void **state)
{
	uint32_t x = 12345;

	(void)state;
	for (int i = 0; i < 200000; i++) {
		char buf[RATE_FMT_LEN];
		int32_t back = SENTINEL;
		int32_t r;

		x = x * 1664525u + 1013904223u; /* LCG */
		r = (int32_t)(x >> (i % 31));
		if (i & 1)
			r = -r;
		if (i == 0)
			r = INT32_MIN;
		rate_format(r, buf);
		assert_int_equal(rate_parse(buf, strlen(buf), &back), 0);
		if (back != r)
			fail_msg("rate round trip %" PRId32 " -> \"%s\" -> %" PRId32, r, buf, back);
	}
}

static void
test_rate_strerror(void **state)
{
	(void)state;
	assert_string_equal(rate_strerror(MONEY_ERR_DECIMALS), "more than 4 decimals");
	assert_string_equal(rate_strerror(MONEY_ERR_SYNTAX), money_strerror(MONEY_ERR_SYNTAX));
	assert_string_equal(rate_strerror(MONEY_ERR_OVERFLOW), money_strerror(MONEY_ERR_OVERFLOW));
}

static void
check_json(json_t *j, int want_err, int32_t want, const char *want_why)
{
	int32_t v = SENTINEL;
	const char *why = NULL;

	assert_int_equal(rate_from_json(j, &v, &why), want_err);
	if (want_err == 0) {
		assert_int_equal(v, want);
		assert_null(why);
	} else {
		assert_int_equal(v, SENTINEL);
		assert_non_null(why);
		if (want_why != NULL)
			assert_string_equal(why, want_why);
		assert_int_equal(rate_from_json(j, &v, NULL), want_err);
	}
	json_decref(j);
}

static void
test_rate_from_json(void **state)
{
	(void)state;
	check_json(json_string("12"), 0, 120000, NULL);
	check_json(json_string("13.1250"), 0, 131250, NULL);
	check_json(json_string("-0.88"), 0, -8800, NULL);
	check_json(json_integer(12), MONEY_ERR_TYPE, 0,
	           "must be a decimal string, not a JSON number");
	check_json(json_real(8.25), MONEY_ERR_TYPE, 0,
	           "must be a decimal string, not a JSON number");
	check_json(json_null(), MONEY_ERR_TYPE, 0, "must be a decimal string, not null");
	check_json(json_true(), MONEY_ERR_TYPE, 0, "must be a decimal string, not a boolean");
	check_json(json_false(), MONEY_ERR_TYPE, 0, "must be a decimal string, not a boolean");
	check_json(json_array(), MONEY_ERR_TYPE, 0, "must be a decimal string, not an array");
	check_json(NULL, MONEY_ERR_TYPE, 0, "missing value");
	check_json(json_string("0.00001"), MONEY_ERR_DECIMALS, 0, "more than 4 decimals");
	check_json(json_string("1e2"), MONEY_ERR_SYNTAX, 0, NULL);
	check_json(json_string("214748.3648"), MONEY_ERR_OVERFLOW, 0, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rate_parse),     cmocka_unit_test(test_rate_reject),
	    cmocka_unit_test(test_rate_length),    cmocka_unit_test(test_rate_format),
	    cmocka_unit_test(test_rate_roundtrip), cmocka_unit_test(test_rate_strerror),
	    cmocka_unit_test(test_rate_from_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
