-- 0012_daily_job_speed: the daily job with 100,000 overdue invoices (issue 5,
-- R6.2-R6.7, R4.2). Same notices, notifications, suspensions, accruals and
-- accrued interest as 0009; fewer and cheaper row writes.

-- Every overdue invoice, its account and its current month's accrual are
-- rewritten each day. Room on each page lets those updates be HOT (no index
-- entries; the previous day's version is pruned on the next visit) instead
-- of writing an entry into every index of the table. Applies to pages
-- written from now on.
ALTER TABLE invoices SET (fillfactor = 45);
ALTER TABLE accounts SET (fillfactor = 45);
ALTER TABLE interest_accruals SET (fillfactor = 50);

-- interest_accruals and invoice_notices reference invoices. A first run of
-- the daily job over 100,000 overdue invoices inserts 500,000 rows into
-- them, and their foreign keys checked each row with a lookup and a lock of
-- its invoice (a sixth of the run's database time). The same references are
-- checked once per statement instead; an invoice they name cannot be
-- deleted or renumbered (invoices never are: R5.5).
ALTER TABLE interest_accruals DROP CONSTRAINT interest_accruals_invoice_id_fkey;
ALTER TABLE invoice_notices DROP CONSTRAINT invoice_notices_invoice_id_fkey;

CREATE FUNCTION creditd_invoice_ref_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing uuid;
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        SELECT n.invoice_id INTO missing FROM creditd_new_rows n
         WHERE NOT EXISTS (SELECT 1 FROM invoices i WHERE i.id = n.invoice_id) LIMIT 1;
    ELSIF NOT EXISTS (SELECT 1 FROM invoices i WHERE i.id = NEW.invoice_id) THEN
        missing := NEW.invoice_id;
    END IF;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"',
                        TG_TABLE_NAME, TG_TABLE_NAME || '_invoice_id_fkey'
              USING ERRCODE = 'foreign_key_violation',
                    DETAIL = format('Key (invoice_id)=(%s) is not present in table "invoices".',
                                    missing);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER interest_accruals_invoice_ref AFTER INSERT ON interest_accruals
    REFERENCING NEW TABLE AS creditd_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION creditd_invoice_ref_check();
CREATE TRIGGER interest_accruals_invoice_ref_upd AFTER UPDATE ON interest_accruals
    FOR EACH ROW WHEN (OLD.invoice_id IS DISTINCT FROM NEW.invoice_id)
    EXECUTE FUNCTION creditd_invoice_ref_check();
CREATE TRIGGER invoice_notices_invoice_ref AFTER INSERT ON invoice_notices
    REFERENCING NEW TABLE AS creditd_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION creditd_invoice_ref_check();
CREATE TRIGGER invoice_notices_invoice_ref_upd AFTER UPDATE ON invoice_notices
    FOR EACH ROW WHEN (OLD.invoice_id IS DISTINCT FROM NEW.invoice_id)
    EXECUTE FUNCTION creditd_invoice_ref_check();

CREATE FUNCTION creditd_invoice_referenced_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    used uuid;
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN
        SELECT o.id INTO used FROM creditd_old_rows o
         WHERE EXISTS (SELECT 1 FROM interest_accruals x WHERE x.invoice_id = o.id)
            OR EXISTS (SELECT 1 FROM invoice_notices n WHERE n.invoice_id = o.id)
         LIMIT 1;
    ELSIF EXISTS (SELECT 1 FROM interest_accruals x WHERE x.invoice_id = OLD.id)
       OR EXISTS (SELECT 1 FROM invoice_notices n WHERE n.invoice_id = OLD.id) THEN
        used := OLD.id;
    END IF;
    IF used IS NOT NULL THEN
        RAISE EXCEPTION 'update or delete on table "invoices" violates a foreign key constraint'
              USING ERRCODE = 'foreign_key_violation',
                    DETAIL = format('Key (id)=(%s) is still referenced by its accruals or notices.',
                                    used);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER invoices_referenced AFTER DELETE ON invoices
    REFERENCING OLD TABLE AS creditd_old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION creditd_invoice_referenced_check();
CREATE TRIGGER invoices_referenced_upd AFTER UPDATE ON invoices
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION creditd_invoice_referenced_check();

-- The daily job's share of accounts p_part of p_parts (the id's last byte).
CREATE FUNCTION creditd_daily_part(p_id uuid, p_parts int) RETURNS int
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT get_byte(uuid_send(p_id), 15) % p_parts
$$;

-- 0009's interest_inputs, the same rows: an invoice without payments, credit
-- applied or credit notes (paid, credit_applied and credited are the sums of
-- its unreversed allocations and of its credit notes, all positive) has no
-- usage changes; the allocations and credit notes are only read for the
-- others (100,000 overdue invoices without payments: no 400,000 lookups).
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
       i.currency, creditd_due(i) AS due, i.interest_done
  FROM invoices i JOIN accounts a ON a.id = i.account_id;

-- The daily job's interest page: 0009's candidates with ids in
-- (p_after, p_upto] (NULL: unbounded), with the accruals already stored
-- ("day:exact,..." with day = month - 1970-01-01), so that the daemon sends
-- only the months whose interest changed (finished months are not rewritten
-- every day). PL/pgSQL: planned once per connection, by index lookups
-- whatever the statistics say (planned while the first run has not stored
-- any accrual yet, a generic plan scanned the growing table once per
-- invoice), and without JIT (an exploding estimate compiled for longer than
-- the query ran).
CREATE FUNCTION creditd_interest_page(p_day date, p_after uuid, p_upto uuid, p_limit int)
RETURNS TABLE (invoice_id uuid, account_id uuid, due_day int, contractual_rate int,
               jurisdiction text, currency_exp int, principal bigint, changes text,
               compensation_known boolean, usage_balance numeric, currency text, stored text)
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
                           FROM interest_accruals x WHERE x.invoice_id = c.invoice_id), '')
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
                           FROM interest_accruals x WHERE x.invoice_id = c.invoice_id), '')
          FROM interest_inputs c
         WHERE c.due < p_day AND (NOT c.interest_done OR c.usage_balance > 0)
           AND c.invoice_id > p_after AND c.invoice_id <= upto
         ORDER BY c.invoice_id LIMIT p_limit;
    END IF;
END
$$;

-- Where the daily job splits the invoices between its two page sequences:
-- about the middle invoice id (NULL when there are few).
CREATE FUNCTION creditd_interest_split() RETURNS uuid LANGUAGE sql STABLE AS $$
    SELECT i.id FROM invoices i ORDER BY i.id
    OFFSET (SELECT greatest(c.reltuples, 0)::bigint / 2 FROM pg_class c
             WHERE c.oid = 'invoices'::regclass)
    LIMIT 1
$$;

-- Part 2: store what the engine computed for a page: the months whose value
-- changed (p_new: not stored yet), and per invoice its compensation (NULL =
-- none / unchanged) and whether its usage is settled. Each invoice is
-- updated once: dates, flags and its accrued interest (creditd_refresh_
-- accrued's sum over its accruals, by the accruals' primary key). The
-- accounts' sums follow once for the whole job (creditd_daily_overdue_part).
CREATE FUNCTION creditd_interest_store_page(p_day date, p_inv uuid[], p_month date[],
                                            p_exact numeric[], p_micro bigint[],
                                            p_new boolean[], p_cinv uuid[], p_comp bigint[],
                                            p_settled boolean[])
RETURNS void LANGUAGE plpgsql
-- generic plans: a page's arrays are read by index lookups (a custom plan
-- would see 5,000 elements, estimate them at planning and prefer full scans)
SET plan_cache_mode = force_generic_plan SET jit = off
SET enable_seqscan = off SET enable_bitmapscan = off AS $$
DECLARE
    n bigint;
BEGIN
    IF false = ANY (p_new) THEN
        UPDATE interest_accruals x SET exact = u.exact, micro = u.micro
          FROM unnest(p_inv, p_month, p_exact, p_micro, p_new) u(inv, month, exact, micro, new)
         WHERE NOT u.new AND x.invoice_id = u.inv AND x.month = u.month;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n < (SELECT count(*) FROM unnest(p_new) v WHERE NOT v) THEN
            p_new := array_fill(true, ARRAY[cardinality(p_new)]);  -- gone meanwhile: upsert all
        END IF;
    END IF;
    IF true = ANY (p_new) THEN
        INSERT INTO interest_accruals (invoice_id, month, exact, micro)
        SELECT u.inv, u.month, u.exact, u.micro
          FROM unnest(p_inv, p_month, p_exact, p_micro, p_new) u(inv, month, exact, micro, new)
         WHERE u.new
        ON CONFLICT (invoice_id, month) DO UPDATE SET exact = excluded.exact,
                                                      micro = excluded.micro;
    END IF;
    UPDATE invoices i SET interest_through = p_day,
           interest_done = i.interest_done AND c.settled,
           compensation_due = coalesce(i.compensation_due, c.comp),
           accrued_interest = coalesce(
               (SELECT sum(CASE WHEN x.posted_any
                                THEN creditd_round(x.micro, i.currency_exp) - x.posted
                                ELSE x.micro END)
                  FROM interest_accruals x WHERE x.invoice_id = i.id), 0)
      FROM unnest(p_cinv, p_comp, p_settled) c(id, comp, settled)
     WHERE i.id = c.id;
    -- nothing left to accrue or post
    IF true = ANY (p_settled) THEN
        UPDATE invoices i SET interest_done = true
          FROM unnest(p_cinv, p_settled) c(id, settled)
         WHERE i.id = c.id AND c.settled AND i.accrued_interest = 0
           AND (i.compensation_due IS NULL OR i.compensation_posted);
    END IF;
END
$$;

-- An amount in micro-units as the API writes it (creditd_amount's text):
-- the same expression, inlined into the set-based inserts below (a STRICT
-- SQL function around a CASE is called once per row instead).
CREATE FUNCTION creditd_daily_amount(p bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p % 1000000 = 0 THEN (p / 1000000)::text
                ELSE rtrim((p::numeric / 1000000)::text, '0') END
$$;

-- R6.6 first step of the daily job: credit applied by the invoice run or a
-- lower accrual may have covered what kept an account suspended for being
-- overdue (0009's creditd_daily_overdue began with it).
CREATE FUNCTION creditd_daily_reevaluate(p_at timestamptz) RETURNS void LANGUAGE plpgsql
SET jit = off AS $$
BEGIN
    PERFORM creditd_overdue_reevaluate(a.id, p_at) FROM accounts a
      WHERE 'overdue' = ANY (a.reasons)
        AND NOT EXISTS (SELECT 1 FROM invoices i WHERE i.account_id = a.id
                           AND creditd_due(i) < p_at::date
                           AND i.total - i.credit_applied - i.paid - i.credited > 0);
END
$$;

-- R6.2/R6.6, R4.2: overdue notices, reminders and suspension for day p_day,
-- and the accrued interest of the accounts p_accounts (those of the invoices
-- the day's interest pages accrued: the sum over their invoices, 0009's
-- creditd_refresh_accrued), for the accounts of part p_part of p_parts (the
-- daily job runs the parts at the same time, on two connections: an account
-- and its invoices belong to one part, so each account's notifications keep
-- 0009's order: notices, reminders, suspension). Each account is updated
-- once. Returns the accounts newly suspended for being overdue.
-- - The accounts to suspend are locked first (as their update will lock
--   them): the notifications and history that reference them then find
--   them locked already (no second lock per account), and the history and
--   the notification are written before the update for the same reason.
-- - The notices still to send are found first (an anti-join with those
--   sent): a day with nothing new reads the overdue invoices once instead of
--   attempting 300,000 inserts. Runs of a part are serialised (two daemons:
--   one waits, then finds nothing left to send), so the notices are
--   inserted without conflicts.
CREATE FUNCTION creditd_daily_overdue_part(p_day date, p_reminders int[], p_suspend_after int,
                                           p_at timestamptz, p_part int, p_parts int,
                                           p_accounts uuid[])
RETURNS SETOF uuid LANGUAGE plpgsql
-- set-based over every overdue invoice: hash joins (the notices sent may be
-- estimated empty, while the other part fills them: a nested loop scanned
-- them once per invoice)
SET jit = off SET enable_nestloop = off AS $$
DECLARE
    sent bigint;
    suspend bigint := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(7274120, p_part);
    CREATE TEMP TABLE IF NOT EXISTS daily_notices (
        invoice_id uuid, account_id uuid, number text, days int, balance bigint,
        kind text, day int
    ) ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE IF NOT EXISTS daily_suspend (
        id uuid, external_ref text, old_status text, old_reasons text[], reasons text[]
    ) ON COMMIT DELETE ROWS;

    -- R6.6: accounts with an invoice overdue by more than p_suspend_after
    -- days, not yet suspended for it
    IF p_suspend_after > 0 THEN
        INSERT INTO daily_suspend
        SELECT a.id, a.external_ref, a.status, a.reasons,
               CASE WHEN a.reasons = '{}' THEN '{overdue}'
                    ELSE (SELECT array_agg(r ORDER BY r)
                            FROM unnest(array_append(a.reasons, 'overdue')) r) END
          FROM accounts a
         WHERE a.id IN (SELECT i.account_id FROM invoices i
                         WHERE i.effective_due_date < p_day - p_suspend_after
                           AND i.total - i.credit_applied - i.paid - i.credited > 0
                           AND creditd_daily_part(i.account_id, p_parts) = p_part)
           AND a.status <> 'terminated' AND NOT ('overdue' = ANY (a.reasons))
         ORDER BY a.id FOR NO KEY UPDATE OF a;
        GET DIAGNOSTICS suspend = ROW_COUNT;
    END IF;

    -- R6.2: the first overdue day's notice, once per invoice (stored as day
    -- 1), and reminders on the configured days, each once
    INSERT INTO daily_notices
    SELECT o.id, o.account_id, o.number, o.days, o.balance, k.kind, k.day
      FROM (SELECT i.id, i.account_id, i.number, p_day - creditd_due(i) AS days,
                   i.total - i.credit_applied - i.paid - i.credited AS balance
              FROM invoices i
             WHERE i.effective_due_date < p_day   -- = creditd_due(i), by the open index
               AND i.total - i.credit_applied - i.paid - i.credited > 0
               AND creditd_daily_part(i.account_id, p_parts) = p_part) o
      JOIN (SELECT 'invoice.overdue', 1
            UNION ALL
            SELECT DISTINCT 'invoice.reminder', d FROM unnest(p_reminders) d
             WHERE d > 1) k(kind, day) ON o.days >= k.day
     WHERE NOT EXISTS (SELECT 1 FROM invoice_notices n
                        WHERE n.invoice_id = o.id AND n.kind = k.kind AND n.days = k.day);
    GET DIAGNOSTICS sent = ROW_COUNT;
    IF sent > 0 THEN
        INSERT INTO invoice_notices (invoice_id, kind, days, sent_at)
        SELECT invoice_id, kind, day, p_at FROM daily_notices
         ORDER BY invoice_id, kind, day;
        -- (payloads: to_jsonb of a row is jsonb_build_object's object, in
        -- half the time)
        INSERT INTO notifications (account_id, kind, created_at, payload)
        SELECT r.account, 'invoice.overdue', p_at, to_jsonb(r)
          FROM (SELECT account_id AS account, invoice_id AS invoice, number,
                       days AS days_overdue, creditd_daily_amount(balance) AS balance
                  FROM daily_notices WHERE kind = 'invoice.overdue') r
         ORDER BY r.invoice;
        -- one reminder notification per invoice and run (the latest day
        -- reached), even if a run was missed and several days were crossed
        INSERT INTO notifications (account_id, kind, created_at, payload)
        SELECT r.account, 'invoice.reminder', p_at, to_jsonb(r)
          FROM (SELECT DISTINCT ON (invoice_id) account_id AS account, invoice_id AS invoice,
                       number, days AS days_overdue, day AS reminder_day,
                       creditd_daily_amount(balance) AS balance
                  FROM daily_notices WHERE kind = 'invoice.reminder'
                 ORDER BY invoice_id, day DESC) r
         ORDER BY r.invoice;
    END IF;

    -- R6.6: the suspension, set based: history, notification, reasons
    IF suspend > 0 THEN
        INSERT INTO account_history (account_id, at, status_before, status_after,
                                     reasons_before, reasons_after, cause, actor)
        SELECT s.id, p_at, s.old_status, 'suspended', s.old_reasons, s.reasons, 'overdue', 'system'
          FROM daily_suspend s ORDER BY s.id;
        INSERT INTO notifications (account_id, kind, created_at, payload)
        SELECT r.account, 'account.suspended', p_at, to_jsonb(r)
          FROM (SELECT s.id AS account, s.external_ref, 'suspended'::text AS status,
                       s.reasons, 'overdue'::text AS cause, NULL::text AS note
                  FROM daily_suspend s) r
         ORDER BY r.account;
        UPDATE accounts a SET reasons = s.reasons, status = 'suspended', updated_at = p_at,
               accrued_interest = coalesce((SELECT sum(i.accrued_interest)
                                              FROM invoices i WHERE i.account_id = a.id), 0)
          FROM daily_suspend s WHERE a.id = s.id;
    END IF;
    -- R4.2: the others' accrued interest
    IF cardinality(p_accounts) > 0 THEN
        UPDATE accounts a SET accrued_interest = s.amount
          FROM (SELECT i.account_id, sum(i.accrued_interest)::bigint AS amount FROM invoices i
                 WHERE i.account_id IN (SELECT x FROM unnest(p_accounts) x
                                         WHERE creditd_daily_part(x, p_parts) = p_part)
                 GROUP BY i.account_id) s
         WHERE a.id = s.account_id AND a.accrued_interest <> s.amount
           AND NOT EXISTS (SELECT 1 FROM daily_suspend d WHERE d.id = a.id);
    END IF;
    PERFORM pg_notify('creditd_outbox', '');
    RETURN QUERY SELECT s.id FROM daily_suspend s;
END
$$;

-- 0009's single-transaction form, for any other caller: the same steps.
CREATE OR REPLACE FUNCTION creditd_daily_overdue(p_day date, p_reminders int[],
                                                 p_suspend_after int, p_at timestamptz)
RETURNS SETOF uuid LANGUAGE plpgsql SET jit = off AS $$
BEGIN
    PERFORM creditd_daily_reevaluate(p_at);
    RETURN QUERY SELECT * FROM creditd_daily_overdue_part(p_day, p_reminders, p_suspend_after,
                                                          p_at, 0, 1, NULL);
END
$$;
