#!/usr/bin/env python3
"""Audit of the HTTP contract as a whole (API.md "Conventions", "Health",
"Jobs", "Reports", "notifications", "Test clock"; SPEC R1.6, R7.2, R7.3,
R8.2, R9.3, R9.5).

* A table of every endpoint of API.md: token required (401), scope (403),
  wrong method (405), malformed JSON (400 invalid_json), unknown and missing
  fields named in the error (400 validation_failed + field).
* Jobs: 202 and the job object, ?wait=true, running twice bills nothing
  twice, validation, GET /v1/jobs{,/id}, the audit log (R9.5).
* Exposure report: CSV quoting of external_ref (commas, quotes, CR, LF) and
  CSV == JSON field by field.
* Notifications: cursor paging, filters, and no notification lost when
  transactions commit out of id order (R8.2).
* R9.3: database down: writes 503 unavailable + Retry-After, reads too,
  /readyz 503 {"database": "down"}, /healthz 200.

Billing zone UTC. The test clock starts at 2026-02-20T10:00:00Z; test_00
moves it to 2026-03-01T03:00:00Z, after the scheduled invoice run (1st,
02:00), so that the February invoice exists. Tests run in name order.
"""

import csv
import io
import os
import subprocess
import time
import uuid

import harness

T0 = "2026-02-20T10:00:00Z"
T1 = "2026-03-01T03:00:00Z"

TOKENS = dict(harness.DEFAULT_TOKENS)
TOKENS["ingestonly"] = harness.Token("audit-ingest-only-secret", "ingest")
TOKENS["writeonly"] = harness.Token("audit-write-only-secret", "write")
TOKENS["opsonly"] = harness.Token("audit-ops-only-secret", "ops")

# The narrowest token holding each scope, and one lacking it.
HOLDER = {"read": "read", "write": "writeonly", "ingest": "ingestonly", "ops": "opsonly",
          "admin": "admin"}
LACKING = {"read": "ingestonly", "write": "read", "ingest": "finance", "ops": "finance",
           "admin": "finance"}

BAD_JSON = b'{"note": "x",'


def uid() -> str:
    return str(uuid.uuid4())


def account_body(ext, currency="EUR", **kw):
    b = {"external_ref": ext, "name": "Customer " + ext, "currency": currency,
         "jurisdiction": "DE"}
    b.update(kw)
    return b


class AuditApi(harness.DaemonTestCase):
    TEST_CLOCK = T0
    TOKENS = TOKENS

    ids: dict = {}

    # ---- helpers ----

    def ok(self, r, status=200):
        self.assertStatus(r, status)
        return r.json

    def assertFieldError(self, r, status, code, field):
        self.assertError(r, status, code)
        self.assertEqual(r.json["error"].get("field"), field, r.text)
        self.assertIn("application/json", r.header("content-type", ""), r.headers)
        self.assertTrue(r.header("x-request-id"), r.headers)

    def notifications(self, query=""):
        return self.ok(self.request("GET", "/v1/notifications" + query, token="read"))

    def read_outbox(self, after):
        """Follow the cursor from `after` to the end, as a poller does: on a
        null next_cursor it keeps the last item's id for the next poll."""
        items = []
        while True:
            q = "?limit=2" + (f"&after={after}" if after is not None else "")
            page = self.notifications(q)
            items += page["items"]
            if page["items"]:
                after = page["items"][-1]["id"]
            if page["next_cursor"] is None:
                return items, after
            self.assertEqual(page["next_cursor"], page["items"][-1]["id"], page)
            after = page["next_cursor"]

    # ---- setup ----

    def test_00_setup(self):
        for ext, kw in (("AA-1", {"monthly_limit": "100", "total_limit": "500"}),
                        ("AA-2", {}), ("AA-TERM", {})):
            r = self.request("POST", "/v1/accounts", account_body(ext, **kw), token="finance")
            AuditApi.ids[ext] = self.ok(r, 201)["id"]
        events = [{"id": uid(), "account": "ext:AA-1", "amount": "12.345",
                   "occurred_at": "2026-02-18T12:00:00Z", "service": "sms"}]
        r = self.ok(self.request("POST", "/v1/events", events, token="platform"))
        self.assertEqual(r["accepted"], 1, r)
        # The scheduled run of 1 March 02:00 bills February (R5.1).
        self.ok(self.request("PUT", "/v1/test/clock", {"now": T1}))
        inv = self.ok(self.request("GET", "/v1/invoices?account=ext:AA-1", token="read"))["items"]
        self.assertEqual(len(inv), 1, inv)
        # 12.345 rounds once, half away from zero, to 12.35 (R1.3)
        self.assertEqual((inv[0]["period"], inv[0]["total"]), ("2026-02", "12.35"), inv)
        AuditApi.ids["invoice"] = inv[0]["id"]
        # R5.1: the period, its deadline (the end of the 10th) and that it was met
        sch = self.ok(self.request("GET", "/v1/schedule", token="read"))
        feb = [p for p in sch["periods"] if p["period"] == "2026-02"]
        self.assertEqual(len(feb), 1, sch)
        self.assertEqual((feb[0]["invoiced"], feb[0]["invoiced_at"], feb[0]["deadline"],
                          feb[0]["deadline_met"]),
                         (True, "2026-03-01T02:00:00Z", "2026-03-11T00:00:00Z", True), feb)
        self.assertEqual(sch["periods"][0]["period"], "2026-02")  # newest first
        AuditApi.ids["payment"] = uid()
        r = self.request("POST", "/v1/payments",
                         {"id": self.ids["payment"], "account": "ext:AA-2", "amount": "1",
                          "received_at": "2026-03-01T01:00:00Z", "reference": "REF-1"},
                         token="finance")
        self.ok(r, 201)
        r = self.request("POST", "/v1/accounts/ext:AA-2/limit-requests",
                         {"monthly_limit": "50", "note": "more please"}, token="finance")
        AuditApi.ids["limit_request"] = self.ok(r, 201)["id"]

    # ---- the endpoint table ----

    def endpoints(self):
        """(method, path, scope, a valid body or None, required fields).
        Valid bodies are only ever sent with one field removed or one added,
        so that nothing here changes state."""
        a = "ext:AA-TERM"
        inv = self.ids["invoice"]
        pay = self.ids["payment"]
        lr = self.ids["limit_request"]
        return [
            ("GET", "/healthz", None, None, ()),
            ("GET", "/readyz", "read", None, ()),
            ("GET", "/metrics", "read", None, ()),
            ("POST", "/v1/accounts", "write", account_body("AA-NEW"),
             ("external_ref", "name", "currency", "jurisdiction")),
            ("GET", "/v1/accounts", "read", None, ()),
            ("GET", f"/v1/accounts/{a}", "read", None, ()),
            ("PATCH", f"/v1/accounts/{a}", "write", {"name": "x"}, ()),
            ("POST", f"/v1/accounts/{a}/suspend", "write", {"note": "x"}, ()),
            ("POST", f"/v1/accounts/{a}/unsuspend", "write", {"note": "x"}, ("note",)),
            ("POST", f"/v1/accounts/{a}/reactivation", "write", {"note": "x"}, ()),
            ("POST", f"/v1/accounts/{a}/terminate", "write", {"note": "x"}, ("note",)),
            ("GET", f"/v1/accounts/{a}/history", "read", None, ()),
            ("PUT", f"/v1/accounts/{a}/limits", "write", {"monthly_limit": "1", "reason": "x"},
             ("reason",)),
            ("GET", f"/v1/accounts/{a}/limit-changes", "read", None, ()),
            ("POST", f"/v1/accounts/{a}/limit-requests", "write",
             {"monthly_limit": "1", "note": "x"}, ("note",)),
            ("POST", f"/v1/limit-requests/{lr}/approve", "write", {}, ()),
            ("POST", f"/v1/limit-requests/{lr}/decline", "write", {"reason": "x"}, ("reason",)),
            ("GET", f"/v1/limit-requests/{lr}", "read", None, ()),
            ("POST", "/v1/events", "ingest", None, ()),
            ("POST", "/v1/authorize", "ingest", {"account": a, "amount": "1"},
             ("account", "amount")),
            ("GET", "/v1/invoices", "read", None, ()),
            ("GET", f"/v1/invoices/{inv}", "read", None, ()),
            ("GET", f"/v1/invoices/{inv}/interest", "read", None, ()),
            ("POST", f"/v1/invoices/{inv}/credit-notes", "write", {"amount": "1", "reason": "x"},
             ("amount", "reason")),
            ("POST", "/v1/payments", "write",
             {"id": uid(), "account": a, "amount": "1", "received_at": T1, "reference": "R"},
             ("id", "account", "amount", "received_at", "reference")),
            ("GET", "/v1/payments", "read", None, ()),
            ("POST", f"/v1/payments/{pay}/reverse", "write", {"reason": "x"}, ("reason",)),
            ("POST", "/v1/jobs/invoicing", "ops", {"period": "2026-02"}, ()),
            ("POST", "/v1/jobs/daily", "ops", {"date": "2026-03-01"}, ()),
            ("GET", "/v1/jobs", "read", None, ()),
            ("GET", f"/v1/jobs/{uid()}", "read", None, ()),
            ("GET", "/v1/schedule", "read", None, ()),
            ("GET", "/v1/statutory-rates/DE", "read", None, ()),
            ("GET", "/v1/reference-rates/ECB_MRO", "read", None, ()),
            ("PUT", "/v1/reference-rates/ECB_MRO", "admin",
             {"effective_date": "2026-03-01", "rate": "2"}, ("effective_date", "rate")),
            ("GET", "/v1/reports/aging", "read", None, ()),
            ("GET", "/v1/reports/exposure", "read", None, ()),
            ("GET", "/v1/notifications", "read", None, ()),
            ("GET", "/v1/audit", "admin", None, ()),
            ("GET", "/v1/test/clock", "admin", None, ()),
            ("PUT", "/v1/test/clock", "admin", {"now": T1}, ("now",)),
        ]

    def state(self):
        """Everything a refused request must leave alone."""
        return self.psql(
            "SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM payments),"
            " (SELECT count(*) FROM jobs), (SELECT count(*) FROM audit_log),"
            " (SELECT count(*) FROM credit_notes), (SELECT count(*) FROM notifications),"
            " (SELECT string_agg(status || array_to_string(reasons, ','),"
            "   ';' ORDER BY external_ref) FROM accounts),"
            " (SELECT string_agg(status, ';' ORDER BY id) FROM limit_requests)")

    def test_01_auth_and_scopes(self):
        before = self.state()
        for method, path, scope, body, _ in self.endpoints():
            with self.subTest(method=method, path=path):
                if scope is None:
                    # R9.5: /healthz alone needs no token
                    self.assertStatus(self.request(method, path, token=None), 200)
                    continue
                r = self.request(method, path, body, token=None)
                self.assertError(r, 401, "unauthorized")
                self.assertEqual(r.header("www-authenticate"), "Bearer", r.headers)
                r = self.request(method, path, body, token="not-a-configured-secret")
                self.assertError(r, 401, "unauthorized")
                r = self.request(method, path, body, token=LACKING[scope])
                self.assertError(r, 403, "forbidden")
                if scope != "admin":
                    r = self.request(method, path, body, token="opsonly" if scope != "ops"
                                     else "read")
                    self.assertError(r, 403, "forbidden")
        self.assertEqual(self.state(), before)

    def test_02_wrong_method_and_unknown_path(self):
        paths = {}
        for method, path, _, _, _ in self.endpoints():
            paths.setdefault(path, set()).add(method)
        for path, methods in paths.items():
            for m in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                if m in methods or (m == "GET" and path.startswith("/v1/jobs/")):
                    continue  # GET /v1/jobs/invoicing is GET /v1/jobs/{id}: 404
                with self.subTest(method=m, path=path):
                    r = self.request(m, path, b"{}" if m != "GET" else None, token="admin")
                    self.assertError(r, 405, "method_not_allowed")
                    self.assertIn("application/json", r.header("content-type", ""))
        for path in ("/v1/job", "/v1/jobs/x/y", "/v1/reports", "/v1/reports/exposure.csv",
                     "/v1/notification", "/v1/test", "/v1/test/clock/x", "/readyz/x",
                     "/v2/accounts"):
            with self.subTest(path=path):
                self.assertError(self.request("GET", path, token="admin"), 404, "not_found")
                self.assertError(self.request("GET", path, token=None), 404, "not_found")

    def test_03_malformed_json_unknown_and_missing_fields(self):
        before = self.state()
        for method, path, scope, body, required in self.endpoints():
            if method not in ("POST", "PUT", "PATCH"):
                continue
            tok = HOLDER[scope]
            with self.subTest(method=method, path=path, case="malformed"):
                r = self.request(method, path, BAD_JSON, token=tok,
                                 headers={"Content-Type": "application/json"})
                self.assertError(r, 400, "invalid_json")
            if path == "/v1/events":
                continue  # a batch: each event answered on its own (R3.4)
            for bad in (b"[]", b'"x"', b"1", b"null"):
                with self.subTest(method=method, path=path, case=bad):
                    r = self.request(method, path, bad, token=tok,
                                     headers={"Content-Type": "application/json"})
                    self.assertError(r, 400, "invalid_json")
            with self.subTest(method=method, path=path, case="unknown field"):
                r = self.request(method, path, dict(body, zz_unknown="1"), token=tok)
                self.assertFieldError(r, 400, "validation_failed", "zz_unknown")
            for f in required:
                with self.subTest(method=method, path=path, case="missing " + f):
                    r = self.request(method, path, {k: v for k, v in body.items() if k != f},
                                     token=tok)
                    self.assertFieldError(r, 400, "validation_failed", f)
                with self.subTest(method=method, path=path, case="null " + f):
                    r = self.request(method, path, dict(body, **{f: None}), token=tok)
                    self.assertFieldError(r, 400, "validation_failed", f)
        self.assertEqual(self.state(), before)

    def test_04_list_paging_parameters(self):
        for path in ("/v1/accounts", "/v1/jobs", "/v1/invoices", "/v1/payments",
                     "/v1/notifications", "/v1/audit"):
            for lim in ("0", "1001", "-1", "x", "1.5", ""):
                with self.subTest(path=path, limit=lim):
                    r = self.request("GET", f"{path}?limit={lim}", token="admin")
                    self.assertFieldError(r, 400, "validation_failed", "limit")
            with self.subTest(path=path, limit="1000"):
                page = self.ok(self.request("GET", f"{path}?limit=1000", token="admin"))
                self.assertEqual(set(page), {"items", "next_cursor"}, page)

    # ---- jobs (R5.1, API.md "Jobs") ----

    def test_10_jobs(self):
        # Running the February run again bills nothing twice.
        r = self.request("POST", "/v1/jobs/invoicing", {"period": "2026-02"}, token="opsonly")
        self.assertStatus(r, 202)
        self.assertEqual(set(r.json), {"id", "kind", "status"}, r.json)
        self.assertEqual((r.json["kind"], r.json["status"]), ("invoicing", "running"))
        job = r.json["id"]
        deadline = time.monotonic() + 20
        while True:
            g = self.ok(self.request("GET", f"/v1/jobs/{job}", token="read"))
            if g["status"] != "running" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual((g["id"], g["kind"], g["status"], g["result"]),
                         (job, "invoicing", "succeeded", {"period": "2026-02", "invoices": 0}), g)
        self.assertEqual(g["requested_by"], "opsonly")
        # ?wait=true answers 202 with the final status; the body names the
        # previous month by default.
        r = self.request("POST", "/v1/jobs/invoicing?wait=true", None, token="opsonly")
        self.assertStatus(r, 202)
        self.assertEqual((r.json["kind"], r.json["status"], r.json["result"]),
                         ("invoicing", "succeeded", {"period": "2026-02", "invoices": 0}), r.json)
        self.assertEqual(self.psql("SELECT count(*) FROM invoices").strip(), "1")
        r = self.request("POST", "/v1/jobs/daily?wait=true", {"date": "2026-03-01"},
                         token="opsonly")
        self.assertStatus(r, 202)
        self.assertEqual((r.json["kind"], r.json["status"]), ("daily", "succeeded"), r.json)
        daily = r.json["id"]
        # GET /v1/jobs?kind=
        items = self.ok(self.request("GET", "/v1/jobs?kind=daily&limit=1000", token="read"))
        self.assertTrue(items["items"])
        self.assertEqual({x["kind"] for x in items["items"]}, {"daily"})
        self.assertEqual(items["items"][0]["id"], daily)  # newest first
        inv = self.ok(self.request("GET", "/v1/jobs?kind=invoicing&limit=1000", token="read"))
        self.assertIn(job, [x["id"] for x in inv["items"]])
        self.assertEqual({x["kind"] for x in inv["items"]}, {"invoicing"})
        # paging walks every job exactly once
        seen, cur = [], None
        while True:
            page = self.ok(self.request("GET", "/v1/jobs?limit=1" + (f"&cursor={cur}" if cur else ""),
                                        token="read"))
            seen += [x["id"] for x in page["items"]]
            cur = page["next_cursor"]
            if cur is None:
                break
        self.assertEqual(len(seen), len(set(seen)))
        self.assertEqual(len(seen), int(self.psql("SELECT count(*) FROM jobs")))
        for bad in ("not-a-uuid", uid()):
            self.assertError(self.request("GET", f"/v1/jobs/{bad}", token="read"), 404,
                             "not_found")
        self.assertEqual(len(self.ok(self.request("GET", "/v1/jobs?kind=&limit=1000",
                                                  token="read"))["items"]), len(seen))
        for kind in ("bogus", "Daily", "daily%20"):
            with self.subTest(kind=kind):
                self.assertFieldError(self.request("GET", f"/v1/jobs?kind={kind}", token="read"),
                                      400, "validation_failed", "kind")

    def test_11_job_validation(self):
        before = self.psql("SELECT count(*) FROM jobs")
        for body, field in (({"period": "2026-13"}, "period"), ({"period": "2026-2"}, "period"),
                            ({"period": "2026-03"}, "period"),  # not ended yet
                            ({"period": "2027-01"}, "period"),
                            ({"period": 202602}, "period"), ({"period": "2026-02-01"}, "period"),
                            ({"when": "2026-02"}, "when")):
            with self.subTest(body=body):
                r = self.request("POST", "/v1/jobs/invoicing", body, token="opsonly")
                self.assertFieldError(r, 400, "validation_failed", field)
        for body, field in (({"date": "2026-03-02"}, "date"),  # the future
                            ({"date": "2026-02-30"}, "date"), ({"date": "2026-3-1"}, "date"),
                            ({"date": 20260301}, "date"), ({"period": "2026-02"}, "period")):
            with self.subTest(body=body):
                r = self.request("POST", "/v1/jobs/daily", body, token="opsonly")
                self.assertFieldError(r, 400, "validation_failed", field)
        self.assertEqual(self.psql("SELECT count(*) FROM jobs"), before)

    def test_12_jobs_are_audited(self):
        """R9.5: every mutating call is written to the audit log (actor,
        action, object, before and after); a job run is one."""
        r = self.request("POST", "/v1/jobs/daily?wait=true", {"date": "2026-02-28"},
                         token="opsonly")
        self.assertStatus(r, 202)
        rows = self.psql("SELECT actor, action, object_type, after->>'date' FROM audit_log "
                         f"WHERE object_id = '{r.json['id']}'").split()
        self.assertEqual(rows, ["opsonly|job.daily|job|2026-02-28"])
        r = self.request("POST", "/v1/jobs/invoicing", {"period": "2026-01"}, token="opsonly")
        self.assertStatus(r, 202)
        rows = self.psql("SELECT actor, action, object_type, after->>'period' FROM audit_log "
                         f"WHERE object_id = '{r.json['id']}'").split()
        self.assertEqual(rows, ["opsonly|job.invoicing|job|2026-01"])

    # ---- exposure report (R7.2, R7.3) ----

    def test_20_exposure_csv_quoting(self):
        refs = ['Q,comma', 'Q"quote', 'Q "both", here', "Q trailing ", "Q-ü-ß"]
        for ext in refs:
            self.ok(self.request("POST", "/v1/accounts", account_body(ext, "USD"),
                                 token="finance"), 201)
        # Older data may hold line breaks (the API refuses control characters).
        for ext, raw in (("Q-CRLF", "E'Q\\r\\nCRLF'"), ("Q-LF", "E'Q\\nLF\"'")):
            self.ok(self.request("POST", "/v1/accounts", account_body(ext, "USD"),
                                 token="finance"), 201)
            self.psql(f"UPDATE accounts SET external_ref = {raw} WHERE external_ref = '{ext}'")
        r = self.request("GET", "/v1/reports/exposure?format=csv&currency=USD", token="read")
        self.assertStatus(r, 200)
        self.assertTrue(r.header("content-type", "").startswith("text/csv"), r.headers)
        text = r.body.decode("utf-8")
        for raw in ('\r\n"Q,comma",', '\r\n"Q""quote",', '\r\n"Q ""both"", here",',
                    "\r\nQ trailing ,", "\r\nQ-ü-ß,", '\r\n"Q\r\nCRLF",', '\r\n"Q\nLF""",'):
            self.assertIn(raw, text)
        rows = list(csv.reader(io.StringIO(text, newline="")))
        self.assertEqual(sorted(x[0] for x in rows[1:]),
                         sorted(refs + ["Q\r\nCRLF", 'Q\nLF"']))
        # CSV and JSON carry the same report, field by field.
        js = self.ok(self.request("GET", "/v1/reports/exposure?currency=USD", token="read"))
        header = rows[0]
        self.assertEqual(len(js["items"]), len(rows) - 1)
        for item, row in zip(js["items"], rows[1:]):
            self.assertEqual(len(row), len(header), row)
            for k, v in zip(header, row):
                want = item[k]
                if k == "suspension_reasons":
                    want = ";".join(want)
                elif want is None:
                    want = ""
                self.assertEqual(v, want, (k, item))

    def test_21_exposure_all_currencies_csv_equals_json(self):
        js = self.ok(self.request("GET", "/v1/reports/exposure", token="read"))
        r = self.request("GET", "/v1/reports/exposure", token="read",
                         headers={"Accept": "text/csv"})
        rows = list(csv.reader(io.StringIO(r.body.decode("utf-8"), newline="")))
        self.assertEqual([x[1] for x in rows[1:]], [x["id"] for x in js["items"]])
        aa1 = [x for x in js["items"] if x["external_ref"] == "AA-1"][0]
        # AA-1: 12.345 billed on the February invoice (12.35 open), no March
        # usage: exposure 12.35 (R4.2), monthly usage 0 after the rollover,
        # headroom min(100 - 0, 500 - 12.35) = 100.
        self.assertEqual((aa1["monthly_usage"], aa1["exposure"], aa1["monthly_remaining"],
                          aa1["total_remaining"], aa1["headroom"]),
                         ("0", "12.35", "100", "487.65", "100"), aa1)
        for bad in ("?format=xml", "?status=gone", "?currency=EURO"):
            with self.subTest(query=bad):
                r = self.request("GET", "/v1/reports/exposure" + bad, token="read")
                self.assertError(r, 400, "validation_failed")

    # ---- notifications (R8) ----

    def test_30_notification_paging(self):
        everything = self.notifications("?limit=1000")
        self.assertIsNone(everything["next_cursor"])
        kinds = [x["kind"] for x in everything["items"]]
        self.assertIn("invoice.issued", kinds)
        self.assertIn("payment.received", kinds)
        for x in everything["items"]:
            self.assertEqual(set(x), {"id", "kind", "account", "created_at", "payload"}, x)
        items, last = self.read_outbox(None)
        self.assertEqual([x["id"] for x in items], [x["id"] for x in everything["items"]])
        self.assertEqual(last, everything["items"][-1]["id"])
        # after the last one: nothing, and no cursor
        self.assertEqual(self.notifications(f"?after={last}"), {"items": [], "next_cursor": None})
        # filters
        only = self.notifications("?kind=invoice.issued&account=ext:AA-1")["items"]
        self.assertEqual(len(only), 1, only)
        self.assertEqual((only[0]["account"], only[0]["payload"].get("number")),
                         (self.ids["AA-1"], "INV-2026-000001"), only)
        for q, field in (("?after=abc", "after"), ("?after=-1", "after"),
                         ("?account=nope", "account")):
            with self.subTest(query=q):
                self.assertFieldError(self.request("GET", "/v1/notifications" + q, token="read"),
                                      400, "validation_failed", field)

    def _held_insert(self, sql):
        """A transaction that inserts a row and stays open, as a slow ingest
        batch or invoice lane does: its id is taken now, its commit comes
        later."""
        c = self.cluster
        p = subprocess.Popen(
            [os.path.join(c.bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h",
             c.sockdir, "-p", str(c.port), "-U", harness.PG_SUPERUSER, "-d",
             harness.DEFAULT_DBNAME], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        p.stdin.write("BEGIN;\n" + sql + ";\n")
        p.stdin.flush()
        deadline = time.monotonic() + 10
        while int(self.psql("SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL"
                            " AND state = 'idle in transaction'")) == 0:
            self.assertLess(time.monotonic(), deadline, "held transaction did not start")
            time.sleep(0.02)
        return p

    def test_31_no_notification_lost_when_commits_come_out_of_order(self):
        """R8.2: a reader that follows the cursor sees every notification,
        also one whose transaction took its id first and committed last."""
        _, cursor = self.read_outbox(None)
        p = self._held_insert(
            "INSERT INTO notifications (account_id, kind, created_at, payload) VALUES "
            f"('{self.ids['AA-2']}', 'usage.threshold', '{T1}', '{{\"held\": true}}')")
        try:
            # A later fact commits first: its notification has a higher id.
            self.ok(self.request("POST", "/v1/accounts/ext:AA-2/suspend", {"note": "order"},
                                 token="finance"))
            first, cursor = self.read_outbox(cursor)
        finally:
            out, err = p.communicate("COMMIT;\n", timeout=10)
        self.assertEqual(p.returncode, 0, err)
        second, cursor = self.read_outbox(cursor)
        got = first + second
        self.assertEqual(sorted(x["kind"] for x in got), ["account.suspended", "usage.threshold"],
                         got)
        self.assertEqual(len({x["id"] for x in got}), 2, got)
        # and nothing more afterwards
        self.assertEqual(self.read_outbox(cursor)[0], [])
        self.ok(self.request("POST", "/v1/accounts/ext:AA-2/unsuspend", {"note": "order"},
                             token="finance"))

    def audit_all(self, after):
        items = []
        while True:
            page = self.ok(self.request("GET", f"/v1/audit?limit=2&after={after}"))
            items += page["items"]
            if page["items"]:
                after = page["items"][-1]["id"]
            if page["next_cursor"] is None:
                return items, after

    def test_32_no_audit_entry_lost_when_commits_come_out_of_order(self):
        """R9.5: the same for GET /v1/audit."""
        _, cursor = self.audit_all(0)
        p = self._held_insert(
            f"SELECT creditd_audit('{T1}', 'held', 'held.action', 'x', 'y', NULL, NULL, NULL)")
        try:
            self.ok(self.request("PATCH", "/v1/accounts/ext:AA-2", {"name": "Renamed"},
                                 token="finance"))
            first, cursor = self.audit_all(cursor)
        finally:
            out, err = p.communicate("COMMIT;\n", timeout=10)
        self.assertEqual(p.returncode, 0, err)
        second, cursor = self.audit_all(cursor)
        self.assertEqual(sorted(x["action"] for x in first + second),
                         ["account.update", "held.action"], first + second)
        self.assertEqual(self.audit_all(cursor)[0], [])
        # an unknown cursor is refused, the start is 0
        self.assertFieldError(self.request("GET", "/v1/audit?after=99999999"), 400,
                              "validation_failed", "after")
        self.assertFieldError(self.request("GET", "/v1/notifications?after=99999999",
                                           token="read"), 400, "validation_failed", "after")

    # ---- test clock (R1.6) ----

    def test_40_clock_moves_are_audited(self):
        r = self.request("PUT", "/v1/test/clock", {"now": "2026-03-01T04:00:00Z"})
        self.assertEqual(self.ok(r), {"now": "2026-03-01T04:00:00Z"})
        rows = self.psql("SELECT actor, action, before->>'now', after->>'now' FROM audit_log "
                         "WHERE action = 'test_clock.set' ORDER BY id DESC LIMIT 1").split()
        self.assertEqual(rows, ["admin|test_clock.set|2026-03-01T03:00:00Z|2026-03-01T04:00:00Z"])

    # ---- R9.3: the database goes away ----

    def test_90_database_down(self):
        schema = self.ok(self.request("GET", "/readyz", token="read"))["schema_version"]
        self.cluster.stop()
        try:
            deadline = time.monotonic() + 15
            while True:
                r = self.request("GET", "/readyz", token="read")
                if r.status == 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.assertStatus(r, 503)
            self.assertEqual((r.json["database"], r.json["schema_version"]), ("down", schema))
            self.assertEqual(self.ok(self.request("GET", "/healthz", token=None)),
                             {"status": "ok"})
            for method, path, body in (
                    ("POST", "/v1/jobs/daily", {"date": "2026-03-01"}),
                    ("POST", "/v1/jobs/invoicing?wait=true", None),
                    ("POST", "/v1/accounts", account_body("DOWN-1")),
                    ("PUT", "/v1/accounts/ext:AA-1/limits", {"total_limit": "600", "reason": "x"}),
                    ("GET", "/v1/notifications", None),
                    ("GET", "/v1/reports/exposure?format=csv", None),
                    ("GET", "/v1/jobs", None),
                    ("GET", "/v1/audit", None)):
                with self.subTest(method=method, path=path):
                    r = self.request(method, path, body, token="admin", timeout=15)
                    self.assertError(r, 503, "unavailable")
                    self.assertRegex(r.header("retry-after", ""), r"^[0-9]+$")
                    self.assertIn("application/json", r.header("content-type", ""))
        finally:
            self.cluster.start()
        self.daemon.wait_ready(timeout=20)
        self.assertEqual(self.psql("SELECT count(*) FROM accounts WHERE external_ref = 'DOWN-1'"
                                   ).strip(), "0")
        self.ok(self.request("GET", "/v1/notifications?limit=1", token="read"))


if __name__ == "__main__":
    harness.main()
