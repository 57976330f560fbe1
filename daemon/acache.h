/* acache.h: every account's limit state in memory, for /v1/authorize without
 * a database round trip (R3.6) and for validating events before they are
 * batched. Loaded from the database at start and after a reconnect; updated
 * from rows that committed transactions return, so it is never ahead of the
 * database. */
#ifndef CREDITD_ACACHE_H
#define CREDITD_ACACHE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct app;
struct acache;

enum acache_status { ACACHE_ACTIVE = 0, ACACHE_SUSPENDED = 1, ACACHE_TERMINATED = 2 };

struct acache_entry {
	char id[37];
	char currency[4];
	uint8_t status;
	bool has_monthly, has_total, has_terminated;
	int32_t usage_month; /* day number of the month start of monthly_usage */
	int64_t monthly_limit, total_limit, monthly_usage, exposure, terminated_at;
	char ext[]; /* external_ref, in the same allocation (one cache miss less) */
};

/* The account_view columns the cache needs (acache_update reads them). */
#define ACACHE_COLUMNS                                                                             \
	"id, seq, external_ref, currency, status, monthly_limit, total_limit, monthly_usage, "     \
	"exposure, usage_month_day, terminated_us"

struct acache *acache_new(void);
void acache_free(struct acache *c);
/* By UUID text or "ext:<external_ref>". */
const struct acache_entry *acache_find(const struct acache *c, const char *ref);
/* Insert or update from an account_view row. */
void acache_update(struct acache *c, const PGresult *res, int row);
size_t acache_count(const struct acache *c);
bool acache_loaded(const struct acache *c);
/* (Re)load everything, asynchronously, in pages. With block, authorization
 * waits (503) until the load completed (start-up, after a lost connection);
 * without, the current entries keep serving and are updated page by page
 * (after a job moved many balances). */
void acache_reload(struct acache *c, struct app *app, bool block);

#endif
