/*
 * test_dkim.c - the message header parser and DKIM (msgauth/): tag lists,
 * canonicalisation, key records, the signing table, sign-then-verify with
 * the failures RFC 6376/8301 require, and the published test vectors of
 * ../shared/testdata/dkim (RFC 6376 and RFC 8463 appendices, dkimpy), with
 * their keys served from an in-memory zone read from each set's dns.json.
 */
#include "check.h"

#include "msgauth/dkim.h"
#include "msgauth/dkim_priv.h"
#include "msgauth/header.h"
#include "util/util.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TESTDATA "../shared/testdata/dkim"

/* ---- header parser ---- */

static void test_header(void)
{
	static const struct {
		int line;
		const char *in;
		enum msg_hdr_status st;
		size_t n;
		const char *name1, *value1; /* the second field */
		const char *body;
	} rows[] = {
		{__LINE__, "A: 1\r\nB: two\r\n  folded\r\n\r\nbody", MSG_HDR_OK, 2, "B", "two  folded", "body"},
		{__LINE__, "A: 1\nB:\tx \n\nbody\n", MSG_HDR_OK, 2, "B", "x", "body\n"},
		{__LINE__, "A: 1\r\nSubject :  obs\r\n", MSG_HDR_OK, 2, "Subject", "obs", ""},
		{__LINE__, "A: 1\r\nnot a field\r\n\r\n", MSG_HDR_MALFORMED, 0, NULL, NULL, NULL},
		{__LINE__, " continuation first\r\n\r\n", MSG_HDR_MALFORMED, 0, NULL, NULL, NULL},
		{__LINE__, ": no name\r\n\r\n", MSG_HDR_MALFORMED, 0, NULL, NULL, NULL},
		{__LINE__, "A: 1\r\nB: 2\r\n\r\nC: not a header\r\n", MSG_HDR_OK, 2, "B", "2", "C: not a header\r\n"},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		struct msg_headers h;
		size_t len = strlen(rows[i].in);
		enum msg_hdr_status st = msg_headers_parse(rows[i].in, len, &h);
		CHECK_AT(rows[i].line, st == rows[i].st, "status %d", st);
		CHECK_AT(rows[i].line, h.n == rows[i].n, "n %zu", h.n);
		if (st == MSG_HDR_OK && h.n > 1) {
			CHECK_STR_AT(rows[i].line, h.f[1].name, rows[i].name1, "name");
			CHECK_STR_AT(rows[i].line, h.f[1].value, rows[i].value1, "value");
			CHECK_STR_AT(rows[i].line, rows[i].in + h.body_offset, rows[i].body, "body");
		}
		msg_headers_free(&h);
	}
	/* raw keeps the folding; bottom-up search; NUL refused; limits */
	const char *m = "Received: a\r\nFrom: x\r\nreceived: b\r\n\tc\r\n\r\n";
	struct msg_headers h;
	CHECK(msg_headers_parse(m, strlen(m), &h) == MSG_HDR_OK, "parse");
	CHECK(h.f[2].raw_len == strlen("received: b\r\n\tc"), "raw keeps folding");
	long last = msg_headers_prev(&h, "RECEIVED", (long)h.n);
	CHECK(last == 2 && msg_headers_prev(&h, "Received", last) == 0, "bottom-up");
	CHECK(msg_headers_next(&h, "from", -1) == 1 && msg_headers_count(&h, "received") == 2, "next");
	msg_headers_free(&h);
	CHECK(msg_headers_parse("A: x\0y\r\n\r\n", 10, &h) == MSG_HDR_MALFORMED, "NUL refused");
	struct strbuf many;
	strbuf_init(&many);
	for (int i = 0; i <= MSG_HDR_MAX_FIELDS; i++)
		strbuf_puts(&many, "X: y\r\n");
	CHECK(msg_headers_parse(many.data, many.len, &h) == MSG_HDR_TOO_MANY, "field count bounded");
	strbuf_free(&many);
	strbuf_init(&many);
	strbuf_puts(&many, "X: y\r\n");
	for (int i = 0; i < MSG_HDR_MAX_FIELD / 10; i++)
		strbuf_puts(&many, " 12345678\r\n");
	CHECK(msg_headers_parse(many.data, many.len, &h) == MSG_HDR_TOO_LONG, "field length bounded");
	strbuf_free(&many);
	/* never past the block: the parse of a prefix ends at it */
	CHECK(msg_headers_parse("A: b", 4, &h) == MSG_HDR_OK && h.n == 1 && !h.has_body, "unterminated");
	CHECK_STR_AT(__LINE__, h.f[0].value, "b", "value at end of input");
	msg_headers_free(&h);
}

/* ---- tag lists ---- */

static void test_tags(void)
{
	static const struct {
		int line;
		const char *in;
		bool ok;
		size_t n;
		const char *tag, *value;
	} rows[] = {
		{__LINE__, "v=1; a=rsa-sha256; d=example.com", true, 3, "d", "example.com"},
		{__LINE__, "v=1;a=x;", true, 2, "a", "x"},
		{__LINE__, " v = 1 ;\r\n\tb= ab\r\n cd ; ", true, 2, "b", "ab\r\n cd"},
		{__LINE__, "p=", true, 1, "p", ""},
		{__LINE__, "", true, 0, NULL, NULL},
		{__LINE__, "v=1; v=2", false, 0, NULL, NULL},     /* duplicate */
		{__LINE__, "v=1;; a=2", false, 0, NULL, NULL},    /* empty tag-spec */
		{__LINE__, "novalue; a=2", false, 0, NULL, NULL},
		{__LINE__, "1a=2", false, 0, NULL, NULL},         /* name starts with a digit */
		{__LINE__, "a-b=2", false, 0, NULL, NULL},
		{__LINE__, "a=b\001c", false, 0, NULL, NULL},     /* control character */
		{__LINE__, "a_1=ok", true, 1, "a_1", "ok"},
		{__LINE__, "a=x=y", true, 1, "a", "x=y"},
		{__LINE__, ";", false, 0, NULL, NULL},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		struct dkim_tags t;
		char why[96];
		bool ok = dkim_tags_parse(rows[i].in, strlen(rows[i].in), &t, why, sizeof(why));
		CHECK_AT(rows[i].line, ok == rows[i].ok, "ok %d (%s)", ok, ok ? "" : why);
		if (ok) {
			CHECK_AT(rows[i].line, t.n == rows[i].n, "n %zu", t.n);
			if (rows[i].tag)
				CHECK_STR_AT(rows[i].line, dkim_tags_get(&t, rows[i].tag), rows[i].value, "value");
		}
		dkim_tags_free(&t);
	}
	struct strbuf sb;
	strbuf_init(&sb);
	for (int i = 0; i <= DKIM_TAGS_MAX; i++)
		strbuf_printf(&sb, "t%d=x;", i);
	struct dkim_tags t;
	char why[96];
	CHECK(!dkim_tags_parse(sb.data, sb.len, &t, why, sizeof(why)), "tag count bounded");
	strbuf_free(&sb);
}

/* ---- canonicalisation ---- */

static void sink_sb(void *arg, const void *p, size_t n)
{
	strbuf_append(arg, p, n);
}

/* body_canon - the canonical body, fed in chunks of step bytes. */
static char *body_canon(enum dkim_canon c, const char *in, uint64_t limit, size_t step)
{
	struct strbuf sb;
	strbuf_init(&sb);
	strbuf_append(&sb, "", 0);
	struct dkim_body_canon b;
	dkim_body_init(&b, c, limit, sink_sb, &sb);
	size_t len = strlen(in);
	for (size_t i = 0; i < len; i += step)
		dkim_body_feed(&b, in + i, len - i < step ? len - i : step);
	dkim_body_finish(&b);
	return strbuf_steal(&sb);
}

static void test_canon(void)
{
	enum dkim_canon S = DKIM_CANON_SIMPLE, R = DKIM_CANON_RELAXED;
	static const struct {
		int line;
		int c;
		const char *in, *want;
	} hdr[] = {
		{__LINE__, 1, "SubjecT : A  b\r\n\t c ", "subject:A b c\r\n"},
		{__LINE__, 1, "X:\t  v", "x:v\r\n"},
		{__LINE__, 1, "X:", "x:\r\n"},
		{__LINE__, 0, "SubjecT : A  b\r\n\t c ", "SubjecT : A  b\r\n\t c \r\n"},
		{__LINE__, 0, "X: a\n b", "X: a\r\n b\r\n"}, /* bare LF stored: CRLF in canonical form */
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(hdr); i++) {
		char out[128];
		dkim_canon_header(hdr[i].c ? R : S, hdr[i].in, strlen(hdr[i].in), true, out);
		CHECK_STR_AT(hdr[i].line, out, hdr[i].want, "header");
	}
	static const struct {
		int line;
		int c;
		const char *in, *want;
		uint64_t limit;
	} body[] = {
		{__LINE__, 0, "", "\r\n", UINT64_MAX},
		{__LINE__, 1, "", "", UINT64_MAX},
		{__LINE__, 0, "\r\n\r\n", "\r\n", UINT64_MAX},
		{__LINE__, 1, "\r\n \r\n", "", UINT64_MAX},
		{__LINE__, 0, "a \r\n\r\nb\r\n\r\n\r\n", "a \r\n\r\nb\r\n", UINT64_MAX},
		{__LINE__, 1, " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n", UINT64_MAX}, /* RFC 6376 3.4.6 */
		{__LINE__, 0, " C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n", UINT64_MAX},
		{__LINE__, 0, "no end", "no end\r\n", UINT64_MAX},
		{__LINE__, 1, "x\ny\n\n", "x\r\ny\r\n", UINT64_MAX},               /* bare LF */
		{__LINE__, 0, "a\rb\r\n", "a\rb\r\n", UINT64_MAX},                  /* bare CR is content */
		{__LINE__, 0, "abc\r\ndef\r\n", "abc\r\n", 5},                       /* l=5 */
		{__LINE__, 1, "abc\r\n", "", 0},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(body); i++)
		for (size_t step = 1; step <= 7; step += 6) {
			char *got = body_canon(body[i].c ? R : S, body[i].in, body[i].limit, step);
			CHECK_STR_AT(body[i].line, got, body[i].want, step == 1 ? "body, bytewise" : "body");
			free(got);
		}
	char out[200];
	const char *sig = "DKIM-Signature: v=1; b=abc\r\n def; bh=xyz; b =q";
	dkim_strip_b(sig, strlen(sig), out);
	CHECK_STR_AT(__LINE__, out, "DKIM-Signature: v=1; b=; bh=xyz; b =", "strip b=");
	enum dkim_canon h, b;
	CHECK(dkim_canon_parse("relaxed", &h, &b) && h == R && b == S, "c=relaxed means relaxed/simple");
	CHECK(!dkim_canon_parse("relaxed/nowsp", &h, &b), "unknown c=");
}

/* ---- key records ---- */

#define RSA1024 "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB"
#define ED "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="

static void test_keys(void)
{
	static const struct {
		int line;
		const char *txt;
		enum dkim_key_status st;
		int type;
		bool testing, strict;
	} rows[] = {
		{__LINE__, "v=DKIM1; p=" RSA1024, DKIM_KEY_VALID, DKIM_KEY_RSA, false, false},
		{__LINE__, "p=" RSA1024 "; t=y:s", DKIM_KEY_VALID, DKIM_KEY_RSA, true, true},
		{__LINE__, "v=DKIM1; k=ed25519; p=" ED, DKIM_KEY_VALID, DKIM_KEY_ED25519, false, false},
		{__LINE__, "v=DKIM1; h=sha1:sha256; s=email; p=" RSA1024, DKIM_KEY_VALID, DKIM_KEY_RSA, false, false},
		{__LINE__, "v=DKIM1; p=", DKIM_KEY_REVOKED, 0, false, false},
		{__LINE__, "v=DKIM1; k=rsa", DKIM_KEY_SYNTAX, 0, false, false},
		{__LINE__, "k=rsa; v=DKIM1; p=" RSA1024, DKIM_KEY_SYNTAX, 0, false, false}, /* v= not first */
		{__LINE__, "v=DKIM1: g=*; k=rsa; p=" RSA1024, DKIM_KEY_SYNTAX, 0, false, false}, /* dkimpy badversion */
		{__LINE__, "v=DKIM1; k=ed25519-sha256; p=" RSA1024, DKIM_KEY_UNSUPPORTED, 0, false, false}, /* badk */
		{__LINE__, "v=DKIM1; h=sha1; p=" RSA1024, DKIM_KEY_UNSUPPORTED, 0, false, false},
		{__LINE__, "v=DKIM1; s=tlsrpt; p=" RSA1024, DKIM_KEY_UNSUPPORTED, 0, false, false},
		{__LINE__, "v=DKIM1; k=ed25519; p=" RSA1024, DKIM_KEY_BAD, 0, false, false},
		{__LINE__, "v=DKIM1; p=" ED, DKIM_KEY_BAD, 0, false, false},
		{__LINE__, "v=DKIM1; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQA=", DKIM_KEY_BAD, 0, false, false}, /* test_bad */
		{__LINE__, "v=DKIM1; p=!!!", DKIM_KEY_BAD, 0, false, false},
		{__LINE__, "v=DKIM1; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAMl6cW05EBvJbkwcVpq2wT3jsmUOxhkYwLeFqkc+7JIhPqyi2Pw1z4R0VM8+8TTSG5VAPDtmaf8XxG2gVwGKVn0CAwEAAQ==", DKIM_KEY_UNSUPPORTED, 0, false, false}, /* 512 bits: RFC 8301 */
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		struct dkim_key k;
		char why[128] = "";
		enum dkim_key_status st = dkim_key_parse(rows[i].txt, &k, why, sizeof(why));
		CHECK_AT(rows[i].line, st == rows[i].st, "status %d (%s)", st, why);
		if (st == DKIM_KEY_VALID) {
			CHECK_AT(rows[i].line, (int)k.type == rows[i].type && k.testing == rows[i].testing &&
						       k.strict == rows[i].strict, "flags");
		}
		CHECK_AT(rows[i].line, st == DKIM_KEY_VALID || k.pkey == NULL, "no key on error");
		dkim_key_free(&k);
	}
}

/* ---- the cache of decoded keys ---- */

/* ed_record - an Ed25519 key record whose 32 key bytes are all b. */
static char *ed_record(unsigned char b)
{
	unsigned char raw[32];
	memset(raw, b, sizeof(raw));
	char *p = dkim_b64_encode(raw, sizeof(raw));
	char *rec = xmalloc(strlen(p) + 32);
	sprintf(rec, "v=DKIM1; k=ed25519; p=%s", p);
	free(p);
	return rec;
}

/* shared - does parsing txt give the same decoded key as *pkey (a cache hit)? */
static bool shared(const char *txt, struct evp_pkey_st *pkey)
{
	struct dkim_key k;
	char why[128];
	bool same = dkim_key_parse(txt, &k, why, sizeof(why)) == DKIM_KEY_VALID && k.pkey == pkey;
	dkim_key_free(&k);
	return same;
}

static void *parse_many(void *arg)
{
	const char *const *recs = arg;
	bool ok = true;
	for (int i = 0; i < 300; i++) {
		struct dkim_key k;
		char why[128];
		ok &= dkim_key_parse(recs[i % 3], &k, why, sizeof(why)) == DKIM_KEY_VALID;
		dkim_key_free(&k);
	}
	return ok ? arg : NULL;
}

static void test_key_cache(void)
{
	dkim_cleanup();
	static const char rsa[] = "v=DKIM1; p=" RSA1024, rsa_t[] = "v=DKIM1; t=y; p=" RSA1024;
	struct dkim_key k, t;
	char why[128];
	CHECK(dkim_key_parse(rsa, &k, why, sizeof(why)) == DKIM_KEY_VALID, "rsa: %s", why);
	CHECK(shared(rsa, k.pkey), "the same record again: the decoded key is reused");
	CHECK(dkim_key_parse(rsa_t, &t, why, sizeof(why)) == DKIM_KEY_VALID && t.testing &&
		      !k.testing && t.pkey != k.pkey,
	      "another text (t=y) is another entry, with its own flags");
	dkim_key_free(&t);
	dkim_key_free(&k); /* the cache still holds its reference */
	CHECK(dkim_key_parse(rsa, &k, why, sizeof(why)) == DKIM_KEY_VALID && k.bits == 1024 &&
		      EVP_PKEY_get_bits(k.pkey) == 1024,
	      "a cached key outlives its first user");

	/* bounded: after 64 other keys the least recently used one is gone */
	char *first = ed_record(0), *recs[70];
	struct dkim_key e;
	CHECK(dkim_key_parse(first, &e, why, sizeof(why)) == DKIM_KEY_VALID, "ed25519");
	for (int i = 0; i < 70; i++) {
		recs[i] = ed_record((unsigned char)(i + 1));
		CHECK(shared(recs[i], NULL) == false, "new key %d", i);
	}
	struct dkim_key last;
	CHECK(dkim_key_parse(recs[69], &last, why, sizeof(why)) == DKIM_KEY_VALID, "last");
	CHECK(shared(recs[69], last.pkey), "the newest key is held");
	CHECK(!shared(first, e.pkey), "the oldest key was evicted");
	CHECK(!shared(rsa, k.pkey), "so was the RSA key");
	dkim_key_free(&last);
	dkim_key_free(&e);
	dkim_key_free(&k);

	/* threads share the cache */
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, parse_many, recs + i);
	for (int i = 0; i < 4; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		CHECK(ret != NULL, "thread %d parsed every key", i);
	}
	for (int i = 0; i < 70; i++)
		free(recs[i]);
	free(first);
	dkim_cleanup();
}

/* ---- a zone in memory, from dns.json ---- */

struct zone {
	char *name[64], *txt[64];
	size_t n;
};

/* next_string - the next JSON string literal after *p (simple escapes only). */
static char *next_string(const char **p, char *before)
{
	const char *s = *p;
	while (*s && *s != '"') {
		if (*s == '[' || *s == ']' || *s == '{' || *s == '}' || *s == ':')
			*before = *s;
		s++;
	}
	if (*s != '"')
		return NULL;
	struct strbuf sb;
	strbuf_init(&sb);
	strbuf_append(&sb, "", 0);
	for (s++; *s && *s != '"'; s++) {
		if (*s == '\\' && s[1])
			s++;
		strbuf_append(&sb, s, 1);
	}
	*p = *s ? s + 1 : s;
	return strbuf_steal(&sb);
}

/* zone_load - {"name": {"TXT": [["a", "b"], ...]}}: the first record of each name, strings joined. */
static void zone_load(struct zone *z, const char *text)
{
	const char *p = text;
	char before = 0, *s;
	char *cur = NULL;
	bool in_first = false;
	while ((s = next_string(&p, &before)) != NULL) {
		const char *q = p;
		while (*q == ' ' || *q == '\n')
			q++;
		if (*q == ':' && strcmp(s, "TXT") != 0) { /* a name */
			free(cur);
			cur = s;
			in_first = true;
			continue;
		}
		if (strcmp(s, "TXT") != 0 && cur != NULL && z->n < 64) {
			if (in_first && before == '[' && (z->n == 0 || strcmp(z->name[z->n - 1], cur) != 0)) {
				z->name[z->n] = xstrdup(cur);
				z->txt[z->n++] = xstrdup(s);
			} else if (in_first && z->n > 0 && strcmp(z->name[z->n - 1], cur) == 0 && before != ']') {
				char *j = xasprintf("%s%s", z->txt[z->n - 1], s);
				free(z->txt[z->n - 1]);
				z->txt[z->n - 1] = j;
			}
			const char *r = p;
			while (*r == ' ' || *r == '\n')
				r++;
			if (*r == ']')
				in_first = false; /* only the first record of a name */
		}
		free(s);
	}
	free(cur);
}

static const char *zone_get(const struct zone *z, const char *name)
{
	for (size_t i = 0; i < z->n; i++)
		if (rg_strcasecmp(z->name[i], name) == 0)
			return z->txt[i];
	return NULL;
}

static void zone_free(struct zone *z)
{
	for (size_t i = 0; i < z->n; i++) {
		free(z->name[i]);
		free(z->txt[i]);
	}
	z->n = 0;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	struct strbuf sb;
	strbuf_init(&sb);
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		strbuf_append(&sb, buf, n);
	strbuf_append(&sb, "", 0);
	fclose(f);
	*len = sb.len;
	return strbuf_steal(&sb);
}

/* verify_msg - verify msg against zone; the results as "pass,fail" etc, with reasons in why. */
static void verify_msg(const char *msg, size_t len, const struct zone *z, time_t now, size_t step,
		       char *out, size_t outlen, char *why, size_t whylen)
{
	struct msg_headers h;
	out[0] = why[0] = '\0';
	if (msg_headers_parse(msg, len, &h) != MSG_HDR_OK) {
		snprintf(out, outlen, "unparsed");
		return;
	}
	struct dkim_verify *v = dkim_verify_new(&h, 5, now);
	for (size_t i = 0; i < dkim_verify_nkeys(v); i++) {
		const char *txt = zone_get(z, dkim_verify_key_name(v, i));
		dkim_verify_set_key(v, i, txt, txt ? DKIM_KEY_LOOKUP_OK : DKIM_KEY_LOOKUP_NONE);
	}
	for (size_t off = h.body_offset; off < len; off += step)
		dkim_verify_body(v, msg + off, len - off < step ? len - off : step);
	dkim_verify_finish(v);
	for (size_t i = 0; i < dkim_verify_nresults(v); i++) {
		const struct dkim_sig_result *r = dkim_verify_result(v, i);
		size_t o = strlen(out), w = strlen(why);
		snprintf(out + o, outlen - o, "%s%s", i ? "," : "", dkim_result_name(r->result));
		snprintf(why + w, whylen - w, "%s%s", i ? "; " : "", r->reason);
	}
	if (dkim_verify_nresults(v) == 0)
		snprintf(out, outlen, "none");
	dkim_verify_free(v);
	msg_headers_free(&h);
}

/* ---- the published vectors ---- */

static void test_vectors(void)
{
	static const struct {
		int line;
		const char *dir, *file, *want;
		time_t now;
	} rows[] = {
		{__LINE__, "rfc6376-appendixA", "rfc6376-appA2-signed.eml", "pass", 1700000000},
		{__LINE__, "rfc6376-appendixA", "rfc6376-appA2-resigned-newengland-rawRSA.eml", "pass", 1700000000},
		{__LINE__, "rfc6376-appendixA", "goMsgauth-sign-simple-rsa-t424242.eml", "pass", 1700000000},
		{__LINE__, "rfc6376-appendixA", "goMsgauth-sign-simple-ed25519-t424242.eml", "pass", 1700000000},
		{__LINE__, "rfc6376-appendixA", "rfc6376-appA1-unsigned.eml", "none", 1700000000},
		{__LINE__, "rfc8463-appendixA", "signed.eml", "pass,pass", 1700000000},
		{__LINE__, "dkimpy-1.1.4", "rfc6376.signed.msg", "pass,pass", 1700000000},
		{__LINE__, "dkimpy-1.1.4", "rfc6376.signed.rsa.msg", "pass", 1700000000},
		{__LINE__, "dkimpy-1.1.4", "ed25519test2.msg", "pass", 1700000000},
		{__LINE__, "dkimpy-1.1.4", "test2.message", "pass", 1700000000},
		{__LINE__, "dkimpy-1.1.4", "test.message.baddomain", "permerror", 1700000000},
		{__LINE__, "dkimpy-1.1.4", "test.message", "none", 1700000000},
	};
	if (access(TESTDATA, R_OK) != 0) {
		printf("SKIP test vectors: %s is absent (see ../shared/testdata/README.md)\n", TESTDATA);
		return;
	}
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		char path[512], out[64], why[512];
		size_t len, zlen;
		snprintf(path, sizeof(path), "%s/%s/dns.json", TESTDATA, rows[i].dir);
		char *zt = slurp(path, &zlen), *msg;
		snprintf(path, sizeof(path), "%s/%s/%s", TESTDATA, rows[i].dir, rows[i].file);
		msg = slurp(path, &len);
		CHECK_AT(rows[i].line, zt && msg, "read %s", path);
		if (!zt || !msg) {
			free(zt);
			free(msg);
			continue;
		}
		struct zone z = {0};
		zone_load(&z, zt);
		for (size_t step = 3; step < 100000; step *= 1000) {
			verify_msg(msg, len, &z, rows[i].now, step, out, sizeof(out), why, sizeof(why));
			CHECK_AT(rows[i].line, strcmp(out, rows[i].want) == 0, "%s: %s, want %s (%s)",
				 rows[i].file, out, rows[i].want, why);
		}
		zone_free(&z);
		free(zt);
		free(msg);
	}
}

/* test_rfc8463_resign - Ed25519 and RSA PKCS#1 v1.5 are deterministic: signing the
 * RFC 8463 A.3 header fields again with the A.2 keys gives the published b= values. */
static void test_rfc8463_resign(void)
{
	static const char *const keys[] = {"brisbane.ed25519.private.b64", "test.rsa.private.pem"};
	char path[512], why[256];
	size_t len;
	snprintf(path, sizeof(path), "%s/rfc8463-appendixA/signed.eml", TESTDATA);
	char *msg = slurp(path, &len);
	if (msg == NULL) {
		printf("SKIP RFC 8463 re-signing: %s is absent\n", path);
		return;
	}
	struct msg_headers h;
	CHECK(msg_headers_parse(msg, len, &h) == MSG_HDR_OK, "parse");
	long fi = -1;
	for (size_t k = 0; k < 2; k++) {
		fi = msg_headers_next(&h, "DKIM-Signature", fi);
		snprintf(path, sizeof(path), "%s/rfc8463-appendixA/%s", TESTDATA, keys[k]);
		EVP_PKEY *key = dkim_key_load_private(path, why, sizeof(why));
		CHECK(fi >= 0 && key != NULL, "signature %zu and its key (%s)", k, key ? "" : why);
		if (fi < 0 || key == NULL)
			break;
		struct dkim_tags t;
		const struct msg_field *f = &h.f[fi];
		const char *colon = memchr(f->raw, ':', f->raw_len);
		CHECK(dkim_tags_parse(colon + 1, f->raw_len - (size_t)(colon + 1 - f->raw), &t, why, sizeof(why)), "tags");
		enum dkim_canon ch, cb;
		dkim_canon_parse(dkim_tags_get(&t, "c"), &ch, &cb);
		char *b = dkim_sign_b(key, &h, dkim_tags_get(&t, "h"), ch, f->raw, f->raw_len);
		char want[1024];
		size_t o = 0;
		for (const char *p = dkim_tags_get(&t, "b"); *p && o + 1 < sizeof(want); p++)
			if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
				want[o++] = *p;
		want[o] = '\0';
		CHECK_STR_AT(__LINE__, b, want, keys[k]);
		free(b);
		dkim_tags_free(&t);
		EVP_PKEY_free(key);
	}
	msg_headers_free(&h);
	free(msg);
}

/* ---- sign, then verify, then break it ---- */

static const char unsigned_msg[] =
	"Received: from client1.football.example.com [192.0.2.1]\r\n"
	"From: Joe SixPack <joe@football.example.com>\r\n"
	"To: Suzie Q <suzie@shopping.example.net>\r\n"
	"Subject: Is dinner ready?\r\n"
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
	"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
	"\r\n"
	"Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n";

/* sign_msg - msg with a signature by key prepended (x= when expire), malloc'd. */
static char *sign_msg(EVP_PKEY *key, const char *msg, time_t now, time_t expire)
{
	struct msg_headers h;
	if (msg_headers_parse(msg, strlen(msg), &h) != MSG_HDR_OK)
		return NULL;
	struct dkim_sign *s = dkim_sign_new(key, "example.com", "sel", &h, now);
	if (expire)
		dkim_sign_expire(s, expire);
	dkim_sign_body(s, msg + h.body_offset, strlen(msg) - h.body_offset);
	char why[128];
	char *field = dkim_sign_finish(s, why, sizeof(why));
	char *out = field ? xasprintf("%s%s", field, msg) : NULL;
	free(field);
	msg_headers_free(&h);
	return out;
}

/* replace - msg with the first from replaced by to, malloc'd. */
static char *replace(const char *msg, const char *from, const char *to)
{
	const char *p = strstr(msg, from);
	if (p == NULL)
		return xstrdup(msg);
	return xasprintf("%.*s%s%s", (int)(p - msg), msg, to, p + strlen(from));
}

static void check_signed(int line, EVP_PKEY *key, const char *rec_prefix, const char *edit_from,
			 const char *edit_to, time_t now, time_t expire, time_t verify_at,
			 const char *want, const char *reason)
{
	char *p = dkim_key_public_b64(key);
	struct zone z = {.n = 1};
	z.name[0] = xstrdup("sel._domainkey.example.com");
	z.txt[0] = rec_prefix ? xasprintf("%s", rec_prefix) : xasprintf("v=DKIM1; k=%s; p=%s",
		dkim_key_type_of(key) == DKIM_KEY_RSA ? "rsa" : "ed25519", p);
	char *signed_msg = sign_msg(key, unsigned_msg, now, expire);
	char *msg = edit_from ? replace(signed_msg, edit_from, edit_to) : xstrdup(signed_msg);
	char out[64], why[256];
	verify_msg(msg, strlen(msg), &z, verify_at, 4096, out, sizeof(out), why, sizeof(why));
	CHECK_AT(line, strcmp(out, want) == 0, "%s, want %s (%s)", out, want, why);
	CHECK_AT(line, strstr(why, reason) != NULL, "reason \"%s\", want \"%s\"", why, reason);
	free(msg);
	free(signed_msg);
	zone_free(&z);
	free(p);
}

static void test_sign_verify(void)
{
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	EVP_PKEY *k512 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
	EVP_PKEY *k768 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)768);
	time_t t = 1700000000;
	EVP_PKEY *keys[2] = {rsa, ed};
	for (int i = 0; i < 2; i++) {
		EVP_PKEY *k = keys[i];
		check_signed(__LINE__, k, NULL, NULL, NULL, t, 0, t, "pass", "");
		check_signed(__LINE__, k, NULL, "the game.", "the match.", t, 0, t, "fail", "body hash");
		check_signed(__LINE__, k, NULL, "Subject: Is", "Subject: Was", t, 0, t, "fail", "signature did not");
		/* over-signed: an added second From: or a Reply-To: breaks it */
		check_signed(__LINE__, k, NULL, "\nSubject: Is", "\nFrom: ceo@paypal.example\r\nSubject: Is", t, 0, t, "fail", "signature did not");
		check_signed(__LINE__, k, NULL, "\nSubject: Is", "\nReply-To: x@evil.example\r\nSubject: Is", t, 0, t, "fail", "signature did not");
		/* an unsigned field may be added; folding changes survive relaxed */
		check_signed(__LINE__, k, NULL, "\nSubject: Is", "\nX-Added: yes\r\nSubject: Is", t, 0, t, "pass", "");
		check_signed(__LINE__, k, NULL, "Subject: Is dinner", "Subject:   Is\r\n dinner", t, 0, t, "pass", "");
		check_signed(__LINE__, k, NULL, "Received: from", "Received: from tampered", t, 0, t, "pass", "");
		check_signed(__LINE__, k, "v=DKIM1; p=", NULL, NULL, t, 0, t, "permerror", "revoked");
		check_signed(__LINE__, k, NULL, NULL, NULL, t, t + 60, t + 30, "pass", "");
		check_signed(__LINE__, k, NULL, NULL, NULL, t, t + 60, t + 61, "permerror", "expired");
		check_signed(__LINE__, k, NULL, "a=", "a=x", t, 0, t, "permerror", "algorithm");
		check_signed(__LINE__, k, NULL, "v=1;", "v=2;", t, 0, t, "permerror", "version");
		check_signed(__LINE__, k, NULL, "d=example.com", "d=example.net", t, 0, t, "permerror", "no key");
	}
	check_signed(__LINE__, rsa, NULL, "rsa-sha256", "rsa-sha1", t, 0, t, "permerror", "RFC 8301");
	check_signed(__LINE__, k512, NULL, NULL, NULL, t, 0, t, "permerror", "512 bits");
	check_signed(__LINE__, k768, NULL, NULL, NULL, t, 0, t, "permerror", "768 bits");
	check_signed(__LINE__, rsa, "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", NULL, NULL, t, 0, t, "permerror", "k= does not match");
	check_signed(__LINE__, rsa, "v=DKIM1; p=" RSA1024, NULL, NULL, t, 0, t, "fail", "signature did not");
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(k512);
	EVP_PKEY_free(k768);
}

/* test_limits - more than max_sigs signatures: only the first are verified; l= is reported. */
static void test_limits(void)
{
	struct strbuf sb;
	strbuf_init(&sb);
	for (int i = 0; i < 8; i++)
		strbuf_puts(&sb, "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=s; h=from; bh=x; b=y; l=3\r\n");
	strbuf_puts(&sb, "From: a@example.com\r\n\r\nbody\r\n");
	struct msg_headers h;
	CHECK(msg_headers_parse(sb.data, sb.len, &h) == MSG_HDR_OK, "parse");
	struct dkim_verify *v = dkim_verify_new(&h, 5, 0);
	CHECK(dkim_verify_nresults(v) == 5 && dkim_verify_nkeys(v) == 5, "at most 5 verified");
	CHECK_STR_AT(__LINE__, dkim_verify_key_name(v, 0), "s._domainkey.example.com", "key name");
	dkim_verify_set_key(v, 0, NULL, DKIM_KEY_LOOKUP_TEMP);
	dkim_verify_finish(v);
	CHECK(dkim_verify_result(v, 0)->result == DKIM_TEMPERROR, "temperror from DNS");
	CHECK(dkim_verify_result(v, 0)->l_present, "l= reported");
	CHECK(dkim_verify_result(v, 1)->result == DKIM_PERMERROR, "no key given");
	dkim_verify_free(v);
	msg_headers_free(&h);
	strbuf_free(&sb);
}

/* ---- hostile signatures: a third party's h=, long names ---- */

/* sign_custom - msg with a relaxed/relaxed signature of d=example.com s=sel
 * over exactly hlist (as another signer may choose it), malloc'd. */
static char *sign_custom_l(EVP_PKEY *key, const char *msg, const char *hlist, long l)
{
	struct msg_headers h;
	if (msg_headers_parse(msg, strlen(msg), &h) != MSG_HDR_OK)
		return NULL;
	char *canon = body_canon(DKIM_CANON_RELAXED, msg + h.body_offset,
				 l < 0 ? UINT64_MAX : (uint64_t)l, 4096);
	unsigned char bh[32];
	unsigned int bn = 32;
	EVP_Digest(canon, strlen(canon), bh, &bn, EVP_sha256(), NULL);
	char *bh64 = dkim_b64_encode(bh, 32);
	char ltag[32] = "";
	if (l >= 0)
		snprintf(ltag, sizeof(ltag), " l=%ld;", l);
	char *field = xasprintf("DKIM-Signature: v=1; a=%s; c=relaxed/relaxed; d=example.com; "
				"s=sel;%s h=%s; bh=%s; b=",
				dkim_key_type_of(key) == DKIM_KEY_RSA ? "rsa-sha256" : "ed25519-sha256",
				ltag, hlist, bh64);
	char *b = dkim_sign_b(key, &h, hlist, DKIM_CANON_RELAXED, field, strlen(field));
	char *out = b ? xasprintf("%s%s\r\n%s", field, b, msg) : NULL;
	free(b);
	free(field);
	free(bh64);
	free(canon);
	msg_headers_free(&h);
	return out;
}

/* check_custom - sign with hlist (and l= unless l < 0), apply the edit,
 * verify: want and reason. */
static void check_custom_l(int line, EVP_PKEY *key, const char *msg, const char *hlist, long l,
			   const char *edit_from, const char *edit_to, const char *want,
			   const char *reason)
{
	char *p = dkim_key_public_b64(key);
	struct zone z = {.n = 1};
	z.name[0] = xstrdup("sel._domainkey.example.com");
	z.txt[0] = xasprintf("v=DKIM1; k=%s; p=%s",
			     dkim_key_type_of(key) == DKIM_KEY_RSA ? "rsa" : "ed25519", p);
	char *signed_msg = sign_custom_l(key, msg, hlist, l);
	CHECK_AT(line, signed_msg != NULL, "signed");
	char *m = edit_from ? replace(signed_msg, edit_from, edit_to) : xstrdup(signed_msg);
	char out[64], why[256];
	verify_msg(m, strlen(m), &z, 1700000000, 4096, out, sizeof(out), why, sizeof(why));
	CHECK_AT(line, strcmp(out, want) == 0, "%s, want %s (%s)", out, want, why);
	CHECK_AT(line, strstr(why, reason) != NULL, "reason \"%s\", want \"%s\"", why, reason);
	free(m);
	free(signed_msg);
	zone_free(&z);
	free(p);
}

static void check_custom(int line, EVP_PKEY *key, const char *msg, const char *hlist,
			 const char *edit_from, const char *edit_to, const char *want,
			 const char *reason)
{
	check_custom_l(line, key, msg, hlist, -1, edit_from, edit_to, want, reason);
}

#define LONGNAME "X-" \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static void test_hostile_h(void)
{
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	const char *msg = unsigned_msg;
	/* the classic "two From:" attack: a From: added above the one a third
	 * party signed once (not over-signed) must not leave dkim=pass */
	check_custom(__LINE__, ed, msg, "from:to:subject", NULL, NULL, "pass", "");
	check_custom(__LINE__, ed, msg, "from:to:subject", "Received:",
		     "From: ceo@paypal.example\r\nReceived:", "policy", "From:");
	check_custom(__LINE__, ed, msg, "from:to:subject", "\r\n\r\nHi.",
		     "\r\nFrom: ceo@paypal.example\r\n\r\nHi.", "policy", "From:");
	check_custom(__LINE__, ed, msg, "from:from:to:subject", "Received:",
		     "From: ceo@paypal.example\r\nReceived:", "fail", "signature did not");
	/* a signed field whose name is longer than the verifier's name buffer
	 * must still be covered, or refused: never silently left out */
	char *lmsg = replace(msg, "\r\n\r\n", "\r\n" LONGNAME ": signed value\r\n\r\n");
	check_custom(__LINE__, ed, lmsg, "from:" LONGNAME, "signed value", "tampered value",
		     "permerror", "h=");
	free(lmsg);
	/* l=: the signed part verifies; content appended past it (the forger's
	 * new body, or a second MIME part) must not leave a plain pass */
	const char *end = "Joe.\r\n";
	char *canon = body_canon(DKIM_CANON_RELAXED, strstr(msg, "\r\n\r\n") + 4, UINT64_MAX, 4096);
	long whole = (long)strlen(canon); /* the canonical body, all of it */
	free(canon);
	check_custom_l(__LINE__, ed, msg, "from:from:subject", whole, NULL, NULL, "pass", "");
	check_custom_l(__LINE__, ed, msg, "from:from:subject", 5, NULL, NULL, "policy", "l=");
	check_custom_l(__LINE__, ed, msg, "from:from:subject", whole, end,
		       "Joe.\r\n\r\nP.S. Please wire the money to account 12345.\r\n", "policy", "l=");
	check_custom_l(__LINE__, ed, msg, "from:from:subject", whole, end, "Joe.\r\n\r\n\r\n",
		       "pass", ""); /* trailing empty lines are no content */
	check_custom_l(__LINE__, ed, msg, "from:from:subject", whole + 1, NULL, NULL, "permerror",
		       "l= is longer");
	EVP_PKEY_free(ed);
}

/* test_key_name - d= and s= that would make a key name longer than DNS
 * allows are refused, never cut into the name of another domain. */
static void test_key_name(void)
{
	char l63[64], l61[62];
	memset(l63, 'a', 63);
	l63[63] = '\0';
	memset(l61, 'b', 61);
	l61[61] = '\0';
	const char *rows[][2] = {
		/* d= of 255 characters ends in example.com: a cut key name would end in example.co */
		{l63, "x"},
		{"s", "x"},
		{"s", l63},
	};
	for (size_t r = 0; r < RG_ARRAY_LEN(rows); r++) {
		char *d = r == 0 ? xasprintf("%s.%s.%s.%s.example.com", l63, l63, l63, l61 + 16)
		        : r == 1 ? xasprintf("%s%s.example.com", l63, "a") /* a 64-byte label */
				 : xasprintf("%s.%s.%s.%s.example.com", l63, l63, l63, l61 + 20);
		char *m = xasprintf("DKIM-Signature: v=1; a=rsa-sha256; d=%s; s=%s; h=from; bh=x; b=y\r\n"
				    "From: a@%s\r\n\r\nbody\r\n", d, rows[r][0], d);
		struct msg_headers h;
		CHECK(msg_headers_parse(m, strlen(m), &h) == MSG_HDR_OK, "parse");
		struct dkim_verify *v = dkim_verify_new(&h, 5, 0);
		size_t dl = strlen(d);
		for (size_t i = 0; i < dkim_verify_nkeys(v); i++) {
			const char *name = dkim_verify_key_name(v, i);
			size_t nl = strlen(name);
			CHECK_AT(__LINE__, nl <= 253 && nl > dl && strcmp(name + nl - dl, d) == 0,
				 "row %zu: key name %s is a DNS name ending in d=", r, name);
		}
		dkim_verify_finish(v);
		CHECK_AT(__LINE__, dkim_verify_nresults(v) == 1 &&
			 dkim_verify_result(v, 0)->result == DKIM_PERMERROR &&
			 strstr(dkim_verify_result(v, 0)->reason, "d= or s=") != NULL,
			 "row %zu: %s", r, dkim_verify_result(v, 0)->reason);
		dkim_verify_free(v);
		msg_headers_free(&h);
		free(m);
		free(d);
	}
}

/* ---- signing table ---- */

static void test_table(void)
{
	char dir[] = "/tmp/rg-dkim-test-XXXXXX";
	if (mkdtemp(dir) == NULL) {
		CHECK(false, "mkdtemp");
		return;
	}
	char key[256], tab[256], err[512];
	snprintf(key, sizeof(key), "%s/k.pem", dir);
	snprintf(tab, sizeof(tab), "%s/table", dir);
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	FILE *f = fopen(key, "w");
	PEM_write_PrivateKey(f, ed, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	EVP_PKEY_free(ed);
	static const struct {
		int line;
		const char *text;
		bool ok;
		const char *err;
	} rows[] = {
		{__LINE__, "# c\n\nexample.com s1 %s\nexample.com s2 %s\n*.example.org w %s\n", true, NULL},
		{__LINE__, "example.com s1\n", false, "table:1: want"},
		{__LINE__, "\nexa mple.com s1 %s x\n", false, "table:2: want"},
		{__LINE__, "ex@mple.com s1 %s\n", false, "table:1: bad domain"},
		{__LINE__, "example.com s1 /nonexistent/key.pem\n", false, "table:1: cannot open"},
		{__LINE__, "example.com s1 /etc/hostname\n", false, "table:1:"},
	};
	for (size_t i = 0; i < RG_ARRAY_LEN(rows); i++) {
		f = fopen(tab, "w");
		for (const char *c = rows[i].text; *c; c++) /* each %s stands for the key file */
			if (c[0] == '%' && c[1] == 's')
				fputs(key, f), c++;
			else
				fputc(*c, f);
		fclose(f);
		struct dkim_signing_table *t = dkim_signing_table_load(tab, err, sizeof(err));
		CHECK_AT(rows[i].line, (t != NULL) == rows[i].ok, "load: %s", t ? "ok" : err);
		if (!rows[i].ok && t == NULL)
			CHECK_AT(rows[i].line, strstr(err, rows[i].err) != NULL, "error \"%s\"", err);
		if (t != NULL) {
			const struct dkim_signing_entry *e[4];
			CHECK_AT(rows[i].line, dkim_signing_table_find(t, "EXAMPLE.com", e, 4) == 2, "dual");
			CHECK_AT(rows[i].line, dkim_signing_table_find(t, "a.b.example.org", e, 4) == 1 &&
						       strcmp(e[0]->selector, "w") == 0, "wildcard");
			CHECK_AT(rows[i].line, dkim_signing_table_find(t, "example.org", e, 4) == 0, "not the parent");
			CHECK_AT(rows[i].line, dkim_signing_table_find(t, "sub.example.com", e, 4) == 0, "no implicit wildcard");
		}
		dkim_signing_table_free(t);
	}
	unlink(key);
	unlink(tab);
	rmdir(dir);
}

int main(void)
{
	test_header();
	test_tags();
	test_canon();
	test_keys();
	test_key_cache();
	test_vectors();
	test_rfc8463_resign();
	test_sign_verify();
	test_limits();
	test_hostile_h();
	test_key_name();
	test_table();
	dkim_cleanup();
	return check_summary("test_dkim");
}
