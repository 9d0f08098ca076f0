/*
 * tlsrpt_send.c - one report per policy domain (see tlsrpt_send.h):
 *
 *   take the counts ─▶ TXT _smtp._tls.D ─▶ rua=mailto:A ─▶ JSON (loop)
 *     ─▶ [worker] gzip, message, queue_commit ─▶ submit to the queue manager
 */
#include "tlspol/tlsrpt_send.h"
#include "dns/dns.h"
#include "qmgr/bounce_queue.h"
#include "util/log.h"
#include "util/workers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

struct tlsrpt_sender {
	struct event_base *base;
	struct dns *dns;
	const struct config *cfg;
	struct tlsrpt *counts;
	const struct addr_domains *domains;
	tlsrpt_submit_fn submit;
	void *submit_arg;
	struct workers *worker;
	struct event *daily;
	struct report *pending;  /* waiting for their TXT answer */
	unsigned seq;
};

struct report {
	struct tlsrpt_sender *s;
	struct tlsrpt_domain *d;  /* detached from the counts */
	time_t start, end;
	char id[96], rua[320];
	struct dns_query *dq;
	struct strbuf json;       /* built on the loop */
	struct queue_msg *m;      /* committed by the worker */
	bool ok;
	char err[300];
	struct report *next;
};

static void report_free(struct report *r)
{
	r->d->next = NULL;
	tlsrpt_domains_free(r->d);
	strbuf_free(&r->json);
	queue_msg_free(r->m);
	free(r);
}

static void unlink_pending(struct report *r)
{
	struct report **pp = &r->s->pending;
	while (*pp != NULL && *pp != r)
		pp = &(*pp)->next;
	if (*pp == r)
		*pp = r->next;
}

/* commit_work - worker: gzip, the message, the queue file. */
static void commit_work(void *arg)
{
	struct report *r = arg;
	const struct config *cfg = r->s->cfg;
	struct strbuf gz;
	strbuf_init(&gz);
	if (!tlsrpt_gzip(r->json.data, r->json.len, &gz)) {
		snprintf(r->err, sizeof(r->err), "gzip failed");
		strbuf_free(&gz);
		return;
	}
	char from[300];
	snprintf(from, sizeof(from), "noreply-smtp-tls-reporting@%s", cfg->myhostname);
	tlsrpt_message(from, r->rua, r->d->domain, cfg->myhostname, r->id, r->end, gz.data, gz.len,
		       &r->m->body);
	strbuf_free(&gz);
	r->ok = queue_commit(cfg->queue_directory, r->m, r->err, sizeof(r->err));
	strbuf_free(&r->m->body);
}

static void commit_done(void *arg)
{
	struct report *r = arg;
	if (r->ok) {
		log_ev(LOG_INFO, "tls-report-queued", {"domain", r->d->domain}, {"queue", r->m->id},
		       {"to", r->rua}, {"report_id", r->id});
		if (r->s->submit != NULL) { /* else stopping: active/ is scanned at the next start */
			r->s->submit(r->s->submit_arg, r->m);
			r->m = NULL; /* the queue manager has it */
		}
	} else {
		log_ev(LOG_WARNING, "tls-report-failed", {"domain", r->d->domain},
		       {"reason", r->err});
	}
	report_free(r);
}

static void on_rua(void *arg, const struct dns_txt_result *t)
{
	struct report *r = arg;
	struct tlsrpt_sender *s = r->s;
	r->dq = NULL;
	unlink_pending(r);
	bool found = false;
	for (size_t i = 0; i < t->n && !found; i++)
		found = tlsrpt_rua_mailto(t->txt[i], r->rua, sizeof(r->rua));
	if (found)
		r->m = bounce_queue_envelope(s->cfg, s->domains, "", r->rua, r->end);
	if (r->m == NULL) {
		log_ev(LOG_INFO, "tls-report-dropped", {"domain", r->d->domain},
		       {"reason", found ? "the rua address does not parse"
				: "no _smtp._tls TXT record with rua=mailto:"});
		report_free(r);
		return;
	}
	char contact[300]; /* 4.4 contact-info: where to ask about the report */
	snprintf(contact, sizeof(contact), "postmaster@%s", s->cfg->myhostname);
	struct tlsrpt_meta meta = {s->cfg->myhostname, contact, r->id, r->start, r->end};
	tlsrpt_json(r->d, &meta, &r->json);
	workers_submit(s->worker, commit_work, commit_done, r);
}

size_t tlsrpt_send_now(struct tlsrpt_sender *s)
{
	if (s->submit == NULL)
		return 0;
	time_t now = time(NULL), start;
	struct tlsrpt_domain *all = tlsrpt_take(s->counts, now, &start), *next;
	size_t n = 0;
	for (struct tlsrpt_domain *d = all; d != NULL; d = next, n++) {
		next = d->next;
		struct report *r = xcalloc(1, sizeof(*r));
		r->s = s;
		r->d = d;
		r->start = start;
		r->end = now;
		strbuf_init(&r->json);
		snprintf(r->id, sizeof(r->id), "%lld.%u.%s@%s", (long long)now, ++s->seq,
			 d->type == TLSRPT_STS ? "sts" : "tlsa", s->cfg->myhostname);
		r->next = s->pending;
		s->pending = r;
		char name[300];
		snprintf(name, sizeof(name), "_smtp._tls.%s", d->domain);
		r->dq = dns_txt_lookup(s->dns, name, on_rua, r);
	}
	return n;
}

static void on_daily(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tlsrpt_send_now(arg);
}

struct tlsrpt_sender *tlsrpt_sender_new(struct event_base *base, struct dns *dns,
					const struct config *cfg, struct tlsrpt *counts)
{
	struct tlsrpt_sender *s = xcalloc(1, sizeof(*s));
	s->base = base;
	s->dns = dns;
	s->cfg = cfg;
	s->counts = counts;
	s->worker = workers_new(base, 1);
	s->daily = event_new(base, -1, EV_PERSIST, on_daily, s);
	struct timeval tv = {TLSRPT_INTERVAL, 0};
	event_add(s->daily, &tv);
	return s;
}

void tlsrpt_sender_set_queue(struct tlsrpt_sender *s, const struct addr_domains *domains,
			     tlsrpt_submit_fn submit, void *arg)
{
	s->domains = domains;
	s->submit = submit;
	s->submit_arg = arg;
}

void tlsrpt_sender_free(struct tlsrpt_sender *s)
{
	if (s == NULL)
		return;
	while (s->pending != NULL) {
		struct report *r = s->pending;
		s->pending = r->next;
		dns_cancel(r->dq);
		report_free(r);
	}
	s->submit = NULL;
	workers_free(s->worker); /* commits in flight finish */
	event_free(s->daily);
	free(s);
}
