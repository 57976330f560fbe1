/* loadgen.c: fixed-rate HTTP/1.1 load for bench/authorize (issue 3).
 *
 * Sends POST /v1/authorize {"account":"ext:b<random 1..N>","amount":"0.01"}
 * at a fixed total rate R over C kept-alive connections, one request at a
 * time per connection (no pipelining). Request k of connection i is due at
 * t0 + (i + k*C) / R, so the whole stream is evenly spaced at R a second. A
 * request's latency runs from the time it was due, not from when it was
 * sent: one that waits because its connection is still busy with the
 * previous answer, or because this program woke late, counts the wait (no
 * "coordinated omission", the wrk2 method). Every latency after the warm-up
 * is kept and sorted, so the percentiles are exact, not bucketed.
 *
 * Built by bench/authorize with the system C compiler; not part of the
 * daemon. Prints one JSON object on stdout.
 *
 * usage: loadgen -p PORT -r RATE -c CONNS -d SECONDS [-w WARMUP_SECONDS]
 *                [-a ACCOUNTS] [-t TOKEN] [-H HOST] [-s SEED] [-T TRACEFILE]
 *
 * -T writes each recorded request slower than 1 ms, and each send more than
 * 200 us late, with its CLOCK_MONOTONIC times (to match `perf record -k
 * CLOCK_MONOTONIC` timelines).
 */
#include <sys/prctl.h>
#include <sys/resource.h>

#include "httpload.h"

#define RBUF 16384
#define DRAIN_NS (2 * 1000000000LL) /* wait this long after the end for answers */

struct conn {
	int fd;
	int64_t due;     /* due time of the request in flight, or of the next one */
	int64_t idle_at; /* when the connection became free */
	int busy;        /* a request is in flight */
	size_t rlen;
	char rbuf[RBUF];
	char req[512];
	size_t reqlen, reqoff;
	int64_t sent_at; /* when the request in flight was written */
};

struct vec {
	uint32_t *v;
	size_t n, cap;
};

static struct {
	const char *host, *token;
	int port, conns;
	double rate, seconds, warmup;
	long accounts;
	uint64_t seed;
} opt = {"127.0.0.1", "", 0, 50, 30000, 15, 2, 100000, 1};

static struct {
	uint64_t sent, done, ok2xx, non2xx, allowed, not_allowed, errors, lost, reconnects;
	uint64_t rec_done; /* answered among the recorded (due after the warm-up) */
} st;

/* -T FILE: requests that took longer than 1 ms and sends more than 200 us
 * late (CLOCK_MONOTONIC ns), for matching with perf's timeline */
struct slow {
	int64_t due, sent, done;
	int conn;
};
static struct slow *slows;
static size_t nslow, capslow;
static const char *trace_path;

static void
slow_push(int64_t due, int64_t sent, int64_t done, int conn)
{
	if (trace_path == NULL)
		return;
	if (nslow == capslow) {
		capslow = capslow ? capslow * 2 : 4096;
		slows = realloc(slows, capslow * sizeof *slows);
		if (slows == NULL)
			exit(2);
	}
	slows[nslow++] = (struct slow){due, sent, done, conn};
}

static int epfd;
static struct conn *cbase;
static int64_t t_rec; /* requests due from here on are recorded */
static struct vec lat, lag;

static void
vec_push(struct vec *v, int64_t ns)
{
	if (v->n == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 1 << 16;
		v->v = realloc(v->v, v->cap * sizeof *v->v);
		if (v->v == NULL)
			die("realloc");
	}
	v->v[v->n++] = ns < 0 ? 0 : ns > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

/* The value at quantile q (nearest rank), in microseconds. */
static double
pct(const struct vec *v, double q)
{
	size_t i;

	if (v->n == 0)
		return 0;
	i = (size_t)(q * (double)v->n);
	if (i >= v->n)
		i = v->n - 1;
	return v->v[i] / 1000.0;
}

static uint64_t
rnd(void)
{
	uint64_t x = opt.seed;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	opt.seed = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static void
conn_open(struct conn *c)
{
	c->fd = httpload_open(opt.host, opt.port, epfd, c);
	c->rlen = 0;
}

static void conn_reopen(struct conn *c);

/* The request in flight will get no answer (connection failed): it counts
 * as never answered. */
static void
conn_lost(struct conn *c, int64_t now, int64_t interval)
{
	st.errors++;
	if (c->busy) {
		st.lost++;
		if (c->due >= t_rec)
			vec_push(&lat, INT64_MAX);
		c->busy = 0;
		c->idle_at = now;
		c->due += interval;
	}
	conn_reopen(c);
}

static void
conn_reopen(struct conn *c)
{
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	st.reconnects++;
	conn_open(c);
}

static void
conn_write(struct conn *c, int64_t now, int64_t interval)
{
	if (httpload_write(epfd, c->fd, c, c->req, c->reqlen, &c->reqoff) < 0)
		conn_lost(c, now, interval);
}

static void
conn_send(struct conn *c, int64_t now, int64_t interval)
{
	char body[96];
	int blen = snprintf(body, sizeof body, "{\"account\":\"ext:b%ld\",\"amount\":\"0.01\"}",
	                    (long)(rnd() % (uint64_t)opt.accounts) + 1);

	c->reqlen = (size_t)snprintf(c->req, sizeof c->req,
	                             "POST /v1/authorize HTTP/1.1\r\nHost: %s:%d\r\n"
	                             "Authorization: Bearer %s\r\n"
	                             "Content-Type: application/json\r\n"
	                             "Content-Length: %d\r\n\r\n%s",
	                             opt.host, opt.port, opt.token, blen, body);
	c->reqoff = 0;
	c->busy = 1;
	st.sent++;
	/* how late this program itself was (the connection was free before due) */
	if (c->due >= t_rec && c->idle_at <= c->due) {
		vec_push(&lag, now - c->due);
		if (now - c->due > 200000)
			slow_push(c->due, now, -1, (int)(c - cbase));
	}
	c->sent_at = now;
	conn_write(c, now, interval);
}

/* Complete answers in c->rbuf; returns -1 on a malformed one. */
static int
conn_parse(struct conn *c, int64_t now, int64_t interval)
{
	int status, done;
	size_t hlen, clen, total;

	while ((done = httpload_answer(c->rbuf, c->rlen, &status, &hlen, &clen)) == 1) {
		total = hlen + clen;
		if (total > RBUF)
			return -1;
		if (!c->busy)
			return -1; /* an answer to nothing */
		st.done++;
		if (status >= 200 && status < 300)
			st.ok2xx++;
		else
			st.non2xx++;
		if (memmem(c->rbuf + hlen, clen, "\"allowed\":true", 14))
			st.allowed++;
		else
			st.not_allowed++;
		if (c->due >= t_rec) {
			vec_push(&lat, now - c->due);
			if (now - c->due > 1000000)
				slow_push(c->due, c->sent_at, now, (int)(c - cbase));
			st.rec_done++;
		}
		c->busy = 0;
		c->idle_at = now;
		c->due += interval;
		memmove(c->rbuf, c->rbuf + total, c->rlen - total);
		c->rlen -= total;
	}
	/* an answer longer than the buffer can never complete */
	return done < 0 || (done == 0 && c->rlen >= RBUF) ? -1 : 0;
}

static void
usage(void)
{
	fprintf(stderr, "usage: loadgen -p PORT -r RATE -c CONNS -d SECONDS [-w WARMUP] "
	                "[-a ACCOUNTS] [-t TOKEN] [-H HOST] [-s SEED] [-T TRACEFILE]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct conn *cs;
	struct epoll_event evs[256];
	struct rusage ru;
	int64_t t0, t_end, interval, unfinished = 0;
	double mean = 0;
	int ch;

	while ((ch = getopt(argc, argv, "p:r:c:d:w:a:t:H:s:T:")) != -1) {
		switch (ch) {
		case 'p':
			opt.port = atoi(optarg);
			break;
		case 'r':
			opt.rate = atof(optarg);
			break;
		case 'c':
			opt.conns = atoi(optarg);
			break;
		case 'd':
			opt.seconds = atof(optarg);
			break;
		case 'w':
			opt.warmup = atof(optarg);
			break;
		case 'a':
			opt.accounts = atol(optarg);
			break;
		case 't':
			opt.token = optarg;
			break;
		case 'H':
			opt.host = optarg;
			break;
		case 'T':
			trace_path = optarg;
			break;
		case 's':
			opt.seed = strtoull(optarg, NULL, 10) | 1;
			break;
		default:
			usage();
		}
	}
	if (opt.port <= 0 || opt.rate <= 0 || opt.conns <= 0 || opt.seconds <= 0 ||
	    opt.accounts <= 0 || opt.warmup < 0)
		usage();
	httpload_prog = "loadgen";
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* wake on time, not up to 50 us late */
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1");
	cs = calloc((size_t)opt.conns, sizeof *cs);
	if (cs == NULL)
		die("calloc");
	cbase = cs;
	for (int i = 0; i < opt.conns; i++)
		conn_open(&cs[i]);
	interval = (int64_t)(1e9 * opt.conns / opt.rate);
	t0 = now_ns() + 1000000;
	t_rec = t0 + (int64_t)(opt.warmup * 1e9);
	t_end = t_rec + (int64_t)(opt.seconds * 1e9);
	for (int i = 0; i < opt.conns; i++) {
		cs[i].due = t0 + (int64_t)(1e9 * i / opt.rate);
		cs[i].idle_at = t0;
	}
	for (;;) {
		int64_t now = now_ns(), next = INT64_MAX;
		int busy = 0, n;
		struct timespec to;

		for (int i = 0; i < opt.conns; i++) {
			struct conn *c = &cs[i];
			if (!c->busy && c->due < t_end && c->due <= now)
				conn_send(c, now, interval);
			if (c->busy)
				busy++;
			else if (c->due < t_end && c->due < next)
				next = c->due;
		}
		if (busy == 0 && next == INT64_MAX)
			break; /* everything due before the end was answered */
		if (now >= t_end + DRAIN_NS) {
			for (int i = 0; i < opt.conns; i++) {
				struct conn *c = &cs[i];
				if (c->due < t_end) /* in flight or not even sent */
					unfinished += (t_end - c->due + interval - 1) / interval;
			}
			break;
		}
		if (next == INT64_MAX || next > t_end + DRAIN_NS)
			next = t_end + DRAIN_NS;
		to.tv_sec = next > now ? (next - now) / 1000000000LL : 0;
		to.tv_nsec = next > now ? (next - now) % 1000000000LL : 0;
		n = epoll_pwait2(epfd, evs, 256, &to, NULL);
		if (n < 0 && errno != EINTR)
			die("epoll_pwait2");
		now = now_ns();
		for (int k = 0; k < n; k++) {
			struct conn *c = evs[k].data.ptr;
			if (evs[k].events & EPOLLOUT) {
				struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
				epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
				conn_write(c, now, interval);
			}
			if (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
				ssize_t r = read(c->fd, c->rbuf + c->rlen, RBUF - c->rlen);
				if (r > 0) {
					c->rlen += (size_t)r;
					if (conn_parse(c, now, interval) == 0)
						continue;
				} else if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
					continue;
				}
				/* closed, failed or garbled: the request in flight is lost */
				conn_lost(c, now, interval);
			}
		}
	}
	getrusage(RUSAGE_SELF, &ru);
	for (int64_t i = 0; i < unfinished; i++)
		vec_push(&lat, INT64_MAX); /* counted as "never": 4.29 s */
	for (size_t i = 0; i < lat.n; i++)
		mean += lat.v[i];
	mean = lat.n ? mean / (double)lat.n / 1000.0 : 0.0;
	qsort(lat.v, lat.n, sizeof *lat.v, cmp_u32);
	qsort(lag.v, lag.n, sizeof *lag.v, cmp_u32);
	printf("{\"rate\": %.0f, \"connections\": %d, \"seconds\": %.3f, \"warmup\": %.3f, "
	       "\"sent\": %llu, \"done\": %llu, \"recorded\": %zu, \"unfinished\": %lld, "
	       "\"ok2xx\": %llu, \"non2xx\": %llu, \"allowed\": %llu, \"not_allowed\": %llu, "
	       "\"errors\": %llu, \"lost\": %llu, \"reconnects\": %llu, \"achieved_rate\": %.1f, "
	       "\"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f, "
	       "\"p9999_us\": %.1f, \"max_us\": %.1f, \"mean_us\": %.1f, "
	       "\"gen_lag_p99_us\": %.1f, \"gen_lag_max_us\": %.1f, \"gen_cpu_s\": %.3f}\n",
	       opt.rate, opt.conns, opt.seconds, opt.warmup, (unsigned long long)st.sent,
	       (unsigned long long)st.done, lat.n, (long long)unfinished,
	       (unsigned long long)st.ok2xx, (unsigned long long)st.non2xx,
	       (unsigned long long)st.allowed, (unsigned long long)st.not_allowed,
	       (unsigned long long)st.errors, (unsigned long long)st.lost,
	       (unsigned long long)st.reconnects, (double)st.rec_done / opt.seconds,
	       pct(&lat, 0.50), pct(&lat, 0.90), pct(&lat, 0.99), pct(&lat, 0.999),
	       pct(&lat, 0.9999), lat.n ? lat.v[lat.n - 1] / 1000.0 : 0.0, mean, pct(&lag, 0.99),
	       lag.n ? lag.v[lag.n - 1] / 1000.0 : 0.0,
	       (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	           ru.ru_stime.tv_usec / 1e6);
	if (trace_path != NULL) {
		FILE *f = fopen(trace_path, "w");
		if (f == NULL)
			die(trace_path);
		fprintf(f, "# due_ns sent_ns done_ns(-1: a late send) conn\n");
		for (size_t i = 0; i < nslow; i++)
			fprintf(f, "%lld %lld %lld %d\n", (long long)slows[i].due,
			        (long long)slows[i].sent, (long long)slows[i].done, slows[i].conn);
		fclose(f);
	}
	free(slows);
	free(lat.v);
	free(lag.v);
	for (int i = 0; i < opt.conns; i++)
		close(cs[i].fd);
	free(cs);
	close(epfd);
	return 0;
}
