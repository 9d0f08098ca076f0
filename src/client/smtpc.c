/*
 * smtpc.c - non-blocking SMTP client connection (see smtpc.h).
 *
 * DESCRIPTION
 *	The connection owns one bufferevent: a socket bufferevent, later
 *	wrapped by an OpenSSL filter for TLS. Input is read line by line
 *	(CRLF, or a bare LF from a sloppy server) into the reply being built;
 *	the reply is complete at the first line without '-' after the code.
 *	A timer guards the connect and every awaited reply. Callbacks run
 *	from libevent callbacks only, never from inside smtpc_command(), so a
 *	caller may free the connection in any callback.
 */
#include "client/smtpc.h"
#include "util/util.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct smtpc {
	struct event_base *base;
	struct bufferevent *bev;
	struct event *timer;   /* connect / reply timeout */
	struct event *kick;    /* deliver an outcome from the loop, not from the caller */
	bool connected;
	bool tls;
	bool dead;             /* closed, failed or out of sync: every later wait fails at once */
	bool optional;         /* the awaited reply may not come (smtpc_expect_optional) */
	bool eof;              /* the server closed: buffered replies are still read first */
	unsigned timeout_ms;
	smtpc_fn fn;           /* the awaited reply's callback, or NULL */
	void *arg;
	struct strbuf text;    /* raw lines of the reply being read */
	int code;
	unsigned lines;
	char dead_reason[256];
	enum smtpc_status dead_status;
	SSL_CTX *implicit_tls; /* TLS starts once TCP is connected */
	char sni[256];
	char tls_names[512];   /* certificate names to check (smtpc_opts.tls_names) */
	bool tls_require;      /* a certificate that does not verify ends the handshake */
	struct smtpc_tlsa tlsa[SMTPC_TLSA_MAX]; /* DANE; data owned */
	size_t n_tlsa;
	unsigned greeting_ms;  /* the greeting's own timer, from the connect on */
	bool draining;         /* smtpc_expect_after_send: the reply timer waits for the output */
	bool data_sent;        /* ... and the output did drain */
	unsigned drain_reply_ms;
};

static void read_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);
static bool wrap_tls(struct smtpc *c, SSL_CTX *ctx, const char *sni, char *err, size_t errlen);

/* smtpc_parse_line - "NNN", "NNN text" or "NNN-text"; code 200..599. */
bool smtpc_parse_line(const char *line, int *code, bool *last)
{
	if (line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' || line[2] < '0' ||
	    line[2] > '9')
		return false;
	if (line[3] != '\0' && line[3] != ' ' && line[3] != '-')
		return false;
	*code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	*last = line[3] != '-';
	return true;
}

/* digits - up to max decimal digits at *p; returns how many were read. */
static size_t digits(const char *p, size_t max)
{
	size_t n = 0;
	while (n < max && p[n] >= '0' && p[n] <= '9')
		n++;
	return n;
}

/* smtpc_parse_enhanced - RFC 3463 class.subject.detail, class agreeing with code. */
void smtpc_parse_enhanced(int code, const char *text, char *out, size_t outlen)
{
	out[0] = '\0';
	const char *p = text;
	if (*p < '2' || *p > '5' || *p - '0' != code / 100 || p[1] != '.')
		return;
	size_t n1 = digits(p + 2, 3);
	if (n1 == 0 || p[2 + n1] != '.')
		return;
	size_t n2 = digits(p + 3 + n1, 3);
	size_t len = 3 + n1 + n2;
	if (n2 == 0 || (p[len] != '\0' && p[len] != ' ') || len + 1 > outlen)
		return;
	memcpy(out, p, len);
	out[len] = '\0';
}

static void timer_arm(struct smtpc *c, unsigned ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(c->timer, &tv);
}

/* finish - hand the awaited outcome to its callback (which may free c). */
static void finish(struct smtpc *c, enum smtpc_status st, const char *error)
{
	smtpc_fn fn = c->fn;
	void *arg = c->arg;
	c->fn = NULL;
	evtimer_del(c->timer);
	if (c->draining) { /* the reply came while data was still going out */
		c->draining = false;
		bufferevent_set_timeouts(c->bev, NULL, NULL);
	}
	char why[256]; /* the reply must not point into c: the callback may free it */
	rg_strlcpy(why, error ? error : "", sizeof(why));
	struct smtpc_reply r = {.status = st, .text = "", .error = why};
	char enhanced[16] = "";
	char *text = NULL;
	if (st == SMTPC_REPLY) {
		r.code = c->code;
		text = strbuf_steal(&c->text);
		/* the first line's text: after "NNN " */
		smtpc_parse_enhanced(c->code, strlen(text) > 4 ? text + 4 : "", enhanced,
				     sizeof(enhanced));
		memcpy(r.enhanced, enhanced, sizeof(enhanced));
		r.text = text;
		c->code = 0;
		c->lines = 0;
	}
	if (fn != NULL)
		fn(c, &r, arg);
	free(text);
}

/* die - the connection is unusable from now on. */
static void die(struct smtpc *c, enum smtpc_status st, const char *why)
{
	if (!c->dead) {
		c->dead = true;
		c->dead_status = st;
		rg_strlcpy(c->dead_reason, why, sizeof(c->dead_reason));
		if (c->bev != NULL)
			bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	}
	if (c->fn != NULL)
		finish(c, c->dead_status, c->dead_reason);
}

/* take_line - one line of the reply; NULL, or why the reply is refused. */
static const char *take_line(struct smtpc *c, const char *line, bool *complete)
{
	int code;
	bool last;
	if (!smtpc_parse_line(line, &code, &last) || (c->lines > 0 && code != c->code))
		return "malformed reply line";
	if (++c->lines > SMTPC_LINES_MAX)
		return "reply has more than 512 lines";
	if (c->text.len + strlen(line) + 1 > SMTPC_REPLY_MAX)
		return "reply longer than 64 KiB";
	if (c->text.len > 0)
		strbuf_puts(&c->text, "\n");
	strbuf_puts(&c->text, line);
	c->code = code;
	*complete = last;
	return NULL;
}

/* process - consume buffered input while a reply is awaited. Returns true
 * when an outcome was delivered: the callback may have freed c, so the
 * caller must not touch c again. */
static bool process(struct smtpc *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	while (c->fn != NULL && !c->dead) {
		size_t n;
		char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > SMTPC_REPLY_MAX) {
				die(c, SMTPC_ERROR, "reply line too long");
				return true;
			}
			return false;
		}
		bool complete = false;
		const char *bad = strlen(line) != n ? "malformed reply line (NUL byte)"
						    : take_line(c, line, &complete);
		if (bad != NULL) {
			char why[160];
			snprintf(why, sizeof(why), "%s: %.100s", bad, line);
			for (char *p = why; *p; p++)
				if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
					*p = '?';
			free(line);
			die(c, SMTPC_ERROR, why);
			return true;
		}
		free(line);
		if (complete) {
			finish(c, SMTPC_REPLY, NULL);
			return true; /* c may be gone */
		}
	}
	return false;
}

/* read_or_close - read what is buffered; after the server's close, a wait
 * that no buffered reply answers ends as closed. */
static void read_or_close(struct smtpc *c)
{
	if (process(c))
		return;
	if (c->eof && c->fn != NULL)
		die(c, SMTPC_CLOSED, "connection closed by the server");
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct smtpc *c = arg;
	if (c->dead)
		die(c, c->dead_status, c->dead_reason);
	else if (c->connected)
		read_or_close(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct smtpc *c = arg;
	if (!c->connected) {
		die(c, SMTPC_ERROR, "connect timed out");
		return;
	}
	/* A reply that is late may still come, and would then be taken as the
	 * answer to the next command, shifting every later reply by one. So the
	 * connection is out of sync: no command is sent on it again. Only an
	 * optional wait with nothing received at all leaves it usable. */
	bool partial = c->lines > 0 || evbuffer_get_length(bufferevent_get_input(c->bev)) > 0;
	if (!c->optional || partial) {
		c->dead = true;
		c->dead_status = SMTPC_ERROR;
		rg_strlcpy(c->dead_reason, "out of sync: an earlier reply did not come in time",
			   sizeof(c->dead_reason));
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	}
	strbuf_free(&c->text);
	strbuf_init(&c->text);
	c->lines = 0;
	finish(c, SMTPC_TIMEOUT, "no complete reply in time");
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct smtpc *c = arg;
	if (c->fn != NULL)
		process(c);
	else if (evbuffer_get_length(bufferevent_get_input(c->bev)) > SMTPC_REPLY_MAX)
		die(c, SMTPC_ERROR, "too much unrequested output from the server");
}

static void tls_error(struct smtpc *c, char *buf, size_t len)
{
	unsigned long e = bufferevent_get_openssl_error(c->bev);
	if (e != 0) {
		char ebuf[200];
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
		SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
		long v = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
		snprintf(buf, len, "TLS: %s%s%s", ebuf, v != X509_V_OK ? ": " : "",
			 v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
	} else {
		snprintf(buf, len, "TLS handshake failed or connection reset");
	}
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct smtpc *c = arg;
	char why[256];
	if (what & BEV_EVENT_CONNECTED) {
		if (!c->connected) {
			c->connected = true;
			if (c->implicit_tls != NULL &&
			    !wrap_tls(c, c->implicit_tls, c->sni, why, sizeof(why))) {
				die(c, SMTPC_ERROR, why);
				return;
			}
			bufferevent_enable(c->bev, EV_READ | EV_WRITE);
			if (c->greeting_ms > 0 && c->fn != NULL)
				timer_arm(c, c->greeting_ms);
			if (c->fn != NULL)
				process(c);
		}
		return;
	}
	if (what & BEV_EVENT_EOF) {
		/* a reply that arrived just before the close is still delivered, now
		 * or to the next wait (await() checks eof); c is not touched after a
		 * delivery, whose callback may have freed it */
		c->eof = true;
		read_or_close(c);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		int e = EVUTIL_SOCKET_ERROR();
		if (c->tls || (c->connected && bufferevent_get_openssl_error(c->bev) != 0))
			tls_error(c, why, sizeof(why));
		else if (e == ECONNRESET || e == EPIPE)
			snprintf(why, sizeof(why), "connection reset by the server");
		else
			snprintf(why, sizeof(why), "%s: %s", c->connected ? "connection error" : "connect failed",
				 e ? evutil_socket_error_to_string(e) : "unknown error");
		die(c, e == ECONNRESET ? SMTPC_CLOSED : SMTPC_ERROR, why);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) /* only the write timeout of smtpc_expect_after_send */
		die(c, SMTPC_TIMEOUT, "sending data timed out (no progress)");
}

/* write_cb - the output has drained: a reply awaited after data starts its timer. */
static void write_cb(struct bufferevent *bev, void *arg)
{
	struct smtpc *c = arg;
	if (!c->draining || evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	c->draining = false;
	c->data_sent = true;
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	if (c->fn != NULL && !c->dead)
		timer_arm(c, c->drain_reply_ms);
}

static void set_callbacks(struct smtpc *c)
{
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* set_tls_names - names the certificate is checked against (a leading '.'
 * matches subdomains); with require, a failed check ends the handshake. */
static bool set_tls_names(SSL *ssl, const char *names, bool require)
{
	/* RFC 6125, RFC 8461 4.2: the name is a DNS-ID (subjectAltName), never the CN */
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
				   X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
	bool first = true;
	for (const char *p = names; *p;) {
		size_t n = strcspn(p, " ");
		if (n > 0 && n < 256) {
			char name[256];
			memcpy(name, p, n);
			name[n] = '\0';
			if ((first ? SSL_set1_host(ssl, name) : SSL_add1_host(ssl, name)) != 1)
				return false;
			first = false;
		}
		p += n + (p[n] == ' ');
	}
	if (require)
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	return true;
}

/* dane_setup - the TLSA records on ssl (RFC 7672: DANE-EE without name
 * checks, DANE-TA with them); false when none is usable. */
static bool dane_setup(SSL *ssl, const struct smtpc *c, char *err, size_t errlen)
{
	char base[256];
	size_t n = strcspn(c->tls_names, " ");
	if (n > 0 && n < sizeof(base)) {
		memcpy(base, c->tls_names, n);
		base[n] = '\0';
	}
	if (n == 0 || n >= sizeof(base) || SSL_dane_enable(ssl, base) <= 0) {
		snprintf(err, errlen, "cannot enable DANE");
		return false;
	}
	SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	int usable = 0;
	for (size_t i = 0; i < c->n_tlsa; i++) {
		const struct smtpc_tlsa *t = &c->tlsa[i];
		usable += SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->mtype, t->data, t->len) > 0;
	}
	ERR_clear_error(); /* an unusable record is skipped, not an error */
	if (usable == 0) {
		snprintf(err, errlen, "no usable TLSA record");
		return false;
	}
	SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	return true;
}

static bool wrap_tls(struct smtpc *c, SSL_CTX *ctx, const char *sni, char *err, size_t errlen)
{
	SSL *ssl = SSL_new(ctx);
	if (ssl == NULL) {
		snprintf(err, errlen, "cannot create a TLS session");
		return false;
	}
	if (sni != NULL && sni[0] != '\0' && sni[0] != '[')
		SSL_set_tlsext_host_name(ssl, sni);
	if (!set_tls_names(ssl, c->tls_names, c->tls_require)) {
		SSL_free(ssl);
		snprintf(err, errlen, "cannot set the certificate names to check");
		return false;
	}
	if (c->n_tlsa > 0 && !dane_setup(ssl, c, err, errlen)) {
		SSL_free(ssl);
		return false;
	}
	struct bufferevent *f = bufferevent_openssl_filter_new(
		c->base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (f == NULL) {
		SSL_free(ssl);
		snprintf(err, errlen, "cannot start TLS");
		return false;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
	c->bev = f;
	c->tls = true;
	set_callbacks(c);
	return true;
}

static void copy_tlsa(struct smtpc *c, const struct smtpc_tlsa *t, size_t n)
{
	for (size_t i = 0; i < n && c->n_tlsa < SMTPC_TLSA_MAX; i++) {
		struct smtpc_tlsa *d = &c->tlsa[c->n_tlsa++];
		*d = t[i];
		unsigned char *copy = xmalloc(t[i].len ? t[i].len : 1);
		memcpy(copy, t[i].data, t[i].len);
		d->data = copy;
	}
}

struct smtpc *smtpc_connect(struct event_base *base, const struct smtpc_opts *o, smtpc_fn fn,
			    void *arg, char *err, size_t errlen)
{
	int fd = socket(o->addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return NULL;
	}
	if (o->source != NULL && bind(fd, o->source, o->sourcelen) != 0) {
		snprintf(err, errlen, "cannot bind the source address: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	struct smtpc *c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->timeout_ms = o->timeout_ms ? o->timeout_ms : 10000;
	strbuf_init(&c->text);
	c->timer = evtimer_new(base, timer_cb, c);
	c->kick = evtimer_new(base, kick_cb, c);
	c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->fn = fn;
	c->arg = arg;
	set_callbacks(c);
	if (o->preamble != NULL) /* before any TLS bytes: it is for the TCP peer */
		bufferevent_write(c->bev, o->preamble, strlen(o->preamble));
	c->implicit_tls = o->implicit_tls;
	rg_strlcpy(c->sni, o->sni ? o->sni : "", sizeof(c->sni));
	rg_strlcpy(c->tls_names, o->tls_names ? o->tls_names : "", sizeof(c->tls_names));
	c->tls_require = o->tls_require_verified;
	copy_tlsa(c, o->tlsa, o->n_tlsa);
	c->greeting_ms = o->greeting_timeout_ms;
	timer_arm(c, c->timeout_ms);
	if (bufferevent_socket_connect(c->bev, o->addr, (int)o->addrlen) != 0) {
		/* the failure is reported through the callback, from the loop */
		c->dead = true;
		c->dead_status = SMTPC_ERROR;
		snprintf(c->dead_reason, sizeof(c->dead_reason), "connect failed: %s",
			 strerror(errno));
		event_active(c->kick, EV_TIMEOUT, 0);
	}
	return c;
}

static void await(struct smtpc *c, unsigned timeout_ms, smtpc_fn fn, void *arg)
{
	c->fn = fn;
	c->arg = arg;
	c->optional = false;
	if (c->dead) {
		event_active(c->kick, EV_TIMEOUT, 0);
		return;
	}
	timer_arm(c, timeout_ms ? timeout_ms : c->timeout_ms);
	if (c->eof || evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		event_active(c->kick, EV_TIMEOUT, 0);
}

void smtpc_command(struct smtpc *c, const char *line, smtpc_fn fn, void *arg)
{
	smtpc_command_timeout(c, line, 0, fn, arg);
}

void smtpc_command_timeout(struct smtpc *c, const char *line, unsigned timeout_ms, smtpc_fn fn,
			   void *arg)
{
	if (!c->dead && !c->eof) { /* after the close only buffered replies are read */
		bufferevent_write(c->bev, line, strlen(line));
		bufferevent_write(c->bev, "\r\n", 2);
	}
	await(c, timeout_ms, fn, arg);
}

void smtpc_send_raw(struct smtpc *c, const char *data, size_t len)
{
	if (!c->dead && !c->eof)
		bufferevent_write(c->bev, data, len);
}

void smtpc_expect(struct smtpc *c, unsigned timeout_ms, smtpc_fn fn, void *arg)
{
	await(c, timeout_ms, fn, arg);
}

void smtpc_expect_optional(struct smtpc *c, unsigned timeout_ms, smtpc_fn fn, void *arg)
{
	await(c, timeout_ms, fn, arg);
	c->optional = true;
}

void smtpc_expect_after_send(struct smtpc *c, unsigned xfer_ms, unsigned timeout_ms, smtpc_fn fn,
			     void *arg)
{
	await(c, timeout_ms, fn, arg);
	c->data_sent = !c->dead && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0;
	if (c->dead || c->data_sent)
		return;
	evtimer_del(c->timer); /* started by write_cb once the data is out */
	c->draining = true;
	c->drain_reply_ms = timeout_ms ? timeout_ms : c->timeout_ms;
	struct timeval tv = {xfer_ms / 1000, (xfer_ms % 1000) * 1000};
	bufferevent_set_timeouts(c->bev, NULL, xfer_ms ? &tv : NULL);
}

bool smtpc_starttls(struct smtpc *c, SSL_CTX *ctx, const char *sni, char *err, size_t errlen)
{
	if (c->dead || c->tls) {
		snprintf(err, errlen, c->tls ? "TLS is already active" : "connection is closed");
		return false;
	}
	struct evbuffer *in = bufferevent_get_input(c->bev);
	evbuffer_drain(in, evbuffer_get_length(in)); /* no plaintext injection */
	return wrap_tls(c, ctx, sni, err, errlen);
}

bool smtpc_tls_active(const struct smtpc *c)
{
	return c->tls;
}

bool smtpc_data_sent(const struct smtpc *c)
{
	return c->data_sent;
}

bool smtpc_connected(const struct smtpc *c)
{
	return c->connected;
}

bool smtpc_unrequested_input(const struct smtpc *c)
{
	return c->fn == NULL && c->bev != NULL &&
	       evbuffer_get_length(bufferevent_get_input(c->bev)) > 0;
}

bool smtpc_tls_describe(const struct smtpc *c, char *buf, size_t len)
{
	SSL *ssl = c->tls && c->bev != NULL ? bufferevent_openssl_get_ssl(c->bev) : NULL;
	if (ssl == NULL || !SSL_is_init_finished(ssl)) {
		snprintf(buf, len, "none");
		return false;
	}
	long v = SSL_get_verify_result(ssl);
	bool cert = SSL_get0_peer_certificate(ssl) != NULL;
	bool ok = cert && v == X509_V_OK;
	bool dane = ok && c->n_tlsa > 0 && SSL_get0_dane_authority(ssl, NULL, NULL) >= 0;
	snprintf(buf, len, "%s %s %s%s%s%s", SSL_get_version(ssl), SSL_get_cipher_name(ssl),
		 ok ? (dane ? "dane verified" : "verified") : "unverified", ok ? "" : " (",
		 ok ? "" : (cert ? X509_verify_cert_error_string(v) : "no certificate"), ok ? "" : ")");
	return ok;
}

void smtpc_free(struct smtpc *c)
{
	if (c == NULL)
		return;
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	event_free(c->timer);
	event_free(c->kick);
	strbuf_free(&c->text);
	for (size_t i = 0; i < c->n_tlsa; i++)
		free((void *)c->tlsa[i].data);
	free(c);
}

SSL_CTX *smtpc_tls_verify_ctx(const char *cafile, const char *capath, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		snprintf(err, errlen, "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* per connection: tls_require_verified */
	if (SSL_CTX_dane_enable(ctx) <= 0) { /* per connection: smtpc_opts.tlsa */
		snprintf(err, errlen, "cannot enable DANE on the TLS context");
		SSL_CTX_free(ctx);
		return NULL;
	}
	bool own = (cafile != NULL && cafile[0]) || (capath != NULL && capath[0]);
	int ok = own ? SSL_CTX_load_verify_locations(ctx, cafile && cafile[0] ? cafile : NULL,
						     capath && capath[0] ? capath : NULL)
		     : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		char ebuf[200];
		ERR_error_string_n(ERR_get_error(), ebuf, sizeof(ebuf));
		snprintf(err, errlen, "cannot load the trust store %s%s%s: %s",
			 own ? (cafile && cafile[0] ? cafile : "") : "(system default)",
			 own && cafile && cafile[0] && capath && capath[0] ? " " : "",
			 own && capath && capath[0] ? capath : "", ebuf);
		ERR_clear_error();
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

SSL_CTX *smtpc_tls_probe_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
	return ctx;
}
