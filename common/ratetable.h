/*
 * ratetable.h: statutory late-payment rules as data (R6.5).
 *
 * A ratetable holds reference series (dated values such as the Bank of England
 * Bank Rate) and one rule per jurisdiction. It is built by API calls: the daemon
 * fills it from the reference_rates and statutory_rules tables
 * (sql/0004_statutory_rates.sql); ratetable_load_defaults() fills it with the
 * same shipped facts (a unit test keeps the two in agreement).
 *
 * Days are civil.h days (days since 1970-01-01); rates are int32_t in units of
 * 0.0001 % per year (12 % = 120000; negative allowed for reference values);
 * amounts are int64_t micro-units.
 */
#ifndef CREDITD_RATETABLE_H
#define CREDITD_RATETABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ratetable_err {
	RATETABLE_EINVAL = -1,   /* bad argument or rule */
	RATETABLE_ENORULE = -2,  /* the jurisdiction has no rule */
	RATETABLE_ENOVALUE = -3, /* the series is unknown, has no value on the fixing day, or
	                            the day is before the rule's valid_from */
	RATETABLE_ERANGE = -4,   /* arithmetic overflow (reference + margin) */
};

enum ratetable_mode {
	/* The value fixed for the half-year in which the debt first became overdue
	 * applies for the debt's whole life (GB, IE). */
	RATETABLE_PER_DEBT,
	/* Each half-year's value applies to the days in that half-year (DE, AT, ...). */
	RATETABLE_HALF_YEARLY,
	/* A fixed rate, no reference series (US-NY, US-CA). */
	RATETABLE_FIXED,
};

enum ratetable_compounding {
	RATETABLE_COMPOUND_NONE,
	RATETABLE_COMPOUND_YEARLY, /* NL: interest unpaid after each year joins the principal */
};

/*
 * Compensation tiers are tried in order; the first that matches the debt amount
 * gives the compensation. In the database (statutory_rules.comp_tiers, jsonb)
 * a tier is {"below": "1000", "amount": "40"}, {"upto": "10000", "amount": "70"}
 * or {"amount": "100"}: decimal strings in major units of comp_currency.
 */
enum ratetable_tier_kind {
	RATETABLE_TIER_BELOW, /* debt <  bound */
	RATETABLE_TIER_UPTO,  /* debt <= bound */
	RATETABLE_TIER_ANY,   /* any debt: must be the last tier */
};

struct ratetable_tier {
	enum ratetable_tier_kind kind;
	int64_t bound;  /* micro-units; unused for RATETABLE_TIER_ANY */
	int64_t amount; /* micro-units */
};

#define RATETABLE_MAX_TIERS 8

/* Input of ratetable_add_rule (strings copied) and output of ratetable_get_rule
 * (strings owned by the table, valid until the rule is replaced or the table freed). */
struct ratetable_rule {
	const char *jurisdiction; /* "GB", "US-NY": 1..15 of [A-Z0-9-] */
	enum ratetable_mode mode;
	const char *source;         /* reference series; NULL for RATETABLE_FIXED */
	int32_t margin;             /* added to the reference value; 0 for RATETABLE_FIXED */
	int32_t fixed_rate;         /* RATETABLE_FIXED only */
	int32_t fixing_offset_days; /* the value is read on half-year start + offset
	                               (GB -1: 30 Jun / 31 Dec; others 0: 1 Jul / 1 Jan) */
	enum ratetable_compounding compounding;
	int32_t valid_from;        /* first half-year (or day, for FIXED) the rule covers;
	                              CIVIL_DAY_NONE = no limit (HR: 2023-01-01) */
	const char *comp_currency; /* ISO 4217, or NULL when no fixed compensation */
	size_t ntiers;
	struct ratetable_tier tiers[RATETABLE_MAX_TIERS];
	const char *legal_basis; /* may be NULL */
};

struct ratetable_value {
	int32_t day;  /* effective date */
	int32_t rate; /* 0.0001 % per year */
};

struct ratetable *ratetable_new(void);
void ratetable_free(struct ratetable *tbl);

/* Adds or replaces (same series and day) a reference value; creates the series.
 * Series names: 1..63 of [A-Za-z0-9_-]. 0 or RATETABLE_EINVAL. */
int ratetable_add_value(struct ratetable *tbl, const char *series, int32_t day, int32_t rate);
/* Adds or replaces (same jurisdiction) a rule after validating it; the series it
 * names need not exist yet. 0 or RATETABLE_EINVAL with a reason in errbuf. */
int ratetable_add_rule(struct ratetable *tbl, const struct ratetable_rule *rule, char *errbuf,
                       size_t errlen);

/* NULL when the jurisdiction has no rule. */
const struct ratetable_rule *ratetable_get_rule(const struct ratetable *tbl,
                                                const char *jurisdiction);
size_t ratetable_rule_count(const struct ratetable *tbl);
const struct ratetable_rule *ratetable_rule_at(const struct ratetable *tbl, size_t i);
size_t ratetable_series_count(const struct ratetable *tbl);
const char *ratetable_series_name(const struct ratetable *tbl, size_t i);
/* The values of a series sorted by day; RATETABLE_ENOVALUE for an unknown series. */
int ratetable_series_values(const struct ratetable *tbl, const char *series,
                            const struct ratetable_value **values, size_t *n);

/* The value in force on day (latest effective day <= day) and its effective day
 * (effective may be NULL). RATETABLE_ENOVALUE when there is none. */
int ratetable_value_on(const struct ratetable *tbl, const char *series, int32_t day, int32_t *rate,
                       int32_t *effective);

/*
 * The statutory rate on day for a debt first overdue on overdue_since (the day
 * after its due date): reference value read on fixed_on, plus the margin. For
 * RATETABLE_PER_DEBT fixed_on = half_year_start(overdue_since) + offset; for
 * RATETABLE_HALF_YEARLY fixed_on = half_year_start(day) + offset; for
 * RATETABLE_FIXED *rate = fixed_rate, *fixed_on = CIVIL_DAY_NONE, *reference_rate = 0.
 * fixed_on and reference_rate may be NULL. Errors: RATETABLE_ENORULE (no rule:
 * the caller uses the contractual rate), RATETABLE_ENOVALUE, RATETABLE_ERANGE.
 */
int ratetable_statutory_rate(const struct ratetable *tbl, const char *jurisdiction,
                             int32_t overdue_since, int32_t day, int32_t *rate, int32_t *fixed_on,
                             int32_t *reference_rate);

/* Fixed compensation for one late debt of debt_amount (>= 0) micro-units:
 * *amount in micro-units of currency (4 bytes: "GBP" + NUL). A rule without
 * compensation gives 0 and "". RATETABLE_ENORULE, RATETABLE_EINVAL. */
int ratetable_compensation(const struct ratetable *tbl, const char *jurisdiction,
                           int64_t debt_amount, int64_t *amount, char currency[4]);

/* Names as stored in statutory_rules: "per_debt", "half_yearly", "fixed";
 * "none", "yearly". parse: 0 or -1. */
int ratetable_parse_mode(const char *s, enum ratetable_mode *mode);
const char *ratetable_mode_name(enum ratetable_mode mode);
int ratetable_parse_compounding(const char *s, enum ratetable_compounding *c);
const char *ratetable_compounding_name(enum ratetable_compounding c);
/* Parses the comp_tiers JSON text (see above) into tiers[RATETABLE_MAX_TIERS];
 * 0, or RATETABLE_EINVAL with a reason. Ordering is checked by ratetable_add_rule. */
int ratetable_parse_tiers(const char *json, size_t len, struct ratetable_tier *tiers,
                          size_t *ntiers, char *errbuf, size_t errlen);

/* Fills tbl with the shipped facts of RATES.md (the same rows as
 * sql/0004_statutory_rates.sql). 0 or a negative code. */
int ratetable_load_defaults(struct ratetable *tbl);

#endif
