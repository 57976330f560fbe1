-- 0013_ingest_speed: group commit of events at a few times the cost of COPY
-- (issue 3, bench/ingest). Replaces creditd_ingest (0002) with
-- creditd_ingest_batch: the same rules, far less work per event and account.
--
-- The daemon sends the batch as arrays: the batch's distinct accounts in
-- ascending id order; per event its fields, the position of its account in
-- that list and whether it is the first event of the batch with its id; and,
-- computed by the daemon on the assumption that every event is new, the
-- per-account sums (all events; events of the current billing month, and the
-- earliest of them; the latest occurred_at) and the per-rollup-key sums.
--
-- Fast path, when no id repeats within the batch (nearly always; the daemon
-- sends NULL sums when one would overflow): inside one subtransaction,
--  1. one UPDATE of the batch's accounts (ascending id, so several daemons
--     never deadlock) adds the sums, and returns what the rest needs: the
--     status (while_suspended, R3.2), the columns of the daemon's account
--     cache, and whether the account reached
--     the lowest alert threshold of a limit (then creditd_evaluate_limits
--     runs, R4.3/R4.4);
--  2. whether a period of the batch is invoiced (late events, R5.3; read
--     once the accounts are locked, as before), and a plain INSERT of the
--     events: what COPY does, with the same key and foreign key;
--  3. one upsert of the pre-summed rollups.
-- An id that is already stored (a resend, or the same event from another
-- transaction) makes the INSERT fail with unique_violation: the
-- subtransaction is rolled back and the general path below runs instead.
--
-- General path: lock the accounts (ascending id) reading their state into
-- arrays, insert with ON CONFLICT DO NOTHING and sum what was inserted (one
-- statement of data-modifying CTEs), then tell duplicates from conflicts by
-- looking up the ids that were not inserted.
--
-- Result: first a row whose res is 'A' followed by a letter per account ('a'
-- active, 's' not: every event of the batch accepted, flagged when its
-- account was not active), or 'E' followed by a letter per event ('a'
-- accepted, 's' accepted while suspended, 'd' duplicate, 'c' conflict); then
-- a row per account of the batch with the account cache's columns as they
-- are in this transaction (the daemon applies them after the commit).
-- Times are converted inline (creditd_ts is a non-inlinable SQL function).

-- ceil(p_limit * p_pct / 100) without overflow (p_pct 0..100), NULL for no
-- limit: "usage * 100 >= limit * pct" is "usage >= creditd_pct_ceil(limit,
-- pct)" in bigint (inlined: no numeric per account).
CREATE FUNCTION creditd_pct_ceil(p_limit bigint, p_pct int) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT (p_limit / 100) * p_pct + ((p_limit % 100) * p_pct + 99) / 100
$$;

DROP FUNCTION creditd_ingest(uuid[], uuid[], bigint[], bigint[], date[], text[], text[], int[],
                             bigint, date, int[]);

CREATE FUNCTION creditd_ingest_batch(
    p_accs uuid[], p_ai int[], p_ids uuid[], p_amounts bigint[], p_occurred bigint[],
    p_periods int[], p_services text[], p_dests text[], p_qty int[], p_first boolean[],
    p_acc_total bigint[], p_acc_month bigint[], p_acc_month_min bigint[], p_acc_last bigint[],
    p_g_ai int[], p_g_period int[], p_g_service text[], p_g_dest text[], p_g_qty bigint[],
    p_g_amount bigint[], p_g_events bigint[], p_g_umin bigint[], p_g_umax bigint[],
    p_now bigint, p_month date, p_thresholds int[])
RETURNS TABLE (res text, id uuid, external_ref text, currency text, status text,
               monthly_limit bigint, total_limit bigint, monthly_usage bigint, exposure bigint,
               usage_month_day int, terminated_us bigint)
-- jit off: the account update's estimates (see below) are far above the JIT
-- threshold, and compiling would cost more than the whole batch
LANGUAGE plpgsql SET jit = off AS $$
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
            -- 1. the accounts: locked, counted and read in one pass
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
                    updated_at = now_ts
                  FROM unnest(p_accs, p_acc_total, p_acc_month, p_acc_month_min, p_acc_last)
                       WITH ORDINALITY AS s(id, total, month, month_min, last, ai)
                 -- "a.id = s.id" as a range: no hash or merge join can take it,
                 -- so the rows are updated (locked) in the order of p_accs
                 -- (ascending id, as every transaction that locks several
                 -- accounts locks them: no deadlocks)
                 WHERE a.id >= s.id AND a.id <= s.id
                RETURNING s.ai, a.status, a.external_ref, a.currency, a.monthly_limit,
                          a.total_limit, a.monthly_usage,
                          a.unbilled_usage + a.open_balance + a.accrued_interest
                              - a.credit_balance AS exposure,
                          a.usage_month - date '1970-01-01' AS umd,
                          creditd_us(a.terminated_at) AS term,
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
                   array_agg(u.umd), array_agg(u.term)
              INTO n_found, order_ai, susp, near, c_ext, c_cur, c_status, c_mlim, c_tlim,
                   c_usage, c_exp, c_umd, c_term
              FROM (SELECT * FROM upd ORDER BY upd.ai) u;
            IF n_found <> n_acc THEN
                RAISE EXCEPTION 'creditd_ingest_batch: % of % accounts found', n_found, n_acc;
            END IF;
            IF order_ai <> (SELECT array_agg(g) FROM generate_series(1::bigint, n_acc) g) THEN
                RAISE EXCEPTION 'creditd_ingest_batch: account rows out of order';
            END IF;
            -- invoiced periods, read after the accounts are locked (invoicing
            -- locks them too): late events (R5.3)
            SELECT array_agg(EXISTS (SELECT 1 FROM invoiced_periods ip
                                      WHERE ip.account_id = x.id
                                        AND ip.period BETWEEN pmin AND pmax) ORDER BY x.o)
              INTO invd FROM unnest(p_accs) WITH ORDINALITY AS x(id, o);

            -- 2. the events
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
            fast := true;
        EXCEPTION WHEN unique_violation THEN
            fast := false;  -- an id is stored already: all of the above undone
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
                            NULL::bigint;
        RETURN QUERY
        SELECT NULL::text, x.id, x.ext, x.cur, x.st, x.mlim, x.tlim, x.usage, x.exp, x.umd,
               x.term
          FROM unnest(p_accs, c_ext, c_cur, c_status, c_mlim, c_tlim, c_usage, c_exp, c_umd,
                      c_term, near)
               AS x(id, ext, cur, st, mlim, tlim, usage, exp, umd, term, near)
         WHERE NOT x.near;
        IF cand IS NOT NULL THEN
            RETURN QUERY
            SELECT NULL::text, v.id, v.external_ref, v.currency, v.status, v.monthly_limit,
                   v.total_limit, v.monthly_usage, v.exposure, v.usage_month_day,
                   v.terminated_us
              FROM account_view v WHERE v.id = ANY (cand);
        END IF;
        RETURN;
    END IF;

    -- General path. Lock the touched accounts in a fixed order (no deadlocks
    -- between daemons) and read, per account: suspended (R3.2), the start of
    -- the monthly count (R4.1), whether a period of the batch is invoiced (R5.3).
    SELECT count(*) FILTER (WHERE f) INTO n_first FROM unnest(p_first) f;
    SELECT array_agg(l.id ORDER BY l.id), array_agg(l.status <> 'active' ORDER BY l.id),
           array_agg(coalesce(l.monthly_since, '-infinity') ORDER BY l.id),
           array_agg(l.invd ORDER BY l.id)
      INTO locked, susp, since, invd
      FROM (SELECT a.id, a.status, a.monthly_since,
                   EXISTS (SELECT 1 FROM invoiced_periods ip
                            WHERE ip.account_id = a.id AND ip.period BETWEEN pmin AND pmax) AS invd
              FROM accounts a WHERE a.id = ANY (p_accs) ORDER BY a.id FOR UPDATE OF a) l;
    IF locked IS DISTINCT FROM p_accs THEN
        RAISE EXCEPTION 'creditd_ingest_batch: accounts not found or not in order';
    END IF;

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
            updated_at = now_ts
          FROM agg g
         WHERE a.id = g.account_id
        RETURNING a.id, a.status <> 'terminated'
                  AND (a.monthly_usage >= creditd_pct_ceil(a.monthly_limit, min_pct)
                    OR a.unbilled_usage + a.open_balance + a.accrued_interest - a.credit_balance
                       >= creditd_pct_ceil(a.total_limit, min_pct)) AS near
    )
    SELECT (SELECT count(*) FROM ins), (SELECT array_agg(upd.id ORDER BY upd.id) FROM upd WHERE near)
      INTO n_ins, cand;

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
                   CASE WHEN e.id IS NULL THEN 'c'  -- not stored: cannot happen
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
                        NULL::bigint, NULL::bigint, NULL::bigint, NULL::int, NULL::bigint;
    RETURN QUERY
    SELECT NULL::text, v.id, v.external_ref, v.currency, v.status, v.monthly_limit,
           v.total_limit, v.monthly_usage, v.exposure, v.usage_month_day, v.terminated_us
      FROM account_view v WHERE v.id = ANY (p_accs);
END
$$;

-- usage_rollups.account_id: the foreign key to accounts is checked once per
-- statement instead of once per row (a per-row RI query cost as much as the
-- rollup insert itself). Same guarantee: every inserted rollup's account
-- exists and is key-share locked until commit (as the foreign key locks it),
-- an account_id is never changed to a missing account, and an account that
-- has rollups can neither be deleted nor change its id.
ALTER TABLE usage_rollups DROP CONSTRAINT usage_rollups_account_id_fkey;

CREATE FUNCTION creditd_rollups_accounts_exist() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    refs uuid[];
    n_found bigint;
    order_ai bigint[];
BEGIN
    SELECT array_agg(DISTINCT n.account_id) INTO refs FROM new_rollups n;
    SELECT count(*) INTO n_found
      FROM (SELECT 1 FROM accounts a WHERE a.id = ANY (refs) FOR KEY SHARE OF a) l;
    IF n_found <> coalesce(cardinality(refs), 0) THEN
        RAISE EXCEPTION 'insert or update on table "usage_rollups" violates foreign key constraint "usage_rollups_account_id_fkey"'
              USING ERRCODE = 'foreign_key_violation', TABLE = 'usage_rollups',
                    CONSTRAINT = 'usage_rollups_account_id_fkey';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER usage_rollups_account_exists AFTER INSERT ON usage_rollups
    REFERENCING NEW TABLE AS new_rollups
    FOR EACH STATEMENT EXECUTE FUNCTION creditd_rollups_accounts_exist();

CREATE FUNCTION creditd_rollup_account_exists() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM accounts a WHERE a.id = NEW.account_id FOR KEY SHARE OF a;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'insert or update on table "usage_rollups" violates foreign key constraint "usage_rollups_account_id_fkey"'
              USING ERRCODE = 'foreign_key_violation', TABLE = 'usage_rollups',
                    CONSTRAINT = 'usage_rollups_account_id_fkey';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER usage_rollups_account_changed AFTER UPDATE OF account_id ON usage_rollups
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id)
    EXECUTE FUNCTION creditd_rollup_account_exists();

CREATE FUNCTION creditd_account_rollups_restrict() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM usage_rollups r WHERE r.account_id = OLD.id) THEN
        RAISE EXCEPTION 'update or delete on table "accounts" violates foreign key constraint "usage_rollups_account_id_fkey" on table "usage_rollups"'
              USING ERRCODE = 'foreign_key_violation', TABLE = 'usage_rollups',
                    CONSTRAINT = 'usage_rollups_account_id_fkey';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER accounts_rollups_delete AFTER DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION creditd_account_rollups_restrict();
CREATE TRIGGER accounts_rollups_rekey AFTER UPDATE OF id ON accounts
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION creditd_account_rollups_restrict();

-- Account change announcements (0010, R9.2) once per statement: the same
-- NOTIFY per changed row (deduplicated per transaction as before), without a
-- PL/pgSQL call per row (group commit updates hundreds of accounts at once).
DROP TRIGGER accounts_changed ON accounts;
DROP FUNCTION creditd_account_changed();
CREATE FUNCTION creditd_accounts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('creditd_accounts', c.id::text) FROM changed_accounts c;
    RETURN NULL;
END
$$;
CREATE TRIGGER accounts_inserted AFTER INSERT ON accounts
    REFERENCING NEW TABLE AS changed_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION creditd_accounts_changed();
CREATE TRIGGER accounts_updated AFTER UPDATE ON accounts
    REFERENCING NEW TABLE AS changed_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION creditd_accounts_changed();
