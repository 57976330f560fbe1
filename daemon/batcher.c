/* batcher.c: group commit of chargeable events. */
#include "batcher.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acache.h"
#include "app.h"
#include "civil.h"
#include "clock.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "http_util.h"
#include "log.h"
#include "metrics.h"
#include "money.h"
#include "tz.h"
#include "xmalloc.h"

struct batch_item {
	struct ingest_job *job;
	size_t idx;
};

struct batch {
	struct batch_item *items;
	size_t n, cap;
};

enum batcher_state {
	BATCHER_FILLING,  /* collecting; the timer or the size triggers a flush */
	BATCHER_FLUSHING, /* one transaction in flight; new events wait in `open` */
};

struct batcher {
	struct app *app;
	enum batcher_state state;
	struct batch open;
	struct batch *inflight;
	struct event *timer;
	bool timer_armed;
	uint64_t flushes, flushed_events;
};

static void batcher_flush_now(struct batcher *b);

static void
batcher_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct batcher *b = arg;

	(void)fd;
	(void)what;
	b->timer_armed = false;
	batcher_flush_now(b);
}

struct batcher *
batcher_new(struct app *app)
{
	struct batcher *b = xcalloc(1, sizeof *b);

	b->app = app;
	b->timer = evtimer_new(app->base, batcher_timer_cb, b);
	return b;
}

void
batcher_free(struct batcher *b)
{
	if (b == NULL)
		return;
	event_free(b->timer);
	free(b->open.items);
	free(b);
}

bool
batcher_busy(const struct batcher *b)
{
	return b->state == BATCHER_FLUSHING || b->open.n > 0;
}

static void
batch_push(struct batch *bt, struct ingest_job *job, size_t idx)
{
	if (bt->n == bt->cap) {
		bt->cap = bt->cap ? bt->cap * 2 : 1024;
		bt->items = xreallocarray(bt->items, bt->cap, sizeof *bt->items);
	}
	bt->items[bt->n].job = job;
	bt->items[bt->n].idx = idx;
	bt->n++;
}

void
ingest_job_free(struct ingest_job *job)
{
	for (size_t i = 0; i < job->evs.n; i++)
		free(job->period ? job->period[i] : NULL);
	events_free(&job->evs);
	free(job->status);
	free(job->reason);
	free(job->account_id);
	free(job->period);
	free(job->acct_status);
	free(job);
}

void
ingest_job_reply(struct ingest_job *job)
{
	struct http_req *r = job->req;
	struct metrics *m = http_req_app(r)->metrics;
	json_t *results, *body;
	size_t counts[4] = {0, 0, 0, 0};
	static const char *const names[4] = {"accepted", "duplicate", "conflict", "rejected"};

	if (job->failed) {
		ingest_job_free(job);
		http_reply_unavailable(r);
		return;
	}
	results = json_array();
	for (size_t i = 0; i < job->evs.n; i++) {
		const struct event_in *e = &job->evs.ev[i];
		json_t *o = json_object();
		const char *st = job->status[i] ? job->status[i] : "rejected";
		json_object_set_new(o, "id", e->id_raw ? json_string(e->id_raw) : json_null());
		json_object_set_new(o, "status", json_string(st));
		if (strcmp(st, "rejected") == 0) {
			json_object_set_new(o, "reason", json_string(job->reason[i]));
			if (e->why[0])
				json_object_set_new(o, "message", json_string(e->why));
		}
		if (job->acct_status[i][0])
			json_object_set_new(o, "account_status", json_string(job->acct_status[i]));
		json_array_append_new(results, o);
		for (int k = 0; k < 4; k++)
			if (strcmp(st, names[k]) == 0)
				counts[k]++;
	}
	body = json_pack("{s:o, s:I, s:I, s:I, s:I}", "results", results, "accepted",
	                 (json_int_t)counts[0], "duplicate", (json_int_t)counts[1], "conflict",
	                 (json_int_t)counts[2], "rejected", (json_int_t)counts[3]);
	for (int k = 0; k < 4; k++) {
		char series[64];
		snprintf(series, sizeof series, "creditd_events_total{status=\"%s\"}", names[k]);
		if (counts[k])
			metrics_counter_add(m, series, counts[k]);
	}
	ingest_job_free(job);
	http_reply_json(r, 200, body);
}

int
batcher_submit(struct batcher *b, struct ingest_job *job)
{
	const struct config *cfg = b->app->cfg;
	size_t valid = 0, queued = b->open.n + (b->inflight ? b->inflight->n : 0);

	for (size_t i = 0; i < job->evs.n; i++)
		if (job->status[i] == NULL)
			valid++;
	if (valid == 0) {
		ingest_job_reply(job);
		return 0;
	}
	if (queued + valid > (size_t)cfg->batch_queue_events)
		return -1;
	for (size_t i = 0; i < job->evs.n; i++) {
		if (job->status[i] != NULL)
			continue;
		batch_push(&b->open, job, i);
		job->pending++;
	}
	if (b->open.n >= (size_t)cfg->batch_flush_events) {
		batcher_flush_now(b);
	} else if (!b->timer_armed && b->state == BATCHER_FILLING) {
		struct timeval tv = {cfg->batch_flush_ms / 1000,
		                     (cfg->batch_flush_ms % 1000) * 1000};
		b->timer_armed = true;
		evtimer_add(b->timer, &tv);
	}
	return 0;
}

void
batcher_flush(struct batcher *b)
{
	batcher_flush_now(b);
}

/* Array literal element: text, double-quoted with escapes. */
static void
arr_text(struct evbuffer *buf, const char *s, bool first)
{
	if (!first)
		evbuffer_add(buf, ",", 1);
	if (s == NULL) {
		evbuffer_add(buf, "NULL", 4);
		return;
	}
	evbuffer_add(buf, "\"", 1);
	for (const char *p = s; *p; p++) {
		if (*p == '"' || *p == '\\')
			evbuffer_add(buf, "\\", 1);
		evbuffer_add(buf, p, 1);
	}
	evbuffer_add(buf, "\"", 1);
}

static char *
arr_close(struct evbuffer *buf, int *len)
{
	size_t n;
	char *s;

	evbuffer_add(buf, "}", 1);
	n = evbuffer_get_length(buf);
	s = xmalloc(n + 1);
	evbuffer_remove(buf, s, n);
	s[n] = '\0';
	*len = (int)n;
	evbuffer_free(buf);
	return s;
}

static void
batcher_finish_items(struct batcher *b, struct batch *bt)
{
	for (size_t i = 0; i < bt->n; i++) {
		struct ingest_job *job = bt->items[i].job;
		if (--job->pending == 0)
			ingest_job_reply(job);
	}
	(void)b;
}

static void
batcher_flushed(const struct db_result *res, void *arg)
{
	struct batcher *b = arg;
	struct batch *bt = b->inflight;
	const struct config *cfg = b->app->cfg;

	b->inflight = NULL;
	b->state = BATCHER_FILLING;
	if (!db_result_ok(res)) {
		if (!db_result_unavailable(res))
			log_errorx("ingest: batch of %zu events failed: %s (%s)", bt->n,
			           db_result_error(res), db_result_sqlstate(res));
		for (size_t i = 0; i < bt->n; i++)
			bt->items[i].job->failed = true;
	} else {
		const PGresult *st = db_result_get(res, 0);
		const PGresult *acc = db_result_get(res, 1);
		uint64_t while_suspended = 0;
		for (int i = 0; i < PQntuples(acc); i++)
			acache_update(b->app->acache, acc, i);
		for (int i = 0; i < PQntuples(st); i++) {
			long ord = strtol(PQgetvalue(st, i, 0), NULL, 10);
			const char *s = PQgetvalue(st, i, 1);
			if (ord < 1 || (size_t)ord > bt->n)
				continue;
			struct batch_item *it = &bt->items[ord - 1];
			struct ingest_job *job = it->job;
			job->status[it->idx] = strcmp(s, "accepted") == 0    ? "accepted"
			                       : strcmp(s, "duplicate") == 0 ? "duplicate"
			                                                     : "conflict";
			if (PQgetvalue(st, i, 2)[0] == 't')
				while_suspended++;
			const struct acache_entry *e =
			    acache_find(b->app->acache, job->account_id[it->idx]);
			if (e)
				snprintf(job->acct_status[it->idx], sizeof job->acct_status[0],
				         "%s",
				         e->status == ACACHE_ACTIVE      ? "active"
				         : e->status == ACACHE_SUSPENDED ? "suspended"
				                                         : "terminated");
		}
		if (while_suspended)
			metrics_counter_add(b->app->metrics, "creditd_events_while_suspended_total",
			                    while_suspended);
		b->flushes++;
		b->flushed_events += bt->n;
	}
	batcher_finish_items(b, bt);
	free(bt->items);
	free(bt);
	if (b->open.n >= (size_t)cfg->batch_flush_events || (b->open.n > 0 && !b->timer_armed))
		batcher_flush_now(b);
}

static void
batcher_flush_now(struct batcher *b)
{
	struct batch *bt;
	struct evbuffer *ids, *accs, *amts, *occ, *per, *svc, *dst, *qty;
	char now[24], month[CIVIL_DATE_LEN + 1];
	int64_t t;

	if (b->state == BATCHER_FLUSHING || b->open.n == 0)
		return;
	if (b->timer_armed) {
		evtimer_del(b->timer);
		b->timer_armed = false;
	}
	bt = xcalloc(1, sizeof *bt);
	*bt = b->open;
	memset(&b->open, 0, sizeof b->open);
	ids = evbuffer_new();
	accs = evbuffer_new();
	amts = evbuffer_new();
	occ = evbuffer_new();
	per = evbuffer_new();
	svc = evbuffer_new();
	dst = evbuffer_new();
	qty = evbuffer_new();
	evbuffer_add(ids, "{", 1);
	evbuffer_add(accs, "{", 1);
	evbuffer_add(amts, "{", 1);
	evbuffer_add(occ, "{", 1);
	evbuffer_add(per, "{", 1);
	evbuffer_add(svc, "{", 1);
	evbuffer_add(dst, "{", 1);
	evbuffer_add(qty, "{", 1);
	for (size_t i = 0; i < bt->n; i++) {
		struct ingest_job *job = bt->items[i].job;
		const struct event_in *e = &job->evs.ev[bt->items[i].idx];
		const char *sep = i ? "," : "";
		evbuffer_add_printf(ids, "%s%s", sep, e->id);
		evbuffer_add_printf(accs, "%s%s", sep, job->account_id[bt->items[i].idx]);
		evbuffer_add_printf(amts, "%s%" PRId64, sep, e->amount);
		evbuffer_add_printf(occ, "%s%" PRId64, sep, e->occurred);
		evbuffer_add_printf(per, "%s%s", sep, job->period[bt->items[i].idx]);
		arr_text(svc, e->service, i == 0);
		arr_text(dst, e->destination, i == 0);
		evbuffer_add_printf(qty, "%s%" PRId32, sep, e->quantity);
	}
	t = clock_now();
	snprintf(now, sizeof now, "%" PRId64, t);
	civil_format_date(tz_month_of(t), month);
	{
		int lens[11];
		char *p[11];
		char thr[THRESHOLDS_PARAM_LEN];
		thresholds_param(b->app->cfg, thr);
		p[0] = arr_close(ids, &lens[0]);
		p[1] = arr_close(accs, &lens[1]);
		p[2] = arr_close(amts, &lens[2]);
		p[3] = arr_close(occ, &lens[3]);
		p[4] = arr_close(per, &lens[4]);
		p[5] = arr_close(svc, &lens[5]);
		p[6] = arr_close(dst, &lens[6]);
		p[7] = arr_close(qty, &lens[7]);
		p[8] = now;
		lens[8] = (int)strlen(now);
		p[9] = month;
		lens[9] = (int)strlen(month);
		p[10] = thr;
		lens[10] = (int)strlen(thr);
		struct db_batch *batch = db_batch_new();
		db_batch_add_len(
		    batch,
		    "SELECT ord, status, while_suspended FROM creditd_ingest($1::uuid[], "
		    "$2::uuid[], $3::bigint[], $4::bigint[], $5::date[], $6::text[], $7::text[], "
		    "$8::int[], $9::bigint, $10::date, $11::int[])",
		    11, (const char *const *)p, lens);
		db_batch_add_len(batch, "SELECT * FROM account_view WHERE id = ANY($1::uuid[])", 1,
		                 (const char *const *)p + 1, lens + 1);
		for (int k = 0; k < 8; k++)
			free(p[k]);
		b->inflight = bt;
		b->state = BATCHER_FLUSHING;
		if (db_submit(b->app->db, batch, batcher_flushed, b) != 0) {
			b->inflight = NULL;
			b->state = BATCHER_FILLING;
			for (size_t i = 0; i < bt->n; i++)
				bt->items[i].job->failed = true;
			batcher_finish_items(b, bt);
			free(bt->items);
			free(bt);
		}
	}
}

void
batcher_metrics(struct batcher *b, void *evbuffer)
{
	struct evbuffer *out = evbuffer;

	evbuffer_add_printf(
	    out,
	    "# HELP creditd_ingest_queued_events Events waiting for a group commit.\n"
	    "# TYPE creditd_ingest_queued_events gauge\n"
	    "creditd_ingest_queued_events %zu\n"
	    "# HELP creditd_ingest_flushes_total Group commits.\n"
	    "# TYPE creditd_ingest_flushes_total counter\n"
	    "creditd_ingest_flushes_total %" PRIu64 "\n"
	    "creditd_ingest_flushed_events_total %" PRIu64 "\n",
	    b->open.n + (b->inflight ? b->inflight->n : 0), b->flushes, b->flushed_events);
}
