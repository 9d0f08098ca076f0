/*
 * fuzz_dkim_tags.c - libFuzzer target: any bytes as a DKIM tag list, as a key
 * record, and as the value of a DKIM-Signature field being verified.
 *
 * Besides "no crash, no UB, no leak": a parsed list has at most DKIM_TAGS_MAX
 * tags, each name non-empty and unique.
 */
#include "msgauth/dkim.h"
#include "msgauth/dkim_priv.h"
#include "msgauth/header.h"
#include "util/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* verify_as_signature - the bytes as a DKIM-Signature over a small message, the key from the input too. */
static void verify_as_signature(const char *s, size_t size)
{
	char *msg = xasprintf("DKIM-Signature: %.*s\r\nFrom: a@example.com\r\n\r\nbody\r\n", (int)size, s);
	struct msg_headers h;
	if (msg_headers_parse(msg, strlen(msg), &h) == MSG_HDR_OK) {
		struct dkim_verify *v = dkim_verify_new(&h, 5, 1700000000);
		for (size_t i = 0; i < dkim_verify_nkeys(v); i++)
			dkim_verify_set_key(v, i, s, DKIM_KEY_LOOKUP_OK);
		dkim_verify_body(v, "body\r\n", 6);
		dkim_verify_finish(v);
		dkim_verify_free(v);
		msg_headers_free(&h);
	}
	free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = xmalloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	struct dkim_tags t;
	char why[128];
	if (dkim_tags_parse(s, size, &t, why, sizeof(why))) {
		if (t.n > DKIM_TAGS_MAX)
			abort();
		for (size_t i = 0; i < t.n; i++)
			for (size_t j = i + 1; j < t.n; j++)
				if (t.tag[i].name[0] == '\0' || strcmp(t.tag[i].name, t.tag[j].name) == 0)
					abort();
		dkim_tags_free(&t);
	}
	struct dkim_key k;
	dkim_key_parse(s, &k, why, sizeof(why));
	dkim_key_free(&k);
	if (memchr(s, '\0', size) == NULL)
		verify_as_signature(s, size);
	free(s);
	return 0;
}
