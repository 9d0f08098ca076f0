/*
 * qmgr - the queue manager: what to deliver, by which transport, and what
 * to do with the outcome.
 *
 * Owns: the active set (committed messages in memory, at most
 * qmgr_message_active_limit; the rest of the queue stays on disk and is
 * scanned lazily), routing each recipient (route.h) to a transport
 * (local Maildir, SMTP, LMTP), recipient batching, retries with exponential
 * backoff (the file's mtime is its next try), expiry, bounces and double
 * bounces, the per-attempt log line, and the operator's queue commands.
 * Must not: read or write queue files on the loop (a worker pool does),
 * speak SMTP (the SMTP transport does), or route with a configuration
 * generation its pass does not hold (a reload may free the others).
 */
#ifndef RG_QMGR_H
#define RG_QMGR_H

#include <stdbool.h>

#include "address/address.h"
#include "config/config.h"
#include "control/control.h"
#include "queue/queue.h"
#include "util/util.h"

struct event_base;
struct qmgr;
struct transport;
struct confset;

/* cfg: the start-up configuration, for what only a restart changes (the
 * queue directory, limits, backoff, the transports built once). configs:
 * the generations of SIGHUP reloads (smtp/reload.h); each message's pass
 * routes, expands and bounces with the one current when it starts (a
 * message accepted before a reload is routed with the configuration of its
 * delivery attempt, as Postfix does), and holds it until it has settled. */
struct qmgr *qmgr_new(struct event_base *base, const struct config *cfg,
		      struct confset *configs);
/* The SMTP transport (NULL: non-local mail waits in deferred/). Owned by q. */
void qmgr_set_smtp(struct qmgr *q, struct transport *smtp);
/* Start: remove never-acknowledged tmp/ files, then scan the queue (on a worker). */
void qmgr_start(struct qmgr *q);
/* A message just committed to active/ (taken). */
void qmgr_submit(struct qmgr *q, struct queue_msg *m);
/* Delivery at acceptance: may m (not yet committed) be delivered to its
 * Maildirs before the 250 instead of being queued? Only when
 * direct_local_delivery is on, every recipient routes to local delivery,
 * none asked for a success report (NOTIFY=SUCCESS needs a queued DSN),
 * the message is not to be held (abuse control), and the job is small (at most 8 recipients, 1 MiB of copies in all).
 * Pure (reads cfg only): callable from a worker that holds cfg's generation. */
bool qmgr_direct_ok(const struct config *cfg, const struct queue_msg *m);
/* m was delivered at acceptance (local_deliver_then): log each recipient's
 * "delivered" line as a queued delivery would, and free m. */
void qmgr_delivered_direct(struct qmgr *q, struct queue_msg *m);
/* In-flow control (Postfix's in_flow_delay): call it for a message just
 * queued, before its 250. ready(arg) runs at once while delivery keeps up;
 * while more than in_flow_backlog_limit messages wait for delivery, it runs
 * when one of them leaves (oldest waiter first), or after in_flow_delay,
 * or at SIGTERM, whichever is first. The episode is logged (in-flow-delay,
 * in-flow-resumed; in-flow-released at SIGTERM). */
void qmgr_in_flow(struct qmgr *q, void (*ready)(void *arg), void *arg);
/* SIGTERM: no more queue scans or outbound connections; local deliveries
 * and what is in flight finish. on_idle(arg) runs each time nothing is left
 * in flight afterwards. */
void qmgr_stop(struct qmgr *q, void (*on_idle)(void *arg), void *arg);
/* Nothing in flight: the process may exit. */
bool qmgr_idle(const struct qmgr *q);
void qmgr_free(struct qmgr *q);

/* The control socket's commands (control.h), arg: the qmgr. A message
 * being delivered cannot be deleted, held or released until it settles. */
extern const struct control_ops qmgr_control_ops;

/* Operator commands (control socket). Each appends a human-readable answer. */
bool qmgr_flush(struct qmgr *q, const char *id, struct strbuf *out);
/* Is the message with this id in memory, being delivered? */
bool qmgr_busy(const struct qmgr *q, const char *id);

/* Pure: the wait after the n-th failed attempt (n >= 1): minimal_backoff_time
 * doubling up to maximal_backoff_time. */
unsigned long qmgr_backoff(const struct config *cfg, unsigned attempts);

/* qmgr_counts - for the metrics (mev_queue_fn): messages waiting on disk for
 * the active set, active, and the files in deferred/ and hold/ at the last scan. */
void qmgr_counts(void *q, unsigned long counts[4]);

#endif
