/* interest.c: late-payment interest engine (see interest.h for the conventions). */
#include "interest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "civil.h"
#include "xmalloc.h"

int
interest_round_micro(interest_exact_t exact, int64_t *micro)
{
	interest_exact_t q = exact / INTEREST_DENOM, r = exact % INTEREST_DENOM;

	/* r has the sign of exact (C truncates); round the magnitude half up. */
	if (r < 0)
		r = -r;
	if (2 * r >= INTEREST_DENOM)
		q += exact < 0 ? -1 : 1;
	if (q < INT64_MIN || q > INT64_MAX)
		return -1;
	*micro = (int64_t)q;
	return 0;
}

const char *
interest_source_name(enum interest_source source)
{
	return source == INTEREST_STATUTORY ? "statutory" : "contractual";
}

void
interest_result_free(struct interest_result *res)
{
	if (res == NULL)
		return;
	free(res->periods);
	res->periods = NULL;
	res->nperiods = 0;
}

static int fail(char *errbuf, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail(char *errbuf, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (errbuf != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(errbuf, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* First day of the half-year after day's; CIVIL_DAY_MAX + 1 past 9999-12-31. */
static int32_t
next_half_year(int32_t day)
{
	int32_t n;

	if (civil_add_months(civil_half_year_start(day), 6, &n) < 0)
		return CIVIL_DAY_MAX + 1;
	return n;
}

static int32_t
next_year(int32_t day)
{
	int32_t start = civil_year_start(day);

	return start + civil_days_in_year(civil_year(day));
}

/* The k-th anniversary of since (k >= 1); CIVIL_DAY_MAX + 1 past 9999. */
static int32_t
anniversary(int32_t since, int k)
{
	int32_t a;

	if (k > (CIVIL_YEAR_MAX + 1) || civil_add_months(since, 12 * k, &a) < 0)
		return CIVIL_DAY_MAX + 1;
	return a;
}

static void
emit(struct interest_result *out, size_t *cap, int32_t from, int32_t to, int64_t base, int32_t rate,
     enum interest_source source, interest_exact_t num)
{
	struct interest_period *p;

	if (out->nperiods > 0) {
		p = &out->periods[out->nperiods - 1];
		if (p->to + 1 == from && p->balance == base && p->rate == rate &&
		    p->source == source) {
			p->to = to;
			p->days += to - from + 1;
			p->exact += num; /* bounded by the checked total */
			return;
		}
	}
	if (out->nperiods == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		out->periods = xreallocarray(out->periods, *cap, sizeof(*out->periods));
	}
	p = &out->periods[out->nperiods++];
	p->from = from;
	p->to = to;
	p->days = to - from + 1;
	p->balance = base;
	p->rate = rate;
	p->source = source;
	p->exact = num;
	p->amount = 0;
}

/* The statutory rule of a jurisdiction, or NULL (none, or no rate tables). */
static const struct ratetable_rule *
rule_of(const struct interest_input *in, const char *jurisdiction)
{
	if (in->rates == NULL || jurisdiction == NULL || jurisdiction[0] == '\0')
		return NULL;
	return ratetable_get_rule(in->rates, jurisdiction);
}

static bool
compounds(const struct ratetable_rule *rule)
{
	return rule != NULL && rule->compounding == RATETABLE_COMPOUND_YEARLY;
}

/* The terms for day d: rate and jurisdiction, and the first day of other
 * terms (CIVIL_DAY_MAX + 1 for the current ones). *ti only moves forward. */
static void
terms_of(const struct interest_input *in, int32_t d, size_t *ti, int32_t *rate, const char **jur,
         int32_t *until)
{
	while (*ti < in->nterms && in->terms[*ti].through < d)
		(*ti)++;
	if (*ti < in->nterms) {
		*rate = in->terms[*ti].contractual_rate;
		*jur = in->terms[*ti].jurisdiction;
		*until = in->terms[*ti].through + 1;
	} else {
		*rate = in->contractual_rate;
		*jur = in->jurisdiction;
		*until = CIVIL_DAY_MAX + 1;
	}
}

int
interest_compute(const struct interest_input *in, int32_t from, int32_t to,
                 struct interest_result *out, char *errbuf, size_t errlen)
{
	const struct ratetable_rule *rule;
	int32_t since, d, anniv;
	int64_t balance = 0, capitalised = 0;
	interest_exact_t year_acc = 0;
	size_t ci = 0, ti = 0, cap = 0;
	bool compounding;
	int k = 1;
	char buf[CIVIL_DATE_LEN];

	memset(out, 0, sizeof(*out));
	if (in == NULL)
		return fail(errbuf, errlen, INTEREST_EINVAL, "no input");
	if (!civil_day_valid(in->due_date) || in->due_date >= CIVIL_DAY_MAX ||
	    !civil_day_valid(from) || !civil_day_valid(to))
		return fail(errbuf, errlen, INTEREST_EINVAL, "date out of range");
	if (in->contractual_rate < 0)
		return fail(errbuf, errlen, INTEREST_EINVAL, "negative contractual rate");
	if (daycount_name(in->daycount) == NULL)
		return fail(errbuf, errlen, INTEREST_EINVAL, "unknown day count");
	if (in->nchanges > 0 && in->changes == NULL)
		return fail(errbuf, errlen, INTEREST_EINVAL, "no changes");
	for (size_t i = 0; i < in->nchanges; i++) {
		if (!civil_day_valid(in->changes[i].day) ||
		    (i > 0 && in->changes[i].day < in->changes[i - 1].day))
			return fail(errbuf, errlen, INTEREST_EINVAL,
			            "balance changes must be valid days in order");
	}
	if (in->nterms > 0 && in->terms == NULL)
		return fail(errbuf, errlen, INTEREST_EINVAL, "no terms");
	for (size_t i = 0; i < in->nterms; i++) {
		if (!civil_day_valid(in->terms[i].through) || in->terms[i].contractual_rate < 0 ||
		    (i > 0 && in->terms[i].through <= in->terms[i - 1].through))
			return fail(errbuf, errlen, INTEREST_EINVAL,
			            "earlier terms must be valid days in order with rates >= 0");
	}
	rule = rule_of(in, in->jurisdiction);
	out->has_rule = rule != NULL;
	/* compounding needs the whole history when any terms' rule compounds */
	compounding = compounds(rule);
	for (size_t i = 0; i < in->nterms; i++)
		compounding = compounding || compounds(rule_of(in, in->terms[i].jurisdiction));

	since = in->due_date + 1;
	if (to < from || to < since)
		return 0;
	/* Compounding needs the whole history; otherwise start at the range. */
	d = compounding || from < since ? since : from;
	anniv = compounding ? anniversary(since, 1) : CIVIL_DAY_MAX + 1;

	while (d <= to) {
		int32_t next = to + 1, rate, stat, until;
		int64_t base;
		enum interest_source source = INTEREST_CONTRACTUAL;
		interest_exact_t num;
		const char *jur;
		int denom, rc;

		terms_of(in, d, &ti, &rate, &jur, &until);
		rule = rule_of(in, jur);
		if (until < next)
			next = until;

		while (ci < in->nchanges && in->changes[ci].day < d) {
			if (__builtin_add_overflow(balance, in->changes[ci].amount, &balance))
				goto overflow;
			ci++;
		}
		if (ci < in->nchanges && in->changes[ci].day + 1 < next)
			next = in->changes[ci].day + 1;
		if (rule != NULL && rule->mode == RATETABLE_HALF_YEARLY && next_half_year(d) < next)
			next = next_half_year(d);
		if (in->daycount == DAYCOUNT_ACT_ACT && next_year(d) < next)
			next = next_year(d);
		if (anniv < next)
			next = anniv;
		/* a fixed rule starts on its valid_from day (the others at a half-year) */
		if (rule != NULL && rule->mode == RATETABLE_FIXED &&
		    rule->valid_from != CIVIL_DAY_NONE && d < rule->valid_from &&
		    rule->valid_from < next)
			next = rule->valid_from;
		if (d < from && from < next)
			next = from;

		if (rule != NULL) {
			rc = ratetable_statutory_rate(in->rates, jur, since, d, &stat, NULL, NULL);
			if (rc == RATETABLE_ERANGE)
				goto overflow;
			if (rc == RATETABLE_ENOVALUE && in->fallback_contractual) {
				/* no statutory rate for these days: the contract's (R6.5) */
				if (d >= from)
					out->missing_days += next - d;
			} else if (rc < 0) {
				civil_format_date(d, buf);
				interest_result_free(out);
				out->total = 0;
				return fail(errbuf, errlen, INTEREST_ENORATE,
				            "jurisdiction %s: no statutory rate for %s", jur, buf);
			} else if (stat >= rate) {
				rate = stat;
				source = INTEREST_STATUTORY;
			}
		}
		if (rate < 0)
			rate = 0;
		base = 0;
		if (balance > 0 && __builtin_add_overflow(balance, capitalised, &base))
			goto overflow;
		denom = daycount_denominator(in->daycount, d);
		if (__builtin_mul_overflow((interest_exact_t)base, (interest_exact_t)rate, &num) ||
		    __builtin_mul_overflow(num, (interest_exact_t)(DAYCOUNT_LCM / denom), &num) ||
		    __builtin_mul_overflow(num, (interest_exact_t)(next - d), &num))
			goto overflow;
		if (compounds(rule) && __builtin_add_overflow(year_acc, num, &year_acc))
			goto overflow;
		if (d >= from && base > 0) {
			if (__builtin_add_overflow(out->total, num, &out->total))
				goto overflow;
			emit(out, &cap, d, next - 1, base, rate, source, num);
		}
		d = next;
		if (d == anniv) {
			int64_t c;

			if (interest_round_micro(year_acc, &c) < 0 ||
			    __builtin_add_overflow(capitalised, c, &capitalised))
				goto overflow;
			year_acc = 0;
			anniv = anniversary(since, ++k);
		}
	}
	for (size_t i = 0; i < out->nperiods; i++)
		if (interest_round_micro(out->periods[i].exact, &out->periods[i].amount) < 0)
			goto overflow;
	return 0;
overflow:
	interest_result_free(out);
	out->total = 0;
	return fail(errbuf, errlen, INTEREST_ERANGE, "interest overflows");
}
