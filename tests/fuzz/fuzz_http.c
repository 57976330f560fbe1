/* fuzz_http.c: libFuzzer target for the HTTP request parser of
 * common/http_parse (the first code that reads a client's bytes, issue 3).
 *
 * For every input: finding the end of the head byte by byte (as a client
 * writing one byte at a time would feed it) must agree with finding it in
 * the whole input; a head found parses to 0 or one of the documented
 * statuses, with method, target and every header a C string inside the
 * buffer; the rest of the input decoded as a chunked body in one call and
 * in pieces must give the same data, result and bytes consumed, never more
 * data than input. Any mismatch aborts. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_http: check failed: %s (line %d)\n", #cond,          \
			        __LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static bool
inside(const char *p, const char *buf, size_t len)
{
	return p != NULL && p >= buf && p < buf + len + 1 &&
	       memchr(p, '\0', len + 1 - (size_t)(p - buf));
}

static void
check_head(const char *in, size_t size, size_t end)
{
	char *buf = malloc(end + 1);
	struct http_parse_head h;
	int rc;

	CHECK(buf != NULL);
	memcpy(buf, in, end);
	buf[end] = '\0';
	memset(&h, 0, sizeof h);
	rc = http_parse_head(buf, end, &h);
	CHECK(rc == 0 || rc == 400 || rc == 431 || rc == 501 || rc == 505);
	if (rc == 0) {
		CHECK(inside(h.method, buf, end) && inside(h.target, buf, end));
		CHECK(h.minor == 0 || h.minor == 1);
		CHECK(h.nheaders >= 0 && h.nheaders <= HTTP_PARSE_MAX_HEADERS);
		CHECK(h.content_length >= -1);
		CHECK(!(h.chunked && h.content_length >= 0));
		for (int i = 0; i < h.nheaders; i++) {
			CHECK(inside(h.headers[i].name, buf, end));
			CHECK(inside(h.headers[i].value, buf, end));
			CHECK(http_parse_header(&h, h.headers[i].name) != NULL);
		}
	} else {
		CHECK(h.error != NULL);
	}
	free(buf);
	(void)size;
}

/* Decode in[0..len) as a chunked body in pieces of at most step bytes. */
static int
decode(const char *in, size_t len, size_t step, char *out, size_t *outlen, size_t *used)
{
	struct http_chunked c;
	int rc = 0;

	memset(&c, 0, sizeof c);
	*outlen = 0;
	*used = 0;
	while (*used < len) {
		size_t n = len - *used < step ? len - *used : step, consumed = 0;
		rc = http_chunked_decode(&c, in + *used, n, &consumed, out, outlen);
		CHECK(consumed <= n);
		*used += consumed;
		CHECK(*outlen <= *used);
		if (rc != 0)
			return rc;
		CHECK(consumed == n); /* more input needed: all of it was taken */
	}
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	size_t scan = 0, end = http_parse_head_end(in, size, &scan), inc = 0, body_at;
	size_t step = size > 0 ? (size_t)data[0] % 7 + 1 : 1;

	/* incremental: the same end as in one go, found at the same length */
	scan = 0;
	for (size_t n = 1; n <= size && inc == 0; n++)
		inc = http_parse_head_end(in, n, &scan);
	CHECK(inc == end);
	CHECK(end <= size);
	if (end > 0)
		check_head(in, size, end);

	body_at = end > 0 ? end : 0;
	{
		size_t len = size - body_at, out1 = 0, out2 = 0, used1 = 0, used2 = 0;
		char *a = malloc(len + 1), *b = malloc(len + 1);
		int r1, r2;

		CHECK(a != NULL && b != NULL);
		r1 = decode(in + body_at, len, len ? len : 1, a, &out1, &used1);
		r2 = decode(in + body_at, len, step, b, &out2, &used2);
		CHECK(r1 == r2);
		if (r1 >= 0) {
			CHECK(out1 == out2 && used1 == used2);
			CHECK(memcmp(a, b, out1) == 0);
		}
		free(a);
		free(b);
	}
	return 0;
}
