-- 0014_posting_speed: the monthly interest posting with 100,000 overdue
-- invoices (issue 5; R5.1-R5.5, R6.4, R6.5). Same invoices, lines, numbers,
-- ledger and notifications as 0011; the run goes in lanes (the daemon runs
-- two at the same time, on two connections) and each chunk writes less.

-- Lanes of the run: in id order, the accounts come in blocks of a chunk's
-- size, and lane k of n takes blocks k, k + n, k + 2n, ... (a chunk bills a
-- whole block, as a chunk of 0011 did); each lane has its own cursor, 0011's
-- single cursor is lane 0 of 1. When every lane is through, one sweep bills
-- what arrived below the cursors meanwhile (creditd_invoice_chunk's end).
ALTER TABLE invoice_run_cursors ADD COLUMN lanes int NOT NULL DEFAULT 1,
                                ADD COLUMN lane int NOT NULL DEFAULT 0;
ALTER TABLE invoice_run_cursors DROP CONSTRAINT invoice_run_cursors_pkey;
ALTER TABLE invoice_run_cursors ADD PRIMARY KEY (period, lanes, lane);

-- Foreign keys checked once per statement instead of once per row (as 0012
-- did for the accruals and notices, 0013 for the rollups): a run of 100,000
-- invoices writes 200,000 lines naming their invoice and 300,000 invoices,
-- invoiced periods and notifications naming their account, and each row's
-- check (a lookup and a lock through the trigger queue) cost more than
-- writing the row. The same references hold: a line names an existing
-- invoice (as 0012: invoices are never deleted or renumbered, R5.5, and a
-- delete or renumbering of one with lines fails); an invoice, invoiced
-- period or notification names an existing account (locked FOR KEY SHARE as
-- the foreign key did, so that it cannot disappear before the commit), and
-- an account that they name can neither be deleted nor change its id.
ALTER TABLE invoice_lines DROP CONSTRAINT invoice_lines_invoice_id_fkey;
CREATE TRIGGER invoice_lines_invoice_ref AFTER INSERT ON invoice_lines
    REFERENCING NEW TABLE AS creditd_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION creditd_invoice_ref_check();
CREATE TRIGGER invoice_lines_invoice_ref_upd AFTER UPDATE ON invoice_lines
    FOR EACH ROW WHEN (OLD.invoice_id IS DISTINCT FROM NEW.invoice_id)
    EXECUTE FUNCTION creditd_invoice_ref_check();

CREATE FUNCTION creditd_invoice_lines_referenced_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    used uuid;
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        SELECT o.id INTO used FROM creditd_old_rows o
         WHERE EXISTS (SELECT 1 FROM invoice_lines l WHERE l.invoice_id = o.id) LIMIT 1;
    ELSIF EXISTS (SELECT 1 FROM invoice_lines l WHERE l.invoice_id = OLD.id) THEN
        used := OLD.id;
    END IF;
    IF used IS NOT NULL THEN
        RAISE EXCEPTION 'update or delete on table "invoices" violates foreign key constraint "invoice_lines_invoice_id_fkey" on table "invoice_lines"'
              USING ERRCODE = 'foreign_key_violation', TABLE = 'invoice_lines',
                    CONSTRAINT = 'invoice_lines_invoice_id_fkey',
                    DETAIL = format('Key (id)=(%s) is still referenced from table "invoice_lines".',
                                    used);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER invoices_lines_referenced AFTER DELETE ON invoices
    REFERENCING OLD TABLE AS creditd_old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION creditd_invoice_lines_referenced_check();
CREATE TRIGGER invoices_lines_referenced_upd AFTER UPDATE ON invoices
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION creditd_invoice_lines_referenced_check();

-- <table>.account_id (NULL: none) names an existing account, locked FOR KEY
-- SHARE until the commit.
CREATE FUNCTION creditd_account_ref_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    refs uuid[];
    n_found bigint;
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        SELECT array_agg(DISTINCT n.account_id) INTO refs FROM creditd_new_rows n
         WHERE n.account_id IS NOT NULL;
    ELSIF NEW.account_id IS NOT NULL THEN
        refs := ARRAY[NEW.account_id];
    END IF;
    IF cardinality(refs) > 0 THEN
        SELECT count(*) INTO n_found
          FROM (SELECT 1 FROM accounts a WHERE a.id = ANY (refs) FOR KEY SHARE OF a) l;
        IF n_found <> cardinality(refs) THEN
            RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"',
                            TG_TABLE_NAME, TG_TABLE_NAME || '_account_id_fkey'
                  USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME,
                        CONSTRAINT = TG_TABLE_NAME || '_account_id_fkey';
        END IF;
    END IF;
    RETURN NULL;
END
$$;
ALTER TABLE invoices DROP CONSTRAINT invoices_account_id_fkey;
ALTER TABLE invoiced_periods DROP CONSTRAINT invoiced_periods_account_id_fkey;
ALTER TABLE notifications DROP CONSTRAINT notifications_account_id_fkey;
CREATE TRIGGER invoices_account_ref AFTER INSERT ON invoices
    REFERENCING NEW TABLE AS creditd_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION creditd_account_ref_check();
CREATE TRIGGER invoices_account_ref_upd AFTER UPDATE ON invoices
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id)
    EXECUTE FUNCTION creditd_account_ref_check();
CREATE TRIGGER invoiced_periods_account_ref AFTER INSERT ON invoiced_periods
    REFERENCING NEW TABLE AS creditd_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION creditd_account_ref_check();
CREATE TRIGGER invoiced_periods_account_ref_upd AFTER UPDATE ON invoiced_periods
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id)
    EXECUTE FUNCTION creditd_account_ref_check();
CREATE TRIGGER notifications_account_ref AFTER INSERT ON notifications
    REFERENCING NEW TABLE AS creditd_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION creditd_account_ref_check();
CREATE TRIGGER notifications_account_ref_upd AFTER UPDATE ON notifications
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id)
    EXECUTE FUNCTION creditd_account_ref_check();

CREATE FUNCTION creditd_account_refs_restrict() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    IF EXISTS (SELECT 1 FROM events e WHERE e.account_id = OLD.id) THEN
        t := 'events';   -- its foreign key becomes these triggers in 0015
    ELSIF EXISTS (SELECT 1 FROM invoices i WHERE i.account_id = OLD.id) THEN
        t := 'invoices';
    ELSIF EXISTS (SELECT 1 FROM invoiced_periods p WHERE p.account_id = OLD.id) THEN
        t := 'invoiced_periods';
    ELSIF EXISTS (SELECT 1 FROM notifications n WHERE n.account_id = OLD.id) THEN
        t := 'notifications';
    END IF;
    IF t IS NOT NULL THEN
        RAISE EXCEPTION 'update or delete on table "accounts" violates foreign key constraint "%" on table "%"',
                        t || '_account_id_fkey', t
              USING ERRCODE = 'foreign_key_violation', TABLE = t,
                    CONSTRAINT = t || '_account_id_fkey';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER accounts_refs_delete AFTER DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION creditd_account_refs_restrict();
CREATE TRIGGER accounts_refs_rekey AFTER UPDATE OF id ON accounts
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION creditd_account_refs_restrict();

-- 0011's creditd_invoice_candidates (accounts with something to bill for
-- p_period and no monthly invoice for it yet, in id order), read from the
-- accounts' side: at the end of a run nearly every account has its invoice,
-- and a lookup per account costs less than reading every accrual, unbilled
-- rollup and invoice (the sweep's one full read).
CREATE FUNCTION creditd_invoice_sweep_candidates(p_period date, p_limit int) RETURNS uuid[]
LANGUAGE sql STABLE
-- (called from creditd_invoice_chunk_lane, which turns these off; no JIT:
-- the estimate of a lookup per account compiled for longer than it ran)
SET enable_hashjoin = on SET enable_mergejoin = on SET enable_bitmapscan = on SET jit = off AS $$
    SELECT array_agg(s.id ORDER BY s.id) FROM (
        SELECT a.id FROM accounts a
         WHERE (SELECT 1 FROM invoices i WHERE i.account_id = a.id AND i.period = p_period
                   AND i.kind = 'monthly' LIMIT 1) IS NULL
           AND (EXISTS (SELECT 1 FROM usage_rollups r
                         WHERE r.account_id = a.id AND r.invoice_id IS NULL
                           AND r.period <= p_period)
                OR EXISTS (SELECT 1 FROM invoices o JOIN interest_accruals x ON x.invoice_id = o.id
                            WHERE o.account_id = a.id AND x.month <= p_period
                              AND creditd_round(x.micro, o.currency_exp) - x.posted <> 0)
                OR EXISTS (SELECT 1 FROM invoices o
                            WHERE o.account_id = a.id AND o.compensation_due > 0
                              AND NOT o.compensation_posted))
         ORDER BY a.id LIMIT p_limit) s
$$;

-- R5.1-R5.4, R6.4, R6.5: one chunk of lane p_lane of p_lanes of the invoice
-- run, one transaction: of the next p_limit * p_lanes accounts after the
-- lane's cursor, block p_lane (p_limit accounts) is locked; each that has
-- lines to bill and no monthly invoice for p_period gets one, as 0011's
-- creditd_invoice_chunk issued it. Returns how many invoices it issued (0 =
-- the lane is through; -1 = none in this chunk, go on). p_lane = -1: the
-- sweep at the end of the run (once every lane is through): the accounts
-- that the full read of creditd_invoice_sweep_candidates finds (0 = the run
-- is complete). One lane of one (0011's creditd_invoice_chunk) goes on to
-- the sweep itself when it is through.
-- - Lanes of a period run at the same time (a shared lock of the period,
--   which a termination, a sweep and a run in one lane take exclusively,
--   and an exclusive lock of the lane); two runs of a period, on one or two
--   daemons, still take each lane's chunks one at a time, and every account
--   is locked and checked for its monthly invoice before it is billed,
--   whoever else bills it.
-- - Gap-free numbers (R5.2): the number series row is locked by the chunk
--   that reserves numbers until it commits. Everything that does not carry a
--   number (accruals, earlier invoices, rollups, invoiced periods, accounts)
--   is written before the reservation, so that the lanes wait for each other
--   only for the invoices, their lines and notifications. The numbers of a
--   chunk follow its accounts' order; the lanes' chunks take turns.
CREATE FUNCTION creditd_invoice_chunk_lane(p_period date, p_issue date, p_prefix text,
                                           p_limit int, p_at timestamptz, p_lane int,
                                           p_lanes int)
RETURNS int LANGUAGE plpgsql
-- Joins of the chunk's temporary tables (no statistics) with the real
-- tables go by the real tables' keys, nested: a chunk reads about as much as
-- it writes, at the start and at the end of the run, whatever the
-- statistics say (interest_accruals is analyzed empty before the first
-- daily job fills it: a hash join then read every accrual for every chunk),
-- and without JIT (an estimate off by orders of magnitude compiles for
-- longer than the statement runs).
SET enable_hashjoin = off SET enable_mergejoin = off SET enable_bitmapscan = off SET jit = off AS $$
DECLARE
    pkey int := p_period - date '2000-01-01';
    after uuid;
    scanned uuid[];
    accs uuid[];
    first_no bigint;
    n int;
    series text := p_prefix || '-' || extract(year FROM p_issue)::int;
BEGIN
    IF p_lanes < 1 OR p_lanes > 15 OR p_lane < -1 OR p_lane >= p_lanes THEN
        RAISE EXCEPTION 'invoice run: no lane % of %', p_lane, p_lanes;
    END IF;
    -- one run per period and lane at a time, across daemons (R5.1, R9.2)
    IF p_lanes = 1 OR p_lane = -1 THEN
        PERFORM pg_advisory_xact_lock(7274100, pkey);
    ELSE
        PERFORM pg_advisory_xact_lock_shared(7274100, pkey);
        PERFORM pg_advisory_xact_lock(7274101, pkey * 256 + p_lanes * 16 + p_lane);
    END IF;
    IF p_lane >= 0 THEN
        SELECT c.after_account INTO after FROM invoice_run_cursors c
         WHERE c.period = p_period AND c.lanes = p_lanes AND c.lane = p_lane;
        scanned := ARRAY(SELECT id FROM accounts
                          WHERE id > coalesce(after, '00000000-0000-0000-0000-000000000000')
                          ORDER BY id LIMIT p_limit * p_lanes);
    END IF;
    IF cardinality(scanned) > 0 THEN
        INSERT INTO invoice_run_cursors (period, lanes, lane, after_account)
        VALUES (p_period, p_lanes, p_lane, scanned[cardinality(scanned)])
        ON CONFLICT (period, lanes, lane) DO UPDATE SET after_account = excluded.after_account;
        accs := scanned[p_lane * p_limit + 1 : (p_lane + 1) * p_limit];
        IF cardinality(accs) = 0 THEN
            RETURN -1;
        END IF;
    ELSIF p_lanes > 1 AND p_lane >= 0 THEN
        RETURN 0;   -- the lane is through; the sweep follows when all are
    ELSE
        accs := creditd_invoice_sweep_candidates(p_period, p_limit);
        IF accs IS NULL THEN
            RETURN 0;
        END IF;
    END IF;

    CREATE TEMP TABLE IF NOT EXISTS inv_run_acc (
        account_id uuid PRIMARY KEY, invoice_id uuid NOT NULL,
        exp smallint NOT NULL, currency text NOT NULL, terms int NOT NULL,
        credit bigint NOT NULL, terminated boolean NOT NULL
    ) ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE IF NOT EXISTS inv_run_lines (
        account_id uuid NOT NULL, invoice_id uuid NOT NULL, line_no int NOT NULL,
        kind text NOT NULL, service text, destination text, period date, ref uuid,
        rollup_id bigint,
        quantity bigint, unit_price bigint, exact bigint NOT NULL, amount bigint NOT NULL,
        description text NOT NULL,
        accrued bigint NOT NULL   -- what the posted month added to accrued_interest
    ) ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE IF NOT EXISTS inv_run_bill (
        account_id uuid NOT NULL, invoice_id uuid NOT NULL, rn int NOT NULL,
        exp smallint NOT NULL, currency text NOT NULL, terms int NOT NULL,
        credit bigint NOT NULL, terminated boolean NOT NULL,
        exact bigint NOT NULL, usage bigint NOT NULL, interest bigint NOT NULL,
        comp bigint NOT NULL
    ) ON COMMIT DELETE ROWS;

    -- locked in id order (a termination or a run for another period that
    -- billed some of them meanwhile has left them nothing to bill here: the
    -- lines below decide), read as locked
    INSERT INTO inv_run_acc (account_id, invoice_id, exp, currency, terms, credit, terminated)
    SELECT a.id, gen_random_uuid(), a.currency_exp, a.currency, a.payment_terms_days,
           greatest(a.credit_balance, 0), a.status = 'terminated'
      FROM accounts a WHERE a.id = ANY (accs) ORDER BY a.id FOR UPDATE OF a;
    -- (a statement after the locks: sees what a chunk that held them committed)
    DELETE FROM inv_run_acc c
     WHERE (SELECT 1 FROM invoices i WHERE i.account_id = c.account_id
               AND i.period = p_period AND i.kind = 'monthly' LIMIT 1) IS NOT NULL;

    -- Every line at once, numbered per account: usage of the period grouped
    -- by service and destination, usage of earlier periods that arrived late
    -- (R5.3; one open rollup per account, period, service and destination:
    -- usage_rollups_open), then the interest of earlier invoices' months (a
    -- correction where some was posted before) by invoice number and month,
    -- then fixed compensation once, by invoice number (R6.4, R6.5). Every
    -- read goes account by account through an index (LATERAL ... OFFSET 0),
    -- so that a chunk costs the same at the start and at the end of the run.
    INSERT INTO inv_run_lines (account_id, invoice_id, line_no, kind, service, destination,
                               period, ref, rollup_id, quantity, unit_price, exact, amount,
                               description, accrued)
    SELECT e.account_id, e.invoice_id,
           row_number() OVER (PARTITION BY e.account_id
                              ORDER BY e.s, CASE WHEN e.s < 2 THEN e.d END, e.t1, e.d,
                                       e.t2)::int,
           e.kind, e.service, e.destination, e.period, e.ref, e.rollup_id, e.quantity,
           e.unit_price, e.exact, e.amount, e.description, e.accrued
      FROM (SELECT u.account_id, u.invoice_id, u.s, u.d, u.t1, u.t2,
                   CASE WHEN u.s = 0 THEN 'usage' ELSE 'prior_usage' END AS kind,
                   u.t1 AS service, nullif(u.t2, '') AS destination,
                   CASE WHEN u.s = 0 THEN NULL ELSE u.d END AS period, NULL::uuid AS ref,
                   u.rollup_id, u.quantity, u.unit_price, u.exact,
                   creditd_round(u.exact, u.exp) AS amount,
                   CASE WHEN u.s = 0
                        THEN u.t1 || coalesce(' to ' || nullif(u.t2, ''), '')
                        ELSE 'Prior-period usage ' || to_char(u.d, 'YYYY-MM') || ': ' ||
                             u.t1 || coalesce(' to ' || nullif(u.t2, ''), '') END
                       AS description,
                   0::bigint AS accrued
              FROM (SELECT r.account_id, c1.invoice_id, c1.exp,
                           CASE WHEN r.period = p_period THEN 0 ELSE 1 END AS s,
                           r.period AS d, r.service AS t1, r.destination AS t2,
                           min(r.id) AS rollup_id, sum(r.quantity)::bigint AS quantity,
                           CASE WHEN min(r.unit_min) = max(r.unit_max) THEN min(r.unit_min) END
                               AS unit_price,
                           sum(r.amount)::bigint AS exact
                      FROM inv_run_acc c1
                      CROSS JOIN LATERAL (SELECT * FROM usage_rollups r
                                           WHERE r.account_id = c1.account_id
                                             AND r.invoice_id IS NULL
                                             AND r.period <= p_period OFFSET 0) r
                     GROUP BY r.account_id, c1.invoice_id, c1.exp, r.period, r.service,
                              r.destination) u
            UNION ALL
            SELECT o.account_id, c2.invoice_id, x.s, x.month, o.number, NULL,
                   CASE WHEN x.s = 3 THEN 'compensation'
                        WHEN x.posted_any THEN 'interest_correction' ELSE 'interest' END,
                   NULL, NULL, x.month, o.id, NULL, NULL, NULL, x.amount, x.amount,
                   CASE WHEN x.s = 3 THEN 'Fixed compensation for late payment of ' || o.number
                        ELSE CASE WHEN x.posted_any THEN 'Interest correction '
                                  ELSE 'Late-payment interest ' END
                             || to_char(x.month, 'YYYY-MM') || ' on ' || o.number END,
                   CASE WHEN x.s = 3 THEN 0 WHEN x.posted_any THEN x.amount ELSE x.micro END
              FROM inv_run_acc c2
              CROSS JOIN LATERAL (SELECT * FROM invoices o
                                   WHERE o.account_id = c2.account_id OFFSET 0) o
              CROSS JOIN LATERAL (
                  SELECT 2 AS s, a.month, a.micro, a.posted_any,
                         creditd_round(a.micro, o.currency_exp) - a.posted AS amount
                    FROM interest_accruals a
                   WHERE a.invoice_id = o.id AND a.month <= p_period
                  UNION ALL
                  SELECT 3, NULL::date, 0::bigint, false, o.compensation_due
                   WHERE o.compensation_due > 0 AND NOT o.compensation_posted) x
             WHERE x.amount <> 0) e;

    -- No invoice for an account with nothing to bill (R5.3); the invoices'
    -- totals; their numbers' order (gap-free, R5.2: account order)
    INSERT INTO inv_run_bill (account_id, invoice_id, rn, exp, currency, terms, credit,
                              terminated, exact, usage, interest, comp)
    SELECT c.account_id, c.invoice_id, row_number() OVER (ORDER BY c.account_id)::int, c.exp,
           c.currency, c.terms, c.credit, c.terminated, t.exact, t.usage, t.interest, t.comp
      FROM inv_run_acc c
      JOIN (SELECT l.account_id,
                   coalesce(sum(l.exact) FILTER (WHERE l.ref IS NULL), 0)::bigint AS exact,
                   coalesce(sum(l.amount) FILTER (WHERE l.ref IS NULL), 0)::bigint AS usage,
                   coalesce(sum(l.amount) FILTER (WHERE l.ref IS NOT NULL
                                                    AND l.kind <> 'compensation'), 0)::bigint
                       AS interest,
                   coalesce(sum(l.amount) FILTER (WHERE l.kind = 'compensation'), 0)::bigint
                       AS comp
              FROM inv_run_lines l GROUP BY l.account_id) t ON t.account_id = c.account_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        RETURN -1;
    END IF;

    -- what was posted leaves the accruals (a later change of interest is a
    -- correction: posted_any); compensation is posted once
    UPDATE interest_accruals x SET posted = x.posted + l.amount, posted_any = true
      FROM inv_run_lines l
     WHERE l.kind IN ('interest', 'interest_correction') AND x.invoice_id = l.ref
       AND x.month = l.period;
    -- the earlier invoices' accrued, unposted interest (R4.2: what
    -- creditd_refresh_accrued computes; a posted month adds nothing until it
    -- changes) and compensation
    UPDATE invoices o SET accrued_interest = o.accrued_interest - s.accrued,
           compensation_posted = o.compensation_posted OR s.comp
      FROM (SELECT ref, sum(accrued)::bigint AS accrued,
                   bool_or(kind = 'compensation') AS comp
              FROM inv_run_lines WHERE ref IS NOT NULL GROUP BY ref) s
     WHERE o.id = s.ref;
    UPDATE usage_rollups r SET invoice_id = l.invoice_id
      FROM inv_run_lines l
     WHERE r.id = l.rollup_id;
    -- (only invoicing writes them, with the account locked; looked up
    -- account by account: the statistics may know no row of the period, and
    -- a plan that reads all of them once per chunk makes the run quadratic)
    INSERT INTO invoiced_periods (account_id, period)
    SELECT c.account_id, p_period FROM inv_run_bill c
     WHERE (SELECT 1 FROM invoiced_periods p
             WHERE p.account_id = c.account_id AND p.period = p_period LIMIT 1) IS NULL;
    -- exposure (R4.2), each account once: billed usage leaves unbilled_usage
    -- (exact amounts), the invoice's open balance joins open_balance, posted
    -- interest leaves accrued_interest (the new invoice accrues none)
    UPDATE accounts a SET
        unbilled_usage = a.unbilled_usage - c.exact,
        credit_balance = a.credit_balance - t.applied,
        open_balance = a.open_balance + t.total - t.applied,
        accrued_interest = CASE WHEN c.interest <> 0 OR c.comp <> 0
                                THEN (SELECT coalesce(sum(o.accrued_interest), 0)
                                        FROM invoices o WHERE o.account_id = a.id)
                                ELSE a.accrued_interest END,
        updated_at = p_at
      FROM inv_run_bill c,
           LATERAL (SELECT c.usage + c.interest + c.comp AS total,
                           least(c.credit, greatest(c.usage + c.interest + c.comp, 0))
                               AS applied) t
     WHERE a.id = c.account_id;

    -- The numbered part, last: the series stays locked until the commit.
    first_no := creditd_reserve_numbers(series, n);
    -- every invoice once, with its final totals and the account credit applied
    -- at issue (R5.3): at most its total, per component in the order of R6.1;
    -- due at once when issued to a terminated account (R5.6)
    INSERT INTO invoices (id, number, account_id, kind, period, issue_date, due_date, currency,
                          currency_exp, usage_total, interest_total, compensation_total, total,
                          credit_applied, accelerated_due_date, created_at)
    SELECT c.invoice_id, series || '-' || lpad((first_no + c.rn - 1)::text, 6, '0'),
           c.account_id, 'monthly', p_period, p_issue,
           p_issue + c.terms, c.currency, c.exp, c.usage, c.interest, c.comp,
           c.usage + c.interest + c.comp,
           least(c.credit, greatest(c.usage + c.interest + c.comp, 0)),
           CASE WHEN c.terminated AND c.terms > 0 THEN p_issue END, p_at
      FROM inv_run_bill c ORDER BY c.rn;
    INSERT INTO invoice_lines (invoice_id, line_no, kind, service, destination, period,
                               ref_invoice, quantity, unit_price, exact, amount, description)
    SELECT l.invoice_id, l.line_no, l.kind, l.service, l.destination, l.period, l.ref,
           l.quantity, l.unit_price, l.exact, l.amount, l.description
      FROM inv_run_lines l ORDER BY l.invoice_id, l.line_no;
    INSERT INTO payment_allocations (payment_id, invoice_id, component, amount, received_at)
    SELECT NULL, s.invoice_id, k.component, k.amount, p_at
      FROM (SELECT c.invoice_id, c.credit AS x_all,
                   -- outstanding per component at issue (creditd_invoice_outstanding)
                   least(greatest(c.comp, 0), t.total) AS o_c,
                   least(greatest(c.interest, 0),
                         t.total - least(greatest(c.comp, 0), t.total)) AS o_i,
                   t.total
              FROM inv_run_bill c,
                   LATERAL (SELECT greatest(c.usage + c.interest + c.comp, 0) AS total) t
             WHERE c.credit > 0 AND t.total > 0) s,
           LATERAL (SELECT least(s.x_all, s.o_c) AS x_c) a,
           LATERAL (SELECT least(s.x_all - a.x_c, s.o_i) AS x_i) b,
           LATERAL (SELECT least(s.x_all - a.x_c - b.x_i, s.total - s.o_c - s.o_i) AS x_u) d,
           LATERAL (VALUES (1, 'compensation', a.x_c), (2, 'interest', b.x_i),
                           (3, 'usage', d.x_u)) k(ord, component, amount)
     WHERE k.amount > 0
     ORDER BY s.invoice_id, k.ord;
    -- (payloads: to_jsonb of a row is jsonb_build_object's object, in less
    -- time, as in 0012)
    INSERT INTO notifications (account_id, kind, created_at, payload)
    SELECT r.account, 'invoice.issued', p_at, to_jsonb(r)
      FROM (SELECT c.account_id AS account, c.invoice_id AS invoice,
                   series || '-' || lpad((first_no + c.rn - 1)::text, 6, '0') AS number,
                   to_char(p_period, 'YYYY-MM') AS period,
                   creditd_amount(c.usage + c.interest + c.comp) AS total,
                   c.currency, p_issue AS issue_date, p_issue + c.terms AS due_date
              FROM inv_run_bill c ORDER BY c.rn) r;
    PERFORM pg_notify('creditd_outbox', '');
    RETURN n;
END
$$;

-- 0011's entry point (a daemon of the previous release): the whole run as
-- one lane.
CREATE OR REPLACE FUNCTION creditd_invoice_chunk(p_period date, p_issue date, p_prefix text,
                                                 p_limit int, p_at timestamptz)
RETURNS int LANGUAGE sql AS $$
    SELECT creditd_invoice_chunk_lane(p_period, p_issue, p_prefix, p_limit, p_at, 0, 1)
$$;
