/*
 * dns - asynchronous DNS on the event loop (c-ares), never blocking.
 *
 * Owns: the c-ares channel and its sockets as libevent events, and the
 * client-name lookup Postfix calls "verified": PTR of the client address,
 * then A/AAAA of that name must lead back to the same address; otherwise
 * the client is "unknown". And the forward lookup of a host name to one
 * address (A/AAAA), for clients such as relayguard probe. And mail routing
 * (route.c): where mail for a domain goes (MX, else the domain's own A/AAAA),
 * through a small TTL-bound cache (cache.c) of the answers, with whether a
 * validating resolver vouched for them (the AD bit, for DANE); and the TLSA
 * (DANE) and TXT (MTA-STS, TLS-RPT) records outbound TLS needs. And the
 * generic lookups SPF, DKIM and DMARC make (lookup.c), cached the same way
 * in a cache of their own.
 * Must not: fall back to blocking resolver calls, or decide what a routing
 * failure means for a message (the caller bounces or defers).
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

/* ---- mail routing (route.c) ---- */

#define DNS_ROUTE_MAX_HOSTS 10 /* MX hosts used, best first */
#define DNS_ROUTE_MAX_ADDRS 8  /* addresses per host */

enum dns_route_status {
	DNS_ROUTE_OK,         /* at least one host has an address */
	DNS_ROUTE_NXDOMAIN,   /* the domain (or a direct host) does not exist: 5.1.2 */
	DNS_ROUTE_NULL_MX,    /* RFC 7505 "MX 0 .": the domain takes no mail: 5.1.10 */
	DNS_ROUTE_NO_ADDRESS, /* no host has an address, nothing was temporary: 5.4.4 */
	DNS_ROUTE_TEMP,       /* SERVFAIL, timeout, refusal: defer (4.4.3), never bounce */
};

struct dns_route_host {
	char *name;         /* lower case; the domain itself when implicit_mx */
	unsigned pref;      /* MX preference (0 for implicit MX and direct hosts) */
	struct rg_ip *addrs; /* in the order to try (smtp_address_preference) */
	size_t n_addrs;     /* 0: skip this host */
	bool temp_failed;   /* one of its address lookups failed temporarily */
	bool secure;        /* every address answer was DNSSEC-validated (RFC 7672 2.2.2) */
};

struct dns_route {
	enum dns_route_status status;
	char error[256];    /* for the log and the DSN when status != OK */
	bool implicit_mx;   /* no MX records: the domain itself (RFC 5321 5.1) */
	bool secure;        /* the MX answer (or its absence) was DNSSEC-validated; true
			     * for a direct host, whose own answers decide (host.secure) */
	struct dns_route_host *hosts; /* by preference, shuffled among equal ones */
	size_t n_hosts;     /* also listed when no address was found, for the log */
};

/* r and everything it points to is valid only during the call. */
typedef void (*dns_route_fn)(void *arg, const struct dns_route *r);

/* Where mail for domain goes: its MX hosts by preference, or with no MX
 * the domain itself, each with its addresses. family says which addresses
 * to look up (inet_protocols): AF_INET, AF_INET6 or AF_UNSPEC (both);
 * prefer orders them (smtp_address_preference): AF_INET6, AF_INET, or
 * AF_UNSPEC (either family first, at random). A domain literal ("[192.0.2.1]",
 * "[IPv6:::1]") is its own single host. The callback runs exactly once, always
 * on the loop after this returned (never inside it), unless dns_cancel() comes
 * first; the handle returned is never NULL. Looking for "myself" among the
 * host names (5.4.6, mail loops back) is the caller's business. */
struct dns_query *dns_mx_route(struct dns *d, const char *domain, int family, int prefer,
			       dns_route_fn fn, void *arg);

/* The same for a host given directly ([host] in a nexthop, relayhost): no MX
 * lookup; "[name]" is taken as name; an IP address, bracketed or not, needs
 * no lookup at all. */
struct dns_query *dns_host_route(struct dns *d, const char *host, int family, int prefer,
				 dns_route_fn fn, void *arg);

/* ---- DANE (RFC 7672): TLSA records ---- */

enum dns_tlsa_status {
	DNS_TLSA_FOUND, /* records is the answer */
	DNS_TLSA_NONE,  /* no TLSA records: NODATA or NXDOMAIN */
	DNS_TLSA_TEMP,  /* SERVFAIL (bogus, with a validating resolver), timeout: defer */
};

struct dns_tlsa;        /* answer.h */
struct dns_tlsa_result {
	enum dns_tlsa_status status;
	bool secure;                    /* the answer carried the AD bit */
	const struct dns_tlsa *records; /* FOUND: n of them */
	size_t n, n_skipped;            /* skipped: malformed (too short) */
	char error[256];                /* TEMP: why */
};

typedef void (*dns_tlsa_fn)(void *arg, const struct dns_tlsa_result *r);

/* The TLSA records of _port._tcp.host, with whether the resolver validated
 * them. Same contract as dns_mx_route (the callback always runs on the loop,
 * after this returned). Not cached here: the validating resolver caches. */
struct dns_query *dns_tlsa_lookup(struct dns *d, const char *host, unsigned port,
				  dns_tlsa_fn fn, void *arg);

/* ---- MTA-STS (RFC 8461): TXT records ---- */

#define DNS_TXT_MAX 4 /* records used from one answer */

enum dns_txt_status { DNS_TXT_FOUND, DNS_TXT_NONE, DNS_TXT_TEMP };

struct dns_txt_result {
	enum dns_txt_status status;
	const char *txt[DNS_TXT_MAX]; /* FOUND: n records, each one's strings joined */
	size_t n;
	char error[256];              /* TEMP: why */
};

typedef void (*dns_txt_fn)(void *arg, const struct dns_txt_result *r);

/* The TXT records of name; the contract of dns_mx_route. Only their absence
 * (NXDOMAIN, NODATA) is cached, for its negative TTL. */
struct dns_query *dns_txt_lookup(struct dns *d, const char *name, dns_txt_fn fn, void *arg);

/* dns_route_status_name - "ok", "nxdomain", "null-mx", "no-address", "temp". */
const char *dns_route_status_name(enum dns_route_status st);

/* ---- generic lookups (lookup.c): TXT, A, AAAA, MX, PTR, for SPF, DKIM, DMARC ---- */

enum dns_lookup_type { DNS_LOOKUP_TXT, DNS_LOOKUP_A, DNS_LOOKUP_AAAA, DNS_LOOKUP_MX,
		       DNS_LOOKUP_PTR };

enum dns_lookup_status {
	DNS_LOOKUP_OK,       /* n records (n may be 0 when none was readable) */
	DNS_LOOKUP_NODATA,   /* the name exists, without records of that type */
	DNS_LOOKUP_NXDOMAIN, /* the name does not exist */
	DNS_LOOKUP_SERVFAIL, /* SERVFAIL, refused, a garbled reply: try later */
	DNS_LOOKUP_TIMEOUT,  /* no server answered */
};

#define DNS_LOOKUP_MAX 32 /* A, AAAA, MX, PTR records kept from one answer (TXT: 128) */

struct dns_lookup_result {
	enum dns_lookup_status status;
	const char *const *names;  /* TXT (each record's strings joined), MX hosts, PTR names */
	const struct rg_ip *addrs; /* A, AAAA */
	size_t n;
	size_t n_total;            /* records of the type in the answer (MX: all of them) */
	char error[256];           /* SERVFAIL, TIMEOUT: why */
};

/* r is valid only during the call. */
typedef void (*dns_lookup_fn)(void *arg, const struct dns_lookup_result *r);

/* dns_lookup - one question, the reply code kept apart. Answers and their
 * absence (NXDOMAIN, NODATA) are cached for their TTL (at most 5 and 1
 * minutes); SERVFAIL and timeouts never are. The callback runs exactly once, on the loop, never inside this call, unless
 * dns_cancel() comes first; the handle is never NULL. TXT records with
 * control bytes or of DNS_TXT_LEN bytes or more are left out (counted in
 * n_total). The callback must not call dns_free(). */
struct dns_query *dns_lookup(struct dns *d, enum dns_lookup_type type, const char *name,
			     dns_lookup_fn fn, void *arg);

#endif
