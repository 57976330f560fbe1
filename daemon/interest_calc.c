/* interest_calc.c: interest_inputs row -> interest engine input. */
#include "interest_calc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "http_util.h"
#include "log.h"
#include "rates.h"
#include "xmalloc.h"

/* The opening principal dated the due date, then "day:amount,..." changes;
 * a change before the due date just lowers the opening balance. */
static size_t
interest_calc_changes(const char *s, int32_t due, int64_t principal, struct interest_change **out)
{
	size_t n = 1, cap = 8;
	struct interest_change *c = xcalloc(cap, sizeof *c);

	c[0].day = due;
	c[0].amount = principal;
	while (*s) {
		char *end;
		long d = strtol(s, &end, 10);
		long long a;

		if (*end != ':')
			break;
		a = strtoll(end + 1, &end, 10);
		if (n == cap) {
			cap *= 2;
			c = xreallocarray(c, cap, sizeof *c);
		}
		c[n].day = d < due ? due : (int32_t)d;
		c[n].amount = a;
		n++;
		s = *end == ',' ? end + 1 : end;
	}
	*out = c;
	return n;
}

/* The earlier contract terms, "through:rate:jurisdiction,..." ascending
 * (interest_inputs.terms, R6.4), parsed in place of a copy (*buf, freed by
 * the caller): jurisdictions point into it. Malformed text ends the list. */
static size_t
interest_calc_terms(const char *s, char **buf, struct interest_terms **out)
{
	size_t n = 0, cap = 0;
	struct interest_terms *t = NULL;
	char *p = *buf = xstrdup(s);

	while (*p) {
		char *end, *jur;
		long d = strtol(p, &end, 10), rate;

		if (*end != ':')
			break;
		rate = strtol(end + 1, &end, 10);
		if (*end != ':' || rate < 0 || rate > INT32_MAX)
			break;
		jur = end + 1;
		end = jur + strcspn(jur, ",");
		p = *end == ',' ? end + 1 : end;
		*end = '\0';
		if (n == cap) {
			cap = cap ? cap * 2 : 4;
			t = xreallocarray(t, cap, sizeof *t);
		}
		t[n].through = (int32_t)d;
		t[n].contractual_rate = (int32_t)rate;
		t[n].jurisdiction = jur;
		n++;
	}
	*out = t;
	return n;
}

int
interest_calc(struct app *app, const PGresult *pg, int row, int32_t from, int32_t to,
              struct interest_result *out)
{
	const char *id = PQgetvalue(pg, row, col(pg, "invoice_id"));
	int32_t due = (int32_t)col_i64(pg, row, col(pg, "due_day"));
	struct interest_change *changes;
	size_t n = interest_calc_changes(PQgetvalue(pg, row, col(pg, "changes")), due,
	                                 col_i64(pg, row, col(pg, "principal")), &changes);
	char *terms_buf;
	struct interest_terms *terms;
	size_t nterms =
	    interest_calc_terms(PQgetvalue(pg, row, col(pg, "terms")), &terms_buf, &terms);
	struct interest_input in = {
	    .due_date = due,
	    .changes = changes,
	    .nchanges = n,
	    .contractual_rate = (int32_t)col_i64(pg, row, col(pg, "contractual_rate")),
	    .jurisdiction = PQgetvalue(pg, row, col(pg, "jurisdiction")),
	    .terms = terms,
	    .nterms = nterms,
	    /* config and engine list the conventions in the same order */
	    .daycount = (enum daycount)app->cfg->day_count,
	    .rates = rates_table(app->rates),
	    /* R6.5: a day without statutory rate data (HR before 2023, a series
	     * not shipped that far back) bears the contractual rate; the other
	     * days keep theirs, so that any date range gives the same answer (R6.4) */
	    .fallback_contractual = true,
	};
	char err[160];
	int rc = interest_compute(&in, from, to, out, err, sizeof err);

	if (rc == 0 && out->missing_days > 0)
		log_warnx("interest: invoice %s: jurisdiction %s has no statutory rate for %d "
		          "days; the contractual rate applies to them",
		          id, in.jurisdiction, (int)out->missing_days);
	if (rc != 0)
		log_errorx("interest: invoice %s: %s", id, err);
	free(changes);
	free(terms);
	free(terms_buf);
	return rc == 0 ? 0 : -1;
}
