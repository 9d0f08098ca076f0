/*
 * fuzz_dkim_canon.c - libFuzzer target: any bytes as a message body and as a
 * header field, through both DKIM canonicalisations.
 *
 * Invariants: feeding the body in one piece or byte by byte gives the same
 * output; relaxed output has no blank before a CRLF and no blank runs; an
 * l= limit cuts the output exactly; header output fits the documented bound.
 */
#include "msgauth/dkim_priv.h"
#include "util/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void sink(void *arg, const void *p, size_t n)
{
	strbuf_append(arg, p, n);
}

/* run - the canonical body, fed in pieces of step bytes. */
static struct strbuf run(enum dkim_canon c, const uint8_t *data, size_t size, size_t step,
			 uint64_t limit, uint64_t *total)
{
	struct strbuf sb;
	strbuf_init(&sb);
	strbuf_append(&sb, "", 0);
	struct dkim_body_canon b;
	dkim_body_init(&b, c, limit, sink, &sb);
	for (size_t i = 0; i < size; i += step)
		dkim_body_feed(&b, data + i, size - i < step ? size - i : step);
	*total = dkim_body_finish(&b);
	return sb;
}

static void check_body(enum dkim_canon c, const uint8_t *data, size_t size)
{
	uint64_t t1, t2, t3;
	struct strbuf whole = run(c, data, size, size ? size : 1, UINT64_MAX, &t1);
	struct strbuf bytes = run(c, data, size, 1, UINT64_MAX, &t2);
	struct strbuf cut = run(c, data, size, 7, size / 2, &t3);
	if (whole.len != bytes.len || memcmp(whole.data, bytes.data, whole.len) != 0 || t1 != whole.len)
		abort();
	if (cut.len != (whole.len < size / 2 ? whole.len : size / 2) ||
	    memcmp(cut.data, whole.data, cut.len) != 0)
		abort();
	if (c == DKIM_CANON_RELAXED && (strstr(whole.data, " \r\n") || strstr(whole.data, "  ")))
		abort();
	strbuf_free(&whole);
	strbuf_free(&bytes);
	strbuf_free(&cut);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_body(DKIM_CANON_SIMPLE, data, size);
	check_body(DKIM_CANON_RELAXED, data, size);
	char *out = xmalloc(2 * size + 3);
	const char *raw = (const char *)data;
	if (memchr(raw, ':', size) != NULL) {
		for (int c = 0; c < 2; c++)
			if (dkim_canon_header((enum dkim_canon)c, raw, size, true, out) > 2 * size + 2)
				abort();
		char *stripped = xmalloc(size + 1);
		if (dkim_strip_b(raw, size, stripped) > size)
			abort();
		free(stripped);
	}
	free(out);
	return 0;
}
