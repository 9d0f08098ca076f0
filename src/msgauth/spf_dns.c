/*
 * spf_dns.c - struct spf_resolver on the DNS module (dns_lookup(), c-ares on
 * the event loop): what `relayguard serve` and `relayguard spf check` use.
 * The resolver context (rctx) is the struct dns *.
 */
#include "msgauth/spf_dns.h"
#include "dns/dns.h"
#include "util/util.h"

#include <stdlib.h>

struct spf_dns_query {
	struct dns_query *q;
	spf_dns_fn fn;
	void *arg;
};

static const enum dns_lookup_type types[] = {
	[SPF_Q_TXT] = DNS_LOOKUP_TXT, [SPF_Q_A] = DNS_LOOKUP_A, [SPF_Q_AAAA] = DNS_LOOKUP_AAAA,
	[SPF_Q_MX] = DNS_LOOKUP_MX, [SPF_Q_PTR] = DNS_LOOKUP_PTR,
};

static void on_lookup(void *arg, const struct dns_lookup_result *r)
{
	struct spf_dns_query *w = arg;
	struct spf_dns_answer a = {SPF_DNS_NOERROR, 0, r->names, r->addrs};
	switch (r->status) {
	case DNS_LOOKUP_OK: a.n = r->n; break;
	case DNS_LOOKUP_NODATA: break;
	case DNS_LOOKUP_NXDOMAIN: a.rcode = SPF_DNS_NXDOMAIN; break;
	case DNS_LOOKUP_TIMEOUT: a.rcode = SPF_DNS_TIMEOUT; break;
	default: a.rcode = SPF_DNS_SERVFAIL; break;
	}
	spf_dns_fn fn = w->fn;
	void *fn_arg = w->arg;
	free(w);
	fn(fn_arg, &a);
}

static void *query(void *rctx, enum spf_qtype type, const char *name, spf_dns_fn fn, void *arg)
{
	struct spf_dns_query *w = xcalloc(1, sizeof(*w));
	w->fn = fn;
	w->arg = arg;
	w->q = dns_lookup(rctx, types[type], name, on_lookup, w);
	return w;
}

static void cancel(void *rctx, void *handle)
{
	struct spf_dns_query *w = handle;
	(void)rctx;
	dns_cancel(w->q);
	free(w);
}

const struct spf_resolver spf_dns_resolver = {query, cancel};
