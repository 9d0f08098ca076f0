/*
 * dovecot.c - Dovecot's auth-client protocol on libevent (see dovecot.h).
 *
 * The wire, as Postfix's xsasl_dovecot_server speaks it:
 *	C: VERSION 1 2, CPID <pid>
 *	S: VERSION 1 x, MECH <name> [flags]..., SPID, CUID, COOKIE, DONE
 *	C: AUTH <id> PLAIN service=smtp nologin lip= rip= [secured] resp=<b64>
 *	S: OK <id> user=<name> ... | FAIL <id> [user=] [temp] [code=] [reason=]
 *	C: CANCEL <id>  (a request we gave up on)
 * Fields are TAB-separated; values use Dovecot's tab-escaping (\001 escapes
 * NUL, \001, TAB, CR, LF).
 *
 * The connection is a small state machine:
 *	IDLE --request--> CONNECTING --connected--> HANDSHAKE --DONE--> READY
 *	any state --error, malformed line, EOF--> IDLE (every request fails,
 *	  but after a lost connection those made on it while it was READY
 *	  are sent once more, on a new one)
 * Requests wait in one list; those made before READY are sent at DONE.
 *
 * Passwords: the AUTH line (base64 of the password) is zeroed when the
 * request ends; the copy libevent's output buffer held is freed unzeroed.
 *
 * Completion is always deferred: a finished request records its result and
 * activates its own event, whose callback calls DONE. So no user callback
 * ever runs inside dovecot_auth_verify() or inside the read loop, and a
 * callback may cancel requests or free the client without surprising us.
 */
#include "auth/dovecot.h"
#include "util/log.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define DOVECOT_MAX_LINE 16384     /* Dovecot's AUTH_CLIENT_MAX_LINE_LENGTH */
#define DOVECOT_MAX_INFLIGHT 1024  /* requests queued or sent on one client */
#define DOVECOT_MAX_FIELDS 64      /* fields looked at in one server line */
#define DOVECOT_MAX_CREDENTIALS 4096 /* user + password, bytes */
/*
 * Dovecot (password_has_illegal_chars) fails any password holding these, and
 * 2.3 then stalls its auth process for seconds, for every client. Such a
 * password can never be right, so it is refused here without asking.
 */
#define DOVECOT_ILLEGAL_PASS "\t\r\n\001"

enum dc_state { DC_IDLE, DC_CONNECTING, DC_HANDSHAKE, DC_READY };

struct dovecot_req {
	struct dovecot_auth *da;
	TAILQ_ENTRY(dovecot_req) link;
	unsigned int id;
	bool sent;         /* the AUTH line went to the current connection */
	bool finished;     /* result recorded, ev activated to deliver it */
	bool may_retry;    /* made on an open connection, which may be stale */
	char *line;        /* the AUTH line; holds the password, zeroed when done */
	size_t line_len;
	struct event *ev;  /* timeout, and the deferred completion */
	enum auth_status st;
	char *user;
	char *reason;
	auth_done_fn *done;
	void *arg;
};

TAILQ_HEAD(dovecot_reqs, dovecot_req);

struct dovecot_auth {
	struct event_base *base;
	char *path; /* as configured, for logs */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int timeout;
	enum dc_state state;
	struct bufferevent *bev;
	bool got_version;
	bool has_plain;
	unsigned int next_id;
	size_t nreqs;
	struct dovecot_reqs reqs;
};

/* --- addresses ---------------------------------------------------------- */

/* parse_inet - "host:port" with a numeric IPv4 or [IPv6] host. */
static bool parse_inet(struct dovecot_auth *da, const char *s, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *port;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host)) {
			snprintf(err, errlen, "dovecot: bad address \"inet:%s\" (want inet:[v6]:port)", s);
			return false;
		}
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = '\0';
		port = end + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (colon == NULL || (size_t)(colon - s) >= sizeof(host)) {
			snprintf(err, errlen, "dovecot: bad address \"inet:%s\" (want inet:host:port)", s);
			return false;
		}
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
		port = colon + 1;
	}
	uint64_t p;
	if (!rg_parse_u64(port, &p) || p == 0 || p > 65535) {
		snprintf(err, errlen, "dovecot: bad port in \"inet:%s\"", s);
		return false;
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)&da->addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&da->addr;
	memset(&da->addr, 0, sizeof(da->addr));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		da->addrlen = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		da->addrlen = sizeof(*sin6);
	} else {
		/* A name would need a DNS lookup on every reconnect; keep it numeric. */
		snprintf(err, errlen,
			 "dovecot: host \"%s\" is not a numeric IP address (names are not resolved)",
			 host);
		return false;
	}
	return true;
}

/* parse_path - a unix socket path, or inet:host:port. */
static bool parse_path(struct dovecot_auth *da, const char *path, char *err, size_t errlen)
{
	if (strncmp(path, "inet:", 5) == 0)
		return parse_inet(da, path + 5, err, errlen);
	if (strncmp(path, "unix:", 5) == 0)
		path += 5;
	struct sockaddr_un *sun = (struct sockaddr_un *)&da->addr;
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(sun->sun_path)) {
		snprintf(err, errlen, "dovecot: socket path \"%s\" is empty or too long", path);
		return false;
	}
	memset(&da->addr, 0, sizeof(da->addr));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, path, n + 1);
	da->addrlen = (socklen_t)sizeof(*sun);
	return true;
}

/* --- escaping and encoding ---------------------------------------------- */

/* tab_escape - append S to DST with Dovecot's \001 escapes. */
static void tab_escape(struct strbuf *dst, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '\001': strbuf_append(dst, "\0011", 2); break;
		case '\t': strbuf_append(dst, "\001t", 2); break;
		case '\r': strbuf_append(dst, "\001r", 2); break;
		case '\n': strbuf_append(dst, "\001n", 2); break;
		default: strbuf_append(dst, s, 1); break;
		}
	}
}

/* tab_unescape - undo tab_escape in place; false when the value holds a NUL. */
static bool tab_unescape(char *s)
{
	char *out = s;
	for (char *in = s; *in != '\0'; in++) {
		if (*in != '\001') {
			*out++ = *in;
			continue;
		}
		if (in[1] == '\0')
			break; /* a lone trailing escape: dropped */
		in++;
		switch (*in) {
		case '0': return false;
		case '1': *out++ = '\001'; break;
		case 't': *out++ = '\t'; break;
		case 'r': *out++ = '\r'; break;
		case 'n': case 'l': *out++ = '\n'; break;
		default: *out++ = *in; break;
		}
	}
	*out = '\0';
	return true;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* base64_encode - OUT must hold 4*ceil(n/3) bytes; returns the length written. */
static size_t base64_encode(const unsigned char *in, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = b64chars[(v >> 18) & 63];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64chars[v & 63] : '=';
	}
	return o;
}

/*
 * build_auth_line - the AUTH line for one request. The password exists in
 * three places only: the caller's, a scratch buffer zeroed here, and the
 * returned line, zeroed when the request is freed.
 */
static char *build_auth_line(unsigned int id, const char *user, const char *pass,
			     const struct dovecot_req_info *info, size_t *len)
{
	struct strbuf head;
	strbuf_init(&head);
	strbuf_printf(&head, "AUTH\t%u\tPLAIN\tservice=", id);
	tab_escape(&head, info != NULL && info->service != NULL ? info->service : "smtp");
	strbuf_puts(&head, "\tnologin");
	if (info != NULL && info->local_ip != NULL) {
		strbuf_puts(&head, "\tlip=");
		tab_escape(&head, info->local_ip);
	}
	if (info != NULL && info->remote_ip != NULL) {
		strbuf_puts(&head, "\trip=");
		tab_escape(&head, info->remote_ip);
	}
	if (info != NULL && info->secured)
		strbuf_puts(&head, "\tsecured");
	strbuf_puts(&head, "\tresp=");

	/* SASL PLAIN (RFC 4616): authzid NUL authcid NUL passwd, empty authzid. */
	size_t ulen = strlen(user), plen = strlen(pass);
	size_t rawlen = 2 + ulen + plen;
	unsigned char *raw = xmalloc(rawlen);
	raw[0] = '\0';
	memcpy(raw + 1, user, ulen);
	raw[1 + ulen] = '\0';
	memcpy(raw + 2 + ulen, pass, plen);

	size_t cap = head.len + 4 * ((rawlen + 2) / 3) + 2;
	char *line = xmalloc(cap);
	memcpy(line, head.data, head.len);
	size_t n = head.len + base64_encode(raw, rawlen, line + head.len);
	line[n++] = '\n';
	line[n] = '\0';
	explicit_bzero(raw, rawlen);
	free(raw);
	strbuf_free(&head);
	*len = n;
	return line;
}

/* --- requests ------------------------------------------------------------ */

static void req_free(struct dovecot_req *r)
{
	struct dovecot_auth *da = r->da;
	TAILQ_REMOVE(&da->reqs, r, link);
	da->nreqs--;
	if (r->line != NULL) {
		explicit_bzero(r->line, r->line_len);
		free(r->line);
	}
	event_free(r->ev);
	free(r->user);
	free(r->reason);
	free(r);
}

/* req_finish - record the result; DONE runs from the request's event. */
static void req_finish(struct dovecot_req *r, enum auth_status st, const char *user,
		       const char *reason)
{
	if (r->finished)
		return;
	r->finished = true;
	r->st = st;
	r->user = user != NULL ? xstrdup(user) : NULL;
	r->reason = reason != NULL ? xstrdup(reason) : NULL;
	if (r->line != NULL) {
		explicit_bzero(r->line, r->line_len);
		free(r->line);
		r->line = NULL;
	}
	event_del(r->ev);
	event_active(r->ev, EV_TIMEOUT, 0);
}

static struct dovecot_req *req_find(struct dovecot_auth *da, unsigned int id)
{
	struct dovecot_req *r;
	TAILQ_FOREACH(r, &da->reqs, link) {
		if (r->id == id && r->sent && !r->finished)
			return r;
	}
	return NULL;
}

/* --- the connection ------------------------------------------------------ */

static void conn_drop(struct dovecot_auth *da, const char *why);
static void conn_read(struct bufferevent *bev, void *arg);
static void conn_event(struct bufferevent *bev, short what, void *arg);

static void conn_send(struct dovecot_auth *da, const char *s, size_t n)
{
	if (bufferevent_write(da->bev, s, n) != 0)
		conn_drop(da, "cannot queue output");
}

static void send_cancel(struct dovecot_req *r)
{
	struct dovecot_auth *da = r->da;
	if (!r->sent || da->state != DC_READY)
		return;
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "CANCEL\t%u\n", r->id);
	conn_send(da, buf, (size_t)n);
}

/* send_request - put R's AUTH line on the wire (kept for one retry). */
static void send_request(struct dovecot_req *r)
{
	r->sent = true;
	conn_send(r->da, r->line, r->line_len);
}

static void conn_open(struct dovecot_auth *da);

/*
 * conn_drop - close the connection; every unfinished request fails
 * (temporarily). With RETRY (the connection was lost, not broken by a bad
 * server), requests made while it looked healthy are sent once more on a
 * new connection: Dovecot may have restarted while we were idle, and a
 * stale socket is no reason to refuse a user. Each request retries once.
 */
static void conn_drop_retry(struct dovecot_auth *da, const char *why, bool retry)
{
	if (da->state == DC_IDLE)
		return;
	/* An idle connection closed by Dovecot (a restart) is news, not trouble. */
	bool busy = false;
	struct dovecot_req *r;
	TAILQ_FOREACH(r, &da->reqs, link)
		busy = busy || !r->finished;
	log_ev(busy ? LOG_WARNING : LOG_INFO, "dovecot-auth", {"path", da->path}, {"error", why});
	bufferevent_free(da->bev);
	da->bev = NULL;
	da->state = DC_IDLE;
	bool again = false;
	TAILQ_FOREACH(r, &da->reqs, link) {
		r->sent = false;
		if (r->finished)
			continue;
		if (retry && r->may_retry) {
			r->may_retry = false;
			again = true;
		} else {
			req_finish(r, AUTH_TEMPFAIL, NULL, why);
		}
	}
	if (again)
		conn_open(da);
}

static void conn_drop(struct dovecot_auth *da, const char *why)
{
	conn_drop_retry(da, why, false);
}

/*
 * conn_open - start connecting; the handshake is pipelined behind the connect.
 * Failures, immediate ones included, end in conn_drop (requests complete later).
 */
static void conn_open(struct dovecot_auth *da)
{
	da->bev = bufferevent_socket_new(da->base, -1,
					 BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	da->state = DC_CONNECTING;
	da->got_version = false;
	da->has_plain = false;
	if (da->bev == NULL) {
		conn_drop(da, "cannot create a bufferevent");
		return;
	}
	bufferevent_setcb(da->bev, conn_read, NULL, conn_event, da);
	bufferevent_setwatermark(da->bev, EV_READ, 0, DOVECOT_MAX_LINE * 4);
	if (bufferevent_socket_connect(da->bev, (struct sockaddr *)&da->addr,
				       (int)da->addrlen) != 0) {
		char why[160];
		snprintf(why, sizeof(why), "cannot connect: %s",
			 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		conn_drop(da, why);
		return;
	}
	bufferevent_enable(da->bev, EV_READ);
	char hello[64];
	int n = snprintf(hello, sizeof(hello), "VERSION\t1\t2\nCPID\t%ld\n", (long)getpid());
	conn_send(da, hello, (size_t)n);
}

static void conn_event(struct bufferevent *bev, short what, void *arg)
{
	struct dovecot_auth *da = arg;
	if (what & BEV_EVENT_CONNECTED) {
		if (da->state == DC_CONNECTING)
			da->state = DC_HANDSHAKE;
		return;
	}
	if (what & BEV_EVENT_EOF) {
		conn_read(bev, da); /* replies that arrived just before the close */
		if (da->state == DC_IDLE)
			return;
	}
	char why[160];
	if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof(why), "connection closed by dovecot");
	else if (da->state == DC_CONNECTING)
		snprintf(why, sizeof(why), "cannot connect: %s",
			 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	else
		snprintf(why, sizeof(why), "connection error: %s",
			 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	conn_drop_retry(da, why, true);
}

/* --- server lines -------------------------------------------------------- */

/* split_tabs - split LINE in place; returns the number of fields. */
static size_t split_tabs(char *line, char **f, size_t max)
{
	size_t n = 0;
	f[n++] = line;
	for (char *p = line; *p != '\0' && n < max; p++) {
		if (*p == '\t') {
			*p = '\0';
			f[n++] = p + 1;
		}
	}
	return n;
}

static bool parse_id(const char *s, unsigned int *id)
{
	uint64_t v;
	if (!rg_parse_u64(s, &v) || v == 0 || v > 0xffffffffu)
		return false;
	*id = (unsigned int)v;
	return true;
}

/* handshake_line - one line before DONE; false when it is malformed. */
static bool handshake_line(struct dovecot_auth *da, char **f, size_t n, const char **why)
{
	if (!da->got_version) {
		if (strcmp(f[0], "VERSION") != 0 || n < 3) {
			*why = "handshake does not start with VERSION";
			return false;
		}
		if (strcmp(f[1], "1") != 0) {
			*why = "unsupported protocol major version";
			return false;
		}
		da->got_version = true;
		return true;
	}
	if (strcmp(f[0], "MECH") == 0) {
		if (n < 2) {
			*why = "MECH without a name";
			return false;
		}
		if (rg_strcasecmp(f[1], "PLAIN") == 0)
			da->has_plain = true;
		return true;
	}
	if (strcmp(f[0], "DONE") == 0) {
		if (!da->has_plain) {
			*why = "dovecot does not offer mechanism PLAIN on this socket";
			return false;
		}
		da->state = DC_READY;
		struct dovecot_req *r;
		TAILQ_FOREACH(r, &da->reqs, link) {
			if (!r->finished && !r->sent)
				send_request(r);
			if (da->state != DC_READY)
				break;
		}
		return true;
	}
	if (strcmp(f[0], "VERSION") == 0) {
		*why = "VERSION sent twice";
		return false;
	}
	return true; /* SPID, CUID, COOKIE and anything newer: not needed here */
}

/* field_value - the value of NAME= among F[from..n), or NULL. */
static char *field_value(char **f, size_t n, size_t from, const char *name)
{
	size_t len = strlen(name);
	for (size_t i = from; i < n; i++) {
		if (strncmp(f[i], name, len) == 0 && f[i][len] == '=')
			return f[i] + len + 1;
	}
	return NULL;
}

static bool field_flag(char **f, size_t n, size_t from, const char *name)
{
	for (size_t i = from; i < n; i++) {
		if (strcmp(f[i], name) == 0)
			return true;
	}
	return false;
}

/* has_control - true when S holds a control byte (the name goes into headers and logs). */
static bool has_control(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	}
	return false;
}

static void reply_ok(struct dovecot_req *r, char **f, size_t n)
{
	char *user = field_value(f, n, 2, "user");
	if (user == NULL || !tab_unescape(user) || user[0] == '\0') {
		req_finish(r, AUTH_TEMPFAIL, NULL, "dovecot said OK without a usable user=");
		return;
	}
	if (has_control(user)) {
		req_finish(r, AUTH_TEMPFAIL, NULL, "dovecot said OK for a user name with control bytes");
		return;
	}
	req_finish(r, AUTH_OK, user, NULL);
}

static void reply_fail(struct dovecot_req *r, char **f, size_t n)
{
	char *reason = field_value(f, n, 2, "reason");
	char *code = field_value(f, n, 2, "code");
	bool temp = field_flag(f, n, 2, "temp") || (code != NULL && strcmp(code, "temp_fail") == 0);
	if (reason != NULL && !tab_unescape(reason))
		reason = NULL;
	if (reason == NULL || reason[0] == '\0')
		reason = temp ? "dovecot: temporary failure" : "dovecot: authentication failed";
	req_finish(r, temp ? AUTH_TEMPFAIL : AUTH_FAILED, NULL, reason);
}

/* reply_line - one line after DONE; false when it is malformed. */
static bool reply_line(struct dovecot_auth *da, char **f, size_t n, const char **why)
{
	bool ok = strcmp(f[0], "OK") == 0, fail = strcmp(f[0], "FAIL") == 0;
	bool cont = strcmp(f[0], "CONT") == 0;
	if (!ok && !fail && !cont)
		return true; /* e.g. CANCELLED from newer servers: nothing to do */
	unsigned int id;
	if (n < 2 || !parse_id(f[1], &id)) {
		*why = "reply without a valid request id";
		return false;
	}
	struct dovecot_req *r = req_find(da, id);
	if (r == NULL)
		return true; /* cancelled or timed out: the answer is no longer wanted */
	if (ok)
		reply_ok(r, f, n);
	else if (fail)
		reply_fail(r, f, n);
	else {
		/* PLAIN with an initial response needs no continuation. */
		send_cancel(r);
		req_finish(r, AUTH_TEMPFAIL, NULL, "dovecot asked to continue a PLAIN exchange");
	}
	return true;
}

static void conn_read(struct bufferevent *bev, void *arg)
{
	struct dovecot_auth *da = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char line[DOVECOT_MAX_LINE + 1];
	while (da->state != DC_IDLE) {
		struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
		if (eol.pos < 0) {
			if (evbuffer_get_length(in) > DOVECOT_MAX_LINE)
				conn_drop(da, "line from dovecot too long");
			return;
		}
		if ((size_t)eol.pos > DOVECOT_MAX_LINE) {
			conn_drop(da, "line from dovecot too long");
			return;
		}
		size_t len = (size_t)eol.pos;
		evbuffer_remove(in, line, len + 1);
		line[len] = '\0';
		if (memchr(line, '\0', len) != NULL) {
			conn_drop(da, "NUL byte in a line from dovecot");
			return;
		}
		char *f[DOVECOT_MAX_FIELDS];
		size_t n = split_tabs(line, f, DOVECOT_MAX_FIELDS);
		const char *why = NULL;
		bool good = da->state == DC_READY ? reply_line(da, f, n, &why)
						  : handshake_line(da, f, n, &why);
		if (!good) {
			conn_drop(da, why);
			return;
		}
	}
}

/* --- the request's event: timeout or deferred completion ----------------- */

static void req_event(evutil_socket_t fd, short what, void *arg)
{
	struct dovecot_req *r = arg;
	struct dovecot_auth *da = r->da;
	(void)fd;
	(void)what;
	if (!r->finished) {
		/* Timed out. A connection that never finished its handshake is stuck. */
		send_cancel(r);
		if (da->state != DC_READY && !r->sent) {
			conn_drop(da, "timed out waiting for the dovecot handshake");
		} else {
			log_ev(LOG_WARNING, "dovecot-auth", {"path", da->path},
			       {"error", "timed out waiting for a reply"});
			req_finish(r, AUTH_TEMPFAIL, NULL, "dovecot did not answer in time");
		}
	}
	auth_done_fn *done = r->done;
	void *done_arg = r->arg;
	enum auth_status st = r->st;
	char *user = r->user, *reason = r->reason;
	r->user = r->reason = NULL;
	req_free(r);
	done(st, user, reason, done_arg);
	free(user);
	free(reason);
}

/* --- the API ------------------------------------------------------------- */

struct dovecot_auth *dovecot_auth_new(struct event_base *base, const char *path,
				      int timeout_seconds, char *err, size_t errlen)
{
	struct dovecot_auth *da = xcalloc(1, sizeof(*da));
	if (!parse_path(da, path, err, errlen)) {
		free(da);
		return NULL;
	}
	da->base = base;
	da->path = xstrdup(path);
	da->timeout = timeout_seconds > 0 ? timeout_seconds : 10;
	da->state = DC_IDLE;
	da->next_id = 1;
	TAILQ_INIT(&da->reqs);
	return da;
}

void dovecot_auth_free(struct dovecot_auth *da)
{
	if (da == NULL)
		return;
	while (!TAILQ_EMPTY(&da->reqs))
		req_free(TAILQ_FIRST(&da->reqs));
	if (da->bev != NULL)
		bufferevent_free(da->bev);
	free(da->path);
	free(da);
}

static unsigned int next_id(struct dovecot_auth *da)
{
	unsigned int id = da->next_id++;
	if (da->next_id == 0)
		da->next_id = 1;
	return id;
}

struct dovecot_req *dovecot_auth_verify(struct dovecot_auth *da, const char *user,
					const char *pass, const struct dovecot_req_info *info,
					auth_done_fn *done, void *arg)
{
	struct dovecot_req *r = xcalloc(1, sizeof(*r));
	r->da = da;
	r->id = next_id(da);
	r->done = done;
	r->arg = arg;
	r->ev = evtimer_new(da->base, req_event, r);
	if (r->ev == NULL) {
		free(r);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&da->reqs, r, link);
	da->nreqs++;

	if (da->nreqs > DOVECOT_MAX_INFLIGHT) {
		req_finish(r, AUTH_TEMPFAIL, NULL, "too many dovecot requests in flight");
		return r;
	}
	if (strlen(user) + strlen(pass) > DOVECOT_MAX_CREDENTIALS) {
		req_finish(r, AUTH_FAILED, NULL, "credentials too long");
		return r;
	}
	if (strpbrk(pass, DOVECOT_ILLEGAL_PASS) != NULL) {
		req_finish(r, AUTH_FAILED, NULL,
			   "password holds a character Dovecot refuses (TAB, CR, LF or \\001)");
		return r;
	}
	r->line = build_auth_line(r->id, user, pass, info, &r->line_len);
	r->may_retry = da->state == DC_READY;
	struct timeval tv = {da->timeout, 0};
	evtimer_add(r->ev, &tv);

	if (da->state == DC_IDLE)
		conn_open(da);
	else if (da->state == DC_READY)
		send_request(r);
	return r;
}

void dovecot_auth_cancel(struct dovecot_req *r)
{
	if (r == NULL)
		return;
	if (!r->finished)
		send_cancel(r);
	req_free(r);
}
