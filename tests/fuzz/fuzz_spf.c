/*
 * fuzz_spf.c - libFuzzer target: any bytes as an SPF record, a macro-string,
 * a domain to truncate, or the client text of a Received-SPF field.
 *
 * Or as the record of every domain a whole check_host() meets (a stub
 * resolver answers TXT with it, and fixed A, MX and PTR records), so
 * include/redirect recursion, limits, %{p} and exp= run on hostile records.
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

/* ---- a whole check over a stub resolver ---- */

struct stub {
	enum spf_qtype type;
	spf_dns_fn fn;
	void *arg;
	bool cancelled;
	struct stub *next;
};

static struct stub *queue;
static const char *record;
static int outcomes;

static void *stub_query(void *rctx, enum spf_qtype type, const char *name, spf_dns_fn fn,
			void *arg)
{
	(void)rctx;
	if (strlen(name) > 253)
		abort(); /* names are truncated to 253 bytes before they are asked */
	struct stub *q = calloc(1, sizeof(*q));
	*q = (struct stub){type, fn, arg, false, queue};
	queue = q;
	return q;
}

static void stub_cancel(void *rctx, void *h)
{
	(void)rctx;
	((struct stub *)h)->cancelled = true;
}

static void on_outcome(void *arg, const struct spf_outcome *o)
{
	(void)arg;
	if ((unsigned)o->result > SPF_PERMERROR || strlen(o->problem) >= sizeof(o->problem))
		abort();
	outcomes++;
}

static void fuzz_check(const char *s)
{
	static const char *const names[] = {"mx1.example", "mx2.example", "x.example"};
	static const struct rg_ip addr = {AF_INET, {192, 0, 2, 1}};
	static const struct spf_resolver stub = {stub_query, stub_cancel};
	struct rg_ip ip = addr;
	record = s;
	outcomes = 0;
	spf_check_start(&stub, NULL, &ip, "user@example.com", "helo.example", "mx.example",
			on_outcome, NULL);
	while (queue != NULL) {
		struct stub *q = queue;
		queue = q->next;
		const char *txt[2] = {record, "v=spf1 -all"};
		struct spf_dns_answer a = {SPF_DNS_NOERROR, 0, names, &addr};
		if (q->type == SPF_Q_TXT)
			a = (struct spf_dns_answer){SPF_DNS_NOERROR, 1 + (strlen(record) % 7 == 0), txt, NULL};
		else if (q->type == SPF_Q_A || q->type == SPF_Q_MX || q->type == SPF_Q_PTR)
			a.n = q->type == SPF_Q_A ? 1 : 3;
		else
			a.rcode = SPF_DNS_NXDOMAIN;
		if (!q->cancelled)
			q->fn(q->arg, &a);
		free(q);
	}
	if (outcomes != 1)
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
	switch (data[0] % 6) {
	case 5: fuzz_check(s); break;
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
