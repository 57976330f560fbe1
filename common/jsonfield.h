/* jsonfield.h: validation of request JSON fields, naming the field on error
 * (API.md: 400 validation_failed with "field"). Pure. Each getter returns
 * 0 when present and valid, 1 when absent (and not required), -1 on error
 * with e filled. JSON null counts as absent unless the getter says otherwise. */
#ifndef CREDITD_JSONFIELD_H
#define CREDITD_JSONFIELD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct jf_err {
	char field[64];
	char msg[200];
};

void jf_fail(struct jf_err *e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reject keys not in allowed (NULL-terminated). */
int jf_only(const json_t *obj, const char *const *allowed, struct jf_err *e);
int jf_string(const json_t *obj, const char *key, bool required, size_t maxlen, const char **out,
              struct jf_err *e);
/* Amount (R1.2): a decimal string; JSON numbers rejected. With nullable,
 * an explicit null sets *is_null and returns 0. */
int jf_amount(const json_t *obj, const char *key, bool required, bool nullable, bool *is_null,
              int64_t *out, struct jf_err *e);
int jf_rate(const json_t *obj, const char *key, bool required, int32_t *out, struct jf_err *e);
int jf_int(const json_t *obj, const char *key, bool required, int64_t min, int64_t max,
           int64_t *out, struct jf_err *e);
int jf_bool(const json_t *obj, const char *key, bool required, bool *out, struct jf_err *e);
/* RFC 3339 time -> usec. */
int jf_time(const json_t *obj, const char *key, bool required, int64_t *out, struct jf_err *e);
/* YYYY-MM-DD -> days since epoch. */
int jf_date(const json_t *obj, const char *key, bool required, int32_t *out, struct jf_err *e);
/* Plain text checks used for identifiers: printable UTF-8, no control chars. */
bool jf_text_ok(const char *s);

#endif
