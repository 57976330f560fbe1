#!/usr/bin/env python3
"""Audit of webhook delivery (SPEC R8.2, R9.2, R9.5; daemon/webhook.h).

test_webhook.py covers the happy path, 503 retries, a hanging receiver,
giving up, URL reload and SIGTERM. This file checks what it does not, with
exact values: the bytes on the wire (one Content-Length, Host, signature over
the exact body with non-ASCII text), redirects are not followed and are not a
delivery, the backoff ceilings min(max_backoff, 2^(attempts-1)) with their
jitter (a delay in [ceiling / 2, ceiling], common/backoff.h), a 2xx whose
answer is larger than the daemon reads, host names and IPv6 literals, a
refused connection, the secret and URL never in the log or /metrics, a
SIGKILL between send and mark (the lease), and two daemons against one
database (each notification accepted once, in order per account).

Tests run in name order and share one daemon; each resets the receiver."""

import hashlib
import hmac
import http.server
import json
import re
import socket
import threading
import time
import uuid

import harness

T0 = "2026-01-15T10:00:00Z"
SECRET = "audit-wh-Secret-7f3a"
URL_SECRET = "urlpass-91c2"  # userinfo in a URL: never logged either
LEASE_SECONDS = 60  # daemon/webhook.c LEASE_SECONDS
DEADLINE_SECONDS = 30  # daemon/webhook.c DEADLINE_SECONDS


def uid() -> str:
    return str(uuid.uuid4())


class Receiver:
    """Records every request with its raw headers; answers what `answer`
    (delivery id -> (status, extra headers, body)) says, 200 by default."""

    def __init__(self, family=socket.AF_INET, host="127.0.0.1") -> None:
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.answer = None
        self.hanging = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                receiver.handle(self)

            def do_GET(self):  # noqa: N802 - a followed redirect would land here
                receiver.handle(self)

        class Server(http.server.ThreadingHTTPServer):
            address_family = family

        self.server = Server((host, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self, answer=None) -> None:
        with self.lock:
            self.requests = []
            self.answer = answer
            self.hanging.clear()
            self.release.clear()

    def handle(self, h) -> None:
        n = int(h.headers.get("Content-Length", "0") or "0")
        body = h.rfile.read(n)
        ts = h.headers.get("X-Creditd-Timestamp", "")
        sig = h.headers.get("X-Creditd-Signature", "")
        want = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        rec = {"method": h.command, "path": h.path, "body": body, "json": doc, "ts": ts,
               "sig": sig, "sig_ok": hmac.compare_digest(sig, want), "received": time.time(),
               "delivery": h.headers.get("X-Creditd-Delivery"),
               "headers": list(h.headers.items()), "status": 200}
        status, extra, reply = 200, [], b"ok"
        if self.answer is not None:
            got = self.answer(rec)
            if got == "hang":
                with self.lock:
                    rec["status"] = "hung"
                    self.requests.append(rec)
                self.hanging.set()
                self.release.wait(120)
                return
            status, extra, reply = got
        rec["status"] = status
        with self.lock:
            self.requests.append(rec)
        try:
            h.send_response(status)
            for k, v in extra:
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(reply)))
            h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(reply)
        except OSError:
            pass
        h.close_connection = True

    def snapshot(self) -> list[dict]:
        with self.lock:
            return [dict(r) for r in self.requests]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


RECEIVER = Receiver()
RECEIVER6 = Receiver(socket.AF_INET6, "::1")


def url(receiver=RECEIVER, path="/in?x=1"):
    return f"http://127.0.0.1:{receiver.port}{path}"


def webhook_config(u=None, **extra):
    sec = {"url": u or url(), "secret": SECRET, "max_backoff_seconds": 1}
    sec.update(extra)
    return {"billing": {"timezone": "Europe/Berlin"}, "webhook": sec}


def tearDownModule():  # noqa: N802
    RECEIVER.close()
    RECEIVER6.close()


class AuditWebhook(harness.DaemonTestCase):
    TEST_CLOCK = T0
    CONFIG = webhook_config()

    def setUp(self):
        super().setUp()
        RECEIVER.reset()
        RECEIVER6.reset()

    # -- helpers

    def configure(self, cfg):
        offset = self.daemon.log_size()
        self.daemon.write_config(cfg)
        self.daemon.reload()
        self.daemon.wait_log(r"reload: configuration .* reloaded", start=offset)

    def account(self, ref, name=None):
        body = {"external_ref": ref, "name": name or "Customer " + ref, "currency": "EUR",
                "jurisdiction": "DE"}
        r = self.request("POST", "/v1/accounts", body)
        self.assertStatus(r, 201)
        return r.json

    def suspend(self, ref, note="audit", daemon=None):
        r = (daemon or self.daemon).request("POST", f"/v1/accounts/ext:{ref}/suspend",
                                            {"note": note})
        self.assertStatus(r, 200)

    def unsuspend(self, ref, note="audit", daemon=None):
        r = (daemon or self.daemon).request("POST", f"/v1/accounts/ext:{ref}/unsuspend",
                                            {"note": note})
        self.assertStatus(r, 200)

    def row(self, nid):
        out = self.psql("SELECT delivered_at IS NOT NULL, attempts, coalesce(last_error, ''), "
                        "coalesce(next_attempt_at::text, ''), "
                        "CASE WHEN isfinite(next_attempt_at) THEN "
                        "extract(epoch FROM next_attempt_at - now())::int::text ELSE '' END "
                        f"FROM notifications WHERE id = {int(nid)}").strip()
        delivered, attempts, err, nxt, due_in = out.split("|")
        return {"delivered": delivered == "t", "attempts": int(attempts), "last_error": err,
                "next_attempt_at": nxt, "due_in": due_in}

    def wait_delivered(self, receiver, ids, timeout=20.0):
        ids = {str(i) for i in ids}
        deadline = time.monotonic() + timeout
        while True:
            got = {r["delivery"] for r in receiver.snapshot()
                   if isinstance(r["status"], int) and 200 <= r["status"] <= 299}
            if ids <= got:
                left = self.psql("SELECT count(*) FROM notifications WHERE delivered_at IS NULL "
                                 "AND id IN (" + ",".join(sorted(ids)) + ")").strip()
                if left == "0":
                    return receiver.snapshot()
            if time.monotonic() > deadline:
                self.fail(f"not delivered within {timeout} s: {sorted(ids - got)}; received "
                          f"{[(r['delivery'], r['status']) for r in receiver.snapshot()]}")
            time.sleep(0.05)

    def metrics_text(self, daemon=None):
        r = (daemon or self.daemon).request("GET", "/metrics")
        self.assertStatus(r, 200)
        return r.text

    # -- tests

    def test_01_exact_bytes_headers_and_signature(self):
        # A note with quotes, a backslash, non-ASCII letters, U+2028 and an
        # emoji: the signature must cover exactly the bytes sent, and the body
        # must be the item GET /v1/notifications lists.
        note = 'Grüße "Ü" \\ \u2028 \U0001F4B6 <&>'
        self.account("AW-BYTES", name="Zoë Ørsted")
        self.suspend("AW-BYTES", note=note)
        (item,) = self.notifications("AW-BYTES")
        self.assertEqual(item["payload"]["note"], note)
        (req,) = [r for r in self.wait_delivered(RECEIVER, [item["id"]])
                  if r["delivery"] == str(item["id"])]
        self.assertTrue(req["sig_ok"], req)
        self.assertRegex(req["sig"], r"^sha256=[0-9a-f]{64}$")
        self.assertRegex(req["ts"], r"^[0-9]{10}$")
        self.assertLess(abs(int(req["ts"]) - req["received"]), 60)
        self.assertEqual(req["json"], item)
        self.assertEqual((req["method"], req["path"]), ("POST", "/in?x=1"))
        hdrs = {}
        for k, v in req["headers"]:
            hdrs.setdefault(k.lower(), []).append(v)
        # exactly one of each, a receiver rejects duplicated framing headers
        for name in ("content-length", "content-type", "host", "x-creditd-signature",
                     "x-creditd-timestamp", "x-creditd-delivery"):
            self.assertEqual(len(hdrs.get(name, [])), 1, (name, req["headers"]))
        self.assertEqual(hdrs["content-length"], [str(len(req["body"]))])
        self.assertEqual(hdrs["content-type"], ["application/json"])
        self.assertEqual(hdrs["host"], [f"127.0.0.1:{RECEIVER.port}"])
        # the note travels as UTF-8 in the signed bytes, and the whole body is
        # valid UTF-8 JSON
        req["body"].decode("utf-8")
        self.assertEqual(self.row(item["id"])["attempts"], 1)

    def test_02_redirect_is_not_followed_and_not_a_delivery(self):
        # 302 (and 301/307/308) is not a 2xx: a failed attempt "HTTP 302",
        # retried after 1 s; the Location is never requested. Then 204 (a
        # 2xx without a body) is a delivery: attempts = 2, delivered.
        answers = {"n": 0}

        def answer(rec):
            if rec["path"] != "/in?x=1":
                return 200, [], b"followed"
            answers["n"] += 1
            if answers["n"] == 1:
                return 302, [("Location", "/elsewhere")], b""
            return 204, [], b""

        RECEIVER.reset(answer)
        self.account("AW-REDIR")
        self.suspend("AW-REDIR")
        (item,) = self.notifications("AW-REDIR")
        reqs = self.wait_delivered(RECEIVER, [item["id"]])
        self.assertEqual([(r["method"], r["path"], r["status"]) for r in reqs],
                         [("POST", "/in?x=1", 302), ("POST", "/in?x=1", 204)])
        self.assertGreaterEqual(reqs[1]["received"] - reqs[0]["received"], 0.9)
        row = self.row(item["id"])
        self.assertEqual((row["delivered"], row["attempts"], row["last_error"]),
                         (True, 2, "HTTP 302"), row)

    def test_03_backoff_doubles_up_to_the_cap_then_gives_up(self):
        # max_backoff_seconds = 2, max_attempts = 4, always 500; the ceilings:
        # attempt 1 fails -> next within min(2, 2^0) = 1 s
        # attempt 2       -> min(2, 2^1) = 2 s
        # attempt 3       -> min(2, 2^2) = 2 s (capped)
        # attempt 4       -> given up (next_attempt_at = infinity)
        # and each delay a random point in [ceiling / 2, ceiling] (jitter,
        # sql/0035 and common/backoff.h; test_backoff has exact values)
        self.configure(webhook_config(max_backoff_seconds=2, max_attempts=4))
        try:
            RECEIVER.reset(lambda rec: (500, [], b"no"))
            self.account("AW-BACKOFF")
            offset = self.daemon.log_size()
            self.suspend("AW-BACKOFF")
            (item,) = self.notifications("AW-BACKOFF")
            self.daemon.wait_log(rf"notification {item['id']}: gave up after 4 attempts",
                                 start=offset, timeout=30)
            log = self.daemon.log_text_since(offset)
            waits = [float(m) for m in re.findall(
                rf"notification {item['id']} attempt \d+ failed \(HTTP 500\); "
                r"next in (\d+\.\d{3}) s", log)]
            self.assertEqual(len(waits), 3, log)
            for wait, ceiling in zip(waits, [1, 2, 2]):
                self.assertTrue(ceiling / 2 <= wait <= ceiling, waits)
            reqs = [r for r in RECEIVER.snapshot() if r["delivery"] == str(item["id"])]
            self.assertEqual(len(reqs), 4)
            gaps = [b["received"] - a["received"] for a, b in zip(reqs, reqs[1:])]
            for gap, want in zip(gaps, waits):
                # at least the backoff; at most backoff + one poll period + slack
                self.assertGreaterEqual(gap, want - 0.05, gaps)
                self.assertLess(gap, want + 1.9, gaps)
            row = self.row(item["id"])
            self.assertEqual((row["delivered"], row["attempts"], row["next_attempt_at"],
                              row["last_error"]),
                             (False, 4, "infinity", "gave up after 4 attempts: HTTP 500"), row)
        finally:
            RECEIVER.reset()
            self.configure(webhook_config())

    def test_04_2xx_with_a_large_answer_is_a_delivery(self):
        # The receiver accepted it (200); its answer body (200 KB) is larger
        # than the daemon reads. Accepted means delivered: one request,
        # attempts 1, never sent again.
        RECEIVER.reset(lambda rec: (200, [], b"x" * 200_000))
        self.account("AW-BIG")
        self.suspend("AW-BIG")
        (item,) = self.notifications("AW-BIG")
        harness.wait_for(lambda: self.row(item["id"])["attempts"] >= 1, 10, "the first attempt")
        time.sleep(1.5)  # a retry would come after 1 s
        row = self.row(item["id"])
        self.assertEqual((row["delivered"], row["attempts"], row["last_error"]), (True, 1, ""),
                         row)
        self.assertEqual(len([r for r in RECEIVER.snapshot()
                              if r["delivery"] == str(item["id"])]), 1)

    def test_05_host_name_and_url_without_path(self):
        # "localhost" is resolved (evdns, /etc/hosts); no path means "/";
        # Host carries the name and the port.
        self.configure(webhook_config(f"http://localhost:{RECEIVER.port}"))
        try:
            self.account("AW-NAME")
            self.suspend("AW-NAME")
            (item,) = self.notifications("AW-NAME")
            (req,) = [r for r in self.wait_delivered(RECEIVER, [item["id"]])
                      if r["delivery"] == str(item["id"])]
            self.assertEqual(req["path"], "/")
            self.assertEqual(dict((k.lower(), v) for k, v in req["headers"])["host"],
                             f"localhost:{RECEIVER.port}")
            self.assertTrue(req["sig_ok"])
        finally:
            self.configure(webhook_config())

    def test_06_ipv6_literal(self):
        self.configure(webhook_config(f"http://[::1]:{RECEIVER6.port}/v6"))
        try:
            self.account("AW-V6")
            self.suspend("AW-V6")
            (item,) = self.notifications("AW-V6")
            (req,) = self.wait_delivered(RECEIVER6, [item["id"]])
            self.assertEqual(req["path"], "/v6")
            self.assertEqual(dict((k.lower(), v) for k, v in req["headers"])["host"],
                             f"[::1]:{RECEIVER6.port}")
            self.assertTrue(req["sig_ok"])
            self.assertEqual(RECEIVER.snapshot(), [])
        finally:
            self.configure(webhook_config())

    def test_07_connection_refused_is_retried_and_blocks_nothing(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
        s.close()  # nothing listens there now
        self.configure(webhook_config(f"http://127.0.0.1:{dead_port}/x"))
        try:
            self.account("AW-REFUSED")
            self.suspend("AW-REFUSED")
            (item,) = self.notifications("AW-REFUSED")
            harness.wait_for(lambda: self.row(item["id"])["attempts"] >= 2, 10, "two attempts")
            row = self.row(item["id"])
            self.assertFalse(row["delivered"])
            self.assertIn(row["last_error"], ("connection failed",
                                              "connection failed or closed before the answer",
                                              "connection error"), row)
            t0 = time.monotonic()
            for i in range(5):
                self.account(f"AW-REFUSED-{i}")
            self.assertLess(time.monotonic() - t0, 3.0)
        finally:
            self.configure(webhook_config())
        self.wait_delivered(RECEIVER, [item["id"]])

    def test_08_sigkill_between_send_and_mark_leases_then_resends(self):
        # The daemon dies while the receiver holds the request: the row keeps
        # its claim (attempts 0, due in <= 60 s, more than the 30 s deadline
        # so that no second daemon sends it meanwhile); once the lease runs
        # out (here: moved to now) the next daemon sends it again.
        RECEIVER.reset(lambda rec: "hang")
        self.account("AW-KILL")
        self.suspend("AW-KILL")
        (item,) = self.notifications("AW-KILL")
        self.assertTrue(RECEIVER.hanging.wait(10), "the delivery did not arrive")
        self.daemon.kill()
        row = self.row(item["id"])
        self.assertEqual((row["delivered"], row["attempts"]), (False, 0), row)
        self.assertGreater(int(row["due_in"]), DEADLINE_SECONDS, row)
        self.assertLessEqual(int(row["due_in"]), LEASE_SECONDS, row)
        RECEIVER.release.set()
        RECEIVER.reset()
        self.daemon.start()
        self.daemon.wait_ready()
        time.sleep(1.5)
        self.assertEqual(RECEIVER.snapshot(), [], "sent again while the lease holds")
        self.psql(f"UPDATE notifications SET next_attempt_at = now() WHERE id = {item['id']}")
        (req,) = [r for r in self.wait_delivered(RECEIVER, [item["id"]])
                  if r["delivery"] == str(item["id"])]
        self.assertTrue(req["sig_ok"])
        self.assertEqual(self.row(item["id"])["attempts"], 1)

    def test_09_two_daemons_deliver_each_once_in_order(self):
        # R9.2: a second daemon with the same webhook; both poll every second.
        # Leases mean each notification is sent once (the receiver always
        # answers 200), and per account in id order.
        b = harness.Daemon(self.cluster.conninfo(), config=webhook_config(), test_clock=T0)
        b.start()
        try:
            b.wait_ready()
            refs = [f"AW-TWO-{i}" for i in range(4)]
            for ref in refs:
                self.account(ref)
            for _ in range(3):
                for i, ref in enumerate(refs):
                    d = b if i % 2 else None
                    self.suspend(ref, daemon=d)
                    self.unsuspend(ref, daemon=d)
            items = [n for ref in refs for n in self.notifications(ref)]
            self.assertEqual(len(items), 24)
            reqs = self.wait_delivered(RECEIVER, [n["id"] for n in items], timeout=30)
            mine = [r for r in reqs if r["delivery"] in {str(n["id"]) for n in items}]
            sent = [r["delivery"] for r in mine]
            self.assertEqual(sorted(sent, key=int), sorted((str(n["id"]) for n in items), key=int),
                             "each notification sent exactly once")
            acc = {str(n["id"]): n["account"] for n in items}
            last = {}
            for r in mine:
                a = acc[r["delivery"]]
                self.assertGreater(int(r["delivery"]), last.get(a, 0), "order per account")
                last[a] = int(r["delivery"])
            self.assertTrue(all(r["sig_ok"] for r in mine))
            rows = self.psql("SELECT sum(attempts) FROM notifications WHERE id IN ("
                             + ",".join(str(n["id"]) for n in items) + ")").strip()
            self.assertEqual(rows, "24")
        finally:
            self.assertEqual(b.stop(), 0)
            self.assertNotIn(SECRET, b.log_text())
            b.destroy()

    def test_10_secret_and_url_never_logged_or_exposed(self):
        # R9.5: a URL with userinfo, a rejected reload naming the url key,
        # and the metrics page: neither the secret nor the URL shows.
        secret_url = f"http://user:{URL_SECRET}@127.0.0.1:{RECEIVER.port}/in?x=1"
        self.configure(webhook_config(secret_url))
        offset = self.daemon.log_size()
        self.daemon.write_config(webhook_config(f"https://u:{URL_SECRET}@example.com/"))
        self.daemon.reload()
        self.daemon.wait_log(r"reload", start=offset)
        time.sleep(0.3)
        self.configure(webhook_config())
        self.account("AW-SECRET")
        self.suspend("AW-SECRET")
        (item,) = self.notifications("AW-SECRET")
        self.wait_delivered(RECEIVER, [item["id"]])
        text = self.metrics_text()
        self.assertIn("creditd_webhook_enabled 1", text)
        log = self.daemon.log_text()
        for what in (SECRET, URL_SECRET, f"127.0.0.1:{RECEIVER.port}"):
            self.assertNotIn(what, text)
            self.assertNotIn(what, log)
        r = self.daemon.run("--describe-config")
        self.assertNotIn(SECRET, r.stdout + r.stderr)

    def test_11_backlog_is_delivered_whole_and_in_order(self):
        # A backlog (an invoice run leaves one invoice.issued per account, and
        # a second fact each doubles it) is delivered completely, and per
        # account in order: an account's later notification only after its
        # earlier one was accepted. How fast is bench/webhook's question (a
        # poll used to group every undelivered row by account to claim one or
        # two: 8-10 a second; now hundreds); here only a liveness bound.
        n = 500
        self.psql(f"""INSERT INTO accounts (id, external_ref, name, currency, jurisdiction,
            contractual_rate, payment_terms_days, usage_month, created_at, updated_at)
            SELECT gen_random_uuid(), 'AW-BULK-' || g, 'bulk', 'EUR', 'DE', 0, 14,
                   '2026-01-01', now(), now() FROM generate_series(1, {n}) g""")
        first = int(self.psql("SELECT coalesce(max(id), 0) + 1 FROM notifications").strip())
        self.psql("""INSERT INTO notifications (account_id, kind, created_at, payload)
            SELECT id, k, now(), '{"bulk": true}' FROM accounts,
                   (VALUES ('invoice.issued'), ('invoice.overdue')) v(k)
            WHERE external_ref LIKE 'AW-BULK-%' ORDER BY seq, k""")
        deadline = time.monotonic() + 120
        left = None
        while time.monotonic() < deadline:
            left = int(self.psql("SELECT count(*) FROM notifications WHERE delivered_at IS NULL "
                                 f"AND id >= {first}").strip())
            if left == 0:
                break
            time.sleep(0.2)
        self.assertEqual(left, 0, "the backlog was not delivered")
        accepted = set()
        overdue = set()
        for r in RECEIVER.snapshot():
            doc = r["json"] or {}
            if (doc.get("payload") or {}).get("bulk") is not True:
                continue
            # the readers add the account's external_ref (sql/0032)
            self.assertTrue(doc["payload"].get("external_ref", "").startswith("AW-BULK-"), r)
            if doc["kind"] == "invoice.overdue":
                self.assertIn(doc["account"], accepted, r)
                if r["status"] == 200:
                    overdue.add(doc["account"])
            elif r["status"] == 200:
                accepted.add(doc["account"])
        self.assertEqual((len(accepted), len(overdue)), (n, n))

if __name__ == "__main__":
    harness.main()
