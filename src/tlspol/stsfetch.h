/*
 * stsfetch - HTTPS GETs of MTA-STS policy files with libcurl's multi
 * interface, driven by the event loop (libevent).
 *
 * Owns: the curl multi handle, one libevent event per socket curl asks to
 * watch and one timer, and each transfer: https only, no redirects (RFC 8461
 * 3.3), certificate verification against cafile (or the system store), at
 * most STS_POLICY_MAX bytes, a whole-transfer timeout, and the address given
 * by the caller (CURLOPT_RESOLVE: our own DNS, never libcurl's resolver).
 * Must not: block (no easy_perform, no curl resolver), or parse policies.
 */
#ifndef RG_STSFETCH_H
#define RG_STSFETCH_H

#include <stdbool.h>
#include <stddef.h>

#include "net/net.h"

struct event_base;
struct sts_fetcher;
struct sts_fetch;

/* ok: HTTP 200 with a text/plain body (body, len: valid during the call);
 * else error says why. */
typedef void (*sts_fetch_fn)(void *arg, bool ok, const char *body, size_t len,
			     const char *error);

/* cafile "" or NULL: the system store. port: 443 (tests use another). */
struct sts_fetcher *sts_fetcher_new(struct event_base *base, const char *cafile, unsigned port,
				    unsigned timeout_s, char *err, size_t errlen);
/* GET https://host:port/.well-known/mta-sts.txt from addr. fn runs once, on
 * the loop, after this returned, unless sts_fetch_cancel comes first. */
struct sts_fetch *sts_fetch_start(struct sts_fetcher *f, const char *host,
				  const struct rg_ip *addr, sts_fetch_fn fn, void *arg);
void sts_fetch_cancel(struct sts_fetch *q);
/* Abort every transfer (no callbacks) and free. NULL is fine. */
void sts_fetcher_free(struct sts_fetcher *f);

#endif
