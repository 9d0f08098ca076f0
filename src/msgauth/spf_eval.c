/*
 * spf_eval.c - check_host() (RFC 7208 4, 5, 6) as a state machine over
 * struct spf_resolver, one DNS question in flight at a time.
 *
 * A check holds a stack of frames: the record being evaluated and, below
 * it, the records whose include is waiting for it. redirect replaces the
 * frame's domain (a tail call: its result is the frame's). run() evaluates
 * terms until one needs DNS; on_answer() feeds the answer to the waiting
 * step and calls run() again. %{p} needs its own lookups (PTR, then A/AAAA
 * of each name), done once per check before the first expansion using it.
 */
#include "msgauth/spf.h"
#include "util/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

enum wait { W_NONE, W_RECORD, W_A, W_MX, W_MX_ADDR, W_PTR, W_PTR_ADDR, W_EXISTS, W_EXP,
	    W_P_PTR, W_P_ADDR };
enum step { T_NOMATCH, T_MATCH, T_WAIT };
enum phase { PH_TERMS, PH_EXP, PH_EXP_TEXT };
enum pstate { P_UNKNOWN, P_RESOLVING, P_READY };

struct frame {
	struct spf_record rec;
	char domain[SPF_DOMAIN_MAX];
	bool include;    /* the parent's include term waits for this result */
	bool redirected; /* reached through redirect: "none" is a permerror */
	size_t term;     /* the term being evaluated */
	char names[SPF_MAX_NAMES][SPF_DOMAIN_MAX]; /* mx hosts, ptr names of the term */
	size_t n_names, i_name;
	char target[SPF_DOMAIN_MAX];
	struct frame *parent;
};

struct spf_check {
	const struct spf_resolver *r;
	void *rctx;
	void *q;
	enum wait wait;
	spf_done_fn fn;
	void *arg;
	struct spf_outcome out;
	struct rg_ip ip;
	char sender[SPF_ADDR_MAX], local[SPF_ADDR_MAX], sender_domain[SPF_DOMAIN_MAX];
	struct frame *top;
	unsigned dns_terms, voids, depth;
	bool done, started;
	enum phase phase;
	char exp_spec[SPF_RECORD_MAX + 1], exp_domain[SPF_DOMAIN_MAX], exp_text[SPF_RECORD_MAX + 1];
	enum pstate p_state;
	char p_names[SPF_MAX_NAMES][SPF_DOMAIN_MAX];
	bool p_valid[SPF_MAX_NAMES];
	size_t n_p, i_p;
};

const char *spf_result_name(enum spf_result r)
{
	static const char *const names[] = {"none", "neutral", "pass", "fail", "softfail",
					    "temperror", "permerror"};
	return (unsigned)r < RG_ARRAY_LEN(names) ? names[r] : "?";
}

/* finish - the result is known; the caller of run() delivers it. */
static void finish(struct spf_check *c, enum spf_result res, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void finish(struct spf_check *c, enum spf_result res, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->out.problem, sizeof(c->out.problem), fmt, ap);
	va_end(ap);
	c->out.result = res;
	c->done = true;
}

static void issue(struct spf_check *c, enum wait w, enum spf_qtype type, const char *name);

/* ---- addresses ---- */

static bool prefix_match(const struct rg_ip *net, const struct rg_ip *ip, unsigned bits)
{
	if (net->family != ip->family)
		return false;
	size_t full = bits / 8;
	if (memcmp(net->addr, ip->addr, full) != 0)
		return false;
	unsigned rest = bits % 8;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (net->addr[full] & mask) == (ip->addr[full] & mask);
}

/* reverse_name - the PTR question for the client address. */
static void reverse_name(const struct rg_ip *ip, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	if (ip->family == AF_INET) {
		snprintf(buf, len, "%u.%u.%u.%u.in-addr.arpa", ip->addr[3], ip->addr[2], ip->addr[1],
			 ip->addr[0]);
		return;
	}
	size_t k = 0;
	for (int i = 15; i >= 0 && k + 4 < len; i--) {
		buf[k++] = hex[ip->addr[i] & 15];
		buf[k++] = '.';
		buf[k++] = hex[ip->addr[i] >> 4];
		buf[k++] = '.';
	}
	snprintf(buf + k, len - k, "ip6.arpa");
}

static enum spf_qtype addr_type(const struct spf_check *c)
{
	return c->ip.family == AF_INET ? SPF_Q_A : SPF_Q_AAAA;
}

/* any_addr - does the answer hold the client within the prefix? */
static bool any_addr(const struct spf_check *c, const struct spf_dns_answer *a, unsigned bits)
{
	for (size_t i = 0; a->addrs != NULL && i < a->n; i++)
		if (prefix_match(&a->addrs[i], &c->ip, bits))
			return true;
	return false;
}

/* ---- %{p} ---- */

/* name_under - is name the domain or a subdomain of it (any case)? */
static bool name_under(const char *name, const char *domain)
{
	size_t n = strlen(name), d = strlen(domain);
	if (n == d)
		return rg_strcasecmp(name, domain) == 0;
	return n > d && name[n - d - 1] == '.' && rg_strcasecmp(name + n - d, domain) == 0;
}

/* choose_p - RFC 7208 7.3: the domain itself, else a subdomain, else any. */
static const char *choose_p(const struct spf_check *c, const char *domain)
{
	const char *any = NULL, *sub = NULL;
	for (size_t i = 0; i < c->n_p; i++) {
		if (!c->p_valid[i])
			continue;
		if (rg_strcasecmp(c->p_names[i], domain) == 0)
			return c->p_names[i];
		if (sub == NULL && name_under(c->p_names[i], domain))
			sub = c->p_names[i];
		if (any == NULL)
			any = c->p_names[i];
	}
	return sub != NULL ? sub : any != NULL ? any : "unknown";
}

static void p_next(struct spf_check *c)
{
	if (c->i_p < c->n_p)
		issue(c, W_P_ADDR, addr_type(c), c->p_names[c->i_p]);
	else
		c->p_state = P_READY;
}

/* need_p - true (and the lookups started) when spec uses %{p} not yet known. */
static bool need_p(struct spf_check *c, const char *spec, size_t len)
{
	if (spec == NULL || c->p_state == P_READY || !spf_macro_uses_p(spec, len))
		return false;
	char rev[SPF_DOMAIN_MAX];
	reverse_name(&c->ip, rev, sizeof(rev));
	c->p_state = P_RESOLVING;
	issue(c, W_P_PTR, SPF_Q_PTR, rev);
	return true;
}

/* copy_names - up to SPF_MAX_NAMES names of an answer, without a final dot. */
static size_t copy_names(const struct spf_dns_answer *a, char (*out)[SPF_DOMAIN_MAX])
{
	size_t n = 0;
	for (size_t i = 0; i < a->n && n < SPF_MAX_NAMES; i++) {
		if (rg_strlcpy(out[n], a->names[i], SPF_DOMAIN_MAX) >= SPF_DOMAIN_MAX)
			continue;
		size_t len = strlen(out[n]);
		if (len > 0 && out[n][len - 1] == '.')
			out[n][len - 1] = '\0';
		n++;
	}
	return n;
}

/* ---- macro expansion into a name to look up ---- */

static void macro_ctx(const struct spf_check *c, const char *domain, struct spf_macro_ctx *m)
{
	*m = (struct spf_macro_ctx){c->sender, c->local, c->sender_domain, domain, &c->ip,
				    choose_p(c, domain), c->out.helo,
				    c->out.receiver[0] ? c->out.receiver : "unknown",
				    (long long)time(NULL)};
}

/* target_name - the domain-spec expanded (or the current domain); false
 * after finish(permerror). */
static bool target_name(struct spf_check *c, const char *domain, const char *spec, size_t len,
			char *out)
{
	struct spf_macro_ctx m;
	char buf[SPF_EXPAND_MAX];
	const char *why = "";
	if (spec == NULL)
		return rg_strlcpy(out, domain, SPF_DOMAIN_MAX) < SPF_DOMAIN_MAX;
	macro_ctx(c, domain, &m);
	if (!spf_macro_expand(spec, len, &m, false, buf, sizeof(buf), &why)) {
		finish(c, SPF_PERMERROR, "%s in \"%.*s\"", why, (int)(len > 80 ? 80 : len), spec);
		return false;
	}
	if (!spf_domain_truncate(buf)) {
		finish(c, SPF_PERMERROR, "\"%.*s\" expands to an invalid domain name",
		       (int)(len > 80 ? 80 : len), spec);
		return false;
	}
	rg_strlcpy(out, buf, SPF_DOMAIN_MAX);
	return true;
}

/* ---- frames ---- */

static void push_frame(struct spf_check *c, const char *domain, bool include)
{
	struct frame *f = xcalloc(1, sizeof(*f));
	rg_strlcpy(f->domain, domain, sizeof(f->domain));
	f->include = include;
	f->parent = c->top;
	c->top = f;
	c->depth++;
	f->rec.n = 0;
	issue(c, W_RECORD, SPF_Q_TXT, f->domain);
}

static void pop_frame(struct spf_check *c)
{
	struct frame *f = c->top;
	c->top = f->parent;
	c->depth--;
	free(f);
}

static enum spf_result qual_result(char q)
{
	switch (q) {
	case '-': return SPF_FAIL;
	case '~': return SPF_SOFTFAIL;
	case '?': return SPF_NEUTRAL;
	default: return SPF_PASS;
	}
}

/* temp - a DNS failure ends the check (RFC 7208 4.4, 5). */
static bool temp(struct spf_check *c, const struct spf_dns_answer *a, const char *what,
		 const char *name)
{
	if (a->rcode != SPF_DNS_SERVFAIL && a->rcode != SPF_DNS_TIMEOUT)
		return false;
	finish(c, SPF_TEMPERROR, "DNS %s looking up %s %s",
	       a->rcode == SPF_DNS_TIMEOUT ? "timeout" : "failure", what, name);
	return true;
}

/* is_void - NXDOMAIN or no records; false after finish() past the limit. */
static bool void_ok(struct spf_check *c, const struct spf_dns_answer *a, const char *name)
{
	if (a->rcode == SPF_DNS_NOERROR && a->n > 0)
		return true;
	if (++c->voids > SPF_MAX_VOID) {
		finish(c, SPF_PERMERROR, "more than %d void lookups (at %s)", SPF_MAX_VOID, name);
		return false;
	}
	return true;
}

static void frame_result(struct spf_check *c, struct frame *f, enum spf_result res,
			 const char *why);

/* matched - the current term of f matched: its qualifier is f's result. */
static void matched(struct spf_check *c, struct frame *f)
{
	const struct spf_term *t = &f->rec.terms[f->term];
	char why[SPF_TEXT_MAX];
	snprintf(why, sizeof(why), "%.*s matched in %s", (int)t->text_len, t->text, f->domain);
	frame_result(c, f, qual_result(t->qual), why);
}

/* frame_result - f (the innermost frame) ended with res. */
static void frame_result(struct spf_check *c, struct frame *f, enum spf_result res,
			 const char *why)
{
	if (!f->include && res == SPF_NONE) {
		finish(c, SPF_PERMERROR, "redirect=%s: no SPF record", f->domain);
		return;
	}
	if (!f->include) {
		if (res == SPF_FAIL && f->rec.exp != NULL && f->term < f->rec.n) {
			/* the explanation of the record whose term said fail (RFC 7208 6.2) */
			snprintf(c->exp_spec, sizeof(c->exp_spec), "%.*s", (int)f->rec.exp_len,
				 f->rec.exp);
			rg_strlcpy(c->exp_domain, f->domain, sizeof(c->exp_domain));
			c->phase = PH_EXP;
		}
		c->out.result = res;
		rg_strlcpy(c->out.problem, why, sizeof(c->out.problem));
		if (c->phase == PH_TERMS)
			c->done = true;
		return;
	}
	char domain[SPF_DOMAIN_MAX];
	rg_strlcpy(domain, f->domain, sizeof(domain));
	pop_frame(c);
	struct frame *p = c->top;
	switch (res) {
	case SPF_PASS:
		matched(c, p);
		break;
	case SPF_TEMPERROR:
		finish(c, SPF_TEMPERROR, "include:%s: %s", domain, why);
		break;
	case SPF_PERMERROR:
	case SPF_NONE:
		finish(c, SPF_PERMERROR, "include:%s: %s", domain,
		       res == SPF_NONE ? "no SPF record" : why);
		break;
	default:
		p->term++;
	}
}

/* frame_end - no term matched: redirect, or neutral (RFC 7208 4.7, 6.1). */
static void frame_end(struct spf_check *c, struct frame *f)
{
	if (f->rec.redirect == NULL || f->rec.has_all) {
		frame_result(c, f, SPF_NEUTRAL, "no term matched");
		return;
	}
	if (need_p(c, f->rec.redirect, f->rec.redirect_len))
		return;
	if (++c->dns_terms > SPF_MAX_DNS_TERMS) {
		finish(c, SPF_PERMERROR, "more than %d DNS-querying terms (at redirect in %s)",
		       SPF_MAX_DNS_TERMS, f->domain);
		return;
	}
	char target[SPF_DOMAIN_MAX];
	if (!target_name(c, f->domain, f->rec.redirect, f->rec.redirect_len, target))
		return;
	rg_strlcpy(f->domain, target, sizeof(f->domain));
	f->redirected = true;
	f->rec.n = 0;
	f->rec.redirect = NULL;
	f->term = 0;
	issue(c, W_RECORD, SPF_Q_TXT, f->domain);
}

/* term_start - evaluate a term, or start its lookup. */
static enum step term_start(struct spf_check *c, struct frame *f, const struct spf_term *t)
{
	switch (t->mech) {
	case SPF_M_ALL:
		return T_MATCH;
	case SPF_M_IP4:
		return prefix_match(&t->ip, &c->ip, t->cidr4) ? T_MATCH : T_NOMATCH;
	case SPF_M_IP6:
		return prefix_match(&t->ip, &c->ip, t->cidr6) ? T_MATCH : T_NOMATCH;
	default:
		break;
	}
	if (need_p(c, t->spec, t->spec_len))
		return T_WAIT;
	if (++c->dns_terms > SPF_MAX_DNS_TERMS) {
		finish(c, SPF_PERMERROR, "more than %d DNS-querying terms (at %.*s in %s)",
		       SPF_MAX_DNS_TERMS, (int)t->text_len, t->text, f->domain);
		return T_WAIT;
	}
	if (!target_name(c, f->domain, t->spec, t->spec_len, f->target))
		return T_WAIT;
	char rev[SPF_DOMAIN_MAX];
	switch (t->mech) {
	case SPF_M_A: issue(c, W_A, addr_type(c), f->target); break;
	case SPF_M_MX: issue(c, W_MX, SPF_Q_MX, f->target); break;
	case SPF_M_EXISTS: issue(c, W_EXISTS, SPF_Q_A, f->target); break;
	case SPF_M_PTR:
		reverse_name(&c->ip, rev, sizeof(rev));
		issue(c, W_PTR, SPF_Q_PTR, rev);
		break;
	default:
		if (c->depth >= SPF_MAX_DEPTH)
			finish(c, SPF_PERMERROR, "includes nested deeper than %d", SPF_MAX_DEPTH);
		else
			push_frame(c, f->target, true);
	}
	return T_WAIT;
}

/* ---- exp= (RFC 7208 6.2): any problem only loses the explanation ---- */

static void exp_start(struct spf_check *c)
{
	struct spf_macro_ctx m;
	char buf[SPF_EXPAND_MAX];
	const char *why;
	if (need_p(c, c->exp_spec, strlen(c->exp_spec)))
		return;
	macro_ctx(c, c->exp_domain, &m);
	if (!spf_macro_expand(c->exp_spec, strlen(c->exp_spec), &m, false, buf, sizeof(buf), &why) ||
	    !spf_domain_truncate(buf)) {
		c->done = true;
		return;
	}
	issue(c, W_EXP, SPF_Q_TXT, buf);
}

static void exp_expand(struct spf_check *c)
{
	struct spf_macro_ctx m;
	const char *why;
	if (need_p(c, c->exp_text, strlen(c->exp_text)))
		return;
	macro_ctx(c, c->exp_domain, &m);
	if (!spf_macro_expand(c->exp_text, strlen(c->exp_text), &m, true, c->out.explanation,
			      sizeof(c->out.explanation), &why))
		c->out.explanation[0] = '\0';
	c->done = true;
}

/* ---- answers ---- */

static void record_answer(struct spf_check *c, const struct spf_dns_answer *a)
{
	struct frame *f = c->top;
	const char *text = NULL;
	size_t found = 0;
	if (temp(c, a, "the SPF record of", f->domain))
		return;
	for (size_t i = 0; a->rcode == SPF_DNS_NOERROR && i < a->n; i++)
		if (spf_record_is_spf(a->names[i], strlen(a->names[i])) && found++ == 0)
			text = a->names[i];
	if (found == 0) {
		if (f->include || f->redirected)
			frame_result(c, f, SPF_NONE, "no SPF record");
		else
			finish(c, SPF_NONE, "no SPF record at %s", f->domain);
		return;
	}
	char err[200];
	if (found > 1)
		finish(c, SPF_PERMERROR, "more than one SPF record at %s", f->domain);
	else if (!spf_record_parse(text, strlen(text), &f->rec, err, sizeof(err)))
		finish(c, SPF_PERMERROR, "%s: %s", f->domain, err);
	else
		f->term = 0;
}

/* next_name - the next mx host (or validated ptr name) to look up. */
static enum step next_name(struct spf_check *c, struct frame *f, enum wait w)
{
	if (f->i_name >= f->n_names)
		return T_NOMATCH;
	issue(c, w, addr_type(c), f->names[f->i_name++]);
	return T_WAIT;
}

static enum step mx_answer(struct spf_check *c, struct frame *f, const struct spf_dns_answer *a)
{
	if (temp(c, a, "MX of", f->target) || !void_ok(c, a, f->target))
		return T_WAIT;
	if (a->rcode != SPF_DNS_NOERROR)
		return T_NOMATCH;
	if (a->n > SPF_MAX_NAMES) {
		finish(c, SPF_PERMERROR, "more than %d MX records at %s", SPF_MAX_NAMES, f->target);
		return T_WAIT;
	}
	f->n_names = copy_names(a, f->names);
	f->i_name = 0;
	return next_name(c, f, W_MX_ADDR);
}

static enum step ptr_answer(struct spf_check *c, struct frame *f, const struct spf_dns_answer *a)
{
	f->n_names = f->i_name = 0;
	if (a->rcode != SPF_DNS_NOERROR)
		return T_NOMATCH; /* RFC 7208 5.5: a PTR lookup error is no match */
	char names[SPF_MAX_NAMES][SPF_DOMAIN_MAX];
	size_t n = copy_names(a, names); /* the first 10 only (4.6.4) */
	for (size_t i = 0; i < n; i++) /* only names in the target domain need validating */
		if (name_under(names[i], f->target))
			rg_strlcpy(f->names[f->n_names++], names[i], SPF_DOMAIN_MAX);
	return next_name(c, f, W_PTR_ADDR);
}

/* term_answer - an answer for the current term of f. */
static enum step term_answer(struct spf_check *c, struct frame *f, enum wait w,
			     const struct spf_dns_answer *a)
{
	const struct spf_term *t = &f->rec.terms[f->term];
	unsigned bits = c->ip.family == AF_INET ? t->cidr4 : t->cidr6;
	switch (w) {
	case W_A:
	case W_EXISTS:
		if (temp(c, a, w == W_A ? "the address of" : "exists", f->target) ||
		    !void_ok(c, a, f->target))
			return T_WAIT;
		if (w == W_EXISTS)
			return a->rcode == SPF_DNS_NOERROR && a->n > 0 ? T_MATCH : T_NOMATCH;
		return any_addr(c, a, bits) ? T_MATCH : T_NOMATCH;
	case W_MX:
		return mx_answer(c, f, a);
	case W_MX_ADDR:
		if (temp(c, a, "the address of MX host", f->names[f->i_name - 1]))
			return T_WAIT;
		return any_addr(c, a, bits) ? T_MATCH : next_name(c, f, W_MX_ADDR);
	case W_PTR:
		return ptr_answer(c, f, a);
	default: /* W_PTR_ADDR: an error skips the name (5.5) */
		return any_addr(c, a, 128) ? T_MATCH : next_name(c, f, W_PTR_ADDR);
	}
}

static void p_answer(struct spf_check *c, enum wait w, const struct spf_dns_answer *a)
{
	if (w == W_P_PTR) {
		c->n_p = a->rcode == SPF_DNS_NOERROR ? copy_names(a, c->p_names) : 0;
		c->i_p = 0;
	} else {
		c->p_valid[c->i_p++] = a->rcode == SPF_DNS_NOERROR && any_addr(c, a, 128);
	}
	p_next(c);
}

static void deliver(struct spf_check *c);
static void run(struct spf_check *c);

static void on_answer(void *arg, const struct spf_dns_answer *a)
{
	struct spf_check *c = arg;
	enum wait w = c->wait;
	c->q = NULL;
	c->wait = W_NONE;
	struct frame *f = c->top;
	if (w == W_RECORD) {
		record_answer(c, a);
	} else if (w == W_EXP) {
		bool one = a->rcode == SPF_DNS_NOERROR && a->n == 1;
		if (one && rg_strlcpy(c->exp_text, a->names[0], sizeof(c->exp_text)) < sizeof(c->exp_text))
			c->phase = PH_EXP_TEXT;
		else
			c->done = true;
	} else if (w == W_P_PTR || w == W_P_ADDR) {
		p_answer(c, w, a);
	} else {
		enum step s = term_answer(c, f, w, a);
		if (s == T_MATCH && !c->done)
			matched(c, f);
		else if (s == T_NOMATCH && !c->done)
			f->term++;
	}
	run(c);
	if (c->done)
		deliver(c);
}

static void issue(struct spf_check *c, enum wait w, enum spf_qtype type, const char *name)
{
	c->wait = w;
	c->q = c->r->query(c->rctx, type, name, on_answer, c);
}

/* run - evaluate until a lookup is in flight or the result is known. */
static void run(struct spf_check *c)
{
	while (!c->done && c->wait == W_NONE) {
		struct frame *f = c->top;
		if (c->phase == PH_EXP) {
			exp_start(c);
		} else if (c->phase == PH_EXP_TEXT) {
			exp_expand(c);
		} else if (f->term >= f->rec.n) {
			frame_end(c, f);
		} else {
			enum step s = term_start(c, f, &f->rec.terms[f->term]);
			if (s == T_MATCH)
				matched(c, f);
			else if (s == T_NOMATCH)
				f->term++;
		}
	}
}

static void check_free(struct spf_check *c)
{
	while (c->top != NULL)
		pop_frame(c);
	free(c);
}

static void deliver(struct spf_check *c)
{
	if (c->out.result != SPF_FAIL)
		c->out.explanation[0] = '\0';
	c->fn(c->arg, &c->out);
	check_free(c);
}

void spf_check_cancel(struct spf_check *c)
{
	if (c == NULL)
		return;
	if (c->q != NULL)
		c->r->cancel(c->rctx, c->q);
	check_free(c);
}

/* ---- starting ---- */

/* identity_ok - RFC 7208 4.3: a multi-label name with labels of 1..63. */
static bool identity_ok(const char *d)
{
	size_t len = strlen(d), label = 0, labels = 0;
	if (len == 0 || len > 253 || d[0] == '.')
		return false;
	for (const char *p = d; *p != '\0'; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '.') {
			if (label == 0 && p[1] != '\0')
				return false;
			label = 0;
			continue;
		}
		if (ch <= 0x20 || ch >= 0x7f || ch == '[' || ch == ']' || ++label > 63)
			return false;
		if (label == 1)
			labels++;
	}
	return labels >= 2;
}

/* set_identity - sender, local part and domain; false when too long. */
static bool set_identity(struct spf_check *c, const char *mail_from, bool helo)
{
	const char *at = helo ? NULL : strrchr(mail_from, '@');
	const char *domain = helo ? c->out.helo : at != NULL ? at + 1 : mail_from;
	size_t local = at != NULL ? (size_t)(at - mail_from) : 0;
	rg_strlcpy(c->out.identity, helo ? "helo" : "mailfrom", sizeof(c->out.identity));
	if (local >= sizeof(c->local) || strlen(domain) >= sizeof(c->sender_domain))
		return false;
	if (local == 0)
		rg_strlcpy(c->local, "postmaster", sizeof(c->local));
	else
		snprintf(c->local, sizeof(c->local), "%.*s", (int)local, mail_from);
	rg_strlcpy(c->sender_domain, domain, sizeof(c->sender_domain));
	rg_strlcpy(c->out.domain, domain, sizeof(c->out.domain));
	snprintf(c->sender, sizeof(c->sender), "%s@%s", c->local, domain);
	return true;
}

static struct spf_check *start(const struct spf_resolver *r, void *rctx,
			       const struct rg_ip *client, const char *mail_from, const char *helo,
			       const char *receiver, bool helo_id, spf_done_fn fn, void *arg)
{
	struct spf_check *c = xcalloc(1, sizeof(*c));
	*c = (struct spf_check){.r = r, .rctx = rctx, .fn = fn, .arg = arg, .ip = *client};
	rg_strlcpy(c->out.envelope_from, mail_from, sizeof(c->out.envelope_from));
	rg_strlcpy(c->out.helo, helo != NULL ? helo : "", sizeof(c->out.helo));
	rg_strlcpy(c->out.receiver, receiver != NULL ? receiver : "", sizeof(c->out.receiver));
	ip_format(client, c->out.client_ip, sizeof(c->out.client_ip));
	bool ok = set_identity(c, mail_from, helo_id || mail_from[0] == '\0');
	if (!ok || !identity_ok(c->out.domain)) {
		finish(c, SPF_NONE, "no valid domain to check");
		deliver(c); /* known at once, as dns_client_name() does: NULL returned */
		return NULL;
	}
	push_frame(c, c->out.domain, false);
	return c;
}

struct spf_check *spf_check_start(const struct spf_resolver *r, void *rctx,
				  const struct rg_ip *client, const char *mail_from,
				  const char *helo, const char *receiver_host, spf_done_fn fn,
				  void *arg)
{
	return start(r, rctx, client, mail_from, helo, receiver_host, false, fn, arg);
}

struct spf_check *spf_helo_check_start(const struct spf_resolver *r, void *rctx,
				       const struct rg_ip *client, const char *helo,
				       const char *receiver_host, spf_done_fn fn, void *arg)
{
	return start(r, rctx, client, "", helo, receiver_host, true, fn, arg);
}
