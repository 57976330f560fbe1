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

-- The chunk's cursor: the highest account already invoiced for the period.
CREATE INDEX invoices_monthly_period ON invoices (period, account_id) WHERE kind = 'monthly';
-- Overdue invoices whose interest may still be posted, and compensation not
-- yet posted, by account (the candidates' ordered reads below).
CREATE INDEX invoices_interest_open ON invoices (account_id)
    WHERE interest_through IS NOT NULL AND NOT interest_done;
CREATE INDEX invoices_compensation_open ON invoices (account_id)
    WHERE compensation_due > 0 AND NOT compensation_posted;

-- Accounts with something to bill for p_period and no monthly invoice for it
-- yet, in id order, over every account: the exact answer (0009's), read in
-- full. Used once the ordered reads below find nothing.
CREATE FUNCTION creditd_invoice_candidates_all(p_period date, p_limit int) RETURNS uuid[]
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

-- The same above account p_after, each source read in account order with a
-- limit through an index: a chunk reads about as many rows as it bills, not
-- every open rollup (so the run is linear in accounts). Every account it
-- returns is billable; it may miss some whose only interest is hidden from
-- the partial index (the exact pass above finds them).
CREATE FUNCTION creditd_invoice_candidates_after(p_period date, p_limit int, p_after uuid)
RETURNS uuid[] LANGUAGE sql STABLE AS $$
    SELECT array_agg(account_id ORDER BY account_id) FROM (
        SELECT DISTINCT account_id FROM (
            (SELECT DISTINCT r.account_id FROM usage_rollups r
              WHERE r.invoice_id IS NULL AND r.period <= p_period AND r.account_id > p_after
                AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.account_id = r.account_id
                                   AND i.period = p_period AND i.kind = 'monthly')
              ORDER BY r.account_id LIMIT p_limit)
            UNION ALL
            (SELECT DISTINCT o.account_id FROM invoices o
              WHERE o.interest_through IS NOT NULL AND NOT o.interest_done
                AND o.account_id > p_after
                AND EXISTS (SELECT 1 FROM interest_pending p WHERE p.invoice_id = o.id
                               AND p.month <= p_period AND p.amount <> 0)
                AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.account_id = o.account_id
                                   AND i.period = p_period AND i.kind = 'monthly')
              ORDER BY o.account_id LIMIT p_limit)
            UNION ALL
            (SELECT DISTINCT o.account_id FROM invoices o
              WHERE o.compensation_due > 0 AND NOT o.compensation_posted
                AND o.account_id > p_after
                AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.account_id = o.account_id
                                   AND i.period = p_period AND i.kind = 'monthly')
              ORDER BY o.account_id LIMIT p_limit)) c
         ORDER BY account_id LIMIT p_limit) s
$$;

-- Candidates of the next chunk: after the last account invoiced for the
-- period (chunks go in account order); from the start when none is; the
-- exact pass when the ordered reads find nothing (late arrivals below the
-- cursor, the end of the run).
CREATE OR REPLACE FUNCTION creditd_invoice_candidates(p_period date, p_limit int) RETURNS uuid[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
    after uuid;
    accs uuid[];
BEGIN
    SELECT account_id INTO after FROM invoices
     WHERE period = p_period AND kind = 'monthly' ORDER BY account_id DESC LIMIT 1;
    accs := creditd_invoice_candidates_after(
        p_period, p_limit, coalesce(after, '00000000-0000-0000-0000-000000000000'));
    IF accs IS NOT NULL THEN
        RETURN accs;
    END IF;
    RETURN creditd_invoice_candidates_all(p_period, p_limit);
END
$$;

-- R5.1-R5.4, R6.4, R6.5: invoice up to p_limit accounts that have something
-- to bill for p_period and no monthly invoice for it yet; one transaction.
-- Set-based over rollups and pending interest: every invoice is written once
-- with its final totals, each account once. Returns how many accounts it
-- invoiced (0 = the run is complete; -1 = this chunk found its accounts billed
-- meanwhile, go on).
CREATE OR REPLACE FUNCTION creditd_invoice_chunk(p_period date, p_issue date, p_prefix text,
                                                 p_limit int, p_at timestamptz)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    accs uuid[];
    first_no bigint;
    n int;
    series text := p_prefix || '-' || extract(year FROM p_issue)::int;
BEGIN
    -- one run per period at a time, across daemons (R5.1, R9.2)
    PERFORM pg_advisory_xact_lock(7274100, p_period - date '2000-01-01');
    accs := creditd_invoice_candidates(p_period, p_limit);
    IF accs IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM 1 FROM accounts WHERE id = ANY (accs) ORDER BY id FOR UPDATE;
    -- a concurrent run for another period or a termination may have billed
    -- them while we waited for the locks: keep those still billable (one
    -- index lookup per account and source)
    SELECT array_agg(x ORDER BY x) INTO accs FROM unnest(accs) x
     WHERE NOT EXISTS (SELECT 1 FROM invoices i WHERE i.account_id = x AND i.period = p_period
                          AND i.kind = 'monthly')
       AND (EXISTS (SELECT 1 FROM usage_rollups r WHERE r.account_id = x
                       AND r.invoice_id IS NULL AND r.period <= p_period)
            OR EXISTS (SELECT 1 FROM interest_pending p WHERE p.account_id = x
                          AND p.month <= p_period AND p.amount <> 0)
            OR EXISTS (SELECT 1 FROM invoices o WHERE o.account_id = x
                          AND o.compensation_due > 0 AND NOT o.compensation_posted));
    IF accs IS NULL THEN
        RETURN -1;   -- nothing issued in this chunk; the caller goes on
    END IF;
    n := cardinality(accs);

    CREATE TEMP TABLE IF NOT EXISTS inv_chunk (
        account_id uuid PRIMARY KEY, invoice_id uuid NOT NULL, number text NOT NULL,
        exp smallint NOT NULL, currency text NOT NULL, terms int NOT NULL,
        credit bigint NOT NULL, nlines int NOT NULL DEFAULT 0,
        exact bigint NOT NULL DEFAULT 0, usage bigint NOT NULL DEFAULT 0,
        interest bigint NOT NULL DEFAULT 0, comp bigint NOT NULL DEFAULT 0
    ) ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE IF NOT EXISTS inv_chunk_lines (
        account_id uuid NOT NULL, invoice_id uuid NOT NULL, line_no int NOT NULL,
        kind text NOT NULL, service text, destination text, period date, ref uuid,
        quantity bigint, unit_price bigint, exact bigint NOT NULL, amount bigint NOT NULL,
        description text NOT NULL
    ) ON COMMIT DELETE ROWS;

    first_no := creditd_reserve_numbers(series, n);
    INSERT INTO inv_chunk (account_id, invoice_id, number, exp, currency, terms, credit)
    SELECT a.id, gen_random_uuid(),
           series || '-' || lpad((first_no + s.rn - 1)::text, 6, '0'),
           a.currency_exp, a.currency, a.payment_terms_days, greatest(a.credit_balance, 0)
      FROM unnest(accs) WITH ORDINALITY s(account_id, rn)
      JOIN accounts a ON a.id = s.account_id;

    -- usage lines of the period, grouped by service and destination; usage of
    -- earlier periods that arrived late as prior-period lines (R5.3)
    INSERT INTO inv_chunk_lines (account_id, invoice_id, line_no, kind, service, destination,
                                 period, quantity, unit_price, exact, amount, description)
    SELECT u.account_id, u.invoice_id, u.line_no, u.kind, u.service, u.destination, u.period,
           u.quantity, u.unit_price, u.exact, u.amount,
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
                   sum(r.quantity)::bigint AS quantity,
                   CASE WHEN min(r.unit_min) = max(r.unit_max) THEN min(r.unit_min) END
                       AS unit_price,
                   sum(r.amount)::bigint AS exact,
                   creditd_round(sum(r.amount)::bigint, c.exp) AS amount
              FROM usage_rollups r JOIN inv_chunk c ON c.account_id = r.account_id
             WHERE r.invoice_id IS NULL AND r.period <= p_period
             GROUP BY r.account_id, c.invoice_id, c.exp, r.period, r.service, r.destination) u;
    UPDATE inv_chunk c SET nlines = t.n, exact = t.exact, usage = t.amount
      FROM (SELECT account_id, count(*)::int AS n, sum(exact)::bigint AS exact,
                   sum(amount)::bigint AS amount
              FROM inv_chunk_lines GROUP BY account_id) t
     WHERE t.account_id = c.account_id;

    -- R6.4/R6.5: interest of earlier invoices' months (a correction where some
    -- was posted before), then fixed compensation once, numbered after the
    -- usage lines by invoice number and month
    INSERT INTO inv_chunk_lines (account_id, invoice_id, line_no, kind, period, ref, exact,
                                 amount, description)
    SELECT e.account_id, c.invoice_id,
           c.nlines + row_number() OVER (PARTITION BY e.account_id
                                         ORDER BY e.grp, e.number, e.month)::int,
           e.kind, e.month, e.ref, e.amount, e.amount, e.description
      FROM (SELECT p.account_id, 0 AS grp, o.number, p.month, p.invoice_id AS ref, p.amount,
                   CASE WHEN p.posted_before THEN 'interest_correction' ELSE 'interest' END
                       AS kind,
                   CASE WHEN p.posted_before THEN 'Interest correction '
                        ELSE 'Late-payment interest ' END
                   || to_char(p.month, 'YYYY-MM') || ' on ' || o.number AS description
              FROM inv_chunk c2
              JOIN interest_pending p ON p.account_id = c2.account_id
              JOIN invoices o ON o.id = p.invoice_id
             WHERE p.month <= p_period AND p.amount <> 0
            UNION ALL
            SELECT o.account_id, 1, o.number, NULL, o.id, o.compensation_due, 'compensation',
                   'Fixed compensation for late payment of ' || o.number
              FROM inv_chunk c2 JOIN invoices o ON o.account_id = c2.account_id
             WHERE o.compensation_due > 0 AND NOT o.compensation_posted) e
      JOIN inv_chunk c ON c.account_id = e.account_id;
    UPDATE inv_chunk c SET interest = t.interest, comp = t.comp
      FROM (SELECT account_id,
                   coalesce(sum(amount) FILTER (WHERE kind <> 'compensation'), 0) AS interest,
                   coalesce(sum(amount) FILTER (WHERE kind = 'compensation'), 0) AS comp
              FROM inv_chunk_lines WHERE ref IS NOT NULL GROUP BY account_id) t
     WHERE t.account_id = c.account_id;
    ANALYZE inv_chunk;
    ANALYZE inv_chunk_lines;

    -- every invoice once, with its final totals and the account credit applied
    -- at issue (R5.3): at most its total, per component in the order of R6.1
    INSERT INTO invoices (id, number, account_id, kind, period, issue_date, due_date, currency,
                          currency_exp, usage_total, interest_total, compensation_total, total,
                          credit_applied, created_at)
    SELECT c.invoice_id, c.number, c.account_id, 'monthly', p_period, p_issue,
           p_issue + c.terms, c.currency, c.exp, c.usage, c.interest, c.comp,
           c.usage + c.interest + c.comp,
           least(c.credit, greatest(c.usage + c.interest + c.comp, 0)), p_at
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
    -- the earlier invoices' accrued, unposted interest (R4.2) and compensation
    UPDATE invoices o SET accrued_interest = coalesce(s.accrued, 0),
           compensation_posted = o.compensation_posted OR s.comp
      FROM (SELECT r.ref,
                   (SELECT sum(CASE WHEN x.posted_any
                                    THEN creditd_round(x.micro, o2.currency_exp) - x.posted
                                    ELSE x.micro END)
                      FROM interest_accruals x JOIN invoices o2 ON o2.id = x.invoice_id
                     WHERE x.invoice_id = r.ref) AS accrued,
                   r.comp
              FROM (SELECT ref, bool_or(kind = 'compensation') AS comp FROM inv_chunk_lines
                     WHERE ref IS NOT NULL GROUP BY ref) r) s
     WHERE o.id = s.ref;

    UPDATE usage_rollups r SET invoice_id = c.invoice_id
      FROM inv_chunk c
     WHERE r.account_id = c.account_id AND r.invoice_id IS NULL AND r.period <= p_period;
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
