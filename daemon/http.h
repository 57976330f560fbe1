/* http.h: the HTTP server (daemon/httpd.c), route table dispatch, authentication,
 * request context and JSON replies (R9.5, API.md "Conventions").
 *
 * A handler receives a request context and must answer it exactly once with
 * one of the http_reply_* functions, now or later from a database callback.
 * If the client hung up meanwhile the context is "orphaned": the reply is
 * dropped, never written to freed memory. */
#ifndef CREDITD_HTTP_H
#define CREDITD_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct app;
struct event_base;
struct evkeyvalq;
struct http_server;
struct http_req;

enum http_method {
	HTTP_GET = 1,
	HTTP_POST = 2,
	HTTP_PUT = 4,
	HTTP_PATCH = 8,
	HTTP_DELETE = 16,
};

typedef void (*http_handler)(struct http_req *r);

struct route {
	enum http_method method;
	const char *pattern; /* see common/route.h */
	unsigned scope;      /* SCOPE_* bit needed; 0 = no token needed */
	http_handler handler;
	const char *name;  /* metrics label */
	bool test_clock;   /* exists only with --test-clock */
	const char *query; /* query parameters it takes, " "-separated; NULL none, "*" any */
};

struct http_server *http_server_new(struct app *app, const struct route *routes, int nroutes);
void http_server_free(struct http_server *s);
/* Bind host:port; returns 0 or -1 with errno-style message logged. */
int http_server_listen(struct http_server *s, const char *host, int port);
/* (Re)apply limits from the current config (start-up and SIGHUP). */
void http_server_apply_config(struct http_server *s);
/* Stop accepting new connections (drain). */
void http_server_stop_accepting(struct http_server *s);
size_t http_server_active(const struct http_server *s);
const char *const *http_server_route_names(const struct http_server *s);

/* Request context accessors. */
struct app *http_req_app(const struct http_req *r);
const char *http_req_id(const struct http_req *r);
const char *http_req_actor(const struct http_req *r);
unsigned http_req_scopes(const struct http_req *r);
int http_req_ncaptures(const struct http_req *r);
const char *http_req_capture(const struct http_req *r, int i); /* percent-decoded */
const char *http_req_query(const struct http_req *r, const char *key);
const char *http_req_header(const struct http_req *r, const char *name);
const char *http_req_body(const struct http_req *r, size_t *len);
bool http_req_orphaned(const struct http_req *r);
/* Parse the body as a JSON object. On failure answers 400 invalid_json (or
 * validation_failed when it is not an object) and returns NULL. The returned
 * reference belongs to the request. */
json_t *http_req_json_object(struct http_req *r);

/* Replies (each frees the request context). */
void http_reply_json(struct http_req *r, int status, json_t *body); /* steals body */
void http_reply_error(struct http_req *r, int status, const char *code, const char *message,
                      const char *field);
void http_reply_unavailable(struct http_req *r);
void http_reply_text(struct http_req *r, int status, const char *content_type, const char *body,
                     size_t len);
/* Reply with an evbuffer's contents (drained). */
struct evbuffer;
void http_reply_buffer(struct http_req *r, int status, const char *content_type,
                       struct evbuffer *buf);
/* Reply with body[0..len) from malloc, which is freed (large replies: sent
 * from, not copied). */
void http_reply_owned(struct http_req *r, int status, const char *content_type, char *body,
                      size_t len);
void http_reply_add_header(struct http_req *r, const char *name, const char *value);
/* Answer with a body produced piece by piece (daemon/httpd.h, "streamed
 * reply"): returns the connection to write it to, or NULL when no body is
 * wanted (HEAD) or the client has gone. r is finished either way. */
struct httpd_conn;
struct httpd_stream_cb;
struct httpd_conn *http_reply_stream(struct http_req *r, int status, const char *content_type,
                                     const struct httpd_stream_cb *cb, void *arg);

#endif
