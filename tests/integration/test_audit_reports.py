#!/usr/bin/env python3
"""Audit of what finance staff read: the aging report (R7.1), the exposure
report (R7.2), JSON == CSV (R7.3, R1.2), invoices as JSON and printable HTML
(R5.7, R1.3) and the notifications outbox cursor across two daemons (R8.1,
R8.2). Complements test_reports.py, test_termination.py (aging in EUR/USD,
UTC), test_audit_interest.py (aging boundaries, UTC), test_invoicing.py
(HTML page) and test_audit_api.py (exposure CSV quoting, outbox paging).

Billing zone Asia/Tokyo (UTC+9, no DST); every account has contractual rate
0 and jurisdiction CH (no statutory rule), so no interest changes an amount.

  2026-01-20  accounts, January usage (occurred 2026-01-15T00:00Z)
  2026-02-01  the January run (1 Feb 02:00 JST): invoices issued 02-01,
              due 02-16 (15 days)
  2026-02-19T15:30Z = 2026-02-20 00:30 JST: RB-1 pays 2.346 BHD received
              2026-02-17T15:30Z (02-18 00:30 JST); a credit note of 0.01 EUR
              for E-2; X-3 gets February usage and is terminated; RN-1 pays 5
              EUR with nothing open (account credit)

Hand-computed figures (R1.3: per line, half away from zero):
  RJ-1 JPY  sms/JP 1000.4 -> 1000, voice/JP 234.5 -> 235; total 1235
  RB-1 BHD  sms/BH 12.3455 -> 12.346; paid 2.346; balance 10.000
  E-2  EUR  sms/<script>.. 10.005 -> 10.01, a&b<i>/x'y 2 -> 2.00; total
            12.01, credited 0.01, balance 12.00
  X-3  EUR  January 5 -> 5.00 (due 02-16), final invoice 3.00 (issued and
            due 02-20)
"""

import csv
import http.client
import io
import json
import re
import threading
import unittest
import uuid

import harness

T0 = "2026-01-20T03:00:00Z"
T_RUN = "2026-02-01T00:00:00Z"          # 09:00 JST, after the 02:00 JST run
T_LATE = "2026-02-19T15:30:00Z"         # 2026-02-20 00:30 JST
OCC = "2026-01-15T00:00:00Z"

E2_REF = 'E,"2"'
E2_NAME = '<script>alert("n")</script> & Sons'
X3_REF = "=cmd|' /C calc'!A0"
X3_NAME = "+SUM(A1)"
SCRIPT_DEST = "<script>alert(1)</script>"

AMOUNT_RE = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]{1,6})?$")
BUCKETS = ["current", "1-30", "31-60", "61-90", "90+"]
AGING_HEADER = ["kind", "currency", "account", "external_ref", "name"] + BUCKETS + ["total"]


def uid() -> str:
    return str(uuid.uuid4())


def all_amounts(o, keys=("amount", "balance", "total", "exposure", "monthly_usage",
                         "monthly_limit", "total_limit", "monthly_remaining",
                         "total_remaining", "headroom", "paid", "credited") + tuple(BUCKETS)):
    """Every amount string in a JSON document (R1.2)."""
    if isinstance(o, dict):
        for k, v in o.items():
            if k in keys and isinstance(v, str):
                yield k, v
            else:
                yield from all_amounts(v, keys)
    elif isinstance(o, list):
        for v in o:
            yield from all_amounts(v, keys)


class AuditReports(harness.DaemonTestCase):
    TEST_CLOCK = T0
    CONFIG = {"billing": {"timezone": "Asia/Tokyo"}}

    ids: dict = {}

    # ---- helpers ----

    def ok(self, r, status=200):
        self.assertStatus(r, status)
        return r.json

    def clock(self, now):
        self.ok(self.request("PUT", "/v1/test/clock", {"now": now}))

    def events(self, ref, items):
        evs = [{"id": uid(), "account": "ext:" + ref, "amount": a, "occurred_at": occ,
                "service": s, "destination": d} for (a, s, d, occ) in items]
        r = self.post_events(evs)
        self.assertEqual(r["accepted"], len(evs), r)

    def invoices(self, ref):
        r = self.ok(self.request("GET", "/v1/invoices?account=" + self.ids[ref], token="read"))
        return r["items"]

    def aging(self, query=""):
        r = self.request("GET", "/v1/reports/aging" + query, token="read")
        self.assertStatus(r, 200)
        self.assertTrue(r.header("content-type", "").startswith("application/json"), r.headers)
        return r.json

    def aging_csv(self, query=""):
        sep = "&" if "?" in query else "?"
        r = self.request("GET", "/v1/reports/aging" + query + sep + "format=csv", token="read")
        self.assertStatus(r, 200)
        return r

    def exposure(self, query=""):
        return self.ok(self.request("GET", "/v1/reports/exposure" + query, token="read"))

    # ---- setup ----

    def test_00_setup(self):
        accounts = [
            ("RJ-1", "Yamada KK", "JPY", {"monthly_limit": "1000", "total_limit": "1000"}),
            ("RB-1", "Gulf Traders", "BHD", {}),
            (E2_REF, E2_NAME, "EUR", {}),
            (X3_REF, X3_NAME, "EUR", {}),
            ("RN-1", "Nine", "EUR", {"total_limit": "100"}),
            ("RF-1", "Foxtrot", "EUR", {}),
        ]
        for ref, name, cur, kw in accounts:
            body = {"external_ref": ref, "name": name, "currency": cur, "jurisdiction": "CH",
                    "contractual_rate": "0", "payment_terms_days": 15}
            body.update(kw)
            AuditReports.ids[ref] = self.ok(self.request("POST", "/v1/accounts", body,
                                                         token="finance"), 201)["id"]
        self.events("RJ-1", [("1000.4", "sms", "JP", OCC), ("234.5", "voice", "JP", OCC)])
        self.events("RB-1", [("12.3455", "sms", "BH", OCC)])
        self.events(E2_REF, [("10.005", "sms", SCRIPT_DEST, OCC), ("2", "a&b<i>", "x'y", OCC)])
        self.events(X3_REF, [("5", "sms", "DE", OCC)])
        self.events("RF-1", [("7", "sms", "DE", OCC)])
        # the January run of 1 Feb 02:00 JST
        self.clock(T_RUN)
        for ref, total in (("RJ-1", "1235"), ("RB-1", "12.346"), (E2_REF, "12.01"),
                           (X3_REF, "5.00"), ("RF-1", "7.00")):
            inv = self.invoices(ref)
            self.assertEqual([(i["period"], i["issue_date"], i["due_date"], i["total"])
                              for i in inv], [("2026-01", "2026-02-01", "2026-02-16", total)],
                             (ref, inv))
            AuditReports.ids[("inv", ref)] = inv[0]["id"]

        self.clock(T_LATE)
        # RB-1 pays 2.346 BHD, received 2026-02-18 00:30 JST (17 Feb in UTC)
        r = self.ok(self.request("POST", "/v1/payments",
                                 {"id": uid(), "account": "ext:RB-1", "amount": "2.346",
                                  "received_at": "2026-02-17T15:30:00Z", "reference": "bank"},
                                 token="finance"), 201)
        self.assertEqual(r["credit"], "0", r)
        # E-2: a credit note of 0.01 EUR, issued 2026-02-20 00:30 JST
        self.ok(self.request("POST", f"/v1/invoices/{self.ids[('inv', E2_REF)]}/credit-notes",
                             {"amount": "0.01", "reason": "<b>goodwill</b>"},
                             token="finance"), 201)
        # RF-1: credited in full, issued 2026-02-20 00:30 JST
        self.ok(self.request("POST", f"/v1/invoices/{self.ids[('inv', 'RF-1')]}/credit-notes",
                             {"amount": "7", "reason": "waived"}, token="finance"), 201)
        # February usage (2026-02-20 00:00 JST), then terminated
        self.events(X3_REF, [("3", "sms", "DE", "2026-02-19T15:00:00Z")])
        t = self.ok(self.request("POST", f"/v1/accounts/{self.ids[X3_REF]}/terminate",
                                 {"note": "end"}, token="finance"))
        self.assertEqual(t["final_invoice"]["total"], "3.00", t)
        # RN-1: 5 EUR with nothing open becomes account credit (exposure -5)
        r = self.ok(self.request("POST", "/v1/payments",
                                 {"id": uid(), "account": "ext:RN-1", "amount": "5",
                                  "received_at": T_LATE, "reference": "prepay"},
                                 token="finance"), 201)
        self.assertEqual((r["allocations"], r["credit"]), ([], "5"), r)
        # an older row may hold a line break (the API refuses control characters)
        self.psql("UPDATE accounts SET name = E'Gulf\\r\\nTraders' WHERE external_ref = 'RB-1'")

    # ---- R7.1 aging ----

    def test_01_aging_per_currency_exact(self):
        body = self.aging()
        # default as_of: today in the billing zone (20 Feb JST; 19 Feb in UTC)
        self.assertEqual(set(body), {"as_of", "currency", "currencies"}, body)
        self.assertEqual((body["as_of"], body["currency"]), ("2026-02-20", None))
        # one block per currency, never summed together, sorted by code
        self.assertEqual([c["currency"] for c in body["currencies"]], ["BHD", "EUR", "JPY"])
        bhd, eur, jpy = body["currencies"]

        def z(**kw):
            d = {b: "0" for b in BUCKETS}
            d.update(kw)
            return d

        self.assertEqual(bhd["totals"], z(**{"1-30": "10", "total": "10"}))
        self.assertEqual(jpy["totals"], z(**{"1-30": "1235", "total": "1235"}))
        # EUR: X-3 5 (1-30, 4 days) + final 3 (current); E-2 12.00 (1-30)
        self.assertEqual(eur["totals"], z(**{"current": "3", "1-30": "17", "total": "20"}))
        self.assertEqual([a["external_ref"] for a in eur["accounts"]], [X3_REF, E2_REF])
        x3, e2 = eur["accounts"]
        self.assertEqual((x3["name"], x3["status"], x3["current"], x3["1-30"], x3["total"]),
                         (X3_NAME, "terminated", "3", "5", "8"))
        self.assertEqual([(i["due_date"], i["days_overdue"], i["bucket"], i["balance"])
                          for i in x3["invoices"]],
                         [("2026-02-16", 4, "1-30", "5"), ("2026-02-20", 0, "current", "3")])
        self.assertEqual((e2["name"], e2["1-30"], e2["total"]), (E2_NAME, "12", "12"))
        self.assertEqual(eur["buckets"]["1-30"],
                         {"total": "17", "accounts": [
                             {"id": self.ids[X3_REF], "external_ref": X3_REF, "name": X3_NAME,
                              "amount": "5"},
                             {"id": self.ids[E2_REF], "external_ref": E2_REF, "name": E2_NAME,
                              "amount": "12"}]})
        self.assertEqual(eur["buckets"]["current"]["accounts"][0]["amount"], "3")
        self.assertEqual(bhd["accounts"][0]["invoices"][0]["balance"], "10")
        for k, v in all_amounts(body):
            self.assertRegex(v, AMOUNT_RE, k)

    def test_02_aging_boundaries_jpy(self):
        # RJ-1: 1235 JPY due 2026-02-16 (dates in the billing zone)
        cases = [("2026-02-16", 0, "current"), ("2026-02-17", 1, "1-30"),
                 ("2026-03-18", 30, "1-30"), ("2026-03-19", 31, "31-60"),
                 ("2026-04-17", 60, "31-60"), ("2026-04-18", 61, "61-90"),
                 ("2026-05-17", 90, "61-90"), ("2026-05-18", 91, "90+")]
        for as_of, days, bucket in cases:
            with self.subTest(as_of=as_of):
                body = self.aging("?currency=JPY&as_of=" + as_of)
                self.assertEqual(body["as_of"], as_of)
                (cur,) = body["currencies"]
                (acc,) = cur["accounts"]
                self.assertEqual([(i["days_overdue"], i["bucket"], i["balance"])
                                  for i in acc["invoices"]], [(days, bucket, "1235")])
                want = {b: ("1235" if b == bucket else "0") for b in BUCKETS}
                self.assertEqual({b: acc[b] for b in BUCKETS}, want)
                self.assertEqual({b: cur["totals"][b] for b in BUCKETS}, want)
        # before the issue date: nothing
        self.assertEqual(self.aging("?currency=JPY&as_of=2026-01-31")["currencies"][0]["accounts"],
                         [])

    def test_03_aging_partial_payment_and_credit_note_by_zone_day(self):
        def acc(cur, as_of):
            (c,) = self.aging(f"?currency={cur}&as_of={as_of}")["currencies"]
            return [(a["external_ref"], a["total"]) for a in c["accounts"]]

        # RB-1's payment was received on 18 Feb in Tokyo (17 Feb in UTC)
        self.assertEqual(acc("BHD", "2026-02-17"), [("RB-1", "12.346")])
        self.assertEqual(acc("BHD", "2026-02-18"), [("RB-1", "10")])
        # E-2's credit note was issued on 20 Feb in Tokyo (19 Feb in UTC)
        # RF-1's invoice, credited in full that day, leaves the report then
        self.assertEqual(acc("EUR", "2026-02-19"), [(X3_REF, "5"), (E2_REF, "12.01"),
                                                    ("RF-1", "7")])
        self.assertEqual(acc("EUR", "2026-02-20"), [(X3_REF, "8"), (E2_REF, "12")])

    def test_04_aging_csv_equals_json(self):
        js = self.aging()
        r = self.aging_csv()
        self.assertEqual(r.header("content-type"), "text/csv; charset=utf-8")
        self.assertEqual(r.header("content-disposition"),
                         'attachment; filename="aging-2026-02-20.csv"')
        text = r.body.decode("utf-8")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        self.assertEqual(rows[0], AGING_HEADER)
        want = []
        for c in js["currencies"]:
            for a in c["accounts"]:
                name = a["name"]
                ext = a["external_ref"]
                # CSV injection: free text starting with = + - @ gets an apostrophe
                if ext[0] in "=+-@":
                    ext = "'" + ext
                if name[0] in "=+-@":
                    name = "'" + name
                want.append(["account", c["currency"], a["id"], ext, name]
                            + [a[b] for b in BUCKETS] + [a["total"]])
            want.append(["total", c["currency"], "", "", ""]
                        + [c["totals"][b] for b in BUCKETS] + [c["totals"]["total"]])
        self.assertEqual(rows[1:], want)
        # exact bytes of the quoted cells (RFC 4180)
        self.assertIn(',"E,""2""",', text)
        self.assertIn(',"Gulf\r\nTraders",', text)
        self.assertIn(",'=cmd|' /C calc'!A0,'+SUM(A1),", text)
        self.assertTrue(text.endswith("\r\n"))
        # the JSON has the raw text
        self.assertEqual(js["currencies"][0]["accounts"][0]["name"], "Gulf\r\nTraders")

    # ---- R7.2 exposure ----

    def test_10_exposure_exact(self):
        body = self.exposure()
        self.assertEqual(body["as_of"], T_LATE)
        by = {x["external_ref"]: x for x in body["items"]}
        # headroom ascending, accounts without a limit (null) last by external_ref
        self.assertEqual([x["external_ref"] for x in body["items"]],
                         ["RJ-1", "RN-1", X3_REF, E2_REF, "RB-1", "RF-1"])
        # RJ-1: 1235 owed against a total limit of 1000: total_remaining and
        # headroom are 0, never negative (as on the account object); the
        # monthly_limit suspension of January was lifted at the rollover
        rj = by["RJ-1"]
        self.assertEqual((rj["status"], rj["suspension_reasons"], rj["monthly_usage"],
                          rj["monthly_limit"], rj["monthly_remaining"], rj["exposure"],
                          rj["total_limit"], rj["total_remaining"], rj["headroom"]),
                         ("suspended", ["total_limit"], "0", "1000", "1000", "1235", "1000",
                          "0", "0"))
        acc = self.get_account("RJ-1")
        self.assertEqual((acc["exposure"], acc["total_remaining"]), ("1235", "0"))
        # RN-1: account credit makes exposure negative (R4.2), headroom 105
        rn = by["RN-1"]
        self.assertEqual((rn["exposure"], rn["total_remaining"], rn["headroom"]),
                         ("-5", "105", "105"))
        # a terminated account is listed (every account), owing 5 + 3
        x3 = by[X3_REF]
        self.assertEqual((x3["status"], x3["exposure"], x3["name"]), ("terminated", "8",
                                                                      X3_NAME))
        self.assertEqual((by["RB-1"]["exposure"], by[E2_REF]["exposure"],
                          by["RF-1"]["exposure"]), ("10", "12", "0"))
        # per currency, never summed across currencies: EUR 8 + 12 - 5 + 0
        self.assertEqual([(t["currency"], t["accounts"], t["exposure"]) for t in body["totals"]],
                         [("BHD", 1, "10"), ("EUR", 4, "15"), ("JPY", 1, "1235")])
        for k, v in all_amounts(body):
            self.assertRegex(v, AMOUNT_RE, k)
        # the report agrees with each account object, field by field
        for item in body["items"]:
            a = self.ok(self.request("GET", "/v1/accounts/" + item["id"], token="read"))
            for k in ("status", "suspension_reasons", "monthly_usage", "monthly_limit",
                      "monthly_remaining", "exposure", "total_limit", "total_remaining"):
                self.assertEqual(item[k], a[k], (k, item, a))
        only = self.exposure("?status=terminated")
        self.assertEqual([x["external_ref"] for x in only["items"]], [X3_REF])

    def test_11_exposure_csv_equals_json(self):
        js = self.exposure()
        r = self.request("GET", "/v1/reports/exposure?format=csv", token="read")
        self.assertStatus(r, 200)
        self.assertEqual(r.header("content-type"), "text/csv; charset=utf-8")
        rows = list(csv.reader(io.StringIO(r.body.decode("utf-8"), newline="")))
        header = rows[0]
        self.assertEqual(len(rows) - 1, len(js["items"]))
        for item, row in zip(js["items"], rows[1:]):
            for k, v in zip(header, row):
                want = item[k]
                if k == "suspension_reasons":
                    want = ";".join(want)
                elif want is None:
                    want = ""
                elif k in ("external_ref", "name") and want[0] in "=+-@":
                    want = "'" + want
                self.assertEqual(v, want, (k, item))

    # ---- R5.7 invoices ----

    def html(self, ref):
        r = self.request("GET", f"/v1/invoices/{self.ids[('inv', ref)]}?format=html",
                         token="read")
        self.assertStatus(r, 200)
        self.assertEqual(r.header("content-type"), "text/html; charset=utf-8")
        return r.body.decode("utf-8")

    def html_totals(self, html):
        return dict(re.findall(r'<tr class="(total|paid|credited|balance)"><th>[^<]*</th>'
                               r'<td class="num">([^<]*)</td>', html))

    def test_20_invoice_json_exact_decimals(self):
        got = {}
        for ref in ("RJ-1", "RB-1", E2_REF):
            inv = self.ok(self.request("GET", "/v1/invoices/" + self.ids[("inv", ref)],
                                       token="read"))
            got[ref] = (inv["currency"], [(l["service"], l["destination"], l["amount"])
                                          for l in inv["lines"]],
                        inv["total"], inv["paid"], inv["credited"], inv["balance"],
                        inv["status"], inv["days_overdue"])
        self.assertEqual(got["RJ-1"], ("JPY", [("sms", "JP", "1000"), ("voice", "JP", "235")],
                                       "1235", "0", "0", "1235", "overdue", 4))
        self.assertEqual(got["RB-1"], ("BHD", [("sms", "BH", "12.346")], "12.346", "2.346",
                                       "0.000", "10.000", "overdue", 4))
        self.assertEqual(got[E2_REF], ("EUR", [("a&b<i>", "x'y", "2.00"),
                                               ("sms", SCRIPT_DEST, "10.01")],
                                       "12.01", "0.00", "0.01", "12.00", "overdue", 4))

    def test_21_html_escapes_customer_text_and_totals_equal_json(self):
        for ref in ("RJ-1", "RB-1", E2_REF, X3_REF):
            with self.subTest(ref=ref):
                inv = self.ok(self.request("GET", "/v1/invoices/" + self.ids[("inv", ref)],
                                           token="read"))
                html = self.html(ref)
                cur = inv["currency"]
                self.assertEqual(self.html_totals(html),
                                 {k: f"{cur} {inv[k]}" for k in ("total", "paid", "credited",
                                                                 "balance")})
                for l in inv["lines"]:
                    self.assertIn(f'<td class="num">{l["amount"]}</td></tr>', html)
                self.assertIn(f"Please pay {cur} {inv['balance']} by {inv['due_date']}.", html)
        html = self.html(E2_REF)
        # no customer-controlled text appears raw
        self.assertNotIn("<script", html.lower())
        self.assertNotIn("<b>", html)
        self.assertNotIn("<i>", html)
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", html)          # destination
        self.assertIn("&lt;script&gt;alert(&quot;n&quot;)&lt;/script&gt; &amp; Sons", html)
        self.assertIn("E,&quot;2&quot;", html)                                 # external_ref
        self.assertIn("a&amp;b&lt;i&gt;", html)                                # service
        self.assertIn("x&#39;y", html)                                         # destination
        self.assertIn("&lt;b&gt;goodwill&lt;/b&gt;", html)                     # credit note
        self.assertIn("Payment reference: <strong>" + self.invoices(E2_REF)[0]["number"],
                      html)

    def test_22_unknown_invoice(self):
        for ref in ("INV-2099-000001", str(uuid.uuid4()), "%3Cscript%3E", "nope"):
            for q in ("", "?format=html"):
                with self.subTest(ref=ref, q=q):
                    r = self.request("GET", f"/v1/invoices/{ref}{q}", token="read")
                    self.assertError(r, 404, "not_found")
                    self.assertIn("application/json", r.header("content-type", ""))
                    self.assertNotIn("<script", r.text)
        r = self.request("GET", "/v1/invoices/" + str(uuid.uuid4()), token="read",
                         headers={"Accept": "text/html"})
        self.assertError(r, 404, "not_found")

    # was a defect: GET /v1/invoices/{id} read the customer block (name,
    # jurisdiction) from the account as it is now, so renaming the account
    # (PATCH) changed every issued invoice, JSON and printed page (R5.5: an
    # issued invoice is never changed). Invoices now keep both as of their
    # issue (sql/0027_invoice_customer.sql).
    def test_23_issued_invoice_keeps_the_customer_it_was_issued_to(self):
        path = "/v1/invoices/" + self.ids[("inv", "RF-1")]
        before = self.ok(self.request("GET", path, token="read"))
        html_before = self.request("GET", path + "?format=html", token="read").text
        self.assertEqual(before["customer"], {"name": "Foxtrot", "external_ref": "RF-1",
                                              "jurisdiction": "CH"})
        self.ok(self.request("PATCH", "/v1/accounts/ext:RF-1",
                             {"name": "Foxtrot Renamed GmbH", "jurisdiction": "DE"},
                             token="finance"))
        after = self.ok(self.request("GET", path, token="read"))
        html_after = self.request("GET", path + "?format=html", token="read").text
        self.assertEqual(after["customer"], before["customer"])
        self.assertEqual(html_after, html_before)

    # ---- R8.1, R8.2 outbox ----

    def test_30_bad_cursor_names_the_field(self):
        for q in ("?after=abc", "?after=-1", "?after=1.5", "?after=99999999999999999999999",
                  "?after=99999999"):
            with self.subTest(q=q):
                r = self.request("GET", "/v1/notifications" + q, token="read")
                self.assertError(r, 400, "validation_failed")
                self.assertEqual(r.json["error"].get("field"), "after", r.text)

    # was a defect: the message said "cursor: malformed" while the parameter
    # (and the error's field) is "after"
    def test_31_bad_cursor_message_names_the_field(self):
        # the message names the parameter the client sent, like every other
        # validation message ("<field>: ...")
        r = self.request("GET", "/v1/notifications?after=abc", token="read")
        self.assertError(r, 400, "validation_failed")
        self.assertTrue(r.json["error"]["message"].startswith("after:"), r.text)

    # was a defect: an unknown kind filter was accepted and answered an
    # empty list for ever (a typo such as "invoice.isued" looks like "nothing
    # new"), where every other list filter (invoices ?status=, exposure
    # ?status=) answers 400 naming the field
    def test_32_unknown_kind_filter_is_refused(self):
        ok = self.request("GET", "/v1/notifications?kind=invoice.issued", token="read")
        self.assertStatus(ok, 200)
        self.assertTrue(ok.json["items"], ok.text)
        r = self.request("GET", "/v1/notifications?kind=invoice.isued", token="read")
        self.assertError(r, 400, "validation_failed")
        self.assertEqual(r.json["error"].get("field"), "kind", r.text)

    def test_90_outbox_paged_across_two_daemons_while_both_write(self):
        """R8.2: a reader that pages with limit=1, alternating between two
        daemons, while both daemons write new notifications (two writer
        threads booking payments, one on each daemon, and suspensions made
        between the reader's pages), sees every notification exactly once,
        in the outbox order (txid, id)."""
        b = harness.Daemon(self.cluster.conninfo(), config=self.CONFIG, test_clock=T_LATE)
        self.addCleanup(b.destroy)
        b.start()
        b.wait_ready(timeout=15)
        daemons = [self.daemon, b]
        self.settle_feeds()
        n_pay = 25
        failures = []

        def writer(d):
            conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
            try:
                for _ in range(n_pay):
                    body = json.dumps({"id": uid(), "account": "ext:RN-1", "amount": "0.01",
                                       "received_at": T_LATE, "reference": "w"})
                    conn.request("POST", "/v1/payments", body=body,
                                 headers={"Content-Type": "application/json",
                                          "Authorization": "Bearer " + d.secret("finance")})
                    resp = conn.getresponse()
                    text = resp.read()
                    if resp.status != 201:
                        failures.append((resp.status, text))
            finally:
                conn.close()

        threads = [threading.Thread(target=writer, args=(d,)) for d in daemons]
        for t in threads:
            t.start()
            self.addCleanup(t.join, 60)

        def page(d, after):
            q = "?limit=1" + ("" if after is None else f"&after={after}")
            r = d.request("GET", "/v1/notifications" + q, token="read")
            self.assertStatus(r, 200)
            return r.json

        seen, after, k, writes = [], None, 0, 0
        while True:
            # a write on one daemon, then a page read from the other
            if writes < 12:
                w = daemons[(k + 1) % 2]
                path = "suspend" if writes % 2 == 0 else "unsuspend"
                r = w.request("POST", f"/v1/accounts/ext:RN-1/{path}", {"note": f"n{writes}"},
                              token="finance")
                self.assertStatus(r, 200)
                writes += 1
            p = page(daemons[k % 2], after)
            seen += p["items"]
            if p["items"]:
                after = p["items"][-1]["id"]
            k += 1
            if (p["next_cursor"] is None and writes >= 12
                    and not any(t.is_alive() for t in threads)):
                self.settle_feeds()
                p = page(daemons[k % 2], after)
                if not p["items"]:
                    break
                seen += p["items"]
                after = p["items"][-1]["id"]
            self.assertLess(k, 5000, "paging does not end")
        self.assertEqual(failures, [])
        ids = [x["id"] for x in seen]
        self.assertEqual(len(ids), len(set(ids)), "a notification was repeated")
        db = self.psql("SELECT id FROM notifications ORDER BY txid, id").split()
        self.assertEqual(ids, db, "a notification was skipped or reordered")
        rn = [x["kind"] for x in seen if x["account"] == self.ids["RN-1"]]
        self.assertEqual((rn.count("account.suspended"), rn.count("account.reactivated"),
                          rn.count("payment.received")), (6, 6, 2 * n_pay + 1), rn)

if __name__ == "__main__":
    harness.main()
