/* http_parse.h: HTTP/1.x request-head parser and chunked body decoder
 * (RFC 9112). Pure: no I/O, no allocation; the connection layer
 * (daemon/httpd.c) feeds it bytes.
 *
 * A head is found with http_parse_head_end (incrementally, so that a client
 * writing one byte at a time costs linear time), then parsed once, in place:
 * http_parse_head writes NULs into the buffer so that the method, target,
 * header names and values are C strings pointing into it. */
#ifndef CREDITD_HTTP_PARSE_H
#define CREDITD_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_PARSE_MAX_HEADERS 100
/* Content-Length values are at most this many digits (below INT64_MAX). */
#define HTTP_PARSE_MAX_LENGTH_DIGITS 18

enum http_parse_method {
	HTTP_PARSE_OTHER = 0, /* a well-formed token we do not know */
	HTTP_PARSE_GET,
	HTTP_PARSE_HEAD,
	HTTP_PARSE_POST,
	HTTP_PARSE_PUT,
	HTTP_PARSE_PATCH,
	HTTP_PARSE_DELETE,
};

struct http_parse_header {
	const char *name;  /* as sent; compare case-insensitively */
	const char *value; /* leading and trailing blanks removed */
};

struct http_parse_head {
	const char *method;
	enum http_parse_method mcode;
	const char *target;
	int minor; /* HTTP/1.minor: 0 or 1 (1.2 and later read as 1.1) */
	int nheaders;
	struct http_parse_header headers[HTTP_PARSE_MAX_HEADERS];
	int64_t content_length; /* -1: no Content-Length header */
	bool chunked;           /* Transfer-Encoding: chunked */
	bool keep_alive;        /* by version and the Connection header */
	bool expect_continue;   /* Expect: 100-continue */
	const char *error;      /* why parsing failed (static text) */
};

/* Bytes of empty lines (CR, LF) at the start of buf, which a server ignores
 * before a request line (RFC 9112 2.2). */
size_t http_parse_skip_empty(const char *buf, size_t len);

/* Length of the head (request line, headers, empty line) at the start of
 * buf[0..len), or 0 if it is not complete yet. *scan carries the search
 * position between calls on the same, growing buffer; start it at 0. Lines
 * end in CRLF or a bare LF. */
size_t http_parse_head_end(const char *buf, size_t len, size_t *scan);

/* Parses the complete head buf[0..head_len) (as found by
 * http_parse_head_end) in place. Returns 0, or the HTTP status to answer
 * with h->error set: 400 (malformed), 431 (too many headers), 501 (a
 * transfer coding other than chunked), 505 (an HTTP version other than 1.x). */
int http_parse_head(char *buf, size_t head_len, struct http_parse_head *h);

/* The value of the first header called name (case-insensitive), or NULL. */
const char *http_parse_header(const struct http_parse_head *h, const char *name);

/* Does the comma-separated list value contain token (case-insensitive)? */
bool http_parse_has_token(const char *value, const char *token);

/* ---- chunked transfer coding (RFC 9112 7.1) ---- */

enum http_chunk_state {
	HTTP_CHUNK_SIZE = 0, /* hex digits of a chunk size */
	HTTP_CHUNK_EXT,      /* ";extension" up to the end of the size line */
	HTTP_CHUNK_SIZE_LF,  /* CR seen after the size line, LF expected */
	HTTP_CHUNK_DATA,     /* chunk data */
	HTTP_CHUNK_DATA_CR,  /* CRLF after chunk data */
	HTTP_CHUNK_DATA_LF,
	HTTP_CHUNK_TRAILER,      /* start of a trailer line (or the final empty line) */
	HTTP_CHUNK_TRAILER_LINE, /* inside a trailer field line (ignored) */
	HTTP_CHUNK_TRAILER_LF,   /* CR seen, LF expected */
	HTTP_CHUNK_END_LF,       /* CR of the final empty line seen */
	HTTP_CHUNK_DONE,
};

struct http_chunked {
	enum http_chunk_state state;
	uint64_t remaining; /* data bytes left in the current chunk */
	int digits;         /* hex digits of the current size */
	size_t trailer;     /* bytes of trailer lines so far */
};

#define HTTP_CHUNK_MAX_DIGITS 15
#define HTTP_CHUNK_MAX_TRAILER 8192

/* Decodes in[0..len): appends the data to out (room for len bytes needed:
 * the data is never longer than its encoding), adds its length to *outlen,
 * and sets *consumed to the bytes of in used. Returns 1 when the body is
 * complete (the rest of in, from *consumed on, belongs to the next
 * request), 0 when more input is needed, -1 on a malformed encoding. */
int http_chunked_decode(struct http_chunked *c, const char *in, size_t len, size_t *consumed,
                        char *out, size_t *outlen);

#endif
