/* db.h: non-blocking PostgreSQL on the event loop (R9.1, R9.3).
 *
 * A small pool of libpq connections, each driven by PQconnectStart/Poll and then
 * used in pipeline mode. Work is submitted as a *batch*: one or more statements
 * followed by one pipeline sync, which PostgreSQL runs as ONE implicit
 * transaction: all statements commit together or none does. Results come back
 * through a FIFO of pending batches per connection, and the batch callback is
 * called once with every statement's result. Nothing here blocks.
 *
 * When a connection is lost its in-flight batches are answered with
 * db_result_unavailable() == true (their outcome is unknown to us: the caller
 * must not report success), and the connection reconnects with backoff.
 */
#ifndef CREDITD_DB_H
#define CREDITD_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <libpq-fe.h>

struct event_base;
struct db;
struct db_batch;
struct db_result;

typedef void (*db_cb)(const struct db_result *res, void *arg);
/* Called when the schema check/migration of a (re)connection finishes.
 * ok=false with a message when the schema is newer than this binary or a
 * migration failed. */
typedef void (*db_setup_cb)(bool ok, int schema_version, const char *error, void *arg);
/* LISTEN/NOTIFY payloads (channel, payload). */
typedef void (*db_notify_cb)(const char *channel, const char *payload, int be_pid, void *arg);

struct db *db_new(struct event_base *base, const char *conninfo, int pool_size);
void db_free(struct db *db);
void db_set_setup_cb(struct db *db, db_setup_cb cb, void *arg);
/* The per-connection set-up step (schema check and migrations): called with
 * each new connection before it enters pipeline mode; it must end with
 * db_conn_setup_done(). */
struct db_conn;
typedef void (*db_conn_setup_fn)(struct db_conn *conn, void *arg);
void db_set_conn_setup(struct db *db, db_conn_setup_fn fn, void *arg);
void db_set_notify_cb(struct db *db, db_notify_cb cb, void *arg);
void db_start(struct db *db);
/* SQL (e.g. LISTEN ...) that connection 0 runs after its set-up, each time it
 * (re)connects. */
void db_set_listen(struct db *db, const char *sql);
/* Whether a NOTIFY came from one of our own connections' backends. */
bool db_pid_is_ours(const struct db *db, int pid);
/* Bumped each time connection idx is (re)established; -1 while not ready. */
int db_conn_generation(const struct db *db, int idx);

/* True when at least one connection is usable and the schema is current. */
bool db_ready(const struct db *db);
int db_schema_version(const struct db *db);
/* Counts for /metrics. */
void db_pool_stats(const struct db *db, int *connected, int *connecting, int *backoff,
                   size_t *inflight);
size_t db_inflight(const struct db *db);
/* True (once) if a ready connection was lost since the last call. */
bool db_take_outage(struct db *db);

struct db_batch *db_batch_new(void);
void db_batch_free(struct db_batch *b);
/* Mark b as work that may hold its connection for seconds (a job's chunk):
 * db_submit places other batches on connections without such work while
 * there is one, and spreads slow batches over them too. */
void db_batch_set_slow(struct db_batch *b);
/* Append a statement. params are copied; a NULL entry is SQL NULL. */
void db_batch_add(struct db_batch *b, const char *sql, int nparams, const char *const *params);
/* Binary-safe variant: lengths given (for large text params such as arrays). */
void db_batch_add_len(struct db_batch *b, const char *sql, int nparams, const char *const *params,
                      const int *lengths);
/* And formats (NULL: all text): 1 marks a parameter in PostgreSQL's binary
 * format (e.g. an array built with common/pgbin.h), 0 text. */
void db_batch_add_fmt(struct db_batch *b, const char *sql, int nparams, const char *const *params,
                      const int *lengths, const int *formats);
/* A streamed statement (large results, R9.1): its rows are handed to
 * cb(s, res, arg) as they arrive (libpq single-row mode: normally one row per
 * res, valid during the call), not kept for the batch callback, which
 * follows as usual with the statement's final (row-less) result or its
 * error. The rows are one statement's, one snapshot; they count only if the
 * batch then succeeds. s is valid until the batch callback. */
struct db_rows;
typedef void (*db_rows_cb)(struct db_rows *s, const PGresult *res, void *arg);
void db_batch_add_rows(struct db_batch *b, const char *sql, int nparams, const char *const *params,
                       db_rows_cb cb, void *arg);
/* Back-pressure for a slow consumer: pause stops reading the statement's
 * connection (PostgreSQL then waits on its socket; no further rows are
 * buffered here); the connection's other batches wait too. resume delivers
 * the rows already received in a later loop turn, then reads on. */
void db_rows_pause(struct db_rows *s);
void db_rows_resume(struct db_rows *s);
/* Submit: takes ownership of b. Returns 0, or -1 when no connection is usable
 * (b is freed and cb is NOT called: answer 503). */
int db_submit(struct db *db, struct db_batch *b, db_cb cb, void *arg);

/* The same on connection idx (session state such as advisory locks). */
int db_submit_conn(struct db *db, int idx, struct db_batch *b, db_cb cb, void *arg);

/* Results, valid only during the callback. */
bool db_result_ok(const struct db_result *r);
bool db_result_unavailable(const struct db_result *r);
const char *db_result_error(const struct db_result *r);    /* NULL when ok */
const char *db_result_sqlstate(const struct db_result *r); /* "" when none */
/* Constraint name of the failing statement, "" when none. */
const char *db_result_constraint(const struct db_result *r);
/* DETAIL of the failing statement, "" when none (our functions put the field there). */
const char *db_result_detail(const struct db_result *r);
/* The SQL text of the failing statement (for logs), "" when none. */
const char *db_result_failed_sql(const struct db_result *r);
int db_result_count(const struct db_result *r);
const PGresult *db_result_get(const struct db_result *r, int i);

/* Simple-protocol query on a connection that is in its set-up phase (used by
 * the migrator only; several statements allowed). */
void db_conn_simple(struct db_conn *conn, const char *sql, db_cb cb, void *arg);
void db_conn_setup_done(struct db_conn *conn, bool ok, int schema_version, const char *error);

#endif
