/* rate.c: annual interest rates in 0.0001 % units (SPEC R1.4). */
#include "rate.h"

#include <string.h>

#include "money.h"

int
rate_parse(const char *s, size_t len, int32_t *out)
{
	int64_t v;
	int err = money_parse_decimal(s, len, RATE_DECIMALS, &v);

	if (err != 0)
		return err;
	if (v < INT32_MIN || v > INT32_MAX)
		return MONEY_ERR_OVERFLOW;
	*out = (int32_t)v;
	return MONEY_OK;
}

const char *
rate_strerror(int err)
{
	if (err == MONEY_ERR_DECIMALS)
		return "more than 4 decimals";
	return money_strerror(err);
}

char *
rate_format(int32_t r, char buf[RATE_FMT_LEN])
{
	char tmp[MONEY_FMT_LEN];

	/* At most "-214748.3648": 12 bytes + NUL. */
	money_format_decimal(r, RATE_DECIMALS, tmp);
	memcpy(buf, tmp, strlen(tmp) + 1);
	return buf;
}

int
rate_from_json(const json_t *v, int32_t *out, const char **why)
{
	int err = money_json_type_check(v, why);

	if (err != 0)
		return err;
	err = rate_parse(json_string_value(v), json_string_length(v), out);
	if (err != 0 && why != NULL)
		*why = rate_strerror(err);
	return err;
}
