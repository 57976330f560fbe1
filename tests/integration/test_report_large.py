#!/usr/bin/env python3
"""The exposure report of many accounts (R7.2, R7.3; daemon/http_reports.c,
sql/0031_report_text.sql), streamed (R9.1).

Defects this test guards (fixed): the daemon built the report row by row on
its event loop (at 100,000 accounts the JSON form held the loop for 1.6 s and
took 354 MB); then PostgreSQL wrote the rows as text in pages, but the daemon
still received the whole result and sent it in one block, holding the loop
0.5-0.9 s (bench/reports), so every /v1/authorize waited that long. Now the
pages go out as they come from PostgreSQL (libpq single-row mode), one chunk
each (HTTP/1.1 chunked; HTTP/1.0: the body ends at the close); a client that
does not read pauses the reading of PostgreSQL instead of the daemon
buffering the report.

Here: 12,000 accounts inserted with SQL (several pages of 500), read by a
client that takes the reply slowly, as JSON, CSV and HEAD, with the chunked
framing checked byte by byte; the HTTP/1.0 body is the same bytes; the
connection is kept after the report; clients that go away half-way, or
stop reading for a while, leave the daemon healthy (the ASan build checks
leaks at the exit); /v1/authorize is answered while a report waits for its
client; a database failure after the head cuts the reply (no final chunk).
The figures are checked against the database."""

import json
import socket
import time

import harness

N = 12000
N_ALL = N + 1  # and STREAM-AUTH, created through the API (authorized in test_5)

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


def connect(port, rcvbuf=16384):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    return s


def request_bytes(path, token, method="GET", version="1.1", close=True):
    return (f"{method} {path} HTTP/{version}\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"{'Connection: close' if close else ''}\r\n\r\n").encode()


def slow_get(port, path, token, method="GET", version="1.1", stop_after=None):
    """A raw HTTP exchange that reads 16 KiB at a time with pauses; returns
    (head, raw body as sent) or, with stop_after, closes after that many
    bytes and returns (None, None)."""
    s = connect(port)
    s.sendall(request_bytes(path, token, method, version))
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


def header(head, name):
    for line in head.splitlines()[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


def dechunk(raw):
    """Strict chunked decoding: (body, rest after the final chunk) or
    ValueError when the framing is wrong or the final chunk is missing."""
    body = bytearray()
    pos = 0
    while True:
        eol = raw.find(b"\r\n", pos)
        if eol < 0:
            raise ValueError(f"no chunk size line at {pos}")
        size_text = raw[pos:eol]
        if not size_text or any(c not in b"0123456789abcdef" for c in size_text):
            raise ValueError(f"bad chunk size {size_text[:20]!r} at {pos}")
        size = int(size_text, 16)
        pos = eol + 2
        if size == 0:
            if raw[pos:pos + 2] != b"\r\n":
                raise ValueError("no CRLF after the final chunk")
            return bytes(body), raw[pos + 2:]
        if len(raw) < pos + size + 2:
            raise ValueError("chunk cut short")
        body += raw[pos:pos + size]
        pos += size
        if raw[pos:pos + 2] != b"\r\n":
            raise ValueError(f"no CRLF after a chunk of {size} at {pos}")
        pos += 2


def read_response(s, buf):
    """One chunked or Content-Length response from a kept-alive socket:
    (head, body, bytes after it)."""
    while b"\r\n\r\n" not in buf:
        more = s.recv(65536)
        if not more:
            raise AssertionError("connection closed before a response head")
        buf += more
    head, _, rest = buf.partition(b"\r\n\r\n")
    head = head.decode()
    if header(head, "Transfer-Encoding") == "chunked":
        while True:
            try:
                body, after = dechunk(rest)
                return head, body, after
            except ValueError:
                more = s.recv(65536)
                if not more:
                    raise
                rest += more
    length = int(header(head, "Content-Length"))
    while len(rest) < length:
        more = s.recv(65536)
        if not more:
            raise AssertionError("connection closed inside a body")
        rest += more
    return head, rest[:length], rest[length:]


class LargeReport(harness.DaemonTestCase):
    TEST_CLOCK = "2026-03-15T12:00:00Z"
    # debug: "waiting for the client" (test_5..7); a client that takes no
    # output for 10 s is closed (test_7)
    CONFIG = {"log": {"level": "debug"}, "server": {"request_timeout_seconds": "10"}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = cls.daemon.request("POST", "/v1/accounts",
                               {"external_ref": "STREAM-AUTH", "name": "Customer STREAM-AUTH",
                                "currency": "EUR", "jurisdiction": "DE", "monthly_limit": "100"},
                               token="finance")
        assert r.status == 201, r
        cls.cluster.psql(INSERT)
        cls.expect = {}
        for line in cls.cluster.psql(
                "SELECT currency, count(*), sum(unbilled_usage) FROM accounts "
                "GROUP BY currency").split():
            cur, n, total = line.split("|")
            cls.expect[cur] = (int(n), int(total))

    def healthy(self):
        r = self.request("GET", "/v1/reports/exposure?status=suspended", token="read")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["items"], [])
        self.assertEqual(r.json["totals"], [])

    def check_json(self, body):
        rep = json.loads(body)
        self.assertEqual(len(rep["items"]), N_ALL)
        self.assertEqual(rep["as_of"], "2026-03-15T12:00:00Z")
        refs = [i["external_ref"] for i in rep["items"]]
        self.assertEqual(len(set(refs)), N_ALL)
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
        # the totals are the sum of the rows (one statement, one snapshot)
        self.assertEqual(sum(t["accounts"] for t in rep["totals"]), N_ALL)

    def test_1_json_read_slowly(self):
        d = self.daemon
        head, raw = slow_get(d.port, "/v1/reports/exposure", d.secret("read"))
        self.assertIn("200", head.splitlines()[0])
        self.assertEqual(header(head, "Transfer-Encoding"), "chunked")
        self.assertIsNone(header(head, "Content-Length"))
        self.assertEqual(header(head, "Content-Type"), "application/json")
        body, rest = dechunk(raw)
        self.assertEqual(rest, b"")
        self.assertGreater(len(body), 3_000_000)  # far more than one write
        self.assertGreater(raw.count(b"\r\n"), 2 * (N // 500))  # a chunk per page at least
        self.assertTrue(body.endswith(b"}\n"))
        self.check_json(body)
        # HTTP/1.0: no chunked coding, the same bytes, the body ends at the close
        head10, body10 = slow_get(d.port, "/v1/reports/exposure", d.secret("read"),
                                  version="1.0")
        self.assertTrue(head10.startswith("HTTP/1.0 200"), head10)
        self.assertIsNone(header(head10, "Transfer-Encoding"))
        self.assertEqual(header(head10, "Connection"), "close")
        self.assertEqual(body10, body)
        # and the harness's client (http.client) reads the same
        r = self.request("GET", "/v1/reports/exposure", token="read")
        self.assertStatus(r, 200)
        self.assertEqual(r.body, body)

    def test_2_csv_read_slowly(self):
        d = self.daemon
        head, raw = slow_get(d.port, "/v1/reports/exposure?format=csv", d.secret("read"))
        self.assertIn("200", head.splitlines()[0])
        self.assertIn('filename="exposure.csv"', head)
        self.assertEqual(header(head, "Transfer-Encoding"), "chunked")
        body, rest = dechunk(raw)
        self.assertEqual(rest, b"")
        lines = body.split(b"\r\n")
        self.assertEqual(lines[-1], b"")
        self.assertEqual(len(lines), N_ALL + 2)  # header, the rows, the final CRLF
        self.assertTrue(lines[0].startswith(b"external_ref,id,name,"))
        row = [ln for ln in lines if ln.startswith(b"L-01000,")][0]
        # formula guard, then RFC 4180 quoting of the comma and the quotes
        self.assertIn(b',"\'=Formula, ""quoted""",EUR,active,,0,100,100,1,500,499,100', row)
        head10, body10 = slow_get(d.port, "/v1/reports/exposure?format=csv", d.secret("read"),
                                  version="1.0")
        self.assertTrue(head10.startswith("HTTP/1.0 200"), head10)
        self.assertEqual(body10, body)

    def test_3_head_and_a_client_that_leaves(self):
        d = self.daemon
        head, body = slow_get(d.port, "/v1/reports/exposure", d.secret("read"), method="HEAD")
        self.assertIn("200", head.splitlines()[0])
        self.assertEqual(body, b"")
        for path in ("/v1/reports/exposure", "/v1/reports/exposure?format=csv"):
            for stop in (100, 100_000, 1_000_000):
                self.assertEqual(slow_get(d.port, path, d.secret("read"), stop_after=stop),
                                 (None, None))
        # a client that sends its request and leaves before the first byte
        s = connect(d.port)
        s.sendall(request_bytes("/v1/reports/exposure", d.secret("read")))
        s.close()
        self.healthy()

    def test_4_kept_alive_and_pipelined(self):
        """The connection goes on after a streamed reply (and after a HEAD),
        requests pipelined behind it are answered in order."""
        d = self.daemon
        tok = d.secret("read")
        s = connect(d.port, rcvbuf=1 << 20)
        s.sendall(request_bytes("/v1/reports/exposure?format=csv", tok, close=False)
                  + request_bytes("/v1/reports/exposure", tok, method="HEAD", close=False)
                  + request_bytes("/v1/reports/exposure?status=suspended", tok, close=False))
        head1, body1, buf = read_response(s, b"")
        self.assertIn("200", head1.splitlines()[0])
        self.assertIsNone(header(head1, "Connection"))
        self.assertEqual(body1.count(b"\r\n"), N_ALL + 1)
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head2, _, buf = buf.partition(b"\r\n\r\n")  # HEAD: no body
        self.assertIn("200", head2.decode().splitlines()[0])
        head3, body3, buf = read_response(s, buf)
        self.assertIn("200", head3.splitlines()[0])
        self.assertEqual(json.loads(body3)["items"], [])
        self.assertEqual(buf, b"")
        s.close()

    def stalled_report(self, path):
        """A client that sends its request, reads the head and then nothing
        until the daemon says it waits for it (PostgreSQL paused). The
        names are made long first (restored by cleanup): a report of 12,000
        short rows fits in the kernel's socket buffers and never waits."""
        d = self.daemon
        self.psql("UPDATE accounts SET name = rpad(name, 2000, '.') WHERE external_ref LIKE 'L-%'")
        self.addCleanup(self.psql, "UPDATE accounts SET name = rtrim(name, '.') "
                                   "WHERE external_ref LIKE 'L-%'")
        off = d.log_size()
        s = connect(d.port, rcvbuf=None)
        s.sendall(request_bytes(path, d.secret("read")))
        first = s.recv(4096)
        self.assertTrue(first.startswith(b"HTTP/1.1 200"), first[:100])
        d.wait_log(r"exposure report: waiting for the client", start=off, timeout=30)
        return s, first, off

    def test_5_authorize_while_a_client_does_not_read(self):
        """A client that stops reading: PostgreSQL is paused rather than the
        report buffered; the daemon answers others meanwhile; the client then
        gets all of it."""
        s, data, _ = self.stalled_report("/v1/reports/exposure")
        for _ in range(20):
            a = self.authorize("STREAM-AUTH", "1")
            self.assertTrue(a["allowed"], a)
        self.healthy()
        while True:
            more = s.recv(1 << 16)
            if not more:
                break
            data += more
        s.close()
        _, _, raw = data.partition(b"\r\n\r\n")
        body, rest = dechunk(raw)
        self.assertEqual(rest, b"")
        self.assertGreater(len(body), 24_000_000)
        rep = json.loads(body)
        self.assertEqual(len(rep["items"]), N_ALL)
        self.assertEqual(sum(t["accounts"] for t in rep["totals"]), N_ALL)
        self.assertEqual(len([i for i in rep["items"] if len(i["name"]) == 2000]), N)

    def test_6_database_fails_after_the_head(self):
        """The statement's backend ends while the client is not reading: the
        reply stops without its final chunk (the client can tell), logged;
        the daemon reconnects and answers the next report in full."""
        d = self.daemon
        s, data, off = self.stalled_report("/v1/reports/exposure?format=csv")
        pid = self.psql("SELECT pid FROM pg_stat_activity WHERE query LIKE "
                        "'%creditd_csv_text(s.external_ref)%' AND pid <> pg_backend_pid()")
        self.assertTrue(pid, "the report's backend")
        self.psql(f"SELECT pg_terminate_backend({pid.split()[0]})")
        broken = False
        try:
            while True:
                more = s.recv(1 << 16)
                if not more:
                    break
                data += more
        except ConnectionResetError:
            broken = True
        s.close()
        _, _, raw = data.partition(b"\r\n\r\n")
        with self.assertRaises(ValueError):
            dechunk(raw)
        self.assertTrue(broken or not raw.endswith(b"0\r\n\r\n"))
        d.wait_log(r"exposure report cut after its head", start=off)
        harness.wait_for(lambda: self.request("GET", "/readyz", token="read").status == 200, 10,
                         "ready again")
        r = self.request("GET", "/v1/reports/exposure?format=csv", token="read")
        self.assertStatus(r, 200)
        self.assertEqual(r.body.count(b"\r\n"), N_ALL + 1)

    def test_7_client_that_never_reads(self):
        """A stalled client is closed after the request timeout; the paused
        statement is then read to its end and dropped: the daemon's database
        connection is free again and the next report is whole."""
        d = self.daemon
        s, _, off = self.stalled_report("/v1/reports/exposure?format=csv")
        d.wait_log(r"closing a connection after 10 s without progress", start=off, timeout=30)
        d.wait_log(r"exposure report: client went away mid-reply", start=off, timeout=10)
        s.close()
        harness.wait_for(lambda: harness.metric(d, "creditd_db_inflight_batches") == 0, 10,
                         "the report's statement to end")
        r = self.request("GET", "/v1/reports/exposure?format=csv", token="read")
        self.assertStatus(r, 200)
        self.assertEqual(r.body.count(b"\r\n"), N_ALL + 1)


if __name__ == "__main__":
    harness.main()
