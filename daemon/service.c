/* service.c: life cycle of the services (account cache, ingest batcher,
 * scheduled work) and their metrics. */
#include "service.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>

#include "acache.h"
#include "app.h"
#include "batcher.h"
#include "civil.h"
#include "clock.h"
#include "config.h"
#include "db.h"
#include "http_util.h"
#include "issuer.h"
#include "cluster.h"
#include "daily.h"
#include "jobs.h"
#include "rates.h"
#include "log.h"
#include "metrics.h"
#include "sched.h"
#include "tz.h"
#include "webhook.h"
#include "xmalloc.h"

#include <stdlib.h>

#define ROLLOVER_KEY "month_rollover"
#define LIMITS_KEY "limit_changes"
#define REACTIVATIONS_KEY "reactivations"

static void
service_metrics(struct evbuffer *out, void *arg)
{
	struct app *app = arg;
	int connected, connecting, backoff;
	size_t inflight;

	db_pool_stats(app->db, &connected, &connecting, &backoff, &inflight);
	evbuffer_add_printf(out,
	                    "# HELP creditd_db_connections Database pool connections by state.\n"
	                    "# TYPE creditd_db_connections gauge\n"
	                    "creditd_db_connections{state=\"ready\"} %d\n"
	                    "creditd_db_connections{state=\"connecting\"} %d\n"
	                    "creditd_db_connections{state=\"backoff\"} %d\n"
	                    "# HELP creditd_db_inflight_batches Transactions in flight.\n"
	                    "# TYPE creditd_db_inflight_batches gauge\n"
	                    "creditd_db_inflight_batches %zu\n"
	                    "# HELP creditd_db_up Whether the database is usable.\n"
	                    "# TYPE creditd_db_up gauge\n"
	                    "creditd_db_up %d\n"
	                    "# HELP creditd_schema_version Applied schema version.\n"
	                    "# TYPE creditd_schema_version gauge\n"
	                    "creditd_schema_version %d\n"
	                    "# HELP creditd_accounts_cached Accounts in the authorization cache.\n"
	                    "# TYPE creditd_accounts_cached gauge\n"
	                    "creditd_accounts_cached %zu\n"
	                    "# HELP creditd_account_cache_stale_rows_total Account rows ignored by "
	                    "the cache as older than the version it holds (results arriving out of "
	                    "commit order, R3.6).\n"
	                    "# TYPE creditd_account_cache_stale_rows_total counter\n"
	                    "creditd_account_cache_stale_rows_total %" PRIu64 "\n",
	                    connected, connecting, backoff, inflight, db_ready(app->db) ? 1 : 0,
	                    db_schema_version(app->db), acache_count(app->acache),
	                    acache_stale_rows(app->acache));
	batcher_metrics(app->batcher, out);
}

/* ---- month rollover (R4.5): the monthly counter restarts ---- */

static void service_schedule_rollover(struct app *app);
static void service_rollover_task(struct sched *s, int64_t due, void *arg);

struct rollover_run {
	struct app *app;
	struct sched *sched;
};

static void
service_rollover_done(const struct db_result *res, void *arg)
{
	struct rollover_run *run = arg;
	struct app *app = run->app;

	if (!db_result_ok(res)) {
		log_warnx("month rollover failed: %s; retrying in 10 s", db_result_error(res));
		sched_add(app->sched, clock_now() + INT64_C(10000000), ROLLOVER_KEY,
		          service_rollover_task, app);
	} else {
		const PGresult *acc = db_result_get(res, 0);
		log_info("month rollover: %d accounts", PQntuples(acc));
		for (int i = 0; i < PQntuples(acc); i++)
			acache_update(app->acache, acc, i);
		service_schedule_rollover(app);
	}
	sched_task_done(run->sched);
	free(run);
}

static void
service_rollover_task(struct sched *s, int64_t due, void *arg)
{
	struct app *app = arg;
	struct rollover_run *run = xcalloc(1, sizeof *run);
	char month[CIVIL_DATE_LEN], start[24], at[24], thr[THRESHOLDS_PARAM_LEN];
	int32_t month_day = tz_month_of(due);

	run->app = app;
	run->sched = s;
	civil_format_date(month_day, month);
	usec_param(tz_day_start(month_day), start);
	usec_param(clock_now(), at);
	thresholds_param(app->cfg, thr);
	const char *p[] = {month, start, thr, at};
	struct db_batch *b = db_batch_new();
	/* only the accounts moved to the new month are re-read */
	db_batch_add(b,
	             "SELECT " ACACHE_COLUMNS " FROM account_view WHERE id IN (SELECT "
	             "creditd_month_rollover_accounts($1::date, creditd_ts($2), $3::int[], "
	             "creditd_ts($4)))",
	             4, p);
	if (db_submit(app->db, b, service_rollover_done, run) != 0) {
		free(run);
		/* retry soon; the task stays idempotent */
		sched_task_done(s);
		sched_add(app->sched, clock_now() + INT64_C(5000000), ROLLOVER_KEY,
		          service_rollover_task, app);
	}
}

static void
service_schedule_rollover(struct app *app)
{
	int32_t next_month;

	civil_add_months(tz_month_of(clock_now()), 1, &next_month);
	sched_add(app->sched, tz_day_start(next_month), ROLLOVER_KEY, service_rollover_task, app);
}

/* ---- work due at a stored time: limit changes (R4.6), reactivations
 * (R6.7). Each kind applies everything due (returning the touched accounts,
 * whose cache entries are refreshed) and then re-arms its task for the
 * earliest still scheduled row. ---- */

struct due_kind {
	const char *key;
	const char *apply_sql; /* $1 thresholds int[], $2 at usec */
	const char *next_sql;  /* the next due time (usec) or NULL */
};

static const struct due_kind due_kinds[] = {
    {LIMITS_KEY,
     "SELECT * FROM account_view WHERE id IN (SELECT creditd_apply_due_limit_changes("
     "$1::int[], creditd_ts($2)))",
     "SELECT creditd_us(min(effective_at)) FROM limit_changes WHERE status = 'scheduled'"},
    {REACTIVATIONS_KEY,
     "SELECT * FROM account_view WHERE id IN (SELECT creditd_apply_due_reactivations("
     "creditd_ts($2))) AND $1::int[] IS NOT NULL",
     "SELECT creditd_us(min(effective_at)) FROM reactivations WHERE status = 'scheduled'"},
};

static void service_due_task(struct sched *s, int64_t due, void *arg);

struct due_run {
	struct app *app;
	const struct due_kind *kind;
	struct sched *sched; /* NULL when only looking up the next due time */
};

/* The task argument: which kind, for which app. */
struct due_task {
	struct app *app;
	const struct due_kind *kind;
};
static struct due_task due_tasks[sizeof due_kinds / sizeof due_kinds[0]];

static void
service_due_next_cb(const struct db_result *res, void *arg)
{
	struct due_run *run = arg;
	struct app *app = run->app;
	struct due_task *task = &due_tasks[run->kind - due_kinds];

	if (!db_result_ok(res)) {
		log_warnx("%s: %s; retrying in 10 s", run->kind->key, db_result_error(res));
		sched_add(app->sched, clock_now() + INT64_C(10000000), run->kind->key,
		          service_due_task, task);
	} else {
		const PGresult *acc = db_result_get(res, 0);
		const PGresult *next = db_result_get(res, db_result_count(res) - 1);
		if (run->sched != NULL)
			for (int i = 0; i < PQntuples(acc); i++)
				acache_update(app->acache, acc, i);
		if (PQgetisnull(next, 0, 0))
			sched_remove(app->sched, run->kind->key);
		else
			sched_add(app->sched, col_i64(next, 0, 0), run->kind->key, service_due_task,
			          task);
	}
	if (run->sched != NULL)
		sched_task_done(run->sched);
	free(run);
}

static void
service_due_task(struct sched *s, int64_t due, void *arg)
{
	struct due_task *task = arg;
	struct app *app = task->app;
	struct due_run *run = xcalloc(1, sizeof *run);
	char at[24], thr[THRESHOLDS_PARAM_LEN];

	(void)due;
	run->app = app;
	run->kind = task->kind;
	run->sched = s;
	usec_param(clock_now(), at);
	thresholds_param(app->cfg, thr);
	const char *p[] = {thr, at};
	struct db_batch *b = db_batch_new();
	db_batch_add(b, task->kind->apply_sql, 2, p);
	db_batch_add(b, task->kind->next_sql, 0, NULL);
	if (db_submit(app->db, b, service_due_next_cb, run) != 0) {
		free(run);
		sched_task_done(s);
		sched_add(app->sched, clock_now() + INT64_C(5000000), task->kind->key,
		          service_due_task, task);
	}
}

/* Something was scheduled for `at`: the task must run then, known before the
 * HTTP answer (a test clock moved right after sees it). */
static void
service_due_at(struct app *app, size_t kind, int64_t at)
{
	int64_t cur = sched_next(app->sched, due_kinds[kind].key);

	if (cur < 0 || at < cur)
		sched_add(app->sched, at, due_kinds[kind].key, service_due_task, &due_tasks[kind]);
}

/* Look up the next due time of a kind (start-up). */
static void
service_due_lookup(struct app *app, size_t kind)
{
	struct due_run *run = xcalloc(1, sizeof *run);
	struct db_batch *b = db_batch_new();

	run->app = app;
	run->kind = &due_kinds[kind];
	db_batch_add(b, "SELECT 1 WHERE false", 0, NULL);
	db_batch_add(b, due_kinds[kind].next_sql, 0, NULL);
	if (db_submit(app->db, b, service_due_next_cb, run) != 0)
		free(run);
}

void
service_limit_change_at(struct app *app, int64_t at)
{
	service_due_at(app, 0, at);
}

void
service_reactivation_at(struct app *app, int64_t at)
{
	service_due_at(app, 1, at);
}

static void
service_due_lookup_all(struct app *app)
{
	for (size_t k = 0; k < sizeof due_kinds / sizeof due_kinds[0]; k++) {
		due_tasks[k].app = app;
		due_tasks[k].kind = &due_kinds[k];
		service_due_lookup(app, k);
	}
}

void
service_init(struct app *app)
{
	app->acache = acache_new();
	app->batcher = batcher_new(app);
	app->jobs = jobs_new(app);
	app->rates = rates_new(app);
	app->cluster = cluster_new(app);
	metrics_add_writer(app->metrics, cluster_metrics, app->cluster);
	app->webhook = webhook_new(app);
	app->issuer = issuer_new(app);
	metrics_add_writer(app->metrics, service_metrics, app);
	metrics_add_writer(app->metrics, jobs_metrics, app->jobs);
	metrics_add_writer(app->metrics, webhook_metrics, app->webhook);
}

/* R5.5: the invoices a job issues freeze the issuer the database holds;
 * the jobs start once it holds this daemon's [issuer]. */
static void
service_issuer_written(void *arg)
{
	struct app *app = arg;

	jobs_db_ready(app->jobs);
}

void
service_db_ready(struct app *app)
{
	issuer_start(app->issuer, service_issuer_written, app);
	acache_reload(app->acache, app, true);
	/* catch up a rollover missed while down: due now if any counter is old */
	sched_add(app->sched, tz_day_start(tz_month_of(clock_now())), ROLLOVER_KEY,
	          service_rollover_task, app);
	service_due_lookup_all(app);
	rates_reload(app->rates);
	daily_db_ready(app);
	webhook_start(app->webhook);
	cluster_db_ready(app->cluster);
}

void
service_db_reconnected(struct app *app)
{
	/* R9.2, R9.3: changes made while we were away must be seen before
	 * authorizing, also when the outage cut a reload short (not loaded); and
	 * reference rates PUT meanwhile (their NOTIFY reached nobody) */
	acache_reload(app->acache, app, true);
	rates_reload(app->rates);
}

void
service_db_relistened(struct app *app)
{
	/* R9.2: connection 0 LISTENs again after the reload of an outage ran on
	 * another connection: what committed in between sent its NOTIFY to
	 * nobody */
	acache_reload(app->acache, app, false);
}

void
service_config_changed(struct app *app)
{
	jobs_reschedule(app->jobs);
	webhook_config_changed(app->webhook);
	issuer_config_changed(app->issuer);
}

void
service_drain(struct app *app)
{
	sched_pause(app->sched, true);
	batcher_flush(app->batcher);
	webhook_drain(app->webhook);
}

bool
service_busy(struct app *app)
{
	return batcher_busy(app->batcher) || jobs_busy(app->jobs) || webhook_busy(app->webhook);
}

bool
service_ready(struct app *app)
{
	return acache_loaded(app->acache) && cluster_decided(app->cluster) &&
	       issuer_written(app->issuer);
}

void
service_free(struct app *app)
{
	batcher_free(app->batcher);
	jobs_free(app->jobs);
	rates_free(app->rates);
	cluster_free(app->cluster);
	webhook_free(app->webhook);
	issuer_free(app->issuer);
	app->issuer = NULL;
	acache_free(app->acache);
}
