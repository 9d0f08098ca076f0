/*
 * sts.c - one MTA-STS lookup at a time per delivery (see sts.h):
 *
 *   cached and TXT seen < recheck_s ago ─▶ cached
 *   TXT _mta-sts.D ─▶ one "v=STSv1; id=X" ─▶ X is the cached id ─▶ cached
 *                                        └▶ new id ─▶ A/AAAA mta-sts.D ─▶ HTTPS GET
 *                                              ─▶ parsed: stored, used; failed: cached
 *                  └▶ none, several, or a DNS failure ─▶ cached (or none)
 */
#include "tlspol/sts.h"
#include "dns/dns.h"
#include "tlspol/stsfetch.h"
#include "util/log.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

struct sts {
	struct event_base *base;
	struct dns *dns;
	struct sts_cache *cache;
	struct sts_fetcher *fetcher;
	unsigned recheck_s;
};

struct sts_query {
	struct sts *s;
	char domain[256];
	char id[STS_ID_MAX + 1];
	sts_fn fn;
	void *arg;
	struct dns_query *dq;      /* TXT or address lookup in flight */
	struct sts_fetch *fetch;
	struct event *report;      /* cached answer, from the loop */
};

static void query_free(struct sts_query *q)
{
	if (q->dq != NULL)
		dns_cancel(q->dq);
	if (q->fetch != NULL)
		sts_fetch_cancel(q->fetch);
	event_free(q->report);
	free(q);
}

/* finish - tell the caller what is in force now, and forget the query. */
static void finish(struct sts_query *q)
{
	q->dq = NULL;
	q->fetch = NULL;
	q->fn(q->arg, sts_cache_get(q->s->cache, q->domain, time(NULL)));
	query_free(q);
}

static void fetch_failed(struct sts_query *q, const char *why)
{
	log_ev(LOG_WARNING, "mta-sts-fetch-failed", {"domain", q->domain}, {"id", q->id},
	       {"reason", why}, {"action", "the cached policy (if any) stays in force"});
	finish(q);
}

static void on_fetch(void *arg, bool ok, const char *body, size_t len, const char *error)
{
	struct sts_query *q = arg;
	struct sts_policy p;
	char err[256], mx[STS_MX_MAX * 260];
	q->fetch = NULL;
	memset(&p, 0, sizeof(p));
	if (!ok || !sts_parse_policy(body, len, &p, err, sizeof(err))) {
		fetch_failed(q, ok ? err : error);
		return;
	}
	rg_strlcpy(p.domain, q->domain, sizeof(p.domain));
	rg_strlcpy(p.id, q->id, sizeof(p.id));
	p.fetched = p.checked = time(NULL);
	sts_cache_put(q->s->cache, &p);
	char age[32];
	snprintf(age, sizeof(age), "%llu", (unsigned long long)p.max_age);
	sts_mx_list(&p, mx, sizeof(mx));
	log_ev(LOG_INFO, "mta-sts-policy", {"domain", q->domain}, {"id", p.id},
	       {"mode", sts_mode_name(p.mode)}, {"max_age", age}, {"mx", mx});
	q->fn(q->arg, &p); /* this policy, whatever the cache kept */
	query_free(q);
}

static void on_addr(void *arg, const struct rg_ip *ip, const char *error)
{
	struct sts_query *q = arg;
	char host[300];
	q->dq = NULL;
	snprintf(host, sizeof(host), "mta-sts.%s", q->domain);
	if (ip == NULL) {
		char why[400];
		snprintf(why, sizeof(why), "no address for %s: %s", host, error ? error : "?");
		fetch_failed(q, why);
		return;
	}
	q->fetch = sts_fetch_start(q->s->fetcher, host, ip, on_fetch, q);
}

/* txt_id - the id of the one STSv1 record among the TXT records (3.1: more
 * than one, or a malformed one, is as if there were none). */
static bool txt_id(const struct dns_txt_result *r, char *id, size_t idlen)
{
	size_t found = 0;
	for (size_t i = 0; i < r->n; i++) {
		if (strncmp(r->txt[i], "v=STSv1", 7) != 0)
			continue;
		found++;
		if (!sts_parse_txt(r->txt[i], id, idlen))
			return false;
	}
	return found == 1;
}

static void on_txt(void *arg, const struct dns_txt_result *r)
{
	struct sts_query *q = arg;
	q->dq = NULL;
	struct sts_policy *cached = sts_cache_get(q->s->cache, q->domain, time(NULL));
	if (r->status != DNS_TXT_FOUND || !txt_id(r, q->id, sizeof(q->id))) {
		finish(q); /* 5.1: no record, yet a cached policy: it stays in force */
		return;
	}
	if (cached != NULL && strcmp(cached->id, q->id) == 0) {
		sts_cache_touch(q->s->cache, cached, time(NULL));
		finish(q);
		return;
	}
	char host[300];
	snprintf(host, sizeof(host), "mta-sts.%s", q->domain);
	struct dns_query *dq = dns_host_addr(q->s->dns, host, AF_UNSPEC, on_addr, q);
	if (dq != NULL)
		q->dq = dq; /* NULL: on_addr ran already, and q may be gone */
}

static void on_report(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	finish(arg);
}

struct sts_query *sts_lookup(struct sts *s, const char *domain, sts_fn fn, void *arg)
{
	struct sts_query *q = xcalloc(1, sizeof(*q));
	q->s = s;
	q->fn = fn;
	q->arg = arg;
	rg_strlcpy(q->domain, domain, sizeof(q->domain));
	rg_str_lower(q->domain);
	q->report = event_new(s->base, -1, 0, on_report, q);
	struct sts_policy *cached = sts_cache_get(s->cache, q->domain, time(NULL));
	if (cached != NULL && time(NULL) - cached->checked < (time_t)s->recheck_s) {
		event_active(q->report, 0, 0);
		return q;
	}
	char name[300];
	snprintf(name, sizeof(name), "_mta-sts.%s", q->domain);
	q->dq = dns_txt_lookup(s->dns, name, on_txt, q);
	return q;
}

void sts_cancel(struct sts_query *q)
{
	if (q != NULL)
		query_free(q);
}

struct sts *sts_new(struct event_base *base, struct dns *dns, const struct sts_opts *o,
		    char *err, size_t errlen)
{
	struct sts_cache *cache = sts_cache_open(base, o->queue_dir, err, errlen);
	if (cache == NULL)
		return NULL;
	struct sts_fetcher *f = sts_fetcher_new(base, o->cafile, o->https_port, STS_FETCH_TIMEOUT,
						err, errlen);
	if (f == NULL) {
		sts_cache_free(cache);
		return NULL;
	}
	struct sts *s = xcalloc(1, sizeof(*s));
	s->base = base;
	s->dns = dns;
	s->cache = cache;
	s->fetcher = f;
	s->recheck_s = o->recheck_s;
	return s;
}

void sts_free(struct sts *s)
{
	if (s == NULL)
		return;
	sts_fetcher_free(s->fetcher);
	sts_cache_free(s->cache);
	free(s);
}
