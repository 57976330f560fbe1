#!/usr/bin/env python3
"""Audit of invoicing, payments and termination (SPEC R1.3, R1.5, R5, R6.1,
R5.6; API.md "Invoices and credit notes", "Payments", "Jobs"): cases the
other test files do not check with exact values.

Every account has contractual rate 0 and a jurisdiction without a statutory
rule (CH), so that no interest ever changes an amount.

Main timeline (billing zone UTC), tests in name order:

  2026-01-10  accounts; January usage
  2026-02-01  the January run (02:00); concurrent credit notes and payments
  2026-02-10  February usage
  2026-03-01  the February run
  2026-03-02  O-ORD's payment terms become 5 days; March usage; late usage
              of January and February for L-LATE
  2026-03-10  O-ORD terminated; a late event of before the termination
  2026-04-01  the March run; a payment of O-ORD

Class Sydney: billing zone Australia/Sydney across the turn of the year.
Class Numbers: invoice and credit note numbers past 999,999 in a year."""

import http.client
import json
import threading
import time
import unittest
import urllib.parse
import uuid

import harness

T0 = "2026-01-10T10:00:00Z"


def uid():
    return str(uuid.uuid4())


def ev(ref, amount, occurred_at, service="sms", destination=None, quantity=None):
    e = {"id": uid(), "account": "ext:" + ref, "amount": amount, "occurred_at": occurred_at,
         "service": service}
    if destination is not None:
        e["destination"] = destination
    if quantity is not None:
        e["quantity"] = quantity
    return e


def post_events(daemon, events):
    """POST /v1/events, retrying while the daemon answers 503 (the account
    cache reloads after a clock move)."""
    for _ in range(200):
        r = daemon.request("POST", "/v1/events", events, token="platform")
        if r.status != 503:
            return r
        time.sleep(0.05)
    return r


def concurrent_posts(port, secret, requests):
    """Sends every (path, body) at once, one connection each; returns
    [(status, json)] in the same order."""
    barrier = threading.Barrier(len(requests))
    results = [None] * len(requests)

    def run(i, path, body):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            barrier.wait()
            conn.request("POST", path, body=json.dumps(body),
                         headers={"Authorization": "Bearer " + secret,
                                  "Content-Type": "application/json"})
            resp = conn.getresponse()
            results[i] = (resp.status, json.loads(resp.read()))
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(i, p, b))
               for i, (p, b) in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


class Helpers:
    """Requests shared by the classes (self.d is the daemon)."""

    def req(self, method, path, body=None, token="admin", headers=None):
        return self.d.request(method, path, body, token=token, headers=headers)

    def ok(self, r, status=200):
        self.assertEqual(r.status, status, r.text[:2000])
        return r.json

    def account(self, ref, currency="EUR", **extra):
        body = {"external_ref": ref, "name": "Customer " + ref, "currency": currency,
                "jurisdiction": "CH", "contractual_rate": "0"}
        body.update(extra)
        return self.ok(self.req("POST", "/v1/accounts", body, token="finance"), 201)

    def get_account(self, ref):
        return self.ok(self.req("GET", "/v1/accounts/ext:" + ref, token="read"))

    def events(self, evs):
        r = post_events(self.d, evs)
        self.assertEqual(r.status, 200, r.text[:2000])
        self.assertEqual(r.json["accepted"], len(evs), r.text[:2000])

    def move_clock(self, now):
        self.assertEqual(self.ok(self.req("PUT", "/v1/test/clock", {"now": now}))["now"], now)

    def invoices(self, ref, period=None):
        q = "account=ext:" + ref + ("&period=" + period if period else "") + "&limit=1000"
        return self.ok(self.req("GET", "/v1/invoices?" + q, token="read"))["items"]

    def invoice(self, key, **kw):
        return self.ok(self.req("GET", "/v1/invoices/" + urllib.parse.quote(key, safe=""),
                                token="read", **kw))

    def invoice_of(self, ref, period, kind="monthly"):
        items = [i for i in self.invoices(ref, period) if i["kind"] == kind]
        self.assertEqual(len(items), 1, items)
        return items[0]

    def credit_note(self, key, amount, reason="correction"):
        return self.req("POST", "/v1/invoices/" + urllib.parse.quote(key, safe="")
                        + "/credit-notes", {"amount": amount, "reason": reason},
                        token="finance")

    def pay(self, ref, amount, received_at, **extra):
        body = {"id": uid(), "account": "ext:" + ref, "amount": amount,
                "received_at": received_at, "reference": "bank"}
        body.update(extra)
        return body, self.req("POST", "/v1/payments", body, token="finance")

    def lines(self, inv):
        """(kind, service, destination, period, quantity, unit_price, amount)."""
        return [(l["kind"], l.get("service"), l.get("destination"), l.get("period"),
                 l.get("quantity"), l.get("unit_price"), l["amount"]) for l in inv["lines"]]

    def notice_payloads(self, ref, kind):
        return [n["payload"] for n in self.notifications(ref, kind)]


class Audit(harness.DaemonTestCase, Helpers):
    TEST_CLOCK = T0
    account = Helpers.account  # not DaemonTestCase.account (another currency default)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.d = cls.daemon

    # -- January

    def test_00_setup(self):
        for ref in ("L-LATE", "P-CONC", "P-BIG", "H-NEG", "R-BNC", "R-ACC"):
            self.account(ref)
        self.account("C-CLF", currency="CLF")
        self.account("O-ORD", payment_terms_days=60)
        jan = "2026-01-10T09:00:00Z"
        self.events([ev("L-LATE", "1", jan, destination="DE"),
                     ev("P-CONC", "10", jan),
                     # R1.3, CLF has 4 decimals: 0.00005 -> 0.0001 and
                     # 1.23445 -> 1.2345, half away from zero
                     ev("C-CLF", "0.00005", jan),
                     ev("C-CLF", "1.23445", jan, service="voice")])

    def test_01_january_run_clf(self):
        self.move_clock("2026-02-01T03:00:00Z")  # the scheduled run at 02:00
        inv = self.invoice_of("C-CLF", "2026-01")
        self.assertEqual(self.lines(inv),
                         [("usage", "sms", None, None, 1, "0.00005", "0.0001"),
                          ("usage", "voice", None, None, 1, "1.23445", "1.2345")])
        # the total is the sum of the rounded lines: 0.0001 + 1.2345
        self.assertEqual((inv["total"], inv["paid"], inv["credited"], inv["balance"]),
                         ("1.2346", "0.0000", "0.0000", "1.2346"))
        # payments are whole minor units of the currency: 0.0001 for CLF
        _, r = self.pay("C-CLF", "0.00001", "2026-02-01T00:00:00Z")
        self.assertEqual((r.status, r.json["error"]["code"], r.json["error"].get("field")),
                         (400, "validation_failed", "amount"), r.text)
        _, r = self.pay("C-CLF", "1.2346", "2026-02-01T00:00:00Z")
        out = self.ok(r, 201)
        self.assertEqual(([(a["invoice"], a["amount"]) for a in out["allocations"]],
                          out["credit"]), ([(inv["number"], "1.2346")], "0"))
        after = self.invoice(inv["number"])
        self.assertEqual((after["paid"], after["balance"], after["status"]),
                         ("1.2346", "0.0000", "paid"))

    def test_02_concurrent_credit_notes(self):
        # four credit notes of 3 on an invoice of 10 at once: three fit, the
        # fourth would exceed the balance (R5.5); the numbers stay gap-free
        inv = self.invoice_of("P-CONC", "2026-01")
        self.assertEqual(inv["balance"], "10.00")
        path = f"/v1/invoices/{inv['number']}/credit-notes"
        res = concurrent_posts(self.d.port, self.d.secret("finance"),
                               [(path, {"amount": "3", "reason": f"cn {i}"}) for i in range(4)])
        created = sorted(b["number"] for s, b in res if s == 201)
        refused = [b["error"]["code"] for s, b in res if s != 201]
        self.assertEqual(created, ["CN-2026-000001", "CN-2026-000002", "CN-2026-000003"], res)
        self.assertEqual(refused, ["invalid_state"], res)
        after = self.invoice(inv["number"])
        self.assertEqual((after["credited"], after["balance"], len(after["credit_notes"])),
                         ("9.00", "1.00", 3))
        self.assertEqual(self.get_account("P-CONC")["open_balance"], "1")

    def test_03_concurrent_payment_replays(self):
        # one payment sent five times at once: booked once (R6.1), 201 once
        # and the same body with 200 four times
        body = {"id": uid(), "account": "ext:P-CONC", "amount": "1.5",
                "received_at": "2026-02-01T00:00:00Z", "reference": "SEPA 42"}
        res = concurrent_posts(self.d.port, self.d.secret("finance"),
                               [("/v1/payments", body)] * 5)
        self.assertEqual(sorted(s for s, _ in res), [200, 200, 200, 200, 201], res)
        self.assertEqual(len({json.dumps(b, sort_keys=True) for _, b in res}), 1, res)
        inv = self.invoice_of("P-CONC", "2026-01")
        # 1.00 settles the invoice, 0.50 is account credit
        self.assertEqual((inv["paid"], inv["balance"], inv["status"]), ("1.00", "0.00", "paid"))
        self.assertEqual(res[0][1]["credit"], "0.5")
        a = self.get_account("P-CONC")
        self.assertEqual((a["open_balance"], a["credit_balance"]), ("0", "0.5"))
        self.assertEqual(len(self.notice_payloads("P-CONC", "payment.received")), 1)

    # -- February and March

    def test_10_february(self):
        self.move_clock("2026-02-10T10:00:00Z")
        self.events([ev("L-LATE", "2", "2026-02-10T09:00:00Z", destination="DE"),
                     ev("O-ORD", "10", "2026-02-10T09:00:00Z"),
                     ev("R-ACC", "20", "2026-02-10T09:00:00Z")])
        self.move_clock("2026-03-01T03:00:00Z")  # the February run
        x = self.invoice_of("O-ORD", "2026-02")
        self.assertEqual((x["total"], x["issue_date"], x["due_date"]),
                         ("10.00", "2026-03-01", "2026-04-30"))
        self.assertEqual(self.invoice_of("L-LATE", "2026-02")["total"], "2.00")

    def test_11_late_usage_of_two_earlier_months(self):
        self.move_clock("2026-03-02T10:00:00Z")
        r = self.req("PATCH", "/v1/accounts/ext:O-ORD", {"payment_terms_days": 5},
                     token="finance")
        self.ok(r)
        # usage of January (30 days old: within max_event_age) and of
        # February arrives after both months were invoiced (R5.3)
        self.events([ev("L-LATE", "0.0045", "2026-01-31T12:00:00Z", destination="DE")
                     for _ in range(3)]
                    + [ev("L-LATE", "0.005", "2026-02-28T12:00:00Z", destination="DE"),
                       ev("L-LATE", "1.115", "2026-03-02T09:00:00Z", destination="DE"),
                       ev("O-ORD", "5", "2026-03-02T09:00:00Z"),
                       ev("R-BNC", "12.345", "2026-03-02T09:00:00Z")])
        # R-ACC pays its February invoice (due 03-16) before its termination
        _, r = self.pay("R-ACC", "20", "2026-03-02T08:00:00Z")
        self.assertEqual(self.ok(r, 201)["credit"], "0")
        # R-BNC pays in advance, long before its termination (test_12)
        _, r = self.pay("R-BNC", "50", "2026-02-20T09:00:00Z")
        self.assertEqual(self.ok(r, 201)["credit"], "50")

    def test_12_terminate(self):
        self.move_clock("2026-03-10T12:00:00Z")
        # R-BNC: 30 more the day before; terminated with 80 of credit: the
        # final invoice of 12.35 (12.345) is paid by credit at issue, of the
        # 67.65 left the 30 received within 7 days is refundable, 37.65 of
        # the 50 received on 02-20 are forfeited (R5.6)
        _, r = self.pay("R-BNC", "30", "2026-03-09T08:00:00Z")
        self.ok(r, 201)
        body = self.ok(self.req("POST", "/v1/accounts/ext:R-BNC/terminate", {"note": "end"},
                                token="finance"))
        self.assertEqual((body["final_invoice"]["total"], body["refundable"],
                          body["forfeited"]), ("12.35", "30", "37.65"))
        a = self.get_account("R-BNC")
        self.assertEqual((a["credit_balance"], a["open_balance"], a["exposure"]),
                         ("30", "0", "-30"))
        # R-ACC owes nothing: no due date moves
        body = self.ok(self.req("POST", "/v1/accounts/ext:R-ACC/terminate", {"note": "end"},
                                token="finance"))
        self.assertEqual((body["final_invoice"], body["accelerated_invoices"]), (None, []))
        r = self.req("POST", "/v1/accounts/ext:O-ORD/terminate", {"note": "contract ended"},
                     token="finance")
        body = self.ok(r)
        fin = self.invoice(body["final_invoice"]["number"])
        self.assertEqual((fin["kind"], fin["total"], fin["issue_date"], fin["due_date"]),
                         ("final", "5.00", "2026-03-10", "2026-03-10"))
        # R5.6: the February invoice is due at the termination date now
        x = self.invoice_of("O-ORD", "2026-02")
        self.assertEqual((x["due_date"], x.get("issued_due_date")),
                         ("2026-03-10", "2026-04-30"))
        # an event of before the termination that arrives after it (R3.5)
        self.move_clock("2026-03-10T12:30:00Z")
        self.events([ev("O-ORD", "2.5", "2026-03-10T11:00:00Z")])

    def test_13_march_run(self):
        self.move_clock("2026-04-01T03:00:00Z")
        inv = self.invoice_of("L-LATE", "2026-03")
        # usage of the period first, then each earlier month on its own
        # prior-period line, each rounded once (R1.3, R5.3):
        # 1.115 -> 1.12; 3 x 0.0045 = 0.0135 -> 0.01; 0.005 -> 0.01
        self.assertEqual(self.lines(inv),
                         [("usage", "sms", "DE", None, 1, "1.115", "1.12"),
                          ("prior_usage", "sms", "DE", "2026-01", 3, "0.0045", "0.01"),
                          ("prior_usage", "sms", "DE", "2026-02", 1, "0.005", "0.01")])
        self.assertEqual(inv["total"], "1.14")
        self.assertIn("2026-01", inv["lines"][1]["description"])
        self.assertIn("2026-02", inv["lines"][2]["description"])
        # R5.4: L-LATE's events, billed exactly once: 1 + 2 + 0.0135 + 0.005 + 1.115
        exact = self.psql(
            "SELECT creditd_amount(sum(l.exact)::bigint) FROM invoice_lines l "
            "JOIN invoices i ON i.id = l.invoice_id JOIN accounts a ON a.id = i.account_id "
            "WHERE a.external_ref = 'L-LATE' AND l.kind IN ('usage', 'prior_usage')")
        self.assertEqual(exact.strip(), "4.1335")
        self.assertEqual(self.get_account("L-LATE")["unbilled_usage"], "0")

    def test_14_terminated_invoice_notice_due_date(self):
        # the late event's invoice to the terminated account is due at issue
        # (R5.6); the invoice.issued notification must say so, not issue +
        # the 5 days' terms
        y = self.invoice_of("O-ORD", "2026-03")
        self.assertEqual((y["total"], y["issue_date"], y["due_date"], y.get("issued_due_date")),
                         ("2.50", "2026-04-01", "2026-04-01", "2026-04-06"))
        issued = [p for p in self.notice_payloads("O-ORD", "invoice.issued")
                  if p["number"] == y["number"]]
        self.assertEqual(len(issued), 1, issued)
        self.assertEqual(issued[0]["due_date"], "2026-04-01", issued[0])

    def test_15_payment_oldest_effective_due_date_first(self):
        # R6.1 with R5.6: due dates as they are now (README: effective due
        # date, then issue date, then number):
        #   February invoice 10.00  due 03-10 (moved from 04-30), issued 03-01
        #   final invoice     5.00  due 03-10, issued 03-10
        #   March invoice     2.50  due 04-01 (due at issue; 04-06 by the terms)
        # 10 settles the February invoice and nothing else.
        x = self.invoice_of("O-ORD", "2026-02")
        fin = self.invoice_of("O-ORD", "2026-03", kind="final")
        y = self.invoice_of("O-ORD", "2026-03")
        _, r = self.pay("O-ORD", "10", "2026-04-01T02:30:00Z")
        out = self.ok(r, 201)
        self.assertEqual(([(a["invoice"], a["amount"]) for a in out["allocations"]],
                          out["credit"]), ([(x["number"], "10")], "0"))
        self.assertEqual([self.invoice(i["number"])["balance"] for i in (x, fin, y)],
                         ["0.00", "5.00", "2.50"])
        # the rest, in order: the final invoice, then the March one
        _, r = self.pay("O-ORD", "6", "2026-04-01T02:40:00Z")
        out = self.ok(r, 201)
        self.assertEqual([(a["invoice"], a["amount"]) for a in out["allocations"]],
                         [(fin["number"], "5"), (y["number"], "1")])

    def test_16_bounce_after_termination(self):
        # The 50 of 02-20 bounces. The customer really paid 30 (03-09), the
        # final invoice took 12.35: 17.65 are the customer's (refundable:
        # all of it came from the payment within the refund window). The
        # 37.65 forfeited at termination were part of the money that never
        # arrived: the reversal takes them back first, not the customer's
        # refundable credit (which would leave the customer owing 20).
        pays = self.ok(self.req("GET", "/v1/payments?account=ext:R-BNC", token="read"))
        p50 = [p for p in pays["items"] if p["amount"] == "50"][0]
        out = self.ok(self.req("POST", f"/v1/payments/{p50['id']}/reverse",
                               {"reason": "returned by bank"}, token="finance"))
        self.assertEqual(out["reversed_at"], "2026-04-01T03:00:00Z")
        a = self.get_account("R-BNC")
        self.assertEqual((a["credit_balance"], a["open_balance"], a["exposure"]),
                         ("17.65", "0", "-17.65"))
        fin = self.invoice_of("R-BNC", "2026-03", kind="final")
        self.assertEqual((fin["total"], fin["balance"], fin["status"]),
                         ("12.35", "0.00", "paid"))
        row = self.psql("SELECT creditd_amount(t.refundable), creditd_amount(t.forfeited) "
                        "FROM terminations t JOIN accounts a ON a.id = t.account_id "
                        "WHERE a.external_ref = 'R-BNC'")
        self.assertEqual(row.strip(), "30|0")

    def test_17_bounce_reopens_invoice_after_termination(self):
        # R-ACC's payment bounces after the termination: undone as of its
        # received date (R6.1), the February invoice was unpaid at the
        # termination, so its due date is the termination date (R5.6: all
        # amounts became due at once), not 03-16
        pays = self.ok(self.req("GET", "/v1/payments?account=ext:R-ACC", token="read"))
        self.ok(self.req("POST", f"/v1/payments/{pays['items'][0]['id']}/reverse",
                         {"reason": "returned by bank"}, token="finance"))
        x = self.invoice_of("R-ACC", "2026-02")
        self.assertEqual((x["balance"], x["due_date"], x.get("issued_due_date"), x["status"],
                          x["days_overdue"]),
                         ("20.00", "2026-03-10", "2026-03-16", "overdue", 22))

    # -- the printable page of an invoice with a negative balance

    def test_20_negative_invoice(self):
        # A correcting line can make an invoice negative (R6.4: a backdated
        # payment that lowers interest already posted, on a month without
        # usage). Written directly: interest comes from the interest feature.
        acc = self.get_account("H-NEG")["id"]
        inv_id = "5e5e5e5e-0000-4000-8000-00000000a001"
        self.psql(f"""
            INSERT INTO invoices (id, number, account_id, kind, period, issue_date, due_date,
                                  currency, currency_exp, usage_total, interest_total, total,
                                  created_at)
            VALUES ('{inv_id}', 'NEG-000001', '{acc}', 'monthly', '2026-03-01', '2026-04-01',
                    '2026-04-16', 'EUR', 2, 0, -500000, -500000, '2026-04-01T02:00:00Z');
            INSERT INTO invoice_lines (invoice_id, line_no, kind, period, exact, amount,
                                       description)
            VALUES ('{inv_id}', 1, 'interest_correction', '2026-02-01', -500000, -500000,
                    'Interest correction 2026-02');""")
        inv = self.invoice("NEG-000001")
        self.assertEqual((inv["total"], inv["balance"], inv["status"], inv["days_overdue"]),
                         ("-0.50", "-0.50", "paid", 0))
        html = self.req("GET", "/v1/invoices/NEG-000001?format=html", token="read").text
        self.assertIn("Nothing is due on this invoice. In your favour: EUR 0.50.", html)
        self.assertNotIn("Please pay", html)

    # -- amounts too large for the account's balances (R1.1)

    def test_30_huge_payments(self):
        # one payment of 9,000,000,000,000 is account credit; a second one
        # would take the credit past int64 micro-units: refused with the
        # field named, nothing booked (not an internal error)
        _, r = self.pay("P-BIG", "9000000000000", "2026-04-01T00:00:00Z")
        self.assertEqual(self.ok(r, 201)["credit"], "9000000000000")
        body, r = self.pay("P-BIG", "9000000000000", "2026-04-01T00:00:00Z")
        self.assertEqual((r.status, r.json["error"]["code"], r.json["error"].get("field")),
                         (400, "validation_failed", "amount"), r.text)
        self.assertEqual(self.get_account("P-BIG")["credit_balance"], "9000000000000")
        r = self.req("GET", "/v1/payments/" + body["id"], token="read")
        self.assertEqual(r.status, 404, r.text)


class Sydney(unittest.TestCase, Helpers):
    """R1.5: billing months, issue and due dates, the number series' year
    and the overdue day in the billing zone (Australia/Sydney, UTC+11 in
    summer), not in UTC."""

    @classmethod
    def setUpClass(cls):
        cls.env = harness.start_env(config={"billing": {"timezone": "Australia/Sydney"}},
                                    test_clock="2026-12-10T00:00:00Z")
        cls.d = cls.env.daemon

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def test_turn_of_the_year(self):
        self.account("S-1")
        # 2026-12-31 23:30 and 2027-01-01 00:30 in Sydney
        self.move_clock("2026-12-31T13:45:00Z")
        self.events([ev("S-1", "1", "2026-12-31T12:30:00Z"),
                     ev("S-1", "2", "2026-12-31T13:30:00Z")])
        # the run at 02:00 on the 1st in Sydney is 15:00 UTC on the 31st
        self.move_clock("2026-12-31T15:30:00Z")
        invs = self.invoices("S-1")
        self.assertEqual(len(invs), 1, invs)
        inv = invs[0]
        self.assertEqual((inv["number"], inv["period"], inv["issue_date"], inv["due_date"],
                          inv["total"], inv["status"]),
                         ("INV-2027-000001", "2026-12", "2027-01-01", "2027-01-16", "1.00",
                          "open"))
        self.assertEqual(self.get_account("S-1")["unbilled_usage"], "2")
        cn = self.ok(self.credit_note(inv["number"], "0.25"), 201)
        self.assertEqual((cn["number"], cn["issued_at"]),
                         ("CN-2027-000001", "2026-12-31T15:30:00Z"))
        # the last day before it is overdue: 16 Jan 23:30 in Sydney
        self.move_clock("2027-01-16T12:30:00Z")
        inv = self.invoice(inv["number"])
        self.assertEqual((inv["status"], inv["days_overdue"], inv["balance"]),
                         ("open", 0, "0.75"))
        # 17 Jan 00:30 in Sydney: the first overdue day (R6.2)
        self.move_clock("2027-01-16T13:30:00Z")
        inv = self.invoice(inv["number"])
        self.assertEqual((inv["status"], inv["days_overdue"]), ("overdue", 1))
        overdue = self.ok(self.req("GET", "/v1/invoices?status=overdue", token="read"))
        self.assertEqual([i["number"] for i in overdue["items"]], ["INV-2027-000001"])


class Numbers(unittest.TestCase, Helpers):
    """R5.2: a series does not end at 999,999 invoices a year (a platform
    with 100,000 accounts issues 1.2 million monthly invoices a year); the
    numbers go on gap-free with more digits, for the invoice run, credit
    notes and final invoices alike."""

    @classmethod
    def setUpClass(cls):
        cls.env = harness.start_env(test_clock=T0)
        cls.d = cls.env.daemon

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def test_past_999999(self):
        for ref in ("N-1", "N-2", "N-3"):
            self.account(ref)
        self.events([ev(ref, "1", "2026-01-10T09:00:00Z") for ref in ("N-1", "N-2", "N-3")])
        self.env.cluster.psql("INSERT INTO number_series (series, last) "
                              "VALUES ('INV-2026', 999998), ('CN-2026', 999999)")
        self.move_clock("2026-02-01T01:00:00Z")
        r = self.req("POST", "/v1/jobs/invoicing?wait=true", {"period": "2026-01"},
                     token="ops")
        job = self.ok(r, 202)
        self.assertEqual((job["status"], job.get("result", {}).get("invoices")),
                         ("succeeded", 3), job)
        numbers = {i["customer"]["external_ref"]: i["number"]
                   for ref in ("N-1", "N-2", "N-3") for i in self.invoices(ref)}
        # in account id order; as a set here
        self.assertEqual(sorted(numbers.values()),
                         ["INV-2026-1000000", "INV-2026-1000001", "INV-2026-999999"])
        cn = self.ok(self.credit_note(numbers["N-2"], "0.10"), 201)
        self.assertEqual(cn["number"], "CN-2026-1000000")
        cn = self.ok(self.credit_note(numbers["N-2"], "0.10"), 201)
        self.assertEqual(cn["number"], "CN-2026-1000001")
        self.move_clock("2026-02-02T10:00:00Z")
        self.events([ev("N-1", "4", "2026-02-02T09:00:00Z")])
        body = self.ok(self.req("POST", "/v1/accounts/ext:N-1/terminate", {"note": "end"},
                                token="finance"))
        self.assertEqual(body["final_invoice"]["number"], "INV-2026-1000002")
        fin = self.invoice("INV-2026-1000002")
        self.assertEqual((fin["kind"], fin["total"]), ("final", "4.00"))
        last = self.env.cluster.psql("SELECT series || ':' || last FROM number_series "
                                     "ORDER BY series")
        self.assertEqual(last.split(), ["CN-2026:1000001", "INV-2026:1000002"])

    # billing.credit_note_prefix equal to billing.invoice_prefix would make
    # both series one counter ("INV-2026"): each credit note would leave a
    # gap in the invoice numbers and the other way round (R5.2, R5.5: credit
    # notes have their own gap-free series). The configuration is refused,
    # naming the key (common/config.c).
    def test_credit_note_prefix_must_differ(self):
        d = harness.Daemon(self.env.cluster.conninfo(),
                           config={"billing": {"invoice_prefix": "INV",
                                               "credit_note_prefix": "INV"}})
        self.addCleanup(d.destroy)
        r = d.run("--config", d.config_path, "migrate", timeout=20)
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertIn("billing.credit_note_prefix", r.stderr)


if __name__ == "__main__":
    harness.main()
