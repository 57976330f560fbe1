/* http_rates.h: statutory rates and reference series (R6.5, API.md
 * "Reference data"). */
#ifndef CREDITD_HTTP_RATES_H
#define CREDITD_HTTP_RATES_H

#include "http.h"

void http_rates_statutory(struct http_req *r);
void http_rates_reference_get(struct http_req *r);
void http_rates_reference_put(struct http_req *r);

#endif
