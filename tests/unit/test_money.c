/* test_money.c: unit tests of common/money (SPEC R1.1-R1.3). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <inttypes.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "money.h"

#define SENTINEL INT64_C(0x5eed5eed5eed)

/* Parse s (NUL-terminated) and check the result code and, on success, the value;
 * on failure *out must be untouched. */
static void
check_parse_line(const char *s, size_t len, int want_err, int64_t want, int line)
{
	int64_t v = SENTINEL;
	int err = money_parse(s, len, &v);

	if (err != want_err)
		fail_msg("line %d: money_parse(\"%.*s\") = %d (%s), want %d (%s)", line, (int)len,
		         s, err, money_strerror(err), want_err, money_strerror(want_err));
	if (err == 0 && v != want)
		fail_msg("line %d: money_parse(\"%.*s\") -> %" PRId64 ", want %" PRId64, line,
		         (int)len, s, v, want);
	if (err != 0 && v != SENTINEL)
		fail_msg("line %d: money_parse(\"%.*s\") wrote *out on error", line, (int)len, s);
}

#define PARSE_OK(s, want) check_parse_line((s), strlen(s), 0, (want), __LINE__)
#define PARSE_ERR(s, err) check_parse_line((s), strlen(s), (err), 0, __LINE__)

static void
check_i64_line(int64_t got, int64_t want, int line)
{
	if (got != want)
		fail_msg("line %d: got %" PRId64 ", want %" PRId64, line, got, want);
}

#define assert_i64(got, want) check_i64_line((got), (want), __LINE__)

/* ---- money_parse ---------------------------------------------------------- */

static void
test_parse_basic(void **state)
{
	(void)state;
	PARSE_OK("0", 0);
	PARSE_OK("-0", 0);
	PARSE_OK("-0.000000", 0);
	PARSE_OK("-00", 0);
	PARSE_OK("0.0", 0);
	PARSE_OK("1", 1000000);
	PARSE_OK("-1", -1000000);
	PARSE_OK("0.000001", 1);
	PARSE_OK("-0.000001", -1);
	PARSE_OK("12.5", 12500000);
	PARSE_OK("0.0045", 4500);
	PARSE_OK("-3.10", -3100000);
	PARSE_OK("-3.1", -3100000);
	PARSE_OK("123456.789012", 123456789012);
	PARSE_OK("1.000000", 1000000);
	PARSE_OK("999999.999999", 999999999999);
	PARSE_OK("007.5", 7500000);
	PARSE_OK("-007.50", -7500000);
	PARSE_OK("100000", 100000000000);
}

static void
test_parse_decimals(void **state)
{
	(void)state;
	PARSE_OK("0.1", 100000);
	PARSE_OK("0.12", 120000);
	PARSE_OK("0.123", 123000);
	PARSE_OK("0.1234", 123400);
	PARSE_OK("0.12345", 123450);
	PARSE_OK("0.123456", 123456);
	PARSE_ERR("0.1234567", MONEY_ERR_DECIMALS);
	PARSE_ERR("0.1234560", MONEY_ERR_DECIMALS); /* trailing zero still a 7th decimal */
	PARSE_ERR("0.0000000", MONEY_ERR_DECIMALS);
	PARSE_ERR("-1.0000001", MONEY_ERR_DECIMALS);
	PARSE_ERR("12.50000000000000000000000000", MONEY_ERR_DECIMALS);
}

static void
test_parse_syntax(void **state)
{
	(void)state;
	PARSE_ERR("", MONEY_ERR_EMPTY);
	PARSE_ERR("-", MONEY_ERR_SYNTAX);
	PARSE_ERR("+1", MONEY_ERR_SYNTAX);
	PARSE_ERR("+0", MONEY_ERR_SYNTAX);
	PARSE_ERR("--1", MONEY_ERR_SYNTAX);
	PARSE_ERR("-+1", MONEY_ERR_SYNTAX);
	PARSE_ERR("1-", MONEY_ERR_SYNTAX);
	PARSE_ERR(" 1", MONEY_ERR_SYNTAX);
	PARSE_ERR("1 ", MONEY_ERR_SYNTAX);
	PARSE_ERR("1 .0", MONEY_ERR_SYNTAX);
	PARSE_ERR("1. 0", MONEY_ERR_SYNTAX);
	PARSE_ERR("- 1", MONEY_ERR_SYNTAX);
	PARSE_ERR("1\t", MONEY_ERR_SYNTAX);
	PARSE_ERR("\n1", MONEY_ERR_SYNTAX);
	PARSE_ERR(" ", MONEY_ERR_SYNTAX);
	PARSE_ERR("1e3", MONEY_ERR_SYNTAX);
	PARSE_ERR("1E-2", MONEY_ERR_SYNTAX);
	PARSE_ERR("1.5e1", MONEY_ERR_SYNTAX);
	PARSE_ERR("1e", MONEY_ERR_SYNTAX);
	PARSE_ERR(".5", MONEY_ERR_SYNTAX);
	PARSE_ERR("-.5", MONEY_ERR_SYNTAX);
	PARSE_ERR("5.", MONEY_ERR_SYNTAX);
	PARSE_ERR("-5.", MONEY_ERR_SYNTAX);
	PARSE_ERR(".", MONEY_ERR_SYNTAX);
	PARSE_ERR("-.", MONEY_ERR_SYNTAX);
	PARSE_ERR("1.2.3", MONEY_ERR_SYNTAX);
	PARSE_ERR("1..2", MONEY_ERR_SYNTAX);
	PARSE_ERR("0x10", MONEY_ERR_SYNTAX);
	PARSE_ERR("1,5", MONEY_ERR_SYNTAX);
	PARSE_ERR("1_000", MONEY_ERR_SYNTAX);
	PARSE_ERR("1'000", MONEY_ERR_SYNTAX);
	PARSE_ERR("inf", MONEY_ERR_SYNTAX);
	PARSE_ERR("NaN", MONEY_ERR_SYNTAX);
	PARSE_ERR("\"1\"", MONEY_ERR_SYNTAX);
	PARSE_ERR("\xd9\xa1", MONEY_ERR_SYNTAX);     /* U+0661 ARABIC-INDIC DIGIT ONE */
	PARSE_ERR("1\xd9\xa1", MONEY_ERR_SYNTAX);    /* ASCII digit then non-ASCII digit */
	PARSE_ERR("\xef\xbc\x91", MONEY_ERR_SYNTAX); /* U+FF11 FULLWIDTH DIGIT ONE */
	PARSE_ERR("\xe2\x88\x92"
	          "1",
	          MONEY_ERR_SYNTAX); /* U+2212 MINUS SIGN */
	PARSE_ERR("1.\xd9\xa1", MONEY_ERR_SYNTAX);
}

/* Every byte value in every position of a short template: only ASCII digits
 * (and '-' / '.' where the grammar allows them) are accepted. */
static void
test_parse_every_byte(void **state)
{
	(void)state;
	for (int c = 0; c < 256; c++) {
		char s[4];
		int64_t v = SENTINEL;
		bool digit = c >= '0' && c <= '9';
		int err;

		s[0] = (char)c;
		err = money_parse(s, 1, &v);
		if (digit) {
			assert_int_equal(err, 0);
			assert_i64(v, (c - '0') * MONEY_SCALE);
		} else {
			assert_int_equal(err, MONEY_ERR_SYNTAX);
		}

		s[0] = '1';
		s[1] = (char)c;
		err = money_parse(s, 2, &v);
		assert_int_equal(err, digit ? 0 : MONEY_ERR_SYNTAX);

		s[0] = '1';
		s[1] = '.';
		s[2] = (char)c;
		err = money_parse(s, 3, &v);
		assert_int_equal(err, digit ? 0 : MONEY_ERR_SYNTAX);

		s[0] = (char)c;
		s[1] = '1';
		err = money_parse(s, 2, &v);
		assert_int_equal(err, digit || c == '-' ? 0 : MONEY_ERR_SYNTAX);
	}
}

/* len is authoritative: no NUL needed, embedded NULs rejected. */
static void
test_parse_length(void **state)
{
	int64_t v = SENTINEL;

	(void)state;
	check_parse_line("12.345", 4, 0, 12300000, __LINE__);
	check_parse_line("12.345", 3, MONEY_ERR_SYNTAX, 0, __LINE__); /* "12." */
	check_parse_line("12.345", 0, MONEY_ERR_EMPTY, 0, __LINE__);
	check_parse_line("1\0", 2, MONEY_ERR_SYNTAX, 0, __LINE__);
	check_parse_line("1.5\0"
	                 "0",
	                 5, MONEY_ERR_SYNTAX, 0, __LINE__);
	check_parse_line("\0", 1, MONEY_ERR_SYNTAX, 0, __LINE__);
	/* A buffer with no NUL at all. */
	char raw[3] = {'4', '.', '2'};
	assert_int_equal(money_parse(raw, sizeof(raw), &v), 0);
	assert_i64(v, 4200000);
}

static void
test_parse_limits(void **state)
{
	(void)state;
	PARSE_OK("9223372036854.775807", INT64_MAX);
	PARSE_OK("09223372036854.775807", INT64_MAX);
	PARSE_OK("000000000000000000000000009223372036854.775807", INT64_MAX);
	PARSE_ERR("9223372036854.775808", MONEY_ERR_OVERFLOW);
	PARSE_ERR("9223372036854.775810", MONEY_ERR_OVERFLOW);
	PARSE_ERR("9223372036854.78", MONEY_ERR_OVERFLOW);
	PARSE_ERR("9223372036855", MONEY_ERR_OVERFLOW);
	PARSE_OK("9223372036854", INT64_C(9223372036854000000));
	PARSE_OK("9223372036854.7", INT64_C(9223372036854700000));
	PARSE_OK("-9223372036854.775808", INT64_MIN);
	PARSE_OK("-9223372036854.775807", INT64_MIN + 1);
	PARSE_ERR("-9223372036854.775809", MONEY_ERR_OVERFLOW);
	PARSE_ERR("-9223372036855", MONEY_ERR_OVERFLOW);
	PARSE_ERR("-9223372036854.78", MONEY_ERR_OVERFLOW);
	/* Values that wrap a naive uint64 accumulator. */
	PARSE_ERR("18446744073709.551616", MONEY_ERR_OVERFLOW); /* 2^64 micro */
	PARSE_ERR("18446744073709.551615", MONEY_ERR_OVERFLOW);
	PARSE_ERR("18446744073709551616", MONEY_ERR_OVERFLOW);
	PARSE_ERR("18446744073709551616000000", MONEY_ERR_OVERFLOW);
	PARSE_ERR("36893488147419.103232", MONEY_ERR_OVERFLOW); /* 2^65 micro */
	PARSE_ERR("-18446744073709.551616", MONEY_ERR_OVERFLOW);
	PARSE_ERR("99999999999999999999", MONEY_ERR_OVERFLOW);
	PARSE_ERR("100000000000000000", MONEY_ERR_OVERFLOW);
	PARSE_ERR("999999999999999999", MONEY_ERR_OVERFLOW);
}

/* Error precedence: SYNTAX over DECIMALS over OVERFLOW. */
static void
test_parse_error_order(void **state)
{
	(void)state;
	PARSE_ERR("99999999999999999999x", MONEY_ERR_SYNTAX);
	PARSE_ERR("99999999999999999999.1234567x", MONEY_ERR_SYNTAX);
	PARSE_ERR("99999999999999999999.1234567", MONEY_ERR_DECIMALS);
	PARSE_ERR("99999999999999999999.123456", MONEY_ERR_OVERFLOW);
	PARSE_ERR("1.1234567e3", MONEY_ERR_SYNTAX);
}

static void
test_parse_long_digits(void **state)
{
	char buf[2048];
	int64_t v = SENTINEL;

	(void)state;
	/* 1000 leading zeros then 1: fine. */
	memset(buf, '0', 1000);
	buf[1000] = '1';
	assert_int_equal(money_parse(buf, 1001, &v), 0);
	assert_i64(v, MONEY_SCALE);
	/* Leading zeros with a fraction. */
	memcpy(buf + 1001, ".25", 3);
	assert_int_equal(money_parse(buf, 1004, &v), 0);
	assert_i64(v, 1250000);
	/* 1000 nines. */
	memset(buf, '9', 1000);
	assert_int_equal(money_parse(buf, 1000, &v), MONEY_ERR_OVERFLOW);
	/* Negative 1000 nines. */
	buf[0] = '-';
	assert_int_equal(money_parse(buf, 1000, &v), MONEY_ERR_OVERFLOW);
	/* 1000 decimals of zeros. */
	buf[0] = '0';
	buf[1] = '.';
	memset(buf + 2, '0', 1000);
	assert_int_equal(money_parse(buf, 1002, &v), MONEY_ERR_DECIMALS);
	/* Every length 1..19 of '9's: 12 fit, 13 nines exceed 9223372036854. */
	for (int n = 1; n <= 19; n++) {
		memset(buf, '9', (size_t)n);
		int err = money_parse(buf, (size_t)n, &v);
		if (n <= 12) {
			int64_t want = 0;
			for (int i = 0; i < n; i++)
				want = want * 10 + 9;
			assert_int_equal(err, 0);
			assert_i64(v, want * MONEY_SCALE);
		} else {
			assert_int_equal(err, MONEY_ERR_OVERFLOW);
		}
	}
	assert_i64(v, 999999999999 * MONEY_SCALE);
}

static void
test_parse_decimal_scale(void **state)
{
	int64_t v = SENTINEL;

	(void)state;
	assert_int_equal(money_parse_decimal("1", 1, 0, &v), 0);
	assert_i64(v, 1);
	assert_int_equal(money_parse_decimal("1.0", 3, 0, &v), MONEY_ERR_DECIMALS);
	assert_int_equal(money_parse_decimal("9223372036854775807", 19, 0, &v), 0);
	assert_i64(v, INT64_MAX);
	assert_int_equal(money_parse_decimal("-9223372036854775808", 20, 0, &v), 0);
	assert_i64(v, INT64_MIN);
	assert_int_equal(money_parse_decimal("9223372036854775808", 19, 0, &v), MONEY_ERR_OVERFLOW);
	assert_int_equal(money_parse_decimal("9.223372036854775807", 20, 18, &v), 0);
	assert_i64(v, INT64_MAX);
	assert_int_equal(money_parse_decimal("9.223372036854775808", 20, 18, &v),
	                 MONEY_ERR_OVERFLOW);
	assert_int_equal(money_parse_decimal("10", 2, 18, &v), MONEY_ERR_OVERFLOW);
	assert_int_equal(money_parse_decimal("1.5", 3, 2, &v), 0);
	assert_i64(v, 150);
	assert_int_equal(money_parse_decimal("1", 1, -1, &v), MONEY_ERR_ARG);
	assert_int_equal(money_parse_decimal("1", 1, 19, &v), MONEY_ERR_ARG);
}

static void
test_strerror(void **state)
{
	(void)state;
	assert_string_equal(money_strerror(MONEY_ERR_DECIMALS), "more than 6 decimals");
	for (int e = -10; e <= 2; e++) {
		const char *s = money_strerror(e);
		assert_non_null(s);
		assert_true(strlen(s) > 0);
	}
	assert_string_not_equal(money_strerror(MONEY_ERR_SYNTAX),
	                        money_strerror(MONEY_ERR_OVERFLOW));
}

/* ---- formatting ----------------------------------------------------------- */

static void
check_format_line(int64_t v, const char *want, int line)
{
	char buf[MONEY_FMT_LEN];
	char *r = money_format(v, buf);

	if (r != buf)
		fail_msg("line %d: money_format did not return buf", line);
	if (strcmp(buf, want) != 0)
		fail_msg("line %d: money_format(%" PRId64 ") = \"%s\", want \"%s\"", line, v, buf,
		         want);
}

#define FORMAT(v, want) check_format_line((v), (want), __LINE__)

static void
test_format(void **state)
{
	(void)state;
	FORMAT(12500000, "12.5");
	FORMAT(4500, "0.0045");
	FORMAT(-3100000, "-3.1");
	FORMAT(0, "0");
	FORMAT(1, "0.000001");
	FORMAT(-1, "-0.000001");
	FORMAT(10, "0.00001");
	FORMAT(-100, "-0.0001");
	FORMAT(1000000, "1");
	FORMAT(-1000000, "-1");
	FORMAT(100000000000, "100000");
	FORMAT(123456789012, "123456.789012");
	FORMAT(1010000, "1.01");
	FORMAT(INT64_MAX, "9223372036854.775807");
	FORMAT(INT64_MIN, "-9223372036854.775808");
	FORMAT(INT64_MIN + 1, "-9223372036854.775807");
	FORMAT(INT64_C(9223372036854000000), "9223372036854");
}

static void
check_fixed_line(int64_t v, int d, const char *want, int line)
{
	char buf[MONEY_FMT_LEN];
	char *r = money_format_fixed(v, d, buf);

	if (r != buf)
		fail_msg("line %d: money_format_fixed did not return buf", line);
	if (strcmp(buf, want) != 0)
		fail_msg("line %d: money_format_fixed(%" PRId64 ", %d) = \"%s\", want \"%s\"", line,
		         v, d, buf, want);
}

#define FIXED(v, d, want) check_fixed_line((v), (d), (want), __LINE__)

static void
test_format_fixed(void **state)
{
	(void)state;
	FIXED(12500000, 2, "12.50");
	FIXED(1000000, 0, "1");
	FIXED(-1500000, 0, "-2");
	FIXED(1500000, 0, "2");
	FIXED(1499999, 0, "1");
	FIXED(-1499999, 0, "-1");
	FIXED(0, 0, "0");
	FIXED(0, 2, "0.00");
	FIXED(0, 6, "0.000000");
	FIXED(4500, 2, "0.00");
	FIXED(4500, 3, "0.005");
	FIXED(4500, 4, "0.0045");
	FIXED(4500, 6, "0.004500");
	FIXED(5000, 2, "0.01");
	FIXED(-5000, 2, "-0.01");
	FIXED(-4999, 2, "0.00"); /* rounds to zero: no "-0.00" */
	FIXED(-1, 0, "0");
	FIXED(-500000, 0, "-1");
	FIXED(-3100000, 2, "-3.10");
	FIXED(1000500, 3, "1.001");
	FIXED(1000499, 3, "1.000");
	FIXED(999999, 2, "1.00");
	FIXED(9995000, 2, "10.00");
	FIXED(12345678, 1, "12.3");
	FIXED(12345678, 5, "12.34568");
	FIXED(INT64_MAX, 6, "9223372036854.775807");
	FIXED(INT64_MAX, 2, "9223372036854.78");
	FIXED(INT64_MAX, 0, "9223372036855");
	FIXED(INT64_MIN, 6, "-9223372036854.775808");
	FIXED(INT64_MIN, 2, "-9223372036854.78");
	FIXED(INT64_MIN, 0, "-9223372036855");
	/* Out-of-range decimals are clamped. */
	FIXED(12345678, 7, "12.345678");
	FIXED(12345678, 100, "12.345678");
	FIXED(12345678, -1, "12");
}

static void
test_format_decimal(void **state)
{
	char buf[MONEY_FMT_LEN];

	(void)state;
	assert_string_equal(money_format_decimal(120000, 4, buf), "12");
	assert_string_equal(money_format_decimal(82500, 4, buf), "8.25");
	assert_string_equal(money_format_decimal(-8800, 4, buf), "-0.88");
	assert_string_equal(money_format_decimal(INT64_MIN, 0, buf), "-9223372036854775808");
	assert_string_equal(money_format_decimal(INT64_MAX, 18, buf), "9.223372036854775807");
	assert_string_equal(money_format_decimal(INT64_MIN, 18, buf), "-9.223372036854775808");
	assert_string_equal(money_format_decimal(1, 18, buf), "0.000000000000000001");
	assert_string_equal(money_format_decimal(15, -3, buf), "15");
	assert_string_equal(money_format_decimal(15, 99, buf), "0.000000000000000015");
}

/* Deterministic pseudo-random int64 (splitmix64). */
static uint64_t
next_rand(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static void
check_roundtrip(int64_t v)
{
	char buf[MONEY_FMT_LEN];
	char fixed[MONEY_FMT_LEN];
	int64_t back = SENTINEL;

	money_format(v, buf);
	assert_true(strlen(buf) < MONEY_FMT_LEN);
	if (money_parse(buf, strlen(buf), &back) != 0 || back != v)
		fail_msg("round trip of %" PRId64 " via \"%s\" failed", v, buf);
	/* Shortest form: no trailing zero after '.', no leading zero, no "-0". */
	size_t n = strlen(buf);
	if (strchr(buf, '.') != NULL)
		assert_true(buf[n - 1] != '0' && buf[n - 1] != '.');
	assert_string_not_equal(buf, "-0");
	/* 6-decimal fixed form is exact too. */
	money_format_fixed(v, 6, fixed);
	back = SENTINEL;
	if (money_parse(fixed, strlen(fixed), &back) != 0 || back != v)
		fail_msg("fixed round trip of %" PRId64 " via \"%s\" failed", v, fixed);
}

static void
test_format_roundtrip(void **state)
{
	static const int64_t fixed[] = {
	    0,
	    1,
	    -1,
	    9,
	    10,
	    999999,
	    1000000,
	    1000001,
	    -999999,
	    12500000,
	    4500,
	    INT64_MAX,
	    INT64_MIN,
	    INT64_MAX - 1,
	    INT64_MIN + 1,
	    INT64_C(9223372036854000000),
	    INT64_C(-9223372036854000000),
	};
	uint64_t seed = 42;

	(void)state;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		check_roundtrip(fixed[i]);
	for (int i = 0; i < 100000; i++) {
		uint64_t r = next_rand(&seed);
		/* Vary the magnitude so that short values are covered too. */
		int shift = (int)(r & 63);
		int64_t v = (int64_t)(next_rand(&seed) >> shift);
		if (r & 64)
			v = -v;
		check_roundtrip(v);
	}
}

/* ---- rounding --------------------------------------------------------------- */

static void
check_round_line(int64_t v, int e, int want_err, int64_t want, int line)
{
	int64_t out = SENTINEL;
	int err = money_round(v, e, &out);

	if (err != want_err)
		fail_msg("line %d: money_round(%" PRId64 ", %d) = %d, want %d", line, v, e, err,
		         want_err);
	if (err == 0 && out != want)
		fail_msg("line %d: money_round(%" PRId64 ", %d) -> %" PRId64 ", want %" PRId64,
		         line, v, e, out, want);
	if (err != 0 && out != SENTINEL)
		fail_msg("line %d: money_round wrote *out on error", line);
}

#define ROUND(v, e, want) check_round_line((v), (e), 0, (want), __LINE__)
#define ROUND_ERR(v, e, err) check_round_line((v), (e), (err), 0, __LINE__)

static void
test_round_eur(void **state)
{
	(void)state;
	ROUND(5000, 2, 10000);   /* 0.005 -> 0.01 */
	ROUND(-5000, 2, -10000); /* -0.005 -> -0.01 */
	ROUND(4999, 2, 0);       /* 0.004999 -> 0.00 */
	ROUND(-4999, 2, 0);
	ROUND(4500, 2, 0); /* 0.0045 -> 0.00 */
	ROUND(15000, 2, 20000);
	ROUND(25000, 2, 30000); /* half away from zero, not banker's */
	ROUND(-25000, 2, -30000);
	ROUND(12345678, 2, 12350000);
	ROUND(12344999, 2, 12340000);
	ROUND(12500000, 2, 12500000);
	ROUND(0, 2, 0);
	ROUND(995000, 2, 1000000);
	ROUND(-995000, 2, -1000000);
}

static void
test_round_jpy(void **state)
{
	(void)state;
	ROUND(2500000, 0, 3000000); /* 2.5 -> 3 */
	ROUND(-2500000, 0, -3000000);
	ROUND(3500000, 0, 4000000);
	ROUND(500000, 0, 1000000);
	ROUND(-500000, 0, -1000000);
	ROUND(499999, 0, 0);
	ROUND(-499999, 0, 0);
	ROUND(2499999, 0, 2000000);
	ROUND(1, 0, 0);
	ROUND(7000000, 0, 7000000);
}

static void
test_round_kwd(void **state)
{
	(void)state;
	ROUND(1000500, 3, 1001000); /* 1.0005 -> 1.001 */
	ROUND(-1000500, 3, -1001000);
	ROUND(1000499, 3, 1000000);
	ROUND(-1000499, 3, -1000000);
	ROUND(500, 3, 1000);
	ROUND(499, 3, 0);
	ROUND(1234567, 3, 1235000);
}

static void
test_round_exp4(void **state)
{
	(void)state;
	ROUND(50, 4, 100); /* 0.00005 -> 0.0001 */
	ROUND(-50, 4, -100);
	ROUND(49, 4, 0);
	ROUND(-49, 4, 0);
	ROUND(4500, 4, 4500);
	ROUND(123456789, 4, 123456800);
	ROUND(123456749, 4, 123456700);
}

static void
test_round_other_exponents(void **state)
{
	(void)state;
	ROUND(123456789, 6, 123456789);
	ROUND(INT64_MAX, 6, INT64_MAX);
	ROUND(INT64_MIN, 6, INT64_MIN);
	ROUND(123456789, 5, 123456790);
	ROUND(123456750, 1, 123500000);
	ROUND(-123450000, 1, -123500000);
	ROUND_ERR(1, 7, MONEY_ERR_ARG);
	ROUND_ERR(1, -1, MONEY_ERR_ARG);
	ROUND_ERR(1, 100, MONEY_ERR_ARG);
}

static void
test_round_overflow(void **state)
{
	(void)state;
	ROUND_ERR(INT64_MAX, 0, MONEY_ERR_OVERFLOW); /* -> 9223372036855 */
	ROUND_ERR(INT64_MAX, 2, MONEY_ERR_OVERFLOW); /* -> ...854.78 */
	ROUND_ERR(INT64_MAX, 5, MONEY_ERR_OVERFLOW); /* -> ...854.77581 */
	ROUND_ERR(INT64_MIN, 0, MONEY_ERR_OVERFLOW);
	ROUND_ERR(INT64_MIN, 2, MONEY_ERR_OVERFLOW);
	ROUND_ERR(INT64_C(9223372036854500000), 0, MONEY_ERR_OVERFLOW);
	ROUND(INT64_C(9223372036854499999), 0, INT64_C(9223372036854000000));
	ROUND(INT64_C(-9223372036854499999), 0, INT64_C(-9223372036854000000));
	ROUND_ERR(INT64_C(-9223372036854500000), 0, MONEY_ERR_OVERFLOW);
	ROUND(INT64_C(9223372036854775000), 3, INT64_C(9223372036854775000));
	ROUND(INT64_C(9223372036854775499), 3, INT64_C(9223372036854775000));
	ROUND_ERR(INT64_C(9223372036854775500), 3, MONEY_ERR_OVERFLOW);
	ROUND(INT64_C(9223372036854775799), 5, INT64_C(9223372036854775800));
}

/* ---- arithmetic ----------------------------------------------------------- */

static void
test_add_sub_mul(void **state)
{
	int64_t r = SENTINEL;

	(void)state;
	assert_int_equal(money_add(12500000, 4500, &r), 0);
	assert_i64(r, 12504500);
	assert_int_equal(money_add(-1, 1, &r), 0);
	assert_i64(r, 0);
	assert_int_equal(money_add(INT64_MAX, 0, &r), 0);
	assert_i64(r, INT64_MAX);
	assert_int_equal(money_add(INT64_MAX, INT64_MIN, &r), 0);
	assert_i64(r, -1);
	r = SENTINEL;
	assert_int_equal(money_add(INT64_MAX, 1, &r), MONEY_ERR_OVERFLOW);
	assert_int_equal(money_add(INT64_MIN, -1, &r), MONEY_ERR_OVERFLOW);
	assert_int_equal(money_add(INT64_MAX, INT64_MAX, &r), MONEY_ERR_OVERFLOW);
	assert_i64(r, SENTINEL);

	assert_int_equal(money_sub(5, 7, &r), 0);
	assert_i64(r, -2);
	assert_int_equal(money_sub(INT64_MIN, 0, &r), 0);
	assert_i64(r, INT64_MIN);
	assert_int_equal(money_sub(-1, INT64_MAX, &r), 0);
	assert_i64(r, INT64_MIN);
	r = SENTINEL;
	assert_int_equal(money_sub(INT64_MIN, 1, &r), MONEY_ERR_OVERFLOW);
	assert_int_equal(money_sub(0, INT64_MIN, &r), MONEY_ERR_OVERFLOW);
	assert_int_equal(money_sub(INT64_MAX, -1, &r), MONEY_ERR_OVERFLOW);
	assert_i64(r, SENTINEL);

	assert_int_equal(money_mul(4500, 1000, &r), 0); /* 1000 SMS at 0.0045 */
	assert_i64(r, 4500000);
	assert_int_equal(money_mul(-4500, 3, &r), 0);
	assert_i64(r, -13500);
	assert_int_equal(money_mul(INT64_MAX, 1, &r), 0);
	assert_i64(r, INT64_MAX);
	assert_int_equal(money_mul(INT64_MAX, -1, &r), 0);
	assert_i64(r, INT64_MIN + 1);
	assert_int_equal(money_mul(INT64_MIN, 1, &r), 0);
	assert_i64(r, INT64_MIN);
	assert_int_equal(money_mul(0, INT64_MIN, &r), 0);
	assert_i64(r, 0);
	r = SENTINEL;
	assert_int_equal(money_mul(INT64_MIN, -1, &r), MONEY_ERR_OVERFLOW);
	assert_int_equal(money_mul(INT64_MAX, 2, &r), MONEY_ERR_OVERFLOW);
	assert_int_equal(money_mul(INT64_C(4611686018427387904), 2, &r), MONEY_ERR_OVERFLOW);
	assert_int_equal(money_mul(INT64_C(3037000500), INT64_C(3037000500), &r),
	                 MONEY_ERR_OVERFLOW);
	assert_i64(r, SENTINEL);
	assert_int_equal(money_mul(INT64_C(-4611686018427387904), 2, &r), 0);
	assert_i64(r, INT64_MIN);
}

static void
check_muldiv_line(int64_t a, int64_t b, int64_t c, int want_err, int64_t want, int line)
{
	int64_t out = SENTINEL;
	int err = money_muldiv_round(a, b, c, &out);

	if (err != want_err)
		fail_msg("line %d: muldiv(%" PRId64 ", %" PRId64 ", %" PRId64 ") = %d, want %d",
		         line, a, b, c, err, want_err);
	if (err == 0 && out != want)
		fail_msg("line %d: muldiv(%" PRId64 ", %" PRId64 ", %" PRId64 ") -> %" PRId64
		         ", want %" PRId64,
		         line, a, b, c, out, want);
	if (err != 0 && out != SENTINEL)
		fail_msg("line %d: muldiv wrote *out on error", line);
}

#define MULDIV(a, b, c, want) check_muldiv_line((a), (b), (c), 0, (want), __LINE__)
#define MULDIV_ERR(a, b, c, err) check_muldiv_line((a), (b), (c), (err), 0, __LINE__)

static void
test_muldiv(void **state)
{
	(void)state;
	MULDIV(10, 1, 4, 3); /* 2.5 -> 3 */
	MULDIV(-10, 1, 4, -3);
	MULDIV(10, -1, 4, -3);
	MULDIV(10, 1, -4, -3);
	MULDIV(-10, -1, -4, -3);
	MULDIV(-10, -1, 4, 3);
	MULDIV(9, 1, 4, 2); /* 2.25 -> 2 */
	MULDIV(-9, 1, 4, -2);
	MULDIV(11, 1, 4, 3); /* 2.75 -> 3 */
	MULDIV(5, 1, 3, 2);  /* 1.67 -> 2 */
	MULDIV(4, 1, 3, 1);
	MULDIV(1, 1, 2, 1);
	MULDIV(-1, 1, 2, -1);
	MULDIV(1, 1, 3, 0);
	MULDIV(-1, 1, 3, 0);
	MULDIV(0, 123, -7, 0);
	MULDIV(7, 6, 1, 42);
	/* 1000 EUR at 12 % (120000 units of 0.0001 %) for a year: 120 EUR. */
	MULDIV(INT64_C(1000000000), 120000, 1000000, INT64_C(120000000));
	/* Same for 30/365 of a year: 1000 * 0.12 * 30 / 365 = 9.863013698... */
	MULDIV(INT64_C(1000000000) * 30, 120000, INT64_C(1000000) * 365, INT64_C(9863014));
	/* 128-bit intermediate: the product does not fit int64 but the result does. */
	MULDIV(INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX);
	MULDIV(INT64_MIN, INT64_MIN, INT64_MIN, INT64_MIN);
	MULDIV(INT64_MAX, 1000, 1000, INT64_MAX);
	MULDIV(INT64_MIN, 1000, 1000, INT64_MIN);
	MULDIV(INT64_MAX, 2, 2, INT64_MAX);
	MULDIV(INT64_MIN, -1, -1, INT64_MIN);
	MULDIV(INT64_MIN, 1, 1, INT64_MIN);
	MULDIV(INT64_MAX, -1, 1, INT64_MIN + 1);
	/* 2^126 / (2^63 - 1) is just above 2^63. */
	MULDIV_ERR(INT64_MIN, INT64_MIN, INT64_MAX, MONEY_ERR_OVERFLOW);
	/* (2^63 - 1)^2 / 2^63 = 2^63 - 2 + 1/2^63: rounds down. */
	MULDIV(INT64_MAX, INT64_MAX, INT64_MIN, INT64_C(-9223372036854775806));
}

static void
test_muldiv_overflow(void **state)
{
	(void)state;
	MULDIV_ERR(INT64_MIN, -1, 1, MONEY_ERR_OVERFLOW);
	MULDIV_ERR(INT64_MIN, 1, -1, MONEY_ERR_OVERFLOW);
	MULDIV_ERR(INT64_MAX, 2, 1, MONEY_ERR_OVERFLOW);
	MULDIV_ERR(INT64_MAX, INT64_MAX, 1, MONEY_ERR_OVERFLOW);
	MULDIV_ERR(INT64_MIN, INT64_MIN, -1, MONEY_ERR_OVERFLOW);
	MULDIV_ERR(1, 1, 0, MONEY_ERR_ARG);
	MULDIV_ERR(0, 0, 0, MONEY_ERR_ARG);
	/* (2^32-1)(2^32+1) = 2^64-1; / 2 = INT64_MAX + 0.5: rounds up out of range
	 * when positive, to exactly INT64_MIN when negative. */
	MULDIV_ERR(INT64_C(4294967295), INT64_C(4294967297), 2, MONEY_ERR_OVERFLOW);
	MULDIV(INT64_C(-4294967295), INT64_C(4294967297), 2, INT64_MIN);
	MULDIV(INT64_C(4294967295), INT64_C(4294967297), -2, INT64_MIN);
	/* Product / 3 = INT64_MAX + 1/3: rounds down into range. */
	MULDIV(INT64_C(2515465100960393402), 11, 3, INT64_MAX);
	MULDIV(INT64_C(-2515465100960393402), 11, 3, -INT64_MAX);
	MULDIV(INT64_MAX - 1, 3, 3, INT64_MAX - 1);
}

/* ---- JSON ------------------------------------------------------------------ */

static void
check_json_err(json_t *j, int want_err, const char *want_why)
{
	int64_t v = SENTINEL;
	const char *why = NULL;

	assert_int_equal(money_from_json(j, &v, &why), want_err);
	assert_non_null(why);
	if (want_why != NULL)
		assert_string_equal(why, want_why);
	assert_i64(v, SENTINEL);
	/* why may be NULL. */
	assert_int_equal(money_from_json(j, &v, NULL), want_err);
	json_decref(j);
}

static void
test_from_json_rejects(void **state)
{
	(void)state;
	check_json_err(json_integer(5), MONEY_ERR_TYPE,
	               "must be a decimal string, not a JSON number");
	check_json_err(json_integer(0), MONEY_ERR_TYPE,
	               "must be a decimal string, not a JSON number");
	check_json_err(json_real(12.5), MONEY_ERR_TYPE,
	               "must be a decimal string, not a JSON number");
	check_json_err(json_null(), MONEY_ERR_TYPE, "must be a decimal string, not null");
	check_json_err(json_true(), MONEY_ERR_TYPE, "must be a decimal string, not a boolean");
	check_json_err(json_false(), MONEY_ERR_TYPE, "must be a decimal string, not a boolean");
	check_json_err(json_object(), MONEY_ERR_TYPE, "must be a decimal string, not an object");
	check_json_err(json_array(), MONEY_ERR_TYPE, "must be a decimal string, not an array");
	check_json_err(NULL, MONEY_ERR_TYPE, "missing value");
	check_json_err(json_string("1.1234567"), MONEY_ERR_DECIMALS, "more than 6 decimals");
	check_json_err(json_string("1e3"), MONEY_ERR_SYNTAX, NULL);
	check_json_err(json_string(" 1"), MONEY_ERR_SYNTAX, NULL);
	check_json_err(json_string(""), MONEY_ERR_EMPTY, NULL);
	check_json_err(json_string("9223372036854.775808"), MONEY_ERR_OVERFLOW, NULL);
	check_json_err(json_stringn("1\0"
	                            "5",
	                            3),
	               MONEY_ERR_SYNTAX, NULL);
}

static void
test_from_json_accepts(void **state)
{
	static const struct {
		const char *s;
		int64_t v;
	} ok[] = {
	    {"12.5", 12500000},
	    {"0.0045", 4500},
	    {"-3.10", -3100000},
	    {"0", 0},
	    {"9223372036854.775807", INT64_MAX},
	    {"-9223372036854.775808", INT64_MIN},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		json_t *j = json_string(ok[i].s);
		int64_t v = SENTINEL;
		const char *why = "untouched";

		assert_int_equal(money_from_json(j, &v, &why), 0);
		assert_i64(v, ok[i].v);
		assert_string_equal(why, "untouched");
		json_decref(j);
	}
	/* From a parsed document, as the HTTP layer sees it. */
	json_error_t jerr;
	json_t *doc = json_loads("{\"amount\": \"0.0045\", \"bad\": 0.0045}", 0, &jerr);
	int64_t v = SENTINEL;
	const char *why = NULL;
	assert_non_null(doc);
	assert_int_equal(money_from_json(json_object_get(doc, "amount"), &v, &why), 0);
	assert_i64(v, 4500);
	assert_int_equal(money_from_json(json_object_get(doc, "bad"), &v, &why), MONEY_ERR_TYPE);
	assert_string_equal(why, "must be a decimal string, not a JSON number");
	assert_int_equal(money_from_json(json_object_get(doc, "absent"), &v, &why), MONEY_ERR_TYPE);
	json_decref(doc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_basic),
	    cmocka_unit_test(test_parse_decimals),
	    cmocka_unit_test(test_parse_syntax),
	    cmocka_unit_test(test_parse_every_byte),
	    cmocka_unit_test(test_parse_length),
	    cmocka_unit_test(test_parse_limits),
	    cmocka_unit_test(test_parse_error_order),
	    cmocka_unit_test(test_parse_long_digits),
	    cmocka_unit_test(test_parse_decimal_scale),
	    cmocka_unit_test(test_strerror),
	    cmocka_unit_test(test_format),
	    cmocka_unit_test(test_format_fixed),
	    cmocka_unit_test(test_format_decimal),
	    cmocka_unit_test(test_format_roundtrip),
	    cmocka_unit_test(test_round_eur),
	    cmocka_unit_test(test_round_jpy),
	    cmocka_unit_test(test_round_kwd),
	    cmocka_unit_test(test_round_exp4),
	    cmocka_unit_test(test_round_other_exponents),
	    cmocka_unit_test(test_round_overflow),
	    cmocka_unit_test(test_add_sub_mul),
	    cmocka_unit_test(test_muldiv),
	    cmocka_unit_test(test_muldiv_overflow),
	    cmocka_unit_test(test_from_json_rejects),
	    cmocka_unit_test(test_from_json_accepts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
