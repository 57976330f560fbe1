#!/usr/bin/env python3
"""A job is declared abandoned only when its runner is really gone (SPEC
R9.2, R9.3; daemon/jobs.c, "liveness").

Defect these tests found (fixed): a running job's only sign of life was a
session lock on the runner's database connection 0. When that connection
was lost while the job went on on the others, the next sweep of any daemon
(at its start, then every 30 s) marked the job failed ("abandoned: the
daemon running it stopped"), and the job wrote "succeeded" at its end: ops
tooling polling GET /v1/jobs/{id} saw "failed" for a job that then
succeeded (test 1). Now every connection of the runner holds the lock
(shared), and a connection that comes back takes it again.

Test 1 holds a daily job at a gate (creditd_daily_reevaluate, wrapped to
wait for an advisory lock that the test holds) and ends the runner's
connection 0; sweeps are forced by starting daemons (each sweeps at its
start) and counted by creditd_jobs_sweeps_total. Test 2 checks the sweep's
rule on job rows made by hand. A daemon SIGKILLed with a job running is
covered by test_faults.py (test_3b: the restarted daemon marks it). All run
on the real clock."""

import os
import subprocess
import time
import uuid

import harness

GATE_LOCK = 4343
JOB_LOCK_KEY = 7274300
POOL = 4  # the default database.pool_size
LEADER_TRY = "SELECT pg_try_advisory_lock(7274200)"  # cluster.c, on connection 0 only

GATE_SQL = f"""
ALTER FUNCTION creditd_daily_reevaluate(timestamptz) RENAME TO test_daily_reevaluate_ungated;
CREATE FUNCTION creditd_daily_reevaluate(p_at timestamptz) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared({GATE_LOCK});
    PERFORM test_daily_reevaluate_ungated(p_at);
END
$$;
"""


wait_for = harness.wait_for


class Session:
    """A psql session that runs `sql` and keeps what it took until release()."""

    def __init__(self, case, sql):
        c = case.cluster
        self.proc = subprocess.Popen(
            [os.path.join(c.bindir, "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
             "-h", c.sockdir, "-p", str(c.port), "-U", harness.PG_SUPERUSER, "-d",
             harness.DEFAULT_DBNAME],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.proc.stdin.write(f"SELECT {sql}, 'locked';\n")
        self.proc.stdin.flush()
        case.addCleanup(self.release)
        line = self.proc.stdout.readline()
        if "locked" not in line:
            raise AssertionError(f"{sql}: {line!r} {self.proc.stderr.read()!r}")

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()  # psql exits, its session ends, its locks go
            self.proc.wait(30)
        self.proc.stdout.close()
        self.proc.stderr.close()


class JobLiveness(harness.DaemonTestCase):
    TEST_CLOCK = None

    @staticmethod
    def metric(d, name):
        """A counter of d's /metrics, -1 when absent (a binary without it)."""
        return harness.metric(d, name, absent=-1)

    def swept(self, d, n=1):
        """Waits until d completed n sweeps (its first at its start)."""
        wait_for(lambda: self.metric(d, "creditd_jobs_sweeps_total") >= n, 10,
                 f"{n} sweeps")

    def job_status(self, d, job_id):
        r = d.request("GET", "/v1/jobs/" + job_id, token="read")
        self.assertStatus(r, 200)
        return r.json

    def ended(self, d, job_id):
        st = self.job_status(d, job_id)
        return st if st["status"] != "running" else None

    def install_gate(self):
        self.wait_for_sql("SELECT count(*) = 0 FROM jobs WHERE status = 'running'",
                          "the module daemon's start-up jobs to end", timeout=30)
        if not self.psql("SELECT to_regproc('test_daily_reevaluate_ungated')").strip():
            self.psql(GATE_SQL)

    def lock_holders(self, job_id, app_name):
        """pids of app_name's sessions holding the job's lock."""
        return [int(p) for p in self.psql(
            "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            f"WHERE l.locktype = 'advisory' AND l.granted AND l.classid = {JOB_LOCK_KEY} "
            f"AND l.objsubid = 2 AND l.objid = hashtext('{job_id}')::oid AND "
            f"a.application_name = '{app_name}'").split()]

    def sessions(self, app_name, where):
        return [int(p) for p in self.psql(
            "SELECT pid FROM pg_stat_activity a WHERE a.application_name = "
            f"'{app_name}' AND {where}").split()]

    def gated_job(self, d, app_name):
        """Starts a daily job on d that waits at the gate on a connection
        other than connection 0 (the one that tries the scheduler's lock
        every 2 s: d is not the leader; the test checks d's log when it ends
        it). When the job's statement is on connection 0, the gate opens,
        that job ends, and another is tried. Returns (gate, job id,
        connection 0's pid)."""
        waiting = (f"pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND "
                   f"objid = {GATE_LOCK} AND NOT granted)")
        for attempt in range(8):
            gate = Session(self, f"pg_advisory_lock({GATE_LOCK})")
            r = d.request("POST", "/v1/jobs/daily", "{}", token="ops")
            self.assertStatus(r, 202)
            job = r.json["id"]
            self.assertEqual(r.json["status"], "running", r.json)
            waiters = wait_for(lambda: self.sessions(app_name, waiting), 10,
                               "the daily job to wait at the gate")
            try:
                conn0 = wait_for(lambda: self.sessions(app_name, f"query = '{LEADER_TRY}'"),
                                 4, "connection 0")
            except AssertionError:
                conn0 = None  # waiting at the gate: its last query is the job's
            if conn0 is not None:
                self.assertEqual(len(conn0), 1, conn0)
                self.assertNotIn(conn0[0], waiters)
                return gate, job, conn0[0]
            gate.release()
            wait_for(lambda: self.ended(d, job), 15, "the job on connection 0 to end")
        self.fail("the job's statement was always on connection 0")

    # ---- R9.2/R9.3: a lost connection 0 does not make a running job "failed"

    def test_1_job_survives_a_lost_connection_0(self):
        self.install_gate()
        a = self.named_daemon("live_a1")
        gate, job, conn0 = self.gated_job(a, "live_a1")
        # A's connection 0 ends (its share of the job's lock with it); the job
        # waits at the gate on another connection of A's
        mark = a.log_size()
        self.psql(f"SELECT pg_terminate_backend({conn0})")
        wait_for(lambda: self.psql(f"SELECT count(*) FROM pg_stat_activity WHERE pid = {conn0}")
                 .strip() == "0", 5.0, "the session to end")
        a.wait_log(r"db\[0\]: connection lost", start=mark, timeout=10)
        # a daemon sweeps at its start: B and C right after the loss, then B again
        sweepers = []
        for name in ("live_b1", "live_c1", "live_b1"):
            if sweepers and name == "live_b1":
                d = sweepers[0]
                self.assertEqual(d.stop(), 0, d.log_tail())
                d.start()
                d.wait_ready(timeout=15)
            else:
                d = self.named_daemon(name)
                sweepers.append(d)
            # its first sweep done (or the job marked: the defect)
            wait_for(lambda: self.metric(d, "creditd_jobs_sweeps_total") >= 1
                     or self.ended(d, job), 10, f"{name}'s sweep")
            for x in [a] + sweepers:
                st = self.job_status(x, job)
                self.assertEqual(st["status"], "running", f"after {name}'s sweep: {st}")
            self.assertEqual(self.metric(d, "creditd_jobs_sweeps_total"), 1)
        # A took its lock again on its new connection 0: all of A's connections
        # hold it
        wait_for(lambda: len(self.lock_holders(job, "live_a1")) == POOL, 5.0,
                 "A's new connection 0 to take the lock again")
        self.assertNotIn(conn0, self.lock_holders(job, "live_a1"))
        a.wait_log(r"job %s: lock taken again on connection 0" % job, start=mark)
        # the gate opens: the job ends "succeeded", never "failed" in between
        gate.release()
        st = wait_for(lambda: self.ended(sweepers[0], job), 15, "the job to end")
        self.assertEqual(st["status"], "succeeded", st)
        self.assertNotIn("error", st)
        logs = "".join(d.log_text() for d in [a, self.daemon] + sweepers)
        self.assertNotIn(f"job {job} was abandoned", logs)
        # and its lock is released on every connection at its end
        wait_for(lambda: not self.lock_holders(job, "live_a1"), 5.0, "the lock to be released")

    # ---- R9.2: a job whose runner is gone is abandoned, one with a holder is not

    def fake_job(self):
        job = str(uuid.uuid4())
        self.psql("INSERT INTO jobs (id, kind, params, status, requested_by, created_at) "
                  f"VALUES ('{job}', 'daily', '{{}}', 'running', 'test', now())")
        return job

    def row(self, job):
        return self.psql(f"SELECT status, coalesce(error, '') FROM jobs WHERE id = '{job}'"
                         ).strip().split("|")

    def test_2_abandoned_only_without_a_lock_holder(self):
        dead = self.fake_job()  # its runner's sessions are gone
        held = self.fake_job()  # one session of its runner is left
        holder = Session(self, f"pg_advisory_lock_shared({JOB_LOCK_KEY}, hashtext('{held}'))")
        e = self.named_daemon("live_e2")
        self.swept(e)
        self.assertEqual(self.row(dead), ["failed", "abandoned: the daemon running it stopped"])
        self.assertEqual(self.row(held), ["running", ""])
        # the last session ends: abandoned at the next sweep (E's restart)
        holder.release()
        self.assertEqual(e.stop(), 0, e.log_tail())
        e.start()
        e.wait_ready(timeout=15)
        self.swept(e)
        self.assertEqual(self.row(held), ["failed", "abandoned: the daemon running it stopped"])
        r = e.request("GET", "/v1/jobs/" + held, token="read")
        self.assertStatus(r, 200)
        self.assertEqual((r.json["status"], r.json["error"]),
                         ("failed", "abandoned: the daemon running it stopped"), r.json)
        self.assertEqual(self.metric(e, "creditd_jobs_abandoned_total"), 1)


if __name__ == "__main__":
    harness.main()
