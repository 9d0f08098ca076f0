/*
 * control.c - the control socket on the event loop (see control.h).
 *
 * A connection lives for one request: read a line, validate it against the
 * command table, call the ops, write the reply, close when it has drained.
 * Reading stops once the line is in; a client that sends more than
 * CONTROL_REQUEST_MAX bytes without a line end gets an error and is closed.
 */
#include "control/control.h"
#include "queue/queue_admin.h"
#include "tlspol/tlsmem.h"
#include "util/basedir.h"
#include "net/net.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

struct control_client {
	struct control *ctl;
	struct bufferevent *bev;
	char uid[16], pid[16];
	struct control_client *prev, *next;
};

struct control {
	struct event_base *base;
	struct evconnlistener *listener;
	const struct control_ops *ops;
	void *arg;
	const struct control_abuse_ops *abuse; /* NULL: not registered */
	void *abuse_arg;
	int dirfd;               /* the queue directory (basedir) */
	char *path;              /* queue_dir/control, for logs */
	struct control_client *clients;
	size_t n_clients;
};

/* What a command takes after its word. */
enum arg_kind { ARG_NONE, ARG_OPTIONAL_ID, ARG_ID, ARG_ID_OR_ALL, ARG_IP, ARG_LOGIN, ARG_DOMAIN };

struct command {
	const char *word;
	enum arg_kind arg;
	bool (*run)(struct control *c, const char *id, struct strbuf *out);
};

static bool run_list(struct control *c, const char *id, struct strbuf *out)
{
	(void)id;
	return c->ops->list(c->arg, false, out);
}

static bool run_list_json(struct control *c, const char *id, struct strbuf *out)
{
	(void)id;
	return c->ops->list(c->arg, true, out);
}

static bool run_status(struct control *c, const char *id, struct strbuf *out)
{
	(void)id;
	return c->ops->status(c->arg, out);
}

static bool run_flush(struct control *c, const char *id, struct strbuf *out)
{
	return c->ops->flush(c->arg, id, out);
}

static bool run_delete(struct control *c, const char *id, struct strbuf *out)
{
	return c->ops->delete(c->arg, id, out);
}

static bool run_hold(struct control *c, const char *id, struct strbuf *out)
{
	return c->ops->hold(c->arg, id, out);
}

static bool run_release(struct control *c, const char *id, struct strbuf *out)
{
	return c->ops->release(c->arg, id, out);
}

/* no_abuse - the abuse commands before control_set_abuse: say so. */
static bool no_abuse(const struct control *c, struct strbuf *out)
{
	if (c->abuse != NULL)
		return false;
	strbuf_puts(out, "abuse control is not available in this server");
	return true;
}

static bool run_lockout_list(struct control *c, const char *id, struct strbuf *out)
{
	(void)id;
	return !no_abuse(c, out) && c->abuse->lockout_list(c->abuse_arg, out);
}

static bool run_lockout_clear(struct control *c, const char *ip, struct strbuf *out)
{
	return !no_abuse(c, out) && c->abuse->lockout_clear(c->abuse_arg, ip, out);
}

static bool run_abuse_stats(struct control *c, const char *id, struct strbuf *out)
{
	(void)id;
	return !no_abuse(c, out) && c->abuse->stats(c->abuse_arg, out);
}

static bool run_release_login(struct control *c, const char *login, struct strbuf *out)
{
	return !no_abuse(c, out) && c->abuse->by_login(c->abuse_arg, login, true, out);
}

static bool run_delete_login(struct control *c, const char *login, struct strbuf *out)
{
	return !no_abuse(c, out) && c->abuse->by_login(c->abuse_arg, login, false, out);
}

/* run_tls_memory - list (arg NULL) or forget a domain (arg). */
static bool run_tls_memory(struct control *c, const char *domain, struct strbuf *out)
{
	if (c->ops->tls_memory == NULL) {
		strbuf_puts(out, "this server has no TLS downgrade memory");
		return false;
	}
	return c->ops->tls_memory(c->arg, domain, out);
}

static bool run_tls_report_send(struct control *c, const char *arg, struct strbuf *out)
{
	(void)arg;
	if (c->ops->tls_report_send == NULL) {
		strbuf_puts(out, "this server does not send TLS reports");
		return false;
	}
	return c->ops->tls_report_send(c->arg, out);
}

static const struct command commands[] = {
	{"list", ARG_NONE, run_list},
	{"list-json", ARG_NONE, run_list_json},
	{"status", ARG_NONE, run_status},
	{"flush", ARG_OPTIONAL_ID, run_flush},
	{"delete", ARG_ID_OR_ALL, run_delete},
	{"hold", ARG_ID, run_hold},
	{"release", ARG_ID, run_release},
	{"lockout-list", ARG_NONE, run_lockout_list},
	{"lockout-clear", ARG_IP, run_lockout_clear},
	{"abuse-stats", ARG_NONE, run_abuse_stats},
	{"release-login", ARG_LOGIN, run_release_login},
	{"delete-login", ARG_LOGIN, run_delete_login},
	{"tls-memory-list", ARG_NONE, run_tls_memory},
	{"tls-memory-forget", ARG_DOMAIN, run_tls_memory},
	{"tls-report-send", ARG_NONE, run_tls_report_send},
};

/* check_arg - is arg acceptable for cmd? *id becomes the id or NULL (all). */
static bool check_arg(const struct command *cmd, const char *arg, const char **id,
		      struct strbuf *why)
{
	*id = NULL;
	if (arg == NULL) {
		if (cmd->arg == ARG_NONE || cmd->arg == ARG_OPTIONAL_ID)
			return true;
		strbuf_printf(why, "%s needs %s%s", cmd->word,
			      cmd->arg == ARG_IP ? "an IP address"
			      : cmd->arg == ARG_LOGIN ? "a login"
			      : cmd->arg == ARG_DOMAIN ? "a domain" : "a queue id",
			      cmd->arg == ARG_ID_OR_ALL ? " or --all" : "");
		return false;
	}
	if (cmd->arg == ARG_LOGIN) { /* printable ASCII already (dispatch) */
		if (arg[0] == '\0' || strchr(arg, ' ') != NULL) {
			strbuf_puts(why, "not a login (one word)");
			return false;
		}
		*id = arg;
		return true;
	}
	if (cmd->arg == ARG_IP) {
		struct rg_ip ip;
		if (!ip_parse(arg, &ip)) {
			strbuf_puts(why, "not an IP address (e.g. 192.0.2.1, 2001:db8::1)");
			return false;
		}
		*id = arg;
		return true;
	}
	if (cmd->arg == ARG_NONE) {
		strbuf_printf(why, "%s takes no argument", cmd->word);
		return false;
	}
	if (cmd->arg == ARG_ID_OR_ALL && strcmp(arg, "--all") == 0)
		return true;
	if (cmd->arg == ARG_DOMAIN && !tlsmem_domain_valid(arg)) {
		strbuf_puts(why, "not a domain name");
		return false;
	}
	if (cmd->arg == ARG_DOMAIN) {
		*id = arg;
		return true;
	}
	if (!queue_id_valid(arg)) {
		strbuf_puts(why, "not a queue id (16 to 20 upper-case hex digits)");
		return false;
	}
	*id = arg;
	return true;
}

/* dispatch - run one request line; false with the reason in out. */
static bool dispatch(struct control *c, char *line, struct strbuf *out)
{
	for (const char *p = line; *p; p++) {
		if (*p < 0x20 || *p >= 0x7f) {
			strbuf_puts(out, "bad request: control characters or non-ASCII bytes");
			return false;
		}
	}
	char *arg = strchr(line, ' ');
	if (arg != NULL)
		*arg++ = '\0';
	for (size_t i = 0; i < RG_ARRAY_LEN(commands); i++) {
		const char *id;
		if (strcmp(commands[i].word, line) != 0)
			continue;
		if (!check_arg(&commands[i], arg, &id, out))
			return false;
		return commands[i].run(c, id, out);
	}
	strbuf_puts(out, "unknown command (list, list-json, status, flush [ID], delete ID|--all, "
		    "hold ID, release ID, lockout-list, lockout-clear IP, abuse-stats, "
		    "release-login LOGIN, delete-login LOGIN, tls-memory-list, "
		    "tls-memory-forget DOMAIN, tls-report-send)");
	return false;
}

static void client_free(struct control_client *cl)
{
	struct control *c = cl->ctl;
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		c->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	c->n_clients--;
	bufferevent_free(cl->bev);
	free(cl);
}

static void on_drained(struct bufferevent *bev, void *arg)
{
	(void)bev;
	client_free(arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct control_client *cl = arg;
	(void)bev;
	if (what & BEV_EVENT_TIMEOUT)
		log_ev(LOG_WARNING, "control-timeout", {"uid", cl->uid}, {"pid", cl->pid});
	client_free(cl);
}

/* reply - send the text and the final status line, then close once drained. */
static void reply(struct control_client *cl, bool ok, struct strbuf *out)
{
	struct evbuffer *o = bufferevent_get_output(cl->bev);
	bufferevent_disable(cl->bev, EV_READ);
	if (ok) {
		evbuffer_add(o, out->data ? out->data : "", out->len);
		if (out->len > 0 && out->data[out->len - 1] != '\n')
			evbuffer_add(o, "\n", 1);
		evbuffer_add(o, "ok\n", 3);
	} else {
		for (size_t i = 0; i < out->len; i++)
			if (out->data[i] == '\n')
				out->data[i] = i + 1 == out->len ? '\0' : ';';
		evbuffer_add_printf(o, "error %s\n", out->data ? out->data : "failed");
	}
	bufferevent_setcb(cl->bev, NULL, on_drained, on_event, cl);
}

/* serve_line - one request: log who asked what, and how it went. */
static void serve_line(struct control_client *cl, char *line)
{
	struct strbuf out;
	strbuf_init(&out);
	char *command = xstrdup(line);
	bool ok = dispatch(cl->ctl, line, &out);
	log_ev(ok ? LOG_INFO : LOG_WARNING, "control", {"uid", cl->uid}, {"pid", cl->pid},
	       {"command", command}, {"result", ok ? "ok" : "error"},
	       {"reason", ok ? NULL : out.data});
	reply(cl, ok, &out);
	free(command);
	strbuf_free(&out);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct control_client *cl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
	if (line == NULL && evbuffer_get_length(in) <= CONTROL_REQUEST_MAX)
		return; /* wait for the rest of the line */
	if (line == NULL || n > CONTROL_REQUEST_MAX || strlen(line) != n) {
		struct strbuf why;
		strbuf_init(&why);
		strbuf_puts(&why, line ? "bad request" : "request too long");
		log_ev(LOG_WARNING, "control", {"uid", cl->uid}, {"pid", cl->pid},
		       {"result", "error"}, {"reason", why.data});
		reply(cl, false, &why);
		strbuf_free(&why);
	} else {
		serve_line(cl, line);
	}
	free(line);
}

/* peer_ids - the caller's uid and pid, from the kernel (not from the request). */
static void peer_ids(evutil_socket_t fd, struct control_client *cl)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		snprintf(cl->uid, sizeof(cl->uid), "%u", (unsigned)cred.uid);
		snprintf(cl->pid, sizeof(cl->pid), "%d", (int)cred.pid);
	} else {
		rg_strlcpy(cl->uid, "?", sizeof(cl->uid));
		rg_strlcpy(cl->pid, "?", sizeof(cl->pid));
	}
}

static void on_accept(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct control *c = arg;
	(void)ev;
	(void)sa;
	(void)salen;
	if (c->n_clients >= CONTROL_MAX_CLIENTS) {
		static const char busy[] = "error too many control connections; try again\n";
		if (write(fd, busy, sizeof(busy) - 1) < 0) { /* best effort: non-blocking */
		}
		close(fd);
		return;
	}
	struct control_client *cl = xcalloc(1, sizeof(*cl));
	cl->ctl = c;
	peer_ids(fd, cl);
	cl->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
	struct timeval tv = {CONTROL_TIMEOUT_SECONDS, 0};
	bufferevent_set_timeouts(cl->bev, &tv, &tv);
	bufferevent_setcb(cl->bev, on_read, NULL, on_event, cl);
	bufferevent_enable(cl->bev, EV_READ);
	cl->next = c->clients;
	if (c->clients)
		c->clients->prev = cl;
	c->clients = cl;
	c->n_clients++;
}

/* remove_stale - a socket left by a killed server (the queue lock says no
 * other server runs); anything that is not a socket is not ours to delete. */
static bool remove_stale(struct control *c, char *err, size_t errlen)
{
	struct stat st;
	if (fstatat(c->dirfd, CONTROL_SOCKET_NAME, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return true;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket; remove it", c->path);
		return false;
	}
	if (unlinkat(c->dirfd, CONTROL_SOCKET_NAME, 0) != 0) {
		snprintf(err, errlen, "cannot remove stale %s: %s", c->path, strerror(errno));
		return false;
	}
	log_ev(LOG_INFO, "control-stale-socket-removed", {"path", c->path});
	return true;
}

/* bind_socket - bind through /proc/self/fd/N: the queue directory's parents
 * may be closed to mail_owner, and the path may not fit in sun_path. */
static bool bind_socket(struct control *c, int fd)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "/proc/self/fd/%d/%s", c->dirfd,
		 CONTROL_SOCKET_NAME);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		return true;
	if (errno != ENOENT || strlen(c->path) >= sizeof(sun.sun_path))
		return false;
	rg_strlcpy(sun.sun_path, c->path, sizeof(sun.sun_path)); /* no /proc */
	return bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
}

/* open_access - socket 0660, directory g+x, both in our group: the owner's
 * group may connect, nobody else may even reach the socket. */
static bool open_access(struct control *c, char *err, size_t errlen)
{
	struct stat st;
	if (fstat(c->dirfd, &st) != 0 ||
	    (st.st_gid != getegid() && fchown(c->dirfd, (uid_t)-1, getegid()) != 0) ||
	    fchmod(c->dirfd, (st.st_mode & 0777) | S_IXGRP) != 0 ||
	    fchownat(c->dirfd, CONTROL_SOCKET_NAME, (uid_t)-1, getegid(), AT_SYMLINK_NOFOLLOW) != 0 ||
	    fchmodat(c->dirfd, CONTROL_SOCKET_NAME, 0660, 0) != 0) {
		snprintf(err, errlen, "cannot set the owner and mode of %s: %s", c->path,
			 strerror(errno));
		return false;
	}
	return true;
}

/* listen_socket - the listening socket, or -1 with err. */
static int listen_socket(struct control *c, char *err, size_t errlen)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || !bind_socket(c, fd)) {
		snprintf(err, errlen, "cannot bind %s: %s", c->path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!open_access(c, err, errlen) || listen(fd, 16) != 0) {
		if (err[0] == '\0')
			snprintf(err, errlen, "cannot listen on %s: %s", c->path, strerror(errno));
		unlinkat(c->dirfd, CONTROL_SOCKET_NAME, 0);
		close(fd);
		return -1;
	}
	return fd;
}

struct control *control_new(struct event_base *base, const char *queue_dir,
			    const struct control_ops *ops, void *arg, char *err, size_t errlen)
{
	struct control *c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->ops = ops;
	c->arg = arg;
	c->path = xasprintf("%s/%s", queue_dir, CONTROL_SOCKET_NAME);
	c->dirfd = basedir_fd(queue_dir);
	err[0] = '\0';
	int fd = -1;
	if (c->dirfd < 0)
		snprintf(err, errlen, "cannot open %s: %s", queue_dir, strerror(errno));
	else if (remove_stale(c, err, errlen))
		fd = listen_socket(c, err, errlen);
	if (fd >= 0)
		c->listener = evconnlistener_new(base, on_accept, c, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (c->listener == NULL) {
		if (fd >= 0) {
			snprintf(err, errlen, "cannot listen on %s", c->path);
			unlinkat(c->dirfd, CONTROL_SOCKET_NAME, 0);
			close(fd);
		}
		free(c->path);
		free(c);
		return NULL;
	}
	log_ev(LOG_INFO, "control-listening", {"path", c->path});
	return c;
}

void control_set_abuse(struct control *c, const struct control_abuse_ops *ops, void *arg)
{
	c->abuse = ops;
	c->abuse_arg = arg;
}

void control_free(struct control *c)
{
	if (c == NULL)
		return;
	while (c->clients)
		client_free(c->clients);
	evconnlistener_free(c->listener);
	unlinkat(c->dirfd, CONTROL_SOCKET_NAME, 0);
	free(c->path);
	free(c);
}
