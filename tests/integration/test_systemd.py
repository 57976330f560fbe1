#!/usr/bin/env python3
"""The systemd units in systemd/ are valid and hardened (SPEC R9.4), and
the job units (and systemd/creditd.cron) start jobs with scripts/creditctl
as expected.

- `systemd-analyze verify` passes on a copy of every unit whose ExecStart=
  points to an existing binary (the built daemon, scripts/creditctl);
- `systemd-analyze security --offline=true` rates every service at an
  exposure of 2.0 or lower;
- the job units' ExecStart= (`creditctl ... jobs run KIND --wait`), run the way
  systemd would (Environment=, the token from LoadCredential= in
  $CREDENTIALS_DIRECTORY), POSTs /v1/jobs/KIND?wait=true with the bearer token
  to a fake daemon and maps the job status to its exit code;
- the crontab example runs creditctl jobs the same way.

Exits 77 (meson: skipped) when systemd-analyze is not installed.
"""

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

ANALYZE = shutil.which("systemd-analyze") or next(
    (p for p in ("/usr/bin/systemd-analyze", "/bin/systemd-analyze") if os.access(p, os.X_OK)), None)
if ANALYZE is None:
    print("systemd-analyze not found: skipping")
    sys.exit(77)

import harness  # noqa: E402 (after the skip check)

SOURCE_ROOT = harness.SOURCE_ROOT
UNIT_DIR = os.path.join(SOURCE_ROOT, "systemd")
CREDITCTL = os.path.join(SOURCE_ROOT, "scripts", "creditctl")
MAX_EXPOSURE = 2.0

# Installed path -> path in this checkout, for `verify` (it checks that the
# ExecStart= binary exists and is executable).
REWRITES = {
    "/usr/local/bin/creditctl": CREDITCTL,
    "/usr/local/bin/creditd": harness.CREDITD_BIN,
}


def unit_files():
    names = sorted(n for n in os.listdir(UNIT_DIR) if n.endswith((".service", ".timer", ".socket", ".path")))
    return [os.path.join(UNIT_DIR, n) for n in names]


def analyze(*args, cwd=None):
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                          check=False, env=dict(os.environ, SYSTEMD_LOG_COLOR="0", SYSTEMD_PAGER="",
                                                LC_ALL="C.UTF-8"))


def supports_offline():
    r = analyze("--help")
    return "--offline" in r.stdout


class Units(unittest.TestCase):
    def test_units_present(self):
        names = {os.path.basename(p) for p in unit_files()}
        for n in ("creditd.service", "creditd-invoicing.service", "creditd-invoicing.timer",
                  "creditd-daily.service", "creditd-daily.timer"):
            self.assertIn(n, names)

    def test_main_unit_settings(self):
        with open(os.path.join(UNIT_DIR, "creditd.service"), encoding="utf-8") as f:
            text = f.read()
        for line in ("Type=notify", "NotifyAccess=main", "WatchdogSec=30", "Restart=on-failure",
                     "User=creditd", "Group=creditd", "DynamicUser=no",
                     "ExecStart=/usr/local/bin/creditd --config /etc/creditd/creditd.conf",
                     "ExecReload=/bin/kill -HUP $MAINPID", "EnvironmentFile=-/etc/creditd/env"):
            self.assertRegex(text, r"(?m)^" + re.escape(line) + r"\s*$")

    def test_verify(self):
        for exe in REWRITES.values():
            self.assertTrue(os.access(exe, os.X_OK), f"{exe} is not an executable file")
        with tempfile.TemporaryDirectory(prefix="creditd-units-") as tmp:
            copies = []
            for path in unit_files():
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                for installed, here in REWRITES.items():
                    # The lookahead keeps /usr/local/bin/creditd from matching creditctl.
                    text = re.sub(r"(?m)^(Exec\w+=[-@:+!]*)" + re.escape(installed) + r"(?=\s|$)",
                                  lambda m, here=here: m.group(1) + here, text)
                dst = os.path.join(tmp, os.path.basename(path))
                with open(dst, "w", encoding="utf-8") as f:
                    f.write(text)
                copies.append(dst)
            r = analyze("verify", "--man=no", *copies, cwd=tmp)
            out = r.stdout + r.stderr
            names = [os.path.basename(c) for c in copies]
            ours = [ln for ln in out.splitlines() if tmp in ln or any(n in ln for n in names)]
            self.assertEqual(r.returncode, 0, f"systemd-analyze verify failed:\n{out}")
            self.assertEqual(ours, [], f"systemd-analyze verify complained:\n{out}")

    def test_security_exposure(self):
        if not supports_offline():
            self.skipTest("systemd-analyze has no --offline (systemd < 250)")
        for path in unit_files():
            if not path.endswith(".service"):
                continue
            name = os.path.basename(path)
            with self.subTest(unit=name):
                r = analyze("security", "--offline=true", "--no-pager", path)
                out = r.stdout + r.stderr
                m = re.search(r"Overall exposure level for " + re.escape(name) + r":\s*([0-9]+(?:\.[0-9]+)?)", out)
                self.assertIsNotNone(m, f"no exposure level in:\n{out}")
                level = float(m.group(1))
                self.assertLessEqual(level, MAX_EXPOSURE,
                                     f"{name}: exposure {level} > {MAX_EXPOSURE}:\n"
                                     + "\n".join(ln for ln in out.splitlines() if "✗" in ln))


def unit_settings(path):
    """[Service] settings of a unit file: name -> list of values, in order."""
    settings = {}
    section = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            if section == "Service" and "=" in line:
                k, v = line.split("=", 1)
                settings.setdefault(k.strip(), []).append(v.strip())
    return settings


class _JobsHandler(http.server.BaseHTTPRequestHandler):
    """A fake creditd: POST /v1/jobs/KIND answers answer_status (or an
    error), GET /v1/jobs/ID answers get_status."""

    protocol_version = "HTTP/1.1"
    seen: list = []
    answer_status = "succeeded"
    get_status = "succeeded"
    http_status = 202

    def _reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, body):
        type(self).seen.append({"method": self.command, "path": self.path,
                                "auth": self.headers.get("Authorization"),
                                "ctype": self.headers.get("Content-Type"), "body": body})

    def do_POST(self):  # noqa: N802 (http.server API)
        length = int(self.headers.get("Content-Length", "0"))
        self._record(self.rfile.read(length).decode())
        if self.http_status >= 400:
            self._reply(self.http_status, {"error": {"code": "unauthorized", "message": "no"}})
            return
        kind = self.path.split("?")[0].rsplit("/", 1)[-1]
        self._reply(self.http_status, {"id": "6f1c", "kind": kind, "status": self.answer_status,
                                       "result": {"status": "ignored-nested"}})

    def do_GET(self):  # noqa: N802 (http.server API)
        self._record("")
        self._reply(200, {"id": self.path.rsplit("/", 1)[-1], "kind": "daily", "status": self.get_status})

    def log_message(self, *args):
        pass


class Creditctl(unittest.TestCase):
    """scripts/creditctl as the job units and the crontab run it."""

    @classmethod
    def setUpClass(cls):
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _JobsHandler)
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.url = f"http://127.0.0.1:{cls.server.server_address[1]}"
        cls.tmp = tempfile.mkdtemp(prefix="creditd-ctl-")
        cls.token_file = os.path.join(cls.tmp, "ops-token")
        with open(cls.token_file, "w", encoding="utf-8") as f:
            f.write("  s3cret-ops.token  \n")

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        _JobsHandler.seen = []
        _JobsHandler.answer_status = "succeeded"
        _JobsHandler.get_status = "succeeded"
        _JobsHandler.http_status = 202

    @staticmethod
    def clean_env():
        return {k: v for k, v in os.environ.items()
                if not k.startswith("CREDITD_") and k != "CREDENTIALS_DIRECTORY"}

    def run_ctl(self, *args, token_file=None, env=None):
        e = self.clean_env()
        e.update({"CREDITD_URL": self.url, "CREDITD_TOKEN_FILE": token_file or self.token_file,
                  "HOME": self.tmp})
        e.update(env or {})
        return subprocess.run([CREDITCTL, *args], capture_output=True, text=True, env=e, timeout=60,
                              check=False, stdin=subprocess.DEVNULL)

    def run_unit(self, name, creds):
        """Runs a unit's ExecStart= roughly as systemd would: its Environment=
        (%d = the credentials directory), CREDENTIALS_DIRECTORY, the
        installed path mapped to this checkout."""
        settings = unit_settings(os.path.join(UNIT_DIR, name))
        self.assertEqual(settings.get("LoadCredential"), ["token:/etc/creditd/ops-token"])
        (exec_start,) = settings["ExecStart"]
        argv = exec_start.split()
        self.assertEqual(argv[0], "/usr/local/bin/creditctl")
        e = self.clean_env()
        e.update({"HOME": self.tmp, "CREDENTIALS_DIRECTORY": creds})
        for assignment in settings.get("Environment", []):
            k, v = assignment.split("=", 1)
            e[k] = v.replace("%d", creds)
        e["CREDITD_URL"] = self.url  # what /etc/creditd/creditctl.env would do
        return subprocess.run([CREDITCTL, *argv[1:]], capture_output=True, text=True, env=e, timeout=60,
                              check=False, stdin=subprocess.DEVNULL)

    def test_units_run_creditctl(self):
        creds = os.path.join(self.tmp, "creds")
        os.makedirs(creds, exist_ok=True)
        with open(os.path.join(creds, "token"), "w", encoding="utf-8") as f:
            f.write("from-credential\n")
        for kind in ("invoicing", "daily"):
            with self.subTest(kind=kind):
                _JobsHandler.seen = []
                _JobsHandler.answer_status = "succeeded"
                r = self.run_unit(f"creditd-{kind}.service", creds)
                self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
                self.assertNotIn("from-credential", r.stdout + r.stderr)
                self.assertEqual(len(_JobsHandler.seen), 1)
                req = _JobsHandler.seen[0]
                self.assertEqual(req["path"], f"/v1/jobs/{kind}?wait=true")
                self.assertEqual(req["auth"], "Bearer from-credential")
                self.assertEqual(json.loads(req["body"]), {})
                _JobsHandler.answer_status = "failed"
                r = self.run_unit(f"creditd-{kind}.service", creds)
                self.assertEqual(r.returncode, 1, r.stderr + r.stdout)

    def test_cron_example(self):
        with open(os.path.join(UNIT_DIR, "creditd.cron"), encoding="utf-8") as f:
            lines = [ln.split() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
        jobs = [ln for ln in lines if "=" not in ln[0]]
        env = dict(ln[0].split("=", 1) for ln in lines if "=" in ln[0])
        self.assertIn("CREDITD_TOKEN_FILE", env)
        kinds = set()
        for fields in jobs:
            self.assertGreaterEqual(len(fields), 7, fields)
            self.assertEqual(fields[6], "creditctl", fields)  # m h dom mon dow user command
            cmd = fields[7:]
            i = cmd.index("run")
            kinds.add(cmd[i + 1])
            self.assertIn("--wait", cmd)
        self.assertEqual(kinds, {"invoicing", "daily"})

    def test_daily_succeeds(self):
        r = self.run_ctl("jobs", "run", "daily", "--wait")
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertEqual(len(_JobsHandler.seen), 1)
        req = _JobsHandler.seen[0]
        self.assertEqual(req["path"], "/v1/jobs/daily?wait=true")
        self.assertEqual(req["auth"], "Bearer s3cret-ops.token")
        self.assertEqual(req["ctype"], "application/json")
        self.assertEqual(json.loads(req["body"]), {})
        self.assertNotIn("s3cret", r.stdout + r.stderr)

    def test_invoicing_with_period(self):
        r = self.run_ctl("--json", "jobs", "run", "invoicing", "--period", "2023-06", "--wait")
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertEqual(_JobsHandler.seen[0]["path"], "/v1/jobs/invoicing?wait=true")
        self.assertEqual(json.loads(_JobsHandler.seen[0]["body"]), {"period": "2023-06"})
        self.assertEqual(json.loads(r.stdout)["status"], "succeeded")

    def test_still_running_is_polled(self):
        _JobsHandler.answer_status = "running"
        _JobsHandler.get_status = "failed"
        r = self.run_ctl("jobs", "run", "daily", "--date", "2023-07-02", "--wait")
        self.assertEqual(r.returncode, 1, r.stderr + r.stdout)
        self.assertEqual([s["method"] for s in _JobsHandler.seen], ["POST", "GET"])
        self.assertEqual(json.loads(_JobsHandler.seen[0]["body"]), {"date": "2023-07-02"})
        self.assertEqual(_JobsHandler.seen[1]["path"], "/v1/jobs/6f1c")

    def test_failed_job_exits_1(self):
        _JobsHandler.answer_status = "failed"
        r = self.run_ctl("jobs", "run", "daily", "--wait")
        self.assertEqual(r.returncode, 1, r.stderr + r.stdout)

    def test_http_error_is_an_error(self):
        _JobsHandler.http_status = 401
        r = self.run_ctl("jobs", "run", "daily", "--wait")
        self.assertEqual(r.returncode, 1)
        self.assertIn("unauthorized", r.stderr)

    def test_usage_errors(self):
        self.assertEqual(self.run_ctl().returncode, 2)
        self.assertEqual(self.run_ctl("jobs", "run", "reboot").returncode, 2)
        self.assertEqual(self.run_ctl("jobs", "run", "daily", "--period", "2023-06").returncode, 2)
        self.assertEqual(self.run_ctl("jobs", "run", "daily",
                                      token_file=os.path.join(self.tmp, "missing")).returncode, 2)
        bad = os.path.join(self.tmp, "bad-token")
        with open(bad, "w", encoding="utf-8") as f:
            f.write('x" -H "Evil: 1\n')
        self.assertEqual(self.run_ctl("jobs", "run", "daily", token_file=bad).returncode, 2)
        self.assertEqual(_JobsHandler.seen, [])


if __name__ == "__main__":
    harness.main()
