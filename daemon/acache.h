/* acache.h: every account's limit state in memory, for /v1/authorize without
 * a database round trip (R3.6) and for validating events before they are
 * batched. Loaded from the database at start and after a reconnect; updated
 * from rows that committed transactions return, so it is never ahead of the
 * database. Results arrive in any order (several connections), so every row
 * carries its accounts.version (0023) and an entry never takes a row older
 * than the one it holds: it never steps back either. */
#ifndef CREDITD_ACACHE_H
#define CREDITD_ACACHE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct app;
struct acache;

enum acache_status { ACACHE_ACTIVE = 0, ACACHE_SUSPENDED = 1, ACACHE_TERMINATED = 2 };

/* "active", "suspended" or "terminated" (API.md's status words). */
const char *acache_status_name(enum acache_status status);

struct acache_entry {
	char id[37];
	char currency[4];
	uint8_t status;
	bool has_monthly, has_total, has_terminated;
	int32_t usage_month; /* day number of the month start of monthly_usage */
	int64_t monthly_limit, total_limit, monthly_usage, exposure, terminated_at;
	int64_t version; /* accounts.version of the row shown (0023) */
	int generation;  /* the cache's reload generation when last written */
	char ext[];      /* external_ref, in the same allocation (one cache miss less) */
};

/* The account_view columns the cache needs (acache_update reads them). */
#define ACACHE_COLUMNS                                                                             \
	"id, seq, external_ref, currency, status, monthly_limit, total_limit, monthly_usage, "     \
	"exposure, usage_month_day, terminated_us, version"

struct acache *acache_new(void);
void acache_free(struct acache *c);
/* By UUID text or "ext:<external_ref>". */
const struct acache_entry *acache_find(const struct acache *c, const char *ref);
/* Insert or update from an account_view row (ACACHE_COLUMNS, by name). A row
 * whose version is below the entry's is older than what the entry shows and
 * is ignored (equal: the same state, taken). */
void acache_update(struct acache *c, const PGresult *res, int row);
/* The same for rows first.. of res (columns looked up once). */
void acache_update_rows(struct acache *c, const PGresult *res, int first);
/* Rows ignored as older than their entry, since start. */
uint64_t acache_stale_rows(const struct acache *c);
size_t acache_count(const struct acache *c);
bool acache_loaded(const struct acache *c);
/* (Re)load everything, asynchronously, in pages. With block, authorization
 * waits (503) until the load completed (start-up, after a lost connection);
 * without, the current entries keep serving and are updated page by page
 * (after a job moved many balances). A page's row is older than its entry
 * when a result that committed after the page's snapshot was handled first:
 * ignored, as in acache_update. With block, though, an entry not written
 * since the reload began takes the loaded row whatever its version (the
 * database is the truth after a reconnect, even one that lost commits). */
void acache_reload(struct acache *c, struct app *app, bool block);

#endif
