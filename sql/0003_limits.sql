-- 0003_limits: limit changes with a notice period (R4.6), customers' limit
-- requests (R4.7), and the minimal on-account payment that re-evaluates
-- suspension reasons (R4.5; full allocation comes with invoicing, R6.1).

CREATE TABLE limit_changes (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    uuid NOT NULL REFERENCES accounts (id),
    set_monthly   boolean NOT NULL,
    monthly_limit bigint CHECK (monthly_limit >= 0),   -- NULL with set_monthly = remove
    set_total     boolean NOT NULL,
    total_limit   bigint CHECK (total_limit >= 0),
    effective_at  timestamptz NOT NULL,
    status        text NOT NULL CHECK (status IN ('scheduled', 'applied', 'superseded')),
    override      boolean NOT NULL DEFAULT false,
    reason        text,
    actor         text NOT NULL,
    request_id    text,
    created_at    timestamptz NOT NULL,
    applied_at    timestamptz
);
CREATE INDEX limit_changes_due ON limit_changes (effective_at) WHERE status = 'scheduled';
CREATE INDEX limit_changes_account ON limit_changes (account_id, id DESC);

CREATE TABLE limit_requests (
    id             uuid PRIMARY KEY,
    account_id     uuid NOT NULL REFERENCES accounts (id),
    set_monthly    boolean NOT NULL,
    monthly_limit  bigint CHECK (monthly_limit >= 0),
    set_total      boolean NOT NULL,
    total_limit    bigint CHECK (total_limit >= 0),
    note           text NOT NULL,
    status         text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'approved', 'declined')),
    decline_reason text,
    change_id      bigint REFERENCES limit_changes (id),
    created_at     timestamptz NOT NULL,
    created_by     text NOT NULL,
    decided_at     timestamptz,
    decided_by     text
);

CREATE TABLE payments (
    id          uuid PRIMARY KEY,          -- idempotency key (R6.1)
    account_id  uuid NOT NULL REFERENCES accounts (id),
    amount      bigint NOT NULL CHECK (amount > 0),
    received_at timestamptz NOT NULL,
    reference   text NOT NULL,
    invoice     text,
    booked_at   timestamptz NOT NULL,
    booked_by   text NOT NULL,
    request_hash text NOT NULL,            -- same id, other payload -> 409
    response    jsonb NOT NULL              -- same id, same payload -> same answer
);
CREATE INDEX payments_account ON payments (account_id, received_at);

-- Apply one limit change now: set the limits, mark it applied, notify, and
-- re-evaluate the account (R4.6: "when a change takes effect the account is
-- re-evaluated against R4.3 and R4.5").
CREATE FUNCTION creditd_apply_limit_change(p_change bigint, p_thresholds int[], p_at timestamptz)
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
        -- a new limit re-arms the usage alerts of that limit
        monthly_alerted = CASE WHEN c.set_monthly THEN 0 ELSE monthly_alerted END,
        exposure_alerted = CASE WHEN c.set_total THEN 0 ELSE exposure_alerted END,
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

-- PUT /v1/accounts/{a}/limits (R4.6). Raising (or removing a limit) takes
-- effect at once; lowering no sooner than p_notice_days after now, unless
-- p_override. A request that raises one limit and lowers the other applies
-- the raise now and schedules the lowering. An explicit p_effective in the
-- future schedules the whole change then.
-- Returns (applied, effective_at): applied = nothing left scheduled.
CREATE FUNCTION creditd_set_limits(p_id uuid, p_ext text,
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
        now_m := p_set_m AND NOT lower_m;
        now_t := p_set_t AND NOT lower_t;
    END IF;
    -- this request replaces scheduled changes that touch only the limits it sets
    UPDATE limit_changes SET status = 'superseded'
     WHERE limit_changes.account_id = a.id AND status = 'scheduled'
       AND (NOT set_monthly OR p_set_m) AND (NOT set_total OR p_set_t);
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

-- Scheduler: apply every change due at p_at, in time order. Returns the
-- touched accounts.
CREATE FUNCTION creditd_apply_due_limit_changes(p_thresholds int[], p_at timestamptz)
RETURNS SETOF uuid LANGUAGE plpgsql AS $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT id, limit_changes.account_id FROM limit_changes
              WHERE status = 'scheduled' AND effective_at <= p_at
              ORDER BY effective_at, id FOR UPDATE SKIP LOCKED LOOP
        PERFORM creditd_apply_limit_change(c.id, p_thresholds, p_at);
        RETURN NEXT c.account_id;
    END LOOP;
END
$$;

-- The one re-evaluation that a payment triggers (R4.5), in the payment's
-- transaction: monthly_limit lifts when exposure is zero or below, and the
-- monthly counter then counts from the payment; total_limit lifts below the
-- limit (creditd_evaluate_limits).
CREATE FUNCTION creditd_payment_reevaluate(p_account uuid, p_thresholds int[], p_at timestamptz,
                                           p_actor text, p_rid text)
RETURNS accounts LANGUAGE plpgsql AS $$
DECLARE
    a accounts;
BEGIN
    SELECT * INTO a FROM accounts WHERE id = p_account FOR UPDATE;
    IF a.unbilled_usage + a.open_balance + a.accrued_interest - a.credit_balance <= 0 THEN
        UPDATE accounts SET monthly_since = p_at, monthly_usage = 0, monthly_alerted = 0
         WHERE id = p_account;
    END IF;
    RETURN creditd_evaluate_limits(p_account, p_thresholds, 'payment', p_actor, p_at, p_rid);
END
$$;

-- POST /v1/payments, minimal form (issue 3): the amount becomes account
-- credit; idempotent by id. Returns (status 'created' | 'replayed', response).
CREATE FUNCTION creditd_payment_credit(p_id uuid, p_acc_id uuid, p_acc_ext text, p_amount bigint,
                                       p_received timestamptz, p_reference text, p_invoice text,
                                       p_hash text, p_thresholds int[], p_at timestamptz,
                                       p_actor text, p_rid text,
                                       OUT outcome text, OUT response jsonb, OUT account_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
    a accounts;
    p payments;
BEGIN
    SELECT * INTO p FROM payments WHERE id = p_id;
    IF FOUND THEN
        IF p.request_hash <> p_hash THEN
            RAISE EXCEPTION 'payment % exists with another payload', p_id
                USING ERRCODE = 'CR409', DETAIL = 'id';
        END IF;
        outcome := 'replayed';
        response := p.response;
        account_id := p.account_id;
        RETURN;
    END IF;
    SELECT * INTO a FROM accounts WHERE id = p_acc_id OR external_ref = p_acc_ext FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account not found' USING ERRCODE = 'CR400', DETAIL = 'account';
    END IF;
    account_id := a.id;
    UPDATE accounts SET credit_balance = credit_balance + p_amount, updated_at = p_at
     WHERE id = a.id;
    response := jsonb_build_object('payment', p_id, 'account', a.id, 'allocations', '[]'::jsonb,
                                   'credit', creditd_amount(p_amount));
    INSERT INTO payments (id, account_id, amount, received_at, reference, invoice, booked_at,
                          booked_by, request_hash, response)
    VALUES (p_id, a.id, p_amount, p_received, p_reference, p_invoice, p_at, p_actor, p_hash,
            response);
    PERFORM creditd_notify(a.id, 'payment.received', p_at,
        jsonb_build_object('account', a.id, 'external_ref', a.external_ref, 'payment', p_id,
                           'amount', creditd_amount(p_amount), 'reference', p_reference,
                           'received_at', p_received));
    PERFORM creditd_audit(p_at, p_actor, 'payment.create', 'payment', p_id::text, NULL,
                          response, p_rid);
    PERFORM creditd_payment_reevaluate(a.id, p_thresholds, p_at, p_actor, p_rid);
    outcome := 'created';
END
$$;

-- Pending limit changes appear on the account (API.md "Account object").
CREATE OR REPLACE VIEW account_view AS
SELECT a.id, a.seq, a.external_ref, a.name, a.currency, a.jurisdiction, a.status,
       array_to_json(a.reasons)::text AS reasons_json,
       a.monthly_limit, a.total_limit, a.monthly_usage, a.unbilled_usage, a.open_balance,
       a.accrued_interest, a.credit_balance,
       a.unbilled_usage + a.open_balance + a.accrued_interest - a.credit_balance AS exposure,
       a.contractual_rate, a.payment_terms_days,
       NULL::text AS statutory_rule,
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

-- R4.7: deciding a customer's limit request. Approval goes through R4.6
-- (raise now, lower after notice); both decisions are notified and audited.
CREATE FUNCTION creditd_limit_request_approve(p_id uuid, p_effective timestamptz,
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
                           'effective_at', to_char(effective_at AT TIME ZONE 'UTC',
                                                   'YYYY-MM-DD"T"HH24:MI:SS"Z"')));
    PERFORM creditd_audit(p_at, p_actor, 'limit_request.approve', 'limit_request', p_id::text,
                          jsonb_build_object('status', 'pending'),
                          jsonb_build_object('status', 'approved', 'applied', applied,
                                             'effective_at', effective_at), p_rid);
END
$$;

CREATE FUNCTION creditd_limit_request_decline(p_id uuid, p_reason text, p_at timestamptz,
                                              p_actor text, p_rid text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    q limit_requests;
BEGIN
    SELECT * INTO q FROM limit_requests WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'limit request not found' USING ERRCODE = 'CR404';
    END IF;
    IF q.status <> 'pending' THEN
        RAISE EXCEPTION 'limit request is already %', q.status USING ERRCODE = 'CR422';
    END IF;
    UPDATE limit_requests SET status = 'declined', decline_reason = p_reason, decided_at = p_at,
           decided_by = p_actor
     WHERE id = p_id;
    PERFORM creditd_notify(q.account_id, 'limit_request.decided', p_at,
        jsonb_build_object('account', q.account_id, 'request', p_id, 'status', 'declined',
                           'reason', p_reason));
    PERFORM creditd_audit(p_at, p_actor, 'limit_request.decline', 'limit_request', p_id::text,
                          jsonb_build_object('status', 'pending'),
                          jsonb_build_object('status', 'declined', 'reason', p_reason), p_rid);
END
$$;
