/* rate.h: annual interest rates as integers of 0.0001 % (SPEC R1.4).
 *
 * 12 % per year = 120000, 8.25 % = 82500, -0.88 % = -8800. No floating point.
 * Errors reuse the money_err codes of money.h.
 */
#ifndef CREDITD_RATE_H
#define CREDITD_RATE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define RATE_SCALE 10000 /* units per percent */
#define RATE_DECIMALS 4
#define RATE_FMT_LEN 24

/* Parse exactly len bytes of percent per year: optional '-', 1+ digits,
 * optional '.' and 1..4 digits ("12", "8.25", "13.1250", "-0.88"). Negative
 * rates are allowed (reference rates can be negative). Rejects '+', spaces,
 * exponents, ".5", "5." (MONEY_ERR_SYNTAX), "" (MONEY_ERR_EMPTY), more than 4
 * decimals (MONEY_ERR_DECIMALS), values outside int32 (MONEY_ERR_OVERFLOW).
 * Returns 0 or a negative money_err; *out untouched on error. */
int rate_parse(const char *s, size_t len, int32_t *out);

/* Short English text for a money_err code as it applies to rates
 * ("more than 4 decimals"). Never NULL. */
const char *rate_strerror(int err);

/* Shortest exact form: 120000 -> "12", 82500 -> "8.25", -8800 -> "-0.88". Returns buf. */
char *rate_format(int32_t r, char buf[RATE_FMT_LEN]);

/* Validate a JSON value that should be a rate: a JSON string rate_parse
 * accepts. Returns 0 or a negative money_err (MONEY_ERR_TYPE for non-strings);
 * *why (if why != NULL) gets a static message. */
int rate_from_json(const json_t *v, int32_t *out, const char **why);

#endif
