/*
 * fuzz_dkim_verify.c - libFuzzer target: a whole DKIM verification of any
 * message, every key lookup answered with one fixed Ed25519 key record (the
 * seeds are messages that key really signed), so the fuzzer reaches the body
 * hash and the signature check, not just the tag parser.
 *
 * Input: byte 0 chooses the key answer (plain, t=s, t=y with k=rsa, revoked,
 * temporary failure, none) and the chunk size of the body; the rest is the
 * message. Invariants: no crash, UB or leak; the results do not depend on
 * how the body is cut into chunks; a pass never comes with more From: fields
 * than the signature's h= covers (the two-From attack).
 */
#include "msgauth/dkim.h"
#include "msgauth/dkim_priv.h"
#include "msgauth/header.h"
#include "util/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define P "p=R7NjqyLdHDcH+xQDBsNnJHKJQfomVPj1LQDLYUqZ2rA="

static const char *const records[] = {
	"v=DKIM1; k=ed25519; " P,
	"v=DKIM1; k=ed25519; t=s; " P,
	"v=DKIM1; k=rsa; t=y; " P,
	"v=DKIM1; k=ed25519; p=",
};

/* verify - results of every signature as one string ("pass,fail,..."), malloc'd. */
static char *verify(const struct msg_headers *h, const uint8_t *body, size_t n, unsigned sel,
		    size_t step)
{
	struct dkim_verify *v = dkim_verify_new(h, DKIM_MAX_SIGS_DEFAULT, 1700000000);
	for (size_t i = 0; i < dkim_verify_nkeys(v); i++) {
		if (sel % 6 < 4)
			dkim_verify_set_key(v, i, records[sel % 6], DKIM_KEY_LOOKUP_OK);
		else
			dkim_verify_set_key(v, i, NULL, sel % 6 == 4 ? DKIM_KEY_LOOKUP_TEMP
								     : DKIM_KEY_LOOKUP_NONE);
	}
	for (size_t off = 0; off < n; off += step)
		dkim_verify_body(v, body + off, n - off < step ? n - off : step);
	dkim_verify_finish(v);
	struct strbuf sb;
	strbuf_init(&sb);
	strbuf_append(&sb, "", 0);
	for (size_t i = 0; i < dkim_verify_nresults(v); i++) {
		const struct dkim_sig_result *r = dkim_verify_result(v, i);
		strbuf_printf(&sb, "%s%s", i ? "," : "", dkim_result_name(r->result));
		if (r->result == DKIM_PASS && msg_headers_count(h, "From") > 1) {
			/* our own signer over-signs; a pass with two From: must have h= naming both */
			long fi = msg_headers_next(h, "DKIM-Signature", -1);
			for (size_t k = 0; k < i && fi >= 0; k++)
				fi = msg_headers_next(h, "DKIM-Signature", fi);
			const char *hv = fi >= 0 ? h->f[fi].value : NULL; /* counts at least the h= names */
			size_t from = 0;
			for (const char *p = hv; p && (p = strcasestr(p, "from")) != NULL; p += 4)
				from++;
			if (from < msg_headers_count(h, "From"))
				abort();
		}
	}
	dkim_verify_free(v);
	return strbuf_steal(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned sel = data[0];
	struct msg_headers h;
	if (msg_headers_parse((const char *)data + 1, size - 1, &h) != MSG_HDR_OK)
		return 0;
	const uint8_t *body = data + 1 + h.body_offset;
	size_t n = size - 1 - h.body_offset;
	char *whole = verify(&h, body, n, sel, n ? n : 1);
	char *cut = verify(&h, body, n, sel, 1 + (sel >> 3) % 7);
	if (strcmp(whole, cut) != 0)
		abort();
	free(whole);
	free(cut);
	msg_headers_free(&h);
	return 0;
}
