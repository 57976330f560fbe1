-- 0016_account_refs_unlocked: the per-statement foreign keys to accounts
-- (0013 usage_rollups, 0014 invoices, invoiced periods, notifications, 0015
-- events) check that the accounts exist without locking each one FOR KEY
-- SHARE (issue 3, bench/ingest: with an event insert and a rollup upsert per
-- batch, the two key-share locks cost about 3 us per account each, a tenth
-- of all PostgreSQL time per event; each lock is a write of the account's
-- row and a WAL record).
--
-- A foreign key locks the referenced row only so that the row cannot be
-- deleted, or its key changed, before the referencing row commits. creditd
-- never deletes an account nor changes its id (an account ends terminated,
-- R2), so instead of every writer locking every account it refers to, the
-- rare DELETE or id change of accounts locks the referencing tables: before
-- the statement touches any account row it takes SHARE locks on events,
-- usage_rollups, invoices, invoiced_periods and notifications. A SHARE lock
-- waits for every transaction that is writing to those tables and keeps new
-- writers out until it ends, so the restrict triggers (0013, 0014), which
-- run per row after it, see every reference that was ever committed, with
-- the statement snapshots of READ COMMITTED. Under REPEATABLE READ or
-- SERIALIZABLE the snapshot predates the wait, so such a DELETE or id change
-- is refused there (it never happens in creditd; a person doing it by hand
-- in psql works in READ COMMITTED, the default). Same guarantee as before:
-- every inserted row's account exists; an account that is referenced can
-- neither be deleted nor change its id; the same error (23503 and the
-- constraint's name). A statement that runs with creditd.refs_checked set
-- (transaction-local) is not looked up again: creditd_ingest_batch (0017)
-- sets it only around inserts whose accounts it has just locked and counted.

CREATE OR REPLACE FUNCTION creditd_account_ref_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    refs uuid[];
    n_found bigint;
BEGIN
    -- creditd_ingest_batch (0017) sets creditd.refs_checked (transaction-local)
    -- around its own inserts, whose accounts it has just locked and counted
    IF TG_LEVEL = 'STATEMENT' AND current_setting('creditd.refs_checked', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_LEVEL = 'STATEMENT' THEN
        SELECT array_agg(DISTINCT n.account_id) INTO refs FROM creditd_new_rows n
         WHERE n.account_id IS NOT NULL;
    ELSIF NEW.account_id IS NOT NULL THEN
        refs := ARRAY[NEW.account_id];
    END IF;
    IF cardinality(refs) > 0 THEN
        -- no row lock: creditd_accounts_keys_frozen (below) stands in for it
        SELECT count(*) INTO n_found FROM accounts a WHERE a.id = ANY (refs);
        IF n_found <> cardinality(refs) THEN
            RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"',
                            TG_TABLE_NAME, TG_TABLE_NAME || '_account_id_fkey'
                  USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME,
                        CONSTRAINT = TG_TABLE_NAME || '_account_id_fkey';
        END IF;
    END IF;
    RETURN NULL;
END
$$;

-- usage_rollups: 0013's own check functions (key-share locking) give way to
-- the shared one; same trigger events, same error.
DROP TRIGGER usage_rollups_account_exists ON usage_rollups;
DROP TRIGGER usage_rollups_account_changed ON usage_rollups;
DROP FUNCTION creditd_rollups_accounts_exist();
DROP FUNCTION creditd_rollup_account_exists();
CREATE TRIGGER usage_rollups_account_ref AFTER INSERT ON usage_rollups
    REFERENCING NEW TABLE AS creditd_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION creditd_account_ref_check();
CREATE TRIGGER usage_rollups_account_ref_upd AFTER UPDATE ON usage_rollups
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id)
    EXECUTE FUNCTION creditd_account_ref_check();

-- Before a DELETE of accounts or an UPDATE that may change an id: wait for
-- every writer of a referencing table and keep new ones out (see above).
CREATE FUNCTION creditd_accounts_keys_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'deleting accounts or changing their ids needs READ COMMITTED isolation'
              USING ERRCODE = 'feature_not_supported';
    END IF;
    LOCK TABLE events, usage_rollups, invoices, invoiced_periods, notifications IN SHARE MODE;
    RETURN NULL;
END
$$;
CREATE TRIGGER accounts_keys_frozen_delete BEFORE DELETE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION creditd_accounts_keys_frozen();
CREATE TRIGGER accounts_keys_frozen_rekey BEFORE UPDATE OF id ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION creditd_accounts_keys_frozen();
