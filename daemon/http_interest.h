/* http_interest.h: interest of an invoice as of a date (R6.3, R6.4) and
 * reactivation requests (R6.7). */
#ifndef CREDITD_HTTP_INTEREST_H
#define CREDITD_HTTP_INTEREST_H

#include "http.h"

void http_interest_get(struct http_req *r);
void http_interest_reactivation(struct http_req *r);

#endif
