/*
 * test_dmarc.c - DMARC (RFC 7489): record grammar, Organizational Domain
 * (the Public Suffix List's own test file, ../shared/testdata/dmarc/psl),
 * alignment, policy discovery through a TXT table, and the verdict.
 *
 * Discovery runs against an in-process TXT table behind the same
 * struct dmarc_resolver the server wires to c-ares, answering either at
 * once (inside start) or later (as an event loop would), so both paths of
 * the driver are exercised; cancellation must free everything (ASan build).
 */
#include "check.h"
#include "files.h"
#include "msgauth/dmarc.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>

/* ---- records --------------------------------------------------------------- */

struct rec_row {
	int line;
	const char *txt;
	enum dmarc_parse st;
	enum dmarc_policy p, sp, np;
	unsigned pct;
	const char *align; /* adkim, aspf: "rr", "sr", ... */
	unsigned bad;
};

#define NONE DMARC_P_NONE
#define QUAR DMARC_P_QUARANTINE
#define REJ DMARC_P_REJECT
#define UNSET DMARC_P_UNSET
#define REC(t, st, p, sp, np, pct, al, bad) {__LINE__, t, st, p, sp, np, pct, al, bad}
#define OKR(t, p, sp, np, pct, al, bad) REC(t, DMARC_REC_OK, p, sp, np, pct, al, bad)
#define NOTD(t) REC(t, DMARC_REC_NOT_DMARC, UNSET, UNSET, UNSET, 100, "rr", 0)

static const struct rec_row recs[] = {
	OKR("v=DMARC1; p=reject", REJ, UNSET, UNSET, 100, "rr", 0),
	OKR("v=DMARC1;p=quarantine;sp=none;np=reject;pct=20;adkim=s;aspf=s", QUAR, NONE, REJ, 20,
	    "ss", 0),
	OKR("V = dmarc1 ; P = Reject ; ADKIM = s", REJ, UNSET, UNSET, 100, "sr", 0), /* ABNF: any case */
	OKR("v=DMARC1; p=none; foo=bar; x=; ; ;", NONE, UNSET, UNSET, 100, "rr", 0),
	OKR("v=DMARC1; p=none; pct=0", NONE, UNSET, UNSET, 0, "rr", 0),
	OKR("v=DMARC1; p=none; pct=101", NONE, UNSET, UNSET, 100, "rr", DMARC_BAD_PCT),
	OKR("v=DMARC1; p=none; pct=-1", NONE, UNSET, UNSET, 100, "rr", DMARC_BAD_PCT),
	OKR("v=DMARC1; p=none; pct=1000", NONE, UNSET, UNSET, 100, "rr", DMARC_BAD_PCT),
	OKR("v=DMARC1; p=reject; adkim=x; aspf=relaxed", REJ, UNSET, UNSET, 100, "rr",
	    DMARC_BAD_ADKIM | DMARC_BAD_ASPF),
	OKR("v=DMARC1; p=reject; np=bogus", REJ, UNSET, UNSET, 100, "rr", DMARC_BAD_NP),
	OKR("v=DMARC1; p=none; fo=1:d:s; rf=afrf; ri=3600", NONE, UNSET, UNSET, 100, "rr", 0),
	OKR("v=DMARC1; p=none; fo=2", NONE, UNSET, UNSET, 100, "rr", DMARC_BAD_FO),
	OKR("v=DMARC1; p=none; garbage", NONE, UNSET, UNSET, 100, "rr", DMARC_BAD_SYNTAX),
	OKR("v=DMARC1; p=none; rua=mailto:d@example.com,https://example.com/r!10m", NONE, UNSET,
	    UNSET, 100, "rr", 0),
	OKR("v=DMARC1; p=none; rua=not a uri", NONE, UNSET, UNSET, 100, "rr", DMARC_BAD_RUA),
	/* 6.6.3: no valid p= (or a bad sp=) with a valid rua= is p=none */
	OKR("v=DMARC1; rua=mailto:d@example.com", NONE, UNSET, UNSET, 100, "rr", 0),
	OKR("v=DMARC1; p=nonsense; rua=mailto:d@example.com", NONE, UNSET, UNSET, 100, "rr",
	    DMARC_BAD_P),
	OKR("v=DMARC1; p=reject; sp=bad; rua=mailto:d@example.com", NONE, UNSET, UNSET, 100, "rr",
	    DMARC_BAD_SP),
	REC("v=DMARC1; pct=100", DMARC_REC_NO_POLICY, UNSET, UNSET, UNSET, 100, "rr", 0),
	REC("v=DMARC1; p=n", DMARC_REC_NO_POLICY, UNSET, UNSET, UNSET, 100, "rr", DMARC_BAD_P),
	REC("v=DMARC1; p=reject; sp=bad", DMARC_REC_NO_POLICY, REJ, UNSET, UNSET, 100, "rr",
	    DMARC_BAD_SP),
	/* not DMARC records at all: discarded before counting */
	NOTD(""),
	NOTD("v=spf1 -all"),
	NOTD("p=reject; v=DMARC1"),
	NOTD(" v=DMARC1; p=reject"),
	NOTD("; v=DMARC1; p=reject"),
	NOTD("v=DMARC2; p=reject"),
	NOTD("v=DMARC1p=reject"),
	NOTD("v=DMARC10; p=reject"),
};

static void record_row(const struct rec_row *r)
{
	struct dmarc_record got;
	enum dmarc_parse st = dmarc_record_parse(r->txt, strlen(r->txt), &got);
	CHECK_AT(r->line, st == r->st, "status %d, want %d", st, r->st);
	if (st == DMARC_REC_NOT_DMARC)
		return;
	CHECK_AT(r->line, got.p == r->p && got.sp == r->sp && got.np == r->np,
		 "p/sp/np %s/%s/%s", dmarc_policy_name(got.p), dmarc_policy_name(got.sp),
		 dmarc_policy_name(got.np));
	CHECK_AT(r->line, got.pct == r->pct, "pct %u", got.pct);
	char al[3] = {got.adkim == DMARC_ALIGN_STRICT ? 's' : 'r',
		      got.aspf == DMARC_ALIGN_STRICT ? 's' : 'r', '\0'};
	CHECK_STR_AT(r->line, al, r->align, "adkim/aspf");
	CHECK_AT(r->line, got.bad == r->bad, "bad 0x%x, want 0x%x", got.bad, r->bad);
}

/* record_bounds - over-long and NUL-carrying records are not records. */
static void record_bounds(void)
{
	static char big[DMARC_RECORD_MAX + 2];
	memset(big, 'x', sizeof(big));
	memcpy(big, "v=DMARC1; p=reject; x=", 22);
	struct dmarc_record r;
	CHECK(dmarc_record_parse(big, DMARC_RECORD_MAX, &r) == DMARC_REC_OK, "at the limit");
	CHECK(dmarc_record_parse(big, DMARC_RECORD_MAX + 1, &r) == DMARC_REC_NOT_DMARC, "over it");
	CHECK(dmarc_record_parse("v=DMARC1; p=reject\0", 19, &r) == DMARC_REC_NOT_DMARC, "NUL");
	const char *ri = "v=DMARC1; p=none; ri=99999999999";
	CHECK(dmarc_record_parse(ri, strlen(ri), &r) == DMARC_REC_OK && (r.bad & DMARC_BAD_RI),
	      "ri over 32 bits");
}

/* ---- alignment and the Organizational Domain ------------------------------ */

struct align_row {
	int line;
	const char *a, *b;
	bool relaxed, strict;
};

#define AL(a, b, r, s) {__LINE__, a, b, r, s}

static const struct align_row aligns[] = {
	AL("example.com", "example.com", true, true),
	AL("EXAMPLE.com", "example.COM.", true, true), /* case, one trailing dot */
	AL("mail.example.com", "example.com", true, false),
	AL("a.example.com", "b.example.com", true, false),
	AL("example.co.uk", "other.co.uk", false, false), /* co.uk is a public suffix */
	AL("a.example.co.uk", "example.co.uk", true, false),
	AL("paypal.example", "paypal.example.evil.example", false, false),
	AL("evil-paypal.example", "paypal.example", false, false),
	AL("com", "com", true, true),
	AL("example.com", "com", false, false),
	AL("github.io", "a.github.io", false, false), /* PRIVATE section counts too */
	AL("x.a.github.io", "a.github.io", true, false),
	/* a PSL wildcard (*.ck): b.ck is a public suffix, so a.b.ck and c.b.ck
	 * are different organisations; the exception !www.ck is registrable */
	AL("a.b.ck", "c.b.ck", false, false),
	AL("x.a.b.ck", "a.b.ck", true, false),
	AL("x.www.ck", "www.ck", true, false),
	AL("b.ck", "a.b.ck", false, false),
	/* IDN: the A-label and the U-label forms are not compared as equal (fail closed) */
	AL("xn--bcher-kva.example", "b\xc3\xbc" "cher.example", false, false),
	AL("a.xn--bcher-kva.example", "xn--bcher-kva.example", true, false),
	AL("", "", false, false),
	AL(".example.com", "example.com", false, false),
	AL("example..com", "example..com", false, false),
	AL("example.com..", "example.com", false, false),
};

static void align_row(const struct align_row *r)
{
	bool rel = dmarc_aligned(r->a, r->b, DMARC_ALIGN_RELAXED);
	bool str = dmarc_aligned(r->a, r->b, DMARC_ALIGN_STRICT);
	CHECK_AT(r->line, rel == r->relaxed && str == r->strict, "relaxed %d strict %d", rel, str);
}

/* psl_line - one checkPublicSuffix('in', 'out'|null); line, or false. */
static bool psl_line(const char *line, char *in, char *out, size_t size, bool *null_out)
{
	const char *p = strstr(line, "checkPublicSuffix(");
	if (p == NULL || strncmp(line, "//", 2) == 0)
		return false;
	p += strlen("checkPublicSuffix(");
	if (strncmp(p, "null", 4) == 0)
		return false; /* no string to pass */
	if (sscanf(p, "'%255[^']', ", in) != 1)
		return false;
	p = strchr(p + 1, '\'');
	p = p ? strstr(p, ", ") : NULL;
	if (p == NULL)
		return false;
	*null_out = strncmp(p + 2, "null", 4) == 0;
	return *null_out || sscanf(p + 2, "'%255[^']'", out) == 1 || (size == 0);
}

/* psl_file - the PSL project's own tests; skipped (and said so) without the
 * shared test data. */
static unsigned psl_file(void)
{
	struct strbuf sb = read_at(AT_FDCWD, "../shared/testdata/dmarc/psl/test_psl.txt");
	if (sb.len == 0) {
		printf("skipped: ../shared/testdata/dmarc/psl/test_psl.txt not found\n");
		strbuf_free(&sb);
		return 1;
	}
	unsigned cases = 0, lineno = 0;
	for (char *save = NULL, *l = strtok_r(sb.data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char in[256], want[256] = "", got[256];
		bool null_out;
		lineno++;
		if (!psl_line(l, in, want, sizeof(want), &null_out))
			continue;
		cases++;
		bool ok = dmarc_org_domain(in, got, sizeof(got));
		CHECK(null_out ? !ok : ok && strcmp(got, want) == 0, "test_psl.txt line %u: %s -> %s",
		      lineno, in, ok ? got : "null");
	}
	CHECK(cases >= 77, "only %u PSL cases read", cases); /* 78 less the null input */
	strbuf_free(&sb);
	return 0;
}

/* ---- discovery ----------------------------------------------------------------- */

struct zone {
	const char *name;
	enum dmarc_dns st;
	const char *txt[3];
};

struct fake {
	const struct zone *zone;
	bool async;
	char asked[4][300];
	int nasked, cancelled;
	dmarc_txt_cb cb;  /* the pending query (async) */
	void *arg;
	const struct zone *answer;
};

static const struct zone nx = {"", DMARC_DNS_NXDOMAIN, {NULL}};

/* deliver - answer the pending query. */
static void deliver(struct fake *f)
{
	const char *txt[3];
	size_t len[3], n = 0;
	for (; n < 3 && f->answer->txt[n] != NULL; n++) {
		txt[n] = f->answer->txt[n];
		len[n] = strlen(txt[n]);
	}
	dmarc_txt_cb cb = f->cb;
	f->cb = NULL;
	cb(f->arg, f->answer->st, txt, len, n);
}

static void *fake_start(void *ctx, const char *name, dmarc_txt_cb cb, void *arg)
{
	struct fake *f = ctx;
	if (f->nasked < 4)
		rg_strlcpy(f->asked[f->nasked], name, sizeof(f->asked[0]));
	f->nasked++;
	f->answer = &nx;
	for (const struct zone *z = f->zone; z->name != NULL; z++)
		if (strcmp(z->name, name) == 0)
			f->answer = z;
	f->cb = cb;
	f->arg = arg;
	if (!f->async)
		deliver(f);
	return f;
}

static void fake_cancel(void *ctx, void *handle)
{
	struct fake *f = ctx;
	CHECK(handle == f, "cancel got the handle start returned");
	f->cancelled++;
	f->cb = NULL;
}

struct outcome {
	bool called;
	struct dmarc_discovery d;
};

static void on_done(void *arg, const struct dmarc_discovery *d)
{
	struct outcome *o = arg;
	CHECK(!o->called, "done called twice");
	o->called = true;
	o->d = *d;
}

/* discover - run discovery for from against zone, sync or async. */
static struct outcome discover(const struct zone *zone, const char *from, bool async,
			       struct fake *f)
{
	struct outcome o = {0};
	memset(f, 0, sizeof(*f));
	f->zone = zone;
	f->async = async;
	struct dmarc_resolver res = {fake_start, fake_cancel, f};
	struct dmarc_lookup *l = dmarc_lookup_start(&res, from, on_done, &o);
	CHECK(async || l == NULL, "a synchronous discovery is over when start returns");
	for (int i = 0; i < 8 && f->cb != NULL; i++)
		deliver(f);
	return o;
}

static const struct zone zone[] = {
	{"_dmarc.paypal.example", DMARC_DNS_OK,
	 {"v=spf1 -all", "v=DMARC1; p=reject; sp=quarantine; np=reject; rua=mailto:r@paypal.example"}},
	{"_dmarc.own.paypal.example", DMARC_DNS_OK, {"v=DMARC1; p=none"}},
	{"_dmarc.ghost.paypal.example", DMARC_DNS_NXDOMAIN, {NULL}},
	{"real.paypal.example", DMARC_DNS_OK, {NULL}},
	{"_dmarc.two.example", DMARC_DNS_OK, {"v=DMARC1; p=reject", "v=DMARC1; p=none"}},
	{"_dmarc.sub.two.example", DMARC_DNS_OK, {"not dmarc"}},
	{"_dmarc.broken.example", DMARC_DNS_OK, {"v=DMARC1; pct=50"}},
	{"_dmarc.flaky.example", DMARC_DNS_TEMPFAIL, {NULL}},
	{"_dmarc.x.flaky.example", DMARC_DNS_NXDOMAIN, {NULL}},
	{"_dmarc.dnsdown.example", DMARC_DNS_OK, {"v=DMARC1; p=reject; np=reject"}},
	{"a.dnsdown.example", DMARC_DNS_TEMPFAIL, {NULL}},
	{NULL, DMARC_DNS_OK, {NULL}},
};

struct disc_row {
	int line;
	const char *from;
	enum dmarc_found found;
	const char *record_domain;
	bool nonexistent;
	const char *asked[4];
};

#define L41 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define L63 L41 "aaaaaaaaaaaaaaaaaaaaaa"
#define D(from, found, rd, nonex, ...) {__LINE__, from, found, rd, nonex, {__VA_ARGS__}}

static const struct disc_row discs[] = {
	D("paypal.example", DMARC_FOUND, "paypal.example", false, "_dmarc.paypal.example"),
	D("PayPal.Example.", DMARC_FOUND, "paypal.example", false, "_dmarc.paypal.example"),
	D("own.paypal.example", DMARC_FOUND, "own.paypal.example", false, "_dmarc.own.paypal.example"),
	/* a subdomain with np=: is it there? (NXDOMAIN for the name itself) */
	D("ghost.paypal.example", DMARC_FOUND, "paypal.example", true, "_dmarc.ghost.paypal.example",
	  "_dmarc.paypal.example", "ghost.paypal.example"),
	D("real.paypal.example", DMARC_FOUND, "paypal.example", false, "_dmarc.real.paypal.example",
	  "_dmarc.paypal.example", "real.paypal.example"),
	/* several DMARC records: no policy, and no fall-back to the org domain */
	D("two.example", DMARC_FOUND_NONE, "", false, "_dmarc.two.example"),
	D("sub.two.example", DMARC_FOUND_NONE, "", false, "_dmarc.sub.two.example",
	  "_dmarc.two.example"),
	D("broken.example", DMARC_FOUND_NONE, "", false, "_dmarc.broken.example"),
	D("flaky.example", DMARC_FOUND_TEMP, "", false, "_dmarc.flaky.example"),
	D("x.flaky.example", DMARC_FOUND_TEMP, "", false, "_dmarc.x.flaky.example",
	  "_dmarc.flaky.example"),
	/* the existence probe failing only loses np= */
	D("a.dnsdown.example", DMARC_FOUND, "dnsdown.example", false, "_dmarc.a.dnsdown.example",
	  "_dmarc.dnsdown.example", "a.dnsdown.example"),
	D("nothing.example", DMARC_FOUND_NONE, "", false, "_dmarc.nothing.example"),
	D("a.b.nothing.example", DMARC_FOUND_NONE, "", false, "_dmarc.a.b.nothing.example",
	  "_dmarc.nothing.example"),
	D("co.uk", DMARC_FOUND_NONE, "", false, "_dmarc.co.uk"), /* a public suffix: itself only */
	/* a 248-byte author domain: _dmarc.<it> is too long a name, but the org
	 * domain's p=reject still applies (no way around a policy by length) */
	D(L63 "." L63 "." L63 "." L41 ".paypal.example", DMARC_FOUND, "paypal.example", true,
	  "_dmarc.paypal.example", L63 "." L63 "." L63 "." L41 ".paypal.example"),
	D("bad..example", DMARC_FOUND_NONE, "", false, NULL),
	D("", DMARC_FOUND_NONE, "", false, NULL),
};

static void disc_row(const struct disc_row *r, bool async)
{
	struct fake f;
	struct outcome o = discover(zone, r->from, async, &f);
	CHECK_AT(r->line, o.called, "done was not called (async %d)", async);
	CHECK_AT(r->line, o.d.found == r->found, "found %d, want %d (%s)", o.d.found, r->found, o.d.why);
	CHECK_STR_AT(r->line, o.d.record_domain, r->record_domain, "record domain");
	CHECK_AT(r->line, o.d.from_nonexistent == r->nonexistent, "nonexistent %d", o.d.from_nonexistent);
	int want = 0;
	while (want < 4 && r->asked[want] != NULL)
		want++;
	CHECK_AT(r->line, f.nasked == want, "%d queries, want %d", f.nasked, want);
	for (int i = 0; i < want && i < f.nasked; i++)
		CHECK_STR_AT(r->line, f.asked[i], r->asked[i], "query");
}

/* cancel - a lookup cancelled while its query is out: the query is
 * cancelled, done never runs, nothing leaks (ASan). */
static void cancel(void)
{
	struct fake f = {.zone = zone, .async = true};
	struct outcome o = {0};
	struct dmarc_resolver res = {fake_start, fake_cancel, &f};
	struct dmarc_lookup *l = dmarc_lookup_start(&res, "ghost.paypal.example", on_done, &o);
	CHECK(l != NULL && f.nasked == 1, "a query is out");
	deliver(&f); /* the first answer: on to the org domain */
	CHECK(f.nasked == 2 && f.cb != NULL, "second query out");
	dmarc_lookup_cancel(l);
	CHECK(f.cancelled == 1 && !o.called, "cancelled: %d, done %d", f.cancelled, o.called);
	dmarc_lookup_cancel(NULL);
}

/* ---- the verdict ---------------------------------------------------------------- */

struct eval_row {
	int line;
	enum from_status from;   /* the From: outcome */
	size_t fields;           /* From: fields */
	const char *author;      /* its domain */
	const char *record;      /* the policy found, NULL: none */
	const char *record_at;   /* where */
	bool nonexistent;
	const char *spf;         /* SPF domain; "!" prefix: SPF did not pass */
	const char *dkim;        /* d= of a signature; "!" prefix: did not verify */
	unsigned sample;
	enum dmarc_result result;
	enum dmarc_disposition disp;
	const char *tag;         /* p, sp, np, "" */
};

#define PASS DMARC_PASS
#define FAIL DMARC_FAIL
#define DNONE DMARC_NONE
#define TEMP DMARC_TEMPERROR
#define DN DMARC_DISP_NONE
#define DQ DMARC_DISP_QUARANTINE
#define DR DMARC_DISP_REJECT
#define E(from, n, author, rec, at, nx, spf, dkim, smp, res, disp, tag) \
	{__LINE__, from, n, author, rec, at, nx, spf, dkim, smp, res, disp, tag}
#define REJECT_REC "v=DMARC1; p=reject"

static const struct eval_row evals[] = {
	/* the seed's attack: forged From, SPF fails, no signature */
	E(FROM_OK, 1, "paypal.example", REJECT_REC, "paypal.example", false, "!attacker.example", NULL,
	  0, FAIL, DR, "p"),
	/* SPF passes for the attacker's own domain: passing is not aligning */
	E(FROM_OK, 1, "paypal.example", REJECT_REC, "paypal.example", false, "attacker.example", NULL,
	  0, FAIL, DR, "p"),
	E(FROM_OK, 1, "paypal.example", REJECT_REC, "paypal.example", false, NULL, "attacker.example",
	  0, FAIL, DR, "p"),
	/* the real sender */
	E(FROM_OK, 1, "paypal.example", REJECT_REC, "paypal.example", false, "paypal.example", NULL, 0,
	  PASS, DN, "p"),
	E(FROM_OK, 1, "paypal.example", REJECT_REC, "paypal.example", false, "bounces.paypal.example",
	  NULL, 0, PASS, DN, "p"),
	E(FROM_OK, 1, "paypal.example", REJECT_REC, "paypal.example", false, NULL, "mail.paypal.example",
	  0, PASS, DN, "p"),
	E(FROM_OK, 1, "paypal.example", REJECT_REC, "paypal.example", false, NULL, "!paypal.example", 0,
	  FAIL, DR, "p"),
	/* strict alignment */
	E(FROM_OK, 1, "paypal.example", "v=DMARC1; p=reject; aspf=s", "paypal.example", false,
	  "bounces.paypal.example", NULL, 0, FAIL, DR, "p"),
	E(FROM_OK, 1, "paypal.example", "v=DMARC1; p=reject; adkim=s", "paypal.example", false, NULL,
	  "mail.paypal.example", 0, FAIL, DR, "p"),
	E(FROM_OK, 1, "paypal.example", "v=DMARC1; p=reject; adkim=s", "paypal.example", false, NULL,
	  "PAYPAL.example", 0, PASS, DN, "p"),
	/* policies */
	E(FROM_OK, 1, "example.com", "v=DMARC1; p=quarantine", "example.com", false, NULL, NULL, 0,
	  FAIL, DQ, "p"),
	E(FROM_OK, 1, "example.com", "v=DMARC1; p=none", "example.com", false, NULL, NULL, 0, FAIL, DN,
	  "p"),
	/* pct=: inside the sample the policy, outside one step milder */
	E(FROM_OK, 1, "example.com", "v=DMARC1; p=reject; pct=50", "example.com", false, NULL, NULL, 49,
	  FAIL, DR, "p"),
	E(FROM_OK, 1, "example.com", "v=DMARC1; p=reject; pct=50", "example.com", false, NULL, NULL, 50,
	  FAIL, DQ, "p"),
	E(FROM_OK, 1, "example.com", "v=DMARC1; p=quarantine; pct=0", "example.com", false, NULL, NULL,
	  0, FAIL, DN, "p"),
	E(FROM_OK, 1, "example.com", "v=DMARC1; p=reject; pct=100", "example.com", false, NULL, NULL,
	  99, FAIL, DR, "p"),
	/* subdomains: sp=, and np= for one that does not exist */
	E(FROM_OK, 1, "a.example.com", "v=DMARC1; p=reject; sp=none", "example.com", false, NULL, NULL,
	  0, FAIL, DN, "sp"),
	E(FROM_OK, 1, "a.example.com", "v=DMARC1; p=quarantine", "example.com", false, NULL, NULL, 0,
	  FAIL, DQ, "p"),
	E(FROM_OK, 1, "a.example.com", "v=DMARC1; p=none; sp=none; np=reject", "example.com", true,
	  NULL, NULL, 0, FAIL, DR, "np"),
	E(FROM_OK, 1, "a.example.com", "v=DMARC1; p=none; sp=quarantine; np=reject", "example.com",
	  false, NULL, NULL, 0, FAIL, DQ, "sp"),
	E(FROM_OK, 1, "a.example.com", "v=DMARC1; p=none; sp=quarantine", "example.com", true, NULL,
	  NULL, 0, FAIL, DQ, "sp"),
	/* no policy, DNS trouble */
	E(FROM_OK, 1, "example.com", NULL, "", false, NULL, NULL, 0, DNONE, DN, ""),
	E(FROM_OK, 1, "example.com", "temp", "", false, NULL, NULL, 0, TEMP, DN, ""),
	/* the From: itself (CVE-2019-16378): a failure of its own, whatever DNS says */
	E(FROM_MULTIPLE_DOMAINS, 1, "", NULL, "", false, NULL, NULL, 0, FAIL, DR, ""),
	E(FROM_EMPTY, 1, "", NULL, "", false, NULL, NULL, 0, FAIL, DR, ""),
	E(FROM_SYNTAX, 1, "", NULL, "", false, NULL, NULL, 0, FAIL, DR, ""),
	E(FROM_NO_DOMAIN, 1, "", NULL, "", false, NULL, NULL, 0, FAIL, DR, ""),
	E(FROM_OK, 2, "paypal.example", REJECT_REC, "paypal.example", false, "paypal.example", NULL, 0,
	  FAIL, DR, ""),
	E(FROM_OK, 0, "paypal.example", NULL, "", false, NULL, NULL, 0, FAIL, DR, ""),
};

/* eval_row - one verdict. */
static void eval_row(const struct eval_row *r)
{
	struct from_result from = {.status = r->from, .mailboxes = 1, .ndomains = 1};
	rg_strlcpy(from.domain[0], r->author, sizeof(from.domain[0]));
	struct dmarc_discovery d = {.found = DMARC_FOUND_NONE};
	rg_strlcpy(d.from_domain, r->author, sizeof(d.from_domain));
	rg_strlcpy(d.record_domain, r->record_at, sizeof(d.record_domain));
	d.from_nonexistent = r->nonexistent;
	if (r->record != NULL && strcmp(r->record, "temp") == 0)
		d.found = DMARC_FOUND_TEMP;
	else if (r->record != NULL)
		d.found = dmarc_record_parse(r->record, strlen(r->record), &d.rec) == DMARC_REC_OK
				  ? DMARC_FOUND : DMARC_FOUND_NONE;
	struct dmarc_dkim_sig sig = {r->dkim ? r->dkim + (r->dkim[0] == '!') : NULL,
				     r->dkim && r->dkim[0] != '!'};
	struct dmarc_input in = {&from, r->fields, r->spf ? r->spf + (r->spf[0] == '!') : NULL,
				 r->spf && r->spf[0] != '!', &sig, r->dkim ? 1 : 0, r->sample};
	struct dmarc_verdict v;
	dmarc_evaluate(&in, &d, &v);
	CHECK_AT(r->line, v.result == r->result && v.disposition == r->disp,
		 "dmarc=%s action=%s, want %s/%s: %s", dmarc_result_name(v.result),
		 dmarc_disposition_name(v.disposition), dmarc_result_name(r->result),
		 dmarc_disposition_name(r->disp), v.reason);
	CHECK_STR_AT(r->line, v.policy_tag, r->tag, "policy tag");
	CHECK_AT(r->line, v.reason[0] != '\0', "a reason for the log");
}

/* reasons - what the log says is something an operator can act on. */
static void reasons(void)
{
	struct from_result from = {.status = FROM_OK, .mailboxes = 1, .ndomains = 1};
	rg_strlcpy(from.domain[0], "paypal.example", sizeof(from.domain[0]));
	struct dmarc_discovery d = {.found = DMARC_FOUND};
	rg_strlcpy(d.from_domain, "paypal.example", sizeof(d.from_domain));
	rg_strlcpy(d.record_domain, "paypal.example", sizeof(d.record_domain));
	dmarc_record_parse(REJECT_REC, strlen(REJECT_REC), &d.rec);
	struct dmarc_input in = {&from, 1, "attacker.example", false, NULL, 0, 0};
	struct dmarc_verdict v;
	dmarc_evaluate(&in, &d, &v);
	CHECK_STR_AT(__LINE__, v.reason,
		     "p=reject from paypal.example, spf not aligned, dkim not aligned, action reject",
		     "reason");
	CHECK_STR_AT(__LINE__, v.header_from, "paypal.example", "header.from");
	from.status = FROM_MULTIPLE_DOMAINS;
	rg_strlcpy(from.detail, "2 author domains", sizeof(from.detail));
	dmarc_evaluate(&in, &d, &v);
	CHECK_STR_AT(__LINE__, v.reason, "From: multiple-domains (2 author domains)", "reason");
}

int main(void)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(recs); i++)
		record_row(&recs[i]);
	record_bounds();
	for (size_t i = 0; i < RG_ARRAY_LEN(aligns); i++)
		align_row(&aligns[i]);
	for (size_t i = 0; i < RG_ARRAY_LEN(discs); i++) {
		disc_row(&discs[i], false);
		disc_row(&discs[i], true);
	}
	cancel();
	for (size_t i = 0; i < RG_ARRAY_LEN(evals); i++)
		eval_row(&evals[i]);
	reasons();
	unsigned skipped = psl_file();
	if (skipped == 0)
		return check_summary("test_dmarc");
	printf("test_dmarc: %u passed, %u failed, %u skipped\n", check_passed, check_failed, skipped);
	return check_failed == 0 ? 0 : 1;
}
