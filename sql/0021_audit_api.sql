-- R8.2, R9.5: a reader that follows the cursor of GET /v1/notifications or
-- GET /v1/audit must never skip a row. Ids are taken when a row is inserted,
-- but transactions commit in another order: a reader that saw id 11 (committed
-- first) and moved its cursor past it never saw id 10 (committed later).
--
-- Each row now records the transaction that wrote it (txid). Readers order by
-- (txid, id) and show only rows of transactions older than every transaction
-- still running (pg_snapshot_xmin of their snapshot): those are final, and
-- every row committed later has a higher txid, so it comes after the cursor.
-- The cursor stays a row id: the position of that row in (txid, id) order.
-- Rows written before this migration have txid 0 and keep their id order.
--
-- ADD COLUMN with a constant default rewrites nothing; the volatile default
-- set afterwards applies to new rows only.
ALTER TABLE notifications ADD COLUMN txid xid8 NOT NULL DEFAULT '0';
ALTER TABLE notifications ALTER COLUMN txid SET DEFAULT pg_current_xact_id();
CREATE INDEX notifications_txid ON notifications (txid, id);

ALTER TABLE audit_log ADD COLUMN txid xid8 NOT NULL DEFAULT '0';
ALTER TABLE audit_log ALTER COLUMN txid SET DEFAULT pg_current_xact_id();
CREATE INDEX audit_log_txid ON audit_log (txid, id);
