/* http_payments.h: payments (R6.1, API.md "Payments"). A payment is
 * allocated to the account's open invoices (oldest due first, or the one it
 * names; compensation, interest, usage within each), the remainder becomes
 * account credit, and suspension reasons are re-evaluated in the same
 * transaction (R4.5). A reversal undoes it. The rules live in
 * sql/0007_payment_allocation.sql. */
#ifndef CREDITD_HTTP_PAYMENTS_H
#define CREDITD_HTTP_PAYMENTS_H

#include "http.h"

/* How far ahead of now a received_at may lie (clock skew of the bank feed);
 * http_refunds.c allows the same for a refund's paid_at. */
#define PAYMENT_FUTURE_SKEW_US INT64_C(300000000)

/* POST /v1/payments -> 201 {"payment","account","allocations","credit"};
 * the same id and body again -> 200 with the same body. */
void http_payments_create(struct http_req *r);
/* POST /v1/payments/{id}/reverse {"reason"} -> 200 payment. */
void http_payments_reverse(struct http_req *r);
/* GET /v1/payments?account=&limit=&cursor= -> list of payments. */
void http_payments_list(struct http_req *r);
/* GET /v1/payments/{id} -> payment. */
void http_payments_get(struct http_req *r);

#endif
