-- 0004_statutory_rates: statutory late-payment rules as data (R6.5), with the
-- shipped facts of RATES.md.
--
-- Rates are integer 0.0001 % per year (12 % = 120000; DE -0.88 % = -8800).
-- These rows are exactly those of ratetable_load_defaults() in common/ratetable.c:
-- tests/unit/test_ratetable.c parses this file and fails on any difference, so
-- keep one row per line in the INSERTs below.

-- Reference series: the value in force on day d is the row with the latest
-- effective_date <= d. PUT /v1/reference-rates/{source} adds or replaces a row.
CREATE TABLE reference_rates (
    source         text NOT NULL CHECK (source ~ '^[A-Za-z0-9_-]{1,63}$'),
    effective_date date NOT NULL,
    rate           integer NOT NULL, -- 0.0001 % per year; may be negative
    note           text,
    PRIMARY KEY (source, effective_date)
);

-- One rule per jurisdiction.
--   mode: 'per_debt'    the value fixed for the half-year in which the debt first
--                       became overdue applies for the debt's whole life (GB, IE);
--         'half_yearly' each half-year's value applies to its days (DE, AT, ...);
--         'fixed'       fixed_rate, no source (US-NY, US-CA).
--   The reference value is read on (1 Jan or 1 Jul of the half-year) +
--   fixing_offset_days: GB -1 reads the Bank Rate in force on 31 Dec / 30 Jun.
--   rate = value + margin (or fixed_rate).
--   compounding 'yearly' (NL): interest unpaid after each year joins the principal.
--   valid_from: first half-year the rule covers (NULL = no limit); days of
--   earlier half-years have no statutory rate (HR used a national formula before 2023).
--   comp_tiers (jsonb, with comp_currency; both NULL = no fixed compensation): an
--   array tried in order, the first matching tier gives the compensation:
--     {"below": "1000", "amount": "40"}   debt <  1000
--     {"upto": "10000", "amount": "70"}   debt <= 10000
--     {"amount": "100"}                   any debt (required, and only as the last tier)
--   Bounds and amounts are decimal strings in major units of comp_currency.
CREATE TABLE statutory_rules (
    jurisdiction       text PRIMARY KEY CHECK (jurisdiction ~ '^[A-Z0-9-]{1,15}$'),
    mode               text NOT NULL CHECK (mode IN ('per_debt', 'half_yearly', 'fixed')),
    source             text,
    margin             integer NOT NULL DEFAULT 0,
    fixed_rate         integer CHECK (fixed_rate >= 0),
    fixing_offset_days integer NOT NULL DEFAULT 0
                       CHECK (fixing_offset_days BETWEEN -366 AND 366),
    compounding        text NOT NULL DEFAULT 'none' CHECK (compounding IN ('none', 'yearly')),
    valid_from         date,
    comp_currency      text CHECK (comp_currency ~ '^[A-Z]{3}$'),
    comp_tiers         jsonb CHECK (jsonb_typeof(comp_tiers) = 'array'),
    legal_basis        text,
    CHECK ((mode = 'fixed') = (source IS NULL)),
    CHECK ((mode = 'fixed') = (fixed_rate IS NOT NULL)),
    CHECK (mode <> 'fixed' OR margin = 0),
    CHECK ((comp_currency IS NULL) = (comp_tiers IS NULL))
);

-- Bank of England Bank Rate. RATES.md: 0.25 in force on 1 Jan 2022. It is
-- shipped as effective 2021-12-16 (the date of the December 2021 rise) so that
-- the GB fixing on 31 Dec 2021, for debts first overdue in 2022-H1, finds a value.
INSERT INTO reference_rates (source, effective_date, rate, note) VALUES
    ('BOE_BANK_RATE', '2021-12-16', 2500, 'in force on 2022-01-01 (RATES.md); effective date of the Dec 2021 rise'),
    ('BOE_BANK_RATE', '2022-02-03', 5000, NULL),
    ('BOE_BANK_RATE', '2022-03-17', 7500, NULL),
    ('BOE_BANK_RATE', '2022-05-05', 10000, NULL),
    ('BOE_BANK_RATE', '2022-06-16', 12500, NULL),
    ('BOE_BANK_RATE', '2022-08-04', 17500, NULL),
    ('BOE_BANK_RATE', '2022-09-22', 22500, NULL),
    ('BOE_BANK_RATE', '2022-11-03', 30000, NULL),
    ('BOE_BANK_RATE', '2022-12-15', 35000, NULL),
    ('BOE_BANK_RATE', '2023-02-02', 40000, NULL),
    ('BOE_BANK_RATE', '2023-03-23', 42500, NULL),
    ('BOE_BANK_RATE', '2023-05-11', 45000, NULL),
    ('BOE_BANK_RATE', '2023-06-22', 50000, NULL),
    ('BOE_BANK_RATE', '2023-08-03', 52500, NULL),
    ('BOE_BANK_RATE', '2024-08-01', 50000, NULL),
    ('BOE_BANK_RATE', '2024-11-07', 47500, NULL),
    ('BOE_BANK_RATE', '2025-02-06', 45000, NULL),
    ('BOE_BANK_RATE', '2025-05-08', 42500, NULL),
    ('BOE_BANK_RATE', '2025-08-07', 40000, NULL),
    ('BOE_BANK_RATE', '2025-12-18', 37500, 'held through June 2026 (RATES.md)');

-- ECB main refinancing operations rate (effective dates).
INSERT INTO reference_rates (source, effective_date, rate, note) VALUES
    ('ECB_MRO', '2022-01-01', 0, 'in force on 2022-01-01 (RATES.md); earlier history not shipped'),
    ('ECB_MRO', '2022-07-27', 5000, NULL),
    ('ECB_MRO', '2022-09-14', 12500, NULL),
    ('ECB_MRO', '2022-11-02', 20000, NULL),
    ('ECB_MRO', '2022-12-21', 25000, NULL),
    ('ECB_MRO', '2023-02-08', 30000, NULL),
    ('ECB_MRO', '2023-03-22', 35000, NULL),
    ('ECB_MRO', '2023-05-10', 37500, NULL),
    ('ECB_MRO', '2023-06-21', 40000, NULL),
    ('ECB_MRO', '2023-08-02', 42500, NULL),
    ('ECB_MRO', '2023-09-20', 45000, NULL),
    ('ECB_MRO', '2024-06-12', 42500, NULL),
    ('ECB_MRO', '2024-09-18', 36500, NULL),
    ('ECB_MRO', '2024-10-23', 34000, NULL),
    ('ECB_MRO', '2024-12-18', 31500, NULL),
    ('ECB_MRO', '2025-02-05', 29000, NULL),
    ('ECB_MRO', '2025-03-12', 26500, NULL),
    ('ECB_MRO', '2025-04-23', 24000, NULL),
    ('ECB_MRO', '2025-06-11', 21500, NULL),
    ('ECB_MRO', '2026-06-17', 24000, '(unconfirmed) single weak source; replace via PUT /v1/reference-rates/ECB_MRO');

-- German Basiszinssatz (§ 247 BGB): one value per half-year, effective 1 Jan / 1 Jul.
INSERT INTO reference_rates (source, effective_date, rate, note) VALUES
    ('DE_BASISZINS', '2022-01-01', -8800, '2022-H1'),
    ('DE_BASISZINS', '2022-07-01', -8800, '2022-H2'),
    ('DE_BASISZINS', '2023-01-01', 16200, '2023-H1'),
    ('DE_BASISZINS', '2023-07-01', 31200, '2023-H2'),
    ('DE_BASISZINS', '2024-01-01', 36200, '2024-H1'),
    ('DE_BASISZINS', '2024-07-01', 33700, '2024-H2'),
    ('DE_BASISZINS', '2025-01-01', 22700, '2025-H1'),
    ('DE_BASISZINS', '2025-07-01', 12700, '2025-H2'),
    ('DE_BASISZINS', '2026-01-01', 12700, '2026-H1'),
    ('DE_BASISZINS', '2026-07-01', 15200, '2026-H2 (unconfirmed) single weak source; replace via PUT /v1/reference-rates/DE_BASISZINS');

-- Austrian Basiszinssatz (OeNB; § 456 UGB). It ignores ECB moves until they add
-- up to 0.5 pp; "(derived)" values are computed from that rule, not published figures.
INSERT INTO reference_rates (source, effective_date, rate, note) VALUES
    ('AT_BASISZINS', '2022-01-01', -6200, 'in force on 2022-01-01, until July 2022 (RATES.md); earlier history not shipped'),
    ('AT_BASISZINS', '2022-07-27', -1200, '(derived)'),
    ('AT_BASISZINS', '2022-09-14', 6300, '(derived)'),
    ('AT_BASISZINS', '2022-11-02', 13800, '(derived)'),
    ('AT_BASISZINS', '2022-12-21', 18800, NULL),
    ('AT_BASISZINS', '2023-02-08', 23800, '(derived)'),
    ('AT_BASISZINS', '2023-03-22', 28800, '(derived)'),
    ('AT_BASISZINS', '2023-06-21', 33800, NULL),
    ('AT_BASISZINS', '2023-09-20', 38800, NULL),
    ('AT_BASISZINS', '2024-09-18', 30300, NULL),
    ('AT_BASISZINS', '2024-12-18', 25300, NULL),
    ('AT_BASISZINS', '2025-03-12', 20300, NULL),
    ('AT_BASISZINS', '2025-06-11', 15300, NULL);

-- Business-to-business rules.
INSERT INTO statutory_rules (jurisdiction, mode, source, margin, fixed_rate, fixing_offset_days, compounding, valid_from, comp_currency, comp_tiers, legal_basis) VALUES
    ('GB', 'per_debt', 'BOE_BANK_RATE', 80000, NULL, -1, 'none', NULL, 'GBP', '[{"below": "1000", "amount": "40"}, {"below": "10000", "amount": "70"}, {"amount": "100"}]', 'Late Payment of Commercial Debts (Interest) Act 1998 s.1, s.4(2), s.5A; SI 2002/1675'),
    ('IE', 'per_debt', 'ECB_MRO', 80000, NULL, 0, 'none', NULL, 'EUR', '[{"below": "1000", "amount": "40"}, {"upto": "10000", "amount": "70"}, {"amount": "100"}]', 'S.I. No. 580/2012'),
    ('DE', 'half_yearly', 'DE_BASISZINS', 90000, NULL, 0, 'none', NULL, 'EUR', '[{"amount": "40"}]', '§ 288(2),(5) BGB; § 247 BGB'),
    ('AT', 'half_yearly', 'AT_BASISZINS', 92000, NULL, 0, 'none', NULL, 'EUR', '[{"amount": "40"}]', '§ 456, § 458 UGB'),
    ('FR', 'half_yearly', 'ECB_MRO', 100000, NULL, 0, 'none', NULL, 'EUR', '[{"amount": "40"}]', 'Code de commerce L441-10, D441-5'),
    ('NL', 'half_yearly', 'ECB_MRO', 80000, NULL, 0, 'yearly', NULL, 'EUR', '[{"amount": "40"}]', 'art. 6:119a BW'),
    ('IT', 'half_yearly', 'ECB_MRO', 80000, NULL, 0, 'none', NULL, 'EUR', '[{"amount": "40"}]', 'D.Lgs. 231/2002 art. 5, 6'),
    ('ES', 'half_yearly', 'ECB_MRO', 80000, NULL, 0, 'none', NULL, 'EUR', '[{"amount": "40"}]', 'Ley 3/2004 art. 7, 8'),
    ('HR', 'half_yearly', 'ECB_MRO', 80000, NULL, 0, 'none', '2023-01-01', 'EUR', '[{"amount": "40"}]', 'Zakon o obveznim odnosima art. 29'),
    ('US-NY', 'fixed', NULL, 0, 90000, 0, 'none', NULL, NULL, NULL, 'CPLR 5004(a)'),
    ('US-CA', 'fixed', NULL, 0, 100000, 0, 'none', NULL, NULL, NULL, 'Civ. Code § 3289(b)');
