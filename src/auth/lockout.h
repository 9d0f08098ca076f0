/*
 * lockout - clients that fail SMTP AUTH too often are shut out for a while.
 *
 * Owns: per client address (IPv4, or IPv6 /64), the failures inside smtpd_sasl_failure_window
 * and the time a lock-out ends. A client reaching smtpd_sasl_failure_limit
 * failures is disconnected and its new connections are refused for
 * smtpd_sasl_lockout_time. A success does not clear the count (an attacker
 * holding one password could otherwise keep guessing others). The table is
 * bounded; expired entries are dropped when it fills.
 * Must not: do I/O; the caller passes the time, so tests can too.
 */
#ifndef RG_AUTH_LOCKOUT_H
#define RG_AUTH_LOCKOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "net/net.h"

struct lockout;

struct lockout *lockout_new(unsigned limit, unsigned window, unsigned lock_time,
			    size_t max_entries);
void lockout_free(struct lockout *lo);

/* Is IP locked out at NOW? *until gets the end of the lock-out. */
bool lockout_is_locked(struct lockout *lo, const struct rg_ip *ip, time_t now, time_t *until);
/* Count one failure; true when it reaches the limit or the client is locked
 * out already (disconnect it). */
bool lockout_fail(struct lockout *lo, const struct rg_ip *ip, time_t now);
/* Entries tracked now (for tests and the log). */
size_t lockout_size(const struct lockout *lo);

#endif
