-- 0026_audit_limits: limit changes (R4.6, R8.1), found by
-- tests/integration/test_audit_limits.py.
--
-- 1. effective_at to the microsecond. The answer of PUT
-- /v1/accounts/{a}/limits and of an approval, and GET .../limit-changes,
-- give effective_at to the microsecond (the daemon's civil_format_rfc3339:
-- "2026-01-17T01:00:00.250000Z"), but the account's
-- pending_limit_changes, the limit.change_scheduled notice and the
-- limit_request.decided notification cut it to the second
-- ("2026-01-17T01:00:00Z", to_char without fractions). The real clock always
-- has a sub-second part, so the customer's notice named an instant up to a
-- second before the one at which the change takes effect, and one change
-- had two different times depending on where it was read. They now use the
-- daemon's format: fractions (6 digits) only when the instant has them.

CREATE FUNCTION creditd_rfc3339(p timestamptz) RETURNS text LANGUAGE sql STABLE STRICT AS $$
    SELECT to_char(p AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
           || CASE WHEN to_char(p AT TIME ZONE 'UTC', 'US') = '000000' THEN ''
                   ELSE '.' || to_char(p AT TIME ZONE 'UTC', 'US') END
           || 'Z'
$$;

-- 0023's account_view (the latest), pending_limit_changes' effective_at by
-- creditd_rfc3339.
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
                    'effective_at', creditd_rfc3339(c.effective_at)))
                   ORDER BY c.effective_at, c.id)
                   FROM limit_changes c WHERE c.account_id = a.id AND c.status = 'scheduled'),
                '[]')::text AS pending_json,
       creditd_us(a.created_at) AS created_us, creditd_us(a.terminated_at) AS terminated_us,
       a.usage_month - date '1970-01-01' AS usage_month_day,
       a.version
  FROM accounts a;

-- 0018's creditd_set_limits (the latest body), the notice's effective_at by
-- creditd_rfc3339; and a notice of a scheduled removal of a limit (an
-- explicit effective_at with "monthly_limit": null) said "monthly_limit":
-- null, as for a limit the change leaves alone: it now also says
-- "monthly_limit_removed": true (or total_limit_removed), the flag of
-- pending_limit_changes.
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
                'effective_at', creditd_rfc3339(eff),
                'reason', p_reason)
            -- a scheduled removal says so (null alone also means "not
            -- changed"), as pending_limit_changes does
            || jsonb_strip_nulls(jsonb_build_object(
                'monthly_limit_removed', CASE WHEN p_set_m AND NOT now_m AND p_m IS NULL
                                              THEN true END,
                'total_limit_removed', CASE WHEN p_set_t AND NOT now_t AND p_t IS NULL
                                            THEN true END)));
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

-- 0003's creditd_limit_request_approve (the latest body), the
-- notification's effective_at by creditd_rfc3339.
CREATE OR REPLACE FUNCTION creditd_limit_request_approve(p_id uuid, p_effective timestamptz,
                                              p_notice_days int, p_thresholds int[],
                                              p_at timestamptz, p_actor text, p_rid text,
                                              OUT applied boolean, OUT effective_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    q limit_requests;
    s record;
BEGIN
    SELECT * INTO q FROM limit_requests WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'limit request not found' USING ERRCODE = 'CR404';
    END IF;
    IF q.status <> 'pending' THEN
        RAISE EXCEPTION 'limit request is already %', q.status USING ERRCODE = 'CR422';
    END IF;
    SELECT * INTO s FROM creditd_set_limits(q.account_id, NULL, q.set_monthly, q.monthly_limit,
        q.set_total, q.total_limit, p_effective, false, 'limit request: ' || q.note,
        p_notice_days, p_thresholds, p_at, p_actor, p_rid);
    applied := s.applied;
    effective_at := s.effective_at;
    UPDATE limit_requests SET status = 'approved', decided_at = p_at, decided_by = p_actor,
           change_id = (SELECT max(id) FROM limit_changes WHERE account_id = q.account_id)
     WHERE id = p_id;
    PERFORM creditd_notify(q.account_id, 'limit_request.decided', p_at,
        jsonb_build_object('account', q.account_id, 'request', p_id, 'status', 'approved',
                           'applied', applied,
                           'effective_at', creditd_rfc3339(effective_at)));
    PERFORM creditd_audit(p_at, p_actor, 'limit_request.approve', 'limit_request', p_id::text,
                          jsonb_build_object('status', 'pending'),
                          jsonb_build_object('status', 'approved', 'applied', applied,
                                             'effective_at', effective_at), p_rid);
END
$$;

-- 2. Lock order of the scheduler (R4.6). creditd_apply_due_limit_changes
-- (0003) locked each due change (FOR UPDATE SKIP LOCKED) and then, in
-- creditd_apply_limit_change, its account; PUT .../limits and an approval
-- (creditd_set_limits) lock the account first and then the scheduled
-- changes they supersede. A request for an account whose change fell due at
-- that moment deadlocked with the scheduler: PostgreSQL aborted one of them,
-- either the finance request (503 "concurrent update; retry") or the
-- scheduler's step, which left the due change unapplied for 10 s (and a
-- test clock move answered with its due work undone). The scheduler now
-- takes the account first, like every other writer, then the change, and
-- skips a change that a request superseded (or another run applied) while
-- it waited. Full body of 0003's function otherwise.
CREATE OR REPLACE FUNCTION creditd_apply_due_limit_changes(p_thresholds int[], p_at timestamptz)
RETURNS SETOF uuid LANGUAGE plpgsql AS $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT id, limit_changes.account_id FROM limit_changes
              WHERE status = 'scheduled' AND effective_at <= p_at
              ORDER BY effective_at, id LOOP
        PERFORM 1 FROM accounts WHERE id = c.account_id FOR UPDATE;
        PERFORM 1 FROM limit_changes
          WHERE id = c.id AND status = 'scheduled' AND effective_at <= p_at FOR UPDATE;
        CONTINUE WHEN NOT FOUND;
        PERFORM creditd_apply_limit_change(c.id, p_thresholds, p_at);
        RETURN NEXT c.account_id;
    END LOOP;
END
$$;


-- 3. Usage alerts once a month (R4.4). creditd_apply_limit_change (0003)
-- re-armed the alerts of every limit a change sets, also when it set the
-- limit in force again (PUT .../limits {"monthly_limit": "10"} on a limit
-- of 10, or an approved request for the current value): the thresholds
-- already announced that month were announced again at once. A limit that
-- differs still re-arms (README: alerts are of the new limit). Full body of
-- 0003's function otherwise.
CREATE OR REPLACE FUNCTION creditd_apply_limit_change(p_change bigint, p_thresholds int[],
                                                      p_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c limit_changes;
    a accounts;
BEGIN
    SELECT * INTO c FROM limit_changes WHERE id = p_change FOR UPDATE;
    SELECT * INTO a FROM accounts WHERE id = c.account_id FOR UPDATE;
    UPDATE accounts SET
        monthly_limit = CASE WHEN c.set_monthly THEN c.monthly_limit ELSE monthly_limit END,
        total_limit = CASE WHEN c.set_total THEN c.total_limit ELSE total_limit END,
        -- a new limit re-arms the usage alerts of that limit (0026: only a
        -- limit that differs from the one in force)
        monthly_alerted = CASE WHEN c.set_monthly
                                    AND c.monthly_limit IS DISTINCT FROM a.monthly_limit
                               THEN 0 ELSE monthly_alerted END,
        exposure_alerted = CASE WHEN c.set_total
                                     AND c.total_limit IS DISTINCT FROM a.total_limit
                                THEN 0 ELSE exposure_alerted END,
        updated_at = p_at
     WHERE id = c.account_id;
    UPDATE limit_changes SET status = 'applied', applied_at = p_at WHERE id = p_change;
    PERFORM creditd_notify(c.account_id, 'limit.changed', p_at,
        jsonb_build_object('account', c.account_id, 'external_ref', a.external_ref,
            'change', c.id,
            'monthly_limit', CASE WHEN c.set_monthly THEN to_jsonb(creditd_amount(c.monthly_limit))
                                  ELSE to_jsonb(creditd_amount(a.monthly_limit)) END,
            'total_limit', CASE WHEN c.set_total THEN to_jsonb(creditd_amount(c.total_limit))
                                ELSE to_jsonb(creditd_amount(a.total_limit)) END,
            'reason', c.reason));
    PERFORM creditd_evaluate_limits(c.account_id, p_thresholds, 'limit_change', c.actor, p_at,
                                    c.request_id);
END
$$;
