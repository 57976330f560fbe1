/* http_interest.c: GET /v1/invoices/{id}/interest, POST .../reactivation. */
#include "http_interest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "acache.h"
#include "app.h"
#include "civil.h"
#include "clock.h"
#include "config.h"
#include "db.h"
#include "http_util.h"
#include "interest_calc.h"
#include "jsonfield.h"
#include "money.h"
#include "rate.h"
#include "rates.h"
#include "service.h"
#include "tz.h"

struct interest_req {
	struct http_req *r;
	int32_t as_of;
};

static json_t *
j_day(int32_t d)
{
	char buf[CIVIL_DATE_LEN];

	return civil_format_date(d, buf) == 0 ? json_string(buf) : json_null();
}

static void
interest_get_cb(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;
	const PGresult *pg;
	struct interest_result ir;
	int32_t as_of, due;
	int64_t total;
	json_t *periods;
	char buf[RATE_FMT_LEN];
	const char *q = http_req_query(r, "as_of");

	if ((pg = http_result_found(r, res, 0, "invoice not found")) == NULL)
		return;
	if (rates_table(http_req_app(r)->rates) == NULL) {
		http_reply_unavailable(r); /* the statutory rates are not loaded yet */
		return;
	}
	as_of = tz_day_of(clock_now());
	if (q)
		civil_parse_date(q, strlen(q), &as_of); /* validated before the query */
	due = (int32_t)col_i64(pg, 0, col(pg, "due_day"));
	periods = json_array();
	total = 0;
	if (as_of > due) {
		if (interest_calc(http_req_app(r), pg, 0, due + 1, as_of, &ir) != 0) {
			json_decref(periods);
			http_reply_error(r, 500, "internal", "interest could not be computed",
			                 NULL);
			return;
		}
		for (size_t i = 0; i < ir.nperiods; i++) {
			const struct interest_period *p = &ir.periods[i];
			json_array_append_new(
			    periods,
			    json_pack("{s:o, s:o, s:i, s:o, s:s, s:s, s:o}", "from", j_day(p->from),
			              "to", j_day(p->to), "days", p->days, "balance",
			              j_money(p->balance), "rate", rate_format(p->rate, buf),
			              "rate_source", interest_source_name(p->source), "amount",
			              j_money(p->amount)));
		}
		if (interest_round_micro(ir.total, &total) != 0)
			total = 0;
		interest_result_free(&ir);
	}
	/* exact until posted (R6.3): amounts in micro-units; posting rounds per line */
	http_reply_json(r, 200,
	                json_pack("{s:s, s:o, s:o, s:o, s:o}", "invoice",
	                          PQgetvalue(pg, 0, col(pg, "invoice_id")), "as_of", j_day(as_of),
	                          "due_date", j_day(due), "total", j_money(total), "periods",
	                          periods));
}

void
http_interest_get(struct http_req *r)
{
	const char *ref = http_req_capture(r, 0), *q = http_req_query(r, "as_of");
	int32_t day;
	uuid_t u;
	char id[37];

	if (q && civil_parse_date(q, strlen(q), &day) != 0) {
		http_reply_error(r, 400, "validation_failed", "as_of: must be YYYY-MM-DD", "as_of");
		return;
	}
	/* by id or number */
	const char *p[] = {NULL, ref};
	if (strlen(ref) == 36 && uuid_parse(ref, u) == 0) {
		uuid_unparse_lower(u, id);
		p[0] = id;
	}
	struct db_batch *b = db_batch_new();
	db_batch_add(b,
	             INTEREST_INPUTS_SELECT "WHERE invoice_id = (SELECT i.id FROM invoices i WHERE "
	                                    "i.id = $1::uuid OR i.number = $2)",
	             2, p);
	http_submit(r, b, interest_get_cb);
}

static void
reactivation_cb(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;
	const PGresult *pg, *acc;
	json_t *out;

	if (!db_result_ok(res)) {
		http_reply_db_error(r, res);
		return;
	}
	pg = db_result_get(res, 0);
	acc = db_result_get(res, 1);
	if (PQntuples(acc) == 1)
		acache_update(http_req_app(r)->acache, acc, 0);
	out = json_pack("{s:o, s:o, s:b}", "id", j_text_col(pg, 0, col(pg, "id")), "effective_at",
	                j_ts_col(pg, 0, col(pg, "effective_us")), "applied",
	                PQgetvalue(pg, 0, col(pg, "applied"))[0] == 't');
	if (PQgetvalue(pg, 0, col(pg, "applied"))[0] != 't')
		service_reactivation_at(http_req_app(r), col_i64(pg, 0, col(pg, "effective_us")));
	http_reply_json(r, 200, out);
}

/* POST /v1/accounts/{account}/reactivation {override?, note?} (R6.7): the
 * inactivity suspension ends after `reactivation_working_days` working days,
 * or at once with an audited override. */
void
http_interest_reactivation(struct http_req *r)
{
	static const char *const allowed[] = {"override", "note", NULL};
	struct app *app = http_req_app(r);
	const char *acc_id, *acc_ext, *note = NULL;
	bool override = false;
	struct jf_err e;
	size_t len;
	json_t *body;
	int32_t eff_day;
	int64_t now = clock_now(), eff;
	char rid[37], effs[24], nows[24];
	uuid_t u;

	http_req_body(r, &len);
	body = len ? http_req_json_object(r) : NULL;
	if (len && body == NULL)
		return;
	if (body && (jf_only(body, allowed, &e) < 0 ||
	             jf_bool(body, "override", false, &override, &e) < 0 ||
	             jf_string(body, "note", false, 1000, &note, &e) < 0)) {
		http_reply_validation(r, &e);
		return;
	}
	if (!account_ref(http_req_capture(r, 0), &acc_id, &acc_ext)) {
		http_reply_error(r, 404, "not_found", "account not found", NULL);
		return;
	}
	/* N working days later, at the same local time of day (a daylight
	 * saving change in between does not move it by an hour; only a request
	 * made on the day of a change itself may be an hour off) */
	civil_add_working_days(tz_day_of(now), app->cfg->reactivation_working_days, &eff_day);
	eff = now;
	if (eff_day != tz_day_of(now)) {
		int64_t since = now - tz_day_start(tz_day_of(now));

		eff = tz_local_time(eff_day, (int)(since / INT64_C(60000000))) +
		      since % INT64_C(60000000);
	}
	uuid_generate_random(u);
	uuid_unparse_lower(u, rid);
	usec_param(eff, effs);
	usec_param(now, nows);
	const char *p[] = {rid,  acc_id, acc_ext,           effs,          override ? "t" : "f",
	                   note, nows,   http_req_actor(r), http_req_id(r)};
	struct db_batch *b = db_batch_new();
	db_batch_add(
	    b,
	    "SELECT $1::uuid AS id, creditd_us(effective_at) AS effective_us, applied FROM "
	    "creditd_reactivation_request($1::uuid, $2::uuid, $3, creditd_ts($4), $5, $6, "
	    "creditd_ts($7), $8, $9)",
	    9, p);
	db_batch_add(b, "SELECT * FROM account_view WHERE id = $1::uuid OR external_ref = $2", 2,
	             p + 1);
	http_submit(r, b, reactivation_cb);
}
