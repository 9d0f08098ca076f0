/*
 * address - RFC 5321 paths: parse once, resolve once.
 *
 * Owns: the syntax of MAIL FROM / RCPT TO paths (angle brackets, source
 * routes, quoted and dot-string local parts, domains and address literals,
 * the 64/255/256 octet limits) and the one decision of where an address
 * really goes: local, a relay domain, remote, or nowhere (invalid). Every
 * form of sender-specified routing (source routes, '%', '!', '@' inside the
 * local part) is undone here and flagged as routed, the way Postfix's
 * trivial-rewrite does, so no other module ever re-parses an address.
 * Must not: look at who the client is; that is the policy's job.
 */
#ifndef RG_ADDRESS_H
#define RG_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "net/net.h"

#define ADDR_LOCAL_MAX 64
#define ADDR_DOMAIN_MAX 255
#define ADDR_PATH_MAX 256

/* Kinds of sender-specified routing found in an address. */
enum {
	ROUTE_SOURCE = 1 << 0,  /* <@relay:user@domain> */
	ROUTE_AT = 1 << 1,      /* "user@other"@domain, user@other@domain */
	ROUTE_PERCENT = 1 << 2, /* user%other@domain */
	ROUTE_BANG = 1 << 3,    /* other!user@domain */
};

enum addr_error {
	ADDR_OK,
	ADDR_ERR_SYNTAX,    /* not a path at all */
	ADDR_ERR_TOO_LONG,  /* over an RFC 5321 size limit */
	ADDR_ERR_NON_ASCII, /* needs SMTPUTF8, which we do not offer */
};

/* A parsed path. Strings are NUL-terminated and bounded by the RFC limits. */
struct address {
	bool null;                          /* <> */
	bool quoted;                        /* local part was a quoted string */
	bool literal;                       /* domain is an address literal */
	bool trailing_dot;                  /* domain ended in '.' (removed) */
	unsigned routing;                   /* ROUTE_* seen in the path */
	char local[ADDR_LOCAL_MAX + 1];     /* decoded: quotes and escapes removed */
	char domain[ADDR_DOMAIN_MAX + 1];   /* lower case; "" when unqualified */
	struct rg_ip literal_ip;            /* when literal */
	char text[ADDR_PATH_MAX + 1];       /* the path as sent, without <>, for logs */
};

/*
 * Parse the argument of MAIL FROM: / RCPT TO: (what follows the colon).
 * On success *params points at the ESMTP parameters after '>' (maybe "").
 * On failure err says what is wrong in words a human understands.
 */
enum addr_error address_parse(const char *arg, struct address *a, const char **params,
			      char *err, size_t errlen);

enum addr_class {
	ADDR_CLASS_LOCAL,   /* we are the final destination (mydestination, our IP,
			       virtual_alias_domains, virtual_mailbox_domains) */
	ADDR_CLASS_RELAY,   /* relay_domains: we accept and forward */
	ADDR_CLASS_REMOTE,  /* somebody else's domain */
	ADDR_CLASS_INVALID, /* routing that leads nowhere, e.g. "user%"@domain */
};

/* What the server is the destination for; built from the configuration. */
struct addr_domains {
	const char *const *mydestination; /* NULL-terminated, lower case */
	const char *const *relay_domains; /* ".example.com" matches subdomains */
	const struct rg_ip *local_ips;    /* our own addresses, for [literal]s */
	size_t n_local_ips;
	const char *myorigin;             /* appended to unqualified addresses */
	/* hosted domains (address/expand.h): ours too, so routing in their
	 * addresses is undone and flagged like in mydestination's */
	const char *const *virtual_alias_domains;
	const char *const *virtual_mailbox_domains;
};

/* Where an address really goes, after all routing has been undone. */
struct addr_resolution {
	enum addr_class cls;
	bool routed;                         /* sender-specified routing was used */
	bool unqualified;                    /* no domain was given */
	char local[ADDR_LOCAL_MAX + 1];      /* final local part, lower case */
	char domain[ADDR_DOMAIN_MAX + 1];    /* final domain, lower case */
};

void address_resolve(const struct address *a, const struct addr_domains *d,
		     struct addr_resolution *r);

/* Is domain listed (exact, or ".parent" for subdomains)? */
bool address_domain_listed(const char *domain, const char *const *list);

const char *address_class_name(enum addr_class cls);
/* A short name of the routing flags ("source-route,percent") or "none". */
void address_routing_names(unsigned routing, char *buf, size_t len);

#endif
