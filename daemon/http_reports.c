/* http_reports.c: the exposure report and the suspension history (R7.2,
 * R7.3). The database sorts and computes remainings/headroom; it also
 * writes the exposure report's rows and totals as text (many accounts, see
 * below), while this file renders the suspension history's rows. */
#include "http_reports.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>

#include "app.h"
#include "civil.h"
#include "clock.h"
#include "currency.h"
#include "db.h"
#include "http.h"
#include "http_format.h"
#include "http_util.h"
#include "httpd.h"
#include "log.h"
#include "money.h"
#include "tz.h"
#include "xmalloc.h"

/* ---- output format ---- */

/* ---- CSV (RFC 4180: CRLF line ends, quotes doubled) ---- */

static void
csv_text_col(struct evbuffer *b, const PGresult *pg, int row, int c, bool first)
{
	csv_text_field(b, PQgetisnull(pg, row, c) ? NULL : PQgetvalue(pg, row, c), first);
}

static void
csv_header(struct evbuffer *b, const char *const *names)
{
	for (int i = 0; names[i]; i++)
		csv_field(b, names[i], i == 0);
	evbuffer_add(b, "\r\n", 2);
}

static void
csv_reply(struct http_req *r, struct evbuffer *b, const char *filename)
{
	char disp[96];

	snprintf(disp, sizeof disp, "attachment; filename=\"%s\"", filename);
	http_reply_add_header(r, "Content-Disposition", disp);
	http_reply_buffer(r, 200, CSV_TYPE, b);
	evbuffer_free(b);
}

/* A JSON array of strings as "a;b" (suspension reasons in CSV). */
static void
csv_reasons_col(struct evbuffer *b, const PGresult *pg, int row, int c)
{
	json_t *arr = j_json_col(pg, row, c), *v;
	size_t i, len = 0;
	char *s;

	json_array_foreach(arr, i, v)
	{
		if (json_is_string(v))
			len += json_string_length(v) + 1;
	}
	s = xcalloc(1, len + 1);
	json_array_foreach(arr, i, v)
	{
		if (!json_is_string(v))
			continue;
		if (*s)
			strcat(s, ";");
		strcat(s, json_string_value(v));
	}
	csv_text_field(b, s, false);
	free(s);
	json_decref(arr);
}

/* ---- exposure report ---- */

/* The accounts (R7.2), written by PostgreSQL as JSON objects or CSV lines in
 * pages of EXPOSURE_PAGE accounts (sql/0031_report_text.sql): at 100,000
 * accounts, building the rows here took seconds of the event loop and
 * hundreds of MB (bench/reports). $1 status, $2 currency (NULL = all), $3
 * first day of the current billing month: a counter still on an older month
 * counts as 0 (rollover pending). Remainings are limit - used, never below
 * 0 (as on the account object), NULL without a limit; headroom is the
 * smaller one (least() skips NULLs). Amounts as creditd_amount (the shortest
 * decimal, as money_format). Result: (part 0, the pages in order), then for
 * JSON (part 1) the per-currency totals as a JSON array. */
#define EXPOSURE_PAGE "500"
#define EXPOSURE_ROWS                                                                              \
	"WITH a AS ("                                                                              \
	" SELECT v.id, v.external_ref, v.name, v.currency, v.status, v.reasons_json,"              \
	"  v.monthly_limit, v.total_limit, v.exposure,"                                            \
	"  CASE WHEN v.usage_month_day < $3::int THEN 0::bigint ELSE v.monthly_usage END"          \
	"   AS monthly_usage"                                                                      \
	" FROM account_view v"                                                                     \
	" WHERE ($1::text IS NULL OR v.status = $1::text)"                                         \
	"  AND ($2::text IS NULL OR v.currency = $2::text)"                                        \
	"), r AS ("                                                                                \
	" SELECT a.*,"                                                                             \
	"  CASE WHEN a.monthly_limit IS NOT NULL THEN least(greatest(a.monthly_limit::numeric"     \
	"   - a.monthly_usage, 0), 9223372036854775807)::bigint END AS monthly_remaining,"         \
	"  CASE WHEN a.total_limit IS NOT NULL THEN least(greatest(a.total_limit::numeric"         \
	"   - a.exposure, 0), 9223372036854775807)::bigint END AS total_remaining"                 \
	" FROM a"                                                                                  \
	"), h AS ("                                                                                \
	" SELECT r.*, least(r.monthly_remaining, r.total_remaining) AS headroom FROM r"            \
	"), s AS ("                                                                                \
	" SELECT h.*, row_number() OVER (ORDER BY h.headroom ASC NULLS LAST,"                      \
	"  h.external_ref COLLATE \"C\", h.id) AS rn FROM h"                                       \
	") "

static const char exposure_json_sql[] = EXPOSURE_ROWS
    "SELECT 0 AS part, min(s.rn) AS o, string_agg(json_build_object("
    " 'external_ref', s.external_ref, 'id', s.id, 'name', s.name, 'currency', s.currency,"
    " 'status', s.status, 'suspension_reasons', s.reasons_json::json,"
    " 'monthly_usage', creditd_amount(s.monthly_usage),"
    " 'monthly_limit', creditd_amount(s.monthly_limit),"
    " 'monthly_remaining', creditd_amount(s.monthly_remaining),"
    " 'exposure', creditd_amount(s.exposure), 'total_limit', creditd_amount(s.total_limit),"
    " 'total_remaining', creditd_amount(s.total_remaining),"
    " 'headroom', creditd_amount(s.headroom))::text, ',' ORDER BY s.rn) AS text"
    " FROM s GROUP BY (s.rn - 1) / " EXPOSURE_PAGE " "
    "UNION ALL "
    "SELECT 1, 0, coalesce(json_agg(json_build_object('currency', t.currency,"
    " 'accounts', t.accounts, 'exposure', creditd_amount(t.exposure::bigint),"
    " 'monthly_usage', creditd_amount(t.monthly_usage::bigint))"
    " ORDER BY t.currency COLLATE \"C\"), '[]')::text"
    " FROM (SELECT s.currency, count(*) AS accounts, sum(s.exposure) AS exposure,"
    "  sum(s.monthly_usage) AS monthly_usage FROM s GROUP BY s.currency) t "
    "ORDER BY part, o";

static const char exposure_csv_sql[] = EXPOSURE_ROWS
    "SELECT 0 AS part, min(s.rn) AS o, string_agg(concat_ws(',',"
    " creditd_csv_text(s.external_ref), creditd_csv_text(s.id::text),"
    " creditd_csv_text(s.name), creditd_csv_text(s.currency), creditd_csv_text(s.status),"
    " creditd_csv_text((SELECT string_agg(x, ';')"
    "  FROM json_array_elements_text(s.reasons_json::json) x)),"
    " creditd_csv_field(creditd_amount(s.monthly_usage)),"
    " creditd_csv_field(creditd_amount(s.monthly_limit)),"
    " creditd_csv_field(creditd_amount(s.monthly_remaining)),"
    " creditd_csv_field(creditd_amount(s.exposure)),"
    " creditd_csv_field(creditd_amount(s.total_limit)),"
    " creditd_csv_field(creditd_amount(s.total_remaining)),"
    " creditd_csv_field(creditd_amount(s.headroom))) || E'\\r\\n', '' ORDER BY s.rn) AS text"
    " FROM s GROUP BY (s.rn - 1) / " EXPOSURE_PAGE " ORDER BY part, o";

struct report_req {
	struct http_req *r;
	bool csv;
	int64_t now; /* the report's as_of */
	int32_t from, to;
};

/* The exposure report is streamed (R9.1: the event loop never holds it
 * whole; at 100,000 accounts it is 37 MB): each page goes out as it comes
 * from PostgreSQL (db_batch_add_rows, one statement: one snapshot, totals
 * that match the rows), as one chunk. JSON: {"as_of":...,"items":[, the
 * pages (part 0) joined by ",", ],"totals":, the totals (part 1), }\n; CSV:
 * the header line, the pages. The head of the reply goes out with the first
 * row, so that an error before it is still answered as one (500, 503); an
 * error after it cuts the reply (httpd_stream_end) and is logged. */
#define EXPOSURE_HIGH (1024 * 1024) /* queued reply bytes that pause PostgreSQL */

struct exposure {
	struct http_req *r;      /* until the reply's head goes out */
	struct httpd_conn *conn; /* then the stream, until it ends */
	struct db_rows *rows;    /* the statement, until the batch callback */
	char rid[17];            /* r's, for the log after r is finished */
	bool csv;
	bool started; /* the head went out (or was not wanted) */
	bool paused;  /* PostgreSQL not read until the client drains */
	bool item;    /* a page is out: the next one needs sep */
	bool mid;     /* mid is out */
	int64_t now;  /* as_of */
};

static const char EXPOSURE_CSV_HEAD[] =
    "external_ref,id,name,currency,status,suspension_reasons,monthly_usage,monthly_limit,"
    "monthly_remaining,exposure,total_limit,total_remaining,headroom\r\n";

static void
exposure_resume(struct exposure *x)
{
	if (x->paused && x->rows != NULL)
		db_rows_resume(x->rows);
	x->paused = false;
}

/* The client went away or cannot be written to: end the stream (a broken
 * reply) and read the rest of the statement without sending it. */
static void
exposure_stop(struct exposure *x)
{
	if (x->conn != NULL) {
		log_req(LOG_LEVEL_INFO, x->rid, "exposure report: client went away mid-reply");
		httpd_stream_end(x->conn, false);
		x->conn = NULL;
	}
	exposure_resume(x);
}

static void
exposure_drained(void *arg)
{
	exposure_resume(arg);
}

static void
exposure_gone(void *arg)
{
	exposure_stop(arg);
}

static const struct httpd_stream_cb exposure_stream_cb = {
    .drained = exposure_drained,
    .gone = exposure_gone,
};

/* Write pieces as one chunk; false (and stopped) when the client has gone. */
static bool
exposure_write(struct exposure *x, const struct iovec *iov, int n)
{
	if (x->conn == NULL)
		return false;
	if (!httpd_stream_writev(x->conn, iov, n)) {
		exposure_stop(x);
		return false;
	}
	return true;
}

/* The reply's head and the body's head, once. False: no body to write (HEAD,
 * the client has gone). */
static bool
exposure_start(struct exposure *x)
{
	char head[64];
	struct iovec v;

	if (x->started)
		return x->conn != NULL;
	x->started = true;
	if (x->csv) {
		http_reply_add_header(x->r, "Content-Disposition",
		                      "attachment; filename=\"exposure.csv\"");
		v.iov_base = (void *)(uintptr_t)EXPOSURE_CSV_HEAD;
		v.iov_len = sizeof EXPOSURE_CSV_HEAD - 1;
	} else {
		char asof[CIVIL_TS_LEN];

		civil_format_rfc3339(x->now, asof);
		v.iov_len =
		    (size_t)snprintf(head, sizeof head, "{\"as_of\":\"%s\",\"items\":[", asof);
		v.iov_base = head;
	}
	x->conn = http_reply_stream(x->r, 200, x->csv ? CSV_TYPE : "application/json",
	                            &exposure_stream_cb, x);
	x->r = NULL; /* finished */
	return exposure_write(x, &v, 1);
}

/* JSON: the end of the items and the start of the totals, once, into v[0];
 * returns the pieces put there (0 or 1). */
static int
exposure_mid(struct exposure *x, struct iovec *v)
{
	static const char mid[] = "],\"totals\":";

	if (x->mid || x->csv)
		return 0;
	x->mid = true;
	v[0].iov_base = (void *)(uintptr_t)mid;
	v[0].iov_len = sizeof mid - 1;
	return 1;
}

/* Rows (part, o, text) as they come: a page of accounts or the totals. */
static void
exposure_rows(struct db_rows *rows, const PGresult *pg, void *arg)
{
	struct exposure *x = arg;

	x->rows = rows;
	for (int i = 0; i < PQntuples(pg); i++) {
		struct iovec v[2];
		int n = 0;

		if (!exposure_start(x))
			return; /* the rest is read and dropped */
		if (col_i64(pg, i, 0) == 0) {
			if (x->item && !x->csv) {
				v[n].iov_base = (void *)(uintptr_t) ",";
				v[n++].iov_len = 1;
			}
			x->item = true;
		} else {
			n = exposure_mid(x, v);
		}
		v[n].iov_base = PQgetvalue(pg, i, 2);
		v[n++].iov_len = (size_t)PQgetlength(pg, i, 2);
		if (!exposure_write(x, v, n))
			return;
	}
	/* a slow client: PostgreSQL waits rather than the daemon buffering
	 * the report (exposure_drained resumes) */
	if (x->conn != NULL && !x->paused && httpd_stream_pending(x->conn) > EXPOSURE_HIGH) {
		log_req(LOG_LEVEL_DEBUG, x->rid, "exposure report: waiting for the client");
		x->paused = true;
		db_rows_pause(rows);
	}
}

static void
exposure_cb(const struct db_result *res, void *arg)
{
	struct exposure *x = arg;
	struct iovec v[2];
	int n = 0;

	x->rows = NULL; /* the statement is over */
	x->paused = false;
	if (!db_result_ok(res)) {
		if (!x->started) {
			http_reply_db_error(x->r, res);
		} else if (x->conn != NULL) {
			log_req(LOG_LEVEL_WARNING, x->rid, "exposure report cut after its head: %s",
			        db_result_error(res));
			httpd_stream_end(x->conn, false);
		}
		free(x);
		return;
	}
	if (exposure_start(x)) {
		if (!x->csv) {
			n = exposure_mid(x, v);
			v[n].iov_base = (void *)(uintptr_t) "}\n";
			v[n++].iov_len = 2;
		}
		if (exposure_write(x, v, n))
			httpd_stream_end(x->conn, true);
	}
	free(x);
}

/* Submit with q as the callback argument; q is freed if submitting fails. */
static void
reports_submit(struct report_req *q, struct db_batch *b,
               void (*cb)(const struct db_result *, void *))
{
	if (db_submit(http_req_app(q->r)->db, b, cb, q) != 0) {
		http_reply_unavailable(q->r);
		free(q);
	}
}

void
http_reports_exposure(struct http_req *r)
{
	const char *status = http_req_query(r, "status");
	const char *currency = http_req_query(r, "currency");
	struct exposure *x;
	char month[16];
	int fmt;

	if ((fmt = http_req_format(r, "csv", "text/csv")) < 0)
		return;
	if (status && strcmp(status, "active") != 0 && strcmp(status, "suspended") != 0 &&
	    strcmp(status, "terminated") != 0) {
		http_reply_error(r, 400, "validation_failed",
		                 "status: must be active, suspended or terminated", "status");
		return;
	}
	if (currency && !currency_valid(currency)) {
		http_reply_error(r, 400, "validation_failed", "currency: not an ISO 4217 code",
		                 "currency");
		return;
	}
	x = xcalloc(1, sizeof *x);
	x->r = r;
	x->csv = fmt == 1;
	x->now = clock_now();
	snprintf(x->rid, sizeof x->rid, "%s", http_req_id(r));
	snprintf(month, sizeof month, "%" PRId32, tz_month_of(x->now));
	const char *p[] = {status, currency, month};
	struct db_batch *b = db_batch_new();
	db_batch_add_rows(b, x->csv ? exposure_csv_sql : exposure_json_sql, 3, p, exposure_rows, x);
	db_batch_set_slow(b); /* about 1 s of PostgreSQL at 100,000 accounts */
	if (db_submit(http_req_app(r)->db, b, exposure_cb, x) != 0) {
		http_reply_unavailable(r);
		free(x);
	}
}

/* ---- suspension history ---- */

/* $1, $2: [from, to) as usec (NULL = unbounded). */
static const char suspensions_sql[] =
    "SELECT h.id, creditd_us(h.at) AS at_us, h.account_id, a.external_ref, h.status_before,"
    " h.status_after, array_to_json(h.reasons_before)::text AS reasons_before,"
    " array_to_json(h.reasons_after)::text AS reasons_after, h.cause, h.actor, h.note"
    " FROM account_history h JOIN accounts a ON a.id = h.account_id"
    " WHERE h.status_before IS NOT NULL"
    "  AND ($1::bigint IS NULL OR h.at >= creditd_ts($1::bigint))"
    "  AND ($2::bigint IS NULL OR h.at < creditd_ts($2::bigint))"
    " ORDER BY h.at DESC, h.id DESC";

struct susp_cols {
	int at, account, ext, status_before, status_after, reasons_before, reasons_after, cause,
	    actor, note;
};

static void
susp_cols_init(struct susp_cols *c, const PGresult *pg)
{
	c->at = col(pg, "at_us");
	c->account = col(pg, "account_id");
	c->ext = col(pg, "external_ref");
	c->status_before = col(pg, "status_before");
	c->status_after = col(pg, "status_after");
	c->reasons_before = col(pg, "reasons_before");
	c->reasons_after = col(pg, "reasons_after");
	c->cause = col(pg, "cause");
	c->actor = col(pg, "actor");
	c->note = col(pg, "note");
}

static json_t *
susp_row_json(const PGresult *pg, int i, const struct susp_cols *c)
{
	json_t *o = json_object();

	json_object_set_new(o, "at", j_ts_col(pg, i, c->at));
	json_object_set_new(o, "account", j_text_col(pg, i, c->account));
	json_object_set_new(o, "external_ref", j_text_col(pg, i, c->ext));
	json_object_set_new(o, "status_before", j_text_col(pg, i, c->status_before));
	json_object_set_new(o, "status_after", j_text_col(pg, i, c->status_after));
	json_object_set_new(o, "reasons_before", j_json_col(pg, i, c->reasons_before));
	json_object_set_new(o, "reasons_after", j_json_col(pg, i, c->reasons_after));
	json_object_set_new(o, "cause", j_text_col(pg, i, c->cause));
	json_object_set_new(o, "actor", j_text_col(pg, i, c->actor));
	json_object_set_new(o, "note", j_text_col(pg, i, c->note));
	return o;
}

static void
susp_csv(struct http_req *r, const PGresult *pg, const struct susp_cols *c)
{
	static const char *const header[] = {"at",
	                                     "account",
	                                     "external_ref",
	                                     "status_before",
	                                     "status_after",
	                                     "reasons_before",
	                                     "reasons_after",
	                                     "cause",
	                                     "actor",
	                                     "note",
	                                     NULL};
	struct evbuffer *b = evbuffer_new();
	char ts[CIVIL_TS_LEN];

	csv_header(b, header);
	for (int i = 0; i < PQntuples(pg); i++) {
		if (civil_format_rfc3339(col_i64(pg, i, c->at), ts) != 0)
			ts[0] = '\0';
		csv_field(b, ts, true);
		csv_text_col(b, pg, i, c->account, false);
		csv_text_col(b, pg, i, c->ext, false);
		csv_text_col(b, pg, i, c->status_before, false);
		csv_text_col(b, pg, i, c->status_after, false);
		csv_reasons_col(b, pg, i, c->reasons_before);
		csv_reasons_col(b, pg, i, c->reasons_after);
		csv_text_col(b, pg, i, c->cause, false);
		csv_text_col(b, pg, i, c->actor, false);
		csv_text_col(b, pg, i, c->note, false);
		evbuffer_add(b, "\r\n", 2);
	}
	csv_reply(r, b, "suspensions.csv");
}

static json_t *
j_day_or_null(int32_t day)
{
	char buf[CIVIL_DATE_LEN];

	if (day == CIVIL_DAY_NONE || civil_format_date(day, buf) != 0)
		return json_null();
	return json_string(buf);
}

static void
suspensions_cb(const struct db_result *res, void *arg)
{
	struct report_req *q = arg;
	struct http_req *r = q->r;
	bool csv = q->csv;
	int32_t from = q->from, to = q->to;
	struct susp_cols c;
	const PGresult *pg;
	json_t *items;

	free(q);
	if (!db_result_ok(res)) {
		http_reply_db_error(r, res);
		return;
	}
	pg = db_result_get(res, 0);
	susp_cols_init(&c, pg);
	if (csv) {
		susp_csv(r, pg, &c);
		return;
	}
	items = json_array();
	for (int i = 0; i < PQntuples(pg); i++)
		json_array_append_new(items, susp_row_json(pg, i, &c));
	http_reply_json(r, 200,
	                json_pack("{s:o, s:o, s:o}", "from", j_day_or_null(from), "to",
	                          j_day_or_null(to), "items", items));
}

/* Optional ?key=YYYY-MM-DD: true with *day (CIVIL_DAY_NONE when absent), or
 * false after answering 400. */
static bool
reports_day_param(struct http_req *r, const char *key, int32_t *day)
{
	const char *s = http_req_query(r, key);
	char msg[64];

	*day = CIVIL_DAY_NONE;
	if (s == NULL || *s == '\0')
		return true;
	if (strlen(s) == 10 && civil_parse_date(s, 10, day) == 0)
		return true;
	snprintf(msg, sizeof msg, "%s: must be a date YYYY-MM-DD", key);
	http_reply_error(r, 400, "validation_failed", msg, key);
	return false;
}

void
http_reports_suspensions(struct http_req *r)
{
	struct report_req *q;
	int32_t from, to;
	char p_from[24], p_to[24];
	int fmt;

	if ((fmt = http_req_format(r, "csv", "text/csv")) < 0 ||
	    !reports_day_param(r, "from", &from) || !reports_day_param(r, "to", &to))
		return;
	if (from != CIVIL_DAY_NONE && to != CIVIL_DAY_NONE && from > to) {
		http_reply_error(r, 400, "validation_failed", "from: must not be after to", "from");
		return;
	}
	if (from != CIVIL_DAY_NONE)
		usec_param(tz_day_start(from), p_from);
	if (to != CIVIL_DAY_NONE)
		usec_param(tz_day_start(to + 1), p_to); /* to is inclusive; to <= CIVIL_DAY_MAX */
	q = xcalloc(1, sizeof *q);
	q->r = r;
	q->csv = fmt == 1;
	q->from = from;
	q->to = to;
	const char *p[] = {from != CIVIL_DAY_NONE ? p_from : NULL,
	                   to != CIVIL_DAY_NONE ? p_to : NULL};
	struct db_batch *b = db_batch_new();
	db_batch_add(b, suspensions_sql, 2, p);
	reports_submit(q, b, suspensions_cb);
}
