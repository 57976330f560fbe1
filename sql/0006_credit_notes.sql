-- 0006_credit_notes: credit notes (R5.5). The credit_notes table itself is
-- created by 0005_invoicing.

CREATE INDEX credit_notes_invoice ON credit_notes (invoice_id);

-- R5.5: a credit note against an issued invoice (by id or number). Its own
-- gap-free series <prefix>-<year of p_issue>-NNNNNN, numbered in this
-- transaction; the invoice's balance, the account's open balance (R4.2) and
-- the account's suspension reasons (R4.5) follow in the same transaction.
-- The invoice itself only gains `credited` (an issued invoice is never
-- otherwise changed). Errors: CR404 unknown invoice, CR400 amount not > 0 or
-- finer than the currency's minor unit, CR422 amount above the balance.
CREATE FUNCTION creditd_credit_note(p_invoice_id uuid, p_invoice_number text, p_amount bigint,
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

    cn_number := series || '-' || lpad(creditd_reserve_numbers(series, 1)::text, 6, '0');
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
    -- R4.5: `overdue` lifts when nothing is past due any more, total_limit
    -- once exposure is below the limit again (both as in a payment's
    -- transaction; creditd_overdue_reevaluate comes with 0007/0009 and is
    -- resolved when this runs)
    PERFORM creditd_overdue_reevaluate(acc, p_at);
    PERFORM creditd_payment_reevaluate(acc, p_thresholds, p_at, p_actor, p_rid);
END
$$;
