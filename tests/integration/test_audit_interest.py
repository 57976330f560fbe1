#!/usr/bin/env python3
"""Audit of overdue, interest, statutory rates and aging (SPEC R1.4, R6.2-R6.7,
R7.1; API.md "Reference data", "Reports", "Jobs"; RATES.md), with exact values
worked by hand. Complements test_interest.py and test_termination.py.

One daemon, billing zone UTC, actual/365, [billing] compensation = true, the
test clock from 2022-11-10T10:00Z. Tests run in name order and build on each
other.

  2022-11-10  A-HR   (HR, EUR, contractual 5 %)   usage 1,000.00
              A-OK   (DE, EUR, contractual 12 %)  usage   500.00
              A-RND  (CH: no rule, EUR, 11.75 %)  usage   303.39
  2022-12-01  November invoices: issued 1 Dec, due 16 Dec 2022; A-OK pays
              its invoice in full the same day (before the due date)
  2023-01-01  December invoices (interest 17-31 Dec, compensation)
  2023-02-01  January invoices (interest 1-31 Jan)

HR statutory interest exists only from 2023 (rule valid_from 2023-01-01,
ECB MRO + 8: 2023-H1 = 2.50 + 8 = 10.5 %); A-HR's December days bear the
contractual 5 %.
"""

import unittest
import urllib.parse
import uuid
from decimal import ROUND_HALF_UP, Decimal

import harness

T0 = "2022-11-10T10:00:00Z"
USAGE_AT = "2022-11-10T09:00:00Z"
MICRO = Decimal("0.000001")
CENT = Decimal("0.01")


def uid():
    return str(uuid.uuid4())


def exact(amount, rate, days):
    """Simple interest, actual/365, exact."""
    return Decimal(amount) * Decimal(rate) / 100 * days / 365


def micro(v):
    return v.quantize(MICRO, rounding=ROUND_HALF_UP)


def cents(v):
    return v.quantize(CENT, rounding=ROUND_HALF_UP)


class AuditInterest(harness.DaemonTestCase):
    TEST_CLOCK = T0
    CONFIG = {"billing": {"compensation": True}}

    inv = {}  # (ref, period) -> invoice

    # ---- helpers

    def ok(self, r, status=200):
        self.assertStatus(r, status)
        return r.json

    def move(self, now):
        self.ok(self.request("PUT", "/v1/test/clock", {"now": now}))

    def create(self, ref, currency, jurisdiction, rate):
        return self.ok(self.request(
            "POST", "/v1/accounts",
            {"external_ref": ref, "name": "Audit " + ref, "currency": currency,
             "jurisdiction": jurisdiction, "contractual_rate": rate}, token="finance"), 201)

    def usage(self, ref, amount):
        ev = [{"id": uid(), "account": "ext:" + ref, "amount": amount, "occurred_at": USAGE_AT,
               "service": "sms"}]
        self.assertEqual(self.ok(self.request("POST", "/v1/events", ev, token="platform"))
                         ["accepted"], 1)

    def invoices(self, ref):
        q = "account=ext:" + urllib.parse.quote(ref, safe="") + "&limit=1000"
        items = self.ok(self.request("GET", "/v1/invoices?" + q, token="read"))["items"]
        return [self.ok(self.request("GET", "/v1/invoices/" + i["id"], token="read"))
                for i in sorted(items, key=lambda i: i["number"])]

    def invoice(self, ref, period):
        found = [i for i in self.invoices(ref) if i["period"] == period]
        self.assertEqual(len(found), 1, found)
        return found[0]

    def lines(self, inv, kind):
        return [(ln["amount"], ln.get("period"), ln.get("invoice"))
                for ln in inv["lines"] if ln["kind"] == kind]

    def interest(self, inv_id, as_of):
        return self.ok(self.request("GET", f"/v1/invoices/{inv_id}/interest?as_of={as_of}",
                                    token="read"))

    def statutory(self, jur, date):
        return self.request("GET", f"/v1/statutory-rates/{jur}?date={date}", token="read")

    # ---- set-up

    def test_00_setup(self):
        self.create("A-HR", "EUR", "HR", "5")
        self.create("A-OK", "EUR", "DE", "12")
        self.create("A-RND", "EUR", "CH", "11.75")
        self.usage("A-HR", "1000.00")
        self.usage("A-OK", "500.00")
        self.usage("A-RND", "303.39")
        self.move("2022-12-01T03:00:00Z")
        for ref, total in (("A-HR", "1000.00"), ("A-OK", "500.00"), ("A-RND", "303.39")):
            i = self.invoice(ref, "2022-11")
            self.inv[(ref, "2022-11")] = i
            self.assertEqual((i["issue_date"], i["due_date"], i["total"]),
                             ("2022-12-01", "2022-12-16", total), i)
        j = self.ok(self.request("POST", "/v1/payments",
                                 {"id": uid(), "account": "ext:A-OK", "amount": "500.00",
                                  "received_at": "2022-12-01T03:00:00Z", "reference": "on time"},
                                 token="finance"), 201)
        self.assertEqual(Decimal(j["credit"]), 0, j)

    # ---- R6.5: the shipped data (RATES.md "Resulting statutory rates")

    def test_01_statutory_rate_table(self):
        # half-year: (GB, DE, FR, NL/IE/IT/ES/HR, AT), for a debt first
        # overdue on the half-year's first and last day
        table = {
            ("2023-07-01", "2023-12-31"): ("13.00", "12.12", "14.00", "12.00", "12.58"),
            ("2024-01-01", "2024-06-30"): ("13.25", "12.62", "14.50", "12.50", "13.08"),
            ("2024-07-01", "2024-12-31"): ("13.25", "12.37", "14.25", "12.25", "13.08"),
            ("2025-01-01", "2025-06-30"): ("12.75", "11.27", "13.15", "11.15", "11.73"),
            ("2025-07-01", "2025-12-31"): ("12.25", "10.27", "12.15", "10.15", "10.73"),
            ("2026-01-01", "2026-06-30"): ("11.75", "10.27", "12.15", "10.15", "10.73"),
        }
        for days, (gb, de, fr, ecb8, at) in table.items():
            want = {"GB": gb, "DE": de, "FR": fr, "AT": at}
            want.update({j: ecb8 for j in ("NL", "IE", "IT", "ES", "HR")})
            for day in days:
                for jur, rate in want.items():
                    j = self.ok(self.statutory(jur, day))
                    self.assertEqual(Decimal(j["rate"]), Decimal(rate), (jur, day, j))
                    self.assertEqual(j["date"], day, j)
        for day in ("2022-12-17", "2026-06-30"):
            self.assertEqual(Decimal(self.ok(self.statutory("US-NY", day))["rate"]), 9)
            self.assertEqual(Decimal(self.ok(self.statutory("US-CA", day))["rate"]), 10)
        # the fixing: GB reads Bank Rate on 30 Jun / 31 Dec, IE and the
        # half-yearly rules on 1 Jul / 1 Jan
        j = self.ok(self.statutory("GB", "2024-01-01"))
        self.assertEqual((j["reference"]["source"], j["reference"]["fixed_on"],
                          Decimal(j["reference"]["rate"]), Decimal(j["margin"])),
                         ("BOE_BANK_RATE", "2023-12-31", Decimal("5.25"), Decimal(8)), j)
        j = self.ok(self.statutory("AT", "2024-12-31"))
        self.assertEqual((j["reference"]["fixed_on"], Decimal(j["reference"]["rate"]),
                          Decimal(j["margin"])), ("2024-07-01", Decimal("3.88"),
                                                  Decimal("9.2")), j)
        # HR: no statutory rate before 2023; CH: no rule at all
        self.assertError(self.statutory("HR", "2022-12-17"), 404, "not_found")
        self.assertError(self.statutory("CH", "2024-01-01"), 404, "not_found")
        self.assertError(self.statutory("GB", "2024-13-01"), 400, "validation_failed")

    # ---- R6.2/R6.5: an invoice paid by its due date is never late

    def test_02_no_compensation_when_paid_on_time(self):
        # defect (fixed in daemon/daily.c): the daily job of 17 Dec gave the
        # invoice paid on 1 Dec (due 16 Dec) the 40 EUR compensation, and the
        # run of 1 Jan issued an invoice with a "compensation" line for it
        self.move("2023-01-01T03:00:00Z")
        i = self.invoices("A-OK")
        self.assertEqual([(x["period"], x["status"], x["balance"]) for x in i],
                         [("2022-11", "paid", "0.00")], i)
        self.assertEqual(self.lines(i[0], "compensation"), [], i)
        a = self.ok(self.request("GET", "/v1/accounts/ext:A-OK", token="read"))
        self.assertEqual((a["exposure"], a["accrued_interest"], a["status"]),
                         ("0", "0", "active"), a)

    def test_03_december_interest(self):
        # A-HR: 17-31 Dec, 15 days at the contractual 5 % (no HR rate in
        # 2022): 1,000 x 5 % x 15 / 365 = 2.0547945... -> 2.05; the 40 EUR
        # compensation of the HR rule once
        i = self.invoice("A-HR", "2022-12")
        self.inv[("A-HR", "2022-12")] = i
        first = self.inv[("A-HR", "2022-11")]["id"]
        self.assertEqual(self.lines(i, "interest"), [("2.05", "2022-12", first)], i)
        self.assertEqual(cents(exact(1000, 5, 15)), Decimal("2.05"))
        self.assertEqual(self.lines(i, "compensation"), [("40.00", None, first)], i)
        # A-RND (R1.3/R6.3: "kept exact until posting, then rounded per
        # line"): 303.39 x 11.75 % x 15 / 365 = 1.46499965753... -> 1.46.
        # defect (fixed in daemon/daily.c): the accrual was rounded to
        # micro-units first (1.465000) and that to cents: 1.47
        dec = exact("303.39", "11.75", 15)
        self.assertEqual((cents(dec), micro(dec)), (Decimal("1.46"), Decimal("1.465000")))
        i = self.invoice("A-RND", "2022-12")
        self.assertEqual(self.lines(i, "interest"),
                         [("1.46", "2022-12", self.inv[("A-RND", "2022-11")]["id"])], i)
        self.assertEqual(i["total"], "1.46", i)

    # ---- R6.3/R6.4/R6.5: a day without statutory data bears the contractual
    # rate; the days that have one keep it, whatever the date range asked

    def test_04_rate_data_missing_for_some_days(self):
        # defect (fixed in common/interest.c, daemon/interest_calc.c): for a
        # range reaching back into 2022, the whole range fell back to the
        # contractual 5 %, so January (computed alone by the daily job at
        # 10.5 %) showed 5 % here and the two disagreed
        inv = self.inv[("A-HR", "2022-11")]["id"]
        j = self.interest(inv, "2023-01-31")
        got = [(p["from"], p["to"], p["days"], Decimal(p["balance"]), Decimal(p["rate"]),
                p["rate_source"], Decimal(p["amount"])) for p in j["periods"]]
        dec, jan = exact(1000, 5, 15), exact(1000, "10.5", 31)
        self.assertEqual(micro(dec), Decimal("2.054795"))   # 2.0547945205...
        self.assertEqual(micro(jan), Decimal("8.917808"))   # 8.9178082191...
        self.assertEqual(got, [
            ("2022-12-17", "2022-12-31", 15, Decimal(1000), Decimal(5), "contractual", micro(dec)),
            ("2023-01-01", "2023-01-31", 31, Decimal(1000), Decimal("10.5"), "statutory",
             micro(jan))], j)
        self.assertEqual(Decimal(j["total"]), micro(dec + jan))  # 10.972603
        # December alone: the same first period (R6.4)
        j2 = self.interest(inv, "2022-12-31")
        self.assertEqual([(p["from"], p["to"], p["rate"], p["amount"]) for p in j2["periods"]],
                         [("2022-12-17", "2022-12-31", "5", "2.054795")], j2)

    def test_05_january_posting(self):
        self.move("2023-02-01T03:00:00Z")
        # A-HR: January, 31 days at 10.5 % = 8.9178... -> 8.92
        i = self.invoice("A-HR", "2023-01")
        first = self.inv[("A-HR", "2022-11")]["id"]
        self.assertIn(("8.92", "2023-01", first), self.lines(i, "interest"), i)
        self.assertEqual(self.lines(i, "interest_correction"), [], i)
        # posted 2.05 + 8.92 = both periods of test_04 rounded per line
        self.assertEqual(cents(exact(1000, 5, 15)) + cents(exact(1000, "10.5", 31)),
                         Decimal("10.97"))

    def test_06_january_posting_no_rule(self):
        # A-RND, January: 303.39 x 11.75 % x 31 / 365 = 3.0276659... -> 3.03;
        # the interest read stays exact: 46 days = 4.4926657... -> 4.492666
        jan = exact("303.39", "11.75", 31)
        self.assertEqual(cents(jan), Decimal("3.03"))
        i = self.invoice("A-RND", "2023-01")
        self.assertEqual(self.lines(i, "interest"),
                         [("3.03", "2023-01", self.inv[("A-RND", "2022-11")]["id"])], i)
        self.assertEqual(self.lines(i, "interest_correction"), [], i)
        j = self.interest(self.inv[("A-RND", "2022-11")]["id"], "2023-01-31")
        self.assertEqual(j["total"], "4.492666", j)
        self.assertEqual(micro(exact("303.39", "11.75", 46)), Decimal("4.492666"))
        self.assertEqual([(p["rate"], p["rate_source"]) for p in j["periods"]],
                         [("11.75", "contractual")], j)

    # ---- R7.1: bucket boundaries, days overdue from the day after the due date

    def test_07_aging_boundaries(self):
        number = self.inv[("A-HR", "2022-11")]["number"]
        cases = [("2022-12-16", 0, "current"), ("2022-12-17", 1, "1-30"),
                 ("2023-01-15", 30, "1-30"), ("2023-01-16", 31, "31-60"),
                 ("2023-02-14", 60, "31-60"), ("2023-02-15", 61, "61-90"),
                 ("2023-03-16", 90, "61-90"), ("2023-03-17", 91, "90+")]
        for as_of, days, bucket in cases:
            body = self.ok(self.request(
                "GET", "/v1/reports/aging?currency=EUR&as_of=" + as_of, token="read"))
            acc = [a for a in body["currencies"][0]["accounts"] if a["external_ref"] == "A-HR"]
            self.assertEqual(len(acc), 1, body)
            inv = [x for x in acc[0]["invoices"] if x["number"] == number]
            self.assertEqual([(x["days_overdue"], x["bucket"], x["balance"]) for x in inv],
                             [(days, bucket, "1000")], (as_of, acc))

    # ---- R6.5: reference values through the API

    def test_08_reference_value_applies_at_once(self):
        # defect (fixed in daemon/http_rates.c, daemon/rates.c): the PUT
        # answered before the table in memory was reloaded, so a statutory
        # rate read (or a daily job) right after it could use the old value
        for k in range(8):
            rate = Decimal("3.1") + Decimal(k) / 100
            self.ok(self.request("PUT", "/v1/reference-rates/ECB_MRO",
                                 {"effective_date": "2027-01-01", "rate": str(rate),
                                  "note": "audit"}))
            j = self.ok(self.statutory("FR", "2027-01-01"))
            self.assertEqual(Decimal(j["rate"]), rate + 10, j)
            self.assertEqual(j["reference"]["fixed_on"], "2027-01-01", j)
        vals = self.ok(self.request("GET", "/v1/reference-rates/ECB_MRO", token="read"))
        self.assertEqual(vals["values"][-1], {"effective_date": "2027-01-01", "rate": "3.17",
                                              "note": "audit"}, vals)

    def test_09_reference_value_validation(self):
        put = "/v1/reference-rates/ECB_MRO"
        for body, field in (({"effective_date": "2027-07-01", "rate": 3.5}, "rate"),
                            ({"effective_date": "2027-07-01", "rate": "3.12345"}, "rate"),
                            ({"effective_date": "2027-07-01", "rate": "3,5"}, "rate"),
                            ({"rate": "3.5"}, "effective_date"),
                            ({"effective_date": "2027-02-30", "rate": "3.5"}, "effective_date"),
                            ({"effective_date": "2027-07-01", "rate": "3.5", "x": 1}, "x")):
            r = self.request("PUT", put, body)
            self.assertError(r, 400, "validation_failed")
            self.assertEqual(r.json["error"].get("field"), field, r.text)
        self.assertError(self.request("PUT", put, {"effective_date": "2027-07-01",
                                                   "rate": "3.5"}, token="finance"),
                         403, "forbidden")
        self.assertError(self.request("GET", "/v1/reference-rates/NO_SUCH", token="read"),
                         404, "not_found")
        # a series no statutory rule names and that has no values (a typo:
        # zero for O) is not started by a PUT: 404, nothing stored
        self.assertError(self.request("PUT", "/v1/reference-rates/ECB_MR0",
                                      {"effective_date": "2027-07-01", "rate": "3.5"}),
                         404, "not_found")
        self.assertError(self.request("GET", "/v1/reference-rates/ECB_MR0", token="read"),
                         404, "not_found")
        # nothing of the above was stored
        vals = self.ok(self.request("GET", "/v1/reference-rates/ECB_MRO", token="read"))
        self.assertNotIn("2027-07-01", [v["effective_date"] for v in vals["values"]])

    def test_10_interest_read_validation(self):
        inv = self.inv[("A-HR", "2022-11")]["id"]
        r = self.request("GET", f"/v1/invoices/{inv}/interest?as_of=2023-02-30", token="read")
        self.assertError(r, 400, "validation_failed")
        self.assertEqual(r.json["error"].get("field"), "as_of", r.text)
        r = self.request("GET", f"/v1/invoices/{uid()}/interest", token="read")
        self.assertError(r, 404, "not_found")
        # by number too; before the first overdue day: nothing
        number = self.inv[("A-HR", "2022-11")]["number"]
        j = self.interest(number, "2022-12-16")
        self.assertEqual((j["total"], j["periods"]), ("0", []), j)

    # ---- R6.5: "the account and the metrics say so"

    def test_11_no_rule_in_account_and_metrics(self):
        a = self.ok(self.request("GET", "/v1/accounts/ext:A-RND", token="read"))
        self.assertIsNone(a["statutory_rule"], a)
        self.assertEqual(self.ok(self.request("GET", "/v1/accounts/ext:A-HR", token="read"))
                         ["statutory_rule"], "HR")
        # defect (fixed in daemon/rates.c): no metric said so
        r = self.request("GET", "/metrics", token="read")
        self.assertStatus(r, 200)
        self.assertIn('creditd_accounts_without_statutory_rule{jurisdiction="CH"} 1\n', r.text)
        self.assertNotIn('creditd_accounts_without_statutory_rule{jurisdiction="HR"}', r.text)

    # ---- R6.4: a corrected reference value corrects posted interest

    def test_12_backdated_reference_value_corrects_posted_interest(self):
        # ECB MRO on 1 Jan 2023 corrected to 3.00 (was 2.50): HR 2023-H1 =
        # 11 %. A-HR January: 1,000 x 11 % x 31 / 365 = 9.3424657... -> 9.34,
        # posted 8.92: correction +0.42; February (28 days) = 8.4383561... ->
        # 8.44, on the invoice of 1 March
        self.ok(self.request("PUT", "/v1/reference-rates/ECB_MRO",
                             {"effective_date": "2023-01-01", "rate": "3"}))
        self.assertEqual(Decimal(self.ok(self.statutory("HR", "2023-01-01"))["rate"]), 11)
        self.move("2023-03-01T03:00:00Z")
        i = self.invoice("A-HR", "2023-02")
        first = self.inv[("A-HR", "2022-11")]["id"]
        self.assertEqual(cents(exact(1000, 11, 31)) - Decimal("8.92"), Decimal("0.42"))
        self.assertEqual(cents(exact(1000, 11, 28)), Decimal("8.44"))
        self.assertEqual(self.lines(i, "interest_correction"), [("0.42", "2023-01", first)], i)
        self.assertEqual(self.lines(i, "interest"), [("8.44", "2023-02", first)], i)
        # December (no HR rate in 2022) is untouched
        self.assertEqual([ln for ln in self.lines(i, "interest_correction")
                          if ln[1] == "2022-12"], [], i)

    # ---- R6.4: the daily job run for an earlier date

    def test_13_daily_job_for_an_earlier_date_keeps_accruals(self):
        # 2023-03-01T03:00: A-HR's February is posted (8.44); 1 March accrues
        # 1,000 x 11 % / 365 = 0.3013698... -> 0.301370
        a = self.ok(self.request("GET", "/v1/accounts/ext:A-HR", token="read"))
        self.assertEqual(a["accrued_interest"], "0.30137", a)
        self.assertEqual(micro(exact(1000, 11, 1)), Decimal("0.301370"))
        # defect (fixed in daemon/daily.c): a run for 10 February recomputed
        # February through the 10th only (3.013698 against 8.44 posted: a
        # pending correction of -5.43) until the next day's run
        r = self.request("POST", "/v1/jobs/daily?wait=true", {"date": "2023-02-10"},
                         token="ops")
        self.assertIn(r.status, (200, 202), r.text)
        self.assertEqual(r.json["status"], "succeeded", r.text)
        a = self.ok(self.request("GET", "/v1/accounts/ext:A-HR", token="read"))
        self.assertEqual(a["accrued_interest"], "0.30137", a)
        inv = self.ok(self.request("GET", "/v1/invoices/" + self.inv[("A-HR", "2022-11")]["id"],
                                   token="read"))
        self.assertEqual(inv["accrued_interest"], "0.30137", inv)


class Reactivation(unittest.TestCase):
    """R6.7 in a billing zone with daylight saving time (Europe/Berlin;
    inactivity_months = 1): a reactivation requested on Friday 2026-10-23 at
    15:30 CEST takes effect 3 working days later, Wednesday 2026-10-28, at
    15:30 CET = 14:30Z (summer time ends on Sunday 25 October)."""

    @classmethod
    def setUpClass(cls):
        cls.env = harness.start_env(
            config={"billing": {"timezone": "Europe/Berlin"},
                    "overdue": {"inactivity_months": 1}},
            test_clock="2026-09-10T10:00:00Z")
        cls.d = cls.env.daemon

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def req(self, method, path, body=None, token="admin"):
        r = self.d.request(method, path, body, token=token)
        self.assertLess(r.status, 300, r.text)
        return r.json

    def account(self):
        a = self.req("GET", "/v1/accounts/ext:B-IDLE", token="read")
        return a["status"], a["suspension_reasons"]

    def test_reactivation_across_dst_change(self):
        self.req("POST", "/v1/accounts", {"external_ref": "B-IDLE", "name": "Idle",
                                          "currency": "EUR", "jurisdiction": "CH"}, "finance")
        # created 2026-09-10 12:00 local: one month is up on 10 October; the
        # daily job of 11 October (00:05 CEST = 10 Oct 22:05Z) suspends
        self.req("PUT", "/v1/test/clock", {"now": "2026-10-10T22:10:00Z"})
        self.assertEqual(self.account(), ("suspended", ["inactivity"]))
        self.req("PUT", "/v1/test/clock", {"now": "2026-10-23T13:30:00Z"})
        j = self.req("POST", "/v1/accounts/ext:B-IDLE/reactivation", {"note": "back"},
                     "finance")
        # defect (fixed in daemon/http_interest.c): now + 5 x 24 h =
        # 2026-10-28T13:30Z, 14:30 local
        self.assertEqual((j["effective_at"], j["applied"]), ("2026-10-28T14:30:00Z", False), j)
        self.req("PUT", "/v1/test/clock", {"now": "2026-10-28T14:29:59Z"})
        self.assertEqual(self.account(), ("suspended", ["inactivity"]))
        self.req("PUT", "/v1/test/clock", {"now": "2026-10-28T14:30:00Z"})
        self.assertEqual(self.account(), ("active", []))


if __name__ == "__main__":
    harness.main()
