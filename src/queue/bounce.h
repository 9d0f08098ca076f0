/*
 * bounce - delivery status notifications (RFC 3464), built as pure functions.
 *
 * Owns: who gets a DSN (NOTIFY=, the null sender, the double bounce), and the
 * text of the DSN itself: a multipart/report; report-type=delivery-status
 * message with a human-readable part, a message/delivery-status part and the
 * original message (message/rfc822), or only its headers (text/rfc822-headers)
 * for RET=HDRS, delay warnings, success notices and originals larger than
 * bounce_size_limit (as Postfix does: a truncated message/rfc822 would carry a
 * broken MIME structure; a complete header block parses everywhere).
 * Every value that came from a client or a remote server is cleaned (no
 * CR, LF or control bytes, printable ASCII only) and folded, so it stays
 * inside its one field and cannot add headers or MIME boundaries.
 * Must not: do I/O, read the clock (time is passed in), or keep state.
 */
#ifndef RG_BOUNCE_H
#define RG_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "util/util.h"

enum dsn_action {
	DSN_FAILED,    /* permanent failure, or expired in the queue */
	DSN_DELAYED,   /* still being retried (delay_warning_time) */
	DSN_DELIVERED, /* NOTIFY=SUCCESS, delivered to a mailbox here */
	DSN_RELAYED,   /* NOTIFY=SUCCESS, handed to a hop that does not do DSN */
};

enum dsn_target {
	DSN_TO_NOBODY,     /* no notification (NOTIFY=, or a failed double bounce) */
	DSN_TO_SENDER,     /* to the envelope sender, from <> */
	DSN_TO_POSTMASTER, /* a bounce itself failed: postmaster gets it, once */
};

struct dsn_rcpt {
	const char *final_rcpt;  /* "user@example.net" as we tried it */
	const char *orig_rcpt;   /* ORCPT (decoded), or NULL: no Original-Recipient */
	enum dsn_action action;
	const char *status;      /* "5.1.1"; NULL or malformed: X.0.0 of the action */
	const char *remote_mta;  /* "mx.example.net", or NULL (local or DNS failure) */
	const char *diagnostic;  /* the remote reply, or our own text; may be NULL */
	time_t last_attempt;     /* 0: no Last-Attempt-Date */
	time_t will_retry_until; /* DSN_DELAYED only; 0: no Will-Retry-Until */
};

struct dsn_report {
	const char *reporting_mta; /* myhostname */
	const char *queue_id;      /* the original message's queue id */
	const char *envid;         /* ENVID= (decoded), or NULL */
	const char *sender;        /* the original envelope sender; "" for <> */
	const char *to;            /* the DSN's recipient (To:): the sender, or
				      postmaster for a double bounce */
	time_t arrival, now;
	bool headers_only;         /* RET=HDRS */
	size_t size_limit;         /* bounce_size_limit; 0 = no limit */
	const struct dsn_rcpt *rcpts; /* at least one (RFC 3464 2.1) */
	size_t n_rcpts;
	const char *message;       /* the original message, CRLF line ends */
	size_t message_len;
};

/* The largest original included whole, Postfix's bounce_size_limit default. */
#define DSN_SIZE_LIMIT_DEFAULT 50000

/* Should a DSN for this action be sent to a recipient's sender, given the
 * recipient's NOTIFY= value? NULL, "" or a malformed value mean the RFC 3461
 * default as Postfix reads it: FAILURE,DELAY. "NEVER" means none. */
bool dsn_wanted(const char *notify, enum dsn_action action);

/* Who gets the DSN for this recipient: nobody when the sender is the double-
 * bounce address (the double bounce failed: the caller drops it with a log
 * line), postmaster when the sender is <> and the action is a failure (a
 * bounce failed: queue the DSN from double_bounce_sender to postmaster),
 * otherwise the sender when dsn_wanted() says so. */
enum dsn_target dsn_target(const char *sender, const char *double_bounce_sender,
			   const char *notify, enum dsn_action action);

/* Append the whole DSN (headers and body, CRLF line ends) to out: to be queued
 * from <> to r->to, or for a double bounce (r->sender "") from
 * double_bounce_sender to postmaster. from is the From: address,
 * "MAILER-DAEMON@myhostname". The original comes back whole (message/rfc822)
 * only for a failure without RET=HDRS and at most size_limit bytes long; else
 * its header block (text/rfc822-headers), itself cut between fields at
 * size_limit. Returns true when the DSN holds 8-bit bytes (from the original),
 * so it must be queued and sent with BODY=8BITMIME. */
bool dsn_build(const struct dsn_report *r, const char *from, struct strbuf *out);

/* "failed", "delayed", "delivered", "relayed": the Action: field value. */
const char *dsn_action_name(enum dsn_action action);

#endif
