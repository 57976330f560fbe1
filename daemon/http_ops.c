/* http_ops.c: /healthz, /readyz, /metrics, /v1/test/clock, /v1/audit. */
#include "http_ops.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "app.h"
#include "civil.h"
#include "clock.h"
#include "db.h"
#include "http_util.h"
#include "jsonfield.h"
#include "metrics.h"
#include "sched.h"
#include "service.h"

void
http_ops_healthz(struct http_req *r)
{
	http_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

void
http_ops_readyz(struct http_req *r)
{
	struct app *app = http_req_app(r);
	bool ok = db_ready(app->db) && service_ready(app);

	http_reply_json(r, ok ? 200 : 503,
	                json_pack("{s:s, s:i, s:b}", "database", db_ready(app->db) ? "ok" : "down",
	                          "schema_version", db_schema_version(app->db), "ready", ok));
}

void
http_ops_metrics(struct http_req *r)
{
	struct evbuffer *buf = evbuffer_new();

	metrics_render(http_req_app(r)->metrics, buf);
	http_reply_buffer(r, 200, "text/plain; version=0.0.4", buf);
	evbuffer_free(buf);
}

static json_t *
clock_json(void)
{
	char buf[CIVIL_TS_LEN];

	civil_format_rfc3339(clock_now(), buf);
	return json_pack("{s:s}", "now", buf);
}

void
http_ops_clock_get(struct http_req *r)
{
	http_reply_json(r, 200, clock_json());
}

static void
clock_advanced(void *arg)
{
	struct http_req *r = arg;

	http_reply_json(r, 200, clock_json());
}

void
http_ops_clock_put(struct http_req *r)
{
	static const char *const allowed[] = {"now", NULL};
	json_t *body = http_req_json_object(r);
	struct jf_err e;
	int64_t t;

	if (body == NULL)
		return;
	if (jf_only(body, allowed, &e) < 0 || jf_time(body, "now", true, &t, &e) < 0) {
		http_reply_validation(r, &e);
		return;
	}
	if (t < clock_now()) {
		http_reply_error(r, 409, "conflict", "the test clock only moves forward", "now");
		return;
	}
	/* R1.6: run the work that falls due up to t, in time order, first. */
	if (sched_advance(http_req_app(r)->sched, t, clock_advanced, r) != 0)
		http_reply_error(r, 409, "conflict", "the clock is already being moved", "now");
}

static json_t *
audit_row_json(const PGresult *pg, int row)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", j_int_col(pg, row, col(pg, "id")));
	json_object_set_new(o, "at", j_ts_col(pg, row, col(pg, "at_us")));
	json_object_set_new(o, "actor", j_text_col(pg, row, col(pg, "actor")));
	json_object_set_new(o, "action", j_text_col(pg, row, col(pg, "action")));
	json_object_set_new(o, "object_type", j_text_col(pg, row, col(pg, "object_type")));
	json_object_set_new(o, "object_id", j_text_col(pg, row, col(pg, "object_id")));
	json_object_set_new(o, "before", j_json_col(pg, row, col(pg, "before")));
	json_object_set_new(o, "after", j_json_col(pg, row, col(pg, "after")));
	json_object_set_new(o, "request_id", j_text_col(pg, row, col(pg, "request_id")));
	return o;
}

static void
audit_cb(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;

	http_reply_page(r, res, 0, audit_row_json, "id");
}

void
http_ops_audit(struct http_req *r)
{
	int limit;
	int64_t after;
	char lim[16], cur[24];

	if (!http_paging(r, "after", &limit, &after))
		return;
	snprintf(lim, sizeof lim, "%d", limit + 1);
	snprintf(cur, sizeof cur, "%" PRId64, after);
	const char *p[] = {cur, lim};
	struct db_batch *b = db_batch_new();
	db_batch_add(
	    b,
	    "SELECT id, creditd_us(at) AS at_us, actor, action, object_type, object_id, "
	    "before::text, after::text, request_id FROM audit_log WHERE id > $1 ORDER BY id "
	    "LIMIT $2",
	    2, p);
	http_submit(r, b, audit_cb);
}

static json_t *
notification_row_json(const PGresult *pg, int row)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", j_text_col(pg, row, col(pg, "id")));
	json_object_set_new(o, "kind", j_text_col(pg, row, col(pg, "kind")));
	json_object_set_new(o, "account", j_text_col(pg, row, col(pg, "account_id")));
	json_object_set_new(o, "created_at", j_ts_col(pg, row, col(pg, "created_us")));
	json_object_set_new(o, "payload", j_json_col(pg, row, col(pg, "payload")));
	return o;
}

static void
notifications_cb(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;

	http_reply_page(r, res, 0, notification_row_json, "id");
}

/* GET /v1/notifications?after=<cursor>&account=&kind= (R8.1). */
void
http_ops_notifications(struct http_req *r)
{
	const char *account = http_req_query(r, "account"), *id = NULL, *ext = NULL;
	int limit;
	int64_t after;
	char lim[16], cur[24];

	if (!http_paging(r, "after", &limit, &after))
		return;
	if (account && !account_ref(account, &id, &ext)) {
		http_reply_error(r, 400, "validation_failed",
		                 "account: must be a UUID or ext:<external_ref>", "account");
		return;
	}
	snprintf(lim, sizeof lim, "%d", limit + 1);
	snprintf(cur, sizeof cur, "%" PRId64, after);
	const char *p[] = {cur, lim, http_req_query(r, "kind"), id, ext};
	struct db_batch *b = db_batch_new();
	db_batch_add(b,
	             "SELECT n.id, n.kind, n.account_id, creditd_us(n.created_at) AS created_us, "
	             "n.payload::text FROM notifications n "
	             "WHERE n.id > $1 AND ($3::text IS NULL OR n.kind = $3) "
	             "AND ($4::uuid IS NULL AND $5::text IS NULL OR n.account_id IN "
	             "(SELECT a.id FROM accounts a WHERE a.id = $4::uuid OR a.external_ref = $5)) "
	             "ORDER BY n.id LIMIT $2",
	             5, p);
	http_submit(r, b, notifications_cb);
}
