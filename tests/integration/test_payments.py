#!/usr/bin/env python3
"""Payments end to end (SPEC R6.1, R4.5; API.md "Payments"): allocation to
open invoices oldest due date first, a named invoice, the remainder as
account credit (applied to the next invoice at issue), idempotency,
validation, backdated received_at, reversal, and the R4.5 lifting of
suspension reasons.

Billing time zone UTC. The clock starts at 2026-01-10T10:00:00Z; test_00
books January usage, moves the clock to 2026-02-10 (the January invoices are
issued on 1 Feb), books February usage and moves on to 2026-03-02T10:00:00Z
(the February invoices are issued on 1 Mar). Accounts have 40 days' terms, so
nothing is overdue in early March and no interest lines appear. test_90 moves
the clock to 2026-04-01T03:00:00Z (March invoices, credit applied at issue).
Tests run in name order and depend on it."""

import urllib.parse
import uuid
from decimal import Decimal

import harness

T0 = "2026-01-10T10:00:00Z"
JAN = "2026-01-10T09:00:00Z"
T_FEB = "2026-02-10T10:00:00Z"
FEB = "2026-02-10T09:00:00Z"
T_MAR = "2026-03-02T10:00:00Z"
MAR = "2026-03-02T09:00:00Z"
T_APR = "2026-04-01T03:00:00Z"
SYN_ID = "5e5e5e5e-0000-4000-8000-000000000001"

# ref -> (options, January usage, February usage)
ACCOUNTS = {
    "PAY-ORDER": ({}, ["60", "40"], ["50"]),
    "PAY-OVER": ({}, ["100"], ["50"]),
    "PAY-NAMED": ({}, ["30"], ["40"]),
    "PAY-BACK": ({}, ["25.5"], []),
    "PAY-TOT": ({"total_limit": "150"}, ["100"], ["40"]),
    "PAY-MON": ({"monthly_limit": "100"}, ["80"], []),
    "PAY-VAL": ({}, ["10"], []),
    "PAY-JPY": ({"currency": "JPY"}, ["1000"], []),
}


def uid():
    return str(uuid.uuid4())


class Payments(harness.DaemonTestCase):
    TEST_CLOCK = T0

    ids = {}        # ref -> account id
    inv = {}        # (ref, "2026-01") -> invoice number
    pays = {}       # name -> (body, response)

    # -- helpers

    def path(self, ref, suffix=""):
        return "/v1/accounts/ext:" + urllib.parse.quote(ref, safe="") + suffix

    def account(self, ref):
        r = self.request("GET", self.path(ref), token="read")
        self.assertStatus(r, 200)
        return r.json

    def money(self, ref):
        a = self.account(ref)
        return (a["open_balance"], a["credit_balance"], a["exposure"])

    def money_accrued(self, ref):
        """(open_balance, credit_balance, exposure less accrued interest): an
        invoice that a reversal leaves overdue accrues interest (R6.3)."""
        a = self.account(ref)
        ex = Decimal(a["exposure"]) - Decimal(a["accrued_interest"])
        return (a["open_balance"], a["credit_balance"], str(ex))

    def invoice(self, number):
        r = self.request("GET", "/v1/invoices/" + urllib.parse.quote(number, safe=""),
                         token="read")
        self.assertStatus(r, 200)
        return r.json

    def inv_state(self, ref, period):
        i = self.invoice(self.inv[(ref, period)])
        return (i["total"], i["paid"], i["balance"], i["status"])

    def move_clock(self, now):
        r = self.request("PUT", "/v1/test/clock", {"now": now})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["now"], now, r.text)

    def events(self, ref, amounts, occurred_at):
        if not amounts:
            return
        evs = [{"id": uid(), "account": "ext:" + ref, "amount": a, "occurred_at": occurred_at,
                "service": "sms"} for a in amounts]
        r = self.request("POST", "/v1/events", evs, token="platform")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["accepted"], len(evs), r.text)

    def pay(self, ref, amount, name=None, expect=201, received_at="2026-03-01T08:00:00Z",
            reference="SEPA", **extra):
        body = {"id": uid(), "account": "ext:" + ref, "amount": amount,
                "received_at": received_at, "reference": reference}
        body.update(extra)
        r = self.request("POST", "/v1/payments", body, token="finance")
        self.assertStatus(r, expect)
        if name:
            self.pays[name] = (body, r.json)
        return body, r.json

    def alloc(self, ref, period, amount, comp="0", interest="0", usage=None):
        number = self.inv[(ref, period)]
        return {"invoice": number, "invoice_id": self.invoice(number)["id"], "amount": amount,
                "components": {"compensation": comp, "interest": interest,
                               "usage": amount if usage is None else usage}}

    def reverse(self, pid, reason="returned by bank", expect=200, token="finance"):
        r = self.request("POST", f"/v1/payments/{pid}/reverse", {"reason": reason}, token=token)
        self.assertStatus(r, expect)
        return r.json

    def status_of(self, ref):
        a = self.account(ref)
        return (a["status"], a["suspension_reasons"])

    def assertFieldError(self, r, field, status=400, code="validation_failed"):
        self.assertError(r, status, code)
        self.assertEqual(r.json["error"].get("field"), field, r.text)

    # -- set-up: two monthly invoices per account

    def test_00_setup(self):
        for ref, (opts, jan, _) in ACCOUNTS.items():
            body = {"external_ref": ref, "name": "Customer " + ref, "currency": "EUR",
                    "jurisdiction": "DE", "payment_terms_days": 40}
            body.update(opts)
            r = self.request("POST", "/v1/accounts", body, token="finance")
            self.assertStatus(r, 201)
            self.ids[ref] = r.json["id"]
            self.events(ref, jan, JAN)
        self.move_clock(T_FEB)          # January invoices, issued 1 Feb, due 13 Mar
        # PAY-ORDER's February invoice falls due before its January one
        r = self.request("PATCH", self.path("PAY-ORDER"), {"payment_terms_days": 5},
                         token="finance")
        self.assertStatus(r, 200)
        for ref, (_, _, feb) in ACCOUNTS.items():
            self.events(ref, feb, FEB)
        self.move_clock(T_MAR)          # February invoices, issued 1 Mar
        for ref in ACCOUNTS:
            r = self.request("GET", "/v1/invoices?account=ext:" + ref, token="read")
            self.assertStatus(r, 200)
            for i in r.json["items"]:
                self.inv[(ref, i["period"])] = i["number"]
        self.assertEqual(sorted(p for (ref, p) in self.inv if ref == "PAY-ORDER"),
                         ["2026-01", "2026-02"])
        o1 = self.invoice(self.inv[("PAY-ORDER", "2026-01")])
        o2 = self.invoice(self.inv[("PAY-ORDER", "2026-02")])
        self.assertEqual((o1["total"], o1["due_date"], o2["total"], o2["due_date"]),
                         ("100.00", "2026-03-13", "50.00", "2026-03-06"))
        self.assertEqual(self.money("PAY-ORDER"), ("150", "0", "150"))
        self.assertEqual(self.inv_state("PAY-BACK", "2026-01"),
                         ("25.50", "0.00", "25.50", "open"))

    # -- R6.1 allocation

    def test_10_partial_payment_oldest_due_first(self):
        # the February invoice is due first (6 Mar < 13 Mar): it is paid first
        body, out = self.pay("PAY-ORDER", "30", name="order1")
        self.assertEqual(out, {"payment": body["id"], "account": self.ids["PAY-ORDER"],
                               "allocations": [self.alloc("PAY-ORDER", "2026-02", "30")],
                               "credit": "0"})
        self.assertEqual(self.inv_state("PAY-ORDER", "2026-02"),
                         ("50.00", "30.00", "20.00", "open"))
        self.assertEqual(self.inv_state("PAY-ORDER", "2026-01"),
                         ("100.00", "0.00", "100.00", "open"))
        self.assertEqual(self.money("PAY-ORDER"), ("120", "0", "120"))

    def test_11_payment_spanning_invoices_and_exact_settlement(self):
        body, out = self.pay("PAY-ORDER", "45.5")
        self.assertEqual(out["allocations"], [self.alloc("PAY-ORDER", "2026-02", "20"),
                                              self.alloc("PAY-ORDER", "2026-01", "25.5")])
        self.assertEqual(out["credit"], "0")
        self.assertEqual(self.inv_state("PAY-ORDER", "2026-02"),
                         ("50.00", "50.00", "0.00", "paid"))
        self.assertEqual(self.inv_state("PAY-ORDER", "2026-01"),
                         ("100.00", "25.50", "74.50", "open"))
        # exactly the rest: paid, nothing left as credit
        body, out = self.pay("PAY-ORDER", "74.50")
        self.assertEqual((out["allocations"], out["credit"]),
                         ([self.alloc("PAY-ORDER", "2026-01", "74.5")], "0"))
        self.assertEqual(self.inv_state("PAY-ORDER", "2026-01"),
                         ("100.00", "100.00", "0.00", "paid"))
        self.assertEqual(self.money("PAY-ORDER"), ("0", "0", "0"))
        # invoices stay paid; a further payment is all credit
        body, out = self.pay("PAY-ORDER", "1")
        self.assertEqual((out["allocations"], out["credit"]), ([], "1"))
        self.assertEqual(self.money("PAY-ORDER"), ("0", "1", "-1"))

    def test_12_overpayment_becomes_credit(self):
        body, out = self.pay("PAY-OVER", "180", name="over")
        self.assertEqual(out["allocations"], [self.alloc("PAY-OVER", "2026-01", "100"),
                                              self.alloc("PAY-OVER", "2026-02", "50")])
        self.assertEqual(out["credit"], "30")
        self.assertEqual(self.inv_state("PAY-OVER", "2026-01"),
                         ("100.00", "100.00", "0.00", "paid"))
        self.assertEqual(self.inv_state("PAY-OVER", "2026-02"),
                         ("50.00", "50.00", "0.00", "paid"))
        self.assertEqual(self.money("PAY-OVER"), ("0", "30", "-30"))
        # March usage of 20 is covered by the credit until it is invoiced (test_90)
        self.events("PAY-OVER", ["20"], MAR)
        self.assertEqual(self.money("PAY-OVER"), ("0", "30", "-10"))
        # the notification carries amounts as decimal strings
        self.settle_feeds()
        r = self.request("GET", "/v1/notifications?account=ext:PAY-OVER&limit=1000",
                         token="read")
        ns = [n for n in r.json["items"] if n["kind"] == "payment.received"]
        self.assertEqual(len(ns), 1, ns)
        pl = ns[0]["payload"]
        self.assertEqual((pl["payment"], pl["amount"], pl["credit"], pl["reference"],
                          [(x["invoice"], x["amount"]) for x in pl["allocations"]]),
                         (body["id"], "180", "30", "SEPA",
                          [(self.inv[("PAY-OVER", "2026-01")], "100"),
                           (self.inv[("PAY-OVER", "2026-02")], "50")]))

    def test_13_payment_naming_an_invoice(self):
        feb = self.inv[("PAY-NAMED", "2026-02")]
        # by number: only that invoice, the rest is credit (January stays open)
        body, out = self.pay("PAY-NAMED", "50", name="named", invoice=feb)
        self.assertEqual((out["allocations"], out["credit"]),
                         ([self.alloc("PAY-NAMED", "2026-02", "40")], "10"))
        self.assertEqual(self.inv_state("PAY-NAMED", "2026-02"),
                         ("40.00", "40.00", "0.00", "paid"))
        self.assertEqual(self.inv_state("PAY-NAMED", "2026-01"),
                         ("30.00", "0.00", "30.00", "open"))
        self.assertEqual(self.money("PAY-NAMED"), ("30", "10", "20"))
        # by id
        jan_id = self.invoice(self.inv[("PAY-NAMED", "2026-01")])["id"]
        body, out = self.pay("PAY-NAMED", "5", invoice=jan_id)
        self.assertEqual((out["allocations"], out["credit"]),
                         ([self.alloc("PAY-NAMED", "2026-01", "5")], "0"))
        self.assertEqual(self.money("PAY-NAMED"), ("25", "10", "15"))
        # an invoice already settled takes nothing: all credit
        body, out = self.pay("PAY-NAMED", "2", invoice=feb)
        self.assertEqual((out["allocations"], out["credit"]), ([], "2"))
        self.assertEqual(self.money("PAY-NAMED"), ("25", "12", "13"))

    def test_14_backdated_payment_and_idempotency(self):
        body, out = self.pay("PAY-BACK", "10", name="back", received_at="2026-02-20T00:00:00Z",
                             reference="stmt 2026-02-20")
        self.assertEqual((out["allocations"], out["credit"]),
                         ([self.alloc("PAY-BACK", "2026-01", "10")], "0"))
        # each allocation keeps the received date (interest as of that day)
        rows = self.psql("SELECT component, amount, to_char(received_at AT TIME ZONE 'UTC', "
                         "'YYYY-MM-DD HH24:MI') FROM payment_allocations "
                         f"WHERE payment_id = '{body['id']}'")
        self.assertEqual(rows.strip(), "usage|10000000|2026-02-20 00:00")
        r = self.request("GET", "/v1/payments/" + body["id"], token="read")
        self.assertStatus(r, 200)
        self.assertEqual((r.json["received_at"], r.json["booked_at"], r.json["reference"]),
                         ("2026-02-20T00:00:00Z", T_MAR, "stmt 2026-02-20"))
        # the same id and body again: 200, the same answer, nothing booked twice
        r = self.request("POST", "/v1/payments", body, token="finance")
        self.assertStatus(r, 200)
        self.assertEqual(r.json, out)
        self.assertEqual(self.inv_state("PAY-BACK", "2026-01"),
                         ("25.50", "10.00", "15.50", "open"))
        self.assertEqual(self.money("PAY-BACK"), ("15.5", "0", "15.5"))
        # "10.00" is the same amount: still a replay
        r = self.request("POST", "/v1/payments", dict(body, amount="10.00"), token="finance")
        self.assertStatus(r, 200)
        # the same id with another payload: 409
        for k, v in (("amount", "11"), ("reference", "other"),
                     ("received_at", "2026-02-21T00:00:00Z"),
                     ("invoice", self.inv[("PAY-BACK", "2026-01")])):
            r = self.request("POST", "/v1/payments", dict(body, **{k: v}), token="finance")
            self.assertError(r, 409, "conflict")
        self.assertEqual(self.money("PAY-BACK"), ("15.5", "0", "15.5"))
        self.settle_feeds()
        r = self.request("GET", "/v1/notifications?account=ext:PAY-BACK&limit=1000",
                         token="read")
        self.assertEqual(len([n for n in r.json["items"] if n["kind"] == "payment.received"]),
                         1)

    def test_15_validation(self):
        good = {"id": uid(), "account": "ext:PAY-VAL", "amount": "1",
                "received_at": "2026-03-01T00:00:00Z", "reference": "r"}
        other = self.inv[("PAY-ORDER", "2026-01")]
        for field, bad in (("amount", "1.001"), ("amount", "0.000001"), ("amount", 1),
                           ("amount", "0"), ("amount", "-5"), ("id", "x"),
                           ("received_at", "2026-03-03T00:00:00Z"), ("received_at", "yesterday"),
                           ("account", "PAY-VAL"), ("account", "ext:NOPE"),
                           ("invoice", "INV-1999-000001"), ("invoice", str(uuid.uuid4())),
                           ("invoice", other), ("invoice", ""), ("reference", None)):
            body = dict(good, id=uid())
            body[field] = bad
            if bad is None:
                del body[field]
            r = self.request("POST", "/v1/payments", body, token="finance")
            self.assertFieldError(r, field)
        r = self.request("POST", "/v1/payments", dict(good, extra=1), token="finance")
        self.assertError(r, 400, "validation_failed")
        # JPY has no minor unit
        jpy = dict(good, account="ext:PAY-JPY")
        self.assertFieldError(self.request("POST", "/v1/payments", dict(jpy, amount="100.5"),
                                           token="finance"), "amount")
        self.assertError(self.request("POST", "/v1/payments", good, token="read"),
                         403, "forbidden")
        self.assertEqual(self.money("PAY-VAL"), ("10", "0", "10"))
        body, out = self.pay("PAY-JPY", "400", invoice=self.inv[("PAY-JPY", "2026-01")])
        self.assertEqual((out["allocations"], out["credit"]),
                         ([self.alloc("PAY-JPY", "2026-01", "400")], "0"))
        self.assertEqual(self.inv_state("PAY-JPY", "2026-01"), ("1000", "400", "600", "open"))

    def test_16_compensation_then_interest_then_usage(self):
        # An invoice with all three components, written directly (interest
        # and compensation lines come from the interest feature): due 2 Mar,
        # before PAY-VAL's January invoice (13 Mar).
        acc = self.ids["PAY-VAL"]
        self.psql(f"""
            INSERT INTO invoices (id, number, account_id, kind, period, issue_date, due_date,
                                  currency, currency_exp, usage_total, interest_total,
                                  compensation_total, total, created_at)
            VALUES ('{SYN_ID}', 'SYN-000001', '{acc}', 'monthly', '2025-12-01', '2026-01-01',
                    '2026-03-02', 'EUR', 2, 10000000, 3210000, 40000000, 53210000,
                    '2026-01-01T02:00:00Z');
            INSERT INTO invoice_lines (invoice_id, line_no, kind, service, quantity, exact,
                                       amount, description)
            VALUES ('{SYN_ID}', 1, 'usage', 'sms', 1, 10000000, 10000000, 'sms'),
                   ('{SYN_ID}', 2, 'interest', NULL, NULL, 3210000, 3210000, 'interest'),
                   ('{SYN_ID}', 3, 'compensation', NULL, NULL, 40000000, 40000000, 'fee');
            UPDATE accounts SET open_balance = open_balance + 53210000 WHERE id = '{acc}';""")
        self.inv[("PAY-VAL", "syn")] = "SYN-000001"
        self.assertEqual(self.money("PAY-VAL"), ("63.21", "0", "63.21"))
        body, out = self.pay("PAY-VAL", "42")
        self.assertEqual(out["allocations"],
                         [self.alloc("PAY-VAL", "syn", "42", comp="40", interest="2", usage="0")])
        # a credit note reduces the usage still open first
        r = self.request("POST", "/v1/invoices/SYN-000001/credit-notes",
                         {"amount": "5", "reason": "goodwill"}, token="finance")
        self.assertStatus(r, 201)
        self.assertEqual(self.money("PAY-VAL"), ("16.21", "0", "16.21"))
        body, out = self.pay("PAY-VAL", "7")
        self.assertEqual(out["allocations"],
                         [self.alloc("PAY-VAL", "syn", "6.21", interest="1.21", usage="5"),
                          self.alloc("PAY-VAL", "2026-01", "0.79")])
        rows = self.psql("SELECT component, amount FROM payment_allocations "
                         f"WHERE invoice_id = '{SYN_ID}' ORDER BY id")
        self.assertEqual(rows.split(), ["compensation|40000000", "interest|2000000",
                                        "interest|1210000", "usage|5000000"])
        self.assertEqual(self.inv_state("PAY-VAL", "syn"), ("53.21", "48.21", "0.00", "paid"))
        self.assertEqual(self.money("PAY-VAL"), ("9.21", "0", "9.21"))

    # -- R4.5

    def test_20_payment_to_zero_exposure_lifts_monthly_limit(self):
        # January invoice 80 open; 100 of March usage reaches the monthly limit
        self.events("PAY-MON", ["100"], MAR)
        self.assertEqual(self.status_of("PAY-MON"), ("suspended", ["monthly_limit"]))
        self.assertEqual(self.money("PAY-MON"), ("80", "0", "180"))
        body, out = self.pay("PAY-MON", "100")
        self.assertEqual((out["allocations"], out["credit"]),
                         ([self.alloc("PAY-MON", "2026-01", "80")], "20"))
        a = self.account("PAY-MON")
        self.assertEqual((a["open_balance"], a["credit_balance"], a["exposure"],
                          a["monthly_usage"], a["status"]), ("0", "20", "80", "100", "suspended"))
        # exposure exactly 0: lifted, the monthly counter restarts at the payment
        self.pay("PAY-MON", "80")
        a = self.account("PAY-MON")
        self.assertEqual((a["open_balance"], a["credit_balance"], a["unbilled_usage"],
                          a["exposure"], a["monthly_usage"], a["monthly_remaining"]),
                         ("0", "100", "100", "0", "0", "100"))
        self.assertEqual(self.status_of("PAY-MON"), ("active", []))
        r = self.request("GET", self.path("PAY-MON", "/history"), token="read")
        self.assertEqual((r.json["items"][0]["cause"], r.json["items"][0]["status"]),
                         ("payment", "active"))
        # usage from before the payment no longer counts this month; later usage does
        self.events("PAY-MON", ["5"], MAR)
        self.events("PAY-MON", ["30"], T_MAR)
        a = self.account("PAY-MON")
        self.assertEqual((a["monthly_usage"], a["exposure"], a["status"]),
                         ("30", "35", "active"))

    def test_21_reversal_restores_balances_and_total_limit(self):
        # exposure 140 < 150 (January 100 + February 40 invoiced)
        self.assertEqual(self.status_of("PAY-TOT"), ("active", []))
        body, out = self.pay("PAY-TOT", "100", name="tot")
        self.assertEqual(out["allocations"], [self.alloc("PAY-TOT", "2026-01", "100")])
        self.events("PAY-TOT", ["60"], MAR)
        self.assertEqual(self.money("PAY-TOT"), ("40", "0", "100"))
        self.assertEqual(self.status_of("PAY-TOT"), ("active", []))
        # the payment bounces: 200 with the payment, exposure 200 >= 150
        p = self.reverse(body["id"])
        self.assertEqual((p["id"], p["account"], p["amount"], p["reversed_at"],
                          p["reverse_reason"], p["credit"]),
                         (body["id"], self.ids["PAY-TOT"], "100", T_MAR, "returned by bank",
                          "0"))
        self.assertEqual(self.inv_state("PAY-TOT", "2026-01"),
                         ("100.00", "0.00", "100.00", "open"))
        self.assertEqual(self.money("PAY-TOT"), ("140", "0", "200"))
        self.assertEqual(self.status_of("PAY-TOT"), ("suspended", ["total_limit"]))
        h = self.request("GET", self.path("PAY-TOT", "/history"), token="read").json["items"]
        self.assertEqual((h[0]["cause"], h[0]["status"]), ("payment_reversal", "suspended"))
        r = self.request("POST", "/v1/authorize", {"account": "ext:PAY-TOT", "amount": "1"},
                         token="platform")
        self.assertEqual(r.json["allowed"], False, r.text)
        rows = self.psql("SELECT count(*) FROM payment_allocations "
                         f"WHERE payment_id = '{body['id']}' AND reversed_at IS NOT NULL")
        self.assertEqual(rows.strip(), "1")
        # twice: 422; unknown: 404; read scope: 403; a replay still answers the booking
        r = self.request("POST", f"/v1/payments/{body['id']}/reverse", {"reason": "again"},
                         token="finance")
        self.assertError(r, 422, "invalid_state")
        r = self.request("POST", f"/v1/payments/{uid()}/reverse", {"reason": "x"},
                         token="finance")
        self.assertError(r, 404, "not_found")
        r = self.request("POST", f"/v1/payments/{body['id']}/reverse", {"reason": "x"},
                         token="read")
        self.assertError(r, 403, "forbidden")
        r = self.request("POST", f"/v1/payments/{body['id']}/reverse", {}, token="finance")
        self.assertFieldError(r, "reason")
        r = self.request("POST", "/v1/payments", body, token="finance")
        self.assertStatus(r, 200)
        self.assertEqual(self.money("PAY-TOT"), ("140", "0", "200"))
        # paying again lifts total_limit below the limit
        self.pay("PAY-TOT", "50.01")
        self.assertEqual(self.money("PAY-TOT"), ("89.99", "0", "149.99"))
        self.assertEqual(self.status_of("PAY-TOT"), ("active", []))

    def test_22_reversal_of_credit(self):
        # PAY-NAMED: 50 on February (40) + 10 credit; credit now 12
        body, _ = self.pays["named"]
        p = self.reverse(body["id"], reason="chargeback")
        self.assertEqual(p["allocations"], [self.alloc("PAY-NAMED", "2026-02", "40")])
        self.assertEqual(self.inv_state("PAY-NAMED", "2026-02"),
                         ("40.00", "0.00", "40.00", "open"))
        self.assertEqual(self.money("PAY-NAMED"), ("65", "2", "63"))

    # -- listing

    def test_30_list_and_get(self):
        r = self.request("GET", "/v1/payments?account=ext:PAY-ORDER", token="read")
        self.assertStatus(r, 200)
        items = r.json["items"]
        self.assertEqual([(p["amount"], p["credit"], len(p["allocations"]), p["reversed_at"])
                          for p in items],
                         [("30", "0", 1, None), ("45.5", "0", 2, None), ("74.5", "0", 1, None),
                          ("1", "1", 0, None)])
        self.assertIsNone(r.json["next_cursor"])
        body, out = self.pays["order1"]
        first = items[0]
        self.assertEqual({k: first[k] for k in ("id", "account", "amount", "received_at",
                                                 "reference", "allocations", "credit")},
                         {"id": body["id"], "account": self.ids["PAY-ORDER"], "amount": "30",
                          "received_at": "2026-03-01T08:00:00Z", "reference": "SEPA",
                          "allocations": out["allocations"], "credit": "0"})
        # paging
        r = self.request("GET", "/v1/payments?account=ext:PAY-ORDER&limit=3", token="read")
        self.assertEqual(len(r.json["items"]), 3)
        cur = r.json["next_cursor"]
        self.assertIsNotNone(cur)
        r = self.request("GET", f"/v1/payments?account=ext:PAY-ORDER&limit=3&cursor={cur}",
                         token="read")
        self.assertEqual(([p["amount"] for p in r.json["items"]], r.json["next_cursor"]),
                         (["1"], None))
        # all accounts; an unknown account lists nothing
        r = self.request("GET", "/v1/payments?limit=1000", token="read")
        self.assertEqual(len(r.json["items"]), 16)
        r = self.request("GET", "/v1/payments?account=ext:NOPE", token="read")
        self.assertEqual(r.json, {"items": [], "next_cursor": None})
        r = self.request("GET", "/v1/payments?account=bad", token="read")
        self.assertFieldError(r, "account")
        # one payment
        r = self.request("GET", "/v1/payments/" + body["id"], token="read")
        self.assertStatus(r, 200)
        self.assertEqual(r.json, first)
        self.assertError(self.request("GET", "/v1/payments/" + uid(), token="read"),
                         404, "not_found")
        self.assertError(self.request("GET", "/v1/payments/nope", token="read"),
                         404, "not_found")
        tot = self.request("GET", "/v1/payments/" + self.pays["tot"][0]["id"],
                           token="read").json
        self.assertEqual(tot["reversed_at"], T_MAR)

    # -- credit applied at issue, and reversing it

    def test_90_credit_applied_at_next_invoice(self):
        self.move_clock(T_APR)          # March invoices, issued 1 Apr
        r = self.request("GET", "/v1/invoices?account=ext:PAY-OVER&period=2026-03",
                         token="read")
        self.assertEqual(len(r.json["items"]), 1, r.text)
        self.inv[("PAY-OVER", "2026-03")] = r.json["items"][0]["number"]
        # 30 of credit covers the 20 invoice: paid at issue, 10 credit left
        self.assertEqual(self.inv_state("PAY-OVER", "2026-03"),
                         ("20.00", "20.00", "0.00", "paid"))
        self.assertEqual(self.money("PAY-OVER"), ("0", "10", "-10"))

    def test_91_reversal_undoes_credit_applied_since(self):
        # the 180 bounces: 150 back on January/February, 10 from the credit,
        # 20 from the credit applied to the March invoice (reopened)
        body, _ = self.pays["over"]
        p = self.reverse(body["id"])
        self.assertEqual((p["reversed_at"], p["credit"]), (T_APR, "30"))
        # January (due 13 Mar) is unpaid again, so overdue on 1 Apr
        self.assertEqual(self.inv_state("PAY-OVER", "2026-01"),
                         ("100.00", "0.00", "100.00", "overdue"))
        self.assertEqual(self.inv_state("PAY-OVER", "2026-02"),
                         ("50.00", "0.00", "50.00", "open"))
        self.assertEqual(self.inv_state("PAY-OVER", "2026-03"),
                         ("20.00", "0.00", "20.00", "open"))
        self.assertEqual(self.money_accrued("PAY-OVER"), ("170", "0", "170"))
        # a new payment goes to the oldest due invoice again
        body, out = self.pay("PAY-OVER", "120", received_at="2026-03-31T00:00:00Z")
        self.assertEqual((out["allocations"], out["credit"]),
                         ([self.alloc("PAY-OVER", "2026-01", "100"),
                           self.alloc("PAY-OVER", "2026-02", "20")], "0"))
        self.assertEqual(self.money_accrued("PAY-OVER"), ("50", "0", "50"))
        # balances agree with the invoices
        total = self.psql("SELECT sum(total - credit_applied - paid - credited) FROM invoices "
                          f"WHERE account_id = '{self.ids['PAY-OVER']}'")
        self.assertEqual(total.strip(), "50000000")


if __name__ == "__main__":
    harness.main()
