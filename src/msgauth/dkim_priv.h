/*
 * dkim_priv - the pieces DKIM verification and signing are built from.
 *
 * Owns: tag lists (dkim_tags.c), canonicalisation (dkim_canon.c), key records
 * and keys (dkim_key.c), the header hash (dkim_verify.c) and raw signing
 * (dkim_sign.c). Used by those files, the CLI, the unit tests and the fuzz
 * targets; the server uses dkim.h only.
 * Must not: do I/O (no DNS, no files except dkim_key_load_private()).
 */
#ifndef RG_MSGAUTH_DKIM_PRIV_H
#define RG_MSGAUTH_DKIM_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- tag lists (RFC 6376 3.2) ---- */

#define DKIM_TAGS_MAX    32        /* tags in one list */
#define DKIM_TAGLIST_MAX (8 * 1024) /* bytes in one list (a signature or a key record) */

struct dkim_tag {
	const char *name;  /* NUL-terminated, into the list's own copy */
	const char *value; /* outer whitespace removed; inner folding kept */
};

struct dkim_tags {
	struct dkim_tag tag[DKIM_TAGS_MAX];
	size_t n;
	char *buf;
};

/* Parse "a=1; b = x y ;" into t (which owns a copy). Returns false with why
 * set on a syntax error, a duplicate tag, too many tags or too long a list. */
bool dkim_tags_parse(const char *s, size_t len, struct dkim_tags *t, char *why, size_t whylen);
void dkim_tags_free(struct dkim_tags *t);
/* dkim_tags_get - the value of tag name, or NULL (names are case-sensitive). */
const char *dkim_tags_get(const struct dkim_tags *t, const char *name);

/* ---- canonicalisation (RFC 6376 3.4) ---- */

enum dkim_canon { DKIM_CANON_SIMPLE, DKIM_CANON_RELAXED };

/* Parse c= ("relaxed/simple", "simple", ...); false when unknown. */
bool dkim_canon_parse(const char *c, enum dkim_canon *hdr, enum dkim_canon *body);

/* One header field (raw as in struct msg_field, no final line end) in canonical
 * form, "\r\n" appended when crlf; out needs 2 * len + 3 bytes. Returns the length. */
size_t dkim_canon_header(enum dkim_canon c, const char *raw, size_t len, bool crlf, char *out);

/* raw of a DKIM-Signature field with the value of its b= tag removed (RFC 6376
 * 3.7); out needs len + 1 bytes. Returns the length. */
size_t dkim_strip_b(const char *raw, size_t len, char *out);

typedef void (*dkim_sink_fn)(void *arg, const void *p, size_t n);

/* The body, fed in chunks of any size (line ends CRLF or bare LF); the canonical
 * form goes to sink, at most limit bytes of it (l=; SIZE_MAX for all). */
struct dkim_body_canon {
	enum dkim_canon c;
	dkim_sink_fn sink;
	void *arg;
	uint64_t limit, emitted; /* emitted counts every canonical byte, also past limit */
	uint64_t pending_crlf;   /* empty lines not yet known to be followed by content */
	bool pending_wsp, saw_cr, any;
	char out[512];
	size_t nout;
};

void dkim_body_init(struct dkim_body_canon *b, enum dkim_canon c, uint64_t limit,
		    dkim_sink_fn sink, void *arg);
void dkim_body_feed(struct dkim_body_canon *b, const void *chunk, size_t n);
/* dkim_body_finish - the final line end; returns the canonical length of the whole body. */
uint64_t dkim_body_finish(struct dkim_body_canon *b);

/* ---- keys ---- */

enum dkim_key_type { DKIM_KEY_RSA, DKIM_KEY_ED25519 };

struct evp_pkey_st;
struct dkim_key {
	enum dkim_key_type type;
	struct evp_pkey_st *pkey; /* NULL when revoked */
	unsigned bits;
	bool revoked;  /* p= empty */
	bool testing;  /* t=y */
	bool strict;   /* t=s: i= must be d= exactly, no subdomain */
};

enum dkim_key_status {
	DKIM_KEY_VALID,
	DKIM_KEY_REVOKED,   /* p= empty */
	DKIM_KEY_SYNTAX,    /* not a tag list, v= not DKIM1, no p= */
	DKIM_KEY_UNSUPPORTED, /* k=, h= or s= excludes what we need; key too small */
	DKIM_KEY_BAD,       /* p= is not a key */
};

/* Parse a key record (RFC 6376 3.6.1; RFC 8463: k=ed25519; RFC 8301: RSA keys
 * of 1024 bits and more, sha256). why says what is wrong. A valid key comes
 * from (or goes into) the cache of decoded keys: k holds its own reference
 * (dkim_key_free). Any thread; expensive on a miss (on a worker, not the loop). */
enum dkim_key_status dkim_key_parse(const char *txt, struct dkim_key *k, char *why, size_t whylen);
void dkim_key_free(struct dkim_key *k);

struct evp_md_st;
/* dkim_sha256 - SHA-256, fetched once: EVP_sha256() in each EVP_DigestInit_ex
 * is an implicit fetch through OpenSSL 3's provider tables every time. Any thread. */
const struct evp_md_st *dkim_sha256(void);

/* Load a private key: PEM (PKCS#8, PKCS#1 RSA, OpenSSL Ed25519) or a file
 * holding the base64 32-byte Ed25519 seed (RFC 8463 A.2, dkimpy). RSA keys
 * below 1024 bits are refused. NULL with why set on failure. */
struct evp_pkey_st *dkim_key_load_private(const char *path, char *why, size_t whylen);
/* dkim_key_public_b64 - the p= value of a key (public half), malloc'd. */
char *dkim_key_public_b64(struct evp_pkey_st *pkey);
/* dkim_key_type_of - RSA or Ed25519, -1 for anything else. */
int dkim_key_type_of(struct evp_pkey_st *pkey);

/* base64 helpers: decode skips whitespace; NULL/false on a bad alphabet or padding. */
unsigned char *dkim_b64_decode(const char *s, size_t *outlen);
char *dkim_b64_encode(const unsigned char *p, size_t n);

#endif

/* ---- shared by verify and sign (dkim_verify.c) ---- */

#define DKIM_H_MAX 100 /* names in h= */

struct msg_headers;
/* The SHA-256 of the signed header fields (names in hlist, each taken
 * bottom-up) and then the signature field sig (b= value removed, no final
 * CRLF), canonicalised by c. False when hlist names more than DKIM_H_MAX. */
bool dkim_hash_headers(const struct msg_headers *h, const char *hlist, enum dkim_canon c,
		       const char *sig, size_t siglen, unsigned char out[32]);

/* The b= value (base64) key gives the field sig (its own b= value ignored)
 * over the fields hlist names; NULL when the key cannot sign. (dkim_sign.c) */
char *dkim_sign_b(struct evp_pkey_st *key, const struct msg_headers *h, const char *hlist,
		  enum dkim_canon c, const char *sig, size_t siglen);
