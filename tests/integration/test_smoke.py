#!/usr/bin/env python3
"""Smoke test: the daemon starts against a private PostgreSQL, answers its
health endpoints, refuses requests without a token and exits 0 on SIGTERM
(API.md "Running", "Health"; SPEC R9.3, R9.4, R9.5)."""

import harness


class Smoke(harness.DaemonTestCase):
    def test_1_healthz_needs_no_token(self):
        r = self.request("GET", "/healthz", token=None)
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"status": "ok"})
        self.assertIn("application/json", r.header("content-type", ""))

    def test_2_readyz(self):
        r = self.request("GET", "/readyz")
        self.assertStatus(r, 200)
        self.assertEqual(r.json.get("database"), "ok", r.text)
        version = r.json.get("schema_version")
        self.assertIsInstance(version, int, r.text)
        self.assertGreaterEqual(version, 1, r.text)

    def test_3_no_token_is_401(self):
        r = self.request("GET", "/v1/accounts", token=None)
        self.assertError(r, 401, "unauthorized")

    def test_3_bad_token_is_401(self):
        r = self.request("GET", "/v1/accounts", token="not-a-configured-secret")
        self.assertError(r, 401, "unauthorized")

    def test_4_keepalive_reuses_connection(self):
        for _ in range(3):
            self.assertStatus(self.request("GET", "/healthz", token=None), 200)

    def test_9_sigterm_exits_0(self):
        # Last test of the module (names sort): stops the shared daemon.
        code = self.daemon.stop()
        self.assertEqual(code, 0, self.daemon.log_tail())


if __name__ == "__main__":
    harness.main()
