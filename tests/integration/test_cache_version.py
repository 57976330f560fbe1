#!/usr/bin/env python3
"""The account cache never steps back to an older state of an account
(sql/0023_account_version.sql, daemon/acache.c; SPEC R3.6, issue 3).

Every UPDATE of an accounts row increments accounts.version; the daemon's
cache keeps a row only if its version is not below the one it shows. The
interleaving tests make a result of an older state arrive after a newer one:
a test-only gate, appended to account_view, lets a read-only transaction
(a GET of the account) take its snapshot and then wait on an advisory lock
that the test holds; meanwhile a payment or a batch of events commits and
its result reaches the cache; then the lock is released and the GET's older
row arrives. Without versions the cache took it, and /v1/authorize answered
from a state the database had already left.

Billing time zone UTC; the test clock stays at 2026-01-15T10:00:00Z."""

import http.client
import json
import os
import re
import subprocess
import threading
import time
import uuid

import harness

T0 = "2026-01-15T10:00:00Z"
OCCURRED = "2026-01-15T09:00:00Z"
GATE_LOCK = 4242

# The gate: a transaction without an xid (a pure read) reading a flagged
# account waits for GATE_LOCK after its snapshot was taken (the row values
# are already read when the select list calls the function). Transactions
# that wrote something (a payment, an ingest batch) never wait.
GATE_SQL = f"""
CREATE TABLE test_gate (account_id uuid PRIMARY KEY);
CREATE FUNCTION test_gate(p uuid) RETURNS int LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF pg_current_xact_id_if_assigned() IS NULL
       AND EXISTS (SELECT 1 FROM test_gate g WHERE g.account_id = p) THEN
        PERFORM pg_advisory_xact_lock_shared({GATE_LOCK});
    END IF;
    RETURN 0;
END
$$;
DO $$
DECLARE
    d text := pg_get_viewdef('account_view'::regclass);
BEGIN
    d := regexp_replace(d, '\\s+FROM accounts a;?\\s*$',
                        ', test_gate(a.id) AS test_gate FROM accounts a');
    EXECUTE 'CREATE OR REPLACE VIEW account_view AS ' || d;
END
$$;
"""


def uid() -> str:
    return str(uuid.uuid4())


def ev(ref, amount):
    return {"id": uid(), "account": "ext:" + ref, "amount": amount, "occurred_at": OCCURRED,
            "service": "sms"}


class LockHolder:
    """A psql session that holds advisory lock GATE_LOCK until release()."""

    def __init__(self, cluster):
        self.proc = subprocess.Popen(
            [os.path.join(cluster.bindir, "psql"), "-X", "-A", "-t", "-q", "-v",
             "ON_ERROR_STOP=1", "-h", cluster.sockdir, "-p", str(cluster.port), "-U",
             harness.PG_SUPERUSER, "-d", harness.DEFAULT_DBNAME],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.proc.stdin.write(f"SELECT pg_advisory_lock({GATE_LOCK}), 'locked';\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if "locked" not in line:
            self.release()
            raise AssertionError(f"lock holder: {line!r} {self.proc.stderr.read()!r}")

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()  # psql exits, the session ends, the lock goes
            self.proc.wait(30)
        self.proc.stdout.close()
        self.proc.stderr.close()


class CacheVersion(harness.DaemonTestCase):
    TEST_CLOCK = T0
    CONFIG = {"billing": {"timezone": "UTC"}}

    # -- helpers

    def account(self, ref, total_limit=None):
        body = {"external_ref": ref, "name": "Customer " + ref, "currency": "EUR",
                "jurisdiction": "DE"}
        if total_limit is not None:
            body["total_limit"] = total_limit
        r = self.request("POST", "/v1/accounts", body)
        self.assertStatus(r, 201)
        return r.json

    def version(self, ref):
        return int(self.psql(f"SELECT version FROM accounts WHERE external_ref = '{ref}'"))

    def db_status(self, ref):
        return self.psql(f"SELECT status FROM accounts WHERE external_ref = '{ref}'").strip()

    def post_events(self, events):
        r = self.request("POST", "/v1/events", events, token="platform")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["accepted"], sum(1 for _ in events), r.text)
        return r.json

    def pay(self, ref, amount):
        body = {"id": uid(), "account": "ext:" + ref, "amount": amount,
                "received_at": "2026-01-15T09:30:00Z", "reference": "SEPA"}
        r = self.request("POST", "/v1/payments", body, token="finance")
        self.assertStatus(r, 201)
        return r.json

    def authorize(self, ref, amount="1"):
        r = self.request("POST", "/v1/authorize", {"account": "ext:" + ref, "amount": amount},
                         token="platform")
        self.assertStatus(r, 200)
        return r.json

    def assertCacheAgrees(self, ref, status):
        """The database shows status, and /v1/authorize answers from it."""
        self.assertEqual(self.db_status(ref), status)
        ans = self.authorize(ref)
        self.assertEqual((ans["status"], ans["allowed"]), (status, status == "active"), ans)

    def install_gate(self):
        if not self.psql("SELECT to_regclass('test_gate')").strip():
            self.psql(GATE_SQL)
        self.addCleanup(self.psql, "DELETE FROM test_gate")

    def waiting_on_gate(self, query=""):
        """Backends waiting at the gate (whose query contains query)."""
        q = query.replace("'", "''")
        return int(self.psql(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            f"WHERE l.locktype = 'advisory' AND l.objid = {GATE_LOCK} AND NOT l.granted "
            f"AND strpos(a.query, '{q}') > 0"))

    def start_gated_get(self, ref):
        """GET /v1/accounts/ext:ref on its own connection; returns once its
        query has read the account and waits at the gate."""
        out = {}
        secret = self.daemon.secret("read")

        def run():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=60)
                conn.request("GET", "/v1/accounts/ext:" + ref,
                             headers={"Authorization": "Bearer " + secret})
                r = conn.getresponse()
                out["status"], out["body"] = r.status, json.loads(r.read())
                conn.close()
            except Exception as e:  # noqa: BLE001
                out["error"] = repr(e)

        t = threading.Thread(target=run)
        t.start()
        deadline = time.monotonic() + 10
        while self.waiting_on_gate() != 1:
            if time.monotonic() > deadline or not t.is_alive():
                raise AssertionError(f"the GET did not reach the gate: {out}")
            time.sleep(0.02)
        return t, out

    def interleaved(self, ref, action):
        """A GET of ref reads the account and waits at the gate; action()
        runs (and its result reaches the cache); then the GET's older row
        arrives. Returns the GET's account object."""
        holder = LockHolder(self.cluster)
        try:
            t, out = self.start_gated_get(ref)
            action()
        finally:
            holder.release()
        t.join(60)
        self.assertFalse(t.is_alive())
        self.assertNotIn("error", out, out)
        self.assertEqual(out["status"], 200, out)
        return out["body"]

    # -- tests

    def test_01_version_increments(self):
        """Ingest (fast and general path), a payment and a limit change each
        increment the row's version; the ingest batch exactly once (it bumps
        the version itself, and the trigger's WHEN must then stay idle)."""
        self.account("V-INC", total_limit="100.00")
        v0 = self.version("V-INC")
        self.assertEqual(v0, 0)

        self.post_events([ev("V-INC", "1.5"), ev("V-INC", "2")])
        v1 = self.version("V-INC")
        self.assertEqual(v1, v0 + 1)

        # the same id twice in one batch: creditd_ingest_batch's general path
        e = ev("V-INC", "0.5")
        r = self.request("POST", "/v1/events", [e, dict(e)], token="platform")
        self.assertStatus(r, 200)
        self.assertEqual((r.json["accepted"], r.json["duplicate"]), (1, 1), r.text)
        v2 = self.version("V-INC")
        self.assertEqual(v2, v1 + 1)

        self.pay("V-INC", "1.00")
        v3 = self.version("V-INC")
        self.assertGreater(v3, v2)

        r = self.request("PUT", "/v1/accounts/ext:V-INC/limits",
                         {"total_limit": "200.00", "reason": "test"}, token="finance")
        self.assertStatus(r, 200)
        self.assertTrue(r.json["applied"], r.text)
        v4 = self.version("V-INC")
        self.assertGreater(v4, v3)

        # any other writer: the trigger
        self.psql("UPDATE accounts SET name = 'renamed' WHERE external_ref = 'V-INC'")
        self.assertEqual(self.version("V-INC"), v4 + 1)
        # the API's account object stays as API.md has it (no version field)
        r = self.request("GET", "/v1/accounts/ext:V-INC", token="read")
        self.assertStatus(r, 200)
        self.assertNotIn("version", r.json)

    def test_02_interleaved_payment_and_suspension(self):
        """An older row handled after a newer one leaves the cache alone, in
        both directions: a suspension lifted by a payment, a suspension by
        events (the issue's case: authorize allowed a suspended account)."""
        self.account("V-X", total_limit="10.00")
        self.install_gate()
        self.post_events([ev("V-X", "10.00")])  # exposure 10: total_limit reached
        self.assertCacheAgrees("V-X", "suspended")
        self.psql("INSERT INTO test_gate SELECT id FROM accounts WHERE external_ref = 'V-X'")

        def lift():
            self.pay("V-X", "5.00")  # exposure 10 - 5 < 10
            self.assertCacheAgrees("V-X", "active")

        def suspend():
            self.post_events([ev("V-X", "6.00")])  # exposure 5 + 6 >= 10
            self.assertCacheAgrees("V-X", "suspended")

        stale0 = self.stale_rows()
        for _ in range(2):
            # a GET reads the suspended row and waits; a payment lifts
            got = self.interleaved("V-X", lift)
            self.assertEqual(got["status"], "suspended", got)  # the older state
            self.assertCacheAgrees("V-X", "active")
            # a GET reads the active row and waits; events suspend
            got = self.interleaved("V-X", suspend)
            self.assertEqual(got["status"], "active", got)
            self.assertCacheAgrees("V-X", "suspended")
            self.pay("V-X", "1.00")  # back to exposure 10: still suspended
            self.assertCacheAgrees("V-X", "suspended")
        # each of the four older rows was counted where /metrics shows it
        self.assertEqual(self.stale_rows() - stale0, 4)

    def stale_rows(self):
        r = self.request("GET", "/metrics")
        self.assertStatus(r, 200)
        m = re.search(r"^creditd_account_cache_stale_rows_total (\d+)$", r.text, re.M)
        self.assertIsNotNone(m, r.text[:500])
        return int(m.group(1))

    def test_03_gated_reload_page(self):
        """A non-blocking reload (after the daily job) whose page was read
        before a payment committed does not undo the payment in the cache."""
        self.account("V-R", total_limit="10.00")
        self.install_gate()
        self.post_events([ev("V-R", "12.00")])
        self.assertCacheAgrees("V-R", "suspended")
        self.psql("INSERT INTO test_gate SELECT id FROM accounts WHERE external_ref = 'V-R'")
        log_start = self.daemon.log_size()
        holder = LockHolder(self.cluster)
        try:
            # the daily job reloads the cache without blocking authorization
            r = self.request("POST", "/v1/jobs/daily", {"date": "2026-01-15"})
            self.assertIn(r.status, (200, 202), r.text)
            deadline = time.monotonic() + 20
            while self.waiting_on_gate("FROM account_view WHERE seq > ") != 1:
                self.assertLess(time.monotonic(), deadline, "no reload page at the gate")
                time.sleep(0.02)
            self.pay("V-R", "5.00")  # exposure 7 < 10
            self.assertCacheAgrees("V-R", "active")
        finally:
            holder.release()
        # the page (suspended: older) is handled now
        self.daemon.wait_log(r"account cache: \d+ accounts loaded", start=log_start)
        self.assertCacheAgrees("V-R", "active")


if __name__ == "__main__":
    harness.main()
