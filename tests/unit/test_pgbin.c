/* test_pgbin.c: PostgreSQL binary arrays (common/pgbin.c), byte for byte
 * against the wire format array_recv reads (issue 3). The integration tests
 * send every group commit in this format to a real server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pgbin.h"

static void
expect_bytes(const struct pgbin *a, const unsigned char *want, size_t n)
{
	assert_int_equal(a->len, n);
	assert_memory_equal(a->p, want, n);
}

static void
test_int8_with_negative_and_extremes(void **state)
{
	struct pgbin a;
	static const unsigned char want[] = {
	    0, 0, 0, 1, 0,    0,    0,    0,    0,    0,    0,    20,
	    0, 0, 0, 3, 0,    0,    0,    1,                            /* header */
	    0, 0, 0, 8, 0,    0,    0,    0,    0,    0,    0x01, 0x00, /* 256 */
	    0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* -1 */
	    0, 0, 0, 8, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* INT64_MAX */
	};

	(void)state;
	pgbin_begin(&a, PGBIN_INT8);
	pgbin_int8(&a, 256);
	pgbin_int8(&a, -1);
	pgbin_int8(&a, INT64_MAX);
	pgbin_end(&a);
	expect_bytes(&a, want, sizeof want);
	pgbin_free(&a);
}

static void
test_int4_bool(void **state)
{
	struct pgbin a;
	static const unsigned char w4[] = {0,    0,    0,    1,    0, 0, 0, 0, 0,    0, 0, 23,
	                                   0,    0,    0,    2,    0, 0, 0, 1, 0,    0, 0, 4,
	                                   0x00, 0x01, 0x02, 0x03, 0, 0, 0, 4, 0x80, 0, 0, 0};
	static const unsigned char wb[] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0,
	                                   2, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0,  0, 1, 0};

	(void)state;
	pgbin_begin(&a, PGBIN_INT4);
	pgbin_int4(&a, 0x010203);
	pgbin_int4(&a, INT32_MIN);
	pgbin_end(&a);
	expect_bytes(&a, w4, sizeof w4);
	pgbin_free(&a);
	pgbin_begin(&a, PGBIN_BOOL);
	pgbin_bool(&a, true);
	pgbin_bool(&a, false);
	pgbin_end(&a);
	expect_bytes(&a, wb, sizeof wb);
	pgbin_free(&a);
}

static void
test_text_with_null_sets_the_flag(void **state)
{
	struct pgbin a;
	static const unsigned char want[] = {
	    0, 0, 0, 1, 0, 0, 0, 1, 0,   0,   0,   25,   0,    0,    0,    3,
	    0, 0, 0, 1, 0, 0, 0, 3, 's', 'm', 's', 0xff, 0xff, 0xff, 0xff, /* NULL */
	    0, 0, 0, 0};                                                   /* "" */

	(void)state;
	pgbin_begin(&a, PGBIN_TEXT);
	pgbin_text(&a, "sms");
	pgbin_text(&a, NULL);
	pgbin_text(&a, "");
	pgbin_end(&a);
	expect_bytes(&a, want, sizeof want);
	pgbin_free(&a);
}

static void
test_uuid(void **state)
{
	struct pgbin a;
	static const unsigned char want[] = {
	    0,    0,    0,    1,    0,    0,    0,    0,    0,    0,    0x0b, 0x86, 0,    0,
	    0,    1,    0,    0,    0,    1,    0,    0,    0,    16,   0xb0, 0x00, 0x00, 0x00,
	    0x00, 0x00, 0x40, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xAB, 0xcd};

	(void)state;
	pgbin_begin(&a, PGBIN_UUID);
	assert_true(pgbin_uuid(&a, "b0000000-0000-4000-8000-00000000ABcd"));
	/* not canonical: nothing appended */
	assert_false(pgbin_uuid(&a, "b00000000000-4000-8000-00000000abcd0"));
	assert_false(pgbin_uuid(&a, "b0000000-0000-4000-8000-00000000abc"));
	assert_false(pgbin_uuid(&a, "b0000000-0000-4000-8000-00000000abcde"));
	assert_false(pgbin_uuid(&a, "g0000000-0000-4000-8000-00000000abcd"));
	assert_false(pgbin_uuid(&a, "b0000000-0000-4000-8000-00000000abc\xff"));
	pgbin_end(&a);
	expect_bytes(&a, want, sizeof want);
	pgbin_free(&a);
}

static void
test_empty_array_has_no_dimension(void **state)
{
	struct pgbin a;
	static const unsigned char want[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20};

	(void)state;
	pgbin_begin(&a, PGBIN_INT8);
	pgbin_end(&a);
	expect_bytes(&a, want, sizeof want);
	pgbin_free(&a);
}

static void
test_grows_past_the_first_buffer(void **state)
{
	struct pgbin a;

	(void)state;
	pgbin_begin(&a, PGBIN_INT8);
	for (int i = 0; i < 10000; i++)
		pgbin_int8(&a, i);
	pgbin_end(&a);
	assert_int_equal(a.len, 20 + 10000 * 12);
	assert_int_equal(a.n, 10000);
	/* the last element: length 8, value 9999 */
	assert_memory_equal(a.p + a.len - 12, "\0\0\0\x08\0\0\0\0\0\0\x27\x0f", 12);
	pgbin_free(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_int8_with_negative_and_extremes),
	    cmocka_unit_test(test_int4_bool),
	    cmocka_unit_test(test_text_with_null_sets_the_flag),
	    cmocka_unit_test(test_uuid),
	    cmocka_unit_test(test_empty_array_has_no_dimension),
	    cmocka_unit_test(test_grows_past_the_first_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
