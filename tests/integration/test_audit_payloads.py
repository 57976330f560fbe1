#!/usr/bin/env python3
"""Audit: notification payloads and webhook bodies as a contract for what a
customer-facing system (CRM, e-mail sender, webhook consumer) receives
(SPEC R8.1, R8.2, R1.2, R1.5; API.md "Reports (R7) and notifications (R8)").

One account, P-1 (EUR, DE, payment terms 0 days), lives through every kind of
API.md's list plus payment.reversed, in a known order, on the test clock. The
billing zone is Europe/Berlin (UTC+1 in winter), so that a value printed in
the session's zone and one in UTC differ. A local webhook receiver checks
each delivery's signature. Timeline (Z; Berlin = Z + 1 h):

  2026-01-05T09:00            account; 85, 10 and 5.5 of usage (alerts 80 %
                              and 90 % of the monthly limit 100, then the
                              monthly_limit suspension at 100.5); manual
                              suspend and unsuspend; monthly limit raised to
                              200 (lifts monthly_limit); total limit lowered
                              to 500 (scheduled for 12 Jan); a limit request
                              approved (monthly 300, a raise: applied at once)
                              and one declined
  2026-01-12T09:00            the lowering takes effect
  2026-02-01T01:00            02:00 Berlin: January invoice INV-2026-000001,
                              100.50, due 1 Feb (terms 0)
  2026-02-01T09:00            payment 40.25 received 2026-01-31T23:30:00.5Z
                              (POSTed twice; a conflicting third POST)
  2026-02-02 .. 2026-02-16    daily jobs (00:05 Berlin = 23:05Z the day
                              before): overdue notice on 2 Feb (day 1),
                              reminders on 8 Feb (7) and 15 Feb (14),
                              overdue suspension on 16 Feb (15 > 14)
  2026-02-16T09:00            February usage 12.345; payment 100 lifts
                              overdue; it bounces (overdue again)
  2026-02-16T10:00            termination: final invoice INV-2026-000002

Tests run in name order; test_00 builds the timeline, the others check it.
"""

import hashlib
import hmac
import json
import re
import time
import unittest
import urllib.parse
from decimal import Decimal

import harness

SECRET = "payload-audit-secret"
T0 = "2026-01-05T09:00:00Z"
REF = "P-1"

# RFC 3339 in UTC as the API objects print it (creditd_rfc3339, j_ts_col)
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
AMOUNT = re.compile(r"^-?(0|[1-9]\d*)(\.\d{1,6})?$")   # R1.2: plain decimal string
AMOUNT_KEYS = {"amount", "total", "balance", "usage", "exposure", "limit_amount", "credit",
               "monthly_limit", "total_limit", "refundable", "forfeited",
               "final_invoice_total"}

uid = harness.uid


RECEIVER = harness.WebhookReceiver()


def tearDownModule():  # noqa: N802
    RECEIVER.close()


class Payloads(harness.DaemonTestCase):
    TEST_CLOCK = T0
    CONFIG = {"billing": {"timezone": "Europe/Berlin"},
              "webhook": {"url": RECEIVER.url, "secret": SECRET, "max_backoff_seconds": 1}}

    # filled by test_00: (kind, clock time of the fact, exact expected payload)
    expected: list = []
    facts: dict = {}
    items: list = []

    # -- helpers

    def move(self, now):
        r = self.request("PUT", "/v1/test/clock", {"now": now})
        self.assertStatus(r, 200)

    def path(self, suffix=""):
        return "/v1/accounts/ext:" + urllib.parse.quote(REF, safe="") + suffix

    def use(self, amount, occurred_at):
        out = self.post_events([harness.event("ext:" + REF, amount, occurred_at)])
        self.assertEqual(out["accepted"], 1, out)

    def count(self):
        return len(self.notifications(REF))

    def expect(self, kind, at, payload):
        self.expected.append((kind, at, payload))

    def api_amount(self, invoice, key):
        r = self.request("GET", "/v1/invoices/" + invoice, token="read")
        self.assertStatus(r, 200)
        return r.json[key]

    # -- the timeline

    def test_00_timeline(self):
        cls = type(self)
        f = cls.facts
        r = self.request("POST", "/v1/accounts",
                         {"external_ref": REF, "name": "Payload GmbH", "currency": "EUR",
                          "jurisdiction": "DE", "monthly_limit": "100", "total_limit": "1000",
                          "payment_terms_days": 0}, token="finance")
        self.assertStatus(r, 201)
        acc = f["account"] = r.json["id"]
        base = {"account": acc, "external_ref": REF}
        self.assertEqual(self.count(), 0, "creating an account is no customer fact")

        # usage: 85 (85 %: the 80 % alert), 10 (95 %: the 90 % alert), 5.5
        # (100.5 >= 100: monthly_limit, R4.3)
        self.use("85", "2026-01-05T08:00:00Z")
        self.expect("usage.threshold", T0, dict(base, limit="monthly", threshold_percent=80,
                                                usage="85", limit_amount="100"))
        self.use("10", "2026-01-05T08:10:00Z")
        self.expect("usage.threshold", T0, dict(base, limit="monthly", threshold_percent=90,
                                                usage="95", limit_amount="100"))
        self.use("5.5", "2026-01-05T08:20:00Z")
        self.expect("account.suspended", T0, dict(base, status="suspended",
                                                  reasons=["monthly_limit"], cause="usage",
                                                  note=None))
        # a rejected event (unknown account) and a duplicate add nothing
        n = self.count()
        out = self.post_events([harness.event("ext:NOPE", "1", "2026-01-05T08:30:00Z")])
        self.assertEqual(out["rejected"], 1, out)
        self.assertEqual(self.count(), n)

        # manual suspend and unsuspend: the reasons change each time (R2.3)
        for action, reasons in (("suspend", ["manual", "monthly_limit"]),
                                ("unsuspend", ["monthly_limit"])):
            r = self.request("POST", self.path("/" + action), {"note": action + " by ops"},
                             token="finance")
            self.assertStatus(r, 200)
            self.expect("account.suspended", T0, dict(base, status="suspended", reasons=reasons,
                                                      cause="manual",
                                                      note=action + " by ops"))
        # unsuspending an account without `manual` changes nothing: no fact
        # (the exact sequence in test_10 shows no notification for it)
        r = self.request("POST", self.path("/unsuspend"), {"note": "again"}, token="finance")
        self.assertIn(r.status, (200, 422), r.text)

        # raise the monthly limit to 200: applied at once, lifts monthly_limit
        r = self.request("PUT", self.path("/limits"), {"monthly_limit": "200", "reason": "raise"},
                         token="finance")
        self.assertStatus(r, 200)
        self.assertTrue(r.json["applied"], r.text)
        changes = self.request("GET", self.path("/limit-changes"), token="read")
        self.assertStatus(changes, 200)
        f["changes_1"] = changes.json
        self.expect("limit.changed", T0, dict(base, change=None, monthly_limit="200",
                                              total_limit="1000", reason="raise"))
        self.expect("account.reactivated", T0, dict(base, status="active", reasons=[],
                                                    cause="limit_change", note=None))
        # lower the total limit to 500: scheduled after 7 days' notice (R4.6)
        r = self.request("PUT", self.path("/limits"), {"total_limit": "500", "reason": "lower"},
                         token="finance")
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"applied": False, "effective_at": "2026-01-12T09:00:00Z"})
        self.expect("limit.change_scheduled", T0,
                    dict(base, change=None, monthly_limit=None, total_limit="500",
                         effective_at="2026-01-12T09:00:00Z", reason="lower"))
        # rejected: a lowering inside the notice period (422) adds nothing
        n = self.count()
        r = self.request("PUT", self.path("/limits"),
                         {"total_limit": "400", "effective_at": "2026-01-06T09:00:00Z",
                          "reason": "too soon"}, token="finance")
        self.assertError(r, 422, "notice_period")
        self.assertEqual(self.count(), n)

        # a limit request approved (a raise: applied at once) ...
        r = self.request("POST", self.path("/limit-requests"),
                         {"monthly_limit": "300", "note": "season"}, token="finance")
        self.assertStatus(r, 201)
        q1 = f["request_approved"] = r.json["id"]
        r = self.request("POST", f"/v1/limit-requests/{q1}/approve", {}, token="finance")
        self.assertStatus(r, 200)
        self.expect("limit.changed", T0, dict(base, change=None, monthly_limit="300",
                                              total_limit="1000",
                                              reason="limit request: season"))
        # (the change it created, by reason: filled in below; sql/0035)
        self.expect("limit_request.decided", T0,
                    dict(base, request=q1, status="approved", applied=True,
                         effective_at="2026-01-05T09:00:00Z",
                         change="limit request: season", changes=["limit request: season"]))
        # ... and one declined; a decline without a reason is refused first
        r = self.request("POST", self.path("/limit-requests"),
                         {"total_limit": "5000", "note": "more"}, token="finance")
        self.assertStatus(r, 201)
        q2 = f["request_declined"] = r.json["id"]
        n = self.count()
        r = self.request("POST", f"/v1/limit-requests/{q2}/decline", {}, token="finance")
        self.assertError(r, 400, "validation_failed")
        self.assertEqual(self.count(), n)
        r = self.request("POST", f"/v1/limit-requests/{q2}/decline", {"reason": "risk"},
                         token="finance")
        self.assertStatus(r, 200)
        self.expect("limit_request.decided", T0,
                    dict(base, request=q2, status="declined", reason="risk"))

        # the scheduled lowering takes effect on 12 Jan (exposure 100.5 <
        # 500: no suspension; 100.5 / 500 = 20 %: no alert)
        self.move("2026-01-12T09:00:00Z")
        self.expect("limit.changed", "2026-01-12T09:00:00Z",
                    dict(base, change=None, monthly_limit="300", total_limit="500",
                         reason="lower"))

        # January invoice at 02:00 Berlin on 1 Feb: one usage line sms,
        # 85 + 10 + 5.5 = 100.5 -> 100.50; terms 0 days: due at issue
        self.move("2026-02-01T01:00:00Z")
        r = self.request("GET", "/v1/invoices?account=ext:" + REF, token="read")
        self.assertStatus(r, 200)
        (inv1,) = r.json["items"]
        f["invoice_1"] = inv1
        self.assertEqual((inv1["number"], inv1["total"], inv1["issue_date"], inv1["due_date"]),
                         ("INV-2026-000001", "100.50", "2026-02-01", "2026-02-01"), inv1)
        self.expect("invoice.issued", "2026-02-01T01:00:00Z",
                    dict(base, invoice=inv1["id"], number="INV-2026-000001", period="2026-01",
                         kind="monthly", total="100.50", currency="EUR", issue_date="2026-02-01",
                         due_date="2026-02-01"))

        # a payment of 40.25, received at 00:30:00.5 Berlin on 1 Feb; POSTed
        # twice (one fact), then the same id with another amount (409)
        self.move("2026-02-01T09:00:00Z")
        pay1 = {"id": uid(), "account": "ext:" + REF, "amount": "40.25",
                "received_at": "2026-01-31T23:30:00.5Z", "reference": "SEPA 1"}
        r = self.request("POST", "/v1/payments", pay1, token="finance")
        self.assertStatus(r, 201)
        f["payment_1"] = r.json
        self.assertEqual(r.json["allocations"],
                         [{"invoice": "INV-2026-000001", "invoice_id": inv1["id"],
                           "amount": "40.25", "components": {"compensation": "0",
                                                             "interest": "0",
                                                             "usage": "40.25"}}])
        r2 = self.request("POST", "/v1/payments", pay1, token="finance")
        self.assertStatus(r2, 200)
        self.assertEqual(r2.json, r.json)
        n = self.count()
        r3 = self.request("POST", "/v1/payments", dict(pay1, amount="40.26"), token="finance")
        self.assertError(r3, 409, "conflict")
        self.assertEqual(self.count(), n)
        self.expect("payment.received", "2026-02-01T09:00:00Z",
                    dict(base, payment=pay1["id"], amount="40.25", reference="SEPA 1",
                         received_at="2026-01-31T23:30:00.500000Z",
                         allocations=r.json["allocations"],
                         credit="0"))

        # daily jobs at 00:05 Berlin: overdue notice on 2 Feb (day 1; the
        # reminder of day 1 is that notice), reminders on 8 Feb (day 7) and
        # 15 Feb (day 14), balance 100.50 - 40.25 = 60.25 (interest apart);
        # 16 Feb: 15 days > 14 -> suspended overdue (R6.2, R6.6)
        self.move("2026-02-16T09:00:00Z")
        for kind, day, days, extra in (("invoice.overdue", "2026-02-01T23:05:00Z", 1, {}),
                                       ("invoice.reminder", "2026-02-07T23:05:00Z", 7,
                                        {"reminder_day": 7}),
                                       ("invoice.reminder", "2026-02-14T23:05:00Z", 14,
                                        {"reminder_day": 14})):
            self.expect(kind, day, dict(base, invoice=inv1["id"], number="INV-2026-000001",
                                        days_overdue=days, balance="60.25", **extra))
        self.expect("account.suspended", "2026-02-15T23:05:00Z",
                    dict(base, status="suspended", reasons=["overdue"], cause="overdue",
                         note=None))

        # February usage 12.345 (billed on the final invoice); a payment of
        # 100 covers 60.25 and the interest: overdue lifted; then it bounces
        self.use("12.345", "2026-02-16T08:00:00Z")
        pay2 = {"id": uid(), "account": "ext:" + REF, "amount": "100",
                "received_at": "2026-02-16T08:59:59Z", "reference": "SEPA 2"}
        r = self.request("POST", "/v1/payments", pay2, token="finance")
        self.assertStatus(r, 201)
        f["payment_2"] = r.json
        interest = self.api_amount(inv1["id"], "accrued_interest")
        f["interest"] = interest
        self.expect("payment.received", "2026-02-16T09:00:00Z",
                    dict(base, payment=pay2["id"], amount="100", reference="SEPA 2",
                         received_at="2026-02-16T08:59:59Z",
                         allocations=r.json["allocations"], credit=r.json["credit"]))
        self.expect("account.reactivated", "2026-02-16T09:00:00Z",
                    dict(base, status="active", reasons=[], cause="payment", note=None))
        r = self.request("POST", f"/v1/payments/{pay2['id']}/reverse", {"reason": "bounced"},
                         token="finance")
        self.assertStatus(r, 200)
        # reversing twice is refused and adds nothing
        n = self.count()
        r = self.request("POST", f"/v1/payments/{pay2['id']}/reverse", {"reason": "again"},
                         token="finance")
        self.assertError(r, 422, "invalid_state")
        self.assertEqual(self.count(), n)
        self.expect("payment.reversed", "2026-02-16T09:00:00Z",
                    dict(base, payment=pay2["id"], amount="100", reference="SEPA 2",
                         received_at="2026-02-16T08:59:59Z", reason="bounced"))
        self.expect("account.suspended", "2026-02-16T09:00:00Z",
                    dict(base, status="suspended", reasons=["overdue"], cause="payment_reversal",
                         note=None))

        # termination: the final invoice bills February's 12.345 -> 12.35
        # (plus interest lines, read from the invoice)
        self.move("2026-02-16T10:00:00Z")
        r = self.request("POST", self.path("/terminate"), {"note": "contract ended"},
                         token="finance")
        self.assertStatus(r, 200)
        f["terminate"] = r.json
        fin = f["terminate"]["final_invoice"]
        self.assertEqual(fin["number"], "INV-2026-000002", fin)
        fin_api = self.request("GET", "/v1/invoices/INV-2026-000002", token="read").json
        f["invoice_2"] = fin_api
        self.expect("invoice.issued", "2026-02-16T10:00:00Z",
                    dict(base, invoice=fin_api["id"], number="INV-2026-000002", period="2026-02",
                         kind="final", total=fin_api["total"], currency="EUR",
                         issue_date="2026-02-16", due_date="2026-02-16"))
        self.expect("account.terminated", "2026-02-16T10:00:00Z",
                    dict(base, terminated_at="2026-02-16T10:00:00Z", note="contract ended",
                         final_invoice="INV-2026-000002", final_invoice_total=fin_api["total"],
                         accelerated=[], refundable="0", forfeited="0", currency="EUR"))
        # the limit changes' ids, by reason (GET .../limit-changes)
        r = self.request("GET", self.path("/limit-changes"), token="read")
        self.assertStatus(r, 200)
        f["changes"] = r.json["items"]
        by_reason = {}
        for c in f["changes"]:
            if c["status"] in ("applied", "scheduled"):
                by_reason[c["reason"]] = c["id"]
        for kind, _, payload in self.expected:
            if kind == "limit_request.decided" and "change" in payload:
                payload["change"] = by_reason[payload["change"]]
                payload["changes"] = [by_reason[r] for r in payload["changes"]]
            elif "change" in payload:
                payload["change"] = by_reason[payload["reason"]]
        cls.items = self.notifications(REF)
        # R8.2: everything reaches the webhook
        deadline = time.monotonic() + 20
        want = {str(n["id"]) for n in cls.items}
        while not want <= {r["delivery"] for r in RECEIVER.snapshot()}:
            self.assertLess(time.monotonic(), deadline, "webhook deliveries missing")
            time.sleep(0.05)

    # -- the checks

    def setUp(self):
        super().setUp()
        if self._testMethodName != "test_00_timeline" and not self.items:
            self.skipTest("test_00_timeline did not complete")

    def test_10_one_notification_per_fact_in_fact_order(self):
        # R8.1: exactly one per fact (none for the rejected requests, the
        # replayed payment or the second reversal), in the order of the facts
        got = [(n["kind"], n["created_at"]) for n in self.items]
        self.assertEqual(got, [(k, at) for k, at, _ in self.expected])
        ids = [int(n["id"]) for n in self.items]
        self.assertEqual(ids, sorted(set(ids)), "ids rise with the facts")
        for n in self.items:
            self.assertEqual(set(n), {"id", "kind", "account", "created_at", "payload"}, n)
            self.assertEqual((n["account"], n["payload"]["account"]),
                             (self.facts["account"], self.facts["account"]), n)
        # the feed of all accounts shows the same rows; the cursor pages them
        # without repeating one
        seen = []
        after = ""
        while True:
            r = self.request("GET", "/v1/notifications?limit=5" + after, token="read")
            self.assertStatus(r, 200)
            seen += [n for n in r.json["items"] if n["account"] == self.facts["account"]]
            if not r.json["next_cursor"]:
                break
            after = "&after=" + urllib.parse.quote(r.json["next_cursor"])
        self.assertEqual(seen, self.items)

    def test_11_exact_payloads(self):
        # every field but external_ref (test_12), exact; amounts by value
        # (the invoice object prints "100.50", the payload "100.5": both
        # R1.2, the form is checked in test_15 and left open, see the report)
        def norm(p):
            return {k: (Decimal(v) if k in AMOUNT_KEYS and isinstance(v, str) else v)
                    for k, v in p.items() if k != "external_ref"}
        self.assertEqual(len(self.items), len(self.expected))
        for n, (kind, _, want) in zip(self.items, self.expected):
            self.assertEqual(norm(n["payload"]), norm(want), (n["id"], kind))

    # was a defect: invoice.issued of the invoice run and invoice.overdue /
    # invoice.reminder of the daily job carried the account's id but not its
    # external_ref, which every other kind carries; the readers (GET
    # /v1/notifications, the webhook) now add it (sql/0032)
    def test_12_external_ref_in_every_payload(self):
        missing = [(n["id"], n["kind"]) for n in self.items
                   if n["payload"].get("external_ref") != REF]
        self.assertEqual(missing, [])

    def test_13_external_ref_where_written_through_creditd_notify(self):
        # 0030: limit_request.decided and the final invoice's invoice.issued
        # (before: without external_ref)
        for n in self.items:
            if n["kind"] == "limit_request.decided" or n["payload"].get("kind") == "final":
                self.assertEqual(n["payload"].get("external_ref"), REF, n)

    def test_14_times_are_rfc3339_utc_as_in_the_api(self):
        # R1.5: one format for a consumer's one parser: "...Z", as the API
        # objects; dates YYYY-MM-DD. (Before 0030: received_at and
        # terminated_at came in the billing zone, "2026-02-01T00:30:00.5+01:00".)
        fields = set()
        for n in self.items:
            self.assertRegex(n["created_at"], RFC3339_Z, n)
            for k, v in n["payload"].items():
                if k.endswith("_at"):
                    fields.add((n["kind"], k))
                    self.assertRegex(v, RFC3339_Z, (n["kind"], k))
                elif k.endswith("_date"):
                    fields.add((n["kind"], k))
                    self.assertRegex(v, DATE, (n["kind"], k))
        self.assertEqual(fields, {
            ("limit.change_scheduled", "effective_at"),
            ("limit_request.decided", "effective_at"),
            ("invoice.issued", "issue_date"), ("invoice.issued", "due_date"),
            ("payment.received", "received_at"), ("payment.reversed", "received_at"),
            ("account.terminated", "terminated_at")})
        # the same instant as the API object, the same string
        for key, kind in (("payment_1", "payment.received"), ("payment_2", "payment.reversed")):
            pid = self.facts[key]["payment"]
            r = self.request("GET", "/v1/payments/" + pid, token="read")
            self.assertStatus(r, 200)
            (n,) = [n for n in self.items if n["kind"] == kind
                    and n["payload"]["payment"] == pid]
            self.assertEqual(n["payload"]["received_at"], r.json["received_at"], r.json)
        acc = self.get_account(REF)
        (n,) = [n for n in self.items if n["kind"] == "account.terminated"]
        self.assertEqual(n["payload"]["terminated_at"], acc["terminated_at"])

    def test_15_amounts_are_decimal_strings_equal_to_the_api(self):
        # R1.2: strings, plain decimal, never numbers or exponents
        for n in self.items:
            p = n["payload"]
            for k, v in p.items():
                if k in AMOUNT_KEYS and v is not None:
                    self.assertIsInstance(v, str, (n["kind"], k))
                    self.assertRegex(v, AMOUNT, (n["kind"], k))
            for a in p.get("allocations", []):
                for v in [a["amount"], *a["components"].values()]:
                    self.assertRegex(v, AMOUNT, a)
        # the same amounts as the API objects (as numbers: the invoice
        # object prints the currency's 2 decimals, "100.50", the payload the
        # shortest form, "100.5"; both R1.2, see the report)
        for n in self.items:
            p = n["payload"]
            if n["kind"] in ("invoice.issued", "invoice.overdue", "invoice.reminder"):
                inv = self.request("GET", "/v1/invoices/" + p["invoice"], token="read").json
                if n["kind"] == "invoice.issued":
                    self.assertEqual(Decimal(p["total"]), Decimal(inv["total"]), n)
        t = self.facts["terminate"]
        (n,) = [n for n in self.items if n["kind"] == "account.terminated"]
        for k in ("refundable", "forfeited"):
            self.assertEqual(Decimal(n["payload"][k]), Decimal(t[k]), (k, t))
        self.assertEqual(Decimal(n["payload"]["final_invoice_total"]),
                         Decimal(self.facts["invoice_2"]["total"]))

    def test_16_ids_resolve_through_the_api(self):
        for n in self.items:
            p = n["payload"]
            if "invoice" in p:
                r = self.request("GET", "/v1/invoices/" + p["invoice"], token="read")
                self.assertStatus(r, 200)
                self.assertEqual((r.json["number"], r.json["account"]),
                                 (p["number"], self.facts["account"]), n)
            if "payment" in p:
                r = self.request("GET", "/v1/payments/" + p["payment"], token="read")
                self.assertStatus(r, 200)
                self.assertEqual(r.json["amount"], p["amount"], n)
            if "request" in p:
                r = self.request("GET", "/v1/limit-requests/" + p["request"], token="read")
                self.assertStatus(r, 200)
                self.assertEqual(r.json["status"], p["status"], n)
            if "change" in p:
                self.assertIn(p["change"], [c["id"] for c in self.facts["changes"]], n)
            if "final_invoice" in p:
                r = self.request("GET", "/v1/invoices/" + p["final_invoice"], token="read")
                self.assertStatus(r, 200)
            for a in p.get("allocations", []):
                r = self.request("GET", "/v1/invoices/" + a["invoice_id"], token="read")
                self.assertEqual(r.json["number"], a["invoice"], a)

    def test_20_webhook_body_is_the_notification_signed(self):
        # R8.2, README "Webhook": POST of the item as JSON, X-Creditd-Delivery
        # = id, X-Creditd-Signature = "sha256=" + hex HMAC-SHA256(secret,
        # timestamp "." body); each once (the receiver answered 200), in order
        mine = [r for r in RECEIVER.snapshot()
                if r["delivery"] in {str(n["id"]) for n in self.items}]
        self.assertEqual([r["delivery"] for r in mine], [str(n["id"]) for n in self.items])
        for r, n in zip(mine, self.items):
            self.assertEqual(json.loads(r["body"]), n)
            self.assertEqual(r["content_type"], "application/json")
            want = "sha256=" + hmac.new(SECRET.encode(), r["ts"].encode() + b"." + r["body"],
                                        hashlib.sha256).hexdigest()
            self.assertEqual(r["sig"], want, r)
            self.assertLess(abs(int(r["ts"]) - r["received"]), 300, r)


if __name__ == "__main__":
    harness.main()
