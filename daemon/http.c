/* http.c: route dispatch, auth, limits, request context and replies, over
 * the connection layer of httpd.c (issue 3: evhttp's server cost twice the
 * CPU per request). */
#include "http.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
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
#include <strings.h>

#include "app.h"
#include "clock.h"
#include "config.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "route.h"
#include "utf8.h"
#include "xmalloc.h"

/* Per route, computed once: a literal pattern matches only its own text; any
 * other matches only paths that start with its text before the first "{}".
 * Lets dispatch skip route_match for all but the candidates. */
struct http_route_key {
	size_t prefix; /* bytes of the pattern before the first "{}" */
	size_t len;    /* of the pattern */
	bool literal;  /* no capture: route_match == strcmp */
};

struct http_server {
	struct app *app;
	struct httpd *httpd;
	const struct route *routes;
	int nroutes;
	const char **route_names;
	struct http_route_key *keys;
	int max_conns;
	size_t active;
	uint64_t next_rid;
	uint64_t rid_salt;
};

/* The request context: the storage httpd keeps per connection, reused from
 * request to request (no allocation per request on the authorize path). It
 * lives until its request is answered, also when the client left before. */
struct http_req {
	struct http_server *srv;
	struct httpd_conn *conn;
	const struct httpd_request *in;
	int route;
	char rid[17];
	char actor[64];
	unsigned scopes;
	int ncaps;
	char *caps[ROUTE_MAX_CAPTURES];
	struct evkeyvalq query;
	bool query_parsed;
	json_t *json;
	bool orphaned;
	bool answered; /* no request is pending on this storage */
	bool close;    /* "Connection: close" asked for by a reply */
	int64_t started;
	char *target; /* path NUL query NUL, decoded from the request target */
	size_t target_cap;
	char *hdrs; /* reply header lines */
	size_t hlen, hcap;
	char *out; /* reply body (JSON) */
	size_t olen, ocap;
};

/* ---- request context ---- */

/* Release what the request held (not the reused buffers). */
static void
http_req_release(struct http_req *r)
{
	for (int i = 0; i < r->ncaps; i++)
		free(r->caps[i]);
	r->ncaps = 0;
	if (r->query_parsed)
		evhttp_clear_headers(&r->query);
	r->query_parsed = false;
	json_decref(r->json);
	r->json = NULL;
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
	return r->in ? http_parse_header(&r->in->head, name) : NULL;
}

const char *
http_req_body(const struct http_req *r, size_t *len)
{
	*len = r->in->body_len;
	return r->in->body;
}

json_t *
http_req_json_object(struct http_req *r)
{
	json_error_t err;
	char msg[300];

	if (r->json != NULL)
		return r->json;
	if (r->in->body_len == 0) {
		http_reply_error(r, 400, "invalid_json", "request body must be a JSON object",
		                 NULL);
		return NULL;
	}
	r->json = json_loadb(r->in->body, r->in->body_len, JSON_REJECT_DUPLICATES, &err);
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

/* End the request answered with status (metrics, the debug log; how: ""
 * or " (streamed)"): r is not to be used for another answer. False when the
 * client has gone (the connection is dropped); true when the answer is to
 * be written: *close tells whether the connection closes after it. */
static bool
http_req_finish(struct http_req *r, int status, const char *how, bool *close)
{
	struct http_server *s = r->srv;
	struct httpd_conn *conn = r->conn;
	int64_t usec = clock_monotonic() - r->started;

	*close = r->close || s->app->draining;
	metrics_observe_request(s->app->metrics, r->route, status, usec);
	if (log_enabled(LOG_LEVEL_DEBUG))
		log_req(LOG_LEVEL_DEBUG, r->rid, "%s -> %d%s in %" PRId64 " us",
		        r->route >= 0 ? s->routes[r->route].name : "?", status, how, usec);
	http_req_release(r);
	r->answered = true;
	s->active--;
	if (r->orphaned) {
		log_req(LOG_LEVEL_INFO, r->rid, "client went away; reply %d dropped", status);
		httpd_drop(conn);
		return false;
	}
	http_reply_add_header(r, "X-Request-Id", r->rid);
	return true;
}

/* Send the reply with body[0..len) and end the request: r's storage may be
 * freed on return (httpd_reply, httpd_drop). owned: body is from malloc and
 * is freed (or sent from and then freed) by httpd. */
static void
http_send_body(struct http_req *r, int status, const char *body, size_t len, char *owned)
{
	struct httpd_conn *conn = r->conn;
	bool close;

	if (!http_req_finish(r, status, "", &close)) {
		free(owned);
		return;
	}
	if (owned != NULL)
		httpd_reply_owned(conn, status, r->hdrs, r->hlen, owned, len, close);
	else
		httpd_reply(conn, status, r->hdrs, r->hlen, body, len, close);
}

static void
http_send(struct http_req *r, int status, const char *body, size_t len)
{
	http_send_body(r, status, body, len, NULL);
}

void
http_reply_add_header(struct http_req *r, const char *name, const char *value)
{
	size_t nlen = strlen(name), vlen = strlen(value);

	if (strcasecmp(name, "Connection") == 0 && strcasecmp(value, "close") == 0) {
		r->close = true; /* httpd writes the header */
		return;
	}
	/* as evhttp_add_header: no header splitting */
	if (strpbrk(name, "\r\n:") != NULL || strpbrk(value, "\r\n") != NULL)
		return;
	xreserve(&r->hdrs, &r->hcap, r->hlen + nlen + vlen + 4, 256);
	memcpy(r->hdrs + r->hlen, name, nlen);
	r->hlen += nlen;
	r->hdrs[r->hlen++] = ':';
	r->hdrs[r->hlen++] = ' ';
	memcpy(r->hdrs + r->hlen, value, vlen);
	r->hlen += vlen;
	r->hdrs[r->hlen++] = '\r';
	r->hdrs[r->hlen++] = '\n';
}

static int
http_json_writer(const char *data, size_t size, void *arg)
{
	struct http_req *r = arg;

	xreserve(&r->out, &r->ocap, r->olen + size, 1024);
	memcpy(r->out + r->olen, data, size);
	r->olen += size;
	return 0;
}

void
http_reply_json(struct http_req *r, int status, json_t *body)
{
	r->olen = 0;
	if (!r->orphaned) {
		json_dump_callback(body, http_json_writer, r, JSON_COMPACT);
		http_json_writer("\n", 1, r);
	}
	json_decref(body);
	http_reply_add_header(r, "Content-Type", "application/json");
	http_send(r, status, r->out, r->olen);
	/* r->out stays with the connection's storage for the next reply */
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
	http_reply_add_header(r, "Content-Type", content_type);
	http_send(r, status, body, len);
}

void
http_reply_buffer(struct http_req *r, int status, const char *content_type, struct evbuffer *buf)
{
	size_t len = evbuffer_get_length(buf);
	const char *body = len ? (const char *)evbuffer_pullup(buf, -1) : "";

	http_reply_add_header(r, "Content-Type", content_type);
	http_send(r, status, body, len);
	evbuffer_drain(buf, len);
}

void
http_reply_owned(struct http_req *r, int status, const char *content_type, char *body, size_t len)
{
	http_reply_add_header(r, "Content-Type", content_type);
	http_send_body(r, status, body, len, body);
}

/* Answer r with a stream (httpd_stream_begin): metrics and the log see the
 * status and the time to the head. The request is finished either way (r
 * is not to be used again); returns the connection to write the body to, or
 * NULL when none is wanted (HEAD) or the client has gone. */
struct httpd_conn *
http_reply_stream(struct http_req *r, int status, const char *content_type,
                  const struct httpd_stream_cb *cb, void *arg)
{
	struct httpd_conn *conn = r->conn;
	bool close;

	http_reply_add_header(r, "Content-Type", content_type);
	if (!http_req_finish(r, status, " (streamed)", &close))
		return NULL;
	return httpd_stream_begin(conn, status, r->hdrs, r->hlen, close, cb, arg) ? conn : NULL;
}

/* ---- dispatch ---- */

/* False, with a 400 naming it, when the query has a parameter that is not
 * in the route's " "-separated list ("*": any, for probes that add their
 * own): a misspelt filter (?acount=) must not answer the unfiltered list. */
static bool
http_query_known(struct http_req *r, const char *allowed)
{
	struct evkeyval *kv;

	if (!r->query_parsed || (allowed != NULL && strcmp(allowed, "*") == 0))
		return true;
	for (kv = r->query.tqh_first; kv != NULL; kv = kv->next.tqe_next) {
		size_t kl = strlen(kv->key);
		const char *p = allowed;
		bool ok = false;

		while (p != NULL && *p != '\0' && !ok) {
			size_t n = strcspn(p, " ");
			ok = n == kl && strncmp(p, kv->key, n) == 0;
			p += n + (p[n] == ' ');
		}
		if (!ok) {
			char field[65], msg[128];
			snprintf(field, sizeof field, "%s", kv->key);
			utf8_clean(field);
			snprintf(msg, sizeof msg, "%s: unknown query parameter", field);
			http_reply_error(r, 400, "validation_failed", msg, field);
			return false;
		}
	}
	return true;
}

static enum http_method
http_method_of(enum http_parse_method t)
{
	switch (t) {
	case HTTP_PARSE_GET:
	case HTTP_PARSE_HEAD:
		return HTTP_GET;
	case HTTP_PARSE_POST:
		return HTTP_POST;
	case HTTP_PARSE_PUT:
		return HTTP_PUT;
	case HTTP_PARSE_PATCH:
		return HTTP_PATCH;
	case HTTP_PARSE_DELETE:
		return HTTP_DELETE;
	default:
		return 0;
	}
}

/* The error code of an answer httpd asked for (a request it could not
 * frame): the API's codes (API.md "Conventions"). */
static const char *
http_framing_code(int status)
{
	switch (status) {
	case 413:
	case 431:
		return "too_large";
	default:
		return "validation_failed";
	}
}

/* Split the request target into path and query (copies in r->target). An
 * absolute-form target ("http://host/path") names its path; a fragment is
 * ignored. */
static void
http_split_target(struct http_req *r, const char *t, const char **path, const char **query)
{
	size_t n = strlen(t), plen;
	const char *q, *f;
	char *p;

	if (strncasecmp(t, "http://", 7) == 0 || strncasecmp(t, "https://", 8) == 0) {
		const char *slash = strchr(strstr(t, "//") + 2, '/');
		t = slash ? slash : "";
		n = strlen(t);
	}
	if (r->target_cap < n + 2) {
		free(r->target);
		r->target_cap = n + 64;
		r->target = xmalloc(r->target_cap);
	}
	f = memchr(t, '#', n);
	if (f)
		n = (size_t)(f - t);
	q = memchr(t, '?', n);
	plen = q ? (size_t)(q - t) : n;
	p = r->target;
	memcpy(p, t, plen);
	p[plen] = '\0';
	*path = p;
	if (q) {
		size_t qlen = n - plen - 1;
		memcpy(p + plen + 1, q + 1, qlen);
		p[plen + 1 + qlen] = '\0';
		*query = p + plen + 1;
	} else {
		*query = NULL;
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
http_route_match(const struct http_server *s, int i, const char *path, size_t plen,
                 struct route_capture *caps, int *n)
{
	const char *pattern = s->routes[i].pattern;
	const struct http_route_key *k = &s->keys[i];

	if (k->literal) {
		*n = 0;
		return plen == k->len && memcmp(pattern, path, plen) == 0;
	}
	if (plen < k->prefix || memcmp(pattern, path, k->prefix) != 0)
		return false;
	return route_match(pattern, path, caps, n);
}

/* httpd hands up a request: the storage ctx is this connection's request
 * context, reused. */
static void
http_dispatch(struct httpd_conn *conn, void *ctx, const struct httpd_request *in, void *arg)
{
	struct http_server *s = arg;
	struct http_req *r = ctx;
	enum http_method m = http_method_of(in->head.mcode);
	struct route_capture caps[ROUTE_MAX_CAPTURES];
	bool path_matched = false;
	const char *path, *q;
	size_t plen;

	r->srv = s;
	r->conn = conn;
	r->in = in;
	r->route = -1;
	r->actor[0] = '\0';
	r->scopes = 0;
	r->orphaned = false;
	r->answered = false;
	r->close = false;
	r->hlen = 0;
	r->olen = 0;
	r->started = clock_monotonic();
	http_rid(r->rid, (uint64_t)((s->rid_salt + s->next_rid++) * UINT64_C(0x9E3779B97F4A7C15)));
	s->active++;
	if (in->error_status != 0) {
		http_reply_error(r, in->error_status, http_framing_code(in->error_status),
		                 in->error ? in->error : "malformed request", NULL);
		return;
	}
	if (s->max_conns > 0 && httpd_nconns(s->httpd) > (size_t)s->max_conns) {
		http_reply_add_header(r, "Connection", "close");
		http_reply_add_header(r, "Retry-After", "1");
		http_reply_error(r, 503, "unavailable", "too many connections", NULL);
		return;
	}
	if (m == 0) {
		/* a method we do not know: we cannot tell what follows it (the
		 * API's 405 and code, as for a known method a path lacks) */
		http_reply_add_header(r, "Connection", "close");
		http_reply_error(r, 405, "method_not_allowed", "method not allowed", NULL);
		return;
	}
	http_split_target(r, in->head.target, &path, &q);
	if (*path == '\0')
		path = "/";
	plen = strlen(path);
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
		if (!http_route_match(s, i, path, plen, caps, &n))
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
	if (in->body_too_large) {
		/* refused unread (httpd): the connection closes after the answer */
		http_reply_add_header(r, "Connection", "close");
		http_reply_error(r, 413, "too_large", "request body too large", NULL);
		return;
	}
	if (!http_query_known(r, rt->query))
		return;
	if ((m == HTTP_POST || m == HTTP_PUT || m == HTTP_PATCH) && s->app->draining) {
		http_reply_add_header(r, "Retry-After", "1");
		http_reply_error(r, 503, "unavailable", "shutting down", NULL);
		return;
	}
	rt->handler(r);
}

/* ---- server ---- */

static void
http_gone(void *ctx, void *arg)
{
	struct http_req *r = ctx;

	(void)arg;
	r->orphaned = true;
}

static void
http_ctx_free(void *ctx, void *arg)
{
	struct http_req *r = ctx;

	(void)arg;
	if (r->srv != NULL && !r->answered) {
		/* the server goes while a request is pending (shutdown) */
		http_req_release(r);
		r->srv->active--;
	}
	free(r->target);
	free(r->hdrs);
	free(r->out);
}

struct http_server *
http_server_new(struct app *app, const struct route *routes, int nroutes)
{
	struct http_server *s = xcalloc(1, sizeof *s);
	struct httpd_callbacks cb = {
	    .ctx_size = sizeof(struct http_req),
	    .request = http_dispatch,
	    .gone = http_gone,
	    .ctx_free = http_ctx_free,
	    .arg = s,
	};

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
		s->keys[i].len = strlen(p);
	}

	s->rid_salt = (uint64_t)clock_wall();
	s->httpd = httpd_new(app->base, &cb);
	http_server_apply_config(s);
	return s;
}

void
http_server_apply_config(struct http_server *s)
{
	const struct config *cfg = s->app->cfg;

	s->max_conns = cfg->max_connections;
	httpd_set_limits(s->httpd, cfg->max_body_bytes, cfg->request_timeout_seconds);
}

const char *const *
http_server_route_names(const struct http_server *s)
{
	return s->route_names;
}

int
http_server_listen(struct http_server *s, const char *host, int port)
{
	if (httpd_listen(s->httpd, host, port) != 0) {
		log_warn("cannot listen on %s:%d", host, port);
		return -1;
	}
	log_info("listening on %s:%d", host, port);
	return 0;
}

void
http_server_stop_accepting(struct http_server *s)
{
	httpd_stop_listening(s->httpd);
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
	httpd_free(s->httpd);
	free(s->route_names);
	free(s->keys);
	free(s);
}
