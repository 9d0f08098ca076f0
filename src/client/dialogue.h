/*
 * dialogue - the SMTP client side of outbound delivery: one connection to
 * one address of a next hop, and the mail transactions sent over it.
 *
 * Owns: the session opening (through client/ehlo.c) under a TLS policy
 * (Postfix's smtp_tls_security_level, and dane with the caller's TLSA
 * records), relayhost AUTH (PLAIN, LOGIN when
 * only LOGIN is offered), each transaction (RSET when the connection was
 * used, MAIL with SIZE/BODY/SMTPUTF8/RET/ENVID, RCPT with NOTIFY/ORCPT,
 * DATA with dot-stuffing), PIPELINING, Postfix's per-stage timeouts, and
 * turning every reply or failure into a per-recipient result.
 * LMTP (RFC 2033, smtp_hop_opts.lmtp): the same dialogue opened with LHLO,
 * over TCP or a unix socket, where the end of data gets one reply per
 * recipient accepted at RCPT, each that recipient's own fate.
 * Must not: choose next hops, look up DNS, retry, touch the queue, or
 * change the message beyond dot-stuffing: the caller does those, reading
 * try_next_address and the per-recipient codes.
 *
 *	o = smtp_out_open(base, &hop, on_ready, arg);   // ready: r->kind == SR_DONE
 *	smtp_out_send(o, &msg, on_sent, arg);           // r->rcpts[i].code per recipient
 *	if (smtp_out_reusable(o)) smtp_out_send(o, &msg2, ...); else smtp_out_close(o);
 */
#ifndef RG_DIALOGUE_H
#define RG_DIALOGUE_H

#include "client/ehlo.h"
#include "client/smtpc.h"
#include "util/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
typedef struct ssl_ctx_st SSL_CTX;

/* Postfix's smtp_tls_security_level. */
enum smtp_tls_policy {
	STLS_NONE,    /* never STARTTLS */
	STLS_MAY,     /* STARTTLS when offered, certificate not checked; a refused
		       * STARTTLS goes on in plain text */
	STLS_ENCRYPT, /* TLS required, certificate not checked */
	STLS_VERIFY,  /* TLS required, certificate must match server_name */
	STLS_SECURE,  /* TLS required, certificate must match tls_match_domain or a
		       * subdomain of it (Postfix: nexthop, dot-nexthop) */
	STLS_DANE,    /* TLS required, the peer must match one of tlsa (RFC 7672);
		       * the caller decided DANE applies (secure MX, secure TLSA) */
};

/* Postfix's defaults, in milliseconds. */
#define SMTP_CONNECT_TIMEOUT_MS 30000
#define SMTP_HELO_TIMEOUT_MS 300000
#define SMTP_MAIL_TIMEOUT_MS 300000
#define SMTP_RCPT_TIMEOUT_MS 300000
#define SMTP_DATA_INIT_TIMEOUT_MS 120000
#define SMTP_DATA_XFER_TIMEOUT_MS 180000
#define SMTP_DATA_DONE_TIMEOUT_MS 600000
#define SMTP_QUIT_TIMEOUT_MS 300000

struct smtp_hop_opts { /* one connection to one address of a next hop */
	const struct sockaddr *addr;   /* AF_INET, AF_INET6, or AF_UNIX (LMTP) */
	socklen_t addrlen;
	bool lmtp;                     /* LMTP: LHLO, a reply per recipient after the data;
					* tls must be STLS_NONE, no AUTH */
	const struct sockaddr *source; /* smtp_bind_address, or NULL */
	socklen_t sourcelen;
	const char *helo_name;         /* myhostname */
	const char *server_name;       /* the MX host name: SNI, and the name checked by verify */
	const char *tls_match_domain;  /* secure: the next-hop domain (NULL: server_name) */
	enum smtp_tls_policy tls;
	SSL_CTX *tls_ctx;              /* smtpc_tls_verify_ctx(); needed unless tls is none
					* and implicit_tls is false */
	const char *sasl_user, *sasl_pass; /* NULL: no AUTH */
	bool sasl_plaintext_ok;        /* allow AUTH without TLS (never by default) */
	bool implicit_tls;             /* port 465 smarthost */
	const struct smtpc_tlsa *tlsa; /* STLS_DANE: the usable TLSA records (copied) */
	size_t n_tlsa;
	/* 0: the Postfix default above */
	unsigned connect_ms, helo_ms, mail_ms, rcpt_ms, data_init_ms, data_xfer_ms, data_done_ms,
		quit_ms;
};

struct smtp_out_rcpt {
	const char *addr;   /* without <> */
	const char *notify; /* DSN NOTIFY ("SUCCESS,FAILURE", "NEVER") or NULL */
	const char *orcpt;  /* DSN ORCPT: "rfc822;user@example.com" or a bare address, or NULL */
};

struct smtp_out_msg {
	const char *sender;              /* "" for <> */
	const struct smtp_out_rcpt *rcpts;
	size_t n_rcpts;
	const char *data;                /* CRLF line ends, not dot-stuffed; must stay valid */
	size_t len;                      /* until the done callback */
	bool eightbit;                   /* BODY=8BITMIME when offered */
	const char *ret, *envid;         /* DSN RET (FULL|HDRS) and ENVID, or NULL */
};

struct smtp_rcpt_result {
	int code;          /* 2xx sent, 4xx defer, 5xx bounce; 0: not tried */
	char enhanced[16];
	char *text;        /* the reply (or our own words), never NULL */
};

enum smtp_result_kind {
	SR_DONE,      /* open: the session is usable. send: the transaction ran to its
		       * end; each recipient's code is its fate (some may be refused;
		       * LMTP: each accepted one has its own end-of-data reply) */
	SR_CONN_FAIL, /* no usable session (connect, greeting, EHLO, TLS, AUTH, or the
		       * connection was already unusable): nothing was sent */
	SR_TEMP_ALL,  /* the message as a whole was deferred: a 4xx to MAIL/DATA/end of
		       * data, a lost connection or timeout, a local temporary fault */
	SR_PERM_ALL,  /* the message as a whole was refused: 5xx to MAIL/DATA/end of
		       * data, larger than the server's SIZE, SMTPUTF8 not offered */
};

struct smtp_result {
	enum smtp_result_kind kind;
	bool try_next_address; /* the failure is this server's or connection's: another
				* MX/address may do better (connect, greeting, TLS, lost) */
	bool local;            /* code/text are ours (timeout, lost, SIZE...), not a reply */
	const char *stage;     /* "connect", "TLS" (implicit), "greeting", "EHLO", "HELO",
				* "STARTTLS" (also its handshake), "AUTH", "RSET",
				* "MAIL", "RCPT", "DATA", "end of data", "" when fine */
	int code;              /* the reply that decided kind (0: none) */
	char enhanced[16];
	char text[512];        /* one line: reply lines joined by ' ', or what went wrong */
	struct smtp_rcpt_result *rcpts; /* send: n_rcpts entries, always filled */
	size_t n_rcpts;
	char tls_desc[160];    /* "TLSv1.3 TLS_AES_256_GCM_SHA384 verified" / "... unverified
				* (reason)" / "none" */
	char auth_desc[96];    /* "none", "PLAIN as USER", "LOGIN as USER", "not offered" */
	char relay_desc[320];  /* "mx.example.test[127.0.0.5]:2525"; a unix socket: server_name */
};

struct smtp_out; /* one open connection */
/* r is valid only during the call; the callback may call smtp_out_send or
 * smtp_out_close. Never called from inside smtp_out_open/send. */
typedef void (*smtp_out_ready_fn)(struct smtp_out *o, const struct smtp_result *r, void *arg);

/* Connect, greeting, EHLO/HELO, STARTTLS per policy, AUTH; ready() once.
 * Not SR_DONE: close the connection with smtp_out_close. Strings in *opts
 * are copied. */
struct smtp_out *smtp_out_open(struct event_base *base, const struct smtp_hop_opts *opts,
			       smtp_out_ready_fn ready, void *arg);
/* One transaction; done() once. Only when the previous step is finished. */
void smtp_out_send(struct smtp_out *o, const struct smtp_out_msg *m, smtp_out_ready_fn done,
		   void *arg);
/* Is the session in step with the server and idle (another message may go)? */
bool smtp_out_reusable(const struct smtp_out *o);
/* The capabilities the server announced (after a successful open). */
const struct smtp_caps *smtp_out_caps(const struct smtp_out *o);
/* QUIT (awaited at most quit_ms) then free; safe from callbacks; NULL is fine. */
void smtp_out_close(struct smtp_out *o);
/* Free at once, without QUIT (the loop is ending); NULL is fine. */
void smtp_out_abort(struct smtp_out *o);
/* smtp_out_close, and freed(arg, o) just before o is freed (at once, or after
 * the QUIT reply): an owner that must free it at exit can keep track. */
void smtp_out_close_notify(struct smtp_out *o, void (*freed)(void *arg, struct smtp_out *o),
			   void *arg);

/* ---- pure parts, exposed for tests ---- */
/* Append data dot-stuffed (a '.' doubled at the start of the data and after
 * every LF), then CRLF if it does not end with one, then ".\r\n". */
void smtp_dot_stuff(const char *data, size_t len, struct strbuf *out);
/* RFC 3461 xtext of s into out (bounded); false when it does not fit. */
bool smtp_xtext(const char *s, char *out, size_t outlen);
/* "MAIL FROM:<s> SIZE=n BODY=8BITMIME SMTPUTF8 RET=.. ENVID=.." as caps allow;
 * false (why in err) when the sender cannot be sent (control bytes, too long). */
bool smtp_format_mail(const struct smtp_out_msg *m, const struct smtp_caps *caps,
		      bool smtputf8, char *out, size_t outlen, char *err, size_t errlen);
/* "RCPT TO:<a> NOTIFY=.. ORCPT=rfc822;xtext" as caps allow; false as above. */
bool smtp_format_rcpt(const struct smtp_out_rcpt *r, const struct smtp_caps *caps, char *out,
		      size_t outlen, char *err, size_t errlen);

#endif
