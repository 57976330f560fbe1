/*
 * config.h: creditd's configuration, parsed from an INI buffer.
 *
 * Pure: config_parse() takes the file's text; the daemon reads the file, reads
 * CREDITD_DATABASE_CONNINFO and passes it as conninfo_override. Every key is
 * declared once in a table in config.c (section, key, type, default,
 * reloadable), which drives parsing, defaults, reload checks and
 * config_describe().
 *
 * Format: `[section]` headers, `key = value` lines, `#` or `;` comments on their
 * own line or trailing after whitespace (`key = 1  # comment`), blank lines;
 * whitespace around keys and values is trimmed; LF or CRLF line endings; lines
 * of at most CONFIG_MAX_LINE bytes; no NUL or control characters.
 *
 * Issuer text ([issuer] keys, R5.7): UTF-8; backslash escapes `\n` (a line
 * break, in the multi-line keys only), `\\`, `\#` and `\;` (so that a `#` or
 * `;` after a space is not a comment); spaces around each line are trimmed;
 * no control characters (C0, DEL, C1, U+2028/U+2029, bidirectional
 * overrides and isolates), no empty lines; bounded in bytes and lines.
 *
 * Tokens: one `[token.NAME]` section per token (NAME = [A-Za-z0-9_.-]+, at most
 * CONFIG_MAX_TOKEN_NAME bytes, unique); NAME is the audit actor. A config with
 * no token section at all is valid: then every authenticated call gets 401.
 */
#ifndef CREDITD_CONFIG_H
#define CREDITD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_MAX_LINE 4096
#define CONFIG_MAX_TOKEN_NAME 64
#define CONFIG_ISSUER_MAX_LINES 8 /* issuer.address, issuer.payment_instructions */

/* Token scopes, a bitmask in config_token.scopes. */
enum config_scope {
	SCOPE_READ = 1,
	SCOPE_WRITE = 2,
	SCOPE_INGEST = 4,
	SCOPE_OPS = 8,
	SCOPE_ADMIN = 16,
};
#define SCOPE_ALL (SCOPE_READ | SCOPE_WRITE | SCOPE_INGEST | SCOPE_OPS | SCOPE_ADMIN)

/* billing.day_count (stored in an int field). */
enum config_day_count {
	CONFIG_DAY_COUNT_ACTUAL_365 = 0, /* "actual/365" */
	CONFIG_DAY_COUNT_ACTUAL_ACTUAL,  /* "actual/actual" */
	CONFIG_DAY_COUNT_ACTUAL_360,     /* "actual/360" */
};

/* log.level (stored in an int field). */
enum config_log_level {
	CONFIG_LOG_DEBUG = 0,
	CONFIG_LOG_INFO,
	CONFIG_LOG_WARNING,
	CONFIG_LOG_ERROR,
};

/* A comma-separated list of integers, strictly increasing. May be empty (n == 0). */
struct config_int_list {
	int *v;
	size_t n;
};

struct config_token {
	char *name;               /* section name after "token."; the audit actor */
	char sha256_hex[65];      /* lowercase hex of SHA-256(secret) */
	unsigned char sha256[32]; /* the same, decoded */
	unsigned scopes;          /* SCOPE_* bits, at least one */
};

struct config {
	/* [server] */
	char *listen_host; /* "127.0.0.1", "localhost" or "::1" (IPv6 without brackets) */
	int listen_port;   /* 1..65535 */
	size_t max_body_bytes;
	int max_connections;
	int request_timeout_seconds;

	/* [database] */
	char *database_conninfo; /* never log it */
	int pool_size;

	/* [billing] */
	char *billing_timezone;           /* IANA name, shape-checked only */
	int invoice_run_day;              /* 1..10 */
	int invoice_run_time;             /* minutes after midnight, 0..1439 */
	char *invoice_prefix;             /* [A-Z0-9-]{1,16} */
	char *credit_note_prefix;         /* [A-Z0-9-]{1,16} */
	int day_count;                    /* enum config_day_count */
	bool compensation;                /* fixed statutory compensation lines (R6.5) */
	int32_t default_contractual_rate; /* units of 0.0001 % a year (12 % = 120000) */
	int default_payment_terms_days;

	/* [limits] */
	int limit_notice_days;
	struct config_int_list alert_thresholds; /* percent, each 1..100 */

	/* [usage] */
	int max_future_skew_seconds;
	int max_event_age_days;
	int max_batch_events;
	int batch_flush_events;
	int batch_flush_ms;
	int batch_queue_events;

	/* [overdue] */
	int overdue_suspend_after_days; /* 0 disables */
	struct config_int_list reminder_days;
	int inactivity_months;
	int reactivation_working_days;

	/* [webhook] */
	char *webhook_url;    /* "" = webhooks disabled; otherwise starts with http:// */
	char *webhook_secret; /* non-empty when webhook_url is; never log it */
	int webhook_max_attempts;
	int webhook_max_backoff_seconds;

	/* [log] */
	int log_level; /* enum config_log_level */

	/* [issuer]: the letterhead of invoices (R5.7), frozen into each invoice at
	 * issue (R5.5, sql/0034). "" = not configured; multi-line values hold
	 * '\n' between lines; issuer_name is set when any other one is. */
	char *issuer_name;
	char *issuer_address;              /* up to CONFIG_ISSUER_MAX_LINES lines */
	char *issuer_tax_id;               /* VAT or registration number */
	char *issuer_email;                /* one address: x@y, no spaces */
	char *issuer_payment_instructions; /* up to CONFIG_ISSUER_MAX_LINES lines */

	/* [token.NAME] sections, in file order */
	struct config_token *tokens;
	size_t ntokens;

	char *filename; /* as given to config_parse, for messages */
};

/*
 * Parse text (len bytes, need not be NUL-terminated) read from filename (used
 * only in messages). conninfo_override, when non-NULL, replaces
 * database.conninfo (and satisfies it when the file has none).
 *
 * On error returns NULL and writes one line (no newline) to errbuf:
 *   "<filename>:<line>: <section>.<key>: <problem>"
 *   "<filename>: <section>.<key>: missing required key"
 * Values of secret keys (database.conninfo, webhook.url, webhook.secret,
 * token sha256) are never echoed in messages.
 */
struct config *config_parse(const char *filename, const char *text, size_t len,
                            const char *conninfo_override, char *errbuf, size_t errlen);
void config_free(struct config *cfg);

/*
 * For SIGHUP: true if every key that differs between old and neu may be
 * changed by a reload; otherwise false, and errbuf names the first such key:
 * "server.listen: cannot be changed by reload; restart the daemon".
 */
bool config_reload_compatible(const struct config *old, const struct config *neu, char *errbuf,
                              size_t errlen);

/* The token whose hash is sha256, or NULL. Compares against every token in
 * constant time (no early exit). */
const struct config_token *config_find_token(const struct config *cfg,
                                             const unsigned char sha256[32]);

/* "read", "write", "ingest", "ops", "admin" for one SCOPE_* bit, else NULL. */
const char *config_scope_name(unsigned scope_bit);
/* Name of a billing.day_count / log.level value as written in the file, or NULL. */
const char *config_day_count_name(int day_count);
const char *config_log_level_name(int log_level);

/* Writes a Markdown reference of every key (key, type, default, reload,
 * meaning), for the README. */
void config_describe(FILE *out);

#endif
