#!/usr/bin/env python3
"""R6.3, R6.4: interest keeps the contract terms of each day.

A PATCH of an account's contractual rate or jurisdiction applies from the day
after it; the days before keep the terms they had, so interest already accrued
or posted is not recomputed and no correction line follows. Several changes on
one day keep the terms from before the first of them.

One daemon, billing zone UTC, actual/365, the test clock from 2023-03-10.

  2023-03-10  T-CH (CH: no statutory rule, EUR, contractual 10 %), usage 1,000.00
  2023-04-01  March invoice, due 2023-04-16: overdue from 04-17
  2023-05-01  April invoice: March invoice's April interest, 14 days at 10 %
              = 1,000 x 0.10 x 14 / 365 = 3.8356164... -> 3.84
  2023-05-10  PATCH contractual_rate 20 (12:00), then 25 (18:00): from 05-11 25 %
  2023-05-20  PATCH jurisdiction US-NY (fixed 9 %) and rate 5: from 05-21 9 %
              (statutory, higher than 5 %)
  2023-06-01  May invoice: May interest
              05-01..05-10 10 days at 10 % = 2.7397260...
              05-11..05-20 10 days at 25 % = 6.8493150...
              05-21..05-31 11 days at  9 % = 2.7123287...
              sum 12.3013698... -> 12.30; no interest_correction line
              (without the history: 31 days at 9 % = 7.64, and April
              corrected by 14 days at 9 % = 3.45 - 3.84 = -0.39)
"""

import uuid
from decimal import ROUND_HALF_UP, Decimal

import harness

T0 = "2023-03-10T10:00:00Z"


def exact(amount, rate, days):
    """Simple interest, actual/365, exact."""
    return Decimal(amount) * Decimal(rate) / 100 * days / 365


def micro(v):
    return v.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


class TermsHistory(harness.DaemonTestCase):
    TEST_CLOCK = T0

    march = None  # the March invoice

    def ok(self, r, status=200):
        self.assertStatus(r, status)
        return r.json

    def move(self, now):
        self.ok(self.request("PUT", "/v1/test/clock", {"now": now}))

    def patch(self, body):
        return self.ok(self.request("PATCH", "/v1/accounts/ext:T-CH", body, token="finance"))

    def invoice(self, period):
        items = self.ok(self.request("GET", "/v1/invoices?account=ext:T-CH", token="read"))
        found = [i for i in items["items"] if i["period"] == period]
        self.assertEqual(len(found), 1, items)
        return self.ok(self.request("GET", "/v1/invoices/" + found[0]["id"], token="read"))

    def lines(self, inv, kind):
        return [(ln["amount"], ln.get("period"), ln.get("invoice"))
                for ln in inv["lines"] if ln["kind"] == kind]

    def periods(self, as_of):
        j = self.ok(self.request(
            "GET", f"/v1/invoices/{self.march['id']}/interest?as_of={as_of}", token="read"))
        return [(p["from"], p["to"], p["days"], Decimal(p["rate"]), p["rate_source"],
                 Decimal(p["amount"])) for p in j["periods"]]

    def test_00_setup(self):
        self.ok(self.request("POST", "/v1/accounts",
                             {"external_ref": "T-CH", "name": "Terms", "currency": "EUR",
                              "jurisdiction": "CH", "contractual_rate": "10"},
                             token="finance"), 201)
        ev = [{"id": str(uuid.uuid4()), "account": "ext:T-CH", "amount": "1000.00",
               "occurred_at": "2023-03-10T09:00:00Z", "service": "sms"}]
        self.assertEqual(self.ok(self.request("POST", "/v1/events", ev,
                                              token="platform"))["accepted"], 1)
        self.move("2023-04-01T03:00:00Z")
        type(self).march = self.invoice("2023-03")
        self.assertEqual((self.march["due_date"], self.march["total"]),
                         ("2023-04-16", "1000.00"))

    def test_01_april_interest_at_ten(self):
        self.move("2023-05-01T03:00:00Z")
        self.assertEqual(micro(exact(1000, 10, 14)), Decimal("3.835616"))
        self.assertEqual(self.lines(self.invoice("2023-04"), "interest"),
                         [("3.84", "2023-04", self.march["id"])])

    def test_02_rate_change_applies_from_next_day(self):
        self.move("2023-05-10T12:00:00Z")
        self.assertEqual(self.patch({"contractual_rate": "20"})["contractual_rate"], "20")
        # 04-17..05-10: 24 days at 10 %; 05-11..05-20: 10 days at 20 %
        self.assertEqual(self.periods("2023-05-20"), [
            ("2023-04-17", "2023-05-10", 24, Decimal(10), "contractual",
             micro(exact(1000, 10, 24))),
            ("2023-05-11", "2023-05-20", 10, Decimal(20), "contractual",
             micro(exact(1000, 20, 10)))])
        self.assertEqual(micro(exact(1000, 10, 24)), Decimal("6.575342"))
        # a second change the same day: the day keeps the terms from before the first
        self.move("2023-05-10T18:00:00Z")
        self.patch({"contractual_rate": "25"})
        self.assertEqual(self.periods("2023-05-20")[0][:4],
                         ("2023-04-17", "2023-05-10", 24, Decimal(10)))
        self.assertEqual(self.periods("2023-05-20")[1],
                         ("2023-05-11", "2023-05-20", 10, Decimal(25), "contractual",
                          Decimal("6.849315")))
        # a PATCH that changes neither rate nor jurisdiction keeps no terms
        self.patch({"name": "Terms renamed", "contractual_rate": "25"})

    def test_03_jurisdiction_change(self):
        self.move("2023-05-20T12:00:00Z")
        self.patch({"jurisdiction": "US-NY", "contractual_rate": "5"})
        self.assertEqual(self.periods("2023-05-31"), [
            ("2023-04-17", "2023-05-10", 24, Decimal(10), "contractual", Decimal("6.575342")),
            ("2023-05-11", "2023-05-20", 10, Decimal(25), "contractual", Decimal("6.849315")),
            ("2023-05-21", "2023-05-31", 11, Decimal(9), "statutory",
             micro(exact(1000, 9, 11)))])
        self.assertEqual(micro(exact(1000, 9, 11)), Decimal("2.712329"))

    def test_04_may_invoice_without_correction(self):
        self.move("2023-06-01T03:00:00Z")
        may = exact(1000, 10, 10) + exact(1000, 25, 10) + exact(1000, 9, 11)
        self.assertEqual(may.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), Decimal("12.30"))
        inv = self.invoice("2023-05")
        self.assertEqual(self.lines(inv, "interest"), [("12.30", "2023-05", self.march["id"])])
        self.assertEqual(self.lines(inv, "interest_correction"), [], inv)
        # the history is kept in the database, one row per day of change
        rows = self.cluster.psql(
            "SELECT through, contractual_rate, jurisdiction FROM account_terms_history "
            "ORDER BY through").strip().splitlines()
        self.assertEqual(rows, ["2023-05-10|100000|CH", "2023-05-20|250000|CH"])


if __name__ == "__main__":
    harness.main()
