#!/usr/bin/env python3
"""Audit of accounts, usage, authorization, limits and alerts against SPEC
R1.2, R2-R4, R8.1 and API.md (exact expected values, worked out by hand in
the comments).

Billing time zone UTC. The test clock starts at 2026-03-10T10:00:00Z and
stays there until test_90, which moves it over the March/April boundary;
test_95 moves it on to 2026-04-18 (March's invoice overdue), test_97
reloads the config with limit_notice_days = 0 (and back). Tests run in name
order and depend on it: keep the numbering."""

import json
import unittest

import harness

T0 = "2026-03-10T10:00:00Z"
OCC = "2026-03-10T09:00:00Z"
PAID = "2026-03-09T12:00:00Z"
NOTICE_END = "2026-03-17T10:00:00Z"  # T0 + 7 days


uid = harness.uid


def ev(account, amount, occurred_at=OCC, service="sms", **extra):
    return harness.event(account, amount, occurred_at, service, **extra)


class AuditUsage(harness.DaemonTestCase):
    TEST_CLOCK = T0

    # -- helpers

    def use(self, ref, amount, occurred_at=OCC):
        out = self.post_events([ev("ext:" + ref, amount, occurred_at)])
        self.assertEqual(out["accepted"], 1, out)
        return out

    def authorize(self, account, amount):
        r = self.request("POST", "/v1/authorize", {"account": account, "amount": amount},
                         token="platform")
        self.assertStatus(r, 200)
        return r.json

    def pay(self, ref, amount, received_at=PAID):
        body = {"id": uid(), "account": "ext:" + ref, "amount": amount,
                "received_at": received_at, "reference": "SEPA " + ref}
        r = self.request("POST", "/v1/payments", body, token="finance")
        self.assertStatus(r, 201)
        return r.json

    def metric(self, name):
        r = self.request("GET", "/metrics", token="read")
        self.assertStatus(r, 200)
        for line in r.text.splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
        return 0

    def assertFieldError(self, r, status, code, field):
        self.assertError(r, status, code)
        self.assertEqual(r.json["error"].get("field"), field, r.text)

    def move_clock(self, now):
        r = self.request("PUT", "/v1/test/clock", {"now": now})
        self.assertStatus(r, 200)

    # -- R4.1: only a payment that lifts a monthly_limit suspension restarts
    #    the monthly counter

    def test_10_payment_without_monthly_suspension_keeps_counter(self):
        self.account("A-PAY", monthly_limit="100")
        self.use("A-PAY", "60")
        # paid in full: exposure 60 - 60 = 0, but the account was never
        # suspended, so no monthly_limit suspension was lifted: March's usage
        # still counts from March 1 (R4.1) = 60, headroom 100 - 60 = 40
        out = self.pay("A-PAY", "60")
        self.assertEqual(out["credit"], "60", out)
        a = self.get_account("A-PAY")
        self.assertEqual((a["status"], a["exposure"], a["credit_balance"]),
                         ("active", "0", "60"), a)
        self.assertEqual((a["monthly_usage"], a["monthly_remaining"]), ("60", "40"), a)
        ans = self.authorize("ext:A-PAY", "40")
        self.assertEqual((ans["allowed"], ans["monthly_remaining"]), (True, "40"), ans)
        ans = self.authorize("ext:A-PAY", "40.000001")
        self.assertEqual((ans["allowed"], ans.get("reason")), (False, "monthly_limit"), ans)
        # 40 more reach the limit exactly: suspended (R4.3)
        out = self.use("A-PAY", "40")
        self.assertEqual(out["results"][0]["account_status"], "suspended", out)
        a = self.get_account("A-PAY")
        self.assertEqual((a["monthly_usage"], a["status"], a["suspension_reasons"]),
                         ("100", "suspended", ["monthly_limit"]), a)

    def test_11_payment_keeps_counter_without_monthly_limit(self):
        self.account("A-PAY2")
        self.use("A-PAY2", "5.25")
        self.pay("A-PAY2", "6")
        a = self.get_account("A-PAY2")
        # exposure 5.25 - 6 = -0.75; monthly usage is still March's 5.25
        self.assertEqual((a["exposure"], a["monthly_usage"], a["unbilled_usage"]),
                         ("-0.75", "5.25", "5.25"), a)

    def test_12_payment_lifting_monthly_limit_restarts_counter(self):
        # the case R4.1 names: suspended for monthly_limit, a payment brings
        # exposure to 0 -> lifted, counter from the payment (T0) on
        self.account("A-PAY3", monthly_limit="10")
        self.use("A-PAY3", "10")
        self.assertEqual(self.get_account("A-PAY3")["suspension_reasons"], ["monthly_limit"])
        self.pay("A-PAY3", "10")
        a = self.get_account("A-PAY3")
        self.assertEqual((a["status"], a["monthly_usage"], a["monthly_remaining"]),
                         ("active", "0", "10"), a)
        h = self.history("A-PAY3")
        self.assertEqual((h[0]["cause"], h[0]["reasons_before"], h[0]["reasons"]),
                         ("payment", ["monthly_limit"], []), h)

    # -- R4.4 for the total limit: exact payloads, once per threshold

    def test_20_total_limit_alerts(self):
        acc = self.account("A-TOT", total_limit="50")
        self.use("A-TOT", "39.999999")     # 79.999998 %: nothing
        self.assertEqual(self.notifications("A-TOT", "usage.threshold"), [])
        self.use("A-TOT", "0.000001")      # 40 = 80 %
        self.use("A-TOT", "4.999999")      # 44.999999: 89.99 %
        self.use("A-TOT", "0.000001")      # 45 = 90 %
        out = self.use("A-TOT", "5")       # 50 = 100 %: total_limit
        self.assertEqual(out["results"][0]["account_status"], "suspended", out)
        ns = self.notifications("A-TOT", "usage.threshold")
        got = sorted((n["payload"]["threshold_percent"], n["payload"]["limit"],
                      n["payload"]["exposure"], n["payload"]["limit_amount"],
                      n["payload"]["account"], n["account"]) for n in ns)
        self.assertEqual(got, [(80, "total", "40", "50", acc["id"], acc["id"]),
                               (90, "total", "45", "50", acc["id"], acc["id"])], ns)
        a = self.get_account("A-TOT")
        self.assertEqual((a["status"], a["suspension_reasons"], a["exposure"],
                          a["total_remaining"]), ("suspended", ["total_limit"], "50", "0"), a)
        s = self.notifications("A-TOT", "account.suspended")
        self.assertEqual([(n["payload"]["reasons"], n["payload"]["cause"]) for n in s],
                         [(["total_limit"], "usage")], s)

    def test_21_second_reason_is_recorded_and_notified(self):
        # R2.2/R2.3: total_limit joins monthly_limit on an already suspended
        # account: one more history row and one more notification
        self.account("A-TWO", monthly_limit="10", total_limit="15")
        self.use("A-TWO", "10")            # monthly 10 >= 10; exposure 10 < 15
        self.use("A-TWO", "5")             # exposure 15 >= 15
        h = [x for x in self.history("A-TWO") if x["cause"] == "usage"]
        self.assertEqual([(x["reasons_before"], x["reasons"], x["status"]) for x in h],
                         [(["monthly_limit"], ["monthly_limit", "total_limit"], "suspended"),
                          ([], ["monthly_limit"], "suspended")], h)
        s = self.notifications("A-TWO", "account.suspended")
        self.assertEqual(sorted(tuple(n["payload"]["reasons"]) for n in s),
                         [("monthly_limit",), ("monthly_limit", "total_limit")], s)
        ans = self.authorize("ext:A-TWO", "0.000001")
        self.assertEqual((ans["allowed"], ans["reason"], ans["status"], ans["monthly_remaining"],
                          ans["total_remaining"]), (False, "suspended", "suspended", "0", "0"),
                         ans)

    # -- R3.6: headroom with account credit (exposure below zero)

    def test_30_authorize_with_credit(self):
        self.account("A-CRED", monthly_limit="20", total_limit="10")
        self.pay("A-CRED", "5")
        # exposure 0 - 5 = -5: total headroom 10 - (-5) = 15; monthly 20
        a = self.get_account("A-CRED")
        self.assertEqual((a["exposure"], a["total_remaining"], a["monthly_remaining"]),
                         ("-5", "15", "20"), a)
        ans = self.authorize("ext:A-CRED", "15")
        self.assertEqual((ans["allowed"], ans["status"], ans["monthly_remaining"],
                          ans["total_remaining"]), (True, "active", "20", "15"), ans)
        ans = self.authorize("ext:A-CRED", "15.000001")
        self.assertEqual((ans["allowed"], ans["reason"]), (False, "total_limit"), ans)
        # by UUID, upper case, as well
        ans = self.authorize(a["id"].upper(), "1")
        self.assertEqual((ans["allowed"], ans["total_remaining"]), (True, "15"), ans)
        self.use("A-CRED", "14.5")
        ans = self.authorize("ext:A-CRED", "0.5")
        self.assertEqual((ans["allowed"], ans["monthly_remaining"], ans["total_remaining"]),
                         (True, "5.5", "0.5"), ans)

    def test_31_huge_limit_round_trips(self):
        top = "9223372036854.775807"  # the largest int64 micro-unit amount
        self.account("A-HUGE", monthly_limit=top, total_limit=top)
        self.use("A-HUGE", "1")
        a = self.get_account("A-HUGE")
        # 9223372036854.775807 - 1 = 9223372036853.775807
        self.assertEqual((a["monthly_limit"], a["monthly_remaining"], a["total_remaining"]),
                         (top, "9223372036853.775807", "9223372036853.775807"), a)
        ans = self.authorize("ext:A-HUGE", "1000000")
        self.assertEqual((ans["allowed"], ans["monthly_remaining"]),
                         (True, "9223372036853.775807"), ans)
        self.account("A-HUGE2", monthly_limit="9223372036854.775808", expect=400)

    # -- R1.2 on the wire, field named

    def test_40_amount_syntax_on_limits(self):
        self.account("A-SYN", monthly_limit="10")
        bad = ["", "1e3", "1E3", "+1", " 1", "1 ", "1.", ".5", "-1", "1.0000001",
               "0x10", "NaN", "Infinity", "1,5", "\u0661", "9223372036854.775808", 1, 1.5,
               True, [], {}]
        for v in bad:
            with self.subTest(value=v):
                r = self.request("PUT", "/v1/accounts/ext:A-SYN/limits",
                                 {"total_limit": v, "reason": "x"}, token="finance")
                self.assertFieldError(r, 400, "validation_failed", "total_limit")
                r = self.request("POST", "/v1/accounts",
                                 {"external_ref": "A-SYN-X", "name": "n", "currency": "EUR",
                                  "jurisdiction": "DE", "monthly_limit": v}, token="finance")
                self.assertFieldError(r, 400, "validation_failed", "monthly_limit")
                r = self.request("POST", "/v1/accounts/ext:A-SYN/limit-requests",
                                 {"monthly_limit": v, "note": "n"}, token="finance")
                self.assertFieldError(r, 400, "validation_failed", "monthly_limit")
        # accepted forms: leading zeros, "-0" (= 0 is a lowering: scheduled)
        r = self.request("PUT", "/v1/accounts/ext:A-SYN/limits",
                         {"monthly_limit": "010.500000", "reason": "x"}, token="finance")
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"applied": True, "effective_at": T0})
        self.assertEqual(self.get_account("A-SYN")["monthly_limit"], "10.5")

    def test_41_authorize_validation_names_the_field(self):
        self.account("A-AUTHV")
        cases = [
            ({"amount": "1"}, "account"),
            ({"account": "ext:A-AUTHV"}, "amount"),
            ({"account": "ext:A-AUTHV", "amount": 1}, "amount"),
            ({"account": "ext:A-AUTHV", "amount": "1.0000001"}, "amount"),
            ({"account": "ext:A-AUTHV", "amount": "-1"}, "amount"),
            ({"account": "ext:A-AUTHV", "amount": "0"}, "amount"),
            ({"account": "ext:A-AUTHV", "amount": "1e2"}, "amount"),
            ({"account": "ext:A-AUTHV", "amount": None}, "amount"),
            ({"account": 5, "amount": "1"}, "account"),
            ({"account": "x" * 141, "amount": "1"}, "account"),
            ({"account": "ext:A-AUTHV", "amount": "1", "service": "sms"}, "service"),
        ]
        for body, field in cases:
            with self.subTest(body=body):
                r = self.request("POST", "/v1/authorize", body, token="platform")
                self.assertFieldError(r, 400, "validation_failed", field)
        for raw in (b"[]", b"\"x\"", b"{", b""):
            with self.subTest(raw=raw):
                r = self.request("POST", "/v1/authorize", raw, token="platform",
                                 headers={"Content-Type": "application/json"})
                self.assertError(r, 400, "invalid_json")
        r = self.request("POST", "/v1/authorize", {"account": "ext:A-AUTHV", "amount": "1"},
                         token="read")
        self.assertError(r, 403, "forbidden")

    # -- R3.1/R3.2: event fields, one verdict per event

    def test_50_event_field_validation(self):
        self.account("A-EV")
        acc = "ext:A-EV"
        batch = [
            ev(acc, "1", quantity=0),                                     # 0
            ev(acc, "1", quantity=-1),                                    # 1
            ev(acc, "1", quantity="2"),                                   # 2
            ev(acc, "1", quantity=1.5),                                   # 3
            ev(acc, "1", quantity=2147483648),                            # 4
            ev(acc, "1", destination=""),                                 # 5
            ev(acc, "1", service=""),                                     # 6
            ev(acc, "1", service="s" * 65),                               # 7
            dict(ev(acc, "1"), amount=None),                              # 8
            ev(acc, "1000000.000001"),                                    # 9
            dict(ev(acc, "1"), account=7),                                # 10
            dict(ev(acc, "1"), id="not-a-uuid"),                          # 11
            {k: v for k, v in ev(acc, "1").items() if k != "occurred_at"},  # 12
            {k: v for k, v in ev(acc, "1").items() if k != "amount"},       # 13
            {k: v for k, v in ev(acc, "1").items() if k != "account"},      # 14
            ev(acc, "1000000", quantity=2147483647, destination=None),     # 15 ok
            ev(acc, "0.5", occurred_at="2026-03-10T11:05:00+01:00"),       # 16 ok: 10:05Z
            ev(acc, "0.5", occurred_at="2026-03-10T11:05:01+01:00"),       # 17 10:05:01Z
            ev(acc, "0.25", occurred_at="2026-02-03T10:00:00Z"),           # 18 ok: 35 days
            ev(acc, "0.25", occurred_at="2026-02-03T09:59:59.999999Z"),    # 19 too old
        ]
        out = self.post_events(batch)
        got = [(x["status"], x.get("reason")) for x in out["results"]]
        inv_f, inv_a, inv_t = ("rejected", "invalid_field"), ("rejected", "invalid_amount"), \
            ("rejected", "invalid_time")
        self.assertEqual(got, [inv_f, inv_f, inv_f, inv_f, inv_f, inv_f, inv_f, inv_f,
                               inv_a, inv_a, inv_f, inv_f, inv_t, inv_a, inv_f,
                               ("accepted", None), ("accepted", None), inv_t,
                               ("accepted", None), inv_t], json.dumps(out, indent=1))
        self.assertEqual(out["results"][11]["id"], "not-a-uuid")
        self.assertEqual((out["accepted"], out["rejected"]), (3, 17), out)
        for x in out["results"]:
            if x["status"] == "rejected":
                self.assertIsInstance(x.get("message"), str, x)
        a = self.get_account("A-EV")
        # 1000000 + 0.5 + 0.25 (February: unbilled, not monthly)
        self.assertEqual((a["unbilled_usage"], a["monthly_usage"]),
                         ("1000000.75", "1000000.5"), a)

    def test_51_idempotency_across_account_forms(self):
        acc = self.account("A-IDEM")
        other = self.account("A-IDEM2")
        e = ev("ext:A-IDEM", "2.5", destination="DE", quantity=2)
        self.assertEqual(self.post_events([e])["accepted"], 1)
        same_by_uuid = dict(e, account=acc["id"].upper(), id=e["id"].upper())
        variants = [
            same_by_uuid,                                           # duplicate
            dict(e, account="ext:A-IDEM2"),                         # other account
            dict(e, account=other["id"]),                           # other account
            dict(e, quantity=3),                                    # other quantity
            dict(e, destination="FR"),                              # other destination
            {k: v for k, v in e.items() if k != "destination"},     # no destination
            dict(e, service="voice"),                               # other service
            dict(e, occurred_at="2026-03-10T09:00:00.000001Z"),     # 1 us later
            dict(e, occurred_at="2026-03-10T10:00:00+01:00"),       # same instant
            dict(e, amount="2.500000"),                             # same amount
        ]
        out = self.post_events(variants)
        self.assertEqual([x["status"] for x in out["results"]],
                         ["duplicate", "conflict", "conflict", "conflict", "conflict",
                          "conflict", "conflict", "conflict", "duplicate", "duplicate"],
                         json.dumps(out, indent=1))
        self.assertEqual(self.get_account("A-IDEM")["unbilled_usage"], "2.5")
        self.assertEqual(self.get_account("A-IDEM2")["unbilled_usage"], "0")

    def test_52_events_while_suspended_are_counted(self):
        self.account("A-SUSP")
        r = self.request("POST", "/v1/accounts/ext:A-SUSP/suspend", {"note": "audit"},
                         token="finance")
        self.assertStatus(r, 200)
        before = self.metric("creditd_events_while_suspended_total")
        out = self.post_events([ev("ext:A-SUSP", "1"), ev("ext:A-SUSP", "2")])
        self.assertEqual([(x["status"], x["account_status"]) for x in out["results"]],
                         [("accepted", "suspended")] * 2, out)
        self.assertEqual(self.metric("creditd_events_while_suspended_total"), before + 2)
        n = self.psql("SELECT count(*) FILTER (WHERE while_suspended), count(*) FROM events e "
                      "JOIN accounts a ON a.id = e.account_id WHERE a.external_ref = 'A-SUSP'")
        self.assertEqual(n.strip(), "2|2")
        self.assertEqual(self.get_account("A-SUSP")["unbilled_usage"], "3")

    # -- R4.5/R4.6: the manual reason stays through limit lifting

    def test_60_manual_reason_survives_raise(self):
        self.account("A-MAN", monthly_limit="5")
        self.use("A-MAN", "5")
        r = self.request("POST", "/v1/accounts/ext:A-MAN/suspend", {"note": "fraud check"},
                         token="finance")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["suspension_reasons"], ["manual", "monthly_limit"], r.text)
        r = self.request("PUT", "/v1/accounts/ext:A-MAN/limits",
                         {"monthly_limit": "50", "reason": "more"}, token="finance")
        self.assertStatus(r, 200)
        a = self.get_account("A-MAN")
        self.assertEqual((a["status"], a["suspension_reasons"]), ("suspended", ["manual"]), a)
        ans = self.authorize("ext:A-MAN", "1")
        self.assertEqual((ans["allowed"], ans["reason"], ans["monthly_remaining"]),
                         (False, "suspended", "45"), ans)
        r = self.request("POST", "/v1/accounts/ext:A-MAN/unsuspend", {}, token="finance")
        self.assertFieldError(r, 400, "validation_failed", "note")
        r = self.request("POST", "/v1/accounts/ext:A-MAN/unsuspend", {"note": "cleared"},
                         token="finance")
        self.assertStatus(r, 200)
        self.assertEqual((r.json["status"], r.json["suspension_reasons"]), ("active", []))
        h = self.history("A-MAN")
        self.assertEqual((h[0]["cause"], h[0]["actor"], h[0]["note"], h[0]["status"]),
                         ("manual", "finance", "cleared", "active"), h)
        self.assertTrue(self.authorize("ext:A-MAN", "45")["allowed"])
        r = self.request("POST", "/v1/accounts/ext:A-MAN/unsuspend", {"note": "again"},
                         token="finance")
        self.assertError(r, 422, "invalid_state")

    # -- R4.6: a newer change of a limit replaces what an older scheduled
    #    change says about that limit, also when the older one set both

    def put_limits(self, ref, **body):
        body.setdefault("reason", "audit")
        r = self.request("PUT", "/v1/accounts/ext:" + ref + "/limits", body, token="finance")
        self.assertStatus(r, 200)
        return r.json

    def test_65_interest_accrual_setup(self):
        # for test_95: March usage 99.99 of a total limit of 100
        self.account("A-INT", total_limit="100")
        self.use("A-INT", "99.99")
        a = self.get_account("A-INT")
        self.assertEqual((a["status"], a["total_remaining"]), ("active", "0.01"), a)

    def test_70_raise_replaces_the_scheduled_lowering_of_that_limit(self):
        self.account("A-SPLIT", monthly_limit="100", total_limit="1000")
        out = self.put_limits("A-SPLIT", monthly_limit="50", total_limit="500")
        self.assertEqual(out, {"applied": False, "effective_at": NOTICE_END})
        out = self.put_limits("A-SPLIT", monthly_limit="200")
        self.assertEqual(out, {"applied": True, "effective_at": T0})
        a = self.get_account("A-SPLIT")
        self.assertEqual((a["monthly_limit"], a["total_limit"]), ("200", "1000"), a)
        # only the total lowering is still to come
        self.assertEqual([{k: v for k, v in p.items() if k != "id"}
                          for p in a["pending_limit_changes"]],
                         [{"total_limit": "500", "effective_at": NOTICE_END}], a)

    def test_71_later_scheduled_change_is_not_undone_by_an_older_one(self):
        # an older change {monthly 40, total 400} due at T0 + 20 days; a newer
        # {monthly 60} due at T0 + 10 days: at T0 + 20 days the monthly limit
        # stays 60 (the newer decision), the total becomes 400
        self.account("A-SPLIT2", monthly_limit="100", total_limit="1000")
        self.put_limits("A-SPLIT2", monthly_limit="40", total_limit="400",
                        effective_at="2026-03-30T10:00:00Z")
        self.put_limits("A-SPLIT2", monthly_limit="60", effective_at="2026-03-20T10:00:00Z")
        a = self.get_account("A-SPLIT2")
        self.assertEqual([{k: v for k, v in p.items() if k != "id"}
                          for p in a["pending_limit_changes"]],
                         [{"monthly_limit": "60", "effective_at": "2026-03-20T10:00:00Z"},
                          {"total_limit": "400", "effective_at": "2026-03-30T10:00:00Z"}], a)

    # -- month boundary: runs last

    def test_90_events_during_the_rollover_count_in_the_new_month(self):
        # R4.1: April's monthly usage is every April event. An event that
        # commits while the month rollover is still running (it waits for a
        # lock on another account) must not be wiped by it.
        x = self.account("A-ROLL-1", monthly_limit="10")
        y = self.account("A-ROLL-2", monthly_limit="10")
        low, high = sorted([x, y], key=lambda a: a["id"])
        self.use(high["external_ref"], "8.5")      # March: 85 % -> 80 % alert
        self.move_clock("2026-03-31T23:59:00Z")    # every March daily job done
        with self.rollover_waiting(low["id"], "2026-04-01T00:00:01Z", "audit_locker"):
            # the clock stands at the rollover's due time, April 1 00:00
            out = self.post_events([ev("ext:" + high["external_ref"], "3",
                                       occurred_at="2026-04-01T00:00:00Z")])
            self.assertEqual(out["accepted"], 1, out)
        a = self.get_account(high["external_ref"])
        # unbilled 8.5 + 3; April's usage is the 3 of April 1
        self.assertEqual((a["unbilled_usage"], a["monthly_usage"], a["monthly_remaining"]),
                         ("11.5", "3", "7"), a)
        ans = self.authorize(high["id"], "7.000001")
        self.assertEqual((ans["allowed"], ans.get("reason"), ans["monthly_remaining"]),
                         (False, "monthly_limit", "7"), ans)
        # R4.4: thresholds are per month: 3 + 5 = 8 = 80 % of April alerts again
        self.use(high["external_ref"], "5", occurred_at="2026-04-01T00:00:00Z")
        th = [(n["payload"]["threshold_percent"], n["payload"]["usage"])
              for n in self.notifications(high["external_ref"], "usage.threshold")]
        self.assertEqual(sorted(th), [(80, "8"), (80, "8.5")], th)
        self.assertEqual(self.get_account(low["external_ref"])["monthly_usage"], "0")

    def test_91_scheduled_limit_changes_applied(self):
        # (the clock passed March 17 and March 30 in test_90)
        a = self.get_account("A-SPLIT")
        self.assertEqual((a["monthly_limit"], a["total_limit"], a["pending_limit_changes"]),
                         ("200", "500", []), a)
        a = self.get_account("A-SPLIT2")
        self.assertEqual((a["monthly_limit"], a["total_limit"], a["pending_limit_changes"]),
                         ("60", "400", []), a)
        got = [(n["payload"]["monthly_limit"], n["payload"]["total_limit"])
               for n in self.notifications("A-SPLIT2", "limit.changed")]
        self.assertEqual(got, [("60", "1000"), ("60", "400")], got)

    def test_95_interest_counts_in_exposure(self):
        # R4.2: accrued interest is exposure. March's invoice (99.99, issued
        # April 1, due April 16) is overdue from April 17; at 12 % a year
        # (the DE statutory rate is lower), actual/365: 99.99 * 0.12 / 365 =
        # 0.03287342 a day; April 17 and 18: 0.06574685 -> "0.065747" exact
        # to the micro-unit; exposure 99.99 + 0.065747 = 100.055747
        self.move_clock("2026-04-18T12:00:00Z")
        a = self.get_account("A-INT")
        self.assertEqual((a["open_balance"], a["unbilled_usage"], a["accrued_interest"],
                          a["exposure"], a["total_remaining"]),
                         ("99.99", "0", "0.065747", "100.055747", "0"), a)
        # (and it suspended the account: test_96)
        ans = self.authorize("ext:A-INT", "0.000001")
        self.assertEqual((ans["allowed"], ans["reason"], ans["total_remaining"]),
                         (False, "suspended", "0"), ans)

    # R4.2/R4.3: the interest accrued by the daily job (test_95) took the
    # exposure to the total limit: suspended for total_limit (sql/0020)
    def test_96_interest_reaching_the_total_limit_suspends(self):
        a = self.get_account("A-INT")
        self.assertEqual((a["status"], a["suspension_reasons"]), ("suspended", ["total_limit"]), a)
        h = self.history("A-INT")
        self.assertEqual((h[0]["status"], h[0]["reasons"], h[0]["cause"]),
                         ("suspended", ["total_limit"], "interest"), h)

    def test_97_no_notice_period_lowers_at_once(self):
        # limits.limit_notice_days = 0: a lowering takes effect no sooner than
        # 0 days after it is scheduled, i.e. at once (R4.6)
        self.account("A-NONOTICE", monthly_limit="100")
        d = self.daemon
        d.write_config({"limits": {"limit_notice_days": "0"}})
        try:
            mark = d.log_size()
            d.reload()
            d.wait_log(r"reload: configuration .* reloaded", timeout=10, start=mark)
            now = self.request("GET", "/v1/test/clock").json["now"]
            out = self.put_limits("A-NONOTICE", monthly_limit="40")
            self.assertEqual(out, {"applied": True, "effective_at": now})
            a = self.get_account("A-NONOTICE")
            self.assertEqual((a["monthly_limit"], a["pending_limit_changes"]), ("40", []), a)
            self.assertEqual([n["payload"]["monthly_limit"]
                              for n in self.notifications("A-NONOTICE", "limit.changed")],
                             ["40"])
        finally:
            d.write_config(None)
            mark = d.log_size()
            d.reload()
            d.wait_log(r"reload: configuration .* reloaded", timeout=10, start=mark)


if __name__ == "__main__":
    harness.main()
