/*
 * smtpc - a small non-blocking SMTP client connection on the event loop.
 *
 * Owns: one TCP connection to an SMTP server (optional source address,
 * implicit TLS or a later STARTTLS upgrade through an OpenSSL bufferevent
 * filter; DANE verification with TLSA records the caller gives), sending
 * command lines and reading complete replies: every line
 * of a multi-line reply, its code and its RFC 3463 enhanced status code.
 * One reply is awaited at a time; its callback runs once, on the loop.
 * Must not: know what the commands mean (no EHLO logic, no relay tests);
 * callers (the probe, later outbound delivery) decide what to send.
 *
 *	c = smtpc_connect(base, &opts, on_greeting, arg);  // callback: greeting
 *	smtpc_command(c, "EHLO example.org", on_ehlo, arg);
 *	smtpc_starttls(c, ctx, "mx.example.org");          // after a 220 to STARTTLS
 *	smtpc_free(c);                                      // also from a callback
 */
#ifndef RG_SMTPC_H
#define RG_SMTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct smtpc;
typedef struct ssl_ctx_st SSL_CTX;

/* One TLSA record (RFC 6698) for DANE: certificate usage, selector, matching
 * type, and the association data. */
struct smtpc_tlsa {
	unsigned char usage, selector, mtype;
	const unsigned char *data;
	size_t len;
};
#define SMTPC_TLSA_MAX 8

#define SMTPC_REPLY_MAX 65536 /* bytes of one reply; more is a protocol error */
#define SMTPC_LINES_MAX 512

enum smtpc_status {
	SMTPC_REPLY,   /* a complete reply arrived */
	SMTPC_TIMEOUT, /* nothing complete within the timeout: the connection is out of sync
			* and every later command fails (except smtpc_expect_optional) */
	SMTPC_CLOSED,  /* the server closed the connection */
	SMTPC_ERROR,   /* connect, TLS or protocol failure: see error */
};

struct smtpc_reply {
	enum smtpc_status status;
	int code;          /* 200..599 when status is SMTPC_REPLY, else 0 */
	char enhanced[16]; /* "5.7.1" or "" (from the first line) */
	const char *text;  /* the raw lines joined by '\n' ("250-a\n250 b"), or "" */
	const char *error; /* for SMTPC_CLOSED / SMTPC_ERROR / SMTPC_TIMEOUT */
};

/* The reply (valid only during the call). The callback may free c. */
typedef void (*smtpc_fn)(struct smtpc *c, const struct smtpc_reply *r, void *arg);

struct smtpc_opts {
	const struct sockaddr *addr; /* the server */
	socklen_t addrlen;
	const struct sockaddr *source; /* bind to this local address first, or NULL */
	socklen_t sourcelen;
	unsigned timeout_ms;  /* connect, and each reply */
	SSL_CTX *implicit_tls; /* non-NULL: TLS from the first byte (port 465) */
	const char *sni;       /* server name for TLS, or NULL */
	const char *preamble;  /* bytes to send right after connecting (e.g. a PROXY header) */
	unsigned greeting_timeout_ms; /* 0: the greeting shares timeout_ms with the connect;
				       * else its own timer starts once TCP is connected */
	/* Certificate names for TLS (this connection's SSL): space-separated, a
	 * leading '.' matches any subdomain. The result is always computed
	 * (smtpc_tls_describe); with tls_require_verified a failure ends the
	 * handshake. The SSL_CTX must carry a trust store for this to mean anything. */
	const char *tls_names;
	bool tls_require_verified;
	/* DANE (RFC 7672): with n_tlsa > 0 (copied, at most SMTPC_TLSA_MAX) the peer
	 * must match one of these records instead of the trust store (OpenSSL's
	 * SSL_dane_*); names are checked only under DANE-TA(2), against the first of
	 * tls_names; a peer that does not match ends the handshake. */
	const struct smtpc_tlsa *tlsa;
	size_t n_tlsa;
};

/* Start connecting; fn gets the greeting (or the failure). NULL only if no
 * socket could be made at all (err says why). */
struct smtpc *smtpc_connect(struct event_base *base, const struct smtpc_opts *o, smtpc_fn fn,
			    void *arg, char *err, size_t errlen);

/* Send line + CRLF (line must not contain CR or LF) and await one reply. */
void smtpc_command(struct smtpc *c, const char *line, smtpc_fn fn, void *arg);
/* The same with a timeout of its own for the reply (0: the connection's). */
void smtpc_command_timeout(struct smtpc *c, const char *line, unsigned timeout_ms, smtpc_fn fn,
			   void *arg);
/* Send bytes as they are (message data) without awaiting anything. */
void smtpc_send_raw(struct smtpc *c, const char *data, size_t len);
/* Await one more reply, with a timeout of its own (0: the connection's). */
void smtpc_expect(struct smtpc *c, unsigned timeout_ms, smtpc_fn fn, void *arg);
/* The same for a reply that may never come (an error reply to a PROXY header):
 * a timeout with not one byte received leaves the connection usable. */
void smtpc_expect_optional(struct smtpc *c, unsigned timeout_ms, smtpc_fn fn, void *arg);
/* Await the reply to data just sent: while the output drains, a write that
 * makes no progress for xfer_ms fails (SMTPC_TIMEOUT); the reply's own timer
 * (timeout_ms) starts once everything is written. */
void smtpc_expect_after_send(struct smtpc *c, unsigned xfer_ms, unsigned timeout_ms, smtpc_fn fn,
			     void *arg);

/* Upgrade to TLS after the server's 220 to STARTTLS. Anything the server sent
 * after that 220 in plain text is discarded (CVE-2011-0411). The handshake
 * runs with the next command; a failure arrives as that command's SMTPC_ERROR. */
bool smtpc_starttls(struct smtpc *c, SSL_CTX *ctx, const char *sni, char *err, size_t errlen);
bool smtpc_tls_active(const struct smtpc *c);
/* Was all of the data before the last smtpc_expect_after_send written? */
bool smtpc_data_sent(const struct smtpc *c);
/* Has TCP connected (a failure before is a connect failure)? */
bool smtpc_connected(const struct smtpc *c);
/* Has the server sent something no command asked for (a reply too many)?
 * It would answer the next command: the connection is out of sync. */
bool smtpc_unrequested_input(const struct smtpc *c);
/* After the handshake: "TLSv1.3 TLS_AES_256_GCM_SHA384 verified" (or "... dane
 * verified" when TLSA records authenticated the peer), or
 * "... unverified (reason)" (what verification against tls_names and the
 * context's trust store says), or "none". Returns whether it verified. */
bool smtpc_tls_describe(const struct smtpc *c, char *buf, size_t len);

void smtpc_free(struct smtpc *c);

/* Pure helpers, exposed for tests. */
/* One reply line: sets *code and *last ("250 x" last, "250-x" not). */
bool smtpc_parse_line(const char *line, int *code, bool *last);
/* The enhanced status code at the start of text ("5.7.1 Relay..." -> "5.7.1"),
 * only when its class agrees with the reply code; "" otherwise. */
void smtpc_parse_enhanced(int code, const char *text, char *out, size_t outlen);
/* For the probe only: a client SSL_CTX that does not verify certificates
 * and allows TLS 1.0 (a probe must talk to any server). NULL on failure. */
SSL_CTX *smtpc_tls_probe_ctx(void);
/* For delivery: TLS >= 1.2, DANE-capable (SSL_CTX_dane_enable), with a trust store (cafile and/or capath; the
 * system store when both are NULL or ""). It does not abort handshakes by
 * itself: smtpc_opts.tls_require_verified asks for that per connection.
 * NULL with err set on failure. */
SSL_CTX *smtpc_tls_verify_ctx(const char *cafile, const char *capath, char *err, size_t errlen);

#endif
