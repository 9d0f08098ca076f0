/*
 * test_client.c - the SMTP client's pure parts, as tables: EHLO capability
 * parsing, dot-stuffing, xtext, and MAIL/RCPT command formatting with
 * SIZE, BODY, SMTPUTF8, RET, ENVID, NOTIFY and ORCPT.
 */
#include "check.h"
#include "client/dialogue.h"
#include "client/ehlo.h"

#include <stdlib.h>

static void test_caps(void)
{
	static const struct {
		int line;
		const char *reply;
		bool pipelining, starttls, eightbit, dsn, utf8, auth, plain, login, has_size;
		unsigned long long size;
	} rows[] = {
		{__LINE__, "250-mx.example.com\n250-PIPELINING\n250-SIZE 10240000\n250-STARTTLS\n"
			   "250-AUTH PLAIN LOGIN\n250-8BITMIME\n250-DSN\n250 SMTPUTF8",
		 true, true, true, true, true, true, true, true, true, 10240000},
		/* one line: the server's name only, no extensions */
		{__LINE__, "250 mx.example.com", false, false, false, false, false, false, false, false,
		 false, 0},
		/* keywords are case-insensitive; SIZE without a number has no limit */
		{__LINE__, "250-mx\n250-pipelining\n250 size", true, false, false, false, false, false,
		 false, false, true, 0},
		/* the old AUTH= form; only LOGIN */
		{__LINE__, "250-mx\n250 AUTH=LOGIN", false, false, false, false, false, true, false, true,
		 false, 0},
		/* AUTH with other mechanisms only */
		{__LINE__, "250-mx\n250 AUTH CRAM-MD5 XOAUTH2", false, false, false, false, false, true,
		 false, false, false, 0},
		/* a prefix is not the keyword: STARTTLSX, DSNX, SIZEX */
		{__LINE__, "250-mx\n250-STARTTLSX\n250-DSNX\n250 SIZEX 5", false, false, false, false,
		 false, false, false, false, false, 0},
		/* the first line names the server: "STARTTLS" there is not an offer */
		{__LINE__, "250-STARTTLS\n250 8BITMIME", false, false, true, false, false, false, false,
		 false, false, 0},
		/* junk and overflow in SIZE: no limit stated */
		{__LINE__, "250-mx\n250 SIZE 12abc", false, false, false, false, false, false, false,
		 false, true, 0},
		{__LINE__, "250-mx\n250 SIZE 99999999999999999999999", false, false, false, false, false,
		 false, false, false, true, 0},
		{__LINE__, "250-mx\n250 SIZE 18446744073709551615", false, false, false, false, false,
		 false, false, false, true, 18446744073709551615ULL},
		{__LINE__, "", false, false, false, false, false, false, false, false, false, 0},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct smtp_caps c;
		smtp_caps_parse(rows[i].reply, &c);
		int l = rows[i].line;
		CHECK_AT(l, c.pipelining == rows[i].pipelining, "pipelining");
		CHECK_AT(l, c.starttls == rows[i].starttls, "starttls");
		CHECK_AT(l, c.eightbitmime == rows[i].eightbit, "8bitmime");
		CHECK_AT(l, c.dsn == rows[i].dsn, "dsn");
		CHECK_AT(l, c.smtputf8 == rows[i].utf8, "smtputf8");
		CHECK_AT(l, c.auth == rows[i].auth, "auth");
		CHECK_AT(l, c.auth_plain == rows[i].plain, "auth plain");
		CHECK_AT(l, c.auth_login == rows[i].login, "auth login");
		CHECK_AT(l, c.has_size == rows[i].has_size, "has_size");
		CHECK_AT(l, c.size == rows[i].size, "size %llu", (unsigned long long)c.size);
	}
}

static void test_dot_stuff(void)
{
	static const struct {
		int line;
		const char *in, *want;
	} rows[] = {
		{__LINE__, "a\r\nb\r\n", "a\r\nb\r\n.\r\n"},
		{__LINE__, ".\r\n", "..\r\n.\r\n"},
		{__LINE__, ".a\r\n..b\r\nc.\r\n.", "..a\r\n...b\r\nc.\r\n..\r\n.\r\n"},
		/* no final CRLF: one is added, or the "." would not be a line of its own */
		{__LINE__, "no end", "no end\r\n.\r\n"},
		{__LINE__, "", ".\r\n"},
		/* after a bare LF too: a lenient receiver must not see an end of data */
		{__LINE__, "a\n.\r\nb\r\n", "a\n..\r\nb\r\n.\r\n"},
		/* a dot not at the start of a line is left alone */
		{__LINE__, "a.b\r\n x.\r\n", "a.b\r\n x.\r\n.\r\n"},
		{__LINE__, "\r\n.\r\n\r\n", "\r\n..\r\n\r\n.\r\n"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct strbuf sb;
		strbuf_init(&sb);
		smtp_dot_stuff(rows[i].in, strlen(rows[i].in), &sb);
		CHECK_STR_AT(rows[i].line, sb.data, rows[i].want, "stuffed");
		strbuf_free(&sb);
	}
}

static void test_xtext(void)
{
	static const struct {
		int line;
		const char *in, *want;
		size_t outlen;
	} rows[] = {
		{__LINE__, "user@example.com", "user@example.com", 64},
		{__LINE__, "a+b=c", "a+2Bb+3Dc", 64},
		{__LINE__, "sp ace", "sp+20ace", 64},
		{__LINE__, "\x7f\xc3\xa9", "+7F+C3+A9", 64},
		{__LINE__, "abc", NULL, 3}, /* does not fit */
		{__LINE__, "a+", NULL, 4},
		{__LINE__, "a+", "a+2B", 5},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char out[64];
		bool ok = smtp_xtext(rows[i].in, out, rows[i].outlen);
		CHECK_AT(rows[i].line, ok == (rows[i].want != NULL), "fits");
		if (ok && rows[i].want)
			CHECK_STR_AT(rows[i].line, out, rows[i].want, "xtext");
	}
}

#define ALL {.pipelining = true, .eightbitmime = true, .dsn = true, .smtputf8 = true, \
	     .has_size = true, .size = 1000}
#define NONE {0}

static void test_mail(void)
{
	static const struct {
		int line;
		const char *sender;
		size_t len;
		bool eightbit, utf8;
		const char *ret, *envid;
		struct smtp_caps caps;
		const char *want; /* NULL: refused */
	} rows[] = {
		{__LINE__, "a@example.com", 10, false, false, NULL, NULL, NONE,
		 "MAIL FROM:<a@example.com>"},
		{__LINE__, "", 10, false, false, NULL, NULL, NONE, "MAIL FROM:<>"},
		{__LINE__, "a@example.com", 123, true, false, "hdrs", "id+1=x", ALL,
		 "MAIL FROM:<a@example.com> SIZE=123 BODY=8BITMIME RET=HDRS ENVID=id+2B1+3Dx"},
		/* DSN not offered: RET and ENVID are left out; 8BITMIME not offered: no BODY */
		{__LINE__, "a@example.com", 5, true, false, "FULL", "x",
		 {.has_size = true}, "MAIL FROM:<a@example.com> SIZE=5"},
		/* a RET that is neither FULL nor HDRS is not passed on */
		{__LINE__, "a@example.com", 5, false, false, "ALL", NULL, ALL,
		 "MAIL FROM:<a@example.com> SIZE=5"},
		{__LINE__, "j\xc3\xb6rg@example.com", 5, false, true, NULL, NULL, ALL,
		 "MAIL FROM:<j\xc3\xb6rg@example.com> SIZE=5 SMTPUTF8"},
		/* bytes that would end the line or the path are never sent */
		{__LINE__, "a@example.com\r\nRCPT TO:<x@example.net>", 5, false, false, NULL, NULL,
		 NONE, NULL},
		{__LINE__, "a@example.com> SIZE=1", 5, false, false, NULL, NULL, NONE, NULL},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct smtp_out_msg m = {.sender = rows[i].sender, .len = rows[i].len,
					 .eightbit = rows[i].eightbit, .ret = rows[i].ret,
					 .envid = rows[i].envid};
		char out[1024], err[128];
		bool ok = smtp_format_mail(&m, &rows[i].caps, rows[i].utf8, out, sizeof(out), err,
					   sizeof(err));
		CHECK_AT(rows[i].line, ok == (rows[i].want != NULL), "accepted: %s", ok ? out : err);
		if (ok && rows[i].want)
			CHECK_STR_AT(rows[i].line, out, rows[i].want, "MAIL");
	}
	char long_addr[300];
	memset(long_addr, 'a', sizeof(long_addr) - 1);
	long_addr[sizeof(long_addr) - 1] = '\0';
	struct smtp_out_msg m = {.sender = long_addr};
	struct smtp_caps none = {0};
	char out[1024], err[128];
	CHECK(!smtp_format_mail(&m, &none, false, out, sizeof(out), err, sizeof(err)),
	      "a 299-byte sender is refused");
}

static void test_rcpt(void)
{
	static const struct {
		int line;
		const char *addr, *notify, *orcpt;
		struct smtp_caps caps;
		const char *want;
	} rows[] = {
		{__LINE__, "b@example.net", NULL, NULL, ALL, "RCPT TO:<b@example.net>"},
		{__LINE__, "b@example.net", "success,failure", "rfc822;b+x@example.net", ALL,
		 "RCPT TO:<b@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@example.net"},
		/* a bare address is an rfc822 one */
		{__LINE__, "b@example.net", "NEVER", "orig@example.net", ALL,
		 "RCPT TO:<b@example.net> NOTIFY=NEVER ORCPT=rfc822;orig@example.net"},
		/* DSN not offered: nothing passed on */
		{__LINE__, "b@example.net", "DELAY", "rfc822;b@example.net", NONE,
		 "RCPT TO:<b@example.net>"},
		/* a NOTIFY that RFC 3461 does not allow is left out */
		{__LINE__, "b@example.net", "SUCCESS,SOMETIMES", NULL, ALL, "RCPT TO:<b@example.net>"},
		{__LINE__, "b@example.net", "", NULL, ALL, "RCPT TO:<b@example.net>"},
		/* a malformed ORCPT type is left out */
		{__LINE__, "b@example.net", NULL, "rfc 822;x@example.net", ALL,
		 "RCPT TO:<b@example.net>"},
		{__LINE__, "b@example.net", NULL, "utf-8;j\xc3\xb6@example.net", ALL,
		 "RCPT TO:<b@example.net> ORCPT=utf-8;j+C3+B6@example.net"},
		{__LINE__, "b@example.net\nDATA", NULL, NULL, ALL, NULL},
		{__LINE__, "<b@example.net>", NULL, NULL, ALL, NULL},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct smtp_out_rcpt r = {rows[i].addr, rows[i].notify, rows[i].orcpt};
		char out[1024], err[128];
		bool ok = smtp_format_rcpt(&r, &rows[i].caps, out, sizeof(out), err, sizeof(err));
		CHECK_AT(rows[i].line, ok == (rows[i].want != NULL), "accepted: %s", ok ? out : err);
		if (ok && rows[i].want)
			CHECK_STR_AT(rows[i].line, out, rows[i].want, "RCPT");
	}
}

int main(void)
{
	test_caps();
	test_dot_stuff();
	test_xtext();
	test_mail();
	test_rcpt();
	return check_summary("test_client");
}
