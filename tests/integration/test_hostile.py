#!/usr/bin/env python3
"""Hostile input end to end (issue 6; API.md "Conventions"): malformed JSON,
wrong field types, deep nesting, invalid UTF-8, huge numbers, oversized
bodies and headers, path tricks, SQL-looking strings, unknown methods, odd
HTTP framing (HTTP/1.0 without Host, pipelining, 1-byte writes).

Every case gets the API's JSON error with the documented status. Where the
connection layer (daemon/httpd.c) refuses a request before routing (bad
request line or header block, headers over 16 KiB, a body over the limit,
a method we do not know) the status is 400, 405, 413, 431, 501 or 505, the body
is still the JSON error and the answer carries "Connection: close"
(assertRefused). After every case GET /healthz answers 200 on a new
connection, and the daemon process is still alive at the end (its log is
checked for sanitizer reports when it stops).
"""

import json
import socket
import time
import unittest
import urllib.parse
import uuid

import harness

MAX_BODY = 256 * 1024
MAX_EVENTS = 100
ACC = "HOSTILE-1"  # an account every event and payment case points at
NOW = "2023-07-01T00:00:00Z"  # harness.DEFAULT_TEST_CLOCK
OCCURRED = "2023-06-30T12:00:00Z"
ADMIN = harness.DEFAULT_TOKENS["admin"].secret

# Bodies that are not JSON (RFC 8259) or not of an accepted shape.
MALFORMED = [
    b'{"name": "x"', b'{"name": "x",', b'{"na', b"{", b"[", b'{"a":', b'{"a":"x',  # truncated
    b'{"a":1} garbage', b'{"a":1}{"b":2}', b'{"a":1}]', b'{"a":1}\x00',  # trailing garbage
    b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b'{"a": nan}',
    b'/* c */ {"a":1}', b'{"a":1 // c\n}', b'# c\n{"a":1}', b'{"a":1 /* c */}',  # comments
    b"{'a': 1}", b'{a: 1}', b'{"a":1,}', b'{"a":[1,]}', b'{"a":0x10}', b'{"a":01}',
    b'{"a":.5}', b'{"a":+1}', b'{"a":1.}', b'{"a":"\\x41"}', b'{"a":"\\u12"}',
    b'{"a":"\\ud800"}', b'{"a":"x\ty"}', b'{"a":"x\ny"}',  # lone surrogate, raw control chars
    b'\xef\xbb\xbf{"a":1}', b'{"a":1,"a":2}', b"null", b"true", b'"text"', b"123", b"",
    b"   ", b"\x00",
]

# Invalid UTF-8 inside a JSON string (and a key).
BAD_UTF8 = [b"\xff", b"\x80", b"\xc0\xaf", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"ok\xfe"]


def account_body(ext, **kw):
    body = {"external_ref": ext, "name": f"Customer {ext}", "currency": "EUR", "jurisdiction": "DE"}
    body.update(kw)
    return body


def event(**kw):
    ev = {"id": str(uuid.uuid4()), "account": f"ext:{ACC}", "amount": "0.01",
          "occurred_at": OCCURRED, "service": "sms"}
    ev.update(kw)
    return {k: v for k, v in ev.items() if v is not DROP}


def payment(**kw):
    p = {"id": str(uuid.uuid4()), "account": f"ext:{ACC}", "amount": "10.00",
         "received_at": "2023-06-30T00:00:00Z", "reference": "bank 1"}
    p.update(kw)
    return {k: v for k, v in p.items() if v is not DROP}


DROP = object()  # a field left out


# ---------------------------------------------------------------------------
# Raw HTTP


def parse_responses(data, eof=False):
    """Splits raw bytes into responses: [(status, headers, body)]; stops at
    an incomplete one. A response without Content-Length (HTTP/1.0, or
    a server closing) runs to the end of the connection: complete at eof."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for ln in lines[1:]:
            if b":" in ln:
                k, v = ln.split(b":", 1)
                headers[k.strip().lower().decode()] = v.strip().decode("latin-1")
        if "content-length" in headers:
            n = int(headers["content-length"])
            if len(rest) < n:
                break
            body, data = rest[:n], rest[n:]
        elif eof:
            body, data = rest, b""
        else:
            break
        out.append((status, headers, body))
    return out


def resp_of(status, headers, body):
    text = body.decode("utf-8", "replace")
    try:
        js = json.loads(body) if body else None
    except ValueError:
        js = None
    return harness.Response(status=status, headers=headers, json=js, text=text, body=body)


class HostileBase(harness.DaemonTestCase):
    CONFIG = {"server": {"max_body_bytes": MAX_BODY}, "usage": {"max_batch_events": MAX_EVENTS}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = cls.daemon.request("GET", f"/v1/accounts/ext:{ACC}")
        if r.status == 404:
            r = cls.daemon.request("POST", "/v1/accounts", account_body(ACC))
            if r.status != 201:
                raise harness.HarnessError(f"cannot create {ACC}: {r}")

    # -- helpers

    def exchange(self, chunks, expect=1, delay=0.0, timeout=15.0, half_close=False):
        """Sends raw bytes (a bytes object, or a list sent one by one with
        TCP_NODELAY) on a new connection and returns the parsed responses
        once `expect` have arrived or the server closed the connection."""
        if isinstance(chunks, bytes):
            chunks = [chunks]
        s = socket.create_connection(("127.0.0.1", self.daemon.port), timeout=timeout)
        data = b""
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                for c in chunks:
                    s.sendall(c)
                    if delay:
                        time.sleep(delay)
                if half_close:
                    s.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered early and closed; read what it said
            deadline = time.monotonic() + timeout
            eof = False
            while len(parse_responses(data)) < expect and time.monotonic() < deadline:
                try:
                    part = s.recv(65536)
                except (ConnectionResetError, socket.timeout):
                    part = b""
                if not part:
                    eof = True
                    break
                data += part
        finally:
            s.close()
        return [resp_of(*x) for x in parse_responses(data, eof)]

    def raw1(self, request, **kw):
        """One raw request; exactly one response expected."""
        rs = self.exchange(request, **kw)
        self.assertEqual(len(rs), 1, f"no (or more than one) answer to {request[:200]!r}")
        return rs[0]

    def healthy(self, what=""):
        """GET /healthz on a new connection answers 200 and the process runs."""
        self.assertTrue(self.daemon.is_running(), f"creditd died after {what}\n{self.daemon.log_tail()}")
        r = self.exchange(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        self.assertTrue(r and r[0].status == 200, f"/healthz after {what}: {r}")

    def assertJsonError(self, r, status, code, field=None, what=""):
        self.assertEqual(r.status, status, f"{what}: {r.text[:500]}")
        self.assertIn("application/json", r.header("content-type", ""), f"{what}: {r.headers}")
        self.assertIsInstance(r.json, dict, f"{what}: body is not JSON: {r.body[:300]!r}")
        err = r.json.get("error")
        self.assertIsInstance(err, dict, f"{what}: {r.text[:300]}")
        self.assertEqual(err.get("code"), code, f"{what}: {r.text[:300]}")
        self.assertIsInstance(err.get("message"), str, f"{what}: {r.text[:300]}")
        if field is not None:
            self.assertEqual(err.get("field"), field, f"{what}: {r.text[:300]}")

    def assertRefused(self, r, statuses, what=""):
        """A request the connection layer refuses before routing: one of
        statuses, the API's JSON error, and the connection closes."""
        self.assertIn(r.status, statuses, f"{what}: {r.status} {r.text[:200]}")
        self.assertEqual(r.header("connection", "").lower(), "close", f"{what}: {r.headers}")
        self.assertIn("application/json", r.header("content-type", ""), f"{what}: {r.headers}")
        self.assertIsInstance(r.json, dict, f"{what}: body is not JSON: {r.body[:300]!r}")
        err = r.json.get("error")
        self.assertIsInstance(err, dict, f"{what}: {r.text[:300]}")
        # only the API's codes (API.md "Conventions"), none of our own
        self.assertIn(err.get("code"), ("validation_failed", "too_large", "method_not_allowed"),
                      f"{what}: {r.text[:300]}")
        self.assertIsInstance(err.get("message"), str, f"{what}: {r.text[:300]}")

    def send(self, method, path, body, ct="application/json", token="admin"):
        """A request with a raw (bytes) body via the harness."""
        return self.request(method, path, body, token=token, headers={"Content-Type": ct})

    def count(self, sql):
        return int(self.psql(sql).strip())


# ---------------------------------------------------------------------------


class MalformedJson(HostileBase):
    ENDPOINTS = [("POST", "/v1/accounts"), ("POST", "/v1/payments"), ("POST", "/v1/authorize"),
                 ("PATCH", f"/v1/accounts/ext:{ACC}"), ("PUT", f"/v1/accounts/ext:{ACC}/limits"),
                 ("POST", f"/v1/accounts/ext:{ACC}/suspend")]

    def test_object_endpoints(self):
        before = self.count("SELECT count(*) FROM accounts")
        for method, path in self.ENDPOINTS:
            for body in MALFORMED + [b"[]", b"[1,2]", b'["a"]']:
                what = f"{method} {path} {body[:40]!r}"
                with self.subTest(what):
                    r = self.send(method, path, body)
                    self.assertJsonError(r, 400, "invalid_json", what=what)
            self.healthy(f"malformed bodies to {method} {path}")
        self.assertEqual(self.count("SELECT count(*) FROM accounts"), before)
        self.assertEqual(self.request("GET", f"/v1/accounts/ext:{ACC}").json["status"], "active")

    def test_events(self):
        for body in MALFORMED + [b'{"events":[],"x":1}', b'{"events":{}}', b'{"x":[]}', b"{}",
                                 b'{"events":"[]"}']:
            with self.subTest(body=body[:40]):
                r = self.send("POST", "/v1/events", body)
                self.assertJsonError(r, 400, "invalid_json", what=repr(body[:40]))
        # No events at all: 400 validation_failed (field "events").
        for body, ct in ((b"[]", "application/json"), (b'{"events":[]}', "application/json"),
                         (b"", "application/x-ndjson"), (b"\n\n  \r\n\t\n", "application/x-ndjson")):
            with self.subTest(empty=body, ct=ct):
                r = self.send("POST", "/v1/events", body, ct=ct)
                self.assertJsonError(r, 400, "validation_failed", field="events", what=repr(body))
        self.healthy("malformed event batches")

    def test_ndjson_bad_lines_rejected_one_by_one(self):
        good1, good2 = event(), event()
        lines = [json.dumps(good1).encode(), b'{"id":', b'{"a": NaN}', b"[" * 5000,
                 b'{"id":"x"} trailing', b'{"name":"\xff"}', b"/* c */", b"null", b"42",
                 json.dumps(good2).encode()]
        r = self.send("POST", "/v1/events", b"\n".join(lines) + b"\n", ct="application/x-ndjson")
        self.assertEqual(r.status, 200, r.text)
        st = [x["status"] for x in r.json["results"]]
        self.assertEqual(st, ["accepted"] + ["rejected"] * 8 + ["accepted"], r.text)
        for x in r.json["results"][1:-1]:
            self.assertEqual(x["reason"], "invalid_field", x)
        self.assertEqual((r.json["accepted"], r.json["rejected"]), (2, 8))
        self.healthy("ndjson with bad lines")


class WrongTypes(HostileBase):
    NOT_STRING = [1, -1, 1.5, True, False, [], {}, ["x"], {"a": "b"}]
    NOT_AMOUNT = [100, 0.5, True, [], {}, ["1"], "abc", "1e3", "1,5", "1.0000001", "", " 1",
                  "1 ", "0x10", "+1", "--1", "1..2", ".5", "5.", "NaN", "Infinity",
                  "99999999999999999999999", "1e400", "\u0661"]
    NOT_RATE = [True, [], {}, "abc", "-1", "1.00001", "1e400", "", "NaN", 12]

    def test_accounts(self):
        cases = []
        for f in ("external_ref", "name", "currency", "jurisdiction"):
            cases += [(f, v) for v in self.NOT_STRING + [None, "", "a\nb", "\u0007"]]
        cases += [("external_ref", " "), ("external_ref", "\t  ")]  # blank names no one (R2.1)
        cases += [("external_ref", "x" * 129), ("name", "n" * 201), ("currency", "EURO"),
                  ("currency", "eu"), ("currency", "€"), ("jurisdiction", "D"),
                  ("jurisdiction", "DEU-NY-X"), ("jurisdiction", "??")]
        for f in ("monthly_limit", "total_limit"):
            cases += [(f, v) for v in self.NOT_AMOUNT + ["-1"]]
        cases += [("contractual_rate", v) for v in self.NOT_RATE]
        cases += [("payment_terms_days", v) for v in
                  ["15", 1.5, 15.5, True, [], {}, -1, 366, 9223372036854775807,
                   -9223372036854775808, 1e308]]
        cases += [("unknown", 1), ("Name", "x"), ("external_ref ", "x"), ("", 1)]
        for i, (f, v) in enumerate(cases):
            ext = f"WT-{i}"
            body = account_body(ext)
            body[f] = v
            what = f"{f}={v!r}"
            with self.subTest(what):
                r = self.request("POST", "/v1/accounts", body)
                self.assertJsonError(r, 400, "validation_failed", field=f or None, what=what)
        self.assertEqual(self.count("SELECT count(*) FROM accounts WHERE external_ref LIKE 'WT-%'"), 0)
        # PATCH: the same rules for the patchable fields; the account is unchanged.
        before = self.request("GET", f"/v1/accounts/ext:{ACC}").json
        for f, v in [("name", 1), ("name", ""), ("name", []), ("jurisdiction", 7),
                     ("contractual_rate", True), ("payment_terms_days", "3"),
                     ("currency", "USD"), ("status", "terminated"), ("id", str(uuid.uuid4()))]:
            with self.subTest(patch=f, value=v):
                r = self.request("PATCH", f"/v1/accounts/ext:{ACC}", {f: v})
                self.assertJsonError(r, 400, "validation_failed", field=f, what=f"PATCH {f}={v!r}")
        self.assertEqual(self.request("GET", f"/v1/accounts/ext:{ACC}").json, before)
        self.healthy("wrong account field types")

    def test_payments(self):
        cases = []
        for f in ("id", "account", "reference"):
            cases += [(f, v) for v in self.NOT_STRING + [None, "", "a\nb"]]
        cases += [("id", "not-a-uuid"), ("id", "{" + str(uuid.uuid4()) + "}"), ("id", "x" * 37),
                  ("account", "a" * 141), ("account", "not-a-uuid"), ("reference", "r" * 201)]
        cases += [("amount", v) for v in self.NOT_AMOUNT + [None, "0", "-5", "0.000000"]]
        cases += [("received_at", v) for v in
                  self.NOT_STRING + [None, "", "yesterday", 1688169600, "2023-06-30",
                                     "2023-06-30T00:00:00", "2023-02-30T00:00:00Z",
                                     "2023-06-30T25:00:00Z", "2099-01-01T00:00:00Z"]]
        cases += [("invoice", v) for v in self.NOT_STRING + ["", "\u0001"]]
        cases += [("unknown", "x")]
        before = self.count("SELECT count(*) FROM payments")
        for f, v in cases:
            what = f"{f}={v!r}"
            with self.subTest(what):
                r = self.request("POST", "/v1/payments", payment(**{f: v}))
                self.assertJsonError(r, 400, "validation_failed", field=f, what=what)
        self.assertEqual(self.count("SELECT count(*) FROM payments"), before)
        self.healthy("wrong payment field types")

    def test_events(self):
        cases = [("id", v, "invalid_field") for v in self.NOT_STRING + [None, DROP, "", "x", "x" * 100]]
        cases += [("account", v, "invalid_field") for v in self.NOT_STRING + [None, DROP, "", "a" * 141]]
        cases += [("amount", v, "invalid_amount") for v in self.NOT_AMOUNT + [None, DROP, "0", "-1"]]
        cases += [("occurred_at", v, "invalid_time") for v in
                  self.NOT_STRING + [None, DROP, "", "2023-06-30", "2023-06-30T12:00:00", "garbage",
                                     1688169600, "2099-01-01T00:00:00Z", "2000-01-01T00:00:00Z"]]
        cases += [("service", v, "invalid_field") for v in
                  self.NOT_STRING + [None, DROP, "", "a b", "x" * 65, "\u00e9", "a,b", 'a"b']]
        cases += [("destination", v, "invalid_field") for v in self.NOT_STRING + ["", "a b", "{x}"]]
        cases += [("quantity", v, "invalid_field") for v in
                  [0, -1, 1.5, "2", True, [], {}, 2147483648, None]]
        cases += [("extra", 1, "invalid_field")]
        events = [event(**{f: v}) for f, v, _ in cases]
        for i in range(0, len(events), MAX_EVENTS):
            part, exp = events[i:i + MAX_EVENTS], cases[i:i + MAX_EVENTS]
            r = self.request("POST", "/v1/events", part, token="platform")
            self.assertEqual(r.status, 200, r.text[:500])
            self.assertEqual(r.json["accepted"], 0, r.text[:2000])
            for (f, v, reason), ev, res in zip(exp, part, r.json["results"]):
                with self.subTest(field=f, value=v):
                    self.assertEqual(res["status"], "rejected", res)
                    self.assertEqual(res["reason"], reason, res)
                    self.assertIsInstance(res.get("message"), str, res)
                    want_id = ev["id"][:64] if isinstance(ev.get("id"), str) else None
                    self.assertEqual(res["id"], want_id, res)
        # Not an object at all, as an element: rejected one by one.
        r = self.request("POST", "/v1/events", [1, "x", None, [], [event()], True], token="platform")
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual([x["reason"] for x in r.json["results"]], ["invalid_field"] * 6, r.text)
        self.healthy("wrong event field types")

    def test_nul_in_strings_is_invalid_json(self):
        # jansson refuses \u0000 (no JSON_ALLOW_NUL): the whole body is 400.
        for path, body, tok in (("/v1/accounts", account_body("NUL-1", name="a\u0000b"), "admin"),
                                ("/v1/accounts", {"a\u0000b": 1}, "admin"),
                                ("/v1/payments", payment(reference="\u0000"), "admin"),
                                ("/v1/events", [event(service="sms\u0000")], "platform")):
            with self.subTest(path=path, body=body):
                r = self.request("POST", path, body, token=tok)
                self.assertJsonError(r, 400, "invalid_json", what=path)
        nd = (json.dumps(event()) + "\n" + json.dumps(event(account="ext:\u0000"))).encode()
        r = self.send("POST", "/v1/events", nd, ct="application/x-ndjson", token="platform")
        self.assertEqual([x["status"] for x in r.json["results"]], ["accepted", "rejected"], r.text)
        self.assertEqual(self.count("SELECT count(*) FROM accounts WHERE external_ref = 'NUL-1'"), 0)
        self.healthy("NUL in strings")


class Nesting(HostileBase):
    def test_deep_nesting(self):
        deep = [b"[" * 100000, b"[" * 100000 + b"]" * 100000, b'{"a":' * 50000,
                b'{"name":' + b"[" * 100000, b'{"events":' + b"[" * 100000]
        for method, path in MalformedJson.ENDPOINTS + [("POST", "/v1/events")]:
            for body in deep:
                what = f"{method} {path} {body[:12]!r}...({len(body)} bytes)"
                with self.subTest(what):
                    r = self.send(method, path, body)
                    self.assertJsonError(r, 400, "invalid_json", what=what)
                    self.assertIn("depth", r.json["error"]["message"], r.text)
            self.healthy(f"deep nesting to {path}")

    def test_allowed_depth_is_still_validated(self):
        # Within jansson's depth limit (2048): parsed, then refused by type.
        nested = b"[" * 1000 + b"]" * 1000
        body = json.dumps(account_body("NEST-1", name="@")).encode().replace(b'"@"', nested)
        r = self.send("POST", "/v1/accounts", body)
        self.assertJsonError(r, 400, "validation_failed", field="name")
        one = json.dumps(event(amount="@")).encode()
        evs = b"[" + b",".join(one.replace(b'"@"', b'{"a":' + nested + b"}") for _ in range(50)) + b"]"
        r = self.send("POST", "/v1/events", evs, token="platform")
        self.assertEqual(r.status, 200, r.text[:300])
        self.assertEqual(r.json["rejected"], 50)
        self.healthy("nested values")


class Utf8(HostileBase):
    def test_invalid_utf8_is_invalid_json(self):
        for bad in BAD_UTF8:
            bodies = [
                ("POST", "/v1/accounts", b'{"external_ref":"U-1","name":"' + bad + b'","currency":"EUR",'
                                         b'"jurisdiction":"DE"}'),
                ("POST", "/v1/accounts", b'{"' + bad + b'":1}'),
                ("POST", "/v1/payments", b'{"reference":"' + bad + b'"}'),
                ("POST", "/v1/events", b'[{"service":"' + bad + b'"}]'),
                ("POST", "/v1/events", b'{"events":[],"' + bad + b'":1}'),
            ]
            for method, path, body in bodies:
                with self.subTest(path=path, body=body):
                    r = self.send(method, path, body)
                    self.assertJsonError(r, 400, "invalid_json", what=repr(body))
                    r.body.decode("utf-8")  # the error itself is valid UTF-8
            # NDJSON: that line alone is rejected.
            nd = json.dumps(event()).encode() + b'\n{"service":"' + bad + b'"}\n'
            r = self.send("POST", "/v1/events", nd, ct="application/x-ndjson")
            self.assertEqual(r.status, 200, r.text)
            self.assertEqual([x["status"] for x in r.json["results"]], ["accepted", "rejected"])
        self.assertEqual(self.count("SELECT count(*) FROM accounts WHERE external_ref = 'U-1'"), 0)
        self.healthy("invalid UTF-8")

    def test_text_cut_inside_a_character(self):
        # Error texts quote client keys cut to 40 bytes and event ids cut to
        # 64 bytes; a cut inside a multi-byte character must not cost the
        # reply its JSON (daemon/http.c http_utf8_clean, common/events.c).
        key = "a" * 39 + "\u00e9\u00e9"
        r = self.request("POST", "/v1/accounts", {key: 1})
        self.assertJsonError(r, 400, "validation_failed", what="unknown key cut in a character")
        self.assertTrue(r.json["error"]["message"].endswith(": unknown field"), r.text)
        self.assertTrue(r.json["error"]["field"].startswith("a" * 39), r.text)
        r = self.request("POST", "/v1/payments", payment(**{"a" + "\U0001F600" * 20: 1}))
        self.assertJsonError(r, 400, "validation_failed", what="4-byte characters in a key")
        ev_id = "a" + "\u00e9" * 40
        evs = [event(id=ev_id), event(**{key: 1}), event(**{"a" + "\U0001F600" * 30: 1})]
        r = self.request("POST", "/v1/events", evs, token="platform")
        self.assertEqual(r.status, 200, r.text)
        res = r.json["results"]
        self.assertEqual(res[0]["id"], "a" + "\u00e9" * 31, res[0])  # 63 of the first 64 bytes
        for x in res:
            self.assertEqual(x["status"], "rejected", x)
            self.assertIsInstance(x.get("message"), str, x)
        self.assertTrue(res[1]["message"].startswith("a" * 39), res[1])
        # jansson's error text quotes the input up to the error, which can
        # end inside a character (here: a bad \u escape before "é").
        for path, tok in (("/v1/accounts", "admin"), ("/v1/events", "platform")):
            r = self.send("POST", path, b'{"a\\u0\xc3\xa9":1}', token=tok)
            self.assertJsonError(r, 400, "invalid_json", what=path)
            self.assertIn("invalid escape", r.json["error"]["message"], r.text)
        r = self.send("POST", "/v1/events", json.dumps(event()).encode() + b'\n{"a\\u0\xc3\xa9":1}\n',
                      ct="application/x-ndjson", token="platform")
        self.assertEqual(r.status, 200, r.text)
        self.assertIn("invalid escape", r.json["results"][1].get("message", ""), r.text)
        self.healthy("keys cut inside a character")

    def test_non_ascii_round_trips(self):
        name = "Grüße, Łódź — 東京 🚀 \u200b\u202e"
        r = self.request("POST", "/v1/accounts", account_body("UTF8-1", name=name))
        self.assertEqual(r.status, 201, r.text)
        self.assertEqual(r.json["name"], name)
        self.assertEqual(self.request("GET", "/v1/accounts/ext:UTF8-1").json["name"], name)
        ref = "Ref-Ünïcødé-✓"
        r = self.request("POST", "/v1/accounts", account_body(ref))
        self.assertEqual(r.status, 201, r.text)
        g = self.request("GET", "/v1/accounts/ext:" + urllib.parse.quote(ref, safe=""))
        self.assertEqual(g.status, 200, g.text)
        self.assertEqual(g.json["external_ref"], ref)
        self.healthy("non-ASCII text")


class HugeNumbers(HostileBase):
    def test_numbers_jansson_refuses(self):
        for num in (b"1e400", b"-1e400", b"99999999999999999999999", b"-99999999999999999999999",
                    b"1" * 5000, b"0." + b"0" * 5000 + b"1e-400"):
            bodies = [("/v1/accounts", b'{"external_ref":"N-1","name":"n","currency":"EUR",'
                                       b'"jurisdiction":"DE","payment_terms_days":' + num + b"}"),
                      ("/v1/payments", b'{"amount":' + num + b"}"),
                      ("/v1/events", b'[{"quantity":' + num + b"}]")]
            for path, body in bodies:
                with self.subTest(path=path, num=num[:30]):
                    r = self.send("POST", path, body)
                    if num.startswith(b"0."):  # underflows to 0.0: valid JSON, wrong type
                        self.assertIn(r.status, (200, 400), r.text)
                        if r.status == 400:
                            self.assertEqual(r.json["error"]["code"], "validation_failed", r.text)
                    else:
                        self.assertJsonError(r, 400, "invalid_json", what=f"{path} {num[:30]!r}")
        self.healthy("numbers out of range")

    def test_huge_amount_strings(self):
        for v in ("99999999999999999999999", "1e400", "9223372036854.775808", "-9223372036854.775809",
                  "9" * 1000, "0." + "0" * 1000 + "1"):
            with self.subTest(v=v[:30]):
                r = self.request("POST", "/v1/accounts", account_body("BIG-X", monthly_limit=v))
                self.assertJsonError(r, 400, "validation_failed", field="monthly_limit", what=v[:30])
                r = self.request("POST", "/v1/payments", payment(amount=v))
                self.assertJsonError(r, 400, "validation_failed", field="amount", what=v[:30])
                r = self.request("POST", "/v1/authorize", {"account": f"ext:{ACC}", "amount": v},
                                 token="platform")
                self.assertJsonError(r, 400, "validation_failed", field="amount", what=v[:30])
                r = self.request("POST", "/v1/events", [event(amount=v)], token="platform")
                self.assertEqual(r.json["results"][0]["reason"], "invalid_amount", r.text)
        self.healthy("huge amount strings")

    TOP = "9223372036854.775807"  # INT64_MAX micro-units: the largest amount that parses

    def test_int64_edge_amounts(self):
        # As limits, authorizations and usage: answered, never a 5xx.
        top = self.TOP
        r = self.request("POST", "/v1/accounts", account_body("BIG-1", monthly_limit=top, total_limit=top))
        self.assertEqual(r.status, 201, r.text)
        for amount in (top, "1", top):
            r = self.request("POST", "/v1/authorize", {"account": "ext:BIG-1", "amount": amount},
                             token="platform")
            self.assertEqual(r.status, 200, r.text)
            self.assertTrue(r.json["allowed"], r.text)
        r = self.request("POST", "/v1/accounts", account_body("BIG-3"))
        self.assertEqual(r.status, 201, r.text)
        # one event is at most 1,000,000 (common/events.h EVENTS_MAX_AMOUNT)
        r = self.request("POST", "/v1/events", [event(account="ext:BIG-3", amount=top),
                                                event(account="ext:BIG-3", amount="1000000")],
                         token="platform")
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json["results"][0]["reason"], "invalid_amount", r.text)
        self.assertEqual(r.json["results"][1]["status"], "accepted", r.text)
        for path in ("/v1/accounts/ext:BIG-1", "/v1/accounts/ext:BIG-3"):
            g = self.request("GET", path)
            self.assertEqual(g.status, 200, g.text)
        self.healthy("int64 edge amounts")

    # R3.2, R3.4: one bad event never rejects its neighbours. An amount that
    # would overflow the limit arithmetic is refused for that event alone
    # (above the per-event maximum); the alert percentages are numeric.
    def test_overflowing_event_spares_its_neighbours(self):
        r = self.request("POST", "/v1/accounts", account_body("BIG-2", total_limit="100"))
        self.assertEqual(r.status, 201, r.text)
        try:
            r = self.request("POST", "/v1/events", [event(account="ext:BIG-2", amount="92233720369"),
                                                    event()], token="platform")
            self.assertEqual(r.status, 200, r.text)
            self.assertEqual(r.json["results"][1]["status"], "accepted", r.text)
        finally:
            self.healthy("an overflowing event")


class Oversized(HostileBase):
    def padded(self, size):
        base = json.dumps(account_body(f"PAD-{size}")).encode()
        return base[:-1] + b" " * (size - len(base)) + b"}"

    def test_body_over_limit_is_413_json(self):
        for path in ("/v1/accounts", "/v1/events", "/v1/payments"):
            for size in (MAX_BODY + 1, MAX_BODY + 64 * 1024):
                with self.subTest(path=path, size=size):
                    r = self.send("POST", path, self.padded(size))
                    self.assertJsonError(r, 413, "too_large", what=f"{path} {size}")
        self.assertEqual(self.count("SELECT count(*) FROM accounts WHERE external_ref LIKE 'PAD-%'"), 0)
        self.healthy("bodies over the limit")

    def test_body_far_over_limit_413(self):
        # Far more than max_body_bytes: refused by its Content-Length before
        # the body is read (daemon/httpd.c), 413 too_large, and the
        # connection closes (after reading and discarding what the client
        # still sends, so that the answer is not lost to a reset).
        size = MAX_BODY + 1024 * 1024 + 4096
        head = (f"POST /v1/accounts HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {ADMIN}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n").encode()
        r = self.raw1([head] + [b" " * 65536] * (size // 65536 + 1))
        self.assertRefused(r, (413,), "1.3 MiB body")
        self.assertEqual(r.json["error"]["code"], "too_large", r.text)
        r = self.raw1(head.replace(str(size).encode(), b"99999999999999"))
        self.assertRefused(r, (400, 413), "Content-Length 99999999999999")
        self.healthy("huge bodies")

    def test_too_many_events_is_413_json(self):
        evs = [event() for _ in range(MAX_EVENTS + 1)]
        r = self.request("POST", "/v1/events", evs, token="platform")
        self.assertJsonError(r, 413, "too_large")
        r = self.request("POST", "/v1/events", {"events": evs}, token="platform")
        self.assertJsonError(r, 413, "too_large")
        nd = "\n".join(json.dumps(e) for e in evs).encode()
        r = self.send("POST", "/v1/events", nd, ct="application/x-ndjson", token="platform")
        self.assertJsonError(r, 413, "too_large")
        ids = "','".join(e["id"] for e in evs)
        self.assertEqual(self.count(f"SELECT count(*) FROM events WHERE id IN ('{ids}')"), 0)
        self.healthy("too many events")

    def test_oversized_headers(self):
        # Header block over 16 KiB (daemon/httpd.c HTTPD_MAX_HEAD): 431
        # too_large before routing, and the connection closes.
        cases = {
            "64 KiB header": b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n",
            "3000 headers": b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
                            + b"".join(b"X-%d: y\r\n" % i for i in range(3000)) + b"\r\n",
            "64 KiB token": (b"GET /v1/accounts HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
                             + b"t" * 65536 + b"\r\n\r\n"),
            "64 KiB path": b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
            "no end of headers": b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"X: " + b"b" * 20000,
        }
        for what, req in cases.items():
            with self.subTest(what):
                r = self.raw1(req)
                self.assertRefused(r, (400, 413, 431), what)
            self.healthy(what)
        # Under the limit: the daemon's own answers.
        r = self.raw1(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
        self.assertEqual(r.status, 200, r.text)
        r = self.raw1(b"GET /" + b"a" * 4096 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        self.assertJsonError(r, 404, "not_found")
        r = self.raw1(b"GET /v1/accounts HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
                      + b"t" * 8000 + b"\r\n\r\n")
        self.assertJsonError(r, 401, "unauthorized")

    def test_bad_framing_400(self):
        auth = f"Authorization: Bearer {ADMIN}\r\n".encode()
        cases = {
            "Content-Length -1": b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
            "Content-Length abc": b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
            "header without colon": b"GET /healthz HTTP/1.1\r\nHost: t\r\nBogus\r\n\r\n",
            "NUL in request line": b"GET /healthz\x00 HTTP/1.1\r\nHost: t\r\n\r\n",
            "bad chunk size": (b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\n" + auth
                               + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"),
            "HTTP/0.9": b"GET /healthz\r\n\r\n",
            "HTTP/2.0": b"GET /healthz HTTP/2.0\r\n\r\n",
            "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\r\n\r\n",
        }
        for what, req in cases.items():
            with self.subTest(what):
                r = self.raw1(req)
                self.assertRefused(r, (400, 413, 505), what)
            self.healthy(what)
        # Well-formed chunked body: the daemon's answer.
        r = self.raw1(b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\n" + auth
                      + b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n")
        self.assertJsonError(r, 400, "validation_failed", field="a")

    def test_abandoned_requests(self):
        # Half a request, then the client goes away: nothing to answer.
        auth = f"Authorization: Bearer {ADMIN}\r\n".encode()
        for req in (b"GET /healthz HTTP/1.1\r\nHost:",
                    b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\n" + auth + b"Content-Length: 100\r\n\r\n{\"a",
                    b"POST /v1/events HTTP/1.1\r\nHost: t\r\n" + auth
                    + b"Transfer-Encoding: chunked\r\n\r\n10\r\n[1,2"):
            with self.subTest(req=req[:40]):
                rs = self.exchange(req, half_close=True, timeout=3)
                self.assertTrue(rs == [] or [r.status for r in rs] == [400], rs)
            self.healthy("an abandoned request")


class PathTricks(HostileBase):
    def test_paths_404(self):
        for path in ("/v1/../healthz", "/v1/%2e%2e/healthz", "/%2e%2e/healthz", "//healthz",
                     "///", "/healthz/", "/./healthz", "/healthz%00", "/healthz%2500", "/healthz;x",
                     "/HEALTHZ", "/v1/accounts/%2e%2e",
                     "/" + "a/" * 1000, "/v1/accounts/" + "x" * 3000 + "/history/extra"):
            with self.subTest(path=path[:60]):
                r = self.raw1(f"GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {ADMIN}\r\n\r\n"
                              .encode())
                self.assertJsonError(r, 404, "not_found", what=path[:60])
        self.healthy("path tricks")

    def test_odd_request_targets(self):
        cases = [("*", 404), ("healthz", 404), ("http://evil.example/healthz", 200),
                 ("/healthz?%00=1", 200), ("/healthz#frag", 200)]
        for target, status in cases:
            with self.subTest(target=target):
                r = self.raw1(f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                self.assertEqual(r.status, status, r.text)
                self.assertIsInstance(r.json, dict, r.text)
        self.healthy("odd request targets")

    def test_captures(self):
        # Percent-decoded path parameters: NUL, bad escapes, invalid UTF-8,
        # SQL and very long values are 400 or 404, never 500.
        for cap in ("ext:A%00B", "%00", "ext:%ZZ", "ext:%", "ext:%C3%28", "ext:%FF", "%C0%AF",
                    "ext:%27%3B%20DROP%20TABLE%20accounts%3B--", "ext:" + "x" * 5000,
                    "00000000-0000-0000-0000-00000000000g", "ext:", "ext:%20", "%2F",
                    "11111111-1111-1111-1111-111111111111%00", "..%2f..%2fhealthz"):
            for sub in ("", "/history", "/limit-changes"):
                path = f"/v1/accounts/{cap}{sub}"
                with self.subTest(path=path[:80]):
                    r = self.request("GET", path)
                    self.assertIn(r.status, (400, 404), r.text[:300])
                    self.assertJsonError(r, r.status, "validation_failed" if r.status == 400 else "not_found",
                                         what=path[:80])
            r = self.request("POST", f"/v1/accounts/{cap}/suspend", {"note": "x"})
            self.assertIn(r.status, (400, 404), r.text[:300])
        self.assertEqual(self.request("GET", f"/v1/accounts/ext:{ACC}").json["status"], "active")
        self.healthy("path parameters")

    def test_query_strings(self):
        for q in ("limit=%zz", "limit=abc", "limit=1e400", "limit=-1", "limit=0", "limit=1001",
                  "limit=99999999999999999999", "cursor=garbage", "cursor=%00", "cursor=" + "A" * 5000,
                  "status=%3Cscript%3E", "status=active&status=suspended", "=", "&&&", "limit",
                  "limit=1;DROP%20TABLE%20accounts", "limit=1'--", "%ff=%fe", "cursor=%FF", "%C3%28=1"):
            with self.subTest(q=q[:40]):
                r = self.request("GET", "/v1/accounts?" + q)
                self.assertIn(r.status, (200, 400), r.text[:300])
                if r.status == 400:
                    self.assertJsonError(r, 400, "validation_failed", what=q[:40])
                else:
                    self.assertIsInstance(r.json.get("items"), list, r.text[:300])
        # Query values that are not UTF-8 never reach PostgreSQL (which would
        # refuse them: that was a 500).
        for path in ("/v1/payments?account=ext:%FF", "/v1/invoices?account=ext:%C3%28",
                     "/v1/accounts?cursor=%C0%AF", "/v1/invoices?period=%ED%A0%80"):
            with self.subTest(path=path):
                self.assertJsonError(self.request("GET", path), 400, "validation_failed", what=path)
        # A parameter the path does not take is refused, named: a misspelt
        # filter used to answer the unfiltered list (GET /v1/invoices?acount=
        # listed every invoice). Probes may add their own to /healthz.
        for path, field in (("/v1/invoices?acount=ext:X", "acount"),
                            ("/v1/payments?account=ext:X&limt=5", "limt"),
                            ("/v1/reports/exposure?curency=EUR", "curency"),
                            ("/v1/accounts/ext:NOBODY?format=html", "format"),
                            ("/v1/notifications?cursor=5", "cursor")):
            with self.subTest(path=path):
                r = self.request("GET", path)
                self.assertJsonError(r, 400, "validation_failed", what=path)
                self.assertEqual(r.json["error"].get("field"), field, r.text)
                self.assertEqual(r.json["error"]["message"], f"{field}: unknown query parameter")
        r = self.request("POST", "/v1/payments?dry_run=1",
                         {"id": str(uuid.uuid4()), "account": "ext:NOBODY", "amount": "1",
                          "received_at": "2026-01-01T00:00:00Z", "reference": "x"})
        self.assertJsonError(r, 400, "validation_failed", what="POST with a query")
        self.assertEqual(r.json["error"].get("field"), "dry_run", r.text)
        self.assertEqual(self.request("GET", "/healthz?probe=lb", token=None).status, 200)
        self.healthy("query strings")


class SqlStrings(HostileBase):
    STRINGS = ["'; DROP TABLE accounts;--", "\\x00", "\\\\x00", "Robert'); DROP TABLE payments;--",
               "' OR '1'='1", "$1", "$$; SELECT 1; $$", "%s%n%x", "E'\\x41'", "\\", "'", '"',
               "`id`", "--", "/*", "1; SELECT pg_sleep(10)", "\\N", "NULL", "null", "\u00a0",
               "a\\u0000b"]

    def test_stored_verbatim(self):
        for i, s in enumerate(self.STRINGS):
            ext = f"SQL-{i}-{s}"
            with self.subTest(s=s):
                r = self.request("POST", "/v1/accounts", account_body(ext, name=s))
                self.assertEqual(r.status, 201, r.text)
                self.assertEqual((r.json["external_ref"], r.json["name"]), (ext, s))
                acc = r.json["id"]
                for path in (f"/v1/accounts/{acc}", "/v1/accounts/ext:" + urllib.parse.quote(ext, safe="")):
                    g = self.request("GET", path)
                    self.assertEqual(g.status, 200, f"{path}: {g.text}")
                    self.assertEqual((g.json["external_ref"], g.json["name"]), (ext, s))
                r = self.request("PATCH", f"/v1/accounts/{acc}", {"name": s + s})
                self.assertEqual(r.status, 200, r.text)
                self.assertEqual(r.json["name"], s + s)
                r = self.request("POST", f"/v1/accounts/{acc}/suspend", {"note": s})
                self.assertEqual(r.status, 200, r.text)
                h = self.request("GET", f"/v1/accounts/{acc}/history")
                self.assertEqual(h.status, 200, h.text)
                self.assertEqual(self.psql(f"SELECT name FROM accounts WHERE id = '{acc}'")
                                 .rstrip("\n"), s + s)
        # Payment references too.
        for s in self.STRINGS[:6]:
            with self.subTest(reference=s):
                p = payment(reference=s)
                r = self.request("POST", "/v1/payments", p)
                self.assertEqual(r.status, 201, r.text)
                r2 = self.request("POST", "/v1/payments", p)  # idempotent replay
                self.assertEqual(r2.status, 200, r2.text)
                self.assertEqual(r2.json, r.json)
        lst = self.request("GET", f"/v1/payments?account=ext:{ACC}&limit=1000")
        self.assertEqual(lst.status, 200, lst.text)
        self.assertTrue(set(self.STRINGS[:6]) <= {x.get("reference") for x in lst.json["items"]},
                        lst.text[:2000])
        for table in ("accounts", "payments", "events"):
            self.assertGreaterEqual(self.count(f"SELECT count(*) FROM {table}"), 0)
        self.healthy("SQL-looking strings")


class Protocol(HostileBase):
    def test_unknown_methods(self):
        # Methods we do not know: 405 method_not_allowed (or 400 for a
        # malformed method token) before routing, and the connection closes.
        for m in (b"FOO", b"OPTIONS", b"TRACE", b"CONNECT", b"PROPFIND", b"get", b"BREW", b"G\x00T",
                  b"X" * 1000):
            with self.subTest(method=m[:20]):
                target = b"127.0.0.1:80" if m == b"CONNECT" else b"/healthz"
                r = self.raw1(m + b" " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n")
                self.assertRefused(r, (400, 405), m[:20])
            self.healthy(f"method {m[:20]!r}")
        # A method the daemon knows on a path without it: the API's 405 JSON.
        r = self.raw1(b"DELETE /v1/accounts HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
                      + ADMIN.encode() + b"\r\n\r\n")
        self.assertEqual(r.status, 405, r.text)
        self.assertIsInstance(r.json.get("error"), dict, r.text)
        r = self.request("HEAD", "/healthz", token=None)
        self.assertEqual(r.status, 200, r.text)

    def test_http10_without_host(self):
        r = self.raw1(b"GET /healthz HTTP/1.0\r\n\r\n")
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json, {"status": "ok"})
        r = self.raw1(b"GET /v1/accounts/ext:" + ACC.encode() + b" HTTP/1.0\r\nAuthorization: Bearer "
                      + ADMIN.encode() + b"\r\n\r\n")
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(r.json["external_ref"], ACC)
        body = json.dumps(account_body("H10-1")).encode()
        r = self.raw1(b"POST /v1/accounts HTTP/1.0\r\nAuthorization: Bearer " + ADMIN.encode()
                      + b"\r\nContent-Type: application/json\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\n\r\n" + body)
        self.assertEqual(r.status, 201, r.text)
        r = self.raw1(b"GET /healthz HTTP/1.1\r\n\r\n")  # HTTP/1.1 without Host: allowed (as evhttp did)
        self.assertEqual(r.status, 200, r.text)
        self.healthy("HTTP/1.0")

    def test_pipelined(self):
        auth = b"Authorization: Bearer " + ADMIN.encode() + b"\r\n"
        body = json.dumps(account_body("PIPE-1")).encode()
        reqs = (b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
                + b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\n" + auth
                + b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
                + b"\r\n\r\n" + body
                + b"GET /v1/accounts/ext:PIPE-1 HTTP/1.1\r\nHost: t\r\n" + auth + b"\r\n"
                + b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\n" + auth
                + b"Content-Type: application/json\r\nContent-Length: 6\r\n\r\n{\"a\":1"
                + b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"
                + b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        rs = self.exchange(reqs, expect=6)
        self.assertEqual([r.status for r in rs], [200, 201, 200, 400, 404, 200], rs)
        self.assertEqual(rs[2].json["id"], rs[1].json["id"])
        self.assertEqual(rs[3].json["error"]["code"], "invalid_json")
        # The same, one byte per write.
        body = json.dumps(account_body("BYTE-1")).encode()
        req = (b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\n" + auth
               + b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
               + b"\r\n\r\n" + body + b"GET /v1/accounts/ext:BYTE-1 HTTP/1.1\r\nHost: t\r\n" + auth + b"\r\n")
        rs = self.exchange([req[i:i + 1] for i in range(len(req))], expect=2, delay=0.0005)
        self.assertEqual([r.status for r in rs], [201, 200], rs)
        self.assertEqual(rs[1].json["name"], "Customer BYTE-1")
        self.healthy("pipelined and 1-byte requests")

    def test_expect_continue(self):
        # curl sends "Expect: 100-continue" for bodies over 1 KiB: the
        # interim answer, then the final one after the body.
        auth = b"Authorization: Bearer " + ADMIN.encode() + b"\r\n"
        body = json.dumps(account_body("EXP-1", name="e" * 100)).encode()
        head = (b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\n" + auth
                + b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        s = socket.create_connection(("127.0.0.1", self.daemon.port), timeout=10)
        try:
            s.sendall(head)
            data = b""
            while b"\r\n\r\n" not in data:
                part = s.recv(65536)
                self.assertTrue(part, data)
                data += part
            self.assertTrue(data.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), data)
            data = data[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
            s.sendall(body)
            while not parse_responses(data):
                part = s.recv(65536)
                self.assertTrue(part, data)
                data += part
        finally:
            s.close()
        rs = [resp_of(*x) for x in parse_responses(data)]
        self.assertEqual([r.status for r in rs], [201], rs)
        # Over the limit: the final answer at once, no 100 Continue.
        r = self.raw1(head.replace(str(len(body)).encode(), str(MAX_BODY + 1).encode()))
        self.assertRefused(r, (413,), "Expect with a body over the limit")
        self.assertEqual(r.json["error"]["code"], "too_large", r.text)
        # Chunked bodies over the limit are refused when they get there.
        chunk = b"%x\r\n" % 65536 + b" " * 65536 + b"\r\n"
        r = self.raw1([b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\n" + auth
                       + b"Transfer-Encoding: chunked\r\n\r\n"]
                      + [chunk] * (MAX_BODY // 65536 + 2) + [b"0\r\n\r\n"])
        self.assertRefused(r, (413,), "chunked body over the limit")
        self.healthy("Expect: 100-continue")

    def test_head_and_keep_alive(self):
        # HEAD: the headers of the GET answer, no body; the connection
        # stays usable. HTTP/1.0 with keep-alive asked for: kept.
        s = socket.create_connection(("127.0.0.1", self.daemon.port), timeout=10)
        try:
            s.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                part = s.recv(65536)
                self.assertTrue(part, data)
                data += part
            head, _, rest = data.partition(b"\r\n\r\n")
            self.assertEqual(rest, b"")
            self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
            self.assertIn(b"\r\ncontent-length: 16", head.lower())
            s.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            data = b""
            while not parse_responses(data):
                part = s.recv(65536)
                self.assertTrue(part, data)
                data += part
            r = resp_of(*parse_responses(data)[0])
            self.assertEqual(r.status, 200, r.text)
            self.assertEqual(r.header("connection", "").lower(), "keep-alive", r.headers)
            self.assertTrue(r.header("x-request-id") and r.header("date"), r.headers)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                part = s.recv(65536)
                if not part:
                    break
                data += part
            rs = [resp_of(*x) for x in parse_responses(data, eof=True)]
            self.assertEqual([r.status for r in rs], [200], rs)
            self.assertEqual(rs[0].header("connection", "").lower(), "close", rs[0].headers)
        finally:
            s.close()
        self.healthy("HEAD and keep-alive")

    def test_client_gone_while_waiting(self):
        # The client sends requests that wait on the database (pipelined)
        # and leaves at once: the requests are orphaned, their answers
        # dropped (never written to freed memory: ASan checks), and the
        # ones that reached the database still happened.
        auth = b"Authorization: Bearer " + ADMIN.encode() + b"\r\n"
        for i in range(20):
            body = json.dumps(account_body(f"GONE-{i}")).encode()
            req = (b"POST /v1/accounts HTTP/1.1\r\nHost: t\r\n" + auth
                   + b"Content-Type: application/json\r\nContent-Length: "
                   + str(len(body)).encode() + b"\r\n\r\n" + body
                   + b"GET /v1/accounts/ext:GONE-" + str(i).encode() + b" HTTP/1.1\r\nHost: t\r\n"
                   + auth + b"\r\n")
            s = socket.create_connection(("127.0.0.1", self.daemon.port), timeout=5)
            s.sendall(req)
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()  # odd ones with a reset
        self.healthy("clients gone while their requests waited")
        self.daemon.wait_log(r"client went away; reply \d+ dropped", timeout=10)
        for i in range(20):
            r = self.request("GET", f"/v1/accounts/ext:GONE-{i}")
            self.assertIn(r.status, (200, 404), r.text)

    def test_many_connections_then_healthy(self):
        socks = []
        try:
            for _ in range(50):
                s = socket.create_connection(("127.0.0.1", self.daemon.port), timeout=5)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")  # never finished
                socks.append(s)
            self.healthy("50 idle half-requests")
        finally:
            for s in socks:
                s.close()
        self.healthy("50 closed half-requests")


class ZzAlive(HostileBase):
    def test_daemon_alive_and_clean(self):
        self.assertTrue(self.daemon.is_running())
        self.healthy("everything")
        r = self.request("GET", "/readyz")
        self.assertEqual(r.status, 200, r.text)
        log = self.daemon.log_text()
        for marker in harness.SANITIZER_MARKERS:
            self.assertNotIn(marker, log)


if __name__ == "__main__":
    harness.main()
