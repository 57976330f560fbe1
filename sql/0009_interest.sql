-- 0009_interest: overdue invoices and statutory interest (R6.2-R6.7).

-- The account shows which statutory rule applies to it (API.md "Account
-- object": statutory_rule), or null when its jurisdiction has none.
CREATE OR REPLACE VIEW account_view AS
SELECT a.id, a.seq, a.external_ref, a.name, a.currency, a.jurisdiction, a.status,
       array_to_json(a.reasons)::text AS reasons_json,
       a.monthly_limit, a.total_limit, a.monthly_usage, a.unbilled_usage, a.open_balance,
       a.accrued_interest, a.credit_balance,
       a.unbilled_usage + a.open_balance + a.accrued_interest - a.credit_balance AS exposure,
       a.contractual_rate, a.payment_terms_days,
       (SELECT sr.jurisdiction FROM statutory_rules sr
         WHERE sr.jurisdiction = a.jurisdiction) AS statutory_rule,
       coalesce((SELECT json_agg(json_strip_nulls(json_build_object(
                    'id', c.id,
                    'monthly_limit', CASE WHEN c.set_monthly
                                          THEN to_json(creditd_amount(c.monthly_limit)) END,
                    'monthly_limit_removed', CASE WHEN c.set_monthly AND c.monthly_limit IS NULL
                                                  THEN true END,
                    'total_limit', CASE WHEN c.set_total
                                        THEN to_json(creditd_amount(c.total_limit)) END,
                    'total_limit_removed', CASE WHEN c.set_total AND c.total_limit IS NULL
                                                THEN true END,
                    'effective_at', to_char(c.effective_at AT TIME ZONE 'UTC',
                                            'YYYY-MM-DD"T"HH24:MI:SS"Z"')))
                   ORDER BY c.effective_at, c.id)
                   FROM limit_changes c WHERE c.account_id = a.id AND c.status = 'scheduled'),
                '[]')::text AS pending_json,
       creditd_us(a.created_at) AS created_us, creditd_us(a.terminated_at) AS terminated_us,
       a.usage_month - date '1970-01-01' AS usage_month_day
  FROM accounts a;

ALTER TABLE invoices
    ADD COLUMN IF NOT EXISTS accelerated_due_date date,          -- R5.6 termination
    ADD COLUMN accrued_interest bigint NOT NULL DEFAULT 0,        -- unposted, micro-units
    ADD COLUMN interest_through date,                             -- accruals computed to here
    ADD COLUMN interest_done boolean NOT NULL DEFAULT false,      -- paid and all posted
    ADD COLUMN compensation_due bigint,                           -- R6.5 fixed compensation
    ADD COLUMN compensation_posted boolean NOT NULL DEFAULT false;
ALTER TABLE accounts ADD COLUMN reactivated_at timestamptz;

-- R6.2: the day an invoice falls due (termination may bring it forward).
CREATE FUNCTION creditd_due(i invoices) RETURNS date LANGUAGE sql IMMUTABLE AS $$
    SELECT least(i.due_date, coalesce(i.accelerated_due_date, i.due_date))
$$;

-- R6.3/R6.4: exact interest per overdue invoice and calendar month, as the
-- engine (common/interest.c) computed it; `exact` is in units of
-- 1/1.60308e12 micro-units, `micro` the same rounded to micro-units.
CREATE TABLE interest_accruals (
    invoice_id uuid NOT NULL REFERENCES invoices (id),
    month      date NOT NULL,
    exact      numeric NOT NULL,
    micro      bigint NOT NULL,
    posted     bigint NOT NULL DEFAULT 0,      -- sum of interest_postings of the month
    posted_any boolean NOT NULL DEFAULT false, -- something was posted (corrections follow)
    PRIMARY KEY (invoice_id, month)
);

-- What was posted for an invoice's month, and on which invoice (R6.4).
CREATE TABLE interest_postings (
    invoice_id   uuid NOT NULL REFERENCES invoices (id),
    month        date NOT NULL,
    line_invoice uuid NOT NULL REFERENCES invoices (id),
    amount       bigint NOT NULL,   -- rounded to the currency's minor unit
    PRIMARY KEY (invoice_id, month, line_invoice)
);

-- R6.2: notices sent (once each).
CREATE TABLE invoice_notices (
    invoice_id uuid NOT NULL REFERENCES invoices (id),
    kind       text NOT NULL,
    days       integer NOT NULL,
    sent_at    timestamptz NOT NULL,
    PRIMARY KEY (invoice_id, kind, days)
);

-- R6.7: reactivation requests of inactive accounts.
CREATE TABLE reactivations (
    id           uuid PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts (id),
    effective_at timestamptz NOT NULL,
    override     boolean NOT NULL,
    note         text,
    actor        text NOT NULL,
    status       text NOT NULL CHECK (status IN ('scheduled', 'applied')),
    created_at   timestamptz NOT NULL,
    applied_at   timestamptz
);
CREATE INDEX reactivations_due ON reactivations (effective_at) WHERE status = 'scheduled';

-- Interest still to post for an invoice's month: the rounded accrual minus
-- what was posted (a correction when something was posted already).
CREATE VIEW interest_pending AS
SELECT x.invoice_id, x.month, i.account_id, i.currency_exp,
       creditd_round(x.micro, i.currency_exp) - x.posted AS amount,
       x.posted_any AS posted_before
  FROM interest_accruals x JOIN invoices i ON i.id = x.invoice_id;

-- R4.2: accrued, not yet posted interest of an invoice and of its account:
-- unposted months at their exact value, posted months by the correction due.
CREATE FUNCTION creditd_refresh_accrued(p_accounts uuid[]) RETURNS void LANGUAGE sql AS $$
    WITH accrued AS (
        SELECT x.invoice_id,
               sum(CASE WHEN x.posted_any THEN creditd_round(x.micro, i.currency_exp) - x.posted
                        ELSE x.micro END) AS amount
          FROM interest_accruals x JOIN invoices i ON i.id = x.invoice_id
         WHERE i.account_id = ANY (p_accounts)
         GROUP BY x.invoice_id)
    UPDATE invoices i SET accrued_interest = coalesce(a.amount, 0)
      FROM invoices i2 LEFT JOIN accrued a ON a.invoice_id = i2.id
     WHERE i.id = i2.id AND i2.account_id = ANY (p_accounts)
       AND i.accrued_interest IS DISTINCT FROM coalesce(a.amount, 0);
    UPDATE accounts a SET accrued_interest = s.amount
      FROM (SELECT i.account_id, sum(i.accrued_interest) AS amount FROM invoices i
             WHERE i.account_id = ANY (p_accounts) GROUP BY i.account_id) s
     WHERE a.id = s.account_id AND a.accrued_interest <> s.amount;
$$;

-- The daily job's interest step, part 1: the overdue invoices whose interest
-- may still change, with their interest-bearing usage history (R6.3): the
-- principal (usage lines) at the due date, then usage allocations (payments
-- and credit applied; reversed ones do not count: R6.1 undoes a reversed
-- payment as of its received date) and credit notes, as "day:amount" with
-- day = billing-zone date - 1970-01-01 and amount in micro-units (negative).
CREATE VIEW interest_inputs AS
SELECT i.id AS invoice_id, i.account_id, creditd_due(i) - date '1970-01-01' AS due_day,
       a.contractual_rate, a.jurisdiction, i.currency_exp::int AS currency_exp,
       i.usage_total AS principal,
       coalesce((SELECT string_agg(d || ':' || amt, ',' ORDER BY d) FROM (
            SELECT (pa.received_at::date - date '1970-01-01') AS d, -pa.amount AS amt
              FROM payment_allocations pa
             WHERE pa.invoice_id = i.id AND pa.component = 'usage'
               AND pa.reversed_at IS NULL
            UNION ALL
            SELECT (cn.issued_at::date - date '1970-01-01'), -cn.amount
              FROM credit_notes cn WHERE cn.invoice_id = i.id) h), '') AS changes,
       i.compensation_due IS NOT NULL AS compensation_known,
       i.usage_total - coalesce((SELECT sum(pa.amount) FROM payment_allocations pa
                                  WHERE pa.invoice_id = i.id AND pa.component = 'usage'
                                    AND pa.reversed_at IS NULL), 0)
                     - coalesce((SELECT sum(cn.amount) FROM credit_notes cn
                                  WHERE cn.invoice_id = i.id), 0) AS usage_balance,
       i.currency, creditd_due(i) AS due, i.interest_done
  FROM invoices i JOIN accounts a ON a.id = i.account_id;

CREATE FUNCTION creditd_interest_candidates(p_day date, p_after uuid, p_limit int)
RETURNS SETOF interest_inputs LANGUAGE sql STABLE AS $$
    SELECT * FROM interest_inputs
     WHERE due < p_day AND (NOT interest_done OR usage_balance > 0)   -- a reversal reopens
       AND (p_after IS NULL OR invoice_id > p_after)
     ORDER BY invoice_id LIMIT p_limit
$$;

-- Part 2: store what the engine computed. Rows: (invoice, month, exact,
-- micro); per invoice: compensation (NULL = none / unchanged) and whether
-- its usage is settled (then, once everything is posted, it is done).
CREATE FUNCTION creditd_interest_store(p_day date, p_inv uuid[], p_month date[],
                                       p_exact numeric[], p_micro bigint[],
                                       p_cinv uuid[], p_comp bigint[], p_settled boolean[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    accs uuid[];
BEGIN
    INSERT INTO interest_accruals (invoice_id, month, exact, micro)
    SELECT * FROM unnest(p_inv, p_month, p_exact, p_micro)
    ON CONFLICT (invoice_id, month) DO UPDATE SET exact = excluded.exact, micro = excluded.micro;
    UPDATE invoices i SET interest_through = p_day,
           interest_done = i.interest_done AND c.settled,
           compensation_due = coalesce(i.compensation_due, c.comp)
      FROM unnest(p_cinv, p_comp, p_settled) c(id, comp, settled)
     WHERE i.id = c.id;
    SELECT array_agg(DISTINCT i.account_id) INTO accs FROM invoices i
     WHERE i.id = ANY (p_cinv);
    PERFORM creditd_refresh_accrued(accs);
    -- nothing left to accrue or post
    UPDATE invoices i SET interest_done = true
      FROM unnest(p_cinv, p_settled) c(id, settled)
     WHERE i.id = c.id AND c.settled AND i.accrued_interest = 0
       AND (i.compensation_due IS NULL OR i.compensation_posted);
END
$$;

-- Invoice run hook (R5.3, R6.4): interest lines for the overdue invoices of
-- the account (months up to p_period), corrections of months posted before,
-- and fixed compensation once; raises the new invoice's totals.
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
        INSERT INTO interest_postings (invoice_id, month, line_invoice, amount)
        VALUES (r.invoice_id, r.month, p_invoice, r.amount);
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

-- Accounts with interest or compensation to post are billable too.
CREATE OR REPLACE FUNCTION creditd_billable(p_account uuid, p_period date) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM usage_rollups r WHERE r.account_id = p_account
                      AND r.invoice_id IS NULL AND r.period <= p_period)
        OR EXISTS (SELECT 1 FROM interest_pending p WHERE p.account_id = p_account
                      AND p.month <= p_period AND p.amount <> 0)
        OR EXISTS (SELECT 1 FROM invoices o WHERE o.account_id = p_account
                      AND o.compensation_due > 0 AND NOT o.compensation_posted)
$$;

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

-- R6.2/R6.6: overdue notices, reminders and suspension for day p_day, set
-- based (100,000 overdue invoices in one statement each, no per-row plans).
-- Returns the accounts newly suspended for being overdue.
CREATE FUNCTION creditd_daily_overdue(p_day date, p_reminders int[], p_suspend_after int,
                                      p_at timestamptz)
RETURNS SETOF uuid LANGUAGE plpgsql AS $$
BEGIN
    -- R6.6: credit applied by the invoice run or a lower accrual may have
    -- covered what kept an account suspended for being overdue
    PERFORM creditd_overdue_reevaluate(a.id, p_at) FROM accounts a
      WHERE 'overdue' = ANY (a.reasons)
        AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.account_id = a.id
                           AND creditd_due(i) < p_at::date
                           AND i.total - i.credit_applied - i.paid - i.credited > 0);

    CREATE TEMP TABLE IF NOT EXISTS overdue_now (
        id uuid PRIMARY KEY, account_id uuid, number text, days int, balance bigint
    ) ON COMMIT DELETE ROWS;
    INSERT INTO overdue_now
    SELECT i.id, i.account_id, i.number, p_day - creditd_due(i),
           i.total - i.credit_applied - i.paid - i.credited
      FROM invoices i
     WHERE creditd_due(i) < p_day AND i.total - i.credit_applied - i.paid - i.credited > 0;
    ANALYZE overdue_now;

    -- the first overdue day's notice, once per invoice (stored as day 1)
    WITH sent AS (
        INSERT INTO invoice_notices (invoice_id, kind, days, sent_at)
        SELECT o.id, 'invoice.overdue', 1, p_at FROM overdue_now o
        ON CONFLICT DO NOTHING RETURNING invoice_id)
    INSERT INTO notifications (account_id, kind, created_at, payload)
    SELECT o.account_id, 'invoice.overdue', p_at,
           jsonb_build_object('account', o.account_id, 'invoice', o.id, 'number', o.number,
                              'days_overdue', o.days, 'balance', creditd_amount(o.balance))
      FROM overdue_now o JOIN sent ON sent.invoice_id = o.id
     ORDER BY o.id;

    -- reminders on the configured days (day 1 is the notice); one
    -- notification per invoice and run (the latest day reached), even if a
    -- run was missed and several days were crossed at once
    WITH sent AS (
        INSERT INTO invoice_notices (invoice_id, kind, days, sent_at)
        SELECT o.id, 'invoice.reminder', d, p_at
          FROM overdue_now o, unnest(p_reminders) d
         WHERE d > 1 AND o.days >= d
        ON CONFLICT DO NOTHING RETURNING invoice_id, days)
    INSERT INTO notifications (account_id, kind, created_at, payload)
    SELECT DISTINCT ON (o.id) o.account_id, 'invoice.reminder', p_at,
           jsonb_build_object('account', o.account_id, 'invoice', o.id, 'number', o.number,
                              'days_overdue', o.days, 'reminder_day', sent.days,
                              'balance', creditd_amount(o.balance))
      FROM overdue_now o JOIN sent ON sent.invoice_id = o.id
     ORDER BY o.id, sent.days DESC;
    PERFORM pg_notify('creditd_outbox', '');

    IF p_suspend_after <= 0 THEN
        RETURN;
    END IF;
    -- R6.6: suspension, set based: reasons, history and notification
    RETURN QUERY
    WITH cand AS (
        SELECT a.id, a.status AS old_status, a.reasons AS old_reasons
          FROM accounts a
         WHERE a.id IN (SELECT o.account_id FROM overdue_now o WHERE o.days > p_suspend_after)
           AND a.status <> 'terminated' AND NOT ('overdue' = ANY (a.reasons))
         ORDER BY a.id FOR UPDATE),
    upd AS (
        UPDATE accounts a
           SET reasons = (SELECT array_agg(r ORDER BY r)
                            FROM unnest(array_append(a.reasons, 'overdue')) r),
               status = 'suspended', updated_at = p_at
          FROM cand WHERE a.id = cand.id
        RETURNING a.id, a.external_ref, a.reasons, cand.old_status, cand.old_reasons),
    hist AS (
        INSERT INTO account_history (account_id, at, status_before, status_after,
                                     reasons_before, reasons_after, cause, actor)
        SELECT upd.id, p_at, upd.old_status, 'suspended', upd.old_reasons, upd.reasons,
               'overdue', 'system' FROM upd
        RETURNING account_id),
    note AS (
        INSERT INTO notifications (account_id, kind, created_at, payload)
        SELECT upd.id, 'account.suspended', p_at,
               jsonb_build_object('account', upd.id, 'external_ref', upd.external_ref,
                                  'status', 'suspended', 'reasons', to_jsonb(upd.reasons),
                                  'cause', 'overdue', 'note', NULL)
          FROM upd ORDER BY upd.id
        RETURNING account_id)
    SELECT hist.account_id FROM hist;
END
$$;

-- R6.6 lifting, in every payment's transaction: `overdue` goes when no
-- invoice is past due with a balance and account credit covers the interest
-- accrued on them.
CREATE OR REPLACE FUNCTION creditd_overdue_reevaluate(p_account uuid, p_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    a accounts;
BEGIN
    SELECT * INTO a FROM accounts WHERE id = p_account;
    IF NOT ('overdue' = ANY (a.reasons)) THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM invoices i WHERE i.account_id = p_account
                  AND creditd_due(i) < p_at::date
                  AND i.total - i.credit_applied - i.paid - i.credited > 0) THEN
        RETURN;
    END IF;
    -- the interest as it will be posted (rounded per line), not the exact accrual
    IF a.credit_balance < (SELECT coalesce(sum(p.amount), 0) FROM interest_pending p
                            WHERE p.account_id = p_account) THEN
        RETURN;
    END IF;
    PERFORM creditd_change_reasons(p_account, NULL, ARRAY['overdue'], 'payment', 'system', NULL,
                                   p_at, NULL);
END
$$;

-- R6.7: inactivity suspension. Returns the suspended accounts.
CREATE FUNCTION creditd_daily_inactivity(p_day date, p_months int, p_at timestamptz)
RETURNS SETOF uuid LANGUAGE plpgsql AS $$
DECLARE
    acc uuid;
BEGIN
    IF p_months <= 0 THEN
        RETURN;
    END IF;
    FOR acc IN SELECT a.id FROM accounts a
                WHERE a.status <> 'terminated' AND NOT ('inactivity' = ANY (a.reasons))
                  AND greatest(a.created_at, a.last_event_at, a.reactivated_at)
                      <= (p_day - make_interval(months => p_months))::timestamptz
                ORDER BY a.id LOOP
        PERFORM creditd_change_reasons(acc, ARRAY['inactivity'], NULL, 'inactivity', 'system',
                                       NULL, p_at, NULL);
        RETURN NEXT acc;
    END LOOP;
END
$$;

-- R6.7: reactivation requests take effect after working days (or at once).
CREATE FUNCTION creditd_reactivation_request(p_id uuid, p_acc_id uuid, p_acc_ext text,
                                             p_effective timestamptz, p_override boolean,
                                             p_note text, p_at timestamptz, p_actor text,
                                             p_rid text, OUT account_id uuid,
                                             OUT effective_at timestamptz, OUT applied boolean)
LANGUAGE plpgsql AS $$
DECLARE
    a accounts;
BEGIN
    SELECT * INTO a FROM accounts WHERE id = p_acc_id OR external_ref = p_acc_ext FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account not found' USING ERRCODE = 'CR404';
    END IF;
    IF a.status = 'terminated' THEN
        RAISE EXCEPTION 'account is terminated' USING ERRCODE = 'CR422';
    END IF;
    IF NOT ('inactivity' = ANY (a.reasons)) THEN
        RAISE EXCEPTION 'account is not suspended for inactivity' USING ERRCODE = 'CR422';
    END IF;
    account_id := a.id;
    effective_at := CASE WHEN p_override THEN p_at ELSE p_effective END;
    INSERT INTO reactivations (id, account_id, effective_at, override, note, actor, status,
                               created_at)
    VALUES (p_id, a.id, effective_at, p_override, p_note, p_actor, 'scheduled', p_at);
    PERFORM creditd_audit(p_at, p_actor,
                          CASE WHEN p_override THEN 'reactivation.override'
                               ELSE 'reactivation.request' END,
                          'account', a.id::text, NULL,
                          jsonb_build_object('effective_at', effective_at, 'note', p_note), p_rid);
    applied := false;
    IF effective_at <= p_at THEN
        PERFORM creditd_apply_due_reactivations(p_at);
        applied := true;
    END IF;
END
$$;

CREATE FUNCTION creditd_apply_due_reactivations(p_at timestamptz)
RETURNS SETOF uuid LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM reactivations WHERE status = 'scheduled' AND effective_at <= p_at
              ORDER BY effective_at, id FOR UPDATE SKIP LOCKED LOOP
        UPDATE reactivations SET status = 'applied', applied_at = p_at WHERE id = r.id;
        UPDATE accounts SET reactivated_at = p_at WHERE id = r.account_id;
        PERFORM creditd_change_reasons(r.account_id, NULL, ARRAY['inactivity'], 'reactivation',
                                       r.actor, r.note, p_at, NULL);
        RETURN NEXT r.account_id;
    END LOOP;
END
$$;
