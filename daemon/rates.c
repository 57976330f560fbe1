/* rates.c: load statutory_rules and reference_rates into a ratetable. */
#include "rates.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "civil.h"
#include "db.h"
#include "http_util.h"
#include "log.h"
#include "metrics.h"
#include "ratetable.h"
#include "xmalloc.h"

/* Accounts (not terminated) of one jurisdiction without a statutory rule. */
struct rates_norule {
	char jurisdiction[16];
	long accounts;
};

struct rates {
	struct app *app;
	struct ratetable *tbl;
	struct rates_norule *norule; /* as of the last load */
	size_t nnorule;
	bool norule_known;
};

/* One reload and who waits for it. */
struct rates_load {
	struct rates *r;
	void (*done)(void *arg);
	void *arg;
};

/* R6.5: "a jurisdiction with no rule uses the contractual rate, and the
 * metrics say so": accounts per such jurisdiction, as of the last load (at
 * start, after a reference value changed, and at each daily job). */
static void
rates_metrics(struct evbuffer *out, void *arg)
{
	const struct rates *r = arg;

	if (!r->norule_known)
		return;
	evbuffer_add_printf(out, "# HELP creditd_accounts_without_statutory_rule Accounts (not "
	                         "terminated) whose jurisdiction has no statutory rule: the "
	                         "contractual rate applies (R6.5).\n"
	                         "# TYPE creditd_accounts_without_statutory_rule gauge\n");
	for (size_t i = 0; i < r->nnorule; i++)
		evbuffer_add_printf(out,
		                    "creditd_accounts_without_statutory_rule{jurisdiction=\"%s\"} "
		                    "%ld\n",
		                    r->norule[i].jurisdiction, r->norule[i].accounts);
	if (r->tbl != NULL)
		evbuffer_add_printf(out,
		                    "# HELP creditd_statutory_rules Statutory rules loaded.\n"
		                    "# TYPE creditd_statutory_rules gauge\n"
		                    "creditd_statutory_rules %zu\n",
		                    ratetable_rule_count(r->tbl));
}

struct rates *
rates_new(struct app *app)
{
	struct rates *r = xcalloc(1, sizeof *r);

	r->app = app;
	if (app->metrics != NULL)
		metrics_add_writer(app->metrics, rates_metrics, r);
	return r;
}

void
rates_free(struct rates *r)
{
	if (r == NULL)
		return;
	ratetable_free(r->tbl);
	free(r->norule);
	free(r);
}

const struct ratetable *
rates_table(const struct rates *r)
{
	return r->tbl;
}

static const char *
rates_opt(const PGresult *pg, int row, const char *name)
{
	int c = col(pg, name);

	return PQgetisnull(pg, row, c) ? NULL : PQgetvalue(pg, row, c);
}

static void
rates_load_end(struct rates_load *l)
{
	if (l->done != NULL)
		l->done(l->arg);
	free(l);
}

static void
rates_loaded_norule(struct rates *r, const PGresult *pg)
{
	int n = PQntuples(pg);

	free(r->norule);
	r->norule = xcalloc((size_t)n + 1, sizeof *r->norule);
	r->nnorule = 0;
	for (int i = 0; i < n; i++) {
		struct rates_norule *e = &r->norule[r->nnorule++];

		snprintf(e->jurisdiction, sizeof e->jurisdiction, "%s", PQgetvalue(pg, i, 0));
		e->accounts = (long)col_i64(pg, i, 1);
	}
	r->norule_known = true;
}

static void
rates_loaded(const struct db_result *res, void *arg)
{
	struct rates_load *l = arg;
	struct rates *r = l->r;
	const PGresult *vals, *rules;
	struct ratetable *tbl;
	char err[256];

	if (!db_result_ok(res)) {
		log_warnx("statutory rates: cannot load: %s", db_result_error(res));
		rates_load_end(l);
		return;
	}
	vals = db_result_get(res, 0);
	rules = db_result_get(res, 1);
	rates_loaded_norule(r, db_result_get(res, 2));
	tbl = ratetable_new();
	for (int i = 0; i < PQntuples(vals); i++)
		if (ratetable_add_value(tbl, PQgetvalue(vals, i, 0), (int32_t)col_i64(vals, i, 1),
		                        (int32_t)col_i64(vals, i, 2)) != 0)
			log_warnx("statutory rates: bad value for %s", PQgetvalue(vals, i, 0));
	for (int i = 0; i < PQntuples(rules); i++) {
		struct ratetable_rule rule;
		const char *tiers = rates_opt(rules, i, "comp_tiers");
		const char *valid = rates_opt(rules, i, "valid_from_day");

		memset(&rule, 0, sizeof rule);
		rule.jurisdiction = PQgetvalue(rules, i, col(rules, "jurisdiction"));
		rule.source = rates_opt(rules, i, "source");
		rule.margin = (int32_t)col_i64(rules, i, col(rules, "margin"));
		rule.fixed_rate = rates_opt(rules, i, "fixed_rate")
		                      ? (int32_t)col_i64(rules, i, col(rules, "fixed_rate"))
		                      : 0;
		rule.fixing_offset_days =
		    (int32_t)col_i64(rules, i, col(rules, "fixing_offset_days"));
		rule.valid_from = valid ? (int32_t)atol(valid) : CIVIL_DAY_NONE;
		rule.comp_currency = rates_opt(rules, i, "comp_currency");
		rule.legal_basis = rates_opt(rules, i, "legal_basis");
		if (ratetable_parse_mode(PQgetvalue(rules, i, col(rules, "mode")), &rule.mode) !=
		        0 ||
		    ratetable_parse_compounding(PQgetvalue(rules, i, col(rules, "compounding")),
		                                &rule.compounding) != 0 ||
		    (tiers && ratetable_parse_tiers(tiers, strlen(tiers), rule.tiers, &rule.ntiers,
		                                    err, sizeof err) != 0) ||
		    ratetable_add_rule(tbl, &rule, err, sizeof err) != 0)
			log_warnx("statutory rates: rule %s ignored: %s", rule.jurisdiction, err);
	}
	ratetable_free(r->tbl);
	r->tbl = tbl;
	log_info("statutory rates: %zu rules, %zu reference series", ratetable_rule_count(tbl),
	         ratetable_series_count(tbl));
	rates_load_end(l);
}

void
rates_reload(struct rates *r)
{
	rates_reload_then(r, NULL, NULL);
}

void
rates_reload_then(struct rates *r, void (*done)(void *arg), void *arg)
{
	struct db_batch *b = db_batch_new();
	struct rates_load *l = xcalloc(1, sizeof *l);

	l->r = r;
	l->done = done;
	l->arg = arg;

	db_batch_add(
	    b,
	    "SELECT source, effective_date - date '1970-01-01', rate FROM reference_rates ORDER BY "
	    "source, effective_date",
	    0, NULL);
	db_batch_add(
	    b,
	    "SELECT jurisdiction, mode, source, margin, fixed_rate, fixing_offset_days, "
	    "compounding, valid_from - date '1970-01-01' AS valid_from_day, comp_currency, "
	    "comp_tiers::text, legal_basis FROM statutory_rules ORDER BY jurisdiction",
	    0, NULL);
	db_batch_add(b,
	             "SELECT coalesce(a.jurisdiction, ''), count(*) FROM accounts a "
	             "WHERE a.status <> 'terminated' AND NOT EXISTS (SELECT 1 FROM "
	             "statutory_rules s WHERE s.jurisdiction = a.jurisdiction) "
	             "GROUP BY 1 ORDER BY 1",
	             0, NULL);
	if (db_submit(r->app->db, b, rates_loaded, l) != 0) {
		log_warnx("statutory rates: database unavailable; will load on reconnect");
		rates_load_end(l);
	}
}
