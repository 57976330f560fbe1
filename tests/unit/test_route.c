/* test_route.c: route pattern matching (used by the HTTP route table). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "route.h"

static void
test_literal(void **state)
{
	struct route_capture c[ROUTE_MAX_CAPTURES];
	int n;

	(void)state;
	assert_true(route_match("/healthz", "/healthz", c, &n));
	assert_int_equal(n, 0);
	assert_false(route_match("/healthz", "/healthz/", c, &n));
	assert_false(route_match("/healthz", "/health", c, &n));
	assert_false(route_match("/healthz", "/healthzz", c, &n));
	assert_false(route_match("/v1/accounts", "/v1/accounts/x", c, &n));
	assert_false(route_match("/v1/accounts/x", "/v1/accounts", c, &n));
}

static void
test_captures(void **state)
{
	struct route_capture c[ROUTE_MAX_CAPTURES];
	int n;

	(void)state;
	assert_true(route_match("/v1/accounts/{}/history", "/v1/accounts/ext:C-1/history", c, &n));
	assert_int_equal(n, 1);
	assert_int_equal(c[0].len, 7);
	assert_memory_equal(c[0].start, "ext:C-1/", 7);
	assert_true(route_match("/v1/{}/{}", "/v1/a/bb", c, &n));
	assert_int_equal(n, 2);
	assert_int_equal(c[1].len, 2);
	assert_false(route_match("/v1/accounts/{}", "/v1/accounts/", c, &n));
	assert_false(route_match("/v1/accounts/{}", "/v1/accounts", c, &n));
}

static void
test_path_tricks(void **state)
{
	struct route_capture c[ROUTE_MAX_CAPTURES];
	int n;

	(void)state;
	assert_false(route_match("/v1/accounts/{}", "/v1/accounts/..", c, &n));
	assert_false(route_match("/v1/accounts/{}", "/v1/accounts/.", c, &n));
	assert_false(route_match("/v1/accounts", "//v1/accounts", c, &n));
	assert_false(route_match("/v1/accounts", "/v1//accounts", c, &n));
	assert_false(route_match("/healthz", "/v1/../healthz", c, &n));
	assert_false(route_match("/healthz", "healthz", c, &n));
	assert_false(route_match("/healthz", "", c, &n));
}

static void
test_edges(void **state)
{
	struct route_capture c[ROUTE_MAX_CAPTURES];
	int n = 7;

	(void)state;
	/* dots are special only as a whole segment */
	assert_true(route_match("/v1/accounts/{}", "/v1/accounts/...", c, &n));
	assert_int_equal(n, 1);
	assert_int_equal(c[0].len, 3);
	assert_true(route_match("/v1/accounts/{}", "/v1/accounts/.x", c, &n));
	assert_true(route_match("/v1/accounts/{}", "/v1/accounts/..x", c, &n));
	assert_int_equal(c[0].len, 3);
	/* a failed match reports no captures, also after a partial one */
	n = 7;
	assert_false(route_match("/v1/{}/history", "/v1/abc/histor", c, &n));
	assert_int_equal(n, 0);
	/* a capture never spans segments */
	assert_false(route_match("/v1/jobs/{}", "/v1/jobs/a/b", c, &n));
	/* the literal must match case and all */
	assert_false(route_match("/v1/jobs/{}", "/V1/jobs/a", c, &n));
	assert_false(route_match("/v1/jobs", "/v1/jobs?x", c, &n));
	/* the root path is an empty segment: it never matches (no route is "/") */
	assert_false(route_match("/", "/", c, &n));
	assert_false(route_match("/", "//", c, &n));
}

static void
test_capture_limit(void **state)
{
	struct route_capture c[ROUTE_MAX_CAPTURES];
	int n;

	(void)state;
	/* ROUTE_MAX_CAPTURES (4) fit; a fifth is refused, not written past c[] */
	assert_true(route_match("/{}/{}/{}/{}", "/a/b/c/d", c, &n));
	assert_int_equal(n, 4);
	assert_memory_equal(c[3].start, "d", 1);
	assert_false(route_match("/{}/{}/{}/{}/{}", "/a/b/c/d/e", c, &n));
	assert_int_equal(n, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_literal),       cmocka_unit_test(test_captures),
	    cmocka_unit_test(test_path_tricks),   cmocka_unit_test(test_edges),
	    cmocka_unit_test(test_capture_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
