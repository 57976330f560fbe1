#!/usr/bin/env python3
"""Audit of operations (SPEC R9.2, R9.3): several daemons, database
connections lost under a running daemon, SIGTERM with clients waiting.

Not duplicated here: test_cluster.py (create/suspend/limit seen by the other
daemon, leadership and takeover, two daemons ingesting), test_daemon_ops.py
(SIGHUP, SIGTERM when idle, PostgreSQL stopped and started), test_faults.py.

Defects these tests found (fixed): a cache reload cut short by a second
connection loss was never redone (daemon never ready again, test 3); a
leader whose lock session ended kept scheduling until its next 2 s attempt
(test 5); the daemon running a daily job authorized accounts the job had
already suspended, until the job's end, or for good when the job failed
(tests 10, 11; test 11: while the job still runs).

Each test starts its own daemons on the module's cluster with their own
application_name, so that the test can end exactly their database sessions
(pg_terminate_backend) without touching the module's daemon. All run on the
real clock (no test clock)."""

import http.client
import json
import os
import subprocess
import threading
import time
import uuid

import harness

NOW = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))


wait_for = harness.wait_for


class Locker:
    """A psql session holding a lock in an open transaction until release()."""

    def __init__(self, case, name, lock_sql, dbname=harness.DEFAULT_DBNAME):
        c = case.cluster
        self.case, self.name = case, name
        self.proc = subprocess.Popen(
            [os.path.join(c.bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h",
             c.sockdir, "-p", str(c.port), "-U", harness.PG_SUPERUSER, "-d",
             dbname, "-f", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.proc.stdin.write(f"SET application_name = '{name}';\nBEGIN;\n{lock_sql};\n")
        self.proc.stdin.flush()
        case.addCleanup(self.release)
        case.wait_for_sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                          f"'{name}' AND state = 'idle in transaction'",
                          f"{name} never took its lock")

    def release(self):
        if self.proc.poll() is None and not self.proc.stdin.closed:
            self.proc.stdin.write("COMMIT;\n")
            self.proc.stdin.close()
            self.proc.wait(30)


class AuditOps(harness.DaemonTestCase):
    TEST_CLOCK = None

    def end_sessions(self, app_name):
        """Ends every database session of one daemon (a lost connection)."""
        return int(self.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                             f"WHERE application_name = '{app_name}'").strip())

    def account(self, d, ref, **limits):
        body = {"external_ref": ref, "name": ref, "currency": "EUR", "jurisdiction": "DE"}
        body.update(limits)
        r = d.request("POST", "/v1/accounts", body, token="finance")
        self.assertStatus(r, 201)
        return r.json

    @staticmethod
    def authorize(d, ref, amount="1"):
        """The answer of /v1/authorize, or None while the daemon answers 503
        (its cache reloading)."""
        r = d.request("POST", "/v1/authorize", {"account": "ext:" + ref, "amount": amount},
                      token="platform")
        if r.status == 503:
            return None
        assert r.status == 200, r.text
        return r.json

    def seen(self, d, ref, timeout, what, **expect):
        """Waits until d's /v1/authorize for ref shows every expect field."""
        def ok():
            a = self.authorize(d, ref)
            return a is not None and all(a.get(k) == v for k, v in expect.items())
        t0 = time.monotonic()
        try:
            wait_for(ok, timeout, what)
        except AssertionError:
            self.fail(f"{what}: last answer {self.authorize(d, ref)}")
        return time.monotonic() - t0

    def ingest(self, d, ref, amount, n=1):
        body = [{"id": str(uuid.uuid4()), "account": "ext:" + ref, "amount": amount,
                 "occurred_at": NOW, "service": "sms"} for _ in range(n)]
        r = d.request("POST", "/v1/events", body, token="platform")
        self.assertStatus(r, 200)
        return r.json

    def exits_by_itself(self, d):
        """After a SIGTERM: the daemon exits 0 on its own (Daemon.stop would
        send a second SIGTERM, which exits at once)."""
        try:
            d.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.fail("no exit within 15 s of SIGTERM\n" + d.log_tail())
        self.assertEqual(d.proc.returncode, 0, d.log_tail())
        self.assertEqual(d.stop(), 0)  # the sanitizer check of the log

    # ---- R9.2: every kind of change reaches the other daemon within 1 s

    def test_1_change_kinds_reach_the_other_daemon(self):
        a = self.named_daemon("ops_a1")
        b = self.named_daemon("ops_b1")
        self.account(a, "OPS-K1", monthly_limit="10", total_limit="100")
        self.seen(b, "OPS-K1", 1.0, "B to know the new account", status="active",
                  monthly_remaining="10", total_remaining="100")
        # usage on A: 4 x 1.50 = 6.00; B's headroom 10 - 6 = 4, 100 - 6 = 94
        self.assertEqual(self.ingest(a, "OPS-K1", "1.50", 4)["accepted"], 4)
        self.seen(b, "OPS-K1", 1.0, "B to see A's usage", monthly_remaining="4",
                  total_remaining="94")
        # 4 more on A reach the monthly limit (6 + 4 = 10 >= 10): suspended by events
        self.ingest(a, "OPS-K1", "1", 4)
        self.seen(b, "OPS-K1", 1.0, "B to see the suspension by events", status="suspended",
                  allowed=False, reason="suspended")
        # the limit raised on A lifts it (R4.6): 20 - 10 = 10 left
        r = a.request("PUT", "/v1/accounts/ext:OPS-K1/limits",
                      {"monthly_limit": "20", "reason": "more"}, token="finance")
        self.assertStatus(r, 200)
        self.seen(b, "OPS-K1", 1.0, "B to see the lift", status="active", allowed=True,
                  monthly_remaining="10")
        # the limit removed on A: no monthly remaining on B
        r = a.request("PUT", "/v1/accounts/ext:OPS-K1/limits",
                      {"monthly_limit": None, "reason": "none"}, token="finance")
        self.assertStatus(r, 200)
        self.seen(b, "OPS-K1", 1.0, "B to see the removed limit", monthly_remaining=None,
                  total_remaining="90")
        # terminated on A: B refuses with status terminated
        r = a.request("POST", "/v1/accounts/ext:OPS-K1/terminate", {"note": "bye"},
                      token="finance")
        self.assertStatus(r, 200)
        self.seen(b, "OPS-K1", 1.0, "B to see the termination", status="terminated",
                  allowed=False)

    # ---- R9.2/R9.3: B's database sessions end; changes meanwhile are not lost

    def test_2_changes_while_the_listen_connection_is_down(self):
        a = self.named_daemon("ops_a2")
        b = self.named_daemon("ops_b2")
        self.account(a, "OPS-L1", monthly_limit="50")
        self.account(a, "OPS-L2", monthly_limit="50")
        self.seen(b, "OPS-L1", 1.0, "B to know OPS-L1", status="active")
        self.seen(b, "OPS-L2", 1.0, "B to know OPS-L2", status="active")
        self.assertGreater(self.end_sessions("ops_b2"), 0)
        # at once, while B reconnects (backoff 100 ms) and listens to nobody
        r = a.request("POST", "/v1/accounts/ext:OPS-L1/suspend", {"note": "x"}, token="finance")
        self.assertStatus(r, 200)
        self.account(a, "OPS-L3", monthly_limit="7")
        # B reloads on reconnect: it shows all three within a few seconds
        self.seen(b, "OPS-L1", 5.0, "B to see the suspension made while away",
                  status="suspended")
        self.seen(b, "OPS-L3", 5.0, "B to know the account made while away",
                  monthly_remaining="7")
        # and listens again: a later change arrives within a second
        r = a.request("POST", "/v1/accounts/ext:OPS-L2/suspend", {"note": "x"}, token="finance")
        self.assertStatus(r, 200)
        self.seen(b, "OPS-L2", 1.0, "B to see a change after its return", status="suspended")

    # ---- R9.3: a reload cut short by a second loss is redone

    def test_3_reload_cut_short_by_a_second_loss(self):
        c = self.named_daemon("ops_c3")
        self.account(c, "OPS-R1", monthly_limit="30")
        self.seen(c, "OPS-R1", 1.0, "C to know OPS-R1", status="active")
        # the reload after the first loss waits for this lock
        locker = Locker(self, "ops_locker3", "LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        self.assertGreater(self.end_sessions("ops_c3"), 0)
        self.wait_for_sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                          "'ops_c3' AND wait_event_type = 'Lock' AND query LIKE "
                          "'%FROM account_view WHERE seq > $1%'",
                          "C's cache reload never waited for the lock")
        # ... and its connection is lost too
        self.assertGreater(self.end_sessions("ops_c3"), 0)
        time.sleep(0.5)
        locker.release()
        # C reconnects and reloads: ready again, authorizing from a full cache
        try:
            c.wait_ready(timeout=10)
        except harness.HarnessError as e:
            self.fail("C never ready again after its reload was cut short: "
                      + str(e).splitlines()[0])
        self.seen(c, "OPS-R1", 1.0, "C to authorize again", status="active",
                  monthly_remaining="30")
        self.assertEqual(c.stop(), 0, c.log_tail())

    # ---- R9.3: SIGTERM with a client waiting for its batch to commit

    def waiting_ingest(self, n, ref, amount):
        """Daemon ops_<n> with account ref, whose row a Locker holds, and one
        event of `amount` POSTed in the background, its batch waiting for the
        row lock. Returns (daemon, locker, event id, thread, answer dict)."""
        app = f"ops_{n}"
        d = self.named_daemon(app)
        acc = self.account(d, ref, monthly_limit="30")
        self.seen(d, ref, 1.0, f"{app} to know {ref}", status="active")
        locker = Locker(self, f"ops_locker_{n}",
                        f"SELECT 1 FROM accounts WHERE id = '{acc['id']}' FOR UPDATE")
        eid = str(uuid.uuid4())
        ev = [{"id": eid, "account": "ext:" + ref, "amount": amount, "occurred_at": NOW,
               "service": "sms"}]
        t, out = self.request_in_background(d, "POST", "/v1/events", ev, "platform")
        self.wait_for_sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                          f"'{app}' AND wait_event_type = 'Lock'",
                          "the ingest batch never waited for the locked account")
        return d, locker, eid, t, out

    def test_4_sigterm_answers_a_waiting_ingest(self):
        d, locker, eid, t, out = self.waiting_ingest("d4", "OPS-T1", "2.50")
        d.signal(15)
        time.sleep(0.5)
        self.assertTrue(d.is_running(), "D exited with a batch in flight\n" + d.log_tail())
        locker.release()
        t.join(30)
        self.assertIn("r", out, "the waiting client got no answer")
        self.assertEqual(out["r"][0], 200, out["r"])
        self.assertEqual(json.loads(out["r"][1])["accepted"], 1, out["r"])
        self.exits_by_itself(d)
        # acknowledged, so committed: 2.50 EUR = 2500000 micro-units
        self.assertEqual(self.psql(f"SELECT amount FROM events WHERE id = '{eid}'").strip(),
                         "2500000")

    # ---- R9.2: a leader whose lock session ends stops scheduling at once

    def lock_holder(self):
        """(application_name, pid) of the session holding the scheduler lock
        (pg_advisory_lock(7274200): classid 0, objid 7274200), or None."""
        out = self.psql("SELECT coalesce(a.application_name, ''), a.pid FROM pg_locks l "
                        "JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' "
                        "AND l.classid = 0 AND l.objid = 7274200 AND l.granted").strip()
        return tuple(out.split("|")) if out else None

    def test_5_leader_losing_its_lock_stops_at_once(self):
        daemons = {"": self.daemon, "ops_a5": self.named_daemon("ops_a5"),
                   "ops_b5": self.named_daemon("ops_b5")}
        leaders = lambda: sum(harness.metric(d, "creditd_scheduler_leader")
                              for d in daemons.values())
        wait_for(lambda: leaders() == 1 and self.lock_holder() is not None, 6.0,
                 "exactly one leader")
        name, pid = self.lock_holder()
        old = daemons[name]
        self.assertEqual(harness.metric(old, "creditd_scheduler_leader"), 1)
        # its connection 0 ends (the lock with it); the daemon keeps running
        self.psql(f"SELECT pg_terminate_backend({pid})")
        wait_for(lambda: self.psql(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}")
                 .strip() == "0", 5.0, "the session to end")
        # the old leader stops within 0.5 s (not at its next 2 s lock attempt),
        # and there is never more than one leader while another takes over
        wait_for(lambda: harness.metric(old, "creditd_scheduler_leader") == 0, 0.5,
                 "the old leader to stop scheduling")
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            self.assertLessEqual(leaders(), 1, "two schedulers at once")
            time.sleep(0.05)
        wait_for(lambda: leaders() == 1, 5.0, "a new leader")

    # ---- R9.3: SIGTERM while a job runs and its client waits

    def test_6_sigterm_during_a_waited_job(self):
        d = self.named_daemon("ops_d6")
        self.account(d, "OPS-J1", monthly_limit="30")
        locker = Locker(self, "ops_locker6", "LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        t, out = self.request_in_background(d, "POST", "/v1/jobs/daily?wait=true", "{}", "ops")
        self.wait_for_sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                          "'ops_d6' AND wait_event_type = 'Lock'",
                          "the daily job never waited for the lock")
        d.signal(15)
        time.sleep(0.5)
        self.assertTrue(d.is_running(), "D exited with a job running\n" + d.log_tail())
        locker.release()
        t.join(30)
        self.assertIn("r", out, "the waiting client got no answer")
        self.assertEqual(out["r"][0], 202, out["r"])
        job = json.loads(out["r"][1])
        self.assertEqual((job["kind"], job["status"]), ("daily", "succeeded"), job)
        self.exits_by_itself(d)
        self.assertEqual(self.psql(f"SELECT status FROM jobs WHERE id = '{job['id']}'").strip(),
                         "succeeded")

    # ---- R9.3: SIGHUP reloads the schedule; a broken file changes nothing

    def invoice_run_at(self, d):
        r = d.request("GET", "/v1/schedule", token="ops")
        self.assertStatus(r, 200)
        runs = [x["at"] for x in r.json["next_runs"] if x["job"] == "invoice_run"]
        self.assertEqual(len(runs), 1, r.json)
        return runs[0]

    def test_7_sighup_moves_the_invoice_run(self):
        d = self.named_daemon("ops_e7")
        at = wait_for(lambda: self.invoice_run_at(d), 5.0, "a scheduled invoice run")
        # the default 02:00 (billing zone UTC) on day 1 of some month
        self.assertRegex(at, r"^\d{4}-\d{2}-01T02:00:00Z$")
        d.write_config({"billing": {"invoice_run_day": 3, "invoice_run_time": "03:30"}})
        mark = d.log_size()
        d.reload()
        d.wait_log(r"reload: configuration .* reloaded", start=mark)
        # the same month, day 3 at 03:30
        self.assertEqual(self.invoice_run_at(d), at[:8] + "03T03:30:00Z")
        # an invalid day: refused with the key named, the schedule kept
        d.write_config({"billing": {"invoice_run_day": 11, "invoice_run_time": "04:00"}})
        mark = d.log_size()
        d.reload()
        m = d.wait_log(r"reload: .*keeping the running configuration", start=mark)
        self.assertIn("billing.invoice_run_day", m.group(0))
        self.assertEqual(self.invoice_run_at(d), at[:8] + "03T03:30:00Z")
        self.assertEqual(d.stop(), 0, d.log_tail())

    # ---- R9.6: two daemons migrating one empty database at once

    def test_8_concurrent_migrations(self):
        self.cluster.createdb("ops_migrate8")
        d = harness.Daemon(self.cluster.conninfo("ops_migrate8"), test_clock=None)
        self.addCleanup(d.destroy)
        procs = [subprocess.Popen([d.binary, "--config", d.config_path, "migrate"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, cwd=d.workdir)
                 for _ in range(2)]
        outs = [p.communicate(timeout=120)[0] for p in procs]
        self.assertEqual([p.returncode for p in procs], [0, 0], outs)
        # every migration applied exactly once, in order: versions 1..N, N rows
        rows = self.cluster.psql("SELECT count(*), count(DISTINCT version), min(version), "
                                 "max(version) FROM schema_migrations",
                                 dbname="ops_migrate8").strip().split("|")
        n = int(rows[3])
        self.assertEqual(rows, [str(n), str(n), "1", str(n)])
        self.assertTrue(all(f"schema at version {n}" in o for o in outs), outs)

    # ---- R9.3: draining when the waiting batch's connection is lost

    def test_9_sigterm_then_connection_lost(self):
        d, locker, eid, t, out = self.waiting_ingest("f9", "OPS-F1", "1")
        d.signal(15)
        time.sleep(0.3)
        self.assertGreater(self.end_sessions("ops_f9"), 0)
        t.join(30)
        # the outcome is unknown to the daemon: 503 with Retry-After, never 200
        self.assertIn("r", out, "the waiting client got no answer")
        self.assertEqual(out["r"][0], 503, out["r"])
        self.assertEqual(json.loads(out["r"][1])["error"]["code"], "unavailable", out["r"])
        self.assertRegex(out["r"][2] or "", r"^[0-9]+$")
        self.exits_by_itself(d)
        locker.release()
        self.assertEqual(self.psql(f"SELECT count(*) FROM events WHERE id = '{eid}'").strip(),
                         "0")

    # ---- R9.2/R4: a daily job that fails after committing suspensions

    def setup_overdue(self, sql):
        # OD-1: a December invoice of 100.00 EUR issued 1 January, due 16
        # January, unpaid; on 5 February 20 days overdue (> 14: suspended)
        sql("""
            INSERT INTO accounts (id, external_ref, name, currency, jurisdiction,
                                  contractual_rate, payment_terms_days, usage_month, created_at,
                                  updated_at, last_event_at, open_balance)
            VALUES (md5('acc1')::uuid, 'OD-1', 'Overdue 1', 'EUR', 'DE', 120000, 15,
                    date '2026-02-01', '2025-10-01T00:00Z', '2025-10-01T00:00Z',
                    '2025-12-15T12:00Z', 100000000);
            INSERT INTO invoices (id, number, account_id, kind, period, issue_date, due_date,
                                  currency, currency_exp, usage_total, total, created_at)
            VALUES (md5('inv1')::uuid, 'INV-2026-000001', md5('acc1')::uuid, 'monthly',
                    date '2025-12-01', date '2026-01-01', date '2026-01-16', 'EUR', 2,
                    100000000, 100000000, '2026-01-01T02:00Z');
            INSERT INTO invoice_lines (invoice_id, line_no, kind, service, quantity, unit_price,
                                       exact, amount, description)
            SELECT id, 1, 'usage', 'sms', 1, total, total, total, 'sms' FROM invoices;
            INSERT INTO invoiced_periods SELECT account_id, period FROM invoices;
            INSERT INTO number_series VALUES ('INV-2026', 1);
            INSERT INTO invoice_runs VALUES ('2025-12-01', '2026-01-01T02:00Z', 1),
                                            ('2026-01-01', '2026-02-01T02:00Z', 0);""")

    def test_10_failed_daily_job_leaves_no_stale_cache(self):
        db = "ops_daily10"
        self.cluster.createdb(db)
        sql = lambda q: self.cluster.psql(q, dbname=db).strip()
        d = harness.Daemon(self.cluster.conninfo(db) + " application_name=ops_g10",
                           test_clock="2026-02-05T10:00:00Z")
        self.addCleanup(d.destroy)
        d.migrate()
        self.setup_overdue(sql)
        # the job's last step (inactivity) fails after the overdue step committed
        sql("""
            CREATE OR REPLACE FUNCTION creditd_daily_inactivity(p_day date, p_months int,
                                                                p_at timestamptz)
            RETURNS SETOF uuid LANGUAGE plpgsql AS $f$
            BEGIN RAISE EXCEPTION 'injected failure'; END $f$;""")
        # started after 00:05 of 5 February: the day's job runs at once
        d.start()
        wait_for(lambda: sql("SELECT status FROM jobs WHERE kind = 'daily'") == "failed", 20.0,
                 "the daily job to fail")
        self.assertEqual(sql("SELECT status, reasons FROM accounts WHERE external_ref = 'OD-1'"),
                         "suspended|{overdue}")
        # the daemon that ran it authorizes from what the database holds
        self.seen(d, "OD-1", 2.0, "the job's daemon to see the suspension", status="suspended",
                  allowed=False, reason="suspended")

    def held_daily_job(self, n, lock_key, config=None):
        """A daemon on database ops_daily<n> (setup_overdue's OD-1) whose
        daily job runs at start and stops in its last step (inactivity),
        waiting for advisory lock lock_key that a Locker holds, after the
        overdue step (OD-1 suspended) committed. Returns (daemon, sql,
        locker)."""
        db = f"ops_daily{n}"
        self.cluster.createdb(db)
        sql = lambda q: self.cluster.psql(q, dbname=db).strip()
        d = harness.Daemon(self.cluster.conninfo(db) + f" application_name=ops_g{n}",
                           config=config, test_clock="2026-02-05T10:00:00Z")
        self.addCleanup(d.destroy)
        d.migrate()
        self.setup_overdue(sql)
        sql(f"""
            CREATE OR REPLACE FUNCTION creditd_daily_inactivity(p_day date, p_months int,
                                                                p_at timestamptz)
            RETURNS SETOF uuid LANGUAGE plpgsql AS $f$
            BEGIN PERFORM pg_advisory_xact_lock({lock_key}); END $f$;""")
        gate = Locker(self, f"ops_gate{n}", f"SELECT pg_advisory_xact_lock({lock_key})",
                      dbname=db)
        d.start()  # after 00:05 of 5 February: the day's job runs at once
        self.wait_for_sql(self.INACTIVITY_WAITING,
                          "the daily job never reached its inactivity step")
        return d, sql, gate

    INACTIVITY_WAITING = ("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                          "AND query LIKE '%creditd_daily_inactivity%'")

    def test_11_running_daily_job_updates_its_own_daemons_cache(self):
        """R3.6: the cache is updated on every commit, also the commits of a
        job still running in the same daemon (its overdue suspensions)."""
        # two connections: the job's held step must not sit on connection 0,
        # which LISTENs (notifications wait while its backend is busy)
        d, sql, gate = self.held_daily_job(11, 4711, {"database": {"pool_size": "2"}})
        self.assertEqual(sql("SELECT status FROM jobs WHERE kind = 'daily'"), "running")
        self.assertEqual(sql("SELECT status, reasons FROM accounts WHERE external_ref = 'OD-1'"),
                         "suspended|{overdue}")
        self.seen(d, "OD-1", 2.0, "the running job's daemon to see the suspension",
                  status="suspended", allowed=False, reason="suspended")
        gate.release()
        wait_for(lambda: sql("SELECT status FROM jobs WHERE kind = 'daily'") == "succeeded", 20.0,
                 "the daily job to succeed")

    def test_12_requests_not_queued_behind_a_job_step(self):
        """R9.1: a job's step that holds its connection (here: waiting for a
        lock) does not hold up API requests while another connection is
        there; the pool has two, so concurrent requests tie on the number
        in flight and used to be queued behind the step half of the time."""
        d, sql, gate = self.held_daily_job(12, 4712, {"database": {"pool_size": "2"}})
        d.wait_ready(timeout=15)
        # 40 reads at once from 8 threads, while the step still waits
        done = []

        def reader():
            for _ in range(5):
                conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
                conn.request("GET", "/v1/accounts/ext:OD-1",
                             headers={"Authorization": "Bearer " + d.secret("read")})
                r = conn.getresponse()
                r.read()
                done.append(r.status)
                conn.close()
        threads = [threading.Thread(target=reader) for _ in range(8)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        waited = time.monotonic() - t0
        still = sql(self.INACTIVITY_WAITING)
        gate.release()
        self.assertEqual(still, "1", "the step stopped waiting before the reads were checked")
        self.assertEqual(done, [200] * 40, f"answered after {waited:.1f} s: {done}")
        wait_for(lambda: sql("SELECT status FROM jobs WHERE kind = 'daily'") == "succeeded", 20.0,
                 "the daily job to succeed")

if __name__ == "__main__":
    harness.main()
