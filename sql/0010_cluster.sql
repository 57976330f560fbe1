-- 0010_cluster: several daemons on one database (R9.2). Every change of an
-- account's row is announced, so that the other daemons' in-memory
-- authorization state follows within a second; rate data likewise.

CREATE FUNCTION creditd_account_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('creditd_accounts', NEW.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER accounts_changed AFTER INSERT OR UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION creditd_account_changed();

CREATE FUNCTION creditd_rates_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('creditd_rates', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER reference_rates_changed AFTER INSERT OR UPDATE OR DELETE ON reference_rates
    FOR EACH STATEMENT EXECUTE FUNCTION creditd_rates_changed();
CREATE TRIGGER statutory_rules_changed AFTER INSERT OR UPDATE OR DELETE ON statutory_rules
    FOR EACH STATEMENT EXECUTE FUNCTION creditd_rates_changed();

-- Webhook delivery picks the oldest undelivered notification per account.
CREATE INDEX notifications_undelivered_account ON notifications (account_id, id)
    WHERE delivered_at IS NULL;
