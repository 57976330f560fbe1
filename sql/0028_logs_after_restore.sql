-- 0028_logs_after_restore: the outbox and the audit log after a restore into
-- another cluster (README "Backups"; R8.2, R9.5; test_restore.py).
--
-- 0021 orders both logs by (txid, id) and shows a row once every transaction
-- older than its txid has ended (txid below the snapshot's xmin). Transaction
-- ids belong to a cluster: pg_restore into a new cluster (which starts near
-- 750) brings rows whose txids lie far ahead of the new counter. None of them
-- was shown, and the rows written after the restore got lower txids, so they
-- came before the restored ones and a consumer going on from its cursor saw
-- nothing new, until the new counter passed the old one.
--
-- Each row now also carries a generation: the logs are ordered by (gen, txid,
-- id). A daemon checks at every start, after its migrations, under the
-- migration lock (daemon/migrate.c): rows of the current generation with a
-- txid at or ahead of the cluster's counter came from another cluster. Then
-- the generation goes up by one: what was written before is history, all of
-- it shown, and what is written from now on comes after it. The check costs
-- two index probes; nothing changes while the logs come from this cluster
-- (also after pg_upgrade or a physical backup, which keep the counter).
--
-- New rows take the generation as their column default (a constant, set by
-- the check with ALTER TABLE: nothing to evaluate per row); log_generation
-- holds it for the readers (daemon/http_ops.c, LOG_KEYS).

CREATE TABLE log_generation (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    gen integer NOT NULL
);
INSERT INTO log_generation (gen) VALUES (0);

-- constant defaults: no table rewrite
ALTER TABLE notifications ADD COLUMN gen integer NOT NULL DEFAULT 0;
ALTER TABLE audit_log ADD COLUMN gen integer NOT NULL DEFAULT 0;
DROP INDEX notifications_txid;
CREATE INDEX notifications_txid ON notifications (gen, txid, id);
DROP INDEX audit_log_txid;
CREATE INDEX audit_log_txid ON audit_log (gen, txid, id);

CREATE FUNCTION creditd_logs_check_restored() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    g integer;
    -- the first transaction id not yet given out: no row of this cluster is
    -- at or ahead of it (read without taking an id)
    next_xid xid8 := pg_snapshot_xmax(pg_current_snapshot());
BEGIN
    SELECT l.gen INTO g FROM log_generation l;
    IF EXISTS (SELECT 1 FROM notifications n WHERE n.gen = g AND n.txid >= next_xid)
       OR EXISTS (SELECT 1 FROM audit_log l WHERE l.gen = g AND l.txid >= next_xid) THEN
        g := g + 1;
        UPDATE log_generation SET gen = g;
        EXECUTE format('ALTER TABLE notifications ALTER COLUMN gen SET DEFAULT %s', g);
        EXECUTE format('ALTER TABLE audit_log ALTER COLUMN gen SET DEFAULT %s', g);
        RAISE LOG 'creditd: notifications and audit log restored from another cluster; '
                  'generation % begins', g;
    END IF;
    RETURN g;
END
$$;
