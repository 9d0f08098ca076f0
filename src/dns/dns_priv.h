/*
 * dns_priv - what dns.c and route.c share: the resolver and query handles.
 * Not for use outside src/dns/.
 */
#ifndef RG_DNS_PRIV_H
#define RG_DNS_PRIV_H

#include "dns/dns.h"

#include <stdint.h>

#include <ares.h>

#define DNS_MAX_SOCKETS 32

struct event;
struct dns_cache;
struct route_job;
struct lookup_job;

struct dns_socket {
	ares_socket_t fd;
	struct event *ev;
};

struct dns {
	struct event_base *base;
	ares_channel channel;
	struct event *timer;
	struct dns_socket sockets[DNS_MAX_SOCKETS];
	bool destroying;
	struct dns_cache *cache;  /* route.c's answers */
	struct dns_cache *lookups; /* lookup.c's answers: names senders choose, kept apart
				    * so that they cannot push routing answers out */
	struct route_job *routes; /* route.c's jobs in flight */
	struct lookup_job *early; /* lookup.c's answers waiting for their zero timer */
};

struct dns_query {
	struct dns *d;
	struct rg_ip ip;
	char name[256];
	dns_name_fn fn;
	void *arg;
	bool cancelled;
	bool started;      /* dns_client_name() has returned */
	bool sync_done;    /* c-ares answered inside dns_client_name() */
	bool sync_found;
	dns_addr_fn addr_fn; /* dns_host_addr() */
	char error[128];
	struct route_job *route; /* dns_mx_route(), dns_host_route() */
};

/* dns_lookup_free_early - at dns_free(): the answers still waiting for their
 * zero timer, which will never run, freed without a callback. */
void dns_lookup_free_early(struct dns *d);

/* dns_arm_timer - after starting queries outside a c-ares callback. */
void dns_arm_timer(struct dns *d);

struct dns_lookup_result;
struct dns_msg_info;

/* dns_lookup_ttl - how long a dns_lookup() result may be remembered (s): the
 * smallest TTL of the answer, or for NXDOMAIN and NODATA the negative TTL
 * (RFC 2308: the SOA's, else 30 s, at most the TTL of a CNAME on the way);
 * 0 (never) for a temporary failure.
 * info is the reply dns_msg_scan() read, NULL when there was none. The
 * cache applies its caps. */
unsigned dns_lookup_ttl(const struct dns_lookup_result *r, const struct dns_msg_info *info);

/* dns_lookup_remember - r, the result of (type, name), into c for
 * dns_lookup_ttl() seconds from now; nothing when that is 0 or the records'
 * text is too large to hold. */
void dns_lookup_remember(struct dns_cache *c, enum dns_lookup_type type, const char *name,
			 const struct dns_lookup_result *r, const struct dns_msg_info *info,
			 uint64_t now);

/* route_free_all - dns_free(): jobs still held after ares_destroy(). */
void route_free_all(struct dns *d);

#endif
