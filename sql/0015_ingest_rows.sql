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
-- The check and the restriction are 0014's, shared with invoices, invoiced
-- periods and notifications.
ALTER TABLE events DROP CONSTRAINT events_account_id_fkey;
CREATE TRIGGER events_account_ref AFTER INSERT ON events
    REFERENCING NEW TABLE AS creditd_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION creditd_account_ref_check();
CREATE TRIGGER events_account_ref_upd AFTER UPDATE ON events
    FOR EACH ROW WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id)
    EXECUTE FUNCTION creditd_account_ref_check();
-- (an account with events can neither be deleted nor change its id: 0014's
-- creditd_account_refs_restrict)
