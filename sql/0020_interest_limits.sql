-- 0020_interest_limits: interest that takes exposure to the total limit
-- suspends the account (R4.2, R4.3), found by
-- tests/integration/test_audit_usage.py (test_96).
--
-- Accrued interest is exposure (R4.2), and R4.3 suspends with reason
-- total_limit "when exposure reaches the total limit", whatever moved it.
-- The ingest re-evaluates the accounts its events bring to a threshold; the
-- daily job updated accounts.accrued_interest (creditd_daily_overdue_part,
-- 0012) without re-evaluating them, so an account whose interest crossed the
-- limit stayed active (authorize already refused it: its headroom was 0) and
-- got neither the total_limit suspension, its history and notification, nor
-- the usage alerts of R4.4. After the accruals the daily job now
-- re-evaluates every account that is not terminated and whose exposure is
-- at the lowest alert threshold of its total limit or above, as the ingest
-- does for usage (creditd_evaluate_limits, cause 'interest'), when that
-- would change something: the total_limit reason is missing, or a threshold
-- reached has not been alerted. Accounts already suspended and alerted are
-- not locked and re-evaluated again every day; running the job twice
-- changes nothing.
CREATE FUNCTION creditd_daily_limits(p_thresholds int[], p_at timestamptz)
RETURNS SETOF uuid LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    min_pct int := least(coalesce((SELECT min(t) FROM unnest(p_thresholds) t), 100), 100);
    acc uuid;
BEGIN
    FOR acc IN SELECT a.id
                 FROM accounts a
                CROSS JOIN LATERAL (SELECT a.unbilled_usage + a.open_balance + a.accrued_interest
                                           - a.credit_balance AS exposure) x
                WHERE a.status <> 'terminated' AND a.total_limit IS NOT NULL
                  AND x.exposure >= creditd_pct_ceil(a.total_limit, min_pct)
                  AND ((x.exposure >= a.total_limit AND NOT 'total_limit' = ANY (a.reasons))
                       OR EXISTS (SELECT 1 FROM unnest(p_thresholds) t
                                   WHERE x.exposure >= creditd_pct_ceil(a.total_limit, t)
                                     AND a.exposure_alerted < t))
                ORDER BY a.id LOOP
        PERFORM creditd_evaluate_limits(acc, p_thresholds, 'interest', 'system', p_at, NULL);
        RETURN NEXT acc;
    END LOOP;
END
$$;
