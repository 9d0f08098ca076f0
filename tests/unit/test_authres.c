/*
 * test_authres.c - Authentication-Results (RFC 8601): the field we write,
 * byte for byte, with hostile values; the parser on its own table; and the
 * one decision the session acts on: does a field claim our authserv-id
 * (then it is a forgery to remove, the OpenDMARC CVE-2020-12272 class).
 *
 * The shared conformance vectors (ar-vectors.json, the dkim_verifier
 * messages) run in tests/integration/test_msgauth_vectors.py.
 */
#include "check.h"
#include "msgauth/authres.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>

/* ---- writing ------------------------------------------------------------------- */

struct fmt_row {
	int line;
	struct authres_fields f;
	const char *want; /* NULL: authres_format must refuse */
};

static const struct authres_dkim sig_ok[] = {
	{"pass", "paypal.example", "s2026", "dGhpcyBpcyBhIHNpZ25hdHVyZQ==", NULL},
};
static const struct authres_dkim sig_two[] = {
	{"pass", "example.com", "rsa", "abcdefghijk", NULL},
	{"fail", "example.com", "ed", "ABCDEFGH", "body hash did not verify"},
};
static const struct authres_dkim sig_bad[] = {{"bogus", "example.com", NULL, NULL, NULL}};

#define ID "mx.relayguard.test"

static const struct fmt_row fmts[] = {
	{__LINE__, {ID, NULL, "fail", "ceo@paypal.example", NULL, NULL, 0, "fail", "paypal.example",
		    NULL},
	 "Authentication-Results: mx.relayguard.test;\r\n\tspf=fail smtp.mailfrom=ceo@paypal.example;"
	 "\r\n\tdkim=none;\r\n\tdmarc=fail header.from=paypal.example\r\n"},
	{__LINE__, {ID, NULL, "pass", "ceo@paypal.example", NULL, sig_ok, 1, "pass", "paypal.example",
		    NULL},
	 "Authentication-Results: mx.relayguard.test;\r\n\tspf=pass smtp.mailfrom=ceo@paypal.example;"
	 "\r\n\tdkim=pass header.d=paypal.example header.s=s2026 header.b=dGhpcyBp;"
	 "\r\n\tdmarc=pass header.from=paypal.example\r\n"},
	/* a null sender: SPF checked HELO */
	{__LINE__, {ID, NULL, "none", NULL, "client.example.net", NULL, 0, "none", "example.org", NULL},
	 "Authentication-Results: mx.relayguard.test;\r\n\tspf=none smtp.helo=client.example.net;"
	 "\r\n\tdkim=none;\r\n\tdmarc=none header.from=example.org\r\n"},
	/* an authenticated submission, two signatures, a reason */
	{__LINE__, {ID, "alice", "pass", "alice@example.com", NULL, sig_two, 2, "pass", "example.com",
		    "p=none"},
	 "Authentication-Results: mx.relayguard.test;\r\n\tauth=pass smtp.auth=alice;"
	 "\r\n\tspf=pass smtp.mailfrom=alice@example.com;"
	 "\r\n\tdkim=pass header.d=example.com header.s=rsa header.b=abcdefgh;"
	 "\r\n\tdkim=fail reason=\"body hash did not verify\" header.d=example.com header.s=ed"
	 "\r\n\theader.b=ABCDEFGH;"
	 "\r\n\tdmarc=pass reason=\"p=none\" header.from=example.com\r\n"},
	/* client text that tries to end the result or the field: quoted, CR LF gone */
	{__LINE__, {ID, NULL, "softfail", "x;dmarc=pass@example.com", "h\r\nX-Evil: 1", NULL, 0,
		    NULL, NULL, NULL},
	 "Authentication-Results: mx.relayguard.test;\r\n\tspf=softfail"
	 " smtp.mailfrom=\"x;dmarc=pass@example.com\"\r\n\tsmtp.helo=\"h??X-Evil: 1\";"
	 "\r\n\tdkim=none\r\n"},
	{__LINE__, {ID, NULL, "pass", "\"q\\\"uote\"@example.com", NULL, NULL, 0, NULL, NULL, NULL},
	 "Authentication-Results: mx.relayguard.test;\r\n\tspf=pass"
	 " smtp.mailfrom=\"\\\"q\\\\\\\"uote\\\"@example.com\";\r\n\tdkim=none\r\n"},
	{__LINE__, {ID, NULL, "pass", "caf\xc3\xa9@example.com", NULL, NULL, 0, NULL, NULL, NULL},
	 "Authentication-Results: mx.relayguard.test;\r\n\tspf=pass"
	 " smtp.mailfrom=\"caf??@example.com\";\r\n\tdkim=none\r\n"},
	{__LINE__, {ID, NULL, "pass", "a@b@example.com", NULL, NULL, 0, NULL, NULL, NULL},
	 "Authentication-Results: mx.relayguard.test;\r\n\tspf=pass"
	 " smtp.mailfrom=\"a@b@example.com\";\r\n\tdkim=none\r\n"},
	{__LINE__, {ID, NULL, "pass", "", NULL, NULL, 0, NULL, NULL, NULL},
	 "Authentication-Results: mx.relayguard.test;\r\n\tspf=pass smtp.mailfrom=\"\";"
	 "\r\n\tdkim=none\r\n"},
	/* a caller's bug is refused, not written */
	{__LINE__, {ID, NULL, "hardfail!", NULL, NULL, NULL, 0, NULL, NULL, NULL}, NULL},
	{__LINE__, {ID, NULL, NULL, NULL, NULL, sig_bad, 1, NULL, NULL, NULL}, NULL},
	{__LINE__, {ID, NULL, NULL, NULL, NULL, NULL, 0, "bestguesspass", NULL, NULL}, NULL},
	{__LINE__, {"", NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL}, NULL},
};

static void fmt_row(const struct fmt_row *r)
{
	struct strbuf sb;
	strbuf_init(&sb);
	strbuf_puts(&sb, "X: 1\r\n"); /* appends, never overwrites */
	bool ok = authres_format(&r->f, &sb);
	CHECK_AT(r->line, ok == (r->want != NULL), "format returned %d", ok);
	if (ok)
		CHECK_STR_AT(r->line, sb.data + 6, r->want, "field");
	else
		CHECK_STR_AT(r->line, sb.data, "X: 1\r\n", "nothing appended");
	/* what we write, we read back strictly, and it claims our id */
	if (ok) {
		struct authres_parsed p;
		const char *v = sb.data + 6 + strlen("Authentication-Results:");
		CHECK_AT(r->line, authres_parse(v, strlen(v), 0, &p), "reparse: %s", p.error);
		CHECK_AT(r->line, authres_claims_id(v, strlen(v), ID), "claims our id");
	}
	strbuf_free(&sb);
}

/* long_values - cut at AUTHRES_VALUE_MAX, folded, every line under 998. */
static void long_values(void)
{
	char big[1000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	struct authres_dkim sig = {"pass", big, big, big, big};
	struct authres_fields f = {big, big, "pass", big, big, &sig, 1, "pass", big, big};
	struct strbuf sb;
	strbuf_init(&sb);
	CHECK(authres_format(&f, &sb), "formatted");
	size_t longest = 0, cur = 0;
	for (size_t i = 0; i < sb.len; i++)
		cur = sb.data[i] == '\n' ? 0 : cur + 1, longest = cur > longest ? cur : longest;
	CHECK(longest < 300, "longest line %zu", longest);
	struct authres_parsed p;
	const char *v = sb.data + strlen("Authentication-Results:");
	CHECK(authres_parse(v, strlen(v) - 2, 0, &p) && p.nresults == 4, "reparse: %s", p.error);
	CHECK(strlen(p.res[1].props[0].value) == AUTHRES_TEXT_MAX - 1, "value cut by the reader");
	strbuf_free(&sb);
}

/* ---- reading ------------------------------------------------------------------- */

struct parse_row {
	int line;
	const char *value;
	unsigned flags;
	bool ok;
	const char *id;
	size_t n;            /* results */
	const char *first;   /* "method=result" of the first */
};

#define P(v, fl, ok, id, n, first) {__LINE__, v, fl, ok, id, n, first}
#define RELAX AUTHRES_RELAXED

static const struct parse_row parses[] = {
	P(" example.org 1; none", 0, true, "example.org", 0, NULL),
	P("example.com; spf=pass smtp.mailfrom=example.net", 0, true, "example.com", 1, "spf=pass"),
	P("EXAMPLE.com; SPF=PASS smtp.MailFrom=x@example.net", 0, true, "EXAMPLE.com", 1, "spf=pass"),
	P("(c) \"example.com\" (c); dkim/1=fail (why) reason=\"x y\" header.d=example.com", 0, true,
	  "example.com", 1, "dkim=fail"),
	P("example.com;\r\n\tdkim=pass header.b=\"ab/cd\"", 0, true, "example.com", 1, "dkim=pass"),
	P("example.com; dkim=pass header.b=ab/cd", 0, false, "", 0, NULL),
	P("example.com; dkim=pass header.b=ab/cd", RELAX, true, "example.com", 1, "dkim=pass"),
	P("example.com; none; spf=pass", 0, false, "", 0, NULL),
	P("example.com", 0, false, "", 0, NULL),
	P("example.com; spf=pass;", 0, false, "", 0, NULL),
	P("example.com; spf=pass;", RELAX, true, "example.com", 1, "spf=pass"),
	P("example.com; spf=pass (unclosed", RELAX, false, "", 0, NULL),
	P("example.com; spf=pass x.y=\"unclosed", RELAX, false, "", 0, NULL),
	P("example.com; spf=bogus", 0, false, "", 0, NULL),
	P("example.com; x-new=bogus", 0, true, "example.com", 1, "x-new=bogus"),
	P("example.com; spf=pass foo.bar=x", 0, false, "", 0, NULL),  /* unknown ptype */
	P("spf=pass smtp.mailfrom=x@example.com; mx.example.com", RELAX, true, "mx.example.com", 1,
	  "spf=pass"),
	P("", 0, false, "", 0, NULL),
	P("", RELAX, true, "", 0, NULL),
	P("; spf=pass", RELAX, true, "", 1, "spf=pass"),   /* no id, a leading ';' */
	P(";;;", RELAX, true, "", 0, NULL),
};

static void parse_row(const struct parse_row *r)
{
	struct authres_parsed p;
	bool ok = authres_parse(r->value, strlen(r->value), r->flags, &p);
	CHECK_AT(r->line, ok == r->ok, "parse %d: %s", ok, p.error);
	if (!ok || !r->ok)
		return;
	CHECK_STR_AT(r->line, p.authserv_id, r->id, "authserv-id");
	CHECK_AT(r->line, p.nresults == r->n, "%zu results", p.nresults);
	if (r->first != NULL && p.nresults > 0) {
		char got[80];
		snprintf(got, sizeof(got), "%s=%s", p.res[0].method, p.res[0].result);
		CHECK_STR_AT(r->line, got, r->first, "first result");
	}
}

/* many - more results and properties than the table holds: counted, not
 * stored, no overrun. */
static void many(void)
{
	struct strbuf sb;
	strbuf_init(&sb);
	strbuf_puts(&sb, "example.com");
	for (int i = 0; i < 40; i++)
		strbuf_puts(&sb, "; dkim=pass header.d=a header.s=b header.b=c header.i=d smtp.x=1"
				 " smtp.y=2 smtp.z=3 body.a=1 body.b=2 body.c=3");
	struct authres_parsed p;
	CHECK(authres_parse(sb.data, sb.len, 0, &p), "parsed: %s", p.error);
	CHECK(p.nresults == AUTHRES_MAX_RESULTS && p.extra == 40 - AUTHRES_MAX_RESULTS,
	      "%zu stored, %zu extra", p.nresults, p.extra);
	CHECK(p.res[0].nprops == AUTHRES_MAX_PROPS, "%zu props", p.res[0].nprops);
	strbuf_free(&sb);
}

/* ---- our authserv-id ------------------------------------------------------------ */

struct claim_row {
	int line;
	const char *value;
	bool claims;
};

#define C(v, c) {__LINE__, v, c}

static const struct claim_row claims[] = {
	C(" mx.relayguard.test; spf=pass smtp.mailfrom=ceo@paypal.example", true),
	C("MX.RelayGuard.Test; dmarc=pass", true),
	C("mx.relayguard.test.; dmarc=pass", true),
	C("\"mx.relayguard.test\"; dmarc=pass", true),
	C("(forged) mx.relayguard.test (really) 1; dmarc=pass", true),
	C("\r\n\tmx.relayguard.test;\r\n\tdmarc=pass", true),
	C("mx.relayguard.test", true),
	C("mx.relayguard.test; ((unbalanced", true),           /* broken but ours: remove */
	C("mx.relayguard.test dmarc=pass", true),
	C("spf=pass; mx.relayguard.test", true),               /* the Outlook shape */
	C("spf=pass (x) smtp.mailfrom=a@b; (c) mx.relayguard.test (c); dkim=pass", true),
	C("example.net; spf=pass; mx.relayguard.test", true),
	/* our name, then a byte another reader may take as its end: fail closed */
	C("mx.relayguard.test\"x\"; dmarc=pass", true),
	C("mx.relayguard.test\xc2\xa0; dmarc=pass", true),    /* NBSP: Unicode white space */
	C("mx.relayguard.test/1; dmarc=pass", true),
	C("mx.relayguard.test,x; dmarc=pass", true),
	/* not ours */
	C("mx.example.net; dmarc=pass header.from=mx.relayguard.test", false),
	C("relayguard.test; dmarc=pass", false),
	C("mx.relayguard.test.example; dmarc=pass", false),
	C("xmx.relayguard.test; dmarc=pass", false),
	C("mx.relayguard.test-x; dmarc=pass", false),
	C("mx.relayguard.test_x; dmarc=pass", false),
	C("(mx.relayguard.test) example.net; spf=pass", false),
	C("example.net; spf=pass reason=\"; mx.relayguard.test\"", false),
	C("example.net; spf=pass (; mx.relayguard.test)", false),
	C("", false),
};

static void claim_row(const struct claim_row *r)
{
	bool got = authres_claims_id(r->value, strlen(r->value), ID);
	CHECK_AT(r->line, got == r->claims, "claims %d", got);
}

/* ---- whole fields as the session holds them (name and continuation lines) ---- */

struct forged_row {
	int line;
	const char *field;
	bool whole;
	bool forged;
};

#define F(f, w, x) {__LINE__, f, w, x}
#define AR "Authentication-Results:"

static const struct forged_row forgeds[] = {
	F(AR " mx.relayguard.test; spf=pass", true, true),
	/* the claim on a continuation line: the first line alone says nothing */
	F(AR " spf=pass smtp.mailfrom=a@b.example;\r\n mx.relayguard.test; dkim=pass", true, true),
	F(AR "\r\n mx.relayguard.test; dkim=pass", true, true),
	F(AR "\r\n\t(checked)\r\n mx.relayguard.test; dkim=pass", true, true),
	F(AR " (x)\r\n MX.RelayGuard.TEST.; dkim=pass", true, true),
	F(AR " dkim=pass header.d=paypal.example;\r\n\tspf=pass;\r\n\tmx.relayguard.test", true,
	  true),
	F("authentication-results: (x) mx.relayguard.test; dkim=pass", true, true),
	F(AR " (an unclosed\r\n comment mx.relayguard.test; dkim=pass", true, true),
	F(AR, true, true),
	/* the id behind a byte our parser stopped at but other readers skip or
	 * decode (Perl's \s and Python's str.split() take \f and \v as white
	 * space, Unicode-aware ones U+00A0; Python's email package decodes
	 * RFC 2047 words in a field it does not know) */
	F(AR " \f" ID "; dkim=pass", true, true),
	F(AR " \v" ID "; dkim=pass", true, true),
	F(AR "\x1c" ID "; dkim=pass", true, true),
	F(AR " \xc2\xa0" ID "; dkim=pass", true, true),
	F(AR " \xe3\x80\x80" ID "; dkim=pass", true, true),
	F(AR " =?us-ascii?q?" ID "?=; dkim=pass", true, true),
	F(AR " =?us-ascii?b?bXgucmVsYXlndWFyZC50ZXN0?=; dkim=pass", true, true),
	F(AR " =?utf-8?Q?mx=2Erelayguard=2Etest?=\r\n ; dkim=pass", true, true),
	F(AR " other.example; spf=pass (=?utf-8?q?x?=)", true, false),
	F(AR " other.example;\r\n\tdkim=pass header.d=\xc2\xa0" ID, true, false),
	/* obsolete syntax: white space before the colon (RFC 5322 4.5) */
	F("Authentication-Results : " ID "; dkim=pass", true, true),
	F("Authentication-Results\t:\r\n " ID "; dkim=pass", true, true),
	F("Authentication-Results : other.example; spf=pass", true, false),
	F("Authentication-ResultsX: " ID "; dkim=pass", true, false),
	F("Authentication-Results   \t  ", false, true), /* the colon comes later */
	F("Authentication-Results\r\n : " ID "; dkim=pass", true, true),
	F("Authentication-Results \r\n\t:\r\n " ID "; dkim=pass", true, true),
	F("Authentication-Results", true, false), /* no colon at all: no field */
	/* held only in part: it could be ours */
	F(AR " other.example; spf=pass", false, true),
	/* not ours */
	F(AR " other.example;\r\n spf=pass smtp.mailfrom=a@mx.relayguard.test", true, false),
	F(AR " other.example; spf=pass\r\n (mx.relayguard.test)", true, false),
	F(AR " other.example; spf=pass", true, false),
	/* other fields are not judged here: ours goes on top of Received-SPF, and
	 * ARC sets are another host's sealed chain */
	F("Received-SPF: pass (mx.relayguard.test: 127.0.0.1 is allowed)", true, false),
	F("ARC-Authentication-Results: i=1; mx.relayguard.test; dkim=pass", true, false),
	F("X-Authentication-Results: mx.relayguard.test; dkim=pass", false, false),
	F("Subject: Authentication-Results: mx.relayguard.test", true, false),
};

static void forged_row(const struct forged_row *r)
{
	bool got = authres_field_forged(r->field, strlen(r->field), r->whole, ID);
	CHECK_AT(r->line, got == r->forged, "forged %d", got);
}

/* too_long - a value past AUTHRES_INPUT_MAX cannot be read whole: dropped. */
static void too_long(void)
{
	struct strbuf b;
	strbuf_init(&b);
	strbuf_puts(&b, AR " other.example; spf=pass");
	while (b.len <= AUTHRES_INPUT_MAX + 30)
		strbuf_puts(&b, "\r\n (padding padding padding)");
	CHECK(authres_field_forged(b.data, b.len, true, ID), "an over-long field is dropped");
	strbuf_free(&b);
}

int main(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(fmts); i++)
		fmt_row(&fmts[i]);
	long_values();
	for (size_t i = 0; i < RG_ARRAY_LEN(parses); i++)
		parse_row(&parses[i]);
	many();
	for (size_t i = 0; i < RG_ARRAY_LEN(claims); i++)
		claim_row(&claims[i]);
	for (size_t i = 0; i < RG_ARRAY_LEN(forgeds); i++)
		forged_row(&forgeds[i]);
	too_long();
	return check_summary("test_authres");
}
