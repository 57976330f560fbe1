#!/usr/bin/env python3
"""The invoice issuer from [issuer] (R5.7), frozen into each invoice at issue
(R5.5, sql/0034): shown escaped on the printable page and in the JSON
invoice; a later configuration (restart, reload, another daemon) changes new
invoices only; no placeholder when none is configured; bad values stop the
start naming the key.

Invoices are final invoices of terminations (issued at once, R5.6) and one
monthly run (2023-06, run by moving the test clock past 1 July 02:00): the
two writers of invoices."""

import time

import harness

T0 = "2023-07-01T00:00:00Z"

# Hostile text: every HTML special character, a script tag, '#' and ';'
# after spaces (escaped in the file), UTF-8.
ISSUER_A = {
    "name": 'Acme <b>"Billing"</b> & Söhne GmbH',
    "address": "Hauptstraße 1 \\# Hof\\n10115 Berlin\\n<script>alert(1)</script>",
    "tax_id": "DE 123'456'789",
    "email": "billing@acme.example",
    "payment_instructions": "IBAN DE89 3704 0044 0532 0130 00\\nBIC DEMODEFFXXX \\; ref: the number",
}
JSON_A = {
    "name": 'Acme <b>"Billing"</b> & Söhne GmbH',
    "address": ["Hauptstraße 1 # Hof", "10115 Berlin", "<script>alert(1)</script>"],
    "tax_id": "DE 123'456'789",
    "email": "billing@acme.example",
    "payment_instructions": ["IBAN DE89 3704 0044 0532 0130 00",
                             "BIC DEMODEFFXXX ; ref: the number"],
}
HTML_A = ("<div class=\"issuer\"><strong>Acme &lt;b&gt;&quot;Billing&quot;&lt;/b&gt; &amp; "
          "Söhne GmbH</strong><br>Hauptstraße 1 # Hof<br>10115 Berlin<br>"
          "&lt;script&gt;alert(1)&lt;/script&gt;<br>VAT / tax ID: DE 123&#39;456&#39;789"
          "<br>E-mail: billing@acme.example</div>")

ISSUER_B = {"name": "Beta Telecom Ltd", "address": "1 High Street\\nLondon EC1A 1AA",
            "tax_id": "GB123456789", "email": "ar@beta.example",
            "payment_instructions": "Sort code 12-34-56, account 12345678"}
JSON_B = {"name": "Beta Telecom Ltd", "address": ["1 High Street", "London EC1A 1AA"],
          "tax_id": "GB123456789", "email": "ar@beta.example",
          "payment_instructions": ["Sort code 12-34-56, account 12345678"]}

ISSUER_C = {"name": "Gamma AG"}  # a name alone
JSON_C = {"name": "Gamma AG", "address": [], "tax_id": None, "email": None,
          "payment_instructions": []}


class InvoiceIssuer(harness.DaemonTestCase):
    CONFIG = {"issuer": ISSUER_A}
    TEST_CLOCK = T0

    # ---- helpers

    def issue_final_invoice(self, ref, daemon=None):
        """A new account with June usage, terminated: its final invoice (JSON)."""
        d = daemon or self.daemon
        r = d.request("POST", "/v1/accounts", {"external_ref": ref, "name": "Customer " + ref,
                                               "currency": "EUR", "jurisdiction": "DE"},
                      token="finance")
        self.assertStatus(r, 201)
        r = d.request("POST", "/v1/events",
                      [harness.event("ext:" + ref, "12.50", "2023-06-30T12:00:00Z")],
                      token="platform")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["accepted"], 1, r.text)
        r = d.request("POST", f"/v1/accounts/ext:{ref}/terminate", {"note": "test"},
                      token="finance")
        self.assertStatus(r, 200)
        return self.invoice(r.json["final_invoice"]["number"], daemon=d)

    def invoice(self, number, daemon=None):
        r = (daemon or self.daemon).request("GET", "/v1/invoices/" + number, token="read")
        self.assertStatus(r, 200)
        return r.json

    def page(self, number, daemon=None):
        r = (daemon or self.daemon).request("GET", f"/v1/invoices/{number}?format=html",
                                            token="read")
        self.assertStatus(r, 200)
        self.assertTrue(r.header("content-type").startswith("text/html"))
        return r.text

    def restart(self, issuer):
        """Stops the daemon, writes a config with this [issuer] (None: none), starts it."""
        self.assertEqual(self.daemon.stop(), 0)
        self.daemon.write_config({"issuer": issuer})
        self.daemon.start()
        self.daemon.wait_ready()

    def reload(self, issuer):
        """SIGHUP with this [issuer]; the log's text from before the reload on."""
        pos = len(self.daemon.log_text())  # a character offset, as wait_log takes it
        self.daemon.write_config({"issuer": issuer})
        self.daemon.reload()
        self.daemon.wait_log(r"reload: configuration .* reloaded", start=pos)
        return pos

    def stored_issuer(self):
        return self.psql("SELECT name FROM invoice_issuer").strip()

    # ---- tests, in name order on one database

    def test_01_configured_issuer_on_the_page_escaped(self):
        inv = self.issue_final_invoice("IS-A1")
        self.assertEqual(inv["issuer"], JSON_A)
        html = self.page(inv["number"])
        self.assertIn(HTML_A, html)
        self.assertNotIn("<script>", html)
        self.assertNotIn("<b>", html)
        self.assertIn("<br>Payment reference: <strong>" + inv["number"] + "</strong>"
                      "<br>IBAN DE89 3704 0044 0532 0130 00<br>BIC DEMODEFFXXX ; ref: the "
                      "number</p>", html)
        for placeholder in ("creditd</strong>", "Billing department", "not configured"):
            self.assertNotIn(placeholder, html)
        self.__class__.first = inv["number"]
        self.__class__.first_html = html

    def test_02_monthly_run_freezes_the_issuer_too(self):
        r = self.request("POST", "/v1/accounts", {"external_ref": "IS-RUN", "name": "Run",
                                                  "currency": "EUR", "jurisdiction": "DE"},
                         token="finance")
        self.assertStatus(r, 201)
        r = self.request("POST", "/v1/events",
                         [harness.event("ext:IS-RUN", "3.00", "2023-06-15T12:00:00Z")],
                         token="platform")
        self.assertStatus(r, 200)
        r = self.request("POST", "/v1/jobs/invoicing?wait=true", {"period": "2023-06"},
                         token="ops")
        self.assertStatus(r, 202)
        self.assertEqual(r.json["status"], "succeeded", r.text)
        r = self.request("GET", "/v1/invoices?account=ext:IS-RUN", token="read")
        self.assertStatus(r, 200)
        (inv,) = r.json["items"]
        self.assertEqual(inv["issuer"], JSON_A)
        self.__class__.run_number = inv["number"]

    def test_03_restart_with_another_issuer_changes_new_invoices_only(self):
        self.restart(ISSUER_B)
        self.assertEqual(self.stored_issuer(), "Beta Telecom Ltd")
        self.assertIn('issuer: new invoices are issued as "Beta Telecom Ltd" (was "Acme',
                      self.daemon.log_text())
        old = self.invoice(self.first)
        self.assertEqual(old["issuer"], JSON_A)
        self.assertEqual(self.page(self.first), self.first_html)
        self.assertEqual(self.invoice(self.run_number)["issuer"], JSON_A)
        new = self.issue_final_invoice("IS-B1")
        self.assertEqual(new["issuer"], JSON_B)
        self.assertIn("<div class=\"issuer\"><strong>Beta Telecom Ltd</strong><br>1 High Street"
                      "<br>London EC1A 1AA<br>VAT / tax ID: GB123456789<br>E-mail: "
                      "ar@beta.example</div>", self.page(new["number"]))
        self.__class__.second = new["number"]

    def test_04_restart_with_the_same_issuer_writes_nothing(self):
        mark = self.daemon.log_size()
        self.restart(ISSUER_B)
        self.assertNotIn("issuer: new invoices", self.daemon.log_text_since(mark))

    def test_05_reload_changes_new_invoices_only(self):
        pos = self.reload(ISSUER_C)
        harness.wait_for(lambda: self.stored_issuer() == "Gamma AG", 10, "the reloaded issuer")
        self.daemon.wait_log(r'issuer: new invoices are issued as "Gamma AG" \(was "Beta '
                             r'Telecom Ltd"\)', start=pos)
        new = self.issue_final_invoice("IS-C1")
        self.assertEqual(new["issuer"], JSON_C)
        html = self.page(new["number"])
        self.assertIn("<div class=\"issuer\"><strong>Gamma AG</strong></div>", html)
        self.assertNotIn("VAT", html)
        self.assertEqual(self.invoice(self.first)["issuer"], JSON_A)
        self.assertEqual(self.invoice(self.second)["issuer"], JSON_B)

    def test_06_none_configured_no_block_no_placeholder(self):
        self.reload(None)
        harness.wait_for(lambda: self.stored_issuer() == "", 10, "the issuer cleared")
        new = self.issue_final_invoice("IS-N1")
        self.assertIsNone(new["issuer"])
        html = self.page(new["number"])
        self.assertNotIn("class=\"issuer\"", html)
        for placeholder in ("creditd</strong>", "Billing department", "not configured",
                            "VAT", "E-mail"):
            self.assertNotIn(placeholder, html)
        self.assertIn("<header>\n<h1>Invoice " + new["number"] + "</h1>", html)
        # issued without an issuer, it keeps none when one is configured later
        self.reload(ISSUER_B)
        harness.wait_for(lambda: self.stored_issuer() == "Beta Telecom Ltd", 10, "issuer B")
        self.assertIsNone(self.invoice(new["number"])["issuer"])
        self.assertEqual(self.invoice(self.first)["issuer"], JSON_A)

    def test_07_invoice_of_before_0034_shows_the_present_issuer(self):
        # an invoice issued before the migration has no frozen issuer (NULL)
        new = self.issue_final_invoice("IS-OLD")
        self.psql(f"""BEGIN;
            ALTER TABLE invoices DISABLE TRIGGER invoices_issuer_frozen;
            UPDATE invoices SET issuer_name = NULL, issuer_address = NULL, issuer_tax_id = NULL,
                   issuer_email = NULL, issuer_payment_instructions = NULL
             WHERE number = '{new["number"]}';
            ALTER TABLE invoices ENABLE TRIGGER invoices_issuer_frozen;
            COMMIT;""")
        self.assertEqual(self.invoice(new["number"])["issuer"], JSON_B)
        self.reload(ISSUER_C)
        harness.wait_for(lambda: self.stored_issuer() == "Gamma AG", 10, "issuer C")
        self.assertEqual(self.invoice(new["number"])["issuer"], JSON_C)
        self.assertIn("<strong>Gamma AG</strong>", self.page(new["number"]))

    def test_08_the_database_refuses_to_change_an_issued_invoices_issuer(self):
        with self.assertRaises(harness.HarnessError) as cm:
            self.psql(f"UPDATE invoices SET issuer_name = 'Forged Ltd' "
                      f"WHERE number = '{self.first}'")
        self.assertIn("the issuer of an issued invoice cannot be changed", str(cm.exception))
        # an update of other columns (payments) is not affected
        self.psql(f"UPDATE invoices SET paid = paid WHERE number = '{self.first}'")
        self.assertEqual(self.invoice(self.first)["issuer"], JSON_A)

    def test_09_bad_values_refused_at_start_naming_the_key(self):
        cases = [
            ({"name": "X", "email": "not-an-address"}, "issuer.email: must be one e-mail address"),
            ({"name": "X", "address": "a\\n\\nb"}, "issuer.address: line 2 is empty"),
            ({"name": "X", "tax_id": "A\\nB"}, "issuer.tax_id: must be one line"),
            ({"name": "x" * 201}, "issuer.name: must be at most 200 bytes"),
            ({"name": "X", "address": "\\n".join(["l"] * 9)},
             "issuer.address: must have at most 8 lines"),
            ({"name": "A\u202eB"}, "issuer.name: control character U+202E is not allowed"),
            ({"address": "1 Road"}, "issuer.name: required when issuer.address is set"),
            ({"name": "C:\\temp"}, "issuer.name: unknown escape"),
        ]
        for issuer, want in cases:
            with self.subTest(want=want):
                d = harness.Daemon(self.cluster.conninfo(), config={"issuer": issuer},
                                   test_clock=T0)
                self.addCleanup(d.destroy)
                r = d.run("--config", d.config_path)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn("configuration error: " + d.config_path + ":", r.stderr)
                self.assertIn(want, r.stderr)

    def test_10_bad_value_on_reload_keeps_the_running_issuer(self):
        before = self.stored_issuer()
        pos = len(self.daemon.log_text())
        self.daemon.write_config({"issuer": {"name": "X", "email": "a@b, c@d"}})
        self.daemon.reload()
        self.daemon.wait_log(r"reload: .*issuer\.email: must be one e-mail address.*keeping "
                             r"the running configuration", start=pos)
        time.sleep(0.2)
        self.assertEqual(self.stored_issuer(), before)
        self.daemon.write_config({"issuer": ISSUER_C})

    def test_11_several_daemons_the_last_started_wins(self):
        # R9.2: one row for all daemons; the one started (or reloaded) last
        # decides what every daemon's new invoices carry
        self.assertEqual(self.stored_issuer(), "Gamma AG")
        b = harness.Daemon(self.cluster.conninfo(), config={"issuer": ISSUER_B}, test_clock=T0)
        self.addCleanup(b.destroy)
        b.start()
        b.wait_ready(timeout=15)
        self.assertEqual(self.stored_issuer(), "Beta Telecom Ltd")
        inv = self.issue_final_invoice("IS-CL1")  # issued by the first daemon
        self.assertEqual(inv["issuer"], JSON_B)
        self.assertEqual(b.stop(), 0)
        self.assertEqual(self.invoice(self.first, daemon=self.daemon)["issuer"], JSON_A)


if __name__ == "__main__":
    harness.main()
