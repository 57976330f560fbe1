-- 0015_ingest_rows: less work per event row in group commit (issue 3,
-- bench/ingest).
--
-- events.account_id: the foreign key to accounts is checked once per
-- statement instead of once per row, as 0013 did for usage_rollups (the
-- per-row RI query was a fifth of the events INSERT). Same guarantee: every
-- inserted event's account exists and is key-share locked until commit (as
-- the foreign key locks it), an account_id is never changed to a missing
-- account, and an account that has events can neither be deleted nor change
-- its id; a violation is the same error (23503, constraint
-- events_account_id_fkey). Every writer of events (creditd_ingest_batch's
-- two paths, and any INSERT or UPDATE of events) goes through these triggers.
ALTER TABLE events DROP CONSTRAINT events_account_id_fkey;

CREATE FUNCTION creditd_events_accounts_exist() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    refs uuid[];
    n_found bigint;
BEGIN
    SELECT array_agg(DISTINCT n.account_id) INTO refs FROM new_events n;
    SELECT count(*) INTO n_found
      FROM (SELECT 1 FROM accounts a WHERE a.id = ANY (refs) FOR KEY SHARE OF a) l;
    IF n_found <> coalesce(cardinality(refs), 0) THEN
        RAISE EXCEPTION 'insert or update on table "events" violates foreign key constraint "events_account_id_fkey"'
              USING ERRCODE = 'foreign_key_violation', TABLE = 'events',
                    CONSTRAINT = 'events_account_id_fkey';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_account_exists AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION creditd_events_accounts_exist();

CREATE FUNCTION creditd_event_account_exists() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM accounts a WHERE a.id = NEW.account_id FOR KEY SHARE OF a;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'insert or update on table "events" violates foreign key constraint "events_account_id_fkey"'
              USING ERRCODE = 'foreign_key_violation', TABLE = 'events',
                    CONSTRAINT = 'events_account_id_fkey';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_account_changed AFTER UPDATE OF account_id ON events
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id)
    EXECUTE FUNCTION creditd_event_account_exists();

CREATE FUNCTION creditd_account_events_restrict() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM events e WHERE e.account_id = OLD.id) THEN
        RAISE EXCEPTION 'update or delete on table "accounts" violates foreign key constraint "events_account_id_fkey" on table "events"'
              USING ERRCODE = 'foreign_key_violation', TABLE = 'events',
                    CONSTRAINT = 'events_account_id_fkey';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER accounts_events_delete AFTER DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION creditd_account_events_restrict();
CREATE TRIGGER accounts_events_rekey AFTER UPDATE OF id ON accounts
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION creditd_account_events_restrict();
