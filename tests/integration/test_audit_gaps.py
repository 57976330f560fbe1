#!/usr/bin/env python3
"""Audit: four gaps in notifications and the limits API (SPEC R4.6, R4.7,
R5.1, R5.6, R8.1, R8.2; API.md "Limits", "notifications"; sql/0035).

1. The invoice run's invoice.issued says "kind": "monthly", as the final
   invoice's says "final" (before: no "kind" at all).
2. An approved limit_request.decided names the limit change(s) the approval
   created, "change" and "changes", as limit.changed and
   limit.change_scheduled name theirs (before: none).
3. A limit request for a terminated account is refused, 422 invalid_state,
   as every other write to it (before: 201, and it could never be approved).
4. Webhook retries are spread by jitter within [ceiling / 2, ceiling] of the
   exponential backoff (before: every delivery that failed together came
   back after exactly 1 s, 2 s, ...).

Billing zone UTC; the invoice run on the 1st at 02:00. Tests run in name
order (the webhook receiver answers 200 except in test_04)."""

import datetime
import re
import time
import urllib.parse

import harness

T0 = "2026-03-02T09:00:00Z"
SECRET = "gaps-webhook-secret"


RECEIVER = harness.WebhookReceiver()


def tearDownModule():  # noqa: N802
    RECEIVER.close()


class Gaps(harness.DaemonTestCase):
    TEST_CLOCK = T0
    CONFIG = {"webhook": {"url": RECEIVER.url, "secret": SECRET, "max_attempts": 3,
                          "max_backoff_seconds": 2}}

    def path(self, ref, suffix=""):
        return "/v1/accounts/ext:" + urllib.parse.quote(ref, safe="") + suffix

    def move(self, now):
        r = self.request("PUT", "/v1/test/clock", {"now": now})
        self.assertStatus(r, 200)

    def in_days(self, days):
        """The test clock's now + days, as the API prints it."""
        r = self.request("GET", "/v1/test/clock")
        self.assertStatus(r, 200)
        now = datetime.datetime.fromisoformat(r.json["now"].replace("Z", "+00:00"))
        return (now + datetime.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def changes(self, ref):
        r = self.request("GET", self.path(ref, "/limit-changes"), token="read")
        self.assertStatus(r, 200)
        return sorted(r.json["items"], key=lambda c: c["id"])

    def request_and_approve(self, ref, body):
        r = self.request("POST", self.path(ref, "/limit-requests"), body, token="finance")
        self.assertStatus(r, 201)
        q = r.json["id"]
        r = self.request("POST", f"/v1/limit-requests/{q}/approve", {}, token="finance")
        self.assertStatus(r, 200)
        (n,) = [n for n in self.notifications(ref, "limit_request.decided")
                if n["payload"]["request"] == q]
        return r.json, n["payload"]

    # 1. was a gap: the monthly invoice.issued had no "kind"
    def test_01_monthly_invoice_issued_says_monthly(self):
        self.account("G-INV")
        out = self.post_events([harness.event("ext:G-INV", "12.5", "2026-03-02T08:00:00Z")])
        self.assertEqual(out["accepted"], 1, out)
        self.move("2026-04-01T02:00:00Z")      # the March invoice run
        out = self.post_events([harness.event("ext:G-INV", "3", "2026-04-01T01:30:00Z")])
        self.assertEqual(out["accepted"], 1, out)
        r = self.request("POST", self.path("G-INV", "/terminate"), {"note": "ended"},
                         token="finance")
        self.assertStatus(r, 200)
        issued = [n["payload"] for n in self.notifications("G-INV", "invoice.issued")]
        self.assertEqual([(p["period"], p["total"], p.get("kind")) for p in issued],
                         [("2026-03", "12.5", "monthly"), ("2026-04", "3", "final")], issued)
        # the same fields otherwise, set-based (run) and one by one (final)
        self.assertEqual(set(issued[0]), set(issued[1]), issued)

    # 2. was a gap: an approved decision did not name its limit change
    def test_02_approved_decision_names_its_change(self):
        self.account("G-REQ", monthly_limit="100", total_limit="1000")
        # a raise, applied at once: one change
        out, p = self.request_and_approve("G-REQ", {"monthly_limit": "300", "note": "season"})
        (c1,) = [c for c in self.changes("G-REQ") if c["reason"] == "limit request: season"]
        self.assertEqual(c1["status"], "applied", c1)
        self.assertEqual((p["status"], p["applied"], p["change"], p["changes"]),
                         ("approved", True, c1["id"], [c1["id"]]), p)
        (ch,) = [n["payload"] for n in self.notifications("G-REQ", "limit.changed")
                 if n["payload"]["change"] == c1["id"]]
        self.assertEqual(ch["monthly_limit"], "300", ch)

        # a raise and a lowering: the raise applied at once, the lowering
        # scheduled after the notice (limit_notice_days = 7); "change" is the
        # one the decision's time belongs to (the scheduled lowering),
        # "changes" both
        eff = self.in_days(7)
        out, p = self.request_and_approve("G-REQ", {"monthly_limit": "400", "total_limit": "500",
                                                    "note": "split"})
        two = [c for c in self.changes("G-REQ") if c["reason"] == "limit request: split"]
        self.assertEqual([(c["status"], c.get("monthly_limit"), c.get("total_limit"))
                          for c in two],
                         [("applied", "400", None), ("scheduled", None, "500")], two)
        self.assertEqual((out["applied"], out["effective_at"]), (False, eff), out)
        self.assertEqual((p["applied"], p["effective_at"], p["change"], p["changes"]),
                         (False, eff, two[1]["id"], [two[0]["id"], two[1]["id"]]), p)
        (sch,) = [n["payload"] for n in self.notifications("G-REQ", "limit.change_scheduled")
                  if n["payload"]["change"] == p["change"]]
        self.assertEqual(sch["effective_at"], eff, sch)
        # the request records the same change, and GET shows it
        got = self.psql(f"SELECT change_id FROM limit_requests "
                        f"WHERE id = '{p['request']}'").strip()
        self.assertEqual(got, str(p["change"]))
        r = self.request("GET", f"/v1/limit-requests/{p['request']}", token="read")
        self.assertStatus(r, 200)
        self.assertEqual((r.json["status"], r.json["change"]), ("approved", p["change"]), r.text)

        # an approval that supersedes part of a scheduled change: what that
        # change said about the other limit is scheduled again (same reason,
        # time), and is not the approval's change
        r = self.request("PUT", self.path("G-REQ", "/limits"),
                         {"monthly_limit": "50", "total_limit": "450", "reason": "both"},
                         token="finance")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["applied"], False, r.text)
        out, p = self.request_and_approve("G-REQ", {"monthly_limit": "600", "note": "more"})
        after = self.changes("G-REQ")
        (mine,) = [c for c in after if c["reason"] == "limit request: more"]
        again = [c for c in after if c["reason"] == "both" and c["status"] == "scheduled"]
        self.assertEqual([(c.get("monthly_limit"), c.get("total_limit")) for c in again],
                         [(None, "450")], after)
        self.assertEqual((p["applied"], p["change"], p["changes"]),
                         (True, mine["id"], [mine["id"]]), p)

        # a declined request names none
        r = self.request("POST", self.path("G-REQ", "/limit-requests"),
                         {"total_limit": "9000", "note": "no"}, token="finance")
        self.assertStatus(r, 201)
        q = r.json["id"]
        r = self.request("POST", f"/v1/limit-requests/{q}/decline", {"reason": "risk"},
                         token="finance")
        self.assertStatus(r, 200)
        (d,) = [n["payload"] for n in self.notifications("G-REQ", "limit_request.decided")
                if n["payload"]["request"] == q]
        self.assertEqual(d["status"], "declined", d)
        self.assertNotIn("change", d)
        r = self.request("GET", f"/v1/limit-requests/{q}", token="read")
        self.assertStatus(r, 200)
        self.assertEqual((r.json["status"], r.json["change"]), ("declined", None), r.text)

    # 3. was a gap: 201 for a request that could never be approved
    def test_03_no_limit_request_for_a_terminated_account(self):
        self.account("G-TERM", monthly_limit="100")
        r = self.request("POST", self.path("G-TERM", "/terminate"), {"note": "ended"},
                         token="finance")
        self.assertStatus(r, 200)
        audit_before = self.psql("SELECT count(*) FROM audit_log").strip()
        for ref in ("ext:G-TERM", self.get_account("G-TERM")["id"]):
            r = self.request("POST", f"/v1/accounts/{ref}/limit-requests",
                             {"monthly_limit": "500", "note": "please"}, token="finance")
            self.assertError(r, 422, "invalid_state")
            self.assertIn("terminated", r.json["error"]["message"], r.text)
        # as a limit change is refused
        r = self.request("PUT", self.path("G-TERM", "/limits"),
                         {"monthly_limit": "500", "reason": "x"}, token="finance")
        self.assertError(r, 422, "invalid_state")
        self.assertEqual(self.psql("SELECT count(*) FROM limit_requests q JOIN accounts a "
                                   "ON a.id = q.account_id "
                                   "WHERE a.external_ref = 'G-TERM'").strip(), "0")
        self.assertEqual(self.psql("SELECT count(*) FROM audit_log").strip(), audit_before)
        # unchanged: an unknown account is 404, a live one 201
        r = self.request("POST", self.path("G-NOPE", "/limit-requests"),
                         {"monthly_limit": "500", "note": "please"}, token="finance")
        self.assertError(r, 404, "not_found")
        self.account("G-LIVE")
        r = self.request("POST", self.path("G-LIVE", "/limit-requests"),
                         {"monthly_limit": "500", "note": "please"}, token="finance")
        self.assertStatus(r, 201)
        self.assertEqual(r.json["status"], "pending", r.text)

    # 4. was a gap: retries of deliveries that failed together in lock-step
    def test_04_webhook_retries_are_jittered(self):
        # 8 accounts' notifications fail together (500) three times each:
        # ceilings min(2, 2^0) = 1 s, then min(2, 2^1) = 2 s; delays in
        # [0.5, 1] and [1, 2], never above max_backoff_seconds, and spread
        n_acc = 8
        refs = [f"G-WH{i}" for i in range(n_acc)]
        for ref in refs:
            self.account(ref)
        self.settle_feeds()
        time.sleep(0.3)   # earlier notifications delivered (200)
        with RECEIVER.lock:
            RECEIVER.status = 500
        try:
            offset = self.daemon.log_size()
            for ref in refs:
                r = self.request("POST", self.path(ref, "/suspend"), {"note": "wh"},
                                 token="finance")
                self.assertStatus(r, 200)
            ids = [str(n["id"]) for ref in refs
                   for n in self.notifications(ref, "account.suspended")]
            self.assertEqual(len(ids), n_acc)
            for i in ids:
                self.daemon.wait_log(rf"notification {i}: gave up after 3 attempts",
                                     start=offset, timeout=30)
        finally:
            with RECEIVER.lock:
                RECEIVER.status = 200
        log = self.daemon.log_text_since(offset)
        waits = {1: [], 2: []}
        for m in re.finditer(r"notification (\d+) attempt (\d) failed \(HTTP 500\); "
                             r"next in (\d+(?:\.\d+)?) s", log):
            if m.group(1) in ids:
                waits[int(m.group(2))].append(float(m.group(3)))
        self.assertEqual([len(waits[1]), len(waits[2])], [n_acc, n_acc], log)
        for attempt, (lo, hi) in ((1, (0.5, 1.0)), (2, (1.0, 2.0))):
            for w in waits[attempt]:
                self.assertTrue(lo <= w <= hi, (attempt, waits))
            # jitter: not all the same (8 draws from 501 / 1001 values)
            self.assertGreater(len(set(waits[attempt])), 1, (attempt, waits))
        rows = self.psql("SELECT count(*) FROM notifications WHERE id IN (" +
                         ",".join(ids) + ") AND attempts = 3 "
                         "AND next_attempt_at = 'infinity'").strip()
        self.assertEqual(rows, str(n_acc))


if __name__ == "__main__":
    harness.main()
