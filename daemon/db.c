/* db.c: connection pool, pipeline mode and result FIFO (R9.1, R9.3). */
#include "db.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xmalloc.h"

#define DB_BACKOFF_MIN_MS 100
#define DB_BACKOFF_MAX_MS 5000
#define DB_MAX_QUEUED 20000 /* batches in flight over the whole pool */

struct db_stmt {
	char *sql;
	int nparams;
	char **params;
	int *lengths;
	int *formats;    /* NULL: all text */
	db_rows_cb rows; /* streamed (db_batch_add_rows): its rows go here */
	void *rows_arg;
	bool armed; /* single-row mode set for it */
};

/* A streamed statement's handle: the connection it runs on. */
struct db_rows {
	struct db_conn *conn;
};

struct db_batch {
	struct db_stmt *stmts;
	int n, cap;
	bool simple; /* simple protocol (set-up only) */
	bool slow;   /* may hold its connection for seconds (db_batch_set_slow) */
	db_cb cb;
	void *arg;
	struct db_batch *next;
	/* results */
	PGresult **res;
	int nres;
	int cur; /* statement whose results are being read */
	bool failed;
	struct db_rows rows; /* valid while a streamed statement delivers */
};

struct db_result {
	struct db_batch *b;
	bool unavailable;
	const char *error;
	const char *sqlstate;
	const char *constraint;
	const char *detail;
	const char *failed_sql;
};

enum db_conn_state {
	DB_CONN_CONNECTING, /* PQconnectPoll in progress */
	DB_CONN_SETUP,      /* connected, schema check / migration in simple mode */
	DB_CONN_READY,      /* pipeline mode; batches may be in flight (inflight > 0 = busy) */
	DB_CONN_BACKOFF,    /* failed; a timer will reconnect */
};

struct db_conn {
	struct db *db;
	int idx;
	PGconn *pg;
	enum db_conn_state state;
	struct event *ev_io;
	struct event *ev_timer;
	short io_what;
	int backoff_ms;
	struct db_batch *head, *tail;
	size_t inflight;
	size_t slow; /* of them slow batches */
	bool flush_pending;
	bool paused;             /* db_rows_pause: the socket is not read */
	struct event *ev_resume; /* db_rows_resume: read what libpq holds */
	bool in_dispatch;        /* guards against freeing during callbacks */
	int backend_pid;
	int generation; /* bumped at each successful set-up */
};

struct db {
	struct event_base *base;
	char *conninfo;
	int npool;
	struct db_conn *conns;
	db_setup_cb setup_cb;
	void *setup_arg;
	db_conn_setup_fn conn_setup;
	void *conn_setup_arg;
	db_notify_cb notify_cb;
	void *notify_arg;
	char *listen_sql; /* run on connection 0 after its set-up */
	int schema_version;
	bool schema_ok;
	bool outage; /* a ready connection was lost since db_take_outage() */
	size_t inflight;
	unsigned rr;
};

static void db_conn_connect(struct db_conn *c);
static void db_conn_io_cb(evutil_socket_t fd, short what, void *arg);

static const char *const db_state_names[] = {"connecting", "setup", "ready", "backoff"};

static void
db_conn_set_state(struct db_conn *c, enum db_conn_state s)
{
	if (c->state != s)
		log_debug("db[%d]: %s -> %s", c->idx, db_state_names[c->state], db_state_names[s]);
	c->state = s;
}

/* ---- batches ---- */

struct db_batch *
db_batch_new(void)
{
	return xcalloc(1, sizeof(struct db_batch));
}

void
db_batch_set_slow(struct db_batch *b)
{
	b->slow = true;
}

void
db_batch_free(struct db_batch *b)
{
	if (b == NULL)
		return;
	for (int i = 0; i < b->n; i++) {
		struct db_stmt *s = &b->stmts[i];
		for (int j = 0; j < s->nparams; j++)
			free(s->params[j]);
		free(s->params);
		free(s->lengths);
		free(s->formats);
		free(s->sql);
	}
	free(b->stmts);
	for (int i = 0; i < b->nres; i++)
		PQclear(b->res[i]);
	free(b->res);
	free(b);
}

void
db_batch_add_len(struct db_batch *b, const char *sql, int nparams, const char *const *params,
                 const int *lengths)
{
	db_batch_add_fmt(b, sql, nparams, params, lengths, NULL);
}

void
db_batch_add_fmt(struct db_batch *b, const char *sql, int nparams, const char *const *params,
                 const int *lengths, const int *formats)
{
	struct db_stmt *s;

	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 4;
		b->stmts = xreallocarray(b->stmts, (size_t)b->cap, sizeof *b->stmts);
	}
	s = &b->stmts[b->n++];
	memset(s, 0, sizeof *s);
	s->sql = xstrdup(sql);
	s->nparams = nparams;
	s->params = nparams ? xcalloc((size_t)nparams, sizeof(char *)) : NULL;
	s->lengths = nparams ? xcalloc((size_t)nparams, sizeof(int)) : NULL;
	for (int i = 0; i < nparams; i++) {
		if (params[i] == NULL)
			continue;
		size_t len = lengths ? (size_t)lengths[i] : strlen(params[i]);
		s->params[i] = xmalloc(len + 1);
		memcpy(s->params[i], params[i], len);
		s->params[i][len] = '\0';
		s->lengths[i] = (int)len;
	}
	s->formats = NULL;
	if (formats != NULL && nparams > 0) {
		s->formats = xcalloc((size_t)nparams, sizeof(int));
		memcpy(s->formats, formats, (size_t)nparams * sizeof(int));
	}
}

void
db_batch_add(struct db_batch *b, const char *sql, int nparams, const char *const *params)
{
	db_batch_add_len(b, sql, nparams, params, NULL);
}

void
db_batch_add_rows(struct db_batch *b, const char *sql, int nparams, const char *const *params,
                  db_rows_cb cb, void *arg)
{
	db_batch_add_len(b, sql, nparams, params, NULL);
	b->stmts[b->n - 1].rows = cb;
	b->stmts[b->n - 1].rows_arg = arg;
}

/* ---- results ---- */

bool
db_result_ok(const struct db_result *r)
{
	return !r->unavailable && r->error == NULL;
}

bool
db_result_unavailable(const struct db_result *r)
{
	return r->unavailable;
}

const char *
db_result_error(const struct db_result *r)
{
	return r->unavailable ? "database unavailable" : r->error;
}

const char *
db_result_sqlstate(const struct db_result *r)
{
	return r->sqlstate ? r->sqlstate : "";
}

const char *
db_result_constraint(const struct db_result *r)
{
	return r->constraint ? r->constraint : "";
}

const char *
db_result_detail(const struct db_result *r)
{
	return r->detail ? r->detail : "";
}

const char *
db_result_failed_sql(const struct db_result *r)
{
	return r->failed_sql ? r->failed_sql : "";
}

int
db_result_count(const struct db_result *r)
{
	return r->b->nres;
}

const PGresult *
db_result_get(const struct db_result *r, int i)
{
	if (i < 0 || i >= r->b->nres)
		return NULL;
	return r->b->res[i];
}

static void
db_batch_finish(struct db_batch *b, bool unavailable)
{
	struct db_result r = {.b = b, .unavailable = unavailable};

	if (!unavailable) {
		for (int i = 0; i < b->nres; i++) {
			ExecStatusType st = PQresultStatus(b->res[i]);
			if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR ||
			    st == PGRES_BAD_RESPONSE) {
				r.error = PQresultErrorField(b->res[i], PG_DIAG_MESSAGE_PRIMARY);
				if (r.error == NULL)
					r.error = PQresultErrorMessage(b->res[i]);
				r.sqlstate = PQresultErrorField(b->res[i], PG_DIAG_SQLSTATE);
				r.constraint =
				    PQresultErrorField(b->res[i], PG_DIAG_CONSTRAINT_NAME);
				r.detail = PQresultErrorField(b->res[i], PG_DIAG_MESSAGE_DETAIL);
				r.failed_sql = i < b->n ? b->stmts[i].sql : NULL;
				break;
			}
		}
		if (r.error == NULL && b->failed)
			r.error = "statement failed";
	}
	if (b->cb)
		b->cb(&r, b->arg);
	db_batch_free(b);
}

static void
db_batch_store(struct db_batch *b, PGresult *res)
{
	b->res = xreallocarray(b->res, (size_t)b->nres + 1, sizeof(PGresult *));
	b->res[b->nres++] = res;
	switch (PQresultStatus(res)) {
	case PGRES_FATAL_ERROR:
	case PGRES_BAD_RESPONSE:
	case PGRES_PIPELINE_ABORTED:
		b->failed = true;
		break;
	default:
		break;
	}
}

/* ---- connection life cycle ---- */

static void
db_conn_fail_all(struct db_conn *c)
{
	struct db_batch *b;

	while ((b = c->head) != NULL) {
		c->head = b->next;
		c->inflight--;
		c->slow -= b->slow;
		c->db->inflight--;
		db_batch_finish(b, true);
	}
	c->tail = NULL;
}

static void
db_conn_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	db_conn_connect(arg);
}

static void
db_conn_close(struct db_conn *c)
{
	if (c->ev_io) {
		event_free(c->ev_io);
		c->ev_io = NULL;
	}
	if (c->pg) {
		PQfinish(c->pg);
		c->pg = NULL;
	}
	c->flush_pending = false;
	c->paused = false;
	if (c->ev_resume)
		event_del(c->ev_resume);
}

static void
db_conn_lost(struct db_conn *c, const char *why)
{
	struct timeval tv;

	log_warnx("db[%d]: connection lost (%s); retrying in %d ms", c->idx, why, c->backoff_ms);
	if (c->state == DB_CONN_READY)
		c->db->outage = true;
	/* leave READY first so that callbacks run below cannot pick this connection */
	db_conn_set_state(c, DB_CONN_BACKOFF);
	db_conn_close(c);
	db_conn_fail_all(c);
	tv.tv_sec = c->backoff_ms / 1000;
	tv.tv_usec = (c->backoff_ms % 1000) * 1000;
	evtimer_add(c->ev_timer, &tv);
	c->backoff_ms *= 2;
	if (c->backoff_ms > DB_BACKOFF_MAX_MS)
		c->backoff_ms = DB_BACKOFF_MAX_MS;
}

/* Watch the socket for `what` (EV_READ and/or EV_WRITE). */
static void
db_conn_watch(struct db_conn *c, short what)
{
	int fd = PQsocket(c->pg);

	if (what == 0) {
		if (c->ev_io) {
			event_free(c->ev_io);
			c->ev_io = NULL;
		}
		return;
	}
	if (c->ev_io && (event_get_fd(c->ev_io) != fd || c->io_what != what)) {
		event_free(c->ev_io);
		c->ev_io = NULL;
	}
	if (c->ev_io == NULL) {
		c->ev_io = event_new(c->db->base, fd, what | EV_PERSIST, db_conn_io_cb, c);
		c->io_what = what;
		event_add(c->ev_io, NULL);
	}
}

static void
db_notice(void *arg, const char *message)
{
	(void)arg;
	log_debug("db: %.*s", (int)strcspn(message, "\n"), message);
}

static void
db_conn_connect(struct db_conn *c)
{
	db_conn_close(c);
	db_conn_set_state(c, DB_CONN_CONNECTING);
	c->pg = PQconnectStart(c->db->conninfo);
	if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
		db_conn_lost(c, c->pg ? PQerrorMessage(c->pg) : "out of memory");
		return;
	}
	PQsetNoticeProcessor(c->pg, db_notice, NULL);
	/* PQconnectStart behaves as if PQconnectPoll returned WRITING. */
	db_conn_watch(c, EV_WRITE);
}

static void
db_conn_enter_ready(struct db_conn *c)
{
	if (PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1) {
		db_conn_lost(c, PQerrorMessage(c->pg));
		return;
	}
	c->backoff_ms = DB_BACKOFF_MIN_MS;
	db_conn_set_state(c, DB_CONN_READY);
	db_conn_watch(c, EV_READ);
	log_info("db[%d]: ready", c->idx);
}

static void
db_conn_listened(const struct db_result *r, void *arg)
{
	struct db_conn *c = arg;

	if (db_result_unavailable(r))
		return; /* lost meanwhile: the reconnect redoes the set-up */
	if (!db_result_ok(r))
		log_warnx("db[%d]: LISTEN failed: %s", c->idx, db_result_error(r));
	db_conn_enter_ready(c);
	if (c->db->setup_cb)
		c->db->setup_cb(true, c->db->schema_version, NULL, c->db->setup_arg);
}

void
db_conn_setup_done(struct db_conn *c, bool ok, int schema_version, const char *error)
{
	struct db *db = c->db;

	if (ok) {
		db->schema_version = schema_version;
		db->schema_ok = true;
		c->backend_pid = PQbackendPID(c->pg);
		c->generation++;
		if (c->idx == 0 && db->listen_sql != NULL) {
			/* connection 0 receives the other daemons' NOTIFYs (R9.2) */
			db_conn_simple(c, db->listen_sql, db_conn_listened, c);
			return;
		}
		db_conn_enter_ready(c);
	} else {
		db->schema_ok = false;
		log_errorx("db[%d]: set-up failed: %s", c->idx, error ? error : "?");
		db_conn_set_state(c, DB_CONN_BACKOFF);
		db_conn_close(c);
		db_conn_fail_all(c);
		struct timeval tv = {DB_BACKOFF_MAX_MS / 1000, 0};
		evtimer_add(c->ev_timer, &tv);
	}
	if (db->setup_cb)
		db->setup_cb(ok, schema_version, error, db->setup_arg);
}

void
db_set_listen(struct db *db, const char *sql)
{
	free(db->listen_sql);
	db->listen_sql = sql ? xstrdup(sql) : NULL;
}

int
db_conn_generation(const struct db *db, int idx)
{
	return (idx >= 0 && idx < db->npool && db->conns[idx].state == DB_CONN_READY)
	           ? db->conns[idx].generation
	           : -1;
}

bool
db_pid_is_ours(const struct db *db, int pid)
{
	for (int i = 0; i < db->npool; i++)
		if (db->conns[i].backend_pid == pid && db->conns[i].state == DB_CONN_READY)
			return true;
	return false;
}

static void
db_conn_poll_connect(struct db_conn *c)
{
	switch (PQconnectPoll(c->pg)) {
	case PGRES_POLLING_READING:
		db_conn_watch(c, EV_READ);
		break;
	case PGRES_POLLING_WRITING:
		db_conn_watch(c, EV_WRITE);
		break;
	case PGRES_POLLING_OK:
		if (PQsetnonblocking(c->pg, 1) != 0) {
			db_conn_lost(c, PQerrorMessage(c->pg));
			break;
		}
		db_conn_set_state(c, DB_CONN_SETUP);
		db_conn_watch(c, EV_READ);
		if (c->db->conn_setup)
			c->db->conn_setup(c, c->db->conn_setup_arg);
		else
			db_conn_setup_done(c, true, 0, NULL);
		break;
	case PGRES_POLLING_FAILED:
	default: {
		char why[256];
		snprintf(why, sizeof why, "%s", PQerrorMessage(c->pg));
		why[strcspn(why, "\n")] = '\0';
		db_conn_lost(c, why);
		break;
	}
	}
}

/* A ready connection: read unless paused (db_rows_pause), write while
 * libpq has output queued. */
static void
db_conn_rewatch(struct db_conn *c)
{
	db_conn_watch(c, (short)((c->paused ? 0 : EV_READ) | (c->flush_pending ? EV_WRITE : 0)));
}

/* Single-row mode for the head batch's current statement if it is
 * streamed. libpq takes it only for the statement whose results are being
 * read, before any of them has been parsed: when it has just become the
 * current one (the previous statement's NULL, the previous batch's sync, or
 * sent on an idle connection), so this is tried before anything parses
 * input (PQisBusy, PQnotifies). If it is too late the rows come in one
 * result, which db_conn_read delivers all the same. */
static void
db_conn_arm_rows(struct db_conn *c)
{
	struct db_batch *b = c->head;
	struct db_stmt *s;

	if (b == NULL || b->simple || b->cur >= b->n || c->pg == NULL)
		return;
	s = &b->stmts[b->cur];
	if (s->rows != NULL && !s->armed)
		s->armed = PQsetSingleRowMode(c->pg) == 1;
}

static void
db_conn_flush(struct db_conn *c)
{
	int r = PQflush(c->pg);

	if (r < 0) {
		db_conn_lost(c, PQerrorMessage(c->pg));
		return;
	}
	c->flush_pending = (r == 1);
	db_conn_rewatch(c);
}

static void
db_conn_notifies(struct db_conn *c)
{
	PGnotify *n;

	while ((n = PQnotifies(c->pg)) != NULL) {
		if (c->db->notify_cb)
			c->db->notify_cb(n->relname, n->extra, n->be_pid, c->db->notify_arg);
		PQfreemem(n);
	}
}

/* A result of a streamed statement with rows goes to its rows callback.
 * True: it was a single row (PGRES_SINGLE_TUPLE), now done with; false:
 * store it in the batch (its final result, an error, or all its rows at
 * once when single-row mode could not be set). */
static bool
db_rows_deliver(struct db_conn *c, struct db_batch *b, const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);
	struct db_stmt *s = b->cur < b->n ? &b->stmts[b->cur] : NULL;

	if (s == NULL || s->rows == NULL || PQntuples(res) == 0 ||
	    (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK))
		return false;
	b->rows.conn = c;
	s->rows(&b->rows, res, s->rows_arg);
	return st == PGRES_SINGLE_TUPLE;
}

/* Read every available result and complete batches (none while paused).
 * Returns false if the connection was lost. */
static bool
db_conn_read(struct db_conn *c)
{
	db_conn_arm_rows(c);
	if (PQconsumeInput(c->pg) == 0) {
		char why[256];
		snprintf(why, sizeof why, "%s", PQerrorMessage(c->pg));
		why[strcspn(why, "\n")] = '\0';
		db_conn_lost(c, why);
		return false;
	}
	db_conn_notifies(c);
	for (;;) {
		struct db_batch *b = c->head;
		PGresult *res;

		if (b == NULL || c->paused)
			break;
		db_conn_arm_rows(c);
		if (PQisBusy(c->pg))
			break;
		res = PQgetResult(c->pg);
		if (b->simple) {
			if (res != NULL) {
				db_batch_store(b, res);
				continue;
			}
		} else if (res == NULL) {
			/* end of one statement's results */
			b->cur++;
			continue;
		} else if (PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
			if (db_rows_deliver(c, b, res))
				PQclear(res); /* a single row, delivered */
			else
				db_batch_store(b, res);
			if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD)
				return false;
			continue;
		} else {
			PQclear(res);
		}
		/* batch complete */
		c->head = b->next;
		if (c->head == NULL)
			c->tail = NULL;
		c->inflight--;
		c->slow -= b->slow;
		c->db->inflight--;
		db_batch_finish(b, false);
		if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD)
			return false;
	}
	if (PQstatus(c->pg) == CONNECTION_BAD) {
		db_conn_lost(c, "connection closed");
		return false;
	}
	return true;
}

static void
db_conn_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn *c = arg;

	(void)fd;
	if (c->state == DB_CONN_CONNECTING) {
		db_conn_poll_connect(c);
		return;
	}
	if ((what & EV_READ) && !c->paused && !db_conn_read(c))
		return;
	if (c->pg != NULL && c->flush_pending)
		db_conn_flush(c);
}

/* db_rows_resume, in the loop turn after: deliver what libpq holds
 * already (the socket may not become readable again for it), then read on. */
static void
db_conn_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->state != DB_CONN_READY || c->pg == NULL || c->paused)
		return;
	if (!db_conn_read(c))
		return;
	db_conn_rewatch(c);
	if (c->flush_pending)
		db_conn_flush(c);
}

void
db_rows_pause(struct db_rows *s)
{
	struct db_conn *c = s->conn;

	if (c->paused || c->pg == NULL)
		return;
	c->paused = true;
	event_del(c->ev_resume);
	db_conn_rewatch(c);
}

void
db_rows_resume(struct db_rows *s)
{
	struct db_conn *c = s->conn;

	if (!c->paused || c->pg == NULL)
		return;
	c->paused = false;
	db_conn_rewatch(c);
	event_active(c->ev_resume, 0, 1);
}

/* ---- public ---- */

struct db *
db_new(struct event_base *base, const char *conninfo, int pool_size)
{
	struct db *db = xcalloc(1, sizeof *db);

	db->base = base;
	db->conninfo = xstrdup(conninfo);
	db->npool = pool_size;
	db->conns = xcalloc((size_t)pool_size, sizeof *db->conns);
	for (int i = 0; i < pool_size; i++) {
		struct db_conn *c = &db->conns[i];
		c->db = db;
		c->idx = i;
		c->backoff_ms = DB_BACKOFF_MIN_MS;
		c->state = DB_CONN_BACKOFF;
		c->ev_timer = evtimer_new(base, db_conn_backoff_cb, c);
		c->ev_resume = event_new(base, -1, 0, db_conn_resume_cb, c);
	}
	return db;
}

void
db_start(struct db *db)
{
	for (int i = 0; i < db->npool; i++)
		db_conn_connect(&db->conns[i]);
}

void
db_free(struct db *db)
{
	if (db == NULL)
		return;
	for (int i = 0; i < db->npool; i++) {
		struct db_conn *c = &db->conns[i];
		db_conn_close(c);
		db_conn_fail_all(c);
		event_free(c->ev_timer);
		event_free(c->ev_resume);
	}
	free(db->conns);
	free(db->conninfo);
	free(db->listen_sql);
	free(db);
}

void
db_set_setup_cb(struct db *db, db_setup_cb cb, void *arg)
{
	db->setup_cb = cb;
	db->setup_arg = arg;
}

void
db_set_conn_setup(struct db *db, db_conn_setup_fn fn, void *arg)
{
	db->conn_setup = fn;
	db->conn_setup_arg = arg;
}

void
db_set_notify_cb(struct db *db, db_notify_cb cb, void *arg)
{
	db->notify_cb = cb;
	db->notify_arg = arg;
}

bool
db_ready(const struct db *db)
{
	if (!db->schema_ok)
		return false;
	for (int i = 0; i < db->npool; i++)
		if (db->conns[i].state == DB_CONN_READY)
			return true;
	return false;
}

int
db_schema_version(const struct db *db)
{
	return db->schema_version;
}

bool
db_take_outage(struct db *db)
{
	bool o = db->outage;

	db->outage = false;
	return o;
}

size_t
db_inflight(const struct db *db)
{
	return db->inflight;
}

void
db_pool_stats(const struct db *db, int *connected, int *connecting, int *backoff, size_t *inflight)
{
	*connected = *connecting = *backoff = 0;
	for (int i = 0; i < db->npool; i++) {
		switch (db->conns[i].state) {
		case DB_CONN_READY:
			(*connected)++;
			break;
		case DB_CONN_CONNECTING:
		case DB_CONN_SETUP:
			(*connecting)++;
			break;
		case DB_CONN_BACKOFF:
			(*backoff)++;
			break;
		}
	}
	*inflight = db->inflight;
}

static void
db_conn_enqueue(struct db_conn *c, struct db_batch *b)
{
	b->next = NULL;
	if (c->tail)
		c->tail->next = b;
	else
		c->head = b;
	c->tail = b;
	c->inflight++;
	c->slow += b->slow;
	c->db->inflight++;
}

static int db_send(struct db_conn *best, struct db_batch *b, db_cb cb, void *arg);

int
db_submit_conn(struct db *db, int idx, struct db_batch *b, db_cb cb, void *arg)
{
	if (idx < 0 || idx >= db->npool || !db->schema_ok ||
	    db->conns[idx].state != DB_CONN_READY) {
		db_batch_free(b);
		return -1;
	}
	return db_send(&db->conns[idx], b, cb, arg);
}

/* Where db_submit puts b: the lowest rank, then the fewest batches in
 * flight. A connection without slow work first: a request queued behind a
 * job's chunk would wait until it commits. A slow batch goes to connection
 * 0 last: it LISTENs, and PostgreSQL delivers notifications only between
 * statements, so a job's step there would hold up every cache refresh
 * (R3.6, R9.2) until it commits. */
static int
db_rank(const struct db_conn *c, const struct db_batch *b)
{
	return (c->slow > 0) + (b->slow && c->idx == 0 ? 2 : 0);
}

int
db_submit(struct db *db, struct db_batch *b, db_cb cb, void *arg)
{
	struct db_conn *best = NULL;
	int best_rank = 0;

	if (db->schema_ok && db->inflight < DB_MAX_QUEUED) {
		for (int k = 0; k < db->npool; k++) {
			struct db_conn *c =
			    &db->conns[(db->rr + (unsigned)k) % (unsigned)db->npool];
			int rank = db_rank(c, b);
			if (c->state != DB_CONN_READY)
				continue;
			if (best == NULL || rank < best_rank ||
			    (rank == best_rank && c->inflight < best->inflight)) {
				best = c;
				best_rank = rank;
			}
		}
	}
	if (best == NULL) {
		db_batch_free(b);
		return -1;
	}
	db->rr++;
	return db_send(best, b, cb, arg);
}

static int
db_send(struct db_conn *best, struct db_batch *b, db_cb cb, void *arg)
{
	b->cb = cb;
	b->arg = arg;
	for (int i = 0; i < b->n; i++) {
		struct db_stmt *s = &b->stmts[i];
		if (!PQsendQueryParams(best->pg, s->sql, s->nparams, NULL,
		                       (const char *const *)s->params, s->lengths, s->formats, 0)) {
			log_warnx("db[%d]: send failed: %s", best->idx, PQerrorMessage(best->pg));
			/* the connection is broken: fail everything on it, this batch too */
			db_conn_enqueue(best, b);
			db_conn_lost(best, "send failed");
			return 0;
		}
	}
	if (!PQpipelineSync(best->pg)) {
		db_conn_enqueue(best, b);
		db_conn_lost(best, "sync failed");
		return 0;
	}
	db_conn_enqueue(best, b);
	db_conn_arm_rows(best); /* b's first statement, when the connection was idle */
	db_conn_flush(best);
	return 0;
}

void
db_conn_simple(struct db_conn *c, const char *sql, db_cb cb, void *arg)
{
	struct db_batch *b = db_batch_new();

	b->simple = true;
	b->cb = cb;
	b->arg = arg;
	if (!PQsendQuery(c->pg, sql)) {
		db_conn_enqueue(c, b);
		db_conn_lost(c, PQerrorMessage(c->pg));
		return;
	}
	db_conn_enqueue(c, b);
	db_conn_flush(c);
}
