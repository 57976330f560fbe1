/* http_ops.c: /healthz, /readyz, /metrics, /v1/test/clock, /v1/audit. */
#include "http_ops.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "app.h"
#include "civil.h"
#include "clock.h"
#include "db.h"
#include "http_util.h"
#include "jsonfield.h"
#include "log.h"
#include "metrics.h"
#include "sched.h"
#include "service.h"
#include "xmalloc.h"

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

/* A clock move in progress: the request and the time it moved from. */
struct clock_move {
	struct http_req *r;
	int64_t from;
};

static void
clock_audited(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;

	/* the clock has moved already: a lost audit row is logged, not undone */
	if (!db_result_ok(res))
		log_req(LOG_LEVEL_WARNING, http_req_id(r), "test clock move not audited: %s",
		        db_result_error(res));
	http_reply_json(r, 200, clock_json());
}

static void
clock_advanced(void *arg)
{
	struct clock_move *m = arg;
	struct http_req *r = m->r;
	char from[CIVIL_TS_LEN], to[CIVIL_TS_LEN], now[24];
	char before[CIVIL_TS_LEN + 16], after[CIVIL_TS_LEN + 16];

	civil_format_rfc3339(m->from, from);
	free(m);
	civil_format_rfc3339(clock_now(), to);
	snprintf(before, sizeof before, "{\"now\": \"%s\"}", from);
	snprintf(after, sizeof after, "{\"now\": \"%s\"}", to);
	usec_param(clock_now(), now);
	/* R9.5: moving the test clock is a mutating call */
	const char *p[] = {now, http_req_actor(r), before, after, http_req_id(r)};
	struct db_batch *b = db_batch_new();
	db_batch_add(b,
	             "SELECT creditd_audit(creditd_ts($1), $2, 'test_clock.set', 'test_clock', "
	             "'clock', $3::jsonb, $4::jsonb, $5)",
	             5, p);
	if (db_submit(http_req_app(r)->db, b, clock_audited, r) != 0) {
		log_req(LOG_LEVEL_WARNING, http_req_id(r),
		        "test clock move not audited: database unavailable");
		http_reply_json(r, 200, clock_json());
	}
}

void
http_ops_clock_put(struct http_req *r)
{
	static const char *const allowed[] = {"now", NULL};
	json_t *body = http_req_json_object(r);
	struct clock_move *m;
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
	m = xcalloc(1, sizeof *m);
	m->r = r;
	m->from = clock_now();
	/* R1.6: run the work that falls due up to t, in time order, first. */
	if (sched_advance(http_req_app(r)->sched, t, clock_advanced, m) != 0) {
		free(m);
		http_reply_error(r, 409, "conflict", "the clock is already being moved", "now");
	}
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

/* ---- cursors over append-only logs (R8.2, R9.5) ----
 *
 * GET /v1/notifications and GET /v1/audit page with after=<row id>. Rows are
 * shown in (txid, id) order and only once every transaction that could still
 * write a row before them has ended (sql/0021_audit_api.sql): a reader that
 * follows the cursor never skips a row that committed after a higher id. The
 * cursor is the id of the last row read, as before. A generation comes first
 * in that order: it goes up when the logs were restored from another
 * cluster, whose transaction ids are not this one's (sql/0028). */

/* FROM-list item `k` for table t: k.g and k.t are the cursor row's
 * generation and txid (0, 0: the start, or a row from before 0021), k.x the
 * oldest transaction still running, k.cur the present generation. Rows of an
 * older generation came from another cluster before a restore (0028): all
 * of them are final. */
#define LOG_KEYS(t)                                                                                \
	"(SELECT coalesce(c.gen, 0) AS g, coalesce(c.txid, '0'::xid8) AS t, "                      \
	"pg_snapshot_xmin(pg_current_snapshot()) AS x, (SELECT gen FROM log_generation) AS cur "   \
	"FROM (SELECT $1::bigint AS id) q LEFT JOIN " t " c ON c.id = q.id) k "

/* Rows of table alias a after the cursor and final, in log order. */
#define LOG_AFTER(a)                                                                               \
	"(" a ".gen, " a ".txid, " a ".id) > (k.g, k.t, $1::bigint) "                              \
	"AND (" a ".gen < k.cur OR " a ".txid < k.x) "
#define LOG_ORDER(a) "ORDER BY " a ".gen, " a ".txid, " a ".id "

/* The batch's statement 0: is the cursor (0 = the start) a row of `table`? */
static void
log_cursor_check(struct db_batch *b, const char *table, const char *const *p)
{
	char sql[160];

	snprintf(sql, sizeof sql,
	         "SELECT $1::bigint = 0 OR EXISTS (SELECT 1 FROM %s WHERE id = $1::bigint)", table);
	db_batch_add(b, sql, 1, p);
}

/* The page (statement 1) after checking the cursor (statement 0). */
static void
log_page_cb(const struct db_result *res, struct http_req *r, row_json_fn fn)
{
	const PGresult *pg;

	if (!db_result_ok(res)) {
		http_reply_db_error(r, res);
		return;
	}
	pg = db_result_get(res, 0);
	if (PQntuples(pg) != 1 || PQgetvalue(pg, 0, 0)[0] != 't') {
		http_reply_error(r, 400, "validation_failed", "after: unknown cursor", "after");
		return;
	}
	http_reply_page(r, res, 1, fn, "id");
}

static void
audit_cb(const struct db_result *res, void *arg)
{
	log_page_cb(res, arg, audit_row_json);
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
	log_cursor_check(b, "audit_log", p);
	db_batch_add(
	    b,
	    "SELECT l.id, creditd_us(l.at) AS at_us, l.actor, l.action, l.object_type, "
	    "l.object_id, l.before::text, l.after::text, l.request_id FROM audit_log l, " LOG_KEYS(
	        "audit_log") "WHERE " LOG_AFTER("l") LOG_ORDER("l") "LIMIT $2",
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
	log_page_cb(res, arg, notification_row_json);
}

/* The kinds of API.md "notifications", and payment.reversed (README). */
static const char *const notification_kinds[] = {
    "account.suspended", "account.reactivated",   "usage.threshold",  "limit.change_scheduled",
    "limit.changed",     "limit_request.decided", "invoice.issued",   "invoice.overdue",
    "invoice.reminder",  "payment.received",      "payment.reversed", "account.terminated",
};

static bool
notification_kind_known(const char *kind)
{
	for (size_t i = 0; i < sizeof notification_kinds / sizeof *notification_kinds; i++)
		if (strcmp(kind, notification_kinds[i]) == 0)
			return true;
	return false;
}

/* GET /v1/notifications?after=<cursor>&account=&kind= (R8.1, R8.2). */
void
http_ops_notifications(struct http_req *r)
{
	const char *account = http_req_query(r, "account"), *id = NULL, *ext = NULL;
	const char *kind = http_req_query(r, "kind");
	int limit;
	int64_t after;
	char lim[16], cur[24];

	if (!http_paging(r, "after", &limit, &after))
		return;
	/* a mistyped kind would page through nothing for ever */
	if (kind && *kind && !notification_kind_known(kind)) {
		http_reply_error(r, 400, "validation_failed",
		                 "kind: not a notification kind (see API.md)", "kind");
		return;
	}
	if (account && !account_ref(account, &id, &ext)) {
		http_reply_error(r, 400, "validation_failed",
		                 "account: must be a UUID or ext:<external_ref>", "account");
		return;
	}
	snprintf(lim, sizeof lim, "%d", limit + 1);
	snprintf(cur, sizeof cur, "%" PRId64, after);
	const char *p[] = {cur, lim, kind, id, ext};
	struct db_batch *b = db_batch_new();
	log_cursor_check(b, "notifications", p);
	db_batch_add(b,
	             "SELECT n.id, n.kind, n.account_id, creditd_us(n.created_at) AS created_us, "
	             "creditd_payload_out(n.payload, n.account_id) AS payload FROM notifications "
	             "n, " LOG_KEYS("notifications") "WHERE " LOG_AFTER(
	                 "n") "AND ($3::text IS NULL OR n.kind = $3) "
	                      "AND ($4::uuid IS NULL AND $5::text IS NULL OR n.account_id IN "
	                      "(SELECT a.id FROM accounts a WHERE a.id = $4::uuid OR "
	                      "a.external_ref = $5)) " LOG_ORDER("n") "LIMIT $2",
	             5, p);
	http_submit(r, b, notifications_cb);
}
