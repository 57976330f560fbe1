#!/usr/bin/env python3
"""Operating the daemon (API.md "Running", "Health"; SPEC R9): SIGHUP reload
(tokens, broken configs, keys that cannot change), SIGTERM, configuration
errors at start, the CREDITD_DATABASE_CONNINFO override, the database going
away under a running daemon and coming back, `creditd migrate` and the
refusal to run against a newer schema, and /metrics.

The module's cluster hosts the module's daemon (used by the metrics tests)
and the extra daemons that each test starts for itself; the database outage
test has a cluster of its own.
"""

import os
import re
import signal
import socket
import subprocess
import time

import harness

TOKENS = dict(harness.DEFAULT_TOKENS)
TOKENS["old"] = harness.Token("test-old-secret", "read")
TOKENS["changing"] = harness.Token("test-changing-secret", "read")


def account_body(ext):
    return {"external_ref": ext, "name": f"Customer {ext}", "currency": "EUR", "jurisdiction": "DE"}


def embedded_versions():
    """Migration versions compiled into the daemon: the sql/NNNN_*.sql files
    listed in daemon/meson.build (sql_files)."""
    with open(os.path.join(harness.SOURCE_ROOT, "daemon", "meson.build"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"sql_files\s*=\s*files\((.*?)\)", text, re.S)
    assert m, "sql_files not found in daemon/meson.build"
    return sorted(int(v) for v in re.findall(r"sql/(\d{4})_[^'\"]*\.sql", m.group(1)))


def project_version():
    with open(os.path.join(harness.SOURCE_ROOT, "meson.build"), encoding="utf-8") as f:
        m = re.search(r"version\s*:\s*'([^']+)'", f.read())
    assert m
    return m.group(1)


class OpsBase(harness.DaemonTestCase):
    TOKENS = TOKENS

    def new_daemon(self, conninfo=None, config=None, tokens=None, test_clock=None, env=None,
                   start=True):
        d = harness.Daemon(conninfo or self.cluster.conninfo(), config=config,
                           tokens=TOKENS if tokens is None else tokens, test_clock=test_clock,
                           env=env)
        self.addCleanup(d.destroy)
        if start:
            d.start()
            d.wait_ready()
        return d

    def stop_ok(self, d):
        code = d.stop()
        self.assertEqual(code, 0, d.log_tail())

    def sighup(self, d, expect, timeout=10.0):
        """SIGHUP and wait for a log line matching expect (a regex) written
        after the signal."""
        mark = d.log_size()
        d.reload()
        return d.wait_log(expect, timeout=timeout, start=mark), d.log_text_since(mark)

    def createdb(self, name):
        self.cluster.createdb(name)
        return self.cluster.conninfo(name)


class Reload(OpsBase):
    def test_reload_changes_tokens(self):
        d = self.new_daemon()
        self.assertStatus(d.get("/v1/accounts", token="old"), 200)
        self.assertError(d.post("/v1/accounts", account_body("HUP-1"), token="changing"), 403, "forbidden")
        self.assertError(d.get("/v1/accounts", token="test-new-secret"), 401, "unauthorized")

        d.tokens = dict(harness.DEFAULT_TOKENS)
        d.tokens["changing"] = harness.Token("test-changing-secret", "read,write")
        d.tokens["new"] = harness.Token("test-new-secret", "read")
        d.write_config()
        _, log = self.sighup(d, r"reload: configuration .* reloaded")
        self.assertNotIn("keeping", log)

        self.assertStatus(d.get("/v1/accounts", token="test-new-secret"), 200)
        r = d.get("/v1/accounts", token="test-old-secret")  # removed from the file
        self.assertError(r, 401, "unauthorized")
        r = d.post("/v1/accounts", account_body("HUP-1"), token="test-changing-secret")
        self.assertStatus(r, 201)
        # The actor is the token's name from the new config.
        self.assertEqual(self.psql(f"SELECT actor FROM account_history WHERE account_id = "
                                   f"'{r.json['id']}'").strip(), "changing")
        self.assertStatus(d.get("/healthz", token=None), 200)
        self.stop_ok(d)

    def test_reload_reloadable_setting_applies(self):
        d = self.new_daemon()
        body = b'{"external_ref":"HUP-SIZE","name":"n","currency":"EUR","jurisdiction":"DE"}' + b" " * 1500
        d.write_config({"server": {"max_body_bytes": 1024}})
        self.sighup(d, r"reload: configuration .* reloaded")
        r = d.post("/v1/accounts", body, token="finance", headers={"Content-Type": "application/json"})
        self.assertError(r, 413, "too_large")
        d.write_config(None)
        self.sighup(d, r"reload: configuration .* reloaded")
        r = d.post("/v1/accounts", body, token="finance", headers={"Content-Type": "application/json"})
        self.assertStatus(r, 201)
        self.stop_ok(d)

    def test_broken_config_keeps_old(self):
        d = self.new_daemon()
        text = d.config_text(None)
        # Unknown key on a known line; the running config must survive.
        lines = text.splitlines()
        i = lines.index("[server]")
        lines.insert(i + 1, "bogus_key = 1")
        lines.append("[token.new]")
        lines.append(f"sha256 = {harness.sha256_hex('test-new-secret')}")
        lines.append("scopes = admin")
        with open(d.config_path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        _, log = self.sighup(d, r"keeping the running configuration")
        self.assertIn("server.bogus_key", log)
        self.assertIn(f"{d.config_path}:{i + 2}", log)
        self.assertStatus(d.get("/v1/accounts", token="old"), 200)
        self.assertError(d.get("/v1/accounts", token="test-new-secret"), 401, "unauthorized")
        self.assertTrue(d.is_running())

        # Not a config file at all / missing file: kept as well.
        with open(d.config_path, "w", encoding="utf-8") as f:
            f.write("this is not an ini file\n")
        self.sighup(d, r"keeping the running configuration")
        self.assertStatus(d.get("/v1/accounts", token="old"), 200)
        os.unlink(d.config_path)
        self.sighup(d, r"keeping the running configuration")
        self.assertStatus(d.get("/v1/accounts", token="old"), 200)

        # Fixed again: reload works.
        d.tokens = dict(TOKENS)
        del d.tokens["old"]
        d.write_config()
        self.sighup(d, r"reload: configuration .* reloaded")
        self.assertError(d.get("/v1/accounts", token="test-old-secret"), 401, "unauthorized")
        self.stop_ok(d)

    def test_listen_change_refused(self):
        d = self.new_daemon()
        old_port = d.port
        new_port = harness.free_port()
        d.tokens = dict(TOKENS)
        d.tokens["new"] = harness.Token("test-new-secret", "read")
        d.write_config({"server": {"listen": f"127.0.0.1:{new_port}"}})
        _, log = self.sighup(d, r"keeping the running configuration")
        self.assertIn("server.listen", log)
        self.assertIn("cannot be changed by reload", log)
        # The old config stays whole: old port, old tokens only.
        self.assertEqual(d.port, old_port)
        self.assertStatus(d.get("/v1/accounts", token="old"), 200)
        self.assertError(d.get("/v1/accounts", token="test-new-secret"), 401, "unauthorized")
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", new_port), timeout=2).close()
        # Other keys that need a restart: refused as well.
        d.write_config({"database": {"pool_size": 2}})
        _, log = self.sighup(d, r"keeping the running configuration")
        self.assertIn("database.pool_size", log)
        self.stop_ok(d)


class Signals(OpsBase):
    def test_sigterm_exits_0(self):
        d = self.new_daemon()
        self.assertStatus(d.post("/v1/accounts", account_body("TERM-1"), token="finance"), 201)
        self.assertEqual(d.stop(), 0, d.log_tail())
        self.assertFalse(d.is_running())

    def test_sigint_exits_0(self):
        d = self.new_daemon()
        d.signal(signal.SIGINT)
        self.assertEqual(d.proc.wait(timeout=30), 0, d.log_tail())


class ConfigErrors(OpsBase):
    def run_config(self, text, env=None):
        d = harness.Daemon(self.cluster.conninfo(), config=text, tokens=TOKENS, env=env)
        self.addCleanup(d.destroy)
        try:
            r = d.run("--config", d.config_path, timeout=20)
        except subprocess.TimeoutExpired:
            self.fail("creditd ran with a broken config instead of exiting")
        return d, r

    def test_unknown_key(self):
        text = ("# test config\n"           # 1
                "[server]\n"                # 2
                "listen = @LISTEN@\n"       # 3
                "\n"                        # 4
                "frobnicate = yes\n"        # 5
                "[database]\n"
                "conninfo = @CONNINFO@\n")
        d, r = self.run_config(text)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"{d.config_path}:5", r.stderr)
        self.assertIn("server.frobnicate", r.stderr)
        self.assertIn("unknown key", r.stderr)

    def test_bad_value_and_token_key_name_line_and_key(self):
        text = ("[server]\nlisten = @LISTEN@\n[database]\nconninfo = @CONNINFO@\n"
                "[billing]\n"
                "invoice_run_day = 11\n")  # line 6
        d, r = self.run_config(text)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"{d.config_path}:6", r.stderr)
        self.assertIn("billing.invoice_run_day", r.stderr)
        text = ("[server]\nlisten = @LISTEN@\n[database]\nconninfo = @CONNINFO@\n"
                "[token.ci]\n"
                f"sha256 = {harness.sha256_hex('x')}\n"
                "scopes = read\n"
                "colour = blue\n")  # line 8
        d, r = self.run_config(text)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"{d.config_path}:8", r.stderr)
        self.assertIn("token.ci.colour", r.stderr)

    def test_missing_listen(self):
        for text in ("[server]\n[database]\nconninfo = @CONNINFO@\n",
                     "[database]\nconninfo = @CONNINFO@\n"):
            with self.subTest(text=text):
                d, r = self.run_config(text)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn(d.config_path, r.stderr)
                self.assertIn("server.listen", r.stderr)

    def test_missing_conninfo_without_env(self):
        d, r = self.run_config("[server]\nlisten = @LISTEN@\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("database.conninfo", r.stderr)

    def test_conninfo_secret_not_echoed(self):
        d, r = self.run_config("[server]\nlisten = @LISTEN@\n[database]\n"
                               "conninfo = host=/tmp password=hunter2-secret\nbogus = 1\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn("hunter2-secret", r.stderr + r.stdout)

    def test_env_conninfo_override(self):
        nowhere = "host=/nonexistent/creditd-test-nowhere dbname=nowhere user=nobody connect_timeout=2"
        d = self.new_daemon(conninfo=nowhere, env={"CREDITD_DATABASE_CONNINFO": self.cluster.conninfo()})
        r = d.post("/v1/accounts", account_body("ENV-1"), token="finance")
        self.assertStatus(r, 201)
        self.assertEqual(self.psql("SELECT count(*) FROM accounts WHERE external_ref = 'ENV-1'").strip(), "1")
        self.stop_ok(d)
        # The env var also stands in for a missing conninfo key.
        cfg = {"database": {"conninfo": None}}
        d2 = self.new_daemon(config=cfg, env={"CREDITD_DATABASE_CONNINFO": self.cluster.conninfo()})
        self.assertStatus(d2.get("/v1/accounts/ext:ENV-1", token="read"), 200)
        self.stop_ok(d2)

    def test_unreachable_database_is_not_ready(self):
        nowhere = "host=/nonexistent/creditd-test-nowhere dbname=nowhere user=nobody connect_timeout=2"
        d = self.new_daemon(conninfo=nowhere, start=False)
        d.start()  # answers /healthz although the database is not there
        r = d.get("/readyz")
        self.assertStatus(r, 503)
        self.assertEqual(r.json.get("database"), "down", r.text)
        r = d.post("/v1/accounts", account_body("NOWHERE-1"), token="finance")
        self.assertError(r, 503, "unavailable")
        self.assertIsNotNone(r.header("retry-after"), r.headers)
        self.stop_ok(d)


class Migrations(OpsBase):
    def test_migrate_is_idempotent(self):
        conninfo = self.createdb("migtest")
        d = harness.Daemon(conninfo, tokens=TOKENS)
        self.addCleanup(d.destroy)
        versions = embedded_versions()
        self.assertTrue(versions and versions[0] == 1, versions)
        for run in (1, 2):
            r = d.migrate(check=False)
            self.assertEqual(r.returncode, 0, f"run {run}: {r.stdout}{r.stderr}")
            rows = self.cluster.psql("SELECT version, count(*) FROM schema_migrations GROUP BY version "
                                     "ORDER BY version", dbname="migtest").split()
            self.assertEqual(rows, [f"{v}|1" for v in versions], f"after run {run}")
        self.assertIn(f"schema at version {versions[-1]}", r.stderr + r.stdout)
        self.assertEqual(self.cluster.psql("SELECT to_regclass('accounts') IS NOT NULL", dbname="migtest").strip(), "t")
        # The daemon on that database reports the version.
        d.start()
        ready = d.wait_ready()
        self.assertEqual(ready.json.get("database"), "ok", ready.text)
        self.assertEqual(ready.json.get("schema_version"), versions[-1], ready.text)
        self.stop_ok(d)

    def test_newer_schema_refused(self):
        conninfo = self.createdb("newer")
        d = harness.Daemon(conninfo, tokens=TOKENS)
        self.addCleanup(d.destroy)
        d.migrate()
        self.cluster.psql("INSERT INTO schema_migrations (version, name) VALUES (999, '0999_future')",
                          dbname="newer")
        d.start(wait=False)
        try:
            code = d.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.fail("creditd kept running against a newer schema:\n" + d.log_tail())
        self.assertNotEqual(code, 0)
        self.assertIn("newer", d.log_text())
        self.assertIn("999", d.log_text())
        r = d.migrate(check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("newer", r.stdout + r.stderr)
        # Nothing was applied or removed.
        self.assertEqual(self.cluster.psql("SELECT max(version), count(*) FROM schema_migrations",
                                           dbname="newer").strip(),
                         f"999|{len(embedded_versions()) + 1}")


class DatabaseOutage(OpsBase):
    def test_database_down_and_back(self):
        pg = harness.PgCluster()
        self.addCleanup(pg.destroy)
        pg.start()
        pg.createdb()
        d = self.new_daemon(conninfo=pg.conninfo(), start=False)
        d.migrate()
        d.start()
        d.wait_ready()
        self.assertStatus(d.post("/v1/accounts", account_body("UP-1"), token="finance"), 201)

        pg.stop()
        deadline = time.monotonic() + 15
        while True:
            r = d.get("/readyz", timeout=10)
            if r.status == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertStatus(r, 503)
        self.assertEqual(r.json.get("database"), "down", r.text)
        self.assertIn("schema_version", r.json)
        for i in range(3):
            r = d.post("/v1/accounts", account_body(f"DOWN-{i}"), token="finance", timeout=15)
            self.assertError(r, 503, "unavailable")
            self.assertIsNotNone(r.header("retry-after"), r.headers)
            self.assertRegex(r.header("retry-after"), r"^[0-9]+$")
        r = d.get("/v1/accounts/ext:UP-1", token="read", timeout=15)
        self.assertError(r, 503, "unavailable")
        self.assertStatus(d.get("/healthz", token=None), 200)

        pg.start()
        deadline = time.monotonic() + 15
        while True:
            r = d.get("/readyz", timeout=10)
            if r.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertStatus(r, 200, "not ready within 15 s of the database's return")
        self.assertEqual(r.json.get("database"), "ok")
        r = d.post("/v1/accounts", account_body("BACK-1"), token="finance")
        self.assertStatus(r, 201)
        self.assertEqual(pg.psql("SELECT external_ref FROM accounts ORDER BY seq").split(),
                         ["UP-1", "BACK-1"])
        self.assertTrue(d.is_running())
        self.stop_ok(d)

    def test_database_up_after_daemon_start(self):
        """The daemon starts while the database is down (no exit), answers
        /healthz, is not ready, and becomes ready once the database is up."""
        pg = harness.PgCluster()
        self.addCleanup(pg.destroy)
        pg.start()
        pg.createdb()
        d = self.new_daemon(conninfo=pg.conninfo(), start=False)
        d.migrate()
        pg.stop()
        d.start()  # waits for /healthz
        r = d.get("/readyz")
        self.assertStatus(r, 503)
        self.assertEqual(r.json.get("database"), "down", r.text)
        time.sleep(1.0)
        self.assertTrue(d.is_running(), d.log_tail())
        pg.start()
        d.wait_ready(timeout=15)
        self.assertStatus(d.post("/v1/accounts", account_body("LATE-1"), token="finance"), 201)
        self.stop_ok(d)


class Metrics(OpsBase):
    def metrics(self, token="read"):
        r = self.request("GET", "/metrics", token=token)
        self.assertStatus(r, 200)
        self.assertTrue(r.header("content-type", "").startswith("text/plain"), r.headers)
        return r.text

    def sample(self, text, series):
        m = re.search(r"(?m)^" + re.escape(series) + r" ([0-9.e+-]+)$", text)
        return float(m.group(1)) if m else None

    def test_metrics_families(self):
        self.request("GET", "/healthz", token=None)
        text = self.metrics()
        self.assertRegex(text, r'(?m)^creditd_http_requests_total\{route="healthz",status="200"\} [0-9]+$')
        self.assertRegex(text, r'(?m)^creditd_http_request_duration_seconds_bucket\{route="healthz",le="[0-9.]+"\} [0-9]+$')
        self.assertRegex(text, r'(?m)^creditd_http_request_duration_seconds_bucket\{route="healthz",le="\+Inf"\} [0-9]+$')
        self.assertRegex(text, r'(?m)^creditd_db_connections\{state="[a-z]+"\} [0-9]+$')
        self.assertIn(f'creditd_build_info{{version="{project_version()}"}} 1\n', text)
        for family, kind in (("creditd_http_requests_total", "counter"),
                             ("creditd_http_request_duration_seconds", "histogram"),
                             ("creditd_db_connections", "gauge"), ("creditd_build_info", "gauge")):
            self.assertIn(f"# TYPE {family} {kind}\n", text)
        # Pool: default pool_size 4, all ready on a healthy database.
        self.assertEqual(self.sample(text, 'creditd_db_connections{state="ready"}'), 4)

    def test_request_counters_are_exact(self):
        before = self.metrics()
        series_ok = 'creditd_http_requests_total{route="accounts_list",status="200"}'
        series_bad = 'creditd_http_requests_total{route="accounts_list",status="400"}'
        series_401 = 'creditd_http_requests_total{route="accounts_list",status="401"}'
        count = 'creditd_http_request_duration_seconds_count{route="accounts_list"}'
        inf = 'creditd_http_request_duration_seconds_bucket{route="accounts_list",le="+Inf"}'
        for _ in range(3):
            self.assertStatus(self.request("GET", "/v1/accounts", token="read"), 200)
        for _ in range(2):
            self.assertStatus(self.request("GET", "/v1/accounts?limit=0", token="read"), 400)
        self.assertStatus(self.request("GET", "/v1/accounts", token=None), 401)
        after = self.metrics()

        def delta(series):
            return (self.sample(after, series) or 0) - (self.sample(before, series) or 0)

        self.assertEqual(delta(series_ok), 3)
        self.assertEqual(delta(series_bad), 2)
        self.assertEqual(delta(series_401), 1)
        self.assertEqual(delta(count), 6)
        self.assertEqual(delta(inf), 6)
        # Buckets are cumulative and end at the count.
        buckets = [float(v) for v in re.findall(
            r'(?m)^creditd_http_request_duration_seconds_bucket\{route="accounts_list",le="[^"]+"\} ([0-9]+)$', after)]
        self.assertEqual(buckets, sorted(buckets))
        self.assertEqual(buckets[-1], self.sample(after, count))

    def test_metrics_scope(self):
        self.assertError(self.request("GET", "/metrics", token=None), 401, "unauthorized")
        self.metrics(token="platform")


if __name__ == "__main__":
    harness.main()
