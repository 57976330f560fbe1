#!/usr/bin/env python3
"""The exposure report of many accounts (R7.2, R7.3; daemon/http_reports.c,
sql/0031_report_text.sql).

Defect this test guards (fixed): the daemon built the report row by row on
its event loop. At 100,000 accounts the JSON form held the loop for 1.6 s
(every /v1/authorize waited) and took 354 MB at its peak; the daemon kept
131 MB afterwards. PostgreSQL now writes the rows as JSON and CSV text in
pages, and the reply is sent from one block without a copy (httpd_reply_owned).
Measured with bench/reports; the figures are in the README.

Here: 12,000 accounts inserted with SQL (several pages of 500), read by a
client that takes the reply slowly (so the daemon sends it over many writes,
from the block it handed to httpd), as JSON, CSV and HEAD, and a client that
goes away half-way; the figures are checked against the database."""

import json
import socket
import time

import harness

N = 12000

INSERT = f"""
INSERT INTO accounts (id, external_ref, name, currency, jurisdiction, contractual_rate,
                      payment_terms_days, monthly_limit, total_limit, usage_month,
                      created_at, updated_at, unbilled_usage)
SELECT ('c0000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 'L-' || lpad(g::text, 5, '0'),
       CASE WHEN g % 1000 = 0 THEN '=Formula, "quoted"' ELSE 'Large ' || g END,
       CASE WHEN g % 3 = 0 THEN 'JPY' ELSE 'EUR' END, 'DE', 120000, 15,
       CASE WHEN g % 2 = 0 THEN 100000000 END, 500000000, date '2026-03-01',
       timestamptz '2026-03-01T00:00:00Z', timestamptz '2026-03-01T00:00:00Z', g * 1000
  FROM generate_series(1, {N}) g;
"""


def slow_get(port, path, token, headers="", method="GET", stop_after=None):
    """A raw HTTP/1.1 exchange that reads 16 KiB at a time with pauses;
    returns (head, body) or, with stop_after, closes after that many bytes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
              f"{headers}Connection: close\r\n\r\n".encode())
    data = b""
    reads = 0
    while True:
        chunk = s.recv(16384)
        if not chunk:
            break
        data += chunk
        reads += 1
        if stop_after is not None and len(data) >= stop_after:
            s.close()
            return None, None
        if reads % 50 == 0:
            time.sleep(0.01)
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode(), body


class LargeReport(harness.DaemonTestCase):
    TEST_CLOCK = "2026-03-15T12:00:00Z"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.psql(INSERT)
        cls.expect = {}
        for line in cls.cluster.psql(
                "SELECT currency, count(*), sum(unbilled_usage) FROM accounts "
                "GROUP BY currency").split():
            cur, n, total = line.split("|")
            cls.expect[cur] = (int(n), int(total))

    def test_1_json_read_slowly(self):
        d = self.daemon
        head, body = slow_get(d.port, "/v1/reports/exposure", d.secret("read"))
        self.assertIn("200", head.splitlines()[0])
        length = int([h.split(":")[1] for h in head.splitlines()
                      if h.lower().startswith("content-length")][0])
        self.assertEqual(length, len(body))
        self.assertGreater(length, 3_000_000)  # far more than one write
        rep = json.loads(body)
        self.assertEqual(len(rep["items"]), N)
        refs = [i["external_ref"] for i in rep["items"]]
        self.assertEqual(len(set(refs)), N)
        # headroom ascending, then external_ref: the even accounts have a
        # monthly limit of 100 and usage 0 (headroom 100), the odd ones only
        # a total limit of 500 with exposure g * 0.001 (headroom 500 - ...)
        self.assertEqual(rep["items"][0]["external_ref"], "L-00002")
        self.assertEqual(rep["items"][0]["headroom"], "100")
        last = rep["items"][-1]
        self.assertEqual((last["external_ref"], last["exposure"], last["headroom"]),
                         ("L-00001", "0.001", "499.999"))
        totals = {t["currency"]: (t["accounts"], t["exposure"]) for t in rep["totals"]}
        # EUR: g not divisible by 3; sum of g * 0.001
        eur = sum(g for g in range(1, N + 1) if g % 3) / 1000
        jpy = sum(g for g in range(1, N + 1) if g % 3 == 0) / 1000
        self.assertEqual(totals, {"EUR": (self.expect["EUR"][0], f"{eur:g}"),
                                  "JPY": (self.expect["JPY"][0], f"{jpy:g}")})
        odd = [i for i in rep["items"] if i["external_ref"] == "L-01000"][0]
        self.assertEqual(odd["name"], '=Formula, "quoted"')

    def test_2_csv_read_slowly(self):
        d = self.daemon
        head, body = slow_get(d.port, "/v1/reports/exposure?format=csv", d.secret("read"))
        self.assertIn("200", head.splitlines()[0])
        self.assertIn('filename="exposure.csv"', head)
        lines = body.split(b"\r\n")
        self.assertEqual(lines[-1], b"")
        self.assertEqual(len(lines), N + 2)  # header, N rows, the final CRLF
        self.assertTrue(lines[0].startswith(b"external_ref,id,name,"))
        row = [ln for ln in lines if ln.startswith(b"L-01000,")][0]
        # formula guard, then RFC 4180 quoting of the comma and the quotes
        self.assertIn(b',"\'=Formula, ""quoted""",EUR,active,,0,100,100,1,500,499,100', row)

    def test_3_head_and_a_client_that_leaves(self):
        d = self.daemon
        head, body = slow_get(d.port, "/v1/reports/exposure", d.secret("read"), method="HEAD")
        self.assertIn("200", head.splitlines()[0])
        self.assertEqual(body, b"")
        for _ in range(3):
            self.assertEqual(slow_get(d.port, "/v1/reports/exposure", d.secret("read"),
                                      stop_after=100_000), (None, None))
        r = d.request("GET", "/v1/reports/exposure?status=suspended", token="read")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["items"], [])
        self.assertEqual(r.json["totals"], [])


if __name__ == "__main__":
    harness.main()
