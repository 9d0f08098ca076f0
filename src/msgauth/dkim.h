/*
 * dkim - DomainKeys Identified Mail (RFC 6376; RFC 8463 Ed25519; RFC 8301:
 * no rsa-sha1, RSA keys of 1024 bits or more): verifying inbound signatures
 * and signing outbound mail.
 *
 * Owns: what a DKIM-Signature says and whether it holds (dkim_verify.c); making
 * one (dkim_sign.c); the signing table (dkim_table.c).
 * Must not: do DNS or file I/O during verification: the caller looks the keys
 * up (on the event loop) and feeds the body (on a worker thread), in this order:
 *
 *	v = dkim_verify_new(&headers, 5, time(NULL));         loop
 *	for i < dkim_verify_nkeys(v): TXT of dkim_verify_key_name(v, i) -> dkim_verify_set_key()
 *	dkim_verify_body(v, chunk, n) ...; dkim_verify_finish(v);   worker
 *	(the finish decodes the keys: DER and RSA cost too much for the loop)
 *	dkim_verify_result(v, i) for i < dkim_verify_nresults(v);  dkim_verify_free(v)
 *
 * The headers must outlive v. Signing is the same shape without DNS.
 */
#ifndef RG_MSGAUTH_DKIM_H
#define RG_MSGAUTH_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct msg_headers;

#define DKIM_MAX_SIGS_DEFAULT 5 /* signatures verified per message */

/* ---- verification ---- */

enum dkim_result {
	DKIM_NONE,      /* (only as a summary: no signature) */
	DKIM_PASS,
	DKIM_FAIL,      /* the signature or the body hash does not verify */
	DKIM_NEUTRAL,   /* not used for single signatures today */
	DKIM_POLICY,    /* verified, but unacceptable to us (reserved) */
	DKIM_TEMPERROR, /* the key could not be fetched now (DNS) */
	DKIM_PERMERROR, /* unusable signature or key: syntax, revoked, rsa-sha1, small key, expired */
};

struct dkim_sig_result {
	enum dkim_result result;
	char reason[128];   /* for the log and Authentication-Results comment ("" on pass) */
	char d[256];        /* d= ("" when the signature did not parse that far) */
	char s[64];         /* s= */
	char i[320];        /* i= (or "@d" when absent) */
	char b[16];         /* the first 12 characters of b= (header.b, RFC 6008) */
	char a[24];         /* a= */
	bool l_present;     /* the signature has l= (content past it: result policy) */
	bool testing;       /* the key says t=y */
};

enum dkim_key_lookup { DKIM_KEY_LOOKUP_OK, DKIM_KEY_LOOKUP_NONE, DKIM_KEY_LOOKUP_TEMP };

struct dkim_verify;

/* The first max_sigs DKIM-Signature fields (top-down) of h; now judges x=. */
struct dkim_verify *dkim_verify_new(const struct msg_headers *h, unsigned max_sigs, time_t now);
/* Keys to look up: i < nkeys; name is "selector._domainkey.domain". */
size_t dkim_verify_nkeys(const struct dkim_verify *v);
const char *dkim_verify_key_name(const struct dkim_verify *v, size_t i);
/* The TXT record found for key i (its strings joined; txt NULL unless OK). With
 * several records, pass the first that parses as DKIM, or any one. Only
 * copied here (cheap, on the loop): dkim_verify_finish() decodes it. */
void dkim_verify_set_key(struct dkim_verify *v, size_t i, const char *txt,
			 enum dkim_key_lookup status);
/* The message body after the empty line, in chunks of any size (dot-unstuffed). */
void dkim_verify_body(struct dkim_verify *v, const void *chunk, size_t n);
/* Decode the keys, compare body hashes, verify the header signatures. */
void dkim_verify_finish(struct dkim_verify *v);
size_t dkim_verify_nresults(const struct dkim_verify *v);
const struct dkim_sig_result *dkim_verify_result(const struct dkim_verify *v, size_t i);
void dkim_verify_free(struct dkim_verify *v);

/* dkim_cleanup - frees the decoded keys kept for reuse and the fetched digest;
 * at exit, when no verification or signing runs any more. */
void dkim_cleanup(void);

/* dkim_result_name - "pass", "fail", ... as in Authentication-Results (RFC 8601). */
const char *dkim_result_name(enum dkim_result r);

/* ---- signing ---- */

struct evp_pkey_st;
struct dkim_sign;

/* Sign as d=domain s=selector with key (RSA: rsa-sha256, Ed25519: ed25519-sha256),
 * relaxed/relaxed, t=now, the header set of dkim_sign.c with From, Subject, Date,
 * To, Cc, Message-ID, Reply-To over-signed. h must outlive the signer. */
struct dkim_sign *dkim_sign_new(struct evp_pkey_st *key, const char *domain, const char *selector,
				const struct msg_headers *h, time_t now);
/* dkim_sign_expire - add x=expire (seconds since the epoch) to the signature. */
void dkim_sign_expire(struct dkim_sign *s, time_t expire);
void dkim_sign_body(struct dkim_sign *s, const void *chunk, size_t n);
/* The field to prepend, "DKIM-Signature: ...\r\n", folded; malloc'd. NULL when
 * the key cannot sign (why says so). Frees s either way. */
char *dkim_sign_finish(struct dkim_sign *s, char *why, size_t whylen);
void dkim_sign_free(struct dkim_sign *s);

/* ---- the signing table: "domain selector /path/key.pem" lines ---- */

struct dkim_signing_entry {
	char *domain;   /* lower case; "*.example.com" for every subdomain */
	char *selector;
	char *keyfile;
	struct evp_pkey_st *key;
	unsigned line;
};

struct dkim_signing_table {
	struct dkim_signing_entry *e;
	size_t n;
};

/* Load and check every line (keys are read now, so errors are file:line: ...). */
struct dkim_signing_table *dkim_signing_table_load(const char *path, char *err, size_t errlen);
void dkim_signing_table_free(struct dkim_signing_table *t);
/* The entries for domain (exact entries, else those of the closest wildcard),
 * at most max of them (one per key: dual RSA + Ed25519 signing). */
size_t dkim_signing_table_find(const struct dkim_signing_table *t, const char *domain,
			       const struct dkim_signing_entry **out, size_t max);

#endif
