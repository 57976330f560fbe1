-- 0009_interest: overdue invoices and statutory interest (R6.2-R6.7).

-- The account shows which statutory rule applies to it (API.md "Account
-- object": statutory_rule), or null when its jurisdiction has none.
CREATE OR REPLACE VIEW account_view AS
SELECT a.id, a.seq, a.external_ref, a.name, a.currency, a.jurisdiction, a.status,
       array_to_json(a.reasons)::text AS reasons_json,
       a.monthly_limit, a.total_limit, a.monthly_usage, a.unbilled_usage, a.open_balance,
       a.accrued_interest, a.credit_balance,
       a.unbilled_usage + a.open_balance + a.accrued_interest - a.credit_balance AS exposure,
       a.contractual_rate, a.payment_terms_days,
       (SELECT sr.jurisdiction FROM statutory_rules sr
         WHERE sr.jurisdiction = a.jurisdiction) AS statutory_rule,
       coalesce((SELECT json_agg(json_strip_nulls(json_build_object(
                    'id', c.id,
                    'monthly_limit', CASE WHEN c.set_monthly
                                          THEN to_json(creditd_amount(c.monthly_limit)) END,
                    'monthly_limit_removed', CASE WHEN c.set_monthly AND c.monthly_limit IS NULL
                                                  THEN true END,
                    'total_limit', CASE WHEN c.set_total
                                        THEN to_json(creditd_amount(c.total_limit)) END,
                    'total_limit_removed', CASE WHEN c.set_total AND c.total_limit IS NULL
                                                THEN true END,
                    'effective_at', to_char(c.effective_at AT TIME ZONE 'UTC',
                                            'YYYY-MM-DD"T"HH24:MI:SS"Z"')))
                   ORDER BY c.effective_at, c.id)
                   FROM limit_changes c WHERE c.account_id = a.id AND c.status = 'scheduled'),
                '[]')::text AS pending_json,
       creditd_us(a.created_at) AS created_us, creditd_us(a.terminated_at) AS terminated_us,
       a.usage_month - date '1970-01-01' AS usage_month_day
  FROM accounts a;
