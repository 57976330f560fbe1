/* http_util.h: helpers shared by the resource handlers: database error
 * mapping, amount/time JSON values from result columns, account references,
 * list paging. */
#ifndef CREDITD_HTTP_UTIL_H
#define CREDITD_HTTP_UTIL_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

struct http_req;
struct db_result;
struct db_batch;
struct jf_err;

/* Errors raised by our SQL functions carry these SQLSTATEs; the DETAIL, if
 * any, names the field. */
#define SQLSTATE_NOT_FOUND "CR404"
#define SQLSTATE_CONFLICT "CR409"
#define SQLSTATE_INVALID_STATE "CR422"
#define SQLSTATE_NOTICE_PERIOD "CR423"
#define SQLSTATE_VALIDATION "CR400"

/* 503 when unavailable, mapped 4xx for our SQLSTATEs and unique violations,
 * 500 otherwise (logged). */
void http_reply_db_error(struct http_req *r, const struct db_result *res);
void http_reply_validation(struct http_req *r, const struct jf_err *e);
/* Submit a batch; answers 503 itself and returns false when unavailable. */
bool http_submit(struct http_req *r, struct db_batch *b,
                 void (*cb)(const struct db_result *, void *));

/* Result idx of res (-1: the last) when it has a row; else NULL after
 * answering: a database error as http_reply_db_error, no row 404 not_found
 * with the message `not_found` (e.g. "invoice not found"). */
const PGresult *http_result_found(struct http_req *r, const struct db_result *res, int idx,
                                  const char *not_found);

/* Column helpers (NULL column -> JSON null). */
json_t *j_money(int64_t v);
json_t *j_money_col(const PGresult *res, int row, int col);
json_t *j_rate_col(const PGresult *res, int row, int col);
json_t *j_ts_col(const PGresult *res, int row, int col);   /* bigint usec column */
json_t *j_date_col(const PGresult *res, int row, int col); /* integer day column */
json_t *j_text_col(const PGresult *res, int row, int col);
json_t *j_int_col(const PGresult *res, int row, int col);
json_t *j_json_col(const PGresult *res, int row, int col); /* json text column */
int64_t col_i64(const PGresult *res, int row, int col);
int col(const PGresult *res, const char *name); /* PQfnumber that aborts on a typo */

/* An account in a path: UUID or "ext:<external_ref>". Fills the params for
 * "WHERE id = $a OR external_ref = $b" (one of them NULL). False if the
 * reference is malformed (treat as not found). */
bool account_ref(const char *s, const char **id_param, const char **ext_param);

/* List paging: limit (default 100, max 1000) and an integer cursor. Returns
 * false after answering 400. */
bool http_paging(struct http_req *r, const char *cursor_key, int *limit, int64_t *cursor);
/* {"items": items, "next_cursor": ...} */
json_t *j_page(json_t *items, bool more, int64_t next);
/* Answer a list: result `idx` was fetched with LIMIT limit+1 (see
 * http_paging); each row becomes fn(res, row); the cursor is column
 * `cursor_col` of the last row shown. Database errors are answered too. */
typedef json_t *(*row_json_fn)(const PGresult *res, int row);
void http_reply_page(struct http_req *r, const struct db_result *res, int idx, row_json_fn fn,
                     const char *cursor_col);

/* A page of a list in `seq` order with an optional ?account= (UUID or
 * ext:; 400 when malformed, an unknown one matches nothing: an empty list),
 * as GET /v1/payments and /v1/refunds: view_select is "SELECT ... FROM
 * view " with the columns seq and account_id. cb answers with
 * http_reply_page(..., 0, fn, "seq"). */
void http_seq_list(struct http_req *r, const char *view_select,
                   void (*cb)(const struct db_result *, void *));

/* A page of one account's rows, newest first (GET /v1/accounts/{id}/history,
 * /limit-changes): the account of path capture 0 (404 when malformed),
 * page_sql with $1 id, $2 external_ref, $3 the cursor (rows below it; none:
 * from the newest), $4 the limit + 1; its rows carry an "id" column, the
 * cursor. cb is called with the result and answers with
 * http_reply_account_page. */
void http_account_page(struct http_req *r, const char *page_sql,
                       void (*cb)(const struct db_result *, void *));
/* The answer for http_account_page: 404 when the account does not exist,
 * else the page, each row fn(res, row). */
void http_reply_account_page(struct http_req *r, const struct db_result *res, row_json_fn fn);

/* [limits] alert_thresholds as an int[] literal, e.g. "{80,90}". */
struct config;
#define THRESHOLDS_PARAM_LEN 256
void thresholds_param(const struct config *cfg, char buf[THRESHOLDS_PARAM_LEN]);

/* Business time as a query parameter string (usec since epoch). */
void usec_param(int64_t usec, char buf[24]);

#endif
