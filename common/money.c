/* money.c: exact money amounts in int64 micro-units (SPEC R1.1-R1.3). */
#include "money.h"

#include <string.h>

__extension__ typedef __int128 money_i128;
__extension__ typedef unsigned __int128 money_u128;

/* 10^0 .. 10^19 (10^19 still fits in uint64). */
static const uint64_t pow10_u64[20] = {
    UINT64_C(1),
    UINT64_C(10),
    UINT64_C(100),
    UINT64_C(1000),
    UINT64_C(10000),
    UINT64_C(100000),
    UINT64_C(1000000),
    UINT64_C(10000000),
    UINT64_C(100000000),
    UINT64_C(1000000000),
    UINT64_C(10000000000),
    UINT64_C(100000000000),
    UINT64_C(1000000000000),
    UINT64_C(10000000000000),
    UINT64_C(100000000000000),
    UINT64_C(1000000000000000),
    UINT64_C(10000000000000000),
    UINT64_C(100000000000000000),
    UINT64_C(1000000000000000000),
    UINT64_C(10000000000000000000),
};

#define MAG_INT64_MIN ((uint64_t)INT64_MAX + 1) /* |INT64_MIN| */

/* Magnitude of v as uint64, exact also for INT64_MIN. */
static inline uint64_t
mag_of(int64_t v)
{
	return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
}

/* Signed value from sign and magnitude; caller ensures mag <= limit for the sign. */
static inline int64_t
from_mag(bool neg, uint64_t mag)
{
	if (!neg || mag == 0)
		return (int64_t)mag;
	return -(int64_t)(mag - 1) - 1;
}

/* Store sign+magnitude into *out if representable. */
static inline int
store_mag(bool neg, uint64_t mag, int64_t *out)
{
	if (mag > (neg ? MAG_INT64_MIN : (uint64_t)INT64_MAX))
		return MONEY_ERR_OVERFLOW;
	*out = from_mag(neg, mag);
	return MONEY_OK;
}

/* The single-pass parser behind money_parse and money_parse_decimal. Inlined
 * with a constant maxdec, the powers of ten become constants. */
static inline __attribute__((always_inline)) int
parse_decimal(const char *s, size_t len, int maxdec, int64_t *out)
{
	const char *p = s;
	const char *end = s + len;
	const char *start;
	bool neg = false;
	bool big = false;
	uint64_t ip = 0;
	uint64_t frac = 0;
	uint64_t mag;

	if (len == 0)
		return MONEY_ERR_EMPTY;
	if (*p == '-') {
		neg = true;
		p++;
	}
	start = p;
	for (; p < end; p++) {
		unsigned d = (unsigned)(unsigned char)*p - '0';
		if (d > 9)
			break;
		/* Below 1e18, ip * 10 + 9 < 1e19 cannot overflow uint64; a 20th
		 * significant digit means >= 1e19, beyond int64 at any scale. */
		if (ip < UINT64_C(1000000000000000000))
			ip = ip * 10 + d;
		else
			big = true;
	}
	if (p == start)
		return MONEY_ERR_SYNTAX; /* "", "-", ".5", "+1", " 1", non-ASCII digits */
	if (p < end) {
		const char *fstart;
		size_t nfrac;

		if (*p != '.')
			return MONEY_ERR_SYNTAX;
		fstart = ++p;
		for (; p < end; p++) {
			unsigned d = (unsigned)(unsigned char)*p - '0';
			if (d > 9)
				break;
			if (p - fstart < maxdec)
				frac = frac * 10 + d;
		}
		nfrac = (size_t)(p - fstart);
		if (nfrac == 0 || p < end)
			return MONEY_ERR_SYNTAX; /* "5.", "1.2.3", "1.0 ", "1e3" */
		if (nfrac > (size_t)maxdec)
			return MONEY_ERR_DECIMALS;
		frac *= pow10_u64[maxdec - (int)nfrac];
	}
	if (big)
		return MONEY_ERR_OVERFLOW;
	if (__builtin_mul_overflow(ip, pow10_u64[maxdec], &mag) ||
	    __builtin_add_overflow(mag, frac, &mag))
		return MONEY_ERR_OVERFLOW;
	return store_mag(neg, mag, out);
}

int
money_parse(const char *s, size_t len, int64_t *out)
{
	return parse_decimal(s, len, MONEY_DECIMALS, out);
}

int
money_parse_decimal(const char *s, size_t len, int max_decimals, int64_t *out)
{
	if (max_decimals < 0 || max_decimals > 18)
		return MONEY_ERR_ARG;
	return parse_decimal(s, len, max_decimals, out);
}

const char *
money_strerror(int err)
{
	switch (err) {
	case MONEY_OK:
		return "ok";
	case MONEY_ERR_EMPTY:
		return "empty string";
	case MONEY_ERR_SYNTAX:
		return "not a plain decimal number";
	case MONEY_ERR_DECIMALS:
		return "more than 6 decimals";
	case MONEY_ERR_OVERFLOW:
		return "out of range";
	case MONEY_ERR_ARG:
		return "invalid argument";
	case MONEY_ERR_TYPE:
		return "must be a decimal string";
	default:
		return "unknown error";
	}
}

/* Write [-]ip[.frac] with exactly fdigits decimals (fdigits 0..19), or with
 * trailing zeros removed when trim is set. buf holds MONEY_FMT_LEN bytes. */
static char *
emit(char *buf, bool neg, uint64_t ip, uint64_t frac, int fdigits, bool trim)
{
	char tmp[MONEY_FMT_LEN];
	int n = 0;
	size_t o = 0;

	if (trim) {
		while (fdigits > 0 && frac % 10 == 0) {
			frac /= 10;
			fdigits--;
		}
	}
	/* Digits are produced backwards into tmp, then copied. */
	for (int i = 0; i < fdigits; i++) {
		tmp[n++] = (char)('0' + frac % 10);
		frac /= 10;
	}
	if (fdigits > 0)
		tmp[n++] = '.';
	do {
		tmp[n++] = (char)('0' + ip % 10);
		ip /= 10;
	} while (ip != 0);
	if (neg)
		buf[o++] = '-';
	while (n > 0)
		buf[o++] = tmp[--n];
	buf[o] = '\0';
	return buf;
}

char *
money_format_decimal(int64_t v, int scale, char buf[MONEY_FMT_LEN])
{
	uint64_t mag = mag_of(v);

	if (scale < 0)
		scale = 0;
	if (scale > 18)
		scale = 18;
	return emit(buf, v < 0, mag / pow10_u64[scale], mag % pow10_u64[scale], scale, true);
}

char *
money_format(int64_t v, char buf[MONEY_FMT_LEN])
{
	uint64_t mag = mag_of(v);

	return emit(buf, v < 0, mag / (uint64_t)MONEY_SCALE, mag % (uint64_t)MONEY_SCALE,
	            MONEY_DECIMALS, true);
}

/* mag / unit rounded half away from zero (on the magnitude). */
static inline uint64_t
div_round_half_up(uint64_t mag, uint64_t unit)
{
	uint64_t q = mag / unit;
	uint64_t r = mag % unit;

	if (r >= unit - r)
		q++;
	return q;
}

char *
money_format_fixed(int64_t v, int decimals, char buf[MONEY_FMT_LEN])
{
	uint64_t q;

	if (decimals < 0)
		decimals = 0;
	if (decimals > MONEY_DECIMALS)
		decimals = MONEY_DECIMALS;
	/* q <= 2^63 / 1 + 1 fits in uint64: the rounded figure is printed exactly
	 * even where it would not fit int64 micro-units. */
	q = div_round_half_up(mag_of(v), pow10_u64[MONEY_DECIMALS - decimals]);
	return emit(buf, v < 0 && q != 0, q / pow10_u64[decimals], q % pow10_u64[decimals],
	            decimals, false);
}

int
money_round(int64_t v, int exponent, int64_t *out)
{
	uint64_t unit;

	if (exponent < 0 || exponent > MONEY_DECIMALS)
		return MONEY_ERR_ARG;
	unit = pow10_u64[MONEY_DECIMALS - exponent];
	/* q * unit <= 2^63 + unit: no uint64 overflow. */
	return store_mag(v < 0, div_round_half_up(mag_of(v), unit) * unit, out);
}

int
money_add(int64_t a, int64_t b, int64_t *out)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return MONEY_ERR_OVERFLOW;
	*out = r;
	return MONEY_OK;
}

int
money_sub(int64_t a, int64_t b, int64_t *out)
{
	int64_t r;

	if (__builtin_sub_overflow(a, b, &r))
		return MONEY_ERR_OVERFLOW;
	*out = r;
	return MONEY_OK;
}

int
money_mul(int64_t a, int64_t n, int64_t *out)
{
	int64_t r;

	if (__builtin_mul_overflow(a, n, &r))
		return MONEY_ERR_OVERFLOW;
	*out = r;
	return MONEY_OK;
}

int
money_muldiv_round(int64_t a, int64_t b, int64_t c, int64_t *out)
{
	money_i128 p;
	money_u128 pm, cm, q, r;
	bool neg;

	if (c == 0)
		return MONEY_ERR_ARG;
	p = (money_i128)a * b; /* |a * b| <= 2^126: exact */
	neg = (p < 0) != (c < 0);
	pm = p < 0 ? (money_u128)0 - (money_u128)p : (money_u128)p;
	cm = mag_of(c);
	q = pm / cm;
	r = pm % cm;
	if (r >= cm - r)
		q++;
	if (q > (money_u128)MAG_INT64_MIN)
		return MONEY_ERR_OVERFLOW;
	return store_mag(neg && q != 0, (uint64_t)q, out);
}

int
money_json_type_check(const json_t *v, const char **why)
{
	const char *msg = NULL;

	if (v == NULL) {
		msg = "missing value";
	} else {
		switch (json_typeof(v)) {
		case JSON_STRING:
			return MONEY_OK;
		case JSON_INTEGER:
		case JSON_REAL:
			msg = "must be a decimal string, not a JSON number";
			break;
		case JSON_NULL:
			msg = "must be a decimal string, not null";
			break;
		case JSON_TRUE:
		case JSON_FALSE:
			msg = "must be a decimal string, not a boolean";
			break;
		case JSON_OBJECT:
			msg = "must be a decimal string, not an object";
			break;
		case JSON_ARRAY:
			msg = "must be a decimal string, not an array";
			break;
		}
	}
	if (why != NULL)
		*why = msg != NULL ? msg : "must be a decimal string";
	return MONEY_ERR_TYPE;
}

int
money_from_json(const json_t *v, int64_t *out, const char **why)
{
	int err = money_json_type_check(v, why);

	if (err != 0)
		return err;
	err = money_parse(json_string_value(v), json_string_length(v), out);
	if (err != 0 && why != NULL)
		*why = money_strerror(err);
	return err;
}
