-- 0011_limits_numeric: the usage-alert percentages of creditd_evaluate_limits
-- are computed in numeric, so that a huge usage cannot overflow bigint and
-- fail the whole ingest batch (R1.1: overflow fails loudly, but only where
-- it is a real amount).
CREATE OR REPLACE FUNCTION creditd_alert_percent(p_used bigint, p_limit bigint) RETURNS int
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_limit IS NULL OR p_limit <= 0 THEN 0
                ELSE least(floor(greatest(p_used, 0)::numeric * 100 / p_limit), 100000)::int END
$$;

CREATE OR REPLACE FUNCTION creditd_evaluate_limits(p_account uuid, p_thresholds int[], p_cause text,
                                        p_actor text, p_at timestamptz, p_rid text)
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
    -- R4.4: thresholds first crossed this month
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
            UPDATE accounts SET exposure_alerted = t WHERE id = a.id;
        END IF;
    END LOOP;
    IF pct_e < coalesce(p_thresholds[1], 0) AND a.exposure_alerted > 0 THEN
        UPDATE accounts SET exposure_alerted = 0 WHERE id = a.id;  -- re-arm after paying down
    END IF;
    IF cardinality(add_r) > 0 OR cardinality(rem_r) > 0 THEN
        a := creditd_change_reasons(a.id, add_r, rem_r, p_cause, p_actor, NULL, p_at, p_rid);
    ELSE
        SELECT * INTO a FROM accounts WHERE id = p_account;
    END IF;
    RETURN a;
END
$$;
