/* eventload.c: closed-loop POST /v1/events load for bench/ingest (issue 3).
 *
 * Reads request bodies built beforehand (one JSON body a line) and sends
 * them over C kept-alive HTTP/1.1 connections, one request at a time per
 * connection (no pipelining): a connection sends the next unsent body as
 * soon as the answer to its previous one is complete. A 503 (queue full) is
 * sent again after 10 ms. Stops when the bodies are used up or the time is
 * over, and waits for the answers in flight.
 *
 * One thread and epoll, so that the load costs the 2-CPU machine as little
 * as it can: the Python threads it replaces used 10 % of a CPU at 35,000
 * events a second, CPU that PostgreSQL and the daemon then lacked.
 *
 * Built by bench/ingest with the system C compiler; not part of the daemon.
 * Prints one JSON object on stdout: accepted events (the sum of the
 * answers' "accepted" counts), requests, 503 retries, wall seconds from the
 * first send to the last answer, latency percentiles (ms, from send to
 * complete answer) and its own CPU seconds.
 *
 * usage: eventload -p PORT -c CONNS -d SECONDS -f BODIES [-t TOKEN] [-H HOST]
 */
#include <sys/resource.h>

#include "httpload.h"

#define RETRY_NS (10 * 1000000LL) /* a 503 is sent again after this */

struct conn {
	int fd;
	int busy;         /* a request is in flight */
	int64_t retry_at; /* > 0: resend body `body` at this time (after a 503) */
	size_t body;      /* index of the body in flight */
	char *req;        /* head + body of the request in flight */
	size_t reqlen, reqoff;
	char *rbuf;
	size_t rlen, rcap;
	int64_t sent_at;
};

static struct {
	const char *host, *token, *file;
	int port, conns;
	double seconds;
} opt = {"127.0.0.1", "", NULL, 0, 16, 10};

static struct {
	uint64_t accepted, requests, retries, non2xx;
	size_t next; /* next unsent body */
} st;

static char **bodies;
static size_t *body_len, nbodies;
static uint32_t *lat; /* microseconds */
static size_t nlat, caplat;
static int epfd;

static void
dief(const char *what)
{
	fprintf(stderr, "eventload: %s\n", what);
	exit(2);
}

static void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (p == NULL)
		die("realloc");
	return p;
}

static void
read_bodies(const char *path)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, cap_b = 0;
	ssize_t n;

	if (f == NULL)
		die(path);
	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if (n == 0)
			continue;
		if (nbodies == cap_b) {
			cap_b = cap_b ? cap_b * 2 : 4096;
			bodies = xrealloc(bodies, cap_b * sizeof *bodies);
			body_len = xrealloc(body_len, cap_b * sizeof *body_len);
		}
		bodies[nbodies] = xrealloc(NULL, (size_t)n + 1);
		memcpy(bodies[nbodies], line, (size_t)n + 1);
		body_len[nbodies++] = (size_t)n;
	}
	free(line);
	fclose(f);
}

static void
conn_write(struct conn *c)
{
	if (httpload_write(epfd, c->fd, c, c->req, c->reqlen, &c->reqoff) < 0)
		die("write");
}

static void
conn_send(struct conn *c, size_t body, int64_t now)
{
	char head[512];
	int hlen = snprintf(head, sizeof head,
	                    "POST /v1/events HTTP/1.1\r\nHost: %s:%d\r\n"
	                    "Authorization: Bearer %s\r\n"
	                    "Content-Type: application/json\r\n"
	                    "Content-Length: %zu\r\n\r\n",
	                    opt.host, opt.port, opt.token, body_len[body]);

	if (hlen < 0 || (size_t)hlen >= sizeof head)
		dief("request head too long");
	c->req = xrealloc(c->req, (size_t)hlen + body_len[body]);
	memcpy(c->req, head, (size_t)hlen);
	memcpy(c->req + hlen, bodies[body], body_len[body]);
	c->reqlen = (size_t)hlen + body_len[body];
	c->reqoff = 0;
	c->body = body;
	c->busy = 1;
	c->retry_at = 0;
	c->sent_at = now;
	st.requests++;
	conn_write(c);
}

/* The value of `"accepted": N` in an answer, or 0. */
static uint64_t
accepted_of(const char *p, size_t n)
{
	const char *k = memmem(p, n, "\"accepted\":", 11);

	if (k == NULL)
		return 0;
	k += 11;
	while (k < p + n && *k == ' ')
		k++;
	return strtoull(k, NULL, 10);
}

/* Handles complete answers in c->rbuf; -1 on a malformed one. */
static int
conn_parse(struct conn *c, int64_t now)
{
	int status, done;
	size_t hlen, clen, total;

	while ((done = httpload_answer(c->rbuf, c->rlen, &status, &hlen, &clen)) == 1) {
		total = hlen + clen;
		if (!c->busy)
			return -1; /* an answer to nothing */
		c->busy = 0;
		if (nlat == caplat) {
			caplat = caplat ? caplat * 2 : 1 << 14;
			lat = xrealloc(lat, caplat * sizeof *lat);
		}
		lat[nlat++] = (uint32_t)((now - c->sent_at) / 1000);
		if (status == 503) {
			st.retries++;
			c->retry_at = now + RETRY_NS;
		} else if (status != 200) {
			fprintf(stderr, "eventload: HTTP %d: %.300s\n", status, c->rbuf + hlen);
			st.non2xx++;
		} else {
			st.accepted += accepted_of(c->rbuf + hlen, clen);
		}
		memmove(c->rbuf, c->rbuf + total, c->rlen - total);
		c->rlen -= total;
	}
	return done;
}

static double
pct_ms(double q)
{
	size_t i = (size_t)(q * (double)nlat);

	if (nlat == 0)
		return 0;
	return lat[i < nlat ? i : nlat - 1] / 1000.0;
}

int
main(int argc, char **argv)
{
	struct conn *cs;
	struct epoll_event evs[64];
	struct rusage ru;
	int64_t t0, t_end, t_last = 0;
	int ch;

	httpload_prog = "eventload";
	while ((ch = getopt(argc, argv, "p:c:d:f:t:H:")) != -1) {
		switch (ch) {
		case 'p':
			opt.port = atoi(optarg);
			break;
		case 'c':
			opt.conns = atoi(optarg);
			break;
		case 'd':
			opt.seconds = atof(optarg);
			break;
		case 'f':
			opt.file = optarg;
			break;
		case 't':
			opt.token = optarg;
			break;
		case 'H':
			opt.host = optarg;
			break;
		default:
			dief("usage: eventload -p PORT -c CONNS -d SECONDS -f BODIES [-t TOKEN] "
			     "[-H HOST]");
		}
	}
	if (opt.port <= 0 || opt.conns <= 0 || opt.seconds <= 0 || opt.file == NULL)
		dief("usage: eventload -p PORT -c CONNS -d SECONDS -f BODIES [-t TOKEN] [-H HOST]");
	read_bodies(opt.file);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1");
	cs = calloc((size_t)opt.conns, sizeof *cs);
	if (cs == NULL)
		die("calloc");
	for (int i = 0; i < opt.conns; i++) {
		cs[i].fd = httpload_open(opt.host, opt.port, epfd, &cs[i]);
		cs[i].rcap = 1 << 16;
		cs[i].rbuf = xrealloc(NULL, cs[i].rcap);
	}
	t0 = now_ns();
	t_end = t0 + (int64_t)(opt.seconds * 1e9);
	for (;;) {
		int64_t now = now_ns(), next = INT64_MAX;
		int busy = 0, n, timeout_ms;

		for (int i = 0; i < opt.conns; i++) {
			struct conn *c = &cs[i];
			if (!c->busy && c->retry_at > 0 && c->retry_at <= now)
				conn_send(c, c->body, now);
			else if (!c->busy && c->retry_at == 0 && now < t_end && st.next < nbodies)
				conn_send(c, st.next++, now);
			if (c->busy)
				busy++;
			else if (c->retry_at > 0 && c->retry_at < next)
				next = c->retry_at;
		}
		if (busy == 0 && next == INT64_MAX)
			break; /* time over or bodies used up, and everything answered */
		timeout_ms = next == INT64_MAX ? 1000 : (int)((next - now) / 1000000 + 1);
		n = epoll_wait(epfd, evs, 64, timeout_ms);
		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		now = now_ns();
		for (int k = 0; k < n; k++) {
			struct conn *c = evs[k].data.ptr;
			if (evs[k].events & EPOLLOUT) {
				struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
				epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
				conn_write(c);
			}
			if (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
				ssize_t r;
				if (c->rcap - c->rlen < 4096) {
					c->rcap *= 2;
					c->rbuf = xrealloc(c->rbuf, c->rcap);
				}
				r = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				if (r <= 0)
					dief("connection closed by the daemon");
				c->rlen += (size_t)r;
				if (conn_parse(c, now) != 0)
					dief("malformed answer");
				t_last = now;
			}
		}
	}
	getrusage(RUSAGE_SELF, &ru);
	qsort(lat, nlat, sizeof *lat, cmp_u32);
	printf("{\"accepted\": %llu, \"requests\": %llu, \"retries\": %llu, \"non2xx\": %llu, "
	       "\"used\": %zu, \"wall\": %.6f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
	       "\"cpu_s\": %.3f}\n",
	       (unsigned long long)st.accepted, (unsigned long long)st.requests,
	       (unsigned long long)st.retries, (unsigned long long)st.non2xx, st.next,
	       (double)(t_last - t0) / 1e9, pct_ms(0.50), pct_ms(0.99),
	       (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	           ru.ru_stime.tv_usec / 1e6);
	for (int i = 0; i < opt.conns; i++) {
		close(cs[i].fd);
		free(cs[i].req);
		free(cs[i].rbuf);
	}
	free(cs);
	for (size_t i = 0; i < nbodies; i++)
		free(bodies[i]);
	free(bodies);
	free(body_len);
	free(lat);
	close(epfd);
	return st.non2xx ? 1 : 0;
}
