/* issuer.c: writes the configured invoice issuer to the database; see issuer.h. */
#include "issuer.h"

#include <event2/event.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "backoff.h"
#include "config.h"
#include "db.h"
#include "log.h"
#include "xmalloc.h"

#define NFIELDS 5
/* retries of a failed write: 1 s, doubling up to 30 s (common/backoff.h) */
static const struct backoff issuer_backoff = {1000, 1000, 30000};

/* Only when the row differs (a restart with the same [issuer] writes
 * nothing); returns a row when it wrote, with the name it replaced (NULL
 * when the row was missing). */
#define ISSUER_UPSERT                                                                              \
	"WITH old AS (SELECT name FROM invoice_issuer WHERE id) "                                  \
	"INSERT INTO invoice_issuer AS s (id, name, address, tax_id, email, "                      \
	"payment_instructions) VALUES (true, $1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET "  \
	"name = EXCLUDED.name, address = EXCLUDED.address, tax_id = EXCLUDED.tax_id, "             \
	"email = EXCLUDED.email, payment_instructions = EXCLUDED.payment_instructions "            \
	"WHERE (s.name, s.address, s.tax_id, s.email, s.payment_instructions) IS DISTINCT FROM "   \
	"(EXCLUDED.name, EXCLUDED.address, EXCLUDED.tax_id, EXCLUDED.email, "                      \
	"EXCLUDED.payment_instructions) RETURNING (SELECT name FROM old) AS old_name"

enum issuer_state {
	ISSUER_IDLE,    /* the database was never usable: nothing written yet */
	ISSUER_WRITING, /* a write is in flight (is->write) */
	ISSUER_BACKOFF, /* the last write failed; is->timer writes again */
	ISSUER_WRITTEN, /* the database holds is->values */
};

struct issuer_write {
	struct issuer *is; /* NULL once the issuer is freed (orphaned) */
};

struct issuer {
	struct app *app;
	enum issuer_state state;
	char *values[NFIELDS];   /* of the write in flight, or the last one */
	bool again;              /* the config changed while a write was in flight */
	bool written_once;       /* the start-up gate is open */
	void (*done)(void *arg); /* called once, at the first commit */
	void *done_arg;
	struct issuer_write *write; /* the write in flight */
	struct event *timer;        /* backoff */
	int failures;               /* failed writes since the last that committed */
};

static void issuer_write(struct issuer *is);

static const char *
issuer_config_value(const struct config *cfg, int i)
{
	switch (i) {
	case 0:
		return cfg->issuer_name;
	case 1:
		return cfg->issuer_address;
	case 2:
		return cfg->issuer_tax_id;
	case 3:
		return cfg->issuer_email;
	default:
		return cfg->issuer_payment_instructions;
	}
}

/* The running configuration differs from what was last written. */
static bool
issuer_changed(const struct issuer *is)
{
	for (int i = 0; i < NFIELDS; i++) {
		if (is->values[i] == NULL ||
		    strcmp(is->values[i], issuer_config_value(is->app->cfg, i)) != 0)
			return true;
	}
	return false;
}

static void
issuer_retry_later(struct issuer *is, const char *why)
{
	int64_t ms = backoff_ceiling_ms(&issuer_backoff, is->failures++);
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

	log_warnx("issuer: cannot write the invoice issuer: %s; retrying in %" PRId64 " ms%s",
	          why != NULL ? why : "unknown error", ms,
	          is->written_once ? "" : " (the invoice jobs wait for it, R5.5)");
	is->state = ISSUER_BACKOFF;
	evtimer_add(is->timer, &tv);
}

static void
issuer_written_cb(const struct db_result *res, void *arg)
{
	struct issuer_write *w = arg;
	struct issuer *is = w->is;
	const PGresult *pg;

	free(w);
	if (is == NULL)
		return; /* the issuer was freed meanwhile */
	is->write = NULL;
	if (!db_result_ok(res)) {
		issuer_retry_later(is, db_result_error(res));
		return;
	}
	is->state = ISSUER_WRITTEN;
	is->failures = 0;
	pg = db_result_get(res, 0);
	if (PQntuples(pg) == 1) {
		/* R9.2: with several daemons the last to start or reload wins;
		 * the log says when one changes what the others issue as */
		const char *was = PQgetisnull(pg, 0, 0) ? "" : PQgetvalue(pg, 0, 0);
		if (is->values[0][0] == '\0')
			log_info(
			    "issuer: none configured: new invoices show no issuer (was \"%s\")",
			    was);
		else if (was[0] == '\0')
			log_info("issuer: new invoices are issued as \"%s\"", is->values[0]);
		else
			log_info("issuer: new invoices are issued as \"%s\" (was \"%s\")",
			         is->values[0], was);
	}
	if (!is->written_once) {
		is->written_once = true;
		if (is->done != NULL)
			is->done(is->done_arg);
	}
	if (is->again) {
		is->again = false;
		if (issuer_changed(is))
			issuer_write(is);
	}
}

/* Writes the running configuration's issuer (state: not WRITING). */
static void
issuer_write(struct issuer *is)
{
	struct db_batch *b;
	struct issuer_write *w;

	for (int i = 0; i < NFIELDS; i++) {
		free(is->values[i]);
		is->values[i] = xstrdup(issuer_config_value(is->app->cfg, i));
	}
	const char *p[NFIELDS] = {is->values[0], is->values[1], is->values[2], is->values[3],
	                          is->values[4]};
	b = db_batch_new();
	db_batch_add(b, ISSUER_UPSERT, NFIELDS, p);
	w = xcalloc(1, sizeof *w);
	w->is = is;
	if (db_submit(is->app->db, b, issuer_written_cb, w) != 0) {
		free(w);
		issuer_retry_later(is, "no database connection");
		return;
	}
	is->write = w;
	is->state = ISSUER_WRITING;
}

static void
issuer_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct issuer *is = arg;

	(void)fd;
	(void)what;
	issuer_write(is);
}

struct issuer *
issuer_new(struct app *app)
{
	struct issuer *is = xcalloc(1, sizeof *is);

	is->app = app;
	is->state = ISSUER_IDLE;
	is->timer = evtimer_new(app->base, issuer_timer_cb, is);
	return is;
}

void
issuer_free(struct issuer *is)
{
	if (is == NULL)
		return;
	if (is->write != NULL)
		is->write->is = NULL; /* its callback frees it */
	event_free(is->timer);
	for (int i = 0; i < NFIELDS; i++)
		free(is->values[i]);
	free(is);
}

void
issuer_start(struct issuer *is, void (*done)(void *arg), void *arg)
{
	is->done = done;
	is->done_arg = arg;
	if (is->state == ISSUER_IDLE)
		issuer_write(is);
}

void
issuer_config_changed(struct issuer *is)
{
	switch (is->state) {
	case ISSUER_IDLE:    /* issuer_start writes the configuration of then */
	case ISSUER_BACKOFF: /* the retry writes the new configuration */
		break;
	case ISSUER_WRITING:
		is->again = true;
		break;
	case ISSUER_WRITTEN:
		if (issuer_changed(is))
			issuer_write(is);
		break;
	}
}

bool
issuer_written(const struct issuer *is)
{
	return is->written_once;
}
