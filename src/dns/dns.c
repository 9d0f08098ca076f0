/*
 * dns.c - c-ares on libevent (see dns.h).
 *
 * c-ares tells us which sockets it wants watched (sock_state_cb); each gets
 * an event that calls ares_process_fd(). One timer covers c-ares' own
 * retransmission timeouts.
 */
#include "dns/dns.h"
#include "dns/cache.h"
#include "dns/dns_priv.h"
#include "util/log.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <event2/event.h>

/* The routing cache and the lookup cache (each): entries, and caps on
 * positive and negative TTLs (s). */
#define DNS_CACHE_ENTRIES 512
#define DNS_CACHE_TTL_CAP 300
#define DNS_CACHE_NEG_CAP 60

void dns_arm_timer(struct dns *d)
{
	struct timeval tv, *t = ares_timeout(d->channel, NULL, &tv);
	if (t != NULL)
		evtimer_add(d->timer, t);
	else
		evtimer_del(d->timer);
}

static void on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;
	ares_process_fd(d->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
			(what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_arm_timer(d);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;
	(void)fd;
	(void)what;
	ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_arm_timer(d);
}

/* sock_state - c-ares wants fd watched for reading/writing, or not at all. */
static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	struct dns_socket *slot = NULL, *free_slot = NULL;
	for (size_t i = 0; i < DNS_MAX_SOCKETS; i++) {
		if (d->sockets[i].ev != NULL && d->sockets[i].fd == fd)
			slot = &d->sockets[i];
		else if (d->sockets[i].ev == NULL && free_slot == NULL)
			free_slot = &d->sockets[i];
	}
	if (slot != NULL) {
		event_free(slot->ev);
		slot->ev = NULL;
	}
	if (!readable && !writable)
		return;
	if (slot == NULL)
		slot = free_slot;
	if (slot == NULL) {
		log_msg(LOG_ERROR, "dns: too many resolver sockets");
		return;
	}
	short what = (short)(EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
	slot->fd = fd;
	slot->ev = event_new(d->base, fd, what, on_socket, d);
	event_add(slot->ev, NULL);
}

struct dns *dns_new(struct event_base *base, const char *servers, unsigned timeout_ms,
		    char *err, size_t errlen)
{
	struct dns *d = xcalloc(1, sizeof(*d));
	struct ares_options o;
	memset(&o, 0, sizeof(o));
	o.sock_state_cb = sock_state;
	o.sock_state_cb_data = d;
	o.timeout = (int)timeout_ms;
	o.tries = 2;
	o.lookups = (char *)(servers ? "b" : "fb"); /* explicit servers: DNS only */
	int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS;
	int rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc == ARES_SUCCESS)
		rc = ares_init_options(&d->channel, &o, mask);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "cannot start the DNS resolver: %s", ares_strerror(rc));
		free(d);
		return NULL;
	}
	if (servers != NULL && (rc = ares_set_servers_ports_csv(d->channel, servers)) != ARES_SUCCESS) {
		snprintf(err, errlen, "bad DNS server list \"%s\": %s", servers, ares_strerror(rc));
		ares_destroy(d->channel);
		ares_library_cleanup();
		free(d);
		return NULL;
	}
	d->base = base;
	d->timer = evtimer_new(base, on_timer, d);
	d->cache = dns_cache_new(DNS_CACHE_ENTRIES, DNS_CACHE_TTL_CAP, DNS_CACHE_NEG_CAP);
	d->lookups = dns_cache_new(DNS_CACHE_ENTRIES, DNS_CACHE_TTL_CAP, DNS_CACHE_NEG_CAP);
	return d;
}

void dns_free(struct dns *d)
{
	if (d == NULL)
		return;
	d->destroying = true;
	ares_destroy(d->channel); /* runs pending callbacks with ARES_EDESTRUCTION */
	dns_lookup_free_early(d);
	route_free_all(d);
	dns_cache_free(d->cache);
	dns_cache_free(d->lookups);
	for (size_t i = 0; i < DNS_MAX_SOCKETS; i++)
		if (d->sockets[i].ev)
			event_free(d->sockets[i].ev);
	event_free(d->timer);
	ares_library_cleanup();
	free(d);
}

static void finish(struct dns_query *q, const char *name)
{
	if (!q->started) {
		/* answered from /etc/hosts or failed at once: the caller has no handle yet */
		q->sync_done = true;
		q->sync_found = name != NULL;
		return;
	}
	if (!q->cancelled && !q->d->destroying)
		q->fn(q->arg, name);
	free(q);
}

/* on_forward - does the PTR name lead back to the client address? */
static void on_forward(void *arg, int status, int timeouts, struct hostent *h)
{
	struct dns_query *q = arg;
	(void)timeouts;
	if (status == ARES_SUCCESS && h != NULL) {
		for (char **a = h->h_addr_list; *a != NULL; a++) {
			struct rg_ip ip = {.family = h->h_addrtype};
			memcpy(ip.addr, *a, h->h_addrtype == AF_INET ? 4 : 16);
			if (ip_equal(&ip, &q->ip)) {
				finish(q, q->name);
				return;
			}
		}
	}
	finish(q, NULL);
}

static void on_reverse(void *arg, int status, int timeouts, struct hostent *h)
{
	struct dns_query *q = arg;
	(void)timeouts;
	if (status != ARES_SUCCESS || h == NULL || h->h_name == NULL || q->cancelled ||
	    q->d->destroying || strlen(h->h_name) >= sizeof(q->name)) {
		finish(q, NULL);
		return;
	}
	rg_strlcpy(q->name, h->h_name, sizeof(q->name));
	rg_str_lower(q->name);
	ares_gethostbyname(q->d->channel, q->name, q->ip.family, on_forward, q);
}

struct dns_query *dns_client_name(struct dns *d, const struct rg_ip *ip, dns_name_fn fn,
				  void *arg)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));
	q->d = d;
	q->ip = *ip;
	q->fn = fn;
	q->arg = arg;
	ares_gethostbyaddr(d->channel, ip->addr, ip->family == AF_INET ? 4 : 16, ip->family,
			   on_reverse, q);
	q->started = true;
	if (q->sync_done) {
		fn(arg, q->sync_found ? q->name : NULL);
		free(q);
		return NULL;
	}
	dns_arm_timer(d);
	return q;
}

void dns_cancel(struct dns_query *q)
{
	q->cancelled = true; /* freed when c-ares (or route.c's job) calls back */
}

/* ---- forward lookup: name -> one address ---- */

static void finish_addr(struct dns_query *q, const struct rg_ip *ip)
{
	if (!q->started) {
		q->sync_done = true;
		q->sync_found = ip != NULL;
		if (ip != NULL)
			q->ip = *ip;
		return;
	}
	if (!q->cancelled && !q->d->destroying)
		q->addr_fn(q->arg, ip, q->error);
	free(q);
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct dns_query *q = arg;
	(void)timeouts;
	struct rg_ip ip;
	bool found = false;
	if (status == ARES_SUCCESS && res != NULL) {
		for (struct ares_addrinfo_node *n = res->nodes; n != NULL && !found; n = n->ai_next)
			found = (n->ai_family == AF_INET || n->ai_family == AF_INET6) &&
				ip_from_sockaddr(n->ai_addr, &ip);
	}
	if (!found)
		snprintf(q->error, sizeof(q->error), "%s",
			 status == ARES_SUCCESS ? "no address" : ares_strerror(status));
	if (res != NULL)
		ares_freeaddrinfo(res);
	finish_addr(q, found ? &ip : NULL);
}

struct dns_query *dns_host_addr(struct dns *d, const char *name, int family, dns_addr_fn fn,
				void *arg)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));
	q->d = d;
	q->addr_fn = fn;
	q->arg = arg;
	struct ares_addrinfo_hints hints;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	ares_getaddrinfo(d->channel, name, NULL, &hints, on_addrinfo, q);
	q->started = true;
	if (q->sync_done) {
		fn(arg, q->sync_found ? &q->ip : NULL, q->error);
		free(q);
		return NULL;
	}
	dns_arm_timer(d);
	return q;
}
