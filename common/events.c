/* events.c: event batch parsing and validation. */
#include "events.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "civil.h"
#include "jsonscan.h"
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

static void event_finish(struct event_in *e, bool has_amount, bool has_occurred,
                         const struct events_window *w);
static void event_field_unknown(struct event_in *e, const char *key);

/* The id, a string (NUL-terminated): checked before every other field. */
static void
event_field_id(struct event_in *e, const char *v)
{
	e->id_raw = xstrndup(v, utf8_prefix(v, 64));
	if (!events_uuid_canon(v, e->id))
		event_reject(e, EVENT_INVALID_FIELD, "%s: must be a UUID", "id");
}

/* A field other than id whose value is a JSON string of len bytes (v is
 * NUL-terminated after them); quantity is never a string. */
static void
event_field_string(struct event_in *e, const char *key, const char *v, size_t len)
{
	if (strcmp(key, "account") == 0) {
		if (len == 0 || len > 140 || strlen(v) != len)
			event_reject(e, EVENT_INVALID_FIELD, "%s: must be a UUID or ext:<ref>",
			             key);
		else
			e->account = xstrndup(v, len);
	} else if (strcmp(key, "amount") == 0) {
		int err = money_parse(v, len, &e->amount);
		if (err != 0) {
			if (e->verdict == EVENT_OK) {
				e->verdict = EVENT_INVALID_AMOUNT;
				snprintf(e->why, sizeof e->why, "amount: %s", money_strerror(err));
			}
		} else if (e->amount <= 0) {
			event_reject(e, EVENT_INVALID_AMOUNT, "%s: must be greater than 0", key);
		} else if (e->amount > EVENTS_MAX_AMOUNT) {
			/* a bound that keeps the sums of a whole group commit
			 * (batch_queue_events of them) far from int64 overflow */
			event_reject(e, EVENT_INVALID_AMOUNT,
			             "%s: larger than the maximum of 1000000 per event", key);
		}
	} else if (strcmp(key, "occurred_at") == 0) {
		if (civil_parse_rfc3339(v, len, &e->occurred) != 0)
			event_reject(e, EVENT_INVALID_TIME, "%s: must be an RFC 3339 time", key);
	} else if (strcmp(key, "service") == 0) {
		if (!event_text_ok(v, len))
			event_reject(e, EVENT_INVALID_FIELD,
			             "%s: 1-64 printable characters without spaces", key);
		else
			e->service = xstrndup(v, len);
	} else if (strcmp(key, "destination") == 0) {
		if (!event_text_ok(v, len))
			event_reject(e, EVENT_INVALID_FIELD,
			             "%s: 1-64 printable characters without spaces", key);
		else
			e->destination = xstrndup(v, len);
	} else {
		event_field_unknown(e, key);
	}
}

static void
event_field_unknown(struct event_in *e, const char *key)
{
	char msg[80];

	snprintf(msg, sizeof msg, "%.*s: unknown field", (int)utf8_prefix(key, 40), key);
	event_reject(e, EVENT_INVALID_FIELD, "%s", msg);
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
	if (json_is_string(v))
		event_field_id(e, json_string_value(v));
	else
		event_reject(e, EVENT_INVALID_FIELD, "%s: required UUID string", "id");
	json_object_foreach((json_t *)o, key, v)
	{
		if (strcmp(key, "id") == 0)
			continue;
		if (json_is_string(v) && strcmp(key, "quantity") != 0) {
			event_field_string(e, key, json_string_value(v), json_string_length(v));
		} else if (strcmp(key, "account") == 0) {
			event_reject(e, EVENT_INVALID_FIELD, "%s: must be a UUID or ext:<ref>",
			             key);
		} else if (strcmp(key, "amount") == 0) {
			const char *why = NULL;
			(void)money_from_json(v, &e->amount, &why); /* not a string: fails */
			if (e->verdict == EVENT_OK) {
				e->verdict = EVENT_INVALID_AMOUNT;
				snprintf(e->why, sizeof e->why, "amount: %s",
				         why ? why : "invalid");
			}
		} else if (strcmp(key, "occurred_at") == 0) {
			event_reject(e, EVENT_INVALID_TIME, "%s: must be an RFC 3339 time", key);
		} else if (strcmp(key, "service") == 0) {
			event_reject(e, EVENT_INVALID_FIELD,
			             "%s: 1-64 printable characters without spaces", key);
		} else if (strcmp(key, "destination") == 0) {
			if (!json_is_null(v))
				event_reject(e, EVENT_INVALID_FIELD,
				             "%s: 1-64 printable characters without spaces", key);
		} else if (strcmp(key, "quantity") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > INT32_MAX)
				event_reject(e, EVENT_INVALID_FIELD, "%s: integer >= 1", key);
			else
				e->quantity = (int32_t)json_integer_value(v);
		} else {
			event_field_unknown(e, key);
		}
	}
	event_finish(e, json_object_get(o, "amount") != NULL,
	             json_object_get(o, "occurred_at") != NULL, w);
}

/* What follows every field: the required ones and the time window. */
static void
event_finish(struct event_in *e, bool has_amount, bool has_occurred, const struct events_window *w)
{
	if (e->account == NULL)
		event_reject(e, EVENT_INVALID_FIELD, "%s: required", "account");
	if (e->service == NULL)
		event_reject(e, EVENT_INVALID_FIELD, "%s: required", "service");
	if (!has_amount)
		event_reject(e, EVENT_INVALID_AMOUNT, "%s: required", "amount");
	if (!has_occurred)
		event_reject(e, EVENT_INVALID_TIME, "%s: required", "occurred_at");
	if (e->verdict == EVENT_OK) {
		if (e->occurred > w->now + w->max_future_usec)
			event_reject(e, EVENT_INVALID_TIME, "%s: too far in the future",
			             "occurred_at");
		else if (e->occurred < w->now - w->max_age_usec) {
			/* the last check, reached only without another fault */
			event_reject(e, EVENT_INVALID_TIME, "%s: older than max_event_age",
			             "occurred_at");
			e->too_old = true;
		}
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

/* ---- Fast path: the usual body, read without building a jansson tree ----
 *
 * A JSON array of events or {"events": [...]}, each event a flat object
 * whose keys are known event fields, each at most once, with values that are
 * strings of printable ASCII without escapes (quantity: a small positive
 * integer; destination: also null). Every value goes through the same
 * checks as on the jansson path, in the same order (id first, then the
 * fields in document order). Anything else (other shapes, escapes, non-ASCII,
 * duplicate or unknown keys, numbers elsewhere, invalid JSON, empty or too
 * many events) returns EVENTS_FAST_NO and the body is parsed with jansson,
 * which answers it exactly as before. */
#define EVENTS_FAST_VALUE_MAX 255 /* longer strings take the jansson path */

enum fast_kind { FAST_STRING, FAST_INT, FAST_NULL };

struct fast_field {
	const char *key; /* a known field name (static) */
	enum fast_kind kind;
	const char *v; /* FAST_STRING: value bytes in the body */
	size_t len;
	int64_t i; /* FAST_INT */
};

static const char *const fast_keys[] = {"id",      "account",     "amount",   "occurred_at",
                                        "service", "destination", "quantity", NULL};

/* One event object at *pp into e; false: not of the fast shape. */
static bool
fast_event(const char **pp, const char *end, const struct events_window *w, struct event_in *e)
{
	struct fast_field f[7];
	const char *p = *pp, *id = NULL;
	size_t nf = 0, id_len = 0;
	bool has_amount = false, has_occurred = false;
	char buf[EVENTS_FAST_VALUE_MAX + 1];

	if (p == end || *p++ != '{')
		return false;
	p = jsonscan_ws(p, end);
	if (p < end && *p == '}')
		return false;
	for (;;) {
		const char *k, *key = NULL;
		size_t klen;

		if (!jsonscan_plain_string(&p, end, &k, &klen))
			return false;
		for (int j = 0; fast_keys[j]; j++)
			if (strlen(fast_keys[j]) == klen && memcmp(fast_keys[j], k, klen) == 0)
				key = fast_keys[j];
		if (key == NULL)
			return false;
		for (size_t j = 0; j < nf; j++)
			if (f[j].key == key)
				return false; /* duplicate key: invalid JSON for jansson */
		if (key == fast_keys[0] && id != NULL)
			return false;
		p = jsonscan_ws(p, end);
		if (p == end || *p++ != ':')
			return false;
		p = jsonscan_ws(p, end);
		if (p == end)
			return false;
		f[nf].key = key;
		if (*p == '"') {
			if (!jsonscan_plain_string(&p, end, &f[nf].v, &f[nf].len) ||
			    f[nf].len > EVENTS_FAST_VALUE_MAX || key == fast_keys[6])
				return false;
			f[nf].kind = FAST_STRING;
		} else if (*p >= '0' && *p <= '9' && key == fast_keys[6]) {
			int64_t v = 0;
			int digits = 0;
			if (*p == '0' && end - p > 1 && p[1] >= '0' && p[1] <= '9')
				return false; /* a leading zero: not JSON */
			while (p < end && *p >= '0' && *p <= '9') {
				if (++digits > 10)
					return false;
				v = v * 10 + (*p++ - '0');
			}
			if (p < end && (*p == '.' || *p == 'e' || *p == 'E'))
				return false;
			f[nf].kind = FAST_INT;
			f[nf].i = v;
		} else if (end - p >= 4 && memcmp(p, "null", 4) == 0 && key == fast_keys[5]) {
			p += 4;
			f[nf].kind = FAST_NULL;
		} else {
			return false;
		}
		if (key == fast_keys[0]) {
			id = f[nf].v;
			id_len = f[nf].len;
		}
		nf++;
		p = jsonscan_ws(p, end);
		if (p < end && *p == ',') {
			p = jsonscan_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == '}')
			break;
		return false;
	}
	if (id == NULL)
		return false;
	*pp = p + 1;

	e->quantity = 1;
	memcpy(buf, id, id_len);
	buf[id_len] = '\0';
	event_field_id(e, buf);
	for (size_t j = 0; j < nf; j++) {
		if (f[j].key == fast_keys[0])
			continue;
		if (f[j].key == fast_keys[2])
			has_amount = true;
		else if (f[j].key == fast_keys[3])
			has_occurred = true;
		if (f[j].kind == FAST_STRING) {
			memcpy(buf, f[j].v, f[j].len);
			buf[f[j].len] = '\0';
			event_field_string(e, f[j].key, buf, f[j].len);
		} else if (f[j].kind == FAST_INT) {
			if (f[j].i < 1 || f[j].i > INT32_MAX)
				event_reject(e, EVENT_INVALID_FIELD, "%s: integer >= 1", f[j].key);
			else
				e->quantity = (int32_t)f[j].i;
		}
		/* FAST_NULL: a destination of null is no destination */
	}
	event_finish(e, has_amount, has_occurred, w);
	return true;
}

int
events_parse_fast(const char *body, size_t len, size_t max_events, const struct events_window *w,
                  struct event_batch *out)
{
	const char *p = body, *end = body + len;
	bool wrapped = false;
	size_t cap = 0;

	out->ev = NULL;
	out->n = 0;
	p = jsonscan_ws(p, end);
	if (p < end && *p == '{') {
		const char *k;
		size_t klen;
		p = jsonscan_ws(p + 1, end);
		if (!jsonscan_plain_string(&p, end, &k, &klen) || klen != 6 ||
		    memcmp(k, "events", 6) != 0)
			return EVENTS_FAST_NO;
		p = jsonscan_ws(p, end);
		if (p == end || *p++ != ':')
			return EVENTS_FAST_NO;
		p = jsonscan_ws(p, end);
		wrapped = true;
	}
	if (p == end || *p++ != '[')
		return EVENTS_FAST_NO;
	p = jsonscan_ws(p, end);
	for (;;) {
		if (out->n == max_events)
			goto no;
		batch_grow(out, &cap);
		if (!fast_event(&p, end, w, &out->ev[out->n])) {
			out->n++; /* its allocations are freed with the batch */
			goto no;
		}
		out->n++;
		p = jsonscan_ws(p, end);
		if (p < end && *p == ',') {
			p = jsonscan_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == ']')
			break;
		goto no;
	}
	p = jsonscan_ws(p + 1, end);
	if (wrapped) {
		if (p == end || *p++ != '}')
			goto no;
		p = jsonscan_ws(p, end);
	}
	if (p != end)
		goto no;
	return EVENTS_PARSE_OK;
no:
	events_free(out);
	return EVENTS_FAST_NO;
}

int
events_parse(const char *body, size_t len, bool ndjson, size_t max_events,
             const struct events_window *w, struct event_batch *out, char *err, size_t errlen)
{
	if (!ndjson && events_parse_fast(body, len, max_events, w, out) == EVENTS_PARSE_OK)
		return EVENTS_PARSE_OK;
	return events_parse_jansson(body, len, ndjson, max_events, w, out, err, errlen);
}

int
events_parse_jansson(const char *body, size_t len, bool ndjson, size_t max_events,
                     const struct events_window *w, struct event_batch *out, char *err,
                     size_t errlen)
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
