/*
 * rate.c - sliding-window counters per key (see rate.h).
 *
 * DESCRIPTION
 *	An entry's rate_window keeps the start of its current fixed window (a
 *	multiple of the window length), the events counted in it (cur) and in
 *	the window before (prev). At time t inside the current window the estimate is
 *	cur + prev * (window - (t - start)) / window, rounded up: a client is
 *	never under-counted by rounding. Entries sit in a hash table and on a
 *	list ordered by when they were last seen, for LRU eviction.
 */
#include "abuse/rate.h"
#include "util/lru.h"
#include "util/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct rate_entry {
	struct rate_window w;
	struct rate_entry *next;            /* bucket chain */
	struct lru_node lru;                /* on the last-seen list */
	char key[];
};

struct rate {
	unsigned window;
	size_t n, max, n_buckets;
	unsigned long evictions;
	struct lru lru;                     /* last seen first */
	struct rate_entry **b;
};

/* key_hash - FNV-1a: keys are our own text; the table is bounded anyway. */
static size_t key_hash(const struct rate *r, const char *key)
{
	uint32_t h = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % r->n_buckets;
}

struct rate *rate_new(unsigned window, size_t max_entries)
{
	struct rate *r = xcalloc(1, sizeof(*r));
	r->window = window ? window : 1;
	r->max = max_entries ? max_entries : 1;
	r->n_buckets = r->max / 4 + 1;
	r->b = xcalloc(r->n_buckets, sizeof(*r->b));
	return r;
}

void rate_free(struct rate *r)
{
	if (r == NULL)
		return;
	struct rate_entry *e;
	while ((e = lru_entry(r->lru.newest, struct rate_entry, lru)) != NULL) {
		lru_unlink(&r->lru, &e->lru);
		free(e);
	}
	free(r->b);
	free(r);
}

static struct rate_entry *find(const struct rate *r, const char *key, size_t h)
{
	for (struct rate_entry *e = r->b[h]; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static void drop(struct rate *r, struct rate_entry *e)
{
	struct rate_entry **pp = &r->b[key_hash(r, e->key)];
	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	lru_unlink(&r->lru, &e->lru);
	free(e);
	r->n--;
}

/* entry - KEY's entry (made, evicting the least recently seen if full), now newest. */
static struct rate_entry *entry(struct rate *r, const char *key)
{
	char cut[RATE_KEY_MAX + 1];
	rg_strlcpy(cut, key, sizeof(cut));
	size_t h = key_hash(r, cut);
	struct rate_entry *e = find(r, cut, h);
	if (e != NULL) {
		lru_touch(&r->lru, &e->lru);
		return e;
	}
	if (r->n >= r->max) {
		drop(r, lru_entry(r->lru.oldest, struct rate_entry, lru));
		r->evictions++;
	}
	size_t len = strlen(cut) + 1;
	e = xcalloc(1, sizeof(*e) + len);
	memcpy(e->key, cut, len);
	e->next = r->b[h];
	r->b[h] = e;
	lru_touch(&r->lru, &e->lru);
	r->n++;
	return e;
}

/* advance - move W's fixed windows forward to the one NOW is in. */
static void advance(struct rate_window *w, unsigned window, time_t now)
{
	time_t start = now - now % (time_t)window;
	if (start == w->start)
		return;
	w->prev = start == w->start + (time_t)window ? w->cur : 0;
	w->cur = 0;
	w->start = start;
}

unsigned rate_window_count(struct rate_window *w, unsigned window, time_t now)
{
	window = window ? window : 1;
	advance(w, window, now);
	uint64_t left = (uint64_t)window - (uint64_t)(now - w->start);
	uint64_t part = ((uint64_t)w->prev * left + window - 1) / window;
	uint64_t sum = part + w->cur;
	return sum > UINT32_MAX ? UINT32_MAX : (unsigned)sum;
}

void rate_window_add(struct rate_window *w, unsigned window, unsigned n, time_t now)
{
	advance(w, window ? window : 1, now);
	w->cur = (uint64_t)w->cur + n > UINT32_MAX ? UINT32_MAX : w->cur + n;
}

bool rate_take(struct rate *r, const char *key, unsigned n, unsigned limit, time_t now,
	       unsigned *count)
{
	struct rate_entry *e = entry(r, key);
	unsigned have = rate_window_count(&e->w, r->window, now);
	if (count)
		*count = have;
	if (limit != 0 && (uint64_t)have + n > limit)
		return false;
	rate_window_add(&e->w, r->window, n, now);
	return true;
}

unsigned rate_count(struct rate *r, const char *key, time_t now)
{
	char cut[RATE_KEY_MAX + 1];
	rg_strlcpy(cut, key, sizeof(cut));
	struct rate_entry *e = find(r, cut, key_hash(r, cut));
	if (e == NULL)
		return 0;
	return rate_window_count(&e->w, r->window, now);
}

void rate_merge(struct rate *r, const char *key, time_t start, unsigned count)
{
	char cut[RATE_KEY_MAX + 1];
	rg_strlcpy(cut, key, sizeof(cut));
	struct rate_entry *e = find(r, cut, key_hash(r, cut));
	if (e != NULL && e->w.start == start && count > e->w.cur)
		e->w.cur = count;
}

time_t rate_window_start(const struct rate *r, time_t now)
{
	return now - now % (time_t)r->window;
}

bool rate_forget(struct rate *r, const char *key)
{
	char cut[RATE_KEY_MAX + 1];
	rg_strlcpy(cut, key, sizeof(cut));
	struct rate_entry *e = find(r, cut, key_hash(r, cut));
	if (e == NULL)
		return false;
	drop(r, e);
	return true;
}

size_t rate_size(const struct rate *r)
{
	return r->n;
}

unsigned long rate_evictions(const struct rate *r)
{
	return r->evictions;
}
