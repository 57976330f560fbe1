#!/usr/bin/env python3
"""Usage ingestion, authorization and limit suspension end to end against the
real daemon and a private PostgreSQL (API.md "Usage", SPEC R3, R4).

Billing time zone is Europe/Berlin for the whole module; the test clock starts
at 2026-01-15T10:00:00Z. Tests run in name order and the last one moves the
clock over the (Berlin) month boundary, so it must stay last."""

import http.client
from decimal import Decimal
import json
import threading
import uuid

import harness

T0 = "2026-01-15T10:00:00Z"


def uid() -> str:
    return str(uuid.uuid4())


def ev(account, amount, occurred_at="2026-01-15T09:00:00Z", service="sms", **extra):
    e = {"id": uid(), "account": account, "amount": amount, "occurred_at": occurred_at,
         "service": service}
    e.update(extra)
    return e


class Usage(harness.DaemonTestCase):
    TEST_CLOCK = T0
    CONFIG = {"billing": {"timezone": "Europe/Berlin"}}

    # -- helpers

    def get_account(self, ref):
        r = self.request("GET", "/v1/accounts/ext:" + ref)
        self.assertStatus(r, 200)
        return r.json

    def post_events(self, body, token="platform", headers=None):
        r = self.request("POST", "/v1/events", body, token=token, headers=headers)
        self.assertStatus(r, 200)
        return r.json

    def statuses(self, out):
        return [(x["status"], x.get("reason")) for x in out["results"]]

    # -- tests

    def test_01_mixed_batch_in_input_order(self):
        self.account("U-MIX")
        acc = "ext:U-MIX"
        pre_dup = ev(acc, "1.1")
        pre_conf = ev(acc, "2.2")
        out = self.post_events([pre_dup, pre_conf])
        self.assertEqual(self.statuses(out), [("accepted", None)] * 2, out)

        conflict = dict(pre_conf, amount="2.3")
        no_service = ev(acc, "1")
        del no_service["service"]
        batch = [
            ev(acc, "1.25"),                                           # 0 accepted
            dict(ev(acc, "1"), amount=1.5),                            # 1 JSON number
            ev(acc, "0.0000001"),                                      # 2 seven decimals
            ev(acc, "1e3"),                                            # 3 exponent
            ev(acc, "0"),                                              # 4 zero
            ev(acc, "-1"),                                             # 5 negative
            ev(acc, "9223372036854.775808"),                           # 6 overflow
            ev(acc, "1", occurred_at="yesterday"),                     # 7 bad time
            ev(acc, "1", occurred_at="2026-01-15T10:05:01Z"),          # 8 now + 301 s
            ev(acc, "1", occurred_at="2025-12-10T10:00:00Z"),          # 9 36 days old
            ev("ext:U-NO-SUCH-ACCOUNT", "1"),                          # 10 unknown account
            no_service,                                                # 11 missing service
            ev(acc, "1", colour="blue"),                               # 12 unknown field
            dict(pre_dup),                                             # 13 duplicate
            conflict,                                                  # 14 conflict
            ev(acc, "2.5", occurred_at="2026-01-15T10:05:00Z",         # 15 now + 300 s
               destination="DE", quantity=3),
            ev(acc, "0.000001", occurred_at="2025-12-11T10:00:01Z"),   # 16 just under 35 days
        ]
        out = self.post_events(batch)
        expected = [
            ("accepted", None),
            ("rejected", "invalid_amount"),
            ("rejected", "invalid_amount"),
            ("rejected", "invalid_amount"),
            ("rejected", "invalid_amount"),
            ("rejected", "invalid_amount"),
            ("rejected", "invalid_amount"),
            ("rejected", "invalid_time"),
            ("rejected", "invalid_time"),
            ("rejected", "invalid_time"),
            ("rejected", "unknown_account"),
            ("rejected", "invalid_field"),
            ("rejected", "invalid_field"),
            ("duplicate", None),
            ("conflict", None),
            ("accepted", None),
            ("accepted", None),
        ]
        self.assertEqual(self.statuses(out), expected, json.dumps(out, indent=1))
        self.assertEqual([x["id"] for x in out["results"]], [e["id"] for e in batch])
        self.assertEqual((out["accepted"], out["duplicate"], out["conflict"], out["rejected"]),
                         (3, 1, 1, 12), out)
        for x in out["results"]:
            if x["status"] == "accepted":
                self.assertEqual(x.get("account_status", "active"), "active", x)
        a = self.get_account("U-MIX")
        # 1.1 + 2.2 + 1.25 + 2.5 + 0.000001 (the December event is unbilled but not monthly)
        self.assertEqual(a["unbilled_usage"], "7.050001", a)
        self.assertEqual(a["monthly_usage"], "7.05", a)
        self.assertEqual(a["exposure"], "7.050001", a)
        self.assertIsNone(a["monthly_remaining"], a)
        self.assertIsNone(a["total_remaining"], a)

    def test_02_three_body_shapes(self):
        self.account("U-SHAPE")
        acc = "ext:U-SHAPE"
        arr = [ev(acc, "1"), ev(acc, "0.5")]
        out = self.post_events(arr)
        self.assertEqual(self.statuses(out), [("accepted", None)] * 2, out)
        obj = [ev(acc, "2"), ev(acc, "0.25")]
        out = self.post_events({"events": obj})
        self.assertEqual(self.statuses(out), [("accepted", None)] * 2, out)
        nd = [ev(acc, "3"), ev(acc, "0.125"), ev(acc, "-3")]
        text = "\n".join(json.dumps(e) for e in nd) + "\n"
        out = self.post_events(text, headers={"Content-Type": "application/x-ndjson"})
        self.assertEqual(self.statuses(out),
                         [("accepted", None), ("accepted", None), ("rejected", "invalid_amount")],
                         out)
        self.assertEqual([x["id"] for x in out["results"]], [e["id"] for e in nd])
        # the admin token can ingest too
        out = self.post_events([ev(acc, "0.001")], token="admin")
        self.assertEqual(out["accepted"], 1, out)
        a = self.get_account("U-SHAPE")
        self.assertEqual(a["unbilled_usage"], "6.876", a)
        self.assertEqual(a["monthly_usage"], "6.876", a)

    def test_02b_read_token_cannot_ingest(self):
        r = self.request("POST", "/v1/events", [], token="read")
        self.assertError(r, 403, "forbidden")

    def test_03_resend_is_all_duplicate(self):
        self.account("U-RESEND")
        acc = "ext:U-RESEND"
        batch = [ev(acc, "1.001"), ev(acc, "2.002"), ev(acc, "3.0015")]
        out = self.post_events(batch)
        self.assertEqual(out["accepted"], 3, out)
        before = self.get_account("U-RESEND")
        self.assertEqual(before["unbilled_usage"], "6.0045", before)
        out = self.post_events(batch)
        self.assertEqual(self.statuses(out), [("duplicate", None)] * 3, out)
        self.assertEqual((out["accepted"], out["duplicate"], out["conflict"], out["rejected"]),
                         (0, 3, 0, 0), out)
        after = self.get_account("U-RESEND")
        for k in ("unbilled_usage", "monthly_usage", "exposure"):
            self.assertEqual(after[k], before[k], k)

    def test_03b_same_id_twice_in_one_batch(self):
        self.account("U-INBATCH")
        e = ev("ext:U-INBATCH", "1.5")
        out = self.post_events([e, dict(e), dict(e, amount="1.6")])
        self.assertEqual(self.statuses(out),
                         [("accepted", None), ("duplicate", None), ("conflict", None)], out)
        self.assertEqual(self.get_account("U-INBATCH")["unbilled_usage"], "1.5")

    def test_04_concurrent_same_events(self):
        self.account("U-CONC")
        acc = "ext:U-CONC"
        events = [ev(acc, "0.0123", occurred_at="2026-01-15T09:%02d:%02dZ" % (i // 60, i % 60))
                  for i in range(200)]
        body = json.dumps(events).encode()
        secret = self.daemon.secret("platform")
        results = [None] * 4
        errors = []
        barrier = threading.Barrier(4)

        def worker(k):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=30)
                barrier.wait(10)
                conn.request("POST", "/v1/events", body=body,
                             headers={"Content-Type": "application/json",
                                      "Authorization": "Bearer " + secret})
                r = conn.getresponse()
                raw = r.read()
                conn.close()
                if r.status != 200:
                    errors.append(f"thread {k}: HTTP {r.status} {raw[:300]!r}")
                    return
                results[k] = json.loads(raw)
            except Exception as e:  # noqa: BLE001
                errors.append(f"thread {k}: {e!r}")

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        total_acc = sum(r["accepted"] for r in results)
        total_dup = sum(r["duplicate"] for r in results)
        self.assertEqual(total_acc, 200, [r["accepted"] for r in results])
        self.assertEqual(total_dup, 600)
        self.assertEqual(sum(r["conflict"] + r["rejected"] for r in results), 0)
        # each event accepted exactly once across threads
        for i, e in enumerate(events):
            sts = [r["results"][i]["status"] for r in results]
            self.assertEqual(sorted(sts), ["accepted", "duplicate", "duplicate", "duplicate"],
                             (i, sts))
            for r in results:
                self.assertEqual(r["results"][i]["id"], e["id"])
        a = self.get_account("U-CONC")
        self.assertEqual(a["unbilled_usage"], "2.46", a)  # 200 x 0.0123
        self.assertEqual(a["monthly_usage"], "2.46", a)

    def test_05_monthly_limit_reached_exactly(self):
        self.account("U-MONTH", monthly_limit="10.00")
        a = self.get_account("U-MONTH")
        self.assertEqual(a["monthly_remaining"], "10", a)
        self.assertEqual(a["status"], "active")
        ans = self.authorize("U-MONTH", "10")
        self.assertTrue(ans["allowed"], ans)
        self.assertEqual(ans["status"], "active")
        self.assertEqual(ans["monthly_remaining"], "10")
        self.assertIsNone(ans["total_remaining"])

        out = self.post_events([ev("ext:U-MONTH", "4.5")])
        self.assertEqual(out["results"][0]["status"], "accepted", out)
        self.assertEqual(out["results"][0].get("account_status", "active"), "active", out)
        a = self.get_account("U-MONTH")
        self.assertEqual((a["monthly_usage"], a["monthly_remaining"], a["status"]),
                         ("4.5", "5.5", "active"), a)

        ans = self.authorize("U-MONTH", "5.5")
        self.assertEqual((ans["allowed"], ans.get("reason"), ans["monthly_remaining"]),
                         (True, None, "5.5"), ans)
        ans = self.authorize("U-MONTH", "5.500001")
        self.assertEqual((ans["allowed"], ans.get("reason"), ans["status"]),
                         (False, "monthly_limit", "active"), ans)

        out = self.post_events([ev("ext:U-MONTH", "5.5")])
        self.assertEqual(out["results"][0]["status"], "accepted", out)
        self.assertEqual(out["results"][0].get("account_status"), "suspended", out)
        a = self.get_account("U-MONTH")
        self.assertEqual(a["status"], "suspended", a)
        self.assertEqual(a["suspension_reasons"], ["monthly_limit"], a)
        self.assertEqual((a["monthly_usage"], a["monthly_remaining"], a["unbilled_usage"]),
                         ("10", "0", "10"), a)

        ans = self.authorize("U-MONTH", "0.000001")
        self.assertFalse(ans["allowed"], ans)
        self.assertIn(ans.get("reason"), ("suspended", "monthly_limit"), ans)
        self.assertEqual(ans["status"], "suspended", ans)
        self.assertEqual(ans["monthly_remaining"], "0", ans)

        # R3.2: events while suspended are still accepted and counted
        out = self.post_events([ev("ext:U-MONTH", "0.75")])
        self.assertEqual(out["results"][0]["status"], "accepted", out)
        self.assertEqual(out["results"][0].get("account_status"), "suspended", out)
        a = self.get_account("U-MONTH")
        self.assertEqual((a["monthly_usage"], a["unbilled_usage"], a["monthly_remaining"]),
                         ("10.75", "10.75", "0"), a)

        h = self.history("U-MONTH")
        susp = [x for x in h if x["status"] == "suspended" and x["cause"] == "usage"]
        self.assertEqual(len(susp), 1, h)
        self.assertEqual(susp[0]["reasons"], ["monthly_limit"], h)

        ns = self.notifications("U-MONTH")
        kinds = [n["kind"] for n in ns]
        self.assertEqual(kinds.count("account.suspended"), 1, ns)
        th = sorted((n["payload"]["threshold_percent"], n["payload"]["usage"])
                    for n in ns if n["kind"] == "usage.threshold")
        # one batch crossed both 80 % and 90 %
        self.assertEqual(th, [(80, "10"), (90, "10")], ns)
        for n in ns:
            if n["kind"] == "usage.threshold":
                self.assertEqual(n["payload"]["limit_amount"], "10", n)
                self.assertEqual(n["payload"]["limit"], "monthly", n)

    def test_05b_thresholds_crossed_one_by_one(self):
        self.account("U-THRESH", monthly_limit="100")
        self.post_events([ev("ext:U-THRESH", "79.99")])
        self.assertEqual([n for n in self.notifications("U-THRESH")
                          if n["kind"] == "usage.threshold"], [])
        self.post_events([ev("ext:U-THRESH", "0.01")])
        self.post_events([ev("ext:U-THRESH", "5")])
        self.post_events([ev("ext:U-THRESH", "5")])
        th = [(n["payload"]["threshold_percent"], n["payload"]["usage"])
              for n in self.notifications("U-THRESH") if n["kind"] == "usage.threshold"]
        self.assertEqual(sorted(th), [(80, "80"), (90, "90")])
        self.assertEqual(self.get_account("U-THRESH")["status"], "active")

    def test_06_total_limit(self):
        self.account("U-TOTAL", total_limit="20")
        out = self.post_events([ev("ext:U-TOTAL", "12.345")])
        self.assertEqual(out["accepted"], 1, out)
        a = self.get_account("U-TOTAL")
        self.assertEqual((a["exposure"], a["total_remaining"], a["status"]),
                         ("12.345", "7.655", "active"), a)
        ans = self.authorize("U-TOTAL", "7.655")
        self.assertEqual((ans["allowed"], ans["total_remaining"]), (True, "7.655"), ans)
        self.assertIsNone(ans["monthly_remaining"], ans)
        ans = self.authorize("U-TOTAL", "7.6551")
        self.assertEqual((ans["allowed"], ans.get("reason")), (False, "total_limit"), ans)

        out = self.post_events([ev("ext:U-TOTAL", "7.655")])
        self.assertEqual(out["results"][0]["status"], "accepted", out)
        self.assertEqual(out["results"][0].get("account_status"), "suspended", out)
        a = self.get_account("U-TOTAL")
        self.assertEqual((a["status"], a["suspension_reasons"]), ("suspended", ["total_limit"]), a)
        self.assertEqual((a["exposure"], a["unbilled_usage"], a["total_remaining"]),
                         ("20", "20", "0"), a)
        out = self.post_events([ev("ext:U-TOTAL", "1")])
        self.assertEqual(out["results"][0]["status"], "accepted", out)
        self.assertEqual(self.get_account("U-TOTAL")["exposure"], "21")
        ans = self.authorize("U-TOTAL", "1")
        self.assertFalse(ans["allowed"], ans)
        self.assertEqual(ans["status"], "suspended", ans)
        self.assertEqual(ans["total_remaining"], "0", ans)
        h = self.history("U-TOTAL")
        self.assertTrue(any(x["cause"] == "usage" and x["reasons"] == ["total_limit"]
                            for x in h), h)

    def test_06b_authorize_unknown_and_bad(self):
        ans = self.authorize("U-NOBODY", "1")
        self.assertEqual((ans["allowed"], ans["reason"]), (False, "unknown_account"), ans)
        r = self.request("POST", "/v1/authorize", {"account": "ext:U-MIX", "amount": "0"},
                         token="platform")
        self.assertError(r, 400, "validation_failed")
        r = self.request("POST", "/v1/authorize", {"account": "ext:U-MIX", "amount": 1},
                         token="platform")
        self.assertError(r, 400, "validation_failed")

    def test_07_too_many_events_413(self):
        self.account("U-MANY")
        e = ev("ext:U-MANY", "1")
        events = [dict(e, id=uid()) for _ in range(10001)]
        r = self.request("POST", "/v1/events", events, token="platform")
        self.assertError(r, 413, "too_large")
        self.assertEqual(self.get_account("U-MANY")["unbilled_usage"], "0")

    def test_08_body_too_large_413(self):
        d = harness.Daemon(self.cluster.conninfo(), test_clock=T0,
                           config={"billing": {"timezone": "Europe/Berlin"},
                                   "server": {"max_body_bytes": "4096"}})
        try:
            d.start()
            d.wait_ready()
            # (this daemon may catch up December's invoice run meanwhile, which
            # bills the 0.000001 December event: count January's usage)
            before = Decimal(self.get_account("U-MIX")["monthly_usage"])
            small = [ev("ext:U-MIX", "0.5")]
            r = d.request("POST", "/v1/events", small, token="platform")
            self.assertEqual(r.status, 200, r.text)
            self.assertEqual(r.json["accepted"], 1, r.text)
            big = [ev("ext:U-MIX", "0.5") for _ in range(40)]
            data = json.dumps(big).encode()
            self.assertGreater(len(data), 4096)
            r = d.request("POST", "/v1/events", data, token="platform",
                          headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 413, r.text)
            if r.json is not None:
                self.assertEqual(r.json["error"]["code"], "too_large", r.text)
            # the boundary: exactly max_body_bytes passes, one byte more is 413
            one = json.dumps([ev("ext:U-MIX", "0.5")]).encode()
            exact = one + b" " * (4096 - len(one))
            r = d.request("POST", "/v1/events", exact + b" ", token="platform",
                          headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 413, r.text)
            r = d.request("POST", "/v1/events", exact, token="platform",
                          headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 200, r.text)
            self.assertEqual(r.json["accepted"], 1, r.text)
        finally:
            code = d.stop() if d.is_running() else 0
            d.destroy()
        self.assertEqual(code, 0)
        # nothing from the too-large bodies was recorded (two small ones were)
        # nothing lost, nothing counted twice: the two accepted 0.5 events
        self.assertEqual(Decimal(self.get_account("U-MIX")["monthly_usage"]),
                         before + Decimal("1.0"))

    def test_99_berlin_month_rollover(self):
        # Runs last: moves the clock to 2026-01-31T22:00:00Z (Berlin 23:00, Jan 31).
        self.account("U-BERLIN", monthly_limit="5")
        r = self.request("PUT", "/v1/test/clock", {"now": "2026-01-31T22:00:00Z"})
        self.assertStatus(r, 200)
        out = self.post_events([ev("ext:U-BERLIN", "3", occurred_at="2026-01-31T21:59:00Z")])
        self.assertEqual(out["accepted"], 1, out)
        a = self.get_account("U-BERLIN")
        self.assertEqual((a["monthly_usage"], a["monthly_remaining"]), ("3", "2"), a)
        # U-MONTH is still suspended for January (Berlin)
        self.assertEqual(self.get_account("U-MONTH")["status"], "suspended")

        # Berlin 2026-02-01T00:00:01+01:00: the month rolls over
        r = self.request("PUT", "/v1/test/clock", {"now": "2026-01-31T23:00:01Z"})
        self.assertStatus(r, 200)
        a = self.get_account("U-BERLIN")
        self.assertEqual((a["monthly_usage"], a["monthly_remaining"], a["unbilled_usage"]),
                         ("0", "5", "3"), a)
        ans = self.authorize("U-BERLIN", "5")
        self.assertEqual((ans["allowed"], ans["monthly_remaining"]), (True, "5"), ans)

        m = self.get_account("U-MONTH")
        self.assertEqual((m["status"], m["suspension_reasons"]), ("active", []), m)
        self.assertEqual((m["monthly_usage"], m["unbilled_usage"], m["monthly_remaining"]),
                         ("0", "10.75", "10"), m)
        h = self.history("U-MONTH")
        self.assertEqual(h[0]["cause"], "month_rollover", h)
        self.assertEqual(h[0]["status"], "active", h)
        ans = self.authorize("U-MONTH", "10")
        self.assertEqual((ans["allowed"], ans["status"]), (True, "active"), ans)
        kinds = [n["kind"] for n in self.notifications("U-MONTH")]
        self.assertIn("account.reactivated", kinds)

        # total_limit is not lifted by the rollover
        t = self.get_account("U-TOTAL")
        self.assertEqual((t["status"], t["suspension_reasons"]), ("suspended", ["total_limit"]))

        # Berlin is UTC+1 in winter: 23:00:00Z is Feb 1 00:00 (February), while
        # 22:59:59Z and 22:30Z are still Jan 31 in Berlin (January: unbilled,
        # but not part of February's monthly usage).
        out = self.post_events([
            ev("ext:U-BERLIN", "1.5", occurred_at="2026-01-31T23:00:00Z"),
            ev("ext:U-BERLIN", "0.25", occurred_at="2026-01-31T22:59:59Z"),
            ev("ext:U-BERLIN", "0.125", occurred_at="2026-01-31T22:30:00Z"),
        ])
        self.assertEqual(out["accepted"], 3, out)
        a = self.get_account("U-BERLIN")
        self.assertEqual((a["monthly_usage"], a["unbilled_usage"]), ("1.5", "4.875"), a)
        ans = self.authorize("U-BERLIN", "3.5")
        self.assertEqual((ans["allowed"], ans["monthly_remaining"]), (True, "3.5"), ans)
        ans = self.authorize("U-BERLIN", "3.500001")
        self.assertEqual((ans["allowed"], ans.get("reason")), (False, "monthly_limit"), ans)


if __name__ == "__main__":
    harness.main()
