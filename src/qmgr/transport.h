/*
 * transport - the interface every way of delivering mail implements.
 *
 * Owns: the shape of one delivery request (a message, some of its
 * recipients, one route) and of a transport (local Maildir, SMTP).
 * A transport fills in each recipient's outcome (sent, deferred with a
 * reply, bounced with a reply and a status), then calls done() once, on
 * the loop. It never decides about retries, bounces or queue files: the
 * queue manager does, from those outcomes.
 * Must not: free the message or the request (the queue manager owns both).
 */
#ifndef RG_TRANSPORT_H
#define RG_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "qmgr/route.h"
#include "queue/queue.h"

struct delivery {
	struct queue_msg *msg;
	size_t *rcpt;               /* indexes into msg->rcpts */
	size_t n_rcpt;
	struct route route;
	/* the configuration generation the pass routed with, held by the queue
	 * manager until the pass settles: mailboxes and aliases come from it */
	const struct config *cfg;
	void (*done)(struct delivery *d);
	void *owner;
	struct delivery *next;      /* for a transport's own waiting lists */
};

struct transport {
	const char *name;
	void (*deliver)(struct transport *t, struct delivery *d);
	bool (*idle)(const struct transport *t);  /* nothing in flight */
	void (*stop)(struct transport *t);        /* SIGTERM: finish, start nothing new */
	void (*resume)(struct transport *t);      /* the operator's flush: forget suspensions */
	void (*free)(struct transport *t);
};

/* Record an outcome for recipient i of d (reply: "550 5.1.1 ..." or ours). */
void delivery_outcome(struct delivery *d, size_t i, enum rcpt_outcome o, const char *dsn,
		      const char *reply, const char *remote_mta);
/* The same outcome for every recipient of d. */
void delivery_outcome_all(struct delivery *d, enum rcpt_outcome o, const char *dsn,
			  const char *reply, const char *remote_mta);

#endif
