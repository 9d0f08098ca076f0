/*
 * ehlo - the opening of an SMTP client session, shared by the probe and
 * outbound delivery: greeting, EHLO (HELO when EHLO is refused), STARTTLS
 * and EHLO again, and the parsing of the EHLO capabilities. For LMTP
 * (RFC 2033) the same opening with LHLO.
 *
 * Owns: the order of those steps on an smtpc connection, what counts as a
 * failure at each, and the capabilities the server announced.
 * Must not: decide policy beyond what its options say (whether TLS is
 * wanted, whether HELO is tried), send MAIL/RCPT/AUTH, or free the
 * connection: the caller gets every outcome through one callback.
 *
 *	struct smtp_hello h;                      // lives as long as the step runs
 *	smtp_hello_init(&h, &opts, on_hello, arg);
 *	c = smtpc_connect(base, &so, smtp_hello_greeting, &h, err, len);
 *	on_hello(h, r, arg): h->stage == SH_DONE and h->ok: ready; otherwise
 *	                     h->stage is the step that failed and r its reply
 */
#ifndef RG_EHLO_H
#define RG_EHLO_H

#include "client/smtpc.h"

#include <stdbool.h>
#include <stdint.h>

/* What one EHLO reply announced (RFC 5321 4.1.1.1 keyword lines). */
struct smtp_caps {
	bool pipelining, starttls, eightbitmime, dsn, smtputf8, xclient;
	bool auth, auth_plain, auth_login; /* AUTH with any mechanism; PLAIN; LOGIN */
	bool has_size;                     /* SIZE announced */
	uint64_t size;                     /* its limit; 0: none stated */
};

/* Parse an EHLO reply as smtpc gives it ("250-name\n250-SIZE 10\n250 X"). */
void smtp_caps_parse(const char *reply_text, struct smtp_caps *caps);

enum smtp_hello_stage { SH_GREETING, SH_EHLO, SH_STARTTLS, SH_TLS_EHLO, SH_DONE };
enum smtp_starttls_use {
	SH_TLS_NO,         /* never */
	SH_TLS_IF_OFFERED, /* when the EHLO reply offers it */
	SH_TLS_REQUIRED,   /* not offered: the opening fails at SH_STARTTLS */
};
enum smtp_helo_fallback {
	SH_FALLBACK_NONE,  /* a refused EHLO ends the opening */
	SH_FALLBACK_5XX,   /* HELO after a 5xx to EHLO (RFC 5321 3.2) */
	SH_FALLBACK_ANY,   /* HELO after any refusal but 421 (the probe: odd servers) */
};

/* sent: the command just written (NULL for a reply); received: a reply or failure. */
typedef void (*smtp_trace_fn)(void *arg, const char *sent, const struct smtpc_reply *received);

struct smtp_hello_opts {
	const char *helo_name;
	bool lmtp;                /* LHLO instead of EHLO (RFC 2033); no HELO fallback */
	enum smtp_helo_fallback fallback;
	enum smtp_starttls_use starttls;
	bool starttls_refusal_ok; /* IF_OFFERED: a refused STARTTLS goes on in plain text */
	SSL_CTX *tls_ctx;         /* for STARTTLS */
	const char *sni;
	bool pause_after_greeting; /* call back at SH_GREETING; smtp_hello_continue() goes on */
	unsigned timeout_ms;       /* EHLO, HELO, STARTTLS replies (0: the connection's) */
	smtp_trace_fn trace;       /* or NULL; gets the callback's arg */
};

struct smtp_hello;
typedef void (*smtp_hello_fn)(struct smtp_hello *h, const struct smtpc_reply *r, void *arg);

struct smtp_hello {
	/* read by the callback */
	enum smtp_hello_stage stage; /* SH_DONE when ready; else where it stopped */
	bool ok;                     /* stage done (or paused at the greeting) */
	bool tls;                    /* STARTTLS completed on this connection */
	bool helo;                   /* HELO was used: no capabilities */
	bool starttls_refused;       /* refused, and the session went on in plain text */
	struct smtp_caps caps;       /* from the last EHLO */
	struct smtp_caps caps_first; /* from the first EHLO (before STARTTLS) */
	char greeting[512];          /* the greeting reply, bounded */
	char first_ehlo[512];        /* the first EHLO/HELO reply, bounded */
	/* private */
	struct smtpc *c;
	struct smtp_hello_opts o;
	smtp_hello_fn fn;
	void *arg;
};

/* Prepare; the option strings must outlive the opening. */
void smtp_hello_init(struct smtp_hello *h, const struct smtp_hello_opts *o, smtp_hello_fn fn,
		     void *arg);
/* The smtpc callback for the greeting: pass it to smtpc_connect with h as arg. */
void smtp_hello_greeting(struct smtpc *c, const struct smtpc_reply *r, void *h);
/* After a pause at the greeting: send EHLO. */
void smtp_hello_continue(struct smtp_hello *h);

#endif
