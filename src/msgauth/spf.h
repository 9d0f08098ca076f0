/*
 * spf - Sender Policy Framework (RFC 7208): is a client allowed to send mail
 * for the MAIL FROM (or HELO) domain?
 *
 * Owns: the record parser (spf_record.c: strict syntax, any error is a
 * permerror), macro expansion (spf_macro.c: every letter and transformer,
 * bounded output), and check_host() as an asynchronous state machine over a
 * small resolver interface (spf_eval.c), with every limit of RFC 7208 4.6.4
 * (10 DNS-querying terms, 2 void lookups, 10 MX and 10 PTR names) plus our
 * own bounds (record length, terms per record, include depth); and the
 * Received-SPF header field (RFC 7208 9.1) with client text quoted safely.
 * Must not: block, talk to DNS except through struct spf_resolver, or decide
 * what a result means for a message (the restriction lists do).
 */
#ifndef RG_SPF_H
#define RG_SPF_H

#include <stdbool.h>
#include <stddef.h>

#include "net/net.h"

enum spf_result {
	SPF_NONE,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
};

/* spf_result_name - "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror". */
const char *spf_result_name(enum spf_result r);

/* ---- limits ---- */
#define SPF_MAX_DNS_TERMS 10 /* include a mx ptr exists redirect (RFC 7208 4.6.4) */
#define SPF_MAX_VOID 2       /* lookups answering NXDOMAIN or no records */
#define SPF_MAX_NAMES 10     /* MX hosts / PTR names looked at per term */
#define SPF_MAX_DEPTH 10     /* nested include */
#define SPF_RECORD_MAX 1023  /* bytes of one record (the DNS module's TXT bound) */
#define SPF_MAX_TERMS 128    /* terms of one record */
#define SPF_EXPAND_MAX 1024  /* bytes of one macro expansion */

/* ---- the resolver the evaluator uses ---- */

enum spf_qtype { SPF_Q_TXT, SPF_Q_A, SPF_Q_AAAA, SPF_Q_MX, SPF_Q_PTR };
enum spf_rcode { SPF_DNS_NOERROR, SPF_DNS_NXDOMAIN, SPF_DNS_SERVFAIL, SPF_DNS_TIMEOUT };

struct spf_dns_answer {
	enum spf_rcode rcode;
	size_t n;                  /* records (0 with NOERROR: no data) */
	const char *const *names;  /* TXT (strings joined), MX (host), PTR (name) */
	const struct rg_ip *addrs; /* A, AAAA */
};

/* a is valid only during the call. */
typedef void (*spf_dns_fn)(void *arg, const struct spf_dns_answer *a);

struct spf_resolver {
	/* Start a query; fn runs exactly once, on the loop, never inside query(),
	 * unless cancel() comes first. Returns a handle (never NULL). */
	void *(*query)(void *rctx, enum spf_qtype type, const char *name, spf_dns_fn fn,
		       void *arg);
	void (*cancel)(void *rctx, void *handle);
};

/* ---- records (spf_record.c) ---- */

enum spf_mech { SPF_M_ALL, SPF_M_INCLUDE, SPF_M_A, SPF_M_MX, SPF_M_PTR, SPF_M_IP4,
		SPF_M_IP6, SPF_M_EXISTS };

struct spf_term {
	enum spf_mech mech;
	char qual;             /* '+', '-', '~', '?' */
	const char *spec;      /* the domain-spec (into rec->text), NULL when absent */
	size_t spec_len;
	struct rg_ip ip;       /* ip4, ip6 */
	unsigned cidr4, cidr6; /* a, mx, ip4, ip6 */
	const char *text;      /* the whole term, for the log (into rec->text) */
	size_t text_len;
};

struct spf_record {
	char text[SPF_RECORD_MAX + 1];
	struct spf_term terms[SPF_MAX_TERMS];
	size_t n;
	const char *redirect, *exp; /* modifier values, NULL when absent */
	size_t redirect_len, exp_len;
	bool has_all;
};

/* spf_record_is_spf - does this TXT record start with "v=spf1" (any case),
 * followed by a space or its end? */
bool spf_record_is_spf(const char *text, size_t len);

/* spf_record_parse - the whole record, strictly; false (a permerror) with the
 * reason in err on any syntax error anywhere. */
bool spf_record_parse(const char *text, size_t len, struct spf_record *rec, char *err,
		      size_t errlen);

/* spf_domain_spec_ok - macro-string syntax and, unless it ends in a macro, a
 * domain-end with a valid top label (RFC 7208 7.1). */
bool spf_domain_spec_ok(const char *spec, size_t len);

/* ---- macros (spf_macro.c) ---- */

struct spf_macro_ctx {
	const char *sender;   /* s: local@domain */
	const char *local;    /* l */
	const char *sender_domain; /* o */
	const char *domain;   /* d: the current domain */
	const struct rg_ip *ip; /* i, v, c */
	const char *ptr;      /* p: the validated name, or "unknown" */
	const char *helo;     /* h */
	const char *receiver; /* r */
	long long now;        /* t */
};

/* spf_macro_expand - a macro-string into out (NUL-terminated). exp: the
 * letters c, r, t are allowed (explanation strings). False, with why, on a
 * syntax error or an expansion longer than outlen - 1 (a permerror). */
bool spf_macro_expand(const char *s, size_t len, const struct spf_macro_ctx *ctx, bool exp,
		      char *out, size_t outlen, const char **why);

/* spf_macro_uses_p - does the macro-string use %{p} (a DNS lookup first)? */
bool spf_macro_uses_p(const char *s, size_t len);

/* spf_domain_truncate - RFC 7208 4.8: drop labels from the left until the
 * name is at most 253 bytes; false when the result is not a usable name
 * (empty, an empty label, a label over 63 bytes). */
bool spf_domain_truncate(char *name);

/* ---- check_host() (spf_eval.c) ---- */

#define SPF_DOMAIN_MAX 256
#define SPF_ADDR_MAX 512
#define SPF_TEXT_MAX 512

struct spf_outcome {
	enum spf_result result;
	char identity[16];                /* "mailfrom" or "helo" */
	char domain[SPF_DOMAIN_MAX];      /* the domain checked (the identity's) */
	char explanation[SPF_TEXT_MAX];   /* fail: the exp= text, expanded; else "" */
	char problem[SPF_TEXT_MAX];       /* errors: why; otherwise the deciding term */
	char client_ip[RG_IP_STRLEN];
	char envelope_from[SPF_ADDR_MAX]; /* as given ("" for the null sender) */
	char helo[SPF_DOMAIN_MAX];
	char receiver[SPF_DOMAIN_MAX];
};

struct spf_check;

/* o is valid only during the call; the check is freed after it returns. */
typedef void (*spf_done_fn)(void *arg, const struct spf_outcome *o);

/* spf_check_start - check the MAIL FROM identity (mail_from "" for the null
 * sender: then the HELO identity, postmaster@helo, RFC 7208 2.4). fn runs
 * exactly once, on the loop, unless spf_check_cancel() comes first; when the
 * result is known at once (no valid domain to check: "none") fn runs before
 * this returns and NULL is returned (the contract of dns_client_name).
 * mail_from is the reverse-path without angle brackets; every string is
 * copied; r and rctx must outlive the check. */
struct spf_check *spf_check_start(const struct spf_resolver *r, void *rctx,
				  const struct rg_ip *client, const char *mail_from,
				  const char *helo, const char *receiver_host, spf_done_fn fn,
				  void *arg);

/* spf_helo_check_start - check the HELO identity (RFC 7208 2.3) whatever the sender. */
struct spf_check *spf_helo_check_start(const struct spf_resolver *r, void *rctx,
				       const struct rg_ip *client, const char *helo,
				       const char *receiver_host, spf_done_fn fn, void *arg);

/* spf_check_cancel - fn will not run; the query in flight is cancelled. */
void spf_check_cancel(struct spf_check *c);

/* spf_received_header - "Received-SPF: pass (...) client-ip=...; ..." (RFC
 * 7208 9.1), folded with CRLF TAB, without the final CRLF. Client text is
 * quoted or replaced so it cannot add fields or lines. Returns the length
 * (truncated at a pair boundary when len is too small). */
size_t spf_received_header(const struct spf_outcome *o, char *buf, size_t len);

#endif
