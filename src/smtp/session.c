/*
 * session.c - the SMTP server state machine (see session.h).
 *
 * STATES
 *	CONNECTED  greeting sent, no HELO/EHLO yet
 *	READY      HELO/EHLO done, no transaction
 *	MAIL       MAIL FROM accepted
 *	RCPT       at least one RCPT TO accepted
 *	DATA       reading the message
 *	COMMIT     end of data seen; waiting for the queue to fsync
 *	AUTH       AUTH given; the next line is a SASL response, not a command
 *	AUTH_WAIT  credentials with the backend, or a failure reply being delayed
 *	CLOSING    last reply being flushed; input ignored
 *
 *	STARTTLS (RFC 3207) answers 220, throws away whatever the client sent
 *	after it (CVE-2011-0411), puts TLS under the session and starts again
 *	from CONNECTED: HELO, AUTH and the transaction are forgotten.
 *
 *	Every state change goes through set_state(), every reply through
 *	reply(), which counts errors and ends a session that reaches
 *	smtpd_hard_error_limit.
 */
#include "smtp/session.h"
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

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define CMD_LINE_MAX 512          /* RFC 5321 4.5.3.1.4, including CRLF */
#define AUTH_LINE_MAX 12288       /* RFC 4954 4: AUTH lines and SASL responses */
#define DATA_CHUNK (64 * 1024)    /* a longer text line is taken in pieces */
#define INPUT_HIGH_WATER (256 * 1024)
#define OUTPUT_HIGH_WATER (64 * 1024)  /* a client that does not read its replies */
/* Message text held for all sessions together until it is queued is bounded
 * by smtpd_data_memory_limit: past half of it, sessions spool what they hold;
 * past all of it, new text is refused with 452 4.3.1. */
/* Text beyond this goes to the queue's tmp/ while it arrives. */
#define SPOOL_CHUNK (128 * 1024)
#define HELO_MAX 255

enum state { S_CONNECTED, S_READY, S_MAIL, S_RCPT, S_DATA, S_COMMIT, S_AUTH, S_AUTH_WAIT,
	     S_CLOSING };
static const char *const state_names[] = {"CONNECTED", "READY", "MAIL", "RCPT", "DATA",
					  "COMMIT", "AUTH", "AUTH_WAIT", "CLOSING"};

enum {
	F_EHLO = 1 << 0,          /* EHLO (not HELO): ESMTP parameters allowed */
	F_DISCARD_LINE = 1 << 1,  /* skipping the rest of an overlong command line */
	F_SHUTDOWN = 1 << 2,      /* server stopping: 421 after the current message */
	F_DEAD = 1 << 3,          /* connection gone; free when the commit returns */
	F_EOF = 1 << 4,           /* client closed its side; answer what it sent, then close */
	F_LOOKUP = 1 << 5,        /* client name lookup pending; greeting not sent yet */
	F_OUTPUT_FULL = 1 << 6,   /* replies pile up unread: stop reading commands */
	F_SPOOL_WAIT = 1 << 7,    /* text arrives faster than the disk takes it */
	F_TLS = 1 << 8,           /* the connection is under TLS (or handshaking) */
	F_HANDSHAKE = 1 << 9,     /* TLS handshake not finished yet */
	F_STARTTLS = 1 << 10,     /* 220 to STARTTLS sent: switch before reading on */
};

/* An AUTH exchange in progress. */
struct sasl_state {
	enum sasl_mech mech;
	bool want_password;       /* LOGIN: the username is known */
	char user[SASL_FIELD_MAX];
	struct auth_req *req;     /* with the backend */
	bool in_flight;           /* counted by lockout_begin; lockout_end not yet */
	struct event *delay;      /* a failure reply waits for this */
	const char *delayed_reply;
};

/* The part of a message already on its way to disk (see queue_spool). It
 * outlives its transaction when a write is still in flight. */
struct spool_state {
	struct server *srv;
	struct session *s;       /* NULL once the transaction is gone */
	struct queue_spool *sp;
	bool busy;               /* a write is in flight */
	bool failed;
	bool commit_waiting;     /* the final dot came while busy */
	size_t in_flight;        /* bytes the write holds (counted in data_in_memory) */
	char err[256];
};

struct transaction {
	struct address sender;
	struct addr_resolution sender_res;
	struct queue_msg *msg;
	size_t n_rcpts;           /* accepted */
	uint64_t data_size;       /* message octets seen, Received: excluded */
	char msg_id[QUEUE_ID_LEN + 1];
	bool too_big, bare_eol, midline, no_memory;
	size_t held;              /* bytes counted in data_in_memory */
	/* the message header, followed as it arrives */
	bool in_body;             /* the header has ended */
	bool field_cut;           /* the current field is past header_size_limit */
	bool header_cut;          /* some header text was discarded */
	uint64_t field_len;       /* octets of the current field so far */
	uint64_t hops;            /* Received: fields */
	char dsn_ret[8];          /* RFC 3461 RET= ("FULL", "HDRS") or "" */
	char dsn_envid[DSN_ENVID_MAX + 1]; /* ENVID=, decoded, or "" */
	struct spool_state *spool;
};

struct session {
	struct session_link link;
	struct server *srv;
	const struct config *cfg;
	struct bufferevent *bev;
	enum state state;
	unsigned flags;
	char id[24];
	char listener[80];
	struct policy_client client;
	char ip_text[RG_IP_STRLEN];
	char name[64];
	char *helo;
	unsigned errors, messages, junk;
	struct transaction *tx;
	struct dns_query *dnsq;
	enum listen_role role;
	struct sasl_state *sasl;
	char sasl_username[SASL_FIELD_MAX]; /* set once AUTH succeeded */
	char tls_info[160];                 /* "TLSv1.3 with cipher ..." */
	size_t discard_limit;               /* the limit a line being skipped broke */
	struct event *free_ev;              /* CLOSING: free from the loop, not a callback */
	struct event *stall_ev;             /* replies unread for smtpd_timeout: give up */
	struct event *deadline_ev;          /* smtpd_per_record_deadline */
	uint64_t deadline_ms;               /* when it fires (monotonic milliseconds) */
};

static unsigned long session_counter;
static size_t data_in_memory; /* event loop thread only */

static void process_input(struct session *s);
static void session_close(struct session *s);

struct session_link *session_link(struct session *s)
{
	return &s->link;
}

const struct rg_ip *session_client_ip(const struct session *s)
{
	return &s->client.ip;
}

static void set_state(struct session *s, enum state st)
{
	log_ev(LOG_DEBUG, "state", {"session", s->id}, {"from", state_names[s->state]},
	       {"to", state_names[st]});
	s->state = st;
}

/* reply - one reply line; error replies count towards smtpd_hard_error_limit. */
static void reply(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(struct session *s, const char *fmt, ...)
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
	bufferevent_write(s->bev, line, (size_t)n + 2);
	/* a 421 is the server ending the session, not another client error */
	if ((line[0] == '4' || line[0] == '5') && strncmp(line, "421", 3) != 0)
		s->errors++;
}

/* reply_error - an error reply, logged; ends the session at the error limit. */
static void reply_error(struct session *s, const char *command, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void reply_error(struct session *s, const char *command, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	reply(s, "%s", line);
	log_ev(LOG_INFO, "reject", {"session", s->id}, {"client", s->ip_text},
	       {"command", command}, {"reply", line});
}

/* abuse_ok - EV is within the rate limits (abuse.c); else its reply is sent. */
static bool abuse_ok(struct session *s, enum abuse_event ev)
{
	char line[ABUSE_REPLY_MAX];
	struct abuse_client c = {&s->client.ip, s->ip_text, s->client.sasl_username, s->id};
	if (abuse_check(server_abuse(s->srv), ev, &c, time(NULL), line, sizeof(line)))
		return true;
	reply(s, "%s", line);
	return false;
}

static void check_error_limit(struct session *s)
{
	if (s->state == S_CLOSING || s->errors < s->cfg->smtpd_hard_error_limit)
		return;
	reply(s, "421 4.7.0 %s Error: too many errors", s->cfg->myhostname);
	log_ev(LOG_INFO, "too-many-errors", {"session", s->id}, {"client", s->ip_text});
	session_close(s);
}

static void tx_free(struct session *s)
{
	if (s->tx == NULL)
		return;
	data_in_memory -= s->tx->held;
	struct spool_state *st = s->tx->spool;
	if (st != NULL) {
		st->s = NULL; /* an in-flight write sees this and removes the file */
		if (!st->busy) {
			server_spool_abort(s->srv, st->sp);
			free(st);
		}
	}
	if (s->flags & F_SPOOL_WAIT) { /* nothing left to wait for */
		s->flags &= ~(unsigned)F_SPOOL_WAIT;
		if (!(s->flags & (F_EOF | F_OUTPUT_FULL)) && s->state != S_CLOSING &&
		    s->state != S_COMMIT)
			bufferevent_enable(s->bev, EV_READ);
	}
	queue_msg_free(s->tx->msg);
	free(s->tx);
	s->tx = NULL;
}

static void tx_reset(struct session *s)
{
	tx_free(s);
	if (s->state == S_MAIL || s->state == S_RCPT || s->state == S_DATA)
		set_state(s, S_READY);
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
static bool auth_offered(const struct session *s)
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

static bool do_helo_common(struct session *s, const char *verb, char *arg)
{
	if (!helo_ok(arg)) {
		reply_error(s, verb, "501 5.5.4 Syntax: %s hostname", verb);
		return false;
	}
	free(s->helo);
	s->helo = xstrdup(arg);
	s->client.helo = s->helo;
	tx_free(s);
	set_state(s, S_READY);
	return true;
}

static void cmd_helo(struct session *s, char *arg)
{
	if (!do_helo_common(s, "HELO", arg))
		return;
	s->flags &= ~(unsigned)F_EHLO;
	reply(s, "250 %s", s->cfg->myhostname);
}

static void cmd_ehlo(struct session *s, char *arg)
{
	if (!do_helo_common(s, "EHLO", arg))
		return;
	s->flags |= F_EHLO;
	reply(s, "250-%s", s->cfg->myhostname);
	reply(s, "250-PIPELINING");
	reply(s, "250-SIZE %llu", (unsigned long long)s->cfg->message_size_limit);
	reply(s, "250-8BITMIME");
	reply(s, "250-DSN");
	if (tls_offered(s))
		reply(s, "250-STARTTLS");
	if (auth_offered(s))
		reply(s, "250-AUTH PLAIN LOGIN");
	reply(s, "250 ENHANCEDSTATUSCODES");
}

/* need_helo - MAIL/RCPT/DATA before HELO/EHLO. */
static bool need_helo(struct session *s, const char *verb)
{
	if (s->state != S_CONNECTED)
		return true;
	reply_error(s, verb, "503 5.5.1 Error: send HELO/EHLO first");
	return false;
}

/* dsn_mail_param - RET= and ENVID= (RFC 3461); false after a reply. */
static bool dsn_mail_param(struct session *s, struct transaction *tx, const char *p)
{
	bool ret = rg_str_has_prefix_ci(p, "RET=");
	char *field = ret ? tx->dsn_ret : tx->dsn_envid;
	size_t len = ret ? sizeof(tx->dsn_ret) : sizeof(tx->dsn_envid);
	if (field[0] != '\0') {
		reply_error(s, "MAIL", "501 5.5.4 Error: %.5s given twice", p);
		return false;
	}
	if (ret ? dsn_param_ret(p + 4, field, len) : dsn_param_envid(p + 6, field, len))
		return true;
	reply_error(s, "MAIL", ret ? "501 5.5.4 Bad RET= value (FULL or HDRS)"
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
			reply_error(s, "MAIL", "555 5.5.4 Error: parameters need EHLO, not HELO");
			return false;
		}
		if (rg_str_has_prefix_ci(p, "SIZE=") && !seen_size) {
			seen_size = true;
			if (!rg_parse_u64(p + 5, size)) {
				reply_error(s, "MAIL", "501 5.5.4 Bad SIZE= value");
				return false;
			}
		} else if (rg_str_has_prefix_ci(p, "BODY=") && !seen_body) {
			seen_body = true;
			if (rg_strcasecmp(p + 5, "7BIT") != 0 && rg_strcasecmp(p + 5, "8BITMIME") != 0) {
				reply_error(s, "MAIL", "501 5.5.4 Unsupported BODY= value (7BIT or 8BITMIME)");
				return false;
			}
		} else if (rg_str_has_prefix_ci(p, "RET=") || rg_str_has_prefix_ci(p, "ENVID=")) {
			if (!dsn_mail_param(s, tx, p))
				return false;
		} else if (rg_str_has_prefix_ci(p, "AUTH=") && server_auth(s->srv) != NULL) {
			/* RFC 4954 5: an identity for relayed mail; we trust only our own AUTH */
		} else if (rg_str_has_prefix_ci(p, "SIZE=") || rg_str_has_prefix_ci(p, "BODY=")) {
			reply_error(s, "MAIL", "501 5.5.4 Error: %.5s given twice", p);
			return false;
		} else {
			reply_error(s, "MAIL", "555 5.5.4 Unsupported option: %.100s", p);
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
		reply_error(s, verb, "553 5.6.7 Bad %s address: %s", what, why);
	else
		reply_error(s, verb, "501 %s Bad %s address syntax: %s", status, what, why);
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
	struct policy_request req = {&s->client, &tx->sender, NULL, &tx->sender_res, NULL};
	struct policy_decision d;
	policy_check_mail(s->cfg, &req, &d);
	if (d.action == POLICY_ACCEPT)
		return true;
	log_mail_refused(s, tx, &d);
	if (d.list == s->cfg->submission_client.param && !s->client.sasl_authenticated &&
	    d.action == POLICY_REJECT)
		reply(s, "530 5.7.0 Authentication required");
	else
		reply(s, "%s", d.reply);
	return false;
}

/* owned_sender_ok - on any port, an authenticated client is refused at MAIL a
 * sender its login does not own (553), as the README promises. */
static bool owned_sender_ok(struct session *s, struct transaction *tx)
{
	struct policy_request req = {&s->client, &tx->sender, NULL, &tx->sender_res, NULL};
	struct policy_decision d;
	if (policy_sender_owned(s->cfg, &req, &d))
		return true;
	log_mail_refused(s, tx, &d);
	reply(s, "%s", d.reply);
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
	reply_error(s, "MAIL", "452 4.3.1 Insufficient system storage");
}

static void cmd_mail(struct session *s, char *arg)
{
	if (!need_helo(s, "MAIL"))
		return;
	if (s->state != S_READY) {
		reply_error(s, "MAIL", "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (tls_missing(s)) {
		reply_error(s, "MAIL", "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (!rg_str_has_prefix_ci(arg, "FROM:")) {
		reply_error(s, "MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
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
		reply_error(s, "MAIL", "552 5.3.4 Message size exceeds fixed limit of %llu bytes",
			    (unsigned long long)s->cfg->message_size_limit);
		e = ADDR_ERR_SYNTAX;
	} else if (!server_queue_space_ok(s->srv, size)) {
		queue_space_refused(s, size);
		e = ADDR_ERR_SYNTAX;
	}
	free(pcopy);
	if (e != ADDR_OK) {
		free(tx);
		return;
	}
	address_resolve(&tx->sender, server_domains(s->srv), &tx->sender_res);
	/* counted before the sender checks: attempts count, as in Postfix's anvil */
	if (!abuse_ok(s, ABUSE_MESSAGE) ||
	    (s->client.submission ? !submission_mail_ok(s, tx) : !owned_sender_ok(s, tx))) {
		free(tx);
		return;
	}
	s->tx = tx;
	set_state(s, S_MAIL);
	char from[ADDR_PATH_MAX + 3];
	snprintf(from, sizeof(from), "<%s>", tx->sender.text);
	log_ev(LOG_INFO, "mail", {"session", s->id}, {"client", s->ip_text}, {"from", from});
	reply(s, "250 2.1.0 Ok");
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
		expand_queue_rcpt(s->cfg, server_domains(s->srv), tx->msg, a, r, notify, orcpt);
	tx->n_rcpts++;
	set_state(s, S_RCPT);
	reply(s, "250 2.1.5 Ok");
}

/* rcpt_params - NOTIFY= and ORCPT= (RFC 3461), each once; false after a reply. */
static bool rcpt_params(struct session *s, const char *params, char *notify, char *orcpt)
{
	char *copy = xstrdup(params), *save = NULL;
	bool ok = true;
	for (char *p = strtok_r(copy, " ", &save); p && ok; p = strtok_r(NULL, " ", &save)) {
		bool is_notify = rg_str_has_prefix_ci(p, "NOTIFY=");
		if (!(s->flags & F_EHLO)) {
			reply_error(s, "RCPT", "555 5.5.4 Error: parameters need EHLO, not HELO");
			ok = false;
		} else if (!is_notify && !rg_str_has_prefix_ci(p, "ORCPT=")) {
			reply_error(s, "RCPT", "555 5.5.4 Unsupported option: %.100s", p);
			ok = false;
		} else if ((is_notify ? notify : orcpt)[0] != '\0') {
			reply_error(s, "RCPT", "501 5.5.4 Error: %.6s given twice", p);
			ok = false;
		} else if (is_notify ? !dsn_param_notify(p + 7, notify, 32)
				     : !dsn_param_orcpt(p + 6, orcpt, DSN_ORCPT_MAX + 16)) {
			reply_error(s, "RCPT", is_notify
				    ? "501 5.5.4 Bad NOTIFY= value (NEVER, or SUCCESS, FAILURE, DELAY)"
				    : "501 5.5.4 Bad ORCPT= value (addr-type;xtext)");
			ok = false;
		}
	}
	free(copy);
	return ok;
}

static void cmd_rcpt(struct session *s, char *arg)
{
	if (!need_helo(s, "RCPT"))
		return;
	if (s->state != S_MAIL && s->state != S_RCPT) {
		reply_error(s, "RCPT", "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (!rg_str_has_prefix_ci(arg, "TO:")) {
		reply_error(s, "RCPT", "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
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
		reply_error(s, "RCPT", "452 4.5.3 Error: too many recipients");
		return;
	}
	/* counted before the policy: attempts count (a relay probe too), as in Postfix */
	if (!abuse_ok(s, ABUSE_RECIPIENT)) /* it replied 452 and logged rate-limit */
		return;
	address_resolve(&a, server_domains(s->srv), &r);
	struct policy_request req = {&s->client, &s->tx->sender, &a, &s->tx->sender_res, &r};
	struct policy_decision d;
	policy_check_rcpt(s->cfg, &req, &d);
	log_rcpt(s, &a, &r, &d);
	if (d.action != POLICY_ACCEPT)
		reply(s, "%s", d.reply);
	else
		rcpt_accept(s, &a, &r, notify, orcpt);
}

/* received_header - prepended to every message: who handed it to us, when. */
static void received_header(struct session *s, struct queue_msg *m)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	/* RFC 3848: ESMTP, plus S under TLS and A after AUTH */
	char proto[8];
	snprintf(proto, sizeof(proto), "%s%s%s", (s->flags & F_EHLO) ? "ESMTP" : "SMTP",
		 (s->flags & F_EHLO) && (s->flags & F_TLS) ? "S" : "",
		 (s->flags & F_EHLO) && s->client.sasl_authenticated ? "A" : "");
	strbuf_printf(&m->body, "Received: from %s (%s [%s])\r\n", s->helo, s->name, s->ip_text);
	if (s->tls_info[0])
		strbuf_printf(&m->body, "\t(using %s)\r\n", s->tls_info);
	if (s->client.sasl_authenticated && s->cfg->smtpd_sasl_authenticated_header)
		strbuf_printf(&m->body, "\t(Authenticated sender: %s)\r\n", s->sasl_username);
	strbuf_printf(&m->body, "\tby %s (relayguard) with %s id %s", s->cfg->myhostname, proto,
		      m->id);
	if (m->n_rcpts == 1)
		strbuf_printf(&m->body, "\r\n\tfor <%s>", m->rcpts[0].orig);
	strbuf_printf(&m->body, "; %s\r\n", date);
}

/* hold_if_hijacked - authenticated mail goes to hold/ when its login looks
 * hijacked (abuse.c); only other people's domains count, not our own. */
static bool hold_if_hijacked(struct session *s, const struct queue_msg *m)
{
	if (!s->client.sasl_authenticated)
		return false;
	const char **domains = xcalloc(m->n_rcpts + 1, sizeof(*domains));
	size_t n = 0;
	for (size_t i = 0; i < m->n_rcpts; i++)
		if (m->rcpts[i].cls == ADDR_CLASS_REMOTE || m->rcpts[i].cls == ADDR_CLASS_RELAY)
			domains[n++] = m->rcpts[i].domain;
	struct abuse_client c = {&s->client.ip, s->ip_text, s->sasl_username, s->id};
	bool hold = n > 0 && abuse_hold(server_abuse(s->srv), &c, domains, n, time(NULL));
	free(domains);
	return hold;
}

static void cmd_data(struct session *s, char *arg)
{
	if (!need_helo(s, "DATA"))
		return;
	if (s->state == S_MAIL) {
		reply_error(s, "DATA", "554 5.5.1 Error: no valid recipients");
		return;
	}
	if (s->state != S_RCPT) {
		reply_error(s, "DATA", "503 5.5.1 Error: need RCPT command");
		return;
	}
	if (*arg != '\0') {
		reply_error(s, "DATA", "501 5.5.4 Syntax: DATA (no arguments)");
		return;
	}
	struct queue_msg *m = s->tx->msg;
	queue_new_id(m->id);
	m->arrival = time(NULL);
	m->client_ip = xstrdup(s->ip_text);
	m->client_name = xstrdup(s->name);
	m->helo = xstrdup(s->helo);
	m->sender = xstrdup(s->tx->sender.text);
	m->dsn_ret = s->tx->dsn_ret[0] ? xstrdup(s->tx->dsn_ret) : NULL;
	m->dsn_envid = s->tx->dsn_envid[0] ? xstrdup(s->tx->dsn_envid) : NULL;
	m->login = s->client.sasl_authenticated ? xstrdup(s->sasl_username) : NULL;
	m->hold = hold_if_hijacked(s, m);
	rg_strlcpy(m->session, s->id, sizeof(m->session));
	received_header(s, m);
	data_in_memory += m->body.len; /* from here on, body.len == held until spooled */
	s->tx->held += m->body.len;
	set_state(s, S_DATA);
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
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
	tx_reset(s);
	reply(s, "250 2.0.0 Ok");
}

static void cmd_noop(struct session *s, char *arg)
{
	(void)arg;
	junk_command(s);
	reply(s, "250 2.0.0 Ok");
}

static void cmd_quit(struct session *s, char *arg)
{
	(void)arg;
	reply(s, "221 2.0.0 Bye");
	session_close(s);
}

static void cmd_help(struct session *s, char *arg)
{
	(void)arg;
	junk_command(s);
	reply(s, "214-2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT HELP VRFY");
	reply(s, "214 2.0.0 See RFC 5321");
}

static void cmd_vrfy(struct session *s, char *arg)
{
	(void)arg;
	junk_command(s);
	/* never reveal which users exist */
	reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void cmd_expn(struct session *s, char *arg)
{
	(void)arg;
	reply_error(s, "EXPN", "502 5.5.1 Error: EXPN is not supported");
}

static void cmd_starttls(struct session *s, char *arg)
{
	if (s->flags & F_TLS) {
		reply_error(s, "STARTTLS", "554 5.5.1 Error: TLS already active");
		return;
	}
	if (!tls_offered(s)) {
		reply_error(s, "STARTTLS", "502 5.5.1 Error: command not implemented");
		return;
	}
	if (*arg != '\0') {
		reply_error(s, "STARTTLS", "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (s->state != S_READY && s->state != S_CONNECTED) {
		reply_error(s, "STARTTLS", "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	reply(s, "220 2.0.0 Ready to start TLS");
	s->flags |= F_STARTTLS; /* process_input switches before reading another byte */
}

static void sasl_reply_prompt(struct session *s)
{
	const struct sasl_state *st = s->sasl;
	if (st->mech == SASL_PLAIN)
		reply(s, "334 ");
	else
		reply(s, "334 %s", st->want_password ? "UGFzc3dvcmQ6" : "VXNlcm5hbWU6");
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

static void sasl_end(struct session *s)
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

static void sasl_step(struct session *s, const char *response);
static void lockout_refuse(struct session *s);

static void cmd_auth(struct session *s, char *arg)
{
	if (!need_helo(s, "AUTH"))
		return;
	if (server_auth(s->srv) == NULL) {
		reply_error(s, "AUTH", "503 5.5.1 Error: authentication not enabled");
		return;
	}
	if (!(s->flags & F_EHLO)) {
		reply_error(s, "AUTH", "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->client.sasl_authenticated) {
		reply_error(s, "AUTH", "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->state != S_READY) {
		reply_error(s, "AUTH", "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (!auth_offered(s)) {
		reply_error(s, "AUTH", "538 5.7.11 Encryption required for requested "
			    "authentication mechanism");
		return;
	}
	if (!abuse_ok(s, ABUSE_AUTH))
		return;
	if (!abuse_lockout_exempt(server_abuse(s->srv), &s->client.ip) &&
	    lockout_is_locked(server_lockout(s->srv), &s->client.ip, time(NULL), NULL)) {
		lockout_refuse(s);
		return;
	}
	char *ir = arg + strcspn(arg, " ");
	if (*ir != '\0')
		*ir++ = '\0';
	enum sasl_mech mech;
	if (!sasl_mech_parse(arg, &mech)) {
		reply_error(s, "AUTH", "504 5.5.4 Unrecognized authentication type");
		return;
	}
	s->sasl = xcalloc(1, sizeof(*s->sasl));
	s->sasl->mech = mech;
	set_state(s, S_AUTH);
	if (*ir != '\0')
		sasl_step(s, rg_str_trim(ir));
	else
		sasl_reply_prompt(s);
}

static void cmd_not_implemented(struct session *s, char *arg)
{
	(void)arg;
	reply_error(s, "?", "502 5.5.1 Error: command not implemented");
}

static void cmd_non_smtp(struct session *s, char *arg)
{
	(void)arg;
	reply(s, "421 4.7.0 %s Error: this is an SMTP server; closing", s->cfg->myhostname);
	log_ev(LOG_INFO, "non-smtp-command", {"session", s->id}, {"client", s->ip_text});
	session_close(s);
}

static const struct command {
	const char *verb;
	void (*handle)(struct session *s, char *arg);
} commands[] = {
	{"HELO", cmd_helo}, {"EHLO", cmd_ehlo}, {"MAIL", cmd_mail}, {"RCPT", cmd_rcpt},
	{"DATA", cmd_data}, {"RSET", cmd_rset}, {"NOOP", cmd_noop}, {"QUIT", cmd_quit},
	{"HELP", cmd_help}, {"VRFY", cmd_vrfy}, {"EXPN", cmd_expn},
	{"STARTTLS", cmd_starttls}, {"AUTH", cmd_auth},
	{"BDAT", cmd_not_implemented}, {"ETRN", cmd_not_implemented},
	{"TURN", cmd_not_implemented},
	/* a web browser or proxy talking to the mail port */
	{"GET", cmd_non_smtp}, {"POST", cmd_non_smtp}, {"HEAD", cmd_non_smtp},
	{"PUT", cmd_non_smtp}, {"CONNECT", cmd_non_smtp}, {"USER", cmd_non_smtp},
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

static void handle_command(struct session *s, char *line, size_t n)
{
	const char *problem = line_problem(line, n);
	if (problem != NULL) {
		reply_error(s, "?", "%s", problem);
		return;
	}
	char *arg = line + strcspn(line, " ");
	size_t verb_len = (size_t)(arg - line);
	if (*arg == ' ')
		arg++;
	for (size_t i = 0; i < RG_ARRAY_LEN(commands); i++) {
		if (strlen(commands[i].verb) == verb_len &&
		    rg_strncasecmp(line, commands[i].verb, verb_len) == 0) {
			commands[i].handle(s, rg_str_trim(arg));
			return;
		}
	}
	if (n == 0)
		reply_error(s, "?", "500 5.5.2 Error: empty command");
	else
		reply_error(s, "?", "500 5.5.2 Error: command not recognized");
}

/* next_command - one complete command line, or false when more input is needed.
 * A line ends only at CRLF; a bare LF is answered as an error at once, so a
 * client that sends one is not left waiting for a reply that never comes. */
/* line_limit - AUTH lines and SASL responses may be longer than commands. */
static size_t line_limit(struct session *s, struct evbuffer *in)
{
	char head[5];
	if (s->state == S_AUTH)
		return AUTH_LINE_MAX;
	if (evbuffer_copyout(in, head, sizeof(head)) == (ev_ssize_t)sizeof(head) &&
	    rg_strncasecmp(head, "AUTH ", 5) == 0)
		return AUTH_LINE_MAX;
	return CMD_LINE_MAX;
}

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
		reply_error(s, "?", "500 5.5.2 Error: bare <LF> received; lines must end with <CR><LF>");
		return true;
	}
	if (discard || n + 1 > limit) {
		evbuffer_drain(in, n + 1);
		if (discard)
			limit = s->discard_limit;
		if (s->state == S_AUTH) {
			sasl_end(s);
			set_state(s, S_READY);
		}
		reply_error(s, "?", "500 5.5.2 Error: line too long (the limit is %zu octets)",
			    limit);
		return true;
	}
	char line[AUTH_LINE_MAX];
	evbuffer_remove(in, line, n + 1);
	line[n - 1] = '\0';
	if (s->state == S_AUTH)
		sasl_step(s, line); /* a response, not a command */
	else
		handle_command(s, line, n - 1);
	explicit_bzero(line, n + 1); /* it may have held a password */
	return true;
}

static void commit_done(void *arg, bool ok, const char *err);
static void submit_commit(struct session *s, bool from_callback);
static void session_free(struct session *s);
static void resume_reading(struct session *s);

/* end_of_data - the final "." line: reject, or hand the message to the queue. */
static void end_of_data(struct session *s)
{
	struct transaction *tx = s->tx;
	if (tx->bare_eol) {
		reply_error(s, "DATA", "550 5.5.2 Error: message contains a bare <CR> or <LF>; "
			    "lines must end with <CR><LF> (message not accepted)");
		tx_reset(s);
		return;
	}
	if (tx->too_big) {
		reply_error(s, "DATA", "552 5.3.4 Error: message exceeds fixed limit of %llu bytes",
			    (unsigned long long)s->cfg->message_size_limit);
		tx_reset(s);
		return;
	}
	if (tx->hops > s->cfg->hopcount_limit) { /* a mail loop: RFC 5321 6.3 */
		char hops[24];
		snprintf(hops, sizeof(hops), "%llu", (unsigned long long)tx->hops);
		log_ev(LOG_WARNING, "too-many-hops", {"session", s->id}, {"client", s->ip_text},
		       {"hops", hops});
		reply_error(s, "DATA", "554 5.4.6 Error: too many hops");
		tx_reset(s);
		return;
	}
	if (tx->no_memory) {
		reply_error(s, "DATA", "452 4.3.1 Error: insufficient system resources for the "
			    "message now; try again later");
		log_ev(LOG_WARNING, "data-memory-budget", {"session", s->id}, {"client", s->ip_text});
		tx_reset(s);
		return;
	}
	if (tx->header_cut)
		log_ev(LOG_INFO, "header-truncated", {"session", s->id}, {"client", s->ip_text},
		       {"limit", "header_size_limit"});
	set_state(s, S_COMMIT);
	bufferevent_disable(s->bev, EV_READ); /* no reads, no read timeout until the 250 */
	rg_strlcpy(tx->msg_id, tx->msg->id, sizeof(tx->msg_id));
	if (tx->spool != NULL && tx->spool->busy) {
		tx->spool->commit_waiting = true; /* spool_written goes on */
		return;
	}
	submit_commit(s, false);
}

/* submit_commit - hand the message (and its spool, if any) to the queue.
 * from_callback: not inside process_input, so reading may be resumed here. */
static void submit_commit(struct session *s, bool from_callback)
{
	struct transaction *tx = s->tx;
	struct queue_spool *sp = NULL;
	if (tx->spool != NULL && tx->spool->failed) {
		if (s->flags & F_DEAD) { /* the client left while we waited */
			session_free(s);
			return;
		}
		reply_error(s, "DATA", "451 4.3.0 Error: could not queue the message, try again "
			    "later (%s)", tx->spool->err);
		tx_free(s);
		set_state(s, S_READY);
		if (from_callback)
			resume_reading(s);
		else if (!(s->flags & F_EOF))
			bufferevent_enable(s->bev, EV_READ); /* process_input goes on */
		return;
	}
	if (tx->spool != NULL) {
		sp = tx->spool->sp;
		free(tx->spool);
		tx->spool = NULL;
	}
	struct queue_msg *m = tx->msg;
	tx->msg = NULL;
	server_commit(s->srv, m, sp, commit_done, s);
}

/* spool_written - a chunk is on disk (or failed); carry on with the session. */
static void spool_written(void *arg, bool ok, const char *err)
{
	struct spool_state *st = arg;
	data_in_memory -= st->in_flight;
	st->in_flight = 0;
	st->busy = false;
	if (!ok && !st->failed) {
		st->failed = true;
		rg_strlcpy(st->err, err, sizeof(st->err));
	}
	struct session *s = st->s;
	if (s == NULL) { /* the transaction ended meanwhile */
		server_spool_abort(st->srv, st->sp);
		free(st);
		return;
	}
	if (st->commit_waiting) {
		st->commit_waiting = false;
		s->flags &= ~(unsigned)F_SPOOL_WAIT;
		submit_commit(s, true);
		return;
	}
	if (s->flags & F_SPOOL_WAIT) {
		s->flags &= ~(unsigned)F_SPOOL_WAIT;
		resume_reading(s);
	}
}

/* spool_flush - send the text gathered so far to disk, one write at a time. */
static void spool_flush(struct session *s)
{
	struct transaction *tx = s->tx;
	if (tx->spool == NULL) {
		tx->spool = xcalloc(1, sizeof(*tx->spool));
		tx->spool->srv = s->srv;
		tx->spool->s = s;
		tx->spool->sp = queue_spool_new(tx->msg);
	}
	struct spool_state *st = tx->spool;
	if (st->failed) { /* the answer will be 451 anyway: store no more */
		data_in_memory -= tx->held;
		tx->held = 0;
		strbuf_free(&tx->msg->body);
		return;
	}
	if (st->busy) {
		if (tx->msg->body.len >= 4 * SPOOL_CHUNK && !(s->flags & F_SPOOL_WAIT)) {
			s->flags |= F_SPOOL_WAIT; /* the disk is behind: stop reading for now */
			bufferevent_disable(s->bev, EV_READ);
		}
		return;
	}
	st->busy = true;
	st->in_flight = tx->msg->body.len;
	tx->held -= st->in_flight;
	server_spool_write(s->srv, st->sp, &tx->msg->body, spool_written, st);
}

/* field_start - "Name:" with a printable name begins a new header field. */
static bool field_start(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && p[i] > ' ' && p[i] < 0x7f && p[i] != ':')
		i++;
	return i > 0 && i < n && p[i] == ':';
}

enum header_verdict { H_KEEP, H_DROP, H_END_LINE };

/* header_line - follow the header: count Received: fields (hopcount_limit) and,
 * like Postfix, discard what a field has beyond header_size_limit. H_END_LINE:
 * drop this piece, but end the part of its line already kept with CRLF. */
static enum header_verdict header_line(struct session *s, const char *p, size_t n,
				       bool complete, bool at_start)
{
	struct transaction *tx = s->tx;
	if (tx->in_body)
		return H_KEEP;
	if (at_start && !(n > 0 && (p[0] == ' ' || p[0] == '\t'))) {
		if (!field_start(p, n)) { /* the empty line, or text that is no header */
			tx->in_body = true;
			return H_KEEP;
		}
		tx->field_len = 0;
		tx->field_cut = false;
		if (n >= 9 && rg_strncasecmp(p, "Received:", 9) == 0)
			tx->hops++;
	}
	if (tx->field_cut)
		return H_DROP;
	uint64_t len = n + (complete ? 2 : 0);
	if (tx->field_len + len <= s->cfg->header_size_limit) {
		tx->field_len += len;
		return H_KEEP;
	}
	tx->field_cut = tx->header_cut = true;
	return at_start ? H_DROP : H_END_LINE;
}

/* memory_pressure - past the mark, text goes to disk as it arrives; crossing
 * it also makes every session in DATA spool what it holds (an idle one too). */
static bool memory_pressure(struct session *s, size_t before)
{
	size_t mark = server_data_pressure_mark(s->srv);
	if (data_in_memory <= mark)
		return false;
	if (before <= mark) {
		char held[24];
		snprintf(held, sizeof(held), "%zu", data_in_memory);
		log_ev(LOG_WARNING, "data-memory-pressure", {"held", held},
		       {"action", "sessions spool message text to disk early"});
		server_data_pressure(s->srv);
	}
	return true;
}

/* store - message text into the transaction (and to disk beyond SPOOL_CHUNK,
 * or at once when memory is short). */
static void store(struct session *s, const char *p, size_t n, bool complete)
{
	struct transaction *tx = s->tx;
	size_t before = data_in_memory;
	strbuf_append(&tx->msg->body, p, n);
	if (complete)
		strbuf_append(&tx->msg->body, "\r\n", 2);
	data_in_memory += n + (complete ? 2 : 0);
	tx->held += n + (complete ? 2 : 0);
	if (memory_pressure(s, before) || tx->msg->body.len >= SPOOL_CHUNK)
		spool_flush(s);
}

void session_spool_held(struct session *s)
{
	struct transaction *tx = s->tx;
	if (s->state != S_DATA || tx == NULL || tx->msg == NULL || tx->msg->body.len == 0 ||
	    tx->too_big || tx->bare_eol || tx->no_memory)
		return;
	spool_flush(s);
}

/* data_line - one line (or a piece of a very long one) of message text. */
static void data_line(struct session *s, const char *p, size_t n, bool complete)
{
	struct transaction *tx = s->tx;
	bool at_start = !tx->midline;
	tx->midline = !complete;
	if (at_start && complete && n == 1 && p[0] == '.') {
		end_of_data(s);
		return;
	}
	if (at_start && n > 0 && p[0] == '.') {
		p++; /* dot-unstuffing, RFC 5321 4.5.2 */
		n--;
	}
	if (memchr(p, '\n', n) != NULL || memchr(p, '\r', n) != NULL)
		tx->bare_eol = true;
	tx->data_size += n + (complete ? 2 : 0);
	if (tx->data_size > s->cfg->message_size_limit)
		tx->too_big = true;
	if (!tx->too_big && data_in_memory + n + 2 > s->cfg->smtpd_data_memory_limit)
		tx->no_memory = true;
	if (tx->too_big || tx->bare_eol || tx->no_memory)
		return; /* keep reading to the end, store nothing more */
	switch (header_line(s, p, n, complete, at_start)) {
	case H_KEEP:
		store(s, p, n, complete);
		break;
	case H_END_LINE:
		store(s, "", 0, true);
		break;
	case H_DROP:
		break;
	}
}

static void deadline_credit(struct session *s, size_t n);

/* data_input - consume message lines; false when more input is needed. */
static bool data_input(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t avail = evbuffer_get_length(in), off = 0;
	if (avail == 0)
		return false;
	const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)avail);
	while (off < avail && s->state == S_DATA && !(s->flags & F_SPOOL_WAIT)) {
		const char *eol = memmem(buf + off, avail - off, "\r\n", 2);
		if (eol == NULL) {
			if (avail - off >= DATA_CHUNK) {
				data_line(s, buf + off, avail - off - 1, false);
				off = avail - 1;
			}
			break;
		}
		data_line(s, buf + off, (size_t)(eol - (buf + off)), true);
		off = (size_t)(eol - buf) + 2;
	}
	evbuffer_drain(in, off);
	deadline_credit(s, off);
	return s->state != S_DATA;
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
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
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

static void deadline_reset(struct session *s)
{
	deadline_arm(s, s->cfg->smtpd_timeout * 1000);
}

/* deadline_credit - smtpd_min_data_rate: n octets of message text earn n/rate
 * seconds more, but never more than smtpd_timeout in hand, so a fast start
 * does not buy a slow finish. */
static void deadline_credit(struct session *s, size_t n)
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
	if (s->state == S_COMMIT || s->state == S_AUTH_WAIT ||
	    (s->flags & (F_LOOKUP | F_SPOOL_WAIT | F_OUTPUT_FULL | F_HANDSHAKE | F_EOF))) {
		deadline_reset(s); /* we owe the next step, not the client */
		return;
	}
	log_ev(LOG_INFO, "timeout", {"session", s->id}, {"client", s->ip_text},
	       {"state", state_names[s->state]}, {"reason", "smtpd_per_record_deadline"});
	reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->myhostname);
	session_close(s);
}

static void process_input(struct session *s)
{
	for (;;) {
		if (s->flags & F_STARTTLS) {
			start_tls(s);
			return;
		}
		if (s->state == S_CLOSING || s->state == S_COMMIT || s->state == S_AUTH_WAIT ||
		    (s->flags & (F_LOOKUP | F_SPOOL_WAIT)))
			return;
		if ((s->flags & F_SHUTDOWN) && s->state != S_DATA) {
			session_shutdown(s);
			return;
		}
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) > OUTPUT_HIGH_WATER) {
			s->flags |= F_OUTPUT_FULL; /* resumed by on_write when the client reads */
			bufferevent_disable(s->bev, EV_READ);
			arm_stall(s);
			return;
		}
		bool in_data = s->state == S_DATA;
		bool progress = in_data ? data_input(s) : next_command(s);
		if (progress && !in_data)
			deadline_reset(s); /* a whole command line: the next record starts */
		check_error_limit(s);
		if (!progress)
			return;
	}
}

static void session_free(struct session *s)
{
	char messages[24], errors[24];
	snprintf(messages, sizeof(messages), "%u", s->messages);
	snprintf(errors, sizeof(errors), "%u", s->errors);
	log_ev(LOG_INFO, "disconnect", {"session", s->id}, {"client", s->ip_text},
	       {"messages", messages}, {"errors", errors});
	server_session_closed(s->srv, s);
	if (s->dnsq)
		dns_cancel(s->dnsq);
	sasl_end(s);
	tx_free(s);
	if (s->free_ev)
		event_free(s->free_ev);
	if (s->stall_ev)
		event_free(s->stall_ev);
	if (s->deadline_ev)
		event_free(s->deadline_ev);
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
	       {"state", state_names[s->state]}, {"reason", "replies not read"});
	if (s->state == S_COMMIT) { /* the worker holds it: commit_done frees it */
		s->flags |= F_DEAD;
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
		return;
	}
	set_state(s, S_CLOSING);
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
static void session_close(struct session *s)
{
	if (s->state == S_CLOSING)
		return;
	sasl_end(s); /* no backend answer may come back to a closing session */
	set_state(s, S_CLOSING);
	if (s->flags & F_HANDSHAKE) { /* nothing can be sent before the handshake */
		free_soon(s);
		return;
	}
	bufferevent_disable(s->bev, EV_READ);
	arm_stall(s); /* a last reply nobody reads is not waited for longer */
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0); /* on_drained: really empty */
	bufferevent_setcb(s->bev, NULL, on_drained, on_closing_event, s);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		free_when_sent(s);
}

/* end_if_eof - after a half-close, close once the buffered commands are answered. */
static void end_if_eof(struct session *s)
{
	if (!(s->flags & F_EOF) || s->state == S_CLOSING || s->state == S_COMMIT ||
	    s->state == S_AUTH_WAIT || (s->flags & (F_LOOKUP | F_OUTPUT_FULL | F_SPOOL_WAIT)))
		return; /* still owed: the greeting, a commit, or replies to flush first */
	if (s->state != S_READY && s->state != S_CONNECTED)
		log_ev(LOG_INFO, "lost-connection", {"session", s->id}, {"client", s->ip_text},
		       {"state", state_names[s->state]});
	session_close(s);
}

/* commit_done - the queue has the message on disk (or failed to). */
static void commit_done(void *arg, bool ok, const char *err)
{
	struct session *s = arg;
	if (s->flags & F_DEAD) {
		session_free(s);
		return;
	}
	if (ok) {
		s->messages++;
		reply(s, "250 2.0.0 Ok: queued as %s", s->tx->msg_id);
	} else {
		reply_error(s, "DATA", "451 4.3.0 Error: could not queue the message, try again "
			    "later (%s)", err);
	}
	tx_free(s);
	set_state(s, S_READY);
	if (s->flags & F_SHUTDOWN) {
		session_shutdown(s);
		return;
	}
	deadline_reset(s);
	bufferevent_enable(s->bev, (short)(EV_WRITE | ((s->flags & F_EOF) ? 0 : EV_READ)));
	process_input(s);
	end_if_eof(s);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	process_input(arg);
}

/* resume_reading - reading was paused (spool, output, AUTH); take input again.
 * The time we made the client wait is not counted against its record. */
static void resume_reading(struct session *s)
{
	deadline_reset(s);
	if (!(s->flags & F_EOF) && !(s->flags & F_OUTPUT_FULL) && s->state != S_COMMIT &&
	    s->state != S_AUTH_WAIT)
		bufferevent_enable(s->bev, EV_READ);
	process_input(s);
	end_if_eof(s);
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
	deadline_reset(s);
	if (!(s->flags & F_EOF) && s->state != S_COMMIT && s->state != S_AUTH_WAIT)
		bufferevent_enable(s->bev, EV_READ);
	process_input(s);
	end_if_eof(s);
}

/* tls_event - the handshake finished or failed; true when the event is used up. */
static bool tls_event(struct session *s, short what)
{
	if (!(s->flags & F_HANDSHAKE))
		return false;
	if (what & BEV_EVENT_CONNECTED) {
		s->flags &= ~(unsigned)F_HANDSHAKE;
		tls_describe(s->bev, s->tls_info, sizeof(s->tls_info));
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
	set_state(s, S_CLOSING);
	session_free(s);
	return true;
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;
	(void)bev;
	if (tls_event(s, what) || (what & BEV_EVENT_CONNECTED))
		return;
	if (s->state == S_AUTH_WAIT && (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
		/* AUTH is not pipelined (RFC 4954): nobody waits for the answer */
		log_ev(LOG_INFO, "lost-connection", {"session", s->id}, {"client", s->ip_text},
		       {"state", state_names[s->state]});
		set_state(s, S_CLOSING);
		session_free(s); /* cancels the check */
		return;
	}
	if ((s->state == S_COMMIT || s->state == S_AUTH_WAIT) && !(what & BEV_EVENT_ERROR)) {
		/* a worker or the auth backend holds this session: it answers, then goes on */
		if (what & BEV_EVENT_EOF)
			s->flags |= F_EOF;
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		log_ev(LOG_INFO, "timeout", {"session", s->id}, {"client", s->ip_text},
		       {"state", state_names[s->state]});
		reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->myhostname);
		session_close(s);
		return;
	}
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		/* a half-close: the client may still read the answers to what it sent */
		s->flags |= F_EOF;
		bufferevent_disable(s->bev, EV_READ);
		process_input(s);
		end_if_eof(s);
		return;
	}
	/* an error: the client is gone (sasl_end in session_free cancels a check) */
	if (s->state == S_COMMIT) {
		s->flags |= F_DEAD;
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
		return;
	}
	if (s->state != S_READY && s->state != S_CONNECTED && s->state != S_CLOSING)
		log_ev(LOG_INFO, "lost-connection", {"session", s->id}, {"client", s->ip_text},
		       {"state", state_names[s->state]});
	set_state(s, S_CLOSING);
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

static void greet(struct session *s)
{
	log_ev(LOG_INFO, "connect", {"session", s->id}, {"client", s->ip_text},
	       {"name", s->name}, {"listener", s->listener});
	reply(s, "220 %s", s->cfg->smtpd_banner);
	deadline_reset(s);
}

/* on_client_name - the verified name is known (or "unknown"); now greet. */
static void on_client_name(void *arg, const char *name)
{
	struct session *s = arg;
	s->dnsq = NULL;
	s->flags &= ~(unsigned)F_LOOKUP;
	rg_strlcpy(s->name, name && strlen(name) < sizeof(s->name) ? name : "unknown",
		   sizeof(s->name));
	greet(s);
	process_input(s);
	end_if_eof(s);
}

/* setup_bev - timeouts, watermarks and callbacks of the session's bufferevent. */
static void setup_bev(struct session *s)
{
	struct timeval tv = {(time_t)s->cfg->smtpd_timeout, 0};
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_setwatermark(s->bev, EV_READ, 0, INPUT_HIGH_WATER);
	bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
	bufferevent_setwatermark(s->bev, EV_WRITE, OUTPUT_HIGH_WATER / 4, 0);
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
	struct bufferevent *tb = tls_wrap_filter(server_tls(s->srv), server_base(s->srv), s->bev);
	if (tb == NULL) {
		log_ev(LOG_ERROR, "tls-failed", {"session", s->id}, {"client", s->ip_text},
		       {"reason", "cannot create a TLS session"});
		set_state(s, S_CLOSING);
		session_free(s);
		return;
	}
	s->bev = tb;
	setup_bev(s);
	/* the filter passes everything down unless the plain layer says it is full:
	 * then replies pile up in the filter, where process_input sees them */
	bufferevent_setwatermark(bufferevent_get_underlying(tb), EV_WRITE, 0, OUTPUT_HIGH_WATER);
	s->flags = (s->flags & ~(unsigned)F_EHLO) | F_TLS | F_HANDSHAKE;
	tx_free(s);
	free(s->helo);
	s->helo = NULL;
	s->client.helo = NULL;
	s->client.sasl_authenticated = false; /* RFC 3207 4.2: start from nothing */
	s->client.sasl_username = NULL;
	s->sasl_username[0] = '\0';
	set_state(s, S_CONNECTED);
}

/* sasl_resume - the AUTH exchange is over; read commands again. */
static void sasl_resume(struct session *s)
{
	sasl_end(s);
	set_state(s, S_READY);
	check_error_limit(s);
	if (s->state != S_CLOSING)
		resume_reading(s);
}

static void on_sasl_delay(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	(void)fd;
	(void)what;
	reply(s, "%s", s->sasl->delayed_reply);
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
	log_ev(LOG_WARNING, "auth-failed", {"session", s->id}, {"client", s->ip_text},
	       {"user", s->sasl->user}, {"mechanism", sasl_mech_name(s->sasl->mech)},
	       {"reason", reason}, {"lockout", failures});
	if (locked) {
		char until[24];
		snprintf(until, sizeof(until), "%llus",
			 (unsigned long long)s->cfg->smtpd_sasl_lockout_time);
		log_ev(LOG_WARNING, "auth-lockout", {"client", s->ip_text}, {"for", until});
		reply(s, "421 4.7.0 %s Error: too many failed authentication attempts; "
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
		reply(s, "454 4.7.0 Temporary authentication failure");
		sasl_resume(s);
		return;
	}
	clean_name(s->sasl_username, user && *user ? user : s->sasl->user,
		   sizeof(s->sasl_username));
	s->client.sasl_authenticated = true;
	s->client.sasl_username = s->sasl_username;
	log_ev(LOG_INFO, "auth", {"session", s->id}, {"client", s->ip_text},
	       {"user", s->sasl_username}, {"mechanism", sasl_mech_name(s->sasl->mech)},
	       {"tls", s->tls_info[0] ? s->tls_info : NULL});
	reply(s, "235 2.7.0 Authentication successful");
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
	reply(s, "421 4.7.0 %s Error: too many failed authentication attempts; "
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
	set_state(s, S_AUTH_WAIT);
	reply_later(s, "454 4.7.0 Error: too many authentication attempts in progress; "
		    "try again later", 0);
	return false;
}

/* sasl_check - the credentials are complete: ask the backend (never blocks). */
static void sasl_check(struct session *s, const char *pass)
{
	if (!attempt_begins(s))
		return;
	set_state(s, S_AUTH_WAIT); /* reading stays on: a client that leaves is seen */
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
	sasl_end(s);
	set_state(s, S_READY);
	reply_error(s, "AUTH", "%s", line);
}

/* sasl_step - one client response (base64) in the PLAIN or LOGIN exchange. */
static void sasl_step(struct session *s, const char *response)
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

struct session *session_start(struct server *srv, evutil_socket_t fd,
			      const struct sockaddr *sa, const char *listener,
			      enum listen_role role)
{
	struct session *s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->cfg = server_config(srv);
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
	struct dns *dns = server_dns_for(srv, &s->client.ip);
	if (dns == NULL) {
		greet(s);
		return s;
	}
	s->flags |= F_LOOKUP; /* like Postfix: the name is known before the greeting */
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
	if (s->state == S_DATA || s->state == S_COMMIT) {
		s->flags |= F_SHUTDOWN; /* finish this message first */
		return;
	}
	reply(s, "421 4.3.2 %s Service shutting down, closing connection", s->cfg->myhostname);
	session_close(s);
}

void session_force_shutdown(struct session *s)
{
	if (s->state == S_CLOSING) { /* its last reply is not read: stop waiting */
		free_soon(s);
		return;
	}
	if (s->state == S_COMMIT || (s->flags & F_DEAD))
		return; /* a commit in flight is answered first, then 421 */
	if (s->state == S_DATA)
		tx_reset(s);
	session_shutdown(s);
}
