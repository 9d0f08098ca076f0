/*
 * lookup.c - one DNS question of any type SPF needs (dns_lookup; see dns.h),
 * with the reply code kept apart: NXDOMAIN, no data, SERVFAIL, timeout.
 *
 * The reading of a reply is answer.c's (dns_msg_scan for the reply code and
 * counts, dns_txt_parse for TXT) and c-ares' own parsers for the rest. The
 * caller hears the answer from inside c-ares' callback (on the loop, as
 * route.c's queries do their own next steps); an answer that c-ares gives
 * while dns_lookup() is still running is delivered by a zero timer instead.
 *
 * Answers, positive and negative, go into the resolver's lookup cache
 * (cache.c, d->lookups) for their TTL; a question it can answer is answered
 * from there, by the same zero timer. SERVFAIL, timeouts and garbled replies
 * are never remembered: the next message asks again.
 */
#include "dns/answer.h"
#include "dns/cache.h"
#include "dns/dns.h"
#include "dns/dns_priv.h"
#include "util/util.h"

#include <arpa/nameser.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

struct lookup_job {
	struct dns_query *q; /* the caller's handle: q->cancelled */
	struct dns *d;
	enum dns_lookup_type type;
	dns_lookup_fn fn;
	void *arg;
	bool starting, answered_early;
	struct event *early;      /* the zero timer of an early answer */
	struct lookup_job *prev, *next; /* in d->early while it waits */
	struct dns_lookup_result res;
	struct dns_msg_info info; /* the reply, when dns_msg_scan() read it */
	bool scanned;
	struct dns_answer hit;    /* a copy of the cached answer res points into */
	char *qname;              /* the name asked for: the cache's key */
	char (*txt)[DNS_TXT_LEN];
	const char **txt_views;
	char *names[DNS_LOOKUP_MAX];
	const char *views[DNS_LOOKUP_MAX];
	struct rg_ip addrs[DNS_LOOKUP_MAX];
};

#define DNS_LOOKUP_TXT_MAX 128 /* TXT records read from one answer */
#define NEG_TTL_NO_SOA 30      /* as route.c: a negative answer without SOA */
#define CACHE_TEXT_MAX 16384   /* bytes of names or TXT text one cache entry holds */

static const int qtypes[] = {ns_t_txt, ns_t_a, ns_t_aaaa, ns_t_mx, ns_t_ptr};

static void job_free(struct lookup_job *job)
{
	for (size_t i = 0; i < DNS_LOOKUP_MAX; i++)
		free(job->names[i]);
	free(job->txt);
	free(job->txt_views);
	dns_answer_clear(&job->hit);
	if (job->early != NULL)
		event_free(job->early);
	free(job->qname);
	free(job->q);
	free(job);
}

/* keep_name - a host name from a record, without its final dot. */
static void keep_name(struct lookup_job *job, const char *name)
{
	if (job->res.n >= DNS_LOOKUP_MAX)
		return;
	char *copy = xstrdup(strcmp(name, ".") == 0 ? "" : name);
	size_t len = strlen(copy);
	if (len > 0 && copy[len - 1] == '.')
		copy[len - 1] = '\0';
	job->names[job->res.n] = copy;
	job->views[job->res.n++] = copy;
}

static void read_addrs(struct lookup_job *job, const unsigned char *abuf, int alen)
{
	struct ares_addrttl t4[DNS_LOOKUP_MAX];
	struct ares_addr6ttl t6[DNS_LOOKUP_MAX];
	int n = DNS_LOOKUP_MAX;
	bool v4 = job->type == DNS_LOOKUP_A;
	if ((v4 ? ares_parse_a_reply(abuf, alen, NULL, t4, &n)
		: ares_parse_aaaa_reply(abuf, alen, NULL, t6, &n)) != ARES_SUCCESS)
		return;
	for (int i = 0; i < n; i++) {
		struct rg_ip *ip = &job->addrs[job->res.n++];
		ip->family = v4 ? AF_INET : AF_INET6;
		memcpy(ip->addr, v4 ? (const void *)&t4[i].ipaddr : (const void *)&t6[i].ip6addr,
		       v4 ? 4 : 16);
	}
	job->res.n_total = job->res.n;
}

static void read_mx(struct lookup_job *job, const unsigned char *abuf, int alen)
{
	struct ares_mx_reply *list = NULL;
	if (ares_parse_mx_reply(abuf, alen, &list) != ARES_SUCCESS)
		return;
	for (struct ares_mx_reply *m = list; m != NULL; m = m->next) {
		job->res.n_total++;
		keep_name(job, m->host);
	}
	ares_free_data(list);
}

static void read_ptr(struct lookup_job *job, const unsigned char *abuf, int alen)
{
	struct hostent *h = NULL;
	static const unsigned char any[4];
	if (ares_parse_ptr_reply(abuf, alen, any, sizeof(any), AF_INET, &h) != ARES_SUCCESS)
		return;
	for (char **a = h->h_aliases; a != NULL && *a != NULL; a++)
		keep_name(job, *a);
	if (job->res.n == 0 && h->h_name != NULL)
		keep_name(job, h->h_name);
	job->res.n_total = job->res.n;
	ares_free_hostent(h);
}

/* read_txt - every TXT record up to DNS_LOOKUP_TXT_MAX: a domain's SPF record
 * may come after dozens of site-verification records. */
static void read_txt(struct lookup_job *job, const unsigned char *abuf, int alen,
		     unsigned answers)
{
	size_t skipped = 0, slots = answers < DNS_LOOKUP_TXT_MAX ? answers : DNS_LOOKUP_TXT_MAX;
	job->txt = xcalloc(slots + 1, sizeof(*job->txt));
	job->txt_views = xcalloc(slots + 1, sizeof(*job->txt_views));
	job->res.n = dns_txt_parse(abuf, (size_t)alen, job->txt, slots, &skipped);
	for (size_t i = 0; i < job->res.n; i++)
		job->txt_views[i] = job->txt[i];
	job->res.n_total = job->res.n + skipped;
}

static void read_records(struct lookup_job *job, const unsigned char *abuf, int alen,
			 unsigned answers)
{
	switch (job->type) {
	case DNS_LOOKUP_TXT:
		read_txt(job, abuf, alen, answers);
		break;
	case DNS_LOOKUP_A:
	case DNS_LOOKUP_AAAA: read_addrs(job, abuf, alen); break;
	case DNS_LOOKUP_MX: read_mx(job, abuf, alen); break;
	default: read_ptr(job, abuf, alen); break;
	}
}

/* set_status - the reply code (ares_send leaves it to us) and the records. */
static void set_status(struct lookup_job *job, int status, const unsigned char *abuf, int alen)
{
	struct dns_lookup_result *r = &job->res;
	struct dns_msg_info *info = &job->info;
	r->status = DNS_LOOKUP_SERVFAIL;
	job->scanned = status == ARES_SUCCESS && abuf != NULL && alen > 0 &&
		       dns_msg_scan(abuf, (size_t)alen, info);
	if (status == ARES_ETIMEOUT) {
		r->status = DNS_LOOKUP_TIMEOUT;
		snprintf(r->error, sizeof(r->error), "timeout while contacting DNS servers");
	} else if (status != ARES_SUCCESS) {
		/* c-ares 1.18 reports SERVFAIL or REFUSED from every server as ECONNREFUSED */
		snprintf(r->error, sizeof(r->error), "%s", status == ARES_ECONNREFUSED ?
			 "DNS servers failed (SERVFAIL), refused, or are unreachable" :
			 ares_strerror(status));
	} else if (!job->scanned) {
		snprintf(r->error, sizeof(r->error), "garbled DNS reply");
	} else if (info->rcode == 3) {
		r->status = DNS_LOOKUP_NXDOMAIN;
	} else if (info->rcode != 0) {
		snprintf(r->error, sizeof(r->error), "DNS server answered rcode %u", info->rcode);
	} else {
		read_records(job, abuf, alen, info->answers);
		r->status = r->n_total > 0 ? DNS_LOOKUP_OK : DNS_LOOKUP_NODATA;
	}
	r->names = job->txt_views != NULL ? job->txt_views : job->views;
	r->addrs = job->addrs;
}

/* ---- the cache ---- */

static uint64_t now_s(void)
{
	return rg_now_ms() / 1000;
}

/* neg_ttl - an absence: the SOA's negative TTL (else 30 s), and no longer
 * than the CNAME that led to it (RFC 2308 5): the alias may change first. */
static unsigned neg_ttl(const struct dns_msg_info *info)
{
	unsigned ttl = info->soa ? info->neg_ttl : NEG_TTL_NO_SOA;
	return info->answers > 0 && info->min_ttl < ttl ? info->min_ttl : ttl;
}

unsigned dns_lookup_ttl(const struct dns_lookup_result *r, const struct dns_msg_info *info)
{
	if (info == NULL)
		return 0; /* no reply was read: nothing the DNS said */
	switch (r->status) {
	case DNS_LOOKUP_OK: return info->min_ttl;
	case DNS_LOOKUP_NODATA:
	case DNS_LOOKUP_NXDOMAIN: return neg_ttl(info);
	default: return 0;
	}
}

/* text_size - the bytes of r's names (TXT records, host names). */
static size_t text_size(const struct dns_lookup_result *r, enum dns_lookup_type type)
{
	size_t total = 0;
	for (size_t i = 0; type != DNS_LOOKUP_A && type != DNS_LOOKUP_AAAA && i < r->n; i++)
		total += strlen(r->names[i]) + 1;
	return total;
}

void dns_lookup_remember(struct dns_cache *c, enum dns_lookup_type type, const char *name,
			 const struct dns_lookup_result *r, const struct dns_msg_info *info,
			 uint64_t now)
{
	unsigned ttl = dns_lookup_ttl(r, info);
	if (ttl == 0 || text_size(r, type) > CACHE_TEXT_MAX)
		return;
	bool addrs = type == DNS_LOOKUP_A || type == DNS_LOOKUP_AAAA;
	struct dns_answer a = {
		.kind = r->status == DNS_LOOKUP_OK ? DNS_ANS_DATA
			: r->status == DNS_LOOKUP_NODATA ? DNS_ANS_NODATA : DNS_ANS_NXDOMAIN,
		.cname = info->cname, .n = r->n, .n_total = r->n_total,
	};
	/* dns_cache_put() copies: the casts only let it read r's arrays */
	if (r->status == DNS_LOOKUP_OK && addrs)
		a.addrs = (struct rg_ip *)(uintptr_t)r->addrs;
	else if (r->status == DNS_LOOKUP_OK)
		a.names = (char **)(uintptr_t)r->names;
	else
		a.n = 0;
	dns_cache_put(c, qtypes[type], name, &a, ttl, now);
}

/* from_cache - the cached answer to the job's question, into job->res. */
static bool from_cache(struct lookup_job *job, const char *name)
{
	const struct dns_answer *a = dns_cache_get(job->d->lookups, qtypes[job->type], name,
						   now_s());
	if (a == NULL)
		return false;
	dns_answer_copy(&job->hit, a); /* a lives only until the next dns_cache_put() */
	struct dns_lookup_result *r = &job->res;
	r->status = a->kind == DNS_ANS_DATA ? DNS_LOOKUP_OK
		    : a->kind == DNS_ANS_NODATA ? DNS_LOOKUP_NODATA : DNS_LOOKUP_NXDOMAIN;
	r->n = job->hit.n;
	r->n_total = job->hit.n_total;
	r->names = job->hit.names != NULL ? (const char *const *)job->hit.names : job->views;
	r->addrs = job->hit.addrs != NULL ? job->hit.addrs : job->addrs;
	return true;
}

static void deliver(struct lookup_job *job)
{
	if (!job->q->cancelled && !job->d->destroying)
		job->fn(job->arg, &job->res);
	job_free(job);
}

/* early_unlink - the job no longer waits for its zero timer. */
static void early_unlink(struct lookup_job *job)
{
	if (job->prev != NULL)
		job->prev->next = job->next;
	else
		job->d->early = job->next;
	if (job->next != NULL)
		job->next->prev = job->prev;
}

void dns_lookup_free_early(struct dns *d)
{
	while (d->early != NULL) {
		struct lookup_job *job = d->early;
		early_unlink(job);
		job_free(job);
	}
}

/* on_early - the zero timer (dns_free() frees the jobs still waiting for it). */
static void on_early(evutil_socket_t fd, short what, void *arg)
{
	struct lookup_job *job = arg;
	(void)fd;
	(void)what;
	early_unlink(job);
	if (!job->q->cancelled)
		job->fn(job->arg, &job->res);
	job_free(job);
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct lookup_job *job = arg;
	(void)timeouts;
	set_status(job, status, abuf, alen);
	if (!job->d->destroying)
		dns_lookup_remember(job->d->lookups, job->type, job->qname, &job->res,
				    job->scanned ? &job->info : NULL, now_s());
	if (job->starting)
		job->answered_early = true;
	else if (job->d->destroying)
		job_free(job);
	else
		deliver(job);
}

/* ask - the question to the DNS servers. */
static void ask(struct lookup_job *job)
{
	unsigned char *buf = NULL;
	int len = 0;
	int rc = ares_create_query(job->qname, ns_c_in, qtypes[job->type], 0, 1, &buf, &len, 0);
	if (rc == ARES_SUCCESS)
		ares_send(job->d->channel, buf, len, on_answer, job);
	else
		on_answer(job, rc, 0, NULL, 0);
	if (rc == ARES_EBADNAME)
		job->res.status = DNS_LOOKUP_NXDOMAIN; /* no such name can exist */
	if (buf != NULL)
		ares_free_string(buf);
}

struct dns_query *dns_lookup(struct dns *d, enum dns_lookup_type type, const char *name,
			     dns_lookup_fn fn, void *arg)
{
	struct lookup_job *job = xcalloc(1, sizeof(*job));
	*job = (struct lookup_job){.d = d, .type = type, .fn = fn, .arg = arg, .starting = true};
	job->q = xcalloc(1, sizeof(*job->q));
	job->q->d = d;
	job->qname = xstrdup(name);
	if (from_cache(job, name))
		job->answered_early = true;
	else
		ask(job);
	job->starting = false;
	struct dns_query *q = job->q;
	if (job->answered_early) { /* the callback never runs inside this call */
		static const struct timeval now = {0, 0};
		job->early = evtimer_new(d->base, on_early, job);
		job->next = d->early;
		if (d->early != NULL)
			d->early->prev = job;
		d->early = job;
		evtimer_add(job->early, &now);
	}
	dns_arm_timer(d);
	return q;
}
