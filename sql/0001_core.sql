-- 0001_core: accounts, status history, audit log, notification outbox (R2, R8.1, R9.5).
-- Amounts are bigint micro-units (R1.1); rates are integer 0.0001 % (R1.4).
-- Business time always arrives as a parameter (R1.6): no now() below except
-- for bookkeeping columns that are not business time.

CREATE TABLE accounts (
    id                 uuid PRIMARY KEY,
    seq                bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    external_ref       text NOT NULL,
    name               text NOT NULL,
    currency           text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    jurisdiction       text NOT NULL,
    contractual_rate   integer NOT NULL CHECK (contractual_rate >= 0),
    payment_terms_days integer NOT NULL CHECK (payment_terms_days >= 0),
    monthly_limit      bigint CHECK (monthly_limit >= 0),
    total_limit        bigint CHECK (total_limit >= 0),
    status             text NOT NULL DEFAULT 'active'
                       CHECK (status IN ('active', 'suspended', 'terminated')),
    reasons            text[] NOT NULL DEFAULT '{}',
    -- R4.1: usage of billing month usage_month, counted from monthly_since
    usage_month        date NOT NULL,
    monthly_since      timestamptz,
    monthly_usage      bigint NOT NULL DEFAULT 0,
    -- R4.2 parts of exposure
    unbilled_usage     bigint NOT NULL DEFAULT 0,
    open_balance       bigint NOT NULL DEFAULT 0,
    accrued_interest   bigint NOT NULL DEFAULT 0,
    credit_balance     bigint NOT NULL DEFAULT 0,
    -- R4.4: highest threshold (percent) already announced in usage_month
    monthly_alerted    integer NOT NULL DEFAULT 0,
    exposure_alerted   integer NOT NULL DEFAULT 0,
    last_event_at      timestamptz,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    terminated_at      timestamptz,
    CONSTRAINT accounts_external_ref_key UNIQUE (external_ref),
    CONSTRAINT accounts_reasons_valid CHECK (reasons <@ ARRAY['monthly_limit', 'total_limit',
        'overdue', 'inactivity', 'manual']::text[]),
    CONSTRAINT accounts_status_matches CHECK (status = 'terminated'
        OR (status = 'suspended') = (cardinality(reasons) > 0))
);

-- R2.3: every change of status or reasons, with time, cause and actor.
CREATE TABLE account_history (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    uuid NOT NULL REFERENCES accounts (id),
    at            timestamptz NOT NULL,
    status_before text,
    status_after  text NOT NULL,
    reasons_before text[] NOT NULL,
    reasons_after text[] NOT NULL,
    cause         text NOT NULL,
    actor         text NOT NULL,
    note          text,
    request_id    text
);
CREATE INDEX account_history_account ON account_history (account_id, id DESC);
CREATE INDEX account_history_at ON account_history (at, id);

-- R9.5: every mutating call.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    object_type text NOT NULL,
    object_id   text NOT NULL,
    before      jsonb,
    after       jsonb,
    request_id  text
);

-- R8.1: the outbox, written in the same transaction as the fact.
CREATE TABLE notifications (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      uuid REFERENCES accounts (id),
    kind            text NOT NULL,
    created_at      timestamptz NOT NULL,
    payload         jsonb NOT NULL,
    -- R8.2 webhook delivery state
    delivered_at    timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    last_error      text
);
CREATE INDEX notifications_undelivered ON notifications (id) WHERE delivered_at IS NULL;

CREATE FUNCTION creditd_audit(p_at timestamptz, p_actor text, p_action text, p_type text,
                              p_id text, p_before jsonb, p_after jsonb, p_rid text)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO audit_log (at, actor, action, object_type, object_id, before, after, request_id)
    VALUES (p_at, p_actor, p_action, p_type, p_id, p_before, p_after, p_rid);
$$;

CREATE FUNCTION creditd_notify(p_account uuid, p_kind text, p_at timestamptz, p_payload jsonb)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO notifications (account_id, kind, created_at, payload)
    VALUES (p_account, p_kind, p_at, p_payload);
    SELECT pg_notify('creditd_outbox', '');
$$;

-- R2.2/R2.3: add and remove suspension reasons as a set; status follows the
-- set; every change is recorded and notified. The row must be locked by the
-- caller's transaction or is locked here. Returns the account row.
CREATE FUNCTION creditd_change_reasons(p_account uuid, p_add text[], p_remove text[],
                                       p_cause text, p_actor text, p_note text,
                                       p_at timestamptz, p_rid text)
RETURNS accounts LANGUAGE plpgsql AS $$
DECLARE
    a accounts;
    new_reasons text[];
    new_status text;
BEGIN
    SELECT * INTO a FROM accounts WHERE id = p_account FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account % not found', p_account USING ERRCODE = 'no_data_found';
    END IF;
    SELECT coalesce(array_agg(r ORDER BY r), '{}') INTO new_reasons
      FROM (SELECT unnest(a.reasons) UNION SELECT unnest(coalesce(p_add, '{}'))) s(r)
     WHERE r <> ALL (coalesce(p_remove, '{}'));
    IF a.status = 'terminated' THEN
        new_status := 'terminated';
    ELSIF cardinality(new_reasons) > 0 THEN
        new_status := 'suspended';
    ELSE
        new_status := 'active';
    END IF;
    IF new_reasons = a.reasons AND new_status = a.status THEN
        RETURN a;
    END IF;
    INSERT INTO account_history (account_id, at, status_before, status_after, reasons_before,
                                 reasons_after, cause, actor, note, request_id)
    VALUES (p_account, p_at, a.status, new_status, a.reasons, new_reasons, p_cause, p_actor,
            p_note, p_rid);
    UPDATE accounts SET reasons = new_reasons, status = new_status, updated_at = p_at
     WHERE id = p_account RETURNING * INTO a;
    IF new_status <> 'terminated' THEN
        PERFORM creditd_notify(p_account,
            CASE WHEN new_status = 'active' THEN 'account.reactivated'
                 ELSE 'account.suspended' END,
            p_at,
            jsonb_build_object('account', p_account, 'external_ref', a.external_ref,
                               'status', new_status, 'reasons', to_jsonb(new_reasons),
                               'cause', p_cause, 'note', p_note));
    END IF;
    RETURN a;
END
$$;

-- Times cross the wire as bigint microseconds since the epoch (exact).
CREATE FUNCTION creditd_ts(p_us bigint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT timestamptz 'epoch' + p_us * interval '1 microsecond' $$;
CREATE FUNCTION creditd_us(p_ts timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT (extract(epoch FROM p_ts) * 1000000)::bigint $$;

-- What the API shows of an account (API.md "Account object"); later
-- migrations replace it as more parts of exposure exist.
CREATE VIEW account_view AS
SELECT a.id, a.seq, a.external_ref, a.name, a.currency, a.jurisdiction, a.status,
       array_to_json(a.reasons)::text AS reasons_json,
       a.monthly_limit, a.total_limit, a.monthly_usage, a.unbilled_usage, a.open_balance,
       a.accrued_interest, a.credit_balance,
       a.unbilled_usage + a.open_balance + a.accrued_interest - a.credit_balance AS exposure,
       a.contractual_rate, a.payment_terms_days,
       NULL::text AS statutory_rule,
       '[]'::text AS pending_json,
       creditd_us(a.created_at) AS created_us, creditd_us(a.terminated_at) AS terminated_us
  FROM accounts a;

-- PATCH /v1/accounts/{account}: fields already validated by the daemon.
CREATE FUNCTION creditd_account_patch(p_id uuid, p_ext text, p_patch jsonb, p_at timestamptz,
                                      p_actor text, p_rid text)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    a accounts;
    b accounts;
BEGIN
    SELECT * INTO a FROM accounts WHERE id = p_id OR external_ref = p_ext FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account not found' USING ERRCODE = 'CR404';
    END IF;
    UPDATE accounts SET
        name = coalesce(p_patch->>'name', name),
        jurisdiction = coalesce(p_patch->>'jurisdiction', jurisdiction),
        contractual_rate = coalesce((p_patch->>'contractual_rate')::integer, contractual_rate),
        payment_terms_days = coalesce((p_patch->>'payment_terms_days')::integer,
                                      payment_terms_days),
        updated_at = p_at
     WHERE id = a.id RETURNING * INTO b;
    PERFORM creditd_audit(p_at, p_actor, 'account.update', 'account', a.id::text,
                          to_jsonb(a), to_jsonb(b), p_rid);
    RETURN a.id;
END
$$;

-- POST /v1/accounts/{account}/suspend|unsuspend: the `manual` reason (R4.5).
CREATE FUNCTION creditd_account_manual(p_id uuid, p_ext text, p_suspend boolean, p_note text,
                                       p_at timestamptz, p_actor text, p_rid text)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    a accounts;
    b accounts;
BEGIN
    SELECT * INTO a FROM accounts WHERE id = p_id OR external_ref = p_ext FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account not found' USING ERRCODE = 'CR404';
    END IF;
    IF a.status = 'terminated' THEN
        RAISE EXCEPTION 'account is terminated' USING ERRCODE = 'CR422';
    END IF;
    IF NOT p_suspend AND NOT ('manual' = ANY (a.reasons)) THEN
        RAISE EXCEPTION 'account has no manual suspension' USING ERRCODE = 'CR422';
    END IF;
    IF p_suspend THEN
        b := creditd_change_reasons(a.id, ARRAY['manual'], NULL, 'manual', p_actor, p_note, p_at, p_rid);
    ELSE
        b := creditd_change_reasons(a.id, NULL, ARRAY['manual'], 'manual', p_actor, p_note, p_at, p_rid);
    END IF;
    PERFORM creditd_audit(p_at, p_actor,
                          CASE WHEN p_suspend THEN 'account.suspend' ELSE 'account.unsuspend' END,
                          'account', a.id::text,
                          jsonb_build_object('status', a.status, 'reasons', a.reasons),
                          jsonb_build_object('status', b.status, 'reasons', b.reasons,
                                             'note', p_note), p_rid);
    RETURN a.id;
END
$$;
