/* migrate.c: schema check and migration as a chain of simple-protocol queries
 * on a connection's set-up step; never blocks the loop. */
#include "migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "xmalloc.h"

/* pg_advisory_lock key for migrations: "creditd" schema lock. */
#define MIGRATE_LOCK_KEY "7274001"

struct migrate_run {
	struct db_conn *conn;
	int current;
};

static void migrate_step(const struct db_result *r, void *arg);

static void
migrate_fail(struct migrate_run *m, const char *why)
{
	struct db_conn *conn = m->conn;

	free(m);
	db_conn_setup_done(conn, false, 0, why);
}

static void
migrate_unlocked(const struct db_result *r, void *arg)
{
	struct migrate_run *m = arg;
	struct db_conn *conn = m->conn;
	int version = m->current;

	if (db_result_unavailable(r)) {
		free(m);
		return; /* the connection retries its whole set-up */
	}
	free(m);
	db_conn_setup_done(conn, true, version, NULL);
}

/* False when the step's query did not succeed: m is freed, and the set-up
 * retried (connection lost) or failed with "<what> failed: <error>". */
static bool
migrate_step_ok(const struct db_result *r, struct migrate_run *m, const char *what)
{
	char why[512];

	if (db_result_unavailable(r)) {
		free(m);
		return false; /* the connection retries its whole set-up */
	}
	if (db_result_ok(r))
		return true;
	snprintf(why, sizeof why, "%s failed: %s", what, db_result_error(r));
	migrate_fail(m, why);
	return false;
}

static void
migrate_logs_checked(const struct db_result *r, void *arg)
{
	struct migrate_run *m = arg;

	if (!migrate_step_ok(r, m, "checking the logs after a restore"))
		return;
	db_conn_simple(m->conn, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", migrate_unlocked,
	               m);
}

static void
migrate_apply_next(struct migrate_run *m)
{
	const int known = migrations_count;

	if (m->current >= known) {
		/* every start, still under the lock: were the notification outbox
		 * and the audit log restored from another cluster? (sql/0028) */
		db_conn_simple(m->conn, "SELECT creditd_logs_check_restored()",
		               migrate_logs_checked, m);
		return;
	}
	const struct migration *mig = &migrations[m->current]; /* version current+1 */
	char *sql;
	char ver[16];

	snprintf(ver, sizeof ver, "%d", mig->version);
	xasprintf(&sql,
	          "BEGIN;\n%s\n;INSERT INTO schema_migrations (version, name) VALUES (%s, '%s');\n"
	          "COMMIT;",
	          mig->sql, ver, mig->name);
	log_info("migrate: applying %s", mig->name);
	db_conn_simple(m->conn, sql, migrate_step, m);
	free(sql);
}

static void
migrate_step(const struct db_result *r, void *arg)
{
	struct migrate_run *m = arg;
	char what[160];

	snprintf(what, sizeof what, "migration %s", migrations[m->current].name);
	if (!migrate_step_ok(r, m, what))
		return;
	m->current++;
	migrate_apply_next(m);
}

static void
migrate_checked(const struct db_result *r, void *arg)
{
	struct migrate_run *m = arg;
	const PGresult *res;
	int version;

	if (!migrate_step_ok(r, m, "schema check"))
		return;
	res = db_result_get(r, db_result_count(r) - 1);
	if (res == NULL || PQntuples(res) != 1) {
		migrate_fail(m, "schema check returned no version");
		return;
	}
	version = atoi(PQgetvalue(res, 0, 0));
	if (version > migrations_count) {
		char why[256];
		snprintf(
		    why, sizeof why,
		    "database schema version %d is newer than this creditd knows (%d); refusing "
		    "to run",
		    version, migrations_count);
		/* closing the connection releases the session lock */
		migrate_fail(m, why);
		return;
	}
	m->current = version;
	migrate_apply_next(m);
}

void
migrate_conn_setup(struct db_conn *conn, void *arg)
{
	struct migrate_run *m = xcalloc(1, sizeof *m);
	const char *tz = arg ? arg : "UTC";
	char *sql;

	m->conn = conn;
	/* the session works in the billing zone (R1.5): dates derived from
	 * timestamps in SQL are billing-zone dates. The name is shape-checked
	 * by the config parser ([A-Za-z0-9_+/-]). No JIT: creditd's statements
	 * are short or set-based over one chunk, and compiling them costs more
	 * than it saves (27 ms per invoice-run chunk measured). */
	xasprintf(&sql,
	          "SET client_min_messages = warning;"
	          "SET jit = off;"
	          "SET TIME ZONE '%s';"
	          "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ");"
	          "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
	          "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());"
	          "SELECT coalesce(max(version), 0) FROM schema_migrations;",
	          tz);
	db_conn_simple(conn, sql, migrate_checked, m);
	free(sql);
}
