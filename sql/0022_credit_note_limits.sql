-- 0022_credit_note_limits: a credit note re-evaluates limits as a credit
-- note, not as a payment (R4.5, R2.3).
--
-- creditd_credit_note (0006, numbers from 0019) ended with
-- creditd_payment_reevaluate, the payment's step: a credit note that
-- brought exposure to zero or below lifted monthly_limit and restarted the
-- monthly counter, which R4.5 gives to payments only ("monthly_limit:
-- removed at the start of the next billing month, or when a payment brings
-- exposure to zero or below"), and the status history recorded the
-- total_limit lift of a credit note with cause 'payment' (R2.3: the cause is
-- recorded). It now calls creditd_evaluate_limits with cause 'credit_note':
-- total_limit lifts as soon as exposure is below the limit (R4.5 names the
-- credit note there), monthly_limit stays. 0019's body otherwise unchanged.

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
    -- payment's transaction), total_limit once exposure is below the limit
    -- again; monthly_limit is not a credit note's to lift (only the month's
    -- end or a payment), and the history names the credit note as the cause
    PERFORM creditd_overdue_reevaluate(acc, p_at);
    PERFORM creditd_evaluate_limits(acc, p_thresholds, 'credit_note', p_actor, p_at, p_rid);
END
$$;
