/* service.c: life cycle of the services. */
#include "service.h"

#include <event2/buffer.h>

#include "app.h"
#include "db.h"
#include "metrics.h"
#include "sched.h"

static void
service_db_metrics(struct evbuffer *out, void *arg)
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
	    "creditd_schema_version %d\n",
	    connected, connecting, backoff, inflight, db_ready(app->db) ? 1 : 0,
	    db_schema_version(app->db));
}

void
service_init(struct app *app)
{
	metrics_add_writer(app->metrics, service_db_metrics, app);
}

void
service_db_ready(struct app *app)
{
	(void)app;
}

void
service_db_reconnected(struct app *app)
{
	(void)app;
}

void
service_config_changed(struct app *app)
{
	(void)app;
}

void
service_drain(struct app *app)
{
	sched_pause(app->sched, true);
}

bool
service_busy(struct app *app)
{
	return sched_busy(app->sched) && false;
}

bool
service_ready(struct app *app)
{
	(void)app;
	return true;
}

void
service_free(struct app *app)
{
	(void)app;
}
