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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_literal),
	    cmocka_unit_test(test_captures),
	    cmocka_unit_test(test_path_tricks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
