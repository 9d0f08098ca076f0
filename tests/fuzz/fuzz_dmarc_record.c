/*
 * fuzz_dmarc_record.c - libFuzzer target: any bytes as a _dmarc TXT record,
 * parsed directly and served to the discovery driver (a resolver answering
 * every query at once with it), then evaluated.
 *
 * Besides "no crash, no UB, no leak", it checks the invariants enforcement
 * rests on: a usable record always has a policy and pct within 0..100; the
 * driver calls done exactly once and never asks more than three queries; a
 * verdict without alignment is never a pass.
 */
#include "msgauth/dmarc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct serve {
	const uint8_t *data;
	size_t size;
	int queries;
};

static void *serve_start(void *ctx, const char *name, dmarc_txt_cb cb, void *arg)
{
	struct serve *s = ctx;
	if (++s->queries > 3 || strlen(name) > DMARC_DOMAIN_MAX)
		abort();
	const char *txt[2] = {(const char *)s->data, "v=spf1 -all"};
	size_t len[2] = {s->size, 11};
	/* alternate NXDOMAIN on the existence probe so np= gets used */
	enum dmarc_dns st = strncmp(name, "_dmarc.", 7) == 0 ? DMARC_DNS_OK : DMARC_DNS_NXDOMAIN;
	cb(arg, st, txt, len, 2);
	return s;
}

static void serve_cancel(void *ctx, void *handle)
{
	(void)ctx;
	(void)handle;
	abort(); /* nothing is outstanding with a synchronous resolver */
}

static void on_done(void *arg, const struct dmarc_discovery *d)
{
	struct dmarc_discovery *out = arg;
	if (out->found == (enum dmarc_found)-1)
		*out = *d;
	else
		abort(); /* twice */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dmarc_record rec;
	enum dmarc_parse p = dmarc_record_parse((const char *)data, size, &rec);
	if (p == DMARC_REC_OK && (rec.p == DMARC_P_UNSET || rec.pct > 100))
		abort();
	struct serve s = {data, size, 0};
	struct dmarc_resolver res = {serve_start, serve_cancel, &s};
	struct dmarc_discovery d;
	d.found = (enum dmarc_found)-1;
	if (dmarc_lookup_start(&res, "a.b.example.co.uk", on_done, &d) != NULL || d.found == (enum dmarc_found)-1)
		abort();
	struct from_result from = {.status = FROM_OK, .mailboxes = 1, .ndomains = 1};
	memcpy(from.domain[0], "a.b.example.co.uk", 18);
	struct dmarc_dkim_sig sig = {"evil.example", true};
	struct dmarc_input in = {&from, 1, "other.example", true, &sig, 1, size % 100};
	struct dmarc_verdict v;
	dmarc_evaluate(&in, &d, &v);
	if (v.result == DMARC_PASS || (d.found != DMARC_FOUND && v.disposition != DMARC_DISP_NONE))
		abort();
	return 0;
}
