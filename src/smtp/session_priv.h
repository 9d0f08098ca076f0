/*
 * session_priv.h - what session.c, session_data.c and session_auth.c share.
 *
 * Owns: the session and transaction structures, the states and flags, and
 * the helpers the three files call in each other (replies, state changes,
 * reading, closing). Nothing outside src/smtp/session*.c includes it.
 * Must not: grow public API; server.c and the rest use session.h only.
 */
#ifndef RG_SESSION_PRIV_H
#define RG_SESSION_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "address/address.h"
#include "auth/sasl.h"
#include "abuse/abuse.h"
#include "policy/policy.h"
#include "queue/queue.h"
#include "smtp/dsn_param.h"
#include "smtp/session.h"

#define CMD_LINE_MAX 512          /* RFC 5321 4.5.3.1.4, including CRLF */
#define AUTH_LINE_MAX 12288       /* RFC 4954 4: AUTH lines and SASL responses */
#define INPUT_HIGH_WATER (256 * 1024)
#define OUTPUT_HIGH_WATER (64 * 1024)  /* a client that does not read its replies */
#define HELO_MAX 255

enum state { S_CONNECTED, S_READY, S_MAIL, S_RCPT, S_DATA, S_AUTH, S_CLOSING };

/*
 * What the session waits for, if anything: one at a time. While something is
 * pending no input is processed (pipelined commands stay in the buffer), the
 * per-record deadline does not run against the client, and the end of the
 * wait goes through session_pending_end() and session_resume_reading().
 * Whether the socket itself is read meanwhile is session_want_read()'s
 * decision alone (see pending_kinds[] in session.c).
 */
enum pending {
	PENDING_NONE,
	PENDING_LOOKUP,  /* the client's name: the greeting waits for it */
	PENDING_USER,    /* the pickup peer's user name (a worker): so does the greeting */
	PENDING_AUTH,    /* credentials with the backend, or a delayed AUTH reply */
	PENDING_SPOOL,   /* message text arrives faster than the disk takes it */
	PENDING_CHECK,   /* an asynchronous command check (session_check_start) */
	PENDING_STAGES,  /* end-of-data stages on the worker pool */
	PENDING_COMMIT,  /* the queue makes the message durable */
};

/* Cancels an asynchronous check: its callback must not run afterwards
 * (timed_out: the session goes on without it; else the session ends). */
typedef void (*session_cancel_fn)(void *arg, bool timed_out);

enum {
	F_EHLO = 1 << 0,          /* EHLO (not HELO): ESMTP parameters allowed */
	F_DISCARD_LINE = 1 << 1,  /* skipping the rest of an overlong command line */
	F_SHUTDOWN = 1 << 2,      /* server stopping: 421 after the current message */
	F_DEAD = 1 << 3,          /* connection gone; free when the worker job returns */
	F_EOF = 1 << 4,           /* client closed its side; answer what it sent, then close */
	F_OUTPUT_FULL = 1 << 6,   /* replies pile up unread: stop reading commands */
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
	size_t held;              /* bytes counted in data_in_memory: the text
				   * not yet on its way to disk, and field_hold */
	/* the message header, followed as it arrives */
	bool in_body;             /* the header has ended */
	bool any_field;           /* a header field has begun */
	bool field_cut;           /* the current field is past header_size_limit */
	bool header_cut;          /* some header text was discarded */
	uint64_t field_len;       /* octets of the current field so far */
	uint64_t hops;            /* Received: fields */
	char dsn_ret[8];          /* RFC 3461 RET= ("FULL", "HDRS") or "" */
	char dsn_envid[DSN_ENVID_MAX + 1]; /* ENVID=, decoded, or "" */
	struct spool_state *spool;
	bool field_drop;          /* the header filter hook dropped the current field */
	bool holding;             /* the current field waits in field_hold for the filter */
	struct strbuf field_hold; /* at most SESSION_FIELD_HOLD octets, counted in
				   * held and data_in_memory like the text */
	enum spf_result spf;      /* SPF of MAIL FROM, for the restrictions (msgauth hook) */
	void *hook_data;          /* session_tx_set_data() */
	double eod_at;            /* the final dot's arrival (monotonic s), for the metrics */
	void (*hook_data_free)(void *data);
};

struct session {
	struct session_link link;
	struct server *srv;
	const struct config *cfg;
	/* the domains of cfg's generation (server_domains() at start): the
	 * relay decision never mixes one reload's lists with another's */
	const struct addr_domains *domains;
	struct bufferevent *bev;
	/* a plain connection's reads (sock_read), not the bufferevent's; NULL
	 * under TLS; read_full: stopped at INPUT_HIGH_WATER */
	struct event *read_ev;
	bool read_full;
	enum state state;
	unsigned flags;
	enum pending pending;
	session_cancel_fn pending_cancel;   /* PENDING_CHECK: stops the check */
	void *pending_arg;
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
	struct event *check_ev;             /* PENDING_CHECK: its time limit */
	uint64_t deadline_ms;               /* when it fires (monotonic milliseconds) */
};

/* session.c: replies, states, reading, closing */
void session_reply(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void session_reply_error(struct session *s, const char *command, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void session_set_state(struct session *s, enum state st);
/* The 220 greeting (after the client's name is known: DNS, or the Unix user). */
void session_greet(struct session *s);
const char *session_state_name(const struct session *s);
/* Start waiting for WHAT (cancel, if not NULL, stops it when the session
 * ends first); end the wait. Neither processes input: see below. */
void session_pending_begin(struct session *s, enum pending what, session_cancel_fn cancel,
			   void *arg);
void session_pending_end(struct session *s);
/* A worker job holds a pointer to the session: it is freed when that returns. */
bool session_pending_held(const struct session *s);
/* The one place that decides whether the socket is read, and applies it. */
bool session_want_read(const struct session *s);
void session_update_read(struct session *s);
bool session_need_helo(struct session *s, const char *verb);
bool session_abuse_ok(struct session *s, enum abuse_event ev);
bool session_auth_offered(const struct session *s);
void session_check_error_limit(struct session *s);
/* A wait is over (from a callback, not from inside process_input): read
 * again, process what is buffered, close after a half-close. */
void session_resume_reading(struct session *s);
void session_process_input(struct session *s);
void session_end_if_eof(struct session *s);
void session_deadline_reset(struct session *s);
void session_deadline_credit(struct session *s, size_t n);
void session_close(struct session *s);
void session_free(struct session *s);

/* session_data.c: the transaction, DATA, spooling, stages and the commit */
const struct session_hooks *session_hooks(void);
void session_tx_free(struct session *s);
void session_tx_reset(struct session *s);
bool session_data_check(struct session *s, char *arg);
void session_data_proceed(struct session *s, char *arg);
bool session_data_input(struct session *s);

/* session_auth.c: AUTH and the SASL exchange */
bool session_auth_check(struct session *s, char *arg);
void session_auth_proceed(struct session *s, char *arg);
void session_sasl_step(struct session *s, const char *response);
void session_sasl_end(struct session *s);

#endif
