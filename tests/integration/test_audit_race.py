#!/usr/bin/env python3
"""Audit: exactly once under concurrency (SPEC R5.4, R3.3, R3.4, R3.5, R5.3,
R5.6, R6.1, R9.2). Billing races with exact amounts: events posted while
the invoice run runs (one daemon: the test clock crossing the scheduled run;
two daemons: one ingesting, the other running the job), payments racing the
run and their reversals, the same payment and the same events from several
clients and daemons at once, termination racing ingest.

A run is made to be in flight while the clients post: a psql session holds
one account's row lock (as the harness's rollover_waiting does), the run's
chunk locks the accounts in id order up to that one and waits; events and
payments of accounts it holds wait for its commit (they become late usage,
R5.3, or are allocated to the new invoice), those of the others commit
before it (billed now, or account credit applied at issue). Whatever the
order, the money must add up exactly.

Every account has contractual rate 0 and a jurisdiction without a statutory
rule (CH): no interest changes an amount. Amounts are whole cents: a line's
rounding (R1.3) changes nothing, so sums are exact to the micro-unit.

Timeline of daemon A (billing zone UTC), tests in name order:

  2023-06-28T10:00  accounts; June usage
  2023-07-01T01:00  (rollover done) the clock crosses 02:00 (the June run)
                    while clients post June and July events and payments
  2023-08-01T01:00  daemon B (same database) runs the July job while A
                    ingests late June, July and August events, first usage of
                    new accounts, and terminates accounts;
                    then: duplicate events on A and B at once, payment races,
                    termination racing ingest
  2023-09-01T03:00  (B stopped) the August run bills all the rest: every
                    account's invoices bill exactly its accepted events

Found (test_8, fixed by sql/0025): R3.5's check was only the daemon's cache
check, so an event that occurred after the termination instant, validated
just before the termination committed, was recorded (sql/0008 documented
this window) instead of rejected.
"""

import http.client
import json
import os
import subprocess
import threading
import time
import uuid
from decimal import Decimal

import harness

T0 = "2023-06-28T10:00:00Z"
JUL_EARLY = "2023-07-01T01:00:00Z"
JUL_RUN_DONE = "2023-07-01T03:00:00Z"
AUG_EARLY = "2023-08-01T01:00:00Z"

N_R = 60   # accounts R-00..: usage only
N_P = 30   # accounts P-00..: usage and a payment racing the June run

R_REFS = [f"R-{i:02d}" for i in range(N_R)]
P_REFS = [f"P-{i:02d}" for i in range(N_P)]
X_REFS = [f"X-{i:02d}" for i in range(8)]   # terminated while the July job runs
N_REFS = [f"N-{i:02d}" for i in range(8)]   # their first usage while the July job runs

SERVICES = [("sms", "DE"), ("sms", "FR"), ("voice", "DE"), ("chat", None)]


def uid():
    return str(uuid.uuid4())


def micro(amount):
    """'1.25' -> 1250000 (R1.1)."""
    return int(Decimal(amount) * 1000000)


def ev(ref, amount, occurred_at, k=0):
    service, dest = SERVICES[k % len(SERVICES)]
    e = {"id": uid(), "account": "ext:" + ref, "amount": amount, "occurred_at": occurred_at,
         "service": service}
    if dest is not None:
        e["destination"] = dest
    return e


class Client:
    """One keep-alive connection per thread; requests that answer 503
    (Retry-After: nothing acknowledged, R9.3) are sent again."""

    def __init__(self, daemon, token):
        self.daemon = daemon
        self.secret = daemon.secret(token)
        self.conn = None

    def send(self, method, path, body):
        for attempt in range(200):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.daemon.port,
                                                           timeout=60)
                self.conn.request(method, path, body=json.dumps(body),
                                  headers={"Content-Type": "application/json",
                                           "Authorization": "Bearer " + self.secret})
                r = self.conn.getresponse()
                raw = r.read()
            except (OSError, http.client.HTTPException):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt > 3:
                    raise
                continue
            if r.status == 503:
                time.sleep(0.05)
                continue
            return r.status, (json.loads(raw) if raw else None)
        return r.status, None

    def close(self):
        if self.conn is not None:
            self.conn.close()


class Ledger:
    """What the clients were told, thread-safe: accepted events (id ->
    (ref, micro, occurred_at)) and every answer's status."""

    def __init__(self):
        self.lock = threading.Lock()
        self.accepted = {}
        self.statuses = {}
        self.errors = []

    def post(self, client, events):
        """POST /v1/events; an id answered `duplicate` after an earlier 503 of
        the same request counts as accepted (its first attempt committed)."""
        status, body = client.send("POST", "/v1/events", events)
        with self.lock:
            if status != 200 or body is None:
                self.errors.append((status, body))
                return None
            for e, res in zip(events, body["results"]):
                if res["id"] != e["id"]:
                    self.errors.append(("order", e["id"], res))
                self.statuses[e["id"]] = (res["status"], res.get("reason"))
                if res["status"] == "accepted":
                    self.accepted[e["id"]] = (e["account"][4:], micro(e["amount"]),
                                              e["occurred_at"])
        return body

    def sum_by_ref(self, pred=lambda ref, occ: True):
        out = {}
        with self.lock:
            for ref, m, occ in self.accepted.values():
                if pred(ref, occ):
                    out[ref] = out.get(ref, 0) + m
        return out


def run_threads(fns):
    threads = [threading.Thread(target=f, name=getattr(f, "__qualname__", "?") + str(i))
               for i, f in enumerate(fns)]
    for t in threads:
        t.start()
    return threads


def wait_some(threads, timeout):
    """Waits up to timeout for the threads to end. While an invoice chunk
    waits for a lock, a request that the daemon queued on the chunk's
    connection (db_submit: the least busy one, a chunk counts as one) waits
    with it: such a thread ends only after the chunk."""
    end = time.monotonic() + timeout
    for t in threads:
        t.join(max(end - time.monotonic(), 0.01))


def join_all(threads, timeout=60, case=None):
    """Joins the threads; a thread still running after timeout fails the
    test, with the database sessions of the moment (who waits for whom)."""
    end = time.monotonic() + timeout
    for t in threads:
        t.join(max(end - time.monotonic(), 0.1))
        if t.is_alive():
            sessions = case.psql(
                "SELECT pid, pg_blocking_pids(pid), state, wait_event_type, left(query, 90)"
                " FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()") if case is not None else ""
            alive = [x.name for x in threads if x.is_alive()]
            raise AssertionError(f"client threads hung: {alive}; sessions:\n" + sessions)


class RowLocker:
    """A psql session that holds one account's row lock (FOR UPDATE) until
    release(): whatever locks that account in the meantime waits."""

    def __init__(self, case, account_id, name):
        c = case.cluster
        self.case = case
        self.name = name
        self.proc = subprocess.Popen(
            [os.path.join(c.bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h",
             c.sockdir, "-p", str(c.port), "-U", harness.PG_SUPERUSER, "-d",
             harness.DEFAULT_DBNAME, "-f", "-"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.proc.stdin.write(f"SET application_name = '{name}';\nBEGIN;\n"
                              f"SELECT 1 FROM accounts WHERE id = '{account_id}' FOR UPDATE;\n")
        self.proc.stdin.flush()
        case.wait_for_sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                          f"'{name}' AND state = 'idle in transaction'",
                          "the locker never took its lock")

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("COMMIT;\n")
            self.proc.stdin.close()
            self.proc.wait(30)
        return self.proc.returncode


def waiting(query_part, but="-"):
    """SQL: how many sessions wait for a lock in a statement containing
    query_part (and not `but`)."""
    return ("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            f"AND query LIKE '%{query_part}%' AND query NOT LIKE '%{but}%'")


class Race(harness.DaemonTestCase):
    TEST_CLOCK = T0

    ids = {}            # ref -> account id
    ledger = Ledger()
    june_before = {}    # ref -> June usage accepted before the June run (micro)
    june_invoice = {}   # ref -> the June invoice as issued
    payments = {}       # ref -> (payment id, micro) of P accounts
    extra = {}          # ref -> micro accepted outside the ledger (D-..)
    b = None            # daemon B (from test_2 on)

    @classmethod
    def tearDownClass(cls):
        if cls.b is not None:
            try:
                code = cls.b.stop()
            finally:
                cls.b.destroy()
            assert code == 0, f"daemon B exited with {code}"
        super().tearDownClass()

    # -- helpers

    def ok(self, r, status=200):
        self.assertEqual(r.status, status, r.text[:2000])
        return r.json

    def move_clock(self, now):
        self.assertEqual(self.ok(self.request("PUT", "/v1/test/clock", {"now": now}))["now"],
                         now)

    def account(self, ref, **extra):
        body = {"external_ref": ref, "name": "Customer " + ref, "currency": "EUR",
                "jurisdiction": "CH", "contractual_rate": "0"}
        body.update(extra)
        a = self.ok(self.request("POST", "/v1/accounts", body, token="finance"), 201)
        self.ids[ref] = a["id"]
        return a

    def acct(self, ref, daemon=None):
        return self.ok((daemon or self.daemon).request("GET", "/v1/accounts/ext:" + ref,
                                                       token="read"))

    def invoices(self, ref):
        return self.ok(self.request("GET", f"/v1/invoices?account=ext:{ref}&limit=1000",
                                    token="read"))["items"]

    def usage_lines(self, inv, kinds=("usage", "prior_usage")):
        return sum(micro(l["amount"]) for l in inv["lines"] if l["kind"] in kinds)

    def split(self, refs, pivot):
        """(refs after the pivot by id, refs up to it)."""
        return ([r for r in refs if self.ids[r] > self.ids[pivot]],
                [r for r in refs if self.ids[r] <= self.ids[pivot]])

    def middle(self, refs):
        """The account in the middle of refs by id (the chunk's lock order)."""
        return sorted(refs, key=lambda r: self.ids[r])[len(refs) // 2]

    def sql_rows(self, sql):
        return [tuple(x.split("|")) for x in self.psql(sql).splitlines() if x]

    def check_rollups(self):
        """Per account: the rollups hold exactly the stored events (R5.3),
        each billed rollup's invoice bills exactly its rollups, usage by
        usage (no event on two invoices, none lost: R5.4)."""
        bad = self.sql_rows(
            "SELECT a.external_ref, e.s, r.s FROM accounts a"
            " LEFT JOIN (SELECT account_id, sum(amount) s FROM events GROUP BY 1) e"
            "   ON e.account_id = a.id"
            " LEFT JOIN (SELECT account_id, sum(amount) s FROM usage_rollups GROUP BY 1) r"
            "   ON r.account_id = a.id"
            " WHERE e.s IS DISTINCT FROM r.s")
        self.assertEqual(bad, [], "events and rollups differ")
        bad = self.sql_rows(
            "SELECT i.number, r.s, l.s FROM invoices i"
            " LEFT JOIN (SELECT invoice_id, sum(amount) s FROM usage_rollups"
            "            WHERE invoice_id IS NOT NULL GROUP BY 1) r ON r.invoice_id = i.id"
            " LEFT JOIN (SELECT invoice_id, sum(exact) s FROM invoice_lines"
            "            WHERE kind IN ('usage', 'prior_usage') GROUP BY 1) l"
            "   ON l.invoice_id = i.id"
            " WHERE coalesce(r.s, 0) <> coalesce(l.s, 0)")
        self.assertEqual(bad, [], "an invoice's usage lines differ from its rollups")
        # (a rollup is on at most one invoice by construction; an event is in
        # exactly one rollup: the sums above)

    def check_money(self, refs, daemon=None):
        """R5.4 per account, to the micro-unit: the usage lines of all its
        invoices plus its unbilled usage are the sum of its accepted events;
        the stored events are exactly the accepted ones (R3.4)."""
        accepted = self.ledger.sum_by_ref()
        for ref, m in self.extra.items():
            accepted[ref] = accepted.get(ref, 0) + m
        for ref in refs:
            billed = sum(self.usage_lines(i) for i in self.invoices(ref))
            a = self.acct(ref, daemon)
            self.assertEqual(billed + micro(a["unbilled_usage"]), accepted.get(ref, 0),
                             (ref, billed, a["unbilled_usage"]))
        stored = self.sql_rows("SELECT e.id, a.external_ref FROM events e"
                               " JOIN accounts a ON a.id = e.account_id"
                               " WHERE a.external_ref IN ("
                               + ",".join(f"'{r}'" for r in refs) + ")")
        mine = {i for i, (ref, _, _) in self.ledger.accepted.items() if ref in refs}
        self.assertEqual({s[0] for s in stored if s[1] not in self.extra}, mine)

    # -- June

    def test_0_setup(self):
        for ref in R_REFS + P_REFS + X_REFS + N_REFS:
            self.account(ref)
        # June usage: R-i, P-i and X-i 1.00 + (i % 7) cents, two services
        c = Client(self.daemon, "platform")
        evs = []
        for k, ref in enumerate(R_REFS + P_REFS + X_REFS):
            evs.append(ev(ref, "1", "2023-06-28T09:00:00Z", k))
            evs.append(ev(ref, "0.%02d" % (k % 7 + 1), "2023-06-15T09:00:00Z", k + 1))
        body = self.ledger.post(c, evs)
        c.close()
        self.assertEqual(body["accepted"], len(evs), body)
        Race.june_before = self.ledger.sum_by_ref()

    def test_1_june_run_races_ingest_and_payments(self):
        """R5.4, R5.3, R6.1: the scheduled June run (the clock crossing 02:00)
        while clients post June and July events and payments."""
        self.move_clock(JUL_EARLY)  # the rollover; the run is due at 02:00
        pivot = self.middle(R_REFS + P_REFS)
        locker = RowLocker(self, self.ids[pivot], "race_locker_1")
        try:
            mover, clock = self.request_in_background(self.daemon, "PUT", "/v1/test/clock",
                                                      {"now": JUL_RUN_DONE}, "admin")
            self.wait_for_sql(waiting("creditd_invoice_chunk_lane"),
                              "the June run never waited for the locked account")
            # now the run holds every account before the pivot (id order)

            def poster(refs, k0):
                def run():
                    c = Client(self.daemon, "platform")
                    try:
                        for k, ref in enumerate(refs):
                            # June (billed now or late) and July (never on June's invoice)
                            self.ledger.post(c, [
                                ev(ref, "0.%02d" % ((k + k0) % 9 + 1), "2023-06-30T23:00:00Z", k),
                                ev(ref, "0.5", "2023-07-01T00:30:00Z", k + 1),
                                ev(ref, "2", "2023-06-30T23:59:59Z", k + 2)])
                    finally:
                        c.close()
                return run

            def payer(refs):
                def run():
                    c = Client(self.daemon, "finance")
                    try:
                        for k, ref in enumerate(refs):
                            # half pay less than the June total, half more
                            amount = "1.5" if k % 2 == 0 else "9"
                            pid = uid()
                            status, body = c.send("POST", "/v1/payments",
                                                  {"id": pid, "account": "ext:" + ref,
                                                   "amount": amount,
                                                   "received_at": "2023-06-30T12:00:00Z",
                                                   "reference": "race " + ref})
                            with self.ledger.lock:
                                if status != 201:
                                    self.ledger.errors.append((status, body))
                                Race.payments[ref] = (pid, micro(amount))
                    finally:
                        c.close()
                return run

            # first the accounts after the pivot (the run does not hold them:
            # through at once), then those up to it (waiting for the run)
            after, upto = self.split(R_REFS + P_REFS, pivot)
            pay_after, pay_upto = self.split(P_REFS, pivot)
            # (a request the daemon queued on the connection that runs the
            # chunk waits for it: see wait_some)
            first = run_threads([poster(after[0::3], 0), poster(after[1::3], 1),
                                 poster(after[2::3], 2),
                                 payer(pay_after[0::2]), payer(pay_after[1::2])])
            wait_some(first, 3.0)
            threads = first + run_threads([poster(upto[0::3], 0), poster(upto[1::3], 1),
                                           poster(upto[2::3], 2),
                                           payer(pay_upto[0::2]), payer(pay_upto[1::2])])
            self.wait_for_sql(waiting("creditd_", "chunk_lane"), "no client waited for the run", 20)
            time.sleep(0.2)
        finally:
            self.assertEqual(locker.release(), 0)
        join_all(threads, 60, self)
        mover.join(60)
        self.assertEqual(clock["r"][0], 200, clock["r"])
        self.assertEqual(self.ledger.errors, [])

        # every June invoice: June usage lines only (R5.3: July usage stays
        # unbilled), its total their sum; what was accepted of June and not
        # billed is late (stored as such) and unbilled
        late = dict(self.sql_rows(
            "SELECT a.external_ref, sum(e.amount) FROM events e JOIN accounts a"
            " ON a.id = e.account_id WHERE e.period = '2023-06-01' AND e.late GROUP BY 1"))
        june = self.ledger.sum_by_ref(lambda ref, occ: occ < "2023-07")
        july = self.ledger.sum_by_ref(lambda ref, occ: occ >= "2023-07")
        some_late = some_raced_in = 0
        for ref in R_REFS + P_REFS:
            invs = self.invoices(ref)
            self.assertEqual([(i["period"], i["kind"]) for i in invs], [("2023-06", "monthly")],
                             ref)
            inv = invs[0]
            self.assertEqual({l["kind"] for l in inv["lines"]}, {"usage"}, inv)
            billed = self.usage_lines(inv)
            n_late = int(late.get(ref, 0))
            self.assertEqual(billed + n_late, june[ref], (ref, billed, n_late))
            self.assertEqual(micro(inv["total"]), billed, inv)
            a = self.acct(ref)
            self.assertEqual(micro(a["unbilled_usage"]), n_late + july[ref], (ref, a))
            self.assertEqual(micro(a["monthly_usage"]), july[ref], (ref, a))
            # the run held the accounts before the pivot: their events of
            # the race are late
            if self.ids[ref] < self.ids[pivot]:
                self.assertEqual(billed, self.june_before[ref], ref)
            some_late += n_late > 0
            some_raced_in += billed > self.june_before[ref]
            Race.june_invoice[ref] = inv
        # the race happened both ways: the test would not see a defect otherwise
        self.assertGreater(some_late, 0)
        self.assertGreater(some_raced_in, 0)

        # R6.1, R5.3: a payment before the run became credit applied at issue,
        # one after it was allocated to the invoice: either way the same money
        for ref in P_REFS:
            inv = Race.june_invoice[ref]
            total = micro(inv["total"])
            paid = self.payments[ref][1]
            balance = max(total - paid, 0)
            credit = max(paid - total, 0)
            self.assertEqual(micro(inv["balance"]), balance, inv)
            a = self.acct(ref)
            self.assertEqual((micro(a["open_balance"]), micro(a["credit_balance"])),
                             (balance, credit), (ref, a))
            self.assertEqual(micro(a["exposure"]),
                             micro(a["unbilled_usage"]) + balance - credit, a)
        # both ways happened: credit applied at issue, payment allocated
        ways = self.psql("SELECT count(*) FILTER (WHERE credit_applied > 0),"
                         " count(*) FILTER (WHERE paid > 0) FROM invoices i JOIN accounts a"
                         " ON a.id = i.account_id WHERE a.external_ref LIKE 'P-%'").strip()
        self.assertNotIn("0", ways.split("|"), ways)
        self.check_rollups()

    # -- July, on two daemons

    def test_2_july_job_on_b_while_a_ingests(self):
        """R9.2, R5.1, R5.4: daemon B runs the July job while A ingests late
        June, July and August events for the same accounts."""
        self.move_clock(AUG_EARLY)
        Race.b = harness.Daemon(self.cluster.conninfo(), test_clock=AUG_EARLY)
        self.b.start()
        self.b.wait_ready()
        refs = R_REFS + P_REFS
        c = Client(self.daemon, "platform")
        body = self.ledger.post(c, [ev(ref, "4", "2023-07-20T10:00:00Z") for ref in X_REFS])
        c.close()
        self.assertEqual(body["accepted"], len(X_REFS), body)
        pivot = self.middle(refs)
        locker = RowLocker(self, self.ids[pivot], "race_locker_2")
        try:
            job, out = self.request_in_background(self.b, "POST", "/v1/jobs/invoicing?wait=true",
                                                  {"period": "2023-07"}, "ops")
            self.wait_for_sql(waiting("creditd_invoice_chunk_lane"),
                              "the July job never waited for the locked account")

            def poster(part):
                def run():
                    c = Client(self.daemon, "platform")
                    try:
                        for k, ref in enumerate(part):
                            self.ledger.post(c, [
                                ev(ref, "0.07", "2023-06-30T10:00:00Z", k),   # late June
                                ev(ref, "0.%02d" % (k % 9 + 1), "2023-07-31T23:00:00Z", k),
                                ev(ref, "3", "2023-08-01T00:30:00Z", k + 1)])
                    finally:
                        c.close()
                return run

            def newcomer(part):
                def run():
                    c = Client(self.daemon, "platform")
                    try:
                        for k, ref in enumerate(part):
                            self.ledger.post(c, [ev(ref, "0.%02d" % (k + 11),
                                                    "2023-07-31T22:00:00Z", k)])
                    finally:
                        c.close()
                return run

            def terminator():
                c = Client(self.daemon, "finance")
                p = Client(self.daemon, "platform")
                try:
                    for k, ref in enumerate(X_REFS):
                        self.ledger.post(p, [ev(ref, "0.3", "2023-08-01T00:40:00Z", k)])
                        st, body = c.send("POST", f"/v1/accounts/ext:{ref}/terminate",
                                          {"note": "during the run"})
                        with self.ledger.lock:
                            if st != 200:
                                self.ledger.errors.append((st, body))
                finally:
                    c.close()
                    p.close()

            after, upto = self.split(refs, pivot)
            first = run_threads([poster(after[0::2]), poster(after[1::2])])
            wait_some(first, 3.0)
            threads = first + run_threads([poster(upto[0::2]), poster(upto[1::2]),
                                           newcomer(N_REFS), terminator])
            self.wait_for_sql(waiting("creditd_", "chunk_lane"), "no client waited for the run", 20)
            time.sleep(0.2)
        finally:
            self.assertEqual(locker.release(), 0)
        join_all(threads, 60, self)
        job.join(60)
        status, raw, _ = out["r"]
        self.assertEqual(status, 202, raw)
        body = json.loads(raw)
        issued = int(self.psql("SELECT count(*) FROM invoices WHERE period = '2023-07-01'"
                               " AND kind = 'monthly'"))
        self.assertEqual((body["status"], body["result"]["invoices"]), ("succeeded", issued),
                         body)
        self.assertGreaterEqual(issued, len(refs) + len(X_REFS))
        self.assertEqual(self.ledger.errors, [])
        for ref in refs:
            invs = {i["period"]: i for i in self.invoices(ref)}
            self.assertEqual(sorted(invs), ["2023-06", "2023-07"], ref)
            # R5.5: the June invoice is what it was
            j = invs["2023-06"]
            self.assertEqual([(l["kind"], l["amount"]) for l in j["lines"]],
                             [(l["kind"], l["amount"]) for l in self.june_invoice[ref]["lines"]])
            self.assertEqual(j["total"], self.june_invoice[ref]["total"])
            # the July invoice: July usage, June's late usage as prior-period lines
            jl = invs["2023-07"]
            self.assertEqual(micro(jl["total"]), self.usage_lines(jl), jl)
            self.assertTrue(all(l["kind"] == "usage" or l.get("period") == "2023-06"
                                for l in jl["lines"]), jl)
        # R5.6: the accounts terminated during the run: their July usage on
        # the July invoice (the run held the period when they were
        # terminated) or on the final one; nothing left unbilled
        for ref in X_REFS:
            kinds = sorted((i["period"], i["kind"]) for i in self.invoices(ref))
            self.assertIn(kinds, ([("2023-06", "monthly"), ("2023-07", "monthly")],
                                  [("2023-06", "monthly"), ("2023-07", "monthly"),
                                   ("2023-08", "final")],
                                  [("2023-06", "monthly"), ("2023-08", "final")]), ref)
            a = self.acct(ref)
            self.assertEqual((a["status"], a["unbilled_usage"]), ("terminated", "0"), a)
        self.check_money(refs + X_REFS + N_REFS)
        self.check_money(refs[:5], self.b)
        self.check_rollups()
        # whatever is unbilled now is late July usage or August usage: no
        # rollup of June or July is open without having arrived late (but
        # the first usage of N-.., which the sweep may have missed: billed
        # as prior-period usage by the August run)
        self.assertEqual(self.psql("SELECT count(*) FROM usage_rollups r JOIN accounts a"
                                   " ON a.id = r.account_id WHERE r.invoice_id IS NULL"
                                   " AND r.period <= '2023-07-01' AND NOT r.late"
                                   " AND a.external_ref NOT LIKE 'N-%'").strip(), "0")

    # -- R3.3 across daemons

    def test_3_duplicates_on_two_daemons(self):
        """R3.3, R9.2: the same 40 events in different requests from six
        clients, on two daemons, mixed with new events: each accepted once,
        the counters count each once (GET and /v1/authorize on both)."""
        self.account("D-1", monthly_limit="100")
        for d in (self.daemon, self.b):
            harness_wait(lambda: d.request("POST", "/v1/authorize",
                                           {"account": "ext:D-1", "amount": "1"},
                                           token="platform").json.get("status") == "active",
                         "both daemons to know D-1")
        shared = [ev("D-1", "0.%02d" % (k % 50 + 1), "2023-08-01T00:45:00Z", k)
                  for k in range(40)]
        results = [None] * 6
        fresh = [[ev("D-1", "0.01", "2023-08-01T00:50:00Z", k) for k in range(5)]
                 for _ in range(6)]
        barrier = threading.Barrier(6)

        def client(i):
            def run():
                d = self.daemon if i % 2 == 0 else self.b
                c = Client(d, "platform")
                mine = shared[i * 7 % 40:] + shared[:i * 7 % 40]
                if i % 3 == 1:
                    mine = mine[::-1]
                batch = mine[:20] + fresh[i] + mine[20:]
                try:
                    barrier.wait(10)
                    status, body = c.send("POST", "/v1/events", batch)
                    results[i] = (batch, status, body)
                finally:
                    c.close()
            return run

        join_all(run_threads([client(i) for i in range(6)]))
        per_id = {}
        for batch, status, body in results:
            self.assertEqual(status, 200, body)
            for e, res in zip(batch, body["results"]):
                self.assertEqual(res["id"], e["id"])
                per_id.setdefault(e["id"], []).append(res["status"])
        for e in shared:
            self.assertEqual(sorted(per_id[e["id"]]), ["accepted"] + ["duplicate"] * 5,
                             per_id[e["id"]])
        for f in fresh:
            for e in f:
                self.assertEqual(per_id[e["id"]], ["accepted"])
        # sum of 0.01..0.40 (k % 50 + 1 for k < 40) = 8.20, plus 30 x 0.01 = 8.50
        for d in (self.daemon, self.b):
            a = self.acct("D-1", d)
            self.assertEqual((a["monthly_usage"], a["unbilled_usage"]), ("8.5", "8.5"), a)
            harness_wait(lambda: d.request("POST", "/v1/authorize",
                                           {"account": "ext:D-1", "amount": "1"},
                                           token="platform").json.get("monthly_remaining")
                         == "91.5", "both caches at 100 - 8.50")
        self.assertEqual(self.psql("SELECT sum(amount), count(*) FROM events e JOIN accounts a"
                                   " ON a.id = e.account_id WHERE a.external_ref = 'D-1'")
                         .strip(), "8500000|70")
        Race.extra["D-1"] = 8500000

    def test_3b_same_id_two_accounts_on_two_daemons(self):
        """R3.3: one event id for two accounts (other payloads), sent to A
        and B at once, 20 times: one accepted, the other a conflict; only
        the winner's account counts it."""
        self.account("D-2")
        self.account("D-3")
        for d in (self.daemon, self.b):
            for ref in ("D-2", "D-3"):
                harness_wait(lambda: d.request("POST", "/v1/authorize",
                                               {"account": "ext:" + ref, "amount": "1"},
                                               token="platform").json.get("status")
                             == "active", "both daemons to know " + ref)
        wins = {"D-2": 0, "D-3": 0}
        for k in range(20):
            eid = uid()
            pair = [dict(ev("D-2", "0.02", "2023-08-01T00:45:00Z", k), id=eid),
                    dict(ev("D-3", "0.03", "2023-08-01T00:45:00Z", k), id=eid)]
            out = [None, None]
            barrier = threading.Barrier(2)

            def send(i):
                c = Client(self.daemon if i == 0 else self.b, "platform")
                try:
                    barrier.wait(10)
                    out[i] = c.send("POST", "/v1/events", [pair[i]])
                finally:
                    c.close()

            join_all(run_threads([lambda: send(0), lambda: send(1)]))
            sts = [o[1]["results"][0]["status"] for o in out]
            self.assertEqual(sorted(sts), ["accepted", "conflict"], out)
            wins["D-2" if sts[0] == "accepted" else "D-3"] += 1
        Race.extra["D-2"], Race.extra["D-3"] = 20000 * wins["D-2"], 30000 * wins["D-3"]
        for d in (self.daemon, self.b):
            a2, a3 = self.acct("D-2", d), self.acct("D-3", d)
            self.assertEqual((micro(a2["monthly_usage"]), micro(a3["monthly_usage"])),
                             (20000 * wins["D-2"], 30000 * wins["D-3"]), (a2, a3, wins))
            self.assertEqual((a2["unbilled_usage"], a3["unbilled_usage"]),
                             (a2["monthly_usage"], a3["monthly_usage"]))

    # -- R6.1 races

    def test_4_payment_same_id_on_two_daemons(self):
        """R6.1: one payment sent three times to each daemon at once: booked
        once, 201 once, the same body with 200 five times."""
        ref = "R-00"
        before = self.acct(ref)
        body = {"id": uid(), "account": "ext:" + ref, "amount": "0.25",
                "received_at": "2023-07-31T12:00:00Z", "reference": "twice"}
        results = [None] * 6
        barrier = threading.Barrier(6)

        def client(i):
            def run():
                c = Client(self.daemon if i % 2 == 0 else self.b, "finance")
                try:
                    barrier.wait(10)
                    results[i] = c.send("POST", "/v1/payments", body)
                finally:
                    c.close()
            return run

        join_all(run_threads([client(i) for i in range(6)]))
        self.assertEqual(sorted(s for s, _ in results), [200] * 5 + [201], results)
        self.assertEqual(len({json.dumps(b, sort_keys=True) for _, b in results}), 1, results)
        after = self.acct(ref)
        self.assertEqual(micro(after["exposure"]), micro(before["exposure"]) - 250000, after)
        self.assertEqual(self.psql(f"SELECT count(*) FROM payments WHERE id = '{body['id']}'")
                         .strip(), "1")
        # one id, two payloads (other accounts) at once on A and B: one 201,
        # one 409 conflict, one payment booked (R6.1)
        for k in range(10):
            pid = uid()
            bodies = [{"id": pid, "account": "ext:R-01", "amount": "0.5",
                       "received_at": "2023-07-31T12:00:00Z", "reference": "a"},
                      {"id": pid, "account": "ext:R-02", "amount": "0.7",
                       "received_at": "2023-07-31T12:00:00Z", "reference": "b"}]
            res = [None, None]
            barrier2 = threading.Barrier(2)

            def pay(i):
                c = Client(self.daemon if i == 0 else self.b, "finance")
                try:
                    barrier2.wait(10)
                    res[i] = c.send("POST", "/v1/payments", bodies[i])
                finally:
                    c.close()

            join_all(run_threads([lambda: pay(0), lambda: pay(1)]))
            self.assertEqual(sorted(s for s, _ in res), [201, 409], res)
            loser = [b for s, b in res if s == 409][0]
            self.assertEqual(loser["error"]["code"], "conflict", loser)
            winner = 0 if res[0][0] == 201 else 1
            self.assertEqual(self.psql(f"SELECT a.external_ref, p.amount FROM payments p JOIN"
                                       f" accounts a ON a.id = p.account_id WHERE p.id = '{pid}'")
                             .strip(), ("R-01|500000", "R-02|700000")[winner])

    def test_5_payment_racing_its_reversal(self):
        """R6.1: a payment and its reversal sent at once (to two daemons): the
        reversal finds it (200) or not yet (404); then two reversals at once:
        one 200, one 422. Balances exact either way."""
        refs = R_REFS[10:30]
        before = {ref: self.acct(ref) for ref in refs}
        pids = {ref: uid() for ref in refs}
        outcome = {}
        barrier = threading.Barrier(2)

        def pay(ref):
            c = Client(self.daemon, "finance")
            try:
                barrier.wait(10)
                outcome[ref, "pay"] = c.send("POST", "/v1/payments",
                                             {"id": pids[ref], "account": "ext:" + ref,
                                              "amount": "1.11",
                                              "received_at": "2023-07-31T12:00:00Z",
                                              "reference": "bounce"})
            finally:
                c.close()

        def reverse(ref):
            c = Client(self.b, "finance")
            try:
                barrier.wait(10)
                # a few milliseconds later for some: found or not yet
                time.sleep(refs.index(ref) % 5 * 0.003)
                outcome[ref, "rev"] = c.send("POST", f"/v1/payments/{pids[ref]}/reverse",
                                             {"reason": "bounced"})
            finally:
                c.close()

        for ref in refs:
            join_all(run_threads([lambda r=ref: pay(r), lambda r=ref: reverse(r)]))
        reversed_ = set()
        for ref in refs:
            self.assertEqual(outcome[ref, "pay"][0], 201, outcome[ref, "pay"])
            st, body = outcome[ref, "rev"]
            self.assertIn(st, (200, 404), body)
            if st == 200:
                reversed_.add(ref)
        # then every payment still standing is reversed twice at once
        results = {}
        barrier2 = threading.Barrier(2)

        def reverse_on(d, ref, i):
            c = Client(d, "finance")
            try:
                barrier2.wait(10)
                results[ref, i] = c.send("POST", f"/v1/payments/{pids[ref]}/reverse",
                                         {"reason": "bounced"})
            finally:
                c.close()

        for ref in refs:
            if ref in reversed_:
                continue
            join_all(run_threads([lambda r=ref: reverse_on(self.daemon, r, 0),
                                  lambda r=ref: reverse_on(self.b, r, 1)]))
            sts = sorted(results[ref, i][0] for i in (0, 1))
            self.assertEqual(sts, [200, 422], results[ref, 0])
            err = [results[ref, i][1] for i in (0, 1) if results[ref, i][0] == 422][0]
            self.assertEqual(err["error"]["code"], "invalid_state", err)
        for ref in refs:
            a, b = before[ref], self.acct(ref)
            for k in ("exposure", "open_balance", "credit_balance", "unbilled_usage"):
                self.assertEqual(b[k], a[k], (ref, k, a, b))
            n = self.psql("SELECT count(*) FROM payments WHERE id = '%s' AND reversed_at IS NOT "
                          "NULL" % pids[ref]).strip()
            self.assertEqual(n, "1", ref)

    def test_6_june_payments_reversed_after_the_run(self):
        """R6.1, R5.3: the payments that raced the June run (credit applied
        at issue, or allocated to the invoice), reversed on both daemons at
        once: one reversal, and the June invoice is open for its whole total
        again, the account credit back to zero."""
        for ref in P_REFS:
            pid = self.payments[ref][0]
            before = self.acct(ref)
            res = [None, None]
            barrier = threading.Barrier(2)

            def rev(i, d):
                c = Client(d, "finance")
                try:
                    barrier.wait(10)
                    res[i] = c.send("POST", f"/v1/payments/{pid}/reverse", {"reason": "bounced"})
                finally:
                    c.close()

            join_all(run_threads([lambda: rev(0, self.daemon), lambda: rev(1, self.b)]))
            self.assertEqual(sorted(s for s, _ in res), [200, 422], (ref, res))
            inv = self.ok(self.request("GET", "/v1/invoices/" + self.june_invoice[ref]["number"],
                                       token="read"))
            self.assertEqual(inv["balance"], inv["total"], (ref, inv))
            a = self.acct(ref)
            paid = self.payments[ref][1]
            # the payment's credit leaves the account, its allocation returns
            # to the invoice: exposure grows by the payment's amount
            self.assertEqual(micro(a["exposure"]), micro(before["exposure"]) + paid, (ref, a))
            self.assertEqual(micro(a["credit_balance"]), 0, (ref, a))
            invs = self.invoices(ref)
            # every invoice open for its whole total again: credit applied at
            # issue (the June and the July invoice) came from this payment
            for i in invs:
                self.assertEqual(i["balance"], i["total"], (ref, i))
            self.assertEqual(micro(a["open_balance"]), sum(micro(i["total"]) for i in invs), a)
        self.check_rollups()

    # -- R5.6 / R3.5 racing ingest

    def test_7_termination_racing_ingest(self):
        """R5.6, R3.5: accounts terminated while clients post events that
        occurred before the termination instant (now - 1 s): each is on the
        final invoice or (committed after the termination) unbilled for the
        next run; none is lost or billed twice; none is rejected."""
        refs = [f"T-{i:02d}" for i in range(12)]
        for ref in refs:
            self.account(ref)
        c = Client(self.daemon, "platform")
        self.assertEqual(self.ledger.post(c, [ev(r, "1", "2023-08-01T00:10:00Z")
                                              for r in refs])["accepted"], len(refs))
        c.close()
        stop = threading.Event()

        def poster(part):
            def run():
                cl = Client(self.daemon, "platform")
                try:
                    k = 0
                    while not stop.is_set() and k < 400:
                        ref = part[k % len(part)]
                        self.ledger.post(cl, [ev(ref, "0.03", "2023-08-01T00:59:59Z", k)])
                        k += 1
                finally:
                    cl.close()
            return run

        def terminator():
            cl = Client(self.daemon, "finance")
            try:
                for ref in refs:
                    time.sleep(0.02)
                    st, body = cl.send("POST", f"/v1/accounts/ext:{ref}/terminate",
                                       {"note": "race"})
                    with self.ledger.lock:
                        if st != 200:
                            self.ledger.errors.append((st, body))
            finally:
                cl.close()
                stop.set()

        join_all(run_threads([poster(refs[0::2]), poster(refs[1::2]), terminator]))
        self.assertEqual(self.ledger.errors, [])
        bad = [(i, s) for i, s in self.ledger.statuses.items() if s[0] != "accepted"
               and i not in self.ledger.accepted]
        self.assertEqual(bad, [], "an event before the termination was not accepted")
        for ref in refs:
            invs = self.invoices(ref)
            self.assertEqual([i["kind"] for i in invs], ["final"], ref)
        self.check_money(refs)
        self.check_rollups()

    def test_8_event_validated_before_termination_committed_after(self):
        """R3.5: an event that occurred after the termination instant is
        rejected (`account_terminated`), also when it was checked against
        the account cache before the termination committed and reaches the
        database after it.

        Defect found by this test (fixed by sql/0025 and daemon/batcher.c):
        creditd_ingest_batch recorded it (the R3.5 check was only the
        daemon's cache check, sql/0008's "window of one batch flush"):
        accepted, on no final invoice, billed by a later monthly run."""
        ref = "T-WIN"
        self.account(ref)
        c = Client(self.daemon, "platform")
        self.assertEqual(self.ledger.post(c, [ev(ref, "1", "2023-08-01T00:10:00Z")])["accepted"],
                         1)
        locker = RowLocker(self, self.ids[ref], "race_locker_8")
        try:
            term, tout = self.request_in_background(self.daemon, "POST",
                                                    f"/v1/accounts/ext:{ref}/terminate",
                                                    {"note": "window"}, "finance")
            self.wait_for_sql(waiting("creditd_account_terminate"),
                              "the termination never waited")
            # occurred 1 minute after the termination instant (now = 01:00),
            # within max_future_skew: the cache still says active
            late = ev(ref, "5", "2023-08-01T01:01:00Z")
            ing, iout = self.request_in_background(self.daemon, "POST", "/v1/events", [late],
                                                   "platform")
            self.wait_for_sql(waiting("creditd_ingest_batch"), "the batch never waited")
        finally:
            self.assertEqual(locker.release(), 0)
        term.join(60)
        ing.join(60)
        c.close()
        self.assertEqual(tout["r"][0], 200, tout["r"])
        final = json.loads(tout["r"][1])["final_invoice"]
        self.assertEqual(final["total"], "1.00", final)
        status, raw, _ = iout["r"]
        self.assertEqual(status, 200, raw)
        res = json.loads(raw)["results"][0]
        self.assertEqual((res["status"], res.get("reason")), ("rejected", "account_terminated"),
                         res)
        self.assertEqual(self.acct(ref)["unbilled_usage"], "0")

    def test_9_august_run_bills_the_rest(self):
        """R5.4, R5.3, R3.5: the August run (daemon B stopped: A schedules)
        bills everything still unbilled: late June and July usage, the first
        usage the July sweep may have missed, August usage, and the events of
        terminated accounts that arrived after their final invoice (a monthly
        invoice due at issue). Then, for every account, the usage lines of all
        its invoices are exactly its accepted events."""
        self.assertEqual(self.b.stop(), 0)
        self.b.destroy()
        Race.b = None
        self.move_clock("2023-09-01T03:00:00Z")
        # (the leader may have been B until now: run the period, idempotent)
        r = self.request("POST", "/v1/jobs/invoicing?wait=true", {"period": "2023-08"},
                         token="ops")
        self.assertEqual((r.status, r.json["status"]), (202, "succeeded"), r.text)
        refs = sorted(self.ids)
        for ref in refs:
            a = self.acct(ref)
            self.assertEqual(a["unbilled_usage"], "0", a)
        # (T-WIN: its window event is outside the ledger; check_rollups
        # compares its invoices with its stored events)
        self.check_money([r for r in refs if r != "T-WIN"])
        self.check_rollups()
        self.assertEqual(self.psql("SELECT count(*) FROM usage_rollups WHERE invoice_id IS NULL")
                         .strip(), "0")
        # R5.6: what arrived after a final invoice is on a monthly invoice
        # due at issue
        late_terminated = 0
        for ref in [r for r in refs if r.startswith("T-")]:
            for inv in self.invoices(ref):
                if inv["kind"] == "monthly":
                    self.assertEqual((inv["period"], inv["due_date"]),
                                     ("2023-08", inv["issue_date"]), inv)
                    late_terminated += 1
        self.assertGreater(late_terminated, 0)
        # each account has at most one monthly invoice per period
        self.assertEqual(self.psql("SELECT count(*) FROM (SELECT account_id, period FROM invoices"
                                   " WHERE kind = 'monthly' GROUP BY 1, 2 HAVING count(*) > 1) x")
                         .strip(), "0")


def harness_wait(pred, what, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


if __name__ == "__main__":
    harness.main()
