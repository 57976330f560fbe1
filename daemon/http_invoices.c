/* http_invoices.c: invoices as JSON and printable HTML, credit notes. */
#include "http_invoices.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uuid/uuid.h>

#include "acache.h"
#include "app.h"
#include "civil.h"
#include "clock.h"
#include "config.h"
#include "db.h"
#include "http_format.h"
#include "http_util.h"
#include "jsonfield.h"
#include "money.h"
#include "tz.h"
#include "xmalloc.h"

#define MAX_NUMBER_LEN 64

/* The issuer (R5.7): as frozen into the invoice at issue (R5.5, sql/0034);
 * for an invoice issued before 0034 (NULL), the one the database holds now.
 * "" = not configured. */
#define ISSUER_COLUMNS                                                                             \
	"coalesce(i.issuer_name, cur.name, '') AS issuer_name, "                                   \
	"coalesce(i.issuer_address, cur.address, '') AS issuer_address, "                          \
	"coalesce(i.issuer_tax_id, cur.tax_id, '') AS issuer_tax_id, "                             \
	"coalesce(i.issuer_email, cur.email, '') AS issuer_email, "                                \
	"coalesce(i.issuer_payment_instructions, cur.payment_instructions, '') "                   \
	"AS issuer_payment_instructions "

/* One invoice per row; $1 is today in the billing zone (R1.5) for status and
 * days overdue. Lines and credit notes come as JSON arrays with integer
 * amounts in micro-units, formatted here with the currency's decimals. */
#define INVOICE_SELECT                                                                             \
	"SELECT v.* FROM (SELECT i.id, i.seq, i.number, i.kind, i.account_id, "                    \
	"i.customer_name AS account_name, a.external_ref, "                                        \
	"i.customer_jurisdiction AS jurisdiction, i.period AS period_date, "                       \
	"to_char(i.period, 'YYYY-MM') AS period, i.issue_date - date '1970-01-01' AS issue_day, "  \
	"creditd_due(i) - date '1970-01-01' AS due_day, "                                          \
	"i.due_date - date '1970-01-01' AS issued_due_day, i.currency, i.currency_exp, i.total, "  \
	"i.credit_applied + i.paid AS paid, i.credited, "                                          \
	"i.total - i.credit_applied - i.paid - i.credited AS balance, "                            \
	"CASE WHEN i.total - i.credit_applied - i.paid - i.credited <= 0 THEN 'paid' "             \
	"WHEN creditd_due(i) < $1::date THEN 'overdue' ELSE 'open' END AS status, "                \
	"CASE WHEN i.total - i.credit_applied - i.paid - i.credited > 0 AND creditd_due(i) < "     \
	"$1::date THEN $1::date - creditd_due(i) ELSE 0 END AS days_overdue, "                     \
	"i.accrued_interest, "                                                                     \
	"(SELECT json_agg(json_build_object('kind', l.kind, 'service', l.service, 'destination', " \
	"l.destination, 'period', to_char(l.period, 'YYYY-MM'), 'invoice', l.ref_invoice, "        \
	"'invoice_number', ri.number, 'quantity', l.quantity, 'unit_price', l.unit_price, "        \
	"'exact', l.exact, 'amount', l.amount, 'description', l.description) ORDER BY l.line_no) " \
	"FROM invoice_lines l LEFT JOIN invoices ri ON ri.id = l.ref_invoice "                     \
	"WHERE l.invoice_id = i.id)::text AS lines_json, "                                         \
	"(SELECT json_agg(json_build_object('id', c.id, 'number', c.number, 'amount', c.amount, "  \
	"'reason', c.reason, 'issued_us', creditd_us(c.issued_at)) ORDER BY c.issued_at, "         \
	"c.number) FROM credit_notes c WHERE c.invoice_id = i.id)::text AS "                       \
	"credit_notes_json, " ISSUER_COLUMNS                                                       \
	"FROM invoices i JOIN accounts a ON a.id = i.account_id "                                  \
	"LEFT JOIN invoice_issuer cur ON cur.id) v "

/* ---- JSON ---- */

static json_t *
inv_amount(int64_t v, int exp)
{
	char buf[MONEY_FMT_LEN];

	return json_string(money_format_fixed(v, exp, buf));
}

static json_t *
inv_amount_col(const PGresult *pg, int row, const char *name, int exp)
{
	return inv_amount(col_i64(pg, row, col(pg, name)), exp);
}

static int64_t
jint(const json_t *o, const char *key, bool *present)
{
	const json_t *v = json_object_get(o, key);

	*present = json_is_integer(v);
	return *present ? (int64_t)json_integer_value(v) : 0;
}

static void
copy_string(json_t *dst, const json_t *src, const char *key)
{
	const json_t *v = json_object_get(src, key);

	if (json_is_string(v))
		json_object_set_new(dst, key, json_string(json_string_value(v)));
}

/* One line (API.md): optional keys only when they apply. */
static json_t *
inv_line_json(const json_t *l, int exp)
{
	char buf[MONEY_FMT_LEN];
	json_t *o = json_object();
	bool has_q, has_u, has_e, has_a;
	int64_t q = jint(l, "quantity", &has_q);
	int64_t u = jint(l, "unit_price", &has_u);
	int64_t exact = jint(l, "exact", &has_e);
	int64_t amount = jint(l, "amount", &has_a);
	int64_t prod;

	copy_string(o, l, "kind");
	copy_string(o, l, "service");
	copy_string(o, l, "destination");
	copy_string(o, l, "period");
	copy_string(o, l, "invoice");
	copy_string(o, l, "invoice_number");
	if (has_q)
		json_object_set_new(o, "quantity", json_integer(q));
	/* a unit price is shown only where it is uniform and exact: quantity x
	 * unit price must give the line's exact sum */
	if (has_q && has_u && has_e && !__builtin_mul_overflow(q, u, &prod) && prod == exact)
		json_object_set_new(o, "unit_price", json_string(money_format(u, buf)));
	json_object_set_new(o, "amount", inv_amount(has_a ? amount : 0, exp));
	copy_string(o, l, "description");
	return o;
}

/* Text of lines separated by '\n' as a JSON array of strings ([] for ""). */
static json_t *
inv_lines_json(const char *s)
{
	json_t *a = json_array();

	while (*s != '\0') {
		size_t n = strcspn(s, "\n");
		json_array_append_new(a, json_stringn(s, n));
		s += n + (s[n] == '\n');
	}
	return a;
}

static json_t *
inv_text_or_null(const PGresult *pg, int row, const char *name)
{
	const char *v = PQgetvalue(pg, row, col(pg, name));

	return *v != '\0' ? json_string(v) : json_null();
}

/* "issuer": null when none is configured, else the details (the address and
 * payment instructions as lines). */
static json_t *
inv_issuer_json(const PGresult *pg, int row)
{
	const char *name = PQgetvalue(pg, row, col(pg, "issuer_name"));

	if (*name == '\0')
		return json_null();
	return json_pack(
	    "{s:s, s:o, s:o, s:o, s:o}", "name", name, "address",
	    inv_lines_json(PQgetvalue(pg, row, col(pg, "issuer_address"))), "tax_id",
	    inv_text_or_null(pg, row, "issuer_tax_id"), "email",
	    inv_text_or_null(pg, row, "issuer_email"), "payment_instructions",
	    inv_lines_json(PQgetvalue(pg, row, col(pg, "issuer_payment_instructions"))));
}

static json_t *
invoice_json(const PGresult *pg, int row)
{
	int exp = (int)col_i64(pg, row, col(pg, "currency_exp"));
	json_t *o = json_object(), *lines = json_array(), *cns = json_array(), *src;
	size_t i;
	json_t *v;

	json_object_set_new(o, "id", j_text_col(pg, row, col(pg, "id")));
	json_object_set_new(o, "number", j_text_col(pg, row, col(pg, "number")));
	json_object_set_new(o, "kind", j_text_col(pg, row, col(pg, "kind")));
	json_object_set_new(o, "account", j_text_col(pg, row, col(pg, "account_id")));
	json_object_set_new(o, "issuer", inv_issuer_json(pg, row));
	json_object_set_new(o, "customer",
	                    json_pack("{s:o, s:o, s:o}", "name",
	                              j_text_col(pg, row, col(pg, "account_name")), "external_ref",
	                              j_text_col(pg, row, col(pg, "external_ref")), "jurisdiction",
	                              j_text_col(pg, row, col(pg, "jurisdiction"))));
	json_object_set_new(o, "period", j_text_col(pg, row, col(pg, "period")));
	json_object_set_new(o, "issue_date", j_date_col(pg, row, col(pg, "issue_day")));
	json_object_set_new(o, "due_date", j_date_col(pg, row, col(pg, "due_day")));
	/* R5.6: termination brings the due date forward; the issued one stays */
	if (col_i64(pg, row, col(pg, "due_day")) != col_i64(pg, row, col(pg, "issued_due_day")))
		json_object_set_new(o, "issued_due_date",
		                    j_date_col(pg, row, col(pg, "issued_due_day")));
	json_object_set_new(o, "currency", j_text_col(pg, row, col(pg, "currency")));

	src = j_json_col(pg, row, col(pg, "lines_json"));
	json_array_foreach(src, i, v) json_array_append_new(lines, inv_line_json(v, exp));
	json_decref(src);
	json_object_set_new(o, "lines", lines);

	json_object_set_new(o, "total", inv_amount_col(pg, row, "total", exp));
	json_object_set_new(o, "paid", inv_amount_col(pg, row, "paid", exp));
	json_object_set_new(o, "credited", inv_amount_col(pg, row, "credited", exp));
	json_object_set_new(o, "balance", inv_amount_col(pg, row, "balance", exp));
	json_object_set_new(o, "status", j_text_col(pg, row, col(pg, "status")));
	json_object_set_new(o, "days_overdue", j_int_col(pg, row, col(pg, "days_overdue")));
	/* exact until posted (R6.3): shortest form, not rounded to the minor unit */
	json_object_set_new(o, "accrued_interest",
	                    j_money_col(pg, row, col(pg, "accrued_interest")));

	src = j_json_col(pg, row, col(pg, "credit_notes_json"));
	json_array_foreach(src, i, v)
	{
		char ts[CIVIL_TS_LEN];
		bool has_a, has_t;
		int64_t amount = jint(v, "amount", &has_a), at = jint(v, "issued_us", &has_t);
		json_t *c = json_object();

		copy_string(c, v, "id");
		copy_string(c, v, "number");
		json_object_set_new(c, "amount", inv_amount(amount, exp));
		copy_string(c, v, "reason");
		json_object_set_new(c, "issued_at",
		                    has_t && civil_format_rfc3339(at, ts) == 0 ? json_string(ts)
		                                                               : json_null());
		json_array_append_new(cns, c);
	}
	json_decref(src);
	json_object_set_new(o, "credit_notes", cns);
	return o;
}

/* ---- HTML (R5.7): plain HTML and CSS, no script, all text escaped ---- */

void
http_invoices_html_escape(struct evbuffer *out, const char *s, size_t len)
{
	size_t start = 0;

	for (size_t i = 0; i < len; i++) {
		const char *rep;
		switch (s[i]) {
		case '&':
			rep = "&amp;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '"':
			rep = "&quot;";
			break;
		case '\'':
			rep = "&#39;";
			break;
		default:
			continue;
		}
		evbuffer_add(out, s + start, i - start);
		evbuffer_add(out, rep, strlen(rep));
		start = i + 1;
	}
	evbuffer_add(out, s + start, len - start);
}

static void
html_text(struct evbuffer *out, const char *s)
{
	if (s)
		http_invoices_html_escape(out, s, strlen(s));
}

/* The string member `key` of o, escaped ("" when absent or not a string). */
static void
html_field(struct evbuffer *out, const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	if (json_is_string(v))
		html_text(out, json_string_value(v));
}

/* The strings of array member `key` of o, escaped, each after a <br>. */
static void
html_lines(struct evbuffer *out, const json_t *o, const char *key)
{
	const json_t *v;
	size_t i;

	json_array_foreach(json_object_get(o, key), i, v)
	{
		evbuffer_add_printf(out, "<br>");
		html_text(out, json_string_value(v));
	}
}

static const char *
str_of(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : "";
}

static void
html_row(struct evbuffer *out, const char *label, const json_t *o, const char *key)
{
	evbuffer_add_printf(out, "<tr><th>%s</th><td>", label);
	html_field(out, o, key);
	evbuffer_add_printf(out, "</td></tr>\n");
}

static void
html_total_row(struct evbuffer *out, const char *label, const json_t *inv, const char *key,
               const char *cls)
{
	evbuffer_add_printf(out, "<tr class=\"%s\"><th>%s</th><td class=\"num\">", cls, label);
	html_field(out, inv, "currency");
	evbuffer_add_printf(out, " ");
	html_field(out, inv, key);
	evbuffer_add_printf(out, "</td></tr>\n");
}

static const char html_style[] =
    "body{font-family:Helvetica,Arial,sans-serif;font-size:11pt;color:#111;margin:2em auto;"
    "max-width:48em}\n"
    "header{display:flex;justify-content:space-between;align-items:flex-start;"
    "border-bottom:2px solid #333;padding-bottom:1em;margin-bottom:1.5em}\n"
    "h1{font-size:18pt;margin:0}h2{font-size:11pt;margin:0 0 .3em;color:#555;"
    "text-transform:uppercase;letter-spacing:.05em}\n"
    ".parties{display:flex;justify-content:space-between;margin-bottom:1.5em}\n"
    "table{border-collapse:collapse}\n"
    "table.meta th{text-align:left;padding:.1em 1em .1em 0;font-weight:normal;color:#555}\n"
    "table.lines{width:100%;margin:1.5em 0}\n"
    "table.lines th,table.lines td{border-bottom:1px solid #ccc;padding:.35em .5em;"
    "text-align:left;vertical-align:top}\n"
    "table.lines th{background:#eee}\n"
    ".num{text-align:right!important;white-space:nowrap}\n"
    "table.totals{margin-left:auto}\n"
    "table.totals th{text-align:left;font-weight:normal;padding:.2em 2em .2em 0}\n"
    "table.totals tr.balance th,table.totals tr.balance td{font-weight:bold;"
    "border-top:2px solid #333}\n"
    ".payment{margin-top:2em;padding:1em;border:1px solid #999}\n"
    "@media print{body{margin:0}}\n";

static void
invoice_html(struct evbuffer *out, const json_t *inv)
{
	const json_t *cust = json_object_get(inv, "customer");
	const json_t *issuer = json_object_get(inv, "issuer");
	const json_t *lines = json_object_get(inv, "lines");
	const json_t *cns = json_object_get(inv, "credit_notes");
	const json_t *l;
	const char *balance;
	bool due_nothing;
	size_t i;

	evbuffer_add_printf(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta "
	                         "charset=\"utf-8\">\n<title>Invoice ");
	html_field(out, inv, "number");
	evbuffer_add_printf(out, "</title>\n<style>\n%s</style>\n</head>\n<body>\n", html_style);

	/* issuer (R5.7; none configured: no block, no placeholder) and title */
	evbuffer_add_printf(out, "<header>\n");
	if (json_is_object(issuer)) {
		evbuffer_add_printf(out, "<div class=\"issuer\"><strong>");
		html_field(out, issuer, "name");
		evbuffer_add_printf(out, "</strong>");
		html_lines(out, issuer, "address");
		if (json_is_string(json_object_get(issuer, "tax_id"))) {
			evbuffer_add_printf(out, "<br>VAT / tax ID: ");
			html_field(out, issuer, "tax_id");
		}
		if (json_is_string(json_object_get(issuer, "email"))) {
			evbuffer_add_printf(out, "<br>E-mail: ");
			html_field(out, issuer, "email");
		}
		evbuffer_add_printf(out, "</div>\n");
	}
	evbuffer_add_printf(out, "<h1>Invoice ");
	html_field(out, inv, "number");
	evbuffer_add_printf(out, "</h1>\n</header>\n");

	/* customer and invoice facts */
	evbuffer_add_printf(out, "<div class=\"parties\">\n<section class=\"customer\">\n"
	                         "<h2>Bill to</h2>\n<p><strong>");
	html_field(out, cust, "name");
	evbuffer_add_printf(out, "</strong><br>Customer reference: ");
	html_field(out, cust, "external_ref");
	evbuffer_add_printf(out, "<br>Jurisdiction: ");
	html_field(out, cust, "jurisdiction");
	evbuffer_add_printf(out, "</p>\n</section>\n<table class=\"meta\">\n");
	html_row(out, "Invoice number", inv, "number");
	html_row(out, "Billing period", inv, "period");
	html_row(out, "Issue date", inv, "issue_date");
	html_row(out, "Due date", inv, "due_date");
	html_row(out, "Currency", inv, "currency");
	html_row(out, "Status", inv, "status");
	evbuffer_add_printf(out, "</table>\n</div>\n");

	/* lines */
	evbuffer_add_printf(out, "<table class=\"lines\">\n<thead><tr><th>Description</th>"
	                         "<th class=\"num\">Quantity</th><th class=\"num\">Unit price</th>"
	                         "<th class=\"num\">Amount</th></tr></thead>\n<tbody>\n");
	json_array_foreach(lines, i, l)
	{
		const json_t *q = json_object_get(l, "quantity");
		evbuffer_add_printf(out, "<tr class=\"");
		html_field(out, l, "kind");
		evbuffer_add_printf(out, "\"><td>");
		html_field(out, l, "description");
		evbuffer_add_printf(out, "</td><td class=\"num\">");
		if (json_is_integer(q))
			evbuffer_add_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(q));
		evbuffer_add_printf(out, "</td><td class=\"num\">");
		html_field(out, l, "unit_price");
		evbuffer_add_printf(out, "</td><td class=\"num\">");
		html_field(out, l, "amount");
		evbuffer_add_printf(out, "</td></tr>\n");
	}
	evbuffer_add_printf(out, "</tbody>\n</table>\n");

	/* totals */
	evbuffer_add_printf(out, "<table class=\"totals\">\n");
	html_total_row(out, "Total", inv, "total", "total");
	html_total_row(out, "Paid", inv, "paid", "paid");
	html_total_row(out, "Credited", inv, "credited", "credited");
	html_total_row(out, "Balance due", inv, "balance", "balance");
	evbuffer_add_printf(out, "</table>\n");

	if (json_array_size(cns) > 0) {
		evbuffer_add_printf(out,
		                    "<h2>Credit notes</h2>\n<table class=\"lines\">\n<thead><tr>"
		                    "<th>Number</th><th>Issued</th><th>Reason</th>"
		                    "<th class=\"num\">Amount</th></tr></thead>\n<tbody>\n");
		json_array_foreach(cns, i, l)
		{
			evbuffer_add_printf(out, "<tr><td>");
			html_field(out, l, "number");
			evbuffer_add_printf(out, "</td><td>");
			html_field(out, l, "issued_at");
			evbuffer_add_printf(out, "</td><td>");
			html_field(out, l, "reason");
			evbuffer_add_printf(out, "</td><td class=\"num\">");
			html_field(out, l, "amount");
			evbuffer_add_printf(out, "</td></tr>\n");
		}
		evbuffer_add_printf(out, "</tbody>\n</table>\n");
	}

	/* payment reference: the invoice number. A balance of zero or below
	 * (a correcting line can make an invoice negative, R6.4) asks for
	 * nothing; below zero it is in the customer's favour. */
	balance = str_of(inv, "balance");
	due_nothing = *balance == '-' || balance[strspn(balance, "0.")] == '\0';
	if (due_nothing) {
		evbuffer_add_printf(out, "<p class=\"payment\">Nothing is due on this invoice.");
		if (*balance == '-' && balance[1 + strspn(balance + 1, "0.")] != '\0') {
			evbuffer_add_printf(out, " In your favour: ");
			html_field(out, inv, "currency");
			evbuffer_add_printf(out, " ");
			html_text(out, balance + 1);
			evbuffer_add_printf(out, ".");
		}
	} else {
		evbuffer_add_printf(out, "<p class=\"payment\">Please pay ");
		html_field(out, inv, "currency");
		evbuffer_add_printf(out, " ");
		html_text(out, balance);
		evbuffer_add_printf(out, " by ");
		html_field(out, inv, "due_date");
		evbuffer_add_printf(out, ".");
	}
	evbuffer_add_printf(out, "<br>Payment reference: <strong>");
	html_text(out, str_of(inv, "number"));
	evbuffer_add_printf(out, "</strong>");
	/* how to pay, when something is due */
	if (!due_nothing && json_is_object(issuer))
		html_lines(out, issuer, "payment_instructions");
	evbuffer_add_printf(out, "</p>\n</body>\n</html>\n");
}

/* ---- parameters ---- */

static void
today_param(char buf[CIVIL_DATE_LEN])
{
	civil_format_date(tz_day_of(clock_now()), buf);
}

/* An invoice in a path: its UUID or its number. False if it cannot be one
 * (answer 404). */
static bool
invoice_ref(const char *s, char id[37], const char **id_p, const char **number_p)
{
	uuid_t u;

	*id_p = *number_p = NULL;
	if (strlen(s) == 36 && uuid_parse(s, u) == 0) {
		uuid_unparse_lower(u, id);
		*id_p = id;
		return true;
	}
	if (*s == '\0' || strlen(s) > MAX_NUMBER_LEN || !jf_text_ok(s))
		return false;
	*number_p = s;
	return true;
}

/* ---- GET /v1/invoices ---- */

static void
invoices_list_cb(const struct db_result *res, void *arg)
{
	http_reply_page(arg, res, 0, invoice_json, "seq");
}

void
http_invoices_list(struct http_req *r)
{
	const char *account = http_req_query(r, "account");
	const char *period = http_req_query(r, "period");
	const char *status = http_req_query(r, "status");
	const char *acc_id = NULL, *acc_ext = NULL;
	char today[CIVIL_DATE_LEN], lim[16], cur[24], month[CIVIL_DATE_LEN];
	int limit;
	int64_t cursor;
	int32_t day;

	if (!http_paging(r, "cursor", &limit, &cursor))
		return;
	if (account && !account_ref(account, &acc_id, &acc_ext)) {
		http_reply_error(r, 400, "validation_failed",
		                 "account: must be a UUID or ext:<external_ref>", "account");
		return;
	}
	if (period) {
		snprintf(month, sizeof month, "%.7s-01", period);
		if (strlen(period) != 7 || civil_parse_date(month, strlen(month), &day) != 0) {
			http_reply_error(r, 400, "validation_failed", "period: must be YYYY-MM",
			                 "period");
			return;
		}
	}
	if (status && strcmp(status, "open") != 0 && strcmp(status, "paid") != 0 &&
	    strcmp(status, "overdue") != 0) {
		http_reply_error(r, 400, "validation_failed",
		                 "status: must be open, paid or overdue", "status");
		return;
	}
	today_param(today);
	snprintf(lim, sizeof lim, "%d", limit + 1);
	snprintf(cur, sizeof cur, "%" PRId64, cursor);
	const char *p[] = {today, cur, acc_id, acc_ext, period ? month : NULL, status, lim};
	struct db_batch *b = db_batch_new();
	db_batch_add(b,
	             INVOICE_SELECT
	             "WHERE v.seq > $2 AND ($3::uuid IS NULL OR v.account_id = $3) "
	             "AND ($4::text IS NULL OR v.external_ref = $4) "
	             "AND ($5::date IS NULL OR v.period_date = $5) "
	             "AND ($6::text IS NULL OR v.status = $6) ORDER BY v.seq LIMIT $7",
	             7, p);
	http_submit(r, b, invoices_list_cb);
}

/* ---- GET /v1/invoices/{id-or-number} ---- */

static void
invoice_reply(const struct db_result *res, struct http_req *r, bool html)
{
	const PGresult *pg;
	json_t *inv;

	if ((pg = http_result_found(r, res, 0, "invoice not found")) == NULL)
		return;
	inv = invoice_json(pg, 0);
	if (html) {
		struct evbuffer *out = evbuffer_new();
		invoice_html(out, inv);
		json_decref(inv);
		http_reply_buffer(r, 200, HTML_TYPE, out);
		evbuffer_free(out);
		return;
	}
	http_reply_json(r, 200, inv);
}

static void
invoice_get_json_cb(const struct db_result *res, void *arg)
{
	invoice_reply(res, arg, false);
}

static void
invoice_get_html_cb(const struct db_result *res, void *arg)
{
	invoice_reply(res, arg, true);
}

void
http_invoices_get(struct http_req *r)
{
	const char *id_p, *number_p;
	char id[37], today[CIVIL_DATE_LEN];
	int fmt;

	if ((fmt = http_req_format(r, "html", "text/html")) < 0)
		return;
	if (!invoice_ref(http_req_capture(r, 0), id, &id_p, &number_p)) {
		http_reply_error(r, 404, "not_found", "invoice not found", NULL);
		return;
	}
	today_param(today);
	const char *p[] = {today, id_p, number_p};
	struct db_batch *b = db_batch_new();
	db_batch_add(b, INVOICE_SELECT "WHERE v.id = $2::uuid OR v.number = $3", 3, p);
	http_submit(r, b, fmt == 1 ? invoice_get_html_cb : invoice_get_json_cb);
}

/* ---- POST /v1/invoices/{id-or-number}/credit-notes (R5.5) ---- */

static void
credit_note_cb(const struct db_result *res, void *arg)
{
	struct http_req *r = arg;
	const PGresult *cn, *acc;
	json_t *o;
	int exp;

	if (!db_result_ok(res)) {
		http_reply_db_error(r, res);
		return;
	}
	cn = db_result_get(res, 0);
	acc = db_result_get(res, 1);
	if (PQntuples(acc) == 1)
		acache_update(http_req_app(r)->acache, acc, 0); /* exposure went down */
	exp = (int)col_i64(cn, 0, col(cn, "currency_exp"));
	o = json_object();
	json_object_set_new(o, "id", j_text_col(cn, 0, col(cn, "id")));
	json_object_set_new(o, "number", j_text_col(cn, 0, col(cn, "number")));
	json_object_set_new(o, "invoice", j_text_col(cn, 0, col(cn, "invoice_id")));
	json_object_set_new(o, "invoice_number", j_text_col(cn, 0, col(cn, "invoice_number")));
	json_object_set_new(o, "account", j_text_col(cn, 0, col(cn, "account_id")));
	json_object_set_new(o, "currency", j_text_col(cn, 0, col(cn, "currency")));
	json_object_set_new(o, "amount", inv_amount_col(cn, 0, "amount", exp));
	json_object_set_new(o, "reason", j_text_col(cn, 0, col(cn, "reason")));
	json_object_set_new(o, "issued_at", j_ts_col(cn, 0, col(cn, "issued_us")));
	http_reply_json(r, 201, o);
}

void
http_invoices_credit_note(struct http_req *r)
{
	static const char *const allowed[] = {"amount", "reason", NULL};
	struct app *app = http_req_app(r);
	json_t *body = http_req_json_object(r);
	const char *reason, *id_p, *number_p;
	int64_t amount;
	struct jf_err e;
	char id[37], amt[24], issue[CIVIL_DATE_LEN], now[24], thr[THRESHOLDS_PARAM_LEN];
	int64_t t = clock_now();

	if (body == NULL)
		return;
	if (jf_only(body, allowed, &e) < 0 ||
	    jf_amount(body, "amount", true, false, NULL, &amount, &e) < 0 ||
	    jf_string(body, "reason", true, 1000, &reason, &e) < 0) {
		http_reply_validation(r, &e);
		return;
	}
	if (amount <= 0) {
		http_reply_error(r, 400, "validation_failed", "amount: must be greater than 0",
		                 "amount");
		return;
	}
	if (reason[strspn(reason, " \t\r\n")] == '\0') {
		http_reply_error(r, 400, "validation_failed", "reason: must not be empty",
		                 "reason");
		return;
	}
	if (!invoice_ref(http_req_capture(r, 0), id, &id_p, &number_p)) {
		http_reply_error(r, 404, "not_found", "invoice not found", NULL);
		return;
	}
	snprintf(amt, sizeof amt, "%" PRId64, amount);
	civil_format_date(tz_day_of(t), issue);
	usec_param(t, now);
	thresholds_param(app->cfg, thr);
	const char *p[] = {id_p,
	                   number_p,
	                   amt,
	                   reason,
	                   app->cfg->credit_note_prefix,
	                   issue,
	                   thr,
	                   now,
	                   http_req_actor(r),
	                   http_req_id(r)};
	struct db_batch *b = db_batch_new();
	db_batch_add(b,
	             "SELECT * FROM creditd_credit_note($1::uuid, $2, $3::bigint, $4, $5, "
	             "$6::date, $7::int[], creditd_ts($8), $9, $10)",
	             10, p);
	db_batch_add(b,
	             "SELECT * FROM account_view WHERE id = (SELECT account_id FROM invoices "
	             "WHERE id = $1::uuid OR number = $2)",
	             2, p);
	http_submit(r, b, credit_note_cb);
}
