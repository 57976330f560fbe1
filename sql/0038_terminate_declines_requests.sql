-- 0038_terminate_declines_requests: a termination closes the account's
-- pending limit requests (R5.6, R4.7, R8.1).
--
-- A limit request still pending when its account was terminated stayed
-- pending for ever: it can never be approved (creditd_set_limits refuses a
-- terminated account, 422 invalid_state) and the customer never heard a
-- decision (R4.7: finance approves or declines it with a written reason;
-- R8.1: the decision is a customer-facing fact). The termination now
-- declines every pending request of the account in its own transaction,
-- right after it supersedes the scheduled limit changes (0008), with the
-- reason "account terminated", decided at the termination instant by the
-- terminating actor under its request id. Each goes through
-- creditd_limit_request_decline (0003, never replaced), so the effects are
-- those of a manual decline: the row (status, decline_reason, decided_at,
-- decided_by), the limit_request.decided notification with the same
-- payload ({account, request, status: "declined", reason}; a decline names
-- no change, 0035) and the limit_request.decline audit row. No limit
-- change is created.
--
-- Locking: the pending requests are locked before the account row, in the
-- order an approval takes them (0035: the request, then its account), so an
-- approval racing the termination either waits for it or is waited for,
-- never a deadlock; the request is then re-checked and skipped when it is
-- no longer pending (approved, or declined by a finance user while the
-- termination waited: it keeps that user's reason, no "already declined").
-- The account row (FOR UPDATE) keeps new requests out from then on
-- (creditd_limit_request_create takes it FOR KEY SHARE, 0035); one created
-- between the two locks is locked and declined by the loop after them.
--
-- Order: the requests are declined in creation order (created_at, then id
-- for requests created at the same instant); their limit_request.decided
-- notifications and audit rows come after the account is marked terminated
-- and before the final invoice's invoice.issued and account.terminated
-- (and the account.terminate audit row), all in one transaction.
--
-- Requests that terminations before this migration left pending are
-- declined by it, by the system, with the same reason (at the end).
--
-- Full body of 0008's creditd_account_terminate otherwise.

-- POST /v1/accounts/{account}/terminate (R5.6), one transaction.
-- p_day: the termination day in the billing zone; p_period: its billing
-- month; p_refund_from: start of the refund window (the 7th day before p_day).
CREATE OR REPLACE FUNCTION creditd_account_terminate(p_id uuid, p_ext text, p_note text, p_prefix text,
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
    lr record;
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

    -- (0038) the pending limit requests, before the account (see above)
    PERFORM 1 FROM limit_requests q WHERE q.account_id = acc AND q.status = 'pending'
      ORDER BY q.created_at, q.id FOR UPDATE;
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
    -- R4.7, R8.1 (0038): a pending limit request can no longer be approved;
    -- each is declined as finance declines one (row, limit_request.decided,
    -- audit), in creation order; one no longer pending is skipped.
    FOR lr IN SELECT q.id FROM limit_requests q
               WHERE q.account_id = acc AND q.status = 'pending'
               ORDER BY q.created_at, q.id FOR UPDATE LOOP
        PERFORM creditd_limit_request_decline(lr.id, 'account terminated', p_at, p_actor, p_rid);
    END LOOP;

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

-- Requests left pending by terminations before this migration: declined
-- now, by the system, as the termination would have declined them.
DO $$
DECLARE
    lr record;
BEGIN
    FOR lr IN SELECT q.id FROM limit_requests q JOIN accounts a ON a.id = q.account_id
               WHERE a.status = 'terminated' AND q.status = 'pending'
               ORDER BY q.created_at, q.id LOOP
        PERFORM creditd_limit_request_decline(lr.id, 'account terminated', now(), 'system',
                                              NULL);
    END LOOP;
END
$$;
