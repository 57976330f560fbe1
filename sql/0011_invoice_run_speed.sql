-- 0011_invoice_run_speed: the invoice run grows linearly with accounts and
-- posts the interest of a whole chunk set-based (issues 4 and 5; R5.1-R5.4,
-- R6.4, R6.5). Same invoices, lines, numbers and ledger as before.

-- What was posted for an invoice's month, and on which invoice (R6.4), is
-- exactly the interest and interest_correction lines that name it: derive it
-- from them instead of writing every posting twice.
DROP TABLE interest_postings;
CREATE VIEW interest_postings AS
SELECT l.ref_invoice AS invoice_id, l.period AS month, l.invoice_id AS line_invoice,
       l.amount
  FROM invoice_lines l
 WHERE l.kind IN ('interest', 'interest_correction');

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
BEGIN
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
        UPDATE interest_accruals SET posted = posted + r.amount, posted_any = true
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

-- R1.3 rounding of micro-units to the currency's minor unit, half away from
-- zero, as before (0005), written so that the planner inlines it (no FROM,
-- not STRICT; NULL in, NULL out all the same) and without a float power:
-- the run and the interest views call it millions of times.
CREATE FUNCTION creditd_minor_unit(p_exp int) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT ('{1000000,100000,10000,1000,100,10}'::bigint[])[p_exp + 1]
$$;
CREATE OR REPLACE FUNCTION creditd_round(p bigint, p_exp int) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_exp >= 6 THEN p
                WHEN p < 0
                THEN -((-p + creditd_minor_unit(p_exp) / 2) / creditd_minor_unit(p_exp)
                       * creditd_minor_unit(p_exp))
                ELSE (p + creditd_minor_unit(p_exp) / 2) / creditd_minor_unit(p_exp)
                     * creditd_minor_unit(p_exp) END
$$;

-- Invoices issued to a terminated account are due at once (R5.6): the
-- invoice run sets it itself (the final invoice is due at issue anyway),
-- instead of a trigger looking up the account for every invoice.
DROP TRIGGER invoices_terminated_due ON invoices;
DROP FUNCTION creditd_invoice_terminated_due();

-- Where the run for a period has got to: chunks take the accounts in id
-- order, each after the last account the previous chunk looked at, so that a
-- chunk reads about as much as it bills and the run is linear in accounts.
CREATE TABLE invoice_run_cursors (
    period       date PRIMARY KEY,
    after_account uuid NOT NULL
);

-- creditd_billable is no longer used: the chunk's lines decide.
DROP FUNCTION creditd_billable(uuid, date);

-- Accounts with something to bill for p_period and no monthly invoice for it
-- yet, in id order, over every account (0009's creditd_invoice_candidates):
-- the end of a run, which finds what arrived below the cursor meanwhile.
CREATE OR REPLACE FUNCTION creditd_invoice_candidates(p_period date, p_limit int) RETURNS uuid[]
LANGUAGE sql STABLE AS $$
    SELECT array_agg(account_id ORDER BY account_id) FROM (
        SELECT account_id FROM (
            SELECT r.account_id FROM usage_rollups r
             WHERE r.invoice_id IS NULL AND r.period <= p_period
            UNION
            SELECT p.account_id FROM interest_pending p
             WHERE p.month <= p_period AND p.amount <> 0
            UNION
            SELECT o.account_id FROM invoices o
             WHERE o.compensation_due > 0 AND NOT o.compensation_posted) c
         WHERE NOT EXISTS (SELECT 1 FROM invoices i WHERE i.account_id = c.account_id
                              AND i.period = p_period AND i.kind = 'monthly')
         ORDER BY account_id LIMIT p_limit) s
$$;

-- R5.1-R5.4, R6.4, R6.5: one chunk of the invoice run, one transaction:
-- the next p_limit accounts after the run's cursor (at the end, those the
-- full read of creditd_invoice_candidates finds) are locked; each that has
-- lines to bill and no monthly invoice for p_period gets one. Set-based over
-- rollups and pending interest: every invoice is written once with its
-- final totals and gap-free number, each account once. Returns how many
-- invoices it issued (0 = the run is complete; -1 = none in this chunk, go
-- on).
CREATE OR REPLACE FUNCTION creditd_invoice_chunk(p_period date, p_issue date, p_prefix text,
                                                 p_limit int, p_at timestamptz)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    accs uuid[];
    after uuid;
    first_no bigint;
    n int;
    series text := p_prefix || '-' || extract(year FROM p_issue)::int;
BEGIN
    -- one run per period at a time, across daemons (R5.1, R9.2)
    PERFORM pg_advisory_xact_lock(7274100, p_period - date '2000-01-01');
    SELECT after_account INTO after FROM invoice_run_cursors WHERE period = p_period;
    -- locked in id order (a termination or a run for another period that
    -- billed some of them meanwhile has left them nothing to bill here: the
    -- lines below decide)
    accs := ARRAY(SELECT id FROM accounts
                   WHERE id > coalesce(after, '00000000-0000-0000-0000-000000000000')
                   ORDER BY id LIMIT p_limit FOR UPDATE);
    IF cardinality(accs) > 0 THEN
        INSERT INTO invoice_run_cursors (period, after_account)
        VALUES (p_period, accs[cardinality(accs)])
        ON CONFLICT (period) DO UPDATE SET after_account = excluded.after_account;
    ELSE
        accs := creditd_invoice_candidates(p_period, p_limit);
        IF accs IS NULL THEN
            RETURN 0;
        END IF;
        PERFORM 1 FROM accounts WHERE id = ANY (accs) ORDER BY id FOR UPDATE;
    END IF;

    CREATE TEMP TABLE IF NOT EXISTS inv_chunk (
        account_id uuid PRIMARY KEY, invoice_id uuid NOT NULL, number text,
        exp smallint NOT NULL, currency text NOT NULL, terms int NOT NULL,
        credit bigint NOT NULL, terminated boolean NOT NULL, nlines int NOT NULL DEFAULT 0,
        exact bigint NOT NULL DEFAULT 0, usage bigint NOT NULL DEFAULT 0,
        interest bigint NOT NULL DEFAULT 0, comp bigint NOT NULL DEFAULT 0
    ) ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE IF NOT EXISTS inv_chunk_lines (
        account_id uuid NOT NULL, invoice_id uuid NOT NULL, line_no int NOT NULL,
        kind text NOT NULL, service text, destination text, period date, ref uuid,
        rollup_id bigint,
        quantity bigint, unit_price bigint, exact bigint NOT NULL, amount bigint NOT NULL,
        description text NOT NULL,
        accrued bigint NOT NULL DEFAULT 0   -- what the posted month added to accrued_interest
    ) ON COMMIT DELETE ROWS;

    -- Every read below goes account by account through an index (LATERAL
    -- ... OFFSET 0 keeps the planner from hashing a whole table per chunk on
    -- statistics taken before the run): a chunk costs the same at the start
    -- and at the end of the run, the run is linear in accounts.
    INSERT INTO inv_chunk (account_id, invoice_id, exp, currency, terms, credit, terminated)
    SELECT a.id, gen_random_uuid(), a.currency_exp, a.currency, a.payment_terms_days,
           greatest(a.credit_balance, 0), a.status = 'terminated'
      FROM unnest(accs) s(id)
      CROSS JOIN LATERAL (SELECT * FROM accounts a WHERE a.id = s.id OFFSET 0) a
     WHERE (SELECT 1 FROM invoices i WHERE i.account_id = a.id AND i.period = p_period
               AND i.kind = 'monthly' LIMIT 1) IS NULL;
    ANALYZE inv_chunk;

    -- usage lines of the period, grouped by service and destination; usage of
    -- earlier periods that arrived late as prior-period lines (R5.3)
    -- (one open rollup per account, period, service and destination:
    -- usage_rollups_open)
    INSERT INTO inv_chunk_lines (account_id, invoice_id, line_no, kind, service, destination,
                                 period, rollup_id, quantity, unit_price, exact, amount,
                                 description)
    SELECT u.account_id, u.invoice_id, u.line_no, u.kind, u.service, u.destination, u.period,
           u.rollup_id, u.quantity, u.unit_price, u.exact, u.amount,
           CASE WHEN u.kind = 'usage'
                THEN u.service || coalesce(' to ' || u.destination, '')
                ELSE 'Prior-period usage ' || to_char(u.period, 'YYYY-MM') || ': ' ||
                     u.service || coalesce(' to ' || u.destination, '') END
      FROM (SELECT r.account_id, c.invoice_id,
                   row_number() OVER (PARTITION BY r.account_id
                                      ORDER BY (r.period = p_period) DESC, r.period, r.service,
                                               r.destination)::int AS line_no,
                   CASE WHEN r.period = p_period THEN 'usage' ELSE 'prior_usage' END AS kind,
                   r.service, nullif(r.destination, '') AS destination,
                   CASE WHEN r.period = p_period THEN NULL ELSE r.period END AS period,
                   min(r.id) AS rollup_id, sum(r.quantity)::bigint AS quantity,
                   CASE WHEN min(r.unit_min) = max(r.unit_max) THEN min(r.unit_min) END
                       AS unit_price,
                   sum(r.amount)::bigint AS exact,
                   creditd_round(sum(r.amount)::bigint, c.exp) AS amount
              FROM inv_chunk c
              CROSS JOIN LATERAL (SELECT * FROM usage_rollups r
                                   WHERE r.account_id = c.account_id AND r.invoice_id IS NULL
                                     AND r.period <= p_period OFFSET 0) r
             GROUP BY r.account_id, c.invoice_id, c.exp, r.period, r.service, r.destination) u;
    UPDATE inv_chunk c SET nlines = t.n, exact = t.exact, usage = t.amount
      FROM (SELECT account_id, count(*)::int AS n, sum(exact)::bigint AS exact,
                   sum(amount)::bigint AS amount
              FROM inv_chunk_lines GROUP BY account_id) t
     WHERE t.account_id = c.account_id;

    -- R6.4/R6.5: interest of earlier invoices' months (a correction where some
    -- was posted before), then fixed compensation once, numbered after the
    -- usage lines by invoice number and month
    -- (interest_pending, read through its tables for the accrual's micro)
    INSERT INTO inv_chunk_lines (account_id, invoice_id, line_no, kind, period, ref, exact,
                                 amount, description, accrued)
    SELECT e.account_id, c.invoice_id,
           c.nlines + row_number() OVER (PARTITION BY e.account_id
                                         ORDER BY e.grp, e.number, e.month)::int,
           e.kind, e.month, e.ref, e.amount, e.amount, e.description, e.accrued
      FROM (SELECT p.account_id, 0 AS grp, p.number, p.month, p.ref, p.amount,
                   CASE WHEN p.posted_any THEN 'interest_correction' ELSE 'interest' END
                       AS kind,
                   CASE WHEN p.posted_any THEN 'Interest correction '
                        ELSE 'Late-payment interest ' END
                   || to_char(p.month, 'YYYY-MM') || ' on ' || p.number AS description,
                   CASE WHEN p.posted_any THEN p.amount ELSE p.micro END AS accrued
              FROM (SELECT o.account_id, o.number, o.id AS ref, x.month, x.micro, x.posted_any,
                           creditd_round(x.micro, o.currency_exp) - x.posted AS amount
                      FROM inv_chunk c2
                      CROSS JOIN LATERAL (SELECT * FROM invoices o
                                           WHERE o.account_id = c2.account_id OFFSET 0) o
                      CROSS JOIN LATERAL (SELECT * FROM interest_accruals x
                                           WHERE x.invoice_id = o.id AND x.month <= p_period
                                          OFFSET 0) x) p
             WHERE p.amount <> 0
            UNION ALL
            SELECT o.account_id, 1, o.number, NULL, o.id, o.compensation_due, 'compensation',
                   'Fixed compensation for late payment of ' || o.number, 0
              FROM inv_chunk c2
              CROSS JOIN LATERAL (SELECT * FROM invoices o
                                   WHERE o.account_id = c2.account_id AND o.compensation_due > 0
                                     AND NOT o.compensation_posted OFFSET 0) o) e
      JOIN inv_chunk c ON c.account_id = e.account_id;
    UPDATE inv_chunk c SET interest = t.interest, comp = t.comp
      FROM (SELECT account_id,
                   coalesce(sum(amount) FILTER (WHERE kind <> 'compensation'), 0) AS interest,
                   coalesce(sum(amount) FILTER (WHERE kind = 'compensation'), 0) AS comp
              FROM inv_chunk_lines WHERE ref IS NOT NULL GROUP BY account_id) t
     WHERE t.account_id = c.account_id;
    -- no invoice for an account with nothing to bill (R5.3); numbers only
    -- for the invoices issued, in account order (gap-free, R5.2)
    DELETE FROM inv_chunk c
     WHERE NOT EXISTS (SELECT 1 FROM inv_chunk_lines l WHERE l.account_id = c.account_id);
    SELECT count(*) INTO n FROM inv_chunk;
    IF n = 0 THEN
        RETURN -1;
    END IF;
    first_no := creditd_reserve_numbers(series, n);
    UPDATE inv_chunk c SET number = series || '-' || lpad((first_no + s.rn - 1)::text, 6, '0')
      FROM (SELECT account_id, row_number() OVER (ORDER BY account_id) AS rn FROM inv_chunk) s
     WHERE s.account_id = c.account_id;
    ANALYZE inv_chunk_lines;

    -- every invoice once, with its final totals and the account credit applied
    -- at issue (R5.3): at most its total, per component in the order of R6.1
    INSERT INTO invoices (id, number, account_id, kind, period, issue_date, due_date, currency,
                          currency_exp, usage_total, interest_total, compensation_total, total,
                          credit_applied, accelerated_due_date, created_at)
    SELECT c.invoice_id, c.number, c.account_id, 'monthly', p_period, p_issue,
           p_issue + c.terms, c.currency, c.exp, c.usage, c.interest, c.comp,
           c.usage + c.interest + c.comp,
           least(c.credit, greatest(c.usage + c.interest + c.comp, 0)),
           CASE WHEN c.terminated AND c.terms > 0 THEN p_issue END, p_at
      FROM inv_chunk c;
    INSERT INTO invoice_lines (invoice_id, line_no, kind, service, destination, period,
                               ref_invoice, quantity, unit_price, exact, amount, description)
    SELECT l.invoice_id, l.line_no, l.kind, l.service, l.destination, l.period, l.ref,
           l.quantity, l.unit_price, l.exact, l.amount, l.description
      FROM inv_chunk_lines l ORDER BY l.invoice_id, l.line_no;
    INSERT INTO payment_allocations (payment_id, invoice_id, component, amount, received_at)
    SELECT NULL, s.invoice_id, k.component, k.amount, p_at
      FROM (SELECT c.invoice_id, c.credit AS x_all,
                   -- outstanding per component at issue (creditd_invoice_outstanding)
                   least(greatest(c.comp, 0), t.total) AS o_c,
                   least(greatest(c.interest, 0),
                         t.total - least(greatest(c.comp, 0), t.total)) AS o_i,
                   t.total
              FROM inv_chunk c,
                   LATERAL (SELECT greatest(c.usage + c.interest + c.comp, 0) AS total) t
             WHERE c.credit > 0 AND t.total > 0) s,
           LATERAL (SELECT least(s.x_all, s.o_c) AS x_c) a,
           LATERAL (SELECT least(s.x_all - a.x_c, s.o_i) AS x_i) b,
           LATERAL (SELECT least(s.x_all - a.x_c - b.x_i, s.total - s.o_c - s.o_i) AS x_u) d,
           LATERAL (VALUES (1, 'compensation', a.x_c), (2, 'interest', b.x_i),
                           (3, 'usage', d.x_u)) k(ord, component, amount)
     WHERE k.amount > 0
     ORDER BY s.invoice_id, k.ord;

    -- what was posted leaves the accruals (a later change of interest is a
    -- correction: posted_any); compensation is posted once
    UPDATE interest_accruals x SET posted = x.posted + l.amount, posted_any = true
      FROM inv_chunk_lines l
     WHERE l.kind IN ('interest', 'interest_correction') AND x.invoice_id = l.ref
       AND x.month = l.period;
    -- the earlier invoices' accrued, unposted interest (R4.2: what
    -- creditd_refresh_accrued computes; a posted month adds nothing until it
    -- changes) and compensation
    UPDATE invoices o SET accrued_interest = o.accrued_interest - s.accrued,
           compensation_posted = o.compensation_posted OR s.comp
      FROM (SELECT ref, sum(accrued)::bigint AS accrued,
                   bool_or(kind = 'compensation') AS comp
              FROM inv_chunk_lines WHERE ref IS NOT NULL GROUP BY ref) s
     WHERE o.id = s.ref;

    UPDATE usage_rollups r SET invoice_id = l.invoice_id
      FROM inv_chunk_lines l
     WHERE r.id = l.rollup_id;
    INSERT INTO invoiced_periods (account_id, period)
    SELECT account_id, p_period FROM inv_chunk
    ON CONFLICT DO NOTHING;

    -- exposure (R4.2), each account once: billed usage leaves unbilled_usage
    -- (exact amounts), the invoice's open balance joins open_balance, posted
    -- interest leaves accrued_interest
    UPDATE accounts a SET
        unbilled_usage = a.unbilled_usage - c.exact,
        credit_balance = a.credit_balance - t.applied,
        open_balance = a.open_balance + t.total - t.applied,
        accrued_interest = CASE WHEN c.interest <> 0 OR c.comp <> 0
                                THEN (SELECT coalesce(sum(o.accrued_interest), 0)
                                        FROM invoices o WHERE o.account_id = a.id)
                                ELSE a.accrued_interest END,
        updated_at = p_at
      FROM inv_chunk c,
           LATERAL (SELECT c.usage + c.interest + c.comp AS total,
                           least(c.credit, greatest(c.usage + c.interest + c.comp, 0))
                               AS applied) t
     WHERE a.id = c.account_id;
    INSERT INTO notifications (account_id, kind, created_at, payload)
    SELECT c.account_id, 'invoice.issued', p_at,
           jsonb_build_object('account', c.account_id, 'invoice', c.invoice_id,
                              'number', c.number, 'period', to_char(p_period, 'YYYY-MM'),
                              'total', creditd_amount(c.usage + c.interest + c.comp),
                              'currency', c.currency, 'issue_date', p_issue,
                              'due_date', p_issue + c.terms)
      FROM inv_chunk c
     ORDER BY c.account_id;
    PERFORM pg_notify('creditd_outbox', '');
    RETURN n;
END
$$;

-- Amounts as API text (0002's), inlinable: not STRICT (NULL in, NULL out all
-- the same). The invoice run formats one per notification.
CREATE OR REPLACE FUNCTION creditd_amount(p bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p % 1000000 = 0 THEN (p / 1000000)::text
                ELSE rtrim((p::numeric / 1000000)::text, '0') END
$$;
