/* http_aging.c: the receivables aging report (R7.1, R7.3). The database
 * returns one row per open invoice, sorted by currency, external_ref,
 * account and effective due date, with its bucket; this file groups the
 * rows into accounts and currencies, totals them (checked) and renders JSON
 * or CSV. */
#include "http_aging.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "civil.h"
#include "clock.h"
#include "currency.h"
#include "db.h"
#include "http_format.h"
#include "http_util.h"
#include "log.h"
#include "money.h"
#include "tz.h"
#include "xmalloc.h"

#define AGING_NBUCKETS 5
#define AGING_TOTAL AGING_NBUCKETS /* index of the total in an amount array */

static const char *const aging_bucket_names[AGING_NBUCKETS] = {"current", "1-30", "31-60", "61-90",
                                                               "90+"};

struct aging_cols {
	int currency, account, ext, name, status, invoice, number, issue, due, orig_due, balance,
	    days, bucket;
};

/* Rows [first, first + n) of one account (or the accounts [first, first + n)
 * of one currency), with amounts per bucket and the total. */
struct aging_group {
	int first, n;
	int64_t amt[AGING_NBUCKETS + 1];
};

struct aging {
	const PGresult *pg;
	struct aging_cols c;
	struct aging_group *acct, *cur;
	int nacct, ncur;
};

struct aging_req {
	struct http_req *r;
	bool csv;
	int32_t as_of;
	char currency[8]; /* "" = all */
};

static void
aging_cols_init(struct aging_cols *c, const PGresult *pg)
{
	c->currency = col(pg, "currency");
	c->account = col(pg, "account_id");
	c->ext = col(pg, "external_ref");
	c->name = col(pg, "name");
	c->status = col(pg, "status");
	c->invoice = col(pg, "invoice_id");
	c->number = col(pg, "number");
	c->issue = col(pg, "issue_day");
	c->due = col(pg, "due_day");
	c->orig_due = col(pg, "original_due_day");
	c->balance = col(pg, "balance");
	c->days = col(pg, "days_overdue");
	c->bucket = col(pg, "bucket");
}

static int
aging_add(int64_t amt[AGING_NBUCKETS + 1], int bucket, int64_t v)
{
	if (money_add(amt[bucket], v, &amt[bucket]) != 0 ||
	    money_add(amt[AGING_TOTAL], v, &amt[AGING_TOTAL]) != 0)
		return -1;
	return 0;
}

static void
aging_free(struct aging *g)
{
	free(g->acct);
	free(g->cur);
}

/* Group the rows; -1 on an amount overflow. */
static int
aging_group(struct aging *g, const PGresult *pg)
{
	int n = PQntuples(pg);

	memset(g, 0, sizeof *g);
	g->pg = pg;
	aging_cols_init(&g->c, pg);
	g->acct = xcalloc((size_t)n + 1, sizeof *g->acct);
	g->cur = xcalloc((size_t)n + 1, sizeof *g->cur);
	for (int i = 0; i < n; i++) {
		int bucket = (int)col_i64(pg, i, g->c.bucket);
		int64_t bal = col_i64(pg, i, g->c.balance);
		struct aging_group *a, *cu;

		if (bucket < 0 || bucket >= AGING_NBUCKETS)
			bucket = AGING_NBUCKETS - 1;
		if (g->ncur == 0 ||
		    strcmp(PQgetvalue(pg, i, g->c.currency),
		           PQgetvalue(pg, g->cur[g->ncur - 1].first, g->c.currency)) != 0) {
			g->cur[g->ncur++].first = g->nacct;
			g->acct[g->nacct++].first = i; /* a new currency starts a new account */
		} else if (strcmp(PQgetvalue(pg, i, g->c.account),
		                  PQgetvalue(pg, g->acct[g->nacct - 1].first, g->c.account)) != 0) {
			g->acct[g->nacct++].first = i;
		}
		a = &g->acct[g->nacct - 1];
		cu = &g->cur[g->ncur - 1];
		if (a->n++ == 0)
			cu->n++;
		if (aging_add(a->amt, bucket, bal) != 0 || aging_add(cu->amt, bucket, bal) != 0)
			return -1;
	}
	return 0;
}

/* The first row of a currency group (its first account's first row). */
static int
aging_cur_row(const struct aging *g, int k)
{
	return g->acct[g->cur[k].first].first;
}

/* ---- JSON ---- */

static json_t *
aging_amounts_json(const int64_t amt[AGING_NBUCKETS + 1], json_t *o)
{
	for (int b = 0; b < AGING_NBUCKETS; b++)
		json_object_set_new(o, aging_bucket_names[b], j_money(amt[b]));
	json_object_set_new(o, "total", j_money(amt[AGING_TOTAL]));
	return o;
}

static json_t *
aging_invoice_json(const struct aging *g, int i)
{
	const PGresult *pg = g->pg;
	const struct aging_cols *c = &g->c;
	json_t *o = json_object();
	int bucket = (int)col_i64(pg, i, c->bucket);

	json_object_set_new(o, "id", j_text_col(pg, i, c->invoice));
	json_object_set_new(o, "number", j_text_col(pg, i, c->number));
	json_object_set_new(o, "issue_date", j_date_col(pg, i, c->issue));
	json_object_set_new(o, "due_date", j_date_col(pg, i, c->due));
	json_object_set_new(o, "original_due_date", j_date_col(pg, i, c->orig_due));
	json_object_set_new(o, "balance", j_money_col(pg, i, c->balance));
	json_object_set_new(o, "days_overdue", j_int_col(pg, i, c->days));
	json_object_set_new(o, "bucket",
	                    json_string(bucket >= 0 && bucket < AGING_NBUCKETS
	                                    ? aging_bucket_names[bucket]
	                                    : "90+"));
	return o;
}

static json_t *
aging_account_ref_json(const struct aging *g, int row)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", j_text_col(g->pg, row, g->c.account));
	json_object_set_new(o, "external_ref", j_text_col(g->pg, row, g->c.ext));
	json_object_set_new(o, "name", j_text_col(g->pg, row, g->c.name));
	return o;
}

static json_t *
aging_currency_json(const struct aging *g, int k)
{
	const struct aging_group *cu = &g->cur[k];
	json_t *buckets = json_object(), *blist[AGING_NBUCKETS], *accounts = json_array();
	json_t *o = json_object();

	for (int b = 0; b < AGING_NBUCKETS; b++)
		blist[b] = json_array();
	for (int a = cu->first; a < cu->first + cu->n; a++) {
		const struct aging_group *ac = &g->acct[a];
		json_t *ao = aging_account_ref_json(g, ac->first), *invs = json_array();

		json_object_set_new(ao, "status", j_text_col(g->pg, ac->first, g->c.status));
		aging_amounts_json(ac->amt, ao);
		for (int i = ac->first; i < ac->first + ac->n; i++)
			json_array_append_new(invs, aging_invoice_json(g, i));
		json_object_set_new(ao, "invoices", invs);
		json_array_append_new(accounts, ao);
		for (int b = 0; b < AGING_NBUCKETS; b++) {
			json_t *e;

			if (ac->amt[b] == 0)
				continue;
			e = aging_account_ref_json(g, ac->first);
			json_object_set_new(e, "amount", j_money(ac->amt[b]));
			json_array_append_new(blist[b], e);
		}
	}
	for (int b = 0; b < AGING_NBUCKETS; b++)
		json_object_set_new(
		    buckets, aging_bucket_names[b],
		    json_pack("{s:o, s:o}", "total", j_money(cu->amt[b]), "accounts", blist[b]));
	json_object_set_new(o, "currency",
	                    json_string(PQgetvalue(g->pg, aging_cur_row(g, k), g->c.currency)));
	json_object_set_new(o, "totals", aging_amounts_json(cu->amt, json_object()));
	json_object_set_new(o, "buckets", buckets);
	json_object_set_new(o, "accounts", accounts);
	return o;
}

/* A currency asked for with nothing open: zero totals, empty lists. */
static json_t *
aging_empty_currency_json(const char *currency)
{
	static const int64_t zero[AGING_NBUCKETS + 1];
	json_t *buckets = json_object();

	for (int b = 0; b < AGING_NBUCKETS; b++)
		json_object_set_new(buckets, aging_bucket_names[b],
		                    json_pack("{s:o, s:[]}", "total", j_money(0), "accounts"));
	return json_pack("{s:s, s:o, s:o, s:[]}", "currency", currency, "totals",
	                 aging_amounts_json(zero, json_object()), "buckets", buckets, "accounts");
}

/* ---- CSV (RFC 4180: CRLF line ends, quotes doubled) ---- */

static void
aging_csv_amounts(struct evbuffer *b, const int64_t amt[AGING_NBUCKETS + 1])
{
	char buf[MONEY_FMT_LEN];

	for (int k = 0; k <= AGING_NBUCKETS; k++)
		csv_field(b, money_format(amt[k], buf), false);
	evbuffer_add(b, "\r\n", 2);
}

static struct evbuffer *
aging_csv(const struct aging *g, const char *filter)
{
	static const char *const header[] = {"kind",  "currency", "account", "external_ref",
	                                     "name",  "current",  "1-30",    "31-60",
	                                     "61-90", "90+",      "total",   NULL};
	static const int64_t zero[AGING_NBUCKETS + 1];
	struct evbuffer *b = evbuffer_new();

	for (int i = 0; header[i]; i++)
		csv_field(b, header[i], i == 0);
	evbuffer_add(b, "\r\n", 2);
	for (int k = 0; k < g->ncur; k++) {
		const struct aging_group *cu = &g->cur[k];
		const char *currency = PQgetvalue(g->pg, aging_cur_row(g, k), g->c.currency);

		for (int a = cu->first; a < cu->first + cu->n; a++) {
			int row = g->acct[a].first;

			csv_field(b, "account", true);
			csv_field(b, currency, false);
			csv_field(b, PQgetvalue(g->pg, row, g->c.account), false);
			csv_text_field(b, PQgetvalue(g->pg, row, g->c.ext), false);
			csv_text_field(b, PQgetvalue(g->pg, row, g->c.name), false);
			aging_csv_amounts(b, g->acct[a].amt);
		}
		csv_field(b, "total", true);
		csv_field(b, currency, false);
		csv_field(b, NULL, false);
		csv_field(b, NULL, false);
		csv_field(b, NULL, false);
		aging_csv_amounts(b, cu->amt);
	}
	if (g->ncur == 0 && filter) {
		csv_field(b, "total", true);
		csv_field(b, filter, false);
		csv_field(b, NULL, false);
		csv_field(b, NULL, false);
		csv_field(b, NULL, false);
		aging_csv_amounts(b, zero);
	}
	return b;
}

/* ---- handler ---- */

static void
aging_cb(const struct db_result *res, void *arg)
{
	struct aging_req *q = arg;
	struct http_req *r = q->r;
	struct aging g;
	char asof[CIVIL_DATE_LEN];
	const char *filter = q->currency[0] ? q->currency : NULL;

	if (!db_result_ok(res)) {
		http_reply_db_error(r, res);
		free(q);
		return;
	}
	if (aging_group(&g, db_result_get(res, 0)) != 0) {
		aging_free(&g);
		free(q);
		log_req(LOG_LEVEL_ERROR, http_req_id(r), "aging report: amount overflow");
		http_reply_error(r, 500, "internal", "internal error: amount overflow", NULL);
		return;
	}
	civil_format_date(q->as_of, asof);
	if (q->csv) {
		struct evbuffer *b = aging_csv(&g, filter);
		char disp[64];

		snprintf(disp, sizeof disp, "attachment; filename=\"aging-%s.csv\"", asof);
		http_reply_add_header(r, "Content-Disposition", disp);
		http_reply_buffer(r, 200, "text/csv; charset=utf-8", b);
		evbuffer_free(b);
	} else {
		json_t *curs = json_array();

		for (int k = 0; k < g.ncur; k++)
			json_array_append_new(curs, aging_currency_json(&g, k));
		if (g.ncur == 0 && filter)
			json_array_append_new(curs, aging_empty_currency_json(filter));
		http_reply_json(r, 200,
		                json_pack("{s:s, s:o, s:o}", "as_of", asof, "currency",
		                          filter ? json_string(filter) : json_null(), "currencies",
		                          curs));
	}
	aging_free(&g);
	free(q);
}

void
http_aging_report(struct http_req *r)
{
	const char *currency = http_req_query(r, "currency");
	const char *as_of = http_req_query(r, "as_of");
	struct aging_req *q;
	int32_t day;
	char day_s[CIVIL_DATE_LEN], end_s[24];
	bool csv;

	{
		int f = http_req_format(r, "csv", "text/csv");
		if (f < 0)
			return;
		csv = f == 1;
	}
	if (currency && *currency == '\0')
		currency = NULL;
	if (currency && !currency_valid(currency)) {
		http_reply_error(r, 400, "validation_failed", "currency: not an ISO 4217 code",
		                 "currency");
		return;
	}
	if (as_of && *as_of) {
		if (strlen(as_of) != 10 || civil_parse_date(as_of, 10, &day) != 0 ||
		    day >= CIVIL_DAY_MAX) {
			http_reply_error(r, 400, "validation_failed",
			                 "as_of: must be a date YYYY-MM-DD", "as_of");
			return;
		}
	} else {
		day = tz_day_of(clock_now());
	}
	civil_format_date(day, day_s);
	usec_param(tz_day_start(day + 1), end_s); /* the end of as_of in the billing zone */
	q = xcalloc(1, sizeof *q);
	q->r = r;
	q->csv = csv;
	q->as_of = day;
	if (currency)
		snprintf(q->currency, sizeof q->currency, "%s", currency);
	const char *p[] = {day_s, end_s, currency};
	struct db_batch *b = db_batch_new();
	db_batch_add(b,
	             "SELECT currency, account_id, external_ref, name, status, invoice_id, number, "
	             "issue_day, due_day, original_due_day, balance, days_overdue, bucket "
	             "FROM creditd_aging($1::date, creditd_ts($2::bigint), $3)",
	             3, p);
	if (db_submit(http_req_app(r)->db, b, aging_cb, q) != 0) {
		http_reply_unavailable(r);
		free(q);
	}
}
