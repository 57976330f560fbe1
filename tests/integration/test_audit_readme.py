#!/usr/bin/env python3
"""Audit: what README.md tells a new operator is what happens ("Set-up",
"API summary", "creditctl", "Operations", "Alerts and runbook"; SPEC R5.1,
R9.4, R9.5).

The daemon runs with the demo config itself (config/creditd.conf.example,
only `listen` and `conninfo` replaced), plus single-scope tokens appended
for the scope checks; the demo secrets (demo-NAME-token) are the README's.

* Set-up: the `curl` lines of README and the ones scripts/demo.sh prints
  (its own banner function, run on the daemon's URL), the demo token table
  (secrets, scopes, what each is for).
* API summary: the table against daemon/routes.c (every route listed, every
  listed route there, the same scope), and live: the stated scope is enough
  and every other scope gets 403; unknown body fields are named (400).
* creditctl: every line of the README's creditctl block, as written (placeholders
  such as INV-2026-000123 or ID replaced by the real value), with the
  finance token for finance work and the ops token for jobs; every subcommand
  of --help is in the README block; the token lookup order; amounts sent
  verbatim (a fake daemon records the bodies); errors with code, message and
  field; exit codes; --retry; a failed job (exit 1, its error in `jobs list`,
  as the runbook says).
* Running: the configuration reference is `creditd --describe-config`.
* Operations: the timer services and the cron lines run against the daemon
  with the ops token where README says it lives; the runbook's metric names
  exist in GET /metrics.

Test clock: 2026-10-15T10:00:00Z; setUpClass creates C-1001 with the README's
`accounts create` line, posts one 123.45 voice event at 09:00 and moves the
clock to 2026-11-05T12:00:00Z, so that the 1 November 02:00 run issued
INV-2026-000001 (issued 2026-11-01, due 2026-11-16 with 15 days' terms).

Defects found: `creditctl jobs list` had no ERROR column, so the runbook's
"jobs list --kind invoicing for the error" showed none (fixed, test 17); an
empty REF (`''`, `ext:`) reached the API as "ext:" (404), and an empty
--account listed every account's payments or invoices (fixed: usage error,
exit 2, test 14); creditd_events_while_suspended_total is exported only
after its first event, so the runbook's rate() alert misses the first
burst (test 00b, expected failure: fix needed in daemon/batcher.c).
"""

import csv
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import unittest
import uuid

import harness

ROOT = harness.SOURCE_ROOT
CREDITCTL = os.path.join(ROOT, "scripts", "creditctl")
README = os.path.join(ROOT, "README.md")
EXAMPLE_CONFIG = os.path.join(ROOT, "config", "creditd.conf.example")
UNIT_DIR = os.path.join(ROOT, "systemd")

START = "2026-10-15T10:00:00Z"
NOW = "2026-11-05T12:00:00Z"
README_URL = "http://127.0.0.1:8080"

# The README's demo tokens (Set-up table) and single-scope test tokens.
DEMO = {"admin": "admin", "finance": "read,write", "platform": "ingest,read", "ops": "ops,read"}
EXTRA = {"only_read": "read", "only_write": "write", "only_ingest": "ingest", "only_ops": "ops",
         "not_read": "write,ingest,ops", "not_write": "read,ingest,ops", "not_ingest": "read,write,ops",
         "not_ops": "read,write,ingest"}
TOKENS = {n: harness.Token(f"demo-{n}-token", s) for n, s in DEMO.items()}
TOKENS.update({n: harness.Token(f"test-{n}-secret", s) for n, s in EXTRA.items()})


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def demo_config():
    text = read(EXAMPLE_CONFIG)
    text, n1 = re.subn(r"(?m)^listen = 127\.0\.0\.1:8080$", "listen = @LISTEN@", text)
    text, n2 = re.subn(r"(?m)^conninfo = .*$", "conninfo = @CONNINFO@", text)
    assert n1 == 1 and n2 == 1, "config/creditd.conf.example: listen/conninfo lines changed"
    for name, scopes in EXTRA.items():
        text += f"\n[token.{name}]\nsha256 = {TOKENS[name].sha256}\nscopes = {scopes}\n"
    return text


def readme_section(title, level="##"):
    """The text of README section `title` up to the next heading of its level."""
    text = read(README)
    m = re.search(r"(?m)^" + re.escape(level) + r" " + re.escape(title) + r"\s*$", text)
    assert m, f"README has no section {title!r}"
    rest = text[m.end():]
    n = re.search(r"(?m)^#{2,%d} " % len(level), rest)
    return rest[: n.start()] if n else rest


# README "API summary", as (method, path pattern, scope); {} = a path parameter.
# Scopes as the table states them; unmarked GETs are read (API.md: read = GET).
README_ROUTES = [
    ("GET", "/healthz", None), ("GET", "/readyz", "read"), ("GET", "/metrics", "read"),
    ("POST", "/v1/accounts", "write"), ("GET", "/v1/accounts", "read"), ("GET", "/v1/accounts/{}", "read"),
    ("PATCH", "/v1/accounts/{}", "write"), ("POST", "/v1/accounts/{}/suspend", "write"),
    ("POST", "/v1/accounts/{}/unsuspend", "write"), ("POST", "/v1/accounts/{}/reactivation", "write"),
    ("POST", "/v1/accounts/{}/terminate", "write"), ("GET", "/v1/accounts/{}/history", "read"),
    ("PUT", "/v1/accounts/{}/limits", "write"), ("GET", "/v1/accounts/{}/limit-changes", "read"),
    ("POST", "/v1/accounts/{}/limit-requests", "write"), ("GET", "/v1/limit-requests/{}", "read"),
    ("POST", "/v1/limit-requests/{}/approve", "write"), ("POST", "/v1/limit-requests/{}/decline", "write"),
    ("POST", "/v1/events", "ingest"), ("POST", "/v1/authorize", "ingest"),
    ("GET", "/v1/invoices", "read"), ("GET", "/v1/invoices/{}", "read"),
    ("GET", "/v1/invoices/{}/interest", "read"), ("POST", "/v1/invoices/{}/credit-notes", "write"),
    ("POST", "/v1/payments", "write"), ("POST", "/v1/payments/{}/reverse", "write"),
    ("GET", "/v1/payments", "read"), ("GET", "/v1/payments/{}", "read"),
    ("POST", "/v1/refunds", "write"), ("GET", "/v1/refunds", "read"),
    ("POST", "/v1/jobs/invoicing", "ops"), ("POST", "/v1/jobs/daily", "ops"), ("GET", "/v1/jobs", "read"),
    ("GET", "/v1/jobs/{}", "read"), ("GET", "/v1/schedule", "read"),
    ("GET", "/v1/statutory-rates/{}", "read"), ("GET", "/v1/reference-rates/{}", "read"),
    ("PUT", "/v1/reference-rates/{}", "admin"),
    ("GET", "/v1/reports/exposure", "read"), ("GET", "/v1/reports/aging", "read"),
    ("GET", "/v1/reports/suspensions", "read"),
    ("GET", "/v1/notifications", "read"), ("GET", "/v1/audit", "admin"),
    ("GET", "/v1/test/clock", "admin"), ("PUT", "/v1/test/clock", "admin"),
]

SCOPE_WORDS = {"0": None, "SCOPE_READ": "read", "SCOPE_WRITE": "write", "SCOPE_INGEST": "ingest",
               "SCOPE_OPS": "ops", "SCOPE_ADMIN": "admin"}


def routes_c():
    """(method, pattern, scope) of every entry of daemon/routes.c."""
    text = read(os.path.join(ROOT, "daemon", "routes.c"))
    found = re.findall(r'\{R_(GET|POST|PUT|PATCH),\s*"([^"]+)",\s*(0|SCOPE_[A-Z]+)\s*,', text)
    return [(m, p, SCOPE_WORDS[s]) for m, p, s in found]


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A fake daemon that records request bodies and answers 201 {}."""

    protocol_version = "HTTP/1.1"
    seen: list = []
    unavailable = 0  # answer this many requests 503 first

    def _any(self):
        n = int(self.headers.get("Content-Length", "0"))
        type(self).seen.append((self.command, self.path, self.rfile.read(n).decode()))
        if type(self).unavailable > 0:
            type(self).unavailable -= 1
            data = b'{"error": {"code": "unavailable", "message": "database down"}}'
            self.send_response(503)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        data = b'{"applied": true, "effective_at": "x", "payment": "p", "allocations": [], "credit": "0"}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_PUT = do_GET = _any  # noqa: N815 (http.server API)

    def log_message(self, *args):
        pass


class ReadmeOps(harness.DaemonTestCase):
    CONFIG = demo_config()
    TOKENS = TOKENS
    TEST_CLOCK = START

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="creditd-readme-")
        cls.token_files = {}
        for name in list(DEMO) + ["wrong"]:
            path = os.path.join(cls.tmp, f"{name}-token")
            with open(path, "w", encoding="utf-8") as f:
                f.write((TOKENS[name].secret if name in TOKENS else "wrong-secret") + "\n")
            os.chmod(path, 0o600)
            cls.token_files[name] = path
        # README "creditctl": the accounts create line, as written (finance staff).
        line = next(ln for ln in cls.readme_ctl_lines() if ln.startswith("creditctl accounts create "))
        assert "--external-ref C-1001" in line, line
        cls.create_run = cls.run_ctl_static(line, "finance")
        r = cls.daemon.request("POST", "/v1/events", [harness.event(
            "ext:C-1001", "123.45", "2026-10-15T09:00:00Z", service="voice")], token="platform")
        assert r.status == 200 and r.json["accepted"] == 1, r
        r = cls.daemon.request("PUT", "/v1/test/clock", {"now": NOW}, timeout=120)
        assert r.status == 200, r

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    # -- helpers

    @staticmethod
    def readme_ctl_lines():
        """The README's creditctl block: one string per command (continuations joined)."""
        sec = readme_section("creditctl", "###")
        block = [ln.strip() for ln in sec.splitlines() if ln.startswith("    ")]
        joined, cur = [], ""
        for ln in block:
            cur = (cur + " " + ln) if cur else ln
            if cur.endswith("\\"):
                cur = cur[:-1].rstrip()
                continue
            joined.append(cur)
            cur = ""
        return joined

    @classmethod
    def ctl_env(cls, token="finance", env=None, url=None):
        e = {k: v for k, v in os.environ.items()
             if not k.startswith("CREDITD_") and k != "CREDENTIALS_DIRECTORY"}
        e["HOME"] = cls.tmp  # no ~/.config/creditctl/token
        e["CREDITD_URL"] = url or cls.daemon.base_url
        if token:
            e["CREDITD_TOKEN_FILE"] = cls.token_files[token]
        e.update(env or {})
        return e

    @classmethod
    def run_ctl_static(cls, line, token="finance", env=None, url=None, shell=False):
        """Runs a README line `creditctl ...` (shlex rules) and returns the result."""
        import shlex
        e = cls.ctl_env(token, env, url)
        if shell:
            e["PATH"] = os.path.dirname(CREDITCTL) + os.pathsep + e.get("PATH", "/usr/bin:/bin")
            return subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True, env=e,
                                  timeout=60, check=False, stdin=subprocess.DEVNULL, cwd=cls.tmp)
        argv = shlex.split(line)
        assert argv[0] == "creditctl", line
        return subprocess.run([CREDITCTL, *argv[1:]], capture_output=True, text=True, env=e, timeout=60,
                              check=False, stdin=subprocess.DEVNULL)

    def ctl(self, line, token="finance", expect=0, **kw):
        r = self.run_ctl_static(line, token, **kw)
        if expect is not None:
            self.assertEqual(r.returncode, expect, f"{line}\n--- stdout:\n{r.stdout}\n--- stderr:\n{r.stderr}")
        for tok in TOKENS.values():
            self.assertNotIn(tok.secret, r.stdout + r.stderr, line)
        return r

    def readme_has(self, fragment):
        """Asserts that the README's creditctl block shows `fragment` as written."""
        block = " | ".join(self.readme_ctl_lines())
        self.assertIn(fragment, block)

    def kv(self, text):
        """`key  value` lines of creditctl's object output."""
        out = {}
        for ln in text.splitlines():
            m = re.match(r"^(\S+)\s+(.*)$", ln)
            if m and m.group(1) not in out:
                out[m.group(1)] = m.group(2)
        return out

    def invoice(self, ref="C-1001"):
        r = self.request("GET", f"/v1/invoices?account=ext:{ref}", token="finance")
        self.assertStatus(r, 200)
        self.assertEqual(len(r.json["items"]), 1, r.text)
        return r.json["items"][0]

    def account_api(self, ref, **extra):
        body = {"external_ref": ref, "name": f"Customer {ref}", "currency": "EUR", "jurisdiction": "DE"}
        body.update(extra)
        r = self.request("POST", "/v1/accounts", body, token="finance")
        self.assertStatus(r, 201)
        return r.json

    # -- Alerts and runbook

    README_ALERT_METRICS = ["creditd_invoice_deadline_at_risk", "creditd_invoice_deadline_met", "creditd_db_up",
                            "creditd_webhook_failures_total", "creditd_webhook_pending",
                            "creditd_webhook_given_up", "creditd_events_while_suspended_total",
                            "creditd_scheduler_leader", "creditd_jobs_abandoned_total",
                            "creditd_ingest_queued_events"]

    def readme_metric_names(self):
        """creditd_* names in README that are not SQL functions of sql/."""
        sql_fns = set()
        sql_dir = os.path.join(ROOT, "sql")
        for n in os.listdir(sql_dir):
            if n.endswith(".sql"):
                sql_fns |= set(re.findall(r"FUNCTION\s+(creditd_\w+)", read(os.path.join(sql_dir, n))))
        names = set(re.findall(r"\bcreditd_[a-z0-9_]+", read(README))) - sql_fns
        self.assertTrue(set(self.README_ALERT_METRICS) <= names, sorted(names))
        return sorted(names)

    def metrics_text(self):
        r = self.request("GET", "/metrics", token="finance")
        self.assertStatus(r, 200)
        return r.text

    @staticmethod
    def has_metric(text, name):
        return re.search(r"(?m)^(# TYPE %s |%s[{ ])" % (re.escape(name), re.escape(name)), text) is not None

    def test_00a_runbook_metrics_exist(self):
        text = self.metrics_text()
        missing = [n for n in self.readme_metric_names()
                   if n != "creditd_events_while_suspended_total" and not self.has_metric(text, n)]
        self.assertEqual(missing, [])
        # The runbook's conditions on this healthy daemon (by hand): the
        # October run on 1 November 02:00 met the deadline (end of the 10th).
        for line in ("creditd_db_up 1", "creditd_scheduler_leader 1", "creditd_invoice_deadline_at_risk 0",
                     'creditd_invoice_deadline_met{period="2026-10"} 1', "creditd_webhook_given_up 0",
                     "creditd_jobs_abandoned_total 0", "creditd_ingest_queued_events 0"):
            self.assertRegex(text, r"(?m)^" + re.escape(line) + "$")

    def test_00b_events_while_suspended_counter_exported_from_start(self):
        # was a defect: creditd_events_while_suspended_total appeared only
        # after the first such event (metrics_counter_add on first use), so
        # the README's alert `rate(creditd_events_while_suspended_total[1h])
        # > 0` never saw the first increase; batcher_new registers it at 0.
        self.assertTrue(self.has_metric(self.metrics_text(), "creditd_events_while_suspended_total"))

    # -- Set-up

    def test_01_setup_curl_lines(self):
        if shutil.which("curl") is None:
            self.skipTest("curl not installed")
        sec = readme_section("Set-up: two commands")
        lines = [ln.strip() for ln in sec.splitlines() if ln.strip().startswith("curl ")]
        self.assertEqual(len(lines), 2, lines)
        # demo.sh's own banner (its functions, run on the example config).
        script = ("set -eu\nCREDITD_ROOT=\"$1\"; CONFIG=config/creditd.conf.example\n"
                  "PG_DATA=/x/pg; PG_SOCK=/x/run; CREDITD_DATABASE_CONNINFO='host=/x/run dbname=creditd'\n"
                  "eval \"$(sed -n '/^config_listen()/,/^}/p;/^config_tokens()/,/^}/p;"
                  "/^demo_tokens()/,/^}/p;/^print_banner()/,/^}/p' \"$1/scripts/demo.sh\")\"\n"
                  "url=\"http://$(config_listen)\"\nprint_banner \"$url\"\n")
        r = subprocess.run(["bash", "-c", script, "bash", ROOT], capture_output=True, text=True, timeout=30,
                           check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        banner = r.stdout
        self.assertIn(f"API:       {README_URL}", banner)
        printed = [ln.strip() for ln in banner.splitlines() if ln.strip().startswith("curl ")]
        self.assertEqual(len(printed), 3, banner)
        # The banner's token lines are the README's token table.
        table = dict(re.findall(r"(?m)^\s*\| `(demo-[a-z]+-token)` \| `([a-z,]+)` \|", sec))
        self.assertEqual(table, {f"demo-{n}-token": s for n, s in DEMO.items()})
        shown = dict(re.findall(r"(?m)^\s+(demo-[a-z]+-token)\s+scopes\s+(\S+)$", banner))
        self.assertEqual(shown, table)
        results = {}
        for line in lines + printed:
            cmd = line.replace(README_URL, self.daemon.base_url)
            self.assertNotEqual(cmd, line, line)
            p = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, timeout=30, check=False)
            self.assertEqual(p.returncode, 0, f"{line}: {p.stderr}")
            results[line.rsplit("/", 1)[-1]] = json.loads(p.stdout)
        self.assertEqual(results["healthz"], {"status": "ok"})
        self.assertEqual(results["readyz"]["database"], "ok")
        self.assertGreaterEqual(results["readyz"]["schema_version"], 29)
        self.assertIn("C-1001", [a["external_ref"] for a in results["accounts"]["items"]])
        self.assertIn("next_cursor", results["accounts"])

    def test_02_demo_tokens_do_what_the_table_says(self):
        # admin: everything (audit); finance: read,write (no jobs, no audit);
        # platform: ingest,read (no writes); ops: ops,read (jobs, no writes).
        body = {"external_ref": "TOK-1", "name": "n", "currency": "EUR", "jurisdiction": "DE"}
        self.assertStatus(self.request("POST", "/v1/accounts", body, token="finance"), 201)
        for tok in ("platform", "ops"):
            self.assertError(self.request("POST", "/v1/accounts", dict(body, external_ref="TOK-" + tok),
                                          token=tok), 403, "forbidden")
        r = self.request("POST", "/v1/authorize", {"account": "ext:TOK-1", "amount": "1.00"}, token="platform")
        self.assertStatus(r, 200)
        self.assertTrue(r.json["allowed"], r.text)
        self.assertError(self.request("POST", "/v1/authorize", {"account": "ext:TOK-1", "amount": "1"},
                                      token="finance"), 403, "forbidden")
        self.assertError(self.request("POST", "/v1/jobs/daily", {}, token="finance"), 403, "forbidden")
        self.assertStatus(self.request("POST", "/v1/jobs/daily?wait=true", {}, token="ops"), 202)
        for tok in ("finance", "platform", "ops"):
            self.assertStatus(self.request("GET", "/v1/accounts/ext:TOK-1", token=tok), 200)
            self.assertError(self.request("GET", "/v1/audit", token=tok), 403, "forbidden")
        self.assertStatus(self.request("GET", "/v1/audit", token="admin"), 200)
        # README: [token.NAME] sha256 is `printf %s SECRET | sha256sum`.
        cfg = read(EXAMPLE_CONFIG)
        for name in DEMO:
            m = re.search(r"(?ms)^\[token\.%s\]\s*$.*?^sha256 = ([0-9a-f]{64})$" % name, cfg)
            self.assertIsNotNone(m, name)
            self.assertEqual(m.group(1), hashlib.sha256(f"demo-{name}-token".encode()).hexdigest())

    # -- API summary

    def test_03_api_summary_is_routes_c(self):
        have = routes_c()
        self.assertEqual(len(have), len(set(have)))
        self.assertEqual(sorted(set(have) - set(README_ROUTES)), [], "routes missing from README API summary")
        self.assertEqual(sorted(set(README_ROUTES) - set(have)), [], "README routes the daemon lacks")
        # Every literal path segment of every route appears in the README table.
        sec = readme_section("API summary")
        for _, pattern, _ in have:
            for part in pattern.strip("/").split("/"):
                if part not in ("{}", "v1"):
                    self.assertIn(part, sec, pattern)

    def api_fixture(self):
        """Real objects for every {} of the API table."""
        if getattr(type(self), "_fix", None):
            return type(self)._fix
        acc = self.account_api("API-1", monthly_limit="100")
        r = self.request("POST", f"/v1/accounts/{acc['id']}/limit-requests",
                         {"monthly_limit": "200", "note": "more"}, token="finance")
        self.assertStatus(r, 201)
        lreq = r.json["id"]
        pid = str(uuid.uuid4())
        r = self.request("POST", "/v1/payments", {"id": pid, "account": acc["id"], "amount": "5.00",
                                                  "received_at": NOW, "reference": "API"}, token="finance")
        self.assertStatus(r, 201)
        r = self.request("GET", "/v1/jobs?limit=1", token="finance")
        self.assertStatus(r, 200)
        job = r.json["items"][0]["id"]
        inv = self.invoice()["id"]
        type(self)._fix = {"/v1/accounts/{}": acc["id"], "/v1/limit-requests/{}": lreq, "/v1/invoices/{}": inv,
                           "/v1/payments/{}": pid, "/v1/jobs/{}": job, "/v1/statutory-rates/{}": "DE",
                           "/v1/reference-rates/{}": "DE_BASISZINS"}
        return type(self)._fix

    def concrete(self, pattern):
        fix = self.api_fixture()
        for prefix, value in fix.items():
            if pattern.startswith(prefix):
                return value.join([prefix.replace("{}", ""), pattern[len(prefix):]])
        self.assertNotIn("{}", pattern)
        return pattern

    def test_04_api_summary_scopes_live(self):
        for method, pattern, scope in README_ROUTES:
            path = self.concrete(pattern)
            # A body with an unknown field: the route must refuse it naming
            # the field (README), after the scope check and before any effect.
            body = {"bogus_field": 1} if method != "GET" else None
            with self.subTest(route=f"{method} {pattern}"):
                if scope is None:
                    self.assertStatus(self.request(method, path, token=None), 200)
                    continue
                self.assertError(self.request(method, path, body, token=None), 401, "unauthorized")
                allowed = ["admin"] + ([f"only_{scope}"] if scope != "admin" else [])
                for tok in allowed:
                    r = self.request(method, path, body, token=tok)
                    if method == "GET":
                        self.assertStatus(r, 200, tok)
                    elif pattern == "/v1/events":
                        self.assertError(r, 400, "invalid_json")
                    else:
                        self.assertError(r, 400, "validation_failed")
                        self.assertEqual(r.json["error"].get("field"), "bogus_field", r.text)
                denied = [f"not_{scope}"] if scope != "admin" else ["finance", "platform", "ops"]
                for tok in denied:
                    self.assertError(self.request(method, path, body, token=tok), 403, "forbidden")

    def test_05_api_summary_query_forms(self):
        acc = self.api_fixture()["/v1/accounts/{}"]
        inv = self.invoice()
        forms = {
            "/v1/accounts?status=active&limit=1": "application/json",
            f"/v1/invoices?account=ext:C-1001&period=2026-10&status=open": "application/json",
            f"/v1/invoices/{inv['number']}": "application/json",
            f"/v1/invoices/{inv['number']}?format=html": "text/html",
            f"/v1/invoices/{inv['id']}/interest?as_of=2026-11-30": "application/json",
            f"/v1/payments?account={acc}": "application/json",
            "/v1/jobs?kind=daily": "application/json",
            "/v1/statutory-rates/DE?date=2026-11-05": "application/json",
            "/v1/reports/aging?currency=EUR&as_of=2026-11-30": "application/json",
            "/v1/reports/suspensions?from=2026-10-01&to=2026-11-30": "application/json",
            "/v1/reports/exposure?format=csv": "text/csv",
            "/v1/reports/aging?format=csv": "text/csv",
            "/v1/reports/suspensions?from=2026-10-01&to=2026-11-30&format=csv": "text/csv",
            f"/v1/notifications?after=0&account={acc}&kind=payment.received": "application/json",
        }
        for path, ctype in forms.items():
            with self.subTest(path=path):
                r = self.request("GET", path, token="finance")
                self.assertStatus(r, 200)
                self.assertTrue((r.header("content-type") or "").startswith(ctype), r.header("content-type"))
        r = self.request("GET", f"/v1/notifications?after=0&account={acc}&kind=payment.received", token="finance")
        self.assertEqual([n["kind"] for n in r.json["items"]], ["payment.received"])
        r = self.request("GET", f"/v1/invoices/{inv['number']}", headers={"Accept": "text/html"}, token="finance")
        self.assertTrue(r.header("content-type").startswith("text/html"))
        # "Jobs answer 202 both without and with ?wait=true"; started jobs and
        # clock moves are audited.
        for q in ("", "?wait=true"):
            self.assertStatus(self.request("POST", "/v1/jobs/daily" + q, {}, token="ops"), 202)
        r = self.request("GET", "/v1/audit?limit=1000", token="admin")
        actions = {a["action"] for a in r.json["items"]}
        self.assertTrue({"job.daily", "test_clock.set"} <= actions, actions)

    # -- creditctl: the README block, line by line

    def test_10_creditctl_readme_lines(self):
        lines = self.readme_ctl_lines()
        self.assertEqual(lines[0], "creditctl [--url URL] [--token-file F] [--json] COMMAND ...")
        # The forms run below, as the README shows them (brackets: optional,
        # filled in below; ID, UUID, CURSOR, INV-2026-000123: the real values).
        for fragment in ("accounts list [--status S] [--all]", "accounts get C-1001", "suspend C-1001 --note N",
                         "unsuspend C-1001 --note N", "accounts history C-1001", "terminate C-1001 --note N",
                         'limits set C-1001 --monthly 500 --total none --reason "risk review" '
                         "[--effective-at T --override]", "limits changes C-1001",
                         "payments list [--account C-1001]", "payments reverse ID --reason R",
                         "invoices list [--account C-1001 --period 2026-10 --status overdue]",
                         "invoices get INV-2026-000123", "invoices html INV-2026-000123 > invoice.html",
                         "jobs run invoicing [--period 2026-10] --wait", "jobs run daily [--date 2026-11-03] --wait",
                         "jobs list [--kind daily]", "jobs get ID", "| schedule", "reports exposure [--csv]",
                         "reports aging [--as-of 2026-11-30] [--csv]", "notifications [--after CURSOR]"):
            self.readme_has(fragment)
        r = self.create_run
        self.assertEqual(r.returncode, 0, r.stderr)
        acc = self.kv(r.stdout)
        # Typed "1000.00": account figures in their shortest exact form (README).
        for k, v in (("external_ref", "C-1001"), ("name", "Acme GmbH"), ("currency", "EUR"),
                     ("jurisdiction", "DE"), ("status", "active"), ("monthly_limit", "1000"),
                     ("total_limit", "none"), ("contractual_rate", "12"), ("payment_terms_days", "15"),
                     ("statutory_rule", "DE"), ("created_at", START)):
            self.assertEqual(acc.get(k), v, k)
        aid = acc["id"]

        r = self.ctl("creditctl accounts list --status active --all")
        self.assertRegex(r.stdout, r"(?m)^C-1001\s+Acme GmbH\s+EUR\s+active\s")
        got = self.kv(self.ctl("creditctl accounts get C-1001").stdout)
        # The invoice of 123.45 is open; November has no usage yet.
        self.assertEqual((got["open_balance"], got["monthly_usage"], got["unbilled_usage"]), ("123.45", "0", "0"))

        # limits: lowering 1000 -> 500 waits limit_notice_days = 7: 2026-11-12T12:00:00Z.
        r = self.ctl('creditctl limits set C-1001 --monthly 500 --total none --reason "risk review"')
        self.assertEqual(r.stdout.strip(), "scheduled for 2026-11-12T12:00:00Z")
        r = self.ctl(f'creditctl limits set C-1001 --monthly 500 --total none --reason "risk review" '
                     f'--effective-at {NOW} --override')
        self.assertEqual(r.stdout.strip(), f"applied (effective {NOW})")
        r = self.ctl("creditctl limits changes C-1001")
        self.assertRegex(r.stdout, r"(?m)\bapplied\s+500\s+.*\byes\s+finance\s+risk review$")
        # The override replaced the scheduled lowering.
        self.assertRegex(r.stdout, r"(?m)\bsuperseded\s+500\s+2026-11-12T12:00:00Z\s+-\s+no\s")

        # payments: 100.00 on the invoice of 123.45 -> paid 100.00, balance 23.45.
        inv = self.invoice()
        self.assertEqual((inv["number"], inv["total"], inv["issue_date"], inv["due_date"]),
                         ("INV-2026-000001", "123.45", "2026-11-01", "2026-11-16"))
        pid = str(uuid.uuid4())
        line = next(ln for ln in lines if ln.startswith("creditctl payments record"))
        line = line.replace("[--invoice INV-2026-000123] [--id UUID]", f"--invoice {inv['number']} --id {pid}")
        r = self.ctl(line)
        got = self.kv(r.stdout)
        self.assertEqual((got["payment"], got["amount"], got["credit"]), (pid, "100.00", "0"))
        self.assertRegex(r.stdout, r"(?m)^INV-2026-000001\s+100(\.00)?$")
        inv = self.invoice()
        self.assertEqual((inv["paid"], inv["balance"]), ("100.00", "23.45"))
        for ln in ("creditctl payments list --account C-1001", "creditctl payments list"):
            self.assertRegex(self.ctl(ln).stdout,
                             r"(?m)^%s\s+%s\s+100\s+2026-11-05T10:00:00Z\s+SEPA-123\s" % (pid, aid))
        got = self.kv(self.ctl(f"creditctl payments reverse {pid} --reason R").stdout)
        self.assertEqual((got["id"], got["reversed_at"], got["reverse_reason"]), (pid, NOW, "R"))
        inv = self.invoice()
        self.assertEqual((inv["paid"], inv["balance"]), ("0.00", "123.45"))
        r = self.ctl(f"creditctl payments reverse {pid} --reason R", expect=1)
        self.assertIn("HTTP 422 invalid_state:", r.stderr)

        # invoices (due 2026-11-16: not overdue on 5 November)
        r = self.ctl("creditctl invoices list --account C-1001 --period 2026-10 --status overdue")
        self.assertEqual(r.stdout.strip(), "(none)")
        r = self.ctl("creditctl invoices list --account C-1001 --period 2026-10")
        self.assertRegex(r.stdout, r"(?m)^INV-2026-000001\s+%s\s+2026-10\s+2026-11-01\s+2026-11-16\s+EUR\s+"
                                   r"123\.45\s+0\.00\s+123\.45\s+open\s+0\s" % aid)
        got = self.kv(self.ctl("creditctl invoices get INV-2026-000001").stdout)
        self.assertEqual((got["total"], got["balance"], got["status"]), ("123.45", "123.45", "open"))
        r = self.ctl("creditctl invoices html INV-2026-000001 > invoice.html", shell=True)
        html = read(os.path.join(self.tmp, "invoice.html"))
        self.assertTrue(html.startswith("<!DOCTYPE html>"), html[:100])
        self.assertIn("<title>Invoice INV-2026-000001</title>", html)

        # jobs, with the ops token (README: "ops tooling: jobs")
        r = self.ctl("creditctl jobs run invoicing --period 2026-10 --wait", token="ops")
        job = self.kv(r.stdout)
        self.assertEqual((job["kind"], job["status"], job["result.period"], job["result.invoices"]),
                         ("invoicing", "succeeded", "2026-10", "0"))  # run twice: nothing billed twice
        r = self.ctl("creditctl jobs run daily --date 2026-11-03 --wait", token="ops")
        daily = self.kv(r.stdout)
        self.assertEqual((daily["kind"], daily["status"], daily["result.date"]), ("daily", "succeeded", "2026-11-03"))
        r = self.ctl("creditctl jobs list --kind daily")
        rows = r.stdout.splitlines()[1:]
        self.assertTrue(rows and all(row.split()[1] == "daily" for row in rows), r.stdout)
        self.assertIn(daily["id"], r.stdout)
        got = self.kv(self.ctl(f"creditctl jobs get {daily['id']}").stdout)
        self.assertEqual((got["requested_by"], got["params.date"]), ("ops", "2026-11-03"))
        r = self.ctl("creditctl schedule")
        self.assertRegex(r.stdout, r"(?m)^2026-10\s+2026-11-11T00:00:00Z\s+yes\s+2026-11-01T02:00:00Z\s+1\s+yes$")
        # README "Triggering jobs": invoicing on invoice_run_day (1st, 02:00), the daily job at 00:05.
        self.assertRegex(r.stdout, r"(?m)^invoice_run\s+2026-12-01T02:00:00Z$")
        self.assertRegex(r.stdout, r"(?m)^daily\s+2026-11-06T00:05:00Z$")

        # reports
        r = self.ctl("creditctl reports exposure")
        self.assertRegex(r.stdout, r"(?m)^C-1001\s+Acme GmbH\s+EUR\s+active\s+-\s+0\s+500\s+123\.45\s+none\s+")
        rows = list(csv.DictReader(io.StringIO(self.ctl("creditctl reports exposure --csv").stdout)))
        row = next(x for x in rows if x["external_ref"] == "C-1001")
        self.assertEqual((row["exposure"], row["monthly_limit"], row["total_limit"]), ("123.45", "500", ""))
        # aging on 2026-11-30: 14 days past the due date -> bucket 1-30.
        r = self.ctl("creditctl reports aging --as-of 2026-11-30")
        self.assertRegex(r.stdout, r"(?m)^C-1001\s+Acme GmbH\s+active\s+0\s+123\.45\s+0\s+0\s+0\s+123\.45$")
        r = self.ctl("creditctl reports aging --as-of 2026-11-30 --csv")
        self.assertIn(f"account,EUR,{aid},C-1001,Acme GmbH,0,123.45,0,0,0,123.45", r.stdout.splitlines())

        # notifications, then --after the cursor it names
        r = self.ctl("creditctl notifications --all")
        for kind in ("invoice.issued", "payment.received", "payment.reversed", "limit.change_scheduled"):
            self.assertIn(kind, r.stdout)
        m = re.search(r"next time: --after (\S+)", r.stderr)
        self.assertIsNotNone(m, r.stderr)
        self.assertEqual(self.ctl(f"creditctl notifications --after {m.group(1)}").stdout.strip(), "(none)")

        # suspend, unsuspend, history, terminate (last: it ends C-1001)
        got = self.kv(self.ctl("creditctl accounts suspend C-1001 --note N").stdout)
        self.assertEqual((got["status"], got["suspension_reasons"]), ("suspended", "manual"))
        got = self.kv(self.ctl("creditctl accounts unsuspend C-1001 --note N").stdout)
        self.assertEqual((got["status"], got["suspension_reasons"]), ("active", "-"))
        r = self.ctl("creditctl accounts history C-1001")
        self.assertRegex(r.stdout, r"(?m)^%s\s+suspended -> active\s+-\s+manual\s+finance\s+N$" % NOW)
        self.assertRegex(r.stdout, r"(?m)^%s\s+active -> suspended\s+manual\s+manual\s+finance\s+N$" % NOW)
        r = self.ctl("creditctl accounts terminate C-1001 --note N")
        got = self.kv(r.stdout)
        self.assertEqual(got["status"], "terminated")
        self.assertEqual(got["accelerated_invoices"], "INV-2026-000001")
        self.assertRegex(self.ctl("creditctl accounts list --status terminated").stdout, r"(?m)^C-1001\s")

    def test_11_every_help_subcommand_is_in_readme(self):
        def commands(text):
            """The COMMAND/SUBCOMMAND list of an argparse help text."""
            m = re.search(r"(?ms)^positional arguments:\n  [A-Z]+\n(.*?)(?:\n\n|\Z)", text)
            return re.findall(r"(?m)^    ([a-z]+)\s", m.group(1)) if m else []

        groups = commands(self.ctl("creditctl --help", token=None).stdout)
        self.assertEqual(sorted(groups), ["accounts", "invoices", "jobs", "limits", "notifications", "payments",
                                          "reports", "schedule"])
        # (group, subcommand) of the README block: "creditctl G S ... | S ... | G S ..."
        readme = set()
        for line in self.readme_ctl_lines()[1:]:
            segs = line.split(" | ")
            words = segs[0].split()
            group = words[1]
            readme.add((group, words[2] if len(words) > 2 and not words[2].startswith(("-", "[")) else None))
            for seg in segs[1:]:
                w = seg.split()
                if w[0] in groups:
                    group = w[0]
                    readme.add((group, w[1] if len(w) > 1 and not w[1].startswith(("-", "[")) else None))
                else:
                    readme.add((group, w[0]))
        helped = set()
        for g in groups:
            subs = commands(self.ctl(f"creditctl {g} --help", token=None).stdout)
            helped |= {(g, s) for s in subs} if subs else {(g, None)}
        self.assertEqual(sorted(helped - readme, key=str), [], "in --help, not in README")
        self.assertEqual(sorted(readme - helped, key=str), [], "in README, not in --help")

    def test_12_token_lookup_order(self):
        # README: --token-file, $CREDITD_TOKEN_FILE, $CREDITD_TOKEN,
        # $CREDENTIALS_DIRECTORY/token, ~/.config/creditctl/token.
        good, bad = TOKENS["finance"].secret, "wrong-secret"
        levels = ["opt", "env_file", "env", "creds", "home"]

        def setup(values):
            """values: level -> secret; returns (extra argv, env)."""
            d = tempfile.mkdtemp(dir=self.tmp)
            argv, env = [], {"HOME": os.path.join(d, "home")}
            for level, secret in values.items():
                path = os.path.join(d, level + ".secret")
                with open(path, "w", encoding="utf-8") as f:
                    f.write(secret + "\n")
                if level == "opt":
                    argv = ["--token-file", path]
                elif level == "env_file":
                    env["CREDITD_TOKEN_FILE"] = path
                elif level == "env":
                    env["CREDITD_TOKEN"] = secret
                elif level == "creds":
                    os.makedirs(os.path.join(d, "creds"))
                    shutil.copy(path, os.path.join(d, "creds", "token"))
                    env["CREDENTIALS_DIRECTORY"] = os.path.join(d, "creds")
                else:
                    os.makedirs(os.path.join(d, "home", ".config", "creditctl"))
                    shutil.copy(path, os.path.join(d, "home", ".config", "creditctl", "token"))
            return argv, env

        for i, level in enumerate(levels):
            for mine, rest, expect in ((good, bad, 0), (bad, good, 1)):
                values = {level: mine}
                values.update({lower: rest for lower in levels[i + 1:]})
                argv, env = setup(values)
                with self.subTest(level=level, wins=mine == good):
                    r = self.ctl("creditctl " + " ".join(argv + ["schedule"]), token=None, env=env, expect=expect)
                    self.assertNotIn(good, r.stdout + r.stderr)
                    if expect:
                        self.assertIn("HTTP 401 unauthorized", r.stderr)
        argv, env = setup({})
        r = self.ctl("creditctl schedule", token=None, env=env, expect=1)
        self.assertIn("no token configured", r.stderr)

    def recorder(self):
        """A fake daemon (_Recorder) for this test; its URL."""
        _Recorder.seen = []
        _Recorder.unavailable = 0
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        threading.Thread(target=srv.serve_forever, daemon=True).start()

        def stop():
            srv.shutdown()
            srv.server_close()
        self.addCleanup(stop)
        return f"http://127.0.0.1:{srv.server_address[1]}"

    def test_13_amounts_sent_verbatim(self):
        url = self.recorder()
        pid = str(uuid.uuid4())
        # Amounts a float would change: 17 significant digits, trailing zeros, 0.10.
        cmds = [
            "creditctl accounts create --external-ref V-1 --name V --currency EUR --jurisdiction DE "
            "--monthly-limit 1000.00 --total-limit 12345678901234.56 --rate 12.5000 --terms 15",
            "creditctl limits set V-1 --monthly 0.10 --total none --reason r",
            f"creditctl payments record --account V-1 --amount 99999999999999.99 --received-at {NOW} "
            f"--reference R --id {pid}",
        ]
        for c in cmds:
            self.ctl(c, url=url)
        bodies = [json.loads(b) for _, _, b in _Recorder.seen]
        self.assertEqual([p for _, p, _ in _Recorder.seen], ["/v1/accounts", "/v1/accounts/ext:V-1/limits",
                                                               "/v1/payments"])
        self.assertEqual({k: bodies[0][k] for k in ("monthly_limit", "total_limit", "contractual_rate",
                                                     "payment_terms_days")},
                         {"monthly_limit": "1000.00", "total_limit": "12345678901234.56",
                          "contractual_rate": "12.5000", "payment_terms_days": 15})
        self.assertEqual(bodies[1], {"reason": "r", "monthly_limit": "0.10", "total_limit": None})
        self.assertEqual(bodies[2], {"id": pid, "account": "ext:V-1", "amount": "99999999999999.99",
                                     "received_at": NOW, "reference": "R"})

    def test_14_errors_and_exit_codes(self):
        self.account_api("ERR-1")
        # 1: API errors print HTTP status, code, message and field on stderr, nothing on stdout.
        pid = str(uuid.uuid4())
        r = self.ctl(f"creditctl payments record --account ERR-1 --amount 1e3 --received-at {NOW} "
                     f"--reference X --id {pid}", expect=1)
        self.assertEqual(r.stdout, "")
        self.assertIn("HTTP 400 validation_failed: amount: not a plain decimal number (field: amount)", r.stderr)
        r = self.ctl(f"creditctl payments record --account ERR-1 --amount 10.001 --received-at {NOW} "
                     f"--reference X --id {pid}", expect=1)
        self.assertIn("validation_failed", r.stderr)
        self.assertIn("(field: amount)", r.stderr)
        self.ctl(f"creditctl payments record --account ERR-1 --amount 10.00 --received-at {NOW} "
                 f"--reference X --id {pid}")
        r = self.ctl(f"creditctl payments record --account ERR-1 --amount 10.01 --received-at {NOW} "
                     f"--reference X --id {pid}", expect=1)
        self.assertIn("HTTP 409 conflict:", r.stderr)
        r = self.ctl("creditctl jobs run daily --wait", token="finance", expect=1)
        self.assertIn("HTTP 403 forbidden: token lacks the 'ops' scope", r.stderr)
        r = self.ctl("creditctl accounts get NO-SUCH", expect=1)
        self.assertIn("HTTP 404 not_found:", r.stderr)
        # 2: usage and local configuration
        for line in ("creditctl payments record --account ERR-1", "creditctl accounts list --limit 0",
                     "creditctl --url ftp://x schedule", "creditctl jobs run invoicing --date 2026-11-01",
                     "creditctl --retry -1 schedule", "creditctl accounts get ''", "creditctl accounts get ext:",
                     f"creditctl payments record --account '' --amount 1 --received-at {NOW} --reference X",
                     "creditctl invoices list --account ext:"):
            with self.subTest(line=line):
                self.ctl(line, expect=2)
        # 3: unreachable (--retry: test 15)
        r = self.ctl("creditctl jobs run daily --wait", token="ops",
                     url=f"http://127.0.0.1:{harness.free_port()}", expect=3)
        self.assertIn("cannot reach creditd", r.stderr)

    def test_15_retry_and_url_order(self):
        # README: --retry N retries what is safe to repeat (GETs, jobs,
        # payments with their id); --url, $CREDITD_URL, http://127.0.0.1:8080.
        url = self.recorder()
        pid = str(uuid.uuid4())
        _Recorder.unavailable = 1
        self.ctl(f"creditctl --retry 1 payments record --account R-1 --amount 1.50 --received-at {NOW} "
                 f"--reference R --id {pid}", url=url)
        self.assertEqual(len(_Recorder.seen), 2)
        self.assertEqual(_Recorder.seen[0], _Recorder.seen[1])  # the same payment id, resent
        for line in ("creditctl --retry 1 limits set R-1 --monthly 5 --reason r",
                     "creditctl --retry 1 accounts create --external-ref R-2 --name n --currency EUR "
                     "--jurisdiction DE"):
            with self.subTest(line=line):
                _Recorder.seen = []
                _Recorder.unavailable = 1
                r = self.ctl(line, url=url, expect=1)  # not safe to repeat: the 503 is the answer
                self.assertIn("HTTP 503 unavailable: database down (retry after 1 s)", r.stderr)
                self.assertEqual(len(_Recorder.seen), 1)
        _Recorder.seen = []
        self.ctl(f"creditctl --url {url} schedule", env={"CREDITD_URL": f"http://127.0.0.1:{harness.free_port()}"})
        self.assertEqual([p for _, p, _ in _Recorder.seen], ["/v1/schedule"])
        e = self.ctl_env("finance")
        e.pop("CREDITD_URL")
        r = subprocess.run([CREDITCTL, "schedule"], capture_output=True, text=True, env=e, timeout=30, check=False)
        if r.returncode == 3:
            self.assertIn(f"cannot reach creditd at {README_URL}", r.stderr)

    def test_17_failed_job_exit_1_and_its_error_listed(self):
        # README: `jobs run --wait` exits 1 for a failed job; the runbook:
        # "`creditctl jobs list --kind invoicing` for the error". The daily
        # job's last step is made to fail for this test only.
        sig = "creditd_daily_inactivity(date, integer, timestamp with time zone)"
        original = self.psql(f"SELECT pg_get_functiondef('{sig}'::regprocedure)")
        self.assertIn("CREATE OR REPLACE FUNCTION", original)
        self.addCleanup(self.psql, original)
        self.psql("""CREATE OR REPLACE FUNCTION creditd_daily_inactivity(p_day date, p_months int,
                         p_at timestamptz) RETURNS SETOF uuid LANGUAGE plpgsql AS $f$
                     BEGIN RAISE EXCEPTION 'injected readme failure'; END $f$""")
        r = self.ctl("creditctl jobs run daily --wait", token="ops", expect=1)
        job = self.kv(r.stdout)
        self.assertEqual((job["kind"], job["status"]), ("daily", "failed"))
        self.assertIn(f"daily job {job['id']}: failed", r.stderr)
        r = self.ctl("creditctl jobs list --kind daily --limit 1")
        self.assertIn(job["id"], r.stdout)
        self.assertIn("injected readme failure", r.stdout)  # the ERROR column
        r = self.ctl(f"creditctl --json jobs get {job['id']}")
        self.assertIn("injected readme failure", json.loads(r.stdout)["error"])

    # -- Running: the configuration reference

    def test_16_config_reference_is_describe_config(self):
        r = self.daemon.run("--describe-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Generated by `creditd --describe-config`:\n\n" + r.stdout.strip() + "\n", read(README))

    # -- Operations: timers, services, cron

    def unit(self, name):
        settings = {}
        for ln in read(os.path.join(UNIT_DIR, name)).splitlines():
            ln = ln.strip()
            if ln and not ln.startswith(("#", ";", "[")) and "=" in ln:
                k, v = ln.split("=", 1)
                settings.setdefault(k, []).append(v)
        return settings

    def test_20_job_units_against_the_daemon(self):
        ops = readme_section("Operations")
        self.assertIn("`creditctl --retry 3 jobs run invoicing|daily --wait` with an ops token from\n"
                      "`LoadCredential=token:/etc/creditd/ops-token`", ops)
        creds = os.path.join(self.tmp, "creds")
        os.makedirs(creds, exist_ok=True)
        shutil.copy(self.token_files["ops"], os.path.join(creds, "token"))
        for kind in ("invoicing", "daily"):
            with self.subTest(kind=kind):
                s = self.unit(f"creditd-{kind}.service")
                self.assertEqual(s["ExecStart"], [f"/usr/local/bin/creditctl --retry 3 jobs run {kind} --wait"])
                self.assertEqual(s["LoadCredential"], ["token:/etc/creditd/ops-token"])
                env = {"CREDENTIALS_DIRECTORY": creds}
                for a in s.get("Environment", []):
                    k, v = a.split("=", 1)
                    env[k] = v.replace("%d", creds)
                self.assertEqual(env.get("CREDITD_URL"), README_URL)  # the example config's listen
                env["CREDITD_URL"] = self.daemon.base_url  # what /etc/creditd/creditctl.env would set
                line = s["ExecStart"][0].replace("/usr/local/bin/creditctl", "creditctl")
                r = self.ctl(line, token=None, env=env)
                job = self.kv(r.stdout)
                self.assertEqual((job["kind"], job["status"]), (kind, "succeeded"))
                got = self.request("GET", f"/v1/jobs/{job['id']}", token="finance").json
                self.assertEqual(got["requested_by"], "ops")
                t = self.unit(f"creditd-{kind}.timer")
                self.assertEqual(len(t["OnCalendar"]), 1)
        # Timers and cron lines run just after the daemon's own runs (demo
        # config: the 1st at 02:00; the daily job at 00:05).
        self.assertEqual(self.unit("creditd-invoicing.timer")["OnCalendar"], ["*-*-01 02:15:00"])
        self.assertEqual(self.unit("creditd-daily.timer")["OnCalendar"], ["*-*-* 00:20:00"])
        cfg = read(EXAMPLE_CONFIG)
        self.assertRegex(cfg, r"(?m)^invoice_run_day = 1$")
        self.assertRegex(cfg, r"(?m)^invoice_run_time = 02:00$")

    def test_21_cron_lines_against_the_daemon(self):
        text = read(os.path.join(UNIT_DIR, "creditd.cron"))
        env = dict(re.findall(r"(?m)^([A-Z_]+)=(.*)$", text))
        self.assertEqual(env["CREDITD_TOKEN_FILE"], "/etc/creditd/ops-token")  # as the units' credential
        self.assertEqual(env["CREDITD_URL"], README_URL)
        lines = re.findall(r"(?m)^#?\s*([0-9*/,-]+\s+){5}creditd-ops\s+(creditctl .*)$", text)
        cmds = [c for _, c in lines]
        self.assertEqual(len(cmds), 3, cmds)  # daily, invoicing, and the optional report
        for cmd in cmds:
            with self.subTest(cmd=cmd):
                r = self.ctl(cmd, token="ops", shell=True)
                if "reports exposure --csv" in cmd:
                    self.assertTrue(r.stdout.startswith("external_ref,"), r.stdout[:200])
                else:
                    self.assertEqual(r.stdout, "")


if __name__ == "__main__":
    harness.main()
