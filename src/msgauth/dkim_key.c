/*
 * dkim_key.c - DKIM key records (RFC 6376 3.6.1, RFC 8463, RFC 8301) and
 * private keys for signing.
 *
 * Owns: turning a TXT record into a usable public key, or saying why not;
 * a small cache of decoded keys, keyed by the record's exact text (decoding
 * DER through OpenSSL 3's decoders costs more than the RSA verification
 * itself), shared by the worker threads under a mutex; the SHA-256 digest,
 * fetched once; loading a signing key from a file.
 * Must not: look anything up in DNS, or decide how long a key is good (the
 * DNS cache does: a record that changes is a new key).
 */
#include "msgauth/dkim.h"
#include "msgauth/dkim_priv.h"

#include "util/util.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DKIM_RSA_MIN_BITS 1024 /* RFC 8301 3.2 */
#define DKIM_RSA_MAX_BITS 4096 /* RFC 8301: verifiers must handle up to 4096; larger costs too much */
#define KEY_CACHE_MAX 64       /* decoded keys kept: the busiest signers' selectors */

/* The decoded keys and the digest, for every thread. */
static struct {
	pthread_mutex_t mu;
	struct key_slot {
		char *txt;     /* NULL: free */
		struct dkim_key key;
		uint64_t used; /* the least recently used goes when full */
	} slot[KEY_CACHE_MAX];
	uint64_t clock;
	EVP_MD *sha256;
} kc = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int b64_value(char c)
{
	static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c ? strchr(alpha, c) : NULL;
	return p ? (int)(p - alpha) : -1;
}

unsigned char *dkim_b64_decode(const char *s, size_t *outlen)
{
	size_t len = strlen(s), o = 0, pad = 0;
	unsigned char *out = xmalloc(len / 4 * 3 + 3);
	unsigned acc = 0, nbits = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		int v = c == '=' ? 0 : b64_value(c);
		if (v < 0 || (pad > 0 && c != '=') || (c == '=' && ++pad > 2))
			goto bad;
		acc = (acc << 6) | (unsigned)v;
		nbits += 6;
		if (nbits >= 8) {
			nbits -= 8;
			out[o++] = (unsigned char)(acc >> nbits);
			acc &= (1u << nbits) - 1;
		}
	}
	if (o < pad)
		goto bad;
	*outlen = o - pad;
	return out;
bad:
	free(out);
	return NULL;
}

char *dkim_b64_encode(const unsigned char *p, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

/* list_has - does the colon-separated list contain word (or "*" when star)? */
static bool list_has(const char *list, const char *word, bool star)
{
	size_t wl = strlen(word);
	const char *p = list;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		size_t n = strcspn(p, ": \t\r\n");
		if ((n == wl && strncmp(p, word, n) == 0) || (star && n == 1 && *p == '*'))
			return true;
		p += n;
		while (*p && *p != ':')
			p++;
		if (*p == ':')
			p++;
	}
	return false;
}

/* public_key - the p= bytes as an RSA (SPKI, or bare PKCS#1 as some publish) or Ed25519 key. */
static EVP_PKEY *public_key(enum dkim_key_type type, const unsigned char *der, size_t n)
{
	if (type == DKIM_KEY_ED25519)
		return n == 32 ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der, n) : NULL;
	const unsigned char *p = der;
	EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)n);
	if (k == NULL) {
		p = der;
		k = d2i_PublicKey(EVP_PKEY_RSA, NULL, &p, (long)n);
	}
	if (k != NULL && (EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA || p != der + n)) {
		EVP_PKEY_free(k);
		k = NULL;
	}
	return k;
}

/* check_tags - v=, k=, h=, s=, t= of a key record; sets the flags. */
static enum dkim_key_status check_tags(const struct dkim_tags *t, struct dkim_key *k, char *why,
				       size_t whylen)
{
	const char *v = dkim_tags_get(t, "v"), *kt = dkim_tags_get(t, "k");
	const char *h = dkim_tags_get(t, "h"), *s = dkim_tags_get(t, "s");
	const char *fl = dkim_tags_get(t, "t");
	if (v != NULL && (strcmp(v, "DKIM1") != 0 || strcmp(t->tag[0].name, "v") != 0)) {
		snprintf(why, whylen, "key record v= is not DKIM1 first");
		return DKIM_KEY_SYNTAX;
	}
	if (kt == NULL || strcmp(kt, "rsa") == 0) {
		k->type = DKIM_KEY_RSA;
	} else if (strcmp(kt, "ed25519") == 0) {
		k->type = DKIM_KEY_ED25519;
	} else {
		snprintf(why, whylen, "key type k=%.40s unknown", kt);
		return DKIM_KEY_UNSUPPORTED;
	}
	if (h != NULL && !list_has(h, "sha256", false)) {
		snprintf(why, whylen, "key record h= excludes sha256");
		return DKIM_KEY_UNSUPPORTED;
	}
	if (s != NULL && !list_has(s, "email", true)) {
		snprintf(why, whylen, "key record s= excludes email");
		return DKIM_KEY_UNSUPPORTED;
	}
	k->testing = fl != NULL && list_has(fl, "y", false);
	k->strict = fl != NULL && list_has(fl, "s", false);
	return DKIM_KEY_VALID;
}

/* load_p - decode p= into k->pkey and check its size. */
static enum dkim_key_status load_p(const char *p, struct dkim_key *k, char *why, size_t whylen)
{
	size_t n;
	unsigned char *der = dkim_b64_decode(p, &n);
	if (der != NULL)
		k->pkey = public_key(k->type, der, n);
	free(der);
	if (k->pkey == NULL) {
		snprintf(why, whylen, "key record p= is not a %s public key",
			 k->type == DKIM_KEY_RSA ? "RSA" : "Ed25519");
		return DKIM_KEY_BAD;
	}
	k->bits = (unsigned)EVP_PKEY_get_bits(k->pkey);
	if (k->type == DKIM_KEY_RSA && (k->bits < DKIM_RSA_MIN_BITS || k->bits > DKIM_RSA_MAX_BITS)) {
		snprintf(why, whylen, "RSA key of %u bits (RFC 8301: %d to %d)", k->bits,
			 DKIM_RSA_MIN_BITS, DKIM_RSA_MAX_BITS);
		return DKIM_KEY_UNSUPPORTED;
	}
	return DKIM_KEY_VALID;
}

/* ---- the cache of decoded keys ---- */

/* cache_get - a reference to the key decoded from exactly txt, if held. */
static bool cache_get(const char *txt, struct dkim_key *k)
{
	bool found = false;
	pthread_mutex_lock(&kc.mu);
	for (size_t i = 0; i < KEY_CACHE_MAX && !found; i++) {
		struct key_slot *s = &kc.slot[i];
		if (s->txt != NULL && strcmp(s->txt, txt) == 0) {
			*k = s->key;
			EVP_PKEY_up_ref(k->pkey);
			s->used = ++kc.clock;
			found = true;
		}
	}
	pthread_mutex_unlock(&kc.mu);
	return found;
}

static void slot_clear(struct key_slot *s)
{
	free(s->txt);
	dkim_key_free(&s->key);
	memset(s, 0, sizeof(*s));
}

/* cache_put - hold a reference to k, decoded from txt (unless another
 * thread decoded the same record meanwhile). */
static void cache_put(const char *txt, const struct dkim_key *k)
{
	pthread_mutex_lock(&kc.mu);
	struct key_slot *victim = &kc.slot[0];
	for (size_t i = 0; i < KEY_CACHE_MAX; i++) {
		struct key_slot *s = &kc.slot[i];
		if (s->txt != NULL && strcmp(s->txt, txt) == 0) {
			victim = NULL;
			break;
		}
		if (victim->txt != NULL && (s->txt == NULL || s->used < victim->used))
			victim = s;
	}
	if (victim != NULL) {
		slot_clear(victim);
		victim->txt = xstrdup(txt);
		victim->key = *k;
		EVP_PKEY_up_ref(k->pkey);
		victim->used = ++kc.clock;
	}
	pthread_mutex_unlock(&kc.mu);
}

const EVP_MD *dkim_sha256(void)
{
	pthread_mutex_lock(&kc.mu);
	if (kc.sha256 == NULL)
		kc.sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	const EVP_MD *md = kc.sha256;
	pthread_mutex_unlock(&kc.mu);
	return md != NULL ? md : EVP_sha256();
}

void dkim_cleanup(void)
{
	pthread_mutex_lock(&kc.mu);
	for (size_t i = 0; i < KEY_CACHE_MAX; i++)
		slot_clear(&kc.slot[i]);
	EVP_MD_free(kc.sha256);
	kc.sha256 = NULL;
	pthread_mutex_unlock(&kc.mu);
}

/* parse - a key record, without the cache. */
static enum dkim_key_status parse(const char *txt, struct dkim_key *k, char *why, size_t whylen)
{
	memset(k, 0, sizeof(*k));
	struct dkim_tags t;
	char tw[96];
	if (!dkim_tags_parse(txt, strlen(txt), &t, tw, sizeof(tw))) {
		snprintf(why, whylen, "key record: %s", tw);
		return DKIM_KEY_SYNTAX;
	}
	enum dkim_key_status st = check_tags(&t, k, why, whylen);
	const char *p = dkim_tags_get(&t, "p");
	if (st == DKIM_KEY_VALID && p == NULL) {
		snprintf(why, whylen, "key record without p=");
		st = DKIM_KEY_SYNTAX;
	} else if (st == DKIM_KEY_VALID && p[0] == '\0') {
		snprintf(why, whylen, "key revoked (empty p=)");
		k->revoked = true;
		st = DKIM_KEY_REVOKED;
	} else if (st == DKIM_KEY_VALID) {
		st = load_p(p, k, why, whylen);
	}
	dkim_tags_free(&t);
	if (st != DKIM_KEY_VALID)
		dkim_key_free(k);
	k->revoked = st == DKIM_KEY_REVOKED;
	return st;
}

enum dkim_key_status dkim_key_parse(const char *txt, struct dkim_key *k, char *why, size_t whylen)
{
	if (cache_get(txt, k))
		return DKIM_KEY_VALID;
	enum dkim_key_status st = parse(txt, k, why, whylen);
	if (st == DKIM_KEY_VALID)
		cache_put(txt, k); /* only usable keys: a bad record costs little to refuse again */
	return st;
}

void dkim_key_free(struct dkim_key *k)
{
	EVP_PKEY_free(k->pkey);
	k->pkey = NULL;
}

int dkim_key_type_of(EVP_PKEY *pkey)
{
	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA:
		return DKIM_KEY_RSA;
	case EVP_PKEY_ED25519:
		return DKIM_KEY_ED25519;
	default:
		return -1;
	}
}

/* seed_key - a file holding only the base64 Ed25519 seed (RFC 8463 A.2, dkimpy). */
static EVP_PKEY *seed_key(const char *text)
{
	size_t n;
	unsigned char *seed = dkim_b64_decode(text, &n);
	EVP_PKEY *k = NULL;
	if (seed != NULL && n == 32)
		k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, n);
	free(seed);
	return k;
}

/* read_small - the whole of a key file (at most 64 KiB), NUL-terminated. */
static char *read_small(const char *path, char *why, size_t whylen)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(why, whylen, "cannot open %s: %m", path);
		return NULL;
	}
	char *buf = xmalloc(65537);
	size_t n = fread(buf, 1, 65536, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

EVP_PKEY *dkim_key_load_private(const char *path, char *why, size_t whylen)
{
	char *text = read_small(path, why, whylen);
	if (text == NULL)
		return NULL;
	BIO *bio = BIO_new_mem_buf(text, -1);
	EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (k == NULL)
		k = seed_key(text);
	free(text);
	if (k == NULL || dkim_key_type_of(k) < 0 ||
	    (dkim_key_type_of(k) == DKIM_KEY_RSA && EVP_PKEY_get_bits(k) < DKIM_RSA_MIN_BITS)) {
		snprintf(why, whylen, "%s: not an RSA (1024 bits or more) or Ed25519 private key", path);
		EVP_PKEY_free(k);
		return NULL;
	}
	return k;
}

char *dkim_key_public_b64(EVP_PKEY *pkey)
{
	unsigned char buf[32], *der = NULL;
	if (dkim_key_type_of(pkey) == DKIM_KEY_ED25519) {
		size_t n = sizeof(buf);
		if (EVP_PKEY_get_raw_public_key(pkey, buf, &n) != 1)
			return NULL;
		return dkim_b64_encode(buf, n);
	}
	int n = i2d_PUBKEY(pkey, &der);
	if (n <= 0)
		return NULL;
	char *s = dkim_b64_encode(der, (size_t)n);
	OPENSSL_free(der);
	return s;
}
