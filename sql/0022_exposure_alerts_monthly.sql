-- 0022_exposure_alerts_monthly: exposure alerts at most once per threshold
-- and billing month (R4.4), tests/integration/test_alerts_monthly.py.
--
-- R4.4 sends "a notification when monthly usage or exposure first crosses
-- each configured threshold of its limit in a month". accounts.exposure_alerted
-- (the highest threshold of the total limit already announced) was reset
-- whenever an evaluation found exposure below the lowest threshold (0002:
-- "re-arm after paying down"), so a customer who paid down and used again
-- got the 80 % alert twice in one month; and nothing reset it at the month
-- rollover, so while exposure stayed at or over a threshold no later month
-- alerted it again.
--
-- Reading implemented: per threshold at most one exposure alert per billing
-- month (R1.5, billing time zone), sent by the first evaluation in that
-- month that finds exposure at or over it. exposure_alerted now means what
-- 0001 says of both counters: the highest threshold announced in the
-- account's current billing month (usage_month), like monthly_alerted.
--  * Paying down no longer re-arms (creditd_evaluate_limits).
--  * The month rollover re-arms, as it does monthly_alerted, and its own
--    evaluation (cause month_rollover, at the start of the month in the
--    billing zone) sends the alerts of the thresholds exposure is still at
--    or over: one per threshold, at once, not at the next event or daily job.
--  * A limit change that sets the total limit re-arms (0003, unchanged).
-- The rollover reaches an account some time after the month began (it
-- takes the account's lock, possibly after an ingest or the daily job). An
-- alert sent in that window belongs to the new month: exposure_alerted_at
-- (new, the time of the last exposure alert) is compared with the month's
-- start and such a level is kept, so no threshold is announced twice in the
-- new month (a lower threshold that the window's alert skipped over is then
-- not announced again that month: at most once wins over at least once).
-- Readers of exposure_alerted: creditd_evaluate_limits (below);
-- creditd_daily_limits (0020: "a reached threshold has not been alerted"
-- reads the same level and needs no change); creditd_apply_limit_change
-- (0003: resets it on a new total limit; exposure_alerted_at needs no reset
-- there, a level of 0 is kept or reset alike). The ingest (0017) selects
-- accounts by thresholds only and does no new work per event.
-- Rows from before this migration have exposure_alerted_at NULL: their
-- level counts until the next rollover, which resets it.

ALTER TABLE accounts ADD COLUMN exposure_alerted_at timestamptz;

-- 0002's function (the latest body) without the re-arm after paying down,
-- recording when an exposure alert was sent.
CREATE OR REPLACE FUNCTION creditd_evaluate_limits(p_account uuid, p_thresholds int[],
                                                   p_cause text, p_actor text,
                                                   p_at timestamptz, p_rid text)
RETURNS accounts LANGUAGE plpgsql AS $$
DECLARE
    a accounts;
    exposure bigint;
    add_r text[] := '{}';
    rem_r text[] := '{}';
    t int;
    pct_m int := 0;
    pct_e int := 0;
BEGIN
    SELECT * INTO a FROM accounts WHERE id = p_account FOR UPDATE;
    IF a.status = 'terminated' THEN
        RETURN a;
    END IF;
    exposure := a.unbilled_usage + a.open_balance + a.accrued_interest - a.credit_balance;
    IF a.monthly_limit IS NOT NULL AND a.monthly_usage >= a.monthly_limit THEN
        add_r := array_append(add_r, 'monthly_limit');
    END IF;
    IF a.total_limit IS NOT NULL AND exposure >= a.total_limit THEN
        add_r := array_append(add_r, 'total_limit');
    ELSIF 'total_limit' = ANY (a.reasons) THEN
        rem_r := array_append(rem_r, 'total_limit');      -- R4.5: below the total limit again
    END IF;
    IF 'monthly_limit' = ANY (a.reasons) AND (a.monthly_limit IS NULL
                                               OR a.monthly_usage < a.monthly_limit) THEN
        -- a raised or removed monthly limit lifts it (R4.6 re-evaluation)
        IF p_cause IN ('limit_change', 'month_rollover', 'payment') THEN
            rem_r := array_append(rem_r, 'monthly_limit');
        END IF;
    END IF;
    -- R4.4: thresholds first crossed this month; both levels are re-armed
    -- only by the month rollover and by a new limit (0022: not by paying down)
    pct_m := creditd_alert_percent(a.monthly_usage, a.monthly_limit);
    pct_e := creditd_alert_percent(exposure, a.total_limit);
    FOREACH t IN ARRAY coalesce(p_thresholds, '{}') LOOP
        IF pct_m >= t AND a.monthly_alerted < t THEN
            PERFORM creditd_notify(a.id, 'usage.threshold', p_at,
                jsonb_build_object('account', a.id, 'external_ref', a.external_ref,
                                   'limit', 'monthly', 'threshold_percent', t,
                                   'usage', creditd_amount(a.monthly_usage),
                                   'limit_amount', creditd_amount(a.monthly_limit)));
            UPDATE accounts SET monthly_alerted = t WHERE id = a.id;
        END IF;
        IF pct_e >= t AND a.exposure_alerted < t THEN
            PERFORM creditd_notify(a.id, 'usage.threshold', p_at,
                jsonb_build_object('account', a.id, 'external_ref', a.external_ref,
                                   'limit', 'total', 'threshold_percent', t,
                                   'exposure', creditd_amount(exposure),
                                   'limit_amount', creditd_amount(a.total_limit)));
            UPDATE accounts SET exposure_alerted = t, exposure_alerted_at = p_at
             WHERE id = a.id;
        END IF;
    END LOOP;
    IF cardinality(add_r) > 0 OR cardinality(rem_r) > 0 THEN
        a := creditd_change_reasons(a.id, add_r, rem_r, p_cause, p_actor, NULL, p_at, p_rid);
    ELSE
        SELECT * INTO a FROM accounts WHERE id = p_account;
    END IF;
    RETURN a;
END
$$;

-- 0018's function (the latest body), re-arming the exposure alerts as well:
-- a level reached before p_month_start belongs to an earlier month.
CREATE OR REPLACE FUNCTION creditd_month_rollover_accounts(p_month date,
                                                           p_month_start timestamptz,
                                                           p_thresholds int[], p_at timestamptz)
RETURNS SETOF uuid LANGUAGE plpgsql AS $$
DECLARE
    acc uuid;
    a accounts;
    since timestamptz;
BEGIN
    FOR acc IN SELECT id FROM accounts WHERE usage_month < p_month ORDER BY id LOOP
        -- the lock first: an ingest holding it commits before the count
        -- below takes its snapshot (READ COMMITTED: one per statement)
        SELECT * INTO a FROM accounts WHERE id = acc FOR UPDATE;
        CONTINUE WHEN a.usage_month >= p_month;   -- rolled over meanwhile (another daemon)
        since := CASE WHEN a.monthly_since >= p_month_start THEN a.monthly_since END;
        UPDATE accounts SET usage_month = p_month,
               monthly_usage = (SELECT coalesce(sum(e.amount), 0) FROM events e
                                 WHERE e.account_id = acc AND e.period = p_month
                                   AND (since IS NULL OR e.occurred_at >= since)),
               monthly_since = since, monthly_alerted = 0,
               -- R4.4 (0022): a new month re-arms; an alert already sent
               -- in this month (before the rollover reached the account) stays
               exposure_alerted = CASE WHEN a.exposure_alerted_at >= p_month_start
                                       THEN a.exposure_alerted ELSE 0 END,
               updated_at = p_at
         WHERE id = acc;
        PERFORM creditd_evaluate_limits(acc, p_thresholds, 'month_rollover', 'system', p_at,
                                        NULL);
        RETURN NEXT acc;
    END LOOP;
END
$$;
