/* webhook.c: notification outbox delivery to the webhook (R8.2); see webhook.h. */
#include "webhook.h"

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/util.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "app.h"
#include "backoff.h"
#include "build_config.h"
#include "clock.h"
#include "config.h"
#include "db.h"
#include "http_util.h"
#include "log.h"
#include "xmalloc.h"

#define POLL_SECONDS 1
#define COUNT_EVERY_POLL_BELOW 10000 /* undelivered rows; above: count once per tick */
#define IO_TIMEOUT_SECONDS 10        /* connect, and between bytes */
#define DEADLINE_SECONDS 30          /* a whole request, however slowly it trickles */
#define LEASE_SECONDS "60"           /* claim in the database; longer than the deadline */
#define MAX_RESPONSE_BODY 65536
#define MAX_RESPONSE_HEADERS 16384
#define ERROR_LEN 160
#define SIGNATURE_LEN (7 + 2 * 32 + 1) /* "sha256=" + hex + NUL */
/* Retry delays (R8.2): the ceiling doubles from 1 s up to
 * webhook.max_backoff_seconds; the delay is a random point of its upper half
 * (common/backoff.h), never below 0.5 s */
#define BACKOFF_BASE_MS 1000
#define BACKOFF_MIN_MS 500

enum webhook_state {
	WEBHOOK_DISABLED, /* no (usable) URL configured */
	WEBHOOK_WAITING,  /* URL set, the database not ready yet */
	WEBHOOK_RUNNING,  /* polling every second and delivering */
	WEBHOOK_STOPPED,  /* draining: no new delivery starts */
};

enum slot_state {
	SLOT_IDLE,      /* free */
	SLOT_SENDING,   /* HTTP request in flight */
	SLOT_SENT,      /* answered or failed; webhook_step records the outcome */
	SLOT_RECORDING, /* outcome being written to the database */
};

struct slot {
	struct webhook *wh;
	enum slot_state state;
	struct evhttp_connection *conn; /* kept alive between deliveries */
	unsigned conn_gen;              /* URL generation conn was made for */
	struct event *ev_deadline;
	char id[24];      /* notification id */
	int status;       /* HTTP status; 0 = no answer */
	int head_status;  /* status line of an answer whose head was read; 0 = none */
	bool cancelled;   /* stopped at shutdown; the claim is being released */
	int attempts;     /* failed attempts before this one, as claimed */
	int64_t delay_ms; /* after a failure: until the next attempt */
	char error[ERROR_LEN];
};

struct webhook {
	struct app *app;
	enum webhook_state state;
	bool db_started;
	bool draining;
	bool freed;      /* webhook_free ran; the last database callback frees */
	int db_pending;  /* batches in flight: poll and recordings */
	bool polling;    /* a poll batch is in flight */
	bool poll_again; /* poll as soon as the current one is done */
	bool count_due;  /* the next poll also counts the backlog (once per tick) */
	bool counting;   /* the poll in flight counts it */

	/* the URL, parsed; NULL host = none */
	char *url; /* as configured, to notice changes; never logged */
	char *host;
	char *host_header;
	char *target; /* path and query */
	int port;
	unsigned gen; /* bumped on every URL change */
	struct evdns_base *dns;

	struct event *ev_poll; /* persistent POLL_SECONDS timer (monotonic) */
	struct event *ev_step; /* deferred work, activated by callbacks */
	struct slot slots[WEBHOOK_MAX_INFLIGHT];

	/* metrics */
	uint64_t delivered;
	uint64_t failures;
	uint64_t given_up;
	int64_t pending;      /* undelivered, not given up: last count */
	int64_t dead;         /* given up, in the outbox: last count */
	int64_t last_success; /* unix seconds; 0 = never */

	uint64_t rng; /* backoff_rand state: the retry delays' jitter */
};

static void webhook_kick(struct webhook *wh);

static const char *const webhook_state_names[] = {"disabled", "waiting for the database", "running",
                                                  "stopped"};

/* ---- state ---- */

static void
webhook_set_state(struct webhook *wh, enum webhook_state st)
{
	struct timeval tv = {POLL_SECONDS, 0};

	if (st == wh->state)
		return;
	log_info("webhook: %s", webhook_state_names[st]);
	wh->state = st;
	if (st == WEBHOOK_RUNNING) {
		event_add(wh->ev_poll, &tv);
		wh->count_due = true;
		webhook_kick(wh);
	} else {
		event_del(wh->ev_poll);
	}
}

static void
webhook_update_state(struct webhook *wh)
{
	if (wh->draining)
		webhook_set_state(wh, WEBHOOK_STOPPED);
	else if (wh->host == NULL)
		webhook_set_state(wh, WEBHOOK_DISABLED);
	else if (!wh->db_started)
		webhook_set_state(wh, WEBHOOK_WAITING);
	else
		webhook_set_state(wh, WEBHOOK_RUNNING);
}

/* ---- URL ---- */

static void
webhook_clear_url(struct webhook *wh)
{
	free(wh->url);
	free(wh->host);
	free(wh->host_header);
	free(wh->target);
	wh->url = wh->host = wh->host_header = wh->target = NULL;
	wh->gen++;
	/* connections of busy slots are replaced when the slot is used next */
	for (int i = 0; i < WEBHOOK_MAX_INFLIGHT; i++) {
		struct slot *s = &wh->slots[i];
		if (s->conn != NULL && s->state == SLOT_IDLE) {
			evhttp_connection_free(s->conn);
			s->conn = NULL;
		}
	}
}

static bool
webhook_numeric_host(const char *host)
{
	unsigned char buf[16];

	return evutil_inet_pton(AF_INET, host, buf) == 1 ||
	       evutil_inet_pton(AF_INET6, host, buf) == 1;
}

/* Parse url into wh. Messages never show the URL (it may hold a secret). */
static int
webhook_set_url(struct webhook *wh, const char *url)
{
	struct evhttp_uri *u = evhttp_uri_parse(url);
	const char *scheme, *host, *path, *query;
	int port, rc = -1;
	size_t hlen;

	if (u == NULL) {
		log_errorx("webhook: webhook.url cannot be parsed; webhooks disabled");
		return -1;
	}
	scheme = evhttp_uri_get_scheme(u);
	host = evhttp_uri_get_host(u);
	port = evhttp_uri_get_port(u);
	if (scheme == NULL || strcasecmp(scheme, "http") != 0 || host == NULL || host[0] == '\0' ||
	    port == 0 || port > 65535) {
		log_errorx("webhook: webhook.url needs http://host[:port]/path; webhooks disabled");
		goto out;
	}
	if (evhttp_uri_get_userinfo(u) != NULL)
		log_warnx("webhook: user information in webhook.url is ignored");
	if (port < 0)
		port = 80;
	hlen = strlen(host);
	if (host[0] == '[' && hlen > 2 && host[hlen - 1] == ']')
		wh->host = xstrndup(host + 1, hlen - 2);
	else
		wh->host = xstrdup(host);
	if (!webhook_numeric_host(wh->host) && wh->dns == NULL) {
		wh->dns = evdns_base_new(wh->app->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
		                                            EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (wh->dns == NULL) {
			log_errorx("webhook: no DNS resolver (see /etc/resolv.conf); webhooks "
			           "disabled");
			free(wh->host);
			wh->host = NULL;
			goto out;
		}
	}
	if (port == 80)
		wh->host_header = xstrdup(host);
	else
		xasprintf(&wh->host_header, "%s:%d", host, port);
	path = evhttp_uri_get_path(u);
	if (path == NULL || path[0] == '\0')
		path = "/";
	query = evhttp_uri_get_query(u);
	if (query != NULL)
		xasprintf(&wh->target, "%s?%s", path, query);
	else
		wh->target = xstrdup(path);
	wh->port = port;
	rc = 0;
out:
	evhttp_uri_free(u);
	return rc;
}

/* Take the configured URL if it changed. */
static void
webhook_read_config(struct webhook *wh)
{
	const char *url = wh->app->cfg->webhook_url;

	if (wh->url != NULL && strcmp(wh->url, url) == 0)
		return;
	webhook_clear_url(wh);
	wh->url = xstrdup(url);
	if (url[0] != '\0' && webhook_set_url(wh, url) != 0) {
		free(wh->host);
		free(wh->host_header);
		free(wh->target);
		wh->host = wh->host_header = wh->target = NULL;
	}
}

/* ---- signing ---- */

/* HMAC-SHA256 (RFC 2104) over SHA256(): openssl/hmac.h pulls in pthread.h,
 * whose <sched.h> would be our daemon/sched.h. */
static void
webhook_hmac_sha256(const unsigned char *key, size_t klen, const unsigned char *msg, size_t mlen,
                    unsigned char out[SHA256_DIGEST_LENGTH])
{
	unsigned char k[SHA256_CBLOCK] = {0};
	unsigned char outer[SHA256_CBLOCK + SHA256_DIGEST_LENGTH];
	unsigned char *inner;
	size_t n;

	if (klen > SHA256_CBLOCK)
		SHA256(key, klen, k);
	else
		memcpy(k, key, klen);
	if (__builtin_add_overflow(mlen, (size_t)SHA256_CBLOCK, &n))
		fatalx("webhook: message too long");
	inner = xmalloc(n);
	for (int i = 0; i < SHA256_CBLOCK; i++) {
		inner[i] = k[i] ^ 0x36;
		outer[i] = k[i] ^ 0x5c;
	}
	memcpy(inner + SHA256_CBLOCK, msg, mlen);
	SHA256(inner, n, outer + SHA256_CBLOCK);
	SHA256(outer, sizeof outer, out);
	free(inner);
}

/* "sha256=" + hex HMAC-SHA256(secret, ts "." body). */
static void
webhook_sign(const char *secret, const char *ts, const char *body, char out[SIGNATURE_LEN])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char mac[SHA256_DIGEST_LENGTH];
	size_t tl = strlen(ts), bl = strlen(body), n;
	unsigned char *msg;

	if (__builtin_add_overflow(tl, bl, &n) || __builtin_add_overflow(n, (size_t)1, &n))
		fatalx("webhook: message too long");
	msg = xmalloc(n);
	memcpy(msg, ts, tl);
	msg[tl] = '.';
	memcpy(msg + tl + 1, body, bl);
	webhook_hmac_sha256((const unsigned char *)secret, strlen(secret), msg, n, mac);
	free(msg);
	memcpy(out, "sha256=", 7);
	for (size_t i = 0; i < sizeof mac; i++) {
		out[7 + 2 * i] = hex[mac[i] >> 4];
		out[7 + 2 * i + 1] = hex[mac[i] & 0xf];
	}
	out[7 + 2 * sizeof mac] = '\0';
}

/* ---- one delivery ---- */

static void
slot_finish(struct slot *s)
{
	event_del(s->ev_deadline);
	/* R8.2: a 2xx status line is the receiver's acceptance. What follows it
	 * (an answer body over MAX_RESPONSE_BODY, a body that trickles past the
	 * deadline or is cut off) is never used, so it does not turn the
	 * delivery into a failure that would send it again and again. */
	if (s->status == 0 && s->head_status >= 200 && s->head_status <= 299) {
		s->status = s->head_status;
		s->error[0] = '\0';
	}
	if (s->status == 0 && s->error[0] == '\0')
		snprintf(s->error, sizeof s->error, "connection failed");
	else if (s->status != 0 && (s->status < 200 || s->status > 299))
		snprintf(s->error, sizeof s->error, "HTTP %d", s->status);
	s->state = SLOT_SENT;
	event_active(s->wh->ev_step, EV_TIMEOUT, 1);
}

/* evhttp: called before slot_done when the request failed. */
static void
slot_error_cb(enum evhttp_request_error err, void *arg)
{
	struct slot *s = arg;
	const char *what = "connection failed";

	switch (err) {
	case EVREQ_HTTP_TIMEOUT:
		what = "timed out";
		break;
	case EVREQ_HTTP_EOF:
		what = "connection failed or closed before the answer";
		break;
	case EVREQ_HTTP_INVALID_HEADER:
		what = "invalid answer";
		break;
	case EVREQ_HTTP_BUFFER_ERROR:
		what = "connection error";
		break;
	case EVREQ_HTTP_REQUEST_CANCEL:
		what = "cancelled";
		break;
	case EVREQ_HTTP_DATA_TOO_LONG:
		what = "answer too long";
		break;
	}
	snprintf(s->error, sizeof s->error, "%s", what);
}

/* evhttp: the answer's status line and headers are read (before its body). */
static int
slot_header_cb(struct evhttp_request *req, void *arg)
{
	struct slot *s = arg;

	if (s->state == SLOT_SENDING)
		s->head_status = evhttp_request_get_response_code(req);
	return 0;
}

/* evhttp: the answer (req == NULL or status 0 on failure). Only notes the
 * outcome: the connection is still inside its own callback here. */
static void
slot_done_cb(struct evhttp_request *req, void *arg)
{
	struct slot *s = arg;

	if (s->state != SLOT_SENDING)
		return;
	s->status = req != NULL ? evhttp_request_get_response_code(req) : 0;
	slot_finish(s);
}

static void
slot_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct slot *s = arg;

	(void)fd;
	(void)what;
	if (s->state != SLOT_SENDING)
		return;
	/* frees the request without calling back */
	evhttp_connection_free(s->conn);
	s->conn = NULL;
	s->status = 0;
	snprintf(s->error, sizeof s->error, "timed out");
	slot_finish(s);
}

static struct evhttp_connection *
slot_conn(struct slot *s)
{
	struct webhook *wh = s->wh;

	if (s->conn != NULL && s->conn_gen != wh->gen) {
		evhttp_connection_free(s->conn);
		s->conn = NULL;
	}
	if (s->conn == NULL) {
		s->conn = evhttp_connection_base_new(wh->app->base, wh->dns, wh->host,
		                                     (unsigned short)wh->port);
		if (s->conn == NULL)
			return NULL;
		evhttp_connection_set_timeout(s->conn, IO_TIMEOUT_SECONDS);
		evhttp_connection_set_retries(s->conn, 0);
		evhttp_connection_set_max_body_size(s->conn, MAX_RESPONSE_BODY);
		evhttp_connection_set_max_headers_size(s->conn, MAX_RESPONSE_HEADERS);
		s->conn_gen = wh->gen;
	}
	return s->conn;
}

/* The body: the item GET /v1/notifications lists. */
static char *
notification_body(const PGresult *pg, int row)
{
	json_t *o = json_object();
	char *body;

	json_object_set_new(o, "id", j_text_col(pg, row, col(pg, "id")));
	json_object_set_new(o, "kind", j_text_col(pg, row, col(pg, "kind")));
	json_object_set_new(o, "account", j_text_col(pg, row, col(pg, "account_id")));
	json_object_set_new(o, "created_at", j_ts_col(pg, row, col(pg, "created_us")));
	json_object_set_new(o, "payload", j_json_col(pg, row, col(pg, "payload")));
	body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (body == NULL)
		fatalx("webhook: out of memory");
	return body;
}

static void
slot_send(struct slot *s, const PGresult *pg, int row)
{
	struct webhook *wh = s->wh;
	struct evhttp_connection *conn;
	struct evhttp_request *req;
	struct evkeyvalq *h;
	struct timeval deadline = {DEADLINE_SECONDS, 0};
	char ts[24], sig[SIGNATURE_LEN], len[24];
	char *body = notification_body(pg, row);
	size_t blen = strlen(body);

	snprintf(s->id, sizeof s->id, "%s", PQgetvalue(pg, row, col(pg, "id")));
	s->attempts = atoi(PQgetvalue(pg, row, col(pg, "attempts")));
	snprintf(ts, sizeof ts, "%" PRId64, clock_wall() / INT64_C(1000000));
	snprintf(len, sizeof len, "%zu", blen);
	webhook_sign(wh->app->cfg->webhook_secret, ts, body, sig);
	s->status = 0;
	s->head_status = 0;
	s->error[0] = '\0';
	s->cancelled = false;
	s->state = SLOT_SENDING;
	event_add(s->ev_deadline, &deadline);

	conn = slot_conn(s);
	if (conn == NULL) {
		free(body);
		slot_finish(s);
		return;
	}
	req = evhttp_request_new(slot_done_cb, s);
	evhttp_request_set_error_cb(req, slot_error_cb);
	evhttp_request_set_header_cb(req, slot_header_cb);
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", wh->host_header);
	evhttp_add_header(h, "User-Agent", "creditd/" CREDITD_VERSION);
	evhttp_add_header(h, "Content-Type", "application/json");
	/* one request per TCP connection: a kept-alive connection that the
	 * receiver closes while the next request is sent would count as a failed
	 * attempt; libevent reconnects the same connection object next time */
	evhttp_add_header(h, "Connection", "close");
	evhttp_add_header(h, "Content-Length", len);
	evhttp_add_header(h, "X-Creditd-Delivery", s->id);
	evhttp_add_header(h, "X-Creditd-Timestamp", ts);
	evhttp_add_header(h, "X-Creditd-Signature", sig);
	evbuffer_add(evhttp_request_get_output_buffer(req), body, blen);
	free(body);
	/* A refused connection may call slot_done_cb before this returns. On -1
	 * libevent has dropped the request (freeing it on some paths only: we
	 * leave it rather than risk a double free on this nearly impossible path). */
	if (evhttp_make_request(conn, req, EVHTTP_REQ_POST, wh->target) != 0 &&
	    s->state == SLOT_SENDING) {
		snprintf(s->error, sizeof s->error, "cannot start the request");
		slot_finish(s);
	}
}

/* ---- recording the outcome ---- */

static void
webhook_release(struct webhook *wh)
{
	if (--wh->db_pending == 0 && wh->freed)
		free(wh);
}

static void
slot_recorded_cb(const struct db_result *res, void *arg)
{
	struct slot *s = arg;
	struct webhook *wh = s->wh;

	if (wh->freed) {
		webhook_release(wh);
		return;
	}
	if (!db_result_ok(res)) {
		/* the lease runs out and it is sent again: at least once */
		log_warnx("webhook: recording notification %s failed: %s", s->id,
		          db_result_error(res));
	} else if (!s->cancelled && (s->status < 200 || s->status > 299)) {
		const PGresult *pg = db_result_get(res, 0);
		if (PQntuples(pg) == 1 && strcmp(PQgetvalue(pg, 0, 0), "t") == 0) {
			wh->given_up++;
			log_warnx("webhook: notification %s: gave up after %s attempts (%s)", s->id,
			          PQgetvalue(pg, 0, 1), s->error);
		} else if (PQntuples(pg) == 1) {
			log_warnx("webhook: notification %s attempt %s failed (%s); next in "
			          "%" PRId64 ".%03" PRId64 " s",
			          s->id, PQgetvalue(pg, 0, 1), s->error, s->delay_ms / 1000,
			          s->delay_ms % 1000);
		}
	}
	s->state = SLOT_IDLE;
	webhook_release(wh);
	webhook_kick(wh);
}

static const char webhook_delivered_sql[] =
    "UPDATE notifications SET delivered_at = now(), attempts = attempts + 1, "
    "next_attempt_at = NULL WHERE id = $1::bigint AND delivered_at IS NULL";

/* Backoff: $4 ms, the jittered delay of slot_record (R8.2). */
static const char webhook_failed_sql[] =
    "UPDATE notifications SET attempts = attempts + 1, "
    "last_error = CASE WHEN attempts + 1 >= $3::int "
    "  THEN 'gave up after ' || (attempts + 1) || ' attempts: ' || $2 ELSE $2 END, "
    "next_attempt_at = CASE WHEN attempts + 1 >= $3::int THEN 'infinity'::timestamptz "
    "  ELSE now() + $4::bigint * interval '1 millisecond' END "
    "WHERE id = $1::bigint AND delivered_at IS NULL "
    "RETURNING next_attempt_at = 'infinity', attempts";

static void
slot_record(struct slot *s)
{
	struct webhook *wh = s->wh;
	const struct config *cfg = wh->app->cfg;
	struct db_batch *b = db_batch_new();

	if (s->status >= 200 && s->status <= 299) {
		const char *p[] = {s->id};
		wh->delivered++;
		wh->last_success = clock_wall() / INT64_C(1000000);
		db_batch_add(b, webhook_delivered_sql, 1, p);
	} else {
		/* R8.2: exponential, with jitter so that deliveries that failed
		 * together (a receiver down) are not retried in lock-step */
		const struct backoff bo = {BACKOFF_BASE_MS, BACKOFF_MIN_MS,
		                           (int64_t)cfg->webhook_max_backoff_seconds * 1000};
		char max[16], delay[24];
		s->delay_ms = backoff_delay_ms(&bo, s->attempts, backoff_rand(&wh->rng));
		snprintf(max, sizeof max, "%d", cfg->webhook_max_attempts);
		snprintf(delay, sizeof delay, "%" PRId64, s->delay_ms);
		const char *p[] = {s->id, s->error, max, delay};
		wh->failures++;
		db_batch_add(b, webhook_failed_sql, 4, p);
	}
	s->state = SLOT_RECORDING;
	wh->db_pending++;
	if (db_submit(wh->app->db, b, slot_recorded_cb, s) != 0) {
		wh->db_pending--;
		s->state = SLOT_IDLE;
		log_warnx("webhook: notification %s: database unavailable; it is sent again later",
		          s->id);
	}
}

/* Shutdown: stop a request in flight and release its claim, so that the
 * next daemon sends it again at once (the receiver may have it already: at
 * least once). */
static void
slot_cancel(struct slot *s)
{
	struct webhook *wh = s->wh;
	const char *p[] = {s->id};
	struct db_batch *b;

	/* frees the request without calling back */
	evhttp_connection_free(s->conn);
	s->conn = NULL;
	event_del(s->ev_deadline);
	s->cancelled = true;
	b = db_batch_new();
	db_batch_add(b,
	             "UPDATE notifications SET next_attempt_at = NULL "
	             "WHERE id = $1::bigint AND delivered_at IS NULL",
	             1, p);
	s->state = SLOT_RECORDING;
	wh->db_pending++;
	if (db_submit(wh->app->db, b, slot_recorded_cb, s) != 0) {
		wh->db_pending--;
		s->state = SLOT_IDLE;
	}
}

/* ---- polling ---- */

/* The oldest undelivered, not given-up notification of each account is its
 * head; due heads are claimed with a lease, oldest first. The outbox is
 * walked in id order (notifications_undelivered) and a row is a head when no
 * earlier undelivered, not given-up row of its account exists (an index probe
 * in notifications_undelivered_account): the walk stops at $1 due heads
 * instead of first grouping every undelivered row by account, which cost
 * 0.6 s per poll with 200,000 undelivered rows (one invoice run of 100,000
 * accounts) against 7 ms this way. Every notification has an account. */
static const char webhook_claim_sql[] =
    "WITH due AS ("
    "  SELECT n.id FROM notifications n"
    "  WHERE n.delivered_at IS NULL"
    "  AND (n.next_attempt_at IS NULL OR n.next_attempt_at <= now())"
    "  AND NOT EXISTS (SELECT 1 FROM notifications p"
    "    WHERE p.account_id = n.account_id AND p.delivered_at IS NULL AND p.id < n.id"
    "    AND p.next_attempt_at IS DISTINCT FROM 'infinity')"
    "  ORDER BY n.id LIMIT $1::int), "
    "claimed AS (UPDATE notifications n"
    "  SET next_attempt_at = now() + make_interval(secs => $2::int) FROM due"
    "  WHERE n.id = due.id AND n.delivered_at IS NULL"
    "  AND (n.next_attempt_at IS NULL OR n.next_attempt_at <= now())"
    "  RETURNING n.id, n.kind, n.account_id, n.attempts, creditd_us(n.created_at) AS created_us,"
    "  creditd_payload_out(n.payload, n.account_id) AS payload) "
    "SELECT * FROM claimed ORDER BY id";

static const char webhook_count_sql[] =
    "SELECT count(*) FILTER (WHERE next_attempt_at IS DISTINCT FROM 'infinity'), "
    "count(*) FILTER (WHERE next_attempt_at = 'infinity') FROM notifications "
    "WHERE delivered_at IS NULL";

static struct slot *
webhook_idle_slot(struct webhook *wh)
{
	for (int i = 0; i < WEBHOOK_MAX_INFLIGHT; i++)
		if (wh->slots[i].state == SLOT_IDLE)
			return &wh->slots[i];
	return NULL;
}

static void
webhook_unclaimed_cb(const struct db_result *res, void *arg)
{
	struct webhook *wh = arg;

	if (!wh->freed && !db_result_ok(res))
		log_warnx("webhook: releasing claims failed: %s", db_result_error(res));
	webhook_release(wh);
}

/* Release the claims on rows from..end of pg (they are due again at once). */
static void
webhook_unclaim(struct webhook *wh, const PGresult *pg, int from)
{
	struct evbuffer *ids = evbuffer_new();
	struct db_batch *b;
	size_t len;

	evbuffer_add(ids, "{", 1);
	for (int i = from; i < PQntuples(pg); i++)
		evbuffer_add_printf(ids, "%s%s", i > from ? "," : "",
		                    PQgetvalue(pg, i, col(pg, "id")));
	evbuffer_add(ids, "}", 2); /* with the NUL */
	len = evbuffer_get_length(ids);
	const char *p[] = {(const char *)evbuffer_pullup(ids, (ev_ssize_t)len)};
	b = db_batch_new();
	db_batch_add(b,
	             "UPDATE notifications SET next_attempt_at = NULL "
	             "WHERE id = ANY ($1::bigint[]) AND delivered_at IS NULL",
	             1, p);
	evbuffer_free(ids);
	wh->db_pending++;
	if (db_submit(wh->app->db, b, webhook_unclaimed_cb, wh) != 0)
		wh->db_pending--;
}

static void
webhook_poll_cb(const struct db_result *res, void *arg)
{
	struct webhook *wh = arg;

	wh->polling = false;
	if (wh->freed) {
		webhook_release(wh);
		return;
	}
	if (!db_result_ok(res)) {
		if (!db_result_unavailable(res))
			log_warnx("webhook: polling the outbox failed: %s", db_result_error(res));
	} else {
		const PGresult *pg = db_result_get(res, 0);
		if (wh->counting) {
			const PGresult *cnt = db_result_get(res, 1);
			wh->pending = col_i64(cnt, 0, 0);
			wh->dead = col_i64(cnt, 0, 1);
		}
		int i = 0;
		for (; i < PQntuples(pg) && wh->state == WEBHOOK_RUNNING; i++) {
			struct slot *s = webhook_idle_slot(wh);
			if (s == NULL)
				break;
			slot_send(s, pg, i);
		}
		/* stopped or disabled meanwhile: give the claims back */
		if (i < PQntuples(pg))
			webhook_unclaim(wh, pg, i);
	}
	/* read before the release, which frees wh once it is freed and idle */
	bool again = wh->poll_again && !wh->freed;
	webhook_release(wh);
	if (again)
		event_active(wh->ev_step, EV_TIMEOUT, 1);
}

static void
webhook_poll(struct webhook *wh)
{
	struct db_batch *b;
	int idle = 0;
	char lim[16];

	if (wh->state != WEBHOOK_RUNNING || wh->app->draining || !db_ready(wh->app->db))
		return;
	if (wh->polling) {
		wh->poll_again = true;
		return;
	}
	for (int i = 0; i < WEBHOOK_MAX_INFLIGHT; i++)
		if (wh->slots[i].state == SLOT_IDLE)
			idle++;
	if (idle == 0)
		return; /* a finishing delivery polls again */
	snprintf(lim, sizeof lim, "%d", idle);
	const char *p[] = {lim, LEASE_SECONDS};
	b = db_batch_new();
	db_batch_add(b, webhook_claim_sql, 2, p);
	/* The metrics' count reads every undelivered row (65 ms at 200,000):
	 * with a large outbox once per POLL_SECONDS tick, not on each of the
	 * polls that every finished delivery asks for, which it would pace. */
	wh->counting = wh->count_due || wh->pending + wh->dead < COUNT_EVERY_POLL_BELOW;
	wh->count_due = false;
	if (wh->counting)
		db_batch_add(b, webhook_count_sql, 0, NULL);
	wh->polling = true;
	wh->poll_again = false;
	wh->db_pending++;
	if (db_submit(wh->app->db, b, webhook_poll_cb, wh) != 0) {
		wh->polling = false;
		wh->db_pending--;
		wh->count_due = wh->counting; /* count with the next poll then */
	}
}

/* Deferred work: record finished deliveries, then poll if asked to. */
static void
webhook_step_cb(evutil_socket_t fd, short what, void *arg)
{
	struct webhook *wh = arg;

	(void)fd;
	(void)what;
	for (int i = 0; i < WEBHOOK_MAX_INFLIGHT; i++)
		if (wh->slots[i].state == SLOT_SENT)
			slot_record(&wh->slots[i]);
	if (wh->poll_again)
		webhook_poll(wh);
}

/* Poll soon (from the loop, not from the caller's stack). */
static void
webhook_kick(struct webhook *wh)
{
	wh->poll_again = true;
	event_active(wh->ev_step, EV_TIMEOUT, 1);
}

static void
webhook_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct webhook *wh = arg;

	(void)fd;
	(void)what;
	wh->count_due = true;
	webhook_kick(wh);
}

/* ---- life cycle ---- */

struct webhook *
webhook_new(struct app *app)
{
	struct webhook *wh = xcalloc(1, sizeof *wh);

	wh->app = app;
	wh->state = WEBHOOK_DISABLED;
	/* a seed of its own per daemon: several daemons' retries spread too */
	if (getrandom(&wh->rng, sizeof wh->rng, GRND_NONBLOCK) != (ssize_t)sizeof wh->rng)
		wh->rng = (uint64_t)clock_wall() ^ ((uint64_t)getpid() << 32);
	wh->ev_poll = event_new(app->base, -1, EV_PERSIST, webhook_tick_cb, wh);
	wh->ev_step = event_new(app->base, -1, 0, webhook_step_cb, wh);
	for (int i = 0; i < WEBHOOK_MAX_INFLIGHT; i++) {
		struct slot *s = &wh->slots[i];
		s->wh = wh;
		s->ev_deadline = evtimer_new(app->base, slot_deadline_cb, s);
	}
	webhook_read_config(wh);
	webhook_update_state(wh);
	return wh;
}

void
webhook_free(struct webhook *wh)
{
	if (wh == NULL)
		return;
	for (int i = 0; i < WEBHOOK_MAX_INFLIGHT; i++) {
		struct slot *s = &wh->slots[i];
		/* frees a request in flight without calling back */
		if (s->conn != NULL)
			evhttp_connection_free(s->conn);
		s->conn = NULL;
		event_free(s->ev_deadline);
	}
	event_free(wh->ev_poll);
	event_free(wh->ev_step);
	if (wh->dns != NULL)
		evdns_base_free(wh->dns, 1);
	free(wh->url);
	free(wh->host);
	free(wh->host_header);
	free(wh->target);
	/* database callbacks still to come (db_free answers them) free it */
	wh->freed = true;
	if (wh->db_pending == 0)
		free(wh);
}

void
webhook_start(struct webhook *wh)
{
	wh->db_started = true;
	webhook_update_state(wh);
}

void
webhook_config_changed(struct webhook *wh)
{
	webhook_read_config(wh);
	webhook_update_state(wh);
}

void
webhook_drain(struct webhook *wh)
{
	wh->draining = true;
	webhook_update_state(wh);
	for (int i = 0; i < WEBHOOK_MAX_INFLIGHT; i++)
		if (wh->slots[i].state == SLOT_SENDING)
			slot_cancel(&wh->slots[i]);
}

bool
webhook_busy(const struct webhook *wh)
{
	for (int i = 0; i < WEBHOOK_MAX_INFLIGHT; i++)
		if (wh->slots[i].state == SLOT_SENT || wh->slots[i].state == SLOT_RECORDING)
			return true;
	return false;
}

void
webhook_metrics(struct evbuffer *out, void *arg)
{
	const struct webhook *wh = arg;
	int inflight = 0;

	for (int i = 0; i < WEBHOOK_MAX_INFLIGHT; i++)
		if (wh->slots[i].state != SLOT_IDLE)
			inflight++;
	evbuffer_add_printf(
	    out,
	    "# HELP creditd_webhook_enabled Whether notifications are delivered to a webhook.\n"
	    "# TYPE creditd_webhook_enabled gauge\n"
	    "creditd_webhook_enabled %d\n"
	    "# HELP creditd_webhook_delivered_total Deliveries the webhook accepted (2xx).\n"
	    "# TYPE creditd_webhook_delivered_total counter\n"
	    "creditd_webhook_delivered_total %" PRIu64 "\n"
	    "# HELP creditd_webhook_failures_total Failed delivery attempts.\n"
	    "# TYPE creditd_webhook_failures_total counter\n"
	    "creditd_webhook_failures_total %" PRIu64 "\n"
	    "# HELP creditd_webhook_given_up_total Notifications given up after max_attempts.\n"
	    "# TYPE creditd_webhook_given_up_total counter\n"
	    "creditd_webhook_given_up_total %" PRIu64 "\n"
	    "# HELP creditd_webhook_pending Undelivered notifications still to be tried (last "
	    "poll).\n"
	    "# TYPE creditd_webhook_pending gauge\n"
	    "creditd_webhook_pending %" PRId64 "\n"
	    "# HELP creditd_webhook_given_up Given-up notifications in the outbox (last poll).\n"
	    "# TYPE creditd_webhook_given_up gauge\n"
	    "creditd_webhook_given_up %" PRId64 "\n"
	    "# HELP creditd_webhook_inflight Deliveries in progress.\n"
	    "# TYPE creditd_webhook_inflight gauge\n"
	    "creditd_webhook_inflight %d\n"
	    "# HELP creditd_webhook_last_success_timestamp_seconds Time of the last accepted "
	    "delivery.\n"
	    "# TYPE creditd_webhook_last_success_timestamp_seconds gauge\n"
	    "creditd_webhook_last_success_timestamp_seconds %" PRId64 "\n",
	    wh->state == WEBHOOK_RUNNING ? 1 : 0, wh->delivered, wh->failures, wh->given_up,
	    wh->pending, wh->dead, inflight, wh->last_success);
}
