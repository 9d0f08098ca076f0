/*
 * dmarc - DMARC (RFC 7489): policy records, policy discovery, alignment and
 * the disposition of one message.
 *
 * Owns: the record grammar (v=DMARC1 first; p sp np pct adkim aspf rua ruf
 * fo rf ri; unknown tags ignored), the Organizational Domain (libpsl's
 * built-in list), the lookup order _dmarc.<From domain> then
 * _dmarc.<Organizational Domain> as a small asynchronous driver over a TXT
 * lookup interface the caller provides, relaxed/strict identifier
 * alignment, and the verdict: result, disposition (p/sp/np with pct=
 * sampling) and a reason for the log.
 * Must not: do I/O itself (DNS comes through struct dmarc_resolver), read
 * the message, or decide what a disposition does to it (the session does:
 * 550, a .Junk/ delivery, or only the header); never sample randomly
 * itself (the caller passes the sample, so tests are deterministic).
 */
#ifndef RG_MSGAUTH_DMARC_H
#define RG_MSGAUTH_DMARC_H

#include <stdbool.h>
#include <stddef.h>

#include "msgauth/from.h"

#define DMARC_DOMAIN_MAX 253
#define DMARC_RECORD_MAX 4096 /* longer TXT records are not DMARC records */
#define DMARC_URI_MAX 512

enum dmarc_policy { DMARC_P_UNSET, DMARC_P_NONE, DMARC_P_QUARANTINE, DMARC_P_REJECT };
enum dmarc_align { DMARC_ALIGN_RELAXED, DMARC_ALIGN_STRICT };

/* Tags whose value was invalid (and so replaced by the default, RFC 7489
 * 6.3: "syntax errors in the remainder of the record SHOULD be discarded in
 * favor of default values"). */
enum {
	DMARC_BAD_P = 1 << 0, DMARC_BAD_SP = 1 << 1, DMARC_BAD_NP = 1 << 2,
	DMARC_BAD_PCT = 1 << 3, DMARC_BAD_ADKIM = 1 << 4, DMARC_BAD_ASPF = 1 << 5,
	DMARC_BAD_RUA = 1 << 6, DMARC_BAD_RUF = 1 << 7, DMARC_BAD_FO = 1 << 8,
	DMARC_BAD_RF = 1 << 9, DMARC_BAD_RI = 1 << 10, DMARC_BAD_SYNTAX = 1 << 11,
};

struct dmarc_record {
	enum dmarc_policy p, sp, np; /* sp, np: UNSET when absent */
	unsigned pct;                /* 0..100, default 100 */
	enum dmarc_align adkim, aspf;
	unsigned ri;                 /* default 86400 */
	char fo[16];                 /* default "0" */
	char rua[DMARC_URI_MAX];     /* as published ("" when absent) */
	char ruf[DMARC_URI_MAX];
	bool rua_valid;              /* at least one syntactically valid URI */
	unsigned bad;                /* DMARC_BAD_* */
};

enum dmarc_parse {
	DMARC_REC_OK,        /* a policy (maybe p=none by RFC 7489 6.6.3 rua rule) */
	DMARC_REC_NOT_DMARC, /* not a DMARC record: discarded (6.6.3 step 4) */
	DMARC_REC_NO_POLICY, /* a DMARC record with no valid p= and no valid rua= */
};

/* dmarc_record_parse - parse one TXT record (its strings already joined). */
enum dmarc_parse dmarc_record_parse(const char *txt, size_t len, struct dmarc_record *rec);

/* dmarc_org_domain - the Organizational Domain of name (RFC 7489 3.2: the
 * public suffix plus one label) into out, lower case. False if name is
 * itself a public suffix or not a valid name. */
bool dmarc_org_domain(const char *name, char *out, size_t outlen);

/* dmarc_aligned - are the two domains aligned in that mode? Case and one
 * trailing dot are ignored; anything else malformed never aligns. */
bool dmarc_aligned(const char *a, const char *b, enum dmarc_align mode);

/* ---- DNS, through the caller ---------------------------------------- */

enum dmarc_dns {
	DMARC_DNS_OK,       /* answer with zero or more TXT records */
	DMARC_DNS_NXDOMAIN, /* the name does not exist */
	DMARC_DNS_TEMPFAIL, /* timeout, SERVFAIL, truncated beyond repair */
};

/* Called exactly once per started lookup unless cancelled: txt[i] is one TXT
 * record with its character-strings concatenated, len[i] its length. */
typedef void (*dmarc_txt_cb)(void *arg, enum dmarc_dns status, const char *const *txt,
			     const size_t *len, size_t n);

/* The caller's asynchronous TXT lookup (c-ares on the event loop, or a
 * table in tests). start returns a handle for cancel (NULL on immediate
 * failure, after calling cb with DMARC_DNS_TEMPFAIL or not at all: it must
 * call cb in either case). cb may be called from inside start. */
struct dmarc_resolver {
	void *(*start)(void *ctx, const char *name, dmarc_txt_cb cb, void *arg);
	void (*cancel)(void *ctx, void *handle);
	void *ctx;
};

enum dmarc_found {
	DMARC_FOUND,       /* a policy record at record_domain */
	DMARC_FOUND_NONE,  /* no (usable) record: DMARC does not apply */
	DMARC_FOUND_TEMP,  /* a DNS failure: dmarc=temperror */
};

/* What policy discovery found for one author domain. */
struct dmarc_discovery {
	enum dmarc_found found;
	char from_domain[DMARC_DOMAIN_MAX + 1];
	char org_domain[DMARC_DOMAIN_MAX + 1];    /* "" if from_domain is a PS */
	char record_domain[DMARC_DOMAIN_MAX + 1]; /* where the record was */
	bool from_nonexistent; /* from_domain is NXDOMAIN (asked only for np=) */
	struct dmarc_record rec;
	char why[96];          /* for FOUND_NONE / FOUND_TEMP: what happened */
};

struct dmarc_lookup;
typedef void (*dmarc_discovered_cb)(void *arg, const struct dmarc_discovery *d);

/* dmarc_lookup_start - discover the policy for from_domain: TXT
 * _dmarc.<from_domain>; if that has no DMARC record and the Organizational
 * Domain differs, TXT _dmarc.<org>; if the record came from the org domain,
 * has np= and from_domain is a subdomain, TXT <from_domain> to learn whether
 * it exists. done is called exactly once (maybe before this returns, then
 * NULL is returned) unless dmarc_lookup_cancel is called first. */
struct dmarc_lookup *dmarc_lookup_start(const struct dmarc_resolver *res, const char *from_domain,
					dmarc_discovered_cb done, void *arg);

/* dmarc_lookup_cancel - stop a lookup (cancels its DNS query); done is not
 * called. Not for a lookup whose done has already run. */
void dmarc_lookup_cancel(struct dmarc_lookup *l);

/* ---- evaluation (pure) ---------------------------------------------- */

enum dmarc_result { DMARC_NONE, DMARC_PASS, DMARC_FAIL, DMARC_TEMPERROR, DMARC_PERMERROR };
enum dmarc_disposition { DMARC_DISP_NONE, DMARC_DISP_QUARANTINE, DMARC_DISP_REJECT };

struct dmarc_dkim_sig {
	const char *domain; /* d= */
	bool pass;          /* dkim=pass for this signature */
};

struct dmarc_input {
	const struct from_result *from;  /* from_parse() of the one From: field */
	size_t from_fields;              /* From: fields in the header (must be 1) */
	const char *spf_domain;          /* domain SPF checked (MAIL FROM, else HELO) */
	bool spf_pass;                   /* spf=pass for it */
	const struct dmarc_dkim_sig *dkim;
	size_t ndkim;
	unsigned sample;                 /* 0..99: pct= applies when sample < pct */
};

struct dmarc_verdict {
	enum dmarc_result result;
	enum dmarc_disposition disposition;
	enum dmarc_policy policy;        /* the policy that applied (p, sp or np) */
	const char *policy_tag;          /* "p", "sp", "np" or "" */
	bool spf_aligned, dkim_aligned;
	bool sampled_out;                /* pct= made the disposition milder */
	char header_from[DMARC_DOMAIN_MAX + 1]; /* for header.from= ("" if none) */
	char reason[256];                /* one line for the log */
};

/* dmarc_evaluate - the verdict for a message. disc is the discovery for
 * in->from->domain[0]; it may be NULL when the From: field did not yield one
 * author domain (then the From problem is the verdict). */
void dmarc_evaluate(const struct dmarc_input *in, const struct dmarc_discovery *disc,
		    struct dmarc_verdict *v);

const char *dmarc_result_name(enum dmarc_result r);           /* "pass", ... */
const char *dmarc_disposition_name(enum dmarc_disposition d); /* "none", ... */
const char *dmarc_policy_name(enum dmarc_policy p);           /* "reject", ... */

#endif
