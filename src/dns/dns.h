/*
 * dns - asynchronous DNS on the event loop (c-ares), never blocking.
 *
 * Owns: the c-ares channel and its sockets as libevent events, and the
 * client-name lookup Postfix calls "verified": PTR of the client address,
 * then A/AAAA of that name must lead back to the same address; otherwise
 * the client is "unknown". Later releases add MX/TXT lookups here.
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

#endif
