/* money.h: exact money amounts (SPEC R1.1, R1.2, R1.3).
 *
 * Amounts are int64_t micro-units: 1e-6 of the currency's major unit, so that
 * EUR 0.0045 is 4500 and EUR 12.5 is 12500000. No floating point anywhere.
 * Every operation that can overflow is checked and returns MONEY_ERR_OVERFLOW;
 * on any error the output parameter is left untouched.
 */
#ifndef CREDITD_MONEY_H
#define CREDITD_MONEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define MONEY_SCALE INT64_C(1000000)
#define MONEY_DECIMALS 6
#define MONEY_FMT_LEN 32 /* enough for any formatted int64 amount + NUL */

enum money_err {
	MONEY_OK = 0,
	MONEY_ERR_EMPTY = -1,    /* empty string */
	MONEY_ERR_SYNTAX = -2,   /* not a plain decimal */
	MONEY_ERR_DECIMALS = -3, /* more decimals than allowed */
	MONEY_ERR_OVERFLOW = -4, /* not representable */
	MONEY_ERR_ARG = -5,      /* invalid argument (exponent out of 0..6, division by 0) */
	MONEY_ERR_TYPE = -6,     /* JSON value is not a string */
};

/* Parse a plain decimal string of exactly len bytes (no NUL needed): optional
 * '-', 1+ ASCII digits, optional '.' followed by 1..6 digits. Rejects empty
 * (MONEY_ERR_EMPTY), '+', spaces anywhere, exponents, ".5", "5.", "-", NUL bytes
 * (MONEY_ERR_SYNTAX), more than 6 decimals even if trailing zeros
 * (MONEY_ERR_DECIMALS), values outside int64 micro-units (MONEY_ERR_OVERFLOW).
 * "-0" and "-0.000000" parse to 0; leading zeros ("007.5") are accepted.
 * Single pass, no allocation. When several errors apply, SYNTAX wins over
 * DECIMALS, which wins over OVERFLOW. */
int money_parse(const char *s, size_t len, int64_t *out);

/* Same grammar with at most max_decimals (0..18) decimals; *out is the value
 * times 10^max_decimals. Used by rate.c (4 decimals). */
int money_parse_decimal(const char *s, size_t len, int max_decimals, int64_t *out);

/* Short English text for a money_err code, e.g. "more than 6 decimals". Never NULL. */
const char *money_strerror(int err);

/* Shortest exact form: 12500000 -> "12.5", 4500 -> "0.0045", -3100000 -> "-3.1",
 * 0 -> "0"; INT64_MIN -> "-9223372036854.775808". Returns buf. */
char *money_format(int64_t v, char buf[MONEY_FMT_LEN]);

/* Shortest exact form of v / 10^scale (scale 0..18). buf needs MONEY_FMT_LEN bytes. */
char *money_format_decimal(int64_t v, int scale, char buf[MONEY_FMT_LEN]);

/* Exactly `decimals` decimals (0..6; out-of-range values are clamped), v rounded
 * half away from zero to that many decimals: (12500000, 2) -> "12.50",
 * (1000000, 0) -> "1", (-1500000, 0) -> "-2", (-4000, 2) -> "0.00" (never "-0").
 * Never fails: near INT64_MAX the rounded figure may exceed int64 and is still
 * printed exactly. Returns buf. */
char *money_format_fixed(int64_t v, int decimals, char buf[MONEY_FMT_LEN]);

/* Round v (micro-units) to `exponent` decimals (0..6) half away from zero; the
 * result is still in micro-units (money_round(4500, 2) -> 10000).
 * Returns 0, MONEY_ERR_OVERFLOW, or MONEY_ERR_ARG for a bad exponent. */
int money_round(int64_t v, int exponent, int64_t *out);

/* Checked arithmetic: 0 or MONEY_ERR_OVERFLOW. */
int money_add(int64_t a, int64_t b, int64_t *out);
int money_sub(int64_t a, int64_t b, int64_t *out);
int money_mul(int64_t a, int64_t n, int64_t *out); /* a * n, n a plain integer */

/* a * b / c with a 128-bit intermediate, rounded half away from zero.
 * Returns 0, MONEY_ERR_OVERFLOW if the result does not fit int64, or
 * MONEY_ERR_ARG if c == 0. */
int money_muldiv_round(int64_t a, int64_t b, int64_t c, int64_t *out);

/* Validate a JSON value that should be an amount: only a JSON string that
 * money_parse accepts. Returns 0 or a negative money_err (MONEY_ERR_TYPE for a
 * non-string, including NULL); *why (if why != NULL) gets a static message such
 * as "must be a decimal string, not a JSON number". */
int money_from_json(const json_t *v, int64_t *out, const char **why);

/* Shared by rate_from_json: the type check with its message, or 0 for a string. */
int money_json_type_check(const json_t *v, const char **why);

#endif
