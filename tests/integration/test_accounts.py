#!/usr/bin/env python3
"""Accounts API end to end (API.md "Accounts", "Conventions"; SPEC R2, R9.5):
create with defaults and validation, lookup by UUID and ext:REF, listing with
cursor paging and status filter, PATCH, manual suspend/unsuspend, status
history and the audit log, against the real daemon and a private PostgreSQL.

The module's daemon runs with --test-clock=2023-07-01T00:00:00Z and never
moves the clock, so every business timestamp written here is that time.
"""

import http.client
import json
import os
import re
import subprocess
import time
import urllib.parse

import harness

CLOCK = harness.DEFAULT_TEST_CLOCK  # "2023-07-01T00:00:00Z"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ZERO_UUID = "00000000-0000-4000-8000-000000000000"

# Every field of the account object in API.md.
ACCOUNT_FIELDS = {
    "id", "external_ref", "name", "currency", "jurisdiction", "status", "suspension_reasons",
    "monthly_limit", "total_limit", "monthly_usage", "monthly_remaining", "exposure",
    "total_remaining", "unbilled_usage", "open_balance", "accrued_interest", "credit_balance",
    "contractual_rate", "payment_terms_days", "statutory_rule", "pending_limit_changes",
    "created_at", "terminated_at",
}


def acct_path(ref, suffix=""):
    """Path of an account by ext:REF, with the ref percent-encoded."""
    return "/v1/accounts/ext:" + urllib.parse.quote(ref, safe="") + suffix


class AccountsBase(harness.DaemonTestCase):
    def create(self, ext, token="finance", **fields):
        body = {"external_ref": ext, "name": f"Customer {ext}", "currency": "EUR",
                "jurisdiction": "DE"}
        body.update(fields)
        r = self.request("POST", "/v1/accounts", body, token=token)
        self.assertStatus(r, 201)
        return r

    def count(self, sql):
        return int(self.psql(sql).strip())

    def n_accounts(self):
        return self.count("SELECT count(*) FROM accounts")

    def n_audit(self):
        return self.count("SELECT count(*) FROM audit_log")

    def assertFieldError(self, r, status, code, field):
        self.assertError(r, status, code)
        self.assertEqual(r.json["error"].get("field"), field, r.text)

    def assertRequestId(self, r):
        rid = r.header("x-request-id")
        self.assertIsNotNone(rid, f"no X-Request-Id on {r.status}: {r.headers}")
        self.assertRegex(rid, r"^\S+$")
        return rid

    def list_all(self, query="", token="read", limit=2):
        """Pages through GET /v1/accounts; returns (items, pages)."""
        items, pages, cursor = [], 0, None
        while True:
            q = f"limit={limit}" + (f"&{query}" if query else "")
            if cursor is not None:
                q += "&cursor=" + urllib.parse.quote(cursor, safe="")
            r = self.request("GET", "/v1/accounts?" + q, token=token)
            self.assertStatus(r, 200)
            self.assertEqual(set(r.json), {"items", "next_cursor"}, r.text)
            pages += 1
            self.assertLessEqual(len(r.json["items"]), limit, r.text)
            items += r.json["items"]
            cursor = r.json["next_cursor"]
            if cursor is None:
                return items, pages
            self.assertIsInstance(cursor, str, r.text)
            self.assertEqual(len(r.json["items"]), limit, "a non-final page must be full")
            self.assertLess(pages, 1000, "paging does not end")

    def audit_all(self):
        items, after = [], None
        self.settle_feeds()
        while True:
            path = "/v1/audit?limit=1000" + (f"&after={after}" if after is not None else "")
            r = self.request("GET", path, token="admin")
            self.assertStatus(r, 200)
            items += r.json["items"]
            after = r.json["next_cursor"]
            if after is None:
                return items


class Create(AccountsBase):
    def test_create_defaults_and_every_field(self):
        r = self.create("C-1001", name="Acme GmbH")
        self.assertIn("application/json", r.header("content-type", ""))
        self.assertRequestId(r)
        a = r.json
        self.assertTrue(ACCOUNT_FIELDS <= set(a), f"missing {ACCOUNT_FIELDS - set(a)}")
        self.assertRegex(a["id"], UUID_RE)
        expected = {
            "id": a["id"], "external_ref": "C-1001", "name": "Acme GmbH", "currency": "EUR",
            "jurisdiction": "DE", "status": "active", "suspension_reasons": [],
            "monthly_limit": None, "total_limit": None, "monthly_usage": "0",
            "monthly_remaining": None, "exposure": "0", "total_remaining": None,
            "unbilled_usage": "0", "open_balance": "0", "accrued_interest": "0",
            "credit_balance": "0", "contractual_rate": "12", "payment_terms_days": 15,
            "statutory_rule": a["statutory_rule"], "pending_limit_changes": [],
            "created_at": CLOCK, "terminated_at": None,
        }
        self.assertEqual({k: a[k] for k in ACCOUNT_FIELDS}, expected)
        # The statutory rule of a DE account is DE once statutory rates exist
        # (R6.5); before that migration the view has null.
        self.assertIn(a["statutory_rule"], (None, "DE"))
        # GET returns the same object.
        g = self.request("GET", "/v1/accounts/" + a["id"], token="read")
        self.assertStatus(g, 200)
        self.assertEqual(g.json, a)
        # Stored as sent, created at business time.
        row = self.psql("SELECT external_ref, name, currency, jurisdiction, contractual_rate, "
                        "payment_terms_days, status, created_at = timestamptz '2023-07-01 00:00Z' "
                        f"FROM accounts WHERE id = '{a['id']}'").strip()
        self.assertEqual(row, "C-1001|Acme GmbH|EUR|DE|120000|15|active|t")

    def test_create_with_limits_rate_and_terms(self):
        r = self.create("C-1002", monthly_limit="1000.50", total_limit="5000",
                        contractual_rate="8.25", payment_terms_days=30, jurisdiction="US-NY",
                        currency="USD")
        a = r.json
        self.assertEqual(a["monthly_limit"], "1000.5")
        self.assertEqual(a["monthly_remaining"], "1000.5")
        self.assertEqual(a["total_limit"], "5000")
        self.assertEqual(a["total_remaining"], "5000")
        self.assertEqual(a["monthly_usage"], "0")
        self.assertEqual(a["exposure"], "0")
        self.assertEqual(a["contractual_rate"], "8.25")
        self.assertEqual(a["payment_terms_days"], 30)
        self.assertEqual(a["jurisdiction"], "US-NY")
        self.assertEqual(a["currency"], "USD")
        self.assertEqual(self.psql(f"SELECT monthly_limit, total_limit, contractual_rate FROM "
                                   f"accounts WHERE id = '{a['id']}'").strip(),
                         "1000500000|5000000000|82500")

    def test_create_explicit_null_limits_and_zero_values(self):
        a = self.create("C-1003", monthly_limit=None, total_limit="0", contractual_rate="0",
                        payment_terms_days=0).json
        self.assertIsNone(a["monthly_limit"])
        self.assertIsNone(a["monthly_remaining"])
        self.assertEqual(a["total_limit"], "0")
        self.assertEqual(a["total_remaining"], "0")
        self.assertEqual(a["contractual_rate"], "0")
        self.assertEqual(a["payment_terms_days"], 0)

    def test_validation_names_the_field(self):
        good = {"external_ref": "V-1", "name": "Valid", "currency": "EUR", "jurisdiction": "DE"}

        def without(k):
            return {x: v for x, v in good.items() if x != k}

        cases = [
            (without("external_ref"), "external_ref"),
            (without("name"), "name"),
            (without("currency"), "currency"),
            (without("jurisdiction"), "jurisdiction"),
            (dict(good, external_ref=""), "external_ref"),
            (dict(good, name=""), "name"),
            (dict(good, external_ref=None), "external_ref"),
            (dict(good, external_ref=17), "external_ref"),
            (dict(good, currency="EUX"), "currency"),
            (dict(good, currency="eur"), "currency"),
            (dict(good, currency="EURO"), "currency"),
            (dict(good, jurisdiction="Germany"), "jurisdiction"),
            (dict(good, jurisdiction="de"), "jurisdiction"),
            (dict(good, jurisdiction="D"), "jurisdiction"),
            (dict(good, monthly_limit=100), "monthly_limit"),
            (dict(good, monthly_limit=100.5), "monthly_limit"),
            (dict(good, monthly_limit="1.0000001"), "monthly_limit"),
            (dict(good, monthly_limit="-5"), "monthly_limit"),
            (dict(good, monthly_limit="1e3"), "monthly_limit"),
            (dict(good, monthly_limit=""), "monthly_limit"),
            (dict(good, total_limit="-0.01"), "total_limit"),
            (dict(good, total_limit=5000), "total_limit"),
            (dict(good, colour="blue"), "colour"),
            (dict(good, status="suspended"), "status"),
            (dict(good, contractual_rate="abc"), "contractual_rate"),
            (dict(good, contractual_rate=12), "contractual_rate"),
            (dict(good, contractual_rate="-1"), "contractual_rate"),
            (dict(good, contractual_rate="1.00001"), "contractual_rate"),
            (dict(good, payment_terms_days=400), "payment_terms_days"),
            (dict(good, payment_terms_days=-1), "payment_terms_days"),
            (dict(good, payment_terms_days="15"), "payment_terms_days"),
            (dict(good, payment_terms_days=15.5), "payment_terms_days"),
            (dict(good, external_ref="R" * 129), "external_ref"),
            (dict(good, name="N" * 201), "name"),
            (dict(good, name="tab\there"), "name"),
            (dict(good, monthly_limit="9223372036855"), "monthly_limit"),
            (dict(good, contractual_rate="99999999999"), "contractual_rate"),
        ]
        accounts, audit = self.n_accounts(), self.n_audit()
        for body, field in cases:
            with self.subTest(body=body):
                r = self.request("POST", "/v1/accounts", body, token="finance")
                self.assertFieldError(r, 400, "validation_failed", field)
                self.assertTrue(r.json["error"]["message"], r.text)
                self.assertRequestId(r)
        self.assertEqual(self.n_accounts(), accounts, "a rejected create stored an account")
        self.assertEqual(self.n_audit(), audit, "a rejected create wrote the audit log")
        self.assertEqual(self.count("SELECT count(*) FROM accounts WHERE external_ref = 'V-1'"), 0)

    def test_body_not_json_object(self):
        accounts = self.n_accounts()
        for raw in (b"not json", b'{"external_ref": "J-1",', b'[{"external_ref": "J-1"}]',
                    b'"J-1"', b"", b"null"):
            with self.subTest(body=raw):
                r = self.request("POST", "/v1/accounts", raw, token="finance",
                                 headers={"Content-Type": "application/json"})
                self.assertError(r, 400, "invalid_json")
                self.assertRequestId(r)
        # Duplicate keys are not a valid object either.
        r = self.request("POST", "/v1/accounts",
                         '{"external_ref":"J-1","external_ref":"J-2","name":"n","currency":"EUR",'
                         '"jurisdiction":"DE"}', token="finance")
        self.assertError(r, 400, "invalid_json")
        self.assertEqual(self.n_accounts(), accounts)

    def test_duplicate_external_ref_conflict(self):
        first = self.create("DUP-1", name="First").json
        accounts, audit = self.n_accounts(), self.n_audit()
        history = self.count("SELECT count(*) FROM account_history")
        r = self.request("POST", "/v1/accounts",
                         {"external_ref": "DUP-1", "name": "Second", "currency": "USD",
                          "jurisdiction": "FR"}, token="finance")
        self.assertFieldError(r, 409, "conflict", "external_ref")
        self.assertRequestId(r)
        self.assertEqual(self.n_accounts(), accounts)
        self.assertEqual(self.n_audit(), audit)
        self.assertEqual(self.count("SELECT count(*) FROM account_history"), history)
        g = self.request("GET", acct_path("DUP-1"), token="read")
        self.assertStatus(g, 200)
        self.assertEqual(g.json, first)

    def test_concurrent_duplicates_create_one(self):
        """Five clients create the same external_ref at once: one 201, four
        409 conflicts naming external_ref, one row."""
        body = json.dumps({"external_ref": "RACE-1", "name": "Race", "currency": "EUR",
                           "jurisdiction": "DE"}).encode()
        hdrs = {"Content-Type": "application/json",
                "Authorization": "Bearer " + self.daemon.secret("finance")}
        conns = [http.client.HTTPConnection("127.0.0.1", self.daemon.port, timeout=30)
                 for _ in range(5)]
        try:
            for c in conns:  # all requests are sent before any answer is read
                c.request("POST", "/v1/accounts", body=body, headers=hdrs)
            answers = []
            for c in conns:
                resp = c.getresponse()
                answers.append((resp.status, json.loads(resp.read())))
        finally:
            for c in conns:
                c.close()
        statuses = sorted(st for st, _ in answers)
        self.assertEqual(statuses, [201, 409, 409, 409, 409], answers)
        for st, js in answers:
            if st == 409:
                self.assertEqual(js["error"]["code"], "conflict")
                self.assertEqual(js["error"].get("field"), "external_ref")
        self.assertEqual(self.count("SELECT count(*) FROM accounts WHERE external_ref = 'RACE-1'"), 1)
        self.assertEqual(self.count("SELECT count(*) FROM audit_log WHERE action = 'account.create' "
                                    "AND after->>'external_ref' = 'RACE-1'"), 1)

    def test_sql_looking_strings_are_stored_verbatim(self):
        name = "Robert'); DROP TABLE accounts;--"
        ext = "x' OR '1'='1"
        a = self.create(ext, name=name).json
        self.assertEqual(a["name"], name)
        self.assertEqual(a["external_ref"], ext)
        g = self.request("GET", acct_path(ext), token="read")
        self.assertStatus(g, 200)
        self.assertEqual(g.json["id"], a["id"])
        self.assertEqual(g.json["name"], name)
        self.assertEqual(self.psql(f"SELECT name FROM accounts WHERE id = '{a['id']}'").strip(), name)
        self.assertEqual(self.count("SELECT count(*) FROM pg_tables WHERE tablename = 'accounts'"), 1)
        # The OR '1'='1 in the ref matches nothing else.
        self.assertStatus(self.request("GET", acct_path("y' OR '1'='1"), token="read"), 404)

    def test_unicode_name_round_trips(self):
        name = "Müller & Söhne — Zürich 東京"
        a = self.create("UNI-1", name=name).json
        self.assertEqual(a["name"], name)
        self.assertEqual(self.request("GET", "/v1/accounts/" + a["id"], token="read").json["name"], name)


class Lookup(AccountsBase):
    def test_get_by_uuid_and_ext(self):
        a = self.create("LOOK-1").json
        by_id = self.request("GET", "/v1/accounts/" + a["id"], token="read")
        by_ext = self.request("GET", "/v1/accounts/ext:LOOK-1", token="read")
        self.assertStatus(by_id, 200)
        self.assertStatus(by_ext, 200)
        self.assertEqual(by_id.json, a)
        self.assertEqual(by_ext.json, a)
        # Upper-case UUID text is the same UUID.
        up = self.request("GET", "/v1/accounts/" + a["id"].upper(), token="read")
        self.assertStatus(up, 200)
        self.assertEqual(up.json["id"], a["id"])

    def test_ext_with_url_encoded_chars(self):
        a = self.create("C/1").json
        r = self.request("GET", "/v1/accounts/ext:C%2F1", token="read")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["id"], a["id"])
        self.assertEqual(r.json["external_ref"], "C/1")
        b = self.create("C 2?&#").json
        r = self.request("GET", "/v1/accounts/ext:C%202%3F%26%23", token="read")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["id"], b["id"])

    def test_unknown_and_malformed_are_404(self):
        for path in ("/v1/accounts/" + ZERO_UUID, "/v1/accounts/ext:NO-SUCH-REF",
                     "/v1/accounts/ext:", "/v1/accounts/not-a-uuid", "/v1/accounts/12345",
                     "/v1/accounts/" + ZERO_UUID[:-1], "/v1/accounts/" + ZERO_UUID + "0",
                     "/v1/accounts/{" + ZERO_UUID + "}", "/v1/accounts/" + ZERO_UUID.replace("-", ""),
                     "/v1/accounts/%2e%2e", "/v1/accounts/" + ZERO_UUID + "/history",
                     "/v1/accounts/ext:NO-SUCH-REF/history"):
            with self.subTest(path=path):
                r = self.request("GET", path, token="read")
                self.assertError(r, 404, "not_found")
                self.assertRequestId(r)
        for path in ("/v1/accounts/" + ZERO_UUID, "/v1/accounts/not-a-uuid"):
            with self.subTest(patch=path):
                self.assertError(self.request("PATCH", path, {"name": "x"}, token="finance"),
                                 404, "not_found")
            with self.subTest(suspend=path):
                self.assertError(self.request("POST", path + "/suspend", {"note": "x"},
                                              token="finance"), 404, "not_found")
            with self.subTest(unsuspend=path):
                self.assertError(self.request("POST", path + "/unsuspend", {"note": "x"},
                                              token="finance"), 404, "not_found")


class Listing(AccountsBase):
    def test_cursor_paging_visits_every_account_once(self):
        mine = [self.create(f"PAGE-{i}").json["id"] for i in range(5)]
        items, pages = self.list_all(limit=2)
        ids = [a["id"] for a in items]
        db_ids = self.psql("SELECT id FROM accounts ORDER BY seq").split()
        self.assertEqual(ids, db_ids, "paging must list every account exactly once, in order")
        self.assertEqual(len(ids), len(set(ids)))
        for i in mine:
            self.assertEqual(ids.count(i), 1)
        # Only the last page may be short, and it is never empty: the daemon
        # fetches limit+1 rows to know whether there is a next page.
        self.assertEqual(pages, -(-len(db_ids) // 2))
        # Items are complete account objects.
        for a in items:
            self.assertTrue(ACCOUNT_FIELDS <= set(a))

    def test_exactly_five_with_limit_2_from_a_cursor(self):
        """Starting from the cursor just before five new accounts, limit=2
        pages are 2, 2, 1 and then next_cursor is null."""
        before = self.request("GET", "/v1/accounts?limit=1000", token="read")
        self.assertStatus(before, 200)
        self.assertIsNone(before.json["next_cursor"])
        existing = len(before.json["items"])
        mine = [self.create(f"FIVE-{i}").json["id"] for i in range(5)]
        # The cursor after the existing accounts: page through them first.
        cursor = None
        if existing:
            r = self.request("GET", f"/v1/accounts?limit={existing}", token="read")
            self.assertStatus(r, 200)
            self.assertEqual(len(r.json["items"]), existing)
            cursor = r.json["next_cursor"]
            self.assertIsInstance(cursor, str)
        got, sizes = [], []
        while True:
            q = "/v1/accounts?limit=2" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
            r = self.request("GET", q, token="read")
            self.assertStatus(r, 200)
            sizes.append(len(r.json["items"]))
            got += [a["id"] for a in r.json["items"]]
            cursor = r.json["next_cursor"]
            if cursor is None:
                break
            self.assertLess(len(sizes), 10)
        self.assertEqual(got, mine)
        self.assertEqual(sizes, [2, 2, 1])

    def test_status_filter(self):
        a = self.create("FILT-1").json["id"]
        b = self.create("FILT-2").json["id"]
        self.assertStatus(self.request("POST", f"/v1/accounts/{b}/suspend", {"note": "filter"},
                                       token="finance"), 200)
        susp, _ = self.list_all("status=suspended", limit=2)
        act, _ = self.list_all("status=active", limit=2)
        term, _ = self.list_all("status=terminated", limit=2)
        self.assertEqual([x["id"] for x in susp],
                         self.psql("SELECT id FROM accounts WHERE status = 'suspended' ORDER BY seq").split())
        self.assertEqual([x["id"] for x in act],
                         self.psql("SELECT id FROM accounts WHERE status = 'active' ORDER BY seq").split())
        self.assertEqual(term, [])
        self.assertIn(b, [x["id"] for x in susp])
        self.assertNotIn(a, [x["id"] for x in susp])
        self.assertIn(a, [x["id"] for x in act])
        self.assertTrue(all(x["status"] == "suspended" for x in susp))
        self.assertTrue(all(x["status"] == "active" for x in act))
        r = self.request("GET", "/v1/accounts?status=closed", token="read")
        self.assertFieldError(r, 400, "validation_failed", "status")

    def test_bad_limit_and_cursor(self):
        for q in ("limit=0", "limit=1001", "limit=x", "limit=-1", "limit=", "limit=1.5",
                  "limit=99999999999999999999"):
            with self.subTest(q=q):
                r = self.request("GET", "/v1/accounts?" + q, token="read")
                self.assertFieldError(r, 400, "validation_failed", "limit")
        for q in ("cursor=abc", "cursor=-5"):
            with self.subTest(q=q):
                r = self.request("GET", "/v1/accounts?" + q, token="read")
                self.assertFieldError(r, 400, "validation_failed", "cursor")
        for q in ("limit=1", "limit=1000"):
            with self.subTest(q=q):
                self.assertStatus(self.request("GET", "/v1/accounts?" + q, token="read"), 200)

    def test_default_limit_is_100(self):
        have = self.n_accounts()
        for i in range(max(0, 101 - have)):
            self.create(f"BULK-{i}")
        r = self.request("GET", "/v1/accounts", token="read")
        self.assertStatus(r, 200)
        self.assertEqual(len(r.json["items"]), 100)
        self.assertIsInstance(r.json["next_cursor"], str)


class Patch(AccountsBase):
    def test_patch_fields(self):
        a = self.create("PATCH-1", name="Old Name").json
        r = self.request("PATCH", "/v1/accounts/" + a["id"],
                         {"name": "New Name", "jurisdiction": "FR", "contractual_rate": "9.5",
                          "payment_terms_days": 30}, token="finance")
        self.assertStatus(r, 200)
        self.assertRequestId(r)
        expected = dict(a, name="New Name", jurisdiction="FR", contractual_rate="9.5",
                        payment_terms_days=30)
        expected["statutory_rule"] = r.json["statutory_rule"]
        self.assertIn(r.json["statutory_rule"], (None, "FR"))
        self.assertEqual(r.json, expected)
        g = self.request("GET", acct_path("PATCH-1"), token="read")
        self.assertEqual(g.json, r.json)
        # Partial patch by ext: touches only what it names.
        r = self.request("PATCH", acct_path("PATCH-1"), {"payment_terms_days": 365}, token="finance")
        self.assertStatus(r, 200)
        self.assertEqual(r.json, dict(expected, payment_terms_days=365))
        r = self.request("PATCH", acct_path("PATCH-1"), {"contractual_rate": "0.0001"}, token="finance")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["contractual_rate"], "0.0001")
        self.assertEqual(self.psql(f"SELECT name, jurisdiction, contractual_rate, payment_terms_days "
                                   f"FROM accounts WHERE id = '{a['id']}'").strip(),
                         "New Name|FR|1|365")

    def test_patch_validation(self):
        a = self.create("PATCH-2", name="Keep Me").json
        path = "/v1/accounts/" + a["id"]
        cases = [
            ({"name": ""}, "name"),
            ({"name": 5}, "name"),
            ({"jurisdiction": "Germany"}, "jurisdiction"),
            ({"jurisdiction": "de"}, "jurisdiction"),
            ({"contractual_rate": "abc"}, "contractual_rate"),
            ({"contractual_rate": 5}, "contractual_rate"),
            ({"contractual_rate": "-1"}, "contractual_rate"),
            ({"payment_terms_days": 400}, "payment_terms_days"),
            ({"payment_terms_days": -1}, "payment_terms_days"),
            ({"payment_terms_days": "30"}, "payment_terms_days"),
            ({"currency": "USD"}, "currency"),
            ({"external_ref": "OTHER"}, "external_ref"),
            ({"monthly_limit": "5"}, "monthly_limit"),
            ({"status": "suspended"}, "status"),
            ({"name": "Valid", "payment_terms_days": 400}, "payment_terms_days"),
        ]
        audit = self.n_audit()
        for body, field in cases:
            with self.subTest(body=body):
                r = self.request("PATCH", path, body, token="finance")
                self.assertFieldError(r, 400, "validation_failed", field)
        for raw in (b"nope", b"[1]", b""):
            with self.subTest(raw=raw):
                r = self.request("PATCH", path, raw, token="finance",
                                 headers={"Content-Type": "application/json"})
                self.assertError(r, 400, "invalid_json")
        g = self.request("GET", path, token="read")
        self.assertEqual(g.json, a, "a rejected PATCH changed the account")
        self.assertEqual(self.n_audit(), audit, "a rejected PATCH wrote the audit log")


class SuspendHistoryAudit(AccountsBase):
    def test_suspend_unsuspend_history(self):
        a = self.create("SUS-1").json
        path = "/v1/accounts/" + a["id"]
        s = self.request("POST", path + "/suspend", {"note": "fraud check"}, token="finance")
        self.assertStatus(s, 200)
        rid_s = self.assertRequestId(s)
        self.assertEqual(s.json, dict(a, status="suspended", suspension_reasons=["manual"]))
        # Suspending again keeps one manual reason.
        again = self.request("POST", path + "/suspend", {}, token="finance")
        self.assertStatus(again, 200)
        self.assertEqual(again.json["suspension_reasons"], ["manual"])
        self.assertEqual(again.json["status"], "suspended")

        for body in ({}, {"note": None}, {"note": ""}):
            with self.subTest(unsuspend=body):
                r = self.request("POST", path + "/unsuspend", body, token="finance")
                self.assertFieldError(r, 400, "validation_failed", "note")
        self.assertFieldError(self.request("POST", path + "/suspend", {"reason": "x"},
                                           token="finance"), 400, "validation_failed", "reason")
        self.assertEqual(self.request("GET", path, token="read").json["status"], "suspended")

        u = self.request("POST", acct_path("SUS-1", "/unsuspend"), {"note": "cleared"},
                         token="admin")
        self.assertStatus(u, 200)
        rid_u = self.assertRequestId(u)
        self.assertEqual(u.json, dict(a, status="active", suspension_reasons=[]))

        r = self.request("POST", path + "/unsuspend", {"note": "again"}, token="finance")
        self.assertError(r, 422, "invalid_state")
        self.assertEqual(self.request("GET", path, token="read").json["status"], "active")

        h = self.request("GET", path + "/history", token="read")
        self.assertStatus(h, 200)
        self.assertIsNone(h.json["next_cursor"])
        items = h.json["items"]
        create_rid = self.psql(f"SELECT request_id FROM account_history WHERE account_id = '{a['id']}' "
                               "AND cause = 'created'").strip()
        self.assertEqual(len(items), 3, h.text)  # the repeated suspend changed nothing
        self.assertEqual(items[0], {
            "at": CLOCK, "status_before": "suspended", "status": "active",
            "reasons_before": ["manual"], "reasons": [], "cause": "manual", "actor": "admin",
            "note": "cleared", "request_id": rid_u})
        self.assertEqual(items[1], {
            "at": CLOCK, "status_before": "active", "status": "suspended",
            "reasons_before": [], "reasons": ["manual"], "cause": "manual", "actor": "finance",
            "note": "fraud check", "request_id": rid_s})
        self.assertEqual(items[2], {
            "at": CLOCK, "status_before": None, "status": "active",
            "reasons_before": [], "reasons": [], "cause": "created", "actor": "finance",
            "note": None, "request_id": create_rid})
        # History by ext: and paging with limit=1.
        self.assertEqual(self.request("GET", acct_path("SUS-1", "/history"), token="read").json, h.json)
        p1 = self.request("GET", path + "/history?limit=1", token="read")
        self.assertStatus(p1, 200)
        self.assertEqual(p1.json["items"], items[:1])
        p2 = self.request("GET", path + f"/history?limit=2&cursor={p1.json['next_cursor']}",
                          token="read")
        self.assertEqual(p2.json["items"], items[1:])
        self.assertIsNone(p2.json["next_cursor"])

    def test_audit_log(self):
        c = self.request("POST", "/v1/accounts", {"external_ref": "AUD-1", "name": "Audit Me",
                                                  "currency": "EUR", "jurisdiction": "DE"},
                         token="finance")
        self.assertStatus(c, 201)
        acc = c.json["id"]
        p = self.request("PATCH", "/v1/accounts/" + acc, {"name": "Audited", "payment_terms_days": 20},
                         token="admin")
        self.assertStatus(p, 200)
        s = self.request("POST", f"/v1/accounts/{acc}/suspend", {"note": "audit note"}, token="finance")
        self.assertStatus(s, 200)
        u = self.request("POST", f"/v1/accounts/{acc}/unsuspend", {"note": "back"}, token="finance")
        self.assertStatus(u, 200)
        entries = [e for e in self.audit_all() if e["object_id"] == acc]
        self.assertEqual([e["action"] for e in entries],
                         ["account.create", "account.update", "account.suspend", "account.unsuspend"])
        create, update, suspend, unsuspend = entries
        for e in entries:
            self.assertEqual(e["object_type"], "account")
            self.assertEqual(e["at"], CLOCK)
            self.assertIsInstance(e["id"], int)

        self.assertEqual(create["actor"], "finance")
        self.assertEqual(create["request_id"], c.header("x-request-id"))
        self.assertIsNone(create["before"])
        self.assertEqual({k: create["after"][k] for k in ("id", "external_ref", "name", "currency",
                                                          "jurisdiction", "status")},
                         {"id": acc, "external_ref": "AUD-1", "name": "Audit Me", "currency": "EUR",
                          "jurisdiction": "DE", "status": "active"})

        self.assertEqual(update["actor"], "admin")
        self.assertEqual(update["request_id"], p.header("x-request-id"))
        self.assertEqual(update["before"]["name"], "Audit Me")
        self.assertEqual(update["before"]["payment_terms_days"], 15)
        self.assertEqual(update["after"]["name"], "Audited")
        self.assertEqual(update["after"]["payment_terms_days"], 20)

        self.assertEqual(suspend["actor"], "finance")
        self.assertEqual(suspend["request_id"], s.header("x-request-id"))
        self.assertEqual(suspend["before"], {"status": "active", "reasons": []})
        self.assertEqual(suspend["after"], {"status": "suspended", "reasons": ["manual"],
                                            "note": "audit note"})
        self.assertEqual(unsuspend["request_id"], u.header("x-request-id"))
        self.assertEqual(unsuspend["before"], {"status": "suspended", "reasons": ["manual"]})
        self.assertEqual(unsuspend["after"], {"status": "active", "reasons": [], "note": "back"})

        # Request ids are distinct per call.
        rids = [e["request_id"] for e in entries]
        self.assertEqual(len(set(rids)), 4)

    def test_audit_paging(self):
        for i in range(3):
            self.create(f"AUDP-{i}")
        all_items = self.audit_all()
        ids = [e["id"] for e in all_items]
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(len(ids), self.n_audit())
        self.settle_feeds()
        r = self.request("GET", "/v1/audit?limit=2", token="admin")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["items"], all_items[:2])
        r2 = self.request("GET", f"/v1/audit?limit=2&after={r.json['next_cursor']}", token="admin")
        self.assertEqual(r2.json["items"], all_items[2:4])
        self.assertFieldError(self.request("GET", "/v1/audit?limit=0", token="admin"),
                              400, "validation_failed", "limit")

    def test_audit_needs_admin(self):
        for tok in ("read", "finance", "platform", "ops"):
            with self.subTest(token=tok):
                r = self.request("GET", "/v1/audit", token=tok)
                self.assertError(r, 403, "forbidden")
        self.assertError(self.request("GET", "/v1/audit", token=None), 401, "unauthorized")

    def test_rejected_calls_write_no_history(self):
        a = self.create("NOHIST-1").json
        self.request("POST", f"/v1/accounts/{a['id']}/unsuspend", {"note": "nothing"}, token="finance")
        self.request("POST", f"/v1/accounts/{a['id']}/unsuspend", {}, token="finance")
        h = self.request("GET", f"/v1/accounts/{a['id']}/history", token="read").json["items"]
        self.assertEqual([x["cause"] for x in h], ["created"])
        self.assertEqual(self.count(f"SELECT count(*) FROM audit_log WHERE object_id = '{a['id']}'"), 1)


class ReferenceChecks(AccountsBase):
    """Foreign keys that sql/0013-0015 check once per statement by triggers
    instead of per row: the same refusals (23503 and the constraint's name)
    as the constraints they replace."""

    MISSING = "00000000-0000-4000-8000-00000000dead"

    def refused(self, sql, constraint):
        with self.assertRaises(harness.HarnessError) as cm:
            self.psql("\\set VERBOSITY verbose\n" + sql)
        self.assertIn("23503", str(cm.exception))
        self.assertIn(f'"{constraint}"', str(cm.exception))

    def event_sql(self, *accounts):
        rows = ", ".join(f"(gen_random_uuid(), '{a}', 100, 1, false, false, now(), "
                         "date '2026-01-01', now(), 'sms', 'DE')" for a in accounts)
        return ("INSERT INTO events (id, account_id, amount, quantity, while_suspended, late, "
                f"occurred_at, period, received_at, service, destination) VALUES {rows};")

    def test_rows_naming_a_missing_account_are_refused(self):
        a = self.create("REF-1").json["id"]
        # one bad row among good ones refuses the whole statement
        self.refused(self.event_sql(a, self.MISSING, a), "events_account_id_fkey")
        self.assertEqual(self.count(f"SELECT count(*) FROM events WHERE account_id = '{a}'"), 0)
        self.refused(f"INSERT INTO notifications (account_id, kind, created_at, payload) "
                     f"VALUES ('{self.MISSING}', 'x', now(), '{{}}');", "notifications_account_id_fkey")
        self.refused(f"INSERT INTO usage_rollups (account_id, period, service, destination, quantity, "
                     f"amount, events, unit_min, unit_max, late) VALUES ('{self.MISSING}', "
                     f"date '2026-01-01', 'sms', 'DE', 1, 1, 1, 1, 1, false);",
                     "usage_rollups_account_id_fkey")
        self.refused(f"INSERT INTO invoiced_periods (account_id, period) "
                     f"VALUES ('{self.MISSING}', date '2026-01-01');", "invoiced_periods_account_id_fkey")
        self.refused(f"INSERT INTO invoice_lines (invoice_id, line_no, kind, exact, amount, "
                     f"description) VALUES ('{self.MISSING}', 1, 'usage', 1, 1, 'x');",
                     "invoice_lines_invoice_id_fkey")
        self.psql(self.event_sql(a, a))
        self.refused(f"UPDATE events SET account_id = '{self.MISSING}' WHERE account_id = '{a}';",
                     "events_account_id_fkey")
        self.assertEqual(self.count(f"SELECT count(*) FROM events WHERE account_id = '{a}'"), 2)

    def test_a_referenced_account_cannot_go_or_change_its_id(self):
        a = self.create("REF-2").json["id"]
        self.psql(self.event_sql(a))
        # nothing else refers to it: only the events' check can refuse
        self.psql(f"DELETE FROM account_history WHERE account_id = '{a}'; "
                  f"DELETE FROM notifications WHERE account_id = '{a}';")
        self.refused(f"DELETE FROM accounts WHERE id = '{a}';", "events_account_id_fkey")
        self.refused(f"UPDATE accounts SET id = '{self.MISSING}' WHERE id = '{a}';",
                     "events_account_id_fkey")
        self.assertEqual(self.count(f"SELECT count(*) FROM accounts WHERE id = '{a}'"), 1)

    def test_a_delete_waits_for_writers_that_refer_to_the_account(self):
        # The checks take no row lock on the account (sql/0016); a DELETE of
        # accounts first waits for every writer of a referencing table. An
        # event inserted, not yet committed, when the DELETE starts: the
        # DELETE waits, then sees the event and is refused (without the
        # wait, both would commit and the event would name no account).
        a = self.create("REF-3").json["id"]
        self.psql(f"DELETE FROM account_history WHERE account_id = '{a}'; "
                  f"DELETE FROM notifications WHERE account_id = '{a}';")
        c = self.cluster
        writer = subprocess.Popen(
            [os.path.join(c.bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", c.sockdir,
             "-p", str(c.port), "-U", harness.PG_SUPERUSER, "-d", harness.DEFAULT_DBNAME, "-c",
             "BEGIN; " + self.event_sql(a) + " SELECT pg_sleep(1.5); COMMIT;"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 10
            while self.count("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                             "WHERE c.relname = 'events' AND l.mode = 'RowExclusiveLock' "
                             "AND l.granted") == 0:
                self.assertLess(time.monotonic(), deadline, "the writer never started")
                time.sleep(0.05)
            t = time.monotonic()
            self.refused(f"DELETE FROM accounts WHERE id = '{a}';", "events_account_id_fkey")
            self.assertGreater(time.monotonic() - t, 0.5, "the DELETE did not wait for the writer")
        finally:
            out, err = writer.communicate(timeout=30)
        self.assertEqual(writer.returncode, 0, err)
        self.assertEqual(self.count(f"SELECT count(*) FROM events WHERE account_id = '{a}'"), 1)
        # an account nothing refers to can still go, but only in READ COMMITTED
        b = self.create("REF-4").json["id"]
        self.psql(f"DELETE FROM account_history WHERE account_id = '{b}'; "
                  f"DELETE FROM notifications WHERE account_id = '{b}';")
        with self.assertRaises(harness.HarnessError) as cm:
            self.psql("\\set VERBOSITY verbose\nBEGIN ISOLATION LEVEL REPEATABLE READ; "
                      f"DELETE FROM accounts WHERE id = '{b}'; COMMIT;")
        self.assertIn("0A000", str(cm.exception))
        self.psql(f"DELETE FROM accounts WHERE id = '{b}';")
        self.assertEqual(self.count(f"SELECT count(*) FROM accounts WHERE id = '{b}'"), 0)

    def batch_sql(self, account, sums=True):
        """creditd_ingest_batch for one event of 1.00 on account, by its fast
        path (sums) or its general path (no sums)."""
        occ = "(extract(epoch FROM now()) * 1000000)::bigint"
        per = "(date_trunc('month', now())::date - date '1970-01-01')"
        tot = "ARRAY[1000000::bigint]" if sums else "NULL::bigint[]"
        return (f"SELECT res FROM creditd_ingest_batch(ARRAY['{account}']::uuid[], ARRAY[1], "
                f"ARRAY[gen_random_uuid()], ARRAY[1000000::bigint], ARRAY[{occ}], ARRAY[{per}], "
                f"ARRAY['sms'], ARRAY['DE'], ARRAY[1], ARRAY[true], {tot}, {tot}, ARRAY[{occ}], "
                f"ARRAY[{occ}], ARRAY[1], ARRAY[{per}], ARRAY['sms'], ARRAY['DE'], ARRAY[1::bigint], "
                f"ARRAY[1000000::bigint], ARRAY[1::bigint], ARRAY[1000000::bigint], "
                f"ARRAY[1000000::bigint], {occ}, date_trunc('month', now())::date, ARRAY[80, 90]) "
                "WHERE res IS NOT NULL;")

    def test_ingest_batch_leaves_the_checks_on(self):
        # creditd_ingest_batch skips the reference checks of its own inserts
        # (sql/0017: their accounts are locked and counted); a row written
        # after it in the same transaction is checked again.
        a = self.create("REF-5").json["id"]
        for sums, letter in ((True, "A"), (False, "E")):
            with self.subTest(path=letter):
                out = self.psql("BEGIN; " + self.batch_sql(a, sums) + " COMMIT;")
                self.assertEqual(out.strip(), letter + "a")
                self.refused("BEGIN; " + self.batch_sql(a, sums)
                             + " INSERT INTO notifications (account_id, kind, created_at, payload) "
                             f"VALUES ('{self.MISSING}', 'x', now(), '{{}}'); COMMIT;",
                             "notifications_account_id_fkey")
        self.assertEqual(self.count(f"SELECT count(*) FROM events WHERE account_id = '{a}'"), 2)


if __name__ == "__main__":
    harness.main()
