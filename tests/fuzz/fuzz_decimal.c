/* fuzz_decimal.c: libFuzzer target for the decimal parsers of common/money
 * and common/rate (SPEC R1.2, R1.4).
 *
 * For every input: money_parse and rate_parse must agree with a slow reference
 * parser (same accept/reject decision, same error code, same value); accepted
 * values must survive parse -> format -> parse unchanged (shortest and fixed
 * forms), and rounding must agree with fixed formatting. Any mismatch aborts.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "money.h"
#include "rate.h"

__extension__ typedef __int128 i128;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_decimal: check failed: %s (line %d)\n", #cond,       \
			        __LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static bool
is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* Straightforward reference: validate the grammar, then build the value in
 * 128 bits from the significant digits. */
static int
ref_parse(const uint8_t *s, size_t len, int maxdec, i128 lo, i128 hi, i128 *out)
{
	size_t i = 0, int_start, int_end, frac_start = 0, frac_end = 0;
	bool neg = false;
	i128 v = 0;

	if (len == 0)
		return MONEY_ERR_EMPTY;
	if (s[0] == '-') {
		neg = true;
		i = 1;
	}
	int_start = i;
	while (i < len && is_digit(s[i]))
		i++;
	int_end = i;
	if (int_end == int_start)
		return MONEY_ERR_SYNTAX;
	if (i < len) {
		if (s[i] != '.')
			return MONEY_ERR_SYNTAX;
		frac_start = ++i;
		while (i < len && is_digit(s[i]))
			i++;
		frac_end = i;
		if (frac_end == frac_start || i != len)
			return MONEY_ERR_SYNTAX;
		if (frac_end - frac_start > (size_t)maxdec)
			return MONEY_ERR_DECIMALS;
	}
	while (int_start < int_end - 1 && s[int_start] == '0')
		int_start++;
	if (int_end - int_start > 20)
		return MONEY_ERR_OVERFLOW; /* >= 1e20: beyond int64 at any scale */
	for (size_t k = int_start; k < int_end; k++)
		v = v * 10 + (s[k] - '0');
	for (int k = 0; k < maxdec; k++) {
		size_t pos = frac_start + (size_t)k;
		v = v * 10 + (pos < frac_end ? s[pos] - '0' : 0);
	}
	if (neg)
		v = -v;
	if (v < lo || v > hi)
		return MONEY_ERR_OVERFLOW;
	*out = v;
	return MONEY_OK;
}

static void
check_money(const uint8_t *data, size_t size)
{
	int64_t v = 0, back = 0, r = 0;
	i128 ref = 0;
	char buf[MONEY_FMT_LEN], fixed[MONEY_FMT_LEN], fixed_r[MONEY_FMT_LEN];
	int err = money_parse((const char *)data, size, &v);
	int ref_err = ref_parse(data, size, 6, INT64_MIN, INT64_MAX, &ref);

	CHECK(err == ref_err);
	if (err != 0)
		return;
	CHECK((i128)v == ref);

	/* Shortest form round trip, and it is canonical. */
	money_format(v, buf);
	CHECK(strlen(buf) < MONEY_FMT_LEN);
	CHECK(money_parse(buf, strlen(buf), &back) == 0 && back == v);
	if (strchr(buf, '.') != NULL)
		CHECK(buf[strlen(buf) - 1] != '0');
	CHECK(strcmp(buf, "-0") != 0);
	/* Every other spelling adds a leading zero, a trailing zero or "-0". */
	CHECK(size >= strlen(buf));
	CHECK(size != strlen(buf) || memcmp(buf, data, size) == 0);

	/* Fixed forms: 6 decimals is exact; fewer agree with money_round. */
	for (int d = 0; d <= 6; d++) {
		money_format_fixed(v, d, fixed);
		if (d == 6)
			CHECK(money_parse(fixed, strlen(fixed), &back) == 0 && back == v);
		if (money_round(v, d, &r) == 0) {
			CHECK(money_parse(fixed, strlen(fixed), &back) == 0 && back == r);
			money_format_fixed(r, d, fixed_r);
			CHECK(strcmp(fixed, fixed_r) == 0);
			/* Half away from zero: |v - r| <= half a unit, sign kept. */
			i128 unit = 1;
			for (int k = d; k < 6; k++)
				unit *= 10;
			i128 diff = (i128)v - (i128)r;
			CHECK(diff * 2 <= unit && diff * 2 >= -unit);
			CHECK((i128)r % unit == 0);
			if (diff * 2 == unit || diff * 2 == -unit)
				CHECK((v > 0 && r > v) || (v < 0 && r < v));
		}
	}
}

static void
check_rate(const uint8_t *data, size_t size)
{
	int32_t v = 0, back = 0;
	i128 ref = 0;
	char buf[RATE_FMT_LEN];
	int err = rate_parse((const char *)data, size, &v);
	int ref_err = ref_parse(data, size, 4, INT32_MIN, INT32_MAX, &ref);

	CHECK(err == ref_err);
	if (err != 0)
		return;
	CHECK((i128)v == ref);
	rate_format(v, buf);
	CHECK(rate_parse(buf, strlen(buf), &back) == 0 && back == v);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_money(data, size);
	check_rate(data, size);
	return 0;
}
