/* http_payments.c: booking, reversing and listing payments (R6.1). */
#include "http_payments.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acache.h"
#include "app.h"
#include "clock.h"
#include "config.h"
#include "db.h"
#include "events.h"
#include "http_util.h"
#include "jsonfield.h"
#include "xmalloc.h"

#define PAYMENT_VIEW_SELECT                                                                        \
	"SELECT id, seq, account_id, amount, received_us, reference, invoice, credit, "            \
	"allocations_json, booked_us, booked_by, reversed_us, reverse_reason FROM payment_view "

/* PostgreSQL's numeric_value_out_of_range (bigint overflow). */
#define SQLSTATE_OUT_OF_RANGE "22003"

/* One payment_view row as the API shows it. */
static json_t *
payment_json(const PGresult *pg, int row)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", j_text_col(pg, row, col(pg, "id")));
	json_object_set_new(o, "account", j_text_col(pg, row, col(pg, "account_id")));
	json_object_set_new(o, "amount", j_money_col(pg, row, col(pg, "amount")));
	json_object_set_new(o, "received_at", j_ts_col(pg, row, col(pg, "received_us")));
	json_object_set_new(o, "reference", j_text_col(pg, row, col(pg, "reference")));
	json_object_set_new(o, "invoice", j_text_col(pg, row, col(pg, "invoice")));
	json_object_set_new(o, "allocations", j_json_col(pg, row, col(pg, "allocations_json")));
	json_object_set_new(o, "credit", j_money_col(pg, row, col(pg, "credit")));
	json_object_set_new(o, "booked_at", j_ts_col(pg, row, col(pg, "booked_us")));
	json_object_set_new(o, "booked_by", j_text_col(pg, row, col(pg, "booked_by")));
	json_object_set_new(o, "reversed_at", j_ts_col(pg, row, col(pg, "reversed_us")));
	json_object_set_new(o, "reverse_reason", j_text_col(pg, row, col(pg, "reverse_reason")));
	return o;
}

static void
payments_created_cb(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;
	const PGresult *pay, *acc;

	if (!db_result_ok(res)) {
		/* R1.1: the amount would take the account's balances past int64
		 * micro-units (numeric_value_out_of_range); nothing was booked */
		if (!db_result_unavailable(res) &&
		    strcmp(db_result_sqlstate(res), SQLSTATE_OUT_OF_RANGE) == 0) {
			http_reply_error(r, 400, "validation_failed",
			                 "amount: too large for the account's balances", "amount");
			return;
		}
		http_reply_db_error(r, res);
		return;
	}
	pay = db_result_get(res, 0);
	acc = db_result_get(res, 1);
	if (PQntuples(acc) == 1)
		acache_update(http_req_app(r)->acache, acc, 0);
	/* R6.1: the same id and body again answers 200 with the same body */
	http_reply_json(r,
	                strcmp(PQgetvalue(pay, 0, col(pay, "outcome")), "created") == 0 ? 201 : 200,
	                j_json_col(pay, 0, col(pay, "response")));
}

/* How far ahead of now a received_at (or a refund's paid_at) may lie: the
 * clock skew of the bank feed. */
#define PAYMENT_FUTURE_SKEW_US INT64_C(300000000)

bool
money_move_ok(struct http_req *r, const char *id_raw, char id[37], int64_t amount, int64_t at,
              const char *at_key, const char *account, const char **acc_id, const char **acc_ext)
{
	char msg[64];

	if (!events_uuid_canon(id_raw, id)) {
		http_reply_error(r, 400, "validation_failed", "id: must be a UUID", "id");
		return false;
	}
	if (amount <= 0) {
		http_reply_error(r, 400, "validation_failed", "amount: must be greater than 0",
		                 "amount");
		return false;
	}
	if (at > clock_now() + PAYMENT_FUTURE_SKEW_US) {
		snprintf(msg, sizeof msg, "%s: in the future", at_key);
		http_reply_error(r, 400, "validation_failed", msg, at_key);
		return false;
	}
	if (!account_ref(account, acc_id, acc_ext)) {
		http_reply_error(r, 400, "validation_failed",
		                 "account: must be a UUID or ext:<external_ref>", "account");
		return false;
	}
	return true;
}

void
http_payments_create(struct http_req *r)
{
	static const char *const allowed[] = {"id",        "account", "amount", "received_at",
	                                      "reference", "invoice", NULL};
	struct app *app = http_req_app(r);
	json_t *body = http_req_json_object(r);
	const char *id_raw, *account, *reference, *invoice = NULL, *acc_id, *acc_ext;
	int64_t amount, received;
	struct jf_err e;
	char id[37], amt[24], rcv[24], now[24], thr[THRESHOLDS_PARAM_LEN];
	char *canon;

	if (body == NULL)
		return;
	if (jf_only(body, allowed, &e) < 0 || jf_string(body, "id", true, 36, &id_raw, &e) < 0 ||
	    jf_string(body, "account", true, 140, &account, &e) < 0 ||
	    jf_amount(body, "amount", true, false, NULL, &amount, &e) < 0 ||
	    jf_time(body, "received_at", true, &received, &e) < 0 ||
	    jf_string(body, "reference", true, 200, &reference, &e) < 0 ||
	    jf_string(body, "invoice", false, 64, &invoice, &e) < 0) {
		http_reply_validation(r, &e);
		return;
	}
	if (!money_move_ok(r, id_raw, id, amount, received, "received_at", account, &acc_id,
	                   &acc_ext))
		return;
	if (invoice != NULL && (*invoice == '\0' || !jf_text_ok(invoice))) {
		http_reply_error(r, 400, "validation_failed",
		                 "invoice: must be an invoice number or id", "invoice");
		return;
	}
	snprintf(amt, sizeof amt, "%" PRId64, amount);
	usec_param(received, rcv);
	usec_param(clock_now(), now);
	thresholds_param(app->cfg, thr);
	/* the payload identity for R6.1 idempotency: same id, other payload -> 409 */
	xasprintf(&canon, "%s|%s|%s|%s|%s", account, amt, rcv, reference, invoice ? invoice : "");
	const char *p[] = {id,  acc_id,    acc_ext,           amt,
	                   rcv, reference, invoice,           canon,
	                   thr, now,       http_req_actor(r), http_req_id(r)};
	struct db_batch *b = db_batch_new();
	db_batch_add(
	    b,
	    "SELECT outcome, response::text, account_id FROM creditd_payment_book($1::uuid, "
	    "$2::uuid, $3, $4::bigint, creditd_ts($5::bigint), $6, $7, $8, $9::int[], "
	    "creditd_ts($10), $11, $12)",
	    12, p);
	db_batch_add(
	    b,
	    "SELECT * FROM account_view WHERE id = (SELECT account_id FROM payments WHERE id = "
	    "$1::uuid)",
	    1, p);
	free(canon);
	http_submit(r, b, payments_created_cb);
}

/* Reversal and GET answer the payment_view row of result `idx`; 404 when
 * there is none. */
static void
payment_reply(struct http_req *r, const struct db_result *res, int idx)
{
	const PGresult *pg;

	if (!db_result_ok(res)) {
		http_reply_db_error(r, res);
		return;
	}
	pg = db_result_get(res, idx);
	if (PQntuples(pg) != 1) {
		http_reply_error(r, 404, "not_found", "payment not found", NULL);
		return;
	}
	http_reply_json(r, 200, payment_json(pg, 0));
}

static void
payments_reversed_cb(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;
	const PGresult *acc;

	if (db_result_ok(res)) {
		acc = db_result_get(res, 3);
		if (PQntuples(acc) == 1)
			acache_update(http_req_app(r)->acache, acc, 0);
	}
	payment_reply(r, res, 2);
}

void
http_payments_reverse(struct http_req *r)
{
	static const char *const allowed[] = {"reason", NULL};
	struct app *app = http_req_app(r);
	json_t *body = http_req_json_object(r);
	const char *reason;
	struct jf_err e;
	char id[37], now[24], thr[THRESHOLDS_PARAM_LEN], after[16];

	if (body == NULL)
		return;
	if (!events_uuid_canon(http_req_capture(r, 0), id)) {
		http_reply_error(r, 404, "not_found", "payment not found", NULL);
		return;
	}
	if (jf_only(body, allowed, &e) < 0 ||
	    jf_string(body, "reason", true, 1000, &reason, &e) < 0) {
		http_reply_validation(r, &e);
		return;
	}
	if (*reason == '\0') {
		http_reply_error(r, 400, "validation_failed", "reason: must not be empty",
		                 "reason");
		return;
	}
	usec_param(clock_now(), now);
	thresholds_param(app->cfg, thr);
	snprintf(after, sizeof after, "%d", app->cfg->overdue_suspend_after_days);
	const char *p[] = {id, reason, thr, now, http_req_actor(r), http_req_id(r)};
	const char *q[] = {id, now, http_req_actor(r), http_req_id(r), after};
	struct db_batch *b = db_batch_new();
	db_batch_add(b,
	             "SELECT creditd_payment_reverse($1::uuid, $2, $3::int[], creditd_ts($4), $5, "
	             "$6) AS account_id",
	             6, p);
	/* R6.6: the invoices the payment had paid are overdue again; the
	 * suspension it lifted comes back now, not at the next daily job */
	db_batch_add(b,
	             "SELECT creditd_overdue_suspend_check((SELECT account_id FROM payments WHERE "
	             "id = $1::uuid), $5::int, 'payment_reversal', $3, creditd_ts($2), $4)",
	             5, q);
	db_batch_add(b, PAYMENT_VIEW_SELECT "WHERE id = $1::uuid", 1, p);
	db_batch_add(
	    b,
	    "SELECT * FROM account_view WHERE id = (SELECT account_id FROM payments WHERE id = "
	    "$1::uuid)",
	    1, p);
	http_submit(r, b, payments_reversed_cb);
}

static void
payments_get_cb(const struct db_result *res, void *arg)
{
	payment_reply(arg, res, 0);
}

void
http_payments_get(struct http_req *r)
{
	char id[37];

	if (!events_uuid_canon(http_req_capture(r, 0), id)) {
		http_reply_error(r, 404, "not_found", "payment not found", NULL);
		return;
	}
	const char *p[] = {id};
	struct db_batch *b = db_batch_new();
	db_batch_add(b, PAYMENT_VIEW_SELECT "WHERE id = $1::uuid", 1, p);
	http_submit(r, b, payments_get_cb);
}

static void
payments_list_cb(const struct db_result *res, void *arg)
{
	http_reply_page(arg, res, 0, payment_json, "seq");
}

void
http_payments_list(struct http_req *r)
{
	http_seq_list(r, PAYMENT_VIEW_SELECT, payments_list_cb);
}
