/*
 * auth.h - SMTP AUTH (RFC 4954): whether a username and password are valid.
 *
 * Owns: the choice of backend (smtpd_sasl_type) and the common result type.
 * The session decodes the SASL mechanisms (PLAIN, LOGIN) itself and asks a
 * backend to verify the plain credentials:
 *	passwd-file	a Dovecot-format passwd-file, hashes checked with libcrypt
 *			on a worker thread (auth/passwd.c)
 *	dovecot		Dovecot's auth protocol on a non-blocking socket (auth/dovecot.c)
 * Both complete through an auth_done_fn on the loop thread.
 */
#ifndef RELAYGUARD_AUTH_AUTH_H
#define RELAYGUARD_AUTH_AUTH_H

#include <stddef.h>

enum auth_status {
	AUTH_OK,	/* the credentials are valid */
	AUTH_FAILED,	/* wrong user or password: 535 5.7.8 */
	AUTH_TEMPFAIL,	/* the backend could not answer: 454 4.7.0 */
};

/*
 * USER is the canonical login name on AUTH_OK (what the backend says the user is
 * called, e.g. Dovecot's user= field), else NULL. REASON is a short text for the
 * log (never for the client), or NULL.
 */
typedef void auth_done_fn(enum auth_status st, const char *user, const char *reason, void *arg);

struct config;
struct event_base;
struct auth;
struct auth_req;

/* What the backend may want to know about the session (Dovecot logs it). */
struct auth_info {
	const char *local_ip, *remote_ip;
	int secured; /* the session is under TLS */
};

/* auth_new - the configured backend; a passwd-file is read now (before privileges
 * are dropped). NULL with ERR ("file:line: ..." lines) on failure. */
struct auth *auth_new(const struct config *cfg, struct event_base *base, char *err,
		      size_t errlen);
void auth_free(struct auth *a);

/* auth_verify - check USER/PASS; DONE runs once, later, on the loop, unless the
 * request is cancelled first. The password is copied and wiped after use.
 * NULL (DONE never runs) when the request could not start: a temporary failure. */
struct auth_req *auth_verify(struct auth *a, const char *user, const char *pass,
			     const struct auth_info *info, auth_done_fn *done, void *arg);
/* auth_cancel - DONE will not run for R (the session went away). */
void auth_cancel(struct auth_req *r);

#endif
