/* interest_calc.h: run the interest engine (common/interest.c) for one row
 * of the interest_inputs view (sql/0009_interest.sql): the invoice's due
 * date, usage principal and dated usage changes, the account's rate and
 * jurisdiction, with the configured day count and the rate tables. Shared
 * by the daily job and GET /v1/invoices/{id}/interest. */
#ifndef CREDITD_INTEREST_CALC_H
#define CREDITD_INTEREST_CALC_H

#include <libpq-fe.h>
#include <stdint.h>

#include "interest.h"

struct app;

/* Interest for days [from, to] (inclusive). A jurisdiction with a rule but
 * no rate data for a day falls back to the contractual rate (logged).
 * 0, or -1 with *out untouched. */
int interest_calc(struct app *app, const PGresult *pg, int row, int32_t from, int32_t to,
                  struct interest_result *out);
/* The interest_inputs columns to select. */
#define INTEREST_INPUTS_SELECT "SELECT * FROM interest_inputs "

#endif
