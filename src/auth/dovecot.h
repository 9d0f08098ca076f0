/*
 * dovecot.h - a client for Dovecot's authentication protocol (auth-client 1.x),
 * as Postfix speaks it to Dovecot (smtpd_sasl_type = dovecot).
 *
 * Owns: one connection to Dovecot's auth socket (a unix socket path or
 * "inet:host:port"), its handshake, and the requests in flight on it. Runs on
 * the event loop and never blocks: connect, handshake and replies are all
 * bufferevent callbacks. The connection is opened lazily on the first request,
 * reopened after a failure, and requests started before the handshake is done
 * wait for it. Each request has a timeout; a lost connection or timeout
 * completes its requests with AUTH_TEMPFAIL, except that a request sent on a
 * connection that was already open is tried once more on a new one (Dovecot
 * may have restarted while the client was idle). A malformed line from the
 * server drops the connection. At most 1024 requests are in flight.
 *
 * Credentials are always sent as mechanism PLAIN (the session decodes
 * PLAIN and LOGIN itself), so Dovecot must offer PLAIN on that socket;
 * without it every request is AUTH_TEMPFAIL. A password holding TAB, CR, LF
 * or \001 is AUTH_FAILED without asking (Dovecot refuses those anyway).
 * The process must ignore SIGPIPE (a write to a Dovecot that went away).
 */
#ifndef RELAYGUARD_AUTH_DOVECOT_H
#define RELAYGUARD_AUTH_DOVECOT_H

#include "auth/auth.h"

struct event_base;
struct dovecot_auth;
struct dovecot_req;

/* Client facts passed to Dovecot (lip, rip, secured) for its logs and policy. */
struct dovecot_req_info {
	const char *service;   /* "smtp" */
	const char *local_ip;  /* may be NULL */
	const char *remote_ip; /* may be NULL */
	int secured;           /* 1 when the SMTP session is under TLS */
};

/*
 * dovecot_auth_new - a client for PATH (a unix socket path, or inet:IP:port
 * with a numeric IPv4 or [IPv6] address: names are refused, never resolved).
 * NULL with ERR filled when PATH is malformed. Nothing connects yet.
 */
struct dovecot_auth *dovecot_auth_new(struct event_base *base, const char *path,
				      int timeout_seconds, char *err, size_t errlen);
/*
 * dovecot_auth_free - close and free everything. Requests still open are
 * dropped without DONE and their dovecot_req pointers die here: cancel the
 * ones you hold first.
 */
void dovecot_auth_free(struct dovecot_auth *da);

/*
 * dovecot_auth_verify - ask whether USER/PASS is valid. DONE is called exactly
 * once, later, on the loop (never from inside this call), unless the request is
 * cancelled first. Returns NULL (and does not call DONE) only when out of memory.
 */
struct dovecot_req *dovecot_auth_verify(struct dovecot_auth *da, const char *user,
					const char *pass, const struct dovecot_req_info *info,
					auth_done_fn *done, void *arg);

/* dovecot_auth_cancel - DONE will not be called for R; R is freed. */
void dovecot_auth_cancel(struct dovecot_req *r);

#endif
