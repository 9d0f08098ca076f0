/*
 * session.c - the SMTP server state machine (see session.h).
 *
 * STATES
 *	CONNECTED  greeting sent, no HELO/EHLO yet
 *	READY      HELO/EHLO done, no transaction
 *	MAIL       MAIL FROM accepted
 *	RCPT       at least one RCPT TO accepted
 *	DATA       reading the message (and, after the final dot, its commit)
 *	AUTH       AUTH given; the next line is a SASL response, not a command
 *	CLOSING    last reply being flushed; input ignored
 *
 *	PENDING (one at a time, see session_priv.h): the session waits for the
 *	client's name (DNS, or a pickup peer's Unix user), the AUTH backend,
 *	the spool, a command check, the end-of-data stages or the commit.
 *	Input stays buffered meanwhile;
 *	session_want_read() alone decides whether the socket is read.
 *
 *	STARTTLS (RFC 3207) answers 220, throws away whatever the client sent
 *	after it (CVE-2011-0411), puts TLS under the session and starts again
 *	from CONNECTED: HELO, AUTH and the transaction are forgotten.
 *
 *	Every state change goes through session_set_state(), every reply through
 *	session_reply(), which counts errors and ends a session that reaches
 *	smtpd_hard_error_limit.
 */
#include "smtp/session.h"
#include "smtp/session_priv.h"
#include "metrics/events.h"

#include "address/expand.h"
#include "abuse/abuse.h"
#include "auth/auth.h"
#include "auth/lockout.h"
#include "auth/sasl.h"
#include "dns/dns.h"
#include "policy/policy.h"
#include "queue/queue.h"
#include "smtp/dsn_param.h"
#include "smtp/server.h"
#include "tls/tls.h"
#include "util/log.h"
#include "util/util.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

static const char *const state_names[] = {"CONNECTED", "READY", "MAIL", "RCPT", "DATA",
					  "AUTH", "CLOSING"};

/* What each kind of wait means for the socket and for the client's events. */
static const struct pending_kind {
	const char *name;     /* in logs, where the state name would be */
	bool read_socket;     /* keep reading: a client that leaves is seen at once */
	bool owes_answer;     /* we owe the next reply: a timeout or EOF is not acted on */
	bool eof_ends;        /* nobody waits for the answer once the client is gone */
	bool held;            /* a worker job points at the session (see F_DEAD) */
	bool hup_ends;        /* only a peer that closed both ways is gone (see peer_hung_up) */
} pending_kinds[] = {
	[PENDING_NONE] = {NULL, true, false, false, false},
	/* we owe the greeting: the client, who may not talk first, is not timed out */
	[PENDING_LOOKUP] = {NULL, true, true, false, false},
	/* the same, but a client that leaves gives up its turn on the worker at
	 * once; one that half-closed after its commands (a pipe) is answered */
	[PENDING_USER] = {NULL, true, true, false, false, true},
	[PENDING_AUTH] = {"AUTH_WAIT", true, true, true, false}, /* AUTH is not pipelined */
	[PENDING_SPOOL] = {NULL, false, false, false, false},
	/* a check may take seconds of DNS: a client that leaves cancels it */
	[PENDING_CHECK] = {"CHECK", true, true, true, false},
	[PENDING_STAGES] = {"STAGES", false, true, false, true},
	[PENDING_COMMIT] = {"COMMIT", false, true, false, true}, /* no read timeout until 250 */
};

static unsigned long session_counter;

struct session_link *session_link(struct session *s)
{
	return &s->link;
}

const struct rg_ip *session_client_ip(const struct session *s)
{
	return &s->client.ip;
}

void session_set_state(struct session *s, enum state st)
{
	log_ev(LOG_DEBUG, "state", {"session", s->id}, {"from", state_names[s->state]},
	       {"to", state_names[st]});
	s->state = st;
}

/* session_state_name - for logs: the wait, if it has a name, else the state. */
const char *session_state_name(const struct session *s)
{
	const char *name = pending_kinds[s->pending].name;
	return name != NULL ? name : state_names[s->state];
}

void session_pending_begin(struct session *s, enum pending what, session_cancel_fn cancel,
			   void *arg)
{
	s->pending = what;
	s->pending_cancel = cancel;
	s->pending_arg = arg;
	session_update_read(s);
}

void session_pending_end(struct session *s)
{
	s->pending = PENDING_NONE;
	s->pending_cancel = NULL;
	s->pending_arg = NULL;
	if (s->check_ev != NULL)
		evtimer_del(s->check_ev);
}

bool session_pending_held(const struct session *s)
{
	return pending_kinds[s->pending].held;
}

/* pending_cancel - the session ends while it waits: stop what it waits for. */
static void pending_cancel(struct session *s)
{
	if (s->pending_cancel != NULL)
		s->pending_cancel(s->pending_arg, false);
	session_pending_end(s);
}

/* session_want_read - read the socket unless the client half-closed, does not
 * read our replies, the session is closing, or the wait says not to. */
bool session_want_read(const struct session *s)
{
	return !(s->flags & (F_EOF | F_OUTPUT_FULL | F_DEAD)) && s->state != S_CLOSING &&
	       pending_kinds[s->pending].read_socket;
}

void session_update_read(struct session *s)
{
	if (s->read_ev != NULL) {
		struct timeval tv = {(time_t)s->cfg->smtpd_timeout, 0};
		if (session_want_read(s) && !s->read_full)
			event_add(s->read_ev, &tv); /* the read timeout starts again, as before */
		else
			event_del(s->read_ev);
		return;
	}
	if (session_want_read(s))
		bufferevent_enable(s->bev, EV_READ);
	else
		bufferevent_disable(s->bev, EV_READ);
}

/* mark_dead - the client is gone while a worker job holds the session: no
 * more I/O; the job's callback sees F_DEAD and frees it. */
static void mark_dead(struct session *s)
{
	s->flags |= F_DEAD;
	bufferevent_disable(s->bev, EV_WRITE);
	session_update_read(s);
}

/* send_now - write a reply straight to the socket when nothing waits before
 * it and no pipelined command follows it (those replies go out together),
 * on a plain connection only (never under TLS, nor while it starts): it
 * then needs no write event (two epoll_ctl calls and a
 * loop round per reply). What the socket does not take, or an error,
 * goes to the bufferevent, which sends it or reports the failure. */
static size_t send_now(struct session *s, const char *line, size_t n)
{
	if ((s->flags & (F_DEAD | F_TLS)) || bufferevent_get_underlying(s->bev) != NULL ||
	    !(bufferevent_get_enabled(s->bev) & EV_WRITE) ||
	    evbuffer_get_length(bufferevent_get_output(s->bev)) != 0 ||
	    evbuffer_get_length(bufferevent_get_input(s->bev)) != 0)
		return 0;
	ssize_t w = send(bufferevent_getfd(s->bev), line, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	return w > 0 ? (size_t)w : 0;
}

/* reply - one reply line; error replies count towards smtpd_hard_error_limit. */
void session_reply(struct session *s, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)sizeof(line) - 3;
	memcpy(line + n, "\r\n", 2);
	log_flush(); /* what this reply answers is in the log before the client has it */
	size_t sent = send_now(s, line, (size_t)n + 2);
	if (sent < (size_t)n + 2)
		bufferevent_write(s->bev, line + sent, (size_t)n + 2 - sent);
	/* a 421 is the server ending the session, not another client error */
	if ((line[0] == '4' || line[0] == '5') && strncmp(line, "421", 3) != 0)
		s->errors++;
}

/* reply_error - an error reply, logged; ends the session at the error limit. */
void session_reply_error(struct session *s, const char *command, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	session_reply(s, "%s", line);
	log_ev(LOG_INFO, "reject", {"session", s->id}, {"client", s->ip_text},
	       {"command", command}, {"reply", line});
}

/* abuse_ok - EV is within the rate limits (abuse.c); else its reply is sent. */
bool session_abuse_ok(struct session *s, enum abuse_event ev)
{
	char line[ABUSE_REPLY_MAX];
	struct abuse_client c = {&s->client.ip, s->ip_text, s->client.sasl_username, s->id};
	if (abuse_check(server_abuse(s->srv), ev, &c, time(NULL), line, sizeof(line)))
		return true;
	session_reply(s, "%s", line);
	return false;
}

void session_check_error_limit(struct session *s)
{
	if (s->state == S_CLOSING || s->errors < s->cfg->smtpd_hard_error_limit)
		return;
	session_reply(s, "421 4.7.0 %s Error: too many errors", s->cfg->myhostname);
	log_ev(LOG_INFO, "too-many-errors", {"session", s->id}, {"client", s->ip_text});
	session_close(s);
}
/* tls_level - what this listener asks of TLS (submissions is TLS from the start). */
static enum tls_level tls_level(const struct session *s)
{
	switch (s->role) {
	case ROLE_MTA:
		return s->cfg->smtpd_tls_security_level;
	case ROLE_SUBMISSION:
		return s->cfg->submission_tls_security_level;
	case ROLE_SUBMISSIONS:
		return TLS_ENCRYPT;
	case ROLE_PICKUP: /* a local socket: nothing to encrypt against */
		return TLS_NONE;
	}
	return TLS_NONE;
}

static bool tls_offered(const struct session *s)
{
	return !(s->flags & F_TLS) && tls_level(s) != TLS_NONE && server_tls(s->srv) != NULL;
}

/* tls_missing - TLS is required here and not (yet) in place. */
static bool tls_missing(const struct session *s)
{
	return !(s->flags & F_TLS) && tls_level(s) == TLS_ENCRYPT;
}

/* auth_offered - AUTH is on, and allowed on this connection as it is now. */
bool session_auth_offered(const struct session *s)
{
	if (server_auth(s->srv) == NULL)
		return false;
	return (s->flags & F_TLS) || (!s->cfg->smtpd_tls_auth_only && !tls_missing(s));
}

/* helo_ok - one word of printable ASCII; the policy judges the name itself. */
static bool helo_ok(const char *arg)
{
	if (*arg == '\0' || strlen(arg) > HELO_MAX)
		return false;
	for (; *arg; arg++)
		if (*arg <= ' ' || *arg >= 0x7f)
			return false;
	return true;
}

static bool helo_check(struct session *s, char *arg)
{
	if (helo_ok(arg))
		return true;
	session_reply_error(s, "HELO", "501 5.5.4 Syntax: HELO hostname");
	return false;
}

static bool ehlo_check(struct session *s, char *arg)
{
	if (helo_ok(arg))
		return true;
	session_reply_error(s, "EHLO", "501 5.5.4 Syntax: EHLO hostname");
	return false;
}

/* helo_common - a new greeting: the name is kept, a transaction forgotten. */
static void helo_common(struct session *s, char *arg)
{
	free(s->helo);
	s->helo = xstrdup(arg);
	s->client.helo = s->helo;
	session_tx_free(s);
	session_set_state(s, S_READY);
}

static void cmd_helo(struct session *s, char *arg)
{
	helo_common(s, arg);
	s->flags &= ~(unsigned)F_EHLO;
	session_reply(s, "250 %s", s->cfg->myhostname);
}

static void cmd_ehlo(struct session *s, char *arg)
{
	helo_common(s, arg);
	s->flags |= F_EHLO;
	session_reply(s, "250-%s", s->cfg->myhostname);
	session_reply(s, "250-PIPELINING");
	session_reply(s, "250-SIZE %llu", (unsigned long long)s->cfg->message_size_limit);
	session_reply(s, "250-8BITMIME");
	session_reply(s, "250-DSN");
	if (tls_offered(s))
		session_reply(s, "250-STARTTLS");
	if (session_auth_offered(s))
		session_reply(s, "250-AUTH PLAIN LOGIN");
	session_reply(s, "250 ENHANCEDSTATUSCODES");
}

/* need_helo - MAIL/RCPT/DATA before HELO/EHLO. */
bool session_need_helo(struct session *s, const char *verb)
{
	if (s->state != S_CONNECTED)
		return true;
	session_reply_error(s, verb, "503 5.5.1 Error: send HELO/EHLO first");
	return false;
}

/* dsn_mail_param - RET= and ENVID= (RFC 3461); false after a reply. */
static bool dsn_mail_param(struct session *s, struct transaction *tx, const char *p)
{
	bool ret = rg_str_has_prefix_ci(p, "RET=");
	char *field = ret ? tx->dsn_ret : tx->dsn_envid;
	size_t len = ret ? sizeof(tx->dsn_ret) : sizeof(tx->dsn_envid);
	if (field[0] != '\0') {
		session_reply_error(s, "MAIL", "501 5.5.4 Error: %.5s given twice", p);
		return false;
	}
	if (ret ? dsn_param_ret(p + 4, field, len) : dsn_param_envid(p + 6, field, len))
		return true;
	session_reply_error(s, "MAIL", ret ? "501 5.5.4 Bad RET= value (FULL or HDRS)"
				   : "501 5.5.4 Bad ENVID= value (xtext, at most 100 characters)");
	return false;
}

/* mail_params - SIZE=, BODY=, RET=, ENVID= (after EHLO only). */
static bool mail_params(struct session *s, struct transaction *tx, char *params, uint64_t *size)
{
	char *save = NULL;
	bool seen_size = false, seen_body = false;
	for (char *p = strtok_r(params, " ", &save); p; p = strtok_r(NULL, " ", &save)) {
		if (!(s->flags & F_EHLO)) {
			session_reply_error(s, "MAIL", "555 5.5.4 Error: parameters need EHLO, not HELO");
			return false;
		}
		if (rg_str_has_prefix_ci(p, "SIZE=") && !seen_size) {
			seen_size = true;
			if (!rg_parse_u64(p + 5, size)) {
				session_reply_error(s, "MAIL", "501 5.5.4 Bad SIZE= value");
				return false;
			}
		} else if (rg_str_has_prefix_ci(p, "BODY=") && !seen_body) {
			seen_body = true;
			if (rg_strcasecmp(p + 5, "7BIT") != 0 && rg_strcasecmp(p + 5, "8BITMIME") != 0) {
				session_reply_error(s, "MAIL", "501 5.5.4 Unsupported BODY= value (7BIT or 8BITMIME)");
				return false;
			}
		} else if (rg_str_has_prefix_ci(p, "RET=") || rg_str_has_prefix_ci(p, "ENVID=")) {
			if (!dsn_mail_param(s, tx, p))
				return false;
		} else if (rg_str_has_prefix_ci(p, "AUTH=") && server_auth(s->srv) != NULL) {
			/* RFC 4954 5: an identity for relayed mail; we trust only our own AUTH */
		} else if (rg_str_has_prefix_ci(p, "SIZE=") || rg_str_has_prefix_ci(p, "BODY=")) {
			session_reply_error(s, "MAIL", "501 5.5.4 Error: %.5s given twice", p);
			return false;
		} else {
			session_reply_error(s, "MAIL", "555 5.5.4 Unsupported option: %.100s", p);
			return false;
		}
	}
	return true;
}

/* address_reply - the reply for a path that did not parse. */
static void address_reply(struct session *s, const char *verb, enum addr_error e,
			  bool sender, const char *why)
{
	const char *status = sender ? "5.1.7" : "5.1.3";
	const char *what = sender ? "sender" : "recipient";
	if (e == ADDR_ERR_NON_ASCII)
		session_reply_error(s, verb, "553 5.6.7 Bad %s address: %s", what, why);
	else
		session_reply_error(s, verb, "501 %s Bad %s address syntax: %s", status, what, why);
}

/* log_mail_refused - the line for a MAIL refused by policy. */
static void log_mail_refused(const struct session *s, const struct transaction *tx,
			     const struct policy_decision *d)
{
	char from[ADDR_PATH_MAX + 3];
	snprintf(from, sizeof(from), "<%s>", tx->sender.text);
	log_ev(LOG_INFO, "mail-refused", {"session", s->id}, {"client", s->ip_text},
	       {"from", from}, {"user", s->client.sasl_username},
	       {"restriction", d->restriction}, {"list", d->list}, {"reply", d->reply});
}

/* submission_mail_ok - a submission port refuses at MAIL what its client and
 * sender lists refuse: 530 before AUTH, 553 for an address the login does not own. */
static bool submission_mail_ok(struct session *s, struct transaction *tx)
{
	struct policy_request req = {&s->client, &tx->sender, NULL, &tx->sender_res, NULL, tx->spf};
	struct policy_decision d;
	policy_check_mail(s->cfg, &req, &d);
	if (d.action == POLICY_ACCEPT)
		return true;
	log_mail_refused(s, tx, &d);
	if (d.list == s->cfg->submission_client.param && !s->client.sasl_authenticated &&
	    d.action == POLICY_REJECT)
		session_reply(s, "530 5.7.0 Authentication required");
	else
		session_reply(s, "%s", d.reply);
	return false;
}

/* owned_sender_ok - on any port, an authenticated client is refused at MAIL a
 * sender its login does not own (553), as the README promises. */
static bool owned_sender_ok(struct session *s, struct transaction *tx)
{
	struct policy_request req = {&s->client, &tx->sender, NULL, &tx->sender_res, NULL, tx->spf};
	struct policy_decision d;
	if (policy_sender_owned(s->cfg, &req, &d))
		return true;
	log_mail_refused(s, tx, &d);
	session_reply(s, "%s", d.reply);
	return false;
}

/* queue_space_refused - Postfix's answer when the queue file system is short
 * of queue_minfree (plus SIZE=): before the disk is full, not after. */
static void queue_space_refused(struct session *s, uint64_t size)
{
	char need[24];
	snprintf(need, sizeof(need), "%llu", (unsigned long long)size);
	log_ev(LOG_WARNING, "queue-space-low", {"session", s->id}, {"client", s->ip_text},
	       {"size", need});
	session_reply_error(s, "MAIL", "452 4.3.1 Insufficient system storage");
}

static bool mail_check_start(struct session *s);

static bool mail_check(struct session *s, char *arg)
{
	if (!session_need_helo(s, "MAIL"))
		return false;
	if (s->state != S_READY || s->tx != NULL) {
		session_reply_error(s, "MAIL", "503 5.5.1 Error: nested MAIL command");
		return false;
	}
	if (tls_missing(s)) {
		session_reply_error(s, "MAIL", "530 5.7.0 Must issue a STARTTLS command first");
		return false;
	}
	if (!rg_str_has_prefix_ci(arg, "FROM:")) {
		session_reply_error(s, "MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>");
		return false;
	}
	return true;
}

/* mail_parse - the path, its parameters, SIZE= against the limits and the
 * queue's free space; NULL after a reply. */
static struct transaction *mail_parse(struct session *s, char *arg)
{
	struct transaction *tx = xcalloc(1, sizeof(*tx));
	const char *params;
	char why[160];
	enum addr_error e = address_parse(arg + 5, &tx->sender, &params, why, sizeof(why));
	uint64_t size = 0;
	char *pcopy = e == ADDR_OK ? xstrdup(params) : NULL;
	if (e != ADDR_OK)
		address_reply(s, "MAIL", e, true, why);
	else if (!mail_params(s, tx, pcopy, &size))
		e = ADDR_ERR_SYNTAX;
	else if (size > s->cfg->message_size_limit) {
		session_reply_error(s, "MAIL", "552 5.3.4 Message size exceeds fixed limit of %llu bytes",
			    (unsigned long long)s->cfg->message_size_limit);
		e = ADDR_ERR_SYNTAX;
	} else if (!server_queue_space_ok(s->srv, size)) {
		queue_space_refused(s, size);
		e = ADDR_ERR_SYNTAX;
	}
	free(pcopy);
	if (e == ADDR_OK)
		return tx;
	free(tx);
	return NULL;
}

/* mail_decide - the sender restrictions, then 250 or the refusal. */
static void mail_decide(struct session *s)
{
	struct transaction *tx = s->tx;
	if (s->client.submission ? !submission_mail_ok(s, tx) : !owned_sender_ok(s, tx)) {
		session_tx_free(s);
		return;
	}
	session_set_state(s, S_MAIL);
	char from[ADDR_PATH_MAX + 3];
	snprintf(from, sizeof(from), "<%s>", tx->sender.text);
	log_ev(LOG_INFO, "mail", {"session", s->id}, {"client", s->ip_text}, {"from", from});
	session_reply(s, "250 2.1.0 Ok");
}

static void mail_proceed(struct session *s, char *arg)
{
	struct transaction *tx = mail_parse(s, arg);
	if (tx == NULL)
		return;
	address_resolve(&tx->sender, s->domains, &tx->sender_res);
	/* counted before the sender checks: attempts count, as in Postfix's anvil */
	if (!session_abuse_ok(s, ABUSE_MESSAGE)) {
		free(tx);
		return;
	}
	s->tx = tx; /* still READY: the sender is not accepted yet */
	if (!mail_check_start(s))
		mail_decide(s);
}

/* on_check_timeout - the MAIL check took too long: stop it and go on. */
static void on_check_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	(void)fd;
	(void)what;
	if (s->pending != PENDING_CHECK)
		return;
	log_ev(LOG_WARNING, "mail-check-timeout", {"session", s->id}, {"client", s->ip_text});
	if (s->pending_cancel != NULL)
		s->pending_cancel(s->pending_arg, true);
	s->pending_cancel = NULL;
	session_resume_mail(s);
}

/* mail_check_start - the registered MAIL hook, if any; true when it waits. */
static bool mail_check_start(struct session *s)
{
	const struct session_hooks *h = session_hooks();
	if (h->mail_check == NULL)
		return false;
	struct session_mail_facts f = {&s->client.ip, s->ip_text, s->helo, s->tx->sender.text,
				       s->client.sasl_authenticated};
	struct session_wait w = {NULL, NULL, 0};
	if (!h->mail_check(s, &f, &w, h->mail_arg))
		return false;
	if (w.cancel == NULL)
		log_ev(LOG_ERROR, "bug", {"session", s->id}, {"reason", "mail check without cancel"});
	uint64_t ms = w.timeout_ms ? w.timeout_ms : s->cfg->smtpd_timeout * 1000;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};
	if (s->check_ev == NULL)
		s->check_ev = evtimer_new(server_base(s->srv), on_check_timeout, s);
	session_pending_begin(s, PENDING_CHECK, w.cancel, w.arg);
	evtimer_add(s->check_ev, &tv);
	return true;
}

void session_resume_mail(struct session *s)
{
	if (s->pending != PENDING_CHECK || s->tx == NULL)
		return; /* cancelled: nothing waits for this any more */
	session_pending_end(s);
	mail_decide(s);
	session_check_error_limit(s);
	if (s->state != S_CLOSING)
		session_resume_reading(s);
}

/* log_rcpt - the one line per RCPT decision that operators grep for. */
static void log_rcpt(struct session *s, const struct address *rcpt,
		     const struct addr_resolution *res, const struct policy_decision *d)
{
	static const char *const results[] = {"accept", "reject", "defer"};
	char from[ADDR_PATH_MAX + 3], to[ADDR_PATH_MAX + 3], routing[80], dest[400];
	snprintf(from, sizeof(from), "<%s>", s->tx->sender.text);
	snprintf(to, sizeof(to), "<%s>", rcpt->text);
	address_routing_names(rcpt->routing, routing, sizeof(routing));
	snprintf(dest, sizeof(dest), "%s@%s", res->local, res->domain);
	mev_rcpt(results[d->action], d->restriction);
	log_ev(d->action == POLICY_ACCEPT ? LOG_INFO : LOG_INFO, "rcpt",
	       {"session", s->id}, {"client", s->ip_text}, {"helo", s->helo},
	       {"from", from}, {"to", to}, {"class", address_class_name(res->cls)},
	       {"destination", dest}, {"routing", rcpt->routing ? routing : NULL},
	       {"result", results[d->action]}, {"restriction", d->restriction},
	       {"list", d->list}, {"reply", d->reply});
}

/* rcpt_known - the same final address twice is accepted once. */
static bool rcpt_known(const struct transaction *tx, const struct addr_resolution *r)
{
	for (size_t i = 0; tx->msg && i < tx->msg->n_rcpts; i++)
		if (strcmp(tx->msg->rcpts[i].local, r->local) == 0 &&
		    strcmp(tx->msg->rcpts[i].domain, r->domain) == 0)
			return true;
	return false;
}

static void rcpt_accept(struct session *s, const struct address *a,
			const struct addr_resolution *r, const char *notify, const char *orcpt)
{
	struct transaction *tx = s->tx;
	if (tx->msg == NULL)
		tx->msg = xcalloc(1, sizeof(struct queue_msg));
	if (!rcpt_known(tx, r)) /* aliases expanded here: the queue holds final addresses */
		expand_queue_rcpt(s->cfg, s->domains, tx->msg, a, r, notify, orcpt);
	tx->n_rcpts++;
	session_set_state(s, S_RCPT);
	session_reply(s, "250 2.1.5 Ok");
}

/* rcpt_params - NOTIFY= and ORCPT= (RFC 3461), each once; false after a reply. */
static bool rcpt_params(struct session *s, const char *params, char *notify, char *orcpt)
{
	char *copy = xstrdup(params), *save = NULL;
	bool ok = true;
	for (char *p = strtok_r(copy, " ", &save); p && ok; p = strtok_r(NULL, " ", &save)) {
		bool is_notify = rg_str_has_prefix_ci(p, "NOTIFY=");
		if (!(s->flags & F_EHLO)) {
			session_reply_error(s, "RCPT", "555 5.5.4 Error: parameters need EHLO, not HELO");
			ok = false;
		} else if (!is_notify && !rg_str_has_prefix_ci(p, "ORCPT=")) {
			session_reply_error(s, "RCPT", "555 5.5.4 Unsupported option: %.100s", p);
			ok = false;
		} else if ((is_notify ? notify : orcpt)[0] != '\0') {
			session_reply_error(s, "RCPT", "501 5.5.4 Error: %.6s given twice", p);
			ok = false;
		} else if (is_notify ? !dsn_param_notify(p + 7, notify, 32)
				     : !dsn_param_orcpt(p + 6, orcpt, DSN_ORCPT_MAX + 16)) {
			session_reply_error(s, "RCPT", is_notify
				    ? "501 5.5.4 Bad NOTIFY= value (NEVER, or SUCCESS, FAILURE, DELAY)"
				    : "501 5.5.4 Bad ORCPT= value (addr-type;xtext)");
			ok = false;
		}
	}
	free(copy);
	return ok;
}

static bool rcpt_check(struct session *s, char *arg)
{
	if (!session_need_helo(s, "RCPT"))
		return false;
	if (s->state != S_MAIL && s->state != S_RCPT) {
		session_reply_error(s, "RCPT", "503 5.5.1 Error: need MAIL command");
		return false;
	}
	if (!rg_str_has_prefix_ci(arg, "TO:")) {
		session_reply_error(s, "RCPT", "501 5.5.4 Syntax: RCPT TO:<address>");
		return false;
	}
	return true;
}

static void rcpt_proceed(struct session *s, char *arg)
{
	struct address a;
	struct addr_resolution r;
	const char *params;
	char why[160];
	enum addr_error e = address_parse(arg + 3, &a, &params, why, sizeof(why));
	if (e == ADDR_OK && a.null) {
		e = ADDR_ERR_SYNTAX;
		rg_strlcpy(why, "the null address <> cannot receive mail", sizeof(why));
	}
	if (e != ADDR_OK) {
		address_reply(s, "RCPT", e, false, why);
		return;
	}
	char notify[32] = "", orcpt[DSN_ORCPT_MAX + 16] = "";
	if (!rcpt_params(s, params, notify, orcpt))
		return;
	if (s->tx->n_rcpts >= s->cfg->smtpd_recipient_limit) {
		session_reply_error(s, "RCPT", "452 4.5.3 Error: too many recipients");
		return;
	}
	/* counted before the policy: attempts count (a relay probe too), as in Postfix */
	if (!session_abuse_ok(s, ABUSE_RECIPIENT)) /* it replied 452 and logged rate-limit */
		return;
	address_resolve(&a, s->domains, &r);
	struct policy_request req = {&s->client, &s->tx->sender, &a, &s->tx->sender_res, &r,
				     s->tx->spf};
	struct policy_decision d;
	policy_check_rcpt(s->cfg, &req, &d);
	log_rcpt(s, &a, &r, &d);
	if (d.action != POLICY_ACCEPT)
		session_reply(s, "%s", d.reply);
	else
		rcpt_accept(s, &a, &r, notify, orcpt);
}


/* junk_command - NOOP, RSET, VRFY, HELP: free up to a point, then they are errors,
 * so a client cannot hold a connection open for ever with them. */
static void junk_command(struct session *s)
{
	if (++s->junk > s->cfg->smtpd_junk_command_limit)
		s->errors++;
}

static void cmd_rset(struct session *s, char *arg)
{
	(void)arg;
	junk_command(s);
	session_tx_reset(s);
	session_reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(struct session *s, char *arg)
{
	(void)arg;
	junk_command(s);
	session_reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct session *s, char *arg)
{
	(void)arg;
	session_reply(s, "221 2.0.0 Bye");
	session_close(s);
}

static void cmd_help(struct session *s, char *arg)
{
	(void)arg;
	junk_command(s);
	session_reply(s, "214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY");
	session_reply(s, "214 2.0.0 See RFC 5321");
}

static void cmd_vrfy(struct session *s, char *arg)
{
	(void)arg;
	junk_command(s);
	/* never reveal which users exist */
	session_reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_expn(struct session *s, char *arg)
{
	(void)arg;
	session_reply_error(s, "EXPN", "502 5.5.1 Error: EXPN is not supported");
}

static bool starttls_check(struct session *s, char *arg)
{
	if (s->flags & F_TLS) {
		session_reply_error(s, "STARTTLS", "554 5.5.1 Error: TLS already active");
		return false;
	}
	if (!tls_offered(s)) {
		session_reply_error(s, "STARTTLS", "502 5.5.1 Error: command not implemented");
		return false;
	}
	if (*arg != '\0') {
		session_reply_error(s, "STARTTLS", "501 5.5.4 Syntax: STARTTLS");
		return false;
	}
	if (s->state != S_READY && s->state != S_CONNECTED) {
		session_reply_error(s, "STARTTLS", "503 5.5.1 Error: MAIL transaction in progress");
		return false;
	}
	return true;
}

static void starttls_proceed(struct session *s, char *arg)
{
	(void)arg;
	session_reply(s, "220 2.0.0 Ready to start TLS");
	s->flags |= F_STARTTLS; /* process_input switches before reading another byte */
}


static void cmd_not_implemented(struct session *s, char *arg)
{
	(void)arg;
	session_reply_error(s, "?", "502 5.5.1 Error: command not implemented");
}

static void cmd_non_smtp(struct session *s, char *arg)
{
	(void)arg;
	session_reply(s, "421 4.7.0 %s Error: this is an SMTP server; closing", s->cfg->myhostname);
	log_ev(LOG_INFO, "non-smtp-command", {"session", s->id}, {"client", s->ip_text});
	session_close(s);
}

/*
 * The command table. check: state, syntax and policy preconditions; it sends
 * its own error reply and returns false, or returns true (NULL: nothing to
 * check). proceed: does the work, and may still refuse (a sender policy, say).
 */
static const struct command {
	const char *verb;
	bool (*check)(struct session *s, char *arg);
	void (*proceed)(struct session *s, char *arg);
} commands[] = {
	{"HELO", helo_check, cmd_helo},
	{"EHLO", ehlo_check, cmd_ehlo},
	{"MAIL", mail_check, mail_proceed},
	{"RCPT", rcpt_check, rcpt_proceed},
	{"DATA", session_data_check, session_data_proceed},
	{"RSET", NULL, cmd_rset},
	{"NOOP", NULL, cmd_noop},
	{"QUIT", NULL, cmd_quit},
	{"HELP", NULL, cmd_help},
	{"VRFY", NULL, cmd_vrfy},
	{"EXPN", NULL, cmd_expn},
	{"STARTTLS", starttls_check, starttls_proceed},
	{"AUTH", session_auth_check, session_auth_proceed},
	{"BDAT", NULL, cmd_not_implemented},
	{"ETRN", NULL, cmd_not_implemented},
	{"TURN", NULL, cmd_not_implemented},
	/* a web browser or proxy talking to the mail port */
	{"GET", NULL, cmd_non_smtp},
	{"POST", NULL, cmd_non_smtp},
	{"HEAD", NULL, cmd_non_smtp},
	{"PUT", NULL, cmd_non_smtp},
	{"CONNECT", NULL, cmd_non_smtp},
	{"USER", NULL, cmd_non_smtp},
};

/* line_ok - a command line has only printable ASCII, spaces and tabs. */
static const char *line_problem(const char *line, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c == '\n')
			return "500 5.5.2 Error: bare <LF> received; lines must end with <CR><LF>";
		if (c == '\r')
			return "500 5.5.2 Error: bare <CR> received; lines must end with <CR><LF>";
		if (c == 0)
			return "500 5.5.2 Error: NUL byte in command";
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return "500 5.5.2 Error: control character in command";
	}
	return NULL;
}

/* command_find - the table row for a verb (any case), or NULL. */
static const struct command *command_find(const char *verb, size_t len)
{
	for (size_t i = 0; i < RG_ARRAY_LEN(commands); i++)
		if (strlen(commands[i].verb) == len && rg_strncasecmp(verb, commands[i].verb, len) == 0)
			return &commands[i];
	return NULL;
}

static void handle_command(struct session *s, char *line, size_t n)
{
	const char *problem = line_problem(line, n);
	if (problem != NULL) {
		session_reply_error(s, "?", "%s", problem);
		return;
	}
	char *arg = line + strcspn(line, " ");
	size_t verb_len = (size_t)(arg - line);
	if (*arg == ' ')
		arg++;
	const struct command *c = command_find(line, verb_len);
	mev_command(c ? c->verb : NULL);
	if (c != NULL) {
		arg = rg_str_trim(arg);
		if (c->check == NULL || c->check(s, arg))
			c->proceed(s, arg);
		return;
	}
	if (n == 0)
		session_reply_error(s, "?", "500 5.5.2 Error: empty command");
	else
		session_reply_error(s, "?", "500 5.5.2 Error: command not recognized");
}

/* The extensions we offer lengthen the lines that carry their parameters
 * (RFC 5321 4.5.3.1.4 allows it): RFC 3461 3 (5) and (6), DSN: MAIL by 100
 * octets (RET=, ENVID=), RCPT by 500 (NOTIFY=, ORCPT=); RFC 4954 3: MAIL by
 * another 500 (AUTH=). Still a bound: a longer line is refused. */
#define MAIL_LINE_MAX (CMD_LINE_MAX + 100 + 500)
#define RCPT_LINE_MAX (CMD_LINE_MAX + 500)
_Static_assert(MAIL_LINE_MAX <= AUTH_LINE_MAX && RCPT_LINE_MAX <= AUTH_LINE_MAX,
	       "next_command's line[] holds every line");

/* line_limit - AUTH lines and SASL responses may be longer than commands, and
 * MAIL and RCPT lines longer than the others. */
static size_t line_limit(struct session *s, struct evbuffer *in)
{
	char head[5];
	if (s->state == S_AUTH)
		return AUTH_LINE_MAX;
	if (evbuffer_copyout(in, head, sizeof(head)) != (ev_ssize_t)sizeof(head))
		return CMD_LINE_MAX;
	if (rg_strncasecmp(head, "AUTH ", 5) == 0)
		return AUTH_LINE_MAX;
	if (rg_strncasecmp(head, "MAIL ", 5) == 0)
		return MAIL_LINE_MAX;
	if (rg_strncasecmp(head, "RCPT ", 5) == 0)
		return RCPT_LINE_MAX;
	return CMD_LINE_MAX;
}

/* next_command - one complete command line, or false when more input is needed.
 * A line ends only at CRLF; a bare LF is answered as an error at once, so a
 * client that sends one is not left waiting for a reply that never comes. */

static bool next_command(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t avail = evbuffer_get_length(in), limit = line_limit(s, in);
	struct evbuffer_ptr p = evbuffer_search(in, "\n", 1, NULL);
	if (p.pos < 0) {
		if (avail >= limit) {
			/* keep the last byte: it may be the CR of a CRLF */
			evbuffer_drain(in, avail - 1);
			s->flags |= F_DISCARD_LINE;
			s->discard_limit = limit;
		}
		return false;
	}
	size_t n = (size_t)p.pos;
	char cr = 0;
	if (n > 0) {
		struct evbuffer_ptr before;
		evbuffer_ptr_set(in, &before, n - 1, EVBUFFER_PTR_SET);
		evbuffer_copyout_from(in, &before, &cr, 1);
	}
	bool discard = (s->flags & F_DISCARD_LINE) != 0;
	s->flags &= ~(unsigned)F_DISCARD_LINE;
	if (cr != '\r') {
		evbuffer_drain(in, n + 1);
		session_reply_error(s, "?", "500 5.5.2 Error: bare <LF> received; lines must end with <CR><LF>");
		return true;
	}
	if (discard || n + 1 > limit) {
		evbuffer_drain(in, n + 1);
		if (discard)
			limit = s->discard_limit;
		if (s->state == S_AUTH) {
			session_sasl_end(s);
			session_set_state(s, S_READY);
		}
		session_reply_error(s, "?", "500 5.5.2 Error: line too long (the limit is %zu octets)",
			    limit);
		return true;
	}
	char line[AUTH_LINE_MAX];
	evbuffer_remove(in, line, n + 1);
	line[n - 1] = '\0';
	if (s->state == S_AUTH)
		session_sasl_step(s, line); /* a response, not a command */
	else
		handle_command(s, line, n - 1);
	explicit_bzero(line, n + 1); /* it may have held a password */
	return true;
}


static void start_tls(struct session *s);

static void on_stalled(evutil_socket_t fd, short what, void *arg);

/* arm_stall - a session that waits for the client to read its replies (or its
 * last one) ends after smtpd_timeout whatever the bufferevent does: under TLS,
 * libevent may stop watching a socket whose peer is gone. */
static void arm_stall(struct session *s)
{
	struct timeval tv = {(time_t)s->cfg->smtpd_timeout, 0};
	if (s->stall_ev == NULL)
		s->stall_ev = evtimer_new(server_base(s->srv), on_stalled, s);
	evtimer_add(s->stall_ev, &tv);
}

static uint64_t now_ms(void)
{
	return rg_now_ms();
}

static void on_deadline(evutil_socket_t fd, short what, void *arg);

/* deadline_arm - smtpd_per_record_deadline: the record being read (a command
 * line, or the message text) must be complete within ms, however the client
 * spreads its bytes; the bufferevent's timeout alone restarts at every read. */
static void deadline_arm(struct session *s, uint64_t ms)
{
	if (!s->cfg->smtpd_per_record_deadline)
		return;
	if (s->deadline_ev == NULL)
		s->deadline_ev = evtimer_new(server_base(s->srv), on_deadline, s);
	s->deadline_ms = now_ms() + ms;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000)};
	evtimer_add(s->deadline_ev, &tv);
}

void session_deadline_reset(struct session *s)
{
	deadline_arm(s, s->cfg->smtpd_timeout * 1000);
}

/* deadline_credit - smtpd_min_data_rate: n octets of message text earn n/rate
 * seconds more, but never more than smtpd_timeout in hand, so a fast start
 * does not buy a slow finish. */
void session_deadline_credit(struct session *s, size_t n)
{
	if (!s->cfg->smtpd_per_record_deadline || n == 0)
		return;
	uint64_t now = now_ms(), cap = s->cfg->smtpd_timeout * 1000;
	uint64_t left = s->deadline_ms > now ? s->deadline_ms - now : 0;
	left += (uint64_t)n * 1000 / s->cfg->smtpd_min_data_rate;
	deadline_arm(s, left < cap ? left : cap);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	(void)fd;
	(void)what;
	if (s->state == S_CLOSING)
		return; /* the stall timer bounds the last reply */
	if (s->pending != PENDING_NONE ||
	    (s->flags & (F_OUTPUT_FULL | F_HANDSHAKE | F_EOF))) {
		session_deadline_reset(s); /* we owe the next step, not the client */
		return;
	}
	log_ev(LOG_INFO, "timeout", {"session", s->id}, {"client", s->ip_text},
	       {"state", session_state_name(s)}, {"reason", "smtpd_per_record_deadline"});
	session_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->myhostname);
	session_close(s);
}

static void process_input(struct session *s);

/* session_process_input - the commands or message text read so far; then,
 * if sock_read stopped at the input limit and there is room again, reading
 * goes on (the bufferevent did the same for its own reads). */
void session_process_input(struct session *s)
{
	bool was_full = s->read_full; /* else s may be gone after process_input */
	process_input(s);
	if (was_full && s->read_full && s->state != S_CLOSING &&
	    evbuffer_get_length(bufferevent_get_input(s->bev)) < INPUT_HIGH_WATER) {
		s->read_full = false;
		session_update_read(s);
	}
}

static void process_input(struct session *s)
{
	for (;;) {
		if (s->flags & F_STARTTLS) {
			start_tls(s);
			return;
		}
		if (s->state == S_CLOSING || s->pending != PENDING_NONE)
			return;
		if ((s->flags & F_SHUTDOWN) && s->state != S_DATA) {
			session_shutdown(s);
			return;
		}
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) > OUTPUT_HIGH_WATER) {
			s->flags |= F_OUTPUT_FULL; /* resumed by on_write when the client reads */
			session_update_read(s);
			arm_stall(s);
			return;
		}
		bool in_data = s->state == S_DATA;
		bool progress = in_data ? session_data_input(s) : next_command(s);
		if (progress && !in_data)
			session_deadline_reset(s); /* a whole command line: the next record starts */
		session_check_error_limit(s);
		if (!progress)
			return;
	}
}

void session_free(struct session *s)
{
	char messages[24], errors[24];
	snprintf(messages, sizeof(messages), "%u", s->messages);
	snprintf(errors, sizeof(errors), "%u", s->errors);
	log_ev(LOG_INFO, "disconnect", {"session", s->id}, {"client", s->ip_text},
	       {"messages", messages}, {"errors", errors});
	server_session_closed(s->srv, s);
	if (!session_pending_held(s))
		pending_cancel(s);
	if (s->dnsq)
		dns_cancel(s->dnsq);
	session_sasl_end(s);
	session_tx_free(s);
	if (s->free_ev)
		event_free(s->free_ev);
	if (s->stall_ev)
		event_free(s->stall_ev);
	if (s->deadline_ev)
		event_free(s->deadline_ev);
	if (s->check_ev)
		event_free(s->check_ev);
	if (s->read_ev)
		event_free(s->read_ev);
	if (s->bev)
		bufferevent_free(s->bev);
	free(s->helo);
	free(s);
}

static void on_free_later(evutil_socket_t fd, short what, void *arg);
static void on_closing_event(struct bufferevent *bev, short what, void *arg);

/* free_soon - free S from the loop, once whatever callback we are in has returned. */
static void free_soon(struct session *s)
{
	static const struct timeval now = {0, 0};
	if (s->free_ev == NULL)
		s->free_ev = evtimer_new(server_base(s->srv), on_free_later, s);
	evtimer_add(s->free_ev, &now);
}

/* on_socket_drained - under STARTTLS the encrypted last reply is still in the
 * plain bufferevent below the TLS filter; free once that has left too. */
static void on_socket_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info,
			      void *arg)
{
	(void)info;
	struct session *s = arg;
	/* the TLS layer moves its records down in pieces: the buffer below can
	 * run empty while more of the last replies wait above it */
	if (evbuffer_get_length(buf) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		free_soon(s);
}

/* free_when_sent - the TLS layer's output is empty: free once the socket has
 * taken the encrypted bytes too (they wait in the plain bufferevent below). */
static void free_when_sent(struct session *s)
{
	struct bufferevent *below = bufferevent_get_underlying(s->bev);
	if (below != NULL && evbuffer_get_length(bufferevent_get_output(below)) > 0) {
		bufferevent_setcb(s->bev, NULL, NULL, on_closing_event, s);
		evbuffer_add_cb(bufferevent_get_output(below), on_socket_drained, s);
		return;
	}
	free_soon(s);
}

/* on_drained - the last reply has left; now the session can go. */
static void on_drained(struct bufferevent *bev, void *arg)
{
	(void)bev;
	free_when_sent(arg);
}

static void on_closing_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	session_free(arg); /* the client went away before reading our last reply */
}

static void on_stalled(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	(void)fd;
	(void)what;
	log_ev(LOG_INFO, "timeout", {"session", s->id}, {"client", s->ip_text},
	       {"state", session_state_name(s)}, {"reason", "replies not read"});
	if (session_pending_held(s)) { /* the worker's callback frees it */
		mark_dead(s);
		return;
	}
	session_set_state(s, S_CLOSING);
	session_free(s);
}

static void on_free_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	session_free(arg);
}

/* session_close - flush what is queued for the client, then free (never at once:
 * the caller may still be inside this session's command loop). */
void session_close(struct session *s)
{
	if (s->state == S_CLOSING)
		return;
	session_sasl_end(s); /* no backend answer may come back to a closing session */
	if (!session_pending_held(s))
		pending_cancel(s); /* nor an asynchronous check's */
	session_set_state(s, S_CLOSING);
	if (s->flags & F_HANDSHAKE) { /* nothing can be sent before the handshake */
		free_soon(s);
		return;
	}
	session_update_read(s);
	arm_stall(s); /* a last reply nobody reads is not waited for longer */
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0); /* on_drained: really empty */
	bufferevent_setcb(s->bev, NULL, on_drained, on_closing_event, s);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		free_when_sent(s);
}

/* end_if_eof - after a half-close, close once the buffered commands are answered. */
void session_end_if_eof(struct session *s)
{
	if (!(s->flags & F_EOF) || s->state == S_CLOSING || s->pending != PENDING_NONE ||
	    (s->flags & F_OUTPUT_FULL))
		return; /* still owed: the greeting, a commit, or replies to flush first */
	if (s->state != S_READY && s->state != S_CONNECTED)
		log_ev(LOG_INFO, "lost-connection", {"session", s->id}, {"client", s->ip_text},
		       {"state", session_state_name(s)});
	session_close(s);
}

#define READ_CHUNK (64 * 1024) /* one read of a plain connection, at most */

static void on_event(struct bufferevent *bev, short what, void *arg);

/* sock_read - a plain connection's input, read here rather than by the
 * bufferevent: libevent 2.1 asks FIONREAD before every read and reads at
 * most 4096 bytes, so a 4 KiB message cost two rounds of epoll_wait, ioctl
 * and readv. What is read goes into the bufferevent's input buffer, where
 * the session reads it as before; EOF, errors and the read timeout go to
 * on_event as the bufferevent's would. */
static void sock_read(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	if (what & EV_TIMEOUT) {
		event_del(s->read_ev);
		on_event(s->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, s);
		return;
	}
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t held = evbuffer_get_length(in);
	if (held >= INPUT_HIGH_WATER) { /* session_process_input starts it again */
		s->read_full = true;
		event_del(s->read_ev);
		session_process_input(s);
		return;
	}
	size_t want = INPUT_HIGH_WATER - held < READ_CHUNK ? INPUT_HIGH_WATER - held : READ_CHUNK;
	/* into one buffer of the loop's, then only what came into the session's
	 * input: a client that sends half a line and waits holds what it sent,
	 * not a 64 KiB reservation (1000 such sessions would hold 128 MiB) */
	static char buf[READ_CHUNK];
	ssize_t n = recv(fd, buf, want, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n > 0) {
		evbuffer_unfreeze(in, 0); /* the bufferevent keeps its input's end frozen */
		int added = evbuffer_add(in, buf, (size_t)n);
		evbuffer_freeze(in, 0);
		if (added != 0)
			n = -1; /* out of memory: as a read error */
	}
	if (n <= 0) {
		event_del(s->read_ev);
		on_event(s->bev, BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), s);
		return;
	}
	session_process_input(s);
}

/* read_own - a plain connection: its reads are sock_read's from now on. */
static void read_own(struct session *s, evutil_socket_t fd)
{
	s->read_ev = event_new(server_base(s->srv), fd, EV_READ | EV_PERSIST, sock_read, s);
	if (s->read_ev == NULL)
		return; /* out of memory: the bufferevent reads, as it can */
	bufferevent_disable(s->bev, EV_READ);
	session_update_read(s);
}

/* read_give_back - before STARTTLS: the TLS filter reads through the
 * bufferevent below it. */
static void read_give_back(struct session *s)
{
	if (s->read_ev == NULL)
		return;
	event_free(s->read_ev);
	s->read_ev = NULL;
	s->read_full = false;
	bufferevent_enable(s->bev, EV_READ);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	session_process_input(arg);
}

/* resume_reading - reading was paused (spool, output, AUTH); take input again.
 * The time we made the client wait is not counted against its record. */
void session_resume_reading(struct session *s)
{
	session_deadline_reset(s);
	session_update_read(s);
	session_process_input(s);
	session_end_if_eof(s);
}

/* on_write - the client has read enough of its replies: take commands again. */
static void on_write(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	(void)bev;
	if (!(s->flags & F_OUTPUT_FULL))
		return;
	s->flags &= ~(unsigned)F_OUTPUT_FULL;
	evtimer_del(s->stall_ev);
	session_resume_reading(s);
}

/* count_tls - the protocol version, the first word of INFO, for the metrics. */
static void count_tls(const char *info)
{
	char version[16];
	size_t n = strcspn(info, " ");
	snprintf(version, sizeof(version), "%.*s", (int)(n < 15 ? n : 15), info);
	mev_tls(version);
}

/* tls_event - the handshake finished or failed; true when the event is used up. */
static bool tls_event(struct session *s, short what)
{
	if (!(s->flags & F_HANDSHAKE))
		return false;
	if (what & BEV_EVENT_CONNECTED) {
		s->flags &= ~(unsigned)F_HANDSHAKE;
		tls_describe(s->bev, s->tls_info, sizeof(s->tls_info));
		count_tls(s->tls_info);
		log_ev(LOG_INFO, "tls", {"session", s->id}, {"client", s->ip_text},
		       {"listener", s->listener}, {"tls", s->tls_info});
		return true;
	}
	char why[256];
	if (what & BEV_EVENT_TIMEOUT)
		rg_strlcpy(why, "timeout", sizeof(why));
	else
		tls_error_text(s->bev, why, sizeof(why));
	log_ev(LOG_WARNING, "tls-handshake-failed", {"session", s->id}, {"client", s->ip_text},
	       {"listener", s->listener}, {"reason", why});
	session_set_state(s, S_CLOSING);
	session_free(s);
	return true;
}

/* peer_hung_up - the peer closed its socket, not only its sending side: a
 * Unix socket tells (POLLHUP), where TCP's FIN does not. */
static bool peer_hung_up(struct session *s)
{
	struct pollfd p = {.fd = bufferevent_getfd(s->bev), .events = POLLIN};
	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

/* pending_event - an event while the session waits; true when it is used up. */
static bool pending_event(struct session *s, short what)
{
	const struct pending_kind *k = &pending_kinds[s->pending];
	bool gone = (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) != 0;
	if (gone && (k->eof_ends || (k->hup_ends && peer_hung_up(s)))) { /* nobody waits */
		log_ev(LOG_INFO, "lost-connection", {"session", s->id}, {"client", s->ip_text},
		       {"state", session_state_name(s)});
		session_set_state(s, S_CLOSING);
		session_free(s); /* cancels the check */
		return true;
	}
	if (k->held && (what & BEV_EVENT_ERROR)) { /* the worker's callback frees it */
		mark_dead(s);
		return true;
	}
	if (!k->owes_answer || (what & BEV_EVENT_ERROR))
		return false;
	/* a worker, a backend or a check answers, then the session goes on */
	if (what & BEV_EVENT_EOF)
		s->flags |= F_EOF;
	return true;
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;
	(void)bev;
	if (tls_event(s, what) || (what & BEV_EVENT_CONNECTED))
		return;
	if (pending_event(s, what))
		return;
	if (what & BEV_EVENT_TIMEOUT) {
		log_ev(LOG_INFO, "timeout", {"session", s->id}, {"client", s->ip_text},
		       {"state", session_state_name(s)});
		session_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->myhostname);
		session_close(s);
		return;
	}
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		/* a half-close: the client may still read the answers to what it sent */
		s->flags |= F_EOF;
		session_update_read(s);
		session_process_input(s);
		session_end_if_eof(s);
		return;
	}
	/* an error: the client is gone (session_free cancels what it waits for) */
	if (s->state != S_READY && s->state != S_CONNECTED && s->state != S_CLOSING)
		log_ev(LOG_INFO, "lost-connection", {"session", s->id}, {"client", s->ip_text},
		       {"state", session_state_name(s)});
	session_set_state(s, S_CLOSING);
	session_free(s);
}

static void client_facts(struct session *s, const struct sockaddr *sa)
{
	ip_from_sockaddr(sa, &s->client.ip);
	ip_format(&s->client.ip, s->ip_text, sizeof(s->ip_text));
	rg_strlcpy(s->name, ip_is_loopback(&s->client.ip) ? "localhost" : "unknown",
		   sizeof(s->name));
	s->client.ip_text = s->ip_text;
	s->client.name = s->name;
}

void session_greet(struct session *s)
{
	log_ev(LOG_INFO, "connect", {"session", s->id}, {"client", s->ip_text},
	       {"name", s->name}, {"listener", s->listener});
	session_reply(s, "220 %s", s->cfg->smtpd_banner);
	session_deadline_reset(s);
}

/* on_client_name - the verified name is known (or "unknown"); now greet. */
static void on_client_name(void *arg, const char *name)
{
	struct session *s = arg;
	s->dnsq = NULL;
	session_pending_end(s);
	rg_strlcpy(s->name, name && strlen(name) < sizeof(s->name) ? name : "unknown",
		   sizeof(s->name));
	session_greet(s);
	session_resume_reading(s); /* a read timeout during the wait turned reading off */
}

/* setup_bev - timeouts, watermarks and callbacks of the session's bufferevent. */
static void setup_bev(struct session *s)
{
	struct timeval tv = {(time_t)s->cfg->smtpd_timeout, 0};
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_setwatermark(s->bev, EV_READ, 0, INPUT_HIGH_WATER);
	bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
	bufferevent_setwatermark(s->bev, EV_WRITE, OUTPUT_HIGH_WATER / 4, 0);
	/* a new bufferevent starts reading (the TLS handshake needs it); from
	 * here on session_update_read() alone turns reading on and off */
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* start_tls - after "220 Ready to start TLS": TLS under the session, state forgotten. */
static void start_tls(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t injected = evbuffer_get_length(in);
	s->flags &= ~(unsigned)F_STARTTLS;
	if (injected > 0) { /* CVE-2011-0411: never run what came before the handshake */
		char bytes[24];
		snprintf(bytes, sizeof(bytes), "%zu", injected);
		evbuffer_drain(in, injected);
		log_ev(LOG_WARNING, "starttls-pipelining-discarded", {"session", s->id},
		       {"client", s->ip_text}, {"bytes", bytes});
	}
	read_give_back(s);
	struct bufferevent *tb = tls_wrap_filter(server_tls(s->srv), server_base(s->srv), s->bev);
	if (tb == NULL) {
		log_ev(LOG_ERROR, "tls-failed", {"session", s->id}, {"client", s->ip_text},
		       {"reason", "cannot create a TLS session"});
		session_set_state(s, S_CLOSING);
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
		free_soon(s); /* not here: session_process_input still reads s on return */
		return;
	}
	s->bev = tb;
	setup_bev(s);
	/* the filter passes everything down unless the plain layer says it is full:
	 * then replies pile up in the filter, where process_input sees them */
	bufferevent_setwatermark(bufferevent_get_underlying(tb), EV_WRITE, 0, OUTPUT_HIGH_WATER);
	s->flags = (s->flags & ~(unsigned)F_EHLO) | F_TLS | F_HANDSHAKE;
	session_tx_free(s);
	free(s->helo);
	s->helo = NULL;
	s->client.helo = NULL;
	s->client.sasl_authenticated = false; /* RFC 3207 4.2: start from nothing */
	s->client.sasl_username = NULL;
	s->sasl_username[0] = '\0';
	session_set_state(s, S_CONNECTED);
}


struct session *session_start(struct server *srv, evutil_socket_t fd,
			      const struct sockaddr *sa, const char *listener,
			      enum listen_role role)
{
	struct session *s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->cfg = server_config(srv);
	s->domains = server_domains(srv);
	s->role = role;
	s->client.submission = role != ROLE_MTA;
	snprintf(s->id, sizeof(s->id), "%08lX%04lX", (unsigned long)time(NULL),
		 ++session_counter & 0xffff);
	rg_strlcpy(s->listener, listener, sizeof(s->listener));
	client_facts(s, sa);
	if (role == ROLE_SUBMISSIONS) { /* RFC 8314: TLS from the first byte */
		s->bev = tls_wrap_socket(server_tls(srv), server_base(srv), fd);
		s->flags |= F_TLS | F_HANDSHAKE;
	} else {
		s->bev = bufferevent_socket_new(server_base(srv), fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (s->bev == NULL) { /* out of memory */
		evutil_closesocket(fd);
		free(s);
		return NULL;
	}
	setup_bev(s);
	if (!(s->flags & F_TLS))
		read_own(s, fd);
	if (role == ROLE_PICKUP)
		return s; /* session_preauth greets, once the user's name is known */
	struct dns *dns = server_dns_for(srv, &s->client.ip);
	if (dns == NULL) {
		session_greet(s);
		return s;
	}
	/* like Postfix: the name is known before the greeting */
	session_pending_begin(s, PENDING_LOOKUP, NULL, NULL);
	s->dnsq = dns_client_name(dns, &s->client.ip, on_client_name, s);
	return s;
}

void session_refuse(evutil_socket_t fd, const char *line)
{
	char buf[600];
	int n = snprintf(buf, sizeof(buf), "%s\r\n", line);
	if (n > 0 && send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* best effort: the connection is being refused anyway */
	}
	evutil_closesocket(fd);
}

void session_shutdown(struct session *s)
{
	if (s->state == S_CLOSING || (s->flags & F_DEAD))
		return;
	if (s->state == S_DATA) { /* its commit, if any, included */
		s->flags |= F_SHUTDOWN; /* finish this message first */
		return;
	}
	session_reply(s, "421 4.3.2 %s Service shutting down, closing connection", s->cfg->myhostname);
	session_close(s);
}

void session_force_shutdown(struct session *s)
{
	if (s->state == S_CLOSING) { /* its last reply is not read: stop waiting */
		free_soon(s);
		return;
	}
	if (session_pending_held(s) || (s->flags & F_DEAD))
		return; /* a commit in flight is answered first, then 421 */
	if (s->state == S_DATA)
		session_tx_reset(s);
	session_shutdown(s);
}
