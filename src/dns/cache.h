/*
 * cache - a small cache of DNS answers, keyed by (type, name), bound by TTL.
 *
 * Owns: copies of answers (MX records, addresses, TXT records or host names,
 * or the fact that the name does not exist / has no such record) until
 * min(TTL, cap) runs out, and the entry limit: when full, the entry closest
 * to expiry goes. Used for routing (route.c) and, as a second instance, for
 * the generic lookups SPF, DKIM and DMARC make (lookup.c).
 * Must not: read the clock (the caller passes now, so tests inject time) or
 * hold temporary failures (a SERVFAIL is never remembered).
 */
#ifndef RG_DNS_CACHE_H
#define RG_DNS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/answer.h"
#include "net/net.h"

enum dns_answer_kind {
	DNS_ANS_DATA,     /* records of the type asked for */
	DNS_ANS_NODATA,   /* the name exists, but not with that type */
	DNS_ANS_NXDOMAIN, /* the name does not exist */
};

struct dns_answer {
	enum dns_answer_kind kind;
	bool cname;           /* the name was an alias */
	bool secure;          /* DNSSEC-validated (the resolver's AD bit) */
	struct dns_mx *mx;    /* type MX (route.c) */
	struct rg_ip *addrs;  /* type A / AAAA */
	char **names;         /* lookup.c: TXT records, MX or PTR host names */
	size_t n;             /* of mx, addrs or names */
	size_t n_total;       /* lookup.c: records in the answer, also those not kept */
};

void dns_answer_clear(struct dns_answer *a);
/* dns_answer_copy - a deep copy into *dst. */
void dns_answer_copy(struct dns_answer *dst, const struct dns_answer *src);

struct dns_cache;

/* max_entries >= 1; ttl_cap bounds every TTL, neg_cap those of negative answers. */
struct dns_cache *dns_cache_new(size_t max_entries, unsigned ttl_cap, unsigned neg_cap);
void dns_cache_free(struct dns_cache *c);

/* dns_cache_get - the answer for (type, name) still fresh at now, or NULL.
 * The pointer is valid until the next dns_cache_put(). name is matched
 * without regard to case. */
const struct dns_answer *dns_cache_get(struct dns_cache *c, int type, const char *name,
				       uint64_t now);

/* dns_cache_put - remember a copy of a for min(ttl, cap) seconds from now
 * (a TTL of 0 is not remembered). Replaces an entry for the same key. */
void dns_cache_put(struct dns_cache *c, int type, const char *name, const struct dns_answer *a,
		   unsigned ttl, uint64_t now);

/* dns_cache_count - live and expired entries held (for tests). */
size_t dns_cache_count(const struct dns_cache *c);

#endif
