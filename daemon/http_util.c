/* http_util.c: shared handler helpers. */
#include "http_util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "app.h"
#include "civil.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "jsonfield.h"
#include "log.h"
#include "money.h"
#include "rate.h"
#include "xmalloc.h"

void
http_reply_db_error(struct http_req *r, const struct db_result *res)
{
	const char *st = db_result_sqlstate(res);
	const char *msg = db_result_error(res);
	const char *detail = db_result_detail(res);
	const char *field = *detail ? detail : NULL;

	if (db_result_unavailable(res)) {
		http_reply_unavailable(r);
	} else if (strcmp(st, SQLSTATE_NOT_FOUND) == 0) {
		http_reply_error(r, 404, "not_found", msg, field);
	} else if (strcmp(st, SQLSTATE_CONFLICT) == 0) {
		http_reply_error(r, 409, "conflict", msg, field);
	} else if (strcmp(st, SQLSTATE_INVALID_STATE) == 0) {
		http_reply_error(r, 422, "invalid_state", msg, field);
	} else if (strcmp(st, SQLSTATE_NOTICE_PERIOD) == 0) {
		http_reply_error(r, 422, "notice_period", msg, field);
	} else if (strcmp(st, SQLSTATE_VALIDATION) == 0) {
		http_reply_error(r, 400, "validation_failed", msg, field);
	} else if (strcmp(st, "23505") == 0) {
		const char *c = db_result_constraint(res);
		char m[160];
		snprintf(m, sizeof m, "already exists (%s)", c);
		http_reply_error(r, 409, "conflict", m,
		                 strstr(c, "external_ref") ? "external_ref" : NULL);
	} else if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0) {
		http_reply_add_header(r, "Retry-After", "1");
		http_reply_error(r, 503, "unavailable", "concurrent update; retry", NULL);
	} else {
		log_req(LOG_LEVEL_ERROR, http_req_id(r), "database error %s: %s in: %.300s", st,
		        msg, db_result_failed_sql(res));
		http_reply_error(r, 500, "internal", "internal error", NULL);
	}
}

void
http_reply_validation(struct http_req *r, const struct jf_err *e)
{
	http_reply_error(r, 400, "validation_failed", e->msg, e->field[0] ? e->field : NULL);
}

bool
http_submit(struct http_req *r, struct db_batch *b, void (*cb)(const struct db_result *, void *))
{
	if (db_submit(http_req_app(r)->db, b, cb, r) != 0) {
		http_reply_unavailable(r);
		return false;
	}
	return true;
}

json_t *
j_money(int64_t v)
{
	char buf[MONEY_FMT_LEN];

	return json_string(money_format(v, buf));
}

int64_t
col_i64(const PGresult *res, int row, int c)
{
	return strtoll(PQgetvalue(res, row, c), NULL, 10);
}

int
col(const PGresult *res, const char *name)
{
	int c = PQfnumber(res, name);

	if (c < 0) {
		log_errorx("result has no column %s", name);
		abort();
	}
	return c;
}

json_t *
j_money_col(const PGresult *res, int row, int c)
{
	if (PQgetisnull(res, row, c))
		return json_null();
	return j_money(col_i64(res, row, c));
}

json_t *
j_rate_col(const PGresult *res, int row, int c)
{
	char buf[RATE_FMT_LEN];

	if (PQgetisnull(res, row, c))
		return json_null();
	return json_string(rate_format((int32_t)col_i64(res, row, c), buf));
}

json_t *
j_ts_col(const PGresult *res, int row, int c)
{
	char buf[CIVIL_TS_LEN];

	if (PQgetisnull(res, row, c))
		return json_null();
	if (civil_format_rfc3339(col_i64(res, row, c), buf) != 0)
		return json_null();
	return json_string(buf);
}

json_t *
j_date_col(const PGresult *res, int row, int c)
{
	char buf[CIVIL_DATE_LEN];

	if (PQgetisnull(res, row, c))
		return json_null();
	if (civil_format_date((int32_t)col_i64(res, row, c), buf) != 0)
		return json_null();
	return json_string(buf);
}

json_t *
j_text_col(const PGresult *res, int row, int c)
{
	if (PQgetisnull(res, row, c))
		return json_null();
	return json_string(PQgetvalue(res, row, c));
}

json_t *
j_int_col(const PGresult *res, int row, int c)
{
	if (PQgetisnull(res, row, c))
		return json_null();
	return json_integer(col_i64(res, row, c));
}

json_t *
j_json_col(const PGresult *res, int row, int c)
{
	json_t *v;

	if (PQgetisnull(res, row, c))
		return json_null();
	v = json_loads(PQgetvalue(res, row, c), JSON_DECODE_ANY, NULL);
	return v ? v : json_null();
}

bool
account_ref(const char *s, const char **id_param, const char **ext_param)
{
	uuid_t u;

	*id_param = *ext_param = NULL;
	if (strncmp(s, "ext:", 4) == 0) {
		if (s[4] == '\0')
			return false;
		*ext_param = s + 4;
		return true;
	}
	if (strlen(s) != 36 || uuid_parse(s, u) != 0)
		return false;
	*id_param = s;
	return true;
}

bool
http_paging(struct http_req *r, const char *cursor_key, int *limit, int64_t *cursor)
{
	const char *l = http_req_query(r, "limit");
	const char *c = http_req_query(r, cursor_key);
	char *end;

	*limit = 100;
	*cursor = 0;
	if (l) {
		long v = strtol(l, &end, 10);
		if (*l == '\0' || *end != '\0' || v < 1 || v > 1000) {
			http_reply_error(r, 400, "validation_failed",
			                 "limit: must be an integer between 1 and 1000", "limit");
			return false;
		}
		*limit = (int)v;
	}
	if (c && *c) {
		/* digits only (no sign or blanks), at most 18 of them: no overflow */
		size_t n = strspn(c, "0123456789");
		if (c[n] != '\0' || n > 18) {
			char msg[96];
			snprintf(msg, sizeof msg, "%s: malformed (pass next_cursor unchanged)",
			         cursor_key);
			http_reply_error(r, 400, "validation_failed", msg, cursor_key);
			return false;
		}
		*cursor = strtoll(c, &end, 10);
	}
	return true;
}

json_t *
j_page(json_t *items, bool more, int64_t next)
{
	char buf[24];

	if (!more)
		return json_pack("{s:o, s:n}", "items", items, "next_cursor");
	snprintf(buf, sizeof buf, "%" PRId64, next);
	return json_pack("{s:o, s:s}", "items", items, "next_cursor", buf);
}

void
http_reply_page(struct http_req *r, const struct db_result *res, int idx, row_json_fn fn,
                const char *cursor_col)
{
	const char *l = http_req_query(r, "limit");
	int limit = l ? atoi(l) : 100;
	const PGresult *pg;
	json_t *items;
	int n, c;
	int64_t last = 0;

	if (!db_result_ok(res)) {
		http_reply_db_error(r, res);
		return;
	}
	pg = db_result_get(res, idx);
	n = PQntuples(pg);
	c = col(pg, cursor_col);
	items = json_array();
	for (int i = 0; i < n && i < limit; i++) {
		json_array_append_new(items, fn(pg, i));
		last = col_i64(pg, i, c);
	}
	http_reply_json(r, 200, j_page(items, n > limit, last));
}

const PGresult *
http_result_found(struct http_req *r, const struct db_result *res, int idx, const char *not_found)
{
	const PGresult *pg;

	if (!db_result_ok(res)) {
		http_reply_db_error(r, res);
		return NULL;
	}
	pg = db_result_get(res, idx < 0 ? db_result_count(res) - 1 : idx);
	if (pg == NULL || PQntuples(pg) == 0) {
		http_reply_error(r, 404, "not_found", not_found, NULL);
		return NULL;
	}
	return pg;
}

void
http_account_page(struct http_req *r, const char *page_sql,
                  void (*cb)(const struct db_result *, void *))
{
	const char *id, *ext;
	int limit;
	int64_t cursor;
	char lim[16], cur[24];

	if (!http_paging(r, "cursor", &limit, &cursor))
		return;
	if (!account_ref(http_req_capture(r, 0), &id, &ext)) {
		http_reply_error(r, 404, "not_found", "account not found", NULL);
		return;
	}
	snprintf(lim, sizeof lim, "%d", limit + 1);
	snprintf(cur, sizeof cur, "%" PRId64, cursor > 0 ? cursor : INT64_MAX);
	const char *p[] = {id, ext, cur, lim};
	struct db_batch *b = db_batch_new();
	db_batch_add(b, "SELECT id FROM accounts WHERE id = $1::uuid OR external_ref = $2", 2, p);
	db_batch_add(b, page_sql, 4, p);
	http_submit(r, b, cb);
}

void
http_seq_list(struct http_req *r, const char *view_select,
              void (*cb)(const struct db_result *, void *))
{
	const char *account = http_req_query(r, "account");
	const char *acc_id = NULL, *acc_ext = NULL;
	int limit;
	int64_t cursor;
	char lim[16], cur[24], *sql;

	if (!http_paging(r, "cursor", &limit, &cursor))
		return;
	if (account != NULL && !account_ref(account, &acc_id, &acc_ext)) {
		http_reply_error(r, 400, "validation_failed",
		                 "account: must be a UUID or ext:<external_ref>", "account");
		return;
	}
	snprintf(lim, sizeof lim, "%d", limit + 1);
	snprintf(cur, sizeof cur, "%" PRId64, cursor);
	const char *p[] = {cur, account ? "t" : "f", acc_id, acc_ext, lim};
	struct db_batch *b = db_batch_new();
	xasprintf(&sql,
	          "%sWHERE seq > $1 AND (NOT $2::boolean OR account_id = (SELECT id FROM accounts "
	          "WHERE id = $3::uuid OR external_ref = $4)) ORDER BY seq LIMIT $5",
	          view_select);
	db_batch_add(b, sql, 5, p);
	free(sql);
	http_submit(r, b, cb);
}

void
http_reply_account_page(struct http_req *r, const struct db_result *res, row_json_fn fn)
{
	if (db_result_ok(res) && PQntuples(db_result_get(res, 0)) == 0) {
		http_reply_error(r, 404, "not_found", "account not found", NULL);
		return;
	}
	http_reply_page(r, res, 1, fn, "id");
}

void
thresholds_param(const struct config *cfg, char buf[THRESHOLDS_PARAM_LEN])
{
	size_t off = 1;

	buf[0] = '{';
	for (size_t k = 0; k < cfg->alert_thresholds.n && off < THRESHOLDS_PARAM_LEN - 16; k++)
		off += (size_t)snprintf(buf + off, THRESHOLDS_PARAM_LEN - off, "%s%d", k ? "," : "",
		                        cfg->alert_thresholds.v[k]);
	snprintf(buf + off, THRESHOLDS_PARAM_LEN - off, "}");
}

void
usec_param(int64_t usec, char buf[24])
{
	snprintf(buf, 24, "%" PRId64, usec);
}
