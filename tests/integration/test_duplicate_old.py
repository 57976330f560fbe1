#!/usr/bin/env python3
"""R3.3 for events re-sent after max_event_age (default 35 days): an event that
was accepted and is sent again later is answered `duplicate` (same payload) or
`conflict` (another payload), never `rejected`; an old id that was never
stored stays `rejected` (invalid_time), and so does an old event with another
fault or for an unknown account (API.md "Usage").

One timeline, tests in name order: test_01 stores events at the test clock's
start (2026-01-15T10:00:00Z) and moves the clock 40 days; the others re-send
them. Billing zone UTC."""

from decimal import Decimal
import json
import re
import time

import harness

T0 = "2026-01-15T10:00:00Z"
T40 = "2026-02-24T10:00:00Z"  # T0 + 40 days
OCC = "2026-01-15T09:00:00Z"  # when the stored events occurred

OLD_MESSAGE = "occurred_at: older than max_event_age"


uid = harness.uid


def ev(account, amount, occurred_at=OCC, service="sms", **extra):
    return harness.event(account, amount, occurred_at, service, **extra)


class DuplicateOld(harness.DaemonTestCase):
    TEST_CLOCK = T0
    CONFIG = {"billing": {"timezone": "UTC"}}

    stored: dict = {}  # name -> event accepted at T0

    # -- helpers

    def account(self, ref):
        r = self.request("POST", "/v1/accounts",
                         {"external_ref": ref, "name": "Customer " + ref, "currency": "EUR",
                          "jurisdiction": "DE"})
        self.assertStatus(r, 201)

    def post_events(self, body, headers=None):
        """POST for the platform; 503 (the account cache reloads after a clock
        move) is retried as its Retry-After asks."""
        for _ in range(200):
            r = self.request("POST", "/v1/events", body, token="platform", headers=headers)
            if r.status != 503:
                break
            time.sleep(0.05)
        self.assertStatus(r, 200)
        return r.json

    def post_ndjson(self, events):
        text = "\n".join(json.dumps(e) for e in events) + "\n"
        return self.post_events(text, headers={"Content-Type": "application/x-ndjson"})

    def answers(self, out):
        return [(x["status"], x.get("reason")) for x in out["results"]]

    def counts(self, out):
        return (out["accepted"], out["duplicate"], out["conflict"], out["rejected"])

    def snapshot(self):
        """What a re-sent event must not change: every account's usage and
        exposure, the events and the usage rollups."""
        accounts = {}
        for ref in ("D-A", "D-B", "D-T"):
            r = self.request("GET", "/v1/accounts/ext:" + ref, token="read")
            self.assertStatus(r, 200)
            accounts[ref] = {k: r.json[k] for k in ("status", "unbilled_usage",
                                                    "monthly_usage", "exposure")}
        events = self.psql("SELECT count(*), sum(amount), sum(quantity) FROM events").strip()
        rollups = self.psql("SELECT count(*), sum(amount), sum(quantity), sum(events) "
                            "FROM usage_rollups").strip()
        return accounts, events, rollups

    def metric(self, status):
        r = self.request("GET", "/metrics", token="ops")
        self.assertStatus(r, 200)
        m = re.search(r'^creditd_events_total\{status="%s"\} (\d+)$' % status, r.text, re.M)
        return int(m.group(1)) if m else 0

    # -- tests

    def test_01_store_then_move_clock(self):
        for ref in ("D-A", "D-B", "D-T"):
            self.account(ref)
        s = self.__class__.stored
        s["dup_dest"] = ev("ext:D-A", "1.25", destination="DE", quantity=3)
        s["dup_plain"] = ev("ext:D-A", "2")
        s["conf"] = ev("ext:D-A", "3")
        s["mix"] = ev("ext:D-A", "0.5")
        s["mix_conf"] = ev("ext:D-A", "0.25")
        s["nd_dup"] = ev("ext:D-A", "0.75")
        s["nd_conf"] = ev("ext:D-A", "0.8")
        s["faulty"] = ev("ext:D-A", "4")
        s["term"] = ev("ext:D-T", "5")
        out = self.post_events(list(s.values()))
        self.assertEqual(self.answers(out), [("accepted", None)] * len(s), out)
        # D-T is terminated now; its event above occurred before
        r = self.request("POST", "/v1/accounts/ext:D-T/terminate", {"note": "contract ended"},
                         token="finance")
        self.assertStatus(r, 200)
        r = self.request("PUT", "/v1/test/clock", {"now": T40})
        self.assertStatus(r, 200)

    def test_02_resent_old_event_is_duplicate(self):
        s = self.stored
        before = self.snapshot()
        dups = self.metric("duplicate")
        batch = [dict(s["dup_dest"]), dict(s["dup_plain"])]
        out = self.post_events(batch)
        self.assertEqual(self.answers(out), [("duplicate", None)] * 2, out)
        self.assertEqual([x["id"] for x in out["results"]], [e["id"] for e in batch])
        self.assertEqual(self.counts(out), (0, 2, 0, 0), out)
        for x in out["results"]:
            self.assertNotIn("message", x, x)
            self.assertEqual(x.get("account_status"), "active", x)
        # the id in upper case is the same id; the account by its UUID is the same account
        acc_id = self.request("GET", "/v1/accounts/ext:D-A", token="read").json["id"]
        again = dict(s["dup_plain"], id=s["dup_plain"]["id"].upper(), account=acc_id)
        out = self.post_events([again])
        self.assertEqual(self.answers(out), [("duplicate", None)], out)
        self.assertEqual(out["results"][0]["id"], again["id"])
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.metric("duplicate"), dups + 3)

    def test_03_resent_old_event_with_another_payload_is_conflict(self):
        s = self.stored
        before = self.snapshot()
        batch = [
            dict(s["conf"], amount="3.5"),                        # amount
            dict(s["dup_dest"], destination="FR"),                # destination
            dict(s["dup_dest"], quantity=2),                      # quantity
            dict(s["dup_plain"], service="voice"),                # service
            dict(s["dup_plain"], account="ext:D-B"),              # another (known) account
            dict(s["conf"], occurred_at="2026-01-15T09:00:01Z"),  # occurred_at, still old
        ]
        out = self.post_events(batch)
        self.assertEqual(self.answers(out), [("conflict", None)] * len(batch), out)
        self.assertEqual(self.counts(out), (0, 0, len(batch), 0), out)
        self.assertEqual(self.snapshot(), before)

    def test_04_old_events_that_stay_rejected(self):
        s = self.stored
        before = self.snapshot()
        old_faulty = dict(s["faulty"], colour="blue")
        batch = [
            ev("ext:D-A", "1"),                                   # never stored
            ev("ext:D-NO-SUCH-ACCOUNT", "1"),                     # unknown account
            dict(s["dup_plain"], account="ext:D-NO-SUCH"),        # stored id, unknown account
            old_faulty,                                           # stored id, unknown field
            dict(s["faulty"], amount="0"),                        # stored id, bad amount
            dict(s["faulty"], quantity=0),                        # stored id, bad quantity
            # R3.5 unaffected: D-T terminated at T0; this occurred after
            ev("ext:D-T", "1", occurred_at="2026-01-15T10:01:00Z"),
            dict(s["dup_plain"]),                                 # and one old duplicate
        ]
        out = self.post_events(batch)
        self.assertEqual(self.answers(out), [
            ("rejected", "invalid_time"),
            ("rejected", "invalid_time"),
            ("rejected", "invalid_time"),
            ("rejected", "invalid_field"),
            ("rejected", "invalid_amount"),
            ("rejected", "invalid_field"),
            ("rejected", "invalid_time"),
            ("duplicate", None),
        ], out)
        for k in (0, 1, 2, 6):
            self.assertEqual(out["results"][k].get("message"), OLD_MESSAGE, out)
        self.assertNotIn("account_status", out["results"][6], out)
        self.assertEqual(self.counts(out), (0, 1, 0, len(batch) - 1), out)
        self.assertEqual(self.snapshot(), before)

    def test_05_terminated_account_earlier_event_is_duplicate(self):
        # R3.5: events before the termination were recorded; re-sent they are duplicates
        s = self.stored
        before = self.snapshot()
        out = self.post_events([dict(s["term"]), dict(s["term"], amount="5.01")])
        self.assertEqual(self.answers(out), [("duplicate", None), ("conflict", None)], out)
        self.assertEqual([x.get("account_status") for x in out["results"]],
                         ["terminated", "terminated"], out)
        self.assertEqual(self.snapshot(), before)

    def test_06_mixed_request_in_input_order(self):
        s = self.stored
        before = self.snapshot()
        new = ev("ext:D-A", "0.125", occurred_at="2026-02-24T09:00:00Z")
        batch = [
            ev("ext:D-A", "1", occurred_at="2026-02-24T10:05:01Z"),  # 0 too far ahead
            dict(s["mix"]),                                          # 1 old duplicate
            new,                                                     # 2 new, good
            ev("ext:D-A", "-1"),                                     # 3 bad amount (and old)
            ev("ext:D-A", "2"),                                      # 4 old, never stored
            dict(s["mix_conf"], amount="0.26"),                      # 5 old conflict
            dict(new),                                               # 6 repeated in the request
            ev("ext:D-NOPE", "1", occurred_at="2026-02-24T09:00:00Z"),  # 7 unknown account
            dict(s["mix"]),                                          # 8 the same old duplicate
        ]
        out = self.post_events({"events": batch})
        self.assertEqual(self.answers(out), [
            ("rejected", "invalid_time"),
            ("duplicate", None),
            ("accepted", None),
            ("rejected", "invalid_amount"),
            ("rejected", "invalid_time"),
            ("conflict", None),
            ("duplicate", None),
            ("rejected", "unknown_account"),
            ("duplicate", None),
        ], json.dumps(out, indent=1))
        self.assertEqual([x["id"] for x in out["results"]], [e["id"] for e in batch])
        self.assertEqual(self.counts(out), (1, 3, 1, 4), out)
        after = self.snapshot()
        a0, a1 = before[0]["D-A"], after[0]["D-A"]
        # exactly the new event was added (February: this month's usage too)
        self.assertEqual(a1["unbilled_usage"], _plus(a0["unbilled_usage"], "0.125"), after)
        self.assertEqual(a1["monthly_usage"], _plus(a0["monthly_usage"], "0.125"), after)
        self.assertEqual(a1["exposure"], _plus(a0["exposure"], "0.125"), after)
        self.assertEqual(after[0]["D-B"], before[0]["D-B"])
        n0 = int(before[1].split("|")[0])
        self.assertEqual(int(after[1].split("|")[0]), n0 + 1, after)

    def test_07_ndjson(self):
        s = self.stored
        before = self.snapshot()
        batch = [dict(s["nd_dup"]), dict(s["nd_conf"], amount="0.81"), ev("ext:D-A", "1"),
                 dict(s["nd_dup"], service="sms sms")]
        out = self.post_ndjson(batch)
        self.assertEqual(self.answers(out), [
            ("duplicate", None),
            ("conflict", None),
            ("rejected", "invalid_time"),
            ("rejected", "invalid_field"),
        ], out)
        self.assertEqual([x["id"] for x in out["results"]], [e["id"] for e in batch])
        self.assertEqual(self.snapshot(), before)

    def test_08_many_old_events_in_one_request(self):
        # every event too old and none stored: one answer each
        out = self.post_events([ev("ext:D-A", "1") for _ in range(50)])
        self.assertEqual(self.counts(out), (0, 0, 0, 50), out)
        # many old duplicates (one lookup for the request)
        s = self.stored
        batch = [dict(s["dup_plain"]) for _ in range(300)] + [dict(s["dup_dest"])]
        out = self.post_events(batch)
        self.assertEqual(self.counts(out), (0, 301, 0, 0))


def _plus(a, b):
    v = Decimal(a) + Decimal(b)
    return format(v.normalize(), "f") if v != 0 else "0"


if __name__ == "__main__":
    harness.main()
