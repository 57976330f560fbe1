-- 0033_notify_external_ref_once: a payload's external_ref comes from one
-- place (R8.1).
--
-- 0030 made creditd_notify add external_ref to a payload that names its
-- account without it; 0032 then made the readers (GET /v1/notifications and
-- the webhook, creditd_payload_out) add it to every payload without it, also
-- to those the set-based writers insert. The readers' way covers both, so
-- creditd_notify keeps only 0030's time normalisation (creditd_payload_utc)
-- and no longer looks the account up. What is delivered is unchanged
-- (test_audit_payloads.py tests 12 and 13).

CREATE OR REPLACE FUNCTION creditd_notify(p_account uuid, p_kind text, p_at timestamptz,
                                          p_payload jsonb)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO notifications (account_id, kind, created_at, payload)
    VALUES (p_account, p_kind, p_at, creditd_payload_utc(p_payload));
    SELECT pg_notify('creditd_outbox', '');
$$;
