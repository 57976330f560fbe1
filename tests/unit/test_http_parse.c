/* test_http_parse.c: HTTP/1.x request heads and chunked bodies
 * (common/http_parse.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

/* Finds and parses the head in text (a copy); returns parse's status, or
 * -1 when the head is not complete. */
struct fixture {
	char buf[32768];
	struct http_parse_head h;
	size_t head_len;
};

static int
setup(void **state)
{
	*state = calloc(1, sizeof(struct fixture));
	return *state ? 0 : -1;
}

static int
teardown(void **state)
{
	free(*state);
	return 0;
}

static int
parse(struct fixture *f, const char *text, size_t len)
{
	size_t scan = 0, skip;

	assert_true(len < sizeof f->buf);
	memcpy(f->buf, text, len);
	skip = http_parse_skip_empty(f->buf, len);
	f->head_len = http_parse_head_end(f->buf + skip, len - skip, &scan);
	if (f->head_len == 0)
		return -1;
	return http_parse_head(f->buf + skip, f->head_len, &f->h);
}

#define PARSE(f, lit) parse((f), (lit), sizeof(lit) - 1)

static void
test_simple_get(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(PARSE(f, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
	assert_string_equal(f->h.method, "GET");
	assert_int_equal(f->h.mcode, HTTP_PARSE_GET);
	assert_string_equal(f->h.target, "/healthz");
	assert_int_equal(f->h.minor, 1);
	assert_int_equal(f->h.nheaders, 1);
	assert_string_equal(f->h.headers[0].name, "Host");
	assert_string_equal(f->h.headers[0].value, "t");
	assert_int_equal(f->h.content_length, -1);
	assert_false(f->h.chunked);
	assert_true(f->h.keep_alive);
	assert_false(f->h.expect_continue);
	assert_int_equal(f->head_len, 34);
}

static void
test_methods(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *req;
		enum http_parse_method code;
	} cases[] = {
	    {"GET / HTTP/1.1\r\n\r\n", HTTP_PARSE_GET},
	    {"HEAD / HTTP/1.1\r\n\r\n", HTTP_PARSE_HEAD},
	    {"POST / HTTP/1.1\r\n\r\n", HTTP_PARSE_POST},
	    {"PUT / HTTP/1.1\r\n\r\n", HTTP_PARSE_PUT},
	    {"PATCH / HTTP/1.1\r\n\r\n", HTTP_PARSE_PATCH},
	    {"DELETE / HTTP/1.1\r\n\r\n", HTTP_PARSE_DELETE},
	    {"OPTIONS / HTTP/1.1\r\n\r\n", HTTP_PARSE_OTHER},
	    {"get / HTTP/1.1\r\n\r\n", HTTP_PARSE_OTHER},
	    {"BREW / HTTP/1.1\r\n\r\n", HTTP_PARSE_OTHER},
	    {"GETX / HTTP/1.1\r\n\r\n", HTTP_PARSE_OTHER},
	    {"GE / HTTP/1.1\r\n\r\n", HTTP_PARSE_OTHER},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(parse(f, cases[i].req, strlen(cases[i].req)), 0);
		assert_int_equal(f->h.mcode, cases[i].code);
	}
}

static void
test_versions(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(PARSE(f, "GET / HTTP/1.0\r\n\r\n"), 0);
	assert_int_equal(f->h.minor, 0);
	assert_false(f->h.keep_alive);
	assert_int_equal(PARSE(f, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 0);
	assert_true(f->h.keep_alive);
	assert_int_equal(PARSE(f, "GET / HTTP/1.0\r\nConnection: Keep-Alive, close\r\n\r\n"), 0);
	assert_false(f->h.keep_alive);
	assert_int_equal(PARSE(f, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n"), 0);
	assert_false(f->h.keep_alive);
	assert_int_equal(PARSE(f, "GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n"), 0);
	assert_false(f->h.keep_alive);
	assert_int_equal(PARSE(f, "GET / HTTP/1.1\r\nConnection: closed\r\n\r\n"), 0);
	assert_true(f->h.keep_alive);
	assert_int_equal(PARSE(f, "GET / HTTP/1.9\r\n\r\n"), 0);
	assert_int_equal(f->h.minor, 1);
	assert_int_equal(PARSE(f, "GET / HTTP/2.0\r\n\r\n"), 505);
	assert_int_equal(PARSE(f, "GET / HTTP/0.9\r\n\r\n"), 505);
	assert_int_equal(PARSE(f, "GET /\r\n\r\n"), 400); /* HTTP/0.9 */
	assert_int_equal(PARSE(f, "GET / HTTP/1\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET / HTTP/1.10\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET / http/1.1\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET / HTTP/1.x\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET / HTTP/1.1 \r\n\r\n"), 400);
}

static void
test_request_line_errors(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(PARSE(f, " / HTTP/1.1\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET  / HTTP/1.1\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET /a b HTTP/1.1\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "G(T / HTTP/1.1\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "G\0T / HTTP/1.1\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET /x\0 HTTP/1.1\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET /\x7f HTTP/1.1\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET /\x01 HTTP/1.1\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET /a\rb HTTP/1.1\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "\x16\x03\x01\x02\x00\r\n\r\n"), 400);
	assert_non_null(f->h.error);
	/* high bytes in a target are left to the router */
	assert_int_equal(PARSE(f, "GET /\xc3\xa9 HTTP/1.1\r\n\r\n"), 0);
	assert_string_equal(f->h.target, "/\xc3\xa9");
	assert_int_equal(PARSE(f, "GET http://h/x?a=b#f HTTP/1.1\r\n\r\n"), 0);
	assert_string_equal(f->h.target, "http://h/x?a=b#f");
}

static void
test_headers(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(PARSE(f, "POST /v1/authorize HTTP/1.1\r\n"
	                          "Host: 127.0.0.1\r\n"
	                          "authorization:   Bearer  abc \t\r\n"
	                          "Content-Type:application/json\r\n"
	                          "X-Empty:\r\n"
	                          "X-Latin: caf\xe9\r\n"
	                          "Content-Length: 12\r\n\r\n"),
	                 0);
	assert_int_equal(f->h.nheaders, 6);
	assert_string_equal(http_parse_header(&f->h, "Authorization"), "Bearer  abc");
	assert_string_equal(http_parse_header(&f->h, "content-type"), "application/json");
	assert_string_equal(http_parse_header(&f->h, "x-empty"), "");
	assert_string_equal(http_parse_header(&f->h, "X-Latin"), "caf\xe9");
	assert_null(http_parse_header(&f->h, "Accept"));
	assert_null(http_parse_header(&f->h, "Content"));
	assert_int_equal(f->h.content_length, 12);
	/* the first of repeated headers */
	assert_int_equal(PARSE(f, "GET / HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\n\r\n"), 0);
	assert_string_equal(http_parse_header(&f->h, "X-A"), "1");
}

static void
test_header_errors(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(PARSE(f, "GET / HTTP/1.1\r\nBogus\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET / HTTP/1.1\r\n: v\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET / HTTP/1.1\r\nX-A : v\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET / HTTP/1.1\r\nX A: v\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET / HTTP/1.1\r\nX-A: a\x01z\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET / HTTP/1.1\r\nX-A: a\rz\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET / HTTP/1.1\r\nX-A: a\0z\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET / HTTP/1.1\r\nX-A: a\x7fz\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "GET / HTTP/1.1\r\nX-A: tab\tok\r\n\r\n"), 0);
}

static void
test_too_many_headers(void **state)
{
	struct fixture *f = *state;
	char req[8192];
	size_t n = (size_t)snprintf(req, sizeof req, "GET / HTTP/1.1\r\n");

	for (int i = 0; i < HTTP_PARSE_MAX_HEADERS; i++)
		n += (size_t)snprintf(req + n, sizeof req - n, "X-%d: y\r\n", i);
	n += (size_t)snprintf(req + n, sizeof req - n, "\r\n");
	assert_int_equal(parse(f, req, n), 0);
	assert_int_equal(f->h.nheaders, HTTP_PARSE_MAX_HEADERS);
	n -= 2;
	n += (size_t)snprintf(req + n, sizeof req - n, "X-last: y\r\n\r\n");
	assert_int_equal(parse(f, req, n), 431);
}

static void
test_content_length(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), 0);
	assert_int_equal(f->h.content_length, 0);
	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nContent-Length: 007\r\n\r\n"), 0);
	assert_int_equal(f->h.content_length, 7);
	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nContent-Length: 99999999999999\r\n\r\n"), 0);
	assert_int_equal(f->h.content_length, INT64_C(99999999999999));
	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nContent-Length: 999999999999999999\r\n\r\n"),
	                 0);
	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n"),
	                 400);
	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nContent-Length: 5,5\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n"), 400);
	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n"), 400);
	/* duplicates: the same value is one length, different ones are an error */
	assert_int_equal(
	    PARSE(f, "POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n"), 0);
	assert_int_equal(f->h.content_length, 3);
	assert_int_equal(
	    PARSE(f, "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"), 400);
}

static void
test_transfer_encoding(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
	assert_true(f->h.chunked);
	assert_int_equal(f->h.content_length, -1);
	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"), 0);
	assert_true(f->h.chunked);
	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"), 501);
	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
	                 501);
	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
	                          "Transfer-Encoding: chunked\r\n\r\n"),
	                 501);
	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
	                          "Content-Length: 5\r\n\r\n"),
	                 400);
	assert_int_equal(PARSE(f, "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
}

static void
test_expect(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nExpect: 100-continue\r\n"
	                          "Content-Length: 2000\r\n\r\n"),
	                 0);
	assert_true(f->h.expect_continue);
	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n"), 0);
	assert_true(f->h.expect_continue);
	assert_int_equal(PARSE(f, "POST / HTTP/1.1\r\nExpect: something\r\n\r\n"), 0);
	assert_false(f->h.expect_continue);
}

static void
test_line_ends(void **state)
{
	struct fixture *f = *state;

	/* bare LF line ends */
	assert_int_equal(PARSE(f, "GET /a HTTP/1.1\nHost: t\n\n"), 0);
	assert_string_equal(f->h.target, "/a");
	assert_string_equal(http_parse_header(&f->h, "Host"), "t");
	assert_int_equal(f->head_len, 25);
	assert_int_equal(PARSE(f, "GET /a HTTP/1.1\r\nHost: t\n\r\n"), 0);
	/* empty lines before the request line are skipped */
	assert_int_equal(PARSE(f, "\r\n\r\nGET /b HTTP/1.1\r\n\r\n"), 0);
	assert_string_equal(f->h.target, "/b");
	/* no end yet */
	assert_int_equal(PARSE(f, "GET / HTTP/1.1\r\nHost: t\r\n"), -1);
	assert_int_equal(PARSE(f, "GET / HTTP/1.1\r\nHost: t\r\n\r"), -1);
	assert_int_equal(PARSE(f, "GET / HTTP/1.1"), -1);
}

/* Feeding one byte at a time finds the end exactly when it arrives, and
 * the data after the head is not part of it. */
static void
test_head_end_incremental(void **state)
{
	static const char req[] = "POST /v1/authorize HTTP/1.1\r\nHost: t\r\nContent-Length: "
	                          "2\r\n\r\n{}GET / HTTP/1.1\r\n\r\n";
	size_t want = strlen("POST /v1/authorize HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n");

	(void)state;
	for (size_t chunk = 1; chunk <= 7; chunk++) {
		size_t scan = 0, end = 0, len = 0;
		while (end == 0 && len < sizeof req - 1) {
			len += chunk;
			if (len > sizeof req - 1)
				len = sizeof req - 1;
			end = http_parse_head_end(req, len, &scan);
			assert_true(scan <= len);
		}
		assert_int_equal(end, want);
		assert_true(len >= want && len < want + chunk);
	}
}

static void
test_has_token(void **state)
{
	(void)state;
	assert_true(http_parse_has_token("close", "close"));
	assert_true(http_parse_has_token(" Close ", "close"));
	assert_true(http_parse_has_token("keep-alive, Upgrade", "upgrade"));
	assert_true(http_parse_has_token("a,,b , c", "c"));
	assert_false(http_parse_has_token("closed", "close"));
	assert_false(http_parse_has_token("", "close"));
	assert_false(http_parse_has_token("clos", "close"));
}

/* ---- chunked ---- */

/* Decodes enc fed in pieces of `piece` bytes; returns the final status
 * and the decoded data in out/outlen, the bytes used in *used. */
static int
dechunk(const char *enc, size_t len, size_t piece, char *out, size_t *outlen, size_t *used)
{
	struct http_chunked c;
	size_t pos = 0;
	int rc = 0;

	memset(&c, 0, sizeof c);
	*outlen = 0;
	while (pos < len) {
		size_t n = len - pos < piece ? len - pos : piece, consumed = 0;
		rc = http_chunked_decode(&c, enc + pos, n, &consumed, out, outlen);
		assert_true(consumed <= n);
		pos += consumed;
		if (rc != 0)
			break;
		assert_int_equal(consumed, n); /* takes all it is given while not done */
	}
	*used = pos;
	return rc;
}

static void
test_chunked_good(void **state)
{
	static const char enc[] = "5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\nGET /";
	char out[64];
	size_t outlen, used;

	(void)state;
	for (size_t piece = 1; piece <= sizeof enc; piece++) {
		assert_int_equal(dechunk(enc, sizeof enc - 1, piece, out, &outlen, &used), 1);
		assert_int_equal(outlen, 7);
		assert_memory_equal(out, "{\"a\":1}", 7);
		assert_int_equal(used, sizeof enc - 1 - 5); /* "GET /" is the next request */
	}
}

static void
test_chunked_forms(void **state)
{
	char out[256];
	size_t outlen, used;

	(void)state;
	/* extensions, upper-case hex, bare LF, trailers */
	static const char a[] = "A;name=value\r\n0123456789\r\n0;x\r\nX-T: 1\r\nY: 2\r\n\r\n";
	assert_int_equal(dechunk(a, sizeof a - 1, 3, out, &outlen, &used), 1);
	assert_int_equal(outlen, 10);
	assert_memory_equal(out, "0123456789", 10);
	assert_int_equal(used, sizeof a - 1);
	static const char b[] = "3\nabc\n0\n\n";
	assert_int_equal(dechunk(b, sizeof b - 1, 1, out, &outlen, &used), 1);
	assert_int_equal(outlen, 3);
	static const char c[] = "0\r\n\r\n";
	assert_int_equal(dechunk(c, sizeof c - 1, 1, out, &outlen, &used), 1);
	assert_int_equal(outlen, 0);
	static const char d[] = "00000f\r\n0123456789abcde\r\n0\r\n\r\n";
	assert_int_equal(dechunk(d, sizeof d - 1, 2, out, &outlen, &used), 1);
	assert_int_equal(outlen, 15);
	/* incomplete */
	static const char e[] = "5\r\nabc";
	assert_int_equal(dechunk(e, sizeof e - 1, 2, out, &outlen, &used), 0);
	assert_int_equal(outlen, 3);
	static const char g[] = "5\r\nabcde\r\n0\r\n";
	assert_int_equal(dechunk(g, sizeof g - 1, 4, out, &outlen, &used), 0);
}

static void
test_chunked_bad(void **state)
{
	static const char *const bad[] = {
	    "zz\r\n",               /* not hex */
	    "\r\n",                 /* no size */
	    "-1\r\n",               /* sign */
	    "5\r\nabcdeX\r\n",      /* data longer than its size */
	    "5\r\nabcde\rX",        /* CR without LF */
	    "5\rX",                 /* size line CR without LF */
	    "1000000000000000\r\n", /* 16 hex digits: over the limit */
	    "0x5\r\n",              /* prefix */
	    "0\r\nX-T: 1\rZ",       /* trailer CR without LF */
	    "0\r\n\rZ",             /* final CR without LF */
	};
	char out[256];
	size_t outlen, used;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(dechunk(bad[i], strlen(bad[i]), 1, out, &outlen, &used), -1);
		assert_int_equal(dechunk(bad[i], strlen(bad[i]), 64, out, &outlen, &used), -1);
	}
	/* NUL in an extension, endless trailers */
	assert_int_equal(dechunk("1;a\0b\r\n", 7, 1, out, &outlen, &used), -1);
	{
		size_t n = 3 + HTTP_CHUNK_MAX_TRAILER + 10;
		char *big = malloc(n);
		assert_non_null(big);
		memcpy(big, "0\r\n", 3);
		memset(big + 3, 'x', n - 3);
		assert_int_equal(dechunk(big, n, 100, out, &outlen, &used), -1);
		free(big);
	}
}

static void
test_chunked_large(void **state)
{
	/* 15 hex digits is the largest size: accepted, then waits for data */
	static const char enc[] = "fffffffffffffff\r\nab";
	char out[8];
	size_t outlen, used;

	(void)state;
	assert_int_equal(dechunk(enc, sizeof enc - 1, 5, out, &outlen, &used), 0);
	assert_int_equal(outlen, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_simple_get, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_methods, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_versions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_request_line_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_headers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_header_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_too_many_headers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_content_length, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_transfer_encoding, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_line_ends, setup, teardown),
	    cmocka_unit_test(test_head_end_incremental),
	    cmocka_unit_test(test_has_token),
	    cmocka_unit_test(test_chunked_good),
	    cmocka_unit_test(test_chunked_forms),
	    cmocka_unit_test(test_chunked_bad),
	    cmocka_unit_test(test_chunked_large),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
