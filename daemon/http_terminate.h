/* http_terminate.h: account termination (R5.6, R3.5; API.md "Accounts").
 * The rules live in sql/0008_termination.sql (creditd_account_terminate). */
#ifndef CREDITD_HTTP_TERMINATE_H
#define CREDITD_HTTP_TERMINATE_H

#include "http.h"

/* POST /v1/accounts/{account}/terminate {"note"} (write scope), one
 * transaction: status terminated as of now, a final invoice (kind "final",
 * due at issue) for all unbilled usage, unpaid invoices due at the
 * termination day (invoices.effective_due_date), remaining credit set off
 * against open invoices, then refundable (payments received in the 7
 * billing-zone days before) and forfeited credit.
 * -> 200 {"account": account, "final_invoice": {"id","number","kind","period",
 *    "issue_date","due_date","total","credit_applied","balance"} | null,
 *    "refundable", "forfeited", "credit_set_off",
 *    "accelerated_invoices": [{"id","number","original_due_date","due_date"}]}
 * 404 unknown account, 422 invalid_state when already terminated. The
 * authorization cache is updated before the answer, so events that occurred
 * after the termination are rejected (account_terminated) from then on. */
void http_terminate(struct http_req *r);

#endif
