/*
 * session_auth.c - AUTH (RFC 4954): the PLAIN and LOGIN exchanges of a session.
 *
 * Owns: the AUTH command, the SASL responses, the backend check (auth.h),
 * the lock-out accounting around it (lockout.h, abuse.h), the delayed
 * failure reply and the authenticated identity of the session.
 * Must not: block (the backend answers through a callback), log or keep a
 * password beyond the call that decodes it, or read input itself.
 */
#include "auth/auth.h"
#include "auth/lockout.h"
#include "smtp/session_priv.h"
#include "metrics/events.h"
#include "smtp/pickup.h"
#include "smtp/server.h"
#include "util/log.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

static void lockout_refuse(struct session *s);

static void sasl_reply_prompt(struct session *s)
{
	const struct sasl_state *st = s->sasl;
	if (st->mech == SASL_PLAIN)
		session_reply(s, "334 ");
	else
		session_reply(s, "334 %s", st->want_password ? "UGFzc3dvcmQ6" : "VXNlcm5hbWU6");
}

/* attempt_over - the AUTH attempt counted at its start has ended; FAILED counts
 * a failure. True when the client is (now) locked out. */
static bool attempt_over(struct session *s, bool failed)
{
	struct lockout *lo = server_lockout(s->srv);
	if (!s->sasl->in_flight) /* not counted at its start: lock-out exempt, or a late failure */
		return failed && !abuse_lockout_exempt(server_abuse(s->srv), &s->client.ip) &&
		       lockout_fail(lo, &s->client.ip, time(NULL));
	s->sasl->in_flight = false;
	return lockout_end(lo, &s->client.ip, time(NULL), failed);
}

void session_sasl_end(struct session *s)
{
	if (s->sasl == NULL)
		return;
	if (s->sasl->in_flight) /* the client left mid-check: it learnt nothing */
		attempt_over(s, false);
	auth_cancel(s->sasl->req);
	if (s->sasl->delay)
		event_free(s->sasl->delay);
	explicit_bzero(s->sasl, sizeof(*s->sasl));
	free(s->sasl);
	s->sasl = NULL;
}

static void lockout_refuse(struct session *s);

bool session_auth_check(struct session *s, char *arg)
{
	(void)arg; /* the mechanism is parsed in session_auth_proceed */
	if (!session_need_helo(s, "AUTH"))
		return false;
	if (server_auth(s->srv) == NULL) {
		session_reply_error(s, "AUTH", "503 5.5.1 Error: authentication not enabled");
		return false;
	}
	if (!(s->flags & F_EHLO)) {
		session_reply_error(s, "AUTH", "503 5.5.1 Error: send EHLO first");
		return false;
	}
	if (s->client.sasl_authenticated) {
		session_reply_error(s, "AUTH", "503 5.5.1 Error: already authenticated");
		return false;
	}
	if (s->state != S_READY) {
		session_reply_error(s, "AUTH", "503 5.5.1 Error: MAIL transaction in progress");
		return false;
	}
	if (!session_auth_offered(s)) {
		session_reply_error(s, "AUTH", "538 5.7.11 Encryption required for requested "
			    "authentication mechanism");
		return false;
	}
	if (!session_abuse_ok(s, ABUSE_AUTH))
		return false;
	if (!abuse_lockout_exempt(server_abuse(s->srv), &s->client.ip) &&
	    lockout_is_locked(server_lockout(s->srv), &s->client.ip, time(NULL), NULL)) {
		lockout_refuse(s);
		return false;
	}
	return true;
}

void session_auth_proceed(struct session *s, char *arg)
{
	char *ir = arg + strcspn(arg, " ");
	if (*ir != '\0')
		*ir++ = '\0';
	enum sasl_mech mech;
	if (!sasl_mech_parse(arg, &mech)) {
		session_reply_error(s, "AUTH", "504 5.5.4 Unrecognized authentication type");
		return;
	}
	s->sasl = xcalloc(1, sizeof(*s->sasl));
	s->sasl->mech = mech;
	session_set_state(s, S_AUTH);
	if (*ir != '\0')
		session_sasl_step(s, rg_str_trim(ir));
	else
		sasl_reply_prompt(s);
}

/* sasl_resume - the AUTH exchange is over; read commands again. */
static void sasl_resume(struct session *s)
{
	session_sasl_end(s);
	session_pending_end(s);
	session_set_state(s, S_READY);
	session_check_error_limit(s);
	if (s->state != S_CLOSING)
		session_resume_reading(s);
}

static void on_sasl_delay(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	(void)fd;
	(void)what;
	session_reply(s, "%s", s->sasl->delayed_reply);
	sasl_resume(s);
}

/* reply_later - answer the AUTH exchange after SECONDS (a timer, not a sleep). */
static void reply_later(struct session *s, const char *line, time_t seconds)
{
	struct timeval tv = {seconds, 0};
	s->sasl->delayed_reply = line;
	s->sasl->delay = evtimer_new(server_base(s->srv), on_sasl_delay, s);
	evtimer_add(s->sasl->delay, &tv);
}

/* clean_name - the name a backend gave, safe for a header and a log. */
static void clean_name(char *dst, const char *src, size_t len)
{
	rg_strlcpy(dst, src, len);
	for (char *p = dst; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '(' || *p == ')')
			*p = '?';
}

/* sasl_failed - log it, count it against the client, answer after a delay. */
static void sasl_failed(struct session *s, const char *reason)
{
	char failures[24];
	bool locked = attempt_over(s, true);
	abuse_auth_failed(server_abuse(s->srv), &s->client.ip, locked, time(NULL));
	snprintf(failures, sizeof(failures), "%s", locked ? "limit reached" : "counted");
	mev_auth(false);
	log_ev(LOG_WARNING, "auth-failed", {"session", s->id}, {"client", s->ip_text},
	       {"user", s->sasl->user}, {"mechanism", sasl_mech_name(s->sasl->mech)},
	       {"reason", reason}, {"lockout", failures});
	if (locked) {
		char until[24];
		snprintf(until, sizeof(until), "%llus",
			 (unsigned long long)s->cfg->smtpd_sasl_lockout_time);
		mev_lockout();
		log_ev(LOG_WARNING, "auth-lockout", {"client", s->ip_text}, {"for", until});
		session_reply(s, "421 4.7.0 %s Error: too many failed authentication attempts; "
		      "locked out for %s, try again later", s->cfg->myhostname, until);
		session_close(s);
		return;
	}
	/* the same words for an unknown user and a wrong password */
	reply_later(s, "535 5.7.8 Error: authentication failed",
		    (time_t)s->cfg->smtpd_sasl_failure_delay);
}

/* sasl_checked - the backend's answer. */
static void sasl_checked(enum auth_status st, const char *user, const char *reason, void *arg)
{
	struct session *s = arg;
	s->sasl->req = NULL;
	if (st == AUTH_FAILED) {
		sasl_failed(s, reason ? reason : "rejected");
		return;
	}
	attempt_over(s, false);
	if (st == AUTH_TEMPFAIL) {
		log_ev(LOG_WARNING, "auth-tempfail", {"session", s->id}, {"client", s->ip_text},
		       {"user", s->sasl->user}, {"reason", reason});
		session_reply(s, "454 4.7.0 Temporary authentication failure");
		sasl_resume(s);
		return;
	}
	clean_name(s->sasl_username, user && *user ? user : s->sasl->user,
		   sizeof(s->sasl_username));
	s->client.sasl_authenticated = true;
	s->client.sasl_username = s->sasl_username;
	struct abuse_client c = {&s->client.ip, s->ip_text, s->sasl_username, s->id};
	abuse_logged_in(server_abuse(s->srv), &c, time(NULL)); /* other hosts' known domains */
	mev_auth(true);
	log_ev(LOG_INFO, "auth", {"session", s->id}, {"client", s->ip_text},
	       {"user", s->sasl_username}, {"mechanism", sasl_mech_name(s->sasl->mech)},
	       {"tls", s->tls_info[0] ? s->tls_info : NULL});
	session_reply(s, "235 2.7.0 Authentication successful");
	sasl_resume(s);
}

/* lockout_refuse - the client is locked out: 421 and close. */
static void lockout_refuse(struct session *s)
{
	/* locked out while this session was open: it gets no more guesses */
	time_t until = 0, now = time(NULL);
	char left[24];
	lockout_is_locked(server_lockout(s->srv), &s->client.ip, now, &until);
	snprintf(left, sizeof(left), "%llds", (long long)(until > now ? until - now : 0));
	log_ev(LOG_WARNING, "auth-lockout-refused", {"session", s->id}, {"client", s->ip_text},
	       {"remaining", left});
	session_reply(s, "421 4.7.0 %s Error: too many failed authentication attempts; "
	      "locked out for %s more, try again later", s->cfg->myhostname, left);
	session_close(s);
}

/* attempt_begins - count the attempt against the lock-out limit before the
 * check starts, so parallel sessions cannot get more guesses than the limit. */
static bool attempt_begins(struct session *s)
{
	if (abuse_lockout_exempt(server_abuse(s->srv), &s->client.ip))
		return true; /* smtpd_sasl_lockout_exceptions: the owner is never locked out */
	switch (lockout_begin(server_lockout(s->srv), &s->client.ip, time(NULL))) {
	case LOCKOUT_GO:
		s->sasl->in_flight = true;
		return true;
	case LOCKOUT_LOCKED:
		lockout_refuse(s);
		return false;
	case LOCKOUT_BUSY:
		break;
	}
	log_ev(LOG_WARNING, "auth-busy", {"session", s->id}, {"client", s->ip_text},
	       {"user", s->sasl->user});
	session_pending_begin(s, PENDING_AUTH, NULL, NULL);
	reply_later(s, "454 4.7.0 Error: too many authentication attempts in progress; "
		    "try again later", 0);
	return false;
}

/* sasl_check - the credentials are complete: ask the backend (never blocks). */
static void sasl_check(struct session *s, const char *pass)
{
	if (!attempt_begins(s))
		return;
	session_pending_begin(s, PENDING_AUTH, NULL, NULL); /* sasl_end cancels it */
	struct auth_info info = {NULL, s->ip_text, (s->flags & F_TLS) != 0};
	s->sasl->req = auth_verify(server_auth(s->srv), s->sasl->user, pass, &info,
				   sasl_checked, s);
	if (s->sasl->req == NULL) { /* answer from the loop, not from inside this call */
		attempt_over(s, false);
		log_ev(LOG_WARNING, "auth-tempfail", {"session", s->id}, {"client", s->ip_text},
		       {"user", s->sasl->user}, {"reason", "the backend could not take the request"});
		reply_later(s, "454 4.7.0 Temporary authentication failure", 0);
	}
}

static void sasl_abort(struct session *s, const char *line)
{
	session_sasl_end(s);
	session_set_state(s, S_READY);
	session_reply_error(s, "AUTH", "%s", line);
}

/* sasl_step - one client response (base64) in the PLAIN or LOGIN exchange. */
void session_sasl_step(struct session *s, const char *response)
{
	struct sasl_state *st = s->sasl;
	if (strcmp(response, "*") == 0) {
		sasl_abort(s, "501 5.7.0 Authentication aborted");
		return;
	}
	unsigned char buf[AUTH_LINE_MAX];
	char pass[SASL_FIELD_MAX];
	const char *why = "not base64";
	ssize_t n = sasl_b64_decode(response, buf, sizeof(buf));
	bool ok = n >= 0, password = true;
	if (ok && st->mech == SASL_PLAIN) {
		ok = sasl_plain_split(buf, (size_t)n, st->user, pass, &why);
	} else if (ok && !st->want_password) {
		ok = sasl_login_field(buf, (size_t)n, st->user, &why) && st->user[0] != '\0';
		why = ok ? why : "empty or invalid username";
		password = false;
	} else if (ok) {
		ok = sasl_login_field(buf, (size_t)n, pass, &why);
	}
	if (n > 0)
		explicit_bzero(buf, (size_t)n);
	if (!ok) {
		char line[200];
		snprintf(line, sizeof(line), "501 5.5.2 Error: invalid authentication response: %s",
			 why);
		sasl_abort(s, line);
	} else if (!password) {
		st->want_password = true;
		sasl_reply_prompt(s);
	} else {
		sasl_check(s, pass);
	}
	explicit_bzero(pass, sizeof(pass));
}

/* preauth_login - authenticated as the Unix user's LOGIN. */
static void preauth_login(struct session *s, const char *login)
{
	clean_name(s->sasl_username, login, sizeof(s->sasl_username));
	s->client.sasl_authenticated = true;
	s->client.sasl_username = s->sasl_username;
	log_ev(LOG_INFO, "auth", {"session", s->id}, {"client", "pickup"},
	       {"user", s->sasl_username}, {"mechanism", "unix-peer"});
}

/* on_pickup_user - the user database named the peer: greet, as that user. */
static void on_pickup_user(void *arg, const char *login)
{
	struct session *s = arg;
	session_pending_end(s);
	session_greet(s);
	preauth_login(s, login);
	session_resume_reading(s);
}

/* pickup_user_cancel - the client left first: its look-up is dropped. */
static void pickup_user_cancel(void *arg, bool timed_out)
{
	(void)timed_out;
	pickup_lookup_cancel(arg);
}

/* session_preauth - the pickup socket: the kernel names the user (SO_PEERCRED),
 * so the session is authenticated as that user's name, looked up on a worker
 * (PENDING_USER: the greeting waits for it, as for a client's DNS name);
 * ANY_SENDER (root) may name any sender, as sendmail lets root. Called once,
 * right after start; LOGIN ("uid<N>") is kept if the kernel cannot tell again. */
void session_preauth(struct session *s, const char *login, bool any_sender)
{
	s->client.pickup = true;
	s->client.pickup_any_sender = any_sender;
	struct pickup_peer peer;
	if (!pickup_peer(bufferevent_getfd(s->bev), &peer)) {
		session_greet(s);
		preauth_login(s, login);
		return;
	}
	struct pickup_lookup *l =
		pickup_lookup_start(server_workers(s->srv), peer.uid, on_pickup_user, s);
	session_pending_begin(s, PENDING_USER, pickup_user_cancel, l);
}
