/* routes.c: {method, pattern, scope, handler} for every endpoint (API.md). */
#include "routes.h"

#include "config.h"
#include "http_accounts.h"
#include "http_aging.h"
#include "http_terminate.h"
#include "http_interest.h"
#include "http_limits.h"
#include "http_invoices.h"
#include "jobs.h"
#include "http_ops.h"
#include "http_payments.h"
#include "http_rates.h"
#include "http_refunds.h"
#include "http_reports.h"
#include "http_usage.h"

#define R_GET HTTP_GET
#define R_POST HTTP_POST
#define R_PUT HTTP_PUT
#define R_PATCH HTTP_PATCH

const struct route routes_table[] = {
    /* health (R9.4) */
    {R_GET, "/healthz", 0, http_ops_healthz, "healthz", false, "*"},
    /* R9.5: every call but /healthz needs a token; readiness is a read */
    {R_GET, "/readyz", SCOPE_READ, http_ops_readyz, "readyz", false, "*"},
    {R_GET, "/metrics", SCOPE_READ, http_ops_metrics, "metrics", false, "*"},
    /* accounts (R2) */
    {R_POST, "/v1/accounts", SCOPE_WRITE, http_accounts_create, "accounts_create", false, NULL},
    {R_GET, "/v1/accounts", SCOPE_READ, http_accounts_list, "accounts_list", false,
     "status limit cursor"},
    {R_GET, "/v1/accounts/{}", SCOPE_READ, http_accounts_get, "accounts_get", false, NULL},
    {R_PATCH, "/v1/accounts/{}", SCOPE_WRITE, http_accounts_patch, "accounts_patch", false, NULL},
    {R_POST, "/v1/accounts/{}/suspend", SCOPE_WRITE, http_accounts_suspend, "accounts_suspend",
     false, NULL},
    {R_POST, "/v1/accounts/{}/unsuspend", SCOPE_WRITE, http_accounts_unsuspend,
     "accounts_unsuspend", false, NULL},
    {R_GET, "/v1/accounts/{}/history", SCOPE_READ, http_accounts_history, "accounts_history", false,
     "limit cursor"},
    {R_POST, "/v1/accounts/{}/terminate", SCOPE_WRITE, http_terminate, "accounts_terminate", false,
     NULL},
    {R_POST, "/v1/accounts/{}/reactivation", SCOPE_WRITE, http_interest_reactivation,
     "accounts_reactivation", false, NULL},
    {R_GET, "/v1/invoices/{}/interest", SCOPE_READ, http_interest_get, "invoices_interest", false,
     "as_of"},
    /* limits (R4.6, R4.7) */
    {R_PUT, "/v1/accounts/{}/limits", SCOPE_WRITE, http_limits_put, "limits_put", false, NULL},
    {R_GET, "/v1/accounts/{}/limit-changes", SCOPE_READ, http_limits_changes, "limit_changes",
     false, "limit cursor"},
    {R_POST, "/v1/accounts/{}/limit-requests", SCOPE_WRITE, http_limits_request_create,
     "limit_requests_create", false, NULL},
    {R_GET, "/v1/limit-requests/{}", SCOPE_READ, http_limits_request_get, "limit_requests_get",
     false, NULL},
    {R_POST, "/v1/limit-requests/{}/approve", SCOPE_WRITE, http_limits_request_approve,
     "limit_requests_approve", false, NULL},
    {R_POST, "/v1/limit-requests/{}/decline", SCOPE_WRITE, http_limits_request_decline,
     "limit_requests_decline", false, NULL},
    /* payments (R6.1) */
    {R_POST, "/v1/payments", SCOPE_WRITE, http_payments_create, "payments_create", false, NULL},
    {R_GET, "/v1/payments", SCOPE_READ, http_payments_list, "payments_list", false,
     "account limit cursor"},
    {R_GET, "/v1/payments/{}", SCOPE_READ, http_payments_get, "payments_get", false, NULL},
    {R_POST, "/v1/payments/{}/reverse", SCOPE_WRITE, http_payments_reverse, "payments_reverse",
     false, NULL},
    {R_POST, "/v1/refunds", SCOPE_WRITE, http_refunds_create, "refunds_create", false, NULL},
    {R_GET, "/v1/refunds", SCOPE_READ, http_refunds_list, "refunds_list", false,
     "account limit cursor"},
    /* invoices and credit notes (R5.5, R5.7) */
    {R_GET, "/v1/invoices", SCOPE_READ, http_invoices_list, "invoices_list", false,
     "account period status limit cursor"},
    {R_GET, "/v1/invoices/{}", SCOPE_READ, http_invoices_get, "invoices_get", false, "format"},
    {R_POST, "/v1/invoices/{}/credit-notes", SCOPE_WRITE, http_invoices_credit_note,
     "credit_notes_create", false, NULL},
    /* jobs (R5.1) */
    {R_POST, "/v1/jobs/invoicing", SCOPE_OPS, jobs_http_invoicing, "jobs_invoicing", false, "wait"},
    {R_POST, "/v1/jobs/daily", SCOPE_OPS, jobs_http_daily, "jobs_daily", false, "wait"},
    {R_GET, "/v1/jobs", SCOPE_READ, jobs_http_list, "jobs_list", false, "kind limit cursor"},
    {R_GET, "/v1/jobs/{}", SCOPE_READ, jobs_http_get, "jobs_get", false, NULL},
    {R_GET, "/v1/schedule", SCOPE_READ, jobs_http_schedule, "schedule", false, NULL},
    /* reference data (R6.5) */
    {R_GET, "/v1/statutory-rates/{}", SCOPE_READ, http_rates_statutory, "statutory_rates", false,
     "date"},
    {R_GET, "/v1/reference-rates/{}", SCOPE_READ, http_rates_reference_get, "reference_rates_get",
     false, NULL},
    {R_PUT, "/v1/reference-rates/{}", SCOPE_ADMIN, http_rates_reference_put, "reference_rates_put",
     false, NULL},
    /* usage (R3) */
    {R_POST, "/v1/events", SCOPE_INGEST, http_usage_events, "events", false, NULL},
    {R_POST, "/v1/authorize", SCOPE_INGEST, http_usage_authorize, "authorize", false, NULL},
    /* reports (R7.2, R7.3) */
    {R_GET, "/v1/reports/aging", SCOPE_READ, http_aging_report, "reports_aging", false,
     "currency as_of format"},
    {R_GET, "/v1/reports/exposure", SCOPE_READ, http_reports_exposure, "reports_exposure", false,
     "status currency format"},
    {R_GET, "/v1/reports/suspensions", SCOPE_READ, http_reports_suspensions, "reports_suspensions",
     false, "from to format"},
    /* notifications outbox (R8.1) */
    {R_GET, "/v1/notifications", SCOPE_READ, http_ops_notifications, "notifications", false,
     "after limit kind account"},
    /* audit (R9.5) */
    {R_GET, "/v1/audit", SCOPE_ADMIN, http_ops_audit, "audit", false, "after limit"},
    /* test clock (R1.6): only with --test-clock */
    {R_GET, "/v1/test/clock", SCOPE_ADMIN, http_ops_clock_get, "test_clock_get", true, NULL},
    {R_PUT, "/v1/test/clock", SCOPE_ADMIN, http_ops_clock_put, "test_clock_put", true, NULL},
};
const int routes_count = (int)(sizeof(routes_table) / sizeof(routes_table[0]));

const char *const *
routes_names(void)
{
	static const char *names[sizeof(routes_table) / sizeof(routes_table[0])];

	for (int i = 0; i < routes_count; i++)
		names[i] = routes_table[i].name;
	return names;
}
