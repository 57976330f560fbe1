/* http_accounts.c: accounts API (R2, API.md "Accounts"). */
#include "http_accounts.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "account_view.h"
#include "acache.h"
#include "app.h"
#include "clock.h"
#include "config.h"
#include "currency.h"
#include "db.h"
#include "http.h"
#include "http_util.h"
#include "jsonfield.h"
#include "money.h"
#include "tz.h"
#include "civil.h"

#define ACCOUNT_MATCH "(id = $1::uuid OR external_ref = $2)"

/* ISO 3166-1 alpha-2, optionally with a subdivision: GB, DE, US-NY (R2.1). */
static bool
jurisdiction_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 2 || s[0] < 'A' || s[0] > 'Z' || s[1] < 'A' || s[1] > 'Z')
		return false;
	if (n == 2)
		return true;
	if (s[2] != '-' || n < 4 || n > 6)
		return false;
	for (size_t i = 3; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

static void
accounts_reply_one(const struct db_result *res, void *arg, int status, int result_idx)
{
	struct http_req *r = arg;
	const PGresult *pg;

	if ((pg = http_result_found(r, res, result_idx, "account not found")) == NULL)
		return;
	/* the authorization cache follows every committed change (R3.6) */
	acache_update(http_req_app(r)->acache, pg, 0);
	http_reply_json(r, status, account_view_json(pg, 0));
}

static void
accounts_created_cb(const struct db_result *res, void *arg)
{
	accounts_reply_one(res, arg, 201, -1);
}

static void
accounts_one_cb(const struct db_result *res, void *arg)
{
	accounts_reply_one(res, arg, 200, -1);
}

void
http_accounts_create(struct http_req *r)
{
	static const char *const allowed[] = {"external_ref",
	                                      "name",
	                                      "currency",
	                                      "jurisdiction",
	                                      "monthly_limit",
	                                      "total_limit",
	                                      "contractual_rate",
	                                      "payment_terms_days",
	                                      NULL};
	const struct config *cfg = http_req_app(r)->cfg;
	json_t *body = http_req_json_object(r);
	const char *ext, *name, *currency, *jur;
	int64_t monthly = 0, total = 0, terms = cfg->default_payment_terms_days;
	bool monthly_null = true, total_null = true;
	int32_t rate = cfg->default_contractual_rate;
	struct jf_err e;
	int rc;

	if (body == NULL)
		return;
	if (jf_only(body, allowed, &e) < 0 ||
	    jf_string(body, "external_ref", true, 128, &ext, &e) < 0 ||
	    jf_string(body, "name", true, 200, &name, &e) < 0 ||
	    jf_string(body, "currency", true, 3, &currency, &e) < 0 ||
	    jf_string(body, "jurisdiction", true, 6, &jur, &e) < 0)
		goto invalid;
	/* R2.1: the CRM's customer id; blank it would name no one (and two
	 * blanks of different lengths would be two "customers") */
	if (ext[strspn(ext, " \t")] == '\0') {
		jf_fail(&e, "external_ref", "external_ref: must not be blank");
		goto invalid;
	}
	if (!currency_valid(currency)) {
		jf_fail(&e, "currency", "currency: not an ISO 4217 code");
		goto invalid;
	}
	if (!jurisdiction_ok(jur)) {
		jf_fail(&e, "jurisdiction",
		        "jurisdiction: must be ISO 3166-1 alpha-2, optionally with a subdivision "
		        "(US-NY)");
		goto invalid;
	}
	if ((rc = jf_amount(body, "monthly_limit", false, true, &monthly_null, &monthly, &e)) < 0)
		goto invalid;
	if (rc == 1)
		monthly_null = true;
	if ((rc = jf_amount(body, "total_limit", false, true, &total_null, &total, &e)) < 0)
		goto invalid;
	if (rc == 1)
		total_null = true;
	if ((!monthly_null && monthly < 0) || (!total_null && total < 0)) {
		jf_fail(&e, monthly < 0 ? "monthly_limit" : "total_limit",
		        "%s: must not be negative", monthly < 0 ? "monthly_limit" : "total_limit");
		goto invalid;
	}
	if (jf_rate(body, "contractual_rate", false, &rate, &e) < 0)
		goto invalid;
	if (rate < 0) {
		jf_fail(&e, "contractual_rate", "contractual_rate: must not be negative");
		goto invalid;
	}
	if (jf_int(body, "payment_terms_days", false, 0, 365, &terms, &e) < 0)
		goto invalid;

	uuid_t u;
	char id[37], now[24], ml[24], tl[24], rs[16], ts[16], month[16], exp[8];
	int64_t t = clock_now();
	uuid_generate_random(u);
	uuid_unparse_lower(u, id);
	usec_param(t, now);
	snprintf(ml, sizeof ml, "%" PRId64, monthly);
	snprintf(tl, sizeof tl, "%" PRId64, total);
	snprintf(rs, sizeof rs, "%d", rate);
	snprintf(ts, sizeof ts, "%" PRId64, terms);
	civil_format_date(tz_month_of(t), month);
	snprintf(exp, sizeof exp, "%d", currency_exponent(currency));
	{
		const char *p[] = {id,
		                   ext,
		                   name,
		                   currency,
		                   jur,
		                   rs,
		                   ts,
		                   monthly_null ? NULL : ml,
		                   total_null ? NULL : tl,
		                   month,
		                   now,
		                   exp};
		const char *a[] = {now, http_req_actor(r), id, http_req_id(r)};
		struct db_batch *b = db_batch_new();
		db_batch_add(
		    b,
		    "INSERT INTO accounts (id, external_ref, name, currency, jurisdiction, "
		    "contractual_rate, payment_terms_days, monthly_limit, total_limit, "
		    "usage_month, "
		    "created_at, updated_at, currency_exp) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
		    "$9, $10, creditd_ts($11), creditd_ts($11), $12)",
		    12, p);
		db_batch_add(
		    b,
		    "INSERT INTO account_history (account_id, at, status_before, status_after, "
		    "reasons_before, reasons_after, cause, actor, request_id) "
		    "VALUES ($3, creditd_ts($1), NULL, 'active', '{}', '{}', 'created', $2, $4)",
		    4, a);
		db_batch_add(
		    b,
		    "SELECT creditd_audit(creditd_ts($1), $2, 'account.create', 'account', "
		    "$3::text, "
		    "NULL, (SELECT to_jsonb(x) FROM accounts x WHERE id = $3::text::uuid), $4)",
		    4, a);
		db_batch_add(b, ACCOUNT_VIEW_SELECT "WHERE id = $1", 1, p);
		http_submit(r, b, accounts_created_cb);
	}
	return;
invalid:
	http_reply_validation(r, &e);
}

static void
accounts_list_cb(const struct db_result *res, void *arg)
{
	http_reply_page(arg, res, 0, account_view_json, "seq");
}

void
http_accounts_list(struct http_req *r)
{
	const char *status = http_req_query(r, "status");
	int limit;
	int64_t cursor;
	char lim[16], cur[24];

	if (!http_paging(r, "cursor", &limit, &cursor))
		return;
	if (status && strcmp(status, "active") != 0 && strcmp(status, "suspended") != 0 &&
	    strcmp(status, "terminated") != 0) {
		http_reply_error(r, 400, "validation_failed",
		                 "status: must be active, suspended or terminated", "status");
		return;
	}
	snprintf(lim, sizeof lim, "%d", limit + 1);
	snprintf(cur, sizeof cur, "%" PRId64, cursor);
	const char *p[] = {cur, status, lim};
	struct db_batch *b = db_batch_new();
	db_batch_add(b,
	             ACCOUNT_VIEW_SELECT "WHERE seq > $1 AND ($2::text IS NULL OR status = $2) "
	                                 "ORDER BY seq LIMIT $3",
	             3, p);
	http_submit(r, b, accounts_list_cb);
}

void
http_accounts_get(struct http_req *r)
{
	const char *id, *ext;

	if (!account_ref(http_req_capture(r, 0), &id, &ext)) {
		http_reply_error(r, 404, "not_found", "account not found", NULL);
		return;
	}
	const char *p[] = {id, ext};
	struct db_batch *b = db_batch_new();
	db_batch_add(b, ACCOUNT_VIEW_SELECT "WHERE " ACCOUNT_MATCH, 2, p);
	http_submit(r, b, accounts_one_cb);
}

void
http_accounts_patch(struct http_req *r)
{
	static const char *const allowed[] = {"name", "jurisdiction", "contractual_rate",
	                                      "payment_terms_days", NULL};
	json_t *body = http_req_json_object(r), *patch;
	const char *id, *ext, *name = NULL, *jur = NULL;
	int32_t rate;
	int64_t terms;
	struct jf_err e;
	int rc;

	if (body == NULL)
		return;
	if (!account_ref(http_req_capture(r, 0), &id, &ext)) {
		http_reply_error(r, 404, "not_found", "account not found", NULL);
		return;
	}
	patch = json_object();
	if (jf_only(body, allowed, &e) < 0 || jf_string(body, "name", false, 200, &name, &e) < 0 ||
	    jf_string(body, "jurisdiction", false, 6, &jur, &e) < 0)
		goto invalid;
	if (name) {
		if (*name == '\0') {
			jf_fail(&e, "name", "name: must not be empty");
			goto invalid;
		}
		json_object_set_new(patch, "name", json_string(name));
	}
	if (jur) {
		if (!jurisdiction_ok(jur)) {
			jf_fail(&e, "jurisdiction",
			        "jurisdiction: must be ISO 3166-1 alpha-2, optionally with a "
			        "subdivision (US-NY)");
			goto invalid;
		}
		json_object_set_new(patch, "jurisdiction", json_string(jur));
	}
	if ((rc = jf_rate(body, "contractual_rate", false, &rate, &e)) < 0)
		goto invalid;
	if (rc == 0) {
		if (rate < 0) {
			jf_fail(&e, "contractual_rate", "contractual_rate: must not be negative");
			goto invalid;
		}
		json_object_set_new(patch, "contractual_rate", json_integer(rate));
	}
	if ((rc = jf_int(body, "payment_terms_days", false, 0, 365, &terms, &e)) < 0)
		goto invalid;
	if (rc == 0)
		json_object_set_new(patch, "payment_terms_days", json_integer(terms));
	{
		char now[24];
		char *pj = json_dumps(patch, JSON_COMPACT);
		usec_param(clock_now(), now);
		const char *p[] = {id, ext, pj, now, http_req_actor(r), http_req_id(r)};
		struct db_batch *b = db_batch_new();
		db_batch_add(
		    b, "SELECT creditd_account_patch($1, $2, $3::jsonb, creditd_ts($4), $5, $6)", 6,
		    p);
		db_batch_add(b, ACCOUNT_VIEW_SELECT "WHERE " ACCOUNT_MATCH, 2, p);
		free(pj);
		json_decref(patch);
		http_submit(r, b, accounts_one_cb);
	}
	return;
invalid:
	json_decref(patch);
	http_reply_validation(r, &e);
}

static void
accounts_manual(struct http_req *r, bool suspend)
{
	static const char *const allowed[] = {"note", NULL};
	json_t *body = http_req_json_object(r);
	const char *id, *ext, *note = NULL;
	struct jf_err e;
	char now[24];

	if (body == NULL)
		return;
	if (jf_only(body, allowed, &e) < 0 ||
	    jf_string(body, "note", !suspend, 1000, &note, &e) < 0) {
		http_reply_validation(r, &e);
		return;
	}
	if (!account_ref(http_req_capture(r, 0), &id, &ext)) {
		http_reply_error(r, 404, "not_found", "account not found", NULL);
		return;
	}
	usec_param(clock_now(), now);
	const char *p[] = {
	    id, ext, suspend ? "t" : "f", note, now, http_req_actor(r), http_req_id(r)};
	struct db_batch *b = db_batch_new();
	db_batch_add(b, "SELECT creditd_account_manual($1, $2, $3, $4, creditd_ts($5), $6, $7)", 7,
	             p);
	db_batch_add(b, ACCOUNT_VIEW_SELECT "WHERE " ACCOUNT_MATCH, 2, p);
	http_submit(r, b, accounts_one_cb);
}

void
http_accounts_suspend(struct http_req *r)
{
	accounts_manual(r, true);
}

void
http_accounts_unsuspend(struct http_req *r)
{
	accounts_manual(r, false);
}

static json_t *
history_row_json(const PGresult *pg, int row)
{
	json_t *o = json_object();
	json_object_set_new(o, "at", j_ts_col(pg, row, col(pg, "at_us")));
	json_object_set_new(o, "status_before", j_text_col(pg, row, col(pg, "status_before")));
	json_object_set_new(o, "status", j_text_col(pg, row, col(pg, "status_after")));
	json_object_set_new(o, "reasons_before", j_json_col(pg, row, col(pg, "reasons_before")));
	json_object_set_new(o, "reasons", j_json_col(pg, row, col(pg, "reasons_after")));
	json_object_set_new(o, "cause", j_text_col(pg, row, col(pg, "cause")));
	json_object_set_new(o, "actor", j_text_col(pg, row, col(pg, "actor")));
	json_object_set_new(o, "note", j_text_col(pg, row, col(pg, "note")));
	json_object_set_new(o, "request_id", j_text_col(pg, row, col(pg, "request_id")));
	return o;
}

static void
accounts_history_cb(const struct db_result *res, void *arg)
{
	http_reply_account_page(arg, res, history_row_json);
}

void
http_accounts_history(struct http_req *r)
{
	http_account_page(
	    r,
	    "SELECT h.id, creditd_us(h.at) AS at_us, h.status_before, h.status_after, "
	    "array_to_json(h.reasons_before)::text AS reasons_before, "
	    "array_to_json(h.reasons_after)::text AS reasons_after, h.cause, h.actor, "
	    "h.note, h.request_id FROM account_history h JOIN accounts a ON a.id = "
	    "h.account_id WHERE (a.id = $1::uuid OR a.external_ref = $2) AND h.id < $3 "
	    "ORDER BY h.id DESC LIMIT $4",
	    accounts_history_cb);
}
