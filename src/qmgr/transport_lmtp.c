/*
 * transport_lmtp.c - delivery over LMTP (see transport_lmtp.h).
 *
 * One job per delivery request:
 *
 *   deliver ─▶ wait for a slot of the destination ─▶ [worker] read the text
 *           ─▶ an idle connection to the destination, or open one (LHLO)
 *           ─▶ send (client/dialogue, one reply per recipient after the
 *              data) ─▶ outcomes ─▶ the connection is parked for the next
 *              job (HOP_IDLE_SECONDS, at most lmtp_connection_cache_limit
 *              per destination) or closed ─▶ done.
 *
 * A parked connection the server closed meanwhile fails at RSET or MAIL
 * before the message went out; the job then opens a fresh one once.
 */
#include "qmgr/transport_lmtp.h"
#include "client/dialogue.h"
#include "qmgr/hop_pool.h"
#include "net/net.h"
#include "util/log.h"
#include "util/util.h"
#include "util/workers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define LOADER_THREADS 1

struct lmtp_transport;

struct lmtp_job {
	struct lmtp_transport *lt;
	struct delivery *d;
	struct hop_dest *dest;
	struct queue_msg *text;         /* read back from the queue file */
	char err[512];
	bool eightbit;
	bool reused;                    /* o came from the idle pool */
	struct smtp_out *o, *opening;
	struct smtp_out_msg msg;        /* the dialogue holds on to it while sending */
	struct smtp_out_rcpt *rcpts;
	char (*addrs)[ADDR_PATH_MAX + 3];
	struct lmtp_job *prev, *next;
};

struct lmtp_transport {
	struct transport t;             /* first: the interface */
	struct event_base *base;
	const struct config *cfg;
	struct workers *loader;
	struct hop_pool *pool;          /* destinations, idle and closing connections */
	struct lmtp_job *jobs;          /* every job, for stop and free */
};

static void job_finish(struct lmtp_job *j);
static void open_conn(struct lmtp_job *j);

/* ---- the RCPT address ---- */

/* dot_atom - RFC 5321 Dot-string: atext runs separated by single dots. */
static bool dot_atom(const char *s)
{
	static const char specials[] = "!#$%&'*+-/=?^_`{|}~";
	bool prev_dot = true;
	for (const char *p = s; *p; p++) {
		bool alnum = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || (unsigned char)*p >= 0x80;
		if (*p == '.') {
			if (prev_dot)
				return false;
			prev_dot = true;
			continue;
		}
		if (!alnum && strchr(specials, *p) == NULL)
			return false;
		prev_dot = false;
	}
	return !prev_dot;
}

bool lmtp_rcpt_address(const char *local, const char *domain, char *out, size_t outlen)
{
	struct strbuf b;
	strbuf_init(&b);
	bool ok = local[0] != '\0' && domain[0] != '\0';
	if (dot_atom(local)) {
		strbuf_puts(&b, local);
	} else {
		strbuf_puts(&b, "\"");
		for (const unsigned char *p = (const unsigned char *)local; *p; p++) {
			ok &= *p >= 0x20 && *p != 0x7f;
			if (*p == '"' || *p == '\\')
				strbuf_puts(&b, "\\");
			strbuf_append(&b, (const char *)p, 1);
		}
		strbuf_puts(&b, "\"");
	}
	strbuf_printf(&b, "@%s", domain);
	ok &= b.len < outlen;
	if (ok)
		memcpy(out, b.data, b.len + 1);
	strbuf_free(&b);
	return ok;
}

/* take_idle - a parked connection of j's destination, if one is usable. */
static bool take_idle(struct lmtp_job *j)
{
	struct hop_idle ic;
	if (!hop_take_idle(j->dest, NULL, NULL, &ic))
		return false;
	j->o = ic.o;
	j->reused = true;
	return true;
}

/* ---- outcomes ---- */

static enum rcpt_outcome outcome_of(int code)
{
	return code >= 200 && code < 300 ? RCPT_SENT
	       : code >= 500		? RCPT_BOUNCED
					: RCPT_DEFERRED;
}

static const char *default_dsn(int code)
{
	return code >= 200 && code < 300 ? "2.0.0" : code >= 500 ? "5.0.0" : "4.0.0";
}

/* rcpt_results - each recipient's own reply (RCPT, or its end-of-data reply),
 * or the failure that ended the transaction. */
static void rcpt_results(struct lmtp_job *j, const struct smtp_result *r)
{
	for (size_t i = 0; i < j->d->n_rcpt && i < r->n_rcpts; i++) {
		const struct smtp_rcpt_result *rr = &r->rcpts[i];
		int code = rr->code ? rr->code : 451;
		char text[700];
		if (r->kind == SR_DONE || r->stage[0] == '\0' || code / 100 == 2)
			snprintf(text, sizeof(text), "%s", rr->text ? rr->text : "");
		else
			snprintf(text, sizeof(text), "%s (%s %s)", rr->text ? rr->text : "",
				 r->local ? "at" : "in reply to", r->stage);
		delivery_outcome(j->d, i, outcome_of(code),
				 rr->enhanced[0] ? rr->enhanced : default_dsn(code), text,
				 j->dest->key);
		struct queue_rcpt *q = &j->d->msg->rcpts[j->d->rcpt[i]];
		q->tls[0] = '\0';
		q->relayed_no_dsn = false; /* LMTP is final delivery, not relaying */
		q->final_delivery = true;
	}
}

/* ---- the job ---- */

static void load_work(void *arg)
{
	struct lmtp_job *j = arg;
	char err[512];
	j->text = xcalloc(1, sizeof(*j->text));
	if (!queue_load(j->lt->cfg->queue_directory, j->d->msg->path, j->text, err,
			sizeof(err))) {
		rg_strlcpy(j->err, err, sizeof(j->err));
		queue_msg_free(j->text);
		j->text = NULL;
		return;
	}
	for (size_t i = 0; i < j->text->body.len && !j->eightbit; i++)
		j->eightbit = (unsigned char)j->text->body.data[i] >= 0x80;
}

static void start_send(struct lmtp_job *j);

static void load_done(void *arg)
{
	struct lmtp_job *j = arg;
	if (j->text == NULL) {
		delivery_outcome_all(j->d, RCPT_DEFERRED, "4.3.0", j->err, NULL);
		job_finish(j);
	} else if (j->lt->pool->stopping) {
		job_finish(j); /* untried: delivered after the next start */
	} else if (take_idle(j)) {
		start_send(j);
	} else {
		open_conn(j);
	}
}

static struct lmtp_job *job_new(struct lmtp_transport *lt, struct delivery *d,
				struct hop_dest *dest)
{
	struct lmtp_job *j = xcalloc(1, sizeof(*j));
	j->lt = lt;
	j->d = d;
	j->dest = dest;
	j->next = lt->jobs;
	if (lt->jobs)
		lt->jobs->prev = j;
	lt->jobs = j;
	return j;
}

static void job_free(struct lmtp_job *j)
{
	struct lmtp_transport *lt = j->lt;
	if (j->prev)
		j->prev->next = j->next;
	else
		lt->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	queue_msg_free(j->text);
	free(j->rcpts);
	free(j->addrs);
	free(j);
}

/* dest_kick - start waiting requests while the destination has free slots. */
static void dest_kick(struct lmtp_transport *lt, struct hop_dest *dest)
{
	struct delivery *d;
	while ((d = hop_next(dest, lt->cfg->lmtp_destination_concurrency_limit)) != NULL) {
		struct lmtp_job *j = job_new(lt, d, dest);
		if (lt->loader == NULL) /* made on first use: most servers never speak LMTP */
			lt->loader = workers_new(lt->base, LOADER_THREADS);
		workers_submit(lt->loader, load_work, load_done, j);
	}
}

static void job_finish(struct lmtp_job *j)
{
	struct lmtp_transport *lt = j->lt;
	struct hop_dest *dest = j->dest;
	struct delivery *d = j->d;
	hop_release(dest, j->o, NULL, NULL);
	j->o = NULL;
	job_free(j);
	d->done(d);
	dest_kick(lt, dest);
}

/* ---- connecting and sending ---- */

static unsigned ms(uint64_t seconds)
{
	return (unsigned)(seconds * 1000);
}

/* dest_addr - the route's socket address; false when it cannot be made. */
static bool dest_addr(const struct route *rt, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (rt->unix_socket) {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;
		size_t n = strlen(rt->host);
		if (n >= sizeof(sun->sun_path))
			return false;
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, rt->host, n + 1);
		*len = (socklen_t)sizeof(*sun);
		return true;
	}
	struct rg_ip ip;
	if (!ip_parse(rt->host, &ip))
		return false;
	*len = ip_to_sockaddr(&ip, rt->port, ss);
	return true;
}

/* open_failed - no session: every recipient waits in the queue. */
static void open_failed(struct lmtp_job *j, const struct smtp_result *r)
{
	char text[700];
	if (r->local)
		snprintf(text, sizeof(text), "%s", r->text);
	else
		snprintf(text, sizeof(text), "host %s said: %s (in reply to %s)", j->dest->key,
			 r->text, r->stage);
	char dsn[16];
	rg_strlcpy(dsn, r->enhanced[0] ? r->enhanced : "4.4.1", sizeof(dsn));
	dsn[0] = '4'; /* a refused session is retried */
	delivery_outcome_all(j->d, RCPT_DEFERRED, dsn, text, j->dest->key);
	job_finish(j);
}

static void on_open(struct smtp_out *o, const struct smtp_result *r, void *arg)
{
	struct lmtp_job *j = arg;
	j->opening = NULL;
	if (r->kind == SR_DONE) {
		j->o = o;
		log_ev(LOG_DEBUG, "lmtp-connected", {"queue", j->d->msg->id},
		       {"relay", j->dest->key});
		start_send(j);
		return;
	}
	hop_close(j->lt->pool, o);
	open_failed(j, r);
}

static void open_conn(struct lmtp_job *j)
{
	const struct config *cfg = j->lt->cfg;
	struct sockaddr_storage ss;
	socklen_t len;
	if (!dest_addr(&j->d->route, &ss, &len)) {
		delivery_outcome_all(j->d, RCPT_DEFERRED, "4.3.5", "bad LMTP destination",
				     j->dest->key);
		job_finish(j);
		return;
	}
	struct smtp_hop_opts h = {
		.addr = (struct sockaddr *)&ss, .addrlen = len, .lmtp = true,
		.helo_name = cfg->myhostname,
		.server_name = j->d->route.unix_socket ? j->dest->key : "lmtp",
		.tls = STLS_NONE,
		.connect_ms = ms(cfg->smtp_connect_timeout), .helo_ms = ms(cfg->smtp_helo_timeout),
		.mail_ms = ms(cfg->smtp_mail_timeout), .rcpt_ms = ms(cfg->smtp_rcpt_timeout),
		.data_init_ms = ms(cfg->smtp_data_init_timeout),
		.data_xfer_ms = ms(cfg->smtp_data_xfer_timeout),
		.data_done_ms = ms(cfg->smtp_data_done_timeout),
		.quit_ms = ms(cfg->smtp_quit_timeout),
	};
	j->opening = smtp_out_open(j->lt->base, &h, on_open, j);
}

/* stale - a reused connection failed before the message went out: the
 * server had closed it meanwhile. Not the message's fault. */
static bool stale(const struct lmtp_job *j, const struct smtp_result *r)
{
	return j->reused && r->kind != SR_DONE && r->try_next_address &&
	       (r->kind == SR_CONN_FAIL || strcmp(r->stage, "RSET") == 0 ||
		strcmp(r->stage, "MAIL") == 0);
}

static void on_sent(struct smtp_out *o, const struct smtp_result *r, void *arg)
{
	(void)o;
	struct lmtp_job *j = arg;
	if (stale(j, r)) {
		hop_close(j->lt->pool, j->o);
		j->o = NULL;
		j->reused = false;
		open_conn(j);
		return;
	}
	rcpt_results(j, r);
	job_finish(j);
}

static void start_send(struct lmtp_job *j)
{
	size_t n = j->d->n_rcpt;
	free(j->rcpts);
	free(j->addrs);
	j->rcpts = xcalloc(n ? n : 1, sizeof(*j->rcpts));
	j->addrs = xcalloc(n ? n : 1, sizeof(*j->addrs));
	for (size_t i = 0; i < n; i++) {
		const struct queue_rcpt *r = &j->d->msg->rcpts[j->d->rcpt[i]];
		if (!lmtp_rcpt_address(r->local, r->domain, j->addrs[i], sizeof(j->addrs[i])))
			rg_strlcpy(j->addrs[i], r->orig, sizeof(j->addrs[i]));
		j->rcpts[i] = (struct smtp_out_rcpt){j->addrs[i], r->notify, r->orcpt};
	}
	const struct queue_msg *m = j->d->msg;
	j->msg = (struct smtp_out_msg){
		.sender = m->sender, .rcpts = j->rcpts, .n_rcpts = n,
		.data = j->text->body.data ? j->text->body.data : "", .len = j->text->body.len,
		.eightbit = j->eightbit, .ret = m->dsn_ret, .envid = m->dsn_envid,
	};
	smtp_out_send(j->o, &j->msg, on_sent, j);
}

/* ---- the transport interface ---- */

static void lmtp_deliver(struct transport *t, struct delivery *d)
{
	struct lmtp_transport *lt = (struct lmtp_transport *)t;
	if (lt->pool->stopping) {
		d->done(d); /* untried: tried again after the next start */
		return;
	}
	struct hop_dest *dest = hop_dest_get(lt->pool, d->route.key);
	hop_wait(dest, d);
	dest_kick(lt, dest);
}

static bool lmtp_idle(const struct transport *t)
{
	return ((const struct lmtp_transport *)t)->jobs == NULL;
}

/* lmtp_stop - waiting requests go back untried; idle connections are closed. */
static void lmtp_stop(struct transport *t)
{
	hop_pool_stop(((struct lmtp_transport *)t)->pool);
}

static void lmtp_free(struct transport *t)
{
	struct lmtp_transport *lt = (struct lmtp_transport *)t;
	lt->pool->stopping = true;
	if (lt->loader != NULL)
		workers_free(lt->loader);
	while (lt->jobs != NULL) {
		struct lmtp_job *j = lt->jobs;
		smtp_out_abort(j->o);
		smtp_out_abort(j->opening);
		job_free(j); /* the message stays queued */
	}
	hop_pool_free(lt->pool);
	free(lt);
}

struct transport *transport_lmtp_new(struct event_base *base, const struct config *cfg)
{
	struct lmtp_transport *lt = xcalloc(1, sizeof(*lt));
	lt->t = (struct transport){"lmtp", lmtp_deliver, lmtp_idle, lmtp_stop, NULL, lmtp_free};
	lt->base = base;
	lt->cfg = cfg;
	lt->pool = hop_pool_new(base, sizeof(struct hop_dest), cfg->lmtp_connection_cache_limit);
	return &lt->t;
}
