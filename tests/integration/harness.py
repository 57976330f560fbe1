"""Integration test harness for creditd (Python 3.11, standard library only).

A test module looks like this::

    import harness

    class Smoke(harness.DaemonTestCase):
        def test_healthz(self):
            r = self.request("GET", "/healthz", token=None)
            self.assertEqual(r.status, 200)

    if __name__ == "__main__":
        harness.main()

Every test module gets one private PostgreSQL cluster and one daemon, started
before its first test and stopped after its last (module scope); a failing
test prints the daemon log written while it ran. Class attributes of
DaemonTestCase (CONFIG, CONFIG_TEXT, TEST_CLOCK, ...) choose how they start.

Pieces usable on their own:

    PgCluster  -- initdb (copied from a cached template), start/stop/restart,
                  conninfo(), psql(), createdb()
    Daemon     -- config file, free port, start/wait for /healthz, request(),
                  migrate(), reload(), stop(), kill(), log_text()

Environment: CREDITD_BIN (the daemon) and CREDITD_SOURCE_ROOT are set by
tests/integration/meson.build; PG_BINDIR overrides where initdb & co. live;
CREDITD_TEST_TMPDIR overrides the directory for temporary clusters;
CREDITD_TEST_KEEP=1 keeps the temporary directories of failed runs.

When run as root, PostgreSQL (which refuses to run as root) runs as the system
user "creditd" (created if missing); the daemon itself runs as the caller.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import glob
import hashlib
import http.client
import http.server
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import unittest
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

# ---------------------------------------------------------------------------
# Paths and helpers

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.environ.get("CREDITD_SOURCE_ROOT") or os.path.dirname(os.path.dirname(HERE))
CREDITD_BIN = os.environ.get("CREDITD_BIN") or os.path.join(SOURCE_ROOT, "build", "daemon", "creditd")

PG_OS_USER = os.environ.get("CREDITD_USER", "creditd")  # cluster owner when we are root
PG_SUPERUSER = "creditd"  # database superuser name inside every cluster
DEFAULT_DBNAME = "creditd"
DEFAULT_TEST_CLOCK = "2023-07-01T00:00:00Z"

# Bump when the template's contents change (initdb options).
TEMPLATE_FORMAT = 1

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "WARNING: ThreadSanitizer",
)

KEEP = os.environ.get("CREDITD_TEST_KEEP", "") not in ("", "0")


class HarnessError(AssertionError):
    """Set-up or tear-down failed (a test failure, not a harness crash)."""


class SanitizerError(AssertionError):
    """The daemon's log holds an ASan/UBSan/LSan report."""


def _is_root() -> bool:
    return os.geteuid() == 0


def _tail(text: str, lines: int = 60) -> str:
    parts = text.splitlines()
    return "\n".join(parts[-lines:])


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bindir() -> str:
    """Directory of initdb/pg_ctl/postgres/psql: $PG_BINDIR, else the newest
    /usr/lib/postgresql/N/bin, else wherever initdb is on PATH."""
    env = os.environ.get("PG_BINDIR")
    if env:
        return env
    found = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        if os.access(os.path.join(d, "initdb"), os.X_OK):
            m = re.search(r"/postgresql/([0-9]+)(?:\.([0-9]+))?/bin$", d)
            key = (int(m.group(1)), int(m.group(2) or 0)) if m else (0, 0)
            found.append((key, d))
    if found:
        return max(found)[1]
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    raise HarnessError("no PostgreSQL server binaries found (install the postgresql package)")


def _pg_owner() -> tuple[int, int] | None:
    """(uid, gid) that owns clusters when we are root; None when not root."""
    if not _is_root():
        return None
    try:
        pw = pwd.getpwnam(PG_OS_USER)
    except KeyError:
        _create_pg_os_user()
        pw = pwd.getpwnam(PG_OS_USER)
    return pw.pw_uid, pw.pw_gid


def _create_pg_os_user() -> None:
    # Serialised with other test processes; re-check under the lock.
    with _FileLock(os.path.join(tempfile.gettempdir(), "creditd-useradd.lock")):
        try:
            pwd.getpwnam(PG_OS_USER)
            return
        except KeyError:
            pass
        subprocess.run(["groupadd", "--system", "-f", PG_OS_USER], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["useradd", "--system", "--gid", PG_OS_USER, "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                        "--comment", "creditd daemon", PG_OS_USER], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            pwd.getpwnam(PG_OS_USER)
        except KeyError:
            raise HarnessError(f"cannot create system user {PG_OS_USER} for PostgreSQL") from None


def _demote(uid: int, gid: int) -> Callable[[], None]:
    def fn() -> None:
        os.setgroups([gid])
        os.setgid(gid)
        os.setuid(uid)
    return fn


class _FileLock:
    """flock(2) on a lock file, as a context manager."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> "_FileLock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _chown(path: str, owner: tuple[int, int] | None) -> None:
    if owner is not None:
        os.chown(path, owner[0], owner[1])


# Everything started here is stopped at exit, also on SIGTERM (meson's timeout)
# and SIGINT, so that no postgres or creditd outlives the test.
_LIVE: list[Any] = []


def _cleanup_all() -> None:
    for obj in reversed(list(_LIVE)):
        try:
            obj._emergency_stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            traceback.print_exc()


atexit.register(_cleanup_all)


def _on_signal(signum: int, frame: object) -> None:
    _cleanup_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    try:
        signal.signal(_sig, _on_signal)
    except (ValueError, OSError):  # not the main thread
        pass

_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover
    _libc = None


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when this process dies."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


# ---------------------------------------------------------------------------
# PostgreSQL


class PgCluster:
    """A private PostgreSQL cluster in a temporary directory: no TCP, a Unix
    socket in its own directory, trust authentication, durability off.

    The data directory is a copy of an initdb'd template that is made once per
    PostgreSQL installation and user (guarded by a lock file), so a cluster
    costs a `cp -a` and a start rather than an initdb.
    """

    SETTINGS = {
        "listen_addresses": "''",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "50",
        "shared_buffers": "32MB",
        "max_wal_senders": "0",
        "wal_level": "minimal",
        "log_min_messages": "warning",
        "log_line_prefix": "'%m [%p] %q%u@%d '",
        "timezone": "'UTC'",
        "port": "5432",
    }

    def __init__(self, base_dir: str | None = None, settings: Mapping[str, str] | None = None) -> None:
        self.bindir = pg_bindir()
        self.owner = _pg_owner()
        parent = os.environ.get("CREDITD_TEST_TMPDIR") or tempfile.gettempdir()
        self._own_base = base_dir is None
        self.base = base_dir or tempfile.mkdtemp(prefix="creditd-pg-", dir=parent)
        os.chmod(self.base, 0o755)  # the cluster owner must reach its data
        self.datadir = os.path.join(self.base, "data")
        self.sockdir = os.path.join(self.base, "sock")
        self.logfile = os.path.join(self.base, "postgresql.log")
        self.port = 5432  # only names the socket file; there is no TCP
        self.settings = dict(self.SETTINGS)
        if settings:
            self.settings.update(settings)
        self.running = False
        try:
            self._init()
        except BaseException:
            if self._own_base:
                shutil.rmtree(self.base, ignore_errors=True)
            raise
        _LIVE.append(self)

    # -- set-up

    def _run_as_owner(self, args: list[str], **kw: Any) -> subprocess.CompletedProcess:
        if self.owner is not None:
            kw.setdefault("preexec_fn", _demote(*self.owner))
        kw.setdefault("cwd", self.base)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.STDOUT)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 120)
        return subprocess.run(args, check=False, **kw)

    def _template_dir(self) -> str:
        version = subprocess.run([os.path.join(self.bindir, "initdb"), "--version"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        key = hashlib.sha256(f"{TEMPLATE_FORMAT}|{self.bindir}|{version}|{self.owner}".encode()).hexdigest()[:16]
        root = os.path.join(tempfile.gettempdir(), f"creditd-initdb-template-{os.geteuid()}")
        return os.path.join(root, key)

    def _ensure_template(self) -> str:
        tdir = self._template_dir()
        root = os.path.dirname(tdir)
        os.makedirs(root, mode=0o755, exist_ok=True)
        st = os.lstat(root)
        if st.st_uid != os.geteuid() or not os.path.isdir(root) or os.path.islink(root):
            raise HarnessError(f"{root} is not a directory owned by us")
        os.chmod(root, 0o755)
        with _FileLock(root + ".lock"):
            if os.path.isfile(os.path.join(tdir, "data", "PG_VERSION")):
                return tdir
            shutil.rmtree(tdir, ignore_errors=True)
            tmp = tempfile.mkdtemp(prefix="new-", dir=root)
            os.chmod(tmp, 0o755)
            data = os.path.join(tmp, "data")
            os.mkdir(data, 0o700)
            _chown(data, self.owner)
            r = self._run_as_owner(
                [os.path.join(self.bindir, "initdb"), "-D", data, "-U", PG_SUPERUSER,
                 "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                cwd=tmp)
            if r.returncode != 0:
                shutil.rmtree(tmp, ignore_errors=True)
                raise HarnessError(f"initdb failed:\n{r.stdout}")
            os.rename(tmp, tdir)
            return tdir

    def _init(self) -> None:
        tdir = self._ensure_template()
        r = subprocess.run(["cp", "-a", os.path.join(tdir, "data"), self.datadir],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise HarnessError(f"copying the initdb template failed: {r.stderr}")
        os.mkdir(self.sockdir, 0o755)
        os.chmod(self.sockdir, 0o755)
        _chown(self.sockdir, self.owner)
        with open(self.logfile, "a", encoding="utf-8"):
            pass
        _chown(self.logfile, self.owner)
        self._write_settings()

    def _write_settings(self) -> None:
        path = os.path.join(self.datadir, "postgresql.auto.conf")
        lines = ["# Written by tests/integration/harness.py"]
        settings = dict(self.settings)
        settings["unix_socket_directories"] = "'" + self.sockdir + "'"
        lines += [f"{k} = {v}" for k, v in settings.items()]
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        _chown(path, self.owner)

    # -- life cycle

    def start(self) -> "PgCluster":
        r = self._run_as_owner([os.path.join(self.bindir, "pg_ctl"), "start", "-w", "-t", "60",
                                "-D", self.datadir, "-l", self.logfile])
        if r.returncode != 0:
            raise HarnessError(f"pg_ctl start failed:\n{r.stdout}\n--- {self.logfile}:\n"
                               + _tail(_read(self.logfile)))
        self.running = True
        return self

    def stop(self, mode: str = "fast") -> None:
        if not self.running:
            return
        r = self._run_as_owner([os.path.join(self.bindir, "pg_ctl"), "stop", "-w", "-t", "60",
                                "-m", mode, "-D", self.datadir])
        if r.returncode != 0:
            raise HarnessError(f"pg_ctl stop failed:\n{r.stdout}")
        self.running = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def is_running(self) -> bool:
        r = self._run_as_owner([os.path.join(self.bindir, "pg_ctl"), "status", "-D", self.datadir])
        return r.returncode == 0

    def destroy(self) -> None:
        """Stops the cluster and removes its directory."""
        try:
            self.stop("immediate")
        finally:
            if self in _LIVE:
                _LIVE.remove(self)
            if self._own_base and not KEEP:
                shutil.rmtree(self.base, ignore_errors=True)

    def _emergency_stop(self) -> None:
        if self.running:
            self._run_as_owner([os.path.join(self.bindir, "pg_ctl"), "stop", "-w", "-t", "30",
                                "-m", "immediate", "-D", self.datadir])
            self.running = False
        if self._own_base and not KEEP:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "PgCluster":
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- use

    def conninfo(self, dbname: str = DEFAULT_DBNAME) -> str:
        return f"host={self.sockdir} port={self.port} user={PG_SUPERUSER} dbname={dbname}"

    def psql(self, sql: str, dbname: str = DEFAULT_DBNAME, check: bool = True) -> str:
        """Runs SQL with psql (-X -A -t, ON_ERROR_STOP) and returns its stdout.
        Columns are separated by '|', rows by newlines."""
        r = subprocess.run(
            [os.path.join(self.bindir, "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
             "-h", self.sockdir, "-p", str(self.port), "-U", PG_SUPERUSER, "-d", dbname, "-f", "-"],
            input=sql, capture_output=True, text=True, check=False, timeout=120,
            env=dict(os.environ, PGCONNECT_TIMEOUT="10"))
        if check and r.returncode != 0:
            raise HarnessError(f"psql failed ({r.returncode}): {r.stderr.strip()}\nSQL: {sql}")
        return r.stdout

    def createdb(self, dbname: str = DEFAULT_DBNAME) -> None:
        r = subprocess.run(
            [os.path.join(self.bindir, "createdb"), "-h", self.sockdir, "-p", str(self.port),
             "-U", PG_SUPERUSER, dbname],
            capture_output=True, text=True, check=False, timeout=120)
        if r.returncode != 0:
            raise HarnessError(f"createdb {dbname} failed: {r.stderr.strip()}")

    def log_text(self) -> str:
        return _read(self.logfile)


# ---------------------------------------------------------------------------
# The daemon


@dataclass
class Token:
    secret: str
    scopes: str

    @property
    def sha256(self) -> str:
        return sha256_hex(self.secret)


# Default tokens: section [token.NAME], the name is the actor.
DEFAULT_TOKENS: dict[str, Token] = {
    "admin": Token("test-admin-secret", "admin"),
    "finance": Token("test-finance-secret", "read,write"),
    "platform": Token("test-platform-secret", "ingest,read"),
    "ops": Token("test-ops-secret", "ops,read"),
    "read": Token("test-read-secret", "read"),
}


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    json: Any  # the parsed body, or None when it is not JSON
    text: str
    body: bytes = b""
    reason: str = ""

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.text[:300]!r}>"


class Daemon:
    """The real creditd, started from CREDITD_BIN with a generated config.

    config: None (defaults), a dict {section: {key: value}} merged over the
    defaults (a value of None removes a key, a section of None removes the
    section), or a str used verbatim after replacing @LISTEN@, @PORT@ and
    @CONNINFO@.
    """

    def __init__(self, conninfo: str, config: Mapping[str, Any] | str | None = None,
                 workdir: str | None = None, test_clock: str | bool | None = None,
                 tokens: Mapping[str, Token] | None = None, env: Mapping[str, str] | None = None,
                 binary: str | None = None) -> None:
        self.binary = binary or CREDITD_BIN
        self.conninfo = conninfo
        self.tokens = dict(DEFAULT_TOKENS if tokens is None else tokens)
        self.test_clock = test_clock
        self.extra_env = dict(env or {})
        self._own_workdir = workdir is None
        parent = os.environ.get("CREDITD_TEST_TMPDIR") or tempfile.gettempdir()
        self.workdir = workdir or tempfile.mkdtemp(prefix="creditd-daemon-", dir=parent)
        self.config_path = os.path.join(self.workdir, "creditd.conf")
        self.logfile = os.path.join(self.workdir, "creditd.log")
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._conn_used = False
        self.write_config(config)
        _LIVE.append(self)

    # -- configuration

    @property
    def listen(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"http://{self.listen}"

    def default_config(self) -> dict[str, dict[str, str]]:
        cfg: dict[str, dict[str, str]] = {
            "server": {"listen": self.listen},
            "database": {"conninfo": self.conninfo},
            "billing": {"timezone": "UTC"},
        }
        for name, tok in self.tokens.items():
            cfg[f"token.{name}"] = {"sha256": tok.sha256, "scopes": tok.scopes}
        return cfg

    def config_text(self, config: Mapping[str, Any] | str | None = None) -> str:
        if isinstance(config, str):
            return (config.replace("@LISTEN@", self.listen).replace("@PORT@", str(self.port))
                    .replace("@CONNINFO@", self.conninfo))
        cfg = self.default_config()
        for section, keys in (config or {}).items():
            if keys is None:
                cfg.pop(section, None)
                continue
            sec = cfg.setdefault(section, {})
            for k, v in keys.items():
                if v is None:
                    sec.pop(k, None)
                else:
                    sec[k] = _ini_value(v)
        out = ["# Written by tests/integration/harness.py"]
        for section, keys in cfg.items():
            out.append(f"[{section}]")
            out += [f"{k} = {v}" for k, v in keys.items()]
            out.append("")
        return "\n".join(out)

    def write_config(self, config: Mapping[str, Any] | str | None = None) -> None:
        """(Re)writes the config file; call reload() to make a running daemon read it."""
        self.config = config
        text = self.config_text(config)
        tmp = self.config_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    def secret(self, token: str) -> str:
        """The bearer secret of a configured token name (or the string itself)."""
        tok = self.tokens.get(token)
        return tok.secret if tok else token

    # -- processes

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("CREDITD_DATABASE_CONNINFO", None)
        env.update(self.extra_env)
        return env

    def command(self) -> list[str]:
        args = [self.binary, "--config", self.config_path]
        if self.test_clock is True:
            args.append("--test-clock")
        elif self.test_clock:
            args.append(f"--test-clock={self.test_clock}")
        return args

    def start(self, wait: bool = True, timeout: float = 10.0) -> "Daemon":
        """Starts the daemon; with wait, until /healthz answers. If the port
        was taken meanwhile (another test), retries on a new one."""
        if self.proc is not None and self.proc.poll() is None:
            raise HarnessError("daemon already running")
        for attempt in range(3):
            self._close_conn()
            mark = self.log_size()
            with open(self.logfile, "ab") as log:
                log.write(f"=== harness: starting {' '.join(self.command())}\n".encode())
                log.flush()
                self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=log, env=self._env(), cwd=self.workdir,
                                             preexec_fn=_die_with_parent)
            if not wait:
                return self
            try:
                self.wait_healthy(timeout)
                return self
            except HarnessError:
                taken = "in use" in self.log_text_since(mark).lower()
                if attempt == 2 or self.is_running() or not taken:
                    raise
                self.port = free_port()
                self.write_config(self.config)
        return self

    def wait_healthy(self, timeout: float = 10.0) -> None:
        """Polls GET /healthz until it answers 200 (the daemon is listening)."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise HarnessError(f"creditd exited with {self.proc.returncode} during start-up\n"
                                   f"--- {self.logfile} (tail):\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                try:
                    conn.request("GET", "/healthz")
                    r = conn.getresponse()
                    r.read()
                    if r.status == 200:
                        return
                    last = f"HTTP {r.status}"
                finally:
                    conn.close()
            except (OSError, http.client.HTTPException) as e:
                last = repr(e)
            if time.monotonic() > deadline:
                raise HarnessError(f"creditd did not answer /healthz within {timeout:g} s ({last})\n"
                                   f"--- {self.logfile} (tail):\n{self.log_tail()}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 10.0) -> Response:
        """Polls GET /readyz (with an admin or read token) until it answers
        200, i.e. the database connection is up. Without such a token (R9.5:
        /readyz needs one) it waits for /healthz instead."""
        token = next((n for n, t in self.tokens.items()
                      if {"admin", "read"} & set(t.scopes.split(","))), None)
        path = "/readyz" if token is not None else "/healthz"
        deadline = time.monotonic() + timeout
        while True:
            try:
                r = self.request("GET", path, token=token, timeout=5)
                if r.status == 200:
                    return r
                last = f"HTTP {r.status} {r.text[:200]}"
            except (OSError, HarnessError) as e:
                last = str(e)
            if self.proc is not None and self.proc.poll() is not None:
                raise HarnessError(f"creditd exited with {self.proc.returncode}\n"
                                   f"--- {self.logfile} (tail):\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise HarnessError(f"{path} did not answer 200 within {timeout:g} s ({last})\n"
                                   f"--- {self.logfile} (tail):\n{self.log_tail()}")
            time.sleep(0.05)

    def migrate(self, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        """Runs `creditd --config F migrate`; its output goes to the log too."""
        r = subprocess.run([self.binary, "--config", self.config_path, "migrate"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, env=self._env(),
                           cwd=self.workdir, timeout=timeout, check=False, preexec_fn=_die_with_parent)
        with open(self.logfile, "a", encoding="utf-8") as log:
            log.write(f"=== harness: migrate exited {r.returncode}\n{r.stdout}{r.stderr}")
        self._check_sanitizers(r.stdout + r.stderr, "creditd migrate")
        if check and r.returncode != 0:
            raise HarnessError(f"creditd migrate exited {r.returncode}:\n{_tail(r.stderr + r.stdout)}")
        return r

    def run(self, *args: str, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess:
        """Runs the binary with other arguments (e.g. a bad config) and returns the result."""
        r = subprocess.run([self.binary, *args], stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, env=kw.pop("env", self._env()), cwd=self.workdir,
                           timeout=timeout, check=False, **kw)
        self._check_sanitizers(r.stdout + r.stderr, "creditd " + " ".join(args))
        return r

    def signal(self, sig: int) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise HarnessError("daemon is not running")
        self.proc.send_signal(sig)

    def reload(self) -> None:
        """SIGHUP: the daemon re-reads its config file."""
        self.signal(signal.SIGHUP)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait for exit, return the exit code. Raises SanitizerError if
        the log holds a sanitizer report, HarnessError if it does not exit."""
        self._close_conn()
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise HarnessError(f"creditd did not exit within {timeout:g} s of SIGTERM\n"
                                   f"--- log tail:\n{self.log_tail()}") from None
        code = self.proc.returncode
        self._check_sanitizers(self.log_text(), "creditd")
        return code

    def kill(self) -> int:
        """SIGKILL (a crash); returns the (negative) exit status."""
        self._close_conn()
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait()

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _emergency_stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def destroy(self) -> None:
        self._emergency_stop()
        if self in _LIVE:
            _LIVE.remove(self)
        if self._own_workdir and not KEEP:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _check_sanitizers(self, text: str, what: str) -> None:
        for marker in SANITIZER_MARKERS:
            i = text.find(marker)
            if i >= 0:
                raise SanitizerError(f"{what}: sanitizer report in the log ({marker!r}):\n"
                                     + text[max(0, i - 200): i + 6000])

    # -- logs

    def log_text(self) -> str:
        return _read(self.logfile)

    def log_size(self) -> int:
        try:
            return os.path.getsize(self.logfile)
        except FileNotFoundError:
            return 0

    def log_text_since(self, offset: int) -> str:
        try:
            with open(self.logfile, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return _tail(self.log_text(), lines)

    def wait_log(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match:
        """Waits until the log (from offset start) matches the regex pattern."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log_text(), start)
            if m:
                return m
            if self.proc is not None and self.proc.poll() is not None:
                raise HarnessError(f"creditd exited ({self.proc.returncode}) before logging "
                                   f"{pattern!r}\n--- log tail:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise HarnessError(f"{pattern!r} not in the log within {timeout:g} s\n"
                                   f"--- log tail:\n{self.log_tail()}")
            time.sleep(0.05)

    # -- HTTP

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, body: Any = None, token: str | None = "admin",
                headers: Mapping[str, str] | None = None, timeout: float = 60.0) -> Response:
        """One HTTP request on a kept-alive connection.

        body: None, bytes (sent as is), str (UTF-8), or anything else (JSON).
        token: a configured token name, a raw secret, or None for no
        Authorization header. A str or JSON body gets Content-Type
        application/json unless headers say otherwise."""
        hdrs = {k: v for k, v in (headers or {}).items()}
        lower = {k.lower() for k in hdrs}
        data: bytes | None
        if body is None:
            data = None
        elif isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode("utf-8")
        else:
            data = json.dumps(body).encode("utf-8")
        if data is not None and not isinstance(body, bytes) and "content-type" not in lower:
            hdrs["Content-Type"] = "application/json"
        if token is not None and "authorization" not in lower:
            hdrs["Authorization"] = f"Bearer {self.secret(token)}"
        if data is None and method.upper() in ("POST", "PUT", "PATCH") and "content-length" not in lower:
            hdrs["Content-Length"] = "0"

        for attempt in (1, 2):
            fresh = self._conn is None
            if fresh:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            conn = self._conn
            assert conn is not None
            conn.timeout = timeout
            try:
                conn.request(method, path, body=data, headers=hdrs)
                r = conn.getresponse()
                raw = r.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.BadStatusLine) as e:
                # A kept-alive connection the server had closed: retry once on
                # a new one. A fresh connection failing is a real failure.
                self._close_conn()
                if fresh or attempt == 2:
                    raise HarnessError(f"{method} {path}: {e!r}\n--- log tail:\n{self.log_tail(30)}") from e
                continue
            except OSError:
                self._close_conn()
                raise
            if r.will_close:
                self._close_conn()
            resp_headers = {k.lower(): v for k, v in r.getheaders()}
            text = raw.decode("utf-8", errors="replace")
            parsed = None
            if raw:
                try:
                    parsed = json.loads(text)
                except ValueError:
                    parsed = None
            return Response(status=r.status, headers=resp_headers, json=parsed, text=text,
                            body=raw, reason=r.reason)
        raise AssertionError("unreachable")

    # shorthands
    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Response:
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Response:
        return self.request("PUT", path, body, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> Response:
        return self.request("PATCH", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Response:
        return self.request("DELETE", path, **kw)


def _ini_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v)
    return str(v)


# ---------------------------------------------------------------------------
# Module-scoped environment and the test case base class


@dataclass
class Env:
    """One cluster and one daemon, shared by the tests of a module."""
    cluster: PgCluster
    daemon: Daemon
    owner: str = ""
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        """Stops the daemon (exit code must be 0 and the log sanitizer-clean)
        and the cluster. Raises on any problem, after cleaning up."""
        problems: list[str] = []
        try:
            if self.daemon.is_running():
                code = self.daemon.stop()
                if code != 0:
                    problems.append(f"creditd exited with {code} on SIGTERM\n--- log tail:\n"
                                    + self.daemon.log_tail())
            else:
                # Stopped by a test already; still check its log.
                self.daemon._check_sanitizers(self.daemon.log_text(), "creditd")
        except AssertionError as e:
            problems.append(str(e))
        keep = bool(problems) and KEEP
        if keep:
            problems.append(f"kept: {self.daemon.workdir} {self.cluster.base}")
            self.daemon._emergency_stop()
        else:
            self.daemon.destroy()
        try:
            if keep:
                self.cluster.stop("immediate")
            else:
                self.cluster.destroy()
        except AssertionError as e:
            problems.append(str(e))
        if problems:
            raise HarnessError("\n".join(problems))


_ENV: Env | None = None


def start_env(config: Mapping[str, Any] | str | None = None, test_clock: str | bool | None = DEFAULT_TEST_CLOCK,
              migrate: bool = True, start: bool = True, ready: bool = True, tokens: Mapping[str, Token] | None = None,
              env: Mapping[str, str] | None = None, pg_settings: Mapping[str, str] | None = None,
              owner: str = "") -> Env:
    """Starts a cluster (with database creditd) and a daemon; migrates,
    starts the daemon and waits for /readyz unless told not to."""
    cluster = PgCluster(settings=pg_settings)
    daemon = None
    try:
        cluster.start()
        cluster.createdb(DEFAULT_DBNAME)
        daemon = Daemon(cluster.conninfo(), config=config, test_clock=test_clock, tokens=tokens, env=env)
        if migrate:
            daemon.migrate()
        if start:
            daemon.start()
            if ready:
                daemon.wait_ready()
    except BaseException:
        if daemon is not None:
            sys.stderr.write(f"--- creditd log tail:\n{daemon.log_tail()}\n")
            daemon.destroy()
        cluster.destroy()
        raise
    return Env(cluster, daemon, owner)


def module_env(owner: str = "", **kw: Any) -> Env:
    """The module's shared Env, started on first use and stopped when the
    module's tests are done (unittest module cleanup)."""
    global _ENV
    if _ENV is None:
        _ENV = start_env(owner=owner, **kw)
        unittest.addModuleCleanup(stop_env)
    return _ENV


def stop_env() -> None:
    global _ENV
    env, _ENV = _ENV, None
    if env is not None:
        env.close()


def wait_for(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    """Polls pred every 50 ms until it returns something true (returned),
    at least once; AssertionError naming `what` after `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.05)


def metric(daemon: "Daemon", name: str, absent: Any = None) -> Any:
    """The value of counter or gauge `name` on daemon's /metrics (read
    token) as an int; `absent` when the daemon does not report it."""
    r = daemon.request("GET", "/metrics", token="read")
    if r.status != 200:
        raise AssertionError(f"GET /metrics: {r.status} {r.text[:500]}")
    m = re.search(r"^%s (\d+)$" % re.escape(name), r.text, re.M)
    return int(m.group(1)) if m else absent


def uid() -> str:
    """A new random UUID as text (event and payment ids)."""
    return str(uuid.uuid4())


def event(account: str, amount: str, occurred_at: str, service: str = "sms",
          **extra: Any) -> dict:
    """A chargeable event for POST /v1/events (R3.1) with a new id; extra
    fields (destination, quantity, or a bad value) are added as given."""
    e = {"id": uid(), "account": account, "amount": amount, "occurred_at": occurred_at,
         "service": service}
    e.update(extra)
    return e


class DaemonTestCase(unittest.TestCase):
    """Base class: self.daemon, self.cluster, self.request(...).

    Class attributes choose the module's daemon (the first class of a module
    to run decides; give classes of one module the same values):
      CONFIG      dict merged over the default config, or a str (see Daemon)
      TEST_CLOCK  --test-clock value; True for the bare flag, None for none
      MIGRATE     run `creditd migrate` before the start (default True)
      READY       wait until /readyz answers 200 after the start (default True)
      TOKENS      dict name -> Token (default DEFAULT_TOKENS)
      ENV         extra environment for the daemon
    """

    CONFIG: Mapping[str, Any] | str | None = None
    TEST_CLOCK: str | bool | None = DEFAULT_TEST_CLOCK
    MIGRATE: bool = True
    READY: bool = True
    TOKENS: Mapping[str, Token] | None = None
    ENV: Mapping[str, str] | None = None

    env: Env
    daemon: Daemon
    cluster: PgCluster

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        env = module_env(owner=cls.__qualname__, config=cls.CONFIG, test_clock=cls.TEST_CLOCK,
                         migrate=cls.MIGRATE, ready=cls.READY, tokens=cls.TOKENS, env=cls.ENV)
        cls.env = env
        cls.daemon = env.daemon
        cls.cluster = env.cluster

    def setUp(self) -> None:
        super().setUp()
        self._log_offset = self.daemon.log_size()

    def request(self, method: str, path: str, body: Any = None, token: str | None = "admin",
                headers: Mapping[str, str] | None = None, **kw: Any) -> Response:
        return self.daemon.request(method, path, body, token=token, headers=headers, **kw)

    def psql(self, sql: str) -> str:
        return self.cluster.psql(sql)

    def get_account(self, ref: str) -> dict:
        """GET /v1/accounts/ext:ref (read token), which must answer 200."""
        r = self.request("GET", "/v1/accounts/ext:" + ref, token="read")
        self.assertStatus(r, 200)
        return r.json

    def account(self, ref: str, monthly_limit: str | None = None, total_limit: str | None = None,
                expect: int = 201, token: str = "finance", **extra: Any) -> dict:
        """POST /v1/accounts: EUR, DE, "Customer <ref>", the limits given and
        `extra` fields; asserts the status `expect`."""
        body = {"external_ref": ref, "name": "Customer " + ref, "currency": "EUR",
                "jurisdiction": "DE"}
        if monthly_limit is not None:
            body["monthly_limit"] = monthly_limit
        if total_limit is not None:
            body["total_limit"] = total_limit
        body.update(extra)
        r = self.request("POST", "/v1/accounts", body, token=token)
        self.assertStatus(r, expect)
        return r.json

    def authorize(self, ref: str, amount: str) -> dict:
        """POST /v1/authorize for ext:<ref> (platform token); asserts 200."""
        r = self.request("POST", "/v1/authorize", {"account": "ext:" + ref, "amount": amount},
                         token="platform")
        self.assertStatus(r, 200)
        return r.json

    def post_events(self, events: Any) -> dict:
        """POST /v1/events (platform token), which must answer 200."""
        r = self.request("POST", "/v1/events", events, token="platform")
        self.assertStatus(r, 200)
        return r.json

    def wait_for_sql(self, sql: str, what: str, timeout: float = 10) -> None:
        """Waits until `sql` returns something other than nothing or 0."""
        deadline = time.monotonic() + timeout
        while self.psql(sql).strip() in ("", "0"):
            self.assertLess(time.monotonic(), deadline, what)
            time.sleep(0.02)

    def named_daemon(self, app_name: str) -> "Daemon":
        """Another daemon on the module's cluster and database, on the real
        clock, its sessions named app_name (so a test can end exactly
        them); started, ready, destroyed at clean-up."""
        d = Daemon(self.cluster.conninfo() + " application_name=" + app_name, test_clock=None)
        self.addCleanup(d.destroy)
        d.start()
        d.wait_ready(timeout=15)
        return d

    def request_in_background(self, daemon: "Daemon", method: str, path: str, body: Any,
                              token: str) -> tuple[threading.Thread, dict]:
        """Sends one request from a thread with its own connection (the
        harness's is not shared between threads), for a request that waits
        (for a lock, a commit, a job). Returns the started thread and a dict
        that gets "r" = (status, body bytes, Retry-After or None) once the
        answer arrived; the thread is joined at clean-up too."""
        out: dict = {}

        def send() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=60)
            data = body if isinstance(body, str) else json.dumps(body)
            conn.request(method, path, body=data,
                         headers={"Content-Type": "application/json",
                                  "Authorization": "Bearer " + daemon.secret(token)})
            resp = conn.getresponse()
            out["r"] = (resp.status, resp.read(), resp.getheader("Retry-After"))
            conn.close()

        t = threading.Thread(target=send)
        t.start()
        self.addCleanup(t.join, 60)
        return t, out

    @contextlib.contextmanager
    def open_transaction(self, name: str, sql: str):
        """A psql session of its own (application_name `name`, superuser)
        that runs `sql` in a transaction and keeps it open, its locks held,
        while the body runs; yields a function that sends more SQL into the
        same transaction (not waited for). On exit: COMMIT, and psql must
        have succeeded (an error, e.g. a deadlock, fails the test)."""
        c = self.cluster
        session = subprocess.Popen(
            [os.path.join(c.bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h",
             c.sockdir, "-p", str(c.port), "-U", PG_SUPERUSER, "-d", DEFAULT_DBNAME, "-f", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def send(more: str) -> None:
            session.stdin.write(more + "\n")
            session.stdin.flush()

        try:
            send(f"SET application_name = '{name}';\nBEGIN;\n{sql}")
            self.wait_for_sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                              f"'{name}' AND state = 'idle in transaction'",
                              f"{name}: the transaction never got its locks")
            yield send
        finally:
            session.stdin.write("COMMIT;\n")
            session.stdin.close()
            session.wait(30)
        self.assertEqual(session.returncode, 0, session.stderr.read())

    @contextlib.contextmanager
    def rollover_waiting(self, account_id: str, now: str, name: str = "test_locker"):
        """Moves the test clock to `now` (a month start: the rollover's due
        time) while another session holds account_id's row lock, so that the
        month rollover (R4.1) is left waiting for that account with the rest
        already rolled over; the body runs in that state. On exit the lock is
        released, and the clock move must have answered 200."""
        mover = None
        try:
            with self.open_transaction(
                    name, f"SELECT 1 FROM accounts WHERE id = '{account_id}' FOR UPDATE;"):
                mover, clock = self.request_in_background(self.daemon, "PUT", "/v1/test/clock",
                                                          {"now": now}, "admin")
                self.wait_for_sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                                  "'Lock' AND query LIKE '%creditd_month_rollover_accounts%'",
                                  "the rollover never waited for the locked account")
                yield
        finally:
            if mover is not None:
                mover.join(60)
        self.assertEqual(clock["r"][0], 200, clock["r"])

    def notifications(self, ref: str, kind: str | None = None) -> list[dict]:
        """The notifications of account ext:ref (R8.1), oldest first, only
        those of `kind` if given, once the feed has settled."""
        self.settle_feeds()
        r = self.request("GET", "/v1/notifications?account=ext:" + ref + "&limit=1000",
                         token="read")
        self.assertStatus(r, 200)
        return [n for n in r.json["items"] if kind is None or n["kind"] == kind]

    def history(self, ref: str) -> list[dict]:
        """The status history of account ext:ref (R2.3), newest first."""
        r = self.request("GET", "/v1/accounts/ext:" + ref + "/history", token="read")
        self.assertStatus(r, 200)
        return r.json["items"]

    def settle_feeds(self, timeout: float = 30.0) -> None:
        """Waits until every transaction that wrote a notification or an audit
        row so far has ended. GET /v1/notifications and GET /v1/audit show a
        row only once every older transaction has ended (R8.2, a cursor never
        skips a row: sql/0021), so a read right after a write could miss it
        while unrelated work (a catch-up invoice run, a job) is in flight."""
        sql = ("SELECT pg_snapshot_xmin(pg_current_snapshot()) > greatest("
               "(SELECT coalesce(max(txid), '0') FROM notifications), "
               "(SELECT coalesce(max(txid), '0') FROM audit_log))")
        deadline = time.monotonic() + timeout
        while self.psql(sql).strip() != "t":
            if time.monotonic() > deadline:
                raise AssertionError(f"notifications/audit not settled within {timeout:g} s")
            time.sleep(0.02)

    def assertStatus(self, resp: Response, status: int, msg: str = "") -> None:
        if resp.status != status:
            self.fail(f"expected HTTP {status}, got {resp.status}: {resp.text[:2000]} {msg}")

    def assertError(self, resp: Response, status: int, code: str) -> None:
        """The API's error shape: {"error": {"code": code, "message": ...}}."""
        self.assertStatus(resp, status)
        self.assertIsInstance(resp.json, dict, resp.text)
        err = resp.json.get("error")
        self.assertIsInstance(err, dict, resp.text)
        self.assertEqual(err.get("code"), code, resp.text)
        self.assertIsInstance(err.get("message"), str, resp.text)

    def daemon_log_since_setup(self, lines: int = 80) -> str:
        return _tail(self.daemon.log_text_since(self._log_offset), lines)


class _LogTailResult(unittest.TextTestResult):
    """Prints the daemon log written during a failing test."""

    def _dump(self, test: unittest.TestCase) -> None:
        text = ""
        what = "during"
        try:
            if isinstance(test, DaemonTestCase) and hasattr(test, "_log_offset"):
                text = test.daemon_log_since_setup()
            if not text.strip() and _ENV is not None:
                what = "(nothing new during the test), up to"
                text = _ENV.daemon.log_tail(30)
        except Exception:  # noqa: BLE001 - a dump must not break the run
            text = ""
        if text.strip():
            self.stream.write(f"\n--- creditd log {what} {test.id()} (tail):\n{text}\n---\n")
            self.stream.flush()

    def addFailure(self, test, err):  # type: ignore[override]
        super().addFailure(test, err)
        self._dump(test)

    def addError(self, test, err):  # type: ignore[override]
        super().addError(test, err)
        self._dump(test)


def main(argv: list[str] | None = None) -> None:
    """Runs the calling module's tests; exits 0 on success, 1 on failure, 77
    when every test was skipped (meson's "skipped")."""
    prog = argv if argv is not None else sys.argv
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2, resultclass=_LogTailResult)
    prog_ = unittest.main(module="__main__", argv=prog, testRunner=runner, exit=False)
    result = prog_.result
    try:
        stop_env()  # normally done by the module cleanup already
    except AssertionError as e:
        sys.stderr.write(f"tear-down failed: {e}\n")
        sys.exit(1)
    if not result.wasSuccessful():
        sys.exit(1)
    if result.testsRun > 0 and len(result.skipped) == result.testsRun:
        sys.exit(77)
    if result.testsRun == 0:
        sys.stderr.write("no tests ran\n")
        sys.exit(1)
    sys.exit(0)


class WebhookReceiver:
    """A webhook endpoint on loopback (R8.2): records every POST (body,
    X-Creditd-* headers, Content-Type, arrival time) and answers
    self.status (200 unless a test changes it under self.lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.status = 200
        self.requests: list[dict] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with receiver.lock:
                    receiver.requests.append({
                        "body": body, "ts": self.headers.get("X-Creditd-Timestamp", ""),
                        "sig": self.headers.get("X-Creditd-Signature", ""),
                        "delivery": self.headers.get("X-Creditd-Delivery"),
                        "content_type": self.headers.get("Content-Type"),
                        "received": time.time()})
                    status = receiver.status
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def snapshot(self) -> list[dict]:
        with self.lock:
            return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
