/*
 * bounce_queue.c - failed recipients to a queued DSN (see bounce_queue.h).
 */
#include "qmgr/bounce_queue.h"
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

/* new_bounce - an envelope from sender to rcpt, resolved like any recipient. */
static struct queue_msg *new_bounce(const struct config *cfg, const struct addr_domains *dom,
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
	queue_msg_add_rcpt(b, rcpt, res.local, res.domain, res.cls);
	return b;
}

/* report_rcpts - the DSN rows of m's bounced recipients. */
static size_t report_rcpts(const struct queue_msg *m, struct dsn_rcpt *rows)
{
	size_t n = 0;
	for (size_t i = 0; i < m->n_rcpts; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];
		if (r->outcome != RCPT_BOUNCED)
			continue;
		rows[n++] = (struct dsn_rcpt){
			.final_rcpt = r->orig, .orig_rcpt = NULL, .action = DSN_FAILED,
			.status = r->dsn[0] ? r->dsn : "5.0.0", .remote_mta = r->remote_mta,
			.diagnostic = r->last_reply, .last_attempt = r->last_try,
		};
	}
	return n;
}

/* build_text - the DSN's text; *to receives its recipient. */
static bool build_text(const struct config *cfg, struct queue_msg *m, const struct queue_msg *orig,
		       const struct dsn_rcpt *rows, size_t n, const char *to, time_t now,
		       struct strbuf *out)
{
	char from[300];
	snprintf(from, sizeof(from), "MAILER-DAEMON@%s", cfg->myhostname);
	struct dsn_report rep = {
		.reporting_mta = cfg->myhostname, .queue_id = m->id, .envid = NULL,
		.sender = m->sender, .to = to, .arrival = m->arrival, .now = now,
		.headers_only = false, .size_limit = (size_t)cfg->bounce_size_limit,
		.rcpts = rows, .n_rcpts = n,
		.message = orig->body.data ? orig->body.data : "", .message_len = orig->body.len,
	};
	return dsn_build(&rep, from, out);
}

bool bounce_queue_make(const struct config *cfg, const struct addr_domains *domains,
		       struct queue_msg *m, time_t now, struct queue_msg **out)
{
	struct dsn_rcpt *rows = xcalloc(m->n_rcpts, sizeof(*rows));
	size_t n = report_rcpts(m, rows);
	char dbl[300], to[ADDR_PATH_MAX + 1], err[512];
	bounce_double_sender(cfg, dbl, sizeof(dbl));
	enum dsn_target target = n ? dsn_target(m->sender, dbl, NULL, DSN_FAILED) : DSN_TO_NOBODY;
	*out = NULL;
	if (target == DSN_TO_POSTMASTER && !postmaster(cfg, to, sizeof(to)))
		target = DSN_TO_NOBODY;
	if (target == DSN_TO_NOBODY) {
		if (n > 0)
			log_ev(LOG_WARNING, "bounce-dropped", {"queue", m->id},
			       {"reason", m->sender[0] ? "a double bounce failed"
						       : "no postmaster domain (mydestination)"});
		free(rows);
		return true;
	}
	if (target == DSN_TO_SENDER)
		rg_strlcpy(to, m->sender, sizeof(to));
	struct queue_msg *b = new_bounce(cfg, domains, target == DSN_TO_POSTMASTER ? dbl : "", to, now);
	if (b == NULL) { /* retrying cannot make the address usable */
		log_ev(LOG_WARNING, "bounce-dropped", {"queue", m->id}, {"to", to},
		       {"reason", "not an address a bounce can go to"});
		free(rows);
		return true;
	}
	struct queue_msg *orig = xcalloc(1, sizeof(*orig));
	bool ok = queue_load(cfg->queue_directory, m->path, orig, err, sizeof(err));
	if (ok) {
		build_text(cfg, m, orig, rows, n, to, now, &b->body);
		ok = queue_commit(cfg->queue_directory, b, err, sizeof(err));
	}
	if (ok) {
		strbuf_free(&b->body);
		log_ev(LOG_INFO, "bounce-queued", {"queue", m->id}, {"bounce", b->id},
		       {"to", to});
		*out = b;
	} else {
		log_ev(LOG_ERROR, "bounce-failed", {"queue", m->id}, {"reason", err},
		       {"next", "tried again later"});
		queue_msg_free(b);
	}
	queue_msg_free(orig);
	free(rows);
	return ok;
}
