/* test_config.c: unit tests of common/config (API.md "Running", SPEC R9.3, R9.5). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"

#define FILENAME "creditd.conf"

/* The smallest valid config: lines 1-4. */
#define MIN_CONF                                                                                   \
	"[server]\n"                                                                               \
	"listen = 127.0.0.1:8080\n"                                                                \
	"[database]\n"                                                                             \
	"conninfo = host=/tmp dbname=creditd\n"

#define HASH_ADMIN "91c16f0d6cc1bec3c3603972182a07c66ff4fa71618a975e963d6dbe42b6dd37"
#define HASH_FINANCE "def24dcaa2767d3713d3e4753dae47336790dedc1b248e065e66e29255466e1e"

static struct config *
parse_text(const char *text, const char *override, char *err, size_t errlen)
{
	return config_parse(FILENAME, text, strlen(text), override, err, errlen);
}

static struct config *
parse_ok_line(const char *text, const char *override, int line)
{
	char err[512] = "";
	struct config *cfg = parse_text(text, override, err, sizeof(err));

	if (cfg == NULL)
		fail_msg("line %d: config_parse failed: %s", line, err);
	return cfg;
}
#define PARSE_OK(text) parse_ok_line((text), NULL, __LINE__)

static void
parse_err_line(const char *text, size_t len, const char *override, const char *want, int line)
{
	char err[512] = "";
	struct config *cfg = config_parse(FILENAME, text, len, override, err, sizeof(err));

	if (cfg != NULL) {
		config_free(cfg);
		fail_msg("line %d: config_parse succeeded, want error \"%s\"", line, want);
	}
	if (strcmp(err, want) != 0)
		fail_msg("line %d: error\n  got  \"%s\"\n  want \"%s\"", line, err, want);
}
#define PARSE_ERR(text, want) parse_err_line((text), strlen(text), NULL, (want), __LINE__)

/* ---- valid configs ---- */

static const char full_conf[] =
    "# every key, none at its default\n"
    "[server]\n"
    "listen = 0.0.0.0:9090\n"
    "max_body_bytes = 2M\n"
    "max_connections = 500\n"
    "request_timeout_seconds = 10\n"
    "\n"
    "[database]\n"
    "conninfo = host=db.example port=5432 dbname=credit password=a#b;c\n"
    "pool_size = 8\n"
    "[billing]\n"
    "timezone = Europe/Berlin\n"
    "invoice_run_day = 3\n"
    "invoice_run_time = 23:59\n"
    "invoice_prefix = RE-2024\n"
    "credit_note_prefix = GS\n"
    "day_count = actual/360\n"
    "compensation = yes\n"
    "default_contractual_rate = 8.25\n"
    "default_payment_terms_days = 30\n"
    "[limits]\n"
    "limit_notice_days = 14\n"
    "alert_thresholds = 50, 75 ,100\n"
    "[usage]\n"
    "max_future_skew_seconds = 60\n"
    "max_event_age_days = 90\n"
    "max_batch_events = 500\n"
    "batch_flush_events = 100\n"
    "batch_flush_ms = 0\n"
    "batch_queue_events = 5000\n"
    "[overdue]\n"
    "overdue_suspend_after_days = 0\n"
    "reminder_days = 3\n"
    "inactivity_months = 12\n"
    "reactivation_working_days = 5\n"
    "[webhook]\n"
    "url = http://127.0.0.1:9000/hooks\n"
    "secret = s3cr3t\n"
    "max_attempts = 5\n"
    "max_backoff_seconds = 60\n"
    "[log]\n"
    "level = debug\n"
    "[token.finance-1]\n"
    "sha256 = " HASH_FINANCE "\n"
    "scopes = read, write\n"
    "[token.ops.night_shift]\n"
    "scopes = ops,read,ingest,write,admin\n"
    "sha256 = 91C16F0D6CC1BEC3C3603972182A07C66FF4FA71618A975E963D6DBE42B6DD37\n";

static void
test_full(void **state)
{
	struct config *cfg = PARSE_OK(full_conf);

	assert_string_equal(cfg->filename, FILENAME);
	assert_string_equal(cfg->listen_host, "0.0.0.0");
	assert_int_equal(cfg->listen_port, 9090);
	assert_int_equal(cfg->max_body_bytes, 2 * 1024 * 1024);
	assert_int_equal(cfg->max_connections, 500);
	assert_int_equal(cfg->request_timeout_seconds, 10);
	assert_string_equal(cfg->database_conninfo,
	                    "host=db.example port=5432 dbname=credit password=a#b;c");
	assert_int_equal(cfg->pool_size, 8);
	assert_string_equal(cfg->billing_timezone, "Europe/Berlin");
	assert_int_equal(cfg->invoice_run_day, 3);
	assert_int_equal(cfg->invoice_run_time, 23 * 60 + 59);
	assert_string_equal(cfg->invoice_prefix, "RE-2024");
	assert_string_equal(cfg->credit_note_prefix, "GS");
	assert_int_equal(cfg->day_count, CONFIG_DAY_COUNT_ACTUAL_360);
	assert_true(cfg->compensation);
	assert_int_equal(cfg->default_contractual_rate, 82500);
	assert_int_equal(cfg->default_payment_terms_days, 30);
	assert_int_equal(cfg->limit_notice_days, 14);
	assert_int_equal(cfg->alert_thresholds.n, 3);
	assert_int_equal(cfg->alert_thresholds.v[0], 50);
	assert_int_equal(cfg->alert_thresholds.v[1], 75);
	assert_int_equal(cfg->alert_thresholds.v[2], 100);
	assert_int_equal(cfg->max_future_skew_seconds, 60);
	assert_int_equal(cfg->max_event_age_days, 90);
	assert_int_equal(cfg->max_batch_events, 500);
	assert_int_equal(cfg->batch_flush_events, 100);
	assert_int_equal(cfg->batch_flush_ms, 0);
	assert_int_equal(cfg->batch_queue_events, 5000);
	assert_int_equal(cfg->overdue_suspend_after_days, 0);
	assert_int_equal(cfg->reminder_days.n, 1);
	assert_int_equal(cfg->reminder_days.v[0], 3);
	assert_int_equal(cfg->inactivity_months, 12);
	assert_int_equal(cfg->reactivation_working_days, 5);
	assert_string_equal(cfg->webhook_url, "http://127.0.0.1:9000/hooks");
	assert_string_equal(cfg->webhook_secret, "s3cr3t");
	assert_int_equal(cfg->webhook_max_attempts, 5);
	assert_int_equal(cfg->webhook_max_backoff_seconds, 60);
	assert_int_equal(cfg->log_level, CONFIG_LOG_DEBUG);

	assert_int_equal(cfg->ntokens, 2);
	assert_string_equal(cfg->tokens[0].name, "finance-1");
	assert_string_equal(cfg->tokens[0].sha256_hex, HASH_FINANCE);
	assert_int_equal(cfg->tokens[0].sha256[0], 0xde);
	assert_int_equal(cfg->tokens[0].sha256[31], 0x1e);
	assert_int_equal(cfg->tokens[0].scopes, SCOPE_READ | SCOPE_WRITE);
	assert_string_equal(cfg->tokens[1].name, "ops.night_shift");
	assert_string_equal(cfg->tokens[1].sha256_hex, HASH_ADMIN); /* stored lowercase */
	assert_int_equal(cfg->tokens[1].sha256[0], 0x91);
	assert_int_equal(cfg->tokens[1].sha256[31], 0x37);
	assert_int_equal(cfg->tokens[1].scopes, SCOPE_ALL);
	config_free(cfg);
}

static void
test_defaults(void **state)
{
	struct config *cfg = PARSE_OK(MIN_CONF);

	assert_string_equal(cfg->listen_host, "127.0.0.1");
	assert_int_equal(cfg->listen_port, 8080);
	assert_int_equal(cfg->max_body_bytes, 8388608);
	assert_int_equal(cfg->max_connections, 1024);
	assert_int_equal(cfg->request_timeout_seconds, 30);
	assert_string_equal(cfg->database_conninfo, "host=/tmp dbname=creditd");
	assert_int_equal(cfg->pool_size, 4);
	assert_string_equal(cfg->billing_timezone, "UTC");
	assert_int_equal(cfg->invoice_run_day, 1);
	assert_int_equal(cfg->invoice_run_time, 120);
	assert_string_equal(cfg->invoice_prefix, "INV");
	assert_string_equal(cfg->credit_note_prefix, "CN");
	assert_int_equal(cfg->day_count, CONFIG_DAY_COUNT_ACTUAL_365);
	assert_false(cfg->compensation);
	assert_int_equal(cfg->default_contractual_rate, 120000);
	assert_int_equal(cfg->default_payment_terms_days, 15);
	assert_int_equal(cfg->limit_notice_days, 7);
	assert_int_equal(cfg->alert_thresholds.n, 2);
	assert_int_equal(cfg->alert_thresholds.v[0], 80);
	assert_int_equal(cfg->alert_thresholds.v[1], 90);
	assert_int_equal(cfg->max_future_skew_seconds, 300);
	assert_int_equal(cfg->max_event_age_days, 35);
	assert_int_equal(cfg->max_batch_events, 10000);
	assert_int_equal(cfg->batch_flush_events, 2000);
	assert_int_equal(cfg->batch_flush_ms, 2);
	assert_int_equal(cfg->batch_queue_events, 200000);
	assert_int_equal(cfg->overdue_suspend_after_days, 14);
	assert_int_equal(cfg->reminder_days.n, 3);
	assert_int_equal(cfg->reminder_days.v[0], 1);
	assert_int_equal(cfg->reminder_days.v[1], 7);
	assert_int_equal(cfg->reminder_days.v[2], 14);
	assert_int_equal(cfg->inactivity_months, 6);
	assert_int_equal(cfg->reactivation_working_days, 3);
	assert_string_equal(cfg->webhook_url, "");
	assert_string_equal(cfg->webhook_secret, "");
	assert_int_equal(cfg->webhook_max_attempts, 20);
	assert_int_equal(cfg->webhook_max_backoff_seconds, 3600);
	assert_int_equal(cfg->log_level, CONFIG_LOG_INFO);
	/* no issuer: the printable invoice shows no issuer block (R5.7) */
	assert_string_equal(cfg->issuer_name, "");
	assert_string_equal(cfg->issuer_address, "");
	assert_string_equal(cfg->issuer_tax_id, "");
	assert_string_equal(cfg->issuer_email, "");
	assert_string_equal(cfg->issuer_payment_instructions, "");
	/* no token section is valid: every authenticated call gets 401 */
	assert_int_equal(cfg->ntokens, 0);
	assert_null(cfg->tokens);
	config_free(cfg);
}

static void
test_value_forms(void **state)
{
	struct config *cfg;

	cfg = PARSE_OK("[server]\nlisten = [::1]:8443\nmax_body_bytes = 1k\n"
	               "[database]\nconninfo = x\n"
	               "[billing]\ndefault_contractual_rate = 13.1250\ncompensation = ON\n"
	               "day_count = Actual/Actual\ninvoice_run_time = 00:00\n"
	               "[limits]\nalert_thresholds =\n"
	               "[overdue]\nreminder_days = 1,2,3650\n"
	               "[log]\nlevel = warning\n");
	assert_string_equal(cfg->listen_host, "::1");
	assert_int_equal(cfg->listen_port, 8443);
	assert_int_equal(cfg->max_body_bytes, 1024);
	assert_int_equal(cfg->default_contractual_rate, 131250);
	assert_true(cfg->compensation);
	assert_int_equal(cfg->day_count, CONFIG_DAY_COUNT_ACTUAL_ACTUAL);
	assert_int_equal(cfg->invoice_run_time, 0);
	assert_int_equal(cfg->alert_thresholds.n, 0);
	assert_int_equal(cfg->reminder_days.n, 3);
	assert_int_equal(cfg->reminder_days.v[2], 3650);
	assert_int_equal(cfg->log_level, CONFIG_LOG_WARNING);
	config_free(cfg);

	cfg = PARSE_OK("[server]\nlisten = localhost:1\nmax_body_bytes = 1G\n"
	               "[database]\nconninfo = x\n"
	               "[billing]\ndefault_contractual_rate = 0\ncompensation = 0\n"
	               "timezone = America/Argentina/Buenos_Aires\n[log]\nlevel = error\n");
	assert_string_equal(cfg->listen_host, "localhost");
	assert_int_equal(cfg->listen_port, 1);
	assert_int_equal(cfg->max_body_bytes, 1073741824);
	assert_int_equal(cfg->default_contractual_rate, 0);
	assert_false(cfg->compensation);
	assert_string_equal(cfg->billing_timezone, "America/Argentina/Buenos_Aires");
	assert_int_equal(cfg->log_level, CONFIG_LOG_ERROR);
	config_free(cfg);

	cfg = PARSE_OK("[server]\nlisten = 10.1.2.3:65535\nmax_body_bytes = 1048576\n"
	               "[database]\nconninfo = x\n"
	               "[billing]\ndefault_contractual_rate = 100\ntimezone = Etc/GMT+5\n");
	assert_int_equal(cfg->listen_port, 65535);
	assert_int_equal(cfg->max_body_bytes, 1048576);
	assert_int_equal(cfg->default_contractual_rate, 1000000);
	assert_string_equal(cfg->billing_timezone, "Etc/GMT+5");
	config_free(cfg);
}

static void
test_comments_and_whitespace(void **state)
{
	struct config *cfg;

	cfg = PARSE_OK("\xef\xbb\xbf# leading comment\n"
	               "; semicolon comment\n"
	               "   \t\n"
	               "  [server]   # trailing comment after a header\n"
	               "\tlisten\t=\t127.0.0.1:8080\t# trailing comment\n"
	               "max_connections = 7  ; semicolon trailing comment\n"
	               "[ database ]\n"
	               "conninfo=dbname=a#b\n"
	               "[webhook]\n"
	               "url = http://h/x#frag ;c\n"
	               "secret = k  \n"
	               "[token.a]\n"
	               "sha256 = " HASH_ADMIN " # the admin\n"
	               "scopes = admin # all\n"
	               "# no newline at the end\n"
	               "[log]\nlevel = debug");
	assert_string_equal(cfg->listen_host, "127.0.0.1");
	assert_int_equal(cfg->max_connections, 7);
	assert_string_equal(cfg->database_conninfo, "dbname=a#b");
	assert_string_equal(cfg->webhook_url, "http://h/x#frag");
	assert_string_equal(cfg->webhook_secret, "k");
	assert_int_equal(cfg->ntokens, 1);
	assert_int_equal(cfg->tokens[0].scopes, SCOPE_ADMIN);
	assert_int_equal(cfg->log_level, CONFIG_LOG_DEBUG);
	config_free(cfg);
}

static void
test_crlf(void **state)
{
	struct config *cfg;

	cfg = PARSE_OK("[server]\r\nlisten = 127.0.0.1:8080\r\n\r\n# c\r\n[database]\r\n"
	               "conninfo = dbname=x\r\n[usage]\r\nbatch_flush_ms = 5 # c\r\n");
	assert_int_equal(cfg->listen_port, 8080);
	assert_string_equal(cfg->database_conninfo, "dbname=x");
	assert_int_equal(cfg->batch_flush_ms, 5);
	config_free(cfg);
	/* line numbers count CRLF lines */
	PARSE_ERR("[server]\r\nlisten = 127.0.0.1:8080\r\n\r\n[usage]\r\nbatch_flush_ms = x\r\n",
	          FILENAME ":5: usage.batch_flush_ms: must be an integer between 0 and 10000, "
	                   "got \"x\"");
}

static void
test_line_numbers(void **state)
{
	PARSE_ERR("# 1\n\n[server]\n\n# 5\nlisten = 127.0.0.1:8080\n; 7\n\n[database]\n"
	          "conninfo = x\n[usage]\n   \n  max_batch_events = abc   # 13\n",
	          FILENAME ":13: usage.max_batch_events: must be an integer between 1 and "
	                   "1000000, got \"abc\"");
}

static void
test_conninfo_override(void **state)
{
	struct config *cfg;
	const char *no_conninfo = "[server]\nlisten = 127.0.0.1:8080\n";

	/* satisfies the missing required key */
	cfg = parse_ok_line(no_conninfo, "host=/run/pg dbname=prod", __LINE__);
	assert_string_equal(cfg->database_conninfo, "host=/run/pg dbname=prod");
	config_free(cfg);
	/* replaces the file's value */
	cfg = parse_ok_line(MIN_CONF, "dbname=other", __LINE__);
	assert_string_equal(cfg->database_conninfo, "dbname=other");
	config_free(cfg);
	/* without it the key is required */
	parse_err_line(no_conninfo, strlen(no_conninfo), NULL,
	               FILENAME ": database.conninfo: missing required key", __LINE__);
	parse_err_line(MIN_CONF, strlen(MIN_CONF), "",
	               FILENAME
	               ": database.conninfo: must not be empty (CREDITD_DATABASE_CONNINFO)",
	               __LINE__);
}

/* [issuer] (R5.7): escapes, lines trimmed, UTF-8 kept as it is */
static void
test_issuer(void **state)
{
	struct config *cfg;

	cfg = PARSE_OK(MIN_CONF "[issuer]\n"
	                        "name = M\xc3\xbcller & S\xc3\xb6hne <GmbH>  # a comment\n"
	                        "address = Hauptstra\xc3\x9f"
	                        "e 1\\n 10115 Berlin \\nSuite \\#5\n"
	                        "tax_id = DE 123 456 789\n"
	                        "email = billing@example.com\n"
	                        "payment_instructions = IBAN DE89 3704 0044 0532 0130 00\\n"
	                        "BIC DEMODEFFXXX \\; ref: \\\\ invoice number\n");
	assert_string_equal(cfg->issuer_name, "M\xc3\xbcller & S\xc3\xb6hne <GmbH>");
	assert_string_equal(cfg->issuer_address, "Hauptstra\xc3\x9f"
	                                         "e 1\n10115 Berlin\nSuite #5");
	assert_string_equal(cfg->issuer_tax_id, "DE 123 456 789");
	assert_string_equal(cfg->issuer_email, "billing@example.com");
	assert_string_equal(cfg->issuer_payment_instructions,
	                    "IBAN DE89 3704 0044 0532 0130 00\nBIC DEMODEFFXXX ; ref: \\ invoice "
	                    "number");
	config_free(cfg);

	/* a name alone is enough; a # without a space before it is text */
	cfg = PARSE_OK(MIN_CONF "[issuer]\nname = No#1 Ltd\nemail =\n");
	assert_string_equal(cfg->issuer_name, "No#1 Ltd");
	assert_string_equal(cfg->issuer_address, "");
	assert_string_equal(cfg->issuer_email, "");
	config_free(cfg);

	/* the bounds themselves: 8 lines; 200 bytes */
	cfg = PARSE_OK(MIN_CONF "[issuer]\nname = x\naddress = 1\\n2\\n3\\n4\\n5\\n6\\n7\\n8\n");
	assert_string_equal(cfg->issuer_address, "1\n2\n3\n4\n5\n6\n7\n8");
	config_free(cfg);
	{
		char text[512], name[201];
		memset(name, 'n', 200);
		name[200] = '\0';
		snprintf(text, sizeof(text), MIN_CONF "[issuer]\nname = %s\n", name);
		cfg = PARSE_OK(text);
		assert_int_equal(strlen(cfg->issuer_name), 200);
		config_free(cfg);
		snprintf(text, sizeof(text), MIN_CONF "[issuer]\nname = %sn\n", name);
		PARSE_ERR(
		    text, FILENAME
		    ":6: issuer.name: must be at most 200 bytes, is 201, got "
		    "\"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...\"");
	}
}

static void
test_err_issuer(void **state)
{
	PARSE_ERR(MIN_CONF "[issuer]\naddress = 1 Main St\n",
	          FILENAME ":6: issuer.name: required when issuer.address is set");
	PARSE_ERR(MIN_CONF "[issuer]\nname =\npayment_instructions = IBAN X\n",
	          FILENAME ":7: issuer.name: required when issuer.payment_instructions is set");
	PARSE_ERR(MIN_CONF "[issuer]\nname = A\\nB\n",
	          FILENAME ":6: issuer.name: must be one line (no \\n), got \"A\\\\nB\"");
	PARSE_ERR(MIN_CONF "[issuer]\nname = x\ntax_id = DE1\\n2\n",
	          FILENAME ":7: issuer.tax_id: must be one line (no \\n), got \"DE1\\\\n2\"");
	PARSE_ERR(MIN_CONF "[issuer]\nname = x\naddress = a\\n\\nb\n",
	          FILENAME ":7: issuer.address: line 2 is empty, got \"a\\\\n\\\\nb\"");
	PARSE_ERR(MIN_CONF "[issuer]\nname = x\naddress = a\\n \n",
	          FILENAME ":7: issuer.address: line 2 is empty, got \"a\\\\n\"");
	PARSE_ERR(MIN_CONF "[issuer]\nname = x\naddress = 1\\n2\\n3\\n4\\n5\\n6\\n7\\n8\\n9\n",
	          FILENAME ":7: issuer.address: must have at most 8 lines, has 9, got "
	                   "\"1\\\\n2\\\\n3\\\\n4\\\\n5\\\\n6\\\\n7\\\\n8\\\\n9\"");
	PARSE_ERR(MIN_CONF "[issuer]\nname = C:\\temp\n",
	          FILENAME ":6: issuer.name: unknown escape \"\\t\" (allowed: \\n, \\\\, \\# and "
	                   "\\;), got \"C:\\\\temp\"");
	PARSE_ERR(MIN_CONF "[issuer]\nname = x\\\n",
	          FILENAME ":6: issuer.name: ends with a lone backslash (write \\\\ for one), got "
	                   "\"x\\\\\"");
	/* a comment after a space cuts the value: the backslash is left alone */
	PARSE_ERR(MIN_CONF "[issuer]\nname = Suite \\ #5\n",
	          FILENAME ":6: issuer.name: ends with a lone backslash (write \\\\ for one), got "
	                   "\"Suite \\\\\"");
	/* control characters: tab (the line check lets it through), C1, bidi */
	PARSE_ERR(MIN_CONF "[issuer]\nname = a\tb\n",
	          FILENAME ":6: issuer.name: control character U+0009 is not allowed, got "
	                   "\"a\\x09b\"");
	PARSE_ERR(MIN_CONF "[issuer]\nname = a\xc2\x85"
	                   "b\n",
	          FILENAME ":6: issuer.name: control character U+0085 is not allowed, got "
	                   "\"a\\xc2\\x85"
	                   "b\"");
	PARSE_ERR(MIN_CONF "[issuer]\nname = x\naddress = a\xe2\x80\xae"
	                   "b\n",
	          FILENAME ":7: issuer.address: control character U+202E is not allowed, got "
	                   "\"a\\xe2\\x80\\xae"
	                   "b\"");
	PARSE_ERR(MIN_CONF "[issuer]\nname = x\xe2\x80\xa8y\n",
	          FILENAME ":6: issuer.name: control character U+2028 is not allowed, got "
	                   "\"x\\xe2\\x80\\xa8y\"");
	PARSE_ERR(MIN_CONF "[issuer]\nname = \xff\n",
	          FILENAME ":6: issuer.name: must be valid UTF-8, got \"\\xff\"");
	PARSE_ERR(MIN_CONF "[issuer]\nname = \xc3(\n",
	          FILENAME ":6: issuer.name: must be valid UTF-8, got \"\\xc3(\"");
	/* e-mail */
	PARSE_ERR(MIN_CONF "[issuer]\nname = x\nemail = billing\n",
	          FILENAME ":7: issuer.email: must be one e-mail address such as "
	                   "billing@example.com, got \"billing\"");
	PARSE_ERR(MIN_CONF "[issuer]\nname = x\nemail = a@b, c@d\n",
	          FILENAME ":7: issuer.email: must be one e-mail address such as "
	                   "billing@example.com, got \"a@b, c@d\"");
	PARSE_ERR(MIN_CONF "[issuer]\nname = x\nemail = Billing <a@b>\n",
	          FILENAME ":7: issuer.email: must be one e-mail address such as "
	                   "billing@example.com, got \"Billing <a@b>\"");
	PARSE_ERR(MIN_CONF "[issuer]\nname = x\nemail = @b\n",
	          FILENAME ":7: issuer.email: must be one e-mail address such as "
	                   "billing@example.com, got \"@b\"");
	PARSE_ERR(MIN_CONF "[issuer]\nname = x\nfax = 1\n", FILENAME ":7: issuer.fax: unknown key");
	PARSE_ERR(MIN_CONF "[issuer]\nname = x\n[issuer]\n",
	          FILENAME ":7: [issuer]: duplicate section (first on line 5)");
}

/* ---- errors, one exact message each ---- */

static void
test_err_keys_sections(void **state)
{
	PARSE_ERR("[server]\nlisen = 127.0.0.1:8080\n", FILENAME ":2: server.lisen: unknown key");
	PARSE_ERR(MIN_CONF "[usage]\nlisten = 1\n", FILENAME ":6: usage.listen: unknown key");
	PARSE_ERR(MIN_CONF "\n\n[foo]\n", FILENAME ":7: [foo]: unknown section");
	PARSE_ERR(MIN_CONF "[Server]\n", FILENAME ":5: [Server]: unknown section");
	PARSE_ERR(MIN_CONF "[token]\n",
	          FILENAME ":5: [token]: a token section needs a name: [token.NAME]");
	PARSE_ERR(MIN_CONF "[token.]\n",
	          FILENAME ":5: [token.]: invalid token name (1 to 64 characters from A-Z, a-z, "
	                   "0-9, _, . and -)");
	PARSE_ERR(MIN_CONF "[token.a b]\n",
	          FILENAME ":5: [token.a b]: invalid token name (1 to 64 characters from A-Z, "
	                   "a-z, 0-9, _, . and -)");
	PARSE_ERR("listen = 127.0.0.1:8080\n[server]\n",
	          FILENAME ":1: listen: key before any [section] header");
	PARSE_ERR("# comment\n\nlisten = 1\n",
	          FILENAME ":3: listen: key before any [section] header");
	PARSE_ERR(MIN_CONF "[usage]\nmax_batch_events 5\n",
	          FILENAME ":6: syntax error: expected key = value");
	PARSE_ERR(MIN_CONF "[usage]\n= 5\n", FILENAME ":6: syntax error: expected key = value");
	PARSE_ERR(MIN_CONF "[usage]\nmax batch = 5\n",
	          FILENAME ":6: syntax error: expected key = value");
	PARSE_ERR(MIN_CONF "[usage\n", FILENAME ":5: syntax error: expected [section]");
	PARSE_ERR(MIN_CONF "[usage] x\n", FILENAME ":5: syntax error: expected [section]");
	PARSE_ERR(MIN_CONF "[]\n", FILENAME ":5: syntax error: expected [section]");
	PARSE_ERR("[server]\nlisten = 127.0.0.1:8080\nlisten = 127.0.0.1:9090\n",
	          FILENAME ":3: server.listen: duplicate key (first on line 2)");
	PARSE_ERR(MIN_CONF "[server]\n",
	          FILENAME ":5: [server]: duplicate section (first on line 1)");
}

static void
test_err_missing(void **state)
{
	PARSE_ERR("", FILENAME ": server.listen: missing required key");
	PARSE_ERR("[database]\nconninfo = x\n", FILENAME ": server.listen: missing required key");
	PARSE_ERR("[server]\nlisten = 127.0.0.1:8080\n[database]\npool_size = 2\n",
	          FILENAME ": database.conninfo: missing required key");
	PARSE_ERR(MIN_CONF "[token.ci]\nscopes = read\n",
	          FILENAME ":5: token.ci.sha256: missing required key");
	PARSE_ERR(MIN_CONF "[token.ci]\nsha256 = " HASH_ADMIN "\n[token.b]\nscopes=read\n",
	          FILENAME ":5: token.ci.scopes: missing required key");
	PARSE_ERR(MIN_CONF "# x\n[token.ci]\n",
	          FILENAME ":6: token.ci.sha256: missing required key");
}

static void
test_err_values(void **state)
{
	/* int */
	PARSE_ERR(MIN_CONF "[usage]\nmax_batch_events = abc\n",
	          FILENAME ":6: usage.max_batch_events: must be an integer between 1 and 1000000, "
	                   "got \"abc\"");
	PARSE_ERR(MIN_CONF "[usage]\nmax_batch_events = 0\n",
	          FILENAME ":6: usage.max_batch_events: must be an integer between 1 and 1000000, "
	                   "got \"0\"");
	PARSE_ERR(MIN_CONF "[usage]\nmax_batch_events = 1000001\n",
	          FILENAME ":6: usage.max_batch_events: must be an integer between 1 and 1000000, "
	                   "got \"1000001\"");
	PARSE_ERR(MIN_CONF "[billing]\ninvoice_run_day = 11\n",
	          FILENAME ":6: billing.invoice_run_day: must be an integer between 1 and 10, got "
	                   "\"11\"");
	PARSE_ERR(MIN_CONF "[billing]\ninvoice_run_day = -1\n",
	          FILENAME ":6: billing.invoice_run_day: must be an integer between 1 and 10, got "
	                   "\"-1\"");
	PARSE_ERR(MIN_CONF "[billing]\ninvoice_run_day = 99999999999999999999999\n",
	          FILENAME ":6: billing.invoice_run_day: must be an integer between 1 and 10, got "
	                   "\"99999999999999999999999\"");
	PARSE_ERR(MIN_CONF "[billing]\ninvoice_run_day = +1\n",
	          FILENAME ":6: billing.invoice_run_day: must be an integer between 1 and 10, got "
	                   "\"+1\"");
	PARSE_ERR(MIN_CONF "[billing]\ninvoice_run_day =\n",
	          FILENAME ":6: billing.invoice_run_day: must be an integer between 1 and 10, got "
	                   "\"\"");
	PARSE_ERR(MIN_CONF "[database]\n",
	          FILENAME ":5: [database]: duplicate section (first on line 3)");
	/* bool */
	PARSE_ERR(MIN_CONF "[billing]\ncompensation = maybe\n",
	          FILENAME ":6: billing.compensation: must be true or false (or yes/no, on/off, "
	                   "1/0), got \"maybe\"");
	/* enum */
	PARSE_ERR(MIN_CONF "[billing]\nday_count = 30/360\n",
	          FILENAME ":6: billing.day_count: must be one of actual/365, actual/actual, "
	                   "actual/360, got \"30/360\"");
	PARSE_ERR(MIN_CONF "[log]\nlevel = trace\n",
	          FILENAME ":6: log.level: must be one of debug, info, warning, error, got "
	                   "\"trace\"");
	/* hh:mm */
	static const char *const bad_times[] = {"24:00", "2:00", "12:60",   "12-00",
	                                        "noon",  "",     "12:00:00"};
	for (size_t i = 0; i < sizeof(bad_times) / sizeof(bad_times[0]); i++) {
		char text[256], want[256];
		snprintf(text, sizeof(text), MIN_CONF "[billing]\ninvoice_run_time = %s\n",
		         bad_times[i]);
		snprintf(want, sizeof(want),
		         FILENAME
		         ":6: billing.invoice_run_time: must be a time of day HH:MM between "
		         "00:00 and 23:59, got \"%s\"",
		         bad_times[i]);
		PARSE_ERR(text, want);
	}
	/* rate */
	static const char *const bad_rates[] = {"12.12345", "abc", "100.0001", "-1",
	                                        "12.",      ".5",  "1e2",      "12,5"};
	for (size_t i = 0; i < sizeof(bad_rates) / sizeof(bad_rates[0]); i++) {
		char text[256], want[256];
		snprintf(text, sizeof(text), MIN_CONF "[billing]\ndefault_contractual_rate = %s\n",
		         bad_rates[i]);
		snprintf(want, sizeof(want),
		         FILENAME ":6: billing.default_contractual_rate: must be a percentage "
		                  "between 0 and 100 with at most 4 decimals, got \"%s\"",
		         bad_rates[i]);
		PARSE_ERR(text, want);
	}
	/* size */
	static const char *const bad_sizes[] = {
	    "8X", "1023", "2G", "8 M", "8m", "-1", "99999999999999999999G", ""};
	for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
		char text[256], want[256];
		snprintf(text, sizeof(text),
		         "[server]\nlisten = 127.0.0.1:8080\nmax_body_bytes = %s\n", bad_sizes[i]);
		snprintf(want, sizeof(want),
		         FILENAME ":3: server.max_body_bytes: must be a size in bytes between 1024 "
		                  "and 1073741824 (suffix k, M or G allowed), got \"%s\"",
		         bad_sizes[i]);
		PARSE_ERR(text, want);
	}
	/* int list */
	static const char *const bad_lists[] = {"90,80", "80,80", "80,,90", "80,",
	                                        ",80",   "0",     "101",    "a"};
	for (size_t i = 0; i < sizeof(bad_lists) / sizeof(bad_lists[0]); i++) {
		char text[256], want[256];
		snprintf(text, sizeof(text), MIN_CONF "[limits]\nalert_thresholds = %s\n",
		         bad_lists[i]);
		snprintf(want, sizeof(want),
		         FILENAME ":6: limits.alert_thresholds: must be a comma-separated list of "
		                  "strictly increasing integers between 1 and 100, got \"%s\"",
		         bad_lists[i]);
		PARSE_ERR(text, want);
	}
	/* strings with a shape */
	PARSE_ERR(MIN_CONF "[billing]\ntimezone = /etc/localtime\n",
	          FILENAME ":6: billing.timezone: must be an IANA time zone name such as UTC or "
	                   "Europe/Berlin, got \"/etc/localtime\"");
	PARSE_ERR(MIN_CONF "[billing]\ntimezone = Europe/../../x\n",
	          FILENAME ":6: billing.timezone: must be an IANA time zone name such as UTC or "
	                   "Europe/Berlin, got \"Europe/../../x\"");
	PARSE_ERR(MIN_CONF "[billing]\ntimezone =\n",
	          FILENAME ":6: billing.timezone: must be an IANA time zone name such as UTC or "
	                   "Europe/Berlin, got \"\"");
	PARSE_ERR(MIN_CONF "[billing]\ninvoice_prefix = inv\n",
	          FILENAME ":6: billing.invoice_prefix: must be 1 to 16 characters from A-Z, 0-9 "
	                   "and -, got \"inv\"");
	PARSE_ERR(MIN_CONF "[billing]\ncredit_note_prefix = ABCDEFGHIJKLMNOPQ\n",
	          FILENAME ":6: billing.credit_note_prefix: must be 1 to 16 characters from A-Z, "
	                   "0-9 and -, got \"ABCDEFGHIJKLMNOPQ\"");
	PARSE_ERR("[server]\nlisten = 127.0.0.1:8080\n[database]\nconninfo =\n",
	          FILENAME ":4: database.conninfo: must not be empty");
}

static void
test_err_hostport(void **state)
{
	static const char *const bad[] = {"127.0.0.1",       "127.0.0.1:0",     "127.0.0.1:65536",
	                                  "127.0.0.1:",      ":8080",           "example.com:80",
	                                  "::1:8080",        "[::1]8080",       "[::1]",
	                                  "[]:80",           "[localhost]:80",  "256.1.1.1:80",
	                                  "1.2.3:80",        "127.0.0.1:80:90", "127.0.0.1:-80",
	                                  "127.0.0.1:008080"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256], want[512];
		snprintf(text, sizeof(text), "[server]\nlisten = %s\n", bad[i]);
		snprintf(want, sizeof(want),
		         FILENAME ":2: server.listen: must be host:port with an IPv4 address, "
		                  "localhost or [IPv6 address] and a port between 1 and 65535, got "
		                  "\"%s\"",
		         bad[i]);
		PARSE_ERR(text, want);
	}
}

static void
test_err_tokens(void **state)
{
	PARSE_ERR(MIN_CONF "[token.ci]\nsha256 = abc\n",
	          FILENAME ":6: token.ci.sha256: must be the SHA-256 of the token secret as 64 "
	                   "hexadecimal characters");
	/* 64 characters, one not hex; the value is never echoed */
	PARSE_ERR(MIN_CONF "[token.ci]\nsha256 = "
	                   "g1c16f0d6cc1bec3c3603972182a07c66ff4fa71618a975e963d6dbe42b6dd37\n",
	          FILENAME ":6: token.ci.sha256: must be the SHA-256 of the token secret as 64 "
	                   "hexadecimal characters");
	PARSE_ERR(MIN_CONF "[token.ci]\nsha256 = " HASH_ADMIN "\nscopes = read,billing\n",
	          FILENAME ":7: token.ci.scopes: unknown scope \"billing\" (allowed: read, write, "
	                   "ingest, ops, admin)");
	PARSE_ERR(MIN_CONF "[token.ci]\nscopes = READ\n",
	          FILENAME ":6: token.ci.scopes: unknown scope \"READ\" (allowed: read, write, "
	                   "ingest, ops, admin)");
	PARSE_ERR(MIN_CONF "[token.ci]\nscopes = read,\n",
	          FILENAME ":6: token.ci.scopes: unknown scope \"\" (allowed: read, write, ingest, "
	                   "ops, admin)");
	PARSE_ERR(MIN_CONF "[token.ci]\nscopes =\n", FILENAME
	          ":6: token.ci.scopes: must list at least one of read, write, ingest, ops, "
	          "admin");
	PARSE_ERR(MIN_CONF "[token.ci]\nscopes = read,write,read\n",
	          FILENAME ":6: token.ci.scopes: scope \"read\" listed twice");
	PARSE_ERR(MIN_CONF "[token.ci]\nsha256 = " HASH_ADMIN "\nsha256 = " HASH_ADMIN "\n",
	          FILENAME ":7: token.ci.sha256: duplicate key (first on line 6)");
	PARSE_ERR(MIN_CONF "[token.ci]\nsha256 = " HASH_ADMIN "\nscopes = read\n"
	                   "[token.ci]\n",
	          FILENAME ":8: [token.ci]: duplicate token name (first on line 5)");
	PARSE_ERR(MIN_CONF "[token.ci]\nsha256 = " HASH_ADMIN "\nscopes = read\n"
	                   "[token.cd]\nscopes = ops\nsha256 = " HASH_ADMIN "\n",
	          FILENAME ":10: token.cd.sha256: same hash as token.ci");
	PARSE_ERR(MIN_CONF "[token.ci]\nlevel = debug\n",
	          FILENAME ":6: token.ci.level: unknown key");
}

/* R5.2: two series, two counters */
static void
test_err_same_prefixes(void **state)
{
	(void)state;
	PARSE_ERR(MIN_CONF "[billing]\ninvoice_prefix = INV\ncredit_note_prefix = INV\n", FILENAME
	          ":7: billing.credit_note_prefix: must differ from billing.invoice_prefix");
	PARSE_ERR(MIN_CONF "[billing]\ninvoice_prefix = CN\n", FILENAME
	          ":6: billing.credit_note_prefix: must differ from billing.invoice_prefix");
}

static void
test_err_webhook(void **state)
{
	PARSE_ERR(MIN_CONF "[webhook]\nurl = http://127.0.0.1:9000/x\n",
	          FILENAME ":6: webhook.secret: required when webhook.url is set");
	PARSE_ERR(MIN_CONF "[webhook]\nsecret =\nurl = http://h/\n",
	          FILENAME ":7: webhook.secret: required when webhook.url is set");
	/* URLs may hold credentials: never echoed */
	PARSE_ERR(MIN_CONF "[webhook]\nurl = https://user:pw@h/x\nsecret = k\n",
	          FILENAME ":6: webhook.url: https:// is not supported; use an http:// URL (for "
	                   "example a local TLS-terminating proxy)");
	PARSE_ERR(MIN_CONF "[webhook]\nurl = ftp://h/x\nsecret = k\n",
	          FILENAME ":6: webhook.url: must be empty (disabled) or an http:// URL");
	PARSE_ERR(MIN_CONF "[webhook]\nurl = http://\nsecret = k\n",
	          FILENAME ":6: webhook.url: must be empty (disabled) or an http:// URL");
	PARSE_ERR(MIN_CONF "[webhook]\nurl = http://h/a b\nsecret = k\n",
	          FILENAME ":6: webhook.url: must not contain spaces");
}

static void
test_err_bytes(void **state)
{
	static char text[sizeof(MIN_CONF) + CONFIG_MAX_LINE + 16];
	const size_t pre = sizeof(MIN_CONF) - 1;
	struct config *cfg;
	char err[256];

	/* a line of exactly CONFIG_MAX_LINE bytes is fine (CRLF not counted), one more is not */
	memcpy(text, MIN_CONF, pre);
	memset(text + pre, '#', CONFIG_MAX_LINE);
	memcpy(text + pre + CONFIG_MAX_LINE, "\r\n", 3);
	cfg = PARSE_OK(text);
	config_free(cfg);
	memset(text + pre, '#', CONFIG_MAX_LINE + 1);
	memcpy(text + pre + CONFIG_MAX_LINE + 1, "\n", 2);
	PARSE_ERR(text, FILENAME ":5: line too long (more than 4096 bytes)");

	parse_err_line(MIN_CONF "# a\0b\n", strlen(MIN_CONF) + 6, NULL,
	               FILENAME ":5: NUL byte in line", __LINE__);
	PARSE_ERR(MIN_CONF "[log]\nlevel = \x1b[31m\n",
	          FILENAME ":6: control character 0x1b in line");
	PARSE_ERR("[server]\rlisten = 127.0.0.1:8080\n",
	          FILENAME ":1: control character 0x0d in line");

	/* non-ASCII and quotes are escaped when echoed */
	PARSE_ERR(MIN_CONF "[log]\nlevel = \"d\xc3\xa9\"\n",
	          FILENAME ":6: log.level: must be one of debug, info, warning, error, got "
	                   "\"\\\"d\\xc3\\xa9\\\"\"");

	/* the text need not be NUL-terminated; a small or missing errbuf is fine */
	cfg = config_parse(FILENAME, MIN_CONF "garbage", strlen(MIN_CONF), NULL, err, sizeof(err));
	assert_non_null(cfg);
	config_free(cfg);
	assert_null(config_parse(FILENAME, "[foo]\n", 6, NULL, NULL, 0));
	assert_null(config_parse(FILENAME, "[foo]\n", 6, NULL, err, 4));
	assert_string_equal(err, "cre");
}

/* ---- reload, tokens ---- */

static void
test_reload_compatible(void **state)
{
	struct config *a = PARSE_OK(MIN_CONF);
	struct config *b;
	char err[256] = "";

	assert_true(config_reload_compatible(a, a, err, sizeof(err)));

	/* reloadable keys and tokens may change */
	b = parse_ok_line(MIN_CONF
	                  "[log]\nlevel = debug\n[usage]\nbatch_flush_ms = 9\n"
	                  "[limits]\nalert_thresholds = 50\n[billing]\ninvoice_prefix = X\n"
	                  "[token.new]\nsha256 = " HASH_ADMIN "\nscopes = admin\n",
	                  NULL, __LINE__);
	assert_true(config_reload_compatible(a, b, err, sizeof(err)));
	config_free(b);
	/* so may the issuer: new invoices get the new one (R5.5) */
	b = PARSE_OK(MIN_CONF "[issuer]\nname = New Ltd\naddress = 1 Road\n");
	assert_true(config_reload_compatible(a, b, err, sizeof(err)));
	config_free(b);

	/* listen may not */
	b = PARSE_OK("[server]\nlisten = 127.0.0.1:8081\n[database]\nconninfo = host=/tmp "
	             "dbname=creditd\n");
	assert_false(config_reload_compatible(a, b, err, sizeof(err)));
	assert_string_equal(err, "server.listen: cannot be changed by reload; restart the daemon");
	assert_false(config_reload_compatible(b, a, err, sizeof(err)));
	assert_string_equal(err, "server.listen: cannot be changed by reload; restart the daemon");
	config_free(b);
	b = PARSE_OK("[server]\nlisten = localhost:8080\n[database]\nconninfo = host=/tmp "
	             "dbname=creditd\n");
	assert_false(config_reload_compatible(a, b, err, sizeof(err)));
	assert_string_equal(err, "server.listen: cannot be changed by reload; restart the daemon");
	config_free(b);

	/* nor conninfo, pool_size, timezone, max_connections */
	b = parse_ok_line(MIN_CONF, "dbname=other", __LINE__);
	assert_false(config_reload_compatible(a, b, err, sizeof(err)));
	assert_string_equal(err,
	                    "database.conninfo: cannot be changed by reload; restart the daemon");
	config_free(b);
	b = PARSE_OK(MIN_CONF "pool_size = 5\n");
	assert_false(config_reload_compatible(a, b, err, sizeof(err)));
	assert_string_equal(err,
	                    "database.pool_size: cannot be changed by reload; restart the daemon");
	config_free(b);
	b = PARSE_OK(MIN_CONF "[billing]\ntimezone = Europe/Paris\n");
	assert_false(config_reload_compatible(a, b, err, sizeof(err)));
	assert_string_equal(err,
	                    "billing.timezone: cannot be changed by reload; restart the daemon");
	config_free(b);
	b = PARSE_OK("[server]\nlisten = 127.0.0.1:8080\nmax_connections = 1\n[database]\n"
	             "conninfo = host=/tmp dbname=creditd\n");
	assert_false(config_reload_compatible(a, b, err, sizeof(err)));
	assert_string_equal(
	    err, "server.max_connections: cannot be changed by reload; restart the daemon");
	config_free(b);
	config_free(a);
}

static void
test_find_token(void **state)
{
	struct config *cfg = PARSE_OK(full_conf);
	unsigned char want[32];

	memcpy(want, cfg->tokens[1].sha256, 32);
	assert_ptr_equal(config_find_token(cfg, want), &cfg->tokens[1]);
	assert_string_equal(config_find_token(cfg, want)->name, "ops.night_shift");
	memcpy(want, cfg->tokens[0].sha256, 32);
	assert_ptr_equal(config_find_token(cfg, want), &cfg->tokens[0]);
	want[31] ^= 1;
	assert_null(config_find_token(cfg, want));
	want[31] ^= 1;
	want[0] ^= 0x80;
	assert_null(config_find_token(cfg, want));
	config_free(cfg);

	/* no tokens: nothing matches, not even all zeros */
	cfg = PARSE_OK(MIN_CONF);
	memset(want, 0, sizeof(want));
	assert_null(config_find_token(cfg, want));
	config_free(cfg);
	assert_null(config_find_token(NULL, want));
}

static void
test_names(void **state)
{
	assert_string_equal(config_scope_name(SCOPE_READ), "read");
	assert_string_equal(config_scope_name(SCOPE_WRITE), "write");
	assert_string_equal(config_scope_name(SCOPE_INGEST), "ingest");
	assert_string_equal(config_scope_name(SCOPE_OPS), "ops");
	assert_string_equal(config_scope_name(SCOPE_ADMIN), "admin");
	assert_null(config_scope_name(0));
	assert_null(config_scope_name(SCOPE_READ | SCOPE_WRITE));
	assert_null(config_scope_name(32));
	assert_string_equal(config_day_count_name(CONFIG_DAY_COUNT_ACTUAL_ACTUAL), "actual/actual");
	assert_null(config_day_count_name(3));
	assert_string_equal(config_log_level_name(CONFIG_LOG_WARNING), "warning");
	assert_null(config_log_level_name(-1));
}

static void
test_describe(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	config_describe(f);
	fclose(f);
	assert_non_null(strstr(buf, "| key | type | default | reload | meaning |\n"));
	assert_non_null(strstr(buf, "| `server.listen` | host:port | required | no | "));
	assert_non_null(
	    strstr(buf, "| `usage.max_batch_events` | integer 1..1000000 | `10000` | yes | "));
	assert_non_null(strstr(buf, "| `billing.day_count` | one of `actual/365`, `actual/actual`, "
	                            "`actual/360` | `actual/365` | yes | "));
	assert_non_null(strstr(buf, "| `webhook.url` | URL | empty | yes | "));
	assert_non_null(strstr(buf, "| `token.NAME.scopes` | list of scopes | required | yes | "));
	assert_non_null(strstr(buf, "| `issuer.name` | text, at most 200 bytes | empty | yes | "));
	assert_non_null(strstr(
	    buf, "| `issuer.address` | text, at most 8 lines and 500 bytes | empty | yes | "));
	assert_non_null(
	    strstr(buf, "| `issuer.email` | e-mail address, at most 254 bytes | empty | yes | "));
	free(buf);
}

/* The shipped example config parses and holds the demo tokens. */
static void
test_example_file(void **state)
{
	static const char *const candidates[] = {
	    "../config/creditd.conf.example", "config/creditd.conf.example",
	    "../../config/creditd.conf.example", "../../../config/creditd.conf.example"};
	FILE *f = NULL;
	char text[16384], hash[32];
	size_t n;
	struct config *cfg;
	const char *src = getenv("MESON_SOURCE_ROOT");

	if (src != NULL) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/config/creditd.conf.example", src);
		f = fopen(path, "r");
	}
	for (size_t i = 0; f == NULL && i < sizeof(candidates) / sizeof(candidates[0]); i++)
		f = fopen(candidates[i], "r");
	if (f == NULL)
		skip();
	n = fread(text, 1, sizeof(text), f);
	fclose(f);
	assert_true(n < sizeof(text));
	cfg = config_parse("creditd.conf.example", text, n, NULL, hash, sizeof(hash));
	assert_non_null(cfg);
	assert_string_equal(cfg->listen_host, "127.0.0.1");
	assert_int_equal(cfg->listen_port, 8080);
	assert_string_equal(cfg->database_conninfo, "host=/tmp dbname=creditd");
	assert_int_equal(cfg->ntokens, 4);
	assert_string_equal(cfg->tokens[0].name, "admin");
	assert_string_equal(cfg->tokens[0].sha256_hex, HASH_ADMIN);
	assert_int_equal(cfg->tokens[0].scopes, SCOPE_ADMIN);
	assert_string_equal(cfg->tokens[1].name, "finance");
	assert_string_equal(cfg->tokens[1].sha256_hex, HASH_FINANCE);
	assert_int_equal(cfg->tokens[1].scopes, SCOPE_READ | SCOPE_WRITE);
	assert_string_equal(cfg->tokens[2].name, "platform");
	assert_int_equal(cfg->tokens[2].scopes, SCOPE_INGEST | SCOPE_READ);
	assert_string_equal(cfg->tokens[3].name, "ops");
	assert_int_equal(cfg->tokens[3].scopes, SCOPE_OPS | SCOPE_READ);
	/* the demo issuer (R5.7) */
	assert_string_equal(cfg->issuer_name, "Demo Telecom GmbH");
	assert_string_equal(cfg->issuer_address, "Musterstra\xc3\x9f"
	                                         "e 1\n10115 Berlin\nGermany");
	assert_string_equal(cfg->issuer_tax_id, "DE123456789");
	assert_string_equal(cfg->issuer_email, "billing@demo-telecom.example");
	assert_string_equal(cfg->issuer_payment_instructions,
	                    "Bank transfer to Demo Bank AG\nIBAN DE89 3704 0044 0532 0130 00\nBIC "
	                    "DEMODEFFXXX");
	config_free(cfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_value_forms),
	    cmocka_unit_test(test_comments_and_whitespace),
	    cmocka_unit_test(test_crlf),
	    cmocka_unit_test(test_line_numbers),
	    cmocka_unit_test(test_conninfo_override),
	    cmocka_unit_test(test_issuer),
	    cmocka_unit_test(test_err_issuer),
	    cmocka_unit_test(test_err_keys_sections),
	    cmocka_unit_test(test_err_missing),
	    cmocka_unit_test(test_err_values),
	    cmocka_unit_test(test_err_hostport),
	    cmocka_unit_test(test_err_tokens),
	    cmocka_unit_test(test_err_same_prefixes),
	    cmocka_unit_test(test_err_webhook),
	    cmocka_unit_test(test_err_bytes),
	    cmocka_unit_test(test_reload_compatible),
	    cmocka_unit_test(test_find_token),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_describe),
	    cmocka_unit_test(test_example_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
