/*
 * bounce_queue.c - recipient outcomes to a queued DSN (see bounce_queue.h).
 */
#include "qmgr/bounce_queue.h"
#include "address/expand.h"
#include "queue/bounce.h"
#include "util/log.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bounce_double_sender(const struct config *cfg, char *out, size_t outlen)
{
	snprintf(out, outlen, "double-bounce@%s", cfg->myhostname);
}

/* postmaster - where failed bounces go: postmaster of our first own domain. */
static bool postmaster(const struct config *cfg, char *out, size_t outlen)
{
	if (cfg->mydestination[0] == NULL)
		return false;
	snprintf(out, outlen, "postmaster@%s", cfg->mydestination[0]);
	return true;
}

struct queue_msg *bounce_queue_envelope(const struct config *cfg, const struct addr_domains *dom,
					const char *sender, const char *rcpt, time_t now)
{
	struct address a;
	struct addr_resolution res;
	const char *params;
	char err[256], path[ADDR_PATH_MAX + 3];
	snprintf(path, sizeof(path), "<%s>", rcpt);
	if (address_parse(path, &a, &params, err, sizeof(err)) != ADDR_OK)
		return NULL;
	address_resolve(&a, dom, &res);
	struct queue_msg *b = xcalloc(1, sizeof(*b));
	queue_new_id(b->id);
	b->arrival = now;
	b->client_ip = xstrdup("127.0.0.1");
	b->client_name = xstrdup("localhost");
	b->helo = xstrdup(cfg->myhostname);
	b->sender = xstrdup(sender);
	expand_queue_rcpt(cfg, dom, b, &a, &res, "", ""); /* an aliased sender: its addresses */
	return b;
}

/* action_of - the DSN action recipient r gets in a report of this kind, or
 * -1 when it is not in the report. */
static int action_of(const struct queue_rcpt *r, enum bounce_kind kind)
{
	if (kind == BOUNCE_FAILURES)
		return r->outcome == RCPT_BOUNCED ? DSN_FAILED : -1;
	if (kind == BOUNCE_DELAYS)
		return r->outcome == RCPT_DEFERRED ? DSN_DELAYED : -1;
	if (r->outcome != RCPT_SENT || r->notify == NULL || strstr(r->notify, "SUCCESS") == NULL)
		return -1;
	if (r->remote_mta == NULL || r->final_delivery)
		return DSN_DELIVERED;               /* into a mailbox: ours, or over LMTP */
	return r->relayed_no_dsn ? DSN_RELAYED : -1; /* else the next hop reports */
}

/* orig_address - ORCPT's address when its type is rfc822 ("rfc822;a@b" -> "a@b"). */
static const char *orig_address(const char *orcpt)
{
	if (orcpt == NULL || rg_str_has_prefix_ci(orcpt, "rfc822;") == false)
		return NULL;
	return orcpt + 7;
}

/* report_rcpts - the rows of the report; *target: who gets it. */
static size_t report_rcpts(const struct config *cfg, const struct queue_msg *m,
			   enum bounce_kind kind, struct dsn_rcpt *rows, enum dsn_target *target)
{
	time_t retry_until = kind == BOUNCE_DELAYS
				     ? m->arrival + (time_t)cfg->maximal_queue_lifetime : 0;
	char dbl[300];
	size_t n = 0;
	bounce_double_sender(cfg, dbl, sizeof(dbl));
	*target = DSN_TO_NOBODY;
	for (size_t i = 0; i < m->n_rcpts; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];
		int action = action_of(r, kind);
		enum dsn_target t = action < 0 ? DSN_TO_NOBODY
				    : dsn_target(m->sender, dbl, r->notify, (enum dsn_action)action);
		if (t == DSN_TO_NOBODY)
			continue;
		*target = t;
		rows[n++] = (struct dsn_rcpt){
			.final_rcpt = r->orig, .orig_rcpt = orig_address(r->orcpt),
			.action = (enum dsn_action)action, .status = r->dsn[0] ? r->dsn : NULL,
			.remote_mta = r->remote_mta,
			.diagnostic = kind != BOUNCE_SUCCESSES ? r->last_reply : NULL,
			.last_attempt = r->last_try, .will_retry_until = retry_until,
		};
	}
	return n;
}

/* build_text - the DSN's text into b's body. */
static void build_text(const struct config *cfg, const struct queue_msg *m,
		       const struct queue_msg *orig, const struct dsn_rcpt *rows, size_t n,
		       const char *to, time_t now, struct strbuf *out)
{
	char from[300];
	snprintf(from, sizeof(from), "MAILER-DAEMON@%s", cfg->myhostname);
	struct dsn_report rep = {
		.reporting_mta = cfg->myhostname, .queue_id = m->id, .envid = m->dsn_envid,
		.sender = m->sender, .to = to, .arrival = m->arrival, .now = now,
		.headers_only = m->dsn_ret != NULL && strcmp(m->dsn_ret, "HDRS") == 0,
		.size_limit = (size_t)cfg->bounce_size_limit, .rcpts = rows, .n_rcpts = n,
		.message = orig->body.data ? orig->body.data : "", .message_len = orig->body.len,
	};
	dsn_build(&rep, from, out);
}

/* commit_report - read the original, build the DSN, commit it as b. */
static bool commit_report(const struct config *cfg, struct queue_msg *m, struct queue_msg *b,
			  const struct dsn_rcpt *rows, size_t n, const char *to, time_t now)
{
	char err[512];
	struct queue_msg *orig = xcalloc(1, sizeof(*orig));
	bool ok = queue_load(cfg->queue_directory, m->path, orig, err, sizeof(err));
	if (ok) {
		build_text(cfg, m, orig, rows, n, to, now, &b->body);
		ok = queue_commit(cfg->queue_directory, b, err, sizeof(err));
	}
	if (ok) {
		strbuf_free(&b->body);
		log_ev(LOG_INFO, "dsn-queued", {"queue", m->id}, {"dsn", b->id}, {"to", to});
	} else {
		log_ev(LOG_ERROR, "dsn-failed", {"queue", m->id}, {"reason", err},
		       {"next", "tried again later"});
	}
	queue_msg_free(orig);
	return ok;
}

static bool any_bounced(const struct queue_msg *m)
{
	for (size_t i = 0; i < m->n_rcpts; i++)
		if (m->rcpts[i].outcome == RCPT_BOUNCED)
			return true;
	return false;
}

bool bounce_queue_make(const struct config *cfg, const struct addr_domains *domains,
		       struct queue_msg *m, time_t now, enum bounce_kind kind,
		       struct queue_msg **out)
{
	struct dsn_rcpt *rows = xcalloc(m->n_rcpts, sizeof(*rows));
	enum dsn_target target;
	size_t n = report_rcpts(cfg, m, kind, rows, &target);
	char dbl[300], to[ADDR_PATH_MAX + 1];
	bounce_double_sender(cfg, dbl, sizeof(dbl));
	*out = NULL;
	if (target == DSN_TO_POSTMASTER && !postmaster(cfg, to, sizeof(to)))
		target = DSN_TO_NOBODY;
	if (target == DSN_TO_SENDER)
		rg_strlcpy(to, m->sender, sizeof(to));
	struct queue_msg *b = target == DSN_TO_NOBODY ? NULL
			      : bounce_queue_envelope(cfg, domains, target == DSN_TO_POSTMASTER ? dbl : "", to,
					   now);
	bool ok = true;
	if (b == NULL && kind == BOUNCE_FAILURES && any_bounced(m) && strcmp(m->sender, dbl) == 0)
		log_ev(LOG_WARNING, "bounce-dropped", {"queue", m->id},
		       {"reason", "a double bounce failed"});
	else if (b == NULL && target != DSN_TO_NOBODY)
		log_ev(LOG_WARNING, "bounce-dropped", {"queue", m->id}, {"to", to},
		       {"reason", "not an address a report can go to"});
	else if (b != NULL && (ok = commit_report(cfg, m, b, rows, n, to, now)))
		*out = b;
	if (!ok)
		queue_msg_free(b);
	free(rows);
	return ok;
}
