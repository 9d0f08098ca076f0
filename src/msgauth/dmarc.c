/*
 * dmarc - DMARC (RFC 7489) records, policy discovery, alignment, verdict.
 *
 * Owns: everything in dmarc.h; the only state is one struct dmarc_lookup
 * per message while its TXT queries are outstanding.
 * Must not: block, call a resolver directly, or keep pointers into DNS
 * answers past the callback that delivered them.
 */
#include "msgauth/dmarc.h"

#include <libpsl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

/* ---- names -------------------------------------------------------------- */

/* norm_domain - lower case, one trailing dot removed, syntax checked: labels
 * of 1-63 bytes (letters, digits, '-', '_', UTF-8), 253 in all. */
static bool norm_domain(const char *in, char *out, size_t outlen)
{
	size_t n = in ? strlen(in) : 0;
	if (n > 0 && in[n - 1] == '.')
		n--;
	if (n == 0 || n > DMARC_DOMAIN_MAX || n >= outlen)
		return false;
	size_t label = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c >= 'A' && c <= 'Z')
			c |= 0x20;
		out[i] = (char)c;
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		bool ok = c >= 0x80 || c == '-' || c == '_' || (c >= '0' && c <= '9') ||
			  (c >= 'a' && c <= 'z');
		if (!ok || ++label > 63)
			return false;
	}
	out[n] = '\0';
	return label > 0;
}

static const psl_ctx_t *psl_ctx;

/* psl_init - libpsl's built-in list (the one config.c and audit.c use), or
 * the system's file when this libpsl was built without one. */
static void psl_init(void)
{
	psl_ctx = psl_builtin();
	if (psl_ctx == NULL)
		psl_ctx = psl_latest(NULL);
}

/* psl - the list, set up once (evaluation may run on worker threads). */
static const psl_ctx_t *psl(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, psl_init);
	return psl_ctx;
}

bool dmarc_org_domain(const char *name, char *out, size_t outlen)
{
	char d[DMARC_DOMAIN_MAX + 1];
	if (!norm_domain(name, d, sizeof(d)) || psl() == NULL)
		return false;
	const char *reg = psl_registrable_domain(psl(), d);
	if (reg == NULL || strlen(reg) >= outlen)
		return false;
	memcpy(out, reg, strlen(reg) + 1);
	return true;
}

/* org_or_self - the Organizational Domain, or the (normalised) name itself
 * when it is a public suffix: then nothing but itself aligns with it. */
static void org_or_self(const char *norm, char *out, size_t outlen)
{
	if (!dmarc_org_domain(norm, out, outlen))
		rg_strlcpy(out, norm, outlen);
}

bool dmarc_aligned(const char *a, const char *b, enum dmarc_align mode)
{
	char na[DMARC_DOMAIN_MAX + 1], nb[DMARC_DOMAIN_MAX + 1];
	if (!norm_domain(a, na, sizeof(na)) || !norm_domain(b, nb, sizeof(nb)))
		return false;
	if (strcmp(na, nb) == 0)
		return true;
	if (mode == DMARC_ALIGN_STRICT)
		return false;
	char oa[DMARC_DOMAIN_MAX + 1], ob[DMARC_DOMAIN_MAX + 1];
	org_or_self(na, oa, sizeof(oa));
	org_or_self(nb, ob, sizeof(ob));
	return strcmp(oa, ob) == 0;
}

/* ---- records ------------------------------------------------------------ */

struct span {
	const char *s;
	size_t n;
};

static bool span_is(struct span v, const char *word)
{
	return v.n == strlen(word) && rg_strncasecmp(v.s, word, v.n) == 0;
}

/* span_trim - without surrounding WSP. */
static struct span span_trim(const char *s, size_t n)
{
	while (n > 0 && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	return (struct span){s, n};
}

static enum dmarc_policy policy_word(struct span v)
{
	if (span_is(v, "none"))
		return DMARC_P_NONE;
	if (span_is(v, "quarantine"))
		return DMARC_P_QUARANTINE;
	if (span_is(v, "reject"))
		return DMARC_P_REJECT;
	return DMARC_P_UNSET;
}

/* span_uint - 1..digits decimal digits, value <= max. */
static bool span_uint(struct span v, size_t digits, unsigned long max, unsigned long *out)
{
	if (v.n == 0 || v.n > digits)
		return false;
	unsigned long x = 0;
	for (size_t i = 0; i < v.n; i++) {
		if (v.s[i] < '0' || v.s[i] > '9')
			return false;
		x = x * 10 + (unsigned long)(v.s[i] - '0');
	}
	*out = x;
	return x <= max;
}

/* uri_ok - one DMARC URI: scheme ":" something, optional "!" size; no
 * white space or controls inside (RFC 7489 6.2, RFC 3986 3.1). */
static bool uri_ok(struct span u)
{
	size_t i = 0;
	if (u.n == 0 || !((u.s[0] | 0x20) >= 'a' && (u.s[0] | 0x20) <= 'z'))
		return false;
	while (i < u.n && u.s[i] != ':') {
		char c = u.s[i++];
		bool ok = ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || (c >= '0' && c <= '9') ||
			  c == '+' || c == '-' || c == '.';
		if (!ok)
			return false;
	}
	if (i + 1 >= u.n)
		return false;
	for (; i < u.n; i++)
		if ((unsigned char)u.s[i] <= ' ' || u.s[i] == 0x7f)
			return false;
	return true;
}

/* uri_list - a comma-separated list; true if at least one URI is valid. */
static bool uri_list(struct span v, char *out, size_t outlen, unsigned *bad, unsigned flag)
{
	size_t copy = v.n < outlen ? v.n : outlen - 1;
	memcpy(out, v.s, copy);
	out[copy] = '\0';
	bool any = false;
	while (v.n > 0) {
		const char *comma = memchr(v.s, ',', v.n);
		size_t n = comma ? (size_t)(comma - v.s) : v.n;
		if (uri_ok(span_trim(v.s, n)))
			any = true;
		else
			*bad |= flag;
		v.s += comma ? n + 1 : n;
		v.n -= comma ? n + 1 : n;
	}
	return any;
}

/* colon_list_ok - every element of a ':' list is one of words. */
static bool colon_list_ok(struct span v, const char *const *words)
{
	do {
		const char *colon = memchr(v.s, ':', v.n);
		size_t n = colon ? (size_t)(colon - v.s) : v.n;
		struct span e = span_trim(v.s, n);
		bool ok = false;
		for (size_t i = 0; words[i] != NULL && !ok; i++)
			ok = span_is(e, words[i]);
		if (!ok)
			return false;
		v.s += colon ? n + 1 : n;
		v.n -= colon ? n + 1 : n;
	} while (v.n > 0);
	return true;
}

/* set_policy_tag - p=, sp=, np=. */
static void set_policy_tag(enum dmarc_policy *dst, struct span v, unsigned *bad, unsigned flag)
{
	*dst = policy_word(v);
	if (*dst == DMARC_P_UNSET)
		*bad |= flag;
}

/* set_align_tag - adkim=, aspf=. */
static void set_align_tag(enum dmarc_align *dst, struct span v, unsigned *bad, unsigned flag)
{
	if (span_is(v, "r"))
		*dst = DMARC_ALIGN_RELAXED;
	else if (span_is(v, "s"))
		*dst = DMARC_ALIGN_STRICT;
	else
		*bad |= flag;
}

/* set_uint_tag - pct= (0..100, 3 digits) or ri= (32 bits). */
static void set_uint_tag(unsigned *dst, struct span v, size_t digits, unsigned long max,
			 unsigned *bad, unsigned flag)
{
	unsigned long x;
	if (span_uint(v, digits, max, &x))
		*dst = (unsigned)x;
	else
		*bad |= flag;
}

/* set_fo_tag - fo=, a ':' list of 0 1 d s. */
static void set_fo_tag(struct dmarc_record *r, struct span v)
{
	static const char *const fo_words[] = {"0", "1", "d", "s", NULL};
	if (v.n < sizeof(r->fo) && colon_list_ok(v, fo_words)) {
		memcpy(r->fo, v.s, v.n);
		r->fo[v.n] = '\0';
	} else {
		r->bad |= DMARC_BAD_FO;
	}
}

/* apply_tag - one known tag; unknown ones are ignored (RFC 7489 6.3). */
static void apply_tag(struct dmarc_record *r, struct span t, struct span v)
{
	static const char *const rf_words[] = {"afrf", NULL};
	if (span_is(t, "p"))
		set_policy_tag(&r->p, v, &r->bad, DMARC_BAD_P);
	else if (span_is(t, "sp"))
		set_policy_tag(&r->sp, v, &r->bad, DMARC_BAD_SP);
	else if (span_is(t, "np"))
		set_policy_tag(&r->np, v, &r->bad, DMARC_BAD_NP);
	else if (span_is(t, "adkim"))
		set_align_tag(&r->adkim, v, &r->bad, DMARC_BAD_ADKIM);
	else if (span_is(t, "aspf"))
		set_align_tag(&r->aspf, v, &r->bad, DMARC_BAD_ASPF);
	else if (span_is(t, "pct"))
		set_uint_tag(&r->pct, v, 3, 100, &r->bad, DMARC_BAD_PCT);
	else if (span_is(t, "ri"))
		set_uint_tag(&r->ri, v, 10, 0xffffffffUL, &r->bad, DMARC_BAD_RI);
	else if (span_is(t, "rua"))
		r->rua_valid = uri_list(v, r->rua, sizeof(r->rua), &r->bad, DMARC_BAD_RUA);
	else if (span_is(t, "ruf"))
		uri_list(v, r->ruf, sizeof(r->ruf), &r->bad, DMARC_BAD_RUF);
	else if (span_is(t, "fo"))
		set_fo_tag(r, v);
	else if (span_is(t, "rf") && !colon_list_ok(v, rf_words))
		r->bad |= DMARC_BAD_RF; /* afrf is the only registered format */
}

/* next_tag - split "tag = value" off the front of *rest at ';'; false when
 * nothing is left. A part without '=' is flagged and skipped. */
static bool next_tag(struct span *rest, struct span *tag, struct span *val, unsigned *bad)
{
	while (rest->n > 0) {
		const char *semi = memchr(rest->s, ';', rest->n);
		size_t n = semi ? (size_t)(semi - rest->s) : rest->n;
		struct span part = span_trim(rest->s, n);
		rest->s += semi ? n + 1 : n;
		rest->n -= semi ? n + 1 : n;
		if (part.n == 0)
			continue;
		const char *eq = memchr(part.s, '=', part.n);
		if (eq == NULL) {
			*bad |= DMARC_BAD_SYNTAX;
			continue;
		}
		*tag = span_trim(part.s, (size_t)(eq - part.s));
		*val = span_trim(eq + 1, part.n - (size_t)(eq - part.s) - 1);
		return true;
	}
	return false;
}

enum dmarc_parse dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *r)
{
	memset(r, 0, sizeof(*r));
	r->pct = 100;
	r->ri = 86400;
	rg_strlcpy(r->fo, "0", sizeof(r->fo));
	struct span rest = {txt, len}, tag, val;
	if (len > DMARC_RECORD_MAX || memchr(txt, '\0', len) != NULL)
		return DMARC_REC_NOT_DMARC;
	/* v=DMARC1 must be the very first tag (6.3); it is the record's marker */
	if (!next_tag(&rest, &tag, &val, &r->bad) || tag.s != txt || !span_is(tag, "v") ||
	    !span_is(val, "DMARC1"))
		return DMARC_REC_NOT_DMARC;
	while (next_tag(&rest, &tag, &val, &r->bad))
		apply_tag(r, tag, val);
	/* 6.6.3: no valid p= (or an invalid sp=) means p=none when rua= names a
	 * valid URI, and no DMARC processing otherwise */
	if (r->p == DMARC_P_UNSET || (r->bad & DMARC_BAD_SP)) {
		if (!r->rua_valid)
			return DMARC_REC_NO_POLICY;
		r->p = DMARC_P_NONE;
		r->sp = DMARC_P_UNSET;
	}
	return DMARC_REC_OK;
}

/* ---- policy discovery ----------------------------------------------------- */

enum stage { ST_FROM, ST_ORG, ST_EXIST, ST_DONE };

struct dmarc_lookup {
	struct dmarc_resolver res;
	dmarc_discovered_cb done;
	void *arg;
	void *handle;     /* the outstanding query, for cancel */
	enum stage stage;
	bool querying;    /* inside res.start: an answer now is synchronous */
	bool sync_answer;
	char qname[DMARC_DOMAIN_MAX + 2];
	struct dmarc_discovery d;
};

/* finish - discovery over: hand the result on and free the lookup. */
static void finish(struct dmarc_lookup *l)
{
	dmarc_discovered_cb done = l->done;
	void *arg = l->arg;
	struct dmarc_discovery d = l->d;
	free(l);
	done(arg, &d);
}

/* end_with - the discovery ends with found and a reason. */
static void end_with(struct dmarc_lookup *l, enum dmarc_found found, const char *why)
{
	l->d.found = found;
	snprintf(l->d.why, sizeof(l->d.why), "%s", why);
	l->stage = ST_DONE;
}

/* ask - set the next query: _dmarc.<domain> (or domain itself for ST_EXIST). */
static void ask(struct dmarc_lookup *l, enum stage st, const char *domain)
{
	int n = snprintf(l->qname, sizeof(l->qname), "%s%s", st == ST_EXIST ? "" : "_dmarc.",
			 domain);
	if (n < 0 || (size_t)n > DMARC_DOMAIN_MAX) {
		/* an author domain of 247-253 bytes has no _dmarc name, but the org
		 * domain's policy still covers it: ending here was a way around p=reject */
		if (st == ST_FROM && l->d.org_domain[0] != '\0' &&
		    strcmp(l->d.org_domain, l->d.from_domain) != 0)
			ask(l, ST_ORG, l->d.org_domain);
		else
			end_with(l, DMARC_FOUND_NONE, "DMARC name too long");
		return;
	}
	l->stage = st;
}

/* no_record - nothing at this level: on to the org domain, or the end. */
static void no_record(struct dmarc_lookup *l)
{
	if (l->stage == ST_FROM && l->d.org_domain[0] != '\0' &&
	    strcmp(l->d.org_domain, l->d.from_domain) != 0) {
		ask(l, ST_ORG, l->d.org_domain);
		return;
	}
	end_with(l, DMARC_FOUND_NONE, "no DMARC record");
}

/* got_records - a TXT answer at _dmarc.<x>: exactly one DMARC record is a
 * policy; several end discovery with none (6.6.3 step 5). */
static void got_records(struct dmarc_lookup *l, const char *const *txt, const size_t *len,
			size_t n)
{
	size_t found = 0;
	enum dmarc_parse first = DMARC_REC_NOT_DMARC;
	struct dmarc_record rec;
	for (size_t i = 0; i < n; i++) {
		enum dmarc_parse p = dmarc_record_parse(txt[i], len[i], &rec);
		if (p != DMARC_REC_NOT_DMARC && found++ == 0) {
			first = p;
			l->d.rec = rec;
		}
	}
	if (found == 0) {
		no_record(l);
		return;
	}
	if (found > 1) {
		end_with(l, DMARC_FOUND_NONE, "several DMARC records");
		return;
	}
	if (first == DMARC_REC_NO_POLICY) {
		end_with(l, DMARC_FOUND_NONE, "DMARC record without a valid p= or rua=");
		return;
	}
	rg_strlcpy(l->d.record_domain, l->qname + strlen("_dmarc."), sizeof(l->d.record_domain));
	end_with(l, DMARC_FOUND, "");
	if (l->d.rec.np != DMARC_P_UNSET && strcmp(l->d.record_domain, l->d.from_domain) != 0)
		ask(l, ST_EXIST, l->d.from_domain);
}

/* on_txt - the resolver's answer for the current stage. */
static void on_txt(void *arg, enum dmarc_dns status, const char *const *txt, const size_t *len,
		   size_t n);

/* step - issue queries until one is outstanding (false) or discovery is over
 * and l has been freed (true). */
static bool step(struct dmarc_lookup *l)
{
	while (l->stage != ST_DONE) {
		l->querying = true;
		l->sync_answer = false;
		void *h = l->res.start(l->res.ctx, l->qname, on_txt, l);
		l->querying = false;
		if (!l->sync_answer) {
			l->handle = h;
			return false;
		}
	}
	finish(l);
	return true;
}

static void on_txt(void *arg, enum dmarc_dns status, const char *const *txt, const size_t *len,
		   size_t n)
{
	struct dmarc_lookup *l = arg;
	l->handle = NULL;
	if (l->stage == ST_EXIST) {
		/* NXDOMAIN is about the name, whatever the type (RFC 8020), so one
		 * TXT query answers DMARCbis's A/AAAA/MX question; a failure here
		 * only loses the np= refinement */
		l->d.from_nonexistent = status == DMARC_DNS_NXDOMAIN;
		l->stage = ST_DONE;
	} else if (status == DMARC_DNS_TEMPFAIL) {
		char why[sizeof(l->qname) + 32];
		snprintf(why, sizeof(why), "DNS failure for %s", l->qname);
		end_with(l, DMARC_FOUND_TEMP, why);
	} else if (status == DMARC_DNS_NXDOMAIN) {
		no_record(l);
	} else {
		got_records(l, txt, len, n);
	}
	if (l->querying)
		l->sync_answer = true;
	else
		step(l);
}

struct dmarc_lookup *dmarc_lookup_start(const struct dmarc_resolver *res, const char *from_domain,
					dmarc_discovered_cb done, void *arg)
{
	struct dmarc_lookup *l = xcalloc(1, sizeof(*l));
	l->res = *res;
	l->done = done;
	l->arg = arg;
	if (!norm_domain(from_domain, l->d.from_domain, sizeof(l->d.from_domain))) {
		rg_strlcpy(l->d.from_domain, from_domain ? from_domain : "", sizeof(l->d.from_domain));
		end_with(l, DMARC_FOUND_NONE, "author domain is not a DNS name");
	} else {
		dmarc_org_domain(l->d.from_domain, l->d.org_domain, sizeof(l->d.org_domain));
		ask(l, ST_FROM, l->d.from_domain);
	}
	return step(l) ? NULL : l;
}

void dmarc_lookup_cancel(struct dmarc_lookup *l)
{
	if (l == NULL)
		return;
	if (l->handle != NULL)
		l->res.cancel(l->res.ctx, l->handle);
	free(l);
}

/* ---- evaluation ------------------------------------------------------------ */

/* from_problem - a From: that yields no single author domain fails DMARC
 * on its own (RFC 7489 6.6.1; the OpenDMARC CVE-2019-16378 class): no
 * policy can be looked up for it, and the reader sees an author we could
 * not check. */
static bool from_problem(const struct dmarc_input *in, struct dmarc_verdict *v)
{
	if (in->from_fields != 1)
		snprintf(v->reason, sizeof(v->reason), "%zu From: fields", in->from_fields);
	else if (in->from == NULL || in->from->status != FROM_OK)
		snprintf(v->reason, sizeof(v->reason), "From: %s (%s)",
			 from_status_name(in->from ? in->from->status : FROM_EMPTY),
			 in->from ? in->from->detail : "missing");
	else
		return false;
	v->result = DMARC_FAIL;
	v->disposition = DMARC_DISP_REJECT;
	return true;
}

/* applicable - the policy for the author domain: p= for a record at the
 * author domain itself, else np= for a non-existent one, sp=, p=. */
static enum dmarc_policy applicable(const struct dmarc_discovery *d, const char **tag)
{
	const struct dmarc_record *r = &d->rec;
	*tag = "p";
	if (strcmp(d->record_domain, d->from_domain) == 0)
		return r->p;
	if (d->from_nonexistent && r->np != DMARC_P_UNSET) {
		*tag = "np";
		return r->np;
	}
	if (r->sp != DMARC_P_UNSET) {
		*tag = "sp";
		return r->sp;
	}
	return r->p;
}

/* check_alignment - SPF (pass only) and DKIM (any passing d=) alignment. */
static void check_alignment(const struct dmarc_input *in, const struct dmarc_discovery *d,
			    struct dmarc_verdict *v)
{
	v->spf_aligned = in->spf_pass && in->spf_domain != NULL &&
			 dmarc_aligned(in->spf_domain, d->from_domain, d->rec.aspf);
	for (size_t i = 0; i < in->ndkim && !v->dkim_aligned; i++)
		v->dkim_aligned = in->dkim[i].pass &&
				  dmarc_aligned(in->dkim[i].domain, d->from_domain, d->rec.adkim);
}

/* disposition_for - the policy as an action, made one step milder when the
 * message falls outside pct= (6.6.4). */
static enum dmarc_disposition disposition_for(enum dmarc_policy p, const struct dmarc_input *in,
					      const struct dmarc_record *r, bool *sampled_out)
{
	enum dmarc_disposition disp = p == DMARC_P_REJECT       ? DMARC_DISP_REJECT
				      : p == DMARC_P_QUARANTINE ? DMARC_DISP_QUARANTINE
								: DMARC_DISP_NONE;
	*sampled_out = disp != DMARC_DISP_NONE && in->sample % 100 >= r->pct;
	if (*sampled_out)
		disp = disp == DMARC_DISP_REJECT ? DMARC_DISP_QUARANTINE : DMARC_DISP_NONE;
	return disp;
}

/* describe - the log's reason for a found policy. */
static void describe(const struct dmarc_discovery *d, struct dmarc_verdict *v)
{
	snprintf(v->reason, sizeof(v->reason),
		 "%s=%s from %s, spf %s, dkim %s%s, action %s", v->policy_tag,
		 dmarc_policy_name(v->policy), d->record_domain,
		 v->spf_aligned ? "aligned" : "not aligned",
		 v->dkim_aligned ? "aligned" : "not aligned",
		 v->sampled_out ? ", outside pct=" : "", dmarc_disposition_name(v->disposition));
}

void dmarc_evaluate(const struct dmarc_input *in, const struct dmarc_discovery *d,
		    struct dmarc_verdict *v)
{
	memset(v, 0, sizeof(*v));
	v->policy_tag = "";
	if (from_problem(in, v))
		return;
	rg_strlcpy(v->header_from, in->from->domain[0], sizeof(v->header_from));
	if (d == NULL || d->found != DMARC_FOUND) {
		bool temp = d && d->found == DMARC_FOUND_TEMP;
		v->result = temp ? DMARC_TEMPERROR : DMARC_NONE;
		snprintf(v->reason, sizeof(v->reason), "%s%s%s%s",
			 temp ? "temporary DNS failure" : "no DMARC policy", d && d->why[0] ? " (" : "",
			 d ? d->why : "", d && d->why[0] ? ")" : "");
		return;
	}
	check_alignment(in, d, v);
	v->policy = applicable(d, &v->policy_tag);
	if (v->spf_aligned || v->dkim_aligned)
		v->result = DMARC_PASS;
	else {
		v->result = DMARC_FAIL;
		v->disposition = disposition_for(v->policy, in, &d->rec, &v->sampled_out);
	}
	describe(d, v);
}

const char *dmarc_result_name(enum dmarc_result r)
{
	static const char *const names[] = {"none", "pass", "fail", "temperror", "permerror"};
	return (size_t)r < RG_ARRAY_LEN(names) ? names[r] : "?";
}

const char *dmarc_disposition_name(enum dmarc_disposition d)
{
	static const char *const names[] = {"none", "quarantine", "reject"};
	return (size_t)d < RG_ARRAY_LEN(names) ? names[d] : "?";
}

const char *dmarc_policy_name(enum dmarc_policy p)
{
	static const char *const names[] = {"unset", "none", "quarantine", "reject"};
	return (size_t)p < RG_ARRAY_LEN(names) ? names[p] : "?";
}
