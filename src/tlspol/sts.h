/*
 * sts - the MTA-STS policy of a destination domain (RFC 8461 5.1): the
 * _mta-sts TXT record, the policy fetched over HTTPS when its id is new,
 * the cache (mtasts.h) when nothing better is known.
 *
 * Owns: the order of those steps per lookup, re-checking the TXT record at
 * most every recheck_s seconds per domain, and the log lines of policies
 * fetched and fetches that failed.
 * Must not: apply a policy to a delivery (the SMTP transport does), or
 * block: DNS is c-ares (dns.h), HTTPS is libcurl multi (stsfetch.h).
 */
#ifndef RG_STS_H
#define RG_STS_H

#include <stdbool.h>
#include <stddef.h>

#include "tlspol/mtasts.h"

#define STS_FETCH_TIMEOUT 60   /* seconds for one HTTPS fetch */

struct event_base;
struct dns;
struct sts;
struct sts_query;

struct sts_opts {
	const char *queue_dir;   /* the cache file lives there */
	const char *cafile;      /* trust store for the HTTPS fetch; "": the system's */
	unsigned https_port;     /* 443; another only in tests */
	unsigned recheck_s;      /* TXT look-ups per domain at most this often */
};

/* NULL with err when the cache file cannot be read or libcurl not started. */
struct sts *sts_new(struct event_base *base, struct dns *dns, const struct sts_opts *o,
		    char *err, size_t errlen);
/* p: the policy in force for the domain, or NULL (none); valid during the call. */
typedef void (*sts_fn)(void *arg, const struct sts_policy *p);
/* fn runs once, on the loop, after this returned, unless sts_cancel first. */
struct sts_query *sts_lookup(struct sts *s, const char *domain, sts_fn fn, void *arg);
void sts_cancel(struct sts_query *q);
void sts_free(struct sts *s);

#endif
