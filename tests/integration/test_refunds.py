#!/usr/bin/env python3
"""Refunds paid out of account credit (SPEC R5.6, R6.1, R4.2, R4.5; beyond
API.md, see README "API summary"): POST /v1/refunds and GET /v1/refunds,
mirroring payments (write scope, id as idempotency key, same parsing and
errors); sql/0039_refunds.sql.

Billing time zone UTC, test clock 2026-03-10T10:00:00Z throughout. Accounts
have no invoices, so every payment becomes account credit in full.

  R-T  pays 20 (received 02-28, 10 days before) and 50 (03-07, 3 days
       before), is terminated: refundable 50, forfeited 20; refunded 50
  R-A  total limit 100: pays 30, 80 of usage (exposure 50); refund 30
       (exposure 80, active); 20 of usage -> suspended (total_limit)
  R-B  total limit 100: pays 50, 100 of usage (exposure 50); refund 50
       brings exposure to 100: suspended by the refund
  R-J  JPY: pays 100, refunds 10; 10.5 has a decimal JPY lacks; then a
       manual suspension and a refund while suspended
  R-V  pays 5; bad input, nothing written
Tests run in name order and depend on it."""

import json
import uuid

import harness

NOW = "2026-03-10T10:00:00Z"
EVENT_AT = "2026-03-10T09:00:00Z"


def uid():
    return str(uuid.uuid4())


class Refunds(harness.DaemonTestCase):
    TEST_CLOCK = NOW

    refunds = {}    # name -> (body, answer)

    # -- helpers

    def pay(self, ref, amount, received_at="2026-03-09T08:00:00Z"):
        r = self.request("POST", "/v1/payments",
                         {"id": uid(), "account": "ext:" + ref, "amount": amount,
                          "received_at": received_at, "reference": "bank"}, token="finance")
        self.assertStatus(r, 201)
        self.assertEqual(r.json["allocations"], [], r.text)
        return r.json

    def events(self, ref, amounts):
        evs = [{"id": uid(), "account": "ext:" + ref, "amount": a, "occurred_at": EVENT_AT,
                "service": "sms"} for a in amounts]
        out = self.post_events(evs)
        self.assertEqual(out["accepted"], len(evs), out)

    def refund(self, ref, amount, expect=201, name=None, token="finance", **extra):
        body = {"id": uid(), "account": "ext:" + ref, "amount": amount,
                "paid_at": "2026-03-10T08:00:00Z", "reference": "transfer " + ref}
        body.update(extra)
        r = self.request("POST", "/v1/refunds", body, token=token)
        self.assertStatus(r, expect)
        if name:
            self.refunds[name] = (body, r.json)
        return body, r

    def money(self, ref):
        a = self.get_account(ref)
        return (a["status"], a["suspension_reasons"], a["credit_balance"], a["exposure"])

    def assertFieldError(self, r, field, status=400, code="validation_failed"):
        self.assertError(r, status, code)
        self.assertEqual(r.json["error"].get("field"), field, r.text)

    def test_00_setup(self):
        self.account("R-T")
        self.account("R-A", total_limit="100")
        self.account("R-B", total_limit="100")
        self.account("R-J", currency="JPY")
        self.account("R-V")
        self.pay("R-T", "20", received_at="2026-02-28T12:00:00Z")
        self.pay("R-T", "50", received_at="2026-03-07T12:00:00Z")
        self.pay("R-A", "30")
        self.events("R-A", ["80"])
        self.pay("R-B", "50")
        self.events("R-B", ["100"])
        self.pay("R-J", "100")
        self.pay("R-V", "5")
        self.assertEqual(self.money("R-A"), ("active", [], "30", "50"))
        self.assertEqual(self.money("R-B"), ("active", [], "50", "50"))

    # -- 1. the refundable of a termination (R5.6)

    def test_10_terminated_account(self):
        r = self.request("POST", "/v1/accounts/ext:R-T/terminate", {"note": "contract ended"},
                         token="finance")
        self.assertStatus(r, 200)
        self.assertEqual((r.json["refundable"], r.json["forfeited"]), ("50", "20"))
        self.assertEqual(self.money("R-T"), ("terminated", [], "50", "-50"))
        body, r = self.refund("R-T", "50.00", name="t")
        acc = self.get_account("R-T")
        self.assertEqual(r.json, {
            "refund": {"id": body["id"], "account": acc["id"], "amount": "50",
                       "paid_at": "2026-03-10T08:00:00Z", "reference": "transfer R-T",
                       "created_at": NOW},
            "credit": "0"})
        self.assertEqual(self.money("R-T"), ("terminated", [], "0", "0"))
        # the list shows it
        r = self.request("GET", "/v1/refunds?account=ext:R-T", token="read")
        self.assertStatus(r, 200)
        self.assertEqual(r.json, {"items": [self.refunds["t"][1]["refund"]],
                                  "next_cursor": None})
        # nothing left to refund: 422 naming the credit, nothing written
        _, r = self.refund("R-T", "0.01", expect=422)
        self.assertFieldError(r, "amount", 422, "invalid_state")
        self.assertIn("the account's unapplied credit is 0", r.json["error"]["message"])
        # the same id and body again: 200, the same body, nothing twice
        r = self.request("POST", "/v1/refunds", body, token="finance")
        self.assertStatus(r, 200)
        self.assertEqual(r.json, self.refunds["t"][1])
        # the same id with another payload: 409 (also for a changed reference)
        for k, v in (("amount", "40"), ("reference", "other"),
                     ("paid_at", "2026-03-09T08:00:00Z"), ("reference", None)):
            other = dict(body, **{k: v})
            if v is None:
                del other[k]
            r = self.request("POST", "/v1/refunds", other, token="finance")
            self.assertError(r, 409, "conflict")
        self.assertEqual(self.money("R-T"), ("terminated", [], "0", "0"))
        self.assertEqual(self.psql("SELECT count(*) FROM refunds").strip(), "1")
        # the termination's record is not changed by the refund
        row = self.psql("SELECT creditd_amount(refundable), creditd_amount(forfeited) "
                        "FROM terminations t JOIN accounts a ON a.id = t.account_id "
                        "WHERE a.external_ref = 'R-T'").strip()
        self.assertEqual(row, "50|20")

    # -- 2. exposure rises by the refund (R4.2, R4.5)

    def test_20_refund_raises_exposure(self):
        self.assertEqual(self.authorize("R-A", "30")["allowed"], True)
        body, r = self.refund("R-A", "30", name="a")
        self.assertEqual(r.json["credit"], "0")
        self.assertEqual(self.money("R-A"), ("active", [], "0", "80"))
        # the authorize cache sees the new exposure at once (R3.6)
        auth = self.authorize("R-A", "30")
        self.assertEqual((auth["allowed"], auth["reason"], auth["total_remaining"]),
                         (False, "total_limit", "20"), auth)
        self.events("R-A", ["20"])
        self.assertEqual(self.money("R-A"), ("suspended", ["total_limit"], "0", "100"))
        h = self.history("R-A")
        # suspended by the event, not by the refund (the row before is the creation)
        self.assertEqual((h[0]["status"], h[0]["reasons"], h[1]["status"]),
                         ("suspended", ["total_limit"], "active"))
        self.assertNotEqual(h[0]["cause"], "refund")

    def test_21_refund_reaches_the_total_limit(self):
        body, r = self.refund("R-B", "50", name="b")
        self.assertEqual(r.json["credit"], "0")
        self.assertEqual(self.money("R-B"), ("suspended", ["total_limit"], "0", "100"))
        h = self.history("R-B")[0]
        self.assertEqual((h["status"], h["reasons"], h["cause"], h["actor"]),
                         ("suspended", ["total_limit"], "refund", "finance"))
        n = self.notifications("R-B", "account.suspended")
        self.assertEqual(len(n), 1, n)
        self.assertEqual((n[0]["payload"]["status"], n[0]["payload"]["reasons"],
                          n[0]["payload"]["cause"]), ("suspended", ["total_limit"], "refund"))
        self.assertEqual(self.authorize("R-B", "1")["allowed"], False)
        # no new notification kind (R8.1)
        kinds = {x["kind"] for x in self.notifications("R-B")}
        self.assertLessEqual(kinds, {"payment.received", "usage.threshold",
                                     "account.suspended"})

    # -- 3. currency decimals (R1.2), a suspended account

    def test_30_jpy(self):
        body, r = self.refund("R-J", "10")
        self.assertEqual((r.json["refund"]["amount"], r.json["credit"]), ("10", "90"))
        _, r = self.refund("R-J", "10.5", expect=400)
        self.assertFieldError(r, "amount")
        r = self.request("POST", "/v1/accounts/ext:R-J/suspend", {"note": "check"},
                         token="finance")
        self.assertStatus(r, 200)
        # no reference: optional
        body, r = self.refund("R-J", "90", reference=None)
        self.assertEqual((r.json["refund"]["reference"], r.json["credit"]), (None, "0"))
        self.assertEqual(self.money("R-J"), ("suspended", ["manual"], "0", "0"))

    # -- 4. bad input, each naming its field; nothing written

    def test_40_validation(self):
        good = {"id": uid(), "account": "ext:R-V", "amount": "1",
                "paid_at": "2026-03-10T08:00:00Z", "reference": "r"}
        for field, bad in (("id", None), ("id", "x"), ("amount", "0"), ("amount", "-1"),
                           ("amount", "0.0000001"), ("amount", "1e2"), ("amount", 1),
                           ("amount", "0.001"), ("amount", None),
                           ("paid_at", "yesterday"), ("paid_at", "2026-03-10T10:05:01Z"),
                           ("paid_at", None), ("account", "R-V"), ("account", "ext:NOPE"),
                           ("account", str(uuid.uuid4())), ("reference", 5)):
            with self.subTest(field=field, bad=bad):
                body = dict(good, id=uid())
                body[field] = bad
                if bad is None:
                    del body[field]
                r = self.request("POST", "/v1/refunds", body, token="finance")
                self.assertFieldError(r, field)
        r = self.request("POST", "/v1/refunds", dict(good, extra=1), token="finance")
        self.assertFieldError(r, "extra")
        # the skew payments allow: 5 minutes ahead is fine
        self.refund("R-V", "1", paid_at="2026-03-10T10:05:00Z")
        self.assertError(self.request("POST", "/v1/refunds", dict(good, id=uid()),
                                      token="read"), 403, "forbidden")
        self.assertError(self.request("POST", "/v1/refunds", dict(good, id=uid()),
                                      token="platform"), 403, "forbidden")
        _, r = self.refund("R-V", "4.01", expect=422)
        self.assertFieldError(r, "amount", 422, "invalid_state")
        self.assertEqual(r.json["error"]["message"],
                         "amount: the account's unapplied credit is 4")
        self.assertEqual(self.money("R-V")[2], "4")
        self.assertEqual(self.psql("SELECT count(*) FROM refunds r JOIN accounts a ON "
                                   "a.id = r.account_id WHERE a.external_ref = 'R-V'").strip(),
                         "1")

    # -- listing

    def test_50_list(self):
        r = self.request("GET", "/v1/refunds?limit=1000", token="read")
        self.assertStatus(r, 200)
        self.assertEqual([i["amount"] for i in r.json["items"]], ["50", "30", "50", "10", "90",
                                                                   "1"])
        r = self.request("GET", "/v1/refunds?limit=2", token="read")
        self.assertEqual(len(r.json["items"]), 2)
        cur = r.json["next_cursor"]
        r = self.request("GET", f"/v1/refunds?limit=10&cursor={cur}", token="read")
        self.assertEqual(([i["amount"] for i in r.json["items"]], r.json["next_cursor"]),
                         (["50", "10", "90", "1"], None))
        r = self.request("GET", "/v1/refunds?account=ext:NOPE", token="read")
        self.assertEqual(r.json, {"items": [], "next_cursor": None})
        self.assertFieldError(self.request("GET", "/v1/refunds?account=bad", token="read"),
                              "account")
        self.assertFieldError(self.request("GET", "/v1/refunds?acount=x", token="read"),
                              "acount")
        self.assertError(self.request("GET", "/v1/refunds", token=None), 401, "unauthorized")

    # -- 5. the audit row (R9.5)

    def test_60_audit(self):
        body, answer = self.refunds["t"]
        self.settle_feeds()
        r = self.request("GET", "/v1/audit?limit=1000", token="admin")
        self.assertStatus(r, 200)
        rows = [a for a in r.json["items"] if a["action"] == "refund.create"]
        self.assertEqual(len(rows), 6)
        row = [a for a in rows if a["object_id"] == body["id"]]
        self.assertEqual(len(row), 1, rows)
        row = row[0]
        self.assertIsNotNone(row["request_id"])
        del row["id"], row["request_id"]
        self.assertEqual(row, {
            "at": NOW, "actor": "finance", "action": "refund.create", "object_type": "refund",
            "object_id": body["id"], "before": {"credit_balance": "50"},
            "after": {"account": answer["refund"]["account"], "amount": "50",
                      "paid_at": "2026-03-10T08:00:00Z", "reference": "transfer R-T",
                      "credit_balance": "0"}})

    # -- concurrent requests wait for the account row (lock order as payments)

    def concurrently(self, bodies):
        """POSTs bodies to /v1/refunds at once while another session holds
        R-C's row lock; returns [(status, json)] in the order of bodies."""
        acc = self.get_account("R-C")["id"]
        with self.open_transaction("refund_locker",
                                   f"SELECT 1 FROM accounts WHERE id = '{acc}' FOR UPDATE;"):
            sent = [self.request_in_background(self.daemon, "POST", "/v1/refunds", b, "finance")
                    for b in bodies]
            self.wait_for_sql("SELECT 1 WHERE (SELECT count(*) FROM pg_stat_activity WHERE "
                              "wait_event_type = 'Lock' AND query LIKE "
                              f"'%creditd_refund_book%') >= {len(bodies)}",
                              "the refunds never waited for the account lock")
        out = []
        for t, res in sent:
            t.join(60)
            out.append((res["r"][0], json.loads(res["r"][1])))
        return out

    def test_70_concurrent(self):
        self.account("R-C")
        self.pay("R-C", "50")
        # the same id twice: one books, the other is answered as its replay
        body = {"id": uid(), "account": "ext:R-C", "amount": "30",
                "paid_at": "2026-03-10T08:00:00Z", "reference": "twice"}
        (s1, j1), (s2, j2) = self.concurrently([body, dict(body)])
        self.assertEqual(sorted([s1, s2]), [200, 201])
        self.assertEqual((j1, j1["credit"]), (j2, "20"))
        # two refunds of 15 and 10 against 20: one is refused, nothing overdrawn
        a = dict(body, id=uid(), amount="15")
        b = dict(body, id=uid(), amount="10")
        res = self.concurrently([a, b])
        self.assertEqual(sorted(s for s, _ in res), [201, 422], res)
        ok = [j for s, j in res if s == 201][0]
        self.assertIn(ok["credit"], ("5", "10"))
        self.assertEqual(self.money("R-C")[2], ok["credit"])
        self.assertEqual(self.psql("SELECT count(*) FROM refunds r JOIN accounts a ON "
                                   "a.id = r.account_id WHERE a.external_ref = 'R-C'").strip(),
                         "2")


if __name__ == "__main__":
    harness.main()
