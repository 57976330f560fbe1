/* events.c: event batch parsing and validation. */
#include "events.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "civil.h"
#include "money.h"
#include "utf8.h"
#include "xmalloc.h"

#define EVENT_TEXT_MAX 64

const char *
events_verdict_reason(enum event_verdict v)
{
	switch (v) {
	case EVENT_OK:
		return NULL;
	case EVENT_INVALID_FIELD:
		return "invalid_field";
	case EVENT_INVALID_AMOUNT:
		return "invalid_amount";
	case EVENT_INVALID_TIME:
		return "invalid_time";
	}
	return "invalid_field";
}

bool
events_uuid_canon(const char *s, char out[37])
{
	static const char hex[] = "0123456789abcdef";

	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		char c = s[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
			out[i] = '-';
			continue;
		}
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
		out[i] = hex[(c >= 'a') ? c - 'a' + 10 : c - '0'];
	}
	out[36] = '\0';
	return true;
}

static void event_reject(struct event_in *e, enum event_verdict v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
event_reject(struct event_in *e, enum event_verdict v, const char *fmt, ...)
{
	va_list ap;

	if (e->verdict != EVENT_OK)
		return;
	e->verdict = v;
	va_start(ap, fmt);
	vsnprintf(e->why, sizeof e->why, fmt, ap);
	va_end(ap);
}

/* Service/destination: 1..64 printable ASCII without spaces or quotes. */
static bool
event_text_ok(const char *s, size_t len)
{
	if (len == 0 || len > EVENT_TEXT_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '"' || s[i] == '\\' || s[i] == ',' ||
		    s[i] == '{' || s[i] == '}')
			return false;
	return true;
}

static void
event_from_json(const json_t *o, const struct events_window *w, struct event_in *e)
{
	const char *key;
	json_t *v;

	e->quantity = 1;
	if (!json_is_object(o)) {
		event_reject(e, EVENT_INVALID_FIELD, "%s", "event must be a JSON object");
		return;
	}
	v = json_object_get(o, "id");
	if (json_is_string(v)) {
		e->id_raw = xstrndup(json_string_value(v), utf8_prefix(json_string_value(v), 64));
		if (!events_uuid_canon(json_string_value(v), e->id))
			event_reject(e, EVENT_INVALID_FIELD, "%s: must be a UUID", "id");
	} else {
		event_reject(e, EVENT_INVALID_FIELD, "%s: required UUID string", "id");
	}
	json_object_foreach((json_t *)o, key, v)
	{
		if (strcmp(key, "id") == 0) {
			continue;
		} else if (strcmp(key, "account") == 0) {
			if (!json_is_string(v) || json_string_length(v) == 0 ||
			    json_string_length(v) > 140 ||
			    strlen(json_string_value(v)) != json_string_length(v))
				event_reject(e, EVENT_INVALID_FIELD,
				             "%s: must be a UUID or ext:<ref>", key);
			else
				e->account = xstrdup(json_string_value(v));
		} else if (strcmp(key, "amount") == 0) {
			const char *why = NULL;
			if (money_from_json(v, &e->amount, &why) != 0) {
				if (e->verdict == EVENT_OK) {
					e->verdict = EVENT_INVALID_AMOUNT;
					snprintf(e->why, sizeof e->why, "amount: %s",
					         why ? why : "invalid");
				}
			} else if (e->amount <= 0) {
				event_reject(e, EVENT_INVALID_AMOUNT, "%s: must be greater than 0",
				             key);
			} else if (e->amount > EVENTS_MAX_AMOUNT) {
				/* a bound that keeps the sums of a whole group commit
				 * (batch_queue_events of them) far from int64 overflow */
				event_reject(e, EVENT_INVALID_AMOUNT,
				             "%s: larger than the maximum of 1000000 per event",
				             key);
			}
		} else if (strcmp(key, "occurred_at") == 0) {
			if (!json_is_string(v) ||
			    civil_parse_rfc3339(json_string_value(v), json_string_length(v),
			                        &e->occurred) != 0)
				event_reject(e, EVENT_INVALID_TIME, "%s: must be an RFC 3339 time",
				             key);
		} else if (strcmp(key, "service") == 0) {
			if (!json_is_string(v) ||
			    !event_text_ok(json_string_value(v), json_string_length(v)))
				event_reject(e, EVENT_INVALID_FIELD,
				             "%s: 1-64 printable characters without spaces", key);
			else
				e->service = xstrdup(json_string_value(v));
		} else if (strcmp(key, "destination") == 0) {
			if (json_is_null(v))
				continue;
			if (!json_is_string(v) ||
			    !event_text_ok(json_string_value(v), json_string_length(v)))
				event_reject(e, EVENT_INVALID_FIELD,
				             "%s: 1-64 printable characters without spaces", key);
			else
				e->destination = xstrdup(json_string_value(v));
		} else if (strcmp(key, "quantity") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > INT32_MAX)
				event_reject(e, EVENT_INVALID_FIELD, "%s: integer >= 1", key);
			else
				e->quantity = (int32_t)json_integer_value(v);
		} else {
			char msg[80];
			snprintf(msg, sizeof msg, "%.*s: unknown field", (int)utf8_prefix(key, 40),
			         key);
			event_reject(e, EVENT_INVALID_FIELD, "%s", msg);
		}
	}
	if (e->account == NULL)
		event_reject(e, EVENT_INVALID_FIELD, "%s: required", "account");
	if (e->service == NULL)
		event_reject(e, EVENT_INVALID_FIELD, "%s: required", "service");
	if (json_object_get(o, "amount") == NULL)
		event_reject(e, EVENT_INVALID_AMOUNT, "%s: required", "amount");
	if (json_object_get(o, "occurred_at") == NULL)
		event_reject(e, EVENT_INVALID_TIME, "%s: required", "occurred_at");
	if (e->verdict == EVENT_OK) {
		if (e->occurred > w->now + w->max_future_usec)
			event_reject(e, EVENT_INVALID_TIME, "%s: too far in the future",
			             "occurred_at");
		else if (e->occurred < w->now - w->max_age_usec)
			event_reject(e, EVENT_INVALID_TIME, "%s: older than max_event_age",
			             "occurred_at");
	}
}

static void
batch_grow(struct event_batch *b, size_t *cap)
{
	if (b->n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		b->ev = xreallocarray(b->ev, *cap, sizeof *b->ev);
	}
	memset(&b->ev[b->n], 0, sizeof b->ev[b->n]);
}

int
events_parse(const char *body, size_t len, bool ndjson, size_t max_events,
             const struct events_window *w, struct event_batch *out, char *err, size_t errlen)
{
	size_t cap = 0;
	json_error_t jerr;

	out->ev = NULL;
	out->n = 0;
	if (ndjson) {
		const char *p = body, *end = body + len;
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			const char *le = nl ? nl : end;
			const char *q = p;
			while (q < le && (*q == ' ' || *q == '\t' || *q == '\r'))
				q++;
			if (q < le) {
				json_t *o;
				if (out->n == max_events) {
					events_free(out);
					snprintf(err, errlen, "more than %zu events", max_events);
					return EVENTS_PARSE_TOO_MANY;
				}
				batch_grow(out, &cap);
				o = json_loadb(p, (size_t)(le - p), JSON_REJECT_DUPLICATES, &jerr);
				if (o == NULL) {
					utf8_clean(jerr.text);
					out->ev[out->n].quantity = 1;
					out->ev[out->n].verdict = EVENT_INVALID_FIELD;
					snprintf(out->ev[out->n].why, sizeof out->ev[out->n].why,
					         "line is not valid JSON: %.*s",
					         (int)utf8_prefix(jerr.text, 60), jerr.text);
				} else {
					event_from_json(o, w, &out->ev[out->n]);
					json_decref(o);
				}
				out->n++;
			}
			p = nl ? nl + 1 : end;
		}
	} else {
		json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr), *arr;
		if (root == NULL) {
			utf8_clean(jerr.text);
			snprintf(err, errlen, "invalid JSON at line %d column %d: %s", jerr.line,
			         jerr.column, jerr.text);
			return EVENTS_PARSE_BAD_JSON;
		}
		arr = json_is_array(root) ? root : json_object_get(root, "events");
		if (!json_is_array(arr) || (json_is_object(root) && json_object_size(root) != 1)) {
			json_decref(root);
			snprintf(err, errlen,
			         "body must be a JSON array of events or "
			         "{\"events\": [...]}");
			return EVENTS_PARSE_BAD_JSON;
		}
		if (json_array_size(arr) > max_events) {
			json_decref(root);
			snprintf(err, errlen, "more than %zu events", max_events);
			return EVENTS_PARSE_TOO_MANY;
		}
		for (size_t i = 0; i < json_array_size(arr); i++) {
			batch_grow(out, &cap);
			event_from_json(json_array_get(arr, i), w, &out->ev[out->n]);
			out->n++;
		}
		json_decref(root);
	}
	if (out->n == 0) {
		events_free(out);
		snprintf(err, errlen, "no events");
		return EVENTS_PARSE_EMPTY;
	}
	return EVENTS_PARSE_OK;
}

void
events_free(struct event_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->ev[i].id_raw);
		free(b->ev[i].account);
		free(b->ev[i].service);
		free(b->ev[i].destination);
	}
	free(b->ev);
	b->ev = NULL;
	b->n = 0;
}
