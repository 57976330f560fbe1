-- 0036_audit_termination: a correction found by
-- tests/integration/test_audit_termination.py (R5.6, R6.7, R2.3).
--
-- 1. A reactivation scheduled before a termination (R6.7: it takes effect
--    working days later) still took effect afterwards: the terminated
--    account lost its `inactivity` reason and its history gained a
--    "reactivation" row after the termination, and reactivated_at moved.
--    A terminated account is terminated for good, its reasons kept as they
--    were (0008), and no write may touch it any more (every other one is
--    refused with 422 invalid_state; a scheduled limit change is superseded
--    by the termination). A due reactivation of a terminated account is now
--    marked 'superseded', as limit changes are, and changes nothing else;
--    it is not returned (the daemon has no cache entry to refresh for it).
--    Full body of 0009's creditd_apply_due_reactivations otherwise.

ALTER TABLE reactivations DROP CONSTRAINT reactivations_status_check;
ALTER TABLE reactivations ADD CONSTRAINT reactivations_status_check
    CHECK (status IN ('scheduled', 'applied', 'superseded'));

CREATE OR REPLACE FUNCTION creditd_apply_due_reactivations(p_at timestamptz)
RETURNS SETOF uuid LANGUAGE plpgsql AS $$
DECLARE
    r record;
    st text;
BEGIN
    FOR r IN SELECT * FROM reactivations WHERE status = 'scheduled' AND effective_at <= p_at
              ORDER BY effective_at, id FOR UPDATE SKIP LOCKED LOOP
        -- the account row as creditd_change_reasons locks it (same order)
        SELECT a.status INTO st FROM accounts a WHERE a.id = r.account_id FOR UPDATE;
        IF st = 'terminated' THEN
            -- R5.6: terminated for good; the request is superseded (1)
            UPDATE reactivations SET status = 'superseded', applied_at = p_at WHERE id = r.id;
            CONTINUE;
        END IF;
        UPDATE reactivations SET status = 'applied', applied_at = p_at WHERE id = r.id;
        UPDATE accounts SET reactivated_at = p_at WHERE id = r.account_id;
        PERFORM creditd_change_reasons(r.account_id, NULL, ARRAY['inactivity'], 'reactivation',
                                       r.actor, r.note, p_at, NULL);
        RETURN NEXT r.account_id;
    END LOOP;
END
$$;
