/*
 * fuzz_spf.c - libFuzzer target: any bytes as an SPF record, a macro-string,
 * a domain to truncate, or the client text of a Received-SPF field.
 *
 * The first byte picks which; the rest is the input. Besides "no crash, no
 * UB, no leak" it checks what callers rely on: an expansion fits its buffer
 * and is terminated, a parsed record's terms point inside its text, a
 * truncated name is at most 253 bytes, and the header never holds a line
 * break other than a fold (CRLF TAB).
 */
#include "msgauth/spf.h"
#include "util/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_record(const char *s, size_t n)
{
	static struct spf_record rec;
	char err[200];
	if (!spf_record_parse(s, n, &rec, err, sizeof(err)))
		return;
	for (size_t i = 0; i < rec.n; i++) {
		const struct spf_term *t = &rec.terms[i];
		if (t->text < rec.text || t->text + t->text_len > rec.text + strlen(rec.text))
			abort();
		if (t->spec != NULL && !spf_domain_spec_ok(t->spec, t->spec_len))
			abort();
	}
}

static void fuzz_macro(const char *s, size_t n, bool exp, size_t cap)
{
	struct rg_ip ip;
	char out[SPF_EXPAND_MAX];
	const char *why;
	ip_parse(n % 2 ? "2001:db8::1" : "192.0.2.1", &ip);
	struct spf_macro_ctx m = {"a.b-c@d.example", "a.b-c", "d.example", "x.y.example", &ip,
				  NULL, "h.example", "r.example", 1};
	memset(out, 'x', sizeof(out));
	if (spf_macro_expand(s, n, &m, exp, out, cap, &why) && strlen(out) >= cap)
		abort();
	if (out[cap - 1] != '\0' && memchr(out, '\0', cap) == NULL)
		abort();
}

static void fuzz_header(const char *s, size_t n)
{
	struct spf_outcome o = {.result = (enum spf_result)(n % 7)};
	char buf[700];
	size_t half = n / 2;
	snprintf(o.envelope_from, sizeof(o.envelope_from), "%.*s", (int)half, s);
	snprintf(o.helo, sizeof(o.helo), "%.*s", (int)(n - half), s + half);
	snprintf(o.problem, sizeof(o.problem), "%.*s", (int)half, s);
	rg_strlcpy(o.identity, n % 3 ? "mailfrom" : "helo", sizeof(o.identity));
	size_t len = spf_received_header(&o, buf, 1 + n % sizeof(buf));
	if (len != strlen(buf))
		abort();
	for (size_t i = 0; i < len; i++)
		if ((buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r' || buf[i + 1] != '\t')) ||
		    (buf[i] == '\r' && buf[i + 1] != '\n'))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t n = size - 1;
	char *s = malloc(n + 1);
	memcpy(s, data + 1, n);
	s[n] = '\0';
	switch (data[0] % 5) {
	case 0: fuzz_record(s, n); break;
	case 1: fuzz_macro(s, n, false, SPF_EXPAND_MAX); break;
	case 2: fuzz_macro(s, n, true, 1 + data[0] % 64); break;
	case 3:
		if (strlen(s) < 600) {
			char name[600];
			rg_strlcpy(name, s, sizeof(name));
			if (spf_domain_truncate(name) && strlen(name) > 253)
				abort();
		}
		break;
	default: fuzz_header(s, strlen(s)); break;
	}
	free(s);
	return 0;
}
