/* account_view.c: account JSON. */
#include "account_view.h"

#include "http_util.h"
#include "money.h"

/* limit - used, never below zero; null without a limit. */
static json_t *
account_view_remaining(const PGresult *res, int row, int limit_col, int64_t used)
{
	int64_t limit, rem;

	if (PQgetisnull(res, row, limit_col))
		return json_null();
	limit = col_i64(res, row, limit_col);
	if (money_sub(limit, used, &rem) != 0 || rem < 0)
		rem = 0;
	return j_money(rem);
}

json_t *
account_view_json(const PGresult *res, int row)
{
	int64_t monthly = col_i64(res, row, col(res, "monthly_usage"));
	int64_t exposure = col_i64(res, row, col(res, "exposure"));
	json_t *o = json_object();

	json_object_set_new(o, "id", j_text_col(res, row, col(res, "id")));
	json_object_set_new(o, "external_ref", j_text_col(res, row, col(res, "external_ref")));
	json_object_set_new(o, "name", j_text_col(res, row, col(res, "name")));
	json_object_set_new(o, "currency", j_text_col(res, row, col(res, "currency")));
	json_object_set_new(o, "jurisdiction", j_text_col(res, row, col(res, "jurisdiction")));
	json_object_set_new(o, "status", j_text_col(res, row, col(res, "status")));
	json_object_set_new(o, "suspension_reasons",
	                    j_json_col(res, row, col(res, "reasons_json")));
	json_object_set_new(o, "monthly_limit", j_money_col(res, row, col(res, "monthly_limit")));
	json_object_set_new(o, "total_limit", j_money_col(res, row, col(res, "total_limit")));
	json_object_set_new(o, "monthly_usage", j_money(monthly));
	json_object_set_new(o, "monthly_remaining",
	                    account_view_remaining(res, row, col(res, "monthly_limit"), monthly));
	json_object_set_new(o, "exposure", j_money(exposure));
	json_object_set_new(o, "total_remaining",
	                    account_view_remaining(res, row, col(res, "total_limit"), exposure));
	json_object_set_new(o, "unbilled_usage", j_money_col(res, row, col(res, "unbilled_usage")));
	json_object_set_new(o, "open_balance", j_money_col(res, row, col(res, "open_balance")));
	json_object_set_new(o, "accrued_interest",
	                    j_money_col(res, row, col(res, "accrued_interest")));
	json_object_set_new(o, "credit_balance", j_money_col(res, row, col(res, "credit_balance")));
	json_object_set_new(o, "contractual_rate",
	                    j_rate_col(res, row, col(res, "contractual_rate")));
	json_object_set_new(o, "payment_terms_days",
	                    j_int_col(res, row, col(res, "payment_terms_days")));
	json_object_set_new(o, "statutory_rule", j_text_col(res, row, col(res, "statutory_rule")));
	json_object_set_new(o, "pending_limit_changes",
	                    j_json_col(res, row, col(res, "pending_json")));
	json_object_set_new(o, "created_at", j_ts_col(res, row, col(res, "created_us")));
	json_object_set_new(o, "terminated_at", j_ts_col(res, row, col(res, "terminated_us")));
	return o;
}
