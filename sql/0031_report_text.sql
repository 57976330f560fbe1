-- 0031_report_text: CSV cells written by PostgreSQL (R7.2, R7.3).
--
-- The exposure report lists every account. The daemon built it row by row
-- on its event loop: at 100,000 accounts the JSON form held the loop (and
-- every /v1/authorize) for up to 1.6 s and took the daemon to 345 MB, the
-- CSV form up to 0.17 s, and the daemon kept up to 344 MB afterwards
-- (bench/reports). PostgreSQL now writes the rows as JSON and CSV text in
-- pages of accounts (daemon/http_reports.c), and the daemon only copies the
-- pages into the reply.
--
-- The cells follow daemon/http_format.c exactly (RFC 4180 quoting; text
-- cells that a spreadsheet would run as a formula get a leading apostrophe,
-- OWASP "CSV injection"; amounts are never guarded).

-- One cell: quoted when it holds a comma, a quote, CR or LF; NULL is empty.
CREATE FUNCTION creditd_csv_field(p text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p IS NULL THEN ''
                WHEN translate(p, E',"\r\n', '') <> p
                    THEN '"' || replace(p, '"', '""') || '"'
                ELSE p END
$$;

-- A text cell: as creditd_csv_field, after the formula guard.
CREATE FUNCTION creditd_csv_text(p text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT creditd_csv_field(CASE WHEN left(p, 1) IN ('=', '+', '-', '@', E'\t', E'\r')
                                  THEN '''' || p ELSE p END)
$$;
