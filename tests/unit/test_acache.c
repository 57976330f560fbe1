/* test_acache.c: the account cache never steps back to an older row version
 * (daemon/acache.c, 0023). Rows are built with libpq's result constructors,
 * as the daemon receives them from creditd_ingest_batch and account_view. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "acache.h"

#define ID "6f1c1f3e-0000-4000-8000-000000000001"

static const char *const cols[] = {
    "id",          "external_ref",  "currency", "status",          "monthly_limit",
    "total_limit", "monthly_usage", "exposure", "usage_month_day", "terminated_us",
    "version"};
#define NCOLS ((int)(sizeof cols / sizeof cols[0]))

/* One account row: status, exposure and version as given. */
static PGresult *
row(const char *status, const char *exposure, const char *version)
{
	PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	PGresAttDesc att[NCOLS];
	const char *vals[NCOLS] = {ID,  "b1",     "EUR",   status, "100000000", NULL,
	                           "0", exposure, "20789", NULL,   version};

	assert_non_null(res);
	memset(att, 0, sizeof att);
	for (int i = 0; i < NCOLS; i++) {
		att[i].name = (char *)cols[i];
		att[i].format = 0;
	}
	assert_int_equal(PQsetResultAttrs(res, NCOLS, att), 1);
	for (int i = 0; i < NCOLS; i++)
		assert_int_equal(
		    PQsetvalue(res, 0, i, (char *)vals[i], vals[i] ? (int)strlen(vals[i]) : -1), 1);
	return res;
}

static void
apply(struct acache *c, const char *status, const char *exposure, const char *version)
{
	PGresult *res = row(status, exposure, version);

	acache_update(c, res, 0);
	PQclear(res);
}

static int
setup(void **state)
{
	*state = acache_new();
	return 0;
}

static int
teardown(void **state)
{
	acache_free(*state);
	return 0;
}

/* The example: the batch that suspended (v2) is handled before the
 * payment that had lifted the suspension (v1). */
static void
test_older_version_ignored(void **state)
{
	struct acache *c = *state;
	const struct acache_entry *e;

	apply(c, "suspended", "500", "2");
	apply(c, "active", "100", "1");
	e = acache_find(c, ID);
	assert_non_null(e);
	assert_int_equal(e->status, ACACHE_SUSPENDED);
	assert_int_equal(e->exposure, 500);
	assert_int_equal(e->version, 2);
	assert_int_equal(acache_stale_rows(c), 1);
	assert_ptr_equal(acache_find(c, "ext:b1"), e);
}

static void
test_newer_and_equal_taken(void **state)
{
	struct acache *c = *state;
	const struct acache_entry *e;

	apply(c, "active", "100", "1");
	apply(c, "suspended", "500", "7");
	e = acache_find(c, ID);
	assert_int_equal(e->status, ACACHE_SUSPENDED);
	assert_int_equal(e->version, 7);
	/* the same version again (a GET of the state just taken) */
	apply(c, "suspended", "500", "7");
	assert_int_equal(e->version, 7);
	assert_int_equal(acache_stale_rows(c), 0);
	apply(c, "active", "0", "8");
	assert_int_equal(e->status, ACACHE_ACTIVE);
	assert_int_equal(e->exposure, 0);
	assert_int_equal(acache_count(c), 1);
}

/* Versions are 64-bit: no wrap at 2^31 or 2^32. */
static void
test_large_versions(void **state)
{
	struct acache *c = *state;
	const struct acache_entry *e;

	apply(c, "active", "1", "4294967297");
	apply(c, "suspended", "2", "4294967296");
	e = acache_find(c, ID);
	assert_int_equal(e->status, ACACHE_ACTIVE);
	assert_true(e->version == INT64_C(4294967297));
}

/* acache_update_rows (the ingest batch's rows after its letters row). */
static void
test_update_rows_skips_first(void **state)
{
	struct acache *c = *state;
	PGresult *res = row("active", "9", "3");
	const struct acache_entry *e;

	acache_update_rows(c, res, 1); /* nothing from row 1 on */
	assert_null(acache_find(c, ID));
	acache_update_rows(c, res, 0);
	e = acache_find(c, ID);
	assert_non_null(e);
	assert_int_equal(e->version, 3);
	PQclear(res);
	apply(c, "suspended", "9", "2");
	assert_int_equal(e->status, ACACHE_ACTIVE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_older_version_ignored, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer_and_equal_taken, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_large_versions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_update_rows_skips_first, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
