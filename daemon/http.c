/* http.c: evhttp server, route dispatch, auth, limits, request context. */
#include "http.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
/* struct bufferevent's ev_write, for http_write_now (libevent 2.1) */
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <inttypes.h>
/* SHA256() fetches the algorithm from OpenSSL 3's provider table on every
 * call (about 0.3 us, several times the digest itself). The EVP API that
 * fetches once needs openssl/evp.h, which includes <pthread.h> -> <sched.h>,
 * shadowed by daemon/sched.h on our include path; so the direct SHA256_*
 * functions, deprecated in favour of EVP but still supported by OpenSSL 3. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "route.h"
#include "utf8.h"
#include "xmalloc.h"

#define HTTP_MAX_HEADERS_SIZE 16384
#define HTTP_BODY_SLACK (1024 * 1024) /* evhttp's own hard cap above ours */
#define HTTP_CONN_BUCKETS 1024
#define HTTP_INLINE_BODY 512 /* bodies up to this size live in the request context */

/* One record per open client connection: counts connections for the cap and
 * lets the close callback mark an in-flight request orphaned. */
struct http_conn {
	struct evhttp_connection *evcon;
	struct http_server *srv;
	struct http_req *active;
	struct http_conn *next; /* hash chain */
};

/* Per route, computed once: a literal pattern matches only its own text; any
 * other matches only paths that start with its text before the first "{}".
 * Lets dispatch skip route_match for all but the candidates. */
struct http_route_key {
	size_t prefix; /* bytes of the pattern before the first "{}" */
	bool literal;  /* no capture: route_match == strcmp */
};

struct http_server {
	struct app *app;
	struct evhttp *evhttp;
	struct evhttp_bound_socket *bound;
	const struct route *routes;
	int nroutes;
	const char **route_names;
	struct http_route_key *keys;
	size_t max_body;
	int max_conns;
	size_t nconns;
	size_t active;
	uint64_t next_rid;
	uint64_t rid_salt;
	time_t date_at; /* the second date was formatted for */
	char date[64];  /* "Date:" value, as evhttp would format it */
	struct http_conn *conns[HTTP_CONN_BUCKETS];
};

struct http_req {
	struct http_server *srv;
	struct evhttp_request *req;
	struct http_conn *conn;
	int route;
	char rid[17];
	char actor[64];
	unsigned scopes;
	int ncaps;
	char *caps[ROUTE_MAX_CAPTURES];
	struct evkeyvalq query;
	bool query_parsed;
	char *body;
	size_t body_len;
	json_t *json;
	bool orphaned;
	int64_t started;
	char inline_body[HTTP_INLINE_BODY + 1];
};

/* ---- connection tracking ---- */

static size_t
http_conn_hash(const struct evhttp_connection *evcon)
{
	uintptr_t p = (uintptr_t)evcon;
	return (size_t)((p >> 4) ^ (p >> 14)) % HTTP_CONN_BUCKETS;
}

static struct http_conn *
http_conn_find(struct http_server *s, struct evhttp_connection *evcon)
{
	for (struct http_conn *c = s->conns[http_conn_hash(evcon)]; c; c = c->next)
		if (c->evcon == evcon)
			return c;
	return NULL;
}

static void
http_conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct http_server *s = arg;
	struct http_conn **pp = &s->conns[http_conn_hash(evcon)];

	for (; *pp; pp = &(*pp)->next) {
		struct http_conn *c = *pp;
		if (c->evcon != evcon)
			continue;
		*pp = c->next;
		if (c->active) {
			c->active->orphaned = true;
			c->active->conn = NULL;
		}
		s->nconns--;
		free(c);
		return;
	}
}

static struct http_conn *
http_conn_get(struct http_server *s, struct evhttp_connection *evcon)
{
	struct http_conn *c = http_conn_find(s, evcon);
	size_t h;

	if (c != NULL)
		return c;
	c = xcalloc(1, sizeof *c);
	c->evcon = evcon;
	c->srv = s;
	h = http_conn_hash(evcon);
	c->next = s->conns[h];
	s->conns[h] = c;
	s->nconns++;
	evhttp_connection_set_closecb(evcon, http_conn_closed, s);
	return c;
}

/* ---- request context ---- */

static void
http_req_free(struct http_req *r)
{
	if (r->conn)
		r->conn->active = NULL;
	for (int i = 0; i < r->ncaps; i++)
		free(r->caps[i]);
	if (r->query_parsed)
		evhttp_clear_headers(&r->query);
	if (r->body != r->inline_body)
		free(r->body);
	json_decref(r->json);
	r->srv->active--;
	free(r);
}

struct app *
http_req_app(const struct http_req *r)
{
	return r->srv->app;
}

const char *
http_req_id(const struct http_req *r)
{
	return r->rid;
}

const char *
http_req_actor(const struct http_req *r)
{
	return r->actor;
}

unsigned
http_req_scopes(const struct http_req *r)
{
	return r->scopes;
}

int
http_req_ncaptures(const struct http_req *r)
{
	return r->ncaps;
}

const char *
http_req_capture(const struct http_req *r, int i)
{
	return (i >= 0 && i < r->ncaps) ? r->caps[i] : NULL;
}

bool
http_req_orphaned(const struct http_req *r)
{
	return r->orphaned;
}

const char *
http_req_query(const struct http_req *r, const char *key)
{
	return r->query_parsed ? evhttp_find_header(&((struct http_req *)r)->query, key) : NULL;
}

const char *
http_req_header(const struct http_req *r, const char *name)
{
	if (r->req == NULL)
		return NULL;
	return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

const char *
http_req_body(const struct http_req *r, size_t *len)
{
	*len = r->body_len;
	return r->body ? r->body : "";
}

json_t *
http_req_json_object(struct http_req *r)
{
	json_error_t err;
	char msg[300];

	if (r->json != NULL)
		return r->json;
	if (r->body_len == 0) {
		http_reply_error(r, 400, "invalid_json", "request body must be a JSON object",
		                 NULL);
		return NULL;
	}
	r->json = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &err);
	if (r->json == NULL) {
		snprintf(msg, sizeof msg, "invalid JSON at line %d column %d: %s", err.line,
		         err.column, err.text);
		http_reply_error(r, 400, "invalid_json", msg, NULL);
		return NULL;
	}
	if (!json_is_object(r->json)) {
		http_reply_error(r, 400, "invalid_json", "request body must be a JSON object",
		                 NULL);
		return NULL;
	}
	return r->json;
}

/* ---- replies ---- */

/* Where a reply's body goes: straight into evhttp's output buffer of the
 * request (what evhttp_send_reply would copy a body buffer into), so no
 * buffer of our own is allocated and moved per reply. NULL once evhttp
 * dropped the request. */
static struct evbuffer *
http_out(struct http_req *r)
{
	return r->req ? evhttp_request_get_output_buffer(r->req) : NULL;
}

/* The Date header evhttp adds to HTTP/1.1 answers (same function, same
 * format, same place), formatted once a second instead of per reply. */
static void
http_add_date(struct http_server *s, const struct evhttp_request *req, struct evkeyvalq *h)
{
	time_t now = time(NULL);
	struct tm tm;

	if (req->major != 1 || req->minor < 1)
		return; /* evhttp sends none */
	if (now != s->date_at || s->date[0] == '\0') {
		if (gmtime_r(&now, &tm) == NULL ||
		    evutil_date_rfc1123(s->date, sizeof s->date, &tm) <= 0) {
			s->date[0] = '\0';
			return; /* evhttp formats its own */
		}
		s->date_at = now;
	}
	evhttp_add_header(h, "Date", s->date);
}

/* Write a reply evhttp has just queued now, in this turn of the loop,
 * instead of when epoll next reports the socket writable. evhttp's socket
 * bufferevent only arms its write event when a reply is queued; the write
 * then costs an epoll_ctl to add EPOLLOUT, a loop turn, and another
 * epoll_ctl to remove it again (2 of the 5.5 system calls of an authorize
 * request). Running the write event's own callback now (exactly what
 * libevent runs when epoll reports the socket writable: it writes what the
 * socket takes, keeps the event armed for the rest, and tells evhttp when
 * the reply is out) leaves the event set unchanged across the loop turn,
 * so the change list makes no epoll_ctl at all. Only when the write event
 * is armed with data to write, i.e. when epoll would have run the same
 * callback. */
static void
http_write_now(struct evhttp_connection *evcon)
{
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;

	if (bev == NULL || evbuffer_get_length(bufferevent_get_output(bev)) == 0 ||
	    !event_pending(&bev->ev_write, EV_WRITE, NULL))
		return;
	event_active(&bev->ev_write, EV_WRITE, 1);
}

/* Send the reply whose body is already in http_out(r), and free r. */
static void
http_send(struct http_req *r, int status)
{
	int64_t usec = clock_monotonic() - r->started;

	metrics_observe_request(r->srv->app->metrics, r->route, status, usec);
	if (r->orphaned || r->req == NULL) {
		log_req(LOG_LEVEL_INFO, r->rid, "client went away; reply %d dropped", status);
		/* evhttp detached the request from its connection; replying frees it */
		if (r->req) {
			struct evbuffer *out = http_out(r);
			evbuffer_drain(out, evbuffer_get_length(out));
			evhttp_send_reply(r->req, status, NULL, NULL);
		}
	} else {
		struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
		struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
		evhttp_add_header(h, "X-Request-Id", r->rid);
		if (r->srv->app->draining)
			evhttp_add_header(h, "Connection", "close");
		http_add_date(r->srv, r->req, h);
		evhttp_send_reply(r->req, status, NULL, NULL);
		http_write_now(evcon);
	}
	if (log_enabled(LOG_LEVEL_DEBUG))
		log_req(LOG_LEVEL_DEBUG, r->rid, "%s -> %d in %" PRId64 " us",
		        r->route >= 0 ? r->srv->routes[r->route].name : "?", status, usec);
	http_req_free(r);
}

void
http_reply_add_header(struct http_req *r, const char *name, const char *value)
{
	if (r->req)
		evhttp_add_header(evhttp_request_get_output_headers(r->req), name, value);
}

static int
http_json_writer(const char *data, size_t size, void *arg)
{
	return evbuffer_add(arg, data, size);
}

void
http_reply_json(struct http_req *r, int status, json_t *body)
{
	struct evbuffer *out = http_out(r);

	if (out != NULL) {
		json_dump_callback(body, http_json_writer, out, JSON_COMPACT);
		evbuffer_add(out, "\n", 1);
	}
	json_decref(body);
	http_reply_add_header(r, "Content-Type", "application/json");
	http_send(r, status);
}

/* A copy of s with each byte that is not valid UTF-8 replaced by '?'. Error
 * texts quote client input cut to a length (e.g. "%.40s: unknown field"),
 * which can split a character; jansson refuses such a string and the reply
 * would lose its JSON body. */
static char *
http_utf8_clean(const char *s)
{
	char *out = xstrdup(s);

	utf8_clean(out);
	return out;
}

void
http_reply_error(struct http_req *r, int status, const char *code, const char *message,
                 const char *field)
{
	char *msg = http_utf8_clean(message), *fld = field ? http_utf8_clean(field) : NULL;
	json_t *err = json_pack("{s:s, s:s}", "code", code, "message", msg);

	if (fld)
		json_object_set_new(err, "field", json_string(fld));
	if (status >= 500)
		log_req(LOG_LEVEL_WARNING, r->rid, "%d %s: %s", status, code, msg);
	else
		log_req(LOG_LEVEL_DEBUG, r->rid, "%d %s: %s%s%s", status, code, msg,
		        fld ? " field=" : "", fld ? fld : "");
	free(msg);
	free(fld);
	http_reply_json(r, status, json_pack("{s:o}", "error", err));
}

void
http_reply_unavailable(struct http_req *r)
{
	http_reply_add_header(r, "Retry-After", "1");
	http_reply_error(r, 503, "unavailable", "database unavailable; retry later", NULL);
}

void
http_reply_text(struct http_req *r, int status, const char *content_type, const char *body,
                size_t len)
{
	struct evbuffer *out = http_out(r);

	if (out != NULL)
		evbuffer_add(out, body, len);
	http_reply_add_header(r, "Content-Type", content_type);
	http_send(r, status);
}

void
http_reply_buffer(struct http_req *r, int status, const char *content_type, struct evbuffer *buf)
{
	struct evbuffer *out = http_out(r);

	if (out != NULL)
		evbuffer_add_buffer(out, buf);
	http_reply_add_header(r, "Content-Type", content_type);
	http_send(r, status);
}

/* ---- dispatch ---- */

static enum http_method
http_method_of(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET:
	case EVHTTP_REQ_HEAD:
		return HTTP_GET;
	case EVHTTP_REQ_POST:
		return HTTP_POST;
	case EVHTTP_REQ_PUT:
		return HTTP_PUT;
	case EVHTTP_REQ_PATCH:
		return HTTP_PATCH;
	case EVHTTP_REQ_DELETE:
		return HTTP_DELETE;
	default:
		return 0;
	}
}

/* Authenticate "Authorization: Bearer <secret>"; fills actor and scopes. */
static bool
http_authenticate(struct http_req *r)
{
	const char *h = http_req_header(r, "Authorization");
	const struct config_token *t;
	unsigned char digest[SHA256_DIGEST_LENGTH];
	SHA256_CTX sha;

	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return false;
	h += 7;
	while (*h == ' ')
		h++;
	if (*h == '\0')
		return false;
	if (SHA256_Init(&sha) != 1 || SHA256_Update(&sha, h, strlen(h)) != 1 ||
	    SHA256_Final(digest, &sha) != 1) {
		explicit_bzero(&sha, sizeof sha);
		return false;
	}
	explicit_bzero(&sha, sizeof sha);
	t = config_find_token(r->srv->app->cfg, digest);
	if (t == NULL)
		return false;
	snprintf(r->actor, sizeof r->actor, "%s", t->name);
	r->scopes = t->scopes;
	return true;
}

static char *
http_decode_capture(const struct route_capture *c)
{
	char *raw = xstrndup(c->start, c->len);
	size_t outlen;
	char *dec = evhttp_uridecode(raw, 0, &outlen);

	free(raw);
	if (dec == NULL)
		return NULL;
	/* embedded NUL, or not UTF-8 (PostgreSQL would refuse the parameter) */
	if (strlen(dec) != outlen || !utf8_valid(dec)) {
		free(dec);
		return NULL;
	}
	return dec;
}

/* The request id: 16 lower-case hex digits. */
static void
http_rid(char out[17], uint64_t v)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 15; i >= 0; i--, v >>= 4)
		out[i] = hex[v & 15];
	out[16] = '\0';
}

/* route_match of route i, with a cheap test first (see http_route_key). */
static bool
http_route_match(const struct http_server *s, int i, const char *path, struct route_capture *caps,
                 int *n)
{
	const char *pattern = s->routes[i].pattern;
	const struct http_route_key *k = &s->keys[i];

	if (k->literal) {
		*n = 0;
		return strcmp(pattern, path) == 0;
	}
	if (strncmp(pattern, path, k->prefix) != 0)
		return false;
	return route_match(pattern, path, caps, n);
}

static void
http_dispatch(struct evhttp_request *req, void *arg)
{
	struct http_server *s = arg;
	struct http_req *r = xcalloc(1, sizeof *r);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
	enum http_method m = http_method_of(evhttp_request_get_command(req));
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct route_capture caps[ROUTE_MAX_CAPTURES];
	bool path_matched = false;
	size_t inlen;

	r->srv = s;
	r->req = req;
	r->route = -1;
	r->started = clock_monotonic();
	http_rid(r->rid, (uint64_t)((s->rid_salt + s->next_rid++) * UINT64_C(0x9E3779B97F4A7C15)));
	s->active++;
	if (evcon) {
		r->conn = http_conn_get(s, evcon);
		r->conn->active = r;
	}
	if (s->max_conns > 0 && s->nconns > (size_t)s->max_conns) {
		http_reply_add_header(r, "Connection", "close");
		http_reply_add_header(r, "Retry-After", "1");
		http_reply_error(r, 503, "unavailable", "too many connections", NULL);
		return;
	}
	if (path == NULL || *path == '\0')
		path = "/";
	if (q && evhttp_parse_query_str(q, &r->query) == 0) {
		struct evkeyval *kv;
		r->query_parsed = true;
		for (kv = r->query.tqh_first; kv != NULL; kv = kv->next.tqe_next) {
			if (!utf8_valid(kv->key) || !utf8_valid(kv->value)) {
				http_reply_error(r, 400, "validation_failed",
				                 "query string is not UTF-8", NULL);
				return;
			}
		}
	} else if (q) {
		http_reply_error(r, 400, "validation_failed", "malformed query string", NULL);
		return;
	}
	for (int i = 0; i < s->nroutes; i++) {
		const struct route *rt = &s->routes[i];
		int n;
		if (rt->test_clock && !clock_is_test())
			continue;
		if (!http_route_match(s, i, path, caps, &n))
			continue;
		path_matched = true;
		if (rt->method != m)
			continue;
		r->route = i;
		r->ncaps = n;
		for (int k = 0; k < n; k++) {
			r->caps[k] = http_decode_capture(&caps[k]);
			if (r->caps[k] == NULL) {
				r->ncaps = k;
				http_reply_error(r, 400, "validation_failed",
				                 "malformed percent-encoding in path", NULL);
				return;
			}
		}
		break;
	}
	if (r->route < 0) {
		if (path_matched)
			http_reply_error(r, 405, "method_not_allowed", "method not allowed", NULL);
		else
			http_reply_error(r, 404, "not_found", "no such resource", NULL);
		return;
	}
	const struct route *rt = &s->routes[r->route];
	if (rt->scope != 0) {
		if (!http_authenticate(r)) {
			http_reply_add_header(r, "WWW-Authenticate", "Bearer");
			http_reply_error(r, 401, "unauthorized", "a valid bearer token is required",
			                 NULL);
			return;
		}
		if (!(r->scopes & rt->scope) && !(r->scopes & SCOPE_ADMIN)) {
			char msg[96];
			snprintf(msg, sizeof msg, "token lacks the '%s' scope",
			         config_scope_name(rt->scope));
			http_reply_error(r, 403, "forbidden", msg, NULL);
			return;
		}
	}
	inlen = evbuffer_get_length(in);
	if (inlen > s->max_body) {
		http_reply_add_header(r, "Connection", "close");
		http_reply_error(r, 413, "too_large", "request body too large", NULL);
		return;
	}
	if (inlen > 0) {
		r->body = inlen <= HTTP_INLINE_BODY ? r->inline_body : xmalloc(inlen + 1);
		evbuffer_remove(in, r->body, inlen);
		r->body[inlen] = '\0';
		r->body_len = inlen;
	}
	if ((m == HTTP_POST || m == HTTP_PUT || m == HTTP_PATCH) && s->app->draining) {
		http_reply_add_header(r, "Retry-After", "1");
		http_reply_error(r, 503, "unavailable", "shutting down", NULL);
		return;
	}
	rt->handler(r);
}

/* ---- server ---- */

struct http_server *
http_server_new(struct app *app, const struct route *routes, int nroutes)
{
	struct http_server *s = xcalloc(1, sizeof *s);

	s->app = app;
	s->routes = routes;
	s->nroutes = nroutes;
	s->route_names = xcalloc((size_t)nroutes + 1, sizeof(char *));
	s->keys = xcalloc((size_t)nroutes + 1, sizeof *s->keys);
	for (int i = 0; i < nroutes; i++) {
		const char *p = routes[i].pattern, *cap = strstr(p, "{}");
		struct route_capture caps[ROUTE_MAX_CAPTURES];
		int n;

		s->route_names[i] = routes[i].name;
		/* literal only if the pattern matches itself without captures, so
		 * that strcmp gives exactly route_match's answer */
		s->keys[i].literal = cap == NULL && route_match(p, p, caps, &n) && n == 0;
		s->keys[i].prefix = cap ? (size_t)(cap - p) : 0;
	}

	s->rid_salt = (uint64_t)clock_wall();
	s->evhttp = evhttp_new(app->base);
	evhttp_set_gencb(s->evhttp, http_dispatch, s);
	evhttp_set_allowed_methods(s->evhttp, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
	                                          EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH |
	                                          EVHTTP_REQ_DELETE);
	evhttp_set_max_headers_size(s->evhttp, HTTP_MAX_HEADERS_SIZE);
	http_server_apply_config(s);
	return s;
}

void
http_server_apply_config(struct http_server *s)
{
	const struct config *cfg = s->app->cfg;
	struct timeval tv = {.tv_sec = cfg->request_timeout_seconds, .tv_usec = 0};

	s->max_body = cfg->max_body_bytes;
	s->max_conns = cfg->max_connections;
	evhttp_set_max_body_size(s->evhttp, (ev_ssize_t)(cfg->max_body_bytes + HTTP_BODY_SLACK));
	evhttp_set_timeout_tv(s->evhttp, &tv);
}

const char *const *
http_server_route_names(const struct http_server *s)
{
	return s->route_names;
}

int
http_server_listen(struct http_server *s, const char *host, int port)
{
	s->bound = evhttp_bind_socket_with_handle(s->evhttp, host, (ev_uint16_t)port);
	if (s->bound == NULL) {
		log_warn("cannot listen on %s:%d", host, port);
		return -1;
	}
	log_info("listening on %s:%d", host, port);
	return 0;
}

void
http_server_stop_accepting(struct http_server *s)
{
	if (s->bound) {
		evhttp_del_accept_socket(s->evhttp, s->bound);
		s->bound = NULL;
	}
}

size_t
http_server_active(const struct http_server *s)
{
	return s->active;
}

void
http_server_free(struct http_server *s)
{
	if (s == NULL)
		return;
	evhttp_free(s->evhttp); /* closes connections: http_conn_closed frees records */
	for (int i = 0; i < HTTP_CONN_BUCKETS; i++) {
		while (s->conns[i]) {
			struct http_conn *c = s->conns[i];
			s->conns[i] = c->next;
			free(c);
		}
	}
	free(s->route_names);
	free(s->keys);
	free(s);
}
