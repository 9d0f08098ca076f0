/*
 * local.c - local delivery of a queued message (see local.h).
 */
#include "delivery/local.h"
#include "delivery/maildir.h"
#include "util/log.h"
#include "util/util.h"

#include <stdio.h>
#include <string.h>

static void deliver_one(const struct config *cfg, struct queue_msg *m, struct queue_rcpt *r)
{
	char path[4096], err[512], to[ADDR_PATH_MAX + 3];
	snprintf(to, sizeof(to), "<%s>", r->orig);
	if (maildir_deliver(cfg->virtual_mailbox_base, r->domain, r->local,
			    m->body.data, m->body.len, path, sizeof(path), err, sizeof(err))) {
		r->done = true;
		log_ev(LOG_INFO, "delivered", {"queue", m->id}, {"to", to}, {"mailbox", path});
	} else {
		log_ev(LOG_ERROR, "delivery-failed", {"queue", m->id}, {"to", to},
		       {"reason", err}, {"next", "retry later; the message stays queued"});
	}
}

bool local_deliver(const struct config *cfg, struct queue_msg *m)
{
	bool local_left = false;
	for (size_t i = 0; i < m->n_rcpts; i++) {
		struct queue_rcpt *r = &m->rcpts[i];
		if (r->done)
			continue;
		if (r->cls == ADDR_CLASS_LOCAL) {
			deliver_one(cfg, m, r);
			local_left |= !r->done;
		} else {
			char to[ADDR_PATH_MAX + 3];
			snprintf(to, sizeof(to), "<%s>", r->orig);
			log_ev(LOG_INFO, "deferred", {"queue", m->id}, {"to", to},
			       {"class", address_class_name(r->cls)},
			       {"reason", "outbound delivery is not implemented yet; the message "
					  "stays in the queue (deferred/)"});
		}
	}
	char err[512];
	if (!local_left && !queue_finish(cfg->queue_directory, m, err, sizeof(err)))
		log_ev(LOG_ERROR, "queue-error", {"queue", m->id}, {"reason", err});
	return local_left;
}
