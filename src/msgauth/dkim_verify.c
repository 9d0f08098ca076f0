/*
 * dkim_verify.c - verify the DKIM-Signature fields of a message (RFC 6376 6.1).
 *
 * Owns: checking each signature's tags, matching its key (decoded in the
 * finish, on a worker), the body hash (fed in chunks, on a worker) and the
 * signature over the header fields.
 * Must not: look up keys itself (the caller does, on the loop), hold the body,
 * or verify more than max_sigs signatures (each costs an RSA operation).
 */
#include "msgauth/dkim.h"
#include "msgauth/dkim_priv.h"
#include "msgauth/header.h"

#include "util/util.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dkim_sig {
	struct dkim_sig_result r;
	bool pending;             /* still to be decided (r.result meaningless until then) */
	size_t field;             /* its index in the headers */
	struct dkim_tags tags;
	enum dkim_canon ch, cb;
	enum dkim_key_type alg;
	uint64_t l;               /* UINT64_MAX without l= */
	uint64_t body_len;        /* the canonical length of the whole body */
	char keyname[330];
	char *keytxt;             /* the key record, until the finish decodes it */
	struct dkim_key key;
	bool have_key;
	EVP_MD_CTX *body_md;
	struct dkim_body_canon bc;
};

struct dkim_verify {
	const struct msg_headers *h;
	time_t now;
	struct dkim_sig *sig;
	size_t n;
	size_t *keymap; /* key lookup i -> signature */
	size_t nkeys;
};

const char *dkim_result_name(enum dkim_result r)
{
	static const char *const names[] = {"none", "pass", "fail", "neutral", "policy",
					    "temperror", "permerror"};
	return (size_t)r < RG_ARRAY_LEN(names) ? names[r] : "permerror";
}

/* decide - the signature's result is known. */
static void decide(struct dkim_sig *s, enum dkim_result r, const char *reason)
{
	s->pending = false;
	s->r.result = r;
	if (reason != s->r.reason)
		rg_strlcpy(s->r.reason, reason, sizeof(s->r.reason));
}

/* parse_u64 - a decimal tag value of at most 20 digits. */
static bool parse_u64(const char *s, uint64_t *out)
{
	return strlen(s) <= 20 && rg_parse_u64(s, out);
}

/* list_count_ci - how often the colon-separated list (FWS allowed) names word, any case. */
static size_t list_count_ci(const char *list, const char *word)
{
	size_t wl = strlen(word), c = 0;
	for (const char *p = list; *p;) {
		p += strspn(p, " \t\r\n");
		size_t n = strcspn(p, ": \t\r\n");
		c += n == wl && rg_strncasecmp(p, word, n) == 0;
		p += n;
		p += strcspn(p, ":");
		p += *p == ':';
	}
	return c;
}

static bool list_has_ci(const char *list, const char *word)
{
	return list_count_ci(list, word) > 0;
}

/* domain_within - is sub equal to d or a subdomain of it (any case)? */
static bool domain_within(const char *sub, const char *d, bool strict)
{
	size_t sl = strlen(sub), dl = strlen(d);
	if (sl == dl)
		return rg_strcasecmp(sub, d) == 0;
	return !strict && sl > dl && sub[sl - dl - 1] == '.' && rg_strcasecmp(sub + sl - dl, d) == 0;
}

/* copy_b - the first characters of b= without folding, for header.b. */
static void copy_b(char *out, size_t outlen, const char *b)
{
	size_t o = 0;
	for (; *b && o + 1 < outlen; b++)
		if (!isspace((unsigned char)*b))
			out[o++] = *b;
	out[o] = '\0';
}

/* check_alg - a= and c= and q=; sets alg and canonicalisations. */
static const char *check_alg(struct dkim_sig *s)
{
	const char *a = dkim_tags_get(&s->tags, "a"), *c = dkim_tags_get(&s->tags, "c");
	const char *q = dkim_tags_get(&s->tags, "q");
	rg_strlcpy(s->r.a, a, sizeof(s->r.a));
	if (strcmp(a, "rsa-sha256") == 0)
		s->alg = DKIM_KEY_RSA;
	else if (strcmp(a, "ed25519-sha256") == 0)
		s->alg = DKIM_KEY_ED25519;
	else if (strcmp(a, "rsa-sha1") == 0)
		return "rsa-sha1 is not accepted (RFC 8301)";
	else
		return "unknown signature algorithm a=";
	if (!dkim_canon_parse(c ? c : "simple/simple", &s->ch, &s->cb))
		return "unknown canonicalisation c=";
	if (q != NULL && !list_has_ci(q, "dns/txt"))
		return "query method q= is not dns/txt";
	return NULL;
}

/* dns_name_ok - letters, digits, '-', '_' in dot-separated labels of 1-63 bytes. */
static bool dns_name_ok(const char *n)
{
	static const char name_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
	for (const char *p = n;; p++) {
		size_t label = strspn(p, name_chars);
		if (label == 0 || label > 63)
			return false;
		p += label;
		if (*p != '.')
			return *p == '\0';
	}
}

/* check_h - h= within what dkim_hash_headers() handles: DKIM_H_MAX names of
 * fewer than 80 bytes (a longer one would be cut, and then match a field
 * other than the one signed, or none: the signed one left unprotected). */
static const char *check_h(const char *h)
{
	size_t k = 0;
	for (const char *p = h; *p; k++) {
		p += strspn(p, " \t\r\n");
		if (strcspn(p, ": \t\r\n") >= 80)
			return "h= names a field longer than 79 bytes";
		p += strcspn(p, ":");
		p += *p == ':';
	}
	return k > DKIM_H_MAX ? "h= names more than 100 fields" : NULL;
}

/* check_identity - d=, s=, i=, h= (From signed). */
static const char *check_identity(struct dkim_sig *s)
{
	const char *d = dkim_tags_get(&s->tags, "d"), *sel = dkim_tags_get(&s->tags, "s");
	const char *i = dkim_tags_get(&s->tags, "i"), *h = dkim_tags_get(&s->tags, "h");
	/* d=legitimate.com(.attacker.com must not reach DNS, and the key name must
	 * fit a DNS name whole: cut, it would name another domain's key */
	if (strlen(d) >= sizeof(s->r.d) || strlen(sel) >= sizeof(s->r.s) || !dns_name_ok(d) ||
	    !dns_name_ok(sel) ||
	    (size_t)snprintf(s->keyname, sizeof(s->keyname), "%s._domainkey.%s", sel, d) > 253)
		return "malformed d= or s=";
	rg_strlcpy(s->r.d, d, sizeof(s->r.d));
	rg_strlcpy(s->r.s, sel, sizeof(s->r.s));
	if (i == NULL)
		snprintf(s->r.i, sizeof(s->r.i), "@%s", d);
	else
		rg_strlcpy(s->r.i, i, sizeof(s->r.i));
	const char *at = strrchr(s->r.i, '@');
	if (at == NULL || !domain_within(at + 1, d, false))
		return "i= is not within d=";
	if (!list_has_ci(h, "from"))
		return "h= does not sign From";
	return check_h(h);
}

/* check_times - v=, l=, t=, x=: the signature's version, length and validity. */
static const char *check_times(struct dkim_sig *s, time_t now)
{
	const char *l = dkim_tags_get(&s->tags, "l"), *t = dkim_tags_get(&s->tags, "t");
	const char *x = dkim_tags_get(&s->tags, "x");
	uint64_t tv = 0, xv = 0;
	if (strcmp(dkim_tags_get(&s->tags, "v"), "1") != 0)
		return "version v= is not 1";
	s->l = UINT64_MAX;
	if (l != NULL && !parse_u64(l, &s->l))
		return "malformed l=";
	s->r.l_present = l != NULL;
	if ((t != NULL && !parse_u64(t, &tv)) || (x != NULL && !parse_u64(x, &xv)))
		return "malformed t= or x=";
	if (x != NULL && t != NULL && xv < tv)
		return "x= is before t=";
	if (x != NULL && now >= 0 && xv < (uint64_t)now)
		return "signature expired (x=)";
	return NULL;
}

/* check_sig - every tag of the signature, before its key is known. */
static const char *check_sig(struct dkim_sig *s, const struct msg_field *f, time_t now)
{
	char *why = s->r.reason;
	static const char *const required[] = {"v", "a", "b", "bh", "d", "h", "s"};
	const char *colon = memchr(f->raw, ':', f->raw_len);
	size_t off = (size_t)(colon - f->raw) + 1;
	if (!dkim_tags_parse(f->raw + off, f->raw_len - off, &s->tags, why, sizeof(s->r.reason)))
		return why;
	for (size_t i = 0; i < RG_ARRAY_LEN(required); i++)
		if (dkim_tags_get(&s->tags, required[i]) == NULL) {
			snprintf(why, sizeof(s->r.reason), "signature without %s=", required[i]);
			return why;
		}
	copy_b(s->r.b, 13, dkim_tags_get(&s->tags, "b"));
	const char *e = check_identity(s);
	if (e == NULL)
		e = check_alg(s);
	return e ? e : check_times(s, now);
}

static void body_sink(void *arg, const void *p, size_t n)
{
	EVP_DigestUpdate(arg, p, n);
}

/* add_sig - the signature in field fi: parsed, and waiting for its key unless already decided. */
static void add_sig(struct dkim_verify *v, size_t fi)
{
	struct dkim_sig *s = &v->sig[v->n++];
	memset(s, 0, sizeof(*s));
	s->field = fi;
	s->pending = true;
	const char *err = check_sig(s, &v->h->f[fi], v->now);
	if (err != NULL) {
		decide(s, DKIM_PERMERROR, err);
		return;
	}
	/* h= takes fields bottom-up: a From: above the signed ones is not covered,
	 * yet a reader (and DMARC) may take it as the author. RFC 6376 8.15. */
	size_t nfrom = msg_headers_count(v->h, "From");
	if (nfrom > list_count_ci(dkim_tags_get(&s->tags, "h"), "from")) {
		snprintf(s->r.reason, sizeof(s->r.reason),
			 "a From: field is not signed (%zu in the message, h= covers fewer)", nfrom);
		decide(s, DKIM_POLICY, s->r.reason);
		return;
	}
	s->body_md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(s->body_md, dkim_sha256(), NULL);
	dkim_body_init(&s->bc, s->cb, s->l, body_sink, s->body_md);
	v->keymap[v->nkeys++] = v->n - 1;
}

struct dkim_verify *dkim_verify_new(const struct msg_headers *h, unsigned max_sigs, time_t now)
{
	struct dkim_verify *v = xcalloc(1, sizeof(*v));
	v->h = h;
	v->now = now;
	size_t want = msg_headers_count(h, "DKIM-Signature");
	if (want > max_sigs)
		want = max_sigs; /* the rest are ignored: each costs a lookup and an RSA operation */
	v->sig = xcalloc(want ? want : 1, sizeof(*v->sig));
	v->keymap = xcalloc(want ? want : 1, sizeof(*v->keymap));
	for (long fi = msg_headers_next(h, "DKIM-Signature", -1); fi >= 0 && v->n < want;
	     fi = msg_headers_next(h, "DKIM-Signature", fi))
		add_sig(v, (size_t)fi);
	return v;
}

size_t dkim_verify_nkeys(const struct dkim_verify *v)
{
	return v->nkeys;
}

const char *dkim_verify_key_name(const struct dkim_verify *v, size_t i)
{
	return i < v->nkeys ? v->sig[v->keymap[i]].keyname : NULL;
}

/* accept_key - the key parsed: does it fit this signature? */
static void accept_key(struct dkim_sig *s)
{
	const char *at = strrchr(s->r.i, '@');
	s->r.testing = s->key.testing;
	if (s->key.type != s->alg)
		decide(s, DKIM_PERMERROR, "key type k= does not match a=");
	else if (s->key.strict && !domain_within(at + 1, s->r.d, true))
		decide(s, DKIM_PERMERROR, "key t=s: i= must be in d= itself");
	else
		s->have_key = true;
}

void dkim_verify_set_key(struct dkim_verify *v, size_t i, const char *txt,
			 enum dkim_key_lookup status)
{
	if (i >= v->nkeys)
		return;
	struct dkim_sig *s = &v->sig[v->keymap[i]];
	if (!s->pending || s->keytxt != NULL)
		return;
	if (status == DKIM_KEY_LOOKUP_TEMP)
		decide(s, DKIM_TEMPERROR, "key lookup failed temporarily");
	else if (status == DKIM_KEY_LOOKUP_NONE || txt == NULL)
		decide(s, DKIM_PERMERROR, "no key for signature");
	else
		s->keytxt = xstrdup(txt);
}

/* load_key - decode the key record set for s (from the cache of decoded keys
 * when the same record was seen before). */
static void load_key(struct dkim_sig *s)
{
	char why[128];
	if (dkim_key_parse(s->keytxt, &s->key, why, sizeof(why)) != DKIM_KEY_VALID)
		decide(s, DKIM_PERMERROR, why);
	else
		accept_key(s);
}

void dkim_verify_body(struct dkim_verify *v, const void *chunk, size_t n)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->sig[i].pending && v->sig[i].body_md != NULL)
			dkim_body_feed(&v->sig[i].bc, chunk, n);
}

/* hash_field - one canonical field into md. */
static void hash_field(EVP_MD_CTX *md, enum dkim_canon c, const char *raw, size_t len, bool crlf)
{
	char *buf = xmalloc(2 * len + 3);
	size_t n = dkim_canon_header(c, raw, len, crlf, buf);
	EVP_DigestUpdate(md, buf, n);
	free(buf);
}

/* nth_name - name k of hlist into out; false past the end. */
static bool nth_name(const char *hlist, size_t k, char *out, size_t outlen)
{
	const char *p = hlist;
	for (size_t i = 0;; i++) {
		p += strspn(p, " \t\r\n");
		size_t n = strcspn(p, ": \t\r\n");
		if (i == k) {
			if (n == 0 && *p == '\0')
				return false;
			snprintf(out, outlen, "%.*s", (int)n, p);
			return true;
		}
		p += n;
		p += strcspn(p, ":");
		if (*p == '\0')
			return false;
		p++;
	}
}

/* field_for - the field name k of hlist stands for: the next unused one from the bottom. */
static long field_for(const struct msg_headers *h, const char *hlist, size_t k, const char *name)
{
	size_t used = 0;
	char other[80];
	for (size_t j = 0; j < k && nth_name(hlist, j, other, sizeof(other)); j++)
		used += rg_strcasecmp(other, name) == 0;
	long fi = (long)h->n;
	for (size_t j = 0; j <= used && fi >= 0; j++)
		fi = msg_headers_prev(h, name, fi);
	return fi; /* -1: over-signed, a missing field hashes as nothing */
}

bool dkim_hash_headers(const struct msg_headers *h, const char *hlist, enum dkim_canon c,
		       const char *sig, size_t siglen, unsigned char out[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(md, dkim_sha256(), NULL);
	char name[80];
	size_t k = 0;
	for (; nth_name(hlist, k, name, sizeof(name)); k++) {
		if (k == DKIM_H_MAX)
			break;
		long fi = field_for(h, hlist, k, name);
		if (fi >= 0)
			hash_field(md, c, h->f[fi].raw, h->f[fi].raw_len, true);
	}
	char *stripped = xmalloc(siglen + 1);
	size_t sn = dkim_strip_b(sig, siglen, stripped);
	hash_field(md, c, stripped, sn, false);
	free(stripped);
	unsigned int n = 32;
	EVP_DigestFinal_ex(md, out, &n);
	EVP_MD_CTX_free(md);
	return k < DKIM_H_MAX;
}

/* verify_hash - the signature b= over the header hash, with the key's algorithm. */
static bool verify_hash(struct dkim_sig *s, const unsigned char hash[32])
{
	size_t siglen;
	unsigned char *sig = dkim_b64_decode(dkim_tags_get(&s->tags, "b"), &siglen);
	bool ok = false;
	if (sig == NULL)
		return false;
	if (s->alg == DKIM_KEY_ED25519) { /* RFC 8463 3: PureEdDSA over the SHA-256 hash */
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, s->key.pkey) == 1 &&
		     EVP_DigestVerify(ctx, sig, siglen, hash, 32) == 1;
		EVP_MD_CTX_free(ctx);
	} else {
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(s->key.pkey, NULL);
		ok = ctx && EVP_PKEY_verify_init(ctx) == 1 &&
		     EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(ctx, dkim_sha256()) == 1 &&
		     EVP_PKEY_verify(ctx, sig, siglen, hash, 32) == 1;
		EVP_PKEY_CTX_free(ctx);
	}
	free(sig);
	return ok;
}

/* check_body - the body hash against bh=. */
static bool check_body(struct dkim_sig *s)
{
	uint64_t len = s->body_len = dkim_body_finish(&s->bc);
	unsigned char got[32];
	unsigned int n = 32;
	EVP_DigestFinal_ex(s->body_md, got, &n);
	if (s->l != UINT64_MAX && s->l > len) {
		decide(s, DKIM_PERMERROR, "l= is longer than the body");
		return false;
	}
	size_t wl;
	unsigned char *want = dkim_b64_decode(dkim_tags_get(&s->tags, "bh"), &wl);
	bool ok = want != NULL && wl == 32 && memcmp(got, want, 32) == 0;
	free(want);
	if (!ok)
		decide(s, DKIM_FAIL, "body hash did not verify");
	return ok;
}

/* finish_sig - body hash, then the signature. */
static void finish_sig(const struct dkim_verify *v, struct dkim_sig *s)
{
	if (s->keytxt != NULL)
		load_key(s);
	if (!s->pending)
		return;
	if (!s->have_key) {
		decide(s, DKIM_PERMERROR, "no key for signature");
		return;
	}
	if (!check_body(s))
		return;
	const struct msg_field *f = &v->h->f[s->field];
	unsigned char hash[32];
	if (!dkim_hash_headers(v->h, dkim_tags_get(&s->tags, "h"), s->ch, f->raw, f->raw_len, hash))
		decide(s, DKIM_PERMERROR, "h= names too many fields");
	else if (!verify_hash(s, hash))
		decide(s, DKIM_FAIL, "signature did not verify");
	else if (s->l != UINT64_MAX && s->body_len > s->l)
		/* what follows l= is anyone's: a forger replaces the body the reader sees
		 * by appending to a signed message (a new MIME part, HTML after the end) */
		decide(s, DKIM_POLICY, "body has content past l= that the signature does not cover");
	else
		decide(s, DKIM_PASS, "");
}

void dkim_verify_finish(struct dkim_verify *v)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->sig[i].pending)
			finish_sig(v, &v->sig[i]);
}

size_t dkim_verify_nresults(const struct dkim_verify *v)
{
	return v->n;
}

const struct dkim_sig_result *dkim_verify_result(const struct dkim_verify *v, size_t i)
{
	return i < v->n ? &v->sig[i].r : NULL;
}

void dkim_verify_free(struct dkim_verify *v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < v->n; i++) {
		dkim_tags_free(&v->sig[i].tags);
		dkim_key_free(&v->sig[i].key);
		free(v->sig[i].keytxt);
		EVP_MD_CTX_free(v->sig[i].body_md);
	}
	free(v->sig);
	free(v->keymap);
	free(v);
}
