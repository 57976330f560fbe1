/* http_payments.h: payments (R6.1, API.md "Payments"). A payment is
 * allocated to the account's open invoices (oldest due first, or the one it
 * names; compensation, interest, usage within each), the remainder becomes
 * account credit, and suspension reasons are re-evaluated in the same
 * transaction (R4.5). A reversal undoes it. The rules live in
 * sql/0007_payment_allocation.sql. */
#ifndef CREDITD_HTTP_PAYMENTS_H
#define CREDITD_HTTP_PAYMENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "http.h"

/* The checks a payment and a refund (http_refunds.c) share, after their
 * fields' types were read: `id_raw` a UUID (canonical into id), `amount`
 * > 0, the time `at` (field `at_key`) at most the bank feed's clock skew
 * ahead of now, `account` a UUID or ext:<ref> (into the two params of
 * "WHERE id = $a OR external_ref = $b"). False after answering 400 naming
 * the first field that fails, in that order. */
bool money_move_ok(struct http_req *r, const char *id_raw, char id[37], int64_t amount, int64_t at,
                   const char *at_key, const char *account, const char **acc_id,
                   const char **acc_ext);

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
