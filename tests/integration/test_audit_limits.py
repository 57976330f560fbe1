#!/usr/bin/env python3
"""Audit of the account life cycle: status and reasons, their history and
notifications, lifting, limit changes and limit requests (SPEC R2.1-R2.3,
R4.5-R4.7, R6.6, R6.7, R8.1; API.md "Accounts", "Limits"), with exact
values worked out by hand in the comments.

Billing time zone Asia/Tokyo (UTC+9, no daylight saving), so that a
billing day and its UTC day differ: local midnight is 15:00Z of the day
before; the daily job runs at 00:05 JST = 15:05Z, the invoice run on the
1st at 02:00 JST = 17:00Z of the last day of the month before.

Class AuditLimits (the module's daemon; tests run in name order and depend
on it). Timeline (Z):

  2026-01-10T01:00:00.25  accounts; a lowering scheduled at a sub-second time
  2026-01-17T01:00:00.25  the lowering takes effect (test_06)
  2026-01-31T15:00        February begins in Tokyo: the month rollover
  2026-01-31T17:00        January invoices (issue 1 Feb; AL-ALL due 1 Feb)
  2026-02-15T15:05        daily job of 16 Feb: AL-ALL 15 days overdue
  2026-02-16T01:00        February usage, payments, limit requests
  2026-02-28T17:00        February invoices (AL-RMON: 0.04 of interest)
  2026-03-02T15:05        daily job of 3 Mar: AL-RMON 15 days overdue
  2026-03-03T01:00        a payment lifts `overdue` and bounces

Class Inactivity (its own cluster and daemon, Tokyo, inactivity_months = 1)
checks R6.7 in the billing zone.
"""

import unittest
import urllib.parse

import harness

T0 = "2026-01-10T01:00:00Z"
T0_SUB = "2026-01-10T01:00:00.250000Z"        # a sub-second "now"
EFF_SUB = "2026-01-17T01:00:00.250000Z"       # T0_SUB + 7 days (limit_notice_days)
EFF_SUB_MINUS_1US = "2026-01-17T01:00:00.249999Z"
JAN_EVENT = "2026-01-10T00:30:00Z"            # 10 Jan 09:30 JST
FEB_START = "2026-01-31T15:00:00Z"            # 1 Feb 00:00 JST
FEB_START_MINUS_1US = "2026-01-31T14:59:59.999999Z"
FEB16 = "2026-02-16T01:00:00Z"                # 16 Feb 10:00 JST
FEB16_EVENT = "2026-02-16T00:30:00Z"          # 16 Feb 09:30 JST

NOTIFICATION_FIELDS = {"id", "kind", "account", "created_at", "payload"}
HISTORY_FIELDS = {"at", "status_before", "status", "reasons_before", "reasons", "cause",
                  "actor", "note", "request_id"}

uid = harness.uid


class Helpers:
    def path(self, ref, suffix=""):
        return "/v1/accounts/ext:" + urllib.parse.quote(ref, safe="") + suffix

    def use(self, ref, amount, occurred_at):
        out = self.post_events([harness.event("ext:" + ref, amount, occurred_at)])
        self.assertEqual(out["accepted"], 1, out)
        return out

    def move(self, now):
        r = self.request("PUT", "/v1/test/clock", {"now": now})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["now"], now, r.text)

    def put_limits(self, ref, body):
        r = self.request("PUT", self.path(ref, "/limits"), body, token="finance")
        self.assertStatus(r, 200)
        return r.json

    def pay(self, ref, amount, received_at):
        body = {"id": uid(), "account": "ext:" + ref, "amount": amount,
                "received_at": received_at, "reference": "SEPA " + ref}
        r = self.request("POST", "/v1/payments", body, token="finance")
        self.assertStatus(r, 201)
        return r.json

    def manual(self, ref, action, note):
        r = self.request("POST", self.path(ref, "/" + action), {"note": note}, token="finance")
        self.assertStatus(r, 200)
        return r.json

    def state(self, ref):
        a = self.get_account(ref)
        return (a["status"], a["suspension_reasons"])

    def money(self, ref, *keys):
        a = self.get_account(ref)
        return tuple(a[k] for k in keys)

    def assertFieldError(self, r, status, code, field):
        self.assertError(r, status, code)
        self.assertEqual(r.json["error"].get("field"), field, r.text)

    def assertOneNotificationPerChange(self, ref, acc_id):
        """R2.3/R8.1: every history row after the creation has exactly one
        account.* notification, at the same time with the same cause and
        reasons; and every notification has API.md's fields."""
        hist = [h for h in self.history(ref) if h["cause"] != "created"]
        for h in hist:
            self.assertEqual(set(h), HISTORY_FIELDS, h)
        ns = self.notifications(ref)
        for n in ns:
            self.assertEqual(set(n), NOTIFICATION_FIELDS, n)
            self.assertEqual(n["account"], acc_id, n)
            self.assertEqual(n["payload"]["account"], acc_id, n)
        acct = [n for n in ns if n["kind"] in ("account.suspended", "account.reactivated")]
        self.assertEqual(
            sorted((n["created_at"], n["payload"]["cause"], n["payload"]["reasons"],
                    n["kind"]) for n in acct),
            sorted((h["at"], h["cause"], h["reasons"],
                    "account.reactivated" if h["status"] == "active" else "account.suspended")
                   for h in hist), (hist, acct))
        return hist


class AuditLimits(Helpers, harness.DaemonTestCase):
    TEST_CLOCK = T0
    CONFIG = {"billing": {"timezone": "Asia/Tokyo"}}

    # -- R4.6 with a sub-second "now": every place that shows effective_at
    #    shows the same instant (the real clock always has microseconds)

    def test_04_lowerings_scheduled_at_a_sub_second_time(self):
        self.move(T0_SUB)
        self.account("AL-US", monthly_limit="100", total_limit="100")
        self.use("AL-US", "50", JAN_EVENT)
        out = self.put_limits("AL-US", {"monthly_limit": "40", "total_limit": "50",
                                        "reason": "risk review"})
        # lowering both: scheduled at now + 7 days, to the microsecond
        self.assertEqual(out, {"applied": False, "effective_at": EFF_SUB})
        # an approved request that lowers
        self.account("AL-USQ", monthly_limit="100")
        r = self.request("POST", self.path("AL-USQ", "/limit-requests"),
                         {"monthly_limit": "60", "note": "cap"}, token="finance")
        self.assertStatus(r, 201)
        r = self.request("POST", f"/v1/limit-requests/{r.json['id']}/approve", {},
                         token="finance")
        self.assertStatus(r, 200)
        self.assertEqual((r.json["status"], r.json["applied"], r.json["effective_at"],
                          r.json["decided_at"]), ("approved", False, EFF_SUB, T0_SUB), r.text)

    def test_05_effective_at_is_one_instant_everywhere(self):
        # the change list, the account's pending changes and the notices show
        # the instant the answer gave (they showed it cut to the second:
        # sql/0026)
        acc = self.get_account("AL-US")
        ch = self.request("GET", self.path("AL-US", "/limit-changes"), token="read").json
        self.assertEqual([(c["status"], c["effective_at"], c["created_at"])
                          for c in ch["items"]], [("scheduled", EFF_SUB, T0_SUB)], ch)
        self.assertEqual([(p["monthly_limit"], p["total_limit"], p["effective_at"])
                          for p in acc["pending_limit_changes"]], [("40", "50", EFF_SUB)], acc)
        ns = self.notifications("AL-US", "limit.change_scheduled")
        self.assertEqual([(n["created_at"], n["payload"]["effective_at"],
                           n["payload"]["monthly_limit"], n["payload"]["total_limit"])
                          for n in ns], [(T0_SUB, EFF_SUB, "40", "50")], ns)
        self.assertEqual(ns[0]["account"], acc["id"], ns)

        a = self.get_account("AL-USQ")
        self.assertEqual([p["effective_at"] for p in a["pending_limit_changes"]], [EFF_SUB], a)
        ns = self.notifications("AL-USQ", "limit_request.decided")
        self.assertEqual([(n["payload"]["status"], n["payload"]["applied"],
                           n["payload"]["effective_at"]) for n in ns],
                         [("approved", False, EFF_SUB)], ns)
        ns = self.notifications("AL-USQ", "limit.change_scheduled")
        self.assertEqual([n["payload"]["effective_at"] for n in ns], [EFF_SUB], ns)

    # -- R4.6: the scheduler applies a lowering at its exact time and
    #    re-evaluates the account (R4.3: usage 50 >= 40, exposure 50 >= 50)

    def test_06_scheduled_lowering_applied_at_its_microsecond(self):
        self.move(EFF_SUB_MINUS_1US)
        a = self.get_account("AL-US")
        self.assertEqual((a["monthly_limit"], a["total_limit"], len(a["pending_limit_changes"]),
                          a["status"]), ("100", "100", 1, "active"), a)
        self.assertTrue(self.authorize("AL-US", "50")["allowed"])
        self.move(EFF_SUB)
        a = self.get_account("AL-US")
        self.assertEqual((a["monthly_limit"], a["total_limit"], a["pending_limit_changes"]),
                         ("40", "50", []), a)
        self.assertEqual((a["monthly_usage"], a["exposure"], a["monthly_remaining"],
                          a["total_remaining"]), ("50", "50", "0", "0"), a)
        # both reasons at once: one history row, one notification; the
        # actor is who decided the change (as for a scheduled reactivation),
        # the cause says the change took effect
        self.assertEqual((a["status"], a["suspension_reasons"]),
                         ("suspended", ["monthly_limit", "total_limit"]), a)
        h = self.history("AL-US")
        self.assertEqual({k: h[0][k] for k in ("at", "status_before", "status",
                                               "reasons_before", "reasons", "cause", "actor")},
                         {"at": EFF_SUB, "status_before": "active", "status": "suspended",
                          "reasons_before": [], "reasons": ["monthly_limit", "total_limit"],
                          "cause": "limit_change", "actor": "finance"}, h)
        ns = self.notifications("AL-US", "limit.changed")
        self.assertEqual([(n["created_at"], n["payload"]["monthly_limit"],
                           n["payload"]["total_limit"], n["payload"]["reason"]) for n in ns],
                         [(EFF_SUB, "40", "50", "risk review")], ns)
        ns = self.notifications("AL-US", "account.suspended")
        self.assertEqual([(n["created_at"], n["payload"]["reasons"], n["payload"]["cause"])
                          for n in ns],
                         [(EFF_SUB, ["monthly_limit", "total_limit"], "limit_change")], ns)
        ch = self.request("GET", self.path("AL-US", "/limit-changes"), token="read").json
        self.assertEqual([(c["status"], c["applied_at"]) for c in ch["items"]],
                         [("applied", EFF_SUB)], ch)
        ans = self.authorize("AL-US", "0.000001")
        self.assertEqual((ans["allowed"], ans["reason"], ans["status"]),
                         (False, "suspended", "suspended"), ans)
        # the approved request's lowering, due at the same time (no usage)
        a = self.get_account("AL-USQ")
        self.assertEqual((a["monthly_limit"], a["status"], a["pending_limit_changes"]),
                         ("60", "active", []), a)

    # -- R4.5: the month rollover in the billing zone lifts monthly_limit,
    #    and only that reason; at the month's start, actor system

    def test_10_rollover_lifts_monthly_limit_only(self):
        occ = "2026-01-17T01:00:00Z"                  # 17 Jan 10:00 JST
        self.account("AL-RMON", monthly_limit="10")
        self.use("AL-RMON", "10", occ)
        r_man = self.account("AL-RMAN", monthly_limit="10")
        self.use("AL-RMAN", "10", occ)
        self.manual("AL-RMAN", "suspend", "fraud check")
        self.account("AL-RTOT", monthly_limit="10", total_limit="10")
        self.use("AL-RTOT", "10", occ)
        # for test_20: 90.00 of January usage, payment terms 0 days
        self.account("AL-ALL", monthly_limit="100", total_limit="250", payment_terms_days=0)
        self.use("AL-ALL", "90", occ)
        self.assertEqual(self.state("AL-RMAN"), ("suspended", ["manual", "monthly_limit"]))
        self.assertEqual(self.state("AL-RTOT"), ("suspended", ["monthly_limit", "total_limit"]))

        # 31 Jan 23:59:59.999999 JST: still January
        self.move(FEB_START_MINUS_1US)
        self.assertEqual(self.state("AL-RMON"), ("suspended", ["monthly_limit"]))
        self.assertEqual(self.money("AL-RMON", "monthly_usage"), ("10",))

        self.move(FEB_START)
        a = self.get_account("AL-RMON")
        self.assertEqual((a["status"], a["suspension_reasons"], a["monthly_usage"],
                          a["monthly_remaining"], a["unbilled_usage"]),
                         ("active", [], "0", "10", "10"), a)
        h = self.history("AL-RMON")
        self.assertEqual({k: h[0][k] for k in ("at", "status_before", "status",
                                               "reasons_before", "reasons", "cause", "actor")},
                         {"at": FEB_START, "status_before": "suspended", "status": "active",
                          "reasons_before": ["monthly_limit"], "reasons": [],
                          "cause": "month_rollover", "actor": "system"}, h)
        ns = self.notifications("AL-RMON", "account.reactivated")
        self.assertEqual([(n["created_at"], n["payload"]["cause"]) for n in ns],
                         [(FEB_START, "month_rollover")], ns)
        # manual stays (R4.5: removed only by a person)
        self.assertEqual(self.state("AL-RMAN"), ("suspended", ["manual"]))
        self.assertEqual(self.history("AL-RMAN")[0]["cause"], "month_rollover")
        self.assertOneNotificationPerChange("AL-RMAN", r_man["id"])
        # total_limit stays: exposure 10 still reaches the total limit 10
        self.assertEqual(self.state("AL-RTOT"), ("suspended", ["total_limit"]))
        # AL-US: February's usage 0 < 40, exposure 50 >= 50
        self.assertEqual(self.state("AL-US"), ("suspended", ["total_limit"]))
        self.assertTrue(self.authorize("AL-RMON", "10")["allowed"])
        self.assertFalse(self.authorize("AL-RMAN", "0.01")["allowed"])

    # -- R6.6 in the billing zone, then R2.2: all reasons at once, each
    #    lifted on its own; R4.5 manual is never lifted automatically

    def test_20_overdue_boundary(self):
        # AL-ALL's January invoice: issued 1 Feb (JST), due 1 Feb (terms 0);
        # overdue from 2 Feb. 15 Feb is day 14: not yet suspended (R6.6:
        # more than 14 days)
        self.move("2026-02-14T15:10:00Z")             # 15 Feb 00:10 JST
        a = self.get_account("AL-ALL")
        # interest 2-15 Feb, 14 days at 12 % (contractual, above DE's
        # 1.27 + 9 = 10.27): 90 x 0.12 x 14 / 365 = 0.4142465... -> 0.414247
        self.assertEqual((a["status"], a["open_balance"], a["accrued_interest"],
                          a["unbilled_usage"]), ("active", "90", "0.414247", "0"), a)
        self.move("2026-02-15T15:10:00Z")             # 16 Feb 00:10 JST: day 15
        a = self.get_account("AL-ALL")
        # 15 days: 90 x 0.12 x 15 / 365 = 0.4438356... -> 0.443836
        self.assertEqual((a["status"], a["suspension_reasons"], a["accrued_interest"]),
                         ("suspended", ["overdue"], "0.443836"), a)
        h = self.history("AL-ALL")
        self.assertEqual((h[0]["at"], h[0]["cause"], h[0]["actor"], h[0]["reasons"]),
                         ("2026-02-15T15:05:00Z", "overdue", "system", ["overdue"]), h)

    def test_21_every_reason_at_once_and_lifted_one_by_one(self):
        acc_id = self.get_account("AL-ALL")["id"]
        self.move(FEB16)
        # February: 100 reaches the monthly limit 100; 60 more takes exposure
        # to 90 + 160 + 0.443836 = 250.443836 >= 250
        self.use("AL-ALL", "100", FEB16_EVENT)
        self.assertEqual(self.state("AL-ALL"), ("suspended", ["monthly_limit", "overdue"]))
        self.use("AL-ALL", "60", FEB16_EVENT)
        self.manual("AL-ALL", "suspend", "fraud check")
        a = self.get_account("AL-ALL")
        self.assertEqual((a["status"], a["suspension_reasons"]),
                         ("suspended", ["manual", "monthly_limit", "overdue", "total_limit"]), a)
        self.assertEqual((a["monthly_usage"], a["unbilled_usage"], a["open_balance"],
                          a["exposure"], a["monthly_remaining"], a["total_remaining"]),
                         ("160", "160", "90", "250.443836", "0", "0"), a)

        # 90.00 pays the January invoice: exposure 160.443836 < 250 lifts
        # total_limit; overdue stays (the interest, 0.44 when posted, is not
        # covered); monthly_limit stays (exposure > 0)
        out = self.pay("AL-ALL", "90.00", FEB16)
        self.assertEqual(out["credit"], "0", out)
        a = self.get_account("AL-ALL")
        self.assertEqual((a["suspension_reasons"], a["exposure"], a["open_balance"]),
                         (["manual", "monthly_limit", "overdue"], "160.443836", "0"), a)
        h = self.history("AL-ALL")[0]
        self.assertEqual((h["cause"], h["actor"], h["reasons_before"], h["reasons"], h["at"]),
                         ("payment", "finance",
                          ["manual", "monthly_limit", "overdue", "total_limit"],
                          ["manual", "monthly_limit", "overdue"], FEB16), h)

        # 0.44 of credit covers the interest as it will be posted: overdue
        # goes; exposure 160.443836 - 0.44 = 160.003836
        self.pay("AL-ALL", "0.44", FEB16)
        a = self.get_account("AL-ALL")
        self.assertEqual((a["suspension_reasons"], a["exposure"], a["credit_balance"]),
                         (["manual", "monthly_limit"], "160.003836", "0.44"), a)
        self.assertEqual(self.history("AL-ALL")[0]["cause"], "payment")

        # 160.01 more: exposure 160.443836 - 160.45 = -0.006164 <= 0 lifts
        # monthly_limit and restarts the counter; manual stays
        self.pay("AL-ALL", "160.01", FEB16)
        a = self.get_account("AL-ALL")
        self.assertEqual((a["status"], a["suspension_reasons"], a["exposure"],
                          a["monthly_usage"], a["monthly_remaining"]),
                         ("suspended", ["manual"], "-0.006164", "0", "100"), a)
        ans = self.authorize("AL-ALL", "1")
        self.assertEqual((ans["allowed"], ans["reason"], ans["monthly_remaining"]),
                         (False, "suspended", "100"), ans)

        self.manual("AL-ALL", "unsuspend", "cleared")
        self.assertEqual(self.state("AL-ALL"), ("active", []))
        self.assertTrue(self.authorize("AL-ALL", "100")["allowed"])

        hist = self.assertOneNotificationPerChange("AL-ALL", acc_id)
        # newest first: unsuspend, three payments, manual, total, monthly, overdue
        self.assertEqual([(h["cause"], h["actor"], h["status"], h["reasons"]) for h in hist], [
            ("manual", "finance", "active", []),
            ("payment", "finance", "suspended", ["manual"]),
            ("payment", "system", "suspended", ["manual", "monthly_limit"]),
            ("payment", "finance", "suspended", ["manual", "monthly_limit", "overdue"]),
            ("manual", "finance", "suspended",
             ["manual", "monthly_limit", "overdue", "total_limit"]),
            ("usage", "system", "suspended", ["monthly_limit", "overdue", "total_limit"]),
            ("usage", "system", "suspended", ["monthly_limit", "overdue"]),
            ("overdue", "system", "suspended", ["overdue"]),
        ], hist)
        self.assertEqual([h["note"] for h in hist if h["cause"] == "manual"],
                         ["cleared", "fraud check"], hist)
        self.assertEqual(len(self.notifications("AL-ALL", "payment.received")), 3)

    # -- R4.7: limit requests

    def test_30_request_approved_after_a_raise_becomes_a_lowering(self):
        # requested 80 when the limit was 50; meanwhile raised to 100: the
        # approval lowers, so R4.6's notice applies (16 Feb + 7 days)
        self.account("AL-Q1", monthly_limit="50")
        r = self.request("POST", self.path("AL-Q1", "/limit-requests"),
                         {"monthly_limit": "80", "note": "busy month"}, token="finance")
        self.assertStatus(r, 201)
        rid = r.json["id"]
        self.assertEqual(self.put_limits("AL-Q1", {"monthly_limit": "100", "reason": "r"}),
                         {"applied": True, "effective_at": FEB16})
        r = self.request("POST", f"/v1/limit-requests/{rid}/approve", {}, token="finance")
        self.assertStatus(r, 200)
        self.assertEqual((r.json["applied"], r.json["effective_at"]),
                         (False, "2026-02-23T01:00:00Z"), r.text)
        a = self.get_account("AL-Q1")
        self.assertEqual((a["monthly_limit"], [(p["monthly_limit"], p["effective_at"])
                                               for p in a["pending_limit_changes"]]),
                         ("100", [("80", "2026-02-23T01:00:00Z")]), a)
        self.assertEqual([n["payload"]["monthly_limit"]
                          for n in self.notifications("AL-Q1", "limit.changed")], ["100"])
        self.assertEqual(len(self.notifications("AL-Q1", "limit.change_scheduled")), 1)
        self.assertEqual(len(self.notifications("AL-Q1", "limit_request.decided")), 1)

    def test_31_decline_needs_a_written_reason(self):
        self.account("AL-Q2", monthly_limit="50")
        r = self.request("POST", self.path("AL-Q2", "/limit-requests"),
                         {"total_limit": "500", "note": "n"}, token="finance")
        self.assertStatus(r, 201)
        rid = r.json["id"]
        for body, field in (({"reason": ""}, "reason"), ({"reason": None}, "reason"),
                            ({"reason": 5}, "reason"), ({}, "reason")):
            r = self.request("POST", f"/v1/limit-requests/{rid}/decline", body,
                             token="finance")
            self.assertFieldError(r, 400, "validation_failed", field)
        r = self.request("POST", f"/v1/limit-requests/{rid}/decline",
                         {"reason": "x", "effective_at": FEB16}, token="finance")
        self.assertError(r, 400, "validation_failed")
        g = self.request("GET", "/v1/limit-requests/" + rid, token="read").json
        self.assertEqual((g["status"], g["decline_reason"]), ("pending", None), g)
        self.assertEqual(self.notifications("AL-Q2", "limit_request.decided"), [])

    def test_32_terminated_account_request_cannot_be_approved(self):
        self.account("AL-Q3", monthly_limit="50")
        r = self.request("POST", self.path("AL-Q3", "/limit-requests"),
                         {"monthly_limit": "70", "note": "n"}, token="finance")
        self.assertStatus(r, 201)
        rid = r.json["id"]
        r = self.request("POST", self.path("AL-Q3", "/terminate"), {"note": "closed"},
                         token="finance")
        self.assertStatus(r, 200)
        r = self.request("POST", f"/v1/limit-requests/{rid}/approve", {}, token="finance")
        self.assertError(r, 422, "invalid_state")
        g = self.request("GET", "/v1/limit-requests/" + rid, token="read").json
        # closed by the termination (R4.7, sql/0038)
        self.assertEqual((g["status"], g["decline_reason"]), ("declined", "account terminated"), g)
        a = self.get_account("AL-Q3")
        self.assertEqual((a["status"], a["monthly_limit"]), ("terminated", "50"), a)
        self.assertEqual(self.notifications("AL-Q3", "limit.changed"), [])


    # -- R4.4 with R4.6: setting the limit in force again is no new limit

    def test_35_same_limit_again_does_not_repeat_alerts(self):
        # 8.5 of 10 = 85 %: the 80 % alert of each limit, once
        self.account("AL-AL", monthly_limit="10", total_limit="10")
        self.use("AL-AL", "8.5", FEB16_EVENT)
        alerts = lambda: sorted((n["payload"]["limit"], n["payload"]["threshold_percent"],
                                 n["payload"]["limit_amount"])
                                for n in self.notifications("AL-AL", "usage.threshold"))
        self.assertEqual(alerts(), [("monthly", 80, "10"), ("total", 80, "10")])
        self.assertEqual(self.put_limits("AL-AL", {"monthly_limit": "10", "total_limit": "10",
                                                   "reason": "confirmed"}),
                         {"applied": True, "effective_at": FEB16})
        # the same limits: nothing crossed anew this month (sql/0026)
        self.assertEqual(alerts(), [("monthly", 80, "10"), ("total", 80, "10")])
        # a new limit re-arms (README): 8.5 of 10.5 = 80.95 %
        self.put_limits("AL-AL", {"monthly_limit": "10.5", "reason": "more"})
        self.assertEqual(alerts(), [("monthly", 80, "10"), ("monthly", 80, "10.5"),
                                    ("total", 80, "10")])

    def test_36_notice_of_a_scheduled_removal_names_it(self):
        self.account("AL-RM", monthly_limit="10", total_limit="20")
        eff = "2026-02-20T00:00:00Z"
        self.assertEqual(self.put_limits("AL-RM", {"monthly_limit": None, "effective_at": eff,
                                                   "reason": "no cap"}),
                         {"applied": False, "effective_at": eff})
        a = self.get_account("AL-RM")
        self.assertEqual([{k: v for k, v in p.items() if k != "id"}
                          for p in a["pending_limit_changes"]],
                         [{"monthly_limit_removed": True, "effective_at": eff}], a)
        ns = self.notifications("AL-RM", "limit.change_scheduled")
        self.assertEqual(len(ns), 1, ns)
        p = ns[0]["payload"]
        self.assertEqual((p["monthly_limit"], p.get("monthly_limit_removed"), p["total_limit"],
                          p.get("total_limit_removed"), p["effective_at"]),
                         (None, True, None, None, eff), ns)

    # -- R4.6: a change falling due while a request supersedes it

    def test_40_due_change_and_a_newer_change_do_not_deadlock(self):
        # The scheduler locked the due change, then its account; a request
        # changing the same limit locks the account, then the scheduled
        # change (to supersede it). Hold the account's lock elsewhere so
        # that the request queues for it first and the scheduler, holding
        # the change, queues behind it: the request then waits for the
        # change, the scheduler for the account. PostgreSQL aborted the
        # scheduler as a deadlock victim ("retrying in 10 s"), so the clock
        # move answered with its due work undone (sql/0026: the account
        # first, like every other writer).
        acc = self.account("AL-DL", monthly_limit="100")
        due = "2026-02-16T01:00:01Z"
        self.assertEqual(self.put_limits("AL-DL", {"monthly_limit": "200", "effective_at": due,
                                                   "reason": "scheduled raise"}),
                         {"applied": False, "effective_at": due})
        mark = self.daemon.log_size()
        with self.open_transaction("alim_locker",
                                   f"SELECT 1 FROM accounts WHERE id = '{acc['id']}' FOR UPDATE;"):
            _, put = self.request_in_background(
                self.daemon, "PUT", self.path("AL-DL", "/limits"),
                {"monthly_limit": "300", "reason": "newer"}, "finance")
            self.wait_for_sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                              "'Lock' AND query LIKE '%creditd_set_limits%'",
                              "the request never waited for the account")
            _, clock = self.request_in_background(self.daemon, "PUT", "/v1/test/clock",
                                                  {"now": due}, "admin")
            # the scheduler waits for the account too (with the fix it has
            # locked nothing yet)
            self.wait_for_sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                              "'Lock' AND query LIKE '%creditd_apply_due_limit_changes%'",
                              "the scheduler never waited for the account")
        harness.wait_for(lambda: "r" in put and "r" in clock, 30, "the answers")
        self.assertEqual(put["r"][:2], (200, b'{"applied":true,"effective_at":"%s"}\n'
                                        % FEB16.encode()), put)
        self.assertEqual(clock["r"][0], 200, clock)
        self.assertNotIn("deadlock", self.daemon.log_text_since(mark))
        a = self.get_account("AL-DL")
        self.assertEqual((a["monthly_limit"], a["pending_limit_changes"]), ("300", []), a)
        ch = self.request("GET", self.path("AL-DL", "/limit-changes"), token="read").json
        self.assertEqual([(c["status"], c["monthly_limit"]) for c in ch["items"]],
                         [("applied", "300"), ("superseded", "200")], ch)
        self.assertEqual([n["payload"]["monthly_limit"]
                          for n in self.notifications("AL-DL", "limit.changed")], ["300"])


    # -- R6.6 with R6.1: a bounced payment does not leave the account
    #    unsuspended

    def test_50_overdue_suspension_in_march(self):
        # AL-RMON's January invoice (10.00, issued 1 Feb, due 16 Feb, terms
        # 15) is 15 days overdue on 3 Mar (JST): suspended by that day's job
        self.move("2026-03-02T15:10:00Z")             # 3 Mar 00:10 JST
        a = self.get_account("AL-RMON")
        self.assertEqual((a["status"], a["suspension_reasons"]), ("suspended", ["overdue"]), a)
        # interest: 17-28 Feb, 12 days: 10 x 0.12 x 12 / 365 = 0.0394520...,
        # posted 0.04 on the February invoice (issued 1 Mar, due 16 Mar);
        # 1-3 Mar accrued: 10 x 0.12 x 3 / 365 = 0.0098630... -> 0.009863
        self.assertEqual((a["open_balance"], a["accrued_interest"]), ("10.04", "0.009863"), a)

    # was a defect: reversing the payment that lifted `overdue` left the
    # account active with its January invoice 15 days overdue until the next
    # daily job (00:05 the next day); the reversal now runs the daily job's
    # rule for that account (sql/0029_reversal_overdue.sql)
    def test_51_reversal_restores_the_overdue_suspension(self):
        now = "2026-03-03T01:00:00Z"                  # 3 Mar 10:00 JST
        self.move(now)
        # 11.00: 10.00 to January's invoice, 0.04 to February's (oldest due
        # first), 0.96 credit covers the 0.01 of interest to post: lifted
        out = self.pay("AL-RMON", "11.00", now)
        self.assertEqual(out["credit"], "0.96", out)
        self.assertEqual(self.state("AL-RMON"), ("active", []))
        r = self.request("POST", f"/v1/payments/{out['payment']}/reverse", {"reason": "bounced"},
                         token="finance")
        self.assertStatus(r, 200)
        a = self.get_account("AL-RMON")
        self.assertEqual((a["open_balance"], a["credit_balance"]), ("10.04", "0"), a)
        self.assertEqual((a["status"], a["suspension_reasons"]), ("suspended", ["overdue"]), a)

    def test_52_next_daily_job_suspends_again(self):
        self.move("2026-03-03T15:10:00Z")             # 4 Mar 00:10 JST
        self.assertEqual(self.state("AL-RMON"), ("suspended", ["overdue"]))
        self.assertOneNotificationPerChange("AL-RMON", self.get_account("AL-RMON")["id"])


class Inactivity(Helpers, harness.DaemonTestCase):
    """R6.7 in the billing zone (Asia/Tokyo), inactivity_months = 1, on its
    own cluster and daemon. I-1 and I-2 are created at 2026-01-10T16:00Z
    (11 Jan 01:00 JST) and never used: one month without an event is over
    at 2026-02-10T16:00Z (11 Feb 01:00 JST)."""

    CREATED = "2026-01-10T16:00:00Z"

    @classmethod
    def setUpClass(cls):
        unittest.TestCase.setUpClass()
        cls.env = harness.start_env(
            config={"billing": {"timezone": "Asia/Tokyo"},
                    "overdue": {"inactivity_months": 1}},
            test_clock=cls.CREATED)
        cls.daemon = cls.env.daemon
        cls.cluster = cls.env.cluster

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    # the daily job of 11 Feb (JST) runs at 2026-02-10T15:05Z, 55 minutes
    # before a month without events is over: (p_day - 1 month) is local
    # midnight in the billing zone (the session's TimeZone, daemon/migrate.c)
    def test_1_not_suspended_before_a_month_without_events(self):
        self.account("I-1")
        self.account("I-2")
        self.move("2026-02-10T15:10:00Z")             # 11 Feb 00:10 JST
        self.assertEqual(self.state("I-1"), ("active", []))

    def test_2_suspended_by_the_next_daily_job(self):
        self.move("2026-02-11T15:10:00Z")             # 12 Feb 00:10 JST
        for ref in ("I-1", "I-2"):
            self.assertEqual(self.state(ref), ("suspended", ["inactivity"]))
            h = self.history(ref)[0]
            self.assertEqual((h["cause"], h["actor"], h["reasons_before"]),
                             ("inactivity", "system", []), h)
            self.assertIn(h["at"], ("2026-02-10T15:05:00Z", "2026-02-11T15:05:00Z"), h)

    def test_3_reactivation_counts_working_days_in_the_billing_zone(self):
        # Saturday 14 Feb 08:00 JST (Friday 23:00Z): the weekend start counts
        # as Friday, + 3 working days = Wednesday 18 Feb 08:00 JST =
        # 2026-02-17T23:00Z (in UTC days it would be Wednesday 23:00Z)
        self.move("2026-02-13T23:00:00Z")
        i1 = self.get_account("I-1")["id"]
        r = self.request("POST", self.path("I-1", "/reactivation"), {"note": "back"},
                         token="finance")
        self.assertStatus(r, 200)
        self.assertEqual((r.json["effective_at"], r.json["applied"]),
                         ("2026-02-17T23:00:00Z", False), r.text)
        self.move("2026-02-17T22:59:59.999999Z")
        self.assertEqual(self.state("I-1"), ("suspended", ["inactivity"]))
        self.move("2026-02-17T23:00:00Z")
        self.assertEqual(self.state("I-1"), ("active", []))
        h = self.history("I-1")[0]
        self.assertEqual((h["at"], h["cause"], h["actor"], h["note"]),
                         ("2026-02-17T23:00:00Z", "reactivation", "finance", "back"), h)
        self.assertOneNotificationPerChange("I-1", i1)

    def test_4_reactivation_leaves_the_other_reasons(self):
        i2 = self.get_account("I-2")["id"]
        self.manual("I-2", "suspend", "dispute")
        r = self.request("POST", self.path("I-2", "/reactivation"),
                         {"override": True, "note": "approved"}, token="finance")
        self.assertStatus(r, 200)
        self.assertEqual((r.json["applied"], r.json["effective_at"]),
                         (True, "2026-02-17T23:00:00Z"), r.text)
        self.assertEqual(self.state("I-2"), ("suspended", ["manual"]))
        r = self.request("POST", self.path("I-2", "/reactivation"), {}, token="finance")
        self.assertError(r, 422, "invalid_state")
        self.assertOneNotificationPerChange("I-2", i2)


if __name__ == "__main__":
    harness.main()
