#!/usr/bin/env python3
"""Audit: termination, the final invoice, what runs afterwards (SPEC R2,
R3.5, R4.6, R5.6, R6.3, R6.4, R6.7, R8.1; API.md "Accounts").

One timeline, tests in name order. Billing zone UTC, the invoice run on the
1st at 02:00, inactivity_months = 2, overdue suspension after 14 days.
Every account: EUR, jurisdiction CH (no statutory rule: the contractual
rate applies), contractual rate 10 % a year, actual/365, terms 15 days.

  TX-1 a customer who leaves with everything open: January usage 100.00
       (invoice due 02-16, unpaid: suspended `overdue` on 03-03), February
       usage 50.00 (invoice 50.33 with February interest, due 03-16), March
       usage 30.00 unbilled, a payment of 20 on 03-08, a pending limit
       request and a scheduled lowering of its monthly limit (effective
       03-20). Terminated 2026-03-10T12:00Z (Tuesday).
  TX-2 idle since its creation: suspended `inactivity` on 03-06; asks for
       reactivation on 03-10 at 11:00 (effective Friday 03-13 11:00, three
       working days); terminated an hour later.
  TX-3 monthly limit 10, March usage 40 (suspended `monthly_limit`);
       terminated; its final invoice is credited in full.
  TX-4 JPY, 500 paid just before the refund window, 1000 inside it, usage
       333.5; the refundable payment bounces after the termination.
  TX-5 KWD (3 decimals); TX-6 terminated by two requests at once (May).
Classes BeforeTheRun (termination on the 1st before the run) and NewYork
(the refund window in a billing zone with DST) have their own daemons.

Defects found:
  test_09/test_12: a reactivation scheduled before the termination took
    effect after it (history row "reactivation", `inactivity` removed from
    a terminated account): fixed in sql/0036_audit_termination.sql.
  test_11b: the rest of the termination month's interest was posted by
    the next run as "interest_correction": fixed in
    sql/0037_interest_after_final.sql (test_11c: a later backdated change
    of that month is a correction again).

Interest (R6.3): rate 10 %, a day = principal x 0.10 / 365; a payment's
day bears interest on the paid amount ("up to and including the day of
payment").
"""

import time
import unittest
import urllib.parse

import harness

T0 = "2026-01-05T10:00:00Z"
TERMINATION = "2026-03-10T12:00:00Z"


def ev(ref, amount, occurred, service="sms"):
    return {"id": harness.uid(), "account": "ext:" + ref, "amount": amount,
            "occurred_at": occurred, "service": service}


class AuditTermination(harness.DaemonTestCase):
    TEST_CLOCK = T0
    CONFIG = {"overdue": {"inactivity_months": 2}}

    inv: dict = {}   # (ref, period or "final") -> invoice JSON
    hist: dict = {}  # ref -> number of history rows right after the termination

    # -- helpers

    def path(self, ref, suffix=""):
        return "/v1/accounts/ext:" + urllib.parse.quote(ref, safe="") + suffix

    def move(self, now):
        r = self.request("PUT", "/v1/test/clock", {"now": now})
        self.assertStatus(r, 200)

    def ingest(self, events):
        """POST /v1/events; 503 (the cache reloads after a clock move) is
        retried."""
        for _ in range(200):
            r = self.request("POST", "/v1/events", events, token="platform")
            if r.status != 503:
                break
            time.sleep(0.05)
        self.assertStatus(r, 200)
        return r.json

    def ok(self, r, status=200):
        self.assertStatus(r, status)
        return r.json

    def invoices(self, ref):
        r = self.request("GET", "/v1/invoices?account=ext:" + ref + "&limit=1000", token="read")
        return sorted(self.ok(r)["items"], key=lambda i: i["number"])

    def invoice(self, key):
        return self.ok(self.request("GET", "/v1/invoices/" + key, token="read"))

    def lines(self, inv):
        return [(x["kind"], x.get("period"), x["amount"], x["description"])
                for x in inv["lines"]]

    # -- the timeline

    def test_00_setup(self):
        for ref, extra in (("TX-1", {"monthly_limit": "1000", "total_limit": "5000"}),
                           ("TX-2", {}), ("TX-3", {"monthly_limit": "10"}),
                           ("TX-4", {"currency": "JPY"}), ("TX-5", {"currency": "KWD"})):
            self.account(ref, jurisdiction="CH", contractual_rate="10", **extra)
        self.move("2026-01-20T12:00:00Z")
        self.assertEqual(self.ingest([ev("TX-1", "100", "2026-01-20T11:00:00Z")])["accepted"], 1)

    def test_01_january_and_february(self):
        self.move("2026-02-01T03:00:00Z")
        (jan,) = self.invoices("TX-1")
        self.assertEqual((jan["total"], jan["due_date"]), ("100.00", "2026-02-16"), jan)
        AuditTermination.inv[("TX-1", "2026-01")] = jan
        self.move("2026-02-10T12:00:00Z")
        self.assertEqual(self.ingest([ev("TX-1", "50", "2026-02-10T11:00:00Z")])["accepted"], 1)
        self.move("2026-03-01T03:00:00Z")
        feb = [i for i in self.invoices("TX-1") if i["period"] == "2026-02"][0]
        feb = self.invoice(feb["id"])
        # February interest on January: 17..28 Feb = 12 days x 100 x 0.10 / 365
        # = 0.328767 -> 0.33; 50.00 + 0.33 = 50.33
        self.assertEqual((feb["total"], feb["due_date"]), ("50.33", "2026-03-16"), feb)
        self.assertEqual([(k, p, a) for k, p, a, _ in self.lines(feb)],
                         [("usage", None, "50.00"), ("interest", "2026-02", "0.33")], feb)
        AuditTermination.inv[("TX-1", "2026-02")] = feb

    def test_02_march_before_the_termination(self):
        self.move("2026-03-02T12:00:00Z")
        body = self.ingest([ev("TX-1", "30", "2026-03-02T11:00:00Z"),
                            ev("TX-3", "40", "2026-03-02T11:00:00Z"),
                            ev("TX-4", "333.5", "2026-03-02T11:00:00Z"),
                            ev("TX-5", "1.0005", "2026-03-02T11:00:00Z")])
        self.assertEqual(body["accepted"], 4, body)
        self.assertEqual(self.get_account("TX-3")["suspension_reasons"], ["monthly_limit"])
        # TX-1: a pending limit request and a lowering scheduled for 03-20
        r = self.request("POST", self.path("TX-1", "/limit-requests"),
                         {"monthly_limit": "2000", "note": "more please"}, token="finance")
        self.assertStatus(r, 201)
        AuditTermination.inv["request"] = r.json["id"]
        r = self.request("PUT", self.path("TX-1", "/limits"),
                         {"monthly_limit": "500", "effective_at": "2026-03-20T00:00:00Z",
                          "reason": "risk review"}, token="finance")
        self.assertEqual(self.ok(r)["applied"], False, r.text)
        self.move("2026-03-08T12:00:00Z")
        a = self.get_account("TX-1")
        # 03-03: January is more than 14 days overdue; 03-06: TX-2 idle for
        # two months (created 01-05 10:00)
        self.assertEqual((a["status"], a["suspension_reasons"]), ("suspended", ["overdue"]), a)
        self.assertEqual(self.get_account("TX-2")["suspension_reasons"], ["inactivity"])
        self.assertEqual(len(a["pending_limit_changes"]), 1, a)
        r = self.request("POST", "/v1/payments",
                         {"id": harness.uid(), "account": "ext:TX-1", "amount": "20",
                          "received_at": "2026-03-08T09:00:00Z", "reference": "part"},
                         token="finance")
        body = self.ok(r, 201)
        self.assertEqual([(x["invoice_id"], x["amount"]) for x in body["allocations"]],
                         [(self.inv[("TX-1", "2026-01")]["id"], "20")], body)
        # TX-4 (JPY) pays in advance: 500 a moment before the refund window
        # of a termination on 03-10 (from 03-03 00:00, the 7th day before),
        # 1000 inside it
        for amount, at in (("500", "2026-03-02T23:59:59Z"), ("1000", "2026-03-05T09:00:00Z")):
            r = self.request("POST", "/v1/payments",
                             {"id": harness.uid(), "account": "ext:TX-4", "amount": amount,
                              "received_at": at, "reference": "advance"}, token="finance")
            self.assertEqual(self.ok(r, 201)["credit"], amount, r.text)
            AuditTermination.inv[("TX-4", amount)] = r.json["payment"]
        self.move("2026-03-10T11:00:00Z")
        j = self.ok(self.request("POST", self.path("TX-2", "/reactivation"),
                                 {"note": "customer is back"}, token="finance"))
        # Tuesday 11:00 + 3 working days = Friday 13 March 11:00
        self.assertEqual((j["effective_at"], j["applied"]), ("2026-03-13T11:00:00Z", False), j)

    def test_03_terminate_tx1(self):
        self.move(TERMINATION)
        body = self.ok(self.request("POST", self.path("TX-1", "/terminate"),
                                    {"note": "customer left"}, token="finance"))
        fin = body["final_invoice"]
        # March usage 30.00, and March interest on January through the
        # termination day: 1..8 Mar at 100 (8 days; 03-08 is the payment's
        # day), 9..10 Mar at 80 (2 days): (800 + 160) x 0.10 / 365 = 0.263014
        # -> 0.26. Total 30.26, issued and due on the termination day.
        self.assertEqual((fin["kind"], fin["period"], fin["issue_date"], fin["due_date"],
                          fin["total"], fin["credit_applied"], fin["balance"]),
                         ("final", "2026-03", "2026-03-10", "2026-03-10", "30.26", "0.00",
                          "30.26"), fin)
        full = self.invoice(fin["id"])
        jan_no = self.inv[("TX-1", "2026-01")]["number"]
        self.assertEqual(self.lines(full), [
            ("usage", None, "30.00", "sms"),
            ("interest", "2026-03", "0.26", "Late-payment interest 2026-03 on " + jan_no)], full)
        AuditTermination.inv[("TX-1", "final")] = full
        # the February invoice (due 03-16) is due on the termination day now;
        # January's (02-16) is earlier and stays
        feb = self.inv[("TX-1", "2026-02")]
        self.assertEqual(body["accelerated_invoices"], [
            {"id": feb["id"], "number": feb["number"], "original_due_date": "2026-03-16",
             "due_date": "2026-03-10"}])
        self.assertEqual((body["refundable"], body["forfeited"], body["credit_set_off"]),
                         ("0", "0", "0"))
        acc = body["account"]
        # owed: January 100 - 20 = 80, February 50.33, final 30.26 = 160.59;
        # nothing unbilled, no interest left unposted
        self.assertEqual((acc["status"], acc["suspension_reasons"], acc["terminated_at"],
                          acc["unbilled_usage"], acc["open_balance"], acc["accrued_interest"],
                          acc["credit_balance"], acc["exposure"], acc["pending_limit_changes"]),
                         ("terminated", ["overdue"], TERMINATION, "0", "160.59", "0", "0",
                          "160.59", []), acc)
        self.assertEqual(self.get_account("TX-1")["exposure"], "160.59")
        h = self.history("TX-1")
        self.assertEqual((h[0]["status_before"], h[0]["status"], h[0]["reasons_before"],
                          h[0]["reasons"], h[0]["cause"], h[0]["note"]),
                         ("suspended", "terminated", ["overdue"], ["overdue"], "terminated",
                          "customer left"), h[0])
        AuditTermination.hist["TX-1"] = len(h)
        (n,) = self.notifications("TX-1", "account.terminated")
        p = n["payload"]
        self.assertEqual((p["final_invoice"], p["final_invoice_total"], p["refundable"],
                          p["forfeited"], p["currency"], p["terminated_at"]),
                         (fin["number"], "30.26", "0", "0", "EUR", TERMINATION), p)
        (issued,) = [x["payload"] for x in self.notifications("TX-1", "invoice.issued")
                     if x["payload"]["number"] == fin["number"]]
        self.assertEqual((issued["kind"], issued["total"], issued["due_date"]),
                         ("final", "30.26", "2026-03-10"), issued)
        # the scheduled lowering is superseded with the termination
        r = self.request("GET", self.path("TX-1", "/limit-changes"), token="read")
        self.assertEqual([c["status"] for c in self.ok(r)["items"]], ["superseded"], r.text)

    def test_04_terminate_tx2_and_tx3(self):
        body = self.ok(self.request("POST", self.path("TX-2", "/terminate"), {"note": "gone"},
                                    token="finance"))
        self.assertIsNone(body["final_invoice"])
        self.assertEqual((body["account"]["status"], body["account"]["suspension_reasons"],
                          body["accelerated_invoices"]), ("terminated", ["inactivity"], []))
        AuditTermination.hist["TX-2"] = len(self.history("TX-2"))
        body = self.ok(self.request("POST", self.path("TX-3", "/terminate"), {"note": "gone"},
                                    token="finance"))
        fin = body["final_invoice"]
        self.assertEqual((fin["total"], fin["due_date"]), ("40.00", "2026-03-10"), fin)
        self.assertEqual((body["account"]["status"], body["account"]["suspension_reasons"]),
                         ("terminated", ["monthly_limit"]))
        AuditTermination.inv[("TX-3", "final")] = fin
        AuditTermination.hist["TX-3"] = len(self.history("TX-3"))

    def test_04b_currency_decimals_and_refund(self):
        # JPY (0 decimals): 333.5 -> 334 (half away from zero, R1.3), paid
        # by credit at issue; 1500 - 334 = 1166 left, of which the payment
        # inside the window (1000) is refundable, 166 forfeited
        body = self.ok(self.request("POST", self.path("TX-4", "/terminate"), {"note": "end"},
                                    token="finance"))
        fin = body["final_invoice"]
        self.assertEqual((fin["total"], fin["credit_applied"], fin["balance"]),
                         ("334", "334", "0"), fin)
        self.assertEqual((body["refundable"], body["forfeited"], body["credit_set_off"]),
                         ("1000", "166", "0"), body)
        acc = body["account"]
        self.assertEqual((acc["credit_balance"], acc["open_balance"], acc["exposure"]),
                         ("1000", "0", "-1000"), acc)
        self.assertEqual(self.invoice(fin["id"])["total"], "334")
        # KWD (3 decimals): 1.0005 -> 1.001
        body = self.ok(self.request("POST", self.path("TX-5", "/terminate"), {"note": "end"},
                                    token="finance"))
        fin = body["final_invoice"]
        self.assertEqual((fin["total"], fin["credit_applied"], fin["balance"]),
                         ("1.001", "0.000", "1.001"), fin)
        self.assertEqual(body["account"]["open_balance"], "1.001")
        (n,) = self.notifications("TX-4", "account.terminated")
        self.assertEqual((n["payload"]["refundable"], n["payload"]["forfeited"],
                          n["payload"]["final_invoice_total"], n["payload"]["currency"]),
                         ("1000", "166", "334", "JPY"), n)

    def test_04c_refundable_payment_bounces(self):
        # the 1000 received inside the window bounce after the termination:
        # the refundable credit goes, the 166 stay forfeited, no debt
        pay = self.inv[("TX-4", "1000")]
        r = self.request("POST", f"/v1/payments/{pay}/reverse", {"reason": "bounced"},
                         token="finance")
        self.assertStatus(r, 200)
        acc = self.get_account("TX-4")
        self.assertEqual((acc["credit_balance"], acc["open_balance"], acc["exposure"]),
                         ("0", "0", "0"), acc)
        row = self.psql("SELECT creditd_amount(t.forfeited) FROM terminations t JOIN accounts a"
                        " ON a.id = t.account_id WHERE a.external_ref = 'TX-4'").strip()
        self.assertEqual(row, "166")

    def test_05_what_can_no_longer_be_done(self):
        audit = self.psql("SELECT count(*) FROM audit_log").strip()
        for path, body in (("/suspend", {"note": "x"}), ("/unsuspend", {"note": "x"}),
                           ("/reactivation", {"override": True, "note": "x"}),
                           ("/terminate", {"note": "again"})):
            for ref in ("TX-1", "TX-2"):
                r = self.request("POST", self.path(ref, path), body, token="finance")
                self.assertError(r, 422, "invalid_state")
        # bad input is 400 naming the field, before any state is looked at
        for path, body, field in (("/reactivation", {"override": "yes"}, "override"),
                                  ("/reactivation", {"note": 5}, "note"),
                                  ("/reactivation", {"override": True, "when": "now"}, "when"),
                                  ("/terminate", {"note": 5}, "note"),
                                  ("/terminate", {"note": ""}, "note"),
                                  ("/unsuspend", {}, "note")):
            r = self.request("POST", self.path("TX-1", path), body, token="finance")
            self.assertError(r, 400, "validation_failed")
            self.assertEqual(r.json["error"].get("field"), field, (path, r.text))
        r = self.request("POST", f"/v1/limit-requests/{self.inv['request']}/approve", {},
                         token="finance")
        self.assertError(r, 422, "invalid_state")
        self.assertEqual(self.psql("SELECT count(*) FROM audit_log").strip(), audit)
        for ref in ("TX-1", "TX-2"):
            self.assertEqual(len(self.history(ref)), self.hist[ref], ref)
        # the pending limit request was closed by the termination (declined
        # with its reason, sql/0038), not left pending for ever: deciding it
        # again is refused as for any decided request
        q = self.inv["request"]
        r = self.request("POST", f"/v1/limit-requests/{q}/decline",
                         {"reason": "account terminated"}, token="finance")
        self.assertError(r, 422, "invalid_state")
        r = self.request("GET", f"/v1/limit-requests/{q}", token="read")
        self.assertEqual((self.ok(r)["status"], r.json["decline_reason"]),
                         ("declined", "account terminated"), r.text)
        a = self.authorize("TX-1", "0.01")
        self.assertEqual((a["allowed"], a["reason"], a["status"]), (False, "terminated",
                                                                    "terminated"), a)

    def test_06_events_at_the_termination_instant(self):
        # R3.5: "occurred after the termination" is rejected; at the very
        # instant is not after (accepted, billed by the next run)
        at = ev("TX-1", "2.5", "2026-03-10T12:00:00Z")
        after = ev("TX-1", "1", "2026-03-10T12:00:00.000001Z")
        body = self.ingest([at, after])
        self.assertEqual([(x["status"], x.get("reason")) for x in body["results"]],
                         [("accepted", None), ("rejected", "account_terminated")], body)
        self.assertEqual(self.get_account("TX-1")["unbilled_usage"], "2.5")

    def test_07_credit_note_on_the_final_invoice(self):
        fin = self.inv[("TX-3", "final")]
        r = self.request("POST", f"/v1/invoices/{fin['id']}/credit-notes",
                         {"amount": "40.01", "reason": "goodwill"}, token="finance")
        self.assertStatus(r, 422)
        self.assertEqual(r.json["error"]["field"], "amount", r.text)
        cn = self.ok(self.request("POST", f"/v1/invoices/{fin['id']}/credit-notes",
                                  {"amount": "40", "reason": "goodwill"}, token="finance"), 201)
        self.assertEqual((cn["invoice"], cn["amount"]), (fin["id"], "40.00"), cn)
        inv = self.invoice(fin["id"])
        self.assertEqual((inv["credited"], inv["balance"], inv["status"]),
                         ("40.00", "0.00", "paid"), inv)
        a = self.get_account("TX-3")
        self.assertEqual((a["status"], a["open_balance"], a["exposure"]),
                         ("terminated", "0", "0"), a)

    def test_08_the_day_after(self):
        self.move("2026-03-11T00:10:00Z")
        feb = self.invoice(self.inv[("TX-1", "2026-02")]["id"])
        fin = self.invoice(self.inv[("TX-1", "final")]["id"])
        for inv in (feb, fin):
            self.assertEqual((inv["due_date"], inv["status"], inv["days_overdue"]),
                             ("2026-03-10", "overdue", 1), inv)
        # R6.2: the first overdue day's notice for both, none for TX-3's
        # credited final invoice
        notes = {n["payload"]["number"]: n["payload"]["days_overdue"]
                 for n in self.notifications("TX-1", "invoice.overdue")}
        self.assertEqual(notes.get(feb["number"]), 1, notes)
        self.assertEqual(notes.get(fin["number"]), 1, notes)
        self.assertEqual(self.notifications("TX-3", "invoice.overdue"), [])

    def test_09_scheduled_reactivation_of_a_terminated_account(self):
        # TX-2's reactivation was due 03-13 11:00; the account was terminated
        # meanwhile: nothing about it may change any more (status, reasons,
        # history, notifications)
        self.move("2026-03-13T11:00:01Z")
        a = self.get_account("TX-2")
        self.assertEqual((a["status"], a["suspension_reasons"]), ("terminated", ["inactivity"]),
                         a)
        h = self.history("TX-2")
        self.assertEqual(len(h), self.hist["TX-2"], h[:2])
        self.assertEqual(h[0]["cause"], "terminated", h[0])
        self.assertEqual(self.notifications("TX-2", "account.reactivated"), [])
        self.assertEqual(self.psql("SELECT r.status FROM reactivations r JOIN accounts a ON "
                                   "a.id = r.account_id WHERE a.external_ref = 'TX-2'").strip(),
                         "superseded")

    def test_10_scheduled_lowering_never_applies(self):
        self.move("2026-03-20T00:10:00Z")
        a = self.get_account("TX-1")
        self.assertEqual((a["monthly_limit"], a["pending_limit_changes"]), ("1000", []), a)
        self.assertEqual(self.notifications("TX-1", "limit.changed"), [])

    def test_11_march_run_after_the_termination(self):
        self.move("2026-04-01T03:00:00Z")
        invs = [i for i in self.invoices("TX-1") if i["period"] == "2026-03"
                and i["id"] != self.inv[("TX-1", "final")]["id"]]
        self.assertEqual(len(invs), 1, invs)
        inv = self.invoice(invs[0]["id"])
        jan, feb, fin = (self.inv[("TX-1", "2026-01")], self.inv[("TX-1", "2026-02")],
                         self.inv[("TX-1", "final")])
        # due at issue (R5.6). Lines:
        # - the event of the termination instant: 2.50
        # - March interest on January, the rest of the month: the whole of
        #   March is 8 days at 100 + 23 days at 80 = 2640 x 0.10 / 365
        #   = 0.723288 -> 0.72, of which 0.26 were posted on the final
        #   invoice: 0.46
        # - February's invoice, due 03-10: 11..31 Mar = 21 days x 50 x 0.10
        #   / 365 = 0.287671 -> 0.29 (its interest line bears none)
        # - the final invoice, due 03-10: 21 days x 30 x 0.10 / 365
        #   = 0.172603 -> 0.17
        # total 2.50 + 0.46 + 0.29 + 0.17 = 3.42
        self.assertEqual((inv["issue_date"], inv["due_date"], inv["total"]),
                         ("2026-04-01", "2026-04-01", "3.42"), inv)
        self.assertEqual(sorted(a for _, _, a, _ in self.lines(inv)),
                         ["0.17", "0.29", "0.46", "2.50"], inv)
        AuditTermination.inv[("TX-1", "2026-03")] = inv
        (n,) = [x["payload"] for x in self.notifications("TX-1", "invoice.issued")
                if x["payload"]["number"] == inv["number"]]
        self.assertEqual((n["total"], n["issue_date"], n["due_date"]),
                         ("3.42", "2026-04-01", "2026-04-01"), n)
        # nothing for TX-2 and TX-3
        self.assertEqual(self.invoices("TX-2"), [])
        self.assertEqual(len(self.invoices("TX-3")), 1)

    # (defect, fixed in 0037) the final invoice posts the termination
    # month's interest through the termination day; the rest of that
    # month, accrued on the debt afterwards, was then posted by the next run
    # as an "interest_correction" ("Interest correction 2026-03 on
    # INV-..."), although no backdated payment or reversal changed anything
    # (R6.4): it is plain late-payment interest for 11..31 March
    def test_11b_rest_of_the_termination_month_is_interest_not_a_correction(self):
        inv = self.inv[("TX-1", "2026-03")]
        jan, feb, fin = (self.inv[("TX-1", "2026-01")], self.inv[("TX-1", "2026-02")],
                         self.inv[("TX-1", "final")])
        got = sorted((k, p, a, d) for k, p, a, d in self.lines(inv) if k != "usage")
        self.assertEqual(got, sorted([
            ("interest", "2026-03", "0.46", "Late-payment interest 2026-03 on " + jan["number"]),
            ("interest", "2026-03", "0.29", "Late-payment interest 2026-03 on " + feb["number"]),
            ("interest", "2026-03", "0.17", "Late-payment interest 2026-03 on " + fin["number"]),
        ]), inv)

    def test_11c_a_later_backdated_payment_corrects_the_termination_month(self):
        # after the rest of March is posted, a payment of 10 received
        # 03-20 (a late bank statement) changes March: that is a correction
        # (R6.4), on the next run's invoice (period 2026-04)
        jan, feb, fin, mar = (self.inv[("TX-1", "2026-01")], self.inv[("TX-1", "2026-02")],
                              self.inv[("TX-1", "final")], self.inv[("TX-1", "2026-03")])
        r = self.request("POST", "/v1/payments",
                         {"id": harness.uid(), "account": "ext:TX-1", "amount": "10",
                          "received_at": "2026-03-20T09:00:00Z", "reference": "late"},
                         token="finance")
        body = self.ok(r, 201)
        self.assertEqual([(x["invoice_id"], x["amount"]) for x in body["allocations"]],
                         [(jan["id"], "10")], body)
        self.move("2026-05-01T03:00:00Z")
        (apr,) = [i for i in self.invoices("TX-1") if i["period"] == "2026-04"]
        apr = self.invoice(apr["id"])
        # March on January: 8 days at 100, 12 at 80 (03-20 is the payment's
        # day), 11 at 70 = 2530 x 0.10 / 365 = 0.693151 -> 0.69; posted
        # 0.26 + 0.46 = 0.72: -0.03. April (30 days): January 70 -> 0.58,
        # February 50 -> 0.41, final 30 -> 0.25, March's invoice (due
        # 04-01) 2.50 for 29 days -> 0.02
        self.assertEqual(sorted(self.lines(apr)), sorted([
            ("interest_correction", "2026-03", "-0.03",
             "Interest correction 2026-03 on " + jan["number"]),
            ("interest", "2026-04", "0.58", "Late-payment interest 2026-04 on " + jan["number"]),
            ("interest", "2026-04", "0.41", "Late-payment interest 2026-04 on " + feb["number"]),
            ("interest", "2026-04", "0.25", "Late-payment interest 2026-04 on " + fin["number"]),
            ("interest", "2026-04", "0.02", "Late-payment interest 2026-04 on " + mar["number"]),
        ]), apr)

    def test_12_nothing_changes_the_terminated_accounts_later(self):
        # past two months without events for TX-1 (last 03-10): no
        # inactivity, no overdue again; the rollover leaves the reasons
        self.move("2026-05-12T00:10:00Z")
        for ref, reasons in (("TX-1", ["overdue"]), ("TX-2", ["inactivity"]),
                             ("TX-3", ["monthly_limit"])):
            a = self.get_account(ref)
            self.assertEqual((a["status"], a["suspension_reasons"]), ("terminated", reasons),
                             (ref, a))
            h = self.history(ref)
            self.assertEqual(len(h), self.hist[ref], (ref, h[:3]))
            later = [n for n in self.notifications(ref) if n["created_at"] > TERMINATION
                     and n["kind"] in ("account.suspended", "account.reactivated")]
            self.assertEqual(later, [], ref)

    def test_13_two_terminations_at_once(self):
        # two finance clerks press "terminate" together: one termination,
        # one final invoice (one number), one notification; the other 422
        self.account("TX-6", jurisdiction="CH")
        self.assertEqual(self.ingest([ev("TX-6", "7.5", "2026-05-12T00:00:00Z")])["accepted"], 1)
        numbers = self.psql("SELECT count(*) FROM invoices").strip()
        threads = [self.request_in_background(self.daemon, "POST", self.path("TX-6", "/terminate"),
                                              {"note": "n%d" % i}, "finance") for i in range(2)]
        for t, _ in threads:
            t.join(30)
        got = sorted(out["r"][0] for _, out in threads)
        self.assertEqual(got, [200, 422], [out["r"] for _, out in threads])
        fins = self.psql("SELECT i.number, creditd_amount(i.total) FROM invoices i JOIN accounts"
                         " a ON a.id = i.account_id WHERE a.external_ref = 'TX-6'").split()
        self.assertEqual(len(fins), 1, fins)
        self.assertEqual(fins[0].split("|")[1], "7.5", fins)
        self.assertEqual(int(self.psql("SELECT count(*) FROM invoices").strip()),
                         int(numbers) + 1)
        self.assertEqual(len(self.notifications("TX-6", "account.terminated")), 1)
        self.assertEqual([h["cause"] for h in self.history("TX-6")], ["terminated", "created"])


class OwnDaemon(unittest.TestCase):
    """A class with a daemon of its own, started with ENV (harness.start_env
    keywords); req() retries a 503 (the cache reloads after a clock move)."""

    ENV: dict = {}

    @classmethod
    def setUpClass(cls):
        cls.env = harness.start_env(**cls.ENV)
        cls.d = cls.env.daemon

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def req(self, method, path, body=None, token="admin", status=200):
        for _ in range(200):
            r = self.d.request(method, path, body, token=token)
            if r.status != 503:
                break
            time.sleep(0.05)
        self.assertEqual(r.status, status, r.text)
        return r.json


class BeforeTheRun(OwnDaemon):
    """A termination on the 1st between the month's end and the invoice run
    (00:05 daily job, 01:00 termination, 02:00 run): February was never
    invoiced. BR-1: EUR, CH, 10 %; January usage 100.00 (invoice due
    02-16, unpaid), February usage 50.00."""

    ENV = {"test_clock": "2026-01-20T10:00:00Z"}

    def invoices(self):
        return sorted(self.req("GET", "/v1/invoices?account=ext:BR-1", token="read")["items"],
                      key=lambda i: i["number"])

    def test_terminated_before_the_run(self):
        self.req("POST", "/v1/accounts", {"external_ref": "BR-1", "name": "Before Run",
                                          "currency": "EUR", "jurisdiction": "CH",
                                          "contractual_rate": "10"}, "finance", 201)
        self.req("POST", "/v1/events", [ev("BR-1", "100", "2026-01-20T09:00:00Z")], "platform")
        self.req("PUT", "/v1/test/clock", {"now": "2026-02-20T10:00:00Z"})
        self.req("POST", "/v1/events", [ev("BR-1", "50", "2026-02-20T09:00:00Z")], "platform")
        self.req("PUT", "/v1/test/clock", {"now": "2026-03-01T01:00:00Z"})
        (jan,) = self.invoices()
        body = self.req("POST", "/v1/accounts/ext:BR-1/terminate", {"note": "end"}, "finance")
        fin = self.req("GET", "/v1/invoices/" + body["final_invoice"]["id"], token="read")
        # February's usage as a prior-period line; interest on January:
        # February 17..28 = 12 days x 100 x 0.10 / 365 = 0.328767 -> 0.33,
        # March 1 (the termination day) = 0.027397 -> 0.03; 50.36
        self.assertEqual((fin["period"], fin["issue_date"], fin["due_date"], fin["total"]),
                         ("2026-03", "2026-03-01", "2026-03-01", "50.36"), fin)
        self.assertEqual([(x["kind"], x.get("period"), x["amount"]) for x in fin["lines"]],
                         [("prior_usage", "2026-02", "50.00"), ("interest", "2026-02", "0.33"),
                          ("interest", "2026-03", "0.03")], fin)
        self.assertEqual(body["accelerated_invoices"], [])
        # the February run at 02:00 bills nothing more (R5.4: once)
        self.req("PUT", "/v1/test/clock", {"now": "2026-03-01T03:00:00Z"})
        self.assertEqual([i["id"] for i in self.invoices()], [jan["id"], fin["id"]])
        a = self.req("GET", "/v1/accounts/ext:BR-1", token="read")
        self.assertEqual((a["open_balance"], a["unbilled_usage"], a["exposure"]),
                         ("150.36", "0", "150.36"), a)
        sched = self.req("GET", "/v1/schedule", token="read")
        feb = [p for p in sched["periods"] if p["period"] == "2026-02"]
        self.assertEqual([p["invoiced"] for p in feb], [True], sched)
        # the March run: interest only. January, the rest of March: 31 days
        # x 100 x 0.10 / 365 = 0.849315 -> 0.85, 0.03 posted: 0.82; the
        # final invoice (due 03-01) 2..31 March = 30 days x 50 x 0.10 / 365
        # = 0.410959 -> 0.41; 1.23, due at issue
        self.req("PUT", "/v1/test/clock", {"now": "2026-04-01T03:00:00Z"})
        invs = self.invoices()
        self.assertEqual(len(invs), 3, invs)
        mar = self.req("GET", "/v1/invoices/" + invs[2]["id"], token="read")
        self.assertEqual((mar["period"], mar["issue_date"], mar["due_date"], mar["total"]),
                         ("2026-03", "2026-04-01", "2026-04-01", "1.23"), mar)
        self.assertEqual(sorted((x.get("invoice_number"), x["amount"]) for x in mar["lines"]),
                         sorted([(jan["number"], "0.82"), (fin["number"], "0.41")]), mar)



class NewYork(OwnDaemon):
    """R5.6's refund window in the billing zone (America/New_York; summer
    time starts on Sunday 8 March 2026). NY-1 (USD): March usage 10.00;
    100 received 2026-03-02T04:30Z (1 March 23:30 EST) and 50 received
    03-02T05:00Z (2 March 00:00 EST); terminated 03-10T03:00Z = 9 March
    23:00 EDT: termination day 9 March, window from 2 March 00:00 local."""

    ENV = {"config": {"billing": {"timezone": "America/New_York"}},
           "test_clock": "2026-03-02T12:00:00Z"}

    def test_refund_window_and_bounce_in_the_billing_zone(self):
        self.req("POST", "/v1/accounts", {"external_ref": "NY-1", "name": "New York",
                                          "currency": "USD", "jurisdiction": "CH"},
                 "finance", 201)
        self.req("POST", "/v1/events", [ev("NY-1", "10", "2026-03-02T11:00:00Z")], "platform")
        pays = {}
        for amount, at in (("100", "2026-03-02T04:30:00Z"), ("50", "2026-03-02T05:00:00Z")):
            pays[amount] = self.req("POST", "/v1/payments",
                                    {"id": harness.uid(), "account": "ext:NY-1",
                                     "amount": amount, "received_at": at, "reference": "x"},
                                    "finance", 201)["payment"]
        self.req("PUT", "/v1/test/clock", {"now": "2026-03-10T03:00:00Z"})
        body = self.req("POST", "/v1/accounts/ext:NY-1/terminate", {"note": "end"}, "finance")
        fin = body["final_invoice"]
        # 150 - 10.00 = 140 left: 50 refundable (inside the window), 90 forfeited
        self.assertEqual((fin["issue_date"], fin["due_date"], fin["total"], fin["balance"]),
                         ("2026-03-09", "2026-03-09", "10.00", "0.00"), fin)
        self.assertEqual((body["refundable"], body["forfeited"]), ("50", "90"), body)
        # the 100 (before the window) bounce: the money that never arrived
        # leaves the forfeited 90 first, then 10 of the credit; 40 of the 50
        # received inside the window are left, all the customer's
        self.req("POST", f"/v1/payments/{pays['100']}/reverse", {"reason": "bounced"},
                 "finance")
        a = self.req("GET", "/v1/accounts/ext:NY-1", token="read")
        self.assertEqual((a["credit_balance"], a["open_balance"], a["exposure"]),
                         ("40", "0", "-40"), a)



class PendingRequestsDeclined(OwnDaemon):
    """R5.6 with R4.7 and R8.1 (sql/0038): a termination declines the
    account's pending limit requests ("account terminated", at the
    termination instant, by the terminating actor) as a manual decline
    does. TR-1 (EUR, CH, monthly limit 100): four requests, one a second
    apart: P1 pending, A approved (a raise to 300, applied at once), D
    declined by finance, P2 pending; terminated by admin. TR-2: one request
    declined by finance with the same reason, the reference for the
    payload and the audit row."""

    ENV = {"test_clock": "2026-06-01T10:00:00Z"}
    TERMINATED_AT = "2026-06-01T10:00:10Z"

    request = harness.DaemonTestCase.request
    settle_feeds = harness.DaemonTestCase.settle_feeds
    notifications = harness.DaemonTestCase.notifications
    wait_for_sql = harness.DaemonTestCase.wait_for_sql
    request_in_background = harness.DaemonTestCase.request_in_background
    assertStatus = harness.DaemonTestCase.assertStatus
    assertError = harness.DaemonTestCase.assertError
    open_transaction = harness.DaemonTestCase.open_transaction

    @property
    def cluster(self):
        return self.env.cluster

    @property
    def daemon(self):
        return self.d

    def psql(self, sql):
        return self.env.cluster.psql(sql)

    def ask(self, ref, monthly_limit, at):
        self.req("PUT", "/v1/test/clock", {"now": at})
        return self.req("POST", f"/v1/accounts/ext:{ref}/limit-requests",
                        {"monthly_limit": monthly_limit, "note": "request " + monthly_limit},
                        "finance", 201)["id"]

    def get_request(self, q):
        return self.req("GET", "/v1/limit-requests/" + q, token="read")

    def audit_row(self, q):
        return self.psql("SELECT actor, action, object_type, to_char(at AT TIME ZONE 'UTC', "
                         "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), before, after, request_id "
                         f"FROM audit_log WHERE object_id = '{q}' "
                         "AND action = 'limit_request.decline'").strip().split("|")

    def test_pending_requests_are_declined_at_termination(self):
        ids = {}
        for ref in ("TR-1", "TR-2"):
            ids[ref] = self.req("POST", "/v1/accounts",
                                {"external_ref": ref, "name": "Customer " + ref,
                                 "currency": "EUR", "jurisdiction": "CH",
                                 "monthly_limit": "100"}, "finance", 201)["id"]
        p1 = self.ask("TR-1", "150", "2026-06-01T10:00:01Z")
        a = self.ask("TR-1", "300", "2026-06-01T10:00:02Z")
        d = self.ask("TR-1", "50", "2026-06-01T10:00:03Z")
        p2 = self.ask("TR-1", "200", "2026-06-01T10:00:04Z")
        m = self.ask("TR-2", "150", "2026-06-01T10:00:05Z")
        self.req("PUT", "/v1/test/clock", {"now": "2026-06-01T10:00:06Z"})
        self.assertEqual(self.req("POST", f"/v1/limit-requests/{a}/approve", {},
                                  "finance")["applied"], True)
        self.req("POST", f"/v1/limit-requests/{d}/decline", {"reason": "no"}, "finance")
        # the reference: a manual decline with the reason a termination gives
        r = self.d.request("POST", f"/v1/limit-requests/{m}/decline",
                           {"reason": "account terminated"}, token="finance")
        self.assertStatus(r, 200)
        manual_rid = r.header("x-request-id")
        before = {q: self.get_request(q) for q in (a, d)}
        changes = self.req("GET", "/v1/accounts/ext:TR-1/limit-changes", token="read")["items"]
        self.assertEqual([(c["status"], c["monthly_limit"]) for c in changes],
                         [("applied", "300")], changes)
        decided_before = self.notifications("TR-1", "limit_request.decided")
        self.assertEqual([(n["payload"]["request"], n["payload"]["status"])
                          for n in decided_before], [(a, "approved"), (d, "declined")])

        self.req("PUT", "/v1/test/clock", {"now": self.TERMINATED_AT})
        r = self.d.request("POST", "/v1/accounts/ext:TR-1/terminate", {"note": "gone"},
                           token="admin")
        self.assertStatus(r, 200)
        term_rid = r.header("x-request-id")
        self.assertEqual((r.json["account"]["status"], r.json["final_invoice"]),
                         ("terminated", None), r.text)

        # the two pending ones: declined at the termination instant by admin
        for q in (p1, p2):
            g = self.get_request(q)
            self.assertEqual((g["status"], g["decline_reason"], g["decided_at"],
                              g["decided_by"], g["change"]),
                             ("declined", "account terminated", self.TERMINATED_AT, "admin",
                              None), g)
        # the decided ones unchanged
        for q in (a, d):
            self.assertEqual(self.get_request(q), before[q])
        g = self.get_request(m)
        self.assertEqual((g["status"], g["decline_reason"], g["decided_at"], g["decided_by"]),
                         ("declined", "account terminated", "2026-06-01T10:00:06Z", "finance"),
                         g)

        # exactly two new limit_request.decided, in creation order, before
        # account.terminated; each payload as the manual decline's
        (ref,) = self.notifications("TR-2", "limit_request.decided")
        self.assertEqual(ref["payload"], {"account": ids["TR-2"], "external_ref": "TR-2",
                                          "request": m, "status": "declined",
                                          "reason": "account terminated"}, ref)
        ns = self.notifications("TR-1")
        later = [(n["kind"], n["payload"].get("request")) for n in ns
                 if n["created_at"] == self.TERMINATED_AT]
        self.assertEqual(later, [("limit_request.decided", p1),
                                 ("limit_request.decided", p2),
                                 ("account.terminated", None)], later)
        decided = self.notifications("TR-1", "limit_request.decided")
        self.assertEqual(decided[:2], decided_before)
        self.assertEqual(len(decided), 4, decided)
        for n, q in zip(decided[2:], (p1, p2)):
            self.assertEqual((n["account"], n["created_at"]), (ids["TR-1"], self.TERMINATED_AT),
                             n)
            self.assertEqual(sorted(n["payload"]), sorted(ref["payload"]), n)
            for k in ref["payload"]:
                want = {"account": ids["TR-1"], "external_ref": "TR-1",
                        "request": q}.get(k, ref["payload"][k])
                self.assertEqual(n["payload"][k], want, (k, n))

        # an audit row each, as the manual decline writes one
        self.assertEqual(self.audit_row(m),
                         ["finance", "limit_request.decline", "limit_request",
                          "2026-06-01T10:00:06Z", '{"status": "pending"}',
                          '{"reason": "account terminated", "status": "declined"}', manual_rid])
        for q in (p1, p2):
            self.assertEqual(self.audit_row(q),
                             ["admin", "limit_request.decline", "limit_request",
                              self.TERMINATED_AT, '{"status": "pending"}',
                              '{"reason": "account terminated", "status": "declined"}',
                              term_rid])

        # no limit change: the approved raise is all there is
        self.assertEqual(self.req("GET", "/v1/accounts/ext:TR-1/limit-changes",
                                  token="read")["items"], changes)
        self.assertEqual(self.psql("SELECT count(*) FROM limit_changes").strip(), "1")

        # approve and decline answer as for any decided request (D, declined
        # by hand): 422 invalid_state, nothing written
        audit = self.psql("SELECT count(*) FROM audit_log").strip()
        for q in (p1, p2, d):
            r = self.d.request("POST", f"/v1/limit-requests/{q}/approve", {}, token="finance")
            self.assertError(r, 422, "invalid_state")
            self.assertEqual(r.json["error"]["message"], "limit request is already declined")
            r = self.d.request("POST", f"/v1/limit-requests/{q}/decline", {"reason": "x"},
                               token="finance")
            self.assertError(r, 422, "invalid_state")
            self.assertEqual(r.json["error"]["message"], "limit request is already declined")
        self.assertEqual(self.psql("SELECT count(*) FROM audit_log").strip(), audit)
        self.assertEqual(len(self.notifications("TR-1", "limit_request.decided")), 4)
        for q in (p1, p2):
            self.assertEqual(self.get_request(q)["decided_by"], "admin")

    def test_request_declined_while_the_termination_waits(self):
        # finance declines TR-3's request in a transaction still open when
        # the termination reaches it: the termination waits for the row,
        # then leaves it as finance declined it (not 422 "already
        # declined"), and the customer hears one decision
        self.req("POST", "/v1/accounts", {"external_ref": "TR-3", "name": "Customer TR-3",
                                          "currency": "EUR", "jurisdiction": "CH"},
                 "finance", 201)
        q = self.ask("TR-3", "10", "2026-06-01T10:00:20Z")
        with self.open_transaction("tr_decliner",
                                   f"SELECT creditd_limit_request_decline('{q}', 'withdrawn', "
                                   "'2026-06-01T10:00:20Z', 'finance', NULL);"):
            t, out = self.request_in_background(self.d, "POST", "/v1/accounts/ext:TR-3/terminate",
                                                {"note": "gone"}, "admin")
            self.wait_for_sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                              "'Lock' AND query LIKE '%creditd_account_terminate%'",
                              "the termination never waited for the request")
        t.join(30)
        self.assertEqual(out["r"][0], 200, out["r"])
        g = self.get_request(q)
        self.assertEqual((g["status"], g["decline_reason"], g["decided_by"]),
                         ("declined", "withdrawn", "finance"), g)
        self.assertEqual([n["payload"]["reason"]
                          for n in self.notifications("TR-3", "limit_request.decided")],
                         ["withdrawn"])

    def test_request_approved_while_the_termination_waits(self):
        # an approval locks the request, then its account (sql/0035); the
        # termination locks the pending requests before the account
        # (sql/0038), so the two wait for each other in one order: no
        # deadlock, neither is aborted. Here a transaction takes the
        # approval's two locks around a waiting termination.
        self.req("POST", "/v1/accounts", {"external_ref": "TR-4", "name": "Customer TR-4",
                                          "currency": "EUR", "jurisdiction": "CH"},
                 "finance", 201)
        q = self.ask("TR-4", "10", "2026-06-01T10:00:10Z")
        with self.open_transaction(
                "tr_approver", f"SELECT 1 FROM limit_requests WHERE id = '{q}' FOR UPDATE;") as send:
            t, out = self.request_in_background(self.d, "POST", "/v1/accounts/ext:TR-4/terminate",
                                                {"note": "gone"}, "admin")
            self.wait_for_sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                              "'Lock' AND query LIKE '%creditd_account_terminate%'",
                              "the termination never waited for the request")
            # the approval's second lock: free, the termination holds no
            # account lock yet (before 0038's order: a deadlock, one aborted)
            send("SELECT 1 FROM accounts WHERE external_ref = 'TR-4' FOR UPDATE;\n"
                 "SELECT pg_sleep(1.5);")
        t.join(30)
        self.assertEqual(out["r"][0], 200, out["r"])
        g = self.get_request(q)
        self.assertEqual((g["status"], g["decline_reason"], g["decided_by"]),
                         ("declined", "account terminated", "admin"), g)


if __name__ == "__main__":
    harness.main()
