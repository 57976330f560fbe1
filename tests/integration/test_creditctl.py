#!/usr/bin/env python3
"""scripts/creditctl against the real daemon: tables and --json, the token
from a file (never printed), jobs run --wait after moving the test clock,
reports as CSV, and the exit codes (1 API error, 2 usage, 3 unreachable).
"""

import csv
import datetime as dt
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from decimal import Decimal

import harness

CREDITCTL = os.path.join(harness.SOURCE_ROOT, "scripts", "creditctl")
ADMIN_SECRET = harness.DEFAULT_TOKENS["admin"].secret


def rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


class Creditctl(harness.DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="creditctl-test-")
        cls.token_file = cls.write_token("admin-token", ADMIN_SECRET)
        cls.read_token = cls.write_token("read-token", harness.DEFAULT_TOKENS["read"].secret)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    @classmethod
    def write_token(cls, name, secret):
        path = os.path.join(cls.tmp, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(secret + "\n")
        os.chmod(path, 0o600)
        return path

    # -- helpers

    def ctl(self, *args, token_file="default", url=None, expect=0, env=None):
        """Runs creditctl; checks the exit code and that no secret leaks."""
        e = {k: v for k, v in os.environ.items()
             if not k.startswith("CREDITD_") and k != "CREDENTIALS_DIRECTORY"}
        e["HOME"] = self.tmp  # no ~/.config/creditctl/token of the caller
        e["CREDITD_URL"] = url or self.daemon.base_url
        if token_file == "default":
            token_file = self.token_file
        if token_file:
            e["CREDITD_TOKEN_FILE"] = token_file
        e.update(env or {})
        r = subprocess.run([CREDITCTL, *args], capture_output=True, text=True, env=e, timeout=60,
                           check=False, stdin=subprocess.DEVNULL)
        if expect is not None:
            self.assertEqual(r.returncode, expect,
                             f"creditctl {' '.join(args)}\n--- stdout:\n{r.stdout}\n--- stderr:\n{r.stderr}")
        for secret in (t.secret for t in harness.DEFAULT_TOKENS.values()):
            self.assertNotIn(secret, r.stdout + r.stderr)
        return r

    def ctl_json(self, *args, **kw):
        r = self.ctl("--json", *args, **kw)
        return json.loads(r.stdout)

    def now(self) -> dt.datetime:
        r = self.request("GET", "/v1/test/clock")
        self.assertStatus(r, 200)
        return parse_time(r.json["now"])

    def set_clock(self, t: dt.datetime) -> None:
        r = self.request("PUT", "/v1/test/clock", {"now": rfc3339(t)}, timeout=120)
        self.assertStatus(r, 200)

    def create(self, ref, *extra):
        return self.ctl_json("accounts", "create", "--external-ref", ref, "--name", f"Customer {ref}",
                             "--currency", "EUR", "--jurisdiction", "DE", *extra)

    def api_create(self, ref, **extra):
        """Set-up through the API (cheaper than a creditctl run)."""
        body = {"external_ref": ref, "name": f"Customer {ref}", "currency": "EUR", "jurisdiction": "DE"}
        body.update(extra)
        r = self.request("POST", "/v1/accounts", body)
        self.assertStatus(r, 201)
        return r.json

    # -- tests

    def test_accounts_create_get_list(self):
        acc = self.create("CC-1", "--monthly-limit", "1000.00", "--total-limit", "5000",
                          "--rate", "12", "--terms", "15")
        self.assertEqual(acc["external_ref"], "CC-1")
        self.assertEqual(acc["status"], "active")
        self.assertEqual(acc["payment_terms_days"], 15)
        self.assertEqual(acc["contractual_rate"], "12")
        self.assertEqual(acc["total_limit"], "5000")
        # For people: one "key  value" line per field; a bare external ref.
        r = self.ctl("accounts", "create", "--external-ref", "CC-2", "--name", "Customer CC-2",
                     "--currency", "EUR", "--jurisdiction", "DE")
        self.assertRegex(r.stdout, r"(?m)^external_ref\s+CC-2$")
        r = self.ctl("accounts", "get", "CC-1")
        self.assertRegex(r.stdout, r"(?m)^id\s+" + re.escape(acc["id"]) + r"$")
        self.assertRegex(r.stdout, r"(?m)^monthly_limit\s+1000$")
        # ext:REF, and --json after the command.
        self.assertEqual(json.loads(self.ctl("accounts", "get", "ext:CC-1", "--json").stdout)["id"], acc["id"])

        page = self.ctl_json("accounts", "list")
        refs = [a["external_ref"] for a in page["items"]]
        self.assertIn("CC-1", refs)
        self.assertIn("CC-2", refs)
        self.assertIn("next_cursor", page)
        # Following cursors: pages of one, merged.
        merged = self.ctl_json("accounts", "list", "--all", "--limit", "1")
        self.assertEqual(sorted(a["id"] for a in merged["items"]), sorted(a["id"] for a in page["items"]))
        self.assertIsNone(merged["next_cursor"])

        # The table: a header, aligned columns, amounts right-aligned.
        r = self.ctl("accounts", "list")
        lines = r.stdout.splitlines()
        header = lines[0]
        self.assertTrue(header.startswith("EXTERNAL_REF"), header)
        row = next(ln for ln in lines if ln.startswith("CC-1 "))
        end = header.index("MONTHLY_LIMIT") + len("MONTHLY_LIMIT")
        self.assertEqual(row[:end].split()[-1], "1000")  # ends under the end of its header
        self.assertEqual(row[end:end + 1], " ")
        col = header.index("STATUS")
        self.assertEqual(row[col:].split()[0], "active")
        self.assertEqual(len([ln for ln in lines if ln.startswith("CC-2 ")]), 1)

        # Suspend and history.
        sus = self.ctl_json("accounts", "suspend", "CC-2", "--note", "by creditctl")
        self.assertEqual(sus["suspension_reasons"], ["manual"])
        r = self.ctl("accounts", "history", "CC-2")
        self.assertIn("by creditctl", r.stdout)
        self.assertIn("active -> suspended", r.stdout)

    def test_limits_set_and_changes(self):
        self.api_create("CC-LIM", monthly_limit="100", total_limit="900")
        r = self.ctl("limits", "set", "CC-LIM", "--monthly", "250.50", "--reason", "raise")
        self.assertRegex(r.stdout, r"^applied")
        # A lowering waits for the notice period; none removes a limit.
        obj = self.ctl_json("limits", "set", "CC-LIM", "--monthly", "10", "--total", "none", "--reason", "lower")
        self.assertFalse(obj["applied"])
        r = self.ctl("limits", "changes", "CC-LIM")
        lines = r.stdout.splitlines()
        self.assertIn("MONTHLY_LIMIT", lines[0])
        # The raise, and the lowering split into its raise (no total: at once)
        # and its lowering (scheduled). Blank: unchanged; none: removed.
        self.assertEqual(len(lines), 4, r.stdout)
        self.assertRegex(r.stdout, r"(?m)\bscheduled\s+10\s+\d{4}-.*lower$")
        self.assertRegex(r.stdout, r"(?m)\bapplied\s+none\s+\d{4}-.*lower$")
        self.assertRegex(r.stdout, r"(?m)\bapplied\s+250\.5\s+\d{4}-.*raise$")
        # Inside the notice period without --override: the API's 422 -> exit 1.
        r = self.ctl("limits", "set", "CC-LIM", "--monthly", "5", "--reason", "now",
                     "--effective-at", rfc3339(self.now()), expect=1)
        self.assertIn("notice_period", r.stderr)

    def test_payments_record_list(self):
        acc = self.api_create("CC-PAY")
        received = rfc3339(self.now())
        r = self.ctl("payments", "record", "--account", "CC-PAY", "--amount", "12.30",
                     "--received-at", received, "--reference", "bank-1")
        m = re.search(r"payment id ([0-9a-f-]{36})", r.stderr)
        self.assertIsNotNone(m, r.stderr)
        pid = m.group(1)
        self.assertEqual(str(uuid.UUID(pid)), pid)
        self.assertRegex(r.stdout, r"(?m)^payment\s+" + pid + "$")
        # An explicit id twice: the same payment (idempotent), --json.
        fixed = str(uuid.uuid4())
        args = ("payments", "record", "--account", acc["id"], "--amount", "0.70", "--received-at", received,
                "--reference", "bank-2", "--id", fixed)
        first = self.ctl_json(*args)
        self.assertEqual(first["payment"], fixed)
        self.assertEqual(self.ctl_json(*args), first)
        r = self.ctl("payments", "list", "--account", "CC-PAY")
        self.assertIn(pid, r.stdout)
        self.assertIn(fixed, r.stdout)
        self.assertIn("bank-1", r.stdout)
        r = self.request("GET", "/v1/accounts/ext:CC-PAY")
        self.assertEqual(Decimal(r.json["credit_balance"]), Decimal("13.00"))

    def test_reports_exposure_csv(self):
        self.api_create("CC-REP", monthly_limit="300")
        r = self.ctl("reports", "exposure", "--csv")
        rows = list(csv.reader(io.StringIO(r.stdout)))
        self.assertIn("external_ref", rows[0])
        i = rows[0].index("external_ref")
        self.assertIn("CC-REP", [row[i] for row in rows[1:]])
        r = self.ctl("reports", "exposure")
        self.assertRegex(r.stdout, r"(?m)^CC-REP\s")
        self.assertIn("EXPOSURE", r.stdout)

    def test_zz_jobs_invoicing_wait(self):
        # Last (name order): it moves the test clock forward.
        self.api_create("CC-INV")
        start = self.now()
        self.set_clock(start + dt.timedelta(hours=1))
        ev = {"id": str(uuid.uuid4()), "account": "ext:CC-INV", "amount": "42.10",
              "occurred_at": rfc3339(start + dt.timedelta(minutes=30)), "service": "voice"}
        r = self.request("POST", "/v1/events", [ev], token="platform")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["accepted"], 1, r.text)
        # To the 2nd of the next month: the invoice run falls due on the way.
        period = start.strftime("%Y-%m")
        nxt = (start.replace(day=1) + dt.timedelta(days=32)).replace(day=2, hour=12, minute=0, second=0)
        self.set_clock(nxt)
        job = self.ctl_json("jobs", "run", "invoicing", "--period", period, "--wait")
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["kind"], "invoicing")
        self.assertEqual(job["result"]["period"], period)

        r = self.ctl("invoices", "list", "--account", "CC-INV", "--period", period)
        lines = r.stdout.splitlines()
        self.assertTrue(lines[0].startswith("NUMBER"), r.stdout)
        self.assertEqual(len(lines), 2, r.stdout)
        number = lines[1].split()[0]
        r = self.request("GET", f"/v1/invoices/{number}")
        self.assertStatus(r, 200)
        self.assertEqual(Decimal(r.json["total"]), Decimal("42.10"))
        self.assertIn(r.json["total"], lines[1])
        r = self.ctl("invoices", "get", number)
        self.assertRegex(r.stdout, r"(?m)^usage\s+voice\b")
        html = self.ctl("invoices", "html", number).stdout
        self.assertIn(number, html)
        self.assertIn("<", html)
        # The ops job with a read-only token: forbidden.
        r = self.ctl("jobs", "run", "daily", "--wait", token_file=self.read_token, expect=1)
        self.assertIn("forbidden", r.stderr)

    def test_api_error_exit_1(self):
        r = self.ctl("accounts", "get", "no-such-ref", expect=1)
        self.assertIn("not_found", r.stderr)
        self.assertIn("account not found", r.stderr)
        self.assertEqual(r.stdout, "")
        r = self.ctl("accounts", "create", "--external-ref", "CC-BAD", "--name", "Bad", "--currency", "EUR",
                     "--jurisdiction", "DE", "--monthly-limit", "12.3.4", expect=1)
        self.assertIn("validation_failed", r.stderr)
        self.assertIn("field: monthly_limit", r.stderr)

    def test_no_token_exit_1(self):
        r = self.ctl("accounts", "list", token_file=None, expect=1)
        self.assertIn("unauthorized", r.stderr)
        self.assertIn("no token", r.stderr)
        # The token from ~/.config/creditctl/token.
        home = os.path.join(self.tmp, "home")
        os.makedirs(os.path.join(home, ".config", "creditctl"), exist_ok=True)
        shutil.copy(self.token_file, os.path.join(home, ".config", "creditctl", "token"))
        self.ctl("accounts", "list", token_file=None, env={"HOME": home})

    def test_unreachable_exit_3(self):
        port = harness.free_port()
        r = self.ctl("jobs", "run", "daily", "--wait", url=f"http://127.0.0.1:{port}", expect=3)
        self.assertIn("cannot reach", r.stderr)

    def test_usage_exit_2(self):
        self.ctl("jobs", "run", "reboot", expect=2)
        self.ctl("limits", "set", "CC-1", "--reason", "neither --monthly nor --total", expect=2)
        r = self.ctl("accounts", "list", token_file=os.path.join(self.tmp, "missing"), expect=2)
        self.assertIn("token file", r.stderr)


if __name__ == "__main__":
    harness.main()
