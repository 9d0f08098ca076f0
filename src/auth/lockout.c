/*
 * lockout.c - failed-AUTH accounting per client address (see lockout.h).
 */
#include "auth/lockout.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096

struct lo_entry {
	struct rg_ip ip;
	unsigned failures;
	time_t window_start;
	time_t locked_until; /* 0: not locked */
	struct lo_entry *next;
};

struct lockout {
	unsigned limit, window, lock_time;
	size_t n, max;
	struct lo_entry *b[BUCKETS];
};

/* client_key - who is counted: an IPv4 address, or an IPv6 /64 (a single host
 * usually has a whole /64 and could step through it). */
static struct rg_ip client_key(const struct rg_ip *ip)
{
	struct rg_ip k = *ip;
	if (k.family == AF_INET6)
		memset(k.addr + 8, 0, 8);
	return k;
}

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
	lo->max = max_entries;
	return lo;
}

void lockout_free(struct lockout *lo)
{
	if (lo == NULL)
		return;
	for (size_t i = 0; i < BUCKETS; i++)
		while (lo->b[i]) {
			struct lo_entry *e = lo->b[i];
			lo->b[i] = e->next;
			free(e);
		}
	free(lo);
}

static bool expired(const struct lockout *lo, const struct lo_entry *e, time_t now)
{
	return e->locked_until <= now && now - e->window_start >= (time_t)lo->window;
}

/* prune - drop entries that no longer matter. */
static void prune(struct lockout *lo, time_t now)
{
	for (size_t i = 0; i < BUCKETS; i++)
		for (struct lo_entry **pp = &lo->b[i]; *pp;) {
			struct lo_entry *e = *pp;
			if (expired(lo, e, now)) {
				*pp = e->next;
				free(e);
				lo->n--;
			} else {
				pp = &e->next;
			}
		}
}

static struct lo_entry *find(struct lockout *lo, const struct rg_ip *ip)
{
	for (struct lo_entry *e = lo->b[bucket(ip)]; e; e = e->next)
		if (ip_equal(&e->ip, ip))
			return e;
	return NULL;
}

bool lockout_is_locked(struct lockout *lo, const struct rg_ip *addr, time_t now, time_t *until)
{
	struct rg_ip key = client_key(addr), *ip = &key;
	struct lo_entry *e = find(lo, ip);
	if (e == NULL || e->locked_until <= now)
		return false;
	if (until)
		*until = e->locked_until;
	return true;
}

bool lockout_fail(struct lockout *lo, const struct rg_ip *addr, time_t now)
{
	struct rg_ip key = client_key(addr), *ip = &key;
	struct lo_entry *e = find(lo, ip);
	if (e == NULL) {
		if (lo->n >= lo->max)
			prune(lo, now);
		if (lo->n >= lo->max)
			return false; /* full of live entries: count nothing rather than grow */
		e = xcalloc(1, sizeof(*e));
		e->ip = *ip;
		e->window_start = now;
		e->next = lo->b[bucket(ip)];
		lo->b[bucket(ip)] = e;
		lo->n++;
	}
	if (e->locked_until > now)
		return true; /* a session opened before the lock-out: end it too */
	if (now - e->window_start >= (time_t)lo->window) {
		e->window_start = now;
		e->failures = 0;
	}
	if (++e->failures < lo->limit)
		return false;
	e->failures = 0;
	e->window_start = now;
	e->locked_until = now + (time_t)lo->lock_time;
	return true;
}

size_t lockout_size(const struct lockout *lo)
{
	return lo->n;
}
