/*
 * qmgr.c - the queue manager (see qmgr.h).
 *
 * A message's life in memory is one delivery pass:
 *
 *   submit ─▶ start_pass: route every pending recipient; one delivery request
 *             per (transport, destination), at most
 *             default_destination_recipient_limit recipients each
 *          ─▶ transports fill in outcomes ─▶ settle: count attempts, backoff,
 *             expiry; log one line per recipient
 *          ─▶ [worker] settle_work: bounce (queued as a new message), state
 *             records, then unlink (all done) or move to deferred/
 *          ─▶ settle_done: the message leaves memory.
 *
 * Deferred messages are not kept in memory: their file's mtime is their next
 * try, and a scan every queue_run_delay (on a worker: readdir, stat, and
 * only the envelopes of due files) brings them back. The scan covers active/
 * too: after a restart, or when the active set was full, messages wait there.
 * A message is in memory at most once: submissions of an id already active
 * are dropped, and a scan running while messages settle does not bring back
 * a message it read before that message settled.
 */
#include "qmgr/qmgr.h"
#include "address/expand.h"
#include "metrics/events.h"
#include "qmgr/bounce_queue.h"
#include "queue/bounce.h"
#include "qmgr/route.h"
#include "qmgr/transport.h"
#include "qmgr/transport_lmtp.h"
#include "qmgr/transport_local.h"
#include "qmgr/transport_smtp.h"
#include "queue/qctl.h"
#include "smtp/reload.h"
#include "util/basedir.h"
#include "util/log.h"
#include "util/workers.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>

#define IO_THREADS 2
#define ID_BUCKETS 4096

struct qentry {
	struct qmgr *q;
	struct queue_msg *m;
	struct confgen *gen;        /* what this pass routes with; held until it is freed */
	struct delivery **parts;
	size_t n_parts;
	size_t parts_out;
	time_t pass_start;
	struct queue_msg *bounce;   /* settle_work: a bounce to submit */
	struct queue_msg *success;  /* settle_work: a NOTIFY=SUCCESS report to submit */
	struct queue_msg *warning;  /* settle_work: a delay warning to submit */
	char *err;                  /* settle_work failed: why (NULL: it did not) */
	struct qentry *hnext;       /* id hash chain */
};

struct scan_job {
	struct qmgr *q;
	time_t now;
	size_t budget;
	char (*in_memory)[QUEUE_ID_LEN + 1]; /* sorted: ids the scan skips */
	size_t n_in_memory;
	struct queue_msg **found;
	size_t n_found;
	size_t n_deferred, n_hold;     /* files listed (for the metrics) */
};

/* A queued message whose 250 waits for delivery to catch up (in-flow). */
struct flow_waiter {
	struct qmgr *q;
	void (*ready)(void *arg);
	void *arg;
	struct event *timer;           /* in_flow_delay: then it goes on anyway */
	struct flow_waiter *prev, *next;
};

/* In-flow control: the current episode of delivery falling behind. */
struct flow {
	struct flow_waiter *head, *tail;
	size_t waiting;                /* 250s held now */
	uint64_t delayed, timed_out;   /* in this episode */
	time_t since;                  /* the episode began (0: delivery keeps up) */
};

struct qmgr {
	struct event_base *base;
	const struct config *cfg;     /* the start-up one: only what a restart changes */
	struct confset *configs;      /* each pass takes the current generation */
	struct workers *io;
	struct transport *local, *smtp, *lmtp;
	struct qentry *by_id[ID_BUCKETS];
	size_t n_active;
	size_t n_active_reports;      /* of those, from <> (bounces, DSNs) */
	struct event *scan_timer;
	bool scanning, rescan, stopping, flush_all;
	bool more_due;                /* the active set was full: more may wait on disk */
	bool freeing;                 /* qmgr_free: workers hand back their last jobs */
	void (*on_idle)(void *arg);   /* after qmgr_stop */
	void *idle_arg;
	struct qctl files;            /* the operator's commands on the files */
	char **settled_during_scan;   /* ids that left memory while a scan ran */
	size_t n_settled;
	size_t n_waiting_on_disk;     /* submitted while the active set was full */
	size_t files_deferred, files_hold; /* at the last scan (for the metrics) */
	struct flow flow;
};

static unsigned id_bucket(const char *id)
{
	unsigned h = 2166136261u;
	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h % ID_BUCKETS;
}

static struct qentry *find_entry(const struct qmgr *q, const char *id)
{
	for (struct qentry *e = q->by_id[id_bucket(id)]; e != NULL; e = e->hnext)
		if (strcmp(e->m->id, id) == 0)
			return e;
	return NULL;
}

static void add_entry(struct qmgr *q, struct qentry *e)
{
	unsigned b = id_bucket(e->m->id);
	e->hnext = q->by_id[b];
	q->by_id[b] = e;
	q->n_active++;
	q->n_active_reports += e->m->sender[0] == '\0';
}

static void remove_entry(struct qmgr *q, struct qentry *e)
{
	struct qentry **pp = &q->by_id[id_bucket(e->m->id)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	q->n_active--;
	q->n_active_reports -= e->m->sender[0] == '\0';
	if (q->scanning) {
		q->settled_during_scan = xrealloc(q->settled_during_scan,
						  (q->n_settled + 1) * sizeof(char *));
		q->settled_during_scan[q->n_settled++] = xstrdup(e->m->id);
	}
}

unsigned long qmgr_backoff(const struct config *cfg, unsigned attempts)
{
	unsigned long wait = cfg->minimal_backoff_time;
	for (unsigned i = 1; i < attempts && wait < cfg->maximal_backoff_time; i++)
		wait *= 2;
	return wait < cfg->maximal_backoff_time ? wait : cfg->maximal_backoff_time;
}

/* ---- outcomes (called by transports, on the loop or on their worker) ---- */

void delivery_outcome(struct delivery *d, size_t i, enum rcpt_outcome o, const char *dsn,
		      const char *reply, const char *remote_mta)
{
	struct queue_rcpt *r = &d->msg->rcpts[d->rcpt[i]];
	r->outcome = o;
	r->final_delivery = false; /* the transport says so after this call */
	rg_strlcpy(r->dsn, dsn ? dsn : "", sizeof(r->dsn));
	if (o != RCPT_SENT || reply != NULL)
		queue_rcpt_set_reply(r, reply);
	free(r->remote_mta);
	r->remote_mta = remote_mta ? xstrdup(remote_mta) : NULL;
}

void delivery_outcome_all(struct delivery *d, enum rcpt_outcome o, const char *dsn,
			  const char *reply, const char *remote_mta)
{
	for (size_t i = 0; i < d->n_rcpt; i++)
		delivery_outcome(d, i, o, dsn, reply, remote_mta);
}

/* ---- one pass ---- */

static void settle(struct qentry *e);
static void start_scan(struct qmgr *q);

static void part_done(struct delivery *d)
{
	struct qentry *e = d->owner;
	if (--e->parts_out == 0)
		settle(e);
}

/* part_for - the request for (kind, key) with room for one more recipient. */
static struct delivery *part_for(struct qentry *e, const struct route *rt)
{
	size_t limit = rt->kind == ROUTE_SMTP || rt->kind == ROUTE_LMTP
			       ? e->q->cfg->default_destination_recipient_limit
			       : SIZE_MAX;
	for (size_t k = 0; k < e->n_parts; k++) {
		struct delivery *d = e->parts[k];
		if (d->route.kind == rt->kind && strcmp(d->route.key, rt->key) == 0 &&
		    d->n_rcpt < limit)
			return d;
	}
	struct delivery *d = xcalloc(1, sizeof(*d));
	d->msg = e->m;
	d->rcpt = xcalloc(e->m->n_rcpts, sizeof(size_t));
	d->route = *rt;
	d->cfg = confgen_config(e->gen);
	d->done = part_done;
	d->owner = e;
	e->parts = xrealloc(e->parts, (e->n_parts + 1) * sizeof(*e->parts));
	e->parts[e->n_parts++] = d;
	return d;
}

/* domain_class - what a recipient's domain is to the route decision, by
 * the configuration of this attempt (the class stored at acceptance may
 * predate a reload): somebody else's, a hosted domain of
 * virtual_mailbox_domains (virtual_transport) or another of ours
 * (mydestination, our address literals: mailbox_transport). */
static enum route_domain_class domain_class(const struct config *cfg,
					    const struct queue_rcpt *r)
{
	switch (expand_domain_kind(cfg, r->domain)) {
	case HOSTED_VMAILBOX:
		return ROUTE_DOMAIN_VIRTUAL;
	case HOSTED_LOCAL:
	case HOSTED_VALIAS:
		return ROUTE_DOMAIN_MYDESTINATION;
	case HOSTED_NONE:
		break;
	}
	/* [our address] without a mydestination to stand for it: our addresses
	 * are the listeners', which no reload changes */
	return r->cls == ADDR_CLASS_LOCAL && r->domain[0] == '[' ? ROUTE_DOMAIN_MYDESTINATION
								 : ROUTE_DOMAIN_REMOTE;
}

/* transport_name - the route kind as the metrics' transport label. */
static const char *transport_name(enum route_kind kind)
{
	switch (kind) {
	case ROUTE_LOCAL:
		return "local";
	case ROUTE_LMTP:
		return "lmtp";
	case ROUTE_ERROR:
		return "error";
	case ROUTE_DISCARD:
		return "discard";
	case ROUTE_SMTP:
		break;
	}
	return "smtp";
}

/* route_rcpt - decide recipient i's route; false when it is settled already. */
static bool route_rcpt(struct qentry *e, size_t i, struct route *rt)
{
	struct queue_rcpt *r = &e->m->rcpts[i];
	char err[512], reply[700];
	const struct config *cfg = confgen_config(e->gen);
	r->transport = "error"; /* a routing error, unless a route is found */
	if (!route_for_domain(cfg, r->domain, domain_class(cfg, r), rt, err, sizeof(err))) {
		snprintf(reply, sizeof(reply), "mail routing error: %s", err);
		r->outcome = RCPT_DEFERRED;
		rg_strlcpy(r->dsn, "4.3.5", sizeof(r->dsn));
		queue_rcpt_set_reply(r, reply);
		return false;
	}
	r->transport = transport_name(rt->kind);
	if (rt->kind == ROUTE_ERROR || rt->kind == ROUTE_DISCARD) {
		r->outcome = rt->kind == ROUTE_DISCARD ? RCPT_SENT
			     : rt->status[0] == '4' ? RCPT_DEFERRED : RCPT_BOUNCED;
		rg_strlcpy(r->dsn, rt->kind == ROUTE_ERROR ? rt->status : "2.0.0", sizeof(r->dsn));
		queue_rcpt_set_reply(r, rt->kind == ROUTE_ERROR ? rt->text : "discarded");
		return false;
	}
	if (rt->kind == ROUTE_LOCAL)
		rg_strlcpy(rt->key, "local", sizeof(rt->key));
	return true;
}

static struct transport *transport_for(struct qmgr *q, const struct route *rt)
{
	return rt->kind == ROUTE_LOCAL ? q->local : rt->kind == ROUTE_LMTP ? q->lmtp : q->smtp;
}

static void start_pass(struct qentry *e)
{
	e->pass_start = time(NULL);
	for (size_t i = 0; i < e->m->n_rcpts; i++) {
		struct queue_rcpt *r = &e->m->rcpts[i];
		struct route rt;
		if (r->done)
			continue;
		r->outcome = RCPT_UNTRIED;
		if (!route_rcpt(e, i, &rt))
			continue;
		if (transport_for(e->q, &rt) == NULL) {
			r->outcome = RCPT_DEFERRED;
			rg_strlcpy(r->dsn, "4.3.2", sizeof(r->dsn));
			queue_rcpt_set_reply(r, "outbound delivery is not enabled");
			continue;
		}
		struct delivery *d = part_for(e, &rt);
		d->rcpt[d->n_rcpt++] = i;
	}
	e->parts_out = e->n_parts;
	if (e->n_parts == 0) {
		settle(e);
		return;
	}
	for (size_t k = 0; k < e->n_parts; k++) {
		struct delivery *d = e->parts[k];
		transport_for(e->q, &d->route)->deliver(transport_for(e->q, &d->route), d);
	}
}

void qmgr_submit(struct qmgr *q, struct queue_msg *m)
{
	if (find_entry(q, m->id) != NULL || q->freeing) {
		queue_msg_free(m); /* already in memory: a scan found it first */
		return;
	}
	if (q->n_active >= q->cfg->qmgr_message_active_limit) {
		q->more_due = true; /* it waits in active/ for the scan after some settle */
		q->n_waiting_on_disk++;
		queue_msg_free(m);
		return;
	}
	struct qentry *e = xcalloc(1, sizeof(*e));
	e->q = q;
	e->m = m;
	e->gen = confset_ref(q->configs); /* this attempt's configuration */
	add_entry(q, e);
	start_pass(e);
}

/* ---- settling ---- */

/* log_attempt - Postfix's line: queue id, recipient, relay, delays, dsn,
 * status. The event is the status in words ("delivered", "deferred", ...). */
static void log_attempt(const struct qentry *e, const struct queue_rcpt *r, const char *event,
			const char *status)
{
	char to[ADDR_PATH_MAX + 3], delay[24], delays[48];
	time_t now = time(NULL);
	bool local = r->outcome == RCPT_SENT && r->remote_mta == NULL;
	snprintf(to, sizeof(to), "<%s>", r->orig);
	snprintf(delay, sizeof(delay), "%lld", (long long)(now - e->m->arrival));
	snprintf(delays, sizeof(delays), "%lld/%lld", (long long)(e->pass_start - e->m->arrival),
		 (long long)(now - e->pass_start));
	mev_delivery(strcmp(event, "expired") == 0 ? "bounced" : event,
		     r->transport ? r->transport : r->remote_mta ? "smtp" : "local",
		     (double)(now - e->m->arrival));
	log_ev(r->outcome == RCPT_SENT ? LOG_INFO : LOG_WARNING, event,
	       {"queue", e->m->id}, {"to", to},
	       {"relay", r->remote_mta ? r->remote_mta : local ? "local" : "none"},
	       {"delay", delay}, {"delays", delays}, {"dsn", r->dsn[0] ? r->dsn : NULL},
	       {"status", status}, {"tls", r->tls[0] ? r->tls : NULL},
	       {local ? "mailbox" : "reply", r->last_reply});
}

/* Delivery at acceptance runs on the commit threads every client's 250
 * waits for: only small jobs go there (one client's message to a thousand
 * mailboxes would hold them all); the rest is queued and delivered in
 * batches by the local transport. */
#define DIRECT_MAX_RCPTS 8
#define DIRECT_MAX_BYTES (1u << 20) /* recipients x text */

bool qmgr_direct_ok(const struct config *cfg, const struct queue_msg *m)
{
	if (!cfg->direct_local_delivery || m->hold || m->n_rcpts == 0 ||
	    m->n_rcpts > DIRECT_MAX_RCPTS ||
	    m->body.len > DIRECT_MAX_BYTES / m->n_rcpts)
		return false;
	for (size_t i = 0; i < m->n_rcpts; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];
		struct route rt;
		char err[512];
		if (dsn_wanted(r->notify, DSN_DELIVERED) ||
		    !route_for_domain(cfg, r->domain, domain_class(cfg, r), &rt, err, sizeof(err)) ||
		    rt.kind != ROUTE_LOCAL)
			return false;
	}
	return true;
}

void qmgr_delivered_direct(struct qmgr *q, struct queue_msg *m)
{
	struct qentry e = {.q = q, .m = m, .pass_start = m->arrival};
	for (size_t i = 0; i < m->n_rcpts; i++) {
		struct queue_rcpt *r = &m->rcpts[i];
		r->outcome = RCPT_SENT;
		r->transport = "local";
		rg_strlcpy(r->dsn, "2.0.0", sizeof(r->dsn));
		log_attempt(&e, r, "delivered", "sent");
	}
	queue_msg_free(m);
}

static bool expired(const struct qmgr *q, const struct queue_msg *m, time_t now)
{
	uint64_t life = m->sender[0] == '\0' ? q->cfg->bounce_queue_lifetime
					     : q->cfg->maximal_queue_lifetime;
	/* now > arrival: a clock stepped back expires nothing */
	return now > m->arrival && (uint64_t)(now - m->arrival) >= life;
}

/* settle_rcpt - attempts, next try, expiry; the log line. */
static void settle_rcpt(struct qentry *e, struct queue_rcpt *r, time_t now)
{
	switch (r->outcome) {
	case RCPT_SENT:
		r->done = true;
		log_attempt(e, r, "delivered", "sent");
		break;
	case RCPT_DEFERRED:
		r->attempts++;
		r->last_try = now;
		r->next_try = now + (time_t)qmgr_backoff(e->q->cfg, r->attempts);
		if (!expired(e->q, e->m, now)) {
			log_attempt(e, r, "deferred", "deferred");
			break;
		}
		r->outcome = RCPT_BOUNCED; /* returned to the sender with the last reply */
		log_attempt(e, r, "expired", "expired");
		break;
	case RCPT_BOUNCED:
		log_attempt(e, r, "bounced", "bounced");
		break;
	case RCPT_UNTRIED:
		break; /* a transport that stopped: tried again at the next start */
	}
}

/* delay_warning_due - delay_warning_time is set, has passed, and no warning
 * went out yet (Postfix sends one per message). */
static bool delay_warning_due(const struct config *cfg, const struct queue_msg *m, time_t now)
{
	return cfg->delay_warning_time > 0 && m->warned == 0 && now > m->arrival &&
	       (uint64_t)(now - m->arrival) >= cfg->delay_warning_time;
}

static void settle_work(void *arg)
{
	struct qentry *e = arg;
	const char *dir = e->q->cfg->queue_directory;
	struct queue_msg *m = e->m;
	if (m->set_aside)
		return; /* in corrupt/ now: nothing more to do with it */
	time_t now = time(NULL);
	/* the pass's generation (held by e): the reports' recipients are
	 * resolved and expanded as this attempt's were */
	const struct config *cfg = confgen_config(e->gen);
	const struct addr_domains *dom = confgen_domains(e->gen);
	bool bounced = bounce_queue_make(cfg, dom, m, now, BOUNCE_FAILURES, &e->bounce);
	/* a success report that cannot be queued is not worth a second delivery */
	bounce_queue_make(cfg, dom, m, now, BOUNCE_SUCCESSES, &e->success);
	if (delay_warning_due(e->q->cfg, m, now) &&
	    bounce_queue_make(cfg, dom, m, now, BOUNCE_DELAYS, &e->warning) &&
	    e->warning != NULL)
		m->warned = now; /* once per message, recorded with the state below */
	for (size_t i = 0; i < m->n_rcpts; i++) {
		struct queue_rcpt *r = &m->rcpts[i];
		if (r->outcome != RCPT_BOUNCED)
			continue;
		r->done = bounced; /* else the bounce is tried again with the next pass */
		if (!bounced)
			r->next_try = time(NULL) + (time_t)e->q->cfg->minimal_backoff_time;
	}
	bool left = false;
	for (size_t i = 0; i < m->n_rcpts; i++)
		left |= !m->rcpts[i].done;
	/* all done: the file goes, nothing to record (no sync: a crash means a
	 * duplicate at worst) */
	char err[512] = "";
	bool ok = (!left || queue_record_state(dir, m, err, sizeof(err))) &&
		  queue_finish(dir, m, err, sizeof(err)) &&
		  (!left || queue_set_next_try(dir, m)); /* last: every write resets the mtime */
	if (!ok) /* the active set holds up to 20,000 entries: no buffer for this in each */
		e->err = xstrdup(err[0] ? err : "cannot set the next try");
}

static void free_entry(struct qentry *e)
{
	for (size_t k = 0; k < e->n_parts; k++) {
		free(e->parts[k]->rcpt);
		free(e->parts[k]);
	}
	free(e->parts);
	free(e->err);
	queue_msg_free(e->m);
	confgen_unref(e->gen); /* on the loop, after its settle work */
	free(e);
}

static void notify_idle(struct qmgr *q)
{
	if (q->on_idle != NULL && qmgr_idle(q))
		q->on_idle(q->idle_arg);
}

/* ---- in-flow control ---- */

/* Messages waiting for delivery now: in memory, or left on disk because
 * the active set was full. Retries not yet due are not counted, nor are
 * our own reports (from <>): a client could have those sent to a slow
 * server of its own and make every other client wait. */
static size_t backlog(const struct qmgr *q)
{
	return q->n_active - q->n_active_reports + q->n_waiting_on_disk;
}

/* behind - has delivery fallen so far behind acceptance that a new 250 waits? */
static bool behind(const struct qmgr *q)
{
	return q->cfg->in_flow_delay > 0 && !q->stopping &&
	       backlog(q) > q->cfg->in_flow_backlog_limit;
}

static void flow_log_start(struct qmgr *q)
{
	char n[24], limit[24];
	snprintf(n, sizeof(n), "%zu", backlog(q));
	snprintf(limit, sizeof(limit), "%llu", (unsigned long long)q->cfg->in_flow_backlog_limit);
	log_ev(LOG_WARNING, "in-flow-delay", {"backlog", n}, {"limit", limit},
	       {"action", "each newly queued message waits up to in_flow_delay for its 250"});
}

/* flow_end - delivery caught up: one line for the whole episode. */
static void flow_end(struct qmgr *q)
{
	char n[24], delayed[24], timed_out[24], secs[24];
	snprintf(n, sizeof(n), "%zu", backlog(q));
	snprintf(delayed, sizeof(delayed), "%llu", (unsigned long long)q->flow.delayed);
	snprintf(timed_out, sizeof(timed_out), "%llu", (unsigned long long)q->flow.timed_out);
	snprintf(secs, sizeof(secs), "%lld", (long long)(time(NULL) - q->flow.since));
	log_ev(LOG_INFO, "in-flow-resumed", {"backlog", n}, {"delayed", delayed},
	       {"waited_full_delay", timed_out}, {"seconds", secs});
	q->flow.since = 0;
	q->flow.delayed = q->flow.timed_out = 0;
}

static void flow_unlink(struct flow *f, struct flow_waiter *w)
{
	*(w->prev ? &w->prev->next : &f->head) = w->next;
	*(w->next ? &w->next->prev : &f->tail) = w->prev;
	f->waiting--;
}

/* flow_release - w's 250 goes out now. */
static void flow_release(struct flow_waiter *w)
{
	flow_unlink(&w->q->flow, w);
	event_free(w->timer);
	void (*ready)(void *arg) = w->ready;
	void *arg = w->arg;
	free(w);
	ready(arg);
}

static void on_flow_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct flow_waiter *w = arg;
	w->q->flow.timed_out++;
	flow_release(w);
}

/* flow_progress - a message left the active set: like Postfix's token, it
 * lets the oldest waiting 250 go; all of them once delivery keeps up. */
static void flow_progress(struct qmgr *q)
{
	if (q->stopping)
		return; /* flow_release_all let them all go */
	if (q->flow.head != NULL)
		flow_release(q->flow.head);
	while (q->flow.head != NULL && !behind(q))
		flow_release(q->flow.head);
	if (q->flow.since != 0 && q->flow.head == NULL && !behind(q))
		flow_end(q);
}

void qmgr_in_flow(struct qmgr *q, void (*ready)(void *arg), void *arg)
{
	if (!behind(q)) {
		ready(arg);
		return;
	}
	if (q->flow.since == 0) {
		q->flow.since = time(NULL);
		flow_log_start(q);
	}
	struct flow_waiter *w = xcalloc(1, sizeof(*w));
	*w = (struct flow_waiter){q, ready, arg, NULL, q->flow.tail, NULL};
	w->timer = evtimer_new(q->base, on_flow_timeout, w);
	struct timeval tv = {(time_t)q->cfg->in_flow_delay, 0};
	evtimer_add(w->timer, &tv);
	*(q->flow.tail ? &q->flow.tail->next : &q->flow.head) = w;
	q->flow.tail = w;
	q->flow.waiting++;
	q->flow.delayed++;
}

/* flow_release_all - SIGTERM: nobody waits for delivery any more. */
static void flow_release_all(struct qmgr *q)
{
	char n[24];
	snprintf(n, sizeof(n), "%zu", q->flow.waiting);
	if (q->flow.since != 0)
		log_ev(LOG_INFO, "in-flow-released", {"waiting", n}, {"reason", "shutdown"});
	q->flow.since = 0;
	while (q->flow.head != NULL)
		flow_release(q->flow.head);
}

static void settle_done(void *arg)
{
	struct qentry *e = arg;
	struct qmgr *q = e->q;
	if (e->err != NULL)
		log_ev(LOG_ERROR, "queue-error", {"queue", e->m->id}, {"reason", e->err},
		       {"next", "the message stays queued and is tried again"});
	struct queue_msg *reports[] = {e->bounce, e->success, e->warning};
	remove_entry(q, e);
	free_entry(e);
	for (size_t i = 0; i < RG_ARRAY_LEN(reports); i++)
		if (reports[i] != NULL)
			qmgr_submit(q, reports[i]);
	flow_progress(q);
	/* the active set was full: once half of it has settled, fetch more from
	 * disk now rather than at the next queue_run_delay */
	if (q->more_due && q->n_active <= q->cfg->qmgr_message_active_limit / 2) {
		q->more_due = false;
		start_scan(q);
	}
	if (q->n_active == 0)
		malloc_trim(0); /* a large batch is gone: give its memory back */
	notify_idle(q);
}

static void settle(struct qentry *e)
{
	time_t now = time(NULL);
	for (size_t i = 0; i < e->m->n_rcpts; i++)
		if (!e->m->rcpts[i].done)
			settle_rcpt(e, &e->m->rcpts[i], now);
	workers_submit(e->q->io, settle_work, settle_done, e);
}

/* ---- scanning the queue ---- */

static int compare_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* in_memory - is the file sub/ID's message one the loop already has? */
static bool in_memory(const struct scan_job *j, const char *file)
{
	const char *id = strchr(file, '/') + 1;
	return j->n_in_memory > 0 &&
	       bsearch(id, j->in_memory, j->n_in_memory, sizeof(*j->in_memory), compare_id);
}

/* load_due - the envelope of one due file, or NULL (damaged files go to
 * corrupt/; a file that is gone or cannot be read now is left for later). */
static struct queue_msg *load_due(const char *dir, const char *file)
{
	struct queue_msg *m = xcalloc(1, sizeof(*m));
	char err[512];
	if (queue_load_header(dir, file, m, err, sizeof(err)))
		return m;
	if (errno == EBADMSG) {
		log_ev(LOG_ERROR, "queue-corrupt", {"file", file}, {"reason", err},
		       {"action", "moved to corrupt/"});
		queue_set_aside(dir, file);
	} else if (errno != ENOENT) {
		log_ev(LOG_WARNING, "queue-unreadable", {"file", file}, {"reason", err},
		       {"action", "tried again at the next scan"});
	}
	queue_msg_free(m);
	return NULL;
}

/* scan_dir - envelopes of due files in sub that the loop does not have;
 * the number of files listed. */
static size_t scan_dir(struct scan_job *j, const char *dir, const char *sub)
{
	char **files = queue_list(dir, sub);
	size_t i = 0;
	for (; files && files[i]; i++) {
		struct stat st;
		struct queue_msg *m = NULL;
		if (j->n_found < j->budget && !in_memory(j, files[i]) &&
		    fstatat(basedir_fd(dir), files[i], &st, 0) == 0 && st.st_mtime <= j->now)
			m = load_due(dir, files[i]);
		if (m != NULL) {
			j->found = xrealloc(j->found, (j->n_found + 1) * sizeof(*j->found));
			j->found[j->n_found++] = m;
		}
		free(files[i]);
	}
	free(files);
	return i;
}

/* count_dir - how many files sub/ holds. */
static size_t count_dir(const char *dir, const char *sub)
{
	char **files = queue_list(dir, sub);
	size_t n = 0;
	for (; files && files[n]; n++)
		free(files[n]);
	free(files);
	return n;
}

static void scan_work(void *arg)
{
	struct scan_job *j = arg;
	const char *dir = j->q->cfg->queue_directory;
	scan_dir(j, dir, "active");
	j->n_deferred = scan_dir(j, dir, "deferred");
	j->n_hold = count_dir(dir, "hold");
}

static bool settled_during_scan(const struct qmgr *q, const char *id)
{
	for (size_t i = 0; i < q->n_settled; i++)
		if (strcmp(q->settled_during_scan[i], id) == 0)
			return true;
	return false;
}

static void start_scan(struct qmgr *q);

static void scan_done(void *arg)
{
	struct scan_job *j = arg;
	struct qmgr *q = j->q;
	if (j->n_found == j->budget)
		q->more_due = true; /* it stopped at the budget: more may be due */
	q->files_deferred = j->n_deferred;
	q->files_hold = j->n_hold;
	/* those the scan read are in memory now (a guess when it stopped early) */
	q->n_waiting_on_disk = !q->more_due ? 0
			       : q->n_waiting_on_disk > j->n_found ? q->n_waiting_on_disk - j->n_found
								   : 0;
	for (size_t i = 0; i < j->n_found; i++) {
		struct queue_msg *m = j->found[i];
		if (settled_during_scan(q, m->id))
			queue_msg_free(m); /* read before it settled: stale */
		else
			qmgr_submit(q, m);
	}
	free(j->found);
	free(j->in_memory);
	free(j);
	for (size_t i = 0; i < q->n_settled; i++)
		free(q->settled_during_scan[i]);
	free(q->settled_during_scan);
	q->settled_during_scan = NULL;
	q->n_settled = 0;
	q->scanning = false;
	if (q->rescan) {
		q->rescan = false;
		start_scan(q);
	}
	notify_idle(q);
}

static void start_scan(struct qmgr *q)
{
	if (q->stopping)
		return;
	if (q->scanning) {
		q->rescan = true;
		return;
	}
	size_t limit = q->cfg->qmgr_message_active_limit;
	if (q->n_active >= limit)
		return;
	struct scan_job *j = xcalloc(1, sizeof(*j));
	j->q = q;
	j->now = q->flush_all ? (time_t)INT64_MAX : time(NULL); /* flush: everything is due */
	q->flush_all = false;
	j->budget = limit - q->n_active;
	j->in_memory = xcalloc(q->n_active + 1, sizeof(*j->in_memory));
	for (size_t b = 0; b < ID_BUCKETS; b++)
		for (struct qentry *e = q->by_id[b]; e != NULL; e = e->hnext)
			rg_strlcpy(j->in_memory[j->n_in_memory++], e->m->id, QUEUE_ID_LEN + 1);
	qsort(j->in_memory, j->n_in_memory, sizeof(*j->in_memory), compare_id);
	q->scanning = true;
	workers_submit(q->io, scan_work, scan_done, j);
}

static void on_scan_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	start_scan(arg);
}

/* ---- life cycle ---- */

struct qmgr *qmgr_new(struct event_base *base, const struct config *cfg,
		      struct confset *configs)
{
	struct qmgr *q = xcalloc(1, sizeof(*q));
	q->base = base;
	q->cfg = cfg;
	q->configs = configs;
	q->io = workers_new(base, IO_THREADS);
	q->files = (struct qctl){.dir = cfg->queue_directory, .offline = false};
	q->local = transport_local_new(base, cfg);
	q->lmtp = transport_lmtp_new(base, cfg);
	return q;
}

/* submit_report - issue 14's hook: a TLS report the SMTP transport queued. */
static void submit_report(void *arg, struct queue_msg *m)
{
	qmgr_submit(arg, m);
}

void qmgr_set_smtp(struct qmgr *q, struct transport *smtp)
{
	q->smtp = smtp;
	/* TLS reports are built with the start-up configuration the transport has */
	transport_smtp_set_queue(smtp, confset_startup_domains(q->configs), submit_report, q);
}

void qmgr_start(struct qmgr *q)
{
	size_t stale = queue_clean_tmp(q->cfg->queue_directory);
	char n[24];
	snprintf(n, sizeof(n), "%zu", stale);
	log_ev(LOG_INFO, "queue-recovery", {"unacknowledged_removed", n},
	       {"action", "scanning active/ and deferred/"});
	struct timeval tv = {(time_t)q->cfg->queue_run_delay, 0};
	q->scan_timer = event_new(q->base, -1, EV_PERSIST, on_scan_timer, q);
	evtimer_add(q->scan_timer, &tv);
	start_scan(q);
}

void qmgr_stop(struct qmgr *q, void (*on_idle)(void *arg), void *arg)
{
	q->stopping = true;
	q->on_idle = on_idle;
	q->idle_arg = arg;
	flow_release_all(q);
	if (q->scan_timer)
		evtimer_del(q->scan_timer);
	if (q->smtp)
		q->smtp->stop(q->smtp);
	q->lmtp->stop(q->lmtp);
}

bool qmgr_idle(const struct qmgr *q)
{
	/* in-flight work holds entries; a scan and settling run on q->io */
	return q->n_active == 0 && !q->scanning && workers_pending(q->io) == 0;
}

bool qmgr_busy(const struct qmgr *q, const char *id)
{
	return find_entry(q, id) != NULL;
}

bool qmgr_flush(struct qmgr *q, const char *id, struct strbuf *out)
{
	if (q->smtp != NULL && q->smtp->resume != NULL)
		q->smtp->resume(q->smtp);
	if (q->lmtp->resume != NULL)
		q->lmtp->resume(q->lmtp);
	if (id == NULL) {
		q->flush_all = true;
		strbuf_puts(out, "every deferred message is scheduled for delivery now\n");
		start_scan(q);
		return true;
	}
	/* due now: the scan looks at the mtime (one file: cheap enough here) */
	char *path = xasprintf("deferred/%s", id);
	bool ok = utimensat(basedir_fd(q->cfg->queue_directory), path, NULL, 0) == 0 ||
		  qmgr_busy(q, id);
	strbuf_printf(out, ok ? "%s: scheduled for delivery now\n"
			      : "%s: no such message in deferred/\n", id);
	free(path);
	start_scan(q);
	return ok;
}

/* ---- the control socket ---- */

/* refuse_busy - a message in memory belongs to its delivery pass. */
static bool refuse_busy(const struct qmgr *q, const char *id, struct strbuf *out)
{
	if (id == NULL || !qmgr_busy(q, id))
		return false;
	strbuf_printf(out, "%s is being delivered right now; try again in a moment", id);
	return true;
}

static bool ctl_list(void *arg, bool json, struct strbuf *out)
{
	struct qmgr *q = arg;
	return qctl_ops.list(&q->files, json, out);
}

/* ctl_status - what delivery is doing, for `relayguard queue status`. */
void qmgr_counts(void *arg, unsigned long counts[4])
{
	const struct qmgr *q = arg;
	counts[0] = q->n_waiting_on_disk;
	counts[1] = q->n_active;
	counts[2] = q->files_deferred;
	counts[3] = q->files_hold;
}

static bool ctl_status(void *arg, struct strbuf *out)
{
	struct qmgr *q = arg;
	const struct config *cfg = q->cfg;
	strbuf_printf(out, "active: %zu messages being delivered (%zu of them reports from <>; "
		      "limit %llu)\n", q->n_active, q->n_active_reports,
		      (unsigned long long)cfg->qmgr_message_active_limit);
	strbuf_printf(out, "waiting on disk for room in the active set: %zu\n",
		      q->n_waiting_on_disk);
	strbuf_printf(out, "backlog: %zu (in_flow_backlog_limit %llu)\n", backlog(q),
		      (unsigned long long)cfg->in_flow_backlog_limit);
	if (q->flow.since == 0) {
		strbuf_puts(out, "in-flow: delivery keeps up\n");
		return true;
	}
	strbuf_printf(out, "in-flow: behind for %llds: %zu 250s waiting now, %llu delayed, "
		      "%llu waited the full in_flow_delay (%llus)\n",
		      (long long)(time(NULL) - q->flow.since), q->flow.waiting,
		      (unsigned long long)q->flow.delayed, (unsigned long long)q->flow.timed_out,
		      (unsigned long long)cfg->in_flow_delay);
	return true;
}

static bool ctl_flush(void *arg, const char *id, struct strbuf *out)
{
	return qmgr_flush(arg, id, out);
}

static bool ctl_delete(void *arg, const char *id, struct strbuf *out)
{
	struct qmgr *q = arg;
	return !refuse_busy(q, id, out) && qctl_ops.delete(&q->files, id, out);
}

static bool ctl_hold(void *arg, const char *id, struct strbuf *out)
{
	struct qmgr *q = arg;
	return !refuse_busy(q, id, out) && qctl_ops.hold(&q->files, id, out);
}

static bool ctl_release(void *arg, const char *id, struct strbuf *out)
{
	struct qmgr *q = arg;
	bool ok = !refuse_busy(q, id, out) && qctl_ops.release(&q->files, id, out);
	if (ok)
		start_scan(q); /* back in active/ or deferred/, due now */
	return ok;
}

/* ctl_tls_memory - issue 14's hook: the SMTP transport owns the memory. */
static bool ctl_tls_memory(void *arg, const char *forget, struct strbuf *out)
{
	return transport_smtp_tls_memory(((struct qmgr *)arg)->smtp, forget, out);
}

static bool ctl_tls_report_send(void *arg, struct strbuf *out)
{
	return transport_smtp_tls_report_send(((struct qmgr *)arg)->smtp, out);
}

const struct control_ops qmgr_control_ops = {
	.list = ctl_list, .flush = ctl_flush, .delete = ctl_delete, .hold = ctl_hold,
	.release = ctl_release, .status = ctl_status, .tls_memory = ctl_tls_memory,
	.tls_report_send = ctl_tls_report_send,
};

void qmgr_free(struct qmgr *q)
{
	if (q == NULL)
		return;
	q->stopping = q->freeing = true;
	q->on_idle = NULL; /* the server is being freed: nobody to tell */
	/* transports first: their last callbacks settle messages on q->io */
	q->local->free(q->local);
	q->lmtp->free(q->lmtp);
	if (q->smtp)
		q->smtp->free(q->smtp);
	workers_free(q->io);
	for (size_t b = 0; b < ID_BUCKETS; b++) {
		while (q->by_id[b]) {
			struct qentry *e = q->by_id[b];
			q->by_id[b] = e->hnext;
			free_entry(e); /* its file stays queued for the next start */
		}
	}
	for (size_t i = 0; i < q->n_settled; i++)
		free(q->settled_during_scan[i]);
	free(q->settled_during_scan);
	if (q->scan_timer)
		event_free(q->scan_timer);
	free(q);
}
