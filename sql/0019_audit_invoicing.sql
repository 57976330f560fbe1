-- 0019_audit_invoicing: corrections found by
-- tests/integration/test_audit_invoicing.py (R5.2, R5.6, R6.1) and, for
-- (6), tests/integration/test_invoicing.py test_52 (R4.5, R2.3).
--
-- 1. Numbers past 999,999 (R5.2). Every series formatted its number with
--    lpad(n, 6, '0'), which PostgreSQL truncates to 6 characters: number
--    1,000,000 of a year came out as "100000", a duplicate of number
--    100,000, so the invoice run (and credit notes, final invoices) failed
--    with a unique violation for the rest of the year once a series passed
--    999,999 (100,000 accounts issue 1.2 million monthly invoices a year).
--    Numbers now keep at least 6 digits and grow beyond them
--    (INV-2026-999999, INV-2026-1000000): creditd_number(), used by the
--    invoice run, credit notes and final invoices (full bodies of 0014,
--    0006 and 0008 with only that change, and (2) in the run).
--
-- 2. The invoice.issued notification of an invoice issued to a terminated
--    account (late events billed by the monthly run) said due date = issue
--    date + payment terms, while the invoice is due at issue (R5.6, the
--    run's accelerated_due_date): the customer was told a date 15 days too
--    late. It now carries the date the invoice is due.
--
-- 3. Payments went to open invoices by their contractual due date
--    (invoices.due_date), not by the due date that counts
--    (effective_due_date, moved forward by a termination, R5.6), so after a
--    termination a payment settled the final invoice or a later invoice
--    before the older invoice whose due date had moved (R6.1 "oldest due
--    date first"; README: effective due date, then issue date, number).
--    The last tie-break is the issue order (seq) rather than the number
--    text, which no longer sorts numerically past 999,999.
--
-- 4. A bounced payment of a terminated account whose credit had been
--    forfeited at the termination (R5.6: received before the 7-day refund
--    window) was taken back from the customer's refundable credit and then
--    as a debt: the customer ended up owing the forfeited amount on top.
--    The money that never arrived now leaves the forfeited amount first
--    (terminations.forfeited), then the credit as before.
--
-- 5. A payment that bounced after the termination reopened invoices with
--    their contractual due date, later than the termination date: undone
--    as of its received date, the invoice was unpaid at the termination and
--    its due date moves to the termination date (R5.6).
--
-- 6. A credit note re-evaluated limits with the payment's step
--    (creditd_payment_reevaluate): one that brought exposure to zero or below
--    lifted monthly_limit and restarted the monthly counter, which R4.5
--    gives only to payments ("monthly_limit: removed at the start of the
--    next billing month, or when a payment brings exposure to zero or
--    below"), and the status history recorded its total_limit lift with
--    cause 'payment' (R2.3: the cause is recorded). It now calls
--    creditd_evaluate_limits with cause 'credit_note': total_limit lifts as
--    soon as exposure is below the limit (R4.5 names the credit note there),
--    monthly_limit stays.

-- "<series>-NNNNNN": at least 6 digits, never truncated (R5.2).
CREATE FUNCTION creditd_number(p_series text, p_n bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_series || '-' || CASE WHEN p_n BETWEEN 0 AND 999999 THEN lpad(p_n::text, 6, '0')
                                   ELSE p_n::text END
$$;

-- (1) and (6): 0006's creditd_credit_note.
CREATE OR REPLACE FUNCTION creditd_credit_note(p_invoice_id uuid, p_invoice_number text, p_amount bigint,
                                               p_reason text, p_prefix text, p_issue date,
                                               p_thresholds int[], p_at timestamptz, p_actor text,
                                               p_rid text,
                                               OUT id uuid, OUT number text, OUT invoice_id uuid,
                                               OUT invoice_number text, OUT account_id uuid,
                                               OUT currency text, OUT currency_exp int, OUT amount bigint,
                                               OUT reason text, OUT issued_us bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    acc uuid;
    inv invoices;
    bal bigint;
    series text := p_prefix || '-' || extract(year FROM p_issue)::int;
    cn_id uuid := gen_random_uuid();
    cn_number text;
    response jsonb;
BEGIN
    SELECT i.account_id INTO acc FROM invoices i
     WHERE i.id = p_invoice_id OR i.number = p_invoice_number;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'invoice not found' USING ERRCODE = 'CR404';
    END IF;
    -- lock order as every money path: the account, then its invoice
    PERFORM 1 FROM accounts WHERE id = acc FOR UPDATE;
    SELECT * INTO inv FROM invoices i
     WHERE i.id = p_invoice_id OR i.number = p_invoice_number FOR UPDATE;
    IF p_amount IS NULL OR p_amount <= 0 THEN
        RAISE EXCEPTION 'amount: must be greater than 0' USING ERRCODE = 'CR400',
            DETAIL = 'amount';
    END IF;
    IF inv.currency_exp < 6 AND p_amount % (10::bigint ^ (6 - inv.currency_exp))::bigint <> 0 THEN
        RAISE EXCEPTION 'amount: at most % decimals in %', inv.currency_exp, inv.currency
            USING ERRCODE = 'CR400', DETAIL = 'amount';
    END IF;
    bal := inv.total - inv.credit_applied - inv.paid - inv.credited;
    IF p_amount > bal THEN
        RAISE EXCEPTION 'amount: % exceeds the balance % of invoice %',
            creditd_amount(p_amount), creditd_amount(bal), inv.number
            USING ERRCODE = 'CR422', DETAIL = 'amount';
    END IF;

    cn_number := creditd_number(series, creditd_reserve_numbers(series, 1));
    INSERT INTO credit_notes (id, number, invoice_id, amount, reason, issued_at, actor)
    VALUES (cn_id, cn_number, inv.id, p_amount, p_reason, p_at, p_actor);
    UPDATE invoices SET credited = credited + p_amount WHERE id = inv.id;
    UPDATE accounts SET open_balance = open_balance - p_amount, updated_at = p_at
     WHERE id = acc;

    response := jsonb_build_object('id', cn_id, 'number', cn_number, 'invoice', inv.id,
                                   'invoice_number', inv.number, 'account', acc,
                                   'currency', inv.currency,
                                   'amount', creditd_amount(p_amount), 'reason', p_reason,
                                   'issued_at', p_at);
    id := cn_id;
    number := cn_number;
    invoice_id := inv.id;
    invoice_number := inv.number;
    account_id := acc;
    currency := inv.currency;
    currency_exp := inv.currency_exp;
    amount := p_amount;
    reason := p_reason;
    issued_us := creditd_us(p_at);
    PERFORM creditd_audit(p_at, p_actor, 'credit_note.create', 'credit_note', cn_id::text,
        jsonb_build_object('invoice', inv.id, 'number', inv.number,
                           'credited', creditd_amount(inv.credited),
                           'balance', creditd_amount(bal)),
        response || jsonb_build_object('balance', creditd_amount(bal - p_amount)), p_rid);
    -- R4.5: `overdue` lifts when nothing is past due any more (as in a
    -- payment's transaction; creditd_overdue_reevaluate comes with 0007/0009
    -- and is resolved when this runs), total_limit once exposure is below
    -- the limit again; monthly_limit is not a credit note's to lift (6)
    PERFORM creditd_overdue_reevaluate(acc, p_at);
    PERFORM creditd_evaluate_limits(acc, p_thresholds, 'credit_note', p_actor, p_at, p_rid);
END
$$;

-- (1) 0008's creditd_invoice_final.
CREATE OR REPLACE FUNCTION creditd_invoice_final(p_account uuid, p_period date, p_issue date, p_from date,
                                                 p_prefix text, p_at timestamptz)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    a accounts;
    inv uuid := gen_random_uuid();
    i invoices;
    series text := p_prefix || '-' || extract(year FROM p_issue)::int;
    nlines int;
    exact_sum bigint;
    usage_sum bigint;
    applied bigint;
BEGIN
    SELECT * INTO a FROM accounts WHERE id = p_account FOR UPDATE;
    CREATE TEMP TABLE IF NOT EXISTS inv_final_lines (
        kind text, service text, destination text, period date, quantity bigint,
        unit_price bigint, exact bigint, amount bigint, line_no int
    ) ON COMMIT DELETE ROWS;
    DELETE FROM inv_final_lines;
    -- usage of the termination month (and of anything later: events may carry
    -- a time a few minutes ahead) as usage lines, earlier months as prior-period
    -- lines (R5.3)
    INSERT INTO inv_final_lines
    SELECT CASE WHEN r.period >= p_period THEN 'usage' ELSE 'prior_usage' END,
           r.service, nullif(r.destination, ''),
           CASE WHEN r.period >= p_period THEN NULL ELSE r.period END,
           sum(r.quantity),
           CASE WHEN min(r.unit_min) = max(r.unit_max) THEN min(r.unit_min) END,
           sum(r.amount)::bigint, creditd_round(sum(r.amount)::bigint, a.currency_exp),
           row_number() OVER (ORDER BY (r.period >= p_period) DESC, r.period, r.service,
                                       r.destination)::int
      FROM usage_rollups r
     WHERE r.account_id = p_account AND r.invoice_id IS NULL AND r.period >= p_from
     GROUP BY r.period, r.service, r.destination;
    SELECT count(*)::int, coalesce(sum(exact), 0)::bigint, coalesce(sum(amount), 0)::bigint
      INTO nlines, exact_sum, usage_sum FROM inv_final_lines;

    -- numbered only once it is known to have lines (gap-free, R5.2)
    INSERT INTO invoices (id, number, account_id, kind, period, issue_date, due_date, currency,
                          currency_exp, usage_total, total, created_at)
    VALUES (inv, 'pending-' || inv::text, p_account, 'final', p_period, p_issue, p_issue,
            a.currency, a.currency_exp, usage_sum, usage_sum, p_at);
    INSERT INTO invoice_lines (invoice_id, line_no, kind, service, destination, period,
                               quantity, unit_price, exact, amount, description)
    SELECT inv, l.line_no, l.kind, l.service, l.destination, l.period, l.quantity,
           l.unit_price, l.exact, l.amount,
           CASE WHEN l.kind = 'usage'
                THEN l.service || coalesce(' to ' || l.destination, '')
                ELSE 'Prior-period usage ' || to_char(l.period, 'YYYY-MM') || ': ' ||
                     l.service || coalesce(' to ' || l.destination, '') END
      FROM inv_final_lines l;
    -- interest and compensation (issue 5): the hook adds lines and raises the
    -- invoice's totals itself
    PERFORM creditd_invoice_interest_lines(p_account, inv, p_period, nlines + 1, p_at);
    IF NOT EXISTS (SELECT 1 FROM invoice_lines WHERE invoice_id = inv) THEN
        DELETE FROM invoices WHERE id = inv;
        RETURN NULL;
    END IF;
    UPDATE invoices
       SET number = creditd_number(series, creditd_reserve_numbers(series, 1))
     WHERE id = inv;

    UPDATE usage_rollups SET invoice_id = inv
     WHERE account_id = p_account AND invoice_id IS NULL AND period >= p_from;
    INSERT INTO invoiced_periods (account_id, period)
    SELECT DISTINCT p_account, r.period FROM usage_rollups r WHERE r.invoice_id = inv
    UNION SELECT p_account, p_period
    ON CONFLICT DO NOTHING;

    -- R5.3: account credit is applied at issue (per component, R6.1)
    SELECT * INTO a FROM accounts WHERE id = p_account;
    applied := 0;
    IF a.credit_balance > 0 THEN
        applied := creditd_apply_credit(inv, a.credit_balance, p_at);
    END IF;
    SELECT * INTO i FROM invoices WHERE id = inv;
    -- exposure (R4.2): billed usage leaves unbilled_usage (exact amounts)
    UPDATE accounts SET
        unbilled_usage = unbilled_usage - exact_sum,
        credit_balance = credit_balance - applied,
        open_balance = open_balance + i.total - applied,
        updated_at = p_at
     WHERE id = p_account;
    PERFORM creditd_notify(p_account, 'invoice.issued', p_at,
        jsonb_build_object('account', p_account, 'invoice', i.id, 'number', i.number,
                           'kind', 'final', 'period', to_char(i.period, 'YYYY-MM'),
                           'total', creditd_amount(i.total), 'currency', i.currency,
                           'issue_date', i.issue_date, 'due_date', i.due_date));
    RETURN inv;
END
$$;

-- (1), (2) 0014's creditd_invoice_chunk_lane.
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

-- (3) 0007's creditd_payment_book.
CREATE OR REPLACE FUNCTION creditd_payment_book(p_id uuid, p_acc_id uuid, p_acc_ext text, p_amount bigint,
                                                p_received timestamptz, p_reference text, p_invoice text,
                                                p_hash text, p_thresholds int[], p_at timestamptz,
                                                p_actor text, p_rid text,
                                                OUT outcome text, OUT response jsonb, OUT account_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
    a accounts;
    p payments;
    target invoices;
    target_uuid uuid;
    inv invoices;
    o record;
    unit bigint;
    rest bigint := p_amount;
    allocated bigint := 0;
    x_c bigint;
    x_i bigint;
    x_u bigint;
    allocs jsonb;
BEGIN
    FOR pass IN 1..2 LOOP
        -- pass 2 runs with the account locked: a concurrent request with the
        -- same id has committed by then and is answered as a replay
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
        EXIT WHEN pass = 2;
        SELECT * INTO a FROM accounts
         WHERE id = p_acc_id OR external_ref = p_acc_ext FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'account not found' USING ERRCODE = 'CR400', DETAIL = 'account';
        END IF;
    END LOOP;
    account_id := a.id;
    unit := (10::bigint ^ (6 - a.currency_exp))::bigint;
    IF p_amount % unit <> 0 THEN
        RAISE EXCEPTION 'amount: % allows at most % decimals', a.currency, a.currency_exp
            USING ERRCODE = 'CR400', DETAIL = 'amount';
    END IF;
    IF p_invoice IS NOT NULL THEN
        IF p_invoice ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
            target_uuid := p_invoice::uuid;
        END IF;
        SELECT * INTO target FROM invoices WHERE number = p_invoice OR id = target_uuid;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'invoice % not found', p_invoice
                USING ERRCODE = 'CR400', DETAIL = 'invoice';
        END IF;
        IF target.account_id <> a.id THEN
            RAISE EXCEPTION 'invoice % belongs to another account', p_invoice
                USING ERRCODE = 'CR400', DETAIL = 'invoice';
        END IF;
    END IF;
    -- the payment row first: allocations refer to it
    INSERT INTO payments (id, account_id, amount, received_at, reference, invoice, booked_at,
                          booked_by, request_hash, response)
    VALUES (p_id, a.id, p_amount, p_received, p_reference, p_invoice, p_at, p_actor, p_hash,
            '{}'::jsonb);
    FOR inv IN SELECT * FROM invoices i
                WHERE i.account_id = a.id AND (target.id IS NULL OR i.id = target.id)
                  AND i.total - i.credit_applied - i.paid - i.credited > 0
                -- the due date that counts (R5.6: moved by a termination)
                ORDER BY i.effective_due_date, i.issue_date, i.seq
                  FOR UPDATE LOOP
        EXIT WHEN rest = 0;
        o := creditd_invoice_outstanding(inv.id);
        x_c := least(rest, o.compensation);
        rest := rest - x_c;
        x_i := least(rest, o.interest);
        rest := rest - x_i;
        x_u := least(rest, o.usage);
        rest := rest - x_u;
        INSERT INTO payment_allocations (payment_id, invoice_id, component, amount, received_at)
        SELECT p_id, inv.id, c.component, c.amount, p_received
          FROM (VALUES (1, 'compensation', x_c), (2, 'interest', x_i), (3, 'usage', x_u))
               c(ord, component, amount)
         WHERE c.amount > 0
         ORDER BY c.ord;
        UPDATE invoices SET paid = paid + x_c + x_i + x_u WHERE id = inv.id;
        allocated := allocated + x_c + x_i + x_u;
    END LOOP;
    UPDATE accounts SET open_balance = open_balance - allocated,
                        credit_balance = credit_balance + rest, updated_at = p_at
     WHERE id = a.id;
    allocs := creditd_payment_allocations_json(p_id);
    response := jsonb_build_object('payment', p_id, 'account', a.id, 'allocations', allocs,
                                   'credit', creditd_amount(rest));
    UPDATE payments SET response = creditd_payment_book.response WHERE id = p_id;
    PERFORM creditd_notify(a.id, 'payment.received', p_at,
        jsonb_build_object('account', a.id, 'external_ref', a.external_ref, 'payment', p_id,
                           'amount', creditd_amount(p_amount), 'reference', p_reference,
                           'received_at', p_received, 'allocations', allocs,
                           'credit', creditd_amount(rest)));
    PERFORM creditd_audit(p_at, p_actor, 'payment.create', 'payment', p_id::text, NULL,
                          response || jsonb_build_object('amount', creditd_amount(p_amount),
                                                         'received_at', p_received,
                                                         'reference', p_reference,
                                                         'invoice', p_invoice), p_rid);
    PERFORM creditd_overdue_reevaluate(a.id, p_at);
    PERFORM creditd_payment_reevaluate(a.id, p_thresholds, p_at, p_actor, p_rid);
    outcome := 'created';
END
$$;

-- (4), (5) 0007's creditd_payment_reverse.
CREATE OR REPLACE FUNCTION creditd_payment_reverse(p_id uuid, p_reason text, p_thresholds int[],
                                                   p_at timestamptz, p_actor text, p_rid text)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    p payments;
    a accounts;
    x record;
    allocated bigint := 0;
    from_credit bigint;
    rest bigint;
    reopened bigint := 0;
    take bigint;
    t terminations;
    from_forfeit bigint := 0;
BEGIN
    SELECT * INTO p FROM payments WHERE id = p_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'payment not found' USING ERRCODE = 'CR404';
    END IF;
    -- lock order as in booking: the account, then the payment
    SELECT * INTO a FROM accounts WHERE id = p.account_id FOR UPDATE;
    SELECT * INTO p FROM payments WHERE id = p_id FOR UPDATE;
    IF p.reversed_at IS NOT NULL THEN
        RAISE EXCEPTION 'payment was already reversed' USING ERRCODE = 'CR422';
    END IF;
    -- its allocations
    FOR x IN SELECT invoice_id, sum(amount)::bigint AS s FROM payment_allocations
              WHERE payment_id = p_id AND reversed_at IS NULL
              GROUP BY invoice_id ORDER BY invoice_id LOOP
        UPDATE invoices SET paid = paid - x.s WHERE id = x.invoice_id;
        allocated := allocated + x.s;
    END LOOP;
    UPDATE payment_allocations SET reversed_at = p_at
     WHERE payment_id = p_id AND reversed_at IS NULL;
    -- the part that became credit: from the credit still there, then from
    -- credit applied at issue to invoices issued since the payment was
    -- booked (newest first), then as negative credit
    rest := p.amount - allocated;
    -- (4) R5.6: credit forfeited at the termination came from payments
    -- received before the refund window (the 7 billing-zone days before the
    -- termination day, as http_terminate.c's REFUND_WINDOW_DAYS; the session
    -- time zone is the billing zone); such a payment's bounce takes back the
    -- forfeited money first
    SELECT * INTO t FROM terminations WHERE terminations.account_id = a.id;
    IF FOUND AND t.forfeited > 0 AND p.booked_at <= t.terminated_at
       AND p.received_at < (t.termination_date - 7)::timestamptz THEN
        from_forfeit := least(rest, t.forfeited);
        rest := rest - from_forfeit;
        UPDATE terminations SET forfeited = forfeited - from_forfeit
         WHERE terminations.account_id = a.id;
    END IF;
    from_credit := least(rest, greatest(a.credit_balance, 0));
    rest := rest - from_credit;
    FOR x IN SELECT pa.* FROM payment_allocations pa JOIN invoices i ON i.id = pa.invoice_id
              WHERE i.account_id = a.id AND pa.payment_id IS NULL AND pa.reversed_at IS NULL
                AND pa.received_at >= p.booked_at
              ORDER BY pa.received_at DESC, pa.id DESC
                FOR UPDATE OF pa LOOP
        EXIT WHEN rest = 0;
        take := least(rest, x.amount);
        UPDATE payment_allocations SET reversed_at = p_at WHERE id = x.id;
        IF take < x.amount THEN
            INSERT INTO payment_allocations (payment_id, invoice_id, component, amount,
                                             received_at)
            VALUES (NULL, x.invoice_id, x.component, x.amount - take, x.received_at);
        END IF;
        UPDATE invoices SET credit_applied = credit_applied - take WHERE id = x.invoice_id;
        rest := rest - take;
        reopened := reopened + take;
    END LOOP;
    UPDATE accounts SET open_balance = open_balance + allocated + reopened,
                        credit_balance = credit_balance - from_credit - rest, updated_at = p_at
     WHERE id = a.id;
    UPDATE payments SET reversed_at = p_at, reverse_reason = p_reason WHERE id = p_id;
    -- (5) R5.6: undone as of its received date, what this reopens was unpaid
    -- at the termination: due at the termination date if later (invoices
    -- issued since are due at issue already)
    UPDATE invoices i SET accelerated_due_date = t2.termination_date
      FROM terminations t2
     WHERE t2.account_id = a.id AND i.account_id = a.id
       AND i.total - i.credit_applied - i.paid - i.credited > 0
       AND i.issue_date <= t2.termination_date
       AND i.effective_due_date > t2.termination_date;
    PERFORM creditd_notify(a.id, 'payment.reversed', p_at,
        jsonb_build_object('account', a.id, 'external_ref', a.external_ref, 'payment', p_id,
                           'amount', creditd_amount(p.amount), 'reference', p.reference,
                           'received_at', p.received_at, 'reason', p_reason));
    PERFORM creditd_audit(p_at, p_actor, 'payment.reverse', 'payment', p_id::text,
        jsonb_build_object('reversed_at', NULL, 'open_balance', creditd_amount(a.open_balance),
                           'credit_balance', creditd_amount(a.credit_balance)),
        jsonb_build_object('reversed_at', p_at, 'reason', p_reason,
                           'unallocated', creditd_amount(allocated),
                           'credit_taken_back', creditd_amount(from_credit),
                           'forfeit_taken_back', creditd_amount(from_forfeit),
                           'credit_application_undone', creditd_amount(reopened),
                           'negative_credit', creditd_amount(rest)), p_rid);
    PERFORM creditd_overdue_reevaluate(a.id, p_at);
    -- not creditd_payment_reevaluate: a bounced payment never lifts
    -- monthly_limit nor restarts the monthly counter; total_limit may return
    PERFORM creditd_evaluate_limits(a.id, p_thresholds, 'payment_reversal', p_actor, p_at,
                                    p_rid);
    RETURN a.id;
END
$$;
