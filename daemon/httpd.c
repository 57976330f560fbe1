/* httpd.c: HTTP/1.1 connections (see httpd.h).
 *
 * Cheap per request (issue 3): the read event is added once per connection
 * and stays (no epoll_ctl per request); each readable event costs one read()
 * into a reusable per-connection buffer; a reply (status line, headers,
 * body) goes out with one writev() in the same loop turn, and only a short
 * write arms the write event. Timeouts are counted in ticks of one timer
 * per server (a second each), so a request sets no timer either. */
#include "httpd.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "xmalloc.h"

#define HTTPD_MAX_HEAD 16384                 /* request line + headers */
#define HTTPD_IN_FIRST 4096                  /* read buffer at first */
#define HTTPD_IN_MAX (HTTPD_MAX_HEAD + 4096) /* read buffer at most */
#define HTTPD_KEEP_BUFFER (64 * 1024)        /* larger body/output buffers are freed after use */
#define HTTPD_LINGER_TICKS 2                 /* seconds to wait for the client's close */
#define HTTPD_BACKLOG 1024
#define HTTPD_COPY_BODY 4096 /* bodies up to this size go out in one buffer with the head */
#define HTTPD_CONTINUE "HTTP/1.1 100 Continue\r\n\r\n"
#define HTTPD_STREAM_LOW (256 * 1024) /* a stream is drained: queued output at most this */

enum httpd_conn_state {
	HC_HEAD,   /* waiting for (the rest of) a request head */
	HC_BODY,   /* reading a request body */
	HC_ACTIVE, /* request handed up; waiting for httpd_reply */
	HC_STREAM, /* a streamed reply's head is out; its body is being produced */
	HC_FLUSH,  /* the last reply is being written; then close */
	HC_LINGER, /* write side shut; discarding input until the client closes */
	HC_CLOSED, /* socket closed; the storage waits for the answer (orphan) */
};

struct httpd_conn {
	struct httpd *d;
	struct httpd_conn *prev, *next; /* d->conns */
	int fd;
	enum httpd_conn_state state;
	struct event *ev_read;   /* EV_PERSIST|EV_ET, added for the connection's life */
	struct event *ev_write;  /* EV_ET, added only while output is queued */
	struct event *ev_resume; /* runs buffered requests after an async answer */
	bool read_paused;        /* read buffer full behind an unanswered request */
	bool in_cb;              /* one of our callbacks runs: free later */
	bool req_active;         /* a request is with the layer above */
	bool counted;            /* in d->nconns */
	bool close_after;        /* the request's body was not read (or bad framing) */
	bool rd_eof;
	bool rd_more;  /* the last read filled its buffer: read again (EV_ET) */
	uint64_t tick; /* d->tick when the current wait began */

	/* a streamed reply (HC_STREAM; httpd_stream_begin) */
	bool streaming;      /* begun and not ended (also once the socket closed) */
	bool stream_chunked; /* HTTP/1.1: chunked; HTTP/1.0: ends at the close */
	bool stream_keep;    /* keep the connection after the stream */
	struct httpd_stream_cb scb;
	void *sarg;
	struct event *ev_sgone; /* tells the producer that the client went away */

	char *in; /* input: [in_pos, in_end) not consumed yet */
	size_t in_cap, in_pos, in_end, scan;
	char *head; /* the current request's head, parsed in place */
	size_t head_cap;
	char *body; /* the current request's body */
	size_t body_cap, body_len;
	uint64_t body_left; /* Content-Length bytes still to read */
	bool chunked;
	struct http_chunked chunk;
	char *out; /* queued output: [out_pos, out_len) */
	size_t out_cap, out_pos, out_len;
	char *hbuf; /* the reply head being built */
	size_t hbuf_cap;

	struct httpd_request req;
	max_align_t ctx[]; /* callbacks.ctx_size bytes for the layer above */
};

struct httpd {
	struct event_base *base;
	struct httpd_callbacks cb;
	struct evconnlistener *listener;
	bool listen_paused; /* accept failed (EMFILE): retried on the next tick */
	struct event *ev_tick;
	uint64_t tick;
	size_t max_body;
	int timeout; /* seconds */
	size_t nconns;
	struct httpd_conn *conns;
	time_t date_at;
	char date[80]; /* "Date: ...\r\n" of date_at */
	size_t date_len;
};

static void httpd_conn_process(struct httpd_conn *c);

/* ---- buffers ---- */

static void
httpd_reserve(char **buf, size_t *cap, size_t need)
{
	xreserve(buf, cap, need, 256);
}

static void
httpd_out_append(struct httpd_conn *c, const char *p, size_t n)
{
	if (n == 0)
		return;
	httpd_reserve(&c->out, &c->out_cap, c->out_len + n);
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
}

static void
httpd_shrink(char **buf, size_t *cap)
{
	if (*cap > HTTPD_KEEP_BUFFER) {
		free(*buf);
		*buf = NULL;
		*cap = 0;
	}
}

/* ---- connection life ---- */

/* Reading stopped with a full buffer: go on (in the next loop turn). */
static void
httpd_conn_unpause(struct httpd_conn *c)
{
	if (c->read_paused && c->fd >= 0) {
		c->read_paused = false;
		event_active(c->ev_read, EV_READ, 1);
	}
}

static void
httpd_conn_free(struct httpd_conn *c)
{
	struct httpd *d = c->d;

	if (c->prev)
		c->prev->next = c->next;
	else
		d->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (d->cb.ctx_free)
		d->cb.ctx_free(c->ctx, d->cb.arg);
	event_free(c->ev_read);
	event_free(c->ev_write);
	if (c->ev_resume)
		event_free(c->ev_resume);
	if (c->ev_sgone)
		event_free(c->ev_sgone);
	free(c->in);
	free(c->head);
	free(c->body);
	free(c->out);
	free(c->hbuf);
	free(c);
}

/* Free c unless one of its callbacks runs or the layer above still holds
 * its request (an orphan, freed by httpd_drop/httpd_reply). */
static void
httpd_conn_maybe_free(struct httpd_conn *c)
{
	if (c->fd < 0 && !c->in_cb && !c->req_active)
		httpd_conn_free(c);
}

/* Close the socket now; the storage goes with httpd_conn_maybe_free. */
static void
httpd_conn_close(struct httpd_conn *c)
{
	struct httpd *d = c->d;

	if (c->fd < 0)
		return;
	event_del(c->ev_read);
	event_del(c->ev_write);
	if (c->ev_resume)
		event_del(c->ev_resume);
	close(c->fd);
	c->fd = -1;
	if (c->counted) {
		c->counted = false;
		d->nconns--;
	}
	if (c->streaming) {
		/* the producer learns it in the next loop turn, not inside its
		 * own httpd_stream_write that may have found the socket broken */
		c->state = HC_CLOSED;
		if (c->ev_sgone && c->scb.gone)
			event_active(c->ev_sgone, 0, 1);
		return;
	}
	c->state = HC_CLOSED;
	if (c->req_active && d->cb.gone)
		d->cb.gone(c->ctx, d->cb.arg); /* its answer will be dropped */
}

/* All output is written and the connection is to end: shut the write side
 * and read until the client closes (a close with unread input would reset
 * the connection and could destroy the answer before the client read it). */
static void
httpd_conn_finish(struct httpd_conn *c)
{
	if (c->rd_eof || shutdown(c->fd, SHUT_WR) != 0) {
		httpd_conn_close(c);
		return;
	}
	c->state = HC_LINGER;
	c->tick = c->d->tick;
	httpd_conn_unpause(c);
}

/* The client closed (or reset) its side. */
static void
httpd_conn_eof(struct httpd_conn *c)
{
	c->rd_eof = true;
	if (c->state == HC_FLUSH || (c->state == HC_HEAD && c->out_pos < c->out_len)) {
		/* an answer is still being written: finish it, then close */
		event_del(c->ev_read);
		c->state = HC_FLUSH;
		return;
	}
	httpd_conn_close(c);
}

/* ---- output ---- */

/* Write a then b, now; queue what the socket does not take. owned: NULL, or
 * b itself, from malloc and freed here; when the socket takes a and only
 * part of b, b becomes the pending output (a large body is not copied). */
static void
httpd_conn_write(struct httpd_conn *c, const char *a, size_t alen, const char *b, size_t blen,
                 char *owned)
{
	struct iovec iov[2] = {{(void *)(uintptr_t)a, alen}, {(void *)(uintptr_t)b, blen}};
	ssize_t n;
	size_t done;

	if (c->out_pos < c->out_len) {
		httpd_out_append(c, a, alen);
		httpd_out_append(c, b, blen);
		free(owned);
		return;
	}
	n = blen ? writev(c->fd, iov, 2) : write(c->fd, a, alen);
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			httpd_conn_close(c);
			free(owned);
			return;
		}
		n = 0;
	}
	done = (size_t)n;
	if (done == alen + blen) {
		free(owned);
		return;
	}
	c->out_pos = c->out_len = 0;
	if (done < alen) {
		httpd_out_append(c, a + done, alen - done);
		httpd_out_append(c, b, blen);
		free(owned);
	} else if (owned != NULL) {
		free(c->out);
		c->out = owned;
		c->out_cap = blen;
		c->out_pos = done - alen;
		c->out_len = blen;
	} else {
		httpd_out_append(c, b + (done - alen), blen - (done - alen));
	}
	c->tick = c->d->tick;
	event_add(c->ev_write, NULL);
}

/* Move the queued output to the front of its buffer when more has been sent
 * than remains (a stream appends behind output still going out). */
static void
httpd_out_compact(struct httpd_conn *c)
{
	size_t left = c->out_len - c->out_pos;

	if (c->out_pos > 0 && c->out_pos >= left) {
		memmove(c->out, c->out + c->out_pos, left);
		c->out_pos = 0;
		c->out_len = left;
	}
}

/* Write the pieces iov[0..n) now, or behind the queued output; queue what
 * the socket does not take (copied: the pieces are the caller's). */
static void
httpd_conn_writev(struct httpd_conn *c, const struct iovec *iov, int n)
{
	bool was_idle = c->out_pos == c->out_len;
	size_t done = 0;

	if (was_idle) {
		ssize_t w = writev(c->fd, iov, n);

		c->out_pos = c->out_len = 0;
		if (w < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				httpd_conn_close(c);
				return;
			}
			w = 0;
		}
		done = (size_t)w;
	} else {
		httpd_out_compact(c);
	}
	for (int i = 0; i < n; i++) {
		if (done >= iov[i].iov_len) {
			done -= iov[i].iov_len;
			continue;
		}
		httpd_out_append(c, (const char *)iov[i].iov_base + done, iov[i].iov_len - done);
		done = 0;
	}
	if (was_idle && c->out_pos < c->out_len) {
		c->tick = c->d->tick;
		event_add(c->ev_write, NULL);
	}
}

static void
httpd_conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct httpd_conn *c = arg;
	ssize_t n;

	(void)what;
	c->in_cb = true;
	n = write(fd, c->out + c->out_pos, c->out_len - c->out_pos);
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		httpd_conn_close(c);
	} else if (n > 0) {
		c->out_pos += (size_t)n;
		c->tick = c->d->tick;
		/* back-pressure: the producer of a stream may write again (or end
		 * it; the storage stays while in_cb) */
		if (c->state == HC_STREAM && c->streaming && c->scb.drained &&
		    c->out_len - c->out_pos <= HTTPD_STREAM_LOW)
			c->scb.drained(c->sarg);
	}
	if (c->fd >= 0 && c->out_pos == c->out_len) {
		c->out_pos = c->out_len = 0;
		if (!c->streaming)
			httpd_shrink(&c->out, &c->out_cap);
		event_del(c->ev_write);
		if (c->state == HC_FLUSH) {
			httpd_conn_finish(c);
		} else {
			httpd_conn_process(c);
			httpd_conn_unpause(c);
		}
	}
	c->in_cb = false;
	httpd_conn_maybe_free(c);
}

/* ---- requests ---- */

static void
httpd_conn_dispatch(struct httpd_conn *c)
{
	struct httpd *d = c->d;

	if (c->body == NULL)
		httpd_reserve(&c->body, &c->body_cap, 1);
	c->body[c->body_len] = '\0';
	c->req.body = c->body;
	c->req.body_len = c->body_len;
	c->state = HC_ACTIVE;
	c->req_active = true;
	if (!c->counted) {
		c->counted = true;
		d->nconns++;
	}
	d->cb.request(c, c->ctx, &c->req, d->cb.arg);
}

/* A request that cannot be framed: the layer above answers status, and the
 * connection closes after that answer. */
static void
httpd_conn_bad(struct httpd_conn *c, int status, const char *why)
{
	struct http_parse_head *h = &c->req.head;

	if (h->method == NULL || h->target == NULL) {
		h->method = "";
		h->target = "";
		h->mcode = HTTP_PARSE_OTHER;
		h->nheaders = 0;
		h->minor = 1;
	}
	h->keep_alive = false;
	c->req.error_status = status;
	c->req.error = why;
	c->close_after = true;
	c->body_len = 0;
	httpd_conn_dispatch(c);
}

static void
httpd_conn_too_large(struct httpd_conn *c)
{
	c->req.body_too_large = true;
	c->close_after = true;
	c->body_len = 0;
	httpd_conn_dispatch(c);
}

/* HC_HEAD: parse a head if one is complete. false: more input needed. */
static bool
httpd_conn_head(struct httpd_conn *c)
{
	struct http_parse_head *h = &c->req.head;
	size_t avail = c->in_end - c->in_pos, end;
	int rc;

	if (c->scan == 0) {
		size_t skip = http_parse_skip_empty(c->in + c->in_pos, avail);
		c->in_pos += skip;
		avail -= skip;
	}
	if (avail == 0) {
		c->in_pos = c->in_end = 0;
		return false;
	}
	c->req.body_too_large = false;
	c->req.error_status = 0;
	c->req.error = NULL;
	h->method = h->target = NULL;
	c->close_after = false;
	c->body_len = 0;
	end = http_parse_head_end(c->in + c->in_pos, avail, &c->scan);
	if (end == 0) {
		if (avail <= HTTPD_MAX_HEAD)
			return false;
		httpd_conn_bad(c, 431, "request head too large");
		return true;
	}
	c->scan = 0;
	if (end > HTTPD_MAX_HEAD) {
		httpd_conn_bad(c, 431, "request head too large");
		return true;
	}
	httpd_reserve(&c->head, &c->head_cap, end + 1);
	memcpy(c->head, c->in + c->in_pos, end);
	c->head[end] = '\0';
	c->in_pos += end;
	rc = http_parse_head(c->head, end, h);
	if (rc != 0) {
		httpd_conn_bad(c, rc, h->error);
		return true;
	}
	c->chunked = h->chunked;
	if (!h->chunked && h->content_length <= 0) {
		httpd_conn_dispatch(c);
		return true;
	}
	if (!h->chunked && (uint64_t)h->content_length > c->d->max_body) {
		httpd_conn_too_large(c); /* refused unread, before any 100 Continue */
		return true;
	}
	c->body_left = h->chunked ? 0 : (uint64_t)h->content_length;
	memset(&c->chunk, 0, sizeof c->chunk);
	/* grown as the body arrives: a Content-Length alone allocates little */
	if (!h->chunked)
		httpd_reserve(&c->body, &c->body_cap,
		              (c->body_left < HTTPD_IN_MAX ? (size_t)c->body_left : HTTPD_IN_MAX) +
		                  1);
	c->state = HC_BODY;
	c->tick = c->d->tick;
	if (h->expect_continue && h->minor >= 1 && c->in_pos == c->in_end)
		httpd_conn_write(c, HTTPD_CONTINUE, sizeof HTTPD_CONTINUE - 1, NULL, 0, NULL);
	return true;
}

/* HC_BODY: take body bytes. false: more input needed. */
static bool
httpd_conn_body(struct httpd_conn *c)
{
	size_t avail = c->in_end - c->in_pos, used, take;
	int rc;

	if (!c->chunked) {
		take = (uint64_t)avail < c->body_left ? avail : (size_t)c->body_left;
		httpd_reserve(&c->body, &c->body_cap, c->body_len + take + 1);
		memcpy(c->body + c->body_len, c->in + c->in_pos, take);
		c->body_len += take;
		c->body_left -= take;
		c->in_pos += take;
		if (c->body_left > 0)
			return false;
		httpd_conn_dispatch(c);
		return true;
	}
	if (avail == 0)
		return false;
	httpd_reserve(&c->body, &c->body_cap, c->body_len + avail + 1);
	rc = http_chunked_decode(&c->chunk, c->in + c->in_pos, avail, &used, c->body, &c->body_len);
	c->in_pos += used;
	if (rc < 0) {
		httpd_conn_bad(c, 400, "malformed chunked body");
		return true;
	}
	if (c->body_len > c->d->max_body) {
		httpd_conn_too_large(c);
		return true;
	}
	if (rc == 0)
		return false;
	httpd_conn_dispatch(c);
	return true;
}

/* Frame and hand up the buffered requests, one at a time, while none is
 * with the layer above and no output waits. */
static void
httpd_conn_process(struct httpd_conn *c)
{
	while (c->fd >= 0 && c->out_pos == c->out_len) {
		if (c->state == HC_HEAD) {
			if (!httpd_conn_head(c))
				break;
		} else if (c->state == HC_BODY) {
			if (!httpd_conn_body(c))
				break;
		} else {
			break;
		}
	}
}

/* ---- input ---- */

/* Discarded input while lingering. */
static char httpd_discard[16384];

static void
httpd_conn_read(struct httpd_conn *c)
{
	ssize_t n;

	if (c->state == HC_LINGER) {
		n = read(c->fd, httpd_discard, sizeof httpd_discard);
		c->rd_more = n == (ssize_t)sizeof httpd_discard;
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			httpd_conn_close(c);
		return;
	}
	if (c->state == HC_BODY && !c->chunked && c->in_pos == c->in_end && c->body_left > 0) {
		/* the rest of a Content-Length body: straight into its buffer,
		 * which grows (doubling) up to the announced length */
		size_t room;

		if (c->body_cap - c->body_len <= 1)
			httpd_reserve(&c->body, &c->body_cap, c->body_len + 2);
		room = c->body_cap - c->body_len - 1;
		if ((uint64_t)room > c->body_left)
			room = (size_t)c->body_left;
		n = read(c->fd, c->body + c->body_len, room);
		if (n > 0) {
			c->rd_more = (size_t)n == room;
			c->body_len += (size_t)n;
			c->body_left -= (uint64_t)n;
		} else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			httpd_conn_eof(c);
		}
		return;
	}
	if (c->in == NULL)
		httpd_reserve(&c->in, &c->in_cap, HTTPD_IN_FIRST);
	if (c->in_pos == c->in_end) {
		c->in_pos = c->in_end = 0;
	} else if (c->in_end == c->in_cap && c->in_pos > 0) {
		memmove(c->in, c->in + c->in_pos, c->in_end - c->in_pos);
		c->in_end -= c->in_pos;
		c->in_pos = 0;
	}
	if (c->in_end == c->in_cap) {
		if (c->in_cap < HTTPD_IN_MAX) {
			httpd_reserve(&c->in, &c->in_cap,
			              c->in_cap * 2 > HTTPD_IN_MAX ? HTTPD_IN_MAX : c->in_cap * 2);
		} else {
			/* full behind an unanswered request: wait for the answer
			 * (edge-triggered: nothing to switch off) */
			c->read_paused = true;
			return;
		}
	}
	n = read(c->fd, c->in + c->in_end, c->in_cap - c->in_end);
	c->rd_more = n == (ssize_t)(c->in_cap - c->in_end);
	if (n > 0) {
		if (c->state == HC_HEAD && c->in_pos == c->in_end)
			c->tick = c->d->tick; /* a request begins: its time starts now */
		c->in_end += (size_t)n;
	} else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		httpd_conn_eof(c);
	}
}

static void
httpd_conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct httpd_conn *c = arg;

	(void)fd;
	(void)what;
	c->in_cb = true;
	c->rd_more = false;
	httpd_conn_read(c);
	httpd_conn_process(c);
	/* Edge-triggered: a read that filled its buffer may have left data
	 * that no new edge will announce; a read that did not, drained the
	 * socket. */
	if (c->rd_more && c->fd >= 0 && !c->read_paused)
		event_active(c->ev_read, EV_READ, 1);
	c->in_cb = false;
	httpd_conn_maybe_free(c);
}

static void
httpd_conn_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct httpd_conn *c = arg;

	(void)fd;
	(void)what;
	c->in_cb = true;
	httpd_conn_process(c);
	c->in_cb = false;
	httpd_conn_maybe_free(c);
}

/* ---- replies ---- */

static const char *
httpd_reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 304:
		return "Not Modified";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 409:
		return "Conflict";
	case 410:
		return "Gone";
	case 411:
		return "Length Required";
	case 412:
		return "Precondition Failed";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 422:
		return "Unprocessable Content";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
	}
}

static char *
httpd_put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

static char *
httpd_put_uint(char *p, uint64_t v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

/* "Date: ...\r\n", formatted once a second. */
static void
httpd_date(struct httpd *d)
{
	time_t now = time(NULL);
	struct tm tm;
	char buf[64];

	if (now == d->date_at && d->date_len > 0)
		return;
	d->date_len = 0;
	if (gmtime_r(&now, &tm) == NULL || evutil_date_rfc1123(buf, sizeof buf, &tm) <= 0)
		return;
	d->date_len = (size_t)snprintf(d->date, sizeof d->date, "Date: %s\r\n", buf);
	d->date_at = now;
}

/* The reply head in c->hbuf, with room for extra bytes after it: status
 * line, the caller's header lines, framing (a "Name: value\r\n" line or
 * ""), Date, Connection. Returns its end. */
static char *
httpd_head(struct httpd_conn *c, int status, const char *hdrs, size_t hlen, const char *framing,
           bool keep, size_t extra)
{
	struct httpd *d = c->d;
	const struct http_parse_head *h = &c->req.head;
	const char *reason = httpd_reason(status);
	size_t flen = strlen(framing);
	char *p;

	httpd_date(d);
	httpd_reserve(&c->hbuf, &c->hbuf_cap,
	              128 + strlen(reason) + hlen + flen + d->date_len + extra);
	p = httpd_put(c->hbuf, h->minor == 0 ? "HTTP/1.0 " : "HTTP/1.1 ", 9);
	p = httpd_put_uint(p, (uint64_t)(status > 0 && status < 1000 ? status : 500));
	*p++ = ' ';
	p = httpd_put(p, reason, strlen(reason));
	p = httpd_put(p, "\r\n", 2);
	p = httpd_put(p, hdrs, hlen);
	p = httpd_put(p, framing, flen);
	p = httpd_put(p, d->date, d->date_len);
	if (!keep)
		p = httpd_put(p, "Connection: close\r\n", 19);
	else if (h->minor == 0)
		p = httpd_put(p, "Connection: keep-alive\r\n", 24);
	return httpd_put(p, "\r\n", 2);
}

/* The current request is answered (its reply written or queued): close
 * after the output, or go on with the next request. defer: frame buffered
 * requests in the next loop turn even from one of our callbacks (a stream
 * ends from its producer's callbacks, after which ours frame nothing). */
static void
httpd_conn_answered(struct httpd_conn *c, bool keep, bool defer)
{
	struct httpd *d = c->d;

	httpd_shrink(&c->body, &c->body_cap);
	if (c->fd < 0) {
		httpd_conn_maybe_free(c);
		return;
	}
	if (!keep) {
		c->state = HC_FLUSH;
		c->tick = d->tick;
		if (c->out_pos == c->out_len)
			httpd_conn_finish(c);
		httpd_conn_maybe_free(c);
		return;
	}
	c->state = HC_HEAD;
	c->tick = d->tick;
	httpd_conn_unpause(c);
	/* Requests already buffered (pipelined): framed in this loop turn when
	 * the answer came from our own callback, else in the next turn, not
	 * inside the database callback that answered. */
	if ((defer || !c->in_cb) && c->in_pos < c->in_end && c->out_pos == c->out_len) {
		if (c->ev_resume == NULL)
			c->ev_resume = event_new(d->base, -1, 0, httpd_conn_resume_cb, c);
		event_active(c->ev_resume, 0, 1);
	}
}

/* httpd_reply; owned: body is from malloc and freed here (or sent from). */
static void
httpd_reply_body(struct httpd_conn *c, int status, const char *hdrs, size_t hlen, const char *body,
                 size_t blen, bool close, char *owned)
{
	const struct http_parse_head *h = &c->req.head;
	bool keep = !close && !c->close_after && h->keep_alive && c->state == HC_ACTIVE;
	char framing[48], *p;

	c->req_active = false;
	if (c->fd < 0) {
		free(owned);
		httpd_conn_maybe_free(c);
		return;
	}
	if (h->mcode == HTTP_PARSE_HEAD)
		body = NULL; /* but its Content-Length */
	p = httpd_put(framing, "Content-Length: ", 16);
	p = httpd_put_uint(p, blen);
	p = httpd_put(p, "\r\n", 3); /* with its NUL */
	p = httpd_head(c, status, hdrs, hlen, framing, keep,
	               body && blen <= HTTPD_COPY_BODY ? blen : 0);
	if (body == NULL) {
		blen = 0;
	} else if (blen <= HTTPD_COPY_BODY) {
		/* one buffer, one write() */
		p = httpd_put(p, body, blen);
		blen = 0;
	}
	/* a body copied into the head's buffer (or none, HEAD) is done with */
	httpd_conn_write(c, c->hbuf, (size_t)(p - c->hbuf), body, blen, blen > 0 ? owned : NULL);
	if (blen == 0)
		free(owned);
	httpd_conn_answered(c, keep, false);
}

void
httpd_reply(struct httpd_conn *c, int status, const char *hdrs, size_t hlen, const char *body,
            size_t blen, bool close)
{
	httpd_reply_body(c, status, hdrs, hlen, body, blen, close, NULL);
}

void
httpd_reply_owned(struct httpd_conn *c, int status, const char *hdrs, size_t hlen, char *body,
                  size_t blen, bool close)
{
	httpd_reply_body(c, status, hdrs, hlen, body, blen, close, body);
}

/* ---- streamed replies ---- */

static void
httpd_stream_gone_cb(evutil_socket_t fd, short what, void *arg)
{
	struct httpd_conn *c = arg;

	(void)fd;
	(void)what;
	c->in_cb = true;
	if (c->streaming && c->scb.gone)
		c->scb.gone(c->sarg); /* which ends the stream */
	c->in_cb = false;
	httpd_conn_maybe_free(c);
}

bool
httpd_stream_begin(struct httpd_conn *c, int status, const char *hdrs, size_t hlen, bool close,
                   const struct httpd_stream_cb *cb, void *arg)
{
	const struct http_parse_head *h = &c->req.head;
	/* HTTP/1.0 has no chunked coding: its body ends at the close */
	bool chunked = h->minor >= 1;
	bool keep = chunked && !close && !c->close_after && h->keep_alive && c->state == HC_ACTIVE;
	char *p;

	if (c->fd < 0) {
		c->req_active = false;
		httpd_conn_maybe_free(c);
		return false;
	}
	p = httpd_head(c, status, hdrs, hlen, chunked ? "Transfer-Encoding: chunked\r\n" : "", keep,
	               0);
	httpd_conn_write(c, c->hbuf, (size_t)(p - c->hbuf), NULL, 0, NULL);
	if (h->mcode == HTTP_PARSE_HEAD || c->fd < 0) {
		/* the head is the whole answer (or the client has gone) */
		c->req_active = false;
		httpd_conn_answered(c, keep, true);
		return false;
	}
	c->state = HC_STREAM;
	c->streaming = true;
	c->stream_chunked = chunked;
	c->stream_keep = keep;
	c->scb = *cb;
	c->sarg = arg;
	if (c->ev_sgone == NULL)
		c->ev_sgone = event_new(c->d->base, -1, 0, httpd_stream_gone_cb, c);
	return true;
}

bool
httpd_stream_writev(struct httpd_conn *c, const struct iovec *iov, int n)
{
	struct iovec v[HTTPD_STREAM_MAXIOV + 2];
	char size[24];
	size_t total = 0;
	int k = 0;

	if (!c->streaming || c->fd < 0)
		return false;
	if (n > HTTPD_STREAM_MAXIOV)
		fatalx("httpd_stream_writev: %d pieces", n);
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (total == 0)
		return true; /* a chunk of size 0 would end the body */
	if (c->stream_chunked) {
		v[k].iov_base = size;
		v[k++].iov_len = (size_t)snprintf(size, sizeof size, "%zx\r\n", total);
	}
	for (int i = 0; i < n; i++)
		v[k++] = iov[i];
	if (c->stream_chunked) {
		v[k].iov_base = (void *)(uintptr_t) "\r\n";
		v[k++].iov_len = 2;
	}
	httpd_conn_writev(c, v, k);
	return c->fd >= 0;
}

bool
httpd_stream_write(struct httpd_conn *c, const char *p, size_t n)
{
	struct iovec v = {(void *)(uintptr_t)p, n};

	return httpd_stream_writev(c, &v, 1);
}

size_t
httpd_stream_pending(const struct httpd_conn *c)
{
	return c->fd >= 0 ? c->out_len - c->out_pos : 0;
}

void
httpd_stream_end(struct httpd_conn *c, bool ok)
{
	if (!c->streaming)
		return;
	c->streaming = false;
	c->req_active = false;
	if (c->ev_sgone)
		event_del(c->ev_sgone);
	if (c->fd >= 0 && !ok) {
		/* a reset, not a close: an HTTP/1.0 body ends at the close, and
		 * a chunked one must not look complete either */
		struct linger lg = {1, 0};

		(void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		c->out_pos = c->out_len = 0;
		httpd_conn_close(c);
	}
	if (c->fd < 0) {
		httpd_conn_maybe_free(c);
		return;
	}
	if (c->stream_chunked)
		httpd_conn_write(c, "0\r\n\r\n", 5, NULL, 0, NULL);
	if (c->out_pos == c->out_len)
		httpd_shrink(&c->out, &c->out_cap);
	httpd_conn_answered(c, c->stream_keep, true);
}

void
httpd_drop(struct httpd_conn *c)
{
	c->req_active = false;
	if (c->fd >= 0) {
		/* not gone after all (cannot happen): end it */
		httpd_conn_close(c);
	}
	httpd_conn_maybe_free(c);
}

/* ---- server ---- */

static void
httpd_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                void *arg)
{
	struct httpd *d = arg;
	struct httpd_conn *c = xcalloc(1, sizeof *c + d->cb.ctx_size);
	int one = 1;

	(void)l;
	(void)salen;
	if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->d = d;
	c->fd = fd;
	c->state = HC_HEAD;
	c->tick = d->tick;
	/* edge-triggered: epoll does not poll a socket again after reporting
	 * it until new data arrives (a level-triggered one is polled on every
	 * epoll_wait after each report) */
	c->ev_read = event_new(d->base, fd, EV_READ | EV_PERSIST | EV_ET, httpd_conn_read_cb, c);
	c->ev_write = event_new(d->base, fd, EV_WRITE | EV_PERSIST | EV_ET, httpd_conn_write_cb, c);
	if (c->ev_read == NULL || c->ev_write == NULL)
		fatalx("event_new failed");
	c->next = d->conns;
	if (d->conns)
		d->conns->prev = c;
	d->conns = c;
	event_add(c->ev_read, NULL);
}

static void
httpd_accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct httpd *d = arg;

	log_warn("accept");
	/* e.g. out of file descriptors: try again on the next tick instead of
	 * spinning on a listening socket that stays readable */
	evconnlistener_disable(l);
	d->listen_paused = true;
}

/* Once a second: timeouts (R9.1: slow and idle clients cannot hold the
 * daemon's connections for ever). */
static void
httpd_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct httpd *d = arg;
	struct httpd_conn *c, *next;

	(void)fd;
	(void)what;
	d->tick++;
	if (d->listen_paused && d->listener) {
		d->listen_paused = false;
		evconnlistener_enable(d->listener);
	}
	for (c = d->conns; c != NULL; c = next) {
		uint64_t age = d->tick - c->tick;
		bool expired;

		next = c->next;
		switch (c->state) {
		case HC_HEAD:  /* idle, or a request not complete */
		case HC_BODY:  /* body not complete */
		case HC_FLUSH: /* the client does not read its answer */
			expired = age > (uint64_t)d->timeout;
			break;
		case HC_LINGER:
			expired = age >= HTTPD_LINGER_TICKS;
			break;
		case HC_ACTIVE:
		case HC_STREAM:
			/* the layer above answers; but an answer it queued must move */
			expired = c->out_pos < c->out_len && age > (uint64_t)d->timeout;
			break;
		default:
			expired = false;
			break;
		}
		if (!expired)
			continue;
		if (c->state != HC_LINGER)
			log_debug("http: closing a connection after %d s without progress",
			          d->timeout);
		httpd_conn_close(c);
		httpd_conn_maybe_free(c);
	}
}

struct httpd *
httpd_new(struct event_base *base, const struct httpd_callbacks *cb)
{
	struct httpd *d = xcalloc(1, sizeof *d);
	struct timeval tv = {1, 0};

	d->base = base;
	d->cb = *cb;
	d->max_body = 1024 * 1024;
	d->timeout = 30;
	d->ev_tick = event_new(base, -1, EV_PERSIST, httpd_tick_cb, d);
	event_add(d->ev_tick, &tv);
	return d;
}

void
httpd_set_limits(struct httpd *d, size_t max_body, int request_timeout)
{
	d->max_body = max_body;
	d->timeout = request_timeout > 0 ? request_timeout : 1;
}

size_t
httpd_nconns(const struct httpd *d)
{
	return d->nconns;
}

int
httpd_listen(struct httpd *d, const char *host, int port)
{
	struct addrinfo hints, *res = NULL;
	char portstr[16];
	int rc;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(portstr, sizeof portstr, "%d", port);
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		log_warnx("cannot resolve %s: %s", host, gai_strerror(rc));
		return -1;
	}
	d->listener = evconnlistener_new_bind(d->base, httpd_accept_cb, d,
	                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
	                                          LEV_OPT_REUSEABLE,
	                                      HTTPD_BACKLOG, res->ai_addr, (int)res->ai_addrlen);
	freeaddrinfo(res);
	if (d->listener == NULL)
		return -1;
	evconnlistener_set_error_cb(d->listener, httpd_accept_error_cb);
	return 0;
}

void
httpd_stop_listening(struct httpd *d)
{
	if (d->listener) {
		evconnlistener_free(d->listener);
		d->listener = NULL;
	}
}

void
httpd_free(struct httpd *d)
{
	if (d == NULL)
		return;
	httpd_stop_listening(d);
	while (d->conns) {
		struct httpd_conn *c = d->conns;
		if (c->streaming && c->scb.gone) {
			/* its producer lets go of it (and ends it) now */
			c->in_cb = true;
			c->scb.gone(c->sarg);
			c->in_cb = false;
		}
		if (c->fd >= 0) {
			close(c->fd);
			c->fd = -1;
		}
		httpd_conn_free(c);
	}
	event_free(d->ev_tick);
	free(d);
}
