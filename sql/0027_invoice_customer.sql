-- 0027_invoice_customer: an issued invoice keeps the customer it was issued
-- to (R5.5: an issued invoice is never changed; R5.7).
--
-- GET /v1/invoices/{id} (JSON and the printable page) read the customer's
-- name and jurisdiction from the account as it is now: after a PATCH of the
-- account every earlier invoice showed the new name and jurisdiction
-- (test_audit_reports.py test_23). Invoices now carry both, as of their issue.
--
-- Every writer of invoices (the monthly run's chunks, the final invoice of a
-- termination) gets them from the BEFORE INSERT trigger below, which reads
-- the account row the writer has locked. The external_ref cannot change
-- (PATCH does not take it), so it is still read from the account.
--
-- Invoices issued before this migration get the account's present name and
-- jurisdiction: what they showed until now.

ALTER TABLE invoices ADD COLUMN customer_name text, ADD COLUMN customer_jurisdiction text;

UPDATE invoices i SET customer_name = a.name, customer_jurisdiction = a.jurisdiction
  FROM accounts a WHERE a.id = i.account_id;

ALTER TABLE invoices ALTER COLUMN customer_name SET NOT NULL,
                     ALTER COLUMN customer_jurisdiction SET NOT NULL;

CREATE FUNCTION creditd_invoice_customer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT a.name, a.jurisdiction INTO NEW.customer_name, NEW.customer_jurisdiction
      FROM accounts a WHERE a.id = NEW.account_id;
    RETURN NEW;
END
$$;

CREATE TRIGGER invoices_customer BEFORE INSERT ON invoices
    FOR EACH ROW WHEN (NEW.customer_name IS NULL)
    EXECUTE FUNCTION creditd_invoice_customer();
