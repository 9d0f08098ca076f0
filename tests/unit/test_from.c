/*
 * test_from.c - from_parse(): every From: shape a reader may see, and the
 * one outcome DMARC must act on.
 *
 * One row per field value: the outcome, the mailbox count and the distinct
 * author domains. The rows that matter most are the ambiguous ones: several
 * addresses, groups, comments that look like addresses, quoted strings
 * holding '@' and '<', and garbage, because checking DMARC against a
 * different domain than the one the reader sees is the whole attack
 * (OpenDMARC CVE-2019-16378).
 */
#include "check.h"
#include "msgauth/from.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>

struct row {
	int line;
	const char *value;
	enum from_status status;
	size_t mailboxes;
	const char *domains[3]; /* distinct domains, in order, NULL-terminated */
};

#define OK FROM_OK
#define EMPTY FROM_EMPTY
#define MULTI FROM_MULTIPLE_DOMAINS
#define NODOM FROM_NO_DOMAIN
#define SYNTAX FROM_SYNTAX
#define R(v, st, n, ...) {__LINE__, v, st, n, {__VA_ARGS__}}

static const struct row rows[] = {
	/* the plain forms */
	R("ceo@paypal.example", OK, 1, "paypal.example"),
	R("CEO <ceo@PayPal.Example>", OK, 1, "paypal.example"),
	R("\"Doe, John\" <john@example.com>", OK, 1, "example.com"),
	R("John Q. Public <jqp@example.com>", OK, 1, "example.com"), /* obs-phrase dot */
	R("  <a@example.com>  ", OK, 1, "example.com"),
	R("a.b.c@sub.example.com", OK, 1, "sub.example.com"),
	R("\"odd local\"@example.org", OK, 1, "example.org"),
	R("=?utf-8?q?J=C3=B6rg?= <j@example.net>", OK, 1, "example.net"),
	R("J\xc3\xb6rg <j@example.net>", OK, 1, "example.net"), /* RFC 6532 UTF-8 */
	R("x@example.com (a comment)", OK, 1, "example.com"),
	R("(c) x (nested (c (c))) <x@example.com>", OK, 1, "example.com"),
	R("x\r\n @example.com", OK, 1, "example.com"), /* folded */
	R("<@route.example,@other.example:x@example.com>", OK, 1, "example.com"),
	R("john . doe @ example . com", OK, 1, "example.com"),     /* obs-local-part, obs-domain */
	R("<x@(c)example(c).(c)com>", OK, 1, "example.com"),
	R("x@example. com, y@example .com", OK, 2, "example.com"),
	/* several mailboxes: one domain is still one author domain */
	R("a@example.com, b@EXAMPLE.com", OK, 2, "example.com"),
	R("a@example.com,,b@example.com,", OK, 2, "example.com"), /* obs-mbox-list */
	/* several domains: distinct outcome, never "the first one" */
	R("a@example.com, b@example.net", MULTI, 2, "example.com", "example.net"),
	R("Friends: a@example.com, b@example.net;", MULTI, 2, "example.com", "example.net"),
	R("\"a@example.com\" <b@example.net>, c@example.org", MULTI, 2, "example.net", "example.org"),
	/* what a reader shows is not what a naive parser takes */
	R("\"ceo@paypal.example\" <x@evil.example>", OK, 1, "evil.example"),
	R("(ceo@paypal.example) x@evil.example", OK, 1, "evil.example"),
	R("\"<ceo@paypal.example>\" x@evil.example", OK, 1, "evil.example"),
	/* groups */
	R("undisclosed-recipients:;", EMPTY, 0),
	R("Team: a@example.com;", OK, 1, "example.com"),
	R("Team: a@example.com", OK, 1, "example.com"), /* left open at the end */
	R("Team: a@example.com;, b@example.com", OK, 2, "example.com"),
	/* nothing at all */
	R("", EMPTY, 0),
	R("   ", EMPTY, 0),
	R("(only a comment)", EMPTY, 0),
	R(",", EMPTY, 0),
	/* mailboxes without a DNS domain */
	R("MAILER-DAEMON", NODOM, 1),
	R("<>", NODOM, 1),
	R("Joe <joe>", NODOM, 1),
	R("x@[192.0.2.1]", NODOM, 1),
	R("x@exa!mple.com", NODOM, 1), /* atext that is no label: no DNS domain */
	R("x@example..com", NODOM, 1),
	R("x@.example.com", NODOM, 1),
	R("x@example.com.", NODOM, 1), /* dot-atom cannot end in '.' */
	R("x@example . . com", NODOM, 1),
	R("a@example.com, joe", NODOM, 2, "example.com"),
	/* garbage */
	R("a@example.com b@example.net", SYNTAX, 1, "example.com"),
	R("<a@example.com", SYNTAX, 1, "example.com"),
	R("a@example.com>", SYNTAX, 1, "example.com"),
	R("\"unterminated <a@example.com>", SYNTAX, 0),
	R("(unterminated a@example.com", SYNTAX, 0),
	R("a@", SYNTAX, 0),
	R("@example.com", SYNTAX, 0),
	R("a@example.com;", SYNTAX, 1, "example.com"),
	R("Nested: Group: a@example.com;;", SYNTAX, 0),
	R("a@b@example.com", SYNTAX, 1, "b"),
	R("x <a@example.com> <b@example.net>", SYNTAX, 1, "example.com"),
	R("[x]", SYNTAX, 0),
	R("a\\@example.com", SYNTAX, 0),
};

/* from_row - one table row. */
static void from_row(const struct row *r)
{
	struct from_result got;
	enum from_status st = from_parse(r->value, strlen(r->value), &got);
	CHECK_AT(r->line, st == r->status && got.status == st, "status %s, want %s (%s)",
		 from_status_name(st), from_status_name(r->status), got.detail);
	if (r->status == FROM_SYNTAX)
		return; /* where a parse stops is not an outcome anyone acts on */
	CHECK_AT(r->line, got.mailboxes == r->mailboxes, "%zu mailboxes, want %zu", got.mailboxes,
		 r->mailboxes);
	size_t want = 0;
	while (want < 3 && r->domains[want] != NULL)
		want++;
	CHECK_AT(r->line, got.ndomains == want, "%zu domains, want %zu", got.ndomains, want);
	for (size_t i = 0; i < want && i < got.ndomains; i++)
		CHECK_STR_AT(r->line, got.domain[i], r->domains[i], "domain");
}

/* bounds - NUL and control bytes, the length limit, deep comments, many
 * domains: named outcomes, never overruns. */
static void bounds(void)
{
	struct from_result got;
	CHECK(from_parse("a@exa\0mple.com", 14, &got) == FROM_SYNTAX, "NUL: %s", got.detail);
	CHECK(from_parse("a@example.com\x01", 14, &got) == FROM_SYNTAX, "control byte");
	static char big[FROM_VALUE_MAX + 2];
	memset(big, ' ', sizeof(big));
	memcpy(big, "a@example.com", 13);
	CHECK(from_parse(big, FROM_VALUE_MAX, &got) == FROM_OK, "at the limit: %s", got.detail);
	CHECK(from_parse(big, FROM_VALUE_MAX + 1, &got) == FROM_SYNTAX, "over the limit");
	char deep[64] = "";
	for (int i = 0; i < 20; i++)
		strcat(deep, "(");
	for (int i = 0; i < 20; i++)
		strcat(deep, ")");
	strcat(deep, "a@example.com");
	CHECK(from_parse(deep, strlen(deep), &got) == FROM_SYNTAX, "20 nested comments");
	char many[1024] = "";
	for (int i = 0; i < 12; i++)
		sprintf(many + strlen(many), "%sx@d%d.example", i ? "," : "", i);
	CHECK(from_parse(many, strlen(many), &got) == FROM_MULTIPLE_DOMAINS && got.ndomains == 12 &&
		      strcmp(got.domain[FROM_DOMAINS_MAX - 1], "d7.example") == 0,
	      "12 domains: %zu", got.ndomains);
	char label[80] = "a@";
	memset(label + 2, 'b', 64);
	strcpy(label + 66, ".example");
	CHECK(from_parse(label, strlen(label), &got) == FROM_NO_DOMAIN, "64-byte label");
}

/* The first mailbox's local part, for DKIM signing's ownership check: only
 * when it is one word; "" otherwise (then only the login's domain counts). */
struct local_row {
	int line;
	const char *value;
	const char *local;
};

static const struct local_row locals[] = {
	{__LINE__, "alice@a.example", "alice"},
	{__LINE__, "Alice Smith <alice.smith@a.example>", "alice.smith"},
	{__LINE__, "\"Bob\" <\"odd local\"@a.example>", "\"odd local\""},
	{__LINE__, "Team: alice@a.example, bob@a.example;", "alice"},
	{__LINE__, "bob (the boss) <bob@a.example>, alice@a.example", "bob"},
	{__LINE__, "john . doe @ example . com", ""}, /* obs-local-part: several words */
	{__LINE__, "<@relay.example:carol@a.example>", "carol"},
	{__LINE__, "undisclosed-recipients:;", ""},
};

static void local_row(const struct local_row *r)
{
	struct from_result res;
	from_parse(r->value, strlen(r->value), &res);
	CHECK_AT(r->line, strcmp(res.local, r->local) == 0, "local part \"%s\"", res.local);
}

int main(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++)
		from_row(&rows[i]);
	for (size_t i = 0; i < RG_ARRAY_LEN(locals); i++)
		local_row(&locals[i]);
	bounds();
	return check_summary("test_from");
}
