-- 0029_reversal_overdue: a reversed payment puts back the overdue
-- suspension it had lifted (R6.6 with R6.1; test_audit_limits.py test_51).
--
-- A payment that pays an overdue invoice lifts `overdue` at once
-- (creditd_overdue_reevaluate). Its reversal (a bounced transfer) made the
-- invoice overdue again, but only the next daily job suspended the account:
-- until 00:05 the next day it was active and authorized traffic, with an
-- invoice past overdue_suspend_after_days. creditd_payment_reverse does not
-- know that setting; the daemon now runs this check after it in the same
-- transaction (daemon/http_payments.c), with the rule of the daily job
-- (creditd_daily_overdue_part, 0012): an unpaid invoice due more than
-- p_suspend_after days before today in the billing zone (the session's
-- TimeZone), an account not terminated; 0 turns the rule off.

CREATE FUNCTION creditd_overdue_suspend_check(p_account uuid, p_suspend_after int,
                                              p_cause text, p_actor text, p_at timestamptz,
                                              p_rid text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    a accounts;
BEGIN
    IF p_account IS NULL OR p_suspend_after <= 0 THEN
        RETURN;
    END IF;
    SELECT * INTO a FROM accounts WHERE id = p_account FOR UPDATE;
    IF NOT FOUND OR a.status = 'terminated' OR 'overdue' = ANY (a.reasons) THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM invoices i
                WHERE i.account_id = p_account
                  AND i.effective_due_date < p_at::date - p_suspend_after
                  AND i.total - i.credit_applied - i.paid - i.credited > 0) THEN
        PERFORM creditd_change_reasons(p_account, ARRAY['overdue'], NULL, p_cause, p_actor,
                                       NULL, p_at, p_rid);
    END IF;
END
$$;
