-- 0008_termination: account termination (R5.6, R3.5) and the receivables
-- aging report (R7.1).
--
-- Decisions (R5.6):
-- * Invoices are immutable (R5.5), so "every unpaid invoice's due date moves
--   to the termination date" is recorded beside the contractual due date:
--   invoices.accelerated_due_date. The date that counts for overdue, aging
--   and interest is invoices.effective_due_date = least(due_date,
--   accelerated_due_date) (a stored generated column; creditd_due(i) of
--   0009_interest is the same date). Invoices issued to an
--   account after its termination (the monthly run billing late events) are
--   due at issue: a trigger sets their accelerated_due_date to the issue date.
-- * The final invoice (kind 'final', period = the billing month of the
--   termination, issue date = due date = the termination day) bills every
--   open rollup of the account, whatever its period: rollups of the current
--   month as usage lines, of earlier months as prior-period lines (the rule of
--   creditd_invoice_chunk). Its number comes from the same gap-free series.
--   Account credit is applied at issue (R5.3). With nothing to bill (no open
--   rollup and no interest line from the interest hook) there is no final
--   invoice.
-- * Account credit left after the final invoice is set off against the
--   account's other open invoices (oldest effective due date first): credit is
--   never forfeited while the customer still owes money. What is then left is
--   split: refundable = payments (not reversed) received from the start of
--   the 7th billing-zone day before the termination day up to the
--   termination, capped at the remaining credit; the rest is forfeited. The
--   refundable part stays in accounts.credit_balance (it is still the
--   customer's money until refunded, so exposure shows it as negative); the
--   forfeited part leaves the balance and is recorded in `terminations`.
-- * Events that occurred before the termination but arrive later are still
--   accepted (R3.5) and open rollups; the next monthly run bills them (a
--   terminated account may thus get a 'monthly' invoice after its final one,
--   due at issue). Any remaining (refundable) credit is applied to it.
--   The daemon checks R3.5 against its account cache, updated when the
--   termination commits; an event validated just before that and committed
--   by the batcher just after is recorded (and billed the same way) even if
--   it occurred after the termination instant (a window of one batch flush).
-- * The status becomes 'terminated' for good; suspension reasons are kept as
--   they were (history), scheduled limit changes are superseded.

ALTER TABLE invoices
    ADD COLUMN accelerated_due_date date,
    ADD COLUMN effective_due_date date
        GENERATED ALWAYS AS (least(due_date, accelerated_due_date)) STORED;
CREATE INDEX invoices_open_effective ON invoices (effective_due_date)
    WHERE total - credit_applied - paid - credited > 0;

-- One row per terminated account: what happened to its money (R5.6).
CREATE TABLE terminations (
    account_id       uuid PRIMARY KEY REFERENCES accounts (id),
    terminated_at    timestamptz NOT NULL,
    termination_date date NOT NULL,           -- billing-zone day
    final_invoice_id uuid REFERENCES invoices (id),
    accelerated      uuid[] NOT NULL,         -- invoices whose due date moved
    credit_set_off   bigint NOT NULL,         -- credit applied to older open invoices
    recent_payments  bigint NOT NULL,         -- received in the 7 days before
    refundable       bigint NOT NULL,
    forfeited        bigint NOT NULL,
    note             text,
    actor            text NOT NULL,
    request_id       text
);

-- Invoices issued to a terminated account are due at once (R5.6).
CREATE FUNCTION creditd_invoice_terminated_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.due_date > NEW.issue_date
       AND EXISTS (SELECT 1 FROM accounts WHERE id = NEW.account_id AND status = 'terminated') THEN
        NEW.accelerated_due_date := NEW.issue_date;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER invoices_terminated_due BEFORE INSERT ON invoices
    FOR EACH ROW EXECUTE FUNCTION creditd_invoice_terminated_due();

-- Apply up to p_amount of account credit to one invoice, per component in
-- the order of R6.1 (creditd_invoice_outstanding, 0007); returns what was
-- applied. The invoice's account must be locked by the caller.
CREATE FUNCTION creditd_apply_credit(p_invoice uuid, p_amount bigint, p_at timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    o record;
    rest bigint := p_amount;
    x_c bigint;
    x_i bigint;
    x_u bigint;
BEGIN
    PERFORM 1 FROM invoices WHERE id = p_invoice FOR UPDATE;
    o := creditd_invoice_outstanding(p_invoice);
    x_c := least(rest, o.compensation);
    rest := rest - x_c;
    x_i := least(rest, o.interest);
    rest := rest - x_i;
    x_u := least(rest, o.usage);
    rest := rest - x_u;
    INSERT INTO payment_allocations (payment_id, invoice_id, component, amount, received_at)
    SELECT NULL, p_invoice, c.component, c.amount, p_at
      FROM (VALUES (1, 'compensation', x_c), (2, 'interest', x_i), (3, 'usage', x_u))
           c(ord, component, amount)
     WHERE c.amount > 0
     ORDER BY c.ord;
    UPDATE invoices SET credit_applied = credit_applied + x_c + x_i + x_u WHERE id = p_invoice;
    RETURN x_c + x_i + x_u;
END
$$;

-- The final invoice of one account (R5.6): every open rollup with a period
-- >= p_from (the caller holds the invoice-run locks of those periods), kind
-- 'final', due at issue. Lines as creditd_invoice_chunk builds them. The
-- account row must be locked by the caller. Returns the invoice id, or NULL
-- when there is nothing to bill.
CREATE FUNCTION creditd_invoice_final(p_account uuid, p_period date, p_issue date, p_from date,
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
       SET number = series || '-' || lpad(creditd_reserve_numbers(series, 1)::text, 6, '0')
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

-- POST /v1/accounts/{account}/terminate (R5.6), one transaction.
-- p_day: the termination day in the billing zone; p_period: its billing
-- month; p_refund_from: start of the refund window (the 7th day before p_day).
CREATE FUNCTION creditd_account_terminate(p_id uuid, p_ext text, p_note text, p_prefix text,
                                          p_at timestamptz, p_day date, p_period date,
                                          p_refund_from timestamptz, p_actor text, p_rid text,
                                          OUT account_id uuid, OUT final_invoice jsonb,
                                          OUT refundable bigint, OUT forfeited bigint,
                                          OUT credit_set_off bigint, OUT accelerated jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    acc uuid;
    a accounts;
    b accounts;
    lo date;
    m date;
    fin uuid;
    acc_ids uuid[];
    credit bigint;
    recent bigint;
    x bigint;
    inv record;
BEGIN
    SELECT id INTO acc FROM accounts WHERE id = p_id OR external_ref = p_ext;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account not found' USING ERRCODE = 'CR404';
    END IF;
    -- The invoice run of a period P bills rollups of periods <= P under the
    -- advisory lock of P, taken before it locks accounts: take the locks of
    -- every period this termination may bill, in order, before the account
    -- row, so that the run never numbers an invoice whose rollups were billed
    -- here meanwhile. Rollups older than the locked range (none in practice:
    -- events are at most max_event_age old) stay for the next run.
    SELECT least(coalesce(min(r.period), p_period), (p_period - interval '3 months')::date)
      INTO lo FROM usage_rollups r WHERE r.account_id = acc AND r.invoice_id IS NULL;
    FOR m IN SELECT generate_series(lo, p_period, interval '1 month')::date LOOP
        PERFORM pg_advisory_xact_lock(7274100, m - date '2000-01-01');
    END LOOP;

    SELECT * INTO a FROM accounts WHERE id = acc FOR UPDATE;
    IF a.status = 'terminated' THEN
        RAISE EXCEPTION 'account is already terminated' USING ERRCODE = 'CR422';
    END IF;
    account_id := acc;
    UPDATE accounts SET status = 'terminated', terminated_at = p_at, updated_at = p_at
     WHERE id = acc;
    INSERT INTO account_history (account_id, at, status_before, status_after, reasons_before,
                                 reasons_after, cause, actor, note, request_id)
    VALUES (acc, p_at, a.status, 'terminated', a.reasons, a.reasons, 'terminated', p_actor,
            p_note, p_rid);
    UPDATE limit_changes SET status = 'superseded'
     WHERE limit_changes.account_id = acc AND status = 'scheduled';

    fin := creditd_invoice_final(acc, p_period, p_day, lo, p_prefix, p_at);

    -- all amounts become due at once
    WITH moved AS (
        UPDATE invoices SET accelerated_due_date = p_day
         WHERE invoices.account_id = acc AND total - credit_applied - paid - credited > 0
           AND effective_due_date > p_day
        RETURNING id, number, due_date
    )
    SELECT coalesce(array_agg(id ORDER BY number), '{}'),
           coalesce(jsonb_agg(jsonb_build_object('id', id, 'number', number,
                                                 'original_due_date', due_date,
                                                 'due_date', p_day) ORDER BY number),
                    '[]'::jsonb)
      INTO acc_ids, accelerated FROM moved;

    -- remaining credit first settles what the customer still owes
    SELECT credit_balance INTO credit FROM accounts WHERE id = acc;
    credit_set_off := 0;
    FOR inv IN SELECT id FROM invoices
                WHERE invoices.account_id = acc AND total - credit_applied - paid - credited > 0
                ORDER BY effective_due_date, issue_date, seq LOOP
        EXIT WHEN credit <= 0;
        x := creditd_apply_credit(inv.id, credit, p_at);
        credit := credit - x;
        credit_set_off := credit_set_off + x;
    END LOOP;

    -- then: refundable = recent payments (capped), the rest is forfeited
    SELECT coalesce(sum(p.amount), 0)::bigint INTO recent FROM payments p
     WHERE p.account_id = acc AND p.reversed_at IS NULL
       AND p.received_at >= p_refund_from AND p.received_at <= p_at;
    refundable := least(recent, greatest(credit, 0));
    forfeited := greatest(credit, 0) - refundable;
    UPDATE accounts SET
        credit_balance = CASE WHEN credit > 0 THEN refundable ELSE credit END,
        open_balance = open_balance - credit_set_off,
        updated_at = p_at
     WHERE id = acc RETURNING * INTO b;

    INSERT INTO terminations (account_id, terminated_at, termination_date, final_invoice_id,
                              accelerated, credit_set_off, recent_payments, refundable,
                              forfeited, note, actor, request_id)
    VALUES (acc, p_at, p_day, fin, acc_ids, credit_set_off, recent, refundable, forfeited,
            p_note, p_actor, p_rid);

    SELECT jsonb_build_object('id', i.id, 'number', i.number, 'kind', i.kind,
                              'period', to_char(i.period, 'YYYY-MM'),
                              'issue_date', to_char(i.issue_date, 'YYYY-MM-DD'),
                              'due_date', to_char(i.effective_due_date, 'YYYY-MM-DD'),
                              'total', creditd_amount(i.total),
                              'credit_applied', creditd_amount(i.credit_applied),
                              'balance', creditd_amount(i.total - i.credit_applied - i.paid
                                                        - i.credited))
      INTO final_invoice FROM invoices i WHERE i.id = fin;

    PERFORM creditd_notify(acc, 'account.terminated', p_at,
        jsonb_build_object('account', acc, 'external_ref', a.external_ref,
                           'terminated_at', p_at, 'note', p_note,
                           'final_invoice', final_invoice -> 'number',
                           'final_invoice_total', final_invoice -> 'total',
                           'accelerated', accelerated,
                           'refundable', creditd_amount(refundable),
                           'forfeited', creditd_amount(forfeited),
                           'currency', a.currency));
    PERFORM creditd_audit(p_at, p_actor, 'account.terminate', 'account', acc::text,
        jsonb_build_object('status', a.status, 'reasons', a.reasons,
                           'credit_balance', a.credit_balance,
                           'unbilled_usage', a.unbilled_usage, 'open_balance', a.open_balance),
        jsonb_build_object('status', b.status, 'note', p_note, 'final_invoice', fin,
                           'accelerated', to_jsonb(acc_ids), 'credit_set_off', credit_set_off,
                           'refundable', refundable, 'forfeited', forfeited,
                           'credit_balance', b.credit_balance,
                           'unbilled_usage', b.unbilled_usage, 'open_balance', b.open_balance),
        p_rid);
END
$$;

-- R7.1: open receivables as of a billing-zone day, one row per invoice.
-- p_end: the instant that day ends. An invoice counts when it was issued on
-- or before p_as_of; its balance as of then is today's balance plus what
-- reduced it after p_end (allocations by their received time, credit notes by
-- their issue time), so a backdated payment counts from its received date
-- and a reversed (bounced) payment never counted. The due date that counts
-- is the effective one, once the acceleration had happened by p_as_of.
-- bucket: 0 current (not overdue), 1: 1-30, 2: 31-60, 3: 61-90, 4: over 90
-- days overdue.
CREATE FUNCTION creditd_aging(p_as_of date, p_end timestamptz, p_currency text)
RETURNS TABLE (currency text, account_id uuid, external_ref text, name text, status text,
               invoice_id uuid, number text, issue_day int, due_day int, original_due_day int,
               balance bigint, days_overdue int, bucket int)
LANGUAGE sql STABLE AS $$
    WITH inv AS (
        SELECT i.currency, i.account_id, a.external_ref, a.name, a.status, i.id, i.number,
               i.issue_date, i.due_date, i.seq,
               CASE WHEN i.accelerated_due_date <= p_as_of THEN i.effective_due_date
                    ELSE i.due_date END AS eff,
               (i.total - i.credit_applied - i.paid - i.credited)
               + coalesce((SELECT sum(pa.amount) FROM payment_allocations pa
                            WHERE pa.invoice_id = i.id AND pa.reversed_at IS NULL
                              AND pa.received_at >= p_end), 0)
               + coalesce((SELECT sum(cn.amount) FROM credit_notes cn
                            WHERE cn.invoice_id = i.id AND cn.issued_at >= p_end), 0) AS bal
          FROM invoices i JOIN accounts a ON a.id = i.account_id
         WHERE i.issue_date <= p_as_of AND (p_currency IS NULL OR i.currency = p_currency)
    )
    SELECT inv.currency, inv.account_id, inv.external_ref, inv.name, inv.status, inv.id,
           inv.number, inv.issue_date - date '1970-01-01', inv.eff - date '1970-01-01',
           inv.due_date - date '1970-01-01', inv.bal::bigint, greatest(p_as_of - inv.eff, 0),
           CASE WHEN p_as_of - inv.eff <= 0 THEN 0
                WHEN p_as_of - inv.eff <= 30 THEN 1
                WHEN p_as_of - inv.eff <= 60 THEN 2
                WHEN p_as_of - inv.eff <= 90 THEN 3
                ELSE 4 END
      FROM inv
     WHERE inv.bal > 0
     ORDER BY inv.currency, inv.external_ref COLLATE "C", inv.account_id, inv.eff,
              inv.issue_date, inv.seq
$$;
