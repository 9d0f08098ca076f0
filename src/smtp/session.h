/*
 * session - one SMTP conversation (RFC 5321 server side), as a state machine.
 *
 * Three files: session.c (commands, replies, timeouts, TLS, lifetime),
 * session_data.c (DATA to commit), session_auth.c (AUTH); session_priv.h
 * holds what they share.
 * Owns: reading CRLF-terminated command lines (and nothing else: a bare CR
 * or LF is refused, so SMTP smuggling cannot split a message), the command
 * table, the transaction (sender, recipients, message data with dot-
 * unstuffing and the Received: header), limits, timeouts, error counting,
 * replies with enhanced status codes, and the per-RCPT decision log line.
 * Must not: decide relaying itself (policy does) or write files (queue does).
 */
#ifndef RG_SESSION_H
#define RG_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/util.h>

#include "config/config.h"
#include "net/net.h"
#include "util/util.h"

struct server;
struct session;

/* Take over an accepted socket; the session frees itself when it ends.
 * NULL (socket closed) when it cannot even start. */
struct session *session_start(struct server *srv, evutil_socket_t fd,
			      const struct sockaddr *sa, const char *listener,
			      enum listen_role role);
/* A pickup-socket session (ROLE_PICKUP) is authenticated as the Unix user
 * the kernel names for its socket, whose name is looked up off the loop (its
 * greeting waits for it; LOGIN, "uid<N>", if the kernel cannot tell again);
 * ANY_SENDER: it may use any sender (root). Call right after session_start. */
void session_preauth(struct session *s, const char *login, bool any_sender);
/* Refuse a connection with one reply line (e.g. too many connections). */
void session_refuse(evutil_socket_t fd, const char *line);
/* The server is stopping: end now with 421, or after the current message. */
void session_shutdown(struct session *s);
/* The grace period is over: 421 now, even in the middle of a message. */
void session_force_shutdown(struct session *s);
/* The server keeps live sessions in a doubly-linked list through this. */
struct session_link {
	struct session *prev, *next;
};
struct session_link *session_link(struct session *s);
const struct rg_ip *session_client_ip(const struct session *s);
/* Memory is short: send the message text this session holds to disk now. */
void session_spool_held(struct session *s);

/*
 * HOOKS (message authentication, issue 9). Registered once at start-up on
 * the loop thread (session_hooks_set keeps the pointer: a static struct).
 *
 * 1. MAIL FROM check, on the loop, before the sender restrictions. The hook
 *    either returns false (nothing to wait for; the restrictions run now) or
 *    starts something asynchronous (c-ares DNS), fills *wait and returns
 *    true. The session then processes no input (pipelined commands stay
 *    buffered) until the check calls session_resume_mail(s) from its own
 *    callback, never from inside the hook. If the client goes away first,
 *    wait->cancel(wait->arg, false) runs and the check must not resume; if
 *    wait->timeout_ms (0: smtpd_timeout) passes, wait->cancel(arg, true) runs
 *    and the session goes on as if resumed (record a temporary error first).
 *    Results travel with the transaction: session_tx_set_data().
 *
 * 2. End of DATA stages, on the worker pool (util/workers.h), one after the
 *    other, after the final dot and the last spool write, before the commit.
 *    A stage reads the message (struct session_eod) and may refuse it (reply),
 *    add header lines on top (prepend) or ask for the Junk folder (junk).
 *
 * 3. Header filter, on the loop, once per header field, on the whole field
 *    (name, value and continuation lines, CRLF between them, no final CRLF):
 *    the session holds each field until the next one starts or the header
 *    ends, so a claim on a continuation line is seen (forged
 *    Authentication-Results with our authserv-id). True drops the field
 *    before it is stored. A field longer than SESSION_FIELD_HOLD is judged on
 *    its first SESSION_FIELD_HOLD octets with whole = false (then the filter
 *    should drop whatever could be a forgery); its rest follows the verdict.
 */
#define SESSION_FIELD_HOLD 8192
struct session_wait {
	void (*cancel)(void *arg, bool timed_out);
	void *arg;
	unsigned timeout_ms;
};
struct session_mail_facts {
	const struct rg_ip *ip;
	const char *ip_text;
	const char *helo;          /* as given in HELO/EHLO */
	const char *sender;        /* the MAIL FROM path without <>, "" for the null sender */
	bool authenticated;        /* SASL login done */
};
typedef bool (*session_mail_check_fn)(struct session *s, const struct session_mail_facts *f,
				      struct session_wait *wait, void *arg);
/* The MAIL check is done: run the sender restrictions and answer MAIL. */
void session_resume_mail(struct session *s);
/* One pointer per transaction for the hooks' results (SPF at MAIL, read again
 * at the end of DATA); free_fn runs when the transaction ends. */
void session_tx_set_data(struct session *s, void *data, void (*free_fn)(void *data));
void *session_tx_data(const struct session *s);

struct queue_msg;
struct queue_spool;
struct session_eod {
	/* the message (read only: a worker reads it while the loop waits) */
	const struct queue_msg *msg;  /* envelope; msg->body: the text not spooled */
	const char *queue_directory;  /* the spooled part is in tmp/<msg->id> there */
	uint64_t spooled;             /* octets of text in the spool before msg->body */
	const struct queue_spool *spool; /* that spool (queue.h), NULL: not spooled */
	void *tx_data;                /* session_tx_data() */
	const char *client_ip, *helo, *login; /* login NULL: not authenticated */
	/* the verdict: the stages write these */
	char reply[512];              /* "550 5.7.1 ...": refuse, nothing is queued */
	struct strbuf prepend;        /* "Name: value\r\n" lines put above the message */
	bool junk;                    /* deliver into the Junk folder (needs queue support) */
};
struct session_stage {
	const char *name;                               /* in logs */
	void (*work)(struct session_eod *e, void *arg); /* on a worker thread */
	void *arg;
	/* NULL, or on the loop after work: start asynchronous lookups (DNS) the
	 * next stage needs and return true, then call session_eod_resume(e) from
	 * their callback (never from inside this); false: nothing to wait for.
	 * The session stays pending (reading off, a leaving client only marked),
	 * so the lookups must end by themselves (the resolver's timeout). */
	bool (*loop)(struct session_eod *e, void *arg);
};
/* The loop step of a stage is done: the next stage runs. */
void session_eod_resume(struct session_eod *e);
typedef bool (*session_header_drop_fn)(const struct session *s, const char *field, size_t n,
				       bool whole, void *arg);

struct session_hooks {
	session_mail_check_fn mail_check;
	void *mail_arg;
	const struct session_stage *stages;
	size_t n_stages;
	session_header_drop_fn header_drop;
	void *header_arg;
	/* true: the stages do nothing for a transaction whose MAIL hook set no
	 * data (session_tx_set_data), so it goes straight to the commit: two
	 * worker hand-offs fewer for each message the hooks do not concern */
	bool stages_need_data;
};
/* Replace the hooks (NULL: the defaults, a no-op end-of-data stage). */
void session_hooks_set(const struct session_hooks *h);

#endif
