/* http_refunds.c: recording and listing refunds of account credit (R5.6,
 * R6.1). Parsing and validation are the payment handler's (jsonfield,
 * money_move_ok); the booking is one transaction in
 * sql/0039_refunds.sql. */
#include "http_refunds.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acache.h"
#include "app.h"
#include "clock.h"
#include "db.h"
#include "http_payments.h"
#include "http_util.h"
#include "jsonfield.h"
#include "xmalloc.h"

#define REFUND_VIEW_SELECT                                                                         \
	"SELECT id, seq, account_id, amount, paid_us, reference, credit_after, created_us "        \
	"FROM refund_view "

/* One refund_view row as the API shows it. */
static json_t *
refund_json(const PGresult *pg, int row)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", j_text_col(pg, row, col(pg, "id")));
	json_object_set_new(o, "account", j_text_col(pg, row, col(pg, "account_id")));
	json_object_set_new(o, "amount", j_money_col(pg, row, col(pg, "amount")));
	json_object_set_new(o, "paid_at", j_ts_col(pg, row, col(pg, "paid_us")));
	json_object_set_new(o, "reference", j_text_col(pg, row, col(pg, "reference")));
	json_object_set_new(o, "created_at", j_ts_col(pg, row, col(pg, "created_us")));
	return o;
}

static void
refunds_created_cb(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;
	const PGresult *book, *ref, *acc;
	json_t *out;

	if (!db_result_ok(res)) {
		http_reply_db_error(r, res);
		return;
	}
	book = db_result_get(res, 0);
	ref = db_result_get(res, 1);
	acc = db_result_get(res, 2);
	if (PQntuples(book) != 1 || PQntuples(ref) != 1) {
		http_reply_error(r, 500, "internal", "internal error", NULL);
		return;
	}
	/* R3.6: authorize answers from the cache; the refund raised exposure */
	if (PQntuples(acc) == 1)
		acache_update(http_req_app(r)->acache, acc, 0);
	out = json_object();
	json_object_set_new(out, "refund", refund_json(ref, 0));
	/* the credit right after this refund (stored: a replay answers the same) */
	json_object_set_new(out, "credit", j_money_col(ref, 0, col(ref, "credit_after")));
	/* R6.1 as for payments: the same id and body again answers 200, same body */
	http_reply_json(
	    r, strcmp(PQgetvalue(book, 0, col(book, "outcome")), "created") == 0 ? 201 : 200, out);
}

void
http_refunds_create(struct http_req *r)
{
	static const char *const allowed[] = {"id",      "account",   "amount",
	                                      "paid_at", "reference", NULL};
	struct app *app = http_req_app(r);
	json_t *body = http_req_json_object(r);
	const char *id_raw, *account, *reference = NULL, *acc_id, *acc_ext;
	int64_t amount, paid;
	struct jf_err e;
	char id[37], amt[24], pd[24], now[24], thr[THRESHOLDS_PARAM_LEN];
	char *canon;

	if (body == NULL)
		return;
	if (jf_only(body, allowed, &e) < 0 || jf_string(body, "id", true, 36, &id_raw, &e) < 0 ||
	    jf_string(body, "account", true, 140, &account, &e) < 0 ||
	    jf_amount(body, "amount", true, false, NULL, &amount, &e) < 0 ||
	    jf_time(body, "paid_at", true, &paid, &e) < 0 ||
	    jf_string(body, "reference", false, 200, &reference, &e) < 0) {
		http_reply_validation(r, &e);
		return;
	}
	if (!money_move_ok(r, id_raw, id, amount, paid, "paid_at", account, &acc_id, &acc_ext))
		return;
	snprintf(amt, sizeof amt, "%" PRId64, amount);
	usec_param(paid, pd);
	usec_param(clock_now(), now);
	thresholds_param(app->cfg, thr);
	/* the payload identity for idempotency: same id, other payload -> 409;
	 * an absent reference differs from an empty one */
	xasprintf(&canon, "%s|%s|%s|%s%s", account, amt, pd, reference ? "r:" : "-",
	          reference ? reference : "");
	const char *p[] = {id,  acc_id, acc_ext,           amt,           pd, reference, canon,
	                   thr, now,    http_req_actor(r), http_req_id(r)};
	struct db_batch *b = db_batch_new();
	db_batch_add(b,
	             "SELECT outcome, account_id FROM creditd_refund_book($1::uuid, $2::uuid, $3, "
	             "$4::bigint, creditd_ts($5::bigint), $6, $7, $8::int[], creditd_ts($9), $10, "
	             "$11)",
	             11, p);
	db_batch_add(b, REFUND_VIEW_SELECT "WHERE id = $1::uuid", 1, p);
	db_batch_add(
	    b,
	    "SELECT * FROM account_view WHERE id = (SELECT account_id FROM refunds WHERE id = "
	    "$1::uuid)",
	    1, p);
	free(canon);
	http_submit(r, b, refunds_created_cb);
}

static void
refunds_list_cb(const struct db_result *res, void *arg)
{
	http_reply_page(arg, res, 0, refund_json, "seq");
}

void
http_refunds_list(struct http_req *r)
{
	http_seq_list(r, REFUND_VIEW_SELECT, refunds_list_cb);
}
