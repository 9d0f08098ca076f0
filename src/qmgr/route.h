/*
 * route - where mail for a domain goes next: Postfix's transport_maps,
 * relayhost and MX routing, decided as a pure function.
 *
 * Owns: the syntax of transport values ("smtp:[host]:port", "smtp:host",
 * "local", "error:5.7.1 text", "discard:") and of next hops ("[host]:port",
 * "host:port", "host", "[ipv6]:port"), and the order in which a domain is
 * looked up: transport_maps (the domain, then ".parent" keys), else our
 * own domains go to mailbox_transport (mydestination) or virtual_transport
 * (virtual_mailbox_domains), local Maildir delivery when those are empty,
 * else default_transport: "smtp" means relayhost, or else the domain's own
 * MX records. An "error:" route with a 4.x.x status defers instead of
 * bouncing. LMTP destinations: "lmtp:unix:/path" and "lmtp:inet:IP:port"
 * ("lmtp:inet:[IPv6]:port"); names are not resolved.
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
	ROUTE_LMTP,    /* LMTP (RFC 2033) to host:port or the unix socket path host */
};

/* What a recipient's domain is to us: the choice between default_transport,
 * mailbox_transport and virtual_transport. REMOTE and MYDESTINATION are 0
 * and 1 so that a "local domain?" truth value still means the same. */
enum route_domain_class {
	ROUTE_DOMAIN_REMOTE = 0,    /* somebody else's (relay_domains included) */
	ROUTE_DOMAIN_MYDESTINATION, /* mydestination, our IP literals: mailbox_transport */
	ROUTE_DOMAIN_VIRTUAL,       /* virtual_mailbox_domains: virtual_transport */
};

#define ROUTE_UNIX_PATH_MAX 107 /* sun_path less its NUL */
#define LMTP_DEFAULT_PORT 24

struct route {
	enum route_kind kind;
	char host[ROUTE_HOST_MAX]; /* ROUTE_SMTP: a domain (mx) or a host/IP literal;
				    * ROUTE_LMTP: an IP address, or the socket path */
	unsigned port;
	bool unix_socket;          /* ROUTE_LMTP: host is a unix socket path */
	bool mx;                   /* look up MX records of host (no [] around it) */
	bool relayhost;            /* the next hop came from relayhost */
	char status[16];           /* ROUTE_ERROR: "5.7.1" */
	char text[256];            /* ROUTE_ERROR: the reason */
	char via[24];              /* "transport_maps", "relayhost", "mx", "local",
				    * "mailbox_transport", "virtual_transport" */
	char key[ROUTE_HOST_MAX + 16]; /* the destination for concurrency and backoff */
};

/* Parse a next hop: "[host]:port", "[host]", "host:port", "host", "[::1]:25".
 * mx is false when the host was bracketed. */
bool route_parse_nexthop(const char *s, unsigned default_port, char *host, size_t hostlen,
			 unsigned *port, bool *mx);

/* Parse a transport_maps value for domain; err says what is wrong. */
bool route_parse_transport(const char *value, const char *domain, unsigned default_port,
			   struct route *out, char *err, size_t errlen);

/* The route for mail to domain (lower case). cls: what the domain is to us
 * (one of our own: mailbox_transport or virtual_transport, local Maildir
 * when that is empty; transport_maps first in every case). False, with
 * err, when a table value is broken. */
bool route_for_domain(const struct config *cfg, const char *domain,
		      enum route_domain_class cls, struct route *out, char *err, size_t errlen);

/* The route for one of our own domains that transport_maps does not name:
 * value is mailbox_transport or virtual_transport ("" : local Maildir,
 * "lmtp:unix:/path", "lmtp:inet:IP:port", or any transport_maps value);
 * via names the parameter. */
bool route_for_mailbox(const char *value, const char *via, const char *domain,
		       unsigned smtp_port, struct route *out, char *err, size_t errlen);

#endif
