/*
 * test_spf.c - the pure parts of SPF: the record parser, macro expansion
 * (with RFC 7208 7.4's examples), domain truncation, the Received-SPF field,
 * and the evaluator's limits over a scripted stub resolver.
 */
#include "check.h"
#include "msgauth/spf.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

/* ---- records ---- */

static const struct {
	int line;
	const char *record;
	bool ok;
	size_t terms;
	bool has_all, redirect, exp;
} records[] = {
	{__LINE__, "v=spf1", true, 0, false, false, false},
	{__LINE__, "V=SpF1 -ALL", true, 1, true, false, false},
	{__LINE__, "v=spf1  a   mx  -all ", true, 3, true, false, false},
	{__LINE__, "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 ~all", true, 3, true, false, false},
	{__LINE__, "v=spf1 a:example.com/24//64 mx/30 ptr:example.org exists:%{i}.x.example", true, 4,
	 false, false, false},
	{__LINE__, "v=spf1 include:_spf.example.com redirect=_spf.example.net", true, 1, false,
	 true, false},
	{__LINE__, "v=spf1 -all exp=explain.%{d}", true, 1, true, false, true},
	{__LINE__, "v=spf1 foo=bar%{c} moo.cow-far_out=man:dog/cat -all", true, 1, true, false, false},
	{__LINE__, "v=spf10", false, 0, false, false, false},         /* not an SPF record */
	{__LINE__, "v=spf1 frobnicate", false, 0, false, false, false}, /* unknown mechanism */
	{__LINE__, "v=spf1 -all:foo", false, 0, false, false, false},
	{__LINE__, "v=spf1 all/8", false, 0, false, false, false},
	{__LINE__, "v=spf1 include", false, 0, false, false, false},
	{__LINE__, "v=spf1 include:", false, 0, false, false, false},
	{__LINE__, "v=spf1 a:", false, 0, false, false, false},
	{__LINE__, "v=spf1 a/33", false, 0, false, false, false},
	{__LINE__, "v=spf1 a//129", false, 0, false, false, false},
	{__LINE__, "v=spf1 a/024", false, 0, false, false, false},   /* leading zero */
	{__LINE__, "v=spf1 ip4:192.0.2.300", false, 0, false, false, false},
	{__LINE__, "v=spf1 ip4:192.0.2.0/33", false, 0, false, false, false},
	{__LINE__, "v=spf1 ip6:2001:db8::/129", false, 0, false, false, false},
	{__LINE__, "v=spf1 ip6:192.0.2.1", false, 0, false, false, false},
	{__LINE__, "v=spf1 a:foo.1", false, 0, false, false, false},  /* all-digit top label */
	{__LINE__, "v=spf1 a:museum", false, 0, false, false, false}, /* no dot */
	{__LINE__, "v=spf1 a:abc.123-4", true, 1, false, false, false},
	{__LINE__, "v=spf1 redirect=a.example redirect=b.example", false, 0, false, false, false},
	{__LINE__, "v=spf1 exp=a.example exp=b.example", false, 0, false, false, false},
	{__LINE__, "v=spf1 exp=%{r}.example", false, 0, false, false, false}, /* r only in text */
	{__LINE__, "v=spf1 a:%{x}.example", false, 0, false, false, false},
	{__LINE__, "v=spf1 a:%.example", false, 0, false, false, false},
	{__LINE__, "v=spf1 -redirect=a.example", false, 0, false, false, false},
	{__LINE__, "v=spf1 =all", false, 0, false, false, false},
	{__LINE__, "v=spf1 a:ex\x80.example", false, 0, false, false, false},
	{__LINE__, "v=spf1 a\r-all", false, 0, false, false, false},
};

static void test_records(void)
{
	static struct spf_record rec;
	char err[200];
	for (size_t i = 0; i < RG_ARRAY_LEN(records); i++) {
		bool ok = spf_record_parse(records[i].record, strlen(records[i].record), &rec, err,
					   sizeof(err));
		CHECK_AT(records[i].line, ok == records[i].ok, "parse: got %d (%s)", ok, ok ? "" : err);
		if (!ok || !records[i].ok)
			continue;
		CHECK_AT(records[i].line, rec.n == records[i].terms, "terms: %zu", rec.n);
		CHECK_AT(records[i].line, rec.has_all == records[i].has_all, "has_all");
		CHECK_AT(records[i].line, (rec.redirect != NULL) == records[i].redirect, "redirect");
		CHECK_AT(records[i].line, (rec.exp != NULL) == records[i].exp, "exp");
	}
	/* a CIDR pair lands where it belongs */
	const char *r = "v=spf1 mx:example.com/20//48 ip6:2001:db8::/40 -ip4:192.0.2.1";
	CHECK(spf_record_parse(r, strlen(r), &rec, err, sizeof(err)), "%s", err);
	CHECK(rec.terms[0].cidr4 == 20 && rec.terms[0].cidr6 == 48, "mx cidr");
	CHECK(rec.terms[0].spec_len == 11 && memcmp(rec.terms[0].spec, "example.com", 11) == 0,
	      "mx target");
	CHECK(rec.terms[1].cidr6 == 40 && rec.terms[2].cidr4 == 32 && rec.terms[2].qual == '-',
	      "ip cidr and qualifier");
	/* bounds: a record over SPF_RECORD_MAX, and over SPF_MAX_TERMS terms */
	char big[SPF_RECORD_MAX + 8];
	memset(big, 'a', sizeof(big));
	memcpy(big, "v=spf1 a", 8);
	CHECK(!spf_record_parse(big, sizeof(big), &rec, err, sizeof(err)), "too long accepted");
	struct strbuf sb;
	strbuf_init(&sb);
	strbuf_puts(&sb, "v=spf1");
	for (int i = 0; i <= SPF_MAX_TERMS; i++)
		strbuf_puts(&sb, " a");
	CHECK(!spf_record_parse(sb.data, sb.len, &rec, err, sizeof(err)), "too many terms accepted");
	strbuf_free(&sb);
}

/* ---- macros ---- */

static const struct {
	int line;
	const char *in;
	bool v6, exp;
	const char *out; /* NULL: an error */
} macros[] = {
	/* RFC 7208 7.4 */
	{__LINE__, "%{s}", false, false, "strong-bad@email.example.com"},
	{__LINE__, "%{o}", false, false, "email.example.com"},
	{__LINE__, "%{d}", false, false, "email.example.com"},
	{__LINE__, "%{d4}", false, false, "email.example.com"},
	{__LINE__, "%{d3}", false, false, "email.example.com"},
	{__LINE__, "%{d2}", false, false, "example.com"},
	{__LINE__, "%{d1}", false, false, "com"},
	{__LINE__, "%{dr}", false, false, "com.example.email"},
	{__LINE__, "%{d2r}", false, false, "example.email"},
	{__LINE__, "%{l}", false, false, "strong-bad"},
	{__LINE__, "%{l-}", false, false, "strong.bad"},
	{__LINE__, "%{lr}", false, false, "strong-bad"},
	{__LINE__, "%{lr-}", false, false, "bad.strong"},
	{__LINE__, "%{l1r-}", false, false, "strong"},
	{__LINE__, "%{ir}.%{v}._spf.%{d2}", false, false, "3.2.0.192.in-addr._spf.example.com"},
	{__LINE__, "%{lr-}.lp._spf.%{d2}", false, false, "bad.strong.lp._spf.example.com"},
	{__LINE__, "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", false, false,
	 "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"},
	{__LINE__, "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", false, false,
	 "3.2.0.192.in-addr.strong.lp._spf.example.com"},
	{__LINE__, "%{d2}.trusted-domains.example.net", false, false,
	 "example.com.trusted-domains.example.net"},
	{__LINE__, "%{ir}.%{v}._spf.%{d2}", true, false,
	 "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"},
	/* escapes, URL encoding, exp-only letters */
	{__LINE__, "a%%b%_c%-d", false, false, "a%b c%20d"},
	{__LINE__, "%{S}", false, false, "strong-bad%40email.example.com"},
	{__LINE__, "%{h}.%{p}", false, false, "mail.example.org.unknown"},
	{__LINE__, "%{c} at %{r}", false, true, "192.0.2.3 at mx.example.org"},
	{__LINE__, "%{c}", true, true, "2001:db8::cb01"},
	{__LINE__, "%{t}", false, true, "1700000000"},
	{__LINE__, "%{c}", false, false, NULL},
	{__LINE__, "%{d0}", false, false, NULL},
	{__LINE__, "%{d99}", false, false, "email.example.com"},
	{__LINE__, "%{l17777777777-}", false, false, "strong.bad"}, /* found by fuzz_spf: a hang */
	{__LINE__, "%{l+-}", false, false, "strong.bad"},
	{__LINE__, "%{x}", false, false, NULL},
	{__LINE__, "%x", false, false, NULL},
	{__LINE__, "abc%", false, false, NULL},
	{__LINE__, "%{d", false, false, NULL},
	{__LINE__, "a b", false, false, NULL},
	{__LINE__, "a b", false, true, "a b"},
};

static void macro_context(struct spf_macro_ctx *m, const struct rg_ip *ip)
{
	*m = (struct spf_macro_ctx){"strong-bad@email.example.com", "strong-bad",
				    "email.example.com", "email.example.com", ip, NULL,
				    "mail.example.org", "mx.example.org", 1700000000};
}

static void test_macros(void)
{
	struct rg_ip v4, v6;
	struct spf_macro_ctx m;
	char out[SPF_EXPAND_MAX];
	const char *why;
	ip_parse("192.0.2.3", &v4);
	ip_parse("2001:db8::cb01", &v6);
	for (size_t i = 0; i < RG_ARRAY_LEN(macros); i++) {
		macro_context(&m, macros[i].v6 ? &v6 : &v4);
		bool ok = spf_macro_expand(macros[i].in, strlen(macros[i].in), &m, macros[i].exp, out,
					   sizeof(out), &why);
		CHECK_AT(macros[i].line, ok == (macros[i].out != NULL), "expand \"%s\": %d", macros[i].in,
			 ok);
		if (ok && macros[i].out != NULL)
			CHECK_STR_AT(macros[i].line, out, macros[i].out, macros[i].in);
	}
	/* bounded: an expansion longer than the buffer is an error, not a cut */
	macro_context(&m, &v4);
	CHECK(!spf_macro_expand("%{s}%{s}", 8, &m, false, out, 40, &why), "overflow accepted");
	CHECK(spf_macro_uses_p("x.%{p}", 6) && spf_macro_uses_p("%{P2}", 5) &&
	      !spf_macro_uses_p("%%{p}", 0), "uses_p");
}

static const struct {
	int line;
	const char *in, *out; /* out NULL: unusable */
} truncations[] = {
	{__LINE__, "example.com.", "example.com"},
	{__LINE__, "a..example.com", NULL},
	{__LINE__, ".example.com", NULL},
	{__LINE__, "", NULL},
	{__LINE__, "a1234567890123456789012345678901234567890123456789012345678901234.example", NULL},
};

static void test_truncate(void)
{
	char buf[600];
	for (size_t i = 0; i < RG_ARRAY_LEN(truncations); i++) {
		rg_strlcpy(buf, truncations[i].in, sizeof(buf));
		bool ok = spf_domain_truncate(buf);
		CHECK_AT(truncations[i].line, ok == (truncations[i].out != NULL), "truncate %s", truncations[i].in);
		if (ok && truncations[i].out)
			CHECK_STR_AT(truncations[i].line, buf, truncations[i].out, "truncated");
	}
	/* over 253 bytes: labels go from the left until it fits (RFC 7208 4.8) */
	memset(buf, 0, sizeof(buf));
	for (int i = 0; i < 60; i++)
		strcat(buf, "abcd.");
	strcat(buf, "example");
	CHECK(spf_domain_truncate(buf) && strlen(buf) <= 253 && strlen(buf) > 245 &&
	      strcmp(buf + strlen(buf) - 12, "abcd.example") == 0 && buf[0] == 'a', "long: %s", buf);
}

/* ---- Received-SPF ---- */

static void test_header(void)
{
	struct spf_outcome o = {.result = SPF_PASS};
	char buf[1024];
	rg_strlcpy(o.identity, "mailfrom", sizeof(o.identity));
	rg_strlcpy(o.domain, "example.com", sizeof(o.domain));
	rg_strlcpy(o.client_ip, "192.0.2.1", sizeof(o.client_ip));
	rg_strlcpy(o.envelope_from, "a\"b\\c\r\nX-Evil: 1@example.com", sizeof(o.envelope_from));
	rg_strlcpy(o.helo, "bad (helo)\n", sizeof(o.helo));
	rg_strlcpy(o.receiver, "mx.example.org", sizeof(o.receiver));
	size_t n = spf_received_header(&o, buf, sizeof(buf));
	CHECK(n == strlen(buf), "length");
	CHECK(strncmp(buf, "Received-SPF: pass", 18) == 0 && (buf[18] == ' ' || buf[18] == '\r'),
	      "%s", buf);
	CHECK(strstr(buf, "envelope-from=\"a\\\"b\\\\c??X-Evil: 1@example.com\";") != NULL, "%s", buf);
	CHECK(strstr(buf, "helo=\"bad (helo)?\";") != NULL, "%s", buf);
	CHECK(strstr(buf, "client-ip=192.0.2.1;") != NULL && strstr(buf, "identity=mailfrom") != NULL,
	      "%s", buf);
	size_t folds = 0;
	for (const char *p = buf; (p = strchr(p, '\n')) != NULL; p++) {
		CHECK(p > buf && p[-1] == '\r' && p[1] == '\t', "a line break that is no fold");
		folds++;
	}
	CHECK(folds > 0 && strchr(buf, '\r') != NULL, "long field folded");
	/* a small buffer ends at a pair boundary, terminated */
	n = spf_received_header(&o, buf, 40);
	CHECK(n < 40 && strlen(buf) == n, "small buffer");
	CHECK_STR_AT(__LINE__, spf_result_name(SPF_SOFTFAIL), "softfail", "name");
	CHECK_STR_AT(__LINE__, spf_result_name(SPF_TEMPERROR), "temperror", "name");
}

/* ---- the evaluator over a scripted stub: limits ---- */

struct stub_q {
	enum spf_qtype type;
	char name[300];
	spf_dns_fn fn;
	void *arg;
	bool cancelled;
};

static struct stub_q *pending;
static unsigned n_queries;
static const char *stub_txt_name, *stub_txt;

static void *stub_query(void *rctx, enum spf_qtype type, const char *name, spf_dns_fn fn,
			void *arg)
{
	(void)rctx;
	struct stub_q *q = xcalloc(1, sizeof(*q));
	*q = (struct stub_q){.type = type, .fn = fn, .arg = arg};
	rg_strlcpy(q->name, name, sizeof(q->name));
	pending = q;
	n_queries++;
	return q;
}

static void stub_cancel(void *rctx, void *h)
{
	(void)rctx;
	((struct stub_q *)h)->cancelled = true;
}

/* stub_answer - TXT at stub_txt_name; eleven MX hosts anywhere; A: none. */
static void stub_run(void)
{
	static const char *const mx[] = {"m1.example", "m2.example", "m3.example", "m4.example",
					 "m5.example", "m6.example", "m7.example", "m8.example",
					 "m9.example", "m10.example", "m11.example"};
	while (pending != NULL) {
		struct stub_q *q = pending;
		pending = NULL;
		struct spf_dns_answer a = {SPF_DNS_NOERROR, 0, NULL, NULL};
		const char *txt[1] = {stub_txt};
		static const char *const deny[1] = {"v=spf1 -all"};
		if (q->type == SPF_Q_TXT && strcmp(q->name, stub_txt_name) == 0) {
			a.n = 1;
			a.names = txt;
		} else if (q->type == SPF_Q_TXT) {
			a.n = 1;
			a.names = deny;
		} else if (q->type == SPF_Q_MX) {
			a.n = 11;
			a.names = mx;
		} else {
			a.rcode = SPF_DNS_NXDOMAIN;
		}
		if (!q->cancelled)
			q->fn(q->arg, &a);
		free(q);
	}
}

static struct spf_outcome last;
static int outcomes;

static void on_outcome(void *arg, const struct spf_outcome *o)
{
	(void)arg;
	last = *o;
	outcomes++;
}

static const struct {
	int line;
	const char *record;
	enum spf_result want;
	const char *problem; /* a part of it */
} evals[] = {
	{__LINE__, "v=spf1 include:a.example include:b.example include:c.example include:d.example "
		   "include:e.example include:f.example include:g.example include:h.example "
		   "include:i.example include:j.example +all", SPF_PASS, "matched"},
	{__LINE__, "v=spf1 include:a.example include:b.example include:c.example include:d.example "
		   "include:e.example include:f.example include:g.example include:h.example "
		   "include:i.example include:j.example include:k.example +all", SPF_PERMERROR,
	 "more than 10 DNS"},
	{__LINE__, "v=spf1 a:x.example a:y.example +all", SPF_PASS, "+all"},
	{__LINE__, "v=spf1 a:x.example a:y.example a:z.example +all", SPF_PERMERROR, "void"},
	{__LINE__, "v=spf1 mx +all", SPF_PERMERROR, "more than 10 MX"},
	{__LINE__, "v=spf1 ip4:192.0.2.0/24 -all", SPF_PASS, "ip4"},
	{__LINE__, "v=spf1 ip6:2001:db8::/32 -all", SPF_FAIL, "-all"},
	{__LINE__, "v=spf1 redirect=r.example", SPF_FAIL, "-all matched in r.example"},
	{__LINE__, "v=spf1 include:spf.example", SPF_PERMERROR, "nested deeper than 10"}, /* a loop */
};

static void test_eval(void)
{
	static const struct spf_resolver stub = {stub_query, stub_cancel};
	struct rg_ip ip;
	ip_parse("192.0.2.10", &ip);
	for (size_t i = 0; i < RG_ARRAY_LEN(evals); i++) {
		stub_txt_name = "spf.example";
		stub_txt = evals[i].record;
		outcomes = 0;
		struct spf_check *c = spf_check_start(&stub, NULL, &ip, "x@spf.example", "h.example",
						      "mx.example", on_outcome, NULL);
		CHECK_AT(evals[i].line, c != NULL && outcomes == 0, "answered inside start");
		stub_run();
		CHECK_AT(evals[i].line, outcomes == 1, "outcomes %d", outcomes);
		CHECK_AT(evals[i].line, last.result == evals[i].want, "result %s: %s",
			 spf_result_name(last.result), last.problem);
		CHECK_AT(evals[i].line, strstr(last.problem, evals[i].problem) != NULL, "problem: %s",
			 last.problem);
	}
	/* a self-include loops until the lookup limit (here: the include depth) */
	stub_txt_name = "loop.example";
	stub_txt = "v=spf1 include:loop.example";
	outcomes = 0;
	spf_check_start(&stub, NULL, &ip, "x@loop.example", "h", "mx", on_outcome, NULL);
	stub_run();
	CHECK(outcomes == 1 && last.result == SPF_PERMERROR, "loop: %s", last.problem);
	/* no valid domain: "none" at once, NULL returned */
	outcomes = 0;
	CHECK(spf_check_start(&stub, NULL, &ip, "x@[192.0.2.1]", "h", "mx", on_outcome, NULL) == NULL &&
	      outcomes == 1 && last.result == SPF_NONE, "literal");
	/* cancelled: the callback never runs, the query is cancelled, nothing leaks */
	outcomes = 0;
	struct spf_check *c = spf_check_start(&stub, NULL, &ip, "x@spf.example", "h", "mx",
					      on_outcome, NULL);
	spf_check_cancel(c);
	stub_run();
	CHECK(outcomes == 0, "callback after cancel");
	/* the null sender checks postmaster@HELO with identity "helo" */
	stub_txt_name = "helo.example";
	stub_txt = "v=spf1 ip4:192.0.2.10 -all";
	spf_check_start(&stub, NULL, &ip, "", "helo.example", "mx", on_outcome, NULL);
	stub_run();
	CHECK(last.result == SPF_PASS && strcmp(last.identity, "helo") == 0 &&
	      strcmp(last.domain, "helo.example") == 0, "helo identity");
}

int main(void)
{
	test_records();
	test_macros();
	test_truncate();
	test_header();
	test_eval();
	return check_summary("test_spf");
}
