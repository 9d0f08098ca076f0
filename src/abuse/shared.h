/*
 * shared - state shared by several relayguard hosts through Redis.
 *
 * Owns: the connection to shared_state (redis://[[USER]:PASSWORD@]IP:PORT/DB
 * or unix:/PATH; AUTH before SELECT and SUBSCRIBE)
 * through hiredis on the event loop (libevent adapter: never blocks), the
 * key layout, atomic counters (one Lua script: INCR, and EXPIRE on the
 * first), the lock-out channel, a deadline per request, reconnection, and
 * the rate-limited warning and counter when Redis fails.
 * Must not: decide anything. Callers decide on their local state first and
 * use what Redis says as extra knowledge when it arrives: a Redis outage
 * neither opens the server (local counting goes on) nor closes it (nothing
 * waits for Redis).
 *
 * KEYS
 *	rg:authfail:IP        failed AUTH attempts of a client (IPv6: the /64
 *	                      address), expiring after smtpd_sasl_failure_window
 *	rg:lock:IP            present while IP is locked out (EX lock time)
 *	rg:rate:KEY:START     a rate-limit key's events in the fixed window that
 *	                      began at START (expires after two windows)
 *	channel rg:lockout:DB "lock IP SECONDS" and "clear IP" to every host;
 *	                      "suspend LOGIN SECONDS REASON" and "resume LOGIN"
 *	                      (hijacked-account suspensions); "tls DOMAIN LEVEL"
 *	                      (a raise of the TLS downgrade memory). DB is the
 *	                      database number: pub/sub ignores SELECT.
 *	rg:susp:LOGIN         WHY, while LOGIN is suspended as hijacked (EX the
 *	                      suspension)
 *	rg:tls:DOMAIN         LEVEL, the last raise of DOMAIN's downgrade memory
 *	                      (EX smtp_tls_memory_lifetime)
 *	rg:hjk:LOGIN          set: recipient domains LOGIN has written to (learnt
 *	                      only while its counts stay under the thresholds; at
 *	                      most known_max, a random one dropped when full; read
 *	                      with SRANDMEMBER when LOGIN authenticates)
 *	rg:hjn:LOGIN          zset: domains new to LOGIN, scored by when, within
 *	                      the hijack window (EX the window)
 *	rg:hjm:LOGIN          zset: messages to a new domain, the same way
 *
 * CATCH-UP
 *	Each time the command connection is (re)established, the rg:lock:,
 *	rg:susp: and rg:tls: keys still alive are read back (at most 10,000)
 *	and handed to the callbacks as if they had come off the channel: a host
 *	that starts, or comes back after an outage, knows the lock-outs,
 *	suspensions and TLS raises it missed. One request per SCAN step (a few
 *	hundred keys), the next sent when it is answered: a large keyspace costs
 *	more steps, never one script that blocks Redis past the request deadline.
 *
 * TRUST
 *	Redis is trusted to be Redis (a password at most, no TLS), but what it sends is
 *	not: replies are shape-checked as they are parsed (hiredis would abort on
 *	some; a bad one drops the connection instead), and what comes off the
 *	channel is handed over as text for the caller to bound and clean. A
 *	failed SELECT counts as Redis down (requests wait for its OK).
 */
#ifndef RG_ABUSE_SHARED_H
#define RG_ABUSE_SHARED_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct event_base;
struct shared;

#define SHARED_DEADLINE_MS 200  /* a request not answered by then counts as a failure */

/* The count after an increment; -1 when Redis did not answer in time. */
typedef void shared_count_fn(long long count, void *arg);
/* Another host (or this one) says IP is locked out for SECONDS (0: cleared). */
typedef void shared_lock_fn(const char *ip, unsigned seconds, void *arg);

/* A host suspended LOGIN as hijacked for SECONDS because of WHY (0: lifted). */
typedef void shared_suspend_fn(const char *login, unsigned seconds, const char *why,
			       void *arg);

/* A host raised DOMAIN's TLS downgrade memory: TEXT is "DOMAIN LEVEL" as it
 * came off the channel, for the caller to parse and clean. */
typedef void shared_tls_fn(const char *text, void *arg);

/* shared_new - connect to URL (no name lookups: an IP or a socket path).
 * NULL with ERR when URL is malformed; an unreachable Redis is not an error
 * (it is retried, and local state serves meanwhile). */
/* Is url a shared_state value shared_new accepts? Pure: the configuration
 * checks it, so a bad one is reported as file:line before anything starts. */
bool shared_url_valid(const char *url);
struct shared *shared_new(struct event_base *base, const char *url, shared_lock_fn *on_lock,
			  shared_suspend_fn *on_suspend, void *arg, char *err, size_t errlen);
void shared_free(struct shared *s);

/* shared_incr - KEY += 1, expiring TTL seconds after its first increment;
 * DONE(count) runs later on the loop (once, unless shared_free comes first). */
void shared_incr(struct shared *s, const char *key, unsigned ttl, shared_count_fn *done,
		 void *arg);
/* shared_lock - tell every host IP is locked out for SECONDS (0: lifted). */
void shared_lock(struct shared *s, const char *ip, unsigned seconds);

/* shared_suspend - tell every host LOGIN is suspended for SECONDS (0: lifted). */
void shared_suspend(struct shared *s, const char *login, unsigned seconds, const char *why);

/* shared_lift_blocking - for the CLI with no server running, never the
 * loop: connect to URL, DEL rg:susp:LOGIN and publish
 * "resume LOGIN", as a running host's release does. Otherwise a host's next
 * catch-up would read the suspension back. All of it within 2 s, however
 * slowly Redis answers (the queue lock is held). false with ERR on failure. */
bool shared_lift_blocking(const char *url, const char *login, char *err, size_t errlen);

/* Two counts; both -1 when Redis did not answer in time. */
typedef void shared_pair_fn(long long a, long long b, void *arg);

/* A login's message to domains new to it on this host. */
struct shared_hijack_msg {
	const char *login, *message_id;  /* message_id: unique, so each message counts once */
	const char *const *domains;      /* lower case, distinct */
	size_t n;
	time_t now;
	unsigned window;                 /* seconds */
	unsigned new_domains, messages;  /* thresholds (0: off): domains are learnt below them */
	size_t known_max;                /* domains remembered per login */
	unsigned known_ttl;              /* seconds a login's known set outlives its last learning */
};

/* shared_hijack - count M in every host's windows; DONE(distinct new
 * domains, messages to new domains) within the window, across hosts. */
void shared_hijack(struct shared *s, const struct shared_hijack_msg *m, shared_pair_fn *done,
		   void *arg);

/* Strings from Redis (NULL, 0 when it did not answer in time); valid during the call. */
typedef void shared_members_fn(const char *const *items, size_t n, void *arg);
#define SHARED_MEMBERS_MAX 10000 /* at most this many strings are handed over */

/* shared_known - up to MAX of the domains LOGIN is known to have written to
 * (rg:hjk:LOGIN, learnt on any host), to DONE. */
void shared_known(struct shared *s, const char *login, size_t max, shared_members_fn *done,
		  void *arg);

/* shared_set_tls - FN(ARG, text) for each "tls ..." message (NULL: none). */
void shared_set_tls(struct shared *s, shared_tls_fn *fn, void *arg);
/* shared_tls - tell every host DOMAIN's memory rose to LEVEL (both already
 * checked by the caller: they go into a key and a message as they are), and
 * keep it as rg:tls:DOMAIN for TTL seconds. */
void shared_tls(struct shared *s, const char *domain, const char *level, unsigned ttl);

/* Is the connection up now; Redis failures so far (timeouts, errors, lost connections). */
bool shared_up(const struct shared *s);
unsigned long shared_failures(const struct shared *s);
/* Requests sent and not answered yet (benchmarks wait for 0). */
size_t shared_pending(const struct shared *s);

#endif
