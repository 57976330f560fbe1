/* http_format.c: representation choice and CSV fields. */
#include "http_format.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "xmalloc.h"

/* True when an Accept header lists `type` (parameters such as q= ignored). */
static bool
http_accepts(const char *accept, const char *type)
{
	size_t n = strlen(type);

	for (const char *p = accept; *p;) {
		p += strspn(p, " \t,");
		if (strncasecmp(p, type, n) == 0 && strchr(",; \t", p[n]) != NULL)
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

int
http_req_format(struct http_req *r, const char *alt, const char *alt_type)
{
	const char *f = http_req_query(r, "format");
	const char *accept;
	char msg[64];

	if (f) {
		if (strcmp(f, alt) == 0)
			return 1;
		if (strcmp(f, "json") == 0)
			return 0;
		snprintf(msg, sizeof msg, "format: must be json or %s", alt);
		http_reply_error(r, 400, "validation_failed", msg, "format");
		return -1;
	}
	accept = http_req_header(r, "Accept");
	return accept && http_accepts(accept, alt_type) ? 1 : 0;
}

void
csv_text_field(struct evbuffer *b, const char *s, bool first)
{
	char *guarded;

	/* A cell that starts with = + - @ (or a tab or CR) is a formula to a
	 * spreadsheet: a customer-chosen name such as =HYPERLINK(..) would run
	 * when finance opens the report. Such text gets a leading apostrophe
	 * (OWASP "CSV injection"); amounts go through csv_field unchanged. */
	if (s == NULL || strchr("=+-@\t\r", s[0]) == NULL || s[0] == '\0') {
		csv_field(b, s, first);
		return;
	}
	guarded = xmalloc(strlen(s) + 2);
	guarded[0] = '\'';
	strcpy(guarded + 1, s);
	csv_field(b, guarded, first);
	free(guarded);
}

void
csv_field(struct evbuffer *b, const char *s, bool first)
{
	const char *q;

	if (!first)
		evbuffer_add(b, ",", 1);
	if (s == NULL)
		return;
	if (strpbrk(s, ",\"\r\n") == NULL) {
		evbuffer_add(b, s, strlen(s));
		return;
	}
	evbuffer_add(b, "\"", 1);
	while ((q = strchr(s, '"')) != NULL) {
		evbuffer_add(b, s, (size_t)(q - s) + 1);
		evbuffer_add(b, "\"", 1);
		s = q + 1;
	}
	evbuffer_add(b, s, strlen(s));
	evbuffer_add(b, "\"", 1);
}
