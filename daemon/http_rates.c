/* http_rates.c: reading statutory rates, reading and adding reference values. */
#include "http_rates.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "civil.h"
#include "clock.h"
#include "db.h"
#include "http_util.h"
#include "jsonfield.h"
#include "money.h"
#include "rate.h"
#include "rates.h"
#include "ratetable.h"
#include "tz.h"
#include "xmalloc.h"

static json_t *
j_rate(int32_t r)
{
	char buf[RATE_FMT_LEN];

	return json_string(rate_format(r, buf));
}

static json_t *
j_day(int32_t d)
{
	char buf[CIVIL_DATE_LEN];

	return civil_format_date(d, buf) == 0 ? json_string(buf) : json_null();
}

/* GET /v1/statutory-rates/{jurisdiction}?date=: the rate of a debt first
 * overdue on `date`, for that day. */
void
http_rates_statutory(struct http_req *r)
{
	const struct ratetable *tbl = rates_table(http_req_app(r)->rates);
	const char *jur = http_req_capture(r, 0), *ds = http_req_query(r, "date");
	const struct ratetable_rule *rule;
	int32_t day = tz_day_of(clock_now()), rate, fixed_on, ref;
	json_t *out, *comp = json_null();
	int rc;

	if (ds && civil_parse_date(ds, strlen(ds), &day) != 0) {
		http_reply_error(r, 400, "validation_failed", "date: must be YYYY-MM-DD", "date");
		return;
	}
	if (tbl == NULL) {
		http_reply_unavailable(r);
		return;
	}
	rule = ratetable_get_rule(tbl, jur);
	if (rule == NULL) {
		http_reply_error(
		    r, 404, "not_found",
		    "no statutory rule for this jurisdiction: the contractual rate applies", NULL);
		return;
	}
	rc = ratetable_statutory_rate(tbl, jur, day, day, &rate, &fixed_on, &ref);
	if (rc != 0) {
		http_reply_error(r, 404, "not_found", "no statutory rate is known for that date",
		                 "date");
		return;
	}
	if (rule->comp_currency != NULL) {
		json_t *tiers = json_array();
		char buf[MONEY_FMT_LEN];
		for (size_t i = 0; i < rule->ntiers; i++) {
			const struct ratetable_tier *t = &rule->tiers[i];
			json_t *o = json_pack("{s:s}", "amount", money_format(t->amount, buf));
			if (t->kind == RATETABLE_TIER_BELOW)
				json_object_set_new(o, "below",
				                    json_string(money_format(t->bound, buf)));
			else if (t->kind == RATETABLE_TIER_UPTO)
				json_object_set_new(o, "upto",
				                    json_string(money_format(t->bound, buf)));
			json_array_append_new(tiers, o);
		}
		comp = json_pack("{s:s, s:o}", "currency", rule->comp_currency, "tiers", tiers);
	}
	out =
	    json_pack("{s:s, s:o, s:o, s:s, s:o}", "jurisdiction", jur, "date", j_day(day), "rate",
	              j_rate(rate), "mode", ratetable_mode_name(rule->mode), "compensation", comp);
	if (rule->mode == RATETABLE_FIXED) {
		json_object_set_new(out, "reference", json_null());
		json_object_set_new(out, "margin", json_null());
	} else {
		json_object_set_new(out, "reference",
		                    json_pack("{s:s, s:o, s:o}", "source", rule->source, "rate",
		                              j_rate(ref), "fixed_on", j_day(fixed_on)));
		json_object_set_new(out, "margin", j_rate(rule->margin));
	}
	json_object_set_new(out, "compounding",
	                    json_string(ratetable_compounding_name(rule->compounding)));
	if (rule->legal_basis)
		json_object_set_new(out, "legal_basis", json_string(rule->legal_basis));
	http_reply_json(r, 200, out);
}

static bool
source_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

/* A PUT's answer, sent once the table in memory holds the new value. */
struct reference_put {
	struct http_req *r;
	json_t *body;
};

static void
reference_put_done(void *arg)
{
	struct reference_put *p = arg;

	http_reply_json(p->r, 200, p->body);
	free(p);
}

static void
reference_cb(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;
	const PGresult *pg;
	json_t *values, *out;

	if ((pg = http_result_found(r, res, -1, "no such reference series")) == NULL)
		return;
	values = json_array();
	for (int i = 0; i < PQntuples(pg); i++)
		json_array_append_new(
		    values, json_pack("{s:o, s:o, s:o}", "effective_date", j_date_col(pg, i, 0),
		                      "rate", j_rate_col(pg, i, 1), "note", j_text_col(pg, i, 2)));
	out = json_pack("{s:s, s:o}", "source", http_req_capture(r, 0), "values", values);
	/* after a PUT the table in memory follows before the answer, so that a
	 * statutory rate read (or a daily job) right after it sees the value */
	if (db_result_count(res) > 1) {
		struct reference_put *p = xcalloc(1, sizeof *p);

		p->r = r;
		p->body = out;
		rates_reload_then(http_req_app(r)->rates, reference_put_done, p);
		return;
	}
	http_reply_json(r, 200, out);
}

#define REFERENCE_SELECT                                                                           \
	"SELECT effective_date - date '1970-01-01', rate, note FROM reference_rates WHERE source " \
	"= "                                                                                       \
	"$1 ORDER BY effective_date"

void
http_rates_reference_get(struct http_req *r)
{
	const char *src = http_req_capture(r, 0);
	const char *p[] = {src};
	struct db_batch *b = db_batch_new();

	db_batch_add(b, REFERENCE_SELECT, 1, p);
	http_submit(r, b, reference_cb);
}

#define REFERENCE_KNOWN                                                                            \
	"(EXISTS (SELECT 1 FROM statutory_rules WHERE source = $1) OR EXISTS (SELECT 1 FROM "      \
	"reference_rates WHERE source = $1))"

/* PUT /v1/reference-rates/{source} {effective_date, rate, note?}: a central
 * bank moved (R6.5). Adds or replaces the value of that date. */
void
http_rates_reference_put(struct http_req *r)
{
	static const char *const allowed[] = {"effective_date", "rate", "note", NULL};
	json_t *body = http_req_json_object(r);
	const char *src = http_req_capture(r, 0), *note = NULL;
	int32_t day, rate;
	struct jf_err e;
	char ds[CIVIL_DATE_LEN], rs[16], now[24];

	if (body == NULL)
		return;
	if (jf_only(body, allowed, &e) < 0 || jf_date(body, "effective_date", true, &day, &e) < 0 ||
	    jf_rate(body, "rate", true, &rate, &e) < 0 ||
	    jf_string(body, "note", false, 500, &note, &e) < 0) {
		http_reply_validation(r, &e);
		return;
	}
	if (!source_ok(src)) {
		http_reply_error(r, 400, "validation_failed",
		                 "source: 1-63 characters of A-Z a-z 0-9 _ -", "source");
		return;
	}
	civil_format_date(day, ds);
	snprintf(rs, sizeof rs, "%" PRId32, rate);
	usec_param(clock_now(), now);
	const char *p[] = {src, ds, rs, note, now, http_req_actor(r), http_req_id(r)};
	struct db_batch *b = db_batch_new();
	/* Only a known series takes values: one that a statutory rule names or
	 * that has values already. A typo in the path would otherwise start a
	 * series that no rule reads, and the PUT would look applied (404, nothing
	 * stored or audited). */
	db_batch_add(
	    b,
	    "SELECT creditd_audit(creditd_ts($5), $6, 'reference_rate.put', 'reference_rate', "
	    "$1 || '@' || $2, (SELECT to_jsonb(x) FROM reference_rates x WHERE x.source = $1 AND "
	    "x.effective_date = $2::date), jsonb_build_object('rate', $3::int, 'note', $4::text), "
	    "$7) WHERE " REFERENCE_KNOWN,
	    7, p);
	db_batch_add(b,
	             "INSERT INTO reference_rates (source, effective_date, rate, note) SELECT $1, "
	             "$2::date, $3::int, $4 WHERE " REFERENCE_KNOWN
	             " ON CONFLICT (source, effective_date) DO UPDATE SET rate = excluded.rate, "
	             "note = excluded.note",
	             4, p);
	db_batch_add(b, REFERENCE_SELECT, 1, p);
	http_submit(r, b, reference_cb);
}
