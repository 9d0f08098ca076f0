/*
 * mtasts - MTA-STS (RFC 8461): the pure parts, and the policy cache.
 *
 * Owns: the syntax of the _mta-sts TXT record (3.1) and of the policy file
 * (3.2), MX pattern matching (4.1), and the cache of policies by domain
 * (id, mode, mx, max_age, when fetched) kept in queue_directory/mta-sts
 * across restarts (written by statefile.c).
 * Must not: do DNS or HTTPS (sts.c and stsfetch.c do), or decide what a
 * delivery does (the SMTP transport applies the policy).
 */
#ifndef RG_MTASTS_H
#define RG_MTASTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/util.h"

#define STS_CACHE_FILE "mta-sts"
#define STS_ID_MAX 32
#define STS_MX_MAX 16
#define STS_MAX_AGE_MAX 31557600u /* RFC 8461 3.2: about a year */
#define STS_POLICY_MAX 65536      /* bytes of a policy file we read */
#define STS_CACHE_MAX 100000 /* when full: an expired policy goes, else the oldest */

struct event_base;

enum sts_mode { STS_NONE, STS_TESTING, STS_ENFORCE };

struct sts_policy {
	char domain[256];
	char id[STS_ID_MAX + 1];
	enum sts_mode mode;
	uint64_t max_age;
	char mx[STS_MX_MAX][256]; /* "mail.example.com" or "*.example.com", lower case */
	size_t n_mx;
	time_t fetched;           /* valid until fetched + max_age */
	time_t checked;           /* the TXT record was last seen with this id */
};

const char *sts_mode_name(enum sts_mode m);
/* The id of a "v=STSv1; id=...;" TXT record; false when it is not one. */
bool sts_parse_txt(const char *txt, char *id, size_t idlen);
/* A policy file (CRLF or LF lines, "key: value"); false with err. */
bool sts_parse_policy(const char *text, size_t len, struct sts_policy *p, char *err,
		      size_t errlen);
/* Does host match one of the policy's mx patterns (4.1)? */
bool sts_mx_match(const struct sts_policy *p, const char *host);
/* "mail.example.com *.example.net" into out. */
void sts_mx_list(const struct sts_policy *p, char *out, size_t len);
/* One cache line: "domain id mode max_age fetched checked mx..." and back. */
void sts_format_line(const struct sts_policy *p, struct strbuf *out);
bool sts_parse_line(const char *line, struct sts_policy *p);

/* ---- the cache ---- */
struct sts_cache;
/* Read queue_dir/mta-sts (missing: empty); base NULL: writes only at free. */
struct sts_cache *sts_cache_open(struct event_base *base, const char *queue_dir, char *err,
				 size_t errlen);
/* The policy of domain still valid at now, or NULL. Valid until the next change. */
struct sts_policy *sts_cache_get(struct sts_cache *c, const char *domain, time_t now);
/* Store a copy of p (replacing the domain's policy); written in the background. */
void sts_cache_put(struct sts_cache *c, const struct sts_policy *p);
/* p->checked changed (kept in memory; saved with the next write). */
void sts_cache_touch(struct sts_cache *c, struct sts_policy *p, time_t now);
void sts_cache_free(struct sts_cache *c);
/* At most max policies from now on (default STS_CACHE_MAX; tests use few). */
void sts_cache_set_max(struct sts_cache *c, size_t max);

#endif
