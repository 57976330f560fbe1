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

/* Rows a (re)load fetches at a time. Each page is applied in one go on the
 * event loop, so its size bounds how long /v1/authorize waits behind a
 * reload: a few milliseconds for 5,000 rows (20,000 rows, with a column
 * lookup per value, took 50-150 ms). */
#define ACACHE_PAGE 5000

/* A slot keeps its key's hash, so that probing past other keys reads only
 * the table, not their entries. */
struct acache_slot {
	uint64_t hash;
	struct acache_entry *e;
};

struct acache {
	struct acache_slot *by_id;  /* open addressing, power of two, load <= 1/2 */
	struct acache_slot *by_ext; /* same */
	size_t cap, n;
	bool loaded;
	int generation; /* bumps on each reload, so stale pages are ignored */
	bool forced;    /* this generation's pages overwrite entries it has not written */
	int64_t load_cursor;
	uint64_t stale; /* rows ignored as older than their entry */
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
	for (size_t i = 0; i < c->cap; i++)
		free(c->by_id[i].e);
	free(c->by_id);
	free(c->by_ext);
	free(c);
}

/* The slot holding key (hash h), or the empty slot where it would go. */
static struct acache_slot *
acache_slot(struct acache_slot *tab, size_t cap, const char *key, uint64_t h, bool ext)
{
	size_t i = (size_t)h & (cap - 1);

	for (;; i = (i + 1) & (cap - 1)) {
		struct acache_slot *sl = &tab[i];
		if (sl->e == NULL ||
		    (sl->hash == h && strcmp(ext ? sl->e->ext : sl->e->id, key) == 0))
			return sl;
	}
}

static void
acache_put(struct acache_slot *tab, size_t cap, const char *key, struct acache_entry *e, bool ext)
{
	uint64_t h = acache_hash(key);
	struct acache_slot *sl = acache_slot(tab, cap, key, h, ext);

	sl->hash = h;
	sl->e = e;
}

static void
acache_grow(struct acache *c)
{
	size_t ncap = c->cap * 2;
	struct acache_slot *nid = xcalloc(ncap, sizeof *nid), *next = xcalloc(ncap, sizeof *next);

	for (size_t i = 0; i < c->cap; i++) {
		struct acache_entry *e = c->by_id[i].e;
		if (e == NULL)
			continue;
		acache_put(nid, ncap, e->id, e, false);
		acache_put(next, ncap, e->ext, e, true);
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
		return acache_slot(c->by_ext, c->cap, ref + 4, acache_hash(ref + 4), true)->e;
	if (strlen(ref) != 36)
		return NULL;
	char lower[37];
	for (int i = 0; i < 36; i++)
		lower[i] = (ref[i] >= 'A' && ref[i] <= 'F') ? (char)(ref[i] + 32) : ref[i];
	lower[36] = '\0';
	return acache_slot(c->by_id, c->cap, lower, acache_hash(lower), false)->e;
}

static int64_t
acache_opt(const PGresult *res, int row, int c, bool *has)
{
	*has = !PQgetisnull(res, row, c);
	return *has ? col_i64(res, row, c) : 0;
}

/* Column numbers of ACACHE_COLUMNS in a result, looked up once per result:
 * PQfnumber per value made a page of a (re)load cost several times more. */
struct acache_cols {
	int id, ext, currency, status, monthly_limit, total_limit, terminated, monthly_usage,
	    exposure, usage_month, version;
};

static void
acache_cols_of(const PGresult *res, struct acache_cols *k)
{
	k->id = col(res, "id");
	k->ext = col(res, "external_ref");
	k->currency = col(res, "currency");
	k->status = col(res, "status");
	k->monthly_limit = col(res, "monthly_limit");
	k->total_limit = col(res, "total_limit");
	k->terminated = col(res, "terminated_us");
	k->monthly_usage = col(res, "monthly_usage");
	k->exposure = col(res, "exposure");
	k->usage_month = col(res, "usage_month_day");
	k->version = col(res, "version"); /* every row the cache takes has it (0023) */
}

/* snprintf(dst, size, "%s", src) without the format machinery. */
static void
acache_copy(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Whether a row of version v may replace what e shows. Results are handled
 * in the order they arrive, not of their commits; the versions of one row
 * follow its commits (each UPDATE increments it under the row lock, 0023).
 * So a lower version is an older state: taking it would show, say, `active`
 * for an account a later commit suspended, and /v1/authorize (R3.6) would
 * allow traffic the database forbids. A page of a blocking reload (start,
 * reconnect) takes its row unless this reload already wrote the entry. */
static bool
acache_takes(const struct acache *c, const struct acache_entry *e, int64_t v, bool page)
{
	if (v >= e->version)
		return true;
	return page && c->forced && e->generation != c->generation;
}

static void
acache_update_row(struct acache *c, const PGresult *res, int row, const struct acache_cols *k,
                  bool page)
{
	const char *id = PQgetvalue(res, row, k->id);
	const char *ext = PQgetvalue(res, row, k->ext);
	const char *status = PQgetvalue(res, row, k->status);
	int64_t version = col_i64(res, row, k->version);
	uint64_t h;
	struct acache_slot *slot;
	struct acache_entry *e;

	if ((c->n + 1) * 2 > c->cap)
		acache_grow(c);
	h = acache_hash(id);
	slot = acache_slot(c->by_id, c->cap, id, h, false);
	e = slot->e;
	if (e != NULL && !acache_takes(c, e, version, page)) {
		c->stale++;
		log_debug("account cache: %s: version %" PRId64 " older than %" PRId64 "; ignored",
		          e->id, version, e->version);
		return;
	}
	if (e == NULL) {
		size_t extlen = strlen(ext);
		e = xcalloc(1, sizeof *e + extlen + 1);
		acache_copy(e->id, sizeof e->id, id);
		memcpy(e->ext, ext, extlen + 1);
		slot->hash = h;
		slot->e = e;
		acache_put(c->by_ext, c->cap, e->ext, e, true);
		c->n++;
	}
	acache_copy(e->currency, sizeof e->currency, PQgetvalue(res, row, k->currency));
	e->status = strcmp(status, "active") == 0      ? ACACHE_ACTIVE
	            : strcmp(status, "suspended") == 0 ? ACACHE_SUSPENDED
	                                               : ACACHE_TERMINATED;
	e->monthly_limit = acache_opt(res, row, k->monthly_limit, &e->has_monthly);
	e->total_limit = acache_opt(res, row, k->total_limit, &e->has_total);
	e->terminated_at = acache_opt(res, row, k->terminated, &e->has_terminated);
	e->monthly_usage = col_i64(res, row, k->monthly_usage);
	e->exposure = col_i64(res, row, k->exposure);
	e->usage_month = (int32_t)col_i64(res, row, k->usage_month);
	e->version = version;
	e->generation = c->generation;
}

const char *
acache_status_name(enum acache_status status)
{
	return status == ACACHE_ACTIVE      ? "active"
	       : status == ACACHE_SUSPENDED ? "suspended"
	                                    : "terminated";
}

void
acache_update(struct acache *c, const PGresult *res, int row)
{
	struct acache_cols k;

	acache_cols_of(res, &k);
	acache_update_row(c, res, row, &k, false);
}

void
acache_update_rows(struct acache *c, const PGresult *res, int first)
{
	struct acache_cols k;
	int n = PQntuples(res);

	if (first >= n)
		return;
	acache_cols_of(res, &k);
	for (int i = first; i < n; i++)
		acache_update_row(c, res, i, &k, false);
}

uint64_t
acache_stale_rows(const struct acache *c)
{
	return c->stale;
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
	struct acache_cols k;
	int n, seq;

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
	acache_cols_of(pg, &k);
	seq = col(pg, "seq");
	for (int i = 0; i < n; i++) {
		acache_update_row(c, pg, i, &k, true);
		c->load_cursor = col_i64(pg, i, seq);
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
	/* a blocking load cut short by this one stays one */
	c->forced = block || !c->loaded;
	c->generation++;
	c->load_cursor = 0;
	acache_load_next(c);
}
