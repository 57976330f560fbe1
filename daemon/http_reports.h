/* http_reports.h: reports (R7.2, R7.3; API.md "Reports"), each as JSON or,
 * with ?format=csv or Accept: text/csv, as RFC 4180 CSV. Not paged. */
#ifndef CREDITD_HTTP_REPORTS_H
#define CREDITD_HTTP_REPORTS_H

#include "http.h"

/* GET /v1/reports/exposure?status=&currency=: every account's monthly usage,
 * exposure, limits, remainings and headroom (the smaller remaining), sorted by
 * headroom (accounts without limits last), then external_ref; per-currency
 * totals in JSON. */
void http_reports_exposure(struct http_req *r);
/* GET /v1/reports/suspensions?from=YYYY-MM-DD&to=YYYY-MM-DD: status and
 * suspension reason changes (account_history without the creation rows),
 * newest first; from/to are inclusive billing-zone days, both optional. */
void http_reports_suspensions(struct http_req *r);

#endif
