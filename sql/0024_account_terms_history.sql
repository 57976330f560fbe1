-- 0024_account_terms_history: interest keeps the contract terms of each day
-- (R6.3, R6.4).
--
-- Interest is "a function of the invoice's balance history and the rate
-- tables": recomputing it for any date range must give the same answer. The
-- engine read the account's contractual rate and jurisdiction as they are
-- now, so a PATCH of either recomputed every past day of every open debt at
-- the new terms and the next invoice carried correction lines for interest
-- already accrued (and perhaps posted) under the old contract.
--
-- Now a PATCH that changes either keeps the terms it replaces, with the day
-- they applied through: the billing day of the change (the new terms apply
-- from the next day, so the day of the change, which the daily job may have
-- accrued already, keeps its interest). Several changes on one day keep the
-- terms from before the first of them. interest_inputs hands the engine the
-- earlier terms of the days after the due date ("through:rate:jurisdiction",
-- ascending); the engine (common/interest.c) takes each day's terms.

CREATE TABLE account_terms_history (
    account_id       uuid NOT NULL REFERENCES accounts (id),
    through          date NOT NULL,     -- these terms applied through this billing day
    contractual_rate integer NOT NULL,  -- 0.0001 % a year (R1.4)
    jurisdiction     text,
    PRIMARY KEY (account_id, through)
);

CREATE OR REPLACE FUNCTION creditd_account_patch(p_id uuid, p_ext text, p_patch jsonb,
                                                 p_at timestamptz, p_actor text, p_rid text)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    a accounts;
    b accounts;
BEGIN
    SELECT * INTO a FROM accounts WHERE id = p_id OR external_ref = p_ext FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account not found' USING ERRCODE = 'CR404';
    END IF;
    UPDATE accounts SET
        name = coalesce(p_patch->>'name', name),
        jurisdiction = coalesce(p_patch->>'jurisdiction', jurisdiction),
        contractual_rate = coalesce((p_patch->>'contractual_rate')::integer, contractual_rate),
        payment_terms_days = coalesce((p_patch->>'payment_terms_days')::integer,
                                      payment_terms_days),
        updated_at = p_at
     WHERE id = a.id RETURNING * INTO b;
    -- R6.4: the replaced terms, through today (the session's zone is the
    -- billing zone); the first change of a day keeps the day's terms
    IF b.contractual_rate IS DISTINCT FROM a.contractual_rate
       OR b.jurisdiction IS DISTINCT FROM a.jurisdiction THEN
        INSERT INTO account_terms_history (account_id, through, contractual_rate, jurisdiction)
        VALUES (a.id, p_at::date, a.contractual_rate, a.jurisdiction)
        ON CONFLICT (account_id, through) DO NOTHING;
    END IF;
    PERFORM creditd_audit(p_at, p_actor, 'account.update', 'account', a.id::text,
                          to_jsonb(a), to_jsonb(b), p_rid);
    RETURN a.id;
END
$$;

-- 0012's interest_inputs and one more column: the earlier terms that apply
-- to days after the due date (a change on or before the due date covers no
-- day that bears interest). One index probe per invoice.
CREATE OR REPLACE VIEW interest_inputs AS
SELECT i.id AS invoice_id, i.account_id, creditd_due(i) - date '1970-01-01' AS due_day,
       a.contractual_rate, a.jurisdiction, i.currency_exp::int AS currency_exp,
       i.usage_total AS principal,
       CASE WHEN i.paid = 0 AND i.credit_applied = 0 AND i.credited = 0 THEN ''
            ELSE coalesce((SELECT string_agg(d || ':' || amt, ',' ORDER BY d) FROM (
                SELECT (pa.received_at::date - date '1970-01-01') AS d, -pa.amount AS amt
                  FROM payment_allocations pa
                 WHERE pa.invoice_id = i.id AND pa.component = 'usage'
                   AND pa.reversed_at IS NULL
                UNION ALL
                SELECT (cn.issued_at::date - date '1970-01-01'), -cn.amount
                  FROM credit_notes cn WHERE cn.invoice_id = i.id) h), '') END AS changes,
       i.compensation_due IS NOT NULL AS compensation_known,
       CASE WHEN i.paid = 0 AND i.credit_applied = 0 AND i.credited = 0 THEN i.usage_total::numeric
            ELSE i.usage_total - coalesce((SELECT sum(pa.amount) FROM payment_allocations pa
                                            WHERE pa.invoice_id = i.id AND pa.component = 'usage'
                                              AND pa.reversed_at IS NULL), 0)
                               - coalesce((SELECT sum(cn.amount) FROM credit_notes cn
                                            WHERE cn.invoice_id = i.id), 0) END AS usage_balance,
       i.currency, creditd_due(i) AS due, i.interest_done,
       coalesce((SELECT string_agg((h.through - date '1970-01-01') || ':' || h.contractual_rate
                                   || ':' || coalesce(h.jurisdiction, ''), ','
                                   ORDER BY h.through)
                   FROM account_terms_history h
                  WHERE h.account_id = i.account_id AND h.through > creditd_due(i)), '') AS terms
  FROM invoices i JOIN accounts a ON a.id = i.account_id;

-- 0012's page with the terms column (a new result column: dropped and made
-- again; nothing else calls it).
DROP FUNCTION creditd_interest_page(date, uuid, uuid, int);
CREATE FUNCTION creditd_interest_page(p_day date, p_after uuid, p_upto uuid, p_limit int)
RETURNS TABLE (invoice_id uuid, account_id uuid, due_day int, contractual_rate int,
               jurisdiction text, currency_exp int, principal bigint, changes text,
               compensation_known boolean, usage_balance numeric, currency text, stored text,
               terms text)
LANGUAGE plpgsql STABLE
SET jit = off SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off SET enable_bitmapscan = off AS $$
DECLARE
    upto uuid := coalesce(p_upto, 'ffffffff-ffff-ffff-ffff-ffffffffffff');   -- the largest
BEGIN
    IF p_after IS NULL THEN
        RETURN QUERY
        SELECT c.invoice_id, c.account_id, c.due_day, c.contractual_rate, c.jurisdiction,
               c.currency_exp, c.principal, c.changes, c.compensation_known, c.usage_balance,
               c.currency,
               coalesce((SELECT string_agg((x.month - date '1970-01-01') || ':' || x.exact, ',')
                           FROM interest_accruals x WHERE x.invoice_id = c.invoice_id), ''),
               c.terms
          FROM interest_inputs c
         WHERE c.due < p_day AND (NOT c.interest_done OR c.usage_balance > 0)  -- a reversal reopens
           AND c.invoice_id <= upto
         ORDER BY c.invoice_id LIMIT p_limit;
    ELSE
        RETURN QUERY
        SELECT c.invoice_id, c.account_id, c.due_day, c.contractual_rate, c.jurisdiction,
               c.currency_exp, c.principal, c.changes, c.compensation_known, c.usage_balance,
               c.currency,
               coalesce((SELECT string_agg((x.month - date '1970-01-01') || ':' || x.exact, ',')
                           FROM interest_accruals x WHERE x.invoice_id = c.invoice_id), ''),
               c.terms
          FROM interest_inputs c
         WHERE c.due < p_day AND (NOT c.interest_done OR c.usage_balance > 0)
           AND c.invoice_id > p_after AND c.invoice_id <= upto
         ORDER BY c.invoice_id LIMIT p_limit;
    END IF;
END
$$;
