"""Shared pieces of the creditd benchmarks (bench/ingest, bench/authorize,
bench/memory, bench/invoicing, bench/daily). Python 3 standard library only.

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



def env_pg_settings() -> dict[str, str]:
    """CREDITD_BENCH_PG="name=value,name=value": cluster settings on top of
    DURABLE_PG, e.g. to compare shared_buffers sizes."""
    out = {}
    for pair in filter(None, os.environ.get("CREDITD_BENCH_PG", "").split(",")):
        name, _, value = pair.partition("=")
        out[name.strip()] = value.strip()
    return out


def effective_pg() -> dict[str, str]:
    """The cluster settings a Bench uses (without per-bench extras)."""
    return {**DURABLE_PG, **env_pg_settings()}


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


def insert_accounts_sql(n: int, month: str | None = None, created_at: str | None = None) -> str:
    """SQL inserting accounts 1..n, each in the current billing month (UTC, the
    daemon's billing.timezone here) with limits far above any benchmark's
    usage, so the limit evaluation runs but never suspends. With a test
    clock: month = its billing month ('2026-02-01'), created_at a time before
    it (default: now())."""
    usage_month = f"date '{month}'" if month else "date_trunc('month', now() AT TIME ZONE 'UTC')::date"
    created = f"timestamptz '{created_at}'" if created_at else "now()"
    return f"""
INSERT INTO accounts (id, external_ref, name, currency, jurisdiction, contractual_rate,
                      payment_terms_days, monthly_limit, total_limit, usage_month,
                      created_at, updated_at)
SELECT {ACCOUNT_ID_SQL.format(n='g')}, 'b' || g, 'Bench account ' || g, 'EUR', 'DE',
       120000, 15, 1000000000000000, 2000000000000000,
       {usage_month}, {created}, {created}
  FROM generate_series(1, {int(n)}) g;
"""


# Diagnosis (--profile of bench/invoicing and bench/daily): every statement,
# also those inside PL/pgSQL functions, with its total time.
PROFILE_PG = {
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.track": "all",
    "pg_stat_statements.max": "5000",
    "track_io_timing": "on",
}


class Bench:
    """A durable cluster with database creditd (migrated, n accounts) and the
    daemon (real clock)."""

    def __init__(self, n_accounts: int, config: Mapping[str, Any] | None = None,
                 daemon_env: Mapping[str, str] | None = None, test_clock: str | None = None,
                 month: str | None = None, created_at: str | None = None,
                 pg_settings: Mapping[str, str] | None = None) -> None:
        """test_clock: start the daemon with --test-clock=test_clock (frozen
        business time); month/created_at: see insert_accounts_sql;
        pg_settings: more cluster settings (e.g. PROFILE_PG)."""
        self.binary = daemon_binary()
        self.cluster = harness.PgCluster(settings={**DURABLE_PG, **env_pg_settings(),
                                                   **(pg_settings or {})})
        self.daemon: harness.Daemon | None = None
        try:
            self.cluster.start()
            self.cluster.createdb("creditd")
            self.daemon = harness.Daemon(self.cluster.conninfo("creditd"), config=config,
                                         test_clock=test_clock, binary=self.binary, env=daemon_env)
            self.daemon.migrate()
            t = time.monotonic()
            self.cluster.psql(insert_accounts_sql(n_accounts, month, created_at) + "ANALYZE accounts;")
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

    def sql(self, sql: str, dbname: str = "creditd", timeout: float = 1800) -> tuple[str, float]:
        """Runs SQL with psql (no 120 s limit, unlike harness.psql) and returns
        (stdout, seconds); for bulk loads."""
        cmd = [self.pg_tool("psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
               *self.pg_args(dbname), "-f", "-"]
        t = time.monotonic()
        r = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise SystemExit(f"psql failed: {r.stderr.strip()}\nSQL: {sql[:2000]}")
        return r.stdout, time.monotonic() - t

    def job(self, kind: str, body: Mapping[str, Any], timeout: float = 1800) -> dict:
        """POST /v1/jobs/<kind>?wait=true (ops token) timed in the client
        (wall clock; the jobs table's times are business time, frozen under a
        test clock), with the CPU seconds the daemon and PostgreSQL used
        meanwhile. Raises if the job does not succeed; after `timeout`
        seconds returns {"seconds": None, "timed_out": timeout} (the job goes
        on in the daemon)."""
        assert self.daemon is not None
        pg = self.postgres_pids()
        c0 = (cpu_seconds([self.daemon.proc.pid]), cpu_seconds(pg))
        self.daemon._close_conn()  # a kept-alive socket keeps its old timeout
        t = time.monotonic()
        try:
            r = self.daemon.request("POST", f"/v1/jobs/{kind}?wait=true", body, token="ops",
                                    timeout=timeout)
        except TimeoutError:
            self.daemon._close_conn()
            return {"seconds": None, "timed_out": timeout, "json": {}, "cpu_daemon": 0.0, "cpu_pg": 0.0}
        wall = time.monotonic() - t
        pg = sorted(set(pg) | set(self.postgres_pids()))
        c1 = (cpu_seconds([self.daemon.proc.pid]), cpu_seconds(pg))
        if r.status != 202 or not isinstance(r.json, dict) or r.json.get("status") != "succeeded":
            raise SystemExit(f"POST /v1/jobs/{kind} {body}: HTTP {r.status} {r.text[:500]}\n"
                             f"--- daemon log tail:\n{self.daemon.log_tail(20)}")
        return {"seconds": wall, "json": r.json, "cpu_daemon": c1[0] - c0[0],
                "cpu_pg": c1[1] - c0[1]}

    def wait_idle(self, timeout: float = 120.0, quiet: float = 0.05) -> float:
        """Waits until the daemon and PostgreSQL use less than `quiet` of a CPU
        over half a second (cache reloads and NOTIFY refreshes after a job are
        done); returns the seconds waited."""
        assert self.daemon is not None
        t = time.monotonic()
        while time.monotonic() - t < timeout:
            pids = [self.daemon.proc.pid] + self.postgres_pids()
            c0 = cpu_seconds(pids)
            time.sleep(0.5)
            if cpu_seconds(pids) - c0 < quiet * 0.5:
                break
        return time.monotonic() - t

    def profile_reset(self, dbname: str = "creditd") -> None:
        """With PROFILE_PG: forget the statistics gathered so far."""
        self.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements; "
                 "SELECT pg_stat_statements_reset();", dbname)

    def profile_top(self, n: int = 12, dbname: str = "creditd") -> list[str]:
        """With PROFILE_PG: the statements (top level and inside functions)
        with the most total execution time since profile_reset()."""
        out, _ = self.sql(f"""
SELECT round(sum(total_exec_time)::numeric / 1000, 2), sum(calls), sum(rows),
       round((sum(total_exec_time) / sum(calls))::numeric, 3), bool_or(toplevel),
       regexp_replace(left(query, 150), '\s+', ' ', 'g')
  FROM pg_stat_statements
 WHERE query NOT LIKE '%pg_stat_statements%'
 GROUP BY query   -- one entry per connection when a temporary table is involved
 ORDER BY sum(total_exec_time) DESC LIMIT {int(n)};""", dbname)
        lines = [f"  {'total s':>8} {'calls':>8} {'rows':>9} {'mean ms':>9} top  statement"]
        for row in out.splitlines():
            if not row.strip():
                continue
            tot, calls, rows, mean, top, q = row.split("|", 5)
            lines.append(f"  {tot:>8} {calls:>8} {rows:>9} {mean:>9} {'t' if top == 't' else ' ':>3}  {q}")
        return lines

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
