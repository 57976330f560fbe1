/* http_refunds.h: refunds paid out of an account's unapplied credit (R5.6,
 * R6.1; beyond API.md, see README "API summary"). Mirrors payments: write
 * scope, the id as idempotency key, the same parsing and error shapes. The
 * rules live in sql/0039_refunds.sql (creditd_refund_book). */
#ifndef CREDITD_HTTP_REFUNDS_H
#define CREDITD_HTTP_REFUNDS_H

#include "http.h"

/* POST /v1/refunds {"id","account","amount","paid_at","reference"?}
 * -> 201 {"refund": {"id","account","amount","paid_at","reference",
 * "created_at"}, "credit"} (credit: the account's unapplied credit after it);
 * the same id and body again -> 200 with the same body; other body -> 409.
 * More than the unapplied credit -> 422 invalid_state, field amount. */
void http_refunds_create(struct http_req *r);
/* GET /v1/refunds?account=&limit=&cursor= -> list of refunds. */
void http_refunds_list(struct http_req *r);

#endif
