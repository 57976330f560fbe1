/* cluster.c: NOTIFY-driven cache refresh and scheduler leadership. */
#include "cluster.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "acache.h"
#include "app.h"
#include "db.h"
#include "events.h"
#include "http_util.h"
#include "jobs.h"
#include "log.h"
#include "rates.h"
#include "sched.h"
#include "xmalloc.h"

#define CLUSTER_LOCK_KEY "7274200"
#define CLUSTER_FLUSH_MS 50
#define CLUSTER_LEADER_SECONDS 2
#define CLUSTER_WATCH_MS 100

struct cluster {
	struct app *app;
	struct event *flush_timer;
	struct event *leader_timer;
	struct event *watch_timer;
	bool flush_armed;
	bool leader;
	bool trying;
	bool decided;          /* the first lock attempt answered */
	int leader_generation; /* connection 0's generation when the lock was taken */
	char **pending;        /* account ids to refresh */
	size_t npending, cap;
	unsigned long refreshed;
};

static void
cluster_refreshed(const struct db_result *res, void *arg)
{
	struct cluster *c = arg;
	const PGresult *pg;

	if (!db_result_ok(res)) {
		log_warnx("cluster: refresh failed: %s", db_result_error(res));
		return;
	}
	pg = db_result_get(res, 0);
	acache_update_rows(c->app->acache, pg, 0);
	c->refreshed += (unsigned long)PQntuples(pg);
}

static void
cluster_flush(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *c = arg;
	size_t len = 2;
	char *ids, *p;

	(void)fd;
	(void)what;
	c->flush_armed = false;
	if (c->npending == 0)
		return;
	for (size_t i = 0; i < c->npending; i++)
		len += strlen(c->pending[i]) + 1;
	p = ids = xmalloc(len + 1);
	*p++ = '{';
	for (size_t i = 0; i < c->npending; i++) {
		size_t l = strlen(c->pending[i]);
		if (i)
			*p++ = ',';
		memcpy(p, c->pending[i], l);
		p += l;
		free(c->pending[i]);
	}
	*p++ = '}';
	*p = '\0';
	c->npending = 0;
	const char *params[] = {ids};
	struct db_batch *b = db_batch_new();
	/* only the cache's columns: the view's others (pending limit changes,
	 * the statutory rule) are then not computed */
	db_batch_add(b, "SELECT " ACACHE_COLUMNS " FROM account_view WHERE id = ANY($1::uuid[])", 1,
	             params);
	free(ids);
	if (db_submit(c->app->db, b, cluster_refreshed, c) != 0)
		log_warnx("cluster: database unavailable; the reconnect reloads everything");
}

static void
cluster_notify(const char *channel, const char *payload, int be_pid, void *arg)
{
	struct cluster *c = arg;
	char id[37];

	/* Our own change is in the cache already, except a running job's: R3.6
	 * wants the cache updated on every commit, and a job (the daily job's
	 * overdue suspensions) commits part by part on its own connections. */
	if (db_pid_is_ours(c->app->db, be_pid) && !jobs_busy(c->app->jobs))
		return;
	if (strcmp(channel, "creditd_rates") == 0) {
		rates_reload(c->app->rates);
		return;
	}
	if (strcmp(channel, "creditd_accounts") != 0 || !events_uuid_canon(payload, id))
		return;
	/* (no search for a repeat: PostgreSQL sends an id once per transaction,
	 * and = ANY takes a repeated one once) */
	if (c->npending == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->pending = xreallocarray(c->pending, c->cap, sizeof *c->pending);
	}
	c->pending[c->npending++] = xstrdup(id);
	if (!c->flush_armed) {
		struct timeval tv = {0, CLUSTER_FLUSH_MS * 1000};
		c->flush_armed = true;
		evtimer_add(c->flush_timer, &tv);
	}
}

static void
cluster_set_leader(struct cluster *c, bool leader)
{
	if (c->leader == leader)
		return;
	c->leader = leader;
	log_info("cluster: %s the scheduler", leader ? "running" : "not running");
	sched_set_leader(c->app->sched, leader);
}

static void
cluster_locked(const struct db_result *res, void *arg)
{
	struct cluster *c = arg;

	c->trying = false;
	if (!db_result_ok(res))
		return;
	c->decided = true;
	if (PQgetvalue(db_result_get(res, 0), 0, 0)[0] == 't') {
		c->leader_generation = db_conn_generation(c->app->db, 0);
		cluster_set_leader(c, true);
	}
}

/* R9.2: stop scheduling within 100 ms of losing the lock, not at the next
 * 2 s attempt: another daemon may hold it by then (one leader at a time).
 * The lock lives in connection 0's session: a lost connection lost it. */
static void
cluster_watch(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *c = arg;

	(void)fd;
	(void)what;
	if (c->leader && db_conn_generation(c->app->db, 0) != c->leader_generation)
		cluster_set_leader(c, false);
}

static void
cluster_leader_check(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *c = arg;

	(void)fd;
	(void)what;
	cluster_watch(fd, what, c);
	if (c->leader || c->trying || c->app->draining)
		return;
	struct db_batch *b = db_batch_new();
	db_batch_add(b, "SELECT pg_try_advisory_lock(" CLUSTER_LOCK_KEY ")", 0, NULL);
	if (db_submit_conn(c->app->db, 0, b, cluster_locked, c) == 0)
		c->trying = true;
}

struct cluster *
cluster_new(struct app *app)
{
	struct cluster *c = xcalloc(1, sizeof *c);
	struct timeval tv = {CLUSTER_LEADER_SECONDS, 0};
	struct timeval watch = {0, CLUSTER_WATCH_MS * 1000};

	c->app = app;
	c->flush_timer = evtimer_new(app->base, cluster_flush, c);
	c->leader_timer = event_new(app->base, -1, EV_PERSIST, cluster_leader_check, c);
	event_add(c->leader_timer, &tv);
	c->watch_timer = event_new(app->base, -1, EV_PERSIST, cluster_watch, c);
	event_add(c->watch_timer, &watch);
	db_set_listen(app->db, "LISTEN creditd_accounts; LISTEN creditd_rates");
	db_set_notify_cb(app->db, cluster_notify, c);
	sched_set_leader(app->sched, false);
	return c;
}

void
cluster_db_ready(struct cluster *c)
{
	cluster_leader_check(-1, 0, c);
}

bool
cluster_is_leader(const struct cluster *c)
{
	return c->leader;
}

bool
cluster_decided(const struct cluster *c)
{
	return c->decided;
}

void
cluster_free(struct cluster *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->npending; i++)
		free(c->pending[i]);
	free(c->pending);
	event_free(c->flush_timer);
	event_free(c->leader_timer);
	event_free(c->watch_timer);
	free(c);
}

void
cluster_metrics(struct evbuffer *out, void *arg)
{
	struct cluster *c = arg;

	evbuffer_add_printf(
	    out,
	    "# HELP creditd_scheduler_leader Whether this daemon runs scheduled work.\n"
	    "# TYPE creditd_scheduler_leader gauge\n"
	    "creditd_scheduler_leader %d\n"
	    "# HELP creditd_cluster_refreshed_total Accounts refreshed after "
	    "another daemon's change.\n"
	    "# TYPE creditd_cluster_refreshed_total counter\n"
	    "creditd_cluster_refreshed_total %lu\n",
	    c->leader, c->refreshed);
}
