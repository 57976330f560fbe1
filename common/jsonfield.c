/* jsonfield.c: request field validation. */
#include "jsonfield.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "civil.h"
#include "money.h"
#include "rate.h"

void
jf_fail(struct jf_err *e, const char *field, const char *fmt, ...)
{
	va_list ap;

	snprintf(e->field, sizeof e->field, "%s", field);
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
}

int
jf_only(const json_t *obj, const char *const *allowed, struct jf_err *e)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v)
	{
		bool ok = false;
		(void)v;
		for (const char *const *a = allowed; *a; a++)
			if (strcmp(*a, key) == 0)
				ok = true;
		if (!ok) {
			jf_fail(e, key, "%.40s: unknown field", key);
			return -1;
		}
	}
	return 0;
}

static const json_t *
jf_get(const json_t *obj, const char *key, bool required, int *rc, struct jf_err *e)
{
	const json_t *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v)) {
		if (required) {
			jf_fail(e, key, "%s: required", key);
			*rc = -1;
		} else {
			*rc = 1;
		}
		return NULL;
	}
	*rc = 0;
	return v;
}

bool
jf_text_ok(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

int
jf_string(const json_t *obj, const char *key, bool required, size_t maxlen, const char **out,
          struct jf_err *e)
{
	int rc;
	const json_t *v = jf_get(obj, key, required, &rc, e);
	const char *s;

	if (v == NULL)
		return rc;
	if (!json_is_string(v)) {
		jf_fail(e, key, "%s: must be a string", key);
		return -1;
	}
	s = json_string_value(v);
	if (strlen(s) != json_string_length(v)) {
		jf_fail(e, key, "%s: must not contain NUL characters", key);
		return -1;
	}
	if (required && *s == '\0') {
		jf_fail(e, key, "%s: must not be empty", key);
		return -1;
	}
	if (strlen(s) > maxlen) {
		jf_fail(e, key, "%s: longer than %zu bytes", key, maxlen);
		return -1;
	}
	if (!jf_text_ok(s)) {
		jf_fail(e, key, "%s: must not contain control characters", key);
		return -1;
	}
	*out = s;
	return 0;
}

int
jf_amount(const json_t *obj, const char *key, bool required, bool nullable, bool *is_null,
          int64_t *out, struct jf_err *e)
{
	const json_t *v = json_object_get(obj, key);
	const char *why = NULL;

	if (is_null)
		*is_null = false;
	if (v != NULL && json_is_null(v) && nullable) {
		if (is_null)
			*is_null = true;
		return 0;
	}
	if (v == NULL || json_is_null(v)) {
		if (required) {
			jf_fail(e, key, "%s: required", key);
			return -1;
		}
		return 1;
	}
	if (money_from_json(v, out, &why) != 0) {
		jf_fail(e, key, "%s: %s", key, why ? why : "not a valid amount");
		return -1;
	}
	return 0;
}

int
jf_rate(const json_t *obj, const char *key, bool required, int32_t *out, struct jf_err *e)
{
	int rc;
	const json_t *v = jf_get(obj, key, required, &rc, e);
	const char *why = NULL;

	if (v == NULL)
		return rc;
	if (rate_from_json(v, out, &why) != 0) {
		jf_fail(e, key, "%s: %s", key, why ? why : "not a valid rate");
		return -1;
	}
	return 0;
}

int
jf_int(const json_t *obj, const char *key, bool required, int64_t min, int64_t max, int64_t *out,
       struct jf_err *e)
{
	int rc;
	const json_t *v = jf_get(obj, key, required, &rc, e);

	if (v == NULL)
		return rc;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		jf_fail(e, key, "%s: must be an integer between %lld and %lld", key, (long long)min,
		        (long long)max);
		return -1;
	}
	*out = json_integer_value(v);
	return 0;
}

int
jf_bool(const json_t *obj, const char *key, bool required, bool *out, struct jf_err *e)
{
	int rc;
	const json_t *v = jf_get(obj, key, required, &rc, e);

	if (v == NULL)
		return rc;
	if (!json_is_boolean(v)) {
		jf_fail(e, key, "%s: must be true or false", key);
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

int
jf_time(const json_t *obj, const char *key, bool required, int64_t *out, struct jf_err *e)
{
	int rc;
	const json_t *v = jf_get(obj, key, required, &rc, e);

	if (v == NULL)
		return rc;
	if (!json_is_string(v) ||
	    civil_parse_rfc3339(json_string_value(v), json_string_length(v), out) != 0) {
		jf_fail(e, key, "%s: must be an RFC 3339 time with offset", key);
		return -1;
	}
	return 0;
}

int
jf_date(const json_t *obj, const char *key, bool required, int32_t *out, struct jf_err *e)
{
	int rc;
	const json_t *v = jf_get(obj, key, required, &rc, e);

	if (v == NULL)
		return rc;
	if (!json_is_string(v) ||
	    civil_parse_date(json_string_value(v), json_string_length(v), out) != 0) {
		jf_fail(e, key, "%s: must be a date YYYY-MM-DD", key);
		return -1;
	}
	return 0;
}
