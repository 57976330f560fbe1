/* ratetable.c: reference series and statutory rules (see ratetable.h). */
#include "ratetable.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "civil.h"
#include "xmalloc.h"

struct series {
	char *name;
	struct ratetable_value *values; /* sorted by day, unique days */
	size_t n, cap;
};

struct ratetable {
	struct series *series;
	size_t nseries;
	struct ratetable_rule *rules; /* strings owned (xstrdup) */
	size_t nrules;
};

struct ratetable *
ratetable_new(void)
{
	return xcalloc(1, sizeof(struct ratetable));
}

static void
rule_free_strings(struct ratetable_rule *r)
{
	free((char *)r->jurisdiction);
	free((char *)r->source);
	free((char *)r->comp_currency);
	free((char *)r->legal_basis);
}

void
ratetable_free(struct ratetable *tbl)
{
	if (tbl == NULL)
		return;
	for (size_t i = 0; i < tbl->nseries; i++) {
		free(tbl->series[i].name);
		free(tbl->series[i].values);
	}
	free(tbl->series);
	for (size_t i = 0; i < tbl->nrules; i++)
		rule_free_strings(&tbl->rules[i]);
	free(tbl->rules);
	free(tbl);
}

static bool
valid_name(const char *s, size_t maxlen, bool series)
{
	size_t n = 0;

	if (s == NULL || *s == '\0')
		return false;
	for (; s[n] != '\0'; n++) {
		char c = s[n];

		if (n >= maxlen)
			return false;
		if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')
			continue;
		if (series && ((c >= 'a' && c <= 'z') || c == '_'))
			continue;
		return false;
	}
	return true;
}

static const struct series *
find_series(const struct ratetable *tbl, const char *name)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < tbl->nseries; i++)
		if (strcmp(tbl->series[i].name, name) == 0)
			return &tbl->series[i];
	return NULL;
}

/* Index of the first value with day > d (upper bound). */
static size_t
upper_bound(const struct series *s, int32_t d)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->values[mid].day <= d)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int
ratetable_add_value(struct ratetable *tbl, const char *series, int32_t day, int32_t rate)
{
	struct series *s;
	size_t i;

	if (tbl == NULL || !valid_name(series, 63, true) || !civil_day_valid(day))
		return RATETABLE_EINVAL;
	s = (struct series *)find_series(tbl, series);
	if (s == NULL) {
		tbl->series = xreallocarray(tbl->series, tbl->nseries + 1, sizeof(*tbl->series));
		s = &tbl->series[tbl->nseries++];
		memset(s, 0, sizeof(*s));
		s->name = xstrdup(series);
	}
	i = upper_bound(s, day);
	if (i > 0 && s->values[i - 1].day == day) {
		s->values[i - 1].rate = rate;
		return 0;
	}
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->values = xreallocarray(s->values, s->cap, sizeof(*s->values));
	}
	memmove(&s->values[i + 1], &s->values[i], (s->n - i) * sizeof(*s->values));
	s->values[i].day = day;
	s->values[i].rate = rate;
	s->n++;
	return 0;
}

static int
fail(char *errbuf, size_t errlen, const char *msg)
{
	if (errbuf != NULL && errlen > 0)
		snprintf(errbuf, errlen, "%s", msg);
	return RATETABLE_EINVAL;
}

static int
validate_rule(const struct ratetable_rule *r, char *errbuf, size_t errlen)
{
	if (!valid_name(r->jurisdiction, 15, false))
		return fail(errbuf, errlen, "jurisdiction: 1..15 characters of A-Z, 0-9, '-'");
	switch (r->mode) {
	case RATETABLE_PER_DEBT:
	case RATETABLE_HALF_YEARLY:
		if (!valid_name(r->source, 63, true))
			return fail(errbuf, errlen, "source: a reference series name is required");
		if (r->fixed_rate != 0)
			return fail(errbuf, errlen, "fixed_rate: only for mode fixed");
		break;
	case RATETABLE_FIXED:
		if (r->source != NULL || r->margin != 0)
			return fail(errbuf, errlen, "mode fixed takes no source and no margin");
		if (r->fixed_rate < 0)
			return fail(errbuf, errlen, "fixed_rate: must not be negative");
		break;
	default:
		return fail(errbuf, errlen, "mode: per_debt, half_yearly or fixed");
	}
	if (r->fixing_offset_days < -366 || r->fixing_offset_days > 366)
		return fail(errbuf, errlen, "fixing_offset_days: -366..366");
	if (r->compounding != RATETABLE_COMPOUND_NONE &&
	    r->compounding != RATETABLE_COMPOUND_YEARLY)
		return fail(errbuf, errlen, "compounding: none or yearly");
	if (r->valid_from != CIVIL_DAY_NONE && !civil_day_valid(r->valid_from))
		return fail(errbuf, errlen, "valid_from: not a date");
	if (r->comp_currency == NULL) {
		if (r->ntiers != 0)
			return fail(errbuf, errlen, "compensation tiers without a currency");
		return 0;
	}
	for (size_t i = 0; i < 4; i++) {
		char c = r->comp_currency[i];

		if (i < 3 ? (c < 'A' || c > 'Z') : c != '\0')
			return fail(errbuf, errlen, "comp_currency: three letters A-Z");
	}
	if (r->ntiers < 1 || r->ntiers > RATETABLE_MAX_TIERS)
		return fail(errbuf, errlen, "compensation: 1..8 tiers");
	for (size_t i = 0; i < r->ntiers; i++) {
		const struct ratetable_tier *t = &r->tiers[i];
		bool last = i + 1 == r->ntiers;

		if (t->amount < 0)
			return fail(errbuf, errlen, "compensation: negative amount");
		if (last != (t->kind == RATETABLE_TIER_ANY))
			return fail(errbuf, errlen,
			            "compensation: the last tier, and only it, has no bound");
		if (t->kind != RATETABLE_TIER_ANY && t->kind != RATETABLE_TIER_BELOW &&
		    t->kind != RATETABLE_TIER_UPTO)
			return fail(errbuf, errlen, "compensation: bad tier kind");
		if (!last && (t->bound < 0 || (i > 0 && t->bound <= r->tiers[i - 1].bound)))
			return fail(errbuf, errlen, "compensation: bounds must ascend");
	}
	return 0;
}

static char *
dup_or_null(const char *s)
{
	return s == NULL ? NULL : xstrdup(s);
}

int
ratetable_add_rule(struct ratetable *tbl, const struct ratetable_rule *rule, char *errbuf,
                   size_t errlen)
{
	struct ratetable_rule copy, *slot;
	int rc;

	if (tbl == NULL || rule == NULL)
		return fail(errbuf, errlen, "no rule");
	if ((rc = validate_rule(rule, errbuf, errlen)) < 0)
		return rc;
	copy = *rule;
	copy.jurisdiction = xstrdup(rule->jurisdiction);
	copy.source = dup_or_null(rule->source);
	copy.comp_currency = dup_or_null(rule->comp_currency);
	copy.legal_basis = dup_or_null(rule->legal_basis);
	slot = (struct ratetable_rule *)ratetable_get_rule(tbl, rule->jurisdiction);
	if (slot != NULL) {
		rule_free_strings(slot);
	} else {
		tbl->rules = xreallocarray(tbl->rules, tbl->nrules + 1, sizeof(*tbl->rules));
		slot = &tbl->rules[tbl->nrules++];
	}
	*slot = copy;
	return 0;
}

const struct ratetable_rule *
ratetable_get_rule(const struct ratetable *tbl, const char *jurisdiction)
{
	if (tbl == NULL || jurisdiction == NULL)
		return NULL;
	for (size_t i = 0; i < tbl->nrules; i++)
		if (strcmp(tbl->rules[i].jurisdiction, jurisdiction) == 0)
			return &tbl->rules[i];
	return NULL;
}

size_t
ratetable_rule_count(const struct ratetable *tbl)
{
	return tbl->nrules;
}

const struct ratetable_rule *
ratetable_rule_at(const struct ratetable *tbl, size_t i)
{
	return i < tbl->nrules ? &tbl->rules[i] : NULL;
}

size_t
ratetable_series_count(const struct ratetable *tbl)
{
	return tbl->nseries;
}

const char *
ratetable_series_name(const struct ratetable *tbl, size_t i)
{
	return i < tbl->nseries ? tbl->series[i].name : NULL;
}

int
ratetable_series_values(const struct ratetable *tbl, const char *series,
                        const struct ratetable_value **values, size_t *n)
{
	const struct series *s = find_series(tbl, series);

	if (s == NULL)
		return RATETABLE_ENOVALUE;
	*values = s->values;
	*n = s->n;
	return 0;
}

int
ratetable_value_on(const struct ratetable *tbl, const char *series, int32_t day, int32_t *rate,
                   int32_t *effective)
{
	const struct series *s = find_series(tbl, series);
	size_t i;

	if (s == NULL)
		return RATETABLE_ENOVALUE;
	i = upper_bound(s, day);
	if (i == 0)
		return RATETABLE_ENOVALUE;
	*rate = s->values[i - 1].rate;
	if (effective != NULL)
		*effective = s->values[i - 1].day;
	return 0;
}

int
ratetable_statutory_rate(const struct ratetable *tbl, const char *jurisdiction,
                         int32_t overdue_since, int32_t day, int32_t *rate, int32_t *fixed_on,
                         int32_t *reference_rate)
{
	const struct ratetable_rule *r;
	int32_t start, fix, ref;
	int rc;

	if (tbl == NULL || !civil_day_valid(overdue_since) || !civil_day_valid(day))
		return RATETABLE_EINVAL;
	r = ratetable_get_rule(tbl, jurisdiction);
	if (r == NULL)
		return RATETABLE_ENORULE;
	if (r->mode == RATETABLE_FIXED) {
		if (r->valid_from != CIVIL_DAY_NONE && day < r->valid_from)
			return RATETABLE_ENOVALUE;
		*rate = r->fixed_rate;
		if (fixed_on != NULL)
			*fixed_on = CIVIL_DAY_NONE;
		if (reference_rate != NULL)
			*reference_rate = 0;
		return 0;
	}
	start = civil_half_year_start(r->mode == RATETABLE_PER_DEBT ? overdue_since : day);
	if (r->valid_from != CIVIL_DAY_NONE && start < r->valid_from)
		return RATETABLE_ENOVALUE;
	fix = start + r->fixing_offset_days; /* |offset| <= 366: stays far inside int32_t */
	if ((rc = ratetable_value_on(tbl, r->source, fix, &ref, NULL)) < 0)
		return rc;
	if (__builtin_add_overflow(ref, r->margin, rate))
		return RATETABLE_ERANGE;
	if (fixed_on != NULL)
		*fixed_on = fix;
	if (reference_rate != NULL)
		*reference_rate = ref;
	return 0;
}

int
ratetable_compensation(const struct ratetable *tbl, const char *jurisdiction, int64_t debt_amount,
                       int64_t *amount, char currency[4])
{
	const struct ratetable_rule *r;

	if (tbl == NULL || debt_amount < 0)
		return RATETABLE_EINVAL;
	r = ratetable_get_rule(tbl, jurisdiction);
	if (r == NULL)
		return RATETABLE_ENORULE;
	*amount = 0;
	currency[0] = '\0';
	if (r->comp_currency == NULL)
		return 0;
	for (size_t i = 0; i < r->ntiers; i++) {
		const struct ratetable_tier *t = &r->tiers[i];

		if (t->kind == RATETABLE_TIER_ANY ||
		    (t->kind == RATETABLE_TIER_BELOW && debt_amount < t->bound) ||
		    (t->kind == RATETABLE_TIER_UPTO && debt_amount <= t->bound)) {
			*amount = t->amount;
			memcpy(currency, r->comp_currency, 4);
			return 0;
		}
	}
	return RATETABLE_EINVAL; /* unreachable: the last tier matches any debt */
}

static const char *const mode_names[] = {
    [RATETABLE_PER_DEBT] = "per_debt",
    [RATETABLE_HALF_YEARLY] = "half_yearly",
    [RATETABLE_FIXED] = "fixed",
};

static const char *const compounding_names[] = {
    [RATETABLE_COMPOUND_NONE] = "none",
    [RATETABLE_COMPOUND_YEARLY] = "yearly",
};

int
ratetable_parse_mode(const char *s, enum ratetable_mode *mode)
{
	for (size_t i = 0; s != NULL && i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
		if (strcmp(s, mode_names[i]) == 0) {
			*mode = (enum ratetable_mode)i;
			return 0;
		}
	}
	return -1;
}

const char *
ratetable_mode_name(enum ratetable_mode mode)
{
	return (unsigned)mode < sizeof(mode_names) / sizeof(mode_names[0]) ? mode_names[mode]
	                                                                   : NULL;
}

int
ratetable_parse_compounding(const char *s, enum ratetable_compounding *c)
{
	for (size_t i = 0;
	     s != NULL && i < sizeof(compounding_names) / sizeof(compounding_names[0]); i++) {
		if (strcmp(s, compounding_names[i]) == 0) {
			*c = (enum ratetable_compounding)i;
			return 0;
		}
	}
	return -1;
}

const char *
ratetable_compounding_name(enum ratetable_compounding c)
{
	return (unsigned)c < sizeof(compounding_names) / sizeof(compounding_names[0])
	           ? compounding_names[c]
	           : NULL;
}

/* Non-negative plain decimal "123" or "123.45" (<= 6 decimals) to micro-units. */
static int
parse_amount(const char *s, int64_t *out)
{
	int64_t v = 0;
	int ndec = -1, nint = 0;

	for (; *s != '\0'; s++) {
		if (*s == '.') {
			if (ndec >= 0 || nint == 0)
				return -1;
			ndec = 0;
			continue;
		}
		if (*s < '0' || *s > '9')
			return -1;
		if (ndec >= 0 && ++ndec > 6)
			return -1;
		if (ndec < 0)
			nint++;
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *s - '0', &v))
			return -1;
	}
	if (nint == 0 || ndec == 0)
		return -1;
	for (int i = ndec < 0 ? 0 : ndec; i < 6; i++)
		if (__builtin_mul_overflow(v, 10, &v))
			return -1;
	*out = v;
	return 0;
}

int
ratetable_parse_tiers(const char *json, size_t len, struct ratetable_tier *tiers, size_t *ntiers,
                      char *errbuf, size_t errlen)
{
	json_error_t jerr;
	json_t *root, *elem;
	size_t i;
	int rc = RATETABLE_EINVAL;

	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return fail(errbuf, errlen, "comp_tiers: not JSON");
	if (!json_is_array(root) || json_array_size(root) < 1 ||
	    json_array_size(root) > RATETABLE_MAX_TIERS) {
		fail(errbuf, errlen, "comp_tiers: an array of 1..8 tiers");
		goto out;
	}
	json_array_foreach(root, i, elem)
	{
		json_t *below = json_object_get(elem, "below");
		json_t *upto = json_object_get(elem, "upto");
		json_t *amount = json_object_get(elem, "amount");
		size_t want = 1 + (below != NULL) + (upto != NULL);
		json_t *bound = below != NULL ? below : upto;

		if (!json_is_object(elem) || json_object_size(elem) != want ||
		    (below != NULL && upto != NULL) || !json_is_string(amount) ||
		    parse_amount(json_string_value(amount), &tiers[i].amount) < 0) {
			fail(errbuf, errlen,
			     "comp_tiers: each tier is {\"below\"|\"upto\"?: \"decimal\", "
			     "\"amount\": \"decimal\"}");
			goto out;
		}
		tiers[i].bound = 0;
		tiers[i].kind = below != NULL  ? RATETABLE_TIER_BELOW
		                : upto != NULL ? RATETABLE_TIER_UPTO
		                               : RATETABLE_TIER_ANY;
		if (bound != NULL &&
		    (!json_is_string(bound) ||
		     parse_amount(json_string_value(bound), &tiers[i].bound) < 0)) {
			fail(errbuf, errlen, "comp_tiers: a bound is a decimal string");
			goto out;
		}
	}
	*ntiers = json_array_size(root);
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/*
 * The shipped facts (RATES.md). Keep in step with sql/0004_statutory_rates.sql:
 * tests/unit/test_ratetable.c checks that both hold exactly the same rows.
 */
struct default_value {
	const char *series;
	int y, m, d;
	int32_t rate;
};

static const struct default_value default_values[] = {
    /* Bank of England Bank Rate. 0.25 was in force on 2022-01-01; it is shipped as
     * effective 2021-12-16 (the December 2021 MPC decision) so that the GB fixing
     * on 31 Dec 2021 (debts first overdue in 2022-H1) finds it. */
    {"BOE_BANK_RATE", 2021, 12, 16, 2500},
    {"BOE_BANK_RATE", 2022, 2, 3, 5000},
    {"BOE_BANK_RATE", 2022, 3, 17, 7500},
    {"BOE_BANK_RATE", 2022, 5, 5, 10000},
    {"BOE_BANK_RATE", 2022, 6, 16, 12500},
    {"BOE_BANK_RATE", 2022, 8, 4, 17500},
    {"BOE_BANK_RATE", 2022, 9, 22, 22500},
    {"BOE_BANK_RATE", 2022, 11, 3, 30000},
    {"BOE_BANK_RATE", 2022, 12, 15, 35000},
    {"BOE_BANK_RATE", 2023, 2, 2, 40000},
    {"BOE_BANK_RATE", 2023, 3, 23, 42500},
    {"BOE_BANK_RATE", 2023, 5, 11, 45000},
    {"BOE_BANK_RATE", 2023, 6, 22, 50000},
    {"BOE_BANK_RATE", 2023, 8, 3, 52500},
    {"BOE_BANK_RATE", 2024, 8, 1, 50000},
    {"BOE_BANK_RATE", 2024, 11, 7, 47500},
    {"BOE_BANK_RATE", 2025, 2, 6, 45000},
    {"BOE_BANK_RATE", 2025, 5, 8, 42500},
    {"BOE_BANK_RATE", 2025, 8, 7, 40000},
    {"BOE_BANK_RATE", 2025, 12, 18, 37500},
    /* ECB main refinancing operations rate; 0.00 shipped as of 2022-01-01. */
    {"ECB_MRO", 2022, 1, 1, 0},
    {"ECB_MRO", 2022, 7, 27, 5000},
    {"ECB_MRO", 2022, 9, 14, 12500},
    {"ECB_MRO", 2022, 11, 2, 20000},
    {"ECB_MRO", 2022, 12, 21, 25000},
    {"ECB_MRO", 2023, 2, 8, 30000},
    {"ECB_MRO", 2023, 3, 22, 35000},
    {"ECB_MRO", 2023, 5, 10, 37500},
    {"ECB_MRO", 2023, 6, 21, 40000},
    {"ECB_MRO", 2023, 8, 2, 42500},
    {"ECB_MRO", 2023, 9, 20, 45000},
    {"ECB_MRO", 2024, 6, 12, 42500},
    {"ECB_MRO", 2024, 9, 18, 36500},
    {"ECB_MRO", 2024, 10, 23, 34000},
    {"ECB_MRO", 2024, 12, 18, 31500},
    {"ECB_MRO", 2025, 2, 5, 29000},
    {"ECB_MRO", 2025, 3, 12, 26500},
    {"ECB_MRO", 2025, 4, 23, 24000},
    {"ECB_MRO", 2025, 6, 11, 21500},
    {"ECB_MRO", 2026, 6, 17, 24000}, /* unconfirmed */
    /* German Basiszinssatz: one value per half-year, effective 1 Jan / 1 Jul. */
    {"DE_BASISZINS", 2022, 1, 1, -8800},
    {"DE_BASISZINS", 2022, 7, 1, -8800},
    {"DE_BASISZINS", 2023, 1, 1, 16200},
    {"DE_BASISZINS", 2023, 7, 1, 31200},
    {"DE_BASISZINS", 2024, 1, 1, 36200},
    {"DE_BASISZINS", 2024, 7, 1, 33700},
    {"DE_BASISZINS", 2025, 1, 1, 22700},
    {"DE_BASISZINS", 2025, 7, 1, 12700},
    {"DE_BASISZINS", 2026, 1, 1, 12700},
    {"DE_BASISZINS", 2026, 7, 1, 15200}, /* unconfirmed */
    /* Austrian Basiszinssatz (OeNB); -0.62 shipped as of 2022-01-01. */
    {"AT_BASISZINS", 2022, 1, 1, -6200},
    {"AT_BASISZINS", 2022, 7, 27, -1200}, /* derived */
    {"AT_BASISZINS", 2022, 9, 14, 6300},  /* derived */
    {"AT_BASISZINS", 2022, 11, 2, 13800}, /* derived */
    {"AT_BASISZINS", 2022, 12, 21, 18800},
    {"AT_BASISZINS", 2023, 2, 8, 23800},  /* derived */
    {"AT_BASISZINS", 2023, 3, 22, 28800}, /* derived */
    {"AT_BASISZINS", 2023, 6, 21, 33800},
    {"AT_BASISZINS", 2023, 9, 20, 38800},
    {"AT_BASISZINS", 2024, 9, 18, 30300},
    {"AT_BASISZINS", 2024, 12, 18, 25300},
    {"AT_BASISZINS", 2025, 3, 12, 20300},
    {"AT_BASISZINS", 2025, 6, 11, 15300},
};

#define MICRO INT64_C(1000000)
#define TIERS_EU_40                                                                                \
	.comp_currency = "EUR", .ntiers = 1, .tiers = {{RATETABLE_TIER_ANY, 0, 40 * MICRO}}

static const struct ratetable_rule default_rules[] = {
    {.jurisdiction = "GB",
     .mode = RATETABLE_PER_DEBT,
     .source = "BOE_BANK_RATE",
     .margin = 80000,
     .fixing_offset_days = -1,
     .valid_from = CIVIL_DAY_NONE,
     .comp_currency = "GBP",
     .ntiers = 3,
     .tiers = {{RATETABLE_TIER_BELOW, 1000 * MICRO, 40 * MICRO},
               {RATETABLE_TIER_BELOW, 10000 * MICRO, 70 * MICRO},
               {RATETABLE_TIER_ANY, 0, 100 * MICRO}},
     .legal_basis = "Late Payment of Commercial Debts (Interest) Act 1998 s.1, s.4(2), "
                    "s.5A; SI 2002/1675"},
    {.jurisdiction = "IE",
     .mode = RATETABLE_PER_DEBT,
     .source = "ECB_MRO",
     .margin = 80000,
     .valid_from = CIVIL_DAY_NONE,
     .comp_currency = "EUR",
     .ntiers = 3,
     .tiers = {{RATETABLE_TIER_BELOW, 1000 * MICRO, 40 * MICRO},
               {RATETABLE_TIER_UPTO, 10000 * MICRO, 70 * MICRO},
               {RATETABLE_TIER_ANY, 0, 100 * MICRO}},
     .legal_basis = "S.I. No. 580/2012"},
    {.jurisdiction = "DE",
     .mode = RATETABLE_HALF_YEARLY,
     .source = "DE_BASISZINS",
     .margin = 90000,
     .valid_from = CIVIL_DAY_NONE,
     TIERS_EU_40,
     .legal_basis = "§ 288(2),(5) BGB; § 247 BGB"},
    {.jurisdiction = "AT",
     .mode = RATETABLE_HALF_YEARLY,
     .source = "AT_BASISZINS",
     .margin = 92000,
     .valid_from = CIVIL_DAY_NONE,
     TIERS_EU_40,
     .legal_basis = "§ 456, § 458 UGB"},
    {.jurisdiction = "FR",
     .mode = RATETABLE_HALF_YEARLY,
     .source = "ECB_MRO",
     .margin = 100000,
     .valid_from = CIVIL_DAY_NONE,
     TIERS_EU_40,
     .legal_basis = "Code de commerce L441-10, D441-5"},
    {.jurisdiction = "NL",
     .mode = RATETABLE_HALF_YEARLY,
     .source = "ECB_MRO",
     .margin = 80000,
     .compounding = RATETABLE_COMPOUND_YEARLY,
     .valid_from = CIVIL_DAY_NONE,
     TIERS_EU_40,
     .legal_basis = "art. 6:119a BW"},
    {.jurisdiction = "IT",
     .mode = RATETABLE_HALF_YEARLY,
     .source = "ECB_MRO",
     .margin = 80000,
     .valid_from = CIVIL_DAY_NONE,
     TIERS_EU_40,
     .legal_basis = "D.Lgs. 231/2002 art. 5, 6"},
    {.jurisdiction = "ES",
     .mode = RATETABLE_HALF_YEARLY,
     .source = "ECB_MRO",
     .margin = 80000,
     .valid_from = CIVIL_DAY_NONE,
     TIERS_EU_40,
     .legal_basis = "Ley 3/2004 art. 7, 8"},
    {.jurisdiction = "HR",
     .mode = RATETABLE_HALF_YEARLY,
     .source = "ECB_MRO",
     .margin = 80000,
     .valid_from = 19358, /* 2023-01-01: before 2023 a national formula applied */
     TIERS_EU_40,
     .legal_basis = "Zakon o obveznim odnosima art. 29"},
    {.jurisdiction = "US-NY",
     .mode = RATETABLE_FIXED,
     .fixed_rate = 90000,
     .valid_from = CIVIL_DAY_NONE,
     .legal_basis = "CPLR 5004(a)"},
    {.jurisdiction = "US-CA",
     .mode = RATETABLE_FIXED,
     .fixed_rate = 100000,
     .valid_from = CIVIL_DAY_NONE,
     .legal_basis = "Civ. Code § 3289(b)"},
};

int
ratetable_load_defaults(struct ratetable *tbl)
{
	int rc;

	for (size_t i = 0; i < sizeof(default_values) / sizeof(default_values[0]); i++) {
		const struct default_value *v = &default_values[i];
		int32_t day;

		if (civil_from_ymd(v->y, v->m, v->d, &day) < 0)
			return RATETABLE_EINVAL;
		if ((rc = ratetable_add_value(tbl, v->series, day, v->rate)) < 0)
			return rc;
	}
	for (size_t i = 0; i < sizeof(default_rules) / sizeof(default_rules[0]); i++)
		if ((rc = ratetable_add_rule(tbl, &default_rules[i], NULL, 0)) < 0)
			return rc;
	return 0;
}
