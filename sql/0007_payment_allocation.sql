-- 0007_payment_allocation: payments allocated to open invoices, per component
-- (§ 367 BGB order), the remainder as account credit; reversal (bounced
-- payments); payment listing (R6.1, R4.5).
--
-- Rules decided here (README "Payments"):
-- * Open invoices are paid oldest due date first, then issue date, then
--   number. A payment that names an invoice (number or id) is allocated to
--   that invoice only; what exceeds its balance (or all of it, if the
--   invoice is already settled) becomes account credit.
-- * Within an invoice: compensation, then interest (interest and
--   interest_correction lines), then usage (usage and prior_usage lines).
--   What is outstanding per component = its line total minus the live
--   (not reversed) allocations to it (payments and credit applied at issue);
--   credit notes (invoices.credited) reduce the outstanding usage first,
--   then interest, then compensation. Components never add up to more than
--   the invoice balance: usage takes whatever rest the balance holds.
-- * An amount with more decimals than the account currency's minor unit is
--   rejected (400, field amount): a bank transfer is whole minor units.
-- * received_at may be in the past (bank statements arrive late); each
--   allocation keeps it so that interest can be computed as of that day.
-- * Reversal undoes the payment as if it had never been received: its
--   allocations are marked reversed (kept for history; interest must ignore
--   them), the invoices' paid amounts and the account's open balance are
--   restored, and the part that had become credit is taken back from the
--   account credit. If that credit was meanwhile applied to invoices issued
--   after the payment was booked, those applications are undone newest
--   first (the invoices are open again: they were settled with money that
--   bounced). Only what cannot be traced that way leaves credit_balance
--   negative = money owed, which exposure (R4.2) counts.
-- * A reversal re-evaluates limits (total_limit may come back) but never
--   lifts monthly_limit and does not restart the monthly counter.

ALTER TABLE payments ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE;
CREATE INDEX payments_account_seq ON payments (account_id, seq);
CREATE INDEX payment_allocations_payment ON payment_allocations (payment_id)
    WHERE payment_id IS NOT NULL;

-- Hook for the interest issue (R4.5, R6.6): lift `overdue` when payments
-- cover every overdue invoice and its interest. Called in every payment and
-- reversal transaction, before the limits are re-evaluated. Does nothing yet.
CREATE FUNCTION creditd_overdue_reevaluate(p_account uuid, p_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RETURN;
END
$$;

-- What is still to be paid on an invoice, per component, in the order of
-- § 367 BGB (see the rules above). The three add up to the invoice balance
-- (0 when settled).
CREATE FUNCTION creditd_invoice_outstanding(p_invoice uuid, OUT compensation bigint,
                                            OUT interest bigint, OUT usage bigint)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    i invoices;
    l_c bigint;
    l_i bigint;
    l_u bigint;
    a_c bigint;
    a_i bigint;
    a_u bigint;
    k bigint;
    d bigint;
    bal bigint;
BEGIN
    SELECT * INTO i FROM invoices WHERE id = p_invoice;
    SELECT coalesce(sum(amount) FILTER (WHERE kind = 'compensation'), 0),
           coalesce(sum(amount) FILTER (WHERE kind IN ('interest', 'interest_correction')), 0),
           coalesce(sum(amount) FILTER (WHERE kind IN ('usage', 'prior_usage')), 0)
      INTO l_c, l_i, l_u
      FROM invoice_lines WHERE invoice_id = p_invoice;
    SELECT coalesce(sum(amount) FILTER (WHERE component = 'compensation'), 0),
           coalesce(sum(amount) FILTER (WHERE component = 'interest'), 0),
           coalesce(sum(amount) FILTER (WHERE component = 'usage'), 0)
      INTO a_c, a_i, a_u
      FROM payment_allocations WHERE invoice_id = p_invoice AND reversed_at IS NULL;
    compensation := greatest(l_c - a_c, 0);
    interest := greatest(l_i - a_i, 0);
    usage := greatest(l_u - a_u, 0);
    -- credit notes: usage first, then interest, then compensation
    k := i.credited;
    d := least(k, usage);
    usage := usage - d;
    k := k - d;
    d := least(k, interest);
    interest := interest - d;
    k := k - d;
    d := least(k, compensation);
    compensation := compensation - d;
    -- never more than the balance; usage holds the rest of it
    bal := greatest(i.total - i.credit_applied - i.paid - i.credited, 0);
    compensation := least(compensation, bal);
    interest := least(interest, bal - compensation);
    usage := bal - compensation - interest;
END
$$;

-- A payment's allocations as the API shows them: one entry per invoice, in
-- allocation order, with the split per component.
CREATE FUNCTION creditd_payment_allocations_json(p_payment uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'invoice', i.number, 'invoice_id', i.id,
               'amount', creditd_amount(s.total),
               'components', jsonb_build_object('compensation', creditd_amount(s.c),
                                                'interest', creditd_amount(s.i),
                                                'usage', creditd_amount(s.u)))
               ORDER BY s.first), '[]'::jsonb)
      FROM (SELECT invoice_id, min(id) AS first, sum(amount)::bigint AS total,
                   coalesce(sum(amount) FILTER (WHERE component = 'compensation'), 0)::bigint AS c,
                   coalesce(sum(amount) FILTER (WHERE component = 'interest'), 0)::bigint AS i,
                   coalesce(sum(amount) FILTER (WHERE component = 'usage'), 0)::bigint AS u
              FROM payment_allocations WHERE payment_id = p_payment
             GROUP BY invoice_id) s
      JOIN invoices i ON i.id = s.invoice_id
$$;

-- POST /v1/payments (R6.1): allocate, keep the rest as credit, notify,
-- audit and re-evaluate in one transaction; idempotent by id. Returns
-- (outcome 'created' | 'replayed', response, account_id).
CREATE FUNCTION creditd_payment_book(p_id uuid, p_acc_id uuid, p_acc_ext text, p_amount bigint,
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
                ORDER BY i.due_date, i.issue_date, i.number
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

-- The minimal form of issue 3 now books the full allocation (same
-- signature, so older callers keep working).
CREATE OR REPLACE FUNCTION creditd_payment_credit(p_id uuid, p_acc_id uuid, p_acc_ext text,
                                                  p_amount bigint, p_received timestamptz,
                                                  p_reference text, p_invoice text, p_hash text,
                                                  p_thresholds int[], p_at timestamptz,
                                                  p_actor text, p_rid text,
                                                  OUT outcome text, OUT response jsonb,
                                                  OUT account_id uuid)
LANGUAGE sql AS $$
    SELECT * FROM creditd_payment_book(p_id, p_acc_id, p_acc_ext, p_amount, p_received,
                                       p_reference, p_invoice, p_hash, p_thresholds, p_at,
                                       p_actor, p_rid)
$$;

-- POST /v1/payments/{id}/reverse (R6.1): undo the payment (rules above).
-- Returns the account id.
CREATE FUNCTION creditd_payment_reverse(p_id uuid, p_reason text, p_thresholds int[],
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

-- GET /v1/payments[/{id}]
CREATE VIEW payment_view AS
SELECT p.id, p.seq, p.account_id, p.amount, creditd_us(p.received_at) AS received_us,
       p.reference, p.invoice,
       p.amount - coalesce((SELECT sum(pa.amount) FROM payment_allocations pa
                             WHERE pa.payment_id = p.id), 0)::bigint AS credit,
       creditd_payment_allocations_json(p.id)::text AS allocations_json,
       creditd_us(p.booked_at) AS booked_us, p.booked_by,
       creditd_us(p.reversed_at) AS reversed_us, p.reverse_reason
  FROM payments p;
