/*
 * lockout.c - failed-AUTH accounting per client address (see lockout.h).
 *
 * DESCRIPTION
 *	Entries sit in a hash table and on a list ordered by when they were last
 *	seen. A newcomer to a full table pushes out the best of the EVICT_SCAN
 *	least recently seen entries: an expired one, else an unlocked one with
 *	the fewest failures, else the oldest. Entries with attempts in flight
 *	never go (their lockout_end must find them); they are bounded by the
 *	number of sessions, so the table may exceed its size by that much.
 */
#include "auth/lockout.h"
#include "util/lru.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096
#define EVICT_SCAN 8

struct lo_entry {
	struct rg_ip ip;
	unsigned failures;       /* inside the window that began at window_start */
	unsigned pending;        /* attempts begun and not ended */
	time_t window_start;
	time_t locked_until;     /* 0: not locked */
	struct lo_entry *next;   /* bucket chain */
	struct lru_node lru;     /* on the last-seen list */
};

struct lockout {
	unsigned limit, window, lock_time;
	size_t n, max;
	unsigned long evictions;
	struct lru lru;          /* last seen first */
	struct lo_entry *b[BUCKETS];
};

static unsigned bucket(const struct rg_ip *ip)
{
	return ip_hash(ip) % BUCKETS;
}

struct lockout *lockout_new(unsigned limit, unsigned window, unsigned lock_time,
			    size_t max_entries)
{
	struct lockout *lo = xcalloc(1, sizeof(*lo));
	lo->limit = limit ? limit : 1;
	lo->window = window;
	lo->lock_time = lock_time;
	lo->max = max_entries ? max_entries : 1;
	return lo;
}

void lockout_free(struct lockout *lo)
{
	if (lo == NULL)
		return;
	struct lo_entry *e;
	while ((e = lru_entry(lo->lru.newest, struct lo_entry, lru)) != NULL) {
		lru_unlink(&lo->lru, &e->lru);
		free(e);
	}
	free(lo);
}

static bool expired(const struct lockout *lo, const struct lo_entry *e, time_t now)
{
	return e->pending == 0 && e->locked_until <= now &&
	       now - e->window_start >= (time_t)lo->window;
}

static void drop(struct lockout *lo, struct lo_entry *e)
{
	struct lo_entry **pp = &lo->b[bucket(&e->ip)];
	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	lru_unlink(&lo->lru, &e->lru);
	free(e);
	lo->n--;
}

/* better_victim - is C worth less than the victim chosen so far, V? */
static bool better_victim(const struct lo_entry *c, const struct lo_entry *v, time_t now)
{
	bool c_locked = c->locked_until > now, v_locked = v->locked_until > now;
	if (c_locked != v_locked)
		return !c_locked;
	return c->failures < v->failures; /* ties: V is older */
}

/* make_room - push out one entry (see DESCRIPTION); false when all are in flight. */
static bool make_room(struct lockout *lo, time_t now)
{
	struct lo_entry *victim = NULL;
	unsigned seen = 0;
	for (struct lo_entry *e = lru_entry(lo->lru.oldest, struct lo_entry, lru);
	     e && seen < EVICT_SCAN; e = lru_entry(e->lru.newer, struct lo_entry, lru)) {
		if (e->pending > 0)
			continue;
		seen++;
		if (expired(lo, e, now)) {
			drop(lo, e);
			return true;
		}
		if (victim == NULL || better_victim(e, victim, now))
			victim = e;
	}
	if (victim == NULL)
		return false;
	drop(lo, victim);
	lo->evictions++;
	return true;
}

static struct lo_entry *find(struct lockout *lo, const struct rg_ip *ip)
{
	for (struct lo_entry *e = lo->b[bucket(ip)]; e; e = e->next)
		if (ip_equal(&e->ip, ip))
			return e;
	return NULL;
}

/* entry - IP's entry, made (room made first) if need be, marked as just seen. */
static struct lo_entry *entry(struct lockout *lo, const struct rg_ip *addr, time_t now)
{
	struct rg_ip key = ip_client_key(addr);
	struct lo_entry *e = find(lo, &key);
	if (e == NULL) {
		if (lo->n >= lo->max)
			make_room(lo, now); /* or grow by one: every entry has an attempt in flight */
		e = xcalloc(1, sizeof(*e));
		e->ip = key;
		e->window_start = now;
		e->next = lo->b[bucket(&key)];
		lo->b[bucket(&key)] = e;
		lo->n++;
	}
	lru_touch(&lo->lru, &e->lru);
	return e;
}

static void roll_window(const struct lockout *lo, struct lo_entry *e, time_t now)
{
	if (now - e->window_start >= (time_t)lo->window) {
		e->window_start = now;
		e->failures = 0;
	}
}

/* count_failure - one more failure; true when the client is (now) locked out. */
static bool count_failure(const struct lockout *lo, struct lo_entry *e, time_t now)
{
	if (e->locked_until > now)
		return true; /* a session opened before the lock-out: end it too */
	roll_window(lo, e, now);
	if (++e->failures < lo->limit)
		return false;
	e->failures = 0;
	e->window_start = now;
	e->locked_until = now + (time_t)lo->lock_time;
	return true;
}

bool lockout_is_locked(struct lockout *lo, const struct rg_ip *addr, time_t now, time_t *until)
{
	struct rg_ip key = ip_client_key(addr);
	struct lo_entry *e = find(lo, &key);
	if (e == NULL || e->locked_until <= now)
		return false;
	if (until)
		*until = e->locked_until;
	return true;
}

enum lockout_verdict lockout_begin(struct lockout *lo, const struct rg_ip *ip, time_t now)
{
	struct lo_entry *e = entry(lo, ip, now);
	if (e->locked_until > now)
		return LOCKOUT_LOCKED;
	roll_window(lo, e, now);
	if (e->failures + e->pending >= lo->limit)
		return LOCKOUT_BUSY;
	e->pending++;
	return LOCKOUT_GO;
}

bool lockout_end(struct lockout *lo, const struct rg_ip *ip, time_t now, bool failed)
{
	struct lo_entry *e = entry(lo, ip, now);
	if (e->pending > 0)
		e->pending--;
	return failed && count_failure(lo, e, now);
}

bool lockout_fail(struct lockout *lo, const struct rg_ip *ip, time_t now)
{
	return count_failure(lo, entry(lo, ip, now), now);
}

size_t lockout_each(const struct lockout *lo, time_t now, lockout_each_fn *fn, void *arg)
{
	size_t n = 0;
	for (const struct lo_entry *e = lru_entry(lo->lru.newest, struct lo_entry, lru); e;
	     e = lru_entry(e->lru.older, struct lo_entry, lru)) {
		if (e->locked_until <= now)
			continue;
		fn(&e->ip, e->locked_until, arg);
		n++;
	}
	return n;
}

bool lockout_clear(struct lockout *lo, const struct rg_ip *addr)
{
	struct rg_ip key = ip_client_key(addr);
	struct lo_entry *e = find(lo, &key);
	if (e == NULL)
		return false;
	bool had = e->locked_until != 0 || e->failures != 0;
	e->locked_until = 0;
	e->failures = 0;
	if (e->pending == 0) /* else its lockout_end must still find it */
		drop(lo, e);
	return had;
}

void lockout_lock(struct lockout *lo, const struct rg_ip *ip, time_t now, time_t until)
{
	struct lo_entry *e = entry(lo, ip, now);
	if (until > e->locked_until)
		e->locked_until = until;
	e->failures = 0;
	e->window_start = now;
}

size_t lockout_size(const struct lockout *lo)
{
	return lo->n;
}

unsigned long lockout_evictions(const struct lockout *lo)
{
	return lo->evictions;
}
