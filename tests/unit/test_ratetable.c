/* test_ratetable.c: reference series, statutory rules, the RATES.md table, and
 * the agreement of ratetable_load_defaults() with sql/0004_statutory_rates.sql. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "build_config.h"
#include "civil.h"
#include "ratetable.h"
#include "xmalloc.h"

#define MICRO INT64_C(1000000)

static int32_t
D(int y, int m, int d)
{
	int32_t day = 0;

	assert_int_equal(civil_from_ymd(y, m, d, &day), 0);
	return day;
}

static int
setup_defaults(void **state)
{
	struct ratetable *tbl = ratetable_new();

	if (ratetable_load_defaults(tbl) != 0) {
		ratetable_free(tbl);
		return -1;
	}
	*state = tbl;
	return 0;
}

static int
teardown(void **state)
{
	ratetable_free(*state);
	return 0;
}

static void
test_value_on(void **state)
{
	struct ratetable *tbl = ratetable_new();
	const struct ratetable_value *v;
	int32_t rate, eff;
	size_t n;

	(void)state;
	/* out of order, with a replacement */
	assert_int_equal(ratetable_add_value(tbl, "X", D(2024, 7, 1), 20000), 0);
	assert_int_equal(ratetable_add_value(tbl, "X", D(2024, 1, 1), 10000), 0);
	assert_int_equal(ratetable_add_value(tbl, "X", D(2025, 1, 1), -8800), 0);
	assert_int_equal(ratetable_add_value(tbl, "X", D(2024, 7, 1), 25000), 0);
	assert_int_equal(ratetable_series_values(tbl, "X", &v, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(v[0].day, D(2024, 1, 1));
	assert_int_equal(v[1].rate, 25000);
	assert_int_equal(v[2].rate, -8800);

	assert_int_equal(ratetable_value_on(tbl, "X", D(2023, 12, 31), &rate, &eff),
	                 RATETABLE_ENOVALUE);
	assert_int_equal(ratetable_value_on(tbl, "X", D(2024, 1, 1), &rate, &eff), 0);
	assert_int_equal(rate, 10000);
	assert_int_equal(eff, D(2024, 1, 1));
	assert_int_equal(ratetable_value_on(tbl, "X", D(2024, 6, 30), &rate, NULL), 0);
	assert_int_equal(rate, 10000);
	assert_int_equal(ratetable_value_on(tbl, "X", D(2024, 7, 1), &rate, &eff), 0);
	assert_int_equal(rate, 25000);
	assert_int_equal(ratetable_value_on(tbl, "X", D(2030, 1, 1), &rate, &eff), 0);
	assert_int_equal(rate, -8800);
	assert_int_equal(eff, D(2025, 1, 1));
	assert_int_equal(ratetable_value_on(tbl, "Y", D(2030, 1, 1), &rate, &eff),
	                 RATETABLE_ENOVALUE);

	assert_int_equal(ratetable_add_value(tbl, "", 0, 1), RATETABLE_EINVAL);
	assert_int_equal(ratetable_add_value(tbl, "bad name", 0, 1), RATETABLE_EINVAL);
	assert_int_equal(ratetable_add_value(tbl, NULL, 0, 1), RATETABLE_EINVAL);
	assert_int_equal(ratetable_add_value(tbl, "X", CIVIL_DAY_NONE, 1), RATETABLE_EINVAL);
	assert_int_equal(ratetable_series_count(tbl), 1);
	assert_string_equal(ratetable_series_name(tbl, 0), "X");
	assert_null(ratetable_series_name(tbl, 1));
	ratetable_free(tbl);
}

static void
test_rule_validation(void **state)
{
	struct ratetable *tbl = ratetable_new();
	struct ratetable_rule r = {.jurisdiction = "XX",
	                           .mode = RATETABLE_HALF_YEARLY,
	                           .source = "S",
	                           .margin = 80000,
	                           .valid_from = CIVIL_DAY_NONE,
	                           .comp_currency = "EUR",
	                           .ntiers = 2,
	                           .tiers = {{RATETABLE_TIER_BELOW, 1000 * MICRO, 40 * MICRO},
	                                     {RATETABLE_TIER_ANY, 0, 70 * MICRO}}};
	struct ratetable_rule bad;
	char err[128];
	int32_t rate;

	(void)state;
	assert_int_equal(ratetable_add_rule(tbl, &r, err, sizeof(err)), 0);
	/* the series need not exist yet; until it does there is no value */
	assert_int_equal(
	    ratetable_statutory_rate(tbl, "XX", D(2024, 1, 5), D(2024, 1, 5), &rate, NULL, NULL),
	    RATETABLE_ENOVALUE);
	assert_int_equal(ratetable_add_value(tbl, "S", D(2024, 1, 1), 10000), 0);
	assert_int_equal(
	    ratetable_statutory_rate(tbl, "XX", D(2024, 1, 5), D(2024, 1, 5), &rate, NULL, NULL),
	    0);
	assert_int_equal(rate, 90000);
	/* replacement */
	r.margin = 70000;
	assert_int_equal(ratetable_add_rule(tbl, &r, err, sizeof(err)), 0);
	assert_int_equal(ratetable_rule_count(tbl), 1);
	assert_int_equal(ratetable_get_rule(tbl, "XX")->margin, 70000);
	assert_null(ratetable_get_rule(tbl, "YY"));
	assert_int_equal(ratetable_statutory_rate(tbl, "YY", 0, 0, &rate, NULL, NULL),
	                 RATETABLE_ENORULE);

	bad = r;
	bad.jurisdiction = "gb";
	assert_int_equal(ratetable_add_rule(tbl, &bad, err, sizeof(err)), RATETABLE_EINVAL);
	bad = r;
	bad.source = NULL;
	assert_int_equal(ratetable_add_rule(tbl, &bad, err, sizeof(err)), RATETABLE_EINVAL);
	bad = r;
	bad.mode = RATETABLE_FIXED; /* with a source */
	assert_int_equal(ratetable_add_rule(tbl, &bad, err, sizeof(err)), RATETABLE_EINVAL);
	bad = r;
	bad.fixing_offset_days = 400;
	assert_int_equal(ratetable_add_rule(tbl, &bad, err, sizeof(err)), RATETABLE_EINVAL);
	bad = r;
	bad.comp_currency = "eur";
	assert_int_equal(ratetable_add_rule(tbl, &bad, err, sizeof(err)), RATETABLE_EINVAL);
	bad = r;
	bad.tiers[1].kind = RATETABLE_TIER_BELOW; /* no catch-all last tier */
	bad.tiers[1].bound = 2000 * MICRO;
	assert_int_equal(ratetable_add_rule(tbl, &bad, err, sizeof(err)), RATETABLE_EINVAL);
	bad = r;
	bad.ntiers = 3;
	bad.tiers[1] = (struct ratetable_tier){RATETABLE_TIER_BELOW, 500 * MICRO, 1};
	bad.tiers[2] = (struct ratetable_tier){RATETABLE_TIER_ANY, 0, 1};
	assert_int_equal(ratetable_add_rule(tbl, &bad, err, sizeof(err)), RATETABLE_EINVAL);
	assert_string_equal(err, "compensation: bounds must ascend");
	bad = r;
	bad.comp_currency = NULL; /* tiers without a currency */
	assert_int_equal(ratetable_add_rule(tbl, &bad, err, sizeof(err)), RATETABLE_EINVAL);
	assert_int_equal(ratetable_get_rule(tbl, "XX")->margin, 70000); /* unchanged */
	ratetable_free(tbl);
}

/* RATES.md, "Resulting statutory rates, for checking" (percent per year * 10000). */
static const struct {
	int year, half;
	int32_t gb, de, fr, nl, at;
} rates_md[] = {
    {2023, 2, 130000, 121200, 140000, 120000, 125800},
    {2024, 1, 132500, 126200, 145000, 125000, 130800},
    {2024, 2, 132500, 123700, 142500, 122500, 130800},
    {2025, 1, 127500, 112700, 131500, 111500, 117300},
    {2025, 2, 122500, 102700, 121500, 101500, 107300},
    {2026, 1, 117500, 102700, 121500, 101500, 107300},
};

static void
check_cell(const struct ratetable *tbl, const char *jur, int32_t first, int32_t last, int32_t want)
{
	const int32_t probes[] = {first, first + 1, first + (last - first) / 2, last};
	const struct ratetable_rule *r = ratetable_get_rule(tbl, jur);
	char day[CIVIL_DATE_LEN];

	assert_non_null(r);
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		int32_t rate = 0, fixed_on = 0, ref = 0, later = 0;

		civil_format_date(probes[i], day);
		/* a debt first overdue on the probe day, on that day */
		if (ratetable_statutory_rate(tbl, jur, probes[i], probes[i], &rate, &fixed_on,
		                             &ref) != 0 ||
		    rate != want)
			fail_msg("%s on %s: got %d, RATES.md says %d", jur, day, (int)rate,
			         (int)want);
		assert_int_equal(rate, ref + r->margin);
		assert_int_equal(fixed_on,
		                 civil_half_year_start(probes[i]) + r->fixing_offset_days);
		if (r->mode == RATETABLE_PER_DEBT) {
			/* the same debt a year later keeps its rate */
			assert_int_equal(ratetable_statutory_rate(tbl, jur, probes[i],
			                                          probes[i] + 365, &later, NULL,
			                                          NULL),
			                 0);
			assert_int_equal(later, want);
		} else {
			/* any debt, on a day of this half-year */
			assert_int_equal(ratetable_statutory_rate(tbl, jur, D(2022, 3, 1),
			                                          probes[i], &later, NULL, NULL),
			                 0);
			assert_int_equal(later, want);
		}
	}
}

static void
test_rates_md_table(void **state)
{
	const struct ratetable *tbl = *state;
	static const char *const nl_group[] = {"NL", "IE", "IT", "ES", "HR"};

	for (size_t i = 0; i < sizeof(rates_md) / sizeof(rates_md[0]); i++) {
		int32_t first = D(rates_md[i].year, rates_md[i].half == 1 ? 1 : 7, 1);
		int32_t last = rates_md[i].half == 1 ? D(rates_md[i].year, 6, 30)
		                                     : D(rates_md[i].year, 12, 31);

		check_cell(tbl, "GB", first, last, rates_md[i].gb);
		check_cell(tbl, "DE", first, last, rates_md[i].de);
		check_cell(tbl, "FR", first, last, rates_md[i].fr);
		for (size_t j = 0; j < sizeof(nl_group) / sizeof(nl_group[0]); j++)
			check_cell(tbl, nl_group[j], first, last, rates_md[i].nl);
		check_cell(tbl, "AT", first, last, rates_md[i].at);
	}
}

static void
test_fixing_details(void **state)
{
	const struct ratetable *tbl = *state;
	int32_t rate, fixed_on, ref;

	/* RATES.md worked example: GB debt due 2023-08-01, overdue from 2023-08-02: Bank
	 * Rate 5.00 in force on 30 Jun 2023 (+8 = 13.00); the 5.25 of 3 Aug is ignored. */
	assert_int_equal(ratetable_statutory_rate(tbl, "GB", D(2023, 8, 2), D(2023, 9, 15), &rate,
	                                          &fixed_on, &ref),
	                 0);
	assert_int_equal(rate, 130000);
	assert_int_equal(ref, 50000);
	assert_int_equal(fixed_on, D(2023, 6, 30));
	/* GB debt first overdue 2022-01-10: Bank Rate on 31 Dec 2021 = 0.25 (shipped as
	 * effective 2021-12-16) -> 8.25 */
	assert_int_equal(ratetable_statutory_rate(tbl, "GB", D(2022, 1, 10), D(2022, 1, 10), &rate,
	                                          &fixed_on, &ref),
	                 0);
	assert_int_equal(rate, 82500);
	assert_int_equal(fixed_on, D(2021, 12, 31));
	/* DE 2022-H2: Basiszins -0.88 + 9 = 8.12 */
	assert_int_equal(ratetable_statutory_rate(tbl, "DE", D(2022, 8, 1), D(2022, 8, 1), &rate,
	                                          &fixed_on, &ref),
	                 0);
	assert_int_equal(rate, 81200);
	assert_int_equal(ref, -8800);
	/* AT 2022-H2: base rate on 1 Jul 2022 = -0.62 (the -0.12 of 27 Jul comes later);
	 * -0.62 + 9.2 = 8.58 */
	assert_int_equal(ratetable_statutory_rate(tbl, "AT", D(2022, 12, 31), D(2022, 12, 31),
	                                          &rate, NULL, &ref),
	                 0);
	assert_int_equal(ref, -6200);
	assert_int_equal(rate, 85800);
	/* FR 2026-H2: ECB on 1 Jul 2026 = 2.40 (unconfirmed, from 17 Jun) + 10 */
	assert_int_equal(
	    ratetable_statutory_rate(tbl, "FR", D(2026, 7, 1), D(2026, 7, 1), &rate, NULL, NULL),
	    0);
	assert_int_equal(rate, 124000);
	/* fixed rules */
	assert_int_equal(ratetable_statutory_rate(tbl, "US-NY", D(2020, 1, 1), D(2020, 1, 1), &rate,
	                                          &fixed_on, &ref),
	                 0);
	assert_int_equal(rate, 90000);
	assert_int_equal(fixed_on, CIVIL_DAY_NONE);
	assert_int_equal(ref, 0);
	assert_int_equal(ratetable_statutory_rate(tbl, "US-CA", 0, 0, &rate, NULL, NULL), 0);
	assert_int_equal(rate, 100000);
	/* no data: before the shipped history; HR before 2023 (national formula) */
	assert_int_equal(
	    ratetable_statutory_rate(tbl, "GB", D(2021, 7, 1), D(2021, 7, 1), &rate, NULL, NULL),
	    RATETABLE_ENOVALUE);
	assert_int_equal(ratetable_statutory_rate(tbl, "HR", D(2022, 12, 31), D(2022, 12, 31),
	                                          &rate, NULL, NULL),
	                 RATETABLE_ENOVALUE);
	assert_int_equal(
	    ratetable_statutory_rate(tbl, "HR", D(2023, 1, 1), D(2023, 1, 1), &rate, NULL, NULL),
	    0);
	assert_int_equal(rate, 105000); /* ECB 2.50 on 1 Jan 2023 + 8 */
	/* no rule */
	assert_int_equal(ratetable_statutory_rate(tbl, "CH", 0, 0, &rate, NULL, NULL),
	                 RATETABLE_ENORULE);
	assert_int_equal(ratetable_statutory_rate(tbl, NULL, 0, 0, &rate, NULL, NULL),
	                 RATETABLE_ENORULE);
}

static void
test_overflow(void **state)
{
	struct ratetable *tbl = ratetable_new();
	struct ratetable_rule r = {.jurisdiction = "ZZ",
	                           .mode = RATETABLE_HALF_YEARLY,
	                           .source = "BIG",
	                           .margin = 1,
	                           .valid_from = CIVIL_DAY_NONE};
	int32_t rate;

	(void)state;
	assert_int_equal(ratetable_add_rule(tbl, &r, NULL, 0), 0);
	assert_int_equal(ratetable_add_value(tbl, "BIG", 0, INT32_MAX), 0);
	assert_int_equal(ratetable_statutory_rate(tbl, "ZZ", 1, 1, &rate, NULL, NULL),
	                 RATETABLE_ERANGE);
	ratetable_free(tbl);
}

static int64_t
comp(const struct ratetable *tbl, const char *jur, int64_t debt, const char *want_currency)
{
	int64_t amount = -1;
	char cur[4] = "???";

	assert_int_equal(ratetable_compensation(tbl, jur, debt, &amount, cur), 0);
	assert_string_equal(cur, want_currency);
	return amount;
}

static void
test_compensation(void **state)
{
	const struct ratetable *tbl = *state;
	int64_t amount;
	char cur[4];

	/* GB: 40 below 1,000; 70 for 1,000 - 9,999.99; 100 from 10,000 */
	assert_int_equal(comp(tbl, "GB", 0, "GBP"), 40 * MICRO);
	assert_int_equal(comp(tbl, "GB", 999990000, "GBP"), 40 * MICRO);
	assert_int_equal(comp(tbl, "GB", 1000 * MICRO, "GBP"), 70 * MICRO);
	assert_int_equal(comp(tbl, "GB", 9999990000, "GBP"), 70 * MICRO);
	assert_int_equal(comp(tbl, "GB", 10000 * MICRO, "GBP"), 100 * MICRO);
	/* IE: 40 below 1,000; 70 for 1,000 - 10,000 inclusive; 100 above 10,000 */
	assert_int_equal(comp(tbl, "IE", 1000 * MICRO - 1, "EUR"), 40 * MICRO);
	assert_int_equal(comp(tbl, "IE", 1000 * MICRO, "EUR"), 70 * MICRO);
	assert_int_equal(comp(tbl, "IE", 10000 * MICRO, "EUR"), 70 * MICRO);
	assert_int_equal(comp(tbl, "IE", 10000 * MICRO + 1, "EUR"), 100 * MICRO);
	/* EU states: 40 flat */
	static const char *const eu[] = {"DE", "AT", "FR", "NL", "IT", "ES", "HR"};
	for (size_t i = 0; i < sizeof(eu) / sizeof(eu[0]); i++) {
		assert_int_equal(comp(tbl, eu[i], 1, "EUR"), 40 * MICRO);
		assert_int_equal(comp(tbl, eu[i], INT64_MAX, "EUR"), 40 * MICRO);
	}
	/* US: no fixed compensation */
	assert_int_equal(comp(tbl, "US-NY", 10000 * MICRO, ""), 0);
	assert_int_equal(comp(tbl, "US-CA", 10000 * MICRO, ""), 0);
	assert_int_equal(ratetable_compensation(tbl, "CH", 1, &amount, cur), RATETABLE_ENORULE);
	assert_int_equal(ratetable_compensation(tbl, "GB", -1, &amount, cur), RATETABLE_EINVAL);
}

static void
test_parse_tiers(void **state)
{
	struct ratetable_tier t[RATETABLE_MAX_TIERS];
	size_t n = 0;
	char err[128];
	static const char *const bad[] = {
	    "",
	    "{}",
	    "[]",
	    "[1]",
	    "[{\"amount\": 40}]",
	    "[{\"amount\": \"40\", \"x\": \"1\"}]",
	    "[{\"below\": \"1\", \"upto\": \"2\", \"amount\": \"1\"}]",
	    "[{\"below\": \"-1\", \"amount\": \"1\"}]",
	    "[{\"amount\": \"1.1234567\"}]",
	    "[{\"amount\": \"1.\"}]",
	    "[{\"amount\": \".5\"}]",
	    "[{\"below\": 5, \"amount\": \"1\"}]",
	    "[{\"amount\": \"99999999999999999999\"}]",
	    "[{\"amount\":\"1\"},{\"amount\":\"1\"},{\"amount\":\"1\"},{\"amount\":\"1\"},"
	    "{\"amount\":\"1\"},{\"amount\":\"1\"},{\"amount\":\"1\"},{\"amount\":\"1\"},"
	    "{\"amount\":\"1\"}]"};
	const char *ok = "[{\"below\": \"1000\", \"amount\": \"40\"}, {\"upto\": \"10000.5\", "
	                 "\"amount\": \"70.25\"}, {\"amount\": \"100\"}]";

	(void)state;
	assert_int_equal(ratetable_parse_tiers(ok, strlen(ok), t, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 3);
	assert_int_equal(t[0].kind, RATETABLE_TIER_BELOW);
	assert_int_equal(t[0].bound, 1000 * MICRO);
	assert_int_equal(t[0].amount, 40 * MICRO);
	assert_int_equal(t[1].kind, RATETABLE_TIER_UPTO);
	assert_int_equal(t[1].bound, 10000500000);
	assert_int_equal(t[1].amount, 70250000);
	assert_int_equal(t[2].kind, RATETABLE_TIER_ANY);
	assert_int_equal(t[2].amount, 100 * MICRO);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (ratetable_parse_tiers(bad[i], strlen(bad[i]), t, &n, err, sizeof(err)) !=
		    RATETABLE_EINVAL)
			fail_msg("accepted %s", bad[i]);
}

static void
test_names(void **state)
{
	enum ratetable_mode m;
	enum ratetable_compounding c;

	(void)state;
	assert_int_equal(ratetable_parse_mode("per_debt", &m), 0);
	assert_int_equal(m, RATETABLE_PER_DEBT);
	assert_int_equal(ratetable_parse_mode("half_yearly", &m), 0);
	assert_int_equal(m, RATETABLE_HALF_YEARLY);
	assert_int_equal(ratetable_parse_mode("fixed", &m), 0);
	assert_int_equal(m, RATETABLE_FIXED);
	assert_int_equal(ratetable_parse_mode("Fixed", &m), -1);
	assert_int_equal(ratetable_parse_mode(NULL, &m), -1);
	assert_string_equal(ratetable_mode_name(RATETABLE_HALF_YEARLY), "half_yearly");
	assert_int_equal(ratetable_parse_compounding("yearly", &c), 0);
	assert_int_equal(c, RATETABLE_COMPOUND_YEARLY);
	assert_int_equal(ratetable_parse_compounding("none", &c), 0);
	assert_int_equal(c, RATETABLE_COMPOUND_NONE);
	assert_int_equal(ratetable_parse_compounding("monthly", &c), -1);
	assert_string_equal(ratetable_compounding_name(RATETABLE_COMPOUND_YEARLY), "yearly");
}

/*
 * sql/0004_statutory_rates.sql against ratetable_load_defaults(): a small reader
 * for the INSERT ... VALUES (...), (...); statements of that file (strings with
 * '' escapes, integers, NULL), which builds a second ratetable through the same
 * API the daemon uses, then compares both tables field by field.
 */
#define SQL_MAX_COLS 12

struct sql_row {
	size_t ncols;
	char *cols[SQL_MAX_COLS]; /* NULL for SQL NULL */
};

static const char *
skip_ws(const char *p)
{
	for (;;) {
		while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
			p++;
		if (p[0] == '-' && p[1] == '-') {
			while (*p != '\0' && *p != '\n')
				p++;
			continue;
		}
		return p;
	}
}

/* Parses "(v, v, ...)" at p into row; returns the position after ')' or NULL. */
static const char *
parse_tuple(const char *p, struct sql_row *row)
{
	row->ncols = 0;
	p = skip_ws(p);
	if (*p++ != '(')
		return NULL;
	for (;;) {
		char *val = NULL;

		p = skip_ws(p);
		if (*p == '\'') {
			size_t n = 0;

			val = xmalloc(strlen(p));
			for (p++;; p++) {
				if (*p == '\0') {
					free(val);
					return NULL;
				}
				if (*p == '\'') {
					if (p[1] != '\'')
						break;
					p++;
				}
				val[n++] = *p;
			}
			val[n] = '\0';
			p++;
		} else if (strncmp(p, "NULL", 4) == 0) {
			p += 4;
		} else {
			const char *s = p;

			if (*p == '-')
				p++;
			while (*p >= '0' && *p <= '9')
				p++;
			if (p == s)
				return NULL;
			val = xstrndup(s, (size_t)(p - s));
		}
		if (row->ncols == SQL_MAX_COLS) {
			free(val);
			return NULL;
		}
		row->cols[row->ncols++] = val;
		p = skip_ws(p);
		if (*p == ')')
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static void
row_free(struct sql_row *row)
{
	for (size_t i = 0; i < row->ncols; i++)
		free(row->cols[i]);
	row->ncols = 0;
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long len;

	if (f == NULL)
		fail_msg("cannot open %s", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	assert_true(len > 0);
	rewind(f);
	buf = xmalloc((size_t)len + 1);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

static int32_t
sql_date(const char *s)
{
	int32_t day = 0;

	if (s == NULL || civil_parse_date(s, strlen(s), &day) != 0)
		fail_msg("bad date %s", s ? s : "NULL");
	return day;
}

static int32_t
sql_int(const char *s)
{
	char *end;
	long v;

	if (s == NULL)
		fail_msg("NULL where an integer is expected");
	v = strtol(s, &end, 10);
	assert_true(*end == '\0' && v >= INT32_MIN && v <= INT32_MAX);
	return (int32_t)v;
}

static bool
note_has(const char *note, const char *mark)
{
	return note != NULL && strstr(note, mark) != NULL;
}

static void
add_reference_row(struct ratetable *tbl, const struct sql_row *row, size_t *nvalues,
                  size_t *nmarked)
{
	int32_t day;
	int y, m, d;

	assert_int_equal(row->ncols, 4); /* source, effective_date, rate, note */
	day = sql_date(row->cols[1]);
	assert_int_equal(ratetable_add_value(tbl, row->cols[0], day, sql_int(row->cols[2])), 0);
	(*nvalues)++;
	/* RATES.md "(unconfirmed)" and "(derived)" values carry that mark in note */
	civil_to_ymd(day, &y, &m, &d);
	if ((strcmp(row->cols[0], "ECB_MRO") == 0 && y == 2026 && m == 6 && d == 17) ||
	    (strcmp(row->cols[0], "DE_BASISZINS") == 0 && y == 2026 && m == 7)) {
		assert_true(note_has(row->cols[3], "(unconfirmed)"));
		(*nmarked)++;
	}
	if (strcmp(row->cols[0], "AT_BASISZINS") == 0 &&
	    ((y == 2022 && m >= 7 && m <= 11) || (y == 2023 && m >= 2 && m <= 3))) {
		assert_true(note_has(row->cols[3], "(derived)"));
		(*nmarked)++;
	}
}

static void
add_rule_row(struct ratetable *tbl, const struct sql_row *row)
{
	/* jurisdiction, mode, source, margin, fixed_rate, fixing_offset_days, compounding,
	 * valid_from, comp_currency, comp_tiers, legal_basis */
	struct ratetable_rule r;
	char err[128] = "";

	assert_int_equal(row->ncols, 11);
	memset(&r, 0, sizeof(r));
	r.jurisdiction = row->cols[0];
	assert_int_equal(ratetable_parse_mode(row->cols[1], &r.mode), 0);
	r.source = row->cols[2];
	r.margin = sql_int(row->cols[3]);
	r.fixed_rate = row->cols[4] ? sql_int(row->cols[4]) : 0;
	assert_true((row->cols[4] != NULL) == (r.mode == RATETABLE_FIXED));
	r.fixing_offset_days = sql_int(row->cols[5]);
	assert_int_equal(ratetable_parse_compounding(row->cols[6], &r.compounding), 0);
	r.valid_from = row->cols[7] ? sql_date(row->cols[7]) : CIVIL_DAY_NONE;
	r.comp_currency = row->cols[8];
	if (row->cols[9] != NULL)
		assert_int_equal(ratetable_parse_tiers(row->cols[9], strlen(row->cols[9]), r.tiers,
		                                       &r.ntiers, err, sizeof(err)),
		                 0);
	r.legal_basis = row->cols[10];
	if (ratetable_add_rule(tbl, &r, err, sizeof(err)) != 0)
		fail_msg("rule %s: %s", r.jurisdiction, err);
}

static struct ratetable *
load_sql(const char *path, size_t *nvalues, size_t *nrules, size_t *nmarked)
{
	struct ratetable *tbl = ratetable_new();
	char *text = read_file(path);
	const char *p = text;

	*nvalues = *nrules = *nmarked = 0;
	while ((p = strstr(p, "INSERT INTO ")) != NULL) {
		bool rules = false;
		struct sql_row row;

		p += strlen("INSERT INTO ");
		if (strncmp(p, "reference_rates ", 16) == 0)
			rules = false;
		else if (strncmp(p, "statutory_rules ", 16) == 0)
			rules = true;
		else
			fail_msg("unexpected INSERT INTO %.20s", p);
		p = strstr(p, ") VALUES");
		assert_non_null(p);
		p += strlen(") VALUES");
		for (;;) {
			p = parse_tuple(p, &row);
			if (p == NULL)
				fail_msg("cannot parse a row of %s", path);
			if (rules) {
				add_rule_row(tbl, &row);
				(*nrules)++;
			} else {
				add_reference_row(tbl, &row, nvalues, nmarked);
			}
			row_free(&row);
			p = skip_ws(p);
			if (*p == ';')
				break;
			assert_int_equal(*p, ',');
			p++;
		}
	}
	free(text);
	return tbl;
}

static bool
str_eq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
assert_same_rule(const struct ratetable_rule *a, const struct ratetable_rule *b)
{
	assert_non_null(b);
	if (!str_eq(a->jurisdiction, b->jurisdiction) || a->mode != b->mode ||
	    !str_eq(a->source, b->source) || a->margin != b->margin ||
	    a->fixed_rate != b->fixed_rate || a->fixing_offset_days != b->fixing_offset_days ||
	    a->compounding != b->compounding || a->valid_from != b->valid_from ||
	    !str_eq(a->comp_currency, b->comp_currency) || a->ntiers != b->ntiers ||
	    !str_eq(a->legal_basis, b->legal_basis))
		fail_msg("rule %s differs between C defaults and SQL", a->jurisdiction);
	for (size_t i = 0; i < a->ntiers; i++)
		if (a->tiers[i].kind != b->tiers[i].kind ||
		    a->tiers[i].amount != b->tiers[i].amount ||
		    (a->tiers[i].kind != RATETABLE_TIER_ANY &&
		     a->tiers[i].bound != b->tiers[i].bound))
			fail_msg("rule %s: tier %zu differs", a->jurisdiction, i);
}

static void
test_sql_matches_defaults(void **state)
{
	const struct ratetable *c = *state;
	size_t nvalues, nrules, nmarked, ctotal = 0;
	struct ratetable *sql =
	    load_sql(CREDITD_SQL_DIR "/0004_statutory_rates.sql", &nvalues, &nrules, &nmarked);

	/* no duplicate rows (they would merge silently into one value or rule) */
	assert_int_equal(nrules, ratetable_rule_count(sql));
	assert_int_equal(nmarked, 2 + 5); /* 2 unconfirmed + 5 derived */
	assert_int_equal(ratetable_series_count(sql), ratetable_series_count(c));
	assert_int_equal(ratetable_rule_count(sql), ratetable_rule_count(c));
	assert_int_equal(ratetable_rule_count(c), 11);
	for (size_t i = 0; i < ratetable_series_count(c); i++) {
		const char *name = ratetable_series_name(c, i);
		const struct ratetable_value *cv, *sv;
		size_t cn, sn;

		assert_int_equal(ratetable_series_values(c, name, &cv, &cn), 0);
		if (ratetable_series_values(sql, name, &sv, &sn) != 0)
			fail_msg("series %s missing from the SQL file", name);
		assert_int_equal(cn, sn);
		for (size_t j = 0; j < cn; j++)
			if (cv[j].day != sv[j].day || cv[j].rate != sv[j].rate)
				fail_msg("series %s value %zu differs", name, j);
		ctotal += cn;
	}
	assert_int_equal(nvalues, ctotal);
	for (size_t i = 0; i < ratetable_rule_count(c); i++) {
		const struct ratetable_rule *cr = ratetable_rule_at(c, i);

		assert_same_rule(cr, ratetable_get_rule(sql, cr->jurisdiction));
	}
	ratetable_free(sql);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_value_on),
	    cmocka_unit_test(test_rule_validation),
	    cmocka_unit_test(test_parse_tiers),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_overflow),
	    cmocka_unit_test_setup_teardown(test_rates_md_table, setup_defaults, teardown),
	    cmocka_unit_test_setup_teardown(test_fixing_details, setup_defaults, teardown),
	    cmocka_unit_test_setup_teardown(test_compensation, setup_defaults, teardown),
	    cmocka_unit_test_setup_teardown(test_sql_matches_defaults, setup_defaults, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
