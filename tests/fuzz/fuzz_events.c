/*
 * fuzz_events.c: libFuzzer target for common/events (R3.1, R3.2, API.md
 * "Usage").
 *
 * The first input byte chooses how the rest is fed to events_parse:
 *   bits 0-1: 0 = the body as is (JSON array or {"events": [...]}),
 *             1 = wrapped as [<rest>], 2 = wrapped as {"events": [<rest>]},
 *             3 = NDJSON (one event per line);
 *   bits 2-4: max_events (0..6, or 7 = 10000).
 * The body is copied into an allocation of exactly its size (no NUL), so a
 * read past the end is an ASan report.
 *
 * Checks: the status is one of the four; a failure leaves an empty batch and
 * an error text; a success has 1..max_events events, each with a verdict, a
 * reason and text the daemon can put in its JSON reply (valid UTF-8); an
 * accepted event satisfies every rule (canonical UUID, amount > 0, time in the
 * window, service/destination shape). A JSON array parses to the same
 * verdicts as the same events in {"events": [...]} and as NDJSON lines.
 * Seeds: tests/fuzz/corpus/events/.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_events: check failed: %s (line %d)\n", #cond,        \
			        __LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

enum { MODE_RAW = 0, MODE_ARRAY = 1, MODE_OBJECT = 2, MODE_NDJSON = 3 };

/* 2023-07-01T00:00:00Z, 5 minutes of future skew, 35 days of age. */
static const struct events_window window = {
    .now = INT64_C(1688169600000000),
    .max_future_usec = INT64_C(300000000),
    .max_age_usec = INT64_C(35) * 86400 * 1000000,
};

static bool
utf8_ok(const char *s)
{
	json_t *j = json_string(s); /* what the daemon's reply does with it */
	bool ok = j != NULL;

	json_decref(j);
	return ok;
}

static bool
text_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '"' || s[i] == '\\' || s[i] == ',' ||
		    s[i] == '{' || s[i] == '}')
			return false;
	return true;
}

static void
check_event(const struct event_in *e)
{
	char canon[37];

	CHECK(e->verdict >= EVENT_OK && e->verdict <= EVENT_INVALID_TIME);
	CHECK((events_verdict_reason(e->verdict) == NULL) == (e->verdict == EVENT_OK));
	CHECK(memchr(e->why, '\0', sizeof e->why) != NULL);
	CHECK(utf8_ok(e->why));
	CHECK(e->quantity >= 1);
	if (e->id_raw != NULL) {
		CHECK(strlen(e->id_raw) <= 64);
		CHECK(utf8_ok(e->id_raw));
	}
	if (e->account != NULL)
		CHECK(utf8_ok(e->account));
	if (e->verdict != EVENT_OK) {
		CHECK(e->why[0] != '\0');
		return;
	}
	CHECK(e->id_raw != NULL);
	CHECK(events_uuid_canon(e->id_raw, canon) && strcmp(canon, e->id) == 0);
	CHECK(events_uuid_canon(e->id, canon) && strcmp(canon, e->id) == 0);
	CHECK(e->account != NULL && e->account[0] != '\0' && strlen(e->account) <= 140);
	CHECK(e->service != NULL && text_ok(e->service));
	CHECK(e->destination == NULL || text_ok(e->destination));
	CHECK(e->amount > 0);
	CHECK(e->occurred <= window.now + window.max_future_usec);
	CHECK(e->occurred >= window.now - window.max_age_usec);
}

/* Same verdicts and values, event by event. */
static void
check_same(const struct event_batch *a, const struct event_batch *b)
{
	CHECK(a->n == b->n);
	for (size_t i = 0; i < a->n; i++) {
		const struct event_in *x = &a->ev[i], *y = &b->ev[i];
		CHECK(x->verdict == y->verdict);
		if (x->verdict != EVENT_OK)
			continue;
		CHECK(strcmp(x->id, y->id) == 0);
		CHECK(strcmp(x->account, y->account) == 0);
		CHECK(strcmp(x->service, y->service) == 0);
		CHECK((x->destination == NULL) == (y->destination == NULL));
		CHECK(x->destination == NULL || strcmp(x->destination, y->destination) == 0);
		CHECK(x->amount == y->amount && x->occurred == y->occurred);
		CHECK(x->quantity == y->quantity);
	}
}

static int
parse(const char *body, size_t len, bool ndjson, size_t max_events, struct event_batch *out)
{
	char err[256];
	int rc;

	memset(err, 0x55, sizeof err);
	out->ev = (void *)1; /* must be reset */
	out->n = 12345;
	rc = events_parse(body, len, ndjson, max_events, &window, out, err, sizeof err);
	CHECK(rc == EVENTS_PARSE_OK || rc == EVENTS_PARSE_BAD_JSON || rc == EVENTS_PARSE_TOO_MANY ||
	      rc == EVENTS_PARSE_EMPTY);
	if (rc != EVENTS_PARSE_OK) {
		CHECK(out->ev == NULL && out->n == 0);
		CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
		CHECK(utf8_ok(err));
		return rc;
	}
	CHECK(out->n >= 1 && out->n <= max_events && out->ev != NULL);
	for (size_t i = 0; i < out->n; i++)
		check_event(&out->ev[i]);
	return rc;
}

/* body is a JSON array that parsed: the same events as {"events": body} and
 * as NDJSON give the same verdicts. */
static void
check_forms(const char *body, size_t len, size_t max_events, const struct event_batch *ref)
{
	struct event_batch b;
	json_t *arr;
	char *wrapped, *nd = NULL;
	size_t ndlen = 0, cap = 0;
	int rc;

	wrapped = xmalloc(len + 12);
	memcpy(wrapped, "{\"events\": ", 11);
	memcpy(wrapped + 11, body, len);
	wrapped[len + 11] = '}';
	rc = parse(wrapped, len + 12, false, max_events, &b);
	CHECK(rc == EVENTS_PARSE_OK);
	check_same(ref, &b);
	events_free(&b);
	free(wrapped);

	arr = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	CHECK(json_is_array(arr));
	for (size_t i = 0; i < json_array_size(arr); i++) {
		char *line = json_dumps(json_array_get(arr, i), JSON_COMPACT | JSON_ENCODE_ANY);
		size_t n;
		CHECK(line != NULL && strchr(line, '\n') == NULL);
		n = strlen(line);
		while (ndlen + n + 1 > cap) {
			cap = cap ? cap * 2 : 256;
			nd = xreallocarray(nd, cap, 1);
		}
		memcpy(nd + ndlen, line, n);
		nd[ndlen + n] = '\n';
		ndlen += n + 1;
		free(line);
	}
	json_decref(arr);
	rc = parse(nd, ndlen, true, max_events, &b);
	CHECK(rc == EVENTS_PARSE_OK);
	check_same(ref, &b);
	events_free(&b);
	free(nd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const prefix[] = {"", "[", "{\"events\": [", ""};
	static const char *const suffix[] = {"", "]", "]}", ""};
	struct event_batch b;
	unsigned mode, m;
	size_t max_events, plen, slen, len;
	char *body;
	int rc;

	if (size == 0)
		return 0;
	mode = data[0] & 3u;
	m = (data[0] >> 2) & 7u;
	max_events = m == 7 ? 10000 : m;
	data++;
	size--;
	plen = strlen(prefix[mode]);
	slen = strlen(suffix[mode]);
	len = plen + size + slen;
	body = xmalloc(len ? len : 1);
	memcpy(body, prefix[mode], plen);
	if (size > 0)
		memcpy(body + plen, data, size);
	memcpy(body + plen + size, suffix[mode], slen);

	rc = parse(body, len, mode == MODE_NDJSON, max_events, &b);
	if (rc == EVENTS_PARSE_OK) {
		size_t i = 0;
		while (i < len &&
		       (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
			i++;
		if (mode != MODE_NDJSON && i < len && body[i] == '[')
			check_forms(body, len, max_events, &b);
		events_free(&b);
	}
	free(body);
	return 0;
}
