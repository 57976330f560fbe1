/* http_payments.c: recording payments. */
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

static void
payments_created_cb(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;
	const PGresult *pay, *acc;

	if (!db_result_ok(res)) {
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
	if (!events_uuid_canon(id_raw, id)) {
		http_reply_error(r, 400, "validation_failed", "id: must be a UUID", "id");
		return;
	}
	if (amount <= 0) {
		http_reply_error(r, 400, "validation_failed", "amount: must be greater than 0",
		                 "amount");
		return;
	}
	if (received > clock_now() + INT64_C(300000000)) {
		http_reply_error(r, 400, "validation_failed", "received_at: in the future",
		                 "received_at");
		return;
	}
	if (!account_ref(account, &acc_id, &acc_ext)) {
		http_reply_error(r, 400, "validation_failed",
		                 "account: must be a UUID or ext:<external_ref>", "account");
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
	    "SELECT outcome, response::text, account_id FROM creditd_payment_credit($1::uuid, "
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
