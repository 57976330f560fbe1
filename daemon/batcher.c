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
#include "pgbin.h"
#include "tz.h"
#include "xmalloc.h"

struct batch_item {
	struct ingest_job *job;
	size_t idx;
	size_t acc; /* position of its account in the flushed batch's sorted list */
};

struct batch {
	struct batch_item *items;
	size_t n, cap;
};

enum lane_state {
	LANE_FILLING,  /* collecting; the timer or the size triggers a flush */
	LANE_FLUSHING, /* one transaction in flight; new events wait in `open` */
};

/* Events are split by account into BATCHER_LANES lanes, each with its own
 * group commit (one transaction in flight at a time): the lanes' accounts
 * are disjoint, so their transactions never wait for each other's account
 * locks and run on separate connections in parallel, and a lane's next
 * batch is collected while its transaction commits. */
#define BATCHER_LANES 2
/* A transaction that PostgreSQL aborted as a deadlock victim or for a
 * serialization failure (nothing of it committed) is sent again. */
#define BATCHER_RETRIES 3

struct lane {
	struct batcher *b;
	enum lane_state state;
	struct batch open;
	struct batch *inflight;
	int attempts; /* of the batch in flight */
	struct event *timer;
	bool timer_armed;
};

/* The lane of each account with events queued or in flight, and how many:
 * an account stays in its lane until all of them are committed (so two
 * lanes never wait for each other's account locks); an account without
 * events in flight goes to the lane with the least work, so that a busy
 * (hot) account ends up with a lane to itself and the others share the
 * rest. Open addressing by the cache entry's address (never moved). */
struct lane_slot {
	const void *acct;
	uint32_t pending;
	uint8_t lane;
};

struct lane_map {
	struct lane_slot *tab;
	size_t cap, n;
};

struct batcher {
	struct app *app;
	struct lane lanes[BATCHER_LANES];
	struct lane_map map;
	uint64_t flushes, flushed_events;
};

static void lane_flush_now(struct lane *l);

static void
lane_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lane *l = arg;

	(void)fd;
	(void)what;
	l->timer_armed = false;
	lane_flush_now(l);
}

struct batcher *
batcher_new(struct app *app)
{
	struct batcher *b = xcalloc(1, sizeof *b);

	b->app = app;
	for (int k = 0; k < BATCHER_LANES; k++) {
		b->lanes[k].b = b;
		b->lanes[k].timer = evtimer_new(app->base, lane_timer_cb, &b->lanes[k]);
	}
	/* exported from the start: a rate() alert on it (README runbook) sees
	 * the first events while suspended, not only those after them */
	metrics_counter_add(app->metrics, "creditd_events_while_suspended_total", 0);
	return b;
}

void
batcher_free(struct batcher *b)
{
	if (b == NULL)
		return;
	for (int k = 0; k < BATCHER_LANES; k++) {
		event_free(b->lanes[k].timer);
		free(b->lanes[k].open.items);
	}
	free(b->map.tab);
	free(b);
}

bool
batcher_busy(const struct batcher *b)
{
	for (int k = 0; k < BATCHER_LANES; k++)
		if (b->lanes[k].state == LANE_FLUSHING || b->lanes[k].open.n > 0)
			return true;
	return false;
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
	events_free(&job->evs);
	free(job->status);
	free(job->reason);
	free(job->account_id);
	free(job->acct);
	free(job->period);
	free(job->acct_status);
	free(job);
}

/* Appends "s" (quoted) when s is printable ASCII without '"' or '\\': the
 * bytes jansson's compact dump writes for it; false otherwise. */
static bool
reply_str(struct evbuffer *out, const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (s[n] < 0x20 || s[n] > 0x7e || s[n] == '"' || s[n] == '\\')
			return false;
	evbuffer_add(out, "\"", 1);
	evbuffer_add(out, s, n);
	evbuffer_add(out, "\"", 1);
	return true;
}

/* The reply as text, byte for byte what the jansson form below gives; false
 * (out partly written) when a string would need escaping. */
static bool
reply_text(const struct ingest_job *job, struct evbuffer *out, const size_t counts[4])
{
	evbuffer_add(out, "{\"results\":[", 12);
	for (size_t i = 0; i < job->evs.n; i++) {
		const struct event_in *e = &job->evs.ev[i];
		const char *st = job->status[i] ? job->status[i] : "rejected";
		evbuffer_add(out, i ? ",{\"id\":" : "{\"id\":", i ? 7 : 6);
		if (e->id_raw == NULL)
			evbuffer_add(out, "null", 4);
		else if (!reply_str(out, e->id_raw))
			return false;
		evbuffer_add(out, ",\"status\":", 10);
		reply_str(out, st);
		if (strcmp(st, "rejected") == 0) {
			evbuffer_add(out, ",\"reason\":", 10);
			if (job->reason[i] == NULL || !reply_str(out, job->reason[i]))
				return false;
			if (e->why[0]) {
				evbuffer_add(out, ",\"message\":", 11);
				if (!reply_str(out, e->why))
					return false;
			}
		}
		if (job->acct_status[i][0]) {
			evbuffer_add(out, ",\"account_status\":", 18);
			reply_str(out, job->acct_status[i]);
		}
		evbuffer_add(out, "}", 1);
	}
	evbuffer_add_printf(
	    out, "],\"accepted\":%zu,\"duplicate\":%zu,\"conflict\":%zu,\"rejected\":%zu}\n",
	    counts[0], counts[1], counts[2], counts[3]);
	return true;
}

static json_t *
reply_json(const struct ingest_job *job, const size_t counts[4])
{
	json_t *results = json_array();

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
	}
	return json_pack("{s:o, s:I, s:I, s:I, s:I}", "results", results, "accepted",
	                 (json_int_t)counts[0], "duplicate", (json_int_t)counts[1], "conflict",
	                 (json_int_t)counts[2], "rejected", (json_int_t)counts[3]);
}

void
ingest_job_reply(struct ingest_job *job)
{
	struct http_req *r = job->req;
	struct metrics *m = http_req_app(r)->metrics;
	size_t counts[4] = {0, 0, 0, 0};
	static const char *const names[4] = {"accepted", "duplicate", "conflict", "rejected"};
	struct evbuffer *out;

	if (job->failed) {
		ingest_job_free(job);
		http_reply_unavailable(r);
		return;
	}
	for (size_t i = 0; i < job->evs.n; i++) {
		const char *st = job->status[i] ? job->status[i] : "rejected";
		for (int k = 0; k < 4; k++)
			if (st == names[k] || strcmp(st, names[k]) == 0) {
				counts[k]++;
				break;
			}
	}
	for (int k = 0; k < 4; k++) {
		char series[64];
		snprintf(series, sizeof series, "creditd_events_total{status=\"%s\"}", names[k]);
		if (counts[k])
			metrics_counter_add(m, series, counts[k]);
	}
	out = evbuffer_new();
	if (reply_text(job, out, counts)) {
		ingest_job_free(job);
		http_reply_buffer(r, 200, "application/json", out);
		evbuffer_free(out);
		return;
	}
	evbuffer_free(out);
	json_t *body = reply_json(job, counts);
	ingest_job_free(job);
	http_reply_json(r, 200, body);
}

static size_t
lane_map_hash(const void *p)
{
	uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull;

	return (size_t)(h ^ (h >> 29));
}

/* The slot of acct: found, or empty (acct == NULL) where it would go. */
static struct lane_slot *
lane_map_slot(struct lane_map *m, const void *acct)
{
	size_t i = lane_map_hash(acct) & (m->cap - 1);

	while (m->tab[i].acct != NULL && m->tab[i].acct != acct)
		i = (i + 1) & (m->cap - 1);
	return &m->tab[i];
}

static void
lane_map_grow(struct lane_map *m)
{
	struct lane_map big = {NULL, m->cap ? m->cap * 2 : 1024, m->n};

	big.tab = xcalloc(big.cap, sizeof *big.tab);
	for (size_t i = 0; i < m->cap; i++)
		if (m->tab[i].acct != NULL)
			*lane_map_slot(&big, m->tab[i].acct) = m->tab[i];
	free(m->tab);
	*m = big;
}

/* Removes the (found) slot sl, moving later entries of its probe run back. */
static void
lane_map_delete(struct lane_map *m, struct lane_slot *sl)
{
	size_t i = (size_t)(sl - m->tab), j = i;

	for (;;) {
		j = (j + 1) & (m->cap - 1);
		if (m->tab[j].acct == NULL)
			break;
		size_t home = lane_map_hash(m->tab[j].acct) & (m->cap - 1);
		/* can the entry at j move to the hole at i? (its home is not in (i, j]) */
		if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
			m->tab[i] = m->tab[j];
			i = j;
		}
	}
	m->tab[i].acct = NULL;
	m->tab[i].pending = 0;
	m->n--;
}

static size_t
lane_work(const struct lane *l)
{
	return l->open.n + (l->inflight ? l->inflight->n : 0);
}

/* The lane with the least work. */
static int
batcher_idlest(const struct batcher *b)
{
	int best = 0;

	for (int k = 1; k < BATCHER_LANES; k++)
		if (lane_work(&b->lanes[k]) < lane_work(&b->lanes[best]))
			best = k;
	return best;
}

/* The lane of acct while it has events queued or in flight, else -1. */
static int
batcher_lane_of(const struct batcher *b, const void *acct)
{
	const struct lane_map *m = &b->map;

	if (m->n == 0)
		return -1;
	for (size_t i = lane_map_hash(acct) & (m->cap - 1); m->tab[i].acct != NULL;
	     i = (i + 1) & (m->cap - 1))
		if (m->tab[i].acct == acct)
			return m->tab[i].lane;
	return -1;
}

/* The lane for one more event of acct: its lane while it has events queued
 * or in flight, else `lane` (-1: the lane with the least work). */
static int
batcher_lane_take(struct batcher *b, const void *acct, int lane)
{
	struct lane_map *m = &b->map;
	struct lane_slot *sl;

	if ((m->n + 1) * 2 > m->cap)
		lane_map_grow(m);
	sl = lane_map_slot(m, acct);
	if (sl->acct == NULL) {
		sl->acct = acct;
		sl->lane = (uint8_t)(lane >= 0 ? lane : batcher_idlest(b));
		sl->pending = 0;
		m->n++;
	}
	sl->pending++;
	return sl->lane;
}

/* The one lane for all of the job's events, or -1 (split by account): a job
 * in one lane is answered after one commit instead of after the commits of
 * both lanes. Possible when none of its accounts has events queued or in
 * flight in another lane (an account stays in its lane); the lane is the
 * one its accounts are in, else the one with the least work, unless that
 * would leave it with far more work than another lane (a hot account's lane
 * would otherwise take every job that has an event of it). */
static int
batcher_job_lane(const struct batcher *b, const struct ingest_job *job, size_t valid)
{
	int lane = -1;

	for (size_t i = 0; i < job->evs.n; i++) {
		if (job->status[i] != NULL)
			continue;
		int k = batcher_lane_of(b, job->acct[i]);
		if (k >= 0 && lane >= 0 && k != lane)
			return -1;
		if (k >= 0)
			lane = k;
	}
	if (lane < 0)
		return batcher_idlest(b);
	for (int k = 0; k < BATCHER_LANES; k++)
		if (lane_work(&b->lanes[lane]) > lane_work(&b->lanes[k]) + valid)
			return -1;
	return lane;
}

/* One event of acct is answered. */
static void
batcher_lane_release(struct batcher *b, const void *acct)
{
	struct lane_slot *sl = lane_map_slot(&b->map, acct);

	if (sl->acct != NULL && --sl->pending == 0)
		lane_map_delete(&b->map, sl);
}

static size_t
batcher_queued(const struct batcher *b)
{
	size_t n = 0;

	for (int k = 0; k < BATCHER_LANES; k++)
		n += b->lanes[k].open.n + (b->lanes[k].inflight ? b->lanes[k].inflight->n : 0);
	return n;
}

int
batcher_submit(struct batcher *b, struct ingest_job *job)
{
	const struct config *cfg = b->app->cfg;
	size_t valid = 0;

	for (size_t i = 0; i < job->evs.n; i++)
		if (job->status[i] == NULL)
			valid++;
	if (valid == 0) {
		ingest_job_reply(job);
		return 0;
	}
	if (batcher_queued(b) + valid > (size_t)cfg->batch_queue_events)
		return -1;
	job->pending = valid;
	int lane = batcher_job_lane(b, job, valid);
	for (size_t i = 0; i < job->evs.n; i++) {
		if (job->status[i] == NULL)
			batch_push(&b->lanes[batcher_lane_take(b, job->acct[i], lane)].open, job,
			           i);
	}
	/* the job may be answered (and freed) by a flush below: not used after */
	for (int k = 0; k < BATCHER_LANES; k++) {
		struct lane *l = &b->lanes[k];
		if (l->open.n >= (size_t)cfg->batch_flush_events) {
			lane_flush_now(l);
		} else if (l->open.n > 0 && !l->timer_armed && l->state == LANE_FILLING) {
			struct timeval tv = {cfg->batch_flush_ms / 1000,
			                     (cfg->batch_flush_ms % 1000) * 1000};
			l->timer_armed = true;
			evtimer_add(l->timer, &tv);
		}
	}
	return 0;
}

void
batcher_flush(struct batcher *b)
{
	for (int k = 0; k < BATCHER_LANES; k++)
		lane_flush_now(&b->lanes[k]);
}

static void
batch_finish_items(struct batcher *b, struct batch *bt)
{
	for (size_t i = 0; i < bt->n; i++) {
		struct ingest_job *job = bt->items[i].job;
		batcher_lane_release(b, job->acct[bt->items[i].idx]);
		if (--job->pending == 0)
			ingest_job_reply(job);
	}
	free(bt->items);
	free(bt);
}

static bool lane_send(struct lane *l);

/* creditd_ingest_batch's letters: "A" and one per distinct account of the
 * batch (every event accepted), or "E" and one per event. */
static bool
batch_result_ok(const struct batch *bt, const char *out)
{
	size_t len = strlen(out);

	if (out[0] == 'E')
		return len == bt->n + 1;
	if (out[0] != 'A' || len < 2)
		return false;
	for (size_t i = 0; i < bt->n; i++)
		if (bt->items[i].acc >= len - 1)
			return false;
	return true;
}

/* The letter of event i: 'a', 's', 'd', 'c' or 't' (rejected, R3.5). */
static char
batch_result_of(const struct batch *bt, const char *out, size_t i)
{
	return out[0] == 'E' ? out[1 + i] : out[1 + bt->items[i].acc];
}

static void
lane_flushed(const struct db_result *res, void *arg)
{
	struct lane *l = arg;
	struct batcher *b = l->b;
	struct batch *bt = l->inflight;
	const struct config *cfg = b->app->cfg;
	const PGresult *st = NULL;
	const char *out = NULL;

	if (db_result_ok(res)) {
		st = db_result_get(res, 0);
		out = PQntuples(st) >= 1 && !PQgetisnull(st, 0, 0) ? PQgetvalue(st, 0, 0) : NULL;
		if (out == NULL || !batch_result_ok(bt, out)) {
			/* committed, but we cannot tell how: the senders retry and
			 * get duplicates (never happens: see creditd_ingest_batch) */
			log_errorx("ingest: batch of %zu events: unexpected result", bt->n);
			out = NULL;
		}
	} else if (!db_result_unavailable(res)) {
		const char *state = db_result_sqlstate(res);
		bool again = strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0;
		if (again && l->attempts < BATCHER_RETRIES) {
			log_warnx("ingest: batch of %zu events: %s; sending it again", bt->n,
			          db_result_error(res));
			if (lane_send(l))
				return;
		} else {
			log_errorx("ingest: batch of %zu events failed: %s (%s)", bt->n,
			           db_result_error(res), state);
		}
	}
	l->inflight = NULL;
	l->state = LANE_FILLING;
	if (out == NULL) {
		for (size_t i = 0; i < bt->n; i++)
			bt->items[i].job->failed = true;
	} else {
		uint64_t while_suspended = 0;
		/* the account rows (from row 1 on): the cache follows the committed
		 * state, unless a result handled before this one showed a later
		 * version of an account (0023: each row carries its version) */
		acache_update_rows(b->app->acache, st, 1);
		for (size_t i = 0; i < bt->n; i++) {
			struct batch_item *it = &bt->items[i];
			struct ingest_job *job = it->job;
			switch (batch_result_of(bt, out, i)) {
			case 's':
				while_suspended++;
				/* fall through */
			case 'a':
				job->status[it->idx] = "accepted";
				break;
			case 'd':
				job->status[it->idx] = "duplicate";
				break;
			case 't':
				/* R3.5: the termination committed after this event's
				 * account was checked; sql/0025 */
				job->status[it->idx] = "rejected";
				job->reason[it->idx] = "account_terminated";
				break;
			default:
				job->status[it->idx] = "conflict";
				break;
			}
			/* the cache entry (never freed) now shows the committed state */
			const struct acache_entry *e = job->acct[it->idx];
			const char *word = acache_status_name(e->status);
			memcpy(job->acct_status[it->idx], word, strlen(word) + 1);
		}
		if (while_suspended)
			metrics_counter_add(b->app->metrics, "creditd_events_while_suspended_total",
			                    while_suspended);
		b->flushes++;
		b->flushed_events += bt->n;
	}
	batch_finish_items(b, bt);
	if (l->open.n >= (size_t)cfg->batch_flush_events || (l->open.n > 0 && !l->timer_armed))
		lane_flush_now(l);
}

/* Open-addressing sets over the batch: events by id (the first event with an
 * id is the one inserted) and accounts by their cache entry's id pointer
 * (entries are never freed or moved while the daemon runs). */
static size_t
batcher_hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)(h ^ (h >> 29));
}

static size_t
batcher_hash_ptr(const void *p)
{
	uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull;

	return (size_t)(h ^ (h >> 31));
}

struct acc_ref {
	const char *id;
	size_t first; /* index of the distinct account in encounter order */
};

static int
acc_ref_cmp(const void *a, const void *b)
{
	return strcmp(((const struct acc_ref *)a)->id, ((const struct acc_ref *)b)->id);
}

/* Per distinct account, as if every event of the batch were new. */
struct acc_sum {
	int64_t total, month, month_min, last;
	bool has_month;
};

/* Per rollup key (account, period, service, destination). */
struct roll_sum {
	size_t acc; /* distinct account index (encounter order) */
	int32_t period;
	const char *service, *destination;
	int64_t qty, amount, events, umin, umax;
};

static size_t
roll_hash(size_t acc, int32_t period, const char *service, const char *destination)
{
	uint64_t h = 1469598103934665603ull ^ ((uint64_t)acc * 0x9e3779b97f4a7c15ull);

	h = (h ^ (uint32_t)period) * 1099511628211ull;
	for (const char *p = service; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	h = (h ^ 0xffu) * 1099511628211ull;
	for (const char *p = destination ? destination : ""; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return (size_t)(h ^ (h >> 29));
}

static bool
str_same(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

enum {
	P_ACCS,
	P_AI,
	P_IDS,
	P_AMOUNTS,
	P_OCCURRED,
	P_PERIODS,
	P_SERVICES,
	P_DESTS,
	P_QTY,
	P_FIRST,
	P_ACC_TOTAL,
	P_ACC_MONTH,
	P_ACC_MONTH_MIN,
	P_ACC_LAST,
	P_G_AI,
	P_G_PERIOD,
	P_G_SERVICE,
	P_G_DEST,
	P_G_QTY,
	P_G_AMOUNT,
	P_G_EVENTS,
	P_G_UMIN,
	P_G_UMAX,
	P_ARRAYS /* then p_now, p_month, p_thresholds */
};

/* The element type of each array parameter. */
static const uint32_t batcher_param_oid[P_ARRAYS] = {
    [P_ACCS] = PGBIN_UUID,          [P_AI] = PGBIN_INT4,        [P_IDS] = PGBIN_UUID,
    [P_AMOUNTS] = PGBIN_INT8,       [P_OCCURRED] = PGBIN_INT8,  [P_PERIODS] = PGBIN_INT4,
    [P_SERVICES] = PGBIN_TEXT,      [P_DESTS] = PGBIN_TEXT,     [P_QTY] = PGBIN_INT4,
    [P_FIRST] = PGBIN_BOOL,         [P_ACC_TOTAL] = PGBIN_INT8, [P_ACC_MONTH] = PGBIN_INT8,
    [P_ACC_MONTH_MIN] = PGBIN_INT8, [P_ACC_LAST] = PGBIN_INT8,  [P_G_AI] = PGBIN_INT4,
    [P_G_PERIOD] = PGBIN_INT4,      [P_G_SERVICE] = PGBIN_TEXT, [P_G_DEST] = PGBIN_TEXT,
    [P_G_QTY] = PGBIN_INT8,         [P_G_AMOUNT] = PGBIN_INT8,  [P_G_EVENTS] = PGBIN_INT8,
    [P_G_UMIN] = PGBIN_INT8,        [P_G_UMAX] = PGBIN_INT8,
};

/* The array parameters of creditd_ingest_batch for the events of bt (see
 * sql/0013_ingest_speed.sql), in PostgreSQL's binary array format (issue 3:
 * the server copies the elements instead of parsing 80 KB of text a batch);
 * month_day: the current billing month. false: an id is not a canonical
 * uuid (cannot happen: events.c and the account cache canonicalize them). */
static bool
batcher_params(struct batch *bt, int32_t month_day, struct pgbin p[P_ARRAYS], bool *overflow)
{
	bool ok = true;
	size_t n = bt->n, cap = 16, nacc = 0, ngroups = 0;
	const char **ev_id = xcalloc(n, sizeof *ev_id);
	const char **ev_acc = xcalloc(n, sizeof *ev_acc);
	size_t *ev_slot = xcalloc(n, sizeof *ev_slot);
	size_t *rank, *id_tab, *acc_tab, *roll_tab;
	struct acc_ref *accs;
	struct acc_sum *sums;
	struct roll_sum *groups;

	while (cap < 2 * n)
		cap *= 2;
	id_tab = xcalloc(cap, sizeof *id_tab);     /* event index + 1, 0 = empty */
	acc_tab = xcalloc(cap, sizeof *acc_tab);   /* distinct account index + 1 */
	roll_tab = xcalloc(cap, sizeof *roll_tab); /* group index + 1 */
	accs = xcalloc(n, sizeof *accs);
	sums = xcalloc(n, sizeof *sums);
	groups = xcalloc(n, sizeof *groups);
	for (size_t k = 0; k < P_ARRAYS; k++)
		pgbin_begin(&p[k], batcher_param_oid[k]);
	for (size_t i = 0; i < n; i++) {
		const struct ingest_job *job = bt->items[i].job;
		size_t idx = bt->items[i].idx, h, a;
		const struct event_in *e = &job->evs.ev[idx];
		int32_t period = job->period[idx];
		int64_t unit = e->amount / e->quantity;
		struct acc_sum *sum;
		struct roll_sum *g;
		bool first = true;

		ev_id[i] = e->id;
		ev_acc[i] = job->account_id[idx];
		for (h = batcher_hash_str(e->id) & (cap - 1); id_tab[h]; h = (h + 1) & (cap - 1)) {
			if (strcmp(ev_id[id_tab[h] - 1], e->id) == 0) {
				first = false;
				break;
			}
		}
		if (first)
			id_tab[h] = i + 1;
		for (h = batcher_hash_ptr(ev_acc[i]) & (cap - 1); acc_tab[h];
		     h = (h + 1) & (cap - 1))
			if (accs[acc_tab[h] - 1].id == ev_acc[i])
				break;
		if (acc_tab[h] == 0) {
			accs[nacc].id = ev_acc[i];
			accs[nacc].first = nacc;
			sums[nacc].last = e->occurred;
			acc_tab[h] = ++nacc;
		}
		a = ev_slot[i] = acc_tab[h] - 1;

		/* sums as if every event were new; one that would overflow (only
		 * possible with a huge batch_queue_events) leaves the batch to the
		 * general path, which sums in SQL and fails the batch as before */
		sum = &sums[a];
		if (__builtin_add_overflow(sum->total, e->amount, &sum->total))
			*overflow = true;
		if (e->occurred > sum->last)
			sum->last = e->occurred;
		if (period == month_day) {
			if (__builtin_add_overflow(sum->month, e->amount, &sum->month))
				*overflow = true;
			if (!sum->has_month || e->occurred < sum->month_min)
				sum->month_min = e->occurred;
			sum->has_month = true;
		}
		for (h = roll_hash(a, period, e->service, e->destination) & (cap - 1); roll_tab[h];
		     h = (h + 1) & (cap - 1)) {
			g = &groups[roll_tab[h] - 1];
			if (g->acc == a && g->period == period &&
			    strcmp(g->service, e->service) == 0 &&
			    str_same(g->destination, e->destination))
				break;
		}
		if (roll_tab[h] == 0) {
			g = &groups[ngroups];
			g->acc = a;
			g->period = period;
			g->service = e->service;
			g->destination = e->destination;
			g->umin = g->umax = unit;
			roll_tab[h] = ++ngroups;
		}
		g = &groups[roll_tab[h] - 1];
		g->qty += e->quantity;
		if (__builtin_add_overflow(g->amount, e->amount, &g->amount))
			*overflow = true;
		g->events++;
		if (unit < g->umin)
			g->umin = unit;
		if (unit > g->umax)
			g->umax = unit;

		ok = pgbin_uuid(&p[P_IDS], e->id) && ok;
		pgbin_int8(&p[P_AMOUNTS], e->amount);
		pgbin_int8(&p[P_OCCURRED], e->occurred);
		pgbin_int4(&p[P_PERIODS], period);
		pgbin_text(&p[P_SERVICES], e->service);
		pgbin_text(&p[P_DESTS], e->destination);
		pgbin_int4(&p[P_QTY], e->quantity);
		pgbin_bool(&p[P_FIRST], first);
	}
	qsort(accs, nacc, sizeof *accs, acc_ref_cmp);
	rank = xcalloc(nacc ? nacc : 1, sizeof *rank);
	for (size_t j = 0; j < nacc; j++) {
		const struct acc_sum *sum = &sums[accs[j].first];
		rank[accs[j].first] = j + 1;
		ok = pgbin_uuid(&p[P_ACCS], accs[j].id) && ok;
		pgbin_int8(&p[P_ACC_TOTAL], sum->total);
		pgbin_int8(&p[P_ACC_MONTH], sum->month);
		if (sum->has_month)
			pgbin_int8(&p[P_ACC_MONTH_MIN], sum->month_min);
		else
			pgbin_null(&p[P_ACC_MONTH_MIN]);
		pgbin_int8(&p[P_ACC_LAST], sum->last);
	}
	for (size_t i = 0; i < n; i++) {
		bt->items[i].acc = rank[ev_slot[i]] - 1;
		pgbin_int4(&p[P_AI], (int32_t)rank[ev_slot[i]]);
	}
	for (size_t j = 0; j < ngroups; j++) {
		const struct roll_sum *g = &groups[j];
		pgbin_int4(&p[P_G_AI], (int32_t)rank[g->acc]);
		pgbin_int4(&p[P_G_PERIOD], g->period);
		pgbin_text(&p[P_G_SERVICE], g->service);
		pgbin_text(&p[P_G_DEST], g->destination);
		pgbin_int8(&p[P_G_QTY], g->qty);
		pgbin_int8(&p[P_G_AMOUNT], g->amount);
		pgbin_int8(&p[P_G_EVENTS], g->events);
		pgbin_int8(&p[P_G_UMIN], g->umin);
		pgbin_int8(&p[P_G_UMAX], g->umax);
	}
	for (size_t k = 0; k < P_ARRAYS; k++)
		pgbin_end(&p[k]);
	free(groups);
	free(sums);
	free(rank);
	free(accs);
	free(roll_tab);
	free(acc_tab);
	free(id_tab);
	free(ev_slot);
	free(ev_acc);
	free(ev_id);
	return ok;
}

/* Sends the lane's batch in flight (again, after a deadlock); false when no
 * connection is usable. */
static bool
lane_send(struct lane *l)
{
	struct batch *bt = l->inflight;
	struct pgbin p[P_ARRAYS];
	char now[24], month[CIVIL_DATE_LEN + 1], thr[THRESHOLDS_PARAM_LEN];
	const char *params[P_ARRAYS + 3];
	int lens[P_ARRAYS + 3], formats[P_ARRAYS + 3];
	int64_t t = clock_now();
	int32_t month_day = tz_month_of(t);
	bool overflow = false;
	struct db_batch *batch;

	if (!batcher_params(bt, month_day, p, &overflow)) {
		log_errorx("ingest: batch of %zu events: an id is not a canonical uuid", bt->n);
		for (int k = 0; k < P_ARRAYS; k++)
			pgbin_free(&p[k]);
		return false;
	}
	snprintf(now, sizeof now, "%" PRId64, t);
	civil_format_date(month_day, month);
	thresholds_param(l->b->app->cfg, thr);
	for (int k = 0; k < P_ARRAYS; k++) {
		/* NULL sums: the general path */
		bool sums = k >= P_ACC_TOTAL && k <= P_G_UMAX;
		params[k] = overflow && sums ? NULL : p[k].p;
		lens[k] = overflow && sums ? 0 : (int)p[k].len;
		formats[k] = 1; /* binary arrays */
	}
	params[P_ARRAYS] = now;
	params[P_ARRAYS + 1] = month;
	params[P_ARRAYS + 2] = thr;
	for (int k = P_ARRAYS; k < P_ARRAYS + 3; k++) {
		lens[k] = (int)strlen(params[k]);
		formats[k] = 0;
	}
	batch = db_batch_new();
	db_batch_add_fmt(
	    batch,
	    "SELECT * FROM creditd_ingest_batch($1::uuid[], $2::int[], $3::uuid[], "
	    "$4::bigint[], $5::bigint[], $6::int[], $7::text[], $8::text[], $9::int[], "
	    "$10::boolean[], $11::bigint[], $12::bigint[], $13::bigint[], "
	    "$14::bigint[], $15::int[], $16::int[], $17::text[], $18::text[], "
	    "$19::bigint[], $20::bigint[], $21::bigint[], $22::bigint[], "
	    "$23::bigint[], $24::bigint, $25::date, $26::int[])",
	    P_ARRAYS + 3, params, lens, formats);
	for (int k = 0; k < P_ARRAYS; k++)
		pgbin_free(&p[k]);
	l->attempts++;
	return db_submit(l->b->app->db, batch, lane_flushed, l) == 0;
}

static void
lane_flush_now(struct lane *l)
{
	struct batch *bt;

	if (l->state == LANE_FLUSHING || l->open.n == 0)
		return;
	if (l->timer_armed) {
		evtimer_del(l->timer);
		l->timer_armed = false;
	}
	bt = xcalloc(1, sizeof *bt);
	*bt = l->open;
	memset(&l->open, 0, sizeof l->open);
	l->inflight = bt;
	l->state = LANE_FLUSHING;
	l->attempts = 0;
	if (!lane_send(l)) {
		l->inflight = NULL;
		l->state = LANE_FILLING;
		for (size_t i = 0; i < bt->n; i++)
			bt->items[i].job->failed = true;
		batch_finish_items(l->b, bt);
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
	    batcher_queued(b), b->flushes, b->flushed_events);
}
