#!/usr/bin/env python3
"""Exposure report and suspension history (SPEC R7.2, R7.3; API.md "Reports")
as JSON and CSV, against the real daemon and a private PostgreSQL.

Billing time zone UTC; the test clock starts at 2026-01-15T10:00:00Z. Every
account of the module shows in the report, so all of them are created in
test_00; tests run in name order and the suspension test (which suspends an
account and moves the clock) runs last."""

import csv
import io
import uuid

import harness

T0 = "2026-01-15T10:00:00Z"
OCCURRED = "2026-01-15T09:00:00Z"

TOKENS = dict(harness.DEFAULT_TOKENS)
TOKENS["ingestonly"] = harness.Token("test-ingest-only-secret", "ingest")

COMMA_NAME = 'Acme, "Widgets" Ltd'
NEWLINE_NAME = "Two\r\nLines"

# ref: (name, currency, monthly_limit, total_limit, usage)
ACCOUNTS = {
    "R-A": ("Alpha", "EUR", "100", "500", ["30"]),
    "R-B": ("Bravo", "EUR", None, "50", ["45", "0.5"]),
    "R-C": ("Charlie", "EUR", "20", None, ["20"]),            # suspended: monthly_limit
    "R-D": ("Delta", "EUR", None, None, ["12.25"]),            # no limits
    "R-E": (COMMA_NAME, "USD", "10", "8", ["1"]),
    "R-F": ("Two Lines", "USD", None, None, []),             # renamed to NEWLINE_NAME
    "R-G": ("Golf", "EUR", "50", None, ["10"]),                # counter left on December
    "R-H": ("Hotel", "EUR", None, "10", ["10.000001"]),        # suspended: total_limit
}

ORDER = ["R-C", "R-H", "R-B", "R-E", "R-G", "R-A", "R-D", "R-F"]

# ref: (status, reasons, monthly_usage, monthly_remaining, exposure, total_remaining, headroom)
EXPECTED = {
    "R-A": ("active", [], "30", "70", "30", "470", "70"),
    "R-B": ("active", [], "45.5", None, "45.5", "4.5", "4.5"),
    "R-C": ("suspended", ["monthly_limit"], "20", "0", "20", None, "0"),
    "R-D": ("active", [], "12.25", None, "12.25", None, None),
    "R-E": ("active", [], "1", "9", "1", "7", "7"),
    "R-F": ("active", [], "0", None, "0", None, None),
    "R-G": ("active", [], "0", "50", "10", None, "50"),
    "R-H": ("suspended", ["total_limit"], "10.000001", None, "10.000001", "0", "0"),
}

CSV_HEADER = ("external_ref,id,name,currency,status,suspension_reasons,monthly_usage,"
              "monthly_limit,monthly_remaining,exposure,total_limit,total_remaining,headroom")


def uid() -> str:
    return str(uuid.uuid4())


class Reports(harness.DaemonTestCase):
    TEST_CLOCK = T0
    TOKENS = TOKENS

    ids: dict = {}

    def report(self, query="", token="read", headers=None):
        r = self.request("GET", "/v1/reports/exposure" + query, token=token, headers=headers)
        self.assertStatus(r, 200)
        return r

    def expected_item(self, ref):
        name, currency, ml, tl, _ = ACCOUNTS[ref]
        if ref == "R-F":
            name = NEWLINE_NAME
        status, reasons, mu, mrem, exp, trem, head = EXPECTED[ref]
        return {"external_ref": ref, "id": self.ids[ref], "name": name, "currency": currency,
                "status": status, "suspension_reasons": reasons, "monthly_usage": mu,
                "monthly_limit": ml, "monthly_remaining": mrem, "exposure": exp,
                "total_limit": tl, "total_remaining": trem, "headroom": head}

    def test_00_setup(self):
        for ref, (name, currency, ml, tl, usage) in ACCOUNTS.items():
            body = {"external_ref": ref, "name": name, "currency": currency,
                    "jurisdiction": "DE" if currency == "EUR" else "US"}
            if ml is not None:
                body["monthly_limit"] = ml
            if tl is not None:
                body["total_limit"] = tl
            r = self.request("POST", "/v1/accounts", body)
            self.assertStatus(r, 201)
            Reports.ids[ref] = r.json["id"]
            if usage:
                events = [{"id": uid(), "account": "ext:" + ref, "amount": a,
                           "occurred_at": OCCURRED, "service": "sms"} for a in usage]
                r = self.request("POST", "/v1/events", events, token="platform")
                self.assertStatus(r, 200)
                self.assertEqual(r.json["accepted"], len(usage), r.json)
        # R-G's counter is still on December (its rollover is pending): its
        # monthly usage counts as 0 for January.
        self.psql("UPDATE accounts SET usage_month = '2025-12-01' WHERE external_ref = 'R-G'")
        # The API refuses control characters in names; older data may hold
        # them, and CSV must quote a line break.
        self.psql("UPDATE accounts SET name = E'Two\\r\\nLines' WHERE external_ref = 'R-F'")

    def test_01_exposure_json(self):
        r = self.report()
        self.assertTrue(r.header("Content-Type", "").startswith("application/json"), r.headers)
        body = r.json
        self.assertEqual(set(body), {"as_of", "items", "totals"}, body)
        self.assertEqual(body["as_of"], "2026-01-15T10:00:00Z")
        self.assertEqual([x["external_ref"] for x in body["items"]], ORDER, body)
        for item in body["items"]:
            self.assertEqual(item, self.expected_item(item["external_ref"]))
        self.assertEqual(body["totals"], [
            {"currency": "EUR", "accounts": 6, "exposure": "127.750001",
             "monthly_usage": "117.750001"},
            {"currency": "USD", "accounts": 2, "exposure": "1", "monthly_usage": "1"},
        ])
        # ?format=json is the same report
        self.assertEqual(self.report("?format=json").json, body)

    def test_02_exposure_csv(self):
        for query, headers in (("?format=csv", None), ("", {"Accept": "text/csv"}),
                               ("", {"Accept": "application/json;q=0.5, text/csv"})):
            with self.subTest(query=query, headers=headers):
                r = self.report(query, headers=headers)
                self.assertTrue(r.header("Content-Type", "").startswith("text/csv"), r.headers)
                text = r.body.decode("utf-8")
                lines = text.split("\r\n")
                self.assertEqual(lines[0], CSV_HEADER)
                self.assertTrue(text.endswith("\r\n"))
                # RFC 4180 quoting: embedded quotes doubled, the field quoted
                self.assertIn(',"Acme, ""Widgets"" Ltd",USD,', text)
                self.assertIn(',"Two\r\nLines",USD,', text)
                rows = list(csv.reader(io.StringIO(text, newline="")))
                self.assertEqual(",".join(rows[0]), CSV_HEADER)
                self.assertEqual([x[0] for x in rows[1:]], ORDER)
                want = []
                for ref in ORDER:
                    e = self.expected_item(ref)
                    want.append([ref, e["id"], e["name"], e["currency"], e["status"],
                                 ";".join(e["suspension_reasons"])]
                                + ["" if e[k] is None else e[k] for k in (
                                    "monthly_usage", "monthly_limit", "monthly_remaining",
                                    "exposure", "total_limit", "total_remaining",
                                    "headroom")])
                self.assertEqual(rows[1:], want)
        # exact lines for two rows
        text = self.report("?format=csv").body.decode("utf-8")
        self.assertIn("\r\nR-H,%s,Hotel,EUR,suspended,total_limit,10.000001,,,10.000001,10,0,0\r\n"
                      % self.ids["R-H"], text)
        self.assertIn("\r\nR-D,%s,Delta,EUR,active,,12.25,,,12.25,,,\r\n" % self.ids["R-D"],
                      text)

    def test_03_filters(self):
        body = self.report("?status=suspended").json
        self.assertEqual([x["external_ref"] for x in body["items"]], ["R-C", "R-H"])
        self.assertEqual(body["totals"], [{"currency": "EUR", "accounts": 2,
                                           "exposure": "30.000001",
                                           "monthly_usage": "30.000001"}])
        body = self.report("?currency=USD").json
        self.assertEqual([x["external_ref"] for x in body["items"]], ["R-E", "R-F"])
        self.assertEqual(body["totals"], [{"currency": "USD", "accounts": 2, "exposure": "1",
                                           "monthly_usage": "1"}])
        body = self.report("?status=active&currency=EUR").json
        self.assertEqual([x["external_ref"] for x in body["items"]],
                         ["R-B", "R-G", "R-A", "R-D"])
        body = self.report("?status=terminated").json
        self.assertEqual((body["items"], body["totals"]), ([], []))
        rows = list(csv.reader(io.StringIO(
            self.report("?status=suspended&format=csv").body.decode(), newline="")))
        self.assertEqual([x[0] for x in rows], ["external_ref", "R-C", "R-H"])
        for q, field in (("?status=closed", "status"), ("?currency=EURO", "currency"),
                         ("?currency=eur", "currency"), ("?format=xml", "format")):
            with self.subTest(q=q):
                r = self.request("GET", "/v1/reports/exposure" + q, token="read")
                self.assertError(r, 400, "validation_failed")
                self.assertEqual(r.json["error"]["field"], field)

    def test_04_scopes(self):
        for path in ("/v1/reports/exposure", "/v1/reports/suspensions",
                     "/v1/reports/exposure?format=csv"):
            with self.subTest(path=path):
                for tok in ("read", "finance", "platform", "admin"):
                    self.assertStatus(self.request("GET", path, token=tok), 200)
                self.assertError(self.request("GET", path, token="ingestonly"), 403, "forbidden")
                self.assertError(self.request("GET", path, token=None), 401, "unauthorized")

    def suspensions(self, query="", token="read"):
        r = self.request("GET", "/v1/reports/suspensions" + query, token=token)
        self.assertStatus(r, 200)
        return r

    def test_09_suspensions(self):
        # runs last: suspends R-D and moves the clock
        self.assertStatus(self.request("PUT", "/v1/test/clock", {"now": "2026-01-15T11:00:00Z"}),
                          200)
        r = self.request("POST", "/v1/accounts/ext:R-D/suspend", {"note": 'late, "again"'},
                         token="finance")
        self.assertStatus(r, 200)
        self.assertStatus(self.request("PUT", "/v1/test/clock", {"now": "2026-01-15T12:30:00Z"}),
                          200)
        r = self.request("POST", "/v1/accounts/ext:R-D/unsuspend", {"note": "paid"},
                         token="finance")
        self.assertStatus(r, 200)

        def row(at, ref, before, after, rb, ra, cause, actor, note):
            return {"at": at, "account": self.ids[ref], "external_ref": ref,
                    "status_before": before, "status_after": after, "reasons_before": rb,
                    "reasons_after": ra, "cause": cause, "actor": actor, "note": note}

        unsusp = row("2026-01-15T12:30:00Z", "R-D", "suspended", "active", ["manual"], [],
                     "manual", "finance", "paid")
        susp = row("2026-01-15T11:00:00Z", "R-D", "active", "suspended", [], ["manual"],
                   "manual", "finance", 'late, "again"')
        # both usage suspensions happened at T0; the later one (R-H) first
        usage_h = row(T0, "R-H", "active", "suspended", [], ["total_limit"], "usage", "system",
                      None)
        usage_c = row(T0, "R-C", "active", "suspended", [], ["monthly_limit"], "usage",
                      "system", None)
        everything = [unsusp, susp, usage_h, usage_c]

        body = self.suspensions().json
        self.assertEqual(body, {"from": None, "to": None, "items": everything})
        body = self.suspensions("?from=2026-01-15&to=2026-01-15").json
        self.assertEqual(body, {"from": "2026-01-15", "to": "2026-01-15", "items": everything})
        self.assertEqual(self.suspensions("?from=2026-01-16").json["items"], [])
        self.assertEqual(self.suspensions("?to=2026-01-14").json["items"], [])
        self.assertEqual(self.suspensions("?from=2026-01-01&to=2026-01-31").json["items"],
                         everything)

        r = self.suspensions("?format=csv&from=2026-01-15")
        self.assertTrue(r.header("Content-Type", "").startswith("text/csv"), r.headers)
        text = r.body.decode("utf-8")
        lines = text.split("\r\n")
        self.assertEqual(lines[0], "at,account,external_ref,status_before,status_after,"
                                   "reasons_before,reasons_after,cause,actor,note")
        self.assertEqual(lines[1], "2026-01-15T12:30:00Z,%s,R-D,suspended,active,manual,,"
                                   "manual,finance,paid" % self.ids["R-D"])
        self.assertEqual(lines[2], '2026-01-15T11:00:00Z,%s,R-D,active,suspended,,manual,'
                                   'manual,finance,"late, ""again"""' % self.ids["R-D"])
        self.assertEqual(lines[3], "2026-01-15T10:00:00Z,%s,R-H,active,suspended,,total_limit,"
                                   "usage,system," % self.ids["R-H"])
        self.assertEqual(len(lines), 6)  # header, 4 rows, "" after the last CRLF
        self.assertEqual(lines[5], "")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        self.assertEqual(rows[2][9], 'late, "again"')

        for q, field in (("?from=2026-1-15", "from"), ("?to=yesterday", "to"),
                         ("?from=2026-02-30", "from"),
                         ("?from=2026-01-16&to=2026-01-15", "from"),
                         ("?format=pdf", "format")):
            with self.subTest(q=q):
                r = self.request("GET", "/v1/reports/suspensions" + q, token="read")
                self.assertError(r, 400, "validation_failed")
                self.assertEqual(r.json["error"]["field"], field)

        # the exposure report follows: R-D is active again, as_of is the new now
        body = self.report().json
        self.assertEqual(body["as_of"], "2026-01-15T12:30:00Z")
        self.assertEqual([x["external_ref"] for x in body["items"]], ORDER)
        d = [x for x in body["items"] if x["external_ref"] == "R-D"][0]
        self.assertEqual((d["status"], d["suspension_reasons"]), ("active", []))

    def test_10_formula_cells(self):
        # CSV injection: free text that a spreadsheet would run as a formula
        # (= + - @ first) gets a leading apostrophe in CSV; JSON and amounts
        # (a negative amount starts with "-") are unchanged
        name = '=HYPERLINK("http://x.example","pay")'
        self.assertStatus(self.request("PATCH", "/v1/accounts/ext:R-D", {"name": name},
                                       token="finance"), 200)
        self.assertStatus(self.request("POST", "/v1/accounts/ext:R-D/suspend",
                                       {"note": "@SUM(1)"}, token="finance"), 200)
        d = [x for x in self.report().json["items"] if x["external_ref"] == "R-D"][0]
        self.assertEqual(d["name"], name)
        text = self.report("?format=csv").body.decode("utf-8")
        self.assertIn('\r\nR-D,%s,"\'=HYPERLINK(""http://x.example"",""pay"")",EUR,suspended,'
                      'manual,12.25,,,12.25,,,\r\n' % self.ids["R-D"], text)
        rows = list(csv.reader(io.StringIO(self.suspensions("?format=csv").body.decode(),
                                           newline="")))
        self.assertEqual(rows[1][9], "'@SUM(1)")


if __name__ == "__main__":
    harness.main()
