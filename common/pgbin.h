/* pgbin.h: one-dimensional PostgreSQL arrays in the binary wire format
 * (array_recv), built element by element, for array parameters sent with
 * paramFormats = 1: the server copies each element instead of parsing its
 * text (issue 3: parsing a group commit's 23 text arrays cost about 4 us per
 * event in PostgreSQL).
 *
 * Layout: int32 ndim (1, or 0 when empty), int32 has-nulls flag, uint32
 * element type OID, then per dimension int32 length and int32 lower bound
 * (1), then per element int32 byte length (-1 for NULL) and the bytes. All
 * integers big-endian. Pure: no I/O. */
#ifndef CREDITD_PGBIN_H
#define CREDITD_PGBIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Element type OIDs (pg_type.oid, fixed since PostgreSQL 7). */
#define PGBIN_BOOL 16
#define PGBIN_INT8 20
#define PGBIN_INT4 23
#define PGBIN_TEXT 25
#define PGBIN_UUID 2950

struct pgbin {
	char *p; /* the array so far; complete after pgbin_end */
	size_t len, cap;
	uint32_t n; /* elements */
	bool has_null;
	uint32_t oid;
};

/* Start an empty array of elements of type oid (a is overwritten). */
void pgbin_begin(struct pgbin *a, uint32_t oid);
void pgbin_int4(struct pgbin *a, int32_t v);
void pgbin_int8(struct pgbin *a, int64_t v);
void pgbin_bool(struct pgbin *a, bool v);
/* text: NULL s is an SQL NULL element. */
void pgbin_text(struct pgbin *a, const char *s);
void pgbin_null(struct pgbin *a);
/* A uuid from its canonical 36-character text (8-4-4-4-12 hex digits, either
 * case); false (nothing appended) when s is not one. */
bool pgbin_uuid(struct pgbin *a, const char *s);
/* Write the header; a->p[0..a->len) is then the parameter value. */
void pgbin_end(struct pgbin *a);
void pgbin_free(struct pgbin *a);

#endif
