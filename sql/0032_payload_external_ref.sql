-- 0032_payload_external_ref: every notification payload names its account's
-- external_ref (R8.1, R2.1; test_audit_payloads.py test_12).
--
-- 0030 adds it to the payloads written through creditd_notify. The invoice
-- run's invoice.issued and the daily job's invoice.overdue / invoice.reminder
-- are inserted set-based (creditd_invoice_chunk_lane, 0019;
-- creditd_daily_overdue_part, 0012) and lacked it: a CRM that keys its
-- customers by external_ref could not place them without a second call.
-- Rather than copy those two large functions for a join on their hot paths,
-- the readers add it: GET /v1/notifications and the webhook deliver
-- creditd_payload_out(payload, account_id). external_ref cannot change
-- (PATCH /v1/accounts does not take it), so the value read is the one at the
-- time of the fact, and stored rows of every age are delivered the same way.

CREATE FUNCTION creditd_payload_out(p jsonb, p_account uuid) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p IS NULL OR jsonb_typeof(p) <> 'object' OR p ? 'external_ref'
                     OR p_account IS NULL THEN p
                ELSE p || jsonb_build_object('external_ref',
                          (SELECT a.external_ref FROM accounts a WHERE a.id = p_account))
           END::text
$$;
