#!/usr/bin/env python3
"""Several daemons on one database (SPEC R9.2): changes made through one
daemon reach the other's in-memory authorization within a second; exactly
one daemon holds the scheduler lock and another takes over when it dies;
two daemons ingesting for one account keep the limits exact.

Both daemons run on the real clock (no test clock): leadership is about the
real scheduler."""

import threading
import time
import uuid

import harness

NOW = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))


metric = harness.metric
wait_for = harness.wait_for


class Cluster(harness.DaemonTestCase):
    TEST_CLOCK = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.b = harness.Daemon(cls.cluster.conninfo(), test_clock=None)
        cls.b.start()
        cls.b.wait_ready()
        cls.addClassCleanup(cls.b.destroy)

    def account(self, ref, **limits):
        body = {"external_ref": ref, "name": ref, "currency": "EUR", "jurisdiction": "DE"}
        body.update(limits)
        r = self.daemon.request("POST", "/v1/accounts", body, token="finance")
        self.assertStatus(r, 201)

    def authorize(self, daemon, ref, amount):
        r = daemon.request("POST", "/v1/authorize", {"account": "ext:" + ref, "amount": amount},
                           token="platform")
        self.assertStatus(r, 200)
        return r.json

    def test_1_changes_reach_the_other_daemon_within_a_second(self):
        self.account("CL-1", monthly_limit="100")
        # created on A: known to B
        t0 = time.monotonic()
        wait_for(lambda: self.authorize(self.b, "CL-1", "1").get("status") == "active", 1.0,
                 "B to know CL-1")
        # suspended on A: B refuses within a second
        r = self.daemon.request("POST", "/v1/accounts/ext:CL-1/suspend", {"note": "x"},
                                token="finance")
        self.assertStatus(r, 200)
        t0 = time.monotonic()
        wait_for(lambda: self.authorize(self.b, "CL-1", "1").get("reason") == "suspended", 1.0,
                 "B to see the suspension")
        self.assertLess(time.monotonic() - t0, 1.0)
        # limit raised on A: B's headroom follows
        self.daemon.request("POST", "/v1/accounts/ext:CL-1/unsuspend", {"note": "ok"},
                            token="finance")
        r = self.daemon.request("PUT", "/v1/accounts/ext:CL-1/limits",
                                {"monthly_limit": "250", "reason": "more"}, token="finance")
        self.assertStatus(r, 200)
        wait_for(lambda: self.authorize(self.b, "CL-1", "1").get("monthly_remaining") == "250",
                 1.0, "B to see the new limit")

    def test_2_one_scheduler_leader_and_takeover(self):
        wait_for(lambda: (metric(self.daemon, "creditd_scheduler_leader") or 0)
                 + (metric(self.b, "creditd_scheduler_leader") or 0) == 1, 6.0,
                 "exactly one leader")
        leader, other = ((self.daemon, self.b)
                         if metric(self.daemon, "creditd_scheduler_leader") == 1
                         else (self.b, self.daemon))
        # the leader stays the only one for a while
        time.sleep(2.5)
        self.assertEqual(metric(leader, "creditd_scheduler_leader"), 1)
        self.assertEqual(metric(other, "creditd_scheduler_leader"), 0)
        if leader is self.b:
            self.b.kill()
            wait_for(lambda: metric(self.daemon, "creditd_scheduler_leader") == 1, 6.0,
                     "A to take over")
            self.b.start()
            self.b.wait_ready()
        else:
            # keep A (the module's daemon) alive: restart it after the check
            self.daemon.kill()
            wait_for(lambda: metric(self.b, "creditd_scheduler_leader") == 1, 6.0,
                     "B to take over")
            self.daemon.start()
            self.daemon.wait_ready()
        time.sleep(2.5)
        total = (metric(self.daemon, "creditd_scheduler_leader")
                 + metric(self.b, "creditd_scheduler_leader"))
        self.assertEqual(total, 1)

    def test_3_two_daemons_ingest_one_account_exactly(self):
        self.account("CL-HOT", monthly_limit="10", total_limit="1000")
        wait_for(lambda: self.authorize(self.b, "CL-HOT", "1").get("status") == "active", 2.0,
                 "B to know CL-HOT")
        results = {"accepted": 0}
        lock = threading.Lock()

        def post(daemon, n):
            for _ in range(n):
                body = [{"id": str(uuid.uuid4()), "account": "ext:CL-HOT", "amount": "0.25",
                         "occurred_at": NOW, "service": "sms"} for _ in range(5)]
                r = daemon.request("POST", "/v1/events", body, token="platform")
                assert r.status == 200, r.text
                with lock:
                    results["accepted"] += r.json["accepted"]

        threads = [threading.Thread(target=post, args=(d, 10)) for d in (self.daemon, self.b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results["accepted"], 100)
        a = self.daemon.request("GET", "/v1/accounts/ext:CL-HOT", token="read").json
        # 100 x 0.25 = 25: every event counted once, the limit (10) reached
        self.assertEqual((a["monthly_usage"], a["unbilled_usage"]), ("25", "25"), a)
        self.assertEqual((a["status"], a["suspension_reasons"]), ("suspended", ["monthly_limit"]))
        # both daemons' memory agrees
        for d in (self.daemon, self.b):
            ans = wait_for(lambda: (lambda x: x if x.get("total_remaining") == "975" else None)(
                self.authorize(d, "CL-HOT", "0.01")), 1.0, "the final state everywhere")
            self.assertEqual((ans["allowed"], ans["reason"]), (False, "suspended"), ans)


if __name__ == "__main__":
    harness.main()
