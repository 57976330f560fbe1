/* test_events.c: event batch parsing and validation (R3.1, R3.2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "events.h"

#define NOW INT64_C(1768471200000000) /* 2026-01-15T10:00:00Z */
static const struct events_window W = {NOW, INT64_C(300) * 1000000, INT64_C(35) * 86400 * 1000000};

#define ID1 "11111111-1111-4111-8111-111111111111"
#define OK_EVENT(id, amount)                                                                       \
	"{\"id\":\"" id "\",\"account\":\"ext:C-1\",\"amount\":" amount                            \
	",\"occurred_at\":\"2026-01-15T09:00:00Z\",\"service\":\"sms\"}"

static struct event_batch
parse_ok(const char *body, bool nd)
{
	struct event_batch b;
	char err[200];

	assert_int_equal(events_parse(body, strlen(body), nd, 100, &W, &b, err, sizeof err), 0);
	return b;
}

static void
test_shapes(void **state)
{
	struct event_batch b;
	char err[200];

	(void)state;
	b = parse_ok("[" OK_EVENT(ID1, "\"0.0045\"") "]", false);
	assert_int_equal(b.n, 1);
	assert_int_equal(b.ev[0].verdict, EVENT_OK);
	assert_int_equal(b.ev[0].amount, 4500);
	assert_int_equal(b.ev[0].quantity, 1);
	assert_int_equal(b.ev[0].occurred, NOW - INT64_C(3600000000));
	assert_null(b.ev[0].destination);
	events_free(&b);
	b = parse_ok("{\"events\":[" OK_EVENT(ID1, "\"1\"") "," OK_EVENT(ID1, "\"2\"") "]}", false);
	assert_int_equal(b.n, 2);
	events_free(&b);
	b = parse_ok(OK_EVENT(ID1, "\"1\"") "\n\n{not json\n" OK_EVENT(ID1, "\"2\"") "\n", true);
	assert_int_equal(b.n, 3);
	assert_int_equal(b.ev[0].verdict, EVENT_OK);
	assert_int_equal(b.ev[1].verdict, EVENT_INVALID_FIELD);
	assert_int_equal(b.ev[2].verdict, EVENT_OK);
	events_free(&b);
	assert_int_equal(events_parse("{", 1, false, 10, &W, &b, err, sizeof err),
	                 EVENTS_PARSE_BAD_JSON);
	assert_int_equal(events_parse("{\"x\":[]}", 8, false, 10, &W, &b, err, sizeof err),
	                 EVENTS_PARSE_BAD_JSON);
	assert_int_equal(events_parse("[]", 2, false, 10, &W, &b, err, sizeof err),
	                 EVENTS_PARSE_EMPTY);
	assert_int_equal(events_parse("[1,2,3]", 7, false, 2, &W, &b, err, sizeof err),
	                 EVENTS_PARSE_TOO_MANY);
}

static void
expect_verdict(const char *event, enum event_verdict v)
{
	char body[1024];
	struct event_batch b;

	snprintf(body, sizeof body, "[%s]", event);
	b = parse_ok(body, false);
	assert_int_equal(b.n, 1);
	if (b.ev[0].verdict != v)
		fail_msg("%s: verdict %d, want %d (%s)", event, b.ev[0].verdict, v, b.ev[0].why);
	events_free(&b);
}

static void
test_bad_events(void **state)
{
	(void)state;
	expect_verdict(OK_EVENT(ID1, "0.5"), EVENT_INVALID_AMOUNT);           /* JSON number */
	expect_verdict(OK_EVENT(ID1, "1"), EVENT_INVALID_AMOUNT);             /* JSON integer */
	expect_verdict(OK_EVENT(ID1, "\"0.0000001\""), EVENT_INVALID_AMOUNT); /* 7 decimals */
	expect_verdict(OK_EVENT(ID1, "\"1e3\""), EVENT_INVALID_AMOUNT);
	expect_verdict(OK_EVENT(ID1, "\"0\""), EVENT_INVALID_AMOUNT);
	expect_verdict(OK_EVENT(ID1, "\"-1\""), EVENT_INVALID_AMOUNT);
	expect_verdict(OK_EVENT(ID1, "\"9223372036854.775808\""), EVENT_INVALID_AMOUNT);
	expect_verdict(OK_EVENT("not-a-uuid", "\"1\""), EVENT_INVALID_FIELD);
	expect_verdict("{\"id\":\"" ID1 "\",\"account\":\"ext:C-1\",\"amount\":\"1\","
	               "\"occurred_at\":\"2026-01-15 09:00\",\"service\":\"sms\"}",
	               EVENT_INVALID_TIME);
	/* 5 minutes of skew allowed, not more */
	expect_verdict("{\"id\":\"" ID1 "\",\"account\":\"ext:C-1\",\"amount\":\"1\","
	               "\"occurred_at\":\"2026-01-15T10:05:00Z\",\"service\":\"sms\"}",
	               EVENT_OK);
	expect_verdict("{\"id\":\"" ID1 "\",\"account\":\"ext:C-1\",\"amount\":\"1\","
	               "\"occurred_at\":\"2026-01-15T10:05:01Z\",\"service\":\"sms\"}",
	               EVENT_INVALID_TIME);
	expect_verdict("{\"id\":\"" ID1 "\",\"account\":\"ext:C-1\",\"amount\":\"1\","
	               "\"occurred_at\":\"2025-12-10T09:59:59Z\",\"service\":\"sms\"}",
	               EVENT_INVALID_TIME);
	expect_verdict("{\"id\":\"" ID1 "\",\"account\":\"ext:C-1\",\"amount\":\"1\","
	               "\"occurred_at\":\"2026-01-15T09:00:00Z\"}",
	               EVENT_INVALID_FIELD);
	expect_verdict("{\"id\":\"" ID1 "\",\"account\":\"ext:C-1\",\"amount\":\"1\","
	               "\"occurred_at\":\"2026-01-15T09:00:00Z\",\"service\":\"sms\",\"x\":1}",
	               EVENT_INVALID_FIELD);
	expect_verdict(
	    "{\"id\":\"" ID1 "\",\"account\":\"ext:C-1\",\"amount\":\"1\","
	    "\"occurred_at\":\"2026-01-15T09:00:00Z\",\"service\":\"sms\",\"quantity\":0}",
	    EVENT_INVALID_FIELD);
	expect_verdict("42", EVENT_INVALID_FIELD);
}

static void
test_uuid_canon(void **state)
{
	char out[37];

	(void)state;
	assert_true(events_uuid_canon("ABCDEF01-2345-4789-8ABC-DEF012345678", out));
	assert_string_equal(out, "abcdef01-2345-4789-8abc-def012345678");
	assert_false(events_uuid_canon("abcdef01-2345-4789-8abc-def01234567", out));
	assert_false(events_uuid_canon("abcdef01x2345-4789-8abc-def012345678", out));
	assert_false(events_uuid_canon("ghcdef01-2345-4789-8abc-def012345678", out));
}

/* The boundaries of each field, on both parsers (the fast path and jansson
 * must agree): amount up to 1,000,000 (EVENTS_MAX_AMOUNT), quantity up to
 * INT32_MAX, service and destination 1..64 characters, occurred_at from
 * exactly max_event_age ago to exactly max_future_skew ahead. */
#define EV(extra, occ)                                                                             \
	"{\"id\":\"" ID1 "\",\"account\":\"ext:C-1\",\"occurred_at\":\"" occ "\"," extra "}"
#define S64 "ssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss"

static void
expect_both(const char *event, enum event_verdict v, int64_t amount, int32_t quantity)
{
	char body[1024], err[200];
	struct event_batch b;

	snprintf(body, sizeof body, "[%s]", event);
	for (int jansson = 0; jansson < 2; jansson++) {
		int rc = jansson
		             ? events_parse_jansson(body, strlen(body), false, 10, &W, &b, err,
		                                    sizeof err)
		             : events_parse(body, strlen(body), false, 10, &W, &b, err, sizeof err);
		assert_int_equal(rc, EVENTS_PARSE_OK);
		assert_int_equal(b.n, 1);
		if (b.ev[0].verdict != v)
			fail_msg("%s (%s): verdict %d, want %d (%s)", event,
			         jansson ? "jansson" : "fast", b.ev[0].verdict, v, b.ev[0].why);
		if (v == EVENT_OK) {
			assert_int_equal(b.ev[0].amount, amount);
			assert_int_equal(b.ev[0].quantity, quantity);
		} else {
			assert_true(b.ev[0].why[0] != '\0'); /* a reason for the sender */
		}
		events_free(&b);
	}
}

static void
test_field_boundaries(void **state)
{
	(void)state;
	/* amount: 1,000,000 is the largest; one micro-unit more is refused */
	expect_both(EV("\"amount\":\"1000000\",\"service\":\"sms\"", "2026-01-15T09:00:00Z"),
	            EVENT_OK, INT64_C(1000000000000), 1);
	expect_both(EV("\"amount\":\"1000000.000001\",\"service\":\"sms\"", "2026-01-15T09:00:00Z"),
	            EVENT_INVALID_AMOUNT, 0, 0);
	expect_both(EV("\"amount\":\"0.000001\",\"service\":\"sms\"", "2026-01-15T09:00:00Z"),
	            EVENT_OK, 1, 1);
	expect_both(EV("\"amount\":\"-0\",\"service\":\"sms\"", "2026-01-15T09:00:00Z"),
	            EVENT_INVALID_AMOUNT, 0, 0);
	expect_both(EV("\"amount\":null,\"service\":\"sms\"", "2026-01-15T09:00:00Z"),
	            EVENT_INVALID_AMOUNT, 0, 0);
	/* quantity */
	expect_both(EV("\"amount\":\"1\",\"service\":\"sms\",\"quantity\":2147483647",
	               "2026-01-15T09:00:00Z"),
	            EVENT_OK, 1000000, INT32_MAX);
	expect_both(EV("\"amount\":\"1\",\"service\":\"sms\",\"quantity\":2147483648",
	               "2026-01-15T09:00:00Z"),
	            EVENT_INVALID_FIELD, 0, 0);
	expect_both(
	    EV("\"amount\":\"1\",\"service\":\"sms\",\"quantity\":\"2\"", "2026-01-15T09:00:00Z"),
	    EVENT_INVALID_FIELD, 0, 0);
	expect_both(
	    EV("\"amount\":\"1\",\"service\":\"sms\",\"quantity\":1.0", "2026-01-15T09:00:00Z"),
	    EVENT_INVALID_FIELD, 0, 0);
	/* service and destination: 1..64 */
	expect_both(EV("\"amount\":\"1\",\"service\":\"" S64 "\"", "2026-01-15T09:00:00Z"),
	            EVENT_OK, 1000000, 1);
	expect_both(EV("\"amount\":\"1\",\"service\":\"" S64 "s\"", "2026-01-15T09:00:00Z"),
	            EVENT_INVALID_FIELD, 0, 0);
	expect_both(EV("\"amount\":\"1\",\"service\":\"\"", "2026-01-15T09:00:00Z"),
	            EVENT_INVALID_FIELD, 0, 0);
	expect_both(
	    EV("\"amount\":\"1\",\"service\":\"sms\",\"destination\":null", "2026-01-15T09:00:00Z"),
	    EVENT_OK, 1000000, 1);
	expect_both(
	    EV("\"amount\":\"1\",\"service\":\"sms\",\"destination\":\"\"", "2026-01-15T09:00:00Z"),
	    EVENT_INVALID_FIELD, 0, 0);
	expect_both(EV("\"amount\":\"1\",\"service\":\"sms\",\"destination\":\"D E\"",
	               "2026-01-15T09:00:00Z"),
	            EVENT_INVALID_FIELD, 0, 0);
	/* time window: exactly 35 days old and exactly 300 s ahead are in */
	expect_both(EV("\"amount\":\"1\",\"service\":\"sms\"", "2025-12-11T10:00:00Z"), EVENT_OK,
	            1000000, 1);
	expect_both(EV("\"amount\":\"1\",\"service\":\"sms\"", "2025-12-11T09:59:59.999999Z"),
	            EVENT_INVALID_TIME, 0, 0);
	expect_both(EV("\"amount\":\"1\",\"service\":\"sms\"", "2026-01-15T11:05:00+01:00"),
	            EVENT_OK, 1000000, 1);
	expect_both(EV("\"amount\":\"1\",\"service\":\"sms\"", "2026-01-15T11:05:00.000001+01:00"),
	            EVENT_INVALID_TIME, 0, 0);
	/* the account: a string */
	expect_both("{\"id\":\"" ID1 "\",\"account\":7,\"amount\":\"1\","
	            "\"occurred_at\":\"2026-01-15T09:00:00Z\",\"service\":\"sms\"}",
	            EVENT_INVALID_FIELD, 0, 0);
}

/* R3.3: too_old marks an event whose ONLY fault is being older than
 * max_event_age (the daemon then looks its id up), on both parsers and in
 * NDJSON; any other fault, alone or with the age, leaves it unset. */
static void
expect_too_old(const char *event, enum event_verdict v, bool too_old)
{
	char body[1024], err[200];
	struct event_batch b;

	snprintf(body, sizeof body, "[%s]", event);
	for (int path = 0; path < 3; path++) {
		const char *text = path == 2 ? event : body;
		int rc = path == 0
		             ? events_parse(text, strlen(text), false, 10, &W, &b, err, sizeof err)
		         : path == 1
		             ? events_parse_jansson(text, strlen(text), false, 10, &W, &b, err,
		                                    sizeof err)
		             : events_parse(text, strlen(text), true, 10, &W, &b, err, sizeof err);
		assert_int_equal(rc, EVENTS_PARSE_OK);
		assert_int_equal(b.n, 1);
		if (b.ev[0].verdict != v || b.ev[0].too_old != too_old)
			fail_msg("%s (path %d): verdict %d too_old %d, want %d %d (%s)", event,
			         path, b.ev[0].verdict, b.ev[0].too_old, v, too_old, b.ev[0].why);
		if (too_old) {
			assert_string_equal(b.ev[0].why, "occurred_at: older than max_event_age");
			/* every field parsed: the daemon compares them with the stored event */
			assert_string_equal(b.ev[0].id, ID1);
			assert_non_null(b.ev[0].account);
			assert_non_null(b.ev[0].service);
			assert_true(b.ev[0].amount > 0);
		}
		events_free(&b);
	}
}

#define OLD "2025-12-11T09:59:59.999999Z" /* one microsecond too old */

static void
test_too_old(void **state)
{
	(void)state;
	expect_too_old(EV("\"amount\":\"1\",\"service\":\"sms\"", OLD), EVENT_INVALID_TIME, true);
	expect_too_old(EV("\"amount\":\"1.5\",\"service\":\"sms\",\"destination\":\"DE\","
	                  "\"quantity\":3",
	                  "2020-01-01T00:00:00Z"),
	               EVENT_INVALID_TIME, true);
	/* in the window, or too far ahead, or not a time: not too old */
	expect_too_old(EV("\"amount\":\"1\",\"service\":\"sms\"", "2025-12-11T10:00:00Z"), EVENT_OK,
	               false);
	expect_too_old(EV("\"amount\":\"1\",\"service\":\"sms\"", "2026-01-15T10:05:01Z"),
	               EVENT_INVALID_TIME, false);
	expect_too_old(EV("\"amount\":\"1\",\"service\":\"sms\"", "2025-12-11 09:00"),
	               EVENT_INVALID_TIME, false);
	/* too old AND another fault: the other fault, not too_old */
	expect_too_old(EV("\"amount\":\"0\",\"service\":\"sms\"", OLD), EVENT_INVALID_AMOUNT,
	               false);
	expect_too_old(EV("\"amount\":\"1\",\"service\":\"s s\"", OLD), EVENT_INVALID_FIELD, false);
	expect_too_old(EV("\"amount\":\"1\",\"service\":\"sms\",\"quantity\":0", OLD),
	               EVENT_INVALID_FIELD, false);
	expect_too_old(EV("\"amount\":\"1\",\"service\":\"sms\",\"colour\":\"blue\"", OLD),
	               EVENT_INVALID_FIELD, false);
	expect_too_old(EV("\"amount\":\"1\"", OLD), EVENT_INVALID_FIELD, false);
	expect_too_old("{\"id\":\"" ID1 "\",\"account\":\"ext:C-1\",\"occurred_at\":\"" OLD
	               "\",\"service\":\"sms\"}",
	               EVENT_INVALID_AMOUNT, false);
	expect_too_old(
	    "{\"id\":\"x\",\"account\":\"ext:C-1\",\"amount\":\"1\",\"occurred_at\":\"" OLD
	    "\",\"service\":\"sms\"}",
	    EVENT_INVALID_FIELD, false);
	expect_too_old("{\"id\":\"" ID1 "\",\"amount\":\"1\",\"occurred_at\":\"" OLD
	               "\",\"service\":\"sms\"}",
	               EVENT_INVALID_FIELD, false);
}

static void
test_ndjson_limits(void **state)
{
	struct event_batch b;
	char err[200];
	const char *two = OK_EVENT(ID1, "\"1\"") "\n" OK_EVENT(ID1, "\"2\"") "\n";

	(void)state;
	assert_int_equal(events_parse(two, strlen(two), true, 1, &W, &b, err, sizeof err),
	                 EVENTS_PARSE_TOO_MANY);
	assert_int_equal(events_parse(two, strlen(two), true, 2, &W, &b, err, sizeof err),
	                 EVENTS_PARSE_OK);
	assert_int_equal(b.n, 2);
	assert_int_equal(b.ev[1].amount, 2000000);
	events_free(&b);
	assert_int_equal(events_parse("\n \r\n", 4, true, 2, &W, &b, err, sizeof err),
	                 EVENTS_PARSE_EMPTY);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_shapes),        cmocka_unit_test(test_bad_events),
	    cmocka_unit_test(test_uuid_canon),    cmocka_unit_test(test_field_boundaries),
	    cmocka_unit_test(test_ndjson_limits), cmocka_unit_test(test_too_old),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
