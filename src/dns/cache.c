/*
 * cache.c - a bounded TTL cache of DNS answers (see cache.h).
 *
 * A flat array searched linearly: a few hundred entries, consulted once per
 * delivery attempt or message, cost less than a DNS round trip by orders of
 * magnitude and leave nothing to get wrong. Each entry keeps a hash of its
 * name (folded to lower case) so that the search compares integers.
 */
#include "dns/cache.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

struct entry {
	int type;
	uint32_t hash; /* of the name, any case */
	char *name; /* NULL: a free slot */
	uint64_t expires;
	struct dns_answer ans;
};

struct dns_cache {
	struct entry *e;
	size_t max;
	unsigned ttl_cap, neg_cap;
};

void dns_answer_clear(struct dns_answer *a)
{
	for (size_t i = 0; a->mx != NULL && i < a->n; i++)
		free(a->mx[i].name);
	for (size_t i = 0; a->names != NULL && i < a->n; i++)
		free(a->names[i]);
	free(a->mx);
	free(a->addrs);
	free(a->names);
	memset(a, 0, sizeof(*a));
}

void dns_answer_copy(struct dns_answer *dst, const struct dns_answer *src)
{
	*dst = *src;
	dst->mx = NULL;
	dst->addrs = NULL;
	dst->names = NULL;
	if (src->mx != NULL) {
		dst->mx = xcalloc(src->n ? src->n : 1, sizeof(*dst->mx));
		for (size_t i = 0; i < src->n; i++)
			dst->mx[i] = (struct dns_mx){src->mx[i].pref, xstrdup(src->mx[i].name)};
	}
	if (src->addrs != NULL) {
		dst->addrs = xcalloc(src->n ? src->n : 1, sizeof(*dst->addrs));
		memcpy(dst->addrs, src->addrs, src->n * sizeof(*dst->addrs));
	}
	if (src->names != NULL) {
		dst->names = xcalloc(src->n ? src->n : 1, sizeof(*dst->names));
		for (size_t i = 0; i < src->n; i++)
			dst->names[i] = xstrdup(src->names[i]);
	}
}

struct dns_cache *dns_cache_new(size_t max_entries, unsigned ttl_cap, unsigned neg_cap)
{
	struct dns_cache *c = xcalloc(1, sizeof(*c));
	c->max = max_entries ? max_entries : 1;
	c->e = xcalloc(c->max, sizeof(*c->e));
	c->ttl_cap = ttl_cap;
	c->neg_cap = neg_cap;
	return c;
}

static void entry_clear(struct entry *e)
{
	free(e->name);
	dns_answer_clear(&e->ans);
	memset(e, 0, sizeof(*e));
}

void dns_cache_free(struct dns_cache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->max; i++)
		entry_clear(&c->e[i]);
	free(c->e);
	free(c);
}

/* name_hash - FNV-1a of the name folded to lower case (ASCII). */
static uint32_t name_hash(const char *name)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ (uint32_t)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p)) * 16777619u;
	return h;
}

static struct entry *find(struct dns_cache *c, int type, const char *name)
{
	uint32_t h = name_hash(name);
	for (size_t i = 0; i < c->max; i++)
		if (c->e[i].name != NULL && c->e[i].hash == h && c->e[i].type == type &&
		    rg_strcasecmp(c->e[i].name, name) == 0)
			return &c->e[i];
	return NULL;
}

const struct dns_answer *dns_cache_get(struct dns_cache *c, int type, const char *name,
				       uint64_t now)
{
	struct entry *e = find(c, type, name);
	if (e == NULL)
		return NULL;
	if (now >= e->expires) {
		entry_clear(e);
		return NULL;
	}
	return &e->ans;
}

/* victim - a free slot, else an expired one, else the one expiring first. */
static struct entry *victim(struct dns_cache *c, uint64_t now)
{
	struct entry *best = &c->e[0];
	for (size_t i = 0; i < c->max; i++) {
		struct entry *e = &c->e[i];
		if (e->name == NULL || now >= e->expires)
			return e;
		if (e->expires < best->expires)
			best = e;
	}
	return best;
}

void dns_cache_put(struct dns_cache *c, int type, const char *name, const struct dns_answer *a,
		   unsigned ttl, uint64_t now)
{
	unsigned cap = a->kind == DNS_ANS_DATA ? c->ttl_cap : c->neg_cap;
	if (ttl > cap)
		ttl = cap;
	if (ttl == 0)
		return;
	struct entry *e = find(c, type, name);
	if (e == NULL)
		e = victim(c, now);
	entry_clear(e);
	e->type = type;
	e->hash = name_hash(name);
	e->name = xstrdup(name);
	e->expires = now + ttl;
	dns_answer_copy(&e->ans, a);
}

size_t dns_cache_count(const struct dns_cache *c)
{
	size_t n = 0;
	for (size_t i = 0; i < c->max; i++)
		n += c->e[i].name != NULL;
	return n;
}
