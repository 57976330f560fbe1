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
#include "events.h"
#include "http_util.h"
#include "jsonfield.h"
#include "limit_rules.h"
#include "money.h"
#include "tz.h"
#include "xmalloc.h"

static bool
http_usage_is_ndjson(struct http_req *r)
{
	const char *ct = http_req_header(r, "Content-Type");

	return ct && (strncasecmp(ct, "application/x-ndjson", 20) == 0 ||
	              strncasecmp(ct, "application/jsonl", 17) == 0);
}

void
http_usage_events(struct http_req *r)
{
	struct app *app = http_req_app(r);
	const struct config *cfg = app->cfg;
	struct ingest_job *job;
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
	job->period = xcalloc(job->evs.n, sizeof *job->period);
	job->acct_status = xcalloc(job->evs.n, sizeof *job->acct_status);
	for (size_t i = 0; i < job->evs.n; i++) {
		struct event_in *e = &job->evs.ev[i];
		const struct acache_entry *a;
		char day[CIVIL_DATE_LEN];

		if (e->verdict != EVENT_OK) {
			job->status[i] = "rejected";
			job->reason[i] = events_verdict_reason(e->verdict);
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
		civil_format_date(tz_month_of(e->occurred), day);
		job->period[i] = xstrdup(day);
	}
	if (batcher_submit(app->batcher, job) != 0) {
		ingest_job_free(job);
		http_reply_add_header(r, "Retry-After", "1");
		http_reply_error(r, 503, "unavailable", "ingest queue full; retry", NULL);
	}
}

void
http_usage_authorize(struct http_req *r)
{
	static const char *const allowed[] = {"account", "amount", NULL};
	struct app *app = http_req_app(r);
	json_t *body = http_req_json_object(r), *out;
	const struct acache_entry *a;
	const char *ref;
	int64_t amount;
	struct jf_err e;
	struct limits_state s;
	struct limits_answer ans;

	if (body == NULL)
		return;
	if (jf_only(body, allowed, &e) < 0 || jf_string(body, "account", true, 140, &ref, &e) < 0 ||
	    jf_amount(body, "amount", true, false, NULL, &amount, &e) < 0) {
		http_reply_validation(r, &e);
		return;
	}
	if (amount <= 0) {
		http_reply_error(r, 400, "validation_failed", "amount: must be greater than 0",
		                 "amount");
		return;
	}
	if (!acache_loaded(app->acache)) {
		http_reply_unavailable(r);
		return;
	}
	a = acache_find(app->acache, ref);
	if (a == NULL) {
		http_reply_json(r, 200,
		                json_pack("{s:b, s:s, s:n, s:n, s:n}", "allowed", 0, "reason",
		                          "unknown_account", "status", "monthly_remaining",
		                          "total_remaining"));
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
	out = json_pack("{s:b, s:s}", "allowed", ans.allowed, "status",
	                s.status == LIMITS_ACTIVE      ? "active"
	                : s.status == LIMITS_SUSPENDED ? "suspended"
	                                               : "terminated");
	if (ans.reason)
		json_object_set_new(out, "reason", json_string(ans.reason));
	json_object_set_new(out, "monthly_remaining",
	                    ans.has_monthly ? j_money(ans.monthly_remaining) : json_null());
	json_object_set_new(out, "total_remaining",
	                    ans.has_total ? j_money(ans.total_remaining) : json_null());
	http_reply_json(r, 200, out);
}
