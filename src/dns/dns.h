/*
 * dns - asynchronous DNS on the event loop (c-ares), never blocking.
 *
 * Owns: the c-ares channel and its sockets as libevent events, and the
 * client-name lookup Postfix calls "verified": PTR of the client address,
 * then A/AAAA of that name must lead back to the same address; otherwise
 * the client is "unknown". And the forward lookup of a host name to one
 * address (A/AAAA), for clients such as relayguard probe. Later releases
 * add MX/TXT lookups here.
 * Must not: fall back to blocking resolver calls.
 */
#ifndef RG_DNS_H
#define RG_DNS_H

#include <stdbool.h>
#include <stddef.h>

#include "net/net.h"

struct event_base;
struct dns;
struct dns_query;

/* servers: "127.0.0.1:5353,[::1]:53" or NULL for /etc/resolv.conf. */
struct dns *dns_new(struct event_base *base, const char *servers, unsigned timeout_ms,
		    char *err, size_t errlen);
void dns_free(struct dns *d);

/* name is the verified host name, or NULL ("unknown"). */
typedef void (*dns_name_fn)(void *arg, const char *name);

/* Start a verified reverse lookup. The callback runs once, on the loop, unless
 * dns_cancel() comes first. When the answer is known at once (e.g. from
 * /etc/hosts) it runs before this returns, and NULL is returned. */
struct dns_query *dns_client_name(struct dns *d, const struct rg_ip *ip, dns_name_fn fn,
				  void *arg);
void dns_cancel(struct dns_query *q);

/* ip is the first address found for the name, or NULL with error saying why. */
typedef void (*dns_addr_fn)(void *arg, const struct rg_ip *ip, const char *error);

/* Look up a host name's address: family AF_INET (A), AF_INET6 (AAAA) or
 * AF_UNSPEC (either). Without explicit servers /etc/hosts is read first.
 * Same contract as dns_client_name(): the callback runs once, on the loop
 * (before this returns, which then returns NULL, when the answer is known at
 * once), unless dns_cancel() comes first. */
struct dns_query *dns_host_addr(struct dns *d, const char *name, int family, dns_addr_fn fn,
				void *arg);

#endif
