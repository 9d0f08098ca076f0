/*
 * test_bounce.c - delivery status notifications (src/queue/bounce.c): who
 * gets one (NOTIFY=, <>, the double bounce) and what it looks like: the three
 * MIME parts, RET=HDRS and bounce_size_limit, and hostile remote replies that
 * must stay inside their one field.
 */
#include "check.h"
#include "queue/bounce.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

/* ---- dsn_wanted and dsn_target ---- */

static void test_wanted(void)
{
	static const struct {
		int line;
		const char *notify;
		bool failed, delayed, delivered, relayed;
	} rows[] = {
		{ __LINE__, NULL, true, true, false, false },
		{ __LINE__, "", true, true, false, false },
		{ __LINE__, "NEVER", false, false, false, false },
		{ __LINE__, "never", false, false, false, false },
		{ __LINE__, "SUCCESS", false, false, true, true },
		{ __LINE__, "FAILURE", true, false, false, false },
		{ __LINE__, "delay", false, true, false, false },
		{ __LINE__, "SUCCESS,FAILURE", true, false, true, true },
		{ __LINE__, "FAILURE,DELAY", true, true, false, false },
		{ __LINE__, "Delay,Failure,Success", true, true, true, true },
		/* malformed: the default, FAILURE,DELAY (a lost bounce is worse) */
		{ __LINE__, "NEVER,SUCCESS", true, true, false, false },
		{ __LINE__, "SUCCESS,NEVER", true, true, false, false },
		{ __LINE__, "BOGUS", true, true, false, false },
		{ __LINE__, "SUCCESS,", true, true, false, false },
		{ __LINE__, ",SUCCESS", true, true, false, false },
		{ __LINE__, "SUCCESS,,FAILURE", true, true, false, false },
		{ __LINE__, "SUCCESS,SUCCESS", true, true, false, false },
		{ __LINE__, "SUCCESS ", true, true, false, false },
		{ __LINE__, "SUCCESSFUL", true, true, false, false },
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		const char *n = rows[i].notify ? rows[i].notify : "(null)";
		CHECK_AT(rows[i].line, dsn_wanted(rows[i].notify, DSN_FAILED) == rows[i].failed,
			 "NOTIFY=%s failed", n);
		CHECK_AT(rows[i].line, dsn_wanted(rows[i].notify, DSN_DELAYED) == rows[i].delayed,
			 "NOTIFY=%s delayed", n);
		CHECK_AT(rows[i].line,
			 dsn_wanted(rows[i].notify, DSN_DELIVERED) == rows[i].delivered,
			 "NOTIFY=%s delivered", n);
		CHECK_AT(rows[i].line, dsn_wanted(rows[i].notify, DSN_RELAYED) == rows[i].relayed,
			 "NOTIFY=%s relayed", n);
	}
}

static void test_target(void)
{
	static const char *dbl = "double-bounce@mail.example.com";
	static const struct {
		int line;
		const char *sender, *notify;
		enum dsn_action action;
		enum dsn_target want;
	} rows[] = {
		{ __LINE__, "alice@example.com", NULL, DSN_FAILED, DSN_TO_SENDER },
		{ __LINE__, "alice@example.com", NULL, DSN_DELAYED, DSN_TO_SENDER },
		{ __LINE__, "alice@example.com", NULL, DSN_RELAYED, DSN_TO_NOBODY },
		{ __LINE__, "alice@example.com", "NEVER", DSN_FAILED, DSN_TO_NOBODY },
		{ __LINE__, "alice@example.com", "SUCCESS", DSN_DELIVERED, DSN_TO_SENDER },
		/* never to <>: a failed bounce goes to postmaster, once */
		{ __LINE__, "", NULL, DSN_FAILED, DSN_TO_POSTMASTER },
		{ __LINE__, NULL, NULL, DSN_FAILED, DSN_TO_POSTMASTER },
		{ __LINE__, "", "NEVER", DSN_FAILED, DSN_TO_POSTMASTER },
		{ __LINE__, "", NULL, DSN_DELAYED, DSN_TO_NOBODY },
		{ __LINE__, "", "SUCCESS", DSN_DELIVERED, DSN_TO_NOBODY },
		/* ... and a failed double bounce is dropped */
		{ __LINE__, "double-bounce@mail.example.com", NULL, DSN_FAILED, DSN_TO_NOBODY },
		{ __LINE__, "Double-Bounce@MAIL.example.com", NULL, DSN_FAILED, DSN_TO_NOBODY },
		{ __LINE__, "double-bounce@mail.example.com", NULL, DSN_DELAYED, DSN_TO_NOBODY },
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++)
		CHECK_AT(rows[i].line,
			 dsn_target(rows[i].sender, dbl, rows[i].notify, rows[i].action) ==
				 rows[i].want,
			 "target for sender %s", rows[i].sender ? rows[i].sender : "(null)");
	CHECK(dsn_target("alice@example.com", NULL, NULL, DSN_FAILED) == DSN_TO_SENDER,
	      "no double-bounce address configured");
}

/* ---- dsn_build ---- */

#define MSG_HEAD "From: Alice <alice@example.com>\r\nTo: bob@example.net\r\n" \
		 "Subject: hello\r\n\tfolded\r\nMessage-ID: <1@example.com>\r\n"
#define MSG_BODY "Hi Bob,\r\n\r\n--not a boundary\r\n.\r\n"
static const char msg[] = MSG_HEAD "\r\n" MSG_BODY;

static struct dsn_rcpt rcpt_failed(void)
{
	return (struct dsn_rcpt){
		.final_rcpt = "bob@example.net",
		.orig_rcpt = "Bob@example.net",
		.action = DSN_FAILED,
		.status = "5.1.1",
		.remote_mta = "mx.example.net",
		.diagnostic = "550 5.1.1 <bob@example.net>: Recipient address rejected: no such user",
		.last_attempt = 1000,
	};
}

static struct dsn_report report(const struct dsn_rcpt *rc, size_t n)
{
	return (struct dsn_report){
		.reporting_mta = "mail.example.com",
		.queue_id = "0000000000ABC123",
		.envid = "QQ314159",
		.sender = "alice@example.com",
		.to = "alice@example.com",
		.arrival = 1000 - 3600,
		.now = 1000,
		.size_limit = DSN_SIZE_LIMIT_DEFAULT,
		.rcpts = rc,
		.n_rcpts = n,
		.message = msg,
		.message_len = sizeof(msg) - 1,
	};
}

/* build - the DSN as a NUL-terminated string (caller frees); *eight = result. */
static char *build(const struct dsn_report *r, bool *eight)
{
	struct strbuf out;
	strbuf_init(&out);
	bool e = dsn_build(r, "MAILER-DAEMON@mail.example.com", &out);
	if (eight != NULL)
		*eight = e;
	return strbuf_steal(&out);
}

/* boundary_of - the boundary="..." of the top Content-Type, in buf. */
static const char *boundary_of(const char *dsn, char *buf, size_t size)
{
	const char *p = strstr(dsn, "boundary=\"");
	buf[0] = '\0';
	if (p == NULL)
		return buf;
	p += strlen("boundary=\"");
	size_t n = strcspn(p, "\"");
	if (n < size) {
		memcpy(buf, p, n);
		buf[n] = '\0';
	}
	return buf;
}

/* count_lines - lines exactly equal to want. */
static int count_lines(const char *dsn, const char *want)
{
	int n = 0;
	size_t wl = strlen(want);
	for (const char *p = dsn; *p != '\0';) {
		const char *e = strstr(p, "\r\n");
		size_t l = e != NULL ? (size_t)(e - p) : strlen(p);
		if (l == wl && memcmp(p, want, wl) == 0)
			n++;
		p += l + (e != NULL ? 2 : 0);
	}
	return n;
}

/* has_line_start - a line starts with prefix (a header it must not have). */
static bool has_line_start(const char *dsn, const char *prefix)
{
	size_t pl = strlen(prefix);
	if (strncmp(dsn, prefix, pl) == 0)
		return true;
	for (const char *p = strstr(dsn, "\n"); p != NULL; p = strstr(p + 1, "\n"))
		if (strncmp(p + 1, prefix, pl) == 0)
			return true;
	return false;
}

/* lines_ok - every line ends in CRLF (no bare CR or LF) and is at most max octets. */
static bool lines_ok(const char *s, size_t max)
{
	size_t col = 0;
	for (; *s != '\0'; s++) {
		if (*s == '\r' && s[1] == '\n') {
			col = 0;
			s++;
			continue;
		}
		if (*s == '\r' || *s == '\n' || ++col > max)
			return false;
	}
	return col == 0;
}

/* unfolded - the value of the first field called name (folding undone). */
static char *unfolded(const char *dsn, const char *name)
{
	struct strbuf v;
	strbuf_init(&v);
	char prefix[64];
	snprintf(prefix, sizeof(prefix), "\n%s: ", name);
	const char *p = strstr(dsn, prefix);
	if (p != NULL) {
		p += strlen(prefix);
		for (;;) {
			size_t l = strcspn(p, "\r");
			strbuf_append(&v, p, l);
			p += l;
			if (strncmp(p, "\r\n ", 3) != 0 && strncmp(p, "\r\n\t", 3) != 0)
				break;
			p += 2;
		}
	}
	return strbuf_steal(&v);
}

static void test_failed(void)
{
	struct dsn_rcpt rc = rcpt_failed();
	struct dsn_report r = report(&rc, 1);
	bool eight = true;
	char *dsn = build(&r, &eight), b[128], delim[140];
	boundary_of(dsn, b, sizeof(b));
	CHECK(b[0] != '\0', "a boundary");
	snprintf(delim, sizeof(delim), "--%s", b);
	CHECK(count_lines(dsn, delim) == 3, "three parts");
	strcat(delim, "--");
	CHECK(count_lines(dsn, delim) == 1, "one closing delimiter");
	CHECK(!eight, "7-bit original: 7-bit DSN");
	CHECK(lines_ok(dsn, 998), "CRLF line ends, no line over 998");
	static const char *const want[] = {
		"From: Mail Delivery System <MAILER-DAEMON@mail.example.com>",
		"To: <alice@example.com>",
		"Subject: Undelivered Mail Returned to Sender",
		"Date: Thu, 01 Jan 1970 00:16:40 +0000",
		"Auto-Submitted: auto-replied",
		"MIME-Version: 1.0",
		"Content-Type: multipart/report; report-type=delivery-status;",
		"Content-Type: message/delivery-status",
		"Content-Type: message/rfc822",
		"Content-Transfer-Encoding: 7bit",
		"This is the mail system at host mail.example.com.",
		"Reporting-MTA: dns; mail.example.com",
		"X-Relayguard-Queue-ID: 0000000000ABC123",
		"X-Relayguard-Sender: rfc822; alice@example.com",
		"Original-Envelope-Id: QQ314159",
		"Arrival-Date: Wed, 31 Dec 1969 23:16:40 +0000",
		"Final-Recipient: rfc822; bob@example.net",
		"Original-Recipient: rfc822; Bob@example.net",
		"Action: failed",
		"Status: 5.1.1",
		"Remote-MTA: dns; mx.example.net",
		"Last-Attempt-Date: Thu, 01 Jan 1970 00:16:40 +0000",
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(want); i++)
		CHECK(count_lines(dsn, want[i]) >= 1, "has the line \"%s\"", want[i]);
	char *diag = unfolded(dsn, "Diagnostic-Code");
	CHECK_STR_AT(__LINE__, diag, "smtp; 550 5.1.1 <bob@example.net>: Recipient address "
				     "rejected: no such user", "Diagnostic-Code");
	free(diag);
	CHECK(count_lines(dsn, "<bob@example.net> (expanded from <Bob@example.net>): host "
			       "mx.example.net said:") == 1 &&
		      count_lines(dsn, "    550 5.1.1 <bob@example.net>: Recipient address "
				       "rejected: no such user") == 1,
	      "human-readable recipient line, folded with an indent");
	CHECK(!has_line_start(dsn, "Will-Retry-Until:"), "no Will-Retry-Until for failed");
	/* the original, byte for byte, right before the closing delimiter */
	char tail[sizeof(msg) + 160];
	snprintf(tail, sizeof(tail), "\r\n\r\n%s\r\n--%s--\r\n", msg, b);
	size_t dl = strlen(dsn), tl = strlen(tail);
	CHECK(dl > tl && strcmp(dsn + dl - tl, tail) == 0, "whole original attached");
	free(dsn);
}

static void test_headers_only(void)
{
	struct dsn_rcpt rc = rcpt_failed();
	struct dsn_report r = report(&rc, 1);
	r.headers_only = true;
	char *dsn = build(&r, NULL), b[128], tail[512];
	boundary_of(dsn, b, sizeof(b));
	CHECK(count_lines(dsn, "Content-Type: text/rfc822-headers") == 1, "RET=HDRS: headers part");
	CHECK(count_lines(dsn, "Content-Description: Undelivered Message Headers") == 1,
	      "described as headers");
	CHECK(strstr(dsn, "Content-Type: message/rfc822") == NULL, "no message/rfc822");
	CHECK(strstr(dsn, "Hi Bob") == NULL, "RET=HDRS: no body text");
	snprintf(tail, sizeof(tail), "\r\n\r\n%s\r\n--%s--\r\n", MSG_HEAD, b);
	size_t dl = strlen(dsn), tl = strlen(tail);
	CHECK(dl > tl && strcmp(dsn + dl - tl, tail) == 0, "exactly the header block");
	free(dsn);
}

static void test_size_limit(void)
{
	static const struct {
		int line;
		size_t limit;
		bool whole;
		size_t head_len; /* expected included header bytes when not whole */
	} rows[] = {
		{ __LINE__, sizeof(msg) - 1, true, 0 },
		{ __LINE__, 0, true, 0 },          /* 0: no limit */
		{ __LINE__, sizeof(msg) - 2, false, sizeof(MSG_HEAD) - 1 },
		{ __LINE__, sizeof(MSG_HEAD) - 1, false, sizeof(MSG_HEAD) - 1 },
		/* the header block itself is over: whole fields only, never half a
		 * folded Subject nor half a CRLF */
		{ __LINE__, sizeof(MSG_HEAD) - 2, false,
		  sizeof("From: Alice <alice@example.com>\r\nTo: bob@example.net\r\n"
			 "Subject: hello\r\n\tfolded\r\n") - 1 },
		{ __LINE__, 60, false, sizeof("From: Alice <alice@example.com>\r\nTo: bob@example.net\r\n") - 1 },
		{ __LINE__, 58, false, sizeof("From: Alice <alice@example.com>\r\nTo: bob@example.net\r\n") - 1 },
		{ __LINE__, 75, false, sizeof("From: Alice <alice@example.com>\r\nTo: bob@example.net\r\n") - 1 },
		{ __LINE__, 53, false, sizeof("From: Alice <alice@example.com>\r\n") - 1 },
	};
	struct dsn_rcpt rc = rcpt_failed();
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		struct dsn_report r = report(&rc, 1);
		r.size_limit = rows[i].limit;
		char *dsn = build(&r, NULL), b[128], tail[512];
		boundary_of(dsn, b, sizeof(b));
		CHECK_AT(rows[i].line,
			 (strstr(dsn, "Content-Type: message/rfc822\r\n") != NULL) == rows[i].whole,
			 "limit %zu: whole=%d", rows[i].limit, rows[i].whole);
		if (!rows[i].whole) {
			snprintf(tail, sizeof(tail), "\r\n\r\n%.*s\r\n--%s--\r\n",
				 (int)rows[i].head_len, msg, b);
			size_t dl = strlen(dsn), tl = strlen(tail);
			CHECK_AT(rows[i].line, dl > tl && strcmp(dsn + dl - tl, tail) == 0,
				 "limit %zu: the first %zu header bytes", rows[i].limit,
				 rows[i].head_len);
			CHECK_AT(rows[i].line, strstr(dsn, "Hi Bob") == NULL, "no body");
		}
		free(dsn);
	}
}

static void test_hostile_values(void)
{
	struct dsn_rcpt rc = rcpt_failed();
	rc.diagnostic = "550 no such user\r\nX-Injected: yes\r\n\r\n--0000000000ABC123.1000.0/"
			"mail.example.com--\r\nContent-Type: text/html\n\x01\x7f\xc3\xa9 end";
	rc.final_rcpt = "bob@example.net\r\nBcc: victim@example.org";
	rc.remote_mta = "mx.example.net\r\nX-Evil: 1";
	struct dsn_report r = report(&rc, 1);
	r.envid = "id\r\nX-Envid-Evil: 1";
	r.sender = "alice@example.com\r\nX-Sender-Evil: 1";
	r.to = r.sender;
	char *dsn = build(&r, NULL), b[128];
	static const char *const evil[] = { "X-Injected", "Bcc", "X-Evil", "X-Envid-Evil",
					    "X-Sender-Evil", "Content-Type: text/html",
					    "--0000000000ABC123.1000.0/" };
	for (size_t i = 0; i < RG_ARRAY_LEN(evil); i++)
		CHECK(!has_line_start(dsn, evil[i]), "no line starts with %s", evil[i]);
	boundary_of(dsn, b, sizeof(b));
	CHECK(strcmp(b, "0000000000ABC123.1000.0/mail.example.com") != 0,
	      "a boundary found in the diagnostic is not used (%s)", b);
	char *diag = unfolded(dsn, "Diagnostic-Code");
	CHECK_STR_AT(__LINE__, diag,
		     "smtp; 550 no such user X-Injected: yes --0000000000ABC123.1000.0/"
		     "mail.example.com-- Content-Type: text/html ???? end", "Diagnostic-Code");
	free(diag);
	char *fr = unfolded(dsn, "Final-Recipient");
	CHECK_STR_AT(__LINE__, fr, "rfc822; bob@example.net Bcc: victim@example.org",
		     "Final-Recipient");
	free(fr);
	CHECK(lines_ok(dsn, 998), "CRLF line ends only");
	free(dsn);
}

static void test_boundary_not_in_message(void)
{
	/* the message holds the first two candidates */
	static const char evil[] = "Subject: x\r\n\r\n--0000000000ABC123.1000.0/mail.example.com\r\n"
				   "0000000000ABC123.1000.1/mail.example.com\r\n";
	struct dsn_rcpt rc = rcpt_failed();
	struct dsn_report r = report(&rc, 1);
	r.message = evil;
	r.message_len = sizeof(evil) - 1;
	char *dsn = build(&r, NULL), b[128];
	boundary_of(dsn, b, sizeof(b));
	CHECK(b[0] != '\0' && strstr(evil, b) == NULL, "boundary %s not in the message", b);
	CHECK(strlen(b) <= 70, "boundary at most 70 characters");
	free(dsn);
}

static void test_folding(void)
{
	struct strbuf diag;
	strbuf_init(&diag);
	strbuf_puts(&diag, "550 5.7.1");
	for (int i = 0; i < 60; i++)
		strbuf_puts(&diag, " word");
	struct dsn_rcpt rc = rcpt_failed();
	rc.diagnostic = diag.data;
	struct dsn_report r = report(&rc, 1);
	r.message = NULL;
	r.message_len = 0;
	char *dsn = build(&r, NULL), b[128], delim[140];
	CHECK(lines_ok(dsn, 78), "a long reply is folded at 78 octets");
	char *d = unfolded(dsn, "Diagnostic-Code");
	CHECK(strncmp(d, "smtp; ", 6) == 0 && strcmp(d + 6, diag.data) == 0,
	      "unfolding gives the reply back");
	free(d);
	snprintf(delim, sizeof(delim), "--%s", boundary_of(dsn, b, sizeof(b)));
	CHECK(count_lines(dsn, delim) == 2, "no message: no third part");
	free(dsn);
	strbuf_free(&diag);

	char giant[5001];
	memset(giant, 'x', sizeof(giant) - 1);
	giant[sizeof(giant) - 1] = '\0';
	rc.diagnostic = giant;
	dsn = build(&r, NULL);
	CHECK(lines_ok(dsn, 998), "a 5000-byte word is cut into lines of at most 998");
	CHECK(strstr(dsn, "xxx...") != NULL, "a giant reply is cut, visibly");
	free(dsn);
}

static void test_delayed(void)
{
	struct dsn_rcpt rc = rcpt_failed();
	rc.action = DSN_DELAYED;
	rc.status = "4.4.1";
	rc.remote_mta = NULL;
	rc.diagnostic = "connect to mx.example.net: Connection timed out";
	rc.will_retry_until = 1000 + 4 * 86400;
	struct dsn_report r = report(&rc, 1);
	char *dsn = build(&r, NULL);
	static const char *const want[] = {
		"Subject: Delayed Mail (still being retried)",
		"Action: delayed",
		"Status: 4.4.1",
		"Will-Retry-Until: Mon, 05 Jan 1970 00:16:40 +0000",
		"Diagnostic-Code: X-Relayguard; connect to mx.example.net: Connection timed out",
		"Content-Type: text/rfc822-headers",
		"Your message could not be delivered for 1 hour(s).",
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(want); i++)
		CHECK(count_lines(dsn, want[i]) == 1, "delayed: has \"%s\"", want[i]);
	CHECK(!has_line_start(dsn, "Remote-MTA:"), "no Remote-MTA without one");
	CHECK(strstr(dsn, "Hi Bob") == NULL, "a delay warning returns headers only");
	free(dsn);
}

static void test_status(void)
{
	static const struct {
		int line;
		enum dsn_action action;
		const char *status, *want;
	} rows[] = {
		{ __LINE__, DSN_FAILED, "5.1.1", "Status: 5.1.1" },
		{ __LINE__, DSN_FAILED, "4.4.1", "Status: 5.4.1" }, /* expired */
		{ __LINE__, DSN_FAILED, "5.123.456", "Status: 5.123.456" },
		{ __LINE__, DSN_FAILED, NULL, "Status: 5.0.0" },
		{ __LINE__, DSN_FAILED, "5.1", "Status: 5.0.0" },
		{ __LINE__, DSN_FAILED, "5.1.1\r\nX: y", "Status: 5.0.0" },
		{ __LINE__, DSN_FAILED, "5.1234.1", "Status: 5.0.0" },
		{ __LINE__, DSN_FAILED, "3.1.1", "Status: 5.0.0" },
		{ __LINE__, DSN_DELAYED, "5.4.7", "Status: 4.4.7" },
		{ __LINE__, DSN_DELAYED, "", "Status: 4.0.0" },
		{ __LINE__, DSN_RELAYED, "2.0.0", "Status: 2.0.0" },
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		struct dsn_rcpt rc = rcpt_failed();
		rc.action = rows[i].action;
		rc.status = rows[i].status;
		struct dsn_report r = report(&rc, 1);
		char *dsn = build(&r, NULL);
		CHECK_AT(rows[i].line, count_lines(dsn, rows[i].want) == 1, "want %s", rows[i].want);
		free(dsn);
	}
}

static void test_8bit_and_double_bounce(void)
{
	static const char m8[] = "Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve\r\n";
	struct dsn_rcpt rc = rcpt_failed();
	struct dsn_report r = report(&rc, 1);
	r.message = m8;
	r.message_len = sizeof(m8) - 1;
	bool eight = false;
	char *dsn = build(&r, &eight);
	CHECK(eight, "8-bit original: dsn_build says BODY=8BITMIME");
	CHECK(count_lines(dsn, "Content-Transfer-Encoding: 8bit") == 2, "top and part 3 are 8bit");
	CHECK(strstr(dsn, m8) != NULL, "8-bit bytes kept as they are");
	free(dsn);

	r = report(&rc, 1);
	r.sender = "";
	r.to = "postmaster";
	dsn = build(&r, NULL);
	CHECK(count_lines(dsn, "To: <postmaster>") == 1, "double bounce to postmaster");
	CHECK(count_lines(dsn, "Subject: Postmaster Copy: Undelivered Mail") == 1,
	      "double bounce subject");
	CHECK(!has_line_start(dsn, "X-Relayguard-Sender:"), "no sender field for <>");
	free(dsn);
}

int main(void)
{
	test_wanted();
	test_target();
	test_failed();
	test_headers_only();
	test_size_limit();
	test_hostile_values();
	test_boundary_not_in_message();
	test_folding();
	test_delayed();
	test_status();
	test_8bit_and_double_bounce();
	return check_summary("test_bounce");
}
