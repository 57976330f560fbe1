/* test_events_fast.c: events_parse's fast path gives exactly what the jansson
 * path gives (events_parse_jansson), for usual and unusual bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"

#define NOW INT64_C(1768471200000000) /* 2026-01-15T10:00:00Z */
static const struct events_window W = {NOW, INT64_C(300) * 1000000, INT64_C(35) * 86400 * 1000000};

#define ID1 "11111111-1111-4111-8111-111111111111"
#define ID2 "22222222-2222-4222-8222-222222222222"

static bool
str_eq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Both paths on body: same return code, same events field by field. */
static void
same(const char *body, size_t max)
{
	struct event_batch a, b;
	char ea[256] = "", eb[256] = "";
	int ra = events_parse(body, strlen(body), false, max, &W, &a, ea, sizeof ea);
	int rb = events_parse_jansson(body, strlen(body), false, max, &W, &b, eb, sizeof eb);

	if (ra != rb)
		fail_msg("%s: fast %d, jansson %d", body, ra, rb);
	if (ra != EVENTS_PARSE_OK) {
		assert_string_equal(ea, eb);
		return;
	}
	assert_int_equal(a.n, b.n);
	for (size_t i = 0; i < a.n; i++) {
		const struct event_in *x = &a.ev[i], *y = &b.ev[i];
		if (x->verdict != y->verdict || strcmp(x->why, y->why) != 0)
			fail_msg("%s: event %zu: fast %d '%s', jansson %d '%s'", body, i,
			         x->verdict, x->why, y->verdict, y->why);
		assert_string_equal(x->id, y->id);
		assert_true(str_eq(x->id_raw, y->id_raw));
		assert_true(str_eq(x->account, y->account));
		assert_true(str_eq(x->service, y->service));
		assert_true(str_eq(x->destination, y->destination));
		assert_true(x->amount == y->amount);
		assert_true(x->occurred == y->occurred);
		assert_int_equal(x->quantity, y->quantity);
	}
	events_free(&a);
	events_free(&b);
}

/* The fast path takes body (and gives what jansson gives). */
static void
fast(const char *body)
{
	struct event_batch a;

	if (events_parse_fast(body, strlen(body), 100, &W, &a) != EVENTS_PARSE_OK)
		fail_msg("fast path not taken: %s", body);
	events_free(&a);
	same(body, 100);
}

/* An event from its fields (already JSON text), e.g. "\"id\":\"...\"". */
static void
same_event(const char *fields)
{
	char body[2048];

	snprintf(body, sizeof body, "[{%s}]", fields);
	same(body, 100);
	snprintf(body, sizeof body, "{\"events\": [ {%s} ,\n{%s}\t] }\n", fields, fields);
	same(body, 100);
}

#define F_ID "\"id\":\"" ID1 "\""
#define F_ACC "\"account\":\"ext:C-1\""
#define F_AMT "\"amount\":\"0.0045\""
#define F_AT "\"occurred_at\":\"2026-01-15T09:00:00Z\""
#define F_SVC "\"service\":\"sms\""
#define F_DST "\"destination\":\"+49301\""
#define F_QTY "\"quantity\":3"

static void
test_valid(void **state)
{
	(void)state;
	fast("[{" F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC "," F_DST "," F_QTY "}]");
	fast(" {\"events\" :\n[ {" F_QTY "," F_DST "," F_SVC "," F_AT "," F_AMT "," F_ACC "," F_ID
	     "} , {" F_ID ",\"account\":\"ext:x\",\"amount\":\"0\",\"occurred_at\":\"x\","
	     "\"service\":\"a b\",\"destination\":null,\"quantity\":0}]}\r\n");
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC);
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC "," F_DST "," F_QTY);
	same_event(F_QTY "," F_DST "," F_SVC "," F_AT "," F_AMT "," F_ACC "," F_ID);
	same_event(F_ID ", " F_ACC " ,\n" F_AMT "\r," F_AT "\t," F_SVC ",\"destination\" : null");
	same_event("\"id\":\"AAAAAAAA-1111-4111-8111-111111111111\"," F_ACC "," F_AMT "," F_AT
	           "," F_SVC);
	same_event(F_ID ",\"account\":\"b0000000-0000-4000-8000-000000000001\"," F_AMT "," F_AT
	                "," F_SVC);
	same_event(F_ID "," F_ACC ",\"amount\":\"1000000\"," F_AT "," F_SVC);
	same_event(F_ID "," F_ACC "," F_AMT
	                ",\"occurred_at\":\"2026-01-15T10:04:59.123456+00:00\"," F_SVC);
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC ",\"quantity\":2147483647");
}

static void
test_invalid_values(void **state)
{
	(void)state;
	/* each field wrong, alone and together (which message wins) */
	same_event("\"id\":\"x\"," F_ACC "," F_AMT "," F_AT "," F_SVC);
	same_event("\"id\":\"" ID1 "0\"," F_ACC "," F_AMT "," F_AT "," F_SVC);
	same_event(F_ID ",\"account\":\"\"," F_AMT "," F_AT "," F_SVC);
	same_event(
	    F_ID ",\"account\":\"ext:"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"," F_AMT
	         "," F_AT "," F_SVC);
	same_event(F_ID "," F_ACC ",\"amount\":\"0\"," F_AT "," F_SVC);
	same_event(F_ID "," F_ACC ",\"amount\":\"-1\"," F_AT "," F_SVC);
	same_event(F_ID "," F_ACC ",\"amount\":\"0.0000001\"," F_AT "," F_SVC);
	same_event(F_ID "," F_ACC ",\"amount\":\"1e3\"," F_AT "," F_SVC);
	same_event(F_ID "," F_ACC ",\"amount\":\"\"," F_AT "," F_SVC);
	same_event(F_ID "," F_ACC ",\"amount\":\"1000000.000001\"," F_AT "," F_SVC);
	same_event(F_ID "," F_ACC ",\"amount\":\"9223372036854.775808\"," F_AT "," F_SVC);
	same_event(F_ID "," F_ACC ",\"amount\":0.5," F_AT "," F_SVC);
	same_event(F_ID "," F_ACC ",\"amount\":1," F_AT "," F_SVC);
	same_event(F_ID "," F_ACC "," F_AMT ",\"occurred_at\":\"2026-01-15 09:00\"," F_SVC);
	same_event(F_ID "," F_ACC "," F_AMT ",\"occurred_at\":\"2026-01-15T10:05:01Z\"," F_SVC);
	same_event(F_ID "," F_ACC "," F_AMT ",\"occurred_at\":\"2025-12-10T09:59:59Z\"," F_SVC);
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT ",\"service\":\"a b\"");
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT ",\"service\":\"\"");
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT ",\"service\":\"a,b\"");
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT ",\"service\":\"NULL\"");
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC ",\"destination\":\"{x}\"");
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC ",\"destination\":1");
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC ",\"quantity\":0");
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC ",\"quantity\":01");
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC ",\"quantity\":00");
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC ",\"quantity\":-1");
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC ",\"quantity\":2147483648");
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC ",\"quantity\":99999999999");
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC ",\"quantity\":1.0");
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC ",\"quantity\":\"1\"");
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC ",\"quantity\":1e2");
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC ",\"x\":1");
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC ",\"x\":\"y\"");
	/* missing fields */
	same_event(F_ACC "," F_AMT "," F_AT "," F_SVC);
	same_event(F_ID "," F_AMT "," F_AT "," F_SVC);
	same_event(F_ID "," F_ACC "," F_AT "," F_SVC);
	same_event(F_ID "," F_ACC "," F_AMT "," F_SVC);
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT);
	/* several wrong at once, in different orders */
	same_event("\"service\":\"a b\",\"amount\":\"x\",\"id\":\"" ID1 "\",\"occurred_at\":\"y\"");
	same_event("\"amount\":\"x\",\"service\":\"a b\",\"occurred_at\":\"y\",\"id\":\"z\"");
	same_event("\"quantity\":0,\"x\":1,\"amount\":\"0\"," F_ID);
	/* non-string id, escapes, non-ASCII, long values */
	same_event("\"id\":1," F_ACC "," F_AMT "," F_AT "," F_SVC);
	same_event("\"id\":null," F_ACC "," F_AMT "," F_AT "," F_SVC);
	same_event(F_ID ",\"account\":\"ext:C\\u002d1\"," F_AMT "," F_AT "," F_SVC);
	same_event(F_ID ",\"account\":\"ext:C\\\"1\"," F_AMT "," F_AT "," F_SVC);
	same_event(F_ID ",\"account\":\"ext:\xc3\xa9\"," F_AMT "," F_AT "," F_SVC);
	same_event(F_ID "," F_ACC "," F_AMT "," F_AT ",\"service\":\"\xc3\xa9\"");
}

static void
test_shapes(void **state)
{
	char big[8192];
	size_t off = 0;

	(void)state;
	same("[]", 10);
	same("{\"events\":[]}", 10);
	same("[1,2,3]", 2);
	same("[1]", 10);
	same("[\"x\"]", 10);
	same("[{}]", 10);
	same("{", 10);
	same("", 10);
	same("  ", 10);
	same("{\"x\":[]}", 10);
	same("{\"events\":[{" F_ID "}], \"x\":1}", 10);
	same("[{" F_ID "," F_ID "}]", 10);                                 /* duplicate key */
	same("[{" F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC "}] x", 10); /* trailing */
	same("[{" F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC "},]", 10);
	same("[{" F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC ",}]", 10);
	same("[{" F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC "}", 10);
	same("[{" F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC "}, 42]", 10);
	same("[{" F_ID "," F_ACC "," F_AMT "," F_AT "," F_SVC "}, {" F_ID "," F_AMT "}]", 10);
	same("[{\"id\":\"" ID2 "\"," F_ACC "," F_AMT "," F_AT "," F_SVC "}, {" F_ID "," F_ACC
	     "," F_AMT "," F_AT "," F_SVC "}]",
	     2);
	same("[{\"id\":\"" ID2 "\"," F_ACC "," F_AMT "," F_AT "," F_SVC "}, {" F_ID "," F_ACC
	     "," F_AMT "," F_AT "," F_SVC "}]",
	     1);
	/* many events */
	big[off++] = '[';
	for (int i = 0; i < 40; i++)
		off += (size_t)snprintf(big + off, sizeof big - off,
		                        "%s{\"id\":\"%08d-1111-4111-8111-111111111111\"," F_ACC
		                        ",\"amount\":\"0.%06d\"," F_AT "," F_SVC "}",
		                        i ? "," : "", i, i * 7 + 1);
	big[off++] = ']';
	big[off] = '\0';
	same(big, 100);
	same(big, 40);
	same(big, 39);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_invalid_values),
	    cmocka_unit_test(test_shapes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
