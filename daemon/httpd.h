/* httpd.h: the HTTP/1.1 connection layer under http.c: listening socket,
 * per-connection read buffer and output queue, request framing
 * (common/http_parse.h), keep-alive, pipelining (one request at a time, in
 * order), timeouts and closing.
 *
 * Each connection carries ctx_size bytes of storage for the layer above
 * (http.c's request context), reused from request to request. A dispatched
 * request is answered exactly once with httpd_reply (or httpd_drop when its
 * client has gone); the connection's storage lives until then, even when the
 * socket closed meanwhile (the gone callback said so). */
#ifndef CREDITD_HTTPD_H
#define CREDITD_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http_parse.h"

struct event_base;
struct httpd;
struct httpd_conn;
struct iovec;

/* A request as the connection layer hands it up. */
struct httpd_request {
	struct http_parse_head head; /* method, target, headers (C strings) */
	const char *body;            /* NUL-terminated copy, body_len bytes */
	size_t body_len;
	bool body_too_large; /* over max_body: not read; reply 413 */
	int error_status;    /* framing error: answer it (400, 431, 501, 505) */
	const char *error;   /* its text */
};

struct httpd_callbacks {
	size_t ctx_size;
	/* A request is complete (or could not be framed: error_status). */
	void (*request)(struct httpd_conn *c, void *ctx, const struct httpd_request *req,
	                void *arg);
	/* The client closed while its request is with the layer above. */
	void (*gone)(void *ctx, void *arg);
	/* The connection's storage is about to be freed. */
	void (*ctx_free)(void *ctx, void *arg);
	void *arg;
};

struct httpd *httpd_new(struct event_base *base, const struct httpd_callbacks *cb);
void httpd_free(struct httpd *d);
/* Listen on host:port (TCP, nonblocking accept, TCP_NODELAY). 0 or -1. */
int httpd_listen(struct httpd *d, const char *host, int port);
void httpd_stop_listening(struct httpd *d);
/* Limits: bodies over max_body are refused unread; a request not complete
 * within request_timeout seconds, and a kept-alive connection idle that
 * long, are closed. */
void httpd_set_limits(struct httpd *d, size_t max_body, int request_timeout);
/* Connections that have sent at least one complete request. */
size_t httpd_nconns(const struct httpd *d);

/* Answer the connection's current request: a status line, the caller's
 * header lines hdrs[0..hlen) ("Name: value\r\n" each), Content-Length,
 * Date, Connection, then body (not for HEAD). close: end the connection
 * after this reply. The connection (and ctx) may be freed on return. */
void httpd_reply(struct httpd_conn *c, int status, const char *hdrs, size_t hlen, const char *body,
                 size_t blen, bool close);
/* The same with a body from malloc that httpd frees: what the socket does
 * not take at once is sent from it, not from a copy (large replies). */
void httpd_reply_owned(struct httpd_conn *c, int status, const char *hdrs, size_t hlen, char *body,
                       size_t blen, bool close);
/* Finish a request whose client has gone (nothing is sent). The connection
 * (and ctx) is freed on return. */
void httpd_drop(struct httpd_conn *c);

/* A streamed reply: a body produced piece by piece (large reports, R9.1:
 * the loop never holds it whole). HTTP/1.1: "Transfer-Encoding: chunked",
 * each write one chunk, keep-alive as usual after the end; HTTP/1.0: no
 * framing, "Connection: close", the body ends at the close. Requests
 * pipelined behind it wait until it ends. The producer's callbacks: */
struct httpd_stream_cb {
	/* The queued output fell to 256 KiB or less: write more. */
	void (*drained)(void *arg);
	/* The client went away (called in a loop turn of its own, never from
	 * inside httpd_stream_write*): call httpd_stream_end and stop. */
	void (*gone)(void *arg);
};
#define HTTPD_STREAM_MAXIOV 6 /* pieces of one httpd_stream_writev */

/* Answer the connection's current request with a stream: status line,
 * hdrs as for httpd_reply, the framing, Date, Connection. False when no
 * body is wanted (HEAD: the head is the whole answer) or the client has
 * gone: the request is then finished and c may be freed. True: write the
 * body with httpd_stream_write*, then httpd_stream_end. */
bool httpd_stream_begin(struct httpd_conn *c, int status, const char *hdrs, size_t hlen, bool close,
                        const struct httpd_stream_cb *cb, void *arg);
/* Append iov[0..n) (n <= HTTPD_STREAM_MAXIOV) as one chunk: written now
 * from the caller's memory, and only what the socket does not take is
 * copied. False when the client has gone (gone follows). */
bool httpd_stream_writev(struct httpd_conn *c, const struct iovec *iov, int n);
bool httpd_stream_write(struct httpd_conn *c, const char *p, size_t n);
/* Bytes written but not yet taken by the socket (back-pressure: stop
 * producing above a bound of your own, resume in drained). */
size_t httpd_stream_pending(const struct httpd_conn *c);
/* End the stream. ok: the final chunk (or the close, HTTP/1.0) after the
 * queued output; !ok (an error after the head went out): the connection is
 * reset so that the client sees a broken reply, never a complete one. c may
 * be freed on return. */
void httpd_stream_end(struct httpd_conn *c, bool ok);

#endif
