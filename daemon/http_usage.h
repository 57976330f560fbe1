/* http_usage.h: POST /v1/events and POST /v1/authorize (R3, API.md "Usage"). */
#ifndef CREDITD_HTTP_USAGE_H
#define CREDITD_HTTP_USAGE_H

#include "http.h"

void http_usage_events(struct http_req *r);
void http_usage_authorize(struct http_req *r);

#endif
