-- 0034_invoice_issuer: an issued invoice keeps the issuer it was issued by
-- (R5.5: an issued invoice is never changed; R5.7: the printable invoice).
--
-- The issuer (the company's name, address, tax id, e-mail and payment
-- instructions) comes from the daemons' [issuer] configuration. A daemon
-- writes it into the one-row table invoice_issuer (daemon/issuer.c): at
-- start, before its invoice jobs start, and after a reload that changed it;
-- only when it differs from what the row holds. Every writer of invoices
-- (the monthly run's chunks, the final invoice of a termination) gets it
-- from the BEFORE INSERT trigger below, like the customer of 0027, so no
-- invoicing function changes: the invoice carries the issuer committed when
-- its row was inserted, and a later change of the configuration leaves it
-- as it is.
--
-- Several daemons (R9.2) with different [issuer] sections: the row holds
-- what the last daemon to start or reload wrote, and every daemon's new
-- invoices get that (a daemon logs each change it makes). Keep [issuer] the
-- same everywhere.
--
-- Empty strings = not configured: an invoice issued then shows no issuer,
-- also after one is configured. NULL = issued before this migration:
-- those show the issuer the row holds now (what they showed until now was a
-- placeholder).

CREATE TABLE invoice_issuer (
    id boolean PRIMARY KEY DEFAULT true CHECK (id), -- one row
    name text NOT NULL,
    address text NOT NULL,              -- lines separated by E'\n'
    tax_id text NOT NULL,
    email text NOT NULL,
    payment_instructions text NOT NULL  -- lines separated by E'\n'
);

INSERT INTO invoice_issuer (name, address, tax_id, email, payment_instructions)
    VALUES ('', '', '', '', '');

-- nullable without a default: no rewrite of the invoices table; the check
-- holds for new rows (NOT VALID: existing rows are all NULL, not scanned)
ALTER TABLE invoices ADD COLUMN issuer_name text, ADD COLUMN issuer_address text,
    ADD COLUMN issuer_tax_id text, ADD COLUMN issuer_email text,
    ADD COLUMN issuer_payment_instructions text,
    ADD CONSTRAINT invoices_issuer_whole CHECK (
        (issuer_name IS NULL) = (issuer_address IS NULL)
        AND (issuer_name IS NULL) = (issuer_tax_id IS NULL)
        AND (issuer_name IS NULL) = (issuer_email IS NULL)
        AND (issuer_name IS NULL) = (issuer_payment_instructions IS NULL)) NOT VALID;

-- Always one row (an empty issuer if the table's row were gone): from this
-- migration on, issuer_name IS NULL means "issued before 0034" only.
CREATE FUNCTION creditd_invoice_issuer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT coalesce(s.name, ''), coalesce(s.address, ''), coalesce(s.tax_id, ''),
           coalesce(s.email, ''), coalesce(s.payment_instructions, '')
      INTO NEW.issuer_name, NEW.issuer_address, NEW.issuer_tax_id, NEW.issuer_email,
           NEW.issuer_payment_instructions
      FROM (SELECT) one LEFT JOIN invoice_issuer s ON s.id;
    RETURN NEW;
END
$$;

CREATE TRIGGER invoices_issuer BEFORE INSERT ON invoices
    FOR EACH ROW WHEN (NEW.issuer_name IS NULL)
    EXECUTE FUNCTION creditd_invoice_issuer();

-- R5.5: once issued, the issuer of an invoice does not change. Fires only
-- for an UPDATE that names these columns (no writer does), so it costs the
-- invoicing and payment paths nothing.
CREATE FUNCTION creditd_invoice_issuer_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'invoice %: the issuer of an issued invoice cannot be changed (R5.5)',
        OLD.number USING ERRCODE = 'check_violation';
END
$$;

CREATE TRIGGER invoices_issuer_frozen BEFORE UPDATE OF issuer_name, issuer_address,
    issuer_tax_id, issuer_email, issuer_payment_instructions ON invoices
    FOR EACH ROW WHEN ((OLD.issuer_name, OLD.issuer_address, OLD.issuer_tax_id,
                        OLD.issuer_email, OLD.issuer_payment_instructions)
                       IS DISTINCT FROM
                       (NEW.issuer_name, NEW.issuer_address, NEW.issuer_tax_id,
                        NEW.issuer_email, NEW.issuer_payment_instructions))
    EXECUTE FUNCTION creditd_invoice_issuer_frozen();
