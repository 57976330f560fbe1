-- 0018_audit_usage: corrections of the monthly usage counter (R4.1) and of
-- limit changes (R4.6), found by
-- tests/integration/test_audit_usage.py.
--
-- 1. A payment restarted the monthly counter whenever it brought exposure to
--    zero or below, also on accounts that were not suspended for
--    monthly_limit (or had no monthly limit at all): a customer who paid
--    this month's usage in advance could spend the monthly limit again.
--    R4.1 counts from "the last payment that lifted a monthly_limit
--    suspension", so the counter now restarts only when the payment lifts
--    one (R4.5).
--
-- 2. The month rollover set the counter to 0. Events of the new month that
--    committed before the rollover reached their account (a counter still
--    on the old month takes only unbilled usage: 0013/0017) were lost from
--    the new month's usage, e.g. while the rollover waited for another
--    account's lock, or ran late after an outage. The rollover now locks
--    each account first and then counts the new month's events already
--    stored (one index probe per account on events_account_period); an
--    ingest that commits after it finds the counter on the new month and
--    adds to it as before.
--
-- 3. A newer limit change superseded only scheduled changes that set
--    nothing but the limits it sets. A scheduled change of both limits
--    (say monthly 100 -> 50 and total 1000 -> 500) survived a later change
--    of the monthly limit alone (a raise to 200, applied at once) and, when
--    it fell due, set the monthly limit back to 50: an older decision undid
--    a newer one (R4.6). Now such a change is superseded as well and its
--    other part (total 500, same time, reason and actor) is scheduled again.
--
-- 4. With limits.limit_notice_days = 0 a lowering was stored as scheduled
--    for "now" and answered {"applied": false}; the scheduler applied it a
--    moment later, so a read right after the answer still saw the old
--    limit. No sooner than 0 days is at once: it is applied in the request.

-- Full body of 0003's function with the condition of (1).
CREATE OR REPLACE FUNCTION creditd_payment_reevaluate(p_account uuid, p_thresholds int[],
                                                      p_at timestamptz, p_actor text,
                                                      p_rid text)
RETURNS accounts LANGUAGE plpgsql AS $$
DECLARE
    a accounts;
BEGIN
    SELECT * INTO a FROM accounts WHERE id = p_account FOR UPDATE;
    -- R4.5: exposure at zero or below lifts monthly_limit (creditd_evaluate_limits,
    -- cause 'payment'); R4.1: the counter then counts from this payment
    IF 'monthly_limit' = ANY (a.reasons) AND a.status <> 'terminated'
       AND a.unbilled_usage + a.open_balance + a.accrued_interest - a.credit_balance <= 0 THEN
        UPDATE accounts SET monthly_since = p_at, monthly_usage = 0, monthly_alerted = 0
         WHERE id = p_account;
    END IF;
    RETURN creditd_evaluate_limits(p_account, p_thresholds, 'payment', p_actor, p_at, p_rid);
END
$$;

-- 0002's function, counting the new month's stored events instead of
-- starting from 0 (2). A counter restarted by a payment within the new
-- month (before the rollover reached the account) keeps its start.
-- p_month_start: the instant the month began in the billing time zone (the
-- daemon's tz module; the session's TimeZone is not the billing zone, so
-- p_month::timestamptz would be the wrong instant, R1.5).
DROP FUNCTION creditd_month_rollover_accounts(date, int[], timestamptz);
CREATE FUNCTION creditd_month_rollover_accounts(p_month date, p_month_start timestamptz,
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
               monthly_since = since, monthly_alerted = 0, updated_at = p_at
         WHERE id = acc;
        PERFORM creditd_evaluate_limits(acc, p_thresholds, 'month_rollover', 'system', p_at,
                                        NULL);
        RETURN NEXT acc;
    END LOOP;
END
$$;

-- 0003's function (full body) with the supersede step of (3) and (4).
CREATE OR REPLACE FUNCTION creditd_set_limits(p_id uuid, p_ext text,
                                   p_set_m boolean, p_m bigint, p_set_t boolean, p_t bigint,
                                   p_effective timestamptz, p_override boolean, p_reason text,
                                   p_notice_days int, p_thresholds int[], p_at timestamptz,
                                   p_actor text, p_rid text,
                                   OUT applied boolean, OUT effective_at timestamptz,
                                   OUT account_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
    a accounts;
    lower_m boolean;
    lower_t boolean;
    earliest timestamptz := p_at + make_interval(days => p_notice_days);
    eff timestamptz;
    now_m boolean;
    now_t boolean;
    cid bigint;
    prev limit_changes;
BEGIN
    SELECT * INTO a FROM accounts WHERE id = p_id OR external_ref = p_ext FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account not found' USING ERRCODE = 'CR404';
    END IF;
    IF a.status = 'terminated' THEN
        RAISE EXCEPTION 'account is terminated' USING ERRCODE = 'CR422';
    END IF;
    account_id := a.id;
    lower_m := p_set_m AND p_m IS NOT NULL AND (a.monthly_limit IS NULL OR p_m < a.monthly_limit);
    lower_t := p_set_t AND p_t IS NOT NULL AND (a.total_limit IS NULL OR p_t < a.total_limit);
    IF p_effective IS NOT NULL AND p_effective < p_at THEN
        RAISE EXCEPTION 'effective_at is in the past' USING ERRCODE = 'CR400',
            DETAIL = 'effective_at';
    END IF;
    IF (lower_m OR lower_t) AND NOT p_override AND p_effective IS NOT NULL
       AND p_effective < earliest THEN
        RAISE EXCEPTION 'a lower limit takes effect no sooner than % days after notice (%)',
            p_notice_days, to_char(earliest AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
            USING ERRCODE = 'CR423', DETAIL = 'effective_at';
    END IF;
    IF p_effective IS NOT NULL AND p_effective > p_at THEN
        eff := p_effective;                 -- everything at the chosen time
        now_m := false;
        now_t := false;
    ELSIF p_override THEN
        eff := p_at;                        -- audited override: everything now
        now_m := p_set_m;
        now_t := p_set_t;
    ELSE
        eff := earliest;                    -- raises now, lowerings after notice
        -- (4) with no notice period (limit_notice_days = 0) lowerings too
        now_m := p_set_m AND (NOT lower_m OR earliest <= p_at);
        now_t := p_set_t AND (NOT lower_t OR earliest <= p_at);
    END IF;
    -- this request replaces what scheduled changes say about the limits it
    -- sets (3): such a change is superseded, and what it says about the
    -- other limit is scheduled again as it was (same time, reason, actor)
    FOR prev IN SELECT * FROM limit_changes c
                WHERE c.account_id = a.id AND c.status = 'scheduled'
                  AND ((c.set_monthly AND p_set_m) OR (c.set_total AND p_set_t))
                ORDER BY c.id FOR UPDATE LOOP
        UPDATE limit_changes SET status = 'superseded' WHERE id = prev.id;
        IF (prev.set_monthly AND NOT p_set_m) OR (prev.set_total AND NOT p_set_t) THEN
            INSERT INTO limit_changes (account_id, set_monthly, monthly_limit, set_total,
                                       total_limit, effective_at, status, override, reason,
                                       actor, request_id, created_at)
            VALUES (a.id, prev.set_monthly AND NOT p_set_m,
                    CASE WHEN prev.set_monthly AND NOT p_set_m THEN prev.monthly_limit END,
                    prev.set_total AND NOT p_set_t,
                    CASE WHEN prev.set_total AND NOT p_set_t THEN prev.total_limit END,
                    prev.effective_at, 'scheduled', prev.override, prev.reason, prev.actor,
                    prev.request_id, prev.created_at);
        END IF;
    END LOOP;
    IF now_m OR now_t THEN
        INSERT INTO limit_changes (account_id, set_monthly, monthly_limit, set_total, total_limit,
                                   effective_at, status, override, reason, actor, request_id,
                                   created_at)
        VALUES (a.id, now_m, CASE WHEN now_m THEN p_m END, now_t, CASE WHEN now_t THEN p_t END,
                p_at, 'scheduled', p_override, p_reason, p_actor, p_rid, p_at)
        RETURNING id INTO cid;
        PERFORM creditd_apply_limit_change(cid, p_thresholds, p_at);
    END IF;
    IF (p_set_m AND NOT now_m) OR (p_set_t AND NOT now_t) THEN
        INSERT INTO limit_changes (account_id, set_monthly, monthly_limit, set_total, total_limit,
                                   effective_at, status, override, reason, actor, request_id,
                                   created_at)
        VALUES (a.id, p_set_m AND NOT now_m, CASE WHEN p_set_m AND NOT now_m THEN p_m END,
                p_set_t AND NOT now_t, CASE WHEN p_set_t AND NOT now_t THEN p_t END,
                eff, 'scheduled', p_override, p_reason, p_actor, p_rid, p_at)
        RETURNING id INTO cid;
        -- the notice (R4.6, R8.1)
        PERFORM creditd_notify(a.id, 'limit.change_scheduled', p_at,
            jsonb_build_object('account', a.id, 'external_ref', a.external_ref, 'change', cid,
                'monthly_limit', CASE WHEN p_set_m AND NOT now_m
                                      THEN to_jsonb(creditd_amount(p_m)) END,
                'total_limit', CASE WHEN p_set_t AND NOT now_t
                                    THEN to_jsonb(creditd_amount(p_t)) END,
                'effective_at', to_char(eff AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                'reason', p_reason));
        applied := false;
        effective_at := eff;
    ELSE
        applied := true;
        effective_at := p_at;
    END IF;
    PERFORM creditd_audit(p_at, p_actor,
        CASE WHEN p_override THEN 'limits.override' ELSE 'limits.set' END, 'account', a.id::text,
        jsonb_build_object('monthly_limit', a.monthly_limit, 'total_limit', a.total_limit),
        jsonb_build_object('monthly_limit', CASE WHEN p_set_m THEN p_m ELSE a.monthly_limit END,
                           'total_limit', CASE WHEN p_set_t THEN p_t ELSE a.total_limit END,
                           'applied', applied, 'effective_at', effective_at,
                           'override', p_override, 'reason', p_reason), p_rid);
END
$$;
