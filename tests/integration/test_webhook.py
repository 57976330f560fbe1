#!/usr/bin/env python3
"""Webhook delivery of the notification outbox (SPEC R8.2, daemon/webhook.h).

A small HTTP receiver runs in this process on loopback; it checks every
delivery's HMAC-SHA256 signature with the shared secret, records it, and can
be told to answer 503, to reject a kind for an account, or to hang. The daemon
retries after at most max_backoff_seconds = 1, so retries come within seconds.

Tests run in name order and share the daemon; each resets the receiver."""

import hashlib
import hmac
import http.server
import json
import threading
import time
import uuid

import harness

T0 = "2026-01-15T10:00:00Z"
SECRET = "webhook-test-secret"
IO_TIMEOUT = 10  # daemon/webhook.c IO_TIMEOUT_SECONDS


def uid() -> str:
    return str(uuid.uuid4())


class Receiver:
    """Records POSTs; answers per the current rules. Thread-safe."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.lock = threading.Lock()
        self.requests: list[dict] = []  # every request, in arrival order
        self.fail_next = 0  # answer 503 to this many requests
        self.reject: set[tuple[str, str]] = set()  # (external_ref, kind) -> 400
        self.hang_next = 0  # hang on this many requests ...
        self.hang_seconds = 0.0  # ... for this long, then answer 200
        self.hanging = threading.Event()  # set while a request hangs
        self.release = threading.Event()  # set to end a hang early
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                receiver.handle(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?src=test"

    def reset(self) -> None:
        with self.lock:
            self.requests = []
            self.fail_next = 0
            self.reject = set()
            self.hang_next = 0
            self.hang_seconds = 0.0
            self.hanging.clear()
            self.release.clear()

    def handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        n = int(h.headers.get("Content-Length", "0"))
        body = h.rfile.read(n)
        ts = h.headers.get("X-Creditd-Timestamp", "")
        sig = h.headers.get("X-Creditd-Signature", "")
        want = "sha256=" + hmac.new(self.secret, ts.encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        rec = {"path": h.path, "body": body, "json": doc, "ts": ts, "received": time.time(),
               "sig_ok": hmac.compare_digest(sig, want),
               "delivery": h.headers.get("X-Creditd-Delivery"),
               "content_type": h.headers.get("Content-Type"), "status": None}
        ref = ((doc or {}).get("payload") or {}).get("external_ref")
        kind = (doc or {}).get("kind")
        hang = 0.0
        with self.lock:
            self.requests.append(rec)
            if self.hang_next > 0:
                self.hang_next -= 1
                hang = self.hang_seconds
                rec["status"] = "hung"
            elif self.fail_next > 0:
                self.fail_next -= 1
                rec["status"] = 503
            elif (ref, kind) in self.reject:
                rec["status"] = 400
            else:
                rec["status"] = 200
        if hang:
            self.hanging.set()
            released = self.release.wait(hang)
            self.hanging.clear()
            if not released:
                return  # the daemon gave up long ago; just close
            with self.lock:
                rec["status"] = 200
        status = rec["status"]
        try:
            h.send_response(status)
            h.send_header("Content-Length", "2")
            h.end_headers()
            h.wfile.write(b"ok")
        except OSError:
            pass

    def snapshot(self) -> list[dict]:
        with self.lock:
            return [dict(r) for r in self.requests]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


RECEIVER = Receiver(SECRET)
RECEIVER2 = Receiver(SECRET)


def webhook_config(receiver=RECEIVER, **extra):
    sec = {"url": receiver.url, "secret": SECRET, "max_backoff_seconds": 1}
    sec.update(extra)
    return {"billing": {"timezone": "Europe/Berlin"}, "webhook": sec}


def tearDownModule():  # noqa: N802 - runs after the module's daemon is stopped
    RECEIVER.close()
    RECEIVER2.close()


class Webhook(harness.DaemonTestCase):
    TEST_CLOCK = T0
    CONFIG = webhook_config()

    def setUp(self):
        super().setUp()
        RECEIVER.reset()
        RECEIVER2.reset()

    # -- helpers

    def account(self, ref, monthly_limit=None):
        body = {"external_ref": ref, "name": "Customer " + ref, "currency": "EUR",
                "jurisdiction": "DE"}
        if monthly_limit is not None:
            body["monthly_limit"] = monthly_limit
        r = self.request("POST", "/v1/accounts", body)
        self.assertStatus(r, 201)
        return r.json

    def suspend(self, ref):
        self.assertStatus(self.request("POST", f"/v1/accounts/ext:{ref}/suspend",
                                        {"note": "test"}), 200)

    def unsuspend(self, ref):
        self.assertStatus(self.request("POST", f"/v1/accounts/ext:{ref}/unsuspend",
                                       {"note": "test"}), 200)

    def events(self, ref, *amounts):
        evs = [{"id": uid(), "account": "ext:" + ref, "amount": a,
                "occurred_at": "2026-01-15T09:00:00Z", "service": "sms"} for a in amounts]
        r = self.request("POST", "/v1/events", evs, token="platform")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["accepted"], len(amounts), r.json)

    def row(self, nid):
        out = self.psql("SELECT delivered_at IS NOT NULL, attempts, coalesce(last_error, ''), "
                        "coalesce(next_attempt_at::text, '') FROM notifications "
                        f"WHERE id = {int(nid)}").strip()
        delivered, attempts, err, nxt = out.split("|")
        return {"delivered": delivered == "t", "attempts": int(attempts), "last_error": err,
                "next_attempt_at": nxt}

    def wait_delivered(self, receiver, ids, timeout=20.0):
        """Until each id got a 2xx from the receiver and is marked delivered."""
        ids = {str(i) for i in ids}
        deadline = time.monotonic() + timeout
        while True:
            got = {r["delivery"] for r in receiver.snapshot() if r["status"] == 200}
            if ids <= got:
                undelivered = self.psql(
                    "SELECT count(*) FROM notifications WHERE delivered_at IS NULL AND id IN ("
                    + ",".join(sorted(ids)) + ")").strip()
                if undelivered == "0":
                    return receiver.snapshot()
            if time.monotonic() > deadline:
                self.fail(f"not delivered within {timeout} s: {sorted(ids - got)}; "
                          f"received {[(r['delivery'], r['status']) for r in receiver.snapshot()]}")
            time.sleep(0.05)

    def metrics(self):
        r = self.request("GET", "/metrics")
        self.assertStatus(r, 200)
        out = {}
        for line in r.text.splitlines():
            if line.startswith("creditd_webhook_"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def check_deliveries(self, reqs, items):
        """Signed, well-formed, each accepted once and never sent again after
        its 2xx, in id order per account, body = the API's item."""
        by_id = {str(n["id"]): n for n in items}
        ok_seen = set()
        last_per_account = {}
        for r in reqs:
            d = r["delivery"]
            if d not in by_id:
                continue
            self.assertTrue(r["sig_ok"], r)
            self.assertEqual(r["content_type"], "application/json", r)
            self.assertEqual(r["path"], "/hook?src=test", r)
            self.assertLess(abs(int(r["ts"]) - r["received"]), 300, r)
            self.assertEqual(r["json"], by_id[d], r)
            self.assertNotIn(d, ok_seen, f"notification {d} sent again after a 2xx")
            if r["status"] == 200:
                ok_seen.add(d)
            acc = by_id[d]["account"]
            self.assertGreaterEqual(int(d), last_per_account.get(acc, 0),
                                    f"account {acc}: {d} sent after a later one")
            last_per_account[acc] = int(d)
        self.assertEqual(ok_seen, set(by_id), "every notification accepted once")

    # -- tests

    def test_01_each_notification_once_signed_in_order(self):
        refs = ["W-A", "W-B", "W-C"]
        for ref in refs:
            self.account(ref)
        for ref in refs:
            self.suspend(ref)
        for ref in refs:
            self.unsuspend(ref)
            self.suspend(ref)
        # usage alerts and a limit suspension
        self.account("W-LIM", monthly_limit="10")
        self.events("W-LIM", "8.5")
        self.events("W-LIM", "0.6", "1")
        items = []
        for ref in refs + ["W-LIM"]:
            got = self.notifications(ref)
            self.assertGreaterEqual(len(got), 3, (ref, got))
            items += got
        kinds = {n["kind"] for n in items}
        self.assertIn("usage.threshold", kinds)
        self.assertIn("account.reactivated", kinds)
        reqs = self.wait_delivered(RECEIVER, [n["id"] for n in items])
        self.check_deliveries(reqs, items)
        # the receiver answered 200 every time: exactly one request each
        ids = [r["delivery"] for r in reqs if r["delivery"] in {str(n["id"]) for n in items}]
        self.assertEqual(len(ids), len(items), ids)
        for n in items:
            row = self.row(n["id"])
            self.assertEqual((row["delivered"], row["attempts"]), (True, 1), (n, row))

    def test_02_failing_receiver_gets_everything_after_recovery(self):
        before = self.metrics()
        RECEIVER.fail_next = 6
        for ref in ["W-F1", "W-F2"]:
            self.account(ref)
            self.suspend(ref)
            self.unsuspend(ref)
            self.suspend(ref)
        items = self.notifications("W-F1") + self.notifications("W-F2")
        self.assertEqual(len(items), 6, items)
        reqs = self.wait_delivered(RECEIVER, [n["id"] for n in items], timeout=30)
        self.check_deliveries(reqs, items)
        self.assertEqual(sum(1 for r in reqs if r["status"] == 503), 6)
        rows = [self.row(n["id"]) for n in items]
        self.assertTrue(all(r["delivered"] for r in rows), rows)
        self.assertEqual(sum(r["attempts"] for r in rows), 6 + 6, rows)
        self.assertIn("HTTP 503", [r["last_error"] for r in rows])
        after = self.metrics()
        self.assertEqual(after["creditd_webhook_failures_total"]
                         - before["creditd_webhook_failures_total"], 6, after)
        self.assertGreaterEqual(after["creditd_webhook_delivered_total"]
                                - before["creditd_webhook_delivered_total"], 6, after)
        self.assertEqual(after["creditd_webhook_enabled"], 1, after)
        self.assertGreater(after["creditd_webhook_last_success_timestamp_seconds"],
                           time.time() - 60, after)

    def test_03_hanging_receiver_blocks_neither_api_nor_other_accounts(self):
        RECEIVER.hang_next = 1
        RECEIVER.hang_seconds = IO_TIMEOUT + 5
        self.account("W-HANG")
        self.suspend("W-HANG")
        self.assertTrue(RECEIVER.hanging.wait(10), "the delivery did not arrive")
        t0 = time.monotonic()
        for i in range(5):
            self.account(f"W-FAST-{i}")
            self.events(f"W-FAST-{i}", "1")
        self.assertLess(time.monotonic() - t0, 3.0, "API calls slowed by a hanging webhook")
        # another account's notification passes while the first one hangs
        self.suspend("W-FAST-0")
        other = self.notifications("W-FAST-0")
        self.wait_delivered(RECEIVER, [n["id"] for n in other], timeout=5)
        self.assertTrue(RECEIVER.hanging.is_set(), "still hanging")
        # the same account waits behind its hanging notification
        self.unsuspend("W-HANG")
        items = self.notifications("W-HANG")
        self.assertEqual(len(items), 2, items)
        # the daemon times out, retries after the backoff and gets a 200
        reqs = self.wait_delivered(RECEIVER, [n["id"] for n in items], timeout=IO_TIMEOUT + 15)
        first = self.row(items[0]["id"])
        self.assertEqual((first["attempts"], first["last_error"]), (2, "timed out"), first)
        mine = [r for r in reqs if r["delivery"] in {str(n["id"]) for n in items}]
        self.assertEqual([(r["delivery"], r["status"]) for r in mine],
                         [(str(items[0]["id"]), "hung"), (str(items[0]["id"]), 200),
                          (str(items[1]["id"]), 200)], mine)
        self.assertEqual(self.row(items[1]["id"])["attempts"], 1)

    def test_04_gives_up_after_max_attempts_and_moves_on(self):
        self.daemon.write_config(webhook_config(max_attempts=2))
        self.daemon.reload()
        self.daemon.wait_log(r"reload: configuration .* reloaded", start=self._log_offset)
        try:
            RECEIVER.reject.add(("W-DEAD", "account.suspended"))
            self.account("W-DEAD")
            before = self.metrics()
            self.suspend("W-DEAD")
            self.unsuspend("W-DEAD")
            dead, alive = self.notifications("W-DEAD")
            self.wait_delivered(RECEIVER, [alive["id"]], timeout=15)
            row = self.row(dead["id"])
            self.assertFalse(row["delivered"], row)
            self.assertEqual(row["attempts"], 2, row)
            self.assertTrue(row["last_error"].startswith("gave up"), row)
            self.assertEqual(row["next_attempt_at"], "infinity", row)
            seq = [(r["delivery"], r["status"]) for r in RECEIVER.snapshot()]
            self.assertEqual(seq, [(str(dead["id"]), 400), (str(dead["id"]), 400),
                                   (str(alive["id"]), 200)], seq)
            after = self.metrics()
            self.assertEqual(after["creditd_webhook_given_up_total"]
                             - before["creditd_webhook_given_up_total"], 1, after)
            self.assertGreaterEqual(after["creditd_webhook_given_up"], 1, after)
            self.daemon.wait_log(r"notification \d+: gave up after 2 attempts",
                                 start=self._log_offset)
        finally:
            self.daemon.write_config(webhook_config())
            offset = self.daemon.log_size()
            self.daemon.reload()
            self.daemon.wait_log(r"reload: configuration .* reloaded", start=offset)

    def test_05_reload_changes_url_and_disables(self):
        offset = self.daemon.log_size()
        self.daemon.write_config(webhook_config(RECEIVER2))
        self.daemon.reload()
        self.daemon.wait_log(r"reload: configuration .* reloaded", start=offset)
        self.account("W-URL")
        self.suspend("W-URL")
        items = self.notifications("W-URL")
        reqs = self.wait_delivered(RECEIVER2, [n["id"] for n in items])
        self.check_deliveries(reqs, items)
        self.assertEqual(RECEIVER.snapshot(), [])

        # disabled: nothing is sent, the outbox keeps it
        offset = self.daemon.log_size()
        self.daemon.write_config({"billing": {"timezone": "Europe/Berlin"}})
        self.daemon.reload()
        self.daemon.wait_log(r"webhook: disabled", start=offset)
        self.unsuspend("W-URL")
        later = self.notifications("W-URL")[-1]
        time.sleep(2.5)  # more than two polling periods
        self.assertFalse(self.row(later["id"])["delivered"])
        self.assertEqual(self.metrics()["creditd_webhook_enabled"], 0)

        # enabled again: the backlog goes out
        offset = self.daemon.log_size()
        self.daemon.write_config(webhook_config())
        self.daemon.reload()
        self.daemon.wait_log(r"webhook: running", start=offset)
        reqs = self.wait_delivered(RECEIVER, [later["id"]])
        self.check_deliveries([r for r in reqs if r["delivery"] == str(later["id"])], [later])

    def test_06_outbox_drained_and_no_duplicates(self):
        # by now every notification was delivered or given up; nothing was
        # accepted twice across the whole module
        deadline = time.monotonic() + 10
        while True:
            m = self.metrics()
            if m["creditd_webhook_pending"] == 0 and m["creditd_webhook_inflight"] == 0:
                break
            if time.monotonic() > deadline:
                self.fail(f"outbox not drained: {m}")
            time.sleep(0.1)
        left = self.psql("SELECT count(*) FROM notifications WHERE delivered_at IS NULL "
                         "AND next_attempt_at <> 'infinity'").strip()
        self.assertEqual(left, "0")

    def test_07_shutdown_cancels_a_delivery_in_flight(self):
        RECEIVER.hang_next = 1
        RECEIVER.hang_seconds = 60
        self.account("W-STOP")
        self.suspend("W-STOP")
        (item,) = self.notifications("W-STOP")
        self.assertTrue(RECEIVER.hanging.wait(10), "the delivery did not arrive")
        t0 = time.monotonic()
        self.assertEqual(self.daemon.stop(), 0)
        self.assertLess(time.monotonic() - t0, 5.0, "shutdown waited for the webhook")
        # the claim was released: not delivered, no attempt counted, due now
        self.assertEqual(self.row(item["id"]),
                         {"delivered": False, "attempts": 0, "last_error": "",
                          "next_attempt_at": ""})
        # at least once: the next daemon sends it again
        self.daemon.start()
        self.daemon.wait_ready()
        reqs = self.wait_delivered(RECEIVER, [item["id"]])
        self.assertEqual([(r["delivery"], r["status"]) for r in reqs],
                         [(str(item["id"]), "hung"), (str(item["id"]), 200)])
        self.assertTrue(all(r["sig_ok"] for r in reqs))


if __name__ == "__main__":
    harness.main()
