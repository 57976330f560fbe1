/* http_format.h: choosing a representation (JSON, CSV, HTML) from ?format=
 * or the Accept header, and writing CSV fields (RFC 4180). */
#ifndef CREDITD_HTTP_FORMAT_H
#define CREDITD_HTTP_FORMAT_H

#include <stdbool.h>

struct evbuffer;
struct http_req;

#define CSV_TYPE "text/csv; charset=utf-8"
#define HTML_TYPE "text/html; charset=utf-8"

/* 1 for the alternative (`alt` as in ?format=alt, or `alt_type` listed in
 * Accept), 0 for JSON, -1 after answering 400 for another ?format=. */
int http_req_format(struct http_req *r, const char *alt, const char *alt_type);
/* One CSV field; NULL is an empty field; a field with a comma, quote, CR or
 * LF is quoted with quotes doubled. */
void csv_field(struct evbuffer *b, const char *s, bool first);
/* csv_field for free text (names, references, notes): a leading = + - @, tab
 * or CR is prefixed with an apostrophe so that spreadsheets do not run it. */
void csv_text_field(struct evbuffer *b, const char *s, bool first);

#endif
