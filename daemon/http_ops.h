/* http_ops.h: health, readiness, metrics, test clock and audit handlers. */
#ifndef CREDITD_HTTP_OPS_H
#define CREDITD_HTTP_OPS_H

#include "http.h"

void http_ops_healthz(struct http_req *r);
void http_ops_readyz(struct http_req *r);
void http_ops_metrics(struct http_req *r);
void http_ops_clock_get(struct http_req *r);
void http_ops_clock_put(struct http_req *r);
void http_ops_audit(struct http_req *r);
void http_ops_notifications(struct http_req *r);

#endif
