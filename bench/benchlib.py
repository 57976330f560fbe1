"""Shared pieces of the creditd benchmarks (bench/ingest, bench/authorize,
bench/memory). Python 3 standard library only.

Builds an optimized daemon into build-bench/ (meson release, no tests), starts
a private PostgreSQL cluster with durable settings (fsync and
synchronous_commit on) through tests/integration/harness.py, inserts accounts
with SQL and starts the daemon on a loopback port with the real clock.

Environment:
  CREDITD_BENCH_BIN   use this daemon binary instead of building build-bench/
  CREDITD_TEST_TMPDIR where the temporary cluster and daemon directories go
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from typing import Any, Mapping

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness  # noqa: E402  (tests/integration/harness.py)

BUILD_DIR = os.path.join(ROOT, "build-bench")

# Durable: the harness's defaults turn fsync and synchronous_commit off for
# speed; a benchmark must pay for real commits. A larger max_wal_size keeps
# checkpoints out of the short runs (as a production server would be tuned).
DURABLE_PG = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "wal_level": "replica",
    "shared_buffers": "256MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    "max_connections": "100",
}

# Account i (1-based) of a benchmark has this id and external_ref 'b<i>'.
ACCOUNT_ID_FMT = "b0000000-0000-4000-8000-{:012d}"
ACCOUNT_ID_SQL = "('b0000000-0000-4000-8000-' || lpad(({n})::text, 12, '0'))::uuid"

PLATFORM_SECRET = harness.DEFAULT_TOKENS["platform"].secret


def log(msg: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def apt_install(*pkgs: str) -> None:
    """Installs Debian packages when their program is missing (root only)."""
    if os.geteuid() != 0:
        raise SystemExit(f"missing {' '.join(pkgs)}: install with apt-get (needs root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", *pkgs], check=True, env=env)


def daemon_binary() -> str:
    """The daemon to measure: $CREDITD_BENCH_BIN, else an optimized build in
    build-bench/ (set up once, rebuilt by ninja when sources changed)."""
    env = os.environ.get("CREDITD_BENCH_BIN")
    if env:
        return env
    if shutil.which("meson") is None or shutil.which("ninja") is None:
        apt_install("meson", "ninja-build")
    if not os.path.isfile(os.path.join(BUILD_DIR, "build.ninja")):
        log("meson setup build-bench --buildtype=release -Dtests=false")
        subprocess.run(["meson", "setup", BUILD_DIR, "--buildtype=release", "-Dtests=false"],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    binary = os.path.join(BUILD_DIR, "daemon", "creditd")
    r = subprocess.run(["ninja", "-C", BUILD_DIR], cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).splitlines()[-15:])
        if not os.path.isfile(binary):
            raise SystemExit(f"ninja -C build-bench failed:\n{tail}")
        # The tree is being edited (a half-finished file): measure the last
        # good build rather than nothing, and say so.
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(binary)))
        log(f"WARNING: ninja -C build-bench failed; using the previous build of {when}:\n{tail}")
    return binary


def insert_accounts_sql(n: int) -> str:
    """SQL inserting accounts 1..n, each in the current billing month (UTC, the
    daemon's billing.timezone here) with limits far above any benchmark's
    usage, so the limit evaluation runs but never suspends."""
    return f"""
INSERT INTO accounts (id, external_ref, name, currency, jurisdiction, contractual_rate,
                      payment_terms_days, monthly_limit, total_limit, usage_month,
                      created_at, updated_at)
SELECT {ACCOUNT_ID_SQL.format(n='g')}, 'b' || g, 'Bench account ' || g, 'EUR', 'DE',
       120000, 15, 1000000000000000, 2000000000000000,
       date_trunc('month', now() AT TIME ZONE 'UTC')::date, now(), now()
  FROM generate_series(1, {int(n)}) g;
"""


class Bench:
    """A durable cluster with database creditd (migrated, n accounts) and the
    daemon (real clock)."""

    def __init__(self, n_accounts: int, config: Mapping[str, Any] | None = None,
                 daemon_env: Mapping[str, str] | None = None) -> None:
        self.binary = daemon_binary()
        self.cluster = harness.PgCluster(settings=DURABLE_PG)
        self.daemon: harness.Daemon | None = None
        try:
            self.cluster.start()
            self.cluster.createdb("creditd")
            self.daemon = harness.Daemon(self.cluster.conninfo("creditd"), config=config,
                                         test_clock=None, binary=self.binary, env=daemon_env)
            self.daemon.migrate()
            t = time.monotonic()
            self.cluster.psql(insert_accounts_sql(n_accounts) + "ANALYZE accounts;")
            log(f"{n_accounts} accounts inserted in {time.monotonic() - t:.1f} s")
        except BaseException:
            self.close()
            raise

    def start_daemon(self, timeout: float = 120.0) -> float:
        """Starts the daemon and waits for /readyz 200; returns seconds taken."""
        assert self.daemon is not None
        t = time.monotonic()
        self.daemon.start()
        self.daemon.wait_ready(timeout)
        return time.monotonic() - t

    def fresh_db(self, name: str, n_accounts: int) -> str:
        """Another database of the same cluster with the same schema (migrated
        by the daemon binary) and the same accounts; returns its conninfo."""
        self.cluster.createdb(name)
        d = harness.Daemon(self.cluster.conninfo(name), binary=self.binary)
        try:
            d.migrate()
        finally:
            d.destroy()
        self.cluster.psql(insert_accounts_sql(n_accounts) + "ANALYZE accounts;", dbname=name)
        return self.cluster.conninfo(name)

    def pg_tool(self, tool: str) -> str:
        return os.path.join(self.cluster.bindir, tool)

    def pg_args(self, dbname: str) -> list[str]:
        return ["-h", self.cluster.sockdir, "-p", str(self.cluster.port), "-U", harness.PG_SUPERUSER,
                "-d", dbname]

    def postgres_pids(self) -> list[int]:
        """The postmaster and its children (backends, WAL writer, ...)."""
        try:
            with open(os.path.join(self.cluster.datadir, "postmaster.pid")) as f:
                pm = int(f.readline())
        except (OSError, ValueError):
            return []
        pids = [pm]
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    if int(fields[1]) == pm:
                        pids.append(int(d))
                except (OSError, IndexError, ValueError):
                    pass
        return pids

    def close(self) -> None:
        if self.daemon is not None:
            try:
                if self.daemon.is_running():
                    self.daemon.stop()
            finally:
                self.daemon.destroy()
        self.cluster.destroy()


def cpu_seconds(pids: list[int]) -> float:
    """utime+stime of these processes (and their reaped children: no)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def proc_status(pid: int, keys: tuple[str, ...] = ("VmRSS", "VmHWM")) -> dict[str, str]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in keys:
                out[k] = " ".join(v.split())
    return out


def machine_line() -> str:
    cpus = os.cpu_count()
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpus} CPU(s) {model}".strip()


def parse_env(pairs: list[str]) -> dict[str, str]:
    """--daemon-env K=V options: extra environment for the daemon (e.g.
    EVENT_EPOLL_USE_CHANGELIST=1, MALLOC_MMAP_THRESHOLD_=131072) to try a
    remedy without changing code."""
    out = {}
    for p in pairs or []:
        k, sep, v = p.partition("=")
        if not sep or not k:
            raise SystemExit(f"--daemon-env {p!r}: expected NAME=VALUE")
        out[k] = v
    return out
