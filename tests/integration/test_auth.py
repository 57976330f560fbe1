#!/usr/bin/env python3
"""Authentication, scopes, routing and request limits end to end (API.md
"Conventions", "Test clock"; SPEC R1.6, R9): bearer tokens and scopes, 404 and
405 as JSON, the body size limit (413), path tricks, and /v1/test/clock, which
exists only when the daemon runs with --test-clock.

The module's daemon runs WITHOUT --test-clock and with server.max_body_bytes =
2048; a second daemon on the same database is started for the test clock.
"""

import http.client
import json
import socket

import harness

MAX_BODY = 2048

TOKENS = dict(harness.DEFAULT_TOKENS)
TOKENS["ingestonly"] = harness.Token("test-ingest-only-secret", "ingest")
TOKENS["writeonly"] = harness.Token("test-write-only-secret", "write")


def account_body(ext):
    return {"external_ref": ext, "name": f"Customer {ext}", "currency": "EUR", "jurisdiction": "DE"}


class AuthBase(harness.DaemonTestCase):
    CONFIG = {"server": {"max_body_bytes": MAX_BODY}}
    TEST_CLOCK = None
    TOKENS = TOKENS

    def n_accounts(self):
        return int(self.psql("SELECT count(*) FROM accounts").strip())

    def assertJsonError(self, r, status, code):
        self.assertError(r, status, code)
        self.assertIn("application/json", r.header("content-type", ""), r.headers)
        self.assertIsNotNone(r.header("x-request-id"), r.headers)

    def raw_request(self, method, path, headers=None, body=None, port=None):
        """A request on a fresh connection (for headers the harness would
        add or normalise)."""
        conn = http.client.HTTPConnection("127.0.0.1", port or self.daemon.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            raw = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            try:
                js = json.loads(raw) if raw else None
            except ValueError:
                js = None
            return harness.Response(status=resp.status, headers=hdrs, json=js,
                                    text=raw.decode("utf-8", "replace"), body=raw)
        finally:
            conn.close()

    def make_account(self, ext):
        r = self.request("POST", "/v1/accounts", account_body(ext), token="admin")
        self.assertStatus(r, 201)
        return r.json


class Tokens(AuthBase):
    def test_no_token_is_401_with_www_authenticate(self):
        for method, path, body in (("GET", "/v1/accounts", None),
                                   ("POST", "/v1/accounts", account_body("NOAUTH-1")),
                                   ("GET", "/metrics", None), ("GET", "/v1/audit", None),
                                   ("GET", "/v1/accounts/ext:X/history", None)):
            with self.subTest(method=method, path=path):
                r = self.request(method, path, body, token=None)
                self.assertJsonError(r, 401, "unauthorized")
                self.assertEqual(r.header("www-authenticate"), "Bearer")
        self.assertEqual(int(self.psql("SELECT count(*) FROM accounts WHERE external_ref = 'NOAUTH-1'")), 0)

    def test_wrong_and_malformed_authorization(self):
        admin = TOKENS["admin"].secret
        bad = [
            "Bearer not-a-configured-secret",
            "Bearer " + admin + "x",
            "Bearer " + admin[:-1],
            "Bearer " + harness.sha256_hex(admin),  # the hash is not the secret
            "Bearer",
            "Bearer ",
            "Bearer    ",
            "Basic " + admin,
            admin,
            "Token " + admin,
            "",
        ]
        for auth in bad:
            with self.subTest(auth=auth):
                r = self.raw_request("GET", "/v1/accounts", headers={"Authorization": auth})
                self.assertJsonError(r, 401, "unauthorized")
                self.assertEqual(r.header("www-authenticate"), "Bearer")

    def test_scheme_is_case_insensitive(self):
        r = self.raw_request("GET", "/v1/accounts",
                             headers={"Authorization": "bearer " + TOKENS["read"].secret})
        self.assertStatus(r, 200)

    def test_read_token_cannot_write(self):
        before = self.n_accounts()
        r = self.request("POST", "/v1/accounts", account_body("READ-1"), token="read")
        self.assertJsonError(r, 403, "forbidden")
        self.assertEqual(self.n_accounts(), before)
        a = self.make_account("READ-TARGET")
        for method, path, body in (("PATCH", f"/v1/accounts/{a['id']}", {"name": "x"}),
                                   ("POST", f"/v1/accounts/{a['id']}/suspend", {"note": "x"}),
                                   ("POST", f"/v1/accounts/{a['id']}/unsuspend", {"note": "x"})):
            with self.subTest(method=method, path=path):
                self.assertJsonError(self.request(method, path, body, token="read"), 403, "forbidden")
        g = self.request("GET", f"/v1/accounts/{a['id']}", token="read")
        self.assertEqual(g.json, a, "a forbidden call changed the account")

    def test_ingest_only_token_cannot_read(self):
        for path in ("/v1/accounts", "/metrics", "/v1/accounts/ext:X", "/v1/audit"):
            with self.subTest(path=path):
                self.assertJsonError(self.request("GET", path, token="ingestonly"), 403, "forbidden")
        self.assertJsonError(self.request("POST", "/v1/accounts", account_body("ING-1"),
                                          token="ingestonly"), 403, "forbidden")

    def test_scope_matrix(self):
        a = self.make_account("MATRIX-1")
        reads = [("GET", "/v1/accounts", None), ("GET", f"/v1/accounts/{a['id']}", None),
                 ("GET", f"/v1/accounts/{a['id']}/history", None), ("GET", "/metrics", None)]
        for tok in ("read", "finance", "platform", "ops", "admin"):
            for method, path, body in reads:
                with self.subTest(token=tok, path=path):
                    self.assertStatus(self.request(method, path, body, token=tok), 200)
        for tok in ("writeonly", "ingestonly"):
            for method, path, body in reads:
                with self.subTest(token=tok, path=path):
                    self.assertJsonError(self.request(method, path, body, token=tok), 403, "forbidden")
        for tok in ("read", "platform", "ops", "ingestonly"):
            with self.subTest(token=tok, write="create"):
                self.assertJsonError(self.request("POST", "/v1/accounts", account_body("M-" + tok),
                                                  token=tok), 403, "forbidden")
        r = self.request("POST", "/v1/accounts", account_body("M-writeonly"), token="writeonly")
        self.assertStatus(r, 201)
        self.assertEqual(int(self.psql("SELECT count(*) FROM accounts WHERE external_ref LIKE 'M-%'")), 1)
        for tok in ("read", "finance", "platform", "ops", "writeonly", "ingestonly"):
            with self.subTest(token=tok, audit=True):
                self.assertJsonError(self.request("GET", "/v1/audit", token=tok), 403, "forbidden")

    def test_admin_can_do_everything(self):
        r = self.request("POST", "/v1/accounts", account_body("ADMIN-1"), token="admin")
        self.assertStatus(r, 201)
        acc = r.json["id"]
        steps = [
            ("GET", "/v1/accounts", None, 200),
            ("GET", f"/v1/accounts/{acc}", None, 200),
            ("GET", "/v1/accounts/ext:ADMIN-1", None, 200),
            ("PATCH", f"/v1/accounts/{acc}", {"name": "Admin Renamed"}, 200),
            ("POST", f"/v1/accounts/{acc}/suspend", {"note": "admin"}, 200),
            ("POST", f"/v1/accounts/{acc}/unsuspend", {"note": "admin"}, 200),
            ("GET", f"/v1/accounts/{acc}/history", None, 200),
            ("GET", "/v1/audit", None, 200),
            ("GET", "/metrics", None, 200),
            ("GET", "/readyz", None, 200),
            ("GET", "/healthz", None, 200),
        ]
        for method, path, body, status in steps:
            with self.subTest(method=method, path=path):
                self.assertStatus(self.request(method, path, body, token="admin"), status)
        h = self.request("GET", f"/v1/accounts/{acc}/history", token="admin").json["items"]
        self.assertEqual([x["actor"] for x in h], ["admin", "admin", "admin"])

    def test_health_needs_no_token(self):
        r = self.request("GET", "/healthz", token=None)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"status": "ok"})
        self.assertIsNotNone(r.header("x-request-id"))
        # A bad token does not matter on an open endpoint.
        self.assertStatus(self.request("GET", "/healthz", token="bogus"), 200)
        self.assertStatus(self.request("GET", "/healthz?probe=1", token=None), 200)
        # R9.5: /healthz is the only call without a token; /readyz is a read
        self.assertError(self.request("GET", "/readyz", token=None), 401, "unauthorized")
        self.assertError(self.request("GET", "/readyz", token="ingestonly"), 403, "forbidden")
        self.assertStatus(self.request("GET", "/readyz", token="read"), 200)

    def test_request_ids_are_distinct(self):
        rids = set()
        for tok in (None, "bogus", "read"):
            for _ in range(5):
                r = self.request("GET", "/v1/accounts", token=tok)
                rid = r.header("x-request-id")
                self.assertTrue(rid)
                rids.add(rid)
        self.assertEqual(len(rids), 15)


class Routing(AuthBase):
    def test_unknown_path_is_404_json(self):
        for path in ("/nope", "/v1", "/v1/account", "/v1/accounts/x/y/z", "/V1/accounts",
                     "/healthz/", "/v1/accounts/", "/"):
            with self.subTest(path=path):
                r = self.request("GET", path, token="admin")
                self.assertJsonError(r, 404, "not_found")
        # Without a token too: 404, not 401.
        self.assertJsonError(self.request("GET", "/nope", token=None), 404, "not_found")

    def test_wrong_method_is_405_json(self):
        for method, path in (("DELETE", "/v1/accounts"), ("PUT", "/v1/accounts"),
                             ("POST", "/healthz"), ("DELETE", "/v1/accounts/ext:X"),
                             ("GET", "/v1/accounts/ext:X/suspend"), ("PATCH", "/v1/audit")):
            with self.subTest(method=method, path=path):
                r = self.request(method, path, token="admin")
                self.assertStatus(r, 405)
                self.assertIsInstance(r.json, dict, r.text)
                self.assertIsInstance(r.json.get("error"), dict, r.text)
                self.assertIsInstance(r.json["error"].get("code"), str, r.text)
                self.assertIsInstance(r.json["error"].get("message"), str, r.text)
                self.assertIn("application/json", r.header("content-type", ""))
                self.assertIsNotNone(r.header("x-request-id"))

    def test_path_tricks_are_404(self):
        for path in ("/v1/accounts/../healthz", "//v1/accounts", "/v1//accounts",
                     "/v1/./accounts", "/v1/accounts/..", "/v1/accounts/.", "/./healthz",
                     "/healthz/..", "/v1/accounts/%2e%2e", "/v1/accounts/%2E%2E/history",
                     "/v1/accounts%2Fext:X", "/v1%2Faccounts"):
            with self.subTest(path=path):
                r = self.request("GET", path, token="admin")
                self.assertJsonError(r, 404, "not_found")

    def test_bad_percent_encoding(self):
        r = self.request("GET", "/v1/accounts/ext:A%00B", token="admin")
        self.assertIn(r.status, (400, 404), r.text)
        self.assertIsInstance(r.json, dict, r.text)
        self.assertIsNotNone(r.header("x-request-id"))


class BodyLimit(AuthBase):
    def padded(self, size):
        """A valid create body of exactly size bytes (JSON whitespace pads it)."""
        base = json.dumps(account_body(f"PAD-{size}")).encode()
        self.assertLessEqual(len(base), size)
        return base[:-1] + b" " * (size - len(base)) + b"}"

    def test_body_at_limit_is_accepted(self):
        body = self.padded(MAX_BODY)
        self.assertEqual(len(body), MAX_BODY)
        r = self.request("POST", "/v1/accounts", body, token="finance",
                         headers={"Content-Type": "application/json"})
        self.assertStatus(r, 201)

    def test_body_over_limit_is_413_json(self):
        before = self.n_accounts()
        for size in (MAX_BODY + 1, 4096, 64 * 1024):
            with self.subTest(size=size):
                body = self.padded(size)
                self.assertEqual(len(body), size)
                r = self.request("POST", "/v1/accounts", body, token="finance",
                                 headers={"Content-Type": "application/json"})
                self.assertJsonError(r, 413, "too_large")
        self.assertEqual(self.n_accounts(), before)
        # The daemon still serves after closing those connections.
        self.assertStatus(self.request("GET", "/healthz", token=None), 200)

    def assertRaw413Json(self, status, headers, raw):
        self.assertEqual(status, 413, raw[:300])
        self.assertIn("application/json", headers.get("content-type", ""),
                      f"413 body is not the API's JSON error: {headers} {raw[:300]!r}")
        self.assertIn("x-request-id", headers, headers)
        self.assertEqual(json.loads(raw)["error"]["code"], "too_large", raw[:300])

    # A body far over max_body_bytes: refused from its Content-Length,
    # unread, with the API's JSON 413 and the connection closed (daemon/httpd.c;
    # evhttp answered this with its own HTML page).
    def test_huge_body_is_413_json(self):
        size = 3 * 1024 * 1024
        r = self._send_big(size)
        self.assertIsNotNone(r, "no answer to a 3 MiB body")
        self.assertRaw413Json(*r)
        self.assertEqual(r[1].get("connection", "").lower(), "close", r[1])
        self.assertStatus(self.request("GET", "/healthz", token=None), 200)

    def _send_big(self, size):
        head = (f"POST /v1/accounts HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {TOKENS['finance'].secret}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", self.daemon.port), timeout=20) as s:
            s.sendall(head)
            chunk = b" " * 65536
            sent = 0
            try:
                while sent < size:
                    n = min(len(chunk), size - sent)
                    s.sendall(chunk[:n])
                    sent += n
            except (BrokenPipeError, ConnectionResetError):
                pass
            s.settimeout(20)
            data = b""
            try:
                while True:
                    part = s.recv(65536)
                    if not part:
                        break
                    data += part
                    if b"\r\n\r\n" in data:
                        hdr, _, rest = data.partition(b"\r\n\r\n")
                        clen = [ln.split(b":", 1)[1].strip() for ln in hdr.split(b"\r\n")
                                if ln.lower().startswith(b"content-length:")]
                        if clen and len(rest) >= int(clen[0]):
                            break
            except (ConnectionResetError, socket.timeout):
                pass
        if not data:
            return None
        hdr, _, rest = data.partition(b"\r\n\r\n")
        lines = hdr.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {ln.split(b":", 1)[0].strip().lower().decode(): ln.split(b":", 1)[1].strip().decode()
                   for ln in lines[1:] if b":" in ln}
        return status, headers, rest

    def test_big_content_length_declared_is_413(self):
        # A Content-Length far over the limit is refused from the header alone.
        head = (f"POST /v1/accounts HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {TOKENS['finance'].secret}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {10 * 1024 * 1024 * 1024}\r\n\r\n"
                "{}").encode()
        with socket.create_connection(("127.0.0.1", self.daemon.port), timeout=20) as s:
            s.sendall(head)
            data = b""
            try:
                while True:
                    part = s.recv(65536)
                    if not part:
                        break
                    data += part
            except (ConnectionResetError, socket.timeout):
                pass
        self.assertTrue(data, "no answer")
        hdr, _, body = data.partition(b"\r\n\r\n")
        lines = hdr.split(b"\r\n")
        self.assertRegex(lines[0], rb"^HTTP/1\.[01] 413 ")
        headers = {ln.split(b":", 1)[0].strip().lower().decode(): ln.split(b":", 1)[1].strip().decode()
                   for ln in lines[1:] if b":" in ln}
        self.assertRaw413Json(413, headers, body)
        self.assertEqual(headers.get("connection", "").lower(), "close", headers)


class NoTestClock(AuthBase):
    def test_clock_is_404_without_flag(self):
        for method, body in (("GET", None), ("PUT", {"now": "2030-01-01T00:00:00Z"})):
            for tok in ("admin", None):
                with self.subTest(method=method, token=tok):
                    r = self.request(method, "/v1/test/clock", body, token=tok)
                    self.assertJsonError(r, 404, "not_found")


class WithTestClock(AuthBase):
    START = "2024-03-05T10:20:30Z"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.clocked = harness.Daemon(cls.cluster.conninfo(), test_clock=cls.START, tokens=TOKENS)
        try:
            cls.clocked.start()
            cls.clocked.wait_ready()
        except BaseException:
            cls.clocked.destroy()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            code = cls.clocked.stop()
            if code != 0:
                raise harness.HarnessError(f"test-clock daemon exited {code}\n{cls.clocked.log_tail()}")
        finally:
            cls.clocked.destroy()
            super().tearDownClass()

    def c(self, method, path, body=None, token="admin"):
        return self.clocked.request(method, path, body, token=token)

    def test_1_get_returns_start_time(self):
        r = self.c("GET", "/v1/test/clock")
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"now": self.START})
        # Frozen: it does not move by itself.
        self.assertEqual(self.c("GET", "/v1/test/clock").json, {"now": self.START})
        a = self.c("POST", "/v1/accounts", account_body("CLOCK-1"))
        self.assertStatus(a, 201)
        self.assertEqual(a.json["created_at"], self.START)

    def test_2_needs_admin(self):
        for tok in ("read", "finance", "ops"):
            with self.subTest(token=tok):
                self.assertJsonError(self.c("GET", "/v1/test/clock", token=tok), 403, "forbidden")
                self.assertJsonError(self.c("PUT", "/v1/test/clock", {"now": "2024-03-05T10:20:31Z"},
                                            token=tok), 403, "forbidden")
        self.assertJsonError(self.c("GET", "/v1/test/clock", token=None), 401, "unauthorized")
        self.assertEqual(self.c("GET", "/v1/test/clock").json, {"now": self.START})

    def test_3_put_forward_backward(self):
        r = self.c("PUT", "/v1/test/clock", {"now": "2024-03-06T00:00:00Z"})
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"now": "2024-03-06T00:00:00Z"})
        self.assertEqual(self.c("GET", "/v1/test/clock").json, {"now": "2024-03-06T00:00:00Z"})
        # The same time again is not backward.
        r = self.c("PUT", "/v1/test/clock", {"now": "2024-03-06T00:00:00Z"})
        self.assertStatus(r, 200)
        # An offset is honoured: 02:00+01:00 is 01:00Z.
        r = self.c("PUT", "/v1/test/clock", {"now": "2024-03-06T02:00:00+01:00"})
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"now": "2024-03-06T01:00:00Z"})
        # Backward: 409, the clock stays.
        r = self.c("PUT", "/v1/test/clock", {"now": "2024-03-06T00:59:59.999999Z"})
        self.assertJsonError(r, 409, "conflict")
        self.assertEqual(self.c("GET", "/v1/test/clock").json, {"now": "2024-03-06T01:00:00Z"})
        # Invalid bodies.
        for body, field in (({}, "now"), ({"now": "tomorrow"}, "now"),
                            ({"now": "2024-03-07T00:00:00"}, "now"), ({"now": 1709769600}, "now"),
                            ({"now": "2024-03-07T00:00:00Z", "extra": 1}, "extra")):
            with self.subTest(body=body):
                r = self.c("PUT", "/v1/test/clock", body)
                self.assertJsonError(r, 400, "validation_failed")
                self.assertEqual(r.json["error"].get("field"), field, r.text)
        self.assertEqual(self.c("GET", "/v1/test/clock").json, {"now": "2024-03-06T01:00:00Z"})
        a = self.c("POST", "/v1/accounts", account_body("CLOCK-2"))
        self.assertStatus(a, 201)
        self.assertEqual(a.json["created_at"], "2024-03-06T01:00:00Z")


if __name__ == "__main__":
    harness.main()
