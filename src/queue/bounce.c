/*
 * bounce.c - delivery status notifications (see bounce.h).
 *
 * The DSN is assembled top to bottom into one strbuf:
 *   top headers       From, To, Subject, Date, Message-ID, Auto-Submitted, MIME
 *   part 1            text/plain: the human-readable report
 *   part 2            message/delivery-status: per-message and per-recipient fields
 *   part 3            message/rfc822 (the whole original) or text/rfc822-headers
 * Values from outside pass through clean_append() (printable ASCII, one space
 * between words, bounded) and then append_folded() (lines of at most 78
 * octets where a space allows, never more than 998). The boundary is checked
 * against every input before use, so no included text can contain it.
 */
#include "queue/bounce.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define FOLD_WIDTH 78     /* fold at a space before this column */
#define LINE_HARD 998     /* RFC 5322 2.1.1: never longer, spaces or not */
#define VALUE_MAX 2000    /* a remote reply longer than this is cut ("...") */
#define TOKEN_MAX 64      /* queue id / host name in the boundary and Message-ID */
#define BOUNDARY_MAX 70   /* RFC 2046 5.1.1 */

/* ---- NOTIFY= and who gets the DSN ---- */

enum {
	NOTIFY_SUCCESS = 1,
	NOTIFY_FAILURE = 2,
	NOTIFY_DELAY = 4,
	NOTIFY_NEVER = 8,
	NOTIFY_DEFAULT = NOTIFY_FAILURE | NOTIFY_DELAY,
};

/* notify_word - the bit for one NOTIFY keyword, 0 for anything else. */
static int notify_word(const char *s, size_t n)
{
	static const struct { const char *word; int bit; } words[] = {
		{ "SUCCESS", NOTIFY_SUCCESS }, { "FAILURE", NOTIFY_FAILURE },
		{ "DELAY", NOTIFY_DELAY }, { "NEVER", NOTIFY_NEVER },
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(words); i++)
		if (strlen(words[i].word) == n && rg_strncasecmp(s, words[i].word, n) == 0)
			return words[i].bit;
	return 0;
}

/* notify_bits - RFC 3461 4.1: NEVER alone, or a list of the other three;
 * anything malformed falls back to the default (a lost bounce is worse). */
static int notify_bits(const char *notify)
{
	if (notify == NULL || *notify == '\0')
		return NOTIFY_DEFAULT;
	int bits = 0;
	for (const char *p = notify;; p++) {
		size_t n = strcspn(p, ",");
		int bit = notify_word(p, n);
		if (bit == 0 || (bits & bit) != 0)
			return NOTIFY_DEFAULT;
		bits |= bit;
		p += n;
		if (*p == '\0')
			break;
	}
	if ((bits & NOTIFY_NEVER) != 0 && bits != NOTIFY_NEVER)
		return NOTIFY_DEFAULT;
	return bits;
}

bool dsn_wanted(const char *notify, enum dsn_action action)
{
	int bits = notify_bits(notify);
	switch (action) {
	case DSN_FAILED:
		return (bits & NOTIFY_FAILURE) != 0;
	case DSN_DELAYED:
		return (bits & NOTIFY_DELAY) != 0;
	case DSN_DELIVERED:
	case DSN_RELAYED:
		return (bits & NOTIFY_SUCCESS) != 0;
	}
	return false;
}

enum dsn_target dsn_target(const char *sender, const char *double_bounce_sender,
			   const char *notify, enum dsn_action action)
{
	if (sender == NULL || *sender == '\0')
		return action == DSN_FAILED ? DSN_TO_POSTMASTER : DSN_TO_NOBODY;
	if (double_bounce_sender != NULL && rg_strcasecmp(sender, double_bounce_sender) == 0)
		return DSN_TO_NOBODY;
	return dsn_wanted(notify, action) ? DSN_TO_SENDER : DSN_TO_NOBODY;
}

const char *dsn_action_name(enum dsn_action action)
{
	switch (action) {
	case DSN_FAILED:
		return "failed";
	case DSN_DELAYED:
		return "delayed";
	case DSN_DELIVERED:
		return "delivered";
	case DSN_RELAYED:
		return "relayed";
	}
	return "failed";
}

/* ---- cleaning and folding untrusted values ---- */

/* clean_append - s as printable ASCII: CR, LF, TAB and runs of blanks become
 * one space, other control and 8-bit bytes '?', no leading or trailing space,
 * at most VALUE_MAX bytes. A multi-line SMTP reply thus becomes one line. */
static void clean_append(struct strbuf *out, const char *s)
{
	size_t start = out->len;
	bool space = false;
	for (; s != NULL && *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			space = out->len > start;
			continue;
		}
		if (out->len - start >= VALUE_MAX) {
			strbuf_puts(out, "...");
			return;
		}
		if (space)
			strbuf_append(out, " ", 1);
		space = false;
		char ch = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
		strbuf_append(out, &ch, 1);
	}
}

/* append_folded - clean text (single spaces) after `col` octets already on the
 * line: a space becomes CRLF+indent where the line would pass FOLD_WIDTH, and
 * a word that fits no line is cut at LINE_HARD. With indent " " a header
 * field unfolds to exactly the clean text. */
static void append_folded(struct strbuf *out, const char *text, size_t col, const char *indent)
{
	size_t ilen = strlen(indent);
	for (const char *p = text; *p != '\0';) {
		size_t w = strcspn(p, " ");
		if (p != text && col + 1 + w > FOLD_WIDTH) {
			strbuf_puts(out, "\r\n");
			strbuf_puts(out, indent);
			col = ilen;
		} else if (p != text) {
			strbuf_append(out, " ", 1);
			col++;
		}
		while (col + w > LINE_HARD) {
			size_t n = LINE_HARD - col;
			strbuf_append(out, p, n);
			p += n;
			w -= n;
			strbuf_puts(out, "\r\n");
			strbuf_puts(out, indent);
			col = ilen;
		}
		strbuf_append(out, p, w);
		col += w;
		p += w;
		if (*p == ' ')
			p++;
	}
}

/* put_field - "Name: prefix value suffix" with value cleaned and folded;
 * prefix and suffix are ours ("smtp; ", "<" and ">"). */
static void put_field(struct strbuf *out, const char *name, const char *prefix,
		      const char *value, const char *suffix)
{
	struct strbuf v;
	strbuf_init(&v);
	strbuf_puts(&v, prefix);
	clean_append(&v, value);
	strbuf_puts(&v, suffix);
	strbuf_printf(out, "%s:", name);
	if (v.len > 0) {
		strbuf_append(out, " ", 1);
		append_folded(out, v.data, strlen(name) + 2, " ");
	}
	strbuf_puts(out, "\r\n");
	strbuf_free(&v);
}

/* token - s reduced to [A-Za-z0-9.-], at most max bytes: safe in a
 * Message-ID and a MIME boundary whatever the configuration says. */
static void token(char *dst, size_t max, const char *s)
{
	size_t n = 0;
	for (; s != NULL && *s != '\0' && n + 1 < max; s++) {
		char c = *s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '-')
			dst[n++] = c;
	}
	dst[n] = '\0';
}

/* ---- dates ---- */

/* format_date - RFC 5322 3.3 in UTC; no strftime, whose names follow the locale. */
static void format_date(char *buf, size_t size, time_t t)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;
	if (gmtime_r(&t, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
	    tm.tm_mon > 11) {
		time_t zero = 0;
		gmtime_r(&zero, &tm);
	}
	snprintf(buf, size, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday],
		 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec);
}

static void put_date(struct strbuf *out, const char *name, time_t t)
{
	char date[64];
	format_date(date, sizeof(date), t);
	strbuf_printf(out, "%s: %s\r\n", name, date);
}

/* ---- the decisions behind the layout ---- */

/* worst_action - failed beats delayed beats success: it names the report. */
static enum dsn_action worst_action(const struct dsn_report *r)
{
	enum dsn_action worst = r->n_rcpts > 0 ? r->rcpts[0].action : DSN_FAILED;
	for (size_t i = 0; i < r->n_rcpts; i++) {
		if (r->rcpts[i].action == DSN_FAILED)
			return DSN_FAILED;
		if (r->rcpts[i].action == DSN_DELAYED)
			worst = DSN_DELAYED;
	}
	return worst;
}

/* skip_digits - past 1 to max digits at s, or NULL. */
static const char *skip_digits(const char *s, size_t max)
{
	size_t n = strspn(s, "0123456789");
	return n >= 1 && n <= max ? s + n : NULL;
}

/* status_ok - RFC 3463 2: class.subject.detail, class 2, 4 or 5, then 1-3 digits each. */
static bool status_ok(const char *s)
{
	if (s == NULL || s[0] == '\0' || strchr("245", s[0]) == NULL || s[1] != '.')
		return false;
	const char *p = skip_digits(s + 2, 3);
	if (p == NULL || *p != '.')
		return false;
	p = skip_digits(p + 1, 3);
	return p != NULL && *p == '\0';
}

/* status_code - rc->status with the class the action implies (an expired
 * 4.4.1 is reported failed as 5.4.1), or X.0.0 when it is not well-formed. */
static void status_code(char out[16], const struct dsn_rcpt *rc)
{
	char cls = rc->action == DSN_FAILED ? '5' : rc->action == DSN_DELAYED ? '4' : '2';
	if (status_ok(rc->status))
		snprintf(out, 16, "%c%s", cls, rc->status + 1);
	else
		snprintf(out, 16, "%c.0.0", cls);
}

/* header_line_ok - a field's first line: a name of printable non-colon octets, then ':'. */
static bool header_line_ok(const char *line, size_t n)
{
	size_t i = 0;
	while (i < n && line[i] > ' ' && line[i] < 0x7f && line[i] != ':')
		i++;
	return i > 0 && i < n && line[i] == ':';
}

/* header_section_len - how much of msg is its header block, whole lines only,
 * stopping at the blank line or at the first line that is not a header. With
 * limit > 0 a field that would pass the limit is left out whole (and so are
 * the ones after it), so a CRLF or a folded field is never split. */
static size_t header_section_len(const char *msg, size_t len, size_t limit)
{
	size_t off = 0, field_start = 0;
	while (off < len) {
		const char *nl = memchr(msg + off, '\n', len - off);
		if (nl == NULL)
			break;
		size_t n = (size_t)(nl - (msg + off)) + 1;
		bool cont = msg[off] == ' ' || msg[off] == '\t';
		if (n <= 2 && (n == 1 || msg[off] == '\r'))
			break;
		if (cont ? off == 0 : !header_line_ok(msg + off, n))
			break;
		if (!cont)
			field_start = off;
		if (limit > 0 && off + n > limit)
			return cont ? field_start : off;
		off += n;
	}
	return off;
}

static bool has_8bit(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return true;
	return false;
}

/* What part 3 carries: the whole original only for failures, without RET=HDRS,
 * within the size limit; otherwise its headers (RFC 3461 4.3: RET is about
 * failed DSNs; Postfix sends headers only for delays and oversized mail). */
struct included {
	bool whole;
	size_t len;
};

static struct included what_to_include(const struct dsn_report *r)
{
	struct included inc = { false, 0 };
	if (r->message == NULL || r->message_len == 0)
		return inc;
	inc.whole = worst_action(r) == DSN_FAILED && !r->headers_only &&
		    (r->size_limit == 0 || r->message_len <= r->size_limit);
	inc.len = inc.whole ? r->message_len
			    : header_section_len(r->message, r->message_len, r->size_limit);
	return inc;
}

/* ---- the boundary ---- */

static bool str_has(const char *s, const char *needle)
{
	return s != NULL && strstr(s, needle) != NULL;
}

/* boundary_used - does any text that goes into the DSN contain b? */
static bool boundary_used(const struct dsn_report *r, const char *from, size_t inc_len,
			  const char *b)
{
	if (inc_len > 0 && memmem(r->message, inc_len, b, strlen(b)) != NULL)
		return true;
	if (str_has(r->reporting_mta, b) || str_has(r->queue_id, b) || str_has(r->envid, b) ||
	    str_has(r->sender, b) || str_has(r->to, b) || str_has(from, b))
		return true;
	for (size_t i = 0; i < r->n_rcpts; i++) {
		const struct dsn_rcpt *rc = &r->rcpts[i];
		if (str_has(rc->final_rcpt, b) || str_has(rc->orig_rcpt, b) ||
		    str_has(rc->status, b) || str_has(rc->remote_mta, b) ||
		    str_has(rc->diagnostic, b))
			return true;
	}
	return false;
}

/* choose_boundary - queue id, time and a counter (and our host name as far as
 * room allows), bumped until no input contains it. Terminates: each input
 * holds finitely many candidates. */
static void choose_boundary(char out[BOUNDARY_MAX + 1], const struct dsn_report *r,
			    const char *from, size_t inc_len)
{
	char id[TOKEN_MAX], host[TOKEN_MAX];
	token(id, sizeof(id), r->queue_id);
	token(host, sizeof(host), r->reporting_mta);
	for (unsigned long n = 0;; n++) {
		snprintf(out, BOUNDARY_MAX + 1, "%s.%" PRIdMAX ".%lu/%s", id, (intmax_t)r->now, n,
			 host);
		if (!boundary_used(r, from, inc_len, out))
			return;
	}
}

/* ---- the parts ---- */

/* subject - by the worst action; a failed bounce is a postmaster copy. */
static const char *subject(const struct dsn_report *r)
{
	if (r->sender == NULL || r->sender[0] == '\0')
		return "Postmaster Copy: Undelivered Mail";
	switch (worst_action(r)) {
	case DSN_FAILED:
		return "Undelivered Mail Returned to Sender";
	case DSN_DELAYED:
		return "Delayed Mail (still being retried)";
	case DSN_DELIVERED:
	case DSN_RELAYED:
		break;
	}
	return "Successful Mail Delivery Report";
}

/* put_message_id - <YYYYMMDDhhmmss.QUEUEID.action@host>: one DSN per queue
 * id and action per second, which is as often as the queue manager makes them. */
static void put_message_id(struct strbuf *out, const struct dsn_report *r)
{
	char stamp[32], id[TOKEN_MAX], host[TOKEN_MAX];
	struct tm tm;
	time_t now = r->now;
	if (gmtime_r(&now, &tm) == NULL || strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm) == 0)
		rg_strlcpy(stamp, "0", sizeof(stamp));
	token(id, sizeof(id), r->queue_id);
	token(host, sizeof(host), r->reporting_mta);
	strbuf_printf(out, "Message-ID: <%s.%s.%s@%s>\r\n", stamp, id[0] ? id : "0",
		      dsn_action_name(worst_action(r)), host[0] ? host : "localhost");
}

/* put_top_headers - the DSN's own header and the MIME preamble. */
static void put_top_headers(struct strbuf *out, const struct dsn_report *r, const char *from,
			    const char *boundary, bool eight)
{
	put_field(out, "From", "Mail Delivery System <", from, ">");
	put_field(out, "To", "<", r->to != NULL ? r->to : r->sender, ">");
	strbuf_printf(out, "Subject: %s\r\n", subject(r));
	put_date(out, "Date", r->now);
	put_message_id(out, r);
	strbuf_puts(out, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
	strbuf_printf(out, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
			   "\tboundary=\"%s\"\r\n", boundary);
	strbuf_printf(out, "Content-Transfer-Encoding: %s\r\n\r\n", eight ? "8bit" : "7bit");
	strbuf_puts(out, "This is a MIME-encapsulated message.\r\n");
}

/* default_text - what the report says when there is no diagnostic. */
static const char *default_text(enum dsn_action action)
{
	switch (action) {
	case DSN_FAILED:
		return "delivery failed";
	case DSN_DELAYED:
		return "delivery temporarily failed";
	case DSN_DELIVERED:
		return "delivered to mailbox";
	case DSN_RELAYED:
		return "relayed to a server that does not send delivery notifications";
	}
	return "delivery failed";
}

/* put_rcpt_line - "<user@example.net>: host mx.example.net said: 550 ...",
 * folded with an indent, so no line of it can start a MIME boundary. */
static void put_rcpt_line(struct strbuf *out, const struct dsn_rcpt *rc)
{
	struct strbuf line;
	strbuf_init(&line);
	strbuf_puts(&line, "<");
	clean_append(&line, rc->final_rcpt);
	strbuf_puts(&line, ">");
	if (rc->orig_rcpt != NULL && rc->final_rcpt != NULL &&
	    strcmp(rc->orig_rcpt, rc->final_rcpt) != 0) {
		strbuf_puts(&line, " (expanded from <");
		clean_append(&line, rc->orig_rcpt);
		strbuf_puts(&line, ">)");
	}
	strbuf_puts(&line, ":");
	if (rc->remote_mta != NULL) {
		strbuf_puts(&line, " host ");
		clean_append(&line, rc->remote_mta);
		strbuf_puts(&line, " said:");
	}
	strbuf_puts(&line, " ");
	size_t before = line.len;
	clean_append(&line, rc->diagnostic);
	if (line.len == before)
		strbuf_puts(&line, default_text(rc->action));
	append_folded(out, line.data, 0, "    ");
	strbuf_puts(out, "\r\n\r\n");
	strbuf_free(&line);
}

/* put_intro - the paragraph above the recipient list, by the worst action. */
static void put_intro(struct strbuf *out, const struct dsn_report *r, struct included inc)
{
	enum dsn_action act = worst_action(r);
	const char *attached = inc.len == 0 ? "" : inc.whole ? " It is attached below."
							     : " Its headers are attached below.";
	if (r->sender == NULL || r->sender[0] == '\0') {
		strbuf_printf(out, "A delivery status notification (a bounce) could not be\r\n"
				   "delivered to its recipients listed below.%s\r\n", attached);
	} else if (act == DSN_FAILED) {
		strbuf_printf(out, "Your message could not be delivered to one or more\r\n"
				   "recipients, listed below.%s\r\n", attached);
	} else if (act == DSN_DELAYED) {
		time_t until = 0;
		for (size_t i = 0; i < r->n_rcpts; i++)
			if (r->rcpts[i].will_retry_until > until)
				until = r->rcpts[i].will_retry_until;
		intmax_t hours = r->now > r->arrival ? (intmax_t)(r->now - r->arrival) / 3600 : 0;
		strbuf_puts(out, "This is a warning only: you do not need to send your message again.\r\n\r\n");
		strbuf_printf(out, "Your message could not be delivered for %jd hour(s).\r\n", hours);
		if (until > 0) {
			char date[64];
			format_date(date, sizeof(date), until);
			strbuf_printf(out, "It will be tried again until %s.\r\n", date);
		}
	} else {
		strbuf_puts(out, "Your message was delivered to the recipients listed below,\r\n"
				 "as you asked with NOTIFY=SUCCESS.\r\n");
	}
}

/* put_human_part - part 1, in the style of Postfix's notices. */
static void put_human_part(struct strbuf *out, const struct dsn_report *r, struct included inc)
{
	strbuf_puts(out, "Content-Description: Notification\r\n"
			 "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	struct strbuf line;
	strbuf_init(&line);
	strbuf_puts(&line, "This is the mail system at host ");
	clean_append(&line, r->reporting_mta);
	strbuf_puts(&line, ".");
	append_folded(out, line.data, 0, "    ");
	strbuf_free(&line);
	strbuf_puts(out, "\r\n\r\n");
	put_intro(out, r, inc);
	strbuf_puts(out, "\r\nFor further assistance, please send mail to postmaster.\r\n"
			 "If you do so, please include this problem report.\r\n\r\n"
			 "                   The mail system\r\n\r\n");
	for (size_t i = 0; i < r->n_rcpts; i++)
		put_rcpt_line(out, &r->rcpts[i]);
}

/* put_rcpt_fields - one per-recipient block of RFC 3464 2.3. */
static void put_rcpt_fields(struct strbuf *out, const struct dsn_rcpt *rc)
{
	char status[16];
	status_code(status, rc);
	strbuf_puts(out, "\r\n");
	put_field(out, "Final-Recipient", "rfc822; ", rc->final_rcpt, "");
	if (rc->orig_rcpt != NULL)
		put_field(out, "Original-Recipient", "rfc822; ", rc->orig_rcpt, "");
	strbuf_printf(out, "Action: %s\r\nStatus: %s\r\n", dsn_action_name(rc->action), status);
	if (rc->remote_mta != NULL)
		put_field(out, "Remote-MTA", "dns; ", rc->remote_mta, "");
	if (rc->diagnostic != NULL)
		put_field(out, "Diagnostic-Code", rc->remote_mta != NULL ? "smtp; " : "X-Relayguard; ",
			  rc->diagnostic, "");
	if (rc->last_attempt > 0)
		put_date(out, "Last-Attempt-Date", rc->last_attempt);
	if (rc->action == DSN_DELAYED && rc->will_retry_until > 0)
		put_date(out, "Will-Retry-Until", rc->will_retry_until);
}

/* put_status_part - part 2: the per-message fields, then one block per recipient. */
static void put_status_part(struct strbuf *out, const struct dsn_report *r)
{
	strbuf_puts(out, "Content-Description: Delivery report\r\n"
			 "Content-Type: message/delivery-status\r\n\r\n");
	put_field(out, "Reporting-MTA", "dns; ", r->reporting_mta, "");
	put_field(out, "X-Relayguard-Queue-ID", "", r->queue_id, "");
	if (r->sender != NULL && r->sender[0] != '\0')
		put_field(out, "X-Relayguard-Sender", "rfc822; ", r->sender, "");
	if (r->envid != NULL)
		put_field(out, "Original-Envelope-Id", "", r->envid, "");
	put_date(out, "Arrival-Date", r->arrival);
	for (size_t i = 0; i < r->n_rcpts; i++)
		put_rcpt_fields(out, &r->rcpts[i]);
}

/* put_original_part - part 3: the original's bytes as they are (binary
 * transparency, like Postfix), declared 8bit when they need it. The CRLF
 * before the next boundary belongs to the boundary, so nothing is added. */
static void put_original_part(struct strbuf *out, const struct dsn_report *r,
			      struct included inc, bool eight)
{
	bool undelivered = worst_action(r) == DSN_FAILED || worst_action(r) == DSN_DELAYED;
	strbuf_printf(out, "Content-Description: %s%s\r\n", undelivered ? "Undelivered " : "",
		      inc.whole ? "Message" : "Message Headers");
	strbuf_printf(out, "Content-Type: %s\r\n",
		      inc.whole ? "message/rfc822" : "text/rfc822-headers");
	strbuf_printf(out, "Content-Transfer-Encoding: %s\r\n\r\n", eight ? "8bit" : "7bit");
	strbuf_append(out, r->message, inc.len);
}

bool dsn_build(const struct dsn_report *r, const char *from, struct strbuf *out)
{
	struct included inc = what_to_include(r);
	bool eight = inc.len > 0 && has_8bit(r->message, inc.len);
	char boundary[BOUNDARY_MAX + 1];
	choose_boundary(boundary, r, from, inc.len);
	put_top_headers(out, r, from, boundary, eight);
	strbuf_printf(out, "\r\n--%s\r\n", boundary);
	put_human_part(out, r, inc);
	strbuf_printf(out, "\r\n--%s\r\n", boundary);
	put_status_part(out, r);
	if (inc.len > 0) {
		strbuf_printf(out, "\r\n--%s\r\n", boundary);
		put_original_part(out, r, inc, eight);
	}
	strbuf_printf(out, "\r\n--%s--\r\n", boundary);
	return eight;
}
