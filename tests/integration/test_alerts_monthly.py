#!/usr/bin/env python3
"""R4.4: exposure alerts (usage.threshold, limit "total") at most once per
threshold and billing month (sql/0022_exposure_alerts_monthly.sql).

Billing time zone Pacific/Auckland (NZDT, UTC+13 from January to March): the
billing month February 2027 begins at 2027-01-31T11:00:00Z and March at
2027-02-28T11:00:00Z. Alert thresholds 80 and 90 (the default). The test
clock starts at 2027-01-20T00:00:00Z (January 20, 13:00 in Auckland);
test_30 moves it over the January/February boundary, test_40 to February 5,
test_50 over the February/March boundary. Tests run in name order and
depend on it: keep the numbering."""

import uuid

import harness

T0 = "2027-01-20T00:00:00Z"
OCC = "2027-01-19T23:00:00Z"
PAID = "2027-01-19T12:00:00Z"
FEB_START = "2027-01-31T11:00:00Z"  # 2027-02-01 00:00 in Auckland
MAR_START = "2027-02-28T11:00:00Z"  # 2027-03-01 00:00 in Auckland


def uid() -> str:
    return str(uuid.uuid4())


def ev(account, amount, occurred_at=OCC):
    return {"id": uid(), "account": account, "amount": amount, "occurred_at": occurred_at,
            "service": "sms"}


class AlertsMonthly(harness.DaemonTestCase):
    TEST_CLOCK = T0
    CONFIG = {"billing": {"timezone": "Pacific/Auckland"}}

    # -- helpers

    def account(self, ref, total_limit):
        body = {"external_ref": ref, "name": "Customer " + ref, "currency": "EUR",
                "jurisdiction": "DE", "total_limit": total_limit}
        r = self.request("POST", "/v1/accounts", body, token="finance")
        self.assertStatus(r, 201)
        return r.json

    def use(self, ref, amount, occurred_at=OCC):
        out = self.post_events([ev("ext:" + ref, amount, occurred_at)])
        self.assertEqual(out["accepted"], 1, out)

    def pay(self, ref, amount, received_at=PAID):
        body = {"id": uid(), "account": "ext:" + ref, "amount": amount,
                "received_at": received_at, "reference": "SEPA " + ref}
        r = self.request("POST", "/v1/payments", body, token="finance")
        self.assertStatus(r, 201)

    def put_limits(self, ref, **body):
        body.setdefault("reason", "alerts test")
        r = self.request("PUT", "/v1/accounts/ext:" + ref + "/limits", body, token="finance")
        self.assertStatus(r, 200)
        return r.json

    def move_clock(self, now):
        r = self.request("PUT", "/v1/test/clock", {"now": now})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["now"], now, r.text)

    def clock_at_least(self, now):
        """Moves the clock to `now` unless it is there or later already (so
        that a test that depends on an earlier one's clock move fails for its
        own reason when that one failed)."""
        cur = self.request("GET", "/v1/test/clock").json["now"]
        if cur < now:  # both RFC 3339 UTC "...Z" of the same shape
            self.move_clock(now)

    def alerts(self, ref):
        """(threshold, exposure, limit amount) of the total-limit alerts."""
        return [(n["payload"]["threshold_percent"], n["payload"]["exposure"],
                 n["payload"]["limit_amount"])
                for n in self.notifications(ref, "usage.threshold")
                if n["payload"]["limit"] == "total"]

    def alert_times(self, ref):
        return [(n["payload"]["threshold_percent"], n["created_at"])
                for n in self.notifications(ref, "usage.threshold")
                if n["payload"]["limit"] == "total"]

    # -- (1) paying down does not re-arm within the month

    def test_10_paying_down_does_not_rearm(self):
        self.account("P-1", total_limit="100")
        self.use("P-1", "80")                      # 80 %: the 80 % alert
        self.assertEqual(self.alerts("P-1"), [(80, "80", "100")])
        self.pay("P-1", "15")                      # 65 %: below every threshold
        self.assertEqual(self.get_account("P-1")["exposure"], "65")
        self.use("P-1", "15")                      # 80 % again, same month: nothing
        self.assertEqual(self.alerts("P-1"), [(80, "80", "100")])
        self.use("P-1", "10")                      # 90 %: first time this month
        self.assertEqual(self.alerts("P-1"), [(80, "80", "100"), (90, "90", "100")])
        self.pay("P-1", "30")                      # 60 %
        self.use("P-1", "35")                      # 95 %: both already sent
        a = self.get_account("P-1")
        self.assertEqual((a["status"], a["exposure"]), ("active", "95"), a)
        self.assertEqual(self.alerts("P-1"), [(80, "80", "100"), (90, "90", "100")])

    # -- (4) a new total limit re-arms, as before (0003)

    def test_20_raised_total_limit_rearms(self):
        self.account("R-1", total_limit="100")
        self.use("R-1", "85")                      # 85 %
        self.assertEqual(self.alerts("R-1"), [(80, "85", "100")])
        # raised to 105: 85 / 105 = 80.95 %, re-armed and alerted at once
        self.assertEqual(self.put_limits("R-1", total_limit="105")["applied"], True)
        self.assertEqual(self.alerts("R-1"), [(80, "85", "100"), (80, "85", "105")])
        # paying down under this limit does not re-arm it: 75 / 105 = 71 %,
        # then 85 / 105 again: nothing
        self.pay("R-1", "10")
        self.use("R-1", "10")
        self.assertEqual(self.alerts("R-1"), [(80, "85", "100"), (80, "85", "105")])
        # raised to 200: 42.5 %; 85 + 75 = 160 = 80 % of it
        self.put_limits("R-1", total_limit="200")
        self.use("R-1", "75")
        self.assertEqual(self.alerts("R-1"), [(80, "85", "100"), (80, "85", "105"),
                                              (80, "160", "200")])

    # -- (3) the new month begins in the billing time zone, and (2) it
    #    alerts once per threshold at the month rollover

    def test_30_new_billing_month_alerts_at_rollover(self):
        self.account("B-1", total_limit="100")
        self.use("B-1", "95")                      # January: 80 and 90
        jan = [(80, "95", "100"), (90, "95", "100")]
        self.assertEqual(self.alerts("B-1"), jan)
        # January 31, 23:59 in Auckland: still January (every January daily
        # job has run meanwhile and changed nothing)
        self.move_clock("2027-01-31T10:59:00Z")
        self.assertEqual(self.alerts("B-1"), jan)
        # February 1, 00:00 in Auckland (13 hours before February
        # begins in UTC): the month rollover re-arms and its evaluation
        # finds exposure 95 still at or over both thresholds
        self.move_clock(FEB_START)
        self.assertEqual(self.alerts("B-1"), jan + jan)
        self.assertEqual(self.alert_times("B-1")[2:], [(80, FEB_START), (90, FEB_START)])
        # February in UTC too (February 1, 13:30 in Auckland; January's
        # invoice was issued at 02:00 Auckland time, exposure unchanged):
        # an event evaluates the account again, nothing new
        self.move_clock("2027-02-01T00:30:00Z")
        self.use("B-1", "1", occurred_at="2027-02-01T00:00:00Z")
        a = self.get_account("B-1")
        self.assertEqual((a["open_balance"], a["unbilled_usage"], a["exposure"]),
                         ("95", "1", "96"), a)
        self.assertEqual(self.alerts("B-1"), jan + jan)

    def test_40_rest_of_the_month_alerts_nothing_more(self):
        # (2) February, after the rollover's alerts: paying down and using
        # again, crossing both thresholds again, and the daily jobs of
        # February 2 to 5 send nothing
        jan = [(80, "95", "100"), (90, "95", "100")]
        self.clock_at_least("2027-02-01T00:30:00Z")
        self.pay("B-1", "50", received_at="2027-02-01T00:10:00Z")   # 46 %
        self.use("B-1", "40", occurred_at="2027-02-01T00:20:00Z")   # 86 %
        self.use("B-1", "5", occurred_at="2027-02-01T00:25:00Z")    # 91 %
        self.move_clock("2027-02-05T00:00:00Z")
        self.assertEqual(self.alerts("B-1"), jan + jan)
        a = self.get_account("B-1")
        # January's invoice 95 - 50 paid = 45 open, February's 46 unbilled
        self.assertEqual((a["status"], a["open_balance"], a["unbilled_usage"], a["exposure"]),
                         ("active", "45", "46", "91"), a)

    # -- an alert sent in the new month before the rollover reached the
    #    account counts for the new month: nothing twice

    def test_50_alert_before_the_rollover_reaches_the_account(self):
        x = self.account("W-1", total_limit="100")
        y = self.account("W-2", total_limit="100")
        low, high = sorted([x, y], key=lambda a: a["id"])
        ref = high["external_ref"]
        self.clock_at_least("2027-02-05T00:00:00Z")
        self.use(ref, "85", occurred_at="2027-02-04T23:00:00Z")    # February: 80
        self.move_clock("2027-02-28T10:59:00Z")
        with self.rollover_waiting(low["id"], "2027-02-28T11:00:01Z", "alerts_locker"):
            # March 1, 00:00 in Auckland; the rollover has not reached the
            # account yet: 85 + 5 = 90 % alerts 90 (the first in March)
            out = self.post_events([ev("ext:" + ref, "5", occurred_at=MAR_START)])
            self.assertEqual(out["accepted"], 1, out)
        # the rollover then keeps March's level: 90 is not sent twice in
        # March (and 80, skipped over by it, not again either)
        self.assertEqual(self.alerts(ref), [(80, "85", "100"), (90, "90", "100")])
        self.assertEqual(self.alert_times(ref)[1], (90, MAR_START))
        self.use(ref, "1", occurred_at="2027-02-28T11:00:01Z")
        self.assertEqual(self.alerts(ref), [(80, "85", "100"), (90, "90", "100")])


if __name__ == "__main__":
    harness.main()
