/* acache.c: account state hash tables (by id and by external_ref). */
#include "acache.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "db.h"
#include "http_util.h"
#include "log.h"
#include "xmalloc.h"

#define ACACHE_PAGE 20000

struct acache {
	struct acache_entry **by_id;  /* open addressing, power of two */
	struct acache_entry **by_ext; /* same */
	size_t cap, n;
	bool loaded;
	int generation; /* bumps on each reload, so stale pages are ignored */
	int64_t load_cursor;
	struct app *app;
};

static uint64_t
acache_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

struct acache *
acache_new(void)
{
	struct acache *c = xcalloc(1, sizeof *c);

	c->cap = 1024;
	c->by_id = xcalloc(c->cap, sizeof *c->by_id);
	c->by_ext = xcalloc(c->cap, sizeof *c->by_ext);
	return c;
}

void
acache_free(struct acache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->cap; i++) {
		if (c->by_id[i]) {
			free(c->by_id[i]->ext);
			free(c->by_id[i]);
		}
	}
	free(c->by_id);
	free(c->by_ext);
	free(c);
}

static struct acache_entry **
acache_slot(struct acache_entry **tab, size_t cap, const char *key, bool ext)
{
	size_t i = (size_t)acache_hash(key) & (cap - 1);

	for (;; i = (i + 1) & (cap - 1)) {
		struct acache_entry *e = tab[i];
		if (e == NULL || strcmp(ext ? e->ext : e->id, key) == 0)
			return &tab[i];
	}
}

static void
acache_grow(struct acache *c)
{
	size_t ncap = c->cap * 2;
	struct acache_entry **nid = xcalloc(ncap, sizeof *nid),
	                    **next = xcalloc(ncap, sizeof *next);

	for (size_t i = 0; i < c->cap; i++) {
		struct acache_entry *e = c->by_id[i];
		if (e == NULL)
			continue;
		*acache_slot(nid, ncap, e->id, false) = e;
		*acache_slot(next, ncap, e->ext, true) = e;
	}
	free(c->by_id);
	free(c->by_ext);
	c->by_id = nid;
	c->by_ext = next;
	c->cap = ncap;
}

const struct acache_entry *
acache_find(const struct acache *c, const char *ref)
{
	if (strncmp(ref, "ext:", 4) == 0)
		return *acache_slot(c->by_ext, c->cap, ref + 4, true);
	if (strlen(ref) != 36)
		return NULL;
	char lower[37];
	for (int i = 0; i < 36; i++)
		lower[i] = (ref[i] >= 'A' && ref[i] <= 'F') ? (char)(ref[i] + 32) : ref[i];
	lower[36] = '\0';
	return *acache_slot(c->by_id, c->cap, lower, false);
}

static int64_t
acache_opt(const PGresult *res, int row, int c, bool *has)
{
	*has = !PQgetisnull(res, row, c);
	return *has ? col_i64(res, row, c) : 0;
}

void
acache_update(struct acache *c, const PGresult *res, int row)
{
	const char *id = PQgetvalue(res, row, col(res, "id"));
	const char *ext = PQgetvalue(res, row, col(res, "external_ref"));
	const char *status = PQgetvalue(res, row, col(res, "status"));
	struct acache_entry **slot, *e;

	if ((c->n + 1) * 2 > c->cap)
		acache_grow(c);
	slot = acache_slot(c->by_id, c->cap, id, false);
	e = *slot;
	if (e == NULL) {
		e = xcalloc(1, sizeof *e);
		snprintf(e->id, sizeof e->id, "%s", id);
		e->ext = xstrdup(ext);
		*slot = e;
		*acache_slot(c->by_ext, c->cap, e->ext, true) = e;
		c->n++;
	}
	snprintf(e->currency, sizeof e->currency, "%s", PQgetvalue(res, row, col(res, "currency")));
	e->status = strcmp(status, "active") == 0      ? ACACHE_ACTIVE
	            : strcmp(status, "suspended") == 0 ? ACACHE_SUSPENDED
	                                               : ACACHE_TERMINATED;
	e->monthly_limit = acache_opt(res, row, col(res, "monthly_limit"), &e->has_monthly);
	e->total_limit = acache_opt(res, row, col(res, "total_limit"), &e->has_total);
	e->terminated_at = acache_opt(res, row, col(res, "terminated_us"), &e->has_terminated);
	e->monthly_usage = col_i64(res, row, col(res, "monthly_usage"));
	e->exposure = col_i64(res, row, col(res, "exposure"));
	e->usage_month = (int32_t)col_i64(res, row, col(res, "usage_month_day"));
}

size_t
acache_count(const struct acache *c)
{
	return c->n;
}

bool
acache_loaded(const struct acache *c)
{
	return c->loaded;
}

struct acache_page {
	struct acache *c;
	int generation;
};

static void acache_load_next(struct acache *c);

static void
acache_page_cb(const struct db_result *res, void *arg)
{
	struct acache_page *p = arg;
	struct acache *c = p->c;
	const PGresult *pg;
	int n;

	if (p->generation != c->generation) {
		free(p);
		return;
	}
	free(p);
	if (!db_result_ok(res)) {
		log_warnx("account cache: load failed: %s", db_result_error(res));
		return; /* the next reconnect reloads */
	}
	pg = db_result_get(res, 0);
	n = PQntuples(pg);
	for (int i = 0; i < n; i++) {
		acache_update(c, pg, i);
		c->load_cursor = col_i64(pg, i, col(pg, "seq"));
	}
	if (n == ACACHE_PAGE) {
		acache_load_next(c);
		return;
	}
	c->loaded = true;
	log_info("account cache: %zu accounts loaded", c->n);
	/* hand the pages' transient memory back (glibc keeps freed arenas) */
	malloc_trim(0);
}

static void
acache_load_next(struct acache *c)
{
	char cur[24], lim[16];
	struct acache_page *p = xcalloc(1, sizeof *p);

	snprintf(cur, sizeof cur, "%" PRId64, c->load_cursor);
	snprintf(lim, sizeof lim, "%d", ACACHE_PAGE);
	const char *params[] = {cur, lim};
	struct db_batch *b = db_batch_new();
	db_batch_add(b,
	             "SELECT " ACACHE_COLUMNS " FROM account_view WHERE seq > $1 ORDER BY seq "
	             "LIMIT $2",
	             2, params);
	p->c = c;
	p->generation = c->generation;
	if (db_submit(c->app->db, b, acache_page_cb, p) != 0) {
		free(p);
		log_warnx("account cache: database unavailable; will reload on reconnect");
	}
}

void
acache_reload(struct acache *c, struct app *app, bool block)
{
	c->app = app;
	if (block)
		c->loaded = false;
	c->generation++;
	c->load_cursor = 0;
	acache_load_next(c);
}
