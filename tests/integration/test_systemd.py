#!/usr/bin/env python3
"""The systemd units in systemd/ are valid and hardened (SPEC R9.4), and
scripts/creditd-trigger talks to the jobs API as the timer units expect.

- `systemd-analyze verify` passes on a copy of every unit whose ExecStart=
  points to an existing binary (the built daemon, the trigger script);
- `systemd-analyze security --offline=true` rates every service at an
  exposure of 2.0 or lower;
- creditd-trigger POSTs /v1/jobs/JOB?wait=true with the bearer token from its
  token file (never on the command line) and maps the job status to its exit
  code.

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
TRIGGER = os.path.join(SOURCE_ROOT, "scripts", "creditd-trigger")
MAX_EXPOSURE = 2.0

# Installed path -> path in this checkout, for `verify` (it checks that the
# ExecStart= binary exists and is executable).
REWRITES = {
    "/usr/local/bin/creditd-trigger": TRIGGER,
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
                    # Longest first (dict order): creditd-trigger before creditd.
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


class _JobsHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list = []
    answer_status = "succeeded"
    http_status = 200

    def do_POST(self):  # noqa: N802 (http.server API)
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode()
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                "ctype": self.headers.get("Content-Type"), "body": body})
        if self.http_status != 200:
            payload = {"error": {"code": "unauthorized", "message": "no"}}
        else:
            kind = self.path.split("?")[0].rsplit("/", 1)[-1]
            payload = {"id": "6f1c", "kind": kind, "status": self.answer_status,
                       "result": {"status": "ignored-nested"}}
        data = json.dumps(payload).encode()
        self.send_response(self.http_status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@unittest.skipUnless(shutil.which("curl"), "curl not installed")
class Trigger(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _JobsHandler)
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.url = f"http://127.0.0.1:{cls.server.server_address[1]}"
        cls.tmp = tempfile.mkdtemp(prefix="creditd-trigger-")
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
        _JobsHandler.http_status = 200

    def run_trigger(self, *args, token_file=None, env=None):
        e = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
        e.update({"CREDITD_URL": self.url, "CREDITD_TOKEN_FILE": token_file or self.token_file,
                  "CREDITD_TRIGGER_TIMEOUT": "30"})
        e.update(env or {})
        return subprocess.run([TRIGGER, *args], capture_output=True, text=True, env=e, timeout=60,
                              check=False, stdin=subprocess.DEVNULL)

    def test_daily_succeeds(self):
        r = self.run_trigger("daily")
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertEqual(len(_JobsHandler.seen), 1)
        req = _JobsHandler.seen[0]
        self.assertEqual(req["path"], "/v1/jobs/daily?wait=true")
        self.assertEqual(req["auth"], "Bearer s3cret-ops.token")
        self.assertEqual(req["ctype"], "application/json")
        self.assertEqual(json.loads(req["body"]), {})

    def test_invoicing_with_body(self):
        r = self.run_trigger("invoicing", '{"period":"2023-06"}')
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertEqual(_JobsHandler.seen[0]["path"], "/v1/jobs/invoicing?wait=true")
        self.assertEqual(json.loads(_JobsHandler.seen[0]["body"]), {"period": "2023-06"})

    def test_credentials_directory(self):
        creds = os.path.join(self.tmp, "creds")
        os.makedirs(creds, exist_ok=True)
        with open(os.path.join(creds, "token"), "w", encoding="utf-8") as f:
            f.write("from-credential\n")
        e = {k: v for k, v in os.environ.items() if not k.startswith("CREDITD_TOKEN")}
        e.update({"CREDITD_URL": self.url, "CREDENTIALS_DIRECTORY": creds})
        r = subprocess.run([TRIGGER, "daily"], capture_output=True, text=True, env=e, timeout=60,
                           check=False, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(_JobsHandler.seen[0]["auth"], "Bearer from-credential")

    def test_failed_job_exits_1(self):
        _JobsHandler.answer_status = "failed"
        r = self.run_trigger("daily")
        self.assertEqual(r.returncode, 1, r.stderr + r.stdout)

    def test_http_error_is_an_error(self):
        _JobsHandler.http_status = 401
        r = self.run_trigger("daily")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("unauthorized", r.stdout)

    def test_usage_errors(self):
        self.assertEqual(self.run_trigger().returncode, 2)
        self.assertEqual(self.run_trigger("reboot").returncode, 2)
        self.assertEqual(self.run_trigger("daily", token_file=os.path.join(self.tmp, "missing")).returncode, 2)
        bad = os.path.join(self.tmp, "bad-token")
        with open(bad, "w", encoding="utf-8") as f:
            f.write('x" -H "Evil: 1\n')
        self.assertEqual(self.run_trigger("daily", token_file=bad).returncode, 2)
        self.assertEqual(_JobsHandler.seen, [])


if __name__ == "__main__":
    harness.main()
