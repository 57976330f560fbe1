/* http_usage.c: event ingestion and authorization handlers. */
#include "http_usage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acache.h"
#include "app.h"
#include "batcher.h"
#include "civil.h"
#include "clock.h"
#include "config.h"
#include "db.h"
#include "events.h"
#include "http_util.h"
#include "jsonfield.h"
#include "jsonscan.h"
#include "limit_rules.h"
#include "log.h"
#include "money.h"
#include "pgbin.h"
#include "tz.h"
#include "xmalloc.h"

static bool
http_usage_is_ndjson(struct http_req *r)
{
	const char *ct = http_req_header(r, "Content-Type");

	return ct && (strncasecmp(ct, "application/x-ndjson", 20) == 0 ||
	              strncasecmp(ct, "application/jsonl", 17) == 0);
}

/* Queue the job's valid events (batcher.h); the batcher answers it. */
static void
usage_submit(struct ingest_job *job)
{
	struct http_req *r = job->req;

	if (batcher_submit(http_req_app(r)->batcher, job) != 0) {
		ingest_job_free(job);
		http_reply_add_header(r, "Retry-After", "1");
		http_reply_error(r, 503, "unavailable", "ingest queue full; retry", NULL);
	}
}

/* ---- R3.3: events re-sent after max_event_age ----
 *
 * An event accepted when it was young and sent again later (a platform
 * retrying after an outage) is older than max_event_age now, but it is stored:
 * its answer is `duplicate` (same payload) or `conflict` (another payload),
 * never `rejected`. Events whose only fault is their age (events.c: too_old)
 * and whose account is known (and, R3.5, did not occur after its
 * termination) are looked up by id in ONE parameterised query per request,
 * before the request's other events are queued (the reply waits for both;
 * results stay in input order); requests without such events never query.
 * Events that are not stored keep their rejection (invalid_time), and so do
 * those with another fault or an unknown account. A failed lookup answers
 * the whole request 503 (nothing of it is queued yet): "rejected" could be
 * wrong, and the sender retries. */

struct usage_old {
	struct ingest_job *job;
	size_t n;
	size_t *idx;                      /* the events looked up, in input order */
	const struct acache_entry **acct; /* their accounts */
};

static void
usage_old_free(struct usage_old *q)
{
	free(q->idx);
	free(q->acct);
	free(q);
}

/* The account of an event whose only fault is its age, when it may be
 * stored: known, and the event did not occur after its termination (R3.5:
 * those keep their answer, as young ones do); else NULL. */
static const struct acache_entry *
usage_old_account(const struct acache *c, const struct event_in *e)
{
	const struct acache_entry *a;

	if (!e->too_old)
		return NULL;
	a = acache_find(c, e->account);
	if (a == NULL)
		return NULL; /* an unknown account has no events */
	if (a->status == ACACHE_TERMINATED && a->has_terminated && e->occurred > a->terminated_at)
		return NULL;
	return a;
}

/* One letter per event looked up, in order: 'n' not stored, 'd' stored with
 * the same payload, 'c' stored with another (the comparison
 * creditd_ingest_batch makes for 'd', sql/0017_ingest_account_join.sql). */
#define USAGE_OLD_SQL                                                                              \
	"SELECT string_agg(CASE WHEN e.id IS NULL THEN 'n' "                                       \
	"WHEN e.account_id = u.acc AND e.amount = u.amount AND e.quantity = u.qty "                \
	"AND e.service = u.service AND e.destination = coalesce(u.dest, '') "                      \
	"AND e.occurred_at = timestamptz 'epoch' + u.occ * interval '1 microsecond' "              \
	"THEN 'd' ELSE 'c' END, '' ORDER BY u.ord) "                                               \
	"FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::int[], $5::text[], $6::text[], "    \
	"$7::bigint[]) WITH ORDINALITY AS u(id, acc, amount, qty, service, dest, occ, ord) "       \
	"LEFT JOIN events e ON e.id = u.id"

enum { O_IDS, O_ACCS, O_AMOUNTS, O_QTY, O_SERVICES, O_DESTS, O_OCCURRED, O_PARAMS };

static void
usage_old_done(const struct db_result *res, void *arg)
{
	struct usage_old *q = arg;
	struct ingest_job *job = q->job;
	struct http_req *r = job->req;
	const PGresult *pg;
	const char *letters = NULL;

	if (db_result_ok(res)) {
		pg = db_result_get(res, 0);
		if (PQntuples(pg) == 1 && !PQgetisnull(pg, 0, 0) &&
		    strlen(PQgetvalue(pg, 0, 0)) == q->n)
			letters = PQgetvalue(pg, 0, 0);
	}
	if (letters == NULL) {
		/* not knowing whether they are stored: 503 (see above) */
		log_req(db_result_unavailable(res) ? LOG_LEVEL_WARNING : LOG_LEVEL_ERROR,
		        http_req_id(r), "events: looking up %zu old events: %s", q->n,
		        db_result_ok(res) ? "unexpected result" : db_result_error(res));
		usage_old_free(q);
		ingest_job_free(job);
		http_reply_unavailable(r);
		return;
	}
	for (size_t k = 0; k < q->n; k++) {
		size_t i = q->idx[k];
		if (letters[k] == 'n')
			continue; /* never stored: stays rejected, invalid_time */
		job->status[i] = letters[k] == 'd' ? "duplicate" : "conflict";
		job->reason[i] = NULL;
		snprintf(job->acct_status[i], sizeof job->acct_status[i], "%s",
		         acache_status_name(q->acct[k]->status));
	}
	usage_old_free(q);
	usage_submit(job);
}

/* Looks the events of q up, then queues the job; answers 503 itself when no
 * connection is usable. */
static void
usage_old_lookup(struct usage_old *q)
{
	struct ingest_job *job = q->job;
	struct http_req *r = job->req;
	struct pgbin p[O_PARAMS];
	const char *params[O_PARAMS];
	int lens[O_PARAMS], formats[O_PARAMS];
	bool ok = true;
	struct db_batch *b;

	pgbin_begin(&p[O_IDS], PGBIN_UUID);
	pgbin_begin(&p[O_ACCS], PGBIN_UUID);
	pgbin_begin(&p[O_AMOUNTS], PGBIN_INT8);
	pgbin_begin(&p[O_QTY], PGBIN_INT4);
	pgbin_begin(&p[O_SERVICES], PGBIN_TEXT);
	pgbin_begin(&p[O_DESTS], PGBIN_TEXT);
	pgbin_begin(&p[O_OCCURRED], PGBIN_INT8);
	for (size_t k = 0; k < q->n; k++) {
		const struct event_in *e = &job->evs.ev[q->idx[k]];
		/* both canonical (events.c, the account cache): cannot fail */
		ok = pgbin_uuid(&p[O_IDS], e->id) && ok;
		ok = pgbin_uuid(&p[O_ACCS], q->acct[k]->id) && ok;
		pgbin_int8(&p[O_AMOUNTS], e->amount);
		pgbin_int4(&p[O_QTY], e->quantity);
		pgbin_text(&p[O_SERVICES], e->service);
		pgbin_text(&p[O_DESTS], e->destination);
		pgbin_int8(&p[O_OCCURRED], e->occurred);
	}
	for (int k = 0; k < O_PARAMS; k++) {
		pgbin_end(&p[k]);
		params[k] = p[k].p;
		lens[k] = (int)p[k].len;
		formats[k] = 1; /* binary arrays */
	}
	b = db_batch_new();
	db_batch_add_fmt(b, USAGE_OLD_SQL, O_PARAMS, params, lens, formats);
	for (int k = 0; k < O_PARAMS; k++)
		pgbin_free(&p[k]);
	if (!ok) {
		log_req(LOG_LEVEL_ERROR, http_req_id(r), "events: an id is not a canonical uuid");
		db_batch_free(b);
	} else if (db_submit(http_req_app(r)->db, b, usage_old_done, q) == 0) {
		return;
	}
	usage_old_free(q);
	ingest_job_free(job);
	http_reply_unavailable(r);
}

void
http_usage_events(struct http_req *r)
{
	struct app *app = http_req_app(r);
	const struct config *cfg = app->cfg;
	struct ingest_job *job;
	struct usage_old *old = NULL;
	struct events_window w;
	size_t len;
	const char *body = http_req_body(r, &len);
	char err[256];
	int rc;

	if (!acache_loaded(app->acache)) {
		http_reply_unavailable(r);
		return;
	}
	w.now = clock_now();
	w.max_future_usec = (int64_t)cfg->max_future_skew_seconds * 1000000;
	w.max_age_usec = (int64_t)cfg->max_event_age_days * 86400 * 1000000;
	job = xcalloc(1, sizeof *job);
	job->req = r;
	rc = events_parse(body, len, http_usage_is_ndjson(r), (size_t)cfg->max_batch_events, &w,
	                  &job->evs, err, sizeof err);
	if (rc != EVENTS_PARSE_OK) {
		free(job);
		if (rc == EVENTS_PARSE_TOO_MANY)
			http_reply_error(r, 413, "too_large", err, NULL);
		else if (rc == EVENTS_PARSE_EMPTY)
			http_reply_error(r, 400, "validation_failed", err, "events");
		else
			http_reply_error(r, 400, "invalid_json", err, NULL);
		return;
	}
	job->status = xcalloc(job->evs.n, sizeof *job->status);
	job->reason = xcalloc(job->evs.n, sizeof *job->reason);
	job->account_id = xcalloc(job->evs.n, sizeof *job->account_id);
	job->acct = xcalloc(job->evs.n, sizeof *job->acct);
	job->period = xcalloc(job->evs.n, sizeof *job->period);
	job->acct_status = xcalloc(job->evs.n, sizeof *job->acct_status);
	for (size_t i = 0; i < job->evs.n; i++) {
		struct event_in *e = &job->evs.ev[i];
		const struct acache_entry *a;

		if (e->verdict != EVENT_OK) {
			job->status[i] = "rejected";
			job->reason[i] = events_verdict_reason(e->verdict);
			/* R3.3: too old, but perhaps stored when it was young */
			if ((a = usage_old_account(app->acache, e)) != NULL) {
				if (old == NULL) {
					old = xcalloc(1, sizeof *old);
					old->job = job;
					old->idx = xcalloc(job->evs.n, sizeof *old->idx);
					old->acct = xcalloc(job->evs.n, sizeof *old->acct);
				}
				old->idx[old->n] = i;
				old->acct[old->n] = a;
				old->n++;
			}
			continue;
		}
		a = acache_find(app->acache, e->account);
		if (a == NULL) {
			job->status[i] = "rejected";
			job->reason[i] = "unknown_account";
			continue;
		}
		/* R3.5: after termination, events are rejected */
		if (a->status == ACACHE_TERMINATED && a->has_terminated &&
		    e->occurred > a->terminated_at) {
			job->status[i] = "rejected";
			job->reason[i] = "account_terminated";
			snprintf(job->acct_status[i], sizeof job->acct_status[i], "terminated");
			continue;
		}
		job->account_id[i] = a->id;
		job->acct[i] = a;
		job->period[i] = tz_month_of(e->occurred);
	}
	if (old != NULL)
		usage_old_lookup(old); /* then queues the job */
	else
		usage_submit(job);
}

/* ---- POST /v1/authorize (R3.6): answered from the account cache ---- */

#define AUTHORIZE_MAX_REF 140 /* the "account" string's limit, in bytes */

/* The usual body, {"account": "...", "amount": "..."} (either order, JSON
 * whitespace anywhere between tokens, each key once), read without building
 * a jansson tree. Taken only when the values are printable ASCII without
 * escapes and valid exactly as the general path checks them (account 1..140
 * bytes without control characters, amount a decimal string > 0); anything
 * else returns false, and the general path parses the body with jansson and
 * answers it (every error) as it always did. */
static bool
authorize_parse_fast(const char *b, size_t len, char ref[AUTHORIZE_MAX_REF + 1], int64_t *amount)
{
	const char *p = b, *end = b + len, *acc = NULL, *amt = NULL;
	size_t acc_len = 0, amt_len = 0;

	p = jsonscan_ws(p, end);
	if (p == end || *p++ != '{')
		return false;
	for (int i = 0; i < 2; i++) {
		const char *key, *val;
		size_t klen, vlen;

		p = jsonscan_ws(p, end);
		if (!jsonscan_plain_string(&p, end, &key, &klen))
			return false;
		p = jsonscan_ws(p, end);
		if (p == end || *p++ != ':')
			return false;
		p = jsonscan_ws(p, end);
		if (!jsonscan_plain_string(&p, end, &val, &vlen))
			return false;
		if (klen == 7 && memcmp(key, "account", 7) == 0 && acc == NULL) {
			acc = val;
			acc_len = vlen;
		} else if (klen == 6 && memcmp(key, "amount", 6) == 0 && amt == NULL) {
			amt = val;
			amt_len = vlen;
		} else {
			return false;
		}
		p = jsonscan_ws(p, end);
		if (p == end || *p++ != (i == 0 ? ',' : '}'))
			return false;
	}
	if (jsonscan_ws(p, end) != end)
		return false;
	if (acc_len == 0 || acc_len > AUTHORIZE_MAX_REF)
		return false;
	if (money_parse(amt, amt_len, amount) != MONEY_OK || *amount <= 0)
		return false;
	memcpy(ref, acc, acc_len);
	ref[acc_len] = '\0';
	return true;
}

/* The body through jansson and the jsonfield checks; answers 400 itself
 * and returns false on any error. *ref points into the request's JSON. */
static bool
authorize_parse_general(struct http_req *r, const char **ref, int64_t *amount)
{
	static const char *const allowed[] = {"account", "amount", NULL};
	json_t *body = http_req_json_object(r);
	struct jf_err e;

	if (body == NULL)
		return false;
	if (jf_only(body, allowed, &e) < 0 || jf_string(body, "account", true, 140, ref, &e) < 0 ||
	    jf_amount(body, "amount", true, false, NULL, amount, &e) < 0) {
		http_reply_validation(r, &e);
		return false;
	}
	if (*amount <= 0) {
		http_reply_error(r, 400, "validation_failed", "amount: must be greater than 0",
		                 "amount");
		return false;
	}
	return true;
}

struct authorize_out {
	char buf[320];
	size_t n;
};

static void
authorize_put(struct authorize_out *o, const char *s)
{
	size_t len = strlen(s);

	if (len < sizeof o->buf - o->n) { /* the reply is far below the buffer */
		memcpy(o->buf + o->n, s, len);
		o->n += len;
	}
}

static void
authorize_put_money(struct authorize_out *o, bool has, int64_t v)
{
	char m[MONEY_FMT_LEN];

	if (!has) {
		authorize_put(o, "null");
		return;
	}
	authorize_put(o, "\"");
	authorize_put(o, money_format(v, m));
	authorize_put(o, "\"");
}

/* The reply is written as text: the same bytes jansson's compact dump of
 * {"allowed", "status", "reason"?, "monthly_remaining", "total_remaining"}
 * gave (all values are fixed words or formatted amounts: nothing to escape). */
static void
authorize_answer(struct http_req *r, struct app *app, const char *ref, int64_t amount)
{
	static const char unknown[] = "{\"allowed\":false,\"reason\":\"unknown_account\","
	                              "\"status\":null,\"monthly_remaining\":null,"
	                              "\"total_remaining\":null}\n";
	const struct acache_entry *a;
	struct limits_state s;
	struct limits_answer ans;
	struct authorize_out o = {.n = 0};

	if (!acache_loaded(app->acache)) {
		http_reply_unavailable(r);
		return;
	}
	a = acache_find(app->acache, ref);
	if (a == NULL) {
		http_reply_text(r, 200, "application/json", unknown, sizeof unknown - 1);
		return;
	}
	s.status = a->status == ACACHE_ACTIVE      ? LIMITS_ACTIVE
	           : a->status == ACACHE_SUSPENDED ? LIMITS_SUSPENDED
	                                           : LIMITS_TERMINATED;
	s.has_monthly = a->has_monthly;
	s.monthly_limit = a->monthly_limit;
	s.monthly_usage = a->usage_month == tz_month_of(clock_now()) ? a->monthly_usage : 0;
	s.has_total = a->has_total;
	s.total_limit = a->total_limit;
	s.exposure = a->exposure;
	limits_authorize(&s, amount, &ans);
	authorize_put(&o, ans.allowed ? "{\"allowed\":true,\"status\":\""
	                              : "{\"allowed\":false,\"status\":\"");
	authorize_put(&o, s.status == LIMITS_ACTIVE      ? "active"
	                  : s.status == LIMITS_SUSPENDED ? "suspended"
	                                                 : "terminated");
	authorize_put(&o, "\"");
	if (ans.reason) {
		authorize_put(&o, ",\"reason\":\"");
		authorize_put(&o, ans.reason);
		authorize_put(&o, "\"");
	}
	authorize_put(&o, ",\"monthly_remaining\":");
	authorize_put_money(&o, ans.has_monthly, ans.monthly_remaining);
	authorize_put(&o, ",\"total_remaining\":");
	authorize_put_money(&o, ans.has_total, ans.total_remaining);
	authorize_put(&o, "}\n");
	http_reply_text(r, 200, "application/json", o.buf, o.n);
}

void
http_usage_authorize(struct http_req *r)
{
	struct app *app = http_req_app(r);
	char fast_ref[AUTHORIZE_MAX_REF + 1];
	const char *ref;
	int64_t amount;
	size_t len;
	const char *body = http_req_body(r, &len);

	if (authorize_parse_fast(body, len, fast_ref, &amount))
		ref = fast_ref;
	else if (!authorize_parse_general(r, &ref, &amount))
		return;
	authorize_answer(r, app, ref, amount);
}
