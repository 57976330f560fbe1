/* migrate.h: numbered schema migrations, embedded at build time (R9.6).
 * Applied at start (and by `creditd migrate`) on each new connection's set-up
 * step, under an advisory lock, recorded in schema_migrations. A schema newer
 * than this binary is refused. */
#ifndef CREDITD_MIGRATE_H
#define CREDITD_MIGRATE_H

struct db_conn;

struct migration {
	int version;
	const char *name;
	const char *sql;
};

extern const struct migration migrations[];
extern const int migrations_count;

/* db_conn_setup_fn: check and migrate, then db_conn_setup_done(). arg is the
 * billing time zone name (the session's TimeZone). */
void migrate_conn_setup(struct db_conn *conn, void *arg);

#endif
