/*
 * test_interest.c: day counts and the late-payment interest engine (common/interest.c),
 * with hand-worked values.
 *
 * Notation: amounts in micro-units (1 EUR = 1e6); rates in 0.0001 % (13 % = 130000).
 * One day of interest = balance * rate / 1e6 / denominator. The engine's exact unit
 * is 1/INTEREST_DENOM micro-units with INTEREST_DENOM = 1e6 * 1603080, and
 * 1603080 / 365 = 4392, 1603080 / 366 = 4380, 1603080 / 360 = 4453, so the exact
 * amount of n days is balance * rate * (4392 | 4380 | 4453) * n.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "civil.h"
#include "daycount.h"
#include "interest.h"
#include "money.h"
#include "ratetable.h"

#define MICRO INT64_C(1000000)
#define X(v) ((interest_exact_t)(v)) /* exact (128-bit) arithmetic in expectations */

static int32_t
D(int y, int m, int d)
{
	int32_t day = 0;

	assert_int_equal(civil_from_ymd(y, m, d, &day), 0);
	return day;
}

static int
setup(void **state)
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
assert_exact(interest_exact_t got, interest_exact_t want)
{
	if (got != want)
		fail_msg("exact %lld:%llu != %lld:%llu", (long long)(got >> 64),
		         (unsigned long long)got, (long long)(want >> 64),
		         (unsigned long long)want);
}

static int64_t
micro(interest_exact_t e)
{
	int64_t m = 0;

	assert_int_equal(interest_round_micro(e, &m), 0);
	return m;
}

static void
compute(const struct interest_input *in, int32_t from, int32_t to, struct interest_result *res)
{
	char err[128] = "";

	if (interest_compute(in, from, to, res, err, sizeof(err)) != 0)
		fail_msg("interest_compute: %s", err);
}

static void
assert_period(const struct interest_result *res, size_t i, int32_t from, int32_t to,
              int64_t balance, int32_t rate, enum interest_source source, int64_t amount)
{
	const struct interest_period *p;

	assert_true(i < res->nperiods);
	p = &res->periods[i];
	assert_int_equal(p->from, from);
	assert_int_equal(p->to, to);
	assert_int_equal(p->days, to - from + 1);
	assert_int_equal(p->balance, balance);
	assert_int_equal(p->rate, rate);
	assert_int_equal(p->source, source);
	assert_int_equal(p->amount, amount);
	assert_int_equal(micro(p->exact), amount);
}

static void
test_daycount(void **state)
{
	enum daycount dc;

	(void)state;
	assert_int_equal(daycount_parse("actual/365", 10, &dc), 0);
	assert_int_equal(dc, DAYCOUNT_ACT_365);
	assert_int_equal(daycount_parse("actual/actual", 13, &dc), 0);
	assert_int_equal(dc, DAYCOUNT_ACT_ACT);
	assert_int_equal(daycount_parse("actual/360", 10, &dc), 0);
	assert_int_equal(dc, DAYCOUNT_ACT_360);
	assert_int_equal(daycount_parse("actual/36", 9, &dc), -1);
	assert_int_equal(daycount_parse("ACT/365", 7, &dc), -1);
	assert_int_equal(daycount_parse(NULL, 0, &dc), -1);
	assert_string_equal(daycount_name(DAYCOUNT_ACT_ACT), "actual/actual");
	assert_null(daycount_name((enum daycount)7));
	assert_int_equal(daycount_denominator(DAYCOUNT_ACT_365, D(2024, 2, 29)), 365);
	assert_int_equal(daycount_denominator(DAYCOUNT_ACT_ACT, D(2024, 2, 29)), 366);
	assert_int_equal(daycount_denominator(DAYCOUNT_ACT_ACT, D(2024, 12, 31)), 366);
	assert_int_equal(daycount_denominator(DAYCOUNT_ACT_ACT, D(2023, 12, 31)), 365);
	assert_int_equal(daycount_denominator(DAYCOUNT_ACT_360, D(2024, 2, 29)), 360);
	assert_int_equal(DAYCOUNT_LCM % 365, 0);
	assert_int_equal(DAYCOUNT_LCM % 366, 0);
	assert_int_equal(DAYCOUNT_LCM % 360, 0);
}

static void
test_round_micro(void **state)
{
	int64_t m;

	(void)state;
	assert_int_equal(interest_round_micro(X(INTEREST_DENOM) / 2, &m), 0);
	assert_int_equal(m, 1); /* half away from zero */
	assert_int_equal(interest_round_micro(X(INTEREST_DENOM) / 2 - 1, &m), 0);
	assert_int_equal(m, 0);
	assert_int_equal(interest_round_micro(-(X(INTEREST_DENOM) / 2), &m), 0);
	assert_int_equal(m, -1);
	assert_int_equal(interest_round_micro(X(INTEREST_DENOM) * 7 + 1, &m), 0);
	assert_int_equal(m, 7);
	assert_int_equal(interest_round_micro(X(INTEREST_DENOM) * INT64_MAX, &m), 0);
	assert_int_equal(m, INT64_MAX);
	assert_int_equal(interest_round_micro(X(INTEREST_DENOM) * INT64_MAX + INTEREST_DENOM, &m),
	                 -1);
	assert_string_equal(interest_source_name(INTEREST_STATUTORY), "statutory");
	assert_string_equal(interest_source_name(INTEREST_CONTRACTUAL), "contractual");
}

/*
 * RATES.md worked example: GBP 10,000.00 due 2023-08-01, paid 2023-09-15.
 * Days 2023-08-02 .. 2023-09-15 = 30 + 15 = 45. Rate: Bank Rate on 30 Jun 2023 5.00 + 8
 * = 13.00 (the 5.25 of 3 Aug does not touch this debt).
 * 10,000 * 0.13 * 45 / 365 = 58,500 / 365 = 160.27397260... GBP
 * = 160,273,972.60 micro -> 160,273,973 micro (160.273973) -> 160.27 at 2 decimals.
 * Compensation: debt >= 10,000 -> GBP 100.
 */
static void
test_gb_worked_example(void **state)
{
	const struct ratetable *tbl = *state;
	const struct interest_change ch[] = {
	    {D(2023, 8, 1), 10000 * MICRO},
	    {D(2023, 9, 15), -10000 * MICRO},
	};
	struct interest_input in = {.due_date = D(2023, 8, 1),
	                            .changes = ch,
	                            .nchanges = 2,
	                            .contractual_rate = 0,
	                            .jurisdiction = "GB",
	                            .daycount = DAYCOUNT_ACT_365,
	                            .rates = tbl};
	struct interest_result res;
	int64_t m, posted, comp;
	char cur[4];

	/* the range may start before the due date and end after the payment */
	compute(&in, D(2023, 7, 1), D(2023, 12, 31), &res);
	assert_true(res.has_rule);
	assert_int_equal(res.nperiods, 1);
	assert_period(&res, 0, D(2023, 8, 2), D(2023, 9, 15), 10000 * MICRO, 130000,
	              INTEREST_STATUTORY, 160273973);
	assert_int_equal(res.periods[0].days, 45);
	assert_exact(res.total, X(10000 * MICRO) * 130000 * 4392 * 45);
	m = micro(res.total);
	assert_int_equal(m, 160273973);
	assert_int_equal(money_round(m, 2, &posted), 0);
	assert_int_equal(posted, 160270000); /* GBP 160.27 */
	interest_result_free(&res);

	assert_int_equal(ratetable_compensation(tbl, "GB", 10000 * MICRO, &comp, cur), 0);
	assert_int_equal(comp, 100 * MICRO);
	assert_string_equal(cur, "GBP");

	/* the due date itself bears nothing; the payment day bears interest */
	compute(&in, D(2023, 8, 1), D(2023, 8, 1), &res);
	assert_int_equal(res.nperiods, 0);
	assert_exact(res.total, 0);
	interest_result_free(&res);
	compute(&in, D(2023, 9, 15), D(2023, 9, 16), &res);
	assert_int_equal(res.nperiods, 1);
	assert_exact(res.total, X(10000 * MICRO) * 130000 * 4392);
	interest_result_free(&res);
	/* an empty range */
	compute(&in, D(2023, 9, 1), D(2023, 8, 31), &res);
	assert_int_equal(res.nperiods, 0);
	assert_exact(res.total, 0);
	interest_result_free(&res);
}

/*
 * GB per-debt fixing across 1 January: GBP 1,000 due 2023-12-15 (first overdue
 * 2023-12-16, i.e. 2023-H2: Bank Rate on 30 Jun 2023 = 5.00 -> 13.00), paid 2024-01-20.
 * The 2024-H1 rate (13.25) does not apply: one period of 16 + 20 = 36 days at 13.00.
 * actual/365: 1,000 * 0.13 * 36 / 365 = 4,680 / 365 = 12.82191780... -> 12,821,918 micro.
 * actual/actual: 130 * 16 / 365 + 130 * 20 / 366 = 5.69863013... + 7.10382513...
 *              = 12.80245527... -> 12,802,455 micro (still one period: same balance/rate).
 */
static void
test_gb_crossing_new_year(void **state)
{
	const struct interest_change ch[] = {
	    {D(2023, 12, 15), 1000 * MICRO},
	    {D(2024, 1, 20), -1000 * MICRO},
	};
	struct interest_input in = {.due_date = D(2023, 12, 15),
	                            .changes = ch,
	                            .nchanges = 2,
	                            .jurisdiction = "GB",
	                            .daycount = DAYCOUNT_ACT_365,
	                            .rates = *state};
	struct interest_result res;

	compute(&in, D(2023, 12, 1), D(2024, 3, 31), &res);
	assert_int_equal(res.nperiods, 1);
	assert_period(&res, 0, D(2023, 12, 16), D(2024, 1, 20), 1000 * MICRO, 130000,
	              INTEREST_STATUTORY, 12821918);
	assert_exact(res.total, X(1000 * MICRO) * 130000 * 4392 * 36);
	interest_result_free(&res);

	in.daycount = DAYCOUNT_ACT_ACT;
	compute(&in, D(2023, 12, 1), D(2024, 3, 31), &res);
	assert_int_equal(res.nperiods, 1);
	assert_period(&res, 0, D(2023, 12, 16), D(2024, 1, 20), 1000 * MICRO, 130000,
	              INTEREST_STATUTORY, 12802455);
	assert_exact(res.total, X(1000 * MICRO) * 130000 * (4392 * 16 + 4380 * 20));
	interest_result_free(&res);
}

/*
 * DE half-yearly across 1 July: EUR 5,000 due 2024-06-10, paid 2024-07-20.
 * 2024-06-11 .. 06-30: 20 days at 3.62 + 9 = 12.62:
 *   5,000 * 0.1262 * 20 / 365 = 12,620 / 365 = 34.57534246... -> 34,575,342 micro
 * 2024-07-01 .. 07-20: 20 days at 3.37 + 9 = 12.37:
 *   5,000 * 0.1237 * 20 / 365 = 12,370 / 365 = 33.89041095... -> 33,890,411 micro
 * total 24,990 / 365 = 68.46575342... -> 68,465,753 micro.
 */
static void
test_de_crossing_july(void **state)
{
	const struct interest_change ch[] = {
	    {D(2024, 6, 10), 5000 * MICRO},
	    {D(2024, 7, 20), -5000 * MICRO},
	};
	struct interest_input in = {.due_date = D(2024, 6, 10),
	                            .changes = ch,
	                            .nchanges = 2,
	                            .contractual_rate = 80000, /* 8 %: below statutory */
	                            .jurisdiction = "DE",
	                            .daycount = DAYCOUNT_ACT_365,
	                            .rates = *state};
	struct interest_result res;

	compute(&in, D(2024, 6, 1), D(2024, 12, 31), &res);
	assert_int_equal(res.nperiods, 2);
	assert_period(&res, 0, D(2024, 6, 11), D(2024, 6, 30), 5000 * MICRO, 126200,
	              INTEREST_STATUTORY, 34575342);
	assert_period(&res, 1, D(2024, 7, 1), D(2024, 7, 20), 5000 * MICRO, 123700,
	              INTEREST_STATUTORY, 33890411);
	assert_exact(res.total, X(5000 * MICRO) * 4392 * 20 * (126200 + 123700));
	assert_int_equal(micro(res.total), 68465753);
	interest_result_free(&res);
}

/*
 * AT: the base rate in force on 1 Jul 2023 (3.38) holds for the whole half-year
 * although it moved to 3.88 on 2023-09-20. EUR 2,000 due 2023-09-01 paid 2023-10-31:
 * 2023-09-02 .. 10-31 = 29 + 31 = 60 days at 3.38 + 9.2 = 12.58:
 * 2,000 * 0.1258 * 60 / 365 = 15,096 / 365 = 41.35890410... -> 41,358,904 micro.
 */
static void
test_at_half_year(void **state)
{
	const struct interest_change ch[] = {
	    {D(2023, 9, 1), 2000 * MICRO},
	    {D(2023, 10, 31), -2000 * MICRO},
	};
	struct interest_input in = {.due_date = D(2023, 9, 1),
	                            .changes = ch,
	                            .nchanges = 2,
	                            .jurisdiction = "AT",
	                            .daycount = DAYCOUNT_ACT_365,
	                            .rates = *state};
	struct interest_result res;

	compute(&in, D(2023, 9, 1), D(2023, 12, 31), &res);
	assert_int_equal(res.nperiods, 1);
	assert_period(&res, 0, D(2023, 9, 2), D(2023, 10, 31), 2000 * MICRO, 125800,
	              INTEREST_STATUTORY, 41358904);
	interest_result_free(&res);
}

/*
 * Leap years under each day count, US-NY fixed 9 %, USD 100,000.
 * (a) Due 2024-02-19, paid 2024-03-10: 2024-02-20 .. 02-29 (10 days, includes 29 Feb)
 *     + 03-01 .. 03-10 (10) = 20 days; 100,000 * 0.09 * 20 = 180,000:
 *     actual/365    180,000 / 365 = 493.15068493... -> 493,150,685 micro
 *     actual/actual 180,000 / 366 = 491.80327868... -> 491,803,279 micro
 *     actual/360    180,000 / 360 = 500 exactly     -> 500,000,000 micro
 * (b) actual/actual across 2023-12-31 / 2024-01-01: due 2023-12-21, paid 2024-01-10:
 *     10 days of 2023 / 365 + 10 days of 2024 / 366:
 *     90,000 / 365 + 90,000 / 366 = 246.57534246... + 245.90163934...
 *     = 492.47698181... -> 492,476,982 micro.
 */
static void
test_leap_years(void **state)
{
	const struct interest_change a[] = {
	    {D(2024, 2, 19), 100000 * MICRO},
	    {D(2024, 3, 10), -100000 * MICRO},
	};
	const struct interest_change b[] = {
	    {D(2023, 12, 21), 100000 * MICRO},
	    {D(2024, 1, 10), -100000 * MICRO},
	};
	struct interest_input in = {.due_date = D(2024, 2, 19),
	                            .changes = a,
	                            .nchanges = 2,
	                            .jurisdiction = "US-NY",
	                            .rates = *state};
	static const struct {
		enum daycount dc;
		int64_t factor, want;
	} cases[] = {
	    {DAYCOUNT_ACT_365, 4392, 493150685},
	    {DAYCOUNT_ACT_ACT, 4380, 491803279},
	    {DAYCOUNT_ACT_360, 4453, 500000000},
	};
	struct interest_result res;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		in.daycount = cases[i].dc;
		compute(&in, D(2024, 1, 1), D(2024, 12, 31), &res);
		assert_int_equal(res.nperiods, 1);
		assert_period(&res, 0, D(2024, 2, 20), D(2024, 3, 10), 100000 * MICRO, 90000,
		              INTEREST_STATUTORY, cases[i].want);
		assert_exact(res.total, X(100000 * MICRO) * 90000 * cases[i].factor * 20);
		interest_result_free(&res);
	}
	/* 500 exactly under actual/360: the exact value has no remainder */
	assert_exact(X(100000 * MICRO) * 90000 * 4453 * 20, X(500 * MICRO) * INTEREST_DENOM);

	in.due_date = D(2023, 12, 21);
	in.changes = b;
	in.daycount = DAYCOUNT_ACT_ACT;
	compute(&in, D(2023, 12, 1), D(2024, 1, 31), &res);
	assert_int_equal(res.nperiods, 1);
	assert_period(&res, 0, D(2023, 12, 22), D(2024, 1, 10), 100000 * MICRO, 90000,
	              INTEREST_STATUTORY, 492476982);
	assert_exact(res.total, X(100000 * MICRO) * 90000 * (4392 * 10 + 4380 * 10));
	interest_result_free(&res);
}

/*
 * NL compounds yearly. EUR 10,000 due 2023-06-30, first overdue 2023-07-01, paid
 * 2025-07-10. NL = ECB on 1 Jan / 1 Jul + 8 (12.00, 12.50, 12.25, 11.15, 10.15).
 * Year 1 (2023-07-01 .. 2024-06-30):
 *   2023-07-01 .. 12-31 184 days at 12.00: 10,000 * 0.12 * 184 / 365 = 604.93150684...
 *   2024-01-01 .. 06-30 182 days at 12.50: 10,000 * 0.125 * 182 / 365 = 623.28767123...
 *   year 1 = 448,300 / 365 = 1,228.21917808... -> capitalised 1,228.219178 on 2024-07-01
 *   base B1 = 11,228.219178
 * Year 2 (2024-07-01 .. 2025-06-30):
 *   184 days at 12.25: 11,228.219178 * 0.1225 * 184 / 365 = 693.38098704...
 *   181 days at 11.15: 11,228.219178 * 0.1115 * 181 / 365 = 620.82823381...
 *   year 2 = 1,314.20922085... -> capitalised 1,314.209221 on 2025-07-01
 *   base B2 = 12,542.428399
 * Year 3: 2025-07-01 .. 07-10 10 days at 10.15: 12,542.428399 * 0.1015 * 10 / 365
 *   = 34.87825979... Total 2,577.30665873... -> 2,577,306,659 micro.
 */
static void
test_nl_compounding(void **state)
{
	const struct interest_change ch[] = {
	    {D(2023, 6, 30), 10000 * MICRO},
	    {D(2025, 7, 10), -10000 * MICRO},
	};
	struct interest_input in = {.due_date = D(2023, 6, 30),
	                            .changes = ch,
	                            .nchanges = 2,
	                            .jurisdiction = "NL",
	                            .daycount = DAYCOUNT_ACT_365,
	                            .rates = *state};
	const int64_t b1 = 10000 * MICRO + 1228219178, b2 = b1 + 1314209221;
	struct interest_result res;
	interest_exact_t y1 = X(10000 * MICRO) * 4392 * (120000 * 184 + 125000 * 182);
	interest_exact_t y2 = X(b1) * 4392 * (122500 * 184 + 111500 * 181);
	interest_exact_t y3 = X(b2) * 4392 * 101500 * 10;

	assert_int_equal(micro(y1), 1228219178);
	assert_int_equal(micro(y2), 1314209221);
	compute(&in, D(2023, 1, 1), D(2025, 12, 31), &res);
	assert_int_equal(res.nperiods, 5);
	assert_period(&res, 0, D(2023, 7, 1), D(2023, 12, 31), 10000 * MICRO, 120000,
	              INTEREST_STATUTORY, 604931507);
	assert_period(&res, 1, D(2024, 1, 1), D(2024, 6, 30), 10000 * MICRO, 125000,
	              INTEREST_STATUTORY, 623287671);
	assert_period(&res, 2, D(2024, 7, 1), D(2024, 12, 31), b1, 122500, INTEREST_STATUTORY,
	              693380987);
	assert_period(&res, 3, D(2025, 1, 1), D(2025, 6, 30), b1, 111500, INTEREST_STATUTORY,
	              620828234);
	assert_period(&res, 4, D(2025, 7, 1), D(2025, 7, 10), b2, 101500, INTEREST_STATUTORY,
	              34878260);
	assert_exact(res.total, y1 + y2 + y3);
	assert_int_equal(micro(res.total), 2577306659);
	interest_result_free(&res);

	/* a range that starts after the first anniversary still sees the capitalised base */
	compute(&in, D(2025, 7, 1), D(2025, 7, 10), &res);
	assert_int_equal(res.nperiods, 1);
	assert_period(&res, 0, D(2025, 7, 1), D(2025, 7, 10), b2, 101500, INTEREST_STATUTORY,
	              34878260);
	assert_exact(res.total, y3);
	interest_result_free(&res);

	/* the same debt in IT (no compounding): the base stays 10,000 */
	in.jurisdiction = "IT";
	compute(&in, D(2025, 7, 1), D(2025, 7, 10), &res);
	assert_period(&res, 0, D(2025, 7, 1), D(2025, 7, 10), 10000 * MICRO, 101500,
	              INTEREST_STATUTORY,
	              27808219); /* 10,000 * 0.1015 * 10 / 365 = 27.80821917... */
	interest_result_free(&res);
}

/*
 * Partial payments and a reversal, US-CA fixed 10 %, actual/365, USD 7,300 due
 * 2025-03-31 (one day of 7,300 at 10 % is exactly 2.00):
 *   payment 2,000 received 04-10  -> 5,300 from 04-11
 *   payment 1,650 received 04-20  -> 3,650 from 04-21
 *   reversal of it dated 04-25    -> 5,300 from 04-26
 *   payment 5,300 received 04-30  -> paid; nothing from 05-01
 * 04-01 .. 04-10 10 days 7,300: 7,300 * 0.1 * 10 / 365 = 20.00
 * 04-11 .. 04-20 10 days 5,300: 5,300 / 365           = 14.52054794... -> 14.520548
 * 04-21 .. 04-25  5 days 3,650: 3,650 * 0.1 * 5 / 365  =  5.00
 * 04-26 .. 04-30  5 days 5,300: 2,650 / 365           =  7.26027397... -> 7.260274
 * total 25 + 7,950 / 365 = 46.78082191... -> 46,780,822 micro.
 */
static void
test_partial_payments(void **state)
{
	const struct interest_change ch[] = {
	    {D(2025, 3, 31), 7300 * MICRO},  {D(2025, 4, 10), -2000 * MICRO},
	    {D(2025, 4, 20), -1650 * MICRO}, {D(2025, 4, 25), 1650 * MICRO},
	    {D(2025, 4, 30), -5300 * MICRO},
	};
	/* the same with a payment and its reversal on one day (R6.1: a reversal undoes
	 * the allocation as of the payment's received date): no effect */
	const struct interest_change ch2[] = {
	    {D(2025, 3, 31), 7300 * MICRO},  {D(2025, 4, 10), -2000 * MICRO},
	    {D(2025, 4, 15), -1000 * MICRO}, {D(2025, 4, 15), 1000 * MICRO},
	    {D(2025, 4, 20), -1650 * MICRO}, {D(2025, 4, 25), 1650 * MICRO},
	    {D(2025, 4, 30), -5300 * MICRO},
	};
	struct interest_input in = {.due_date = D(2025, 3, 31),
	                            .changes = ch,
	                            .nchanges = 5,
	                            .contractual_rate = 50000,
	                            .jurisdiction = "US-CA",
	                            .daycount = DAYCOUNT_ACT_365,
	                            .rates = *state};
	struct interest_result res, res2;

	compute(&in, D(2025, 3, 1), D(2025, 5, 31), &res);
	assert_int_equal(res.nperiods, 4);
	assert_period(&res, 0, D(2025, 4, 1), D(2025, 4, 10), 7300 * MICRO, 100000,
	              INTEREST_STATUTORY, 20000000);
	assert_period(&res, 1, D(2025, 4, 11), D(2025, 4, 20), 5300 * MICRO, 100000,
	              INTEREST_STATUTORY, 14520548);
	assert_period(&res, 2, D(2025, 4, 21), D(2025, 4, 25), 3650 * MICRO, 100000,
	              INTEREST_STATUTORY, 5000000);
	assert_period(&res, 3, D(2025, 4, 26), D(2025, 4, 30), 5300 * MICRO, 100000,
	              INTEREST_STATUTORY, 7260274);
	assert_exact(res.total,
	             X(MICRO) * 100000 * 4392 * (7300 * 10 + 5300 * 10 + 3650 * 5 + 5300 * 5));
	assert_int_equal(micro(res.total), 46780822);

	in.changes = ch2;
	in.nchanges = 7;
	compute(&in, D(2025, 3, 1), D(2025, 5, 31), &res2);
	assert_int_equal(res2.nperiods, res.nperiods);
	assert_exact(res2.total, res.total);
	interest_result_free(&res2);
	interest_result_free(&res);

	/* a reversal after full payment reopens interest: pay all on 04-10, bounce
	 * dated 04-20 -> 7,300 on 04-01 .. 04-10 and again from 04-21 */
	const struct interest_change ch3[] = {
	    {D(2025, 3, 31), 7300 * MICRO},
	    {D(2025, 4, 10), -7300 * MICRO},
	    {D(2025, 4, 20), 7300 * MICRO},
	};
	in.changes = ch3;
	in.nchanges = 3;
	compute(&in, D(2025, 4, 1), D(2025, 4, 30), &res);
	assert_int_equal(res.nperiods, 2);
	assert_period(&res, 0, D(2025, 4, 1), D(2025, 4, 10), 7300 * MICRO, 100000,
	              INTEREST_STATUTORY, 20000000);
	assert_period(&res, 1, D(2025, 4, 21), D(2025, 4, 30), 7300 * MICRO, 100000,
	              INTEREST_STATUTORY, 20000000);
	interest_result_free(&res);
}

/*
 * Contractual against statutory (DE, EUR 5,000 due 2024-06-10 paid 2024-07-20, as in
 * test_de_crossing_july):
 * - 15 % beats 12.62 and 12.37: one contractual period of 40 days,
 *   5,000 * 0.15 * 40 / 365 = 30,000 / 365 = 82.19178082... -> 82,191,781 micro;
 * - 12.50 loses to 12.62 in June (statutory) and beats 12.37 in July (contractual):
 *   July 5,000 * 0.125 * 20 / 365 = 12,500 / 365 = 34.24657534... -> 34,246,575 micro;
 * - 12.62 ties in June: the source is statutory.
 */
static void
test_contractual_vs_statutory(void **state)
{
	const struct interest_change ch[] = {
	    {D(2024, 6, 10), 5000 * MICRO},
	    {D(2024, 7, 20), -5000 * MICRO},
	};
	struct interest_input in = {.due_date = D(2024, 6, 10),
	                            .changes = ch,
	                            .nchanges = 2,
	                            .contractual_rate = 150000,
	                            .jurisdiction = "DE",
	                            .daycount = DAYCOUNT_ACT_365,
	                            .rates = *state};
	struct interest_result res;

	compute(&in, D(2024, 6, 1), D(2024, 12, 31), &res);
	assert_true(res.has_rule);
	assert_int_equal(res.nperiods, 1);
	assert_period(&res, 0, D(2024, 6, 11), D(2024, 7, 20), 5000 * MICRO, 150000,
	              INTEREST_CONTRACTUAL, 82191781);
	interest_result_free(&res);

	in.contractual_rate = 125000;
	compute(&in, D(2024, 6, 1), D(2024, 12, 31), &res);
	assert_int_equal(res.nperiods, 2);
	assert_period(&res, 0, D(2024, 6, 11), D(2024, 6, 30), 5000 * MICRO, 126200,
	              INTEREST_STATUTORY, 34575342);
	assert_period(&res, 1, D(2024, 7, 1), D(2024, 7, 20), 5000 * MICRO, 125000,
	              INTEREST_CONTRACTUAL, 34246575);
	interest_result_free(&res);

	in.contractual_rate = 126200;
	compute(&in, D(2024, 6, 1), D(2024, 6, 30), &res);
	assert_int_equal(res.nperiods, 1);
	assert_period(&res, 0, D(2024, 6, 11), D(2024, 6, 30), 5000 * MICRO, 126200,
	              INTEREST_STATUTORY, 34575342);
	interest_result_free(&res);
}

/*
 * No rule: jurisdiction "CH" (none shipped), contractual 8 %, CHF 1,000 due
 * 2025-01-31 paid 2025-03-02: 28 + 2 = 30 days,
 * 1,000 * 0.08 * 30 / 365 = 2,400 / 365 = 6.57534246... -> 6,575,342 micro.
 */
static void
test_no_rule(void **state)
{
	const struct interest_change ch[] = {
	    {D(2025, 1, 31), 1000 * MICRO},
	    {D(2025, 3, 2), -1000 * MICRO},
	};
	struct interest_input in = {.due_date = D(2025, 1, 31),
	                            .changes = ch,
	                            .nchanges = 2,
	                            .contractual_rate = 80000,
	                            .jurisdiction = "CH",
	                            .daycount = DAYCOUNT_ACT_365,
	                            .rates = *state};
	const char *const jurs[] = {"CH", NULL, ""};
	struct interest_result res;

	for (size_t i = 0; i < 4; i++) {
		in.jurisdiction = jurs[i < 3 ? i : 0];
		in.rates = i == 3 ? NULL : *state;
		compute(&in, D(2025, 1, 1), D(2025, 12, 31), &res);
		assert_false(res.has_rule);
		assert_int_equal(res.nperiods, 1);
		assert_period(&res, 0, D(2025, 2, 1), D(2025, 3, 2), 1000 * MICRO, 80000,
		              INTEREST_CONTRACTUAL, 6575342);
		interest_result_free(&res);
	}
	/* contractual 0 and no rule: a zero-rate period, no interest */
	in.contractual_rate = 0;
	compute(&in, D(2025, 1, 1), D(2025, 12, 31), &res);
	assert_int_equal(res.nperiods, 1);
	assert_period(&res, 0, D(2025, 2, 1), D(2025, 3, 2), 1000 * MICRO, 0, INTEREST_CONTRACTUAL,
	              0);
	interest_result_free(&res);
}

/* interest(a..t) + interest(t+1..b) == interest(a..b) for every t, and the sum over
 * calendar months (how interest is posted) equals the whole. */
static void
check_split(const struct interest_input *in, int32_t a, int32_t b)
{
	struct interest_result whole, left, right, m;
	interest_exact_t months = 0;

	compute(in, a, b, &whole);
	assert_true(whole.total > 0);
	for (int32_t t = a - 1; t <= b; t++) {
		compute(in, a, t, &left);
		compute(in, t + 1, b, &right);
		if (left.total + right.total != whole.total)
			fail_msg("split at day %d breaks additivity", (int)t);
		interest_result_free(&left);
		interest_result_free(&right);
	}
	for (int32_t s = civil_month_start(a); s <= b;) {
		int32_t next;

		assert_int_equal(civil_add_months(s, 1, &next), 0);
		compute(in, s, next - 1, &m);
		months += m.total;
		interest_result_free(&m);
		s = next;
	}
	assert_exact(months, whole.total);
	interest_result_free(&whole);
}

/*
 * R6.4: a change of the contract terms (PATCH of the account) applies from the
 * day after it; earlier days keep the terms of their day. EUR 1,000 due
 * 2024-06-10, paid 2024-07-10, actual/365.
 * a) no rule, 12 % through 2024-06-30, then 20 %:
 *    06-11..06-30, 20 days: 1,000 * 0.12 * 20 / 365 = 6.57534246 -> 6,575,342 micro
 *    07-01..07-10, 10 days: 1,000 * 0.20 * 10 / 365 = 5.47945205 -> 5,479,452 micro
 * b) US-NY (fixed 9 %) with 8 % contractual through 2024-06-30, then CH (no rule):
 *    20 days at 9 % statutory: 1,000 * 0.09 * 20 / 365 = 4.93150685 -> 4,931,507 micro
 *    10 days at 8 % contractual: 1,000 * 0.08 * 10 / 365 = 2.19178082 -> 2,191,781 micro
 */
static void
test_terms_history(void **state)
{
	const struct interest_change ch[] = {
	    {D(2024, 6, 10), 1000 * MICRO},
	    {D(2024, 7, 10), -1000 * MICRO},
	};
	const struct interest_terms rate_change[] = {{D(2024, 6, 30), 120000, ""}};
	const struct interest_terms jur_change[] = {{D(2024, 6, 30), 80000, "US-NY"}};
	struct interest_input in = {.due_date = D(2024, 6, 10),
	                            .changes = ch,
	                            .nchanges = 2,
	                            .contractual_rate = 200000,
	                            .jurisdiction = "",
	                            .terms = rate_change,
	                            .nterms = 1,
	                            .daycount = DAYCOUNT_ACT_365,
	                            .rates = *state};
	struct interest_result res;

	compute(&in, D(2024, 1, 1), D(2024, 12, 31), &res);
	assert_false(res.has_rule);
	assert_int_equal(res.nperiods, 2);
	assert_period(&res, 0, D(2024, 6, 11), D(2024, 6, 30), 1000 * MICRO, 120000,
	              INTEREST_CONTRACTUAL, 6575342);
	assert_period(&res, 1, D(2024, 7, 1), D(2024, 7, 10), 1000 * MICRO, 200000,
	              INTEREST_CONTRACTUAL, 5479452);
	assert_exact(res.total,
	             X(1000 * MICRO) * 120000 * 4392 * 20 + X(1000 * MICRO) * 200000 * 4392 * 10);
	interest_result_free(&res);
	check_split(&in, D(2024, 6, 1), D(2024, 7, 31));
	/* a change before the first overdue day changes nothing that bears interest */
	const struct interest_terms early[] = {{D(2024, 6, 10), 10000, ""}};
	in.terms = early;
	compute(&in, D(2024, 1, 1), D(2024, 12, 31), &res);
	assert_int_equal(res.nperiods, 1);
	assert_period(&res, 0, D(2024, 6, 11), D(2024, 7, 10), 1000 * MICRO, 200000,
	              INTEREST_CONTRACTUAL, 16438356); /* 1,000 * 0.2 * 30 / 365 */
	interest_result_free(&res);

	in.terms = jur_change;
	in.contractual_rate = 80000;
	in.jurisdiction = "CH";
	compute(&in, D(2024, 1, 1), D(2024, 12, 31), &res);
	assert_false(res.has_rule); /* of the current jurisdiction */
	assert_int_equal(res.nperiods, 2);
	assert_period(&res, 0, D(2024, 6, 11), D(2024, 6, 30), 1000 * MICRO, 90000,
	              INTEREST_STATUTORY, 4931507);
	assert_period(&res, 1, D(2024, 7, 1), D(2024, 7, 10), 1000 * MICRO, 80000,
	              INTEREST_CONTRACTUAL, 2191781);
	interest_result_free(&res);
	check_split(&in, D(2024, 6, 1), D(2024, 7, 31));
}

static void
test_terms_errors(void **state)
{
	const struct interest_change ch[] = {{D(2024, 6, 10), 1000 * MICRO}};
	const struct interest_terms unsorted[] = {{D(2024, 7, 1), 1, ""}, {D(2024, 7, 1), 2, ""}};
	const struct interest_terms negative[] = {{D(2024, 7, 1), -1, ""}};
	struct interest_input in = {.due_date = D(2024, 6, 10),
	                            .changes = ch,
	                            .nchanges = 1,
	                            .contractual_rate = 120000,
	                            .daycount = DAYCOUNT_ACT_365,
	                            .rates = *state};
	struct interest_result res;
	char err[128];

	in.terms = unsorted;
	in.nterms = 2;
	assert_int_equal(interest_compute(&in, D(2024, 6, 1), D(2024, 8, 1), &res, err, sizeof err),
	                 INTEREST_EINVAL);
	in.terms = negative;
	in.nterms = 1;
	assert_int_equal(interest_compute(&in, D(2024, 6, 1), D(2024, 8, 1), &res, err, sizeof err),
	                 INTEREST_EINVAL);
	in.terms = NULL;
	assert_int_equal(interest_compute(&in, D(2024, 6, 1), D(2024, 8, 1), &res, err, sizeof err),
	                 INTEREST_EINVAL);
}

static void
test_split_property(void **state)
{
	const struct interest_change nl[] = {
	    {D(2023, 6, 30), 10000 * MICRO},
	    {D(2024, 3, 3), -2500 * MICRO},
	    {D(2024, 9, 9), 1000 * MICRO},
	    {D(2025, 7, 10), -8500 * MICRO},
	};
	const struct interest_change pp[] = {
	    {D(2025, 3, 31), 7300 * MICRO},
	    {D(2025, 4, 10), -2000 * MICRO},
	    {D(2025, 4, 20), -1650 * MICRO},
	    {D(2025, 4, 25), 1650 * MICRO},
	};
	struct interest_input in = {.due_date = D(2023, 6, 30),
	                            .changes = nl,
	                            .nchanges = 4,
	                            .contractual_rate = 115000,
	                            .jurisdiction = "NL",
	                            .daycount = DAYCOUNT_ACT_ACT,
	                            .rates = *state};

	check_split(&in, D(2023, 6, 20), D(2025, 8, 1));
	in.jurisdiction = "DE";
	in.daycount = DAYCOUNT_ACT_360;
	check_split(&in, D(2023, 6, 20), D(2025, 8, 1));
	in.jurisdiction = "GB";
	in.daycount = DAYCOUNT_ACT_365;
	check_split(&in, D(2023, 6, 20), D(2025, 8, 1));
	in.due_date = D(2025, 3, 31);
	in.changes = pp;
	in.jurisdiction = "US-CA";
	check_split(&in, D(2025, 3, 1), D(2025, 12, 31));
}

static void
test_errors(void **state)
{
	const struct interest_change unsorted[] = {
	    {D(2025, 3, 31), 1000 * MICRO},
	    {D(2025, 3, 30), -1 * MICRO},
	};
	const struct interest_change ok[] = {{D(2021, 5, 31), 1000 * MICRO}};
	const struct interest_change huge[] = {{D(2025, 1, 1), INT64_MAX}, {D(2025, 1, 2), 1}};
	struct interest_input in = {.due_date = D(2025, 3, 31),
	                            .changes = unsorted,
	                            .nchanges = 2,
	                            .jurisdiction = "CH",
	                            .daycount = DAYCOUNT_ACT_365,
	                            .rates = *state};
	struct interest_result res;
	char err[128];

	assert_int_equal(
	    interest_compute(&in, D(2025, 1, 1), D(2025, 12, 31), &res, err, sizeof(err)),
	    INTEREST_EINVAL);
	interest_result_free(&res);
	in.changes = ok;
	in.nchanges = 1;
	in.contractual_rate = -1;
	assert_int_equal(
	    interest_compute(&in, D(2025, 1, 1), D(2025, 12, 31), &res, err, sizeof(err)),
	    INTEREST_EINVAL);
	in.contractual_rate = 0;
	in.daycount = (enum daycount)9;
	assert_int_equal(
	    interest_compute(&in, D(2025, 1, 1), D(2025, 12, 31), &res, err, sizeof(err)),
	    INTEREST_EINVAL);
	in.daycount = DAYCOUNT_ACT_365;
	assert_int_equal(
	    interest_compute(&in, CIVIL_DAY_NONE, D(2025, 12, 31), &res, err, sizeof(err)),
	    INTEREST_EINVAL);
	assert_int_equal(interest_compute(NULL, 0, 0, &res, err, sizeof(err)), INTEREST_EINVAL);

	/* GB debt first overdue 2021-06-01: Bank Rate on 31 Dec 2020 is not shipped */
	in.due_date = D(2021, 5, 31);
	in.jurisdiction = "GB";
	assert_int_equal(
	    interest_compute(&in, D(2021, 1, 1), D(2021, 12, 31), &res, err, sizeof(err)),
	    INTEREST_ENORATE);
	assert_string_equal(err, "jurisdiction GB: no statutory rate for 2021-06-01");
	assert_int_equal(res.nperiods, 0);
	/* HR before 2023: a debt reaching into 2023 fails for its 2022 days only */
	in.due_date = D(2022, 12, 20);
	in.jurisdiction = "HR";
	assert_int_equal(
	    interest_compute(&in, D(2022, 12, 1), D(2023, 1, 31), &res, err, sizeof(err)),
	    INTEREST_ENORATE);
	assert_int_equal(res.nperiods, 0);
	compute(&in, D(2023, 1, 1), D(2023, 1, 31), &res);
	assert_int_equal(res.nperiods, 1);
	interest_result_free(&res);

	/* overflow: the balance itself, then the exact amount over a very long range */
	in.jurisdiction = NULL;
	in.due_date = D(2024, 12, 31);
	in.changes = huge;
	in.nchanges = 2;
	assert_int_equal(
	    interest_compute(&in, D(2025, 1, 1), D(2025, 1, 5), &res, err, sizeof(err)),
	    INTEREST_ERANGE);
	assert_int_equal(res.nperiods, 0);
	in.nchanges = 1;
	in.contractual_rate = INT32_MAX;
	in.daycount = DAYCOUNT_ACT_360;
	assert_int_equal(
	    interest_compute(&in, D(2025, 1, 1), CIVIL_DAY_MAX, &res, err, sizeof(err)),
	    INTEREST_ERANGE);
	assert_int_equal(res.nperiods, 0);
	/* a month of it fits in 128 bits but not in int64_t micro-units */
	assert_int_equal(
	    interest_compute(&in, D(2025, 1, 1), D(2025, 1, 31), &res, err, sizeof(err)),
	    INTEREST_ERANGE);
	/* at 0.0001 % it fits: the balance applies from 2025-01-02 (30 days):
	 * INT64_MAX * 1e-6 * 30 / 360 = 768,614,336,404.56... micro */
	in.contractual_rate = 1;
	compute(&in, D(2025, 1, 1), D(2025, 1, 31), &res);
	assert_exact(res.total, X(INT64_MAX) * 1 * 4453 * 30);
	assert_int_equal(micro(res.total), INT64_C(768614336405));
	interest_result_free(&res);
}

/* fallback_contractual: a day without a statutory rate bears the contractual
 * rate, the other days keep their statutory rate, and every date range and
 * split agrees (R6.4, R6.5). */
static void
test_missing_rate_fallback(void **state)
{
	const struct interest_change hr[] = {{D(2022, 12, 16), 1000 * MICRO}};
	struct interest_input in = {.due_date = D(2022, 12, 16),
	                            .changes = hr,
	                            .nchanges = 1,
	                            .contractual_rate = 50000,
	                            .jurisdiction = "HR",
	                            .daycount = DAYCOUNT_ACT_365,
	                            .rates = *state,
	                            .fallback_contractual = true};
	struct interest_result res;
	struct ratetable *tbl;
	struct ratetable_rule xf = {.jurisdiction = "XF",
	                            .mode = RATETABLE_FIXED,
	                            .fixed_rate = 90000,
	                            .valid_from = D(2023, 1, 10)};
	const struct interest_change fx[] = {{D(2023, 1, 1), 1000 * MICRO}};

	/* HR: 17-31 Dec 2022 at the contractual 5 % (no HR rate before 2023):
	 * 1,000 x 5 % x 15 / 365 = 2.0547945...; January 2023 at ECB 2.50 + 8:
	 * 1,000 x 10.5 % x 31 / 365 = 8.9178082... */
	compute(&in, D(2022, 12, 1), D(2023, 1, 31), &res);
	assert_true(res.has_rule);
	assert_int_equal(res.nperiods, 2);
	assert_period(&res, 0, D(2022, 12, 17), D(2022, 12, 31), 1000 * MICRO, 50000,
	              INTEREST_CONTRACTUAL, 2054795);
	assert_period(&res, 1, D(2023, 1, 1), D(2023, 1, 31), 1000 * MICRO, 105000,
	              INTEREST_STATUTORY, 8917808);
	assert_exact(res.total,
	             X(1000 * MICRO) * 50000 * 4392 * 15 + X(1000 * MICRO) * 105000 * 4392 * 31);
	assert_int_equal(res.missing_days, 15);
	interest_result_free(&res);
	/* January alone: no missing day */
	compute(&in, D(2023, 1, 1), D(2023, 1, 31), &res);
	assert_int_equal(res.missing_days, 0);
	assert_period(&res, 0, D(2023, 1, 1), D(2023, 1, 31), 1000 * MICRO, 105000,
	              INTEREST_STATUTORY, 8917808);
	interest_result_free(&res);
	check_split(&in, D(2022, 12, 1), D(2023, 3, 31));

	/* a fixed rule from a day inside a month: 2-9 Jan at 5 % (8 days =
	 * 1.0958904...), from 10 Jan at 9 % (22 days = 5.4246575...) */
	tbl = ratetable_new();
	assert_int_equal(ratetable_add_rule(tbl, &xf, NULL, 0), 0);
	in.rates = tbl;
	in.jurisdiction = "XF";
	in.due_date = D(2023, 1, 1);
	in.changes = fx;
	compute(&in, D(2023, 1, 1), D(2023, 1, 31), &res);
	assert_int_equal(res.nperiods, 2);
	assert_period(&res, 0, D(2023, 1, 2), D(2023, 1, 9), 1000 * MICRO, 50000,
	              INTEREST_CONTRACTUAL, 1095890);
	assert_period(&res, 1, D(2023, 1, 10), D(2023, 1, 31), 1000 * MICRO, 90000,
	              INTEREST_STATUTORY, 5424658);
	assert_int_equal(res.missing_days, 8);
	interest_result_free(&res);
	check_split(&in, D(2023, 1, 1), D(2023, 2, 28));
	/* without the fallback such a range is an error */
	in.fallback_contractual = false;
	assert_int_equal(interest_compute(&in, D(2023, 1, 1), D(2023, 1, 31), &res, NULL, 0),
	                 INTEREST_ENORATE);
	interest_result_free(&res);
	ratetable_free(tbl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_daycount),
	    cmocka_unit_test(test_round_micro),
	    cmocka_unit_test_setup_teardown(test_gb_worked_example, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gb_crossing_new_year, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_de_crossing_july, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_at_half_year, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_leap_years, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_nl_compounding, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_partial_payments, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_contractual_vs_statutory, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_rule, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_split_property, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_rate_fallback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_terms_history, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_terms_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
