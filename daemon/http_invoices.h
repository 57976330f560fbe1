/* http_invoices.h: reading invoices as JSON and as a printable HTML page
 * (R5.7, API.md "Invoices and credit notes") and issuing credit notes
 * against them (R5.5). */
#ifndef CREDITD_HTTP_INVOICES_H
#define CREDITD_HTTP_INVOICES_H

#include <stddef.h>

#include "http.h"

struct evbuffer;

/* GET /v1/invoices?account=&period=YYYY-MM&status=open|paid|overdue&limit=&cursor= */
void http_invoices_list(struct http_req *r);
/* GET /v1/invoices/{id-or-number}; ?format=html or Accept: text/html gives
 * the printable page. */
void http_invoices_get(struct http_req *r);
/* POST /v1/invoices/{id-or-number}/credit-notes {amount, reason} */
void http_invoices_credit_note(struct http_req *r);

/* Append s (len bytes) to out with the HTML special characters & < > " '
 * escaped; safe in element content and in quoted attribute values. */
void http_invoices_html_escape(struct evbuffer *out, const char *s, size_t len);

#endif
