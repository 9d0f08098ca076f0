/*
 * route.c - where mail for a domain goes (dns_mx_route, dns_host_route; see
 * dns.h): the MX records, else the domain itself, then each host's A/AAAA.
 *
 * A job holds one reference for each c-ares query in flight and one while
 * it is being started. When the last one goes, the job's own event fires on
 * the loop and the caller hears the result there: never from inside
 * dns_mx_route(), never from inside c-ares. Every question goes to the
 * cache (cache.c) first; answers, positive and negative, go into it;
 * temporary failures never do.
 *
 * Every question carries the AD bit (RFC 6840 5.7), so a validating resolver
 * in dns_servers says in each answer whether it validated it: routes and
 * hosts are marked secure for DANE (RFC 7672), which also looks up TLSA
 * records here (dns_tlsa_lookup: a job with one question and no cache).
 *
 * Leniency, like Postfix, with a log line: an MX host that is an alias
 * (CNAME, RFC 5321 5.1 says it must not be) is used; an MX record naming an
 * IP address or a malformed name is skipped (Postfix: "numeric domain name
 * in resource data of MX record").
 */
#include "dns/answer.h"
#include "dns/cache.h"
#include "dns/dns.h"
#include "dns/dns_priv.h"
#include "util/log.h"
#include "util/util.h"

#include <arpa/nameser.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#define MAX_MX_RECORDS 64 /* read from one answer; ordered, then cut to DNS_ROUTE_MAX_HOSTS */
#define T_TLSA_ 52         /* RFC 6698 */
#define NEG_TTL_NO_SOA 30 /* a negative answer without SOA (RFC 2308 leaves it to us) */

struct route_host {
	char *name;
	unsigned pref;
	struct rg_ip v4[DNS_ROUTE_MAX_ADDRS], v6[DNS_ROUTE_MAX_ADDRS];
	size_t n4, n6;
	unsigned answered, nxdomain; /* address lookups answered; of them NXDOMAIN */
	bool temp;
	bool insecure; /* an address answer came without the AD bit */
};

struct route_job {
	struct dns_query *q; /* the caller's handle; q->cancelled */
	struct dns *d;
	dns_route_fn fn;
	void *arg;
	int family, prefer;
	bool implicit_mx, direct;
	bool mx_secure; /* the MX answer was validated */
	dns_tlsa_fn tlsa_fn; /* a TLSA job (dns_tlsa_lookup), not a route */
	struct dns_tlsa_result tres;
	struct dns_tlsa *tlsa;
	dns_txt_fn txt_fn;   /* a TXT job (dns_txt_lookup) */
	struct dns_txt_result txres;
	char (*txt)[DNS_TXT_LEN];
	bool decided; /* status and error are final (before any address lookup) */
	enum dns_route_status status;
	char domain[256];
	char error[256];
	struct route_host hosts[DNS_ROUTE_MAX_HOSTS];
	size_t n_hosts;
	unsigned refs;
	struct event *done_ev;
	bool linked;
	struct route_job *prev, *next; /* d->routes */
};

/* One c-ares query of a job: MX of the domain, or A/AAAA of hosts[host]. */
struct sub {
	struct route_job *job;
	int type;
	size_t host;
};

static uint64_t now_s(void)
{
	return rg_now_ms() / 1000;
}

static const char *type_name(int type)
{
	return type == ns_t_mx ? "MX" : type == ns_t_a ? "A" : "AAAA";
}

const char *dns_route_status_name(enum dns_route_status st)
{
	static const char *const names[] = {"ok", "nxdomain", "null-mx", "no-address", "temp"};
	return (unsigned)st < sizeof(names) / sizeof(names[0]) ? names[st] : "?";
}

/* settle - the outcome is known before any address lookup. */
static void settle(struct route_job *job, enum dns_route_status st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void settle(struct route_job *job, enum dns_route_status st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(job->error, sizeof(job->error), fmt, ap);
	va_end(ap);
	job->status = st;
	job->decided = true;
}

static void unlink_job(struct route_job *job)
{
	if (!job->linked)
		return;
	if (job->prev != NULL)
		job->prev->next = job->next;
	else
		job->d->routes = job->next;
	if (job->next != NULL)
		job->next->prev = job->prev;
	job->linked = false;
}

static void job_free(struct route_job *job)
{
	unlink_job(job);
	for (size_t i = 0; i < job->n_hosts; i++)
		free(job->hosts[i].name);
	event_free(job->done_ev);
	dns_tlsa_free(job->tlsa, job->tres.n);
	free(job->tlsa);
	free(job->txt);
	free(job->q);
	free(job);
}

void route_free_all(struct dns *d)
{
	while (d->routes != NULL)
		job_free(d->routes);
}

/* job_unref - the last reference schedules the answer on the loop. */
static void job_unref(struct route_job *job)
{
	if (--job->refs == 0)
		event_active(job->done_ev, 0, 0);
}

/* ---- answers ---- */

/* parse_mx - the MX records of a successful answer into a (DATA or NODATA);
 * false when c-ares finds the records garbled (temporary, not "no MX"). */
static bool parse_mx(const unsigned char *abuf, int alen, struct dns_answer *a)
{
	struct ares_mx_reply *list = NULL;
	int rc = ares_parse_mx_reply(abuf, alen, &list);
	a->kind = DNS_ANS_NODATA; /* e.g. only a CNAME answered */
	if (rc != ARES_SUCCESS)
		return rc == ARES_ENODATA;
	size_t n = 0;
	for (struct ares_mx_reply *m = list; m != NULL && n < MAX_MX_RECORDS; m = m->next)
		n++;
	a->mx = xcalloc(n ? n : 1, sizeof(*a->mx));
	for (struct ares_mx_reply *m = list; m != NULL && a->n < n; m = m->next) {
		char *name = xstrdup(strcmp(m->host, ".") == 0 ? "" : m->host);
		size_t len = strlen(name);
		if (len > 0 && name[len - 1] == '.')
			name[len - 1] = '\0';
		rg_str_lower(name);
		a->mx[a->n++] = (struct dns_mx){m->priority, name};
	}
	a->kind = a->n > 0 ? DNS_ANS_DATA : DNS_ANS_NODATA;
	ares_free_data(list);
	return true;
}

/* parse_addrs - the A or AAAA records of a successful answer into a; false
 * when garbled. */
static bool parse_addrs(int type, const unsigned char *abuf, int alen, struct dns_answer *a)
{
	struct ares_addrttl t4[DNS_ROUTE_MAX_ADDRS];
	struct ares_addr6ttl t6[DNS_ROUTE_MAX_ADDRS];
	int n = DNS_ROUTE_MAX_ADDRS;
	int rc = type == ns_t_a ? ares_parse_a_reply(abuf, alen, NULL, t4, &n)
				: ares_parse_aaaa_reply(abuf, alen, NULL, t6, &n);
	a->kind = DNS_ANS_NODATA;
	if (rc != ARES_SUCCESS || n <= 0)
		return rc == ARES_SUCCESS || rc == ARES_ENODATA;
	a->addrs = xcalloc((size_t)n, sizeof(*a->addrs));
	for (int i = 0; i < n; i++) {
		struct rg_ip *ip = &a->addrs[a->n++];
		ip->family = type == ns_t_a ? AF_INET : AF_INET6;
		if (type == ns_t_a)
			memcpy(ip->addr, &t4[i].ipaddr, 4);
		else
			memcpy(ip->addr, &t6[i].ip6addr, 16);
	}
	a->kind = DNS_ANS_DATA;
	return true;
}

/* parse_answer - what c-ares reported, as an answer and its TTL; false for
 * a temporary failure (SERVFAIL, timeout, refusal, a garbled reply). */
static bool parse_answer(int type, int status, const unsigned char *abuf, int alen,
			 struct dns_answer *a, unsigned *ttl)
{
	struct dns_msg_info info;
	bool scanned = abuf != NULL && alen > 0 && dns_msg_scan(abuf, (size_t)alen, &info);
	memset(a, 0, sizeof(*a));
	if (status == ARES_SUCCESS && scanned) {
		bool ok = type == ns_t_mx ? parse_mx(abuf, alen, a) : parse_addrs(type, abuf, alen, a);
		if (!ok) {
			dns_answer_clear(a);
			return false;
		}
		a->cname = info.cname;
		a->secure = info.ad;
	} else if (status == ARES_ENODATA || status == ARES_ENOTFOUND) {
		a->kind = status == ARES_ENODATA ? DNS_ANS_NODATA : DNS_ANS_NXDOMAIN;
		a->secure = scanned && info.ad; /* a validated denial of existence */
	} else {
		return false;
	}
	if (a->kind == DNS_ANS_DATA)
		*ttl = info.min_ttl;
	else
		*ttl = scanned && info.soa ? info.neg_ttl : NEG_TTL_NO_SOA;
	return true;
}

static void query(struct route_job *job, int type, size_t host);

/* lookup_addrs - A and/or AAAA of one host, as inet_protocols allows. */
static void lookup_addrs(struct route_job *job, size_t host)
{
	if (job->family != AF_INET6)
		query(job, ns_t_a, host);
	if (job->family != AF_INET)
		query(job, ns_t_aaaa, host);
}

/* add_host - a host to try; false when full or already listed. */
static bool add_host(struct route_job *job, const char *name, unsigned pref)
{
	if (job->n_hosts >= DNS_ROUTE_MAX_HOSTS)
		return false;
	for (size_t i = 0; i < job->n_hosts; i++)
		if (strcmp(job->hosts[i].name, name) == 0)
			return false; /* the same host twice: the better preference stays */
	struct route_host *h = &job->hosts[job->n_hosts++];
	h->name = xstrdup(name);
	h->pref = pref;
	return true;
}

/* usable_mx - may this MX name be looked up? Says why not in the log. */
static bool usable_mx(const struct route_job *job, const char *name)
{
	struct rg_ip ip;
	const char *problem = NULL;
	if (name[0] == '\0')
		problem = "null MX among other MX records: ignored";
	else if (ip_parse(name, &ip))
		problem = "numeric domain name in MX record: ignored";
	else if (!dns_name_valid(name))
		problem = "malformed domain name in MX record: ignored";
	if (problem != NULL)
		log_ev(LOG_WARNING, "dns-route", {"domain", job->domain}, {"mx", name},
		       {"problem", problem});
	return problem == NULL;
}

static void mx_answer(struct route_job *job, struct dns_answer *a)
{
	job->mx_secure = a->secure;
	if (a->kind == DNS_ANS_NXDOMAIN) {
		settle(job, DNS_ROUTE_NXDOMAIN, "Host or domain name not found. Name service error "
		       "for name=%s type=MX: Host not found", job->domain);
		return;
	}
	if (a->kind == DNS_ANS_NODATA) {
		job->implicit_mx = true; /* RFC 5321 5.1: the domain is its own MX */
		add_host(job, job->domain, 0);
	} else if (mx_is_null(a->mx, a->n)) {
		settle(job, DNS_ROUTE_NULL_MX, "Domain %s does not accept mail (nullMX)",
		       job->domain);
		return;
	} else {
		mx_order(a->mx, a->n, dns_rand);
		for (size_t i = 0; i < a->n; i++)
			if (usable_mx(job, a->mx[i].name))
				add_host(job, a->mx[i].name, a->mx[i].pref);
	}
	if (job->n_hosts == 0)
		settle(job, DNS_ROUTE_NO_ADDRESS, "Host or domain name not found: no usable MX "
		       "host for %s", job->domain);
	for (size_t i = 0; i < job->n_hosts; i++)
		lookup_addrs(job, i);
}

static void addr_answer(struct route_job *job, size_t host, int type, const struct dns_answer *a)
{
	struct route_host *h = &job->hosts[host];
	h->answered++;
	h->insecure |= !a->secure;
	if (a->kind == DNS_ANS_NXDOMAIN)
		h->nxdomain++;
	if (a->kind != DNS_ANS_DATA)
		return;
	if (a->cname && !job->implicit_mx && !job->direct)
		log_ev(LOG_INFO, "dns-route", {"domain", job->domain}, {"mx", h->name},
		       {"problem", "MX host is an alias (CNAME): used anyway"});
	struct rg_ip *dst = type == ns_t_a ? h->v4 : h->v6;
	size_t *n = type == ns_t_a ? &h->n4 : &h->n6;
	for (size_t i = 0; i < a->n && *n < DNS_ROUTE_MAX_ADDRS; i++)
		dst[(*n)++] = a->addrs[i];
}

/* temp_text - what went wrong, for the log and the DSN. c-ares 1.18 reports a
 * SERVFAIL or REFUSED from every server as "could not contact". */
static const char *temp_text(int status)
{
	switch (status) {
	case ARES_ETIMEOUT: return "timeout while contacting DNS servers";
	case ARES_ECONNREFUSED: return "DNS servers failed (SERVFAIL), refused, or are unreachable";
	case ARES_ESERVFAIL: return "DNS server failure (SERVFAIL)";
	case ARES_EREFUSED: return "DNS server refused the query";
	default: return ares_strerror(status);
	}
}

/* temp_failure - the lookup may work later: defer, never bounce. */
static void temp_failure(struct route_job *job, int type, size_t host, int status)
{
	const char *name = type == ns_t_mx ? job->domain : job->hosts[host].name;
	char why[256];
	snprintf(why, sizeof(why), "Name service error for name=%s type=%s: %s", name,
		 type_name(type), temp_text(status));
	if (type == ns_t_mx) {
		settle(job, DNS_ROUTE_TEMP, "%s", why);
		return;
	}
	job->hosts[host].temp = true;
	if (job->error[0] == '\0')
		rg_strlcpy(job->error, why, sizeof(job->error)); /* the first one says it */
}

static void apply(struct route_job *job, int type, size_t host, struct dns_answer *a)
{
	if (type == ns_t_mx)
		mx_answer(job, a);
	else
		addr_answer(job, host, type, a);
}

/* rcode_status - what ares_query() would have said: ares_send() leaves the
 * reply code to us (SERVFAIL and REFUSED it turns into trying the next server). */
static int rcode_status(int status, const unsigned char *abuf, int alen)
{
	struct dns_msg_info info;
	if (status != ARES_SUCCESS)
		return status;
	if (abuf == NULL || alen <= 0 || !dns_msg_scan(abuf, (size_t)alen, &info))
		return ARES_EBADRESP;
	switch (info.rcode) {
	case 0: return info.answers == 0 ? ARES_ENODATA : ARES_SUCCESS;
	case 2: return ARES_ESERVFAIL;
	case 3: return ARES_ENOTFOUND;
	case 5: return ARES_EREFUSED;
	default: return ARES_EBADRESP;
	}
}

/* tlsa_answer - a TLSA job's one answer. */
static void tlsa_answer(struct route_job *job, int status, const unsigned char *abuf, int alen)
{
	struct dns_tlsa_result *r = &job->tres;
	struct dns_msg_info info;
	r->secure = abuf != NULL && alen > 0 && dns_msg_scan(abuf, (size_t)alen, &info) && info.ad;
	if (status == ARES_SUCCESS) {
		size_t max = DNS_TLSA_BOUND((size_t)alen); /* all of them: none is left out */
		job->tlsa = xcalloc(max, sizeof(*job->tlsa));
		r->n = dns_tlsa_parse(abuf, (size_t)alen, job->tlsa, max, &r->n_skipped);
		r->records = job->tlsa;
		r->status = r->n + r->n_skipped > 0 ? DNS_TLSA_FOUND : DNS_TLSA_NONE;
	} else if (status == ARES_ENODATA || status == ARES_ENOTFOUND) {
		r->status = DNS_TLSA_NONE;
	} else {
		r->status = DNS_TLSA_TEMP;
		snprintf(r->error, sizeof(r->error), "Name service error for name=%s type=TLSA: %s",
			 job->domain, temp_text(status));
	}
}

/* txt_answer - a TXT job's one answer. */
static void txt_answer(struct route_job *job, int status, const unsigned char *abuf, int alen)
{
	struct dns_txt_result *r = &job->txres;
	if (status == ARES_SUCCESS) {
		size_t skipped;
		job->txt = xcalloc(DNS_TXT_MAX, sizeof(*job->txt));
		r->n = dns_txt_parse(abuf, (size_t)alen, job->txt, DNS_TXT_MAX, &skipped);
		for (size_t i = 0; i < r->n; i++)
			r->txt[i] = job->txt[i];
		r->status = r->n > 0 ? DNS_TXT_FOUND : DNS_TXT_NONE;
	} else if (status == ARES_ENODATA || status == ARES_ENOTFOUND) {
		/* most domains have no MTA-STS or TLS-RPT record: remember that (RFC 2308) */
		struct dns_msg_info info;
		bool scanned = abuf != NULL && alen > 0 && dns_msg_scan(abuf, (size_t)alen, &info);
		struct dns_answer none = {.kind = status == ARES_ENODATA ? DNS_ANS_NODATA
									 : DNS_ANS_NXDOMAIN};
		dns_cache_put(job->d->cache, ns_t_txt, job->domain, &none,
			      scanned && info.soa ? info.neg_ttl : NEG_TTL_NO_SOA, now_s());
		r->status = DNS_TXT_NONE;
	} else {
		r->status = DNS_TXT_TEMP;
		snprintf(r->error, sizeof(r->error), "Name service error for name=%s type=TXT: %s",
			 job->domain, temp_text(status));
	}
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct sub *s = arg;
	struct route_job *job = s->job;
	int type = s->type;
	size_t host = s->host;
	(void)timeouts;
	free(s);
	status = rcode_status(status, abuf, alen);
	if (job->tlsa_fn != NULL || job->txt_fn != NULL) {
		if (job->tlsa_fn != NULL)
			tlsa_answer(job, status, abuf, alen);
		else
			txt_answer(job, status, abuf, alen);
		job_unref(job);
		return;
	}
	struct dns_answer a;
	unsigned ttl = 0;
	if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
		temp_failure(job, type, host, status);
	} else if (parse_answer(type, status, abuf, alen, &a, &ttl)) {
		const char *name = type == ns_t_mx ? job->domain : job->hosts[host].name;
		dns_cache_put(job->d->cache, type, name, &a, ttl, now_s());
		apply(job, type, host, &a);
		dns_answer_clear(&a);
	} else {
		/* a reply c-ares accepted but we could not read counts as garbled */
		temp_failure(job, type, host, status == ARES_SUCCESS ? ARES_EBADRESP : status);
	}
	job_unref(job);
}

/* send_ad - name/type with RD and AD set (RFC 6840 5.7: a validating
 * resolver then says whether it validated the answer, without EDNS or DO). */
static void send_ad(struct route_job *job, const char *name, int type, struct sub *s)
{
	unsigned char *buf = NULL;
	int len = 0;
	int rc = ares_create_query(name, ns_c_in, type, 0, 1, &buf, &len, 0);
	if (rc != ARES_SUCCESS || len < 12) {
		if (buf != NULL)
			ares_free_string(buf);
		on_answer(s, rc != ARES_SUCCESS ? rc : ARES_EBADQUERY, 0, NULL, 0);
		return;
	}
	buf[3] |= 0x20; /* AD */
	ares_send(job->d->channel, buf, len, on_answer, s);
	ares_free_string(buf);
}

/* query - one question, from the cache or from the DNS. */
static void query(struct route_job *job, int type, size_t host)
{
	bool single = job->tlsa_fn != NULL || job->txt_fn != NULL; /* one uncached question */
	const char *name = type == ns_t_mx || single ? job->domain : job->hosts[host].name;
	if (job->q->cancelled || job->d->destroying)
		return;
	const struct dns_answer *hit = job->tlsa_fn ? NULL
					: dns_cache_get(job->d->cache, type, name, now_s());
	if (hit != NULL && job->txt_fn != NULL) { /* only "no TXT record" is cached */
		job->txres.status = DNS_TXT_NONE;
		return;
	}
	if (hit != NULL) {
		struct dns_answer a;
		dns_answer_copy(&a, hit); /* apply() may reorder it */
		apply(job, type, host, &a);
		dns_answer_clear(&a);
		return;
	}
	struct sub *s = xcalloc(1, sizeof(*s));
	*s = (struct sub){job, type, host};
	job->refs++;
	send_ad(job, name, type, s);
}

/* ---- the result ---- */

/* decide - the status once every lookup is in. */
static void decide(struct route_job *job)
{
	bool any_addr = false, any_temp = false, all_nx = job->n_hosts > 0;
	for (size_t i = 0; i < job->n_hosts; i++) {
		const struct route_host *h = &job->hosts[i];
		any_addr |= h->n4 + h->n6 > 0;
		any_temp |= h->temp;
		all_nx &= h->answered > 0 && h->nxdomain == h->answered;
	}
	if (any_addr)
		job->status = DNS_ROUTE_OK;
	else if (any_temp)
		job->status = DNS_ROUTE_TEMP; /* job->error has the first failure */
	else if (job->direct && all_nx)
		settle(job, DNS_ROUTE_NXDOMAIN, "Host or domain name not found. Name service "
		       "error for name=%s type=A: Host not found", job->hosts[0].name);
	else
		settle(job, DNS_ROUTE_NO_ADDRESS, "Host or domain name not found: no address for "
		       "%s%s", job->implicit_mx || job->direct ? "" : "the MX hosts of ",
		       job->domain);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
	struct route_job *job = arg;
	(void)fd;
	(void)what;
	unlink_job(job); /* the callback may call dns_free() */
	if (job->tlsa_fn != NULL && !job->q->cancelled && !job->d->destroying) {
		job->tlsa_fn(job->arg, &job->tres);
	} else if (job->txt_fn != NULL && !job->q->cancelled && !job->d->destroying) {
		job->txt_fn(job->arg, &job->txres);
	} else if (!job->q->cancelled && !job->d->destroying) {
		if (!job->decided)
			decide(job);
		struct dns_route r = {.status = job->status, .implicit_mx = job->implicit_mx,
				      .secure = job->direct || job->mx_secure};
		struct dns_route_host hosts[DNS_ROUTE_MAX_HOSTS];
		struct rg_ip addrs[DNS_ROUTE_MAX_HOSTS][DNS_ROUTE_MAX_ADDRS];
		rg_strlcpy(r.error, job->status == DNS_ROUTE_OK ? "" : job->error, sizeof(r.error));
		for (size_t i = 0; i < job->n_hosts; i++) {
			struct route_host *h = &job->hosts[i];
			hosts[i] = (struct dns_route_host){h->name, h->pref, addrs[i], 0, h->temp,
							   h->answered > 0 && !h->insecure};
			hosts[i].n_addrs = addr_order(h->v4, h->n4, h->v6, h->n6, job->prefer,
						      dns_rand, addrs[i], DNS_ROUTE_MAX_ADDRS);
		}
		r.hosts = hosts;
		r.n_hosts = job->n_hosts;
		job->fn(job->arg, &r);
	}
	job_free(job);
}

/* ---- starting ---- */

static struct route_job *job_new(struct dns *d, int family, int prefer, dns_route_fn fn,
				 void *arg)
{
	struct route_job *job = xcalloc(1, sizeof(*job));
	job->q = xcalloc(1, sizeof(*job->q));
	job->q->d = d;
	job->q->route = job;
	job->d = d;
	job->fn = fn;
	job->arg = arg;
	job->family = family == AF_INET || family == AF_INET6 ? family : AF_UNSPEC;
	job->prefer = prefer;
	job->refs = 1; /* held while starting */
	job->done_ev = event_new(d->base, -1, 0, on_done, job);
	job->next = d->routes;
	if (d->routes != NULL)
		d->routes->prev = job;
	d->routes = job;
	job->linked = true;
	return job;
}

/* set_name - the name to look up: no trailing dot, lower case; false if
 * malformed (then job->domain is a printable cut of it, for the error). */
static bool set_name(struct route_job *job, const char *name)
{
	size_t len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		len--;
	bool fits = len < sizeof(job->domain);
	if (!fits)
		len = sizeof(job->domain) - 1;
	memcpy(job->domain, name, len);
	job->domain[len] = '\0';
	rg_str_lower(job->domain);
	if (fits && dns_name_valid(job->domain))
		return true;
	for (char *p = job->domain; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f || *p == '"')
			*p = '?';
	return false;
}

/* literal - an IP address as the one host: no lookup. */
static void literal(struct route_job *job, const char *text, const struct rg_ip *ip)
{
	bool allowed = job->family == AF_UNSPEC || job->family == ip->family;
	job->direct = true;
	rg_strlcpy(job->domain, text, sizeof(job->domain));
	add_host(job, job->domain, 0);
	struct route_host *h = &job->hosts[0];
	if (!allowed)
		settle(job, DNS_ROUTE_NO_ADDRESS, "address %s is of a family not in "
		       "inet_protocols", job->domain);
	else if (ip->family == AF_INET)
		h->v4[h->n4++] = *ip;
	else
		h->v6[h->n6++] = *ip;
}

/* start - the common end of both entry points. */
static struct dns_query *start(struct route_job *job)
{
	job_unref(job);
	dns_arm_timer(job->d);
	return job->q;
}

struct dns_query *dns_mx_route(struct dns *d, const char *domain, int family, int prefer,
			       dns_route_fn fn, void *arg)
{
	struct route_job *job = job_new(d, family, prefer, fn, arg);
	struct rg_ip ip;
	if (domain[0] == '[' && dns_literal(domain, &ip))
		literal(job, domain, &ip);
	else if (!set_name(job, domain))
		settle(job, DNS_ROUTE_NXDOMAIN, "Host or domain name not found: malformed domain "
		       "name \"%s\"", job->domain);
	else
		query(job, ns_t_mx, 0);
	return start(job);
}

struct dns_query *dns_host_route(struct dns *d, const char *host, int family, int prefer,
				 dns_route_fn fn, void *arg)
{
	struct route_job *job = job_new(d, family, prefer, fn, arg);
	struct rg_ip ip;
	char inner[256];
	const char *name = host;
	size_t len = strlen(host);
	job->direct = true;
	if (len > 2 && len - 2 < sizeof(inner) && host[0] == '[' && host[len - 1] == ']') {
		memcpy(inner, host + 1, len - 2); /* "[host]" as in a nexthop: the host */
		inner[len - 2] = '\0';
		name = inner;
	}
	if (dns_literal(host, &ip)) {
		literal(job, host, &ip);
	} else if (!set_name(job, name)) {
		settle(job, DNS_ROUTE_NXDOMAIN, "Host or domain name not found: malformed host "
		       "name \"%s\"", job->domain);
	} else {
		add_host(job, job->domain, 0);
		lookup_addrs(job, 0);
	}
	return start(job);
}

struct dns_query *dns_tlsa_lookup(struct dns *d, const char *host, unsigned port,
				  dns_tlsa_fn fn, void *arg)
{
	struct route_job *job = job_new(d, AF_UNSPEC, AF_UNSPEC, NULL, arg);
	char name[300];
	job->tlsa_fn = fn;
	snprintf(name, sizeof(name), "_%u._tcp.%s", port, host);
	if (!set_name(job, name)) {
		job->tres.status = DNS_TLSA_TEMP;
		snprintf(job->tres.error, sizeof(job->tres.error), "malformed TLSA name \"%s\"",
			 job->domain);
	} else {
		query(job, T_TLSA_, 0);
	}
	return start(job);
}

struct dns_query *dns_txt_lookup(struct dns *d, const char *name, dns_txt_fn fn, void *arg)
{
	struct route_job *job = job_new(d, AF_UNSPEC, AF_UNSPEC, NULL, arg);
	job->txt_fn = fn;
	if (!set_name(job, name)) {
		job->txres.status = DNS_TXT_TEMP;
		snprintf(job->txres.error, sizeof(job->txres.error), "malformed name \"%s\"",
			 job->domain);
	} else {
		query(job, ns_t_txt, 0);
	}
	return start(job);
}
