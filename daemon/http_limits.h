/* http_limits.h: limit changes (R4.6) and limit requests (R4.7). */
#ifndef CREDITD_HTTP_LIMITS_H
#define CREDITD_HTTP_LIMITS_H

#include "http.h"

void http_limits_put(struct http_req *r);
void http_limits_changes(struct http_req *r);
void http_limits_request_create(struct http_req *r);
void http_limits_request_get(struct http_req *r);
void http_limits_request_approve(struct http_req *r);
void http_limits_request_decline(struct http_req *r);

#endif
