/* http_payments.h: POST /v1/payments (R6.1), minimal form of issue 3: the
 * amount becomes account credit and the account's suspension reasons are
 * re-evaluated in the same transaction (R4.5). */
#ifndef CREDITD_HTTP_PAYMENTS_H
#define CREDITD_HTTP_PAYMENTS_H

#include "http.h"

void http_payments_create(struct http_req *r);

#endif
