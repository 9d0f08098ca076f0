/*
 * dkim_sign.c - make a DKIM-Signature field (RFC 6376 5; RFC 8463).
 *
 * Owns: the signed header set and its over-signing, relaxed/relaxed, the body
 * hash fed in chunks, and the folded field text.
 * Must not: pick the key (the signing table and the caller do) or hold the body.
 */
#include "msgauth/dkim.h"
#include "msgauth/dkim_priv.h"
#include "msgauth/header.h"

#include "util/util.h"

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What we sign. Over-signed fields are listed once more than they occur, so
 * that one added later (a second From:, a Reply-To:) breaks the signature. */
static const struct {
	const char *name;
	bool oversign;
} signed_fields[] = {
	{"From", true},          {"Reply-To", true},      {"Subject", true},
	{"Date", true},          {"To", true},            {"Cc", true},
	{"Message-ID", true},    {"In-Reply-To", false},  {"References", false},
	{"MIME-Version", false}, {"Content-Type", false}, {"Content-Transfer-Encoding", false},
	{"List-Id", false},      {"List-Unsubscribe", false}, {"List-Unsubscribe-Post", false},
	{"Sender", false},
};

struct dkim_sign {
	EVP_PKEY *key;
	char *domain, *selector;
	const struct msg_headers *h;
	time_t now, expire; /* expire 0: no x= */
	EVP_MD_CTX *md;
	struct dkim_body_canon bc;
};

static void body_sink(void *arg, const void *p, size_t n)
{
	EVP_DigestUpdate(arg, p, n);
}

struct dkim_sign *dkim_sign_new(EVP_PKEY *key, const char *domain, const char *selector,
				const struct msg_headers *h, time_t now)
{
	struct dkim_sign *s = xcalloc(1, sizeof(*s));
	s->key = key;
	s->domain = xstrdup(domain);
	s->selector = xstrdup(selector);
	s->h = h;
	s->now = now;
	s->md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(s->md, dkim_sha256(), NULL);
	dkim_body_init(&s->bc, DKIM_CANON_RELAXED, UINT64_MAX, body_sink, s->md);
	return s;
}

void dkim_sign_expire(struct dkim_sign *s, time_t expire)
{
	s->expire = expire;
}

void dkim_sign_body(struct dkim_sign *s, const void *chunk, size_t n)
{
	dkim_body_feed(&s->bc, chunk, n);
}

/* append_folded - text to the field, on a new continuation line when the current one is full. */
static void append_folded(struct strbuf *sb, size_t *col, const char *text)
{
	size_t n = strlen(text);
	if (*col + n > 76 && *col > 1) {
		strbuf_puts(sb, "\r\n\t");
		*col = 1;
	}
	strbuf_puts(sb, text);
	*col += n;
}

/* build_h - the h= value: each present field bottom-up, over-signed ones once more. */
static void build_h(const struct msg_headers *h, struct strbuf *sb, size_t *col,
		    struct strbuf *plain)
{
	bool first = true;
	for (size_t i = 0; i < RG_ARRAY_LEN(signed_fields); i++) {
		size_t n = msg_headers_count(h, signed_fields[i].name) + signed_fields[i].oversign;
		for (size_t k = 0; k < n; k++) {
			char item[64];
			snprintf(item, sizeof(item), "%s%s", first ? "h=" : ":", signed_fields[i].name);
			append_folded(sb, col, item);
			strbuf_puts(plain, item + (first ? 2 : 0));
			first = false;
		}
	}
	append_folded(sb, col, ";");
}

/* sign_hash - b= over the header hash: RSA PKCS#1 v1.5 with SHA-256, or Ed25519 (RFC 8463 3). */
static unsigned char *sign_hash(EVP_PKEY *key, const unsigned char hash[32], size_t *len)
{
	unsigned char *sig = NULL;
	bool ok;
	if (dkim_key_type_of(key) == DKIM_KEY_ED25519) {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		*len = 64;
		sig = xmalloc(*len);
		ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
		     EVP_DigestSign(ctx, sig, len, hash, 32) == 1;
		EVP_MD_CTX_free(ctx);
	} else {
		EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
		*len = (size_t)EVP_PKEY_get_size(key);
		sig = xmalloc(*len);
		ok = ctx && EVP_PKEY_sign_init(ctx) == 1 &&
		     EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(ctx, dkim_sha256()) == 1 &&
		     EVP_PKEY_sign(ctx, sig, len, hash, 32) == 1;
		EVP_PKEY_CTX_free(ctx);
	}
	if (!ok) {
		free(sig);
		return NULL;
	}
	return sig;
}

char *dkim_sign_b(EVP_PKEY *key, const struct msg_headers *h, const char *hlist,
		  enum dkim_canon c, const char *sig, size_t siglen)
{
	unsigned char hash[32];
	if (!dkim_hash_headers(h, hlist, c, sig, siglen, hash))
		return NULL;
	size_t len;
	unsigned char *b = sign_hash(key, hash, &len);
	char *b64 = b ? dkim_b64_encode(b, len) : NULL;
	free(b);
	return b64;
}

/* field_head - everything of the field up to and including "b=". */
static void field_head(struct dkim_sign *s, struct strbuf *sb, const char *bh,
		       struct strbuf *hlist)
{
	bool ed = dkim_key_type_of(s->key) == DKIM_KEY_ED25519;
	size_t col = 0;
	strbuf_printf(sb, "DKIM-Signature: v=1; a=%s; c=relaxed/relaxed;",
		      ed ? "ed25519-sha256" : "rsa-sha256");
	col = sb->len;
	char item[300];
	snprintf(item, sizeof(item), " d=%s;", s->domain);
	append_folded(sb, &col, item);
	snprintf(item, sizeof(item), " s=%s;", s->selector);
	append_folded(sb, &col, item);
	snprintf(item, sizeof(item), " t=%lld;", (long long)s->now);
	append_folded(sb, &col, item);
	if (s->expire > 0) {
		snprintf(item, sizeof(item), " x=%lld;", (long long)s->expire);
		append_folded(sb, &col, item);
	}
	append_folded(sb, &col, " ");
	build_h(s->h, sb, &col, hlist);
	snprintf(item, sizeof(item), " bh=%s;", bh);
	append_folded(sb, &col, item);
	strbuf_puts(sb, "\r\n\tb=");
}

/* append_b - the signature in base64, folded into lines of 72. */
static void append_b(struct strbuf *sb, const char *b64)
{
	for (size_t i = 0, n = strlen(b64); i < n; i += 72) {
		if (i > 0)
			strbuf_puts(sb, "\r\n\t ");
		strbuf_append(sb, b64 + i, n - i < 72 ? n - i : 72);
	}
	strbuf_puts(sb, "\r\n");
}

char *dkim_sign_finish(struct dkim_sign *s, char *why, size_t whylen)
{
	unsigned char bh[32];
	unsigned int n = 32;
	dkim_body_finish(&s->bc);
	EVP_DigestFinal_ex(s->md, bh, &n);
	char *bh64 = dkim_b64_encode(bh, 32);
	struct strbuf sb, hlist;
	strbuf_init(&sb);
	strbuf_init(&hlist);
	field_head(s, &sb, bh64, &hlist);
	free(bh64);
	char *b64 = dkim_sign_b(s->key, s->h, hlist.data, DKIM_CANON_RELAXED, sb.data, sb.len);
	strbuf_free(&hlist);
	char *out = NULL;
	if (b64 != NULL) {
		append_b(&sb, b64);
		free(b64);
		out = strbuf_steal(&sb);
	} else {
		snprintf(why, whylen, "the key cannot sign");
	}
	strbuf_free(&sb);
	dkim_sign_free(s);
	return out;
}

void dkim_sign_free(struct dkim_sign *s)
{
	if (s == NULL)
		return;
	EVP_MD_CTX_free(s->md);
	free(s->domain);
	free(s->selector);
	free(s);
}
