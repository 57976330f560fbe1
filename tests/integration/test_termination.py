#!/usr/bin/env python3
"""Account termination (SPEC R5.6, R3.5) and the receivables aging report
(R7.1, R7.3), against the real daemon and a private PostgreSQL.

One timeline, tests in name order (each builds on the previous ones).
Billing zone UTC; every account has contractual rate 0 and a jurisdiction
without a statutory rule (CH), so that no interest ever changes an amount.

  2026-02-10  accounts; February usage of T-A, T-D, G-1, G-2, G-U
  2026-03-01  the February run: one invoice each, issued 03-01, due 03-16;
              T-A then gets late February usage and March usage, T-B March usage
  2026-03-05  T-B pays 50 (received 02-23: 10 days before), 30 (03-02) and 5
              (02-26T00:00Z: the first instant of the refund window); T-D gets
              8 of account credit; at 12:00 T-A, T-B and T-D are terminated
  2026-03-20  G-2 pays 10.50 (received 03-20)
  2026-04..06 monthly runs; G-1 has usage every month
  aging as of 2026-03-04, 03-10, 03-19, 03-20 and 06-15
"""

import csv
import io
import time
import uuid

import harness

T0 = "2026-02-10T10:00:00Z"
TERMINATION = "2026-03-05T12:00:00Z"

# ref: (name, currency)
ACCOUNTS = {
    "T-A": ("Alpha Telecom", "EUR"),
    "T-B": ("Bravo Messaging", "EUR"),
    "T-D": ("Delta Voice", "EUR"),
    "G-1": ("Golf One", "EUR"),
    "G-2": ("Golf Two", "EUR"),
    "G-U": ('Acme, "Widgets" Ltd', "USD"),
}

AGING_HEADER = ["kind", "currency", "account", "external_ref", "name", "current", "1-30",
                "31-60", "61-90", "90+", "total"]
BUCKETS = ["current", "1-30", "31-60", "61-90", "90+"]


def uid() -> str:
    return str(uuid.uuid4())


def ev(ref, amount, occurred, service="sms", destination=None, quantity=None):
    e = {"id": uid(), "account": "ext:" + ref, "amount": amount, "occurred_at": occurred,
         "service": service}
    if destination is not None:
        e["destination"] = destination
    if quantity is not None:
        e["quantity"] = quantity
    return e


class Termination(harness.DaemonTestCase):
    TEST_CLOCK = T0

    ids: dict = {}
    numbers: dict = {}  # (ref, period) -> invoice number
    final_a: dict = {}

    # -- helpers

    def move_clock(self, now):
        r = self.request("PUT", "/v1/test/clock", {"now": now})
        self.assertStatus(r, 200)

    def ingest(self, path, body):
        """POST for the platform; 503 (the account cache reloads after a clock
        move) is retried as its Retry-After asks."""
        for _ in range(100):
            r = self.request("POST", path, body, token="platform")
            if r.status != 503:
                return r
            time.sleep(0.05)
        return r

    def post_events(self, events, accepted=None):
        r = self.ingest("/v1/events", events)
        self.assertStatus(r, 200)
        if accepted is not None:
            self.assertEqual(r.json["accepted"], accepted, r.text)
        return r.json

    def pay(self, ref, amount, received_at):
        r = self.request("POST", "/v1/payments",
                         {"id": uid(), "account": "ext:" + ref, "amount": amount,
                          "received_at": received_at, "reference": "bank " + received_at},
                         token="finance")
        self.assertStatus(r, 201)
        return r.json

    def account(self, ref):
        r = self.request("GET", "/v1/accounts/ext:" + ref, token="read")
        self.assertStatus(r, 200)
        return r.json

    def terminate(self, ref, note="contract ended", token="finance"):
        return self.request("POST", f"/v1/accounts/ext:{ref}/terminate", {"note": note},
                            token=token)

    def aging(self, query="", token="read", headers=None):
        r = self.request("GET", "/v1/reports/aging" + query, token=token, headers=headers)
        self.assertStatus(r, 200)
        return r

    def invoice_rows(self, ref):
        """(number, kind, period, issue, due, accelerated, effective, total,
        credit_applied, paid) of ref's invoices, by number."""
        out = self.psql(
            "SELECT i.number, i.kind, to_char(i.period, 'YYYY-MM'), i.issue_date, i.due_date,"
            " coalesce(i.accelerated_due_date::text, ''), i.effective_due_date,"
            " creditd_amount(i.total), creditd_amount(i.credit_applied),"
            " creditd_amount(i.paid)"
            " FROM invoices i JOIN accounts a ON a.id = i.account_id"
            f" WHERE a.external_ref = '{ref}' ORDER BY i.number")
        return [tuple(line.split("|")) for line in out.splitlines() if line]

    def lines(self, number):
        out = self.psql(
            "SELECT l.line_no, l.kind, l.service, coalesce(l.destination, ''),"
            " coalesce(to_char(l.period, 'YYYY-MM'), ''), l.quantity,"
            " coalesce(creditd_amount(l.unit_price), ''), creditd_amount(l.exact),"
            " creditd_amount(l.amount)"
            " FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id"
            f" WHERE i.number = '{number}' ORDER BY l.line_no")
        return [tuple(line.split("|")) for line in out.splitlines() if line]

    # -- the timeline

    def test_00_setup(self):
        for ref, (name, currency) in ACCOUNTS.items():
            r = self.request("POST", "/v1/accounts",
                             {"external_ref": ref, "name": name, "currency": currency,
                              "jurisdiction": "CH", "contractual_rate": "0"},
                             token="finance")
            self.assertStatus(r, 201)
            Termination.ids[ref] = r.json["id"]
        feb = "2026-02-09T12:00:00Z"
        self.post_events([ev("T-A", "20.004", feb), ev("T-D", "20", feb),
                          ev("G-1", "100", feb), ev("G-2", "40.5", feb, service="voice"),
                          ev("G-U", "7.77", feb)], accepted=5)

    def test_01_february_run(self):
        self.move_clock("2026-03-01T03:00:00Z")  # the scheduler runs 2026-02 at 02:00
        for ref, total in [("T-A", "20"), ("T-D", "20"), ("G-1", "100"), ("G-2", "40.5"),
                           ("G-U", "7.77")]:
            rows = self.invoice_rows(ref)
            self.assertEqual(len(rows), 1, rows)
            number, kind, period, issue, due, acc, eff, tot, _, _ = rows[0]
            self.assertEqual((kind, period, issue, due, acc, eff, tot),
                             ("monthly", "2026-02", "2026-03-01", "2026-03-16", "",
                              "2026-03-16", total), ref)
            Termination.numbers[(ref, "2026-02")] = number
        # T-A: late February usage, March usage; T-B: March usage
        self.post_events([
            ev("T-A", "5.005", "2026-02-20T10:00:00Z", service="voice"),
            ev("T-A", "4.5", "2026-03-01T01:00:00Z", destination="DE", quantity=1000),
            ev("T-A", "4.5", "2026-03-01T01:10:00Z", destination="DE", quantity=1000),
            ev("T-A", "1.234567", "2026-03-01T01:30:00Z", service="voice"),
            ev("T-B", "12.345", "2026-03-01T02:00:00Z"),
            ev("G-1", "60", "2026-03-01T02:30:00Z"),
        ], accepted=6)
        self.assertEqual(self.account("T-A")["unbilled_usage"], "15.239567")

    def test_02_payments_and_credit(self):
        self.move_clock("2026-03-05T11:00:00Z")
        for amount, received in [("50", "2026-02-23T09:00:00Z"), ("30", "2026-03-02T09:00:00Z"),
                                 ("5", "2026-02-26T00:00:00Z")]:
            body = self.pay("T-B", amount, received)
            self.assertEqual(body["allocations"], [], body)  # T-B has no invoice yet
        self.assertEqual(self.account("T-B")["credit_balance"], "85")
        # account credit beside an open invoice (e.g. from before payments were
        # allocated): termination sets it off before anything is forfeited
        self.psql("UPDATE accounts SET credit_balance = 8000000 WHERE external_ref = 'T-D'")

    def test_03_terminate_validation(self):
        self.move_clock(TERMINATION)
        self.assertError(self.terminate("T-A", token="read"), 403, "forbidden")
        self.assertError(self.terminate("NOPE"), 404, "not_found")
        r = self.request("POST", "/v1/accounts/ext:T-A/terminate", {}, token="finance")
        self.assertError(r, 400, "validation_failed")
        r = self.request("POST", "/v1/accounts/ext:T-A/terminate", {"note": "x", "at": "y"},
                         token="finance")
        self.assertError(r, 400, "validation_failed")
        self.assertEqual(self.account("T-A")["status"], "active")

    def test_04_terminate_with_two_months_unbilled(self):
        r = self.terminate("T-A", note="customer left")
        self.assertStatus(r, 200)
        body = r.json
        acc = body["account"]
        self.assertEqual(acc["id"], self.ids["T-A"])
        self.assertEqual(acc["status"], "terminated")
        self.assertEqual(acc["terminated_at"], TERMINATION)
        self.assertEqual(acc["unbilled_usage"], "0")
        self.assertEqual(acc["open_balance"], "35.24")  # 20.00 + 15.24
        self.assertEqual(acc["credit_balance"], "0")
        self.assertEqual(acc["exposure"], "35.24")
        self.assertEqual(body["refundable"], "0")
        self.assertEqual(body["forfeited"], "0")
        self.assertEqual(body["credit_set_off"], "0")
        fin = body["final_invoice"]
        feb_no = self.numbers[("T-A", "2026-02")]
        self.assertEqual(fin["kind"], "final")
        self.assertEqual(fin["period"], "2026-03")
        self.assertEqual(fin["issue_date"], "2026-03-05")
        self.assertEqual(fin["due_date"], "2026-03-05")
        self.assertEqual(fin["total"], "15.24")
        # the invoice's amounts with the currency's decimals, as GET /v1/invoices shows them
        self.assertEqual(fin["credit_applied"], "0.00")
        self.assertEqual(fin["balance"], "15.24")
        # gap-free, from the same series as the monthly run
        last_feb = max(n for n in self.numbers.values())
        self.assertEqual(fin["number"], "INV-2026-%06d" % (int(last_feb[-6:]) + 1))
        Termination.final_a = fin
        self.assertEqual(set(fin), {"id", "number", "kind", "period", "issue_date", "due_date",
                                    "total", "credit_applied", "balance"})
        # March usage as usage lines, the late February usage as prior-period
        self.assertEqual(self.lines(fin["number"]), [
            ("1", "usage", "sms", "DE", "", "2000", "0.0045", "9", "9"),
            ("2", "usage", "voice", "", "", "1", "1.234567", "1.234567", "1.23"),
            ("3", "prior_usage", "voice", "", "2026-02", "1", "5.005", "5.005", "5.01"),
        ])
        # the February invoice is due at the termination date now
        self.assertEqual(body["accelerated_invoices"], [
            {"id": body["accelerated_invoices"][0]["id"], "number": feb_no,
             "original_due_date": "2026-03-16", "due_date": "2026-03-05"}])
        self.assertEqual(self.invoice_rows("T-A"), [
            (feb_no, "monthly", "2026-02", "2026-03-01", "2026-03-16", "2026-03-05",
             "2026-03-05", "20", "0", "0"),
            (fin["number"], "final", "2026-03", "2026-03-05", "2026-03-05", "", "2026-03-05",
             "15.24", "0", "0"),
        ])
        # the invoice API reads it too
        r = self.request("GET", "/v1/invoices/" + fin["number"], token="read")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["total"], "15.24")
        # history, notification
        r = self.request("GET", "/v1/accounts/ext:T-A/history", token="read")
        self.assertStatus(r, 200)
        h = r.json["items"][0]
        self.assertEqual((h["status_before"], h["status"], h["cause"], h["actor"],
                          h["note"]), ("active", "terminated", "terminated", "finance",
                                       "customer left"), h)
        self.settle_feeds()
        r = self.request("GET", "/v1/notifications?limit=1000", token="read")
        self.assertStatus(r, 200)
        notes = [n for n in r.json["items"] if n["kind"] == "account.terminated"]
        self.assertEqual(len(notes), 1, notes)
        p = notes[0]["payload"]
        self.assertEqual(notes[0]["account"], self.ids["T-A"])
        self.assertEqual((p["final_invoice"], p["refundable"], p["forfeited"]),
                         (fin["number"], "0", "0"), p)
        issued = [n for n in r.json["items"] if n["kind"] == "invoice.issued"
                  and n["payload"]["number"] == fin["number"]]
        self.assertEqual(len(issued), 1)
        audit = self.psql("SELECT actor, action FROM audit_log WHERE action = 'account.terminate'")
        self.assertEqual(audit.strip(), "finance|account.terminate")

    def test_05_terminate_twice(self):
        self.assertError(self.terminate("T-A"), 422, "invalid_state")
        self.assertEqual(self.psql("SELECT count(*) FROM invoices WHERE kind = 'final'").strip(),
                         "1")

    def test_06_refundable(self):
        r = self.terminate("T-B")
        self.assertStatus(r, 200)
        body = r.json
        fin = body["final_invoice"]
        self.assertEqual(fin["number"], "INV-2026-%06d" % (int(self.final_a["number"][-6:]) + 1))
        # 12.345 -> 12.35, paid by credit at issue; 85 - 12.35 = 72.65 left, of
        # which the payments of 03-02 (30) and 02-26T00:00Z (5) are refundable,
        # the one of 02-23 (50, ten days before) is not
        self.assertEqual((fin["total"], fin["credit_applied"], fin["balance"]),
                         ("12.35", "12.35", "0.00"))
        self.assertEqual(body["refundable"], "35")
        self.assertEqual(body["forfeited"], "37.65")
        self.assertEqual(body["accelerated_invoices"], [])
        acc = body["account"]
        self.assertEqual((acc["status"], acc["credit_balance"], acc["open_balance"],
                          acc["unbilled_usage"], acc["exposure"]),
                         ("terminated", "35", "0", "0", "-35"))
        row = self.psql("SELECT creditd_amount(recent_payments), creditd_amount(refundable),"
                        " creditd_amount(forfeited) FROM terminations t JOIN accounts a"
                        " ON a.id = t.account_id WHERE a.external_ref = 'T-B'").strip()
        self.assertEqual(row, "35|35|37.65")

    def test_07_set_off_and_nothing_to_bill(self):
        r = self.terminate("T-D")
        self.assertStatus(r, 200)
        body = r.json
        self.assertIsNone(body["final_invoice"])
        self.assertEqual((body["credit_set_off"], body["refundable"], body["forfeited"]),
                         ("8", "0", "0"))
        self.assertEqual(len(body["accelerated_invoices"]), 1)
        acc = body["account"]
        self.assertEqual((acc["credit_balance"], acc["open_balance"], acc["exposure"]),
                         ("0", "12", "12"))
        no = self.numbers[("T-D", "2026-02")]
        self.assertEqual(self.invoice_rows("T-D"), [
            (no, "monthly", "2026-02", "2026-03-01", "2026-03-16", "2026-03-05", "2026-03-05",
             "20", "8", "0")])
        # no number was used up
        self.assertEqual(self.psql("SELECT count(*) FROM invoices WHERE number LIKE 'pending-%'")
                         .strip(), "0")

    def test_08_events_after_termination(self):
        r = self.ingest("/v1/authorize", {"account": "ext:T-A", "amount": "1"})
        self.assertStatus(r, 200)
        self.assertEqual((r.json["allowed"], r.json["reason"]), (False, "terminated"))
        late = ev("T-A", "2.5", "2026-03-05T11:59:00Z", destination="DE", quantity=500)
        after = ev("T-A", "1", "2026-03-05T12:00:01Z")
        body = self.post_events([late, after])
        res = {x["id"]: x for x in body["results"]}
        self.assertEqual(res[late["id"]]["status"], "accepted", body)
        self.assertEqual(res[after["id"]]["status"], "rejected", body)
        self.assertEqual(res[after["id"]]["reason"], "account_terminated", body)
        self.assertEqual((body["accepted"], body["rejected"]), (1, 1))
        self.assertEqual(self.account("T-A")["unbilled_usage"], "2.5")

    def test_09_later_runs(self):
        self.move_clock("2026-03-20T10:00:00Z")
        body = self.pay("G-2", "10.5", "2026-03-20T09:00:00Z")
        self.assertEqual(body["credit"], "0", body)  # allocated to its February invoice
        # the March run bills T-A's late event on a monthly invoice, due at issue
        self.move_clock("2026-04-01T03:00:00Z")
        rows = self.invoice_rows("T-A")
        self.assertEqual(len(rows), 3, rows)
        number, kind, period, issue, due, accel, eff, total, _, _ = rows[2]
        self.assertEqual((kind, period, issue, due, accel, eff, total),
                         ("monthly", "2026-03", "2026-04-01", "2026-04-16", "2026-04-01",
                          "2026-04-01", "2.5"))
        self.assertEqual(self.lines(number),
                         [("1", "usage", "sms", "DE", "", "500", "0.005", "2.5", "2.5")])
        # R5.4: every accepted event of T-A billed exactly once
        self.assertEqual(self.psql(
            "SELECT creditd_amount(sum(l.exact)::bigint) FROM invoice_lines l JOIN invoices i"
            " ON i.id = l.invoice_id JOIN accounts a ON a.id = i.account_id"
            " WHERE a.external_ref = 'T-A'").strip(), "37.743567")
        self.assertEqual(self.psql(
            "SELECT creditd_amount(sum(e.amount)::bigint) FROM events e JOIN accounts a"
            " ON a.id = e.account_id WHERE a.external_ref = 'T-A'").strip(), "37.743567")
        self.move_clock("2026-04-10T12:00:00Z")
        self.post_events([ev("G-1", "30.1", "2026-04-10T10:00:00Z")], accepted=1)
        self.move_clock("2026-05-10T12:00:00Z")
        self.post_events([ev("G-1", "7", "2026-05-10T10:00:00Z")], accepted=1)
        self.move_clock("2026-06-20T10:00:00Z")
        g1 = self.invoice_rows("G-1")
        self.assertEqual([(r[2], r[4], r[7]) for r in g1], [
            ("2026-02", "2026-03-16", "100"), ("2026-03", "2026-04-16", "60"),
            ("2026-04", "2026-05-16", "30.1"), ("2026-05", "2026-06-16", "7")])
        # invoice numbers stay gap-free across runs and terminations
        nums = sorted(int(n) for n in self.psql(
            "SELECT substr(number, 10) FROM invoices").split())
        self.assertEqual(nums, list(range(1, len(nums) + 1)))

    # -- aging (R7.1)

    def test_10_aging_json(self):
        body = self.aging("?as_of=2026-06-15").json
        self.assertEqual(body["as_of"], "2026-06-15")
        self.assertIsNone(body["currency"])
        self.assertEqual([c["currency"] for c in body["currencies"]], ["EUR", "USD"])
        eur, usd = body["currencies"]
        self.assertEqual(eur["totals"], {"current": "7", "1-30": "30.1", "31-60": "60",
                                         "61-90": "2.5", "90+": "177.24", "total": "276.84"})
        self.assertEqual(usd["totals"], {"current": "0", "1-30": "0", "31-60": "0",
                                         "61-90": "0", "90+": "7.77", "total": "7.77"})
        self.assertEqual([a["external_ref"] for a in eur["accounts"]],
                         ["G-1", "G-2", "T-A", "T-D"])  # T-B owes nothing
        by = {a["external_ref"]: a for a in eur["accounts"]}
        self.assertEqual({k: by["G-1"][k] for k in BUCKETS + ["total"]},
                         {"current": "7", "1-30": "30.1", "31-60": "60", "61-90": "0",
                          "90+": "100", "total": "197.1"})
        self.assertEqual([(i["due_date"], i["days_overdue"], i["bucket"], i["balance"])
                          for i in by["G-1"]["invoices"]],
                         [("2026-03-16", 91, "90+", "100"), ("2026-04-16", 60, "31-60", "60"),
                          ("2026-05-16", 30, "1-30", "30.1"), ("2026-06-16", 0, "current", "7")])
        self.assertEqual((by["G-2"]["90+"], by["G-2"]["total"]), ("30", "30"))
        # T-A: effective due dates (moved to the termination date; the invoice
        # issued after the termination is due at issue)
        self.assertEqual(
            [(i["number"], i["due_date"], i["original_due_date"], i["days_overdue"], i["bucket"],
              i["balance"]) for i in by["T-A"]["invoices"]],
            [(self.numbers[("T-A", "2026-02")], "2026-03-05", "2026-03-16", 102, "90+", "20"),
             (self.final_a["number"], "2026-03-05", "2026-03-05", 102, "90+", "15.24"),
             (by["T-A"]["invoices"][2]["number"], "2026-04-01", "2026-04-16", 75, "61-90",
              "2.5")])
        self.assertEqual({k: by["T-A"][k] for k in BUCKETS + ["total"]},
                         {"current": "0", "1-30": "0", "31-60": "0", "61-90": "2.5",
                          "90+": "35.24", "total": "37.74"})
        self.assertEqual(by["T-A"]["status"], "terminated")
        self.assertEqual((by["T-D"]["90+"], by["T-D"]["total"]), ("12", "12"))
        # the accounts in each bucket
        self.assertEqual(
            {b: (v["total"], [(a["external_ref"], a["amount"]) for a in v["accounts"]])
             for b, v in eur["buckets"].items()},
            {"current": ("7", [("G-1", "7")]),
             "1-30": ("30.1", [("G-1", "30.1")]),
             "31-60": ("60", [("G-1", "60")]),
             "61-90": ("2.5", [("T-A", "2.5")]),
             "90+": ("177.24", [("G-1", "100"), ("G-2", "30"), ("T-A", "35.24"),
                                ("T-D", "12")])})
        a = eur["buckets"]["90+"]["accounts"][0]
        self.assertEqual(a, {"id": self.ids["G-1"], "external_ref": "G-1", "name": "Golf One",
                             "amount": "100"})
        self.assertEqual(usd["accounts"][0]["name"], 'Acme, "Widgets" Ltd')
        # a currency filter; a currency with nothing open is listed with zeros
        only = self.aging("?as_of=2026-06-15&currency=USD&format=json").json
        self.assertEqual(only["currency"], "USD")
        self.assertEqual(only["currencies"], [usd])
        jpy = self.aging("?as_of=2026-06-15&currency=JPY").json["currencies"]
        self.assertEqual(len(jpy), 1)
        self.assertEqual(jpy[0]["totals"]["total"], "0")
        self.assertEqual(jpy[0]["accounts"], [])
        # default as_of: today in the billing zone
        self.assertEqual(self.aging().json["as_of"], "2026-06-20")

    def test_11_aging_as_of_past_dates(self):
        def eur(as_of):
            body = self.aging("?currency=EUR&as_of=" + as_of).json
            return {a["external_ref"]: a for a in body["currencies"][0]["accounts"]}

        # before the termination: T-A's February invoice is due 03-16 still, the
        # final invoice does not exist yet, T-D's set-off had not happened
        before = eur("2026-03-04")
        self.assertEqual(sorted(before), ["G-1", "G-2", "T-A", "T-D"])
        self.assertEqual([(i["due_date"], i["bucket"], i["balance"])
                          for i in before["T-A"]["invoices"]],
                         [("2026-03-16", "current", "20")])
        self.assertEqual(before["T-D"]["current"], "20")
        self.assertEqual(before["G-2"]["current"], "40.5")
        # after it: everything of T-A due on 03-05
        after = eur("2026-03-10")
        self.assertEqual([(i["due_date"], i["days_overdue"], i["bucket"], i["balance"])
                          for i in after["T-A"]["invoices"]],
                         [("2026-03-05", 5, "1-30", "20"), ("2026-03-05", 5, "1-30", "15.24")])
        self.assertEqual((after["T-D"]["1-30"], after["G-1"]["current"]), ("12", "100"))
        self.assertNotIn("T-B", after)
        # G-2's payment received on 03-20 counts from that day on
        self.assertEqual((eur("2026-03-19")["G-2"]["1-30"]), "40.5")
        self.assertEqual((eur("2026-03-20")["G-2"]["1-30"]), "30")

    def test_12_aging_csv(self):
        r = self.aging("?as_of=2026-06-15&format=csv")
        self.assertTrue(r.header("Content-Type", "").startswith("text/csv"), r.headers)
        self.assertIn("\r\n", r.text)
        rows = list(csv.reader(io.StringIO(r.text, newline="")))
        self.assertEqual(rows[0], AGING_HEADER)
        self.assertEqual(rows[1:], [
            ["account", "EUR", self.ids["G-1"], "G-1", "Golf One", "7", "30.1", "60", "0",
             "100", "197.1"],
            ["account", "EUR", self.ids["G-2"], "G-2", "Golf Two", "0", "0", "0", "0", "30",
             "30"],
            ["account", "EUR", self.ids["T-A"], "T-A", "Alpha Telecom", "0", "0", "0", "2.5",
             "35.24", "37.74"],
            ["account", "EUR", self.ids["T-D"], "T-D", "Delta Voice", "0", "0", "0", "0",
             "12", "12"],
            ["total", "EUR", "", "", "", "7", "30.1", "60", "2.5", "177.24", "276.84"],
            ["account", "USD", self.ids["G-U"], "G-U", 'Acme, "Widgets" Ltd', "0", "0", "0",
             "0", "7.77", "7.77"],
            ["total", "USD", "", "", "", "0", "0", "0", "0", "7.77", "7.77"],
        ])
        self.assertIn('"Acme, ""Widgets"" Ltd"', r.text)
        # Accept: text/csv chooses CSV too
        r2 = self.aging("?as_of=2026-06-15", headers={"Accept": "text/csv"})
        self.assertEqual(r2.text, r.text)
        # nothing open in a currency: just its total row
        r3 = self.aging("?as_of=2026-06-15&currency=JPY&format=csv")
        self.assertEqual(r3.text, ",".join(AGING_HEADER) + "\r\n"
                         "total,JPY,,,,0,0,0,0,0,0\r\n")

    def test_13_aging_validation(self):
        for q in ["?format=xml", "?as_of=2026-6-15", "?as_of=2026-02-30", "?currency=EURO",
                  "?currency=eur"]:
            r = self.request("GET", "/v1/reports/aging" + q, token="read")
            self.assertError(r, 400, "validation_failed")
        r = self.request("GET", "/v1/reports/aging", token=None)
        self.assertError(r, 401, "unauthorized")
        r = self.request("GET", "/v1/reports/aging", token="platform")
        self.assertStatus(r, 200)  # platform has read


if __name__ == "__main__":
    harness.main()
