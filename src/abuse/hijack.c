/*
 * hijack.c - the hijacked-account detector (see hijack.h).
 *
 * DESCRIPTION
 *	A login's known domains are 64-bit FNV-1a hashes of the lower-cased
 *	domain in a ring: looked up by a linear scan (a few hundred words,
 *	cheaper than the reply line), the oldest overwritten when full.
 *	Logins sit in a hash table and on a last-seen list, like rate.c.
 */
#include "abuse/hijack.h"
#include "abuse/rate.h"
#include "util/lru.h"
#include "util/util.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVICT_SCAN 8

struct login_entry {
	char *login;
	uint64_t *known;            /* ring of domain hashes */
	size_t n_known, next_slot;
	struct rate_window new_domains, messages;
	time_t suspended_until;     /* 0: not suspended */
	char why[HIJACK_WHY_MAX];
	struct login_entry *next;   /* bucket chain */
	struct lru_node lru;        /* on the last-seen list */
};

struct hijack {
	struct hijack_limits lim;
	size_t n, n_buckets;
	unsigned long learnt;       /* domains learnt so far: a change to save */
	struct lru lru;             /* last seen first */
	struct login_entry **b;
};

static uint64_t fnv64(const char *s, bool fold)
{
	uint64_t h = 14695981039346656037ull;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		h = (h ^ (fold ? (unsigned char)tolower(*p) : *p)) * 1099511628211ull;
	return h;
}

struct hijack *hijack_new(const struct hijack_limits *lim)
{
	struct hijack *h = xcalloc(1, sizeof(*h));
	h->lim = *lim;
	h->lim.max_logins = lim->max_logins ? lim->max_logins : 1;
	h->lim.known_domains = lim->known_domains ? lim->known_domains : 1;
	h->n_buckets = h->lim.max_logins / 4 + 1;
	h->b = xcalloc(h->n_buckets, sizeof(*h->b));
	return h;
}

static void entry_free(struct login_entry *e)
{
	free(e->login);
	free(e->known);
	free(e);
}

void hijack_free(struct hijack *h)
{
	if (h == NULL)
		return;
	struct login_entry *e;
	while ((e = lru_entry(h->lru.newest, struct login_entry, lru)) != NULL) {
		lru_unlink(&h->lru, &e->lru);
		entry_free(e);
	}
	free(h->b);
	free(h);
}

static struct login_entry *find(const struct hijack *h, const char *login)
{
	for (struct login_entry *e = h->b[fnv64(login, false) % h->n_buckets]; e; e = e->next)
		if (strcmp(e->login, login) == 0)
			return e;
	return NULL;
}

static void drop(struct hijack *h, struct login_entry *e)
{
	struct login_entry **pp = &h->b[fnv64(e->login, false) % h->n_buckets];
	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	lru_unlink(&h->lru, &e->lru);
	entry_free(e);
	h->n--;
}

/* make_room - push out a login: the oldest not suspended of the EVICT_SCAN
 * least recently seen, else the oldest of all. */
static void make_room(struct hijack *h, time_t now)
{
	struct login_entry *oldest = lru_entry(h->lru.oldest, struct login_entry, lru);
	struct login_entry *victim = oldest;
	unsigned seen = 0;
	for (struct login_entry *e = oldest; e && seen < EVICT_SCAN;
	     e = lru_entry(e->lru.newer, struct login_entry, lru), seen++) {
		if (e->suspended_until <= now) {
			victim = e;
			break;
		}
	}
	drop(h, victim);
}

/* entry - LOGIN's entry (made if need be), now the most recently seen. */
static struct login_entry *entry(struct hijack *h, const char *login, time_t now)
{
	struct login_entry *e = find(h, login);
	if (e != NULL) {
		lru_touch(&h->lru, &e->lru);
		return e;
	}
	if (h->n >= h->lim.max_logins)
		make_room(h, now);
	e = xcalloc(1, sizeof(*e));
	e->login = xstrdup(login);
	size_t b = fnv64(login, false) % h->n_buckets;
	e->next = h->b[b];
	h->b[b] = e;
	lru_touch(&h->lru, &e->lru);
	h->n++;
	return e;
}

static bool known(const struct login_entry *e, uint64_t d)
{
	for (size_t i = 0; i < e->n_known; i++)
		if (e->known[i] == d)
			return true;
	return false;
}

static void learn(struct hijack *h, struct login_entry *e, uint64_t d)
{
	if (known(e, d))
		return;
	h->learnt++;
	if (e->known == NULL)
		e->known = xcalloc(h->lim.known_domains, sizeof(uint64_t));
	e->known[e->next_slot] = d;
	e->next_slot = (e->next_slot + 1) % h->lim.known_domains;
	if (e->n_known < h->lim.known_domains)
		e->n_known++;
}

/* count_new - distinct domains of the message the login has not written to. */
static unsigned count_new(const struct login_entry *e, const uint64_t *d, size_t n,
			  size_t *rcpts_new)
{
	unsigned distinct = 0;
	*rcpts_new = 0;
	for (size_t i = 0; i < n; i++) {
		if (known(e, d[i]))
			continue;
		(*rcpts_new)++;
		bool repeat = false;
		for (size_t k = 0; k < i && !repeat; k++)
			repeat = d[k] == d[i];
		distinct += !repeat;
	}
	return distinct;
}

/* trips - does this message push E over a threshold? WHY says which. */
static bool trips(const struct hijack *h, struct login_entry *e, unsigned fresh,
		  size_t n, size_t rcpts_new, time_t now, char *why, size_t len)
{
	const struct hijack_limits *l = &h->lim;
	unsigned domains = rate_window_count(&e->new_domains, l->window, now) + fresh;
	/* only messages to at least one new domain count: a newsletter to known ones does not */
	unsigned messages = rate_window_count(&e->messages, l->window, now) + (fresh > 0);
	if (l->new_domains && domains >= l->new_domains)
		snprintf(why, len, "%u new recipient domains in %us", domains, l->window);
	else if (l->messages && fresh > 0 && messages >= l->messages)
		snprintf(why, len, "%u messages in %us", messages, l->window);
	else if (l->wide_message && n >= l->wide_message && 2 * rcpts_new >= n)
		snprintf(why, len, "one message to %zu recipients, %zu in new domains", n,
			 rcpts_new);
	else
		return false;
	return true;
}

bool hijack_message(struct hijack *h, const char *login, const char *const *domains, size_t n,
		    time_t now, char *why, size_t len)
{
	struct login_entry *e = entry(h, login, now);
	if (e->suspended_until > now) {
		snprintf(why, len, "%s", e->why);
		return true;
	}
	uint64_t *d = xcalloc(n + 1, sizeof(uint64_t));
	for (size_t i = 0; i < n; i++)
		d[i] = fnv64(domains[i], true);
	size_t rcpts_new;
	unsigned fresh = count_new(e, d, n, &rcpts_new);
	bool tripped = trips(h, e, fresh, n, rcpts_new, now, e->why, sizeof(e->why));
	rate_window_add(&e->new_domains, h->lim.window, fresh, now);
	if (fresh > 0)
		rate_window_add(&e->messages, h->lim.window, 1, now);
	if (tripped) {
		e->suspended_until = now + (time_t)h->lim.suspend_time;
		snprintf(why, len, "%s", e->why);
	} else {
		for (size_t i = 0; i < n; i++)
			learn(h, e, d[i]);
	}
	free(d);
	return tripped;
}

size_t hijack_unknown(const struct hijack *h, const char *login, const char *const *domains,
		      size_t n, size_t *out)
{
	const struct login_entry *e = find(h, login);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t d = fnv64(domains[i], true);
		bool repeat = false;
		for (size_t j = 0; j < k && !repeat; j++)
			repeat = fnv64(domains[out[j]], true) == d;
		if (!repeat && (e == NULL || !known(e, d)))
			out[k++] = i;
	}
	return k;
}

bool hijack_suspended(struct hijack *h, const char *login, time_t now, char *why, size_t len,
		      time_t *until)
{
	struct login_entry *e = find(h, login);
	if (e == NULL || e->suspended_until <= now)
		return false;
	if (why)
		snprintf(why, len, "%s", e->why);
	if (until)
		*until = e->suspended_until;
	return true;
}

void hijack_suspend(struct hijack *h, const char *login, time_t now, time_t until,
		    const char *why)
{
	struct login_entry *e = entry(h, login, now);
	if (until <= e->suspended_until)
		return;
	e->suspended_until = until;
	snprintf(e->why, sizeof(e->why), "%s", why);
}

bool hijack_clear(struct hijack *h, const char *login)
{
	struct login_entry *e = find(h, login);
	if (e == NULL)
		return false;
	bool was = e->suspended_until != 0;
	e->suspended_until = 0;
	e->why[0] = '\0';
	e->new_domains = (struct rate_window){0};
	e->messages = (struct rate_window){0};
	return was;
}

size_t hijack_each(struct hijack *h, time_t now, hijack_each_fn *fn, void *arg)
{
	size_t n = 0;
	for (const struct login_entry *e = lru_entry(h->lru.newest, struct login_entry, lru); e;
	     e = lru_entry(e->lru.older, struct login_entry, lru)) {
		if (e->suspended_until <= now)
			continue;
		fn(e->login, e->suspended_until, e->why, arg);
		n++;
	}
	return n;
}

void hijack_learn(struct hijack *h, const char *login, const char *const *domains, size_t n,
		  time_t now)
{
	struct login_entry *e = entry(h, login, now);
	for (size_t i = 0; i < n; i++)
		learn(h, e, fnv64(domains[i], true));
}

void hijack_restore(struct hijack *h, const char *login, const uint64_t *known_hashes, size_t n,
		    time_t now)
{
	struct login_entry *e = entry(h, login, now);
	for (size_t i = 0; i < n; i++)
		learn(h, e, known_hashes[i]);
}

unsigned long hijack_learnt(const struct hijack *h)
{
	return h->learnt;
}

/* in_order - E's known hashes, oldest first, into OUT (room for known_domains). */
static size_t in_order(const struct hijack *h, const struct login_entry *e, uint64_t *out)
{
	if (e->n_known == 0) /* e->known may be NULL: memcpy must not see it */
		return 0;
	bool wrapped = e->n_known == h->lim.known_domains;
	size_t first = wrapped ? e->next_slot : 0, tail = e->n_known - first;
	memcpy(out, e->known + first, tail * sizeof(*out)); /* oldest .. end of the ring */
	memcpy(out + tail, e->known, first * sizeof(*out)); /* then its start */
	return e->n_known;
}

/* cut_of - the oldest of the MAX most recently seen logins that know a
 * domain (NULL: there are no more than MAX of them). */
static const struct login_entry *cut_of(const struct hijack *h, size_t max)
{
	size_t k = 0;
	for (const struct login_entry *e = lru_entry(h->lru.newest, struct login_entry, lru); e;
	     e = lru_entry(e->lru.older, struct login_entry, lru))
		if (e->n_known > 0 && ++k == max)
			return e;
	return NULL;
}

size_t hijack_each_login(const struct hijack *h, time_t now, size_t max_known,
			 hijack_login_fn *fn, void *arg)
{
	uint64_t *scratch = xcalloc(h->lim.known_domains, sizeof(uint64_t));
	const struct login_entry *cut = max_known ? cut_of(h, max_known) : NULL;
	bool before_cut = cut != NULL;
	size_t n = 0;
	/* oldest first: restored in this order, the last-seen list comes back the same */
	for (const struct login_entry *e = lru_entry(h->lru.oldest, struct login_entry, lru); e;
	     e = lru_entry(e->lru.newer, struct login_entry, lru)) {
		bool susp = e->suspended_until > now;
		before_cut = before_cut && e != cut;
		if ((!susp && e->n_known == 0) || (!susp && before_cut))
			continue;
		/* older than the cut: kept for its suspension alone, or every
		 * suspended login's list would be copied (40 MB, not MAX lists) */
		fn(e->login, susp ? e->suspended_until : 0, susp ? e->why : "", scratch,
		   before_cut ? 0 : in_order(h, e, scratch), arg);
		n++;
	}
	free(scratch);
	return n;
}
