/*
 * dns_priv - what dns.c and route.c share: the resolver and query handles.
 * Not for use outside src/dns/.
 */
#ifndef RG_DNS_PRIV_H
#define RG_DNS_PRIV_H

#include "dns/dns.h"

#include <ares.h>

#define DNS_MAX_SOCKETS 32

struct event;
struct dns_cache;
struct route_job;

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
	struct route_job *routes; /* route.c's jobs in flight */
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

/* dns_arm_timer - after starting queries outside a c-ares callback. */
void dns_arm_timer(struct dns *d);

/* route_free_all - dns_free(): jobs still held after ares_destroy(). */
void route_free_all(struct dns *d);

#endif
