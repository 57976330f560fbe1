-- 0002_usage: chargeable events, usage rollups, limit logic (R3, R4).

CREATE TABLE events (
    id              uuid PRIMARY KEY,          -- the sender's idempotency key (R3.3)
    account_id      uuid NOT NULL REFERENCES accounts (id),
    amount          bigint NOT NULL CHECK (amount > 0),
    quantity        integer NOT NULL CHECK (quantity >= 1),
    service         text NOT NULL,
    destination     text NOT NULL DEFAULT '',
    occurred_at     timestamptz NOT NULL,
    period          date NOT NULL,             -- billing month of occurred_at (R1.5)
    received_at     timestamptz NOT NULL,
    while_suspended boolean NOT NULL,          -- R3.2
    late            boolean NOT NULL           -- its period was already invoiced (R5.3)
);
CREATE INDEX events_account_period ON events (account_id, period);

-- Per account, period, service and destination: what invoicing reads (R5.3).
-- One open (invoice_id IS NULL) row per key; invoicing closes rows, and late
-- events for an invoiced period open a new row that the next invoice bills
-- as prior-period usage.
CREATE TABLE usage_rollups (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id),
    period      date NOT NULL,
    service     text NOT NULL,
    destination text NOT NULL,
    quantity    bigint NOT NULL,
    amount      bigint NOT NULL,
    events      bigint NOT NULL,
    unit_min    bigint NOT NULL,   -- per-unit price bounds: uniform when equal
    unit_max    bigint NOT NULL,
    late        boolean NOT NULL,
    invoice_id  uuid
);
CREATE UNIQUE INDEX usage_rollups_open ON usage_rollups (account_id, period, service, destination)
    WHERE invoice_id IS NULL;

-- Invoiced periods per account (filled by invoicing): events for these are late.
CREATE TABLE invoiced_periods (
    account_id uuid NOT NULL REFERENCES accounts (id),
    period     date NOT NULL,
    PRIMARY KEY (account_id, period)
);

-- Amounts leave the database as plain decimal strings (R1.2), e.g. 4500 -> '0.0045'.
CREATE FUNCTION creditd_amount(p bigint) RETURNS text LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE WHEN p % 1000000 = 0 THEN (p / 1000000)::text
                ELSE rtrim((p::numeric / 1000000)::text, '0') END
$$;

-- R4.3/R4.4/R4.5: re-evaluate an account's limit reasons and usage alerts.
-- Called in the same transaction as whatever changed usage, exposure or
-- limits (events, payments, limit changes, month rollover).
-- Usage-alert percentage, in numeric: a huge usage must not overflow bigint
-- and fail a whole ingest batch (R1.1).
CREATE FUNCTION creditd_alert_percent(p_used bigint, p_limit bigint) RETURNS int
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_limit IS NULL OR p_limit <= 0 THEN 0
                ELSE least(floor(greatest(p_used, 0)::numeric * 100 / p_limit), 100000)::int END
$$;

CREATE FUNCTION creditd_evaluate_limits(p_account uuid, p_thresholds int[], p_cause text,
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

-- R3: record a batch of validated events in one transaction (group commit).
-- Returns one row per input position: accepted | duplicate | conflict.
-- Plans stay linear in the batch and independent of the events table size
-- (bench/ingest):
--  * the batch table has a key on ord and an index on id, and is analyzed
--    after it is filled, so that no cached plan nests loops over it;
--  * the insert returns what it inserted (and while_suspended) into the batch
--    table, so only events that were NOT inserted are looked up, by key, to
--    tell duplicate from conflict;
--  * limits are re-evaluated only for accounts whose usage or exposure
--    reached the lowest alert threshold of a limit (below it nothing in
--    creditd_evaluate_limits can change: ingest only adds usage).

CREATE FUNCTION creditd_ingest(p_ids uuid[], p_accounts uuid[], p_amounts bigint[],
                               p_occurred bigint[], p_periods date[], p_services text[],
                               p_dests text[], p_qty int[], p_now bigint, p_month date,
                               p_thresholds int[])
RETURNS TABLE (ord int, status text, while_suspended boolean) LANGUAGE plpgsql AS $$
DECLARE
    now_ts timestamptz := creditd_ts(p_now);
    min_pct int := least(coalesce((SELECT min(t) FROM unnest(p_thresholds) t), 100), 100);
    accs uuid[];
    acc uuid;
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS ingest_batch (
        ord int PRIMARY KEY, id uuid NOT NULL, account_id uuid NOT NULL, amount bigint,
        occurred bigint, period date, service text, destination text, quantity int,
        first_ord int, inserted boolean NOT NULL DEFAULT false,
        suspended boolean NOT NULL DEFAULT false
    ) ON COMMIT DELETE ROWS;
    CREATE INDEX IF NOT EXISTS ingest_batch_id ON ingest_batch (id);
    INSERT INTO ingest_batch (ord, id, account_id, amount, occurred, period, service,
                              destination, quantity, first_ord)
    SELECT u.ord, u.id, u.account_id, u.amount, u.occurred, u.period, u.service,
           coalesce(u.destination, ''), u.quantity, min(u.ord) OVER (PARTITION BY u.id)
      FROM unnest(p_ids, p_accounts, p_amounts, p_occurred, p_periods, p_services, p_dests,
                  p_qty) WITH ORDINALITY
           AS u(id, account_id, amount, occurred, period, service, destination, quantity, ord);
    ANALYZE ingest_batch;

    -- lock the touched accounts in a fixed order (no deadlocks between daemons)
    SELECT array_agg(DISTINCT b.account_id ORDER BY b.account_id) INTO accs FROM ingest_batch b;
    PERFORM 1 FROM accounts WHERE id = ANY (accs) ORDER BY id FOR UPDATE;

    WITH ins AS (
        INSERT INTO events (id, account_id, amount, quantity, service, destination, occurred_at,
                            period, received_at, while_suspended, late)
        SELECT i.id, i.account_id, i.amount, i.quantity, i.service, i.destination,
               creditd_ts(i.occurred), i.period, now_ts, a.status <> 'active',
               EXISTS (SELECT 1 FROM invoiced_periods ip
                        WHERE ip.account_id = i.account_id AND ip.period = i.period)
          FROM ingest_batch i JOIN accounts a ON a.id = i.account_id
         WHERE i.ord = i.first_ord
        ON CONFLICT (id) DO NOTHING
        RETURNING id, events.while_suspended AS susp
    )
    UPDATE ingest_batch b SET inserted = true, suspended = ins.susp FROM ins
     WHERE b.id = ins.id AND b.ord = b.first_ord;

    -- rollups (R5.3) from what was inserted
    INSERT INTO usage_rollups AS r (account_id, period, service, destination, quantity, amount,
                                    events, unit_min, unit_max, late)
    SELECT i.account_id, i.period, i.service, i.destination, sum(i.quantity), sum(i.amount),
           count(*), min(i.amount / i.quantity), max(i.amount / i.quantity),
           bool_or(EXISTS (SELECT 1 FROM invoiced_periods ip
                            WHERE ip.account_id = i.account_id AND ip.period = i.period))
      FROM ingest_batch i WHERE i.inserted
     GROUP BY i.account_id, i.period, i.service, i.destination
    ON CONFLICT (account_id, period, service, destination) WHERE invoice_id IS NULL
    DO UPDATE SET quantity = r.quantity + excluded.quantity, amount = r.amount + excluded.amount,
                  events = r.events + excluded.events,
                  unit_min = least(r.unit_min, excluded.unit_min),
                  unit_max = greatest(r.unit_max, excluded.unit_max),
                  late = r.late OR excluded.late;

    -- account counters (R4.1, R4.2); a counter still on an older month
    -- (rollover pending) only takes unbilled usage
    UPDATE accounts a SET
        unbilled_usage = a.unbilled_usage + s.total,
        monthly_usage = CASE WHEN a.usage_month = p_month THEN a.monthly_usage + s.monthly
                             ELSE a.monthly_usage END,
        last_event_at = greatest(a.last_event_at, s.last),
        updated_at = now_ts
      FROM (SELECT i.account_id, sum(i.amount) AS total,
                   coalesce(sum(i.amount) FILTER (
                       WHERE i.period = p_month
                         AND (ac.monthly_since IS NULL
                              OR creditd_ts(i.occurred) >= ac.monthly_since)), 0) AS monthly,
                   creditd_ts(max(i.occurred)) AS last
              FROM ingest_batch i JOIN accounts ac ON ac.id = i.account_id
             WHERE i.inserted
             GROUP BY i.account_id) s
     WHERE a.id = s.account_id;

    -- R4.3/R4.4: suspension and alerts in the same transaction, for the
    -- accounts that reached the lowest threshold of a limit
    FOR acc IN SELECT a.id FROM accounts a
                WHERE a.id = ANY (accs) AND a.status <> 'terminated'
                  AND ((a.monthly_limit IS NOT NULL
                        AND a.monthly_usage::numeric * 100 >= a.monthly_limit::numeric * min_pct)
                    OR (a.total_limit IS NOT NULL
                        AND (a.unbilled_usage + a.open_balance + a.accrued_interest
                             - a.credit_balance)::numeric * 100
                            >= a.total_limit::numeric * min_pct))
                ORDER BY a.id LOOP
        PERFORM creditd_evaluate_limits(acc, p_thresholds, 'usage', 'system', now_ts, NULL);
    END LOOP;

    RETURN QUERY
    SELECT i.ord,
           CASE WHEN i.inserted THEN 'accepted'
                WHEN EXISTS (SELECT 1 FROM events e
                              WHERE e.id = i.id AND e.account_id = i.account_id
                                AND e.amount = i.amount AND e.quantity = i.quantity
                                AND e.service = i.service AND e.destination = i.destination
                                AND e.occurred_at = creditd_ts(i.occurred)) THEN 'duplicate'
                ELSE 'conflict' END,
           i.inserted AND i.suspended
      FROM ingest_batch i
     ORDER BY i.ord;
END
$$;

-- Month rollover (R4.5): the monthly counter restarts; monthly_limit lifts.
CREATE FUNCTION creditd_month_rollover_accounts(p_month date, p_thresholds int[],
                                                p_at timestamptz)
RETURNS SETOF uuid LANGUAGE plpgsql AS $$
DECLARE
    acc uuid;
BEGIN
    FOR acc IN SELECT id FROM accounts WHERE usage_month < p_month ORDER BY id LOOP
        UPDATE accounts SET usage_month = p_month, monthly_usage = 0, monthly_since = NULL,
                            monthly_alerted = 0, updated_at = p_at
         WHERE id = acc;
        PERFORM creditd_evaluate_limits(acc, p_thresholds, 'month_rollover', 'system', p_at,
                                        NULL);
        RETURN NEXT acc;
    END LOOP;
END
$$;

CREATE OR REPLACE VIEW account_view AS
SELECT a.id, a.seq, a.external_ref, a.name, a.currency, a.jurisdiction, a.status,
       array_to_json(a.reasons)::text AS reasons_json,
       a.monthly_limit, a.total_limit, a.monthly_usage, a.unbilled_usage, a.open_balance,
       a.accrued_interest, a.credit_balance,
       a.unbilled_usage + a.open_balance + a.accrued_interest - a.credit_balance AS exposure,
       a.contractual_rate, a.payment_terms_days,
       NULL::text AS statutory_rule,
       '[]'::text AS pending_json,
       creditd_us(a.created_at) AS created_us, creditd_us(a.terminated_at) AS terminated_us,
       a.usage_month - date '1970-01-01' AS usage_month_day
  FROM accounts a;
