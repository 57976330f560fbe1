/* http_limits.c: PUT limits, limit-change history, limit requests. */
#include "http_limits.h"

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
#include "jsonfield.h"
#include "service.h"

/* The limits part of a body: each of monthly_limit / total_limit may be
 * absent (unchanged), null (removed) or an amount >= 0. */
struct limits_body {
	bool set_m, set_t;
	char m[24], t[24]; /* "" = SQL NULL */
};

static int
limits_body_parse(const json_t *body, struct limits_body *lb, struct jf_err *e)
{
	static const char *const keys[] = {"monthly_limit", "total_limit"};

	memset(lb, 0, sizeof *lb);
	for (int k = 0; k < 2; k++) {
		bool is_null = false;
		int64_t v = 0;
		int rc = jf_amount(body, keys[k], false, true, &is_null, &v, e);
		if (rc < 0)
			return -1;
		if (rc == 1)
			continue;
		if (!is_null && v < 0) {
			jf_fail(e, keys[k], "%s: must not be negative", keys[k]);
			return -1;
		}
		*(k == 0 ? &lb->set_m : &lb->set_t) = true;
		if (!is_null)
			snprintf(k == 0 ? lb->m : lb->t, 24, "%" PRId64, v);
	}
	return 0;
}

static const char *
nz(const char *s)
{
	return *s ? s : NULL;
}

/* Reply {"applied","effective_at"} after updating the cache and the
 * scheduler from the account row that the batch's last statement returned. */
static void
limits_put_cb(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;
	struct app *app = http_req_app(r);
	const PGresult *set, *acc;
	json_t *out;

	if (!db_result_ok(res)) {
		http_reply_db_error(r, res);
		return;
	}
	set = db_result_get(res, 0);
	acc = db_result_get(res, 1);
	if (PQntuples(acc) == 1)
		acache_update(app->acache, acc, 0);
	if (PQgetvalue(set, 0, col(set, "applied"))[0] != 't')
		service_limit_change_at(app, col_i64(set, 0, col(set, "effective_us")));
	out = json_object();
	json_object_set_new(out, "applied",
	                    json_boolean(PQgetvalue(set, 0, col(set, "applied"))[0] == 't'));
	json_object_set_new(out, "effective_at", j_ts_col(set, 0, col(set, "effective_us")));
	http_reply_json(r, 200, out);
}

/* Shared by PUT limits and approving a request (R4.6 applies to both). */
static void
limits_submit(struct http_req *r, const char *id, const char *ext, const struct limits_body *lb,
              const char *effective, bool override, const char *reason, struct db_batch *b)
{
	struct app *app = http_req_app(r);
	char now[24], notice[16], thr[THRESHOLDS_PARAM_LEN];

	usec_param(clock_now(), now);
	snprintf(notice, sizeof notice, "%d", app->cfg->limit_notice_days);
	thresholds_param(app->cfg, thr);
	const char *p[] = {
	    id,        ext,       lb->set_m ? "t" : "f", nz(lb->m),     lb->set_t ? "t" : "f",
	    nz(lb->t), effective, override ? "t" : "f",  reason,        notice,
	    thr,       now,       http_req_actor(r),     http_req_id(r)};
	db_batch_add(b,
	             "SELECT applied, creditd_us(effective_at) AS effective_us, account_id FROM "
	             "creditd_set_limits($1::uuid, $2, $3, $4::bigint, $5, $6::bigint, "
	             "creditd_ts($7::bigint), "
	             "$8, $9, $10::int, $11::int[], creditd_ts($12), $13, $14)",
	             14, p);
	db_batch_add(b, "SELECT * FROM account_view WHERE id = $1::uuid OR external_ref = $2", 2,
	             p);
	http_submit(r, b, limits_put_cb);
}

/* A change or a request names at least one limit, of the account in the
 * path; false after answering 400 or 404. */
static bool
limits_target(struct http_req *r, const struct limits_body *lb, const char **id, const char **ext)
{
	if (!lb->set_m && !lb->set_t) {
		http_reply_error(r, 400, "validation_failed",
		                 "monthly_limit: give monthly_limit and/or total_limit",
		                 "monthly_limit");
		return false;
	}
	if (!account_ref(http_req_capture(r, 0), id, ext)) {
		http_reply_error(r, 404, "not_found", "account not found", NULL);
		return false;
	}
	return true;
}

void
http_limits_put(struct http_req *r)
{
	static const char *const allowed[] = {"monthly_limit", "total_limit", "effective_at",
	                                      "override",      "reason",      NULL};
	json_t *body = http_req_json_object(r);
	const char *id, *ext, *reason = NULL;
	struct limits_body lb;
	struct jf_err e;
	int64_t eff = 0;
	bool override = false;
	char effs[24];
	int rc;

	if (body == NULL)
		return;
	if (jf_only(body, allowed, &e) < 0 || limits_body_parse(body, &lb, &e) < 0 ||
	    (rc = jf_time(body, "effective_at", false, &eff, &e)) < 0 ||
	    jf_bool(body, "override", false, &override, &e) < 0 ||
	    jf_string(body, "reason", true, 1000, &reason, &e) < 0) {
		http_reply_validation(r, &e);
		return;
	}
	if (!limits_target(r, &lb, &id, &ext))
		return;
	usec_param(eff, effs);
	limits_submit(r, id, ext, &lb, rc == 0 ? effs : NULL, override, reason, db_batch_new());
}

static json_t *
limit_change_row_json(const PGresult *pg, int row)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", j_int_col(pg, row, col(pg, "id")));
	json_object_set_new(o, "status", j_text_col(pg, row, col(pg, "status")));
	if (PQgetvalue(pg, row, col(pg, "set_monthly"))[0] == 't')
		json_object_set_new(o, "monthly_limit",
		                    j_money_col(pg, row, col(pg, "monthly_limit")));
	if (PQgetvalue(pg, row, col(pg, "set_total"))[0] == 't')
		json_object_set_new(o, "total_limit", j_money_col(pg, row, col(pg, "total_limit")));
	json_object_set_new(o, "effective_at", j_ts_col(pg, row, col(pg, "effective_us")));
	json_object_set_new(o, "applied_at", j_ts_col(pg, row, col(pg, "applied_us")));
	json_object_set_new(o, "override",
	                    json_boolean(PQgetvalue(pg, row, col(pg, "override"))[0] == 't'));
	json_object_set_new(o, "reason", j_text_col(pg, row, col(pg, "reason")));
	json_object_set_new(o, "actor", j_text_col(pg, row, col(pg, "actor")));
	json_object_set_new(o, "created_at", j_ts_col(pg, row, col(pg, "created_us")));
	return o;
}

static void
limits_changes_cb(const struct db_result *res, void *arg)
{
	http_reply_account_page(arg, res, limit_change_row_json);
}

void
http_limits_changes(struct http_req *r)
{
	http_account_page(
	    r,
	    "SELECT c.id, c.status, c.set_monthly, c.monthly_limit, c.set_total, c.total_limit, "
	    "creditd_us(c.effective_at) AS effective_us, creditd_us(c.applied_at) AS applied_us, "
	    "c.override, c.reason, c.actor, creditd_us(c.created_at) AS created_us "
	    "FROM limit_changes c JOIN accounts a ON a.id = c.account_id "
	    "WHERE (a.id = $1::uuid OR a.external_ref = $2) AND c.id < $3 "
	    "ORDER BY c.id DESC LIMIT $4",
	    limits_changes_cb);
}

/* ---- limit requests (R4.7) ---- */

#define LIMIT_REQUEST_SELECT                                                                       \
	"SELECT q.id, q.account_id, q.status, q.set_monthly, q.monthly_limit, q.set_total, "       \
	"q.total_limit, q.note, q.decline_reason, q.change_id, creditd_us(q.created_at) AS "       \
	"created_us, creditd_us(q.decided_at) AS decided_us, q.decided_by FROM limit_requests q "

static json_t *
limit_request_json(const PGresult *pg, int row)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", j_text_col(pg, row, col(pg, "id")));
	json_object_set_new(o, "account", j_text_col(pg, row, col(pg, "account_id")));
	json_object_set_new(o, "status", j_text_col(pg, row, col(pg, "status")));
	if (PQgetvalue(pg, row, col(pg, "set_monthly"))[0] == 't')
		json_object_set_new(o, "monthly_limit",
		                    j_money_col(pg, row, col(pg, "monthly_limit")));
	if (PQgetvalue(pg, row, col(pg, "set_total"))[0] == 't')
		json_object_set_new(o, "total_limit", j_money_col(pg, row, col(pg, "total_limit")));
	json_object_set_new(o, "note", j_text_col(pg, row, col(pg, "note")));
	json_object_set_new(o, "decline_reason", j_text_col(pg, row, col(pg, "decline_reason")));
	json_object_set_new(o, "created_at", j_ts_col(pg, row, col(pg, "created_us")));
	json_object_set_new(o, "decided_at", j_ts_col(pg, row, col(pg, "decided_us")));
	json_object_set_new(o, "decided_by", j_text_col(pg, row, col(pg, "decided_by")));
	/* R4.7 with R4.6: the limit change an approval made (as the
	 * limit_request.decided notification's "change", sql/0035) */
	json_object_set_new(o, "change", j_int_col(pg, row, col(pg, "change_id")));
	return o;
}

static void
limit_request_reply_cb(const struct db_result *res, void *arg, int status)
{
	struct http_req *r = arg;
	const PGresult *pg;

	pg = http_result_found(r, res, -1,
	                       status == 201 ? "account not found" : "limit request not found");
	if (pg == NULL)
		return;
	http_reply_json(r, status, limit_request_json(pg, 0));
}

static void
limit_request_created_cb(const struct db_result *res, void *arg)
{
	limit_request_reply_cb(res, arg, 201);
}

static void
limit_request_ok_cb(const struct db_result *res, void *arg)
{
	limit_request_reply_cb(res, arg, 200);
}

void
http_limits_request_create(struct http_req *r)
{
	static const char *const allowed[] = {"monthly_limit", "total_limit", "note", NULL};
	json_t *body = http_req_json_object(r);
	const char *id, *ext, *note = NULL;
	struct limits_body lb;
	struct jf_err e;
	char rid[37], now[24];
	uuid_t u;

	if (body == NULL)
		return;
	if (jf_only(body, allowed, &e) < 0 || limits_body_parse(body, &lb, &e) < 0 ||
	    jf_string(body, "note", true, 2000, &note, &e) < 0) {
		http_reply_validation(r, &e);
		return;
	}
	if (!limits_target(r, &lb, &id, &ext))
		return;
	uuid_generate_random(u);
	uuid_unparse_lower(u, rid);
	usec_param(clock_now(), now);
	const char *p[] = {
	    rid,      id,   ext, lb.set_m ? "t" : "f", nz(lb.m),      lb.set_t ? "t" : "f",
	    nz(lb.t), note, now, http_req_actor(r),    http_req_id(r)};
	struct db_batch *b = db_batch_new();
	/* 404 without the account; 422 invalid_state for a terminated one, as
	 * every other write to it (R4.7: it could never be approved; sql/0035) */
	db_batch_add(b,
	             "SELECT creditd_limit_request_create($1::uuid, $2::uuid, $3, $4::boolean, "
	             "$5::bigint, $6::boolean, $7::bigint, $8, creditd_ts($9), $10)",
	             10, p);
	const char *pa[] = {rid, now, http_req_actor(r), http_req_id(r)};
	db_batch_add(
	    b,
	    "SELECT creditd_audit(creditd_ts($2), $3, 'limit_request.create', 'limit_request', "
	    "$1::text, NULL, to_jsonb(q), $4) FROM limit_requests q WHERE q.id = $1::uuid",
	    4, pa);
	db_batch_add(b, LIMIT_REQUEST_SELECT "WHERE q.id = $1::uuid", 1, p);
	http_submit(r, b, limit_request_created_cb);
}

static bool
limit_request_id(struct http_req *r, char out[37])
{
	uuid_t u;
	const char *s = http_req_capture(r, 0);

	if (strlen(s) != 36 || uuid_parse(s, u) != 0) {
		http_reply_error(r, 404, "not_found", "limit request not found", NULL);
		return false;
	}
	uuid_unparse_lower(u, out);
	return true;
}

void
http_limits_request_get(struct http_req *r)
{
	char id[37];

	if (!limit_request_id(r, id))
		return;
	const char *p[] = {id};
	struct db_batch *b = db_batch_new();
	db_batch_add(b, LIMIT_REQUEST_SELECT "WHERE q.id = $1::uuid", 1, p);
	http_submit(r, b, limit_request_ok_cb);
}

static void
limit_request_approved_cb(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;
	struct app *app = http_req_app(r);
	const PGresult *set, *acc, *req;
	json_t *out;

	if (!db_result_ok(res)) {
		http_reply_db_error(r, res);
		return;
	}
	set = db_result_get(res, 0);
	acc = db_result_get(res, 1);
	req = db_result_get(res, 2);
	if (PQntuples(acc) == 1)
		acache_update(app->acache, acc, 0);
	if (PQgetvalue(set, 0, col(set, "applied"))[0] != 't')
		service_limit_change_at(app, col_i64(set, 0, col(set, "effective_us")));
	out = limit_request_json(req, 0);
	json_object_set_new(out, "applied",
	                    json_boolean(PQgetvalue(set, 0, col(set, "applied"))[0] == 't'));
	json_object_set_new(out, "effective_at", j_ts_col(set, 0, col(set, "effective_us")));
	http_reply_json(r, 200, out);
}

void
http_limits_request_approve(struct http_req *r)
{
	static const char *const allowed[] = {"effective_at", NULL};
	json_t *body;
	struct jf_err e;
	int64_t eff = 0;
	char id[37], effs[24], now[24];
	int rc = 1;

	if (!limit_request_id(r, id))
		return;
	/* an empty body is fine here */
	{
		size_t len;
		http_req_body(r, &len);
		body = len ? http_req_json_object(r) : NULL;
		if (len && body == NULL)
			return;
	}
	if (body && (jf_only(body, allowed, &e) < 0 ||
	             (rc = jf_time(body, "effective_at", false, &eff, &e)) < 0)) {
		http_reply_validation(r, &e);
		return;
	}
	usec_param(eff, effs);
	usec_param(clock_now(), now);
	struct app *app = http_req_app(r);
	char notice[16], thr[THRESHOLDS_PARAM_LEN];
	snprintf(notice, sizeof notice, "%d", app->cfg->limit_notice_days);
	thresholds_param(app->cfg, thr);
	const char *p[] = {id,  rc == 0 ? effs : NULL, notice,        thr,
	                   now, http_req_actor(r),     http_req_id(r)};
	struct db_batch *b = db_batch_new();
	db_batch_add(
	    b,
	    "SELECT applied, creditd_us(effective_at) AS effective_us FROM "
	    "creditd_limit_request_approve($1::uuid, creditd_ts($2::bigint), $3::int, $4::int[], "
	    "creditd_ts($5), $6, $7)",
	    7, p);
	db_batch_add(b,
	             "SELECT * FROM account_view WHERE id = (SELECT account_id FROM limit_requests "
	             "WHERE id = "
	             "$1::uuid)",
	             1, p);
	db_batch_add(b, LIMIT_REQUEST_SELECT "WHERE q.id = $1::uuid", 1, p);
	http_submit(r, b, limit_request_approved_cb);
}

void
http_limits_request_decline(struct http_req *r)
{
	static const char *const allowed[] = {"reason", NULL};
	json_t *body = http_req_json_object(r);
	const char *reason = NULL;
	struct jf_err e;
	char id[37], now[24];

	if (body == NULL)
		return;
	if (jf_only(body, allowed, &e) < 0 ||
	    jf_string(body, "reason", true, 2000, &reason, &e) < 0) {
		http_reply_validation(r, &e);
		return;
	}
	if (!limit_request_id(r, id))
		return;
	usec_param(clock_now(), now);
	const char *p[] = {id, reason, now, http_req_actor(r), http_req_id(r)};
	struct db_batch *b = db_batch_new();
	db_batch_add(
	    b, "SELECT creditd_limit_request_decline($1::uuid, $2, creditd_ts($3), $4, $5)", 5, p);
	db_batch_add(b, LIMIT_REQUEST_SELECT "WHERE q.id = $1::uuid", 1, p);
	http_submit(r, b, limit_request_ok_cb);
}
