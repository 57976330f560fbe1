#!/usr/bin/env python3
"""Invoicing end to end against the real daemon and a private PostgreSQL
(SPEC R1.3, R1.5, R5.1-R5.5, R5.7; API.md "Invoices and credit notes", "Jobs").

Billing time zone UTC (the class TimeZone starts its own cluster and daemon
with America/New_York). Timeline of the main daemon, in test order (tests
depend on it, keep the numbering):

  2026-01-10T10:00Z  start; accounts, January usage, on-account payments
  2026-02-01T01:00Z  (before the 02:00 scheduled run) three concurrent
                     POST /v1/jobs/invoicing for 2026-01, two daemons
  2026-02-03T10:00Z  late January usage, February usage
  2026-03-01T03:00Z  the scheduler has invoiced February on the way

Expected amounts are written out literally and also recomputed with
Decimal (ROUND_HALF_UP = half away from zero) from the events sent."""

import http.client
import json
import threading
import time
import unittest
import urllib.parse
import uuid
from decimal import ROUND_HALF_UP, Decimal

import harness

T_START = "2026-01-10T10:00:00Z"
T_RUN = "2026-02-01T01:00:00Z"
T_LATE = "2026-02-03T10:00:00Z"
T_MARCH = "2026-03-01T03:00:00Z"
JAN = "2026-01-05T12:00:00Z"

MANY = 20  # small accounts of the main timeline
MANY_CHUNKS = 1003  # class Chunks: more accounts than one invoicing chunk (1000)
EXP = {"EUR": 2, "JPY": 0, "KWD": 3}


def uid():
    return str(uuid.uuid4())


def ev(ref, amount, service="sms", destination=None, quantity=None, occurred_at=JAN):
    e = {"id": uid(), "account": "ext:" + ref, "amount": amount, "occurred_at": occurred_at,
         "service": service}
    if destination is not None:
        e["destination"] = destination
    if quantity is not None:
        e["quantity"] = quantity
    return e


def many_amount(i):
    """Usage of the i-th small account: 1.005 (-> 1.01), then 3 decimals."""
    return "1.005" if i == 0 else "%d.%03d" % (i % 5 + 1, (i * 37) % 1000)


def post_events(daemon, events):
    """POST /v1/events, retrying while the daemon answers 503 (Retry-After)."""
    for _ in range(200):
        r = daemon.request("POST", "/v1/events", events, token="platform")
        if r.status != 503:
            return r
        time.sleep(0.05)
    return r


def concurrent_runs(ports, period):
    """POST /v1/jobs/invoicing?wait=true for period to each port at once
    (one thread and connection each); returns [(status, body)]."""
    barrier = threading.Barrier(len(ports))
    results = [None] * len(ports)

    def run(i, port):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            barrier.wait()
            conn.request("POST", "/v1/jobs/invoicing?wait=true",
                         body=json.dumps({"period": period}),
                         headers={"Authorization": "Bearer test-ops-secret",
                                  "Content-Type": "application/json"})
            resp = conn.getresponse()
            results[i] = (resp.status, json.loads(resp.read()))
        finally:
            conn.close()

    threads = [threading.Thread(target=run, args=(i, port)) for i, port in enumerate(ports)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return results


def rnd(v, currency):
    q = Decimal(1).scaleb(-EXP[currency])
    return v.quantize(q, rounding=ROUND_HALF_UP)


def fmt(v, currency):
    return str(rnd(Decimal(v), currency))


EUR_NAME = "M\u00fcller & S\u00f6hne <GmbH> \"Quote's\""

# January usage of I-EUR: (service, destination, amount, quantity)
EUR_EVENTS = ([("sms", "DE", "0.0045", 1)] * 4 + [("sms", "FR", "0.0045", 1)] * 3
              + [("sms", "GB", "0.005", 1)]
              + [("voice", "DE", "0.36", 3), ("voice", "DE", "0.25", 1)]
              + [("voice", "FR", "0.36", 3), ("voice", "FR", "0.24", 2)]
              + [("chat", None, "1.5", 1)])
# the lines it must give, in order: (service, destination, quantity, unit_price, amount)
EUR_LINES = [("chat", None, 1, "1.5", "1.50"),
             ("sms", "DE", 4, "0.0045", "0.02"),   # 0.018
             ("sms", "FR", 3, "0.0045", "0.01"),   # 0.0135
             ("sms", "GB", 1, "0.005", "0.01"),    # 0.005: half away from zero
             ("voice", "DE", 4, None, "0.61"),     # 0.12 and 0.25 a unit: not uniform
             ("voice", "FR", 5, "0.12", "0.60")]
JPY_EVENTS = [("chat", None, "0.5", 1), ("sms", "JP", "2.5", 1), ("voice", "JP", "1.4", 1)]
JPY_LINES = [("chat", None, 1, "0.5", "1"), ("sms", "JP", 1, "2.5", "3"),
             ("voice", "JP", 1, "1.4", "1")]
KWD_EVENTS = [("chat", None, "0.00001", 3), ("sms", "KW", "0.0015", 1),
              ("voice", "KW", "1.2345", 1)]
# chat: 0.00001 for 3 units has no exact unit price in micro-units: none shown
KWD_LINES = [("chat", None, 3, None, "0.000"), ("sms", "KW", 1, "0.0015", "0.002"),
             ("voice", "KW", 1, "1.2345", "1.235")]


def expected_lines(events, currency):
    """Per (service, destination): quantity, uniform unit price (when exact
    in micro-units), rounded sum."""
    groups = {}
    for s, d, a, q in events:
        g = groups.setdefault((s, d or ""), [0, set(), Decimal(0)])
        g[0] += q
        g[1].add(Decimal(a) / q)
        g[2] += Decimal(a)
    return [(s, d or None, g[0],
             format(min(g[1]).normalize(), "f")
             if len(g[1]) == 1 and (min(g[1]) * 10**6) % 1 == 0 else None,
             fmt(g[2], currency)) for (s, d), g in sorted(groups.items())]


class Invoicing(harness.DaemonTestCase):
    TEST_CLOCK = T_START

    # -- helpers

    def account(self, ref, currency="EUR", name=None, **extra):
        body = {"external_ref": ref, "name": name or "Customer " + ref, "currency": currency,
                "jurisdiction": "DE"}
        body.update(extra)
        r = self.request("POST", "/v1/accounts", body, token="finance")
        self.assertStatus(r, 201)
        return r.json

    def get_account(self, ref):
        r = self.request("GET", "/v1/accounts/ext:" + urllib.parse.quote(ref, safe=""),
                         token="read")
        self.assertStatus(r, 200)
        return r.json

    def post_events(self, events):
        for i in range(0, len(events), 5000):
            chunk = events[i:i + 5000]
            r = post_events(self.daemon, chunk)
            self.assertStatus(r, 200)
            self.assertEqual(r.json["accepted"], len(chunk), r.text[:2000])

    def move_clock(self, now):
        r = self.request("PUT", "/v1/test/clock", {"now": now})
        self.assertStatus(r, 200)

    def invoices(self, query="", token="read"):
        items, cursor = [], None
        while True:
            q = query + ("&" if query else "") + "limit=1000"
            if cursor:
                q += "&cursor=" + cursor
            r = self.request("GET", "/v1/invoices?" + q, token=token)
            self.assertStatus(r, 200)
            items += r.json["items"]
            cursor = r.json["next_cursor"]
            if cursor is None:
                return items

    def invoice_of(self, ref, period):
        items = self.invoices(f"account=ext:{ref}&period={period}")
        self.assertEqual(len(items), 1, items)
        return items[0]

    def get_invoice(self, key, **kw):
        r = self.request("GET", "/v1/invoices/" + urllib.parse.quote(key, safe=""), **kw)
        self.assertStatus(r, 200)
        return r

    def credit(self, key, amount, reason="goodwill", token="finance"):
        return self.request("POST", "/v1/invoices/" + urllib.parse.quote(key, safe="")
                            + "/credit-notes", {"amount": amount, "reason": reason},
                            token=token)

    def run_job(self, period, token="ops"):
        r = self.request("POST", "/v1/jobs/invoicing?wait=true", {"period": period},
                         token=token)
        self.assertStatus(r, 202)
        self.assertEqual(r.json["status"], "succeeded", r.text)
        return r.json

    def assertLines(self, inv, want, kind="usage", period=None):
        got = [l for l in inv["lines"] if l["kind"] == kind]
        self.assertEqual(len(got), len(want), inv["lines"])
        for l, (s, d, q, u, a) in zip(got, want):
            self.assertEqual(l.get("service"), s, l)
            self.assertEqual(l.get("destination"), d, l)
            self.assertEqual(l.get("quantity"), q, l)
            self.assertEqual(l.get("unit_price"), u, l)
            self.assertEqual(l["amount"], a, l)
            self.assertEqual(l.get("period"), period, l)
            self.assertIsInstance(l["description"], str)
            self.assertIn(s, l["description"])

    def assertFieldError(self, r, status, code, field):
        self.assertError(r, status, code)
        self.assertEqual(r.json["error"].get("field"), field, r.text)

    # -- January: accounts and usage

    def test_00_setup(self):
        self.account("I-EUR", name=EUR_NAME)
        self.account("I-JPY", "JPY")
        self.account("I-KWD", "KWD")
        self.account("I-EMPTY")
        self.account("I-CRED")
        self.account("I-CRED2")
        self.account("I-LIM", total_limit="10")
        self.account("I-LATE")
        evs = [ev("I-EUR", a, s, d, q) for s, d, a, q in EUR_EVENTS]
        evs += [ev("I-JPY", a, s, d, q) for s, d, a, q in JPY_EVENTS]
        evs += [ev("I-KWD", a, s, d, q) for s, d, a, q in KWD_EVENTS]
        evs += [ev("I-CRED", "12.34"), ev("I-CRED2", "3"), ev("I-LIM", "10"),
                ev("I-LATE", "1")]
        for i in range(MANY):
            ref = f"I-G{i:04d}"
            self.account(ref)
            evs.append(ev(ref, many_amount(i)))
        self.post_events(evs)
        # account credit before the invoice (R5.3): applied at issue
        for ref, amount in (("I-CRED", "5"), ("I-CRED2", "100")):
            r = self.request("POST", "/v1/payments",
                             {"id": uid(), "account": "ext:" + ref, "amount": amount,
                              "received_at": "2026-01-09T12:00:00Z", "reference": "SEPA"},
                             token="finance")
            self.assertStatus(r, 201)
        a = self.get_account("I-LIM")
        self.assertEqual((a["status"], a["suspension_reasons"]), ("suspended", ["total_limit"]))
        # nothing is invoiced before the month is over
        self.assertEqual(self.invoices(), [])
        r = self.request("POST", "/v1/jobs/invoicing?wait=true", {"period": "2026-01"},
                         token="ops")
        self.assertFieldError(r, 400, "validation_failed", "period")

    # -- R5.1: two daemons, three concurrent runs, each account billed once

    def test_10_concurrent_runs(self):
        self.move_clock(T_RUN)
        d2 = harness.Daemon(self.cluster.conninfo(), test_clock=T_RUN)
        try:
            d2.start()
            d2.wait_ready()
            results = concurrent_runs((self.daemon.port, d2.port, self.daemon.port), "2026-01")
            self.assertEqual(d2.stop(), 0)
        finally:
            d2.destroy()
        billed = MANY + 7  # every account but I-EMPTY
        for status, body in results:
            self.assertEqual(status, 202, body)
            self.assertEqual(body["status"], "succeeded", body)
            self.assertEqual(body["result"]["period"], "2026-01", body)
        self.assertEqual(sum(b["result"]["invoices"] for _, b in results), billed, results)
        invs = self.invoices()
        self.assertEqual(len(invs), billed)
        self.assertEqual(len({i["account"] for i in invs}), billed)

    def test_11_numbers_gap_free(self):
        invs = self.invoices("period=2026-01")
        numbers = sorted(i["number"] for i in invs)
        self.assertEqual(numbers, [f"INV-2026-{n:06d}" for n in range(1, len(invs) + 1)])
        self.assertEqual(self.psql("SELECT last FROM number_series WHERE series = 'INV-2026'")
                         .strip(), str(len(invs)))

    def test_12_rerun_issues_nothing(self):
        before = len(self.invoices())
        job = self.run_job("2026-01")
        self.assertEqual(job["result"]["invoices"], 0)
        self.assertEqual(len(self.invoices()), before)

    def test_13_dates(self):
        inv = self.invoice_of("I-EUR", "2026-01")
        self.assertEqual(inv["period"], "2026-01")
        self.assertEqual(inv["issue_date"], "2026-02-01")
        self.assertEqual(inv["due_date"], "2026-02-16")
        self.assertEqual(inv["status"], "open")
        self.assertEqual(inv["days_overdue"], 0)
        self.assertIsInstance(inv["accrued_interest"], str)

    # -- R1.3, R5.3: lines and rounding

    def test_20_eur_lines(self):
        inv = self.invoice_of("I-EUR", "2026-01")
        self.assertEqual(inv["currency"], "EUR")
        self.assertEqual(inv["customer"]["name"], EUR_NAME)
        self.assertLines(inv, EUR_LINES)
        self.assertNotIn("destination", inv["lines"][0])  # chat: no destination
        self.assertEqual(inv["total"], "2.75")
        self.assertEqual(inv["paid"], "0.00")
        self.assertEqual(inv["credited"], "0.00")
        self.assertEqual(inv["balance"], "2.75")
        self.assertEqual(inv["credit_notes"], [])
        # the same with Decimal from the events
        want = expected_lines(EUR_EVENTS, "EUR")
        self.assertEqual(want, EUR_LINES)
        self.assertEqual(expected_lines(JPY_EVENTS, "JPY"), JPY_LINES)
        self.assertEqual(expected_lines(KWD_EVENTS, "KWD"), KWD_LINES)
        self.assertEqual(inv["total"],
                         str(sum(Decimal(w[4]) for w in want)))

    def test_21_jpy_lines(self):
        inv = self.invoice_of("I-JPY", "2026-01")
        self.assertLines(inv, JPY_LINES)
        self.assertEqual((inv["total"], inv["balance"], inv["paid"]), ("5", "5", "0"))

    def test_22_kwd_lines(self):
        inv = self.invoice_of("I-KWD", "2026-01")
        self.assertLines(inv, KWD_LINES)
        self.assertEqual((inv["total"], inv["balance"]), ("1.237", "1.237"))

    def test_23_get_by_id_and_number(self):
        inv = self.invoice_of("I-KWD", "2026-01")
        by_id = self.get_invoice(inv["id"], token="read").json
        by_no = self.get_invoice(inv["number"], token="read").json
        self.assertEqual(by_id, inv)
        self.assertEqual(by_no, inv)

    def test_24_nothing_to_bill(self):
        self.assertEqual(self.invoices("account=ext:I-EMPTY"), [])

    def test_25_credit_applied_at_issue(self):
        inv = self.invoice_of("I-CRED", "2026-01")
        self.assertEqual((inv["total"], inv["paid"], inv["balance"], inv["status"]),
                         ("12.34", "5.00", "7.34", "open"))
        a = self.get_account("I-CRED")
        self.assertEqual((a["credit_balance"], a["open_balance"]), ("0", "7.34"))
        inv = self.invoice_of("I-CRED2", "2026-01")
        self.assertEqual((inv["total"], inv["paid"], inv["balance"], inv["status"]),
                         ("3.00", "3.00", "0.00", "paid"))
        a = self.get_account("I-CRED2")
        self.assertEqual((a["credit_balance"], a["open_balance"], a["unbilled_usage"]),
                         ("97", "0", "0"))

    def test_26_many_accounts_exact(self):
        invs = {i["number"]: i for i in self.invoices("period=2026-01")}
        n = 0
        for inv in invs.values():
            if inv["customer"]["external_ref"].startswith("I-G"):
                i = int(inv["customer"]["external_ref"][3:])
                self.assertEqual(inv["total"], fmt(many_amount(i), "EUR"), inv)
                self.assertEqual(len(inv["lines"]), 1)
                n += 1
        self.assertEqual(n, MANY)
        # 1.005 -> 1.01 (half away from zero), never banker's rounding
        self.assertEqual(self.invoice_of("I-G0000", "2026-01")["total"], "1.01")

    # -- R5.7: lists

    def test_30_list_filters(self):
        everything = self.invoices()
        self.assertEqual(len(self.invoices("period=2026-01")), len(everything))
        self.assertEqual(self.invoices("period=2025-12"), [])
        paid = self.invoices("status=paid")
        self.assertEqual([i["customer"]["external_ref"] for i in paid], ["I-CRED2"])
        self.assertEqual(len(self.invoices("status=open")), len(everything) - 1)
        self.assertEqual(self.invoices("status=overdue"), [])
        acc = self.get_account("I-JPY")
        self.assertEqual([i["currency"] for i in self.invoices("account=" + acc["id"])],
                         ["JPY"])
        self.assertEqual(self.invoices("account=ext:NOBODY"), [])
        # paging: small pages give the same invoices, in order
        r = self.request("GET", "/v1/invoices?limit=7", token="read")
        self.assertStatus(r, 200)
        self.assertEqual(len(r.json["items"]), 7)
        self.assertIsInstance(r.json["next_cursor"], str)
        page, cursor = [], None
        for _ in range(3):
            q = "/v1/invoices?limit=3" + (f"&cursor={cursor}" if cursor else "")
            r = self.request("GET", q, token="read")
            page += r.json["items"]
            cursor = r.json["next_cursor"]
        self.assertEqual([i["id"] for i in page], [i["id"] for i in everything[:9]])

    def test_31_list_validation(self):
        for q, field in (("status=late", "status"), ("period=2026-13", "period"),
                         ("period=2026-1", "period"), ("period=2026-01-01", "period"),
                         ("account=nope", "account"), ("limit=0", "limit"),
                         ("limit=1001", "limit"), ("cursor=x", "cursor")):
            r = self.request("GET", "/v1/invoices?" + q, token="read")
            self.assertFieldError(r, 400, "validation_failed", field)
        r = self.request("GET", "/v1/invoices", token=None)
        self.assertError(r, 401, "unauthorized")

    def test_32_unknown_invoice(self):
        for key in (uid(), "INV-2099-999999", "nothing"):
            r = self.request("GET", "/v1/invoices/" + key, token="read")
            self.assertError(r, 404, "not_found")
            r = self.request("GET", "/v1/invoices/" + key + "?format=html", token="read")
            self.assertError(r, 404, "not_found")
            r = self.credit(key, "1")
            self.assertError(r, 404, "not_found")

    # -- R5.7: the printable page

    def test_40_html(self):
        inv = self.invoice_of("I-EUR", "2026-01")
        for kw in ({"path": "?format=html"}, {"headers": {"Accept": "text/html"}},
                   {"headers": {"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}}):
            r = self.request("GET", "/v1/invoices/" + inv["number"] + kw.get("path", ""),
                             token="read", headers=kw.get("headers"))
            self.assertStatus(r, 200)
            self.assertEqual(r.header("content-type"), "text/html; charset=utf-8")
            html = r.body.decode("utf-8")
            self.assertTrue(html.startswith("<!DOCTYPE html>"), html[:100])
            self.assertIn(inv["number"], html)
            self.assertIn("Payment reference: <strong>" + inv["number"], html)
            self.assertIn("M\u00fcller &amp; S\u00f6hne &lt;GmbH&gt; &quot;Quote&#39;s&quot;",
                          html)
            self.assertNotIn("<GmbH>", html)
            self.assertNotIn("<script", html.lower())
            self.assertIn("I-EUR", html)
            for l in inv["lines"]:
                self.assertIn(l["description"], html)
                self.assertIn(l["amount"], html)
            for k in ("2026-01", "2026-02-01", "2026-02-16", "2.75"):
                self.assertIn(k, html)
        settled = self.invoice_of("I-CRED2", "2026-01")["number"]
        r = self.request("GET", f"/v1/invoices/{settled}?format=html", token="read")
        self.assertStatus(r, 200)
        html = r.text
        self.assertIn("Nothing is due", html)
        self.assertNotIn("Please pay", html)
        # JSON stays the default, and explicit
        r = self.request("GET", "/v1/invoices/" + inv["number"] + "?format=json",
                         token="read", headers={"Accept": "text/html"})
        self.assertEqual(r.json, inv)
        r = self.request("GET", "/v1/invoices/" + inv["number"] + "?format=pdf", token="read")
        self.assertFieldError(r, 400, "validation_failed", "format")

    # -- R5.5: credit notes

    def test_50_credit_notes(self):
        inv = self.invoice_of("I-EUR", "2026-01")
        r = self.credit(inv["id"], "1")
        self.assertStatus(r, 201)
        cn = r.json
        self.assertEqual(cn["number"], "CN-2026-000001")
        self.assertEqual((cn["invoice"], cn["amount"], cn["reason"]),
                         (inv["id"], "1.00", "goodwill"))
        self.assertEqual(cn["issued_at"], T_RUN)
        uuid.UUID(cn["id"])
        r = self.credit(inv["number"], "0.5", reason="wrong rate <sms>")
        self.assertStatus(r, 201)
        self.assertEqual(r.json["number"], "CN-2026-000002")
        after = self.get_invoice(inv["id"], token="read").json
        self.assertEqual((after["credited"], after["balance"], after["status"]),
                         ("1.50", "1.25", "open"))
        self.assertEqual([(c["number"], c["amount"], c["reason"]) for c in after["credit_notes"]],
                         [("CN-2026-000001", "1.00", "goodwill"),
                          ("CN-2026-000002", "0.50", "wrong rate <sms>")])
        # R5.5: the invoice itself is unchanged
        for k in ("number", "lines", "total", "issue_date", "due_date", "paid"):
            self.assertEqual(after[k], inv[k], k)
        self.assertEqual(self.get_account("I-EUR")["open_balance"], "1.25")
        html = self.get_invoice(inv["id"], token="read", headers={"Accept": "text/html"}).text
        self.assertIn("CN-2026-000002", html)
        self.assertIn("wrong rate &lt;sms&gt;", html)

    def test_51_credit_note_errors(self):
        inv = self.invoice_of("I-EUR", "2026-01")  # balance 1.25
        r = self.credit(inv["id"], "1.26")
        self.assertError(r, 422, "invalid_state")
        r = self.credit(inv["id"], "0.001")  # finer than a cent
        self.assertFieldError(r, 400, "validation_failed", "amount")
        for amount in ("0", "-1"):
            self.assertFieldError(self.credit(inv["id"], amount), 400, "validation_failed",
                                  "amount")
        r = self.request("POST", f"/v1/invoices/{inv['id']}/credit-notes", {"amount": 1,
                         "reason": "x"}, token="finance")
        self.assertFieldError(r, 400, "validation_failed", "amount")
        r = self.request("POST", f"/v1/invoices/{inv['id']}/credit-notes", {"amount": "1"},
                         token="finance")
        self.assertFieldError(r, 400, "validation_failed", "reason")
        self.assertFieldError(self.credit(inv["id"], "1", reason=" "), 400,
                              "validation_failed", "reason")
        r = self.request("POST", f"/v1/invoices/{inv['id']}/credit-notes",
                         {"amount": "1", "reason": "x", "extra": 1}, token="finance")
        self.assertError(r, 400, "validation_failed")
        self.assertError(self.credit(inv["id"], "1", token="read"), 403, "forbidden")
        # nothing changed, no number used
        self.assertEqual(self.get_invoice(inv["id"], token="read").json["balance"], "1.25")
        r = self.credit(self.invoice_of("I-JPY", "2026-01")["number"], "0.5")
        self.assertFieldError(r, 400, "validation_failed", "amount")
        r = self.credit(self.invoice_of("I-CRED2", "2026-01")["number"], "0.01")
        self.assertError(r, 422, "invalid_state")  # settled: balance 0
        r = self.credit(self.invoice_of("I-KWD", "2026-01")["number"], "0.237")
        self.assertStatus(r, 201)
        self.assertEqual((r.json["number"], r.json["amount"]), ("CN-2026-000003", "0.237"))
        audit, after = [], 0
        self.settle_feeds()
        while True:
            r = self.request("GET", f"/v1/audit?limit=1000&after={after}")
            self.assertStatus(r, 200)
            audit += r.json["items"]
            if not r.json.get("next_cursor"):
                break
            after = r.json["next_cursor"]
        self.assertEqual(sum(1 for a in audit if a["action"] == "credit_note.create"), 3)

    def test_52_credit_note_lifts_total_limit(self):
        inv = self.invoice_of("I-LIM", "2026-01")
        self.assertEqual(self.get_account("I-LIM")["suspension_reasons"], ["total_limit"])
        r = self.credit(inv["number"], "1")
        self.assertStatus(r, 201)
        self.assertEqual(r.json["number"], "CN-2026-000004")
        a = self.get_account("I-LIM")
        self.assertEqual((a["status"], a["suspension_reasons"], a["exposure"]),
                         ("active", [], "9"))
        # R2.3/R4.5: the history names the credit note (not a payment) as the cause
        h = self.request("GET", "/v1/accounts/ext:I-LIM/history", token="read").json["items"]
        self.assertEqual((h[0]["status"], h[0]["reasons"], h[0]["cause"], h[0]["actor"]),
                         ("active", [], "credit_note", "finance"), h[0])
        r = self.request("POST", "/v1/authorize", {"account": "ext:I-LIM", "amount": "0.5"},
                         token="platform")
        self.assertStatus(r, 200)
        self.assertTrue(r.json["allowed"], r.text)
        self.assertError(self.credit(inv["number"], "9.01"), 422, "invalid_state")
        self.assertStatus(self.credit(inv["number"], "9"), 201)
        after = self.get_invoice(inv["number"], token="read").json
        self.assertEqual((after["balance"], after["status"], after["credited"]),
                         ("0.00", "paid", "10.00"))
        self.assertEqual(self.psql("SELECT last FROM number_series WHERE series = 'CN-2026'")
                         .strip(), "5")

    # -- R5.3: prior-period usage; the scheduled February run

    def test_60_late_usage(self):
        self.move_clock(T_LATE)
        late = "2026-01-20T12:00:00Z"  # 14 days old: inside max_event_age
        self.post_events([ev("I-EUR", "0.0045", "sms", "DE", occurred_at=late),
                          ev("I-EUR", "0.0045", "sms", "DE", occurred_at=late),
                          ev("I-EUR", "0.0055", "sms", "DE", occurred_at="2026-02-02T10:00:00Z"),
                          ev("I-LATE", "0.5", "voice", "DE", occurred_at=late)])
        self.inv_jan_eur = self.invoice_of("I-EUR", "2026-01")
        self.move_clock(T_MARCH)  # the scheduler invoices February at 03-01 02:00
        # February usage or late January usage: I-EUR and I-LATE; other
        # accounts may have a February invoice of interest on overdue
        # January invoices (R5.3, R6.4)
        feb = self.invoices("period=2026-02")
        usage_kinds = ("usage", "prior_usage")
        self.assertEqual(sorted(i["customer"]["external_ref"] for i in feb
                                if any(l["kind"] in usage_kinds for l in i["lines"])),
                         ["I-EUR", "I-LATE"])
        for i in feb:
            self.assertEqual(Decimal(i["total"]), sum(Decimal(l["amount"]) for l in i["lines"]))
            self.assertTrue(set(l["kind"] for l in i["lines"])
                            <= {"usage", "prior_usage", "interest", "interest_correction",
                                "compensation"}, i)
        everything = self.invoices()
        self.assertEqual(sorted(i["number"] for i in everything),
                         [f"INV-2026-{n:06d}" for n in range(1, len(everything) + 1)])
        inv = self.invoice_of("I-EUR", "2026-02")
        self.assertEqual((inv["issue_date"], inv["due_date"]), ("2026-03-01", "2026-03-16"))
        self.assertLines(inv, [("sms", "DE", 1, "0.0055", "0.01")])
        self.assertLines(inv, [("sms", "DE", 2, "0.0045", "0.01")], kind="prior_usage",
                         period="2026-01")
        self.assertEqual([l["kind"] for l in inv["lines"]][:2], ["usage", "prior_usage"])
        self.assertIn("2026-01", inv["lines"][1]["description"])
        inv = self.invoice_of("I-LATE", "2026-02")
        self.assertLines(inv, [], kind="usage")
        self.assertLines(inv, [("voice", "DE", 1, "0.5", "0.50")], kind="prior_usage",
                         period="2026-01")
        # the January invoice did not change (R5.5)
        self.assertEqual(self.invoice_of("I-EUR", "2026-01")["lines"], self.inv_jan_eur["lines"])
        self.assertEqual(len(self.invoices("account=ext:I-EUR")), 2)
        # and running February again issues nothing
        self.assertEqual(self.run_job("2026-02")["result"]["invoices"], 0)

    def test_61_overdue(self):
        inv = self.invoice_of("I-KWD", "2026-01")  # due 02-16, now 03-01
        self.assertEqual((inv["status"], inv["days_overdue"]), ("overdue", 13))
        overdue = self.invoices("status=overdue")
        self.assertIn(inv["id"], [i["id"] for i in overdue])
        self.assertTrue(all(i["period"] == "2026-01" for i in overdue))
        self.assertNotIn("I-LIM", [i["customer"]["external_ref"] for i in overdue])

    def test_62_schedule(self):
        r = self.request("GET", "/v1/schedule", token="read")
        self.assertStatus(r, 200)
        periods = {p["period"]: p for p in r.json["periods"]}
        for p in ("2026-01", "2026-02"):
            self.assertTrue(periods[p]["invoiced"], periods[p])
            self.assertTrue(periods[p]["deadline_met"], periods[p])
        self.assertEqual(periods["2026-01"]["invoiced_at"], T_RUN)

    # -- R5.4: every accepted event billed exactly once

    def test_70_billed_once(self):
        # nothing of February or earlier is left unbilled
        self.assertEqual(self.psql("SELECT count(*) FROM usage_rollups WHERE invoice_id IS NULL "
                                   "AND period <= '2026-02-01'").strip(), "0")
        # exact sums: events = usage lines (before rounding), per account
        diff = self.psql(
            "SELECT count(*) FROM (SELECT account_id, sum(amount) AS s FROM events "
            "GROUP BY account_id) e FULL JOIN (SELECT i.account_id, sum(l.exact) AS s "
            "FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id "
            "WHERE l.kind IN ('usage', 'prior_usage') GROUP BY i.account_id) b "
            "ON b.account_id = e.account_id WHERE e.s IS DISTINCT FROM b.s")
        self.assertEqual(diff.strip(), "0")
        # through the API: per currency, the rounded lines are within half a
        # minor unit per line of the events sent
        sent = {"EUR": Decimal(0), "JPY": Decimal(0), "KWD": Decimal(0)}
        for s, d, a, q in EUR_EVENTS:
            sent["EUR"] += Decimal(a)
        for s, d, a, q in JPY_EVENTS:
            sent["JPY"] += Decimal(a)
        for s, d, a, q in KWD_EVENTS:
            sent["KWD"] += Decimal(a)
        sent["EUR"] += (Decimal("12.34") + 3 + 10 + 1 + Decimal("0.0045") * 2
                        + Decimal("0.0055") + Decimal("0.5"))
        for i in range(MANY):
            sent["EUR"] += Decimal(many_amount(i))
        billed = {c: Decimal(0) for c in sent}
        lines = {c: 0 for c in sent}
        for inv in self.invoices():
            for l in inv["lines"]:
                if l["kind"] in ("usage", "prior_usage"):
                    billed[inv["currency"]] += Decimal(l["amount"])
                    lines[inv["currency"]] += 1
        for c in sent:
            half = Decimal(1).scaleb(-EXP[c]) / 2
            self.assertLessEqual(abs(billed[c] - sent[c]), half * lines[c], c)
        self.assertEqual(billed["JPY"], 5)
        self.assertEqual(billed["KWD"], Decimal("1.237"))


class Chunks(unittest.TestCase):
    """R5.1, R5.2: more accounts than one chunk (1000 accounts, one
    transaction each): two concurrent runs bill every account once, and the
    numbers run on across chunks without a gap or a duplicate. Own cluster
    and daemon (the main timeline stays small: its daily jobs are per day
    and account)."""

    @classmethod
    def setUpClass(cls):
        cls.env = harness.start_env(test_clock="2026-01-31T10:00:00Z")
        cls.d = cls.env.daemon

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def test_chunks(self):
        d = self.d
        evs = []
        for i in range(MANY_CHUNKS):
            ref = f"C-{i:04d}"
            r = d.request("POST", "/v1/accounts", {"external_ref": ref, "name": ref,
                                                   "currency": "EUR", "jurisdiction": "DE"},
                          token="finance")
            self.assertEqual(r.status, 201, r.text)
            evs.append(ev(ref, many_amount(i), occurred_at="2026-01-30T12:00:00Z"))
        r = post_events(d, evs)
        self.assertEqual(r.json["accepted"], MANY_CHUNKS, r.text[:500])
        r = d.request("PUT", "/v1/test/clock", {"now": T_RUN})
        self.assertEqual(r.status, 200, r.text)
        results = concurrent_runs((d.port, d.port), "2026-01")
        for status, body in results:
            self.assertEqual((status, body["status"]), (202, "succeeded"), body)
        self.assertEqual(sum(b["result"]["invoices"] for _, b in results), MANY_CHUNKS,
                         results)
        invs, cursor = [], None
        while True:
            r = d.request("GET", "/v1/invoices?limit=1000" + (f"&cursor={cursor}" if cursor
                                                               else ""), token="read")
            self.assertEqual(r.status, 200, r.text[:500])
            invs += r.json["items"]
            cursor = r.json["next_cursor"]
            if cursor is None:
                break
        self.assertEqual(sorted(i["number"] for i in invs),
                         [f"INV-2026-{n:06d}" for n in range(1, MANY_CHUNKS + 1)])
        self.assertEqual(sorted(i["customer"]["external_ref"] for i in invs),
                         [f"C-{i:04d}" for i in range(MANY_CHUNKS)])
        for inv in invs:
            i = int(inv["customer"]["external_ref"][2:])
            self.assertEqual(inv["total"], fmt(many_amount(i), "EUR"), inv)
            self.assertEqual(inv["balance"], inv["total"])
        totals = {i["customer"]["external_ref"]: i["total"] for i in invs}
        self.assertEqual(totals["C-0000"], "1.01")  # 1.005: half away from zero
        self.assertEqual(totals["C-0001"], "2.04")  # 2.037
        self.assertEqual(totals["C-0014"], "5.52")  # 5.518


class TimeZone(unittest.TestCase):
    """R1.5: billing months in America/New_York. 2026-02-01T03:00Z is
    2026-01-31 22:00 there: January."""

    @classmethod
    def setUpClass(cls):
        cls.env = harness.start_env(config={"billing": {"timezone": "America/New_York"}},
                                    test_clock="2026-02-01T04:00:00Z")
        cls.d = cls.env.daemon

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def req(self, method, path, body=None, token="admin"):
        return self.d.request(method, path, body, token=token)

    def test_month_boundary(self):
        r = self.req("POST", "/v1/accounts", {"external_ref": "NY-1", "name": "New York",
                                              "currency": "USD", "jurisdiction": "US-NY"})
        self.assertEqual(r.status, 201, r.text)
        evs = [ev("NY-1", "2", occurred_at="2026-01-31T10:00:00Z"),
               ev("NY-1", "1", occurred_at="2026-02-01T03:00:00Z")]
        r = post_events(self.d, evs)
        self.assertEqual(r.json["accepted"], 2, r.text)
        # January has not ended yet in New York (23:00 on the 31st)
        r = self.req("POST", "/v1/jobs/invoicing?wait=true", {"period": "2026-01"})
        self.assertEqual(r.status, 400, r.text)
        r = self.req("PUT", "/v1/test/clock", {"now": "2026-02-01T06:00:00Z"})
        self.assertEqual(r.status, 200, r.text)
        r = post_events(self.d, [ev("NY-1", "4", occurred_at="2026-02-01T05:30:00Z")])
        self.assertEqual(r.json["accepted"], 1, r.text)
        # the scheduled run (1st 02:00 New York = 07:00Z); on 2026-02-02T03:00Z
        # it is still the 1st in New York
        r = self.req("PUT", "/v1/test/clock", {"now": "2026-02-02T03:00:00Z"})
        self.assertEqual(r.status, 200, r.text)
        r = self.req("GET", "/v1/invoices?account=ext:NY-1", token="read")
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(len(r.json["items"]), 1, r.text)
        inv = r.json["items"][0]
        self.assertEqual((inv["period"], inv["total"], inv["issue_date"], inv["due_date"]),
                         ("2026-01", "3.00", "2026-02-01", "2026-02-16"))
        self.assertEqual(inv["number"], "INV-2026-000001")
        r = self.req("GET", "/v1/accounts/ext:NY-1", token="read")
        self.assertEqual(r.json["unbilled_usage"], "4", r.text)
        r = self.req("GET", "/v1/schedule", token="read")
        jan = [p for p in r.json["periods"] if p["period"] == "2026-01"][0]
        self.assertTrue(jan["invoiced"], jan)
        self.assertTrue(jan["deadline_met"], jan)
        # R5.1: one scheduled run for the period. The scheduler used to plan
        # the next run before it knew this one's period was invoiced, and ran
        # the period a second time at once (0 invoices, every account read
        # again, a second job row).
        time.sleep(1.0)
        r = self.req("GET", "/v1/jobs?kind=invoicing&limit=100", token="read")
        self.assertEqual(r.status, 200, r.text)
        runs = [(j["params"]["period"], j["status"], j["result"]["invoices"])
                for j in r.json["items"]]
        # newest first: January's at 07:00Z, and December's, caught up at the
        # start (04:00Z is 31 January 23:00 in New York: December was due)
        self.assertEqual(runs, [("2026-01", "succeeded", 1), ("2025-12", "succeeded", 0)],
                         r.text)


if __name__ == "__main__":
    harness.main()
