/*
 * test_address.c - address_parse() and address_resolve() against every
 * sender-specified routing trick a relay prober uses.
 *
 * One row per input: the argument exactly as it follows "RCPT TO:", what
 * address_parse() must say, and for parsable paths where address_resolve()
 * must send it. The context is a host that is the destination for localhost
 * and ourdomain.example (and its own [127.0.0.1] and [::1]), a backup MX for
 * backup.example and every subdomain of sub.example, with a myorigin that is
 * deliberately NOT one of our domains, so an unqualified address is remote.
 */
#include "address/address.h"
#include "check.h"
#include "util/util.h"

#include <string.h>

/* Parse-level and resolution-level booleans, one bit each. */
enum {
	F_NULL = 1 << 0,    /* a.null */
	F_QUOTED = 1 << 1,  /* a.quoted */
	F_LITERAL = 1 << 2, /* a.literal */
	F_TDOT = 1 << 3,    /* a.trailing_dot */
	F_UNQUAL = 1 << 4,  /* r.unqualified (after routing was undone) */
};

#define SRC ROUTE_SOURCE
#define AT ROUTE_AT
#define PCT ROUTE_PERCENT
#define BANG ROUTE_BANG

#define LOCAL ADDR_CLASS_LOCAL
#define RELAY ADDR_CLASS_RELAY
#define REMOTE ADDR_CLASS_REMOTE
#define INVALID ADDR_CLASS_INVALID
#define NO_RESOLVE (-1) /* parse only: resolving <> means nothing */

#define SYNTAX ADDR_ERR_SYNTAX
#define TOO_LONG ADDR_ERR_TOO_LONG
#define NON_ASCII ADDR_ERR_NON_ASCII

struct row {
	int line;
	const char *arg;
	enum addr_error err;
	unsigned routing;   /* ROUTE_* from address_parse */
	unsigned flags;     /* F_* */
	int cls;            /* enum addr_class, or NO_RESOLVE */
	bool routed;        /* r.routed */
	const char *local;  /* r.local */
	const char *domain; /* r.domain */
	const char *params; /* *params after the path */
};

/* A parsable path: routing, flags, class, routed, final local part and domain. */
#define GOOD(arg, rt, fl, cls, routed, local, dom) \
	{__LINE__, arg, ADDR_OK, rt, fl, cls, routed, local, dom, ""}
/* The same with ESMTP parameters after the path. */
#define GOODP(arg, params, rt, fl, cls, routed, local, dom) \
	{__LINE__, arg, ADDR_OK, rt, fl, cls, routed, local, dom, params}
/* A path address_parse() must refuse. */
#define BAD(arg, e) {__LINE__, arg, e, 0, 0, NO_RESOLVE, false, NULL, NULL, NULL}

/* Long inputs, built once by build_long_inputs(). */
static char l64[65], arg_l64[128], arg_l65[128];
static char arg_q64[128], arg_q65[128];
static char dom_lbl63[128], arg_lbl63[160], arg_lbl64[160];
static char dom252[260], arg_dom252[300], arg_dom253[300], arg_dom255[300];
static char arg_path257[300], arg_route257[300];

static void fill(char *dst, int c, size_t n)
{
	memset(dst, c, n);
	dst[n] = '\0';
}

/* build_long_inputs - the limits of RFC 5321 4.5.3.1, just inside and just over. */
static void build_long_inputs(void)
{
	char b63[64], c63[64], d60[61], d61[62], g60[61];
	fill(l64, 'a', 64);
	snprintf(arg_l64, sizeof(arg_l64), "<%s@localhost>", l64);
	snprintf(arg_l65, sizeof(arg_l65), "<%sa@localhost>", l64);
	snprintf(arg_q64, sizeof(arg_q64), "<\"%s\"@localhost>", l64);
	snprintf(arg_q65, sizeof(arg_q65), "<\"%sa\"@localhost>", l64);

	fill(b63, 'b', 63);
	snprintf(dom_lbl63, sizeof(dom_lbl63), "%s.example", b63);
	snprintf(arg_lbl63, sizeof(arg_lbl63), "<u@%s>", dom_lbl63);
	snprintf(arg_lbl64, sizeof(arg_lbl64), "<u@b%s>", dom_lbl63);

	/* 63.63.63.60 = 252 octets: "<u@" + 252 + ">" is exactly the 256-octet path */
	fill(c63, 'c', 63);
	fill(d60, 'd', 60);
	snprintf(dom252, sizeof(dom252), "%s.%s.%s.%s", c63, c63, c63, d60);
	snprintf(arg_dom252, sizeof(arg_dom252), "<u@%s>", dom252);
	/* 63.63.63.61 = 253 and 63.63.63.63 = 255: valid names, but the path is too long */
	fill(d61, 'd', 61);
	snprintf(arg_dom253, sizeof(arg_dom253), "<u@%s.%s.%s.%s>", c63, c63, c63, d61);
	snprintf(arg_dom255, sizeof(arg_dom255), "<u@%s.%s.%s.%s>", c63, c63, c63, c63);

	/* 255 octets between the brackets, 257 with them: a longer local part this time */
	snprintf(arg_path257, sizeof(arg_path257), "<uu@%s>", dom252);
	/* the same overflow hidden in a source route in front of a short mailbox */
	fill(g60, 'g', 60);
	snprintf(arg_route257, sizeof(arg_route257), "<@%s.a,@%s.b,@%s.c,@%s.d:u@localhost>",
		 g60, g60, g60, g60);
}

static const struct row rows[] = {
	/* --- the plain cases --- */
	/* plain remote: the classic relay attempt */
	GOOD("<victim@gmail.com>", 0, 0, REMOTE, false, "victim", "gmail.com"),
	/* plain local */
	GOOD("<alice@ourdomain.example>", 0, 0, LOCAL, false, "alice", "ourdomain.example"),
	/* mixed case: domains compare case-insensitively, local part lowered */
	GOOD("<U@LocalHost>", 0, 0, LOCAL, false, "u", "localhost"),
	/* leading blanks before '<' are tolerated (Postfix does too) */
	GOOD("  <u@localhost>", 0, 0, LOCAL, false, "u", "localhost"),

	/* --- percent hack: user%other@us --- */
	/* via one of our domain names */
	GOOD("<u%victim.example@ourdomain.example>", PCT, 0, REMOTE, true, "u", "victim.example"),
	/* via our IP literal */
	GOOD("<u%victim.example@[127.0.0.1]>", PCT, F_LITERAL, REMOTE, true, "u", "victim.example"),
	/* via our IPv6 literal written as v4-mapped: still us, still undone */
	GOOD("<u%victim.example@[IPv6:::ffff:127.0.0.1]>", PCT, F_LITERAL, REMOTE, true, "u",
	     "victim.example"),
	/* via our domain with a trailing dot and odd case */
	GOOD("<u%Victim.Example@LOCALHOST.>", PCT, F_TDOT, REMOTE, true, "u", "victim.example"),
	/* two levels, both through us */
	GOOD("<u%victim.example%localhost@ourdomain.example>", PCT, 0, REMOTE, true, "u",
	     "victim.example"),
	/* unqualified: the hack works without any domain at all */
	GOOD("<u%victim.example%localhost>", PCT, 0, REMOTE, true, "u", "victim.example"),
	/* to one of our own domains: final is local, but routing was used */
	GOOD("<u%ourdomain.example@localhost>", PCT, 0, LOCAL, true, "u", "ourdomain.example"),
	/* to a relay domain: relay class, but routed, so never authorised */
	GOOD("<u%backup.example@ourdomain.example>", PCT, 0, RELAY, true, "u", "backup.example"),
	/* through somebody else's domain: theirs to undo, it is remote anyway */
	GOOD("<u%localhost@victim.example>", PCT, 0, REMOTE, true, "u%localhost", "victim.example"),

	/* --- '@' inside the local part --- */
	/* unquoted multiple @ */
	GOOD("<u@victim.example@ourdomain.example>", AT, 0, REMOTE, true, "u", "victim.example"),
	/* quoted, via our domain */
	GOOD("<\"u@victim.example\"@ourdomain.example>", AT, F_QUOTED, REMOTE, true, "u",
	     "victim.example"),
	/* quoted, via our IP literal */
	GOOD("<\"u@victim.example\"@[127.0.0.1]>", AT, F_QUOTED | F_LITERAL, REMOTE, true, "u",
	     "victim.example"),
	/* the '@' hidden behind a quoted-pair */
	GOOD("<\"u\\@victim.example\"@localhost>", AT, F_QUOTED, REMOTE, true, "u",
	     "victim.example"),
	/* quoted percent, unqualified */
	GOOD("<\"u%victim.example\">", PCT, F_QUOTED, REMOTE, true, "u", "victim.example"),
	/* quoted '@', unqualified */
	GOOD("<\"u@victim.example\">", AT, F_QUOTED, REMOTE, true, "u", "victim.example"),

	/* --- bang paths: host!user --- */
	/* unqualified */
	GOOD("<victim.example!u>", BANG, 0, REMOTE, true, "u", "victim.example"),
	/* via our domain */
	GOOD("<victim.example!u@ourdomain.example>", BANG, 0, REMOTE, true, "u", "victim.example"),
	/* via our IP literal */
	GOOD("<victim.example!u@[127.0.0.1]>", BANG, F_LITERAL, REMOTE, true, "u",
	     "victim.example"),
	/* two hops, the first through us */
	GOOD("<localhost!victim.example!u@localhost>", BANG, 0, REMOTE, true, "u",
	     "victim.example"),
	/* bang and percent together: the host before '!' wins */
	GOOD("<a.example!u%b.example>", PCT | BANG, 0, REMOTE, true, "u%b.example", "a.example"),

	/* --- source routes: <@relay:user@domain> --- */
	/* through us to a victim: the route is ignored, the mailbox is remote */
	GOOD("<@ourdomain.example:u@victim.example>", SRC, 0, REMOTE, true, "u",
	     "victim.example"),
	/* multi-hop */
	GOOD("<@a.example,@b.example:u@victim.example>", SRC, 0, REMOTE, true, "u",
	     "victim.example"),
	/* through somebody else to us: local, but routed (conservative) */
	GOOD("<@a.example:u@localhost>", SRC, 0, LOCAL, true, "u", "localhost"),
	/* route plus a quoted '@' in the mailbox: both flagged */
	GOOD("<@ourdomain.example:\"u@victim.example\"@localhost>", SRC | AT, F_QUOTED, REMOTE,
	     true, "u", "victim.example"),
	/* route to an unqualified mailbox */
	GOOD("<@localhost:u>", SRC, F_UNQUAL, REMOTE, true, "u", "mail.ourdomain.example"),
	/* ',' where ':' belongs */
	BAD("<@ourdomain.example,u@victim.example>", SYNTAX),
	/* an empty hop */
	BAD("<@ourdomain.example,:u@victim.example>", SYNTAX),
	/* a route that leads to no mailbox */
	BAD("<@ourdomain.example:>", SYNTAX),
	/* RFC 5321 At-domain is a Domain, never a literal */
	BAD("<@[127.0.0.1]:u@victim.example>", SYNTAX),
	/* empty local part: reads as a route without ':' */
	BAD("<@localhost>", SYNTAX),

	/* --- address literals --- */
	/* ours (v4): resolves to our first domain, so it is the same mailbox */
	GOOD("<u@[127.0.0.1]>", 0, F_LITERAL, LOCAL, false, "u", "localhost"),
	/* somebody else's */
	GOOD("<u@[192.0.2.1]>", 0, F_LITERAL, REMOTE, false, "u", "[192.0.2.1]"),
	/* another loopback address, but not one of ours */
	GOOD("<u@[127.0.0.2]>", 0, F_LITERAL, REMOTE, false, "u", "[127.0.0.2]"),
	/* ours (v6); the tag is case-insensitive and the domain is lowered */
	GOOD("<u@[IPv6:::1]>", 0, F_LITERAL, LOCAL, false, "u", "localhost"),
	GOOD("<u@[ipv6:::1]>", 0, F_LITERAL, LOCAL, false, "u", "localhost"),
	/* somebody else's v6 */
	GOOD("<u@[IPv6:2001:db8::1]>", 0, F_LITERAL, REMOTE, false, "u", "[ipv6:2001:db8::1]"),
	/* v4-mapped v6 folds to v4: ours */
	GOOD("<u@[IPv6:::ffff:127.0.0.1]>", 0, F_LITERAL, LOCAL, false, "u",
	     "localhost"),
	/* the same, spelt out in full */
	GOOD("<u@[IPv6:0:0:0:0:0:ffff:7f00:1]>", 0, F_LITERAL, LOCAL, false, "u",
	     "localhost"),
	/* not an IPv4 address */
	BAD("<u@[999.1.1.1]>", SYNTAX),
	/* general address literal: not supported */
	BAD("<u@[foo:bar]>", SYNTAX),
	/* octal and zero-padded spellings some resolvers read as 127.0.0.1 */
	BAD("<u@[0177.0.0.1]>", SYNTAX),
	BAD("<u@[127.000.000.001]>", SYNTAX),
	/* shortened dotted quad */
	BAD("<u@[127.1]>", SYNTAX),
	/* an IPv4 address behind the IPv6 tag */
	BAD("<u@[IPv6:127.0.0.1]>", SYNTAX),
	/* v6 literal without the tag */
	BAD("<u@[::1]>", SYNTAX),
	/* blank inside, empty, text after ']', a dot after ']' */
	BAD("<u@[127.0.0.1 ]>", SYNTAX),
	BAD("<u@[]>", SYNTAX),
	BAD("<u@[IPv6:::1]x>", SYNTAX),
	BAD("<u@[127.0.0.1].>", SYNTAX),
	/* bare numeric domain: a (strange) host name, not our literal */
	GOOD("<u@192.0.2.1>", 0, 0, REMOTE, false, "u", "192.0.2.1"),
	GOOD("<u@127.0.0.1>", 0, 0, REMOTE, false, "u", "127.0.0.1"),

	/* --- trailing dots, relay domains --- */
	/* trailing dot on our domain: still ours */
	GOOD("<u@localhost.>", 0, F_TDOT, LOCAL, false, "u", "localhost"),
	/* trailing dot on theirs */
	GOOD("<u@victim.example.>", 0, F_TDOT, REMOTE, false, "u", "victim.example"),
	/* two trailing dots */
	BAD("<u@ourdomain.example..>", SYNTAX),
	/* relay domain, exact */
	GOOD("<u@backup.example>", 0, 0, RELAY, false, "u", "backup.example"),
	/* relay domain, ".sub.example" matches a subdomain ... */
	GOOD("<u@x.sub.example>", 0, 0, RELAY, false, "u", "x.sub.example"),
	/* ... but not sub.example itself */
	GOOD("<u@sub.example>", 0, 0, REMOTE, false, "u", "sub.example"),
	/* nor a name that merely ends in the same letters */
	GOOD("<u@xsub.example>", 0, 0, REMOTE, false, "u", "xsub.example"),
	/* an exact relay entry does not cover its subdomains */
	GOOD("<u@x.backup.example>", 0, 0, REMOTE, false, "u", "x.backup.example"),

	/* --- unqualified, postmaster, null path --- */
	/* unqualified: myorigin, which is not ours here */
	GOOD("<victim>", 0, F_UNQUAL, REMOTE, false, "victim", "mail.ourdomain.example"),
	/* bare postmaster must reach our postmaster (RFC 5321 4.5.1) */
	GOOD("<postmaster>", 0, F_UNQUAL, LOCAL, false, "postmaster", "localhost"),
	GOOD("<Postmaster>", 0, F_UNQUAL, LOCAL, false, "postmaster", "localhost"),
	/* postmaster with routing is not the special case */
	GOOD("<postmaster%victim.example>", PCT, 0, REMOTE, true, "postmaster", "victim.example"),
	/* the null path */
	{__LINE__, "<>", ADDR_OK, 0, F_NULL, NO_RESOLVE, false, NULL, NULL, ""},
	{__LINE__, "<>  SIZE=5", ADDR_OK, 0, F_NULL, NO_RESOLVE, false, NULL, NULL, "SIZE=5"},

	/* --- routing that leads nowhere --- */
	/* empty domain after '%' */
	GOOD("<u%@localhost>", PCT, 0, INVALID, true, "u", ""),
	/* empty user before '%' */
	GOOD("<%victim.example@localhost>", PCT, 0, INVALID, true, "", "victim.example"),
	/* empty host before '!' */
	GOOD("<!u@localhost>", BANG, 0, INVALID, true, "u", ""),
	/* empty user after '!' */
	GOOD("<u!@localhost>", BANG, 0, INVALID, true, "", "u"),
	/* empty domain after a quoted '@' */
	GOOD("<\"u@\"@localhost>", AT, F_QUOTED, INVALID, true, "u", ""),
	/* not a host name after '%' */
	GOOD("<\"u%-bad-.example\"@localhost>", PCT, F_QUOTED, INVALID, true, "u",
	     "-bad-.example"),
	/* a broken literal after '@' or '%' leads nowhere either (see report) */
	GOOD("<\"u@[999.1.1.1]\"@localhost>", AT, F_QUOTED, INVALID, true, "u", "[999.1.1.1]"),
	GOOD("<\"u%[garbage\"@localhost>", PCT, F_QUOTED, INVALID, true, "u", "[garbage"),
	/* a literal that is fine after '%' is followed: ours, so local */
	GOOD("<\"u%[IPv6:::1]\"@localhost>", PCT, F_QUOTED, LOCAL, true, "u", "localhost"),

	/* --- RFC 5321 size limits --- */
	/* local part of 64 octets: fine */
	GOOD(arg_l64, 0, 0, LOCAL, false, l64, "localhost"),
	/* 65: too long */
	BAD(arg_l65, TOO_LONG),
	/* quoted: 64 decoded octets accepted, 65 refused */
	GOOD(arg_q64, 0, F_QUOTED, LOCAL, false, l64, "localhost"),
	BAD(arg_q65, TOO_LONG),
	/* label of 63 octets: fine */
	GOOD(arg_lbl63, 0, 0, REMOTE, false, "u", dom_lbl63),
	/* label of 64: not a domain */
	BAD(arg_lbl64, SYNTAX),
	/* a 252-octet domain makes exactly a 256-octet path: fine */
	GOOD(arg_dom252, 0, 0, REMOTE, false, "u", dom252),
	/* one more octet of domain: the path is over 256 */
	BAD(arg_dom253, TOO_LONG),
	/* a 255-octet domain (the domain maximum) never fits in a 256-octet path */
	BAD(arg_dom255, TOO_LONG),
	/* 257-octet path from a longer local part */
	BAD(arg_path257, TOO_LONG),
	/* the overflow in a source route */
	BAD(arg_route257, TOO_LONG),

	/* --- framing and parameters --- */
	/* ESMTP parameters are handed back */
	GOODP("<a@b.example> SIZE=100", "SIZE=100", 0, 0, REMOTE, false, "a", "b.example"),
	GOODP("<a@b.example>   SIZE=100 BODY=8BITMIME", "SIZE=100 BODY=8BITMIME", 0, 0, REMOTE,
	      false, "a", "b.example"),
	/* a trailing blank is not a parameter */
	GOOD("<u@localhost> ", 0, 0, LOCAL, false, "u", "localhost"),
	/* '>' inside a quoted string does not end the path */
	GOOD("<\"a>b\"@localhost>", 0, F_QUOTED, LOCAL, false, "a>b", "localhost"),
	/* missing <> */
	BAD("a@b.example", SYNTAX),
	BAD("", SYNTAX),
	/* missing '>' */
	BAD("<a@b.example", SYNTAX),
	/* quote opened and never closed swallows the '>' */
	BAD("<\"@localhost>", SYNTAX),
	/* text right after '>' */
	BAD("<a@b.example>SIZE=100", SYNTAX),
	BAD("<u@localhost>>", SYNTAX),
	BAD("<u@localhost>\t", SYNTAX),
	/* nested brackets */
	BAD("<<u@localhost>>", SYNTAX),
	/* trailing @: nothing after the last '@' */
	BAD("<victim@example.net@>", SYNTAX),

	/* --- local part and domain syntax --- */
	BAD("<.u@localhost>", SYNTAX),
	BAD("<u.@localhost>", SYNTAX),
	BAD("<u..v@localhost>", SYNTAX),
	BAD("<u @localhost>", SYNTAX),
	BAD("<u@local host>", SYNTAX),
	BAD("<\"a\"b@localhost>", SYNTAX),
	BAD("<u@-bad.example>", SYNTAX),
	BAD("<u@bad-.example>", SYNTAX),
	BAD("<u@a..example>", SYNTAX),
	BAD("<u@under_score.example>", SYNTAX),
	/* a '%' next to a dot is not a dot-string */
	BAD("<u%victim.example.@localhost>", SYNTAX),
	/* a literal cannot be written unquoted inside a local part */
	BAD("<u%[127.0.0.1]@localhost>", SYNTAX),

	/* --- non-ASCII: SMTPUTF8 is not offered --- */
	BAD("<\xc3\xbc@localhost>", NON_ASCII),
	BAD("<u@b\xc3\xbc" "cher.example>", NON_ASCII),
	BAD("<\"\xc3\xbc\"@localhost>", NON_ASCII),
};

static const char *const mydestination[] = {"localhost", "ourdomain.example", NULL};
static const char *const relay_domains[] = {"backup.example", ".sub.example", NULL};

static void check_resolution(const struct row *w, const struct address *a,
			     const struct addr_domains *d)
{
	struct addr_resolution r;
	address_resolve(a, d, &r);
	CHECK_AT(w->line, (int)r.cls == w->cls, "%s: class %s, want %s", w->arg,
		 address_class_name(r.cls), address_class_name((enum addr_class)w->cls));
	CHECK_AT(w->line, r.routed == w->routed, "%s: routed %d, want %d", w->arg, r.routed,
		 w->routed);
	CHECK_AT(w->line, r.unqualified == !!(w->flags & F_UNQUAL), "%s: unqualified %d", w->arg,
		 r.unqualified);
	CHECK_STR_AT(w->line, r.local, w->local, w->arg);
	CHECK_STR_AT(w->line, r.domain, w->domain, w->arg);
}

static void check_row(const struct row *w, const struct addr_domains *d)
{
	struct address a;
	const char *params = NULL;
	char err[256] = "";
	enum addr_error e = address_parse(w->arg, &a, &params, err, sizeof(err));
	CHECK_AT(w->line, e == w->err, "%s: address_parse %d (%s), want %d", w->arg, e, err,
		 w->err);
	if (e != ADDR_OK || w->err != ADDR_OK) {
		/* a refusal must tell the client why */
		CHECK_AT(w->line, e == ADDR_OK || err[0] != '\0', "%s: empty error text", w->arg);
		return;
	}
	char got[64], want[64];
	address_routing_names(a.routing, got, sizeof(got));
	address_routing_names(w->routing, want, sizeof(want));
	CHECK_AT(w->line, a.routing == w->routing, "%s: routing %s, want %s", w->arg, got, want);
	unsigned flags = (a.null ? F_NULL : 0) | (a.quoted ? F_QUOTED : 0) |
			 (a.literal ? F_LITERAL : 0) | (a.trailing_dot ? F_TDOT : 0);
	unsigned want_flags = w->flags & ~(unsigned)F_UNQUAL;
	CHECK_AT(w->line, flags == want_flags, "%s: parse flags %#x, want %#x", w->arg, flags,
		 want_flags);
	CHECK_STR_AT(w->line, params, w->params, w->arg);
	if (w->cls != NO_RESOLVE)
		check_resolution(w, &a, d);
}

/* address_domain_listed - exact names and ".parent" patterns, nothing else. */
static void check_domain_listed(void)
{
	static const struct {
		int line;
		const char *domain;
		bool want;
	} t[] = {
		{__LINE__, "backup.example", true},   {__LINE__, "BACKUP.Example", true},
		{__LINE__, "x.backup.example", false}, {__LINE__, "a.b.sub.example", true},
		{__LINE__, "sub.example", false},      {__LINE__, ".sub.example", false},
		{__LINE__, "xsub.example", false},     {__LINE__, "example", false},
		{__LINE__, "", false},
	};
	for (size_t k = 0; k < RG_ARRAY_LEN(t); k++)
		CHECK_AT(t[k].line, address_domain_listed(t[k].domain, relay_domains) == t[k].want,
			 "address_domain_listed(\"%s\") != %d", t[k].domain, t[k].want);
	CHECK(!address_domain_listed("localhost", NULL), "a NULL list lists nothing");
}

static void check_names(void)
{
	static const struct {
		int line;
		unsigned routing;
		const char *want;
	} t[] = {
		{__LINE__, 0, "none"},
		{__LINE__, SRC, "source-route"},
		{__LINE__, SRC | AT | PCT | BANG,
		 "source-route,at-in-local-part,percent-hack,bang-path"},
		{__LINE__, PCT | BANG, "percent-hack,bang-path"},
	};
	for (size_t k = 0; k < RG_ARRAY_LEN(t); k++) {
		char buf[80];
		address_routing_names(t[k].routing, buf, sizeof(buf));
		CHECK_STR_AT(t[k].line, buf, t[k].want, "address_routing_names");
	}
	/* a short buffer truncates; it never overflows */
	char small[8];
	address_routing_names(SRC | AT, small, sizeof(small));
	CHECK_STR_AT(__LINE__, small, "source-", "address_routing_names(8 bytes)");
	CHECK_STR_AT(__LINE__, address_class_name(ADDR_CLASS_INVALID), "invalid", "class name");
}

int main(void)
{
	struct rg_ip ips[2];
	CHECK(ip_parse("127.0.0.1", &ips[0]) && ip_parse("::1", &ips[1]), "ip_parse");
	struct addr_domains d = {
		.mydestination = mydestination,
		.relay_domains = relay_domains,
		.local_ips = ips,
		.n_local_ips = RG_ARRAY_LEN(ips),
		.myorigin = "mail.ourdomain.example",
	};
	build_long_inputs();
	for (size_t k = 0; k < RG_ARRAY_LEN(rows); k++)
		check_row(&rows[k], &d);
	check_domain_listed();
	check_names();
	return check_summary("address");
}
