/* jobs.c: invoicing runs, their schedule and their HTTP endpoints. */
#include "jobs.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "acache.h"
#include "app.h"
#include "civil.h"
#include "clock.h"
#include "config.h"
#include "db.h"
#include "http.h"
#include "http_util.h"
#include "daily.h"
#include "jsonfield.h"
#include "log.h"
#include "sched.h"
#include "tz.h"
#include "xmalloc.h"

#define INVOICE_CHUNK "1000"
/* The run's lanes: each a share of the accounts (creditd_invoice_chunk_lane),
 * its chunks one after the other, the lanes at the same time (on connections
 * of their own as db_submit spreads them); then the sweep (lane -1) bills
 * what arrived behind them meanwhile. */
#define INVOICE_LANES 2
#define RUN_KEY "invoice_run"
#define RETRY_MIN_USEC INT64_C(60000000)   /* 1 min */
#define RETRY_MAX_USEC INT64_C(3600000000) /* 1 h */
#define PERIODS_KEPT 24
#define JOB_LOCK_KEY "7274300"
#define SWEEP_SECONDS 30
#define LOCK_CHECK_MS 500 /* a connection back: its job locks taken again */
#define DEADLINE_DAY 10   /* R5.1: issued no later than the 10th */

struct job_waiter {
	struct http_req *r;
	struct job_waiter *next;
};

struct job_run;

/* A run's job lock on one connection of the pool (liveness, below). */
struct job_lock {
	int held; /* the connection's generation holding it; -1 none */
	int sent; /* the generation an attempt in flight was sent on; -1 none */
};

/* A lane of an invoicing run (-1: the sweep). */
struct job_lane {
	struct job_run *run;
	int lane;
};

struct job_run {
	struct jobs *j;
	bool daily;     /* kind: daily job, else invoicing */
	json_t *result; /* set by the daily job */
	char id[37];
	int32_t period; /* invoicing: first day of the billed month; daily: the date */
	int32_t issue;  /* issue date (billing zone) */
	int invoices;
	int64_t finished_at; /* when its outcome was written */
	struct job_lane lanes[INVOICE_LANES];
	struct job_lane sweep;
	int lanes_running; /* lanes not finished yet (+1 while they start) */
	bool swept;        /* the sweep has started */
	bool unrecorded;   /* a lane could not submit: the outcome cannot be recorded */
	struct job_waiter *waiters;
	/* answered 202 "running" once the job's row is committed (R9.3: a job
	 * id is not acknowledged before GET /v1/jobs/{id} can find it) */
	struct http_req *ack;
	struct sched *sched; /* set when the scheduler started it */
	char *error;
	struct job_run *next;   /* in jobs.runs */
	bool created;           /* the insert answered */
	struct job_lock *locks; /* one per connection of the pool */
};

struct period_state {
	int32_t period;
	int64_t invoiced_at;
	int invoices;
};

struct jobs {
	struct app *app;
	int running;
	struct period_state periods[PERIODS_KEPT];
	int nperiods;
	int64_t retry_usec;
	struct event *sweep_timer;
	struct event *lock_timer;
	struct job_run *runs; /* the runs of this daemon */
	int npool;            /* connections in the pool */
	bool sweeping;        /* a sweep in flight */
	int pending;          /* batches in flight whose callback uses j */
	bool freed;           /* jobs_free ran with some pending: the last one frees j */
	uint64_t sweeps;      /* sweeps completed */
	uint64_t abandoned;   /* jobs this daemon's sweeps marked abandoned */
};

static void jobs_schedule_next(struct jobs *j);
static void jobs_run_task(struct sched *s, int64_t due, void *arg);
static void jobs_lock_run(struct jobs *j, struct job_run *run);

struct jobs *
jobs_new(struct app *app)
{
	struct jobs *j = xcalloc(1, sizeof *j);

	j->app = app;
	j->retry_usec = RETRY_MIN_USEC;
	j->npool = app->cfg->pool_size; /* not reloadable */
	return j;
}

void
jobs_free(struct jobs *j)
{
	if (j == NULL)
		return;
	if (j->sweep_timer)
		event_free(j->sweep_timer);
	if (j->lock_timer)
		event_free(j->lock_timer);
	j->sweep_timer = j->lock_timer = NULL;
	if (j->pending > 0) {
		j->freed = true; /* the pool answers them when it is freed */
		return;
	}
	free(j);
}

/* A batch whose callback uses j answered; true when j is gone (freed here
 * with the last such answer when jobs_free came first). */
static bool
jobs_answered(struct jobs *j)
{
	j->pending--;
	if (!j->freed)
		return false;
	if (j->pending == 0)
		free(j);
	return true;
}

bool
jobs_busy(const struct jobs *j)
{
	return j->running > 0;
}

/* ---- periods and deadlines ---- */

static const struct period_state *
jobs_period(const struct jobs *j, int32_t period)
{
	for (int i = 0; i < j->nperiods; i++)
		if (j->periods[i].period == period)
			return &j->periods[i];
	return NULL;
}

static void
jobs_period_done(struct jobs *j, int32_t period, int64_t at, int invoices)
{
	struct period_state *p = (struct period_state *)jobs_period(j, period);

	if (p == NULL) {
		if (j->nperiods == PERIODS_KEPT) {
			/* drop the oldest */
			int oldest = 0;
			for (int i = 1; i < j->nperiods; i++)
				if (j->periods[i].period < j->periods[oldest].period)
					oldest = i;
			p = &j->periods[oldest];
		} else {
			p = &j->periods[j->nperiods++];
		}
		p->period = period;
		p->invoiced_at = at;
	}
	p->invoices = invoices;
}

/* R5.1: the end of the 10th of the month after the period, billing zone. */
static int64_t
jobs_deadline(int32_t period)
{
	int32_t next;

	civil_add_months(period, 1, &next);
	return tz_day_start(next + DEADLINE_DAY);
}

static int32_t
jobs_previous_month(int64_t t)
{
	int32_t prev;

	civil_add_months(tz_month_of(t), -1, &prev);
	return prev;
}

/* When the run for the month containing `month` is due. */
static int64_t
jobs_run_time(const struct jobs *j, int32_t month)
{
	const struct config *cfg = j->app->cfg;

	return tz_local_time(month + cfg->invoice_run_day - 1, cfg->invoice_run_time);
}

/* ---- a run ---- */

static json_t *
job_run_json(const struct job_run *run, const char *status)
{
	char period[CIVIL_DATE_LEN];
	json_t *o;

	civil_format_date(run->period, period);
	o = json_pack("{s:s, s:s, s:s}", "id", run->id, "kind", run->daily ? "daily" : "invoicing",
	              "status", status);
	if (strcmp(status, "running") != 0) {
		if (run->daily) {
			if (run->result)
				json_object_set(o, "result", run->result);
		} else {
			period[7] = '\0';
			json_object_set_new(
			    o, "result",
			    json_pack("{s:s, s:i}", "period", period, "invoices", run->invoices));
		}
	}
	if (run->error)
		json_object_set_new(o, "error", json_string(run->error));
	return o;
}

static void
job_run_free(struct job_run *run)
{
	while (run->waiters) {
		struct job_waiter *w = run->waiters;
		run->waiters = w->next;
		free(w);
	}
	free(run->error);
	free(run->locks);
	json_decref(run->result);
	free(run);
}

static void
job_run_end(struct job_run *run, bool ok)
{
	struct jobs *j = run->j;
	const char *status = ok ? "succeeded" : "failed";

	for (struct job_waiter *w = run->waiters; w; w = w->next)
		http_reply_json(w->r, 202, job_run_json(run, status));
	j->running--;
	for (struct job_run **p = &j->runs; *p != NULL; p = &(*p)->next)
		if (*p == run) {
			*p = run->next;
			break;
		}
	/* on each connection holding the lock, or about to (after the attempt
	 * in its queue) */
	for (int i = 0; i < j->npool; i++) {
		int g = db_conn_generation(j->app->db, i);
		if (g < 0 || (run->locks[i].held != g && run->locks[i].sent != g))
			continue;
		const char *p[] = {run->id};
		struct db_batch *b = db_batch_new();
		db_batch_add(b, "SELECT pg_advisory_unlock_shared(" JOB_LOCK_KEY ", hashtext($1))",
		             1, p);
		db_submit_conn(j->app->db, i, b, NULL, NULL);
	}
	/* exposure and reasons moved, also in the committed chunks of a failed
	 * run: the NOTIFYs of its last commits may reach this daemon after the
	 * run ended, when its own NOTIFYs are skipped again (cluster.c), so
	 * without the reload it could authorize accounts the database has
	 * suspended (R3.6) */
	if (run->invoices > 0 || run->daily)
		acache_reload(j->app->acache, j->app, false);
	if (run->sched && run->daily) {
		daily_schedule_next(j->app, !ok);
		sched_task_done(run->sched);
	} else if (run->sched) {
		if (ok) {
			j->retry_usec = RETRY_MIN_USEC;
			jobs_schedule_next(j);
		} else {
			log_warnx("invoice run: retrying in %" PRId64 " s",
			          j->retry_usec / 1000000);
			sched_add(j->app->sched, clock_now() + j->retry_usec, RUN_KEY,
			          jobs_run_task, j);
			j->retry_usec =
			    j->retry_usec * 2 > RETRY_MAX_USEC ? RETRY_MAX_USEC : j->retry_usec * 2;
		}
		sched_task_done(run->sched);
	}
	job_run_free(run);
}

static void
job_run_recorded(const struct db_result *res, void *arg)
{
	struct job_run *run = arg;

	if (!db_result_ok(res))
		log_warnx("invoice run %s: could not record the outcome: %s", run->id,
		          db_result_error(res));
	else if (!run->daily && run->error == NULL) {
		/* R5.1: the period is invoiced before the next run is planned
		 * (job_run_end), not only when the periods come back from the
		 * database: else the scheduler ran it a second time at once */
		jobs_period_done(run->j, run->period, run->finished_at, run->invoices);
		jobs_db_ready(run->j); /* the periods as the database counts them */
	}
	job_run_end(run, run->error == NULL);
}

static void
job_run_finish(struct job_run *run)
{
	char now[24], period[CIVIL_DATE_LEN], n[16];
	json_t *res = job_run_json(run, run->error ? "failed" : "succeeded");
	char *result = json_dumps(json_object_get(res, "result"), JSON_COMPACT);
	struct db_batch *b = db_batch_new();

	run->finished_at = clock_now();
	usec_param(run->finished_at, now);
	civil_format_date(run->period, period);
	snprintf(n, sizeof n, "%d", run->invoices);
	const char *p[] = {
	    run->id, run->error ? "failed" : "succeeded", result, run->error, now, period, n};
	db_batch_add(b,
	             "UPDATE jobs SET status = $2, result = $3::jsonb, error = $4, finished_at = "
	             "creditd_ts($5) WHERE id = $1::uuid",
	             5, p);
	if (run->error == NULL && !run->daily) {
		const char *q[] = {period, now, n};
		/* the period's invoices, including those of an earlier run that died
		 * half-way (its chunks committed) */
		db_batch_add(
		    b,
		    "INSERT INTO invoice_runs (period, invoiced_at, invoices) VALUES ($1::date, "
		    "creditd_ts($2), (SELECT count(*) FROM invoices WHERE period = $1::date "
		    "AND kind = 'monthly')) ON CONFLICT (period) DO UPDATE SET invoices = "
		    "excluded.invoices",
		    2, q);
		log_info("invoice run %s: period %.7s, %d invoices", run->id, period,
		         run->invoices);
	}
	free(result);
	json_decref(res);
	if (db_submit(run->j->app->db, b, job_run_recorded, run) != 0)
		job_run_end(run, run->error == NULL);
}

static void job_run_chunk(struct job_lane *l);

/* A lane is done (through, failed or stopped); after the last, the sweep,
 * then the end of the run. */
static void
job_lane_end(struct job_run *run)
{
	if (--run->lanes_running > 0)
		return;
	if (!run->swept && run->error == NULL) {
		run->swept = true;
		run->lanes_running = 1;
		run->sweep.run = run;
		run->sweep.lane = -1;
		job_run_chunk(&run->sweep);
		return;
	}
	if (run->unrecorded)
		job_run_end(run, false); /* cannot record it either */
	else
		job_run_finish(run);
}

static void
job_run_chunk_done(const struct db_result *res, void *arg)
{
	struct job_lane *l = arg;
	struct job_run *run = l->run;
	int n;

	if (!db_result_ok(res)) {
		if (run->error == NULL) {
			run->error = xstrdup(db_result_error(res));
			log_warnx("invoice run %s failed: %s", run->id, run->error);
		}
		job_lane_end(run);
		return;
	}
	n = atoi(PQgetvalue(db_result_get(res, 0), 0, 0));
	if (n > 0)
		run->invoices += n;       /* -1: nothing to bill in that chunk */
	if (n == 0 || run->error != NULL) /* done, or another lane failed */
		job_lane_end(run);
	else
		job_run_chunk(l);
}

static void
job_run_chunk(struct job_lane *l)
{
	struct job_run *run = l->run;
	char period[CIVIL_DATE_LEN], issue[CIVIL_DATE_LEN], now[24], lane[16], lanes[16];
	struct db_batch *b = db_batch_new();

	civil_format_date(run->period, period);
	civil_format_date(run->issue, issue);
	usec_param(clock_now(), now);
	snprintf(lane, sizeof lane, "%d", l->lane);
	snprintf(lanes, sizeof lanes, "%d", INVOICE_LANES);
	const char *p[] = {period, issue, run->j->app->cfg->invoice_prefix, INVOICE_CHUNK, now,
	                   lane,   lanes};
	db_batch_add(b,
	             "SELECT creditd_invoice_chunk_lane($1::date, $2::date, $3, $4::int, "
	             "creditd_ts($5), $6::int, $7::int)",
	             7, p);
	db_batch_set_slow(b); /* requests go to the other connections (db.c) */
	if (db_submit(run->j->app->db, b, job_run_chunk_done, l) != 0) {
		if (run->error == NULL)
			run->error = xstrdup("database unavailable");
		run->unrecorded = true;
		job_lane_end(run);
	}
}

/* The lanes at the same time (db_submit spreads them over the pool). */
static void
job_run_lanes(struct job_run *run)
{
	run->lanes_running = INVOICE_LANES + 1; /* a guard while they start */
	for (int k = 0; k < INVOICE_LANES; k++) {
		run->lanes[k].run = run;
		run->lanes[k].lane = k;
		job_run_chunk(&run->lanes[k]);
	}
	job_lane_end(run); /* the guard */
}

static void
job_run_created(const struct db_result *res, void *arg)
{
	struct job_run *run = arg;

	run->created = true;
	if (!db_result_ok(res)) {
		if (run->ack)
			http_reply_db_error(run->ack, res);
		run->ack = NULL;
		for (struct job_waiter *w = run->waiters; w; w = w->next)
			http_reply_db_error(w->r, res);
		while (run->waiters) {
			struct job_waiter *w = run->waiters;
			run->waiters = w->next;
			free(w);
		}
		run->error = xstrdup(db_result_error(res));
		job_run_end(run, false);
		return;
	}
	/* the batch sent on connection 0 ends with its lock attempt; the other
	 * connections take the lock before they get any of the job's work */
	if (run->locks[0].sent >= 0 &&
	    PQgetvalue(db_result_get(res, db_result_count(res) - 1), 0, 0)[0] == 't')
		run->locks[0].held = run->locks[0].sent;
	run->locks[0].sent = -1;
	jobs_lock_run(run->j, run);
	if (run->ack)
		http_reply_json(run->ack, 202, job_run_json(run, "running"));
	run->ack = NULL;
	if (run->daily)
		daily_start(run);
	else
		job_run_lanes(run);
}

struct app *
job_run_app(const struct job_run *run)
{
	return run->j->app;
}

int32_t
job_run_day(const struct job_run *run)
{
	return run->period;
}

void
job_run_complete(struct job_run *run, json_t *result, const char *error)
{
	run->result = result;
	if (error)
		run->error = xstrdup(error);
	job_run_finish(run);
}

/* p: id, params, actor, now, kind, request id (NULL: not an API call). */
static struct db_batch *
job_run_insert_batch(const char *const *p)
{
	struct db_batch *b = db_batch_new();

	db_batch_add(b,
	             "INSERT INTO jobs (id, kind, params, status, requested_by, created_at) VALUES "
	             "($1::uuid, $5, $2::jsonb, 'running', $3, creditd_ts($4))",
	             5, p);
	/* R9.5: a job started over the API is a mutating call: audited with
	 * its actor and parameters, in the transaction that records the job */
	if (p[5] != NULL)
		db_batch_add(b,
		             "SELECT creditd_audit(creditd_ts($4), $3, 'job.' || $5::text, 'job', "
		             "$1, NULL, $2::jsonb, $6)",
		             6, p);
	return b;
}

/* Start a run; `r` (optional) is answered at once, or when done if wait. */
static void
jobs_start(struct jobs *j, bool daily, int32_t period, const char *actor, struct http_req *r,
           bool wait, struct sched *s)
{
	struct job_run *run = xcalloc(1, sizeof *run);
	char now[24], params[64], period_s[CIVIL_DATE_LEN];
	uuid_t u;

	run->j = j;
	run->daily = daily;
	run->period = period;
	run->issue = tz_day_of(clock_now());
	run->sched = s;
	uuid_generate_random(u);
	uuid_unparse_lower(u, run->id);
	civil_format_date(period, period_s);
	if (daily)
		snprintf(params, sizeof params, "{\"date\": \"%s\"}", period_s);
	else
		snprintf(params, sizeof params, "{\"period\": \"%.7s\"}", period_s);
	usec_param(clock_now(), now);
	j->running++;
	run->locks = xcalloc((size_t)j->npool, sizeof *run->locks);
	for (int i = 0; i < j->npool; i++)
		run->locks[i].held = run->locks[i].sent = -1;
	run->next = j->runs;
	j->runs = run;
	if (r && wait) {
		run->waiters = xcalloc(1, sizeof *run->waiters);
		run->waiters->r = r;
	} else if (r) {
		run->ack = r;
	}
	const char *p[] = {
	    run->id, params, actor, now, daily ? "daily" : "invoicing", r ? http_req_id(r) : NULL};
	struct db_batch *b = job_run_insert_batch(p);
	/* R9.2: the job's session lock, taken on connection 0 in the inserting
	 * transaction and then on every other connection, tells the other
	 * daemons (and our successor) that its runner is alive; a job whose lock
	 * no session holds was abandoned (liveness, below). Without connection 0
	 * the other connections take it, and connection 0 once it is back. */
	db_batch_add(b, "SELECT pg_try_advisory_lock_shared(" JOB_LOCK_KEY ", hashtext($1))", 1, p);
	run->locks[0].sent = db_conn_generation(j->app->db, 0);
	if (db_submit_conn(j->app->db, 0, b, job_run_created, run) == 0)
		return;
	run->locks[0].sent = -1;
	if (db_submit(j->app->db, job_run_insert_batch(p), job_run_created, run) != 0) {
		free(run->waiters);
		run->waiters = NULL;
		run->ack = NULL;
		if (r)
			http_reply_unavailable(r);
		job_run_end(run, false);
		return;
	}
}

/* ---- schedule (R5.1) ---- */

static void
jobs_run_task(struct sched *s, int64_t due, void *arg)
{
	struct jobs *j = arg;
	int32_t period = jobs_previous_month(due);

	if (jobs_period(j, period) != NULL) {
		/* already invoiced (by ops tooling or another daemon) */
		jobs_schedule_next(j);
		sched_task_done(s);
		return;
	}
	jobs_start(j, false, period, "scheduler", NULL, false, s);
}

/* The next run: this month's if its period is not invoiced yet (catching up
 * a missed run at once), else next month's. */
static void
jobs_schedule_next(struct jobs *j)
{
	int64_t now = clock_now();
	int32_t month = tz_month_of(now);

	if (jobs_period(j, jobs_previous_month(now)) != NULL)
		civil_add_months(month, 1, &month);
	/* in the past when a run was missed: it runs at once (catch-up) */
	sched_add(j->app->sched, jobs_run_time(j, month), RUN_KEY, jobs_run_task, j);
}

static void
jobs_periods_loaded(const struct db_result *res, void *arg)
{
	struct jobs *j = arg;
	const PGresult *pg;

	if (!db_result_ok(res)) {
		log_warnx("invoice runs: cannot load: %s", db_result_error(res));
		return;
	}
	pg = db_result_get(res, 0);
	j->nperiods = 0;
	for (int i = 0; i < PQntuples(pg) && i < PERIODS_KEPT; i++)
		jobs_period_done(j, (int32_t)col_i64(pg, i, 0), col_i64(pg, i, 1),
		                 (int)col_i64(pg, i, 2));
	jobs_schedule_next(j);
}

/* ---- liveness (R9.2, R9.3) ----
 *
 * A job row says "running" until its runner writes the outcome; when the
 * runner dies, a sweep (every daemon's, at its start and every
 * SWEEP_SECONDS) marks it failed, "abandoned". It must not do so while the
 * runner lives. The sign of life is the job's session advisory lock
 * (JOB_LOCK_KEY, hashtext(id)), held in SHARED mode by EVERY connection of
 * the runner's pool: taken on connection 0 with the insert, on the others
 * before they get any of the job's work, and again on a connection that
 * comes back (a new generation: db.c reconnects with backoff; checked every
 * LOCK_CHECK_MS). The sweep's exclusive try-lock gets the lock only when no
 * session holds it, i.e. when every connection of the runner is gone: the
 * process died (its sessions end with it), not a lost connection 0 while the
 * job goes on on the others, which failed live jobs before.
 *
 * Chosen over a heartbeat column (a sweep declaring a job dead once its
 * heartbeat is older than a bound): a real death is then seen only after
 * the bound (a restarted daemon could not mark its predecessor's killed job
 * at once, test_faults 3b), and a heartbeat stuck behind long transactions
 * fails a live job. Locks need no clock at all: neither the test clock
 * (which may jump days: a jump makes no live job look dead and no dead one
 * alive) nor a wall clock; the lock check is a libevent timer (monotonic).
 * Left: all connections lost at once (the database restarted) while the
 * daemon lives; then every statement of the job in flight fails too and the
 * job ends failed on its own; if a sweep marked it first, the runner still
 * writes the outcome it reached. A daemon never sweeps its own jobs: it
 * knows they are alive, and a sweep on the only connection of its own that
 * holds a job's lock (advisory locks are re-entrant within a session) would
 * get it.
 *
 * The outcome (job_run_finish) is written only by the runner, for its own
 * job: a sweep's "failed" of a job that really died is never turned into
 * "succeeded" by another daemon. */

struct job_relock {
	struct jobs *j;
	char id[37];
	int idx; /* the connection */
	int gen; /* its generation the attempt was sent on */
};

static void
jobs_locked(const struct db_result *res, void *arg)
{
	struct job_relock *rl = arg;
	struct job_run *run = NULL;

	if (!jobs_answered(rl->j))
		for (run = rl->j->runs; run && strcmp(run->id, rl->id) != 0; run = run->next)
			;
	if (run != NULL) { /* NULL: the run ended meanwhile (its unlock came after) */
		struct job_lock *l = &run->locks[rl->idx];
		if (l->sent == rl->gen)
			l->sent = -1;
		/* 'f': a sweep testing it at that moment; tried again */
		if (db_result_ok(res) && PQgetvalue(db_result_get(res, 0), 0, 0)[0] == 't') {
			if (l->held >= 0) /* held before the connection was lost */
				log_info("job %s: lock taken again on connection %d", run->id,
				         rl->idx);
			l->held = rl->gen;
		}
	}
	free(rl);
}

/* Take the run's lock on each ready connection that does not hold it in its
 * current session, and where no attempt is in flight. */
static void
jobs_lock_run(struct jobs *j, struct job_run *run)
{
	for (int i = 0; i < j->npool; i++) {
		int g = db_conn_generation(j->app->db, i);
		struct job_lock *l = &run->locks[i];
		if (g < 0 || l->held == g || l->sent == g)
			continue;
		struct job_relock *rl = xcalloc(1, sizeof *rl);
		struct db_batch *b = db_batch_new();
		const char *p[] = {run->id};
		rl->j = j;
		rl->idx = i;
		rl->gen = g;
		memcpy(rl->id, run->id, sizeof rl->id);
		db_batch_add(
		    b, "SELECT pg_try_advisory_lock_shared(" JOB_LOCK_KEY ", hashtext($1))", 1, p);
		l->sent = g;
		j->pending++;
		if (db_submit_conn(j->app->db, i, b, jobs_locked, rl) != 0) {
			l->sent = -1;
			j->pending--;
			free(rl);
		}
	}
}

static void
jobs_lock_check(evutil_socket_t fd, short what, void *arg)
{
	struct jobs *j = arg;

	(void)fd;
	(void)what;
	/* a run whose insert is unanswered gets its locks after it */
	for (struct job_run *run = j->runs; run; run = run->next)
		if (run->created)
			jobs_lock_run(j, run);
}

/* The ids of this daemon's runs as a uuid[] literal (caller frees). */
static char *
jobs_ids_param(const struct jobs *j)
{
	size_t n = 0;
	char *s, *p;

	for (const struct job_run *run = j->runs; run; run = run->next)
		n++;
	p = s = xmalloc(n * 37 + 3);
	*p++ = '{';
	for (const struct job_run *run = j->runs; run; run = run->next) {
		if (run != j->runs)
			*p++ = ',';
		memcpy(p, run->id, 36);
		p += 36;
	}
	*p++ = '}';
	*p = '\0';
	return s;
}

static void
jobs_swept(const struct db_result *res, void *arg)
{
	struct jobs *j = arg;
	const PGresult *pg;

	if (jobs_answered(j))
		return;
	j->sweeping = false;
	if (!db_result_ok(res))
		return;
	j->sweeps++;
	pg = db_result_get(res, 0);
	for (int i = 0; i < PQntuples(pg); i++) {
		log_warnx("job %s was abandoned by a daemon that stopped; marked failed",
		          PQgetvalue(pg, i, 0));
		j->abandoned++;
	}
}

/* Jobs still "running" whose lock no session holds were abandoned (their
 * daemon died): mark them failed; not ours. The transaction-level try-lock
 * only tests the lock. */
static void
jobs_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct jobs *j = arg;
	char now[24];
	char *ids;

	(void)fd;
	(void)what;
	if (j->sweeping)
		return;
	usec_param(clock_now(), now);
	ids = jobs_ids_param(j);
	const char *p[] = {now, ids};
	struct db_batch *b = db_batch_new();
	db_batch_add(b,
	             "UPDATE jobs SET status = 'failed', error = 'abandoned: the daemon running "
	             "it stopped', finished_at = creditd_ts($1) WHERE status = 'running' AND NOT "
	             "(id = ANY($2::uuid[])) AND pg_try_advisory_xact_lock(" JOB_LOCK_KEY
	             ", hashtext(id::text)) RETURNING id",
	             2, p);
	free(ids);
	j->sweeping = true;
	j->pending++;
	if (db_submit(j->app->db, b, jobs_swept, j) != 0) {
		j->sweeping = false;
		j->pending--;
	}
}

void
jobs_db_ready(struct jobs *j)
{
	struct db_batch *b = db_batch_new();

	db_batch_add(b,
	             "SELECT r.period - date '1970-01-01', creditd_us(r.invoiced_at), "
	             "(SELECT count(*) FROM invoices i WHERE i.period = r.period AND i.kind = "
	             "'monthly') FROM invoice_runs r ORDER BY r.period DESC LIMIT 24",
	             0, NULL);
	db_submit(j->app->db, b, jobs_periods_loaded, j);
	if (j->sweep_timer == NULL) {
		struct timeval tv = {SWEEP_SECONDS, 0};
		struct timeval check = {0, LOCK_CHECK_MS * 1000};
		j->sweep_timer = event_new(j->app->base, -1, EV_PERSIST, jobs_sweep, j);
		event_add(j->sweep_timer, &tv);
		j->lock_timer = event_new(j->app->base, -1, EV_PERSIST, jobs_lock_check, j);
		event_add(j->lock_timer, &check);
		jobs_sweep(-1, 0, j);
	}
}

void
jobs_reschedule(struct jobs *j)
{
	/* a run in progress re-schedules itself when it ends */
	if (sched_next(j->app->sched, RUN_KEY) >= 0)
		jobs_schedule_next(j);
}

void
jobs_metrics(struct evbuffer *out, void *arg)
{
	struct jobs *j = arg;
	int64_t now = clock_now();
	int32_t prev = jobs_previous_month(now);
	const struct period_state *p = jobs_period(j, prev);
	int64_t deadline = jobs_deadline(prev);
	char period[CIVIL_DATE_LEN];

	civil_format_date(prev, period);
	evbuffer_add_printf(
	    out,
	    "# HELP creditd_invoice_period_invoiced Whether the previous month is invoiced.\n"
	    "# TYPE creditd_invoice_period_invoiced gauge\n"
	    "creditd_invoice_period_invoiced{period=\"%.7s\"} %d\n"
	    "# HELP creditd_invoice_deadline_met The previous month was invoiced by the 10th.\n"
	    "# TYPE creditd_invoice_deadline_met gauge\n"
	    "creditd_invoice_deadline_met{period=\"%.7s\"} %d\n"
	    "# HELP creditd_invoice_deadline_at_risk Not invoiced and under 48 h to the deadline.\n"
	    "# TYPE creditd_invoice_deadline_at_risk gauge\n"
	    "creditd_invoice_deadline_at_risk %d\n"
	    "# HELP creditd_jobs_running Jobs running on this daemon.\n"
	    "# TYPE creditd_jobs_running gauge\n"
	    "creditd_jobs_running %d\n"
	    "# HELP creditd_jobs_sweeps_total Sweeps for abandoned jobs done by this daemon.\n"
	    "# TYPE creditd_jobs_sweeps_total counter\n"
	    "creditd_jobs_sweeps_total %" PRIu64 "\n"
	    "# HELP creditd_jobs_abandoned_total Jobs of stopped daemons this daemon marked "
	    "failed (R9.2).\n"
	    "# TYPE creditd_jobs_abandoned_total counter\n"
	    "creditd_jobs_abandoned_total %" PRIu64 "\n",
	    period, p != NULL, period, p != NULL && p->invoiced_at <= deadline,
	    p == NULL && now >= deadline - INT64_C(48) * 3600 * 1000000, j->running, j->sweeps,
	    j->abandoned);
}

/* ---- HTTP ---- */

void
jobs_http_invoicing(struct http_req *r)
{
	static const char *const allowed[] = {"period", NULL};
	struct app *app = http_req_app(r);
	const char *wait = http_req_query(r, "wait");
	int32_t period = jobs_previous_month(clock_now());
	size_t len;
	json_t *body;
	const char *ps = NULL;
	struct jf_err e;

	http_req_body(r, &len);
	body = len ? http_req_json_object(r) : NULL;
	if (len && body == NULL)
		return;
	if (body &&
	    (jf_only(body, allowed, &e) < 0 || jf_string(body, "period", false, 7, &ps, &e) < 0)) {
		http_reply_validation(r, &e);
		return;
	}
	if (ps) {
		char buf[CIVIL_DATE_LEN];
		snprintf(buf, sizeof buf, "%.7s-01", ps);
		if (strlen(ps) != 7 || civil_parse_date(buf, strlen(buf), &period) != 0) {
			http_reply_error(r, 400, "validation_failed", "period: must be YYYY-MM",
			                 "period");
			return;
		}
		if (period >= tz_month_of(clock_now())) {
			http_reply_error(r, 400, "validation_failed",
			                 "period: only a month that has ended can be invoiced",
			                 "period");
			return;
		}
	}
	jobs_start(app->jobs, false, period, http_req_actor(r), r,
	           wait && (strcmp(wait, "true") == 0 || strcmp(wait, "1") == 0), NULL);
}

static json_t *
job_row_json(const PGresult *pg, int row)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", j_text_col(pg, row, col(pg, "id")));
	json_object_set_new(o, "kind", j_text_col(pg, row, col(pg, "kind")));
	json_object_set_new(o, "status", j_text_col(pg, row, col(pg, "status")));
	json_object_set_new(o, "params", j_json_col(pg, row, col(pg, "params")));
	if (!PQgetisnull(pg, row, col(pg, "result")))
		json_object_set_new(o, "result", j_json_col(pg, row, col(pg, "result")));
	if (!PQgetisnull(pg, row, col(pg, "error")))
		json_object_set_new(o, "error", j_text_col(pg, row, col(pg, "error")));
	json_object_set_new(o, "requested_by", j_text_col(pg, row, col(pg, "requested_by")));
	json_object_set_new(o, "created_at", j_ts_col(pg, row, col(pg, "created_us")));
	json_object_set_new(o, "finished_at", j_ts_col(pg, row, col(pg, "finished_us")));
	return o;
}

#define JOB_SELECT                                                                                 \
	"SELECT id, kind, status, params::text, result::text, error, requested_by, seq, "          \
	"creditd_us(created_at) AS created_us, creditd_us(finished_at) AS finished_us FROM jobs "

static void
jobs_get_cb(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;
	const PGresult *pg;

	if (!db_result_ok(res)) {
		http_reply_db_error(r, res);
		return;
	}
	pg = db_result_get(res, 0);
	if (PQntuples(pg) == 0) {
		http_reply_error(r, 404, "not_found", "job not found", NULL);
		return;
	}
	http_reply_json(r, 200, job_row_json(pg, 0));
}

void
jobs_http_get(struct http_req *r)
{
	char id[37];
	uuid_t u;
	const char *s = http_req_capture(r, 0);

	if (strlen(s) != 36 || uuid_parse(s, u) != 0) {
		http_reply_error(r, 404, "not_found", "job not found", NULL);
		return;
	}
	uuid_unparse_lower(u, id);
	const char *p[] = {id};
	struct db_batch *b = db_batch_new();
	db_batch_add(b, JOB_SELECT "WHERE id = $1::uuid", 1, p);
	http_submit(r, b, jobs_get_cb);
}

static void
jobs_list_cb(const struct db_result *res, void *arg)
{
	http_reply_page(arg, res, 0, job_row_json, "seq");
}

void
jobs_http_list(struct http_req *r)
{
	const char *kind = http_req_query(r, "kind");
	int limit;
	int64_t cursor;
	char lim[16], cur[24];

	if (!http_paging(r, "cursor", &limit, &cursor))
		return;
	if (kind && *kind == '\0')
		kind = NULL; /* "?kind=": no filter */
	if (kind && strcmp(kind, "invoicing") != 0 && strcmp(kind, "daily") != 0) {
		/* a typo must not answer an empty list as if there were no jobs */
		http_reply_error(r, 400, "validation_failed", "kind: must be invoicing or daily",
		                 "kind");
		return;
	}
	snprintf(lim, sizeof lim, "%d", limit + 1);
	snprintf(cur, sizeof cur, "%" PRId64, cursor > 0 ? cursor : INT64_MAX);
	const char *p[] = {cur, lim, kind};
	struct db_batch *b = db_batch_new();
	db_batch_add(b,
	             JOB_SELECT
	             "WHERE seq < $1 AND ($3::text IS NULL OR kind = $3) ORDER BY seq DESC "
	             "LIMIT $2",
	             3, p);
	http_submit(r, b, jobs_list_cb);
}

static json_t *
jobs_ts(int64_t t)
{
	char buf[CIVIL_TS_LEN];

	if (t < 0 || civil_format_rfc3339(t, buf) != 0)
		return json_null();
	return json_string(buf);
}

void
jobs_http_schedule(struct http_req *r)
{
	struct app *app = http_req_app(r);
	struct jobs *j = app->jobs;
	int64_t now = clock_now();
	int32_t month = tz_month_of(now);
	json_t *next = json_array(), *periods = json_array();
	static const char *const keys[] = {RUN_KEY, "daily", "month_rollover", "limit_changes",
	                                   "reactivations"};

	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		int64_t at = sched_next(app->sched, keys[i]);
		if (at >= 0)
			json_array_append_new(
			    next, json_pack("{s:s, s:o}", "job", keys[i], "at", jobs_ts(at)));
	}
	/* the last 12 ended months, newest first */
	for (int k = 1; k <= 12; k++) {
		int32_t period;
		char ps[CIVIL_DATE_LEN];
		civil_add_months(month, -k, &period);
		civil_format_date(period, ps);
		ps[7] = '\0';
		const struct period_state *p = jobs_period(j, period);
		int64_t deadline = jobs_deadline(period);
		json_t *o = json_pack("{s:s, s:o, s:b}", "period", ps, "deadline",
		                      jobs_ts(deadline), "invoiced", p != NULL);
		json_object_set_new(o, "invoiced_at", p ? jobs_ts(p->invoiced_at) : json_null());
		json_object_set_new(o, "invoices", p ? json_integer(p->invoices) : json_null());
		json_object_set_new(o, "deadline_met",
		                    p ? json_boolean(p->invoiced_at <= deadline)
		                      : (now > deadline ? json_false() : json_null()));
		json_array_append_new(periods, o);
	}
	http_reply_json(r, 200,
	                json_pack("{s:o, s:o, s:o}", "now", jobs_ts(now), "next_runs", next,
	                          "periods", periods));
}

void
jobs_start_daily(struct app *app, int32_t day, const char *actor, struct http_req *r, bool wait,
                 struct sched *s)
{
	jobs_start(app->jobs, true, day, actor, r, wait, s);
}

void
jobs_http_daily(struct http_req *r)
{
	static const char *const allowed[] = {"date", NULL};
	const char *wait = http_req_query(r, "wait");
	int32_t day = tz_day_of(clock_now());
	size_t len;
	json_t *body;
	struct jf_err e;

	http_req_body(r, &len);
	body = len ? http_req_json_object(r) : NULL;
	if (len && body == NULL)
		return;
	if (body &&
	    (jf_only(body, allowed, &e) < 0 || jf_date(body, "date", false, &day, &e) < 0)) {
		http_reply_validation(r, &e);
		return;
	}
	if (day > tz_day_of(clock_now())) {
		http_reply_error(r, 400, "validation_failed", "date: must not be in the future",
		                 "date");
		return;
	}
	jobs_start_daily(http_req_app(r), day, http_req_actor(r), r,
	                 wait && (strcmp(wait, "true") == 0 || strcmp(wait, "1") == 0), NULL);
}
