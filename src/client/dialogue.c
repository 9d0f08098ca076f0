/*
 * dialogue.c - outbound SMTP sessions and transactions (see dialogue.h).
 *
 * DESCRIPTION
 *	Connection states: OPENING (connect, client/ehlo.c, AUTH) -> IDLE ->
 *	BUSY (one transaction) -> IDLE ...; any failure that leaves the
 *	session out of step with the server (timeout, lost connection, 421,
 *	an odd reply to RSET or AUTH) makes it BROKEN: never used again.
 *
 *	A transaction is a list of steps, each awaiting one reply: [RSET] MAIL
 *	RCPT... DATA and the end of data. With PIPELINING all commands up to
 *	DATA go out in one write and the replies are read in order (RFC 2920);
 *	otherwise one at a time, stopping after a refused MAIL or when no RCPT
 *	was accepted. Every reply lands in the result once; finish() derives
 *	the message's kind and each recipient's code from what was recorded.
 *
 *	LMTP: after the data the server replies once per recipient it
 *	accepted, in RCPT order; each reply is that recipient's fate. A
 *	connection lost among them leaves the recipients already answered as
 *	they are and gives the rest the failure.
 *
 *	Results made without I/O (SIZE too large, bad addresses, no socket)
 *	are delivered from the loop through a zero timer, so a callback never
 *	runs inside smtp_out_open/smtp_out_send.
 *
 * DIAGNOSTICS
 *	Texts follow Postfix's: "conversation with HOST timed out while
 *	sending MAIL FROM", "lost connection with HOST while sending end of
 *	data -- message may be sent more than once".
 */
#include "client/dialogue.h"
#include "client/smtpc.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define CMD_MAX 2048   /* a command: a 256-byte path, xtext parameters */
#define PATH_MAX_LEN 254
#define CRED_MAX 255

enum out_state { OS_OPENING, OS_IDLE, OS_BUSY, OS_BROKEN };
enum step_what { W_RSET, W_MAIL, W_RCPT, W_DATA, W_DOT };

struct step {
	enum step_what what;
	size_t rcpt; /* W_RCPT: index in the message */
	char *line;  /* NULL for W_DOT */
};

struct smtp_out {
	struct event_base *base;
	struct smtpc *c;
	struct smtp_hello hello;
	struct smtp_hop_opts o; /* strings point to the copies below */
	char *helo_name, *server_name, *user, *pass;
	enum out_state st;
	bool used;              /* a transaction went out: RSET before the next */
	char relay_desc[320], tls_desc[160], auth_desc[96];
	smtp_out_ready_fn fn;
	void *arg;
	struct event *later;    /* delivers `pending` from the loop */
	struct smtp_result *pending;
	int login_step;         /* AUTH LOGIN: 0 sent, 1 user sent, 2 password sent */
	/* the transaction */
	const struct smtp_out_msg *m;
	struct smtp_result *r;
	struct step *steps;
	size_t n_steps, idx;
	bool pipelined, mail_failed, data_refused, discard;
	size_t accepted;
	size_t *acc;            /* LMTP: the recipients accepted at RCPT, in order */
	size_t n_dot;           /* LMTP: end-of-data replies received so far */
	void (*freed)(void *arg, struct smtp_out *o); /* smtp_out_close_notify */
	void *freed_arg;
};

static void on_step(struct smtpc *c, const struct smtpc_reply *rep, void *arg);

/* ---- pure parts ---- */

void smtp_dot_stuff(const char *data, size_t len, struct strbuf *out)
{
	size_t start = 0;
	bool bol = true;
	for (size_t i = 0; i < len; i++) {
		if (bol && data[i] == '.') {
			strbuf_append(out, data + start, i - start);
			strbuf_append(out, ".", 1);
			start = i;
		}
		bol = data[i] == '\n'; /* after a bare LF too: no lenient server ends early */
	}
	strbuf_append(out, data + start, len - start);
	if (len > 0 && !(len >= 2 && data[len - 2] == '\r' && data[len - 1] == '\n'))
		strbuf_append(out, "\r\n", 2);
	strbuf_append(out, ".\r\n", 3);
}

bool smtp_xtext(const char *s, char *out, size_t outlen)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		bool plain = *p >= 33 && *p <= 126 && *p != '+' && *p != '=';
		if (n + (plain ? 1 : 3) + 1 > outlen)
			return false;
		if (plain)
			out[n++] = (char)*p;
		else
			n += (size_t)snprintf(out + n, 4, "+%02X", *p);
	}
	out[n] = '\0';
	return outlen > 0;
}

/* path_ok - an address we may put between <> (it came from our queue, but
 * a byte that ends the line or the path would inject a command). */
static bool path_ok(const char *a, char *err, size_t errlen)
{
	if (strlen(a) > PATH_MAX_LEN) {
		snprintf(err, errlen, "address longer than %d bytes", PATH_MAX_LEN);
		return false;
	}
	for (const unsigned char *p = (const unsigned char *)a; *p; p++) {
		if (*p < 0x20 || *p == 0x7f || *p == '<' || *p == '>') {
			snprintf(err, errlen, "address contains a control byte or angle bracket");
			return false;
		}
	}
	return true;
}

/* append - " KEY=value" to a command being built; false when it does not fit. */
static bool append(char *out, size_t outlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static bool append(char *out, size_t outlen, const char *fmt, ...)
{
	size_t n = strlen(out);
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(out + n, outlen - n, fmt, ap);
	va_end(ap);
	return w >= 0 && (size_t)w < outlen - n;
}

/* ret_value - RFC 3461 RET: FULL or HDRS, anything else is left out. */
static const char *ret_value(const char *ret)
{
	if (ret == NULL)
		return NULL;
	if (rg_strcasecmp(ret, "FULL") == 0)
		return "FULL";
	return rg_strcasecmp(ret, "HDRS") == 0 ? "HDRS" : NULL;
}

bool smtp_format_mail(const struct smtp_out_msg *m, const struct smtp_caps *caps, bool smtputf8,
		      char *out, size_t outlen, char *err, size_t errlen)
{
	if (!path_ok(m->sender, err, errlen))
		return false;
	snprintf(out, outlen, "MAIL FROM:<%s>", m->sender);
	bool ok = true;
	if (caps->has_size)
		ok &= append(out, outlen, " SIZE=%zu", m->len);
	if (m->eightbit && caps->eightbitmime)
		ok &= append(out, outlen, " BODY=8BITMIME");
	if (smtputf8)
		ok &= append(out, outlen, " SMTPUTF8");
	const char *ret = ret_value(m->ret);
	if (caps->dsn && ret != NULL)
		ok &= append(out, outlen, " RET=%s", ret);
	char x[512];
	if (caps->dsn && m->envid != NULL && m->envid[0] && strlen(m->envid) <= 100 &&
	    smtp_xtext(m->envid, x, sizeof(x)))
		ok &= append(out, outlen, " ENVID=%s", x);
	if (!ok)
		snprintf(err, errlen, "MAIL command too long");
	return ok;
}

/* notify_ok - "NEVER", or a list of SUCCESS, FAILURE, DELAY (RFC 3461 4.1). */
static bool notify_ok(const char *v)
{
	if (rg_strcasecmp(v, "NEVER") == 0)
		return true;
	size_t words = 0;
	for (const char *p = v; *p; words++) {
		size_t n = strcspn(p, ",");
		if (!((n == 7 && rg_strncasecmp(p, "SUCCESS", 7) == 0) ||
		      (n == 7 && rg_strncasecmp(p, "FAILURE", 7) == 0) ||
		      (n == 5 && rg_strncasecmp(p, "DELAY", 5) == 0)))
			return false;
		p += n + (p[n] == ',');
	}
	return words > 0;
}

/* append_orcpt - " ORCPT=type;xtext": "rfc822;a@b" or a bare address (rfc822). */
static bool append_orcpt(char *out, size_t outlen, const char *orcpt)
{
	const char *semi = strchr(orcpt, ';');
	char type[32] = "rfc822";
	const char *addr = orcpt;
	if (semi != NULL) {
		size_t n = (size_t)(semi - orcpt);
		if (n == 0 || n >= sizeof(type) || strspn(orcpt, "abcdefghijklmnopqrstuvwxyz"
							      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") < n)
			return true; /* a malformed ORCPT is left out, not sent */
		memcpy(type, orcpt, n);
		type[n] = '\0';
		addr = semi + 1;
	}
	char x[3 * PATH_MAX_LEN + 1];
	if (addr[0] == '\0' || strlen(addr) > PATH_MAX_LEN || !smtp_xtext(addr, x, sizeof(x)))
		return true;
	return append(out, outlen, " ORCPT=%s;%s", type, x);
}

bool smtp_format_rcpt(const struct smtp_out_rcpt *r, const struct smtp_caps *caps, char *out,
		      size_t outlen, char *err, size_t errlen)
{
	if (!path_ok(r->addr, err, errlen))
		return false;
	snprintf(out, outlen, "RCPT TO:<%s>", r->addr);
	bool ok = true;
	if (caps->dsn && r->notify != NULL && notify_ok(r->notify)) {
		char v[64];
		rg_strlcpy(v, r->notify, sizeof(v));
		for (char *p = v; *p; p++)
			*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
		ok &= append(out, outlen, " NOTIFY=%s", v);
	}
	if (caps->dsn && r->orcpt != NULL)
		ok &= append_orcpt(out, outlen, r->orcpt);
	if (!ok)
		snprintf(err, errlen, "RCPT command too long");
	return ok;
}

/* ---- results ---- */

/* one_line - a reply as one printable line: "550 5.1.1 a b" for "550-a\n550 b"
 * is shortened to the first line's code and every line's text. */
static void one_line(const char *text, char *out, size_t outlen)
{
	size_t n = 0;
	for (const char *p = text; *p && n + 1 < outlen; p++) {
		if (*p == '\n') {
			out[n++] = ' ';
			p += strlen(p) > 4 ? 4 : strlen(p) - 1; /* skip the next line's "NNN-" */
			continue;
		}
		out[n++] = (unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e ? '?' : *p;
	}
	out[n] = '\0';
	if (n > 3 && out[3] == '-')
		out[3] = ' ';
}

static struct smtp_result *result_new(enum smtp_result_kind kind, const char *stage)
{
	struct smtp_result *r = xcalloc(1, sizeof(*r));
	r->kind = kind;
	r->stage = stage;
	return r;
}

static void result_free(struct smtp_result *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_rcpts; i++)
		free(r->rcpts[i].text);
	free(r->rcpts);
	free(r);
}

/* result_reply - the server's reply decides the result. */
static void result_reply(struct smtp_result *r, const char *stage, const struct smtpc_reply *rep)
{
	r->stage = stage;
	r->local = false;
	r->code = rep->code;
	rg_strlcpy(r->enhanced, rep->enhanced, sizeof(r->enhanced));
	one_line(rep->text, r->text, sizeof(r->text));
}

static void result_local(struct smtp_result *r, const char *stage, int code, const char *enh,
			 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void result_local(struct smtp_result *r, const char *stage, int code, const char *enh,
			 const char *fmt, ...)
{
	r->stage = stage;
	r->local = true;
	r->code = code;
	rg_strlcpy(r->enhanced, enh, sizeof(r->enhanced));
	char text[sizeof(r->text)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	one_line(text, r->text, sizeof(r->text));
}

static void rcpt_set(struct smtp_rcpt_result *rr, int code, const char *enh, const char *text)
{
	rr->code = code;
	rg_strlcpy(rr->enhanced, enh, sizeof(rr->enhanced));
	free(rr->text);
	rr->text = xstrdup(text);
}

/* rcpts_where - give the result's reply to every recipient whose code is
 * 0 (not decided) or, with accepted, 2xx (accepted at RCPT). */
static void rcpts_where(struct smtp_result *r, bool accepted)
{
	for (size_t i = 0; i < r->n_rcpts; i++) {
		int c = r->rcpts[i].code;
		if (c == 0 || (accepted && c / 100 == 2))
			rcpt_set(&r->rcpts[i], r->code, r->enhanced, r->text);
	}
}

/* deliver - hand r to the waiting callback, which may close or reuse o. */
static void deliver(struct smtp_out *o, struct smtp_result *r)
{
	smtp_out_ready_fn fn = o->fn;
	void *arg = o->arg;
	o->fn = NULL;
	rg_strlcpy(r->tls_desc, o->tls_desc, sizeof(r->tls_desc));
	rg_strlcpy(r->auth_desc, o->auth_desc, sizeof(r->auth_desc));
	rg_strlcpy(r->relay_desc, o->relay_desc, sizeof(r->relay_desc));
	if (fn != NULL)
		fn(o, r, arg);
	result_free(r);
}

static void later_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct smtp_out *o = arg;
	struct smtp_result *r = o->pending;
	o->pending = NULL;
	deliver(o, r);
}

static void deliver_later(struct smtp_out *o, struct smtp_result *r)
{
	o->pending = r;
	event_active(o->later, EV_TIMEOUT, 0);
}

/* ---- opening ---- */

static void relay_describe(struct smtp_out *o)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	const struct sockaddr *sa = o->o.addr;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		port = ntohs(in6->sin6_port);
	} else { /* a unix socket: the caller's name for it says it all */
		snprintf(o->relay_desc, sizeof(o->relay_desc), "%.300s", o->server_name);
		return;
	}
	snprintf(o->relay_desc, sizeof(o->relay_desc), "%.200s[%s]:%d", o->server_name, ip, port);
}

static const char *hello_stage(const struct smtp_out *o, const struct smtpc_reply *rep)
{
	const struct smtp_hello *h = &o->hello;
	switch (h->stage) {
	case SH_GREETING:
		if (!smtpc_connected(o->c))
			return "connect";
		return o->o.implicit_tls && rep->status == SMTPC_ERROR ? "TLS" : "greeting";
	case SH_EHLO: return o->o.lmtp ? "LHLO" : h->helo ? "HELO" : "EHLO";
	case SH_STARTTLS: return "STARTTLS";
	default: return rep->status == SMTPC_REPLY ? "EHLO" : "STARTTLS"; /* the handshake */
	}
}

/* open_failed - no usable session: tell the caller to try another address. */
static void open_failed(struct smtp_out *o, const char *stage, const struct smtpc_reply *rep)
{
	struct smtp_result *r = result_new(SR_CONN_FAIL, stage);
	r->try_next_address = true;
	o->st = OS_BROKEN;
	if (rep->status == SMTPC_REPLY) {
		result_reply(r, stage, rep);
	} else if (strcmp(stage, "connect") == 0) {
		result_local(r, stage, 451, "4.4.1", "connect to %s: %s", o->relay_desc, rep->error);
	} else if (strcmp(stage, "STARTTLS") == 0 || strcmp(stage, "TLS") == 0) {
		result_local(r, stage, 451, "4.7.5", "TLS with %s failed: %s", o->relay_desc,
			     rep->error);
	} else {
		bool timeout = rep->status == SMTPC_TIMEOUT;
		result_local(r, stage, 451, "4.4.2", "%s with %s %s %s%s%s",
			     timeout ? "conversation" : "lost connection", o->relay_desc,
			     timeout ? "timed out while receiving the" : "while receiving the",
			     strcmp(stage, "greeting") == 0 ? "initial server greeting" : stage,
			     timeout ? "" : ": ", timeout ? "" : rep->error);
	}
	deliver(o, r);
}

static void open_ready(struct smtp_out *o, const struct smtpc_reply *rep)
{
	struct smtp_result *r = result_new(SR_DONE, "");
	r->code = rep->code;
	one_line(rep->text, r->text, sizeof(r->text));
	o->st = OS_IDLE;
	deliver(o, r);
}

/* auth_refused - credentials would not go, or did not work: another address
 * (or later) may do better; the session is not used. */
static void auth_refused(struct smtp_out *o, const struct smtpc_reply *rep, const char *why)
{
	struct smtp_result *r = result_new(SR_CONN_FAIL, "AUTH");
	r->try_next_address = true;
	o->st = OS_BROKEN;
	if (rep != NULL && rep->status == SMTPC_REPLY)
		result_reply(r, "AUTH", rep);
	else
		result_local(r, "AUTH", 451, "4.7.0", "SASL authentication with %s: %s",
			     o->relay_desc, rep != NULL ? rep->error : why);
	deliver(o, r);
}

static void base64(const char *raw, size_t len, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)raw, (int)len);
}

static void on_auth(struct smtpc *c, const struct smtpc_reply *rep, void *arg)
{
	struct smtp_out *o = arg;
	char b64[4 * (CRED_MAX + 2) / 3 + 8];
	if (rep->status == SMTPC_REPLY && rep->code == 235) {
		open_ready(o, rep);
		return;
	}
	if (rep->status == SMTPC_REPLY && rep->code == 334 && o->login_step > 0 &&
	    o->login_step < 3) { /* AUTH LOGIN: user name, then password */
		const char *v = o->login_step == 1 ? o->user : o->pass;
		base64(v, strlen(v), b64);
		o->login_step++;
		smtpc_command_timeout(c, b64, o->o.helo_ms, on_auth, o);
		return;
	}
	auth_refused(o, rep, NULL);
}

/* send_auth_plain - RFC 4616 with an initial response: NUL user NUL password. */
static void send_auth_plain(struct smtp_out *o)
{
	char raw[2 * CRED_MAX + 2], line[4 * (2 * CRED_MAX + 4) / 3 + 16];
	size_t un = strlen(o->user), pn = strlen(o->pass);
	raw[0] = '\0';
	memcpy(raw + 1, o->user, un);
	raw[1 + un] = '\0';
	memcpy(raw + 2 + un, o->pass, pn);
	memcpy(line, "AUTH PLAIN ", 11);
	base64(raw, un + pn + 2, line + 11);
	explicit_bzero(raw, sizeof(raw));
	smtpc_command_timeout(o->c, line, o->o.helo_ms, on_auth, o);
	explicit_bzero(line, sizeof(line));
}

static void start_auth(struct smtp_out *o, const struct smtpc_reply *last)
{
	const struct smtp_caps *caps = &o->hello.caps;
	if (o->user == NULL) {
		open_ready(o, last);
		return;
	}
	if (!caps->auth) { /* nothing to log in to: the server decides at MAIL/RCPT */
		snprintf(o->auth_desc, sizeof(o->auth_desc), "not offered");
		open_ready(o, last);
		return;
	}
	if (!smtpc_tls_active(o->c) && !o->o.sasl_plaintext_ok) {
		auth_refused(o, NULL, "the password would go without TLS (plain-text AUTH not "
				      "allowed)");
		return;
	}
	if (!caps->auth_plain && !caps->auth_login) {
		auth_refused(o, NULL, "no common mechanism (PLAIN or LOGIN)");
		return;
	}
	bool plain = caps->auth_plain; /* LOGIN only when PLAIN is not offered */
	snprintf(o->auth_desc, sizeof(o->auth_desc), "%s as %.60s", plain ? "PLAIN" : "LOGIN",
		 o->user);
	if (plain) {
		send_auth_plain(o);
		return;
	}
	o->login_step = 1;
	smtpc_command_timeout(o->c, "AUTH LOGIN", o->o.helo_ms, on_auth, o);
}

static void on_hello(struct smtp_hello *h, const struct smtpc_reply *rep, void *arg)
{
	struct smtp_out *o = arg;
	if (h->stage != SH_GREETING || !h->ok)
		smtpc_tls_describe(o->c, o->tls_desc, sizeof(o->tls_desc));
	if (!h->ok) {
		open_failed(o, hello_stage(o, rep), rep);
		return;
	}
	start_auth(o, rep);
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static unsigned or_default(unsigned v, unsigned def)
{
	return v ? v : def;
}

static void copy_opts(struct smtp_out *o, const struct smtp_hop_opts *h)
{
	o->o = *h;
	o->helo_name = xstrdup(h->helo_name ? h->helo_name : "localhost");
	o->server_name = xstrdup(h->server_name ? h->server_name : "");
	bool creds = h->sasl_user != NULL && h->sasl_pass != NULL &&
		     strlen(h->sasl_user) <= CRED_MAX && strlen(h->sasl_pass) <= CRED_MAX;
	o->user = creds ? dup_or_null(h->sasl_user) : NULL;
	o->pass = creds ? dup_or_null(h->sasl_pass) : NULL;
	o->o.connect_ms = or_default(h->connect_ms, SMTP_CONNECT_TIMEOUT_MS);
	o->o.helo_ms = or_default(h->helo_ms, SMTP_HELO_TIMEOUT_MS);
	o->o.mail_ms = or_default(h->mail_ms, SMTP_MAIL_TIMEOUT_MS);
	o->o.rcpt_ms = or_default(h->rcpt_ms, SMTP_RCPT_TIMEOUT_MS);
	o->o.data_init_ms = or_default(h->data_init_ms, SMTP_DATA_INIT_TIMEOUT_MS);
	o->o.data_xfer_ms = or_default(h->data_xfer_ms, SMTP_DATA_XFER_TIMEOUT_MS);
	o->o.data_done_ms = or_default(h->data_done_ms, SMTP_DATA_DONE_TIMEOUT_MS);
	o->o.quit_ms = or_default(h->quit_ms, SMTP_QUIT_TIMEOUT_MS);
}

/* tls_names - what the certificate is checked against: the MX name (verify,
 * and the "would it verify" of may/encrypt) or the next-hop domain and its
 * subdomains (secure). An address literal names nothing. */
static void tls_names(const struct smtp_out *o, char *out, size_t len)
{
	const char *d = o->o.tls_match_domain;
	if (o->o.tls == STLS_SECURE && d != NULL && d[0] && !strchr(d, ' '))
		snprintf(out, len, "%s .%s", d, d);
	else if (o->server_name[0] != '[' && !strchr(o->server_name, ' '))
		rg_strlcpy(out, o->server_name, len);
	else
		out[0] = '\0';
}

static enum smtp_starttls_use starttls_use(const struct smtp_out *o)
{
	if (o->o.implicit_tls || o->o.tls == STLS_NONE)
		return SH_TLS_NO;
	return o->o.tls == STLS_MAY ? SH_TLS_IF_OFFERED : SH_TLS_REQUIRED;
}

static void connect_hop(struct smtp_out *o)
{
	char names[600], err[256];
	tls_names(o, names, sizeof(names));
	struct smtpc_opts so = {
		.addr = o->o.addr, .addrlen = o->o.addrlen,
		.source = o->o.source, .sourcelen = o->o.sourcelen,
		.timeout_ms = o->o.connect_ms, .greeting_timeout_ms = o->o.helo_ms,
		.implicit_tls = o->o.implicit_tls ? o->o.tls_ctx : NULL,
		.sni = o->server_name, .tls_names = names,
		.tls_require_verified = o->o.tls == STLS_VERIFY || o->o.tls == STLS_SECURE ||
					o->o.tls == STLS_DANE,
		.tlsa = o->o.tls == STLS_DANE ? o->o.tlsa : NULL,
		.n_tlsa = o->o.tls == STLS_DANE ? o->o.n_tlsa : 0,
	};
	o->o.tlsa = NULL; /* smtpc has its copy; the caller's may go */
	o->o.n_tlsa = 0;
	struct smtp_hello_opts ho = {
		.helo_name = o->helo_name, .lmtp = o->o.lmtp,
		.fallback = o->o.lmtp ? SH_FALLBACK_NONE : SH_FALLBACK_5XX,
		.starttls = starttls_use(o), .starttls_refusal_ok = o->o.tls == STLS_MAY,
		.tls_ctx = o->o.tls_ctx, .sni = o->server_name, .timeout_ms = o->o.helo_ms,
	};
	smtp_hello_init(&o->hello, &ho, on_hello, o);
	o->c = smtpc_connect(o->base, &so, smtp_hello_greeting, &o->hello, err, sizeof(err));
	if (o->c == NULL) {
		struct smtp_result *r = result_new(SR_CONN_FAIL, "connect");
		r->try_next_address = true;
		result_local(r, "connect", 451, "4.4.1", "connect to %s: %s", o->relay_desc, err);
		o->st = OS_BROKEN;
		deliver_later(o, r);
	}
}

struct smtp_out *smtp_out_open(struct event_base *base, const struct smtp_hop_opts *opts,
			       smtp_out_ready_fn ready, void *arg)
{
	struct smtp_out *o = xcalloc(1, sizeof(*o));
	o->base = base;
	copy_opts(o, opts);
	o->fn = ready;
	o->arg = arg;
	o->st = OS_OPENING;
	o->later = evtimer_new(base, later_cb, o);
	relay_describe(o);
	snprintf(o->tls_desc, sizeof(o->tls_desc), "none");
	snprintf(o->auth_desc, sizeof(o->auth_desc), "none");
	bool tls = opts->implicit_tls || opts->tls != STLS_NONE;
	if (tls && opts->tls_ctx == NULL) {
		struct smtp_result *r = result_new(SR_CONN_FAIL, "STARTTLS");
		result_local(r, "STARTTLS", 451, "4.7.5", "no TLS context for %s", o->relay_desc);
		o->st = OS_BROKEN;
		deliver_later(o, r);
		return o;
	}
	connect_hop(o);
	return o;
}

/* ---- a transaction ---- */

static void free_steps(struct smtp_out *o)
{
	for (size_t i = 0; i < o->n_steps; i++)
		free(o->steps[i].line);
	free(o->steps);
	o->steps = NULL;
	o->n_steps = o->idx = 0;
	free(o->acc);
	o->acc = NULL;
}

static void add_step(struct smtp_out *o, enum step_what what, size_t rcpt, const char *line)
{
	struct step *s = &o->steps[o->n_steps++];
	s->what = what;
	s->rcpt = rcpt;
	s->line = line ? xstrdup(line) : NULL;
}

static bool needs_utf8(const struct smtp_out_msg *m)
{
	for (const unsigned char *p = (const unsigned char *)m->sender; *p; p++)
		if (*p >= 0x80)
			return true;
	for (size_t i = 0; i < m->n_rcpts; i++)
		for (const unsigned char *p = (const unsigned char *)m->rcpts[i].addr; *p; p++)
			if (*p >= 0x80)
				return true;
	return false;
}

/* refuse_early - reasons to send nothing at all (the result is final). */
static bool refuse_early(struct smtp_out *o, const struct smtp_out_msg *m, bool utf8)
{
	const struct smtp_caps *caps = &o->hello.caps;
	struct smtp_result *r = o->r;
	if (caps->has_size && caps->size > 0 && m->len > caps->size) {
		r->kind = SR_PERM_ALL;
		result_local(r, "MAIL", 552, "5.3.4", "message size %zu exceeds size limit %llu of "
			     "server %s", m->len, (unsigned long long)caps->size, o->relay_desc);
	} else if (utf8 && !caps->smtputf8) {
		r->kind = SR_PERM_ALL;
		result_local(r, "MAIL", 553, "5.6.7", "SMTPUTF8 is required, but was not offered "
			     "by host %s", o->relay_desc);
	} else {
		return false;
	}
	rcpts_where(r, false);
	return true;
}

/* build_steps - the commands; a recipient that cannot be sent is refused here. */
static bool build_steps(struct smtp_out *o, const struct smtp_out_msg *m, bool utf8)
{
	char line[CMD_MAX], err[128];
	const struct smtp_caps *caps = &o->hello.caps;
	o->steps = xcalloc(m->n_rcpts + 4, sizeof(*o->steps));
	if (o->used)
		add_step(o, W_RSET, 0, "RSET");
	if (!smtp_format_mail(m, caps, utf8, line, sizeof(line), err, sizeof(err))) {
		o->r->kind = SR_PERM_ALL;
		result_local(o->r, "MAIL", 553, "5.1.7", "sender not sent: %s", err);
		rcpts_where(o->r, false);
		return false;
	}
	add_step(o, W_MAIL, 0, line);
	size_t n = 0;
	for (size_t i = 0; i < m->n_rcpts; i++) {
		if (smtp_format_rcpt(&m->rcpts[i], caps, line, sizeof(line), err, sizeof(err))) {
			add_step(o, W_RCPT, i, line);
			n++;
		} else {
			rcpt_set(&o->r->rcpts[i], 553, "5.1.3", err);
		}
	}
	if (n == 0) { /* nobody to send to: the per-recipient codes say why */
		o->r->kind = SR_DONE;
		return false;
	}
	add_step(o, W_DATA, 0, "DATA");
	add_step(o, W_DOT, 0, NULL);
	return true;
}

static unsigned step_timeout(const struct smtp_out *o, const struct step *s)
{
	switch (s->what) {
	case W_RCPT: return o->o.rcpt_ms;
	case W_DATA: return o->o.data_init_ms;
	case W_DOT: return o->o.data_done_ms;
	default: return o->o.mail_ms; /* Postfix: smtp_rset_timeout is 20s; MAIL's is fine */
	}
}

static const char *step_name(const struct step *s)
{
	static const char *names[] = {"RSET", "MAIL FROM", "RCPT TO", "DATA command",
				      "end of data"};
	return names[s->what];
}

static const char *step_stage(const struct step *s)
{
	static const char *names[] = {"RSET", "MAIL", "RCPT", "DATA", "end of data"};
	return names[s->what];
}

/* send_step - the next command, or (pipelined) just await its reply. */
static void send_step(struct smtp_out *o)
{
	const struct step *s = &o->steps[o->idx];
	if (o->pipelined)
		smtpc_expect(o->c, step_timeout(o, s), on_step, o);
	else
		smtpc_command_timeout(o->c, s->line, step_timeout(o, s), on_step, o);
}

/* finish - derive the message's kind and every recipient's code. */
static void finish(struct smtp_out *o)
{
	struct smtp_result *r = o->r;
	o->r = NULL;
	free_steps(o);
	if (o->st == OS_BUSY)
		o->st = OS_IDLE;
	if (o->o.lmtp && !o->mail_failed && !o->data_refused && o->accepted > 0) {
		r->kind = SR_DONE; /* each accepted recipient has its own reply */
		r->stage = "";
	} else if (o->mail_failed || o->data_refused ||
		   (o->accepted > 0 && r->code / 100 != 2)) {
		r->kind = r->code / 100 == 5 ? SR_PERM_ALL : SR_TEMP_ALL;
		rcpts_where(r, true);
	} else if (o->accepted > 0) {
		r->kind = SR_DONE;
		rcpts_where(r, true);
		r->stage = "";
	} else {
		r->kind = SR_DONE; /* every recipient refused: each code says how */
		result_local(r, "RCPT", 0, "", "no recipient was accepted");
	}
	deliver(o, r);
}

/* rcpts_lost - the failure for every recipient still without a fate. LMTP:
 * those that had their end-of-data reply keep it (delivered is delivered). */
static void rcpts_lost(struct smtp_out *o, struct smtp_result *r)
{
	if (!o->o.lmtp || o->acc == NULL) {
		rcpts_where(r, true);
		return;
	}
	for (size_t k = o->n_dot; k < o->accepted; k++)
		rcpt_set(&r->rcpts[o->acc[k]], r->code, r->enhanced, r->text);
	rcpts_where(r, false);
}

/* lost - no reply (timeout, closed, TLS error) or a 421: the session is over. */
static void lost(struct smtp_out *o, const struct step *s, const struct smtpc_reply *rep)
{
	struct smtp_result *r = o->r;
	o->r = NULL;
	o->st = OS_BROKEN;
	if (o->mail_failed)
		rcpts_where(r, false); /* MAIL's refusal, recorded before */
	r->kind = SR_TEMP_ALL;
	r->try_next_address = o->n_dot == 0;
	bool body_out = s->what == W_DOT && smtpc_data_sent(o->c);
	bool dot = body_out && !o->discard;
	if (rep->status == SMTPC_REPLY)
		result_reply(r, step_stage(s), rep);
	else
		result_local(r, step_stage(s), 451, "4.4.2", "%s with %s %s sending %s%s%s%s",
			     rep->status == SMTPC_TIMEOUT ? "conversation" : "lost connection",
			     o->relay_desc, rep->status == SMTPC_TIMEOUT ? "timed out while" : "while",
			     s->what == W_DOT && !body_out ? "message content" : step_name(s),
			     dot ? " -- message may be sent more than once" : "",
			     rep->status == SMTPC_TIMEOUT ? "" : ": ", rep->status == SMTPC_TIMEOUT ? "" : rep->error);
	rcpts_lost(o, r);
	free_steps(o);
	deliver(o, r);
}

/* send_body - after 354: the message, or only "." when nobody can receive it. */
static void send_body(struct smtp_out *o)
{
	struct strbuf b;
	strbuf_init(&b);
	if (o->mail_failed || o->accepted == 0)
		o->discard = true; /* a server that said 354 anyway: an empty, dropped message */
	else
		smtp_dot_stuff(o->m->data, o->m->len, &b);
	if (o->discard)
		strbuf_puts(&b, ".\r\n");
	smtpc_send_raw(o->c, b.data, b.len);
	strbuf_free(&b);
	o->idx++;
	smtpc_expect_after_send(o->c, o->o.data_xfer_ms, o->o.data_done_ms, on_step, o);
}

/* record_lmtp - an end-of-data reply: the next accepted recipient's fate. */
static void record_lmtp(struct smtp_out *o, const struct smtpc_reply *rep)
{
	char text[512];
	one_line(rep->text, text, sizeof(text));
	rcpt_set(&o->r->rcpts[o->acc[o->n_dot++]], rep->code, rep->enhanced, text);
}

/* record - one reply into the result; false when the transaction stops here. */
static bool record(struct smtp_out *o, const struct step *s, const struct smtpc_reply *rep)
{
	struct smtp_result *r = o->r;
	bool ok = rep->code / 100 == 2;
	switch (s->what) {
	case W_RSET:
		return ok;
	case W_MAIL:
		result_reply(r, "MAIL", rep);
		o->mail_failed = !ok;
		return true;
	case W_RCPT:
		if (!o->mail_failed) {
			struct smtp_rcpt_result *rr = &r->rcpts[s->rcpt];
			char text[512];
			one_line(rep->text, text, sizeof(text));
			rcpt_set(rr, rep->code, rep->enhanced, text);
			if (ok && o->acc != NULL)
				o->acc[o->accepted] = s->rcpt;
			o->accepted += ok;
		}
		return true;
	case W_DATA:
		if (!o->mail_failed && o->accepted > 0) {
			result_reply(r, "DATA", rep);
			o->data_refused = rep->code != 354;
		}
		return true;
	case W_DOT:
		if (!o->discard)
			result_reply(r, "end of data", rep);
		if (!o->discard && o->acc != NULL && o->n_dot < o->accepted)
			record_lmtp(o, rep);
		return true;
	}
	return true;
}

static void on_step(struct smtpc *c, const struct smtpc_reply *rep, void *arg)
{
	(void)c;
	struct smtp_out *o = arg;
	const struct step *s = &o->steps[o->idx];
	if (rep->status != SMTPC_REPLY || rep->code == 421) {
		lost(o, s, rep);
		return;
	}
	if (!record(o, s, rep)) { /* RSET refused: the session is in a state we do not know */
		struct smtpc_reply odd = *rep;
		lost(o, s, &odd);
		return;
	}
	if (s->what == W_DATA && rep->code == 354) {
		send_body(o);
		return;
	}
	if (s->what == W_DOT && o->acc != NULL && !o->discard && o->n_dot < o->accepted) {
		smtpc_expect(o->c, o->o.data_done_ms, on_step, o); /* LMTP: the next one's */
		return;
	}
	bool stop = s->what == W_DOT || s->what == W_DATA; /* DATA: refused (354 went above) */
	o->idx++;
	if (!stop && !o->pipelined) /* one at a time: nothing more after these */
		stop = o->mail_failed || (o->steps[o->idx].what == W_DATA && o->accepted == 0);
	if (stop) {
		finish(o);
		return;
	}
	send_step(o);
}

/* write_pipeline - every command up to DATA in one write (RFC 2920). */
static void write_pipeline(struct smtp_out *o)
{
	struct strbuf b;
	strbuf_init(&b);
	for (size_t i = 0; i < o->n_steps; i++) {
		if (o->steps[i].line == NULL)
			break;
		strbuf_puts(&b, o->steps[i].line);
		strbuf_puts(&b, "\r\n");
	}
	smtpc_send_raw(o->c, b.data, b.len);
	strbuf_free(&b);
}

void smtp_out_send(struct smtp_out *o, const struct smtp_out_msg *m, smtp_out_ready_fn done,
		   void *arg)
{
	o->fn = done;
	o->arg = arg;
	o->m = m;
	o->mail_failed = o->data_refused = o->discard = false;
	o->accepted = o->n_dot = 0;
	struct smtp_result *r = o->r = result_new(SR_TEMP_ALL, "");
	r->n_rcpts = m->n_rcpts;
	r->rcpts = xcalloc(m->n_rcpts ? m->n_rcpts : 1, sizeof(*r->rcpts));
	for (size_t i = 0; i < m->n_rcpts; i++)
		r->rcpts[i].text = xstrdup("");
	if (o->st != OS_IDLE) {
		r->kind = SR_CONN_FAIL;
		r->try_next_address = true;
		result_local(r, "connect", 451, "4.4.2", "the connection to %s is not usable",
			     o->relay_desc);
		rcpts_where(r, false);
	} else {
		bool utf8 = needs_utf8(m);
		if (!refuse_early(o, m, utf8) && build_steps(o, m, utf8)) {
			if (o->o.lmtp)
				o->acc = xcalloc(m->n_rcpts, sizeof(*o->acc));
			o->st = OS_BUSY;
			o->used = true;
			o->pipelined = o->hello.caps.pipelining;
			if (o->pipelined)
				write_pipeline(o);
			send_step(o);
			return;
		}
		free_steps(o);
	}
	o->r = NULL;
	deliver_later(o, r);
}

bool smtp_out_reusable(const struct smtp_out *o)
{
	/* a stray reply (an LMTP server answering once too often) would be
	 * taken as the next RSET's, shifting every later reply by one */
	return o != NULL && o->st == OS_IDLE && o->pending == NULL &&
	       !smtpc_unrequested_input(o->c);
}

const struct smtp_caps *smtp_out_caps(const struct smtp_out *o)
{
	return &o->hello.caps;
}

/* ---- closing ---- */

static void free_out(struct smtp_out *o)
{
	if (o->freed != NULL)
		o->freed(o->freed_arg, o);
	smtpc_free(o->c);
	event_free(o->later);
	result_free(o->pending);
	result_free(o->r);
	free_steps(o);
	free(o->helo_name);
	free(o->server_name);
	free(o->user);
	if (o->pass != NULL)
		explicit_bzero(o->pass, strlen(o->pass));
	free(o->pass);
	free(o);
}

static void on_quit(struct smtpc *c, const struct smtpc_reply *rep, void *arg)
{
	(void)c;
	(void)rep;
	free_out(arg);
}

void smtp_out_close(struct smtp_out *o)
{
	if (o == NULL)
		return;
	o->fn = NULL;
	if (o->st == OS_IDLE && o->c != NULL && o->pending == NULL) {
		o->st = OS_BROKEN; /* closing: nothing else goes out */
		smtpc_command_timeout(o->c, "QUIT", o->o.quit_ms, on_quit, o);
		return;
	}
	free_out(o);
}

void smtp_out_abort(struct smtp_out *o)
{
	if (o != NULL) {
		o->freed = NULL;
		free_out(o);
	}
}

void smtp_out_close_notify(struct smtp_out *o, void (*freed)(void *arg, struct smtp_out *o),
			   void *arg)
{
	if (o == NULL)
		return;
	o->freed = freed;
	o->freed_arg = arg;
	smtp_out_close(o);
}
