-- 0005_invoicing: invoices, lines, gap-free numbering, credit notes,
-- payment allocations, jobs and the invoice run (R5, R6.1).

-- R1.3: each account's currency minor unit, set by the daemon from its ISO
-- 4217 table (common/currency.c) when the account is created.
ALTER TABLE accounts ADD COLUMN currency_exp smallint NOT NULL DEFAULT 2
    CHECK (currency_exp BETWEEN 0 AND 6);
UPDATE accounts a SET currency_exp = v.e
  FROM (VALUES ('BHD',3),('BIF',0),('CLF',4),('CLP',0),('DJF',0),('GNF',0),('IQD',3),('ISK',0),
               ('JOD',3),('JPY',0),('KMF',0),('KRW',0),('KWD',3),('LYD',3),('OMR',3),('PYG',0),
               ('RWF',0),('TND',3),('UGX',0),('UYI',0),('UYW',4),('VND',0),('VUV',0),('XAF',0),
               ('XOF',0),('XPF',0)) v(c, e)
 WHERE a.currency = v.c;

-- R1.3: round micro-units to 10^-p_exp, half away from zero (as money_round()).
CREATE FUNCTION creditd_round(p bigint, p_exp int) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE WHEN p_exp >= 6 THEN p
                ELSE sign(p)::bigint * ((abs(p) + u / 2) / u) * u END
      FROM (SELECT (10::bigint ^ (6 - p_exp))::bigint AS u) s
$$;

-- R5.2: gap-free numbers per series, a counter row locked in the issuing
-- transaction (never a sequence: a rolled-back sequence value is a gap).
CREATE TABLE number_series (
    series text PRIMARY KEY,     -- e.g. 'INV-2026', 'CN-2026'
    last   bigint NOT NULL DEFAULT 0
);

-- Reserve n consecutive numbers of a series; returns the first.
CREATE FUNCTION creditd_reserve_numbers(p_series text, p_n int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    first bigint;
BEGIN
    INSERT INTO number_series (series) VALUES (p_series) ON CONFLICT DO NOTHING;
    UPDATE number_series SET last = last + p_n WHERE series = p_series
    RETURNING last - p_n + 1 INTO first;
    RETURN first;
END
$$;

CREATE TABLE invoices (
    id             uuid PRIMARY KEY,
    number         text NOT NULL UNIQUE,
    account_id     uuid NOT NULL REFERENCES accounts (id),
    kind           text NOT NULL CHECK (kind IN ('monthly', 'final')),
    period         date NOT NULL,              -- billing month (first day)
    issue_date     date NOT NULL,
    due_date       date NOT NULL,
    currency       text NOT NULL,
    currency_exp   smallint NOT NULL,
    usage_total    bigint NOT NULL,            -- rounded usage + prior usage lines
    interest_total bigint NOT NULL DEFAULT 0,  -- interest and corrections (R6.4)
    compensation_total bigint NOT NULL DEFAULT 0,
    total          bigint NOT NULL,            -- sum of rounded lines (R1.3)
    credit_applied bigint NOT NULL DEFAULT 0,  -- account credit applied at issue (R5.3)
    paid           bigint NOT NULL DEFAULT 0,  -- payments allocated
    credited       bigint NOT NULL DEFAULT 0,  -- credit notes
    created_at     timestamptz NOT NULL,
    seq            bigint GENERATED ALWAYS AS IDENTITY UNIQUE
);
-- R5.1: one monthly invoice per account and period, whatever runs twice.
CREATE UNIQUE INDEX invoices_monthly_once ON invoices (account_id, period) WHERE kind = 'monthly';
CREATE INDEX invoices_account ON invoices (account_id, due_date);
CREATE INDEX invoices_open ON invoices (due_date)
    WHERE total - credit_applied - paid - credited > 0;

CREATE TABLE invoice_lines (
    invoice_id  uuid NOT NULL REFERENCES invoices (id),
    line_no     integer NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('usage', 'prior_usage', 'interest',
                                              'interest_correction', 'compensation')),
    service     text,
    destination text,
    period      date,          -- prior_usage: the month the usage belongs to
    ref_invoice uuid,          -- interest lines: the overdue invoice
    quantity    bigint,
    unit_price  bigint,        -- when uniform
    exact       bigint NOT NULL,   -- before rounding (micro-units)
    amount      bigint NOT NULL,   -- rounded to the currency's minor unit
    description text NOT NULL,
    PRIMARY KEY (invoice_id, line_no)
);

CREATE TABLE credit_notes (
    id          uuid PRIMARY KEY,
    number      text NOT NULL UNIQUE,
    invoice_id  uuid NOT NULL REFERENCES invoices (id),
    amount      bigint NOT NULL CHECK (amount > 0),
    reason      text NOT NULL,
    issued_at   timestamptz NOT NULL,
    actor       text NOT NULL
);

-- R6.1: how each payment settled which invoice component; reversed rows
-- stay (reversed_at) so that history can be recomputed as of any date.
CREATE TABLE payment_allocations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment_id  uuid REFERENCES payments (id),   -- NULL: account credit applied at issue
    invoice_id  uuid NOT NULL REFERENCES invoices (id),
    component   text NOT NULL CHECK (component IN ('compensation', 'interest', 'usage')),
    amount      bigint NOT NULL CHECK (amount > 0),
    received_at timestamptz NOT NULL,
    reversed_at timestamptz
);
CREATE INDEX payment_allocations_invoice ON payment_allocations (invoice_id);
ALTER TABLE payments ADD COLUMN reversed_at timestamptz, ADD COLUMN reverse_reason text;

-- Jobs started by ops tooling or the scheduler (R5.1).
CREATE TABLE jobs (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('invoicing', 'daily')),
    params      jsonb NOT NULL,
    status      text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    result      jsonb,
    error       text,
    requested_by text NOT NULL,
    created_at  timestamptz NOT NULL,
    finished_at timestamptz,
    seq         bigint GENERATED ALWAYS AS IDENTITY UNIQUE
);

-- Per period: when its invoice run completed (R5.1 deadline reporting).
CREATE TABLE invoice_runs (
    period      date PRIMARY KEY,
    invoiced_at timestamptz NOT NULL,
    invoices    integer NOT NULL
);

-- Hook for the interest issue (R5.3, R6.4): lines that the run adds per
-- account before totals. Until then it adds nothing.
CREATE FUNCTION creditd_invoice_interest_lines(p_account uuid, p_invoice uuid, p_period date,
                                               p_first_line int, p_at timestamptz)
RETURNS int LANGUAGE sql AS $$ SELECT 0 $$;

-- Whether an account has something to bill for p_period (the interest
-- migration adds interest and compensation).
CREATE FUNCTION creditd_billable(p_account uuid, p_period date) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM usage_rollups r WHERE r.account_id = p_account
                      AND r.invoice_id IS NULL AND r.period <= p_period)
$$;

-- Accounts with something to bill for p_period and no monthly invoice for
-- it yet, in id order. The interest migration extends "something to bill".
CREATE FUNCTION creditd_invoice_candidates(p_period date, p_limit int) RETURNS uuid[]
LANGUAGE sql STABLE AS $$
    SELECT array_agg(account_id ORDER BY account_id) FROM (
        SELECT DISTINCT r.account_id FROM usage_rollups r
         WHERE r.invoice_id IS NULL AND r.period <= p_period
           AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.account_id = r.account_id
                              AND i.period = p_period AND i.kind = 'monthly')
         ORDER BY r.account_id LIMIT p_limit) s
$$;

-- R5.1-R5.4: invoice up to p_limit accounts that have unbilled usage of
-- p_period or earlier and no monthly invoice for p_period yet; one
-- transaction. Set-based over rollups. Returns how many accounts it invoiced
-- (0 = the run is complete; -1 = this chunk found its accounts billed
-- meanwhile, go on).
CREATE FUNCTION creditd_invoice_chunk(p_period date, p_issue date, p_prefix text, p_limit int,
                                      p_at timestamptz)
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
    -- them while we waited for the locks: keep those still billable
    SELECT array_agg(x ORDER BY x) INTO accs FROM unnest(accs) x
     WHERE creditd_billable(x, p_period)
       -- one index lookup per account (an anti-join would compare against
       -- every invoice of the period already issued: not linear)
       AND (SELECT 1 FROM invoices i WHERE i.account_id = x AND i.period = p_period
               AND i.kind = 'monthly' LIMIT 1) IS NULL;
    IF accs IS NULL THEN
        RETURN -1;   -- nothing issued in this chunk; the caller goes on
    END IF;
    n := cardinality(accs);

    CREATE TEMP TABLE IF NOT EXISTS inv_new (
        account_id uuid PRIMARY KEY, invoice_id uuid, number text, exp smallint,
        currency text, terms int, nlines int NOT NULL DEFAULT 0,
        exact bigint NOT NULL DEFAULT 0
    ) ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE IF NOT EXISTS inv_lines_new (
        account_id uuid, kind text, service text, destination text, period date,
        quantity bigint, unit_price bigint, exact bigint, amount bigint, line_no int
    ) ON COMMIT DELETE ROWS;

    first_no := creditd_reserve_numbers(series, n);
    INSERT INTO inv_new
    SELECT a.id, gen_random_uuid(),
           series || '-' || lpad((first_no + s.rn - 1)::text, 6, '0'),
           a.currency_exp, a.currency, a.payment_terms_days
      FROM unnest(accs) WITH ORDINALITY s(account_id, rn)
      JOIN accounts a ON a.id = s.account_id;

    -- usage lines of the period, grouped by service and destination; usage of
    -- earlier periods that arrived late as prior-period lines (R5.3)
    INSERT INTO inv_lines_new
    SELECT r.account_id,
           CASE WHEN r.period = p_period THEN 'usage' ELSE 'prior_usage' END,
           r.service, nullif(r.destination, ''),
           CASE WHEN r.period = p_period THEN NULL ELSE r.period END,
           sum(r.quantity),
           CASE WHEN min(r.unit_min) = max(r.unit_max) THEN min(r.unit_min) END,
           sum(r.amount)::bigint, creditd_round(sum(r.amount)::bigint, min(n2.exp)::int),
           row_number() OVER (PARTITION BY r.account_id
                              ORDER BY (r.period = p_period) DESC, r.period, r.service,
                                       r.destination)::int
      FROM usage_rollups r JOIN inv_new n2 ON n2.account_id = r.account_id
     WHERE r.invoice_id IS NULL AND r.period <= p_period
     GROUP BY r.account_id, r.period, r.service, r.destination;

    -- per account once (no correlated scans of the lines below)
    UPDATE inv_new n2 SET nlines = t.n, exact = t.exact
      FROM (SELECT account_id, count(*)::int AS n, sum(exact)::bigint AS exact
              FROM inv_lines_new GROUP BY account_id) t
     WHERE t.account_id = n2.account_id;
    ANALYZE inv_new;
    ANALYZE inv_lines_new;

    INSERT INTO invoices (id, number, account_id, kind, period, issue_date, due_date, currency,
                          currency_exp, usage_total, total, created_at)
    SELECT n2.invoice_id, n2.number, n2.account_id, 'monthly', p_period, p_issue,
           p_issue + n2.terms, n2.currency, n2.exp, coalesce(t.amount, 0),
           coalesce(t.amount, 0), p_at
      FROM inv_new n2
      LEFT JOIN (SELECT account_id, sum(amount) AS amount FROM inv_lines_new
                  GROUP BY account_id) t ON t.account_id = n2.account_id;

    INSERT INTO invoice_lines (invoice_id, line_no, kind, service, destination, period,
                               quantity, unit_price, exact, amount, description)
    SELECT n2.invoice_id, l.line_no, l.kind, l.service, l.destination, l.period, l.quantity,
           l.unit_price, l.exact, l.amount,
           CASE WHEN l.kind = 'usage'
                THEN l.service || coalesce(' to ' || l.destination, '')
                ELSE 'Prior-period usage ' || to_char(l.period, 'YYYY-MM') || ': ' ||
                     l.service || coalesce(' to ' || l.destination, '') END
      FROM inv_lines_new l JOIN inv_new n2 ON n2.account_id = l.account_id;

    -- the hook for interest and compensation lines (issue 5): it adds lines
    -- and raises the invoice's totals itself
    PERFORM creditd_invoice_interest_lines(n2.account_id, n2.invoice_id, p_period,
                                           n2.nlines + 1, p_at)
       FROM inv_new n2;

    UPDATE usage_rollups r SET invoice_id = n2.invoice_id
      FROM inv_new n2
     WHERE r.account_id = n2.account_id AND r.invoice_id IS NULL AND r.period <= p_period;
    INSERT INTO invoiced_periods (account_id, period)
    SELECT account_id, p_period FROM inv_new
    ON CONFLICT DO NOTHING;

    -- R5.3: account credit is applied to the new invoice at issue
    UPDATE invoices i SET credit_applied = least(greatest(a.credit_balance, 0), i.total)
      FROM inv_new n2 JOIN accounts a ON a.id = n2.account_id
     WHERE i.id = n2.invoice_id;
    INSERT INTO payment_allocations (payment_id, invoice_id, component, amount, received_at)
    SELECT NULL, i.id, 'usage', i.credit_applied, p_at
      FROM invoices i JOIN inv_new n2 ON n2.invoice_id = i.id
     WHERE i.credit_applied > 0;
    -- exposure (R4.2): billed usage leaves unbilled_usage (exact amounts), the
    -- invoice's open balance joins open_balance
    UPDATE accounts a SET
        unbilled_usage = a.unbilled_usage - s.exact,
        credit_balance = a.credit_balance - s.applied,
        open_balance = a.open_balance + s.total - s.applied,
        updated_at = p_at
      FROM (SELECT n2.account_id, i.total, i.credit_applied AS applied,
                   n2.exact
              FROM inv_new n2 JOIN invoices i ON i.id = n2.invoice_id) s
     WHERE a.id = s.account_id;
    PERFORM creditd_notify(i.account_id, 'invoice.issued', p_at,
        jsonb_build_object('account', i.account_id, 'invoice', i.id, 'number', i.number,
                           'period', to_char(i.period, 'YYYY-MM'),
                           'total', creditd_amount(i.total), 'currency', i.currency,
                           'issue_date', i.issue_date, 'due_date', i.due_date))
       FROM invoices i JOIN inv_new n2 ON n2.invoice_id = i.id;
    RETURN n;
END
$$;
