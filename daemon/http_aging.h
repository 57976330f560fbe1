/* http_aging.h: the accounts receivable aging report (R7.1, R7.3; API.md
 * "Reports"), as JSON or, with ?format=csv or Accept: text/csv, RFC 4180
 * CSV. The per-invoice rows come from creditd_aging() in
 * sql/0008_termination.sql; this file groups and totals them. */
#ifndef CREDITD_HTTP_AGING_H
#define CREDITD_HTTP_AGING_H

#include "http.h"

/* GET /v1/reports/aging?currency=&as_of=YYYY-MM-DD&format=json|csv (read).
 *
 * Open invoice balances as of the end of as_of (default: today in the
 * billing zone) of invoices issued on or before it, per currency, in the
 * buckets current (not yet due), 1-30, 31-60, 61-90 and 90+ days past the
 * effective due date (invoices.effective_due_date: the due date moved to the
 * termination day, R5.6). Payments and credit notes dated after as_of do not
 * count; reversed payments never count.
 *
 * JSON: {"as_of", "currency": filter | null, "currencies": [{"currency",
 *   "totals": {"current","1-30","31-60","61-90","90+","total"},
 *   "buckets": {"current": {"total", "accounts": [{"id","external_ref",
 *               "name","amount"}]}, "1-30": ..., ...},
 *   "accounts": [{"id","external_ref","name","status","current",...,"90+",
 *                 "total", "invoices": [{"id","number","issue_date",
 *                 "due_date" (effective),"original_due_date","balance",
 *                 "days_overdue","bucket"}]}]}]}
 * sorted by currency, then external_ref. With a currency filter and nothing
 * open, that currency is listed with zero totals.
 * CSV: kind,currency,account,external_ref,name,current,1-30,31-60,61-90,90+,
 * total; one "account" row per account and currency, then one "total" row
 * per currency. */
void http_aging_report(struct http_req *r);

#endif
