/*
 * interest.h: the late-payment interest engine (R6.3, R6.4, R6.5).
 *
 * Interest is a pure function of an invoice's due date, the dated changes of its
 * interest-bearing (usage) balance, the contractual rate, the jurisdiction's
 * statutory rule and the day count. Conventions:
 *
 * - Day d bears interest when d > due_date (overdue from the day after the due
 *   date). A change dated c (opening principal on the due date, a payment as a
 *   negative amount on its received date, a reversal as a positive amount)
 *   applies to the days after c: a payment received on P still bears interest
 *   on P. An invoice due 1 Aug and paid in full on 15 Sep bears 45 days.
 * - The rate for day d is max(contractual, statutory(d) for a debt first
 *   overdue on due_date + 1). On a tie the source is "statutory": the law gives
 *   the rate, and the contract only wins when strictly higher. Without a rule
 *   for the jurisdiction (or with jurisdiction NULL/""), the contractual rate
 *   applies and the source is "contractual". A negative result is taken as 0.
 * - A day with a balance <= 0 bears nothing (overpayment is account credit).
 * - Simple daily interest: base * rate / 1e6 / denominator(d) micro-units
 *   (rate in 0.0001 % per year). Amounts stay exact: an exact amount is an
 *   integer count of 1/INTEREST_DENOM micro-units, and sums are exact, so
 *   interest(a..b) + interest(b+1..c) == interest(a..c) to the last unit.
 * - Terms (contractual rate, jurisdiction) are those in force on the day:
 *   earlier terms apply through the day of their change (struct interest_terms).
 *   Compounding is decided day by day by that day's rule.
 * - Compounding (NL, rule compounding "yearly"): year k of the debt runs from
 *   the (k-1)-th to the day before the k-th anniversary of the first overdue day
 *   (anniversaries by civil_add_months(since, 12 k), so 29 Feb -> 28 Feb). On
 *   each anniversary the interest accrued in that year, rounded to micro-units
 *   (half away from zero), is capitalised: it joins the base from that day on.
 *   The base is usage balance + capitalised interest while the usage balance is
 *   positive, 0 once it is settled. The engine only sees the usage balance, so
 *   it assumes the year's interest is unpaid on the anniversary. Compounding
 *   applies to whichever rate (contractual or statutory) won on each day.
 *
 * A period is a maximal run of consecutive days with the same base, rate and
 * source; it is not split at year ends even when the day count changes
 * denominator there (actual/actual).
 */
#ifndef CREDITD_INTEREST_H
#define CREDITD_INTEREST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daycount.h"
#include "ratetable.h"

/* An exact amount in units of 1/INTEREST_DENOM micro-units. */
__extension__ typedef __int128 interest_exact_t;
#define INTEREST_DENOM (INT64_C(1000000) * DAYCOUNT_LCM) /* 1.60308e12 */

enum interest_err {
	INTEREST_EINVAL = -1,  /* bad input (unsorted changes, bad day, negative rate ...) */
	INTEREST_ERANGE = -2,  /* arithmetic overflow */
	INTEREST_ENORATE = -3, /* the jurisdiction has a rule but no statutory rate for a day */
};

enum interest_source {
	INTEREST_CONTRACTUAL,
	INTEREST_STATUTORY,
};

struct interest_change {
	int32_t day;    /* received date; the opening principal is dated the due date */
	int64_t amount; /* micro-units: principal and reversals > 0, payments < 0 */
};

/* Contract terms that applied before a change (R6.4): through the day
 * `through`, the debt bore `contractual_rate` and the statutory rule of
 * `jurisdiction`. A change of either (PATCH of the account) applies from the
 * day after the day it was made, so interest already accrued stays as it was. */
struct interest_terms {
	int32_t through;
	int32_t contractual_rate; /* >= 0 */
	const char *jurisdiction; /* NULL or "" for none */
};

struct interest_input {
	int32_t due_date;
	const struct interest_change *changes; /* sorted by day (non-decreasing) */
	size_t nchanges;
	int32_t contractual_rate; /* >= 0, 0.0001 % per year */
	const char *jurisdiction; /* NULL or "" for none */
	/* The terms before the account's current ones, sorted by `through`
	 * (strictly increasing); the days after the last `through` bear
	 * contractual_rate and jurisdiction above. NULL/0: always the current. */
	const struct interest_terms *terms;
	size_t nterms;
	enum daycount daycount;
	const struct ratetable *rates; /* may be NULL: contractual only */
	/* A day for which the jurisdiction's rule has no statutory rate (before the
	 * rule's valid_from, or before its series' first value): false fails with
	 * INTEREST_ENORATE; true takes the contractual rate for that day only (the
	 * other days keep their statutory rate) and counts it in missing_days. */
	bool fallback_contractual;
};

struct interest_period {
	int32_t from, to; /* inclusive days */
	int32_t days;
	int64_t balance; /* the interest-bearing base (usage + capitalised interest) */
	int32_t rate;
	enum interest_source source;
	int64_t amount; /* exact rounded to micro-units (display only) */
	interest_exact_t exact;
};

struct interest_result {
	struct interest_period *periods;
	size_t nperiods;
	interest_exact_t total; /* exact sum of the periods */
	bool has_rule;          /* the jurisdiction has a statutory rule */
	int32_t missing_days;   /* days at the contractual rate for lack of a statutory
	                           rate (fallback_contractual) */
};

/*
 * Interest for the days from..to (inclusive; empty when to < from). *out is
 * always initialised; free it with interest_result_free() (also after an error).
 * 0, or a negative enum interest_err with a reason in errbuf.
 */
int interest_compute(const struct interest_input *in, int32_t from, int32_t to,
                     struct interest_result *out, char *errbuf, size_t errlen);
void interest_result_free(struct interest_result *res);

/* Exact amount to micro-units, half away from zero; -1 if it does not fit. */
int interest_round_micro(interest_exact_t exact, int64_t *micro);
/* "contractual" / "statutory". */
const char *interest_source_name(enum interest_source source);

#endif
