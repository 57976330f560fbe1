-- 0039_refunds: refunds paid out of an account's unapplied credit (R5.6,
-- R6.1; an endpoint beyond API.md, see README "API summary").
--
-- A termination leaves the refundable part of the credit (R5.6: payments
-- received in the 7 days before it) as the account's credit_balance, and an
-- overpayment leaves unapplied credit on an active account. Finance pays
-- such money back by bank transfer; POST /v1/refunds records it: a refunds
-- row, credit_balance reduced by the amount, an audit row, and the account
-- re-evaluated against its limits, all in one transaction.
--
-- As payments (0007, 0019's creditd_payment_book): the id is the idempotency
-- key (same id and payload -> the same answer, 200; other payload -> 409
-- conflict, field id); an unknown account is 400 validation_failed naming
-- `account`; an amount with more decimals than the currency has is 400
-- naming `amount`. Lock order as there: the refund id is looked up, the
-- account row is locked (FOR UPDATE), the id is looked up again (a
-- concurrent request with the same id has committed by then and is answered
-- as a replay). No invoice is touched, so no invoice lock follows.
--
-- More than the unapplied credit (credit_balance; a reversal can leave it
-- negative: then nothing is refundable) is 422 invalid_state naming
-- `amount`, nothing written.
--
-- R4.2/R4.5: exposure = unbilled + open + accrued interest - credit_balance
-- rises by the refund, so a refund can reach the total limit and suspend the
-- account. It is re-evaluated as a payment reversal is (0007/0019: not
-- creditd_payment_reevaluate: money leaving the account never lifts a
-- reason nor restarts the monthly counter, R4.1), by creditd_evaluate_limits
-- with cause 'refund'; a suspension writes its history row and
-- account.suspended notification there. No new notification kind (R8.1).
-- A terminated account is left as it is by creditd_evaluate_limits.
--
-- The account UPDATE bumps accounts.version (0023's trigger) and fires
-- 0013's accounts_updated NOTIFY, so every daemon's authorize cache sees the
-- new exposure; the answering daemon updates its own from account_view in
-- the same batch, as the payment path does.

CREATE TABLE refunds (
    id           uuid PRIMARY KEY,              -- idempotency key
    seq          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,   -- list cursor
    account_id   uuid NOT NULL REFERENCES accounts (id),
    amount       bigint NOT NULL CHECK (amount > 0),
    paid_at      timestamptz NOT NULL,
    reference    text,
    credit_after bigint NOT NULL,               -- credit_balance after it (the answer's "credit")
    created_at   timestamptz NOT NULL,
    created_by   text NOT NULL,
    request_hash text NOT NULL                  -- same id, other payload -> 409
);
CREATE INDEX refunds_account ON refunds (account_id, seq);

-- GET /v1/refunds, and the answer of POST /v1/refunds
CREATE VIEW refund_view AS
SELECT r.id, r.seq, r.account_id, r.amount, creditd_us(r.paid_at) AS paid_us, r.reference,
       r.credit_after, creditd_us(r.created_at) AS created_us, r.created_by
  FROM refunds r;

CREATE FUNCTION creditd_refund_book(p_id uuid, p_acc_id uuid, p_acc_ext text, p_amount bigint,
                                    p_paid timestamptz, p_reference text, p_hash text,
                                    p_thresholds int[], p_at timestamptz, p_actor text,
                                    p_rid text, OUT outcome text, OUT account_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
    a accounts;
    f refunds;
    unit bigint;
    credit_after bigint;
BEGIN
    FOR pass IN 1..2 LOOP
        -- pass 2 runs with the account locked (as creditd_payment_book)
        SELECT * INTO f FROM refunds WHERE id = p_id;
        IF FOUND THEN
            IF f.request_hash <> p_hash THEN
                RAISE EXCEPTION 'refund % exists with another payload', p_id
                    USING ERRCODE = 'CR409', DETAIL = 'id';
            END IF;
            outcome := 'replayed';
            account_id := f.account_id;
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
    -- R1.2: the currency's decimals, as for payments
    unit := (10::bigint ^ (6 - a.currency_exp))::bigint;
    IF p_amount % unit <> 0 THEN
        RAISE EXCEPTION 'amount: % allows at most % decimals', a.currency, a.currency_exp
            USING ERRCODE = 'CR400', DETAIL = 'amount';
    END IF;
    IF p_amount > a.credit_balance THEN
        RAISE EXCEPTION 'amount: the account''s unapplied credit is %',
            creditd_amount(greatest(a.credit_balance, 0))
            USING ERRCODE = 'CR422', DETAIL = 'amount';
    END IF;
    credit_after := a.credit_balance - p_amount;
    INSERT INTO refunds (id, account_id, amount, paid_at, reference, credit_after, created_at,
                         created_by, request_hash)
    VALUES (p_id, a.id, p_amount, p_paid, p_reference, credit_after, p_at, p_actor, p_hash);
    UPDATE accounts SET credit_balance = credit_after, updated_at = p_at WHERE id = a.id;
    PERFORM creditd_audit(p_at, p_actor, 'refund.create', 'refund', p_id::text,
        jsonb_build_object('credit_balance', creditd_amount(a.credit_balance)),
        jsonb_build_object('account', a.id, 'amount', creditd_amount(p_amount),
                           'paid_at', creditd_rfc3339(p_paid), 'reference', p_reference,
                           'credit_balance', creditd_amount(credit_after)), p_rid);
    PERFORM creditd_evaluate_limits(a.id, p_thresholds, 'refund', p_actor, p_at, p_rid);
    outcome := 'created';
END
$$;
