-- 0025_ingest_after_termination: R3.5 inside the ingest transaction.
--
-- The daemon rejects an event that occurred after its account's termination
-- from its cache (account_terminated). A termination that commits between
-- that check and the batch's transaction was not seen: the event was
-- accepted, stored after the final invoice (R5.6) and billed by a later
-- monthly run (test_audit_race.py test_8; sql/0008 called it "a window of one
-- batch flush"). creditd_ingest_batch now decides it under the account's row
-- lock, which the termination takes too: the fast path gives way to the
-- general path when a locked account is terminated, and the general path
-- stores no event that occurred after terminated_at and answers it with the
-- letter 't' (daemon/batcher.c: rejected, account_terminated). Events of a
-- terminated account that occurred before the termination are stored as
-- before.
--
-- 0023's function, otherwise unchanged (same arguments and result).

CREATE OR REPLACE FUNCTION creditd_ingest_batch(
    p_accs uuid[], p_ai int[], p_ids uuid[], p_amounts bigint[], p_occurred bigint[],
    p_periods int[], p_services text[], p_dests text[], p_qty int[], p_first boolean[],
    p_acc_total bigint[], p_acc_month bigint[], p_acc_month_min bigint[], p_acc_last bigint[],
    p_g_ai int[], p_g_period int[], p_g_service text[], p_g_dest text[], p_g_qty bigint[],
    p_g_amount bigint[], p_g_events bigint[], p_g_umin bigint[], p_g_umax bigint[],
    p_now bigint, p_month date, p_thresholds int[])
RETURNS TABLE (res text, id uuid, external_ref text, currency text, status text,
               monthly_limit bigint, total_limit bigint, monthly_usage bigint, exposure bigint,
               usage_month_day int, terminated_us bigint,
               version bigint)
-- jit off: compiling would cost more than the whole batch. Hash and merge
-- joins on at entry (the caller's settings come back at exit): step 1 turns
-- them off for its own statement only.
LANGUAGE plpgsql SET jit = off SET enable_hashjoin = on SET enable_mergejoin = on AS $$
#variable_conflict use_column
DECLARE
    now_ts timestamptz := timestamptz 'epoch' + p_now * interval '1 microsecond';
    month_day int := p_month - date '1970-01-01';
    min_pct int := least(coalesce((SELECT min(t) FROM unnest(p_thresholds) t), 100), 100);
    n int := coalesce(cardinality(p_ids), 0);
    n_acc int := coalesce(cardinality(p_accs), 0);
    n_found bigint;
    order_ai bigint[];
    n_first int;
    n_ins bigint;
    pmin date;
    pmax date;
    fast boolean := false;
    locked uuid[];
    susp boolean[];
    since timestamptz[];
    term timestamptz[];
    invd boolean[];
    near boolean[];
    c_ext text[];
    c_cur text[];
    c_status text[];
    c_mlim bigint[];
    c_tlim bigint[];
    c_usage bigint[];
    c_exp bigint[];
    c_umd int[];
    c_term bigint[];
    c_ver bigint[];
    cand uuid[];
    acc uuid;
    letters text;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    SELECT date '1970-01-01' + min(p), date '1970-01-01' + max(p) INTO pmin, pmax
      FROM unnest(p_periods) p;

    IF NOT (false = ANY (p_first)) AND p_acc_total IS NOT NULL THEN
        BEGIN
            -- 1. the accounts: locked, counted and read in one pass. A nested
            -- loop over p_accs (ascending id) with an index probe per account
            -- updates (locks) them in that order, as every transaction that
            -- locks several accounts does: no deadlocks. Hash and merge joins
            -- are off for this statement alone (set_config is_local: undone
            -- with the subtransaction if it fails).
            PERFORM set_config('enable_hashjoin', 'off', true),
                    set_config('enable_mergejoin', 'off', true);
            WITH upd AS (
                UPDATE accounts a SET
                    unbilled_usage = a.unbilled_usage + s.total,
                    monthly_usage = CASE
                        WHEN a.usage_month <> p_month OR s.month_min IS NULL THEN a.monthly_usage
                        WHEN a.monthly_since IS NULL
                             OR a.monthly_since
                                <= timestamptz 'epoch' + s.month_min * interval '1 microsecond'
                            THEN a.monthly_usage + s.month
                        -- R4.1: counted from monthly_since, which lies within the batch
                        ELSE a.monthly_usage
                             + (SELECT coalesce(sum(x.amount), 0)
                                  FROM unnest(p_ai, p_amounts, p_occurred, p_periods)
                                       AS x(ai, amount, occ, period)
                                 WHERE x.ai = s.ai AND x.period = month_day
                                   AND timestamptz 'epoch' + x.occ * interval '1 microsecond'
                                       >= a.monthly_since)
                        END,
                    last_event_at = greatest(a.last_event_at,
                                             timestamptz 'epoch' + s.last * interval '1 microsecond'),
                    updated_at = now_ts,
                    version = a.version + 1  -- explicit: accounts_version stays idle (0023)
                  FROM unnest(p_accs, p_acc_total, p_acc_month, p_acc_month_min, p_acc_last)
                       WITH ORDINALITY AS s(id, total, month, month_min, last, ai)
                 WHERE a.id = s.id
                RETURNING s.ai, a.status, a.external_ref, a.currency, a.monthly_limit,
                          a.total_limit, a.monthly_usage,
                          a.unbilled_usage + a.open_balance + a.accrued_interest
                              - a.credit_balance AS exposure,
                          a.usage_month - date '1970-01-01' AS umd,
                          creditd_us(a.terminated_at) AS term, a.version AS ver,
                          a.status <> 'terminated'
                          AND (a.monthly_usage >= creditd_pct_ceil(a.monthly_limit, min_pct)
                            OR a.unbilled_usage + a.open_balance + a.accrued_interest
                               - a.credit_balance >= creditd_pct_ceil(a.total_limit, min_pct))
                              AS near
            )
            -- (the arrays in the order of p_accs: aggregated from a sorted
            -- subquery, one sort instead of one per array; checked below)
            SELECT count(*), array_agg(u.ai), array_agg(u.status <> 'active'),
                   array_agg(coalesce(u.near, false)), array_agg(u.external_ref),
                   array_agg(u.currency), array_agg(u.status), array_agg(u.monthly_limit),
                   array_agg(u.total_limit), array_agg(u.monthly_usage), array_agg(u.exposure),
                   array_agg(u.umd), array_agg(u.term), array_agg(u.ver)
              INTO n_found, order_ai, susp, near, c_ext, c_cur, c_status, c_mlim, c_tlim,
                   c_usage, c_exp, c_umd, c_term, c_ver
              FROM (SELECT * FROM upd ORDER BY upd.ai) u;
            PERFORM set_config('enable_hashjoin', 'on', true),
                    set_config('enable_mergejoin', 'on', true);
            IF n_found <> n_acc THEN
                RAISE EXCEPTION 'creditd_ingest_batch: % of % accounts found', n_found, n_acc;
            END IF;
            IF order_ai <> (SELECT array_agg(g) FROM generate_series(1::bigint, n_acc) g) THEN
                RAISE EXCEPTION 'creditd_ingest_batch: account rows out of order';
            END IF;
            -- R3.5: an account terminated after the daemon checked these
            -- events (the termination committed in between): all of the
            -- above undone, the general path rejects what occurred after it
            IF 'terminated' = ANY (c_status) THEN
                RAISE EXCEPTION USING ERRCODE = 'CRTRM',
                      MESSAGE = 'creditd_ingest_batch: a terminated account';
            END IF;
            -- invoiced periods, read after the accounts are locked (invoicing
            -- locks them too): late events (R5.3)
            SELECT array_agg(EXISTS (SELECT 1 FROM invoiced_periods ip
                                      WHERE ip.account_id = x.id
                                        AND ip.period BETWEEN pmin AND pmax) ORDER BY x.o)
              INTO invd FROM unnest(p_accs) WITH ORDINALITY AS x(id, o);

            -- 2. the events (their accounts are p_accs, all just locked and
            -- counted: the reference checks of events and rollups would only
            -- look them up again, see 0016)
            PERFORM set_config('creditd.refs_checked', 'on', true);
            INSERT INTO events (id, account_id, amount, quantity, service, destination,
                                occurred_at, period, received_at, while_suspended, late)
            SELECT u.id, p_accs[u.ai], u.amount, u.qty, u.service, coalesce(u.dest, ''),
                   timestamptz 'epoch' + u.occ * interval '1 microsecond',
                   date '1970-01-01' + u.period, now_ts, susp[u.ai],
                   invd[u.ai] AND EXISTS (SELECT 1 FROM invoiced_periods ip
                                           WHERE ip.account_id = p_accs[u.ai]
                                             AND ip.period = date '1970-01-01' + u.period)
              FROM unnest(p_ai, p_ids, p_amounts, p_occurred, p_periods, p_services, p_dests,
                          p_qty) AS u(ai, id, amount, occ, period, service, dest, qty);

            -- 3. the rollups (R5.3)
            INSERT INTO usage_rollups AS r (account_id, period, service, destination, quantity,
                                            amount, events, unit_min, unit_max, late)
            SELECT p_accs[g.ai], date '1970-01-01' + g.period, g.service, coalesce(g.dest, ''),
                   g.qty, g.amount, g.events, g.umin, g.umax,
                   invd[g.ai] AND EXISTS (SELECT 1 FROM invoiced_periods ip
                                           WHERE ip.account_id = p_accs[g.ai]
                                             AND ip.period = date '1970-01-01' + g.period)
              FROM unnest(p_g_ai, p_g_period, p_g_service, p_g_dest, p_g_qty, p_g_amount,
                          p_g_events, p_g_umin, p_g_umax)
                   AS g(ai, period, service, dest, qty, amount, events, umin, umax)
            ON CONFLICT (account_id, period, service, destination) WHERE invoice_id IS NULL
            DO UPDATE SET quantity = r.quantity + excluded.quantity,
                          amount = r.amount + excluded.amount,
                          events = r.events + excluded.events,
                          unit_min = least(r.unit_min, excluded.unit_min),
                          unit_max = greatest(r.unit_max, excluded.unit_max),
                          late = r.late OR excluded.late;
            PERFORM set_config('creditd.refs_checked', 'off', true);
            fast := true;
        EXCEPTION WHEN unique_violation OR SQLSTATE 'CRTRM' THEN
            fast := false;  -- an id is stored already, or a terminated account
        END;
    END IF;

    IF fast THEN
        SELECT array_agg(x.id ORDER BY x.id) INTO cand
          FROM unnest(p_accs, near) AS x(id, near) WHERE x.near;
        IF cand IS NOT NULL THEN
            FOREACH acc IN ARRAY cand LOOP
                PERFORM creditd_evaluate_limits(acc, p_thresholds, 'usage', 'system', now_ts,
                                                NULL);
            END LOOP;
        END IF;
        SELECT 'A' || string_agg(CASE WHEN x.s THEN 's' ELSE 'a' END, '' ORDER BY x.o)
          INTO letters FROM unnest(susp) WITH ORDINALITY AS x(s, o);
        RETURN QUERY SELECT letters, NULL::uuid, NULL::text, NULL::text, NULL::text,
                            NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::int,
                            NULL::bigint, NULL::bigint;
        RETURN QUERY
        SELECT NULL::text, x.id, x.ext, x.cur, x.st, x.mlim, x.tlim, x.usage, x.exp, x.umd,
               x.term, x.ver
          FROM unnest(p_accs, c_ext, c_cur, c_status, c_mlim, c_tlim, c_usage, c_exp, c_umd,
                      c_term, c_ver, near)
               AS x(id, ext, cur, st, mlim, tlim, usage, exp, umd, term, ver, near)
         WHERE NOT x.near;
        IF cand IS NOT NULL THEN
            RETURN QUERY
            SELECT NULL::text, v.id, v.external_ref, v.currency, v.status, v.monthly_limit,
                   v.total_limit, v.monthly_usage, v.exposure, v.usage_month_day,
                   v.terminated_us, v.version
              FROM account_view v WHERE v.id = ANY (cand);
        END IF;
        RETURN;
    END IF;

    -- General path. Lock the touched accounts in a fixed order (no deadlocks
    -- between daemons) and read, per account: suspended (R3.2), the start of
    -- the monthly count (R4.1), whether a period of the batch is invoiced (R5.3),
    -- the termination (R3.5: events that occurred after it are not stored).
    SELECT count(*) FILTER (WHERE f) INTO n_first FROM unnest(p_first) f;
    SELECT array_agg(l.id ORDER BY l.id), array_agg(l.status <> 'active' ORDER BY l.id),
           array_agg(coalesce(l.monthly_since, '-infinity') ORDER BY l.id),
           array_agg(l.invd ORDER BY l.id), array_agg(l.terminated_at ORDER BY l.id)
      INTO locked, susp, since, invd, term
      FROM (SELECT a.id, a.status, a.monthly_since, a.terminated_at,
                   EXISTS (SELECT 1 FROM invoiced_periods ip
                            WHERE ip.account_id = a.id AND ip.period BETWEEN pmin AND pmax) AS invd
              FROM accounts a WHERE a.id = ANY (p_accs) ORDER BY a.id FOR UPDATE OF a) l;
    IF locked IS DISTINCT FROM p_accs THEN
        RAISE EXCEPTION 'creditd_ingest_batch: accounts not found or not in order';
    END IF;

    -- (the accounts of what is inserted are the locked ones: see 0016)
    PERFORM set_config('creditd.refs_checked', 'on', true);
    WITH ins AS (
        INSERT INTO events (id, account_id, amount, quantity, service, destination, occurred_at,
                            period, received_at, while_suspended, late)
        SELECT u.id, p_accs[u.ai], u.amount, u.qty, u.service, coalesce(u.dest, ''),
               timestamptz 'epoch' + u.occ * interval '1 microsecond',
               date '1970-01-01' + u.period, now_ts, susp[u.ai],
               invd[u.ai] AND EXISTS (SELECT 1 FROM invoiced_periods ip
                                       WHERE ip.account_id = p_accs[u.ai]
                                         AND ip.period = date '1970-01-01' + u.period)
          FROM unnest(p_ai, p_ids, p_amounts, p_occurred, p_periods, p_services, p_dests, p_qty,
                      p_first) AS u(ai, id, amount, occ, period, service, dest, qty, first)
         WHERE u.first
           AND NOT coalesce(timestamptz 'epoch' + u.occ * interval '1 microsecond'
                            > term[u.ai], false)
        ON CONFLICT (id) DO NOTHING
        RETURNING events.account_id, events.period, events.service, events.destination,
                  events.quantity, events.amount, events.occurred_at, events.late
    ), roll AS (
        -- rollups (R5.3) from what was inserted
        INSERT INTO usage_rollups AS r (account_id, period, service, destination, quantity,
                                        amount, events, unit_min, unit_max, late)
        SELECT i.account_id, i.period, i.service, i.destination, sum(i.quantity), sum(i.amount),
               count(*), min(i.amount / i.quantity), max(i.amount / i.quantity), bool_or(i.late)
          FROM ins i
         GROUP BY i.account_id, i.period, i.service, i.destination
        ON CONFLICT (account_id, period, service, destination) WHERE invoice_id IS NULL
        DO UPDATE SET quantity = r.quantity + excluded.quantity,
                      amount = r.amount + excluded.amount,
                      events = r.events + excluded.events,
                      unit_min = least(r.unit_min, excluded.unit_min),
                      unit_max = greatest(r.unit_max, excluded.unit_max),
                      late = r.late OR excluded.late
    ), agg AS (
        -- account counters (R4.1, R4.2); the monthly one counts events of
        -- p_month from monthly_since on
        SELECT i.account_id, sum(i.amount) AS total,
               coalesce(sum(i.amount) FILTER (WHERE i.period = p_month
                                                AND i.occurred_at >= s.since), 0) AS monthly,
               max(i.occurred_at) AS last
          FROM ins i JOIN unnest(p_accs, since) AS s(id, since) ON s.id = i.account_id
         GROUP BY i.account_id
    ), upd AS (
        -- a counter still on an older month (rollover pending) only takes
        -- unbilled usage
        UPDATE accounts a SET
            unbilled_usage = a.unbilled_usage + g.total,
            monthly_usage = CASE WHEN a.usage_month = p_month THEN a.monthly_usage + g.monthly
                                 ELSE a.monthly_usage END,
            last_event_at = greatest(a.last_event_at, g.last),
            updated_at = now_ts,
            version = a.version + 1
          FROM agg g
         WHERE a.id = g.account_id
        RETURNING a.id, a.status <> 'terminated'
                  AND (a.monthly_usage >= creditd_pct_ceil(a.monthly_limit, min_pct)
                    OR a.unbilled_usage + a.open_balance + a.accrued_interest - a.credit_balance
                       >= creditd_pct_ceil(a.total_limit, min_pct)) AS near
    )
    SELECT (SELECT count(*) FROM ins), (SELECT array_agg(upd.id ORDER BY upd.id) FROM upd WHERE near)
      INTO n_ins, cand;
    PERFORM set_config('creditd.refs_checked', 'off', true);

    -- R4.3/R4.4: suspension and alerts in the same transaction, for the
    -- accounts that reached the lowest threshold of a limit
    IF cand IS NOT NULL THEN
        FOREACH acc IN ARRAY cand LOOP
            PERFORM creditd_evaluate_limits(acc, p_thresholds, 'usage', 'system', now_ts, NULL);
        END LOOP;
    END IF;

    -- The ids that were not inserted here (sent before, inserted concurrently
    -- by another transaction, or repeated within the batch): the stored event
    -- tells. Rows this transaction inserted carry its xid.
    IF n_ins = n THEN
        SELECT 'E' || string_agg(CASE WHEN susp[u.ai] THEN 's' ELSE 'a' END, '' ORDER BY u.ord)
          INTO letters FROM unnest(p_ai) WITH ORDINALITY AS u(ai, ord);
    ELSE
        SELECT 'E' || string_agg(
                   CASE WHEN e.id IS NULL
                            -- R3.5: occurred after its account's termination
                            THEN CASE WHEN timestamptz 'epoch' + u.occ * interval '1 microsecond'
                                           > term[u.ai] THEN 't'
                                      ELSE 'c' END  -- not stored otherwise: cannot happen
                        WHEN u.first AND e.xmn = pg_current_xact_id()::xid
                            THEN CASE WHEN e.while_suspended THEN 's' ELSE 'a' END
                        WHEN e.account_id = p_accs[u.ai] AND e.amount = u.amount
                             AND e.quantity = u.qty AND e.service = u.service
                             AND e.destination = coalesce(u.dest, '')
                             AND e.occurred_at
                                 = timestamptz 'epoch' + u.occ * interval '1 microsecond'
                            THEN 'd'
                        ELSE 'c' END, '' ORDER BY u.ord)
          INTO letters
          FROM unnest(p_ai, p_ids, p_amounts, p_occurred, p_services, p_dests, p_qty, p_first)
                   WITH ORDINALITY AS u(ai, id, amount, occ, service, dest, qty, first, ord)
          LEFT JOIN LATERAL (SELECT x.xmin AS xmn, x.* FROM events x WHERE x.id = u.id) e
                 ON true;
    END IF;
    RETURN QUERY SELECT letters, NULL::uuid, NULL::text, NULL::text, NULL::text, NULL::bigint,
                        NULL::bigint, NULL::bigint, NULL::bigint, NULL::int, NULL::bigint,
                        NULL::bigint;
    RETURN QUERY
    SELECT NULL::text, v.id, v.external_ref, v.currency, v.status, v.monthly_limit,
           v.total_limit, v.monthly_usage, v.exposure, v.usage_month_day, v.terminated_us,
           v.version
      FROM account_view v WHERE v.id = ANY (p_accs);
END
$$;
