#!/usr/bin/env python3
"""Limit changes, limit requests and on-account payments end to end against
the real daemon and a private PostgreSQL (SPEC R4.5-R4.7; API.md "Limits",
"Payments").

Billing time zone UTC, limits.limit_notice_days at its default (7). The test
clock starts at 2026-01-15T10:00:00Z and stays there until test_90, which
moves it to 2026-01-22T10:00:00Z (the notice of every lowering scheduled
before) and on to 2026-01-25T10:00:00Z; later tests start from there. Tests
run in name order and depend on that order (earlier tests leave scheduled
changes that test_90 checks), so keep the numbering."""

import datetime
import json
import socket
import urllib.parse
import uuid

import harness

T0 = "2026-01-15T10:00:00Z"
T0_MINUS_1S = "2026-01-15T09:59:59Z"
T0_PLUS_1D = "2026-01-16T10:00:00Z"
NOTICE_END = "2026-01-22T10:00:00Z"          # T0 + 7 days
NOTICE_END_MINUS_1S = "2026-01-22T09:59:59Z"
T0_PLUS_10D = "2026-01-25T10:00:00Z"
OCCURRED = "2026-01-15T09:00:00Z"


def uid() -> str:
    return str(uuid.uuid4())


def ev(account, amount, occurred_at=OCCURRED, service="sms"):
    return {"id": uid(), "account": account, "amount": amount, "occurred_at": occurred_at,
            "service": service}


class Limits(harness.DaemonTestCase):
    TEST_CLOCK = T0

    # -- helpers

    def path(self, ref, suffix=""):
        return "/v1/accounts/ext:" + urllib.parse.quote(ref, safe="") + suffix

    def get_account(self, ref, daemon=None):
        r = (daemon or self.daemon).request("GET", self.path(ref), token="read")
        self.assertStatus(r, 200)
        return r.json

    def put_limits(self, ref, body, token="finance"):
        return self.request("PUT", self.path(ref, "/limits"), body, token=token)

    def set_limits(self, ref, **body):
        body.setdefault("reason", "test")
        r = self.put_limits(ref, body)
        self.assertStatus(r, 200)
        self.assertEqual(set(r.json), {"applied", "effective_at"}, r.text)
        return r.json

    def changes(self, ref):
        r = self.request("GET", self.path(ref, "/limit-changes"), token="read")
        self.assertStatus(r, 200)
        return r.json["items"]

    def post_events(self, events):
        r = self.request("POST", "/v1/events", events, token="platform")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["accepted"], len(events), r.text)
        return r.json

    def use(self, ref, amount, occurred_at=OCCURRED):
        return self.post_events([ev("ext:" + ref, amount, occurred_at)])

    def audit(self):
        items, after = [], 0
        self.settle_feeds()
        while True:
            r = self.request("GET", f"/v1/audit?limit=1000&after={after}")
            self.assertStatus(r, 200)
            items += r.json["items"]
            if not r.json.get("next_cursor"):
                return items
            after = r.json["next_cursor"]

    def move_clock(self, now, daemon=None):
        r = (daemon or self.daemon).request("PUT", "/v1/test/clock", {"now": now})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["now"], now, r.text)

    def assertFieldError(self, r, status, code, field):
        self.assertError(r, status, code)
        self.assertEqual(r.json["error"].get("field"), field, r.text)

    def limits_of(self, a):
        return (a["monthly_limit"], a["total_limit"])

    def status_of(self, a):
        return (a["status"], a["suspension_reasons"])

    def payment(self, ref, amount, pid=None, received_at="2026-01-14T12:00:00Z",
                reference="SEPA", expect=201):
        body = {"id": pid or uid(), "account": "ext:" + ref, "amount": amount,
                "received_at": received_at, "reference": reference}
        r = self.request("POST", "/v1/payments", body, token="finance")
        self.assertStatus(r, expect)
        return body, r.json

    # -- R4.6: raising and removing apply at once

    def test_01_raise_applies_at_once(self):
        acc = self.account("L-RAISE", monthly_limit="10", total_limit="50")
        out = self.set_limits("L-RAISE", monthly_limit="20.5", reason="more traffic")
        self.assertEqual(out, {"applied": True, "effective_at": T0})
        a = self.get_account("L-RAISE")
        self.assertEqual(self.limits_of(a), ("20.5", "50"), a)
        self.assertEqual((a["monthly_remaining"], a["total_remaining"]), ("20.5", "50"), a)
        self.assertEqual(a["pending_limit_changes"], [], a)
        ans = self.authorize("L-RAISE", "20.5")
        self.assertEqual((ans["allowed"], ans["monthly_remaining"]), (True, "20.5"), ans)

        ns = self.notifications("L-RAISE", "limit.changed")
        self.assertEqual(len(ns), 1, ns)
        p = ns[0]["payload"]
        self.assertEqual((p["monthly_limit"], p["total_limit"], p["reason"]),
                         ("20.5", "50", "more traffic"), ns)
        self.assertEqual(ns[0]["account"], acc["id"], ns)
        self.assertEqual(self.notifications("L-RAISE", "limit.change_scheduled"), [])

        ch = self.changes("L-RAISE")
        self.assertEqual(len(ch), 1, ch)
        self.assertEqual((ch[0]["status"], ch[0]["monthly_limit"], ch[0]["effective_at"],
                          ch[0]["applied_at"], ch[0]["override"], ch[0]["reason"]),
                         ("applied", "20.5", T0, T0, False, "more traffic"), ch)
        self.assertNotIn("total_limit", ch[0], ch)
        self.assertEqual(ch[0]["actor"], "finance", ch)

        # null removes a limit, at once
        out = self.set_limits("L-RAISE", total_limit=None)
        self.assertEqual(out, {"applied": True, "effective_at": T0})
        a = self.get_account("L-RAISE")
        self.assertEqual(self.limits_of(a), ("20.5", None), a)
        self.assertIsNone(a["total_remaining"], a)
        ans = self.authorize("L-RAISE", "20.5")
        self.assertEqual((ans["allowed"], ans["total_remaining"]), (True, None), ans)
        ns = self.notifications("L-RAISE", "limit.changed")
        self.assertEqual(len(ns), 2, ns)
        self.assertEqual(sorted((n["payload"]["total_limit"] is None) for n in ns),
                         [False, True], ns)

    def test_02_raise_reactivates_monthly(self):
        self.account("L-REACT", monthly_limit="10")
        self.use("L-REACT", "10")
        a = self.get_account("L-REACT")
        self.assertEqual(self.status_of(a), ("suspended", ["monthly_limit"]), a)
        self.assertFalse(self.authorize("L-REACT", "1")["allowed"])

        out = self.set_limits("L-REACT", monthly_limit="15")
        self.assertEqual(out, {"applied": True, "effective_at": T0})
        a = self.get_account("L-REACT")
        self.assertEqual(self.status_of(a), ("active", []), a)
        self.assertEqual((a["monthly_limit"], a["monthly_usage"], a["monthly_remaining"]),
                         ("15", "10", "5"), a)
        h = self.history("L-REACT")
        self.assertEqual((h[0]["status"], h[0]["reasons"], h[0]["cause"]),
                         ("active", [], "limit_change"), h)
        self.assertEqual(h[0]["reasons_before"], ["monthly_limit"], h)
        self.assertEqual(len(self.notifications("L-REACT", "account.reactivated")), 1)
        ans = self.authorize("L-REACT", "5")
        self.assertEqual((ans["allowed"], ans["status"], ans["monthly_remaining"]),
                         (True, "active", "5"), ans)
        ans = self.authorize("L-REACT", "5.000001")
        self.assertEqual((ans["allowed"], ans.get("reason")), (False, "monthly_limit"), ans)

    def test_02b_raise_reactivates_total_only_above_exposure(self):
        self.account("L-TREACT", total_limit="10")
        self.use("L-TREACT", "12")
        a = self.get_account("L-TREACT")
        self.assertEqual(self.status_of(a), ("suspended", ["total_limit"]), a)
        # exposure 12 still reaches a total limit of 12
        self.assertTrue(self.set_limits("L-TREACT", total_limit="12")["applied"])
        a = self.get_account("L-TREACT")
        self.assertEqual((a["total_limit"], a["status"], a["suspension_reasons"]),
                         ("12", "suspended", ["total_limit"]), a)
        self.assertTrue(self.set_limits("L-TREACT", total_limit="12.000001")["applied"])
        a = self.get_account("L-TREACT")
        self.assertEqual(self.status_of(a), ("active", []), a)
        self.assertEqual(a["total_remaining"], "0.000001", a)
        self.assertEqual(self.history("L-TREACT")[0]["cause"], "limit_change")
        ans = self.authorize("L-TREACT", "0.000001")
        self.assertTrue(ans["allowed"], ans)

    def test_02c_raise_one_limit_keeps_the_other_reason(self):
        self.account("L-BOTH", monthly_limit="10", total_limit="10")
        self.use("L-BOTH", "10")
        a = self.get_account("L-BOTH")
        self.assertEqual(a["status"], "suspended", a)
        self.assertEqual(sorted(a["suspension_reasons"]), ["monthly_limit", "total_limit"], a)
        self.assertTrue(self.set_limits("L-BOTH", monthly_limit="100")["applied"])
        a = self.get_account("L-BOTH")
        self.assertEqual(self.status_of(a), ("suspended", ["total_limit"]), a)
        self.assertFalse(self.authorize("L-BOTH", "1")["allowed"])

    # -- R4.6: lowering waits for the notice period

    def test_03_lowering_is_scheduled_with_notice(self):
        self.account("L-LOW", monthly_limit="10")
        self.use("L-LOW", "8")
        out = self.set_limits("L-LOW", monthly_limit="5", reason="risk review")
        self.assertEqual(out, {"applied": False, "effective_at": NOTICE_END})
        a = self.get_account("L-LOW")
        self.assertEqual(self.limits_of(a), ("10", None), a)
        self.assertEqual(self.status_of(a), ("active", []), a)
        pend = a["pending_limit_changes"]
        self.assertEqual(len(pend), 1, a)
        self.assertIsInstance(pend[0]["id"], int, a)
        self.assertEqual({k: v for k, v in pend[0].items() if k != "id"},
                         {"monthly_limit": "5", "effective_at": NOTICE_END}, a)
        # the old limit still holds
        ans = self.authorize("L-LOW", "2")
        self.assertEqual((ans["allowed"], ans["monthly_remaining"]), (True, "2"), ans)

        ns = self.notifications("L-LOW", "limit.change_scheduled")
        self.assertEqual(len(ns), 1, ns)
        p = ns[0]["payload"]
        self.assertEqual((p["monthly_limit"], p["total_limit"], p["effective_at"], p["reason"]),
                         ("5", None, NOTICE_END, "risk review"), ns)
        self.assertEqual(p["change"], pend[0]["id"], ns)
        self.assertEqual(self.notifications("L-LOW", "limit.changed"), [])

        ch = self.changes("L-LOW")
        self.assertEqual([(c["id"], c["status"], c["monthly_limit"], c["effective_at"],
                           c["applied_at"]) for c in ch],
                         [(pend[0]["id"], "scheduled", "5", NOTICE_END, None)], ch)

    def test_03b_first_limit_is_a_lowering(self):
        # no limit is the highest limit: introducing one needs the notice too
        self.account("L-NEW")
        out = self.set_limits("L-NEW", total_limit="100")
        self.assertEqual(out, {"applied": False, "effective_at": NOTICE_END})
        a = self.get_account("L-NEW")
        self.assertEqual(self.limits_of(a), (None, None), a)
        self.assertEqual([{k: v for k, v in p.items() if k != "id"}
                          for p in a["pending_limit_changes"]],
                         [{"total_limit": "100", "effective_at": NOTICE_END}], a)

    def test_04_lowering_with_effective_at(self):
        self.account("L-EFF", monthly_limit="100")
        # inside the notice period, no override
        for eff in (T0, T0_PLUS_1D, NOTICE_END_MINUS_1S):
            r = self.put_limits("L-EFF", {"monthly_limit": "50", "effective_at": eff,
                                          "reason": "x"})
            self.assertFieldError(r, 422, "notice_period", "effective_at")
        # in the past
        r = self.put_limits("L-EFF", {"monthly_limit": "50", "effective_at": T0_MINUS_1S,
                                      "reason": "x"})
        self.assertFieldError(r, 400, "validation_failed", "effective_at")
        # a raise in the past is still a past effective_at
        r = self.put_limits("L-EFF", {"monthly_limit": "500", "effective_at": T0_MINUS_1S,
                                      "reason": "x"})
        self.assertFieldError(r, 400, "validation_failed", "effective_at")
        a = self.get_account("L-EFF")
        self.assertEqual((a["monthly_limit"], a["pending_limit_changes"]), ("100", []), a)
        self.assertEqual(self.changes("L-EFF"), [])
        self.assertEqual(self.notifications("L-EFF", "limit.change_scheduled"), [])

        # after the notice period: scheduled then (an offset is normalised to UTC)
        out = self.set_limits("L-EFF", monthly_limit="50", effective_at="2026-01-25T11:00:00+01:00")
        self.assertEqual(out, {"applied": False, "effective_at": T0_PLUS_10D})
        a = self.get_account("L-EFF")
        self.assertEqual(a["monthly_limit"], "100", a)
        self.assertEqual([{k: v for k, v in p.items() if k != "id"}
                          for p in a["pending_limit_changes"]],
                         [{"monthly_limit": "50", "effective_at": T0_PLUS_10D}], a)
        ns = self.notifications("L-EFF", "limit.change_scheduled")
        self.assertEqual([n["payload"]["effective_at"] for n in ns], [T0_PLUS_10D], ns)

        # exactly the end of the notice period is allowed
        self.account("L-EFF7", monthly_limit="100")
        out = self.set_limits("L-EFF7", monthly_limit="70", effective_at=NOTICE_END)
        self.assertEqual(out, {"applied": False, "effective_at": NOTICE_END})

    # -- R4.6: audited override

    def test_05_override_applies_lowering_at_once(self):
        acc = self.account("L-OVR", monthly_limit="100")
        self.use("L-OVR", "60")
        out = self.set_limits("L-OVR", monthly_limit="50", override=True, reason="fraud")
        self.assertEqual(out, {"applied": True, "effective_at": T0})
        a = self.get_account("L-OVR")
        self.assertEqual((a["monthly_limit"], a["monthly_remaining"]), ("50", "0"), a)
        self.assertEqual(a["pending_limit_changes"], [], a)
        # re-evaluated at once (R4.3)
        self.assertEqual(self.status_of(a), ("suspended", ["monthly_limit"]), a)
        h = self.history("L-OVR")
        self.assertEqual((h[0]["status"], h[0]["reasons"], h[0]["cause"]),
                         ("suspended", ["monthly_limit"], "limit_change"), h)
        ans = self.authorize("L-OVR", "0.000001")
        self.assertFalse(ans["allowed"], ans)
        self.assertEqual(ans["status"], "suspended", ans)
        ns = self.notifications("L-OVR", "limit.changed")
        self.assertEqual([n["payload"]["monthly_limit"] for n in ns], ["50"], ns)
        self.assertEqual(self.notifications("L-OVR", "limit.change_scheduled"), [])
        self.assertEqual(len(self.notifications("L-OVR", "account.suspended")), 1)
        ch = self.changes("L-OVR")
        self.assertEqual([(c["status"], c["override"], c["reason"]) for c in ch],
                         [("applied", True, "fraud")], ch)

        au = [x for x in self.audit()
              if x["object_id"] == acc["id"] and x["action"] == "limits.override"]
        self.assertEqual(len(au), 1, au)
        self.assertEqual((au[0]["actor"], au[0]["object_type"]), ("finance", "account"), au)
        self.assertEqual(au[0]["after"]["reason"], "fraud", au)

        # override with an effective_at inside the notice: scheduled then
        out = self.set_limits("L-OVR", monthly_limit="40", override=True,
                              effective_at=T0_PLUS_1D)
        self.assertEqual(out, {"applied": False, "effective_at": T0_PLUS_1D})
        self.assertEqual(self.get_account("L-OVR")["monthly_limit"], "50")

    def test_05b_plain_set_is_audited_as_limits_set(self):
        acc = self.account("L-AUD", monthly_limit="10")
        self.set_limits("L-AUD", monthly_limit="11")
        acts = [x["action"] for x in self.audit() if x["object_id"] == acc["id"]]
        self.assertIn("limits.set", acts)
        self.assertNotIn("limits.override", acts)

    # -- R4.6: one request raising one limit and lowering the other

    def test_06_raise_and_lower_in_one_request(self):
        self.account("L-MIX", monthly_limit="10", total_limit="100")
        out = self.set_limits("L-MIX", monthly_limit="20", total_limit="50")
        self.assertEqual(out, {"applied": False, "effective_at": NOTICE_END})
        a = self.get_account("L-MIX")
        self.assertEqual(self.limits_of(a), ("20", "100"), a)
        self.assertEqual([{k: v for k, v in p.items() if k != "id"}
                          for p in a["pending_limit_changes"]],
                         [{"total_limit": "50", "effective_at": NOTICE_END}], a)
        changed = self.notifications("L-MIX", "limit.changed")
        self.assertEqual([(n["payload"]["monthly_limit"], n["payload"]["total_limit"])
                          for n in changed], [("20", "100")], changed)
        sched = self.notifications("L-MIX", "limit.change_scheduled")
        self.assertEqual([(n["payload"]["monthly_limit"], n["payload"]["total_limit"],
                           n["payload"]["effective_at"]) for n in sched],
                         [(None, "50", NOTICE_END)], sched)
        ch = self.changes("L-MIX")  # newest first
        self.assertEqual([(c["status"], c.get("monthly_limit"), c.get("total_limit"))
                          for c in ch],
                         [("scheduled", None, "50"), ("applied", "20", None)], ch)

    # -- a newer change of the same limit supersedes a scheduled one

    def test_07_newer_schedule_supersedes(self):
        self.account("L-SUP", monthly_limit="100", total_limit="1000")
        first = self.set_limits("L-SUP", monthly_limit="80")
        self.assertEqual(first, {"applied": False, "effective_at": NOTICE_END})
        second = self.set_limits("L-SUP", monthly_limit="60", effective_at=T0_PLUS_10D)
        self.assertEqual(second, {"applied": False, "effective_at": T0_PLUS_10D})
        ch = self.changes("L-SUP")
        self.assertEqual([(c["status"], c["monthly_limit"], c["effective_at"]) for c in ch],
                         [("scheduled", "60", T0_PLUS_10D), ("superseded", "80", NOTICE_END)],
                         ch)
        self.assertGreater(ch[0]["id"], ch[1]["id"])
        a = self.get_account("L-SUP")
        self.assertEqual([(p["id"], p["monthly_limit"]) for p in a["pending_limit_changes"]],
                         [(ch[0]["id"], "60")], a)
        # a change of the other limit leaves it alone
        self.set_limits("L-SUP", total_limit="900")
        ch = self.changes("L-SUP")
        self.assertEqual([(c["status"], c.get("monthly_limit"), c.get("total_limit"))
                          for c in ch],
                         [("scheduled", None, "900"), ("scheduled", "60", None),
                          ("superseded", "80", None)], ch)

    def test_07b_raise_supersedes_scheduled_lowering(self):
        self.account("L-SUP2", monthly_limit="100")
        self.set_limits("L-SUP2", monthly_limit="50")
        out = self.set_limits("L-SUP2", monthly_limit="150")
        self.assertEqual(out, {"applied": True, "effective_at": T0})
        a = self.get_account("L-SUP2")
        self.assertEqual((a["monthly_limit"], a["pending_limit_changes"]), ("150", []), a)
        ch = self.changes("L-SUP2")
        self.assertEqual([(c["status"], c["monthly_limit"]) for c in ch],
                         [("applied", "150"), ("superseded", "50")], ch)

    # -- validation and access

    def test_08_validation(self):
        acc = self.account("L-VAL", monthly_limit="10", total_limit="20")
        r = self.put_limits("L-VAL", {"reason": "nothing"})
        self.assertError(r, 400, "validation_failed")
        r = self.put_limits("L-VAL", {"reason": "nothing", "effective_at": NOTICE_END})
        self.assertError(r, 400, "validation_failed")
        for field in ("monthly_limit", "total_limit"):
            for bad in (5, 5.5, "-1", "abc", "1.0000001", True, [], {}):
                r = self.put_limits("L-VAL", {field: bad, "reason": "x"})
                self.assertFieldError(r, 400, "validation_failed", field)
        r = self.put_limits("L-VAL", {"monthly_limit": "50"})
        self.assertFieldError(r, 400, "validation_failed", "reason")
        r = self.put_limits("L-VAL", {"monthly_limit": "50", "reason": None})
        self.assertFieldError(r, 400, "validation_failed", "reason")
        r = self.put_limits("L-VAL", {"monthly_limit": "50", "reason": 7})
        self.assertFieldError(r, 400, "validation_failed", "reason")
        r = self.put_limits("L-VAL", {"monthly_limit": "50", "reason": "x",
                                      "effective_at": "tomorrow"})
        self.assertFieldError(r, 400, "validation_failed", "effective_at")
        r = self.put_limits("L-VAL", {"monthly_limit": "50", "reason": "x", "override": "yes"})
        self.assertFieldError(r, 400, "validation_failed", "override")
        r = self.put_limits("L-VAL", {"monthly_limit": "50", "reason": "x", "colour": "red"})
        self.assertError(r, 400, "validation_failed")
        r = self.put_limits("L-VAL", b"{not json", token="finance")
        self.assertError(r, 400, "invalid_json")

        body = {"monthly_limit": "50", "reason": "x"}
        self.assertError(self.put_limits("L-NO-SUCH", body), 404, "not_found")
        r = self.request("PUT", "/v1/accounts/" + uid() + "/limits", body, token="finance")
        self.assertError(r, 404, "not_found")
        self.assertError(self.put_limits("L-VAL", body, token="read"), 403, "forbidden")
        self.assertError(self.put_limits("L-VAL", body, token="platform"), 403, "forbidden")
        self.assertError(self.put_limits("L-VAL", body, token=None), 401, "unauthorized")

        r = self.request("GET", self.path("L-NO-SUCH", "/limit-changes"), token="read")
        self.assertError(r, 404, "not_found")

        # nothing of the above changed anything
        a = self.get_account("L-VAL")
        self.assertEqual((self.limits_of(a), a["pending_limit_changes"]),
                         (("10", "20"), []), a)
        self.assertEqual(self.changes("L-VAL"), [])
        self.assertEqual([n for n in self.notifications("L-VAL") if n["kind"].startswith("limit")],
                         [])
        # by UUID works as well as ext:
        r = self.request("PUT", "/v1/accounts/" + acc["id"] + "/limits",
                         {"total_limit": "21", "reason": "by id"}, token="finance")
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"applied": True, "effective_at": T0})
        self.assertEqual(self.get_account("L-VAL")["total_limit"], "21")

    # -- R4.7: limit requests

    def request_limit(self, ref, body, token="finance", expect=201):
        r = self.request("POST", self.path(ref, "/limit-requests"), body, token=token)
        self.assertStatus(r, expect)
        return r.json

    def get_request(self, rid):
        r = self.request("GET", "/v1/limit-requests/" + rid, token="read")
        self.assertStatus(r, 200)
        return r.json

    def test_10_limit_request_approved_raise(self):
        acc = self.account("L-REQ", monthly_limit="10")
        self.use("L-REQ", "10")
        self.assertEqual(self.get_account("L-REQ")["status"], "suspended")
        q = self.request_limit("L-REQ", {"monthly_limit": "25", "note": "busy month"})
        self.assertEqual((q["status"], q["monthly_limit"], q["note"], q["account"]),
                         ("pending", "25", "busy month", acc["id"]), q)
        self.assertNotIn("total_limit", q, q)
        self.assertIsNone(q["decline_reason"], q)
        rid = q["id"]
        uuid.UUID(rid)
        self.assertEqual(self.get_request(rid), q)
        # a request alone changes nothing
        a = self.get_account("L-REQ")
        self.assertEqual((a["monthly_limit"], a["status"], a["pending_limit_changes"]),
                         ("10", "suspended", []), a)

        r = self.request("POST", f"/v1/limit-requests/{rid}/approve", token="finance")
        self.assertStatus(r, 200)
        self.assertEqual((r.json["id"], r.json["status"], r.json["applied"],
                          r.json["effective_at"]), (rid, "approved", True, T0), r.text)
        a = self.get_account("L-REQ")
        self.assertEqual((a["monthly_limit"], a["monthly_remaining"]), ("25", "15"), a)
        self.assertEqual(self.status_of(a), ("active", []), a)
        self.assertEqual(self.history("L-REQ")[0]["cause"], "limit_change")
        self.assertTrue(self.authorize("L-REQ", "15")["allowed"])
        g = self.get_request(rid)
        self.assertEqual((g["status"], g["decided_by"], g["decided_at"]),
                         ("approved", "finance", T0), g)
        ns = self.notifications("L-REQ", "limit_request.decided")
        self.assertEqual(len(ns), 1, ns)
        self.assertEqual((ns[0]["payload"]["request"], ns[0]["payload"]["status"],
                          ns[0]["payload"]["applied"]), (rid, "approved", True), ns)
        self.assertEqual(len(self.notifications("L-REQ", "limit.changed")), 1)

        # deciding twice
        r = self.request("POST", f"/v1/limit-requests/{rid}/approve", {}, token="finance")
        self.assertError(r, 422, "invalid_state")
        r = self.request("POST", f"/v1/limit-requests/{rid}/decline", {"reason": "late"},
                         token="finance")
        self.assertError(r, 422, "invalid_state")
        self.assertEqual(self.get_request(rid)["status"], "approved")
        self.assertEqual(len(self.notifications("L-REQ", "limit_request.decided")), 1)

    def test_11_limit_request_approved_lowering_gets_notice(self):
        self.account("L-REQ2", monthly_limit="10")
        q = self.request_limit("L-REQ2", {"total_limit": "40", "note": "cap my spend"})
        r = self.request("POST", f"/v1/limit-requests/{q['id']}/approve", {}, token="finance")
        self.assertStatus(r, 200)
        self.assertEqual((r.json["status"], r.json["applied"], r.json["effective_at"]),
                         ("approved", False, NOTICE_END), r.text)
        a = self.get_account("L-REQ2")
        self.assertEqual(self.limits_of(a), ("10", None), a)
        self.assertEqual([{k: v for k, v in p.items() if k != "id"}
                          for p in a["pending_limit_changes"]],
                         [{"total_limit": "40", "effective_at": NOTICE_END}], a)
        self.assertEqual(len(self.notifications("L-REQ2", "limit.change_scheduled")), 1)
        ns = self.notifications("L-REQ2", "limit_request.decided")
        self.assertEqual([(n["payload"]["status"], n["payload"]["applied"],
                           n["payload"]["effective_at"]) for n in ns],
                         [("approved", False, NOTICE_END)], ns)

    def test_12_limit_request_declined(self):
        self.account("L-REQ3", monthly_limit="10")
        q = self.request_limit("L-REQ3", {"monthly_limit": "5", "note": "smaller please"})
        rid = q["id"]
        # approval inside the notice period: refused, request stays pending
        r = self.request("POST", f"/v1/limit-requests/{rid}/approve",
                         {"effective_at": T0_PLUS_1D}, token="finance")
        self.assertFieldError(r, 422, "notice_period", "effective_at")
        self.assertEqual(self.get_request(rid)["status"], "pending")
        self.assertEqual(self.get_account("L-REQ3")["pending_limit_changes"], [])
        self.assertEqual(self.notifications("L-REQ3", "limit_request.decided"), [])

        r = self.request("POST", f"/v1/limit-requests/{rid}/decline", {}, token="finance")
        self.assertFieldError(r, 400, "validation_failed", "reason")
        r = self.request("POST", f"/v1/limit-requests/{rid}/decline", {"reason": "x"},
                         token="read")
        self.assertError(r, 403, "forbidden")
        r = self.request("POST", f"/v1/limit-requests/{rid}/decline",
                         {"reason": "contract minimum is 10"}, token="finance")
        self.assertStatus(r, 200)
        self.assertEqual((r.json["id"], r.json["status"], r.json["decline_reason"]),
                         (rid, "declined", "contract minimum is 10"), r.text)
        g = self.get_request(rid)
        self.assertEqual((g["status"], g["decline_reason"], g["decided_by"], g["monthly_limit"]),
                         ("declined", "contract minimum is 10", "finance", "5"), g)
        a = self.get_account("L-REQ3")
        self.assertEqual((a["monthly_limit"], a["pending_limit_changes"]), ("10", []), a)
        self.assertEqual(self.changes("L-REQ3"), [])
        ns = self.notifications("L-REQ3", "limit_request.decided")
        self.assertEqual([(n["payload"]["request"], n["payload"]["status"],
                           n["payload"]["reason"]) for n in ns],
                         [(rid, "declined", "contract minimum is 10")], ns)
        for action, body in (("approve", {}), ("decline", {"reason": "again"})):
            r = self.request("POST", f"/v1/limit-requests/{rid}/{action}", body, token="finance")
            self.assertError(r, 422, "invalid_state")
        self.assertEqual(self.get_request(rid)["decline_reason"], "contract minimum is 10")

    def test_12b_limit_request_approved_with_later_effective_at(self):
        self.account("L-REQ4", monthly_limit="10")
        q = self.request_limit("L-REQ4", {"monthly_limit": "8", "note": "n"})
        r = self.request("POST", f"/v1/limit-requests/{q['id']}/approve",
                         {"effective_at": T0_PLUS_10D}, token="finance")
        self.assertStatus(r, 200)
        self.assertEqual((r.json["applied"], r.json["effective_at"]), (False, T0_PLUS_10D))
        self.assertEqual([p["effective_at"] for p in
                          self.get_account("L-REQ4")["pending_limit_changes"]], [T0_PLUS_10D])

    def test_13_limit_request_validation(self):
        self.account("L-REQV", monthly_limit="10")
        r = self.request("POST", self.path("L-REQV", "/limit-requests"), {"note": "n"},
                         token="finance")
        self.assertError(r, 400, "validation_failed")
        r = self.request("POST", self.path("L-REQV", "/limit-requests"),
                         {"monthly_limit": 20, "note": "n"}, token="finance")
        self.assertFieldError(r, 400, "validation_failed", "monthly_limit")
        r = self.request("POST", self.path("L-REQV", "/limit-requests"),
                         {"monthly_limit": "20"}, token="finance")
        self.assertFieldError(r, 400, "validation_failed", "note")
        r = self.request("POST", self.path("L-NO-SUCH", "/limit-requests"),
                         {"monthly_limit": "20", "note": "n"}, token="finance")
        self.assertError(r, 404, "not_found")
        r = self.request("POST", self.path("L-REQV", "/limit-requests"),
                         {"monthly_limit": "20", "note": "n"}, token="read")
        self.assertError(r, 403, "forbidden")
        for rid in (uid(), "not-a-uuid"):
            self.assertError(self.request("GET", "/v1/limit-requests/" + rid, token="read"),
                             404, "not_found")
            r = self.request("POST", f"/v1/limit-requests/{rid}/approve", {}, token="finance")
            self.assertError(r, 404, "not_found")
            r = self.request("POST", f"/v1/limit-requests/{rid}/decline", {"reason": "r"},
                             token="finance")
            self.assertError(r, 404, "not_found")
        r = self.request("POST", "/v1/limit-requests/" + uid() + "/approve", {},
                         token="read")
        self.assertError(r, 403, "forbidden")

    # -- R4.5 with payments (on-account credit)

    def test_20_payment_lifts_monthly_limit_at_zero_exposure(self):
        acc = self.account("P-MON", monthly_limit="10")
        self.use("P-MON", "10")
        a = self.get_account("P-MON")
        self.assertEqual(self.status_of(a), ("suspended", ["monthly_limit"]), a)

        body, out = self.payment("P-MON", "8", reference="SEPA 1")
        self.assertEqual(out, {"payment": body["id"], "account": acc["id"], "allocations": [],
                               "credit": "8"})
        a = self.get_account("P-MON")
        self.assertEqual((a["credit_balance"], a["unbilled_usage"], a["exposure"],
                          a["monthly_usage"]), ("8", "10", "2", "10"), a)
        # exposure 2 > 0: monthly_limit stays
        self.assertEqual(self.status_of(a), ("suspended", ["monthly_limit"]), a)
        self.assertFalse(self.authorize("P-MON", "1")["allowed"])

        # idempotency (R6.1)
        r = self.request("POST", "/v1/payments", body, token="finance")
        self.assertStatus(r, 200)
        self.assertEqual(r.json, out)
        for k, v in (("amount", "9"), ("reference", "SEPA 2"),
                     ("received_at", "2026-01-14T12:00:01Z")):
            r = self.request("POST", "/v1/payments", dict(body, **{k: v}), token="finance")
            self.assertError(r, 409, "conflict")
        a = self.get_account("P-MON")
        self.assertEqual((a["credit_balance"], a["exposure"]), ("8", "2"), a)
        self.assertEqual(len(self.notifications("P-MON", "payment.received")), 1)

        # exposure exactly 0 lifts monthly_limit; the counter restarts now (T0)
        body2, out2 = self.payment("P-MON", "2", reference="SEPA 2")
        self.assertEqual(out2["credit"], "2", out2)
        a = self.get_account("P-MON")
        self.assertEqual((a["credit_balance"], a["exposure"], a["unbilled_usage"]),
                         ("10", "0", "10"), a)
        self.assertEqual(self.status_of(a), ("active", []), a)
        self.assertEqual((a["monthly_usage"], a["monthly_remaining"]), ("0", "10"), a)
        h = self.history("P-MON")
        self.assertEqual((h[0]["status"], h[0]["cause"], h[0]["reasons_before"]),
                         ("active", "payment", ["monthly_limit"]), h)
        self.assertEqual(len(self.notifications("P-MON", "account.reactivated")), 1)
        ns = self.notifications("P-MON", "payment.received")
        self.assertEqual(sorted((n["payload"]["payment"], n["payload"]["amount"]) for n in ns),
                         sorted([(body["id"], "8"), (body2["id"], "2")]), ns)
        ans = self.authorize("P-MON", "10")
        self.assertEqual((ans["allowed"], ans["monthly_remaining"]), (True, "10"), ans)

        # usage from before the payment no longer counts this month; later usage does
        self.use("P-MON", "1", occurred_at="2026-01-15T09:59:59Z")
        self.use("P-MON", "3", occurred_at=T0)
        a = self.get_account("P-MON")
        self.assertEqual((a["monthly_usage"], a["unbilled_usage"], a["exposure"], a["status"]),
                         ("3", "14", "4", "active"), a)
        out = self.use("P-MON", "7", occurred_at=T0)
        self.assertEqual(out["results"][0].get("account_status"), "suspended", out)
        a = self.get_account("P-MON")
        self.assertEqual((a["monthly_usage"], a["monthly_remaining"]), ("10", "0"), a)
        self.assertEqual(self.status_of(a), ("suspended", ["monthly_limit"]), a)

    def test_21_payment_leaving_exposure_does_not_lift_monthly(self):
        # payments are whole cents (EUR minor unit); usage may have micro-units
        self.account("P-PART", monthly_limit="10")
        self.use("P-PART", "10.000001")
        self.payment("P-PART", "10")
        a = self.get_account("P-PART")
        self.assertEqual((a["exposure"], a["credit_balance"], a["monthly_usage"]),
                         ("0.000001", "10", "10.000001"), a)
        self.assertEqual(self.status_of(a), ("suspended", ["monthly_limit"]), a)
        self.assertEqual(self.notifications("P-PART", "account.reactivated"), [])

    def test_22_payment_lifts_total_limit_below_limit(self):
        self.account("P-TOT", total_limit="10")
        self.use("P-TOT", "12")
        a = self.get_account("P-TOT")
        self.assertEqual(self.status_of(a), ("suspended", ["total_limit"]), a)
        self.payment("P-TOT", "2")
        a = self.get_account("P-TOT")
        self.assertEqual((a["exposure"], a["total_remaining"]), ("10", "0"), a)
        self.assertEqual(self.status_of(a), ("suspended", ["total_limit"]), a)
        self.payment("P-TOT", "0.01")
        a = self.get_account("P-TOT")
        self.assertEqual((a["exposure"], a["total_remaining"], a["monthly_usage"]),
                         ("9.99", "0.01", "12"), a)
        self.assertEqual(self.status_of(a), ("active", []), a)
        self.assertEqual(self.history("P-TOT")[0]["cause"], "payment")
        ans = self.authorize("P-TOT", "0.01")
        self.assertEqual((ans["allowed"], ans["total_remaining"]), (True, "0.01"), ans)
        self.assertFalse(self.authorize("P-TOT", "0.010001")["allowed"])

    def test_23_payment_validation(self):
        self.account("P-VAL")
        good = {"id": uid(), "account": "ext:P-VAL", "amount": "1",
                "received_at": "2026-01-14T12:00:00Z", "reference": "r"}
        for field, bad in (("id", "nope"), ("amount", 1), ("amount", "0"), ("amount", "-1"),
                           ("received_at", "soon")):
            r = self.request("POST", "/v1/payments", dict(good, **{field: bad}), token="finance")
            self.assertFieldError(r, 400, "validation_failed", field)
        r = self.request("POST", "/v1/payments", {k: v for k, v in good.items()
                                                  if k != "reference"}, token="finance")
        self.assertFieldError(r, 400, "validation_failed", "reference")
        self.assertError(self.request("POST", "/v1/payments", good, token="read"),
                         403, "forbidden")
        a = self.get_account("P-VAL")
        self.assertEqual((a["credit_balance"], a["exposure"]), ("0", "0"), a)

    # -- R1.6 + R4.6: moving the test clock applies due changes

    def test_90_clock_applies_scheduled_changes(self):
        self.move_clock(NOTICE_END_MINUS_1S)
        a = self.get_account("L-LOW")
        self.assertEqual((a["monthly_limit"], len(a["pending_limit_changes"]), a["status"]),
                         ("10", 1, "active"), a)
        self.assertTrue(self.authorize("L-LOW", "2")["allowed"])

        self.move_clock(NOTICE_END)
        a = self.get_account("L-LOW")
        self.assertEqual((a["monthly_limit"], a["pending_limit_changes"]), ("5", []), a)
        self.assertEqual((a["monthly_usage"], a["monthly_remaining"]), ("8", "0"), a)
        self.assertEqual(self.status_of(a), ("suspended", ["monthly_limit"]), a)
        h = self.history("L-LOW")
        self.assertEqual((h[0]["status"], h[0]["reasons"], h[0]["cause"], h[0]["at"]),
                         ("suspended", ["monthly_limit"], "limit_change", NOTICE_END), h)
        ans = self.authorize("L-LOW", "0.000001")
        self.assertFalse(ans["allowed"], ans)
        self.assertEqual(ans["status"], "suspended", ans)
        ns = self.notifications("L-LOW", "limit.changed")
        self.assertEqual([(n["payload"]["monthly_limit"], n["created_at"]) for n in ns],
                         [("5", NOTICE_END)], ns)
        self.assertEqual(len(self.notifications("L-LOW", "account.suspended")), 1)
        ch = self.changes("L-LOW")
        self.assertEqual([(c["status"], c["applied_at"]) for c in ch],
                         [("applied", NOTICE_END)], ch)

        # the other changes due by now
        self.assertEqual(self.limits_of(self.get_account("L-NEW")), (None, "100"))
        self.assertEqual(self.limits_of(self.get_account("L-EFF7")), ("70", None))
        self.assertEqual(self.limits_of(self.get_account("L-MIX")), ("20", "50"))
        self.assertEqual(self.limits_of(self.get_account("L-REQ2")), ("10", "40"))
        a = self.get_account("L-OVR")  # override scheduled for T0 + 1 day
        self.assertEqual((a["monthly_limit"], a["pending_limit_changes"]), ("40", []), a)
        self.assertEqual([c["applied_at"] for c in self.changes("L-OVR")][:1], [T0_PLUS_1D])
        # not yet due, or superseded
        a = self.get_account("L-EFF")
        self.assertEqual((a["monthly_limit"], len(a["pending_limit_changes"])), ("100", 1), a)
        a = self.get_account("L-SUP")
        self.assertEqual((self.limits_of(a), [p["effective_at"] for p in
                                              a["pending_limit_changes"]]),
                         (("100", "900"), [T0_PLUS_10D]), a)
        self.assertEqual(self.get_account("L-SUP2")["monthly_limit"], "150")
        self.assertEqual(self.get_account("L-REQ4")["monthly_limit"], "10")

        self.move_clock(T0_PLUS_10D)
        self.assertEqual(self.limits_of(self.get_account("L-EFF")), ("50", None))
        self.assertEqual(self.get_account("L-REQ4")["monthly_limit"], "8")
        a = self.get_account("L-SUP")
        self.assertEqual((self.limits_of(a), a["pending_limit_changes"]),
                         (("60", "900"), []), a)
        ch = self.changes("L-SUP")
        self.assertEqual([(c["status"], c.get("monthly_limit")) for c in ch],
                         [("applied", None), ("applied", "60"), ("superseded", "80")], ch)
        self.assertEqual([n["payload"]["monthly_limit"]
                          for n in self.notifications("L-SUP", "limit.changed")
                          if n["payload"]["monthly_limit"] != "100"], ["60"])

    def pipelined(self, requests):
        """Sends several requests in one write on a fresh connection (HTTP/1.1
        pipelining) and returns [(status, parsed body)] in order."""
        data = b""
        for method, path, body, token in requests:
            raw = json.dumps(body).encode()
            data += (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Authorization: Bearer {self.daemon.secret(token)}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n"
                     "\r\n").encode() + raw
        out = []
        with socket.create_connection(("127.0.0.1", self.daemon.port), timeout=30) as s:
            s.sendall(data)
            f = s.makefile("rb")
            for _ in requests:
                status = int(f.readline().split()[1])
                length = 0
                while True:
                    line = f.readline()
                    if line in (b"\r\n", b""):
                        break
                    k, _, v = line.decode("latin-1").partition(":")
                    if k.strip().lower() == "content-length":
                        length = int(v)
                out.append((status, json.loads(f.read(length))))
        return out

    def test_91_change_scheduled_right_before_a_clock_move(self):
        # R1.6: a change scheduled by an answered request and due by the new
        # time is applied before PUT /v1/test/clock answers, even when the
        # clock request follows at once (same connection, one write). A raise
        # with an explicit effective_at is scheduled then, with no notice.
        self.account("L-RACE", monthly_limit="100")
        now = 1769335200  # 2026-01-25T10:00:00Z
        missed = []
        for i in range(1, 21):
            at = _ts(now + i)
            limits, clock = self.pipelined([
                ("PUT", self.path("L-RACE", "/limits"),
                 {"monthly_limit": str(100 + i), "effective_at": at, "reason": "race"}, "finance"),
                ("PUT", "/v1/test/clock", {"now": at}, "admin"),
            ])
            self.assertEqual(limits, (200, {"applied": False, "effective_at": at}))
            self.assertEqual(clock, (200, {"now": at}))
            a = self.get_account("L-RACE")
            if a["monthly_limit"] != str(100 + i):
                missed.append((i, a["monthly_limit"], a["pending_limit_changes"]))
        self.assertEqual(missed, [])
        ch = self.changes("L-RACE")
        self.assertEqual([(c["status"], c["applied_at"]) for c in ch[:2]],
                         [("applied", _ts(now + 20)), ("applied", _ts(now + 19))], ch)

    def test_95_restarted_daemon_applies_pending_changes(self):
        # A change scheduled before a restart still applies when it falls due.
        self.move_clock("2026-01-26T10:00:00Z")
        self.account("L-RST", monthly_limit="10")
        out = self.set_limits("L-RST", monthly_limit="30", effective_at="2026-01-27T10:00:00Z")
        self.assertEqual(out["applied"], False, out)
        d2 = harness.Daemon(self.cluster.conninfo(), test_clock="2026-01-26T10:00:00Z")
        try:
            d2.start()
            d2.wait_ready()
            self.move_clock("2026-01-27T10:00:00Z", daemon=d2)
            a = self.get_account("L-RST", daemon=d2)
            self.assertEqual((a["monthly_limit"], a["pending_limit_changes"]), ("30", []), a)
        finally:
            code = d2.stop() if d2.is_running() else 0
            d2.destroy()
        self.assertEqual(code, 0)


def _ts(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


if __name__ == "__main__":
    harness.main()
