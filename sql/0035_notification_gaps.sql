-- 0035_notification_gaps: four gaps in notifications and the limits API
-- (R4.6, R4.7, R5.1, R8.1), found by tests/integration/test_audit_gaps.py.
--
-- 1. The invoice run's invoice.issued said what the invoice is only by
--    omission: the final invoice's payload (creditd_invoice_final, 0019)
--    carries "kind": "final", the monthly one carried no "kind" at all, so a
--    consumer had to treat a missing field as "monthly". It now says
--    "kind": "monthly" (the invoice's kind, as invoices.kind). Full body of
--    0019's creditd_invoice_chunk_lane (the latest) with only that change.
--
-- 2. An approved limit_request.decided did not name the limit change the
--    approval created (R4.7: "R4.6 applies"), so the decision could not be
--    tied to the limit.changed / limit.change_scheduled notification that
--    follows from it (both name it as "change"). It now carries "change":
--    the change whose time the decision reports (its "applied" and
--    "effective_at"; the one limit_requests.change_id records), and
--    "changes": every change the approval created, ascending (a request that
--    raises one limit and lowers the other creates two: the raise applied at
--    once, the lowering scheduled after the notice). A decline names none.
--    Full body of 0026's creditd_limit_request_approve otherwise.
--
-- 3. A limit request could be created for a terminated account (201) and
--    then never be approved (creditd_set_limits: 422 "account is
--    terminated"). Creating one is now refused the same way, 422
--    invalid_state "account is terminated", as every other write to a
--    terminated account (creditd_set_limits, creditd_account_manual,
--    creditd_reactivation_request). The account is locked FOR KEY SHARE: a
--    termination (FOR UPDATE) waits for the request or the request for the
--    termination, and the usage path's row updates (FOR NO KEY UPDATE) are
--    not held up.
--
-- 4. (daemon/webhook.c, common/backoff.c: the webhook's retry delays are
--    computed by the daemon, with jitter; no SQL.)

-- (1) 0019's creditd_invoice_chunk_lane.
CREATE OR REPLACE FUNCTION creditd_invoice_chunk_lane(p_period date, p_issue date, p_prefix text,
                                                      p_limit int, p_at timestamptz, p_lane int,
                                                      p_lanes int)
RETURNS int LANGUAGE plpgsql
-- Joins of the chunk's temporary tables (no statistics) with the real
-- tables go by the real tables' keys, nested: a chunk reads about as much as
-- it writes, at the start and at the end of the run, whatever the
-- statistics say (interest_accruals is analyzed empty before the first
-- daily job fills it: a hash join then read every accrual for every chunk),
-- and without JIT (an estimate off by orders of magnitude compiles for
-- longer than the statement runs).
SET enable_hashjoin = off SET enable_mergejoin = off SET enable_bitmapscan = off SET jit = off AS $$
DECLARE
    pkey int := p_period - date '2000-01-01';
    after uuid;
    scanned uuid[];
    accs uuid[];
    first_no bigint;
    n int;
    series text := p_prefix || '-' || extract(year FROM p_issue)::int;
BEGIN
    IF p_lanes < 1 OR p_lanes > 15 OR p_lane < -1 OR p_lane >= p_lanes THEN
        RAISE EXCEPTION 'invoice run: no lane % of %', p_lane, p_lanes;
    END IF;
    -- one run per period and lane at a time, across daemons (R5.1, R9.2)
    IF p_lanes = 1 OR p_lane = -1 THEN
        PERFORM pg_advisory_xact_lock(7274100, pkey);
    ELSE
        PERFORM pg_advisory_xact_lock_shared(7274100, pkey);
        PERFORM pg_advisory_xact_lock(7274101, pkey * 256 + p_lanes * 16 + p_lane);
    END IF;
    IF p_lane >= 0 THEN
        SELECT c.after_account INTO after FROM invoice_run_cursors c
         WHERE c.period = p_period AND c.lanes = p_lanes AND c.lane = p_lane;
        scanned := ARRAY(SELECT id FROM accounts
                          WHERE id > coalesce(after, '00000000-0000-0000-0000-000000000000')
                          ORDER BY id LIMIT p_limit * p_lanes);
    END IF;
    IF cardinality(scanned) > 0 THEN
        INSERT INTO invoice_run_cursors (period, lanes, lane, after_account)
        VALUES (p_period, p_lanes, p_lane, scanned[cardinality(scanned)])
        ON CONFLICT (period, lanes, lane) DO UPDATE SET after_account = excluded.after_account;
        accs := scanned[p_lane * p_limit + 1 : (p_lane + 1) * p_limit];
        IF cardinality(accs) = 0 THEN
            RETURN -1;
        END IF;
    ELSIF p_lanes > 1 AND p_lane >= 0 THEN
        RETURN 0;   -- the lane is through; the sweep follows when all are
    ELSE
        accs := creditd_invoice_sweep_candidates(p_period, p_limit);
        IF accs IS NULL THEN
            RETURN 0;
        END IF;
    END IF;

    CREATE TEMP TABLE IF NOT EXISTS inv_run_acc (
        account_id uuid PRIMARY KEY, invoice_id uuid NOT NULL,
        exp smallint NOT NULL, currency text NOT NULL, terms int NOT NULL,
        credit bigint NOT NULL, terminated boolean NOT NULL
    ) ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE IF NOT EXISTS inv_run_lines (
        account_id uuid NOT NULL, invoice_id uuid NOT NULL, line_no int NOT NULL,
        kind text NOT NULL, service text, destination text, period date, ref uuid,
        rollup_id bigint,
        quantity bigint, unit_price bigint, exact bigint NOT NULL, amount bigint NOT NULL,
        description text NOT NULL,
        accrued bigint NOT NULL   -- what the posted month added to accrued_interest
    ) ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE IF NOT EXISTS inv_run_bill (
        account_id uuid NOT NULL, invoice_id uuid NOT NULL, rn int NOT NULL,
        exp smallint NOT NULL, currency text NOT NULL, terms int NOT NULL,
        credit bigint NOT NULL, terminated boolean NOT NULL,
        exact bigint NOT NULL, usage bigint NOT NULL, interest bigint NOT NULL,
        comp bigint NOT NULL
    ) ON COMMIT DELETE ROWS;

    -- locked in id order (a termination or a run for another period that
    -- billed some of them meanwhile has left them nothing to bill here: the
    -- lines below decide), read as locked
    INSERT INTO inv_run_acc (account_id, invoice_id, exp, currency, terms, credit, terminated)
    SELECT a.id, gen_random_uuid(), a.currency_exp, a.currency, a.payment_terms_days,
           greatest(a.credit_balance, 0), a.status = 'terminated'
      FROM accounts a WHERE a.id = ANY (accs) ORDER BY a.id FOR UPDATE OF a;
    -- (a statement after the locks: sees what a chunk that held them committed)
    DELETE FROM inv_run_acc c
     WHERE (SELECT 1 FROM invoices i WHERE i.account_id = c.account_id
               AND i.period = p_period AND i.kind = 'monthly' LIMIT 1) IS NOT NULL;

    -- Every line at once, numbered per account: usage of the period grouped
    -- by service and destination, usage of earlier periods that arrived late
    -- (R5.3; one open rollup per account, period, service and destination:
    -- usage_rollups_open), then the interest of earlier invoices' months (a
    -- correction where some was posted before) by invoice number and month,
    -- then fixed compensation once, by invoice number (R6.4, R6.5). Every
    -- read goes account by account through an index (LATERAL ... OFFSET 0),
    -- so that a chunk costs the same at the start and at the end of the run.
    INSERT INTO inv_run_lines (account_id, invoice_id, line_no, kind, service, destination,
                               period, ref, rollup_id, quantity, unit_price, exact, amount,
                               description, accrued)
    SELECT e.account_id, e.invoice_id,
           row_number() OVER (PARTITION BY e.account_id
                              ORDER BY e.s, CASE WHEN e.s < 2 THEN e.d END, e.t1, e.d,
                                       e.t2)::int,
           e.kind, e.service, e.destination, e.period, e.ref, e.rollup_id, e.quantity,
           e.unit_price, e.exact, e.amount, e.description, e.accrued
      FROM (SELECT u.account_id, u.invoice_id, u.s, u.d, u.t1, u.t2,
                   CASE WHEN u.s = 0 THEN 'usage' ELSE 'prior_usage' END AS kind,
                   u.t1 AS service, nullif(u.t2, '') AS destination,
                   CASE WHEN u.s = 0 THEN NULL ELSE u.d END AS period, NULL::uuid AS ref,
                   u.rollup_id, u.quantity, u.unit_price, u.exact,
                   creditd_round(u.exact, u.exp) AS amount,
                   CASE WHEN u.s = 0
                        THEN u.t1 || coalesce(' to ' || nullif(u.t2, ''), '')
                        ELSE 'Prior-period usage ' || to_char(u.d, 'YYYY-MM') || ': ' ||
                             u.t1 || coalesce(' to ' || nullif(u.t2, ''), '') END
                       AS description,
                   0::bigint AS accrued
              FROM (SELECT r.account_id, c1.invoice_id, c1.exp,
                           CASE WHEN r.period = p_period THEN 0 ELSE 1 END AS s,
                           r.period AS d, r.service AS t1, r.destination AS t2,
                           min(r.id) AS rollup_id, sum(r.quantity)::bigint AS quantity,
                           CASE WHEN min(r.unit_min) = max(r.unit_max) THEN min(r.unit_min) END
                               AS unit_price,
                           sum(r.amount)::bigint AS exact
                      FROM inv_run_acc c1
                      CROSS JOIN LATERAL (SELECT * FROM usage_rollups r
                                           WHERE r.account_id = c1.account_id
                                             AND r.invoice_id IS NULL
                                             AND r.period <= p_period OFFSET 0) r
                     GROUP BY r.account_id, c1.invoice_id, c1.exp, r.period, r.service,
                              r.destination) u
            UNION ALL
            SELECT o.account_id, c2.invoice_id, x.s, x.month, o.number, NULL,
                   CASE WHEN x.s = 3 THEN 'compensation'
                        WHEN x.posted_any THEN 'interest_correction' ELSE 'interest' END,
                   NULL, NULL, x.month, o.id, NULL, NULL, NULL, x.amount, x.amount,
                   CASE WHEN x.s = 3 THEN 'Fixed compensation for late payment of ' || o.number
                        ELSE CASE WHEN x.posted_any THEN 'Interest correction '
                                  ELSE 'Late-payment interest ' END
                             || to_char(x.month, 'YYYY-MM') || ' on ' || o.number END,
                   CASE WHEN x.s = 3 THEN 0 WHEN x.posted_any THEN x.amount ELSE x.micro END
              FROM inv_run_acc c2
              CROSS JOIN LATERAL (SELECT * FROM invoices o
                                   WHERE o.account_id = c2.account_id OFFSET 0) o
              CROSS JOIN LATERAL (
                  SELECT 2 AS s, a.month, a.micro, a.posted_any,
                         creditd_round(a.micro, o.currency_exp) - a.posted AS amount
                    FROM interest_accruals a
                   WHERE a.invoice_id = o.id AND a.month <= p_period
                  UNION ALL
                  SELECT 3, NULL::date, 0::bigint, false, o.compensation_due
                   WHERE o.compensation_due > 0 AND NOT o.compensation_posted) x
             WHERE x.amount <> 0) e;

    -- No invoice for an account with nothing to bill (R5.3); the invoices'
    -- totals; their numbers' order (gap-free, R5.2: account order)
    INSERT INTO inv_run_bill (account_id, invoice_id, rn, exp, currency, terms, credit,
                              terminated, exact, usage, interest, comp)
    SELECT c.account_id, c.invoice_id, row_number() OVER (ORDER BY c.account_id)::int, c.exp,
           c.currency, c.terms, c.credit, c.terminated, t.exact, t.usage, t.interest, t.comp
      FROM inv_run_acc c
      JOIN (SELECT l.account_id,
                   coalesce(sum(l.exact) FILTER (WHERE l.ref IS NULL), 0)::bigint AS exact,
                   coalesce(sum(l.amount) FILTER (WHERE l.ref IS NULL), 0)::bigint AS usage,
                   coalesce(sum(l.amount) FILTER (WHERE l.ref IS NOT NULL
                                                    AND l.kind <> 'compensation'), 0)::bigint
                       AS interest,
                   coalesce(sum(l.amount) FILTER (WHERE l.kind = 'compensation'), 0)::bigint
                       AS comp
              FROM inv_run_lines l GROUP BY l.account_id) t ON t.account_id = c.account_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        RETURN -1;
    END IF;

    -- what was posted leaves the accruals (a later change of interest is a
    -- correction: posted_any); compensation is posted once
    UPDATE interest_accruals x SET posted = x.posted + l.amount, posted_any = true
      FROM inv_run_lines l
     WHERE l.kind IN ('interest', 'interest_correction') AND x.invoice_id = l.ref
       AND x.month = l.period;
    -- the earlier invoices' accrued, unposted interest (R4.2: what
    -- creditd_refresh_accrued computes; a posted month adds nothing until it
    -- changes) and compensation
    UPDATE invoices o SET accrued_interest = o.accrued_interest - s.accrued,
           compensation_posted = o.compensation_posted OR s.comp
      FROM (SELECT ref, sum(accrued)::bigint AS accrued,
                   bool_or(kind = 'compensation') AS comp
              FROM inv_run_lines WHERE ref IS NOT NULL GROUP BY ref) s
     WHERE o.id = s.ref;
    UPDATE usage_rollups r SET invoice_id = l.invoice_id
      FROM inv_run_lines l
     WHERE r.id = l.rollup_id;
    -- (only invoicing writes them, with the account locked; looked up
    -- account by account: the statistics may know no row of the period, and
    -- a plan that reads all of them once per chunk makes the run quadratic)
    INSERT INTO invoiced_periods (account_id, period)
    SELECT c.account_id, p_period FROM inv_run_bill c
     WHERE (SELECT 1 FROM invoiced_periods p
             WHERE p.account_id = c.account_id AND p.period = p_period LIMIT 1) IS NULL;
    -- exposure (R4.2), each account once: billed usage leaves unbilled_usage
    -- (exact amounts), the invoice's open balance joins open_balance, posted
    -- interest leaves accrued_interest (the new invoice accrues none)
    UPDATE accounts a SET
        unbilled_usage = a.unbilled_usage - c.exact,
        credit_balance = a.credit_balance - t.applied,
        open_balance = a.open_balance + t.total - t.applied,
        accrued_interest = CASE WHEN c.interest <> 0 OR c.comp <> 0
                                THEN (SELECT coalesce(sum(o.accrued_interest), 0)
                                        FROM invoices o WHERE o.account_id = a.id)
                                ELSE a.accrued_interest END,
        updated_at = p_at
      FROM inv_run_bill c,
           LATERAL (SELECT c.usage + c.interest + c.comp AS total,
                           least(c.credit, greatest(c.usage + c.interest + c.comp, 0))
                               AS applied) t
     WHERE a.id = c.account_id;

    -- The numbered part, last: the series stays locked until the commit.
    first_no := creditd_reserve_numbers(series, n);
    -- every invoice once, with its final totals and the account credit applied
    -- at issue (R5.3): at most its total, per component in the order of R6.1;
    -- due at once when issued to a terminated account (R5.6)
    INSERT INTO invoices (id, number, account_id, kind, period, issue_date, due_date, currency,
                          currency_exp, usage_total, interest_total, compensation_total, total,
                          credit_applied, accelerated_due_date, created_at)
    SELECT c.invoice_id, creditd_number(series, first_no + c.rn - 1),
           c.account_id, 'monthly', p_period, p_issue,
           p_issue + c.terms, c.currency, c.exp, c.usage, c.interest, c.comp,
           c.usage + c.interest + c.comp,
           least(c.credit, greatest(c.usage + c.interest + c.comp, 0)),
           CASE WHEN c.terminated AND c.terms > 0 THEN p_issue END, p_at
      FROM inv_run_bill c ORDER BY c.rn;
    INSERT INTO invoice_lines (invoice_id, line_no, kind, service, destination, period,
                               ref_invoice, quantity, unit_price, exact, amount, description)
    SELECT l.invoice_id, l.line_no, l.kind, l.service, l.destination, l.period, l.ref,
           l.quantity, l.unit_price, l.exact, l.amount, l.description
      FROM inv_run_lines l ORDER BY l.invoice_id, l.line_no;
    INSERT INTO payment_allocations (payment_id, invoice_id, component, amount, received_at)
    SELECT NULL, s.invoice_id, k.component, k.amount, p_at
      FROM (SELECT c.invoice_id, c.credit AS x_all,
                   -- outstanding per component at issue (creditd_invoice_outstanding)
                   least(greatest(c.comp, 0), t.total) AS o_c,
                   least(greatest(c.interest, 0),
                         t.total - least(greatest(c.comp, 0), t.total)) AS o_i,
                   t.total
              FROM inv_run_bill c,
                   LATERAL (SELECT greatest(c.usage + c.interest + c.comp, 0) AS total) t
             WHERE c.credit > 0 AND t.total > 0) s,
           LATERAL (SELECT least(s.x_all, s.o_c) AS x_c) a,
           LATERAL (SELECT least(s.x_all - a.x_c, s.o_i) AS x_i) b,
           LATERAL (SELECT least(s.x_all - a.x_c - b.x_i, s.total - s.o_c - s.o_i) AS x_u) d,
           LATERAL (VALUES (1, 'compensation', a.x_c), (2, 'interest', b.x_i),
                           (3, 'usage', d.x_u)) k(ord, component, amount)
     WHERE k.amount > 0
     ORDER BY s.invoice_id, k.ord;
    -- (payloads: to_jsonb of a row is jsonb_build_object's object, in less
    -- time, as in 0012)
    INSERT INTO notifications (account_id, kind, created_at, payload)
    SELECT r.account, 'invoice.issued', p_at, to_jsonb(r)
      FROM (SELECT c.account_id AS account, c.invoice_id AS invoice,
                   creditd_number(series, first_no + c.rn - 1) AS number,
                   'monthly'::text AS kind,   -- (1) as the final invoice's "final"
                   to_char(p_period, 'YYYY-MM') AS period,
                   creditd_amount(c.usage + c.interest + c.comp) AS total,
                   c.currency, p_issue AS issue_date,
                   -- the date the invoice is due: at issue for a terminated account
                   CASE WHEN c.terminated THEN p_issue ELSE p_issue + c.terms END AS due_date
              FROM inv_run_bill c ORDER BY c.rn) r;
    PERFORM pg_notify('creditd_outbox', '');
    RETURN n;
END
$$;

-- (2) 0026's creditd_limit_request_approve.
CREATE OR REPLACE FUNCTION creditd_limit_request_approve(p_id uuid, p_effective timestamptz,
                                              p_notice_days int, p_thresholds int[],
                                              p_at timestamptz, p_actor text, p_rid text,
                                              OUT applied boolean, OUT effective_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    q limit_requests;
    s record;
    before bigint;
    cid bigint;
    cids bigint[];
BEGIN
    SELECT * INTO q FROM limit_requests WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'limit request not found' USING ERRCODE = 'CR404';
    END IF;
    IF q.status <> 'pending' THEN
        RAISE EXCEPTION 'limit request is already %', q.status USING ERRCODE = 'CR422';
    END IF;
    -- (2) the account's changes so far; locked first (as creditd_set_limits
    -- does next), so that only this approval adds changes to it until the
    -- commit
    PERFORM 1 FROM accounts WHERE id = q.account_id FOR UPDATE;
    SELECT coalesce(max(id), 0) INTO before FROM limit_changes WHERE account_id = q.account_id;
    SELECT * INTO s FROM creditd_set_limits(q.account_id, NULL, q.set_monthly, q.monthly_limit,
        q.set_total, q.total_limit, p_effective, false, 'limit request: ' || q.note,
        p_notice_days, p_thresholds, p_at, p_actor, p_rid);
    applied := s.applied;
    effective_at := s.effective_at;
    -- (2) what it created: its own rows, not the parts of superseded
    -- changes that creditd_set_limits schedules again (those keep their
    -- reason, actor, request and creation time); the last one is the change
    -- the decision's time belongs to (scheduled after one applied at once)
    SELECT array_agg(c.id ORDER BY c.id) INTO cids FROM limit_changes c
     WHERE c.account_id = q.account_id AND c.id > before AND c.created_at = p_at
       AND c.reason = 'limit request: ' || q.note AND c.actor = p_actor
       AND c.request_id IS NOT DISTINCT FROM p_rid;
    cid := cids[cardinality(cids)];
    UPDATE limit_requests SET status = 'approved', decided_at = p_at, decided_by = p_actor,
           change_id = cid
     WHERE id = p_id;
    PERFORM creditd_notify(q.account_id, 'limit_request.decided', p_at,
        jsonb_build_object('account', q.account_id, 'request', p_id, 'status', 'approved',
                           'applied', applied,
                           'effective_at', creditd_rfc3339(effective_at),
                           'change', cid, 'changes', coalesce(to_jsonb(cids), '[]'::jsonb)));
    PERFORM creditd_audit(p_at, p_actor, 'limit_request.approve', 'limit_request', p_id::text,
                          jsonb_build_object('status', 'pending'),
                          jsonb_build_object('status', 'approved', 'applied', applied,
                                             'effective_at', effective_at, 'change', cid),
                          p_rid);
END
$$;

-- (3) A new limit request (R4.7) of a live account; CR404 when there is no
-- such account (nothing inserted), CR422 when it is terminated.
CREATE FUNCTION creditd_limit_request_create(p_request uuid, p_id uuid, p_ext text,
                                             p_set_m boolean, p_m bigint, p_set_t boolean,
                                             p_t bigint, p_note text, p_at timestamptz,
                                             p_actor text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    acc uuid;
    st text;
BEGIN
    SELECT a.id, a.status INTO acc, st FROM accounts a
     WHERE a.id = p_id OR a.external_ref = p_ext FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account not found' USING ERRCODE = 'CR404';
    END IF;
    IF st = 'terminated' THEN
        RAISE EXCEPTION 'account is terminated' USING ERRCODE = 'CR422';
    END IF;
    INSERT INTO limit_requests (id, account_id, set_monthly, monthly_limit, set_total,
                                total_limit, note, created_at, created_by)
    VALUES (p_request, acc, p_set_m, p_m, p_set_t, p_t, p_note, p_at, p_actor);
END
$$;
