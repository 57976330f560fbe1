/* test_currency.c: unit tests of common/currency (SPEC R1.3). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "currency.h"

static void
check_exp_line(const char *code, int want, int line)
{
	int got = currency_exponent(code);

	if (got != want)
		fail_msg("line %d: currency_exponent(\"%s\") = %d, want %d", line,
		         code != NULL ? code : "(null)", got, want);
	if (currency_valid(code) != (want >= 0))
		fail_msg("line %d: currency_valid(\"%s\") disagrees", line,
		         code != NULL ? code : "(null)");
}

#define EXP(code, want) check_exp_line((code), (want), __LINE__)

static void
test_exponent_0(void **state)
{
	(void)state;
	EXP("JPY", 0);
	EXP("KRW", 0);
	EXP("ISK", 0);
	EXP("VND", 0);
	EXP("XAF", 0);
	EXP("XOF", 0);
	EXP("XPF", 0);
	EXP("CLP", 0);
	EXP("PYG", 0);
	EXP("UGX", 0);
	EXP("BIF", 0);
	EXP("DJF", 0);
	EXP("GNF", 0);
	EXP("KMF", 0);
	EXP("RWF", 0);
	EXP("VUV", 0);
	EXP("UYI", 0);
}

static void
test_exponent_2(void **state)
{
	(void)state;
	EXP("EUR", 2);
	EXP("USD", 2);
	EXP("GBP", 2);
	EXP("CHF", 2);
	EXP("SEK", 2);
	EXP("CNY", 2);
	EXP("INR", 2);
	EXP("BRL", 2);
	EXP("IDR", 2);
	EXP("HUF", 2);
	EXP("MGA", 2);
	EXP("MRU", 2);
	EXP("ZWG", 2);
	EXP("XCG", 2);
	EXP("SLE", 2);
	EXP("VES", 2);
	EXP("AED", 2); /* first in the table */
	EXP("ZWL", 2);
}

static void
test_exponent_3(void **state)
{
	(void)state;
	EXP("KWD", 3);
	EXP("BHD", 3);
	EXP("JOD", 3);
	EXP("OMR", 3);
	EXP("TND", 3);
	EXP("LYD", 3);
	EXP("IQD", 3);
}

static void
test_exponent_4(void **state)
{
	(void)state;
	EXP("CLF", 4);
	EXP("UYW", 4);
}

static void
test_unknown(void **state)
{
	(void)state;
	EXP("eur", -1);
	EXP("Eur", -1);
	EXP("EUr", -1);
	EXP("EURO", -1);
	EXP("EU", -1);
	EXP("E", -1);
	EXP("", -1);
	EXP(" EUR", -1);
	EXP("EUR ", -1);
	EXP("EU1", -1);
	EXP("E\xc3\x9c", -1);
	EXP("ABC", -1);
	EXP("AAA", -1);
	EXP("ZZZ", -1);
	EXP("XYZ", -1);
	EXP("HRK", -1); /* withdrawn 2023 */
	EXP("DEM", -1); /* withdrawn 2002 */
	/* No usable minor unit in ISO 4217 ("N.A."). */
	EXP("XAU", -1);
	EXP("XAG", -1);
	EXP("XDR", -1);
	EXP("XTS", -1);
	EXP("XXX", -1);
	EXP(NULL, -1);
	/* A longer buffer starting with a valid code is not that code. */
	char buf[8] = {'E', 'U', 'R', 'X', 0, 0, 0, 0};
	EXP(buf, -1);
	buf[3] = '\0';
	EXP(buf, 2);
}

/* The table is sorted, unique, well-formed, and every entry is found. */
static void
test_table(void **state)
{
	size_t n = currency_count();
	int by_exp[5] = {0};

	(void)state;
	assert_true(n >= 150);
	assert_null(currency_code_at(n));
	for (size_t i = 0; i < n; i++) {
		const char *c = currency_code_at(i);
		int e;

		assert_non_null(c);
		assert_int_equal(strlen(c), 3);
		if (i > 0)
			assert_true(strcmp(currency_code_at(i - 1), c) < 0);
		e = currency_exponent(c);
		assert_true(e == 0 || e == 2 || e == 3 || e == 4);
		by_exp[e]++;
	}
	assert_int_equal(by_exp[3], 7);
	assert_int_equal(by_exp[4], 2);
	assert_int_equal(by_exp[0], 17);
}

/* Exhaustive: every 3-letter uppercase code gives -1 or a table entry. */
static void
test_exhaustive(void **state)
{
	size_t found = 0;

	(void)state;
	for (char a = 'A'; a <= 'Z'; a++)
		for (char b = 'A'; b <= 'Z'; b++)
			for (char c = 'A'; c <= 'Z'; c++) {
				char code[4] = {a, b, c, '\0'};
				if (currency_exponent(code) >= 0)
					found++;
			}
	assert_int_equal(found, currency_count());
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exponent_0), cmocka_unit_test(test_exponent_2),
	    cmocka_unit_test(test_exponent_3), cmocka_unit_test(test_exponent_4),
	    cmocka_unit_test(test_unknown),    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_exhaustive),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
