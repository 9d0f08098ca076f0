/*
 * server.c - listeners, sessions, queue hand-off (see server.h).
 */
#include "smtp/server.h"
#include "abuse/abuse.h"
#include "auth/auth.h"
#include "auth/lockout.h"
#include "delivery/local.h"
#include "control/control.h"
#include "dns/dns.h"
#include "smtp/session_msgauth.h"
#include "metrics/events.h"
#include "metrics/metrics_http.h"
#include "policy/policy.h"
#include "qmgr/qmgr.h"
#include "qmgr/transport_smtp.h"
#include "smtp/pickup.h"
#include "smtp/reload.h"
#include "smtp/session.h"
#include "tls/tls.h"
#include "util/basedir.h"
#include "util/log.h"
#include "util/notify.h"
#include "util/util.h"
#include "util/workers.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#define COMMIT_THREADS 16         /* commits (and deliveries at acceptance): a client waits for each */
#define SPOOL_THREADS 2           /* large messages written while they arrive */
/* End-of-data stages (hashing, parsing: CPU work, no fsync) have their own
 * threads, so they never wait behind commits blocked in fsync. */
#define STAGE_THREADS 2
#define SHUTDOWN_GRACE_SECONDS 30
#define IP_BUCKETS 1024
#define LOCKOUT_MAX_CLIENTS 100000
/* Descriptors kept back from sessions: listeners, the event loop, the workers'
 * queue files, DNS, the control socket, the log and outbound delivery. */
#define FD_RESERVE 128
#define CONNECTION_LIMIT_MIN 10
#define ACCEPT_PAUSE_MS 250           /* listeners off after accept() failed */
#define ACCEPT_LOG_INTERVAL 5         /* seconds between accept-error log lines */
#define QUEUE_SPACE_INTERVAL 1        /* seconds between statvfs() of the queue */

struct listener {
	struct evconnlistener *ev;
	char text[96];
	enum listen_role role;
	struct server *srv;
};

/* Connections per client (an IPv4 address or an IPv6 /64), for
 * smtpd_client_connection_count_limit. */
struct ip_count {
	struct rg_ip ip;
	unsigned count;
	struct ip_count *next;
};

struct server {
	const struct config *cfg;     /* the start-up one: everything built once uses it */
	struct confset *configs;      /* what new sessions, commits and queue passes get;
				       * replaced ones until unused (reload.h) */
	int (*selftest)(const struct config *cfg); /* relay self-test, also on reload */
	bool reloading;               /* a reload job is on a worker */
	bool reload_again;            /* SIGHUP arrived meanwhile: reload once more */
	struct event *collect;        /* frees unused configurations after a session's end */
	struct event_base *base;
	struct workers *workers;      /* queue commits */
	struct workers *spoolers;     /* spool writes, apart from the commits */
	struct workers *stagers;      /* end-of-data stages, apart from the commits */
	struct qmgr *qmgr;            /* delivery of what was committed */
	struct listener **listeners;
	size_t n_listeners;
	bool pickup;                  /* <queue_directory>/pickup is ours: removed at the end */
	struct rg_ip *local_ips;
	size_t n_local_ips;
	struct session *sessions;
	size_t n_sessions;
	struct ip_count *ip_table[IP_BUCKETS];
	bool stopping;
	bool grace_over;              /* stopping, and the grace period has passed */
	struct event *sig_term, *sig_int, *sig_hup, *grace;
	struct dns *dns;
	struct tls_server *tls;        /* NULL: no listener uses TLS */
	struct auth *auth;             /* NULL: smtpd_sasl_auth_enable = no */
	struct lockout *lockout;       /* clients that failed AUTH too often */
	struct abuse *abuse;           /* rate limits and their exceptions */
	struct control *control;       /* the operator's socket; NULL if it failed */
	struct metrics_http *metrics;  /* GET /metrics; NULL without metrics_listen */
	size_t connection_limit;       /* all sessions together (smtpd_connection_limit) */
	struct event *accept_pause;    /* listeners re-enabled when this fires */
	unsigned long accept_errors;   /* accept() failures not logged yet */
	time_t accept_logged;          /* when the last accept-error line was written */
	struct event *space_timer;     /* statvfs() of the queue, off the command path */
	uint64_t queue_free;           /* bytes available to us there */
	bool queue_free_known;
	size_t data_pressure_mark;     /* data_in_memory that triggers spooling early */
};

struct tls_server *server_tls(const struct server *srv)
{
	return srv->tls;
}

struct auth *server_auth(const struct server *srv)
{
	return srv->auth;
}

struct lockout *server_lockout(const struct server *srv)
{
	return srv->lockout;
}

struct abuse *server_abuse(const struct server *srv)
{
	return srv->abuse;
}

const struct config *server_config(const struct server *srv)
{
	return confset_current(srv->configs);
}

/* server_domains - the current generation's, the partner of server_config():
 * a session reads both at its start and keeps them (reload.c holds them). */
const struct addr_domains *server_domains(const struct server *srv)
{
	return confset_domains(srv->configs);
}

struct event_base *server_base(const struct server *srv)
{
	return srv->base;
}

struct dns *server_dns_for(const struct server *srv, const struct rg_ip *ip)
{
	if (!srv->cfg->smtpd_peername_lookup)
		return NULL;
	/* loopback is "localhost" unless DNS servers were named (as tests do) */
	if (ip_is_loopback(ip) && srv->cfg->dns_servers[0] == '\0')
		return NULL;
	return srv->dns;
}

static unsigned ip_bucket(const struct rg_ip *ip)
{
	return ip_hash(ip) % IP_BUCKETS;
}

/* ip_count_add - delta +1/-1 for the client ip is in; returns the new count. */
static unsigned ip_count_add(struct server *srv, const struct rg_ip *client, int delta)
{
	struct rg_ip key = ip_client_key(client);
	const struct rg_ip *ip = &key;
	struct ip_count **pp = &srv->ip_table[ip_bucket(ip)];
	for (; *pp != NULL; pp = &(*pp)->next) {
		if (!ip_equal(&(*pp)->ip, ip))
			continue;
		struct ip_count *e = *pp;
		e->count = (unsigned)((int)e->count + delta);
		unsigned c = e->count;
		if (c == 0) {
			*pp = e->next;
			free(e);
		}
		return c;
	}
	if (delta <= 0)
		return 0;
	struct ip_count *e = xcalloc(1, sizeof(*e));
	e->ip = *ip;
	e->count = 1;
	e->next = srv->ip_table[ip_bucket(ip)];
	srv->ip_table[ip_bucket(ip)] = e;
	return 1;
}

static void check_exit(struct server *srv)
{
	if (srv->stopping && srv->n_sessions == 0 && workers_pending(srv->workers) == 0 &&
	    workers_pending(srv->spoolers) == 0 &&
	    (srv->qmgr == NULL || qmgr_idle(srv->qmgr) || srv->grace_over))
		event_base_loopexit(srv->base, NULL);
}

void server_session_closed(struct server *srv, struct session *s)
{
	struct session_link *l = session_link(s);
	if (l->prev)
		session_link(l->prev)->next = l->next;
	else
		srv->sessions = l->next;
	if (l->next)
		session_link(l->next)->prev = l->prev;
	srv->n_sessions--;
	mev_session_open(-1);
	confset_session_ended(srv->configs, s); /* its configuration: collected after it */
	ip_count_add(srv, session_client_ip(s), -1);
	check_exit(srv);
}

/* locked_out - refuse a client that failed AUTH too often, for a while. */
static bool locked_out(struct server *srv, const struct rg_ip *ip, evutil_socket_t fd)
{
	time_t until;
	if (abuse_lockout_exempt(srv->abuse, ip) ||
	    !lockout_is_locked(srv->lockout, ip, time(NULL), &until))
		return false;
	char text[RG_IP_STRLEN], line[256], left[24];
	ip_format(ip, text, sizeof(text));
	snprintf(left, sizeof(left), "%llds", (long long)(until - time(NULL)));
	snprintf(line, sizeof(line), "421 4.7.0 %s Error: too many failed authentication "
		 "attempts from %s; locked out for %s more, try again later",
		 srv->cfg->myhostname, text, left);
	log_ev(LOG_WARNING, "auth-lockout-refused", {"client", text}, {"remaining", left});
	session_refuse(fd, line);
	return true;
}

size_t server_connection_limit_for(uint64_t configured, uint64_t nofile)
{
	if (configured != 0)
		return (size_t)configured;
	/* each session may hold two descriptors: its socket and its spool file */
	uint64_t n = nofile > FD_RESERVE ? (nofile - FD_RESERVE) / 2 : 0;
	if (n > 1000000)
		n = 1000000;
	return n < CONNECTION_LIMIT_MIN ? CONNECTION_LIMIT_MIN : (size_t)n;
}

/* over_rate_limit - smtpd_client_connection_rate_limit (abuse.c decides). */
static bool over_rate_limit(struct server *srv, const struct rg_ip *ip, evutil_socket_t fd)
{
	char text[RG_IP_STRLEN], line[ABUSE_REPLY_MAX];
	ip_format(ip, text, sizeof(text));
	struct abuse_client c = {ip, text, NULL, NULL};
	if (abuse_check(srv->abuse, ABUSE_CONNECTION, &c, time(NULL), line, sizeof(line)))
		return false;
	session_refuse(fd, line);
	return true;
}

/* over_connection_limit - all sessions together: answer 421 rather than let
 * the descriptors run out (when accept() itself fails, nobody gets an answer). */
static bool over_connection_limit(struct server *srv, const struct rg_ip *ip, evutil_socket_t fd)
{
	if (srv->n_sessions < srv->connection_limit)
		return false;
	char text[RG_IP_STRLEN], line[256], limit[24];
	ip_format(ip, text, sizeof(text));
	snprintf(limit, sizeof(limit), "%zu", srv->connection_limit);
	snprintf(line, sizeof(line), "421 4.7.0 %s Error: too many connections, try again later",
		 srv->cfg->myhostname);
	log_ev(LOG_WARNING, "server-connection-limit", {"client", text}, {"limit", limit});
	session_refuse(fd, line);
	return true;
}

static void set_listening(struct server *srv, bool on)
{
	for (size_t i = 0; i < srv->n_listeners; i++) {
		if (on)
			evconnlistener_enable(srv->listeners[i]->ev);
		else
			evconnlistener_disable(srv->listeners[i]->ev);
	}
}

/* on_accept_resume - the pause after an accept() failure is over. */
static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	(void)fd;
	(void)what;
	if (!srv->stopping)
		set_listening(srv, true);
}

/* on_accept_error - accept() failed (EMFILE, ENFILE, ENOBUFS...): the pending
 * connection stays readable, so listening on would spin the loop and flood the
 * log. Pause every listener briefly and log once per interval with a count. */
static void on_accept_error(struct evconnlistener *ev, void *arg)
{
	struct server *srv = ((struct listener *)arg)->srv;
	int e = EVUTIL_SOCKET_ERROR();
	(void)ev;
	srv->accept_errors++;
	time_t now = time(NULL);
	if (now - srv->accept_logged >= ACCEPT_LOG_INTERVAL) {
		char count[24], sessions[24];
		snprintf(count, sizeof(count), "%lu", srv->accept_errors);
		snprintf(sessions, sizeof(sessions), "%zu", srv->n_sessions);
		log_ev(LOG_WARNING, "accept-failed", {"reason", strerror(e)}, {"count", count},
		       {"sessions", sessions}, {"action", "listeners paused briefly"});
		srv->accept_errors = 0;
		srv->accept_logged = now;
	}
	set_listening(srv, false);
	struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
	evtimer_add(srv->accept_pause, &tv);
}

/* session_added - a started session joins the live list (for SIGTERM). */
static void session_added(struct server *srv, struct session *s)
{
	confset_session_started(srv->configs, s); /* it read server_config() */
	struct session_link *link = session_link(s);
	link->prev = NULL;
	link->next = srv->sessions;
	if (srv->sessions)
		session_link(srv->sessions)->prev = s;
	srv->sessions = s;
	srv->n_sessions++;
	mev_session_open(+1);
}

/* over_client_count - count the connection for IP, or refuse it (421) beyond
 * smtpd_client_connection_count_limit; true when refused and closed. */
static bool over_client_count(struct server *srv, const struct rg_ip *ip, evutil_socket_t fd)
{
	const struct config *cfg = server_config(srv); /* reloadable: the current one */
	unsigned limit = (unsigned)cfg->smtpd_client_connection_count_limit; /* 0: none */
	if (ip_count_add(srv, ip, +1) <= limit || limit == 0)
		return false;
	char text[RG_IP_STRLEN], line[256];
	ip_format(ip, text, sizeof(text));
	snprintf(line, sizeof(line), "421 4.7.0 %s Error: too many connections from %s",
		 cfg->myhostname, text);
	log_ev(LOG_WARNING, "connection-limit", {"client", text}, {"reply", line});
	mev_connection_refused("limit");
	ip_count_add(srv, ip, -1);
	session_refuse(fd, line);
	return true;
}


/* admit - what every new connection goes through first (OK: its peer could be
 * read): counted, and refused at once while stopping or over the server's
 * connection limit. False: it was closed. */
static bool admit(struct server *srv, bool ok, const struct rg_ip *ip, evutil_socket_t fd)
{
	if (srv->stopping || !ok) {
		mev_connection_refused("shutdown");
		evutil_closesocket(fd);
		return false;
	}
	mev_connection();
	if (over_connection_limit(srv, ip, fd)) {
		mev_connection_refused("limit");
		return false;
	}
	return true;
}

/* on_accept_pickup - a local user on the pickup socket: the kernel says who it
 * is (SO_PEERCRED), and the session is authenticated as that user name. It is
 * counted as a client at 127.0.0.1 (loopback: it is this host). */
static void on_accept_pickup(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa,
			     int socklen, void *arg)
{
	struct listener *l = arg;
	struct server *srv = l->srv;
	struct pickup_peer peer;
	struct sockaddr_in local = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct rg_ip ip;
	(void)ev, (void)sa, (void)socklen;
	ip_from_sockaddr((struct sockaddr *)&local, &ip);
	if (!admit(srv, pickup_peer(fd, &peer), &ip, fd))
		return;
	/* local users together are one client (127.0.0.1): without this limit one
	 * of them could hold every session the server has */
	if (over_client_count(srv, &ip, fd))
		return;
	evutil_make_socket_nonblocking(fd);
	struct session *s = session_start(srv, fd, (struct sockaddr *)&local, l->text, ROLE_PICKUP);
	if (s == NULL) {
		ip_count_add(srv, &ip, -1);
		return;
	}
	session_preauth(s, peer.login, peer.uid == 0);
	session_added(srv, s);
}

/* add_pickup - the pickup socket (after the privilege drop, so it is
 * mail_owner's); without it the server still runs, only sendmail cannot. */
static void add_pickup(struct server *srv)
{
	char err[512], path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", srv->cfg->queue_directory, PICKUP_SOCKET_NAME);
	int fd = pickup_listen(basedir_fd(srv->cfg->queue_directory), path, err, sizeof(err));
	if (fd < 0) {
		log_ev(LOG_WARNING, "pickup-unavailable", {"reason", err});
		return;
	}
	srv->listeners = xrealloc(srv->listeners, (srv->n_listeners + 1) * sizeof(*srv->listeners));
	struct listener *l = xcalloc(1, sizeof(*l));
	srv->listeners[srv->n_listeners++] = l;
	rg_strlcpy(l->text, strlen(path) < sizeof(l->text) ? path : "<queue_directory>/pickup",
		   sizeof(l->text));
	l->role = ROLE_PICKUP;
	l->srv = srv;
	l->ev = evconnlistener_new(srv->base, on_accept_pickup, l,
				   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_DISABLED, -1, fd);
	evconnlistener_set_error_cb(l->ev, on_accept_error);
	srv->pickup = true;
}

static void on_accept(struct evconnlistener *ev, evutil_socket_t fd, struct sockaddr *sa,
		      int socklen, void *arg)
{
	struct listener *l = arg;
	struct server *srv = l->srv;
	struct rg_ip ip;
	(void)ev;
	(void)socklen;
	if (!admit(srv, ip_from_sockaddr(sa, &ip), &ip, fd))
		return;
	if (locked_out(srv, &ip, fd)) {
		mev_connection_refused("lockout");
		return;
	}
	if (over_rate_limit(srv, &ip, fd)) {
		mev_connection_refused("rate");
		return;
	}
	if (over_client_count(srv, &ip, fd))
		return;
	evutil_make_socket_nonblocking(fd);
	/* replies are whole lines written at once; without this, Nagle holds a TLS
	 * greeting behind the session tickets until the client's delayed ACK (40 ms) */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct session *s = session_start(srv, fd, sa, l->text, l->role);
	if (s == NULL) {
		ip_count_add(srv, &ip, -1);
		return;
	}
	session_added(srv, s);
}

/* A message on its way through a worker to the queue. */
struct job {
	struct server *srv;
	struct queue_msg *msg;
	struct confgen *gen;         /* commits: the configuration delivery at acceptance uses */
	void (*done)(void *arg, bool ok, const char *err);
	void *arg;
	bool ok;
	bool direct;                 /* delivered to the Maildirs at acceptance */
	char err[512];
	struct queue_spool *spool;   /* text already partly on disk, or NULL */
	struct strbuf data;          /* spool writes: the text to append */
};

static struct job *job_new(struct server *srv, struct queue_msg *m, struct queue_spool *sp,
			   void (*done)(void *arg, bool ok, const char *err), void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->srv = srv;
	j->msg = m;
	j->spool = sp;
	j->done = done;
	j->arg = arg;
	return j;
}

/* commit_queue - the message into the queue (text in memory or spooled). */
static void commit_queue(struct job *j)
{
	const char *dir = j->srv->cfg->queue_directory;
	struct queue_msg *m = j->msg;
	if (j->spool == NULL) {
		j->ok = queue_commit(dir, m, j->err, sizeof(j->err));
		return;
	}
	/* the tail still in memory, then the same durability steps as queue_commit */
	j->ok = queue_spool_write(dir, j->spool, m->body.data ? m->body.data : "", m->body.len,
				  j->err, sizeof(j->err));
	m->size = queue_spool_size(j->spool);
	if (j->ok)
		j->ok = queue_spool_commit(dir, j->spool, m, j->err, sizeof(j->err));
	else
		queue_spool_abort(dir, j->spool);
}

/* A delivery at acceptance: its job and the worker's deferred hand-back. */
struct direct {
	struct job *j;
	struct workers_token *token;
};

/* direct_done - the Maildir copies are durable (the 250 may go), or the
 * delivery failed: logged, and the message is queued instead. Runs on the
 * worker that led the covering directory sync. */
static void direct_done(void *arg, bool ok, const char *err)
{
	struct direct *d = arg;
	struct job *j = d->j;
	j->ok = j->direct = ok;
	if (!ok) {
		log_ev(LOG_WARNING, "direct-delivery-failed", {"session", j->msg->session},
		       {"queue", j->msg->id}, {"reason", err},
		       {"action", "queued for delivery instead"});
		commit_queue(j);
	}
	workers_finish(d->token);
	free(d);
}

/* commit_work - all-local mail into its Maildirs now, which then hold the
 * durable copy (the job is handed back when the directories are synced:
 * this worker does not wait for a sync another one leads); else the queue. */
static void commit_work(void *arg)
{
	struct job *j = arg;
	const struct config *cfg = confgen_config(j->gen); /* held until commit_done */
	if (j->spool == NULL)
		j->msg->size = j->msg->body.len;
	if (j->spool != NULL || !qmgr_direct_ok(cfg, j->msg)) {
		commit_queue(j);
		return;
	}
	struct direct *d = xcalloc(1, sizeof(*d));
	d->j = j;
	d->token = workers_defer();
	local_deliver_then(cfg, j->msg, direct_done, d);
}

/* commit_reply - the session hears the outcome (its 250, or the 4xx). */
static void commit_reply(void *arg)
{
	struct job *j = arg;
	j->done(j->arg, j->ok, j->err);
	free(j);
}

static void commit_done(void *arg)
{
	struct job *j = arg;
	struct queue_msg *m = j->msg;
	confgen_unref(j->gen); /* the worker is done with it; the qmgr takes its own */
	j->gen = NULL;
	if (j->ok) {
		char size[24], nrcpt[24], from[ADDR_PATH_MAX + 3];
		snprintf(size, sizeof(size), "%llu", (unsigned long long)m->size);
		snprintf(nrcpt, sizeof(nrcpt), "%zu", m->n_rcpts);
		snprintf(from, sizeof(from), "<%s>", m->sender);
		log_ev(LOG_INFO, "queued", {"session", m->session}, {"queue", m->id},
		       {"client", m->client_ip},
		       {"from", from}, {"size", size}, {"nrcpt", nrcpt},
		       {"delivery", j->direct ? "at acceptance" : NULL},
		       {"hold", m->hold ? "yes" : NULL});
	} else {
		log_ev(LOG_ERROR, "queue-error", {"session", m->session}, {"queue", m->id},
		       {"reason", j->err});
	}
	if (j->direct) {
		qmgr_delivered_direct(j->srv->qmgr, m);
	} else if (j->ok && !m->hold) { /* held (hold/): nothing to deliver until released */
		strbuf_free(&m->body); /* on disk now; delivery reads it back */
		qmgr_submit(j->srv->qmgr, m);
		/* queued: the 250 may wait while delivery catches up (in-flow) */
		qmgr_in_flow(j->srv->qmgr, commit_reply, j);
		return;
	} else {
		queue_msg_free(m);
	}
	commit_reply(j);
}

struct workers *server_workers(const struct server *srv)
{
	return srv->stagers;
}

void server_commit(struct server *srv, struct queue_msg *m, struct queue_spool *sp,
		   void (*done)(void *arg, bool ok, const char *err), void *arg)
{
	struct job *j = job_new(srv, m, sp, done, arg);
	j->gen = confset_ref(srv->configs); /* routing and mailboxes at acceptance */
	workers_submit(srv->workers, commit_work, commit_done, j);
}

static void spool_work(void *arg)
{
	struct job *j = arg;
	j->ok = queue_spool_write(j->srv->cfg->queue_directory, j->spool, j->data.data,
				  j->data.len, j->err, sizeof(j->err));
}

static void spool_done(void *arg)
{
	struct job *j = arg;
	strbuf_free(&j->data);
	j->done(j->arg, j->ok, j->err);
	free(j);
}

void server_spool_write(struct server *srv, struct queue_spool *sp, struct strbuf *data,
			void (*done)(void *arg, bool ok, const char *err), void *arg)
{
	struct job *j = job_new(srv, NULL, sp, done, arg);
	j->data = *data;
	strbuf_init(data);
	workers_submit(srv->spoolers, spool_work, spool_done, j);
}

static void abort_work(void *arg)
{
	struct job *j = arg;
	queue_spool_abort(j->srv->cfg->queue_directory, j->spool);
}

static void abort_done(void *arg)
{
	struct job *j = arg;
	struct server *srv = j->srv;
	free(j);
	check_exit(srv);
}

void server_spool_abort(struct server *srv, struct queue_spool *sp)
{
	workers_submit(srv->spoolers, abort_work, abort_done, job_new(srv, NULL, sp, NULL, NULL));
}

static void add_local_ip(struct server *srv, const struct rg_ip *ip)
{
	for (size_t i = 0; i < srv->n_local_ips; i++)
		if (ip_equal(&srv->local_ips[i], ip))
			return;
	srv->local_ips = xrealloc(srv->local_ips, (srv->n_local_ips + 1) * sizeof(struct rg_ip));
	srv->local_ips[srv->n_local_ips++] = *ip;
}

/* open_socket - a listening socket on ip:port (IPv6 sockets are IPv6-only). */
static evutil_socket_t open_socket(const char *host, unsigned port, int *err)
{
	struct sockaddr_storage ss;
	struct rg_ip ip;
	ip_parse(host, &ip);
	socklen_t len = ip_to_sockaddr(&ip, port, &ss);
	evutil_socket_t fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1;
	if (fd < 0) {
		*err = errno;
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 1024) != 0) {
		*err = errno;
		close(fd);
		return -1;
	}
	return fd;
}

static bool bind_one(struct server *srv, const char *host, const struct listen_addr *la,
		     bool optional, char *err, size_t errlen)
{
	static const char *const roles[] = {"", " (submission)", " (submissions)"};
	int e = 0;
	unsigned port = la->port;
	evutil_socket_t fd = open_socket(host, port, &e);
	char text[96];
	snprintf(text, sizeof(text), strchr(host, ':') ? "[%s]:%u%s" : "%s:%u%s", host, port,
		 roles[la->role]);
	if (fd < 0) {
		bool v6_missing = strchr(host, ':') && (e == EADDRNOTAVAIL || e == EAFNOSUPPORT);
		if (optional || v6_missing) {
			log_ev(LOG_WARNING, "listen-skipped", {"address", text}, {"reason", strerror(e)});
			return true;
		}
		snprintf(err, errlen, "cannot listen on %s: %s", text, strerror(e));
		return false;
	}
	srv->listeners = xrealloc(srv->listeners, (srv->n_listeners + 1) * sizeof(*srv->listeners));
	struct listener *l = xcalloc(1, sizeof(*l));
	srv->listeners[srv->n_listeners++] = l;
	rg_strlcpy(l->text, text, sizeof(l->text));
	l->role = la->role;
	l->srv = srv;
	l->ev = evconnlistener_new(srv->base, on_accept, l,
				   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_DISABLED, -1, fd);
	evconnlistener_set_error_cb(l->ev, on_accept_error);
	struct rg_ip ip;
	ip_parse(host, &ip);
	if (strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0)
		add_local_ip(srv, &ip);
	return true;
}

bool server_bind(struct server *srv, char *err, size_t errlen)
{
	for (size_t i = 0; i < srv->cfg->n_listen; i++) {
		const struct listen_addr *la = &srv->cfg->listen[i];
		bool ok;
		if (strcmp(la->host, "*") == 0) {
			struct host_network hn[64];
			size_t n = host_networks(hn, RG_ARRAY_LEN(hn));
			for (size_t k = 0; k < n; k++)
				add_local_ip(srv, &hn[k].addr);
			ok = bind_one(srv, "0.0.0.0", la, false, err, errlen) &&
			     bind_one(srv, "::", la, true, err, errlen);
		} else {
			ok = bind_one(srv, la->host, la, false, err, errlen);
		}
		if (!ok)
			return false;
	}
	if (srv->n_listeners == 0) {
		snprintf(err, errlen, "no listening socket could be opened");
		return false;
	}
	confset_set_local_ips(srv->configs, srv->local_ips, srv->n_local_ips);
	return true;
}

/* check_queue_space - statvfs() once a second on a timer, so MAIL only reads a number. */
static void check_queue_space(struct server *srv)
{
	struct statvfs vfs;
	srv->queue_free_known = statvfs(srv->cfg->queue_directory, &vfs) == 0;
	if (srv->queue_free_known)
		srv->queue_free = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
}

static void on_space_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	check_queue_space(arg);
}

uint64_t server_queue_minfree(const struct config *cfg)
{
	uint64_t least = cfg->message_size_limit + cfg->message_size_limit / 2;
	return cfg->queue_minfree > least ? cfg->queue_minfree : least;
}

bool server_queue_space_ok(const struct server *srv, uint64_t size)
{
	if (!srv->queue_free_known) /* cannot tell: the commit will say */
		return true;
	return srv->queue_free >= server_queue_minfree(srv->cfg) + size;
}

void server_data_pressure(struct server *srv)
{
	struct session *next;
	for (struct session *s = srv->sessions; s != NULL; s = next) {
		next = session_link(s)->next;
		session_spool_held(s);
	}
}

size_t server_data_pressure_mark(const struct server *srv)
{
	return srv->data_pressure_mark;
}

/* on_collect - a session or a job that held a replaced configuration is gone. */
static void on_collect(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	(void)fd;
	(void)what;
	confset_collect(srv->configs);
}

/* wake_collect - reload.c: a replaced configuration may be unused now; it
 * is freed from the loop, once whoever released it has returned. */
static void wake_collect(void *arg)
{
	struct server *srv = arg;
	static const struct timeval now = {0, 0};
	if (srv->collect != NULL)
		evtimer_add(srv->collect, &now);
}

struct server *server_new(const struct config *cfg, char *err, size_t errlen)
{
	struct server *srv = xcalloc(1, sizeof(*srv));
	srv->cfg = cfg;
	srv->configs = confset_new(cfg, wake_collect, srv);
	srv->base = event_base_new();
	if (srv->base == NULL) {
		snprintf(err, errlen, "cannot create the event loop");
		confset_free(srv->configs);
		free(srv);
		return NULL;
	}
	struct rlimit rl = {0, 0};
	getrlimit(RLIMIT_NOFILE, &rl); /* main raised the soft limit to the hard one */
	srv->connection_limit = server_connection_limit_for(cfg->smtpd_connection_limit,
							    (uint64_t)rl.rlim_cur);
	srv->data_pressure_mark = (size_t)(cfg->smtpd_data_memory_limit / 2);
	srv->accept_pause = evtimer_new(srv->base, on_accept_resume, srv);
	srv->collect = evtimer_new(srv->base, on_collect, srv);
	srv->space_timer = event_new(srv->base, -1, EV_PERSIST, on_space_timer, srv);
	srv->lockout = lockout_new((unsigned)cfg->smtpd_sasl_failure_limit,
				   (unsigned)cfg->smtpd_sasl_failure_window,
				   (unsigned)cfg->smtpd_sasl_lockout_time, LOCKOUT_MAX_CLIENTS);
	srv->abuse = abuse_new(cfg, srv->lockout);
	if (!abuse_share(srv->abuse, srv->base, err, errlen)) {
		server_free(srv);
		return NULL;
	}
	/* both read files that may be root's only: done before privileges are dropped */
	if (config_needs_tls(cfg) && (srv->tls = tls_server_new(cfg, err, errlen)) == NULL) {
		server_free(srv);
		return NULL;
	}
	if (cfg->smtpd_sasl_auth_enable &&
	    (srv->auth = auth_new(cfg, srv->base, err, errlen)) == NULL) {
		server_free(srv);
		return NULL;
	}
	if (!session_msgauth_load(cfg, err, errlen)) { /* DKIM signing keys */
		server_free(srv);
		return NULL;
	}
	return srv;
}

static void stop_listening(struct server *srv)
{
	for (size_t i = 0; i < srv->n_listeners; i++) {
		evconnlistener_free(srv->listeners[i]->ev);
		free(srv->listeners[i]);
	}
	free(srv->listeners);
	srv->listeners = NULL;
	srv->n_listeners = 0;
	if (srv->pickup) /* sendmail now sees "not running" (EX_TEMPFAIL), not a hang */
		pickup_unlink(basedir_fd(srv->cfg->queue_directory));
	srv->pickup = false;
}

/* on_grace_over - sessions still in DATA after the grace period get 421 too. */
static void on_grace_over(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	(void)fd;
	(void)what;
	srv->grace_over = true;
	log_msg(LOG_WARNING, "shutdown grace period over; closing %zu sessions; undelivered "
		"messages wait in the queue for the next start", srv->n_sessions);
	struct session *next;
	for (struct session *s = srv->sessions; s != NULL; s = next) {
		next = session_link(s)->next;
		session_force_shutdown(s);
	}
	check_exit(srv);
}

static void on_qmgr_idle(void *arg)
{
	check_exit(arg);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;
	(void)what;
	if (srv->stopping)
		return;
	srv->stopping = true;
	log_ev(LOG_INFO, "shutdown", {"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"},
	       {"action", "no new connections; finishing current messages"});
	notify_stopping("stopping: no new connections, finishing current messages");
	stop_listening(srv);
	qmgr_stop(srv->qmgr, on_qmgr_idle, srv);
	struct session *next;
	for (struct session *s = srv->sessions; s != NULL; s = next) {
		next = session_link(s)->next;
		session_shutdown(s);
	}
	struct timeval tv = {SHUTDOWN_GRACE_SECONDS, 0};
	srv->grace = evtimer_new(srv->base, on_grace_over, srv);
	evtimer_add(srv->grace, &tv);
	check_exit(srv);
}

/* A SIGHUP reload: the file is read and the self-test run on a worker
 * (file reads and the audit stay off the loop); the verdict on the loop. */
struct reload_job {
	struct server *srv;
	char *file;                 /* NULL: the embedded default */
	struct config *cfg;         /* NULL: refused, see errors */
	char *errors;               /* "file:line: message" lines */
	int selftest_rc;
	struct msgauth_signing *signing; /* a changed dkim_signing_table, loaded */
	char *restart[64];          /* changed parameters only a restart applies */
	size_t n_restart;
};

void server_set_selftest(struct server *srv, int (*selftest)(const struct config *cfg))
{
	srv->selftest = selftest;
}

/* load_for_reload - the file as new sessions and deliveries will see it:
 * what only a restart changes keeps the running value (j->restart names
 * it), tables too, even when only their file changed (the pinned load does
 * not read it); the tables of RELOADS parameters (alias_maps,
 * virtual_mailbox_maps, transport_maps, ...) are read again, and a broken
 * one refuses the reload with its file:line. */
static struct config *load_for_reload(struct reload_job *j)
{
	struct config *cfg = config_load(j->file, &j->errors);
	if (cfg == NULL)
		return NULL;
	const char *names[RG_ARRAY_LEN(j->restart)];
	size_t n = reload_restart_needed(j->srv->cfg, cfg, names, RG_ARRAY_LEN(names));
	for (size_t i = 0; i < n && i < RG_ARRAY_LEN(names); i++)
		j->restart[j->n_restart++] = xstrdup(names[i]);
	config_free(cfg);
	return config_load_pinned(j->file, j->srv->cfg, &j->errors);
}

static void reload_work(void *arg)
{
	struct reload_job *j = arg;
	j->cfg = load_for_reload(j);
	if (j->cfg != NULL && j->srv->selftest != NULL)
		j->selftest_rc = j->srv->selftest(j->cfg);
	char err[512];
	if (j->cfg != NULL && j->selftest_rc == 0 &&
	    !session_msgauth_prepare(j->cfg, &j->signing, err, sizeof(err))) {
		/* a broken signing table refuses the reload like a broken line */
		config_free(j->cfg);
		j->cfg = NULL;
		free(j->errors);
		j->errors = xstrdup(err);
	}
}

/* refuse_reload - every error as "reload refused: file:line: ..."; the old one stays. */
static void refuse_reload(struct reload_job *j)
{
	if (j->cfg == NULL) {
		for (char *save = NULL, *l = j->errors ? strtok_r(j->errors, "\n", &save) : NULL;
		     l != NULL; l = strtok_r(NULL, "\n", &save))
			log_msg(LOG_ERROR, "reload refused: %s", l);
	} else {
		log_msg(LOG_ERROR, "reload refused: %s: the relay self-test found a way for a "
			"stranger to relay (see the open-relay lines; relayguard audit -c %s)",
			j->file ? j->file : "(embedded default)", j->file ? j->file : "FILE");
	}
	log_ev(LOG_WARNING, "reload-refused", {"config", j->file ? j->file : "(embedded default)"},
	       {"action", "keeping the running configuration"});
	notify_ready("reload refused; running on the previous configuration");
}

/* keep_running - values sessions read that only a restart changes: the new
 * configuration carries the running ones, so a session never mixes them
 * (its EHLO name with the queue manager's, its lock-out text with the table's). */
static void keep_running(const struct server *srv, struct config *next)
{
	const struct config *run = srv->cfg;
	free(next->myhostname);
	next->myhostname = xstrdup(run->myhostname);
	next->smtpd_sasl_lockout_time = run->smtpd_sasl_lockout_time;
	next->smtpd_data_memory_limit = run->smtpd_data_memory_limit;
	/* no TLS at start: no submission listeners, and no certificate loaded */
	if (srv->tls == NULL && next->smtpd_tls_security_level != TLS_NONE) {
		next->smtpd_tls_security_level = run->smtpd_tls_security_level;
		next->submission_tls_security_level = run->submission_tls_security_level;
		log_ev(LOG_WARNING, "reload-needs-restart", {"param", "smtpd_tls_security_level"},
		       {"action", "TLS was off at start, so no certificate is loaded; restart"});
	}
}

/* apply_reload - new sessions get j->cfg; what it cannot change is logged. */
static void apply_reload(struct reload_job *j)
{
	struct server *srv = j->srv;
	for (size_t i = 0; i < j->n_restart; i++)
		log_ev(LOG_WARNING, "reload-needs-restart", {"param", j->restart[i]},
		       {"action", "changed in the file; the running value stays until a restart"});
	keep_running(srv, j->cfg);
	abuse_set_exceptions(srv->abuse, j->cfg); /* before the old one can be freed */
	session_msgauth_apply(j->signing);
	j->signing = NULL;
	confset_install(srv->configs, j->cfg);
	j->cfg = NULL;
	const char *file = j->file ? j->file : "(embedded default)";
	/* replaced configurations still held by sessions and deliveries: an
	 * operator (and a test) sees them go, not pile up with each reload */
	char held[24];
	snprintf(held, sizeof(held), "%zu", confset_retired(srv->configs));
	log_ev(LOG_INFO, "reloaded", {"config", file}, /* "reloaded config=PATH" */
	       {"replaced_in_use", held});
	notify_ready("configuration reloaded; accepting mail");
}

static void start_reload(struct server *srv);

static void reload_done(void *arg)
{
	struct reload_job *j = arg;
	struct server *srv = j->srv;
	srv->reloading = false;
	if (srv->stopping)
		; /* a shutdown started meanwhile: nothing to apply */
	else if (j->cfg == NULL || j->selftest_rc != 0)
		refuse_reload(j);
	else
		apply_reload(j);
	config_free(j->cfg);
	session_msgauth_discard(j->signing);
	free(j->errors);
	free(j->file);
	for (size_t i = 0; i < j->n_restart; i++)
		free(j->restart[i]);
	free(j);
	if (srv->reload_again && !srv->stopping) {
		srv->reload_again = false;
		start_reload(srv);
	}
	check_exit(srv);
}

static void start_reload(struct server *srv)
{
	struct reload_job *j = xcalloc(1, sizeof(*j));
	j->srv = srv;
	j->file = srv->cfg->file ? xstrdup(srv->cfg->file) : NULL;
	srv->reloading = true;
	log_ev(LOG_INFO, "reload", {"signal", "SIGHUP"}, {"config", j->file ? j->file : "(embedded default)"});
	notify_reloading();
	workers_submit(srv->workers, reload_work, reload_done, j);
}

/* on_hup - SIGHUP: re-read the configuration (systemctl reload). */
static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;
	(void)sig;
	(void)what;
	if (srv->stopping)
		return;
	if (srv->reloading) {
		srv->reload_again = true; /* the file may have changed after the read began */
		return;
	}
	start_reload(srv);
}

/* start_delivery - the resolver, the queue manager and its SMTP transport. */
/* tls_raised - a delivery raised a domain's TLS downgrade memory: every host
 * sharing our Redis (abuse's connection) learns it. */
static void tls_raised(void *arg, const char *domain, const char *level)
{
	struct server *srv = arg;
	uint64_t life = srv->cfg->smtp_tls_memory_lifetime;
	abuse_tls_raised(srv->abuse, domain, level, life > UINT_MAX ? UINT_MAX : (unsigned)life);
}

/* tls_heard - another host raised one: the SMTP transport's memory rises too. */
static void tls_heard(const char *text, void *arg)
{
	transport_smtp_tls_heard(arg, text);
}

static bool start_delivery(struct server *srv, char *err, size_t errlen)
{
	const char *servers = srv->cfg->dns_servers[0] ? srv->cfg->dns_servers : NULL;
	srv->dns = dns_new(srv->base, servers, 3000, err, errlen);
	if (srv->dns == NULL)
		return false;
	srv->qmgr = qmgr_new(srv->base, srv->cfg, srv->configs);
	struct smtp_transport_env env = {srv->base, srv->cfg, srv->dns, srv->local_ips,
					 srv->n_local_ips};
	struct transport *smtp = transport_smtp_new(&env, err, errlen);
	if (smtp == NULL)
		return false;
	qmgr_set_smtp(srv->qmgr, smtp);
	transport_smtp_set_tls_share(smtp, tls_raised, srv);
	abuse_share_tls(srv->abuse, tls_heard, smtp);
	return true;
}

/* release_kick - a message released by login: the queue manager looks now. */
static void release_kick(void *arg, const char *id)
{
	struct server *srv = arg;
	struct strbuf ignored;
	strbuf_init(&ignored);
	qmgr_flush(srv->qmgr, id, &ignored); /* deferred/ID due now; active/ by the scan */
	strbuf_free(&ignored);
}

/* start_metrics - the families, and GET /metrics when metrics_listen is set. */
static bool start_metrics(struct server *srv)
{
	char err[512];
	const struct listen_addr *la = &srv->cfg->metrics_listen;
	mev_init();
	mev_queue_source(qmgr_counts, srv->qmgr);
	if (!srv->cfg->metrics_enabled)
		return true;
	srv->metrics = metrics_http_new(srv->base, la->host, la->port, err, sizeof(err));
	if (srv->metrics == NULL) {
		log_ev(LOG_FATAL, "startup-failed", {"reason", err});
		return false;
	}
	log_ev(LOG_INFO, "metrics-listening", {"address", la->text});
	return true;
}

int server_run(struct server *srv)
{
	char err[512];
	srv->workers = workers_new(srv->base, COMMIT_THREADS);
	srv->spoolers = workers_new(srv->base, SPOOL_THREADS);
	srv->stagers = workers_new(srv->base, STAGE_THREADS);
	if (!start_delivery(srv, err, sizeof(err))) {
		log_ev(LOG_FATAL, "startup-failed", {"reason", err});
		return 1;
	}
	if (!abuse_persist(srv->abuse, srv->base, err, sizeof(err))) {
		log_ev(LOG_FATAL, "startup-failed", {"reason", err});
		return 1;
	}
	session_msgauth_start(srv->cfg, srv->dns);
	qmgr_start(srv->qmgr);
	abuse_set_release(srv->abuse, release_kick, srv);
	char cerr[512];
	srv->control = control_new(srv->base, srv->cfg->queue_directory, &qmgr_control_ops,
				   srv->qmgr, cerr, sizeof(cerr));
	if (srv->control == NULL) /* mail still flows; only `relayguard queue` cannot reach us */
		log_ev(LOG_WARNING, "control-unavailable", {"reason", cerr});
	else
		control_set_abuse(srv->control, &abuse_control_ops, srv->abuse);
	if (!start_metrics(srv))
		return 1;
	srv->sig_term = evsignal_new(srv->base, SIGTERM, on_signal, srv);
	srv->sig_int = evsignal_new(srv->base, SIGINT, on_signal, srv);
	srv->sig_hup = evsignal_new(srv->base, SIGHUP, on_hup, srv);
	evsignal_add(srv->sig_term, NULL);
	evsignal_add(srv->sig_int, NULL);
	evsignal_add(srv->sig_hup, NULL);
	check_queue_space(srv);
	struct timeval every = {QUEUE_SPACE_INTERVAL, 0};
	event_add(srv->space_timer, &every);
	char limit[24];
	snprintf(limit, sizeof(limit), "%zu", srv->connection_limit);
	log_ev(LOG_INFO, "connection-limit", {"smtpd_connection_limit", limit});
	add_pickup(srv);
	for (size_t i = 0; i < srv->n_listeners; i++) {
		evconnlistener_enable(srv->listeners[i]->ev);
		log_ev(LOG_INFO, "listening", {"address", srv->listeners[i]->text});
	}
	/* the queue's tmp/ is cleaned and its scan started (qmgr_start), the
	 * listeners accept: systemd may now start what waits for us */
	notify_ready("accepting mail; queue recovered");
	event_base_dispatch(srv->base);
	log_msg(LOG_INFO, "stopped");
	return 0;
}

void server_free(struct server *srv)
{
	if (srv == NULL)
		return;
	stop_listening(srv);
	control_free(srv->control);
	metrics_http_free(srv->metrics);
	mev_reset();
	workers_free(srv->spoolers); /* first: late spool callbacks may still commit */
	workers_free(srv->stagers);  /* then stages: they end in commits */
	workers_free(srv->workers); /* its last commits hand messages to the qmgr */
	abuse_share_tls(srv->abuse, NULL, NULL); /* the transport goes with the qmgr */
	qmgr_free(srv->qmgr);       /* what was not delivered stays queued */
	session_msgauth_stop();
	if (srv->sig_term)
		event_free(srv->sig_term);
	if (srv->sig_int)
		event_free(srv->sig_int);
	if (srv->sig_hup)
		event_free(srv->sig_hup);
	if (srv->grace)
		event_free(srv->grace);
	if (srv->accept_pause)
		event_free(srv->accept_pause);
	if (srv->space_timer)
		event_free(srv->space_timer);
	if (srv->collect)
		event_free(srv->collect);
	for (size_t i = 0; i < IP_BUCKETS; i++) {
		while (srv->ip_table[i]) {
			struct ip_count *e = srv->ip_table[i];
			srv->ip_table[i] = e->next;
			free(e);
		}
	}
	free(srv->local_ips);
	dns_free(srv->dns);
	auth_free(srv->auth);
	tls_server_free(srv->tls);
	abuse_free(srv->abuse);
	lockout_free(srv->lockout);
	confset_free(srv->configs);
	event_base_free(srv->base);
	free(srv);
}
