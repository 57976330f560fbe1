/* http_terminate.c: POST /v1/accounts/{account}/terminate (R5.6). */
#include "http_terminate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account_view.h"
#include "acache.h"
#include "app.h"
#include "civil.h"
#include "clock.h"
#include "config.h"
#include "currency.h"
#include "db.h"
#include "http_util.h"
#include "jsonfield.h"
#include "money.h"
#include "tz.h"

/* R5.6: payments received from the start of this many billing-zone days
 * before the termination day are refundable. */
#define REFUND_WINDOW_DAYS 7

/* The final invoice's amounts with the currency's decimals, as
 * GET /v1/invoices/{id} shows them ("15.20", JPY "3"): the function answers
 * them in shortest form. An amount that does not parse stays as it is. */
static void
final_invoice_decimals(json_t *inv, const char *currency)
{
	static const char *const keys[] = {"total", "credit_applied", "balance", NULL};
	int exp = currency_exponent(currency);
	char buf[MONEY_FMT_LEN];

	if (!json_is_object(inv) || exp < 0)
		return;
	for (int k = 0; keys[k]; k++) {
		const json_t *v = json_object_get(inv, keys[k]);
		int64_t amount;

		if (json_is_string(v) &&
		    money_parse(json_string_value(v), json_string_length(v), &amount) == 0)
			json_object_set_new(inv, keys[k],
			                    json_string(money_format_fixed(amount, exp, buf)));
	}
}

static void
terminate_cb(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;
	const PGresult *t, *acc;
	json_t *out, *fin;

	if (!db_result_ok(res)) {
		http_reply_db_error(r, res);
		return;
	}
	t = db_result_get(res, 0);
	acc = db_result_get(res, 1);
	if (PQntuples(t) != 1 || PQntuples(acc) != 1) {
		http_reply_error(r, 404, "not_found", "account not found", NULL);
		return;
	}
	/* R3.5: from now on events that occurred after terminated_at are rejected */
	acache_update(http_req_app(r)->acache, acc, 0);
	out = json_object();
	json_object_set_new(out, "account", account_view_json(acc, 0));
	fin = j_json_col(t, 0, col(t, "final_invoice"));
	final_invoice_decimals(fin, PQgetvalue(acc, 0, col(acc, "currency")));
	json_object_set_new(out, "final_invoice", fin);
	json_object_set_new(out, "refundable", j_money_col(t, 0, col(t, "refundable")));
	json_object_set_new(out, "forfeited", j_money_col(t, 0, col(t, "forfeited")));
	json_object_set_new(out, "credit_set_off", j_money_col(t, 0, col(t, "credit_set_off")));
	json_object_set_new(out, "accelerated_invoices", j_json_col(t, 0, col(t, "accelerated")));
	http_reply_json(r, 200, out);
}

void
http_terminate(struct http_req *r)
{
	static const char *const allowed[] = {"note", NULL};
	struct app *app = http_req_app(r);
	json_t *body = http_req_json_object(r);
	const char *id, *ext, *note = NULL;
	struct jf_err e;
	int64_t now = clock_now();
	int32_t today = tz_day_of(now);
	char now_s[24], refund_s[24], day_s[CIVIL_DATE_LEN], period_s[CIVIL_DATE_LEN];

	if (body == NULL)
		return;
	if (jf_only(body, allowed, &e) < 0 || jf_string(body, "note", true, 1000, &note, &e) < 0) {
		http_reply_validation(r, &e);
		return;
	}
	if (!account_ref(http_req_capture(r, 0), &id, &ext)) {
		http_reply_error(r, 404, "not_found", "account not found", NULL);
		return;
	}
	if (civil_format_date(today, day_s) != 0 ||
	    civil_format_date(tz_month_of(now), period_s) != 0) {
		http_reply_error(r, 500, "internal", "internal error: date out of range", NULL);
		return;
	}
	usec_param(now, now_s);
	usec_param(tz_day_start(today - REFUND_WINDOW_DAYS), refund_s);
	const char *p[] = {id,    ext,      note,     app->cfg->invoice_prefix, now_s,
	                   day_s, period_s, refund_s, http_req_actor(r),        http_req_id(r)};
	struct db_batch *b = db_batch_new();
	db_batch_add(
	    b,
	    "SELECT account_id, final_invoice::text, refundable, forfeited, credit_set_off, "
	    "accelerated::text FROM creditd_account_terminate($1::uuid, $2, $3, $4, "
	    "creditd_ts($5::bigint), $6::date, $7::date, creditd_ts($8::bigint), $9, $10)",
	    10, p);
	db_batch_add(b, ACCOUNT_VIEW_SELECT "WHERE id = $1::uuid OR external_ref = $2", 2, p);
	http_submit(r, b, terminate_cb);
}
