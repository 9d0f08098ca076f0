/*
 * lockout - clients that fail SMTP AUTH too often are shut out for a while.
 *
 * Owns: per client address (IPv4, or IPv6 /64), the failures inside
 * smtpd_sasl_failure_window, the AUTH attempts in flight and the time a
 * lock-out ends. A client reaching smtpd_sasl_failure_limit failures is
 * disconnected and its new connections are refused for smtpd_sasl_lockout_time.
 * Attempts count against the limit when they start (lockout_begin), so sessions
 * racing in parallel cannot get more guesses than the limit. A success does not
 * clear the count (an attacker holding one password could otherwise keep
 * guessing others). The table is bounded; when it is full, the entry least
 * worth keeping goes (expired, else fewest failures and not locked, else the
 * least recently seen) - counting never stops.
 * Must not: do I/O; the caller passes the time, so tests can too.
 */
#ifndef RG_AUTH_LOCKOUT_H
#define RG_AUTH_LOCKOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "net/net.h"

struct lockout;

/* What lockout_begin says about a new attempt. */
enum lockout_verdict {
	LOCKOUT_GO,     /* go on; end it with lockout_end */
	LOCKOUT_BUSY,   /* failures plus attempts in flight reach the limit: not now */
	LOCKOUT_LOCKED, /* locked out: disconnect */
};

struct lockout *lockout_new(unsigned limit, unsigned window, unsigned lock_time,
			    size_t max_entries);
void lockout_free(struct lockout *lo);

/* Is IP locked out at NOW? *until gets the end of the lock-out. */
bool lockout_is_locked(struct lockout *lo, const struct rg_ip *ip, time_t now, time_t *until);
/* An AUTH attempt from IP starts; every LOCKOUT_GO needs one lockout_end. */
enum lockout_verdict lockout_begin(struct lockout *lo, const struct rg_ip *ip, time_t now);
/* The attempt is over. FAILED: count it; true when that reaches the limit or the
 * client is locked out already (disconnect it). */
bool lockout_end(struct lockout *lo, const struct rg_ip *ip, time_t now, bool failed);
/* Count one failure that had no lockout_begin; returns as lockout_end. */
bool lockout_fail(struct lockout *lo, const struct rg_ip *ip, time_t now);
/* What lockout_each reports about one locked-out client. */
typedef void lockout_each_fn(const struct rg_ip *key, time_t until, void *arg);
/* lockout_each - FN for every client locked out at NOW (IPv6: the /64 key);
 * returns how many. */
size_t lockout_each(const struct lockout *lo, time_t now, lockout_each_fn *fn, void *arg);
/* lockout_clear - lift IP's lock-out and forget its failures (the operator
 * says so). True when there was anything to forget. */
bool lockout_clear(struct lockout *lo, const struct rg_ip *ip);
/* lockout_lock - IP is locked out until UNTIL (another host said so); a later
 * end already in force stays. */
void lockout_lock(struct lockout *lo, const struct rg_ip *ip, time_t now, time_t until);
/* Entries tracked now, and entries pushed out by newcomers so far (tests, log). */
size_t lockout_size(const struct lockout *lo);
unsigned long lockout_evictions(const struct lockout *lo);

#endif
