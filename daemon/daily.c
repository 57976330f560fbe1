/* daily.c: the daily job's steps. */
#include "daily.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "civil.h"
#include "clock.h"
#include "config.h"
#include "db.h"
#include "http_util.h"
#include "interest_calc.h"
#include "jobs.h"
#include "log.h"
#include "ratetable.h"
#include "rates.h"
#include "sched.h"
#include "tz.h"
#include "xmalloc.h"

#define DAILY_KEY "daily"
#define DAILY_MINUTES 5      /* 00:05 in the billing zone */
#define INTEREST_PAGE "5000" /* overdue invoices per transaction */
#define INTEREST_PAGE_N 5000
/* The database does the work (a 2-core server): each step runs on two pool
 * connections at once. First the R6.6 re-check (it sees the accruals before
 * today's); then the interest pages in DAILY_CHAINS sequences over invoice
 * id ranges (they write invoices and accruals); then the overdue notices
 * and suspensions in DAILY_PARTS parts of the accounts (an account and its
 * invoices belong to one part), each also summing its accounts' accrued
 * interest (an account suspended today is written once); then inactivity
 * and reactivations. Every batch is marked slow (db_batch_set_slow), so that
 * API requests and ingest batches go to the other connections, not behind
 * a step that holds its connection for a second. */
#define DAILY_PARTS 2
#define DAILY_CHAINS 2

struct daily_run;

/* One sequence of interest pages: invoice ids in (after, upto]. */
struct daily_chain {
	struct daily_run *d;
	char after[37];
	char upto[37]; /* "" = unbounded */
};

struct sbuf {
	char *s;
	size_t n, cap;
};

struct daily_run {
	struct job_run *run;
	struct app *app;
	int32_t day;
	int32_t accrue_to; /* accruals run to here: the later of day and today (R6.4) */
	char at[24];
	int pending;          /* page sequences still running */
	int parts;            /* overdue parts still running */
	char *error;          /* the first error; the others stop early */
	struct sbuf accounts; /* accounts of the invoices accrued */
	struct daily_chain chains[DAILY_CHAINS];
	long overdue, inactive, reactivated, interest;
};

static void daily_interest_page(struct daily_chain *c);
static void daily_chain_done(struct daily_run *d);
static void daily_rates_ready(void *arg);

static void
daily_end(struct daily_run *d, const char *error)
{
	char day[CIVIL_DATE_LEN];
	json_t *result;

	civil_format_date(d->day, day);
	result = json_pack("{s:s, s:i, s:i, s:i, s:i}", "date", day, "overdue_suspended",
	                   (json_int_t)d->overdue, "inactivity_suspended", (json_int_t)d->inactive,
	                   "reactivated", (json_int_t)d->reactivated, "interest_invoices",
	                   (json_int_t)d->interest);
	job_run_complete(d->run, result, error);
	free(d->error);
	free(d->accounts.s);
	free(d);
}

/* A page sequence failed: remember the first error; the sequence ends. */
static void
daily_fail(struct daily_run *d, const char *error)
{
	if (d->error == NULL)
		d->error = xstrdup(error);
	daily_chain_done(d);
}

__extension__ typedef unsigned __int128 daily_u128;

/* An exact interest amount (int128) as a decimal string. */
static void
daily_exact_text(interest_exact_t v, char buf[48])
{
	char tmp[48];
	int n = 0, k = 0;
	bool neg = v < 0;
	daily_u128 u = neg ? (daily_u128)(-(v + 1)) + 1 : (daily_u128)v;

	do {
		tmp[n++] = (char)('0' + (int)(u % 10));
		u /= 10;
	} while (u != 0);
	if (neg)
		buf[k++] = '-';
	while (n > 0)
		buf[k++] = tmp[--n];
	buf[k] = '\0';
}

struct daily_store {
	struct sbuf inv, month, exact, micro, isnew, cinv, comp, settled;
};

static void
sb_add(struct sbuf *b, const char *s)
{
	size_t l = strlen(s);

	/* separator or '{', the text, and room for sb_close's '}' and NUL */
	if (b->n + l + 3 > b->cap) {
		b->cap = (b->n + l + 3) * 2;
		b->s = xreallocarray(b->s, b->cap, 1);
	}
	if (b->n == 0)
		b->s[b->n++] = '{';
	else
		b->s[b->n++] = ',';
	memcpy(b->s + b->n, s, l);
	b->n += l;
	b->s[b->n] = '\0';
}

static const char *
sb_close(struct sbuf *b)
{
	if (b->n == 0) {
		b->cap = 3;
		b->s = xmalloc(3);
		memcpy(b->s, "{}", 3);
		return b->s;
	}
	b->s[b->n++] = '}';
	b->s[b->n] = '\0';
	return b->s;
}

/* Half away from zero of v / d (d > 0). */
static interest_exact_t
daily_div_round(interest_exact_t v, interest_exact_t d)
{
	interest_exact_t q = v / d, r = v % d;

	if (r < 0)
		r = -r;
	if (2 * r >= d)
		q += v < 0 ? -1 : 1;
	return q;
}

/*
 * The micro-units stored for a month's exact interest: the exact amount
 * rounded to micro-units, except one micro-unit nearer zero when that
 * rounding lands on a half of the currency's minor unit that the exact
 * amount does not reach (0.014999671 EUR -> 0.015000 would post as 0.02).
 * Posting rounds the stored micro-units to the currency once per line
 * (creditd_round), so a line is the exact amount rounded once (R1.3, R6.3).
 */
static int
daily_post_micro(interest_exact_t exact, int exp, int64_t *micro)
{
	interest_exact_t unit = 1;

	if (interest_round_micro(exact, micro) != 0)
		return -1;
	if (exp < 0 || exp >= 6)
		return 0;
	for (int k = exp; k < 6; k++)
		unit *= 10;
	if (daily_div_round(exact, unit * INTEREST_DENOM) != daily_div_round(*micro, unit))
		*micro += exact < 0 ? 1 : -1;
	return 0;
}

/* The stored accrual of a month: NULL when none, else its exact value in
 * stored ("day:exact,..." with day = the month's first day), *len set. */
static const char *
daily_stored(const char *stored, int32_t month, size_t *len)
{
	while (*stored) {
		char *end;
		long d = strtol(stored, &end, 10);
		const char *v, *comma;

		if (*end != ':')
			return NULL;
		v = end + 1;
		comma = strchr(v, ',');
		if (d == month) {
			*len = (size_t)((comma ? comma : v + strlen(v)) - v);
			return v;
		}
		if (comma == NULL)
			return NULL;
		stored = comma + 1;
	}
	return NULL;
}

/* One invoice: accruals per calendar month from the first overdue day to
 * the run's day (R6.3), exact per month; the months whose value is not
 * stored yet go into the store arrays. */
static void
daily_invoice(struct daily_run *d, const PGresult *pg, int row, struct daily_store *st)
{
	const struct config *cfg = d->app->cfg;
	const struct ratetable *tbl = rates_table(d->app->rates);
	const char *id = PQgetvalue(pg, row, col(pg, "invoice_id"));
	const char *jur = PQgetvalue(pg, row, col(pg, "jurisdiction"));
	int64_t principal = col_i64(pg, row, col(pg, "principal"));
	int32_t from = (int32_t)col_i64(pg, row, col(pg, "due_day")) + 1;
	int32_t month = civil_month_start(from);
	const char *stored = PQgetvalue(pg, row, col(pg, "stored"));
	int exp = (int)col_i64(pg, row, col(pg, "currency_exp"));
	bool late = false; /* a usage balance on a day after the due date */
	char buf[48];

	while (month <= d->accrue_to) {
		int32_t next, lo, hi;
		struct interest_result res;
		int64_t micro;
		const char *old;
		size_t olen = 0;

		civil_add_months(month, 1, &next);
		lo = from > month ? from : month;
		hi = next - 1 < d->accrue_to ? next - 1 : d->accrue_to;
		if (interest_calc(d->app, pg, row, lo, hi, &res) != 0)
			break;
		if (res.nperiods > 0) /* periods are days with a positive base */
			late = true;
		daily_exact_text(res.total, buf);
		old = daily_stored(stored, month, &olen);
		if ((old == NULL || olen != strlen(buf) || memcmp(old, buf, olen) != 0) &&
		    daily_post_micro(res.total, exp, &micro) == 0) {
			char ms[CIVIL_DATE_LEN];
			sb_add(&st->inv, id);
			civil_format_date(month, ms);
			sb_add(&st->month, ms);
			sb_add(&st->exact, buf);
			snprintf(buf, sizeof buf, "%" PRId64, micro);
			sb_add(&st->micro, buf);
			sb_add(&st->isnew, old == NULL ? "t" : "f");
		}
		interest_result_free(&res);
		month = next;
	}
	/* R6.5: fixed compensation once per overdue invoice, when enabled */
	sb_add(&st->cinv, id);
	{
		int64_t comp = 0;
		char cur[4] = "";
		const char *known = PQgetvalue(pg, row, col(pg, "compensation_known"));
		/* interest-only invoices bear no compensation: principal > 0; nor
		 * does an invoice whose usage was paid (or credited) by its due
		 * date: it was never late (R6.2, R6.5) */
		if (cfg->compensation && principal > 0 && late && known[0] == 'f' && tbl != NULL &&
		    ratetable_compensation(tbl, jur, principal, &comp, cur) == 0 && comp > 0 &&
		    strcmp(cur, PQgetvalue(pg, row, col(pg, "currency"))) == 0) {
			snprintf(buf, sizeof buf, "%" PRId64, comp);
			sb_add(&st->comp, buf);
		} else {
			sb_add(&st->comp, "NULL");
		}
	}
	sb_add(&st->settled, col_i64(pg, row, col(pg, "usage_balance")) <= 0 ? "t" : "f");
	sb_add(&d->accounts, PQgetvalue(pg, row, col(pg, "account_id")));
}

static void
daily_page_stored(const struct db_result *res, void *arg)
{
	struct daily_chain *c = arg;

	if (!db_result_ok(res)) {
		daily_fail(c->d, db_result_error(res));
		return;
	}
	if (c->after[0] == '\0' || c->d->error != NULL)
		daily_chain_done(c->d); /* that was the last page */
	else
		daily_interest_page(c);
}

static void
daily_page_cb(const struct db_result *res, void *arg)
{
	struct daily_chain *c = arg;
	struct daily_run *d = c->d;
	const PGresult *pg;
	struct daily_store st;
	char day[CIVIL_DATE_LEN];
	int n;

	if (!db_result_ok(res)) {
		daily_fail(d, db_result_error(res));
		return;
	}
	pg = db_result_get(res, 0);
	n = PQntuples(pg);
	if (n == 0) {
		daily_chain_done(d);
		return;
	}
	memset(&st, 0, sizeof st);
	for (int i = 0; i < n; i++)
		daily_invoice(d, pg, i, &st);
	d->interest += n;
	if (n == INTEREST_PAGE_N)
		snprintf(c->after, sizeof c->after, "%s", PQgetvalue(pg, n - 1, 0));
	else
		c->after[0] = '\0';
	civil_format_date(d->day, day);
	const char *p[] = {day,
	                   sb_close(&st.inv),
	                   sb_close(&st.month),
	                   sb_close(&st.exact),
	                   sb_close(&st.micro),
	                   sb_close(&st.isnew),
	                   sb_close(&st.cinv),
	                   sb_close(&st.comp),
	                   sb_close(&st.settled)};
	struct db_batch *b = db_batch_new();
	db_batch_add(b,
	             "SELECT creditd_interest_store_page($1::date, $2::uuid[], $3::date[], "
	             "$4::numeric[], $5::bigint[], $6::boolean[], $7::uuid[], $8::bigint[], "
	             "$9::boolean[])",
	             9, p);
	for (size_t k = 1; k < sizeof p / sizeof p[0]; k++)
		free((char *)p[k]);
	db_batch_set_slow(b);
	if (db_submit(d->app->db, b, daily_page_stored, c) != 0)
		daily_fail(d, "database unavailable");
}

static void
daily_interest_page(struct daily_chain *c)
{
	char day[CIVIL_DATE_LEN];

	civil_format_date(c->d->day, day);
	const char *p[] = {day, c->after[0] ? c->after : NULL, c->upto[0] ? c->upto : NULL};
	struct db_batch *b = db_batch_new();
	db_batch_add(
	    b,
	    "SELECT * FROM creditd_interest_page($1::date, $2::uuid, $3::uuid, " INTEREST_PAGE ")",
	    3, p);
	db_batch_set_slow(b);
	if (db_submit(c->d->app->db, b, daily_page_cb, c) != 0)
		daily_fail(c->d, "database unavailable");
}

static void
daily_inactivity_cb(const struct db_result *res, void *arg)
{
	struct daily_run *d = arg;

	if (!db_result_ok(res)) {
		daily_end(d, db_result_error(res));
		return;
	}
	d->inactive = (long)col_i64(db_result_get(res, 1), 0, 0);
	d->reactivated = (long)col_i64(db_result_get(res, 2), 0, 0);
	daily_end(d, NULL);
}

/* A part of the overdue step done; after the last (as before: an account
 * suspended for both gets its overdue reason first): the total limits of
 * the accounts whose interest moved their exposure (R4.2, R4.3; alerts
 * R4.4), then inactivity and reactivations. */
static void
daily_part_done(struct daily_run *d)
{
	char day[CIVIL_DATE_LEN], months[16], thr[THRESHOLDS_PARAM_LEN];

	if (--d->parts > 0)
		return;
	if (d->error != NULL) {
		daily_end(d, d->error);
		return;
	}
	civil_format_date(d->day, day);
	snprintf(months, sizeof months, "%d", d->app->cfg->inactivity_months);
	thresholds_param(d->app->cfg, thr);
	const char *q[] = {day, months, d->at};
	const char *lq[] = {thr, d->at};
	struct db_batch *b = db_batch_new();
	db_batch_add(b, "SELECT count(*) FROM creditd_daily_limits($1::int[], creditd_ts($2))", 2,
	             lq);
	db_batch_add(
	    b, "SELECT count(*) FROM creditd_daily_inactivity($1::date, $2::int, creditd_ts($3))",
	    3, q);
	db_batch_add(b, "SELECT count(*) FROM creditd_apply_due_reactivations(creditd_ts($1))", 1,
	             q + 2);
	db_batch_set_slow(b);
	if (db_submit(d->app->db, b, daily_inactivity_cb, d) != 0)
		daily_end(d, "database unavailable");
}

static void
daily_overdue_cb(const struct db_result *res, void *arg)
{
	struct daily_run *d = arg;

	if (!db_result_ok(res)) {
		if (d->error == NULL)
			d->error = xstrdup(db_result_error(res));
	} else {
		d->overdue += (long)col_i64(db_result_get(res, 0), 0, 0);
	}
	daily_part_done(d);
}

static void
daily_int_list(const struct config_int_list *l, char *buf, size_t len)
{
	size_t off = (size_t)snprintf(buf, len, "{");

	for (size_t k = 0; k < l->n && off < len - 16; k++)
		off += (size_t)snprintf(buf + off, len - off, "%s%d", k ? "," : "", l->v[k]);
	snprintf(buf + off, len - off, "}");
}

/* The interest pages done: the overdue step's parts at the same time, each
 * with the accounts' accrued interest. */
static void
daily_chain_done(struct daily_run *d)
{
	const struct config *cfg = d->app->cfg;
	char day[CIVIL_DATE_LEN], rem[256], after[16], parts[16];

	if (--d->pending > 0)
		return;
	if (d->error != NULL) {
		daily_end(d, d->error);
		return;
	}
	civil_format_date(d->day, day);
	daily_int_list(&cfg->reminder_days, rem, sizeof rem);
	snprintf(after, sizeof after, "%d", cfg->overdue_suspend_after_days);
	snprintf(parts, sizeof parts, "%d", DAILY_PARTS);
	sb_close(&d->accounts);
	d->parts = DAILY_PARTS + 1; /* a guard while they start */
	for (int k = 0; k < DAILY_PARTS; k++) {
		char part[16];
		snprintf(part, sizeof part, "%d", k);
		const char *p[] = {day, rem, after, d->at, part, parts, d->accounts.s};
		struct db_batch *b = db_batch_new();
		db_batch_add(b,
		             "SELECT count(*) FROM creditd_daily_overdue_part($1::date, $2::int[], "
		             "$3::int, creditd_ts($4), $5::int, $6::int, $7::uuid[])",
		             7, p);
		db_batch_set_slow(b);
		if (db_submit(d->app->db, b, daily_overdue_cb, d) != 0) {
			if (d->error == NULL)
				d->error = xstrdup("database unavailable");
			d->parts--;
		}
	}
	daily_part_done(d); /* the guard */
}

/* The R6.6 re-check done (it sees the accruals before today's): the
 * interest page sequences, at the same time. */
static void
daily_started_cb(const struct db_result *res, void *arg)
{
	struct daily_run *d = arg;
	const PGresult *split;
	const char *sp;

	if (!db_result_ok(res)) {
		daily_end(d, db_result_error(res));
		return;
	}
	/* chain 0: ids up to the split; chain 1: after it (one chain for all
	 * when there is no split) */
	split = db_result_get(res, 1);
	sp = PQntuples(split) > 0 && !PQgetisnull(split, 0, 0) ? PQgetvalue(split, 0, 0) : NULL;
	d->pending = DAILY_CHAINS + 1; /* a guard while they start */
	for (int k = 0; k < DAILY_CHAINS; k++) {
		struct daily_chain *c = &d->chains[k];

		c->d = d;
		c->after[0] = c->upto[0] = '\0';
		if (sp != NULL && k == 0)
			snprintf(c->upto, sizeof c->upto, "%s", sp);
		else if (sp != NULL && k == 1)
			snprintf(c->after, sizeof c->after, "%s", sp);
		if (k > 1 || (k == 1 && sp == NULL) || d->error != NULL)
			daily_chain_done(d);
		else
			daily_interest_page(c);
	}
	daily_chain_done(d); /* the guard */
}

void
daily_start(struct job_run *run)
{
	struct daily_run *d = xcalloc(1, sizeof *d);

	d->run = run;
	d->app = job_run_app(run);
	d->day = job_run_day(run);
	/* A run for an earlier date (POST /v1/jobs/daily {"date"}) sends that
	 * day's notices, but a month's accrual is the same whichever day's job
	 * stores it: through today, never cut back to an earlier day, which an
	 * invoice run would otherwise post short and correct a month later. */
	d->accrue_to = tz_day_of(clock_now());
	if (d->accrue_to < d->day)
		d->accrue_to = d->day;
	usec_param(clock_now(), d->at);
	/* the rules first: fresh (a lost notification cannot leave them stale),
	 * and loaded at all (a run right after the start must not accrue at the
	 * contractual rate for want of them); also the accounts without a rule,
	 * for /metrics (R6.5) */
	rates_reload_then(d->app->rates, daily_rates_ready, d);
}

static void
daily_rates_ready(void *arg)
{
	struct daily_run *d = arg;

	if (rates_table(d->app->rates) == NULL) {
		daily_end(d, "statutory rates not loaded");
		return;
	}
	const char *p[] = {d->at};
	struct db_batch *b = db_batch_new();
	db_batch_add(b, "SELECT creditd_daily_reevaluate(creditd_ts($1))", 1, p);
	db_batch_add(b, "SELECT creditd_interest_split()", 0, NULL);
	db_batch_set_slow(b);
	if (db_submit(d->app->db, b, daily_started_cb, d) != 0)
		daily_end(d, "database unavailable");
}

/* ---- schedule ---- */

static void
daily_task(struct sched *s, int64_t due, void *arg)
{
	struct app *app = arg;

	jobs_start_daily(app, tz_day_of(due), "scheduler", NULL, false, s);
}

void
daily_schedule_next(struct app *app, bool retry)
{
	int64_t now = clock_now();
	int64_t at =
	    retry ? now + INT64_C(60000000) : tz_local_time(tz_day_of(now) + 1, DAILY_MINUTES);

	sched_add(app->sched, at, DAILY_KEY, daily_task, app);
}

void
daily_db_ready(struct app *app)
{
	int64_t now = clock_now();

	/* today's run: at once if 00:05 has passed (idempotent) */
	sched_add(app->sched, tz_local_time(tz_day_of(now), DAILY_MINUTES), DAILY_KEY, daily_task,
	          app);
}
