-- 0037_interest_after_final: the rest of the termination month's interest
-- is interest, not a correction (R5.6, R6.4), found by
-- tests/integration/test_audit_termination.py (test_11b).
--
-- 1. The final invoice of a terminated account posts the termination
--    month's interest accrued so far, through the termination day. The
--    debt goes on bearing interest for the rest of the month, and the next
--    invoice run posted that rest as "interest_correction" ("Interest
--    correction 2026-03 on INV-..."), because the month had been posted
--    before (posted_any). Nothing backdated changed it: it is ordinary
--    late-payment interest of the month (R6.4), a line of kind "interest".
--    interest_accruals.posted_partial marks a month a final invoice posted
--    while days of it were left (its own month, issued before the month's
--    last day); the next posting of the month is then "interest" and clears
--    the mark: a later change of the month is a correction again. A
--    termination on the month's last day posts the month whole (the daily
--    job accrues through today): no mark, so that a later backdated change
--    is a correction (terminated before that day's daily job, the last day
--    follows as a correction, as any short posting does). posted_any keeps
--    its meaning for the exposure arithmetic (R4.2: creditd_refresh_accrued,
--    the daily job's and the run's accrued figures), unchanged.
--    Full bodies of 0011's creditd_invoice_interest_lines and of 0035's
--    creditd_invoice_chunk_lane (the latest) with only that change.

ALTER TABLE interest_accruals
    ADD COLUMN posted_partial boolean NOT NULL DEFAULT false; -- (1) posted in part (R5.6)

-- (1) 0011's creditd_invoice_interest_lines (called by creditd_invoice_final).
CREATE OR REPLACE FUNCTION creditd_invoice_interest_lines(p_account uuid, p_invoice uuid,
                                                          p_period date, p_first_line int,
                                                          p_at timestamptz)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    n int := 0;
    r record;
    line int := p_first_line;
    interest bigint := 0;
    comp bigint := 0;
    partial boolean;
BEGIN
    -- (1) a final invoice (R5.6) posts its own month only through the
    -- termination day (the accruals so far): when days of the month are
    -- left, what accrues on them is that month's interest still to post
    SELECT coalesce(bool_or(o.kind = 'final'
                            AND o.issue_date < (p_period + interval '1 month')::date - 1),
                    false)
      INTO partial FROM invoices o WHERE o.id = p_invoice;
    FOR r IN SELECT p.invoice_id, p.month, p.amount, p.posted_before, o.number
               FROM interest_pending p JOIN invoices o ON o.id = p.invoice_id
              WHERE p.account_id = p_account AND p.month <= p_period AND p.amount <> 0
                AND p.invoice_id <> p_invoice
              ORDER BY o.number, p.month LOOP
        INSERT INTO invoice_lines (invoice_id, line_no, kind, period, ref_invoice, exact, amount,
                                   description)
        VALUES (p_invoice, line,
                CASE WHEN r.posted_before THEN 'interest_correction' ELSE 'interest' END,
                r.month, r.invoice_id, r.amount, r.amount,
                CASE WHEN r.posted_before THEN 'Interest correction ' ELSE 'Late-payment interest ' END
                || to_char(r.month, 'YYYY-MM') || ' on ' || r.number);
        UPDATE interest_accruals SET posted = posted + r.amount, posted_any = true,
               posted_partial = partial AND r.month = p_period
         WHERE invoice_id = r.invoice_id AND month = r.month;
        interest := interest + r.amount;
        line := line + 1;
        n := n + 1;
    END LOOP;
    FOR r IN SELECT o.id, o.number, o.compensation_due FROM invoices o
              WHERE o.account_id = p_account AND o.compensation_due > 0
                AND NOT o.compensation_posted AND o.id <> p_invoice
              ORDER BY o.number LOOP
        INSERT INTO invoice_lines (invoice_id, line_no, kind, ref_invoice, exact, amount,
                                   description)
        VALUES (p_invoice, line, 'compensation', r.id, r.compensation_due, r.compensation_due,
                'Fixed compensation for late payment of ' || r.number);
        UPDATE invoices SET compensation_posted = true WHERE id = r.id;
        comp := comp + r.compensation_due;
        line := line + 1;
        n := n + 1;
    END LOOP;
    IF n > 0 THEN
        UPDATE invoices SET interest_total = interest_total + interest,
               compensation_total = compensation_total + comp,
               total = total + interest + comp
         WHERE id = p_invoice;
        PERFORM creditd_refresh_accrued(ARRAY[p_account]);
    END IF;
    RETURN n;
END
$$;

-- (1) 0035's creditd_invoice_chunk_lane.
CREATE OR REPLACE FUNCTION creditd_invoice_chunk_lane(p_period date, p_issue date, p_prefix text,
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
                        -- (1) the rest of a partly posted month is interest
                        WHEN x.posted_any AND NOT x.posted_partial THEN 'interest_correction'
                        ELSE 'interest' END,
                   NULL, NULL, x.month, o.id, NULL, NULL, NULL, x.amount, x.amount,
                   CASE WHEN x.s = 3 THEN 'Fixed compensation for late payment of ' || o.number
                        ELSE CASE WHEN x.posted_any AND NOT x.posted_partial
                                  THEN 'Interest correction '
                                  ELSE 'Late-payment interest ' END
                             || to_char(x.month, 'YYYY-MM') || ' on ' || o.number END,
                   CASE WHEN x.s = 3 THEN 0 WHEN x.posted_any THEN x.amount ELSE x.micro END
              FROM inv_run_acc c2
              CROSS JOIN LATERAL (SELECT * FROM invoices o
                                   WHERE o.account_id = c2.account_id OFFSET 0) o
              CROSS JOIN LATERAL (
                  SELECT 2 AS s, a.month, a.micro, a.posted_any, a.posted_partial,
                         creditd_round(a.micro, o.currency_exp) - a.posted AS amount
                    FROM interest_accruals a
                   WHERE a.invoice_id = o.id AND a.month <= p_period
                  UNION ALL
                  SELECT 3, NULL::date, 0::bigint, false, false, o.compensation_due
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
    -- correction: posted_any; (1) the month is posted in full now:
    -- posted_partial); compensation is posted once
    UPDATE interest_accruals x SET posted = x.posted + l.amount, posted_any = true,
           posted_partial = false
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
    SELECT c.invoice_id, creditd_number(series, first_no + c.rn - 1),
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
                   creditd_number(series, first_no + c.rn - 1) AS number,
                   'monthly'::text AS kind,   -- (1) as the final invoice's "final"
                   to_char(p_period, 'YYYY-MM') AS period,
                   creditd_amount(c.usage + c.interest + c.comp) AS total,
                   c.currency, p_issue AS issue_date,
                   -- the date the invoice is due: at issue for a terminated account
                   CASE WHEN c.terminated THEN p_issue ELSE p_issue + c.terms END AS due_date
              FROM inv_run_bill c ORDER BY c.rn) r;
    PERFORM pg_notify('creditd_outbox', '');
    RETURN n;
END
$$;

