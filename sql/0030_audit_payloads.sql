-- 0030_audit_payloads: notification payloads as a contract (R8.1, R8.2, R1.5),
-- found by tests/integration/test_audit_payloads.py.
--
-- 1. One time format. The API prints every instant in UTC with "Z"
--    (civil_format_rfc3339, creditd_rfc3339 of 0026), and so do the payloads
--    that build their times with creditd_rfc3339 (effective_at). But
--    payment.received and payment.reversed (received_at) and
--    account.terminated (terminated_at) put a timestamptz into
--    jsonb_build_object, which prints it in the session's TimeZone, the
--    billing zone: "2026-02-01T00:30:00.5+01:00" for the payment that GET
--    /v1/payments/{id} shows as "2026-01-31T23:30:00.500000Z". The same fact
--    read twice gave two strings, and the payload's form changed with the
--    billing.timezone setting. creditd_notify now writes every top-level
--    *_at string that carries an offset as creditd_rfc3339 of that instant,
--    so no caller has to (and a new one cannot forget to).
--
-- 2. external_ref in every payload that names its account. Of the facts
--    written through creditd_notify, limit_request.decided and the final
--    invoice's invoice.issued lacked it (a CRM keys its customers by it,
--    R2.1). creditd_notify adds it when the payload names the account and
--    not its external_ref. The invoice run's invoice.issued and the daily
--    job's invoice.overdue/invoice.reminder insert their rows set-based, not
--    through creditd_notify, and still lack it (see the report: a join in
--    creditd_invoice_chunk_lane and creditd_daily_overdue_part; a row
--    trigger here would cost about 13 us a row, +1.3 s per 100,000 notices
--    on the daily job's bench).

-- R1.5: top-level *_at values with a UTC offset, as creditd_rfc3339 prints
-- them; other values unchanged. NULL-safe: a payload without such values is
-- returned as it is.
CREATE FUNCTION creditd_payload_utc(p jsonb) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN jsonb_typeof(p) <> 'object' THEN p
                ELSE p || coalesce(
                    (SELECT jsonb_object_agg(e.key, creditd_rfc3339((e.value #>> '{}')::timestamptz))
                       FROM jsonb_each(p) e
                      WHERE e.key LIKE '%\_at' AND jsonb_typeof(e.value) = 'string'
                        AND (e.value #>> '{}')
                            ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d(:\d\d){1,2}$'),
                    '{}'::jsonb) END
$$;

-- 0001's creditd_notify, with 1. and 2.
CREATE OR REPLACE FUNCTION creditd_notify(p_account uuid, p_kind text, p_at timestamptz,
                                          p_payload jsonb)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO notifications (account_id, kind, created_at, payload)
    VALUES (p_account, p_kind, p_at,
            creditd_payload_utc(
                CASE WHEN p_payload ? 'account' AND NOT p_payload ? 'external_ref'
                     THEN p_payload || jsonb_build_object(
                              'external_ref',
                              (SELECT a.external_ref FROM accounts a WHERE a.id = p_account))
                     ELSE p_payload END));
    SELECT pg_notify('creditd_outbox', '');
$$;
