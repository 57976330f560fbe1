#!/usr/bin/env python3
"""A database restored from a logical backup works like the original
(README "Backups": pg_dump -Fc, then pg_restore into a new cluster; R8.2,
R9.5 audit log, R9.6).

Defect this test found (fixed by sql/0028_logs_after_restore.sql): the
notification outbox and the audit log are paged in the order of the writing
transaction's id (txid, from sql/0021), and a row is shown once every
transaction older than it has ended (txid below the snapshot's xmin).
Transaction ids are the cluster's own: a new cluster starts near 750, so in
a cluster restored from a busy one every restored row had a txid far ahead.
GET /v1/notifications and GET /v1/audit showed none of them, and the rows
written after the restore got lower txids than the restored ones: a consumer
that went on from its cursor (a restored row) saw nothing new until the new
cluster's counter passed the old one's (weeks, on a busy platform).

The test burns 30,000 transaction ids in cluster A, writes through the API,
dumps A with pg_dump -Fc, restores into a fresh cluster B with pg_restore
and starts a daemon on B (which applies nothing: same schema version).
Business time is the test clock."""

import os
import subprocess
import tempfile
import unittest

import harness

T0 = "2026-03-10T12:00:00Z"
BURN = 30000

BURN_SQL = f"""
CREATE PROCEDURE test_burn_xids(n int) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..n LOOP
        PERFORM pg_current_xact_id();
        COMMIT;
    END LOOP;
END
$$;
CALL test_burn_xids({BURN});
DROP PROCEDURE test_burn_xids(int);
"""


def pg_tool(cluster, name):
    return os.path.join(cluster.bindir, name)


def conn_args(cluster):
    return ["-h", cluster.sockdir, "-p", str(cluster.port), "-U", harness.PG_SUPERUSER]


class Restore(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.env_a = harness.start_env(test_clock=T0)
        cls.cluster_b = None
        cls.daemon_b = None

    @classmethod
    def tearDownClass(cls):
        if cls.daemon_b is not None:
            code = cls.daemon_b.stop()
            cls.daemon_b.destroy()
            assert code == 0, f"creditd on B exited {code}"
        if cls.cluster_b is not None:
            cls.cluster_b.destroy()
        cls.env_a.close()

    def ok(self, daemon, method, path, body=None, status=(200, 201)):
        r = daemon.request(method, path, body, token="admin")
        self.assertIn(r.status, status, r.text)
        return r.json

    def pay(self, daemon, ref):
        return self.ok(daemon, "POST", "/v1/payments",
                       {"id": harness.uid(), "account": "ext:RS-1", "amount": "5.25",
                        "received_at": T0, "reference": ref})

    def page(self, daemon, path, after=None):
        """Every item after `after`, following next_cursor."""
        items, cur = [], after
        while True:
            q = f"{path}?limit=2" + (f"&after={cur}" if cur else "")
            body = self.ok(daemon, "GET", q, status=(200,))
            items += body["items"]
            if body["next_cursor"] is None:
                return items
            cur = body["next_cursor"]

    def test_restored_logs_and_what_follows(self):
        a = self.env_a.daemon
        cluster_a = self.env_a.cluster
        cluster_a.psql(BURN_SQL)
        self.ok(a, "POST", "/v1/accounts",
                {"external_ref": "RS-1", "name": "Restore", "currency": "EUR",
                 "jurisdiction": "DE", "monthly_limit": "100", "total_limit": "200"})
        for i in range(3):
            self.pay(a, f"before {i}")
        notes_a = self.page(a, "/v1/notifications")
        audit_a = self.page(a, "/v1/audit")
        self.assertEqual([n["kind"] for n in notes_a], ["payment.received"] * 3)
        self.assertGreaterEqual(len(audit_a), 4, audit_a)  # the account, 3 payments
        cursor_n, cursor_a = notes_a[-1]["id"], audit_a[-1]["id"]
        self.assertEqual(self.page(a, "/v1/notifications", cursor_n), [])
        self.assertEqual(a.stop(), 0)

        # README "Backups": dump, restore into a new cluster
        with tempfile.TemporaryDirectory() as tmp:
            dump = os.path.join(tmp, "creditd.dump")
            subprocess.run([pg_tool(cluster_a, "pg_dump"), *conn_args(cluster_a), "-Fc", "-f",
                            dump, harness.DEFAULT_DBNAME], check=True, capture_output=True)
            b = type(self).cluster_b = harness.PgCluster()
            b.start()
            b.createdb(harness.DEFAULT_DBNAME)
            r = subprocess.run([pg_tool(b, "pg_restore"), *conn_args(b), "-d",
                                harness.DEFAULT_DBNAME, dump], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
        # the restored rows come from transactions far ahead of B's counter
        ahead = b.psql("SELECT count(*) FROM notifications "
                       "WHERE txid >= pg_current_xact_id()").strip()
        self.assertEqual(ahead, "3")

        d = type(self).daemon_b = harness.Daemon(b.conninfo(), test_clock=T0)
        d.start()
        d.wait_ready()
        self.assertEqual(self.ok(d, "GET", "/v1/accounts/ext:RS-1", status=(200,))["credit_balance"],
                         "15.75")
        # the restored outbox and audit log, as A showed them
        self.assertEqual(self.page(d, "/v1/notifications"), notes_a)
        self.assertEqual(self.page(d, "/v1/audit"), audit_a)
        # a consumer goes on from its cursor and sees what B writes, once
        self.assertEqual(self.page(d, "/v1/notifications", cursor_n), [])
        p = self.pay(d, "after")
        # shown once every older transaction has ended (0021): the start's
        # catch-up jobs may still run on B
        new = harness.wait_for(lambda: self.page(d, "/v1/notifications", cursor_n), 30,
                               "the new notification after the restored cursor")
        self.assertEqual([(n["kind"], n["payload"]["payment"]) for n in new],
                         [("payment.received", p["payment"])])
        self.assertEqual(self.page(d, "/v1/notifications", new[-1]["id"]), [])
        new_audit = harness.wait_for(
            lambda: [a for a in self.page(d, "/v1/audit", cursor_a) if p["payment"] in str(a)],
            30, "the payment's audit row after the restored cursor")
        self.assertTrue(new_audit)
        # the whole outbox once, in order: the restored rows, then B's
        allnotes = self.page(d, "/v1/notifications")
        self.assertEqual(allnotes, notes_a + new)
        # a restart of B changes nothing (the check at start is idempotent)
        self.assertEqual(d.stop(), 0)
        d.start()
        d.wait_ready()
        self.assertEqual(self.page(d, "/v1/notifications"), notes_a + new)
        p2 = self.pay(d, "after restart")
        newer = harness.wait_for(lambda: self.page(d, "/v1/notifications", new[-1]["id"]), 30,
                                 "the notification after the restart")
        self.assertEqual([n["payload"]["payment"] for n in newer], [p2["payment"]])


if __name__ == "__main__":
    harness.main()
