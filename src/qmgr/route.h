/*
 * route - where mail for a domain goes next: Postfix's transport_maps,
 * relayhost and MX routing, decided as a pure function.
 *
 * Owns: the syntax of transport values ("smtp:[host]:port", "smtp:host",
 * "local", "error:5.7.1 text", "discard:") and of next hops ("[host]:port",
 * "host:port", "host", "[ipv6]:port"), and the order in which a domain is
 * looked up: transport_maps (the domain, then ".parent" keys), else our
 * own domains are local, else default_transport: "smtp" means relayhost,
 * or else the domain's own MX records. An "error:" route with a 4.x.x
 * status defers instead of bouncing.
 * Must not: do DNS or any other I/O (the queue manager resolves the result).
 */
#ifndef RG_ROUTE_H
#define RG_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

struct config;

#define ROUTE_HOST_MAX 256

enum route_kind {
	ROUTE_SMTP,    /* deliver to nexthop over SMTP */
	ROUTE_LOCAL,   /* our own Maildirs */
	ROUTE_ERROR,   /* bounce with the given status and text */
	ROUTE_DISCARD, /* drop, reporting success (logged) */
};

struct route {
	enum route_kind kind;
	char host[ROUTE_HOST_MAX]; /* ROUTE_SMTP: a domain (mx) or a host/IP literal */
	unsigned port;
	bool mx;                   /* look up MX records of host (no [] around it) */
	bool relayhost;            /* the next hop came from relayhost */
	char status[16];           /* ROUTE_ERROR: "5.7.1" */
	char text[256];            /* ROUTE_ERROR: the reason */
	char via[24];              /* "transport_maps", "relayhost", "mx", "local" */
	char key[ROUTE_HOST_MAX + 16]; /* the destination for concurrency and backoff */
};

/* Parse a next hop: "[host]:port", "[host]", "host:port", "host", "[::1]:25".
 * mx is false when the host was bracketed. */
bool route_parse_nexthop(const char *s, unsigned default_port, char *host, size_t hostlen,
			 unsigned *port, bool *mx);

/* Parse a transport_maps value for domain; err says what is wrong. */
bool route_parse_transport(const char *value, const char *domain, unsigned default_port,
			   struct route *out, char *err, size_t errlen);

/* The route for mail to domain (lower case). local_domain: the recipient
 * resolved to one of our own domains (local delivery unless transport_maps
 * says otherwise). False, with err, when a table value is broken. */
bool route_for_domain(const struct config *cfg, const char *domain, bool local_domain,
		      struct route *out, char *err, size_t errlen);

#endif
