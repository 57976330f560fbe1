/* http_parse.c: HTTP/1.x request heads and chunked bodies (RFC 9112). */
#include "http_parse.h"

#include <string.h>
#include <strings.h>

#include "hexdigit.h"

/* tchar of RFC 9110 5.6.2: the characters of a method or a header name. */
static bool
http_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return true;
	return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static char
http_lower(char ch)
{
	return (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
}

size_t
http_parse_skip_empty(const char *buf, size_t len)
{
	size_t i = 0;

	while (i < len && (buf[i] == '\r' || buf[i] == '\n'))
		i++;
	return i;
}

size_t
http_parse_head_end(const char *buf, size_t len, size_t *scan)
{
	size_t i = *scan;

	while (i < len) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t p;

		if (nl == NULL) {
			*scan = len;
			return 0;
		}
		p = (size_t)(nl - buf);
		if (p + 1 >= len) {
			*scan = p; /* look at this LF again when more arrives */
			return 0;
		}
		if (buf[p + 1] == '\n')
			return p + 2;
		if (buf[p + 1] == '\r') {
			if (p + 2 >= len) {
				*scan = p;
				return 0;
			}
			if (buf[p + 2] == '\n')
				return p + 3;
		}
		i = p + 1;
	}
	*scan = i;
	return 0;
}

const char *
http_parse_header(const struct http_parse_head *h, const char *name)
{
	for (int i = 0; i < h->nheaders; i++)
		if (strcasecmp(h->headers[i].name, name) == 0)
			return h->headers[i].value;
	return NULL;
}

bool
http_parse_has_token(const char *value, const char *token)
{
	size_t tlen = strlen(token);
	const char *p = value;

	while (*p != '\0') {
		const char *start, *end;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		start = p;
		while (*p != '\0' && *p != ',')
			p++;
		end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if ((size_t)(end - start) == tlen && strncasecmp(start, token, tlen) == 0)
			return true;
	}
	return false;
}

static int
http_fail(struct http_parse_head *h, int status, const char *why)
{
	h->error = why;
	return status;
}

static enum http_parse_method
http_method_code(const char *m, size_t len)
{
	static const struct {
		const char *name;
		enum http_parse_method code;
	} known[] = {
	    {"GET", HTTP_PARSE_GET}, {"HEAD", HTTP_PARSE_HEAD},   {"POST", HTTP_PARSE_POST},
	    {"PUT", HTTP_PARSE_PUT}, {"PATCH", HTTP_PARSE_PATCH}, {"DELETE", HTTP_PARSE_DELETE},
	};

	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strlen(known[i].name) == len && memcmp(known[i].name, m, len) == 0)
			return known[i].code;
	return HTTP_PARSE_OTHER;
}

/* The request line line[0..len) (without its line end). */
static int
http_parse_request_line(char *line, size_t len, struct http_parse_head *h)
{
	char *sp1 = memchr(line, ' ', len), *sp2, *ver;
	size_t vlen;

	if (sp1 == NULL || sp1 == line)
		return http_fail(h, 400, "malformed request line");
	for (char *p = line; p < sp1; p++)
		if (!http_tchar((unsigned char)*p))
			return http_fail(h, 400, "malformed method");
	sp2 = memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - line));
	if (sp2 == NULL)
		return http_fail(h, 400, "request line without an HTTP version");
	if (sp2 == sp1 + 1)
		return http_fail(h, 400, "empty request target");
	for (char *p = sp1 + 1; p < sp2; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return http_fail(h, 400, "malformed request target");
	ver = sp2 + 1;
	vlen = len - (size_t)(ver - line);
	if (vlen != 8 || memcmp(ver, "HTTP/", 5) != 0 || ver[6] != '.' || ver[5] < '0' ||
	    ver[5] > '9' || ver[7] < '0' || ver[7] > '9')
		return http_fail(h, 400, "malformed HTTP version");
	if (ver[5] != '1')
		return http_fail(h, 505, "HTTP version not supported");
	h->minor = ver[7] == '0' ? 0 : 1;
	h->mcode = http_method_code(line, (size_t)(sp1 - line));
	*sp1 = '\0';
	*sp2 = '\0';
	h->method = line;
	h->target = sp1 + 1;
	return 0;
}

/* Content-Length: 1*DIGIT; a second one must say the same. */
static int
http_parse_length(const char *v, struct http_parse_head *h)
{
	int64_t n = 0;
	size_t i;

	if (*v == '\0')
		return http_fail(h, 400, "empty Content-Length");
	for (i = 0; v[i] != '\0'; i++) {
		if (v[i] < '0' || v[i] > '9')
			return http_fail(h, 400, "malformed Content-Length");
		if (i >= HTTP_PARSE_MAX_LENGTH_DIGITS)
			return http_fail(h, 400, "Content-Length too long");
		n = n * 10 + (v[i] - '0');
	}
	if (h->content_length >= 0 && h->content_length != n)
		return http_fail(h, 400, "conflicting Content-Length headers");
	h->content_length = n;
	return 0;
}

/* One header field line line[0..len) (without its line end). */
static int
http_parse_field(char *line, size_t len, struct http_parse_head *h)
{
	char *colon = memchr(line, ':', len), *v, *end = line + len;
	struct http_parse_header *f;

	if (line[0] == ' ' || line[0] == '\t')
		return http_fail(h, 400, "obsolete line folding");
	if (colon == NULL)
		return http_fail(h, 400, "header line without a colon");
	if (colon == line)
		return http_fail(h, 400, "empty header name");
	for (char *p = line; p < colon; p++)
		if (!http_tchar((unsigned char)*p))
			return http_fail(h, 400, "malformed header name");
	for (char *p = colon + 1; p < end; p++)
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
			return http_fail(h, 400, "control character in a header value");
	if (h->nheaders >= HTTP_PARSE_MAX_HEADERS)
		return http_fail(h, 431, "too many header fields");
	v = colon + 1;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*colon = '\0';
	*end = '\0';
	f = &h->headers[h->nheaders++];
	f->name = line;
	f->value = v;
	return 0;
}

/* The headers that frame the message and the connection. */
static int
http_parse_semantics(struct http_parse_head *h)
{
	bool te = false, close = false, keep = false;

	for (int i = 0; i < h->nheaders; i++) {
		const char *n = h->headers[i].name, *v = h->headers[i].value;
		int rc;

		switch (http_lower(n[0])) {
		case 'c':
			if (strcasecmp(n, "Content-Length") == 0 &&
			    (rc = http_parse_length(v, h)) != 0)
				return rc;
			if (strcasecmp(n, "Connection") == 0) {
				close = close || http_parse_has_token(v, "close");
				keep = keep || http_parse_has_token(v, "keep-alive");
			}
			break;
		case 't':
			if (strcasecmp(n, "Transfer-Encoding") != 0)
				break;
			if (te || strcasecmp(v, "chunked") != 0)
				return http_fail(h, 501, "transfer coding not supported");
			te = true;
			break;
		case 'e':
			if (strcasecmp(n, "Expect") == 0 && strcasecmp(v, "100-continue") == 0)
				h->expect_continue = true;
			break;
		default:
			break;
		}
	}
	if (te && h->minor == 0)
		return http_fail(h, 400, "Transfer-Encoding in an HTTP/1.0 request");
	/* both: a message that two parsers could frame differently (smuggling) */
	if (te && h->content_length >= 0)
		return http_fail(h, 400, "both Transfer-Encoding and Content-Length");
	h->chunked = te;
	h->keep_alive = h->minor >= 1 ? !close : (keep && !close);
	return 0;
}

int
http_parse_head(char *buf, size_t head_len, struct http_parse_head *h)
{
	char *p = buf, *end = buf + head_len;
	bool first = true;
	int rc;

	memset(h, 0, offsetof(struct http_parse_head, headers));
	h->content_length = -1;
	h->chunked = false;
	h->keep_alive = false;
	h->expect_continue = false;
	h->error = NULL;
	h->minor = 1;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len;

		if (nl == NULL)
			return http_fail(h, 400, "incomplete head");
		len = (size_t)(nl - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len == 0) {
			if (first)
				return http_fail(h, 400, "empty request line");
			return nl + 1 == end ? http_parse_semantics(h)
			                     : http_fail(h, 400, "data after the end of the head");
		}
		if (memchr(p, '\0', len) != NULL || memchr(p, '\r', len) != NULL)
			return http_fail(h, 400,
			                 first ? "NUL or CR in the request line"
			                       : "NUL or CR in a header line");
		rc = first ? http_parse_request_line(p, len, h) : http_parse_field(p, len, h);
		if (rc != 0)
			return rc;
		first = false;
		p = nl + 1;
	}
	return http_fail(h, 400, "incomplete head");
}

/* ---- chunked ---- */

int
http_chunked_decode(struct http_chunked *c, const char *in, size_t len, size_t *consumed, char *out,
                    size_t *outlen)
{
	size_t i = 0;

	while (i < len && c->state != HTTP_CHUNK_DONE) {
		char ch = in[i];

		switch (c->state) {
		case HTTP_CHUNK_SIZE: {
			int d = hex_digit_value(ch);
			if (d >= 0) {
				if (++c->digits > HTTP_CHUNK_MAX_DIGITS)
					goto bad;
				c->remaining = c->remaining * 16 + (uint64_t)d;
				i++;
				break;
			}
			if (c->digits == 0)
				goto bad;
			if (ch == ';' || ch == ' ' || ch == '\t')
				c->state = HTTP_CHUNK_EXT;
			else if (ch == '\r')
				c->state = HTTP_CHUNK_SIZE_LF;
			else if (ch == '\n')
				c->state = c->remaining ? HTTP_CHUNK_DATA : HTTP_CHUNK_TRAILER;
			else
				goto bad;
			i++;
			break;
		}
		case HTTP_CHUNK_EXT:
			if (ch == '\r')
				c->state = HTTP_CHUNK_SIZE_LF;
			else if (ch == '\n')
				c->state = c->remaining ? HTTP_CHUNK_DATA : HTTP_CHUNK_TRAILER;
			else if (ch == '\0' || (++c->trailer > HTTP_CHUNK_MAX_TRAILER))
				goto bad;
			i++;
			break;
		case HTTP_CHUNK_SIZE_LF:
			if (ch != '\n')
				goto bad;
			c->state = c->remaining ? HTTP_CHUNK_DATA : HTTP_CHUNK_TRAILER;
			i++;
			break;
		case HTTP_CHUNK_DATA: {
			size_t n = len - i;
			if ((uint64_t)n > c->remaining)
				n = (size_t)c->remaining;
			memcpy(out + *outlen, in + i, n);
			*outlen += n;
			c->remaining -= n;
			i += n;
			if (c->remaining == 0)
				c->state = HTTP_CHUNK_DATA_CR;
			break;
		}
		case HTTP_CHUNK_DATA_CR:
			if (ch == '\r')
				c->state = HTTP_CHUNK_DATA_LF;
			else if (ch == '\n')
				c->state = HTTP_CHUNK_SIZE;
			else
				goto bad;
			if (c->state == HTTP_CHUNK_SIZE)
				c->digits = 0;
			i++;
			break;
		case HTTP_CHUNK_DATA_LF:
			if (ch != '\n')
				goto bad;
			c->state = HTTP_CHUNK_SIZE;
			c->digits = 0;
			i++;
			break;
		case HTTP_CHUNK_TRAILER:
			if (ch == '\r')
				c->state = HTTP_CHUNK_END_LF;
			else if (ch == '\n')
				c->state = HTTP_CHUNK_DONE;
			else if (ch == '\0' || ++c->trailer > HTTP_CHUNK_MAX_TRAILER)
				goto bad;
			else
				c->state = HTTP_CHUNK_TRAILER_LINE;
			i++;
			break;
		case HTTP_CHUNK_TRAILER_LINE:
			if (ch == '\r')
				c->state = HTTP_CHUNK_TRAILER_LF;
			else if (ch == '\n')
				c->state = HTTP_CHUNK_TRAILER;
			else if (ch == '\0' || ++c->trailer > HTTP_CHUNK_MAX_TRAILER)
				goto bad;
			i++;
			break;
		case HTTP_CHUNK_TRAILER_LF:
			if (ch != '\n')
				goto bad;
			c->state = HTTP_CHUNK_TRAILER;
			i++;
			break;
		case HTTP_CHUNK_END_LF:
			if (ch != '\n')
				goto bad;
			c->state = HTTP_CHUNK_DONE;
			i++;
			break;
		case HTTP_CHUNK_DONE:
			break;
		}
	}
	*consumed = i;
	return c->state == HTTP_CHUNK_DONE ? 1 : 0;
bad:
	*consumed = i;
	return -1;
}
