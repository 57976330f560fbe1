-- 0012_ingest_fast: creditd_ingest with plans that stay linear in the batch
-- and do not grow with the events table (measured by bench/ingest):
--  * the batch table has a key on ord and an index on id, and is analyzed
--    after it is filled, so that no cached plan nests loops over it;
--  * the insert returns what it inserted (and while_suspended) into the batch
--    table, so only events that were NOT inserted are looked up, by key, to
--    tell duplicate from conflict;
--  * limits are re-evaluated only for accounts whose usage or exposure
--    reached the lowest alert threshold of a limit (below it nothing in
--    creditd_evaluate_limits can change: ingest only adds usage).

CREATE OR REPLACE FUNCTION creditd_ingest(p_ids uuid[], p_accounts uuid[], p_amounts bigint[],
                                          p_occurred bigint[], p_periods date[],
                                          p_services text[], p_dests text[], p_qty int[],
                                          p_now bigint, p_month date, p_thresholds int[])
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

-- Month rollover returning the accounts it moved, so that only those are
-- re-read into the authorization cache.
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
