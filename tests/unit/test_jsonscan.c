/* test_jsonscan.c: the fast parsers' two tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "jsonscan.h"

static void
test_ws(void **state)
{
	(void)state;
	const char *t = " \t\r\n x";
	assert_ptr_equal(jsonscan_ws(t, t + strlen(t)), t + 5);
	assert_ptr_equal(jsonscan_ws(t, t + 2), t + 2); /* never past end */
	assert_ptr_equal(jsonscan_ws(t + 6, t + 6), t + 6);
	const char *v = "\vx"; /* not JSON whitespace */
	assert_ptr_equal(jsonscan_ws(v, v + 2), v);
}

static void
test_plain_string(void **state)
{
	(void)state;
	const char *t = "\"ext:a-1\" , ";
	const char *p = t, *s = NULL;
	size_t len = 0;
	assert_true(jsonscan_plain_string(&p, t + strlen(t), &s, &len));
	assert_int_equal(len, 7);
	assert_memory_equal(s, "ext:a-1", 7);
	assert_ptr_equal(p, t + 9);

	const char *e = "\"\"";
	p = e;
	assert_true(jsonscan_plain_string(&p, e + 2, &s, &len));
	assert_int_equal(len, 0);
	assert_ptr_equal(p, e + 2);
}

static void
test_not_plain(void **state)
{
	(void)state;
	const char *bad[] = {"x\"a\"", "\"a\\\"b\"", "\"a\tb\"", "\"caf\xc3\xa9\"",
	                     "\"open", "\"a\x7f\"",  ""};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		const char *p = bad[i], *s = NULL;
		size_t len = 99;
		assert_false(jsonscan_plain_string(&p, bad[i] + strlen(bad[i]), &s, &len));
		assert_ptr_equal(p, bad[i]); /* unchanged */
		assert_null(s);
		assert_int_equal(len, 99);
	}
	/* the closing quote beyond end does not count */
	const char *t = "\"ab\"";
	const char *p = t, *s = NULL;
	size_t len = 0;
	assert_false(jsonscan_plain_string(&p, t + 3, &s, &len));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ws),
	    cmocka_unit_test(test_plain_string),
	    cmocka_unit_test(test_not_plain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
