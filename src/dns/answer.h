/*
 * answer - pure decisions on DNS answers for mail routing.
 *
 * Owns: the order of MX records (by preference, shuffled among equal ones),
 * null MX detection (RFC 7505), host name syntax, the order of a host's
 * addresses (smtp_address_preference), and reading TTLs and the SOA minimum
 * out of a raw DNS message, bounds-checked byte by byte.
 * Must not: do I/O or keep state; randomness comes from the caller.
 */
#ifndef RG_DNS_ANSWER_H
#define RG_DNS_ANSWER_H

#include <stdbool.h>
#include <stddef.h>

#include "net/net.h"

struct dns_mx {
	unsigned pref;
	char *name; /* lower case, no trailing dot; "" is the root (null MX) */
};

/* A uniform random number in [0, bound); bound >= 1. */
typedef unsigned (*dns_rand_fn)(unsigned bound);

/* dns_rand - the default: arc4random_uniform(). */
unsigned dns_rand(unsigned bound);

/* mx_order - sort by preference, then shuffle each run of equal preference. */
void mx_order(struct dns_mx *mx, size_t n, dns_rand_fn rnd);

/* mx_is_null - RFC 7505: every record names the root (normally one, "MX 0 ."). */
bool mx_is_null(const struct dns_mx *mx, size_t n);

/* dns_name_valid - a host name we will look up: LDH and '_' labels of 1..63,
 * 253 bytes at most, no trailing dot. */
bool dns_name_valid(const char *name);

/* dns_literal - "[192.0.2.1]", "[IPv6:2001:db8::1]", "[::1]" or a bare
 * address: the address, or false when s is a name. */
bool dns_literal(const char *s, struct rg_ip *ip);

/* addr_order - one host's addresses into out (at most max): the preferred
 * family first (AF_INET6, AF_INET; AF_UNSPEC picks one at random), each
 * family shuffled. Returns the count. v4/v6 are shuffled in place. */
size_t addr_order(struct rg_ip *v4, size_t n4, struct rg_ip *v6, size_t n6, int prefer,
		  dns_rand_fn rnd, struct rg_ip *out, size_t max);

/* What dns_msg_scan() found in a DNS message. */
struct dns_msg_info {
	unsigned rcode;
	unsigned answers;   /* records in the answer section */
	unsigned min_ttl;   /* smallest TTL among them */
	bool cname;         /* a CNAME among them: the name was an alias */
	bool soa;           /* an SOA in the authority section */
	unsigned neg_ttl;   /* min(SOA TTL, SOA minimum): RFC 2308 */
	bool ad;            /* the resolver validated the answer (DNSSEC AD bit) */
};

/* dns_msg_scan - walk a DNS message; false when it is malformed. */
bool dns_msg_scan(const unsigned char *msg, size_t len, struct dns_msg_info *info);

/* One TLSA record (RFC 6698): usage, selector, matching type, data. */
#define DNS_TLSA_DATA_MAX 65532 /* the RR maximum: a whole certificate (matching type 0) */
struct dns_tlsa {
	unsigned char usage, selector, mtype;
	size_t len;
	unsigned char *data; /* heap: dns_tlsa_free */
};

/* dns_tlsa_parse - the TLSA records of the answer section into out (at most
 * max); *skipped counts those too short to hold and those past max. Returns
 * the count; 0 with *skipped 0 also for a malformed message (check
 * dns_msg_scan). Each kept record's data is on the heap: dns_tlsa_free. */
size_t dns_tlsa_parse(const unsigned char *msg, size_t len, struct dns_tlsa *out, size_t max,
		      size_t *skipped);

/* dns_tlsa_free - the data of n records from dns_tlsa_parse (not the array). */
void dns_tlsa_free(struct dns_tlsa *t, size_t n);

/* DNS_TLSA_BOUND - enough records for every TLSA record of a len-byte answer
 * (each takes at least 15 bytes: a 1-byte name, 10 bytes, 4 of rdata). */
#define DNS_TLSA_BOUND(len) ((len) / 15 + 1)

/* dns_txt_parse - each TXT record of the answer section, its strings joined,
 * into out (at most max; a record of DNS_TXT_LEN bytes or more, or with
 * control bytes, is skipped and counted). Returns the count. */
#define DNS_TXT_LEN 1024
size_t dns_txt_parse(const unsigned char *msg, size_t len, char (*out)[DNS_TXT_LEN], size_t max,
		     size_t *skipped);

#endif
