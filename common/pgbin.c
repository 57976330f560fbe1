/* pgbin.c: PostgreSQL binary arrays (see pgbin.h). */
#include "pgbin.h"

#include <stdlib.h>
#include <string.h>

#include "hexdigit.h"
#include "xmalloc.h"

#define PGBIN_HEADER 20 /* ndim, flags, oid, length, lower bound */

static void
pgbin_reserve(struct pgbin *a, size_t more)
{
	xreserve(&a->p, &a->cap, a->len + more, 4096);
}

static void
pgbin_put32(char *p, uint32_t v)
{
	p[0] = (char)(v >> 24);
	p[1] = (char)(v >> 16);
	p[2] = (char)(v >> 8);
	p[3] = (char)v;
}

/* Room for one element of n bytes, its length word written; returns where
 * the bytes go. */
static char *
pgbin_elem(struct pgbin *a, uint32_t n)
{
	char *q;

	pgbin_reserve(a, 4 + (size_t)n);
	q = a->p + a->len;
	pgbin_put32(q, n);
	a->len += 4 + (size_t)n;
	a->n++;
	return q + 4;
}

void
pgbin_begin(struct pgbin *a, uint32_t oid)
{
	memset(a, 0, sizeof *a);
	a->oid = oid;
	pgbin_reserve(a, PGBIN_HEADER);
	a->len = PGBIN_HEADER;
}

void
pgbin_int4(struct pgbin *a, int32_t v)
{
	pgbin_put32(pgbin_elem(a, 4), (uint32_t)v);
}

void
pgbin_int8(struct pgbin *a, int64_t v)
{
	char *q = pgbin_elem(a, 8);

	pgbin_put32(q, (uint32_t)((uint64_t)v >> 32));
	pgbin_put32(q + 4, (uint32_t)(uint64_t)v);
}

void
pgbin_bool(struct pgbin *a, bool v)
{
	*pgbin_elem(a, 1) = v ? 1 : 0;
}

void
pgbin_null(struct pgbin *a)
{
	pgbin_reserve(a, 4);
	pgbin_put32(a->p + a->len, UINT32_MAX); /* -1 */
	a->len += 4;
	a->n++;
	a->has_null = true;
}

void
pgbin_text(struct pgbin *a, const char *s)
{
	size_t n;

	if (s == NULL) {
		pgbin_null(a);
		return;
	}
	n = strlen(s);
	memcpy(pgbin_elem(a, (uint32_t)n), s, n);
}

bool
pgbin_uuid(struct pgbin *a, const char *s)
{
	unsigned char b[16];
	size_t k = 0;

	for (size_t i = 0; i < 36; i++) {
		int hi, lo;
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
			continue;
		}
		hi = hex_digit_value(s[i]);
		lo = hi < 0 ? -1 : hex_digit_value(s[i + 1]);
		if (lo < 0)
			return false;
		b[k++] = (unsigned char)(hi << 4 | lo);
		i++;
	}
	if (s[36] != '\0')
		return false;
	memcpy(pgbin_elem(a, 16), b, 16);
	return true;
}

void
pgbin_end(struct pgbin *a)
{
	if (a->n == 0) {
		/* an empty array has no dimensions: the 12-byte header alone */
		pgbin_put32(a->p, 0);
		pgbin_put32(a->p + 4, 0);
		pgbin_put32(a->p + 8, a->oid);
		a->len = 12;
		return;
	}
	pgbin_put32(a->p, 1);
	pgbin_put32(a->p + 4, a->has_null ? 1 : 0);
	pgbin_put32(a->p + 8, a->oid);
	pgbin_put32(a->p + 12, a->n);
	pgbin_put32(a->p + 16, 1);
}

void
pgbin_free(struct pgbin *a)
{
	free(a->p);
	memset(a, 0, sizeof *a);
}
