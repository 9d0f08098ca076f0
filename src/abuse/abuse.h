/*
 * abuse - rate limits for clients and logins, and who is exempt from them.
 *
 * Owns: the anvil-style rate limits (smtpd_client_{connection,message,
 * recipient,auth}_rate_limit per client address, IPv6 per /64;
 * smtpd_sasl_{message,recipient}_rate_limit per login) over
 * anvil_rate_time_unit, their exceptions (smtpd_client_event_limit_exceptions
 * for the client and login limits; smtpd_sasl_lockout_exceptions for the AUTH
 * lock-out, the AUTH rate and the hijack hold and suspension), the reply a refused client gets, the log line and the
 * counters; the hijacked-account hold (hijack.h) for authenticated mail: a
 * tripped login's mail is held and its new MAIL commands refused until it
 * is cleared; when the hold's suspensions and learnt domains are saved
 * (hijack_state.h, without shared_state) or fetched from other hosts (with
 * it); and the operator's view of both (control socket: lockout-list,
 * lockout-clear IP, abuse-stats, release-login L, delete-login L).
 * Must not: speak SMTP or close connections (the caller sends the reply it
 * is given), or read the clock (the caller passes the time).
 */
#ifndef RG_ABUSE_ABUSE_H
#define RG_ABUSE_ABUSE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "net/net.h"

struct config;
struct event_base;
struct lockout;
struct control_abuse_ops;

/* What is being counted; each has a client limit, MESSAGE and RECIPIENT a login one too. */
enum abuse_event { ABUSE_CONNECTION, ABUSE_MESSAGE, ABUSE_RECIPIENT, ABUSE_AUTH, ABUSE_EVENTS };

/* Who does it: the client, its login (NULL or "" before AUTH) and session (logs). */
struct abuse_client {
	const struct rg_ip *ip;
	const char *ip_text;
	const char *login;
	const char *session;
};

struct abuse;

#define ABUSE_REPLY_MAX 256

/* The limits of CFG (kept: it must outlive the table); LO (may be NULL) is the
 * AUTH lock-out the control commands show and clear. */
struct abuse *abuse_new(const struct config *cfg, struct lockout *lo);
void abuse_free(struct abuse *a);

/* abuse_check - one EV by C at NOW. True: go on (counted). False: over a limit;
 * REPLY gets the whole reply line (no CRLF): 421 4.7.0 for a connection,
 * 454 4.7.0 for AUTH, 452 4.7.1 for a message or recipient. Logged, counted. */
bool abuse_check(struct abuse *a, enum abuse_event ev, const struct abuse_client *c,
		 time_t now, char *reply, size_t len);
/* abuse_lockout_exempt - IP is in smtpd_sasl_lockout_exceptions: its failed
 * AUTH attempts are neither counted nor locked out. */
bool abuse_lockout_exempt(const struct abuse *a, const struct rg_ip *ip);
/* abuse_set_exceptions - a reload: smtpd_client_event_limit_exceptions and
 * smtpd_sasl_lockout_exceptions (both $mynetworks by default) come from CFG
 * from now on, so the owner's network added on reload is never locked out.
 * CFG must outlive the table or the next call (the caller sets the new one
 * before the old is freed). */
void abuse_set_exceptions(struct abuse *a, const struct config *cfg);
/* abuse_hold - a message from C's login (none: false) to recipients in DOMAINS
 * (N, repeats allowed) is about to be queued at NOW: true when it must go to
 * hold/ (the login is, or is now, suspended as hijacked). Logged, counted.
 * Always false from smtpd_sasl_lockout_exceptions (the owner's networks). */
bool abuse_hold(struct abuse *a, const struct abuse_client *c, const char *const *domains,
		size_t n, time_t now);
/* abuse_set_release - FN(ARG, id) runs for each message released by login
 * (the queue manager should look at it now). */
void abuse_set_release(struct abuse *a, void (*fn)(void *arg, const char *id), void *arg);
/* abuse_share - with shared_state set, count AUTH failures and lock-outs in
 * Redis too (shared.h), so several hosts lock a client out together. False
 * with ERR when shared_state is malformed. Nothing to do when it is empty. */
bool abuse_share(struct abuse *a, struct event_base *base, char *err, size_t errlen);
/* abuse_auth_failed - IP failed AUTH at NOW (counted locally already; LOCKED:
 * that locked it out here). Shared: counted for every host; a host whose
 * count reaches smtpd_sasl_failure_limit locks it out everywhere. */
void abuse_auth_failed(struct abuse *a, const struct rg_ip *ip, bool locked, time_t now);
/* abuse_share_tls - the TLS downgrade memory rides on the same connection
 * (the SMTP transport owns the memory; server.c connects the two): HEARD
 * gets each "DOMAIN LEVEL" another host shared, raw, to parse and clean.
 * abuse_tls_raised tells every host DOMAIN rose to LEVEL (both checked by
 * the caller), kept as rg:tls:DOMAIN for TTL seconds. Without shared_state,
 * or A NULL: nothing. */
void abuse_share_tls(struct abuse *a, void (*heard)(const char *text, void *arg), void *arg);
void abuse_tls_raised(struct abuse *a, const char *domain, const char *level, unsigned ttl);
/* abuse_persist - without shared_state, the hijack hold's suspensions and
 * learnt domains survive a restart in queue_directory/hijack-state: read
 * now (blocks: call it before the loop runs, as mail_owner), rewritten off
 * the loop after a change. With shared_state Redis keeps them (nothing to
 * do here). False with ERR when the file exists and cannot be read. */
bool abuse_persist(struct abuse *a, struct event_base *base, char *err, size_t errlen);
/* abuse_logged_in - C just authenticated: with shared_state, fetch the
 * recipient domains its login is known to have written to on any host, so
 * a message it sends here does not count them as new (the answer comes
 * back on the loop, normally long before the message). */
void abuse_logged_in(struct abuse *a, const struct abuse_client *c, time_t now);
/* Requests to shared state not answered yet (0 without it; benchmarks). */
size_t abuse_shared_pending(const struct abuse *a);
/* Refusals so far for EV (client and login limits together). */
unsigned long abuse_refused(const struct abuse *a, enum abuse_event ev);

/* The control commands; their arg is the struct abuse *. */
extern const struct control_abuse_ops abuse_control_ops;

#endif
