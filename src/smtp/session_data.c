/*
 * session_data.c - the message transaction of a session: DATA to commit.
 *
 * Owns: the transaction's lifetime (session_tx_free), the DATA command and
 * the Received: header, reading the message text (dot-unstuffing, bare
 * CR/LF detection, message_size_limit, header_size_limit, hop count),
 * spooling to the queue's tmp/ while it arrives (smtpd_data_memory_limit),
 * the end of data, the hooks (session_hooks_set: end-of-data stages on the
 * worker pool, the header filter) and the commit to the queue.
 * Must not: parse commands (session.c), write files itself (queue/server do,
 * on workers), or re-enable reading other than through session.c.
 */
#include "smtp/session_priv.h"
#include "metrics/events.h"
#include "smtp/server.h"
#include "util/workers.h"
#include "util/log.h"
#include "util/util.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define DATA_CHUNK (64 * 1024)    /* a longer text line is taken in pieces */
/* Text beyond this goes to the queue's tmp/ while it arrives. */
#define SPOOL_CHUNK (128 * 1024)

/* Message text (with the header field each session holds for the filter)
 * held for all sessions together until it is queued is bounded
 * by smtpd_data_memory_limit: past half of it, sessions spool what they hold;
 * past all of it, new text is refused with 452 4.3.1. */
static size_t data_in_memory; /* event loop thread only */

static void commit_done(void *arg, bool ok, const char *err);
static void submit_commit(struct session *s, bool from_callback);
static void data_ready(struct session *s, bool from_callback);
static void data_finished(struct session *s);
static void field_judge(struct session *s, bool whole);

/* noop_stage - the default end-of-data stage: keeps the stage path exercised
 * until message authentication registers its own (session_hooks_set). */
static void noop_stage(struct session_eod *e, void *arg)
{
	(void)e;
	(void)arg;
}

static const struct session_stage default_stages[] = {{"noop", noop_stage, NULL, NULL}};
static const struct session_hooks default_hooks = {NULL, NULL, default_stages, 1, NULL, NULL, false};
static const struct session_hooks *hooks = &default_hooks;

void session_hooks_set(const struct session_hooks *h)
{
	hooks = h != NULL ? h : &default_hooks;
}

const struct session_hooks *session_hooks(void)
{
	return hooks;
}

void session_tx_set_data(struct session *s, void *data, void (*free_fn)(void *data))
{
	struct transaction *tx = s->tx;
	if (tx->hook_data_free != NULL)
		tx->hook_data_free(tx->hook_data);
	tx->hook_data = data;
	tx->hook_data_free = free_fn;
}

void *session_tx_data(const struct session *s)
{
	return s->tx != NULL ? s->tx->hook_data : NULL;
}


void session_tx_free(struct session *s)
{
	if (s->tx == NULL)
		return;
	data_in_memory -= s->tx->held;
	struct spool_state *st = s->tx->spool;
	if (st != NULL) {
		st->s = NULL; /* an in-flight write sees this and removes the file */
		if (!st->busy) {
			server_spool_abort(s->srv, st->sp);
			free(st);
		}
	}
	if (s->pending == PENDING_SPOOL) { /* nothing left to wait for */
		session_pending_end(s);
		session_update_read(s);
	}
	if (s->tx->hook_data_free != NULL)
		s->tx->hook_data_free(s->tx->hook_data);
	strbuf_free(&s->tx->field_hold);
	queue_msg_free(s->tx->msg);
	free(s->tx);
	s->tx = NULL;
}

void session_tx_reset(struct session *s)
{
	session_tx_free(s);
	if (s->state == S_MAIL || s->state == S_RCPT || s->state == S_DATA)
		session_set_state(s, S_READY);
}


/* received_header - prepended to every message: who handed it to us, when. */
static void received_header(struct session *s, struct queue_msg *m)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	/* RFC 3848: ESMTP, plus S under TLS and A after AUTH */
	char proto[8];
	snprintf(proto, sizeof(proto), "%s%s%s", (s->flags & F_EHLO) ? "ESMTP" : "SMTP",
		 (s->flags & F_EHLO) && (s->flags & F_TLS) ? "S" : "",
		 (s->flags & F_EHLO) && s->client.sasl_authenticated ? "A" : "");
	strbuf_printf(&m->body, "Received: from %s (%s [%s])\r\n", s->helo, s->name, s->ip_text);
	if (s->tls_info[0])
		strbuf_printf(&m->body, "\t(using %s)\r\n", s->tls_info);
	if (s->client.sasl_authenticated && s->cfg->smtpd_sasl_authenticated_header)
		strbuf_printf(&m->body, "\t(Authenticated sender: %s)\r\n", s->sasl_username);
	strbuf_printf(&m->body, "\tby %s (relayguard) with %s id %s", s->cfg->myhostname, proto,
		      m->id);
	if (m->n_rcpts == 1)
		strbuf_printf(&m->body, "\r\n\tfor <%s>", m->rcpts[0].orig);
	strbuf_printf(&m->body, "; %s\r\n", date);
}

/* hold_if_hijacked - authenticated mail goes to hold/ when its login looks
 * hijacked (abuse.c); only other people's domains count, not our own. */
static bool hold_if_hijacked(struct session *s, const struct queue_msg *m)
{
	if (!s->client.sasl_authenticated)
		return false;
	const char **domains = xcalloc(m->n_rcpts + 1, sizeof(*domains));
	size_t n = 0;
	for (size_t i = 0; i < m->n_rcpts; i++)
		if (m->rcpts[i].cls == ADDR_CLASS_REMOTE || m->rcpts[i].cls == ADDR_CLASS_RELAY)
			domains[n++] = m->rcpts[i].domain;
	struct abuse_client c = {&s->client.ip, s->ip_text, s->sasl_username, s->id};
	bool hold = n > 0 && abuse_hold(server_abuse(s->srv), &c, domains, n, time(NULL));
	free(domains);
	return hold;
}

bool session_data_check(struct session *s, char *arg)
{
	if (!session_need_helo(s, "DATA"))
		return false;
	if (s->state == S_MAIL) {
		session_reply_error(s, "DATA", "554 5.5.1 Error: no valid recipients");
		return false;
	}
	if (s->state != S_RCPT) {
		session_reply_error(s, "DATA", "503 5.5.1 Error: need RCPT command");
		return false;
	}
	if (*arg != '\0') {
		session_reply_error(s, "DATA", "501 5.5.4 Syntax: DATA (no arguments)");
		return false;
	}
	return true;
}

void session_data_proceed(struct session *s, char *arg)
{
	(void)arg;
	struct queue_msg *m = s->tx->msg;
	queue_new_id(m->id);
	m->arrival = time(NULL);
	m->client_ip = xstrdup(s->ip_text);
	m->client_name = xstrdup(s->name);
	m->helo = xstrdup(s->helo);
	m->sender = xstrdup(s->tx->sender.text);
	m->dsn_ret = s->tx->dsn_ret[0] ? xstrdup(s->tx->dsn_ret) : NULL;
	m->dsn_envid = s->tx->dsn_envid[0] ? xstrdup(s->tx->dsn_envid) : NULL;
	m->login = s->client.sasl_authenticated ? xstrdup(s->sasl_username) : NULL;
	m->hold = hold_if_hijacked(s, m);
	rg_strlcpy(m->session, s->id, sizeof(m->session));
	received_header(s, m);
	data_in_memory += m->body.len; /* from here on, body.len == held until spooled */
	s->tx->held += m->body.len;
	session_set_state(s, S_DATA);
	session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* too_many_hops - the client's Received: fields and the one we add on top
 * reach hopcount_limit: refused as Postfix does (its cleanup counts its own
 * smtpd's field too and stops at the limit), so 48 pass with the default 50. */
static bool too_many_hops(const struct session *s)
{
	return s->tx->hops + 1 >= s->cfg->hopcount_limit;
}

/* end_of_data - the final "." line: reject, or hand the message to the queue. */
static void end_of_data(struct session *s)
{
	struct transaction *tx = s->tx;
	tx->eod_at = rg_monotonic();
	if (!tx->too_big && !tx->bare_eol && !tx->no_memory)
		field_judge(s, true); /* a header without the empty line ends here */
	if (tx->bare_eol || tx->too_big || too_many_hops(s) || tx->no_memory)
		mev_message(false, 0, 0);
	if (tx->bare_eol) {
		session_reply_error(s, "DATA", "550 5.5.2 Error: message contains a bare <CR> or <LF>; "
			    "lines must end with <CR><LF> (message not accepted)");
		session_tx_reset(s);
		return;
	}
	if (tx->too_big) {
		session_reply_error(s, "DATA", "552 5.3.4 Error: message exceeds fixed limit of %llu bytes",
			    (unsigned long long)s->cfg->message_size_limit);
		session_tx_reset(s);
		return;
	}
	if (too_many_hops(s)) { /* a mail loop: RFC 5321 6.3 */
		char hops[24];
		snprintf(hops, sizeof(hops), "%llu", (unsigned long long)tx->hops);
		log_ev(LOG_WARNING, "too-many-hops", {"session", s->id}, {"client", s->ip_text},
		       {"hops", hops});
		session_reply_error(s, "DATA", "554 5.4.6 Error: too many hops");
		session_tx_reset(s);
		return;
	}
	if (tx->no_memory) {
		session_reply_error(s, "DATA", "452 4.3.1 Error: insufficient system resources for the "
			    "message now; try again later");
		log_ev(LOG_WARNING, "data-memory-budget", {"session", s->id}, {"client", s->ip_text});
		session_tx_reset(s);
		return;
	}
	if (tx->header_cut)
		log_ev(LOG_INFO, "header-truncated", {"session", s->id}, {"client", s->ip_text},
		       {"limit", "header_size_limit"});
	/* no reads until the 250 */
	bool stages = hooks->n_stages > 0 && (tx->hook_data != NULL || !hooks->stages_need_data);
	session_pending_begin(s, stages ? PENDING_STAGES : PENDING_COMMIT, NULL, NULL);
	rg_strlcpy(tx->msg_id, tx->msg->id, sizeof(tx->msg_id));
	if (tx->spool != NULL && tx->spool->busy) {
		tx->spool->commit_waiting = true; /* spool_written goes on */
		return;
	}
	data_ready(s, false);
}

/* An end-of-data stage run: the verdict so far and the next stage. */
struct stage_job {
	struct session *s;
	struct session_eod e;
	size_t next;
};

static void stage_work(void *arg)
{
	struct stage_job *j = arg;
	const struct session_stage *st = &hooks->stages[j->next];
	st->work(&j->e, st->arg);
}

static void stage_done(void *arg);

static void stages_start(struct session *s)
{
	struct transaction *tx = s->tx;
	struct stage_job *j = xcalloc(1, sizeof(*j));
	j->s = s;
	j->e.msg = tx->msg;
	j->e.queue_directory = s->cfg->queue_directory;
	j->e.spool = tx->spool != NULL ? tx->spool->sp : NULL;
	j->e.spooled = j->e.spool != NULL ? queue_spool_size(j->e.spool) : 0;
	j->e.tx_data = tx->hook_data;
	j->e.client_ip = s->ip_text;
	j->e.helo = s->helo;
	j->e.login = tx->msg->login;
	strbuf_init(&j->e.prepend);
	workers_submit(server_workers(s->srv), stage_work, stage_done, j);
}

/* prepend - the stages' header lines go above the message (and our Received:).
 * Only text still in memory can take them (see docs/design.md, "Hooks"). */
static void prepend(struct session *s, struct strbuf *lines)
{
	struct transaction *tx = s->tx;
	if (lines->len == 0)
		return;
	if (tx->spool != NULL) { /* the commit rewrites tmp/ID on its worker */
		queue_spool_prepend(tx->spool->sp, lines->data, lines->len);
		return;
	}
	struct strbuf body;
	strbuf_init(&body);
	strbuf_append(&body, lines->data, lines->len);
	strbuf_append(&body, tx->msg->body.data, tx->msg->body.len);
	strbuf_free(&tx->msg->body);
	tx->msg->body = body;
	data_in_memory += lines->len;
	tx->held += lines->len;
}

/* stages_end - the verdict: refuse, or prepend and commit. */
static void stages_end(struct session *s, struct stage_job *j)
{
	if (j->e.reply[0] != '\0') {
		log_ev(LOG_INFO, "data-refused", {"session", s->id}, {"client", s->ip_text},
		       {"stage", hooks->stages[j->next - 1].name}, {"reply", j->e.reply});
		session_pending_end(s);
		mev_message(false, 0, 0);
		session_reply_error(s, "DATA", "%s", j->e.reply);
	} else {
		if (j->e.junk) {
			log_ev(LOG_INFO, "data-junk", {"session", s->id}, {"client", s->ip_text});
			s->tx->msg->junk = true; /* local copies go to .Junk/ */
			if (s->tx->spool != NULL)
				queue_spool_junk(s->tx->spool->sp);
		}
		prepend(s, &j->e.prepend);
		session_pending_begin(s, PENDING_COMMIT, NULL, NULL);
	}
	strbuf_free(&j->e.prepend);
	free(j);
	if (s->pending == PENDING_COMMIT)
		submit_commit(s, true);
	else
		data_finished(s);
}

/* stage_next - after a stage (and its loop step): the next one, or the verdict. */
static void stage_next(struct stage_job *j)
{
	struct session *s = j->s;
	if (s->flags & F_DEAD) { /* the client left while the stage ran */
		strbuf_free(&j->e.prepend);
		free(j);
		session_free(s);
		return;
	}
	if (++j->next < hooks->n_stages && j->e.reply[0] == '\0') {
		workers_submit(server_workers(s->srv), stage_work, stage_done, j);
		return;
	}
	stages_end(s, j);
}

static void stage_done(void *arg)
{
	struct stage_job *j = arg;
	const struct session_stage *st = &hooks->stages[j->next];
	if (!(j->s->flags & F_DEAD) && j->e.reply[0] == '\0' && st->loop != NULL &&
	    st->loop(&j->e, st->arg))
		return; /* session_eod_resume() goes on */
	stage_next(j);
}

void session_eod_resume(struct session_eod *e)
{
	struct stage_job *j = (struct stage_job *)((char *)e - offsetof(struct stage_job, e));
	stage_next(j);
}

/* data_ready - all the text is in memory or on disk: the stages, then commit. */
static void data_ready(struct session *s, bool from_callback)
{
	struct spool_state *st = s->tx->spool;
	if (s->pending == PENDING_STAGES && (st == NULL || !st->failed))
		stages_start(s);
	else
		submit_commit(s, from_callback);
}

/* queue_refused - 451 for a message the queue could not take. ERR names our
 * paths and errno text: it goes to the log, the client only learns to retry
 * (Postfix's words). */
static void queue_refused(struct session *s, const char *err)
{
	static const char reply[] = "451 4.3.0 Error: queue file write error";
	session_reply(s, "%s", reply);
	log_ev(LOG_WARNING, "reject", {"session", s->id}, {"client", s->ip_text},
	       {"command", "DATA"}, {"reply", reply}, {"error", err != NULL ? err : "unknown"});
}

/* submit_commit - hand the message (and its spool, if any) to the queue.
 * from_callback: not inside process_input, so reading may be resumed here. */
static void submit_commit(struct session *s, bool from_callback)
{
	struct transaction *tx = s->tx;
	struct queue_spool *sp = NULL;
	if (tx->spool != NULL && tx->spool->failed) {
		if (s->flags & F_DEAD) { /* the client left while we waited */
			session_free(s);
			return;
		}
		mev_message(false, 0, 0); /* commit_done counts the others */
		queue_refused(s, tx->spool->err);
		session_pending_end(s);
		session_tx_free(s);
		session_set_state(s, S_READY);
		if (from_callback)
			session_resume_reading(s);
		else
			session_update_read(s); /* process_input goes on */
		return;
	}
	if (tx->spool != NULL) {
		sp = tx->spool->sp;
		free(tx->spool);
		tx->spool = NULL;
	}
	struct queue_msg *m = tx->msg;
	tx->msg = NULL;
	server_commit(s->srv, m, sp, commit_done, s);
}

/* spool_written - a chunk is on disk (or failed); carry on with the session. */
static void spool_written(void *arg, bool ok, const char *err)
{
	struct spool_state *st = arg;
	data_in_memory -= st->in_flight;
	st->in_flight = 0;
	st->busy = false;
	if (!ok && !st->failed) {
		st->failed = true;
		rg_strlcpy(st->err, err, sizeof(st->err));
	}
	struct session *s = st->s;
	if (s == NULL) { /* the transaction ended meanwhile */
		server_spool_abort(st->srv, st->sp);
		free(st);
		return;
	}
	if (st->commit_waiting) {
		st->commit_waiting = false;
		data_ready(s, true);
		return;
	}
	if (s->pending == PENDING_SPOOL) {
		session_pending_end(s);
		session_resume_reading(s);
	}
}

/* spool_flush - send the text gathered so far to disk, one write at a time. */
static void spool_flush(struct session *s)
{
	struct transaction *tx = s->tx;
	if (tx->spool == NULL) {
		tx->spool = xcalloc(1, sizeof(*tx->spool));
		tx->spool->srv = s->srv;
		tx->spool->s = s;
		tx->spool->sp = queue_spool_new(tx->msg);
	}
	struct spool_state *st = tx->spool;
	if (st->failed) { /* the answer will be 451 anyway: store no more */
		data_in_memory -= tx->msg->body.len; /* held also counts the field hold */
		tx->held -= tx->msg->body.len;
		strbuf_free(&tx->msg->body);
		return;
	}
	if (st->busy) {
		if (tx->msg->body.len >= 4 * SPOOL_CHUNK && s->pending == PENDING_NONE)
			/* the disk is behind: stop reading for now */
			session_pending_begin(s, PENDING_SPOOL, NULL, NULL);
		return;
	}
	st->busy = true;
	st->in_flight = tx->msg->body.len;
	tx->held -= st->in_flight;
	server_spool_write(s->srv, st->sp, &tx->msg->body, spool_written, st);
}

/* field_start - "Name:" with a printable name begins a new header field; so
 * does the obsolete "Name :" (RFC 5322 4.5), which msgauth's header parser and
 * other readers take as a field: as the start of the body it would escape the
 * header filter and still be read as a field. A name alone on its line (or on
 * the first piece of a long one) may be too: a reader that unfolds first finds
 * its colon on the continuation line. */
static bool field_start(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && p[i] > ' ' && p[i] < 0x7f && p[i] != ':')
		i++;
	size_t name = i;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return name > 0 && (i == n || p[i] == ':');
}

/* is_received - the field is a Received: field in any form field_start
 * takes ("Received:", the obsolete "Received :", or the name alone with its
 * colon on the continuation line): a loop must not slip past hopcount_limit
 * by writing its trace fields another way. */
static bool is_received(const char *p, size_t n)
{
	size_t i = 8;
	if (n < i || rg_strncasecmp(p, "Received", i) != 0)
		return false;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	return i == n || p[i] == ':';
}

/* H_GAP_KEEP: keep the line, behind an empty line of our own (see header_line) */
enum header_verdict { H_KEEP, H_DROP, H_END_LINE, H_GAP_KEEP };

static void store(struct session *s, const char *p, size_t n, bool complete);

/* field_judge - the header filter's verdict on the held field (WHOLE: all of
 * it is held); a kept field goes into the message, in order. */
static void field_judge(struct session *s, bool whole)
{
	struct transaction *tx = s->tx;
	if (!tx->holding)
		return;
	tx->holding = false;
	struct strbuf *h = &tx->field_hold;
	size_t n = h->len;
	if (n >= 2 && h->data[n - 2] == '\r' && h->data[n - 1] == '\n')
		n -= 2; /* the filter sees the field without its final CRLF */
	tx->field_drop = hooks->header_drop(s, h->data ? h->data : "", n, whole, hooks->header_arg);
	data_in_memory -= h->len; /* the hold is let go; store() counts what is kept */
	tx->held -= h->len;
	if (!tx->field_drop && h->len > 0)
		store(s, h->data, h->len, false);
	h->len = 0;
	if (h->data != NULL)
		h->data[0] = '\0';
}

static bool memory_pressure(struct session *s, size_t before);

/* hold_append - text into the field hold, counted in data_in_memory like the
 * message text: a session's hold is small, but thousands of sessions each
 * holding a long field would otherwise escape smtpd_data_memory_limit. */
static void hold_append(struct session *s, const char *p, size_t n)
{
	size_t before = data_in_memory;
	strbuf_append(&s->tx->field_hold, p, n);
	data_in_memory += n;
	s->tx->held += n;
	memory_pressure(s, before); /* the others spool; a hold cannot */
}

/* field_hold - keep a piece of the current field for the filter. Past
 * SESSION_FIELD_HOLD the field is judged on what is held (bounded memory) and
 * the rest follows the verdict directly. The hold is filled to the bound
 * first: a first line longer than it must still show the filter its name. */
static void field_hold(struct session *s, const char *p, size_t n, bool complete)
{
	struct transaction *tx = s->tx;
	size_t add = n + (complete ? 2 : 0);
	if (tx->field_hold.len + add > SESSION_FIELD_HOLD) {
		size_t fit = SESSION_FIELD_HOLD - tx->field_hold.len;
		fit = fit < n ? fit : n;
		hold_append(s, p, fit);
		field_judge(s, false);
		if (!tx->field_drop)
			store(s, p + fit, n - fit, complete);
		return;
	}
	hold_append(s, p, n);
	if (complete)
		hold_append(s, "\r\n", 2);
}

/* header_line - follow the header: count Received: fields (hopcount_limit) and,
 * like Postfix, discard what a field has beyond header_size_limit. H_END_LINE:
 * drop this piece, but end the part of its line already kept with CRLF. */
static enum header_verdict header_line(struct session *s, const char *p, size_t n,
				       bool complete, bool at_start)
{
	struct transaction *tx = s->tx;
	if (tx->in_body)
		return H_KEEP;
	bool folded = n > 0 && (p[0] == ' ' || p[0] == '\t');
	if (at_start && folded && !tx->any_field) {
		/* a first line that continues nothing would continue our own
		 * Received: field: it is text, and an empty line ends the (empty)
		 * header before it so that no reader takes it for part of ours */
		tx->in_body = true;
		return H_GAP_KEEP;
	}
	if (at_start && !folded) {
		field_judge(s, true); /* the previous field is complete */
		if (!field_start(p, n)) { /* the empty line, or text that is no header */
			tx->in_body = true;
			return H_KEEP;
		}
		tx->any_field = true;
		tx->field_len = 0;
		tx->field_cut = false;
		tx->field_drop = false;
		tx->holding = hooks->header_drop != NULL;
		if (is_received(p, n))
			tx->hops++;
	}
	if (tx->field_cut || tx->field_drop)
		return H_DROP;
	uint64_t len = n + (complete ? 2 : 0);
	if (tx->field_len + len <= s->cfg->header_size_limit) {
		tx->field_len += len;
		return H_KEEP;
	}
	tx->field_cut = tx->header_cut = true;
	return at_start ? H_DROP : H_END_LINE;
}

/* memory_pressure - past the mark, text goes to disk as it arrives; crossing
 * it also makes every session in DATA spool what it holds (an idle one too). */
static bool memory_pressure(struct session *s, size_t before)
{
	size_t mark = server_data_pressure_mark(s->srv);
	if (data_in_memory <= mark)
		return false;
	if (before <= mark) {
		char held[24];
		snprintf(held, sizeof(held), "%zu", data_in_memory);
		log_ev(LOG_WARNING, "data-memory-pressure", {"held", held},
		       {"action", "sessions spool message text to disk early"});
		server_data_pressure(s->srv);
	}
	return true;
}

/* store - message text into the transaction (and to disk beyond SPOOL_CHUNK,
 * or at once when memory is short). */
static void store(struct session *s, const char *p, size_t n, bool complete)
{
	struct transaction *tx = s->tx;
	size_t before = data_in_memory;
	strbuf_append(&tx->msg->body, p, n);
	if (complete)
		strbuf_append(&tx->msg->body, "\r\n", 2);
	data_in_memory += n + (complete ? 2 : 0);
	tx->held += n + (complete ? 2 : 0);
	if (memory_pressure(s, before) || tx->msg->body.len >= SPOOL_CHUNK)
		spool_flush(s);
}

void session_spool_held(struct session *s)
{
	struct transaction *tx = s->tx;
	bool reading = s->pending == PENDING_NONE || s->pending == PENDING_SPOOL;
	if (s->state != S_DATA || !reading || tx == NULL || tx->msg == NULL ||
	    tx->msg->body.len == 0 ||
	    tx->too_big || tx->bare_eol || tx->no_memory)
		return;
	spool_flush(s);
}

/* data_line - one line (or a piece of a very long one) of message text. */
static void data_line(struct session *s, const char *p, size_t n, bool complete)
{
	struct transaction *tx = s->tx;
	bool at_start = !tx->midline;
	tx->midline = !complete;
	if (at_start && complete && n == 1 && p[0] == '.') {
		end_of_data(s);
		return;
	}
	if (at_start && n > 0 && p[0] == '.') {
		p++; /* dot-unstuffing, RFC 5321 4.5.2 */
		n--;
	}
	if (memchr(p, '\n', n) != NULL || memchr(p, '\r', n) != NULL)
		tx->bare_eol = true;
	tx->data_size += n + (complete ? 2 : 0);
	if (tx->data_size > s->cfg->message_size_limit)
		tx->too_big = true;
	if (!tx->too_big && data_in_memory + n + 2 > s->cfg->smtpd_data_memory_limit)
		tx->no_memory = true;
	if (tx->too_big || tx->bare_eol || tx->no_memory)
		return; /* keep reading to the end, store nothing more */
	switch (header_line(s, p, n, complete, at_start)) {
	case H_GAP_KEEP:
		store(s, "", 0, true);
		store(s, p, n, complete);
		break;
	case H_KEEP:
		if (tx->holding)
			field_hold(s, p, n, complete);
		else
			store(s, p, n, complete);
		break;
	case H_END_LINE:
		if (tx->holding)
			field_hold(s, "", 0, true);
		else
			store(s, "", 0, true);
		break;
	case H_DROP:
		break;
	}
}


/* data_input - consume message lines; false when more input is needed. */
bool session_data_input(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t avail = evbuffer_get_length(in), off = 0;
	if (avail == 0)
		return false;
	const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)avail);
	while (off < avail && s->state == S_DATA && s->pending == PENDING_NONE) {
		const char *eol = memmem(buf + off, avail - off, "\r\n", 2);
		if (eol == NULL) {
			if (avail - off < DATA_CHUNK)
				break;
			/* pieces of at most DATA_CHUNK, whatever one read brought:
			 * header_size_limit must see a field's name in its first piece */
			size_t n = avail - off - 1 < DATA_CHUNK ? avail - off - 1 : DATA_CHUNK;
			data_line(s, buf + off, n, false);
			off += n;
			continue;
		}
		data_line(s, buf + off, (size_t)(eol - (buf + off)), true);
		off = (size_t)(eol - buf) + 2;
	}
	evbuffer_drain(in, off);
	session_deadline_credit(s, off);
	return s->state != S_DATA;
}


/* commit_done - the queue has the message on disk (or failed to). */
static void commit_done(void *arg, bool ok, const char *err)
{
	struct session *s = arg;
	if (s->flags & F_DEAD) {
		session_free(s);
		return;
	}
	session_pending_end(s);
	mev_message(ok, (size_t)s->tx->data_size, rg_monotonic() - s->tx->eod_at);
	if (ok) {
		s->messages++;
		session_reply(s, "250 2.0.0 Ok: queued as %s", s->tx->msg_id);
	} else {
		queue_refused(s, err);
	}
	data_finished(s);
}

/* data_finished - the message is answered: the next transaction may start. */
static void data_finished(struct session *s)
{
	session_tx_free(s);
	session_set_state(s, S_READY);
	if (s->flags & F_SHUTDOWN) {
		session_shutdown(s);
		return;
	}
	if (!(bufferevent_get_enabled(s->bev) & EV_WRITE))
		bufferevent_enable(s->bev, EV_WRITE); /* else: two epoll_ctl calls and a wake-up for nothing */
	session_resume_reading(s);
}
