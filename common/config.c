/*
 * config.c: creditd's configuration parser.
 *
 * Every key is one row of cf_keys[] (PgBouncer's CF_ABS table): section, key,
 * type, default as text (NULL = required), whether SIGHUP may change it, where
 * it lives in struct config (or struct config_token for [token.NAME] keys),
 * the range of integers and the choices of enums. Defaults go through the same
 * value parsers as the file, so a default can never be out of range.
 */
#include "config.h"

#include "hexdigit.h"
#include "utf8.h"
#include "xmalloc.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum cf_type {
	CF_STRING,   /* char *, shape-checked by cf_key.shape */
	CF_INT,      /* int in [min, max] */
	CF_BOOL,     /* bool: true/false, yes/no, on/off, 1/0 */
	CF_ENUM,     /* int: index into choices */
	CF_INT_LIST, /* struct config_int_list: strictly increasing, each in [min, max] */
	CF_TIME,     /* int: HH:MM as minutes after midnight */
	CF_HOSTPORT, /* char * host at off, int port at off2 */
	CF_RATE,     /* int32_t: percent a year, 4 decimals, in units of 0.0001 % */
	CF_SIZE,     /* size_t: bytes, optional k/M/G suffix, in [min, max] */
	CF_SHA256,   /* token: hex at off (char[65]), bytes at off2 (unsigned char[32]) */
	CF_SCOPES,   /* token: unsigned SCOPE_* mask, at least one */
	CF_TEXT,     /* char *: issuer text, unescaped, max_len bytes, max_lines lines */
};

enum cf_shape {
	SHAPE_ANY,      /* anything, also empty */
	SHAPE_NONEMPTY, /* anything but empty */
	SHAPE_TIMEZONE, /* IANA name shape: [A-Za-z0-9_+/-], no "..", no leading '/' */
	SHAPE_PREFIX,   /* [A-Z0-9-]{1,16} */
	SHAPE_URL,      /* empty, or http://host... */
	SHAPE_EMAIL,    /* CF_TEXT: empty, or one address local@domain */
};

#define CF_RELOAD 0x1u /* SIGHUP may change it */
#define CF_SECRET 0x2u /* never echo the value in a message */
#define CF_TOKEN 0x4u  /* a key of [token.NAME]; offsets into struct config_token */

struct cf_key {
	const char *section; /* "server", ...; "token" for CF_TOKEN keys */
	const char *key;
	enum cf_type type;
	const char *def; /* default as written in the file; NULL = required */
	unsigned flags;
	size_t off;
	size_t off2;
	long long min, max;         /* CF_INT, CF_INT_LIST, CF_SIZE; CF_RATE in 0.0001 % units */
	const char *const *choices; /* CF_ENUM, NULL-terminated, in enum order */
	enum cf_shape shape;        /* CF_STRING, CF_TEXT */
	size_t max_len;             /* CF_TEXT: bytes after unescaping */
	int max_lines;              /* CF_TEXT: 1 = no line breaks */
	const char *doc;
};

static const char *const day_count_choices[] = {"actual/365", "actual/actual", "actual/360", NULL};
static const char *const log_level_choices[] = {"debug", "info", "warning", "error", NULL};
static const char *const scope_names[] = {"read", "write", "ingest", "ops", "admin"};
#define NSCOPES (sizeof(scope_names) / sizeof(scope_names[0]))

/* The non-token sections, in the order they are documented. */
static const char *const cf_sections[] = {"server",  "database", "billing", "limits", "usage",
                                          "overdue", "webhook",  "log",     "issuer"};
#define NSECTIONS (sizeof(cf_sections) / sizeof(cf_sections[0]))

#define G(f) offsetof(struct config, f)
#define T(f) offsetof(struct config_token, f)

/* One row per key: section, key, default (NULL = required), flags, field, ..., doc. */
#define K_INT(sec, name, dflt, fl, field, lo, hi, dc)                                              \
	{                                                                                          \
		.section = sec, .key = name, .type = CF_INT, .def = dflt, .flags = fl,             \
		.off = G(field), .min = lo, .max = hi, .doc = dc                                   \
	}
#define K_LIST(sec, name, dflt, fl, field, lo, hi, dc)                                             \
	{                                                                                          \
		.section = sec, .key = name, .type = CF_INT_LIST, .def = dflt, .flags = fl,        \
		.off = G(field), .min = lo, .max = hi, .doc = dc                                   \
	}
#define K_SIZE(sec, name, dflt, fl, field, lo, hi, dc)                                             \
	{                                                                                          \
		.section = sec, .key = name, .type = CF_SIZE, .def = dflt, .flags = fl,            \
		.off = G(field), .min = lo, .max = hi, .doc = dc                                   \
	}
#define K_RATE(sec, name, dflt, fl, field, lo, hi, dc)                                             \
	{                                                                                          \
		.section = sec, .key = name, .type = CF_RATE, .def = dflt, .flags = fl,            \
		.off = G(field), .min = lo, .max = hi, .doc = dc                                   \
	}
#define K_STR(sec, name, dflt, fl, field, shp, dc)                                                 \
	{                                                                                          \
		.section = sec, .key = name, .type = CF_STRING, .def = dflt, .flags = fl,          \
		.off = G(field), .shape = shp, .doc = dc                                           \
	}
#define K_ENUM(sec, name, dflt, fl, field, ch, dc)                                                 \
	{                                                                                          \
		.section = sec, .key = name, .type = CF_ENUM, .def = dflt, .flags = fl,            \
		.off = G(field), .choices = ch, .doc = dc                                          \
	}
#define K_BOOL(sec, name, dflt, fl, field, dc)                                                     \
	{                                                                                          \
		.section = sec, .key = name, .type = CF_BOOL, .def = dflt, .flags = fl,            \
		.off = G(field), .doc = dc                                                         \
	}
#define K_TIME(sec, name, dflt, fl, field, dc)                                                     \
	{                                                                                          \
		.section = sec, .key = name, .type = CF_TIME, .def = dflt, .flags = fl,            \
		.off = G(field), .doc = dc                                                         \
	}
#define K_TEXT(sec, name, fl, field, len, lines, shp, dc)                                          \
	{                                                                                          \
		.section = sec, .key = name, .type = CF_TEXT, .def = "", .flags = fl,              \
		.off = G(field), .shape = shp, .max_len = len, .max_lines = lines, .doc = dc       \
	}
#define NO_RELOAD 0u

static const struct cf_key cf_keys[] = {
    /* [server] */
    {.section = "server",
     .key = "listen",
     .type = CF_HOSTPORT,
     .def = NULL,
     .flags = NO_RELOAD,
     .off = G(listen_host),
     .off2 = G(listen_port),
     .doc = "address to listen on: IPv4:port, localhost:port or [IPv6]:port"},
    K_SIZE("server", "max_body_bytes", "8M", CF_RELOAD, max_body_bytes, 1024, 1073741824,
           "largest request body accepted (413 above); suffix k, M, G = KiB, MiB, GiB"),
    K_INT("server", "max_connections", "1024", NO_RELOAD, max_connections, 1, 100000,
          "concurrent HTTP connections; more are refused"),
    K_INT("server", "request_timeout_seconds", "30", CF_RELOAD, request_timeout_seconds, 1, 3600,
          "a request must arrive completely within this time from its first byte; idle "
          "kept-alive connections and clients that do not read their answer are closed "
          "after it"),

    /* [database] */
    K_STR("database", "conninfo", NULL, NO_RELOAD | CF_SECRET, database_conninfo, SHAPE_NONEMPTY,
          "libpq connection string; the environment variable CREDITD_DATABASE_CONNINFO "
          "overrides it (and may replace it)"),
    K_INT("database", "pool_size", "4", NO_RELOAD, pool_size, 1, 64, "database connections"),

    /* [billing] */
    K_STR("billing", "timezone", "UTC", NO_RELOAD, billing_timezone, SHAPE_TIMEZONE,
          "billing time zone (IANA name): months, invoice dates and the run time are in it"),
    K_INT("billing", "invoice_run_day", "1", CF_RELOAD, invoice_run_day, 1, 10,
          "day of the month on which the previous month is invoiced"),
    K_TIME("billing", "invoice_run_time", "02:00", CF_RELOAD, invoice_run_time,
           "time of day (HH:MM, billing time zone) of the invoice run"),
    K_STR("billing", "invoice_prefix", "INV", CF_RELOAD, invoice_prefix, SHAPE_PREFIX,
          "invoice number series prefix, 1-16 of A-Z 0-9 -"),
    K_STR("billing", "credit_note_prefix", "CN", CF_RELOAD, credit_note_prefix, SHAPE_PREFIX,
          "credit note number series prefix, 1-16 of A-Z 0-9 -, not the invoice prefix"),
    K_ENUM("billing", "day_count", "actual/365", CF_RELOAD, day_count, day_count_choices,
           "day count convention for late-payment interest"),
    K_BOOL("billing", "compensation", "false", CF_RELOAD, compensation,
           "add the fixed statutory compensation line per late invoice (R6.5)"),
    K_RATE("billing", "default_contractual_rate", "12", CF_RELOAD, default_contractual_rate, 0,
           1000000, "contractual interest rate of new accounts, percent a year, up to 4 decimals"),
    K_INT("billing", "default_payment_terms_days", "15", CF_RELOAD, default_payment_terms_days, 0,
          365, "payment terms of new accounts, days from issue to due date"),

    /* [limits] */
    K_INT("limits", "limit_notice_days", "7", CF_RELOAD, limit_notice_days, 0, 365,
          "notice period before a lowered credit limit takes effect"),
    K_LIST("limits", "alert_thresholds", "80,90", CF_RELOAD, alert_thresholds, 1, 100,
           "percentages of a limit that trigger an alert, increasing; empty = none"),

    /* [usage] */
    K_INT("usage", "max_future_skew_seconds", "300", CF_RELOAD, max_future_skew_seconds, 0, 86400,
          "how far in the future a usage event's time may be"),
    K_INT("usage", "max_event_age_days", "35", CF_RELOAD, max_event_age_days, 1, 3650,
          "how old a usage event may be"),
    K_INT("usage", "max_batch_events", "10000", CF_RELOAD, max_batch_events, 1, 1000000,
          "events per ingest request"),
    K_INT("usage", "batch_flush_events", "2000", CF_RELOAD, batch_flush_events, 1, 100000,
          "group commit: flush the open batch at this many events"),
    K_INT("usage", "batch_flush_ms", "2", CF_RELOAD, batch_flush_ms, 0, 10000,
          "group commit: or after this many milliseconds"),
    K_INT("usage", "batch_queue_events", "200000", CF_RELOAD, batch_queue_events, 1, 10000000,
          "events waiting for commit at most; ingest answers 503 when full"),

    /* [overdue] */
    K_INT("overdue", "overdue_suspend_after_days", "14", CF_RELOAD, overdue_suspend_after_days, 0,
          3650, "days overdue before an account is suspended; 0 disables"),
    K_LIST("overdue", "reminder_days", "1,7,14", CF_RELOAD, reminder_days, 1, 3650,
           "days overdue on which reminders go out, increasing; empty = none"),
    K_INT("overdue", "inactivity_months", "6", CF_RELOAD, inactivity_months, 0, 120,
          "months without usage before suspension for inactivity; 0 disables"),
    K_INT("overdue", "reactivation_working_days", "3", CF_RELOAD, reactivation_working_days, 0, 60,
          "working days from payment to reactivation (R6.7)"),

    /* [webhook] */
    K_STR("webhook", "url", "", CF_RELOAD | CF_SECRET, webhook_url, SHAPE_URL,
          "http:// URL that receives notifications; empty = disabled; https is not supported"),
    K_STR("webhook", "secret", "", CF_RELOAD | CF_SECRET, webhook_secret, SHAPE_ANY,
          "HMAC key for webhook signatures; required when url is set"),
    K_INT("webhook", "max_attempts", "20", CF_RELOAD, webhook_max_attempts, 1, 1000,
          "delivery attempts per notification"),
    K_INT("webhook", "max_backoff_seconds", "3600", CF_RELOAD, webhook_max_backoff_seconds, 1,
          86400, "longest wait between delivery attempts"),

    /* [log] */
    K_ENUM("log", "level", "info", CF_RELOAD, log_level, log_level_choices, "lowest level logged"),

    /* [issuer]: the invoice letterhead (R5.7). Reloadable: each invoice keeps
     * the details it was issued with (R5.5, sql/0034), new ones get the new. */
    K_TEXT("issuer", "name", CF_RELOAD, issuer_name, 200, 1, SHAPE_ANY,
           "name of the company issuing the invoices, at the head of the printable invoice; "
           "required when another issuer key is set; empty = no issuer block"),
    K_TEXT("issuer", "address", CF_RELOAD, issuer_address, 500, CONFIG_ISSUER_MAX_LINES, SHAPE_ANY,
           "postal address of the issuer, lines separated by `\\n`"),
    K_TEXT("issuer", "tax_id", CF_RELOAD, issuer_tax_id, 64, 1, SHAPE_ANY,
           "VAT or tax registration number of the issuer"),
    K_TEXT("issuer", "email", CF_RELOAD, issuer_email, 254, 1, SHAPE_EMAIL,
           "billing contact address shown on invoices"),
    K_TEXT("issuer", "payment_instructions", CF_RELOAD, issuer_payment_instructions, 1000,
           CONFIG_ISSUER_MAX_LINES, SHAPE_ANY,
           "how to pay (bank, IBAN, BIC), lines separated by `\\n`; the invoice number is "
           "printed as the payment reference"),

    /* [token.NAME], one per token; NAME is the audit actor. Tokens reload. */
    {.section = "token",
     .key = "sha256",
     .type = CF_SHA256,
     .def = NULL,
     .flags = CF_RELOAD | CF_SECRET | CF_TOKEN,
     .off = T(sha256_hex),
     .off2 = T(sha256),
     .doc = "hex SHA-256 of the bearer secret, e.g. from sha256sum"},
    {.section = "token",
     .key = "scopes",
     .type = CF_SCOPES,
     .def = NULL,
     .flags = CF_RELOAD | CF_TOKEN,
     .off = T(scopes),
     .doc = "comma list of read, write, ingest, ops, admin"},
};
#define NKEYS (sizeof(cf_keys) / sizeof(cf_keys[0]))

/* Parse state; lines are numbered from 1, 0 = not seen. */
struct token_state {
	size_t section_line;
	size_t key_line[NKEYS];
};

struct parser {
	const char *filename;
	char *errbuf;
	size_t errlen;
	struct config *cfg;
	size_t key_line[NKEYS];
	size_t section_line[NSECTIONS];
	struct token_state *tstate; /* parallel to cfg->tokens */
	int cur_section;            /* index into cf_sections, -1 = none */
	bool in_token;              /* in cfg->tokens[ntokens - 1] */
};

static void __attribute__((format(printf, 3, 4)))
set_error(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

/* "<filename>:<line>: <message>", or "<filename>: <message>" for line 0. */
static void __attribute__((format(printf, 3, 4)))
perr(struct parser *p, size_t line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (p->errbuf == NULL || p->errlen == 0)
		return;
	if (line != 0)
		n = snprintf(p->errbuf, p->errlen, "%s:%zu: ", p->filename, line);
	else
		n = snprintf(p->errbuf, p->errlen, "%s: ", p->filename);
	if (n < 0 || (size_t)n >= p->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(p->errbuf + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

/* ---- small character helpers (ASCII, locale-independent) ---- */

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alnum(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t';
}

static bool
ascii_caseeq(const char *a, const char *b)
{
	for (; *a != '\0' && *b != '\0'; a++, b++) {
		char ca = *a, cb = *b;
		if (ca >= 'A' && ca <= 'Z')
			ca = (char)(ca - 'A' + 'a');
		if (cb >= 'A' && cb <= 'Z')
			cb = (char)(cb - 'A' + 'a');
		if (ca != cb)
			return false;
	}
	return *a == '\0' && *b == '\0';
}

/* Trims spaces and tabs at both ends of [*s, *s + *n). */
static void
trim(const char **s, size_t *n)
{
	while (*n > 0 && is_space(**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && is_space((*s)[*n - 1]))
		(*n)--;
}

/* Writes s (at most 64 bytes of it) to dst, with " \ and non-ASCII escaped. */
#define ECHO_MAX 64
#define ECHO_BUF (ECHO_MAX * 4 + 8)
static const char *
echo(char *dst, size_t dstlen, const char *s, size_t n)
{
	size_t o = 0, i;

	for (i = 0; i < n && i < ECHO_MAX && o + 8 < dstlen; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			dst[o++] = '\\';
			dst[o++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			o += (size_t)snprintf(dst + o, dstlen - o, "\\x%02x", c);
		} else {
			dst[o++] = (char)c;
		}
	}
	if (i < n && o + 4 <= dstlen) {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
	return dst;
}

/* ---- value parsers: true on success; they store only on success ---- */

/* [-]digits, no sign '+', no spaces; false on syntax error or overflow. */
static bool
parse_ll(const char *s, size_t n, long long *out)
{
	long long v = 0;
	bool neg = false;
	size_t i = 0;

	if (n > 0 && s[0] == '-') {
		neg = true;
		i = 1;
	}
	if (i == n)
		return false;
	for (; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (long long)(s[i] - '0'), &v))
			return false;
	}
	*out = neg ? -v : v;
	return true;
}

static bool
parse_int_range(const char *s, size_t n, long long min, long long max, long long *out)
{
	long long v;

	if (!parse_ll(s, n, &v) || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* "12", "8.25", "13.1250": percent a year, at most 4 decimals, in 0.0001 % units. */
static bool
parse_rate(const char *s, long long *out)
{
	long long ip = 0, frac = 0;
	int nd = 0;
	size_t i = 0;

	if (!is_digit(s[0]))
		return false;
	for (; is_digit(s[i]); i++) {
		if (__builtin_mul_overflow(ip, 10, &ip) ||
		    __builtin_add_overflow(ip, (long long)(s[i] - '0'), &ip))
			return false;
	}
	if (s[i] == '.') {
		for (i++; is_digit(s[i]); i++) {
			if (++nd > 4)
				return false;
			frac = frac * 10 + (s[i] - '0');
		}
		if (nd == 0)
			return false;
	}
	if (s[i] != '\0')
		return false;
	for (; nd < 4; nd++)
		frac *= 10;
	if (__builtin_mul_overflow(ip, 10000, &ip) || __builtin_add_overflow(ip, frac, &ip))
		return false;
	*out = ip;
	return true;
}

/* Formats 0.0001 % units as a decimal without trailing zeros. */
static void
format_rate(char *dst, size_t dstlen, long long units)
{
	long long ip = units / 10000, frac = units % 10000;
	int w = 4;

	if (frac == 0) {
		snprintf(dst, dstlen, "%lld", ip);
		return;
	}
	while (frac % 10 == 0) {
		frac /= 10;
		w--;
	}
	snprintf(dst, dstlen, "%lld.%0*lld", ip, w, frac);
}

/* digits with an optional k/K, M or G suffix (KiB, MiB, GiB). */
static bool
parse_size(const char *s, unsigned long long *out)
{
	unsigned long long v = 0, mult = 1;
	size_t i = 0;

	if (!is_digit(s[0]))
		return false;
	for (; is_digit(s[i]); i++) {
		if (__builtin_mul_overflow(v, 10ULL, &v) ||
		    __builtin_add_overflow(v, (unsigned long long)(s[i] - '0'), &v))
			return false;
	}
	switch (s[i]) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mult = 1ULL << 10;
		i++;
		break;
	case 'M':
		mult = 1ULL << 20;
		i++;
		break;
	case 'G':
		mult = 1ULL << 30;
		i++;
		break;
	default:
		return false;
	}
	if (s[i] != '\0' || __builtin_mul_overflow(v, mult, &v))
		return false;
	*out = v;
	return true;
}

static bool
parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (ascii_caseeq(s, yes[i])) {
			*out = true;
			return true;
		}
		if (ascii_caseeq(s, no[i])) {
			*out = false;
			return true;
		}
	}
	return false;
}

/* "HH:MM", 00:00..23:59, as minutes after midnight. */
static bool
parse_time(const char *s, int *out)
{
	int h, m;

	if (strlen(s) != 5 || !is_digit(s[0]) || !is_digit(s[1]) || s[2] != ':' ||
	    !is_digit(s[3]) || !is_digit(s[4]))
		return false;
	h = (s[0] - '0') * 10 + (s[1] - '0');
	m = (s[3] - '0') * 10 + (s[4] - '0');
	if (h > 23 || m > 59)
		return false;
	*out = h * 60 + m;
	return true;
}

/* "127.0.0.1:8080", "localhost:8080", "[::1]:8080"; the host is stored without brackets. */
static bool
parse_hostport(const char *s, char **host, int *port)
{
	char buf[INET6_ADDRSTRLEN + 1];
	const char *portstr;
	unsigned char addr[sizeof(struct in6_addr)];
	long long p;
	size_t hl;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':')
			return false;
		hl = (size_t)(rb - s - 1);
		if (hl == 0 || hl >= sizeof(buf))
			return false;
		memcpy(buf, s + 1, hl);
		buf[hl] = '\0';
		if (inet_pton(AF_INET6, buf, addr) != 1)
			return false;
		portstr = rb + 2;
	} else {
		const char *colon = strchr(s, ':');
		if (colon == NULL)
			return false;
		hl = (size_t)(colon - s);
		if (hl == 0 || hl >= sizeof(buf))
			return false;
		memcpy(buf, s, hl);
		buf[hl] = '\0';
		if (strcmp(buf, "localhost") != 0 && inet_pton(AF_INET, buf, addr) != 1)
			return false;
		portstr = colon + 1;
	}
	if (portstr[0] == '-' || strlen(portstr) > 5 ||
	    !parse_int_range(portstr, strlen(portstr), 1, 65535, &p))
		return false;
	*host = xstrdup(buf);
	*port = (int)p;
	return true;
}

/* A comma list of strictly increasing integers in [min, max]; "" = empty list. */
static bool
parse_int_list(const char *s, long long min, long long max, struct config_int_list *out)
{
	size_t n = 0, cap = 1, len = strlen(s);
	const char *p = s, *end = s + len;
	int *v;

	if (len == 0) {
		out->v = NULL;
		out->n = 0;
		return true;
	}
	for (const char *c = s; *c != '\0'; c++)
		cap += (*c == ',');
	v = xreallocarray(NULL, cap, sizeof(*v));
	for (;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *item = p;
		size_t il = (size_t)((comma != NULL ? comma : end) - p);
		long long x;

		trim(&item, &il);
		if (!parse_int_range(item, il, min, max, &x) || (n > 0 && x <= v[n - 1])) {
			free(v);
			return false;
		}
		v[n++] = (int)x;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	out->v = v;
	out->n = n;
	return true;
}

static bool
parse_sha256(const char *s, char hex[65], unsigned char bytes[32])
{
	if (strlen(s) != 64)
		return false;
	for (size_t i = 0; i < 64; i++) {
		if (hex_digit_value(s[i]) < 0)
			return false;
	}
	for (size_t i = 0; i < 32; i++)
		bytes[i] =
		    (unsigned char)(hex_digit_value(s[2 * i]) << 4 | hex_digit_value(s[2 * i + 1]));
	for (size_t i = 0; i < 64; i++)
		hex[i] = "0123456789abcdef"[(bytes[i / 2] >> (i % 2 == 0 ? 4 : 0)) & 0xf];
	hex[64] = '\0';
	return true;
}

static bool
valid_timezone(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 255 || s[0] == '/' || strstr(s, "..") != NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!is_alnum(c) && c != '_' && c != '+' && c != '/' && c != '-')
			return false;
	}
	return true;
}

static bool
valid_prefix(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 16)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]) && !(s[i] >= 'A' && s[i] <= 'Z') && s[i] != '-')
			return false;
	}
	return true;
}

static bool
valid_token_name(const char *s, size_t n)
{
	if (n == 0 || n > CONFIG_MAX_TOKEN_NAME)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
			return false;
	}
	return true;
}

/* ---- issuer text (CF_TEXT) ---- */

/* Control characters that have no place on a printed invoice: C0 (also tab;
 * '\n' is the line separator and checked by the caller), DEL, C1, the line
 * and paragraph separators, and the bidirectional embeddings, overrides and
 * isolates (they reorder what is shown: "Trojan Source"). */
static bool
is_text_control(unsigned cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
	       (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* One address, local@domain: both parts non-empty, one '@', no spaces and
 * none of the characters that would make it a list or a display name. */
static bool
valid_email(const char *s)
{
	const char *at = strchr(s, '@');

	if (at == NULL || at == s || at[1] == '\0' || strchr(at + 1, '@') != NULL)
		return false;
	return strpbrk(s, " <>()[],;:\"\\") == NULL;
}

/* Undoes the escapes of a CF_TEXT value into dst (at least strlen(s) + 1
 * bytes): \n (only when multi-line), \\, \# and \;. */
static bool
text_unescape(const struct cf_key *k, const char *s, char *dst, char *prob, size_t plen)
{
	char q[ECHO_BUF];
	size_t o = 0, el;

	for (size_t i = 0; s[i] != '\0'; i++) {
		if (s[i] != '\\') {
			dst[o++] = s[i];
			continue;
		}
		switch (s[++i]) {
		case 'n':
			if (k->max_lines <= 1) {
				snprintf(prob, plen, "must be one line (no \\n)");
				return false;
			}
			dst[o++] = '\n';
			break;
		case '\\':
		case '#':
		case ';':
			dst[o++] = s[i];
			break;
		case '\0':
			snprintf(prob, plen, "ends with a lone backslash (write \\\\ for one)");
			return false;
		default:
			el = utf8_seq((const unsigned char *)s + i);
			snprintf(prob, plen,
			         "unknown escape \"\\%s\" (allowed: \\n, \\\\, \\# and \\;)",
			         echo(q, sizeof(q), s + i, el > 0 ? el : 1));
			return false;
		}
	}
	dst[o] = '\0';
	return true;
}

/*
 * Parses issuer text s for key k (config.h): unescapes, checks UTF-8 and
 * control characters, trims each line, refuses empty lines, checks the
 * bounds. On success *out is the text, lines joined by '\n'.
 */
static bool
parse_text(const struct cf_key *k, const char *s, char **out, char *prob, size_t plen)
{
	size_t n = strlen(s), o = 0, nlines = 0;
	char *raw = xmalloc(n + 1), *res = xmalloc(n + 1), *line;

	if (!text_unescape(k, s, raw, prob, plen))
		goto fail;
	for (size_t i = 0, sl; raw[i] != '\0'; i += sl) {
		unsigned cp;

		if ((sl = utf8_decode((const unsigned char *)raw + i, &cp)) == 0) {
			snprintf(prob, plen, "must be valid UTF-8");
			goto fail;
		}
		if (cp != '\n' && is_text_control(cp)) {
			snprintf(prob, plen, "control character U+%04X is not allowed", cp);
			goto fail;
		}
	}
	/* one line at a time: trimmed, never empty (unless the whole value is) */
	line = raw;
	while (raw[0] != '\0') {
		char *nl = strchr(line, '\n');
		const char *t = line;
		size_t tl = nl != NULL ? (size_t)(nl - line) : strlen(line);

		trim(&t, &tl);
		nlines++;
		if (tl == 0) {
			snprintf(prob, plen, "line %zu is empty", nlines);
			goto fail;
		}
		if (o > 0)
			res[o++] = '\n';
		memcpy(res + o, t, tl);
		o += tl;
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	res[o] = '\0';
	if (nlines > (size_t)k->max_lines) {
		snprintf(prob, plen, "must have at most %d lines, has %zu", k->max_lines, nlines);
		goto fail;
	}
	if (o > k->max_len) {
		snprintf(prob, plen, "must be at most %zu bytes, is %zu", k->max_len, o);
		goto fail;
	}
	if (k->shape == SHAPE_EMAIL && o > 0 && !valid_email(res)) {
		snprintf(prob, plen, "must be one e-mail address such as billing@example.com");
		goto fail;
	}
	free(raw);
	*out = res;
	return true;
fail:
	free(raw);
	free(res);
	return false;
}

/* Checks a CF_STRING value; on failure writes the problem (without value). */
static bool
check_string(const struct cf_key *k, const char *s, char *prob, size_t plen)
{
	switch (k->shape) {
	case SHAPE_ANY:
		return true;
	case SHAPE_NONEMPTY:
		if (s[0] != '\0')
			return true;
		snprintf(prob, plen, "must not be empty");
		return false;
	case SHAPE_TIMEZONE:
		if (valid_timezone(s))
			return true;
		snprintf(prob, plen, "must be an IANA time zone name such as UTC or Europe/Berlin");
		return false;
	case SHAPE_PREFIX:
		if (valid_prefix(s))
			return true;
		snprintf(prob, plen, "must be 1 to 16 characters from A-Z, 0-9 and -");
		return false;
	case SHAPE_EMAIL: /* CF_TEXT only */
		return true;
	case SHAPE_URL:
		if (s[0] == '\0')
			return true;
		if (strncmp(s, "https://", 8) == 0) {
			snprintf(prob, plen,
			         "https:// is not supported; use an http:// URL (for example a "
			         "local TLS-terminating proxy)");
			return false;
		}
		if (strncmp(s, "http://", 7) != 0 || s[7] == '\0' || s[7] == '/') {
			snprintf(prob, plen, "must be empty (disabled) or an http:// URL");
			return false;
		}
		if (strpbrk(s, " \t") != NULL) {
			snprintf(prob, plen, "must not contain spaces");
			return false;
		}
		return true;
	}
	return false;
}

/*
 * Parses value s for key k into base (struct config or struct config_token).
 * On failure writes the problem to prob, quoting the value unless k is secret.
 */
static bool
parse_value(const struct cf_key *k, const char *s, void *base, char *prob, size_t plen)
{
	char *field = (char *)base + k->off;
	char q[ECHO_BUF], got[ECHO_BUF + 8];
	long long ll;

	if (k->flags & CF_SECRET)
		got[0] = '\0';
	else
		snprintf(got, sizeof(got), ", got \"%s\"", echo(q, sizeof(q), s, strlen(s)));

	switch (k->type) {
	case CF_STRING:
		if (!check_string(k, s, prob, plen)) {
			size_t used = strlen(prob);
			snprintf(prob + used, plen - used, "%s", got);
			return false;
		}
		free(*(char **)field);
		*(char **)field = xstrdup(s);
		return true;
	case CF_INT:
		if (!parse_int_range(s, strlen(s), k->min, k->max, &ll)) {
			snprintf(prob, plen, "must be an integer between %lld and %lld%s", k->min,
			         k->max, got);
			return false;
		}
		*(int *)field = (int)ll;
		return true;
	case CF_BOOL:
		if (!parse_bool(s, (bool *)field)) {
			snprintf(prob, plen, "must be true or false (or yes/no, on/off, 1/0)%s",
			         got);
			return false;
		}
		return true;
	case CF_ENUM:
		for (size_t i = 0; k->choices[i] != NULL; i++) {
			if (ascii_caseeq(s, k->choices[i])) {
				*(int *)field = (int)i;
				return true;
			}
		}
		{
			size_t used = (size_t)snprintf(prob, plen, "must be one of ");
			for (size_t i = 0; k->choices[i] != NULL && used < plen; i++)
				used += (size_t)snprintf(prob + used, plen - used, "%s%s",
				                         i > 0 ? ", " : "", k->choices[i]);
			if (used < plen)
				snprintf(prob + used, plen - used, "%s", got);
		}
		return false;
	case CF_INT_LIST: {
		struct config_int_list l;
		if (!parse_int_list(s, k->min, k->max, &l)) {
			snprintf(prob, plen,
			         "must be a comma-separated list of strictly increasing integers "
			         "between %lld and %lld%s",
			         k->min, k->max, got);
			return false;
		}
		free(((struct config_int_list *)(void *)field)->v);
		*(struct config_int_list *)(void *)field = l;
		return true;
	}
	case CF_TIME:
		if (!parse_time(s, (int *)field)) {
			snprintf(prob, plen,
			         "must be a time of day HH:MM between 00:00 and 23:59%s", got);
			return false;
		}
		return true;
	case CF_HOSTPORT: {
		char *host;
		int port;
		if (!parse_hostport(s, &host, &port)) {
			snprintf(prob, plen,
			         "must be host:port with an IPv4 address, localhost or [IPv6 "
			         "address] and a port between 1 and 65535%s",
			         got);
			return false;
		}
		free(*(char **)field);
		*(char **)field = host;
		*(int *)(void *)((char *)base + k->off2) = port;
		return true;
	}
	case CF_RATE: {
		char lo[32], hi[32];
		if (!parse_rate(s, &ll) || ll < k->min || ll > k->max) {
			format_rate(lo, sizeof(lo), k->min);
			format_rate(hi, sizeof(hi), k->max);
			snprintf(prob, plen,
			         "must be a percentage between %s and %s with at most 4 decimals%s",
			         lo, hi, got);
			return false;
		}
		*(int32_t *)(void *)field = (int32_t)ll;
		return true;
	}
	case CF_SIZE: {
		unsigned long long v;
		if (!parse_size(s, &v) || v < (unsigned long long)k->min ||
		    v > (unsigned long long)k->max || v > SIZE_MAX) {
			snprintf(prob, plen,
			         "must be a size in bytes between %lld and %lld (suffix k, M or G "
			         "allowed)%s",
			         k->min, k->max, got);
			return false;
		}
		*(size_t *)(void *)field = (size_t)v;
		return true;
	}
	case CF_SHA256:
		if (!parse_sha256(s, field, (unsigned char *)base + k->off2)) {
			snprintf(prob, plen,
			         "must be the SHA-256 of the token secret as 64 hexadecimal "
			         "characters");
			return false;
		}
		return true;
	case CF_TEXT: {
		char *t;
		if (!parse_text(k, s, &t, prob, plen)) {
			size_t used = strlen(prob);
			snprintf(prob + used, plen - used, "%s", got);
			return false;
		}
		free(*(char **)field);
		*(char **)field = t;
		return true;
	}
	case CF_SCOPES: {
		unsigned mask = 0;
		const char *p = s, *end = s + strlen(s);
		for (;;) {
			const char *comma = memchr(p, ',', (size_t)(end - p));
			const char *item = p;
			size_t il = (size_t)((comma != NULL ? comma : end) - p), i;

			trim(&item, &il);
			if (il == 0 && comma == NULL && mask == 0) {
				snprintf(prob, plen,
				         "must list at least one of read, write, ingest, ops, "
				         "admin");
				return false;
			}
			for (i = 0; i < NSCOPES; i++) {
				if (strlen(scope_names[i]) == il &&
				    memcmp(scope_names[i], item, il) == 0)
					break;
			}
			if (i == NSCOPES) {
				snprintf(prob, plen,
				         "unknown scope \"%s\" (allowed: read, write, ingest, ops, "
				         "admin)",
				         echo(q, sizeof(q), item, il));
				return false;
			}
			if (mask & (1u << i)) {
				snprintf(prob, plen, "scope \"%s\" listed twice", scope_names[i]);
				return false;
			}
			mask |= 1u << i;
			if (comma == NULL)
				break;
			p = comma + 1;
		}
		*(unsigned *)(void *)field = mask;
		return true;
	}
	}
	snprintf(prob, plen, "internal error: unknown type");
	return false;
}

/* ---- the line parser ---- */

static int
find_section(const char *name, size_t n)
{
	for (size_t i = 0; i < NSECTIONS; i++) {
		if (strlen(cf_sections[i]) == n && memcmp(cf_sections[i], name, n) == 0)
			return (int)i;
	}
	return -1;
}

static int
find_key(const char *section, bool token, const char *key, size_t n)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct cf_key *k = &cf_keys[i];
		if (((k->flags & CF_TOKEN) != 0) != token)
			continue;
		if (!token && strcmp(k->section, section) != 0)
			continue;
		if (strlen(k->key) == n && memcmp(k->key, key, n) == 0)
			return (int)i;
	}
	return -1;
}

static int
section_header(struct parser *p, const char *s, size_t n, size_t line)
{
	struct config *cfg = p->cfg;
	char q[ECHO_BUF];
	const char *name;
	size_t nl;
	int si;

	if (n < 2 || s[n - 1] != ']') {
		perr(p, line, "syntax error: expected [section]");
		return -1;
	}
	name = s + 1;
	nl = n - 2;
	trim(&name, &nl);
	if (nl == 0) {
		perr(p, line, "syntax error: expected [section]");
		return -1;
	}
	if (nl >= 6 && memcmp(name, "token.", 6) == 0) {
		const char *tn = name + 6;
		size_t tl = nl - 6;
		if (!valid_token_name(tn, tl)) {
			perr(
			    p, line,
			    "[%s]: invalid token name (1 to %d characters from A-Z, a-z, 0-9, _, . "
			    "and -)",
			    echo(q, sizeof(q), name, nl), CONFIG_MAX_TOKEN_NAME);
			return -1;
		}
		for (size_t i = 0; i < cfg->ntokens; i++) {
			if (strlen(cfg->tokens[i].name) == tl &&
			    memcmp(cfg->tokens[i].name, tn, tl) == 0) {
				perr(p, line,
				     "[token.%s]: duplicate token name (first on line %zu)",
				     cfg->tokens[i].name, p->tstate[i].section_line);
				return -1;
			}
		}
		cfg->tokens = xreallocarray(cfg->tokens, cfg->ntokens + 1, sizeof(*cfg->tokens));
		p->tstate = xreallocarray(p->tstate, cfg->ntokens + 1, sizeof(*p->tstate));
		memset(&cfg->tokens[cfg->ntokens], 0, sizeof(cfg->tokens[0]));
		memset(&p->tstate[cfg->ntokens], 0, sizeof(p->tstate[0]));
		cfg->tokens[cfg->ntokens].name = xstrndup(tn, tl);
		p->tstate[cfg->ntokens].section_line = line;
		cfg->ntokens++;
		p->in_token = true;
		p->cur_section = -1;
		return 0;
	}
	if (nl == 5 && memcmp(name, "token", 5) == 0) {
		perr(p, line, "[token]: a token section needs a name: [token.NAME]");
		return -1;
	}
	if ((si = find_section(name, nl)) < 0) {
		perr(p, line, "[%s]: unknown section", echo(q, sizeof(q), name, nl));
		return -1;
	}
	if (p->section_line[si] != 0) {
		perr(p, line, "[%s]: duplicate section (first on line %zu)", cf_sections[si],
		     p->section_line[si]);
		return -1;
	}
	p->section_line[si] = line;
	p->cur_section = si;
	p->in_token = false;
	return 0;
}

static int
key_value(struct parser *p, const char *s, size_t n, size_t line)
{
	struct config *cfg = p->cfg;
	const char *eq = memchr(s, '=', n), *key = s, *val;
	char value[CONFIG_MAX_LINE + 1], prob[1024], secname[CONFIG_MAX_TOKEN_NAME + 8];
	size_t kl, vl, *seen;
	void *base;
	int ki;

	if (eq == NULL) {
		perr(p, line, "syntax error: expected key = value");
		return -1;
	}
	kl = (size_t)(eq - s);
	trim(&key, &kl);
	val = eq + 1;
	vl = (size_t)(s + n - val);
	trim(&val, &vl);
	if (kl == 0) {
		perr(p, line, "syntax error: expected key = value");
		return -1;
	}
	for (size_t i = 0; i < kl; i++) {
		if (!is_alnum(key[i]) && key[i] != '_') {
			perr(p, line, "syntax error: expected key = value");
			return -1;
		}
	}
	if (!p->in_token && p->cur_section < 0) {
		perr(p, line, "%.*s: key before any [section] header", (int)(kl > 64 ? 64 : kl),
		     key);
		return -1;
	}
	if (p->in_token) {
		struct config_token *t = &cfg->tokens[cfg->ntokens - 1];
		snprintf(secname, sizeof(secname), "token.%s", t->name);
		base = t;
		ki = find_key(NULL, true, key, kl);
		seen = p->tstate[cfg->ntokens - 1].key_line;
	} else {
		snprintf(secname, sizeof(secname), "%s", cf_sections[p->cur_section]);
		base = cfg;
		ki = find_key(secname, false, key, kl);
		seen = p->key_line;
	}
	if (ki < 0) {
		perr(p, line, "%s.%.*s: unknown key", secname, (int)(kl > 64 ? 64 : kl), key);
		return -1;
	}
	if (seen[ki] != 0) {
		perr(p, line, "%s.%s: duplicate key (first on line %zu)", secname, cf_keys[ki].key,
		     seen[ki]);
		return -1;
	}
	seen[ki] = line;
	memcpy(value, val, vl);
	value[vl] = '\0';
	if (!parse_value(&cf_keys[ki], value, base, prob, sizeof(prob))) {
		perr(p, line, "%s.%s: %s", secname, cf_keys[ki].key, prob);
		return -1;
	}
	return 0;
}

/* One line without its terminator, NUL-terminated, at most CONFIG_MAX_LINE bytes. */
static int
parse_line(struct parser *p, char *buf, size_t n, size_t line)
{
	const char *s = buf;

	trim(&s, &n);
	if (n == 0 || s[0] == '#' || s[0] == ';')
		return 0;
	/* a trailing comment starts at # or ; after whitespace */
	for (size_t i = 1; i < n; i++) {
		if ((s[i] == '#' || s[i] == ';') && is_space(s[i - 1])) {
			n = i;
			break;
		}
	}
	trim(&s, &n);
	if (s[0] == '[')
		return section_header(p, s, n, line);
	return key_value(p, s, n, line);
}

/* Applies defaults and the override, checks required keys and cross-key rules. */
static int
finish(struct parser *p, const char *conninfo_override)
{
	struct config *cfg = p->cfg;
	char prob[1024];

	for (size_t i = 0; i < NKEYS; i++) {
		const struct cf_key *k = &cf_keys[i];

		if (k->flags & CF_TOKEN)
			continue;
		if (k->off == G(database_conninfo) && conninfo_override != NULL) {
			if (!parse_value(k, conninfo_override, cfg, prob, sizeof(prob))) {
				perr(p, 0, "%s.%s: %s (CREDITD_DATABASE_CONNINFO)", k->section,
				     k->key, prob);
				return -1;
			}
			continue;
		}
		if (p->key_line[i] != 0)
			continue;
		if (k->def == NULL) {
			perr(p, 0, "%s.%s: missing required key", k->section, k->key);
			return -1;
		}
		if (!parse_value(k, k->def, cfg, prob, sizeof(prob))) {
			perr(p, 0, "%s.%s: internal error: bad default: %s", k->section, k->key,
			     prob);
			return -1;
		}
	}
	for (size_t t = 0; t < cfg->ntokens; t++) {
		for (size_t i = 0; i < NKEYS; i++) {
			if (!(cf_keys[i].flags & CF_TOKEN) || p->tstate[t].key_line[i] != 0)
				continue;
			perr(p, p->tstate[t].section_line, "token.%s.%s: missing required key",
			     cfg->tokens[t].name, cf_keys[i].key);
			return -1;
		}
	}
	for (size_t t = 1; t < cfg->ntokens; t++) {
		for (size_t u = 0; u < t; u++) {
			if (memcmp(cfg->tokens[t].sha256, cfg->tokens[u].sha256, 32) != 0)
				continue;
			perr(p, p->tstate[t].key_line[find_key(NULL, true, "sha256", 6)],
			     "token.%s.sha256: same hash as token.%s", cfg->tokens[t].name,
			     cfg->tokens[u].name);
			return -1;
		}
	}
	/* R5.2: invoices and credit notes are two gap-free series; one prefix
	 * would make them share a counter and leave gaps in both */
	if (strcmp(cfg->invoice_prefix, cfg->credit_note_prefix) == 0) {
		size_t line = p->key_line[find_key("billing", false, "credit_note_prefix", 18)];
		if (line == 0)
			line = p->key_line[find_key("billing", false, "invoice_prefix", 14)];
		perr(p, line,
		     "billing.credit_note_prefix: must differ from billing.invoice_prefix");
		return -1;
	}
	/* R5.7: a letterhead needs the issuer's name; details without it
	 * would print an anonymous block */
	if (cfg->issuer_name[0] == '\0') {
		const struct {
			const char *key, *value;
		} others[] = {{"address", cfg->issuer_address},
		              {"tax_id", cfg->issuer_tax_id},
		              {"email", cfg->issuer_email},
		              {"payment_instructions", cfg->issuer_payment_instructions}};
		for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
			if (others[i].value[0] == '\0')
				continue;
			perr(p,
			     p->key_line[find_key("issuer", false, others[i].key,
			                          strlen(others[i].key))],
			     "issuer.name: required when issuer.%s is set", others[i].key);
			return -1;
		}
	}
	if (cfg->webhook_url[0] != '\0' && cfg->webhook_secret[0] == '\0') {
		perr(p, p->key_line[find_key("webhook", false, "url", 3)],
		     "webhook.secret: required when webhook.url is set");
		return -1;
	}
	return 0;
}

struct config *
config_parse(const char *filename, const char *text, size_t len, const char *conninfo_override,
             char *errbuf, size_t errlen)
{
	struct parser p;
	char buf[CONFIG_MAX_LINE + 1];
	size_t pos = 0, line = 0;
	int rc = 0;

	memset(&p, 0, sizeof(p));
	p.filename = filename != NULL ? filename : "config";
	p.errbuf = errbuf;
	p.errlen = errlen;
	p.cur_section = -1;
	p.cfg = xcalloc(1, sizeof(*p.cfg));
	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	if (text == NULL)
		len = 0;

	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		pos = 3; /* UTF-8 byte order mark */
	while (rc == 0 && pos < len) {
		const char *start = text + pos;
		const char *nl = memchr(start, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - start) : len - pos;

		line++;
		pos += n + (nl != NULL ? 1 : 0);
		if (n > 0 && start[n - 1] == '\r')
			n--;
		if (n > CONFIG_MAX_LINE) {
			perr(&p, line, "line too long (more than %d bytes)", CONFIG_MAX_LINE);
			rc = -1;
			break;
		}
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)start[i];
			if (c == '\0') {
				perr(&p, line, "NUL byte in line");
				rc = -1;
				break;
			}
			if ((c < 0x20 && c != '\t') || c == 0x7f) {
				perr(&p, line, "control character 0x%02x in line", c);
				rc = -1;
				break;
			}
		}
		if (rc != 0)
			break;
		memcpy(buf, start, n);
		buf[n] = '\0';
		rc = parse_line(&p, buf, n, line);
	}
	if (rc == 0)
		rc = finish(&p, conninfo_override);
	free(p.tstate);
	if (rc != 0) {
		config_free(p.cfg);
		return NULL;
	}
	p.cfg->filename = xstrdup(p.filename);
	return p.cfg;
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct cf_key *k = &cf_keys[i];
		char *field = (char *)cfg + k->off;

		if (k->flags & CF_TOKEN)
			continue;
		switch (k->type) {
		case CF_STRING:
		case CF_TEXT:
		case CF_HOSTPORT:
			free(*(char **)field);
			break;
		case CF_INT_LIST:
			free(((struct config_int_list *)(void *)field)->v);
			break;
		default:
			break;
		}
	}
	for (size_t t = 0; t < cfg->ntokens; t++)
		free(cfg->tokens[t].name);
	free(cfg->tokens);
	free(cfg->filename);
	free(cfg);
}

static bool
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool
value_equal(const struct cf_key *k, const struct config *a, const struct config *b)
{
	const char *fa = (const char *)a + k->off, *fb = (const char *)b + k->off;

	switch (k->type) {
	case CF_STRING:
	case CF_TEXT:
		return str_eq(*(char *const *)fa, *(char *const *)fb);
	case CF_HOSTPORT:
		return str_eq(*(char *const *)fa, *(char *const *)fb) &&
		       *(const int *)(const void *)((const char *)a + k->off2) ==
		           *(const int *)(const void *)((const char *)b + k->off2);
	case CF_INT:
	case CF_ENUM:
	case CF_TIME:
		return *(const int *)(const void *)fa == *(const int *)(const void *)fb;
	case CF_BOOL:
		return *(const bool *)fa == *(const bool *)fb;
	case CF_RATE:
		return *(const int32_t *)(const void *)fa == *(const int32_t *)(const void *)fb;
	case CF_SIZE:
		return *(const size_t *)(const void *)fa == *(const size_t *)(const void *)fb;
	case CF_INT_LIST: {
		const struct config_int_list *la = (const void *)fa, *lb = (const void *)fb;
		return la->n == lb->n &&
		       (la->n == 0 || memcmp(la->v, lb->v, la->n * sizeof(int)) == 0);
	}
	case CF_SHA256:
	case CF_SCOPES:
		return true; /* token keys, always reloadable */
	}
	return false;
}

bool
config_reload_compatible(const struct config *old, const struct config *neu, char *errbuf,
                         size_t errlen)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct cf_key *k = &cf_keys[i];

		if (k->flags & (CF_RELOAD | CF_TOKEN))
			continue;
		if (!value_equal(k, old, neu)) {
			set_error(errbuf, errlen,
			          "%s.%s: cannot be changed by reload; restart the daemon",
			          k->section, k->key);
			return false;
		}
	}
	return true;
}

const struct config_token *
config_find_token(const struct config *cfg, const unsigned char sha256[32])
{
	uintptr_t found = 0;

	if (cfg == NULL || sha256 == NULL)
		return NULL;
	for (size_t i = 0; i < cfg->ntokens; i++) {
		unsigned diff = 0;
		uintptr_t mask;

		for (size_t j = 0; j < 32; j++)
			diff |= (unsigned)(cfg->tokens[i].sha256[j] ^ sha256[j]);
		/* all ones when diff == 0, without a branch on the secret */
		mask = (uintptr_t)0 -
		       (uintptr_t)(((diff | (0u - diff)) >> (sizeof(diff) * CHAR_BIT - 1)) ^ 1u);
		found |= (uintptr_t)(const void *)&cfg->tokens[i] & mask;
	}
	return (const struct config_token *)(const void *)found;
}

const char *
config_scope_name(unsigned scope_bit)
{
	for (size_t i = 0; i < NSCOPES; i++) {
		if (scope_bit == 1u << i)
			return scope_names[i];
	}
	return NULL;
}

const char *
config_day_count_name(int day_count)
{
	if (day_count < 0 || day_count > CONFIG_DAY_COUNT_ACTUAL_360)
		return NULL;
	return day_count_choices[day_count];
}

const char *
config_log_level_name(int log_level)
{
	if (log_level < 0 || log_level > CONFIG_LOG_ERROR)
		return NULL;
	return log_level_choices[log_level];
}

static void
describe_type(FILE *out, const struct cf_key *k)
{
	char lo[32], hi[32];

	switch (k->type) {
	case CF_STRING:
		fputs(k->shape == SHAPE_URL ? "URL" : "string", out);
		break;
	case CF_INT:
		fprintf(out, "integer %lld..%lld", k->min, k->max);
		break;
	case CF_BOOL:
		fputs("boolean", out);
		break;
	case CF_ENUM:
		for (size_t i = 0; k->choices[i] != NULL; i++)
			fprintf(out, "%s`%s`", i > 0 ? ", " : "one of ", k->choices[i]);
		break;
	case CF_INT_LIST:
		fprintf(out, "list of integers %lld..%lld", k->min, k->max);
		break;
	case CF_TIME:
		fputs("time HH:MM", out);
		break;
	case CF_HOSTPORT:
		fputs("host:port", out);
		break;
	case CF_RATE:
		format_rate(lo, sizeof(lo), k->min);
		format_rate(hi, sizeof(hi), k->max);
		fprintf(out, "percent a year %s..%s", lo, hi);
		break;
	case CF_SIZE:
		fprintf(out, "size %lld..%lld bytes", k->min, k->max);
		break;
	case CF_SHA256:
		fputs("64 hex characters", out);
		break;
	case CF_SCOPES:
		fputs("list of scopes", out);
		break;
	case CF_TEXT:
		if (k->max_lines > 1)
			fprintf(out, "text, at most %d lines and %zu bytes", k->max_lines,
			        k->max_len);
		else
			fprintf(out, "%s, at most %zu bytes",
			        k->shape == SHAPE_EMAIL ? "e-mail address" : "text", k->max_len);
		break;
	}
}

void
config_describe(FILE *out)
{
	fputs("| key | type | default | reload | meaning |\n", out);
	fputs("|---|---|---|---|---|\n", out);
	for (size_t i = 0; i < NKEYS; i++) {
		const struct cf_key *k = &cf_keys[i];

		if (k->flags & CF_TOKEN)
			fprintf(out, "| `token.NAME.%s` | ", k->key);
		else
			fprintf(out, "| `%s.%s` | ", k->section, k->key);
		describe_type(out, k);
		if (k->def == NULL)
			fputs(" | required", out);
		else if (k->def[0] == '\0')
			fputs(" | empty", out);
		else
			fprintf(out, " | `%s`", k->def);
		fprintf(out, " | %s | %s |\n", (k->flags & CF_RELOAD) ? "yes" : "no", k->doc);
	}
	fputs("\nIssuer text (`issuer.*`) is UTF-8 without control characters; `\\n` starts a "
	      "new line where lines are allowed, and `\\\\`, `\\#` and `\\;` stand for `\\`, "
	      "`#` and `;` (a `#` or `;` after a space starts a comment). Each invoice keeps the "
	      "issuer it was issued with.\n",
	      out);
	fputs("\nOne `[token.NAME]` section per token (NAME: 1 to 64 of A-Z a-z 0-9 _ . -, "
	      "unique; it is the audit actor). No token section at all is valid: every "
	      "authenticated call then answers 401.\n",
	      out);
}
